/* Unit tests of api/: the API key check (exact match only, whatever the
 * presented length), the per-address lockout after repeated wrong keys, the
 * error model's HTTP and gRPC mappings, and the passkey step's views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "api/api.h"
#include "session/session.h"

typedef struct {
    uv_loop_t loop;
    sess_registry_t *reg;
    api_t *api;
} fx_t;

static int setup_with(void **state, const char *key)
{
    fx_t *fx = test_calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    fx->reg = sess_registry_new(&fx->loop, NULL);
    assert_non_null(fx->reg);
    api_opts_t o = {.api_key = key};
    fx->api = api_new(fx->reg, &o);
    assert_non_null(fx->api);
    *state = fx;
    return 0;
}

static int setup_key(void **state)
{
    return setup_with(state, "s3cret-key");
}

static int setup_nokey(void **state)
{
    return setup_with(state, NULL);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    api_free(fx->api);
    sess_registry_close(fx->reg);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sess_registry_free(fx->reg);
    uv_loop_close(&fx->loop);
    test_free(fx);
    return 0;
}

#define K(s) (s), strlen(s)

static void test_key_exact_match_only(void **state)
{
    fx_t *fx = *state;
    assert_true(api_key_required(fx->api));
    assert_int_equal(api_key_ok(fx->api, K("s3cret-key")), 1);
    assert_int_equal(api_key_ok(fx->api, K("s3cret-kez")), 0);  /* last byte */
    assert_int_equal(api_key_ok(fx->api, K("t3cret-key")), 0);  /* first byte */
    assert_int_equal(api_key_ok(fx->api, K("s3cret-ke")), 0);   /* prefix */
    assert_int_equal(api_key_ok(fx->api, K("s3cret-key!")), 0); /* longer */
    assert_int_equal(api_key_ok(fx->api, K("S3CRET-KEY")), 0);  /* case */
    assert_int_equal(api_key_ok(fx->api, K("")), 0);
    assert_int_equal(api_key_ok(fx->api, NULL, 0), 0);
    /* an embedded NUL does not end the comparison early */
    assert_int_equal(api_key_ok(fx->api, "s3cret-key\0x", 12), 0);
}

static void test_no_key_configured(void **state)
{
    fx_t *fx = *state;
    assert_false(api_key_required(fx->api));
    assert_int_equal(api_key_ok(fx->api, NULL, 0), 1);
    assert_int_equal(api_key_ok(fx->api, K("anything")), 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("x")), API_OK);
}

static void test_lockout_per_address(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 5; i++) /* a missing key is not a guess */
        assert_int_equal(api_authorize(fx->api, "10.0.0.1", NULL, 0), API_ERR_UNAUTHENTICATED);
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("s3cret-key")), API_OK);
    for (int i = 0; i < API_AUTH_MAX_FAILURES; i++)
        assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("guess")), API_ERR_UNAUTHENTICATED);
    /* locked out: even the right key is refused from that address */
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("s3cret-key")), API_ERR_RATE_LIMITED);
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("guess")), API_ERR_RATE_LIMITED);
    /* other addresses are not affected */
    assert_int_equal(api_authorize(fx->api, "10.0.0.2", K("s3cret-key")), API_OK);
    assert_int_equal(api_authorize(fx->api, "::1", K("guess")), API_ERR_UNAUTHENTICATED);
}

static void test_error_mappings(void **state)
{
    (void)state;
    static const struct {
        api_code_t code;
        int http, grpc;
    } map[] = {
        {API_OK, 200, 0},
        {API_ERR_UNAUTHENTICATED, 401, 16},
        {API_ERR_NO_QR, 409, 9},
        {API_ERR_BAD_REQUEST, 400, 3},
        {API_ERR_NOT_FOUND, 404, 5},
        {API_ERR_TOO_LARGE, 413, 3},
        {API_ERR_RATE_LIMITED, 429, 8},
        {API_ERR_TIMEOUT, 504, 4},
        {API_ERR_UNREACHABLE, 502, 14},
        {API_ERR_SHUTTING_DOWN, 503, 14},
        {API_ERR_INTERNAL, 500, 13},
        {API_ERR_CONFLICT, 409, 9},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        assert_int_equal(api_http_status(map[i].code), map[i].http);
        assert_int_equal(api_grpc_status(map[i].code), map[i].grpc);
        assert_non_null(api_code_message(map[i].code));
        assert_true(strlen(api_code_message(map[i].code)) > 0);
    }
}

/* The passkey step's views: options only while pending, and only to key
 * holders in the status; the options come out as an object, re-encoded. */
static void test_passkey_views(void **state)
{
    fx_t *fx = *state;
    sess_t *s = sess_registry_add(fx->reg, "default");
    assert_non_null(s);
    api_result_t r = api_passkey_options(fx->api, NULL);
    assert_int_equal(r.code, API_ERR_CONFLICT);
    assert_non_null(r.message);
    api_result_clear(&r);
    r = api_passkey_options(fx->api, "nope");
    assert_int_equal(r.code, API_ERR_NOT_FOUND);
    api_result_clear(&r);

    const char *opts = "{\"challenge\":\"AQID\",\"timeout\":60000,\"rpId\":\"web.whatsapp.com\","
                       "\"allowCredentials\":[{\"type\":\"public-key\",\"id\":\"Y3JlZA\"}],"
                       "\"extensions\":{\"x\":[true,false,null,1.5]}}";
    sess_change_t c = {
        .state = SESS_CONNECTING, .detail = "passkey_required", .passkey_options = opts};
    assert_int_equal(sess_publish(s, &c), 0);
    r = api_passkey_options(fx->api, NULL);
    assert_int_equal(r.code, API_OK);
    char *j = api_json_passkey(r.snap);
    assert_string_equal(
        j, "{\"success\":true,\"data\":{\"passkeyOptions\":{\"challenge\":\"AQID\","
           "\"timeout\":60000,\"rpId\":\"web.whatsapp.com\",\"allowCredentials\":[{"
           "\"type\":\"public-key\",\"id\":\"Y3JlZA\"}],\"extensions\":{\"x\":[true,"
           "false,null,1.5]}},\"state\":\"CONNECTING\",\"detail\":\"passkey_required\"}}");
    free(j);
    j = api_json_status(r.snap, 1, 0);
    assert_non_null(strstr(j, "\"passkeyOptions\":{\"challenge\":\"AQID\""));
    free(j);
    j = api_json_status(r.snap, 0, 0);
    assert_null(strstr(j, "passkeyOptions"));
    free(j);
    j = api_json_event(r.snap, 1, 0);
    assert_non_null(strstr(j, "\"passkeyOptions\":{"));
    free(j);
    api_result_clear(&r);

    /* the code to confirm replaces the options */
    sess_change_t k = {.state = SESS_CONNECTING,
                       .detail = "passkey_confirm",
                       .link_code = "ABCD-EFGH",
                       .clear_link = 1};
    assert_int_equal(sess_publish(s, &k), 0);
    r = api_status(fx->api, NULL);
    j = api_json_status_message(r.snap, "hello", 1, 0);
    assert_non_null(strstr(j, "\"message\":\"hello\""));
    assert_non_null(strstr(j, "\"linkCode\":\"ABCD-EFGH\""));
    assert_null(strstr(j, "passkeyOptions"));
    free(j);
    j = api_json_status(r.snap, 0, 0);
    assert_null(strstr(j, "ABCD-EFGH"));
    free(j);
    api_result_clear(&r);
    r = api_passkey_options(fx->api, NULL);
    assert_int_equal(r.code, API_ERR_CONFLICT);
    api_result_clear(&r);
}

static int calls, last_code;

static void on_passkey(api_result_t r, void *arg)
{
    (void)arg;
    calls++;
    last_code = r.code;
    api_result_clear(&r);
}

/* Without a driver that can take an assertion: 409; unknown session: 404. */
static void test_passkey_response_without_step(void **state)
{
    fx_t *fx = *state;
    assert_non_null(sess_registry_add(fx->reg, "default"));
    calls = 0;
    api_passkey_response(fx->api, NULL, "{}", 2, on_passkey, NULL);
    assert_int_equal(calls, 1);
    assert_int_equal(last_code, API_ERR_CONFLICT);
    api_passkey_response(fx->api, "nope", "{}", 2, on_passkey, NULL);
    assert_int_equal(calls, 2);
    assert_int_equal(last_code, API_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_exact_match_only, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_configured, setup_nokey, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_per_address, setup_key, teardown),
        cmocka_unit_test(test_error_mappings),
        cmocka_unit_test_setup_teardown(test_passkey_views, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_response_without_step, setup_key, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
