/* The fake WhatsApp server's transport: a WebSocket server (libwebsockets on
 * a foreign libuv loop) on a loopback address, ws:// or wss://, that hands
 * every received binary message to its owner as raw bytes and sends raw
 * bytes as binary messages. Frames, Noise and nodes are layered on top in
 * fakewa.c. Loop-thread only. */
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
    /* A plain HTTP request (the control API): returns the status and a
     * malloc'd JSON body in *resp (freed by the server). NULL = 404. */
    int (*on_http)(void *arg, int post, const char *path, const char *body, size_t len,
                   char **resp);
} fakewa_ws_callbacks_t;

typedef struct {
    const char *host;      /* listen address; NULL = 127.0.0.1 */
    int port;              /* 0 = any free port */
    const char *cert_file; /* PEM: serve wss:// */
    const char *key_file;
} fakewa_ws_opts_t;

/* Starts listening. Returns NULL with a message in err. */
fakewa_ws_t *fakewa_ws_start(uv_loop_t *loop, const fakewa_ws_opts_t *opts,
                             const fakewa_ws_callbacks_t *cb, char *err, size_t errlen);

/* The port actually listened on. */
int fakewa_ws_port(const fakewa_ws_t *ws);

/* Closes every connection and the listener. Run the loop afterwards until it
 * has no more handles, then call fakewa_ws_free. */
void fakewa_ws_stop(fakewa_ws_t *ws);

/* Completes the shutdown and frees the server. NULL is ignored. */
void fakewa_ws_free(fakewa_ws_t *ws);

/* Queues `data` as one binary WebSocket message. Returns 0 or -1. */
int fakewa_ws_send(fakewa_ws_conn_t *c, const uint8_t *data, size_t len);

/* Closes one connection (on_close follows). */
void fakewa_ws_close(fakewa_ws_conn_t *c);

/* The user pointer returned by on_open. */
void *fakewa_ws_conn_user(const fakewa_ws_conn_t *c);

#endif
