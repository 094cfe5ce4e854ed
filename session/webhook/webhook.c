/* The webhook sender (see webhook.h). Each target is a small state machine
 * on the loop:
 *
 *   idle --pump--> head read from the store (store_webhook_next, after the
 *   target's cursor, a job of the store's queue) --due--> one POST in
 *   flight --2xx--> delivered: the row's deletion is batched (flush timer),
 *   the cursor moves past it, the next head is read;  --failure-->
 *   attempts+1, next_at = now + backoff, written to the store, the target's
 *   timer waits; --budget spent--> dead letter (written), the cursor moves
 *   past it.
 *
 * The store is called only through its job queue (session/storeq.h): work
 * functions copy what they need into their job and touch nothing else;
 * done callbacks apply the results on the loop. The queue runs its jobs
 * one at a time in the order they were queued, so a write queued before a
 * read is seen by it: writes (failed, dead, delivered, test events, target
 * changes) are queued without waiting, and the state in memory moves at
 * once. Reads (a target's next head, the list of targets, purges) are
 * queued with the sender as owner: wh_close cancels them. Writes have no
 * owner, so they are stored even after wh_close; the sender's memory stays
 * until the done callback of its last job ran (wh_free defers the free),
 * and jobs find their target again by a serial number, never a pointer.
 *
 * The cursor (the highest event id delivered or dead since the last
 * replay) lets the next head be read before the batched deletions are
 * written. A dead letter whose record failed is still pending in the
 * store: the target then reads its queue again from the start once it is
 * idle (after a poll interval), and gives it up again. Wake-ups come from the journal (wh_wake, an
 * async handle) and from a slow poll timer, so a missed wake-up only delays.
 *
 * Test calls (wh_test) are stored by a group commit, as the journal's
 * events are (session/session.c): the test events asked for during one
 * loop iteration wait in a FIFO, and a prepare handle queues them all,
 * each with its delivery row, as one transaction before the loop polls
 * again; once stored, the targets are pumped and the "queued" answers
 * given. Ids are assigned in the order of the calls, so each target still
 * gets its events in order. Commits are at least commit_gap_ms apart (a
 * timer instead of the prepare handle when the last one is more recent),
 * so that many calls a second make few transactions. */
#include "session/webhook/webhook.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/httpc.h"
#include "common/log.h"

#define POLL_MS 1000u /* slow poll for new deliveries (wake-ups are the fast path) */
#define FLUSH_MS 50u  /* delivered rows are deleted in batches this often */
#define FLUSH_MAX 256 /* or when this many wait */
#define REASON_MAX 128
#define TQ_BATCH 256 /* test events stored in one transaction at most */
#define TQ_MAX 4096  /* test events waiting for the commit at most (then it is forced) */
#define TEST_BODY_MAX 256
#define PURGE_BATCH 5000 /* deliveries of deleted targets deleted per job */

typedef struct target target_t;

struct target {
    wh_t *wh;
    uint64_t serial; /* unique in this sender: how a job finds its target again */
    char id[40];
    char *url;
    char host[256];
    uint8_t key[WH_SECRET_MAX];
    size_t keylen;
    char *session; /* NULL: every session */
    char *events;  /* " t1 t2 " or "" */
    int64_t created_at;
    /* the head */
    int has_head;
    store_delivery_t head;
    uint64_t cursor; /* the highest event id delivered or dead since the last replay */
    int refetch;     /* a replay happened while a request was in flight */
    int reading;     /* a read of the next head is queued */
    int again;       /* pumped while reading: read again when it finds nothing */
    unsigned epoch;  /* bumped by a replay: a read queued before it is stale */
    int deleting;    /* its deletion is queued: no longer found by id */
    int rescan;      /* a dead letter could not be recorded: read from the start when idle */
    httpc_req_t *req;
    uv_timer_t timer; /* the retry wait */
    int waiting;
    /* since the start */
    uint64_t delivered, failed, dead;
    char last_error[REASON_MAX];
    target_t *next;
};

typedef struct tq tq_t;

struct wh_test {
    wh_t *wh;
    char target[40];
    uint64_t event_id; /* 0 until its event is stored */
    tq_t *pending;     /* its event, until it is stored */
    int queued_only;   /* answered once stored (wait_ms 0, or the wait ran out) */
    int done;          /* answered or cancelled: unlinked, its timer closing */
    wh_test_cb cb;
    void *arg;
    uv_timer_t timer;
    wh_test_t *next;
};

/* A test event waiting for the group commit, then in its job. */
struct tq {
    char target[40];
    int64_t ts_ms;
    char body[TEST_BODY_MAX];
    size_t body_len;
    wh_test_t *w; /* the call that waits for it; NULL once answered or cancelled */
    tq_t *next;
};

struct wh {
    wh_opts_t o;
    httpc_t *http;
    target_t *targets; /* oldest first */
    size_t ntargets;
    uint64_t serials; /* the last target serial given */
    size_t creating;  /* creations queued (they count against max_targets) */
    uv_async_t wake;
    uv_timer_t poll, flush;
    uv_timer_t purge; /* deletes the queues of deleted targets, a batch per job */
    int purging, purge_again;
    int reloading, reload_again;
    int flush_armed;
    /* delivered rows not yet queued for deletion */
    char (*done_target)[40];
    uint64_t *done_event;
    size_t ndone;
    wh_test_t *tests;
    /* test events not queued yet (FIFO), and the group commit's handle */
    tq_t *tq_head, *tq_tail;
    size_t ntq;
    uv_prepare_t commit;
    uv_timer_t commit_later; /* the next commit when the last one was too recent */
    uint64_t last_commit_ns; /* uv_hrtime() after the last commit */
    unsigned commit_gap_ms;  /* wh_opts_t's, or the default */
    uint64_t rnd;            /* xorshift state for the jitter */
    size_t jobs;             /* queued jobs whose done has not run */
    int free_asked;          /* wh_free was called while jobs were left */
    int closed;
    int paused; /* wh_set_sending(0): another node delivers (cluster) */
};

const char *wh_strerror(int rc)
{
    switch (rc) {
    case WH_OK:
        return "ok";
    case WH_EINVAL:
        return "invalid webhook";
    case WH_EPRIVATE:
        return "private address refused";
    case WH_ENOTFOUND:
        return "no such webhook";
    case WH_ELIMIT:
        return "too many webhooks";
    case WH_ENOMEM:
        return "out of memory";
    case WH_EIO:
        return "database error";
    case WH_ECLOSED:
        return "shutting down";
    default:
        return "unknown error";
    }
}

static uint64_t next_rand(wh_t *wh)
{
    uint64_t x = wh->rnd;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return wh->rnd = x;
}

static void pump(target_t *t);
static void flush_done(wh_t *wh);
static void on_purge(uv_timer_t *tm);

/* --- the store's queue --- */

static void wh_destroy(wh_t *wh)
{
    free(wh->done_target);
    free(wh->done_event);
    free(wh);
}

/* Queues a store job of this sender: a read (cancellable: the sender is its
 * owner, wh_close cancels it) or a write (no owner: stored even after
 * wh_close). Every job is counted until its done ran, which must end with
 * job_end. 0, or -1 (the caller keeps arg). */
static int job_run(wh_t *wh, int cancellable, int (*work)(void *), void (*done)(void *, int),
                   void *arg)
{
    if (sess_q_run(wh->o.q, cancellable ? (const void *)wh : NULL, work, done, arg) != 0)
        return -1;
    wh->jobs++;
    return 0;
}

/* The last use of wh by a done callback: frees the sender when wh_free
 * was called before. */
static void job_end(wh_t *wh)
{
    if (--wh->jobs == 0 && wh->free_asked)
        wh_destroy(wh);
}

/* Runs one job through the queue and waits for it (sess_q_drain, which
 * blocks the loop): for the start only (wh_new, wh_set_global). */
typedef struct {
    int (*work)(void *);
    void *arg;
    int rc, finished;
} sync_t;

static int sync_work(void *arg)
{
    sync_t *s = arg;
    return s->work(s->arg);
}

static void sync_done(void *arg, int rc)
{
    sync_t *s = arg;
    s->rc = rc;
    s->finished = 1;
}

static int run_sync(sess_q_t *q, int (*work)(void *), void *arg)
{
    sync_t s = {work, arg, 0, 0};
    if (sess_q_run(q, NULL, sync_work, sync_done, &s) != 0)
        return STORE_EIO;
    sess_q_drain(q);
    return s.finished && s.rc != SESS_Q_CANCELLED ? s.rc : STORE_EIO;
}

/* --- targets --- */

/* The target with that id, unless its deletion is queued. */
static target_t *find(wh_t *wh, const char *id)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->deleting && !strcmp(t->id, id))
            return t;
    return NULL;
}

/* The target with that id, even while its deletion is queued. */
static target_t *find_any(wh_t *wh, const char *id)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

static target_t *by_serial(wh_t *wh, uint64_t serial)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (t->serial == serial)
            return t;
    return NULL;
}

static void head_clear(target_t *t)
{
    free(t->head.body);
    memset(&t->head, 0, sizeof(t->head));
    t->has_head = 0;
}

static void target_free(target_t *t)
{
    head_clear(t);
    explicit_bzero(t->key, sizeof(t->key));
    free(t->url);
    free(t->session);
    free(t->events);
    free(t);
}

static void on_target_closed(uv_handle_t *h)
{
    target_free(h->data);
}

static void on_retry_timer(uv_timer_t *tm)
{
    target_t *t = tm->data;
    t->waiting = 0;
    pump(t);
}

static void retry_later(target_t *t, uint64_t ms)
{
    t->waiting = 1;
    uv_timer_start(&t->timer, on_retry_timer, ms, 0);
}

/* A new in-memory target from a stored one (the key is copied). */
static target_t *target_new(wh_t *wh, const store_webhook_t *s)
{
    target_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->wh = wh;
    t->serial = ++wh->serials;
    snprintf(t->id, sizeof(t->id), "%s", s->id);
    t->url = strdup(s->url);
    t->session = s->session ? strdup(s->session) : NULL;
    t->events = strdup(s->events ? s->events : "");
    t->created_at = s->created_at;
    const char *why;
    if (!t->url || !t->events || (s->session && !t->session) || s->secret_len > WH_SECRET_MAX ||
        wh_url_check(s->url, 1, t->host, sizeof(t->host), &why) != WH_OK) {
        target_free(t);
        return NULL;
    }
    memcpy(t->key, s->secret, s->secret_len);
    t->keylen = s->secret_len;
    uv_timer_init(wh->o.loop, &t->timer);
    t->timer.data = t;
    return t;
}

static void target_link(wh_t *wh, target_t *t)
{
    target_t **p = &wh->targets;
    while (*p)
        p = &(*p)->next;
    *p = t;
    wh->ntargets++;
}

/* Takes a target out: its request is abandoned, its memory freed once its
 * timer is closed; its queued jobs no longer find it. */
static void target_drop(wh_t *wh, target_t *t)
{
    for (target_t **p = &wh->targets; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            wh->ntargets--;
            break;
        }
    if (t->req)
        httpc_cancel(t->req);
    t->req = NULL;
    uv_close((uv_handle_t *)&t->timer, on_target_closed);
}

/* --- reading the targets (wh_new, wh_reload) --- */

typedef struct {
    wh_t *wh;
    store_t *st;
    char (*known)[40]; /* targets in memory when queued: their dead letters are not counted */
    size_t nknown;
    store_webhook_t *v;
    size_t n;
    uint64_t *dead; /* dead letters of v[i] (new targets only) */
} load_job_t;

static void load_free(load_job_t *a)
{
    store_webhooks_free(a->v, a->n);
    free(a->known);
    free(a->dead);
    free(a);
}

static load_job_t *load_new(wh_t *wh)
{
    load_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->wh = wh;
    a->st = wh->o.store;
    if (wh->ntargets && !(a->known = calloc(wh->ntargets, sizeof(*a->known)))) {
        free(a);
        return NULL;
    }
    for (target_t *t = wh->targets; t; t = t->next)
        snprintf(a->known[a->nknown++], 40, "%s", t->id);
    return a;
}

static int load_work(void *arg)
{
    load_job_t *a = arg;
    int rc = store_webhooks_list(a->st, &a->v, &a->n);
    if (rc)
        return rc;
    if (a->n && !(a->dead = calloc(a->n, sizeof(*a->dead))))
        return STORE_ENOMEM;
    for (size_t i = 0; i < a->n; i++) {
        size_t k = 0;
        while (k < a->nknown && strcmp(a->known[k], a->v[i].id))
            k++;
        if (k == a->nknown &&
            store_webhook_count(a->st, a->v[i].id, STORE_DELIVERY_DEAD, &a->dead[i]) != 0)
            a->dead[i] = 0;
    }
    return 0;
}

/* Makes the targets in memory those of the list: the missing ones added
 * (with their dead letters counted), and with `drop` those no longer
 * stored dropped. Returns 1 when one was dropped. */
static int load_apply(wh_t *wh, load_job_t *a, int drop)
{
    int dropped = 0;
    for (target_t *t = wh->targets, *next; drop && t; t = next) {
        next = t->next;
        size_t i = 0;
        while (i < a->n && strcmp(a->v[i].id, t->id))
            i++;
        if (i == a->n) { /* deleted on another node */
            LOG_INFO("webhook", "target %s (%s) deleted", t->id, t->host);
            target_drop(wh, t);
            dropped = 1;
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        if (find_any(wh, a->v[i].id))
            continue;
        target_t *t = target_new(wh, &a->v[i]); /* created on another node */
        if (!t) {
            LOG_WARN("webhook", "target %s: unusable stored target skipped", a->v[i].id);
            continue;
        }
        t->dead = a->dead ? a->dead[i] : 0;
        target_link(wh, t);
    }
    return dropped;
}

static void pump_all(wh_t *wh);

static void load_done(void *arg, int rc)
{
    load_job_t *a = arg;
    wh_t *wh = a->wh;
    if (rc != SESS_Q_CANCELLED && !wh->closed) {
        wh->reloading = 0;
        if (rc) {
            LOG_WARN("webhook", "cannot read the targets again: %s", store_strerror(rc));
        } else {
            int dropped = load_apply(wh, a, 1);
            if (dropped && !wh->paused)
                uv_timer_start(&wh->purge, on_purge, 0, 0);
            if (!wh->paused)
                pump_all(wh);
        }
        if (wh->reload_again)
            wh_reload(wh);
    }
    load_free(a);
    job_end(wh);
}

/* --- test waits --- */

static void on_test_closed(uv_handle_t *h)
{
    free(h->data);
}

static void test_unlink(wh_test_t *w)
{
    if (w->done)
        return;
    w->done = 1;
    if (w->pending) { /* its event is still stored: the call was made */
        w->pending->w = NULL;
        w->pending = NULL;
    }
    for (wh_test_t **p = &w->wh->tests; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    uv_close((uv_handle_t *)&w->timer, on_test_closed);
}

/* Answers a test call and unlinks it. */
static void test_answer(wh_test_t *w, const wh_test_result_t *r)
{
    wh_test_cb cb = w->cb;
    void *arg = w->arg;
    test_unlink(w);
    cb(arg, r);
}

/* An attempt of (target, event) finished: answer the test waits for it. */
static void tests_answer(wh_t *wh, const char *target, uint64_t event_id, int delivered,
                         long status, const char *error)
{
    wh_test_t *next;
    for (wh_test_t *w = wh->tests; w; w = next) {
        next = w->next;
        if (!w->event_id || w->event_id != event_id || strcmp(w->target, target))
            continue;
        wh_test_result_t r = {0, 1, delivered, status, error ? error : "", event_id};
        test_answer(w, &r);
    }
}

static void tq_flush(wh_t *wh);

static void on_test_timeout(uv_timer_t *tm)
{
    wh_test_t *w = tm->data;
    if (w->pending) { /* the wait ended before its event was stored: answered once it is */
        w->queued_only = 1;
        tq_flush(w->wh);
        return;
    }
    wh_test_result_t r = {0, 0, 0, 0, "", w->event_id};
    test_answer(w, &r);
}

/* --- writes of the delivery state (no owner: never cancelled) --- */

/* A failed attempt or a dead letter. */
typedef struct {
    wh_t *wh;
    store_t *st;
    int dead; /* 1: store_webhook_dead, else store_webhook_failed */
    uint64_t serial;
    char target[40];
    uint64_t event_id;
    uint32_t attempts;
    int64_t next_at_ms;
    char why[REASON_MAX];
} mark_job_t;

static int mark_work(void *arg)
{
    mark_job_t *a = arg;
    return a->dead ? store_webhook_dead(a->st, a->target, a->event_id, a->attempts, a->why)
                   : store_webhook_failed(a->st, a->target, a->event_id, a->attempts, a->next_at_ms,
                                          a->why);
}

static void mark_done(void *arg, int rc)
{
    mark_job_t *a = arg;
    wh_t *wh = a->wh;
    if (rc)
        LOG_WARN("webhook", "target %s: cannot record a %s: %s", a->target,
                 a->dead ? "dead letter (retried)" : "failed attempt",
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    target_t *t = rc && a->dead && !wh->closed ? by_serial(wh, a->serial) : NULL;
    if (t) { /* still pending in the store: found again once the queue is idle */
        if (t->dead)
            t->dead--;
        t->rescan = 1;
    }
    free(a);
    job_end(wh);
}

/* Queues the record of the head's failed attempt or death. 0 or -1. */
static int mark_head(target_t *t, int dead, const char *why)
{
    mark_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    *a = (mark_job_t){.wh = t->wh,
                      .st = t->wh->o.store,
                      .dead = dead,
                      .serial = t->serial,
                      .event_id = t->head.event_id,
                      .attempts = t->head.attempts,
                      .next_at_ms = t->head.next_at_ms};
    snprintf(a->target, sizeof(a->target), "%s", t->id);
    snprintf(a->why, sizeof(a->why), "%s", why);
    if (job_run(t->wh, 0, mark_work, mark_done, a) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

/* Delivered rows, deleted in one transaction. */
typedef struct {
    wh_t *wh;
    store_t *st;
    size_t n;
    char target[FLUSH_MAX][40];
    uint64_t event[FLUSH_MAX];
} delivered_job_t;

static int delivered_work(void *arg)
{
    delivered_job_t *a = arg;
    const char *ids[FLUSH_MAX];
    for (size_t i = 0; i < a->n; i++)
        ids[i] = a->target[i];
    return store_webhook_delivered(a->st, ids, a->event, a->n);
}

static void delivered_done(void *arg, int rc)
{
    delivered_job_t *a = arg;
    wh_t *wh = a->wh;
    if (rc)
        LOG_WARN("webhook", "cannot record %zu delivered events: %s (they may be sent again)", a->n,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    free(a);
    job_end(wh);
}

/* --- batched deletion of delivered rows --- */

/* Queues the deletion of the delivered rows noted so far. A read queued
 * afterwards no longer finds them. */
static void flush_done(wh_t *wh)
{
    if (!wh->ndone)
        return;
    delivered_job_t *a = malloc(sizeof(*a));
    if (a) {
        a->wh = wh;
        a->st = wh->o.store;
        a->n = wh->ndone;
        memcpy(a->target, wh->done_target, wh->ndone * sizeof(*wh->done_target));
        memcpy(a->event, wh->done_event, wh->ndone * sizeof(*wh->done_event));
    }
    if (!a || job_run(wh, 0, delivered_work, delivered_done, a) != 0) {
        free(a);
        LOG_WARN("webhook",
                 "cannot record %zu delivered events: out of memory (they may be sent "
                 "again)",
                 wh->ndone);
    }
    wh->ndone = 0;
}

static void on_flush_timer(uv_timer_t *tm)
{
    wh_t *wh = tm->data;
    wh->flush_armed = 0;
    flush_done(wh);
}

static void mark_delivered(wh_t *wh, const target_t *t, uint64_t event_id)
{
    if (wh->ndone == FLUSH_MAX)
        flush_done(wh);
    snprintf(wh->done_target[wh->ndone], 40, "%s", t->id);
    wh->done_event[wh->ndone++] = event_id;
    if (!wh->flush_armed && !wh->closed) {
        wh->flush_armed = 1;
        uv_timer_start(&wh->flush, on_flush_timer, FLUSH_MS, 0);
    }
}

/* --- one delivery --- */

static unsigned max_attempts(const wh_t *wh)
{
    return wh->o.max_attempts ? wh->o.max_attempts : WH_MAX_ATTEMPTS_DEFAULT;
}

static int64_t max_age(const wh_t *wh)
{
    return wh->o.max_age_ms > 0 ? wh->o.max_age_ms : WH_MAX_AGE_MS_DEFAULT;
}

/* The head is given up: a dead letter (its record is queued; when even that
 * cannot be, the head stays). */
static void head_dead(target_t *t, const char *why)
{
    wh_t *wh = t->wh;
    if (mark_head(t, 1, why) != 0) {
        LOG_WARN("webhook", "target %s: cannot record a dead letter: out of memory", t->id);
        return;
    }
    LOG_WARN("webhook",
             "target %s (%s): event %llu is a dead letter after %u attempts (%s); replay with "
             "POST /api/webhooks/%s/replay",
             t->id, t->host, (unsigned long long)t->head.event_id, t->head.attempts, why, t->id);
    t->dead++;
    if (t->head.event_id > t->cursor)
        t->cursor = t->head.event_id;
    tests_answer(wh, t->id, t->head.event_id, 0, 0, why);
    head_clear(t);
}

/* The head's attempt failed for `why`: retry later, or give up. */
static void head_failed(target_t *t, const char *why)
{
    wh_t *wh = t->wh;
    t->failed++;
    t->head.attempts++;
    snprintf(t->last_error, sizeof(t->last_error), "%s", why);
    int64_t now = clk_now_ms();
    if (t->head.attempts >= max_attempts(wh) || now - t->head.ts_ms > max_age(wh)) {
        head_dead(t, why);
        return;
    }
    uint64_t delay = wh_backoff_ms(
        t->head.attempts, wh->o.backoff_ms ? wh->o.backoff_ms : WH_BACKOFF_MS_DEFAULT,
        wh->o.backoff_max_ms ? wh->o.backoff_max_ms : WH_BACKOFF_MAX_MS_DEFAULT, next_rand(wh));
    t->head.next_at_ms = now + (int64_t)delay;
    if (mark_head(t, 0, why) != 0)
        LOG_WARN("webhook", "target %s: cannot record a failed attempt: out of memory", t->id);
    LOG_WARN("webhook",
             "target %s (%s): delivery of event %llu failed (attempt %u): %s; next attempt in "
             "%llu ms",
             t->id, t->host, (unsigned long long)t->head.event_id, t->head.attempts, why,
             (unsigned long long)delay);
}

static void on_response(void *arg, const httpc_result_t *res)
{
    target_t *t = arg;
    wh_t *wh = t->wh;
    t->req = NULL;
    uint64_t ev = t->head.event_id;
    char why[REASON_MAX];
    int ok = res->error == HTTPC_OK && res->status >= 200 && res->status < 300;
    if (ok) {
        why[0] = 0;
        t->delivered++;
        t->last_error[0] = 0;
        mark_delivered(wh, t, ev);
        if (ev > t->cursor)
            t->cursor = ev;
        head_clear(t);
        tests_answer(wh, t->id, ev, 1, res->status, "");
    } else {
        if (res->error == HTTPC_EREFUSED)
            snprintf(why, sizeof(why), "refused address: the host resolves to a private address");
        else if (res->error == HTTPC_ETIMEOUT)
            snprintf(why, sizeof(why), "timeout");
        else if (res->error == HTTPC_ETLS)
            snprintf(why, sizeof(why), "TLS failure: %.90s", res->message);
        else if (res->error == HTTPC_ECONNECT)
            snprintf(why, sizeof(why), "cannot connect: %.90s", res->message);
        else if (res->error != HTTPC_OK)
            snprintf(why, sizeof(why), "%s: %.90s", httpc_strerror(res->error), res->message);
        else if (res->status >= 300 && res->status < 400)
            snprintf(why, sizeof(why), "HTTP %ld (redirects are not followed)", res->status);
        else
            snprintf(why, sizeof(why), "HTTP %ld", res->status);
        long status = res->status;
        uint32_t before = t->head.attempts;
        head_failed(t, why);
        if (before == 0) /* a test call waits for the first attempt */
            tests_answer(wh, t->id, ev, 0, status, why);
    }
    if (t->refetch) { /* a replay: read from the start, once the deliveries are recorded */
        t->refetch = 0;
        flush_done(wh);
        t->cursor = 0;
        head_clear(t);
    }
    pump(t);
}

/* The connect-time check (DNS rebinding): the address curl is about to
 * connect to must not be private. */
static int allow_addr(void *arg, const struct sockaddr *sa, socklen_t len)
{
    (void)arg;
    return !wh_addr_private(sa, len);
}

/* Starts the head's attempt; when it cannot start, that counts as a failed
 * attempt. */
static void send_head(target_t *t)
{
    wh_t *wh = t->wh;
    char id[40], ts[32], sig[WH_SIG_MAX];
    int64_t now_s = clk_now_ms() / 1000;
    snprintf(id, sizeof(id), "evt_%llu", (unsigned long long)t->head.event_id);
    snprintf(ts, sizeof(ts), "%lld", (long long)now_s);
    if (wh_sign(t->key, t->keylen, id, now_s, t->head.body, t->head.body_len, sig) != WH_OK) {
        head_failed(t, "cannot sign (out of memory)");
        return;
    }
    char h_id[64], h_ts[64], h_sig[96];
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %s", ts);
    snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
    const char *headers[] = {h_id, h_ts, h_sig, "content-type: application/json", "expect:", NULL};
    httpc_request_t r = {
        .method = "POST",
        .url = t->url,
        .headers = headers,
        .body = t->head.body,
        .body_len = t->head.body_len,
        .timeout_ms = wh->o.timeout_ms ? wh->o.timeout_ms : WH_TIMEOUT_MS_DEFAULT,
        .connect_timeout_ms =
            wh->o.connect_timeout_ms ? wh->o.connect_timeout_ms : WH_CONNECT_TIMEOUT_MS_DEFAULT,
        .max_body = WH_MAX_RESPONSE,
        .keep_alive = 1,
        .done = on_response,
        .arg = t,
    };
    if (!wh->o.allow_private) {
        r.allow_addr = allow_addr;
        r.addr_arg = t;
    }
    int rc = httpc_request(wh->http, &r, &t->req);
    if (rc) {
        t->req = NULL;
        head_failed(t, httpc_strerror(rc));
    }
}

/* --- reading the head --- */

typedef struct {
    wh_t *wh;
    store_t *st;
    uint64_t serial;
    unsigned epoch;
    char target[40];
    uint64_t after;
    store_delivery_t d;
} next_job_t;

static int next_work(void *arg)
{
    next_job_t *a = arg;
    return store_webhook_next(a->st, a->target, a->after, 1, &a->d);
}

static void next_done(void *arg, int rc)
{
    next_job_t *a = arg;
    wh_t *wh = a->wh;
    target_t *t = rc == SESS_Q_CANCELLED || wh->closed ? NULL : by_serial(wh, a->serial);
    if (t) {
        t->reading = 0;
        if (a->epoch != t->epoch || t->has_head) { /* a replay came since: read again */
            pump(t);
        } else if (rc == STORE_ENOTFOUND) {
            int rescan = t->rescan && t->cursor;
            t->rescan = 0;
            if (rescan) {       /* a dead letter to record again: from the start, soon */
                flush_done(wh); /* delivered rows first: they are not read again */
                t->cursor = 0;
                retry_later(t, POLL_MS);
            } else if (t->again) {
                pump(t);
            }
        } else if (rc) {
            LOG_WARN("webhook", "target %s: cannot read the outbox: %s", t->id, store_strerror(rc));
            retry_later(t, POLL_MS);
        } else {
            t->head = a->d;
            a->d.body = NULL;
            t->has_head = 1;
            pump(t);
        }
    }
    free(a->d.body);
    free(a);
    job_end(wh);
}

/* Queues the read of the target's next head (once: pumped meanwhile, it
 * reads again when that one finds nothing). */
static void read_next(target_t *t)
{
    wh_t *wh = t->wh;
    if (t->reading) {
        t->again = 1;
        return;
    }
    next_job_t *a = calloc(1, sizeof(*a));
    if (a) {
        a->wh = wh;
        a->st = wh->o.store;
        a->serial = t->serial;
        a->epoch = t->epoch;
        a->after = t->cursor;
        snprintf(a->target, sizeof(a->target), "%s", t->id);
    }
    if (!a || job_run(wh, 1, next_work, next_done, a) != 0) {
        free(a);
        LOG_WARN("webhook", "target %s: cannot read the outbox: out of memory", t->id);
        retry_later(t, POLL_MS);
        return;
    }
    t->reading = 1;
    t->again = 0;
}

/* Advances a target as far as it can without waiting. */
static void pump(target_t *t)
{
    wh_t *wh = t->wh;
    while (!wh->closed && !wh->paused && !t->req && !t->waiting) {
        if (!t->has_head) {
            read_next(t);
            return;
        }
        int64_t now = clk_now_ms();
        if (now - t->head.ts_ms > max_age(wh) || t->head.attempts >= max_attempts(wh)) {
            head_dead(t, t->last_error[0] ? t->last_error : "too old");
            if (t->has_head) { /* could not be recorded: try later */
                retry_later(t, POLL_MS);
                return;
            }
            continue;
        }
        if (t->head.next_at_ms > now) {
            retry_later(t, (uint64_t)(t->head.next_at_ms - now));
            return;
        }
        send_head(t);
    }
}

static void pump_all(wh_t *wh)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->has_head && !t->req && !t->waiting)
            pump(t);
}

static void on_wake(uv_async_t *a)
{
    pump_all(a->data);
}

static void on_poll(uv_timer_t *tm)
{
    pump_all(tm->data);
}

/* --- the queues of deleted targets --- */

typedef struct {
    wh_t *wh;
    store_t *st;
    size_t deleted;
    int more;
} purge_job_t;

static int purge_work(void *arg)
{
    purge_job_t *a = arg;
    return store_webhook_purge(a->st, PURGE_BATCH, &a->deleted, &a->more);
}

static void purge_done(void *arg, int rc)
{
    purge_job_t *a = arg;
    wh_t *wh = a->wh;
    if (rc != SESS_Q_CANCELLED && !wh->closed) {
        wh->purging = 0;
        if (rc)
            LOG_WARN("webhook", "cannot delete the queue of a deleted target: %s (retried)",
                     store_strerror(rc));
        if (rc || a->more || wh->purge_again)
            uv_timer_start(&wh->purge, on_purge, rc ? POLL_MS : 0, 0);
        wh->purge_again = 0;
    }
    free(a);
    job_end(wh);
}

/* Deletes a batch of the queues of deleted targets per job, so that
 * deleting a target with a million undelivered events never holds the
 * store's queue long. */
static void on_purge(uv_timer_t *tm)
{
    wh_t *wh = tm->data;
    if (wh->paused || wh->closed)
        return; /* the delivering node purges (wh_set_sending restarts it) */
    if (wh->purging) {
        wh->purge_again = 1;
        return;
    }
    purge_job_t *a = calloc(1, sizeof(*a));
    if (a) {
        a->wh = wh;
        a->st = wh->o.store;
    }
    if (!a || job_run(wh, 1, purge_work, purge_done, a) != 0) {
        free(a);
        uv_timer_start(&wh->purge, on_purge, POLL_MS, 0);
        return;
    }
    wh->purging = 1;
}

int wh_reload(wh_t *wh)
{
    if (!wh || wh->closed)
        return WH_ECLOSED;
    if (wh->reloading) { /* read again when that one is in */
        wh->reload_again = 1;
        return WH_OK;
    }
    load_job_t *a = load_new(wh);
    if (!a)
        return WH_ENOMEM;
    if (job_run(wh, 1, load_work, load_done, a) != 0) {
        load_free(a);
        return WH_ENOMEM;
    }
    wh->reloading = 1;
    wh->reload_again = 0;
    return WH_OK;
}

void wh_set_sending(wh_t *wh, int on)
{
    if (!wh || wh->closed || wh->paused == !on)
        return;
    wh->paused = !on;
    LOG_INFO("webhook", on ? "delivering the webhooks" : "webhooks delivered by another node");
    if (on) { /* what other nodes created meanwhile, then the queues */
        if (wh_reload(wh) != WH_OK)
            pump_all(wh);
        uv_timer_start(&wh->purge, on_purge, 0, 0);
    }
}

void wh_wake(wh_t *wh)
{
    if (wh && !wh->closed)
        uv_async_send(&wh->wake);
}

/* --- life --- */

int wh_new(const wh_opts_t *o, wh_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o || !o->loop || !o->store || !o->q) {
        snprintf(err, errlen, "webhooks: no loop, store or store queue");
        return WH_EINVAL;
    }
    wh_t *wh = calloc(1, sizeof(*wh));
    if (!wh || !(wh->done_target = calloc(FLUSH_MAX, sizeof(*wh->done_target))) ||
        !(wh->done_event = calloc(FLUSH_MAX, sizeof(*wh->done_event)))) {
        if (wh)
            wh_destroy(wh);
        snprintf(err, errlen, "webhooks: out of memory");
        return WH_ENOMEM;
    }
    wh->o = *o;
    wh->o.ca_file = NULL; /* only used here */
    if (RAND_bytes((unsigned char *)&wh->rnd, sizeof(wh->rnd)) != 1 || !wh->rnd)
        wh->rnd = uv_hrtime() | 1;
    load_job_t *a = load_new(wh);
    if (!a) {
        snprintf(err, errlen, "webhooks: out of memory");
        wh_destroy(wh);
        return WH_ENOMEM;
    }
    int rc = run_sync(o->q, load_work, a); /* the start: nothing is served yet */
    if (rc) {
        snprintf(err, errlen, "webhooks: cannot read the targets: %s", store_strerror(rc));
        load_free(a);
        wh_destroy(wh);
        return WH_EIO;
    }
    httpc_opts_t ho = {.ca_file = o->ca_file, .user_agent = "wa-gateway-webhooks"};
    wh->http = httpc_new(o->loop, &ho, err, errlen);
    if (!wh->http) {
        load_free(a);
        wh_destroy(wh);
        return WH_EINVAL;
    }
    uv_async_init(o->loop, &wh->wake, on_wake);
    wh->wake.data = wh;
    uv_timer_init(o->loop, &wh->poll);
    wh->poll.data = wh;
    uv_timer_init(o->loop, &wh->flush);
    wh->flush.data = wh;
    uv_timer_init(o->loop, &wh->purge);
    wh->purge.data = wh;
    uv_timer_start(&wh->purge, on_purge, 0, 0); /* deletions a restart interrupted */
    uv_prepare_init(o->loop, &wh->commit);
    wh->commit.data = wh;
    uv_timer_init(o->loop, &wh->commit_later);
    wh->commit_later.data = wh;
    wh->commit_gap_ms = o->commit_gap_ms ? o->commit_gap_ms : WH_COMMIT_GAP_MS_DEFAULT;
    load_apply(wh, a, 0);
    load_free(a);
    uv_timer_start(&wh->poll, on_poll, 0, POLL_MS);
    *out = wh;
    return WH_OK;
}

void wh_close(wh_t *wh)
{
    if (!wh || wh->closed)
        return;
    tq_flush(wh); /* what was asked for is stored (and sent after a restart) */
    wh->closed = 1;
    for (;;) { /* the waits end, but for the queued-only ones whose event is being stored */
        wh_test_t *w = wh->tests;
        while (w && w->pending && w->queued_only)
            w = w->next;
        if (!w)
            break;
        wh_test_result_t r = {WH_ECLOSED, 0, 0, 0, "shutting down", w->event_id};
        test_answer(w, &r);
    }
    for (target_t *t = wh->targets; t; t = t->next)
        t->req = NULL; /* abandoned by httpc_destroy below */
    httpc_destroy(wh->http, NULL, NULL);
    wh->http = NULL;
    flush_done(wh);
    sess_q_cancel(wh->o.q, wh); /* the reads; the writes are stored */
    while (wh->targets)
        target_drop(wh, wh->targets);
    uv_close((uv_handle_t *)&wh->wake, NULL);
    uv_close((uv_handle_t *)&wh->poll, NULL);
    uv_close((uv_handle_t *)&wh->flush, NULL);
    uv_close((uv_handle_t *)&wh->purge, NULL);
    uv_close((uv_handle_t *)&wh->commit, NULL);
    uv_close((uv_handle_t *)&wh->commit_later, NULL);
}

void wh_free(wh_t *wh)
{
    if (!wh)
        return;
    if (wh->jobs) { /* the last done callback frees it */
        wh->free_asked = 1;
        return;
    }
    wh_destroy(wh);
}

size_t wh_count(const wh_t *wh)
{
    return wh ? wh->ntargets : 0;
}

/* --- management --- */

static void info_of(const target_t *t, wh_target_info_t *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", t->id);
    snprintf(o->url, sizeof(o->url), "%s", t->url);
    snprintf(o->session, sizeof(o->session), "%s", t->session ? t->session : "");
    snprintf(o->events, sizeof(o->events), "%s", t->events);
    o->created_at = t->created_at;
    o->delivered = t->delivered;
    o->failed = t->failed;
    o->dead = t->dead;
    o->retrying = t->has_head && t->head.attempts > 0;
    o->oldest_pending_ms = t->has_head ? clk_now_ms() - t->head.ts_ms : 0;
    if (o->oldest_pending_ms < 0)
        o->oldest_pending_ms = 0;
    snprintf(o->last_error, sizeof(o->last_error), "%s", t->last_error);
}

int wh_targets(wh_t *wh, wh_target_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!wh->ntargets)
        return WH_OK;
    wh_target_info_t *v = calloc(wh->ntargets, sizeof(*v));
    if (!v)
        return WH_ENOMEM;
    size_t k = 0;
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->deleting)
            info_of(t, &v[k++]);
    *out = v;
    *n = k;
    return WH_OK;
}

int wh_target_get(wh_t *wh, const char *id, wh_target_info_t *out)
{
    target_t *t = id ? find(wh, id) : NULL;
    if (!t)
        return WH_ENOTFOUND;
    info_of(t, out);
    return WH_OK;
}

/* A target's deletion (its queue is purged afterwards). */
typedef struct {
    wh_t *wh;
    store_t *st;
    uint64_t serial; /* the target to drop once deleted; 0: none */
    char id[40];
    wh_done_cb cb; /* NULL: nobody waits */
    void *arg;
} delete_job_t;

static int delete_work(void *arg)
{
    delete_job_t *a = arg;
    int rc = store_webhook_delete(a->st, a->id);
    return rc == STORE_ENOTFOUND ? 0 : rc;
}

static void delete_done(void *arg, int rc)
{
    delete_job_t *a = arg;
    wh_t *wh = a->wh;
    target_t *t = a->serial && !wh->closed ? by_serial(wh, a->serial) : NULL;
    if (rc)
        LOG_WARN("webhook", "target %s: cannot delete it: %s", a->id,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    if (t && rc) {
        t->deleting = 0;
    } else if (t) {
        LOG_INFO("webhook", "target %s (%s) deleted", t->id, t->host);
        target_drop(wh, t);
    }
    if (!rc && !wh->closed)
        uv_timer_start(&wh->purge, on_purge, 0, 0);
    if (a->cb)
        a->cb(a->arg, rc ? WH_EIO : WH_OK);
    free(a);
    job_end(wh);
}

/* Queues the deletion of target `id` (t: the one in memory, dropped once it
 * is deleted, or NULL). 0 or -1. */
static int delete_queue(wh_t *wh, const char *id, target_t *t, wh_done_cb cb, void *arg)
{
    delete_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    *a = (delete_job_t){
        .wh = wh, .st = wh->o.store, .serial = t ? t->serial : 0, .cb = cb, .arg = arg};
    snprintf(a->id, sizeof(a->id), "%s", id);
    if (job_run(wh, 0, delete_work, delete_done, a) != 0) {
        free(a);
        return -1;
    }
    if (t)
        t->deleting = 1;
    return 0;
}

int wh_target_delete(wh_t *wh, const char *id, wh_done_cb cb, void *arg)
{
    if (!wh || !cb)
        return WH_EINVAL;
    if (wh->closed)
        return WH_ECLOSED;
    target_t *t = id ? find(wh, id) : NULL;
    if (!t)
        return WH_ENOTFOUND;
    return delete_queue(wh, id, t, cb, arg) ? WH_ENOMEM : WH_OK;
}

/* A replay. */
typedef struct {
    wh_t *wh;
    store_t *st;
    uint64_t serial;
    char id[40];
    uint64_t since_id, n;
    wh_replay_cb cb;
    void *arg;
} replay_job_t;

static int replay_work(void *arg)
{
    replay_job_t *a = arg;
    return store_webhook_replay(a->st, a->id, a->since_id, &a->n);
}

static void replay_done(void *arg, int rc)
{
    replay_job_t *a = arg;
    wh_t *wh = a->wh;
    target_t *t = !rc && a->n && !wh->closed ? by_serial(wh, a->serial) : NULL;
    if (rc)
        LOG_WARN("webhook", "target %s: cannot replay: %s", a->id,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    if (t) {
        t->dead = 0;
        t->epoch++; /* a read queued before the replay is stale */
        if (t->req) {
            t->refetch = 1;
        } else {
            flush_done(wh); /* the cursor goes back: delivered rows must be gone first */
            t->cursor = 0;
            head_clear(t);
            if (t->waiting) {
                uv_timer_stop(&t->timer);
                t->waiting = 0;
            }
            pump(t);
        }
        LOG_INFO("webhook", "target %s (%s): %llu deliveries queued again", t->id, t->host,
                 (unsigned long long)a->n);
    }
    a->cb(a->arg, rc ? WH_EIO : WH_OK, rc ? 0 : a->n);
    free(a);
    job_end(wh);
}

int wh_replay(wh_t *wh, const char *id, uint64_t since_id, wh_replay_cb cb, void *arg)
{
    if (!wh || !cb)
        return WH_EINVAL;
    if (wh->closed)
        return WH_ECLOSED;
    target_t *t = id ? find(wh, id) : NULL;
    if (!t)
        return WH_ENOTFOUND;
    replay_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return WH_ENOMEM;
    *a = (replay_job_t){.wh = wh,
                        .st = wh->o.store,
                        .serial = t->serial,
                        .since_id = since_id,
                        .cb = cb,
                        .arg = arg};
    snprintf(a->id, sizeof(a->id), "%s", id);
    flush_done(wh); /* stored before the replay: the cursor will go back */
    if (job_run(wh, 0, replay_work, replay_done, a) != 0) {
        free(a);
        return WH_ENOMEM;
    }
    return WH_OK;
}

/* Checks and normalises an event filter into " t1 t2 " (out, outlen). */
static int filter_of(const char *const *events, char *out, size_t outlen, const char **why)
{
    out[0] = 0;
    size_t len = 0, count = 0;
    for (size_t i = 0; events && events[i]; i++) {
        const char *e = events[i];
        size_t el = strlen(e);
        if (el == 0 || el > 64 || strspn(e, "abcdefghijklmnopqrstuvwxyz0123456789._-") != el) {
            *why = "events: each type is 1 to 64 of a-z, 0-9, '.', '_' and '-'";
            return WH_EINVAL;
        }
        if (++count > WH_EVENTS_MAX) {
            *why = "events: at most 16 types";
            return WH_EINVAL;
        }
        if (len + el + 3 > outlen) {
            *why = "events: too long";
            return WH_EINVAL;
        }
        if (len == 0)
            out[len++] = ' ';
        memcpy(out + len, e, el);
        len += el;
        out[len++] = ' ';
        out[len] = 0;
    }
    return WH_OK;
}

static int session_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A creation: checked, maybe waiting for the resolver, then stored by a
 * job. */
typedef struct {
    wh_t *wh;
    store_t *st;
    uv_getaddrinfo_t gai;
    char *url, *session, *secret_shown;
    char events[512];
    char id[40];
    uint8_t key[WH_SECRET_MAX];
    size_t keylen;
    int64_t created_at;
    wh_created_cb cb;
    void *arg;
} create_t;

static void create_free(create_t *c)
{
    free(c->url);
    free(c->session);
    if (c->secret_shown) {
        explicit_bzero(c->secret_shown, strlen(c->secret_shown));
        free(c->secret_shown);
    }
    explicit_bzero(c->key, sizeof(c->key));
    free(c);
}

/* The target as the store has it (pointing into c). */
static store_webhook_t create_record(create_t *c)
{
    store_webhook_t s = {.url = c->url,
                         .secret = c->key,
                         .secret_len = c->keylen,
                         .session = c->session,
                         .events = c->events,
                         .created_at = c->created_at};
    snprintf(s.id, sizeof(s.id), "%s", c->id);
    return s;
}

static int create_work(void *arg)
{
    create_t *c = arg;
    store_webhook_t s = create_record(c);
    return store_webhook_put(c->st, &s);
}

static void create_done(void *arg, int rc)
{
    create_t *c = arg;
    wh_t *wh = c->wh;
    wh->creating--;
    if (wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
    } else if (rc) {
        LOG_WARN("webhook", "cannot store a new target: %s",
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
        c->cb(c->arg, WH_EIO, "cannot store the webhook", NULL, NULL);
    } else {
        store_webhook_t s = create_record(c);
        target_t *t = target_new(wh, &s);
        if (!t) {
            delete_queue(wh, c->id, NULL, NULL, NULL);
            c->cb(c->arg, WH_ENOMEM, "out of memory", NULL, NULL);
        } else {
            target_link(wh, t);
            LOG_INFO("webhook", "target %s (%s) created", t->id, t->host);
            wh_target_info_t info;
            info_of(t, &info);
            c->cb(c->arg, WH_OK, NULL, &info, c->secret_shown);
        }
    }
    create_free(c);
    job_end(wh);
}

/* Queues the storing of the target; cb answers once it is stored. Takes
 * c. */
static void create_finish(create_t *c)
{
    wh_t *wh = c->wh;
    if (wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
        create_free(c);
        return;
    }
    if (wh->ntargets + wh->creating >=
        (wh->o.max_targets ? wh->o.max_targets : WH_MAX_TARGETS_DEFAULT)) {
        c->cb(c->arg, WH_ELIMIT, "too many webhooks (MAX_WEBHOOKS)", NULL, NULL);
        create_free(c);
        return;
    }
    c->st = wh->o.store;
    c->created_at = (int64_t)time(NULL);
    if (job_run(wh, 0, create_work, create_done, c) != 0) {
        c->cb(c->arg, WH_ENOMEM, "out of memory", NULL, NULL);
        create_free(c);
        return;
    }
    wh->creating++;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    create_t *c = g->data;
    int finish = 0;
    if (status == UV_ECANCELED || c->wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
    } else if (status != 0 || !res) {
        c->cb(c->arg, WH_EINVAL, "url host does not resolve", NULL, NULL);
    } else {
        int priv = 0;
        for (struct addrinfo *a = res; a; a = a->ai_next)
            priv |= wh_addr_private(a->ai_addr, a->ai_addrlen);
        if (priv)
            c->cb(c->arg, WH_EPRIVATE,
                  "url host resolves to a private, loopback or link-local address (refused "
                  "unless WEBHOOK_ALLOW_PRIVATE=1)",
                  NULL, NULL);
        else
            finish = 1;
    }
    if (res)
        uv_freeaddrinfo(res);
    if (finish)
        create_finish(c);
    else
        create_free(c);
}

int wh_target_create(wh_t *wh, const wh_target_spec_t *spec, wh_created_cb cb, void *arg)
{
    if (!wh || !spec || !cb)
        return WH_EINVAL;
    if (wh->closed)
        return WH_ECLOSED;
    char host[256];
    const char *why = NULL;
    int rc = wh_url_check(spec->url, wh->o.allow_private, host, sizeof(host), &why);
    if (rc) {
        cb(arg, rc, why, NULL, NULL);
        return WH_OK;
    }
    create_t *c = calloc(1, sizeof(*c));
    if (!c)
        return WH_ENOMEM;
    c->wh = wh;
    c->cb = cb;
    c->arg = arg;
    if (filter_of(spec->events, c->events, sizeof(c->events), &why) != WH_OK) {
        create_free(c);
        cb(arg, WH_EINVAL, why, NULL, NULL);
        return WH_OK;
    }
    if (spec->session && *spec->session && !session_ok(spec->session)) {
        create_free(c);
        cb(arg, WH_EINVAL, "session: 1 to 64 of a-z, 0-9, '_' and '-'", NULL, NULL);
        return WH_OK;
    }
    if (spec->secret) {
        if (wh_secret_parse(spec->secret, c->key, &c->keylen) != WH_OK) {
            create_free(c);
            cb(arg, WH_EINVAL,
               "secret must be whsec_ followed by the base64 of 16 to 64 random bytes", NULL, NULL);
            return WH_OK;
        }
    } else {
        c->keylen = 24;
        char *b = RAND_bytes(c->key, (int)c->keylen) == 1 ? b64_encode(c->key, c->keylen) : NULL;
        size_t bl = b ? strlen(b) : 0;
        c->secret_shown = b ? malloc(bl + 7) : NULL;
        if (c->secret_shown)
            snprintf(c->secret_shown, bl + 7, "whsec_%s", b);
        if (b) {
            explicit_bzero(b, bl);
            free(b);
        }
        if (!c->secret_shown) {
            create_free(c);
            return WH_ENOMEM;
        }
    }
    uint8_t rid[12];
    if (RAND_bytes(rid, sizeof(rid)) != 1) {
        create_free(c);
        return WH_ENOMEM;
    }
    memcpy(c->id, "wh_", 3);
    for (size_t i = 0; i < sizeof(rid); i++)
        snprintf(c->id + 3 + 2 * i, 3, "%02x", rid[i]);
    c->url = strdup(spec->url);
    c->session = spec->session && *spec->session ? strdup(spec->session) : NULL;
    if (!c->url || (spec->session && *spec->session && !c->session)) {
        create_free(c);
        return WH_ENOMEM;
    }
    struct in6_addr a6;
    struct in_addr a4;
    int is_literal = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    if (wh->o.allow_private || is_literal) { /* nothing to resolve */
        create_finish(c);
        return WH_OK;
    }
    c->gai.data = c;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(wh->o.loop, &c->gai, on_resolved, host, NULL, &hints) != 0) {
        cb(arg, WH_EINVAL, "url host does not resolve", NULL, NULL);
        create_free(c);
    }
    return WH_OK;
}

/* The global target's record, or its dead letters (wh_set_global, through
 * run_sync). */
typedef struct {
    store_t *st;
    const store_webhook_t *s;
    uint64_t dead;
} global_job_t;

static int global_put_work(void *arg)
{
    global_job_t *a = arg;
    return store_webhook_put(a->st, a->s);
}

static int global_count_work(void *arg)
{
    global_job_t *a = arg;
    return store_webhook_count(a->st, WH_GLOBAL_ID, STORE_DELIVERY_DEAD, &a->dead);
}

int wh_set_global(wh_t *wh, const char *url, const char *secret, char *err, size_t errlen)
{
    if (wh->closed) {
        snprintf(err, errlen, "webhooks: shutting down");
        return WH_ECLOSED;
    }
    target_t *t = find_any(wh, WH_GLOBAL_ID);
    if (!url || !*url) {
        if (!t)
            return WH_OK;
        LOG_INFO("webhook", "WEBHOOK_URL is not set: the global webhook and its queue are removed");
        delete_job_t d = {.st = wh->o.store};
        snprintf(d.id, sizeof(d.id), "%s", WH_GLOBAL_ID);
        int rc = run_sync(wh->o.q, delete_work, &d);
        if (rc) {
            snprintf(err, errlen, "cannot delete the global webhook: %s", store_strerror(rc));
            return WH_EIO;
        }
        target_drop(wh, t);
        uv_timer_start(&wh->purge, on_purge, 0, 0);
        return WH_OK;
    }
    char host[256];
    const char *why = NULL;
    int rc = wh_url_check(url, wh->o.allow_private, host, sizeof(host), &why);
    if (rc) {
        snprintf(err, errlen, "WEBHOOK_URL: %s", why);
        return rc;
    }
    uint8_t key[WH_SECRET_MAX];
    size_t keylen = 0;
    if (!secret || wh_secret_parse(secret, key, &keylen) != WH_OK) {
        snprintf(err, errlen,
                 "WEBHOOK_SECRET must be whsec_ followed by the base64 of 16 to 64 random bytes");
        return WH_EINVAL;
    }
    store_webhook_t s = {.url = (char *)url,
                         .secret = key,
                         .secret_len = keylen,
                         .events = "",
                         .created_at = t ? t->created_at : (int64_t)time(NULL)};
    snprintf(s.id, sizeof(s.id), "%s", WH_GLOBAL_ID);
    global_job_t g = {.st = wh->o.store, .s = &s};
    rc = run_sync(wh->o.q, global_put_work, &g);
    if (rc) {
        explicit_bzero(key, sizeof(key));
        snprintf(err, errlen, "cannot store the global webhook: %s", store_strerror(rc));
        return WH_EIO;
    }
    target_t *nt = target_new(wh, &s);
    explicit_bzero(key, sizeof(key));
    if (!nt) {
        snprintf(err, errlen, "out of memory");
        return WH_ENOMEM;
    }
    if (t) { /* keep what it counted */
        nt->delivered = t->delivered;
        nt->failed = t->failed;
        nt->dead = t->dead;
        flush_done(wh); /* the new one reads from the start: delivered rows go first */
        target_drop(wh, t);
    } else if (run_sync(wh->o.q, global_count_work, &g) == 0) {
        nt->dead = g.dead;
    }
    target_link(wh, nt);
    LOG_INFO("webhook", "global webhook to %s", nt->host);
    pump(nt);
    return WH_OK;
}

/* --- test calls --- */

/* The test events of one transaction. */
typedef struct {
    wh_t *wh;
    store_t *st;
    size_t n;
    tq_t *e[TQ_BATCH];
    uint64_t ids[TQ_BATCH];
} batch_job_t;

/* Reads only what does not change once queued (target, time, body). */
static int batch_work(void *arg)
{
    batch_job_t *a = arg;
    const char *targets[TQ_BATCH];
    store_event_t ev[TQ_BATCH];
    for (size_t i = 0; i < a->n; i++) {
        targets[i] = a->e[i]->target;
        ev[i] = (store_event_t){.session = NULL,
                                .seq = 0,
                                .ts_ms = a->e[i]->ts_ms,
                                .type = "webhook.test",
                                .body = a->e[i]->body,
                                .body_len = a->e[i]->body_len};
    }
    int rc = store_webhook_enqueue_batch(a->st, targets, ev, a->n);
    for (size_t i = 0; i < a->n; i++)
        a->ids[i] = rc ? 0 : ev[i].id;
    return rc;
}

/* The events are stored (or not): the waits learn their ids, the targets
 * that got events are pumped, the queued-only calls answered. */
static void batch_done(void *arg, int rc)
{
    batch_job_t *a = arg;
    wh_t *wh = a->wh;
    wh_test_t *w[TQ_BATCH];
    size_t m = 0;
    if (rc)
        LOG_WARN("webhook", "cannot queue %zu test events: %s", a->n,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    /* the waits learn their event id before anything can answer them */
    for (size_t i = 0; i < a->n; i++) {
        wh_test_t *x = a->e[i]->w;
        a->e[i]->w = NULL;
        if (x) {
            x->pending = NULL;
            x->event_id = rc ? 0 : a->ids[i];
            w[m++] = x;
        }
    }
    if (!rc && !wh->closed) /* each target that got events sends its head now */
        for (size_t i = 0; i < a->n; i++) {
            if (i > 0 && !strcmp(a->e[i]->target, a->e[i - 1]->target))
                continue;
            target_t *t = find_any(wh, a->e[i]->target);
            if (t && !t->req && !t->waiting)
                pump(t);
        }
    for (size_t i = 0; i < m; i++) {
        if (w[i]->done) /* answered by its attempt, or cancelled */
            continue;
        if (rc) {
            wh_test_result_t r = {WH_EIO, 0, 0, 0, "cannot queue the test event", 0};
            test_answer(w[i], &r);
        } else if (w[i]->queued_only || wh->closed) {
            wh_test_result_t r = {WH_OK, 0, 0, 0, "", w[i]->event_id};
            test_answer(w[i], &r);
        }
    }
    for (size_t i = 0; i < a->n; i++)
        free(a->e[i]);
    free(a);
    job_end(wh);
}

/* Queues one batch (at most TQ_BATCH) from the head of the FIFO as one
 * transaction. */
static void tq_flush_batch(wh_t *wh)
{
    batch_job_t *a = calloc(1, sizeof(*a));
    while (wh->tq_head && (!a || a->n < TQ_BATCH)) {
        tq_t *q = wh->tq_head;
        wh->tq_head = q->next;
        wh->ntq--;
        q->next = NULL;
        if (!a || !find(wh, q->target)) { /* deleted since the call: nothing to store */
            if (q->w && !q->w->done) {
                wh_test_result_t r = {a ? WH_ENOTFOUND : WH_ENOMEM,
                                      0,
                                      0,
                                      0,
                                      a ? "no such webhook" : "out of memory",
                                      0};
                test_answer(q->w, &r);
            }
            free(q);
            continue;
        }
        a->e[a->n++] = q;
    }
    if (!wh->tq_head)
        wh->tq_tail = NULL;
    if (!a)
        return;
    a->wh = wh;
    a->st = wh->o.store;
    if (!a->n) {
        free(a);
        return;
    }
    if (job_run(wh, 0, batch_work, batch_done, a) != 0) {
        for (size_t i = 0; i < a->n; i++) {
            if (a->e[i]->w && !a->e[i]->w->done) {
                wh_test_result_t r = {WH_EIO, 0, 0, 0, "cannot queue the test event", 0};
                test_answer(a->e[i]->w, &r);
            }
            free(a->e[i]);
        }
        free(a);
    }
}

/* The group commit: queues every test event asked for so far. */
static void tq_flush(wh_t *wh)
{
    int any = wh->tq_head != NULL;
    while (wh->tq_head)
        tq_flush_batch(wh);
    if (any)
        wh->last_commit_ns = uv_hrtime();
    if (!uv_is_closing((uv_handle_t *)&wh->commit)) {
        uv_prepare_stop(&wh->commit);
        uv_timer_stop(&wh->commit_later);
    }
}

static void on_commit(uv_prepare_t *h)
{
    tq_flush(h->data);
}

static void on_commit_later(uv_timer_t *h)
{
    tq_flush(h->data);
}

/* Schedules the group commit of the test events waiting: at the end of
 * this loop iteration, or, when the last commit is less than the gap
 * old, when the gap is over (at most 1000 / gap commits a second). */
static void tq_schedule(wh_t *wh)
{
    if (uv_is_active((uv_handle_t *)&wh->commit) || uv_is_active((uv_handle_t *)&wh->commit_later))
        return;
    uint64_t since_ms = (uv_hrtime() - wh->last_commit_ns) / 1000000;
    if (wh->last_commit_ns && since_ms < wh->commit_gap_ms)
        uv_timer_start(&wh->commit_later, on_commit_later, wh->commit_gap_ms - since_ms, 0);
    else
        uv_prepare_start(&wh->commit, on_commit);
}

wh_test_t *wh_test(wh_t *wh, const char *id, unsigned wait_ms, wh_test_cb cb, void *arg)
{
    wh_test_result_t r = {WH_ENOTFOUND, 0, 0, 0, "no such webhook", 0};
    target_t *t = id ? find(wh, id) : NULL;
    if (wh->closed) {
        r.rc = WH_ECLOSED;
        r.error = "shutting down";
    }
    if (!t || wh->closed) {
        cb(arg, &r);
        return NULL;
    }
    if (wh->ntq >= TQ_MAX) /* bounded: queue what waits now */
        tq_flush(wh);
    tq_t *q = calloc(1, sizeof(*q));
    wh_test_t *w = q ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        free(q);
        r.rc = WH_ENOMEM;
        r.error = "out of memory";
        cb(arg, &r);
        return NULL;
    }
    int64_t now = clk_now_ms();
    char ts[CLK_ISO_LEN];
    clk_iso8601(now, ts);
    int bl = snprintf(q->body, sizeof(q->body),
                      "{\"type\":\"webhook.test\",\"session\":null,\"seq\":0,"
                      "\"timestamp\":\"%s\",\"data\":{\"webhook\":\"%s\"}}",
                      ts, t->id);
    q->body_len = bl > 0 && (size_t)bl < sizeof(q->body) ? (size_t)bl : 0;
    snprintf(q->target, sizeof(q->target), "%s", t->id);
    q->ts_ms = now;
    q->w = w;
    w->wh = wh;
    snprintf(w->target, sizeof(w->target), "%s", t->id);
    w->pending = q;
    w->queued_only = wait_ms == 0;
    w->cb = cb;
    w->arg = arg;
    uv_timer_init(wh->o.loop, &w->timer);
    w->timer.data = w;
    if (wait_ms)
        uv_timer_start(&w->timer, on_test_timeout, wait_ms, 0);
    w->next = wh->tests;
    wh->tests = w;
    if (wh->tq_tail)
        wh->tq_tail->next = q;
    else
        wh->tq_head = q;
    wh->tq_tail = q;
    wh->ntq++;
    tq_schedule(wh);
    return w;
}

void wh_test_cancel(wh_test_t *w)
{
    if (w)
        test_unlink(w); /* its event is still stored: the call was made */
}
