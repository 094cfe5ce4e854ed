/* libFuzzer target for the frame reader (session/wa/frame.c). Input layout:
 * byte 0 picks the frame limit, byte 1 seeds the sequence of chunk sizes
 * (1..64, varying from chunk to chunk), the rest is the byte stream. Oracle:
 * the frames handed out, re-prefixed with their length, must be exactly the
 * start of the stream, in order; after an error nothing more comes out; at
 * the end the unconsumed bytes are what is left of the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/frame.h"

static const size_t limits[4] = {0, 1, 64, 4096};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = limits[data[0] & 3];
    uint32_t rnd = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, max);
    size_t seen = 0; /* bytes of the stream accounted for by frames */
    size_t off = 0;
    int failed = 0;
    while (off < size) {
        rnd = rnd * 1103515245u + 12345u;
        size_t chunk = ((rnd >> 16) & 63) + 1;
        size_t n = size - off < chunk ? size - off : chunk;
        int rc = wa_frame_reader_feed(&r, data + off, n);
        off += n;
        if (rc != 0) {
            if (rc != WA_FRAME_ETOOBIG)
                __builtin_trap();
            failed = 1;
            break;
        }
        const uint8_t *p;
        size_t len;
        while ((rc = wa_frame_reader_next(&r, &p, &len)) == 1) {
            if (seen + 3 + len > off)
                __builtin_trap(); /* a frame beyond the input */
            size_t want = (size_t)data[seen] << 16 | (size_t)data[seen + 1] << 8 | data[seen + 2];
            if (want != len || (len && memcmp(p, data + seen + 3, len) != 0))
                __builtin_trap(); /* not the stream's next frame */
            if (len > (max ? max : WA_FRAME_HARD_MAX))
                __builtin_trap();
            seen += 3 + len;
        }
        if (rc != 0)
            __builtin_trap();
    }
    if (failed) {
        const uint8_t *p;
        size_t len;
        if (wa_frame_reader_next(&r, &p, &len) != WA_FRAME_ETOOBIG)
            __builtin_trap();
        if (wa_frame_reader_feed(&r, data, size) != WA_FRAME_ETOOBIG)
            __builtin_trap();
    } else if (wa_frame_reader_pending(&r) != size - seen) {
        __builtin_trap();
    }
    wa_frame_reader_free(&r);
    return 0;
}
