/* The project's fake WhatsApp server: the server role of the WhatsApp Web
 * protocol on loopback, for tests and `make demo`. This layer does the
 * transport: its own root key and certificate chain, the responder half of
 * the Noise handshake, then binary nodes in both directions, with transport
 * faults on demand (frames split byte by byte or merged into one WebSocket
 * message, a tampered certificate, a flipped ciphertext bit, garbage).
 * Loop-thread only. */
#ifndef WG_TESTS_FAKEWA_FAKEWA_H
#define WG_TESTS_FAKEWA_FAKEWA_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "session/wa/crypto.h"
#include "session/wa/node.h"

typedef struct fakewa fakewa_t;
typedef struct fakewa_conn fakewa_conn_t;

typedef struct {
    /* Handshake done: `client_static` is the client's noise key and
     * payload/len its decrypted ClientPayload (borrowed). */
    void (*on_client)(void *arg, fakewa_conn_t *c, const uint8_t client_static[32],
                      const uint8_t *payload, size_t len);
    /* A node from the client (borrowed). */
    void (*on_node)(void *arg, fakewa_conn_t *c, const wa_node_t *node);
    /* The connection ended; `reason` says why ("closed", "bad intro", ...). */
    void (*on_close)(void *arg, fakewa_conn_t *c, const char *reason);
    void *arg;
    /* Plain HTTP on the same port (the control API); see wsserver.h. */
    int (*on_http)(void *arg, int post, const char *path, const char *body, size_t len,
                   char **resp);
    /* A WebSocket connection opened (before the intro and handshake); may
     * be NULL. */
    void (*on_open)(void *arg);
} fakewa_callbacks_t;

typedef struct {
    const char *host;      /* NULL = 127.0.0.1 */
    int port;              /* 0 = any free port */
    const char *cert_file; /* PEM: wss:// */
    const char *key_file;
    /* Root key pair of the certificate chain; NULL = generate one. */
    const wa_keypair_t *root;
} fakewa_opts_t;

/* Transport faults, settable at any time (apply to later frames). */
typedef struct {
    size_t split;    /* > 0: send each frame in messages of this many bytes */
    int merge;       /* 1: hold frames; fakewa_flush sends them as one message;
                      * 2: the same, flushed automatically every few ms */
    int tamper_cert; /* 1: present a certificate chain with a flipped bit */
    int flip_next;   /* 1: flip one ciphertext bit of the next frame sent */
    int refuse;      /* 1: close every new connection before its handshake (offline) */
} fakewa_faults_t;

/* Starts the server. Returns NULL with a message in err. */
fakewa_t *fakewa_new(uv_loop_t *loop, const fakewa_opts_t *opts, const fakewa_callbacks_t *cb,
                     char *err, size_t errlen);

/* Stops the server and closes every connection. Run the loop afterwards
 * until it has no more handles, then call fakewa_free. */
void fakewa_stop(fakewa_t *f);

/* Completes the shutdown and frees the server. NULL is ignored. */
void fakewa_free(fakewa_t *f);

/* The port listened on. */
int fakewa_port(const fakewa_t *f);

/* The root public key the client must trust (32 bytes). */
const uint8_t *fakewa_root_pub(const fakewa_t *f);

/* The current fault settings, to change in place. */
fakewa_faults_t *fakewa_faults(fakewa_t *f);

/* Sends a node to one client. Returns 0 or -1 (not in transport phase,
 * encoding or memory failure). */
int fakewa_send(fakewa_conn_t *c, const wa_node_t *node);

/* Encrypts `plain` as the next transport frame without encoding a node: a
 * stanza that decrypts but does not decode, on demand. */
int fakewa_send_plain(fakewa_conn_t *c, const uint8_t *plain, size_t len);

/* The routing info the client's "ED" intro prefix carried on this
 * connection (NULL when it sent none). */
const uint8_t *fakewa_conn_routing(const fakewa_conn_t *c, size_t *len);

/* Sends raw bytes as one frame payload (not encrypted): garbage on demand. */
int fakewa_send_raw_frame(fakewa_conn_t *c, const uint8_t *data, size_t len);

/* Sends the frames held back by the merge fault as one WebSocket message. */
void fakewa_flush(fakewa_conn_t *c);

/* Closes one client connection. */
void fakewa_close(fakewa_conn_t *c);

/* Per-connection user pointer for the owner of the callbacks. */
void fakewa_conn_set_user(fakewa_conn_t *c, void *user);
void *fakewa_conn_user(const fakewa_conn_t *c);

#endif
