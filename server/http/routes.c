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

/* What the route lookup found out about a request, for its handler. */
typedef struct {
    const char *session; /* the session acted on ("default" on the seed routes); NULL on
                          * admin and service routes */
    api_scope_t scope;   /* what the caller's key opens (API_SCOPE_NONE without one) */
    api_principal_t who; /* AUTH_PRINCIPAL rows: the admin or the key's session */
    const char *id;      /* AT_WEBHOOK rows: the webhook id in the path */
} http_call_t;

/* Asks api/ whether the caller may use a route acting on `session` (NULL:
 * an admin route). The key is read from the X-API-Key header only (a key in
 * the URL would end up in histories, logs and Referer headers). Returns
 * API_OK with *scope set, API_ERR_UNAUTHENTICATED, API_ERR_RATE_LIMITED or
 * API_ERR_FORBIDDEN. */
static api_code_t authorize(http_server_t *srv, h2o_req_t *req, const char *session,
                            int key_optional, api_scope_t *scope)
{
    h2o_iovec_t v;
    int has = http_header_value(req, "x-api-key", &v);
    char addr[64];
    http_peer_addr(req, addr, sizeof(addr));
    api_caller_t caller = {addr, has ? v.base : NULL, has ? v.len : 0, 0};
    api_code_t c = api_authorize_for(srv->opts.api, &caller, session, key_optional, scope);
    if (caller.refused)
        metrics_auth_failure(srv->opts.metrics);
    return c;
}

/* --- contract routes --- */

static int route_status(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    api_result_t r = api_status(srv->opts.api, c->session);
    if (r.code != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_STATUS, r.code, r.message, NULL);
        return 0;
    }
    /* the linked account only to callers that could also fetch the QR */
    int with_account = c->scope != API_SCOPE_NONE && !http_wildcard_untrusted(srv, req);
    size_t len = 0;
    const char *body = http_cached_body(
        srv, with_account ? HTTP_BODY_STATUS_ACCOUNT : HTTP_BODY_STATUS, r.snap, &len);
    http_send_bytes(srv, req, METRICS_ROUTE_STATUS, 200, "application/json", body, len);
    api_result_clear(&r);
    return 0;
}

static int route_qr(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    api_result_t r = api_qr(srv->opts.api, c->session);
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

static int route_logout(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    api_result_t r = api_logout(srv->opts.api, c->session);
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

static int route_reconnect(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
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
    rc->wait = api_reconnect(srv->opts.api, c->session, keep, wait_ms, on_reconnected, rc);
    return 0;
}

/* --- the passkey step of linking --- */

/* A request waiting for an api/ callback that cannot be cancelled (a
 * passkey assertion, a session's creation, key rotation or deletion, a
 * webhook's creation, deletion or replay): held by the request's pool and
 * by the callback, freed by the last of them. */
typedef struct {
    http_server_t *srv;
    h2o_req_t *req; /* NULL once the client went away */
    int refs;
} pending_t;

static void pending_unref(pending_t *pr)
{
    if (--pr->refs == 0)
        free(pr);
}

static void pending_dispose(void *p)
{
    pending_t *pr = *(pending_t **)p;
    pr->req = NULL;
    pending_unref(pr);
}

/* A new pending request (two references: the pool's and the callback's);
 * NULL after answering 500 when out of memory. */
static pending_t *pending_new(http_server_t *srv, h2o_req_t *req)
{
    pending_t *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_INTERNAL, NULL, NULL);
        return NULL;
    }
    *pr = (pending_t){srv, req, 2};
    pending_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), pending_dispose);
    *hold = pr;
    return pr;
}

static void on_passkey_done(api_result_t r, void *arg)
{
    pending_t *pr = arg;
    if (pr->req && r.code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200,
                       api_json_status_message(r.snap, r.message, 1, sess_now_ms()));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
    api_result_clear(&r);
    pending_unref(pr);
}

/* GET: the WebAuthn request options of the pending passkey step. POST (body:
 * the assertion as PublicKeyCredential.toJSON() gives it): completes it. */
static int route_passkey(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        api_result_t r = api_passkey_options(srv->opts.api, c->session);
        if (r.code != API_OK)
            http_send_error(srv, req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
        else
            http_send_json(srv, req, METRICS_ROUTE_OTHER, 200, api_json_passkey(r.snap));
        api_result_clear(&r);
        return 0;
    }
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_passkey_response(srv->opts.api, c->session, req->entity.base, req->entity.len,
                             on_passkey_done, pr);
    return 0;
}

/* A request waiting for an api/ call that completes later (a pairing code,
 * a webhook test call); lives in the request's pool. When the client goes
 * away first, the call is cancelled. */
typedef struct {
    http_server_t *srv;
    h2o_req_t *req;
    void *handle; /* what `cancel` takes, once the call started; NULL when done */
    void (*cancel)(void *handle);
    int done; /* the call completed (the answer is sent) */
} waiting_t;

static void waiting_dispose(void *p)
{
    waiting_t *w = p;
    if (!w->done && w->handle) {
        w->done = 1;
        w->cancel(w->handle); /* the client went away */
    }
}

static waiting_t *waiting_new(http_server_t *srv, h2o_req_t *req, void (*cancel)(void *handle))
{
    waiting_t *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), waiting_dispose);
    *w = (waiting_t){.srv = srv, .req = req, .cancel = cancel};
    return w;
}

/* The call started and returned `handle` (it may have completed already). */
static void waiting_started(waiting_t *w, void *handle)
{
    if (!w->done)
        w->handle = handle;
}

/* The call completed: nothing to cancel any more. */
static void waiting_done(waiting_t *w)
{
    w->done = 1;
    w->handle = NULL;
}

static void cancel_pairing_code(void *handle)
{
    api_pairing_code_cancel(handle);
}

static void on_pairing_code(api_result_t r, const char *code, int expires_in, void *arg)
{
    waiting_t *pr = arg;
    waiting_done(pr);
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

static int route_pairing_code(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    char phone[16];
    const char *why = NULL;
    if (api_parse_pairing_code_body(req->entity.base, req->entity.len, phone, &why) != 0) {
        http_send_error(srv, req, METRICS_ROUTE_PAIRING_CODE, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    waiting_t *pr = waiting_new(srv, req, cancel_pairing_code);
    waiting_started(pr, api_pairing_code(srv->opts.api, c->session, phone, on_pairing_code, pr));
    return 0;
}

static int route_events(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    return http_stream_open(srv, req, c->session, 1);
}

/* The WebSocket form of events: an upgrade only. */
static int route_ws(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    const char *client_key;
    if (h2o_is_websocket_handshake(req, &client_key) != 0 || !client_key) {
        http_add_header_str(req, "upgrade", "websocket");
        http_send_error(srv, req, METRICS_ROUTE_EVENTS, API_ERR_BAD_REQUEST,
                        "A WebSocket upgrade is required (GET events serves Server-Sent Events)",
                        NULL);
        return 0;
    }
    return route_events(srv, req, c);
}

/* --- service routes --- */

static int route_healthz(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    http_send_json(srv, req, METRICS_ROUTE_HEALTH, 200, strdup("{\"status\":\"ok\"}"));
    return 0;
}

static int route_readyz(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
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

static int route_metrics(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    metrics_reconnect_waits(srv->opts.metrics, api_reconnect_waits(srv->opts.api));
    api_result_t r = api_status(srv->opts.api, "default");
    char *text = srv->opts.metrics ? metrics_render(srv->opts.metrics, r.snap) : strdup("");
    api_result_clear(&r);
    http_send_body(srv, req, METRICS_ROUTE_METRICS, 200, "text/plain; version=0.0.4", text,
                   text ? strlen(text) : 0);
    return 0;
}

static int route_page(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
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

/* The OpenAPI 3.1 description of this API (api/openapi.json, embedded). */
extern const unsigned char wagw_openapi_json[];
extern const size_t wagw_openapi_json_len;

static int route_openapi(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    http_send_bytes(srv, req, METRICS_ROUTE_OTHER, 200, "application/json",
                    (const char *)wagw_openapi_json, wagw_openapi_json_len);
    return 0;
}

static int route_demo_config(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
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

/* --- sessions --- */

/* GET /api/sessions[?state=QR_READY]: every session's status. */
static int route_sessions_list(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    char state[32] = "";
    h2o_iovec_t q;
    if (http_query_param(req, "state", &q)) {
        if (q.len >= sizeof(state)) {
            http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST,
                            API_BAD_STATE_MESSAGE, NULL);
            return 0;
        }
        memcpy(state, q.base, q.len);
        state[q.len] = 0;
    }
    sess_snapshot_t **v = NULL;
    size_t n = 0;
    api_code_t code = api_session_list(srv->opts.api, state[0] ? state : NULL, &v, &n);
    if (code != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, code,
                        code == API_ERR_BAD_REQUEST ? API_BAD_STATE_MESSAGE : NULL, NULL);
        return 0;
    }
    int with_account = c->scope == API_SCOPE_ADMIN && !http_wildcard_untrusted(srv, req);
    http_send_json(srv, req, METRICS_ROUTE_OTHER, 200,
                   api_json_sessions(v, n, with_account, sess_now_ms()));
    sess_snapshots_free(v, n);
    return 0;
}

/* Answers a session's creation (201) or key rotation (200): the session's
 * status and its key when r.code is API_OK, else the error; then wipes and
 * frees the key. */
static void send_session_key(pending_t *pr, int status, api_result_t r, char *key)
{
    if (pr->req && r.code == API_OK && key)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, status,
                       api_json_session_key(r.snap, r.message, key, sess_now_ms()));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER,
                        r.code != API_OK ? r.code : API_ERR_INTERNAL, r.message, r.snap);
    if (key) {
        explicit_bzero(key, strlen(key));
        free(key);
    }
    api_result_clear(&r);
    pending_unref(pr);
}

static void on_session_created(api_result_t r, char *key, void *arg)
{
    send_session_key(arg, 201, r, key);
}

static void on_session_key(api_result_t r, char *key, void *arg)
{
    send_session_key(arg, 200, r, key);
}

/* POST /api/sessions {"name":"sales"[,"deviceName":"..."]}: 201 with the
 * session's status and its own key (shown once), once it is stored. */
static int route_sessions_create(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    char name[65], device[65];
    const char *why = NULL;
    if (api_parse_session_body(req->entity.base, req->entity.len, name, device, &why) != 0) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_session_create(srv->opts.api, name, device[0] ? device : NULL, on_session_created, pr);
    return 0;
}

/* POST /api/sessions/{name}/key: a new key, the old one stops working;
 * answered once it is stored. */
static int route_session_key(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_session_rotate_key(srv->opts.api, c->session, on_session_key, pr);
    return 0;
}

static void on_session_deleted(api_result_t r, void *arg)
{
    pending_t *pr = arg;
    if (pr->req && r.code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200, api_json_message(r.message));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
    api_result_clear(&r);
    pending_unref(pr);
}

/* DELETE /api/sessions/{name}: unlinks on WhatsApp, wipes, ends its
 * streams; answered when all of that is over. */
static int route_session_delete(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    if (srv->stopping) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_SHUTTING_DOWN, NULL, NULL);
        return 0;
    }
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_session_delete(srv->opts.api, c->session, on_session_deleted, pr);
    return 0;
}

/* GET /api/events: every session's changes (each event names its
 * session). */
static int route_events_all(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    return http_stream_open(srv, req, NULL, 1);
}

/* --- webhooks --- */

static void on_webhook_created(void *arg, api_code_t code, const char *message,
                               const wh_target_info_t *t, const char *secret)
{
    pending_t *pr = arg;
    if (pr->req && code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 201,
                       api_json_webhook(t,
                                        secret ? "Webhook created: keep its secret, it is shown "
                                                 "only once"
                                               : "Webhook created",
                                        secret));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, code, message, NULL);
    pending_unref(pr);
}

/* POST /api/webhooks {"url":...,"secret":...,"events":[...],"session":...}:
 * 201 with the target (its secret only when generated). */
static int route_webhooks_create(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    api_webhook_req_t body;
    const char *why = NULL;
    if (api_parse_webhook_body(req->entity.base, req->entity.len, &body, &why) != 0) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_webhook_create(srv->opts.api, &c->who, &body, on_webhook_created, pr);
    api_webhook_req_clear(&body);
    return 0;
}

/* GET /api/webhooks: the targets the caller may see, with their counters. */
static int route_webhooks_list(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    wh_target_info_t *v = NULL;
    size_t n = 0;
    api_code_t code = api_webhook_list(srv->opts.api, &c->who, &v, &n);
    if (code != API_OK)
        http_send_error(srv, req, METRICS_ROUTE_OTHER, code, NULL, NULL);
    else
        http_send_json(srv, req, METRICS_ROUTE_OTHER, 200, api_json_webhooks(v, n));
    free(v);
    return 0;
}

static void on_webhook_deleted(api_result_t r, void *arg)
{
    pending_t *pr = arg;
    if (pr->req && r.code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200,
                       api_json_message("Webhook deleted"));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, r.code, r.message, NULL);
    api_result_clear(&r);
    pending_unref(pr);
}

/* DELETE /api/webhooks/{id}: the target and its queue; answered once the
 * store has it. */
static int route_webhook_delete(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_webhook_delete(srv->opts.api, &c->who, c->id, on_webhook_deleted, pr);
    return 0;
}

static void on_webhook_replayed(void *arg, api_code_t code, const char *message, uint64_t n)
{
    pending_t *pr = arg;
    if (pr->req && code == API_OK)
        http_send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200, api_json_webhook_replay(n));
    else if (pr->req)
        http_send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, code, message, NULL);
    pending_unref(pr);
}

/* POST /api/webhooks/{id}/replay [{"sinceEventId":N}]: dead letters (and
 * the stored events after N) queued again; answered once the store has
 * them. */
static int route_webhook_replay(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    uint64_t since = 0;
    h2o_iovec_t q;
    if (http_query_param(req, "sinceEventId", &q)) {
        char buf[24];
        char *end = NULL;
        if (q.len == 0 || q.len >= sizeof(buf) || q.base[0] == '-') {
            http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST,
                            "sinceEventId must be a positive integer", NULL);
            return 0;
        }
        memcpy(buf, q.base, q.len);
        buf[q.len] = 0;
        since = strtoull(buf, &end, 10);
        if (!end || *end) {
            http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST,
                            "sinceEventId must be a positive integer", NULL);
            return 0;
        }
    }
    pending_t *pr = pending_new(srv, req);
    if (pr)
        api_webhook_replay(srv->opts.api, &c->who, c->id, since, on_webhook_replayed, pr);
    return 0;
}

static void cancel_webhook_test(void *handle)
{
    api_webhook_test_cancel(handle);
}

static void on_webhook_tested(void *arg, api_code_t code, const char *message,
                              const wh_test_result_t *r)
{
    waiting_t *t = arg;
    waiting_done(t);
    if (code != API_OK)
        http_send_error(t->srv, t->req, METRICS_ROUTE_OTHER, code,
                        code == API_ERR_NOT_FOUND ? "No such webhook" : message, NULL);
    else
        http_send_json(t->srv, t->req, METRICS_ROUTE_OTHER, 200, api_json_webhook_test(r));
}

/* POST /api/webhooks/{id}/test[?waitMs=N]: a "webhook.test" event to that
 * target only, answered with its first attempt's outcome within N ms
 * (default 10 s), or "queued" once stored (N = 0, or the wait ran out). */
static int route_webhook_test(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    unsigned wait_ms = API_WEBHOOK_WAIT_DEFAULT_MS;
    h2o_iovec_t q;
    if (http_query_param(req, "waitMs", &q)) {
        char buf[16];
        char *end = NULL;
        unsigned long v = 0;
        if (q.len && q.len < sizeof(buf)) {
            memcpy(buf, q.base, q.len);
            buf[q.len] = 0;
            v = strtoul(buf, &end, 10);
        }
        if (!end || *end || strspn(buf, "0123456789") != q.len || v > API_WEBHOOK_WAIT_MAX_MS) {
            http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST,
                            "waitMs must be 0 (answer once queued) to 60000", NULL);
            return 0;
        }
        wait_ms = (unsigned)v;
    }
    waiting_t *t = waiting_new(srv, req, cancel_webhook_test);
    waiting_started(t,
                    api_webhook_test(srv->opts.api, &c->who, c->id, wait_ms, on_webhook_tested, t));
    return 0;
}

/* --- the cluster --- */

static void cancel_cluster(void *handle)
{
    api_cluster_status_cancel(handle);
}

static void on_cluster_status(void *arg, api_code_t code, char *json)
{
    waiting_t *w = arg;
    waiting_done(w);
    if (code == API_OK)
        http_send_json(w->srv, w->req, METRICS_ROUTE_OTHER, 200, json);
    else
        http_send_error(
            w->srv, w->req, METRICS_ROUTE_OTHER, code,
            code == API_ERR_UNREACHABLE ? "The cluster's database cannot be read" : NULL, NULL);
}

/* GET /api/cluster (admin): the nodes, their sessions and lease ages. */
static int route_cluster(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    waiting_t *w = waiting_new(srv, req, cancel_cluster);
    waiting_started(w, api_cluster_status(srv->opts.api, on_cluster_status, w));
    return 0;
}

/* POST /api/cluster/rebalance (admin): every node sheds its excess. */
static int route_cluster_rebalance(http_server_t *srv, h2o_req_t *req, const http_call_t *c)
{
    (void)c;
    api_code_t code = api_cluster_rebalance(srv->opts.api);
    if (code == API_OK)
        http_send_json(srv, req, METRICS_ROUTE_OTHER, 202,
                       api_json_message("Rebalancing: nodes above their fair share hand sessions "
                                        "over"));
    else
        http_send_error(srv, req, METRICS_ROUTE_OTHER, code,
                        "This node is not part of a cluster (STORE_URL is SQLite)", NULL);
    return 0;
}

/* --- the route table --- */

typedef int (*route_fn)(http_server_t *srv, h2o_req_t *req, const http_call_t *c);

/* Where a row's path is. */
typedef enum {
    AT_ROOT,    /* an absolute path */
    AT_SESSION, /* below /api/whatsapp and /whatsapp (the session "default") and below
                 * /api/sessions/{name} */
    AT_NAMED,   /* below /api/sessions/{name} only ("" = the session itself) */
    AT_WEBHOOK, /* below /api/webhooks/{id} ("" = the webhook itself) */
} route_at_t;

/* Who may call a row. */
typedef enum {
    AUTH_NONE,      /* anyone (service routes, the page) */
    AUTH_OPTIONAL,  /* anyone; a key shows more (status) */
    AUTH_KEY,       /* a key for the row's session (AT_SESSION, AT_NAMED) or the admin key */
    AUTH_ADMIN,     /* the admin key only, even on a session's path (deleting it) */
    AUTH_PRINCIPAL, /* the admin key or any session's key; the handler decides (webhooks) */
} route_auth_t;

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_DELETE = 8 };

typedef struct {
    const char *path;
    route_at_t at;
    unsigned methods;  /* M_* */
    const char *allow; /* the Allow header of the path (every row of one path has the same) */
    route_auth_t auth;
    int api; /* answers CORS preflights (OPTIONS) */
    metrics_route_t metric;
    route_fn fn;
    int forward; /* cluster: a command (POST, DELETE) the session's node carries out */
} route_t;

#define GET_HEAD (M_GET | M_HEAD)

static const route_t routes[] = {
    {"/status", AT_SESSION, GET_HEAD, "GET, HEAD, OPTIONS", AUTH_OPTIONAL, 1, METRICS_ROUTE_STATUS,
     route_status, 0},
    {"/qr", AT_SESSION, GET_HEAD, "GET, HEAD, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_QR, route_qr, 0},
    {"/reconnect", AT_SESSION, M_POST, "POST, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_RECONNECT,
     route_reconnect, 1},
    {"/logout", AT_SESSION, M_POST, "POST, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_LOGOUT,
     route_logout, 1},
    {"/pairing-code", AT_SESSION, M_POST, "POST, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_PAIRING_CODE,
     route_pairing_code, 1},
    {"/events", AT_SESSION, M_GET, "GET, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_EVENTS, route_events,
     0},
    {"/ws", AT_SESSION, M_GET, "GET, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_EVENTS, route_ws, 0},
    {"/passkey", AT_SESSION, GET_HEAD | M_POST, "GET, HEAD, POST, OPTIONS", AUTH_KEY, 1,
     METRICS_ROUTE_OTHER, route_passkey, 1},
    {"", AT_NAMED, GET_HEAD, "GET, HEAD, DELETE, OPTIONS", AUTH_OPTIONAL, 1, METRICS_ROUTE_STATUS,
     route_status, 0},
    {"", AT_NAMED, M_DELETE, "GET, HEAD, DELETE, OPTIONS", AUTH_ADMIN, 1, METRICS_ROUTE_OTHER,
     route_session_delete, 1},
    {"/key", AT_NAMED, M_POST, "POST, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_OTHER, route_session_key,
     0},
    {"/api/sessions", AT_ROOT, GET_HEAD, "GET, HEAD, POST, OPTIONS", AUTH_KEY, 1,
     METRICS_ROUTE_OTHER, route_sessions_list, 0},
    {"/api/sessions", AT_ROOT, M_POST, "GET, HEAD, POST, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_OTHER,
     route_sessions_create, 0},
    {"/api/events", AT_ROOT, M_GET, "GET, OPTIONS", AUTH_KEY, 1, METRICS_ROUTE_EVENTS,
     route_events_all, 0},
    {"/api/webhooks", AT_ROOT, GET_HEAD, "GET, HEAD, POST, OPTIONS", AUTH_PRINCIPAL, 1,
     METRICS_ROUTE_OTHER, route_webhooks_list, 0},
    {"/api/webhooks", AT_ROOT, M_POST, "GET, HEAD, POST, OPTIONS", AUTH_PRINCIPAL, 1,
     METRICS_ROUTE_OTHER, route_webhooks_create, 0},
    {"", AT_WEBHOOK, M_DELETE, "DELETE, OPTIONS", AUTH_PRINCIPAL, 1, METRICS_ROUTE_OTHER,
     route_webhook_delete, 0},
    {"/test", AT_WEBHOOK, M_POST, "POST, OPTIONS", AUTH_PRINCIPAL, 1, METRICS_ROUTE_OTHER,
     route_webhook_test, 0},
    {"/replay", AT_WEBHOOK, M_POST, "POST, OPTIONS", AUTH_PRINCIPAL, 1, METRICS_ROUTE_OTHER,
     route_webhook_replay, 0},
    {"/api/cluster", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_ADMIN, 1, METRICS_ROUTE_OTHER,
     route_cluster, 0},
    {"/api/cluster/rebalance", AT_ROOT, M_POST, "POST, OPTIONS", AUTH_ADMIN, 1, METRICS_ROUTE_OTHER,
     route_cluster_rebalance, 0},
    {"/healthz", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_HEALTH, route_healthz,
     0},
    {"/readyz", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_HEALTH, route_readyz,
     0},
    {"/metrics", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_METRICS, route_metrics,
     0},
    {"/openapi.json", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_OTHER,
     route_openapi, 0},
    {"/", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_PAGE, route_page, 0},
    {"/index.html", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_PAGE, route_page,
     0},
    {"/demo/config", AT_ROOT, GET_HEAD, "GET, HEAD", AUTH_NONE, 0, METRICS_ROUTE_PAGE,
     route_demo_config, 0},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* The seed's prefixes, acting on the session "default". */
static const char *const seed_prefixes[] = {"/api/whatsapp", "/whatsapp"};

#define SESSIONS_PREFIX "/api/sessions/"
#define WEBHOOKS_PREFIX "/api/webhooks/"

/* What a path names: the rows of one path (the first matching the method,
 * else any, for the Allow header), and the session it acts on. */
typedef struct {
    const route_t *route; /* NULL: no such path */
    int method_ok;        /* route accepts the request's method */
    int bad_name;         /* below /api/sessions/ with a malformed name */
    char session[65];     /* [a-z0-9_-]{1,64} */
    char id[40];          /* below /api/webhooks/: the webhook id ("" when malformed) */
} route_match_t;

static unsigned method_bit(h2o_req_t *req)
{
    static const struct {
        const char *name;
        size_t len;
        unsigned bit;
    } m[] = {{H2O_STRLIT("GET"), M_GET},
             {H2O_STRLIT("HEAD"), M_HEAD},
             {H2O_STRLIT("POST"), M_POST},
             {H2O_STRLIT("DELETE"), M_DELETE}};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (h2o_memis(req->method.base, req->method.len, m[i].name, m[i].len))
            return m[i].bit;
    return 0;
}

/* Looks `rest` up among the rows at `at` (and AT_SESSION rows when `at` is
 * AT_NAMED and rest is not empty). Returns 1 when the path exists. */
static int match_rows(route_match_t *m, route_at_t at, h2o_iovec_t rest, unsigned method)
{
    for (size_t i = 0; i < NROUTES; i++) {
        const route_t *r = &routes[i];
        int here = r->at == at || (at == AT_NAMED && r->at == AT_SESSION);
        if (!here || !h2o_memis(rest.base, rest.len, r->path, strlen(r->path)))
            continue;
        if (!m->route)
            m->route = r;
        if (r->methods & method) {
            m->route = r;
            m->method_ok = 1;
            return 1;
        }
    }
    return m->route != NULL;
}

static void find_route(h2o_iovec_t path, unsigned method, route_match_t *m)
{
    memset(m, 0, sizeof(*m));
    for (size_t p = 0; p < sizeof(seed_prefixes) / sizeof(seed_prefixes[0]); p++) {
        size_t pl = strlen(seed_prefixes[p]);
        if (path.len > pl && !memcmp(path.base, seed_prefixes[p], pl) &&
            match_rows(m, AT_SESSION, h2o_iovec_init(path.base + pl, path.len - pl), method)) {
            snprintf(m->session, sizeof(m->session), "default");
            return;
        }
    }
    size_t sl = strlen(SESSIONS_PREFIX);
    if (path.len >= sl && !memcmp(path.base, SESSIONS_PREFIX, sl)) {
        const char *name = path.base + sl, *end = path.base + path.len;
        const char *slash = memchr(name, '/', (size_t)(end - name));
        const char *ne = slash ? slash : end;
        if (match_rows(m, AT_NAMED, h2o_iovec_init(ne, (size_t)(end - ne)), method)) {
            size_t nl = (size_t)(ne - name);
            if (nl >= sizeof(m->session)) {
                m->bad_name = 1;
                return;
            }
            memcpy(m->session, name, nl);
            m->session[nl] = 0;
            m->bad_name = !api_session_name_ok(m->session);
            return;
        }
    }
    size_t wl = strlen(WEBHOOKS_PREFIX);
    if (path.len > wl && !memcmp(path.base, WEBHOOKS_PREFIX, wl)) {
        const char *id = path.base + wl, *end = path.base + path.len;
        const char *slash = memchr(id, '/', (size_t)(end - id));
        const char *ie = slash ? slash : end;
        if (match_rows(m, AT_WEBHOOK, h2o_iovec_init(ie, (size_t)(end - ie)), method)) {
            size_t il = (size_t)(ie - id);
            if (il < sizeof(m->id)) {
                memcpy(m->id, id, il);
                m->id[il] = 0;
            }
            return;
        }
    }
    match_rows(m, AT_ROOT, path, method);
}

/* OPTIONS on an API path: the Allow header, and the CORS preflight answer
 * for an allowed Origin. */
static void send_options(http_server_t *srv, h2o_req_t *req, const route_t *r)
{
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
}

int http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((http_handler_t *)self)->srv;
    if (http_refuse_browser_request(srv, req))
        return 0;
    unsigned method = method_bit(req);
    route_match_t m;
    find_route(req->path_normalized, method, &m);
    const route_t *r = m.route;
    if (!r) {
        http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    http_add_cors(srv, req, r->auth == AUTH_KEY || r->auth == AUTH_PRINCIPAL);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && r->api) {
        send_options(srv, req, r);
        return 0;
    }
    if (!m.method_ok) {
        http_add_header(req, H2O_TOKEN_ALLOW, r->allow);
        http_send_json(srv, req, r->metric, 405, api_json_error("Method not allowed", NULL));
        return 0;
    }
    if ((r->methods & M_POST) && req->entity.base && req->entity.len > srv->opts.body_limit) {
        http_send_error(srv, req, r->metric, API_ERR_TOO_LARGE, NULL, NULL);
        return 0;
    }
    if (m.bad_name) {
        http_send_error(srv, req, r->metric, API_ERR_BAD_REQUEST, API_BAD_NAME_MESSAGE, NULL);
        return 0;
    }
    http_call_t call = {
        r->at == AT_ROOT || r->at == AT_WEBHOOK ? NULL : m.session, API_SCOPE_NONE, {0}, m.id};
    if (r->auth == AUTH_PRINCIPAL) {
        h2o_iovec_t v;
        int has = http_header_value(req, "x-api-key", &v);
        char addr[64];
        http_peer_addr(req, addr, sizeof(addr));
        api_caller_t caller = {addr, has ? v.base : NULL, has ? v.len : 0, 0};
        api_code_t auth = api_authorize_principal(srv->opts.api, &caller, &call.who);
        if (caller.refused)
            metrics_auth_failure(srv->opts.metrics);
        if (auth != API_OK) {
            if (auth == API_ERR_RATE_LIMITED)
                http_add_header_str(req, "retry-after", "60");
            http_send_error(srv, req, r->metric, auth, NULL, NULL);
            return 0;
        }
        call.scope = call.who.scope;
    } else if (r->auth != AUTH_NONE) {
        api_code_t auth = authorize(srv, req, r->auth == AUTH_ADMIN ? NULL : call.session,
                                    r->auth == AUTH_OPTIONAL, &call.scope);
        if (auth != API_OK) {
            if (auth == API_ERR_RATE_LIMITED)
                http_add_header_str(req, "retry-after", "60");
            http_send_error(srv, req, r->metric, auth, NULL, NULL);
            return 0;
        }
    }
    if (r->forward && (method & (M_POST | M_DELETE)) && call.session) {
        /* cluster: a command for a session another node runs goes there,
         * unless it comes from another node already */
        h2o_iovec_t v;
        if (http_header_value(req, "x-wagw-node-secret", &v)) {
            if (!api_node_secret_ok(srv->opts.api, v.base, v.len)) {
                http_send_error(srv, req, r->metric, API_ERR_FORBIDDEN,
                                "Wrong node secret (X-WAGW-Node-Secret)", NULL);
                return 0;
            }
        } else {
            char owner[256];
            if (api_forward_to(srv->opts.api, call.session, owner, sizeof(owner)))
                return http_forward(srv, req, owner, r->metric);
        }
    }
    return r->fn(srv, req, &call);
}
