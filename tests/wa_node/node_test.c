/* Tests of the binary node codec (session/wa/node.c): the reference
 * client's own encodings (tests/wa_node/testdata/baileys_vectors.txt, made by
 * tools/baileys/gen-vectors.mjs) decode to the same nodes and our encoder
 * reproduces them byte for byte; round trips of every tag and JID form; the
 * protocol doc's worked examples; and malformed input of every kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "session/wa/jid.h"
#include "session/wa/node.h"
#include "session/wa/tokens.h"

static size_t unhex(const char *h, size_t hl, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < hl; i += 2) {
        unsigned v;
        sscanf(h + i, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* Parses one token "x<hex>" into a heap buffer (NUL-terminated). */
static char *tok_bytes(char **p, size_t *len)
{
    while (**p == ' ')
        (*p)++;
    assert_int_equal(**p, 'x');
    (*p)++;
    char *e = *p;
    while (*e && *e != ' ' && *e != '\n')
        e++;
    char *out = malloc((size_t)(e - *p) / 2 + 1);
    *len = unhex(*p, (size_t)(e - *p), (uint8_t *)out);
    out[*len] = 0;
    *p = e;
    return out;
}

static long tok_num(char **p)
{
    while (**p == ' ')
        (*p)++;
    return strtol(*p, p, 10);
}

static char tok_char(char **p)
{
    while (**p == ' ')
        (*p)++;
    return *(*p)++;
}

/* Parses the vector file's node notation (see gen-vectors.mjs). */
static wa_node_t *parse_node(char **p)
{
    assert_int_equal(tok_char(p), 'N');
    size_t len;
    char *tag = tok_bytes(p, &len);
    wa_node_t *n = wa_node_new(tag);
    free(tag);
    long na = tok_num(p);
    for (long i = 0; i < na; i++) {
        size_t kl, vl;
        char *k = tok_bytes(p, &kl), *v = tok_bytes(p, &vl);
        assert_int_equal(wa_node_set_attr(n, k, v), 0);
        free(k);
        free(v);
    }
    char kind = tok_char(p);
    if (kind == 'b' || kind == 's') {
        size_t bl;
        char *b = tok_bytes(p, &bl);
        if (kind == 'b')
            wa_node_set_bytes(n, b, bl);
        else
            wa_node_set_string(n, b);
        free(b);
    } else if (kind == 'l') {
        long c = tok_num(p);
        wa_node_set_empty_list(n);
        for (long i = 0; i < c; i++)
            wa_node_add_child(n, parse_node(p));
    } else {
        assert_int_equal(kind, 'n');
    }
    return n;
}

static char *read_file(const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/wa_gateway/%s", getenv("TEST_SRCDIR"), rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_baileys_vectors(void **state)
{
    (void)state;
    size_t flen;
    char *file = read_file("tests/wa_node/testdata/baileys_vectors.txt", &flen);
    int rt = 0, dec = 0;
    char *save = NULL;
    for (char *line = strtok_r(file, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int roundtrip = !strncmp(line, "rt ", 3);
        char *p = line + (roundtrip ? 3 : 4);
        char *sp = strchr(p, ' ');
        size_t hl = (size_t)(sp - p);
        uint8_t *bytes = malloc(hl / 2 + 1);
        size_t blen = unhex(p, hl, bytes);
        p = sp + 1;
        wa_node_t *want = parse_node(&p);
        wa_node_t *got = NULL;
        int rc = wa_node_decode(bytes, blen, &got);
        if (rc != 0)
            fail_msg("vector decode failed (%s): %.80s", wa_node_strerror(rc), line);
        if (!wa_node_equal(got, want)) {
            char *a = wa_node_to_text(got, 1), *b = wa_node_to_text(want, 1);
            fail_msg("decoded node differs:\n got  %.300s\n want %.300s", a, b);
        }
        if (roundtrip) {
            uint8_t *enc;
            size_t elen;
            assert_int_equal(wa_node_encode(want, &enc, &elen), 0);
            if (elen != blen || memcmp(enc, bytes, blen) != 0) {
                char *t = wa_node_to_text(want, 1);
                fail_msg("encoding differs from the reference for %.300s", t);
            }
            free(enc);
            rt++;
        } else {
            dec++;
        }
        wa_node_free(got);
        wa_node_free(want);
        free(bytes);
    }
    free(file);
    assert_true(rt > 600);
    assert_true(dec >= 4);
}

static void test_doc_examples(void **state)
{
    (void)state;
    wa_node_t *iq = wa_node_new("iq");
    wa_node_set_attr(iq, "id", "1a2b");
    wa_node_set_attr(iq, "to", "@s.whatsapp.net");
    wa_node_set_attr(iq, "type", "get");
    wa_node_set_attr(iq, "xmlns", "w:p");
    wa_node_add(iq, "ping");
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_node_encode(iq, &out, &len), 0);
    static const uint8_t want[] = {0x00, 0xF8, 0x0A, 0x19, 0x08, 0xFC, 0x04, 0x31,
                                   0x61, 0x32, 0x62, 0x11, 0xFA, 0x00, 0x03, 0x04,
                                   0x29, 0x16, 0x57, 0xF8, 0x01, 0xF8, 0x01, 0x56};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, len);
    free(out);
    wa_node_free(iq);
    static const uint8_t ack[] = {0x00, 0xF8, 0x05, 0x1B, 0x11, 0xF7, 0x00, 0x0C, 0xFF,
                                  0x86, 0x15, 0x55, 0x12, 0x34, 0x56, 0x7F, 0x15, 0x07};
    wa_node_t *n;
    assert_int_equal(wa_node_decode(ack, sizeof(ack), &n), 0);
    assert_string_equal(n->tag, "ack");
    assert_string_equal(wa_node_attr(n, "to"), "15551234567:12@s.whatsapp.net");
    assert_string_equal(wa_node_attr(n, "class"), "receipt");
    char *text = wa_node_to_text(n, 0);
    assert_string_equal(text, "<ack to=\"15551234567:12@s.whatsapp.net\" class=\"receipt\"/>");
    free(text);
    wa_node_free(n);
}

static void roundtrip(wa_node_t *n)
{
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    wa_node_t *back;
    int rc = wa_node_decode(out, len, &back);
    assert_int_equal(rc, 0);
    if (!wa_node_equal(n, back)) {
        char *a = wa_node_to_text(n, 1), *b = wa_node_to_text(back, 1);
        fail_msg("round trip differs:\n %s\n %s", a, b);
    }
    wa_node_free(back);
    free(out);
}

static void test_roundtrips(void **state)
{
    (void)state;
    /* every token of every table as an attribute value */
    wa_node_t *n = wa_node_new("tokens");
    char key[16];
    for (int i = 1; i < WA_TOKENS_SINGLE_COUNT; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        wa_node_set_attr(n, key, wa_tokens_single[i]);
    }
    roundtrip(n);
    wa_node_free(n);
    for (int d = 0; d < WA_TOKENS_DICT_COUNT; d++) {
        n = wa_node_new("dict");
        for (int i = 0; i < WA_TOKENS_DICT_SIZE; i++) {
            snprintf(key, sizeof(key), "d%d", i);
            wa_node_set_attr(n, key, wa_tokens_double[d][i]);
        }
        roundtrip(n);
        wa_node_free(n);
    }
    /* JIDs of every form */
    const char *jids[] = {"@s.whatsapp.net",
                          "1555@s.whatsapp.net",
                          "1555:3@s.whatsapp.net",
                          "99:1@lid",
                          "123@lid",
                          "7:2@hosted",
                          "8:4@hosted.lid",
                          "x@g.us",
                          "status@broadcast",
                          "abc.def@newsletter",
                          "0@c.us"};
    for (size_t i = 0; i < sizeof(jids) / sizeof(jids[0]); i++) {
        n = wa_node_new("j");
        wa_node_set_attr(n, "jid", jids[i]);
        wa_node_set_string(n, jids[i]);
        roundtrip(n);
        wa_node_free(n);
    }
    /* byte contents at every length class, including BINARY_32 */
    size_t sizes[] = {0, 1, 255, 256, (1u << 20) - 1, 1u << 20, (1u << 20) + 3};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *b = malloc(sizes[i] + 1);
        memset(b, (int)i, sizes[i]);
        n = wa_node_new("iq"); /* a token: the content tag is byte 4 */
        wa_node_set_bytes(n, b, sizes[i]);
        uint8_t *out;
        size_t len;
        assert_int_equal(wa_node_encode(n, &out, &len), 0);
        assert_int_equal(out[4], sizes[i] < 256 ? 252 : sizes[i] < (1u << 20) ? 253 : 254);
        free(out);
        roundtrip(n);
        wa_node_free(n);
        free(b);
    }
    /* LIST_16: more than 255 children; packed strings of odd and even length */
    n = wa_node_new("many");
    for (int i = 0; i < 300; i++) {
        wa_node_t *c = wa_node_add(n, "item");
        snprintf(key, sizeof(key), "%d", i);
        wa_node_set_attr(c, "id", key);
        wa_node_set_attr(c, "hex", i % 2 ? "ABCDEF0" : "0F");
    }
    roundtrip(n);
    wa_node_free(n);
    n = wa_node_new("empty");
    wa_node_set_empty_list(n);
    wa_node_set_attr(n, "e", "");
    roundtrip(n);
    wa_node_free(n);
}

static void test_helpers(void **state)
{
    (void)state;
    wa_node_t *iq = wa_node_new("iq");
    wa_node_t *pd = wa_node_add(iq, "pair-device");
    wa_node_t *ref = wa_node_add(pd, "ref");
    wa_node_set_bytes(ref, "R1", 2);
    wa_node_set_attr(iq, "type", "set");
    wa_node_set_attr(iq, "type", "get");
    assert_string_equal(wa_node_attr(iq, "type"), "get");
    wa_node_set_attr(iq, "type", NULL);
    assert_null(wa_node_attr(iq, "type"));
    assert_ptr_equal(wa_node_path(iq, "pair-device", "ref", NULL), ref);
    assert_null(wa_node_path(iq, "pair-device", "nope", NULL));
    size_t len;
    const uint8_t *c = wa_node_content(ref, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(c, "R1", 2);
    char *t = wa_node_to_text(iq, 1);
    assert_string_equal(t, "<iq><pair-device><ref>[2 bytes]</ref></pair-device></iq>");
    free(t);
    wa_node_free(iq);
    uint64_t user;
    unsigned dev;
    assert_int_equal(wa_jid_user_device("15551234567:12@s.whatsapp.net", &user, &dev), 0);
    assert_true(user == 15551234567ULL && dev == 12);
    assert_int_equal(wa_jid_user_device("nope@x", &user, &dev), -1);
}

static void test_malformed(void **state)
{
    (void)state;
    wa_node_t *n = wa_node_new("iq");
    wa_node_set_attr(n, "id", "abc-not-packed");
    wa_node_set_attr(n, "to", "15551234567:12@s.whatsapp.net");
    wa_node_set_bytes(wa_node_add(n, "x"), "0123456789", 10);
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    wa_node_free(n);
    /* every truncation fails cleanly */
    for (size_t i = 0; i < len; i++) {
        wa_node_t *m;
        int rc = wa_node_decode(out, i, &m);
        assert_true(rc < 0);
        assert_null(m);
    }
    /* trailing byte */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, out, len);
    longer[len] = 0;
    wa_node_t *m;
    assert_int_equal(wa_node_decode(longer, len + 1, &m), WA_NODE_ETRAILING);
    free(longer);
    free(out);
    /* unused tags 240..244 as strings; a node without a list header */
    for (unsigned t = 240; t <= 244; t++) {
        uint8_t b[] = {0, 0xF8, 0x01, (uint8_t)t};
        assert_int_equal(wa_node_decode(b, sizeof(b), &m), WA_NODE_EBADTAG);
    }
    static const uint8_t nolist[] = {0, 0x19};
    assert_int_equal(wa_node_decode(nolist, sizeof(nolist), &m), WA_NODE_EBADLIST);
    static const uint8_t emptylist[] = {0, 0x00};
    assert_int_equal(wa_node_decode(emptylist, sizeof(emptylist), &m), WA_NODE_EBADLIST);
    /* lengths past the end: BINARY_32 claims 4 GiB, LIST_16 claims 65535 children */
    static const uint8_t bin32[] = {0, 0xF8, 0x02, 0x19, 0xFE, 0xFF, 0xFF, 0xFF, 0xF0, 1};
    assert_int_equal(wa_node_decode(bin32, sizeof(bin32), &m), WA_NODE_ETRUNCATED);
    static const uint8_t list16[] = {0, 0xF8, 0x02, 0x19, 0xF9, 0xFF, 0xFF, 0xF8, 0x01, 0x19};
    assert_int_equal(wa_node_decode(list16, sizeof(list16), &m), WA_NODE_ETRUNCATED);
    /* a bad nibble, a JID pair without server, NUL inside a string */
    static const uint8_t nib[] = {0, 0xF8, 0x02, 0x19, 0xFF, 0x01, 0xC1};
    assert_int_equal(wa_node_decode(nib, sizeof(nib), &m), WA_NODE_EBADPACKED);
    static const uint8_t jp[] = {0, 0xF8, 0x03, 0x19, 0x11, 0xFA, 0x00, 0x00};
    assert_int_equal(wa_node_decode(jp, sizeof(jp), &m), WA_NODE_EBADJID);
    static const uint8_t nul[] = {0, 0xF8, 0x01, 0xFC, 0x02, 'a', 0};
    assert_int_equal(wa_node_decode(nul, sizeof(nul), &m), WA_NODE_EBADSTR);
    /* bad zlib */
    static const uint8_t badz[] = {2, 0x78, 0x9c, 0xde, 0xad, 0xbe, 0xef};
    assert_int_equal(wa_node_decode(badz, sizeof(badz), &m), WA_NODE_EZLIB);
    static const uint8_t truncz[] = {2, 0x78};
    assert_int_equal(wa_node_decode(truncz, sizeof(truncz), &m), WA_NODE_EZLIB);
    /* a zlib bomb beyond the inflate limit */
    size_t big = WA_NODE_MAX_INFLATED + 1024;
    uint8_t *zeros = calloc(1, big);
    uLongf zl = compressBound(big);
    uint8_t *z = malloc(zl + 1);
    z[0] = 2;
    assert_int_equal(compress(z + 1, &zl, zeros, big), Z_OK);
    assert_int_equal(wa_node_decode(z, zl + 1, &m), WA_NODE_ETOOBIG);
    free(z);
    free(zeros);
    /* nesting deeper than the limit */
    size_t depth = WA_NODE_MAX_DEPTH + 10;
    uint8_t *deep = malloc(1 + depth * 5 + 3);
    size_t o = 0;
    deep[o++] = 0;
    for (size_t i = 0; i < depth; i++) {
        deep[o++] = 0xF8;
        deep[o++] = 0x02;
        deep[o++] = 0x19;
        deep[o++] = 0xF8;
        deep[o++] = 0x01;
    }
    deep[o++] = 0xF8;
    deep[o++] = 0x01;
    deep[o++] = 0x19;
    assert_int_equal(wa_node_decode(deep, o, &m), WA_NODE_ETOODEEP);
    free(deep);
    /* the encoder refuses a node without a tag */
    n = wa_node_new("");
    assert_int_equal(wa_node_encode(n, &out, &len), WA_NODE_EINVAL);
    wa_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baileys_vectors), cmocka_unit_test(test_doc_examples),
        cmocka_unit_test(test_roundtrips),      cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
