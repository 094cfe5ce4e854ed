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
#include <time.h>
#include <cmocka.h>
#include <zlib.h>

#include "session/wa/jid.h"
#include "session/wa/node.h"
#include "session/wa/tokens.h"

static unsigned hexval(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    fail_msg("bad hex digit %c", c);
    return 0;
}

static size_t unhex(const char *h, size_t hl, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < hl; i += 2)
        out[n++] = (uint8_t)(hexval(h[i]) << 4 | hexval(h[i + 1]));
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

typedef struct {
    int rt, dec, err, z, prefixes;
} counts_t;

/* Inflates a zlib stream of unknown output size; returns a NUL-terminated
 * heap buffer. */
static char *inflate_text(const uint8_t *z, size_t zlen)
{
    size_t cap = 1 << 16;
    for (;;) {
        char *out = malloc(cap + 1);
        uLongf olen = cap;
        int rc = uncompress((Bytef *)out, &olen, z, zlen);
        if (rc == Z_OK) {
            out[olen] = 0;
            return out;
        }
        free(out);
        assert_int_equal(rc, Z_BUF_ERROR);
        cap *= 2;
    }
}

/* Decodes `enc` (N2), encodes and decodes again (E2, N3): N3 must equal N2
 * and encode to E2 again. Returns 0 when so. */
static int stable_after_one_step(const uint8_t *enc, size_t elen)
{
    wa_node_t *n2 = NULL, *n3 = NULL;
    uint8_t *e2 = NULL, *e3 = NULL;
    size_t l2 = 0, l3 = 0;
    int bad = wa_node_decode(enc, elen, &n2) != 0 || wa_node_encode(n2, &e2, &l2) != 0 ||
              wa_node_decode(e2, l2, &n3) != 0 || !wa_node_equal(n2, n3) ||
              wa_node_encode(n3, &e3, &l3) != 0 || l3 != l2 || memcmp(e2, e3, l2) != 0;
    wa_node_free(n2);
    wa_node_free(n3);
    free(e2);
    free(e3);
    return bad;
}

/* Every proper prefix of a valid encoding is rejected. */
static void check_prefixes(const uint8_t *bytes, size_t blen, counts_t *c)
{
    for (size_t i = 0; i < blen; i++) {
        wa_node_t *m = (wa_node_t *)1;
        int rc = wa_node_decode(bytes, i, &m);
        if (rc >= 0)
            fail_msg("prefix of %zu/%zu bytes decoded", i, blen);
        assert_null(m);
        c->prefixes++;
    }
}

static void run_vector(char *line, counts_t *c)
{
    if (line[0] == '#' || line[0] == 0)
        return;
    if (!strncmp(line, "z ", 2)) {
        size_t hl = strlen(line + 2);
        uint8_t *z = malloc(hl / 2 + 1);
        size_t zl = unhex(line + 2, hl, z);
        char *inner = inflate_text(z, zl);
        free(z);
        run_vector(inner, c);
        free(inner);
        c->z++;
        return;
    }
    int kind = !strncmp(line, "rt ", 3) ? 'r' : !strncmp(line, "dec ", 4) ? 'd' : 'e';
    if (kind == 'e' && strncmp(line, "err ", 4) != 0)
        fail_msg("bad vector line: %.60s", line);
    char *p = line + (kind == 'r' ? 3 : 4);
    char *sp = strchr(p, ' ');
    size_t hl = sp ? (size_t)(sp - p) : strlen(p);
    uint8_t *bytes = malloc(hl / 2 + 1);
    size_t blen = unhex(p, hl, bytes);
    wa_node_t *got = (wa_node_t *)1;
    int rc = wa_node_decode(bytes, blen, &got);
    if (kind == 'e') {
        if (rc >= 0)
            fail_msg("a vector the reference rejects was accepted: %.120s", line);
        assert_null(got);
        assert_string_not_equal(wa_node_strerror(rc), "unknown node error");
        c->err++;
        free(bytes);
        return;
    }
    p = sp + 1;
    wa_node_t *want = parse_node(&p);
    if (rc != 0)
        fail_msg("vector decode failed (%s): %.120s", wa_node_strerror(rc), line);
    if (!wa_node_equal(got, want)) {
        char *a = wa_node_to_text(got, 1), *b = wa_node_to_text(want, 1);
        fail_msg("decoded node differs:\n got  %.300s\n want %.300s", a, b);
    }
    uint8_t *enc;
    size_t elen;
    assert_int_equal(wa_node_encode(want, &enc, &elen), 0);
    if (kind == 'r') {
        if (elen != blen || memcmp(enc, bytes, blen) != 0) {
            char *t = wa_node_to_text(want, 1);
            fail_msg("encoding differs from the reference for %.300s", t);
        }
        if (blen < 4096)
            check_prefixes(bytes, blen, c);
        c->rt++;
    } else {
        /* our encoding of what the reference decoded reads back; JIDs the
         * reference normalises (FB_JID, ":0" devices, agents) may change once,
         * after which decoding and encoding are stable */
        if (stable_after_one_step(enc, elen) != 0)
            fail_msg("re-encoding is not stable for %.120s", line);
        c->dec++;
    }
    free(enc);
    wa_node_free(got);
    wa_node_free(want);
    free(bytes);
}

static void test_baileys_vectors(void **state)
{
    (void)state;
    size_t flen;
    char *file = read_file("tests/wa_node/testdata/baileys_vectors.txt", &flen);
    counts_t c = {0};
    char *save = NULL;
    for (char *line = strtok_r(file, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        run_vector(line, &c);
    free(file);
    print_message("vectors: %d rt, %d dec, %d err, %d compressed; %d prefixes rejected\n", c.rt,
                  c.dec, c.err, c.z, c.prefixes);
    assert_true(c.rt > 750);
    assert_true(c.dec >= 40);
    assert_true(c.err >= 60);
    assert_int_equal(c.z, 5);
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

/* The second and third worked examples of the protocol doc, both ways. */
static void test_doc_examples_more(void **state)
{
    (void)state;
    static const uint8_t res[] = {0x00, 0xF8, 0x07, 0x19, 0x11, 0xFA, 0x00, 0x03, 0x04,
                                  0x14, 0x08, 0xFF, 0x04, 0x12, 0x3B, 0x45, 0xA6};
    static const uint8_t ack[] = {0x00, 0xF8, 0x05, 0x1B, 0x11, 0xF7, 0x00, 0x0C, 0xFF,
                                  0x86, 0x15, 0x55, 0x12, 0x34, 0x56, 0x7F, 0x15, 0x07};
    wa_node_t *n = wa_node_new("iq");
    wa_node_set_attr(n, "to", "@s.whatsapp.net");
    wa_node_set_attr(n, "type", "result");
    wa_node_set_attr(n, "id", "123.45-6");
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    assert_int_equal(len, sizeof(res));
    assert_memory_equal(out, res, len);
    free(out);
    wa_node_t *back;
    assert_int_equal(wa_node_decode(res, sizeof(res), &back), 0);
    assert_true(wa_node_equal(n, back));
    wa_node_free(back);
    wa_node_free(n);
    n = wa_node_new("ack");
    wa_node_set_attr(n, "to", "15551234567:12@s.whatsapp.net");
    wa_node_set_attr(n, "class", "receipt");
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    assert_int_equal(len, sizeof(ack));
    assert_memory_equal(out, ack, len);
    free(out);
    wa_node_free(n);
}

static void test_jid(void **state)
{
    (void)state;
    wa_jid_t j;
    assert_int_equal(wa_jid_parse("15551234567_1:12@s.whatsapp.net", &j), 0);
    assert_int_equal(j.user_len, 11);
    assert_memory_equal(j.user, "15551234567", 11);
    assert_true(j.has_agent && j.agent_len == 1 && j.agent[0] == '1');
    assert_true(j.has_device && j.device == 12 && j.device_len == 2);
    assert_int_equal(j.server_len, 14);
    assert_memory_equal(j.server, "s.whatsapp.net", 14);
    assert_int_equal(j.domain_type, 1); /* the agent, as the reference encoder uses it */
    assert_int_equal(wa_jid_parse("123:3@lid", &j), 0);
    assert_true(j.domain_type == WA_JID_DOMAIN_LID && j.device == 3 && !j.has_agent);
    assert_int_equal(wa_jid_parse("1_9:3@hosted.lid", &j), 0);
    assert_int_equal(j.domain_type, WA_JID_DOMAIN_HOSTED_LID);
    assert_int_equal(wa_jid_parse("@s.whatsapp.net", &j), 0);
    assert_true(j.user_len == 0 && !j.has_device);
    assert_int_equal(wa_jid_parse("1555:@lid", &j), 0);
    assert_false(j.has_device);
    assert_int_equal(wa_jid_parse("no-at-sign", &j), -1);
    assert_int_equal(wa_jid_parse_n("a@bXYZ", 3, &j), 0);
    assert_true(j.server_len == 1 && j.server[0] == 'b');
    assert_int_equal(wa_jid_parse_n("a@b", 1, &j), -1);
    /* the device byte follows JavaScript Number(text) & 0xff */
    static const struct {
        const char *jid;
        int device;
    } dev[] = {
        {"1:0x1f@x", 31},
        {"1: 7 @x", 7},
        {"1:-1@x", 255},
        {"1:1e2@x", 100},
        {"1:abc@x", 0},
        {"1:12abc@x", 0},
        {"1:4294967298@x", 2},
        {"1:1.9@x", 1},
        {"1:-1.9@x", 255},
        {"1:Infinity@x", 0},
        {"1:0b101@x", 5},
        {"1:0o17@x", 15},
        {"1:\xc2\xa0"
         "5@x",
         5},
        {"1:9007199254740993@x", 0},
        {"1:0x20000000000003@x", 4},
        {"1:.5@x", 0},
        {"1:5.@x", 5},
        {"1:.@x", 0},
        {"1:1e400@x", 0},
        {"1:+3@x", 3},
        {"1:0x@x", 0},
        {"1:2:3@x", 2},
        {"1:300@x", 44},
        {"1:1e-7@x", 0},
    };
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) {
        assert_int_equal(wa_jid_parse(dev[i].jid, &j), 0);
        assert_true(j.has_device);
        if (j.device != dev[i].device)
            fail_msg("%s: device %d, want %d", dev[i].jid, j.device, dev[i].device);
    }
    /* the agent as parseInt(text) & 0xff */
    static const struct {
        const char *jid;
        int domain;
    } agent[] = {
        {"u_0x10:1@x", 16}, {"u_-1:1@x", 255}, {"u_ 7:1@x", 7},    {"u_12abc:1@x", 12},
        {"u_abc:1@x", 0},   {"u_300:1@x", 44}, {"u_1_2:1@x", 1},   {"u__5:1@x", 0},
        {"u_5:1@lid", 1},   {"u_-0:1@x", 0},   {"u_0X1f:1@x", 31}, {"u_+9:1@x", 9},
    };
    for (size_t i = 0; i < sizeof(agent) / sizeof(agent[0]); i++) {
        assert_int_equal(wa_jid_parse(agent[i].jid, &j), 0);
        if (j.domain_type != agent[i].domain)
            fail_msg("%s: domain %d, want %d", agent[i].jid, j.domain_type, agent[i].domain);
    }
    assert_string_equal(wa_jid_server_for_domain(0), "s.whatsapp.net");
    assert_string_equal(wa_jid_server_for_domain(1), "lid");
    assert_string_equal(wa_jid_server_for_domain(128), "hosted");
    assert_string_equal(wa_jid_server_for_domain(129), "hosted.lid");
    assert_string_equal(wa_jid_server_for_domain(7), "s.whatsapp.net");
    char *f = wa_jid_format("1555", 4, 0, "lid");
    assert_string_equal(f, "1555@lid");
    free(f);
    f = wa_jid_format("1555xyz", 4, 12, "s.whatsapp.net");
    assert_string_equal(f, "1555:12@s.whatsapp.net");
    free(f);
    f = wa_jid_without_device("1555_2:12@s.whatsapp.net");
    assert_string_equal(f, "1555@s.whatsapp.net");
    free(f);
    assert_null(wa_jid_without_device("1555"));
    assert_true(wa_jid_same_user("1:2@s.whatsapp.net", "1@s.whatsapp.net"));
    assert_false(wa_jid_same_user("1:2@s.whatsapp.net", "1:2@lid"));
    assert_false(wa_jid_same_user("1", "1"));
    uint64_t user;
    unsigned d;
    assert_int_equal(wa_jid_user_device("18446744073709551615@s.whatsapp.net", &user, &d), 0);
    assert_true(user == UINT64_MAX && d == 0);
    assert_int_equal(wa_jid_user_device("18446744073709551616@s.whatsapp.net", &user, &d), -1);
    assert_int_equal(wa_jid_user_device("1_1:65535@lid", &user, &d), 0);
    assert_true(user == 1 && d == 65535);
    assert_int_equal(wa_jid_user_device("1:65536@lid", &user, &d), -1);
    assert_int_equal(wa_jid_user_device("1:@lid", &user, &d), -1);
    assert_int_equal(wa_jid_user_device("1:2", &user, &d), -1);
    assert_int_equal(wa_jid_user_device("@lid", &user, &d), -1);
}

/* String nesting: JID chains in the server position are read in a loop (any
 * length), other nesting (a JID as a JID's user) is limited. */
static void test_string_nesting(void **state)
{
    (void)state;
    /* <iq id=JID_PAIR(JID_PAIR(...(LIST_EMPTY, s.whatsapp.net)..., g.us)/> */
    for (size_t k = 1; k <= 20; k++) {
        size_t cap = 5 + 3 * k + 2;
        uint8_t *b = malloc(cap);
        size_t n = 0;
        b[n++] = 0;
        b[n++] = 0xF8;
        b[n++] = 0x03;
        b[n++] = 0x19;
        b[n++] = 0x08;
        for (size_t i = 0; i < k; i++)
            b[n++] = 0xFA;
        b[n++] = 0x00;
        for (size_t i = 0; i < k; i++)
            b[n++] = 0x1C; /* g.us */
        wa_node_t *m;
        int rc = wa_node_decode(b, n, &m);
        if (k <= 8) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(wa_node_attr(m, "id")), 5 * k);
            assert_true(stable_after_one_step(b, n) == 0);
            wa_node_free(m);
        } else {
            assert_int_equal(rc, WA_NODE_ETOODEEP);
        }
        free(b);
    }
    /* a long right chain "iq@iq@...@iq@s.whatsapp.net" both ways */
    size_t k = 5000;
    char *s = malloc(3 * k + 20);
    size_t sl = 0;
    for (size_t i = 0; i < k; i++) {
        memcpy(s + sl, "iq@", 3);
        sl += 3;
    }
    strcpy(s + sl, "s.whatsapp.net");
    wa_node_t *n = wa_node_new("x");
    wa_node_set_attr(n, "v", s);
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    assert_int_equal(len, 1 + 2 + 3 + 1 + 2 * k + 1); /* F8 03, "x" raw, v, k x (FA 19), 03 */
    wa_node_t *back;
    assert_int_equal(wa_node_decode(out, len, &back), 0);
    assert_string_equal(wa_node_attr(back, "v"), s);
    wa_node_free(back);
    free(out);
    /* many '@' in a row: "@@@...@x" */
    memset(s, '@', 3 * k);
    strcpy(s + 3 * k, "x");
    wa_node_set_attr(n, "v", s);
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    assert_int_equal(wa_node_decode(out, len, &back), 0);
    assert_true(wa_node_equal(n, back));
    wa_node_free(back);
    free(out);
    wa_node_free(n);
    free(s);
}

static void test_encoder_limits(void **state)
{
    (void)state;
    uint8_t *out = (uint8_t *)1;
    size_t len = 1;
    /* LIST_16 holds at most 65535 children */
    wa_node_t *n = wa_node_new("iq"); /* a token: the list header is at byte 4 */
    for (int i = 0; i < 65535; i++)
        assert_non_null(wa_node_add(n, "a"));
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    assert_int_equal(out[4], 0xF9);
    assert_true(out[5] == 0xFF && out[6] == 0xFF);
    wa_node_t *back;
    assert_int_equal(wa_node_decode(out, len, &back), 0);
    assert_int_equal(back->nchildren, 65535);
    wa_node_free(back);
    free(out);
    assert_non_null(wa_node_add(n, "a"));
    assert_int_equal(wa_node_encode(n, &out, &len), WA_NODE_EINVAL);
    assert_null(out);
    assert_int_equal(len, 0);
    wa_node_free(n);
    /* nesting: WA_NODE_MAX_DEPTH + 1 levels are fine both ways, one more is not */
    for (int extra = 0; extra <= 1; extra++) {
        wa_node_t *root = wa_node_new("d"), *cur = root;
        for (int i = 0; i < WA_NODE_MAX_DEPTH + extra; i++)
            cur = wa_node_add(cur, "d");
        int rc = wa_node_encode(root, &out, &len);
        if (extra) {
            assert_int_equal(rc, WA_NODE_ETOODEEP);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(wa_node_decode(out, len, &back), 0);
            assert_true(wa_node_equal(root, back));
            wa_node_free(back);
            free(out);
        }
        wa_node_free(root);
    }
    /* the tag "0" (whatsmeow writes F8 00; the reference writes token 45) */
    n = wa_node_new("0");
    assert_int_equal(wa_node_encode(n, &out, &len), 0);
    static const uint8_t zero[] = {0x00, 0xF8, 0x01, 45};
    assert_int_equal(len, sizeof(zero));
    assert_memory_equal(out, zero, len);
    free(out);
    wa_node_free(n);
}

static void test_strerror(void **state)
{
    (void)state;
    const char *seen[16];
    int n = 0;
    for (int code = 0; code >= WA_NODE_EINVAL; code--) {
        const char *m = wa_node_strerror(code);
        assert_non_null(m);
        assert_string_not_equal(m, "unknown node error");
        for (int i = 0; i < n; i++)
            assert_string_not_equal(m, seen[i]);
        seen[n++] = m;
    }
    assert_string_equal(wa_node_strerror(-1000), "unknown node error");
    assert_string_equal(wa_node_strerror(5), "unknown node error");
}

static void test_helpers_more(void **state)
{
    (void)state;
    wa_node_t *n = wa_node_new("message");
    wa_node_set_attr(n, "q", "a\"b\\c\nd");
    assert_int_equal(wa_node_set_attr(n, "absent", NULL), 0);
    assert_int_equal(n->nattrs, 1);
    assert_int_equal(wa_node_set_bytes(n, "\x01\xff", 2), 0);
    assert_int_equal(n->kind, WA_NODE_BYTES);
    assert_null(wa_node_child(n, "x"));
    char *t = wa_node_to_text(n, 0);
    assert_string_equal(t, "<message q=\"a\\\"b\\\\c\\x0ad\">#01ff</message>");
    free(t);
    t = wa_node_to_text(n, 1);
    assert_string_equal(t, "<message q=\"a\\\"b\\\\c\\x0ad\">[2 bytes]</message>");
    free(t);
    /* adding a child replaces byte content by a list */
    wa_node_t *c = wa_node_add(n, "body");
    assert_int_equal(n->kind, WA_NODE_LIST);
    assert_ptr_equal(wa_node_child(n, "body"), c);
    size_t len = 99;
    assert_null(wa_node_content(n, &len));
    assert_int_equal(len, 0);
    assert_int_equal(wa_node_set_string(c, "hello"), 0);
    assert_int_equal(c->kind, WA_NODE_STRING);
    const uint8_t *p = wa_node_content(c, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "hello", 5);
    t = wa_node_to_text(n, 1);
    assert_string_equal(t, "<message q=\"a\\\"b\\\\c\\x0ad\"><body>\"hello\"</body></message>");
    free(t);
    /* a second child with the same tag: wa_node_child finds the first */
    wa_node_t *c2 = wa_node_add(n, "body");
    assert_ptr_equal(wa_node_child(n, "body"), c);
    assert_ptr_not_equal(c, c2);
    assert_null(wa_node_attr(NULL, "x"));
    assert_null(wa_node_child(NULL, "x"));
    assert_null(wa_node_add_child(n, NULL));
    wa_node_set_empty_list(c2);
    t = wa_node_to_text(c2, 0);
    assert_string_equal(t, "<body></body>");
    free(t);
    /* attribute order is kept, and replacing keeps the position */
    wa_node_t *o = wa_node_new("o");
    wa_node_set_attr(o, "b", "1");
    wa_node_set_attr(o, "a", "2");
    wa_node_set_attr(o, "b", "3");
    t = wa_node_to_text(o, 0);
    assert_string_equal(t, "<o b=\"3\" a=\"2\"/>");
    free(t);
    wa_node_free(o);
    wa_node_free(n);
    wa_node_free(NULL);
}

/* The check values of the protocol doc (4.7) and the reverse index. */
static void test_tokens(void **state)
{
    (void)state;
    assert_string_equal(wa_tokens_single[0], "");
    assert_string_equal(wa_tokens_single[1], "xmlstreamstart");
    assert_string_equal(wa_tokens_single[3], "s.whatsapp.net");
    assert_string_equal(wa_tokens_single[235], "screen_height");
    assert_string_equal(wa_tokens_double[0][0], "read-self");
    assert_string_equal(wa_tokens_double[0][255], "mute_v2");
    assert_string_equal(wa_tokens_double[1][255], "u_aud_limit_sil_restarts_test1");
    assert_string_equal(wa_tokens_double[2][255], "1537");
    assert_string_equal(wa_tokens_double[3][0], "1724");
    assert_string_equal(wa_tokens_double[3][255], "1961");
    static const struct {
        const char *s;
        int dict, index;
    } want[] = {
        {"iq", -1, 25},
        {"xmlns", -1, 22},
        {"ping", -1, 86},
        {"w:p", -1, 87},
        {"device-identity", -1, 230},
        {"stream:error", -1, 157},
        {"active", 0, 1},
        {"replaced", 0, 17},
        {"ref", 1, 80},
        {"pair-device", 1, 238},
        {"failure", 2, 60},
        {"biz", 2, 84},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const wa_tokens_entry_t *e = wa_tokens_find(want[i].s, strlen(want[i].s));
        assert_non_null(e);
        assert_int_equal(e->dict, want[i].dict);
        assert_int_equal(e->index, want[i].index);
    }
    const char *nope[] = {"pair-success", "ib", "device_removed", "", "iqq", "i", "constructor"};
    for (size_t i = 0; i < sizeof(nope) / sizeof(nope[0]); i++)
        assert_null(wa_tokens_find(nope[i], strlen(nope[i])));
    assert_non_null(wa_tokens_find("iq-not", 2)); /* length-bounded */
    /* every entry of every table is found at its own position */
    for (int i = 1; i < WA_TOKENS_SINGLE_COUNT; i++) {
        const wa_tokens_entry_t *e =
            wa_tokens_find(wa_tokens_single[i], strlen(wa_tokens_single[i]));
        assert_true(e && e->dict == -1 && e->index == i);
    }
    for (int d = 0; d < WA_TOKENS_DICT_COUNT; d++)
        for (int i = 0; i < WA_TOKENS_DICT_SIZE; i++) {
            const char *tok = wa_tokens_double[d][i];
            const wa_tokens_entry_t *e = wa_tokens_find(tok, strlen(tok));
            assert_true(e && e->dict == d && e->index == i);
        }
}

/* Issue 13 point 6: bounds per frame. A frame of 70000 tiny nodes (3 bytes
 * each) decoded to 70000 allocations; one of 300000 attributes to twice as
 * many; the duplicate-key check compared every pair of a node's attributes
 * (32767 of them: half a billion comparisons per node). */
static size_t put_list(uint8_t *b, size_t o, size_t n)
{
    if (n < 256) {
        b[o++] = 0xF8;
        b[o++] = (uint8_t)n;
    } else {
        b[o++] = 0xF9;
        b[o++] = (uint8_t)(n >> 8);
        b[o++] = (uint8_t)n;
    }
    return o;
}

static void test_node_count_bound(void **state)
{
    (void)state;
    /* <iq> with 256 children, each with 300 children <iq/>: 77057 nodes */
    size_t cap = 16 + 256 * (8 + 300 * 3);
    uint8_t *b = malloc(cap);
    size_t o = 0;
    b[o++] = 0;
    o = put_list(b, o, 2);
    b[o++] = 0x19; /* a one-byte token as the tag */
    o = put_list(b, o, 256);
    for (int i = 0; i < 256; i++) {
        o = put_list(b, o, 2);
        b[o++] = 0x19;
        o = put_list(b, o, 300);
        for (int k = 0; k < 300; k++) {
            o = put_list(b, o, 1);
            b[o++] = 0x19;
        }
    }
    wa_node_t *n = NULL;
    assert_int_equal(wa_node_decode(b, o, &n), WA_NODE_ETOOBIG);
    assert_null(n);
    /* 200 x 300: under the limit, decodes */
    o = 0;
    b[o++] = 0;
    o = put_list(b, o, 2);
    b[o++] = 0x19;
    o = put_list(b, o, 200);
    for (int i = 0; i < 200; i++) {
        o = put_list(b, o, 2);
        b[o++] = 0x19;
        o = put_list(b, o, 300);
        for (int k = 0; k < 300; k++) {
            o = put_list(b, o, 1);
            b[o++] = 0x19;
        }
    }
    assert_int_equal(wa_node_decode(b, o, &n), 0);
    assert_int_equal(n->nchildren, 200);
    wa_node_free(n);
    free(b);
}

/* A frame of `nodes` children, each with `per` distinct attributes
 * (keys "k0".."kN" as BINARY_8 strings, a one-byte token as value). */
static uint8_t *attr_frame(int nodes, int per, size_t *len)
{
    size_t cap = 16 + (size_t)nodes * (8 + (size_t)per * 10);
    uint8_t *b = malloc(cap);
    size_t o = 0;
    b[o++] = 0;
    o = put_list(b, o, 2);
    b[o++] = 0x19;
    o = put_list(b, o, (size_t)nodes);
    for (int i = 0; i < nodes; i++) {
        o = put_list(b, o, 1 + 2 * (size_t)per);
        b[o++] = 0x19;
        for (int k = 0; k < per; k++) {
            char key[16];
            int kl = snprintf(key, sizeof(key), "k%d", k);
            b[o++] = 0xFC;
            b[o++] = (uint8_t)kl;
            memcpy(b + o, key, (size_t)kl);
            o += (size_t)kl;
            b[o++] = 0x19;
        }
    }
    *len = o;
    return b;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_attribute_bounds(void **state)
{
    (void)state;
    size_t len;
    wa_node_t *n = NULL;
    /* 6 nodes of 32767 attributes: 196602, under the limit; linear time */
    uint8_t *b = attr_frame(6, 32767, &len);
    double t0 = now_s();
    assert_int_equal(wa_node_decode(b, len, &n), 0);
    double took = now_s() - t0;
    assert_int_equal(n->nchildren, 6);
    assert_int_equal(n->children[5]->nattrs, 32767);
    assert_string_equal(n->children[5]->attrs[32766].key, "k32766");
    wa_node_free(n);
    free(b);
    if (took > 3.0)
        fail_msg("decoding 196602 attributes took %.1f s (quadratic duplicate check?)", took);
    /* 10 such nodes: 327670 attributes, over the limit */
    b = attr_frame(10, 32767, &len);
    assert_int_equal(wa_node_decode(b, len, &n), WA_NODE_ETOOBIG);
    free(b);
    /* repeated keys keep their last value, at their first place */
    static const uint8_t dup[] = {0,    0xF8, 0x07, 0x19, 0xFC, 0x01, 'a',  0xFC, 0x01, '1',  0xFC,
                                  0x01, 'b',  0xFC, 0x01, '2',  0xFC, 0x01, 'a',  0xFC, 0x01, '3'};
    assert_int_equal(wa_node_decode(dup, sizeof(dup), &n), 0);
    assert_int_equal(n->nattrs, 2);
    assert_string_equal(n->attrs[0].key, "a");
    assert_string_equal(n->attrs[0].value, "3");
    assert_string_equal(n->attrs[1].key, "b");
    assert_string_equal(n->attrs[1].value, "2");
    wa_node_free(n);
}

static void test_inflate_bound(void **state)
{
    (void)state;
    /* 17 MiB of zeros, compressed to a few KiB: over the 16 MiB limit */
    size_t big = 17u << 20;
    assert_true(big > WA_NODE_MAX_INFLATED);
    uint8_t *zeros = calloc(1, big);
    uLongf zl = compressBound(big);
    uint8_t *z = malloc(zl + 1);
    z[0] = 2;
    assert_int_equal(compress(z + 1, &zl, zeros, big), Z_OK);
    wa_node_t *n = NULL;
    assert_int_equal(wa_node_decode(z, zl + 1, &n), WA_NODE_ETOOBIG);
    free(z);
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baileys_vectors),
        cmocka_unit_test(test_doc_examples),
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_doc_examples_more),
        cmocka_unit_test(test_jid),
        cmocka_unit_test(test_string_nesting),
        cmocka_unit_test(test_encoder_limits),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_helpers_more),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_node_count_bound),
        cmocka_unit_test(test_attribute_bounds),
        cmocka_unit_test(test_inflate_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
