/* Unit tests of api/: the API key check (exact match only, whatever the
 * presented length), the per-address lockout after repeated wrong keys
 * (issue 13 point 2: the right key passes a lockout, IPv6 clients are
 * grouped by /64, HTTP's and gRPC's forms of an address are one client, and
 * flooding the table from other addresses does not reset a count), the
 * error model's HTTP and gRPC mappings, the passkey step's views, and the
 * pairing-code handler (phone normalisation, body, the driver's answers
 * mapped, cancellation, the code shown in status to key holders only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
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
    /* locked out: wrong keys are refused at once; the right key still
     * passes, so guesses cannot shut out everyone behind that address */
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("guess")), API_ERR_RATE_LIMITED);
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("s3cret-key")), API_OK);
    assert_int_equal(api_authorize(fx->api, "10.0.0.1", K("guess")), API_ERR_RATE_LIMITED);
    /* other addresses are not affected */
    assert_int_equal(api_authorize(fx->api, "10.0.0.2", K("s3cret-key")), API_OK);
    assert_int_equal(api_authorize(fx->api, "::1", K("guess")), API_ERR_UNAUTHENTICATED);
}

static void lock(fx_t *fx, const char *client)
{
    for (int i = 0; i < API_AUTH_MAX_FAILURES; i++)
        api_authorize(fx->api, client, K("guess"));
    assert_int_equal(api_authorize(fx->api, client, K("guess")), API_ERR_RATE_LIMITED);
}

static void test_ipv6_grouped_by_64(void **state)
{
    fx_t *fx = *state;
    /* one host owns its /64: rotating the low bits does not escape */
    for (int i = 0; i < API_AUTH_MAX_FAILURES; i++) {
        char a[64];
        snprintf(a, sizeof(a), "2001:db8:1:2::%x", i + 1);
        api_authorize(fx->api, a, K("guess"));
    }
    assert_int_equal(api_authorize(fx->api, "2001:db8:1:2:ffff::9", K("guess")),
                     API_ERR_RATE_LIMITED);
    assert_int_equal(api_authorize(fx->api, "2001:db8:1:3::1", K("guess")),
                     API_ERR_UNAUTHENTICATED);
    /* an IPv4-mapped address is its IPv4 client */
    lock(fx, "192.0.2.7");
    assert_int_equal(api_authorize(fx->api, "::ffff:192.0.2.7", K("guess")), API_ERR_RATE_LIMITED);
}

static void test_same_client_both_transports(void **state)
{
    fx_t *fx = *state;
    char a[64], b[64];
    /* HTTP gives inet_ntop text, gRPC its peer URI: the same group */
    static const char *const same[][2] = {
        {"127.0.0.1", "ipv4:127.0.0.1:54321"},
        {"::1", "ipv6:[::1]:54321"},
        {"::1", "ipv6:%5B::1%5D:54321"},
        {"2001:db8:1:2::5", "ipv6:[2001:db8:1:2:aaaa::1]:443"},
        {"::ffff:10.1.2.3", "ipv4:10.1.2.3:1"},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(api_client_group(same[i][0], a, sizeof(a)), 0);
        assert_int_equal(api_client_group(same[i][1], b, sizeof(b)), 0);
        assert_string_equal(a, b);
    }
    assert_int_equal(api_client_group("2001:db8:1:2::5", a, sizeof(a)), 0);
    assert_string_equal(a, "2001:db8:1:2::/64");
    assert_int_equal(api_client_group("ipv4:10.1.2.3:1", a, sizeof(a)), 0);
    assert_string_equal(a, "10.1.2.3");
    assert_int_equal(api_client_group("garbage", a, sizeof(a)), 0);
    assert_string_equal(a, "unknown");
    /* wrong keys over gRPC lock the HTTP client out too */
    for (int i = 0; i < API_AUTH_MAX_FAILURES; i++)
        api_authorize(fx->api, "ipv6:[::1]:4000", K("guess"));
    assert_int_equal(api_authorize(fx->api, "::1", K("guess")), API_ERR_RATE_LIMITED);
}

static void test_table_flood_keeps_counts(void **state)
{
    fx_t *fx = *state;
    lock(fx, "198.51.100.1");
    /* an attacker with many addresses fills the table... */
    for (int i = 0; i < 6000; i++) {
        char a[64];
        snprintf(a, sizeof(a), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        api_authorize(fx->api, a, K("guess"));
    }
    /* ...which neither unlocks the first address nor locks out a right key */
    assert_int_equal(api_authorize(fx->api, "198.51.100.1", K("guess")), API_ERR_RATE_LIMITED);
    assert_int_equal(api_authorize(fx->api, "203.0.113.9", K("s3cret-key")), API_OK);
    /* the addresses beyond the table share one counter, which locks too */
    assert_int_equal(api_authorize(fx->api, "203.0.113.9", K("guess")), API_ERR_RATE_LIMITED);
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
        {API_ERR_ALREADY_LINKED, 409, 9},
        {API_ERR_CONFLICT, 409, 9},
        {API_ERR_FORBIDDEN, 403, 7},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        assert_int_equal(api_http_status(map[i].code), map[i].http);
        assert_int_equal(api_grpc_status(map[i].code), map[i].grpc);
        assert_non_null(api_code_message(map[i].code));
        assert_true(strlen(api_code_message(map[i].code)) > 0);
    }
}

/* --- pairing code --- */

static void test_normalize_phone(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"+62 812-3456-7890", "6281234567890"}, {"15551234567", "15551234567"},
        {"+1 555 123 4567", "15551234567"},     {"12345678", "12345678"},
        {"123456789012345", "123456789012345"}, {"  4915112345678 ", "4915112345678"},
    };
    char out[16];
    const char *why;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(api_normalize_phone(ok[i].in, strlen(ok[i].in), out, &why), 0);
        assert_string_equal(out, ok[i].out);
    }
    static const char *const bad[] = {
        "",
        "+",
        "1234567",
        "1234567890123456",
        "+1 (555) 123-4567",
        "15551234567x",
        "++15551234567",
        "0812 3456 7890",
        "1555.123.4567",
        "1555\n1234567",
        "+1+5551234567",
        "\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6\xd9\xa7\xd9\xa8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(api_normalize_phone(bad[i], strlen(bad[i]), out, &why), -1);
        assert_non_null(why);
    }
    /* an embedded NUL is not a digit */
    assert_int_equal(api_normalize_phone("1555123\0"
                                         "4567",
                                         12, out, &why),
                     -1);
}

static void test_pairing_code_body(void **state)
{
    (void)state;
    char out[16];
    const char *why;
    assert_int_equal(
        api_parse_pairing_code_body(K("{\"phoneNumber\":\"+62 812-3456-7890\"}"), out, &why), 0);
    assert_string_equal(out, "6281234567890");
    assert_int_equal(
        api_parse_pairing_code_body(K("{\"x\":1,\"phoneNumber\":\"15551234567\"}"), out, &why), 0);
    static const char *const bad[] = {"",
                                      "{",
                                      "[\"15551234567\"]",
                                      "\"15551234567\"",
                                      "{}",
                                      "{\"phone\":\"15551234567\"}",
                                      "{\"phoneNumber\":15551234567}",
                                      "{\"phoneNumber\":null}",
                                      "{\"phoneNumber\":\"123\"}",
                                      "{\"phoneNumber\":\"\xff\xfe\"}",
                                      "{\"phoneNumber\":\"15551234567\",\"phoneNumber\":\"x\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(api_parse_pairing_code_body(bad[i], strlen(bad[i]), out, &why), -1);
        assert_non_null(why);
    }
    assert_int_equal(
        api_parse_pairing_code_body("{\"phoneNumber\":\"1555\0001234567\"}", 30, out, &why), -1);
}

/* A driver whose pairing_code op the test answers by hand. */
typedef struct {
    int rc; /* what the op returns */
    void (*done)(void *, int, const char *, int64_t);
    void *arg;
    char phone[32];
} stub_t;

static int stub_pairing_code(void *drv, const char *phone,
                             void (*done)(void *, int, const char *, int64_t), void *arg)
{
    stub_t *st = drv;
    snprintf(st->phone, sizeof(st->phone), "%s", phone);
    if (st->rc == 0) {
        st->done = done;
        st->arg = arg;
    }
    return st->rc;
}

static void stub_destroy(void *drv)
{
    (void)drv;
}

static const sess_driver_ops_t stub_ops = {.pairing_code = stub_pairing_code,
                                           .destroy = stub_destroy};

typedef struct {
    int called;
    api_code_t code;
    char text[16];
    int expires_in;
} got_t;

static void on_code(api_result_t r, const char *code, int expires_in, void *arg)
{
    got_t *g = arg;
    g->called++;
    g->code = r.code;
    snprintf(g->text, sizeof(g->text), "%s", code ? code : "");
    g->expires_in = expires_in;
    if (r.code != API_OK && r.code != API_ERR_NOT_FOUND)
        assert_non_null(r.snap); /* errors come with the state */
    api_result_clear(&r);
}

static void test_pairing_code_handler(void **state)
{
    fx_t *fx = *state;
    stub_t st = {0};
    sess_t *s = sess_registry_add(fx->reg, "default");
    sess_set_driver(s, &stub_ops, &st);
    /* refused at once: the callback runs before the call returns */
    static const struct {
        int rc;
        api_code_t code;
        int http;
    } now[] = {
        {SESS_ELINKED, API_ERR_ALREADY_LINKED, 409}, {SESS_ESTATE, API_ERR_ALREADY_LINKED, 409},
        {SESS_EBUSY, API_ERR_RATE_LIMITED, 429},     {SESS_EINVAL, API_ERR_BAD_REQUEST, 400},
        {SESS_ENOTSUP, API_ERR_INTERNAL, 500},       {SESS_EUNREACH, API_ERR_UNREACHABLE, 502},
        {SESS_ESTOPPED, API_ERR_SHUTTING_DOWN, 503},
    };
    for (size_t i = 0; i < sizeof(now) / sizeof(now[0]); i++) {
        got_t g = {0};
        st.rc = now[i].rc;
        assert_null(api_pairing_code(fx->api, NULL, "15551234567", on_code, &g));
        assert_int_equal(g.called, 1);
        assert_int_equal(g.code, now[i].code);
        assert_int_equal(api_http_status(g.code), now[i].http);
    }
    assert_string_equal(st.phone, "15551234567");
    /* answered later: the code and its seconds */
    got_t g = {0};
    st.rc = 0;
    assert_non_null(api_pairing_code(fx->api, "default", "15551234567", on_code, &g));
    assert_int_equal(g.called, 0);
    st.done(st.arg, 0, "ABCD-EFGH", sess_now_ms() + 59500);
    assert_int_equal(g.called, 1);
    assert_int_equal(g.code, API_OK);
    assert_string_equal(g.text, "ABCD-EFGH");
    assert_int_equal(g.expires_in, 60);
    /* and the errors that come later */
    static const struct {
        int rc;
        api_code_t code;
    } later[] = {{SESS_EREFUSED, API_ERR_UNREACHABLE},
                 {SESS_ETIMEOUT, API_ERR_TIMEOUT},
                 {SESS_EUNREACH, API_ERR_UNREACHABLE},
                 {SESS_ESTOPPED, API_ERR_SHUTTING_DOWN},
                 {-1, API_ERR_INTERNAL}};
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        got_t h = {0};
        assert_non_null(api_pairing_code(fx->api, NULL, "15551234567", on_code, &h));
        st.done(st.arg, later[i].rc, NULL, 0);
        assert_int_equal(h.called, 1);
        assert_int_equal(h.code, later[i].code);
        assert_string_equal(h.text, "");
    }
    /* the caller left: no callback (and nothing leaks) */
    got_t c = {0};
    api_pc_t *p = api_pairing_code(fx->api, NULL, "15551234567", on_code, &c);
    api_pairing_code_cancel(p);
    st.done(st.arg, 0, "ABCD-EFGH", sess_now_ms() + 1000);
    assert_int_equal(c.called, 0);
    /* an unknown session */
    got_t u = {0};
    assert_null(api_pairing_code(fx->api, "nope", "15551234567", on_code, &u));
    assert_int_equal(u.code, API_ERR_NOT_FOUND);
}

static void test_link_code_in_status(void **state)
{
    fx_t *fx = *state;
    sess_t *s = sess_registry_add(fx->reg, "default");
    int64_t t = sess_now_ms();
    sess_change_t c = {.state = SESS_QR_READY,
                       .qr_text = "qr",
                       .qr_expires_at_ms = t + 20000,
                       .link_code = "ABCD-EFGH",
                       .link_code_expires_at_ms = t + 30000};
    assert_int_equal(sess_publish(s, &c), 0);
    api_result_t r = api_status(fx->api, NULL);
    assert_int_equal(r.code, API_OK);
    char *with = api_json_status(r.snap, 1, t);
    char *without = api_json_status(r.snap, 0, t);
    char *event = api_json_event(r.snap, 1, t);
    char *expired = api_json_status(r.snap, 1, t + 30000);
    assert_non_null(strstr(with, "\"linkCode\":\"ABCD-EFGH\",\"linkCodeExpiresIn\":30"));
    assert_non_null(strstr(event, "\"linkCode\":\"ABCD-EFGH\""));
    assert_null(strstr(without, "linkCode"));
    assert_null(strstr(without, "ABCD"));
    assert_non_null(strstr(expired, "\"linkCode\":null,\"linkCodeExpiresIn\":0"));
    assert_int_equal(api_link_code_expires_in(r.snap, t + 29001), 1);
    assert_int_equal(api_link_code_expires_in(r.snap, t + 30000), 0);
    free(with);
    free(without);
    free(event);
    free(expired);
    api_result_clear(&r);
    char *ok = api_json_pairing_code("ABCD-EFGH", 160);
    assert_string_equal(ok, "{\"success\":true,\"message\":\"" API_PAIRING_CODE_MESSAGE
                            "\",\"data\":{\"pairingCode\":\"ABCD-EFGH\",\"expiresIn\":160}}");
    free(ok);
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
                       .link_code_expires_at_ms = 60000,
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

/* SHA-256 of a key, as the service keeps it. */
static void hash_of(const char *key, uint8_t out[32])
{
    unsigned int n = 0;
    EVP_Digest(key, strlen(key), out, &n, EVP_sha256(), NULL);
}

/* Who may act on which session: the admin key everywhere; a session's own
 * key on its session only (the seed routes are "default"'s); another
 * session's key and session keys on admin routes 403 (not counted as
 * guesses); wrong keys 401 and counted; no key passes only where the key
 * is optional. */
static void test_authorize_for_table(void **state)
{
    fx_t *fx = *state;
    sess_t *def = sess_registry_add(fx->reg, "default");
    sess_t *sales = sess_registry_add(fx->reg, "sales");
    uint8_t h[32];
    hash_of("key-of-default-0123456789", h);
    sess_set_key_hash(def, h);
    hash_of("key-of-sales-0123456789", h);
    sess_set_key_hash(sales, h);
    sess_registry_add(fx->reg, "support"); /* no key of its own */
    static const struct {
        const char *key, *session;
        int optional;
        api_code_t code;
        api_scope_t scope;
    } rows[] = {
        {"s3cret-key", "sales", 0, API_OK, API_SCOPE_ADMIN},
        {"s3cret-key", NULL, 0, API_OK, API_SCOPE_ADMIN},
        {"key-of-sales-0123456789", "sales", 0, API_OK, API_SCOPE_SESSION},
        {"key-of-sales-0123456789", "sales", 1, API_OK, API_SCOPE_SESSION},
        {"key-of-sales-0123456789", "default", 0, API_ERR_FORBIDDEN, API_SCOPE_NONE},
        {"key-of-sales-0123456789", "support", 1, API_OK, API_SCOPE_NONE}, /* hides only */
        {"key-of-sales-0123456789", NULL, 0, API_ERR_FORBIDDEN, API_SCOPE_NONE},
        {"key-of-default-0123456789", "default", 0, API_OK, API_SCOPE_SESSION},
        {"key-of-default-0123456789", "sales", 0, API_ERR_FORBIDDEN, API_SCOPE_NONE},
        {NULL, "sales", 0, API_ERR_UNAUTHENTICATED, API_SCOPE_NONE},
        {NULL, "sales", 1, API_OK, API_SCOPE_NONE},
        {NULL, NULL, 0, API_ERR_UNAUTHENTICATED, API_SCOPE_NONE},
        {"wrong", "sales", 0, API_ERR_UNAUTHENTICATED, API_SCOPE_NONE},
        {"wrong", "sales", 1, API_OK, API_SCOPE_NONE}, /* counted, hides only */
        {"key-of-sales-012345678", "sales", 0, API_ERR_UNAUTHENTICATED, API_SCOPE_NONE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        api_caller_t c = {"10.0.0.1", rows[i].key, rows[i].key ? strlen(rows[i].key) : 0, 0};
        api_scope_t scope = API_SCOPE_NONE;
        api_code_t rc = api_authorize_for(fx->api, &c, rows[i].session, rows[i].optional, &scope);
        if (rc != rows[i].code || scope != rows[i].scope)
            fail_msg("row %zu: code %d scope %d", i, rc, scope);
    }
    /* only the wrong keys were counted: 3 of them (one on a key-optional
     * route); 7 more lock the client
     * out, and even then a session's own key works */
    api_caller_t bad = {"10.0.0.1", "wrong", 5, 0};
    api_scope_t scope;
    for (int i = 0; i < 7; i++)
        api_authorize_for(fx->api, &bad, "sales", 0, &scope);
    assert_true(bad.refused);
    assert_int_equal(api_authorize_for(fx->api, &bad, "sales", 0, &scope), API_ERR_RATE_LIMITED);
    api_caller_t own = {"10.0.0.1", "key-of-sales-0123456789", 23, 0};
    assert_int_equal(api_authorize_for(fx->api, &own, "sales", 0, &scope), API_OK);
    /* a rotated key: the old one stops working */
    hash_of("new-key-of-sales-0123456789", h);
    sess_set_key_hash(sales, h);
    api_caller_t other = {"10.0.0.2", "key-of-sales-0123456789", 23, 0};
    assert_int_equal(api_authorize_for(fx->api, &other, "sales", 0, &scope),
                     API_ERR_UNAUTHENTICATED);
}

/* Without API_KEY every caller is admin. */
static void test_authorize_for_without_key(void **state)
{
    fx_t *fx = *state;
    sess_registry_add(fx->reg, "sales");
    api_caller_t c = {"10.0.0.1", NULL, 0, 0};
    api_scope_t scope;
    assert_int_equal(api_authorize_for(fx->api, &c, "sales", 0, &scope), API_OK);
    assert_int_equal(scope, API_SCOPE_ADMIN);
    assert_int_equal(api_authorize_for(fx->api, &c, NULL, 0, &scope), API_OK);
}

/* The body of POST /api/sessions. */
static void test_session_body(void **state)
{
    (void)state;
    char name[65], dev[65];
    const char *why;
    static const char *const good[] = {"{\"name\":\"sales\"}",
                                       "{\"name\":\"a_b-9\",\"deviceName\":\"Desk \u00e9\"}"};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(api_parse_session_body(good[i], strlen(good[i]), name, dev, &why), 0);
    assert_string_equal(name, "a_b-9");
    assert_string_equal(dev, "Desk \xc3\xa9");
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"name\":\"Sales\"}",
        "{\"name\":\"\"}",
        "{\"name\":1}",
        "{\"name\":\"a b\"}",
        "{\"name\":\"x\",\"deviceName\":\"\"}",
        "{\"name\":\"x\",\"deviceName\":\"a\\nb\"}",
        "{\"name\":\"x\",\"other\":1}",
        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"name\":\"x\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (api_parse_session_body(bad[i], strlen(bad[i]), name, dev, &why) != -1 || !why)
            fail_msg("accepted: %s", bad[i]);
    }
}

/* Resume cursors: digits only, up to UINT64_MAX; Last-Event-ID wins over
 * ?since=, an empty header counts as absent, an empty ?since= does not. */
static void test_resume_cursor(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(api_parse_since("0", 1, &v), 0);
    assert_true(v == 0);
    assert_int_equal(api_parse_since("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    static const char *const bad[] = {"",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1.5",
                                      "0x10",
                                      "abc",
                                      "1e3",
                                      "18446744073709551616",
                                      "99999999999999999999",
                                      "000000000000000000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (api_parse_since(bad[i], strlen(bad[i]), &v) != -1)
            fail_msg("accepted: \"%s\"", bad[i]);
    assert_int_equal(api_resume_cursor(NULL, 0, NULL, 0, &v), API_OK);
    assert_true(v == 0);
    assert_int_equal(api_resume_cursor("42", 2, "7", 1, &v), API_OK);
    assert_true(v == 42);
    assert_int_equal(api_resume_cursor("", 0, "7", 1, &v), API_OK);
    assert_true(v == 7);
    assert_int_equal(api_resume_cursor(NULL, 0, "", 0, &v), API_ERR_BAD_REQUEST);
    assert_int_equal(api_resume_cursor("x", 1, "7", 1, &v), API_ERR_BAD_REQUEST);
    assert_int_equal(api_resume_cursor("7", 1, "x", 1, &v), API_OK); /* the header wins */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_exact_match_only, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_configured, setup_nokey, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_per_address, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_grouped_by_64, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_same_client_both_transports, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_table_flood_keeps_counts, setup_key, teardown),
        cmocka_unit_test(test_error_mappings),
        cmocka_unit_test(test_normalize_phone),
        cmocka_unit_test(test_pairing_code_body),
        cmocka_unit_test_setup_teardown(test_pairing_code_handler, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_link_code_in_status, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_views, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_authorize_for_table, setup_key, teardown),
        cmocka_unit_test_setup_teardown(test_authorize_for_without_key, setup_nokey, teardown),
        cmocka_unit_test(test_session_body),
        cmocka_unit_test(test_resume_cursor),
        cmocka_unit_test_setup_teardown(test_passkey_response_without_step, setup_key, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
