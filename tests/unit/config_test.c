/* Unit tests for server/config.c: defaults, environment, flags overriding
 * the environment, and rejection of invalid values with one-line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "server/config.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *env_get(const char *name)
{
    for (const char *const *p = fake_env; p && *p; p += 2)
        if (!strcmp(p[0], name))
            return p[1];
    return NULL;
}

static int load(cfg_t *cfg, const char *const *env, int argc, const char **argv, char *err)
{
    fake_env = env;
    return cfg_load(cfg, argc, (char **)argv, env_get, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *argv[] = {"wa-gateway"};
    assert_int_equal(load(&cfg, NULL, 1, argv, err), 0);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 3000);
    assert_int_equal(cfg.grpc_port, 50051);
    assert_null(cfg.api_key);
    assert_string_equal(cfg.data_dir, "./data");
    assert_string_equal(cfg.wa_url, "wss://web.whatsapp.com/ws/chat");
    assert_int_equal(cfg.wa_root_key_bin[0], 0x14);
    assert_int_equal(cfg.wa_root_key_bin[31], 0x6b);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.help, 0);
    assert_null(cfg.wa_version); /* unset: discovered */
    assert_null(cfg.wa_version_url);
    cfg_free(&cfg);
}

static void test_version_options(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *env[] = {"WA_VERSION", "2.3000.1047769893", "WA_VERSION_URL",
                         "https://mirror.example/sw.js", NULL};
    const char *argv[] = {"x"};
    assert_int_equal(load(&cfg, env, 1, argv, err), 0);
    assert_string_equal(cfg.wa_version, "2.3000.1047769893");
    assert_string_equal(cfg.wa_version_url, "https://mirror.example/sw.js");
    cfg_free(&cfg);
    const char *bad[] = {"--wa-version=2.3000",         "--wa-version=2.3000.-1",
                         "--wa-version=2.3000.1 ",      "--wa-version=2.3000.4294967296",
                         "--wa-version-url=ftp://x/sw", "--wa-version-url=web.whatsapp.com/sw.js"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *a[] = {"x", bad[i]};
        assert_int_equal(load(&cfg, NULL, 2, a, err), -1);
        assert_non_null(strstr(err, "WA_VERSION") ? err : strstr(err, "--wa-version"));
    }
}

static void test_env_then_flags(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *env[] = {"PORT",  "4000",      "API_KEY", "k", "LOG_LEVEL",
                         "debug", "GRPC_PORT", "6000",    NULL};
    const char *argv[] = {"wa-gateway",       "--port",   "5000",
                          "--log-level=warn", "--wa-url", "ws://127.0.0.1:9/ws/chat"};
    assert_int_equal(load(&cfg, env, 6, argv, err), 0);
    assert_int_equal(cfg.port, 5000);
    assert_int_equal(cfg.grpc_port, 6000);
    assert_string_equal(cfg.api_key, "k");
    assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
    assert_string_equal(cfg.wa_url, "ws://127.0.0.1:9/ws/chat");
    cfg_free(&cfg);
}

static void test_invalid_values(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *bad_port[] = {"x", "--port", "70000"};
    assert_int_equal(load(&cfg, NULL, 3, bad_port, err), -1);
    assert_non_null(strstr(err, "--port"));
    assert_null(strchr(err, '\n'));
    const char *env_port[] = {"PORT", "abc", NULL};
    const char *argv[] = {"x"};
    assert_int_equal(load(&cfg, env_port, 1, argv, err), -1);
    assert_non_null(strstr(err, "PORT"));
    const char *bad_key[] = {"x", "--wa-root-key=zz"};
    assert_int_equal(load(&cfg, NULL, 2, bad_key, err), -1);
    const char *bad_url[] = {"x", "--wa-url=http://example"};
    assert_int_equal(load(&cfg, NULL, 2, bad_url, err), -1);
    const char *unknown[] = {"x", "--nope"};
    assert_int_equal(load(&cfg, NULL, 2, unknown, err), -1);
    assert_non_null(strstr(err, "--nope"));
    const char *missing[] = {"x", "--port"};
    assert_int_equal(load(&cfg, NULL, 2, missing, err), -1);
    const char *level[] = {"x", "--log-level=loud"};
    assert_int_equal(load(&cfg, NULL, 2, level, err), -1);
}

/* STORE_URL: unset by default (SQLite in DATA_DIR); sqlite:, postgres://
 * and postgresql:// are taken; anything else is refused without the value
 * in the message (it may hold a password). */
static void test_store_url(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *argv[] = {"x"};
    assert_int_equal(load(&cfg, NULL, 1, argv, err), 0);
    assert_null(cfg.store_url);
    cfg_free(&cfg);
    static const char *const good[] = {"sqlite:", "postgres://u:pw@db:5432/wagw",
                                       "POSTGRESQL://u@db/wagw?sslmode=require"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *env[] = {"STORE_URL", good[i], NULL};
        assert_int_equal(load(&cfg, env, 1, argv, err), 0);
        assert_string_equal(cfg.store_url, good[i]);
        cfg_free(&cfg);
    }
    const char *bad_env[] = {"STORE_URL", "mysql://u:Secr3tPw@db/wagw", NULL};
    assert_int_equal(load(&cfg, bad_env, 1, argv, err), -1);
    assert_non_null(strstr(err, "STORE_URL"));
    assert_null(strstr(err, "Secr3tPw"));
    const char *bad_flag[] = {"x", "--store-url=postgres:/u:Secr3tPw@db"};
    assert_int_equal(load(&cfg, NULL, 2, bad_flag, err), -1);
    assert_non_null(strstr(err, "--store-url"));
    assert_null(strstr(err, "Secr3tPw"));
}

static void test_help_flag(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *argv[] = {"x", "--help"};
    assert_int_equal(load(&cfg, NULL, 2, argv, err), 0);
    assert_int_equal(cfg.help, 1);
    cfg_free(&cfg);
}

static void test_validate(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    char dir[] = "/tmp/wgcfgXXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/data", dir);
    const char *argv[] = {"x", "--data-dir", sub};
    assert_int_equal(load(&cfg, NULL, 3, argv, err), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0); /* created */
    assert_int_equal(access(sub, W_OK), 0);
    cfg_free(&cfg);

    /* a regular file where the directory should be */
    char file[300];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    const char *argv2[] = {"x", "--data-dir", file};
    assert_int_equal(load(&cfg, NULL, 3, argv2, err), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a directory"));
    cfg_free(&cfg);

    /* non-loopback host without a key is refused, allowed with a key */
    const char *argv3[] = {"x", "--host", "0.0.0.0", "--data-dir", sub};
    assert_int_equal(load(&cfg, NULL, 5, argv3, err), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "API_KEY"));
    cfg_free(&cfg);
    const char *argv4[] = {"x", "--host", "0.0.0.0", "--data-dir", sub, "--api-key", "s"};
    assert_int_equal(load(&cfg, NULL, 7, argv4, err), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0);
    cfg_free(&cfg);
    const char *argv5[] = {"x", "--host", "not-an-ip", "--data-dir", sub};
    assert_int_equal(load(&cfg, NULL, 5, argv5, err), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    cfg_free(&cfg);

    unlink(file);
    rmdir(sub);
    rmdir(dir);
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(cfg_host_is_loopback("127.0.0.1"));
    assert_true(cfg_host_is_loopback("127.3.4.5"));
    assert_true(cfg_host_is_loopback("::1"));
    assert_true(cfg_host_is_loopback("localhost"));
    assert_false(cfg_host_is_loopback("0.0.0.0"));
    assert_false(cfg_host_is_loopback("10.0.0.1"));
    assert_false(cfg_host_is_loopback("::"));
}

/* Issue 13 point 2: a configured key shorter than 16 bytes draws a
 * start-up warning (there was none). */
static void test_short_key_warning(void **state)
{
    (void)state;
    cfg_t cfg;
    char err[256];
    const char *w[4];
    const char *argv1[] = {"wa-gateway", "--api-key", "short-key"};
    assert_int_equal(load(&cfg, NULL, 3, argv1, err), 0);
    assert_int_equal(cfg_warnings(&cfg, w, 4), 1);
    assert_non_null(strstr(w[0], "16"));
    assert_null(strstr(w[0], "short-key")); /* the key itself is never printed */
    cfg_free(&cfg);
    const char *argv2[] = {"wa-gateway", "--api-key", "0123456789abcdef"};
    assert_int_equal(load(&cfg, NULL, 3, argv2, err), 0);
    assert_int_equal(cfg_warnings(&cfg, w, 4), 0);
    cfg_free(&cfg);
    const char *argv3[] = {"wa-gateway"};
    assert_int_equal(load(&cfg, NULL, 1, argv3, err), 0);
    assert_int_equal(cfg_warnings(&cfg, w, 4), 0);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_invalid_values),  cmocka_unit_test(test_help_flag),
        cmocka_unit_test(test_version_options), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_loopback),        cmocka_unit_test(test_short_key_warning),
        cmocka_unit_test(test_store_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
