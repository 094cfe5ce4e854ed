/* The WhatsApp frame socket (whatsmeow's socket/framesocket.go): a WebSocket
 * client over libwebsockets on the service's libuv loop, that sends one frame
 * per binary message (the first prefixed with the intro header), reassembles
 * received frames from arbitrary message boundaries, and reports them.
 *
 * One wa_fsock_ctx_t (an lws context on a foreign libuv loop) serves every
 * connection of the process; it is created and destroyed by the owner of the
 * loop. All calls are loop-thread only. */
#ifndef WG_SESSION_WA_FRAMESOCKET_H
#define WG_SESSION_WA_FRAMESOCKET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define WA_FSOCK_DEFAULT_URL "wss://web.whatsapp.com/ws/chat"
#define WA_FSOCK_ORIGIN "https://web.whatsapp.com"

/* Why a connection ended (the `code` of on_close). */
enum {
    WA_FSOCK_CLOSED = 0,    /* the peer closed the WebSocket */
    WA_FSOCK_ECONNECT = -1, /* could not connect (refused, DNS, TLS, handshake) */
    WA_FSOCK_ETIMEOUT = -2, /* not connected within the connect timeout */
    WA_FSOCK_ETOOBIG = -3,  /* the peer sent a frame over the maximum */
    WA_FSOCK_ENOMEM = -4,
    WA_FSOCK_EURL = -5, /* not a ws:// or wss:// URL */
};

typedef struct wa_fsock_ctx wa_fsock_ctx_t;
typedef struct wa_fsock wa_fsock_t;

typedef struct {
    /* PEM file of CAs trusted for wss:// (NULL: the system's CA bundle). */
    const char *ca_file;
} wa_fsock_ctx_opts_t;

/* Creates the shared context on `loop`. Returns NULL with a message in err. */
wa_fsock_ctx_t *wa_fsock_ctx_new(uv_loop_t *loop, const wa_fsock_ctx_opts_t *opts, char *err,
                                 size_t errlen);

/* The loop the context runs on. */
uv_loop_t *wa_fsock_ctx_loop(wa_fsock_ctx_t *ctx);

/* Starts destroying the context (every connection must have been closed):
 * lws closes its loop handles asynchronously, so run the loop afterwards
 * until it has no more handles, then call wa_fsock_ctx_free. */
void wa_fsock_ctx_destroy(wa_fsock_ctx_t *ctx);

/* Completes the destruction and frees the context. NULL is ignored. */
void wa_fsock_ctx_free(wa_fsock_ctx_t *ctx);

typedef struct {
    void (*on_open)(void *arg);
    /* One complete frame payload (borrowed for the call). */
    void (*on_frame)(void *arg, const uint8_t *payload, size_t len);
    /* The connection ended; `code` is WA_FSOCK_*, `reason` a short text. The
     * socket is gone after this returns (do not call wa_fsock_close). */
    void (*on_close)(void *arg, int code, const char *reason);
    void *arg;
} wa_fsock_callbacks_t;

typedef struct {
    unsigned connect_timeout_ms; /* 0 = 20000 */
    size_t max_frame;            /* 0 = the protocol's limit (2^24 - 1) */
} wa_fsock_opts_t;

/* Starts connecting to `url` (ws:// or wss://). Returns the socket, or NULL
 * with *err set (WA_FSOCK_EURL, WA_FSOCK_ENOMEM, WA_FSOCK_ECONNECT). The
 * callbacks report everything else. */
wa_fsock_t *wa_fsock_connect(wa_fsock_ctx_t *ctx, const char *url, const wa_fsock_callbacks_t *cb,
                             const wa_fsock_opts_t *opts, int *err);

/* Queues one frame with `payload` (the intro header goes before the first).
 * Returns 0, WA_FSOCK_ETOOBIG or WA_FSOCK_ENOMEM; -100 when not open. */
int wa_fsock_send(wa_fsock_t *s, const uint8_t *payload, size_t len);

/* Closes the connection. No callback runs after this returns; the memory is
 * released once libwebsockets has let go of the connection. */
void wa_fsock_close(wa_fsock_t *s);

/* Returns a short English description of a WA_FSOCK_* code. */
const char *wa_fsock_strerror(int code);

#endif
