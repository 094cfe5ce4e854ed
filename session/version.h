/* Which WhatsApp Web version the sessions announce, and how it is kept
 * current (README "WhatsApp Web version"; protocol doc 10.1 and 11.2).
 *
 * - WA_VERSION set ("configured"): used as is; nothing is fetched, a 405 is
 *   final.
 * - Otherwise the version is discovered: at start the policy fetches sw.js
 *   (derived from WA_URL, or WA_VERSION_URL) and announces
 *   2.3000.<client_revision> ("discovered"); it is persisted in the store
 *   (meta "wa_version" of session ""). Until the first fetch has answered,
 *   the newer of the last stored version ("stored") and the built-in one
 *   ("builtin") is current.
 * - Start-up: connections wait for the first fetch, at most start_wait_ms
 *   (3 s); then they start with the current version and a late answer is
 *   used from the next connection on. The HTTP and gRPC listeners never
 *   wait.
 * - A failed fetch keeps the current version, logs ONE warning per run of
 *   failures, and is retried after retry_min_ms (5 min) doubling up to
 *   retry_max_ms (6 h); a successful one is repeated after refresh_ms
 *   (24 h), so a long-running service learns new versions before the old
 *   one is retired.
 * - After a 405 the driver asks sess_version_refresh: a fresh fetch decides
 *   whether a version newer than the refused one exists; the driver then
 *   retries once, or stays DISCONNECTED/client_outdated.
 *
 * Every change of the current version is logged at info and reported
 * through on_change. Owned by main, shared by the drivers (not owned).
 * Loop-thread only. */
#ifndef WG_SESSION_VERSION_H
#define WG_SESSION_VERSION_H

#include <stdint.h>

#include <uv.h>

#include "common/httpc.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "session/wa/version.h"

typedef enum {
    SESS_VERSION_BUILTIN = 0,    /* WA_PAYLOAD_DEFAULT_VERSION */
    SESS_VERSION_STORED = 1,     /* discovered by an earlier run, from the store */
    SESS_VERSION_DISCOVERED = 2, /* read from sw.js by this run */
    SESS_VERSION_CONFIGURED = 3, /* WA_VERSION */
} sess_version_source_t;

/* "builtin", "stored", "discovered" or "configured"; never NULL. */
const char *sess_version_source_name(sess_version_source_t src);

/* Returns 1 when `s` is a well-formed WhatsApp Web version ("2.3000.N"),
 * as WA_VERSION must be, else 0. Any thread. */
int sess_version_valid(const char *s);

typedef struct sess_version sess_version_t;

typedef struct {
    uv_loop_t *loop;
    httpc_t *http;             /* not owned; needed unless `configured` is set */
    store_t *store;            /* not owned; NULL: nothing stored or persisted */
    sess_q_t *q;               /* the store's job queue (not owned): a discovered version is
                                * written by a job on it (NULL: written at once, on the loop) */
    const char *configured;    /* WA_VERSION, used as is; NULL = discover */
    const char *wa_url;        /* WA_URL, whose host serves sw.js; NULL = the default */
    const char *sw_url;        /* WA_VERSION_URL: http(s) URL overriding the derived one */
    unsigned start_wait_ms;    /* connections wait this long for the first fetch; 0 = 3000 */
    unsigned fetch_timeout_ms; /* one fetch; 0 = 10000 */
    unsigned retry_min_ms;     /* first retry after a failed fetch; 0 = 300000 (5 min) */
    unsigned retry_max_ms;     /* retry cap; 0 = 21600000 (6 h) */
    unsigned refresh_ms;       /* next fetch after a successful one; 0 = 86400000 (24 h) */
    /* The current version changed (also called once by sess_version_start
     * with the initial one). `version` is "2.3000.N", borrowed. */
    void (*on_change)(void *arg, const char *version, sess_version_source_t src);
    void *arg;
} sess_version_opts_t;

/* Counters, for tests and metrics. */
typedef struct {
    unsigned fetches;        /* sw.js requests answered or failed */
    unsigned fetch_failures; /* of which failed (transport, status, parse) */
    unsigned warnings;       /* warnings logged about failed fetches */
} sess_version_stats_t;

/* Creates the policy: parses `configured` strictly, derives the sw.js URL
 * (or checks `sw_url` is http/https), reads the stored version (one
 * synchronous store read: call it before the loop serves). Strings are
 * copied. Returns 0 with *out, or -1 with a one-line message in err (a
 * malformed WA_VERSION or WA_VERSION_URL, a WA_URL sw.js cannot be derived
 * from, no http client for discovery, out of memory). */
int sess_version_new(const sess_version_opts_t *o, sess_version_t **out, char *err, size_t errlen);

/* Reports the initial version (on_change) and, when discovering, starts
 * the first fetch and the start-up wait. Call once, before sess_start. */
void sess_version_start(sess_version_t *p);

/* The version to announce now, and where it comes from (src may be NULL). */
wa_version_t sess_version_current(const sess_version_t *p, sess_version_source_t *src);

/* 1 once connections may start (configured, first fetch answered, or the
 * start-up wait over), else 0. */
int sess_version_ready(const sess_version_t *p);

/* Calls cb(arg) once the policy is ready. Returns 1 when it is ready
 * already (cb is not called), 0 when cb will be called later from the loop,
 * -1 when out of memory. */
int sess_version_wait(sess_version_t *p, void (*cb)(void *arg), void *arg);

/* After a 405 refusing `refused`: is there a newer version? Returns 1 when
 * the current version is already newer (no callback), 0 when a fetch was
 * started (or joined) and cb(arg, newer) follows from the loop with newer 1
 * when the current version is now newer than `refused`, or -1 when there is
 * nothing to ask (configured version, or out of memory). */
int sess_version_refresh(sess_version_t *p, const wa_version_t *refused,
                         void (*cb)(void *arg, int newer), void *arg);

/* Drops every pending wait/refresh callback registered with `arg`. Safe at
 * any time, also after sess_version_close. */
void sess_version_cancel(sess_version_t *p, void *arg);

/* Counters. */
sess_version_stats_t sess_version_stats(const sess_version_t *p);

/* Shutdown, first half: cancels a fetch in flight and the policy's store
 * jobs (a write of the version not started yet is dropped: close the
 * queue first to have it made), drops the pending callbacks and closes the
 * timers (run the loop afterwards). The current version stays readable.
 * NULL is ignored. */
void sess_version_close(sess_version_t *p);

/* Shutdown, second half: frees the policy once the loop has run after
 * sess_version_close. NULL is ignored. */
void sess_version_free(sess_version_t *p);

#endif
