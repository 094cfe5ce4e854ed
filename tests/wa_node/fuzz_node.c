/* libFuzzer target for the binary node codec. Decodes any input; when it
 * decodes (N1), re-encodes it (E1, which must succeed) and decodes that (N2).
 * E1 may only fail to decode for a JID with an empty server ("a@"), which the
 * reference cannot read back either. The reference encoding normalises some
 * JID texts once (an "_agent" part, a ":0" device, FB/interop JIDs), so N2
 * need not equal N1; from N2 on the codec must be stable: encode(N2) = E2
 * decodes to N3 = N2, and encode(N3) = E2 byte for byte. Any violation traps.
 * Also renders N1 as text, with and without byte contents. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/node.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_node_t *n1 = NULL, *n2 = NULL, *n3 = NULL;
    uint8_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
    size_t l1, l2, l3;
    int rc = wa_node_decode(data, size, &n1);
    if (rc != 0) {
        check(rc < 0 && n1 == NULL);
        return 0;
    }
    char *t = wa_node_to_text(n1, 0);
    free(t);
    t = wa_node_to_text(n1, 1);
    free(t);
    check(wa_node_encode(n1, &e1, &l1) == 0);
    check(l1 >= 4 && e1[0] == 0);
    rc = wa_node_decode(e1, l1, &n2);
    check(rc == 0 || rc == WA_NODE_EBADJID);
    if (rc == 0) {
        check(wa_node_encode(n2, &e2, &l2) == 0);
        check(wa_node_decode(e2, l2, &n3) == 0);
        check(wa_node_equal(n2, n3));
        check(wa_node_encode(n3, &e3, &l3) == 0);
        check(l3 == l2 && memcmp(e2, e3, l2) == 0);
    }
    wa_node_free(n1);
    wa_node_free(n2);
    wa_node_free(n3);
    free(e1);
    free(e2);
    free(e3);
    return 0;
}
