/* HTTP server on h2o + libuv. One catch-all h2o handler looks the path up in
 * a route table (the Redis command-table style) so that unknown paths get a
 * JSON 404 and wrong methods a 405 with Allow. Event streams (SSE and
 * WebSocket) pull snapshots from their session subscription only when the
 * socket can take more, so a slow client coalesces instead of growing a
 * buffer; one server-wide timer sends heartbeats to all of them. */
#include "server/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>
#include <h2o/websocket.h>

#include "common/log.h"
#include "server/guard.h"
#include "server/wsclient.h"

#define DEFAULT_BODY_LIMIT (16 * 1024)
#define DEFAULT_HEARTBEAT_MS 15000
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_STALL_MS 30000
#define WS_MAX_QUEUED WSC_MAX_QUEUED
#define SSE_BATCH 64

typedef enum { STREAM_SSE, STREAM_WS } stream_kind_t;

typedef struct stream stream_t;
typedef struct http_conn http_conn_t;
typedef struct reconnect reconnect_t;
typedef struct resp_track resp_track_t;

/* One event rendered once and shared by every stream that sends it: the
 * SSE bytes ("id: ...\ndata: {json}\n\n"); `json` points inside them. */
typedef struct {
    int refs;
    size_t len, json_off, json_len;
    char data[];
} event_blob_t;

/* A response body rendered once and reused until the snapshot or the
 * countdown's second changes. */
typedef struct {
    sess_snapshot_t *snap; /* referenced */
    long long left_s;      /* seconds of QR left it was rendered with */
    long long code_s;      /* seconds of pairing code left (key holders see it) */
    char *body;
    size_t len;
} body_cache_t;

enum { BODY_STATUS, BODY_STATUS_ACCOUNT, BODY_QR, BODY_COUNT };

/* The last event rendered, per with_account flag; like body_cache_t it
 * stays valid until the snapshot or the countdown's second changes. */
typedef struct {
    sess_snapshot_t *snap; /* referenced */
    long long left_s, code_s;
    event_blob_t *blob; /* referenced */
} event_cache_t;

struct http_server {
    uv_loop_t *loop;
    http_opts_t opts;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    guard_t guard; /* Host and Origin rules */
    SSL_CTX *ssl_ctx;
    uv_tcp_t listener;
    uv_timer_t grace_timer;
    uv_timer_t heartbeat;
    uv_timer_t sweep; /* closes connections that stall (see on_sweep) */
    uv_async_t flush;
    size_t nconns;
    http_conn_t *conns;      /* every open connection */
    resp_track_t *tracks;    /* responses handed to h2o, not yet taken by their client */
    reconnect_t *reconnects; /* POST reconnects waiting for their QR */
    int abandoned;           /* connections outlived the grace period and a forced close */
    uint64_t refused_log_ms; /* last warning about the connection cap */
    stream_t *streams;       /* every live stream */
    stream_t *dirty;         /* streams with new snapshots to send */
    event_cache_t cache[2];  /* [with_account] */
    body_cache_t bodies[BODY_COUNT];
    size_t nstreams;
    int grace_expired;
    int stopping;
    int listener_open;
    void (*on_stopped)(void *);
    void *on_stopped_arg;
};

struct stream {
    http_server_t *srv;
    stream_kind_t kind;
    sess_sub_t *sub;
    int with_account;
    /* SSE */
    h2o_generator_t gen;
    h2o_req_t *req;
    int inflight;
    char *sendbuf;           /* bytes h2o is sending (several events), or NULL */
    event_blob_t *held;      /* the one shared event h2o is sending, or NULL */
    uint64_t inflight_since; /* loop time of the send h2o has not taken yet */
    /* WebSocket */
    h2o_websocket_conn_t *ws;
    uint64_t ws_writing_since; /* loop time the socket write got stuck, 0 = not stuck */
    int busy;                  /* inside h2o_websocket_proceed (see ws_flush) */
    int dead;                  /* the connection closed while busy: free when done */
    int closing;               /* its connection is being closed by a limit */
    int ended;                 /* the subscription ended; the final bytes were queued */
    int in_dirty;
    stream_t *prev, *next, *dirty_next;
};

typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} http_handler_t;

struct http_conn {
    uv_tcp_t tcp;
    http_server_t *srv;
    http_conn_t *prev, *next;
};

/* A response handed to h2o and not yet taken whole by the client; lives in
 * the request's pool, whose disposal (the response is done) unlinks it. */
struct resp_track {
    http_server_t *srv; /* NULL once unlinked */
    h2o_req_t *req;
    uint64_t since;
    int closing;
    resp_track_t *prev, *next;
};

/* --- responses --- */

static const char *reason_for(int status)
{
    switch (status) {
    case 200:
        return "OK";
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
    }
    return "Unknown";
}

static void add_header(h2o_req_t *req, const h2o_token_t *tok, const char *v)
{
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, v, strlen(v));
}

static void add_header_str(h2o_req_t *req, const char *name, const char *v)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v, strlen(v));
}

static void count(http_server_t *srv, metrics_route_t route, int status)
{
    metrics_request(srv->opts.metrics, route, status);
}

/* --- limits: connections that stop taking what they asked for --- */

/* Closes a connection from under h2o: both directions of its socket are
 * shut down, so h2o sees the end of input and a failing write at once and
 * tears the connection down itself (timeouts, streams, pools), whatever
 * protocol it speaks. */
static void force_close_sock(http_server_t *srv, h2o_socket_t *sock, metrics_limit_t why)
{
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    if (fd >= 0 && shutdown(fd, SHUT_RDWR) == 0)
        metrics_limit(srv->opts.metrics, why);
}

static void force_close_req(http_server_t *srv, h2o_req_t *req, metrics_limit_t why)
{
    if (req->conn && req->conn->callbacks->get_socket)
        force_close_sock(srv, req->conn->callbacks->get_socket(req->conn), why);
}

static void track_unlink(resp_track_t *t)
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
    track_unlink(p);
}

/* Watches a response from now until h2o has passed all of it on (its
 * request is disposed): see on_sweep. */
static void track_response(http_server_t *srv, h2o_req_t *req)
{
    resp_track_t *t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), track_dispose);
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
static void send_bytes(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
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
    add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    track_response(srv, req);
    h2o_send_inline(req, body, len);
    count(srv, route, status);
}

/* As send_bytes, and frees `body`, wiped first (a QR's data URL encodes
 * its adv secret; h2o took a copy). */
static void send_body(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                      const char *ctype, char *body, size_t len)
{
    send_bytes(srv, req, route, status, ctype, body, len);
    if (body)
        explicit_bzero(body, len);
    free(body);
}

static void body_free(body_cache_t *c)
{
    if (c->body)
        explicit_bzero(c->body, c->len);
    free(c->body);
}

/* The status or qr JSON body for `snap` now, rendered at most once per
 * snapshot and second of QR countdown (which is all of `now` they show).
 * Owned by the cache (valid until the next call); NULL when out of memory.
 * Loop thread only. */
static const char *cached_body(http_server_t *srv, int kind, sess_snapshot_t *snap, size_t *len)
{
    int64_t now = sess_now_ms();
    long long left = sess_snapshot_qr_expires_in(snap, now);
    long long code_left = api_link_code_expires_in(snap, now);
    body_cache_t *c = &srv->bodies[kind];
    if (!c->body || c->snap != snap || c->left_s != left || c->code_s != code_left) {
        char *body = kind == BODY_QR ? api_json_qr(snap, NULL, now)
                                     : api_json_status(snap, kind == BODY_STATUS_ACCOUNT, now);
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

static void body_cache_clear(http_server_t *srv)
{
    for (int i = 0; i < BODY_COUNT; i++) {
        body_free(&srv->bodies[i]);
        sess_snapshot_unref(srv->bodies[i].snap);
        srv->bodies[i].body = NULL;
        srv->bodies[i].snap = NULL;
    }
}

static void send_json(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                      char *json)
{
    send_body(srv, req, route, status, "application/json", json, json ? strlen(json) : 0);
}

static void send_error(http_server_t *srv, h2o_req_t *req, metrics_route_t route, api_code_t code,
                       const char *message, const sess_snapshot_t *snap)
{
    send_json(srv, req, route, api_http_status(code),
              api_json_error(message ? message : api_code_message(code), snap));
}

/* --- request helpers --- */

static int header_value(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return 0;
    *out = req->headers.entries[i].value;
    return 1;
}

/* Finds `name` in the query string; returns 1 and the raw value. */
static int query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out)
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
static void peer_addr(h2o_req_t *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = 0;
    if (sl && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    else if (sl && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

/* The presented API key: the X-API-Key header only (a key in the URL would
 * end up in histories, logs and Referer headers). Returns API_OK,
 * API_ERR_UNAUTHENTICATED or API_ERR_RATE_LIMITED. */
static api_code_t authorize(http_server_t *srv, h2o_req_t *req)
{
    api_t *api = srv->opts.api;
    if (!api_key_required(api))
        return API_OK;
    h2o_iovec_t v;
    int has = header_value(req, "x-api-key", &v);
    char addr[64];
    peer_addr(req, addr, sizeof(addr));
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
    if (!header_value(req, "x-api-key", &v))
        return 0;
    return authorize(srv, req) == API_OK;
}

/* The Host the request was sent to (Host header or :authority); 0 when the
 * client sent none (h2o then fills in the host configuration's name). */
static int request_host(h2o_req_t *req, h2o_iovec_t *out)
{
    *out = req->input.authority;
    return out->base && !(req->hostconf && out->base == req->hostconf->authority.hostport.base);
}

/* The request's Origin relative to the service (see guard.h). */
static guard_origin_t origin_class(http_server_t *srv, h2o_req_t *req)
{
    h2o_iovec_t origin, host = {NULL, 0};
    if (!header_value(req, "origin", &origin))
        return GUARD_ORIGIN_NONE;
    request_host(req, &host);
    return guard_origin(&srv->guard, origin.base, origin.len, host.base, host.len);
}

/* A browser request that only CORS_ORIGINS=* lets in, from a caller that
 * did not present the configured key: it may read nothing a key protects
 * (no qr, no events, no account in status), whether a key is configured or
 * not. */
static int wildcard_untrusted(http_server_t *srv, h2o_req_t *req)
{
    if (origin_class(srv, req) != GUARD_ORIGIN_ANY)
        return 0;
    h2o_iovec_t v;
    return !(api_key_required(srv->opts.api) && header_value(req, "x-api-key", &v) &&
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
static int refuse_browser_request(http_server_t *srv, h2o_req_t *req)
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
            !guard_may_change_state(origin_class(srv, req), api_key_required(srv->opts.api)))
            why = "Origin not allowed (set CORS_ORIGINS to allow it)";
    }
    if (!why)
        return 0;
    send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_FORBIDDEN, why, NULL);
    return 1;
}

/* CORS response headers for a listed (or "*") Origin. Under "*" a caller
 * without the key gets them only on routes that need no key. */
static void add_cors(http_server_t *srv, h2o_req_t *req, int route_needs_key)
{
    h2o_iovec_t origin = {NULL, 0};
    guard_origin_t oc = origin_class(srv, req);
    if (oc != GUARD_ORIGIN_LISTED && oc != GUARD_ORIGIN_ANY)
        return;
    if ((route_needs_key && wildcard_untrusted(srv, req)) || !header_value(req, "origin", &origin))
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin.base, origin.len);
    add_header(req, H2O_TOKEN_VARY, "Origin");
}

/* --- event streams --- */

static void stream_link(http_server_t *srv, stream_t *st)
{
    st->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = st;
    srv->streams = st;
    srv->nstreams++;
}

static void stream_unlink(http_server_t *srv, stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        srv->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    srv->nstreams--;
    if (st->in_dirty) {
        for (stream_t **pp = &srv->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == st) {
                *pp = st->dirty_next;
                break;
            }
    }
}

static void blob_unref(event_blob_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}

/* The event for `snap` as a stream with(out) the account sees it now,
 * rendered once per (snapshot, account visibility, second of QR countdown)
 * and shared; a new reference, or NULL when out of memory. Loop thread. */
static event_blob_t *event_get(http_server_t *srv, sess_snapshot_t *snap, int with_account)
{
    int64_t now_ms = sess_now_ms();
    long long left = sess_snapshot_qr_expires_in(snap, now_ms);
    long long code_left = api_link_code_expires_in(snap, now_ms);
    event_cache_t *c = &srv->cache[with_account ? 1 : 0];
    if (c->blob && c->snap == snap && c->left_s == left && c->code_s == code_left) {
        c->blob->refs++;
        return c->blob;
    }
    char *json = api_json_event(snap, with_account, now_ms);
    if (!json)
        return NULL;
    char head[64];
    int hl = snprintf(head, sizeof(head),
                      "id: %llu\nevent: status\ndata: ", (unsigned long long)snap->seq);
    size_t jl = strlen(json);
    event_blob_t *b = malloc(sizeof(*b) + (size_t)hl + jl + 3);
    if (!b) {
        free(json);
        return NULL;
    }
    b->refs = 2; /* the cache's and the caller's */
    memcpy(b->data, head, (size_t)hl);
    memcpy(b->data + hl, json, jl);
    memcpy(b->data + hl + jl, "\n\n", 3);
    b->json_off = (size_t)hl;
    b->json_len = jl;
    b->len = (size_t)hl + jl + 2;
    free(json);
    blob_unref(c->blob);
    sess_snapshot_unref(c->snap);
    c->blob = b;
    c->snap = sess_snapshot_ref(snap);
    c->left_s = left;
    c->code_s = code_left;
    return b;
}

static void event_cache_clear(http_server_t *srv)
{
    for (int i = 0; i < 2; i++) {
        blob_unref(srv->cache[i].blob);
        sess_snapshot_unref(srv->cache[i].snap);
        srv->cache[i].blob = NULL;
        srv->cache[i].snap = NULL;
    }
}

/* h2o is done with what the stream sent: drop it. */
static void stream_sent(stream_t *st)
{
    free(st->sendbuf);
    st->sendbuf = NULL;
    blob_unref(st->held);
    st->held = NULL;
}

static void stream_free(stream_t *st)
{
    http_server_t *srv = st->srv;
    stream_unlink(srv, st);
    sess_unsubscribe(st->sub);
    metrics_subscribers(srv->opts.metrics, st->kind == STREAM_SSE ? "sse" : "websocket", -1);
    stream_sent(st);
    free(st);
}

/* Called by the subscription when snapshots are queued (loop thread). */
static void stream_notify(void *arg)
{
    stream_t *st = arg;
    if (st->in_dirty)
        return;
    st->in_dirty = 1;
    st->dirty_next = st->srv->dirty;
    st->srv->dirty = st;
    uv_async_send(&st->srv->flush);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static int sbuf_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return -1;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
    return 0;
}

static void ws_send_text(stream_t *st, const char *s, size_t n)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)s, n};
    wslay_event_queue_msg(st->ws->ws_ctx, &msg);
}

/* Runs h2o's WebSocket I/O for a stream. Nothing may run before the upgrade
 * has completed: h2o attaches the socket only then (h2o_websocket_proceed
 * would dereference NULL), and flushes what was queued meanwhile itself.
 * h2o may close the connection from here, which ends the stream: returns 0
 * when `st` is still alive, -1 when it has been freed. */
static int ws_flush(stream_t *st)
{
    if (!st->ws || !st->ws->sock)
        return 0;
    st->busy++;
    h2o_websocket_proceed(st->ws);
    st->busy--;
    if (st->dead && !st->busy) {
        stream_free(st);
        return -1;
    }
    return 0;
}

/* Moves queued snapshots to the socket when it can take them. The common
 * case, one new event, sends the shared rendering without copying it. */
static void stream_pump(stream_t *st, int flush_ws)
{
    if (st->ended || st->dead || (st->kind == STREAM_WS && !st->ws))
        return;
    if (st->kind == STREAM_SSE && (st->inflight || !st->req))
        return;
    if (st->kind == STREAM_WS && wslay_event_get_queued_msg_count(st->ws->ws_ctx) >= WS_MAX_QUEUED)
        return;
    sbuf_t b = {0};
    event_blob_t *one = NULL;
    sess_snapshot_t *snap;
    int rc = SESS_SUB_EMPTY, n = 0;
    while (n < SSE_BATCH && (rc = sess_sub_next(st->sub, &snap)) == SESS_SUB_OK) {
        event_blob_t *ev = event_get(st->srv, snap, st->with_account);
        sess_snapshot_unref(snap);
        n++;
        if (!ev)
            continue;
        if (st->kind == STREAM_WS) {
            ws_send_text(st, ev->data + ev->json_off, ev->json_len); /* wslay copies */
            blob_unref(ev);
        } else if (!one && b.len == 0) {
            one = ev;
        } else {
            if (one) { /* a second event: from now on, copy */
                sbuf_add(&b, one->data, one->len);
                blob_unref(one);
                one = NULL;
            }
            sbuf_add(&b, ev->data, ev->len);
            blob_unref(ev);
        }
    }
    if (rc == SESS_SUB_ENDED)
        st->ended = 1;
    if (st->kind == STREAM_WS) {
        if (st->ended) {
            struct wslay_event_msg m = {WSLAY_CONNECTION_CLOSE, (const uint8_t *)"\x03\xe9", 2};
            wslay_event_queue_msg(st->ws->ws_ctx, &m); /* 1001 going away */
        }
        if (n > 0 || st->ended || flush_ws)
            ws_flush(st); /* may free st */
        return;
    }
    if (!one && b.len == 0 && !st->ended) {
        free(b.buf);
        return;
    }
    stream_sent(st);
    h2o_iovec_t iov;
    if (one) {
        st->held = one;
        iov = h2o_iovec_init(one->data, one->len);
    } else {
        st->sendbuf = b.buf;
        iov = h2o_iovec_init(b.buf ? b.buf : "", b.len);
    }
    st->inflight = 1;
    st->inflight_since = uv_now(st->srv->loop);
    h2o_send(st->req, &iov, 1, st->ended ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_flush(uv_async_t *a)
{
    http_server_t *srv = a->data;
    while (srv->dirty) {
        stream_t *st = srv->dirty;
        srv->dirty = st->dirty_next;
        st->in_dirty = 0;
        stream_pump(st, 0);
    }
}

static void on_heartbeat(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    stream_t *next;
    for (stream_t *st = srv->streams; st; st = next) {
        next = st->next;
        if (st->ended)
            continue;
        if (st->kind == STREAM_SSE) {
            if (st->inflight || !st->req)
                continue;
            stream_sent(st);
            static const char hb[] = ": heartbeat\n\n";
            h2o_iovec_t iov = h2o_iovec_init(hb, sizeof(hb) - 1);
            st->inflight = 1;
            st->inflight_since = uv_now(st->srv->loop);
            h2o_send(st->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
        } else {
            struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"hb", 2};
            if (wslay_event_get_queued_msg_count(st->ws->ws_ctx) < WS_MAX_QUEUED)
                wslay_event_queue_msg(st->ws->ws_ctx, &m);
            stream_pump(st, 1); /* also retries a stream held back by a full queue */
        }
    }
}

static void sse_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    stream_t *st = H2O_STRUCT_FROM_MEMBER(stream_t, gen, gen);
    st->inflight = 0;
    stream_sent(st);
    if (st->srv->stopping && !st->ended) { /* it was busy when the server stopped */
        st->ended = 1;
        st->inflight = 1;
        st->inflight_since = uv_now(st->srv->loop);
        h2o_iovec_t iov = h2o_iovec_init("", 0);
        h2o_send(st->req, &iov, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    stream_pump(st, 0);
}

static void sse_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    stream_t *st = H2O_STRUCT_FROM_MEMBER(stream_t, gen, gen);
    st->ended = 1;
}

/* Lives in the request's pool; its dispose runs when the request is gone. */
typedef struct {
    stream_t *st;
} sse_anchor_t;

static void sse_dispose(void *p)
{
    sse_anchor_t *a = p;
    if (a->st)
        stream_free(a->st);
}

static stream_t *stream_new(http_server_t *srv, stream_kind_t kind, int with_account)
{
    stream_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->srv = srv;
    st->kind = kind;
    st->with_account = with_account;
    sess_sub_opts_t o = {
        .notify = stream_notify, .arg = st, .max_queue = 64, .policy = SESS_SLOW_COALESCE};
    api_code_t code;
    /* link first: the subscription notifies at once with the current state */
    stream_link(srv, st);
    st->sub = api_watch(srv->opts.api, NULL, &o, &code);
    if (!st->sub) {
        stream_unlink(srv, st);
        free(st);
        return NULL;
    }
    metrics_subscribers(srv->opts.metrics, kind == STREAM_SSE ? "sse" : "websocket", +1);
    return st;
}

static void on_ws_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    stream_t *st = conn->data;
    if (arg == NULL) { /* closed, failed, or the upgrade failed */
        h2o_websocket_close(conn);
        if (st) {
            st->ws = NULL;
            if (st->busy)
                st->dead = 1; /* ws_flush frees it */
            else
                stream_free(st);
        }
        return;
    }
    if (!st)
        return;
    wsc_action_t act = wsc_on_message(conn->ws_ctx, arg);
    if (act == WSC_CLOSE_UNREAD) {
        /* it keeps sending (pings, which wslay answers with pongs) without
         * reading the answers: stop reading it and close it, instead of
         * queueing answers without bound */
        wslay_event_shutdown_read(conn->ws_ctx);
        if (!st->closing) {
            st->closing = 1;
            force_close_sock(st->srv, conn->sock, METRICS_LIMIT_WS_UNREAD);
        }
        return;
    }
    /* Clients have nothing to say; a text "ping" gets the current state. */
    if (act == WSC_SEND_STATE) {
        sess_snapshot_t *snap =
            sess_current(sess_registry_find(api_registry(st->srv->opts.api), "default"));
        char *json = api_json_event(snap, st->with_account, sess_now_ms());
        if (json)
            ws_send_text(st, json, strlen(json));
        free(json);
        sess_snapshot_unref(snap);
    }
}

/* Counts messages refused for their size (wslay closes them with 1009 as
 * soon as the frame header declares a size over the limit). */
static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)ctx;
    h2o_websocket_conn_t *conn = user;
    stream_t *st = conn->data;
    if (st && arg->payload_length > WSC_MAX_MESSAGE)
        metrics_limit(st->srv->opts.metrics, METRICS_LIMIT_WS_MESSAGE);
}

/* Bounds what a WebSocket client may send (see wsclient.h). */
static void ws_limit(h2o_websocket_conn_t *ws)
{
    struct wslay_event_callbacks cbs = ws->ws_callbacks;
    cbs.on_frame_recv_start_callback = ws_on_frame_start;
    wslay_event_config_set_callbacks(ws->ws_ctx, &cbs);
    wsc_limit(ws->ws_ctx);
}

static int route_events(http_server_t *srv, h2o_req_t *req)
{
    const char *client_key;
    int is_ws = h2o_is_websocket_handshake(req, &client_key) == 0 && client_key != NULL;
    if (srv->stopping) {
        send_error(srv, req, METRICS_ROUTE_EVENTS, API_ERR_SHUTTING_DOWN, NULL, NULL);
        return 0;
    }
    int with_account = 1;
    stream_t *st = stream_new(srv, is_ws ? STREAM_WS : STREAM_SSE, with_account);
    if (!st) {
        send_error(srv, req, METRICS_ROUTE_EVENTS, API_ERR_INTERNAL, NULL, NULL);
        return 0;
    }
    count(srv, METRICS_ROUTE_EVENTS, is_ws ? 101 : 200);
    if (is_ws) {
        st->ws = h2o_upgrade_to_websocket(req, client_key, st, on_ws_message);
        ws_limit(st->ws);
        return 0;
    }
    st->req = req;
    st->gen.proceed = sse_proceed;
    st->gen.stop = sse_stop;
    sse_anchor_t *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), sse_dispose);
    a->st = st;
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream");
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    add_header_str(req, "x-accel-buffering", "no");
    h2o_start_response(req, &st->gen);
    /* the retry hint first; the current snapshot follows from the flush */
    static const char hello[] = "retry: 3000\n\n";
    h2o_iovec_t iov = h2o_iovec_init(hello, sizeof(hello) - 1);
    st->inflight = 1;
    st->inflight_since = uv_now(st->srv->loop);
    h2o_send(req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

/* --- contract routes --- */

static int route_status(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_status(srv->opts.api, NULL);
    if (r.code != API_OK) {
        send_error(srv, req, METRICS_ROUTE_STATUS, r.code, r.message, NULL);
        return 0;
    }
    /* the linked account only to callers that could also fetch the QR */
    int with_account = key_ok(srv, req) && !wildcard_untrusted(srv, req);
    size_t len = 0;
    const char *body =
        cached_body(srv, with_account ? BODY_STATUS_ACCOUNT : BODY_STATUS, r.snap, &len);
    send_bytes(srv, req, METRICS_ROUTE_STATUS, 200, "application/json", body, len);
    api_result_clear(&r);
    return 0;
}

static const char *no_qr_message(const sess_snapshot_t *s)
{
    switch (s->state) {
    case SESS_CONNECTED:
        return "No QR code: already connected";
    case SESS_CONNECTING:
        return "No QR code yet: connecting to WhatsApp";
    case SESS_DISCONNECTED:
        return "No QR code: disconnected (POST reconnect to get a new one)";
    default:
        return "No QR code available";
    }
}

static int route_qr(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_qr(srv->opts.api, NULL);
    if (r.code != API_OK) {
        send_error(srv, req, METRICS_ROUTE_QR, r.code, r.snap ? no_qr_message(r.snap) : NULL,
                   r.snap);
        api_result_clear(&r);
        return 0;
    }
    const api_qr_render_t *img = r.snap->qr->rendered;
    h2o_iovec_t fmt;
    if (query_param(req, "format", &fmt) && h2o_memis(fmt.base, fmt.len, H2O_STRLIT("png"))) {
        send_bytes(srv, req, METRICS_ROUTE_QR, 200, "image/png", (const char *)img->png,
                   img->png_len);
    } else if (query_param(req, "format", &fmt) &&
               h2o_memis(fmt.base, fmt.len, H2O_STRLIT("raw"))) {
        send_bytes(srv, req, METRICS_ROUTE_QR, 200, "text/plain; charset=utf-8", r.snap->qr->text,
                   strlen(r.snap->qr->text));
    } else if (query_param(req, "format", &fmt) &&
               !h2o_memis(fmt.base, fmt.len, H2O_STRLIT("json"))) {
        send_error(srv, req, METRICS_ROUTE_QR, API_ERR_BAD_REQUEST,
                   "Unknown format (use json, png or raw)", NULL);
    } else {
        size_t len = 0;
        const char *body = cached_body(srv, BODY_QR, r.snap, &len);
        send_bytes(srv, req, METRICS_ROUTE_QR, 200, "application/json", body, len);
    }
    api_result_clear(&r);
    return 0;
}

static int route_logout(http_server_t *srv, h2o_req_t *req)
{
    api_result_t r = api_logout(srv->opts.api, NULL);
    if (r.code != API_OK) {
        send_error(srv, req, METRICS_ROUTE_LOGOUT, r.code, r.message, r.snap);
    } else {
        char *status = api_json_status(r.snap, 0, sess_now_ms());
        /* {"success":true,"message":"Logged out","data":{...}} */
        char *body = NULL;
        /* status is {"success":true,"data":{...}}: splice the message in */
        static const char head[] = "{\"success\":true,";
        if (status && !strncmp(status, head, sizeof(head) - 1)) {
            size_t n = strlen(status) + 64;
            body = malloc(n);
            if (body)
                snprintf(body, n, "%s\"message\":\"Logged out\",%s", head,
                         status + sizeof(head) - 1);
        }
        free(status);
        send_json(srv, req, METRICS_ROUTE_LOGOUT, 200, body);
    }
    api_result_clear(&r);
    return 0;
}

/* A reconnect waiting for its QR; lives in the request's pool and, while
 * it waits, in the server's list (a stop answers it). */
struct reconnect {
    http_server_t *srv;
    h2o_req_t *req;
    api_wait_t *wait;
    int done, linked;
    reconnect_t *prev, *next;
};

static void reconnect_unlink(reconnect_t *rc)
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
    reconnect_t *rc = p;
    reconnect_unlink(rc);
    if (!rc->done && rc->wait) {
        rc->done = 1;
        api_wait_cancel(rc->wait); /* the client went away */
    }
}

/* The server stops: every waiting reconnect is cancelled and answered 503
 * now, before the server (and the requests) go away. */
static void reconnects_cancel(http_server_t *srv)
{
    while (srv->reconnects) {
        reconnect_t *rc = srv->reconnects;
        reconnect_unlink(rc);
        if (rc->done)
            continue;
        rc->done = 1;
        api_wait_cancel(rc->wait);
        rc->wait = NULL;
        send_error(srv, rc->req, METRICS_ROUTE_RECONNECT, API_ERR_SHUTTING_DOWN, NULL, NULL);
    }
}

static void on_reconnected(api_result_t r, void *arg)
{
    reconnect_t *rc = arg;
    reconnect_unlink(rc);
    rc->done = 1;
    rc->wait = NULL;
    if (r.code == API_OK && r.snap && r.snap->state == SESS_QR_READY)
        send_json(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, 200,
                  api_json_qr(r.snap, "WhatsApp reconnection initiated", sess_now_ms()));
    else if (r.code == API_OK) /* keep_credentials and linked: no QR needed */
        send_json(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, 200,
                  api_json_status(r.snap, 0, sess_now_ms()));
    else
        send_error(rc->srv, rc->req, METRICS_ROUTE_RECONNECT, r.code,
                   r.code == API_ERR_UNREACHABLE && r.snap && r.snap->detail[0] ? NULL : r.message,
                   r.snap);
    api_result_clear(&r);
}

static int route_reconnect(http_server_t *srv, h2o_req_t *req)
{
    int keep = 0;
    unsigned wait_ms = 0;
    const char *why = NULL;
    h2o_iovec_t q;
    if (query_param(req, "keepCredentials", &q))
        keep = h2o_memis(q.base, q.len, H2O_STRLIT("true")) ||
               h2o_memis(q.base, q.len, H2O_STRLIT("1"));
    if (req->entity.base && req->entity.len &&
        api_parse_reconnect_body(req->entity.base, req->entity.len, &keep, &wait_ms, &why) != 0) {
        send_error(srv, req, METRICS_ROUTE_RECONNECT, API_ERR_BAD_REQUEST, why, NULL);
        return 0;
    }
    if (srv->stopping) {
        send_error(srv, req, METRICS_ROUTE_RECONNECT, API_ERR_SHUTTING_DOWN, NULL, NULL);
        return 0;
    }
    metrics_reconnect(srv->opts.metrics);
    reconnect_t *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), reconnect_dispose);
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
        send_json(pr->srv, pr->req, METRICS_ROUTE_OTHER, 200,
                  api_json_status_message(r.snap, r.message, 1, sess_now_ms()));
    else if (pr->req)
        send_error(pr->srv, pr->req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
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
            send_error(srv, req, METRICS_ROUTE_OTHER, r.code, r.message, r.snap);
        else
            send_json(srv, req, METRICS_ROUTE_OTHER, 200, api_json_passkey(r.snap));
        api_result_clear(&r);
        return 0;
    }
    if (!req->entity.base || !req->entity.len) {
        send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_BAD_REQUEST,
                   "Missing body: the WebAuthn assertion (PublicKeyCredential.toJSON())", NULL);
        return 0;
    }
    passkey_req_t *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_INTERNAL, NULL, NULL);
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
        send_json(pr->srv, pr->req, METRICS_ROUTE_PAIRING_CODE, 200,
                  api_json_pairing_code(code, expires_in));
    } else {
        if (r.code == API_ERR_RATE_LIMITED)
            add_header_str(pr->req, "retry-after", "10");
        send_error(pr->srv, pr->req, METRICS_ROUTE_PAIRING_CODE, r.code, r.message, r.snap);
    }
    api_result_clear(&r);
}

static int route_pairing_code(http_server_t *srv, h2o_req_t *req)
{
    char phone[16];
    const char *why = "A JSON body {\"phoneNumber\":\"+15551234567\"} is required";
    if (!req->entity.base || !req->entity.len ||
        api_parse_pairing_code_body(req->entity.base, req->entity.len, phone, &why) != 0) {
        send_error(srv, req, METRICS_ROUTE_PAIRING_CODE, API_ERR_BAD_REQUEST, why, NULL);
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

/* --- service routes --- */

static int route_healthz(http_server_t *srv, h2o_req_t *req)
{
    send_json(srv, req, METRICS_ROUTE_HEALTH, 200, strdup("{\"status\":\"ok\"}"));
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
    send_json(srv, req, METRICS_ROUTE_HEALTH, ready ? 200 : 503, strdup(body));
    return 0;
}

static int route_metrics(http_server_t *srv, h2o_req_t *req)
{
    metrics_reconnect_waits(srv->opts.metrics, api_reconnect_waits(srv->opts.api));
    api_result_t r = api_status(srv->opts.api, NULL);
    char *text = srv->opts.metrics ? metrics_render(srv->opts.metrics, r.snap) : strdup("");
    api_result_clear(&r);
    send_body(srv, req, METRICS_ROUTE_METRICS, 200, "text/plain; version=0.0.4", text,
              text ? strlen(text) : 0);
    return 0;
}

static int route_page(http_server_t *srv, h2o_req_t *req)
{
    if (!srv->opts.page_html) {
        send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/html; charset=utf-8");
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    /* everything is inline: no external source may load; the page talks to
     * its own origin only (and, in the demo, to the fake server's control
     * API on loopback) */
    add_header_str(req, "content-security-policy",
                   srv->opts.demo_control
                       ? "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
                         "script-src 'unsafe-inline'; connect-src 'self' http://127.0.0.1:* "
                         "http://localhost:*; frame-ancestors 'none'"
                       : "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
                         "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'");
    add_header_str(req, "referrer-policy", "no-referrer");
    add_header_str(req, "x-content-type-options", "nosniff");
    track_response(srv, req);
    h2o_send_inline(req, (const char *)srv->opts.page_html, srv->opts.page_len);
    count(srv, METRICS_ROUTE_PAGE, 200);
    return 0;
}

static int route_demo_config(http_server_t *srv, h2o_req_t *req)
{
    if (!srv->opts.demo_control) {
        send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    size_t n = strlen(srv->opts.demo_control) + 32;
    char *body = malloc(n);
    if (body)
        snprintf(body, n, "{\"control\":\"%s\"}", srv->opts.demo_control);
    send_json(srv, req, METRICS_ROUTE_PAGE, 200, body);
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

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((http_handler_t *)self)->srv;
    if (refuse_browser_request(srv, req))
        return 0;
    const route_t *r = find_route(req->path_normalized);
    if (!r) {
        send_error(srv, req, METRICS_ROUTE_OTHER, API_ERR_NOT_FOUND, NULL, NULL);
        return 0;
    }
    add_cors(srv, req, r->needs_key);
    int is_get =
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) && r->fn != route_events);
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && r->contract) {
        guard_origin_t oc = origin_class(srv, req);
        add_header(req, H2O_TOKEN_ALLOW, r->allow);
        if (oc == GUARD_ORIGIN_LISTED || oc == GUARD_ORIGIN_ANY) {
            add_header_str(req, "access-control-allow-methods", r->allow);
            add_header_str(req, "access-control-allow-headers", "X-API-Key, Content-Type");
            add_header_str(req, "access-control-max-age", "600");
        }
        req->res.status = 204;
        req->res.reason = "No Content";
        track_response(srv, req);
        h2o_send_inline(req, "", 0);
        count(srv, r->metric, 204);
        return 0;
    }
    if (!(r->post == 2 ? is_get || is_post : r->post ? is_post : is_get)) {
        add_header(req, H2O_TOKEN_ALLOW, r->allow);
        send_json(srv, req, r->metric, 405, api_json_error("Method not allowed", NULL));
        return 0;
    }
    if (r->post && req->entity.base && req->entity.len > srv->opts.body_limit) {
        send_error(srv, req, r->metric, API_ERR_TOO_LARGE, NULL, NULL);
        return 0;
    }
    api_code_t auth = r->needs_key ? authorize(srv, req) : API_OK;
    if (auth != API_OK) {
        if (auth == API_ERR_RATE_LIMITED)
            add_header_str(req, "retry-after", "60");
        send_error(srv, req, r->metric, auth, NULL, NULL);
        return 0;
    }
    return r->fn(srv, req);
}

/* --- listener and life cycle --- */

static void maybe_finish_stop(http_server_t *srv)
{
    if (!srv->stopping || (srv->nconns > 0 && !srv->abandoned) || srv->listener_open ||
        !srv->on_stopped)
        return;
    uv_timer_stop(&srv->grace_timer);
    void (*cb)(void *) = srv->on_stopped;
    srv->on_stopped = NULL;
    cb(srv->on_stopped_arg);
}

static void on_conn_close(uv_handle_t *h)
{
    http_conn_t *c = (http_conn_t *)h;
    http_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    srv->nconns--;
    metrics_http_connections(srv->opts.metrics, -1);
    maybe_finish_stop(srv);
}

/* A connection over MAX_CONNECTIONS: taken off the backlog and closed. */
static void refuse_conn(http_server_t *srv, uv_stream_t *listener)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        return;
    uv_tcp_init(listener->loop, t);
    if (uv_accept(listener, (uv_stream_t *)t) == 0)
        metrics_limit(srv->opts.metrics, METRICS_LIMIT_HTTP_CONNECTIONS);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    uint64_t now = uv_now(srv->loop);
    if (!srv->refused_log_ms || now - srv->refused_log_ms > 10000) {
        srv->refused_log_ms = now;
        LOG_WARN("http", "%zu connections open (MAX_CONNECTIONS): closing new ones", srv->nconns);
    }
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status != 0 || srv->stopping)
        return;
    if (srv->nconns >= srv->opts.max_connections) {
        refuse_conn(srv, listener);
        return;
    }
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(listener->loop, &c->tcp);
    srv->nconns++;
    metrics_http_connections(srv->opts.metrics, +1);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&srv->accept_ctx, sock);
}

/* Closes connections that stall: a response h2o has held for STALL_TIMEOUT_MS
 * without the client taking it (a reader that stopped, an HTTP/2 client
 * that keeps its flow-control window at zero), an SSE chunk not taken for as
 * long, a WebSocket whose socket write has been stuck for as long. h2o
 * 2.2's own timeouts cover none of these (its HTTP/2 idle timeout stops
 * while a response is open). */
static void on_sweep(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    uint64_t now = uv_now(srv->loop), limit = srv->opts.stall_ms;
    /* A client that closed its connection while its reconnect waits: h2o
     * does not read an HTTP/1.1 connection while it answers a request, so
     * the end of input is looked for here, and the wait cancelled. */
    reconnect_t *rn;
    for (reconnect_t *rc = srv->reconnects; rc; rc = rn) {
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
            send_error(srv, rc->req, METRICS_ROUTE_RECONNECT, API_ERR_BAD_REQUEST,
                       "the client went away", NULL);
        }
    }
    for (resp_track_t *tr = srv->tracks; tr; tr = tr->next)
        if (!tr->closing && now - tr->since > limit) {
            tr->closing = 1;
            force_close_req(srv, tr->req, METRICS_LIMIT_STALLED);
        }
    for (stream_t *st = srv->streams; st; st = st->next) {
        if (st->closing)
            continue;
        if (st->kind == STREAM_SSE) {
            if (st->inflight && st->req && now - st->inflight_since > limit) {
                st->closing = 1;
                force_close_req(srv, st->req, METRICS_LIMIT_STALLED);
            }
        } else if (st->ws && st->ws->sock) {
            if (!h2o_socket_is_writing(st->ws->sock)) {
                st->ws_writing_since = 0;
            } else if (!st->ws_writing_since) {
                st->ws_writing_since = now;
            } else if (now - st->ws_writing_since > limit) {
                st->closing = 1;
                force_close_sock(srv, st->ws->sock, METRICS_LIMIT_STALLED);
            }
        }
    }
}

static int setup_tls(http_server_t *srv, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    if (SSL_CTX_use_certificate_chain_file(ctx, srv->opts.tls_cert_file) != 1) {
        snprintf(err, errlen, "cannot load TLS certificate '%s'", srv->opts.tls_cert_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, srv->opts.tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "cannot load TLS private key '%s' (or it does not match)",
                 srv->opts.tls_key_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    srv->ssl_ctx = ctx;
    srv->accept_ctx.ssl_ctx = ctx;
    return 0;
}

int http_server_start(http_server_t **out, uv_loop_t *loop, const char *host, int port,
                      const http_opts_t *opts, char *err, size_t errlen)
{
    http_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    srv->loop = loop;
    srv->opts = *opts;
    srv->guard.bind_host = host;
    srv->guard.allowed_hosts = opts->allowed_hosts;
    srv->guard.cors_origins = opts->cors_origins;
    if (!srv->opts.body_limit)
        srv->opts.body_limit = DEFAULT_BODY_LIMIT;
    if (!srv->opts.heartbeat_ms)
        srv->opts.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    if (!srv->opts.max_connections)
        srv->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (!srv->opts.stall_ms)
        srv->opts.stall_ms = DEFAULT_STALL_MS;
    h2o_config_init(&srv->config);
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("wa-gateway"));
    srv->config.http2.graceful_shutdown_timeout = 2000;
    /* h2o itself answers bodies over this with a plain 413; ours (smaller)
     * answer with JSON. */
    srv->config.max_request_entity_size = srv->opts.body_limit * 4 + 65536;
    /* a client has 10 s to send its request headers (slowloris), HTTP/2
     * connections with nothing open are closed after 10 s */
    srv->config.http1.req_timeout = 10000;
    srv->config.http2.idle_timeout = 10000;
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    http_handler_t *handler = (http_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->config);
    /* Socket input buffers start at 4 KB instead of h2o's 8 KB (they grow
     * for bigger requests): every open event stream keeps one, and our
     * requests are small. h2o's tuning knob is per thread; this is the loop
     * thread, the only one serving HTTP. */
    h2o_socket_buffer_prototype._initial_buf.capacity = H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE;
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    int r = 0;
    if (srv->opts.tls_cert_file && setup_tls(srv, err, errlen) != 0)
        r = -1;
    struct sockaddr_storage addr;
    const char *bind_host = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (r == 0 && (r = uv_ip4_addr(bind_host, port, (struct sockaddr_in *)&addr)) != 0)
        r = uv_ip6_addr(bind_host, port, (struct sockaddr_in6 *)&addr);
    if (r == 0)
        r = uv_tcp_init(loop, &srv->listener);
    if (r == 0) {
        srv->listener_open = 1;
        srv->listener.data = srv;
        r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&srv->listener, 4096, on_accept);
        if (r != 0)
            snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    }
    if (r != 0) {
        if (srv->listener_open) {
            uv_close((uv_handle_t *)&srv->listener, NULL);
            uv_run(loop, UV_RUN_NOWAIT);
        }
        h2o_context_dispose(&srv->ctx);
        h2o_config_dispose(&srv->config);
        if (srv->ssl_ctx)
            SSL_CTX_free(srv->ssl_ctx);
        free(srv);
        return r;
    }
    uv_timer_init(loop, &srv->grace_timer);
    srv->grace_timer.data = srv;
    uv_timer_init(loop, &srv->heartbeat);
    srv->heartbeat.data = srv;
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    unsigned every = srv->opts.stall_ms / 4 < 1000 ? srv->opts.stall_ms / 4 : 1000;
    uv_timer_start(&srv->sweep, on_sweep, every ? every : 1, every ? every : 1);
    uv_timer_start(&srv->heartbeat, on_heartbeat, srv->opts.heartbeat_ms, srv->opts.heartbeat_ms);
    uv_async_init(loop, &srv->flush, on_flush);
    srv->flush.data = srv;
    LOG_INFO("http", "listening on %s:%d (%s)", host, port,
             srv->ssl_ctx ? "HTTPS: HTTP/1.1, HTTP/2 by ALPN" : "HTTP/1.1, HTTP/2 cleartext");
    *out = srv;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->listener_open = 0;
    maybe_finish_stop(srv);
}

/* Shuts down the socket of every connection still open: h2o then sees the
 * end of input (or a failing write) and closes each one itself, releasing
 * its timeouts, streams and requests; nothing is freed from under it. */
static void close_all_conns(http_server_t *srv)
{
    for (http_conn_t *c = srv->conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
}

static void on_grace_timeout(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    if (srv->nconns == 0) {
        maybe_finish_stop(srv);
        return;
    }
    if (!srv->grace_expired++) {
        /* idle keep-alive connections, half-sent requests, clients that do
         * not read or do not answer our close frame: close them now */
        LOG_INFO("http", "closing %zu connection(s) left after the grace period", srv->nconns);
        close_all_conns(srv);
        uv_timer_start(&srv->grace_timer, on_grace_timeout, 1000, 0);
        return;
    }
    /* should not happen: h2o did not close a shut-down socket */
    LOG_WARN("http", "%zu connection(s) still open after a forced close", srv->nconns);
    srv->abandoned = 1;
    maybe_finish_stop(srv);
}

void http_server_stop(http_server_t *srv, unsigned grace_ms, void (*on_stopped)(void *arg),
                      void *arg)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->on_stopped = on_stopped;
    srv->on_stopped_arg = arg;
    uv_timer_stop(&srv->heartbeat);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    /* waiting reconnects are answered now (503), before anything goes away */
    reconnects_cancel(srv);
    /* end every stream: SSE gets its final chunk (a busy one when h2o takes
     * the one in flight), WebSocket a close frame (sent once the upgrade is
     * complete, when it is not yet) */
    stream_t *next;
    for (stream_t *st = srv->streams; st; st = next) {
        next = st->next;
        if (st->ended)
            continue;
        if (st->kind == STREAM_SSE) {
            if (!st->inflight && st->req) {
                st->ended = 1;
                st->inflight = 1;
                st->inflight_since = uv_now(st->srv->loop);
                h2o_iovec_t iov = h2o_iovec_init("", 0);
                h2o_send(st->req, &iov, 1, H2O_SEND_STATE_FINAL);
            }
        } else if (st->ws) {
            st->ended = 1;
            struct wslay_event_msg m = {WSLAY_CONNECTION_CLOSE, (const uint8_t *)"\x03\xe9", 2};
            wslay_event_queue_msg(st->ws->ws_ctx, &m);
            ws_flush(st); /* may free st */
        }
    }
    h2o_context_request_shutdown(&srv->ctx);
    uv_timer_start(&srv->grace_timer, on_grace_timeout, grace_ms, 0);
}

void http_server_free(http_server_t *srv)
{
    if (!srv)
        return;
    uv_close((uv_handle_t *)&srv->grace_timer, NULL);
    uv_close((uv_handle_t *)&srv->heartbeat, NULL);
    uv_close((uv_handle_t *)&srv->sweep, NULL);
    uv_close((uv_handle_t *)&srv->flush, NULL);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    if (srv->abandoned || srv->nconns > 0) {
        /* h2o still owns connections (their timeouts, pools, streams):
         * disposing its context would abort and freeing the server would
         * leave them dangling. Leave it all to the process exit. */
        LOG_WARN("http", "%zu connection(s) never closed; not releasing the HTTP server",
                 srv->nconns);
        return;
    }
    if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    event_cache_clear(srv);
    body_cache_clear(srv);
    while (srv->tracks)
        track_unlink(srv->tracks);
    free(srv);
}

size_t http_server_connections(const http_server_t *srv)
{
    return srv->nconns;
}

size_t http_server_streams(const http_server_t *srv)
{
    return srv->nstreams;
}
