/* The session driver (see driver.h): identity generation, the mapping from
 * client events to published states, backoff, relinking, logout, and
 * linking by pairing code. */
#include "session/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/crypto.h"
#include "session/removal.h"
#include "session/wa/frame.h"
#include "session/wa/paircode.h"

/* At most one pairing-code request per session this often: each one makes
 * WhatsApp notify the phone, and WhatsApp limits that per number. */
#define PAIRCODE_INTERVAL_MS 10000

typedef struct prekey_job prekey_job_t;

typedef struct {
    sess_t *sess;
    sess_driver_opts_t o;
    char *url;
    char *device_name; /* what the phone shows; NULL = the default */
    store_creds_t creds;
    int have_creds;
    wa_client_t *client;
    int connected;
    unsigned attempt;
    uv_timer_t retry;
    int retry_open;
    int relink_after_logout; /* reconnect (unlink) then register anew */
    int stopping;
    int client_closing; /* stopped: waiting for the connection to be gone */
    void (*stop_done)(void *);
    void *stop_arg;
    sess_gate_ticket_t ticket; /* place in the connection gate */
    int gate_passed;           /* the gate let the next connect through */
    sess_removal_t *removal;   /* devices logged out while offline */
    int removal_open;
    uint8_t *routing; /* edge routing info for the ED prefix, or NULL */
    size_t routing_len;
    prekey_job_t *job;  /* pre-keys being generated on a worker thread */
    wa_keypair_t *pool; /* generated pre-keys not yet handed out */
    size_t pool_n;
    int64_t passkey_deadline_ms; /* when the passkey step times out */
    /* the pairing-code request waiting for its code (NULL when none) */
    void (*pc_done)(void *arg, int rc, const char *code, int64_t expires_at_ms);
    void *pc_arg;
    char pc_phone[16];
    int pc_asked;         /* handed to the client (else waiting for a connection) */
    int pc_in_op;         /* inside op_pairing_code, which answers by itself */
    int64_t pc_last_ms;   /* when the last request started */
    wa_version_t used;    /* the version the current connection announces */
    int waiting_version;  /* connect once the version policy is ready */
    int checking_version; /* a 405: the policy looks for a newer version */
    int outdated_retried; /* the one retry after a 405 was made */
} drv_t;

/* Pre-key generation off the loop: 812 X25519 key pairs take 40-60 ms with
 * OpenSSL 3, which would stall every HTTP request and event stream. The
 * first request gets nothing and starts a job; when the keys are ready the
 * job asks the client that wanted them to upload (which asks again). */
struct prekey_job {
    uv_work_t w;
    drv_t *d;            /* NULL once the driver is gone */
    wa_client_t *client; /* the connection that asked */
    size_t want;
    int first, ok;
    wa_keypair_t *kps;
};

static void pool_clear(drv_t *d)
{
    if (d->pool) {
        explicit_bzero(d->pool, d->pool_n * sizeof(*d->pool));
        free(d->pool);
    }
    d->pool = NULL;
    d->pool_n = 0;
}

static void maybe_stop_done(drv_t *d);

unsigned sess_driver_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, unsigned rnd)
{
    uint64_t d = min_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* jitter: 80% .. 120% */
    uint64_t j = d * (80 + (rnd % 41)) / 100;
    return (unsigned)(j ? j : 1);
}

/* Deletes the session's credentials from the store and from memory. */
static void wipe_creds(drv_t *d)
{
    store_wipe(d->o.store, sess_name(d->sess));
    if (d->have_creds)
        store_creds_free(&d->creds);
    d->have_creds = 0;
}

/* Publishes `c` with the account the credentials name (or none). */
static void publish_change(drv_t *d, sess_change_t c)
{
    sess_account_t acc = {0};
    char phone[32] = "";
    if (d->have_creds && d->creds.jid) {
        acc.jid = d->creds.jid;
        acc.lid = d->creds.lid;
        size_t n = strcspn(d->creds.jid, ":@_");
        snprintf(phone, sizeof(phone), "%.*s", (int)(n < sizeof(phone) ? n : sizeof(phone) - 1),
                 d->creds.jid);
        acc.phone = phone;
        acc.push_name = d->creds.push_name;
        acc.platform = d->creds.platform;
        acc.business_name = d->creds.business_name;
        c.account = &acc;
    } else {
        c.clear_account = 1;
    }
    if (sess_publish(d->sess, &c) != 0)
        LOG_ERROR("session", "out of memory publishing a state change");
}

static void publish(drv_t *d, sess_state_t st, const char *detail)
{
    sess_change_t c = {.state = st, .detail = detail};
    publish_change(d, c);
}

static int new_identity(drv_t *d)
{
    store_creds_t *c = &d->creds;
    if (d->have_creds)
        store_creds_free(c);
    memset(c, 0, sizeof(*c));
    wa_keypair_t n, i, s;
    uint8_t signed_msg[33], rnd[2];
    if (wa_crypto_keypair_generate(&n) || wa_crypto_keypair_generate(&i) ||
        wa_crypto_keypair_generate(&s) || wa_crypto_random(c->adv_secret, 32) ||
        wa_crypto_random(rnd, 2))
        return -1;
    signed_msg[0] = 5;
    memcpy(signed_msg + 1, s.pub, 32);
    if (wa_crypto_sign(i.priv, signed_msg, 33, c->spk_sig))
        return -1;
    memcpy(c->noise_priv, n.priv, 32);
    memcpy(c->noise_pub, n.pub, 32);
    memcpy(c->ident_priv, i.priv, 32);
    memcpy(c->ident_pub, i.pub, 32);
    memcpy(c->spk_priv, s.priv, 32);
    memcpy(c->spk_pub, s.pub, 32);
    explicit_bzero(&n, sizeof(n));
    explicit_bzero(&i, sizeof(i));
    explicit_bzero(&s, sizeof(s));
    c->spk_id = 1;
    c->reg_id = 1 + ((unsigned)rnd[0] << 8 | rnd[1]) % 16380;
    c->next_prekey_id = 1;
    if (store_save(d->o.store, sess_name(d->sess), c) != 0) {
        store_creds_free(c);
        d->have_creds = 0;
        return -1;
    }
    d->have_creds = 1;
    return 0;
}

static void connect_now(drv_t *d);
static void pc_handover(drv_t *d);
static void connect_client(drv_t *d);

/* --- client hooks --- */

static void on_qr(void *arg, const char *qr, int64_t expires_at_ms)
{
    drv_t *d = arg;
    sess_change_t c = {.state = SESS_QR_READY,
                       .detail = "",
                       .qr_text = qr,
                       .qr_expires_at_ms = expires_at_ms,
                       .clear_account = 1};
    sess_publish(d->sess, &c);
}

static int on_paired(void *arg, const wa_pair_result_t *r)
{
    drv_t *d = arg;
    int rc = store_save_pairing(d->o.store, sess_name(d->sess), r->account, r->account_len, r->jid,
                                r->lid, r->platform, r->business_name, NULL);
    if (rc) {
        LOG_ERROR("session", "cannot save the pairing: %s", store_strerror(rc));
        return -1;
    }
    store_creds_free(&d->creds);
    d->have_creds = store_load(d->o.store, sess_name(d->sess), &d->creds) == 0;
    LOG_INFO("session", "linked to %s (%s)", d->creds.jid ? d->creds.jid : "?",
             r->platform ? r->platform : "unknown platform");
    publish(d, SESS_CONNECTING, "paired");
    return d->have_creds ? 0 : -1;
}

static void on_connected(void *arg, const char *lid)
{
    drv_t *d = arg;
    d->connected = 1;
    d->outdated_retried = 0;
    d->attempt = 0; /* a good connection resets the backoff */
    if (d->have_creds && !d->creds.confirmed) {
        store_confirm_pairing(d->o.store, sess_name(d->sess));
        d->creds.confirmed = 1;
    }
    if (lid && d->have_creds && (!d->creds.lid || strcmp(lid, d->creds.lid))) {
        char *l = strdup(lid);
        if (l) {
            free(d->creds.lid);
            d->creds.lid = l;
            store_save(d->o.store, sess_name(d->sess), &d->creds);
        }
    }
    LOG_INFO("session", "connected");
    publish(d, SESS_CONNECTED, "");
}

/* Worker thread: key pairs only (no store, no driver state). */
static void prekey_work(uv_work_t *w)
{
    prekey_job_t *j = w->data;
    j->kps = calloc(j->want, sizeof(*j->kps));
    j->ok = j->kps != NULL;
    for (size_t i = 0; j->ok && i < j->want; i++)
        j->ok = wa_crypto_keypair_generate(&j->kps[i]) == 0;
}

/* Loop thread: keep the keys and let the client that asked upload them. */
static void prekey_done(uv_work_t *w, int status)
{
    prekey_job_t *j = w->data;
    drv_t *d = j->d;
    if (d && status == 0 && j->ok) {
        pool_clear(d);
        d->pool = j->kps;
        d->pool_n = j->want;
        j->kps = NULL;
    } else if (d) {
        LOG_WARN("session", "pre-key generation failed");
    }
    if (j->kps) {
        explicit_bzero(j->kps, j->want * sizeof(*j->kps));
        free(j->kps);
    }
    if (d) {
        d->job = NULL;
        if (d->stopping)
            maybe_stop_done(d);
        else if (d->pool && d->client && d->client == j->client)
            (void)wa_client_upload_prekeys(d->client, j->want, j->first);
    }
    free(j);
}

static int get_prekeys(void *arg, size_t want, int first, wa_client_prekey_t *out)
{
    drv_t *d = arg;
    if (d->pool_n < want) { /* none ready: make them off the loop, answer later */
        if (!d->job && !d->stopping) {
            prekey_job_t *j = calloc(1, sizeof(*j));
            if (!j)
                return -1;
            j->d = d;
            j->client = d->client;
            j->want = want;
            j->first = first;
            j->w.data = j;
            if (uv_queue_work(wa_fsock_ctx_loop(d->o.fsock), &j->w, prekey_work, prekey_done) !=
                0) {
                free(j);
                return -1;
            }
            d->job = j;
        }
        return 0;
    }
    store_prekey_t *keys = calloc(want, sizeof(*keys));
    if (!keys)
        return -1;
    uint32_t next = d->creds.next_prekey_id ? d->creds.next_prekey_id : 1;
    for (size_t i = 0; i < want; i++) {
        const wa_keypair_t *kp = &d->pool[d->pool_n - want + i];
        keys[i].id = (next + (uint32_t)i) & 0xffffff;
        if (!keys[i].id)
            keys[i].id = 1;
        memcpy(keys[i].priv, kp->priv, 32);
        memcpy(keys[i].pub, kp->pub, 32);
        out[i].id = keys[i].id;
        memcpy(out[i].pub, kp->pub, 32);
    }
    /* the handed-out keys leave the pool whatever the store says */
    explicit_bzero(&d->pool[d->pool_n - want], want * sizeof(*d->pool));
    d->pool_n -= want;
    if (d->pool_n == 0)
        pool_clear(d);
    int rc = store_prekeys_add(d->o.store, sess_name(d->sess), keys, want);
    explicit_bzero(keys, want * sizeof(*keys));
    free(keys);
    if (rc)
        return -1;
    d->creds.next_prekey_id = next + (uint32_t)want;
    return (int)want;
}

/* WhatsApp retired the adv secret (or a linking flow derived a new one):
 * the pair-success to come is keyed by the new one, so it must survive a
 * restart of the service as the rest of the identity does. */
static int on_adv_secret(void *arg, const uint8_t secret[32])
{
    drv_t *d = arg;
    if (!d->have_creds)
        return -1;
    uint8_t old[32];
    memcpy(old, d->creds.adv_secret, 32);
    memcpy(d->creds.adv_secret, secret, 32);
    if (store_save(d->o.store, sess_name(d->sess), &d->creds) != 0) {
        memcpy(d->creds.adv_secret, old, 32);
        explicit_bzero(old, 32);
        return -1;
    }
    explicit_bzero(old, 32);
    return 0;
}

/* Edge routing info for the "ED" prefix of the next connections. */
static void on_routing_info(void *arg, const uint8_t *info, size_t len)
{
    drv_t *d = arg;
    if (len == 0 || len > WA_FRAME_ROUTING_MAX)
        return;
    if (d->routing_len == len && d->routing && !memcmp(d->routing, info, len))
        return;
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, info, len);
    free(d->routing);
    d->routing = copy;
    d->routing_len = len;
    store_meta_set(d->o.store, sess_name(d->sess), "routing_info", info, len);
}

static void on_prekeys_uploaded(void *arg, uint32_t max_id)
{
    drv_t *d = arg;
    store_prekeys_mark_uploaded(d->o.store, sess_name(d->sess), max_id);
}

/* --- the passkey step (session/wa/passkeyflow.c) --- */

/* WhatsApp asks for a passkey: its WebAuthn options go into the snapshot,
 * for the API and the link page. */
static void on_passkey_request(void *arg, const char *options_json)
{
    drv_t *d = arg;
    d->passkey_deadline_ms = sess_now_ms() + WA_CLIENT_PASSKEY_TIMEOUT_MS;
    sess_change_t c = {.state = SESS_CONNECTING,
                       .detail = "passkey_required",
                       .passkey_options = options_json,
                       .clear_link = 1};
    publish_change(d, c);
}

/* The code the user compares with the phone's. */
static void on_passkey_code(void *arg, const char *code)
{
    drv_t *d = arg;
    sess_change_t c = {.state = SESS_CONNECTING,
                       .detail = "passkey_confirm",
                       .link_code = code,
                       .link_code_expires_at_ms = d->passkey_deadline_ms,
                       .clear_link = 1};
    publish_change(d, c);
}

typedef struct {
    drv_t *d;
    void (*done)(void *arg, int rc);
    void *arg;
} passkey_call_t;

static int passkey_rc(int rc)
{
    switch (rc) {
    case WA_CLIENT_PASSKEY_OK:
        return 0;
    case WA_CLIENT_PASSKEY_EINVAL:
        return SESS_EINVAL;
    case WA_CLIENT_PASSKEY_ESTATE:
        return SESS_ESTATE;
    case WA_CLIENT_PASSKEY_EBUSY:
        return SESS_EBUSY;
    case WA_CLIENT_PASSKEY_EREFUSED:
        return SESS_EREFUSED;
    case WA_CLIENT_PASSKEY_ETIMEOUT:
        return SESS_ETIMEOUT;
    case WA_CLIENT_PASSKEY_ECLOSED:
        return SESS_ESTOPPED;
    }
    return -1;
}

static void on_passkey_answer(void *arg, int rc)
{
    passkey_call_t *pc = arg;
    drv_t *d = pc->d;
    if (rc == WA_CLIENT_PASSKEY_OK && !d->stopping) {
        /* accepted: nothing is left to sign (unless the phone answered
         * before WhatsApp did and the code is on screen already) */
        sess_snapshot_t *cur = sess_current(d->sess);
        if (!strcmp(cur->detail, "passkey_required")) {
            sess_change_t c = {
                .state = SESS_CONNECTING, .detail = "passkey_accepted", .clear_link = 1};
            publish_change(d, c);
        }
        sess_snapshot_unref(cur);
    }
    pc->done(pc->arg, passkey_rc(rc));
    free(pc);
}

static int op_passkey_response(void *arg, const char *json, size_t len,
                               void (*done)(void *arg, int rc), void *darg)
{
    drv_t *d = arg;
    if (!d->client || d->stopping)
        return SESS_ESTATE;
    passkey_call_t *pc = malloc(sizeof(*pc));
    if (!pc)
        return -1;
    *pc = (passkey_call_t){d, done, darg};
    int rc = wa_client_passkey_response(d->client, json, len, on_passkey_answer, pc);
    if (rc != WA_CLIENT_PASSKEY_OK) {
        free(pc);
        return passkey_rc(rc);
    }
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

/* The version policy answered after a 405: retry once with a newer version,
 * or stay refused. */
static void on_version_checked(void *arg, int newer)
{
    drv_t *d = arg;
    if (!d->checking_version)
        return;
    d->checking_version = 0;
    char refused[WA_VERSION_STRLEN];
    wa_version_format(&d->used, refused, sizeof(refused));
    if (newer) {
        d->outdated_retried = 1;
        LOG_INFO("session", "WhatsApp refused version %s; retrying once with a newer one", refused);
        connect_now(d);
        return;
    }
    LOG_WARN("session",
             "WhatsApp refused version %s (405) and no newer version is published; staying "
             "disconnected (client_outdated)",
             refused);
    publish(d, SESS_DISCONNECTED, "client_outdated");
}

/* A 405 (client_outdated): unless the one retry was made, ask the version
 * policy for a newer version. Returns 1 when that is under way. */
static int retry_outdated(drv_t *d)
{
    if (!d->o.version || d->outdated_retried)
        return 0;
    int rc = sess_version_refresh(d->o.version, &d->used, on_version_checked, d);
    if (rc == 1) { /* a newer one is known already */
        d->checking_version = 1;
        on_version_checked(d, 1);
        return 1;
    }
    if (rc != 0)
        return 0;
    d->checking_version = 1;
    publish(d, SESS_CONNECTING, "checking_version");
    return 1;
}

static void on_closed(void *arg, const wa_verdict_t *v)
{
    drv_t *d = arg;
    d->client = NULL;
    d->connected = 0;
    LOG_INFO("session", "connection ended: %s (%s)", v->detail, v->message ? v->message : "");
    if (v->retry == WA_RETRY_NOW && d->have_creds && d->creds.jid && !d->creds.confirmed) {
        /* the restart request after pair-device-sign: the server has it */
        store_confirm_pairing(d->o.store, sess_name(d->sess));
        d->creds.confirmed = 1;
    }
    if (v->wipe && d->have_creds && d->creds.jid && !d->creds.confirmed && !d->stopping) {
        /* a login refused for a pairing the server never completed (we went
         * down between saving it and the server receiving our signature):
         * not a logout by the user, so register anew and show a QR */
        LOG_WARN("session", "the last pairing was never completed by WhatsApp; linking again");
        wipe_creds(d);
        d->attempt = 0;
        connect_now(d);
        return;
    }
    if (v->wipe && d->have_creds)
        wipe_creds(d);
    if (d->stopping)
        return;
    if (d->relink_after_logout) {
        d->relink_after_logout = 0;
        if (d->have_creds)
            wipe_creds(d);
        d->attempt = 0;
        connect_now(d);
        return;
    }
    if (!strcmp(v->detail, "client_outdated") && retry_outdated(d))
        return;
    switch (v->retry) {
    case WA_RETRY_NOW:
        connect_now(d);
        break;
    case WA_RETRY_BACKOFF: {
        uint8_t r[2];
        wa_crypto_random(r, 2);
        unsigned ms = sess_driver_backoff_ms(d->o.backoff_min_ms, d->o.backoff_max_ms, d->attempt++,
                                             (unsigned)r[0] << 8 | r[1]);
        LOG_INFO("session", "reconnecting in %u ms (attempt %u)", ms, d->attempt);
        publish(d, SESS_DISCONNECTED, v->detail);
        uv_timer_start(&d->retry, on_retry, ms, 0);
        break;
    }
    case WA_RETRY_NO:
        publish(d, SESS_DISCONNECTED, v->detail);
        break;
    }
}

/* The gate let this session's connection through. */
static void on_gate(void *arg)
{
    drv_t *d = arg;
    d->gate_passed = 1;
    connect_now(d);
}

/* The version policy is ready: make the connection connect_now set up. */
static void on_version_ready(void *arg)
{
    drv_t *d = arg;
    if (!d->waiting_version)
        return;
    d->waiting_version = 0;
    connect_client(d);
}

static void connect_now(drv_t *d)
{
    uv_timer_stop(&d->retry);
    if (d->client || d->stopping)
        return;
    d->checking_version = 0;
    d->waiting_version = 0;
    sess_version_cancel(d->o.version, d);
    if (d->o.gate && !d->gate_passed) {
        /* every new connection waits for its turn (CONNECT_RATE) */
        sess_gate_enter(d->o.gate, &d->ticket);
        if (d->ticket.queued) {
            sess_snapshot_t *cur = sess_current(d->sess);
            int show = cur->state != SESS_CONNECTING;
            sess_snapshot_unref(cur);
            if (show)
                publish(d, SESS_CONNECTING, "queued");
        }
        return;
    }
    d->gate_passed = 0;
    sess_count_connect(d->sess);
    if (!d->have_creds) {
        int rc = store_load(d->o.store, sess_name(d->sess), &d->creds);
        d->have_creds = rc == 0;
        if (rc == 0 && !d->creds.jid) {
            /* an identity that never finished pairing: start afresh */
            store_creds_free(&d->creds);
            d->have_creds = 0;
        }
        if (!d->have_creds && new_identity(d) != 0) {
            LOG_ERROR("session", "cannot create and save a device identity");
            publish(d, SESS_DISCONNECTED, "store_error");
            pc_handover(d);
            return;
        }
    }
    publish(d, SESS_CONNECTING, d->creds.jid ? "logging_in" : "registering");
    /* the first connections wait (boundedly) for the version discovery */
    if (d->o.version && sess_version_wait(d->o.version, on_version_ready, d) == 0) {
        d->waiting_version = 1;
        return;
    }
    connect_client(d);
}

static void connect_client(drv_t *d)
{
    if (d->client || d->stopping || !d->have_creds)
        return;
    wa_client_identity_t id = {.noise_priv = d->creds.noise_priv,
                               .noise_pub = d->creds.noise_pub,
                               .ident_priv = d->creds.ident_priv,
                               .ident_pub = d->creds.ident_pub,
                               .reg_id = d->creds.reg_id,
                               .spk_id = d->creds.spk_id,
                               .spk_pub = d->creds.spk_pub,
                               .spk_sig = d->creds.spk_sig,
                               .adv_secret = d->creds.adv_secret,
                               .jid = d->creds.jid,
                               .routing_info = d->routing,
                               .routing_info_len = d->routing_len};
    wa_client_hooks_t h = {.on_qr = on_qr,
                           .on_paired = on_paired,
                           .on_connected = on_connected,
                           .get_prekeys = get_prekeys,
                           .on_prekeys_uploaded = on_prekeys_uploaded,
                           .on_adv_secret = on_adv_secret,
                           .on_routing_info = on_routing_info,
                           .on_passkey_request = on_passkey_request,
                           .on_passkey_code = on_passkey_code,
                           .on_closed = on_closed,
                           .arg = d};
    wa_client_config_t cfg = d->o.client;
    cfg.url = d->url;
    cfg.device_name = d->device_name;
    if (d->o.version)
        cfg.version = sess_version_current(d->o.version, NULL);
    d->used = cfg.version;
    d->client = wa_client_connect(d->o.fsock, &cfg, &id, &h);
    if (!d->client) {
        wa_verdict_t v = {.detail = "unreachable",
                          .retry = WA_RETRY_BACKOFF,
                          .message = "cannot start a connection"};
        on_closed(d, &v);
    }
    pc_handover(d);
}

/* --- session operations --- */

static int op_start(void *arg)
{
    drv_t *d = arg;
    d->attempt = 0;
    d->outdated_retried = 0;
    if (!d->routing) {
        uint8_t *ri;
        size_t len;
        if (store_meta_get(d->o.store, sess_name(d->sess), "routing_info", &ri, &len) == 0) {
            if (len > 0 && len <= WA_FRAME_ROUTING_MAX) {
                d->routing = ri;
                d->routing_len = len;
            } else {
                free(ri);
            }
        }
    }
    sess_removal_kick(d->removal);
    connect_now(d);
    return 0;
}

static int op_reconnect(void *arg, int keep)
{
    drv_t *d = arg;
    uv_timer_stop(&d->retry);
    d->attempt = 0;
    d->outdated_retried = 0;
    if (keep) {
        if (d->client) {
            wa_client_close(d->client);
            d->client = NULL;
        }
        connect_now(d);
        return 0;
    }
    /* unlink the current device (if any), then register anew */
    if (d->client && d->connected && d->have_creds && d->creds.jid) {
        d->relink_after_logout = 1;
        wa_client_logout(d->client);
        return 0;
    }
    if (d->client) {
        wa_client_close(d->client);
        d->client = NULL;
    }
    if (d->have_creds)
        wipe_creds(d);
    connect_now(d);
    return 0;
}

static int op_logout(void *arg)
{
    drv_t *d = arg;
    uv_timer_stop(&d->retry);
    d->waiting_version = d->checking_version = 0;
    sess_version_cancel(d->o.version, d);
    if (d->client && d->connected && d->have_creds && d->creds.jid) {
        wa_client_logout(d->client); /* on_closed wipes and publishes */
        return 0;
    }
    if (d->client) {
        wa_client_close(d->client);
        d->client = NULL;
    }
    if (!d->have_creds)
        d->have_creds = store_load(d->o.store, sess_name(d->sess), &d->creds) == 0;
    d->connected = 0;
    if (d->have_creds && d->creds.jid) {
        /* linked but WhatsApp is out of reach: logged out now for everyone
         * here; the removal request goes out on the next connection */
        if (store_retire(d->o.store, sess_name(d->sess)) != 0) {
            LOG_ERROR("session", "cannot record the pending removal; wiping the credentials");
            wipe_creds(d);
        } else {
            store_creds_free(&d->creds);
            d->have_creds = 0;
        }
        LOG_INFO("session", "logged out while offline; WhatsApp is told on the next connection");
        publish(d, SESS_DISCONNECTED, "logged_out");
        sess_removal_kick(d->removal);
        return 0;
    }
    wipe_creds(d);
    publish(d, SESS_DISCONNECTED, "logged_out");
    return 0;
}

/* --- linking by pairing code --- */

static int linked(drv_t *d)
{
    if (d->have_creds)
        return d->creds.jid != NULL;
    store_creds_t c;
    if (store_load(d->o.store, sess_name(d->sess), &c) != 0)
        return 0;
    int l = c.jid != NULL;
    store_creds_free(&c);
    return l;
}

static int pc_error(drv_t *d, int rc)
{
    switch (rc) {
    case WA_CLIENT_PC_EINVAL:
        return SESS_EINVAL;
    case WA_CLIENT_PC_ESTATE:
        return SESS_ESTATE;
    case WA_CLIENT_PC_EBUSY:
        return SESS_EBUSY;
    case WA_CLIENT_PC_EREFUSED:
        return SESS_EREFUSED;
    case WA_CLIENT_PC_ETIMEOUT:
        return SESS_ETIMEOUT;
    case WA_CLIENT_PC_ECLOSED:
        return d->stopping ? SESS_ESTOPPED : SESS_EUNREACH;
    }
    return -1;
}

/* The client's answer: the code goes into the snapshot (the state and the
 * QR stay), then to the requester. */
static void on_code(void *arg, int rc, const char *code, int64_t expires_at_ms)
{
    drv_t *d = arg;
    void (*done)(void *, int, const char *, int64_t) = d->pc_done;
    void *darg = d->pc_arg;
    d->pc_done = NULL;
    d->pc_arg = NULL;
    if (rc == 0) {
        sess_snapshot_t *cur = sess_current(d->sess);
        sess_change_t c = {.state = cur->state,
                           .detail = cur->detail,
                           .keep_qr = 1,
                           .link_code = code,
                           .link_code_expires_at_ms = expires_at_ms};
        if (sess_publish(d->sess, &c) != 0)
            LOG_ERROR("session", "out of memory publishing the pairing code");
        sess_snapshot_unref(cur);
    } else {
        LOG_WARN("session", "no pairing code (%d)", rc);
    }
    if (done)
        done(darg, rc ? pc_error(d, rc) : 0, rc ? NULL : code, rc ? 0 : expires_at_ms);
}

static int op_pairing_code(void *arg, const char *phone,
                           void (*done)(void *arg, int rc, const char *code, int64_t expires_at_ms),
                           void *darg)
{
    drv_t *d = arg;
    if (d->stopping)
        return SESS_ESTOPPED;
    if (!wa_paircode_phone_ok(phone) || !done)
        return SESS_EINVAL;
    if (linked(d))
        return SESS_ELINKED;
    int64_t now = sess_now_ms();
    if (d->pc_done || (d->pc_last_ms && now - d->pc_last_ms < PAIRCODE_INTERVAL_MS))
        return SESS_EBUSY;
    d->pc_done = done;
    d->pc_arg = darg;
    d->pc_asked = 0;
    snprintf(d->pc_phone, sizeof(d->pc_phone), "%s", phone);
    if (!d->client) { /* no registration running: start one (new QR too) */
        d->attempt = 0;
        d->pc_in_op = 1;
        connect_now(d);
        d->pc_in_op = 0;
    }
    int rc = 0;
    if (d->client)
        rc = wa_client_request_pairing_code(d->client, phone, on_code, d);
    else if (!(d->o.gate && d->ticket.queued)) /* (queued: asked once connected) */
        rc = WA_CLIENT_PC_ECLOSED;
    if (rc) {
        d->pc_done = NULL;
        d->pc_arg = NULL;
        return pc_error(d, rc);
    }
    d->pc_asked = d->client != NULL;
    d->pc_last_ms = now;
    LOG_INFO("session", "pairing code requested");
    return 0;
}

/* A request that waited for a connection (the connection gate) goes to the
 * client just made, or fails when none could be made. */
static void pc_handover(drv_t *d)
{
    if (!d->pc_done || d->pc_asked || d->pc_in_op)
        return;
    int rc = d->client ? wa_client_request_pairing_code(d->client, d->pc_phone, on_code, d)
                       : WA_CLIENT_PC_ECLOSED;
    if (rc == 0)
        d->pc_asked = 1;
    else
        on_code(d, rc, NULL, 0);
}

/* Stopped once the retry timer and the remover are closed and no pre-key
 * job is running. */
static void maybe_stop_done(drv_t *d)
{
    if (d->retry_open || d->removal_open || d->job || d->client_closing || !d->stop_done)
        return;
    void (*done)(void *) = d->stop_done;
    d->stop_done = NULL;
    done(d->stop_arg);
}

static void on_retry_closed(uv_handle_t *h)
{
    drv_t *d = h->data;
    d->retry_open = 0;
    maybe_stop_done(d);
}

static void on_removal_stopped(void *arg)
{
    drv_t *d = arg;
    d->removal_open = 0;
    maybe_stop_done(d);
}

/* The WhatsApp connection is really closed: the stop may complete (the
 * session's next connection, maybe on another node, cannot overlap it). */
static void on_client_gone(void *arg)
{
    drv_t *d = arg;
    d->client_closing = 0;
    maybe_stop_done(d);
}

static void op_stop(void *arg, void (*done)(void *), void *darg)
{
    drv_t *d = arg;
    d->stopping = 1;
    if (d->o.gate)
        sess_gate_leave(d->o.gate, &d->ticket);
    d->waiting_version = d->checking_version = 0;
    sess_version_cancel(d->o.version, d);
    if (d->client) {
        wa_client_t *c = d->client;
        d->client = NULL;
        d->client_closing = 1;
        wa_client_close_then(c, on_client_gone, d);
    }
    if (d->pc_done && !d->pc_asked) /* it was waiting for a connection */
        on_code(d, WA_CLIENT_PC_ECLOSED, NULL, 0);
    d->stop_done = done;
    d->stop_arg = darg;
    uv_timer_stop(&d->retry);
    uv_close((uv_handle_t *)&d->retry, on_retry_closed);
    if (d->removal) {
        d->removal_open = 1;
        sess_removal_stop(d->removal, on_removal_stopped, d);
    }
}

static void op_destroy(void *arg)
{
    drv_t *d = arg;
    if (d->o.gate)
        sess_gate_leave(d->o.gate, &d->ticket);
    sess_version_cancel(d->o.version, d);
    if (d->job) {
        d->job->d = NULL; /* its completion frees it */
        d->job = NULL;
        maybe_stop_done(d); /* a stop waiting for the job ends here */
    }
    if (d->pc_done) /* never left waiting: the client answers when it ends */
        on_code(d, WA_CLIENT_PC_ECLOSED, NULL, 0);
    pool_clear(d);
    if (d->have_creds)
        store_creds_free(&d->creds);
    free(d->routing);
    sess_removal_free(d->removal);
    free(d->url);
    free(d->device_name);
    free(d);
}

static const sess_driver_ops_t ops = {.start = op_start,
                                      .reconnect = op_reconnect,
                                      .logout = op_logout,
                                      .passkey_response = op_passkey_response,
                                      .pairing_code = op_pairing_code,
                                      .stop = op_stop,
                                      .destroy = op_destroy};

int sess_driver_attach(sess_t *s, const sess_driver_opts_t *opts)
{
    drv_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->sess = s;
    d->o = *opts;
    if (!d->o.backoff_min_ms)
        d->o.backoff_min_ms = 1000;
    if (!d->o.backoff_max_ms)
        d->o.backoff_max_ms = 60000;
    d->url = strdup(opts->client.url ? opts->client.url : WA_FSOCK_DEFAULT_URL);
    d->device_name = opts->client.device_name ? strdup(opts->client.device_name) : NULL;
    wa_client_config_t rcfg = opts->client;
    rcfg.url = d->url;
    d->removal = d->url && (d->device_name || !opts->client.device_name)
                     ? sess_removal_new(opts->fsock, opts->store, &rcfg, sess_name(s))
                     : NULL;
    if (!d->removal) {
        free(d->url);
        free(d->device_name);
        free(d);
        return -1;
    }
    sess_removal_set_version(d->removal, opts->version);
    sess_gate_ticket_init(&d->ticket, on_gate, d);
    uv_timer_init(wa_fsock_ctx_loop(opts->fsock), &d->retry);
    d->retry.data = d;
    d->retry_open = 1;
    sess_set_driver(s, &ops, d);
    return 0;
}
