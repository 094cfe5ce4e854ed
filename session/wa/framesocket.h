/* The WhatsApp frame socket (protocol doc section 1; whatsmeow's
 * socket/framesocket.go): a WebSocket client over libwebsockets on the
 * caller's libuv loop, that sends one frame per binary message (the first
 * prefixed with the intro header "WA" 06 03), reassembles received frames
 * from arbitrary message boundaries (split, merged, fragmented), ignores text
 * messages, and reports frames and the end of the connection by callbacks.
 *
 * Contexts: one wa_fsock_ctx_t (one lws context, with the lws libuv event lib
 * on the caller's "foreign" loop) serves every connection of the process; the
 * owner of the loop creates it once, opens any number of connections on it,
 * and destroys it after closing them. A context per connection would cost a
 * TLS client context and lws service handles each, and a multi-stage
 * asynchronous teardown per reconnect. The TLS trust settings belong to the
 * context. Everything is loop-thread only; there is no global state besides
 * libwebsockets' own log settings. */
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
    WA_FSOCK_EURL = -5,    /* not a ws:// or wss:// URL */
    WA_FSOCK_ECLOSED = -6, /* wa_fsock_send on a closing or closed socket */
};

typedef struct wa_fsock_ctx wa_fsock_ctx_t;
typedef struct wa_fsock wa_fsock_t;

typedef struct {
    /* PEM file of the only CAs trusted for wss:// (tests). NULL: the system's
     * CAs (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR apply). The
     * server certificate is always verified, including its host name or IP
     * address against the URL's host (also sent as SNI). */
    const char *ca_file;
} wa_fsock_ctx_opts_t;

/* Creates the shared context on `loop` (opts may be NULL). The context keeps
 * no pointer to opts. Returns the context (free it with destroy + free), or
 * NULL with a message in err (an unreadable ca_file, or lws failing). */
wa_fsock_ctx_t *wa_fsock_ctx_new(uv_loop_t *loop, const wa_fsock_ctx_opts_t *opts, char *err,
                                 size_t errlen);

/* The loop the context runs on. */
uv_loop_t *wa_fsock_ctx_loop(wa_fsock_ctx_t *ctx);

/* Starts destroying the context (close every connection first; any still
 * open are dropped without callbacks): lws closes its loop handles
 * asynchronously, so run the loop afterwards (uv_run(loop, UV_RUN_DEFAULT)
 * returns once no handle is left), then call wa_fsock_ctx_free. NULL is
 * ignored. */
void wa_fsock_ctx_destroy(wa_fsock_ctx_t *ctx);

/* Completes the destruction (running the loop briefly if lws is not done
 * yet) and frees the context. NULL is ignored. */
void wa_fsock_ctx_free(wa_fsock_ctx_t *ctx);

/* Callbacks run on the loop thread, never from inside wa_fsock_connect,
 * wa_fsock_send or wa_fsock_close, and never after wa_fsock_close. Each may
 * call wa_fsock_send and wa_fsock_close (except on_close, see there). Any may
 * be NULL. */
typedef struct {
    /* The WebSocket handshake completed; frames queued so far go out now. */
    void (*on_open)(void *arg);
    /* One complete frame payload (borrowed for the call). */
    void (*on_frame)(void *arg, const uint8_t *payload, size_t len);
    /* The connection ended (once, unless the caller closed it first); `code`
     * is WA_FSOCK_*, `reason` a short English text, borrowed for the call
     * (with the WebSocket close status when the peer sent one, and OpenSSL's
     * verdict when the server certificate was refused). The socket is gone
     * once this returns: do
     * not call wa_fsock_close or wa_fsock_send on it, now or later. */
    void (*on_close)(void *arg, int code, const char *reason);
    void *arg;
} wa_fsock_callbacks_t;

typedef struct {
    unsigned connect_timeout_ms; /* TCP + TLS + WebSocket handshake; 0 = 20000 */
    size_t max_frame;            /* 0 = the protocol's limit (2^24 - 1) */
    /* Edge routing info from an earlier connection: the first frame is then
     * preceded by "ED" 00 01 len[3] info (protocol doc 1.2). NULL = none;
     * copied. */
    const uint8_t *routing_info;
    size_t routing_info_len;
} wa_fsock_opts_t;

/* Starts connecting to `url` (ws:// or wss://, e.g. WA_FSOCK_DEFAULT_URL),
 * sending Origin: https://web.whatsapp.com, Cache-Control and Pragma
 * no-cache, no sub-protocol. `cb` is copied; opts may be NULL. Returns the
 * socket (owned by the module until on_close or wa_fsock_close), or NULL with
 * *err set (WA_FSOCK_EURL, WA_FSOCK_ENOMEM, WA_FSOCK_ECONNECT when lws
 * refuses at once); no callback runs for a NULL return. Everything later is
 * reported through the callbacks. */
wa_fsock_t *wa_fsock_connect(wa_fsock_ctx_t *ctx, const char *url, const wa_fsock_callbacks_t *cb,
                             const wa_fsock_opts_t *opts, int *err);

/* Queues one frame with `payload` (copied) as one binary WebSocket message;
 * the first frame of the connection is prefixed with the intro header. May
 * be called before on_open (sent once open). Returns 0, WA_FSOCK_ETOOBIG
 * (len > WA_FRAME_HARD_MAX), WA_FSOCK_ENOMEM or WA_FSOCK_ECLOSED. */
int wa_fsock_send(wa_fsock_t *s, const uint8_t *payload, size_t len);

/* Closes the connection: frames already queued on an open connection are
 * written first (for up to a few seconds), then the connection is closed
 * (lws 4.1 may drop the TCP connection without a WebSocket close frame).
 * No callback runs after this returns and `s` must not be used again; the
 * memory is released once libwebsockets has let go of the connection. NULL
 * and repeated calls are ignored. */
void wa_fsock_close(wa_fsock_t *s);

/* Closes as wa_fsock_close does, and calls gone(arg) on the loop thread
 * once the connection is really gone (libwebsockets destroyed it: the peer
 * sees no connection any more), from inside a libwebsockets callback:
 * gone must not connect or close sockets itself. At once when nothing is
 * left to close (s NULL, or already gone). */
void wa_fsock_close_then(wa_fsock_t *s, void (*gone)(void *arg), void *arg);

/* Returns a short English description (static) of a WA_FSOCK_* code. */
const char *wa_fsock_strerror(int code);

#endif
