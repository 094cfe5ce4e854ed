/* The WhatsApp Web version policy (see version.h): the current version and
 * its source, sw.js fetches through common/httpc with backoff and periodic
 * refresh, the start-up wait, and the callbacks of connections waiting for
 * it or asking after a 405. The stored version is read once at creation
 * (before the loop serves); a discovered one is written by a job on the
 * store's queue (session/storeq.h). */
#include "session/version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

#define STORE_KEY "wa_version"
#define SW_MAX_BODY (512u * 1024u) /* today's sw.js is a few KiB */
#define DEFAULT_WA_URL "wss://web.whatsapp.com/ws/chat"

typedef struct waiter {
    int refresh; /* 0: waiting for ready; 1: asking after a 405 */
    void (*ready_cb)(void *arg);
    void (*refresh_cb)(void *arg, int newer);
    void *arg;
    wa_version_t refused;
    struct waiter *next;
} waiter_t;

struct sess_version {
    sess_version_opts_t o;
    char sw_url[512];
    int discover;
    wa_version_t cur;
    sess_version_source_t src;
    wa_version_t builtin, stored;
    int have_stored;
    int ready, started, closed;
    uv_timer_t wait_timer, next_timer; /* start-up wait; retry or refresh */
    int timers_init;
    httpc_req_t *fetch;
    unsigned failures; /* consecutive failed fetches */
    sess_version_stats_t stats;
    waiter_t *waiters;
    waiter_t *dispatching; /* waiters being called back (cancel looks here too) */
    unsigned storing;      /* writes of a discovered version queued */
    wa_version_t queued;   /* the last one queued */
};

/* The write of a discovered version, off the loop. */
typedef struct {
    sess_version_t *p; /* not touched when the job is cancelled (closed) */
    store_t *st;
    wa_version_t v;
    char s[WA_VERSION_STRLEN];
} store_job_t;

static int store_work(void *arg)
{
    store_job_t *j = arg;
    return store_meta_set(j->st, "", STORE_KEY, j->s, strlen(j->s));
}

static void store_done(void *arg, int rc)
{
    store_job_t *j = arg;
    if (rc != SESS_Q_CANCELLED) {
        sess_version_t *p = j->p;
        p->storing--;
        if (rc == 0) {
            p->stored = j->v;
            p->have_stored = 1;
        } else {
            LOG_WARN("version", "cannot store the discovered WhatsApp Web version");
        }
    }
    free(j);
}

/* Queues the write of `v` ("2.3000.N" in s) unless it is stored already or
 * being stored (jobs run in order: the last one queued is what stays).
 * Without a queue it is written at once. */
static void store_version(sess_version_t *p, const wa_version_t *v, const char *s)
{
    if (!p->o.store || (p->storing && wa_version_cmp(&p->queued, v) == 0) ||
        (!p->storing && p->have_stored && wa_version_cmp(&p->stored, v) == 0))
        return;
    store_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        LOG_WARN("version", "cannot store the discovered WhatsApp Web version");
        return;
    }
    j->p = p;
    j->st = p->o.store;
    j->v = *v;
    snprintf(j->s, sizeof(j->s), "%s", s);
    p->storing++;
    p->queued = *v;
    if (p->o.q && sess_q_run(p->o.q, p, store_work, store_done, j) == 0)
        return;
    store_done(j, store_work(j));
}

const char *sess_version_source_name(sess_version_source_t src)
{
    switch (src) {
    case SESS_VERSION_STORED:
        return "stored";
    case SESS_VERSION_DISCOVERED:
        return "discovered";
    case SESS_VERSION_CONFIGURED:
        return "configured";
    default:
        return "builtin";
    }
}

static void set_current(sess_version_t *p, const wa_version_t *v, sess_version_source_t src)
{
    int changed = wa_version_cmp(&p->cur, v) != 0 || p->src != src;
    p->cur = *v;
    p->src = src;
    if (!changed)
        return;
    char s[WA_VERSION_STRLEN];
    wa_version_format(v, s, sizeof(s));
    LOG_INFO("version", "WhatsApp Web version %s (%s)", s, sess_version_source_name(src));
    if (p->o.on_change)
        p->o.on_change(p->o.arg, s, src);
}

int sess_version_new(const sess_version_opts_t *o, sess_version_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sess_version_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->o = *o;
    p->o.configured = p->o.wa_url = p->o.sw_url = NULL; /* not kept */
    if (!p->o.start_wait_ms)
        p->o.start_wait_ms = 3000;
    if (!p->o.fetch_timeout_ms)
        p->o.fetch_timeout_ms = 10000;
    if (!p->o.retry_min_ms)
        p->o.retry_min_ms = 5 * 60 * 1000;
    if (!p->o.retry_max_ms)
        p->o.retry_max_ms = 6 * 3600 * 1000;
    if (p->o.retry_max_ms < p->o.retry_min_ms)
        p->o.retry_max_ms = p->o.retry_min_ms;
    if (!p->o.refresh_ms)
        p->o.refresh_ms = 24 * 3600 * 1000;
    wa_version_parse(WA_PAYLOAD_DEFAULT_VERSION, &p->builtin);
    if (o->configured) {
        if (wa_version_parse(o->configured, &p->cur) != 0) {
            snprintf(err, errlen, "invalid WA_VERSION '%s' (expected like %s)", o->configured,
                     WA_PAYLOAD_DEFAULT_VERSION);
            free(p);
            return -1;
        }
        p->src = SESS_VERSION_CONFIGURED;
        p->ready = 1;
        *out = p;
        return 0;
    }
    p->discover = 1;
    if (!o->http) {
        snprintf(err, errlen, "WhatsApp Web version discovery needs an HTTP client");
        free(p);
        return -1;
    }
    if (o->sw_url) {
        if ((strncasecmp(o->sw_url, "http://", 7) && strncasecmp(o->sw_url, "https://", 8)) ||
            strlen(o->sw_url) >= sizeof(p->sw_url)) {
            snprintf(err, errlen, "invalid WA_VERSION_URL '%.200s' (an http:// or https:// URL)",
                     o->sw_url);
            free(p);
            return -1;
        }
        snprintf(p->sw_url, sizeof(p->sw_url), "%s", o->sw_url);
    } else {
        const char *wa = o->wa_url ? o->wa_url : DEFAULT_WA_URL;
        if (wa_version_sw_url(wa, p->sw_url, sizeof(p->sw_url)) != 0) {
            snprintf(err, errlen,
                     "cannot derive the sw.js URL from WA_URL '%.200s' (set WA_VERSION_URL or "
                     "WA_VERSION)",
                     wa);
            free(p);
            return -1;
        }
    }
    p->cur = p->builtin;
    p->src = SESS_VERSION_BUILTIN;
    uint8_t *val = NULL;
    size_t len = 0;
    if (o->store && store_meta_get(o->store, "", STORE_KEY, &val, &len) == 0) {
        if (len < 64 && memchr(val, 0, len) == NULL &&
            wa_version_parse((char *)val, &p->stored) == 0)
            p->have_stored = 1;
        else
            LOG_WARN("version", "ignoring a malformed stored WhatsApp Web version");
    }
    free(val);
    /* the newer of the two: a binary upgraded since the last discovery may
     * carry a newer built-in version than the one stored */
    if (p->have_stored && wa_version_cmp(&p->stored, &p->builtin) > 0) {
        p->cur = p->stored;
        p->src = SESS_VERSION_STORED;
    }
    *out = p;
    return 0;
}

/* --- waiters --- */

static int add_waiter(sess_version_t *p, const waiter_t *w)
{
    waiter_t *n = malloc(sizeof(*n));
    if (!n)
        return -1;
    *n = *w;
    n->next = p->waiters;
    p->waiters = n;
    return 0;
}

/* Calls back (and frees) every waiter of one kind. A callback may add new
 * waiters or cancel any. */
static void dispatch(sess_version_t *p, int refresh)
{
    waiter_t **pp = &p->waiters;
    while (*pp) { /* move this kind to the dispatching list */
        waiter_t *w = *pp;
        if (w->refresh == refresh) {
            *pp = w->next;
            w->next = p->dispatching;
            p->dispatching = w;
        } else {
            pp = &w->next;
        }
    }
    while (p->dispatching) {
        waiter_t *w = p->dispatching;
        p->dispatching = w->next;
        waiter_t copy = *w;
        free(w);
        if (copy.refresh)
            copy.refresh_cb(copy.arg, wa_version_cmp(&p->cur, &copy.refused) > 0);
        else
            copy.ready_cb(copy.arg);
    }
}

static void become_ready(sess_version_t *p)
{
    if (p->ready)
        return;
    p->ready = 1;
    if (p->timers_init)
        uv_timer_stop(&p->wait_timer);
    dispatch(p, 0);
}

/* --- fetching --- */

static void start_fetch(sess_version_t *p);

static void on_next_timer(uv_timer_t *t)
{
    start_fetch(t->data);
}

static void on_wait_timer(uv_timer_t *t)
{
    sess_version_t *p = t->data;
    char s[WA_VERSION_STRLEN];
    wa_version_format(&p->cur, s, sizeof(s));
    LOG_INFO("version", "sw.js has not answered within %u ms; connecting with %s (%s) meanwhile",
             p->o.start_wait_ms, s, sess_version_source_name(p->src));
    become_ready(p);
}

/* Answers the waiters from the loop after a fetch that could not start. */
static void on_kick(uv_timer_t *t)
{
    sess_version_t *p = t->data;
    become_ready(p);
    dispatch(p, 1);
}

static void fetch_failed(sess_version_t *p, const char *why)
{
    p->stats.fetch_failures++;
    unsigned shift = p->failures < 16 ? p->failures : 16;
    p->failures++;
    uint64_t delay = (uint64_t)p->o.retry_min_ms << shift;
    if (delay > p->o.retry_max_ms)
        delay = p->o.retry_max_ms;
    char s[WA_VERSION_STRLEN];
    wa_version_format(&p->cur, s, sizeof(s));
    if (p->failures == 1) {
        p->stats.warnings++;
        LOG_WARN("version",
                 "cannot discover the WhatsApp Web version from %s: %s; using %s (%s); "
                 "retrying in %llu s",
                 p->sw_url, why, s, sess_version_source_name(p->src),
                 (unsigned long long)(delay / 1000));
    } else {
        LOG_INFO("version",
                 "WhatsApp Web version discovery failed again (%u in a row): %s; "
                 "retrying in %llu s",
                 p->failures, why, (unsigned long long)(delay / 1000));
    }
    uv_timer_start(&p->next_timer, on_next_timer, delay, 0);
}

static void fetch_ok(sess_version_t *p, uint32_t revision)
{
    if (p->failures)
        LOG_INFO("version", "WhatsApp Web version discovery works again");
    p->failures = 0;
    wa_version_t v = wa_version_from_revision(revision);
    char s[WA_VERSION_STRLEN];
    wa_version_format(&v, s, sizeof(s));
    LOG_DEBUG("version", "%s announces client_revision %u", p->sw_url, revision);
    store_version(p, &v, s);
    set_current(p, &v, SESS_VERSION_DISCOVERED);
    uv_timer_start(&p->next_timer, on_next_timer, p->o.refresh_ms, 0);
}

static void on_fetched(void *arg, const httpc_result_t *r)
{
    sess_version_t *p = arg;
    p->fetch = NULL;
    p->stats.fetches++;
    char why[320];
    uint32_t rev = 0;
    int prc = 0;
    if (r->error != HTTPC_OK) {
        snprintf(why, sizeof(why), "%s (%.200s)", httpc_strerror(r->error), r->message);
    } else if (r->status < 200 || r->status > 299) {
        if (r->location)
            snprintf(why, sizeof(why), "HTTP status %ld (redirect to %.200s, not followed)",
                     r->status, r->location);
        else
            snprintf(why, sizeof(why), "HTTP status %ld", r->status);
    } else if ((prc = wa_version_parse_sw(r->body, r->body_len, &rev)) != 0) {
        snprintf(why, sizeof(why), "%s",
                 prc == WA_VERSION_ERANGE ? "client_revision out of range"
                                          : "no client_revision in the document");
    } else {
        why[0] = 0;
    }
    if (why[0])
        fetch_failed(p, why);
    else
        fetch_ok(p, rev);
    become_ready(p);
    dispatch(p, 1);
}

static void start_fetch(sess_version_t *p)
{
    if (p->fetch || p->closed)
        return;
    uv_timer_stop(&p->next_timer);
    /* what Baileys and whatsapp-rust send: WhatsApp answers sw.js to a
     * browser-looking request */
    static const char *const headers[] = {
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Sec-Fetch-Site: none", "Accept: */*", NULL};
    httpc_request_t rq = {.url = p->sw_url,
                          .headers = headers,
                          .timeout_ms = p->o.fetch_timeout_ms,
                          .max_body = SW_MAX_BODY,
                          .done = on_fetched,
                          .arg = p};
    int rc = httpc_request(p->o.http, &rq, &p->fetch);
    if (rc != 0) {
        p->fetch = NULL;
        p->stats.fetches++;
        fetch_failed(p, httpc_strerror(rc));
        /* the callers waiting are answered from the loop, as promised */
        uv_timer_start(&p->wait_timer, on_kick, 0, 0);
    }
}

/* --- public --- */

void sess_version_start(sess_version_t *p)
{
    if (p->started || p->closed)
        return;
    p->started = 1;
    char s[WA_VERSION_STRLEN];
    wa_version_format(&p->cur, s, sizeof(s));
    LOG_INFO("version", "WhatsApp Web version %s (%s)%s%s", s, sess_version_source_name(p->src),
             p->discover ? "; discovering the current one from " : "",
             p->discover ? p->sw_url : "");
    if (p->o.on_change)
        p->o.on_change(p->o.arg, s, p->src);
    if (!p->discover)
        return;
    uv_timer_init(p->o.loop, &p->wait_timer);
    uv_timer_init(p->o.loop, &p->next_timer);
    p->wait_timer.data = p->next_timer.data = p;
    uv_unref((uv_handle_t *)&p->next_timer); /* retries and refreshes keep no loop alive */
    p->timers_init = 1;
    uv_timer_start(&p->wait_timer, on_wait_timer, p->o.start_wait_ms, 0);
    start_fetch(p);
}

wa_version_t sess_version_current(const sess_version_t *p, sess_version_source_t *src)
{
    if (src)
        *src = p->src;
    return p->cur;
}

int sess_version_ready(const sess_version_t *p)
{
    return p->ready;
}

int sess_version_wait(sess_version_t *p, void (*cb)(void *arg), void *arg)
{
    if (p->ready || p->closed)
        return 1;
    waiter_t w = {.ready_cb = cb, .arg = arg};
    return add_waiter(p, &w) == 0 ? 0 : -1;
}

int sess_version_refresh(sess_version_t *p, const wa_version_t *refused,
                         void (*cb)(void *arg, int newer), void *arg)
{
    if (!p->discover || p->closed || !p->started)
        return -1;
    if (wa_version_cmp(&p->cur, refused) > 0)
        return 1;
    waiter_t w = {.refresh = 1, .refresh_cb = cb, .arg = arg, .refused = *refused};
    if (add_waiter(p, &w) != 0)
        return -1;
    start_fetch(p); /* or join the one in flight */
    return 0;
}

static void drop(waiter_t **pp, void *arg)
{
    while (*pp) {
        waiter_t *w = *pp;
        if (arg == NULL || w->arg == arg) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

void sess_version_cancel(sess_version_t *p, void *arg)
{
    if (!p || !arg)
        return;
    drop(&p->waiters, arg);
    drop(&p->dispatching, arg);
}

sess_version_stats_t sess_version_stats(const sess_version_t *p)
{
    return p->stats;
}

void sess_version_close(sess_version_t *p)
{
    if (!p || p->closed)
        return;
    p->closed = 1;
    sess_q_cancel(p->o.q, p); /* a write not started is dropped; no done touches p */
    p->storing = 0;
    httpc_cancel(p->fetch);
    p->fetch = NULL;
    drop(&p->waiters, NULL);
    drop(&p->dispatching, NULL);
    if (p->timers_init) {
        uv_close((uv_handle_t *)&p->wait_timer, NULL);
        uv_close((uv_handle_t *)&p->next_timer, NULL);
    }
}

void sess_version_free(sess_version_t *p)
{
    if (!p)
        return;
    drop(&p->waiters, NULL);
    drop(&p->dispatching, NULL);
    free(p);
}

int sess_version_valid(const char *s)
{
    wa_version_t v;
    return s && wa_version_parse(s, &v) == 0;
}
