/* libFuzzer target for the HTTP JSON body parser (POST reconnect): any
 * bytes give 0 or -1 with a reason, never a crash. */
#include <stdint.h>
#include <stdlib.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int keep = 0;
    unsigned wait = 0;
    const char *why = NULL;
    if (api_parse_reconnect_body((const char *)data, size, &keep, &wait, &why) != 0 && !why)
        __builtin_trap();
    if (wait > 300000)
        __builtin_trap();
    return 0;
}
