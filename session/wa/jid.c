/* JID parsing and formatting, following the reference client's rules so
 * that our node encoding is byte-identical to it. */
#include "session/wa/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JavaScript's unary + / parseInt on a short string, reduced to a byte as
 * the reference encoder's pushByte does (NaN -> 0). */
static uint8_t js_number_byte(const char *s, size_t len, int parse_int)
{
    unsigned long v = 0;
    size_t i = 0;
    if (len == 0)
        return 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        v = (v * 10 + (unsigned long)(s[i] - '0')) & 0xffffffffUL;
    if (i == 0)
        return 0;
    if (!parse_int && i != len)
        return 0; /* +"12x" is NaN */
    return (uint8_t)(v & 0xff);
}

int wa_jid_parse(const char *s, wa_jid_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *at = strchr(s, '@');
    if (!at)
        return -1;
    out->server = at + 1;
    out->server_len = strlen(at + 1);
    /* user part: [userAgent, device] = split(':'); [user, agent] = split('_') */
    const char *uend = at;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *ua_end = colon ? colon : uend;
    if (colon) {
        const char *dstart = colon + 1;
        const char *dend = memchr(dstart, ':', (size_t)(uend - dstart));
        if (!dend)
            dend = uend;
        if (dend > dstart) {
            out->has_device = 1;
            out->device = js_number_byte(dstart, (size_t)(dend - dstart), 0);
        }
    }
    const char *us = memchr(s, '_', (size_t)(ua_end - s));
    out->user = s;
    out->user_len = (size_t)((us ? us : ua_end) - s);
    const char *srv = out->server;
    size_t sl = out->server_len;
    if (sl == 3 && !memcmp(srv, "lid", 3))
        out->domain_type = WA_JID_DOMAIN_LID;
    else if (sl == 6 && !memcmp(srv, "hosted", 6))
        out->domain_type = WA_JID_DOMAIN_HOSTED;
    else if (sl == 10 && !memcmp(srv, "hosted.lid", 10))
        out->domain_type = WA_JID_DOMAIN_HOSTED_LID;
    else if (us) {
        const char *astart = us + 1;
        const char *aend = memchr(astart, '_', (size_t)(ua_end - astart));
        if (!aend)
            aend = ua_end;
        if (aend > astart) {
            out->has_agent = 1;
            out->domain_type = js_number_byte(astart, (size_t)(aend - astart), 1);
        }
    }
    return 0;
}

const char *wa_jid_server_for_domain(uint8_t domain_type)
{
    switch (domain_type) {
    case WA_JID_DOMAIN_LID:
        return "lid";
    case WA_JID_DOMAIN_HOSTED:
        return "hosted";
    case WA_JID_DOMAIN_HOSTED_LID:
        return "hosted.lid";
    default:
        return "s.whatsapp.net";
    }
}

char *wa_jid_format(const char *user, size_t user_len, unsigned device, const char *server)
{
    size_t n = user_len + strlen(server) + 16;
    char *out = malloc(n);
    if (!out)
        return NULL;
    if (device)
        snprintf(out, n, "%.*s:%u@%s", (int)user_len, user, device, server);
    else
        snprintf(out, n, "%.*s@%s", (int)user_len, user, server);
    return out;
}

int wa_jid_user_device(const char *jid, uint64_t *user, unsigned *device)
{
    uint64_t u = 0;
    const char *p = jid;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (u > (UINT64_MAX - 9) / 10)
            return -1;
        u = u * 10 + (uint64_t)(*p - '0');
    }
    unsigned d = 0;
    if (*p == '_') { /* agent: skip */
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    if (*p == ':') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            d = d * 10 + (unsigned)(*p - '0');
            if (d > 65535)
                return -1;
        }
    }
    if (*p != '@')
        return -1;
    *user = u;
    *device = d;
    return 0;
}
