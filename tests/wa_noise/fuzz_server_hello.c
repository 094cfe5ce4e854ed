/* libFuzzer target for the client's side of the Noise handshake: what the
 * server (or anything impersonating it) sends as its hello. The first byte
 * picks a mode, so that the fuzzer also gets past the AEAD and into what is
 * encrypted:
 *   0: the rest is the HandshakeMessage{serverHello} as received;
 *   1: the rest is the certificate chain a real responder (fixed keys)
 *      encrypts into a genuine server hello: the chain parser and the eight
 *      checks run on fuzzed bytes behind valid encryption;
 *   2: a genuine server hello with bytes flipped at fuzzed positions.
 * Any result is fine except a crash, a sanitizer report, or success on a
 * hello the responder did not make (traps). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/cert.h"
#include "session/wa/crypto.h"
#include "session/wa/noise.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

static void keypair(uint8_t seed, wa_keypair_t *kp)
{
    memset(kp->priv, seed, 32);
    kp->priv[0] &= 248;
    kp->priv[31] = (uint8_t)((kp->priv[31] & 127) | 64);
    check(wa_crypto_public_from_private(kp->priv, kp->pub) == 0);
}

/* The client's answer to `hello`; returns its result code. */
static int client_on(const uint8_t *hello, size_t len, const wa_cert_trust_t *trust)
{
    wa_keypair_t cs, ce;
    keypair(1, &cs);
    keypair(2, &ce);
    wa_noise_t *c = wa_noise_new_initiator(&cs, trust, 1700000000);
    check(c != NULL);
    check(wa_noise_set_ephemeral(c, &ce) == 0);
    uint8_t *ch = NULL, *fin = NULL;
    size_t chl, finl;
    check(wa_noise_client_hello(c, &ch, &chl) == 0);
    int cert_err = 0;
    int rc = wa_noise_client_finish(c, hello, len, (const uint8_t *)"p", 1, &fin, &finl, &cert_err);
    check(rc != 0 || (fin && finl > 0));
    free(ch);
    free(fin);
    wa_noise_free(c);
    return rc;
}

/* A genuine server hello from a responder presenting `chain`. */
static uint8_t *genuine_hello(const uint8_t *chain, size_t chain_len, size_t *len)
{
    wa_keypair_t ss, se, cs, ce;
    keypair(3, &ss);
    keypair(4, &se);
    keypair(1, &cs);
    keypair(2, &ce);
    wa_noise_t *srv = wa_noise_new_responder(&ss, chain, chain_len);
    wa_noise_t *cli = wa_noise_new_initiator(&cs, &(wa_cert_trust_t){{0}, 0}, 1700000000);
    check(srv && cli);
    check(wa_noise_set_ephemeral(srv, &se) == 0 && wa_noise_set_ephemeral(cli, &ce) == 0);
    uint8_t *ch = NULL, *sh = NULL;
    size_t chl;
    check(wa_noise_client_hello(cli, &ch, &chl) == 0);
    check(wa_noise_server_hello(srv, ch, chl, &sh, len) == 0);
    free(ch);
    wa_noise_free(srv);
    wa_noise_free(cli);
    return sh;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    wa_cert_trust_t trust = {{0}, 0};
    wa_keypair_t root;
    keypair(9, &root);
    memcpy(trust.root_pub, root.pub, 32);
    uint8_t mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        client_on(data, size, &trust);
    } else if (mode == 1) {
        size_t hl;
        uint8_t *hello = genuine_hello(data, size, &hl);
        int rc = client_on(hello, hl, &trust);
        /* a chain of fuzzed bytes is never signed by our root */
        check(rc == WA_NOISE_ECERT);
        free(hello);
    } else {
        static const uint8_t chain[] = {0x0a, 0x00};
        size_t hl;
        uint8_t *hello = genuine_hello(chain, sizeof(chain), &hl);
        int changed = 0;
        for (size_t i = 0; i + 1 < size; i += 2) {
            size_t at = data[i] % hl;
            if (data[i + 1]) {
                hello[at] ^= data[i + 1];
                changed = 1;
            }
        }
        int rc = client_on(hello, hl, &trust);
        check(rc != 0); /* the chain is rejected anyway; no change makes it pass */
        (void)changed;
        free(hello);
    }
    return 0;
}
