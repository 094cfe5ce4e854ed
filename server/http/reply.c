/* HTTP responses: status lines, headers, JSON bodies and errors, the
 * per-snapshot body cache, the response tracking the stall sweep reads,
 * reading a request (headers, query, peer), and the browser guards and CORS
 * headers. Nothing here decides what an answer says: api/ does. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/http/http_internal.h"

/* A response handed to h2o and not yet taken whole by the client; lives in
 * the request's pool, whose disposal (the response is done) unlinks it. */
struct http_resp_track {
    http_server_t *srv; /* NULL once unlinked */
    h2o_req_t *req;
    uint64_t since;
    int closing;
    http_resp_track_t *prev, *next;
};

/* --- responses --- */

static const char *reason_for(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    }
    return "Unknown";
}

void http_add_header(h2o_req_t *req, const h2o_token_t *tok, const char *v)
{
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, v, strlen(v));
}

void http_add_header_str(h2o_req_t *req, const char *name, const char *v)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v, strlen(v));
}

void http_count(http_server_t *srv, metrics_route_t route, int status)
{
    metrics_request(srv->opts.metrics, route, status);
}

/* --- limits: connections that stop taking what they asked for --- */

/* Closes a connection from under h2o: both directions of its socket are
 * shut down, so h2o sees the end of input and a failing write at once and
 * tears the connection down itself (timeouts, streams, pools), whatever
 * protocol it speaks. */
void http_force_close_sock(http_server_t *srv, h2o_socket_t *sock, metrics_limit_t why)
{
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    if (fd >= 0 && shutdown(fd, SHUT_RDWR) == 0)
        metrics_limit(srv->opts.metrics, why);
}

void http_force_close_req(http_server_t *srv, h2o_req_t *req, metrics_limit_t why)
{
    if (req->conn && req->conn->callbacks->get_socket)
        http_force_close_sock(srv, req->conn->callbacks->get_socket(req->conn), why);
}

static void http_track_unlink(http_resp_track_t *t)
{
    if (!t->srv)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->srv->tracks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->srv = NULL;
}

static void track_dispose(void *p)
{
    http_track_unlink(p);
}

/* Watches a response from now until h2o has passed all of it on (its
 * request is disposed): see on_sweep in listener.c. */
void http_track_response(http_server_t *srv, h2o_req_t *req)
{
    http_resp_track_t *t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), track_dispose);
    t->srv = srv;
    t->req = req;
    t->since = uv_now(srv->loop);
    t->closing = 0;
    t->prev = NULL;
    t->next = srv->tracks;
    if (srv->tracks)
        srv->tracks->prev = t;
    srv->tracks = t;
}

/* Sends `body` (copied; NULL = a 500 JSON error) as the whole response. */
void http_send_bytes(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                     const char *ctype, const char *body, size_t len)
{
    static const char internal[] = "{\"success\":false,\"message\":\"Internal error\"}";
    if (!body) {
        status = 500;
        ctype = "application/json";
        body = internal;
        len = sizeof(internal) - 1;
    }
    req->res.status = status;
    req->res.reason = reason_for(status);
    http_add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype);
    http_add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    http_track_response(srv, req);
    h2o_send_inline(req, body, len);
    http_count(srv, route, status);
}

/* As http_send_bytes, and frees `body`, wiped first (a QR's data URL encodes
 * its adv secret; h2o took a copy). */
void http_send_body(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                    const char *ctype, char *body, size_t len)
{
    http_send_bytes(srv, req, route, status, ctype, body, len);
    if (body)
        explicit_bzero(body, len);
    free(body);
}

static void body_free(http_body_cache_t *c)
{
    if (c->body)
        explicit_bzero(c->body, c->len);
    free(c->body);
}

/* The status or qr JSON body for `snap` now, rendered at most once per
 * snapshot and second of QR countdown (which is all of `now` they show).
 * Owned by the cache (valid until the next call); NULL when out of memory.
 * Loop thread only. */
const char *http_cached_body(http_server_t *srv, int kind, sess_snapshot_t *snap, size_t *len)
{
    int64_t now = sess_now_ms();
    long long left = sess_snapshot_qr_expires_in(snap, now);
    long long code_left = api_link_code_expires_in(snap, now);
    http_body_cache_t *c = &http_cache_slot(srv, snap)->bodies[kind];
    if (!c->body || c->snap != snap || c->left_s != left || c->code_s != code_left) {
        char *body = kind == HTTP_BODY_QR
                         ? api_json_qr(snap, NULL, now)
                         : api_json_status(snap, kind == HTTP_BODY_STATUS_ACCOUNT, now);
        if (!body)
            return NULL;
        body_free(c);
        sess_snapshot_unref(c->snap);
        c->body = body;
        c->len = strlen(body);
        c->snap = sess_snapshot_ref(snap);
        c->left_s = left;
        c->code_s = code_left;
    }
    *len = c->len;
    return c->body;
}

http_cache_slot_t *http_cache_slot(http_server_t *srv, const sess_snapshot_t *snap)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = snap->session ? snap->session : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &srv->caches[h % HTTP_CACHE_SLOTS];
}

void http_body_cache_clear(http_server_t *srv)
{
    for (size_t k = 0; k < HTTP_CACHE_SLOTS; k++)
        for (int i = 0; i < HTTP_BODY_COUNT; i++) {
            http_body_cache_t *c = &srv->caches[k].bodies[i];
            body_free(c);
            sess_snapshot_unref(c->snap);
            c->body = NULL;
            c->snap = NULL;
        }
}

void http_send_json(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                    char *json)
{
    http_send_body(srv, req, route, status, "application/json", json, json ? strlen(json) : 0);
}

void http_send_error(http_server_t *srv, h2o_req_t *req, metrics_route_t route, api_code_t code,
                     const char *message, const sess_snapshot_t *snap)
{
    http_send_json(srv, req, route, api_http_status(code),
                   api_json_error(message ? message : api_code_message(code), snap));
}

/* --- the request --- */

int http_header_value(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return 0;
    *out = req->headers.entries[i].value;
    return 1;
}

/* Finds `name` in the query string; returns 1 and the raw value. */
int http_query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - q) == nl && !memcmp(q, name, nl)) {
            *out = h2o_iovec_init(eq ? eq + 1 : pe, eq ? (size_t)(pe - eq - 1) : 0);
            return 1;
        }
        q = pe + 1;
    }
    return 0;
}

/* The caller's address, for counting wrong keys. */
void http_peer_addr(h2o_req_t *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = 0;
    if (sl && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    else if (sl && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

/* The Host the request was sent to (Host header or :authority); 0 when the
 * client sent none (h2o then fills in the host configuration's name). */
static int request_host(h2o_req_t *req, h2o_iovec_t *out)
{
    *out = req->input.authority;
    return out->base && !(req->hostconf && out->base == req->hostconf->authority.hostport.base);
}

/* The request's Origin relative to the service (see guard.h). */
guard_origin_t http_origin_class(http_server_t *srv, h2o_req_t *req)
{
    h2o_iovec_t origin, host = {NULL, 0};
    if (!http_header_value(req, "origin", &origin))
        return GUARD_ORIGIN_NONE;
    request_host(req, &host);
    return guard_origin(&srv->guard, origin.base, origin.len, host.base, host.len);
}

/* A browser request that only CORS_ORIGINS=* lets in, from a caller that
 * did not present the configured key: it may read nothing a key protects
 * (no qr, no events, no account in status), whether a key is configured or
 * not. */
int http_wildcard_untrusted(http_server_t *srv, h2o_req_t *req)
{
    if (http_origin_class(srv, req) != GUARD_ORIGIN_ANY)
        return 0;
    h2o_iovec_t v;
    return !(api_key_required(srv->opts.api) && http_header_value(req, "x-api-key", &v) &&
             api_key_ok(srv->opts.api, v.base, v.len));
}

static int method_is(h2o_req_t *req, const char *m, size_t len)
{
    return h2o_memis(req->method.base, req->method.len, m, len);
}

/* The browser guards, before anything else: a Host that is not one of the
 * service's names (DNS rebinding) is refused, and so is a state-changing
 * request (any method but GET, HEAD and OPTIONS) or a WebSocket upgrade
 * from an Origin that is not the service's own or allowed by CORS_ORIGINS,
 * key or no key. Returns 1 when the request was answered (403). */
int http_refuse_browser_request(http_server_t *srv, h2o_req_t *req)
{
    h2o_iovec_t host;
    const char *why = NULL;
    if (request_host(req, &host) && !guard_host_ok(&srv->guard, host.base, host.len)) {
        why = "Host not allowed (set ALLOWED_HOSTS to serve this name)";
    } else {
        const char *client_key;
        int state_change =
            !(method_is(req, H2O_STRLIT("GET")) || method_is(req, H2O_STRLIT("HEAD")) ||
              method_is(req, H2O_STRLIT("OPTIONS")));
        int upgrade = h2o_is_websocket_handshake(req, &client_key) == 0 && client_key != NULL;
        if ((state_change || upgrade) &&
            !guard_may_change_state(http_origin_class(srv, req), api_key_required(srv->opts.api)))
            why = "Origin not allowed (set CORS_ORIGINS to allow it)";
    }
    if (!why)
        return 0;
    http_send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_FORBIDDEN, why, NULL);
    return 1;
}

/* CORS response headers for a listed (or "*") Origin. Under "*" a caller
 * without the key gets them only on routes that need no key. */
void http_add_cors(http_server_t *srv, h2o_req_t *req, int route_needs_key)
{
    h2o_iovec_t origin = {NULL, 0};
    guard_origin_t oc = http_origin_class(srv, req);
    if (oc != GUARD_ORIGIN_LISTED && oc != GUARD_ORIGIN_ANY)
        return;
    if ((route_needs_key && http_wildcard_untrusted(srv, req)) ||
        !http_header_value(req, "origin", &origin))
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin.base, origin.len);
    http_add_header(req, H2O_TOKEN_VARY, "Origin");
}

void http_tracks_sweep(http_server_t *srv, uint64_t now, uint64_t limit)
{
    for (http_resp_track_t *tr = srv->tracks; tr; tr = tr->next)
        if (!tr->closing && now - tr->since > limit) {
            tr->closing = 1;
            http_force_close_req(srv, tr->req, METRICS_LIMIT_STALLED);
        }
}

void http_tracks_clear(http_server_t *srv)
{
    while (srv->tracks)
        http_track_unlink(srv->tracks);
}
