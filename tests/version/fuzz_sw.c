/* libFuzzer target for the sw.js parser (session/wa/version.c): any bytes
 * parse or are refused, never read out of bounds; a revision found is
 * non-zero and, written back as "client_revision":N, parses to itself. The
 * input is also tried as a WhatsApp URL for the sw.js URL derivation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: over-reads are caught */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    uint32_t rev = 0;
    int rc = wa_version_parse_sw(copy, size, &rev);
    if (rc == 0) {
        if (rev == 0)
            __builtin_trap();
        char again[64];
        int n = snprintf(again, sizeof(again), "\"client_revision\":%u", rev);
        uint32_t rev2 = 0;
        if (wa_version_parse_sw((const uint8_t *)again, (size_t)n, &rev2) != 0 || rev2 != rev)
            __builtin_trap();
    } else if (rc != WA_VERSION_ENOTFOUND && rc != WA_VERSION_ERANGE) {
        __builtin_trap();
    }
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = 0;
        char url[128];
        if (wa_version_sw_url(s, url, sizeof(url)) == 0 && strstr(url, "/sw.js") == NULL)
            __builtin_trap();
        wa_version_t v;
        if (wa_version_parse(s, &v) == 0) {
            char back[WA_VERSION_STRLEN];
            wa_version_format(&v, back, sizeof(back));
            wa_version_t w;
            if (wa_version_parse(back, &w) != 0 || wa_version_cmp(&v, &w) != 0)
                __builtin_trap();
        }
        free(s);
    }
    free(copy);
    return 0;
}
