/* WhatsApp Web version facts (see version.h): the sw.js parser, the sw.js
 * URL, comparison and text form. Every scan is bounded by the buffer. */
#include "session/wa/version.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char KEY[] = "client_revision";
#define KEY_LEN (sizeof(KEY) - 1)

static int is_ident(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$';
}

static int is_host_char(uint8_t c)
{
    return is_ident(c) && c != '$' ? 1 : c == '.' || c == '-';
}

static int is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* A quote at p: `"` or `\"` (the escaped form inside a JS string literal).
 * Returns its length (1 or 2) or 0. */
static size_t quote_at(const uint8_t *p, const uint8_t *end)
{
    if (p < end && *p == '"')
        return 1;
    if (end - p >= 2 && p[0] == '\\' && p[1] == '"')
        return 2;
    return 0;
}

/* Matches the rest of the pattern after the key at [p, end):
 *   [quote] blanks ':' blanks [quote] digits
 * where the key's closing quote is required when it was opened. On a match
 * stores 0 (ok) / WA_VERSION_ERANGE in *rc and returns 1; else 0. */
static int match_value(const uint8_t *p, const uint8_t *end, int quoted, uint32_t *rev, int *rc)
{
    size_t q = quote_at(p, end);
    if (quoted && !q)
        return 0;
    p += q;
    while (p < end && is_blank(*p))
        p++;
    if (p >= end || *p != ':')
        return 0;
    p++;
    while (p < end && is_blank(*p))
        p++;
    p += quote_at(p, end);
    if (p >= end || !is_digit(*p))
        return 0;
    uint64_t v = 0;
    int overflow = 0;
    for (; p < end && is_digit(*p); p++) {
        if (!overflow) {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX)
                overflow = 1;
        }
    }
    if (overflow || v == 0) {
        *rc = WA_VERSION_ERANGE;
        return 1;
    }
    *rev = (uint32_t)v;
    *rc = 0;
    return 1;
}

int wa_version_parse_sw(const uint8_t *buf, size_t len, uint32_t *revision)
{
    if (!buf || !revision)
        return WA_VERSION_EINVAL;
    const uint8_t *end = buf + len;
    const uint8_t *p = buf;
    while ((size_t)(end - p) >= KEY_LEN) {
        const uint8_t *k = memmem(p, (size_t)(end - p), KEY, KEY_LEN);
        if (!k)
            break;
        p = k + 1; /* the next search starts after this occurrence */
        const uint8_t *after = k + KEY_LEN;
        if (after < end && is_ident(*after))
            continue; /* client_revision_x: another key */
        /* opened by a quote ("key" or \"key\"), or a bare identifier */
        int quoted = k > buf && k[-1] == '"';
        if (!quoted && k > buf && is_ident(k[-1]))
            continue; /* xclient_revision */
        int rc;
        uint32_t v;
        if (match_value(after, end, quoted, &v, &rc)) {
            if (rc == 0)
                *revision = v;
            return rc;
        }
    }
    return WA_VERSION_ENOTFOUND;
}

wa_version_t wa_version_from_revision(uint32_t revision)
{
    wa_version_t v = {WA_VERSION_PRIMARY, WA_VERSION_SECONDARY, revision};
    return v;
}

int wa_version_cmp(const wa_version_t *a, const wa_version_t *b)
{
    if (a->primary != b->primary)
        return a->primary < b->primary ? -1 : 1;
    if (a->secondary != b->secondary)
        return a->secondary < b->secondary ? -1 : 1;
    if (a->tertiary != b->tertiary)
        return a->tertiary < b->tertiary ? -1 : 1;
    return 0;
}

/* One decimal field of at most 10 digits that fits in 32 bits; advances *s. */
static int parse_field(const char **s, uint32_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    size_t n = 0;
    while (is_digit((uint8_t)*p) && n < 11) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        n++;
    }
    if (n == 0 || n > 10 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    *s = p;
    return 0;
}

int wa_version_parse(const char *s, wa_version_t *out)
{
    wa_version_t v;
    if (!s || !out || parse_field(&s, &v.primary) || *s++ != '.' || parse_field(&s, &v.secondary) ||
        *s++ != '.' || parse_field(&s, &v.tertiary) || *s)
        return WA_VERSION_EINVAL;
    *out = v;
    return 0;
}

void wa_version_format(const wa_version_t *v, char *out, size_t outlen)
{
    snprintf(out, outlen, "%u.%u.%u", v->primary, v->secondary, v->tertiary);
}

int wa_version_sw_url(const char *wa_url, char *out, size_t outlen)
{
    if (!wa_url || !out)
        return WA_VERSION_EINVAL;
    const char *scheme;
    const char *a;
    if (!strncasecmp(wa_url, "wss://", 6)) {
        scheme = "https";
        a = wa_url + 6;
    } else if (!strncasecmp(wa_url, "ws://", 5)) {
        scheme = "http";
        a = wa_url + 5;
    } else {
        return WA_VERSION_EINVAL;
    }
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || memchr(a, '@', alen))
        return WA_VERSION_EINVAL;
    const char *host_end; /* where ":port" may start */
    if (a[0] == '[') {    /* IPv6 literal */
        const char *rb = memchr(a, ']', alen);
        if (!rb || rb == a + 1)
            return WA_VERSION_EINVAL;
        for (const char *p = a + 1; p < rb; p++)
            if (!is_host_char((uint8_t)*p) && *p != ':' && *p != '%')
                return WA_VERSION_EINVAL;
        host_end = rb + 1;
    } else {
        host_end = memchr(a, ':', alen);
        if (!host_end)
            host_end = a + alen;
        if (host_end == a)
            return WA_VERSION_EINVAL;
        for (const char *p = a; p < host_end; p++)
            if (!is_host_char((uint8_t)*p))
                return WA_VERSION_EINVAL;
    }
    if (host_end < a + alen) { /* ":port" */
        if (*host_end != ':' || host_end + 1 == a + alen)
            return WA_VERSION_EINVAL;
        unsigned long port = 0;
        for (const char *p = host_end + 1; p < a + alen; p++) {
            if (!is_digit((uint8_t)*p))
                return WA_VERSION_EINVAL;
            port = port * 10 + (unsigned long)(*p - '0');
            if (port > 65535)
                return WA_VERSION_EINVAL;
        }
        if (port == 0)
            return WA_VERSION_EINVAL;
    }
    int n = snprintf(out, outlen, "%s://%.*s/sw.js", scheme, (int)alen, a);
    if (n < 0 || (size_t)n >= outlen)
        return WA_VERSION_EINVAL;
    return 0;
}
