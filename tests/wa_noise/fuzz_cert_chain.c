/* libFuzzer target for the server's certificate chain (wa_cert_verify), the
 * bytes an impersonator controls. The first byte picks a mode:
 *   0: the rest is the serialized CertChain, verified as is;
 *   1: the rest fills the fields of both certificates (serials, issuer
 *      serials, keys, validity), signed correctly by a fixed root and
 *      intermediate, and the time and the server key it is checked against:
 *      past the signatures, every remaining check runs, and a chain that
 *      verifies must satisfy all of them (else a trap).
 * Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/cert.h"
#include "session/wa/crypto.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

/* A fixed private key, clamped as generated ones are. */
static void fixed_priv(uint8_t priv[32], uint8_t fill)
{
    memset(priv, fill, 32);
    priv[0] &= 248;
    priv[31] = (uint8_t)((priv[31] & 127) | 64);
}

static void take(const uint8_t **p, size_t *n, void *out, size_t len)
{
    memset(out, 0, len);
    size_t k = *n < len ? *n : len;
    memcpy(out, *p, k);
    *p += k;
    *n -= k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t root_priv[32], inter_priv[32];
    fixed_priv(root_priv, 7);
    fixed_priv(inter_priv, 8);
    wa_cert_trust_t trust = {{0}, 0};
    check(wa_crypto_public_from_private(root_priv, trust.root_pub) == 0);
    uint8_t mode = data[0] & 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    uint8_t server_static[32];
    memset(server_static, 5, 32);
    if (mode == 0) {
        int rc = wa_cert_verify(p, n, &trust, server_static, 1700000000);
        check(rc <= 0);
        return 0;
    }
    wa_cert_details_t inter, leaf;
    uint32_t root_serial;
    int64_t now;
    take(&p, &n, &inter.serial, 4);
    take(&p, &n, &inter.issuer_serial, 4);
    take(&p, &n, &inter.not_before, 8);
    take(&p, &n, &inter.not_after, 8);
    take(&p, &n, &leaf.serial, 4);
    take(&p, &n, &leaf.issuer_serial, 4);
    take(&p, &n, &leaf.not_before, 8);
    take(&p, &n, &leaf.not_after, 8);
    take(&p, &n, &root_serial, 4);
    take(&p, &n, &now, 8);
    take(&p, &n, server_static, 32);
    uint8_t flags = 0;
    take(&p, &n, &flags, 1);
    /* the intermediate's key: its own (flag clear) or fuzzed bytes */
    check(wa_crypto_public_from_private(inter_priv, inter.key) == 0);
    if (flags & 1)
        take(&p, &n, inter.key, 32);
    /* the leaf's key: the server key (flag clear) or fuzzed bytes */
    memcpy(leaf.key, server_static, 32);
    if (flags & 2)
        take(&p, &n, leaf.key, 32);
    trust.root_serial = root_serial;
    uint8_t *chain = NULL;
    size_t len = 0;
    check(wa_cert_build_chain(root_priv, inter_priv, &inter, &leaf, &chain, &len) == 0);
    int rc = wa_cert_verify(chain, len, &trust, server_static, now);
    if (rc == WA_CERT_OK) {
        uint8_t inter_pub[32];
        check(wa_crypto_public_from_private(inter_priv, inter_pub) == 0);
        check(inter.issuer_serial == root_serial);
        check(leaf.issuer_serial == inter.serial);
        check(!memcmp(leaf.key, server_static, 32));
        check(!memcmp(inter.key, inter_pub, 32));
        check(now >= 0 && (uint64_t)now >= inter.not_before && (uint64_t)now <= inter.not_after);
        check((uint64_t)now >= leaf.not_before && (uint64_t)now <= leaf.not_after);
    }
    free(chain);
    return 0;
}
