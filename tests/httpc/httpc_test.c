/* Tests of common/httpc against a loopback HTTP(S) server (testhttpd):
 * bodies and statuses, the response size bound (with and without a
 * Content-Length), redirects not followed, deadlines, connection refused,
 * POST with headers, TLS verified against the system CAs or a CA file,
 * cancellation, and shutdown with requests in flight leaving no handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/httpc.h"
#include "tests/httpc/testhttpd.h"

static int target_hits;

static void handler(void *arg, const testhttpd_req_t *req, testhttpd_resp_t *resp)
{
    (void)arg;
    if (!strcmp(req->path, "/ok")) {
        resp->body = "hello";
        resp->headers = "Content-Type: text/plain\r\n";
    } else if (!strcmp(req->path, "/empty")) {
        resp->status = 204;
    } else if (!strcmp(req->path, "/big")) {
        resp->body = "0123456789abcdef";
        resp->repeat = 8192; /* 128 KiB with a Content-Length */
    } else if (!strcmp(req->path, "/bigstream")) {
        resp->body = "0123456789abcdef";
        resp->repeat = 8192; /* 128 KiB, length unknown until the end */
        resp->no_length = 1;
    } else if (!strcmp(req->path, "/exact")) {
        resp->body = "0123456789abcdef";
        resp->repeat = 4; /* 64 bytes */
        resp->no_length = 1;
    } else if (!strcmp(req->path, "/redirect")) {
        resp->status = 302;
        resp->headers = "Location: /target\r\n";
        resp->body = "moved";
    } else if (!strcmp(req->path, "/target")) {
        __atomic_add_fetch(&target_hits, 1, __ATOMIC_SEQ_CST);
        resp->body = "target";
    } else if (!strcmp(req->path, "/hang")) {
        resp->hang = 1;
    } else if (!strcmp(req->path, "/fail")) {
        resp->status = 500;
        resp->body = "oops";
    } else if (!strcmp(req->path, "/echo")) {
        const char *h = strcasestr(req->headers, "x-test: ");
        size_t hl = h ? strcspn(h + 8, "\r\n") : 0;
        char *out = malloc(hl + 1 + req->body_len + 16);
        int n = sprintf(out, "%s:%.*s|", req->method, (int)hl, h ? h + 8 : "");
        memcpy(out + n, req->body, req->body_len);
        resp->body = resp->owned = out;
        resp->body_len = (size_t)n + req->body_len;
    } else {
        resp->status = 404;
    }
}

typedef struct {
    uv_loop_t loop;
    httpc_t *c;
    testhttpd_t *srv, *tls;
    char cert[256];
} fx_t;

typedef struct {
    int called;
    httpc_result_t r;
    char body[256];
    size_t body_len;
    char location[256];
    char ctype[64];
} got_t;

static void on_done(void *arg, const httpc_result_t *r)
{
    got_t *g = arg;
    g->called++;
    g->r = *r;
    g->body_len = r->body_len;
    snprintf(g->body, sizeof(g->body), "%.*s", (int)r->body_len, (const char *)r->body);
    snprintf(g->location, sizeof(g->location), "%s", r->location ? r->location : "");
    snprintf(g->ctype, sizeof(g->ctype), "%s", r->content_type ? r->content_type : "");
    g->r.body = NULL;
    g->r.location = g->r.content_type = g->r.message = NULL;
}

static void on_guard(uv_timer_t *t)
{
    (void)t; /* only wakes the loop */
}

/* Runs the loop until *flag is set or `ms` passed. */
static void run_until(fx_t *f, const int *flag, unsigned ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10); /* wakes the loop */
    while ((!flag || !*flag) && uv_now(&f->loop) < end) {
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
    snprintf(f->cert, sizeof(f->cert), "%s/httpc-test-%d.pem", tmp ? tmp : "/tmp", (int)getpid());
    f->srv = testhttpd_start(0, NULL, handler, NULL);
    f->tls = testhttpd_start(1, f->cert, handler, NULL);
    assert_non_null(f->srv);
    assert_non_null(f->tls);
    char err[128];
    f->c = httpc_new(&f->loop, NULL, err, sizeof(err));
    assert_non_null(f->c);
    target_hits = 0;
    *state = f;
    return 0;
}

static void set_destroyed(void *arg)
{
    *(int *)arg = 1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int destroyed = 0;
    httpc_destroy(f->c, set_destroyed, &destroyed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(destroyed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no handle left behind */
    testhttpd_stop(f->srv);
    testhttpd_stop(f->tls);
    unlink(f->cert);
    free(f);
    return 0;
}

static void url(char *buf, size_t n, const char *scheme, const char *host, int port,
                const char *path)
{
    snprintf(buf, n, "%s://%s:%d%s", scheme, host, port, path);
}

static void get(fx_t *f, const char *path, size_t max, unsigned timeout, got_t *g)
{
    char u[256];
    url(u, sizeof(u), "http", "127.0.0.1", testhttpd_port(f->srv), path);
    httpc_request_t r = {
        .url = u, .max_body = max, .timeout_ms = timeout, .done = on_done, .arg = g};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    assert_int_equal(g->called, 0); /* never from inside httpc_request */
    run_until(f, &g->called, 5000);
    assert_int_equal(g->called, 1);
}

static void test_get_ok(void **state)
{
    fx_t *f = *state;
    got_t g = {0};
    get(f, "/ok", 0, 0, &g);
    assert_int_equal(g.r.error, HTTPC_OK);
    assert_int_equal(g.r.status, 200);
    assert_string_equal(g.body, "hello");
    assert_int_equal(g.body_len, 5);
    assert_string_equal(g.ctype, "text/plain");
    got_t e = {0};
    get(f, "/empty", 0, 0, &e);
    assert_int_equal(e.r.error, HTTPC_OK);
    assert_int_equal(e.r.status, 204);
    assert_int_equal(e.body_len, 0);
    got_t h = {0};
    get(f, "/fail", 0, 0, &h); /* an error status is a response, not an error */
    assert_int_equal(h.r.error, HTTPC_OK);
    assert_int_equal(h.r.status, 500);
    assert_string_equal(h.body, "oops");
    assert_int_equal(httpc_pending(f->c), 0);
}

static void test_size_bound(void **state)
{
    fx_t *f = *state;
    got_t a = {0}, b = {0}, c = {0}, d = {0};
    get(f, "/big", 65536, 0, &a); /* refused from its Content-Length */
    assert_int_equal(a.r.error, HTTPC_ETOOBIG);
    get(f, "/bigstream", 65536, 0, &b); /* refused while reading */
    assert_int_equal(b.r.error, HTTPC_ETOOBIG);
    assert_true(b.body_len <= 65536);
    get(f, "/exact", 64, 0, &c); /* exactly the bound is fine */
    assert_int_equal(c.r.error, HTTPC_OK);
    assert_int_equal(c.body_len, 64);
    get(f, "/exact", 63, 0, &d);
    assert_int_equal(d.r.error, HTTPC_ETOOBIG);
}

static void test_redirect_not_followed(void **state)
{
    fx_t *f = *state;
    got_t g = {0};
    get(f, "/redirect", 0, 0, &g);
    assert_int_equal(g.r.error, HTTPC_OK);
    assert_int_equal(g.r.status, 302);
    assert_string_equal(g.body, "moved");
    assert_non_null(strstr(g.location, "/target"));
    assert_int_equal(__atomic_load_n(&target_hits, __ATOMIC_SEQ_CST), 0);
}

static void test_timeout(void **state)
{
    fx_t *f = *state;
    got_t g = {0};
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    get(f, "/hang", 0, 300, &g);
    uint64_t dt = uv_now(&f->loop) - t0;
    assert_int_equal(g.r.error, HTTPC_ETIMEOUT);
    assert_true(dt >= 250 && dt < 3000);
}

static void test_connection_refused(void **state)
{
    fx_t *f = *state;
    /* a port nobody listens on: bind one, note it, close it */
    testhttpd_t *gone = testhttpd_start(0, NULL, handler, NULL);
    int port = testhttpd_port(gone);
    testhttpd_stop(gone);
    char u[128];
    url(u, sizeof(u), "http", "127.0.0.1", port, "/ok");
    got_t g = {0};
    httpc_request_t r = {.url = u, .timeout_ms = 3000, .done = on_done, .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    run_until(f, &g.called, 5000);
    assert_int_equal(g.called, 1);
    assert_int_equal(g.r.error, HTTPC_ECONNECT);
    assert_int_equal(g.r.status, 0);
    assert_true(strlen(httpc_strerror(g.r.error)) > 0);
}

static void test_post_with_headers(void **state)
{
    fx_t *f = *state;
    char u[128];
    url(u, sizeof(u), "http", "127.0.0.1", testhttpd_port(f->srv), "/echo");
    const char *hdrs[] = {"X-Test: webhook-1", "Content-Type: application/json", NULL};
    got_t g = {0};
    httpc_request_t r = {.method = "POST",
                         .url = u,
                         .headers = hdrs,
                         .body = "{\"a\":1}",
                         .body_len = 7,
                         .done = on_done,
                         .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    run_until(f, &g.called, 5000);
    assert_int_equal(g.r.error, HTTPC_OK);
    assert_string_equal(g.body, "POST:webhook-1|{\"a\":1}");
}

static void test_tls(void **state)
{
    fx_t *f = *state;
    char u[128];
    url(u, sizeof(u), "https", "localhost", testhttpd_port(f->tls), "/ok");
    /* the system CAs do not know our self-signed certificate */
    got_t g = {0};
    httpc_request_t r = {.url = u, .timeout_ms = 5000, .done = on_done, .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    run_until(f, &g.called, 6000);
    assert_int_equal(g.r.error, HTTPC_ETLS);
    /* a client trusting it as its CA file */
    char err[128];
    httpc_opts_t o = {.ca_file = f->cert, .user_agent = "test"};
    httpc_t *c2 = httpc_new(&f->loop, &o, err, sizeof(err));
    assert_non_null(c2);
    got_t h = {0}, i = {0};
    r.arg = &h;
    assert_int_equal(httpc_request(c2, &r, NULL), 0);
    run_until(f, &h.called, 6000);
    assert_int_equal(h.r.error, HTTPC_OK);
    assert_string_equal(h.body, "hello");
    /* by IP address too (the certificate names 127.0.0.1) */
    url(u, sizeof(u), "https", "127.0.0.1", testhttpd_port(f->tls), "/ok");
    r.arg = &i;
    assert_int_equal(httpc_request(c2, &r, NULL), 0);
    run_until(f, &i.called, 6000);
    assert_int_equal(i.r.error, HTTPC_OK);
    httpc_destroy(c2, NULL, NULL);
    /* an unreadable CA file is refused at creation */
    o.ca_file = "/nonexistent/ca.pem";
    assert_null(httpc_new(&f->loop, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "CA file"));
}

static void test_invalid(void **state)
{
    fx_t *f = *state;
    got_t g = {0};
    httpc_request_t r = {.url = "ftp://127.0.0.1/x", .done = on_done, .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, NULL), HTTPC_EINVAL);
    r.url = "http://127.0.0.1/x";
    r.method = "PUT";
    assert_int_equal(httpc_request(f->c, &r, NULL), HTTPC_EINVAL);
    r.method = NULL;
    r.done = NULL;
    assert_int_equal(httpc_request(f->c, &r, NULL), HTTPC_EINVAL);
    assert_int_equal(httpc_request(f->c, NULL, NULL), HTTPC_EINVAL);
    run_until(f, NULL, 50);
    assert_int_equal(g.called, 0);
}

static void test_cancel(void **state)
{
    fx_t *f = *state;
    char u[128];
    url(u, sizeof(u), "http", "127.0.0.1", testhttpd_port(f->srv), "/hang");
    got_t g = {0};
    httpc_req_t *rq;
    httpc_request_t r = {.url = u, .done = on_done, .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, &rq), 0);
    assert_non_null(rq);
    run_until(f, NULL, 200); /* connected and waiting */
    assert_int_equal(httpc_pending(f->c), 1);
    httpc_cancel(rq);
    assert_int_equal(httpc_pending(f->c), 0);
    run_until(f, NULL, 200);
    assert_int_equal(g.called, 0);
}

/* A callback that starts the next request, then destroys the client from
 * inside a callback. */
typedef struct {
    fx_t *f;
    char url[128];
    int step, destroyed;
} chain_t;

static void on_chain(void *arg, const httpc_result_t *res)
{
    chain_t *ch = arg;
    assert_int_equal(res->error, HTTPC_OK);
    if (++ch->step < 3) {
        httpc_request_t r = {.url = ch->url, .done = on_chain, .arg = ch};
        assert_int_equal(httpc_request(ch->f->c, &r, NULL), 0);
    } else {
        httpc_destroy(ch->f->c, set_destroyed, &ch->destroyed);
        ch->f->c = NULL;
    }
}

static void test_reentrant_callbacks(void **state)
{
    fx_t *f = *state;
    chain_t ch = {.f = f};
    url(ch.url, sizeof(ch.url), "http", "127.0.0.1", testhttpd_port(f->srv), "/ok");
    httpc_request_t r = {.url = ch.url, .done = on_chain, .arg = &ch};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    run_until(f, &ch.destroyed, 5000);
    assert_int_equal(ch.step, 3);
    assert_int_equal(ch.destroyed, 1);
    char err[128];
    f->c = httpc_new(&f->loop, NULL, err, sizeof(err)); /* for teardown */
}

static void test_destroy_in_flight(void **state)
{
    fx_t *f = *state;
    char u[128];
    url(u, sizeof(u), "http", "127.0.0.1", testhttpd_port(f->srv), "/hang");
    got_t g = {0};
    httpc_request_t r = {.url = u, .done = on_done, .arg = &g};
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    assert_int_equal(httpc_request(f->c, &r, NULL), 0);
    run_until(f, NULL, 200);
    assert_int_equal(httpc_pending(f->c), 2);
    /* teardown destroys with both in flight: no callback, no handle left */
}

int main(void)
{
    if (httpc_global_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_with_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_flight, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    httpc_global_cleanup();
    return rc;
}
