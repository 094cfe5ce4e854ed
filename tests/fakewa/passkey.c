/* The fake server's and phone's side of the passkey step of linking
 * (protocol doc 11.6), written independently of session/wa/passkey.c so
 * that a test fails when the companion gets an encoding wrong:
 *
 *   a credential registered for the account (credential id, P-256 public
 *   key, rpId, allowed origins) through the control API or in process;
 *   <notification type="passkey_prologue_request"> on demand or instead of
 *   the pair-success of the next scan, with fresh WebAuthn options;
 *   <iq get md><ref/> and <passkey_request_options/> answered;
 *   <passkey_prologue> verified as a relying party does (clientDataJSON
 *   type, challenge and origin; authenticatorData's rpId hash and flags;
 *   the ECDSA P-256 signature over authenticatorData || SHA-256(clientData)
 *   with OpenSSL), plus the credential id, the prologue payload and, when
 *   the phone knows the scanned secret, the handoff proof; a refusal is
 *   counted and answered with a 401 error;
 *   <notification type="crsc_continuation"> with the phone's ephemeral
 *   identity; <companion_nonce> checked against the commitment; the
 *   confirmation code the phone would show recorded;
 *   <encrypted_pairing_request> opened with the key derived here, then
 *   pair-success keyed by the adv secret it carries.
 * Tests only. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yajl/yajl_tree.h>

#include "common/base64.h"
#include "proto/wa/companion_reg.pb-c.h"
#include "session/wa/crypto.h"
#include "tests/fakewa/whatsapp_internal.h"

#define MAX_ORIGINS 4

/* Server-wide: the registered credential, the armed scan, the counters. */
typedef struct {
    uint8_t cred_id[1023];
    size_t cred_id_len;
    EVP_PKEY *key; /* NULL: no credential */
    char rp_id[256];
    char origins[MAX_ORIGINS][256];
    int norigins;
    char user_verification[16];
    int on_scan;
    fakewa_passkey_stats_t stats;
    char code[10];        /* the code the phone shows, "" when none */
    char last_error[160]; /* why the last step was refused */
} pk_server_t;

typedef enum { ST_NONE, ST_REQUESTED, ST_ACCEPTED, ST_NONCE, ST_DONE } st_t;

/* Per connection. */
typedef struct {
    st_t st;
    char options[1024];
    uint8_t challenge[32];
    char ref[64]; /* the last ref handed out, "" when none */
    uint8_t scanned[32];
    int know_scanned;
    uint8_t identity[512]; /* the serialized CompanionEphemeralIdentity */
    size_t identity_len;
    uint8_t companion_pub[32];
    int device_type;
    char identity_ref[64];
    uint8_t commitment[32];
    wa_keypair_t primary;
    uint8_t primary_nonce[32];
    uint8_t key[32];
} pk_conn_t;

static pk_server_t *server(fakewa_wa_t *w)
{
    if (!w->ext_passkey)
        w->ext_passkey = calloc(1, sizeof(pk_server_t));
    return w->ext_passkey;
}

static pk_conn_t *conn(conn_state_t *cs)
{
    if (!cs->ext_passkey)
        cs->ext_passkey = calloc(1, sizeof(pk_conn_t));
    return cs->ext_passkey;
}

void fakewa_passkey_conn_free(conn_state_t *cs)
{
    if (cs->ext_passkey)
        explicit_bzero(cs->ext_passkey, sizeof(pk_conn_t));
    free(cs->ext_passkey);
    cs->ext_passkey = NULL;
}

void fakewa_passkey_free(fakewa_wa_t *w)
{
    pk_server_t *s = w->ext_passkey;
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s);
    w->ext_passkey = NULL;
}

/* --- the credential --- */

static EVP_PKEY *load_key(const char *text)
{
    EVP_PKEY *k = NULL;
    if (strstr(text, "-----BEGIN")) {
        BIO *b = BIO_new_mem_buf(text, -1);
        k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    } else {
        uint8_t der[512];
        long n = b64_decode(text, strlen(text), der, sizeof(der));
        const uint8_t *p = der;
        k = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
    }
    char group[32] = "";
    if (k && (!EVP_PKEY_is_a(k, "EC") ||
              !EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), NULL) ||
              strcmp(group, "prime256v1"))) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

int fakewa_wa_passkey_credential(fakewa_wa_t *w, const uint8_t *cred_id, size_t cred_len,
                                 const char *public_key, const char *rp_id, const char *origin,
                                 const char *user_verification, char *why, size_t whylen)
{
    pk_server_t *s = server(w);
    if (!s || !cred_id || cred_len == 0 || cred_len > sizeof(s->cred_id) || !public_key || !rp_id ||
        !*rp_id || strlen(rp_id) >= sizeof(s->rp_id) || !origin || !*origin ||
        strlen(origin) >= sizeof(s->origins[0])) {
        snprintf(why, whylen, "credential id, public key, rpId and origin are required");
        return -1;
    }
    EVP_PKEY *k = load_key(public_key);
    if (!k) {
        snprintf(why, whylen, "the public key is not a P-256 key (SPKI DER in base64, or PEM)");
        return -1;
    }
    EVP_PKEY_free(s->key);
    s->key = k;
    memcpy(s->cred_id, cred_id, cred_len);
    s->cred_id_len = cred_len;
    snprintf(s->rp_id, sizeof(s->rp_id), "%s", rp_id);
    snprintf(s->origins[0], sizeof(s->origins[0]), "%s", origin);
    s->norigins = 1;
    snprintf(s->user_verification, sizeof(s->user_verification), "%s",
             user_verification && *user_verification ? user_verification : "preferred");
    return 0;
}

static int add_origin(pk_server_t *s, const char *origin)
{
    if (s->norigins >= MAX_ORIGINS || strlen(origin) >= sizeof(s->origins[0]))
        return -1;
    snprintf(s->origins[s->norigins++], sizeof(s->origins[0]), "%s", origin);
    return 0;
}

const fakewa_passkey_stats_t *fakewa_wa_passkey_stats(fakewa_wa_t *w)
{
    static const fakewa_passkey_stats_t none;
    pk_server_t *s = server(w);
    return s ? &s->stats : &none;
}

const char *fakewa_wa_passkey_code(fakewa_wa_t *w)
{
    pk_server_t *s = server(w);
    return s ? s->code : "";
}

const char *fakewa_wa_passkey_last_error(fakewa_wa_t *w)
{
    pk_server_t *s = server(w);
    return s ? s->last_error : "";
}

void fakewa_wa_passkey_on_scan(fakewa_wa_t *w)
{
    pk_server_t *s = server(w);
    if (s)
        s->on_scan = 1;
}

/* --- the request --- */

static void b64url_into(char *out, size_t cap, const uint8_t *d, size_t len)
{
    char *e = b64url_encode(d, len);
    snprintf(out, cap, "%s", e ? e : "");
    free(e);
}

static int send_request(conn_state_t *cs, int with_options)
{
    pk_server_t *s = server(cs->w);
    pk_conn_t *pc = conn(cs);
    if (!s || !pc || !s->key)
        return -1;
    memset(pc, 0, offsetof(pk_conn_t, scanned)); /* a new step; keep what was scanned */
    wa_crypto_random(pc->challenge, sizeof(pc->challenge));
    char ch[64], id[1400];
    b64url_into(ch, sizeof(ch), pc->challenge, sizeof(pc->challenge));
    b64url_into(id, sizeof(id), s->cred_id, s->cred_id_len);
    int n = snprintf(pc->options, sizeof(pc->options),
                     "{\"challenge\":\"%s\",\"timeout\":60000,\"rpId\":\"%s\","
                     "\"allowCredentials\":[{\"type\":\"public-key\",\"id\":\"%s\","
                     "\"transports\":[\"internal\",\"hybrid\"]}],\"userVerification\":\"%s\"}",
                     ch, s->rp_id, id, s->user_verification);
    if (n < 0 || (size_t)n >= sizeof(pc->options))
        return -1;
    wa_node_t *notif =
        fakewa_wa_stanza(cs->w, "notification", "s.whatsapp.net", "passkey_prologue_request");
    if (with_options)
        wa_node_set_bytes(wa_node_add(notif, "passkey_request_options"), pc->options, (size_t)n);
    pc->st = ST_REQUESTED;
    s->stats.requests++;
    s->code[0] = 0;
    fakewa_wa_send_expecting_ack(cs, notif);
    return 0;
}

int fakewa_wa_passkey_request(fakewa_wa_t *w, int with_options, char *why, size_t whylen)
{
    pk_server_t *s = server(w);
    if (!s || !s->key) {
        snprintf(why, whylen, "no credential registered");
        return -1;
    }
    for (conn_state_t *cs = w->conns; cs; cs = cs->next) /* the newest first */
        if (cs->registration && cs->nrefs > 0 && !cs->pending_id[0])
            return send_request(cs, with_options);
    snprintf(why, whylen, "no registration connection");
    return -1;
}

int fakewa_passkey_scanned(conn_state_t *cs, const uint8_t adv_secret[32])
{
    pk_server_t *s = server(cs->w);
    if (!s || !s->on_scan || !s->key)
        return 0;
    s->on_scan = 0;
    pk_conn_t *pc = conn(cs);
    if (!pc)
        return 0;
    memcpy(pc->scanned, adv_secret, 32);
    pc->know_scanned = 1;
    return send_request(cs, 1) == 0;
}

/* --- verifying the prologue --- */

static int refuse(conn_state_t *cs, const wa_node_t *req, int code, const char *why, int *counter)
{
    pk_server_t *s = server(cs->w);
    if (s) {
        snprintf(s->last_error, sizeof(s->last_error), "%s", why);
        if (counter)
            (*counter)++;
    }
    wa_node_t *e = wa_node_new("error");
    char c[16];
    snprintf(c, sizeof(c), "%d", code);
    wa_node_set_attr(e, "code", c);
    wa_node_set_attr(e, "text", code == 401 ? "not-authorized" : "bad-request");
    fakewa_wa_reply(cs, req, "error", e);
    return 1;
}

static yajl_val member(yajl_val o, const char *k)
{
    if (!YAJL_IS_OBJECT(o))
        return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (!strcmp(o->u.object.keys[i], k))
            return o->u.object.values[i];
    return NULL;
}

static long b64url_member(yajl_val o, const char *k, uint8_t *out, size_t cap)
{
    yajl_val v = member(o, k);
    if (!YAJL_IS_STRING(v))
        return -1;
    return b64url_decode(v->u.string, strlen(v->u.string), out, cap);
}

static yajl_val parse(const uint8_t *b, size_t len)
{
    if (!b || len == 0 || len > 65536 || memchr(b, 0, len))
        return NULL;
    char *t = malloc(len + 1);
    if (!t)
        return NULL;
    memcpy(t, b, len);
    t[len] = 0;
    char err[64];
    yajl_val v = yajl_tree_parse(t, err, sizeof(err));
    free(t);
    return v;
}

/* The WebAuthn checks of a relying party. Returns NULL or why not. */
static const char *check_assertion(pk_server_t *s, pk_conn_t *pc, const uint8_t *cred,
                                   size_t cred_len, const uint8_t *json, size_t json_len)
{
    struct {
        uint8_t cd[8192], ad[4096], sig[1024], raw[1024], msg[4096 + 32];
    } *buf = malloc(sizeof(*buf));
    if (!buf)
        return "out of memory";
    uint8_t *cd = buf->cd, *ad = buf->ad, *sig = buf->sig, *raw = buf->raw, *msg = buf->msg;
    const char *why = NULL;
    yajl_val a = parse(json, json_len), c = NULL;
    long rl = b64url_member(a, "rawId", raw, sizeof(buf->raw));
    long cl = b64url_member(member(a, "response"), "clientDataJSON", cd, sizeof(buf->cd));
    long al = b64url_member(member(a, "response"), "authenticatorData", ad, sizeof(buf->ad));
    long sl = b64url_member(member(a, "response"), "signature", sig, sizeof(buf->sig));
    yajl_val type = member(a, "type");
    if (!YAJL_IS_OBJECT(a) || rl <= 0 || cl <= 0 || al < 37 || sl <= 0 || !YAJL_IS_STRING(type) ||
        strcmp(type->u.string, "public-key")) {
        why = "malformed assertion JSON";
        goto done;
    }
    if (cred_len != s->cred_id_len || memcmp(cred, s->cred_id, cred_len) ||
        (size_t)rl != cred_len || memcmp(raw, cred, cred_len)) {
        why = "unknown credential id";
        goto done;
    }
    c = parse(cd, (size_t)cl);
    yajl_val ct = member(c, "type"), co = member(c, "origin");
    uint8_t ch[64];
    long chl = b64url_member(c, "challenge", ch, sizeof(ch));
    if (!YAJL_IS_STRING(ct) || strcmp(ct->u.string, "webauthn.get")) {
        why = "clientDataJSON is not of type webauthn.get";
        goto done;
    }
    if (chl != (long)sizeof(pc->challenge) || memcmp(ch, pc->challenge, sizeof(pc->challenge))) {
        why = "clientDataJSON answers another challenge";
        goto done;
    }
    int origin_ok = 0;
    for (int i = 0; YAJL_IS_STRING(co) && i < s->norigins; i++)
        origin_ok |= !strcmp(co->u.string, s->origins[i]);
    if (!origin_ok) {
        why = "clientDataJSON origin not allowed";
        goto done;
    }
    uint8_t rp_hash[32];
    const uint8_t *parts[1] = {(const uint8_t *)s->rp_id};
    size_t lens[1] = {strlen(s->rp_id)};
    wa_crypto_sha256(parts, lens, 1, rp_hash);
    if (memcmp(ad, rp_hash, 32)) {
        why = "authenticatorData is for another rpId";
        goto done;
    }
    if (!(ad[32] & 0x01) || (!strcmp(s->user_verification, "required") && !(ad[32] & 0x04))) {
        why = "authenticatorData lacks user presence or verification";
        goto done;
    }
    /* signature over authenticatorData || SHA-256(clientDataJSON) */
    memcpy(msg, ad, (size_t)al);
    parts[0] = cd;
    lens[0] = (size_t)cl;
    wa_crypto_sha256(parts, lens, 1, msg + al);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, s->key) == 1 &&
             EVP_DigestVerify(md, sig, (size_t)sl, msg, (size_t)al + 32) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        why = "the signature does not verify with the registered key";
done:
    yajl_tree_free(a);
    yajl_tree_free(c);
    free(buf);
    return why;
}

static const uint8_t *child_bytes(const wa_node_t *n, const char *tag, size_t *len)
{
    const wa_node_t *c = wa_node_child(n, tag);
    *len = 0;
    return c ? wa_node_content(c, len) : NULL;
}

static int on_prologue(conn_state_t *cs, const wa_node_t *iq, const wa_node_t *pro)
{
    pk_server_t *s = server(cs->w);
    pk_conn_t *pc = conn(cs);
    if (!s || !pc || pc->st != ST_REQUESTED)
        return refuse(cs, iq, 400, "passkey_prologue without a request", NULL);
    if (!pc->ref[0])
        return refuse(cs, iq, 400, "passkey_prologue before a ref was asked for", NULL);
    size_t cl, al, pl, hl;
    const uint8_t *cred = child_bytes(pro, "credential_id", &cl);
    const uint8_t *as = child_bytes(pro, "webauthn_assertion", &al);
    const uint8_t *pay = child_bytes(pro, "prologue_payload", &pl);
    const uint8_t *proof = child_bytes(pro, "pairing_handoff_proof", &hl);
    if (!cred || !as || !pay)
        return refuse(cs, iq, 400, "passkey_prologue lacks a part", &s->stats.assertions_bad);
    const char *why = check_assertion(s, pc, cred, cl, as, al);
    if (why)
        return refuse(cs, iq, 401, why, &s->stats.assertions_bad);
    /* the prologue payload: an identity for the ref we gave, a commitment */
    Wa__ProloguePayload *pp = wa__prologue_payload__unpack(NULL, pl, pay);
    Wa__CompanionEphemeralIdentity *id =
        pp && pp->has_companionephemeralidentity
            ? wa__companion_ephemeral_identity__unpack(NULL, pp->companionephemeralidentity.len,
                                                       pp->companionephemeralidentity.data)
            : NULL;
    int good = pp && id && pp->commitment && pp->commitment->has_hash &&
               pp->commitment->hash.len == 32 && id->has_publickey && id->publickey.len == 32 &&
               id->has_devicetype && id->ref && !strcmp(id->ref, pc->ref) &&
               pp->companionephemeralidentity.len <= sizeof(pc->identity);
    if (good) {
        memcpy(pc->identity, pp->companionephemeralidentity.data,
               pp->companionephemeralidentity.len);
        pc->identity_len = pp->companionephemeralidentity.len;
        memcpy(pc->commitment, pp->commitment->hash.data, 32);
        memcpy(pc->companion_pub, id->publickey.data, 32);
        pc->device_type = id->devicetype;
        snprintf(pc->identity_ref, sizeof(pc->identity_ref), "%s", id->ref);
    }
    if (id)
        wa__companion_ephemeral_identity__free_unpacked(id, NULL);
    if (pp)
        wa__prologue_payload__free_unpacked(pp, NULL);
    if (!good)
        return refuse(cs, iq, 400, "malformed prologue payload", &s->stats.assertions_bad);
    /* the handoff proof: HMAC(HKDF(scanned secret), payload), when known */
    if (!proof) {
        s->stats.handoff_absent++;
    } else if (!pc->know_scanned) {
        s->stats.handoff_unverified++;
    } else {
        static const char info[] = "shortcake-passkey-handoff-v1";
        uint8_t key[32], mac[32];
        const uint8_t *parts[1] = {pay};
        size_t lens[1] = {pl};
        wa_crypto_hkdf(NULL, 0, pc->scanned, 32, (const uint8_t *)info, sizeof(info) - 1, key, 32);
        wa_crypto_hmac_sha256(key, 32, parts, lens, 1, mac);
        if (hl != 32 || !wa_crypto_equal(mac, proof, 32))
            return refuse(cs, iq, 401, "wrong pairing handoff proof", &s->stats.handoff_bad);
        s->stats.handoff_ok++;
    }
    s->stats.assertions_ok++;
    s->last_error[0] = 0;
    fakewa_wa_reply(cs, iq, "result", NULL);
    /* the phone: its ephemeral identity */
    pc->st = ST_ACCEPTED;
    wa_crypto_keypair_generate(&pc->primary);
    wa_crypto_random(pc->primary_nonce, 32);
    Wa__PrimaryEphemeralIdentity pi = WA__PRIMARY_EPHEMERAL_IDENTITY__INIT;
    pi.has_publickey = pi.has_nonce = 1;
    pi.publickey.data = pc->primary.pub;
    pi.publickey.len = 32;
    pi.nonce.data = pc->primary_nonce;
    pi.nonce.len = 32;
    uint8_t buf[128];
    size_t n = wa__primary_ephemeral_identity__pack(&pi, buf);
    wa_node_t *notif =
        fakewa_wa_stanza(cs->w, "notification", "s.whatsapp.net", "crsc_continuation");
    wa_node_set_bytes(wa_node_add(notif, "primary_ephemeral_identity"), buf, n);
    fakewa_wa_send_expecting_ack(cs, notif);
    return 1;
}

static int on_nonce(conn_state_t *cs, const wa_node_t *iq, const wa_node_t *nn)
{
    pk_server_t *s = server(cs->w);
    pk_conn_t *pc = conn(cs);
    if (!s || !pc || pc->st != ST_ACCEPTED)
        return refuse(cs, iq, 400, "companion_nonce out of order", NULL);
    size_t len;
    const uint8_t *nonce = wa_node_content(nn, &len);
    uint8_t h[32];
    const uint8_t *parts[2] = {pc->identity, nonce};
    size_t lens[2] = {pc->identity_len, 32};
    if (!nonce || len != 32 || wa_crypto_sha256(parts, lens, 2, h) ||
        !wa_crypto_equal(h, pc->commitment, 32))
        return refuse(cs, iq, 400, "the nonce does not match the commitment",
                      &s->stats.commitments_bad);
    s->stats.commitments_ok++;
    /* what the phone shows: nonce XOR SHA-256(companion nonce || own key) */
    static const char alpha[] = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    parts[0] = nonce;
    parts[1] = pc->primary.pub;
    lens[0] = lens[1] = 32;
    wa_crypto_sha256(parts, lens, 2, h);
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | (uint8_t)(pc->primary_nonce[i] ^ h[i]);
    char *c = s->code;
    for (int i = 0; i < 8; i++) {
        *c++ = alpha[(v >> (35 - 5 * i)) & 31];
        if (i == 3)
            *c++ = '-';
    }
    *c = 0;
    /* the key the pairing request is sealed with */
    uint8_t shared[32];
    char salt[128];
    static const char info[] = "Pairing Information Encryption Key";
    int sl = snprintf(salt, sizeof(salt), "Companion Pairing %d with ref %s", pc->device_type,
                      pc->identity_ref);
    if (wa_crypto_x25519(pc->primary.priv, pc->companion_pub, shared) ||
        wa_crypto_hkdf((const uint8_t *)salt, (size_t)sl, shared, 32, (const uint8_t *)info,
                       sizeof(info) - 1, pc->key, 32))
        return refuse(cs, iq, 400, "no key agreement with the companion's key", NULL);
    pc->st = ST_NONCE;
    fakewa_wa_reply(cs, iq, "result", NULL);
    return 1;
}

static int on_pairing_request(conn_state_t *cs, const wa_node_t *iq, const wa_node_t *e)
{
    pk_server_t *s = server(cs->w);
    pk_conn_t *pc = conn(cs);
    if (!s || !pc || pc->st != ST_NONCE)
        return refuse(cs, iq, 400, "encrypted_pairing_request out of order", NULL);
    size_t len;
    const uint8_t *b = wa_node_content(e, &len);
    Wa__EncryptedPairingRequest *epr =
        b ? wa__encrypted_pairing_request__unpack(NULL, len, b) : NULL;
    Wa__PairingRequest *pr = NULL;
    uint8_t plain[512];
    if (epr && epr->has_iv && epr->iv.len == 12 && epr->has_encryptedpayload &&
        epr->encryptedpayload.len >= 16 && epr->encryptedpayload.len - 16 <= sizeof(plain) &&
        wa_crypto_aesgcm_open(pc->key, epr->iv.data, NULL, 0, epr->encryptedpayload.data,
                              epr->encryptedpayload.len, plain) == 0)
        pr = wa__pairing_request__unpack(NULL, epr->encryptedpayload.len - 16, plain);
    int good = pr && pr->has_companionpublickey && pr->companionpublickey.len == 32 &&
               !memcmp(pr->companionpublickey.data, cs->noise_pub, 32) &&
               pr->has_companionidentitykey && pr->companionidentitykey.len == 32 &&
               pr->has_advsecret && pr->advsecret.len == 32;
    uint8_t ident[32], adv[32];
    if (good) {
        memcpy(ident, pr->companionidentitykey.data, 32);
        memcpy(adv, pr->advsecret.data, 32);
    }
    if (pr)
        wa__pairing_request__free_unpacked(pr, NULL);
    if (epr)
        wa__encrypted_pairing_request__free_unpacked(epr, NULL);
    explicit_bzero(plain, sizeof(plain));
    if (!good)
        return refuse(cs, iq, 400, "the pairing request does not open or is malformed",
                      &s->stats.pairing_requests_bad);
    s->stats.pairing_requests_ok++;
    pc->st = ST_DONE;
    fakewa_wa_reply(cs, iq, "result", NULL);
    /* the phone links the companion with the secret it just learned */
    fakewa_wa_send_pair_success(cs, ident, adv);
    explicit_bzero(adv, sizeof(adv));
    return 1;
}

int fakewa_passkey_iq(conn_state_t *cs, const wa_node_t *n)
{
    const char *type = wa_node_attr(n, "type"), *xmlns = wa_node_attr(n, "xmlns");
    const wa_node_t *c = n->nchildren ? n->children[0] : NULL;
    if (!type || !xmlns || strcmp(xmlns, "md") || !c)
        return 0;
    pk_server_t *s = server(cs->w);
    if (!strcmp(type, "get") && !strcmp(c->tag, "ref") && cs->registration) {
        pk_conn_t *pc = conn(cs);
        if (!s || !pc)
            return 0;
        uint8_t rnd[12];
        wa_crypto_random(rnd, sizeof(rnd));
        char b[32];
        b64url_into(b, sizeof(b), rnd, sizeof(rnd));
        snprintf(pc->ref, sizeof(pc->ref), "2@%s", b);
        s->stats.refs++;
        wa_node_t *r = wa_node_new("ref");
        wa_node_set_bytes(r, pc->ref, strlen(pc->ref));
        fakewa_wa_reply(cs, n, "result", r);
        return 1;
    }
    if (!strcmp(type, "get") && !strcmp(c->tag, "passkey_request_options")) {
        pk_conn_t *pc = cs->ext_passkey;
        if (!pc || pc->st != ST_REQUESTED)
            return refuse(cs, n, 404, "no passkey request", NULL);
        wa_node_t *o = wa_node_new("passkey_request_options");
        wa_node_set_bytes(o, pc->options, strlen(pc->options));
        fakewa_wa_reply(cs, n, "result", o);
        return 1;
    }
    if (strcmp(type, "set"))
        return 0;
    if (!strcmp(c->tag, "passkey_prologue"))
        return on_prologue(cs, n, c);
    if (!strcmp(c->tag, "companion_nonce"))
        return on_nonce(cs, n, c);
    if (!strcmp(c->tag, "encrypted_pairing_request"))
        return on_pairing_request(cs, n, c);
    return 0;
}

/* --- control API and state --- */

char *fakewa_passkey_state_json(const fakewa_wa_t *w)
{
    const pk_server_t *s = w->ext_passkey;
    fakewa_passkey_stats_t z = {0};
    const fakewa_passkey_stats_t *t = s ? &s->stats : &z;
    char *out = malloc(1024);
    if (out)
        snprintf(out, 1024,
                 "{\"credential\":%s,\"requests\":%d,\"refs\":%d,\"assertionsOk\":%d,"
                 "\"assertionsBad\":%d,\"handoffOk\":%d,\"handoffBad\":%d,"
                 "\"handoffUnverified\":%d,\"handoffAbsent\":%d,\"commitmentsOk\":%d,"
                 "\"commitmentsBad\":%d,\"pairingRequestsOk\":%d,\"pairingRequestsBad\":%d,"
                 "\"code\":\"%s\",\"lastError\":\"%s\"}",
                 s && s->key ? "true" : "false", t->requests, t->refs, t->assertions_ok,
                 t->assertions_bad, t->handoff_ok, t->handoff_bad, t->handoff_unverified,
                 t->handoff_absent, t->commitments_ok, t->commitments_bad, t->pairing_requests_ok,
                 t->pairing_requests_bad, s ? s->code : "", s ? s->last_error : "");
    return out;
}

static int reply(char **resp, int status, const char *error)
{
    char buf[256];
    if (error)
        snprintf(buf, sizeof(buf), "{\"ok\":false,\"error\":\"%s\"}", error);
    else
        snprintf(buf, sizeof(buf), "{\"ok\":true}");
    *resp = strdup(buf);
    return status;
}

/* POST /control/passkey/credential {"credentialId":b64url,"publicKey":SPKI
 * DER base64 or PEM,"rpId":...,"origin":... or "origins":[...],
 * "userVerification":...} */
static int http_credential(fakewa_wa_t *w, const char *body, size_t len, char **resp)
{
    yajl_val v = parse((const uint8_t *)body, len);
    yajl_val id = member(v, "credentialId"), key = member(v, "publicKey"), rp = member(v, "rpId"),
             uv = member(v, "userVerification"), origin = member(v, "origin"),
             origins = member(v, "origins");
    uint8_t cred[1023];
    long cl = YAJL_IS_STRING(id)
                  ? b64url_decode(id->u.string, strlen(id->u.string), cred, sizeof(cred))
                  : -1;
    const char *first = YAJL_IS_STRING(origin) ? origin->u.string
                        : YAJL_IS_ARRAY(origins) && origins->u.array.len &&
                                YAJL_IS_STRING(origins->u.array.values[0])
                            ? origins->u.array.values[0]->u.string
                            : NULL;
    char why[160] = "malformed credential";
    int rc = -1;
    if (cl > 0 && YAJL_IS_STRING(key) && YAJL_IS_STRING(rp) && first && (!uv || YAJL_IS_STRING(uv)))
        rc = fakewa_wa_passkey_credential(w, cred, (size_t)cl, key->u.string, rp->u.string, first,
                                          uv ? uv->u.string : NULL, why, sizeof(why));
    for (size_t i = 1; rc == 0 && YAJL_IS_ARRAY(origins) && i < origins->u.array.len; i++)
        if (!YAJL_IS_STRING(origins->u.array.values[i]) ||
            add_origin(server(w), origins->u.array.values[i]->u.string) != 0) {
            snprintf(why, sizeof(why), "bad or too many origins");
            rc = -1;
        }
    yajl_tree_free(v);
    return rc ? reply(resp, 400, why) : reply(resp, 200, NULL);
}

int fakewa_passkey_http(fakewa_wa_t *w, int post, const char *path, const char *body, size_t len,
                        char **resp)
{
    if (!post || strncmp(path, "/control/passkey/", 17))
        return 0;
    const char *what = path + 17;
    char why[128];
    if (!strcmp(what, "credential"))
        return http_credential(w, body, len, resp);
    if (!strcmp(what, "request")) {
        int bare = len >= 4 && !strncmp(body, "bare", 4);
        if (fakewa_wa_passkey_request(w, !bare, why, sizeof(why)) != 0)
            return reply(resp, 409, why);
        return reply(resp, 200, NULL);
    }
    if (!strcmp(what, "on-scan")) {
        if (!server(w) || !server(w)->key)
            return reply(resp, 409, "no credential registered");
        fakewa_wa_passkey_on_scan(w);
        return reply(resp, 200, NULL);
    }
    return 0;
}
