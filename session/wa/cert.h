/* WhatsApp's Noise server certificate chain (protocol doc 2.4): verification
 * of a serialized CertChain against a configurable trusted root key and root
 * serial at an explicit time, with all eight checks of the stricter
 * reference (whatsmeow) in its order, and a builder for tests and the fake
 * server. No state; nothing here is logged. */
#ifndef WG_SESSION_WA_CERT_H
#define WG_SESSION_WA_CERT_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/crypto.h"

enum {
    WA_CERT_OK = 0,
    WA_CERT_EMALFORMED = -1,    /* not a CertChain, or its details do not decode */
    WA_CERT_EMISSING = -2,      /* a certificate, details or 64-byte signature missing */
    WA_CERT_EINTER_SIG = -3,    /* intermediate not signed by the trusted root */
    WA_CERT_EINTER_ISSUER = -4, /* intermediate issuer serial is not the root's */
    WA_CERT_EINTER_KEY = -5,    /* intermediate key is not 32 bytes */
    WA_CERT_ELEAF_SIG = -6,     /* leaf not signed by the intermediate */
    WA_CERT_EINTER_TIME = -7,   /* intermediate not valid now */
    WA_CERT_ELEAF_ISSUER = -8,  /* leaf issuer serial is not the intermediate's */
    WA_CERT_ELEAF_KEY = -9,     /* leaf key is not the server's static key */
    WA_CERT_ELEAF_TIME = -10,   /* leaf not valid now */
    WA_CERT_ENOMEM = -11,
    WA_CERT_EINVAL = -12,  /* bad argument (NULL pointer) */
    WA_CERT_ECRYPTO = -13, /* the crypto library failed while signing */
};

/* The root the chain must lead to. */
typedef struct {
    uint8_t root_pub[32];
    uint32_t root_serial; /* WhatsApp's root: 0 */
} wa_cert_trust_t;

/* Returns a short English description of an error code (a static string;
 * never NULL, also for unknown codes). */
const char *wa_cert_strerror(int code);

/* Verifies the serialized CertChain chain[0..len) against `trust`, the
 * server static key decrypted in the handshake and `now` (Unix seconds):
 * 1 all four fields present, 64-byte signatures (EMISSING); 2 intermediate
 * signed by the root (EINTER_SIG); 3 intermediate issuer serial is the
 * root's (EINTER_ISSUER) and its key is 32 bytes (EINTER_KEY); 4 leaf signed
 * by the intermediate key (ELEAF_SIG); 5 intermediate notBefore <= now <=
 * notAfter (EINTER_TIME); 6 leaf issuer serial is the intermediate's serial
 * (ELEAF_ISSUER); 7 leaf key == server_static, constant time (ELEAF_KEY);
 * 8 leaf validity (ELEAF_TIME). Absent numeric fields count as 0, as in
 * whatsmeow. Returns WA_CERT_OK or the first failing check's code;
 * EMALFORMED when the chain or a details message does not decode, EINVAL
 * for NULL arguments, ENOMEM. */
int wa_cert_verify(const uint8_t *chain, size_t len, const wa_cert_trust_t *trust,
                   const uint8_t server_static[32], int64_t now);

/* One certificate to build. */
typedef struct {
    uint32_t serial;
    uint32_t issuer_serial;
    uint8_t key[32];
    uint64_t not_before, not_after;
} wa_cert_details_t;

/* Builds a serialized CertChain: `inter` (normally issuer_serial = the root
 * serial, key = the intermediate public key) signed with `root_priv`, and
 * `leaf` (issuer_serial = inter->serial, key = the server's static public
 * key) signed with `inter_priv`; all five details fields are written. On
 * success returns 0 and *out is a malloc'd buffer of *out_len bytes (caller
 * frees). Returns EINVAL (NULL argument), ENOMEM or ECRYPTO. Used by the
 * fake server and tests. */
int wa_cert_build_chain(const uint8_t root_priv[32], const uint8_t inter_priv[32],
                        const wa_cert_details_t *inter, const wa_cert_details_t *leaf,
                        uint8_t **out, size_t *out_len);

#endif
