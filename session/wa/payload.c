/* ClientPayload construction with protobuf-c (proto/wa/client_payload.proto):
 * user agent and web info as WhatsApp Web sends them, then either the device
 * pairing data (registration) or the user and device numbers (login). */
#include "session/wa/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wa/client_payload.pb-c.h"
#include "session/wa/crypto.h"
#include "session/wa/jid.h"

int wa_payload_parse_version(const char *s, wa_version_t *out)
{
    unsigned long a, b, c;
    char tail;
    if (sscanf(s, "%lu.%lu.%lu%c", &a, &b, &c, &tail) != 3 || a > 0xffffffffUL ||
        b > 0xffffffffUL || c > 0xffffffffUL)
        return -1;
    out->primary = (uint32_t)a;
    out->secondary = (uint32_t)b;
    out->tertiary = (uint32_t)c;
    return 0;
}

typedef struct {
    Wa__ClientPayload p;
    Wa__ClientPayload__UserAgent ua;
    Wa__ClientPayload__UserAgent__AppVersion av;
    Wa__ClientPayload__WebInfo web;
} common_t;

static void fill_common(common_t *c, const wa_version_t *v)
{
    wa__client_payload__init(&c->p);
    wa__client_payload__user_agent__init(&c->ua);
    wa__client_payload__user_agent__app_version__init(&c->av);
    wa__client_payload__web_info__init(&c->web);
    c->av.has_primary = c->av.has_secondary = c->av.has_tertiary = 1;
    c->av.primary = v->primary;
    c->av.secondary = v->secondary;
    c->av.tertiary = v->tertiary;
    c->ua.has_platform = 1;
    c->ua.platform = WA__CLIENT_PAYLOAD__USER_AGENT__PLATFORM__WEB;
    c->ua.appversion = &c->av;
    c->ua.mcc = "000";
    c->ua.mnc = "000";
    c->ua.osversion = "0.1";
    c->ua.manufacturer = "";
    c->ua.device = "Desktop";
    c->ua.osbuildnumber = "0.1";
    c->ua.has_releasechannel = 1;
    c->ua.releasechannel = WA__CLIENT_PAYLOAD__USER_AGENT__RELEASE_CHANNEL__RELEASE;
    c->ua.localelanguageiso6391 = "en";
    c->ua.localecountryiso31661alpha2 = "US";
    c->web.has_websubplatform = 1;
    c->web.websubplatform = WA__CLIENT_PAYLOAD__WEB_INFO__WEB_SUB_PLATFORM__WEB_BROWSER;
    c->p.useragent = &c->ua;
    c->p.webinfo = &c->web;
    c->p.has_connecttype = 1;
    c->p.connecttype = WA__CLIENT_PAYLOAD__CONNECT_TYPE__WIFI_UNKNOWN;
    c->p.has_connectreason = 1;
    c->p.connectreason = WA__CLIENT_PAYLOAD__CONNECT_REASON__USER_ACTIVATED;
}

static int pack(Wa__ClientPayload *p, uint8_t **out, size_t *len)
{
    *len = wa__client_payload__get_packed_size(p);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return -1;
    wa__client_payload__pack(p, *out);
    return 0;
}

static void be(uint8_t *dst, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

int wa_payload_registration(const wa_payload_reg_t *reg, const wa_version_t *v, uint8_t **out,
                            size_t *len)
{
    common_t c;
    fill_common(&c, v);
    c.p.has_passive = 1;
    c.p.passive = 0;
    c.p.has_pull = 1;
    c.p.pull = 0;

    /* DeviceProps: what the phone shows */
    Wa__DeviceProps props = WA__DEVICE_PROPS__INIT;
    Wa__DeviceProps__AppVersion pv = WA__DEVICE_PROPS__APP_VERSION__INIT;
    Wa__DeviceProps__HistorySyncConfig hs = WA__DEVICE_PROPS__HISTORY_SYNC_CONFIG__INIT;
    pv.has_primary = pv.has_secondary = pv.has_tertiary = 1;
    pv.primary = 0;
    pv.secondary = 1;
    pv.tertiary = 0;
    props.os = (char *)(reg->device_name && reg->device_name[0] ? reg->device_name
                                                                : WA_PAYLOAD_DEVICE_NAME);
    props.version = &pv;
    props.has_platformtype = 1;
    props.platformtype = (Wa__DeviceProps__PlatformType)WA_PAYLOAD_PLATFORM_TYPE;
    props.has_requirefullsync = 1;
    props.requirefullsync = 0;
    hs.has_storagequotamb = 1;
    hs.storagequotamb = 10240;
    hs.has_inlineinitialpayloadine2eemsg = 1;
    hs.inlineinitialpayloadine2eemsg = 1;
    props.historysyncconfig = &hs;
    size_t plen = wa__device_props__get_packed_size(&props);
    uint8_t *pbuf = malloc(plen ? plen : 1);
    if (!pbuf)
        return -1;
    wa__device_props__pack(&props, pbuf);

    char vs[48];
    snprintf(vs, sizeof(vs), "%u.%u.%u", v->primary, v->secondary, v->tertiary);
    uint8_t build_hash[16], regid[4], keytype[1] = {5}, skeyid[3];
    wa_crypto_md5(vs, strlen(vs), build_hash);
    be(regid, reg->reg_id, 4);
    be(skeyid, reg->spk_id & 0xffffff, 3);

    Wa__ClientPayload__DevicePairingRegistrationData d =
        WA__CLIENT_PAYLOAD__DEVICE_PAIRING_REGISTRATION_DATA__INIT;
#define SETB(f, p, n)                                                                              \
    do {                                                                                           \
        d.has_##f = 1;                                                                             \
        d.f.data = (uint8_t *)(p);                                                                 \
        d.f.len = (n);                                                                             \
    } while (0)
    SETB(eregid, regid, 4);
    SETB(ekeytype, keytype, 1);
    SETB(eident, reg->ident_pub, 32);
    SETB(eskeyid, skeyid, 3);
    SETB(eskeyval, reg->spk_pub, 32);
    SETB(eskeysig, reg->spk_sig, 64);
    SETB(buildhash, build_hash, 16);
    SETB(deviceprops, pbuf, plen);
#undef SETB
    c.p.devicepairingdata = &d;
    int rc = pack(&c.p, out, len);
    free(pbuf);
    return rc;
}

int wa_payload_login(const char *jid, const wa_version_t *v, uint8_t **out, size_t *len)
{
    uint64_t user;
    unsigned device;
    if (wa_jid_user_device(jid, &user, &device) != 0)
        return -1;
    common_t c;
    fill_common(&c, v);
    c.p.has_username = 1;
    c.p.username = user;
    c.p.has_device = 1;
    c.p.device = device;
    c.p.has_passive = 1;
    c.p.passive = 1;
    c.p.has_pull = 1;
    c.p.pull = 1;
    c.p.has_lc = 1;
    c.p.lc = 1;
    return pack(&c.p, out, len);
}
