/* The HTTP routes: one catch-all h2o handler looks the path up in a route
 * table (the Redis command-table style) so that unknown paths get a JSON
 * 404 and wrong methods a 405 with Allow; it applies the browser guards,
 * the body limit and authorization, and calls the route's handler, which
 * asks api/ and encodes its answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/http/http_internal.h"

/* --- authorization --- */

/* The presented API key: the X-API-Key header only (a key in the URL would
 * end up in histories, logs and Referer headers). Returns API_OK,
 * API_ERR_UNAUTHENTICATED or API_ERR_RATE_LIMITED. */
static api_code_t authorize(http_server_t *srv, h2o_req_t *req)
{
    api_t *api = srv->opts.api;
    if (!api_key_required(api))
        return API_OK;
    h2o_iovec_t v;
    int has = http_header_value(req, "x-api-key", &v);
    char addr[64];
    http_peer_addr(req, addr, sizeof(addr));
    api_code_t c = api_authorize(api, addr, has ? v.base : NULL, has ? v.len : 0);
    if (c != API_OK)
        metrics_auth_failure(srv->opts.metrics);
    return c;
}

/* The optional key of a route that needs none (status): the right key
 * shows the linked account; a wrong one is counted as on every route. */
static int key_ok(http_server_t *srv, h2o_req_t *req)
{
    h2o_iovec_t v;
    if (!api_key_required(srv->opts.api))
        return 1;
    if (!http_header_value(req, "x-api-key", &v))
        return 0;
    return authorize(srv, req) == API_OK;
}

/* --- contract routes --- */

static int route_status(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_status(srv->opts.api, NULL);
    if (r.code != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_STATUS, r.code, r.message, NULL);
        return 0;
    }
    /* the linked account only to callers that could also fetch the QR */
    int with_account = key_ok(srv, req) && !http_wildcard_untrusted(srv, req);
    size_t len = 0;
    const char *body = http_cached_body(
        srv, with_account ? HTTP_BODY_STATUS_ACCOUNT : HTTP_BODY_STATUS, r.snap, &len);
    http_send_bytes(srv, req, METRICS_ROUTE_STATUS, 200, "application/json", body, len);
    api_result_clear(&r);
    return 0;
}

static int route_qr(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_qr(srv->opts.api, NULL);
    if (r.code != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_QR, r.code, r.message, r.snap);
        api_result_clear(&r);
        return 0;
    }
    const api_qr_render_t *img = r.snap->qr->rendered;
    h2o_iovec_t fmt;
    if (http_query_param(req, "format", &fmt) && h2o_memis(fmt.base, fmt.len, H2O_STRLIT("png"))) {
        http_send_bytes(srv, req, METRICS_ROUTE_QR, 200, "image/png", (const char *)img->png,
                        img->png_len);
    } else if (http_query_param(req, "format", &fmt) &&
               h2o_memis(fmt.base, fmt.len, H2O_STRLIT("raw"))) {
        http_send_bytes(srv, req, METRICS_ROUTE_QR, 200, "text/plain; charset=utf-8",
                        r.snap->qr->text, strlen(r.snap->qr->text));
    } else if (http_query_param(req, "format", &fmt) &&
               !h2o_memis(fmt.base, fmt.len, H2O_STRLIT("json"))) {
        http_send_error(srv, req, METRICS_ROUTE_QR, API_ERR_BAD_REQUEST,
                        "Unknown format (use json, png or raw)", NULL);
    } else {
        size_t len = 0;
        const char *body = http_cached_body(srv, HTTP_BODY_QR, r.snap, &len);
        http_send_bytes(srv, req, METRICS_ROUTE_QR, 200, "application/json", body, len);
    }
    api_result_clear(&r);
    return 0;
}

static int route_logout(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_logout(srv->opts.api, NULL);
    if (r.code != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_LOGOUT, r.code, r.message, r.snap);
    } else {
        http_send_json(srv, req, METRICS_ROUTE_LOGOUT, 200,
                       api_json_status_message(r.snap, r.message, 0, sess_now_ms()));
    }
    api_result_clear(&r);
    return 0;
}

/* A reconnect waiting for its QR; lives in the request's pool and, while
 * it waits, in the server's list (a stop answers it). */
struct http_reconnect {
    http_server_t *srv;
    h2o_req_t *req;
    api_wait_t *wait;
    int done, linked;
    http_reconnect_t *prev, *next;
};

static void reconnect_unlink(http_reconnect_t *rc)
{
    if (!rc->linked)
        return;
    rc->linked = 0;
    if (rc->prev)
        rc->prev->next = rc->next;
    else
        rc->srv->reconnects = rc->next;
    if (rc->next)
        rc->next->prev = rc->prev;
}

static void reconnect_dispose(void *p)
{
    http_reconnect_t *rc = p;
    reconnect_unlink(rc);
    if (!rc->done && rc->wait) {
        rc->done = 1;
        api_wait_cancel(rc->wait); /* the client went away */
    }
}

/* The server stops: every waiting reconnect is cancelled and answered 503
 * now, before the server (and the requests) go away. */
void http_reconnects_cancel(http_server_t *srv)
{
    while (srv->reconnects) {
        http_reconnect_t *rc = srv->reconnects;
        reconnect_unlink(rc);
        if (rc->done)
            continue;
        rc->done = 1;
        api_wait_cancel(rc->wait);
        rc->wait = NULL;
        http_send_error(srv, rc->req, METRICS_ROUTE_RECONNECT, API_ERR_SHUTTING_DOWN, NULL, NULL);
    }
}

/* A client that closed its connection while its reconnect waits: h2o does
 * not read an HTTP/1.1 connection while it answers a request, so the end of
 * input is looked for here, and the wait cancelled. */
void http_reconnects_sweep(http_server_t *srv)
{
    http_reconnect_t *rn;
    for (http_reconnect_t *rc = srv->reconnects; rc; rc = rn) {
        rn = rc->next;
        h2o_socket_t *sock = rc->req->conn->callbacks->get_socket
                                 ? rc->req->conn->callbacks->get_socket(rc->req->conn)
                                 : NULL;
        int fd = sock ? h2o_socket_get_fd(sock) : -1;
        char b;
        if (fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0 && !rc->done) {
            reconnect_unlink(rc);
            rc->done = 1;
            api_wait_cancel(rc->wait);
            rc->wait = NULL;
            http_send_error(srv, rc->req, METRICS_ROUTE_RECONNECT, API_ERR_BAD_REQUEST,
                            "the client went away", NULL);
        }
    }
}

static void on_reconnected(api_result_t r, void *arg)
{
    http_reconnect_t *rc = arg;
    reconnect_unlink(rc);
    rc->done = 1;
    rc->wait = NULL;
    if (r.code == API_OK && r.snap && r.snap->state == SESS_QR_READY)
        http_send_json(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, 200,
                       api_json_qr(r.snap, r.message, sess_now_ms()));
    else if (r.code == API_OK) /* keep_credentials and linked: no QR needed */
        http_send_json(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, 200,
                       api_json_status(r.snap, 0, sess_now_ms()));
    else
        http_send_error(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, r.code, r.message, r.snap);
    api_result_clear(&r);
}

static int route_reconnect(http_server_t *srv, h2o_req_t *req)
{
    int keep = 0;
    unsigned wait_ms = 0;
    const char *why = NULL;
    h2o_iovec_t q;
    if (http_query_param(req, "keepCredentials", &q))
        keep = h2o_memis(q.base, q.len, H2O_STRLIT("true")) ||
               h2o_memis(q.base, q.len, H2O_STRLIT("1"));
    if (req->entity.base && req->entity.len &&
        api_parse_reconnect_body(req->entity.base, req->entity.len, &keep, &wait_ms, &why) != 0) {
        http_send_error(srv, req, METRICS_ROUTE_RECONNECT, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    if (srv->stopping) {
        http_send_error(srv, req, METRICS_ROUTE_RECONNECT, API_ERR_SHUTTING_DOWN, NULL, NULL);
        return 0;
    }
    metrics_reconnect(srv->opts.metrics);
    http_reconnect_t *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), reconnect_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->srv = srv;
    rc->req = req;
    rc->linked = 1;
    rc->next = srv->reconnects;
    if (srv->reconnects)
        srv->reconnects->prev = rc;
    srv->reconnects = rc;
    rc->wait = api_reconnect(srv->opts.api, NULL, keep, wait_ms, on_reconnected, rc);
    return 0;
}

/* --- the passkey step of linking --- */

/* A POST passkey waiting for WhatsApp's answer: held by the request's pool
 * and by the api callback, freed by the last of them. */
typedef struct {
    http_server_t *srv;
    h2o_req_t *req; /* NULL once the client went away */
    int refs;
} passkey_req_t;

static void passkey_unref(passkey_req_t *pr)
{
    if (--pr->refs == 0)
        free(pr);
}

static void passkey_dispose(void *p)
{
    passkey_req_t *pr = *(passkey_req_t **)p;
    pr->req = NULL;
    passkey_unref(pr);
}

static void on_passkey_done(api_result_t r, void *arg)
{
    passkey_req_t *pr = arg;
    if (pr->req && r.code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200,
                       api_json_status_message(r.snap, r.message, 1, sess_now_ms()));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
    api_result_clear(&r);
    passkey_unref(pr);
}

/* GET: the WebAuthn request options of the pending passkey step. POST (body:
 * the assertion as PublicKeyCredential.toJSON() gives it): completes it. */
static int route_passkey(http_server_t *srv, h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        api_result_t r = api_passkey_options(srv->opts.api, NULL);
        if (r.code != API_OK)
            http_send_error(srv, req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
        else
            http_send_json(srv, req, METRICS_ROUTE_OTHER, 200, api_json_passkey(r.snap));
        api_result_clear(&r);
        return 0;
    }
    passkey_req_t *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_INTERNAL, NULL, NULL);
        return 0;
    }
    *pr = (passkey_req_t){srv, req, 2};
    passkey_req_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), passkey_dispose);
    *hold = pr;
    api_passkey_response(srv->opts.api, NULL, req->entity.base, req->entity.len, on_passkey_done,
                         pr);
    return 0;
}

/* A pairing-code request waiting for WhatsApp; lives in the request's pool. */
typedef struct {
    http_server_t *srv;
    h2o_req_t *req;
    api_pc_t *pc;
    int done;
} pairing_t;

static void pairing_dispose(void *p)
{
    pairing_t *pr = p;
    if (!pr->done && pr->pc) {
        pr->done = 1;
        api_pairing_code_cancel(pr->pc); /* the client went away */
    }
}

static void on_pairing_code(api_result_t r, const char *code, int expires_in, void *arg)
{
    pairing_t *pr = arg;
    pr->done = 1;
    pr->pc = NULL;
    if (r.code == API_OK) {
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_PAIRING_CODE, 200,
                       api_json_pairing_code(code, expires_in));
    } else {
        if (r.code == API_ERR_RATE_LIMITED)
            http_add_header_str(pr->req, "retry-after", "10");
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_PAIRING_CODE, r.code, r.message, r.snap);
    }
    api_result_clear(&r);
}

static int route_pairing_code(http_server_t *srv, h2o_req_t *req)
{
    char phone[16];
    const char *why = NULL;
    if (api_parse_pairing_code_body(req->entity.base, req->entity.len, phone, &why) != 0) {
        http_send_error(srv, req, METRICS_ROUTE_PAIRING_CODE, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    pairing_t *pr = h2o_mem_alloc_shared(&req->pool, sizeof(*pr), pairing_dispose);
    memset(pr, 0, sizeof(*pr));
    pr->srv = srv;
    pr->req = req;
    api_pc_t *pc = api_pairing_code(srv->opts.api, NULL, phone, on_pairing_code, pr);
    if (!pr->done)
        pr->pc = pc;
    return 0;
}

static int route_events(http_server_t *srv, h2o_req_t *req)
{
    return http_stream_open(srv, req, 1);
}

/* --- service routes --- */

static int route_healthz(http_server_t *srv, h2o_req_t *req)
{
    http_send_json(srv, req, METRICS_ROUTE_HEALTH, 200, strdup("{\"status\":\"ok\"}"));
    return 0;
}

static int route_readyz(http_server_t *srv, h2o_req_t *req)
{
    const char *why = NULL;
    int ready =
        srv->stopping ? 0 : (srv->opts.ready ? srv->opts.ready(srv->opts.ready_arg, &why) : 1);
    if (srv->stopping)
        why = "shutting down";
    char body[256];
    if (ready)
        snprintf(body, sizeof(body), "{\"status\":\"ready\"}");
    else
        snprintf(body, sizeof(body), "{\"status\":\"not ready\",\"reason\":\"%s\"}",
                 why ? why : "unknown");
    http_send_json(srv, req, METRICS_ROUTE_HEALTH, ready ? 200 : 503, strdup(body));
    return 0;
}

static int route_metrics(http_server_t *srv, h2o_req_t *req)
{
    metrics_reconnect_waits(srv->opts.metrics, api_reconnect_waits(srv->opts.api));
    api_result_t r = api_status(srv->opts.api, NULL);
    char *text = srv->opts.metrics ? metrics_render(srv->opts.metrics, r.snap) : strdup("");
    api_result_clear(&r);
    http_send_body(srv, req, METRICS_ROUTE_METRICS, 200, "text/plain; version=0.0.4", text,
                   text ? strlen(text) : 0);
    return 0;
}

static int route_page(http_server_t *srv, h2o_req_t *req)
{
    if (!srv->opts.page_html) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    http_add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/html; charset=utf-8");
    http_add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    /* everything is inline: no external source may load; the page talks to
     * its own origin only (and, in the demo, to the fake server's control
     * API on loopback) */
    http_add_header_str(
        req, "content-security-policy",
        srv->opts.demo_control
            ? "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
              "script-src 'unsafe-inline'; connect-src 'self' http://127.0.0.1:* "
              "http://localhost:*; frame-ancestors 'none'"
            : "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
              "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'");
    http_add_header_str(req, "referrer-policy", "no-referrer");
    http_add_header_str(req, "x-content-type-options", "nosniff");
    http_track_response(srv, req);
    h2o_send_inline(req, (const char *)srv->opts.page_html, srv->opts.page_len);
    http_count(srv, METRICS_ROUTE_PAGE, 200);
    return 0;
}

static int route_demo_config(http_server_t *srv, h2o_req_t *req)
{
    if (!srv->opts.demo_control) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    size_t n = strlen(srv->opts.demo_control) + 32;
    char *body = malloc(n);
    if (body)
        snprintf(body, n, "{\"control\":\"%s\"}", srv->opts.demo_control);
    http_send_json(srv, req, METRICS_ROUTE_PAGE, 200, body);
    return 0;
}

typedef int (*route_fn)(http_server_t *srv, h2o_req_t *req);

typedef struct {
    const char *path; /* below the contract prefixes when `contract`, else absolute */
    int contract;
    const char *allow;
    int post; /* 1: POST route; 0: GET/HEAD route; 2: both */
    int needs_key;
    metrics_route_t metric;
    route_fn fn;
} route_t;

static const route_t routes[] = {
    {"/status", 1, "GET, HEAD, OPTIONS", 0, 0, METRICS_ROUTE_STATUS, route_status},
    {"/qr", 1, "GET, HEAD, OPTIONS", 0, 1, METRICS_ROUTE_QR, route_qr},
    {"/reconnect", 1, "POST, OPTIONS", 1, 1, METRICS_ROUTE_RECONNECT, route_reconnect},
    {"/logout", 1, "POST, OPTIONS", 1, 1, METRICS_ROUTE_LOGOUT, route_logout},
    {"/pairing-code", 1, "POST, OPTIONS", 1, 1, METRICS_ROUTE_PAIRING_CODE, route_pairing_code},
    {"/events", 1, "GET, OPTIONS", 0, 1, METRICS_ROUTE_EVENTS, route_events},
    {"/ws", 1, "GET, OPTIONS", 0, 1, METRICS_ROUTE_EVENTS, route_events},
    {"/passkey", 1, "GET, HEAD, POST, OPTIONS", 2, 1, METRICS_ROUTE_OTHER, route_passkey},
    {"/healthz", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_HEALTH, route_healthz},
    {"/readyz", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_HEALTH, route_readyz},
    {"/metrics", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_METRICS, route_metrics},
    {"/", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_PAGE, route_page},
    {"/index.html", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_PAGE, route_page},
    {"/demo/config", 0, "GET, HEAD", 0, 0, METRICS_ROUTE_PAGE, route_demo_config},
};

static const char *const prefixes[] = {"/api/whatsapp", "/whatsapp"};

static const route_t *find_route(h2o_iovec_t path)
{
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        size_t pl = strlen(prefixes[p]);
        if (path.len > pl && !memcmp(path.base, prefixes[p], pl)) {
            h2o_iovec_t rest = h2o_iovec_init(path.base + pl, path.len - pl);
            for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
                if (routes[i].contract &&
                    h2o_memis(rest.base, rest.len, routes[i].path, strlen(routes[i].path)))
                    return &routes[i];
        }
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!routes[i].contract &&
            h2o_memis(path.base, path.len, routes[i].path, strlen(routes[i].path)))
            return &routes[i];
    return NULL;
}

int http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((http_handler_t *)self)->srv;
    if (http_refuse_browser_request(srv, req))
        return 0;
    const route_t *r = find_route(req->path_normalized);
    if (!r) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    http_add_cors(srv, req, r->needs_key);
    int is_get =
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) && r->fn != route_events);
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && r->contract) {
        guard_origin_t oc = http_origin_class(srv, req);
        http_add_header(req, H2O_TOKEN_ALLOW, r->allow);
        if (oc == GUARD_ORIGIN_LISTED || oc == GUARD_ORIGIN_ANY) {
            http_add_header_str(req, "access-control-allow-methods", r->allow);
            http_add_header_str(req, "access-control-allow-headers", "X-API-Key, Content-Type");
            http_add_header_str(req, "access-control-max-age", "600");
        }
        req->res.status = 204;
        req->res.reason = "No Content";
        http_track_response(srv, req);
        h2o_send_inline(req, "", 0);
        http_count(srv, r->metric, 204);
        return 0;
    }
    if (!(r->post == 2 ? is_get || is_post : r->post ? is_post : is_get)) {
        http_add_header(req, H2O_TOKEN_ALLOW, r->allow);
        http_send_json(srv, req, r->metric, 405, api_json_error("Method not allowed", NULL));
        return 0;
    }
    if (r->post && req->entity.base && req->entity.len > srv->opts.body_limit) {
        http_send_error(srv, req, r->metric, API_ERR_TOO_LARGE, NULL, NULL);
        return 0;
    }
    api_code_t auth = r->needs_key ? authorize(srv, req) : API_OK;
    if (auth != API_OK) {
        if (auth == API_ERR_RATE_LIMITED)
            http_add_header_str(req, "retry-after", "60");
        http_send_error(srv, req, r->metric, auth, NULL, NULL);
        return 0;
    }
    return r->fn(srv, req);
}
