/* Unit tests of the frame reader and writer (session/wa/frame.c): streams fed
 * one byte at a time and in every chunk size up to 16, several frames merged
 * in one chunk, length prefixes split across chunks, zero-length frames,
 * oversize rejection (at the limit, over it, sticky failure), payload
 * lifetime, and the writer's intro header sent once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/wa/frame.h"

/* Builds a stream of n frames; frame i has lens[i] bytes of value (i + 1). */
static uint8_t *stream(const size_t *lens, size_t n, size_t *total)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += 3 + lens[i];
    uint8_t *b = malloc(t ? t : 1), *p = b;
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        *p++ = (uint8_t)(lens[i] >> 16);
        *p++ = (uint8_t)(lens[i] >> 8);
        *p++ = (uint8_t)lens[i];
        memset(p, (int)(i + 1), lens[i]);
        p += lens[i];
    }
    *total = t;
    return b;
}

/* Feeds the stream in chunks of `chunk` bytes, checking every frame. */
static void feed_in_chunks(const size_t *lens, size_t nframes, size_t chunk)
{
    size_t total;
    uint8_t *s = stream(lens, nframes, &total);
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    size_t got = 0;
    for (size_t off = 0; off < total; off += chunk) {
        size_t n = total - off < chunk ? total - off : chunk;
        assert_int_equal(wa_frame_reader_feed(&r, s + off, n), 0);
        const uint8_t *p;
        size_t len;
        int rc;
        while ((rc = wa_frame_reader_next(&r, &p, &len)) == 1) {
            assert_true(got < nframes);
            assert_int_equal(len, lens[got]);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(p[i], (uint8_t)(got + 1));
            got++;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(got, nframes);
    assert_int_equal(wa_frame_reader_pending(&r), 0);
    wa_frame_reader_free(&r);
    free(s);
}

static const size_t mixed[] = {5, 0, 300, 1, 70000, 2, 0, 0, 255, 256, 65536};
#define N_MIXED (sizeof(mixed) / sizeof(mixed[0]))

static void test_byte_at_a_time(void **state)
{
    (void)state;
    feed_in_chunks(mixed, N_MIXED, 1); /* every length prefix split too */
}

static void test_all_small_chunk_sizes(void **state)
{
    (void)state;
    for (size_t chunk = 2; chunk <= 16; chunk++)
        feed_in_chunks(mixed, N_MIXED, chunk);
    feed_in_chunks(mixed, N_MIXED, 4096);
}

static void test_merged_frames(void **state)
{
    (void)state;
    /* everything in one chunk: several frames come out of one feed */
    feed_in_chunks(mixed, N_MIXED, 1 << 20);
    static const size_t tiny[] = {1, 2, 3, 0, 4};
    feed_in_chunks(tiny, 5, 100);
}

static void test_split_length_prefix(void **state)
{
    (void)state;
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    /* a 0x010203-byte frame would be big: use 0x000102 = 258 bytes */
    uint8_t frame[3 + 258];
    frame[0] = 0x00;
    frame[1] = 0x01;
    frame[2] = 0x02;
    for (size_t i = 0; i < 258; i++)
        frame[3 + i] = (uint8_t)i;
    const uint8_t *p;
    size_t len;
    /* prefix split 1 + 2, then payload split in two */
    assert_int_equal(wa_frame_reader_feed(&r, frame, 1), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(wa_frame_reader_feed(&r, frame + 1, 2), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(wa_frame_reader_pending(&r), 3);
    assert_int_equal(wa_frame_reader_feed(&r, frame + 3, 100), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    /* the rest, plus the first 2 bytes of the next frame's prefix */
    uint8_t tail[158 + 2];
    memcpy(tail, frame + 103, 158);
    tail[158] = 0x00;
    tail[159] = 0x00;
    assert_int_equal(wa_frame_reader_feed(&r, tail, sizeof(tail)), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, 258);
    assert_memory_equal(p, frame + 3, 258);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(wa_frame_reader_pending(&r), 2);
    /* complete the second prefix: a zero-length frame */
    static const uint8_t zero = 0x00;
    assert_int_equal(wa_frame_reader_feed(&r, &zero, 1), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    wa_frame_reader_free(&r);
}

static void test_zero_length_frames(void **state)
{
    (void)state;
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    static const uint8_t zeros[9] = {0};
    assert_int_equal(wa_frame_reader_feed(&r, zeros, sizeof(zeros)), 0);
    const uint8_t *p;
    size_t len;
    for (int i = 0; i < 3; i++) {
        len = 99;
        assert_int_equal(wa_frame_reader_next(&r, &p, &len), 1);
        assert_int_equal(len, 0);
    }
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    /* feeding nothing is fine */
    assert_int_equal(wa_frame_reader_feed(&r, NULL, 0), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0);
    wa_frame_reader_free(&r);
}

static void test_payloads_stay_valid_until_feed(void **state)
{
    (void)state;
    static const size_t lens[] = {10, 20, 30};
    size_t total;
    uint8_t *s = stream(lens, 3, &total);
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    assert_int_equal(wa_frame_reader_feed(&r, s, total), 0);
    const uint8_t *p[3];
    size_t len[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(wa_frame_reader_next(&r, &p[i], &len[i]), 1);
    for (int i = 0; i < 3; i++) { /* all three still readable */
        assert_int_equal(len[i], lens[i]);
        for (size_t j = 0; j < len[i]; j++)
            assert_int_equal(p[i][j], i + 1);
    }
    wa_frame_reader_free(&r);
    free(s);
}

static void test_oversize(void **state)
{
    (void)state;
    wa_frame_reader_t r;
    const uint8_t *p;
    size_t len;
    /* exactly the maximum is fine */
    wa_frame_reader_init(&r, 100);
    uint8_t ok[3 + 100] = {0, 0, 100};
    assert_int_equal(wa_frame_reader_feed(&r, ok, sizeof(ok)), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, 100);
    wa_frame_reader_free(&r);

    /* one over: rejected as soon as the prefix is complete */
    wa_frame_reader_init(&r, 100);
    static const uint8_t big[] = {0, 0, 101};
    assert_int_equal(wa_frame_reader_feed(&r, big, 2), 0);
    assert_int_equal(wa_frame_reader_feed(&r, big + 2, 1), WA_FRAME_ETOOBIG);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), WA_FRAME_ETOOBIG);
    assert_int_equal(wa_frame_reader_feed(&r, ok, 3), WA_FRAME_ETOOBIG); /* stays failed */
    wa_frame_reader_free(&r);

    /* an oversize prefix after a good frame in the same chunk */
    wa_frame_reader_init(&r, 100);
    uint8_t two[3 + 4 + 3] = {0, 0, 4, 1, 2, 3, 4, 0xff, 0xff, 0xff};
    assert_int_equal(wa_frame_reader_feed(&r, two, sizeof(two)), WA_FRAME_ETOOBIG);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), WA_FRAME_ETOOBIG);
    wa_frame_reader_free(&r);

    /* the default limit is the protocol's: 2^24 - 1, the largest 3-byte length */
    wa_frame_reader_init(&r, 0);
    assert_int_equal(r.max_frame, WA_FRAME_HARD_MAX);
    assert_true(WA_FRAME_HARD_MAX < (1u << 24));
    static const uint8_t maxlen[] = {0xff, 0xff, 0xff, 7};
    assert_int_equal(wa_frame_reader_feed(&r, maxlen, sizeof(maxlen)), 0);
    assert_int_equal(wa_frame_reader_next(&r, &p, &len), 0); /* just incomplete */
    wa_frame_reader_free(&r);
    /* a limit over the hard one is clamped */
    wa_frame_reader_init(&r, (size_t)1 << 30);
    assert_int_equal(r.max_frame, WA_FRAME_HARD_MAX);
    wa_frame_reader_free(&r);
}

static void test_big_frame_then_small(void **state)
{
    (void)state;
    /* a 1 MiB frame, then small ones: the buffer is released and reused */
    static const size_t lens[] = {1 << 20, 3, 4};
    feed_in_chunks(lens, 3, 65536);
    feed_in_chunks(lens, 3, 1000);
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
    assert_int_equal(out[0] | out[1] | out[2], 0);
    free(out);
    out = NULL;
    assert_int_equal(wa_frame_write(0, NULL, WA_FRAME_HARD_MAX + 1, &out, &len), WA_FRAME_ETOOBIG);
    assert_null(out);
    static const uint8_t intro[] = {0x57, 0x41, 0x06, 0x03};
    assert_memory_equal(wa_frame_intro, intro, 4);
}

static void test_writer_intro_once(void **state)
{
    (void)state;
    wa_frame_writer_t w;
    wa_frame_writer_init(&w);
    uint8_t buf[64];
    /* too small a buffer fails and does not use up the intro */
    assert_int_equal(wa_frame_writer_size(&w, 2), 4 + 3 + 2);
    assert_int_equal(wa_frame_writer_put(&w, (const uint8_t *)"hi", 2, buf, 8), WA_FRAME_ESPACE);
    assert_int_equal(wa_frame_writer_put(&w, (const uint8_t *)"hi", 2, buf, sizeof(buf)), 9);
    static const uint8_t first[] = {'W', 'A', 6, 3, 0, 0, 2, 'h', 'i'};
    assert_memory_equal(buf, first, sizeof(first));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wa_frame_writer_size(&w, 2), 3 + 2);
        assert_int_equal(wa_frame_writer_put(&w, (const uint8_t *)"yo", 2, buf, sizeof(buf)), 5);
        static const uint8_t later[] = {0, 0, 2, 'y', 'o'};
        assert_memory_equal(buf, later, sizeof(later));
    }
    assert_int_equal(wa_frame_writer_put(&w, NULL, WA_FRAME_HARD_MAX + 1, buf, sizeof(buf)),
                     WA_FRAME_ETOOBIG);
    /* a new connection sends the intro again */
    wa_frame_writer_init(&w);
    assert_int_equal(wa_frame_writer_put(&w, NULL, 0, buf, sizeof(buf)), 7);
    static const uint8_t empty_first[] = {'W', 'A', 6, 3, 0, 0, 0};
    assert_memory_equal(buf, empty_first, sizeof(empty_first));
}

static void test_writer_reader_roundtrip(void **state)
{
    (void)state;
    /* what the writer produces (minus the intro) is what the reader takes */
    wa_frame_writer_t w;
    wa_frame_writer_init(&w);
    wa_frame_reader_t r;
    wa_frame_reader_init(&r, 0);
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t n = 0; n < 1000; n += 97) {
        uint8_t buf[1100];
        long len = wa_frame_writer_put(&w, payload, n, buf, sizeof(buf));
        assert_true(len > 0);
        size_t skip = n == 0 ? 4 : 0;
        assert_int_equal(wa_frame_reader_feed(&r, buf + skip, (size_t)len - skip), 0);
        const uint8_t *p;
        size_t plen;
        assert_int_equal(wa_frame_reader_next(&r, &p, &plen), 1);
        assert_int_equal(plen, n);
        if (n)
            assert_memory_equal(p, payload, n);
    }
    wa_frame_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_all_small_chunk_sizes),
        cmocka_unit_test(test_merged_frames),
        cmocka_unit_test(test_split_length_prefix),
        cmocka_unit_test(test_zero_length_frames),
        cmocka_unit_test(test_payloads_stay_valid_until_feed),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_big_frame_then_small),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_writer_intro_once),
        cmocka_unit_test(test_writer_reader_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
