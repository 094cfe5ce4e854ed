/* Tests of session/wa/paircode.c: every value of a pairing-code exchange
 * (codes, PBKDF2 keys, wrapped ephemeral keys, key bundle, adv secret, the
 * nodes) reproduced byte for byte from the reference client's vectors
 * (tools/baileys-crypto/gen-vectors.mjs -> testdata/baileys_paircode.txt),
 * the phone's side of the bundle, and every malformed answer and
 * notification refused with its error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/wa/crypto.h"
#include "session/wa/node.h"
#include "session/wa/paircode.h"

/* --- the vector file --- */

#define MAX_ENTRIES 96

typedef struct {
    char name[48];
    char text[64]; /* "text:" values and code lines */
    uint8_t *data;
    size_t len;
} entry_t;

static entry_t entries[MAX_ENTRIES];
static int nentries;
static char codes[16][2][16]; /* [i][0] = hex of the 5 bytes, [i][1] = code */
static int ncodes;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t len = strlen(h);
    assert_int_equal(len % 2, 0);
    assert_true(len / 2 <= cap);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return len / 2;
}

static int load(void **state)
{
    (void)state;
    char path[4096];
    const char *dir = getenv("TEST_SRCDIR");
    snprintf(path, sizeof(path), "%s/wa_gateway/tests/wa_paircode/testdata/baileys_paircode.txt",
             dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char line[8192];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (!sp)
            return -1;
        *sp = 0;
        const char *v = sp + 1;
        if (!strcmp(line, "code")) {
            const char *sp2 = strchr(v, ' ');
            if (!sp2 || ncodes >= 16)
                return -1;
            snprintf(codes[ncodes][0], 16, "%.*s", (int)(sp2 - v), v);
            snprintf(codes[ncodes][1], 16, "%.15s", sp2 + 1);
            ncodes++;
            continue;
        }
        if (nentries >= MAX_ENTRIES)
            return -1;
        entry_t *e = &entries[nentries++];
        snprintf(e->name, sizeof(e->name), "%.47s", line);
        if (!strncmp(v, "text:", 5)) {
            snprintf(e->text, sizeof(e->text), "%.63s", v + 5);
            continue;
        }
        e->data = malloc(strlen(v) / 2 + 1);
        e->len = strlen(v) / 2;
        for (size_t i = 0; i < e->len; i++)
            e->data[i] = (uint8_t)(hexval(v[2 * i]) << 4 | hexval(v[2 * i + 1]));
    }
    fclose(f);
    return nentries > 30 && ncodes >= 8 ? 0 : -1;
}

static int unload(void **state)
{
    (void)state;
    for (int i = 0; i < nentries; i++)
        free(entries[i].data);
    return 0;
}

static const entry_t *get(const char *name)
{
    for (int i = 0; i < nentries; i++)
        if (!strcmp(entries[i].name, name))
            return &entries[i];
    fail_msg("no vector %s", name);
    return NULL;
}

/* The bytes of vector `name`, which must be `n` long. */
static const uint8_t *V(const char *name, size_t n)
{
    const entry_t *e = get(name);
    assert_non_null(e->data);
    assert_int_equal(e->len, n);
    return e->data;
}

static const char *T(const char *name)
{
    return get(name)->text;
}

static void assert_encodes_to(const wa_node_t *n, const char *vector)
{
    const entry_t *e = get(vector);
    uint8_t *buf;
    size_t len;
    assert_int_equal(wa_node_encode(n, &buf, &len), 0);
    assert_int_equal(len, e->len);
    assert_memory_equal(buf, e->data, len);
    free(buf);
}

static wa_node_t *decode(const char *vector)
{
    const entry_t *e = get(vector);
    wa_node_t *n = NULL;
    assert_int_equal(wa_node_decode(e->data, e->len, &n), 0);
    return n;
}

/* --- the reference client's values --- */

static void test_codes(void **state)
{
    (void)state;
    for (int i = 0; i < ncodes; i++) {
        uint8_t rnd[5];
        assert_int_equal(unhex(codes[i][0], rnd, 5), 5);
        char code[9];
        wa_paircode_encode(rnd, code);
        assert_string_equal(code, codes[i][1]);
        char shown[10], back[9];
        wa_paircode_format(code, shown);
        assert_int_equal(strlen(shown), 9);
        assert_int_equal(shown[4], '-');
        assert_int_equal(wa_paircode_normalize(shown, back), 0);
        assert_string_equal(back, code);
    }
}

static void test_keys_and_wrapping(void **state)
{
    (void)state;
    const char *code = T("pair_code");
    uint8_t key[32], w[80], pub[32];
    assert_int_equal(wa_paircode_key(code, V("companion_salt", 32), key), 0);
    assert_memory_equal(key, V("companion_key", 32), 32);
    assert_int_equal(wa_paircode_wrap(code, V("companion_salt", 32), V("companion_iv", 16),
                                      V("companion_eph_pub", 32), w),
                     0);
    assert_memory_equal(w, V("companion_wrapped", 80), 80);
    /* the phone's wrapping, and ours undone */
    assert_int_equal(wa_paircode_key(code, V("primary_wrapped", 80), key), 0);
    assert_memory_equal(key, V("primary_key", 32), 32);
    assert_int_equal(wa_paircode_unwrap(code, V("primary_wrapped", 80), pub), 0);
    assert_memory_equal(pub, V("primary_eph_pub", 32), 32);
    assert_int_equal(wa_paircode_unwrap(code, V("companion_wrapped", 80), pub), 0);
    assert_memory_equal(pub, V("companion_eph_pub", 32), 32);
    /* a phone that used another code: 32 other bytes, exactly as Baileys */
    assert_int_equal(wa_paircode_unwrap(code, V("primary_wrapped_wrong", 80), pub), 0);
    assert_memory_equal(pub, V("primary_unwrapped_wrong", 32), 32);
    /* invalid codes are refused before any work */
    assert_int_equal(wa_paircode_key("ABCD", V("companion_salt", 32), key), WA_PAIRCODE_EINVAL);
    assert_int_equal(wa_paircode_key("ABCDEFG0", V("companion_salt", 32), key), WA_PAIRCODE_EINVAL);
    assert_int_equal(wa_paircode_unwrap("abcdefgh", V("primary_wrapped", 80), pub),
                     WA_PAIRCODE_EINVAL);
}

static void test_key_pairs(void **state)
{
    (void)state;
    static const char *const names[] = {"companion_eph", "companion_ident", "noise", "primary_eph",
                                        "primary_ident"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char a[64], b[64];
        snprintf(a, sizeof(a), "%s_priv", names[i]);
        snprintf(b, sizeof(b), "%s_pub", names[i]);
        uint8_t pub[32];
        assert_int_equal(wa_crypto_public_from_private(V(a, 32), pub), 0);
        assert_memory_equal(pub, V(b, 32), 32);
    }
}

static void test_bundle_and_adv_secret(void **state)
{
    (void)state;
    wa_paircode_finish_in_t in = {.eph_priv = V("companion_eph_priv", 32),
                                  .ident_priv = V("companion_ident_priv", 32),
                                  .ident_pub = V("companion_ident_pub", 32),
                                  .primary_eph_pub = V("primary_eph_pub", 32),
                                  .primary_ident_pub = V("primary_ident_pub", 32),
                                  .salt = V("bundle_salt", 32),
                                  .nonce = V("bundle_nonce", 12),
                                  .random = V("bundle_random", 32)};
    uint8_t bundle[WA_PAIRCODE_BUNDLE_LEN], adv[32];
    assert_int_equal(wa_paircode_finish_keys(&in, bundle, adv), 0);
    assert_memory_equal(bundle, V("bundle", WA_PAIRCODE_BUNDLE_LEN), WA_PAIRCODE_BUNDLE_LEN);
    assert_memory_equal(adv, V("adv_secret", 32), 32);

    /* the pieces on their own */
    uint8_t shared[32], s2[32], plain[96];
    assert_int_equal(
        wa_crypto_x25519(V("primary_eph_priv", 32), V("companion_eph_pub", 32), shared), 0);
    assert_memory_equal(shared, V("eph_shared", 32), 32);
    assert_int_equal(
        wa_crypto_x25519(V("primary_ident_priv", 32), V("companion_ident_pub", 32), s2), 0);
    assert_memory_equal(s2, V("ident_shared", 32), 32);
    assert_int_equal(wa_paircode_adv_secret(shared, s2, V("bundle_random", 32), adv), 0);
    assert_memory_equal(adv, V("adv_secret", 32), 32);

    /* the phone opens it and finds both identities and the random */
    assert_int_equal(wa_paircode_bundle_open(shared, bundle, sizeof(bundle), plain), 0);
    assert_memory_equal(plain, V("companion_ident_pub", 32), 32);
    assert_memory_equal(plain + 32, V("primary_ident_pub", 32), 32);
    assert_memory_equal(plain + 64, V("bundle_random", 32), 32);
    /* tampered, truncated, or sealed after unwrapping with another code */
    bundle[100] ^= 1;
    assert_int_equal(wa_paircode_bundle_open(shared, bundle, sizeof(bundle), plain),
                     WA_PAIRCODE_EAUTH);
    bundle[100] ^= 1;
    assert_int_equal(wa_paircode_bundle_open(shared, bundle, sizeof(bundle) - 1, plain),
                     WA_PAIRCODE_ESIZE);
    in.primary_eph_pub = V("primary_unwrapped_wrong", 32);
    uint8_t adv2[32];
    assert_int_equal(wa_paircode_finish_keys(&in, bundle, adv2), 0);
    assert_memory_not_equal(adv2, V("adv_secret", 32), 32);
    assert_int_equal(wa_paircode_bundle_open(shared, bundle, sizeof(bundle), plain),
                     WA_PAIRCODE_EAUTH);
    /* a low-order key from the phone is an error, not a weak secret */
    static const uint8_t zero[32];
    in.primary_eph_pub = zero;
    assert_int_equal(wa_paircode_finish_keys(&in, bundle, adv2), WA_PAIRCODE_ECRYPTO);
}

static void test_nodes(void **state)
{
    (void)state;
    wa_node_t *h =
        wa_paircode_hello_node(T("phone"), V("companion_wrapped", 80), V("noise_pub", 32),
                               WA_PAIRCODE_PLATFORM_ID, WA_PAIRCODE_PLATFORM_DISPLAY);
    assert_non_null(h);
    assert_encodes_to(h, "hello_node");
    wa_node_free(h);
    const entry_t *ref = get("ref");
    wa_node_t *f = wa_paircode_finish_node(T("phone"), V("bundle", WA_PAIRCODE_BUNDLE_LEN),
                                           WA_PAIRCODE_BUNDLE_LEN, V("companion_ident_pub", 32),
                                           ref->data, ref->len);
    assert_non_null(f);
    assert_encodes_to(f, "finish_node");
    wa_node_free(f);

    /* the answer to companion_hello */
    wa_node_t *r = decode("result_node");
    const uint8_t *got;
    size_t len;
    int err = -1;
    assert_int_equal(wa_paircode_parse_hello_result(r, &got, &len, &err), 0);
    assert_int_equal(err, 0);
    assert_int_equal(len, ref->len);
    assert_memory_equal(got, ref->data, len);
    wa_node_free(r);

    /* the phone's primary_hello */
    wa_node_t *n = decode("notification_node");
    wa_paircode_primary_hello_t ph;
    assert_int_equal(wa_paircode_parse_primary_hello(n, ref->data, ref->len, &ph), 0);
    assert_int_equal(ph.ref_len, ref->len);
    assert_memory_equal(ph.wrapped, V("primary_wrapped", 80), 80);
    assert_memory_equal(ph.primary_ident_pub, V("primary_ident_pub", 32), 32);
    assert_int_equal(wa_paircode_parse_primary_hello(n, NULL, 0, &ph), 0);
    assert_int_equal(wa_paircode_parse_primary_hello(n, (const uint8_t *)"2@other", 7, &ph),
                     WA_PAIRCODE_EREF);
    assert_int_equal(wa_paircode_parse_primary_hello(n, ref->data, ref->len - 1, &ph),
                     WA_PAIRCODE_EREF);
    wa_node_free(n);

    /* builders refuse what WhatsApp would refuse */
    uint8_t w[80] = {0}, k[32] = {0};
    assert_null(wa_paircode_hello_node("+15551234567", w, k, "1", "Chrome (Linux)"));
    assert_null(wa_paircode_hello_node("", w, k, "1", "Chrome (Linux)"));
    assert_null(wa_paircode_hello_node("1234567890123456", w, k, "1", "Chrome (Linux)"));
    assert_null(wa_paircode_hello_node("15551234567", w, k, "1", "wa-gateway"));
    assert_null(wa_paircode_hello_node("15551234567", w, k, "", "Chrome (Linux)"));
    assert_null(wa_paircode_finish_node("15551234567", w, 80, k, NULL, 0));
    uint8_t big[WA_PAIRCODE_REF_MAX + 1] = {0};
    assert_null(wa_paircode_finish_node("15551234567", w, 80, k, big, sizeof(big)));
}

/* --- malformed input --- */

/* A well-formed primary_hello to break in one place. */
static wa_node_t *hello_notification(size_t ref_len, size_t wrapped_len, size_t ident_len)
{
    static const uint8_t zeros[512];
    wa_node_t *n = wa_node_new("notification");
    wa_node_set_attr(n, "from", "s.whatsapp.net");
    wa_node_set_attr(n, "type", "link_code_companion_reg");
    wa_node_set_attr(n, "id", "1");
    wa_node_t *r = wa_node_add(n, "link_code_companion_reg");
    wa_node_set_attr(r, "stage", "primary_hello");
    wa_node_set_bytes(wa_node_add(r, "link_code_pairing_ref"), "2@refrefref", ref_len);
    wa_node_set_bytes(wa_node_add(r, "link_code_pairing_wrapped_primary_ephemeral_pub"), zeros,
                      wrapped_len);
    wa_node_set_bytes(wa_node_add(r, "primary_identity_pub"), zeros, ident_len);
    return n;
}

static int parse(const wa_node_t *n)
{
    wa_paircode_primary_hello_t ph;
    int rc = wa_paircode_parse_primary_hello(n, NULL, 0, &ph);
    if (rc)
        assert_null(ph.wrapped); /* nothing half-filled on error */
    return rc;
}

static void test_malformed_notifications(void **state)
{
    (void)state;
    wa_node_t *n = hello_notification(11, 80, 32);
    assert_int_equal(parse(n), 0);
    wa_node_free(n);

    static const struct {
        size_t ref, wrapped, ident;
        int rc;
    } sizes[] = {
        {0, 80, 32, WA_PAIRCODE_ESIZE},  {11, 79, 32, WA_PAIRCODE_ESIZE},
        {11, 81, 32, WA_PAIRCODE_ESIZE}, {11, 0, 32, WA_PAIRCODE_ESIZE},
        {11, 80, 31, WA_PAIRCODE_ESIZE}, {11, 80, 33, WA_PAIRCODE_ESIZE},
        {11, 80, 0, WA_PAIRCODE_ESIZE},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        n = hello_notification(sizes[i].ref, sizes[i].wrapped, sizes[i].ident);
        assert_int_equal(parse(n), sizes[i].rc);
        wa_node_free(n);
    }
    /* a ref over the limit */
    n = hello_notification(11, 80, 32);
    static const uint8_t zeros[WA_PAIRCODE_REF_MAX + 1];
    wa_node_set_bytes(wa_node_path(n, "link_code_companion_reg", "link_code_pairing_ref", NULL),
                      zeros, WA_PAIRCODE_REF_MAX + 1);
    assert_int_equal(parse(n), WA_PAIRCODE_ESIZE);
    wa_node_free(n);

    /* each required child missing, or repeated */
    static const char *const kids[] = {"link_code_pairing_ref",
                                       "link_code_pairing_wrapped_primary_ephemeral_pub",
                                       "primary_identity_pub"};
    for (size_t i = 0; i < 3; i++) {
        n = hello_notification(11, 80, 32);
        wa_node_t *r = wa_node_child(n, "link_code_companion_reg");
        wa_node_t *c = wa_node_child(r, kids[i]);
        free(c->tag);
        c->tag = strdup("something_else");
        assert_int_equal(parse(n), WA_PAIRCODE_EMISSING);
        wa_node_free(n);

        n = hello_notification(11, 80, 32);
        r = wa_node_child(n, "link_code_companion_reg");
        wa_node_set_bytes(wa_node_add(r, kids[i]), zeros, i == 0 ? 3 : i == 1 ? 80 : 32);
        assert_int_equal(parse(n), WA_PAIRCODE_ESIZE);
        wa_node_free(n);

        /* a child without content (an empty list) */
        n = hello_notification(11, 80, 32);
        r = wa_node_child(n, "link_code_companion_reg");
        wa_node_set_empty_list(wa_node_child(r, kids[i]));
        assert_int_equal(parse(n), WA_PAIRCODE_EMISSING);
        wa_node_free(n);
    }

    /* the wrong stage, type, tag or sender */
    n = hello_notification(11, 80, 32);
    wa_node_set_attr(wa_node_child(n, "link_code_companion_reg"), "stage", "refresh_code");
    assert_int_equal(parse(n), WA_PAIRCODE_ESTAGE);
    wa_node_set_attr(wa_node_child(n, "link_code_companion_reg"), "stage", NULL);
    assert_int_equal(parse(n), 0); /* whatsmeow reads a stage-less one as primary_hello */
    wa_node_set_attr(n, "type", "companion_reg_refresh");
    assert_int_equal(parse(n), WA_PAIRCODE_ESTAGE);
    wa_node_set_attr(n, "type", NULL);
    assert_int_equal(parse(n), WA_PAIRCODE_ESTAGE);
    wa_node_set_attr(n, "type", "link_code_companion_reg");
    wa_node_set_attr(n, "from", "15550001111@s.whatsapp.net");
    assert_int_equal(parse(n), WA_PAIRCODE_ESTAGE);
    wa_node_set_attr(n, "from", "s.whatsapp.net");
    free(n->tag);
    n->tag = strdup("iq");
    assert_int_equal(parse(n), WA_PAIRCODE_ESTAGE);
    wa_node_free(n);

    /* no link_code_companion_reg, or two */
    n = wa_node_new("notification");
    wa_node_set_attr(n, "type", "link_code_companion_reg");
    assert_int_equal(parse(n), WA_PAIRCODE_EMISSING);
    wa_node_set_bytes(n, "x", 1);
    assert_int_equal(parse(n), WA_PAIRCODE_EMISSING);
    wa_node_free(n);
    n = hello_notification(11, 80, 32);
    wa_node_add(n, "link_code_companion_reg");
    assert_int_equal(parse(n), WA_PAIRCODE_ESIZE);
    wa_node_free(n);
}

static void test_malformed_results(void **state)
{
    (void)state;
    const uint8_t *ref;
    size_t len;
    int err;
    wa_node_t *iq = wa_node_new("iq");
    wa_node_set_attr(iq, "type", "result");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_EMISSING);
    wa_node_t *reg = wa_node_add(iq, "link_code_companion_reg");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_EMISSING);
    wa_node_t *r = wa_node_add(reg, "link_code_pairing_ref");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_EMISSING);
    wa_node_set_bytes(r, "", 0);
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_ESIZE);
    wa_node_set_bytes(r, "2@abc", 5);
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), 0);
    assert_int_equal(len, 5);
    wa_node_set_bytes(wa_node_add(reg, "link_code_pairing_ref"), "2@x", 3);
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_ESIZE);
    wa_node_set_attr(iq, "type", "get");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_ESTAGE);
    wa_node_set_attr(iq, "type", NULL);
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_ESTAGE);
    wa_node_free(iq);

    /* refusals carry WhatsApp's code */
    iq = wa_node_new("iq");
    wa_node_set_attr(iq, "type", "error");
    wa_node_t *e = wa_node_add(iq, "error");
    wa_node_set_attr(e, "code", "400");
    wa_node_set_attr(e, "text", "bad-request");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_EREFUSED);
    assert_int_equal(err, 400);
    wa_node_set_attr(e, "code", "99999999999999999999");
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, &err), WA_PAIRCODE_EREFUSED);
    assert_true(err >= 0);
    assert_int_equal(wa_paircode_parse_hello_result(iq, &ref, &len, NULL), WA_PAIRCODE_EREFUSED);
    wa_node_free(iq);
    assert_int_equal(wa_paircode_parse_hello_result(NULL, &ref, &len, &err), WA_PAIRCODE_ESTAGE);
}

static void test_texts(void **state)
{
    (void)state;
    char c[9];
    assert_int_equal(wa_paircode_normalize("abcd-efgh", c), 0);
    assert_string_equal(c, "ABCDEFGH");
    assert_int_equal(wa_paircode_normalize(" ZBQ9 Q7E5 ", c), 0);
    assert_string_equal(c, "ZBQ9Q7E5");
    static const char *const bad[] = {"",           "ABCDEFG",   "ABCDEFGHJ", "ABCD-EFG0",
                                      "ABCDEFGI",   "ABCDEFGO",  "ABCDEFGU",  "ABC-DEFGH",
                                      "ABCD--EFGH", "ABCD_EFGH", "ABCDEFGH-", "ÀBCDEFGH"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wa_paircode_normalize(bad[i], c), WA_PAIRCODE_EINVAL);

    assert_true(wa_paircode_display_ok("Chrome (Linux)"));
    assert_true(wa_paircode_display_ok("Chrome (Mac OS)"));
    assert_true(wa_paircode_display_ok("Edge (Windows)"));
    static const char *const bad_display[] = {
        "Chrome",
        "Chrome(Linux)",
        "Chrome ()",
        " (Linux)",
        "Chrome (Linux",
        "Chrome (Linux) ",
        "Chrome ((x))",
        "Chrome ( Linux)",
        "Chrome\t(Linux)",
        "wa-gateway",
        "Chrome (Li)nux)",
        "C (\x01)",
        "Chrome (Linuxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx)"};
    for (size_t i = 0; i < sizeof(bad_display) / sizeof(bad_display[0]); i++)
        assert_false(wa_paircode_display_ok(bad_display[i]));
    assert_false(wa_paircode_display_ok(NULL));

    assert_true(wa_paircode_phone_ok("15551234567"));
    assert_true(wa_paircode_phone_ok("123456789012345"));
    assert_false(wa_paircode_phone_ok("1234567890123456"));
    assert_false(wa_paircode_phone_ok("+15551234567"));
    assert_false(wa_paircode_phone_ok("1555 123"));
    assert_false(wa_paircode_phone_ok(""));
    assert_false(wa_paircode_phone_ok(NULL));
    for (int rc = 0; rc >= -10; rc--)
        assert_non_null(wa_paircode_strerror(rc));
}

/* PBKDF2 against RFC 7914's PBKDF2-HMAC-SHA256 test vector, and AES-CTR
 * against NIST SP 800-38A F.5.5 (the primitives under the wrapping). */
static void test_primitives(void **state)
{
    (void)state;
    uint8_t out[64], want[64];
    assert_int_equal(wa_crypto_pbkdf2_sha256((const uint8_t *)"passwd", 6, (const uint8_t *)"salt",
                                             4, 1, out, 64),
                     0);
    unhex(
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d"
        "77ef317c71b845b1e30bd509112041d3a19783",
        want, 64);
    assert_memory_equal(out, want, 64);
    assert_int_equal(wa_crypto_pbkdf2_sha256(NULL, 0, NULL, 0, 0, out, 32), WA_CRYPTO_EINVAL);
    uint8_t key[32], iv[16], pt[64], ct[64];
    unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", key, 32);
    unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", iv, 16);
    unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc119"
          "1a0a52eff69f2445df4f9b17ad2b417be66c3710",
          pt, 64);
    unhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba"
          "2d84988ddfc9c58db67aada613c2dd08457941a6",
          want, 64);
    assert_int_equal(wa_crypto_aes256ctr(key, iv, pt, 64, ct), 0);
    assert_memory_equal(ct, want, 64);
    assert_int_equal(wa_crypto_aes256ctr(key, iv, ct, 64, ct), 0); /* in place, and back */
    assert_memory_equal(ct, pt, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_keys_and_wrapping),
        cmocka_unit_test(test_key_pairs),
        cmocka_unit_test(test_bundle_and_adv_secret),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_malformed_notifications),
        cmocka_unit_test(test_malformed_results),
        cmocka_unit_test(test_texts),
        cmocka_unit_test(test_primitives),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
