/* The durable credential store: one SQLite file (DATA_DIR/wa-gateway.db,
 * mode 0600, WAL, synchronous FULL), or a PostgreSQL database shared by
 * several nodes (store_open_url), holding, per named session, the device
 * identity (noise, identity and signed pre-key key pairs, registration id,
 * adv secret), what pairing gave (signed account identity, JID, LID, names)
 * and the one-time pre-keys; small per-session values (meta) and the
 * devices whose removal still has to reach WhatsApp. Every change is one transaction, so a crash at
 * any point leaves either the old or the new record, never half of one. A
 * corrupt file or a schema newer than this code is refused and left as is.
 * Key bytes are never logged. A handle is used from one thread (except the
 * readers that say otherwise).
 *
 * Both backends have the same tables, columns and migrations (schema
 * version in PRAGMA user_version on SQLite, in the one-row table
 * schema_version on PostgreSQL). What is said below of files (modes,
 * links, zeroed deleted bytes, WAL, integrity checks) is SQLite's: on
 * PostgreSQL the database server's storage, its WAL and its backups hold
 * the keys, and protecting them is the operator's part.
 *
 * On PostgreSQL every call is synchronous: it blocks the calling thread
 * until the server answers, at most about STORE_PG_TIMEOUT_MS per statement
 * (a server-side statement_timeout plus a client-side bound; then
 * STORE_EIO), and up to the connect timeout when a broken connection is
 * re-established. A connection found broken by a call's first statement
 * is reset once and the call retried. */
#ifndef WG_SESSION_STORE_STORE_H
#define WG_SESSION_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
    STORE_OK = 0,
    STORE_ENOTFOUND = 1, /* no credentials for that session (not an error) */
    STORE_EIO = -1,      /* SQLite or file system error */
    STORE_ECORRUPT = -2, /* not a database, or it fails its integrity check */
    STORE_ENEWER = -3,   /* written by a newer version of wa-gateway */
    STORE_ENOMEM = -4,
    STORE_EINVAL = -5,  /* a record with wrong key sizes */
    STORE_EEXISTS = -6, /* a session of that name exists already */
    STORE_EPERM = -7,   /* DATA_DIR or the file is not private to this user, or a link */
    STORE_EFENCED = -8, /* the write's session is not owned by this node with that epoch */
};

/* The schema version this code writes. */
#define STORE_SCHEMA_VERSION 5

/* The file name inside DATA_DIR. */
#define STORE_FILE_NAME "wa-gateway.db"

typedef struct store store_t;

/* A session's credentials. Byte arrays are raw 32-byte Curve25519 keys. */
typedef struct {
    uint8_t noise_priv[32], noise_pub[32];
    uint8_t ident_priv[32], ident_pub[32];
    uint32_t spk_id;
    uint8_t spk_priv[32], spk_pub[32], spk_sig[64];
    uint32_t reg_id;
    uint8_t adv_secret[32];
    uint32_t next_prekey_id; /* first unused one-time pre-key id */
    /* After pairing (NULL / 0 before): */
    uint8_t *account; /* serialized ADVSignedDeviceIdentity */
    size_t account_len;
    char *jid, *lid, *push_name, *platform, *business_name;
    int confirmed; /* the server completed the pairing (restart or login seen) */
} store_creds_t;

typedef struct {
    uint32_t id;
    uint8_t priv[32], pub[32];
} store_prekey_t;

/* Returns a short English description of a code. */
const char *store_strerror(int code);

/* Opens (creating when missing, mode 0600) DATA_DIR/wa-gateway.db. DATA_DIR
 * must belong to the process's effective user and not be writable by
 * others (STORE_EPERM; only readable by others: it is made 0700); the file
 * and its -wal/-shm must be regular files of that user, never symbolic
 * links (STORE_EPERM; a file readable by others is made 0600 once valid).
 * An existing file is validated through a read-only connection first. On
 * error returns a negative code with a one-line message in err, and the
 * files are untouched. */
int store_open(const char *dir, store_t **out, char *err, size_t errlen);

/* Opens the store named by `url`: NULL, "" or "sqlite:" is the SQLite file
 * in data_dir (exactly store_open); "postgres://..." or "postgresql://..."
 * is a PostgreSQL database (a libpq connection URI; its password, user
 * and options as libpq takes them), connected with a connect timeout and
 * TCP keepalives, a statement_timeout of STORE_PG_TIMEOUT_MS, and migrated
 * (in one transaction, under an advisory lock: several nodes may open the
 * same database at once); data_dir is then unused. A schema newer than
 * this code is refused (STORE_ENEWER), any other scheme is STORE_EINVAL.
 * On error returns a negative code with a one-line message in err, which
 * never holds the password (nor does anything logged). */
int store_open_url(const char *url, const char *data_dir, store_t **out, char *err, size_t errlen);

/* The bound of one PostgreSQL statement (server statement_timeout), ms. */
#define STORE_PG_TIMEOUT_MS 5000

/* 1 when the store is on PostgreSQL, 0 on SQLite. */
int store_is_pg(const store_t *st);

/* Closes the store. NULL is ignored. */
void store_close(store_t *st);

/* The database file's path, or on PostgreSQL the URL with its password
 * replaced by "***" (owned by the store). */
const char *store_path(const store_t *st);

/* --- cluster mode: fencing (PostgreSQL) ---
 *
 * On PostgreSQL, once a node id is set, every write of a session's
 * credentials (store_save, store_save_pairing, store_confirm_pairing,
 * store_wipe, store_retire), pre-keys (store_prekeys_add,
 * store_prekeys_mark_uploaded), values (store_meta_set, except the
 * service-wide session "") and events (store_events_append) first checks,
 * in its transaction, that the session's lease row has this node as owner,
 * the epoch given by store_fence_set and an expiry after the database's
 * now() (taking a share lock on the row until the commit). When it does
 * not, the transaction is rolled back, the store_on_fenced callback runs
 * and the call returns STORE_EFENCED with nothing written. Session create
 * and delete, webhook targets and the outbox are not fenced. */

/* Cluster mode: the node's id (owner column of leases); copied. Before it
 * is set (or after NULL / ""), writes are not fenced. PostgreSQL only;
 * SQLite ignores it. 0 or STORE_ENOMEM. */
int store_set_node(store_t *st, const char *node_id);

/* The lease epoch this node holds for `session` (0 = it holds none: every
 * fenced write of that session is refused). The name is copied; out of
 * memory, the session is left holding none (its writes are refused). */
void store_fence_set(store_t *st, const char *session, uint64_t epoch);

/* Called (on the writer's thread, after the refused transaction rolled
 * back) whenever a fenced write is refused, with the session's name; the
 * cluster layer closes that session's WhatsApp connection at once. cb NULL
 * removes it. */
void store_on_fenced(store_t *st, void (*cb)(void *arg, const char *session), void *arg);

/* Loads `session`'s credentials into *out (caller frees with
 * store_creds_free). Returns 0, STORE_ENOTFOUND or a negative code. */
int store_load(store_t *st, const char *session, store_creds_t *out);

/* Writes a whole record (insert, or update in place: the session's
 * pre-keys stay, and next_prekey_id never goes below its stored value) in
 * one transaction. */
int store_save(store_t *st, const char *session, const store_creds_t *c);

/* Records what pairing gave, in one transaction (the identity must exist).
 * The pairing starts unconfirmed; see store_confirm_pairing. */
int store_save_pairing(store_t *st, const char *session, const uint8_t *account, size_t account_len,
                       const char *jid, const char *lid, const char *platform,
                       const char *business_name, const char *push_name);

/* Marks the session's pairing as completed by the server. */
int store_confirm_pairing(store_t *st, const char *session);

/* Deletes the session's credentials and pre-keys in one transaction; the
 * deleted bytes are zeroed and the WAL checkpointed and truncated, so no
 * key byte stays in either file (STORE_EIO when the checkpoint could not
 * complete). On PostgreSQL it deletes the rows, nothing more: the server
 * keeps the old row versions until VACUUM, in its WAL and in backups;
 * protecting PostgreSQL's own storage and backups is the operator's part. */
int store_wipe(store_t *st, const char *session);

/* Adds one-time pre-keys and advances next_prekey_id past them, atomically. */
int store_prekeys_add(store_t *st, const char *session, const store_prekey_t *keys, size_t n);

/* Reads up to `max` pre-keys not yet uploaded, lowest ids first. */
int store_prekeys_pending(store_t *st, const char *session, store_prekey_t *out, size_t max,
                          size_t *n);

/* Marks pre-keys with ids <= max_id as uploaded. */
int store_prekeys_mark_uploaded(store_t *st, const char *session, uint32_t max_id);

/* Counts a session's pre-keys (uploaded or not). */
int store_prekeys_count(store_t *st, const char *session, size_t *n);

/* Checks the whole file: integrity, key sizes, no half-written pairing,
 * no pre-keys without a session. Returns 0 or STORE_ECORRUPT with a
 * message in err. */
int store_check(store_t *st, char *err, size_t errlen);

/* A session (one WhatsApp account) as stored. */
typedef struct {
    char name[72];
    uint8_t key_hash[32]; /* SHA-256 of the session's own API key */
    int has_key;
    char device_name[72]; /* shown on the phone under Linked devices; "" = default */
    int64_t created_at;   /* Unix seconds */
} store_session_t;

/* Records a new session with its lease row (no owner, epoch 0) in one
 * transaction; key_hash and device_name may be NULL. Returns 0,
 * STORE_EEXISTS or a negative code. On PostgreSQL it notifies the channel
 * wagw_sessions with the name (delivered at the commit). */
int store_session_add(store_t *st, const char *name, const uint8_t key_hash[32],
                      const char *device_name);

/* Replaces (or with NULL removes) a session's key hash. STORE_ENOTFOUND
 * when there is no such session. */
int store_session_set_key(store_t *st, const char *name, const uint8_t key_hash[32]);

/* Reads one session. Returns 0, STORE_ENOTFOUND or a negative code. */
int store_session_get(store_t *st, const char *name, store_session_t *out);

/* Every session, oldest first, in a malloc'd array (caller frees). */
int store_sessions_list(store_t *st, store_session_t **out, size_t *n);

/* Deletes a session with its credentials, pre-keys, values and lease row in
 * one transaction (pending removals stay until they reach WhatsApp). On
 * PostgreSQL it notifies wagw_sessions with the name. */
int store_session_delete(store_t *st, const char *name);

/* A device logged out while the service could not reach WhatsApp: what the
 * removal request needs (a login as that device, then
 * remove-companion-device). */
typedef struct {
    int64_t id;
    char session[72];
    char jid[96];
    uint8_t noise_priv[32], noise_pub[32];
} store_removal_t;

/* Logs a session out locally in one transaction: its JID and noise key pair
 * go to the pending removals (when it is paired), its credentials and
 * pre-keys are deleted. Everything else of the identity is gone at once. */
int store_retire(store_t *st, const char *session);

/* Reads up to `max` pending removals, oldest first. Caller wipes them. */
int store_removals_list(store_t *st, store_removal_t *out, size_t max, size_t *n);

/* Deletes a pending removal once WhatsApp has received the request (its
 * key bytes scrubbed from both files, as store_wipe). */
int store_removal_done(store_t *st, int64_t id);

/* Stores a small value for (session, key); insert or update. */
int store_meta_set(store_t *st, const char *session, const char *key, const void *value,
                   size_t len);

/* Reads the value of (session, key) into a malloc'd buffer (NUL-terminated
 * after `len` bytes; caller frees). Returns 0, STORE_ENOTFOUND or a
 * negative code. */
int store_meta_get(store_t *st, const char *session, const char *key, uint8_t **value, size_t *len);

/* --- the event log (events.c) ---
 *
 * Every session event: a global id (AUTOINCREMENT, never reused), the
 * session's seq (continuing across restarts and across a deletion and
 * re-creation of the name: event_heads outlives the session), a timestamp,
 * a type and its JSON body. Appending an event also queues, in the same
 * transaction, one webhook delivery per target that wants it (targets of
 * every session or of that session, whose event filter is empty or lists
 * the type): the outbox can never miss an event that was stored. */

typedef struct {
    uint64_t id;   /* set by store_events_append */
    char *session; /* NULL: a service-wide event */
    uint64_t seq;
    int64_t ts_ms;
    char *type;
    char *body;
    size_t body_len;
    /* Cluster mode, on append: the lease epoch of `session` this node held
     * when the event was made; the event is stored only while the lease
     * still has it (0: the epoch store_fence_set gave). Not read back. */
    uint64_t epoch;
} store_event_t;

/* How many event appends PostgreSQL ended for a reason a retry cures (a
 * deadlock it broke, a serialization failure) and were run again (each
 * append tries up to 5 times before it fails). 0 on SQLite. Any thread. */
uint64_t store_events_retries(store_t *st);

/* How many writes the fence refused since the store opened: each event
 * and each other write of a session whose lease this node did not hold
 * (any longer, or not with the epoch the event was made under), whether
 * or not the store_on_fenced callback ran for it. 0 on SQLite. Any
 * thread. */
uint64_t store_fenced_writes(store_t *st);

/* The highest seq ever given to `session` (0 when none). */
int store_events_last_seq(store_t *st, const char *session, uint64_t *seq);

/* One session's highest seq (store_events_last_seqs). */
typedef struct {
    char *session;
    uint64_t seq;
} store_seq_t;

/* The highest seq ever given to every session that has one (one query:
 * the journal loads them all at start). *out is a malloc'd array of *n
 * (free with store_seqs_free; NULL when none). Returns 0, STORE_EIO or
 * STORE_ENOMEM (then *out is NULL and *n 0). */
int store_events_last_seqs(store_t *st, store_seq_t **out, size_t *n);

/* Frees what store_events_last_seqs returned. NULL is ignored. */
void store_seqs_free(store_seq_t *v, size_t n);

/* Appends `n` events (session, seq, ts_ms, type, body set; the strings are
 * only read) with their webhook deliveries in one transaction; sets each
 * one's id. A seq must be above the session's last one (STORE_EINVAL; then
 * nothing is stored and every id is 0). On PostgreSQL the transaction
 * notifies the channel wagw_events once per session with events, payload
 * the session's name (service-wide events notify nothing), so listeners on
 * other nodes wake after the commit.
 * Fencing (cluster mode, see above): each session's events are fenced on
 * their own. The events of a refused session are not stored (their id
 * stays 0) while those of the other sessions are committed; the call then
 * returns STORE_EFENCED after calling the callback once per refused
 * session. */
int store_events_append(store_t *st, store_event_t *ev, size_t n);

/* The same as store_events_append, from one other thread than the
 * handle's (the event log's writer thread) while the handle's own thread
 * goes on with its calls: PostgreSQL only, through a connection of its own
 * (opened on first use); the fence callback runs on the calling thread.
 * STORE_EINVAL on SQLite (use store_events_append). */
int store_events_append_bg(store_t *st, store_event_t *ev, size_t n);

/* Reads up to `max` events after `after`, oldest first: of `session` with
 * seq > after, or (session NULL) of every session with id > after
 * (service-wide events excluded). out[0..*n) get malloc'd strings (free
 * with store_events_free); *pruned is the highest seq (id) of the
 * session's (of all) events deleted by retention. Safe from any thread,
 * concurrently with the handle's other calls (its own connection). */
int store_events_read(store_t *st, const char *session, uint64_t after, size_t max,
                      store_event_t *out, size_t *n, uint64_t *pruned);

/* Reads one event by id (strings malloc'd). 0, STORE_ENOTFOUND or < 0.
 * Same thread rules as store_events_read. */
int store_event_get(store_t *st, uint64_t id, store_event_t *out);

/* Frees the strings of n events. */
void store_events_free(store_event_t *ev, size_t n);

/* Retention: deletes, per session, the events beyond the newest
 * `max_count` and those older than `now_ms - max_age_ms` (0 = no limit of
 * that kind), but never a session's newest event nor one a webhook
 * delivery still waits for (pending), at most `batch` rows per call;
 * records what it deleted (the `pruned` of store_events_read). Sets
 * *deleted. Service-wide events go with their last delivery. */
int store_events_prune(store_t *st, uint64_t max_count, int64_t max_age_ms, int64_t now_ms,
                       size_t batch, size_t *deleted);

/* Number of stored events (all sessions). */
int store_events_count(store_t *st, uint64_t *n);

/* The highest event id in the log (0 when empty): where a reader of every
 * session's events that starts now begins. 0 or STORE_EIO. */
int store_events_max_id(store_t *st, uint64_t *id);

/* --- webhook targets and their outbox (webhooks.c) ---
 *
 * A target (id, URL, signing key, session filter, event filter) and its
 * deliveries: one row per (target, event) while pending (state 0) or dead
 * (state 2); a delivered one is deleted. Deliveries are queued by
 * store_events_append; the functions here read a target's next pending
 * delivery (one at a time: nothing loads a backlog), record failures,
 * dead letters and deliveries, and re-queue dead ones. Writer thread. */

enum { STORE_DELIVERY_PENDING = 0, STORE_DELIVERY_DEAD = 2 };

typedef struct {
    char id[40];
    char *url;
    uint8_t *secret; /* the signing key's raw bytes (wiped by store_webhooks_free) */
    size_t secret_len;
    char *session;      /* NULL: every session */
    char *events;       /* " t1 t2 " or "" (every type) */
    int64_t created_at; /* Unix seconds */
} store_webhook_t;

/* Inserts a target, or replaces the URL, key and filters of the target
 * with that id keeping its deliveries (the global target at start). The
 * strings and key are only read. 0 or STORE_EIO / STORE_EINVAL (empty id or
 * URL, no key). */
int store_webhook_put(store_t *st, const store_webhook_t *t);

/* Deletes a target: at once it is no longer listed and gets no new
 * deliveries; its queue (which may be millions of rows) is deleted in
 * bounded batches by store_webhook_purge, then the target row. A target
 * put again under the same id before that keeps what is left of its
 * queue. 0, STORE_ENOTFOUND or STORE_EIO. */
int store_webhook_delete(store_t *st, const char *id);

/* One bounded step of deleting the queues of deleted targets: at most
 * `batch` deliveries (0 = 5000) in one transaction, and the target row
 * once its queue is empty. Sets *deleted and *more (1 while a deleted
 * target is left: call again, e.g. on the next loop turn). 0 or
 * STORE_EIO. */
int store_webhook_purge(store_t *st, size_t batch, size_t *deleted, int *more);

/* Every target, oldest first, in a malloc'd array (free with
 * store_webhooks_free, which wipes the keys). */
int store_webhooks_list(store_t *st, store_webhook_t **out, size_t *n);

/* Frees what store_webhooks_list returned (NULL is ignored). */
void store_webhooks_free(store_webhook_t *v, size_t n);

/* A target's delivery as the sender needs it. */
typedef struct {
    uint64_t event_id;
    uint32_t attempts;
    int64_t next_at_ms; /* not before (ms since the epoch) */
    int64_t ts_ms;      /* the event's time (the age of the delivery) */
    char *body;         /* the event's JSON, malloc'd (NULL without want_body) */
    size_t body_len;
} store_delivery_t;

/* Reads the target's pending delivery with the lowest event id above
 * `after` (an index lookup), with the event's body when want_body. 0,
 * STORE_ENOTFOUND (nothing pending) or a negative code. */
int store_webhook_next(store_t *st, const char *target, uint64_t after, int want_body,
                       store_delivery_t *out);

/* Records a failed attempt: attempts, when the next may start, why. */
int store_webhook_failed(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                         int64_t next_at_ms, const char *error);

/* Moves a delivery to the dead letters (retry budget spent). */
int store_webhook_dead(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                       const char *error);

/* Deletes n delivered rows (targets[i], event_ids[i]) in one transaction
 * (a row already gone is not an error). */
int store_webhook_delivered(store_t *st, const char *const *targets, const uint64_t *event_ids,
                            size_t n);

/* Re-queues a target's dead deliveries as pending (attempts reset) and,
 * when since_id > 0, queues again every stored event with an id above
 * since_id that the target's filters take and that is not queued already.
 * *n is the number of deliveries made pending. One transaction. */
int store_webhook_replay(store_t *st, const char *target, uint64_t since_id, uint64_t *n);

/* Counts a target's deliveries in `state` (STORE_DELIVERY_*). */
int store_webhook_count(store_t *st, const char *target, int state, uint64_t *n);

/* Stores a service-wide event (ev->session must be NULL; seq, ts_ms, type,
 * body set) and one pending delivery of it to `target` only, in one
 * transaction; sets ev->id. STORE_ENOTFOUND when there is no such target. */
int store_webhook_enqueue(store_t *st, const char *target, store_event_t *ev);

/* Stores n service-wide events (as store_webhook_enqueue: session NULL) and
 * one pending delivery of evs[i] to targets[i] only, all in one
 * transaction (one commit, one fsync: the group commit of test calls); sets
 * each evs[i].id, increasing in array order, so each target gets its
 * events in the order given. All or nothing: STORE_EINVAL for a malformed
 * event, STORE_ENOTFOUND when a target does not exist, STORE_EIO; then no
 * event is stored and every id is 0. n 0 is a no-op. */
int store_webhook_enqueue_batch(store_t *st, const char *const *targets, store_event_t *evs,
                                size_t n);

/* Releases the heap parts of a record and wipes its key bytes. */
void store_creds_free(store_creds_t *c);

#endif
