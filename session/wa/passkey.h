/* The passkey step of linking (protocol doc 11.6; whatsmeow's
 * pair-passkey.go, whatsapp-rust's wacore/src/shortcake.rs), as pure
 * functions: randomness and keys come in as arguments, nothing here sends or
 * keeps state (the flow is session/wa/passkeyflow.c).
 *
 * The sequence: WhatsApp sends <notification type="passkey_prologue_request">
 * with WebAuthn request options (JSON); the account owner's authenticator
 * answers them with an assertion; the companion asks for a ref, then sends
 * <passkey_prologue> with the credential id, the assertion, a prologue
 * payload (its ephemeral identity and a commitment to a nonce) and, within 5
 * minutes of the request, a proof keyed by its previous adv secret; WhatsApp
 * answers with <notification type="crsc_continuation"> carrying the phone's
 * ephemeral identity; the companion reveals its nonce, shows an 8-character
 * code the user compares on the phone, and sends its keys and new adv secret
 * encrypted under a key agreed with the phone's ephemeral key. pair-success
 * follows as for a QR scan.
 *
 * Every parser takes input from outside and rejects anything malformed or
 * over the limits below with WA_PASSKEY_EINVAL, never reading out of bounds.
 * Functions that allocate say so; every output is the caller's. */
#ifndef WG_SESSION_WA_PASSKEY_H
#define WG_SESSION_WA_PASSKEY_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/node.h"

enum {
    WA_PASSKEY_OK = 0,
    WA_PASSKEY_EINVAL = -1, /* malformed or out-of-bounds input */
    WA_PASSKEY_EFAIL = -2,  /* out of memory or the crypto library failed */
};

/* Limits on what comes from outside. */
#define WA_PASSKEY_JSON_MAX 16384    /* options and assertion JSON, bytes */
#define WA_PASSKEY_CHALLENGE_MAX 512 /* challenge bytes */
#define WA_PASSKEY_CRED_ID_MAX 1023  /* credential id bytes (WebAuthn's limit) */
#define WA_PASSKEY_ALLOW_MAX 64      /* allowCredentials entries */
#define WA_PASSKEY_CLIENT_DATA_MAX 4096
#define WA_PASSKEY_AUTH_DATA_MAX 2048 /* authenticatorData bytes (>= 37) */
#define WA_PASSKEY_SIG_MAX 1024       /* signature bytes */
#define WA_PASSKEY_REF_MAX 256        /* ref bytes */

/* How long the handoff key may be used after the request (whatsmeow). */
#define WA_PASSKEY_HANDOFF_MS (5 * 60 * 1000)

/* Returns a short English description of a code. */
const char *wa_passkey_strerror(int code);

/* --- the request --- */

/* WebAuthn request options as WhatsApp sent them. */
typedef struct {
    char *json;      /* the options JSON as received (NUL-terminated), for the browser */
    size_t json_len; /* strlen(json) */
    uint8_t challenge[WA_PASSKEY_CHALLENGE_MAX]; /* the decoded challenge */
    size_t challenge_len;
} wa_passkey_options_t;

/* Validates request options JSON (json[0..len)): a JSON object in UTF-8
 * without NUL bytes, at most WA_PASSKEY_JSON_MAX bytes, with "challenge" a
 * base64url string of 1..WA_PASSKEY_CHALLENGE_MAX bytes; when present,
 * "rpId" a string, "timeout" a non-negative number, "userVerification" one
 * of required/preferred/discouraged, "allowCredentials" an array of at most
 * WA_PASSKEY_ALLOW_MAX objects whose "id" is a base64url string of
 * 1..WA_PASSKEY_CRED_ID_MAX bytes. Fills *out (out->json is a malloc'd copy;
 * free with wa_passkey_options_free). Returns 0, EINVAL or EFAIL. */
int wa_passkey_options_parse(const uint8_t *json, size_t len, wa_passkey_options_t *out);

/* The options of <notification type="passkey_prologue_request"> (or of the
 * answer to <iq type="get" xmlns="md"><passkey_request_options/></iq>): the
 * content of its <passkey_request_options> child, validated as above.
 * Returns 0, EINVAL (no such child, or bad options) or EFAIL. */
int wa_passkey_parse_request(const wa_node_t *n, wa_passkey_options_t *out);

/* Frees out->json and wipes *o. NULL is ignored. */
void wa_passkey_options_free(wa_passkey_options_t *o);

/* The ref from the answer to <iq type="get" xmlns="md"><ref/></iq>: the
 * content of its <ref> child, 1..WA_PASSKEY_REF_MAX printable ASCII bytes,
 * copied NUL-terminated into ref (cap >= WA_PASSKEY_REF_MAX + 1). Returns 0
 * or EINVAL. */
int wa_passkey_parse_ref(const wa_node_t *iq, char *ref, size_t cap);

/* --- the assertion --- */

/* A WebAuthn assertion, checked and put in the form whatsmeow sends. */
typedef struct {
    uint8_t cred_id[WA_PASSKEY_CRED_ID_MAX]; /* rawId, decoded */
    size_t cred_id_len;
    uint8_t challenge[WA_PASSKEY_CHALLENGE_MAX]; /* clientDataJSON's challenge, decoded */
    size_t challenge_len;
    /* {"id","rawId","type":"public-key","response":{"clientDataJSON",
     * "authenticatorData","signature","userHandle"}} with unpadded base64url
     * values (userHandle null when absent), NUL-terminated, malloc'd */
    char *json;
    size_t json_len;
} wa_passkey_assertion_t;

/* Parses an assertion (json[0..len), at most WA_PASSKEY_JSON_MAX bytes) as
 * PublicKeyCredential.toJSON() gives it: "id" (and "rawId", which must
 * decode to the same bytes when present) base64url of 1..CRED_ID_MAX bytes;
 * "type" "public-key" when present; "response" an object with
 * "clientDataJSON" (a JSON object whose "type" is "webauthn.get" and whose
 * "challenge" is base64url), "authenticatorData" (37..AUTH_DATA_MAX bytes)
 * and "signature" (1..SIG_MAX bytes), all base64url, and "userHandle"
 * base64url, null or absent. Other members are ignored. Fills *out (free
 * with wa_passkey_assertion_free). Returns 0, EINVAL or EFAIL. */
int wa_passkey_parse_assertion(const char *json, size_t len, wa_passkey_assertion_t *out);

/* Frees out->json and wipes *a. NULL is ignored. */
void wa_passkey_assertion_free(wa_passkey_assertion_t *a);

/* --- the prologue --- */

/* HKDF-SHA256(ikm = adv secret, no salt, info "shortcake-passkey-handoff-v1",
 * 32 bytes): the key of the pairing handoff proof. Returns 0 or EFAIL. */
int wa_passkey_handoff_key(const uint8_t adv_secret[32], uint8_t key[32]);

/* HMAC-SHA256(handoff key, prologue payload). Returns 0 or EFAIL. */
int wa_passkey_handoff_proof(const uint8_t key[32], const uint8_t *payload, size_t len,
                             uint8_t proof[32]);

/* The companion's side of the prologue. */
typedef struct {
    uint8_t *identity; /* serialized CompanionEphemeralIdentity (malloc'd) */
    size_t identity_len;
    uint8_t commitment[32]; /* SHA-256(identity || nonce) */
    uint8_t *payload;       /* serialized ProloguePayload (malloc'd) */
    size_t payload_len;
} wa_passkey_prologue_t;

/* Builds the prologue from the companion's ephemeral public key, its
 * platform type (DeviceProps.PlatformType, as in the ClientPayload), the ref
 * and the 32-byte companion nonce. Free with wa_passkey_prologue_free.
 * Returns 0, EINVAL (ref empty or longer than WA_PASSKEY_REF_MAX) or EFAIL. */
int wa_passkey_prologue(const uint8_t eph_pub[32], int platform_type, const char *ref,
                        const uint8_t nonce[32], wa_passkey_prologue_t *out);

/* Frees the buffers of *p and wipes it. NULL is ignored. */
void wa_passkey_prologue_free(wa_passkey_prologue_t *p);

/* <passkey_prologue> with <credential_id>, <webauthn_assertion>,
 * <prologue_payload> and, when proof is non-NULL, <pairing_handoff_proof>.
 * Returns a new node or NULL. */
wa_node_t *wa_passkey_prologue_node(const wa_passkey_assertion_t *a, const wa_passkey_prologue_t *p,
                                    const uint8_t proof[32]);

/* --- the continuation --- */

/* The phone's ephemeral identity from <notification type="crsc_continuation">:
 * its <primary_ephemeral_identity> child holds a PrimaryEphemeralIdentity
 * with a 32-byte key and a 32-byte nonce. Returns 0 or EINVAL. */
int wa_passkey_parse_continuation(const wa_node_t *n, uint8_t primary_pub[32],
                                  uint8_t primary_nonce[32]);

/* The confirmation code shown to the user: the first 5 bytes of
 * primary nonce XOR SHA-256(companion nonce || primary public key), in the
 * pairing code's base32 alphabet (123456789ABCDEFGHJKLMNPQRSTVWXYZ), written
 * as "XXXX-XXXX" with a NUL (code must hold 10 bytes). Returns 0 or EFAIL. */
int wa_passkey_code(const uint8_t companion_nonce[32], const uint8_t primary_pub[32],
                    const uint8_t primary_nonce[32], char code[10]);

/* HKDF-SHA256(ikm = X25519 shared secret, salt = "Companion Pairing <type>
 * with ref <ref>" with the platform type in decimal, info = "Pairing
 * Information Encryption Key", 32 bytes). Returns 0, EINVAL (ref too long)
 * or EFAIL. */
int wa_passkey_encryption_key(const uint8_t shared[32], int platform_type, const char *ref,
                              uint8_t key[32]);

/* The serialized EncryptedPairingRequest: PairingRequest{noise public key,
 * identity public key, adv secret} sealed with AES-256-GCM under `key` with
 * the 12-byte `iv` (no associated data), ciphertext || tag, and the IV.
 * *out is malloc'd (caller frees). Returns 0 or EFAIL. */
int wa_passkey_pairing_request(const uint8_t key[32], const uint8_t iv[12],
                               const uint8_t noise_pub[32], const uint8_t ident_pub[32],
                               const uint8_t adv_secret[32], uint8_t **out, size_t *len);

#endif
