/* Tests of the store's job queue (session/storeq.h): order, done on the
 * loop thread and never inside sess_q_run, cancellation, drain, both
 * modes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <uv.h>

#include "session/storeq.h"

typedef struct {
    int order[64];
    int nwork, ndone, ncancelled;
    pthread_t loop_thread;
    int in_run;   /* set while sess_q_run is on the stack */
    int bad_done; /* a done ran off the loop thread or inside sess_q_run */
    sess_q_t *q;
    int chained;
} rec_t;

typedef struct {
    rec_t *r;
    int n;
} item_t;

static int work(void *arg)
{
    item_t *it = arg;
    it->r->order[it->r->nwork++] = it->n; /* one thread at a time: no race */
    return it->n * 10;
}

static void done(void *arg, int rc)
{
    item_t *it = arg;
    rec_t *r = it->r;
    if (!pthread_equal(pthread_self(), r->loop_thread) || r->in_run)
        r->bad_done = 1;
    if (rc == SESS_Q_CANCELLED)
        r->ncancelled++;
    else
        assert_int_equal(rc, it->n * 10);
    r->ndone++;
    free(it);
}

static void run(rec_t *r, const void *owner, int n)
{
    item_t *it = malloc(sizeof(*it));
    assert_non_null(it);
    *it = (item_t){r, n};
    r->in_run = 1;
    assert_int_equal(sess_q_run(r->q, owner, work, done, it), 0);
    r->in_run = 0;
}

static void on_keep(uv_timer_t *t)
{
    (void)t;
}

static void order_and_done(int threaded)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {.loop_thread = pthread_self()};
    r.q = sess_q_new(&loop, threaded);
    assert_non_null(r.q);
    assert_int_equal(sess_q_threaded(r.q), threaded);
    for (int i = 0; i < 50; i++)
        run(&r, NULL, i);
    assert_int_equal(sess_q_pending(r.q), 50);
    uv_timer_t keep; /* the queue's handle never keeps the loop alive alone */
    uv_timer_init(&loop, &keep);
    uv_timer_start(&keep, on_keep, 60000, 0);
    while (r.ndone < 50) /* the loop runs the done callbacks */
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(r.order[i], i);
    assert_int_equal(r.bad_done, 0);
    assert_int_equal(sess_q_pending(r.q), 0);
    sess_q_close(r.q);
    uv_run(&loop, UV_RUN_DEFAULT);
    sess_q_free(r.q);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_threaded(void **state)
{
    (void)state;
    order_and_done(1);
}

static void test_inline(void **state)
{
    (void)state;
    order_and_done(0);
}

static void cancel_and_drain(int threaded)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {.loop_thread = pthread_self()};
    r.q = sess_q_new(&loop, threaded);
    int a, b;
    for (int i = 0; i < 20; i++)
        run(&r, i % 2 ? (void *)&a : (void *)&b, i);
    sess_q_cancel(r.q, &a); /* every done of a's still runs, cancelled */
    sess_q_drain(r.q);
    assert_int_equal(r.ndone, 20);
    assert_int_equal(r.ncancelled, 10);
    assert_int_equal(r.bad_done, 0);
    assert_int_equal(sess_q_pending(r.q), 0);
    sess_q_close(r.q);
    assert_int_equal(sess_q_run(r.q, NULL, work, done, NULL), -1); /* closed */
    uv_run(&loop, UV_RUN_DEFAULT);
    sess_q_free(r.q);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_cancel_threaded(void **state)
{
    (void)state;
    cancel_and_drain(1);
}

static void test_cancel_inline(void **state)
{
    (void)state;
    cancel_and_drain(0);
}

/* A done that queues another job: drain and close wait for it too. */
static void chain_done(void *arg, int rc);
static int chain_work(void *arg)
{
    (void)arg;
    return 0;
}
static void chain_done(void *arg, int rc)
{
    rec_t *r = arg;
    (void)rc;
    if (++r->chained < 5)
        assert_int_equal(sess_q_run(r->q, NULL, chain_work, chain_done, r), 0);
}

static void test_close_waits_for_chains(void **state)
{
    (void)state;
    for (int threaded = 0; threaded < 2; threaded++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        rec_t r = {.loop_thread = pthread_self()};
        r.q = sess_q_new(&loop, threaded);
        assert_int_equal(sess_q_run(r.q, NULL, chain_work, chain_done, &r), 0);
        sess_q_close(r.q);
        assert_int_equal(r.chained, 5);
        uv_run(&loop, UV_RUN_DEFAULT);
        sess_q_free(r.q);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threaded),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_cancel_threaded),
        cmocka_unit_test(test_cancel_inline),
        cmocka_unit_test(test_close_waits_for_chains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
