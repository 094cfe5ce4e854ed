/* The session driver (see driver.h): identity generation, the mapping from
 * client events to published states, backoff, relinking, logout, and
 * linking by pairing code. Every store call runs as a job on the store's
 * queue (session/storeq.h), never on the loop: the load before connecting,
 * the saves of what pairing and key changes give, pre-keys, routing info,
 * wipes and retirements. */
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
typedef struct drv_life drv_life_t;

typedef struct {
    sess_t *sess;
    sess_driver_opts_t o;
    drv_life_t *life; /* what the store jobs hold instead of the driver */
    char *url;
    char *device_name; /* what the phone shows; NULL = the default */
    store_creds_t creds;
    int have_creds;
    unsigned creds_gen; /* changes whenever creds are replaced or wiped */
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
    prekey_job_t *job;     /* pre-keys being generated on a worker thread */
    int prekeys_storing;   /* generated pre-keys being stored */
    store_prekey_t *ready; /* stored pre-keys not yet handed out */
    size_t ready_n;
    /* the store's queue */
    unsigned writes;             /* write jobs not finished (a stop waits for them) */
    int loading;                 /* the load (or first save) of the identity is queued */
    int load_stale;              /* 1: creds wiped meanwhile, load again; 2: drop it (logout) */
    unsigned saving;             /* credential saves a connection must wait for */
    int connect_waiting;         /* connect once `saving` is 0 */
    int in_hook;                 /* inside a client hook's store job (inline queue) */
    int hook_rc;                 /* what that job answered */
    int hook_ran;                /* that job ended inside the hook */
    unsigned pair_seq;           /* counts pairings: the one the client waits to answer */
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
 * first request gets nothing and starts a job; when the keys are ready they
 * are stored (a store job), then the job asks the client that wanted them
 * to upload (which asks again and gets them). */
struct prekey_job {
    uv_work_t w;
    drv_t *d;            /* NULL once the driver is gone */
    wa_client_t *client; /* the connection that asked */
    size_t want;
    int first, ok;
    wa_keypair_t *kps;
};

static void ready_clear(drv_t *d)
{
    if (d->ready) {
        explicit_bzero(d->ready, d->ready_n * sizeof(*d->ready));
        free(d->ready);
    }
    d->ready = NULL;
    d->ready_n = 0;
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

/* --- store jobs (session/storeq.h) ---
 *
 * Every store call runs as a job on the store's queue: off the loop on
 * PostgreSQL, inline on SQLite. A job holds copies of what it writes and
 * the session's name, and a reference to the driver's life token, so its
 * completion never touches a driver that is gone. Reads that only feed the
 * next step (the load before connecting) are owned by the driver and
 * cancelled when it stops; writes are owned by nobody (they always run) and
 * a stop completes only once they have. */

struct drv_life {
    unsigned refs;
    drv_t *d; /* NULL once the driver is destroyed */
};

typedef struct djob djob_t;
struct djob {
    drv_life_t *life;
    store_t *st;
    char *name;
    int write;                                 /* a write: a stop waits for it */
    int counted;                               /* queued, counted in d->writes */
    int (*work)(djob_t *j);                    /* the store calls (queue's thread) */
    void (*then)(drv_t *d, djob_t *j, int rc); /* on the loop, driver alive; may be NULL */
    store_creds_t creds;                       /* to save, or loaded */
    int have_creds;
    int want_routing; /* load: read routing_info too */
    uint8_t *buf;     /* routing info to store, or loaded */
    size_t len;
    store_prekey_t *keys; /* pre-keys to add */
    size_t n;
    uint32_t max_id;
    char *s[4]; /* pairing: jid, lid, platform, business name */
    uint8_t *account;
    size_t account_len;
    int result;          /* a detail for then (e.g. retired or not) */
    unsigned gen;        /* d->creds_gen when queued */
    unsigned pair_seq;   /* save_pairing: d->pair_seq when queued */
    wa_client_t *client; /* pre-keys: the connection that asked */
    int first;
};

static void life_unref(drv_life_t *l)
{
    if (l && --l->refs == 0)
        free(l);
}

static djob_t *job_new(drv_t *d, int (*work)(djob_t *), void (*then)(drv_t *, djob_t *, int))
{
    djob_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->name = strdup(sess_name(d->sess));
    if (!j->name) {
        free(j);
        return NULL;
    }
    j->life = d->life;
    d->life->refs++;
    j->st = d->o.store;
    j->work = work;
    j->then = then;
    return j;
}

static void job_free(djob_t *j)
{
    if (j->have_creds)
        store_creds_free(&j->creds);
    free(j->buf);
    if (j->keys) {
        explicit_bzero(j->keys, j->n * sizeof(*j->keys));
        free(j->keys);
    }
    for (size_t i = 0; i < sizeof(j->s) / sizeof(j->s[0]); i++)
        free(j->s[i]);
    free(j->account);
    free(j->name);
    life_unref(j->life);
    explicit_bzero(j, sizeof(*j));
    free(j);
}

static int job_work(void *arg)
{
    djob_t *j = arg;
    return j->work(j);
}

static void job_done(void *arg, int rc)
{
    djob_t *j = arg;
    drv_life_t *life = j->life;
    life->refs++; /* kept past job_free */
    drv_t *d = life->d;
    int write = j->counted;
    if (d && write)
        d->writes--;
    if (d && rc != SESS_Q_CANCELLED && j->then)
        j->then(d, j, rc);
    job_free(j);
    d = life->d; /* then may have ended the driver */
    if (d && write && d->stopping)
        maybe_stop_done(d);
    life_unref(life);
}

/* Queues j (owned by the driver when `cancellable`, else by nobody). With
 * no queue (tests and tools without one), or when it cannot be queued, the
 * job runs at once on the loop, as the store calls did before the queue. */
static void job_run(drv_t *d, djob_t *j, int cancellable)
{
    j->counted = j->write && d->o.q;
    if (j->counted)
        d->writes++;
    if (d->o.q && sess_q_run(d->o.q, cancellable ? d : NULL, job_work, job_done, j) == 0)
        return;
    if (j->counted)
        d->writes--;
    j->counted = 0;
    job_done(j, job_work(j));
}

/* Copies a record, heap parts included. 0 or -1 (out of memory; *out is
 * then empty). */
static int creds_dup(store_creds_t *out, const store_creds_t *c)
{
    *out = *c;
    out->account = NULL;
    out->jid = out->lid = out->push_name = out->platform = out->business_name = NULL;
    int bad = 0;
    if (c->account && c->account_len) {
        out->account = malloc(c->account_len);
        if (out->account)
            memcpy(out->account, c->account, c->account_len);
        else
            bad = 1;
    }
#define DUP(f)                                                                                     \
    if (c->f && !(out->f = strdup(c->f)))                                                          \
        bad = 1;
    DUP(jid)
    DUP(lid)
    DUP(push_name)
    DUP(platform)
    DUP(business_name)
#undef DUP
    if (bad) {
        store_creds_free(out);
        return -1;
    }
    return 0;
}

static int work_save(djob_t *j)
{
    return store_save(j->st, j->name, &j->creds);
}

static int work_wipe(djob_t *j)
{
    return store_wipe(j->st, j->name);
}

static int work_confirm(djob_t *j)
{
    return store_confirm_pairing(j->st, j->name);
}

static int work_mark_uploaded(djob_t *j)
{
    return store_prekeys_mark_uploaded(j->st, j->name, j->max_id);
}

static int work_routing_set(djob_t *j)
{
    return store_meta_set(j->st, j->name, "routing_info", j->buf, j->len);
}

static int work_prekeys_add(djob_t *j)
{
    return store_prekeys_add(j->st, j->name, j->keys, j->n);
}

static int work_save_pairing(djob_t *j)
{
    return store_save_pairing(j->st, j->name, j->account, j->account_len, j->s[0], j->s[1], j->s[2],
                              j->s[3], NULL);
}

/* A write nothing waits for: failures are logged. */
static void then_logged(drv_t *d, djob_t *j, int rc)
{
    (void)d;
    if (rc != 0)
        LOG_WARN("session", "%s: a store write failed: %s", j->name, store_strerror(rc));
}

/* Queues a fire-and-forget write; returns -1 when out of memory. */
static int write_job(drv_t *d, int (*work)(djob_t *), djob_t **out)
{
    djob_t *j = job_new(d, work, then_logged);
    if (!j)
        return -1;
    j->write = 1;
    if (out) {
        *out = j; /* the caller fills it in and runs it */
        return 0;
    }
    job_run(d, j, 0);
    return 0;
}

/* Deletes the session's credentials from the store (a job: a load queued
 * later sees them gone) and from memory. */
static void wipe_creds(drv_t *d)
{
    if (write_job(d, work_wipe, NULL) != 0)
        LOG_ERROR("session", "out of memory: cannot wipe the credentials");
    if (d->have_creds)
        store_creds_free(&d->creds);
    d->have_creds = 0;
    d->creds_gen++;
    ready_clear(d);
    if (d->loading && d->load_stale != 2)
        d->load_stale = 1;
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

/* Makes a new device identity into *c (not stored). 0 or -1. */
static int new_identity(store_creds_t *c)
{
    memset(c, 0, sizeof(*c));
    wa_keypair_t n, i, s;
    uint8_t signed_msg[33], rnd[2];
    int rc = -1;
    if (wa_crypto_keypair_generate(&n) || wa_crypto_keypair_generate(&i) ||
        wa_crypto_keypair_generate(&s) || wa_crypto_random(c->adv_secret, 32) ||
        wa_crypto_random(rnd, 2))
        goto out;
    signed_msg[0] = 5;
    memcpy(signed_msg + 1, s.pub, 32);
    if (wa_crypto_sign(i.priv, signed_msg, 33, c->spk_sig))
        goto out;
    memcpy(c->noise_priv, n.priv, 32);
    memcpy(c->noise_pub, n.pub, 32);
    memcpy(c->ident_priv, i.priv, 32);
    memcpy(c->ident_pub, i.pub, 32);
    memcpy(c->spk_priv, s.priv, 32);
    memcpy(c->spk_pub, s.pub, 32);
    c->spk_id = 1;
    c->reg_id = 1 + ((unsigned)rnd[0] << 8 | rnd[1]) % 16380;
    c->next_prekey_id = 1;
    rc = 0;
out:
    explicit_bzero(&n, sizeof(n));
    explicit_bzero(&i, sizeof(i));
    explicit_bzero(&s, sizeof(s));
    if (rc)
        explicit_bzero(c, sizeof(*c));
    return rc;
}

static void connect_now(drv_t *d);
static void connect_ready(drv_t *d);
static void pc_handover(drv_t *d);
static void connect_client(drv_t *d);

/* A credential save the next connection waits for has ended. */
static void save_settled(drv_t *d)
{
    if (d->saving)
        d->saving--;
    if (d->saving || !d->connect_waiting)
        return;
    d->connect_waiting = 0;
    if (!d->stopping && !d->client)
        connect_ready(d);
}

/* Queues a save of the whole record in memory that the next connection
 * waits for (`then` NULL: then_saved). 0 or -1 (out of memory). */
static void then_saved(drv_t *d, djob_t *j, int rc);
static int save_creds(drv_t *d, void (*then)(drv_t *, djob_t *, int))
{
    djob_t *j;
    if (!d->have_creds || write_job(d, work_save, &j) != 0)
        return -1;
    if (creds_dup(&j->creds, &d->creds) != 0) {
        job_free(j);
        return -1;
    }
    j->have_creds = 1;
    j->then = then ? then : then_saved;
    d->saving++;
    job_run(d, j, 0);
    return 0;
}

static void then_saved(drv_t *d, djob_t *j, int rc)
{
    if (rc != 0)
        LOG_ERROR("session", "%s: cannot save the credentials: %s", j->name, store_strerror(rc));
    save_settled(d);
}

/* --- the load before connecting --- */

/* Queue's thread: the stored identity when it is paired; otherwise the new
 * one in j->creds is stored (an identity that never finished pairing is
 * replaced: linking starts afresh). Also reads the routing info. */
static int work_load(djob_t *j)
{
    if (j->want_routing) {
        uint8_t *ri = NULL;
        size_t len = 0;
        if (store_meta_get(j->st, j->name, "routing_info", &ri, &len) == 0) {
            if (len > 0 && len <= WA_FRAME_ROUTING_MAX) {
                j->buf = ri;
                j->len = len;
            } else {
                free(ri);
            }
        }
    }
    store_creds_t c;
    int rc = store_load(j->st, j->name, &c);
    if (rc == 0 && c.jid) {
        store_creds_free(&j->creds);
        j->creds = c;
        return 0;
    }
    if (rc == 0)
        store_creds_free(&c);
    else if (rc != STORE_ENOTFOUND)
        return rc; /* a read error never replaces what may be stored */
    return store_save(j->st, j->name, &j->creds);
}

static void then_loaded(drv_t *d, djob_t *j, int rc)
{
    d->loading = 0;
    if (j->buf && !d->routing) {
        d->routing = j->buf;
        d->routing_len = j->len;
        j->buf = NULL;
    }
    if (d->stopping)
        return;
    if (d->load_stale) { /* wiped or logged out while it was loading */
        int again = d->load_stale == 1;
        d->load_stale = 0;
        if (again)
            connect_now(d);
        return;
    }
    if (rc != 0) {
        LOG_ERROR("session", "cannot load or save a device identity: %s", store_strerror(rc));
        publish(d, SESS_DISCONNECTED, "store_error");
        pc_handover(d);
        return;
    }
    if (d->have_creds)
        store_creds_free(&d->creds);
    d->creds = j->creds;
    j->have_creds = 0;
    d->have_creds = 1;
    d->creds_gen++;
    ready_clear(d);
    connect_ready(d);
}

/* Queues the load of the identity (a new one stored when none is paired);
 * the connection follows in then_loaded. */
static void load_then_connect(drv_t *d)
{
    djob_t *j = job_new(d, work_load, then_loaded);
    if (!j || new_identity(&j->creds) != 0) {
        if (j)
            job_free(j);
        LOG_ERROR("session", "cannot create a device identity");
        publish(d, SESS_DISCONNECTED, "store_error");
        pc_handover(d);
        return;
    }
    j->have_creds = 1;
    j->want_routing = !d->routing;
    d->loading = 1;
    d->load_stale = 0;
    job_run(d, j, 1);
}

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

/* The pairing could not be stored after it was acknowledged (or the write
 * was fenced): it is dropped here, and the session stays disconnected. */
static void pairing_lost(drv_t *d)
{
    if (d->have_creds)
        store_creds_free(&d->creds);
    d->have_creds = 0;
    d->creds_gen++;
    ready_clear(d);
    d->connect_waiting = 0;
    d->connected = 0;
    if (d->client) {
        wa_client_close(d->client);
        d->client = NULL;
    }
    if (!d->stopping)
        publish(d, SESS_DISCONNECTED, "store_error");
    pc_handover(d); /* a pairing-code request waiting: it fails */
}

static void then_paired(drv_t *d, djob_t *j, int rc)
{
    if (rc != 0)
        LOG_ERROR("session", "%s: cannot save the pairing: %s", j->name, store_strerror(rc));
    if (d->in_hook) { /* inline: on_paired answers */
        d->hook_rc = rc;
        d->hook_ran = 1;
        if (d->saving)
            d->saving--;
        return;
    }
    /* the client waits for this to answer the phone (its pairing only) */
    wa_client_t *waiting = j->pair_seq == d->pair_seq ? d->client : NULL;
    if (rc != 0 && j->gen == d->creds_gen) {
        if (d->saving)
            d->saving--;
        wa_client_pair_answer(waiting, 0); /* an error to the phone; closed below */
        pairing_lost(d);
        return;
    }
    wa_client_pair_answer(waiting, rc == 0);
    save_settled(d);
}

static int on_paired(void *arg, const wa_pair_result_t *r)
{
    drv_t *d = arg;
    if (!d->have_creds)
        return -1;
    djob_t *j;
    if (write_job(d, work_save_pairing, &j) != 0)
        return -1;
    j->then = then_paired;
    const char *src[4] = {r->jid, r->lid, r->platform, r->business_name};
    char *mem[4] = {NULL, NULL, NULL, NULL};
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        if (src[i] && (!(j->s[i] = strdup(src[i])) || !(mem[i] = strdup(src[i]))))
            bad = 1;
    }
    uint8_t *acc = NULL;
    if (r->account_len) {
        j->account = malloc(r->account_len);
        acc = malloc(r->account_len);
        if (!j->account || !acc)
            bad = 1;
        else {
            memcpy(j->account, r->account, r->account_len);
            memcpy(acc, r->account, r->account_len);
        }
        j->account_len = r->account_len;
    }
    if (bad) {
        for (int i = 0; i < 4; i++)
            free(mem[i]);
        free(acc);
        job_free(j);
        LOG_ERROR("session", "out of memory saving the pairing");
        return -1;
    }
    /* memory holds what the store is given (as a load after it would) */
    store_creds_t *c = &d->creds;
    free(c->account);
    free(c->jid);
    free(c->lid);
    free(c->platform);
    free(c->business_name);
    free(c->push_name);
    c->account = acc;
    c->account_len = r->account_len;
    c->jid = mem[0];
    c->lid = mem[1];
    c->platform = mem[2];
    c->business_name = mem[3];
    c->push_name = NULL;
    c->confirmed = 0;
    j->gen = d->creds_gen;
    j->pair_seq = ++d->pair_seq;
    d->saving++;
    d->in_hook = 1;
    d->hook_rc = 0;
    d->hook_ran = 0;
    job_run(d, j, 0);
    d->in_hook = 0;
    if (d->hook_rc != 0) { /* inline and refused: answer with an error */
        store_creds_free(&d->creds);
        d->have_creds = 0;
        d->creds_gen++;
        return -1;
    }
    LOG_INFO("session", "linked to %s (%s)", d->creds.jid ? d->creds.jid : "?",
             r->platform ? r->platform : "unknown platform");
    publish(d, SESS_CONNECTING, "paired");
    /* queued: the phone is answered once it is stored (then_paired) */
    return d->hook_ran ? 0 : WA_CLIENT_PAIR_PENDING;
}

/* The server completed the pairing: stored (a job) and noted. */
static void confirm_pairing(drv_t *d)
{
    if (write_job(d, work_confirm, NULL) != 0)
        LOG_ERROR("session", "out of memory confirming the pairing");
    d->creds.confirmed = 1;
}

static void on_connected(void *arg, const char *lid)
{
    drv_t *d = arg;
    d->connected = 1;
    d->outdated_retried = 0;
    d->attempt = 0; /* a good connection resets the backoff */
    if (d->have_creds && !d->creds.confirmed)
        confirm_pairing(d);
    if (lid && d->have_creds && (!d->creds.lid || strcmp(lid, d->creds.lid))) {
        char *l = strdup(lid);
        if (l) {
            free(d->creds.lid);
            d->creds.lid = l;
            if (save_creds(d, NULL) != 0)
                LOG_ERROR("session", "out of memory saving the LID");
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

/* The pre-keys are stored: hand them to the client that asked. */
static void then_prekeys(drv_t *d, djob_t *j, int rc)
{
    d->prekeys_storing = 0;
    if (rc != 0) {
        LOG_WARN("session", "%s: cannot store pre-keys: %s", j->name, store_strerror(rc));
        return;
    }
    if (j->gen != d->creds_gen || d->stopping)
        return; /* for credentials wiped meanwhile */
    /* added to what is left (stored keys are never dropped unused) */
    store_prekey_t *all = malloc((d->ready_n + j->n) * sizeof(*all));
    if (!all) {
        LOG_WARN("session", "out of memory keeping stored pre-keys");
        return;
    }
    size_t n = d->ready_n;
    if (n)
        memcpy(all, d->ready, n * sizeof(*all));
    memcpy(all + n, j->keys, j->n * sizeof(*all));
    ready_clear(d); /* (wipes the old copy) */
    d->ready = all;
    d->ready_n = n + j->n;
    if (d->client && d->client == j->client)
        (void)wa_client_upload_prekeys(d->client, j->n, j->first);
}

/* Gives the generated keys their ids and queues them to the store. */
static void store_prekeys(drv_t *d, prekey_job_t *pj)
{
    djob_t *j = job_new(d, work_prekeys_add, then_prekeys);
    store_prekey_t *keys = j ? calloc(pj->want, sizeof(*keys)) : NULL;
    if (!keys) {
        if (j)
            job_free(j);
        LOG_WARN("session", "out of memory storing pre-keys");
        return;
    }
    uint32_t next = d->creds.next_prekey_id ? d->creds.next_prekey_id : 1;
    for (size_t i = 0; i < pj->want; i++) {
        keys[i].id = (next + (uint32_t)i) & 0xffffff;
        if (!keys[i].id)
            keys[i].id = 1;
        memcpy(keys[i].priv, pj->kps[i].priv, 32);
        memcpy(keys[i].pub, pj->kps[i].pub, 32);
    }
    d->creds.next_prekey_id = next + (uint32_t)pj->want;
    j->write = 1;
    j->keys = keys;
    j->n = pj->want;
    j->client = pj->client;
    j->first = pj->first;
    j->gen = d->creds_gen;
    d->prekeys_storing = 1;
    job_run(d, j, 0);
}

/* Loop thread: store the keys, then let the client that asked upload. */
static void prekey_done(uv_work_t *w, int status)
{
    prekey_job_t *j = w->data;
    drv_t *d = j->d;
    if (d)
        d->job = NULL;
    if (d && (status != 0 || !j->ok))
        LOG_WARN("session", "pre-key generation failed");
    else if (d && !d->stopping && d->have_creds)
        store_prekeys(d, j);
    if (j->kps) {
        explicit_bzero(j->kps, j->want * sizeof(*j->kps));
        free(j->kps);
    }
    free(j);
    if (d && d->stopping)
        maybe_stop_done(d);
}

static int get_prekeys(void *arg, size_t want, int first, wa_client_prekey_t *out)
{
    drv_t *d = arg;
    if (d->ready_n < want) { /* none stored yet: make them off the loop, answer later */
        if (!d->job && !d->prekeys_storing && !d->stopping) {
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
    /* the keys are in the store already: hand out the last `want` */
    for (size_t i = 0; i < want; i++) {
        const store_prekey_t *k = &d->ready[d->ready_n - want + i];
        out[i].id = k->id;
        memcpy(out[i].pub, k->pub, 32);
    }
    explicit_bzero(&d->ready[d->ready_n - want], want * sizeof(*d->ready));
    d->ready_n -= want;
    if (d->ready_n == 0)
        ready_clear(d);
    return (int)want;
}

static void then_adv_secret(drv_t *d, djob_t *j, int rc)
{
    if (rc != 0)
        LOG_ERROR("session", "%s: cannot save the new adv secret: %s", j->name, store_strerror(rc));
    if (d->in_hook) {
        d->hook_rc = rc;
        if (d->saving)
            d->saving--;
        return;
    }
    save_settled(d);
}

/* WhatsApp retired the adv secret (or a linking flow derived a new one):
 * the pair-success to come is keyed by the new one, so it must survive a
 * restart of the service as the rest of the identity does. The save is
 * queued before anything the pair-success stores, and the next connection
 * waits for it. */
static int on_adv_secret(void *arg, const uint8_t secret[32])
{
    drv_t *d = arg;
    if (!d->have_creds)
        return -1;
    uint8_t old[32];
    memcpy(old, d->creds.adv_secret, 32);
    memcpy(d->creds.adv_secret, secret, 32);
    d->in_hook = 1;
    d->hook_rc = 0;
    int rc = save_creds(d, then_adv_secret);
    d->in_hook = 0;
    if (rc != 0 || d->hook_rc != 0) {
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
    djob_t *j = NULL;
    uint8_t *jcopy = malloc(len);
    if (!copy || !jcopy || write_job(d, work_routing_set, &j) != 0) {
        free(copy);
        free(jcopy);
        return;
    }
    memcpy(copy, info, len);
    free(d->routing);
    d->routing = copy;
    d->routing_len = len;
    memcpy(jcopy, info, len);
    j->buf = jcopy;
    j->len = len;
    job_run(d, j, 0);
}

static void on_prekeys_uploaded(void *arg, uint32_t max_id)
{
    drv_t *d = arg;
    djob_t *j;
    if (write_job(d, work_mark_uploaded, &j) != 0)
        return;
    j->max_id = max_id;
    job_run(d, j, 0);
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
        confirm_pairing(d);
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

/* 1 while a connection is on its way (gate, load, save or version), so a
 * pairing-code request waits for it. */
static int connect_pending(const drv_t *d)
{
    return (d->o.gate && d->ticket.queued) || d->loading || d->connect_waiting ||
           d->waiting_version;
}

static void connect_now(drv_t *d)
{
    uv_timer_stop(&d->retry);
    if (d->client || d->stopping || d->loading || d->connect_waiting)
        return; /* (a load or save under way connects when it is done) */
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
        load_then_connect(d); /* then_loaded goes on */
        return;
    }
    connect_ready(d);
}

/* The credentials are in memory: connect once what they depend on is
 * stored and the version policy is ready. */
static void connect_ready(drv_t *d)
{
    if (d->client || d->stopping || !d->have_creds)
        return;
    if (d->saving) { /* never connect with credentials not stored yet */
        d->connect_waiting = 1;
        return;
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
    /* (the routing info is read with the credentials, in load_then_connect) */
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
    if (d->have_creds || d->loading)
        wipe_creds(d);
    connect_now(d);
    return 0;
}

/* Queue's thread: logs the session out locally. Returns 0 (wiped: it was
 * not linked), 1 (retired: a removal is pending), 2 (linked but the
 * removal could not be recorded: wiped) or a negative store code. */
static int work_logout(djob_t *j)
{
    store_creds_t c;
    int rc = store_load(j->st, j->name, &c);
    int linked = rc == 0 && c.jid;
    if (rc == 0)
        store_creds_free(&c);
    if (linked) {
        if (store_retire(j->st, j->name) == 0)
            return 1;
        rc = store_wipe(j->st, j->name);
        return rc ? rc : 2;
    }
    rc = store_wipe(j->st, j->name);
    return rc;
}

static void then_logout(drv_t *d, djob_t *j, int rc)
{
    if (rc == 1) {
        LOG_INFO("session", "logged out while offline; WhatsApp is told on the next connection");
        if (!d->stopping)
            sess_removal_kick(d->removal);
    } else if (rc == 2) {
        LOG_ERROR("session", "cannot record the pending removal; the credentials are wiped");
    } else if (rc != 0) {
        LOG_ERROR("session", "%s: cannot log out in the store: %s", j->name, store_strerror(rc));
    }
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
    d->connected = 0;
    d->connect_waiting = 0;
    /* linked but WhatsApp is out of reach: logged out now for everyone
     * here; the removal request goes out on the next connection (the job
     * decides from what is stored, after every write queued before it) */
    if (d->have_creds)
        store_creds_free(&d->creds);
    d->have_creds = 0;
    d->creds_gen++;
    ready_clear(d);
    if (d->loading)
        d->load_stale = 2;
    djob_t *j = job_new(d, work_logout, then_logout);
    if (j) {
        j->write = 1;
        job_run(d, j, 0);
    } else {
        LOG_ERROR("session", "out of memory logging out");
    }
    publish(d, SESS_DISCONNECTED, "logged_out");
    return 0;
}

/* --- linking by pairing code --- */

/* Linked as far as memory knows (credentials not loaded yet: the request
 * waits for the load, and pc_handover answers SESS_ELINKED then). */
static int linked(drv_t *d)
{
    return d->have_creds && d->creds.jid != NULL;
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

/* Answers the waiting request with a session error code. */
static void pc_reply(drv_t *d, int rc)
{
    void (*done)(void *, int, const char *, int64_t) = d->pc_done;
    void *darg = d->pc_arg;
    d->pc_done = NULL;
    d->pc_arg = NULL;
    if (done)
        done(darg, rc, NULL, 0);
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
    if (linked(d)) { /* (the load ran inline and found a linked device) */
        d->pc_done = NULL;
        d->pc_arg = NULL;
        return SESS_ELINKED;
    }
    int rc = 0;
    if (d->client)
        rc = wa_client_request_pairing_code(d->client, phone, on_code, d);
    else if (!connect_pending(d)) /* (pending: asked once connected) */
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
    if (linked(d)) { /* the stored credentials turned out to be linked */
        pc_reply(d, SESS_ELINKED);
        return;
    }
    int rc = d->client ? wa_client_request_pairing_code(d->client, d->pc_phone, on_code, d)
                       : WA_CLIENT_PC_ECLOSED;
    if (rc == 0)
        d->pc_asked = 1;
    else
        on_code(d, rc, NULL, 0);
}

/* Stopped once the retry timer and the remover are closed, no pre-key
 * job is running and every write queued to the store has been made. */
static void maybe_stop_done(drv_t *d)
{
    if (d->retry_open || d->removal_open || d->job || d->client_closing || d->writes ||
        !d->stop_done)
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
    sess_q_cancel(d->o.q, d); /* the load before connecting: no longer wanted */
    d->loading = 0;
    d->connect_waiting = 0;
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
    sess_q_cancel(d->o.q, d);
    d->life->d = NULL; /* the jobs still queued end without the driver */
    life_unref(d->life);
    d->life = NULL;
    d->writes = 0;
    if (d->job) {
        d->job->d = NULL; /* its completion frees it */
        d->job = NULL;
        maybe_stop_done(d); /* a stop waiting for the job ends here */
    }
    if (d->pc_done) /* never left waiting: the client answers when it ends */
        on_code(d, WA_CLIENT_PC_ECLOSED, NULL, 0);
    ready_clear(d);
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
    d->life = calloc(1, sizeof(*d->life));
    if (!d->life) {
        free(d);
        return -1;
    }
    d->life->refs = 1;
    d->life->d = d;
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
        free(d->life);
        free(d->url);
        free(d->device_name);
        free(d);
        return -1;
    }
    sess_removal_set_version(d->removal, opts->version);
    sess_removal_set_queue(d->removal, opts->q);
    sess_gate_ticket_init(&d->ticket, on_gate, d);
    uv_timer_init(wa_fsock_ctx_loop(opts->fsock), &d->retry);
    d->retry.data = d;
    d->retry_open = 1;
    sess_set_driver(s, &ops, d);
    return 0;
}
