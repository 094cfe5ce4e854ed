/* libFuzzer target for the frame reader: the first input byte picks a chunk
 * size and a frame limit, the rest is fed in chunks of that size; every frame
 * handed out must lie inside what was fed. */
#include <stdint.h>
#include <stdlib.h>

#include "session/wa/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (data[0] & 0x0f) + 1;
    size_t max = (data[0] & 0x80) ? 64 : 0;
    data++;
    size--;
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, max);
    size_t seen = 0;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (wa_frame_reader_feed(&r, data + off, n) != 0)
            break;
        const uint8_t *p;
        size_t len;
        while (wa_frame_reader_next(&r, &p, &len) == 1) {
            seen += 3 + len;
            if (seen > off + n)
                __builtin_trap(); /* a frame beyond the input */
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < len; i++)
                sink ^= p[i];
            (void)sink;
        }
    }
    wa_frame_reader_free(&r);
    return 0;
}
