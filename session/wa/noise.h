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
    WA_NOISE_EPROTO = -2,   /* not a HandshakeMessage, or the wrong part of it */
    WA_NOISE_EKEY = -3,     /* a key of the wrong size */
    WA_NOISE_EDECRYPT = -4, /* authentication failed (tampered or wrong key) */
    WA_NOISE_ECERT = -5,    /* the server certificate chain did not verify */
    WA_NOISE_ESTATE = -6,   /* call out of order */
    WA_NOISE_ECRYPTO = -7,  /* the crypto library failed */
    WA_NOISE_ECOUNTER = -8, /* nonce counter exhausted */
};

/* The 4-byte prologue, also the intro header sent before the first frame. */
extern const uint8_t wa_noise_prologue[4];

typedef struct wa_noise wa_noise_t;

/* Returns a short English description of an error code. */
const char *wa_noise_strerror(int code);

/* Creates an initiator with the long-term noise key pair `s`, trusting
 * `trust` for the server's certificate chain, checking validity at `now`
 * (Unix seconds). Returns NULL when out of memory. Free with wa_noise_free. */
wa_noise_t *wa_noise_new_initiator(const wa_keypair_t *s, const wa_cert_trust_t *trust,
                                   int64_t now);

/* Creates a responder with static key pair `s` that presents the serialized
 * CertChain `chain` (copied). Returns NULL when out of memory. */
wa_noise_t *wa_noise_new_responder(const wa_keypair_t *s, const uint8_t *chain, size_t chain_len);

/* Frees the state, wiping keys. NULL is ignored. */
void wa_noise_free(wa_noise_t *n);

/* Initiator step 1: a fresh ephemeral key; returns the serialized
 * HandshakeMessage{clientHello} in *out (malloc'd, caller frees). */
int wa_noise_client_hello(wa_noise_t *n, uint8_t **out, size_t *out_len);

/* Initiator step 2: processes the server's HandshakeMessage (serverHello),
 * verifies the certificate chain (*cert_err gets the WA_CERT_* code when
 * non-NULL), and produces HandshakeMessage{clientFinish} carrying `payload`
 * (the serialized ClientPayload). The transport keys are ready afterwards. */
int wa_noise_client_finish(wa_noise_t *n, const uint8_t *server_hello, size_t len,
                           const uint8_t *payload, size_t payload_len, uint8_t **out,
                           size_t *out_len, int *cert_err);

/* Responder step 1: processes HandshakeMessage{clientHello}; produces the
 * serverHello message (malloc'd). */
int wa_noise_server_hello(wa_noise_t *n, const uint8_t *client_hello, size_t len, uint8_t **out,
                          size_t *out_len);

/* Responder step 2: processes HandshakeMessage{clientFinish}; returns the
 * client's static public key and the decrypted payload (malloc'd). The
 * transport keys are ready afterwards. */
int wa_noise_server_finish(wa_noise_t *n, const uint8_t *client_finish, size_t len,
                           uint8_t client_static[32], uint8_t **payload, size_t *payload_len);

/* 1 once the handshake is complete. */
int wa_noise_ready(const wa_noise_t *n);

/* Transport: encrypts one frame payload (ciphertext + 16-byte tag, malloc'd). */
int wa_noise_encrypt(wa_noise_t *n, const uint8_t *pt, size_t len, uint8_t **out, size_t *out_len);

/* Transport: decrypts one frame payload (malloc'd plaintext). A failure is
 * fatal for the connection: the counters are then out of step. */
int wa_noise_decrypt(wa_noise_t *n, const uint8_t *ct, size_t len, uint8_t **out, size_t *out_len);

#endif
