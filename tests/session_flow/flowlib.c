/* The session flow tests' harness (see flowlib.h). */
#include "tests/session_flow/flowlib.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

void flow_drain(flow_t *fx)
{
    sess_snapshot_t *snap;
    while (fx->sub && sess_sub_next(fx->sub, &snap) == SESS_SUB_OK) {
        if (fx->nseen < FLOW_MAX_SEEN) {
            int i = fx->nseen++;
            fx->seen[i] = snap->state;
            snprintf(fx->detail[i], sizeof(fx->detail[i]), "%s", snap->detail);
            snprintf(fx->qr[i], sizeof(fx->qr[i]), "%s", snap->qr ? snap->qr->text : "");
            snprintf(fx->code[i], sizeof(fx->code[i]), "%s",
                     snap->link_code ? snap->link_code : "");
            fx->has_options[i] = snap->passkey_options != NULL;
        }
        sess_snapshot_unref(snap);
    }
}

static void on_wake(uv_async_t *a)
{
    flow_drain(a->data);
}

static void notify(void *arg)
{
    flow_t *fx = arg;
    uv_async_send(&fx->wake);
}

static void on_guard(uv_timer_t *t)
{
    flow_t *fx = t->data;
    fx->timed_out = 1;
}

void flow_guard(flow_t *fx, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
}

int flow_wait_for(flow_t *fx, int from, sess_state_t state, const char *detail, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    for (;;) {
        flow_drain(fx);
        for (int i = from; i < fx->nseen; i++)
            if (fx->seen[i] == state && (!detail || !strcmp(fx->detail[i], detail))) {
                uv_timer_stop(&fx->guard);
                return i;
            }
        if (fx->timed_out)
            return -1;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

void flow_run_for(flow_t *fx, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    while (!fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    flow_drain(fx);
}

int flow_run_until(flow_t *fx, int (*cond)(flow_t *fx), unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    int ok;
    while (!(ok = cond(fx)) && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    flow_drain(fx);
    return ok;
}

void flow_settle(flow_t *fx)
{
    sess_q_drain(fx->q);
    flow_drain(fx);
}

void flow_must(flow_t *fx, int idx, const char *what)
{
    if (idx >= 0)
        return;
    for (int i = 0; i < fx->nseen; i++)
        fprintf(stderr, "  seen[%d] %s %s\n", i, sess_state_name(fx->seen[i]), fx->detail[i]);
    fail_msg("did not see %s", what);
}

void flow_start(flow_t *fx)
{
    char err[512];
    assert_int_equal(store_open(fx->dir, &fx->store, err, sizeof(err)), 0);
    const char *th = getenv("FLOW_THREADED_Q");
    fx->q = sess_q_new(&fx->loop, fx->q_threaded || (th && th[0] == '1'));
    assert_non_null(fx->q);
    if (sess_q_threaded(fx->q))
        fprintf(stderr, "flow: the store's queue runs on its thread\n");
    fx->reg = sess_registry_new(&fx->loop, NULL);
    fx->s = sess_registry_add(fx->reg, "default");
    sess_driver_opts_t o = {.fsock = fx->fsock,
                            .store = fx->store,
                            .q = fx->q,
                            .gate = fx->gate,
                            .backoff_min_ms = 50,
                            .backoff_max_ms = 400};
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat",
             fakewa_port(fakewa_wa_transport(fx->srv)));
    o.client.url = url;
    memcpy(o.client.trust.root_pub, fakewa_root_pub(fakewa_wa_transport(fx->srv)), 32);
    wa_payload_parse_version(WA_PAYLOAD_DEFAULT_VERSION, &o.client.version);
    o.client.qr_first_ms = fx->qr_first;
    o.client.qr_next_ms = fx->qr_next;
    o.client.keepalive_ms = fx->ka_defaults ? 0 : fx->ka_ms ? fx->ka_ms : 200;
    o.client.keepalive_timeout_ms = fx->ka_defaults     ? 0
                                    : fx->ka_timeout_ms ? fx->ka_timeout_ms
                                                        : 600;
    o.client.login_timeout_ms = fx->login_timeout_ms;
    o.client.connect_timeout_ms = 3000;
    assert_int_equal(sess_driver_attach(fx->s, &o), 0);
    sess_sub_opts_t so = {.notify = notify, .arg = fx, .max_queue = 1024};
    fx->sub = sess_subscribe(fx->s, &so);
    fx->nseen = 0;
    assert_int_equal(sess_start(fx->s), 0);
}

static void stopped(void *arg)
{
    *(int *)arg = 1;
}

void flow_stop(flow_t *fx)
{
    if (!fx->reg)
        return;
    int done = 0;
    sess_registry_stop(fx->reg, stopped, &done);
    /* the drivers' stops wait for their store writes (on the queue's
     * thread, maybe) and for their connections to be gone */
    flow_guard(fx, 5000);
    while (!done && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    assert_true(done);
    flow_drain(fx);
    sess_unsubscribe(fx->sub);
    fx->sub = NULL;
    sess_registry_close(fx->reg);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_registry_free(fx->reg);
    fx->reg = NULL;
    sess_q_close(fx->q); /* what was queued is stored */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_q_free(fx->q);
    fx->q = NULL;
    store_close(fx->store);
    fx->store = NULL;
}

flow_t *flow_new(const char *tag, const fakewa_wa_opts_t *wo)
{
    flow_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    uv_loop_init(&fx->loop);
    uv_async_init(&fx->loop, &fx->wake, on_wake);
    fx->wake.data = fx;
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    fx->qr_first = wo->qr_first_ms;
    fx->qr_next = wo->qr_next_ms;
    snprintf(fx->dir, sizeof(fx->dir), "%s/%sXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp", tag);
    assert_non_null(mkdtemp(fx->dir));
    char err[256];
    fx->srv = fakewa_wa_new(&fx->loop, wo, err, sizeof(err));
    assert_non_null(fx->srv);
    fx->fsock = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    assert_non_null(fx->fsock);
    return fx;
}

void flow_free(flow_t *fx)
{
    flow_stop(fx);
    fakewa_wa_stop(fx->srv);
    wa_fsock_ctx_destroy(fx->fsock);
    uv_close((uv_handle_t *)&fx->wake, NULL);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    fakewa_wa_free(fx->srv);
    wa_fsock_ctx_free(fx->fsock);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
}

int flow_pair(flow_t *fx)
{
    int q = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000);
    flow_must(fx, q, "QR_READY");
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q], why, sizeof(why)), 0);
    int c = flow_wait_for(fx, q, SESS_CONNECTED, NULL, 5000);
    flow_must(fx, c, "CONNECTED after the scan");
    return c;
}
