/* Cluster membership and session ownership on PostgreSQL (several nodes
 * sharing one database: STORE_URL=postgres://...). Each node keeps a row in
 * `nodes` (heartbeat every renew interval) and holds leases in `leases`
 * (owner, epoch, expiry by the database clock): it claims unowned or
 * expired sessions up to a fair share (ceil(sessions / live nodes)), renews
 * its leases, and hands sessions back when it drains or sheds its excess
 * (rebalance). Every claim increments the epoch, which fences the writes of
 * the previous owner in the store. A node that cannot renew closes its
 * sessions before its leases can expire (self-fencing): the loop checks the
 * deadline by its own monotonic clock, so a stalled database or a stopped
 * process never leaves two live connections for one device. LISTEN/NOTIFY
 * wakes the node when a session's event log grows, when sessions are added
 * or deleted, when leases are released or claimed, when webhook targets
 * change, and for rebalancing. One node at a time delivers the webhooks
 * (the leader: it holds an advisory lock on its database connection; when
 * the connection goes, so does the lock, and another node takes it).
 *
 * The database work runs on a thread of its own with its own libpq
 * connection (blocking calls there, never on the event loop); what it
 * learns reaches the loop through a uv_async and the callbacks below, which
 * all run on the loop thread. Prefix clu_. */
#ifndef WG_SESSION_CLUSTER_CLUSTER_H
#define WG_SESSION_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct clu clu_t;

/* Defaults of the lease and its renewal interval. */
#define CLU_LEASE_MS_DEFAULT 10000
#define CLU_RENEW_MS_DEFAULT 3000

typedef struct {
    /* The node now holds `session` with `epoch`: fence the store with it,
     * catch up with the log, start the session's connection. */
    void (*on_acquire)(void *arg, const char *session, uint64_t epoch);
    /* The node no longer holds `session` (lease lost or self-fencing):
     * close its connection at once; it is followed from the log. */
    void (*on_lose)(void *arg, const char *session);
    /* Hand `session` over (drain, rebalance): close its connection, then
     * call clu_release(session, epoch). */
    void (*on_shed)(void *arg, const char *session, uint64_t epoch);
    /* The event log of `session` grew (a node that does not own it). */
    void (*on_events)(void *arg, const char *session);
    /* Sessions were added or deleted (reload the list). */
    void (*on_sessions)(void *arg);
    /* The node (re)connected to the database: notifications sent while it
     * was not listening are lost, so every follower catches up with the
     * log. */
    void (*on_resync)(void *arg);
    void *arg;
    /* The service's callbacks, called with app_arg (each may be NULL): */
    /* the node's readiness changed (see clu_ready); */
    void (*on_ready)(void *app_arg, int ready);
    /* the node became (1) or stopped being (0) the one that delivers the
     * webhooks of the cluster (one node at a time: a PostgreSQL advisory
     * lock held by its database connection); */
    void (*on_leader)(void *app_arg, int leader);
    /* webhook targets were created or deleted (on any node); */
    void (*on_webhooks)(void *app_arg);
    /* the event log grew (a session of another node). */
    void (*on_log)(void *app_arg);
    void *app_arg;
} clu_callbacks_t;

typedef struct {
    uv_loop_t *loop;
    const char *url;           /* postgres://... (copied) */
    const char *node_id;       /* unique per process (copied) */
    const char *advertise_url; /* how other nodes reach this one's HTTP API (copied) */
    unsigned lease_ms;         /* 0 = CLU_LEASE_MS_DEFAULT */
    unsigned renew_ms;         /* 0 = CLU_RENEW_MS_DEFAULT; must be below lease_ms / 2 */
    clu_callbacks_t cb;
} clu_opts_t;

/* What the node has done so far (any thread). */
typedef struct {
    uint64_t claims, lost, released, self_fences, renew_failures;
    size_t owned;
    int ready, draining, leader;
} clu_stats_t;

/* Checks the options (lease > 2 x renew, lease >= 1000 ms) and creates the
 * node; nothing connects until clu_start. Returns 0, or -1 with a one-line
 * message in err. The caller frees with clu_free. */
int clu_new(const clu_opts_t *opts, clu_t **out, char *err, size_t errlen);

/* Starts the database thread (it connects, listens, heartbeats, claims).
 * The thread first takes a lock named after NODE_ID on its connection:
 * while another live process holds it, this node logs an error once, stays
 * not ready and claims nothing, asking again every 250 ms. 0 or -1. */
int clu_start(clu_t *c);

/* The node's id and lease settings. */
const char *clu_node_id(const clu_t *c);
unsigned clu_lease_ms(const clu_t *c);
unsigned clu_renew_ms(const clu_t *c);

/* 1 when the node serves: connected to the database, its leases renewed
 * in time, not draining. Any thread. */
int clu_ready(const clu_t *c);

/* The epoch the node holds for `session`, or 0 when it holds none. Loop
 * thread. */
uint64_t clu_epoch(const clu_t *c, const char *session);

/* A shed session's connection is closed: its lease is released (owner
 * cleared where it is still ours with that epoch) and the other nodes are
 * told to claim it. Loop thread. */
void clu_release(clu_t *c, const char *session, uint64_t epoch);

/* The store refused a write of `session` (fenced): the node drops it at
 * once (on_lose) and forgets its lease. Loop thread. */
void clu_fenced(clu_t *c, const char *session);

/* Asks for a claim pass now (e.g. a session was just created). Loop
 * thread. */
void clu_kick(clu_t *c);

/* The advertise URL of the node that holds `session` (as the last pass
 * read it; renewed every RENEW_MS and whenever leases move) into url.
 * Returns 0, or -1 when no other node holds it (unowned, this node, or a
 * URL longer than len). Any thread. */
int clu_owner_url(clu_t *c, const char *session, char *url, size_t len);

/* Drain (SIGTERM): the node stops claiming, marks itself draining, sheds
 * every session (on_shed for each; the others claim them), and calls
 * done(arg) on the loop thread when it holds nothing more, or after
 * timeout_ms. Loop thread; once. */
void clu_drain(clu_t *c, unsigned timeout_ms, void (*done)(void *arg), void *arg);

/* Asks every node (this one too) to shed what it holds above its fair
 * share; the others then claim those sessions. Loop thread. */
void clu_rebalance(clu_t *c);

/* Reads the cluster's state from the database and calls done(arg, json) on
 * the loop thread with a malloc'd JSON object (caller frees; NULL when the
 * database cannot be read):
 *   {"clustered":true,"node":"n1","leaseMs":10000,"renewMs":3000,"ready":true,
 *    "nodes":[{"id":"n1","advertiseUrl":"http://...","heartbeatAgeMs":120,
 *              "live":true,"draining":false,"sessions":100,"self":true}],
 *    "sessions":[{"name":"s1","owner":"n1","epoch":3,"leaseAgeMs":5000,
 *                 "expiresInMs":8000}]}
 * Returns 0 when asked, -1 when out of memory (done is then not called). */
int clu_status(clu_t *c, void (*done)(void *arg, char *json), void *arg);

/* The counters (any thread). */
void clu_stats(const clu_t *c, clu_stats_t *out);

/* Stops the thread (the leases are left to expire unless released) and
 * closes the loop handles; done(arg) once they are closed (done may be
 * NULL; a second call only calls done). Loop thread. */
void clu_stop(clu_t *c, void (*done)(void *arg), void *arg);

/* Frees the node after clu_stop completed (or when never started). NULL is
 * ignored. */
void clu_free(clu_t *c);

#endif
