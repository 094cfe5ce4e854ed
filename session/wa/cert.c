/* Certificate chain checks in the reference (whatsmeow) order, and the
 * matching builder. Signatures are XEdDSA over the raw details bytes. */
#include "session/wa/cert.h"

#include <stdlib.h>
#include <string.h>

#include "proto/wa/handshake.pb-c.h"

const char *wa_cert_strerror(int code)
{
    switch (code) {
    case WA_CERT_OK:
        return "ok";
    case WA_CERT_EMALFORMED:
        return "malformed certificate chain";
    case WA_CERT_EMISSING:
        return "certificate chain incomplete";
    case WA_CERT_EINTER_SIG:
        return "intermediate certificate not signed by the trusted root key";
    case WA_CERT_EINTER_ISSUER:
        return "intermediate certificate issued by an unexpected serial";
    case WA_CERT_EINTER_KEY:
        return "intermediate certificate key has a bad size";
    case WA_CERT_ELEAF_SIG:
        return "leaf certificate not signed by the intermediate";
    case WA_CERT_EINTER_TIME:
        return "intermediate certificate expired or not yet valid";
    case WA_CERT_ELEAF_ISSUER:
        return "leaf certificate issued by an unexpected serial";
    case WA_CERT_ELEAF_KEY:
        return "leaf certificate key is not the server's static key";
    case WA_CERT_ELEAF_TIME:
        return "leaf certificate expired or not yet valid";
    case WA_CERT_ENOMEM:
        return "out of memory";
    case WA_CERT_EINVAL:
        return "invalid argument";
    case WA_CERT_ECRYPTO:
        return "crypto library failure";
    }
    return "unknown certificate error";
}

typedef Wa__CertChain__NoiseCertificate cert_t;
typedef Wa__CertChain__NoiseCertificate__Details details_t;

static details_t *details_unpack(size_t len, const uint8_t *data)
{
    return (details_t *)protobuf_c_message_unpack(
        &wa__cert_chain__noise_certificate__details__descriptor, NULL, len, data);
}

static int complete(const cert_t *c)
{
    return c && c->has_details && c->has_signature && c->signature.len == 64;
}

/* notBefore <= now <= notAfter; absent fields are 0 (so a missing notAfter
 * fails, a missing notBefore does not), as whatsmeow's getters make them. */
static int valid_at(const details_t *d, int64_t now)
{
    if (now < 0)
        return 0;
    uint64_t t = (uint64_t)now;
    uint64_t nb = d->has_notbefore ? d->notbefore : 0;
    uint64_t na = d->has_notafter ? d->notafter : 0;
    return nb <= t && t <= na;
}

int wa_cert_verify(const uint8_t *chain, size_t len, const wa_cert_trust_t *trust,
                   const uint8_t server_static[32], int64_t now)
{
    if ((!chain && len) || !trust || !server_static)
        return WA_CERT_EINVAL;
    Wa__CertChain *cc = wa__cert_chain__unpack(NULL, len, chain);
    if (!cc)
        return WA_CERT_EMALFORMED;
    details_t *inter = NULL, *leaf = NULL;
    int rc;
    /* 1 */
    if (!complete(cc->intermediate) || !complete(cc->leaf)) {
        rc = WA_CERT_EMISSING;
        goto out;
    }
    /* 2 */
    if (wa_crypto_verify(trust->root_pub, cc->intermediate->details.data,
                         cc->intermediate->details.len, cc->intermediate->signature.data, 64)) {
        rc = WA_CERT_EINTER_SIG;
        goto out;
    }
    /* 3 */
    inter = details_unpack(cc->intermediate->details.len, cc->intermediate->details.data);
    if (!inter) {
        rc = WA_CERT_EMALFORMED;
        goto out;
    }
    if ((inter->has_issuerserial ? inter->issuerserial : 0) != trust->root_serial) {
        rc = WA_CERT_EINTER_ISSUER;
        goto out;
    }
    if (!inter->has_key || inter->key.len != 32) {
        rc = WA_CERT_EINTER_KEY;
        goto out;
    }
    /* 4 */
    if (wa_crypto_verify(inter->key.data, cc->leaf->details.data, cc->leaf->details.len,
                         cc->leaf->signature.data, 64)) {
        rc = WA_CERT_ELEAF_SIG;
        goto out;
    }
    /* 5 */
    if (!valid_at(inter, now)) {
        rc = WA_CERT_EINTER_TIME;
        goto out;
    }
    /* 6 */
    leaf = details_unpack(cc->leaf->details.len, cc->leaf->details.data);
    if (!leaf) {
        rc = WA_CERT_EMALFORMED;
        goto out;
    }
    if ((leaf->has_issuerserial ? leaf->issuerserial : 0) !=
        (inter->has_serial ? inter->serial : 0)) {
        rc = WA_CERT_ELEAF_ISSUER;
        goto out;
    }
    /* 7 */
    if (!leaf->has_key || leaf->key.len != 32 ||
        !wa_crypto_equal(leaf->key.data, server_static, 32)) {
        rc = WA_CERT_ELEAF_KEY;
        goto out;
    }
    /* 8 */
    rc = valid_at(leaf, now) ? WA_CERT_OK : WA_CERT_ELEAF_TIME;
out:
    if (leaf)
        protobuf_c_message_free_unpacked(&leaf->base, NULL);
    if (inter)
        protobuf_c_message_free_unpacked(&inter->base, NULL);
    wa__cert_chain__free_unpacked(cc, NULL);
    return rc;
}

/* Serializes details and signs them; fills `c` (buffers owned by caller). */
static int make_cert(const uint8_t signer[32], const wa_cert_details_t *d, cert_t *c,
                     uint8_t **details_buf, uint8_t *sig)
{
    details_t det = WA__CERT_CHAIN__NOISE_CERTIFICATE__DETAILS__INIT;
    det.has_serial = det.has_issuerserial = det.has_key = 1;
    det.has_notbefore = det.has_notafter = 1;
    det.serial = d->serial;
    det.issuerserial = d->issuer_serial;
    det.key.data = (uint8_t *)d->key;
    det.key.len = 32;
    det.notbefore = d->not_before;
    det.notafter = d->not_after;
    size_t n = protobuf_c_message_get_packed_size(&det.base);
    *details_buf = malloc(n ? n : 1);
    if (!*details_buf)
        return WA_CERT_ENOMEM;
    protobuf_c_message_pack(&det.base, *details_buf);
    if (wa_crypto_sign(signer, *details_buf, n, sig))
        return WA_CERT_ECRYPTO;
    c->has_details = c->has_signature = 1;
    c->details.data = *details_buf;
    c->details.len = n;
    c->signature.data = sig;
    c->signature.len = 64;
    return 0;
}

int wa_cert_build_chain(const uint8_t root_priv[32], const uint8_t inter_priv[32],
                        const wa_cert_details_t *inter, const wa_cert_details_t *leaf,
                        uint8_t **out, size_t *out_len)
{
    if (!root_priv || !inter_priv || !inter || !leaf || !out || !out_len)
        return WA_CERT_EINVAL;
    cert_t ic = WA__CERT_CHAIN__NOISE_CERTIFICATE__INIT,
           lc = WA__CERT_CHAIN__NOISE_CERTIFICATE__INIT;
    uint8_t *ib = NULL, *lb = NULL, isig[64], lsig[64];
    int rc = make_cert(root_priv, inter, &ic, &ib, isig);
    if (!rc)
        rc = make_cert(inter_priv, leaf, &lc, &lb, lsig);
    if (!rc) {
        Wa__CertChain cc = WA__CERT_CHAIN__INIT;
        cc.intermediate = &ic;
        cc.leaf = &lc;
        *out_len = wa__cert_chain__get_packed_size(&cc);
        *out = malloc(*out_len);
        if (*out)
            wa__cert_chain__pack(&cc, *out);
        else
            rc = WA_CERT_ENOMEM;
    }
    free(ib);
    free(lb);
    return rc;
}
