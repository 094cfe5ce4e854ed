/* libFuzzer target for the QR payload parser (the linking string the phone
 * scans): any string parses or is refused; a parsed one rebuilds exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/pair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    wa_pair_qr_parts_t p;
    if (wa_pair_qr_parse(s, &p) == 0) {
        char *again = wa_pair_qr((const uint8_t *)p.ref, strlen(p.ref), p.noise_pub, p.ident_pub,
                                 p.adv_secret);
        if (again && strcmp(p.platform, "1") == 0 && strcmp(again, s) != 0)
            __builtin_trap();
        free(again);
        wa_pair_qr_parts_free(&p);
    }
    free(s);
    return 0;
}
