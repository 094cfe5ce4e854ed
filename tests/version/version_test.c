/* Unit tests of session/wa/version: the sw.js parser (the real escaped-JSON
 * form, the tolerant forms, malformed, truncated and huge inputs, revisions
 * out of range), the sw.js URL derived from WA_URL (IPv6 literals, ports,
 * refusals), comparison, strict parsing and formatting of versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session/wa/version.h"

/* Parses `s` from an exactly sized heap copy, so ASan sees any over-read. */
static int parse_exact(const char *s, size_t len, uint32_t *rev)
{
    uint8_t *b = malloc(len ? len : 1);
    memcpy(b, s, len);
    int rc = wa_version_parse_sw(b, len, rev);
    free(b);
    return rc;
}

static int parse(const char *s, uint32_t *rev)
{
    return parse_exact(s, strlen(s), rev);
}

static void test_real_sw_js(void **state)
{
    (void)state;
    uint32_t r = 0;
    const char *sw = "__DEV__=0;/*FB_PKG_DELIM*/\n"
                     "self.__swData=JSON.parse(/*BTDS*/\"{\\\"dynamic_data\\\":{\\\"SiteData\\\":"
                     "{\\\"server_revision\\\":1047769893,\\\"client_revision\\\":1047769893,"
                     "\\\"push_phase\\\":\\\"C3\\\",\\\"__spin_r\\\":1047769893}}}\");\n"
                     "importScripts(\"https:\\/\\/static.whatsapp.net\\/rsrc.php\\/v4\\/x.js\");";
    assert_int_equal(parse(sw, &r), 0);
    assert_int_equal(r, 1047769893u);
    /* server_revision differs: client_revision is the one */
    assert_int_equal(parse("{\\\"server_revision\\\":5,\\\"client_revision\\\":7}", &r), 0);
    assert_int_equal(r, 7);
    assert_int_equal(parse("{\"client_revision\":123}", &r), 0);
    assert_int_equal(r, 123);
}

static void test_tolerant_forms(void **state)
{
    (void)state;
    uint32_t r = 0;
    assert_int_equal(parse("client_revision:12345;", &r), 0); /* unquoted key */
    assert_int_equal(r, 12345);
    assert_int_equal(parse("var x = {\"client_revision\": \"123456\"};", &r), 0); /* quoted value */
    assert_int_equal(r, 123456);
    assert_int_equal(parse("{\"client_revision\" :\n\t 42}", &r), 0);
    assert_int_equal(r, 42);
    assert_int_equal(parse("{\\\"client_revision\\\": \\\"99\\\"}", &r), 0);
    assert_int_equal(r, 99);
    assert_int_equal(parse("{client_revision: 8}", &r), 0);
    assert_int_equal(r, 8);
    assert_int_equal(parse("\"client_revision\":000123,", &r), 0);
    assert_int_equal(r, 123);
    assert_int_equal(parse("\"client_revision\":4294967295", &r), 0);
    assert_int_equal(r, UINT32_MAX);
}

static void test_first_well_formed_wins(void **state)
{
    (void)state;
    uint32_t r = 0;
    assert_int_equal(parse("\"client_revision_time\":5,\"client_revision\":77", &r), 0);
    assert_int_equal(r, 77);
    assert_int_equal(parse("xclient_revision:5 client_revision:6", &r), 0);
    assert_int_equal(r, 6);
    assert_int_equal(parse("\"client_revision:1 and later \"client_revision\":2", &r), 0);
    assert_int_equal(r, 2);
    assert_int_equal(parse("// client_revision is below\n\"client_revision\":3", &r), 0);
    assert_int_equal(r, 3);
    assert_int_equal(parse("\"client_revision\":11,\"client_revision\":22", &r), 0);
    assert_int_equal(r, 11);
}

static void test_not_found(void **state)
{
    (void)state;
    uint32_t r = 77;
    const char *none[] = {"",
                          "no version info here",
                          "... assets-manifest-98765 ...", /* whatsapp-rust's 0 fallback: no */
                          "\"client_revision\":null",
                          "\"client_revision\":\"abc\"",
                          "\"client_revision\":-5",
                          "\"client_revision\"=5",
                          "'client_revision':5",
                          "\"client_revision:5",
                          "client_revisio",
                          "\"client_revision\"",
                          "\"client_revision\":",
                          "\"client_revision\": \"",
                          "\"client_revision\\",
                          "client_revision_x:5"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        assert_int_equal(parse(none[i], &r), WA_VERSION_ENOTFOUND);
    assert_int_equal(r, 77); /* untouched */
    /* NULs are bytes like any other: they do not end the document */
    static const char nul[] = "\0\0\"client_revision\":\0 5\0\"client_revision\":6";
    assert_int_equal(parse_exact(nul, sizeof(nul) - 1, &r), 0);
    assert_int_equal(r, 6);
    assert_int_equal(wa_version_parse_sw(NULL, 0, &r), WA_VERSION_EINVAL);
    assert_int_equal(wa_version_parse_sw((const uint8_t *)"x", 1, NULL), WA_VERSION_EINVAL);
}

static void test_out_of_range(void **state)
{
    (void)state;
    uint32_t r = 77;
    assert_int_equal(parse("\"client_revision\":4294967296,", &r), WA_VERSION_ERANGE);
    assert_int_equal(parse("\"client_revision\":0,", &r), WA_VERSION_ERANGE);
    assert_int_equal(parse("\"client_revision\":99999999999999999999999999", &r),
                     WA_VERSION_ERANGE);
    /* the first well-formed one decides: a later good one does not rescue it */
    assert_int_equal(parse("\"client_revision\":0,\"client_revision\":5", &r), WA_VERSION_ERANGE);
    assert_int_equal(r, 77);
}

static void test_huge_inputs(void **state)
{
    (void)state;
    size_t n = 2u << 20;
    char *b = malloc(n);
    uint32_t r = 0;
    /* a megabyte-long number */
    memcpy(b, "\"client_revision\":", 18);
    memset(b + 18, '9', n - 18);
    assert_int_equal(parse_exact(b, n, &r), WA_VERSION_ERANGE);
    /* near-misses everywhere, then the real one at the very end */
    static const char miss[] = "\"client_revision_\"";
    size_t m = sizeof(miss) - 1, i = 0;
    for (; i + m <= n - 32; i += m)
        memcpy(b + i, miss, m);
    memset(b + i, ' ', n - i);
    memcpy(b + n - 22, "\"client_revision\":424", 22);
    assert_int_equal(parse_exact(b, n, &r), 0);
    assert_int_equal(r, 424);
    /* the key cut by the end of the buffer */
    memcpy(b + n - 22, "          \"client_revi", 22);
    assert_int_equal(parse_exact(b, n, &r), WA_VERSION_ENOTFOUND);
    free(b);
}

static void check_url(const char *in, const char *want)
{
    char out[256];
    int rc = wa_version_sw_url(in, out, sizeof(out));
    if (want) {
        assert_int_equal(rc, 0);
        assert_string_equal(out, want);
    } else {
        assert_int_equal(rc, WA_VERSION_EINVAL);
    }
}

static void test_sw_url(void **state)
{
    (void)state;
    check_url("wss://web.whatsapp.com/ws/chat", "https://web.whatsapp.com/sw.js");
    check_url("ws://127.0.0.1:8080/ws/chat", "http://127.0.0.1:8080/sw.js");
    check_url("ws://[::1]:9000/ws/chat", "http://[::1]:9000/sw.js");
    check_url("wss://[2001:db8::1]/ws/chat", "https://[2001:db8::1]/sw.js");
    check_url("ws://[fe80::1%25eth0]:80/", "http://[fe80::1%25eth0]:80/sw.js");
    check_url("WSS://Web.WhatsApp.com", "https://Web.WhatsApp.com/sw.js");
    check_url("ws://localhost:1?x=1", "http://localhost:1/sw.js");
    check_url("ws://my-host.example_1:65535#f", "http://my-host.example_1:65535/sw.js");
    const char *bad[] = {"http://web.whatsapp.com/ws/chat",
                         "",
                         "wss://",
                         "wss:///ws/chat",
                         "ws://user@host/ws",
                         "ws://[::1/ws",
                         "ws://[]:1/",
                         "ws://[::1]x/",
                         "ws://[::1]:/",
                         "ws://host:/",
                         "ws://:80/",
                         "ws://host:0/",
                         "ws://host:65536/",
                         "ws://host:12a/",
                         "ws://ho st/",
                         "ws://host$/",
                         "ws://[::1]]/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_url(bad[i], NULL);
    char small[24];
    assert_int_equal(wa_version_sw_url("wss://web.whatsapp.com/ws/chat", small, sizeof(small)),
                     WA_VERSION_EINVAL);
    assert_int_equal(wa_version_sw_url(NULL, small, sizeof(small)), WA_VERSION_EINVAL);
}

static void test_compare_parse_format(void **state)
{
    (void)state;
    wa_version_t a = {2, 3000, 1047769893}, b = {2, 3000, 1047769894}, c = {2, 3001, 1},
                 d = {3, 0, 0};
    assert_true(wa_version_cmp(&a, &b) < 0);
    assert_true(wa_version_cmp(&b, &a) > 0);
    assert_int_equal(wa_version_cmp(&a, &a), 0);
    assert_true(wa_version_cmp(&b, &c) < 0);
    assert_true(wa_version_cmp(&c, &d) < 0);
    wa_version_t big = {2, 3000, UINT32_MAX};
    assert_true(wa_version_cmp(&a, &big) < 0); /* no signed wrap-around */
    wa_version_t v = wa_version_from_revision(1047769893);
    assert_int_equal(wa_version_cmp(&v, &a), 0);
    char s[WA_VERSION_STRLEN];
    wa_version_format(&big, s, sizeof(s));
    assert_string_equal(s, "2.3000.4294967295");
    wa_version_t p;
    assert_int_equal(wa_version_parse("2.3000.1047769893", &p), 0);
    assert_int_equal(wa_version_cmp(&p, &a), 0);
    assert_int_equal(wa_version_parse(WA_PAYLOAD_DEFAULT_VERSION, &p), 0);
    const char *bad[] = {"",
                         "2",
                         "2.3000",
                         "2.3000.",
                         ".3000.1",
                         "2.3000.1.",
                         "2.3000.1x",
                         "2.3000.-1",
                         "2.3000.+1",
                         " 2.3000.1",
                         "2..1",
                         "2.3000.1 ",
                         "2.3000.4294967296",
                         "2.3000.00000000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wa_version_parse(bad[i], &p), WA_VERSION_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_sw_js),
        cmocka_unit_test(test_tolerant_forms),
        cmocka_unit_test(test_first_well_formed_wins),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_huge_inputs),
        cmocka_unit_test(test_sw_url),
        cmocka_unit_test(test_compare_parse_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
