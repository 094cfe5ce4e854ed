/* Unit tests for session/session.c: snapshots, ordered subscriptions, slow
 * subscriber policies, cross-thread posting and QR rendering once per QR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/session.h"

static int renders;

static void *render(const char *text, void *arg)
{
    (void)arg;
    renders++;
    size_t n = strlen(text);
    char *r = malloc(n + 3);
    memcpy(r, "R:", 2);
    memcpy(r + 2, text, n + 1);
    return r;
}

typedef struct {
    uv_loop_t loop;
    sess_registry_t *reg;
    sess_t *s;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    sess_render_hooks_t hooks = {render, free, NULL};
    fx->reg = sess_registry_new(&fx->loop, &hooks);
    fx->s = sess_registry_add(fx->reg, "default");
    renders = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    sess_registry_close(fx->reg);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sess_registry_free(fx->reg);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

static void publish(sess_t *s, sess_state_t st, const char *detail, const char *qr)
{
    sess_change_t c = {
        .state = st, .detail = detail, .qr_text = qr, .qr_expires_at_ms = sess_now_ms() + 60000};
    assert_int_equal(sess_publish(s, &c), 0);
}

static void test_initial_and_publish(void **state)
{
    fx_t *fx = *state;
    assert_null(sess_registry_add(fx->reg, "default"));
    assert_ptr_equal(sess_registry_find(fx->reg, "default"), fx->s);
    assert_null(sess_registry_find(fx->reg, "other"));
    sess_snapshot_t *a = sess_current(fx->s);
    assert_int_equal(a->state, SESS_DISCONNECTED);
    assert_int_equal(a->seq, 1);
    assert_string_equal(a->detail, "");
    assert_string_equal(a->session, "default");
    publish(fx->s, SESS_CONNECTING, NULL, NULL);
    publish(fx->s, SESS_QR_READY, NULL, "qr-1");
    sess_snapshot_t *b = sess_current(fx->s);
    assert_int_equal(b->seq, 3);
    assert_int_equal(b->state, SESS_QR_READY);
    assert_non_null(b->qr);
    assert_string_equal(b->qr->text, "qr-1");
    assert_string_equal((char *)b->qr->rendered, "R:qr-1");
    assert_true(sess_snapshot_qr_remaining_ms(b, sess_now_ms()) > 59000);
    assert_int_equal(sess_snapshot_qr_remaining_ms(b, sess_now_ms() + 61000), 0);
    /* the old snapshot is untouched */
    assert_int_equal(a->state, SESS_DISCONNECTED);
    /* keep_qr shares the same QR object, rendered once */
    sess_change_t c = {.state = SESS_QR_READY, .detail = "x", .keep_qr = 1};
    assert_int_equal(sess_publish(fx->s, &c), 0);
    sess_snapshot_t *d = sess_current(fx->s);
    assert_ptr_equal(d->qr, b->qr);
    assert_int_equal(renders, 1);
    assert_int_equal(d->since_ms, b->since_ms); /* same state: since kept */
    publish(fx->s, SESS_CONNECTED, NULL, NULL);
    sess_snapshot_t *e = sess_current(fx->s);
    assert_null(e->qr);
    sess_snapshot_unref(a);
    sess_snapshot_unref(b);
    sess_snapshot_unref(d);
    sess_snapshot_unref(e);
}

static void test_account(void **state)
{
    fx_t *fx = *state;
    sess_account_t acc = {.jid = "1555:3@s.whatsapp.net", .phone = "1555", .platform = "android"};
    sess_change_t c = {.state = SESS_CONNECTED, .account = &acc};
    assert_int_equal(sess_publish(fx->s, &c), 0);
    publish(fx->s, SESS_CONNECTING, "restart", NULL);
    sess_snapshot_t *s = sess_current(fx->s);
    assert_true(s->linked);
    assert_string_equal(s->account.jid, "1555:3@s.whatsapp.net");
    assert_null(s->account.lid);
    sess_snapshot_unref(s);
    sess_change_t out = {.state = SESS_DISCONNECTED, .detail = "logged_out", .clear_account = 1};
    assert_int_equal(sess_publish(fx->s, &out), 0);
    s = sess_current(fx->s);
    assert_false(s->linked);
    assert_null(s->account.jid);
    assert_string_equal(s->detail, "logged_out");
    sess_snapshot_unref(s);
}

static int notified;
static void notify(void *arg)
{
    (void)arg;
    notified++;
}

static void test_thousand_subscribers_in_order(void **state)
{
    fx_t *fx = *state;
    enum { N = 1000 };
    sess_sub_t **subs = calloc(N, sizeof(*subs));
    sess_sub_opts_t o = {.notify = notify};
    notified = 0;
    for (int i = 0; i < N; i++)
        assert_non_null(subs[i] = sess_subscribe(fx->s, &o));
    assert_int_equal(sess_subscriber_count(fx->s), N);
    assert_int_equal(notified, N); /* the current snapshot was queued */
    const sess_state_t flow[] = {SESS_CONNECTING, SESS_QR_READY, SESS_QR_READY, SESS_CONNECTING,
                                 SESS_CONNECTED};
    for (size_t k = 0; k < 5; k++)
        publish(fx->s, flow[k], NULL, flow[k] == SESS_QR_READY ? "q" : NULL);
    for (int i = 0; i < N; i++) {
        sess_snapshot_t *snap;
        assert_int_equal(sess_sub_next(subs[i], &snap), SESS_SUB_OK);
        assert_int_equal(snap->state, SESS_DISCONNECTED);
        uint64_t seq = snap->seq;
        sess_snapshot_unref(snap);
        for (size_t k = 0; k < 5; k++) {
            assert_int_equal(sess_sub_next(subs[i], &snap), SESS_SUB_OK);
            assert_int_equal(snap->state, flow[k]);
            assert_int_equal(snap->seq, seq + 1 + k);
            sess_snapshot_unref(snap);
        }
        assert_int_equal(sess_sub_next(subs[i], &snap), SESS_SUB_EMPTY);
        assert_int_equal(sess_sub_dropped(subs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        sess_unsubscribe(subs[i]);
    assert_int_equal(sess_subscriber_count(fx->s), 0);
    free(subs);
}

static void test_slow_policies(void **state)
{
    fx_t *fx = *state;
    sess_sub_opts_t co = {.max_queue = 4, .policy = SESS_SLOW_COALESCE};
    sess_sub_opts_t dis = {.max_queue = 4, .policy = SESS_SLOW_DISCONNECT};
    sess_sub_t *c = sess_subscribe(fx->s, &co);
    sess_sub_t *d = sess_subscribe(fx->s, &dis);
    for (int i = 0; i < 10; i++)
        publish(fx->s, i % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, NULL, NULL);
    sess_snapshot_t *snap, *last = NULL;
    int got = 0;
    while (sess_sub_next(c, &snap) == SESS_SUB_OK) {
        sess_snapshot_unref(last);
        last = snap;
        got++;
    }
    assert_true(got >= 1 && got <= 4);
    sess_snapshot_t *cur = sess_current(fx->s);
    assert_int_equal(last->seq, cur->seq); /* coalesced to the latest */
    assert_true(sess_sub_dropped(c) > 0);
    sess_snapshot_unref(last);
    sess_snapshot_unref(cur);
    /* the disconnecting one drains what it had, then ends */
    int rc;
    while ((rc = sess_sub_next(d, &snap)) == SESS_SUB_OK)
        sess_snapshot_unref(snap);
    assert_int_equal(rc, SESS_SUB_ENDED);
    sess_unsubscribe(c);
    sess_unsubscribe(d);
}

/* The queue starts small and grows up to max_queue without losing or
 * reordering anything; past max_queue it coalesces. */
static void test_queue_grows_to_max(void **state)
{
    fx_t *fx = *state;
    sess_sub_opts_t o = {.max_queue = 64, .policy = SESS_SLOW_COALESCE};
    sess_sub_t *sub = sess_subscribe(fx->s, &o);
    sess_snapshot_t *snap;
    assert_int_equal(sess_sub_next(sub, &snap), SESS_SUB_OK); /* the current one */
    uint64_t seq = snap->seq;
    sess_snapshot_unref(snap);
    /* 3 queued, one read, then 60 more: wraps and grows several times */
    for (int i = 0; i < 3; i++)
        publish(fx->s, i % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, NULL, NULL);
    assert_int_equal(sess_sub_next(sub, &snap), SESS_SUB_OK);
    assert_int_equal(snap->seq, seq + 1);
    sess_snapshot_unref(snap);
    for (int i = 0; i < 60; i++)
        publish(fx->s, i % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, NULL, NULL);
    for (uint64_t k = 2; k <= 63; k++) {
        assert_int_equal(sess_sub_next(sub, &snap), SESS_SUB_OK);
        assert_int_equal(snap->seq, seq + k);
        sess_snapshot_unref(snap);
    }
    assert_int_equal(sess_sub_next(sub, &snap), SESS_SUB_EMPTY);
    assert_int_equal(sess_sub_dropped(sub), 0);
    /* 65 unread: over the maximum, coalesced to the newest */
    for (int i = 0; i < 65; i++)
        publish(fx->s, i % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, NULL, NULL);
    assert_true(sess_sub_dropped(sub) > 0);
    sess_snapshot_t *last = NULL;
    while (sess_sub_next(sub, &snap) == SESS_SUB_OK) {
        sess_snapshot_unref(last);
        last = snap;
    }
    assert_int_equal(last->seq, seq + 63 + 65);
    sess_snapshot_unref(last);
    sess_unsubscribe(sub);
}

static void inc(void *arg)
{
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
}

typedef struct {
    sess_registry_t *reg;
    int *counter;
} poster_t;

static void *poster(void *arg)
{
    poster_t *p = arg;
    for (int i = 0; i < 500; i++)
        assert_int_equal(sess_registry_post(p->reg, inc, p->counter), 0);
    return NULL;
}

static void test_post_from_threads(void **state)
{
    fx_t *fx = *state;
    int counter = 0;
    pthread_t th[4];
    poster_t p = {fx->reg, &counter};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, poster, &p);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 100 && counter < 2000; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(counter, 2000);
}

static void test_close_ends_subscriptions(void **state)
{
    fx_t *fx = *state;
    sess_sub_t *s = sess_subscribe(fx->s, NULL);
    sess_snapshot_t *snap;
    assert_int_equal(sess_sub_next(s, &snap), SESS_SUB_OK);
    sess_snapshot_unref(snap);
    sess_registry_close(fx->reg);
    assert_int_equal(sess_sub_next(s, &snap), SESS_SUB_ENDED);
    assert_int_equal(sess_registry_post(fx->reg, inc, NULL), -1);
    sess_unsubscribe(s);
}

/* Readers on other threads look sessions up, subscribe and read while the
 * loop thread adds and removes sessions: no lost session, no use after
 * free (ASan), removed sessions are not found and their streams end. */
typedef struct {
    sess_registry_t *reg;
    volatile int stop;
    int found;
} reader_t;

static void *reader(void *arg)
{
    reader_t *r = arg;
    char name[32];
    for (int i = 0; !r->stop; i++) {
        snprintf(name, sizeof(name), "s%d", i % 64);
        sess_t *s = sess_registry_get(r->reg, name);
        if (s) {
            r->found++;
            sess_sub_t *sub = sess_subscribe(s, NULL);
            sess_snapshot_t *snap = sess_current(s);
            assert_string_equal(snap->session, name);
            sess_snapshot_unref(snap);
            while (sess_sub_next(sub, &snap) == SESS_SUB_OK)
                sess_snapshot_unref(snap);
            sess_unsubscribe(sub);
            sess_unref(s);
        }
        size_t n;
        sess_snapshot_t **all = sess_registry_snapshots(r->reg, &n);
        sess_snapshots_free(all, n);
    }
    return NULL;
}

static void removed(void *arg)
{
    (*(int *)arg)++;
}

static void test_sessions_come_and_go(void **state)
{
    fx_t *fx = *state;
    sess_sub_opts_t wo = {.max_queue = 100000};
    sess_sub_t *all = sess_registry_subscribe(fx->reg, &wo);
    reader_t r = {.reg = fx->reg};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reader, &r);
    int done = 0, adds = 0;
    char name[32];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 64; i++) {
            snprintf(name, sizeof(name), "s%d", i);
            sess_t *s = sess_registry_add(fx->reg, name);
            assert_non_null(s);
            adds++;
            publish(s, SESS_CONNECTING, "registering", NULL);
        }
        assert_null(sess_registry_add(fx->reg, "s3")); /* duplicate */
        assert_int_equal(sess_registry_count(fx->reg), 65);
        for (int i = 0; i < 64; i++) {
            snprintf(name, sizeof(name), "s%d", i);
            sess_t *s = sess_registry_find(fx->reg, name);
            sess_sub_t *sub = sess_subscribe(s, NULL);
            assert_int_equal(sess_registry_remove(fx->reg, s, removed, &done), 0);
            sess_snapshot_t *snap;
            while (sess_sub_next(sub, &snap) == SESS_SUB_OK)
                sess_snapshot_unref(snap);
            assert_int_equal(sess_sub_next(sub, &snap), SESS_SUB_ENDED);
            sess_unsubscribe(sub);
            assert_null(sess_registry_get(fx->reg, name));
        }
    }
    r.stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(done, adds);
    assert_int_equal(sess_registry_count(fx->reg), 1);
    /* the registry-wide stream: "default" first, then every session's first
     * snapshot and its change, in publish order */
    sess_snapshot_t *snap;
    int n = 0, connecting = 0;
    assert_int_equal(sess_sub_next(all, &snap), SESS_SUB_OK);
    assert_string_equal(snap->session, "default");
    sess_snapshot_unref(snap);
    while (sess_sub_next(all, &snap) == SESS_SUB_OK) {
        n++;
        connecting += snap->state == SESS_CONNECTING;
        sess_snapshot_unref(snap);
    }
    assert_int_equal(n, adds * 2);
    assert_int_equal(connecting, adds);
    sess_unsubscribe(all);
}

/* A reference taken with sess_registry_get keeps a removed session
 * readable. */
static void test_reference_outlives_removal(void **state)
{
    fx_t *fx = *state;
    sess_t *s = sess_registry_add(fx->reg, "temp");
    publish(s, SESS_QR_READY, "", "qr-text");
    sess_t *held = sess_registry_get(fx->reg, "temp");
    assert_ptr_equal(held, s);
    int done = 0;
    assert_int_equal(sess_registry_remove(fx->reg, s, removed, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(sess_registry_remove(fx->reg, s, removed, &done), -1);
    assert_string_equal(sess_name(held), "temp");
    sess_snapshot_t *snap = sess_current(held);
    assert_string_equal(snap->qr->text, "qr-text");
    sess_snapshot_unref(snap);
    sess_unref(held);
    size_t n;
    sess_snapshot_t **v = sess_registry_snapshots(fx->reg, &n);
    assert_int_equal(n, 1);
    assert_string_equal(v[0]->session, "default");
    sess_snapshots_free(v, n);
}

/* Subscriptions made on other threads while the loop publishes see every
 * change once, in order: never the snapshot being published twice (once
 * as the first snapshot, once queued). */
typedef struct {
    sess_t *s;
    sess_registry_t *reg;
    volatile int stop;
    int bad, subs;
} racer_t;

static void check_stream(racer_t *r, sess_sub_t *sub, const char *only)
{
    sess_snapshot_t *snap;
    uint64_t prev = 0;
    while (sess_sub_next(sub, &snap) == SESS_SUB_OK) {
        if (!only || !strcmp(snap->session, only)) {
            if (prev && snap->seq <= prev) /* repeated (gaps come from coalescing) */
                r->bad++;
            prev = snap->seq;
        }
        sess_snapshot_unref(snap);
    }
}

static void *racer(void *arg)
{
    racer_t *r = arg;
    while (!r->stop) {
        sess_sub_t *a = sess_subscribe(r->s, NULL);
        sess_sub_t *b = sess_registry_subscribe(r->reg, NULL);
        sched_yield();
        check_stream(r, a, NULL);
        check_stream(r, b, "default");
        sess_unsubscribe(a);
        sess_unsubscribe(b);
        r->subs++;
    }
    return NULL;
}

static void test_subscribe_while_publishing(void **state)
{
    fx_t *fx = *state;
    racer_t r[3];
    pthread_t th[3];
    for (int k = 0; k < 3; k++) {
        r[k] = (racer_t){.s = fx->s, .reg = fx->reg};
        pthread_create(&th[k], NULL, racer, &r[k]);
    }
    for (int i = 0; i < 200000; i++)
        publish(fx->s, i % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, "x", NULL);
    for (int k = 0; k < 3; k++) {
        r[k].stop = 1;
        pthread_join(th[k], NULL);
        assert_true(r[k].subs > 0);
        assert_int_equal(r[k].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initial_and_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_subscribers_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_grows_to_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_ends_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_come_and_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_outlives_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_while_publishing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
