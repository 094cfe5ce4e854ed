/* OpenSSL 3 implementations of the companion's primitives, and the
 * libsignal-protocol-c crypto provider its XEdDSA code needs (random,
 * HMAC-SHA256, SHA-512, AES-CBC/CTR). A libsignal context is created per
 * signature call, so there is no shared state. */
#include "session/wa/crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <signal/curve.h>
#include <signal/signal_protocol.h>

int wa_crypto_random(void *buf, size_t n)
{
    if (n > INT_MAX)
        return WA_CRYPTO_EINVAL;
    if (n == 0)
        return 0;
    return RAND_bytes(buf, (int)n) == 1 ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_public_from_private(const uint8_t priv[32], uint8_t pub[32])
{
    uint8_t k[32];
    memcpy(k, priv, 32);
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    EVP_PKEY *p = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k, 32);
    OPENSSL_cleanse(k, sizeof(k));
    if (!p)
        return WA_CRYPTO_EFAIL;
    size_t len = 32;
    int ok = EVP_PKEY_get_raw_public_key(p, pub, &len) == 1 && len == 32;
    EVP_PKEY_free(p);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_keypair_generate(wa_keypair_t *kp)
{
    if (wa_crypto_random(kp->priv, 32))
        return WA_CRYPTO_EFAIL;
    kp->priv[0] &= 248;
    kp->priv[31] &= 127;
    kp->priv[31] |= 64;
    return wa_crypto_public_from_private(kp->priv, kp->pub);
}

int wa_crypto_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32])
{
    int rc = WA_CRYPTO_EFAIL;
    EVP_PKEY *a = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *b = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *ctx = a ? EVP_PKEY_CTX_new(a, NULL) : NULL;
    size_t len = 32;
    if (ctx && b && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, b) == 1 &&
        EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32)
        rc = 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    return rc;
}

static int digest(const char *name, const uint8_t *const *parts, const size_t *lens, size_t n,
                  uint8_t *out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex2(c, EVP_get_digestbyname(name), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(c, parts[i], lens[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(c, out, NULL) == 1;
    EVP_MD_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_sha256(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[32])
{
    return digest("SHA256", parts, lens, n, out);
}

int wa_crypto_md5(const void *data, size_t len, uint8_t out[16])
{
    const uint8_t *p = data;
    return digest("MD5", &p, &len, 1, out);
}

/* An HMAC-SHA256 in progress (EVP_MAC). */
static EVP_MAC_CTX *hmac_new(const uint8_t *key, size_t key_len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    if (!c)
        return NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    static const uint8_t zero = 0;
    if (EVP_MAC_init(c, key_len ? key : &zero, key_len, params) != 1) {
        EVP_MAC_CTX_free(c);
        return NULL;
    }
    return c;
}

int wa_crypto_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *const *parts,
                          const size_t *lens, size_t n, uint8_t out[32])
{
    EVP_MAC_CTX *c = hmac_new(key, key_len);
    int ok = c != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(c, parts[i], lens[i]) == 1;
    size_t len = 0;
    ok = ok && EVP_MAC_final(c, out, &len, 32) == 1 && len == 32;
    EVP_MAC_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                   const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    if (out_len == 0 || out_len > 255 * 32)
        return WA_CRYPTO_EINVAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!c)
        return WA_CRYPTO_EFAIL;
    static uint8_t empty[1];
    uint8_t zeros[32] = {0};
    OSSL_PARAM params[5];
    size_t i = 0;
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                    (void *)(ikm_len ? ikm : empty), ikm_len);
    params[i++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, salt_len ? (void *)salt : zeros, salt_len ? salt_len : 32);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                    (void *)(info_len ? info : empty), info_len);
    params[i] = OSSL_PARAM_construct_end();
    int ok = EVP_KDF_derive(c, out, out_len, params) == 1;
    EVP_KDF_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_pbkdf2_sha256(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
                            unsigned iterations, uint8_t *out, size_t out_len)
{
    if (!iterations || !out_len || pw_len > INT_MAX || salt_len > INT_MAX || out_len > INT_MAX)
        return WA_CRYPTO_EINVAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!c)
        return WA_CRYPTO_EFAIL;
    static uint8_t empty[1];
    uint64_t iter = iterations;
    int no_checks = 1; /* no SP 800-132 minimums: WhatsApp's parameters are fixed */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                                             (void *)(pw_len ? pw : empty), pw_len),
                           OSSL_PARAM_construct_octet_string(
                               OSSL_KDF_PARAM_SALT, (void *)(salt_len ? salt : empty), salt_len),
                           OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
                           OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &no_checks),
                           OSSL_PARAM_construct_end()};
    int ok = EVP_KDF_derive(c, out, out_len, params) == 1;
    EVP_KDF_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_aes256ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t len,
                        uint8_t *out)
{
    if (len > INT_MAX)
        return WA_CRYPTO_EINVAL;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_ctr(), NULL, key, iv) == 1;
    if (ok && len)
        ok = EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 && (size_t)n == len;
    ok = ok && EVP_EncryptFinal_ex(c, out + len, &n) == 1 && n == 0;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_aesgcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad,
                          size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out)
{
    if (aad_len > INT_MAX || pt_len > INT_MAX - 16)
        return WA_CRYPTO_EINVAL;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len, ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1;
    if (ok && aad_len)
        ok = EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len) == 1;
    if (ok && pt_len)
        ok = EVP_EncryptUpdate(c, out, &len, pt, (int)pt_len) == 1;
    ok = ok && EVP_EncryptFinal_ex(c, out + pt_len, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + pt_len) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : WA_CRYPTO_EFAIL;
}

int wa_crypto_aesgcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad,
                          size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *out)
{
    if (ct_len < 16 || ct_len > INT_MAX || aad_len > INT_MAX)
        return WA_CRYPTO_EINVAL;
    size_t n = ct_len - 16;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len, ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1;
    if (ok && aad_len)
        ok = EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len) == 1;
    if (ok && n)
        ok = EVP_DecryptUpdate(c, out, &len, ct, (int)n) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(ct + n)) == 1;
    int rc =
        ok ? (EVP_DecryptFinal_ex(c, out + n, &len) == 1 ? 0 : WA_CRYPTO_EAUTH) : WA_CRYPTO_EFAIL;
    EVP_CIPHER_CTX_free(c);
    if (rc && n)
        OPENSSL_cleanse(out, n);
    return rc;
}

int wa_crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* --- libsignal crypto provider on OpenSSL --- */

static int sp_random(uint8_t *data, size_t len, void *u)
{
    (void)u;
    return wa_crypto_random(data, len) == 0 ? 0 : SG_ERR_UNKNOWN;
}

static int sp_hmac_init(void **ctx, const uint8_t *key, size_t key_len, void *u)
{
    (void)u;
    *ctx = hmac_new(key, key_len);
    return *ctx ? 0 : SG_ERR_NOMEM;
}

static int sp_hmac_update(void *ctx, const uint8_t *data, size_t len, void *u)
{
    (void)u;
    return EVP_MAC_update(ctx, data, len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int sp_hmac_final(void *ctx, signal_buffer **out, void *u)
{
    (void)u;
    uint8_t md[32];
    size_t len = 0;
    if (EVP_MAC_final(ctx, md, &len, sizeof(md)) != 1)
        return SG_ERR_UNKNOWN;
    *out = signal_buffer_create(md, len);
    return *out ? 0 : SG_ERR_NOMEM;
}

static void sp_hmac_cleanup(void *ctx, void *u)
{
    (void)u;
    EVP_MAC_CTX_free(ctx);
}

static int sp_sha512_init(void **ctx, void *u)
{
    (void)u;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex2(c, EVP_sha512(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return SG_ERR_NOMEM;
    }
    *ctx = c;
    return 0;
}

static int sp_sha512_update(void *ctx, const uint8_t *data, size_t len, void *u)
{
    (void)u;
    return EVP_DigestUpdate(ctx, data, len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int sp_sha512_final(void *ctx, signal_buffer **out, void *u)
{
    (void)u;
    uint8_t md[64];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || EVP_DigestInit_ex2(ctx, EVP_sha512(), NULL) != 1)
        return SG_ERR_UNKNOWN;
    *out = signal_buffer_create(md, len);
    return *out ? 0 : SG_ERR_NOMEM;
}

static void sp_sha512_cleanup(void *ctx, void *u)
{
    (void)u;
    EVP_MD_CTX_free(ctx);
}

static const EVP_CIPHER *sp_cipher(int cipher, size_t key_len)
{
    if (cipher == SG_CIPHER_AES_CBC_PKCS5)
        return key_len == 16   ? EVP_aes_128_cbc()
               : key_len == 24 ? EVP_aes_192_cbc()
               : key_len == 32 ? EVP_aes_256_cbc()
                               : NULL;
    if (cipher == SG_CIPHER_AES_CTR_NOPADDING)
        return key_len == 16   ? EVP_aes_128_ctr()
               : key_len == 24 ? EVP_aes_192_ctr()
               : key_len == 32 ? EVP_aes_256_ctr()
                               : NULL;
    return NULL;
}

static int sp_crypt(int enc, signal_buffer **out, int cipher, const uint8_t *key, size_t key_len,
                    const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len)
{
    const EVP_CIPHER *c = sp_cipher(cipher, key_len);
    if (!c || iv_len != 16 || in_len > INT_MAX - 32)
        return SG_ERR_INVAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t *buf = OPENSSL_malloc(in_len + 32);
    int len = 0, fin = 0;
    int ok = ctx && buf && EVP_CipherInit_ex(ctx, c, NULL, key, iv, enc) == 1 &&
             EVP_CipherUpdate(ctx, buf, &len, in, (int)in_len) == 1 &&
             EVP_CipherFinal_ex(ctx, buf + len, &fin) == 1;
    if (ok)
        *out = signal_buffer_create(buf, (size_t)(len + fin));
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_clear_free(buf, in_len + 32);
    if (!ok)
        return SG_ERR_UNKNOWN;
    return *out ? 0 : SG_ERR_NOMEM;
}

static int sp_encrypt(signal_buffer **out, int cipher, const uint8_t *key, size_t key_len,
                      const uint8_t *iv, size_t iv_len, const uint8_t *pt, size_t pt_len, void *u)
{
    (void)u;
    return sp_crypt(1, out, cipher, key, key_len, iv, iv_len, pt, pt_len);
}

static int sp_decrypt(signal_buffer **out, int cipher, const uint8_t *key, size_t key_len,
                      const uint8_t *iv, size_t iv_len, const uint8_t *ct, size_t ct_len, void *u)
{
    (void)u;
    return sp_crypt(0, out, cipher, key, key_len, iv, iv_len, ct, ct_len);
}

static signal_context *signal_ctx_new(void)
{
    signal_crypto_provider p = {
        .random_func = sp_random,
        .hmac_sha256_init_func = sp_hmac_init,
        .hmac_sha256_update_func = sp_hmac_update,
        .hmac_sha256_final_func = sp_hmac_final,
        .hmac_sha256_cleanup_func = sp_hmac_cleanup,
        .sha512_digest_init_func = sp_sha512_init,
        .sha512_digest_update_func = sp_sha512_update,
        .sha512_digest_final_func = sp_sha512_final,
        .sha512_digest_cleanup_func = sp_sha512_cleanup,
        .encrypt_func = sp_encrypt,
        .decrypt_func = sp_decrypt,
    };
    signal_context *ctx = NULL;
    if (signal_context_create(&ctx, NULL) != 0)
        return NULL;
    if (signal_context_set_crypto_provider(ctx, &p) != 0) {
        signal_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

int wa_crypto_sign(const uint8_t priv[32], const uint8_t *msg, size_t len, uint8_t sig[64])
{
    signal_context *ctx = signal_ctx_new();
    if (!ctx)
        return WA_CRYPTO_EFAIL;
    ec_private_key *key = NULL;
    signal_buffer *out = NULL;
    int rc = WA_CRYPTO_EFAIL;
    if (curve_decode_private_point(&key, priv, 32, ctx) == 0 &&
        curve_calculate_signature(ctx, &out, key, msg, len) == 0 && out &&
        signal_buffer_len(out) == 64) {
        memcpy(sig, signal_buffer_data(out), 64);
        rc = 0;
    }
    signal_buffer_free(out);
    SIGNAL_UNREF(key);
    signal_context_destroy(ctx);
    return rc;
}

int wa_crypto_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t *sig,
                     size_t sig_len)
{
    if (sig_len != 64)
        return WA_CRYPTO_EINVAL;
    signal_context *ctx = signal_ctx_new();
    if (!ctx)
        return WA_CRYPTO_EFAIL;
    uint8_t prefixed[33];
    prefixed[0] = 0x05;
    memcpy(prefixed + 1, pub, 32);
    ec_public_key *key = NULL;
    int rc = WA_CRYPTO_EFAIL;
    if (curve_decode_point(&key, prefixed, 33, ctx) == 0)
        rc = curve_verify_signature(key, msg, len, sig, 64) == 1 ? 0 : WA_CRYPTO_EAUTH;
    SIGNAL_UNREF(key);
    signal_context_destroy(ctx);
    return rc;
}
