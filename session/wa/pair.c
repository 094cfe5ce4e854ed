/* QR strings and pair-success handling (see pair.h). The order of checks is
 * the reference one: HMAC over the details (with the hosted prefix for
 * hosted accounts), then the account signature over [6,0]/[6,5] || details
 * || our identity key, then our device signature over [6,1] || details ||
 * our identity || the account key. */
#include "session/wa/pair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "proto/wa/adv.pb-c.h"
#include "session/wa/crypto.h"

const char *wa_pair_strerror(int code)
{
    switch (code) {
    case WA_PAIR_OK:
        return "ok";
    case WA_PAIR_ENOMEM:
        return "out of memory";
    case WA_PAIR_EMALFORMED:
        return "malformed pairing data";
    case WA_PAIR_EHMAC:
        return "pairing HMAC mismatch";
    case WA_PAIR_ESIG:
        return "account signature mismatch";
    case WA_PAIR_ECRYPTO:
        return "crypto failure";
    }
    return "unknown pairing error";
}

char *wa_pair_b64(const uint8_t *d, size_t len)
{
    return b64_encode(d, len);
}

long wa_pair_unb64(const char *s, size_t len, uint8_t *out, size_t cap)
{
    return b64_decode(s, len, out, cap);
}

char *wa_pair_qr(const uint8_t *ref, size_t ref_len, const uint8_t noise_pub[32],
                 const uint8_t ident_pub[32], const uint8_t adv_secret[32])
{
    char *n = wa_pair_b64(noise_pub, 32), *i = wa_pair_b64(ident_pub, 32),
         *a = wa_pair_b64(adv_secret, 32);
    char *out = NULL;
    if (n && i && a) {
        size_t len = sizeof(WA_PAIR_QR_PREFIX) + ref_len + strlen(n) + strlen(i) + strlen(a) + 8;
        out = malloc(len);
        if (out)
            snprintf(out, len, "%s%.*s,%s,%s,%s,%s", WA_PAIR_QR_PREFIX, (int)ref_len,
                     (const char *)ref, n, i, a, WA_PAIR_PLATFORM_ID);
    }
    free(n);
    free(i);
    if (a)
        explicit_bzero(a, strlen(a)); /* the adv secret */
    free(a);
    return out;
}

void wa_pair_qr_parts_free(wa_pair_qr_parts_t *p)
{
    if (p->buf)
        explicit_bzero(p->buf, p->buf_len);
    free(p->buf);
    explicit_bzero(p, sizeof(*p));
}

int wa_pair_qr_parse(const char *qr, wa_pair_qr_parts_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t pl = strlen(WA_PAIR_QR_PREFIX);
    if (strncmp(qr, WA_PAIR_QR_PREFIX, pl) != 0)
        return WA_PAIR_EMALFORMED;
    out->buf = strdup(qr + pl);
    if (!out->buf)
        return WA_PAIR_ENOMEM;
    out->buf_len = strlen(out->buf);
    char *f[5];
    char *p = out->buf;
    for (int i = 0; i < 5; i++) {
        f[i] = p;
        char *c = strchr(p, ',');
        if (i < 4) {
            if (!c)
                goto bad;
            *c = 0;
            p = c + 1;
        } else if (c) {
            goto bad;
        }
    }
    if (!*f[0] || !*f[4])
        goto bad;
    if (wa_pair_unb64(f[1], strlen(f[1]), out->noise_pub, 32) != 32 ||
        wa_pair_unb64(f[2], strlen(f[2]), out->ident_pub, 32) != 32 ||
        wa_pair_unb64(f[3], strlen(f[3]), out->adv_secret, 32) != 32)
        goto bad;
    out->ref = f[0];
    out->platform = f[4];
    return 0;
bad:
    wa_pair_qr_parts_free(out);
    return WA_PAIR_EMALFORMED;
}

void wa_pair_result_free(wa_pair_result_t *r)
{
    free(r->jid);
    free(r->lid);
    free(r->platform);
    free(r->business_name);
    free(r->account);
    free(r->reply_identity);
    memset(r, 0, sizeof(*r));
}

static char *dup_attr(const wa_node_t *n, const char *key)
{
    const char *v = wa_node_attr(n, key);
    return v ? strdup(v) : NULL;
}

int wa_pair_success(const wa_node_t *iq, const uint8_t ident_priv[32], const uint8_t ident_pub[32],
                    const uint8_t adv_secret[32], wa_pair_result_t *res)
{
    memset(res, 0, sizeof(*res));
    const wa_node_t *ps = wa_node_child(iq, "pair-success");
    const wa_node_t *di = wa_node_child(ps, "device-identity");
    const wa_node_t *dev = wa_node_child(ps, "device");
    size_t dilen;
    const uint8_t *dibytes = wa_node_content(di, &dilen);
    if (!ps || !dibytes || !dev || !wa_node_attr(dev, "jid"))
        return WA_PAIR_EMALFORMED;
    Wa__ADVSignedDeviceIdentityHMAC *h =
        wa__advsigned_device_identity_hmac__unpack(NULL, dilen, dibytes);
    if (!h)
        return WA_PAIR_EMALFORMED;
    Wa__ADVSignedDeviceIdentity *sdi = NULL;
    Wa__ADVDeviceIdentity *id = NULL;
    int rc;
    if (!h->has_details || !h->has_hmac || h->hmac.len != 32) {
        rc = WA_PAIR_EMALFORMED;
        goto out;
    }
    int hosted = h->has_accounttype && h->accounttype == WA__ADVENCRYPTION_TYPE__HOSTED;
    static const uint8_t hosted_prefix[2] = {6, 5};
    const uint8_t *parts[2] = {hosted_prefix, h->details.data};
    size_t lens[2] = {2, h->details.len};
    uint8_t mac[32];
    if (wa_crypto_hmac_sha256(adv_secret, 32, hosted ? parts : parts + 1, hosted ? lens : lens + 1,
                              hosted ? 2 : 1, mac)) {
        rc = WA_PAIR_ECRYPTO;
        goto out;
    }
    if (!wa_crypto_equal(mac, h->hmac.data, 32)) {
        rc = WA_PAIR_EHMAC;
        goto out;
    }
    sdi = wa__advsigned_device_identity__unpack(NULL, h->details.len, h->details.data);
    if (!sdi || !sdi->has_details || !sdi->has_accountsignaturekey ||
        sdi->accountsignaturekey.len != 32 || !sdi->has_accountsignature ||
        sdi->accountsignature.len != 64) {
        rc = WA_PAIR_EMALFORMED;
        goto out;
    }
    id = wa__advdevice_identity__unpack(NULL, sdi->details.len, sdi->details.data);
    if (!id) {
        rc = WA_PAIR_EMALFORMED;
        goto out;
    }
    int dev_hosted = id->has_devicetype && id->devicetype == WA__ADVENCRYPTION_TYPE__HOSTED;
    size_t dl = sdi->details.len;
    uint8_t *msg = malloc(2 + dl + 64);
    if (!msg) {
        rc = WA_PAIR_ENOMEM;
        goto out;
    }
    /* account signature: [6,0] (hosted [6,5]) || details || our identity */
    msg[0] = 6;
    msg[1] = dev_hosted ? 5 : 0;
    if (dl) /* empty details arrive as NULL */
        memcpy(msg + 2, sdi->details.data, dl);
    memcpy(msg + 2 + dl, ident_pub, 32);
    if (wa_crypto_verify(sdi->accountsignaturekey.data, msg, 2 + dl + 32,
                         sdi->accountsignature.data, 64)) {
        free(msg);
        rc = WA_PAIR_ESIG;
        goto out;
    }
    /* device signature: [6,1] || details || identity || account key, also
     * for hosted accounts (whatsmeow stopped using [6,6] in October 2025,
     * Baileys never did; protocol doc 11.4) */
    uint8_t devsig[64];
    msg[1] = 1;
    memcpy(msg + 2 + dl + 32, sdi->accountsignaturekey.data, 32);
    rc = wa_crypto_sign(ident_priv, msg, 2 + dl + 64, devsig) ? WA_PAIR_ECRYPTO : 0;
    free(msg);
    if (rc)
        goto out;
    sdi->has_devicesignature = 1;
    sdi->devicesignature.data = devsig;
    sdi->devicesignature.len = 64;
    res->account_len = wa__advsigned_device_identity__get_packed_size(sdi);
    res->account = malloc(res->account_len);
    /* the copy sent back omits accountSignatureKey */
    int had_key = sdi->has_accountsignaturekey;
    sdi->has_accountsignaturekey = 0;
    res->reply_identity_len = wa__advsigned_device_identity__get_packed_size(sdi);
    res->reply_identity = malloc(res->reply_identity_len);
    if (res->account && res->reply_identity) {
        wa__advsigned_device_identity__pack(sdi, res->reply_identity);
        sdi->has_accountsignaturekey = had_key;
        wa__advsigned_device_identity__pack(sdi, res->account);
    }
    sdi->has_accountsignaturekey = had_key;
    sdi->devicesignature.data = NULL; /* not ours to free */
    sdi->devicesignature.len = 0;
    sdi->has_devicesignature = 0;
    res->jid = dup_attr(dev, "jid");
    res->lid = dup_attr(dev, "lid");
    res->platform = dup_attr(wa_node_child(ps, "platform"), "name");
    res->business_name = dup_attr(wa_node_child(ps, "biz"), "name");
    res->key_index = id->has_keyindex ? id->keyindex : 0;
    res->hosted = hosted;
    rc = res->account && res->reply_identity && res->jid ? 0 : WA_PAIR_ENOMEM;
out:
    if (id)
        wa__advdevice_identity__free_unpacked(id, NULL);
    if (sdi)
        wa__advsigned_device_identity__free_unpacked(sdi, NULL);
    wa__advsigned_device_identity_hmac__free_unpacked(h, NULL);
    if (rc)
        wa_pair_result_free(res);
    return rc;
}

wa_node_t *wa_pair_sign_reply(const char *id, const wa_pair_result_t *res)
{
    wa_node_t *iq = wa_node_new("iq");
    if (!iq)
        return NULL;
    char ki[16];
    snprintf(ki, sizeof(ki), "%u", res->key_index);
    wa_node_t *sign = wa_node_add(iq, "pair-device-sign");
    wa_node_t *di = sign ? wa_node_add(sign, "device-identity") : NULL;
    if (!di || wa_node_set_attr(iq, "to", "@s.whatsapp.net") ||
        wa_node_set_attr(iq, "type", "result") || wa_node_set_attr(iq, "id", id) ||
        wa_node_set_attr(di, "key-index", ki) ||
        wa_node_set_bytes(di, res->reply_identity, res->reply_identity_len)) {
        wa_node_free(iq);
        return NULL;
    }
    return iq;
}

wa_node_t *wa_pair_error_reply(const char *id, int code, const char *text)
{
    wa_node_t *iq = wa_node_new("iq");
    wa_node_t *e = iq ? wa_node_add(iq, "error") : NULL;
    char c[16];
    snprintf(c, sizeof(c), "%d", code);
    if (!e || wa_node_set_attr(iq, "to", "@s.whatsapp.net") ||
        wa_node_set_attr(iq, "type", "error") || wa_node_set_attr(iq, "id", id) ||
        wa_node_set_attr(e, "code", c) || wa_node_set_attr(e, "text", text)) {
        wa_node_free(iq);
        return NULL;
    }
    return iq;
}
