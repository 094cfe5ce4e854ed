/* Unit tests of the fake server's hash map (tests/fakewa/map.h): put, get,
 * replace, delete, binary keys, and growth to 100,000 entries with every
 * key still found once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/fakewa/map.h"

static void basics(void **state)
{
    (void)state;
    fakewa_map_t *m = fakewa_map_new();
    assert_non_null(m);
    int a = 1, b = 2;
    assert_null(fakewa_map_get(m, "x", 1));
    assert_int_equal(fakewa_map_put(m, "x", 1, &a), 0);
    assert_ptr_equal(fakewa_map_get(m, "x", 1), &a);
    assert_null(fakewa_map_get(m, "xy", 2)); /* a longer key is another key */
    assert_null(fakewa_map_get(m, "", 0));
    assert_int_equal(fakewa_map_put(m, "x", 1, &b), 0); /* replaces */
    assert_ptr_equal(fakewa_map_get(m, "x", 1), &b);
    assert_int_equal(fakewa_map_count(m), 1);
    const uint8_t k1[32] = {0}, k2[32] = {[31] = 1}; /* binary keys with zero bytes */
    assert_int_equal(fakewa_map_put(m, k1, 32, &a), 0);
    assert_int_equal(fakewa_map_put(m, k2, 32, &b), 0);
    assert_ptr_equal(fakewa_map_get(m, k1, 32), &a);
    assert_ptr_equal(fakewa_map_get(m, k2, 32), &b);
    assert_ptr_equal(fakewa_map_del(m, k1, 32), &a);
    assert_null(fakewa_map_get(m, k1, 32));
    assert_null(fakewa_map_del(m, k1, 32));
    assert_ptr_equal(fakewa_map_get(m, k2, 32), &b);
    assert_int_equal(fakewa_map_count(m), 2);
    fakewa_map_free(m);
    fakewa_map_free(NULL);
}

static void many(void **state)
{
    (void)state;
    enum { N = 100000 };
    static int vals[N];
    fakewa_map_t *m = fakewa_map_new();
    assert_non_null(m);
    char k[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof(k), "1555%07d:%d@s.whatsapp.net", i, i % 7);
        assert_int_equal(fakewa_map_put(m, k, (size_t)n, &vals[i]), 0);
    }
    assert_int_equal(fakewa_map_count(m), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof(k), "1555%07d:%d@s.whatsapp.net", i, i % 7);
        assert_ptr_equal(fakewa_map_get(m, k, (size_t)n), &vals[i]);
    }
    for (int i = 0; i < N; i += 2) {
        int n = snprintf(k, sizeof(k), "1555%07d:%d@s.whatsapp.net", i, i % 7);
        assert_ptr_equal(fakewa_map_del(m, k, (size_t)n), &vals[i]);
    }
    assert_int_equal(fakewa_map_count(m), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof(k), "1555%07d:%d@s.whatsapp.net", i, i % 7);
        if (i % 2)
            assert_ptr_equal(fakewa_map_get(m, k, (size_t)n), &vals[i]);
        else
            assert_null(fakewa_map_get(m, k, (size_t)n));
    }
    fakewa_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basics),
        cmocka_unit_test(many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
