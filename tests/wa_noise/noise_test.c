/* Tests of session/wa/crypto.c, cert.c and noise.c: RFC known-answer
 * vectors, XEdDSA and X25519 cross-checked against the reference client's
 * own outputs, a whole Noise XX handshake between our two roles, and every
 * certificate and tampering failure. */
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

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (!strcmp(h, "-"))
        return 0;
    while (h[0] && h[1] && n < cap) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static void assert_hex(const uint8_t *got, size_t n, const char *want)
{
    uint8_t w[256];
    size_t wn = unhex(want, w, sizeof(w));
    assert_int_equal(wn, n);
    assert_memory_equal(got, w, n);
}

static void test_x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t a[32], b[32], pub[32], shared[32];
    unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
    unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
    assert_int_equal(wa_crypto_public_from_private(a, pub), 0);
    assert_hex(pub, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_int_equal(wa_crypto_public_from_private(b, pub), 0);
    assert_hex(pub, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_int_equal(wa_crypto_x25519(a, pub, shared), 0);
    assert_hex(shared, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    /* a low-order point gives an all-zero secret: refused */
    uint8_t zero[32] = {0};
    assert_int_not_equal(wa_crypto_x25519(a, zero, shared), 0);
}

static void test_hkdf_hmac_gcm_md5(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], okm[42], out[32];
    memset(ikm, 0x0b, sizeof(ikm));
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    assert_int_equal(wa_crypto_hkdf(salt, 13, ikm, 22, info, 10, okm, 42), 0);
    assert_hex(
        okm, 42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    uint8_t key[20];
    memset(key, 0x0b, sizeof(key));
    const uint8_t *parts[] = {(const uint8_t *)"Hi ", (const uint8_t *)"There"};
    size_t lens[] = {3, 5};
    assert_int_equal(wa_crypto_hmac_sha256(key, 20, parts, lens, 2, out), 0);
    assert_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* NIST GCM test case 14: AES-256, zero key and IV, 16 zero bytes */
    uint8_t k[32] = {0}, iv[12] = {0}, pt[16] = {0}, ct[32], back[16];
    assert_int_equal(wa_crypto_aesgcm_seal(k, iv, NULL, 0, pt, 16, ct), 0);
    assert_hex(ct, 32, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 32, back), 0);
    assert_memory_equal(back, pt, 16);
    ct[3] ^= 1;
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 32, back), WA_CRYPTO_EAUTH);
    assert_int_equal(wa_crypto_aesgcm_open(k, iv, NULL, 0, ct, 15, back), WA_CRYPTO_EINVAL);
    uint8_t md5[16];
    assert_int_equal(wa_crypto_md5("2.3000.1043857760", 17, md5), 0);
    uint8_t md5_abc[16];
    assert_int_equal(wa_crypto_md5("abc", 3, md5_abc), 0);
    assert_hex(md5_abc, 16, "900150983cd24fb0d6963f7d28e17f72");
}

static void test_xeddsa_roundtrip(void **state)
{
    (void)state;
    wa_keypair_t kp, other;
    assert_int_equal(wa_crypto_keypair_generate(&kp), 0);
    assert_int_equal(wa_crypto_keypair_generate(&other), 0);
    assert_int_equal(kp.priv[0] & 7, 0);
    assert_int_equal(kp.priv[31] & 0xc0, 0x40);
    uint8_t msg[100], sig[64];
    wa_crypto_random(msg, sizeof(msg));
    assert_int_equal(wa_crypto_sign(kp.priv, msg, sizeof(msg), sig), 0);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), 0);
    assert_int_equal(wa_crypto_verify(other.pub, msg, sizeof(msg), sig, 64), WA_CRYPTO_EAUTH);
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 63), WA_CRYPTO_EINVAL);
    msg[5] ^= 0x20;
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), WA_CRYPTO_EAUTH);
    msg[5] ^= 0x20;
    sig[10] ^= 1;
    assert_int_equal(wa_crypto_verify(kp.pub, msg, sizeof(msg), sig, 64), WA_CRYPTO_EAUTH);
}

/* Key pairs, signatures and shared secrets made by the reference client. */
static void test_baileys_curve_vectors(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/wa_gateway/tests/wa_noise/testdata/baileys_curve.txt",
             getenv("TEST_SRCDIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int count = 0;
    while (fgets(line, sizeof(line), f)) {
        char a[6][1100];
        if (sscanf(line, "%1099s %1099s %1099s %1099s %1099s %1099s", a[0], a[1], a[2], a[3], a[4],
                   a[5]) != 6)
            continue;
        uint8_t priv[32], pub[32], msg[512], sig[64], peer[32], shared[32], mine[32];
        unhex(a[0], priv, 32);
        unhex(a[1], pub, 32);
        size_t mlen = unhex(a[2], msg, sizeof(msg));
        unhex(a[3], sig, 64);
        unhex(a[4], peer, 32);
        unhex(a[5], shared, 32);
        assert_int_equal(wa_crypto_public_from_private(priv, mine), 0);
        assert_memory_equal(mine, pub, 32);
        assert_int_equal(wa_crypto_verify(pub, msg, mlen, sig, 64), 0);
        assert_int_equal(wa_crypto_x25519(priv, peer, mine), 0);
        assert_memory_equal(mine, shared, 32);
        /* and our signature with their key verifies too */
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

/* --- certificate chains and handshakes --- */

typedef struct {
    wa_keypair_t root, inter, server, client;
    uint8_t *chain;
    size_t chain_len;
    wa_cert_trust_t trust;
} pki_t;

static const int64_t NOW = 1790000000;

static void make_chain(pki_t *p, const uint8_t *leaf_key, uint32_t inter_issuer,
                       uint32_t leaf_issuer, uint64_t inter_nb, uint64_t leaf_na)
{
    wa_cert_details_t inter = {.serial = 1,
                               .issuer_serial = inter_issuer,
                               .not_before = inter_nb,
                               .not_after = NOW + 86400};
    memcpy(inter.key, p->inter.pub, 32);
    wa_cert_details_t leaf = {
        .serial = 7, .issuer_serial = leaf_issuer, .not_before = NOW - 100, .not_after = leaf_na};
    memcpy(leaf.key, leaf_key, 32);
    free(p->chain);
    assert_int_equal(
        wa_cert_build_chain(p->root.priv, p->inter.priv, &inter, &leaf, &p->chain, &p->chain_len),
        0);
}

static int pki_setup(void **state)
{
    pki_t *p = calloc(1, sizeof(*p));
    wa_crypto_keypair_generate(&p->root);
    wa_crypto_keypair_generate(&p->inter);
    wa_crypto_keypair_generate(&p->server);
    wa_crypto_keypair_generate(&p->client);
    make_chain(p, p->server.pub, 0, 1, NOW - 100, NOW + 3600);
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

static void test_cert_verify(void **state)
{
    pki_t *p = *state;
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW), 0);
    /* wrong root key */
    wa_cert_trust_t other = p->trust;
    other.root_pub[0] ^= 1;
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &other, p->server.pub, NOW),
                     WA_CERT_EINTER_SIG);
    /* leaf key is not the server's static key */
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->client.pub, NOW),
                     WA_CERT_ELEAF_KEY);
    /* expired leaf, intermediate not yet valid */
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW + 7200),
                     WA_CERT_ELEAF_TIME);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW - 1000),
                     WA_CERT_EINTER_TIME);
    /* every single-bit flip anywhere in the chain is caught */
    for (size_t i = 0; i < p->chain_len; i++) {
        p->chain[i] ^= 0x10;
        assert_int_not_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW),
                             0);
        p->chain[i] ^= 0x10;
    }
    /* wrong issuer serials */
    make_chain(p, p->server.pub, 5, 1, NOW - 100, NOW + 3600);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW),
                     WA_CERT_EINTER_ISSUER);
    make_chain(p, p->server.pub, 0, 9, NOW - 100, NOW + 3600);
    assert_int_equal(wa_cert_verify(p->chain, p->chain_len, &p->trust, p->server.pub, NOW),
                     WA_CERT_ELEAF_ISSUER);
    /* truncated and garbage */
    assert_int_not_equal(wa_cert_verify(p->chain, p->chain_len / 2, &p->trust, p->server.pub, NOW),
                         0);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(wa_cert_verify(junk, sizeof(junk), &p->trust, p->server.pub, NOW),
                     WA_CERT_EMALFORMED);
}

/* Runs the handshake; returns the first non-zero code. */
static int handshake(pki_t *p, wa_noise_t **ci, wa_noise_t **sr, int *cert_err, int flip_hello)
{
    *ci = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    *sr = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    uint8_t *m1, *m2, *m3, *payload;
    size_t l1, l2, l3, pl;
    int rc = wa_noise_client_hello(*ci, &m1, &l1);
    assert_int_equal(rc, 0);
    /* the intro header + ClientHello carry exactly the 32-byte ephemeral */
    rc = wa_noise_server_hello(*sr, m1, l1, &m2, &l2);
    free(m1);
    assert_int_equal(rc, 0);
    if (flip_hello)
        m2[l2 - flip_hello] ^= 1;
    static const uint8_t client_payload[] = "serialized ClientPayload";
    rc = wa_noise_client_finish(*ci, m2, l2, client_payload, sizeof(client_payload), &m3, &l3,
                                cert_err);
    free(m2);
    if (rc)
        return rc;
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
    int cert_err;
    assert_int_equal(handshake(p, &c, &s, &cert_err, 0), 0);
    assert_true(wa_noise_ready(c) && wa_noise_ready(s));
    for (int i = 0; i < 5; i++) {
        uint8_t msg[64], *ct, *pt;
        size_t cl, pl;
        memset(msg, i, sizeof(msg));
        wa_noise_t *from = i % 2 ? s : c, *to = i % 2 ? c : s;
        assert_int_equal(wa_noise_encrypt(from, msg, sizeof(msg), &ct, &cl), 0);
        assert_int_equal(cl, sizeof(msg) + 16);
        assert_int_equal(wa_noise_decrypt(to, ct, cl, &pt, &pl), 0);
        assert_memory_equal(pt, msg, sizeof(msg));
        free(ct);
        free(pt);
    }
    /* a flipped ciphertext bit fails authentication */
    uint8_t *ct, *pt;
    size_t cl, pl;
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"hello", 5, &ct, &cl), 0);
    ct[2] ^= 0x04;
    assert_int_equal(wa_noise_decrypt(s, ct, cl, &pt, &pl), WA_NOISE_EDECRYPT);
    free(ct);
    /* a replayed (out of order) frame fails too */
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"a", 1, &ct, &cl), 0);
    free(ct);
    assert_int_equal(wa_noise_encrypt(c, (const uint8_t *)"b", 1, &ct, &cl), 0);
    assert_int_equal(wa_noise_decrypt(s, ct, cl, &pt, &pl), WA_NOISE_EDECRYPT);
    free(ct);
    wa_noise_free(c);
    wa_noise_free(s);
}

static void test_handshake_failures(void **state)
{
    pki_t *p = *state;
    wa_noise_t *c, *s;
    int cert_err = 0;
    /* a flipped bit in the server hello's encrypted payload */
    assert_int_equal(handshake(p, &c, &s, &cert_err, 3), WA_NOISE_EDECRYPT);
    wa_noise_free(c);
    wa_noise_free(s);
    /* wrong trusted root key */
    p->trust.root_pub[7] ^= 0x80;
    assert_int_equal(handshake(p, &c, &s, &cert_err, 0), WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_EINTER_SIG);
    p->trust.root_pub[7] ^= 0x80;
    wa_noise_free(c);
    wa_noise_free(s);
    /* a chain for another server key */
    make_chain(p, p->client.pub, 0, 1, NOW - 100, NOW + 3600);
    assert_int_equal(handshake(p, &c, &s, &cert_err, 0), WA_NOISE_ECERT);
    assert_int_equal(cert_err, WA_CERT_ELEAF_KEY);
    wa_noise_free(c);
    wa_noise_free(s);
    /* malformed messages and calls out of order */
    wa_noise_t *x = wa_noise_new_initiator(&p->client, &p->trust, NOW);
    uint8_t *o;
    size_t ol;
    assert_int_equal(wa_noise_client_finish(x, (const uint8_t *)"x", 1, NULL, 0, &o, &ol, NULL),
                     WA_NOISE_ESTATE);
    assert_int_equal(wa_noise_client_hello(x, &o, &ol), 0);
    free(o);
    static const uint8_t garbage[] = {0x1a, 0x05, 0x0a, 0x03, 1, 2, 3};
    assert_int_not_equal(
        wa_noise_client_finish(x, garbage, sizeof(garbage), NULL, 0, &o, &ol, NULL), 0);
    wa_noise_free(x);
    wa_noise_t *y = wa_noise_new_responder(&p->server, p->chain, p->chain_len);
    assert_int_equal(wa_noise_server_hello(y, garbage, 3, &o, &ol), WA_NOISE_EPROTO);
    wa_noise_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_hkdf_hmac_gcm_md5),
        cmocka_unit_test(test_xeddsa_roundtrip),
        cmocka_unit_test(test_baileys_curve_vectors),
        cmocka_unit_test_setup_teardown(test_cert_verify, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_and_transport, pki_setup, pki_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_failures, pki_setup, pki_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
