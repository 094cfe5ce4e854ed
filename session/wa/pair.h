/* Linking a new companion by QR (protocol doc 5.3 and 5.5): the QR string
 * built from a pair-device ref, its parser, and the verification and
 * countersigning of pair-success (HMAC with the adv secret, the account's
 * XEdDSA signature, our device signature). */
#ifndef WG_SESSION_WA_PAIR_H
#define WG_SESSION_WA_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/node.h"

#define WA_PAIR_QR_PREFIX "https://wa.me/settings/linked_devices#"

/* The companion platform id in the QR: Chrome. */
#define WA_PAIR_PLATFORM_ID "1"

enum {
    WA_PAIR_OK = 0,
    WA_PAIR_ENOMEM = -1,
    WA_PAIR_EMALFORMED = -2, /* a missing or undecodable part */
    WA_PAIR_EHMAC = -3,      /* the HMAC does not match our adv secret */
    WA_PAIR_ESIG = -4,       /* the account signature does not verify */
    WA_PAIR_ECRYPTO = -5,
};

/* Returns a short English description of a code. */
const char *wa_pair_strerror(int code);

/* Builds "https://wa.me/settings/linked_devices#ref,noise,identity,adv,1"
 * (standard base64 with padding). Returns a malloc'd string or NULL. */
char *wa_pair_qr(const uint8_t *ref, size_t ref_len, const uint8_t noise_pub[32],
                 const uint8_t ident_pub[32], const uint8_t adv_secret[32]);

/* The parts of a QR string. `ref` points into a copy owned by the struct. */
typedef struct {
    char *buf;
    size_t buf_len; /* private: what wa_pair_qr_parts_free wipes */
    const char *ref;
    uint8_t noise_pub[32], ident_pub[32], adv_secret[32];
    const char *platform;
} wa_pair_qr_parts_t;

/* Parses a QR string (with the URL prefix and five fields). Returns 0, or
 * WA_PAIR_EMALFORMED / WA_PAIR_ENOMEM. Free with wa_pair_qr_parts_free. */
int wa_pair_qr_parse(const char *qr, wa_pair_qr_parts_t *out);

void wa_pair_qr_parts_free(wa_pair_qr_parts_t *p);

/* What a verified pair-success gave. Heap parts freed by
 * wa_pair_result_free. */
typedef struct {
    char *jid, *lid, *platform, *business_name;
    uint32_t key_index;
    uint8_t *account; /* ADVSignedDeviceIdentity with our device signature (to store) */
    size_t account_len;
    uint8_t *reply_identity; /* the same without accountSignatureKey (to send) */
    size_t reply_identity_len;
    int hosted;
} wa_pair_result_t;

void wa_pair_result_free(wa_pair_result_t *r);

/* Verifies the pair-success iq `iq` with our identity key pair and adv
 * secret, and countersigns it. Returns WA_PAIR_OK with *res filled, or an
 * error (nothing to persist then). */
int wa_pair_success(const wa_node_t *iq, const uint8_t ident_priv[32], const uint8_t ident_pub[32],
                    const uint8_t adv_secret[32], wa_pair_result_t *res);

/* The pair-device-sign reply to iq `id`. Returns a new node or NULL. */
wa_node_t *wa_pair_sign_reply(const char *id, const wa_pair_result_t *res);

/* An error reply `<iq type="error"><error code= text=/></iq>` to iq `id`. */
wa_node_t *wa_pair_error_reply(const char *id, int code, const char *text);

/* Base64 helpers (standard alphabet, padding). Encode returns a malloc'd
 * string or NULL; decode returns the decoded length or -1. */
char *wa_pair_b64(const uint8_t *data, size_t len);
long wa_pair_unb64(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
