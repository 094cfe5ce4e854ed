/* Checks the protoc-c build macro end to end: the generated gateway API code
 * packs and unpacks a message, rejects malformed bytes, and the descriptor set
 * generated for reflection names the service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "proto/gateway.pb-c.h"

static void test_round_trip(void **state)
{
    (void)state;
    Wagateway__V1__Status st = WAGATEWAY__V1__STATUS__INIT;
    st.session = "default";
    st.state = WAGATEWAY__V1__STATE__QR_READY;
    st.has_qr = 1;
    st.qr_expires_in = 42;
    size_t len = wagateway__v1__status__get_packed_size(&st);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(wagateway__v1__status__pack(&st, buf), len);
    Wagateway__V1__Status *back = wagateway__v1__status__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_string_equal(back->session, "default");
    assert_int_equal(back->state, WAGATEWAY__V1__STATE__QR_READY);
    assert_true(back->has_qr);
    assert_int_equal(back->qr_expires_in, 42);
    wagateway__v1__status__free_unpacked(back, NULL);
    /* truncated input is rejected, not misread */
    assert_null(wagateway__v1__status__unpack(NULL, len - 1, buf));
    free(buf);
    /* passkey_options_json is field 13 (11 and 12 belong to linking by code) */
    Wagateway__V1__Status pk = WAGATEWAY__V1__STATUS__INIT;
    pk.passkey_options_json = "{}";
    uint8_t pb[16];
    assert_int_equal(wagateway__v1__status__pack(&pk, pb), 4);
    assert_memory_equal(pb, "\x6a\x02{}", 4);
    static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_null(wagateway__v1__status__unpack(NULL, sizeof(garbage), garbage));
}

static void test_descriptor_set(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/wa_gateway/proto/gateway_descriptor.pb",
             getenv("TEST_SRCDIR"));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_true(n > 100);
    assert_non_null(memmem(buf, n, "wagateway.v1", 12));
    assert_non_null(memmem(buf, n, "WatchStatus", 11));
    assert_non_null(memmem(buf, n, "GetPasskeyOptions", 17));
    assert_non_null(memmem(buf, n, "SendPasskeyAssertion", 20));
}

/* The standard protos compile with their canonical names and work. */
static void test_grpc_std_protos(void **state)
{
    (void)state;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    uint8_t buf[16];
    size_t n = grpc__health__v1__health_check_response__pack(&r, buf);
    Grpc__Health__V1__HealthCheckResponse *b =
        grpc__health__v1__health_check_response__unpack(NULL, n, buf);
    assert_non_null(b);
    assert_int_equal(b->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    grpc__health__v1__health_check_response__free_unpacked(b, NULL);
    assert_string_equal(grpc__reflection__v1alpha__server_reflection_request__descriptor.name,
                        "grpc.reflection.v1alpha.ServerReflectionRequest");
    assert_string_equal(grpc__reflection__v1__server_reflection_request__descriptor.package_name,
                        "grpc.reflection.v1");
    char path[4096];
    snprintf(path, sizeof(path), "%s/wa_gateway/proto/grpc_std_descriptor.pb",
             getenv("TEST_SRCDIR"));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char d[65536];
    size_t dn = fread(d, 1, sizeof(d), f);
    fclose(f);
    assert_non_null(memmem(d, dn, "grpc/health/v1/health.proto", 27));
    assert_non_null(memmem(d, dn, "grpc/reflection/v1alpha/reflection.proto", 40));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_descriptor_set),
        cmocka_unit_test(test_grpc_std_protos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
