/* RFC 4648 base64 encoding and strict decoding: the standard alphabet with
 * padding (section 4) and the URL-safe alphabet without padding (section 5,
 * as WebAuthn's JSON uses it). */
#include "common/base64.h"

#include <stdlib.h>
#include <string.h>

static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char urltab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const char *t, int pad, const uint8_t *d, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
        out[o++] = t[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = t[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

char *b64_encode(const uint8_t *d, size_t len)
{
    return encode(tab, 1, d, len);
}

char *b64url_encode(const uint8_t *d, size_t len)
{
    return encode(urltab, 0, d, len);
}

long b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            const char *p = c ? strchr(tab, c) : NULL;
            if (c == '=' && i + 4 == len && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!p || pad)
                return -1;
            v = v << 6 | (uint32_t)(p - tab);
        }
        /* canonical only: the bits the padding drops must be zero, so that
         * one byte string has exactly one encoding */
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
            return -1;
        for (int k = 0; k < 3 - pad; k++) {
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(v >> (16 - 8 * k));
        }
    }
    return (long)o;
}

long b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    /* padding is not part of the URL-safe form, but tolerated when complete */
    if (len % 4 == 0 && len >= 4 && s[len - 1] == '=')
        len -= s[len - 2] == '=' ? 2 : 1;
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        size_t n = len - i < 4 ? len - i : 4; /* 2, 3 or 4 characters */
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            v <<= 6;
            if (k >= n)
                continue;
            char c = s[i + k];
            const char *p = c ? strchr(urltab, c) : NULL;
            if (!p)
                return -1;
            v |= (uint32_t)(p - urltab);
        }
        size_t bytes = n - 1;
        /* canonical only, as b64_decode */
        if ((bytes == 1 && (v & 0xffff)) || (bytes == 2 && (v & 0xff)))
            return -1;
        for (size_t k = 0; k < bytes; k++) {
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(v >> (16 - 8 * k));
        }
    }
    return (long)o;
}
