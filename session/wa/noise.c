/* Noise XX for WhatsApp: the symmetric state (h, ck, k, n), the two message
 * exchanges for each role, the split into transport keys, and framing of
 * the payloads as HandshakeMessage protobufs. */
#include "session/wa/noise.h"

#include <limits.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <string.h>

#include "proto/wa/handshake.pb-c.h"

const uint8_t wa_noise_prologue[4] = {'W', 'A', 6, 3};

static const char protocol_name[32] = "Noise_XX_25519_AESGCM_SHA256\0\0\0";

enum { ROLE_INITIATOR, ROLE_RESPONDER };
enum { ST_START, ST_SENT_HELLO, ST_GOT_HELLO, ST_READY, ST_FAILED };

struct wa_noise {
    int role, state;
    int has_e; /* ephemeral preset by wa_noise_set_ephemeral */
    uint8_t h[32], ck[32], k[32];
    uint32_t n;
    wa_keypair_t s, e;
    uint8_t re[32], rs[32];
    wa_cert_trust_t trust;
    int64_t now;
    uint8_t *chain;
    size_t chain_len;
    uint8_t write_key[32], read_key[32];
    uint32_t write_ctr, read_ctr;
};

const char *wa_noise_strerror(int code)
{
    switch (code) {
    case WA_NOISE_OK:
        return "ok";
    case WA_NOISE_ENOMEM:
        return "out of memory";
    case WA_NOISE_EPROTO:
        return "malformed handshake message";
    case WA_NOISE_EKEY:
        return "handshake key has a bad size";
    case WA_NOISE_EDECRYPT:
        return "decryption failed (tampered data or wrong key)";
    case WA_NOISE_ECERT:
        return "server certificate chain did not verify";
    case WA_NOISE_ESTATE:
        return "handshake step out of order";
    case WA_NOISE_ECRYPTO:
        return "crypto library failure";
    case WA_NOISE_ECOUNTER:
        return "nonce counter exhausted";
    case WA_NOISE_EINVAL:
        return "invalid argument";
    }
    return "unknown noise error";
}

static void iv_for(uint32_t n, uint8_t iv[12])
{
    memset(iv, 0, 12);
    iv[8] = (uint8_t)(n >> 24);
    iv[9] = (uint8_t)(n >> 16);
    iv[10] = (uint8_t)(n >> 8);
    iv[11] = (uint8_t)n;
}

static int mix_hash(wa_noise_t *n, const uint8_t *data, size_t len)
{
    const uint8_t *parts[2] = {n->h, data};
    size_t lens[2] = {32, len};
    return wa_crypto_sha256(parts, lens, 2, n->h) ? WA_NOISE_ECRYPTO : 0;
}

static int mix_key(wa_noise_t *n, const uint8_t ikm[32])
{
    uint8_t out[64];
    if (wa_crypto_hkdf(n->ck, 32, ikm, 32, NULL, 0, out, 64))
        return WA_NOISE_ECRYPTO;
    memcpy(n->ck, out, 32);
    memcpy(n->k, out + 32, 32);
    n->n = 0;
    OPENSSL_cleanse(out, sizeof(out));
    return 0;
}

static int mix_dh(wa_noise_t *n, const uint8_t priv[32], const uint8_t pub[32])
{
    uint8_t shared[32];
    if (wa_crypto_x25519(priv, pub, shared))
        return WA_NOISE_EKEY;
    int rc = mix_key(n, shared);
    OPENSSL_cleanse(shared, sizeof(shared));
    return rc;
}

static int encrypt_and_hash(wa_noise_t *n, const uint8_t *pt, size_t len, uint8_t **out)
{
    uint8_t iv[12];
    *out = malloc(len + 16);
    if (!*out)
        return WA_NOISE_ENOMEM;
    iv_for(n->n++, iv);
    if (wa_crypto_aesgcm_seal(n->k, iv, n->h, 32, pt, len, *out)) {
        free(*out);
        *out = NULL;
        return WA_NOISE_ECRYPTO;
    }
    return mix_hash(n, *out, len + 16);
}

static int decrypt_and_hash(wa_noise_t *n, const uint8_t *ct, size_t len, uint8_t **out)
{
    uint8_t iv[12];
    if (len < 16)
        return WA_NOISE_EPROTO;
    *out = malloc(len - 16 + 1);
    if (!*out)
        return WA_NOISE_ENOMEM;
    iv_for(n->n++, iv);
    int rc = wa_crypto_aesgcm_open(n->k, iv, n->h, 32, ct, len, *out);
    if (rc) {
        free(*out);
        *out = NULL;
        return rc == WA_CRYPTO_EAUTH ? WA_NOISE_EDECRYPT : WA_NOISE_ECRYPTO;
    }
    return mix_hash(n, ct, len);
}

static wa_noise_t *noise_new(int role, const wa_keypair_t *s)
{
    if (!s)
        return NULL;
    wa_noise_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->role = role;
    n->s = *s;
    memcpy(n->h, protocol_name, 32);
    memcpy(n->ck, protocol_name, 32);
    memcpy(n->k, protocol_name, 32);
    if (mix_hash(n, wa_noise_prologue, sizeof(wa_noise_prologue))) {
        OPENSSL_cleanse(n, sizeof(*n));
        free(n);
        return NULL;
    }
    return n;
}

wa_noise_t *wa_noise_new_initiator(const wa_keypair_t *s, const wa_cert_trust_t *trust, int64_t now)
{
    if (!trust)
        return NULL;
    wa_noise_t *n = noise_new(ROLE_INITIATOR, s);
    if (n) {
        n->trust = *trust;
        n->now = now;
    }
    return n;
}

wa_noise_t *wa_noise_new_responder(const wa_keypair_t *s, const uint8_t *chain, size_t chain_len)
{
    if (!chain && chain_len)
        return NULL;
    wa_noise_t *n = noise_new(ROLE_RESPONDER, s);
    if (!n)
        return NULL;
    n->chain = malloc(chain_len ? chain_len : 1);
    if (!n->chain) {
        free(n);
        return NULL;
    }
    if (chain_len)
        memcpy(n->chain, chain, chain_len);
    n->chain_len = chain_len;
    return n;
}

void wa_noise_free(wa_noise_t *n)
{
    if (!n)
        return;
    free(n->chain);
    OPENSSL_cleanse(n, sizeof(*n));
    free(n);
}

int wa_noise_ready(const wa_noise_t *n)
{
    return n && n->state == ST_READY;
}

int wa_noise_set_ephemeral(wa_noise_t *n, const wa_keypair_t *e)
{
    if (!n || !e)
        return WA_NOISE_EINVAL;
    if (n->state != ST_START)
        return WA_NOISE_ESTATE;
    n->e = *e;
    n->has_e = 1;
    return 0;
}

static int pack_msg(Wa__HandshakeMessage *m, uint8_t **out, size_t *out_len)
{
    *out_len = wa__handshake_message__get_packed_size(m);
    *out = malloc(*out_len ? *out_len : 1);
    if (!*out)
        return WA_NOISE_ENOMEM;
    wa__handshake_message__pack(m, *out);
    return 0;
}

static int split(wa_noise_t *n)
{
    uint8_t out[64];
    if (wa_crypto_hkdf(n->ck, 32, NULL, 0, NULL, 0, out, 64))
        return WA_NOISE_ECRYPTO;
    /* the first half is client -> server */
    memcpy(n->role == ROLE_INITIATOR ? n->write_key : n->read_key, out, 32);
    memcpy(n->role == ROLE_INITIATOR ? n->read_key : n->write_key, out + 32, 32);
    OPENSSL_cleanse(out, sizeof(out));
    n->write_ctr = n->read_ctr = 0;
    n->state = ST_READY;
    return 0;
}

static int fail(wa_noise_t *n, int rc)
{
    n->state = ST_FAILED;
    return rc;
}

int wa_noise_client_hello(wa_noise_t *n, uint8_t **out, size_t *out_len)
{
    if (!n || !out || !out_len)
        return WA_NOISE_EINVAL;
    if (n->role != ROLE_INITIATOR || n->state != ST_START)
        return WA_NOISE_ESTATE;
    if (!n->has_e && wa_crypto_keypair_generate(&n->e))
        return fail(n, WA_NOISE_ECRYPTO);
    int rc = mix_hash(n, n->e.pub, 32);
    if (rc)
        return fail(n, rc);
    Wa__HandshakeMessage m = WA__HANDSHAKE_MESSAGE__INIT;
    Wa__HandshakeMessage__ClientHello ch = WA__HANDSHAKE_MESSAGE__CLIENT_HELLO__INIT;
    ch.has_ephemeral = 1;
    ch.ephemeral.data = n->e.pub;
    ch.ephemeral.len = 32;
    m.clienthello = &ch;
    if ((rc = pack_msg(&m, out, out_len)))
        return fail(n, rc);
    n->state = ST_SENT_HELLO;
    return 0;
}

int wa_noise_client_finish(wa_noise_t *n, const uint8_t *server_hello, size_t len,
                           const uint8_t *payload, size_t payload_len, uint8_t **out,
                           size_t *out_len, int *cert_err)
{
    if (cert_err)
        *cert_err = 0;
    if (!n || (!server_hello && len) || (!payload && payload_len) || !out || !out_len ||
        payload_len > INT_MAX - 16)
        return WA_NOISE_EINVAL;
    if (n->role != ROLE_INITIATOR || n->state != ST_SENT_HELLO)
        return WA_NOISE_ESTATE;
    Wa__HandshakeMessage *m = wa__handshake_message__unpack(NULL, len, server_hello);
    if (!m)
        return fail(n, WA_NOISE_EPROTO);
    Wa__HandshakeMessage__ServerHello *sh = m->serverhello;
    uint8_t *rs = NULL, *cert = NULL, *enc_static = NULL, *enc_payload = NULL;
    int rc;
    if (!sh || !sh->has_ephemeral || !sh->has_static_ || !sh->has_payload) {
        rc = WA_NOISE_EPROTO;
        goto out;
    }
    if (sh->ephemeral.len != 32 || sh->static_.len != 48) {
        rc = WA_NOISE_EKEY;
        goto out;
    }
    memcpy(n->re, sh->ephemeral.data, 32);
    if ((rc = mix_hash(n, n->re, 32)) || (rc = mix_dh(n, n->e.priv, n->re)) ||
        (rc = decrypt_and_hash(n, sh->static_.data, sh->static_.len, &rs)))
        goto out;
    memcpy(n->rs, rs, 32);
    if ((rc = mix_dh(n, n->e.priv, n->rs)) ||
        (rc = decrypt_and_hash(n, sh->payload.data, sh->payload.len, &cert)))
        goto out;
    int crc = wa_cert_verify(cert, sh->payload.len - 16, &n->trust, n->rs, n->now);
    if (crc) {
        if (cert_err)
            *cert_err = crc;
        rc = WA_NOISE_ECERT;
        goto out;
    }
    if ((rc = encrypt_and_hash(n, n->s.pub, 32, &enc_static)) ||
        (rc = mix_dh(n, n->s.priv, n->re)) ||
        (rc = encrypt_and_hash(n, payload, payload_len, &enc_payload)))
        goto out;
    Wa__HandshakeMessage fm = WA__HANDSHAKE_MESSAGE__INIT;
    Wa__HandshakeMessage__ClientFinish cf = WA__HANDSHAKE_MESSAGE__CLIENT_FINISH__INIT;
    cf.has_static_ = cf.has_payload = 1;
    cf.static_.data = enc_static;
    cf.static_.len = 48;
    cf.payload.data = enc_payload;
    cf.payload.len = payload_len + 16;
    fm.clientfinish = &cf;
    if ((rc = pack_msg(&fm, out, out_len)))
        goto out;
    rc = split(n);
out:
    free(rs);
    free(cert);
    free(enc_static);
    free(enc_payload);
    wa__handshake_message__free_unpacked(m, NULL);
    return rc ? fail(n, rc) : 0;
}

int wa_noise_server_hello(wa_noise_t *n, const uint8_t *client_hello, size_t len, uint8_t **out,
                          size_t *out_len)
{
    if (!n || (!client_hello && len) || !out || !out_len || n->chain_len > INT_MAX - 16)
        return WA_NOISE_EINVAL;
    if (n->role != ROLE_RESPONDER || n->state != ST_START)
        return WA_NOISE_ESTATE;
    Wa__HandshakeMessage *m = wa__handshake_message__unpack(NULL, len, client_hello);
    if (!m)
        return fail(n, WA_NOISE_EPROTO);
    uint8_t *enc_static = NULL, *enc_payload = NULL;
    int rc;
    if (!m->clienthello || !m->clienthello->has_ephemeral) {
        rc = WA_NOISE_EPROTO;
        goto out;
    }
    if (m->clienthello->ephemeral.len != 32) {
        rc = WA_NOISE_EKEY;
        goto out;
    }
    memcpy(n->re, m->clienthello->ephemeral.data, 32);
    if (!n->has_e && wa_crypto_keypair_generate(&n->e)) {
        rc = WA_NOISE_ECRYPTO;
        goto out;
    }
    if ((rc = mix_hash(n, n->re, 32)) || (rc = mix_hash(n, n->e.pub, 32)) ||
        (rc = mix_dh(n, n->e.priv, n->re)) ||
        (rc = encrypt_and_hash(n, n->s.pub, 32, &enc_static)) ||
        (rc = mix_dh(n, n->s.priv, n->re)) ||
        (rc = encrypt_and_hash(n, n->chain, n->chain_len, &enc_payload)))
        goto out;
    Wa__HandshakeMessage sm = WA__HANDSHAKE_MESSAGE__INIT;
    Wa__HandshakeMessage__ServerHello sh = WA__HANDSHAKE_MESSAGE__SERVER_HELLO__INIT;
    sh.has_ephemeral = sh.has_static_ = sh.has_payload = 1;
    sh.ephemeral.data = n->e.pub;
    sh.ephemeral.len = 32;
    sh.static_.data = enc_static;
    sh.static_.len = 48;
    sh.payload.data = enc_payload;
    sh.payload.len = n->chain_len + 16;
    sm.serverhello = &sh;
    if ((rc = pack_msg(&sm, out, out_len)))
        goto out;
    n->state = ST_GOT_HELLO;
out:
    free(enc_static);
    free(enc_payload);
    wa__handshake_message__free_unpacked(m, NULL);
    return rc ? fail(n, rc) : 0;
}

int wa_noise_server_finish(wa_noise_t *n, const uint8_t *client_finish, size_t len,
                           uint8_t client_static[32], uint8_t **payload, size_t *payload_len)
{
    if (!n || (!client_finish && len) || !client_static || !payload || !payload_len)
        return WA_NOISE_EINVAL;
    if (n->role != ROLE_RESPONDER || n->state != ST_GOT_HELLO)
        return WA_NOISE_ESTATE;
    Wa__HandshakeMessage *m = wa__handshake_message__unpack(NULL, len, client_finish);
    if (!m)
        return fail(n, WA_NOISE_EPROTO);
    Wa__HandshakeMessage__ClientFinish *cf = m->clientfinish;
    uint8_t *rs = NULL, *pt = NULL;
    int rc;
    if (!cf || !cf->has_static_ || !cf->has_payload) {
        rc = WA_NOISE_EPROTO;
        goto out;
    }
    if (cf->static_.len != 48) {
        rc = WA_NOISE_EKEY;
        goto out;
    }
    if ((rc = decrypt_and_hash(n, cf->static_.data, 48, &rs)))
        goto out;
    memcpy(n->rs, rs, 32);
    if ((rc = mix_dh(n, n->e.priv, n->rs)) ||
        (rc = decrypt_and_hash(n, cf->payload.data, cf->payload.len, &pt)))
        goto out;
    memcpy(client_static, n->rs, 32);
    *payload = pt;
    *payload_len = cf->payload.len - 16;
    pt = NULL;
    rc = split(n);
out:
    free(rs);
    free(pt);
    wa__handshake_message__free_unpacked(m, NULL);
    return rc ? fail(n, rc) : 0;
}

int wa_noise_encrypt(wa_noise_t *n, const uint8_t *pt, size_t len, uint8_t **out, size_t *out_len)
{
    if (!n || (!pt && len) || !out || !out_len || len > INT_MAX - 16)
        return WA_NOISE_EINVAL;
    if (n->state != ST_READY)
        return WA_NOISE_ESTATE;
    if (n->write_ctr == UINT32_MAX)
        return WA_NOISE_ECOUNTER;
    uint8_t iv[12];
    *out = malloc(len + 16);
    if (!*out)
        return WA_NOISE_ENOMEM;
    iv_for(n->write_ctr++, iv);
    if (wa_crypto_aesgcm_seal(n->write_key, iv, NULL, 0, pt, len, *out)) {
        free(*out);
        *out = NULL;
        return WA_NOISE_ECRYPTO;
    }
    *out_len = len + 16;
    return 0;
}

int wa_noise_decrypt(wa_noise_t *n, const uint8_t *ct, size_t len, uint8_t **out, size_t *out_len)
{
    if (!n || (!ct && len) || !out || !out_len || len > INT_MAX)
        return WA_NOISE_EINVAL;
    if (n->state != ST_READY)
        return WA_NOISE_ESTATE;
    if (len < 16)
        return WA_NOISE_EDECRYPT;
    if (n->read_ctr == UINT32_MAX)
        return WA_NOISE_ECOUNTER;
    uint8_t iv[12];
    *out = malloc(len - 16 + 1);
    if (!*out)
        return WA_NOISE_ENOMEM;
    iv_for(n->read_ctr++, iv);
    int rc = wa_crypto_aesgcm_open(n->read_key, iv, NULL, 0, ct, len, *out);
    if (rc) {
        free(*out);
        *out = NULL;
        return rc == WA_CRYPTO_EAUTH ? WA_NOISE_EDECRYPT : WA_NOISE_ECRYPTO;
    }
    *out_len = len - 16;
    return 0;
}
