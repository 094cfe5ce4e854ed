/* The session registry's journal on session/store (see journal.h): adapts
 * the registry's callbacks to store_events_*, counts what it stores, and
 * prunes the log on a timer in bounded batches so that a large backlog
 * never holds the loop for long. */
#include "session/journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Rows deleted per prune transaction; the next batch waits for the next
 * loop iteration (a zero timer), so the loop keeps serving meanwhile. */
#define PRUNE_BATCH 2000

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
    /* PostgreSQL: the writer thread that stores the group commits off the
     * loop (todo -> done, guarded by mu; wake runs the done callbacks) */
    pthread_t writer;
    int writer_on, stop, working;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct job *todo, *done;
    uv_async_t wake;
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
    int rc = store_events_last_seq(j->store, session, seq);
    if (rc < 0)
        LOG_ERROR("events", "cannot read the last event of session %s: %s", session,
                  store_strerror(rc));
    return rc < 0 ? -1 : 0;
}

/* Stores n events (bg: from the writer thread, store_events_append_bg)
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
                                .body_len = ev[i].body_len};
    int rc = bg ? store_events_append_bg(j->store, sv, n) : store_events_append(j->store, sv, n);
    size_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        ev[i].id = sv[i].id;
        stored += sv[i].id != 0;
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

/* --- the writer thread (PostgreSQL): appends off the loop --- */

typedef struct job {
    sess_event_t *ev;
    size_t n;
    void (*done)(void *ctx, int rc);
    void *ctx;
    int rc, wake;
    /* a read (j_read_async) instead of an append */
    int read;
    char *session;
    uint64_t after;
    size_t max, *nread;
    uint64_t *pruned;
    struct job *next;
} job_t;

static int j_read(void *arg, const char *session, uint64_t after, size_t max, sess_event_t *out,
                  size_t *n, uint64_t *pruned);

static void *writer_main(void *arg)
{
    sess_jstore_t *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->todo && !j->stop)
            pthread_cond_wait(&j->cond, &j->mu);
        job_t *job = j->todo;
        if (!job)
            break; /* stopping, nothing left */
        j->todo = job->next;
        j->working = 1;
        pthread_mutex_unlock(&j->mu);
        job->rc = job->read ? j_read(j, job->session, job->after, job->max, job->ev, job->nread,
                                     job->pruned)
                            : append_core(j, job->ev, job->n, 1, &job->wake);
        pthread_mutex_lock(&j->mu);
        j->working = 0;
        job->next = NULL;
        job_t **pp = &j->done;
        while (*pp)
            pp = &(*pp)->next;
        *pp = job;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->mu);
        uv_async_send(&j->wake);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Runs the done callbacks of the finished appends. Loop thread. */
static void run_done(sess_jstore_t *j)
{
    pthread_mutex_lock(&j->mu);
    job_t *job = j->done;
    j->done = NULL;
    pthread_mutex_unlock(&j->mu);
    while (job) {
        job_t *next = job->next;
        if (job->wake && j->commit_fn)
            j->commit_fn(j->commit_arg);
        job->done(job->ctx, job->rc);
        free(job->session);
        free(job);
        job = next;
    }
}

static void on_written(uv_async_t *a)
{
    run_done(a->data);
}

static void enqueue(sess_jstore_t *j, job_t *job);

static int j_append_async(void *arg, sess_event_t *ev, size_t n, void (*done)(void *, int),
                          void *ctx)
{
    sess_jstore_t *j = arg;
    job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return -1;
    *job = (job_t){.ev = ev, .n = n, .done = done, .ctx = ctx};
    enqueue(j, job);
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
    *job = (job_t){.ev = out,
                   .done = done,
                   .ctx = ctx,
                   .read = 1,
                   .session = name,
                   .after = after,
                   .max = max,
                   .nread = n,
                   .pruned = pruned};
    enqueue(j, job);
    return 0;
}

static void enqueue(sess_jstore_t *j, job_t *job)
{
    pthread_mutex_lock(&j->mu);
    job_t **pp = &j->todo;
    while (*pp)
        pp = &(*pp)->next;
    *pp = job;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

static void j_drain(void *arg)
{
    sess_jstore_t *j = arg;
    pthread_mutex_lock(&j->mu);
    while (j->todo || j->working)
        pthread_cond_wait(&j->cond, &j->mu);
    pthread_mutex_unlock(&j->mu);
    run_done(j);
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
    for (size_t i = 0; i < *n; i++) /* the strings move over */
        out[i] = (sess_event_t){.id = sv[i].id,
                                .session = sv[i].session,
                                .seq = sv[i].seq,
                                .ts_ms = sv[i].ts_ms,
                                .type = sv[i].type,
                                .body = sv[i].body,
                                .body_len = sv[i].body_len};
    free(sv);
    return 0;
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
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    j->timer_on = 1;
    return j;
}

static void on_prune(uv_timer_t *t)
{
    sess_jstore_t *j = t->data;
    size_t deleted = 0;
    int rc =
        store_events_prune(j->store, j->count, j->age_ms, sess_now_ms(), PRUNE_BATCH, &deleted);
    if (rc != 0 && !j->warned) {
        j->warned = 1;
        LOG_WARN("events", "cannot apply the event retention: %s", store_strerror(rc));
    }
    __atomic_add_fetch(&j->pruned, deleted, __ATOMIC_RELAXED);
    /* a full batch: more to delete, soon; else wait for the next round */
    uv_timer_start(&j->timer, on_prune, deleted >= PRUNE_BATCH ? 0 : j->every_ms, 0);
}

void sess_jstore_attach(sess_jstore_t *j, sess_registry_t *reg)
{
    sess_journal_t jr = {.last_seq = j_last_seq, .append = j_append, .read = j_read, .arg = j};
    if (store_is_pg(j->store) && !j->writer_on) {
        /* PostgreSQL: the group commits are stored by a thread of their own
         * (a network round trip or more each), the loop goes on */
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cond, NULL);
        uv_async_init(j->loop, &j->wake, on_written);
        j->wake.data = j;
        uv_unref((uv_handle_t *)&j->wake); /* it never keeps the loop alive alone */
        if (pthread_create(&j->writer, NULL, writer_main, j) == 0) {
            j->writer_on = 1;
            jr.append_async = j_append_async;
            jr.drain = j_drain;
            jr.read_async = j_read_async;
            jr.last_id = j_last_id;
        } else {
            uv_close((uv_handle_t *)&j->wake, NULL);
            pthread_cond_destroy(&j->cond);
            pthread_mutex_destroy(&j->mu);
        }
    }
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
}

void sess_jstore_close(sess_jstore_t *j)
{
    if (j && j->timer_on) {
        j->timer_on = 0;
        uv_close((uv_handle_t *)&j->timer, NULL);
    }
    if (j && j->writer_on) { /* what was asked is stored, and its callbacks run */
        pthread_mutex_lock(&j->mu);
        j->stop = 1;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->writer, NULL);
        j->writer_on = 0;
        run_done(j);
        uv_close((uv_handle_t *)&j->wake, NULL);
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->mu);
    }
}

void sess_jstore_free(sess_jstore_t *j)
{
    free(j);
}
