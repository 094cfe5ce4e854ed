/* The session manager: the sessions of the service as a whole. It owns the
 * WhatsApp side that all sessions share (the WebSocket client context with
 * its CAs, the connection gate, the remover of devices of deleted
 * sessions), restores every stored session at start (the session "default"
 * always exists), creates and deletes sessions at runtime (persisted in the
 * store, at most max_sessions), attaches a WhatsApp driver to each with the
 * service's settings and its own device name, and keeps each session's key
 * hash where any thread can check it (sess_key_matches). main configures
 * the WhatsApp client through this header alone, with plain values; the
 * api/ layer creates and deletes sessions through it. Once the service
 * runs, every store call goes through the store's job queue (opts.q), so
 * the loop never waits on the database. Nothing here knows HTTP or gRPC.
 * Loop-thread only unless a function says otherwise. */
#ifndef WG_SESSION_MANAGER_H
#define WG_SESSION_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "session/cluster/cluster.h"
#include "session/session.h"
#include "session/storeq.h"
#include "session/store/store.h"
#include "session/version.h"

typedef struct sess_mgr sess_mgr_t;

/* Session names: [a-z0-9_-]{1,64}. */
#define SESS_NAME_MAX 64

/* The device name shown on the phone (Linked devices): 1 to this many bytes
 * of UTF-8 without control characters. */
#define SESS_DEVICE_NAME_MAX 64

/* The default cap on sessions (MAX_SESSIONS). */
#define SESS_MAX_SESSIONS_DEFAULT 1000

/* What the service's sessions are configured with (plain values). */
typedef struct {
    uv_loop_t *loop;
    sess_registry_t *reg;             /* borrowed */
    store_t *store;                   /* borrowed */
    sess_q_t *q;                      /* the store's job queue (borrowed) */
    sess_version_t *version;          /* WhatsApp Web version policy (borrowed), NULL = built-in */
    const char *wa_url;               /* WhatsApp endpoint; NULL = the real one */
    const uint8_t *root_key;          /* 32 bytes: trusted root of the server certificates */
    const char *ca_file;              /* extra CAs for wss:// (tests); NULL = system CAs */
    unsigned qr_first_ms, qr_next_ms; /* 0 = 60000, 20000 */
    unsigned keepalive_ms, keepalive_timeout_ms, keepalive_misses; /* 0 = defaults */
    unsigned login_timeout_ms;                                     /* 0 = 30000 */
    unsigned connect_rate;                   /* new WhatsApp connections per second, 0 = no limit */
    size_t max_sessions;                     /* 0 = SESS_MAX_SESSIONS_DEFAULT */
    const char *device_name;                 /* default device name; NULL = "wa-gateway" */
    unsigned backoff_min_ms, backoff_max_ms; /* reconnect backoff; 0 = 1000, 60000 */
} sess_mgr_opts_t;

/* Errors of the manager's calls (in addition to the SESS_E* codes). */
enum {
    SESS_MGR_EEXISTS = -20, /* a session of that name exists */
    SESS_MGR_ELIMIT = -21,  /* max_sessions reached */
    SESS_MGR_ENAME = -22,   /* not [a-z0-9_-]{1,64} */
    SESS_MGR_ESTORE = -23,  /* the store refused the change */
    SESS_MGR_ENOTFOUND = -24,
    SESS_MGR_EDEFAULT = -25,   /* the session "default" cannot be deleted */
    SESS_MGR_EDEVICE = -26,    /* a device name that is empty, too long or has controls */
    SESS_MGR_EBUSY = -27,      /* the session is being deleted */
    SESS_MGR_EELSEWHERE = -28, /* cluster: another node runs the session */
};

/* Returns a short English description of a SESS_MGR_E* code. */
const char *sess_mgr_strerror(int code);

/* Returns 1 when `name` is a valid session name, else 0. Any thread. */
int sess_mgr_name_ok(const char *name);

/* Returns 1 when `name` is a valid device name, else 0. Any thread. */
int sess_mgr_device_name_ok(const char *name);

/* Creates the manager and the shared WhatsApp context (nothing connects
 * yet). Returns 0, or -1 with a one-line message in err. */
int sess_mgr_new(const sess_mgr_opts_t *opts, sess_mgr_t **out, char *err, size_t errlen);

/* Restores every stored session (creating "default" when it is missing),
 * attaches their drivers and starts them; the gate spaces out the
 * connections. Synchronous (at start, before the loop serves). Returns the
 * number of sessions, or a negative code. */
int sess_mgr_restore(sess_mgr_t *m);

/* Completion of sess_mgr_create: rc 0 with the new session in s (owned by
 * the registry; valid during the call, sess_ref to keep it; NULL when rc
 * is not 0), or SESS_MGR_EEXISTS / SESS_MGR_ESTORE. */
typedef void (*sess_mgr_create_cb)(void *arg, int rc, sess_t *s);

/* Completion of sess_mgr_set_key: rc 0 or a negative SESS_MGR_E* code. */
typedef void (*sess_mgr_done_cb)(void *arg, int rc);

/* Creates, persists (off the loop, through the store's job queue) and
 * starts a session. `device_name` may be NULL or "" (the default one);
 * `key_hash` (SHA-256 of the session's key) may be NULL; both are copied.
 * Returns 0 when started: done(arg, rc, s) then runs once, later, on the
 * loop thread (never inside this call; done may be NULL). Returns at once,
 * without calling done, SESS_MGR_ENAME, SESS_MGR_EDEVICE, SESS_MGR_EEXISTS
 * (also while a creation of that name is under way), SESS_MGR_ELIMIT
 * (creations under way count) or SESS_MGR_ESTORE (out of memory, queue
 * closed). */
int sess_mgr_create(sess_mgr_t *m, const char *name, const char *device_name,
                    const uint8_t key_hash[32], sess_mgr_create_cb done, void *arg);

/* Deletes a session: when it is linked and connected WhatsApp is asked to
 * remove the companion device first (waiting up to a few seconds); when it
 * is linked but offline the removal is kept and sent on the next connection
 * WhatsApp accepts; then its streams end, its driver stops, and its
 * credentials and row are deleted (off the loop). done(arg, rc) runs once on the loop
 * thread when all of that is over (rc 0 or a negative code). Returns 0 when
 * started, or SESS_MGR_ENOTFOUND / SESS_MGR_EDEFAULT / SESS_MGR_EBUSY /
 * SESS_MGR_EELSEWHERE (cluster: the session runs on another node, which
 * alone can unlink it) without calling done. */
int sess_mgr_delete(sess_mgr_t *m, const char *name, void (*done)(void *arg, int rc), void *arg);

/* Replaces a session's key hash (NULL removes the key; copied): in the
 * store (off the loop, through the store's job queue), then in memory.
 * Returns 0 when started: done(arg, rc) then runs once, later, on the loop
 * thread (never inside this call; done may be NULL) with 0,
 * SESS_MGR_ENOTFOUND (deleted meanwhile) or SESS_MGR_ESTORE. Returns at
 * once, without calling done, SESS_MGR_ENOTFOUND or SESS_MGR_ESTORE (out
 * of memory, queue closed). Rotations of one session end in the order
 * they were asked. */
int sess_mgr_set_key(sess_mgr_t *m, const char *name, const uint8_t key_hash[32],
                     sess_mgr_done_cb done, void *arg);

/* Number of sessions and the limit. Any thread. */
size_t sess_mgr_count(const sess_mgr_t *m);
size_t sess_mgr_limit(const sess_mgr_t *m);

/* Connections the gate let through so far, and those waiting now. */
unsigned long sess_mgr_gate_passed(const sess_mgr_t *m);
size_t sess_mgr_gate_waiting(const sess_mgr_t *m);

/* --- cluster mode --- *
 *
 * With several nodes on one PostgreSQL (session/cluster), every stored
 * session is a follower here (its snapshots come from the log) and runs a
 * WhatsApp driver only while this node holds its lease: the cluster's
 * callbacks start it (on_acquire: fenced by the epoch, caught up with the
 * log first, so its seq continues the previous owner's), stop it at once
 * (on_lose, or a write the store refused as fenced) or hand it over
 * (on_shed: stopped, then the lease released). New sessions are claimed by
 * a node (clu_kick); sessions added or deleted elsewhere come and go. */

/* Fills the callbacks to give clu_new (arg = m) and registers the store's
 * fenced-write callback. */
void sess_mgr_cluster_callbacks(sess_mgr_t *m, clu_callbacks_t *cb);

/* Puts the manager in cluster mode with `c` (borrowed; outlives the
 * manager's use of it): call before sess_mgr_restore. */
void sess_mgr_set_cluster(sess_mgr_t *m, clu_t *c);

/* Stops every session and the manager's own connections; done(arg) when
 * all has stopped, and every creation, key rotation and deletion under way
 * has ended (their done callbacks ran). */
void sess_mgr_stop(sess_mgr_t *m, void (*done)(void *arg), void *arg);

/* Closes the manager's handles and starts the WebSocket context's
 * destruction: call after the registry is closed, then run the loop until
 * it has no handles, then sess_mgr_free. */
void sess_mgr_close(sess_mgr_t *m);

/* Completes the WebSocket context's destruction and frees the manager (not
 * the registry, store or version policy): after sess_mgr_close and a run
 * of the loop, while the loop is still open. The drivers of the sessions
 * must not connect any more (the registry stopped). NULL is ignored. */
void sess_mgr_free(sess_mgr_t *m);

#endif
