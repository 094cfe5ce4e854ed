/* Cryptographic primitives of the WhatsApp companion (protocol doc 9), on
 * OpenSSL 3 (EVP APIs only): Curve25519 key pairs and X25519, SHA-256,
 * HMAC-SHA256, HKDF-SHA256, PBKDF2-HMAC-SHA256, AES-256-GCM, AES-256-CTR, MD5
 * (build hash), constant-time
 * comparison, and XEdDSA signatures on Curve25519 keys exactly as libsignal's
 * curve_calculate_signature / curve_verify_signature (libsignal-protocol-c,
 * with its crypto provider implemented on OpenSSL).
 *
 * No global mutable state: wa_crypto_sign / wa_crypto_verify create their own
 * short-lived libsignal context for the one call and destroy it before
 * returning, so every function here is reentrant and thread-safe and nothing
 * has to be initialised or torn down by the caller. Nothing returned is
 * allocated: all outputs go to caller-provided buffers.
 *
 * Key buffers are raw 32-byte keys (no 0x05 prefix, protocol doc 9.2).
 * Every function returns 0 (WA_CRYPTO_OK) on success or a negative
 * WA_CRYPTO_* code; outputs are unspecified after a failure. */
#ifndef WG_SESSION_WA_CRYPTO_H
#define WG_SESSION_WA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

enum {
    WA_CRYPTO_OK = 0,
    WA_CRYPTO_EFAIL = -1,  /* the crypto library failed (or out of memory) */
    WA_CRYPTO_EAUTH = -2,  /* AES-GCM tag mismatch / bad signature */
    WA_CRYPTO_EINVAL = -3, /* bad sizes or arguments */
};

typedef struct {
    uint8_t priv[32]; /* clamped scalar */
    uint8_t pub[32];
} wa_keypair_t;

/* Fills buf with n cryptographically secure random bytes (OpenSSL DRBG).
 * Returns 0, EINVAL when n > INT_MAX, or EFAIL. */
int wa_crypto_random(void *buf, size_t n);

/* Generates a new Curve25519 key pair with a clamped private key (protocol
 * doc 9.1) from the OpenSSL DRBG. Returns 0 or EFAIL. */
int wa_crypto_keypair_generate(wa_keypair_t *kp);

/* Computes the X25519 public key (base-point multiple) of a private key,
 * clamping a copy of it first. Returns 0 or EFAIL. */
int wa_crypto_public_from_private(const uint8_t priv[32], uint8_t pub[32]);

/* X25519(priv, peer) into out (the raw shared secret, protocol doc 9.1).
 * Returns 0, or EFAIL for a low-order peer key (all-zero shared secret) or a
 * library failure. */
int wa_crypto_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32]);

/* SHA-256 over the concatenation of n parts (parts[i] of lens[i] bytes;
 * parts[i] may be NULL when lens[i] is 0). Returns 0 or EFAIL. */
int wa_crypto_sha256(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[32]);

/* HMAC-SHA256 with `key` (any length, may be empty) over the concatenation
 * of n parts. Returns 0 or EFAIL. */
int wa_crypto_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *const *parts,
                          const size_t *lens, size_t n, uint8_t out[32]);

/* HKDF-SHA256 (RFC 5869): extract with `salt` (may be NULL/0 = zeros), then
 * expand with `info` (may be NULL/0) into out_len bytes. Returns 0, EINVAL
 * when out_len is 0 or > 255*32, or EFAIL. */
int wa_crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                   const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/* AES-256-GCM seal: writes pt_len bytes of ciphertext followed by the
 * 16-byte tag to `out` (which must hold pt_len + 16; it may not overlap pt).
 * aad may be NULL when aad_len is 0. Returns 0, EINVAL for lengths above
 * INT_MAX - 16, or EFAIL. */
int wa_crypto_aesgcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad,
                          size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out);

/* AES-256-GCM open of ct (ciphertext || 16-byte tag, ct_len >= 16) into
 * `out` (ct_len - 16 bytes). Returns 0, EAUTH when the tag does not verify
 * (out is then wiped), EINVAL when ct_len < 16 or too large, or EFAIL. */
int wa_crypto_aesgcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad,
                          size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *out);

/* PBKDF2-HMAC-SHA256 (RFC 8018) of `pw` with `salt` and `iterations`
 * rounds into out_len bytes (pw and salt may be empty). It costs about
 * 2 x iterations SHA-256 blocks: run large counts off the event loop.
 * Returns 0, EINVAL (iterations 0, out_len 0, a length over INT_MAX), or
 * EFAIL. */
int wa_crypto_pbkdf2_sha256(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
                            unsigned iterations, uint8_t *out, size_t out_len);

/* AES-256-CTR with a 128-bit big-endian counter starting at `iv` over
 * len bytes of `in` into `out` (the same operation encrypts and decrypts;
 * out may equal in). Returns 0, EINVAL for len over INT_MAX, or EFAIL. */
int wa_crypto_aes256ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t len,
                        uint8_t *out);

/* MD5 (only for WhatsApp's build hash, protocol doc 3.4; not a security
 * use). Returns 0 or EFAIL. */
int wa_crypto_md5(const void *data, size_t len, uint8_t out[16]);

/* Constant-time equality of two n-byte buffers: 1 equal, 0 different. */
int wa_crypto_equal(const void *a, const void *b, size_t n);

/* XEdDSA signature (64 bytes, randomised) of msg with a Curve25519 private
 * key, as libsignal's curve_calculate_signature (protocol doc 9.3). The key
 * is used as given (generate it with wa_crypto_keypair_generate, which
 * clamps). Returns 0 or EFAIL. */
int wa_crypto_sign(const uint8_t priv[32], const uint8_t *msg, size_t len, uint8_t sig[64]);

/* Verifies a 64-byte XEdDSA signature with a Curve25519 public key,
 * as libsignal's curve_verify_signature. Returns 0 when valid, EAUTH when
 * not, EINVAL for a signature that is not 64 bytes, EFAIL on library error. */
int wa_crypto_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t *sig,
                     size_t sig_len);

#endif
