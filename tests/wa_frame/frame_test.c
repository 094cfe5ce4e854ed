/* Unit tests of the frame reader and writer (session/wa/frame.c): frames fed
 * one byte at a time, several frames in one chunk, a length prefix split
 * across chunks, zero-length frames, oversize rejection, the intro header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/wa/frame.h"

/* Builds a stream of n frames with lengths lens[i] and byte value i. */
static uint8_t *stream(const size_t *lens, size_t n, size_t *total)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += 3 + lens[i];
    uint8_t *b = malloc(t), *p = b;
    for (size_t i = 0; i < n; i++) {
        *p++ = (uint8_t)(lens[i] >> 16);
        *p++ = (uint8_t)(lens[i] >> 8);
        *p++ = (uint8_t)lens[i];
        memset(p, (int)i + 1, lens[i]);
        p += lens[i];
    }
    *total = t;
    return b;
}

static void feed_in_chunks(size_t chunk)
{
    const size_t lens[] = {5, 0, 300, 1, 70000, 2};
    size_t total;
    uint8_t *s = stream(lens, 6, &total);
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    size_t got = 0;
    for (size_t off = 0; off < total; off += chunk) {
        size_t n = total - off < chunk ? total - off : chunk;
        assert_int_equal(wa_frame_reader_feed(&r, s + off, n), 0);
        const uint8_t *p;
        size_t len;
        while (wa_frame_reader_next(&r, &p, &len) == 1) {
            assert_true(got < 6);
            assert_int_equal(len, lens[got]);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(p[i], got + 1);
            got++;
        }
    }
    assert_int_equal(got, 6);
    wa_frame_reader_free(&r);
    free(s);
}

static void test_chunkings(void **state)
{
    (void)state;
    feed_in_chunks(1); /* one byte at a time: length prefixes split too */
    feed_in_chunks(2);
    feed_in_chunks(3);
    feed_in_chunks(7);
    feed_in_chunks(4096);
    feed_in_chunks(1 << 20); /* everything merged in one chunk */
}

static void test_oversize(void **state)
{
    (void)state;
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 100);
    static const uint8_t ok[] = {0, 0, 100};
    assert_int_equal(wa_frame_reader_feed(&r, ok, 3), 0);
    wa_frame_reader_free(&r);
    wa_frame_reader_init(&r, 100);
    static const uint8_t big[] = {0, 0, 101};
    /* rejected as soon as the prefix is complete, before any payload */
    assert_int_equal(wa_frame_reader_feed(&r, big, 2), 0);
    assert_int_equal(wa_frame_reader_feed(&r, big + 2, 1), WA_FRAME_ETOOBIG);
    const uint8_t *p;
    size_t len;
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), WA_FRAME_ETOOBIG);
    assert_int_equal(wa_frame_reader_feed(&r, ok, 3), WA_FRAME_ETOOBIG); /* stays failed */
    wa_frame_reader_free(&r);
    /* the protocol's own limit: 2^24 - 1 is the largest length */
    wa_frame_reader_init(&r, 0);
    assert_int_equal(r.max_frame, WA_FRAME_HARD_MAX);
    wa_frame_reader_free(&r);
}

static void test_writer(void **state)
{
    (void)state;
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_frame_write(1, (const uint8_t *)"abc", 3, &out, &len), 0);
    static const uint8_t first[] = {'W', 'A', 6, 3, 0, 0, 3, 'a', 'b', 'c'};
    assert_int_equal(len, sizeof(first));
    assert_memory_equal(out, first, len);
    free(out);
    assert_int_equal(wa_frame_write(0, (const uint8_t *)"abc", 3, &out, &len), 0);
    static const uint8_t later[] = {0, 0, 3, 'a', 'b', 'c'};
    assert_int_equal(len, sizeof(later));
    assert_memory_equal(out, later, len);
    free(out);
    assert_int_equal(wa_frame_write(0, NULL, 0, &out, &len), 0);
    assert_int_equal(len, 3);
    free(out);
    assert_int_equal(wa_frame_write(0, NULL, WA_FRAME_HARD_MAX + 1, &out, &len), WA_FRAME_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunkings),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
