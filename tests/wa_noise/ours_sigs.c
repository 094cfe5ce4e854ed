/* Prints XEdDSA signatures made by our crypto (session/wa/crypto.c), one
 * "pub msg sig" hex line each, for the reference client to verify:
 *   bazel run //tests/wa_noise:ours_sigs > tests/wa_noise/testdata/ours_sigs.txt
 *   cd tools/baileys-crypto && node gen-vectors.mjs
 * (the latter checks them with Baileys' Curve.verify and records the file's
 * hash in testdata/ours_sigs.baileys, which noise_test checks). */
#include <stdio.h>

#include "session/wa/crypto.h"

static void put_hex(const uint8_t *b, size_t n)
{
    if (n == 0)
        fputs("-", stdout);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

int main(void)
{
    for (int i = 0; i < 16; i++) {
        wa_keypair_t kp;
        uint8_t msg[256], sig[64];
        size_t len = i == 0 ? 0 : (size_t)(1 + i * 15);
        if (wa_crypto_keypair_generate(&kp) || wa_crypto_random(msg, len) ||
            wa_crypto_sign(kp.priv, msg, len, sig)) {
            fprintf(stderr, "ours_sigs: crypto failure\n");
            return 1;
        }
        put_hex(kp.pub, 32);
        putchar(' ');
        put_hex(msg, len);
        putchar(' ');
        put_hex(sig, 64);
        putchar('\n');
    }
    return 0;
}
