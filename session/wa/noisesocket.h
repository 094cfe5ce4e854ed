/* The companion's encrypted node connection (whatsmeow's
 * socket/noisesocket.go): opens a frame socket, runs the Noise XX handshake
 * with the given ClientPayload, then sends and receives binary nodes. It
 * reports exactly one of: ready, then nodes, then a close with a reason.
 * A frame that fails to decrypt ends the connection (the Noise counters are
 * lost); one that decrypts but does not decode as a node is logged and
 * dropped, and the connection stays (whatsmeow, protocol doc 11.4).
 * Loop-thread only. */
#ifndef WG_SESSION_WA_NOISESOCKET_H
#define WG_SESSION_WA_NOISESOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/cert.h"
#include "session/wa/crypto.h"
#include "session/wa/framesocket.h"
#include "session/wa/node.h"

/* Why a connection ended. */
enum {
    WA_NSOCK_CLOSED = 0,      /* the server closed the connection */
    WA_NSOCK_ECONNECT = -1,   /* could not open the WebSocket */
    WA_NSOCK_ETIMEOUT = -2,   /* no connection or no server hello in time */
    WA_NSOCK_EHANDSHAKE = -3, /* the Noise handshake failed (malformed, bad keys) */
    WA_NSOCK_ECERT = -4,      /* the server's certificate chain did not verify */
    WA_NSOCK_EDECRYPT = -5,   /* a frame failed authentication */
    WA_NSOCK_EBADNODE = -6,   /* (unused: a frame that decrypts but does not decode is dropped) */
    WA_NSOCK_ETOOBIG = -7,    /* an oversize frame */
    WA_NSOCK_ENOMEM = -8,
};

typedef struct wa_nsock wa_nsock_t;

typedef struct {
    /* The handshake completed; nodes may be sent. */
    void (*on_ready)(void *arg);
    /* A received node (borrowed for the call; the callee may close). */
    void (*on_node)(void *arg, const wa_node_t *node);
    /* The end, with a WA_NSOCK_* code and a human-readable reason (which
     * never contains key material). The socket is gone afterwards. */
    void (*on_close)(void *arg, int code, const char *reason);
    void *arg;
} wa_nsock_callbacks_t;

typedef struct {
    const char *url;
    wa_keypair_t noise_key; /* the long-term noise key pair */
    wa_cert_trust_t trust;  /* root key the server chain must lead to */
    const uint8_t *payload; /* serialized ClientPayload (copied) */
    size_t payload_len;
    unsigned connect_timeout_ms; /* WebSocket open and server hello; 0 = 20000 */
    int64_t now;                 /* Unix seconds for certificate validity; 0 = clock */
    const uint8_t *routing_info; /* edge routing prefix (see wa_fsock_opts_t); NULL = none */
    size_t routing_info_len;
} wa_nsock_opts_t;

/* Returns a short English description of a WA_NSOCK_* code. */
const char *wa_nsock_strerror(int code);

/* Connects and starts the handshake. Returns NULL with *err set when it
 * cannot even start; otherwise the callbacks report what happens. */
wa_nsock_t *wa_nsock_connect(wa_fsock_ctx_t *ctx, const wa_nsock_opts_t *opts,
                             const wa_nsock_callbacks_t *cb, int *err);

/* Encodes, encrypts and sends a node. Returns 0, or a negative code (not
 * ready, encoding or memory failure). */
int wa_nsock_send(wa_nsock_t *s, const wa_node_t *node);

/* Closes the connection; no callback runs after this returns. */
void wa_nsock_close(wa_nsock_t *s);

/* The same, and gone(arg) runs once the connection is really gone (see
 * wa_fsock_close_then; at once when nothing is left to close). */
void wa_nsock_close_then(wa_nsock_t *s, void (*gone)(void *arg), void *arg);

#endif
