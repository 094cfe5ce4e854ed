/* Webhook test calls (wh_test): the test events' group commit (see
 * webhook.c) and the waits for their first attempt. */
#include "session/webhook/webhook_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define TQ_BATCH 256 /* test events stored in one transaction at most */
#define TQ_MAX 4096  /* test events waiting for the commit at most (then it is forced) */

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
void wh_test_answer(wh_test_t *w, const wh_test_result_t *r)
{
    wh_test_cb cb = w->cb;
    void *arg = w->arg;
    test_unlink(w);
    cb(arg, r);
}

/* An attempt of (target, event) finished: answer the test waits for it. */
void wh_tests_answer(wh_t *wh, const char *target, uint64_t event_id, int delivered, long status,
                     const char *error)
{
    wh_test_t *next;
    for (wh_test_t *w = wh->tests; w; w = next) {
        next = w->next;
        if (!w->event_id || w->event_id != event_id || strcmp(w->target, target))
            continue;
        wh_test_result_t r = {0, 1, delivered, status, error ? error : "", event_id};
        wh_test_answer(w, &r);
    }
}

static void on_test_timeout(uv_timer_t *tm)
{
    wh_test_t *w = tm->data;
    if (w->pending) { /* the wait ended before its event was stored: answered once it is */
        w->queued_only = 1;
        wh_tq_flush(w->wh);
        return;
    }
    wh_test_result_t r = {0, 0, 0, 0, "", w->event_id};
    wh_test_answer(w, &r);
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
            target_t *t = wh_find_any(wh, a->e[i]->target);
            if (t && !t->req && !t->waiting)
                wh_pump(t);
        }
    for (size_t i = 0; i < m; i++) {
        if (w[i]->done) /* answered by its attempt, or cancelled */
            continue;
        if (rc) {
            wh_test_result_t r = {WH_EIO, 0, 0, 0, "cannot queue the test event", 0};
            wh_test_answer(w[i], &r);
        } else if (w[i]->queued_only || wh->closed) {
            wh_test_result_t r = {WH_OK, 0, 0, 0, "", w[i]->event_id};
            wh_test_answer(w[i], &r);
        }
    }
    for (size_t i = 0; i < a->n; i++)
        free(a->e[i]);
    free(a);
    wh_job_end(wh);
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
        if (!a || !wh_find(wh, q->target)) { /* deleted since the call: nothing to store */
            if (q->w && !q->w->done) {
                wh_test_result_t r = {a ? WH_ENOTFOUND : WH_ENOMEM,
                                      0,
                                      0,
                                      0,
                                      a ? "no such webhook" : "out of memory",
                                      0};
                wh_test_answer(q->w, &r);
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
    if (wh_job_run(wh, 0, batch_work, batch_done, a) != 0) {
        for (size_t i = 0; i < a->n; i++) {
            if (a->e[i]->w && !a->e[i]->w->done) {
                wh_test_result_t r = {WH_EIO, 0, 0, 0, "cannot queue the test event", 0};
                wh_test_answer(a->e[i]->w, &r);
            }
            free(a->e[i]);
        }
        free(a);
    }
}

/* The group commit: queues every test event asked for so far. */
void wh_tq_flush(wh_t *wh)
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
    wh_tq_flush(h->data);
}

static void on_commit_later(uv_timer_t *h)
{
    wh_tq_flush(h->data);
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
    target_t *t = id ? wh_find(wh, id) : NULL;
    if (wh->closed) {
        r.rc = WH_ECLOSED;
        r.error = "shutting down";
    }
    if (!t || wh->closed) {
        cb(arg, &r);
        return NULL;
    }
    if (wh->ntq >= TQ_MAX) /* bounded: queue what waits now */
        wh_tq_flush(wh);
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
