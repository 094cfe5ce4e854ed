/* Frame reassembly and framing. The reader keeps unconsumed bytes at the
 * front of one buffer; consumed frames are dropped lazily on the next feed,
 * so returned payloads stay valid until then. Every length prefix is checked
 * against the maximum as soon as its 3 bytes are buffered, so an oversize
 * frame is refused before its payload is accepted. */
#include "session/wa/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const uint8_t wa_frame_intro[WA_FRAME_INTRO_LEN] = {'W', 'A', 6, 3};

/* An emptied buffer larger than this is released instead of kept. */
#define KEEP_CAP (64u * 1024)

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
    r->start = r->len = r->cap = r->checked = 0;
}

static size_t frame_len_at(const uint8_t *p)
{
    return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

/* Checks the length prefix of every buffered frame not yet checked. */
static int check_prefixes(wa_frame_reader_t *r)
{
    size_t off = r->checked < r->start ? r->start : r->checked;
    while (r->len - off >= WA_FRAME_PREFIX_LEN) {
        size_t fl = frame_len_at(r->buf + off);
        if (fl > r->max_frame) {
            r->failed = 1;
            return WA_FRAME_ETOOBIG;
        }
        if (r->len - off - WA_FRAME_PREFIX_LEN < fl)
            break;
        off += WA_FRAME_PREFIX_LEN + fl;
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
        size_t keep = r->len - r->start;
        if (keep == 0 && r->cap > KEEP_CAP) {
            free(r->buf); /* e.g. after one huge frame */
            r->buf = NULL;
            r->cap = 0;
        } else if (keep) {
            memmove(r->buf, r->buf + r->start, keep);
        }
        r->checked = r->checked > r->start ? r->checked - r->start : 0;
        r->len = keep;
        r->start = 0;
    }
    if (len > r->cap - r->len) {
        if (len > SIZE_MAX / 4 - r->len) /* keeps the doubling below from overflowing */
            return WA_FRAME_ENOMEM;
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
    size_t avail = r->len - r->start;
    if (avail < WA_FRAME_PREFIX_LEN)
        return 0;
    size_t fl = frame_len_at(r->buf + r->start);
    if (fl > r->max_frame) { /* cannot happen after feed's check; be safe */
        r->failed = 1;
        return WA_FRAME_ETOOBIG;
    }
    if (avail - WA_FRAME_PREFIX_LEN < fl)
        return 0;
    *payload = r->buf + r->start + WA_FRAME_PREFIX_LEN;
    *len = fl;
    r->start += WA_FRAME_PREFIX_LEN + fl;
    return 1;
}

size_t wa_frame_reader_pending(const wa_frame_reader_t *r)
{
    return r->len - r->start;
}

size_t wa_frame_encoded_len(int first, size_t len)
{
    return (first ? WA_FRAME_INTRO_LEN : 0) + WA_FRAME_PREFIX_LEN + len;
}

long wa_frame_encode(int first, const uint8_t *payload, size_t len, uint8_t *out, size_t cap)
{
    if (len > WA_FRAME_HARD_MAX)
        return WA_FRAME_ETOOBIG;
    size_t need = wa_frame_encoded_len(first, len);
    if (cap < need)
        return WA_FRAME_ESPACE;
    uint8_t *p = out;
    if (first) {
        memcpy(p, wa_frame_intro, WA_FRAME_INTRO_LEN);
        p += WA_FRAME_INTRO_LEN;
    }
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    if (len)
        memcpy(p + WA_FRAME_PREFIX_LEN, payload, len);
    return (long)need;
}

int wa_frame_write(int first, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len)
{
    if (len > WA_FRAME_HARD_MAX)
        return WA_FRAME_ETOOBIG;
    size_t need = wa_frame_encoded_len(first, len);
    uint8_t *b = malloc(need);
    if (!b)
        return WA_FRAME_ENOMEM;
    long n = wa_frame_encode(first, payload, len, b, need);
    if (n < 0) {
        free(b);
        return (int)n;
    }
    *out = b;
    *out_len = (size_t)n;
    return 0;
}

void wa_frame_writer_init(wa_frame_writer_t *w)
{
    w->intro_sent = 0;
    w->edge = NULL;
    w->edge_len = 0;
}

int wa_frame_writer_set_edge(wa_frame_writer_t *w, const uint8_t *info, size_t len)
{
    if (!info || len == 0 || len > WA_FRAME_ROUTING_MAX)
        return WA_FRAME_ETOOBIG;
    uint8_t *e = malloc(7 + len);
    if (!e)
        return WA_FRAME_ENOMEM;
    e[0] = 'E';
    e[1] = 'D';
    e[2] = 0;
    e[3] = 1;
    e[4] = (uint8_t)(len >> 16);
    e[5] = (uint8_t)(len >> 8);
    e[6] = (uint8_t)len;
    memcpy(e + 7, info, len);
    free(w->edge);
    w->edge = e;
    w->edge_len = 7 + len;
    return 0;
}

void wa_frame_writer_dispose(wa_frame_writer_t *w)
{
    free(w->edge);
    w->edge = NULL;
    w->edge_len = 0;
}

size_t wa_frame_writer_size(const wa_frame_writer_t *w, size_t len)
{
    return (w->intro_sent ? 0 : w->edge_len) + wa_frame_encoded_len(!w->intro_sent, len);
}

long wa_frame_writer_put(wa_frame_writer_t *w, const uint8_t *payload, size_t len, uint8_t *out,
                         size_t cap)
{
    size_t pre = w->intro_sent ? 0 : w->edge_len;
    if (cap < pre)
        return WA_FRAME_ESPACE;
    long n = wa_frame_encode(!w->intro_sent, payload, len, out + pre, cap - pre);
    if (n < 0)
        return n;
    if (pre)
        memcpy(out, w->edge, pre);
    w->intro_sent = 1;
    return n + (long)pre;
}
