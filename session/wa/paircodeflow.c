/* Linking by pairing code on a registration connection (whatsmeow's
 * pair-code.go, whatsapp-rust's src/pair_code.rs; protocol doc 5.7, 11.5):
 *   request        a code (5 random bytes), an ephemeral key pair, the key
 *                  wrapped with the code (PBKDF2 on a worker thread), then
 *                  <iq xmlns="md"><link_code_companion_reg stage="companion_hello">
 *                  once pair-device arrived; its answer holds the pairing
 *                  ref and the code goes to the requester
 *   primary_hello  the phone's notification after the user typed the code:
 *                  unwrap its ephemeral key (worker thread again), seal the
 *                  key bundle, replace the adv secret with the derived one
 *                  (persisted; no secret refresh from now on: adv_locked),
 *                  redraw the QR with it and send companion_finish
 * pair-success then follows as for a QR scan (pairflow.c). A code is valid
 * 180 s and the phone gets 3 tries; later primary_hellos are ignored.
 * The code never goes to the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/crypto.h"
#include "session/wa/paircode.h"

#define HELLO_TIMEOUT_MS 30000
#define FINISH_TIMEOUT_MS 30000
/* A companion_finish not followed by pair-success this long no longer
 * blocks a new code (whatsapp-rust: WhatsApp Web's one-minute timer). */
#define CONFIRM_MS 60000

typedef enum { PC_QUEUED, PC_WRAPPING, PC_HELLO, PC_SHOWN } pc_stage_t;

typedef struct pc_job pc_job_t;

/* The flow's state, c->paircode. */
typedef struct {
    wa_client_t *c;
    pc_stage_t stage;
    char phone[WA_PAIRCODE_PHONE_MAX + 1];
    char code[WA_PAIRCODE_CHARS + 1];
    wa_keypair_t eph;
    int64_t issued_ms; /* when the code was made: its 180 s start here */
    int64_t finish_ms; /* the last companion_finish, 0 when none */
    uint8_t ref[WA_PAIRCODE_REF_MAX];
    size_t ref_len;
    unsigned hellos;          /* primary_hellos taken for this code */
    wa_client_paircode_cb cb; /* NULL once answered */
    void *arg;
    pc_job_t *job; /* the worker job running, or NULL */
} pc_t;

/* Work for a worker thread: only copies, no pointer into the client. */
struct pc_job {
    uv_work_t w;
    pc_t *pc;   /* NULL once the flow is gone (the completion only frees) */
    int finish; /* 0: wrap our key (hello); 1: the phone's key (finish) */
    int rc;
    char code[WA_PAIRCODE_CHARS + 1];
    /* hello */
    uint8_t salt[32], iv[16], pub[32], wrapped[WA_PAIRCODE_WRAPPED_LEN];
    /* finish */
    uint8_t eph_priv[32], ident_priv[32], ident_pub[32];
    uint8_t primary_wrapped[WA_PAIRCODE_WRAPPED_LEN], primary_ident[32];
    uint8_t bsalt[32], nonce[12], random[32];
    uint8_t bundle[WA_PAIRCODE_BUNDLE_LEN], adv[32];
};

static void pc_free(pc_t *pc)
{
    if (pc->job)
        pc->job->pc = NULL;
    explicit_bzero(pc, sizeof(*pc));
    free(pc);
}

/* When the code stops being usable: its 180 s, or the end of the last QR
 * ref (the server closes the registration connection then). */
static int64_t expires_at(const pc_t *pc)
{
    const wa_client_t *c = pc->c;
    int64_t end = pc->issued_ms + WA_PAIRCODE_VALID_MS;
    if (c->qr_shown && c->qr_expires_at_ms > 0) {
        size_t left = c->nrefs > c->next_ref ? c->nrefs - c->next_ref : 0;
        int64_t qr_end = c->qr_expires_at_ms + (int64_t)left * c->cfg.qr_next_ms;
        if (qr_end < end)
            end = qr_end;
    }
    return end;
}

/* Gives the requester its answer. On an error the flow is dropped first:
 * the callback may close the client. */
static void answer(pc_t *pc, int rc)
{
    wa_client_paircode_cb cb = pc->cb;
    void *arg = pc->arg;
    pc->cb = NULL;
    if (rc != 0) {
        if (pc->c->paircode == pc)
            pc->c->paircode = NULL;
        pc_free(pc);
        if (cb)
            cb(arg, rc, NULL, 0);
        return;
    }
    char shown[WA_PAIRCODE_CHARS + 2];
    wa_paircode_format(pc->code, shown);
    int64_t exp = expires_at(pc);
    if (cb)
        cb(arg, 0, shown, exp);
    explicit_bzero(shown, sizeof(shown));
}

/* --- worker jobs --- */

static void job_work(uv_work_t *w)
{
    pc_job_t *j = w->data;
    if (!j->finish) {
        j->rc = wa_paircode_wrap(j->code, j->salt, j->iv, j->pub, j->wrapped);
        return;
    }
    uint8_t primary_eph[32];
    j->rc = wa_paircode_unwrap(j->code, j->primary_wrapped, primary_eph);
    if (j->rc == 0) {
        wa_paircode_finish_in_t in = {.eph_priv = j->eph_priv,
                                      .ident_priv = j->ident_priv,
                                      .ident_pub = j->ident_pub,
                                      .primary_eph_pub = primary_eph,
                                      .primary_ident_pub = j->primary_ident,
                                      .salt = j->bsalt,
                                      .nonce = j->nonce,
                                      .random = j->random};
        j->rc = wa_paircode_finish_keys(&in, j->bundle, j->adv);
    }
    explicit_bzero(primary_eph, sizeof(primary_eph));
}

static void hello_ready(pc_t *pc, pc_job_t *j);
static void finish_ready(pc_t *pc, pc_job_t *j);

static void job_done(uv_work_t *w, int status)
{
    pc_job_t *j = w->data;
    pc_t *pc = j->pc;
    if (pc) {
        pc->job = NULL;
        if (status != 0 && j->rc == 0)
            j->rc = WA_PAIRCODE_ECRYPTO;
        if (j->finish)
            finish_ready(pc, j);
        else
            hello_ready(pc, j);
    }
    explicit_bzero(j, sizeof(*j));
    free(j);
}

static int queue_job(pc_t *pc, pc_job_t *j)
{
    j->pc = pc;
    j->w.data = j;
    if (uv_queue_work(pc->c->iq_timer.loop, &j->w, job_work, job_done) != 0)
        return -1;
    pc->job = j;
    return 0;
}

/* --- companion_hello --- */

static void on_hello_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    pc_t *pc = arg;
    (void)ok;
    if (!resp) {
        answer(pc, c->done ? WA_CLIENT_PC_ECLOSED : WA_CLIENT_PC_ETIMEOUT);
        return;
    }
    const uint8_t *ref;
    size_t len;
    int err = 0;
    int rc = wa_paircode_parse_hello_result(resp, &ref, &len, &err);
    if (rc) {
        if (rc == WA_PAIRCODE_EREFUSED)
            LOG_WARN("wa", "WhatsApp refused the pairing-code request (error %d)", err);
        else
            LOG_WARN("wa", "unreadable answer to the pairing-code request: %s",
                     wa_paircode_strerror(rc));
        answer(pc, WA_CLIENT_PC_EREFUSED);
        return;
    }
    memcpy(pc->ref, ref, len);
    pc->ref_len = len;
    pc->stage = PC_SHOWN;
    LOG_INFO("wa", "pairing code issued (valid %lld s); waiting for it on the phone",
             (long long)((expires_at(pc) - wa_client_now_ms() + 999) / 1000));
    answer(pc, 0);
}

/* The key is wrapped: ask WhatsApp to notify the phone. */
static void hello_ready(pc_t *pc, pc_job_t *j)
{
    wa_client_t *c = pc->c;
    if (j->rc) {
        LOG_ERROR("wa", "pairing code: %s", wa_paircode_strerror(j->rc));
        answer(pc, WA_CLIENT_PC_EFAIL);
        return;
    }
    wa_node_t *q = wa_client_iq(NULL, "set", "md");
    wa_node_t *h = wa_paircode_hello_node(pc->phone, j->wrapped, c->noise_pub,
                                          WA_PAIRCODE_PLATFORM_ID, WA_PAIRCODE_PLATFORM_DISPLAY);
    if (!q || !h || !wa_node_add_child(q, h)) {
        if (!q || !h)
            wa_node_free(h);
        wa_node_free(q);
        answer(pc, WA_CLIENT_PC_EFAIL);
        return;
    }
    pc->stage = PC_HELLO;
    if (wa_client_send_iq(c, q, HELLO_TIMEOUT_MS, on_hello_answer, pc, NULL, 0) != 0)
        answer(pc, c->done ? WA_CLIENT_PC_ECLOSED : WA_CLIENT_PC_EFAIL);
}

/* Makes the code and wraps our ephemeral key with it off the loop. */
static int start(pc_t *pc)
{
    pc_job_t *j = calloc(1, sizeof(*j));
    uint8_t rnd[5];
    if (!j || wa_crypto_keypair_generate(&pc->eph) || wa_crypto_random(rnd, sizeof(rnd)) ||
        wa_crypto_random(j->salt, 32) || wa_crypto_random(j->iv, 16)) {
        free(j);
        return WA_CLIENT_PC_EFAIL;
    }
    wa_paircode_encode(rnd, pc->code);
    explicit_bzero(rnd, sizeof(rnd));
    memcpy(j->code, pc->code, sizeof(j->code));
    memcpy(j->pub, pc->eph.pub, 32);
    pc->issued_ms = wa_client_now_ms(); /* WhatsApp Web starts the clock before the request */
    pc->stage = PC_WRAPPING;
    if (queue_job(pc, j) != 0) {
        explicit_bzero(j, sizeof(*j));
        free(j);
        return WA_CLIENT_PC_EFAIL;
    }
    return 0;
}

int wa_client_request_pairing_code(wa_client_t *c, const char *phone, wa_client_paircode_cb cb,
                                   void *arg)
{
    if (!c || c->done)
        return WA_CLIENT_PC_ECLOSED;
    if (c->jid || c->paired)
        return WA_CLIENT_PC_ESTATE;
    if (!wa_paircode_phone_ok(phone) || !cb)
        return WA_CLIENT_PC_EINVAL;
    pc_t *old = c->paircode;
    if (old) {
        int confirming = c->adv_locked && wa_client_now_ms() - old->finish_ms < CONFIRM_MS;
        if (old->cb || old->job || confirming)
            return WA_CLIENT_PC_EBUSY;
        /* the earlier code is dropped: its primary_hello no longer matches */
        c->paircode = NULL;
        c->adv_locked = 0;
        pc_free(old);
    }
    pc_t *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return WA_CLIENT_PC_EFAIL;
    pc->c = c;
    snprintf(pc->phone, sizeof(pc->phone), "%s", phone);
    pc->cb = cb;
    pc->arg = arg;
    pc->stage = PC_QUEUED;
    if (c->nrefs > 0) { /* pair-device arrived: the connection is ready */
        int rc = start(pc);
        if (rc) {
            pc_free(pc);
            return rc;
        }
    }
    c->paircode = pc;
    return 0;
}

void wa_client_paircode_pair_device(wa_client_t *c)
{
    pc_t *pc = c->paircode;
    if (!pc || pc->stage != PC_QUEUED)
        return;
    int rc = start(pc);
    if (rc)
        answer(pc, rc);
}

/* --- primary_hello and companion_finish --- */

static void on_finish_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    (void)arg;
    if (c->done)
        return;
    if (!resp)
        LOG_WARN("wa", "companion_finish went unanswered");
    else if (!ok)
        LOG_WARN("wa", "WhatsApp refused companion_finish");
}

/* The key bundle is sealed: switch to the derived secret, answer. */
static void finish_ready(pc_t *pc, pc_job_t *j)
{
    wa_client_t *c = pc->c;
    if (c->done || c->paired)
        return;
    if (j->rc) {
        LOG_WARN("wa", "cannot answer the phone's primary_hello: %s", wa_paircode_strerror(j->rc));
        return;
    }
    /* the pair-success to come is keyed by this secret: keep it */
    if (wa_client_set_adv_secret(c, j->adv) != 0) {
        LOG_ERROR("wa", "cannot store the adv secret derived from the pairing code");
        return;
    }
    c->adv_locked = 1;
    pc->finish_ms = wa_client_now_ms();
    wa_client_qr_redraw(c); /* a scan still links: the QR carries the same secret */
    wa_node_t *q = wa_client_iq(NULL, "set", "md");
    wa_node_t *f = wa_paircode_finish_node(pc->phone, j->bundle, sizeof(j->bundle), c->ident_pub,
                                           pc->ref, pc->ref_len);
    if (!q || !f || !wa_node_add_child(q, f)) {
        if (!q || !f)
            wa_node_free(f);
        wa_node_free(q);
        LOG_ERROR("wa", "out of memory answering primary_hello");
        return;
    }
    LOG_INFO("wa", "pairing code entered on the phone (try %u of %d); answering", pc->hellos,
             WA_PAIRCODE_MAX_HELLOS);
    wa_client_send_iq(c, q, FINISH_TIMEOUT_MS, on_finish_answer, NULL, NULL, 0);
}

void wa_client_paircode_notification(wa_client_t *c, const wa_node_t *n)
{
    pc_t *pc = c->paircode;
    wa_paircode_primary_hello_t ph;
    int rc = wa_paircode_parse_primary_hello(n, pc && pc->stage == PC_SHOWN ? pc->ref : NULL,
                                             pc ? pc->ref_len : 0, &ph);
    if (rc) {
        LOG_WARN("wa", "link_code_companion_reg notification ignored: %s",
                 wa_paircode_strerror(rc));
        return;
    }
    if (!pc || pc->stage != PC_SHOWN || c->jid || c->paired) {
        LOG_WARN("wa", "primary_hello without a pairing code waiting for it; ignored");
        return;
    }
    if (wa_client_now_ms() - pc->issued_ms > WA_PAIRCODE_VALID_MS) {
        LOG_WARN("wa", "primary_hello for an expired pairing code; ignored");
        return;
    }
    if (pc->hellos >= WA_PAIRCODE_MAX_HELLOS) {
        LOG_WARN("wa", "primary_hello after %d tries of this pairing code; ignored",
                 WA_PAIRCODE_MAX_HELLOS);
        return;
    }
    if (pc->job) {
        LOG_WARN("wa", "primary_hello while the previous one is being answered; ignored");
        return;
    }
    pc_job_t *j = calloc(1, sizeof(*j));
    if (!j || wa_crypto_random(j->bsalt, 32) || wa_crypto_random(j->nonce, 12) ||
        wa_crypto_random(j->random, 32)) {
        free(j);
        LOG_ERROR("wa", "cannot answer primary_hello (out of memory or randomness)");
        return;
    }
    j->finish = 1;
    memcpy(j->code, pc->code, sizeof(j->code));
    memcpy(j->eph_priv, pc->eph.priv, 32);
    memcpy(j->ident_priv, c->ident_priv, 32);
    memcpy(j->ident_pub, c->ident_pub, 32);
    memcpy(j->primary_wrapped, ph.wrapped, WA_PAIRCODE_WRAPPED_LEN);
    memcpy(j->primary_ident, ph.primary_ident_pub, 32);
    if (queue_job(pc, j) != 0) {
        explicit_bzero(j, sizeof(*j));
        free(j);
        LOG_ERROR("wa", "cannot answer primary_hello (no worker)");
        return;
    }
    pc->hellos++;
}

void wa_client_paircode_end(wa_client_t *c)
{
    pc_t *pc = c->paircode;
    if (!pc)
        return;
    answer(pc, WA_CLIENT_PC_ECLOSED); /* frees it */
}
