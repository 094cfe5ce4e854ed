/* The passkey step of linking on a registration connection (protocol doc
 * 11.6, whatsmeow's pair-passkey.go; the encodings are in passkey.c):
 *
 *   passkey_prologue_request  -> handoff key from the current adv secret, a
 *                                new adv secret (persisted, locked against
 *                                refreshes), QR codes stopped, a deadline,
 *                                the options to the owner (on_passkey_request)
 *   wa_client_passkey_response -> <iq get md><ref/>, then
 *                                <iq set md><passkey_prologue>; the caller
 *                                learns whether WhatsApp accepted it
 *   crsc_continuation         -> <iq set md><companion_nonce>, the code to
 *                                the owner (on_passkey_code), then
 *                                <iq set md><encrypted_pairing_request>
 *   pair-success              -> pairflow.c, keyed by the new adv secret
 *
 * A failure after the prologue was accepted ends the connection with
 * "passkey_failed", and a step not finished within
 * WA_CLIENT_PASSKEY_TIMEOUT_MS with "passkey_timeout" (no retry: the owner
 * decides). Answers to our iqs find the flow by a generation number, so a
 * new request that replaces the flow never lets an old answer touch it. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/crypto.h"
#include "session/wa/passkey.h"
#include "session/wa/payload.h"

#define PK_IQ_TIMEOUT_MS 20000

typedef enum {
    PK_IDLE,      /* no request */
    PK_OPTIONS,   /* asking WhatsApp for the options */
    PK_WAITING,   /* options handed out, waiting for the assertion */
    PK_REF,       /* ref requested */
    PK_PROLOGUE,  /* prologue sent */
    PK_ACCEPTED,  /* prologue accepted, waiting for the continuation */
    PK_NONCE,     /* companion nonce sent */
    PK_FINISHING, /* encrypted pairing request sent */
    PK_DONE,      /* waiting for pair-success */
} pk_stage_t;

/* The flow of one connection, allocated at the first request and kept
 * (reset, with a new generation) until the connection is freed. */
typedef struct {
    pk_stage_t stage;
    unsigned gen; /* +1 per reset: answers to an older flow's iqs are ignored */
    wa_passkey_options_t opts;
    uint8_t handoff[32];
    int64_t handoff_at_ms;
    int have_handoff;
    wa_passkey_assertion_t assertion;
    void (*cb)(void *arg, int rc); /* the response's caller, until answered */
    void *cb_arg;
    wa_keypair_t eph;
    uint8_t nonce[32];
    char ref[WA_PASSKEY_REF_MAX + 1];
    wa_passkey_prologue_t prologue;
    uint8_t enc_key[32];
    char code[10];
} pk_t;

/* The flow an iq answer belongs to, or NULL when it was reset since. */
static pk_t *flow_of(wa_client_t *c, void *arg)
{
    pk_t *p = c->passkey;
    return p && p->gen == (unsigned)(uintptr_t)arg ? p : NULL;
}

static void *gen_arg(const pk_t *p)
{
    return (void *)(uintptr_t)p->gen;
}

/* Tells the response's caller (once). */
static void complete(pk_t *p, int rc)
{
    void (*cb)(void *, int) = p->cb;
    p->cb = NULL;
    if (cb)
        cb(p->cb_arg, rc);
}

/* Forgets the answer being sent: the assertion, the prologue, the keys. */
static void drop_attempt(pk_t *p)
{
    wa_passkey_assertion_free(&p->assertion);
    wa_passkey_prologue_free(&p->prologue);
    explicit_bzero(&p->eph, sizeof(p->eph));
    explicit_bzero(p->nonce, sizeof(p->nonce));
    explicit_bzero(p->enc_key, sizeof(p->enc_key));
    explicit_bzero(p->code, sizeof(p->code));
}

/* Back to PK_IDLE with a new generation; a waiting caller gets `rc`. */
static void reset(pk_t *p, int rc)
{
    complete(p, rc);
    drop_attempt(p);
    wa_passkey_options_free(&p->opts);
    explicit_bzero(p->handoff, sizeof(p->handoff));
    p->have_handoff = 0;
    p->stage = PK_IDLE;
    p->gen++;
}

void wa_client_passkey_free(wa_client_t *c)
{
    pk_t *p = c->passkey;
    if (!p)
        return;
    c->passkey = NULL;
    reset(p, WA_CLIENT_PASSKEY_ECLOSED);
    explicit_bzero(p, sizeof(*p));
    free(p);
}

static void fail(wa_client_t *c, const char *message)
{
    wa_verdict_t v;
    wa_client_verdict(&v, "passkey_failed", 401, WA_RETRY_NO, 0, message);
    wa_client_finish(c, &v);
}

static int from_server(const wa_node_t *n)
{
    const char *from = wa_node_attr(n, "from");
    return from && (!strcmp(from, "s.whatsapp.net") || !strcmp(from, "@s.whatsapp.net"));
}

static void on_deadline(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done || c->paired)
        return;
    wa_verdict_t v;
    wa_client_verdict(&v, "passkey_timeout", 408, WA_RETRY_NO, 0,
                      "the passkey step was not completed in time");
    wa_client_finish(c, &v);
}

/* --- the request --- */

/* Options in hand: the handoff key, a new adv secret, the owner asked. */
static void begin(wa_client_t *c, pk_t *p)
{
    uint8_t secret[32];
    if (wa_passkey_handoff_key(c->adv_secret, p->handoff) != 0 ||
        wa_crypto_random(secret, 32) != 0 || wa_client_set_adv_secret(c, secret) != 0) {
        explicit_bzero(secret, 32);
        fail(c, "could not replace the adv secret for the passkey step");
        return;
    }
    explicit_bzero(secret, 32);
    p->have_handoff = 1;
    p->handoff_at_ms = wa_client_now_ms();
    /* the pair-success to come is keyed by the secret sent to the phone in
     * the encrypted pairing request: no refresh may replace it, and the QR
     * codes (showing a retired secret) are over */
    c->adv_locked = 1;
    wa_client_qr_stop(c);
    uv_timer_start(&c->qr_timer, on_deadline, WA_CLIENT_PASSKEY_TIMEOUT_MS, 0);
    p->stage = PK_WAITING;
    LOG_INFO("wa", "WhatsApp asks for a passkey to link this device");
    if (c->hooks.on_passkey_request)
        c->hooks.on_passkey_request(c->hooks.arg, p->opts.json);
}

static void on_options(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pk_t *p = flow_of(c, arg);
    if (!p || c->done || p->stage != PK_OPTIONS)
        return;
    if (!resp || !ok || wa_passkey_parse_request(resp, &p->opts) != WA_PASSKEY_OK) {
        LOG_WARN("wa", "could not get usable passkey request options from WhatsApp");
        reset(p, WA_CLIENT_PASSKEY_ESTATE);
        return;
    }
    begin(c, p);
}

void wa_client_passkey_request(wa_client_t *c, const wa_node_t *n)
{
    if (!from_server(n) || c->jid || c->paired) {
        LOG_WARN("wa", "ignoring a passkey request not from the server or not while linking");
        return;
    }
    pk_t *p = c->passkey;
    if (!p && !(p = c->passkey = calloc(1, sizeof(*p)))) {
        fail(c, "out of memory");
        return;
    }
    reset(p, WA_CLIENT_PASSKEY_ESTATE); /* a new request replaces an earlier one */
    int rc = wa_passkey_parse_request(n, &p->opts);
    if (rc == WA_PASSKEY_OK) {
        begin(c, p);
        return;
    }
    /* as whatsmeow: without usable options in the notification, ask */
    LOG_INFO("wa", "passkey request without usable options (%s); asking for them",
             wa_passkey_strerror(rc));
    p->stage = PK_OPTIONS;
    wa_node_t *q = wa_client_iq(NULL, "get", "md");
    if (q && !wa_node_add(q, "passkey_request_options")) {
        wa_node_free(q);
        q = NULL;
    }
    if (wa_client_send_iq(c, q, PK_IQ_TIMEOUT_MS, on_options, gen_arg(p), NULL, 0) != 0)
        reset(p, WA_CLIENT_PASSKEY_ESTATE);
}

/* --- the response --- */

/* The attempt failed before WhatsApp accepted it: the assertion may be
 * sent again (a new one, or after a new request). */
static void attempt_failed(pk_t *p, int rc, const char *why)
{
    LOG_WARN("wa", "passkey answer not accepted: %s", why);
    drop_attempt(p);
    p->stage = PK_WAITING;
    complete(p, rc);
}

static int no_answer_code(const wa_client_t *c)
{
    return c->done ? WA_CLIENT_PASSKEY_ECLOSED : WA_CLIENT_PASSKEY_ETIMEOUT;
}

static void on_prologue(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pk_t *p = flow_of(c, arg);
    if (!p || p->stage < PK_PROLOGUE)
        return;
    if (!resp || !ok) {
        int rc = resp ? WA_CLIENT_PASSKEY_EREFUSED : no_answer_code(c);
        const char *why =
            resp ? "WhatsApp refused the passkey prologue" : "no answer to the passkey prologue";
        if (p->stage == PK_PROLOGUE) {
            attempt_failed(p, rc, why);
        } else { /* the continuation came first, then the refusal */
            complete(p, rc);
            if (!c->done)
                fail(c, why);
        }
        return;
    }
    /* the proof was used: the handoff key is spent (whatsmeow) */
    explicit_bzero(p->handoff, sizeof(p->handoff));
    p->have_handoff = 0;
    if (p->stage == PK_PROLOGUE)
        p->stage = PK_ACCEPTED;
    LOG_INFO("wa", "WhatsApp accepted the passkey; waiting for the phone");
    complete(p, WA_CLIENT_PASSKEY_OK);
}

static void on_ref(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pk_t *p = flow_of(c, arg);
    if (!p || p->stage != PK_REF)
        return;
    if (!resp || !ok) {
        attempt_failed(p, resp ? WA_CLIENT_PASSKEY_EREFUSED : no_answer_code(c),
                       resp ? "WhatsApp refused the ref request" : "no answer to the ref request");
        return;
    }
    if (wa_passkey_parse_ref(resp, p->ref, sizeof(p->ref)) != WA_PASSKEY_OK) {
        attempt_failed(p, WA_CLIENT_PASSKEY_EREFUSED, "WhatsApp's ref answer has no usable ref");
        return;
    }
    uint8_t proof[32];
    int with_proof =
        p->have_handoff && wa_client_now_ms() - p->handoff_at_ms < WA_PASSKEY_HANDOFF_MS;
    wa_node_t *q = NULL, *pro = NULL;
    if (wa_crypto_keypair_generate(&p->eph) != 0 || wa_crypto_random(p->nonce, 32) != 0 ||
        wa_passkey_prologue(p->eph.pub, WA_PAYLOAD_PLATFORM_TYPE, p->ref, p->nonce, &p->prologue) !=
            WA_PASSKEY_OK ||
        (with_proof && wa_passkey_handoff_proof(p->handoff, p->prologue.payload,
                                                p->prologue.payload_len, proof) != WA_PASSKEY_OK) ||
        !(pro = wa_passkey_prologue_node(&p->assertion, &p->prologue, with_proof ? proof : NULL)) ||
        !(q = wa_client_iq(NULL, "set", "md"))) {
        wa_node_free(pro);
        attempt_failed(p, WA_CLIENT_PASSKEY_EFAIL, "could not build the passkey prologue");
        return;
    }
    wa_node_add_child(q, pro);
    p->stage = PK_PROLOGUE;
    if (wa_client_send_iq(c, q, PK_IQ_TIMEOUT_MS, on_prologue, gen_arg(p), NULL, 0) != 0)
        attempt_failed(p, WA_CLIENT_PASSKEY_ECLOSED, "could not send the passkey prologue");
}

int wa_client_passkey_response(wa_client_t *c, const char *json, size_t len,
                               void (*cb)(void *arg, int rc), void *arg)
{
    if (!c || c->done)
        return WA_CLIENT_PASSKEY_ECLOSED;
    pk_t *p = c->passkey;
    wa_passkey_assertion_t a;
    int rc = wa_passkey_parse_assertion(json, len, &a);
    if (rc != WA_PASSKEY_OK)
        return rc == WA_PASSKEY_EINVAL ? WA_CLIENT_PASSKEY_EINVAL : WA_CLIENT_PASSKEY_EFAIL;
    if (!p || p->stage != PK_WAITING) {
        wa_passkey_assertion_free(&a);
        return p && (p->stage == PK_REF || p->stage == PK_PROLOGUE) ? WA_CLIENT_PASSKEY_EBUSY
                                                                    : WA_CLIENT_PASSKEY_ESTATE;
    }
    if (a.challenge_len != p->opts.challenge_len ||
        memcmp(a.challenge, p->opts.challenge, a.challenge_len)) {
        LOG_WARN("wa", "the passkey assertion answers another challenge");
        wa_passkey_assertion_free(&a);
        return WA_CLIENT_PASSKEY_EINVAL;
    }
    wa_node_t *q = wa_client_iq(NULL, "get", "md");
    if (!q || !wa_node_add(q, "ref")) {
        wa_node_free(q);
        wa_passkey_assertion_free(&a);
        return WA_CLIENT_PASSKEY_EFAIL;
    }
    p->assertion = a;
    p->stage = PK_REF;
    if (wa_client_send_iq(c, q, PK_IQ_TIMEOUT_MS, on_ref, gen_arg(p), NULL, 0) != 0) {
        drop_attempt(p);
        p->stage = PK_WAITING;
        return WA_CLIENT_PASSKEY_ECLOSED;
    }
    p->cb = cb;
    p->cb_arg = arg;
    return WA_CLIENT_PASSKEY_OK;
}

/* --- the continuation --- */

static void on_pairing_request(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pk_t *p = flow_of(c, arg);
    if (!p || c->done || p->stage != PK_FINISHING)
        return;
    if (!resp || !ok) {
        fail(c, resp ? "WhatsApp refused the encrypted pairing request"
                     : "no answer to the encrypted pairing request");
        return;
    }
    p->stage = PK_DONE;
    LOG_INFO("wa", "passkey step complete; waiting for the phone to link");
}

static void on_nonce(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pk_t *p = flow_of(c, arg);
    if (!p || c->done || p->stage != PK_NONCE)
        return;
    if (!resp || !ok) {
        fail(c, resp ? "WhatsApp refused the companion nonce" : "no answer to the companion nonce");
        return;
    }
    if (c->hooks.on_passkey_code)
        c->hooks.on_passkey_code(c->hooks.arg, p->code);
    if (c->done)
        return;
    uint8_t iv[12], *req = NULL;
    size_t len = 0;
    wa_node_t *q = NULL;
    if (wa_crypto_random(iv, sizeof(iv)) != 0 ||
        wa_passkey_pairing_request(p->enc_key, iv, c->noise_pub, c->ident_pub, c->adv_secret, &req,
                                   &len) != WA_PASSKEY_OK ||
        !(q = wa_client_iq(NULL, "set", "md"))) {
        free(req);
        fail(c, "could not build the encrypted pairing request");
        return;
    }
    wa_node_t *e = wa_node_add(q, "encrypted_pairing_request");
    int bad = !e || wa_node_set_bytes(e, req, len) != 0;
    free(req);
    if (bad) {
        wa_node_free(q);
        fail(c, "could not build the encrypted pairing request");
        return;
    }
    p->stage = PK_FINISHING;
    if (wa_client_send_iq(c, q, PK_IQ_TIMEOUT_MS, on_pairing_request, gen_arg(p), NULL, 0) != 0)
        fail(c, "could not send the encrypted pairing request");
}

void wa_client_passkey_continuation(wa_client_t *c, const wa_node_t *n)
{
    pk_t *p = c->passkey;
    if (!from_server(n) || c->jid || c->paired || !p ||
        (p->stage != PK_PROLOGUE && p->stage != PK_ACCEPTED)) {
        LOG_WARN("wa", "ignoring a passkey continuation without a passkey answer sent");
        return;
    }
    uint8_t primary_pub[32], primary_nonce[32], shared[32];
    if (wa_passkey_parse_continuation(n, primary_pub, primary_nonce) != WA_PASSKEY_OK) {
        fail(c, "malformed passkey continuation");
        return;
    }
    int bad = wa_crypto_x25519(p->eph.priv, primary_pub, shared) != 0 ||
              wa_passkey_encryption_key(shared, WA_PAYLOAD_PLATFORM_TYPE, p->ref, p->enc_key) !=
                  WA_PASSKEY_OK ||
              wa_passkey_code(p->nonce, primary_pub, primary_nonce, p->code) != WA_PASSKEY_OK;
    explicit_bzero(shared, sizeof(shared));
    if (bad) {
        fail(c, "could not agree on a key with the phone");
        return;
    }
    wa_node_t *q = wa_client_iq(NULL, "set", "md");
    wa_node_t *nn = q ? wa_node_add(q, "companion_nonce") : NULL;
    if (!nn || wa_node_set_bytes(nn, p->nonce, 32) != 0) {
        wa_node_free(q);
        fail(c, "out of memory");
        return;
    }
    p->stage = PK_NONCE;
    if (wa_client_send_iq(c, q, PK_IQ_TIMEOUT_MS, on_nonce, gen_arg(p), NULL, 0) != 0)
        fail(c, "could not send the companion nonce");
}
