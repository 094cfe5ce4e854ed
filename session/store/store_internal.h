/* What the store's source files share (not part of the store's interface):
 * the handle, the backend table every public function goes through, and
 * the statement helpers of each backend. Only session/store/ includes it. */
#ifndef WG_SESSION_STORE_STORE_INTERNAL_H
#define WG_SESSION_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <postgresql/libpq-fe.h>

#include "session/store/store.h"

/* The operations a backend implements, one line each: X(name, parameters,
 * arguments). Each is the store.h function store_<name>, returning int;
 * its documentation is there. The writer's operations (one thread): */
#define STORE_WRITER_OPS(X)                                                                        \
    X(load, (store_t * st, const char *session, store_creds_t *out), (st, session, out))           \
    X(save, (store_t * st, const char *session, const store_creds_t *c), (st, session, c))         \
    X(save_pairing,                                                                                \
      (store_t * st, const char *session, const uint8_t *account, size_t account_len,              \
       const char *jid, const char *lid, const char *platform, const char *business_name,          \
       const char *push_name),                                                                     \
      (st, session, account, account_len, jid, lid, platform, business_name, push_name))           \
    X(confirm_pairing, (store_t * st, const char *session), (st, session))                         \
    X(wipe, (store_t * st, const char *session), (st, session))                                    \
    X(prekeys_add, (store_t * st, const char *session, const store_prekey_t *keys, size_t n),      \
      (st, session, keys, n))                                                                      \
    X(prekeys_pending,                                                                             \
      (store_t * st, const char *session, store_prekey_t *out, size_t max, size_t *n),             \
      (st, session, out, max, n))                                                                  \
    X(prekeys_mark_uploaded, (store_t * st, const char *session, uint32_t max_id),                 \
      (st, session, max_id))                                                                       \
    X(prekeys_count, (store_t * st, const char *session, size_t *n), (st, session, n))             \
    X(check, (store_t * st, char *err, size_t errlen), (st, err, errlen))                          \
    X(session_add,                                                                                 \
      (store_t * st, const char *name, const uint8_t key_hash[32], const char *device_name),       \
      (st, name, key_hash, device_name))                                                           \
    X(session_set_key, (store_t * st, const char *name, const uint8_t key_hash[32]),               \
      (st, name, key_hash))                                                                        \
    X(session_get, (store_t * st, const char *name, store_session_t *out), (st, name, out))        \
    X(sessions_list, (store_t * st, store_session_t * *out, size_t * n), (st, out, n))             \
    X(session_delete, (store_t * st, const char *name), (st, name))                                \
    X(retire, (store_t * st, const char *session), (st, session))                                  \
    X(removals_list, (store_t * st, store_removal_t * out, size_t max, size_t * n),                \
      (st, out, max, n))                                                                           \
    X(removal_done, (store_t * st, int64_t id), (st, id))                                          \
    X(meta_set,                                                                                    \
      (store_t * st, const char *session, const char *key, const void *value, size_t len),         \
      (st, session, key, value, len))                                                              \
    X(meta_get,                                                                                    \
      (store_t * st, const char *session, const char *key, uint8_t **value, size_t *len),          \
      (st, session, key, value, len))                                                              \
    X(events_last_seq, (store_t * st, const char *session, uint64_t *seq), (st, session, seq))     \
    X(events_last_seqs, (store_t * st, store_seq_t * *out, size_t * n), (st, out, n))              \
    X(events_append, (store_t * st, store_event_t * ev, size_t n), (st, ev, n))                    \
    X(events_prune,                                                                                \
      (store_t * st, uint64_t max_count, int64_t max_age_ms, int64_t now_ms, size_t batch,         \
       size_t * deleted),                                                                          \
      (st, max_count, max_age_ms, now_ms, batch, deleted))                                         \
    X(events_count, (store_t * st, uint64_t * n), (st, n))                                         \
    X(events_max_id, (store_t * st, uint64_t * id), (st, id))                                      \
    X(webhook_put, (store_t * st, const store_webhook_t *t), (st, t))                              \
    X(webhook_delete, (store_t * st, const char *id), (st, id))                                    \
    X(webhook_purge, (store_t * st, size_t batch, size_t * deleted, int *more),                    \
      (st, batch, deleted, more))                                                                  \
    X(webhooks_list, (store_t * st, store_webhook_t * *out, size_t * n), (st, out, n))             \
    X(webhook_next,                                                                                \
      (store_t * st, const char *target, uint64_t after, int want_body, store_delivery_t *out),    \
      (st, target, after, want_body, out))                                                         \
    X(webhook_failed,                                                                              \
      (store_t * st, const char *target, uint64_t event_id, uint32_t attempts, int64_t next_at_ms, \
       const char *error),                                                                         \
      (st, target, event_id, attempts, next_at_ms, error))                                         \
    X(webhook_dead,                                                                                \
      (store_t * st, const char *target, uint64_t event_id, uint32_t attempts, const char *error), \
      (st, target, event_id, attempts, error))                                                     \
    X(webhook_delivered,                                                                           \
      (store_t * st, const char *const *targets, const uint64_t *event_ids, size_t n),             \
      (st, targets, event_ids, n))                                                                 \
    X(webhook_replay, (store_t * st, const char *target, uint64_t since_id, uint64_t *n),          \
      (st, target, since_id, n))                                                                   \
    X(webhook_count, (store_t * st, const char *target, int state, uint64_t *n),                   \
      (st, target, state, n))                                                                      \
    X(webhook_enqueue_batch,                                                                       \
      (store_t * st, const char *const *targets, store_event_t *evs, size_t n),                    \
      (st, targets, evs, n))

/* The readers that may run on any thread (their own connection). */
#define STORE_READER_OPS(X)                                                                        \
    X(events_read,                                                                                 \
      (store_t * st, const char *session, uint64_t after, size_t max, store_event_t *out,          \
       size_t *n, uint64_t *pruned),                                                               \
      (st, session, after, max, out, n, pruned))                                                   \
    X(event_get, (store_t * st, uint64_t id, store_event_t * out), (st, id, out))

/* A backend: its operations and how to close a handle. */
typedef struct {
    void (*close)(store_t *st);
#define STORE_OP_FIELD(name, params, args) int(*name) params;
    STORE_WRITER_OPS(STORE_OP_FIELD)
    STORE_READER_OPS(STORE_OP_FIELD)
#undef STORE_OP_FIELD
} store_backend_t;

/* The two backends (store.c with events.c and webhooks.c; pg.c with
 * pg_events.c and pg_webhooks.c). Their operations are sq_<name> and
 * pg_<name>. */
extern const store_backend_t store_sqlite_backend;
extern const store_backend_t store_pg_backend;

#define STORE_OP_DECL(name, params, args) int sq_##name params;
STORE_WRITER_OPS(STORE_OP_DECL)
STORE_READER_OPS(STORE_OP_DECL)
#undef STORE_OP_DECL
#define STORE_OP_DECL(name, params, args) int pg_##name params;
STORE_WRITER_OPS(STORE_OP_DECL)
STORE_READER_OPS(STORE_OP_DECL)
#undef STORE_OP_DECL

/* Statements of the hot paths (one per webhook delivery, one set per group
 * commit), prepared once on the writer and kept (store_stmt). */
enum {
    STORE_STMT_WH_NEXT,
    STORE_STMT_WH_INS_EVENT,
    STORE_STMT_WH_INS_DELIVERY,
    STORE_STMT_WH_DELIVERED,
    STORE_STMT_EV_INSERT,
    STORE_STMT_EV_HEAD,
    STORE_STMT_EV_OUTBOX,
    STORE_STMT_COUNT,
};

/* The PostgreSQL statements kept prepared on a connection (pg_prepared). */
enum {
    PG_STMT_EV_APPEND,
    PG_STMT_FENCE,
    PG_STMT_WH_NEXT,
    PG_STMT_WH_DELIVERED,
    PG_STMT_EV_READ_SESSION,
    PG_STMT_EV_READ_ALL,
    PG_STMT_COUNT,
};

/* One PostgreSQL connection with what it keeps between calls. */
typedef struct {
    PGconn *conn;
    int prepared[PG_STMT_COUNT]; /* 1 once prepared on this connection */
    int sent;                    /* statements the current call has run (0: none yet) */
    int retry;                   /* the call's first statement found the connection broken */
    int broken;                  /* a statement timed out: reset before the next call */
    int timeout_ms;              /* the client-side bound of one statement */
    char sqlstate[6]; /* SQLSTATE of the last failure (kept until the caller clears it) */
} pg_conn_t;

/* A session's lease epoch held by this node (store_fence_set). */
typedef struct {
    char *session;
    uint64_t epoch;
} store_fence_t;

struct store {
    const store_backend_t *be;
    /* SQLite: the file's path. PostgreSQL: the URL, password redacted. */
    char *path;
    /* SQLite: the writer, used from the owner's thread */
    sqlite3 *db;
    /* A read-only connection for the readers that may run on any thread
     * (store_events_read, store_event_get), one at a time. */
    sqlite3 *rd;
    pthread_mutex_t rd_mu;                /* for rd, or for pgr on PostgreSQL */
    sqlite3_stmt *stmt[STORE_STMT_COUNT]; /* on the writer; finalized by store_close */
    /* PostgreSQL: the writer and the readers' connection; the background
     * appender's (store_events_append_bg: opened on first use with url, the
     * URL as given, wiped on close). */
    pg_conn_t pgw, pgr, pga;
    uint64_t append_retries; /* appends run again after a transient failure (atomic) */
    uint64_t fenced_writes;  /* writes and events refused by the fence (atomic) */
    pthread_mutex_t bg_mu;   /* for pga */
    char *url;
    /* Cluster mode (PostgreSQL): this node's id (NULL: writes not fenced),
     * the epochs it holds, and who is told of a refused write. */
    char *node_id;
    pthread_mutex_t fence_mu; /* guards fences: the background appender reads them */
    pthread_mutex_t w_mu;     /* recursive: held by each writer's operation (dispatch.c) */
    store_fence_t *fences;
    size_t nfences, capfences;
    void (*on_fenced)(void *arg, const char *session);
    void *on_fenced_arg;
};

/* --- SQLite helpers (store.c) --- */

/* The writer's kept statement `which` for `sql` (always the same SQL for a
 * given `which`): prepared on first use, else reset with its bindings
 * cleared. The caller resets it when done (a SELECT left unreset would hold
 * its read snapshot). NULL when it cannot be prepared. */
sqlite3_stmt *store_stmt(store_t *st, int which, const char *sql);

/* Runs SQL without results on the writer. 0 or STORE_EIO. */
int store_exec(store_t *st, const char *sql);

/* Steps a prepared write statement inside its own transaction and
 * finalizes it. 0 or STORE_EIO. */
int store_run_tx(store_t *st, sqlite3_stmt *s);

/* Binds text, or NULL when t is NULL. */
void store_bind_opt_text(sqlite3_stmt *s, int i, const char *t);

/* A malloc'd copy of a text column (NULL when the column is NULL). */
char *store_text_dup(sqlite3_stmt *s, int col);

/* --- the handle's cluster state (dispatch.c) --- */

/* Readies the handle's own state (its fence lock): by both backends' open,
 * on a zeroed handle. */
void store_init_common(store_t *st);

/* The epoch this node holds for `session` (0: none). Any thread. */
uint64_t store_fence_epoch(store_t *st, const char *session);

/* Tells the on_fenced callback (if any) that a write of `session` was
 * refused. */
void store_fenced(store_t *st, const char *session);

/* Counts n writes (an event each) the fence refused, whether or not the
 * callback runs (store_fenced_writes). */
void store_count_fenced(store_t *st, size_t n);

/* --- PostgreSQL helpers (pg.c) --- */

/* store_open_url for a postgres:// or postgresql:// URL. */
int pg_open(const char *url, store_t **out, char *err, size_t errlen);

/* Parameters of one statement: text values (NULL = SQL NULL) with their
 * lengths and formats (1 = binary, for bytea). */
typedef struct {
    int n;
    const char *v[20];
    int len[20];
    int fmt[20];
    Oid type[20];
    char num[20][24]; /* room for integers written as text */
} pg_params_t;

/* Appends a parameter: text (NULL: SQL NULL), text of `len` bytes (not
 * NUL-terminated), bytea (b NULL: SQL NULL), bigint. */
void pg_p_text(pg_params_t *p, const char *t);
void pg_p_textn(pg_params_t *p, const char *t, size_t len);
void pg_p_bytes(pg_params_t *p, const void *b, size_t len);
void pg_p_i64(pg_params_t *p, int64_t v);

/* Runs one statement (sql with $n parameters, or, when name is set, the
 * statement kept prepared under that index on `c`) and waits for its
 * result at most the connection's timeout. Returns the result when it
 * has the status expected (PGRES_COMMAND_OK or PGRES_TUPLES_OK), else NULL
 * (the error logged; the connection marked for a reset when broken).
 * The caller PQclear()s. */
PGresult *pg_run(pg_conn_t *c, int which, const char *sql, const pg_params_t *p);

/* pg_run for statements without rows: 0 or STORE_EIO; *changed (may be
 * NULL) gets the number of rows the statement changed. */
int pg_cmd(pg_conn_t *c, int which, const char *sql, const pg_params_t *p, uint64_t *changed);

/* BEGIN, COMMIT, ROLLBACK. 0 or STORE_EIO. */
int pg_begin(pg_conn_t *c);

/* BEGIN for a transaction that stores events: it also takes the event
 * log's lock (transaction-scoped), so ids commit in increasing order. */
int pg_begin_events(pg_conn_t *c);
int pg_commit(pg_conn_t *c);
void pg_rollback(pg_conn_t *c);

/* In the writer's open transaction: 0 when this node holds `session`'s
 * lease with the epoch it was given (or cluster mode is off, or session is
 * NULL or ""), STORE_EFENCED when not, STORE_EIO. */
int pg_fence(store_t *st, const char *session);

/* The same check on connection `c` (the background appender's). */
int pg_fence_on(store_t *st, pg_conn_t *c, const char *session);

/* pg_fence_on for a given epoch (0: the one store_fence_set gave): the
 * lease row is locked FOR SHARE until the transaction ends. Callers that
 * check several sessions in one transaction do so in strcmp order, the
 * order the cluster's renewal locks them in (no deadlock between them). */
int pg_fence_epoch_on(store_t *st, pg_conn_t *c, const char *session, uint64_t epoch);

/* 1 when the last statement that failed on `c` failed for a reason that
 * retrying its transaction can cure (a deadlock, a serialization failure). */
int pg_transient(const pg_conn_t *c);

/* store_events_append's work on connection `c`, inside its own transaction
 * (pg_events.c). */
int pg_events_append_on(store_t *st, pg_conn_t *c, store_event_t *ev, size_t n);

/* store_events_append_bg on PostgreSQL: the appender's connection (opened
 * on first use), one call at a time. */
int pg_events_append_bg(store_t *st, store_event_t *ev, size_t n);

/* An integer column (0 when NULL), a malloc'd copy of a text column (NULL
 * when NULL; *ok set to 0 when out of memory), a bytea column of exactly
 * len bytes copied to dst (STORE_ECORRUPT otherwise). */
int64_t pg_i64(const PGresult *r, int row, int col);
char *pg_text_dup(const PGresult *r, int row, int col, int *ok);
int pg_blob(const PGresult *r, int row, int col, uint8_t *dst, size_t len);

/* A malloc'd copy of a bytea column's bytes (NULL when NULL; out of
 * memory: NULL with *err = STORE_ENOMEM). */
uint8_t *pg_bytes_dup(const PGresult *r, int row, int col, size_t *len, int *err);

/* Starts (pg_call_begin) and ends a reader's call on c: 1 when the call
 * should run again once on a connection reset now (it found the
 * connection broken on its first statement). */
void pg_call_begin(pg_conn_t *c);
int pg_call_retry(pg_conn_t *c);

/* The consistency checks of store_check, shared by both backends (each
 * row: a query counting the rows in the wrong, its message). */
extern const char *const store_checks[][2];
extern const size_t store_nchecks;

#endif
