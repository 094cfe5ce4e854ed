/* The passkey step's encodings and derivations (see passkey.h): WebAuthn
 * JSON checked with yajl, WhatsApp's companion_reg protobufs with
 * protobuf-c, the crypto on session/wa/crypto.h. */
#include "session/wa/passkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/base64.h"
#include "proto/wa/companion_reg.pb-c.h"
#include "session/wa/crypto.h"

static const char handoff_info[] = "shortcake-passkey-handoff-v1";
static const char enc_info[] = "Pairing Information Encryption Key";
static const char code_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";

const char *wa_passkey_strerror(int code)
{
    switch (code) {
    case WA_PASSKEY_OK:
        return "ok";
    case WA_PASSKEY_EINVAL:
        return "malformed passkey data";
    case WA_PASSKEY_EFAIL:
        return "out of memory or crypto failure";
    }
    return "unknown error";
}

/* --- JSON helpers --- */

/* Parses json[0..len) as a JSON tree (NULL for anything malformed, with a
 * NUL byte, or over the limit). Caller frees with yajl_tree_free. */
static yajl_val parse_json(const char *json, size_t len, size_t max)
{
    if (!json || len == 0 || len > max || memchr(json, 0, len))
        return NULL;
    char *text = malloc(len + 1);
    if (!text)
        return NULL;
    memcpy(text, json, len);
    text[len] = 0;
    char err[64];
    yajl_val v = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    return v;
}

/* The member `key` of object `o`, or NULL. */
static yajl_val member(yajl_val o, const char *key)
{
    if (!YAJL_IS_OBJECT(o))
        return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (!strcmp(o->u.object.keys[i], key))
            return o->u.object.values[i];
    return NULL;
}

/* 1 when v is the string s. */
static int is_str(yajl_val v, const char *s)
{
    return YAJL_IS_STRING(v) && v->u.string && !strcmp(v->u.string, s);
}

/* Decodes the base64url string value v into out (min..cap bytes). Returns
 * the length or -1. */
static long b64url_value(yajl_val v, uint8_t *out, size_t min, size_t cap)
{
    if (!YAJL_IS_STRING(v))
        return -1;
    const char *s = v->u.string;
    long n = b64url_decode(s, strlen(s), out, cap);
    return n >= 0 && (size_t)n >= min ? n : -1;
}

/* --- the request --- */

void wa_passkey_options_free(wa_passkey_options_t *o)
{
    if (!o)
        return;
    free(o->json);
    explicit_bzero(o, sizeof(*o));
}

int wa_passkey_options_parse(const uint8_t *json, size_t len, wa_passkey_options_t *out)
{
    memset(out, 0, sizeof(*out));
    yajl_val v = parse_json((const char *)json, len, WA_PASSKEY_JSON_MAX);
    int rc = WA_PASSKEY_EINVAL;
    if (!YAJL_IS_OBJECT(v))
        goto done;
    long n = b64url_value(member(v, "challenge"), out->challenge, 1, sizeof(out->challenge));
    if (n < 0)
        goto done;
    out->challenge_len = (size_t)n;
    yajl_val x = member(v, "rpId");
    if (x && !YAJL_IS_STRING(x))
        goto done;
    x = member(v, "timeout");
    if (x && (!YAJL_IS_NUMBER(x) || YAJL_GET_DOUBLE(x) < 0))
        goto done;
    x = member(v, "userVerification");
    if (x && !is_str(x, "required") && !is_str(x, "preferred") && !is_str(x, "discouraged"))
        goto done;
    x = member(v, "allowCredentials");
    if (x) {
        if (!YAJL_IS_ARRAY(x) || x->u.array.len > WA_PASSKEY_ALLOW_MAX)
            goto done;
        uint8_t id[WA_PASSKEY_CRED_ID_MAX];
        for (size_t i = 0; i < x->u.array.len; i++) {
            yajl_val c = x->u.array.values[i];
            yajl_val t = member(c, "type");
            if (!YAJL_IS_OBJECT(c) || b64url_value(member(c, "id"), id, 1, sizeof(id)) < 0 ||
                (t && !YAJL_IS_STRING(t)))
                goto done;
        }
    }
    rc = WA_PASSKEY_EFAIL;
    if (!(out->json = malloc(len + 1)))
        goto done;
    memcpy(out->json, json, len);
    out->json[len] = 0;
    out->json_len = len;
    rc = WA_PASSKEY_OK;
done:
    yajl_tree_free(v);
    if (rc)
        wa_passkey_options_free(out);
    return rc;
}

int wa_passkey_parse_request(const wa_node_t *n, wa_passkey_options_t *out)
{
    memset(out, 0, sizeof(*out));
    const wa_node_t *o = n ? wa_node_child(n, "passkey_request_options") : NULL;
    size_t len = 0;
    const uint8_t *b = o ? wa_node_content(o, &len) : NULL;
    if (!b)
        return WA_PASSKEY_EINVAL;
    return wa_passkey_options_parse(b, len, out);
}

int wa_passkey_parse_ref(const wa_node_t *iq, char *ref, size_t cap)
{
    const wa_node_t *r = iq ? wa_node_child(iq, "ref") : NULL;
    size_t len = 0;
    const uint8_t *b = r ? wa_node_content(r, &len) : NULL;
    if (!b || len == 0 || len > WA_PASSKEY_REF_MAX || len >= cap)
        return WA_PASSKEY_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (b[i] < 0x20 || b[i] > 0x7e)
            return WA_PASSKEY_EINVAL;
    memcpy(ref, b, len);
    ref[len] = 0;
    return WA_PASSKEY_OK;
}

/* --- the assertion --- */

void wa_passkey_assertion_free(wa_passkey_assertion_t *a)
{
    if (!a)
        return;
    free(a->json);
    explicit_bzero(a, sizeof(*a));
}

#define KEY(g, k) yajl_gen_string(g, (const unsigned char *)(k), strlen(k))

/* Writes key: base64url(data) (or null when data is NULL). */
static int put_b64(yajl_gen g, const char *key, const uint8_t *data, size_t len)
{
    KEY(g, key);
    if (!data)
        return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;
    char *s = b64url_encode(data, len);
    if (!s)
        return -1;
    int rc = yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok ? 0 : -1;
    free(s);
    return rc;
}

/* The decoded parts of the response member. */
typedef struct {
    uint8_t client_data[WA_PASSKEY_CLIENT_DATA_MAX];
    size_t client_data_len;
    uint8_t auth_data[WA_PASSKEY_AUTH_DATA_MAX];
    size_t auth_data_len;
    uint8_t sig[WA_PASSKEY_SIG_MAX];
    size_t sig_len;
    uint8_t user[WA_PASSKEY_CRED_ID_MAX];
    size_t user_len;
    int has_user;
} response_t;

/* clientDataJSON: an object of type "webauthn.get" with a challenge. */
static int check_client_data(const response_t *r, wa_passkey_assertion_t *out)
{
    yajl_val cd =
        parse_json((const char *)r->client_data, r->client_data_len, WA_PASSKEY_CLIENT_DATA_MAX);
    yajl_val t = member(cd, "type");
    long n = -1;
    if (is_str(t, "webauthn.get"))
        n = b64url_value(member(cd, "challenge"), out->challenge, 1, sizeof(out->challenge));
    yajl_tree_free(cd);
    if (n < 0)
        return WA_PASSKEY_EINVAL;
    out->challenge_len = (size_t)n;
    return WA_PASSKEY_OK;
}

static int normalise(const response_t *r, wa_passkey_assertion_t *out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return WA_PASSKEY_EFAIL;
    int bad = yajl_gen_map_open(g) != yajl_gen_status_ok;
    bad |= put_b64(g, "id", out->cred_id, out->cred_id_len);
    bad |= put_b64(g, "rawId", out->cred_id, out->cred_id_len);
    KEY(g, "type");
    bad |= yajl_gen_string(g, (const unsigned char *)"public-key", 10) != yajl_gen_status_ok;
    KEY(g, "response");
    bad |= yajl_gen_map_open(g) != yajl_gen_status_ok;
    bad |= put_b64(g, "clientDataJSON", r->client_data, r->client_data_len);
    bad |= put_b64(g, "authenticatorData", r->auth_data, r->auth_data_len);
    bad |= put_b64(g, "signature", r->sig, r->sig_len);
    bad |= put_b64(g, "userHandle", r->has_user ? r->user : NULL, r->user_len);
    bad |= yajl_gen_map_close(g) != yajl_gen_status_ok;
    bad |= yajl_gen_map_close(g) != yajl_gen_status_ok;
    const unsigned char *buf;
    size_t len;
    int rc = WA_PASSKEY_EFAIL;
    if (!bad && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
        (out->json = malloc(len + 1))) {
        memcpy(out->json, buf, len);
        out->json[len] = 0;
        out->json_len = len;
        rc = WA_PASSKEY_OK;
    }
    yajl_gen_free(g);
    return rc;
}

int wa_passkey_parse_assertion(const char *json, size_t len, wa_passkey_assertion_t *out)
{
    memset(out, 0, sizeof(*out));
    response_t *r = calloc(1, sizeof(*r));
    if (!r)
        return WA_PASSKEY_EFAIL;
    yajl_val v = parse_json(json, len, WA_PASSKEY_JSON_MAX);
    int rc = WA_PASSKEY_EINVAL;
    if (!YAJL_IS_OBJECT(v))
        goto done;
    long n = b64url_value(member(v, "id"), out->cred_id, 1, sizeof(out->cred_id));
    if (n < 0)
        goto done;
    out->cred_id_len = (size_t)n;
    yajl_val raw = member(v, "rawId");
    if (raw) {
        uint8_t rid[WA_PASSKEY_CRED_ID_MAX];
        n = b64url_value(raw, rid, 1, sizeof(rid));
        if (n < 0 || (size_t)n != out->cred_id_len || memcmp(rid, out->cred_id, (size_t)n))
            goto done;
    }
    yajl_val type = member(v, "type");
    if (type && !is_str(type, "public-key"))
        goto done;
    yajl_val resp = member(v, "response");
    if (!YAJL_IS_OBJECT(resp))
        goto done;
    n = b64url_value(member(resp, "clientDataJSON"), r->client_data, 1, sizeof(r->client_data));
    if (n < 0)
        goto done;
    r->client_data_len = (size_t)n;
    n = b64url_value(member(resp, "authenticatorData"), r->auth_data, 37, sizeof(r->auth_data));
    if (n < 0)
        goto done;
    r->auth_data_len = (size_t)n;
    n = b64url_value(member(resp, "signature"), r->sig, 1, sizeof(r->sig));
    if (n < 0)
        goto done;
    r->sig_len = (size_t)n;
    yajl_val uh = member(resp, "userHandle");
    if (uh && !YAJL_IS_NULL(uh)) {
        n = b64url_value(uh, r->user, 0, sizeof(r->user));
        if (n < 0)
            goto done;
        r->user_len = (size_t)n;
        r->has_user = 1;
    }
    if ((rc = check_client_data(r, out)) != WA_PASSKEY_OK)
        goto done;
    rc = normalise(r, out);
done:
    yajl_tree_free(v);
    explicit_bzero(r, sizeof(*r));
    free(r);
    if (rc)
        wa_passkey_assertion_free(out);
    return rc;
}

/* --- the prologue --- */

int wa_passkey_handoff_key(const uint8_t adv_secret[32], uint8_t key[32])
{
    return wa_crypto_hkdf(NULL, 0, adv_secret, 32, (const uint8_t *)handoff_info,
                          sizeof(handoff_info) - 1, key, 32)
               ? WA_PASSKEY_EFAIL
               : WA_PASSKEY_OK;
}

int wa_passkey_handoff_proof(const uint8_t key[32], const uint8_t *payload, size_t len,
                             uint8_t proof[32])
{
    const uint8_t *parts[1] = {payload};
    size_t lens[1] = {len};
    return wa_crypto_hmac_sha256(key, 32, parts, lens, 1, proof) ? WA_PASSKEY_EFAIL : WA_PASSKEY_OK;
}

/* Serializes a protobuf-c message into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf)
        *len = protobuf_c_message_pack(m, buf);
    return buf;
}

void wa_passkey_prologue_free(wa_passkey_prologue_t *p)
{
    if (!p)
        return;
    free(p->identity);
    free(p->payload);
    explicit_bzero(p, sizeof(*p));
}

int wa_passkey_prologue(const uint8_t eph_pub[32], int platform_type, const char *ref,
                        const uint8_t nonce[32], wa_passkey_prologue_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t rl = ref ? strnlen(ref, WA_PASSKEY_REF_MAX + 1) : 0;
    if (rl == 0 || rl > WA_PASSKEY_REF_MAX)
        return WA_PASSKEY_EINVAL;
    Wa__CompanionEphemeralIdentity id = WA__COMPANION_EPHEMERAL_IDENTITY__INIT;
    id.has_publickey = 1;
    id.publickey.data = (uint8_t *)eph_pub;
    id.publickey.len = 32;
    id.has_devicetype = 1;
    id.devicetype = (Wa__DeviceProps__PlatformType)platform_type;
    id.ref = (char *)ref;
    if (!(out->identity = pack(&id.base, &out->identity_len)))
        return WA_PASSKEY_EFAIL;
    const uint8_t *parts[2] = {out->identity, nonce};
    size_t lens[2] = {out->identity_len, 32};
    if (wa_crypto_sha256(parts, lens, 2, out->commitment)) {
        wa_passkey_prologue_free(out);
        return WA_PASSKEY_EFAIL;
    }
    Wa__CompanionCommitment cm = WA__COMPANION_COMMITMENT__INIT;
    cm.has_hash = 1;
    cm.hash.data = out->commitment;
    cm.hash.len = 32;
    Wa__ProloguePayload pp = WA__PROLOGUE_PAYLOAD__INIT;
    pp.has_companionephemeralidentity = 1;
    pp.companionephemeralidentity.data = out->identity;
    pp.companionephemeralidentity.len = out->identity_len;
    pp.commitment = &cm;
    if (!(out->payload = pack(&pp.base, &out->payload_len))) {
        wa_passkey_prologue_free(out);
        return WA_PASSKEY_EFAIL;
    }
    return WA_PASSKEY_OK;
}

wa_node_t *wa_passkey_prologue_node(const wa_passkey_assertion_t *a, const wa_passkey_prologue_t *p,
                                    const uint8_t proof[32])
{
    wa_node_t *n = wa_node_new("passkey_prologue");
    if (!n)
        return NULL;
    wa_node_t *c[4] = {wa_node_add(n, "credential_id"), wa_node_add(n, "webauthn_assertion"),
                       wa_node_add(n, "prologue_payload"),
                       proof ? wa_node_add(n, "pairing_handoff_proof") : NULL};
    if (!c[0] || !c[1] || !c[2] || (proof && !c[3]) ||
        wa_node_set_bytes(c[0], a->cred_id, a->cred_id_len) ||
        wa_node_set_bytes(c[1], a->json, a->json_len) ||
        wa_node_set_bytes(c[2], p->payload, p->payload_len) ||
        (proof && wa_node_set_bytes(c[3], proof, 32))) {
        wa_node_free(n);
        return NULL;
    }
    return n;
}

/* --- the continuation --- */

int wa_passkey_parse_continuation(const wa_node_t *n, uint8_t primary_pub[32],
                                  uint8_t primary_nonce[32])
{
    const wa_node_t *c = n ? wa_node_child(n, "primary_ephemeral_identity") : NULL;
    size_t len = 0;
    const uint8_t *b = c ? wa_node_content(c, &len) : NULL;
    if (!b || len == 0 || len > 256)
        return WA_PASSKEY_EINVAL;
    Wa__PrimaryEphemeralIdentity *p = wa__primary_ephemeral_identity__unpack(NULL, len, b);
    int ok = p && p->has_publickey && p->publickey.len == 32 && p->has_nonce && p->nonce.len == 32;
    if (ok) {
        memcpy(primary_pub, p->publickey.data, 32);
        memcpy(primary_nonce, p->nonce.data, 32);
    }
    if (p)
        wa__primary_ephemeral_identity__free_unpacked(p, NULL);
    return ok ? WA_PASSKEY_OK : WA_PASSKEY_EINVAL;
}

int wa_passkey_code(const uint8_t companion_nonce[32], const uint8_t primary_pub[32],
                    const uint8_t primary_nonce[32], char code[10])
{
    uint8_t d[32];
    const uint8_t *parts[2] = {companion_nonce, primary_pub};
    size_t lens[2] = {32, 32};
    if (wa_crypto_sha256(parts, lens, 2, d))
        return WA_PASSKEY_EFAIL;
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | (uint8_t)(primary_nonce[i] ^ d[i]);
    /* 40 bits, most significant first, as RFC 4648 base32 */
    for (int i = 0, o = 0; i < 8; i++) {
        if (i == 4)
            code[o++] = '-';
        code[o++] = code_alphabet[(v >> (35 - 5 * i)) & 31];
    }
    code[9] = 0;
    explicit_bzero(d, sizeof(d));
    return WA_PASSKEY_OK;
}

int wa_passkey_encryption_key(const uint8_t shared[32], int platform_type, const char *ref,
                              uint8_t key[32])
{
    char salt[WA_PASSKEY_REF_MAX + 64];
    size_t rl = ref ? strnlen(ref, WA_PASSKEY_REF_MAX + 1) : 0;
    if (rl == 0 || rl > WA_PASSKEY_REF_MAX)
        return WA_PASSKEY_EINVAL;
    int n = snprintf(salt, sizeof(salt), "Companion Pairing %d with ref %s", platform_type, ref);
    if (n < 0 || (size_t)n >= sizeof(salt))
        return WA_PASSKEY_EINVAL;
    return wa_crypto_hkdf((const uint8_t *)salt, (size_t)n, shared, 32, (const uint8_t *)enc_info,
                          sizeof(enc_info) - 1, key, 32)
               ? WA_PASSKEY_EFAIL
               : WA_PASSKEY_OK;
}

int wa_passkey_pairing_request(const uint8_t key[32], const uint8_t iv[12],
                               const uint8_t noise_pub[32], const uint8_t ident_pub[32],
                               const uint8_t adv_secret[32], uint8_t **out, size_t *len)
{
    *out = NULL;
    Wa__PairingRequest pr = WA__PAIRING_REQUEST__INIT;
    pr.has_companionpublickey = pr.has_companionidentitykey = pr.has_advsecret = 1;
    pr.companionpublickey.data = (uint8_t *)noise_pub;
    pr.companionpublickey.len = 32;
    pr.companionidentitykey.data = (uint8_t *)ident_pub;
    pr.companionidentitykey.len = 32;
    pr.advsecret.data = (uint8_t *)adv_secret;
    pr.advsecret.len = 32;
    size_t pl = 0;
    uint8_t *plain = pack(&pr.base, &pl);
    uint8_t *sealed = plain ? malloc(pl + 16) : NULL;
    int rc = WA_PASSKEY_EFAIL;
    if (sealed && wa_crypto_aesgcm_seal(key, iv, NULL, 0, plain, pl, sealed) == 0) {
        Wa__EncryptedPairingRequest e = WA__ENCRYPTED_PAIRING_REQUEST__INIT;
        e.has_encryptedpayload = e.has_iv = 1;
        e.encryptedpayload.data = sealed;
        e.encryptedpayload.len = pl + 16;
        e.iv.data = (uint8_t *)iv;
        e.iv.len = 12;
        if ((*out = pack(&e.base, len)))
            rc = WA_PASSKEY_OK;
    }
    if (plain) {
        explicit_bzero(plain, pl);
        free(plain);
    }
    free(sealed);
    return rc;
}
