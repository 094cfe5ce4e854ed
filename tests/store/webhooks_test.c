/* Tests of the store's webhook targets and outbox (session/store/webhooks.c):
 * targets round-trip (the global one is replaced keeping its queue), an
 * appended event queues one delivery per matching target (session and type
 * filters), the next head comes by event id after a cursor, failures, dead
 * letters, batched deletions, replay (dead letters and since an id), test
 * events to one target (alone and in a batch: one transaction, ids in the
 * order given, all or nothing), and the deletion of a target with its
 * queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "session/store/store.h"
#include "tests/store/testdb.h"

static char dir[512];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/whstoreXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    return testdb_reset();
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static store_t *open_store(void)
{
    store_t *st = NULL;
    char err[256];
    assert_int_equal(testdb_open(dir, &st, err, sizeof(err)), 0);
    return st;
}

static void put(store_t *st, const char *id, const char *url, const char *session,
                const char *events)
{
    uint8_t key[24];
    memset(key, 7, sizeof(key));
    store_webhook_t t = {.url = (char *)url,
                         .secret = key,
                         .secret_len = sizeof(key),
                         .session = (char *)session,
                         .events = (char *)events};
    snprintf(t.id, sizeof(t.id), "%s", id);
    assert_int_equal(store_webhook_put(st, &t), 0);
}

static uint64_t append(store_t *st, const char *session, uint64_t seq, const char *type)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"seq\":%llu}", (unsigned long long)seq);
    store_event_t e = {.session = (char *)session,
                       .seq = seq,
                       .ts_ms = 1000 + (int64_t)seq,
                       .type = (char *)type,
                       .body = body,
                       .body_len = strlen(body)};
    assert_int_equal(store_events_append(st, &e, 1), 0);
    return e.id;
}

static void test_targets_round_trip(void **state)
{
    (void)state;
    store_t *st = open_store();
    put(st, "global", "https://a.example/hook", NULL, "");
    put(st, "wh_1", "https://b.example/x", "sales", " session.status ");
    store_webhook_t *v;
    size_t n;
    assert_int_equal(store_webhooks_list(st, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "global");
    assert_null(v[0].session);
    assert_int_equal(v[0].secret_len, 24);
    assert_string_equal(v[1].session, "sales");
    assert_string_equal(v[1].events, " session.status ");
    store_webhooks_free(v, n);
    /* the global one replaced: same id, new URL, its queue kept */
    append(st, "default", 1, "session.status");
    put(st, "global", "https://c.example/hook", NULL, "");
    uint64_t c;
    assert_int_equal(store_webhook_count(st, "global", STORE_DELIVERY_PENDING, &c), 0);
    assert_int_equal(c, 1);
    assert_int_equal(store_webhooks_list(st, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].url, "https://c.example/hook");
    store_webhooks_free(v, n);
    assert_int_equal(store_webhook_delete(st, "global"), 0);
    assert_int_equal(store_webhook_delete(st, "global"), STORE_ENOTFOUND);
    size_t deleted;
    int more;
    assert_int_equal(store_webhook_purge(st, 0, &deleted, &more), 0);
    assert_int_equal(deleted, 1);
    assert_false(more);
    assert_int_equal(store_webhook_count(st, "global", STORE_DELIVERY_PENDING, &c), 0);
    assert_int_equal(c, 0);
    store_close(st);
}

/* Deleting a target with a long queue: it is gone from the list and gets
 * no new deliveries at once; its queue goes in bounded batches, then its
 * row; a restart in between resumes. */
static void test_delete_purges_in_batches(void **state)
{
    (void)state;
    store_t *st = open_store();
    put(st, "big", "https://a.example/", NULL, "");
    put(st, "other", "https://b.example/", NULL, "");
    enum { N = 1200 };
    store_event_t ev[N];
    char body[] = "{}";
    for (int i = 0; i < N; i++)
        ev[i] = (store_event_t){.session = "default",
                                .seq = (uint64_t)i + 1,
                                .ts_ms = 1,
                                .type = "session.status",
                                .body = body,
                                .body_len = 2};
    assert_int_equal(store_events_append(st, ev, N), 0);
    assert_int_equal(store_webhook_delete(st, "big"), 0);
    store_webhook_t *v;
    size_t n;
    assert_int_equal(store_webhooks_list(st, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "other");
    store_webhooks_free(v, n);
    append(st, "default", N + 1, "session.status"); /* not queued for "big" */
    uint64_t c;
    assert_int_equal(store_webhook_count(st, "big", STORE_DELIVERY_PENDING, &c), 0);
    assert_int_equal(c, N);
    size_t deleted;
    int more;
    assert_int_equal(store_webhook_purge(st, 500, &deleted, &more), 0);
    assert_int_equal(deleted, 500);
    assert_true(more);
    store_close(st); /* a restart in the middle */
    st = open_store();
    assert_int_equal(store_webhooks_list(st, &v, &n), 0);
    assert_int_equal(n, 1);
    store_webhooks_free(v, n);
    int rounds = 0;
    do {
        assert_int_equal(store_webhook_purge(st, 500, &deleted, &more), 0);
        rounds++;
    } while (more && rounds < 10);
    assert_false(more);
    assert_int_equal(rounds, 2); /* 500 + 200, then the row */
    assert_int_equal(store_webhook_count(st, "big", STORE_DELIVERY_PENDING, &c), 0);
    assert_int_equal(c, 0);
    assert_int_equal(store_webhook_count(st, "other", STORE_DELIVERY_PENDING, &c), 0);
    assert_int_equal(c, N + 1);
    assert_int_equal(store_webhook_delete(st, "big"), STORE_ENOTFOUND);
    assert_int_equal(store_webhook_purge(st, 500, &deleted, &more), 0);
    assert_int_equal(deleted, 0);
    store_close(st);
}

static void test_outbox_filters_and_head(void **state)
{
    (void)state;
    store_t *st = open_store();
    put(st, "all", "https://a.example/", NULL, "");
    put(st, "sales", "https://b.example/", "sales", "");
    put(st, "typed", "https://c.example/", NULL, " other.type ");
    uint64_t e1 = append(st, "sales", 1, "session.status");
    uint64_t e2 = append(st, "default", 1, "session.status");
    uint64_t e3 = append(st, "sales", 2, "other.type");
    uint64_t c;
    assert_int_equal(store_webhook_count(st, "all", 0, &c), 0);
    assert_int_equal(c, 3);
    assert_int_equal(store_webhook_count(st, "sales", 0, &c), 0);
    assert_int_equal(c, 2);
    assert_int_equal(store_webhook_count(st, "typed", 0, &c), 0);
    assert_int_equal(c, 1);
    store_delivery_t d;
    assert_int_equal(store_webhook_next(st, "all", 0, 1, &d), 0);
    assert_int_equal(d.event_id, e1);
    assert_string_equal(d.body, "{\"seq\":1}");
    free(d.body);
    /* after a cursor: the next by id */
    assert_int_equal(store_webhook_next(st, "all", e1, 0, &d), 0);
    assert_int_equal(d.event_id, e2);
    assert_null(d.body);
    /* a failure is remembered; a dead letter is skipped */
    assert_int_equal(store_webhook_failed(st, "all", e1, 3, 99999, "HTTP 500"), 0);
    assert_int_equal(store_webhook_next(st, "all", 0, 0, &d), 0);
    assert_int_equal(d.attempts, 3);
    assert_int_equal(d.next_at_ms, 99999);
    assert_int_equal(store_webhook_dead(st, "all", e1, 4, "HTTP 500"), 0);
    assert_int_equal(store_webhook_next(st, "all", 0, 0, &d), 0);
    assert_int_equal(d.event_id, e2);
    /* delivered rows go in one batch */
    const char *ts[] = {"all", "all"};
    uint64_t es[] = {e2, e3};
    assert_int_equal(store_webhook_delivered(st, ts, es, 2), 0);
    assert_int_equal(store_webhook_next(st, "all", 0, 0, &d), STORE_ENOTFOUND);
    assert_int_equal(store_webhook_count(st, "all", STORE_DELIVERY_DEAD, &c), 0);
    assert_int_equal(c, 1);
    /* replay: the dead letter is pending again, attempts reset */
    uint64_t n;
    assert_int_equal(store_webhook_replay(st, "all", 0, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_webhook_next(st, "all", 0, 0, &d), 0);
    assert_int_equal(d.event_id, e1);
    assert_int_equal(d.attempts, 0);
    /* replay since an id: the delivered events come back, not twice */
    assert_int_equal(store_webhook_replay(st, "all", e1, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_webhook_replay(st, "all", e1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_webhook_count(st, "all", 0, &c), 0);
    assert_int_equal(c, 3);
    store_close(st);
}

static void test_enqueue_test_event(void **state)
{
    (void)state;
    store_t *st = open_store();
    put(st, "a", "https://a.example/", NULL, "");
    put(st, "b", "https://b.example/", NULL, "");
    store_event_t e = {
        .session = NULL, .seq = 0, .ts_ms = 5, .type = "webhook.test", .body = "{}", .body_len = 2};
    assert_int_equal(store_webhook_enqueue(st, "a", &e), 0);
    assert_true(e.id > 0);
    uint64_t c;
    assert_int_equal(store_webhook_count(st, "a", 0, &c), 0);
    assert_int_equal(c, 1);
    assert_int_equal(store_webhook_count(st, "b", 0, &c), 0);
    assert_int_equal(c, 0);
    assert_int_equal(store_webhook_enqueue(st, "nope", &e), STORE_ENOTFOUND);
    /* a second test event (session NULL, seq 0 again) is fine */
    assert_int_equal(store_webhook_enqueue(st, "a", &e), 0);
    store_delivery_t d;
    assert_int_equal(store_webhook_next(st, "a", 0, 1, &d), 0);
    assert_string_equal(d.body, "{}");
    free(d.body);
    store_close(st);
}

static void test_enqueue_batch(void **state)
{
    (void)state;
    store_t *st = open_store();
    put(st, "a", "https://a.example/", NULL, "");
    put(st, "b", "https://b.example/", NULL, "");
    enum { N = 300 };
    static store_event_t ev[N];
    static char body[N][32];
    const char *tg[N];
    for (int i = 0; i < N; i++) {
        snprintf(body[i], sizeof(body[i]), "{\"n\":%d}", i);
        tg[i] = i % 3 ? "a" : "b";
        ev[i] = (store_event_t){.session = NULL,
                                .seq = 0,
                                .ts_ms = 7,
                                .type = "webhook.test",
                                .body = body[i],
                                .body_len = strlen(body[i])};
    }
    assert_int_equal(store_webhook_enqueue_batch(st, tg, ev, 0), 0);
    assert_int_equal(store_webhook_enqueue_batch(st, tg, ev, N), 0);
    for (int i = 1; i < N; i++)
        assert_true(ev[i].id > ev[i - 1].id);
    uint64_t c;
    assert_int_equal(store_webhook_count(st, "a", 0, &c), 0);
    assert_int_equal(c, 200);
    assert_int_equal(store_webhook_count(st, "b", 0, &c), 0);
    assert_int_equal(c, 100);
    /* each target's queue is its events in the order given, none lost */
    for (const char *t = "a";; t = "b") {
        uint64_t cursor = 0;
        int k = 0;
        for (int i = 0; i < N; i++) {
            if (strcmp(tg[i], t))
                continue;
            store_delivery_t d;
            assert_int_equal(store_webhook_next(st, t, cursor, 1, &d), 0);
            assert_int_equal(d.event_id, ev[i].id);
            assert_string_equal(d.body, body[i]);
            free(d.body);
            cursor = d.event_id;
            k++;
        }
        store_delivery_t d;
        assert_int_equal(store_webhook_next(st, t, cursor, 0, &d), STORE_ENOTFOUND);
        assert_int_equal(k, !strcmp(t, "a") ? 200 : 100);
        if (!strcmp(t, "b"))
            break;
    }
    /* all or nothing: one unknown target stores none of the batch */
    tg[5] = "nope";
    assert_int_equal(store_webhook_enqueue_batch(st, tg, ev, 10), STORE_ENOTFOUND);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ev[i].id, 0);
    assert_int_equal(store_webhook_count(st, "a", 0, &c), 0);
    assert_int_equal(c, 200);
    assert_int_equal(store_webhook_count(st, "b", 0, &c), 0);
    assert_int_equal(c, 100);
    /* a malformed event: refused before anything is written */
    tg[5] = "a";
    ev[3].session = "default";
    assert_int_equal(store_webhook_enqueue_batch(st, tg, ev, 10), STORE_EINVAL);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_targets_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_filters_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_test_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_purges_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
