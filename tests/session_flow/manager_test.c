/* Integration tests of the session manager against the fake WhatsApp
 * server: several sessions linked at once (each its own companion device),
 * restored together after a restart without a QR, one deleted (the fake
 * server sees that device removed, the others unaffected), a deletion while
 * WhatsApp is out of reach (the removal sent later), and the limits (names,
 * MAX_SESSIONS, duplicates, "default", creations under way), and a stop
 * that waits for a creation and a key rotation under way. Each runs
 * with the store's job queue inline (SQLite) and on a thread (as with
 * PostgreSQL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/manager.h"
#include "session/session.h"
#include "session/store/store.h"
#include "tests/fakewa/whatsapp.h"

typedef struct {
    uv_loop_t loop;
    fakewa_wa_t *srv;
    store_t *store;
    sess_registry_t *reg;
    sess_mgr_t *mgr;
    sess_q_t *q;
    uv_timer_t guard;
    int timed_out;
    char dir[512];
    char url[128];
    size_t max_sessions;
    int threaded; /* the store's job queue on a thread of its own */
} fx_t;

static void on_guard(uv_timer_t *t)
{
    ((fx_t *)t->data)->timed_out = 1;
}

/* Runs the loop until cond(fx, arg) holds or ms pass; returns cond's
 * last value. */
static int run_until(fx_t *fx, int (*cond)(fx_t *, const void *), const void *arg, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    int ok;
    while (!(ok = cond(fx, arg)) && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    return ok;
}

static sess_state_t state_of(fx_t *fx, const char *name)
{
    sess_t *s = sess_registry_get(fx->reg, name);
    if (!s)
        return (sess_state_t)-1;
    sess_snapshot_t *snap = sess_current(s);
    sess_state_t st = snap->state;
    sess_snapshot_unref(snap);
    sess_unref(s);
    return st;
}

typedef struct {
    const char *const *names;
    size_t n;
    sess_state_t st;
} want_t;

static int all_in(fx_t *fx, const void *arg)
{
    const want_t *w = arg;
    for (size_t i = 0; i < w->n; i++)
        if (state_of(fx, w->names[i]) != w->st)
            return 0;
    return 1;
}

/* The end of an asynchronous manager call: its rc (1 until it ran). */
typedef struct {
    int ran, rc;
    int has_s;
} call_t;

static void on_created(void *arg, int rc, sess_t *s)
{
    call_t *c = arg;
    c->ran = 1;
    c->rc = rc;
    c->has_s = s != NULL;
}

static void on_done(void *arg, int rc)
{
    call_t *c = arg;
    c->ran = 1;
    c->rc = rc;
}

static int call_ran(fx_t *fx, const void *arg)
{
    (void)fx;
    return ((const call_t *)arg)->ran;
}

/* sess_mgr_create to its end: its rc (done never runs inside the call). */
static int create(fx_t *fx, const char *name, const char *device)
{
    call_t c = {0};
    int rc = sess_mgr_create(fx->mgr, name, device, NULL, on_created, &c);
    if (rc)
        return rc;
    assert_false(c.ran);
    assert_true(run_until(fx, call_ran, &c, 5000));
    assert_true(c.rc != 0 || c.has_s);
    return c.rc;
}

/* sess_mgr_set_key to its end. */
static int set_key(fx_t *fx, const char *name, const uint8_t h[32])
{
    call_t c = {0};
    int rc = sess_mgr_set_key(fx->mgr, name, h, on_done, &c);
    if (rc)
        return rc;
    assert_false(c.ran);
    assert_true(run_until(fx, call_ran, &c, 5000));
    return c.rc;
}

static void start(fx_t *fx)
{
    char err[512];
    assert_int_equal(store_open(fx->dir, &fx->store, err, sizeof(err)), 0);
    fx->reg = sess_registry_new(&fx->loop, NULL);
    fx->q = sess_q_new(&fx->loop, fx->threaded);
    assert_non_null(fx->q);
    sess_mgr_opts_t o = {.loop = &fx->loop,
                         .reg = fx->reg,
                         .store = fx->store,
                         .q = fx->q,
                         .wa_url = fx->url,
                         .root_key = fakewa_root_pub(fakewa_wa_transport(fx->srv)),
                         .qr_first_ms = 20000,
                         .qr_next_ms = 20000,
                         .keepalive_ms = 500,
                         .keepalive_timeout_ms = 1000,
                         .connect_rate = 50,
                         .max_sessions = fx->max_sessions,
                         .backoff_min_ms = 50,
                         .backoff_max_ms = 400};
    assert_int_equal(sess_mgr_new(&o, &fx->mgr, err, sizeof(err)), 0);
    assert_true(sess_mgr_restore(fx->mgr) >= 1);
}

static void stopped(void *arg)
{
    *(int *)arg = 1;
}

static void stop(fx_t *fx)
{
    int done = 0;
    sess_mgr_stop(fx->mgr, stopped, &done);
    /* as main does: the loop runs until every session has stopped */
    for (int i = 0; i < 200 && !done; i++)
        uv_run(&fx->loop, UV_RUN_ONCE);
    sess_registry_close(fx->reg);
    sess_mgr_close(fx->mgr);
    sess_q_close(fx->q);
    for (int i = 0; i < 50; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_mgr_free(fx->mgr);
    sess_registry_free(fx->reg); /* its drivers cancel their jobs: before the queue goes */
    sess_q_free(fx->q);
    fx->q = NULL;
    store_close(fx->store);
    fx->mgr = NULL;
    fx->reg = NULL;
    fx->store = NULL;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    snprintf(fx->dir, sizeof(fx->dir), "%s/mgrXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    char err[256];
    fakewa_wa_opts_t wo = {.qr_first_ms = 20000, .qr_next_ms = 20000};
    fx->srv = fakewa_wa_new(&fx->loop, &wo, err, sizeof(err));
    assert_non_null(fx->srv);
    snprintf(fx->url, sizeof(fx->url), "ws://127.0.0.1:%d/ws/chat",
             fakewa_port(fakewa_wa_transport(fx->srv)));
    fx->max_sessions = 8;
    *state = fx;
    return 0;
}

/* The same with the store's job queue on a thread (as on PostgreSQL). */
static int setup_threaded(void **state)
{
    setup(state);
    ((fx_t *)*state)->threaded = 1;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    if (fx->mgr)
        stop(fx);
    fakewa_wa_stop(fx->srv);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    fakewa_wa_free(fx->srv);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Scans the QR of session `name`. */
static void scan(fx_t *fx, const char *name)
{
    sess_t *s = sess_registry_get(fx->reg, name);
    assert_non_null(s);
    sess_snapshot_t *snap = sess_current(s);
    assert_non_null(snap->qr);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, snap->qr->text, why, sizeof(why)), 0);
    sess_snapshot_unref(snap);
    sess_unref(s);
}

static int logouts_at_least(fx_t *fx, const void *arg)
{
    return fakewa_wa_stats(fx->srv)->logouts >= *(const int *)arg;
}

static void test_three_linked_restored_one_deleted(void **state)
{
    fx_t *fx = *state;
    start(fx);
    static const char *const names[] = {"sales", "support", "ops"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(create(fx, names[i], i == 0 ? "Sales desk" : NULL), 0);
    want_t qr = {names, 3, SESS_QR_READY};
    assert_true(run_until(fx, all_in, &qr, 5000));
    for (int i = 0; i < 3; i++)
        scan(fx, names[i]);
    want_t conn = {names, 3, SESS_CONNECTED};
    assert_true(run_until(fx, all_in, &conn, 5000));
    assert_int_equal(fakewa_wa_stats(fx->srv)->paired, 3);
    assert_int_equal(sess_mgr_count(fx->mgr), 4); /* and default */

    /* a restart: all three logged in again, no QR */
    stop(fx);
    int regs = fakewa_wa_stats(fx->srv)->registrations;
    start(fx);
    assert_true(run_until(fx, all_in, &conn, 5000));
    /* only "default" (never linked) registered again */
    assert_int_equal(fakewa_wa_stats(fx->srv)->registrations, regs + 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->double_live, 0);

    /* delete one: WhatsApp is told, the others stay */
    int done = 0;
    assert_int_equal(sess_mgr_delete(fx->mgr, "support", NULL, NULL), 0);
    assert_int_equal(sess_mgr_delete(fx->mgr, "support", NULL, NULL), SESS_MGR_EBUSY);
    int one = 1;
    assert_true(run_until(fx, logouts_at_least, &one, 5000));
    run_until(fx, all_in, &(want_t){names + 1, 1, (sess_state_t)-1}, 3000);
    assert_null(sess_registry_get(fx->reg, "support"));
    static const char *const left[] = {"sales", "ops"};
    assert_true(all_in(fx, &(want_t){left, 2, SESS_CONNECTED}));
    char *js = fakewa_wa_state_json(fx->srv);
    assert_int_equal(fakewa_wa_stats(fx->srv)->paired, 3);
    int devices = 0;
    for (const char *p = strstr(js, "\"devices\":["); p && (p = strstr(p, "@s.whatsapp.net")); p++)
        devices++;
    assert_int_equal(devices, 2);
    free(js);
    store_session_t row;
    assert_int_equal(store_session_get(fx->store, "support", &row), STORE_ENOTFOUND);
    assert_int_equal(store_session_get(fx->store, "sales", &row), 0);
    assert_string_equal(row.device_name, "Sales desk");
    (void)done;
}

static int no_removals(fx_t *fx, const void *arg)
{
    (void)arg;
    store_removal_t rm[4];
    size_t n = 1;
    store_removals_list(fx->store, rm, 4, &n);
    return n == 0;
}

static void test_delete_while_offline(void **state)
{
    fx_t *fx = *state;
    start(fx);
    static const char *const names[] = {"temp"};
    assert_int_equal(create(fx, "temp", NULL), 0);
    assert_true(run_until(fx, all_in, &(want_t){names, 1, SESS_QR_READY}, 5000));
    scan(fx, "temp");
    assert_true(run_until(fx, all_in, &(want_t){names, 1, SESS_CONNECTED}, 5000));
    fakewa_wa_fault(fx->srv, FAKEWA_OFFLINE);
    assert_true(run_until(fx, all_in, &(want_t){names, 1, SESS_DISCONNECTED}, 5000));
    assert_int_equal(sess_mgr_delete(fx->mgr, "temp", NULL, NULL), 0);
    run_until(fx, all_in, &(want_t){names, 1, (sess_state_t)-1}, 3000);
    assert_null(sess_registry_get(fx->reg, "temp"));
    store_removal_t rm[4];
    size_t n = 0;
    assert_int_equal(store_removals_list(fx->store, rm, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->logouts, 0);
    fakewa_wa_fault(fx->srv, FAKEWA_ONLINE);
    int one = 1;
    assert_true(run_until(fx, logouts_at_least, &one, 8000));
    assert_true(run_until(fx, no_removals, NULL, 3000)); /* forgotten once WhatsApp has it */
    assert_int_equal(fakewa_wa_stats(fx->srv)->logouts, 1);
}

static void test_limits(void **state)
{
    fx_t *fx = *state;
    fx->max_sessions = 3;
    start(fx);
    assert_int_equal(sess_mgr_create(fx->mgr, "Bad", NULL, NULL, NULL, NULL), SESS_MGR_ENAME);
    assert_int_equal(sess_mgr_create(fx->mgr, "", NULL, NULL, NULL, NULL), SESS_MGR_ENAME);
    assert_int_equal(sess_mgr_create(fx->mgr, "ok", "bad\nname", NULL, NULL, NULL),
                     SESS_MGR_EDEVICE);
    /* creations under way count: the same name twice, and the limit */
    call_t ca = {0}, cb = {0};
    assert_int_equal(sess_mgr_create(fx->mgr, "a", NULL, NULL, on_created, &ca), 0);
    assert_int_equal(sess_mgr_create(fx->mgr, "a", NULL, NULL, on_created, NULL), SESS_MGR_EEXISTS);
    assert_int_equal(sess_mgr_create(fx->mgr, "default", NULL, NULL, NULL, NULL), SESS_MGR_EEXISTS);
    assert_int_equal(sess_mgr_create(fx->mgr, "b", NULL, NULL, on_created, &cb), 0);
    assert_int_equal(sess_mgr_create(fx->mgr, "c", NULL, NULL, NULL, NULL), SESS_MGR_ELIMIT);
    assert_true(run_until(fx, call_ran, &ca, 5000));
    assert_true(run_until(fx, call_ran, &cb, 5000));
    assert_int_equal(ca.rc, 0);
    assert_int_equal(cb.rc, 0);
    assert_int_equal(create(fx, "a", NULL), SESS_MGR_EEXISTS);
    assert_int_equal(create(fx, "c", NULL), SESS_MGR_ELIMIT);
    assert_int_equal(sess_mgr_delete(fx->mgr, "default", NULL, NULL), SESS_MGR_EDEFAULT);
    assert_int_equal(sess_mgr_delete(fx->mgr, "nope", NULL, NULL), SESS_MGR_ENOTFOUND);
    uint8_t h[32];
    memset(h, 5, 32);
    assert_int_equal(set_key(fx, "a", h), 0);
    assert_int_equal(set_key(fx, "zz", h), SESS_MGR_ENOTFOUND);
    sess_t *a = sess_registry_get(fx->reg, "a");
    assert_true(sess_key_matches(a, h));
    sess_unref(a);
    /* the key survives a restart */
    stop(fx);
    start(fx);
    a = sess_registry_get(fx->reg, "a");
    assert_non_null(a);
    assert_true(sess_key_matches(a, h));
    sess_unref(a);
    assert_int_equal(sess_mgr_count(fx->mgr), 3);
}

/* A creation and a key rotation under way when the manager stops: both
 * end (their callbacks run) before the stop does; the creation is not
 * kept, the rotation is. */
static void test_stop_waits_for_calls(void **state)
{
    fx_t *fx = *state;
    start(fx);
    uint8_t h[32];
    memset(h, 7, 32);
    call_t made = {0}, keyed = {0};
    assert_int_equal(sess_mgr_create(fx->mgr, "late", NULL, NULL, on_created, &made), 0);
    assert_int_equal(sess_mgr_set_key(fx->mgr, "default", h, on_done, &keyed), 0);
    int stopped_ = 0;
    sess_mgr_stop(fx->mgr, stopped, &stopped_);
    for (int i = 0; i < 200 && !stopped_; i++)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(stopped_);
    assert_true(made.ran);
    assert_int_equal(made.rc, SESS_MGR_ESTORE);
    assert_false(made.has_s);
    assert_true(keyed.ran);
    assert_int_equal(keyed.rc, 0);
    /* as stop() does from here */
    sess_registry_close(fx->reg);
    sess_mgr_close(fx->mgr);
    sess_q_close(fx->q);
    for (int i = 0; i < 50; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_mgr_free(fx->mgr);
    sess_registry_free(fx->reg);
    sess_q_free(fx->q);
    store_close(fx->store);
    fx->mgr = NULL;
    fx->q = NULL;
    start(fx);
    assert_null(sess_registry_get(fx->reg, "late"));
    sess_t *d = sess_registry_get(fx->reg, "default");
    assert_non_null(d);
    assert_true(sess_key_matches(d, h));
    sess_unref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_linked_restored_one_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_while_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_linked_restored_one_deleted, setup_threaded,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_while_offline, setup_threaded, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup_threaded, teardown),
        cmocka_unit_test_setup_teardown(test_stop_waits_for_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_waits_for_calls, setup_threaded, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
