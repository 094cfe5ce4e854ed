/* Unit tests of the browser guards (server/guard.c): which Host names the
 * service answers to (DNS rebinding: an attacker's name resolving to
 * 127.0.0.1 must be refused) and how an Origin relates to the service
 * (same origin, listed, "*" only, foreign). Regression for issue 13 point 1:
 * before it, every Host and every Origin was accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "server/guard.h"

static int host(const guard_t *g, const char *h)
{
    return guard_host_ok(g, h, strlen(h));
}

static guard_origin_t origin(const guard_t *g, const char *o, const char *h)
{
    return guard_origin(g, o, o ? strlen(o) : 0, h, h ? strlen(h) : 0);
}

static void test_loopback_names(void **state)
{
    (void)state;
    guard_t g = {"127.0.0.1", NULL, NULL};
    assert_true(host(&g, "127.0.0.1:3000"));
    assert_true(host(&g, "127.0.0.1"));
    assert_true(host(&g, "127.1.2.3:80"));
    assert_true(host(&g, "localhost:3000"));
    assert_true(host(&g, "LOCALHOST"));
    assert_true(host(&g, "[::1]:3000"));
    assert_true(host(&g, "[::1]"));
    /* DNS rebinding: an attacker's name resolving to 127.0.0.1 */
    assert_false(host(&g, "rebind.evil.example:3000"));
    assert_false(host(&g, "localhost.evil.example"));
    assert_false(host(&g, "127.0.0.1.evil.example"));
    /* other addresses when bound to loopback */
    assert_false(host(&g, "10.0.0.5:3000"));
    assert_false(host(&g, "[fe80::1]:3000"));
}

static void test_malformed_hosts(void **state)
{
    (void)state;
    guard_t g = {"127.0.0.1", "*", NULL};
    assert_false(host(&g, ""));
    assert_false(host(&g, ":3000"));
    assert_false(host(&g, "localhost:"));
    assert_false(host(&g, "localhost:30x0"));
    assert_false(host(&g, "localhost:123456"));
    assert_false(host(&g, "::1"));
    assert_false(host(&g, "[::1"));
    assert_false(host(&g, "[::1]x"));
    assert_false(host(&g, "a b"));
    assert_false(host(&g, "user@localhost"));
    assert_false(guard_host_ok(&g, NULL, 0));
}

static void test_bind_address_and_allowed(void **state)
{
    (void)state;
    guard_t g = {"192.168.1.10", "gw.example.org, Other.Example:8443", NULL};
    assert_true(host(&g, "192.168.1.10:3000"));
    assert_false(host(&g, "192.168.1.11:3000"));
    assert_true(host(&g, "gw.example.org:3000"));
    assert_true(host(&g, "GW.EXAMPLE.ORG"));
    assert_true(host(&g, "other.example"));
    assert_false(host(&g, "example.org"));
    assert_false(host(&g, "xgw.example.org"));

    /* a wildcard bind address accepts any IP literal, never a name */
    guard_t w4 = {"0.0.0.0", NULL, NULL}, w6 = {"::", NULL, NULL};
    assert_true(host(&w4, "10.1.2.3:3000"));
    assert_true(host(&w6, "[2001:db8::7]:3000"));
    assert_false(host(&w4, "evil.example:3000"));
    assert_false(host(&w6, "evil.example"));

    guard_t v6 = {"2001:db8::1", NULL, NULL};
    assert_true(host(&v6, "[2001:db8::1]:3000"));
    assert_true(host(&v6, "[2001:DB8:0::1]"));
    assert_false(host(&v6, "[2001:db8::2]"));

    guard_t any = {"127.0.0.1", "*", NULL};
    assert_true(host(&any, "whatever.example:1"));
}

static void test_origin_classes(void **state)
{
    (void)state;
    guard_t g = {"127.0.0.1", NULL, "http://dash.example, https://ops.example:8443"};
    assert_int_equal(origin(&g, NULL, "127.0.0.1:3000"), GUARD_ORIGIN_NONE);
    assert_int_equal(origin(&g, "http://127.0.0.1:3000", "127.0.0.1:3000"), GUARD_ORIGIN_SAME);
    assert_int_equal(origin(&g, "https://LOCALHOST:3000", "localhost:3000"), GUARD_ORIGIN_SAME);
    /* same host, other port: another origin */
    assert_int_equal(origin(&g, "http://127.0.0.1:8080", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
    assert_int_equal(origin(&g, "http://dash.example", "127.0.0.1:3000"), GUARD_ORIGIN_LISTED);
    assert_int_equal(origin(&g, "https://ops.example:8443", "127.0.0.1:3000"), GUARD_ORIGIN_LISTED);
    assert_int_equal(origin(&g, "https://dash.example", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
    assert_int_equal(origin(&g, "https://evil.example", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
    assert_int_equal(origin(&g, "null", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
    assert_int_equal(origin(&g, "", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
    assert_int_equal(origin(&g, "http://", ""), GUARD_ORIGIN_FOREIGN);

    guard_t star = {"127.0.0.1", NULL, "*"};
    assert_int_equal(origin(&star, "https://evil.example", "127.0.0.1:3000"), GUARD_ORIGIN_ANY);
    assert_int_equal(origin(&star, "http://127.0.0.1:3000", "127.0.0.1:3000"), GUARD_ORIGIN_SAME);

    guard_t none = {"127.0.0.1", NULL, NULL};
    assert_int_equal(origin(&none, "https://evil.example", "127.0.0.1:3000"), GUARD_ORIGIN_FOREIGN);
}

static void test_state_changes(void **state)
{
    (void)state;
    for (int key = 0; key < 2; key++) {
        assert_true(guard_may_change_state(GUARD_ORIGIN_NONE, key));
        assert_true(guard_may_change_state(GUARD_ORIGIN_SAME, key));
        assert_true(guard_may_change_state(GUARD_ORIGIN_LISTED, key));
        /* a foreign page is refused, key or no key */
        assert_false(guard_may_change_state(GUARD_ORIGIN_FOREIGN, key));
    }
    /* "*" lets any page through only to the key check */
    assert_false(guard_may_change_state(GUARD_ORIGIN_ANY, 0));
    assert_true(guard_may_change_state(GUARD_ORIGIN_ANY, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_names),
        cmocka_unit_test(test_malformed_hosts),
        cmocka_unit_test(test_bind_address_and_allowed),
        cmocka_unit_test(test_origin_classes),
        cmocka_unit_test(test_state_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
