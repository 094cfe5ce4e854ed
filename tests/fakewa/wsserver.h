/* The fake WhatsApp server's transport: a WebSocket server (libwebsockets on
 * a foreign libuv loop) on a loopback address, ws:// or wss://, that hands
 * every received binary message to its owner as raw bytes and sends raw
 * bytes as binary messages, with fault helpers (bytes split over several
 * messages or over several fragments of one message, text messages). Frames, Noise and nodes are
 * layered on top in fakewa.c. One lws context per server; loop-thread only; no global state besides
 * lws' log level. */
#ifndef WG_TESTS_FAKEWA_WSSERVER_H
#define WG_TESTS_FAKEWA_WSSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct fakewa_ws fakewa_ws_t;
typedef struct fakewa_ws_conn fakewa_ws_conn_t;

typedef struct {
    /* A client connected; the return value becomes the connection's user
     * pointer (see fakewa_ws_conn_user). */
    void *(*on_open)(void *arg, fakewa_ws_conn_t *c);
    /* One complete binary message from the client (borrowed). */
    void (*on_message)(void *arg, fakewa_ws_conn_t *c, const uint8_t *data, size_t len);
    /* The connection is gone; `c` must not be used afterwards. */
    void (*on_close)(void *arg, fakewa_ws_conn_t *c);
    void *arg;
    /* A plain HTTP request (the control API, /sw.js; `path` carries the
     * query after a '?', its arguments URL-decoded and joined by '&'): returns the status
     * and a malloc'd body in *resp (freed by the server; JSON, JavaScript
     * for a path ending in ".js"), or status 0 to leave the request
     * unanswered until the client goes away. NULL = 404. */
    int (*on_http)(void *arg, int post, const char *path, const char *body, size_t len,
                   char **resp);
} fakewa_ws_callbacks_t;

typedef struct {
    const char *host;      /* listen address; NULL = 127.0.0.1 */
    int port;              /* 0 = any free port */
    const char *cert_file; /* PEM: serve wss:// */
    const char *key_file;
} fakewa_ws_opts_t;

/* Starts listening (cb is copied; opts->host etc. are not kept). Returns the
 * server (release it with fakewa_ws_stop, running the loop, fakewa_ws_free),
 * or NULL with a message in err (port in use, unreadable certificate...). */
fakewa_ws_t *fakewa_ws_start(uv_loop_t *loop, const fakewa_ws_opts_t *opts,
                             const fakewa_ws_callbacks_t *cb, char *err, size_t errlen);

/* The port actually listened on (the chosen one when opts->port was 0). */
int fakewa_ws_port(const fakewa_ws_t *ws);

/* Closes every connection and the listener. Run the loop afterwards until it
 * has no more handles, then call fakewa_ws_free. */
void fakewa_ws_stop(fakewa_ws_t *ws);

/* Completes the shutdown and frees the server. NULL is ignored. */
void fakewa_ws_free(fakewa_ws_t *ws);

/* Queues `data` (copied; may hold several frames, merged) as one binary
 * WebSocket message. Returns 0, or -1 (closing connection, out of memory). */
int fakewa_ws_send(fakewa_ws_conn_t *c, const uint8_t *data, size_t len);

/* Fault helper: queues `data` as consecutive binary messages of `piece`
 * bytes each (the last may be shorter; piece 0 = 1). Returns 0 or -1 (then
 * nothing was queued). */
int fakewa_ws_send_split(fakewa_ws_conn_t *c, const uint8_t *data, size_t len, size_t piece);

/* Fault helper: queues `data` as ONE binary message sent as WebSocket
 * fragments (a binary frame without FIN, then continuation frames) of
 * `piece` bytes each (piece 0 = 1). Returns 0 or -1 (nothing queued). */
int fakewa_ws_send_fragmented(fakewa_ws_conn_t *c, const uint8_t *data, size_t len, size_t piece);

/* Fault helper: queues a text WebSocket message. Returns 0 or -1. */
int fakewa_ws_send_text(fakewa_ws_conn_t *c, const char *text, size_t len);

/* Closes one connection after writing what is queued (on_close follows).
 * With lws 4.1 the TCP connection is dropped without a WebSocket close
 * frame. Repeated calls are ignored. */
void fakewa_ws_close(fakewa_ws_conn_t *c);

/* The user pointer returned by on_open. */
void *fakewa_ws_conn_user(const fakewa_ws_conn_t *c);

/* A header of the connection's upgrade request, captured when it opened:
 * `name` is one of "path", "host", "origin", "cache-control", "pragma",
 * "sec-websocket-protocol" (lower case). Returns the value (owned by the
 * connection, valid until on_close returns), or NULL when absent or not
 * captured. */
const char *fakewa_ws_conn_header(const fakewa_ws_conn_t *c, const char *name);

#endif
