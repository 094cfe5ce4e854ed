/* Linking by pairing code ("link with phone number", protocol doc 5.7 and
 * 11.5), the pure part: the 8-character code, the PBKDF2 key that wraps an
 * ephemeral public key (salt || iv || AES-256-CTR, 80 bytes), the key bundle
 * (HKDF + AES-256-GCM) and the adv secret the companion derives once the
 * phone entered the code, and the nodes of the exchange (companion_hello and
 * its answer, the primary_hello notification, companion_finish).
 *
 * Every random input is a parameter, so the reference client's vectors
 * reproduce byte for byte. Nothing here keeps state; every function is
 * reentrant and thread-safe. The functions taking a code run PBKDF2 with
 * 131072 iterations (tens of ms): call them on a worker thread.
 * Errors are the negative WA_PAIRCODE_* codes (wa_paircode_strerror). */
#ifndef WG_SESSION_WA_PAIRCODE_H
#define WG_SESSION_WA_PAIRCODE_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/node.h"

#define WA_PAIRCODE_CHARS 8           /* characters of a code */
#define WA_PAIRCODE_ITERATIONS 131072 /* PBKDF2 rounds (2 << 16) */
#define WA_PAIRCODE_WRAPPED_LEN 80    /* salt(32) || iv(16) || ciphertext(32) */
#define WA_PAIRCODE_BUNDLE_PLAIN_LEN 96
#define WA_PAIRCODE_BUNDLE_LEN (32 + 12 + WA_PAIRCODE_BUNDLE_PLAIN_LEN + 16)
#define WA_PAIRCODE_VALID_MS 180000 /* a code is valid this long */
#define WA_PAIRCODE_MAX_HELLOS 3    /* primary_hello attempts per code */
#define WA_PAIRCODE_REF_MAX 256     /* longest pairing ref accepted */
#define WA_PAIRCODE_PHONE_MAX 15    /* digits of an E.164 number */

/* What the companion announces: the web client type (as in the QR) and the
 * display WhatsApp validates as "Browser (OS)". */
#define WA_PAIRCODE_PLATFORM_ID "1"
#define WA_PAIRCODE_PLATFORM_DISPLAY "Chrome (Linux)"

enum {
    WA_PAIRCODE_OK = 0,
    WA_PAIRCODE_EINVAL = -1,   /* a bad argument (code, phone, display, size) */
    WA_PAIRCODE_ECRYPTO = -2,  /* the crypto library failed, or a low-order key */
    WA_PAIRCODE_EAUTH = -3,    /* the key bundle does not open (another code) */
    WA_PAIRCODE_EMISSING = -4, /* a required node, child or attribute is missing */
    WA_PAIRCODE_ESIZE = -5,    /* an element has the wrong size, or is repeated */
    WA_PAIRCODE_EREF = -6,     /* the pairing ref is not the one expected */
    WA_PAIRCODE_ESTAGE = -7,   /* another node or stage than expected */
    WA_PAIRCODE_EREFUSED = -8, /* WhatsApp answered with an error */
    WA_PAIRCODE_ENOMEM = -9,
};

/* A short English description of an error code; never NULL. */
const char *wa_paircode_strerror(int rc);

/* --- the code --- */

/* Encodes 5 random bytes as the 8-character code (base32, most significant
 * bits first, alphabet 123456789ABCDEFGHJKLMNPQRSTVWXYZ) into code[0..8],
 * NUL-terminated. */
void wa_paircode_encode(const uint8_t rnd[5], char code[WA_PAIRCODE_CHARS + 1]);

/* Formats a code for display, "ABCD-EFGH" (10 bytes with the NUL). */
void wa_paircode_format(const char *code, char out[WA_PAIRCODE_CHARS + 2]);

/* Reads a code as a person types it: letters in either case, an optional
 * '-' or spaces between the halves. Writes the 8 canonical characters to
 * `code` and returns 0, or WA_PAIRCODE_EINVAL (another length, a character
 * outside the alphabet). */
int wa_paircode_normalize(const char *typed, char code[WA_PAIRCODE_CHARS + 1]);

/* 1 when `display` has the form WhatsApp accepts, "Browser (OS)": a name
 * and an OS of printable ASCII without parentheses, one space between,
 * at most 64 bytes; else 0. */
int wa_paircode_display_ok(const char *display);

/* 1 when `phone` is 1..WA_PAIRCODE_PHONE_MAX digits and nothing else. */
int wa_paircode_phone_ok(const char *phone);

/* --- keys (PBKDF2: worker thread) --- */

/* key = PBKDF2-HMAC-SHA256(code as ASCII, salt, 131072 rounds, 32 bytes).
 * `code` is the 8 canonical characters. Returns 0, EINVAL or ECRYPTO. */
int wa_paircode_key(const char *code, const uint8_t salt[32], uint8_t key[32]);

/* out = salt || iv || AES-256-CTR(key(code, salt), iv, pub): an ephemeral
 * public key wrapped with the code. Returns 0, EINVAL or ECRYPTO. */
int wa_paircode_wrap(const char *code, const uint8_t salt[32], const uint8_t iv[16],
                     const uint8_t pub[32], uint8_t out[WA_PAIRCODE_WRAPPED_LEN]);

/* The inverse of wa_paircode_wrap. A wrong code gives 32 other bytes, not an
 * error (only the key bundle tells). Returns 0, EINVAL or ECRYPTO. */
int wa_paircode_unwrap(const char *code, const uint8_t wrapped[WA_PAIRCODE_WRAPPED_LEN],
                       uint8_t pub[32]);

/* --- the key bundle and the adv secret (fast) --- */

/* out = salt || nonce || AES-256-GCM(HKDF-SHA256(eph_shared, salt,
 * "link_code_pairing_key_bundle_encryption_key", 32), nonce, plain, no AAD)
 * where plain is companion identity || primary identity || random (96
 * bytes). Returns 0 or ECRYPTO. */
int wa_paircode_bundle_seal(const uint8_t eph_shared[32], const uint8_t salt[32],
                            const uint8_t nonce[12],
                            const uint8_t plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN],
                            uint8_t out[WA_PAIRCODE_BUNDLE_LEN]);

/* Opens a bundle made by wa_paircode_bundle_seal (the phone's side).
 * Returns 0 with the 96 plaintext bytes, ESIZE when len is not
 * WA_PAIRCODE_BUNDLE_LEN, EAUTH when it does not open, or ECRYPTO. */
int wa_paircode_bundle_open(const uint8_t eph_shared[32], const uint8_t *bundle, size_t len,
                            uint8_t plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN]);

/* The new adv secret: HKDF-SHA256(eph_shared || ident_shared || random,
 * no salt, "adv_secret", 32). Returns 0 or ECRYPTO. */
int wa_paircode_adv_secret(const uint8_t eph_shared[32], const uint8_t ident_shared[32],
                           const uint8_t random[32], uint8_t out[32]);

/* What the companion needs once the phone's ephemeral key is unwrapped. */
typedef struct {
    const uint8_t *eph_priv;   /* own ephemeral private key (32) */
    const uint8_t *ident_priv; /* own identity key pair (32 + 32) */
    const uint8_t *ident_pub;
    const uint8_t *primary_eph_pub;   /* the phone's, unwrapped (32) */
    const uint8_t *primary_ident_pub; /* from primary_hello (32) */
    const uint8_t *salt;              /* 32 random bytes (bundle HKDF salt) */
    const uint8_t *nonce;             /* 12 random bytes (bundle GCM nonce) */
    const uint8_t *random;            /* 32 random bytes (in the bundle and the secret) */
} wa_paircode_finish_in_t;

/* The companion's step after primary_hello: both X25519 agreements, the
 * sealed key bundle and the new adv secret. Returns 0, or ECRYPTO (also for
 * a low-order key from the phone). */
int wa_paircode_finish_keys(const wa_paircode_finish_in_t *in,
                            uint8_t bundle[WA_PAIRCODE_BUNDLE_LEN], uint8_t adv_secret[32]);

/* --- nodes --- */

/* <link_code_companion_reg jid="<phone>@s.whatsapp.net" stage="companion_hello"
 *   should_show_push_notification="true"> with the wrapped ephemeral key,
 * the noise public key, platform id and display (strings) and the nonce (one
 * 0x00 byte, as WhatsApp Web and whatsmeow send it): the child of the
 * <iq xmlns="md" type="set"> request. Returns a new node (caller frees), or
 * NULL for an invalid phone or display, or out of memory. */
wa_node_t *wa_paircode_hello_node(const char *phone, const uint8_t wrapped[WA_PAIRCODE_WRAPPED_LEN],
                                  const uint8_t noise_pub[32], const char *platform_id,
                                  const char *display);

/* <link_code_companion_reg jid=... stage="companion_finish"> with the
 * wrapped key bundle, the companion identity key and the pairing ref. NULL
 * for an invalid phone, an empty or too long ref, or out of memory. */
wa_node_t *wa_paircode_finish_node(const char *phone, const uint8_t *bundle, size_t bundle_len,
                                   const uint8_t ident_pub[32], const uint8_t *ref, size_t ref_len);

/* Reads WhatsApp's answer to companion_hello: <iq type="result"> holding
 * <link_code_companion_reg><link_code_pairing_ref>REF. Returns 0 with *ref
 * (borrowed from the node) and *ref_len (1..WA_PAIRCODE_REF_MAX);
 * EREFUSED for type="error" (*err_code gets its code attribute, or 0;
 * err_code may be NULL); ESTAGE for another node; EMISSING; ESIZE. */
int wa_paircode_parse_hello_result(const wa_node_t *iq, const uint8_t **ref, size_t *ref_len,
                                   int *err_code);

/* The phone's primary_hello, borrowed from the notification node. */
typedef struct {
    const uint8_t *ref; /* the pairing ref (1..WA_PAIRCODE_REF_MAX bytes) */
    size_t ref_len;
    const uint8_t *wrapped;           /* the phone's wrapped ephemeral key (80) */
    const uint8_t *primary_ident_pub; /* the phone's identity key (32) */
} wa_paircode_primary_hello_t;

/* Reads <notification type="link_code_companion_reg"> holding
 * <link_code_companion_reg stage="primary_hello"> (a missing stage is read
 * as primary_hello) with exactly one link_code_pairing_ref,
 * link_code_pairing_wrapped_primary_ephemeral_pub (80 bytes) and
 * primary_identity_pub (32 bytes). When `want_ref` is non-NULL the ref must
 * equal it. Returns 0 with *out filled (pointers into the node), ESTAGE
 * (another node, type or stage, e.g. "refresh_code"), EMISSING, ESIZE
 * (wrong size or a repeated element) or EREF. */
int wa_paircode_parse_primary_hello(const wa_node_t *n, const uint8_t *want_ref,
                                    size_t want_ref_len, wa_paircode_primary_hello_t *out);

#endif
