/* libFuzzer target for the POST /api/webhooks body parser: any bytes give
 * 0 with a URL and at most WH_EVENTS_MAX event types, or -1 with a reason,
 * never a crash, a leak or an out-of-bounds read. */
#include <stdint.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_webhook_req_t r;
    const char *why = NULL;
    int rc = api_parse_webhook_body((const char *)data, size, &r, &why);
    if (rc != 0) {
        if (rc != -1 || !why)
            __builtin_trap();
        return 0;
    }
    if (!r.url)
        __builtin_trap();
    size_t n = 0;
    while (r.events[n])
        n++;
    if (n > WH_EVENTS_MAX)
        __builtin_trap();
    api_webhook_req_clear(&r);
    return 0;
}
