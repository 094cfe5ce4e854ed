/* The event log of the store (see store.h, "the event log"): appending a
 * group of events with their webhook deliveries in one transaction, reading
 * them back from any thread through the read-only connection, and the
 * retention that keeps the log bounded. event_heads keeps, per session
 * name, the last seq given and the highest seq retention deleted; the row
 * with the name '' (never a session name) keeps the highest global id
 * deleted, for the registry-wide streams. */
#include <stdlib.h>
#include <string.h>

#include "session/store/store_internal.h"

int sq_events_last_seq(store_t *st, const char *session, uint64_t *seq)
{
    sqlite3_stmt *s = NULL;
    *seq = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT last_seq FROM event_heads WHERE session = ?1", -1, &s,
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *seq = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : STORE_EIO;
}

int sq_events_last_seqs(store_t *st, store_seq_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT session, last_seq FROM event_heads"
                           " WHERE session <> '' AND last_seq > 0",
                           -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    store_seq_t *v = NULL;
    size_t k = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            store_seq_t *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv)
                goto nomem;
            v = nv;
            cap = ncap;
        }
        const char *name = (const char *)sqlite3_column_text(s, 0);
        v[k].session = strdup(name ? name : "");
        if (!v[k].session)
            goto nomem;
        v[k].seq = (uint64_t)sqlite3_column_int64(s, 1);
        k++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        store_seqs_free(v, k);
        return STORE_EIO;
    }
    *out = v;
    *n = k;
    return 0;
nomem:
    sqlite3_finalize(s);
    store_seqs_free(v, k);
    return STORE_ENOMEM;
}

/* The statements of an append (kept prepared on the writer). */
typedef struct {
    sqlite3_stmt *ins, *head, *outbox;
} append_stmts_t;

static int append_one(store_t *st, append_stmts_t *a, store_event_t *e)
{
    sqlite3_reset(a->ins);
    sqlite3_reset(a->head);
    sqlite3_reset(a->outbox);
    store_bind_opt_text(a->ins, 1, e->session);
    sqlite3_bind_int64(a->ins, 2, (sqlite3_int64)e->seq);
    sqlite3_bind_int64(a->ins, 3, e->ts_ms);
    sqlite3_bind_text(a->ins, 4, e->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(a->ins, 5, e->body, (int)e->body_len, SQLITE_STATIC);
    if (sqlite3_step(a->ins) != SQLITE_DONE)
        return STORE_EIO;
    e->id = (uint64_t)sqlite3_last_insert_rowid(st->db);
    if (e->session) {
        /* the seq only goes up: a lower one means two writers */
        sqlite3_bind_text(a->head, 1, e->session, -1, SQLITE_STATIC);
        sqlite3_bind_int64(a->head, 2, (sqlite3_int64)e->seq);
        if (sqlite3_step(a->head) != SQLITE_DONE || sqlite3_changes(st->db) != 1)
            return STORE_EINVAL;
    }
    sqlite3_bind_int64(a->outbox, 1, (sqlite3_int64)e->id);
    store_bind_opt_text(a->outbox, 2, e->session);
    sqlite3_bind_text(a->outbox, 3, e->type, -1, SQLITE_STATIC);
    return sqlite3_step(a->outbox) == SQLITE_DONE ? 0 : STORE_EIO;
}

int sq_events_append(store_t *st, store_event_t *ev, size_t n)
{
    if (n == 0)
        return 0;
    append_stmts_t a;
    a.ins = store_stmt(st, STORE_STMT_EV_INSERT,
                       "INSERT INTO events (session, seq, ts, type, body)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)");
    a.head = store_stmt(st, STORE_STMT_EV_HEAD,
                        "INSERT INTO event_heads (session, last_seq) VALUES (?1, ?2)"
                        " ON CONFLICT (session) DO UPDATE SET last_seq = excluded.last_seq"
                        " WHERE excluded.last_seq > event_heads.last_seq");
    a.outbox = store_stmt(st, STORE_STMT_EV_OUTBOX,
                          "INSERT INTO webhook_deliveries (target, event_id)"
                          " SELECT id, ?1 FROM webhook_targets"
                          " WHERE ?2 IS NOT NULL AND deleting = 0"
                          " AND (session IS NULL OR session = ?2)"
                          " AND (events = '' OR instr(events, ' ' || ?3 || ' ') > 0)");
    if (!a.ins || !a.head || !a.outbox)
        return STORE_EIO;
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    for (size_t i = 0; !rc && i < n; i++)
        rc = append_one(st, &a, &ev[i]);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc) {
        store_exec(st, "ROLLBACK");
        for (size_t i = 0; i < n; i++)
            ev[i].id = 0;
    }
    return rc;
}

/* Fills one event from a row (id, session, seq, ts, type, body). */
static int event_row(sqlite3_stmt *s, store_event_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = (uint64_t)sqlite3_column_int64(s, 0);
    e->session = store_text_dup(s, 1);
    e->seq = (uint64_t)sqlite3_column_int64(s, 2);
    e->ts_ms = sqlite3_column_int64(s, 3);
    e->type = store_text_dup(s, 4);
    e->body_len = (size_t)sqlite3_column_bytes(s, 5);
    e->body = store_text_dup(s, 5);
    if (!e->type || !e->body || (sqlite3_column_type(s, 1) != SQLITE_NULL && !e->session)) {
        store_events_free(e, 1);
        return STORE_ENOMEM;
    }
    return 0;
}

static int read_pruned(sqlite3 *db, const char *session, uint64_t *pruned)
{
    sqlite3_stmt *s = NULL;
    *pruned = 0;
    if (sqlite3_prepare_v2(db, "SELECT pruned_seq FROM event_heads WHERE session = ?1", -1, &s,
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    sqlite3_bind_text(s, 1, session ? session : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *pruned = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : STORE_EIO;
}

int sq_events_read(store_t *st, const char *session, uint64_t after, size_t max, store_event_t *out,
                   size_t *n, uint64_t *pruned)
{
    *n = 0;
    *pruned = 0;
    pthread_mutex_lock(&st->rd_mu);
    sqlite3_stmt *s = NULL;
    /* one read transaction: `pruned` and the rows agree */
    int rc = sqlite3_exec(st->rd, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : STORE_EIO;
    if (!rc)
        rc = read_pruned(st->rd, session, pruned);
    const char *sql = session ? "SELECT id, session, seq, ts, type, body FROM events"
                                " WHERE session = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                              : "SELECT id, session, seq, ts, type, body FROM events"
                                " WHERE id > ?2 AND session IS NOT NULL ORDER BY id LIMIT ?3";
    if (!rc && sqlite3_prepare_v2(st->rd, sql, -1, &s, NULL) != SQLITE_OK)
        rc = STORE_EIO;
    if (!rc) {
        if (session)
            sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
        int step;
        while (!rc && *n < max && (step = sqlite3_step(s)) == SQLITE_ROW)
            if (!(rc = event_row(s, &out[*n])))
                (*n)++;
        if (!rc && *n < max && step != SQLITE_DONE)
            rc = STORE_EIO;
    }
    sqlite3_finalize(s);
    sqlite3_exec(st->rd, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->rd_mu);
    if (rc) {
        store_events_free(out, *n);
        *n = 0;
    }
    return rc;
}

int sq_event_get(store_t *st, uint64_t id, store_event_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->rd_mu);
    sqlite3_stmt *s = NULL;
    int rc = STORE_EIO;
    if (sqlite3_prepare_v2(st->rd,
                           "SELECT id, session, seq, ts, type, body FROM events WHERE id = ?1", -1,
                           &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
        int step = sqlite3_step(s);
        rc = step == SQLITE_ROW    ? event_row(s, out)
             : step == SQLITE_DONE ? STORE_ENOTFOUND
                                   : STORE_EIO;
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->rd_mu);
    return rc;
}

/* One integer from `sql` (a single-row query) on the writer. */
static int scalar(store_t *st, const char *sql, uint64_t *n)
{
    sqlite3_stmt *s = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : STORE_EIO;
}

int sq_events_count(store_t *st, uint64_t *n)
{
    return scalar(st, "SELECT count(*) FROM events", n);
}

int sq_events_max_id(store_t *st, uint64_t *id)
{
    return scalar(st, "SELECT COALESCE(max(id), 0) FROM events", id);
}

/* The prune, in SQL: the candidates are the events beyond the newest
 * max_count of their session or older than the cutoff, except each
 * session's newest and those a pending delivery waits for. Dead deliveries
 * of a deleted event go with it. */
static const char prune_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY, session TEXT, seq INTEGER);"
    "DELETE FROM prune_ids;";

static const char prune_pick[] =
    "INSERT INTO prune_ids (id, session, seq)"
    " SELECT e.id, e.session, e.seq FROM events e"
    " WHERE ((?1 > 0 AND e.session IS NOT NULL AND e.seq <= (SELECT last_seq FROM event_heads h"
    "   WHERE h.session = e.session) - ?1)"
    "  OR (?2 > 0 AND e.ts < ?2)"
    "  OR (e.session IS NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    "   WHERE d.event_id = e.id)))"
    " AND (e.session IS NULL OR e.seq < (SELECT max(seq) FROM events x WHERE x.session = "
    "e.session))"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 0)"
    " ORDER BY e.id LIMIT ?3";

static const char prune_apply[] =
    "DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM prune_ids);"
    "DELETE FROM events WHERE id IN (SELECT id FROM prune_ids);"
    "INSERT INTO event_heads (session, last_seq, pruned_seq)"
    " SELECT session, max(seq), max(seq) FROM prune_ids WHERE session IS NOT NULL GROUP BY session"
    " ON CONFLICT (session) DO UPDATE SET pruned_seq = max(pruned_seq, excluded.pruned_seq);"
    "INSERT INTO event_heads (session, last_seq, pruned_seq)"
    " SELECT '', 0, max(id) FROM prune_ids WHERE session IS NOT NULL HAVING count(*) > 0"
    " ON CONFLICT (session) DO UPDATE SET pruned_seq = max(pruned_seq, excluded.pruned_seq);";

int sq_events_prune(store_t *st, uint64_t max_count, int64_t max_age_ms, int64_t now_ms,
                    size_t batch, size_t *deleted)
{
    *deleted = 0;
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    if (!rc)
        rc = store_exec(st, prune_sql);
    sqlite3_stmt *s = NULL;
    if (!rc && sqlite3_prepare_v2(st->db, prune_pick, -1, &s, NULL) != SQLITE_OK)
        rc = STORE_EIO;
    if (!rc) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)max_count);
        sqlite3_bind_int64(s, 2, max_age_ms > 0 ? now_ms - max_age_ms : 0);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)(batch ? batch : 1000));
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = STORE_EIO;
        else
            *deleted = (size_t)sqlite3_changes(st->db);
    }
    sqlite3_finalize(s);
    if (!rc && *deleted)
        rc = store_exec(st, prune_apply);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc) {
        store_exec(st, "ROLLBACK");
        *deleted = 0;
    }
    return rc;
}
