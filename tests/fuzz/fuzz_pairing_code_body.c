/* libFuzzer target for the POST pairing-code body parser and the phone
 * normalisation under it: any bytes give 0 with 8..15 digits (no leading 0)
 * or -1 with a reason, never a crash. */
#include <stdint.h>
#include <string.h>

#include "api/api.h"

static void check_phone(int rc, const char *why, const char *out)
{
    if (rc != 0) {
        if (rc != -1 || !why)
            __builtin_trap();
        return;
    }
    size_t n = strlen(out);
    if (n < 8 || n > 15 || out[0] == '0' || strspn(out, "0123456789") != n)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[16];
    const char *why = NULL;
    int rc = api_parse_pairing_code_body((const char *)data, size, out, &why);
    check_phone(rc, why, out);
    why = NULL;
    rc = api_normalize_phone((const char *)data, size, out, &why);
    check_phone(rc, why, out);
    return 0;
}
