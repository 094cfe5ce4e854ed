/* libFuzzer target for the passkey step's parsers (session/wa/passkey.c):
 * the first byte picks what the rest is: 0 the content of
 * <passkey_request_options> (WebAuthn options JSON), 1 the content of
 * <primary_ephemeral_identity> (a PrimaryEphemeralIdentity protobuf), 2 an
 * assertion JSON as the API receives it, 3 the content of <ref>, 4 a binary
 * node given to every node parser. Invariants: a parsed assertion's
 * normalised JSON parses again to the same JSON, credential and challenge;
 * parsed options keep the input byte for byte. Any violation traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/node.h"
#include "session/wa/passkey.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

static wa_node_t *holding(const char *tag, const uint8_t *b, size_t n)
{
    wa_node_t *root = wa_node_new("notification");
    check(root != NULL);
    wa_node_set_bytes(wa_node_add(root, tag), b, n);
    return root;
}

static void all_node_parsers(const wa_node_t *n)
{
    wa_passkey_options_t o;
    if (wa_passkey_parse_request(n, &o) == 0) {
        check(o.json && strlen(o.json) == o.json_len);
        check(o.challenge_len >= 1 && o.challenge_len <= WA_PASSKEY_CHALLENGE_MAX);
        wa_passkey_options_free(&o);
    }
    uint8_t pub[32], nonce[32];
    (void)wa_passkey_parse_continuation(n, pub, nonce);
    char ref[WA_PASSKEY_REF_MAX + 1];
    if (wa_passkey_parse_ref(n, ref, sizeof(ref)) == 0)
        check(strlen(ref) >= 1 && strlen(ref) <= WA_PASSKEY_REF_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    wa_node_t *node = NULL;
    switch (data[0] % 5) {
    case 0: {
        node = holding("passkey_request_options", b, n);
        wa_passkey_options_t o;
        if (wa_passkey_parse_request(node, &o) == 0) {
            check(o.json_len == n && !memcmp(o.json, b, n));
            wa_passkey_options_free(&o);
        }
        break;
    }
    case 1: {
        node = holding("primary_ephemeral_identity", b, n);
        uint8_t pub[32], nonce[32];
        (void)wa_passkey_parse_continuation(node, pub, nonce);
        break;
    }
    case 2: {
        wa_passkey_assertion_t a, again;
        if (wa_passkey_parse_assertion((const char *)b, n, &a) == 0) {
            check(a.json && strlen(a.json) == a.json_len);
            check(wa_passkey_parse_assertion(a.json, a.json_len, &again) == 0);
            check(again.json_len == a.json_len && !memcmp(again.json, a.json, a.json_len));
            check(again.cred_id_len == a.cred_id_len &&
                  !memcmp(again.cred_id, a.cred_id, a.cred_id_len));
            check(again.challenge_len == a.challenge_len &&
                  !memcmp(again.challenge, a.challenge, a.challenge_len));
            wa_passkey_assertion_free(&again);
            wa_passkey_assertion_free(&a);
        }
        break;
    }
    case 3: {
        wa_node_t *iq = wa_node_new("iq");
        check(iq != NULL);
        wa_node_set_bytes(wa_node_add(iq, "ref"), b, n);
        node = iq;
        all_node_parsers(node);
        break;
    }
    case 4:
        if (wa_node_decode(b, n, &node) == 0)
            all_node_parsers(node);
        break;
    }
    wa_node_free(node);
    return 0;
}
