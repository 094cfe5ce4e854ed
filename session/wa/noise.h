/* The Noise XX handshake exactly as WhatsApp Web does it (protocol doc 2.2
 * and 2.3): X25519, AES-256-GCM, SHA-256, the raw 32-byte protocol name as
 * the initial hash, the "WA" 06 03 prologue and HandshakeMessage protobufs;
 * then the transport ciphers. Both roles: the initiator is the companion
 * client, the responder is the project's fake server. Transport-independent:
 * it consumes and produces frame payloads only. */
#ifndef WG_SESSION_WA_NOISE_H
#define WG_SESSION_WA_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/cert.h"
#include "session/wa/crypto.h"

enum {
    WA_NOISE_OK = 0,
    WA_NOISE_ENOMEM = -1,
    WA_NOISE_EPROTO = -2,   /* not a HandshakeMessage (bad protobuf), or a required part missing */
    WA_NOISE_EKEY = -3,     /* a key or encrypted key of the wrong size, or a low-order DH key */
    WA_NOISE_EDECRYPT = -4, /* authentication failed (tampered data, wrong key, out of step) */
    WA_NOISE_ECERT = -5,    /* the server certificate chain did not verify (see cert_err) */
    WA_NOISE_ESTATE = -6,   /* call out of order, wrong role, or after a failure */
    WA_NOISE_ECRYPTO = -7,  /* the crypto library failed */
    WA_NOISE_ECOUNTER = -8, /* nonce counter exhausted */
    WA_NOISE_EINVAL = -9,   /* bad argument (NULL state, data too large) */
};

/* The 4-byte prologue "WA" 06 03, also the intro header the transport sends
 * before the first frame (protocol doc 1.2). */
extern const uint8_t wa_noise_prologue[4];

typedef struct wa_noise wa_noise_t;

/* Returns a short English description of an error code (a static string;
 * never NULL, also for unknown codes). */
const char *wa_noise_strerror(int code);

/* Creates an initiator (the companion client) with the long-term noise key
 * pair `s` (copied), trusting `trust` (root public key + expected root
 * serial, copied) for the server's certificate chain and checking its
 * validity at `now` (Unix seconds). The symmetric state is initialised and
 * the prologue mixed in. Returns NULL when out of memory or an argument is
 * NULL. The caller owns the result; free it with wa_noise_free. */
wa_noise_t *wa_noise_new_initiator(const wa_keypair_t *s, const wa_cert_trust_t *trust,
                                   int64_t now);

/* Creates a responder (the project's fake server) with static key pair `s`
 * (copied) that presents the serialized CertChain `chain` (copied; see
 * wa_cert_build_chain). Returns NULL when out of memory or `s` is NULL. The
 * caller owns the result; free it with wa_noise_free. */
wa_noise_t *wa_noise_new_responder(const wa_keypair_t *s, const uint8_t *chain, size_t chain_len);

/* Frees the state, wiping all keys. NULL is ignored. */
void wa_noise_free(wa_noise_t *n);

/* For known-answer tests only: uses `e` (copied) as the ephemeral key pair
 * instead of a fresh random one. Must be called before wa_noise_client_hello
 * (initiator) or wa_noise_server_hello (responder). Returns 0, or ESTATE
 * when called later. Never use it on a real connection. */
int wa_noise_set_ephemeral(wa_noise_t *n, const wa_keypair_t *e);

/* Initiator step 1 (protocol doc 2.3 steps 3-4): makes a fresh ephemeral
 * key, MixHash(e.pub), and returns the serialized
 * HandshakeMessage{clientHello{ephemeral}} in *out (malloc'd, caller frees;
 * the transport puts the intro header and frame length in front). Returns 0,
 * ESTATE (wrong role or order), ENOMEM or ECRYPTO. */
int wa_noise_client_hello(wa_noise_t *n, uint8_t **out, size_t *out_len);

/* Initiator step 2 (steps 5-15): processes the server's frame payload
 * (HandshakeMessage{serverHello}), verifies the certificate chain against
 * the decrypted server static key, and produces the serialized
 * HandshakeMessage{clientFinish} carrying `payload` (the serialized
 * ClientPayload; may be NULL when payload_len is 0) in *out (malloc'd,
 * caller frees). The transport keys are ready afterwards.
 * Returns 0, or: EPROTO (bad protobuf / no serverHello / a field missing),
 * EKEY (ephemeral not 32 bytes, static not 48, low-order key), EDECRYPT
 * (static or payload does not authenticate), ECERT (chain rejected; when
 * cert_err is non-NULL *cert_err gets the WA_CERT_* code, else it is 0),
 * ESTATE, ENOMEM, ECRYPTO. Any error is final for this state. */
int wa_noise_client_finish(wa_noise_t *n, const uint8_t *server_hello, size_t len,
                           const uint8_t *payload, size_t payload_len, uint8_t **out,
                           size_t *out_len, int *cert_err);

/* Responder step 1: processes the client's first frame payload
 * (HandshakeMessage{clientHello}, without the intro header) and produces the
 * serialized HandshakeMessage{serverHello} in *out (malloc'd, caller frees).
 * Returns 0, EPROTO, EKEY (ephemeral not 32 bytes or low-order), ESTATE,
 * ENOMEM or ECRYPTO. Any error is final for this state. */
int wa_noise_server_hello(wa_noise_t *n, const uint8_t *client_hello, size_t len, uint8_t **out,
                          size_t *out_len);

/* Responder step 2: processes HandshakeMessage{clientFinish}; writes the
 * client's static public key (its noise key) to client_static and returns
 * the decrypted ClientPayload bytes in *payload (malloc'd, caller frees;
 * *payload_len may be 0). The transport keys are ready afterwards.
 * Returns 0, EPROTO, EKEY (static not 48 bytes or low-order), EDECRYPT,
 * ESTATE, ENOMEM or ECRYPTO. Any error is final for this state. */
int wa_noise_server_finish(wa_noise_t *n, const uint8_t *client_finish, size_t len,
                           uint8_t client_static[32], uint8_t **payload, size_t *payload_len);

/* Returns 1 once the handshake is complete (transport ready), else 0
 * (also for NULL). */
int wa_noise_ready(const wa_noise_t *n);

/* Transport (step 16): encrypts one frame payload with the write key and
 * the write counter; *out (malloc'd, caller frees) gets ciphertext + 16-byte
 * tag, *out_len = len + 16. The initiator writes with the client->server
 * key, the responder with the server->client key. Returns 0, ESTATE (not
 * ready), EINVAL (len too large), ECOUNTER, ENOMEM or ECRYPTO. */
int wa_noise_encrypt(wa_noise_t *n, const uint8_t *pt, size_t len, uint8_t **out, size_t *out_len);

/* Transport: decrypts one frame payload with the read key and read counter;
 * *out (malloc'd, caller frees) gets the plaintext, *out_len = len - 16.
 * Returns 0, EDECRYPT (shorter than a tag, tampered, or out of order),
 * ESTATE, EINVAL, ECOUNTER, ENOMEM or ECRYPTO. A failure is fatal for the
 * connection: the read counter has advanced and is out of step. */
int wa_noise_decrypt(wa_noise_t *n, const uint8_t *ct, size_t len, uint8_t **out, size_t *out_len);

#endif
