/* Tests of the test call's group commit (session/webhook/webhook.c, wh_test):
 * the real store and sender on a libuv loop, the store called through its
 * job queue (a thread of its own on PostgreSQL, inline on SQLite, as the
 * service does), two targets whose receiver is a plain HTTP/1.1 server on
 * threads of this process.
 *
 *   - Many calls in one loop iteration: nothing is stored before the
 *     iteration's commit; then (once the queue ran it) every event is stored, ids in the order of
 *     the calls, "queued only" calls (wait 0) answered with their id, the
 *     waiting ones with their delivery; cancelled calls still have their
 *     event delivered; each target receives exactly its events, in id
 *     order, none lost, none twice. A second round while the first is
 *     being delivered keeps the order behind it.
 *   - A wait shorter than the iteration: the timer queues the event itself
 *     and the answer waits until it is stored (an id, never 0).
 *   - A target deleted between the call and the commit: ENOTFOUND, nothing
 *     stored.
 *   - Commits at least commit_gap_ms apart: a call soon after a commit
 *     waits for the gap (a timer), then is stored and answered.
 *   - wh_close with calls not committed: their events are stored; the
 *     queued-only calls get their id (when the queue is closed), the
 *     waiting ones WH_ECLOSED.
 *   - Replay and deletion answer through their callbacks; wh_free before
 *     the queue ran the sender's jobs is safe.
 *   - PostgreSQL: a dead letter whose record failed is recorded later,
 *     without a restart. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <uv.h>

#include "common/httpc.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "tests/store/testdb.h"
#include "session/webhook/webhook.h"
#include "tests/webhook/receiver.h"

#define MAX_ARRIVALS 4096

/* What the receiver saw: per target (path "/a" or "/b"), the event ids in
 * arrival order. */
typedef struct {
    int lfd;
    pthread_mutex_t mu;
    uint64_t got[2][MAX_ARRIVALS];
    size_t ngot[2];
    volatile int stop;
} rcv_t;

/* Records each request's webhook-id by path (the receiver's callback). */
static void record(void *arg, const char *head, size_t hlen, uint64_t id)
{
    rcv_t *r = arg;
    int which = hlen >= 8 && !strncmp(head, "POST /b ", 8);
    pthread_mutex_lock(&r->mu);
    if (r->ngot[which] < MAX_ARRIVALS)
        r->got[which][r->ngot[which]++] = id;
    pthread_mutex_unlock(&r->mu);
}

static void *acceptor(void *arg)
{
    rcv_t *r = arg;
    whrcv_accept_loop(r->lfd, &r->stop, record, r);
    return NULL;
}

/* The fixture: a store, a loop, a sender, two targets, the receiver. */
typedef struct {
    char dir[512];
    store_t *st;
    uv_loop_t loop;
    sess_q_t *q;
    wh_t *wh;
    char id[2][40];
    rcv_t rcv;
    pthread_t acc;
    int port;
    unsigned gap_ms;       /* wh_opts_t.commit_gap_ms */
    unsigned max_attempts; /* wh_opts_t.max_attempts */
} fx_t;

static void on_created(void *arg, int rc, const char *why, const wh_target_info_t *t,
                       const char *secret)
{
    (void)why;
    (void)secret;
    assert_int_equal(rc, 0);
    snprintf(arg, 40, "%s", t->id);
}

static void fx_open_sender(fx_t *f)
{
    char err[256];
    assert_int_equal(testdb_open(f->dir, &f->st, err, sizeof(err)), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->q = sess_q_new(&f->loop, testdb_is_pg());
    assert_non_null(f->q);
    wh_opts_t o = {.loop = &f->loop,
                   .store = f->st,
                   .q = f->q,
                   .allow_private = 1,
                   .max_attempts = f->max_attempts,
                   .commit_gap_ms = f->gap_ms};
    assert_int_equal(wh_new(&o, &f->wh, err, sizeof(err)), 0);
}

static void fx_close_sender(fx_t *f)
{
    wh_close(f->wh);
    sess_q_close(f->q);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    sess_q_free(f->q);
    f->q = NULL;
    wh_free(f->wh);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->st);
    f->wh = NULL;
    f->st = NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/whbatchXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(testdb_reset(), 0);
    pthread_mutex_init(&f->rcv.mu, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    f->rcv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->rcv.lfd >= 0);
    assert_int_equal(bind(f->rcv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->rcv.lfd, 16), 0);
    assert_int_equal(getsockname(f->rcv.lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->acc, NULL, acceptor, &f->rcv), 0);
    assert_int_equal(httpc_global_init(), 0);
    fx_open_sender(f);
    for (int i = 0; i < 2; i++) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", f->port, i ? "b" : "a");
        wh_target_spec_t spec = {.url = url};
        assert_int_equal(wh_target_create(f->wh, &spec, on_created, f->id[i]), 0);
        for (int k = 0; k < 10000 && !f->id[i][0]; k++) { /* stored through the queue */
            uv_run(&f->loop, UV_RUN_NOWAIT);
            if (!f->id[i][0])
                usleep(1000);
        }
        assert_true(f->id[i][0] != 0);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->wh)
        fx_close_sender(f);
    f->rcv.stop = 1;
    shutdown(f->rcv.lfd, SHUT_RDWR);
    close(f->rcv.lfd);
    pthread_join(f->acc, NULL);
    httpc_global_cleanup();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* One test call's answer. */
typedef struct {
    int calls;
    wh_test_result_t r;
} answer_t;

static void on_answer(void *arg, const wh_test_result_t *r)
{
    answer_t *a = arg;
    a->calls++;
    a->r = *r;
}

static size_t arrivals(fx_t *f, int which)
{
    pthread_mutex_lock(&f->rcv.mu);
    size_t n = f->rcv.ngot[which];
    pthread_mutex_unlock(&f->rcv.mu);
    return n;
}

/* Runs the loop until both targets received `want` events or 10 s pass. */
static void run_until(fx_t *f, size_t want_a, size_t want_b)
{
    for (int i = 0; i < 10000; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (arrivals(f, 0) >= want_a && arrivals(f, 1) >= want_b)
            break;
        usleep(1000);
    }
    /* a little more: a duplicate or a stray would show */
    for (int i = 0; i < 50; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* Runs the loop until *calls is set, or 10 s pass. */
static void run_until_called(fx_t *f, const int *calls)
{
    for (int i = 0; i < 10000 && !*calls; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!*calls)
            usleep(1000);
    }
}

static uint64_t pending_of(fx_t *f, int which)
{
    uint64_t c = 0;
    sess_q_drain(f->q); /* the queue's thread is idle: the store is ours */
    assert_int_equal(store_webhook_count(f->st, f->id[which], STORE_DELIVERY_PENDING, &c), 0);
    return c;
}

/* Checks that target `which` received exactly ids[0..n) (in this order). */
static void check_received(fx_t *f, int which, const uint64_t *ids, size_t n)
{
    pthread_mutex_lock(&f->rcv.mu);
    size_t got = f->rcv.ngot[which];
    uint64_t *v = f->rcv.got[which];
    pthread_mutex_unlock(&f->rcv.mu);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i], ids[i]);
}

#define CALLS 400

static void test_batch_order_and_loss(void **state)
{
    fx_t *f = *state;
    static answer_t ans[2 * CALLS];
    static wh_test_t *h[2 * CALLS];
    memset(ans, 0, sizeof(ans));
    /* two rounds: the second is asked for while the first is delivered */
    for (int round = 0; round < 2; round++) {
        for (int i = round * CALLS; i < (round + 1) * CALLS; i++) {
            int which = (i % 5) < 2; /* 3 of 5 to "a", 2 of 5 to "b" */
            unsigned wait = (i % 4) == 1 || (i % 4) == 2 ? 5000 : 0;
            h[i] = wh_test(f->wh, f->id[which], wait, on_answer, &ans[i]);
            assert_non_null(h[i]); /* nothing is answered before the commit */
        }
        for (int i = round * CALLS; i < (round + 1) * CALLS; i++)
            if ((i % 4) >= 2) { /* the caller went away: its event still goes */
                wh_test_cancel(h[i]);
                h[i] = NULL;
            }
        for (int i = round * CALLS; i < (round + 1) * CALLS; i++)
            assert_int_equal(ans[i].calls, 0);
        if (round == 0) {
            assert_int_equal(pending_of(f, 0) + pending_of(f, 1), 0); /* not stored yet */
            uv_run(&f->loop, UV_RUN_NOWAIT); /* one iteration: the group commit */
            for (int i = 0; i < CALLS; i += 4)
                run_until_called(f, &ans[i].calls);
            /* every queued-only call is answered with its id, in call order */
            uint64_t last = 0;
            for (int i = 0; i < CALLS; i++) {
                if (i % 4 == 0) {
                    assert_int_equal(ans[i].calls, 1);
                    assert_int_equal(ans[i].r.rc, WH_OK);
                    assert_false(ans[i].r.answered);
                    assert_true(ans[i].r.event_id > last);
                    last = ans[i].r.event_id;
                }
            }
            /* a few may be delivered already; none is missing */
            assert_true(pending_of(f, 0) + pending_of(f, 1) + arrivals(f, 0) + arrivals(f, 1) >=
                        CALLS);
        }
    }
    run_until(f, 6 * CALLS / 5, 4 * CALLS / 5);
    /* the answers: ids increase with the calls; waits see their delivery */
    uint64_t last = 0;
    for (int i = 0; i < 2 * CALLS; i++) {
        int cancelled = (i % 4) >= 2;
        assert_int_equal(ans[i].calls, cancelled ? 0 : 1);
        if (cancelled)
            continue;
        assert_int_equal(ans[i].r.rc, WH_OK);
        assert_true(ans[i].r.event_id > last);
        last = ans[i].r.event_id;
        if (i % 4 == 1) {
            assert_true(ans[i].r.answered);
            assert_true(ans[i].r.delivered);
            assert_int_equal(ans[i].r.status, 200);
        }
    }
    /* each target: every event once, in id (= call) order */
    for (int which = 0; which < 2; which++) {
        pthread_mutex_lock(&f->rcv.mu);
        size_t n = f->rcv.ngot[which];
        uint64_t *v = f->rcv.got[which];
        pthread_mutex_unlock(&f->rcv.mu);
        assert_int_equal(n, which ? 4 * CALLS / 5 : 6 * CALLS / 5);
        for (size_t k = 1; k < n; k++)
            assert_true(v[k] > v[k - 1]);
        /* the answered ids are among them, at their place */
        size_t k = 0;
        for (int i = 0; i < 2 * CALLS; i++) {
            if (((i % 5) < 2) != which)
                continue;
            if (ans[i].calls)
                assert_int_equal(v[k], ans[i].r.event_id);
            k++;
        }
        assert_int_equal(k, n);
    }
    /* the ids of the two targets interleave as the calls did: one sequence */
    size_t na = arrivals(f, 0), nb = arrivals(f, 1);
    uint64_t all[2 * CALLS];
    size_t ia = 0, ib = 0;
    for (int i = 0; i < 2 * CALLS; i++)
        all[i] = (i % 5) < 2 ? f->rcv.got[1][ib++] : f->rcv.got[0][ia++];
    assert_int_equal(ia, na);
    assert_int_equal(ib, nb);
    for (int i = 1; i < 2 * CALLS; i++)
        assert_true(all[i] > all[i - 1]);
}

static void test_short_wait_stores_first(void **state)
{
    fx_t *f = *state;
    answer_t a = {0}, b = {0};
    /* the receiver of "a" is fine; a 1 ms wait may end before the commit */
    wh_test_t *h = wh_test(f->wh, f->id[0], 1, on_answer, &a);
    assert_non_null(h);
    assert_non_null(wh_test(f->wh, f->id[0], 0, on_answer, &b));
    usleep(20000); /* the timer is due before the loop's prepare phase */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    run_until_called(f, &a.calls);
    run_until_called(f, &b.calls);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.r.rc, WH_OK);
    assert_true(a.r.event_id > 0);
    assert_int_equal(b.calls, 1);
    assert_true(b.r.event_id > a.r.event_id); /* stored together, in call order */
    run_until(f, 2, 0);
    uint64_t ids[2] = {a.r.event_id, b.r.event_id};
    check_received(f, 0, ids, 2);
}

/* A completion's rc (wh_target_delete, wh_replay). */
typedef struct {
    int calls;
    int rc;
    uint64_t n;
} done_t;

static void on_done(void *arg, int rc)
{
    done_t *d = arg;
    d->calls++;
    d->rc = rc;
}

static void on_replayed(void *arg, int rc, uint64_t n)
{
    done_t *d = arg;
    d->calls++;
    d->rc = rc;
    d->n = n;
}

static void test_target_deleted_before_commit(void **state)
{
    fx_t *f = *state;
    answer_t a = {0}, b = {0};
    done_t d = {0};
    assert_non_null(wh_test(f->wh, f->id[1], 0, on_answer, &a));
    assert_non_null(wh_test(f->wh, f->id[0], 0, on_answer, &b));
    assert_int_equal(wh_target_delete(f->wh, f->id[1], on_done, &d), WH_OK);
    assert_int_equal(d.calls, 0); /* never before the store has it */
    /* gone at once for the API and the test calls */
    wh_target_info_t info;
    assert_int_equal(wh_target_get(f->wh, f->id[1], &info), WH_ENOTFOUND);
    assert_int_equal(wh_target_delete(f->wh, f->id[1], on_done, &d), WH_ENOTFOUND);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    run_until_called(f, &a.calls);
    run_until_called(f, &b.calls);
    run_until_called(f, &d.calls);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, WH_OK);
    assert_int_equal(wh_count(f->wh), 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.r.rc, WH_ENOTFOUND);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.r.rc, WH_OK);
    run_until(f, 1, 0);
    check_received(f, 0, &b.r.event_id, 1);
    assert_int_equal(arrivals(f, 1), 0);
}

static void test_commit_gap(void **state)
{
    fx_t *f = *state;
    fx_close_sender(f);
    f->gap_ms = 150;
    fx_open_sender(f);
    answer_t a = {0}, b = {0}, c = {0};
    assert_non_null(wh_test(f->wh, f->id[0], 0, on_answer, &a));
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the first commit: at once */
    run_until_called(f, &a.calls);
    assert_int_equal(a.calls, 1);
    uint64_t t0 = uv_hrtime();
    assert_non_null(wh_test(f->wh, f->id[0], 0, on_answer, &b));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_non_null(wh_test(f->wh, f->id[1], 0, on_answer, &c));
    usleep(20000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(b.calls + c.calls, 0); /* within the gap: not stored yet */
    while (!b.calls && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(uv_hrtime() - t0 >= 100000000ull);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1); /* the same commit */
    assert_int_equal(b.r.rc, WH_OK);
    assert_true(b.r.event_id > a.r.event_id);
    assert_true(c.r.event_id > b.r.event_id);
    run_until(f, 2, 1);
    uint64_t ids[2] = {a.r.event_id, b.r.event_id};
    check_received(f, 0, ids, 2);
    check_received(f, 1, &c.r.event_id, 1);
}

static void test_close_stores_pending(void **state)
{
    fx_t *f = *state;
    answer_t q = {0}, w = {0};
    /* closed before the loop ran: stored by wh_close, nothing sent */
    assert_non_null(wh_test(f->wh, f->id[0], 0, on_answer, &q));
    assert_non_null(wh_test(f->wh, f->id[0], 5000, on_answer, &w));
    fx_close_sender(f);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.r.rc, WH_OK);
    assert_true(q.r.event_id > 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.r.rc, WH_ECLOSED);
    /* after a restart both are delivered, in order */
    fx_open_sender(f);
    assert_int_equal(pending_of(f, 0), 2);
    run_until(f, 2, 0);
    pthread_mutex_lock(&f->rcv.mu);
    assert_int_equal(f->rcv.ngot[0], 2);
    assert_int_equal(f->rcv.got[0][0], q.r.event_id);
    assert_true(f->rcv.got[0][1] > q.r.event_id);
    pthread_mutex_unlock(&f->rcv.mu);
}

/* A dead letter replayed through the queue: the answer comes from the
 * callback with the count, and the counters follow. Then a replay still
 * queued when the sender is closed and freed: its callback runs when the
 * queue is closed, on memory still valid (ASan would tell). */
static void test_replay_and_free_with_jobs_queued(void **state)
{
    fx_t *f = *state;
    fx_close_sender(f);
    f->max_attempts = 1;
    fx_open_sender(f);
    char id[40] = "";
    wh_target_spec_t spec = {.url = "http://127.0.0.1:1/refused"};
    assert_int_equal(wh_target_create(f->wh, &spec, on_created, id), 0);
    for (int k = 0; k < 10000 && !id[0]; k++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(id[0] != 0);
    answer_t a = {0};
    assert_non_null(wh_test(f->wh, id, 0, on_answer, &a));
    wh_target_info_t info = {0};
    for (int k = 0; k < 10000 && info.dead == 0; k++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(wh_target_get(f->wh, id, &info), WH_OK);
        if (!info.dead)
            usleep(1000);
    }
    assert_int_equal(info.dead, 1);
    done_t d = {0};
    assert_int_equal(wh_replay(f->wh, "wh_000000000000000000000000", 0, on_replayed, &d),
                     WH_ENOTFOUND);
    assert_int_equal(wh_replay(f->wh, id, 0, on_replayed, &d), WH_OK);
    assert_int_equal(d.calls, 0); /* never before the store has it */
    run_until_called(f, &d.calls);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, WH_OK);
    assert_int_equal(d.n, 1);
    assert_int_equal(wh_target_get(f->wh, id, &info), WH_OK);
    assert_true(info.dead <= 1); /* 0, or 1 again once retried */
    /* closed and freed with a replay queued */
    done_t e = {0};
    assert_int_equal(wh_replay(f->wh, id, 0, on_replayed, &e), WH_OK);
    wh_close(f->wh);
    wh_free(f->wh);
    f->wh = NULL;
    sess_q_close(f->q);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    sess_q_free(f->q);
    f->q = NULL;
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.rc, WH_OK);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->st);
    f->st = NULL;
}

static uint64_t dead_of(fx_t *f, const char *id)
{
    uint64_t c = 0;
    sess_q_drain(f->q); /* the queue's thread is idle: the store is ours */
    assert_int_equal(store_webhook_count(f->st, id, STORE_DELIVERY_DEAD, &c), 0);
    return c;
}

/* PostgreSQL: a dead letter whose record fails (a constraint refuses the
 * state for a while) is still pending: the target reads its queue again
 * once idle and records it then, without a restart. */
static void test_dead_record_retried(void **state)
{
    fx_t *f = *state;
    if (!testdb_is_pg())
        return; /* no way to make one write fail on SQLite here */
    fx_close_sender(f);
    f->max_attempts = 1;
    fx_open_sender(f);
    char id[40] = "";
    wh_target_spec_t spec = {.url = "http://127.0.0.1:1/refused"};
    assert_int_equal(wh_target_create(f->wh, &spec, on_created, id), 0);
    for (int k = 0; k < 10000 && !id[0]; k++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(id[0] != 0);
    assert_int_equal(testdb_pg_exec("ALTER TABLE webhook_deliveries ADD CONSTRAINT no_dead "
                                    "CHECK (state <> 2)",
                                    NULL),
                     0);
    answer_t a = {0};
    assert_non_null(wh_test(f->wh, id, 0, on_answer, &a));
    run_until_called(f, &a.calls);
    assert_int_equal(a.r.rc, WH_OK);
    for (int k = 0; k < 300; k++) { /* its attempt fails, its death is refused */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(dead_of(f, id), 0);
    assert_int_equal(testdb_pg_exec("ALTER TABLE webhook_deliveries DROP CONSTRAINT no_dead", NULL),
                     0);
    uint64_t dead = 0;
    for (int k = 0; k < 100 && !dead; k++) {
        for (int j = 0; j < 50; j++) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
        dead = dead_of(f, id);
    }
    assert_int_equal(dead, 1);
    wh_target_info_t info;
    assert_int_equal(wh_target_get(f->wh, id, &info), WH_OK);
    assert_int_equal(info.dead, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_order_and_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_wait_stores_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_deleted_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_stores_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_and_free_with_jobs_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_record_retried, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
