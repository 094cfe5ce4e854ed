/* The session registry's journal on session/store (see journal.h): adapts
 * the registry's callbacks to store_events_*, counts what it stores, keeps
 * every session's last seq in memory (loaded in one query when it
 * attaches, then raised by every append and read), and prunes the log on
 * a timer in bounded batches. Its store calls go through a job queue of
 * its own (session/storeq.h): on PostgreSQL the group commits, the reads
 * of followers and the retention run on the queue's thread, off the loop;
 * on SQLite appends and reads stay on the loop (a local file). */
#include "session/journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/storeq.h"

/* Rows deleted per prune transaction; the next batch waits for the next
 * loop iteration (a zero timer), so the loop keeps serving meanwhile. */
#define PRUNE_BATCH 2000

/* Buckets of the table of last seqs. */
#define SEQ_BUCKETS 1024

/* One session's last seq. */
typedef struct seq_ent {
    char *name;
    uint64_t seq;
    struct seq_ent *next;
} seq_ent_t;

struct sess_jstore {
    uv_loop_t *loop;
    store_t *store;
    uint64_t count;
    int64_t age_ms;
    unsigned every_ms;
    uv_timer_t timer;
    int timer_on;
    void (*commit_fn)(void *);
    void *commit_arg;
    uint64_t appended, failed, commits, pruned; /* atomics */
    int warned;
    sess_q_t *q;     /* created by attach: store calls, one at a time, in order */
    int prune_busy;  /* a prune batch is queued */
    int seqs_loaded; /* the table below holds every session's last seq */
    pthread_mutex_t seq_mu;
    seq_ent_t *seqs[SEQ_BUCKETS]; /* guarded by seq_mu (loop and queue thread) */
};

int sess_jstore_parse_retention(const char *text, uint64_t *count, int64_t *age_ms)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || n < 1 || n > 100000000ULL || text[0] == '-')
        return -1;
    int64_t age = SESS_RETENTION_AGE_MS_DEFAULT;
    if (*end == ',') {
        const char *a = end + 1;
        errno = 0;
        long long v = strtoll(a, &end, 10);
        if (errno || end == a || v < 0 || a[0] == '-' || a[0] == '+')
            return -1;
        if (v == 0 && !*end) {
            age = -1; /* no age limit */
        } else {
            long long unit = *end == 's'   ? 1000LL
                             : *end == 'm' ? 60000LL
                             : *end == 'h' ? 3600000LL
                             : *end == 'd' ? 86400000LL
                                           : 0;
            if (!unit || end[1] || v < 1 || v > 3650LL * 86400000LL / unit)
                return -1;
            age = v * unit;
        }
    } else if (*end) {
        return -1;
    }
    *count = n;
    *age_ms = age;
    return 0;
}

/* --- each session's last seq, in memory --- */

/* Finds (or, with add, adds) the entry of `session`; seq_mu held. NULL
 * when absent (or out of memory). */
static seq_ent_t *seq_find_locked(sess_jstore_t *j, const char *session, int add)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)session; *p; p++)
        h = h * 33 + *p;
    seq_ent_t **pp = &j->seqs[h % SEQ_BUCKETS];
    for (seq_ent_t *e = *pp; e; e = e->next)
        if (!strcmp(e->name, session))
            return e;
    if (!add)
        return NULL;
    seq_ent_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(session))) {
        free(e);
        return NULL;
    }
    e->next = *pp;
    *pp = e;
    return e;
}

/* The log holds seq `seq` of `session`: its last seq is at least that.
 * Any thread. */
static void seq_note(sess_jstore_t *j, const char *session, uint64_t seq)
{
    if (!session || !seq)
        return;
    pthread_mutex_lock(&j->seq_mu);
    seq_ent_t *e = seq_find_locked(j, session, 1);
    if (e && seq > e->seq)
        e->seq = seq;
    pthread_mutex_unlock(&j->seq_mu);
}

/* Loads every session's last seq (one query). 0 or -1. */
static int seq_load(sess_jstore_t *j)
{
    store_seq_t *v = NULL;
    size_t n = 0;
    int rc = store_events_last_seqs(j->store, &v, &n);
    if (rc != 0) {
        LOG_WARN("events", "cannot read the last events of the sessions: %s", store_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        seq_note(j, v[i].session, v[i].seq);
    store_seqs_free(v, n);
    return 0;
}

static void seq_free(sess_jstore_t *j)
{
    for (size_t i = 0; i < SEQ_BUCKETS; i++)
        for (seq_ent_t *e = j->seqs[i], *next; e; e = next) {
            next = e->next;
            free(e->name);
            free(e);
        }
}

static int j_last_id(void *arg, uint64_t *id)
{
    sess_jstore_t *j = arg;
    int rc = store_events_max_id(j->store, id);
    if (rc < 0)
        LOG_ERROR("events", "cannot read the newest event id: %s", store_strerror(rc));
    return rc < 0 ? -1 : 0;
}

static int j_last_seq(void *arg, const char *session, uint64_t *seq)
{
    sess_jstore_t *j = arg;
    *seq = 0;
    if (j->seqs_loaded) { /* no round trip */
        pthread_mutex_lock(&j->seq_mu);
        seq_ent_t *e = seq_find_locked(j, session, 0);
        *seq = e ? e->seq : 0;
        pthread_mutex_unlock(&j->seq_mu);
        return 0;
    }
    /* the table could not be loaded at start: ask the store */
    int rc = store_events_last_seq(j->store, session, seq);
    if (rc < 0) {
        LOG_ERROR("events", "cannot read the last event of session %s: %s", session,
                  store_strerror(rc));
        return -1;
    }
    seq_note(j, session, *seq);
    return 0;
}

/* Stores n events (bg: from the queue's thread, store_events_append_bg)
 * and counts them; returns what a journal's append returns. The commit
 * callback is the caller's to run (loop thread): *wake is set when events
 * were stored. */
static int append_core(sess_jstore_t *j, sess_event_t *ev, size_t n, int bg, int *wake)
{
    *wake = 0;
    store_event_t *sv = calloc(n, sizeof(*sv));
    if (!sv)
        return -1;
    for (size_t i = 0; i < n; i++)
        sv[i] = (store_event_t){.session = (char *)ev[i].session,
                                .seq = ev[i].seq,
                                .ts_ms = ev[i].ts_ms,
                                .type = (char *)ev[i].type,
                                .body = (char *)ev[i].body,
                                .body_len = ev[i].body_len,
                                .epoch = ev[i].epoch};
    int rc = bg ? store_events_append_bg(j->store, sv, n) : store_events_append(j->store, sv, n);
    size_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        ev[i].id = sv[i].id;
        stored += sv[i].id != 0;
        if (sv[i].id)
            seq_note(j, ev[i].session, ev[i].seq);
    }
    free(sv);
    if (rc == STORE_EFENCED) { /* another node owns some of these sessions now */
        __atomic_add_fetch(&j->appended, stored, __ATOMIC_RELAXED);
        __atomic_add_fetch(&j->commits, 1, __ATOMIC_RELAXED);
        LOG_WARN("events", "%zu event(s) refused: their session is held by another node",
                 n - stored);
        *wake = stored > 0;
        return SESS_JOURNAL_FENCED;
    }
    if (rc != 0) {
        __atomic_add_fetch(&j->failed, n, __ATOMIC_RELAXED);
        LOG_ERROR("events", "cannot store %zu event(s): %s (delivered live only)", n,
                  store_strerror(rc));
        return -1;
    }
    __atomic_add_fetch(&j->appended, n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&j->commits, 1, __ATOMIC_RELAXED);
    *wake = 1;
    return 0;
}

static int j_append(void *arg, sess_event_t *ev, size_t n)
{
    sess_jstore_t *j = arg;
    int wake = 0;
    int rc = append_core(j, ev, n, 0, &wake);
    if (wake && j->commit_fn)
        j->commit_fn(j->commit_arg);
    return rc;
}

static int j_read(void *arg, const char *session, uint64_t after, size_t max, sess_event_t *out,
                  size_t *n, uint64_t *pruned)
{
    sess_jstore_t *j = arg;
    store_event_t *sv = calloc(max ? max : 1, sizeof(*sv));
    if (!sv)
        return -1;
    int rc = store_events_read(j->store, session, after, max, sv, n, pruned);
    if (rc != 0) {
        free(sv);
        LOG_WARN("events", "cannot read the event log: %s", store_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < *n; i++) { /* the strings move over */
        out[i] = (sess_event_t){.id = sv[i].id,
                                .session = sv[i].session,
                                .seq = sv[i].seq,
                                .ts_ms = sv[i].ts_ms,
                                .type = sv[i].type,
                                .body = sv[i].body,
                                .body_len = sv[i].body_len};
        seq_note(j, sv[i].session, sv[i].seq); /* another node's, maybe */
    }
    free(sv);
    return 0;
}

/* --- off the loop (PostgreSQL): appends and reads on the queue --- */

/* An append or a read queued (its done runs on the loop thread). */
typedef struct {
    sess_jstore_t *j;
    sess_event_t *ev;
    size_t n;
    void (*done)(void *ctx, int rc);
    void *ctx;
    int wake;
    /* a read (j_read_async) instead of an append */
    int read;
    char *session;
    uint64_t after;
    size_t max, *nread;
    uint64_t *pruned;
} job_t;

static int job_work(void *arg)
{
    job_t *job = arg;
    if (job->read)
        return j_read(job->j, job->session, job->after, job->max, job->ev, job->nread, job->pruned);
    return append_core(job->j, job->ev, job->n, 1, &job->wake);
}

static void job_done(void *arg, int rc)
{
    job_t *job = arg;
    sess_jstore_t *j = job->j;
    if (rc == SESS_Q_CANCELLED) /* (never cancelled: the queue is drained) */
        rc = -1;
    if (job->wake && j->commit_fn)
        j->commit_fn(j->commit_arg);
    job->done(job->ctx, rc);
    free(job->session);
    free(job);
}

static int j_append_async(void *arg, sess_event_t *ev, size_t n, void (*done)(void *, int),
                          void *ctx)
{
    sess_jstore_t *j = arg;
    job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return -1;
    *job = (job_t){.j = j, .ev = ev, .n = n, .done = done, .ctx = ctx};
    if (sess_q_run(j->q, NULL, job_work, job_done, job) != 0) {
        free(job);
        return -1;
    }
    return 0;
}

static int j_read_async(void *arg, const char *session, uint64_t after, size_t max,
                        sess_event_t *out, size_t *n, uint64_t *pruned, void (*done)(void *, int),
                        void *ctx)
{
    sess_jstore_t *j = arg;
    job_t *job = calloc(1, sizeof(*job));
    char *name = session ? strdup(session) : NULL;
    if (!job || (session && !name)) {
        free(job);
        free(name);
        return -1;
    }
    *job = (job_t){.j = j,
                   .ev = out,
                   .done = done,
                   .ctx = ctx,
                   .read = 1,
                   .session = name,
                   .after = after,
                   .max = max,
                   .nread = n,
                   .pruned = pruned};
    if (sess_q_run(j->q, NULL, job_work, job_done, job) != 0) {
        free(name);
        free(job);
        return -1;
    }
    return 0;
}

static void j_drain(void *arg)
{
    sess_jstore_t *j = arg;
    sess_q_drain(j->q);
}

sess_jstore_t *sess_jstore_new(uv_loop_t *loop, store_t *store, const sess_jstore_opts_t *opts)
{
    sess_jstore_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->loop = loop;
    j->store = store;
    j->count = opts && opts->retention_count ? opts->retention_count : SESS_RETENTION_COUNT_DEFAULT;
    j->age_ms = !opts || !opts->retention_age_ms ? SESS_RETENTION_AGE_MS_DEFAULT
                : opts->retention_age_ms < 0     ? 0
                                                 : opts->retention_age_ms;
    j->every_ms = opts && opts->prune_every_ms ? opts->prune_every_ms : 60000;
    pthread_mutex_init(&j->seq_mu, NULL);
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    j->timer_on = 1;
    return j;
}

/* --- retention --- */

/* One prune batch (on the queue). */
typedef struct {
    sess_jstore_t *j;
    store_t *store;
    uint64_t count;
    int64_t age_ms, now_ms;
    size_t deleted;
} prune_t;

static int prune_work(void *arg)
{
    prune_t *p = arg;
    return store_events_prune(p->store, p->count, p->age_ms, p->now_ms, PRUNE_BATCH, &p->deleted);
}

static void on_prune(uv_timer_t *t);

static void prune_done(void *arg, int rc)
{
    prune_t *p = arg;
    sess_jstore_t *j = p->j;
    j->prune_busy = 0;
    if (rc != 0 && rc != SESS_Q_CANCELLED && !j->warned) {
        j->warned = 1;
        LOG_WARN("events", "cannot apply the event retention: %s", store_strerror(rc));
    }
    __atomic_add_fetch(&j->pruned, p->deleted, __ATOMIC_RELAXED);
    /* a full batch: more to delete, soon; else wait for the next round */
    if (j->timer_on)
        uv_timer_start(&j->timer, on_prune, p->deleted >= PRUNE_BATCH ? 0 : j->every_ms, 0);
    free(p);
}

static void on_prune(uv_timer_t *t)
{
    sess_jstore_t *j = t->data;
    prune_t *p = j->prune_busy ? NULL : calloc(1, sizeof(*p));
    if (!p) {
        if (!j->prune_busy)
            uv_timer_start(&j->timer, on_prune, j->every_ms, 0);
        return;
    }
    *p = (prune_t){
        .j = j, .store = j->store, .count = j->count, .age_ms = j->age_ms, .now_ms = sess_now_ms()};
    j->prune_busy = 1;
    if (sess_q_run(j->q, j, prune_work, prune_done, p) != 0)
        prune_done(p, prune_work(p)); /* no queue (out of memory): on the loop */
}

void sess_jstore_attach(sess_jstore_t *j, sess_registry_t *reg)
{
    sess_journal_t jr = {.last_seq = j_last_seq, .append = j_append, .read = j_read, .arg = j};
    if (!j->q) /* PostgreSQL: a thread of its own (a network round trip or more each) */
        j->q = sess_q_new(j->loop, store_is_pg(j->store));
    if (sess_q_threaded(j->q)) { /* the group commits and reads go on it, the loop goes on */
        jr.append_async = j_append_async;
        jr.drain = j_drain;
        jr.read_async = j_read_async;
        jr.last_id = j_last_id;
    }
    j->seqs_loaded = seq_load(j) == 0; /* at start: before the loop serves */
    sess_registry_set_journal(reg, &jr);
    uv_timer_start(&j->timer, on_prune, 0, 0);
    uv_unref((uv_handle_t *)&j->timer); /* it never keeps the loop alive alone */
}

void sess_jstore_on_commit(sess_jstore_t *j, void (*fn)(void *arg), void *arg)
{
    j->commit_fn = fn;
    j->commit_arg = arg;
}

void sess_jstore_stats(sess_jstore_t *j, sess_jstore_stats_t *out)
{
    out->appended = __atomic_load_n(&j->appended, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&j->failed, __ATOMIC_RELAXED);
    out->commits = __atomic_load_n(&j->commits, __ATOMIC_RELAXED);
    out->pruned = __atomic_load_n(&j->pruned, __ATOMIC_RELAXED);
    out->retried = store_events_retries(j->store);
    out->fenced = store_fenced_writes(j->store);
}

void sess_jstore_close(sess_jstore_t *j)
{
    if (!j)
        return;
    if (j->timer_on) {
        j->timer_on = 0;
        uv_close((uv_handle_t *)&j->timer, NULL);
    }
    sess_q_cancel(j->q, j); /* a prune waiting to start is skipped */
    sess_q_close(j->q);     /* what was asked is stored, and its callbacks run */
}

void sess_jstore_free(sess_jstore_t *j)
{
    if (!j)
        return;
    sess_q_free(j->q);
    seq_free(j);
    pthread_mutex_destroy(&j->seq_mu);
    free(j);
}
