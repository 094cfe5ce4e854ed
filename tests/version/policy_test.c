/* Tests of the version policy (session/version) against a loopback HTTP
 * server serving sw.js: a configured version is used as is and nothing is
 * fetched; a discovered one becomes current and is stored; a stored one is
 * used (when newer than the built-in one) while sw.js fails, with one
 * warning for a run of failures and retries with backoff; start-up waits
 * for a hanging sw.js only for a bounded time; after a 405 a newer version
 * is found, or not; callbacks can be cancelled; closing leaves no handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/httpc.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "session/version.h"
#include "tests/httpc/testhttpd.h"

/* What the server answers for /sw.js (read on its threads). */
static volatile int sw_status = 200; /* 0: hang */
static volatile uint32_t sw_revision = 1047770001;

static void handler(void *arg, const testhttpd_req_t *req, testhttpd_resp_t *resp)
{
    (void)arg;
    if (strcmp(req->path, "/sw.js")) {
        resp->status = 404;
        return;
    }
    int st = sw_status;
    if (st == 0) {
        resp->hang = 1;
        return;
    }
    char *b = malloc(256);
    snprintf(b, 256,
             "self.__swData=JSON.parse(/*BTDS*/\"{\\\"dynamic_data\\\":{\\\"SiteData\\\":"
             "{\\\"server_revision\\\":%u,\\\"client_revision\\\":%u}}}\");",
             (unsigned)sw_revision, (unsigned)sw_revision);
    resp->status = st;
    resp->body = resp->owned = b;
}

typedef struct {
    uv_loop_t loop;
    httpc_t *http;
    testhttpd_t *srv;
    store_t *store;
    sess_q_t *q; /* the store's queue, threaded: the version is written off the loop */
    char dir[256];
    char wa_url[128];
    int changes;
    char last[WA_VERSION_STRLEN];
    sess_version_source_t last_src;
    int ready_calls;
    int refresh_calls, refresh_newer;
} fx_t;

static void on_change(void *arg, const char *v, sess_version_source_t src)
{
    fx_t *f = arg;
    f->changes++;
    snprintf(f->last, sizeof(f->last), "%s", v);
    f->last_src = src;
}

static void on_ready(void *arg)
{
    ((fx_t *)arg)->ready_calls++;
}

static void on_refresh(void *arg, int newer)
{
    fx_t *f = arg;
    f->refresh_calls++;
    f->refresh_newer = newer;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static void run_until(fx_t *f, const int *flag, int want, unsigned ms)
{
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 5, 5);
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while ((!flag || *flag < want) && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    const char *tmp = getenv("TEST_TMPDIR");
    static int n;
    snprintf(f->dir, sizeof(f->dir), "%s/policy-%d-%d", tmp ? tmp : "/tmp", (int)getpid(), n++);
    char err[256];
    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(store_open(f->dir, &f->store, err, sizeof(err)), 0);
    f->q = sess_q_new(&f->loop, 1);
    assert_non_null(f->q);
    f->http = httpc_new(&f->loop, NULL, err, sizeof(err));
    assert_non_null(f->http);
    f->srv = testhttpd_start(0, NULL, handler, NULL);
    assert_non_null(f->srv);
    snprintf(f->wa_url, sizeof(f->wa_url), "ws://127.0.0.1:%d/ws/chat", testhttpd_port(f->srv));
    sw_status = 200;
    sw_revision = 1047770001;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sess_q_close(f->q);
    httpc_destroy(f->http, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    sess_q_free(f->q);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    testhttpd_stop(f->srv);
    store_close(f->store);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static sess_version_opts_t opts(fx_t *f)
{
    sess_version_opts_t o = {.loop = &f->loop,
                             .http = f->http,
                             .store = f->store,
                             .q = f->q,
                             .wa_url = f->wa_url,
                             .start_wait_ms = 3000,
                             .fetch_timeout_ms = 2000,
                             .retry_min_ms = 100,
                             .retry_max_ms = 400,
                             .on_change = on_change,
                             .arg = f};
    return o;
}

static sess_version_t *make(fx_t *f, const sess_version_opts_t *o)
{
    (void)f;
    sess_version_t *p;
    char err[256];
    assert_int_equal(sess_version_new(o, &p, err, sizeof(err)), 0);
    return p;
}

static void finish(fx_t *f, sess_version_t *p)
{
    sess_q_drain(f->q); /* what was discovered is stored */
    sess_version_close(p);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    sess_version_cancel(p, f); /* still safe after close */
    sess_version_free(p);
}

static void check_current(sess_version_t *p, const char *want, sess_version_source_t src)
{
    sess_version_source_t s;
    wa_version_t v = sess_version_current(p, &s), w;
    assert_int_equal(wa_version_parse(want, &w), 0);
    assert_int_equal(wa_version_cmp(&v, &w), 0);
    assert_int_equal(s, src);
}

static void test_configured(void **state)
{
    fx_t *f = *state;
    sess_version_opts_t o = opts(f);
    o.configured = "2.3000.1000000001";
    o.http = NULL; /* not needed */
    sess_version_t *p = make(f, &o);
    sess_version_start(p);
    assert_int_equal(sess_version_ready(p), 1);
    assert_int_equal(sess_version_wait(p, on_ready, f), 1);
    check_current(p, "2.3000.1000000001", SESS_VERSION_CONFIGURED);
    assert_int_equal(f->changes, 1);
    assert_string_equal(f->last, "2.3000.1000000001");
    wa_version_t refused = sess_version_current(p, NULL);
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), -1); /* a 405 is final */
    run_until(f, NULL, 0, 200);
    assert_int_equal(testhttpd_requests(f->srv), 0); /* nothing fetched at all */
    assert_int_equal(sess_version_stats(p).fetches, 0);
    finish(f, p);
}

static void test_discovered_and_stored(void **state)
{
    fx_t *f = *state;
    sess_version_opts_t o = opts(f);
    sess_version_t *p = make(f, &o);
    sess_version_start(p);
    check_current(p, WA_PAYLOAD_DEFAULT_VERSION, SESS_VERSION_BUILTIN);
    assert_int_equal(sess_version_ready(p), 0);
    assert_int_equal(sess_version_wait(p, on_ready, f), 0);
    assert_int_equal(f->ready_calls, 0); /* never from inside the call */
    run_until(f, &f->ready_calls, 1, 3000);
    assert_int_equal(f->ready_calls, 1);
    check_current(p, "2.3000.1047770001", SESS_VERSION_DISCOVERED);
    assert_int_equal(f->changes, 2);
    assert_string_equal(f->last, "2.3000.1047770001");
    assert_int_equal(f->last_src, SESS_VERSION_DISCOVERED);
    uint8_t *val;
    size_t len;
    sess_q_drain(f->q);
    assert_int_equal(store_meta_get(f->store, "", "wa_version", &val, &len), 0);
    assert_string_equal((char *)val, "2.3000.1047770001");
    free(val);
    finish(f, p);
    /* the next run starts from the stored version, fetch failing */
    sw_status = 500;
    f->changes = 0;
    p = make(f, &o);
    check_current(p, "2.3000.1047770001", SESS_VERSION_STORED);
    sess_version_start(p);
    assert_int_equal(sess_version_wait(p, on_ready, f), 0);
    run_until(f, &f->ready_calls, 2, 3000);
    check_current(p, "2.3000.1047770001", SESS_VERSION_STORED);
    assert_int_equal(sess_version_stats(p).warnings, 1);
    /* retried with backoff (100, 200, 400, 400 ms): still one warning */
    run_until(f, NULL, 0, 1000);
    sess_version_stats_t st = sess_version_stats(p);
    assert_true(st.fetch_failures >= 3 && st.fetch_failures <= 5);
    assert_int_equal(st.warnings, 1);
    /* sw.js answers again: discovered */
    sw_revision = 1047770002;
    sw_status = 200;
    run_until(f, NULL, 0, 600);
    check_current(p, "2.3000.1047770002", SESS_VERSION_DISCOVERED);
    finish(f, p);
}

static void test_stored_older_than_builtin(void **state)
{
    fx_t *f = *state;
    assert_int_equal(store_meta_set(f->store, "", "wa_version", "2.3000.5", 8), 0);
    sess_version_opts_t o = opts(f);
    sess_version_t *p = make(f, &o);
    check_current(p, WA_PAYLOAD_DEFAULT_VERSION, SESS_VERSION_BUILTIN);
    finish(f, p);
    assert_int_equal(store_meta_set(f->store, "", "wa_version", "garbage", 7), 0);
    p = make(f, &o);
    check_current(p, WA_PAYLOAD_DEFAULT_VERSION, SESS_VERSION_BUILTIN);
    finish(f, p);
}

static void test_start_wait_bounded(void **state)
{
    fx_t *f = *state;
    sw_status = 0; /* sw.js never answers */
    sess_version_opts_t o = opts(f);
    o.start_wait_ms = 200;
    o.fetch_timeout_ms = 600;
    sess_version_t *p = make(f, &o);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    sess_version_start(p);
    assert_int_equal(sess_version_wait(p, on_ready, f), 0);
    run_until(f, &f->ready_calls, 1, 3000);
    uint64_t dt = uv_now(&f->loop) - t0;
    assert_int_equal(f->ready_calls, 1);
    assert_true(dt >= 150 && dt < 1000);
    check_current(p, WA_PAYLOAD_DEFAULT_VERSION, SESS_VERSION_BUILTIN);
    assert_int_equal(sess_version_stats(p).warnings, 0);
    run_until(f, NULL, 0, 700); /* the fetch times out: one warning */
    assert_int_equal(sess_version_stats(p).warnings, 1);
    assert_true(sess_version_stats(p).fetch_failures >= 1);
    finish(f, p);
}

static void test_refresh_after_405(void **state)
{
    fx_t *f = *state;
    sess_version_opts_t o = opts(f);
    sess_version_t *p = make(f, &o);
    sess_version_start(p);
    sess_version_wait(p, on_ready, f);
    run_until(f, &f->ready_calls, 1, 3000);
    wa_version_t refused = sess_version_current(p, NULL); /* 2.3000.1047770001 */
    /* nothing newer published: newer = 0 */
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), 0);
    assert_int_equal(f->refresh_calls, 0);
    run_until(f, &f->refresh_calls, 1, 3000);
    assert_int_equal(f->refresh_calls, 1);
    assert_int_equal(f->refresh_newer, 0);
    /* a newer one published: newer = 1, and current */
    sw_revision = 1047770009;
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), 0);
    run_until(f, &f->refresh_calls, 2, 3000);
    assert_int_equal(f->refresh_newer, 1);
    check_current(p, "2.3000.1047770009", SESS_VERSION_DISCOVERED);
    /* refused an older one than current: answered at once */
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), 1);
    /* sw.js down: newer = 0 */
    refused = sess_version_current(p, NULL);
    sw_status = 404;
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), 0);
    run_until(f, &f->refresh_calls, 3, 3000);
    assert_int_equal(f->refresh_newer, 0);
    /* cancelled: no callback */
    sw_status = 200;
    sw_revision = 1047770010;
    assert_int_equal(sess_version_refresh(p, &refused, on_refresh, f), 0);
    sess_version_cancel(p, f);
    run_until(f, NULL, 0, 300);
    assert_int_equal(f->refresh_calls, 3);
    finish(f, p);
}

static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    sw_status = 0;
    sess_version_opts_t o = opts(f);
    sess_version_t *p = make(f, &o);
    sess_version_start(p);
    sess_version_wait(p, on_ready, f);
    run_until(f, NULL, 0, 100);
    finish(f, p); /* the fetch and the waits are dropped, no callback */
    run_until(f, NULL, 0, 100);
    assert_int_equal(f->ready_calls, 0);
    assert_int_equal(httpc_pending(f->http), 0);
}

static void test_bad_options(void **state)
{
    fx_t *f = *state;
    sess_version_t *p;
    char err[256];
    sess_version_opts_t o = opts(f);
    o.configured = "2.3000";
    assert_int_equal(sess_version_new(&o, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "WA_VERSION"));
    o = opts(f);
    o.wa_url = "ws://user@host/ws/chat";
    assert_int_equal(sess_version_new(&o, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "WA_VERSION_URL"));
    o.sw_url = "ftp://x/sw.js"; /* the override is checked too */
    assert_int_equal(sess_version_new(&o, &p, err, sizeof(err)), -1);
    o.sw_url = "http://127.0.0.1:1/sw.js"; /* and replaces the derivation */
    assert_int_equal(sess_version_new(&o, &p, err, sizeof(err)), 0);
    sess_version_free(p);
    o = opts(f);
    o.http = NULL;
    assert_int_equal(sess_version_new(&o, &p, err, sizeof(err)), -1);
}

int main(void)
{
    if (httpc_global_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovered_and_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_older_than_builtin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_wait_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_after_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    httpc_global_cleanup();
    return rc;
}
