/* libFuzzer target for pair-success (wa_pair_success), the stanza that
 * links the device: WhatsApp's server, or whoever speaks for it, controls
 * all of it. The first byte picks a mode, so that the fuzzer also gets
 * past the HMAC and the account signature, which it cannot forge:
 *   0: the rest is a frame (a binary node) as received;
 *   1: the rest is the ADVSignedDeviceIdentity, wrapped with a correct HMAC
 *      under our adv secret into a well-formed pair-success;
 *   2: the rest is the ADVDeviceIdentity, signed by a fixed phone key
 *      ([6,0] || details || our identity) and wrapped as in mode 1.
 * A success must give everything the caller persists (a trap otherwise);
 * nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wa/adv.pb-c.h"
#include "session/wa/crypto.h"
#include "session/wa/node.h"
#include "session/wa/pair.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

/* A fixed private key, clamped as generated ones are. */
static void fixed_priv(uint8_t priv[32], uint8_t fill)
{
    memset(priv, fill, 32);
    priv[0] &= 248;
    priv[31] = (uint8_t)((priv[31] & 127) | 64);
}

static wa_node_t *pair_success_node(const uint8_t *hmac_msg, size_t len)
{
    wa_node_t *iq = wa_node_new("iq");
    wa_node_set_attr(iq, "from", "s.whatsapp.net");
    wa_node_set_attr(iq, "type", "set");
    wa_node_set_attr(iq, "id", "ps-1");
    wa_node_t *ps = wa_node_add(iq, "pair-success");
    wa_node_set_bytes(wa_node_add(ps, "device-identity"), hmac_msg, len);
    wa_node_set_attr(wa_node_add(ps, "platform"), "name", "android");
    wa_node_t *dev = wa_node_add(ps, "device");
    wa_node_set_attr(dev, "jid", "15551234567:3@s.whatsapp.net");
    wa_node_set_attr(dev, "lid", "123456789012345:3@lid");
    return iq;
}

/* ADVSignedDeviceIdentityHMAC{details, hmac} with a correct HMAC. */
static uint8_t *wrap_hmac(const uint8_t adv[32], const uint8_t *sdi, size_t len, size_t *out_len)
{
    uint8_t mac[32];
    const uint8_t *pp[1] = {sdi};
    size_t ll[1] = {len};
    check(wa_crypto_hmac_sha256(adv, 32, pp, ll, 1, mac) == 0);
    Wa__ADVSignedDeviceIdentityHMAC h = WA__ADVSIGNED_DEVICE_IDENTITY_HMAC__INIT;
    h.has_details = h.has_hmac = 1;
    h.details.data = (uint8_t *)sdi;
    h.details.len = len;
    h.hmac.data = mac;
    h.hmac.len = 32;
    *out_len = wa__advsigned_device_identity_hmac__get_packed_size(&h);
    uint8_t *buf = malloc(*out_len ? *out_len : 1);
    wa__advsigned_device_identity_hmac__pack(&h, buf);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ident_priv[32], ident_pub[32], adv[32], phone_priv[32], phone_pub[32];
    fixed_priv(ident_priv, 0x11);
    memset(adv, 0x22, 32);
    fixed_priv(phone_priv, 0x33);
    check(wa_crypto_public_from_private(ident_priv, ident_pub) == 0);
    check(wa_crypto_public_from_private(phone_priv, phone_pub) == 0);
    uint8_t mode = data[0] % 3;
    data++;
    size--;
    wa_node_t *iq = NULL;
    if (mode == 0) {
        if (wa_node_decode(data, size, &iq) != 0)
            return 0;
    } else {
        uint8_t *sdi_buf = NULL;
        size_t sdi_len = size;
        const uint8_t *sdi = data;
        if (mode == 2) { /* a correctly signed identity with fuzzed details */
            uint8_t *msg = malloc(2 + size + 32);
            uint8_t sig[64];
            msg[0] = 6;
            msg[1] = 0;
            memcpy(msg + 2, data, size);
            memcpy(msg + 2 + size, ident_pub, 32);
            check(wa_crypto_sign(phone_priv, msg, 2 + size + 32, sig) == 0);
            free(msg);
            Wa__ADVSignedDeviceIdentity s = WA__ADVSIGNED_DEVICE_IDENTITY__INIT;
            s.has_details = s.has_accountsignaturekey = s.has_accountsignature = 1;
            s.details.data = (uint8_t *)data;
            s.details.len = size;
            s.accountsignaturekey.data = phone_pub;
            s.accountsignaturekey.len = 32;
            s.accountsignature.data = sig;
            s.accountsignature.len = 64;
            sdi_len = wa__advsigned_device_identity__get_packed_size(&s);
            sdi_buf = malloc(sdi_len);
            wa__advsigned_device_identity__pack(&s, sdi_buf);
            sdi = sdi_buf;
        }
        size_t hl;
        uint8_t *h = wrap_hmac(adv, sdi, sdi_len, &hl);
        iq = pair_success_node(h, hl);
        free(h);
        free(sdi_buf);
    }
    wa_pair_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = wa_pair_success(iq, ident_priv, ident_pub, adv, &res);
    if (rc == WA_PAIR_OK) {
        check(res.account && res.account_len && res.reply_identity && res.jid);
        wa_node_t *reply = wa_pair_sign_reply("ps-1", &res);
        check(reply != NULL);
        wa_node_free(reply);
        wa_pair_result_free(&res);
    } else {
        check(rc < 0 && !res.account && !res.jid);
    }
    wa_node_free(iq);
    return 0;
}
