/* What the parts of the HTTP server share (the files of server/http/, never
 * anything outside): the server structure, and each part's calls into the
 * others.
 *   listener.c  start, stop, accept, TLS, the stall sweep
 *   routes.c    the route table, its lookup, authorization and the handlers
 *   streams.c   SSE and WebSocket streams, heartbeats, shared event blobs
 *   reply.c     responses, headers, CORS and browser guards, body caches
 * Everything runs on the loop thread. */
#ifndef WG_SERVER_HTTP_INTERNAL_H
#define WG_SERVER_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <h2o/websocket.h>

#include "server/guard.h"
#include "server/http.h"
#include "server/wsclient.h"

#define HTTP_DEFAULT_BODY_LIMIT (16 * 1024)
#define HTTP_DEFAULT_HEARTBEAT_MS 15000
#define HTTP_DEFAULT_MAX_CONNECTIONS 4096
#define HTTP_DEFAULT_STALL_MS 30000

typedef struct http_stream http_stream_t;
typedef struct http_conn http_conn_t;
typedef struct http_reconnect http_reconnect_t;
typedef struct http_resp_track http_resp_track_t;

/* One event rendered once and shared by every stream that sends it: the
 * SSE bytes ("id: ...\ndata: {json}\n\n"); `json` points inside them. */
typedef struct {
    int refs;
    size_t len, json_off, json_len;
    char data[];
} http_event_blob_t;

/* A response body rendered once and reused until the snapshot or the
 * countdown's second changes. */
typedef struct {
    sess_snapshot_t *snap; /* referenced */
    long long left_s;      /* seconds of QR left it was rendered with */
    long long code_s;      /* seconds of pairing code left (key holders see it) */
    char *body;
    size_t len;
} http_body_cache_t;

/* The bodies a cache keeps (http_cached_body). */
enum { HTTP_BODY_STATUS, HTTP_BODY_STATUS_ACCOUNT, HTTP_BODY_QR, HTTP_BODY_COUNT };

/* The last event rendered, per with_account flag; like http_body_cache_t it
 * stays valid until the snapshot or the countdown's second changes. */
typedef struct {
    sess_snapshot_t *snap; /* referenced */
    long long left_s, code_s;
    uint64_t event_id;       /* the snapshot's event id it was rendered with */
    http_event_blob_t *blob; /* referenced */
} http_event_cache_t;

/* What is rendered for one session: its bodies and its last event per
 * account visibility. Sessions share HTTP_CACHE_SLOTS slots by the hash of
 * their name; two sessions in one slot only render more often. */
#define HTTP_CACHE_SLOTS 64
typedef struct {
    http_body_cache_t bodies[HTTP_BODY_COUNT];
    http_event_cache_t events[4]; /* [with_account + 2 * (SSE id is the event id)] */
} http_cache_slot_t;

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
    uv_timer_t sweep; /* closes connections that stall (see listener.c) */
    uv_async_t flush;
    size_t nconns;
    http_conn_t *conns;           /* every open connection */
    http_resp_track_t *tracks;    /* responses handed to h2o, not yet taken by their client */
    http_reconnect_t *reconnects; /* POST reconnects waiting for their QR */
    int abandoned;                /* connections outlived the grace period and a forced close */
    uint64_t refused_log_ms;      /* last warning about the connection cap */
    http_stream_t *streams;       /* every live stream */
    http_stream_t *dirty;         /* streams with new snapshots to send */
    http_cache_slot_t caches[HTTP_CACHE_SLOTS]; /* by session (http_cache_slot) */
    size_t nstreams;
    int grace_expired;
    int stopping;
    int listener_open;
    void (*on_stopped)(void *);
    void *on_stopped_arg;
};

/* The catch-all h2o handler (http_on_req). */
typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} http_handler_t;

/* The cache slot of the snapshot's session. */
http_cache_slot_t *http_cache_slot(http_server_t *srv, const sess_snapshot_t *snap);

/* --- reply.c: responses --- */

/* Adds a response header (the value is copied into the request's pool). */
void http_add_header(h2o_req_t *req, const h2o_token_t *tok, const char *v);
void http_add_header_str(h2o_req_t *req, const char *name, const char *v);

/* Counts a request in /metrics. */
void http_count(http_server_t *srv, metrics_route_t route, int status);

/* Sends `body` (copied; NULL = a 500 JSON error) as the whole response,
 * with Cache-Control: no-store, watched by the stall sweep. */
void http_send_bytes(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                     const char *ctype, const char *body, size_t len);

/* As http_send_bytes, and frees `body` (wiped first). */
void http_send_body(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                    const char *ctype, char *body, size_t len);

/* As http_send_body with application/json; json NULL = a 500. */
void http_send_json(http_server_t *srv, h2o_req_t *req, metrics_route_t route, int status,
                    char *json);

/* The JSON error of `code` ({"success":false,"message":...}); `message` NULL
 * means api_code_message(code); the state fields when `snap` is given. */
void http_send_error(http_server_t *srv, h2o_req_t *req, metrics_route_t route, api_code_t code,
                     const char *message, const sess_snapshot_t *snap);

/* Watches a response from now until h2o has passed all of it on. */
void http_track_response(http_server_t *srv, h2o_req_t *req);

/* Closes connections whose response was not taken within `limit` ms. */
void http_tracks_sweep(http_server_t *srv, uint64_t now, uint64_t limit);

/* Forgets every tracked response (the server is being freed). */
void http_tracks_clear(http_server_t *srv);

/* Closes a connection from under h2o (both directions of its socket shut
 * down), counting the limit `why` in /metrics. */
void http_force_close_sock(http_server_t *srv, h2o_socket_t *sock, metrics_limit_t why);
void http_force_close_req(http_server_t *srv, h2o_req_t *req, metrics_limit_t why);

/* The status (HTTP_BODY_STATUS[_ACCOUNT]) or qr (HTTP_BODY_QR) JSON body for
 * `snap` now, rendered at most once per snapshot and second of countdown.
 * Owned by the cache (valid until the next call); NULL when out of memory. */
const char *http_cached_body(http_server_t *srv, int kind, sess_snapshot_t *snap, size_t *len);

/* Releases every cached body. */
void http_body_cache_clear(http_server_t *srv);

/* --- reply.c: the request --- */

/* A request header by lower-case name; returns 1 and its value, or 0. */
int http_header_value(h2o_req_t *req, const char *name, h2o_iovec_t *out);

/* Passes a command on to the node that runs its session (`base`: that
 * node's ADVERTISE_URL) and answers with that node's answer (502 when it
 * cannot be reached). Returns 0 (the request is answered later). */
int http_forward(http_server_t *srv, h2o_req_t *req, const char *base, metrics_route_t metric);

/* Finds `name` in the query string; returns 1 and the raw value, or 0. */
int http_query_param(h2o_req_t *req, const char *name, h2o_iovec_t *out);

/* The caller's address (empty when unknown), for counting wrong keys. */
void http_peer_addr(h2o_req_t *req, char *buf, size_t len);

/* --- reply.c: browser guards and CORS (see guard.h) --- */

/* The request's Origin relative to the service. */
guard_origin_t http_origin_class(http_server_t *srv, h2o_req_t *req);

/* 1 for a browser request that only CORS_ORIGINS=* lets in, from a caller
 * without the configured key: it may read nothing a key protects. */
int http_wildcard_untrusted(http_server_t *srv, h2o_req_t *req);

/* Refuses a foreign Host, and state changes or WebSocket upgrades from a
 * foreign Origin, with 403. Returns 1 when the request was answered. */
int http_refuse_browser_request(http_server_t *srv, h2o_req_t *req);

/* CORS response headers for a listed (or "*") Origin. */
void http_add_cors(http_server_t *srv, h2o_req_t *req, int route_needs_key);

/* --- routes.c --- */

/* The catch-all h2o handler: guards, route lookup, methods, body limit,
 * authorization, then the route's handler. */
int http_on_req(h2o_handler_t *self, h2o_req_t *req);

/* The server stops: every waiting reconnect is answered 503 now. */
void http_reconnects_cancel(http_server_t *srv);

/* Cancels the reconnect waits whose client closed its connection. */
void http_reconnects_sweep(http_server_t *srv);

/* --- streams.c --- */

/* Answers `req` with an event stream of `session`, or of every session
 * when NULL (each event names its session): a WebSocket when it is an
 * upgrade, else SSE. An unknown session gets a 404. The stream resumes
 * after the Last-Event-ID header or ?since= (api_resume_cursor; a
 * malformed one gets a 400): a seq of the session, an event id on a stream
 * of every session. */
int http_stream_open(http_server_t *srv, h2o_req_t *req, const char *session, int with_account);

/* The loop's wake-up for streams with new snapshots. */
void http_on_flush(uv_async_t *a);

/* The heartbeat timer: SSE comments and WebSocket pings. */
void http_on_heartbeat(uv_timer_t *t);

/* Closes streams whose client stopped taking what is sent for `limit` ms. */
void http_streams_sweep(http_server_t *srv, uint64_t now, uint64_t limit);

/* Ends every stream (the server stops): SSE gets its final chunk, WebSocket
 * a close frame. */
void http_streams_end(http_server_t *srv);

/* Releases the shared event renderings. */
void http_event_cache_clear(http_server_t *srv);

#endif
