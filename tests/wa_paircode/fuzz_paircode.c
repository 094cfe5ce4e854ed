/* libFuzzer target for the pairing-code parsers: decodes any input as a
 * node and reads it as the phone's primary_hello notification (with and
 * without an expected ref) and as WhatsApp's answer to companion_hello.
 * Whatever they accept must have the sizes they promise (the lengths are
 * read back byte by byte, so ASan sees any out-of-bounds pointer), and a
 * companion_finish built from an accepted ref must encode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/node.h"
#include "session/wa/paircode.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

static unsigned touch(const uint8_t *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_node_t *n = NULL;
    if (wa_node_decode(data, size, &n) != 0)
        return 0;
    volatile unsigned sink = 0;
    wa_paircode_primary_hello_t ph;
    int rc = wa_paircode_parse_primary_hello(n, NULL, 0, &ph);
    check(rc <= 0 && rc >= WA_PAIRCODE_ENOMEM);
    if (rc == 0) {
        check(ph.ref_len >= 1 && ph.ref_len <= WA_PAIRCODE_REF_MAX);
        sink += touch(ph.ref, ph.ref_len) + touch(ph.wrapped, WA_PAIRCODE_WRAPPED_LEN) +
                touch(ph.primary_ident_pub, 32);
        /* the same ref matches, another does not */
        wa_paircode_primary_hello_t again;
        check(wa_paircode_parse_primary_hello(n, ph.ref, ph.ref_len, &again) == 0);
        check(wa_paircode_parse_primary_hello(n, ph.ref, ph.ref_len - 1, &again) ==
              WA_PAIRCODE_EREF);
        static const uint8_t bundle[WA_PAIRCODE_BUNDLE_LEN], ident[32];
        wa_node_t *f = wa_paircode_finish_node("15551234567", bundle, sizeof(bundle), ident, ph.ref,
                                               ph.ref_len);
        check(f != NULL);
        uint8_t *enc;
        size_t len;
        check(wa_node_encode(f, &enc, &len) == 0);
        free(enc);
        wa_node_free(f);
    }
    const uint8_t *ref;
    size_t ref_len;
    int err;
    rc = wa_paircode_parse_hello_result(n, &ref, &ref_len, &err);
    check(rc <= 0 && rc >= WA_PAIRCODE_ENOMEM);
    if (rc == 0) {
        check(ref_len >= 1 && ref_len <= WA_PAIRCODE_REF_MAX);
        sink += touch(ref, ref_len);
    }
    (void)sink;
    wa_node_free(n);
    return 0;
}
