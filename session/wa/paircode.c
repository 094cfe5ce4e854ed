/* Pairing-code crypto and node codec (see paircode.h), on the primitives
 * of crypto.h. The shapes follow whatsmeow's pair-code.go and whatsapp-rust's
 * wacore/src/pair_code.rs; the byte-level results are checked against
 * vectors made by the reference JavaScript client (tests/wa_paircode). */
#include "session/wa/paircode.h"

#include <stdio.h>
#include <string.h>

#include "session/wa/crypto.h"

static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";
static const char bundle_info[] = "link_code_pairing_key_bundle_encryption_key";
static const char adv_info[] = "adv_secret";

const char *wa_paircode_strerror(int rc)
{
    switch (rc) {
    case WA_PAIRCODE_OK:
        return "ok";
    case WA_PAIRCODE_EINVAL:
        return "invalid argument";
    case WA_PAIRCODE_ECRYPTO:
        return "crypto failure";
    case WA_PAIRCODE_EAUTH:
        return "key bundle does not open";
    case WA_PAIRCODE_EMISSING:
        return "required element missing";
    case WA_PAIRCODE_ESIZE:
        return "element of the wrong size or repeated";
    case WA_PAIRCODE_EREF:
        return "pairing ref does not match";
    case WA_PAIRCODE_ESTAGE:
        return "unexpected node or stage";
    case WA_PAIRCODE_EREFUSED:
        return "refused by WhatsApp";
    case WA_PAIRCODE_ENOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* --- the code --- */

void wa_paircode_encode(const uint8_t rnd[5], char code[WA_PAIRCODE_CHARS + 1])
{
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | rnd[i];
    for (int i = 0; i < WA_PAIRCODE_CHARS; i++)
        code[i] = alphabet[(v >> (5 * (WA_PAIRCODE_CHARS - 1 - i))) & 31];
    code[WA_PAIRCODE_CHARS] = 0;
}

void wa_paircode_format(const char *code, char out[WA_PAIRCODE_CHARS + 2])
{
    snprintf(out, WA_PAIRCODE_CHARS + 2, "%.4s-%.4s", code, strlen(code) > 4 ? code + 4 : "");
}

int wa_paircode_normalize(const char *typed, char code[WA_PAIRCODE_CHARS + 1])
{
    size_t n = 0;
    int dash = 0;
    for (const char *p = typed; *p; p++) {
        char ch = *p;
        if (ch == ' ')
            continue;
        if (ch == '-') {
            if (dash++ || n != 4)
                return WA_PAIRCODE_EINVAL;
            continue;
        }
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (!strchr(alphabet, ch) || n >= WA_PAIRCODE_CHARS)
            return WA_PAIRCODE_EINVAL;
        code[n++] = ch;
    }
    if (n != WA_PAIRCODE_CHARS)
        return WA_PAIRCODE_EINVAL;
    code[n] = 0;
    return 0;
}

/* A run of printable ASCII without parentheses, not starting or ending
 * with a space. */
static int display_part(const char *s, size_t n)
{
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '(' || s[i] == ')')
            return 0;
    return 1;
}

int wa_paircode_display_ok(const char *display)
{
    if (!display)
        return 0;
    size_t n = strlen(display);
    const char *open = strstr(display, " (");
    if (n > 64 || n < 5 || !open || display[n - 1] != ')')
        return 0;
    return display_part(display, (size_t)(open - display)) &&
           display_part(open + 2, (size_t)(display + n - 1 - (open + 2)));
}

int wa_paircode_phone_ok(const char *phone)
{
    size_t n = phone ? strlen(phone) : 0;
    if (n == 0 || n > WA_PAIRCODE_PHONE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (phone[i] < '0' || phone[i] > '9')
            return 0;
    return 1;
}

/* --- keys --- */

static int code_ok(const char *code)
{
    if (!code || strlen(code) != WA_PAIRCODE_CHARS)
        return 0;
    for (int i = 0; i < WA_PAIRCODE_CHARS; i++)
        if (!strchr(alphabet, code[i]))
            return 0;
    return 1;
}

int wa_paircode_key(const char *code, const uint8_t salt[32], uint8_t key[32])
{
    if (!code_ok(code))
        return WA_PAIRCODE_EINVAL;
    return wa_crypto_pbkdf2_sha256((const uint8_t *)code, WA_PAIRCODE_CHARS, salt, 32,
                                   WA_PAIRCODE_ITERATIONS, key, 32)
               ? WA_PAIRCODE_ECRYPTO
               : 0;
}

int wa_paircode_wrap(const char *code, const uint8_t salt[32], const uint8_t iv[16],
                     const uint8_t pub[32], uint8_t out[WA_PAIRCODE_WRAPPED_LEN])
{
    uint8_t key[32];
    int rc = wa_paircode_key(code, salt, key);
    if (rc == 0) {
        memcpy(out, salt, 32);
        memcpy(out + 32, iv, 16);
        rc = wa_crypto_aes256ctr(key, iv, pub, 32, out + 48) ? WA_PAIRCODE_ECRYPTO : 0;
    }
    explicit_bzero(key, sizeof(key));
    return rc;
}

int wa_paircode_unwrap(const char *code, const uint8_t wrapped[WA_PAIRCODE_WRAPPED_LEN],
                       uint8_t pub[32])
{
    uint8_t key[32];
    int rc = wa_paircode_key(code, wrapped, key);
    if (rc == 0)
        rc =
            wa_crypto_aes256ctr(key, wrapped + 32, wrapped + 48, 32, pub) ? WA_PAIRCODE_ECRYPTO : 0;
    explicit_bzero(key, sizeof(key));
    return rc;
}

/* --- bundle and adv secret --- */

static int bundle_key(const uint8_t eph_shared[32], const uint8_t salt[32], uint8_t key[32])
{
    return wa_crypto_hkdf(salt, 32, eph_shared, 32, (const uint8_t *)bundle_info,
                          sizeof(bundle_info) - 1, key, 32)
               ? WA_PAIRCODE_ECRYPTO
               : 0;
}

int wa_paircode_bundle_seal(const uint8_t eph_shared[32], const uint8_t salt[32],
                            const uint8_t nonce[12],
                            const uint8_t plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN],
                            uint8_t out[WA_PAIRCODE_BUNDLE_LEN])
{
    uint8_t key[32];
    int rc = bundle_key(eph_shared, salt, key);
    if (rc == 0) {
        memcpy(out, salt, 32);
        memcpy(out + 32, nonce, 12);
        rc = wa_crypto_aesgcm_seal(key, nonce, NULL, 0, plain, WA_PAIRCODE_BUNDLE_PLAIN_LEN,
                                   out + 44)
                 ? WA_PAIRCODE_ECRYPTO
                 : 0;
    }
    explicit_bzero(key, sizeof(key));
    return rc;
}

int wa_paircode_bundle_open(const uint8_t eph_shared[32], const uint8_t *bundle, size_t len,
                            uint8_t plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN])
{
    if (!bundle || len != WA_PAIRCODE_BUNDLE_LEN)
        return WA_PAIRCODE_ESIZE;
    uint8_t key[32];
    int rc = bundle_key(eph_shared, bundle, key);
    if (rc == 0) {
        rc = wa_crypto_aesgcm_open(key, bundle + 32, NULL, 0, bundle + 44, len - 44, plain);
        rc = rc == WA_CRYPTO_EAUTH ? WA_PAIRCODE_EAUTH : rc ? WA_PAIRCODE_ECRYPTO : 0;
    }
    explicit_bzero(key, sizeof(key));
    return rc;
}

int wa_paircode_adv_secret(const uint8_t eph_shared[32], const uint8_t ident_shared[32],
                           const uint8_t random[32], uint8_t out[32])
{
    uint8_t ikm[96];
    memcpy(ikm, eph_shared, 32);
    memcpy(ikm + 32, ident_shared, 32);
    memcpy(ikm + 64, random, 32);
    int rc = wa_crypto_hkdf(NULL, 0, ikm, sizeof(ikm), (const uint8_t *)adv_info,
                            sizeof(adv_info) - 1, out, 32);
    explicit_bzero(ikm, sizeof(ikm));
    return rc ? WA_PAIRCODE_ECRYPTO : 0;
}

int wa_paircode_finish_keys(const wa_paircode_finish_in_t *in,
                            uint8_t bundle[WA_PAIRCODE_BUNDLE_LEN], uint8_t adv_secret[32])
{
    uint8_t eph[32], ident[32], plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN];
    int rc = WA_PAIRCODE_ECRYPTO;
    if (wa_crypto_x25519(in->eph_priv, in->primary_eph_pub, eph) == 0 &&
        wa_crypto_x25519(in->ident_priv, in->primary_ident_pub, ident) == 0) {
        memcpy(plain, in->ident_pub, 32);
        memcpy(plain + 32, in->primary_ident_pub, 32);
        memcpy(plain + 64, in->random, 32);
        rc = wa_paircode_bundle_seal(eph, in->salt, in->nonce, plain, bundle);
        if (rc == 0)
            rc = wa_paircode_adv_secret(eph, ident, in->random, adv_secret);
    }
    explicit_bzero(eph, sizeof(eph));
    explicit_bzero(ident, sizeof(ident));
    explicit_bzero(plain, sizeof(plain));
    return rc;
}

/* --- nodes --- */

static wa_node_t *reg_node(const char *phone, const char *stage)
{
    if (!wa_paircode_phone_ok(phone))
        return NULL;
    char jid[WA_PAIRCODE_PHONE_MAX + 32];
    snprintf(jid, sizeof(jid), "%s@s.whatsapp.net", phone);
    wa_node_t *n = wa_node_new("link_code_companion_reg");
    if (n && (wa_node_set_attr(n, "jid", jid) || wa_node_set_attr(n, "stage", stage))) {
        wa_node_free(n);
        return NULL;
    }
    return n;
}

/* Appends <tag> with byte content; returns 0 or -1. */
static int add_bytes(wa_node_t *n, const char *tag, const void *b, size_t len)
{
    wa_node_t *c = wa_node_add(n, tag);
    return c && wa_node_set_bytes(c, b, len) == 0 ? 0 : -1;
}

static int add_string(wa_node_t *n, const char *tag, const char *s)
{
    wa_node_t *c = wa_node_add(n, tag);
    return c && wa_node_set_string(c, s) == 0 ? 0 : -1;
}

wa_node_t *wa_paircode_hello_node(const char *phone, const uint8_t wrapped[WA_PAIRCODE_WRAPPED_LEN],
                                  const uint8_t noise_pub[32], const char *platform_id,
                                  const char *display)
{
    if (!platform_id || !*platform_id || strlen(platform_id) > 2 ||
        !wa_paircode_display_ok(display))
        return NULL;
    wa_node_t *n = reg_node(phone, "companion_hello");
    static const uint8_t nonce = 0;
    if (!n || wa_node_set_attr(n, "should_show_push_notification", "true") ||
        add_bytes(n, "link_code_pairing_wrapped_companion_ephemeral_pub", wrapped,
                  WA_PAIRCODE_WRAPPED_LEN) ||
        add_bytes(n, "companion_server_auth_key_pub", noise_pub, 32) ||
        add_string(n, "companion_platform_id", platform_id) ||
        add_string(n, "companion_platform_display", display) ||
        add_bytes(n, "link_code_pairing_nonce", &nonce, 1)) {
        wa_node_free(n);
        return NULL;
    }
    return n;
}

wa_node_t *wa_paircode_finish_node(const char *phone, const uint8_t *bundle, size_t bundle_len,
                                   const uint8_t ident_pub[32], const uint8_t *ref, size_t ref_len)
{
    if (!bundle || !bundle_len || !ref || !ref_len || ref_len > WA_PAIRCODE_REF_MAX)
        return NULL;
    wa_node_t *n = reg_node(phone, "companion_finish");
    if (!n || add_bytes(n, "link_code_pairing_wrapped_key_bundle", bundle, bundle_len) ||
        add_bytes(n, "companion_identity_public", ident_pub, 32) ||
        add_bytes(n, "link_code_pairing_ref", ref, ref_len)) {
        wa_node_free(n);
        return NULL;
    }
    return n;
}

/* The content of the only child `tag` of n, of exactly `want` bytes (or
 * 1..WA_PAIRCODE_REF_MAX when want is 0). */
static int only_child(const wa_node_t *n, const char *tag, size_t want, const uint8_t **out,
                      size_t *len)
{
    const wa_node_t *found = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        if (strcmp(n->children[i]->tag, tag))
            continue;
        if (found)
            return WA_PAIRCODE_ESIZE;
        found = n->children[i];
    }
    if (!found)
        return WA_PAIRCODE_EMISSING;
    size_t l = 0;
    const uint8_t *b = wa_node_content(found, &l);
    if (!b)
        return WA_PAIRCODE_EMISSING;
    if (want ? l != want : (l == 0 || l > WA_PAIRCODE_REF_MAX))
        return WA_PAIRCODE_ESIZE;
    *out = b;
    if (len)
        *len = l;
    return 0;
}

static int from_server(const wa_node_t *n)
{
    const char *from = wa_node_attr(n, "from");
    return !from || !strcmp(from, "s.whatsapp.net") || !strcmp(from, "@s.whatsapp.net");
}

int wa_paircode_parse_hello_result(const wa_node_t *iq, const uint8_t **ref, size_t *ref_len,
                                   int *err_code)
{
    if (err_code)
        *err_code = 0;
    if (!iq || strcmp(iq->tag, "iq") || !from_server(iq))
        return WA_PAIRCODE_ESTAGE;
    const char *type = wa_node_attr(iq, "type");
    if (type && !strcmp(type, "error")) {
        const wa_node_t *e = wa_node_child(iq, "error");
        const char *code = e ? wa_node_attr(e, "code") : NULL;
        if (err_code && code) {
            int v = 0;
            for (const char *p = code; *p >= '0' && *p <= '9' && v < 100000; p++)
                v = v * 10 + (*p - '0');
            *err_code = v;
        }
        return WA_PAIRCODE_EREFUSED;
    }
    if (!type || strcmp(type, "result"))
        return WA_PAIRCODE_ESTAGE;
    const wa_node_t *reg = wa_node_child(iq, "link_code_companion_reg");
    if (!reg)
        return WA_PAIRCODE_EMISSING;
    return only_child(reg, "link_code_pairing_ref", 0, ref, ref_len);
}

int wa_paircode_parse_primary_hello(const wa_node_t *n, const uint8_t *want_ref,
                                    size_t want_ref_len, wa_paircode_primary_hello_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *type = n ? wa_node_attr(n, "type") : NULL;
    if (!n || strcmp(n->tag, "notification") || !type || strcmp(type, "link_code_companion_reg") ||
        !from_server(n))
        return WA_PAIRCODE_ESTAGE;
    const wa_node_t *reg = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        if (strcmp(n->children[i]->tag, "link_code_companion_reg"))
            continue;
        if (reg)
            return WA_PAIRCODE_ESIZE;
        reg = n->children[i];
    }
    if (!reg)
        return WA_PAIRCODE_EMISSING;
    const char *stage = wa_node_attr(reg, "stage");
    if (stage && strcmp(stage, "primary_hello"))
        return WA_PAIRCODE_ESTAGE;
    wa_paircode_primary_hello_t h;
    int rc = only_child(reg, "link_code_pairing_ref", 0, &h.ref, &h.ref_len);
    if (rc == 0)
        rc = only_child(reg, "link_code_pairing_wrapped_primary_ephemeral_pub",
                        WA_PAIRCODE_WRAPPED_LEN, &h.wrapped, NULL);
    if (rc == 0)
        rc = only_child(reg, "primary_identity_pub", 32, &h.primary_ident_pub, NULL);
    if (rc)
        return rc;
    if (want_ref && (h.ref_len != want_ref_len || memcmp(h.ref, want_ref, want_ref_len)))
        return WA_PAIRCODE_EREF;
    *out = h;
    return 0;
}
