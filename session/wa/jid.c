/* JID parsing and formatting. The parser follows the reference client
 * (Baileys jidDecode, then pushByte(x & 0xff) in its encoder), including
 * JavaScript's Number() and parseInt() for the device and agent parts, so
 * that even odd JIDs encode to the same bytes as the reference. */
#include "session/wa/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- JavaScript number conversions, reduced to the byte pushByte writes --- */

/* Length of the JavaScript white space / line terminator at s (UTF-8), or 0. */
static size_t js_space(const unsigned char *s, size_t n)
{
    static const char *const multi[] = {
        "\xc2\xa0",     "\xef\xbb\xbf", "\xe1\x9a\x80", "\xe2\x80\xaf",
        "\xe2\x81\x9f", "\xe3\x80\x80", "\xe2\x80\xa8", "\xe2\x80\xa9",
    };
    if (n == 0)
        return 0;
    if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r'))
        return 1;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0x80 && s[2] <= 0x8a)
        return 3; /* U+2000..U+200A */
    for (size_t i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
        size_t l = strlen(multi[i]);
        if (n >= l && !memcmp(s, multi[i], l))
            return l;
    }
    return 0;
}

/* ToInt32(v) & 0xff, with NaN and infinities giving 0. */
static uint8_t js_byte(double v)
{
    const double big = 2305843009213693952.0; /* 2^61: doubles beyond are multiples of 256 */
    if (v != v || v >= big || v <= -big)
        return 0;
    return (uint8_t)(uint64_t)(int64_t)v;
}

static int digit_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

/* The correctly rounded value of the digits s[0..n) in `radix` (a power of
 * two), as JavaScript computes it. */
static double radix_value(const unsigned char *s, size_t n, int radix)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (v > (UINT64_MAX - (uint64_t)radix) / (uint64_t)radix)
            return 18446744073709551616.0; /* >= 2^64: a multiple of 256 either way */
        v = v * (uint64_t)radix + (uint64_t)digit_value(s[i]);
    }
    return (double)v; /* the conversion rounds to nearest, ties to even */
}

/* strtod on s[0..n), which holds only [0-9.eE+-] characters. */
static double decimal_value(const unsigned char *s, size_t n)
{
    char small[64];
    char *buf = n < sizeof(small) ? small : malloc(n + 1);
    if (!buf)
        return 0; /* out of memory on an absurd device text: treat as 0 */
    memcpy(buf, s, n);
    buf[n] = 0;
    double v = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return v;
}

static size_t count_digits(const unsigned char *s, size_t n, int radix)
{
    size_t i = 0;
    while (i < n && digit_value(s[i]) < radix)
        i++;
    return i;
}

/* Strips JavaScript white space from both ends of s[0..n). */
static void js_trim(const unsigned char **s, size_t *n)
{
    size_t l, i = 0, end = 0;
    while ((l = js_space(*s, *n)) > 0) {
        *s += l;
        *n -= l;
    }
    while (i < *n) {
        l = js_space(*s + i, *n - i);
        if (l) {
            i += l;
        } else {
            i++;
            end = i;
        }
    }
    *n = end;
}

/* Number(text) & 0xff as in `pushByte(+device || 0)`. */
static uint8_t js_number_byte(const unsigned char *s, size_t n)
{
    js_trim(&s, &n);
    if (n == 0)
        return 0; /* Number("") is 0 */
    if (n > 2 && s[0] == '0') {
        int c = s[1] | 0x20;
        int radix = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
        if (radix) {
            if (count_digits(s + 2, n - 2, radix) != n - 2)
                return 0; /* NaN */
            return js_byte(radix_value(s + 2, n - 2, radix));
        }
    }
    const unsigned char *p = s;
    size_t left = n;
    if (*p == '+' || *p == '-') {
        p++;
        left--;
    }
    if (left == 8 && !memcmp(p, "Infinity", 8))
        return 0; /* ToInt32(Infinity) is 0 */
    size_t intd = count_digits(p, left, 10), fracd = 0, i = intd;
    if (i < left && p[i] == '.') {
        fracd = count_digits(p + i + 1, left - i - 1, 10);
        i += 1 + fracd;
    }
    if (intd == 0 && fracd == 0)
        return 0; /* NaN */
    if (i < left && (p[i] | 0x20) == 'e') {
        size_t j = i + 1;
        if (j < left && (p[j] == '+' || p[j] == '-'))
            j++;
        size_t e = count_digits(p + j, left - j, 10);
        if (e == 0)
            return 0;
        i = j + e;
    }
    if (i != left)
        return 0; /* NaN */
    return js_byte(decimal_value(s, n));
}

/* parseInt(text) & 0xff as in `pushByte(parseInt(agent) || 0)`. */
static uint8_t js_parse_int_byte(const unsigned char *s, size_t n)
{
    size_t l;
    while ((l = js_space(s, n)) > 0) {
        s += l;
        n -= l;
    }
    int neg = 0;
    if (n > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s++;
        n--;
    }
    int radix = 10;
    if (n >= 2 && s[0] == '0' && (s[1] | 0x20) == 'x') {
        radix = 16;
        s += 2;
        n -= 2;
    }
    size_t d = count_digits(s, n, radix);
    if (d == 0)
        return 0; /* NaN */
    double v = radix == 16 ? radix_value(s, d, 16) : decimal_value(s, d);
    return js_byte(neg ? -v : v);
}

/* --- parsing --- */

static uint8_t domain_for_server(const char *srv, size_t sl)
{
    if (sl == 3 && !memcmp(srv, "lid", 3))
        return WA_JID_DOMAIN_LID;
    if (sl == 6 && !memcmp(srv, "hosted", 6))
        return WA_JID_DOMAIN_HOSTED;
    if (sl == 10 && !memcmp(srv, "hosted.lid", 10))
        return WA_JID_DOMAIN_HOSTED_LID;
    return 0xff; /* not a domain server */
}

int wa_jid_parse_n(const char *s, size_t len, wa_jid_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *at = memchr(s, '@', len);
    if (!at)
        return -1;
    out->server = at + 1;
    out->server_len = len - (size_t)(at - s) - 1;
    /* [userAgent, device] = userCombined.split(':') */
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *ua_end = colon ? colon : at;
    if (colon) {
        const char *dstart = colon + 1;
        const char *dend = memchr(dstart, ':', (size_t)(at - dstart));
        if (!dend)
            dend = at;
        if (dend > dstart) {
            out->has_device = 1;
            out->device_text = dstart;
            out->device_len = (size_t)(dend - dstart);
            out->device = js_number_byte((const unsigned char *)dstart, out->device_len);
        }
    }
    /* [user, agent] = userAgent.split('_') */
    const char *us = memchr(s, '_', (size_t)(ua_end - s));
    out->user = s;
    out->user_len = (size_t)((us ? us : ua_end) - s);
    if (us) {
        const char *astart = us + 1;
        const char *aend = memchr(astart, '_', (size_t)(ua_end - astart));
        if (!aend)
            aend = ua_end;
        if (aend > astart) {
            out->has_agent = 1;
            out->agent = astart;
            out->agent_len = (size_t)(aend - astart);
        }
    }
    uint8_t dom = domain_for_server(out->server, out->server_len);
    if (dom != 0xff)
        out->domain_type = dom;
    else if (out->has_agent)
        out->domain_type = js_parse_int_byte((const unsigned char *)out->agent, out->agent_len);
    return 0;
}

int wa_jid_parse(const char *s, wa_jid_t *out)
{
    return wa_jid_parse_n(s, strlen(s), out);
}

const char *wa_jid_server_for_domain(uint8_t domain_type)
{
    switch (domain_type) {
    case WA_JID_DOMAIN_LID:
        return WA_JID_SERVER_LID;
    case WA_JID_DOMAIN_HOSTED:
        return WA_JID_SERVER_HOSTED;
    case WA_JID_DOMAIN_HOSTED_LID:
        return WA_JID_SERVER_HOSTED_LID;
    default:
        return WA_JID_SERVER_PN;
    }
}

/* --- formatting and helpers --- */

char *wa_jid_format(const char *user, size_t user_len, unsigned device, const char *server)
{
    size_t n = user_len + strlen(server) + 16;
    char *out = malloc(n);
    if (!out)
        return NULL;
    memcpy(out, user, user_len);
    if (device)
        snprintf(out + user_len, n - user_len, ":%u@%s", device, server);
    else
        snprintf(out + user_len, n - user_len, "@%s", server);
    return out;
}

int wa_jid_user_device(const char *jid, uint64_t *user, unsigned *device)
{
    uint64_t u = 0;
    const char *p = jid;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (u > (UINT64_MAX - d) / 10)
            return -1;
        u = u * 10 + d;
    }
    unsigned dev = 0;
    if (*p == '_') { /* agent: skip */
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    if (*p == ':') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            dev = dev * 10 + (unsigned)(*p - '0');
            if (dev > 65535)
                return -1;
        }
    }
    if (*p != '@')
        return -1;
    *user = u;
    *device = dev;
    return 0;
}

char *wa_jid_without_device(const char *jid)
{
    wa_jid_t j;
    if (wa_jid_parse(jid, &j) != 0)
        return NULL;
    size_t n = j.user_len + 1 + j.server_len;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, j.user, j.user_len);
    out[j.user_len] = '@';
    memcpy(out + j.user_len + 1, j.server, j.server_len);
    out[n] = 0;
    return out;
}

int wa_jid_same_user(const char *a, const char *b)
{
    wa_jid_t x, y;
    if (wa_jid_parse(a, &x) != 0 || wa_jid_parse(b, &y) != 0)
        return 0;
    return x.user_len == y.user_len && !memcmp(x.user, y.user, x.user_len) &&
           x.server_len == y.server_len && !memcmp(x.server, y.server, x.server_len);
}
