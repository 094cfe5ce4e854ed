/* Webhook targets and their outbox in the store (see store.h, "webhook
 * targets and their outbox"). The sender in session/webhook/ keeps only the
 * head of each target in memory: store_webhook_next finds it through the
 * index webhook_deliveries_next (target, state, event_id), so a backlog of
 * any size costs one index lookup per delivery and no memory. Delivered
 * rows are deleted in batches (store_webhook_delivered). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/store/store_internal.h"

/* Prepares on the writer; finalizes and returns STORE_EIO on failure. */
static int prep(store_t *st, const char *sql, sqlite3_stmt **s)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK) {
        sqlite3_finalize(*s);
        *s = NULL;
        return STORE_EIO;
    }
    return 0;
}

int sq_webhook_put(store_t *st, const store_webhook_t *t)
{
    if (!t || !t->id[0] || !t->url || !*t->url || !t->secret || !t->secret_len)
        return STORE_EINVAL;
    sqlite3_stmt *s;
    if (prep(st,
             "INSERT INTO webhook_targets (id, url, secret, session, events)"
             " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET url = excluded.url,"
             " secret = excluded.secret, session = excluded.session, events = excluded.events,"
             " deleting = 0",
             &s))
        return STORE_EIO;
    sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, t->url, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, t->secret, (int)t->secret_len, SQLITE_STATIC);
    store_bind_opt_text(s, 4, t->session);
    sqlite3_bind_text(s, 5, t->events ? t->events : "", -1, SQLITE_STATIC);
    return store_run_tx(st, s);
}

int sq_webhook_delete(store_t *st, const char *id)
{
    sqlite3_stmt *s;
    if (prep(st, "UPDATE webhook_targets SET deleting = 1 WHERE id = ?1 AND deleting = 0", &s))
        return STORE_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = store_run_tx(st, s); /* the queue goes by store_webhook_purge */
    if (rc)
        return rc;
    return sqlite3_changes(st->db) > 0 ? 0 : STORE_ENOTFOUND;
}

int sq_webhooks_list(store_t *st, store_webhook_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    if (prep(st,
             "SELECT id, url, secret, session, events, created_at FROM webhook_targets"
             " WHERE deleting = 0 ORDER BY created_at, rowid",
             &s))
        return STORE_EIO;
    store_webhook_t *v = NULL;
    size_t k = 0, cap = 0;
    int rc = 0, step;
    while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 8;
            store_webhook_t *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                rc = STORE_ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        store_webhook_t *t = &v[k];
        memset(t, 0, sizeof(*t));
        const unsigned char *id = sqlite3_column_text(s, 0);
        int idlen = sqlite3_column_bytes(s, 0);
        if (!id || idlen <= 0 || (size_t)idlen >= sizeof(t->id)) {
            rc = STORE_ECORRUPT;
            break;
        }
        memcpy(t->id, id, (size_t)idlen);
        k++;
        t->url = store_text_dup(s, 1);
        int kl = sqlite3_column_bytes(s, 2);
        const void *key = sqlite3_column_blob(s, 2);
        t->secret_len = kl > 0 ? (size_t)kl : 0;
        t->secret = t->secret_len ? malloc(t->secret_len) : NULL;
        if (t->secret)
            memcpy(t->secret, key, t->secret_len);
        t->session = store_text_dup(s, 3);
        t->events = store_text_dup(s, 4);
        t->created_at = sqlite3_column_int64(s, 5);
        if (!t->url || !t->secret || !t->events ||
            (sqlite3_column_type(s, 3) != SQLITE_NULL && !t->session))
            rc = t->secret_len ? STORE_ENOMEM : STORE_ECORRUPT;
    }
    if (!rc && step != SQLITE_DONE)
        rc = STORE_EIO;
    sqlite3_finalize(s);
    if (rc) {
        store_webhooks_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int sq_webhook_next(store_t *st, const char *target, uint64_t after, int want_body,
                    store_delivery_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = store_stmt(st, STORE_STMT_WH_NEXT,
                                 "SELECT d.event_id, d.attempts, d.next_at, e.ts, e.body"
                                 " FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
                                 " WHERE d.target = ?1 AND d.state = 0 AND d.event_id > ?2"
                                 " ORDER BY d.event_id LIMIT 1");
    if (!s)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
    int step = sqlite3_step(s), rc = 0;
    if (step == SQLITE_ROW) {
        out->event_id = (uint64_t)sqlite3_column_int64(s, 0);
        out->attempts = (uint32_t)sqlite3_column_int64(s, 1);
        out->next_at_ms = sqlite3_column_int64(s, 2);
        out->ts_ms = sqlite3_column_int64(s, 3);
        if (want_body) {
            out->body_len = (size_t)sqlite3_column_bytes(s, 4);
            out->body = store_text_dup(s, 4);
            if (!out->body)
                rc = STORE_ENOMEM;
        }
    } else {
        rc = step == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    sqlite3_reset(s);
    return rc;
}

/* Updates one delivery's state, attempts, next_at and error. */
static int set_state(store_t *st, const char *target, uint64_t event_id, int state,
                     uint32_t attempts, int64_t next_at_ms, const char *error)
{
    sqlite3_stmt *s;
    if (prep(st,
             "UPDATE webhook_deliveries SET state = ?3, attempts = ?4, next_at = ?5,"
             " last_error = ?6 WHERE target = ?1 AND event_id = ?2",
             &s))
        return STORE_EIO;
    sqlite3_bind_text(s, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)event_id);
    sqlite3_bind_int(s, 3, state);
    sqlite3_bind_int64(s, 4, attempts);
    sqlite3_bind_int64(s, 5, next_at_ms);
    store_bind_opt_text(s, 6, error);
    return store_run_tx(st, s);
}

int sq_webhook_failed(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                      int64_t next_at_ms, const char *error)
{
    return set_state(st, target, event_id, STORE_DELIVERY_PENDING, attempts, next_at_ms, error);
}

int sq_webhook_dead(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                    const char *error)
{
    return set_state(st, target, event_id, STORE_DELIVERY_DEAD, attempts, 0, error);
}

int sq_webhook_delivered(store_t *st, const char *const *targets, const uint64_t *event_ids,
                         size_t n)
{
    if (n == 0)
        return 0;
    sqlite3_stmt *s =
        store_stmt(st, STORE_STMT_WH_DELIVERED,
                   "DELETE FROM webhook_deliveries WHERE target = ?1 AND event_id = ?2");
    if (!s)
        return STORE_EIO;
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, targets[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)event_ids[i]);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = STORE_EIO;
    }
    sqlite3_reset(s);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc)
        store_exec(st, "ROLLBACK");
    return rc;
}

int sq_webhook_replay(store_t *st, const char *target, uint64_t since_id, uint64_t *n)
{
    *n = 0;
    sqlite3_stmt *dead = NULL, *since = NULL;
    if (prep(st,
             "UPDATE webhook_deliveries SET state = 0, attempts = 0, next_at = 0,"
             " last_error = NULL WHERE target = ?1 AND state = 2",
             &dead) ||
        prep(st,
             "INSERT OR IGNORE INTO webhook_deliveries (target, event_id)"
             " SELECT t.id, e.id FROM webhook_targets t JOIN events e"
             " WHERE t.id = ?1 AND e.id > ?2 AND e.session IS NOT NULL"
             " AND (t.session IS NULL OR t.session = e.session)"
             " AND (t.events = '' OR instr(t.events, ' ' || e.type || ' ') > 0)",
             &since)) {
        sqlite3_finalize(dead);
        return STORE_EIO;
    }
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    if (!rc) {
        sqlite3_bind_text(dead, 1, target, -1, SQLITE_STATIC);
        if (sqlite3_step(dead) != SQLITE_DONE)
            rc = STORE_EIO;
        else
            *n += (uint64_t)sqlite3_changes(st->db);
    }
    if (!rc && since_id > 0) {
        sqlite3_bind_text(since, 1, target, -1, SQLITE_STATIC);
        sqlite3_bind_int64(since, 2, (sqlite3_int64)since_id);
        if (sqlite3_step(since) != SQLITE_DONE)
            rc = STORE_EIO;
        else
            *n += (uint64_t)sqlite3_changes(st->db);
    }
    sqlite3_finalize(dead);
    sqlite3_finalize(since);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc) {
        store_exec(st, "ROLLBACK");
        *n = 0;
    }
    return rc;
}

int sq_webhook_count(store_t *st, const char *target, int state, uint64_t *n)
{
    *n = 0;
    sqlite3_stmt *s;
    if (prep(st, "SELECT count(*) FROM webhook_deliveries WHERE target = ?1 AND state = ?2", &s))
        return STORE_EIO;
    sqlite3_bind_text(s, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : STORE_EIO;
    if (!rc)
        *n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc;
}

int sq_webhook_enqueue_batch(store_t *st, const char *const *targets, store_event_t *evs, size_t n)
{
    if (n == 0)
        return 0;
    if (!targets || !evs)
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!targets[i] || evs[i].session || !evs[i].type || !evs[i].body)
            return STORE_EINVAL;
    sqlite3_stmt *ins = store_stmt(
        st, STORE_STMT_WH_INS_EVENT,
        "INSERT INTO events (session, seq, ts, type, body) VALUES (NULL, ?1, ?2, ?3, ?4)");
    sqlite3_stmt *out = ins ? store_stmt(st, STORE_STMT_WH_INS_DELIVERY,
                                         "INSERT INTO webhook_deliveries (target, event_id)"
                                         " SELECT id, ?2 FROM webhook_targets"
                                         " WHERE id = ?1 AND deleting = 0")
                            : NULL;
    if (!out)
        return STORE_EIO;
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    for (size_t i = 0; !rc && i < n; i++) {
        store_event_t *ev = &evs[i];
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)ev->seq);
        sqlite3_bind_int64(ins, 2, ev->ts_ms);
        sqlite3_bind_text(ins, 3, ev->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, ev->body, (int)ev->body_len, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = STORE_EIO;
            break;
        }
        ev->id = (uint64_t)sqlite3_last_insert_rowid(st->db);
        sqlite3_reset(out);
        sqlite3_bind_text(out, 1, targets[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(out, 2, (sqlite3_int64)ev->id);
        if (sqlite3_step(out) != SQLITE_DONE)
            rc = STORE_EIO;
        else if (sqlite3_changes(st->db) != 1)
            rc = STORE_ENOTFOUND;
    }
    sqlite3_reset(ins);
    sqlite3_reset(out);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc) {
        store_exec(st, "ROLLBACK");
        for (size_t i = 0; i < n; i++)
            evs[i].id = 0;
    }
    return rc;
}

int sq_webhook_purge(store_t *st, size_t batch, size_t *deleted, int *more)
{
    *deleted = 0;
    *more = 0;
    sqlite3_stmt *pick = NULL, *del = NULL, *gone = NULL;
    if (prep(st, "SELECT id FROM webhook_targets WHERE deleting = 1 LIMIT 2", &pick))
        return STORE_EIO;
    char id[2][64];
    int n = 0;
    while (n < 2 && sqlite3_step(pick) == SQLITE_ROW)
        snprintf(id[n++], sizeof(id[0]), "%s", (const char *)sqlite3_column_text(pick, 0));
    sqlite3_finalize(pick);
    if (n == 0)
        return 0;
    if (prep(st,
             "DELETE FROM webhook_deliveries WHERE target = ?1 AND event_id IN"
             " (SELECT event_id FROM webhook_deliveries WHERE target = ?1 LIMIT ?2)",
             &del) ||
        prep(st, "DELETE FROM webhook_targets WHERE id = ?1 AND deleting = 1", &gone)) {
        sqlite3_finalize(del);
        return STORE_EIO;
    }
    int rc = store_exec(st, "BEGIN IMMEDIATE");
    if (!rc) {
        sqlite3_bind_text(del, 1, id[0], -1, SQLITE_STATIC);
        sqlite3_bind_int64(del, 2, (sqlite3_int64)(batch ? batch : 5000));
        if (sqlite3_step(del) != SQLITE_DONE)
            rc = STORE_EIO;
        else
            *deleted = (size_t)sqlite3_changes(st->db);
    }
    if (!rc && *deleted < (batch ? batch : 5000)) { /* the queue is empty: the target goes */
        sqlite3_bind_text(gone, 1, id[0], -1, SQLITE_STATIC);
        if (sqlite3_step(gone) != SQLITE_DONE)
            rc = STORE_EIO;
        *more = n > 1;
    } else {
        *more = 1;
    }
    sqlite3_finalize(del);
    sqlite3_finalize(gone);
    if (!rc)
        rc = store_exec(st, "COMMIT");
    if (rc) {
        store_exec(st, "ROLLBACK");
        *deleted = 0;
    }
    return rc;
}
