/* Tests of the connection gate: FIFO order, the rate (tokens per second
 * with one second's burst at most), leaving the queue, no limit at 0, and
 * tickets entering from inside a `go`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/gate.h"

#define N 60

typedef struct {
    uv_loop_t loop;
    sess_gate_t *g;
    sess_gate_ticket_t t[N];
    int order[N], norder;
    uint64_t at[N];
} fx_t;

static fx_t *cur;

static void go(void *arg)
{
    int i = (int)(intptr_t)arg;
    cur->order[cur->norder] = i;
    cur->at[cur->norder++] = uv_now(&cur->loop);
}

static void on_stop_timer(uv_timer_t *t)
{
    uv_timer_stop(t);
}

static void run_ms(fx_t *fx, uint64_t ms)
{
    uv_update_time(&fx->loop);
    uint64_t end = uv_now(&fx->loop) + ms;
    uv_timer_t t;
    uv_timer_init(&fx->loop, &t);
    uv_timer_start(&t, on_stop_timer, ms, 0);
    while (uv_now(&fx->loop) < end && uv_run(&fx->loop, UV_RUN_ONCE))
        ;
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static fx_t *make(unsigned rate)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    fx->g = sess_gate_new(&fx->loop, rate);
    for (int i = 0; i < N; i++)
        sess_gate_ticket_init(&fx->t[i], go, (void *)(intptr_t)i);
    cur = fx;
    return fx;
}

static void destroy(fx_t *fx)
{
    sess_gate_close(fx->g);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sess_gate_free(fx->g);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
}

static void test_rate_and_order(void **state)
{
    (void)state;
    fx_t *fx = make(20);
    for (int i = 0; i < N; i++)
        sess_gate_enter(fx->g, &fx->t[i]);
    sess_gate_enter(fx->g, &fx->t[5]); /* already queued: keeps its place */
    sess_gate_leave(fx->g, &fx->t[7]);
    run_ms(fx, 1000);
    /* at most 20 in the first second (the first at once), jitter only
     * stretching the intervals */
    assert_true(fx->norder >= 15 && fx->norder <= 20);
    run_ms(fx, 4000);
    assert_int_equal(fx->norder, N - 1);
    assert_int_equal(sess_gate_waiting(fx->g), 0);
    for (int k = 0, i = 0; k < fx->norder; k++, i++) {
        if (i == 7)
            i++;
        assert_int_equal(fx->order[k], i); /* first come, first served */
    }
    /* never more than rate in any one-second window, the start included */
    for (int k = 0; k < fx->norder; k++) {
        int in = 0;
        for (int j = k; j < fx->norder && fx->at[j] < fx->at[k] + 1000; j++)
            in++;
        assert_true(in <= 20);
    }
    destroy(fx);
}

static void test_no_limit(void **state)
{
    (void)state;
    fx_t *fx = make(0);
    for (int i = 0; i < N; i++)
        sess_gate_enter(fx->g, &fx->t[i]);
    assert_int_equal(fx->norder, N); /* at once, inside enter */
    assert_int_equal(sess_gate_passed(fx->g), N);
    destroy(fx);
}

static void reenter(void *arg)
{
    fx_t *fx = cur;
    go(arg);
    int i = (int)(intptr_t)arg;
    if (i + 1 < N)
        sess_gate_enter(fx->g, &fx->t[i + 1]);
}

static void test_enter_from_go(void **state)
{
    (void)state;
    fx_t *fx = make(0);
    for (int i = 0; i < N; i++)
        sess_gate_ticket_init(&fx->t[i], reenter, (void *)(intptr_t)i);
    sess_gate_enter(fx->g, &fx->t[0]);
    assert_int_equal(fx->norder, N); /* a chain, without recursion */
    destroy(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_and_order),
        cmocka_unit_test(test_no_limit),
        cmocka_unit_test(test_enter_from_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
