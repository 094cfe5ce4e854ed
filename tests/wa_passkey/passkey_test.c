/* Unit tests of session/wa/passkey.c: every derivation against vectors
 * computed independently in Python (testdata/vectors.txt, made by
 * gen_vectors.py), the URL-safe base64 of common/base64.c, and the parsers
 * against malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"
#include "session/wa/crypto.h"
#include "session/wa/passkey.h"

/* --- vectors --- */

#define MAX_VEC 64

static struct {
    char name[40];
    uint8_t bytes[512];
    size_t len;
    char text[256]; /* the whole value text (b64url lines) */
} vec[MAX_VEC];
static int nvec;

static void load_vectors(void)
{
    if (nvec)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/wa_gateway/tests/wa_passkey/testdata/vectors.txt",
             getenv("TEST_SRCDIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = 0;
        assert_true(nvec < MAX_VEC);
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        *sp = 0;
        snprintf(vec[nvec].name, sizeof(vec[nvec].name), "%.39s", line);
        snprintf(vec[nvec].text, sizeof(vec[nvec].text), "%.255s", sp + 1);
        const char *hex = sp + 1;
        size_t n = strcspn(hex, " ");
        if (strncmp(hex, "-", n) && strspn(hex, "0123456789abcdef") >= n) {
            for (size_t i = 0; i + 1 < n; i += 2) {
                unsigned b;
                sscanf(hex + i, "%2x", &b);
                vec[nvec].bytes[vec[nvec].len++] = (uint8_t)b;
            }
        }
        nvec++;
    }
    fclose(f);
}

static const uint8_t *v(const char *name, size_t *len)
{
    load_vectors();
    for (int i = 0; i < nvec; i++)
        if (!strcmp(vec[i].name, name)) {
            if (len)
                *len = vec[i].len;
            return vec[i].bytes;
        }
    fail_msg("no vector %s", name);
    return NULL;
}

static const char *vtext(const char *name)
{
    load_vectors();
    for (int i = 0; i < nvec; i++)
        if (!strcmp(vec[i].name, name))
            return vec[i].text;
    fail_msg("no vector %s", name);
    return NULL;
}

static void assert_vec(const uint8_t *got, size_t len, const char *name)
{
    size_t want_len;
    const uint8_t *want = v(name, &want_len);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, len);
}

static char ref_str[64];

static const char *ref(void)
{
    size_t n;
    const uint8_t *r = v("ref", &n);
    memcpy(ref_str, r, n);
    ref_str[n] = 0;
    return ref_str;
}

/* --- derivations --- */

static void test_handoff(void **state)
{
    (void)state;
    uint8_t key[32], proof[32];
    assert_int_equal(wa_passkey_handoff_key(v("adv_secret", NULL), key), 0);
    assert_vec(key, 32, "handoff_key");
    size_t pl;
    const uint8_t *payload = v("prologue_payload", &pl);
    assert_int_equal(wa_passkey_handoff_proof(key, payload, pl, proof), 0);
    assert_vec(proof, 32, "handoff_proof");
}

static void test_prologue(void **state)
{
    (void)state;
    uint8_t pub[32];
    assert_int_equal(wa_crypto_public_from_private(v("eph_priv", NULL), pub), 0);
    assert_vec(pub, 32, "eph_pub");
    wa_passkey_prologue_t p;
    assert_int_equal(wa_passkey_prologue(pub, 1, ref(), v("companion_nonce", NULL), &p), 0);
    assert_vec(p.identity, p.identity_len, "identity");
    assert_vec(p.commitment, 32, "commitment");
    assert_vec(p.payload, p.payload_len, "prologue_payload");

    /* the node carries the parts; the proof only when given */
    wa_passkey_assertion_t a = {
        .cred_id = {1, 2, 3}, .cred_id_len = 3, .json = "{}", .json_len = 2};
    uint8_t proof[32] = {9};
    wa_node_t *n = wa_passkey_prologue_node(&a, &p, NULL);
    assert_non_null(n);
    assert_string_equal(n->tag, "passkey_prologue");
    assert_int_equal(n->nchildren, 3);
    size_t len;
    const uint8_t *b = wa_node_content(wa_node_child(n, "credential_id"), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(b, a.cred_id, 3);
    b = wa_node_content(wa_node_child(n, "webauthn_assertion"), &len);
    assert_int_equal(len, 2);
    b = wa_node_content(wa_node_child(n, "prologue_payload"), &len);
    assert_vec(b, len, "prologue_payload");
    assert_null(wa_node_child(n, "pairing_handoff_proof"));
    wa_node_free(n);
    n = wa_passkey_prologue_node(&a, &p, proof);
    b = wa_node_content(wa_node_child(n, "pairing_handoff_proof"), &len);
    assert_int_equal(len, 32);
    assert_memory_equal(b, proof, 32);
    wa_node_free(n);
    wa_passkey_prologue_free(&p);

    /* the ref is bounded */
    char longref[WA_PASSKEY_REF_MAX + 2];
    memset(longref, 'r', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = 0;
    assert_int_equal(wa_passkey_prologue(pub, 1, longref, pub, &p), WA_PASSKEY_EINVAL);
    assert_int_equal(wa_passkey_prologue(pub, 1, "", pub, &p), WA_PASSKEY_EINVAL);
    assert_int_equal(wa_passkey_prologue(pub, 1, NULL, pub, &p), WA_PASSKEY_EINVAL);
    longref[WA_PASSKEY_REF_MAX] = 0; /* exactly the limit is fine */
    assert_int_equal(wa_passkey_prologue(pub, 1, longref, pub, &p), 0);
    wa_passkey_prologue_free(&p);
}

static wa_node_t *continuation(const uint8_t *content, size_t len)
{
    wa_node_t *n = wa_node_new("notification");
    wa_node_set_attr(n, "type", "crsc_continuation");
    if (content)
        wa_node_set_bytes(wa_node_add(n, "primary_ephemeral_identity"), content, len);
    return n;
}

static void test_continuation_and_code(void **state)
{
    (void)state;
    size_t len;
    const uint8_t *pi = v("primary_identity", &len);
    wa_node_t *n = continuation(pi, len);
    uint8_t pub[32], nonce[32];
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), 0);
    wa_node_free(n);
    assert_vec(pub, 32, "primary_pub");
    assert_vec(nonce, 32, "primary_nonce");
    char code[10];
    assert_int_equal(wa_passkey_code(v("companion_nonce", NULL), pub, nonce, code), 0);
    assert_vec((const uint8_t *)code, strlen(code), "code");
    assert_int_equal(strlen(code), 9);
    assert_int_equal(code[4], '-');

    /* malformed continuations */
    uint8_t buf[300];
    memcpy(buf, pi, len);
    n = continuation(NULL, 0);
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
    wa_node_free(n);
    assert_int_equal(wa_passkey_parse_continuation(NULL, pub, nonce), WA_PASSKEY_EINVAL);
    size_t cuts[] = {0, 1, 2, 33, 34, 35, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        n = continuation(buf, cuts[i]);
        assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
        wa_node_free(n);
    }
    /* a 31-byte key, and a 33-byte nonce */
    static const uint8_t short_key[] = {0x0a, 0x1f};
    uint8_t odd[80];
    memcpy(odd, short_key, 2);
    memset(odd + 2, 7, 31);
    odd[33] = 0x12;
    odd[34] = 0x20;
    memset(odd + 35, 8, 32);
    n = continuation(odd, 67);
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
    wa_node_free(n);
    memcpy(buf, pi, len);
    buf[35] = 0x21; /* nonce length 33, one byte short of the data */
    n = continuation(buf, len);
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
    wa_node_free(n);
    memset(buf, 0xff, sizeof(buf)); /* garbage, and too long */
    n = continuation(buf, 10);
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
    wa_node_free(n);
    n = continuation(buf, 257);
    assert_int_equal(wa_passkey_parse_continuation(n, pub, nonce), WA_PASSKEY_EINVAL);
    wa_node_free(n);
}

static void test_encryption(void **state)
{
    (void)state;
    uint8_t shared[32], key[32];
    assert_int_equal(wa_crypto_x25519(v("eph_priv", NULL), v("primary_pub", NULL), shared), 0);
    assert_vec(shared, 32, "shared");
    assert_int_equal(wa_passkey_encryption_key(shared, 1, ref(), key), 0);
    assert_vec(key, 32, "enc_key");
    uint8_t other[32];
    assert_int_equal(wa_passkey_encryption_key(shared, 2, ref(), other), 0);
    assert_memory_not_equal(other, key, 32);
    uint8_t *out;
    size_t len;
    assert_int_equal(wa_passkey_pairing_request(key, v("iv", NULL), v("noise_pub", NULL),
                                                v("ident_pub", NULL), v("new_adv_secret", NULL),
                                                &out, &len),
                     0);
    assert_vec(out, len, "encrypted_pairing_request");
    free(out);
    char longref[WA_PASSKEY_REF_MAX + 2];
    memset(longref, 'r', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = 0;
    assert_int_equal(wa_passkey_encryption_key(shared, 1, longref, key), WA_PASSKEY_EINVAL);
    assert_int_equal(wa_passkey_encryption_key(shared, 1, "", key), WA_PASSKEY_EINVAL);
}

/* --- base64url --- */

static void test_b64url(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b64url_%d", i);
        size_t len;
        const uint8_t *data = v(name, &len);
        const char *text = vtext(name);
        const char *enc = strchr(text, ' ') + 1;
        if (!strcmp(enc, "-"))
            enc = "";
        char *got = b64url_encode(data, len);
        assert_string_equal(got, enc);
        free(got);
        uint8_t out[16];
        assert_int_equal(b64url_decode(enc, strlen(enc), out, sizeof(out)), (long)len);
        assert_memory_equal(out, data, len);
    }
    uint8_t out[16];
    /* padding tolerated when complete, and only then */
    assert_int_equal(b64url_decode("-w==", 4, out, sizeof(out)), 1);
    assert_int_equal(b64url_decode("-_8=", 4, out, sizeof(out)), 2);
    assert_int_equal(b64url_decode("-w=", 3, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("-w=x", 4, out, sizeof(out)), -1);
    /* the standard alphabet, impossible lengths, non-canonical tails */
    assert_int_equal(b64url_decode("+w", 2, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("/w", 2, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("AAAAA", 5, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("-x", 2, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("-_9", 3, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("A\0", 2, out, sizeof(out)), -1);
    assert_int_equal(b64url_decode("AA A", 4, out, sizeof(out)), -1);
    /* the buffer is respected */
    assert_int_equal(b64url_decode("-_-_", 4, out, 2), -1);
    assert_int_equal(b64url_decode("-_-_", 4, out, 3), 3);
}

/* --- request options --- */

static int opts(const char *json)
{
    wa_passkey_options_t o;
    int rc = wa_passkey_options_parse((const uint8_t *)json, strlen(json), &o);
    if (rc == 0) {
        assert_string_equal(o.json, json);
        assert_int_equal(o.json_len, strlen(json));
    } else {
        assert_null(o.json);
    }
    wa_passkey_options_free(&o);
    return rc;
}

static void test_options(void **state)
{
    (void)state;
    const char *good = "{\"challenge\":\"AAECAwQFBgcICQoLDA0ODw\",\"timeout\":60000,"
                       "\"rpId\":\"web.whatsapp.com\",\"allowCredentials\":[{\"type\":"
                       "\"public-key\",\"id\":\"Y3JlZA\",\"transports\":[\"internal\"]}],"
                       "\"userVerification\":\"preferred\",\"extensions\":{}}";
    wa_passkey_options_t o;
    assert_int_equal(wa_passkey_options_parse((const uint8_t *)good, strlen(good), &o), 0);
    assert_int_equal(o.challenge_len, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(o.challenge[i], i);
    wa_passkey_options_free(&o);
    assert_int_equal(opts("{\"challenge\":\"AA\"}"), 0);
    assert_int_equal(opts("{\"challenge\":\"AA\",\"userVerification\":\"required\"}"), 0);
    assert_int_equal(opts("{\"challenge\":\"AA\",\"allowCredentials\":[]}"), 0);

    static const char *const bad[] = {
        "",
        "[]",
        "\"x\"",
        "null",
        "{}",
        "{\"challenge\":\"\"}",
        "{\"challenge\":5}",
        "{\"challenge\":null}",
        "{\"challenge\":\"A\"}",
        "{\"challenge\":\"AA==x\"}",
        "{\"challenge\":\"+/+/\"}",
        "{\"challenge\":\"AA\"",
        "{\"challenge\":\"AA\"} x",
        "{\"challenge\":\"AA\",\"rpId\":5}",
        "{\"challenge\":\"AA\",\"timeout\":-1}",
        "{\"challenge\":\"AA\",\"timeout\":\"60\"}",
        "{\"challenge\":\"AA\",\"userVerification\":\"sometimes\"}",
        "{\"challenge\":\"AA\",\"userVerification\":1}",
        "{\"challenge\":\"AA\",\"allowCredentials\":{}}",
        "{\"challenge\":\"AA\",\"allowCredentials\":[1]}",
        "{\"challenge\":\"AA\",\"allowCredentials\":[{}]}",
        "{\"challenge\":\"AA\",\"allowCredentials\":[{\"id\":\"\"}]}",
        "{\"challenge\":\"AA\",\"allowCredentials\":[{\"id\":\"A\"}]}",
        "{\"challenge\":\"AA\",\"allowCredentials\":[{\"id\":\"AA\",\"type\":2}]}",
        "{\"challenge\":\"\xff\xfe\"}",
        "{\"challenge\":\"AA\",\"x\":\"\xc3\x28\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(opts(bad[i]), WA_PASSKEY_EINVAL);
    /* a NUL byte, and the size limits */
    assert_int_equal(wa_passkey_options_parse((const uint8_t *)"{\"challenge\":\"AA\"}\0", 19, &o),
                     WA_PASSKEY_EINVAL);
    assert_int_equal(wa_passkey_options_parse(NULL, 0, &o), WA_PASSKEY_EINVAL);
    size_t big = WA_PASSKEY_JSON_MAX + 1;
    char *s = malloc(big + 1);
    memset(s, ' ', big);
    memcpy(s, "{\"challenge\":\"AA\"}", 18);
    s[big] = 0;
    assert_int_equal(opts(s), WA_PASSKEY_EINVAL);
    s[big - 1] = 0; /* exactly the limit */
    assert_int_equal(opts(s), 0);
    free(s);
    /* a challenge over the limit */
    size_t cl = (WA_PASSKEY_CHALLENGE_MAX + 1) * 4 / 3 + 4;
    s = malloc(cl + 32);
    strcpy(s, "{\"challenge\":\"");
    memset(s + 14, 'A', cl);
    strcpy(s + 14 + cl, "\"}");
    assert_int_equal(opts(s), WA_PASSKEY_EINVAL);
    free(s);
    /* too many allowed credentials */
    s = malloc(64 * 20 + 256);
    int n = sprintf(s, "{\"challenge\":\"AA\",\"allowCredentials\":[");
    for (int i = 0; i <= WA_PASSKEY_ALLOW_MAX; i++)
        n += sprintf(s + n, "%s{\"id\":\"AA\"}", i ? "," : "");
    strcpy(s + n, "]}");
    assert_int_equal(opts(s), WA_PASSKEY_EINVAL);
    free(s);
}

static void test_request_node(void **state)
{
    (void)state;
    const char *json = "{\"challenge\":\"AQID\"}";
    wa_node_t *n = wa_node_new("notification");
    wa_node_set_attr(n, "type", "passkey_prologue_request");
    wa_passkey_options_t o;
    assert_int_equal(wa_passkey_parse_request(n, &o), WA_PASSKEY_EINVAL);
    wa_node_t *c = wa_node_add(n, "passkey_request_options");
    assert_int_equal(wa_passkey_parse_request(n, &o), WA_PASSKEY_EINVAL);
    wa_node_set_bytes(c, json, strlen(json));
    assert_int_equal(wa_passkey_parse_request(n, &o), 0);
    assert_string_equal(o.json, json);
    assert_int_equal(o.challenge_len, 3);
    wa_passkey_options_free(&o);
    wa_node_set_string(c, json); /* string content works too */
    assert_int_equal(wa_passkey_parse_request(n, &o), 0);
    wa_passkey_options_free(&o);
    wa_node_set_bytes(c, "{", 1);
    assert_int_equal(wa_passkey_parse_request(n, &o), WA_PASSKEY_EINVAL);
    wa_node_free(n);
    assert_int_equal(wa_passkey_parse_request(NULL, &o), WA_PASSKEY_EINVAL);
}

static void test_ref(void **state)
{
    (void)state;
    char out[WA_PASSKEY_REF_MAX + 1];
    wa_node_t *iq = wa_node_new("iq");
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), WA_PASSKEY_EINVAL);
    wa_node_t *r = wa_node_add(iq, "ref");
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), WA_PASSKEY_EINVAL);
    wa_node_set_bytes(r, "2@abc,def", 9);
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), 0);
    assert_string_equal(out, "2@abc,def");
    assert_int_equal(wa_passkey_parse_ref(iq, out, 9), WA_PASSKEY_EINVAL);
    wa_node_set_bytes(r, "a\0b", 3);
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), WA_PASSKEY_EINVAL);
    wa_node_set_bytes(r, "a\nb", 3);
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), WA_PASSKEY_EINVAL);
    char big[WA_PASSKEY_REF_MAX + 1];
    memset(big, 'x', sizeof(big));
    wa_node_set_bytes(r, big, sizeof(big));
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), WA_PASSKEY_EINVAL);
    wa_node_set_bytes(r, big, WA_PASSKEY_REF_MAX);
    assert_int_equal(wa_passkey_parse_ref(iq, out, sizeof(out)), 0);
    wa_node_free(iq);
    assert_int_equal(wa_passkey_parse_ref(NULL, out, sizeof(out)), WA_PASSKEY_EINVAL);
}

/* --- assertions --- */

/* clientDataJSON {"type":"webauthn.get","challenge":"AQID","origin":...} */
#define CDJ                                                                                        \
    "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiQVFJRCIsIm9yaWdpbiI6Imh0dHBzOi8vd2ViLndoYXRz" \
    "YXBwLmNvbSJ9"
/* 37 bytes of authenticatorData */
#define AUTH "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8FAAAAAQ"

static char *assertion(const char *id, const char *raw, const char *type, const char *cdj,
                       const char *auth, const char *sig, const char *uh)
{
    char *s = malloc(8192);
    int n = sprintf(s, "{");
    if (id)
        n += sprintf(s + n, "\"id\":%s,", id);
    if (raw)
        n += sprintf(s + n, "\"rawId\":%s,", raw);
    if (type)
        n += sprintf(s + n, "\"type\":%s,", type);
    n += sprintf(s + n, "\"authenticatorAttachment\":\"platform\",\"clientExtensionResults\":{},");
    n += sprintf(s + n, "\"response\":{");
    if (cdj)
        n += sprintf(s + n, "\"clientDataJSON\":%s,", cdj);
    if (auth)
        n += sprintf(s + n, "\"authenticatorData\":%s,", auth);
    if (uh)
        n += sprintf(s + n, "\"userHandle\":%s,", uh);
    n += sprintf(s + n, "\"signature\":%s}}", sig ? sig : "1");
    return s;
}

static int parse(char *json, wa_passkey_assertion_t *a)
{
    int rc = wa_passkey_parse_assertion(json, strlen(json), a);
    free(json);
    return rc;
}

static void test_assertion(void **state)
{
    (void)state;
    wa_passkey_assertion_t a;
    char *j = assertion("\"Y3JlZC0x\"", "\"Y3JlZC0x\"", "\"public-key\"", "\"" CDJ "\"",
                        "\"" AUTH "\"", "\"MEQCIA\"", "\"dXNlcg\"");
    assert_int_equal(parse(j, &a), 0);
    assert_int_equal(a.cred_id_len, 6);
    assert_memory_equal(a.cred_id, "cred-1", 6);
    assert_int_equal(a.challenge_len, 3);
    assert_memory_equal(a.challenge, "\x01\x02\x03", 3);
    /* whatsmeow's shape: these members, in this order, unpadded */
    assert_string_equal(a.json,
                        "{\"id\":\"Y3JlZC0x\",\"rawId\":\"Y3JlZC0x\",\"type\":\"public-key\","
                        "\"response\":{\"clientDataJSON\":\"" CDJ "\",\"authenticatorData\":\"" AUTH
                        "\",\"signature\":\"MEQCIA\",\"userHandle\":\"dXNlcg\"}}");
    assert_int_equal(a.json_len, strlen(a.json));
    wa_passkey_assertion_free(&a);

    /* no rawId, no type, padded values, no userHandle */
    j = assertion("\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQCIA==\"", NULL);
    assert_int_equal(parse(j, &a), 0);
    assert_non_null(strstr(a.json, "\"signature\":\"MEQCIA\",\"userHandle\":null}"));
    wa_passkey_assertion_free(&a);
    j = assertion("\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQCIA\"", "null");
    assert_int_equal(parse(j, &a), 0);
    wa_passkey_assertion_free(&a);

    /* each part wrong in turn */
    struct {
        const char *id, *raw, *type, *cdj, *auth, *sig, *uh;
    } bad[] = {
        {NULL, "\"Y3JlZC0x\"", NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"5", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", "\"Y3JlZC0y\"", NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", "\"Y3JlZC0\"", NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, "\"password\"", "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, "1", "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, NULL, "\"" AUTH "\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"e30\"", "\"" AUTH "\"", "\"MEQ\"", NULL},
        /* {"type":"webauthn.create","challenge":"AQID"} */
        {"\"Y3JlZC0x\"", NULL, NULL,
         "\"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiQVFJRCJ9\"", "\"" AUTH "\"",
         "\"MEQ\"", NULL},
        /* {"type":"webauthn.get"} */
        {"\"Y3JlZC0x\"", NULL, NULL, "\"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0\"", "\"" AUTH "\"",
         "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", NULL, "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"AAECAwQ\"", "\"MEQ\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"M+Q\"", NULL},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", "5"},
        {"\"Y3JlZC0x\"", NULL, NULL, "\"" CDJ "\"", "\"" AUTH "\"", "\"MEQ\"", "\"A\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = assertion(bad[i].id, bad[i].raw, bad[i].type, bad[i].cdj, bad[i].auth, bad[i].sig,
                      bad[i].uh);
        assert_int_equal(parse(j, &a), WA_PASSKEY_EINVAL);
        assert_null(a.json);
    }
    static const char *const junk[] = {
        "", "{", "[]", "{\"id\":\"AA\",\"response\":[]}", "null", "{\"id\":\"AA\"}"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(wa_passkey_parse_assertion(junk[i], strlen(junk[i]), &a),
                         WA_PASSKEY_EINVAL);
    assert_int_equal(wa_passkey_parse_assertion(NULL, 0, &a), WA_PASSKEY_EINVAL);
    char *big = malloc(WA_PASSKEY_JSON_MAX + 2);
    memset(big, ' ', WA_PASSKEY_JSON_MAX + 1);
    big[0] = '{';
    big[WA_PASSKEY_JSON_MAX] = '}';
    assert_int_equal(wa_passkey_parse_assertion(big, WA_PASSKEY_JSON_MAX + 1, &a),
                     WA_PASSKEY_EINVAL);
    free(big);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(wa_passkey_strerror(WA_PASSKEY_OK), "ok");
    assert_non_null(strstr(wa_passkey_strerror(WA_PASSKEY_EINVAL), "malformed"));
    assert_non_null(wa_passkey_strerror(WA_PASSKEY_EFAIL));
    assert_string_equal(wa_passkey_strerror(42), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_prologue),
        cmocka_unit_test(test_continuation_and_code),
        cmocka_unit_test(test_encryption),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_request_node),
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_assertion),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
