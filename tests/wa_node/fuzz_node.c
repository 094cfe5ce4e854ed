/* libFuzzer target for the binary node decoder: decode any input; when it
 * decodes, re-encode it, decode that again and render it as text. The second
 * decode must succeed or fail cleanly, but need not equal the first: the
 * reference encoding normalises JID text (an "_agent" part or a ":0" device
 * is not kept), so byte-level equality is checked on the reference vectors
 * instead (node_test). */
#include <stdint.h>
#include <stdlib.h>

#include "session/wa/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_node_t *n = NULL;
    if (wa_node_decode(data, size, &n) != 0)
        return 0;
    uint8_t *enc;
    size_t len;
    if (wa_node_encode(n, &enc, &len) == 0) {
        wa_node_t *again = NULL;
        if (wa_node_decode(enc, len, &again) == 0)
            wa_node_free(again);
        free(enc);
    }
    char *t = wa_node_to_text(n, 0);
    free(t);
    wa_node_free(n);
    return 0;
}
