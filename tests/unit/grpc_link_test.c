/* Checks that //bazel:grpc (Debian's gRPC C core) compiles and links, ahead
 * of the gRPC endpoint that will use it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <grpc/grpc.h>

static void test_version(void **state)
{
    (void)state;
    const char *v = grpc_version_string();
    assert_non_null(v);
    assert_true(strlen(v) > 0);
    assert_true(v[0] >= '1' && v[0] <= '9');
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_version)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
