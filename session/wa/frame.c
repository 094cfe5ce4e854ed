/* Frame reassembly and framing. The reader keeps unconsumed bytes at the
 * front of one buffer; consumed frames are dropped lazily on the next feed,
 * so a returned payload stays valid until then. */
#include "session/wa/frame.h"

#include <stdlib.h>
#include <string.h>

#include "session/wa/noise.h"

void wa_frame_reader_init(wa_frame_reader_t *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame =
        (max_frame == 0 || max_frame > WA_FRAME_HARD_MAX) ? WA_FRAME_HARD_MAX : max_frame;
}

void wa_frame_reader_free(wa_frame_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

static size_t frame_len_at(const uint8_t *p)
{
    return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

/* Checks the length prefix of every frame not yet checked. */
static int check_prefixes(wa_frame_reader_t *r)
{
    size_t off = r->checked < r->start ? r->start : r->checked;
    while (r->len - off >= 3) {
        size_t fl = frame_len_at(r->buf + off);
        if (fl > r->max_frame) {
            r->failed = 1;
            return WA_FRAME_ETOOBIG;
        }
        if (r->len - off - 3 < fl)
            break;
        off += 3 + fl;
    }
    r->checked = off;
    return 0;
}

int wa_frame_reader_feed(wa_frame_reader_t *r, const uint8_t *data, size_t len)
{
    if (r->failed)
        return WA_FRAME_ETOOBIG;
    if (len == 0)
        return 0;
    if (r->start > 0) { /* drop consumed frames */
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->checked -= r->checked >= r->start ? r->start : r->checked;
        r->start = 0;
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len)
            cap *= 2;
        uint8_t *b = realloc(r->buf, cap);
        if (!b)
            return WA_FRAME_ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    return check_prefixes(r);
}

int wa_frame_reader_next(wa_frame_reader_t *r, const uint8_t **payload, size_t *len)
{
    if (r->failed)
        return WA_FRAME_ETOOBIG;
    if (r->len - r->start < 3)
        return 0;
    size_t fl = frame_len_at(r->buf + r->start);
    if (r->len - r->start - 3 < fl)
        return 0;
    *payload = r->buf + r->start + 3;
    *len = fl;
    r->start += 3 + fl;
    return 1;
}

int wa_frame_write(int first, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len)
{
    if (len > WA_FRAME_HARD_MAX)
        return WA_FRAME_ETOOBIG;
    size_t hdr = first ? sizeof(wa_noise_prologue) : 0;
    uint8_t *b = malloc(hdr + 3 + len);
    if (!b)
        return WA_FRAME_ENOMEM;
    if (first)
        memcpy(b, wa_noise_prologue, hdr);
    b[hdr] = (uint8_t)(len >> 16);
    b[hdr + 1] = (uint8_t)(len >> 8);
    b[hdr + 2] = (uint8_t)len;
    if (len)
        memcpy(b + hdr + 3, payload, len);
    *out = b;
    *out_len = hdr + 3 + len;
    return 0;
}
