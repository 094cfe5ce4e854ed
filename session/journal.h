/* The event log on the store: the session registry's journal (see
 * session.h, "the event log") backed by session/store's events table,
 * with the retention that keeps it bounded (EVENT_RETENTION) and a hook
 * run after every commit (the webhook outbox is filled in the same
 * transaction; the hook wakes its dispatcher). On PostgreSQL its group
 * commits, the followers' reads and the retention run on a thread of its
 * own (session/storeq.h), off the loop.
 * Loop thread unless a function says otherwise. */
#ifndef WG_SESSION_JOURNAL_H
#define WG_SESSION_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "session/session.h"
#include "session/store/store.h"

/* Defaults of EVENT_RETENTION: per session, the newest 10,000 events, and
 * none older than 7 days (each session's newest event and those a webhook
 * delivery waits for are always kept). */
#define SESS_RETENTION_COUNT_DEFAULT 10000
#define SESS_RETENTION_AGE_MS_DEFAULT (7LL * 24 * 3600 * 1000)

typedef struct sess_jstore sess_jstore_t;

typedef struct {
    uint64_t retention_count; /* 0 = SESS_RETENTION_COUNT_DEFAULT */
    int64_t retention_age_ms; /* 0 = SESS_RETENTION_AGE_MS_DEFAULT; < 0 = no age limit */
    unsigned prune_every_ms;  /* 0 = 60000 */
} sess_jstore_opts_t;

/* Parses EVENT_RETENTION: "COUNT" or "COUNT,AGE" with AGE a number and a
 * unit (s, m, h, d), e.g. "10000,7d"; COUNT 1 to 100000000, AGE from 1 s
 * ("0" for no age limit). Returns 0, or -1 for anything else. Any thread. */
int sess_jstore_parse_retention(const char *text, uint64_t *count, int64_t *age_ms);

/* Creates the journal over `store` (borrowed; it must outlive the journal
 * and every subscription). Returns NULL when out of memory. */
sess_jstore_t *sess_jstore_new(uv_loop_t *loop, store_t *store, const sess_jstore_opts_t *opts);

/* Makes it the registry's journal (before any session is added; at start,
 * before the loop serves): creates the journal's own job queue (a thread
 * on PostgreSQL, for the group commits, the followers' reads and the
 * retention; inline on SQLite), loads every session's last seq in one
 * query (last_seq then never asks the store; when that query fails, it
 * asks the store each time), and starts the retention timer (a first
 * prune runs at once). */
void sess_jstore_attach(sess_jstore_t *j, sess_registry_t *reg);

/* Sets the hook run on the loop thread after each commit that stored at
 * least one event (NULL: none). */
void sess_jstore_on_commit(sess_jstore_t *j, void (*fn)(void *arg), void *arg);

/* Counters for /metrics. Any thread. */
typedef struct {
    uint64_t appended; /* events stored */
    uint64_t failed;   /* events that could not be stored (delivered live only) */
    uint64_t commits;  /* transactions */
    uint64_t pruned;   /* events deleted by retention */
    uint64_t retried;  /* transactions run again after a deadlock or serialization failure */
    uint64_t fenced;   /* writes the cluster fence refused (store_fenced_writes) */
} sess_jstore_stats_t;
void sess_jstore_stats(sess_jstore_t *j, sess_jstore_stats_t *out);

/* Stops the retention timer and the journal's queue (what was queued is
 * stored first, and its callbacks run); free after the loop has run its
 * close. NULL is ignored. */
void sess_jstore_close(sess_jstore_t *j);

/* Frees the journal. NULL is ignored. */
void sess_jstore_free(sess_jstore_t *j);

#endif
