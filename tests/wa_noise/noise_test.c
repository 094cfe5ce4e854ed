/* Tests of session/wa/crypto.c, cert.c and noise.c: RFC/NIST known-answer
 * vectors, XEdDSA and X25519 cross-checked both ways against the reference
 * client (Baileys), a Noise handshake whose client side is Baileys' own
 * noise handler reproduced byte for byte, whole handshakes between our two
 * roles, and every certificate, tampering and malformed-input failure.
 * Vectors: tools/baileys-crypto/gen-vectors.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/wa/handshake.pb-c.h"
#include "session/wa/cert.h"
#include "session/wa/crypto.h"
#include "session/wa/noise.h"

/* --- helpers --- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex ("-" = empty) into out; fails the test on bad input. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    if (!strcmp(h, "-"))
        return 0;
    size_t len = strlen(h);
    assert_int_equal(len % 2, 0);
    assert_true(len / 2 <= cap);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return len / 2;
}

static void assert_hex(const uint8_t *got, size_t n, const char *want)
{
    uint8_t w[512];
    size_t wn = unhex(want, w, sizeof(w));
    assert_int_equal(wn, n);
    assert_memory_equal(got, w, n);
}

static FILE *open_testdata(const char *name)
{
    char path[4096];
    const char *dir = getenv("TEST_SRCDIR");
    snprintf(path, sizeof(path), "%s/wa_gateway/tests/wa_noise/testdata/%s", dir ? dir : ".", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    return f;
}

static uint8_t *read_testdata(const char *name, size_t *len)
{
    FILE *f = open_testdata(name);
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    *len = fread(buf, 1, cap, f);
    assert_true(*len < cap);
    fclose(f);
    return buf;
}

/* A "name hex" file (baileys_noise.txt). */
typedef struct {
    char name[64];
    uint8_t *data;
    size_t len;
} entry_t;

typedef struct {
    entry_t e[64];
    int n;
} vec_t;

static void vec_load(vec_t *v, const char *file)
{
    FILE *f = open_testdata(file);
    static char line[1 << 15];
    v->n = 0;
    while (fgets(line, sizeof(line), f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = 0;
        char *val = sp + 1;
        val[strcspn(val, "\r\n")] = 0;
        assert_true(v->n < 64);
        entry_t *e = &v->e[v->n++];
        assert_true(strlen(line) < sizeof(e->name));
        memcpy(e->name, line, strlen(line) + 1);
        e->data = malloc(strlen(val) + 1);
        assert_non_null(e->data);
        if (!strcmp(e->name, "now")) {
            e->len = strlen(val);
            memcpy(e->data, val, e->len + 1);
        } else {
            e->len = unhex(val, e->data, strlen(val) / 2 + 1);
        }
    }
    fclose(f);
}

static const entry_t *vec_get(const vec_t *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->e[i].name, name))
            return &v->e[i];
    fail_msg("vector %s missing", name);
    return NULL;
}

static void vec_free(vec_t *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->e[i].data);
}

static void keypair_from(const uint8_t priv[32], wa_keypair_t *kp)
{
    memcpy(kp->priv, priv, 32);
    assert_int_equal(wa_crypto_public_from_private(kp->priv, kp->pub), 0);
}

/* --- primitives: known answers --- */

static void test_x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t a[32], b[32], pub[32], shared[32], shared2[32];
    /* RFC 7748 section 6.1 */
    unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
    unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
    assert_int_equal(wa_crypto_public_from_private(a, pub), 0);
    assert_hex(pub, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_int_equal(wa_crypto_public_from_private(b, pub), 0);
    assert_hex(pub, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_int_equal(wa_crypto_x25519(a, pub, shared), 0);
    assert_hex(shared, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    uint8_t apub[32];
    assert_int_equal(wa_crypto_public_from_private(a, apub), 0);
    assert_int_equal(wa_crypto_x25519(b, apub, shared2), 0);
    assert_memory_equal(shared, shared2, 32);
    /* RFC 7748 section 5.2, first vector (unclamped scalar input) */
    uint8_t k[32], u[32];
    unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", k, 32);
    unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", u, 32);
    assert_int_equal(wa_crypto_x25519(k, u, shared), 0);
    assert_hex(shared, 32, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    /* a low-order point gives an all-zero secret: refused */
    uint8_t zero[32] = {0};
    assert_int_equal(wa_crypto_x25519(a, zero, shared), WA_CRYPTO_EFAIL);
}

static void test_keypair_clamping(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++) {
        wa_keypair_t kp;
        uint8_t pub[32];
        assert_int_equal(wa_crypto_keypair_generate(&kp), 0);
        assert_int_equal(kp.priv[0] & 7, 0);
        assert_int_equal(kp.priv[31] & 0xc0, 0x40);
        assert_int_equal(wa_crypto_public_from_private(kp.priv, pub), 0);
        assert_memory_equal(pub, kp.pub, 32);
    }
    /* public_from_private clamps a copy: an unclamped key gives the same
     * public key as its clamped form, and the input is untouched */
    uint8_t raw[32], clamped[32], p1[32], p2[32];
    memset(raw, 0xff, sizeof(raw));
    memcpy(clamped, raw, 32);
    clamped[0] &= 248;
    clamped[31] &= 127;
    clamped[31] |= 64;
    assert_int_equal(wa_crypto_public_from_private(raw, p1), 0);
    assert_int_equal(wa_crypto_public_from_private(clamped, p2), 0);
    assert_memory_equal(p1, p2, 32);
    assert_int_equal(raw[0], 0xff);
}

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof(ikm));
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    /* test case 1 */
    assert_int_equal(wa_crypto_hkdf(salt, 13, ikm, 22, info, 10, okm, 42), 0);
    assert_hex(
        okm, 42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    /* test case 3: no salt, no info */
    assert_int_equal(wa_crypto_hkdf(NULL, 0, ikm, 22, NULL, 0, okm, 42), 0);
    assert_hex(
        okm, 42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    /* an empty ikm is allowed (Noise split) */
    assert_int_equal(wa_crypto_hkdf(salt, 13, NULL, 0, NULL, 0, okm, 32), 0);
    assert_int_equal(wa_crypto_hkdf(salt, 13, ikm, 22, NULL, 0, okm, 0), WA_CRYPTO_EINVAL);
    assert_int_equal(wa_crypto_hkdf(salt, 13, ikm, 22, NULL, 0, okm, 255 * 32 + 1),
                     WA_CRYPTO_EINVAL);
}

static void test_hmac_rfc4231_sha256_md5(void **state)
{
    (void)state;
    uint8_t key[20], out[32];
    memset(key, 0x0b, sizeof(key));
    /* RFC 4231 test case 1, the data given in two parts */
    const uint8_t *parts[] = {(const uint8_t *)"Hi ", (const uint8_t *)"There"};
    size_t lens[] = {3, 5};
    assert_int_equal(wa_crypto_hmac_sha256(key, 20, parts, lens, 2, out), 0);
    assert_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* RFC 4231 test case 2 */
    const uint8_t *p2[] = {(const uint8_t *)"what do ya want for nothing?"};
    size_t l2[] = {28};
    assert_int_equal(wa_crypto_hmac_sha256((const uint8_t *)"Jefe", 4, p2, l2, 1, out), 0);
    assert_hex(out, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* SHA-256 ("abc", FIPS 180-2), in parts with an empty one */
    const uint8_t *p3[] = {(const uint8_t *)"a", NULL, (const uint8_t *)"bc"};
    size_t l3[] = {1, 0, 2};
    assert_int_equal(wa_crypto_sha256(p3, l3, 3, out), 0);
    assert_hex(out, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* MD5 (RFC 1321) */
    uint8_t md5[16];
    assert_int_equal(wa_crypto_md5("abc", 3, md5), 0);
    assert_hex(md5, 16, "900150983cd24fb0d6963f7d28e17f72");
    /* constant-time compare */
    assert_int_equal(wa_crypto_equal("abcd", "abcd", 4), 1);
    assert_int_equal(wa_crypto_equal("abcd", "abce", 4), 0);
    uint8_t r1[32] = {0}, r2[32] = {0};
    assert_int_equal(wa_crypto_random(r1, 32), 0);
    assert_int_equal(wa_crypto_random(r2, 32), 0);
    assert_memory_not_equal(r1, r2, 32);
}

static void test_aes_gcm_nist(void **state)
{
    (void)state;
    /* GCM spec (McGrew & Viega) test case 14: AES-256, zero key and IV */
    uint8_t k[32] = {0}, iv[12] = {0}, pt[16] = {0}, ct[32], back[64];
    assert_int_equal(wa_crypto_aesgcm_seal(k, iv, NULL, 0, pt, 16, ct), 0);
    assert_hex(ct, 32, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 32, back), 0);
    assert_memory_equal(back, pt, 16);
    ct[3] ^= 1;
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 32, back), WA_CRYPTO_EAUTH);
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 15, back), WA_CRYPTO_EINVAL);
    /* test case 16: AES-256 with AAD and a 60-byte plaintext */
    uint8_t key[32], nonce[12], aad[20], p[60], c[76];
    unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key, 32);
    unhex("cafebabefacedbaddecaf888", nonce, 12);
    unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, 20);
    unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf"
          "0e2449a6b525b16aedf5aa0de657ba637b39",
          p, 60);
    assert_int_equal(wa_crypto_aesgcm_seal(key, nonce, aad, 20, p, 60, c), 0);
    assert_hex(
        c, 76,
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b0"
        "8b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b");
    assert_int_equal(wa_crypto_aesgcm_open(key, nonce, aad, 20, c, 76, back), 0);
    assert_memory_equal(back, p, 60);
    /* the AAD is authenticated */
    aad[0] ^= 1;
    assert_int_equal(wa_crypto_aesgcm_open(key, nonce, aad, 20, c, 76, back), WA_CRYPTO_EAUTH);
    aad[0] ^= 1;
    /* and so is the tag */
    c[75] ^= 0x80;
    assert_int_equal(wa_crypto_aesgcm_open(key, nonce, aad, 20, c, 76, back), WA_CRYPTO_EAUTH);
    /* empty plaintext: tag only */
    assert_int_equal(wa_crypto_aesgcm_seal(key, nonce, aad, 20, NULL, 0, c), 0);
    assert_int_equal(wa_crypto_aesgcm_open(key, nonce, aad, 20, c, 16, back), 0);
}

/* --- XEdDSA --- */

static void test_xeddsa_roundtrip_and_tampering(void **state)
{
    (void)state;
    wa_keypair_t kp, other;
    assert_int_equal(wa_crypto_keypair_generate(&kp), 0);
    assert_int_equal(wa_crypto_keypair_generate(&other), 0);
    uint8_t msg[100], sig[64], sig2[64];
    assert_int_equal(wa_crypto_random(msg, sizeof(msg)), 0);
    assert_int_equal(wa_crypto_sign(kp.priv, msg, sizeof(msg), sig), 0);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), 0);
    /* randomised: a second signature differs and verifies too */
    assert_int_equal(wa_crypto_sign(kp.priv, msg, sizeof(msg), sig2), 0);
    assert_memory_not_equal(sig, sig2, 64);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig2, 64), 0);
    /* empty message */
    assert_int_equal(wa_crypto_sign(kp.priv, NULL, 0, sig2), 0);
    assert_int_equal(wa_crypto_verify(kp.pub, NULL, 0, sig2, 64), 0);
    /* wrong key, wrong length */
    assert_int_equal(wa_crypto_verify(other.pub, msg, sizeof(msg), sig, 64), WA_CRYPTO_EAUTH);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 63), WA_CRYPTO_EINVAL);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 65), WA_CRYPTO_EINVAL);
    /* any flipped bit in the message, the signature (including the sign bit
     * in sig[63]) or the key is rejected */
    for (size_t i = 0; i < sizeof(msg); i += 7) {
        msg[i] ^= 0x20;
        assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), WA_CRYPTO_EAUTH);
        msg[i] ^= 0x20;
    }
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg) - 1, sig, 64), WA_CRYPTO_EAUTH);
    for (int i = 0; i < 64; i++) {
        uint8_t bit = i == 63 ? 0x80 : (uint8_t)(1u << (i % 8));
        sig[i] ^= bit;
        assert_int_not_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), 0);
        sig[i] ^= bit;
    }
    for (int i = 0; i < 32; i += 3) {
        kp.pub[i] ^= 0x04;
        assert_int_not_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), 0);
        kp.pub[i] ^= 0x04;
    }
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), 0);
}

/* Key pairs, signatures and shared secrets made by Baileys' Curve: their
 * signatures verify with ours, ours (with their keys) verify with ours. */
static void test_baileys_curve_vectors(void **state)
{
    (void)state;
    FILE *f = open_testdata("baileys_curve.txt");
    static char line[8192];
    int count = 0;
    while (fgets(line, sizeof(line), f)) {
        static char a[6][2100];
        if (sscanf(line, "%2099s %2099s %2099s %2099s %2099s %2099s", a[0], a[1], a[2], a[3], a[4],
                   a[5]) != 6)
            continue;
        uint8_t priv[32], pub[32], msg[1024], sig[64], peer[32], shared[32], mine[32];
        assert_int_equal(unhex(a[0], priv, 32), 32);
        assert_int_equal(unhex(a[1], pub, 32), 32);
        size_t mlen = unhex(a[2], msg, sizeof(msg));
        assert_int_equal(unhex(a[3], sig, 64), 64);
        assert_int_equal(unhex(a[4], peer, 32), 32);
        assert_int_equal(unhex(a[5], shared, 32), 32);
        assert_int_equal(wa_crypto_public_from_private(priv, mine), 0);
        assert_memory_equal(mine, pub, 32);
        assert_int_equal(wa_crypto_verify(pub, msg, mlen, sig, 64), 0);
        assert_int_equal(wa_crypto_verify(peer, msg, mlen, sig, 64), WA_CRYPTO_EAUTH);
        assert_int_equal(wa_crypto_x25519(priv, peer, mine), 0);
        assert_memory_equal(mine, shared, 32);
        uint8_t oursig[64];
        assert_int_equal(wa_crypto_sign(priv, msg, mlen, oursig), 0);
        assert_int_equal(wa_crypto_verify(pub, msg, mlen, oursig, 64), 0);
        if (mlen) {
            msg[0] ^= 1;
            assert_int_equal(wa_crypto_verify(pub, msg, mlen, sig, 64), WA_CRYPTO_EAUTH);
        }
        count++;
    }
    fclose(f);
    assert_int_equal(count, 16);
}

/* Signatures made by our code (ours_sigs.c) that Baileys' verifier accepted:
 * ours_sigs.baileys holds the SHA-256 of exactly the file it checked. */
static void test_ours_verified_by_baileys(void **state)
{
    (void)state;
    size_t len, rlen;
    uint8_t *data = read_testdata("ours_sigs.txt", &len);
    uint8_t *rec = read_testdata("ours_sigs.baileys", &rlen);
    uint8_t digest[32];
    const uint8_t *parts[] = {data};
    assert_int_equal(wa_crypto_sha256(parts, &len, 1, digest), 0);
    char hexd[65];
    for (int i = 0; i < 32; i++)
        snprintf(hexd + 2 * i, 3, "%02x", digest[i]);
    assert_true(rlen > 66);
    assert_memory_equal(rec, hexd, 64);
    int verified = atoi((const char *)rec + 65);
    /* and they verify with ours as well */
    int count = 0;
    char *save = NULL;
    data[len] = 0;
    for (char *l = strtok_r((char *)data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        static char a[3][1100];
        if (sscanf(l, "%1099s %1099s %1099s", a[0], a[1], a[2]) != 3)
            continue;
        uint8_t pub[32], msg[512], sig[64];
        assert_int_equal(unhex(a[0], pub, 32), 32);
        size_t mlen = unhex(a[1], msg, sizeof(msg));
        assert_int_equal(unhex(a[2], sig, 64), 64);
        assert_int_equal(wa_crypto_verify(pub, msg, mlen, sig, 64), 0);
        count++;
    }
    assert_int_equal(count, verified);
    assert_true(count >= 16);
    free(data);
    free(rec);
}

/* --- Noise: Baileys' client side, byte for byte --- */

/* The vectors' transport frames <dir>_pt_<i> / <dir>_ct_<i> (i < 3): `from`
 * encrypts each plaintext to exactly the ciphertext, `to` decrypts it back. */
static void check_frames(const vec_t *v, const char *dir, wa_noise_t *from, wa_noise_t *to)
{
    for (int i = 0; i < 3; i++) {
        char n1[32], n2[32];
        snprintf(n1, sizeof(n1), "%s_pt_%d", dir, i);
        snprintf(n2, sizeof(n2), "%s_ct_%d", dir, i);
        const entry_t *pt = vec_get(v, n1), *ct = vec_get(v, n2);
        uint8_t *o;
        size_t ol;
        assert_int_equal(wa_noise_encrypt(from, pt->data, pt->len, &o, &ol), 0);
        assert_int_equal(ol, ct->len);
        assert_memory_equal(o, ct->data, ol);
        free(o);
        assert_int_equal(wa_noise_decrypt(to, ct->data, ct->len, &o, &ol), 0);
        assert_int_equal(ol, pt->len);
        assert_memory_equal(o, pt->data, ol);
        free(o);
    }
}

static void test_baileys_noise_vector(void **state)
{
    (void)state;
    vec_t v;
    vec_load(&v, "baileys_noise.txt");
    wa_keypair_t ce, cs, se, ss;
    keypair_from(vec_get(&v, "client_ephemeral_priv")->data, &ce);
    keypair_from(vec_get(&v, "client_static_priv")->data, &cs);
    keypair_from(vec_get(&v, "server_ephemeral_priv")->data, &se);
    keypair_from(vec_get(&v, "server_static_priv")->data, &ss);
    wa_cert_trust_t trust = {.root_serial = 0};
    memcpy(trust.root_pub, vec_get(&v, "root_pub")->data, 32);
    int64_t now = atoll((const char *)vec_get(&v, "now")->data);
    const entry_t *chain = vec_get(&v, "chain");

    wa_noise_t *c = wa_noise_new_initiator(&cs, &trust, now);
    wa_noise_t *s = wa_noise_new_responder(&ss, chain->data, chain->len);
    assert_non_null(c);
    assert_non_null(s);
    assert_int_equal(wa_noise_set_ephemeral(c, &ce), 0);
    assert_int_equal(wa_noise_set_ephemeral(s, &se), 0);

    /* client hello, and the whole first WebSocket message */
    uint8_t *m;
    size_t ml;
    assert_int_equal(wa_noise_client_hello(c, &m, &ml), 0);
    const entry_t *hello = vec_get(&v, "client_hello");
    assert_int_equal(ml, hello->len);
    assert_memory_equal(m, hello->data, ml);
    const entry_t *frame = vec_get(&v, "client_hello_frame");
    assert_int_equal(frame->len, 7 + ml);
    assert_memory_equal(frame->data, wa_noise_prologue, 4);
    assert_int_equal((frame->data[4] << 16) | (frame->data[5] << 8) | frame->data[6], ml);
    assert_memory_equal(frame->data + 7, m, ml);
    assert_int_equal(wa_noise_set_ephemeral(c, &ce), WA_NOISE_ESTATE);

    /* our responder produces the same server hello as the generator */
    uint8_t *sh;
    size_t shl;
    assert_int_equal(wa_noise_server_hello(s, m, ml, &sh, &shl), 0);
    free(m);
    const entry_t *vsh = vec_get(&v, "server_hello");
    assert_int_equal(shl, vsh->len);
    assert_memory_equal(sh, vsh->data, shl);
    free(sh);

    /* Baileys' client finish, reproduced exactly (also after checking the
     * Baileys-signed certificate chain) */
    const entry_t *payload = vec_get(&v, "client_payload");
    int cert_err = -1;
    assert_int_equal(wa_noise_client_finish(c, vsh->data, vsh->len, payload->data, payload->len, &m,
                                            &ml, &cert_err),
                     0);
    assert_int_equal(cert_err, 0);
    const entry_t *fin = vec_get(&v, "client_finish");
    assert_int_equal(ml, fin->len);
    assert_memory_equal(m, fin->data, ml);
    free(m);
    const entry_t *finf = vec_get(&v, "client_finish_frame");
    assert_int_equal(finf->len, 3 + fin->len);
    assert_memory_equal(finf->data + 3, fin->data, fin->len);

    uint8_t client_static[32], *pl;
    size_t pll;
    assert_int_equal(wa_noise_server_finish(s, fin->data, fin->len, client_static, &pl, &pll), 0);
    assert_memory_equal(client_static, cs.pub, 32);
    assert_int_equal(pll, payload->len);
    assert_memory_equal(pl, payload->data, pll);
    free(pl);

    /* transport frames both ways */
    check_frames(&v, "c2s", c, s);
    check_frames(&v, "s2c", s, c);
    wa_noise_free(c);
    wa_noise_free(s);

    /* the same vector with the genuine WhatsApp root: rejected */
    static const char *wa_root = "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b";
    unhex(wa_root, trust.root_pub, 32);
    c = wa_noise_new_initiator(&cs, &trust, now);
    assert_int_equal(wa_noise_set_ephemeral(c, &ce), 0);
    assert_int_equal(wa_noise_client_hello(c, &m, &ml), 0);
    free(m);
    assert_int_equal(wa_noise_client_finish(c, vsh->data, vsh->len, payload->data, payload->len, &m,
                                            &ml, &cert_err),
                     WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_EINTER_SIG);
    wa_noise_free(c);
    vec_free(&v);
}

/* --- certificate chains --- */

typedef struct {
    wa_keypair_t root, inter, server, client;
    uint8_t *chain;
    size_t chain_len;
    wa_cert_trust_t trust;
} pki_t;

static const int64_t NOW = 1790000000;

static void make_chain_full(pki_t *p, const uint8_t *leaf_key, uint32_t inter_issuer,
                            uint32_t leaf_issuer, uint64_t inter_nb, uint64_t inter_na,
                            uint64_t leaf_nb, uint64_t leaf_na)
{
    wa_cert_details_t inter = {
        .serial = 1, .issuer_serial = inter_issuer, .not_before = inter_nb, .not_after = inter_na};
    memcpy(inter.key, p->inter.pub, 32);
    wa_cert_details_t leaf = {
        .serial = 7, .issuer_serial = leaf_issuer, .not_before = leaf_nb, .not_after = leaf_na};
    memcpy(leaf.key, leaf_key, 32);
    free(p->chain);
    p->chain = NULL;
    assert_int_equal(
        wa_cert_build_chain(p->root.priv, p->inter.priv, &inter, &leaf, &p->chain, &p->chain_len),
        0);
}

static void make_chain(pki_t *p, const uint8_t *leaf_key, uint32_t inter_issuer,
                       uint32_t leaf_issuer)
{
    make_chain_full(p, leaf_key, inter_issuer, leaf_issuer, NOW - 100, NOW + 86400, NOW - 100,
                    NOW + 3600);
}

static int pki_setup(void **state)
{
    pki_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(wa_crypto_keypair_generate(&p->root), 0);
    assert_int_equal(wa_crypto_keypair_generate(&p->inter), 0);
    assert_int_equal(wa_crypto_keypair_generate(&p->server), 0);
    assert_int_equal(wa_crypto_keypair_generate(&p->client), 0);
    make_chain(p, p->server.pub, 0, 1);
    memcpy(p->trust.root_pub, p->root.pub, 32);
    p->trust.root_serial = 0;
    *state = p;
    return 0;
}

static int pki_teardown(void **state)
{
    pki_t *p = *state;
    free(p->chain);
    free(p);
    return 0;
}

static int verify(pki_t *p)
{
    return wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW);
}

/* Re-serializes a chain after `edit` changed the decoded copy. */
typedef void (*chain_edit_fn)(Wa__CertChain *cc, pki_t *p);

static void edit_chain(pki_t *p, chain_edit_fn edit)
{
    Wa__CertChain *cc = wa__cert_chain__unpack(NULL, p->chain_len, p->chain);
    assert_non_null(cc);
    edit(cc, p);
    size_t n = wa__cert_chain__get_packed_size(cc);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    wa__cert_chain__pack(cc, buf);
    wa__cert_chain__free_unpacked(cc, NULL);
    free(p->chain);
    p->chain = buf;
    p->chain_len = n;
}

/* Replaces one certificate's details with `d` (serialized), signed by `signer`. */
static void set_details(Wa__CertChain__NoiseCertificate *c,
                        const Wa__CertChain__NoiseCertificate__Details *d, const uint8_t *signer)
{
    size_t n = protobuf_c_message_get_packed_size(&d->base);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    protobuf_c_message_pack(&d->base, buf);
    free(c->details.data);
    c->details.data = buf;
    c->details.len = n;
    if (signer)
        assert_int_equal(wa_crypto_sign(signer, buf, n, c->signature.data), 0);
}

static void edit_inter_details_bit(Wa__CertChain *cc, pki_t *p)
{
    (void)p;
    cc->intermediate->details.data[cc->intermediate->details.len - 1] ^= 1; /* notAfter */
}

static void edit_leaf_details_bit(Wa__CertChain *cc, pki_t *p)
{
    (void)p;
    cc->leaf->details.data[cc->leaf->details.len - 1] ^= 1;
}

static void edit_drop_leaf_sig(Wa__CertChain *cc, pki_t *p)
{
    (void)p;
    cc->leaf->has_signature = 0;
}

static void edit_short_inter_sig(Wa__CertChain *cc, pki_t *p)
{
    (void)p;
    cc->intermediate->signature.len = 63;
}

static void edit_drop_intermediate(Wa__CertChain *cc, pki_t *p)
{
    (void)p;
    protobuf_c_message_free_unpacked(&cc->intermediate->base, NULL);
    cc->intermediate = NULL;
}

static void edit_inter_short_key(Wa__CertChain *cc, pki_t *p)
{
    Wa__CertChain__NoiseCertificate__Details d = WA__CERT_CHAIN__NOISE_CERTIFICATE__DETAILS__INIT;
    d.has_serial = d.has_issuerserial = d.has_key = d.has_notbefore = d.has_notafter = 1;
    d.serial = 1;
    d.key.data = p->inter.pub;
    d.key.len = 31;
    d.notbefore = (uint64_t)NOW - 100;
    d.notafter = (uint64_t)NOW + 100;
    set_details(cc->intermediate, &d, p->root.priv);
}

static void edit_inter_garbage_details(Wa__CertChain *cc, pki_t *p)
{
    free(cc->intermediate->details.data);
    cc->intermediate->details.data = malloc(3);
    assert_non_null(cc->intermediate->details.data);
    memcpy(cc->intermediate->details.data, "\x0a\xff\x01", 3);
    cc->intermediate->details.len = 3;
    assert_int_equal(wa_crypto_sign(p->root.priv, cc->intermediate->details.data, 3,
                                    cc->intermediate->signature.data),
                     0);
}

static void edit_leaf_no_not_before(Wa__CertChain *cc, pki_t *p)
{
    Wa__CertChain__NoiseCertificate__Details d = WA__CERT_CHAIN__NOISE_CERTIFICATE__DETAILS__INIT;
    d.has_serial = d.has_issuerserial = d.has_key = d.has_notafter = 1;
    d.serial = 7;
    d.issuerserial = 1;
    d.key.data = p->server.pub;
    d.key.len = 32;
    d.notafter = (uint64_t)NOW + 100;
    set_details(cc->leaf, &d, p->inter.priv);
}

static void edit_leaf_no_not_after(Wa__CertChain *cc, pki_t *p)
{
    Wa__CertChain__NoiseCertificate__Details d = WA__CERT_CHAIN__NOISE_CERTIFICATE__DETAILS__INIT;
    d.has_serial = d.has_issuerserial = d.has_key = d.has_notbefore = 1;
    d.serial = 7;
    d.issuerserial = 1;
    d.key.data = p->server.pub;
    d.key.len = 32;
    d.notbefore = (uint64_t)NOW - 100;
    set_details(cc->leaf, &d, p->inter.priv);
}

static void test_cert_verify(void **state)
{
    pki_t *p = *state;
    assert_int_equal(verify(p), WA_CERT_OK);
    /* boundaries are inclusive */
    make_chain_full(p, p->server.pub, 0, 1, NOW, NOW, NOW, NOW);
    assert_int_equal(verify(p), WA_CERT_OK);
    make_chain(p, p->server.pub, 0, 1);

    /* wrong root key */
    wa_cert_trust_t other = p->trust;
    other.root_pub[0] ^= 1;
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &other, p->server.pub, NOW),
                     WA_CERT_EINTER_SIG);
    /* leaf key is not the server's static key */
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->client.pub, NOW),
                     WA_CERT_ELEAF_KEY);
    /* times: the intermediate is checked before the leaf */
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW + 7200),
                     WA_CERT_ELEAF_TIME);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW - 1000),
                     WA_CERT_EINTER_TIME);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, -1),
                     WA_CERT_EINTER_TIME);
    make_chain_full(p, p->server.pub, 0, 1, NOW - 200, NOW - 1, NOW - 100, NOW + 100);
    assert_int_equal(verify(p), WA_CERT_EINTER_TIME); /* intermediate expired */
    make_chain_full(p, p->server.pub, 0, 1, NOW + 1, NOW + 200, NOW - 100, NOW + 100);
    assert_int_equal(verify(p), WA_CERT_EINTER_TIME); /* intermediate not yet valid */
    make_chain_full(p, p->server.pub, 0, 1, NOW - 100, NOW + 100, NOW + 1, NOW + 100);
    assert_int_equal(verify(p), WA_CERT_ELEAF_TIME); /* leaf not yet valid */
    make_chain_full(p, p->server.pub, 0, 1, NOW - 100, NOW + 100, NOW - 100, NOW - 1);
    assert_int_equal(verify(p), WA_CERT_ELEAF_TIME); /* leaf expired */

    /* every single-bit flip anywhere in the chain is caught */
    make_chain(p, p->server.pub, 0, 1);
    for (size_t i = 0; i < p->chain_len; i++) {
        p->chain[i] ^= 0x10;
        assert_int_not_equal(verify(p), 0);
        p->chain[i] ^= 0x10;
    }
    /* tampered details keep their old signature */
    edit_chain(p, edit_inter_details_bit);
    assert_int_equal(verify(p), WA_CERT_EINTER_SIG);
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_leaf_details_bit);
    assert_int_equal(verify(p), WA_CERT_ELEAF_SIG);
    /* a leaf signed by the root instead of the intermediate */
    wa_keypair_t inter = p->inter;
    p->inter = p->root;
    make_chain(p, p->server.pub, 0, 1);
    p->inter = inter;
    assert_int_equal(verify(p), WA_CERT_OK); /* consistent: key in details is the root's */
    /* missing parts */
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_drop_leaf_sig);
    assert_int_equal(verify(p), WA_CERT_EMISSING);
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_short_inter_sig);
    assert_int_equal(verify(p), WA_CERT_EMISSING);
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_drop_intermediate);
    assert_int_equal(verify(p), WA_CERT_EMISSING);
    /* properly signed but bad content */
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_inter_short_key);
    assert_int_equal(verify(p), WA_CERT_EINTER_KEY);
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_inter_garbage_details);
    assert_int_equal(verify(p), WA_CERT_EMALFORMED);
    /* absent dates count as 0: no notBefore is fine, no notAfter is expired */
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_leaf_no_not_before);
    assert_int_equal(verify(p), WA_CERT_OK);
    make_chain(p, p->server.pub, 0, 1);
    edit_chain(p, edit_leaf_no_not_after);
    assert_int_equal(verify(p), WA_CERT_ELEAF_TIME);

    /* wrong issuer serials; the root serial is configurable */
    make_chain(p, p->server.pub, 5, 1);
    assert_int_equal(verify(p), WA_CERT_EINTER_ISSUER);
    p->trust.root_serial = 5;
    assert_int_equal(verify(p), WA_CERT_OK);
    p->trust.root_serial = 0;
    make_chain(p, p->server.pub, 0, 9);
    assert_int_equal(verify(p), WA_CERT_ELEAF_ISSUER);

    /* truncated, garbage, empty, NULL */
    make_chain(p, p->server.pub, 0, 1);
    for (size_t n = 0; n < p->chain_len; n++)
        assert_int_not_equal(wa_cert_verify(p->chain, n, &p->trust, p->server.pub, NOW),
                             WA_CERT_OK);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(wa_cert_verify(junk, sizeof(junk), &p->trust, p->server.pub, NOW),
                     WA_CERT_EMALFORMED);
    assert_int_equal(wa_cert_verify(NULL, 0, &p->trust, p->server.pub, NOW), WA_CERT_EMISSING);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, NULL, p->server.pub, NOW),
                     WA_CERT_EINVAL);

    /* every code has its own message */
    for (int a = WA_CERT_ECRYPTO; a <= 0; a++)
        for (int b = WA_CERT_ECRYPTO; b < a; b++)
            assert_string_not_equal(wa_cert_strerror(a), wa_cert_strerror(b));
    assert_non_null(wa_cert_strerror(12345));
}

/* --- Noise between our two roles --- */

static const uint8_t client_payload[] = "serialized ClientPayload";

/* Which handshake message to damage, and how. */
typedef struct {
    int flip_hello_from_end;  /* flip a bit this many bytes before the end of serverHello */
    int flip_finish_from_end; /* same for clientFinish */
} damage_t;

/* Runs the handshake; returns the first non-zero code. */
static int handshake(pki_t *p, wa_noise_t **ci, wa_noise_t **sr, int *cert_err, const damage_t *dmg)
{
    *ci = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    *sr = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    assert_non_null(*ci);
    assert_non_null(*sr);
    uint8_t *m1, *m2, *m3, *payload;
    size_t l1, l2, l3, pl;
    int rc = wa_noise_client_hello(*ci, &m1, &l1);
    assert_int_equal(rc, 0);
    /* ClientHello = field 2 { field 1: 32-byte ephemeral } */
    assert_int_equal(l1, 36);
    rc = wa_noise_server_hello(*sr, m1, l1, &m2, &l2);
    free(m1);
    assert_int_equal(rc, 0);
    if (dmg && dmg->flip_hello_from_end)
        m2[l2 - (size_t)dmg->flip_hello_from_end] ^= 1;
    rc = wa_noise_client_finish(*ci, m2, l2, client_payload, sizeof(client_payload), &m3, &l3,
                                cert_err);
    free(m2);
    if (rc)
        return rc;
    if (dmg && dmg->flip_finish_from_end)
        m3[l3 - (size_t)dmg->flip_finish_from_end] ^= 1;
    uint8_t cs[32];
    rc = wa_noise_server_finish(*sr, m3, l3, cs, &payload, &pl);
    free(m3);
    if (rc)
        return rc;
    assert_memory_equal(cs, p->client.pub, 32);
    assert_int_equal(pl, sizeof(client_payload));
    assert_memory_equal(payload, client_payload, pl);
    free(payload);
    return 0;
}

static void test_handshake_and_transport(void **state)
{
    pki_t *p = *state;
    wa_noise_t *c, *s;
    int cert_err = -1;
    assert_int_equal(handshake(p, &c, &s, &cert_err, NULL), 0);
    assert_int_equal(cert_err, 0);
    assert_true(wa_noise_ready(c) && wa_noise_ready(s));
    assert_false(wa_noise_ready(NULL));
    for (int i = 0; i < 6; i++) {
        uint8_t msg[64], *ct, *pt;
        size_t cl, pl;
        memset(msg, i, sizeof(msg));
        wa_noise_t *from = i % 2 ? s : c, *to = i % 2 ? c : s;
        assert_int_equal(wa_noise_encrypt(from, msg, sizeof(msg), &ct, &cl), 0);
        assert_int_equal(cl, sizeof(msg) + 16);
        assert_int_equal(wa_noise_decrypt(to, ct, cl, &pt, &pl), 0);
        assert_int_equal(pl, sizeof(msg));
        assert_memory_equal(pt, msg, sizeof(msg));
        free(ct);
        free(pt);
    }
    /* empty frames work */
    uint8_t *ct, *pt;
    size_t cl, pl;
    assert_int_equal(wa_noise_encrypt(s, NULL, 0, &ct, &cl), 0);
    assert_int_equal(cl, 16);
    assert_int_equal(wa_noise_decrypt(c, ct, cl, &pt, &pl), 0);
    assert_int_equal(pl, 0);
    free(ct);
    free(pt);
    /* the two directions use different keys: a frame cannot be reflected */
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"mirror", 6, &ct, &cl), 0);
    assert_int_equal(wa_noise_decrypt(c, ct, cl, &pt, &pl), WA_NOISE_EDECRYPT);
    free(ct);
    wa_noise_free(c);
    wa_noise_free(s);

    /* a flipped ciphertext bit fails authentication, in each direction */
    for (int dir = 0; dir < 2; dir++) {
        assert_int_equal(handshake(p, &c, &s, NULL, NULL), 0);
        wa_noise_t *from = dir ? s : c, *to = dir ? c : s;
        assert_int_equal(wa_noise_encrypt(from, (const uint8_t *)"hello", 5, &ct, &cl), 0);
        ct[dir ? cl - 1 : 2] ^= 0x04;
        assert_int_equal(wa_noise_decrypt(to, ct, cl, &pt, &pl), WA_NOISE_EDECRYPT);
        free(ct);
        /* too short to hold a tag */
        assert_int_equal(wa_noise_decrypt(to, (const uint8_t *)"short", 5, &pt, &pl),
                         WA_NOISE_EDECRYPT);
        wa_noise_free(c);
        wa_noise_free(s);
    }
    /* a dropped (or replayed) frame desynchronises the counters */
    assert_int_equal(handshake(p, &c, &s, NULL, NULL), 0);
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"a", 1, &ct, &cl), 0);
    uint8_t *first = ct;
    size_t first_len = cl;
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"b", 1, &ct, &cl), 0);
    assert_int_equal(wa_noise_decrypt(s, ct, cl, &pt, &pl), WA_NOISE_EDECRYPT);
    free(ct);
    assert_int_equal(wa_noise_decrypt(s, first, first_len, &pt, &pl), WA_NOISE_EDECRYPT);
    free(first);
    wa_noise_free(c);
    wa_noise_free(s);
}

static void test_handshake_tampering(void **state)
{
    pki_t *p = *state;
    wa_noise_t *c, *s;
    int cert_err = 0;
    /* a flipped bit in the server hello's encrypted certificate payload
     * (the last field), in its encrypted static key (the middle one), and
     * in its ephemeral key (the first) */
    damage_t d = {.flip_hello_from_end = 3};
    assert_int_equal(handshake(p, &c, &s, &cert_err, &d), WA_NOISE_EDECRYPT);
    wa_noise_free(c);
    wa_noise_free(s);
    /* tag byte, length varint (1 or 2 bytes), sealed chain */
    size_t sealed = p->chain_len + 16;
    assert_true(sealed < 16384);
    size_t payload_field = 1 + (sealed < 128 ? 1 : 2) + sealed + 1;
    d.flip_hello_from_end = (int)(payload_field + 10);
    assert_int_equal(handshake(p, &c, &s, &cert_err, &d), WA_NOISE_EDECRYPT);
    wa_noise_free(c);
    wa_noise_free(s);
    d.flip_hello_from_end = (int)(payload_field + 50 + 20);
    assert_int_not_equal(handshake(p, &c, &s, &cert_err, &d), 0);
    wa_noise_free(c);
    wa_noise_free(s);
    /* flipped bits in the client finish: payload (last) and static (first) */
    d = (damage_t){.flip_finish_from_end = 1};
    assert_int_equal(handshake(p, &c, &s, &cert_err, &d), WA_NOISE_EDECRYPT);
    assert_false(wa_noise_ready(s));
    wa_noise_free(c);
    wa_noise_free(s);
    d.flip_finish_from_end = (int)(sizeof(client_payload) + 16 + 2 + 10);
    assert_int_equal(handshake(p, &c, &s, &cert_err, &d), WA_NOISE_EDECRYPT);
    wa_noise_free(c);
    wa_noise_free(s);

    /* certificate failures surface as ECERT with the detail in cert_err */
    p->trust.root_pub[7] ^= 0x80;
    assert_int_equal(handshake(p, &c, &s, &cert_err, NULL), WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_EINTER_SIG);
    assert_false(wa_noise_ready(c));
    p->trust.root_pub[7] ^= 0x80;
    wa_noise_free(c);
    wa_noise_free(s);
    make_chain(p, p->client.pub, 0, 1); /* a chain for another server key */
    assert_int_equal(handshake(p, &c, &s, &cert_err, NULL), WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_ELEAF_KEY);
    wa_noise_free(c);
    wa_noise_free(s);
    make_chain_full(p, p->server.pub, 0, 1, NOW - 100, NOW + 100, NOW - 100, NOW - 50);
    assert_int_equal(handshake(p, &c, &s, &cert_err, NULL), WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_ELEAF_TIME);
    wa_noise_free(c);
    wa_noise_free(s);
    make_chain(p, p->server.pub, 0, 1);
}

/* Packs a HandshakeMessage with the given parts (NULL = absent). */
static uint8_t *pack_hs(const uint8_t *e, size_t el, const uint8_t *st, size_t sl,
                        const uint8_t *pl, size_t pll, int which, size_t *len)
{
    Wa__HandshakeMessage m = WA__HANDSHAKE_MESSAGE__INIT;
    Wa__HandshakeMessage__ClientHello ch = WA__HANDSHAKE_MESSAGE__CLIENT_HELLO__INIT;
    Wa__HandshakeMessage__ServerHello sh = WA__HANDSHAKE_MESSAGE__SERVER_HELLO__INIT;
    Wa__HandshakeMessage__ClientFinish cf = WA__HANDSHAKE_MESSAGE__CLIENT_FINISH__INIT;
    if (which == 2) {
        ch.has_ephemeral = e != NULL;
        ch.ephemeral.data = (uint8_t *)e;
        ch.ephemeral.len = el;
        m.clienthello = &ch;
    } else if (which == 3) {
        sh.has_ephemeral = e != NULL;
        sh.ephemeral.data = (uint8_t *)e;
        sh.ephemeral.len = el;
        sh.has_static_ = st != NULL;
        sh.static_.data = (uint8_t *)st;
        sh.static_.len = sl;
        sh.has_payload = pl != NULL;
        sh.payload.data = (uint8_t *)pl;
        sh.payload.len = pll;
        m.serverhello = &sh;
    } else if (which == 4) {
        cf.has_static_ = st != NULL;
        cf.static_.data = (uint8_t *)st;
        cf.static_.len = sl;
        cf.has_payload = pl != NULL;
        cf.payload.data = (uint8_t *)pl;
        cf.payload.len = pll;
        m.clientfinish = &cf;
    }
    *len = wa__handshake_message__get_packed_size(&m);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    wa__handshake_message__pack(&m, buf);
    return buf;
}

/* Feeds msg to a fresh initiator's client_finish; returns its code. */
static int try_server_hello(pki_t *p, const uint8_t *msg, size_t len)
{
    wa_noise_t *c = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    uint8_t *o;
    size_t ol;
    assert_int_equal(wa_noise_client_hello(c, &o, &ol), 0);
    free(o);
    o = NULL;
    int rc = wa_noise_client_finish(c, msg, len, client_payload, 3, &o, &ol, NULL);
    assert_null(o);
    /* the state is dead afterwards */
    if (rc)
        assert_int_equal(wa_noise_client_finish(c, msg, len, NULL, 0, &o, &ol, NULL),
                         WA_NOISE_ESTATE);
    wa_noise_free(c);
    return rc;
}

static int try_client_hello(pki_t *p, const uint8_t *msg, size_t len)
{
    wa_noise_t *s = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    uint8_t *o = NULL;
    size_t ol;
    int rc = wa_noise_server_hello(s, msg, len, &o, &ol);
    if (rc)
        assert_null(o);
    free(o);
    wa_noise_free(s);
    return rc;
}

static void test_malformed_messages(void **state)
{
    pki_t *p = *state;
    uint8_t k32[33] = {9}, k48[48] = {0}, pl[40] = {0};
    static const uint8_t garbage[] = {0x1a, 0x05, 0x0a, 0x03, 1, 2, 3};
    static const uint8_t not_proto[] = {0xff, 0xff, 0xff, 0xff};
    size_t n;
    uint8_t *m;

    /* server hello: not a protobuf, truncated, missing parts, bad sizes */
    assert_int_equal(try_server_hello(p, not_proto, sizeof(not_proto)), WA_NOISE_EPROTO);
    assert_int_equal(try_server_hello(p, garbage, sizeof(garbage)), WA_NOISE_EPROTO);
    assert_int_equal(try_server_hello(p, NULL, 0), WA_NOISE_EPROTO);
    m = pack_hs(k32, 32, NULL, 0, NULL, 0, 2, &n); /* a clientHello instead */
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EPROTO);
    free(m);
    m = pack_hs(k32, 32, k48, 48, NULL, 0, 3, &n); /* no payload */
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EPROTO);
    free(m);
    m = pack_hs(NULL, 0, k48, 48, pl, 40, 3, &n); /* no ephemeral */
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EPROTO);
    free(m);
    m = pack_hs(k32, 31, k48, 48, pl, 40, 3, &n);
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EKEY);
    free(m);
    m = pack_hs(k32, 32, k48, 47, pl, 40, 3, &n);
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EKEY);
    free(m);
    m = pack_hs(k32, 32, k48, 48, pl, 40, 3, &n); /* right shape, wrong keys */
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EDECRYPT);
    free(m);
    uint8_t zero[32] = {0}; /* low-order ephemeral */
    m = pack_hs(zero, 32, k48, 48, pl, 40, 3, &n);
    assert_int_equal(try_server_hello(p, m, n), WA_NOISE_EKEY);
    free(m);
    /* every truncation of a real server hello fails cleanly */
    wa_noise_t *s = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    wa_noise_t *c = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    uint8_t *ch, *sh;
    size_t chl, shl;
    assert_int_equal(wa_noise_client_hello(c, &ch, &chl), 0);
    assert_int_equal(wa_noise_server_hello(s, ch, chl, &sh, &shl), 0);
    for (size_t i = 0; i < shl; i++)
        assert_int_not_equal(try_server_hello(p, sh, i), 0);
    free(sh);
    wa_noise_free(s);
    wa_noise_free(c);

    /* client hello */
    assert_int_equal(try_client_hello(p, not_proto, sizeof(not_proto)), WA_NOISE_EPROTO);
    assert_int_equal(try_client_hello(p, garbage, 3), WA_NOISE_EPROTO);
    for (size_t i = 0; i < chl; i++)
        assert_int_not_equal(try_client_hello(p, ch, i), 0);
    free(ch);
    m = pack_hs(NULL, 0, NULL, 0, NULL, 0, 2, &n);
    assert_int_equal(try_client_hello(p, m, n), WA_NOISE_EPROTO);
    free(m);
    m = pack_hs(k32, 33, NULL, 0, NULL, 0, 2, &n);
    assert_int_equal(try_client_hello(p, m, n), WA_NOISE_EKEY);
    free(m);
    m = pack_hs(zero, 32, NULL, 0, NULL, 0, 2, &n);
    assert_int_equal(try_client_hello(p, m, n), WA_NOISE_EKEY);
    free(m);
    m = pack_hs(k32, 32, k48, 48, pl, 40, 4, &n); /* a clientFinish first */
    assert_int_equal(try_client_hello(p, m, n), WA_NOISE_EPROTO);
    free(m);

    /* client finish */
    static const struct {
        int st, pl, slen, plen, want;
    } cases[] = {
        {0, 1, 48, 40, WA_NOISE_EPROTO},   {1, 0, 48, 40, WA_NOISE_EPROTO},
        {1, 1, 32, 40, WA_NOISE_EKEY},     {1, 1, 49, 40, WA_NOISE_EKEY},
        {1, 1, 48, 40, WA_NOISE_EDECRYPT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wa_noise_t *r = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
        wa_noise_t *ci = wa_noise_new_initiator(&p->client, &p->trust, NOW);
        uint8_t big[49] = {0};
        assert_int_equal(wa_noise_client_hello(ci, &ch, &chl), 0);
        assert_int_equal(wa_noise_server_hello(r, ch, chl, &sh, &shl), 0);
        free(ch);
        free(sh);
        m = pack_hs(NULL, 0, cases[i].st ? big : NULL, (size_t)cases[i].slen,
                    cases[i].pl ? pl : NULL, (size_t)cases[i].plen, 4, &n);
        uint8_t cs[32], *out = NULL;
        size_t ol;
        assert_int_equal(wa_noise_server_finish(r, m, n, cs, &out, &ol), cases[i].want);
        assert_null(out);
        assert_false(wa_noise_ready(r));
        free(m);
        wa_noise_free(r);
        wa_noise_free(ci);
    }
    wa_noise_t *r = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    wa_noise_t *ci = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    assert_int_equal(wa_noise_client_hello(ci, &ch, &chl), 0);
    assert_int_equal(wa_noise_server_hello(r, ch, chl, &sh, &shl), 0);
    free(ch);
    free(sh);
    uint8_t cs[32], *out;
    size_t ol;
    assert_int_equal(wa_noise_server_finish(r, not_proto, sizeof(not_proto), cs, &out, &ol),
                     WA_NOISE_EPROTO);
    wa_noise_free(r);
    wa_noise_free(ci);
}

static void test_state_machine(void **state)
{
    pki_t *p = *state;
    uint8_t *o;
    size_t ol;
    uint8_t cs[32];
    wa_noise_t *c = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    wa_noise_t *s = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    /* wrong order and wrong role */
    assert_int_equal(wa_noise_client_finish(c, (const uint8_t *)"x", 1, NULL, 0, &o, &ol, NULL),
                     WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_server_hello(c, (const uint8_t *)"x", 1, &o, &ol), WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_client_hello(s, &o, &ol), WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_server_finish(s, (const uint8_t *)"x", 1, cs, &o, &ol),
                     WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"x", 1, &o, &ol), WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_decrypt(s, (const uint8_t *)"x", 1, &o, &ol), WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_client_hello(c, &o, &ol), 0);
    free(o);
    assert_int_equal(wa_noise_client_hello(c, &o, &ol), WA_NOISE_ESTATE);
    /* bad arguments */
    assert_int_equal(wa_noise_client_hello(NULL, &o, &ol), WA_NOISE_EINVAL);
    assert_int_equal(wa_noise_encrypt(NULL, NULL, 0, &o, &ol), WA_NOISE_EINVAL);
    assert_int_equal(wa_noise_set_ephemeral(NULL, &p->client), WA_NOISE_EINVAL);
    assert_null(wa_noise_new_initiator(NULL, &p->trust, NOW));
    assert_null(wa_noise_new_initiator(&p->client, NULL, NOW));
    assert_null(wa_noise_new_responder(NULL, p->chain, p->chain_len));
    wa_noise_free(NULL);
    wa_noise_free(c);
    wa_noise_free(s);
    /* every code has its own message */
    for (int a = WA_NOISE_EINVAL; a <= 0; a++)
        for (int b = WA_NOISE_EINVAL; b < a; b++)
            assert_string_not_equal(wa_noise_strerror(a), wa_noise_strerror(b));
    assert_non_null(wa_noise_strerror(-999));
    assert_memory_equal(wa_noise_prologue, "WA\x06\x03", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_keypair_clamping),
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_hmac_rfc4231_sha256_md5),
        cmocka_unit_test(test_aes_gcm_nist),
        cmocka_unit_test(test_xeddsa_roundtrip_and_tampering),
        cmocka_unit_test(test_baileys_curve_vectors),
        cmocka_unit_test(test_ours_verified_by_baileys),
        cmocka_unit_test(test_baileys_noise_vector),
        cmocka_unit_test_setup_teardown(test_cert_verify, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_and_transport, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tampering, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_messages, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_state_machine, pki_setup, pki_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
