/* Secrets are wiped before their memory is freed (issue 13 point 5). The
 * test is linked with -Wl,--wrap=free, so every free() in the modules under
 * test goes through __wrap_free, which looks at the block before it is
 * released: it must not hold the secret any more. Covered: the configured
 * API key (cfg_free), a session's QR text and pairing code (snapshots), the
 * QR's PNG and data URL (api render hook), the base64 adv secret built into
 * a QR string and the parsed QR (session/wa/pair). Before the fix each of
 * these blocks was freed with the secret in it. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "api/api.h"
#include "server/config.h"
#include "session/session.h"
#include "session/wa/pair.h"

void __real_free(void *p);

static const char *needle; /* the secret no freed block may hold */
static size_t needle_len;
static const void *watched[4]; /* blocks that must be all zero when freed */
static size_t watched_len[4];
static int violations, watched_seen;

void __wrap_free(void *p)
{
    if (p && needle) {
        size_t n = malloc_usable_size(p);
        if (n >= needle_len && memmem(p, n, needle, needle_len))
            violations++;
    }
    for (int i = 0; p && i < 4; i++)
        if (watched[i] == p) {
            watched_seen++;
            for (size_t k = 0; k < watched_len[i]; k++)
                if (((const uint8_t *)p)[k]) {
                    violations++;
                    break;
                }
            watched[i] = NULL;
        }
    __real_free(p);
}

static void watch_secret(const char *s)
{
    needle = s;
    needle_len = strlen(s);
    violations = 0;
}

static void test_config_key(void **state)
{
    (void)state;
    static const char key[] = "api-key-SECRET-0123456789abcdef";
    cfg_t cfg;
    char err[256];
    const char *argv[] = {"wa-gateway", "--api-key", key};
    assert_int_equal(cfg_load(&cfg, 3, (char **)argv, NULL, err, sizeof(err)), 0);
    watch_secret(key);
    cfg_free(&cfg);
    needle = NULL;
    assert_int_equal(violations, 0);
}

static void test_snapshot_qr_and_code(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sess_render_hooks_t hooks = api_render_hooks();
    sess_registry_t *reg = sess_registry_new(&loop, &hooks);
    sess_t *s = sess_registry_add(reg, "default");
    static const char qr[] =
        "https://wa.me/settings/linked_devices#REF,NOISE,IDENT,ADVSECRETADVSECRET,1";
    sess_change_t c = {.state = SESS_QR_READY,
                       .qr_text = qr,
                       .qr_expires_at_ms = sess_now_ms() + 60000,
                       .link_code = "SECR-ETCO",
                       .link_code_expires_at_ms = 1};
    assert_int_equal(sess_publish(s, &c), 0);
    /* the rendering (PNG, data URL) of the QR must be wiped too */
    sess_snapshot_t *snap = sess_current(s);
    const api_qr_render_t *r = snap->qr->rendered;
    assert_non_null(r);
    watched[0] = r->png;
    watched_len[0] = r->png_len;
    watched[1] = r->data_url;
    watched_len[1] = strlen(r->data_url);
    watched_seen = 0;
    sess_snapshot_unref(snap);
    watch_secret("ADVSECRETADVSECRET");
    sess_change_t d = {.state = SESS_CONNECTED, .clear_link = 1};
    assert_int_equal(sess_publish(s, &d), 0); /* the QR's last reference goes */
    assert_int_equal(violations, 0);
    assert_int_equal(watched_seen, 2);
    sess_change_t e = {
        .state = SESS_CONNECTING, .link_code = "SECR-ETC2", .link_code_expires_at_ms = 1};
    assert_int_equal(sess_publish(s, &e), 0);
    watch_secret("SECR-ETC2");
    assert_int_equal(sess_publish(s, &d), 0);
    needle = NULL;
    assert_int_equal(violations, 0);
    sess_registry_close(reg);
    uv_run(&loop, UV_RUN_DEFAULT);
    sess_registry_free(reg);
    uv_loop_close(&loop);
}

static void test_pair_qr_strings(void **state)
{
    (void)state;
    uint8_t noise[32], ident[32], adv[32];
    memset(noise, 1, 32);
    memset(ident, 2, 32);
    for (int i = 0; i < 32; i++)
        adv[i] = (uint8_t)(0xA0 + i);
    char *adv64 = wa_pair_b64(adv, 32);
    assert_non_null(adv64);
    char secret[64];
    strcpy(secret, adv64);
    free(adv64);
    watch_secret(secret);
    char *qr = wa_pair_qr((const uint8_t *)"ref", 3, noise, ident, adv);
    assert_non_null(qr);
    assert_int_equal(violations, 0); /* its base64 adv secret went wiped */
    needle = NULL;
    wa_pair_qr_parts_t parts;
    assert_int_equal(wa_pair_qr_parse(qr, &parts), 0);
    assert_memory_equal(parts.adv_secret, adv, 32);
    watch_secret(secret);
    wa_pair_qr_parts_free(&parts);
    assert_int_equal(violations, 0);
    needle = NULL;
    explicit_bzero(qr, strlen(qr));
    free(qr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_key),
        cmocka_unit_test(test_snapshot_qr_and_code),
        cmocka_unit_test(test_pair_qr_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
