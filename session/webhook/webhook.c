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
 * so that many calls a second make few transactions.
 *
 * This file: the store's queue, the targets in memory and reading them,
 * the sender's life. Delivery is in deliver.c, the management calls in
 * targets.c, the test calls in test.c; what they share is in
 * webhook_internal.h. */
#include "session/webhook/webhook_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/httpc.h"
#include "common/log.h"

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
 * wh_job_end. 0, or -1 (the caller keeps arg). */
int wh_job_run(wh_t *wh, int cancellable, int (*work)(void *), void (*done)(void *, int), void *arg)
{
    if (sess_q_run(wh->o.q, cancellable ? (const void *)wh : NULL, work, done, arg) != 0)
        return -1;
    wh->jobs++;
    return 0;
}

/* The last use of wh by a done callback: frees the sender when wh_free
 * was called before. */
void wh_job_end(wh_t *wh)
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

int wh_run_sync(sess_q_t *q, int (*work)(void *), void *arg)
{
    sync_t s = {work, arg, 0, 0};
    if (sess_q_run(q, NULL, sync_work, sync_done, &s) != 0)
        return STORE_EIO;
    sess_q_drain(q);
    return s.finished && s.rc != SESS_Q_CANCELLED ? s.rc : STORE_EIO;
}

/* --- targets --- */

/* The target with that id, unless its deletion is queued. */
target_t *wh_find(wh_t *wh, const char *id)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->deleting && !strcmp(t->id, id))
            return t;
    return NULL;
}

/* The target with that id, even while its deletion is queued. */
target_t *wh_find_any(wh_t *wh, const char *id)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

target_t *wh_by_serial(wh_t *wh, uint64_t serial)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (t->serial == serial)
            return t;
    return NULL;
}

void wh_head_clear(target_t *t)
{
    free(t->head.body);
    memset(&t->head, 0, sizeof(t->head));
    t->has_head = 0;
}

static void target_free(target_t *t)
{
    wh_head_clear(t);
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

/* A new in-memory target from a stored one (the key is copied). */
target_t *wh_target_new(wh_t *wh, const store_webhook_t *s)
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

void wh_target_link(wh_t *wh, target_t *t)
{
    target_t **p = &wh->targets;
    while (*p)
        p = &(*p)->next;
    *p = t;
    wh->ntargets++;
}

/* Takes a target out: its request is abandoned, its memory freed once its
 * timer is closed; its queued jobs no longer find it. */
void wh_target_drop(wh_t *wh, target_t *t)
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
            wh_target_drop(wh, t);
            dropped = 1;
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        if (wh_find_any(wh, a->v[i].id))
            continue;
        target_t *t = wh_target_new(wh, &a->v[i]); /* created on another node */
        if (!t) {
            LOG_WARN("webhook", "target %s: unusable stored target skipped", a->v[i].id);
            continue;
        }
        t->dead = a->dead ? a->dead[i] : 0;
        wh_target_link(wh, t);
    }
    return dropped;
}

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
                uv_timer_start(&wh->purge, wh_on_purge, 0, 0);
            if (!wh->paused)
                wh_pump_all(wh);
        }
        if (wh->reload_again)
            wh_reload(wh);
    }
    load_free(a);
    wh_job_end(wh);
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
    if (wh_job_run(wh, 1, load_work, load_done, a) != 0) {
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
            wh_pump_all(wh);
        uv_timer_start(&wh->purge, wh_on_purge, 0, 0);
    }
}

void wh_wake(wh_t *wh)
{
    if (wh && !wh->closed)
        uv_async_send(&wh->wake);
}

/* --- life --- */

static void on_wake(uv_async_t *a)
{
    wh_pump_all(a->data);
}

static void on_poll(uv_timer_t *tm)
{
    wh_pump_all(tm->data);
}

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
    int rc = wh_run_sync(o->q, load_work, a); /* the start: nothing is served yet */
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
    uv_timer_start(&wh->purge, wh_on_purge, 0, 0); /* deletions a restart interrupted */
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
    wh_tq_flush(wh); /* what was asked for is stored (and sent after a restart) */
    wh->closed = 1;
    for (;;) { /* the waits end, but for the queued-only ones whose event is being stored */
        wh_test_t *w = wh->tests;
        while (w && w->pending && w->queued_only)
            w = w->next;
        if (!w)
            break;
        wh_test_result_t r = {WH_ECLOSED, 0, 0, 0, "shutting down", w->event_id};
        wh_test_answer(w, &r);
    }
    for (target_t *t = wh->targets; t; t = t->next)
        t->req = NULL; /* abandoned by httpc_destroy below */
    httpc_destroy(wh->http, NULL, NULL);
    wh->http = NULL;
    wh_flush_done(wh);
    sess_q_cancel(wh->o.q, wh); /* the reads; the writes are stored */
    while (wh->targets)
        wh_target_drop(wh, wh->targets);
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
