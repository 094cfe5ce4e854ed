/* Tests of api/qr.c: a 1-bit grayscale PNG with a 4-module quiet zone that
 * decodes (zbarimg) to exactly the input, base64 per RFC 4648, the data URL,
 * terminal rendering, and errors for impossible input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/qr.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes the PNG and returns what zbarimg decodes from it. */
static char *zbar(const uint8_t *png, size_t len)
{
    char path[600], cmd[800];
    snprintf(path, sizeof(path), "%s/qr.png",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    FILE *f = fopen(path, "wb");
    fwrite(png, 1, len, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "zbarimg --raw -q '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    char *out = calloc(1, 4096);
    size_t n = fread(out, 1, 4095, p);
    pclose(p);
    while (n && (out[n - 1] == '\n'))
        out[--n] = 0;
    return out;
}

static void test_png_decodes(void **state)
{
    (void)state;
    const char *inputs[] = {
        "hello",
        "https://wa.me/settings/linked_devices#2@Ab+Cd/"
        "Ef==Gh0123456789abcdefghijklmnopqrstuvwxyzABCD"
        "EFGHIJKLMNOP,lQxJ34K+R0Hz9rqbyaHBdAt/zqJjYbcGyQat/"
        "w4G+XI=,exclGTrr1gII2upxvTQ5UeGL1YYSzgK1XW"
        "E08A3F9W8=,UbjYIJ0TcoCIYakHRBj7M+VW21LlkD+8GtbkZiPtnMw=,1",
        "a,b,c=,+/+/",
    };
    for (size_t i = 0; i < 3; i++) {
        uint8_t *png;
        size_t len;
        int modules;
        assert_int_equal(api_qr_png(inputs[i], 5, &png, &len, &modules), 0);
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        assert_memory_equal(png, sig, 8);
        assert_memory_equal(png + 12, "IHDR", 4);
        assert_int_equal(be32(png + 16), (uint32_t)(modules + 2 * API_QR_QUIET_ZONE) * 5);
        assert_int_equal(be32(png + 20), be32(png + 16));
        assert_int_equal(png[24], 1); /* bit depth 1 */
        assert_int_equal(png[25], 0); /* grayscale */
        char *dec = zbar(png, len);
        assert_string_equal(dec, inputs[i]);
        free(dec);
        char *url = api_qr_data_url(png, len);
        assert_non_null(url);
        assert_int_equal(strncmp(url, "data:image/png;base64,", 22), 0);
        assert_int_equal(strlen(url) - 22, 4 * ((len + 2) / 3));
        free(url);
        free(png);
    }
}

static void test_base64_rfc4648(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = api_qr_base64((const uint8_t *)in[i], strlen(in[i]));
        assert_string_equal(b, out[i]);
        free(b);
    }
}

static void test_terminal(void **state)
{
    (void)state;
    int err;
    char *t = api_qr_terminal("https://wa.me/settings/linked_devices#2@x,y,z,w,1", &err);
    assert_non_null(t);
    int lines = 0;
    size_t width = 0, cur = 0;
    for (const unsigned char *p = (const unsigned char *)t; *p;) {
        if (*p == '\n') {
            if (width && cur != width)
                fail_msg("ragged line");
            width = cur;
            cur = 0;
            lines++;
            p++;
        } else if (*p == ' ') {
            cur++;
            p++;
        } else {
            /* only U+2580 upper half, U+2584 lower half, U+2588 full block */
            assert_int_equal(p[0], 0xe2);
            assert_int_equal(p[1], 0x96);
            assert_true(p[2] == 0x80 || p[2] == 0x84 || p[2] == 0x88);
            cur++;
            p += 3;
        }
    }
    assert_int_equal((size_t)lines, (width + 1) / 2); /* two module rows per line */
    free(t);
}

static void test_errors(void **state)
{
    (void)state;
    char *big = malloc(5001);
    memset(big, 'x', 5000);
    big[5000] = 0;
    uint8_t *png;
    size_t len;
    assert_int_equal(api_qr_png(big, 4, &png, &len, NULL), API_QR_ETOOLONG);
    assert_null(png);
    int err;
    assert_null(api_qr_terminal(big, &err));
    assert_int_equal(err, API_QR_ETOOLONG);
    assert_int_equal(api_qr_png("", 4, &png, &len, NULL), API_QR_EINVAL);
    assert_int_equal(api_qr_png("x", 99, &png, &len, NULL), API_QR_EINVAL);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_decodes),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_terminal),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
