/* Unit tests of the pure pieces of webhook delivery (session/webhook/
 * check.c): the Standard Webhooks signature against the specification's
 * published vector, the secret format, the retry delay (doubling, cap,
 * jitter bounds), URL validation and the private-address classification
 * behind the SSRF refusal. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "session/webhook/webhook.h"

static void test_signature_vector(void **state)
{
    (void)state;
    /* the vector of the Standard Webhooks specification's libraries */
    uint8_t key[WH_SECRET_MAX];
    size_t kl;
    assert_int_equal(wh_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &kl), 0);
    assert_int_equal(kl, 24);
    const char *body = "{\"test\": 2432232314}";
    char sig[WH_SIG_MAX];
    assert_int_equal(
        wh_sign(key, kl, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig), 0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void test_secret_format(void **state)
{
    (void)state;
    uint8_t key[WH_SECRET_MAX];
    size_t kl;
    assert_int_equal(wh_secret_parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &kl), WH_EINVAL);
    assert_int_equal(wh_secret_parse("whsec_", key, &kl), WH_EINVAL);
    assert_int_equal(wh_secret_parse("whsec_c2hvcnQ=", key, &kl), WH_EINVAL); /* 5 bytes */
    assert_int_equal(wh_secret_parse("whsec_!!!!", key, &kl), WH_EINVAL);
    assert_int_equal(wh_secret_parse(NULL, key, &kl), WH_EINVAL);
    /* padding optional: 16 bytes = 22 chars + "==" */
    assert_int_equal(wh_secret_parse("whsec_AAAAAAAAAAAAAAAAAAAAAA", key, &kl), 0);
    assert_int_equal(kl, 16);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(wh_backoff_ms(0, 1000, 600000, 0), 0);
    /* jitter: between half and all of base * 2^(n-1) */
    for (uint32_t n = 1; n <= 12; n++) {
        uint64_t full = 1000ull << (n - 1);
        if (full > 600000)
            full = 600000;
        assert_int_equal(wh_backoff_ms(n, 1000, 600000, 0), full - full / 2);
        assert_int_equal(wh_backoff_ms(n, 1000, 600000, full / 2), full);
        for (uint64_t r = 0; r < 1000; r += 37) {
            uint64_t d = wh_backoff_ms(n, 1000, 600000, r * 7919);
            assert_true(d >= full - full / 2 && d <= full);
        }
    }
    assert_true(wh_backoff_ms(100, 1000, 600000, 12345) <= 600000); /* no overflow */
    assert_true(wh_backoff_ms(UINT32_MAX, 1000, 600000, 1) <= 600000);
}

static void url_ok(const char *url, int allow, const char *host)
{
    char h[256];
    const char *why = NULL;
    int rc = wh_url_check(url, allow, h, sizeof(h), &why);
    if (rc)
        fail_msg("%s refused: %s", url, why);
    assert_string_equal(h, host);
}

static void url_bad(const char *url, int allow, int code)
{
    char h[256];
    const char *why = NULL;
    int rc = wh_url_check(url, allow, h, sizeof(h), &why);
    if (rc != code || !why)
        fail_msg("%s: %d, expected %d", url, rc, code);
}

static void test_url_check(void **state)
{
    (void)state;
    url_ok("https://hooks.example.com/wa?x=1", 0, "hooks.example.com");
    url_ok("http://93.184.216.34:8080/x", 0, "93.184.216.34");
    url_ok("https://[2606:2800:220:1::1]/x", 0, "2606:2800:220:1::1");
    url_ok("http://127.0.0.1:9/x", 1, "127.0.0.1"); /* allowed with WEBHOOK_ALLOW_PRIVATE */
    url_bad("", 0, WH_EINVAL);
    url_bad("not a url", 0, WH_EINVAL);
    url_bad("ftp://example.com/", 0, WH_EINVAL);
    url_bad("file:///etc/passwd", 0, WH_EINVAL);
    url_bad("gopher://example.com/", 1, WH_EINVAL);
    url_bad("https://user:pw@example.com/", 0, WH_EINVAL);
    url_bad("https://user@example.com/", 1, WH_EINVAL);
    url_bad("https://example.com/#frag", 0, WH_EINVAL);
    url_bad("https:///nohost", 0, WH_EINVAL);
    url_bad("https://exa mple.com/", 0, WH_EINVAL);
    url_bad("http://127.0.0.1/", 0, WH_EPRIVATE);
    url_bad("http://localhost:8080/", 0, WH_EPRIVATE);
    url_bad("http://api.localhost/", 0, WH_EPRIVATE);
    url_bad("http://10.1.2.3/", 0, WH_EPRIVATE);
    url_bad("http://172.20.0.1/", 0, WH_EPRIVATE);
    url_bad("http://192.168.1.1/", 0, WH_EPRIVATE);
    url_bad("http://100.64.0.1/", 0, WH_EPRIVATE);
    url_bad("http://169.254.169.254/latest/meta-data/", 0, WH_EPRIVATE);
    url_bad("http://0.0.0.0/", 0, WH_EPRIVATE);
    url_bad("http://[::1]/", 0, WH_EPRIVATE);
    url_bad("http://[fd00:ec2::254]/", 0, WH_EPRIVATE);
    url_bad("http://[fe80::1]/", 0, WH_EPRIVATE);
    url_bad("http://[::ffff:127.0.0.1]/", 0, WH_EPRIVATE);
    url_bad("http://2130706433/", 0, WH_EPRIVATE); /* 127.0.0.1 as one number */
    url_bad("http://0x7f.1/", 0, WH_EPRIVATE);
    char longurl[WH_URL_MAX + 40];
    memset(longurl, 'a', sizeof(longurl));
    memcpy(longurl, "https://x.example/", 18);
    longurl[sizeof(longurl) - 1] = 0;
    url_bad(longurl, 0, WH_EINVAL);
}

static int v4(const char *a)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return wh_addr_private((struct sockaddr *)&in, sizeof(in));
}

static int v6(const char *a)
{
    struct sockaddr_in6 in = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, a, &in.sin6_addr), 1);
    return wh_addr_private((struct sockaddr *)&in, sizeof(in));
}

static void test_private_addresses(void **state)
{
    (void)state;
    const char *priv4[] = {"127.0.0.1",   "127.255.0.9",     "10.0.0.1",   "172.16.0.1",
                           "172.31.9.9",  "192.168.0.1",     "100.64.0.1", "100.127.255.254",
                           "169.254.1.1", "169.254.169.254", "0.0.0.0",    "224.0.0.1",
                           "240.0.0.1",   "255.255.255.255", "198.18.0.1", "192.0.2.1",
                           "192.0.0.8",   "198.51.100.7",    "203.0.113.9"};
    for (size_t i = 0; i < sizeof(priv4) / sizeof(priv4[0]); i++)
        if (!v4(priv4[i]))
            fail_msg("%s not private", priv4[i]);
    const char *pub4[] = {"8.8.8.8",        "93.184.216.34", "172.15.255.255", "172.32.0.1",
                          "100.63.255.255", "100.128.0.1",   "1.1.1.1"};
    for (size_t i = 0; i < sizeof(pub4) / sizeof(pub4[0]); i++)
        if (v4(pub4[i]))
            fail_msg("%s private", pub4[i]);
    const char *priv6[] = {"::",
                           "::1",
                           "fc00::1",
                           "fd12:3456::1",
                           "fe80::1",
                           "fec0::1",
                           "ff02::1",
                           "::ffff:10.0.0.1",
                           "::ffff:127.0.0.1",
                           "64:ff9b::a00:1",
                           "2002:7f00:1::1",
                           "2001:db8::1",
                           "100::1"};
    for (size_t i = 0; i < sizeof(priv6) / sizeof(priv6[0]); i++)
        if (!v6(priv6[i]))
            fail_msg("%s not private", priv6[i]);
    const char *pub6[] = {"2606:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8",
                          "64:ff9b::808:808"};
    for (size_t i = 0; i < sizeof(pub6) / sizeof(pub6[0]); i++)
        if (v6(pub6[i]))
            fail_msg("%s private", pub6[i]);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(wh_addr_private(&sa, sizeof(sa)), 1);
    assert_int_equal(wh_addr_private(NULL, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vector),  cmocka_unit_test(test_secret_format),
        cmocka_unit_test(test_backoff),           cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_private_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
