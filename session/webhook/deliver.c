/* Webhook delivery (see webhook.c for the state machine): the writes of
 * the delivery state, the batched deletion of delivered rows, one
 * attempt and its outcome, reading a target's next head, the pump, and
 * the purge of the queues of deleted targets. */
#include "session/webhook/webhook_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/httpc.h"
#include "common/log.h"

#define FLUSH_MS 50u     /* delivered rows are deleted in batches this often */
#define PURGE_BATCH 5000 /* deliveries of deleted targets deleted per job */

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
    target_t *t = rc && a->dead && !wh->closed ? wh_by_serial(wh, a->serial) : NULL;
    if (t) { /* still pending in the store: found again once the queue is idle */
        if (t->dead)
            t->dead--;
        t->rescan = 1;
    }
    free(a);
    wh_job_end(wh);
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
    if (wh_job_run(t->wh, 0, mark_work, mark_done, a) != 0) {
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
    wh_job_end(wh);
}

/* --- batched deletion of delivered rows --- */

/* Queues the deletion of the delivered rows noted so far. A read queued
 * afterwards no longer finds them. */
void wh_flush_done(wh_t *wh)
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
    if (!a || wh_job_run(wh, 0, delivered_work, delivered_done, a) != 0) {
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
    wh_flush_done(wh);
}

static void mark_delivered(wh_t *wh, const target_t *t, uint64_t event_id)
{
    if (wh->ndone == FLUSH_MAX)
        wh_flush_done(wh);
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

static uint64_t next_rand(wh_t *wh)
{
    uint64_t x = wh->rnd;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return wh->rnd = x;
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
    wh_tests_answer(wh, t->id, t->head.event_id, 0, 0, why);
    wh_head_clear(t);
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
        wh_head_clear(t);
        wh_tests_answer(wh, t->id, ev, 1, res->status, "");
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
            wh_tests_answer(wh, t->id, ev, 0, status, why);
    }
    if (t->refetch) { /* a replay: read from the start, once the deliveries are recorded */
        t->refetch = 0;
        wh_flush_done(wh);
        t->cursor = 0;
        wh_head_clear(t);
    }
    wh_pump(t);
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

/* --- the retry wait --- */

static void on_retry_timer(uv_timer_t *tm)
{
    target_t *t = tm->data;
    t->waiting = 0;
    wh_pump(t);
}

static void retry_later(target_t *t, uint64_t ms)
{
    t->waiting = 1;
    uv_timer_start(&t->timer, on_retry_timer, ms, 0);
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
    target_t *t = rc == SESS_Q_CANCELLED || wh->closed ? NULL : wh_by_serial(wh, a->serial);
    if (t) {
        t->reading = 0;
        if (a->epoch != t->epoch || t->has_head) { /* a replay came since: read again */
            wh_pump(t);
        } else if (rc == STORE_ENOTFOUND) {
            int rescan = t->rescan && t->cursor;
            t->rescan = 0;
            if (rescan) {          /* a dead letter to record again: from the start, soon */
                wh_flush_done(wh); /* delivered rows first: they are not read again */
                t->cursor = 0;
                retry_later(t, POLL_MS);
            } else if (t->again) {
                wh_pump(t);
            }
        } else if (rc) {
            LOG_WARN("webhook", "target %s: cannot read the outbox: %s", t->id, store_strerror(rc));
            retry_later(t, POLL_MS);
        } else {
            t->head = a->d;
            a->d.body = NULL;
            t->has_head = 1;
            wh_pump(t);
        }
    }
    free(a->d.body);
    free(a);
    wh_job_end(wh);
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
    if (!a || wh_job_run(wh, 1, next_work, next_done, a) != 0) {
        free(a);
        LOG_WARN("webhook", "target %s: cannot read the outbox: out of memory", t->id);
        retry_later(t, POLL_MS);
        return;
    }
    t->reading = 1;
    t->again = 0;
}

/* Advances a target as far as it can without waiting. */
void wh_pump(target_t *t)
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

void wh_pump_all(wh_t *wh)
{
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->has_head && !t->req && !t->waiting)
            wh_pump(t);
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
            uv_timer_start(&wh->purge, wh_on_purge, rc ? POLL_MS : 0, 0);
        wh->purge_again = 0;
    }
    free(a);
    wh_job_end(wh);
}

/* Deletes a batch of the queues of deleted targets per job, so that
 * deleting a target with a million undelivered events never holds the
 * store's queue long. */
void wh_on_purge(uv_timer_t *tm)
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
    if (!a || wh_job_run(wh, 1, purge_work, purge_done, a) != 0) {
        free(a);
        uv_timer_start(&wh->purge, wh_on_purge, POLL_MS, 0);
        return;
    }
    wh->purging = 1;
}
