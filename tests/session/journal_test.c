/* Unit tests of the event log: session/session.c's group commit and
 * resumable subscriptions over the store-backed journal (session/journal.c,
 * session/store/events.c), in a temporary DATA_DIR. Seqs continue across a
 * restart; a stream resumed from any seq sees every later event exactly
 * once across the seam between the log and live delivery; retention gives
 * an explicit gap; a slow subscriber catches up from the log instead of
 * losing events; the registry-wide stream resumes by global event id, also
 * from an event stored but not yet delivered; the
 * event JSON view round-trips and malformed ones are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <cmocka.h>

#include "session/journal.h"
#include "session/session.h"
#include "session/store/store.h"
#include "tests/store/testdb.h"

typedef struct {
    char dir[256];
    uv_loop_t loop;
    store_t *store;
    sess_jstore_t *j;
    sess_registry_t *reg;
    sess_t *s;
    int commits;
} fx_t;

static void on_commit(void *arg)
{
    ((fx_t *)arg)->commits++;
}

static void open_all(fx_t *fx, uint64_t count, int64_t age_ms)
{
    char err[256];
    uv_loop_init(&fx->loop);
    assert_int_equal(testdb_open(fx->dir, &fx->store, err, sizeof(err)), 0);
    sess_jstore_opts_t o = {.retention_count = count, .retention_age_ms = age_ms};
    fx->j = sess_jstore_new(&fx->loop, fx->store, &o);
    assert_non_null(fx->j);
    fx->reg = sess_registry_new(&fx->loop, NULL);
    sess_jstore_attach(fx->j, fx->reg);
    sess_jstore_on_commit(fx->j, on_commit, fx);
    fx->s = sess_registry_add(fx->reg, "default");
    assert_non_null(fx->s);
}

static void close_all(fx_t *fx)
{
    sess_registry_close(fx->reg);
    sess_jstore_close(fx->j);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sess_registry_free(fx->reg);
    sess_jstore_free(fx->j);
    store_close(fx->store);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "%s/jXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(testdb_reset(), 0);
    open_all(fx, 0, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    close_all(fx);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Runs the loop until `reg`'s pending events are committed and delivered
 * (bounded: 5 s). */
static void settle_reg(fx_t *fx, sess_registry_t *reg)
{
    for (int i = 0; i < 3; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    /* on PostgreSQL the commits are stored off the loop: wait for them */
    for (int i = 0; i < 5000 && sess_registry_flushing(reg); i++) {
        usleep(1000);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void settle(fx_t *fx)
{
    settle_reg(fx, fx->reg);
}

static void publish(fx_t *fx, sess_state_t st, const char *detail)
{
    sess_change_t c = {.state = st, .detail = detail};
    assert_int_equal(sess_publish(fx->s, &c), 0);
}

/* Publishes n changes (alternating states, detail "d<k>"). */
static void churn(fx_t *fx, int n)
{
    for (int k = 0; k < n; k++) {
        char d[16];
        snprintf(d, sizeof(d), "d%d", k);
        publish(fx, k % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, d);
    }
}

/* sess_sub_next, waiting (bounded) while a read of the log is in flight:
 * on PostgreSQL a catch-up page is read off the loop. */
static int next_wait(fx_t *fx, sess_sub_t *sub, sess_snapshot_t **out)
{
    int rc = sess_sub_next(sub, out);
    for (int i = 0; i < 5000 && rc == SESS_SUB_EMPTY && sess_registry_flushing(fx->reg); i++) {
        usleep(1000);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        rc = sess_sub_next(sub, out);
    }
    return rc;
}

/* Drains a subscription, checking that seqs (or event ids) follow one
 * another from `expect`; returns the next expected key. */
static uint64_t drain(fx_t *fx, sess_sub_t *sub, uint64_t expect, int by_id, int *gaps)
{
    sess_snapshot_t *snap;
    while (next_wait(fx, sub, &snap) == SESS_SUB_OK) {
        uint64_t key = by_id ? sess_snapshot_event_id(snap) : snap->seq;
        if (snap->gap_to) {
            (*gaps)++;
            assert_int_equal(snap->gap_from, expect);
            expect = snap->gap_to + 1;
        }
        if (by_id)
            assert_true(key >= expect); /* ids of other sessions may sit between */
        else
            assert_int_equal(key, expect);
        expect = key + 1;
        sess_snapshot_unref(snap);
    }
    return expect;
}

static void test_seq_continues_across_restart(void **state)
{
    fx_t *fx = *state;
    churn(fx, 5);
    settle(fx);
    sess_snapshot_t *cur = sess_current(fx->s);
    uint64_t last = cur->seq;
    assert_true(sess_snapshot_event_id(cur) > 0); /* stored */
    sess_snapshot_unref(cur);
    assert_int_equal(last, 6); /* the first snapshot and five changes */
    assert_true(fx->commits >= 1);
    close_all(fx);
    open_all(fx, 0, 0);
    cur = sess_current(fx->s);
    assert_int_equal(cur->seq, last + 1); /* never a seq given before */
    sess_snapshot_unref(cur);
}

static void test_resume_every_seq_once(void **state)
{
    fx_t *fx = *state;
    churn(fx, 40);
    settle(fx);
    /* resume from every point while new events keep coming, some not yet
     * committed when the stream switches to live */
    for (uint64_t since = 1; since < 40; since += 7) {
        sess_sub_t *sub = sess_subscribe_since(fx->s, since, NULL);
        int gaps = 0;
        uint64_t next = drain(fx, sub, since + 1, 0, &gaps);
        churn(fx, 3); /* published: pending */
        next = drain(fx, sub, next, 0, &gaps);
        settle(fx); /* committed and delivered */
        next = drain(fx, sub, next, 0, &gaps);
        sess_snapshot_t *cur = sess_current(fx->s);
        assert_int_equal(next, cur->seq + 1);
        sess_snapshot_unref(cur);
        assert_int_equal(gaps, 0);
        sess_unsubscribe(sub);
    }
    /* at the newest: nothing until the next change */
    sess_snapshot_t *cur = sess_current(fx->s);
    sess_sub_t *sub = sess_subscribe_since(fx->s, cur->seq, NULL);
    sess_snapshot_t *snap;
    assert_int_equal(next_wait(fx, sub, &snap), SESS_SUB_EMPTY);
    publish(fx, SESS_CONNECTING, "x");
    settle(fx);
    assert_int_equal(next_wait(fx, sub, &snap), SESS_SUB_OK);
    assert_int_equal(snap->seq, cur->seq + 1);
    sess_snapshot_unref(snap);
    sess_snapshot_unref(cur);
    sess_unsubscribe(sub);
    /* a seq from the future (another incarnation): the current state */
    sub = sess_subscribe_since(fx->s, 1000000, NULL);
    assert_int_equal(next_wait(fx, sub, &snap), SESS_SUB_OK);
    cur = sess_current(fx->s);
    assert_int_equal(snap->seq, cur->seq);
    sess_snapshot_unref(cur);
    sess_snapshot_unref(snap);
    sess_unsubscribe(sub);
}

static void test_retention_gives_a_gap(void **state)
{
    fx_t *fx = *state;
    close_all(fx);
    open_all(fx, 5, -1); /* keep 5 per session, no age limit */
    churn(fx, 30);
    settle(fx);
    size_t deleted = 0;
    assert_int_equal(store_events_prune(fx->store, 5, 0, sess_now_ms(), 1000, &deleted), 0);
    assert_true(deleted >= 20);
    sess_snapshot_t *cur = sess_current(fx->s);
    uint64_t last = cur->seq;
    sess_snapshot_unref(cur);
    sess_sub_t *sub = sess_subscribe_since(fx->s, 2, NULL);
    sess_snapshot_t *snap;
    assert_int_equal(next_wait(fx, sub, &snap), SESS_SUB_OK);
    assert_int_equal(snap->gap_from, 3);
    assert_int_equal(snap->gap_to, snap->seq - 1);
    assert_int_equal(snap->seq, last - 4);
    sess_snapshot_unref(snap);
    int gaps = 0;
    assert_int_equal(drain(fx, sub, last - 3, 0, &gaps), last + 1);
    assert_int_equal(gaps, 0);
    sess_unsubscribe(sub);
    /* age: everything older goes, but never the newest */
    assert_int_equal(store_events_prune(fx->store, 0, 1, sess_now_ms() + 10000, 1000, &deleted), 0);
    uint64_t n = 0;
    assert_int_equal(store_events_count(fx->store, &n), 0);
    assert_int_equal(n, 1);
}

static void wake_count(void *arg)
{
    (*(int *)arg)++;
}

static void test_slow_subscriber_catches_up(void **state)
{
    fx_t *fx = *state;
    settle(fx);
    int wakes = 0;
    sess_sub_opts_t o = {
        .notify = wake_count, .arg = &wakes, .max_queue = 8, .policy = SESS_SLOW_COALESCE};
    sess_sub_t *sub = sess_subscribe(fx->s, &o);
    sess_snapshot_t *first;
    assert_int_equal(next_wait(fx, sub, &first), SESS_SUB_OK);
    uint64_t expect = first->seq + 1;
    sess_snapshot_unref(first);
    for (int round = 0; round < 5; round++) {
        churn(fx, 50); /* far more than the queue holds */
        settle(fx);
        int gaps = 0;
        expect = drain(fx, sub, expect, 0, &gaps);
        assert_int_equal(gaps, 0);
    }
    assert_int_equal(sess_sub_dropped(sub), 0);
    sess_snapshot_t *cur = sess_current(fx->s);
    assert_int_equal(expect, cur->seq + 1);
    sess_snapshot_unref(cur);
    assert_true(wakes > 0);
    sess_unsubscribe(sub);
}

static void test_registry_stream_resumes_by_id(void **state)
{
    fx_t *fx = *state;
    sess_t *b = sess_registry_add(fx->reg, "sales");
    assert_non_null(b);
    churn(fx, 10);
    sess_change_t c = {.state = SESS_CONNECTING};
    for (int i = 0; i < 10; i++)
        assert_int_equal(sess_publish(b, &c), 0);
    settle(fx);
    sess_sub_t *all = sess_registry_subscribe(fx->reg, NULL);
    sess_snapshot_t *snap;
    uint64_t mid = 0;
    int n = 0;
    while (next_wait(fx, all, &snap) == SESS_SUB_OK) { /* the current state of both */
        n++;
        sess_snapshot_unref(snap);
    }
    assert_int_equal(n, 2);
    sess_unsubscribe(all);
    /* every event after the 5th stored one, in id order, both sessions */
    store_event_t ev[8];
    size_t got = 0;
    uint64_t pruned;
    assert_int_equal(store_events_read(fx->store, NULL, 0, 5, ev, &got, &pruned), 0);
    assert_int_equal(got, 5);
    mid = ev[4].id;
    store_events_free(ev, got);
    uint64_t total = 0;
    assert_int_equal(store_events_count(fx->store, &total), 0);
    all = sess_registry_subscribe_since(fx->reg, mid, NULL);
    uint64_t prev = mid;
    n = 0;
    while (next_wait(fx, all, &snap) == SESS_SUB_OK) {
        assert_true(sess_snapshot_event_id(snap) > prev);
        prev = sess_snapshot_event_id(snap);
        n++;
        sess_snapshot_unref(snap);
    }
    assert_int_equal((uint64_t)n, total - 5);
    assert_int_equal(sess_registry_remove(fx->reg, b, NULL, NULL), 0);
    sess_unsubscribe(all);
    settle(fx);
}

/* What the commit hook of test_resume_ahead_of_delivery subscribed. */
typedef struct {
    fx_t *fx;
    sess_sub_t *all, *one;
    uint64_t id, seq; /* the newest stored event's */
} ahead_t;

/* Runs between the commit of an event and its delivery: subscribes, on
 * the session and registry-wide, resuming from that event (as a client
 * that read it from the log before it was delivered here reconnects). */
static void subscribe_ahead(void *arg)
{
    ahead_t *a = arg;
    if (a->all)
        return;
    store_event_t ev[32];
    size_t got = 0;
    uint64_t pruned;
    assert_int_equal(store_events_read(a->fx->store, NULL, 0, 32, ev, &got, &pruned), 0);
    assert_true(got > 0 && got < 32);
    a->id = ev[got - 1].id;
    a->seq = ev[got - 1].seq;
    store_events_free(ev, got);
    a->all = sess_registry_subscribe_since(a->fx->reg, a->id, NULL);
    a->one = sess_subscribe_since(a->fx->s, a->seq, NULL);
    assert_non_null(a->all);
    assert_non_null(a->one);
}

/* A stream resumed from an event the log has but this node has not
 * delivered yet gets neither the older current state (stale, out of
 * order) nor that event again: the next event is the first it sees. A key
 * the log does not have at all (another incarnation) starts afresh with
 * every session's current state. */
static void test_resume_ahead_of_delivery(void **state)
{
    fx_t *fx = *state;
    churn(fx, 3);
    settle(fx);
    ahead_t a = {.fx = fx};
    sess_jstore_on_commit(fx->j, subscribe_ahead, &a);
    publish(fx, SESS_CONNECTING, "ahead");
    settle(fx);
    sess_jstore_on_commit(fx->j, on_commit, fx);
    assert_non_null(a.all);
    publish(fx, SESS_DISCONNECTED, "next");
    settle(fx);
    sess_sub_t *subs[2] = {a.one, a.all};
    for (int i = 0; i < 2; i++) {
        sess_snapshot_t *snap;
        assert_int_equal(next_wait(fx, subs[i], &snap), SESS_SUB_OK);
        assert_int_equal(snap->seq, a.seq + 1);
        assert_string_equal(snap->detail, "next");
        assert_true(sess_snapshot_event_id(snap) > a.id);
        sess_snapshot_unref(snap);
        assert_int_equal(next_wait(fx, subs[i], &snap), SESS_SUB_EMPTY);
        sess_unsubscribe(subs[i]);
    }
    /* an event id from the future: the current state */
    sess_sub_t *all = sess_registry_subscribe_since(fx->reg, a.id + 1000000, NULL);
    sess_snapshot_t *snap;
    assert_int_equal(next_wait(fx, all, &snap), SESS_SUB_OK);
    assert_int_equal(snap->seq, a.seq + 1);
    sess_snapshot_unref(snap);
    assert_int_equal(next_wait(fx, all, &snap), SESS_SUB_EMPTY);
    sess_unsubscribe(all);
}

static void test_event_json_round_trip(void **state)
{
    fx_t *fx = *state;
    sess_account_t a = {
        .jid = "15551234567:3@s.whatsapp.net", .phone = "15551234567", .push_name = "Ann \"A\""};
    sess_change_t c = {.state = SESS_QR_READY,
                       .detail = "",
                       .qr_text = "2@ref,noise,ident,adv",
                       .qr_expires_at_ms = 1796000000123LL,
                       .link_code = "ABCD-EFGH",
                       .link_code_expires_at_ms = 1796000000999LL};
    assert_int_equal(sess_publish(fx->s, &c), 0);
    sess_change_t c2 = {.state = SESS_CONNECTED, .account = &a};
    assert_int_equal(sess_publish(fx->s, &c2), 0);
    settle(fx);
    sess_sub_t *sub = sess_subscribe_since(fx->s, 1, NULL);
    sess_snapshot_t *qr, *conn;
    assert_int_equal(next_wait(fx, sub, &qr), SESS_SUB_OK);
    assert_int_equal(next_wait(fx, sub, &conn), SESS_SUB_OK);
    assert_int_equal(qr->state, SESS_QR_READY);
    assert_string_equal(qr->qr->text, "2@ref,noise,ident,adv");
    assert_int_equal(qr->qr->expires_at_ms, 1796000000123LL);
    assert_string_equal(qr->link_code, "ABCD-EFGH");
    assert_int_equal(qr->link_code_expires_at_ms, 1796000000999LL);
    assert_int_equal(conn->state, SESS_CONNECTED);
    assert_true(conn->linked);
    assert_string_equal(conn->account.push_name, "Ann \"A\"");
    assert_string_equal(conn->account.jid, a.jid);
    assert_null(conn->account.lid);
    sess_snapshot_t *live = sess_current(fx->s);
    assert_int_equal(conn->since_ms, live->since_ms);
    assert_int_equal(conn->changed_ms, live->changed_ms);
    sess_snapshot_unref(live);
    size_t len;
    char *json = sess_event_json(conn, &len);
    assert_non_null(strstr(json, "\"type\":\"session.status\""));
    assert_non_null(strstr(json, "\"session\":\"default\""));
    free(json);
    sess_snapshot_unref(qr);
    sess_snapshot_unref(conn);
    sess_unsubscribe(sub);
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"type\":\"session.status\"}",
        "{\"type\":\"x\",\"session\":\"a\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:00.000Z\","
        "\"data\":{\"state\":\"CONNECTED\",\"since\":\"2026-01-01T00:00:00.000Z\"}}",
        "{\"type\":\"session.status\",\"session\":\"a\",\"seq\":0,\"timestamp\":\"2026-01-01T00:00:"
        "00.000Z\",\"data\":{\"state\":\"CONNECTED\",\"since\":\"2026-01-01T00:00:00.000Z\"}}",
        "{\"type\":\"session.status\",\"session\":\"a\",\"seq\":1,\"timestamp\":\"yesterday\","
        "\"data\":{\"state\":\"CONNECTED\",\"since\":\"2026-01-01T00:00:00.000Z\"}}",
        "{\"type\":\"session.status\",\"session\":\"a\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:"
        "00.000Z\",\"data\":{\"state\":\"ONLINE\",\"since\":\"2026-01-01T00:00:00.000Z\"}}",
        "{\"type\":\"session.status\",\"session\":\"a\",\"seq\":1,\"timestamp\":\"2026-01-01T00:00:"
        "00.000Z\",\"data\":{\"state\":\"QR_READY\",\"since\":\"2026-01-01T00:00:00.000Z\","
        "\"qr\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(sess_event_parse(fx->reg, bad[i], strlen(bad[i])));
}

static void test_retention_parse(void **state)
{
    (void)state;
    uint64_t n;
    int64_t age;
    assert_int_equal(sess_jstore_parse_retention("10000,7d", &n, &age), 0);
    assert_int_equal(n, 10000);
    assert_int_equal(age, 7LL * 86400000);
    assert_int_equal(sess_jstore_parse_retention("5", &n, &age), 0);
    assert_int_equal(age, SESS_RETENTION_AGE_MS_DEFAULT);
    assert_int_equal(sess_jstore_parse_retention("5,0", &n, &age), 0);
    assert_int_equal(age, -1);
    assert_int_equal(sess_jstore_parse_retention("5,90s", &n, &age), 0);
    assert_int_equal(age, 90000);
    static const char *const bad[] = {"",     "0",     "-5",    "x",     "5,",  "5,7",
                                      "5,7w", "5,-1d", "5,1dd", "5,,1d", "1e3", "5 ,1d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sess_jstore_parse_retention(bad[i], &n, &age), -1);
}

/* A second registry on the same store, as another node would have: its
 * follower of "default" starts from the newest stored event (read off the
 * loop on PostgreSQL) and delivers what the first one published, with the
 * same seqs and ids, in order (sess_follow_later: off the loop on
 * PostgreSQL), and a follower refuses to publish. */
static void test_follower_sees_the_owner(void **state)
{
    fx_t *fx = *state;
    churn(fx, 3);
    settle(fx);
    sess_registry_t *other = sess_registry_new(&fx->loop, NULL);
    sess_jstore_t *oj = sess_jstore_new(&fx->loop, fx->store, NULL);
    sess_jstore_attach(oj, other);
    sess_t *f = sess_registry_add_follower(other, "default");
    assert_non_null(f);
    assert_true(sess_following(f));
    sess_change_t c = {.state = SESS_CONNECTING};
    assert_int_equal(sess_publish(f, &c), -1);
    sess_snapshot_t *mine = sess_current(fx->s), *theirs = NULL;
    /* the newest stored event (read off the loop on PostgreSQL) */
    settle_reg(fx, other); /* the newest event read off the loop, counted as flushing */
    theirs = sess_current(f);
    assert_non_null(theirs);
    assert_int_equal(theirs->seq, mine->seq);
    assert_int_equal(sess_snapshot_event_id(theirs), sess_snapshot_event_id(mine));
    sess_snapshot_unref(theirs);
    uint64_t from = mine->seq + 1;
    sess_snapshot_unref(mine);
    sess_sub_opts_t so = {.max_queue = 1000};
    sess_sub_t *sub = sess_subscribe(f, &so);
    sess_snapshot_t *first;
    assert_int_equal(next_wait(fx, sub, &first), SESS_SUB_OK); /* the current one */
    sess_snapshot_unref(first);
    churn(fx, 40);
    settle(fx);
    for (int i = 0; i < 3; i++) { /* the NOTIFY's work: read twice while one is in flight */
        sess_follow_later(f);
        sess_follow_later(f);
    }
    sess_snapshot_t *cur = NULL;
    for (int i = 0; i < 5000; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        cur = sess_current(f);
        int done = cur->seq == from + 39;
        sess_snapshot_unref(cur);
        if (done)
            break;
        usleep(1000);
    }
    int gaps = 0;
    assert_int_equal(drain(fx, sub, from, 0, &gaps), from + 40);
    assert_int_equal(gaps, 0);
    sess_unsubscribe(sub);
    sess_registry_close(other);
    sess_jstore_close(oj);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_registry_free(other);
    sess_jstore_free(oj);
}

/* Two writers on one log (two nodes): a registry-wide stream sees the
 * events of its own sessions and those another node wrote in the log's id
 * order, every one of them once, even though it learns of the others'
 * later (the NOTIFY comes after its own commits). PostgreSQL only. */
static void test_two_writers_one_order(void **state)
{
    fx_t *fx = *state;
    if (!store_is_pg(fx->store))
        skip();
    settle(fx);
    sess_registry_t *other = sess_registry_new(&fx->loop, NULL);
    sess_jstore_t *oj = sess_jstore_new(&fx->loop, fx->store, NULL);
    sess_jstore_attach(oj, other);
    sess_t *b = sess_registry_add(other, "b1"); /* the other node owns b1 */
    assert_non_null(b);
    settle_reg(fx, other);
    sess_t *f = sess_registry_add_follower(fx->reg, "b1");
    assert_non_null(f);
    settle(fx);
    sess_sub_opts_t so = {.max_queue = 10000};
    sess_sub_t *all = sess_registry_subscribe(fx->reg, &so);
    sess_snapshot_t *snap;
    while (next_wait(fx, all, &snap) == SESS_SUB_OK) /* the current states */
        sess_snapshot_unref(snap);
    for (int k = 0; k < 30; k++) {
        sess_change_t cb = {.state = k % 2 ? SESS_CONNECTING : SESS_DISCONNECTED,
                            .detail = "theirs"};
        assert_int_equal(sess_publish(b, &cb), 0); /* stored first */
        settle_reg(fx, other);
        publish(fx, k % 2 ? SESS_CONNECTING : SESS_DISCONNECTED, "mine");
        settle(fx);
        if (k % 10 == 9)
            sess_follow_later(f); /* the NOTIFY of b1's events, late */
    }
    settle(fx);
    uint64_t prev = 0;
    int mine = 0, theirs = 0;
    while (next_wait(fx, all, &snap) == SESS_SUB_OK) {
        uint64_t id = sess_snapshot_event_id(snap);
        assert_true(id > prev); /* never back, never twice */
        prev = id;
        if (!strcmp(snap->session, "b1") && !strcmp(snap->detail, "theirs"))
            theirs++;
        else if (!strcmp(snap->session, "default") && !strcmp(snap->detail, "mine"))
            mine++;
        sess_snapshot_unref(snap);
    }
    assert_int_equal(mine, 30);
    assert_int_equal(theirs, 30);
    sess_unsubscribe(all);
    sess_registry_close(other);
    sess_jstore_close(oj);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_registry_free(other);
    sess_jstore_free(oj);
}

/* The follower's node attached its journal (and loaded every session's
 * last seq) before the owner published more: the follower still starts
 * from the owner's newest event, and once it owns the session its seq
 * continues the log's (the store refuses a seq it has given). */
static void test_follower_after_the_journal_attached(void **state)
{
    fx_t *fx = *state;
    churn(fx, 3);
    settle(fx);
    sess_registry_t *other = sess_registry_new(&fx->loop, NULL);
    sess_jstore_t *oj = sess_jstore_new(&fx->loop, fx->store, NULL);
    sess_jstore_attach(oj, other);
    churn(fx, 5); /* the table `other` loaded is stale now */
    settle(fx);
    sess_snapshot_t *mine = sess_current(fx->s);
    sess_t *f = sess_registry_add_follower(other, "default");
    assert_non_null(f);
    sess_snapshot_t *theirs = NULL;
    settle_reg(fx, other); /* the newest event read off the loop, counted as flushing */
    theirs = sess_current(f);
    assert_non_null(theirs);
    assert_int_equal(sess_snapshot_event_id(theirs), sess_snapshot_event_id(mine));
    sess_snapshot_unref(theirs);
    /* it takes over: the next event is stored with the next seq */
    sess_set_following(f, 1);
    assert_true(sess_follow(f) >= 0);
    sess_set_following(f, 0);
    sess_change_t c = {.state = SESS_CONNECTING, .detail = "taken"};
    assert_int_equal(sess_publish(f, &c), 0);
    settle_reg(fx, other); /* stored: it has an id */
    theirs = sess_current(f);
    assert_non_null(theirs);
    assert_int_equal(theirs->seq, mine->seq + 1);
    assert_true(sess_snapshot_event_id(theirs) > sess_snapshot_event_id(mine));
    sess_snapshot_unref(theirs);
    sess_snapshot_unref(mine);
    sess_registry_close(other);
    sess_jstore_close(oj);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_registry_free(other);
    sess_jstore_free(oj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_continues_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_every_seq_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_gives_a_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_stream_resumes_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_ahead_of_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_json_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_sees_the_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers_one_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_after_the_journal_attached, setup, teardown),
        cmocka_unit_test(test_retention_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
