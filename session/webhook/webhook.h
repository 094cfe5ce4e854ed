/* Webhook delivery: every stored event a target wants is POSTed to it, signed
 * as the Standard Webhooks specification says, from the outbox in the store
 * (session/store/store.h, "webhook targets and their outbox").
 *
 *   - Targets: the global one (WEBHOOK_URL + WEBHOOK_SECRET, id "global") and
 *     those created through the API, at most max_targets.
 *   - Per target, strictly one request in flight and events in id order
 *     (per-session seq order): the head of the target's queue is retried
 *     with exponential backoff and jitter until a 2xx, or until the retry
 *     budget (attempts, age) is spent: then it becomes a dead letter and the
 *     next one goes. wh_replay makes dead letters pending again.
 *   - Memory: only each target's head (one event body) is held; the next
 *     head is read from the store through an index, never the backlog.
 *   - The store: called only through its job queue (wh_opts_t.q,
 *     session/storeq.h), so that the loop never waits on the database
 *     (PostgreSQL: a network round trip per call). Hence the completion
 *     callbacks of wh_target_create, wh_target_delete and wh_replay; what
 *     the API lists (targets and their counters) is kept in memory.
 *   - At-least-once: a delivered row is deleted in a batch shortly after the
 *     2xx; after a crash the same event may come again, with the same
 *     webhook-id (evt_<event id>).
 *   - Requests: libcurl on the service's loop (common/httpc.h): TLS
 *     verified, redirects not followed (a 3xx is a failure), response bodies
 *     bounded, connect and total timeouts, connections kept per host.
 *   - Private networks: unless allow_private, URLs naming or resolving to
 *     loopback, private, link-local, ULA, CGNAT or metadata addresses are
 *     refused when a target is created, and again at every connect (the
 *     address actually connected to is checked: DNS rebinding fails).
 *   - Logs: why a delivery failed, at warn, with the target id and the URL's
 *     host only (never the path, the query or a secret).
 *
 * Loop thread only, except wh_wake (any thread). Errors are negative WH_E*
 * codes. */
#ifndef WG_SESSION_WEBHOOK_WEBHOOK_H
#define WG_SESSION_WEBHOOK_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "session/store/store.h"
#include "session/storeq.h"

enum {
    WH_OK = 0,
    WH_EINVAL = -1,   /* malformed input (URL, secret, filter); see the reason */
    WH_EPRIVATE = -2, /* the URL names or resolves to a private address */
    WH_ENOTFOUND = -3,
    WH_ELIMIT = -4, /* max_targets reached */
    WH_ENOMEM = -5,
    WH_EIO = -6,     /* the store failed */
    WH_ECLOSED = -7, /* wh_close was called */
};

/* The id of the target configured by WEBHOOK_URL. */
#define WH_GLOBAL_ID "global"

/* Defaults of wh_opts_t's zero values. */
#define WH_MAX_TARGETS_DEFAULT 100
#define WH_MAX_ATTEMPTS_DEFAULT 50
#define WH_MAX_AGE_MS_DEFAULT (3LL * 24 * 3600 * 1000) /* 3 days */
#define WH_BACKOFF_MS_DEFAULT 1000
#define WH_BACKOFF_MAX_MS_DEFAULT 600000 /* 10 min */
#define WH_TIMEOUT_MS_DEFAULT 10000
#define WH_CONNECT_TIMEOUT_MS_DEFAULT 5000
#define WH_COMMIT_GAP_MS_DEFAULT 5 /* see wh_opts_t.commit_gap_ms */
#define WH_MAX_RESPONSE 4096       /* response bytes read at most */
#define WH_URL_MAX 2048
#define WH_EVENTS_MAX 16 /* types in one target's filter */
#define WH_SECRET_MIN 16 /* key bytes */
#define WH_SECRET_MAX 64

typedef struct wh wh_t;

typedef struct {
    uv_loop_t *loop;
    store_t *store;          /* borrowed */
    sess_q_t *q;             /* the store's job queue (borrowed, required): the store is called
                                only through it; it must outlive the sender's jobs (close it
                                after wh_close) */
    const char *ca_file;     /* PEM bundle trusted instead of the system CAs (tests) */
    int allow_private;       /* WEBHOOK_ALLOW_PRIVATE */
    unsigned max_targets;    /* MAX_WEBHOOKS; 0 = WH_MAX_TARGETS_DEFAULT */
    unsigned max_attempts;   /* WEBHOOK_MAX_ATTEMPTS; 0 = default */
    int64_t max_age_ms;      /* WEBHOOK_MAX_AGE (s * 1000); 0 = default */
    unsigned backoff_ms;     /* first retry delay; 0 = default */
    unsigned backoff_max_ms; /* cap of the delay; 0 = default */
    unsigned timeout_ms;     /* whole request; 0 = default */
    unsigned connect_timeout_ms;
    /* The least time between two group commits of test calls (wh_test):
     * at most 1000 / commit_gap_ms transactions a second.
     * 0 = WH_COMMIT_GAP_MS_DEFAULT. */
    unsigned commit_gap_ms;
} wh_opts_t;

/* Creates the sender: loads the targets from the store and starts
 * delivering what is pending. The start only: it waits for the store
 * through o->q (sess_q_drain, which blocks the loop), so call it before
 * the loop serves requests. Returns 0 and *out, or a WH_E* code with a
 * one-line message in err (WH_EINVAL without loop, store or q; WH_EIO when
 * the targets cannot be read). Close with wh_close, close the queue
 * (sess_q_close), run the loop, then wh_free. */
int wh_new(const wh_opts_t *o, wh_t **out, char *err, size_t errlen);

/* Events were committed to the store: look for new deliveries. Cheap,
 * coalesced (a uv_async_t). Loop thread (any thread before wh_close). NULL
 * and a closed sender are ignored. */
void wh_wake(wh_t *wh);

/* Cluster: whether this node delivers (one node does: the leader, see
 * session/cluster). Off, nothing is sent and no queue purged; the targets
 * are still created, listed and deleted here. Turned on, the targets are
 * read again from the store (wh_reload) and the queues pumped. On by
 * default. */
void wh_set_sending(wh_t *wh, int on);

/* Queues a reading of the targets from the store: once it is in (later, on
 * the loop), those created on another node are added, those deleted there
 * dropped (a failed read is logged). Called again while one is queued, it
 * reads once more after it. 0, WH_ENOMEM or WH_ECLOSED. */
int wh_reload(wh_t *wh);

/* Stops: abandons requests in flight (they stay pending), queues the
 * writes not queued yet (delivered rows, test events), cancels the
 * sender's queued reads (sess_q_cancel), closes the handles (run the loop
 * afterwards). Test waits are answered with WH_ECLOSED, but for wait-0
 * calls whose event is being stored: they get its id once it is. Writes
 * still queued complete (their callbacks answer with their outcome, or
 * WH_ECLOSED for a creation). NULL is ignored. */
void wh_close(wh_t *wh);

/* Frees the sender after wh_close and the loop ran. When some of its jobs
 * are still queued, the memory is freed by the last one's done callback
 * (close the queue to run them). NULL is ignored. */
void wh_free(wh_t *wh);

/* Configures the global target from WEBHOOK_URL and WEBHOOK_SECRET
 * ("whsec_<base64 key>"): inserted or updated under WH_GLOBAL_ID, every
 * session, every event type. With url NULL or "" the global target is
 * removed with its queue. The URL is checked as wh_url_check (literal
 * addresses; a host name is checked at each connect). The start only, as
 * wh_new: it waits for the store through the queue (sess_q_drain). Returns
 * 0 or a WH_E* code with a one-line message (never the secret) in err. */
int wh_set_global(wh_t *wh, const char *url, const char *secret, char *err, size_t errlen);

/* What a target is, and what it has done since the service started. */
typedef struct {
    char id[40];
    char url[WH_URL_MAX + 1];
    char session[72];          /* "" = every session */
    char events[512];          /* " t1 t2 " or "" = every type */
    int64_t created_at;        /* Unix seconds */
    uint64_t delivered;        /* 2xx answers */
    uint64_t failed;           /* failed attempts */
    uint64_t dead;             /* dead letters now */
    int retrying;              /* the head has failed at least once and waits */
    int64_t oldest_pending_ms; /* age of the head (0 when nothing is pending) */
    char last_error[128];      /* why the last attempt failed ("" when it did not) */
} wh_target_info_t;

/* A new target. */
typedef struct {
    const char *url;
    const char *secret;        /* "whsec_<base64>"; NULL: a new random key */
    const char *const *events; /* event types, NULL-terminated; NULL or empty: every type */
    const char *session;       /* NULL: every session */
} wh_target_spec_t;

/* Creates a target after checking the URL (wh_url_check, then the host's
 * addresses through the resolver when it is a name, unless
 * allow_private), the secret and the filter, then stores it through the
 * queue. `cb` runs once, on the loop (before this returns when a check
 * fails), with rc 0 and the target's info and, when the key was
 * generated, the secret ("whsec_..."; shown once: the callee wipes it
 * after the callback), or a WH_E* code with a reason (WH_EIO: the store
 * failed; WH_ECLOSED: wh_close came first). Everything is borrowed for the
 * callback. Returns 0, or a WH_E* code (then cb is not called). */
typedef void (*wh_created_cb)(void *arg, int rc, const char *why, const wh_target_info_t *t,
                              const char *secret);
int wh_target_create(wh_t *wh, const wh_target_spec_t *spec, wh_created_cb cb, void *arg);

/* Completion of wh_target_delete: rc 0 or a WH_E* code. */
typedef void (*wh_done_cb)(void *arg, int rc);

/* Deletes a target and its queue, through the store's queue: from then on
 * the target is no longer found by id (wh_target_get, wh_test, ...) nor
 * listed; cb runs once, later, on the loop, with 0 (the target is gone,
 * its queue purged in the background) or WH_EIO (the store failed: the
 * target stays). Returns 0, or WH_ENOTFOUND, WH_ECLOSED, WH_EINVAL (no
 * cb) or WH_ENOMEM, and then cb is not called. */
int wh_target_delete(wh_t *wh, const char *id, wh_done_cb cb, void *arg);

/* Every target's info (oldest first), malloc'd (caller frees), from memory
 * (the store is not read: the dead letters are counted when a target is
 * loaded and kept up to date since). 0 or WH_ENOMEM. */
int wh_targets(wh_t *wh, wh_target_info_t **out, size_t *n);

/* One target's info, from memory. 0 or WH_ENOTFOUND. */
int wh_target_get(wh_t *wh, const char *id, wh_target_info_t *out);

/* Completion of wh_replay: rc 0 with n, the deliveries made pending, or
 * a WH_E* code (n 0). */
typedef void (*wh_replay_cb)(void *arg, int rc, uint64_t n);

/* Makes the target's dead letters pending again, and with since_id > 0
 * queues again the stored events after that id (see store_webhook_replay);
 * they go next, in id order. Through the store's queue: cb runs once,
 * later, on the loop, with 0 and how many, or WH_EIO. Returns 0, or
 * WH_ENOTFOUND, WH_ECLOSED, WH_EINVAL (no cb) or WH_ENOMEM, and then cb is
 * not called. */
int wh_replay(wh_t *wh, const char *id, uint64_t since_id, wh_replay_cb cb, void *arg);

/* The outcome of a test call. */
typedef struct {
    int rc;            /* 0: an attempt was made (see status/error); WH_E*: none */
    int answered;      /* the attempt finished within the wait */
    int delivered;     /* a 2xx came back */
    long status;       /* HTTP status, 0 when none */
    const char *error; /* why it failed, "" when it did not */
    uint64_t event_id;
} wh_test_result_t;

typedef struct wh_test wh_test_t;

/* Queues a service-wide event {"type":"webhook.test",...} to target `id`
 * only, through the outbox (after whatever it has pending), and calls `cb`
 * once. The event is stored by a group commit: every test event asked for
 * during one loop iteration goes into one transaction (a job of the
 * store's queue) with its delivery row, queued at the end of the
 * iteration (before the loop polls again) or, when the last commit is
 * less than commit_gap_ms old, when that gap is over (then the calls of
 * several iterations share it), or at once when 4,096 wait; event ids in
 * the order of the calls; only once stored is the target woken. With
 * wait_ms 0, cb runs once the event is stored (answered = 0, event_id
 * set); else when its first attempt finished, or after wait_ms
 * (answered = 0: it stays queued; when the event is not stored yet by
 * then, the answer comes once it is, with its id). Returns a handle for
 * wh_test_cancel, or NULL when cb already ran (WH_ENOTFOUND, WH_ECLOSED,
 * WH_ENOMEM); a failed commit answers WH_EIO. */
typedef void (*wh_test_cb)(void *arg, const wh_test_result_t *r);
wh_test_t *wh_test(wh_t *wh, const char *id, unsigned wait_ms, wh_test_cb cb, void *arg);

/* The caller went away: cb will not run (an event not stored yet still is).
 * NULL is ignored. */
void wh_test_cancel(wh_test_t *t);

/* The number of targets in memory (those being deleted included). */
size_t wh_count(const wh_t *wh);

/* A short English description of a WH_E* code. */
const char *wh_strerror(int rc);

/* --- pieces, public for tests --- */

/* Checks a target URL: http or https, a host, no user info, at most
 * WH_URL_MAX bytes, no fragment, and (unless allow_private) no literal
 * private address or local name ("localhost", "*.localhost"). Writes the
 * host (no brackets) into host[hostlen]. 0, WH_EINVAL or WH_EPRIVATE with a
 * static reason in *why. */
int wh_url_check(const char *url, int allow_private, char *host, size_t hostlen, const char **why);

/* 1 when an address must not be a target without allow_private:
 * unspecified, loopback, RFC 1918, CGNAT 100.64/10, link-local (and cloud
 * metadata 169.254.169.254), benchmarking, documentation, multicast,
 * reserved, IPv6 ULA fc00::/7, link-local, site-local, and IPv4-mapped,
 * NAT64 or 6to4 forms of those. */
int wh_addr_private(const struct sockaddr *sa, socklen_t len);

/* Parses "whsec_<base64>" (standard base64, padding optional) into
 * key[0..*len) (WH_SECRET_MIN..WH_SECRET_MAX bytes). 0 or WH_EINVAL. */
int wh_secret_parse(const char *secret, uint8_t key[WH_SECRET_MAX], size_t *len);

/* The signature header value "v1,<base64 HMAC-SHA256(key, id.ts.body)>"
 * into out (WH_SIG_MAX bytes). 0 or WH_ENOMEM. */
#define WH_SIG_MAX 64
int wh_sign(const uint8_t *key, size_t keylen, const char *id, int64_t ts, const char *body,
            size_t len, char out[WH_SIG_MAX]);

/* The delay before retry number `attempts` (1 = after the first failure):
 * base * 2^(attempts-1) capped at cap, then "equal jitter": half of it
 * plus rnd % (half + 1). */
uint64_t wh_backoff_ms(uint32_t attempts, unsigned base, unsigned cap, uint64_t rnd);

#endif
