/* The session module: a registry of named WhatsApp sessions, each a state
 * machine (DISCONNECTED / CONNECTING / QR_READY / CONNECTED plus a detail
 * string) that publishes an immutable, reference-counted snapshot on every
 * change, and subscriptions that receive every change in order.
 *
 * Threads: the registry and its sessions live on one libuv loop thread (the
 * "loop"). Snapshots are immutable and may be read from any thread once a
 * reference is held. sess_current(), the subscription calls and
 * sess_registry_post() are safe from any thread; everything else is loop-only. */
#ifndef WG_SESSION_SESSION_H
#define WG_SESSION_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The four states of the API contract. Never add a fifth: detail says more. */
typedef enum {
    SESS_DISCONNECTED = 0,
    SESS_CONNECTING = 1,
    SESS_QR_READY = 2,
    SESS_CONNECTED = 3,
} sess_state_t;

/* Returns "DISCONNECTED", "CONNECTING", "QR_READY" or "CONNECTED". */
const char *sess_state_name(sess_state_t st);

/* The linked WhatsApp account; strings are NULL when unknown. */
typedef struct {
    char *jid;   /* own device JID, "15551234567:12@s.whatsapp.net" */
    char *lid;   /* own LID, "123...:12@lid" */
    char *phone; /* user part of the JID */
    char *push_name;
    char *platform;      /* the phone's platform from pair-success */
    char *business_name; /* business accounts only */
} sess_account_t;

/* A QR code shared by every snapshot that shows it. `rendered` is what the
 * registry's render hook made of `text` (e.g. the PNG), made once per QR. */
typedef struct sess_qr sess_qr_t;
struct sess_qr {
    char *text;                     /* the exact string encoded in the QR */
    int64_t expires_at_ms;          /* wall clock (ms since the epoch) when it expires */
    void *rendered;                 /* from sess_render_hooks_t.render, or NULL */
    int refcount_;                  /* private */
    void (*free_rendered_)(void *); /* private */
};

/* An immutable view of a session at one change. Read-only for everyone. */
typedef struct {
    int refcount_;       /* private: use sess_snapshot_ref / unref */
    uint64_t seq;        /* 1 for the first snapshot, +1 per change */
    const char *session; /* the session's name */
    sess_state_t state;
    const char *detail;     /* "" when nothing to add; e.g. "logged_out" */
    int64_t since_ms;       /* when `state` was entered (ms since the epoch) */
    int64_t changed_ms;     /* when this snapshot was published */
    int linked;             /* credentials with an account exist */
    sess_account_t account; /* valid when linked */
    sess_qr_t *qr;          /* current QR in QR_READY, else NULL */
    /* Linking other than by QR; shown only to callers holding a key. */
    const char *link_code; /* 8-character code to enter or confirm ("ABCD-EFGH"), or NULL */
    int64_t link_code_expires_at_ms; /* when link_code stops being valid (0 = unknown) */
    uint64_t connects;               /* WhatsApp connections started so far (this process) */
    const char *passkey_options;     /* WebAuthn request options JSON while a passkey is
                                      * required (detail "passkey_required"), or NULL */
    /* The event log (see "the event log" below). */
    uint64_t event_id_; /* private: read with sess_snapshot_event_id */
    /* Set on the first snapshot a resumed stream hands out when the events
     * gap_from..gap_to (per-session seqs; global event ids on registry-wide
     * streams) are no longer kept: the transport says so ("gap") before
     * showing the snapshot. 0 = no gap. */
    uint64_t gap_from, gap_to;
} sess_snapshot_t;

/* The snapshot's event id in the log: global, increasing in the order
 * events were published, the cursor of registry-wide streams. 0 while the
 * event is not yet stored (a reader of sess_current may see that) or when
 * there is no log. Any thread. */
uint64_t sess_snapshot_event_id(const sess_snapshot_t *s);

/* Takes a reference; returns `s` for convenience. Any thread. */
sess_snapshot_t *sess_snapshot_ref(sess_snapshot_t *s);

/* Drops a reference; frees the snapshot with the last one. NULL is ignored. */
void sess_snapshot_unref(sess_snapshot_t *s);

/* Milliseconds the snapshot's QR stays valid at `now_ms` (0 when none or
 * expired). */
int64_t sess_snapshot_qr_remaining_ms(const sess_snapshot_t *s, int64_t now_ms);

/* The same in whole seconds, rounded up (a fresh 60 s QR reads 60): the
 * `expiresIn` every API shows. */
int64_t sess_snapshot_qr_expires_in(const sess_snapshot_t *s, int64_t now_ms);

/* Current wall-clock time in milliseconds since the epoch. */
int64_t sess_now_ms(void);

/* --- registry --------------------------------------------------------- */

typedef struct sess_registry sess_registry_t;
typedef struct sess sess_t;

/* Turns a new QR's text into a rendering kept with it (e.g. PNG bytes); runs
 * once per QR on the loop thread. Returns NULL on failure (the QR is still
 * published, without rendering). */
typedef struct {
    void *(*render)(const char *text, void *arg);
    void (*free_rendered)(void *rendered);
    void *arg;
} sess_render_hooks_t;

/* Creates an empty registry on `loop`. `hooks` may be NULL. Returns NULL when
 * out of memory. The caller owns it: sess_registry_close, run the loop until
 * it has no handles, then sess_registry_free. */
sess_registry_t *sess_registry_new(uv_loop_t *loop, const sess_render_hooks_t *hooks);

/* Closes the registry's loop handles and every subscription (subscribers see
 * the end of the stream). Loop thread. */
void sess_registry_close(sess_registry_t *reg);

/* Frees the registry and every session. Call after the loop has closed the
 * handles started by sess_registry_close. */
void sess_registry_free(sess_registry_t *reg);

/* The loop the registry lives on. */
uv_loop_t *sess_registry_loop(sess_registry_t *reg);

/* Adds a session named `name` in DISCONNECTED. Returns it (owned by the
 * registry), or NULL when the name exists already or memory runs out.
 * Registry-wide subscribers see its first snapshot. Loop thread. */
sess_t *sess_registry_add(sess_registry_t *reg, const char *name);

/* Finds a session by name; NULL when none. The pointer stays valid until
 * the loop runs sess_registry_remove for it: use it on the loop thread only
 * (elsewhere use sess_registry_get). */
sess_t *sess_registry_find(sess_registry_t *reg, const char *name);

/* Finds a session by name and takes a reference (release with sess_unref);
 * NULL when none. Any thread. A removed session is not found; one already
 * held stays readable (its snapshots, its name) until the last reference. */
sess_t *sess_registry_get(sess_registry_t *reg, const char *name);

/* The session whose own key hashes to `hash` (compared in constant time),
 * with a reference taken (sess_unref); NULL when none. Any thread. */
sess_t *sess_registry_find_by_key(sess_registry_t *reg, const uint8_t hash[32]);

/* Takes / drops a reference on a session. Any thread. */
void sess_ref(sess_t *s);
void sess_unref(sess_t *s);

/* Number of sessions. Any thread. */
size_t sess_registry_count(sess_registry_t *reg);

/* The current snapshot of every session, oldest session first, as a
 * malloc'd array of references (*n of them; free with
 * sess_snapshots_free). NULL when out of memory. Any thread. */
sess_snapshot_t **sess_registry_snapshots(sess_registry_t *reg, size_t *n);

/* Releases what sess_registry_snapshots returned. */
void sess_snapshots_free(sess_snapshot_t **v, size_t n);

/* Takes a session out of the registry: it is no longer found, its
 * subscriptions end (SESS_SUB_ENDED), its driver is stopped and destroyed,
 * then `done(arg)` runs (may be NULL). What the driver does on the way out
 * (e.g. unlinking on WhatsApp) is for the caller to start before. Returns 0,
 * or -1 when `s` is not in the registry. Loop thread. */
int sess_registry_remove(sess_registry_t *reg, sess_t *s, void (*done)(void *arg), void *arg);

/* Runs fn(arg) on the loop thread, soon. Safe from any thread. Returns 0, or
 * -1 when the registry is closing (fn is then not called). */
int sess_registry_post(sess_registry_t *reg, void (*fn)(void *arg), void *arg);

/* The session's name (owned by the session). */
const char *sess_name(const sess_t *s);

/* The session's registry. */
sess_registry_t *sess_registry_of(const sess_t *s);

/* Returns a new reference to the session's current snapshot (never NULL).
 * Any thread; the caller unrefs it. */
sess_snapshot_t *sess_current(sess_t *s);

/* --- the session's own API key (any thread) --- */

/* Sets the SHA-256 hash of the session's own API key (NULL: none). */
void sess_set_key_hash(sess_t *s, const uint8_t hash[32]);

/* Returns 1 when the session has a key whose hash equals `hash` (compared
 * in constant time), else 0. */
int sess_key_matches(sess_t *s, const uint8_t hash[32]);

/* --- operations (loop thread) ------------------------------------------ */

/* What drives a session: the WhatsApp companion client (session/driver.c).
 * Each returns 0 when the operation started, or a negative code. */
typedef struct {
    int (*start)(void *drv);
    /* keep_credentials = 0: unlink (log out when linked), wipe and register
     * anew (new QR); 1: restart the connection with the same credentials. */
    int (*reconnect)(void *drv, int keep_credentials);
    int (*logout)(void *drv);
    /* Links by phone number (a pairing code the user types on the phone):
     * starts a registration when none runs, asks WhatsApp for a code for
     * `phone` (digits only) and calls done(arg, rc, code, expires_at_ms)
     * once, on the loop thread: rc 0 with the code, or a negative SESS_E*
     * code (code NULL). May be NULL (linking by code unsupported). */
    int (*pairing_code)(void *drv, const char *phone,
                        void (*done)(void *arg, int rc, const char *code, int64_t expires_at_ms),
                        void *arg);
    /* Completes the passkey step with the WebAuthn assertion (JSON as
     * PublicKeyCredential.toJSON() gives it); done(arg, rc) once, rc 0 when
     * WhatsApp accepted it. May be NULL. */
    int (*passkey_response)(void *drv, const char *assertion_json, size_t len,
                            void (*done)(void *arg, int rc), void *arg);
    /* Closes connections and timers; `done(arg)` runs when all is closed. */
    void (*stop)(void *drv, void (*done)(void *arg), void *arg);
    void (*destroy)(void *drv);
} sess_driver_ops_t;

/* Attaches the driver of a session; the session then owns `drv` and calls
 * ops->destroy from sess_registry_free. */
void sess_set_driver(sess_t *s, const sess_driver_ops_t *ops, void *drv);

/* Stops the session's driver (its connection closes at once), then
 * destroys it: the session has no driver afterwards (sess_start and the
 * other operations give -1) until one is attached again. done(arg) runs on
 * the loop thread when the driver is gone (may be NULL); a registry stop
 * waits for it too. Returns 0, or -1 without a driver. Loop thread. */
int sess_stop_driver(sess_t *s, void (*done)(void *arg), void *arg);

/* 1 when a driver is attached. Loop thread. */
int sess_has_driver(const sess_t *s);

/* Starts the session (connect, log in or register). -1 without a driver. */
int sess_start(sess_t *s);

/* See sess_driver_ops_t.reconnect. -1 without a driver. */
int sess_reconnect(sess_t *s, int keep_credentials);

/* Logs out (see sess_driver_ops_t.logout). -1 without a driver. */
int sess_logout(sess_t *s);

/* Errors of the linking operations (done callbacks and returns). */
enum {
    SESS_ENOTSUP = -2,   /* the driver cannot do this */
    SESS_ELINKED = -3,   /* already linked: nothing to link */
    SESS_EBUSY = -4,     /* asked again too soon / another request is running */
    SESS_EREFUSED = -5,  /* WhatsApp refused the request */
    SESS_ETIMEOUT = -6,  /* WhatsApp did not answer in time */
    SESS_EUNREACH = -7,  /* no connection to WhatsApp could be made */
    SESS_ESTATE = -8,    /* not possible in the current state */
    SESS_EINVAL = -9,    /* malformed input */
    SESS_ESTOPPED = -10, /* the session stopped or the connection ended first */
};

/* See sess_driver_ops_t.pairing_code. Returns 0 when started (done follows),
 * or a negative SESS_E* code (done is then not called). */
int sess_pairing_code(sess_t *s, const char *phone,
                      void (*done)(void *arg, int rc, const char *code, int64_t expires_at_ms),
                      void *arg);

/* See sess_driver_ops_t.passkey_response; returns as sess_pairing_code. */
int sess_passkey_response(sess_t *s, const char *json, size_t len, void (*done)(void *arg, int rc),
                          void *arg);

/* Stops every session's driver; `done(arg)` runs once all have stopped
 * (at once when there are none). */
void sess_registry_stop(sess_registry_t *reg, void (*done)(void *arg), void *arg);

/* --- publishing (used by the session's WhatsApp driver; loop thread) --- */

/* Describes a change; fields left NULL/-1 keep their current value. */
typedef struct {
    sess_state_t state;
    const char *detail;  /* NULL = "" */
    const char *qr_text; /* new QR (state must be QR_READY); NULL = none */
    int64_t qr_expires_at_ms;
    int keep_qr;                   /* keep the current QR object (same QR, other change) */
    const sess_account_t *account; /* copied; NULL = keep current */
    int clear_account;             /* forget the account (logged out) */
    /* Linking: link_code / passkey_options replace the current ones when
     * non-NULL; clear_link forgets both. Both are also forgotten when the
     * state becomes CONNECTED or DISCONNECTED. */
    const char *link_code;
    int64_t link_code_expires_at_ms;
    const char *passkey_options;
    int clear_link;
} sess_change_t;

/* Counts a new WhatsApp connection of the session (shown in the next
 * snapshot's `connects`). Loop thread. */
void sess_count_connect(sess_t *s);

/* Publishes a new snapshot built from the current one and `change`, and
 * queues it to every subscriber. Returns 0, or -1 when out of memory (nothing
 * is published). */
int sess_publish(sess_t *s, const sess_change_t *change);

/* --- the event log ---------------------------------------------------- *
 *
 * With a journal, every snapshot is an event: it is written to durable
 * storage (the journal's append, one transaction per loop iteration for
 * all the events published in it: group commit) before any subscriber sees
 * it, each session's `seq` continues across restarts from the journal's
 * last_seq, and subscriptions can resume from a seq: the stored events
 * first, then the live ones, with no gap and no duplicate at the seam. A
 * subscriber that falls behind (SESS_SLOW_COALESCE) catches up from the log
 * instead of losing events. Without a journal, snapshots are delivered at
 * once and live only, as before. */

/* The type of the events a snapshot makes. */
#define SESS_EVENT_STATUS "session.status"

/* One stored event, as the journal keeps it. */
typedef struct {
    uint64_t id;         /* global id, set by append (increasing, never reused) */
    const char *session; /* the session's name (NULL: a service-wide event) */
    uint64_t seq;        /* the session's seq */
    int64_t ts_ms;       /* when it was published (ms since the epoch) */
    const char *type;    /* "session.status" */
    const char *body;    /* its JSON view (sess_event_json) */
    size_t body_len;
    uint64_t epoch; /* cluster: the lease epoch it was published under (sess_set_epoch); 0 */
} sess_event_t;

/* Where events are stored. `last_seq` and `append` run on the loop thread;
 * `read` on any thread (concurrently with append). */
typedef struct {
    /* The highest seq ever given to `session` (0 when none). 0 or < 0.
     * Called when a session is added, on the loop thread: it should not
     * wait on a database (session/journal.c answers from memory). */
    int (*last_seq)(void *arg, const char *session, uint64_t *seq);
    /* Stores `n` events in one transaction and sets each one's id. 0,
     * SESS_JOURNAL_FENCED, or < 0 (then nothing is stored: the events are
     * delivered anyway, live only, and the failure is logged by the
     * journal). */
    int (*append)(void *arg, sess_event_t *ev, size_t n);
    /* Reads up to `max` stored events after `after`, oldest first: of
     * `session` with seq > after, or with session NULL of every session
     * with id > after (service-wide events excluded). Fills out[0..*n)
     * with malloc'd strings (free each with sess_event_clear) and *pruned
     * with the highest seq (id) no longer kept. 0 or < 0. */
    int (*read)(void *arg, const char *session, uint64_t after, size_t max, sess_event_t *out,
                size_t *n, uint64_t *pruned);
    /* Optional: append off the loop. Starts storing the n events (they and
     * their strings stay valid until done) and returns 0; done(ctx, rc)
     * runs later on the loop thread with what append would have returned
     * (ids set). < 0: not started (done is not called). The registry has
     * at most one in flight, and calls drain before it appends on the loop
     * thread again. */
    int (*append_async)(void *arg, sess_event_t *ev, size_t n, void (*done)(void *ctx, int rc),
                        void *ctx);
    /* With append_async: waits until nothing is in flight and runs the
     * done callbacks due, on the calling (loop) thread. */
    void (*drain)(void *arg);
    /* Optional: read off the loop; out, n and pruned are filled before
     * done(ctx, rc) runs on the loop thread (rc as read returns). < 0: not
     * started (done is not called). */
    int (*read_async)(void *arg, const char *session, uint64_t after, size_t max, sess_event_t *out,
                      size_t *n, uint64_t *pruned, void (*done)(void *ctx, int rc), void *ctx);
    /* Optional, with read_async: the highest event id stored (0: none),
     * asked once by sess_registry_set_journal. The registry-wide
     * subscriptions are then fed from the log in id order from there on
     * (several writers: a node's own events and those another node wrote
     * reach it in different ways, the log has them in one order), and
     * events the log refused never reach them. 0 or < 0 (then they get
     * every delivered snapshot at once, as without read_async). */
    int (*last_id)(void *arg, uint64_t *id);
    void *arg;
} sess_journal_t;

/* What a journal's append returns when the log refused some events because
 * their session is owned by another node now (cluster mode: fencing): those
 * have id 0 and are not delivered; the others were stored. */
#define SESS_JOURNAL_FENCED 1

/* --- following another node's session (cluster mode) ------------------ *
 *
 * With several nodes, a session is driven by the node that holds its
 * lease; on the others it is a follower: it has no driver there, and its
 * snapshots are the owner's, read from the log (sess_follow, when the log
 * says it grew) and delivered with the owner's seqs, so streams on any node
 * see the same events in the same order. Loop thread. */

/* Adds a follower: like sess_registry_add, but its current snapshot is the
 * newest stored event of that name (or an unstored DISCONNECTED one) and
 * nothing is appended to the log. With read_async (PostgreSQL) that event
 * is read off the loop: until it is delivered, the current snapshot is an
 * unstored DISCONNECTED one with the journal's last seq, and subscribers
 * wait for the stored one; newer events than the journal's last_seq knew
 * of are read next (sess_follow_later). NULL when the name exists or out
 * of memory. */
sess_t *sess_registry_add_follower(sess_registry_t *reg, const char *name);

/* Makes the session a follower (1) or its owner's (0). A follower's
 * sess_publish is refused (-1). Before a driver starts on a session that
 * was followed, call sess_follow so that its seq continues the log's. */
void sess_set_following(sess_t *s, int on);
/* 1 for a follower. Any thread. */
int sess_following(const sess_t *s);

/* Cluster: the lease epoch the session's next events are made under. The
 * store stores an event only while that lease is still held with that
 * epoch: an event made under an older lease is refused even when this node
 * holds the session again (its log never gets a hole). 0 (the default):
 * the store's own idea of the epoch (store_fence_set). Loop thread. */
void sess_set_epoch(sess_t *s, uint64_t epoch);

/* Catches up with the log: every stored event of the session after the
 * newest one delivered becomes, in order, its current snapshot and is
 * delivered to its subscribers (bounded: at most 64,000 per call). Returns
 * how many, or -1 when the log cannot be read (or there is none). */
int sess_follow(sess_t *s);

/* 1 while published snapshots wait for the journal (pending or being
 * stored off the loop) or reads of the log are in flight (a stream's
 * catch-up, the registry-wide subscriptions' tail), else 0. Loop thread
 * (tests wait on it). */
int sess_registry_flushing(sess_registry_t *reg);

/* Like sess_follow, off the loop when the journal reads asynchronously
 * (read_async): the events are delivered later on the loop thread, in
 * order; a call while a read is in flight reads again once it is
 * delivered. Without read_async, sess_follow. */
void sess_follow_later(sess_t *s);

/* Catches up with the log completely, like sess_follow, but off the loop
 * when the journal reads asynchronously (read_async): the events are
 * delivered in order on the loop thread, page after page, then done(arg,
 * rc) runs once with how many were delivered, or -1 when the log cannot
 * be read. Without read_async it is sess_follow, and done runs before
 * this returns. With read_async, while events the session published itself
 * still wait for the journal, the reading starts once they are settled
 * (stored, or refused by the fence and taken back), so the log is then
 * everything it showed. Stops early (done still runs) when the session is
 * removed or the registry closes. Returns 0. Loop thread. */
int sess_follow_async(sess_t *s, void (*done)(void *arg, int rc), void *arg);

/* Frees the strings of an event filled by a journal's read. */
void sess_event_clear(sess_event_t *ev);

/* Sets the registry's journal (copied); before any session is added. Loop
 * thread. */
void sess_registry_set_journal(sess_registry_t *reg, const sess_journal_t *j);

/* Writes the snapshot's event JSON view (what the journal stores and what
 * webhooks deliver), malloc'd and NUL-terminated (*len bytes), or NULL when
 * out of memory:
 *   {"type":"session.status","session":"sales","seq":12,
 *    "timestamp":"2026-12-03T09:00:00.123Z",
 *    "data":{"state":"QR_READY","detail":"","connected":false,"linked":false,
 *            "since":"...","qr":"<QR text>","qrExpiresAt":"...",
 *            "account":{"jid":...,"lid":...,"phone":...,"pushName":...,
 *                       "platform":...,"businessName":...},
 *            "linkCode":"ABCD-EFGH","linkCodeExpiresAt":"...",
 *            "passkeyOptions":"<JSON text>","connects":3}}
 * (absent members are omitted). Any thread. */
char *sess_event_json(const sess_snapshot_t *s, size_t *len);

/* Rebuilds a snapshot from an event JSON view (the inverse of
 * sess_event_json; its QR is rendered with the registry's hooks). Returns a
 * new reference, or NULL for a malformed view. Any thread. */
sess_snapshot_t *sess_event_parse(sess_registry_t *reg, const char *json, size_t len);

/* --- subscriptions ----------------------------------------------------- */

typedef struct sess_sub sess_sub_t;

/* What to do when a subscriber's queue is full. */
typedef enum {
    /* Drop the queued snapshots but keep the newest: the subscriber sees a
     * gap in `seq` and then the latest state. */
    SESS_SLOW_COALESCE = 0,
    /* End the subscription: sess_sub_next returns SESS_SUB_ENDED. */
    SESS_SLOW_DISCONNECT = 1,
} sess_slow_policy_t;

typedef struct {
    /* Called (on the loop thread, or on the subscribing thread for the
     * first snapshot) when the queue goes from empty to non-empty or the
     * subscription ends. Must not block and must not call back into the
     * session; typically it wakes the consumer (uv_async_send, an alarm). */
    void (*notify)(void *arg);
    void *arg;
    size_t max_queue; /* 0 = default 256 */
    sess_slow_policy_t policy;
} sess_sub_opts_t;

/* Subscribes to `s`: the current snapshot is queued at once, then every
 * change in order. Any thread. Returns NULL when out of memory. The caller
 * owns the subscription and must end it with sess_unsubscribe. */
sess_sub_t *sess_subscribe(sess_t *s, const sess_sub_opts_t *opts);

enum {
    SESS_SUB_EMPTY = 0, /* nothing queued now */
    SESS_SUB_OK = 1,    /* *out holds a snapshot reference (caller unrefs) */
    SESS_SUB_ENDED = -1 /* the subscription ended (slow, or registry closed) */
};

/* Pops the oldest queued snapshot. While a stream catches up from the
 * event log this reads a page of stored events: with the journal's
 * read_async off the loop (SESS_SUB_EMPTY now; the subscriber's notify
 * runs on the loop thread once the page is queued), else a short
 * synchronous read. Any thread. Returns SESS_SUB_OK with a reference in
 * *out, SESS_SUB_EMPTY, or SESS_SUB_ENDED. */
int sess_sub_next(sess_sub_t *sub, sess_snapshot_t **out);

/* Number of snapshots dropped by SESS_SLOW_COALESCE so far. */
uint64_t sess_sub_dropped(sess_sub_t *sub);

/* Subscribes to every session of the registry: the current snapshot of
 * each first, then every change of any session (and the first snapshot of
 * sessions added later) in the order they were published; the snapshot's
 * `session` says whose it is. Queue default 4096. Ends when the registry
 * closes. Any thread. Returns NULL when out of memory; release with
 * sess_unsubscribe. */
sess_sub_t *sess_registry_subscribe(sess_registry_t *reg, const sess_sub_opts_t *opts);

/* Resuming: as sess_subscribe / sess_registry_subscribe, but a `since`
 * above 0 replaces the current snapshots with every event after `since`
 * (seq of the session; for the registry-wide stream a global event id),
 * oldest first, then the live ones. When events after `since` are no
 * longer kept, the first snapshot handed out carries gap_from..gap_to.
 * A `since` at or past the newest event hands out nothing until the next
 * change (a `since` from another incarnation, above the newest, is taken
 * as 0). Without a journal the current snapshot comes first, with the gap
 * set when it is not the next one. Any thread. */
sess_sub_t *sess_subscribe_since(sess_t *s, uint64_t since, const sess_sub_opts_t *opts);
sess_sub_t *sess_registry_subscribe_since(sess_registry_t *reg, uint64_t since,
                                          const sess_sub_opts_t *opts);

/* Ends and frees the subscription; no notify call runs after it returns.
 * Any thread. */
void sess_unsubscribe(sess_sub_t *sub);

/* Number of live subscriptions of a session. Any thread. */
size_t sess_subscriber_count(sess_t *s);

#endif
