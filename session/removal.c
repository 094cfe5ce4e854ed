/* The remover of devices logged out while offline (see removal.h): one
 * connection at a time, logging in with the retired device's JID and noise
 * key, then remove-companion-device through wa_client_logout. The pending
 * removals are read and forgotten by jobs on the store's queue
 * (session/storeq.h), never on the loop. */
#include "session/removal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/crypto.h"

/* What the remover's jobs hold instead of the remover: it may be freed
 * before their done callbacks run. */
typedef struct {
    unsigned refs;
    sess_removal_t *r; /* NULL once the remover is freed */
} rm_life_t;

struct sess_removal {
    wa_fsock_ctx_t *fsock;
    store_t *store;
    sess_q_t *q; /* borrowed, may be NULL (the store is then called inline) */
    rm_life_t *life;
    int listing; /* a read of the pending removals is queued */
    int relist;  /* kicked meanwhile: read again once it is done */
    wa_client_config_t cfg;
    sess_version_t *version; /* borrowed, may be NULL */
    char *url, *session;     /* session NULL: orphans, chosen by accept */
    int (*accept)(void *arg, const char *session);
    void *accept_arg;
    wa_client_t *client;
    store_removal_t cur; /* the removal being sent (cur.id 0 when none) */
    int sent;            /* remove-companion-device went out on this attempt */
    unsigned attempt, done_count;
    uv_timer_t retry;
    int retry_open, stopping;
    void (*stop_done)(void *);
    void *stop_arg;
};

static void next(sess_removal_t *r);

static void life_unref(rm_life_t *l)
{
    if (l && --l->refs == 0)
        free(l);
}

/* A job: reads up to RM_LIST pending removals, or forgets one. */
#define RM_LIST 16
typedef struct {
    rm_life_t *life;
    store_t *st;
    int64_t id; /* forget this one; 0: list */
    store_removal_t *list;
    size_t n;
} rm_job_t;

static int rm_work(void *arg)
{
    rm_job_t *j = arg;
    if (j->id)
        return store_removal_done(j->st, j->id);
    j->list = calloc(RM_LIST, sizeof(*j->list));
    if (!j->list)
        return STORE_ENOMEM;
    return store_removals_list(j->st, j->list, RM_LIST, &j->n);
}

static void start(sess_removal_t *r, const store_removal_t *list, size_t n);

static void rm_done(void *arg, int rc)
{
    rm_job_t *j = arg;
    sess_removal_t *r = j->life->r;
    if (j->id) {
        if (rc != 0)
            LOG_WARN("session", "cannot forget a sent device removal: %s", store_strerror(rc));
    } else if (r && rc != SESS_Q_CANCELLED) {
        r->listing = 0;
        if (rc != 0)
            j->n = 0;
        int again = r->relist;
        r->relist = 0;
        start(r, j->list, j->n);
        if (again) /* something was queued after that read: read again */
            next(r);
    }
    if (j->list) {
        explicit_bzero(j->list, RM_LIST * sizeof(*j->list));
        free(j->list);
    }
    life_unref(j->life);
    free(j);
}

/* Queues a job (owned by the remover when it is a read: a stop cancels
 * it); without a queue, or when it cannot be queued, it runs at once. */
static void rm_run(sess_removal_t *r, int64_t id)
{
    rm_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        LOG_WARN("session", "out of memory reading the pending device removals");
        if (!id)
            r->listing = 0;
        return;
    }
    j->life = r->life;
    r->life->refs++;
    j->st = r->store;
    j->id = id;
    if (r->q && sess_q_run(r->q, id ? NULL : r, rm_work, rm_done, j) == 0)
        return;
    rm_done(j, rm_work(j));
}

/* Forgets the key of the removal in hand (not inlined: gcc -O1 mistakes
 * the struct for its first member otherwise). */
__attribute__((noinline)) static void forget(store_removal_t *x)
{
    explicit_bzero(x, sizeof(*x));
}

static void on_retry(uv_timer_t *t)
{
    next(t->data);
}

static void on_connected(void *arg, const char *lid)
{
    sess_removal_t *r = arg;
    (void)lid;
    LOG_INFO("session", "%s: sending the removal of a device logged out while offline",
             r->cur.session);
    r->sent = 1;
    wa_client_logout(r->client);
}

static void on_closed(void *arg, const wa_verdict_t *v)
{
    sess_removal_t *r = arg;
    r->client = NULL;
    /* Sent, or WhatsApp no longer knows the device (the login is refused
     * with a wiping verdict): either way there is nothing left to remove. */
    int gone = v->wipe;
    char who[sizeof(r->cur.session)];
    snprintf(who, sizeof(who), "%s", r->cur.session);
    if (gone) {
        rm_run(r, r->cur.id); /* a list queued later no longer sees it */
        r->done_count++;
        r->attempt = 0;
        LOG_INFO("session", "%s: the logged-out device is removed from WhatsApp", who);
    }
    forget(&r->cur);
    if (r->stopping)
        return;
    if (gone) {
        next(r);
        return;
    }
    uint8_t rnd[2] = {0, 0};
    wa_crypto_random(rnd, 2);
    unsigned ms = 1000;
    for (unsigned i = 0; i < r->attempt && ms < 60000; i++)
        ms *= 2;
    if (ms > 60000)
        ms = 60000;
    ms = ms * (80 + ((unsigned)rnd[0] % 41)) / 100;
    r->attempt++;
    LOG_INFO("session", "%s: removal not sent yet (%s); retrying in %u ms", who, v->detail, ms);
    uv_timer_start(&r->retry, on_retry, ms, 0);
}

/* Reads the pending removals (a job); start takes the session's oldest. */
static void next(sess_removal_t *r)
{
    if (r->listing) {
        r->relist = 1;
        return;
    }
    if (r->client || r->stopping || uv_is_active((uv_handle_t *)&r->retry))
        return;
    r->listing = 1;
    rm_run(r, 0);
}

/* Connects as the oldest of the session's removals in list[0..n), if any. */
static void start(sess_removal_t *r, const store_removal_t *list, size_t n)
{
    if (r->client || r->stopping || uv_is_active((uv_handle_t *)&r->retry))
        return;
    size_t i = 0;
    while (i < n && (r->session ? strcmp(list[i].session, r->session) != 0
                                : !r->accept(r->accept_arg, list[i].session)))
        i++;
    if (i >= n)
        return;
    r->cur = list[i];
    static const uint8_t zero[64];
    wa_client_identity_t id = {.noise_priv = r->cur.noise_priv,
                               .noise_pub = r->cur.noise_pub,
                               .ident_priv = zero,
                               .ident_pub = zero,
                               .spk_pub = zero,
                               .spk_sig = zero,
                               .adv_secret = zero,
                               .jid = r->cur.jid};
    wa_client_hooks_t h = {.on_connected = on_connected, .on_closed = on_closed, .arg = r};
    wa_client_config_t cfg = r->cfg;
    cfg.url = r->url;
    if (r->version)
        cfg.version = sess_version_current(r->version, NULL);
    r->sent = 0;
    r->client = wa_client_connect(r->fsock, &cfg, &id, &h);
    if (!r->client) {
        wa_verdict_t v = {.detail = "unreachable", .retry = WA_RETRY_BACKOFF};
        on_closed(r, &v);
    }
}

sess_removal_t *sess_removal_new(wa_fsock_ctx_t *fsock, store_t *store,
                                 const wa_client_config_t *cfg, const char *session)
{
    sess_removal_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->fsock = fsock;
    r->store = store;
    r->cfg = *cfg;
    r->url = strdup(cfg->url ? cfg->url : WA_FSOCK_DEFAULT_URL);
    r->session = session ? strdup(session) : NULL;
    r->life = calloc(1, sizeof(*r->life));
    if (!r->url || (session && !r->session) || !r->life) {
        free(r->life);
        free(r->url);
        free(r->session);
        free(r);
        return NULL;
    }
    r->life->refs = 1;
    r->life->r = r;
    uv_timer_init(wa_fsock_ctx_loop(fsock), &r->retry);
    r->retry.data = r;
    r->retry_open = 1;
    return r;
}

sess_removal_t *sess_removal_new_orphans(wa_fsock_ctx_t *fsock, store_t *store,
                                         const wa_client_config_t *cfg,
                                         int (*accept)(void *arg, const char *session), void *arg)
{
    sess_removal_t *r = sess_removal_new(fsock, store, cfg, NULL);
    if (r) {
        r->accept = accept;
        r->accept_arg = arg;
    }
    return r;
}

void sess_removal_set_version(sess_removal_t *r, sess_version_t *v)
{
    r->version = v;
}

void sess_removal_set_queue(sess_removal_t *r, sess_q_t *q)
{
    if (r)
        r->q = q;
}

void sess_removal_kick(sess_removal_t *r)
{
    if (r)
        next(r);
}

unsigned sess_removal_done_count(const sess_removal_t *r)
{
    return r ? r->done_count : 0;
}

static void on_retry_closed(uv_handle_t *h)
{
    sess_removal_t *r = h->data;
    r->retry_open = 0;
    if (r->stop_done)
        r->stop_done(r->stop_arg);
}

void sess_removal_stop(sess_removal_t *r, void (*done)(void *arg), void *arg)
{
    r->stopping = 1;
    sess_q_cancel(r->q, r); /* a read under way: nothing starts from it */
    r->listing = r->relist = 0;
    if (r->client) {
        wa_client_close(r->client);
        r->client = NULL;
    }
    r->stop_done = done;
    r->stop_arg = arg;
    uv_timer_stop(&r->retry);
    uv_close((uv_handle_t *)&r->retry, on_retry_closed);
}

void sess_removal_free(sess_removal_t *r)
{
    if (!r)
        return;
    sess_q_cancel(r->q, r);
    r->life->r = NULL; /* jobs still queued end without the remover */
    life_unref(r->life);
    forget(&r->cur);
    free(r->url);
    free(r->session);
    free(r);
}
