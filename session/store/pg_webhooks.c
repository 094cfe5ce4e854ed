/* Webhook targets and their outbox on PostgreSQL (see store.h, "webhook
 * targets and their outbox", and webhooks.c, its SQLite twin). The head of
 * a target's queue (store_webhook_next) and the deletion of delivered rows
 * run as statements kept prepared on the writer's connection. Not fenced:
 * any node may manage targets and deliver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/store/store_internal.h"

int pg_webhook_put(store_t *st, const store_webhook_t *t)
{
    if (!t || !t->id[0] || !t->url || !*t->url || !t->secret || !t->secret_len)
        return STORE_EINVAL;
    pg_params_t p = {0};
    pg_p_text(&p, t->id);
    pg_p_text(&p, t->url);
    pg_p_bytes(&p, t->secret, t->secret_len);
    pg_p_text(&p, t->session);
    pg_p_text(&p, t->events ? t->events : "");
    /* the other nodes reload their targets (wagw_webhooks) */
    return pg_cmd(&st->pgw, -1,
                  "WITH t AS (INSERT INTO webhook_targets (id, url, secret, session, events)"
                  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET url = excluded.url,"
                  " secret = excluded.secret, session = excluded.session,"
                  " events = excluded.events, deleting = 0 RETURNING id)"
                  " SELECT pg_notify('wagw_webhooks', id) FROM t",
                  &p, NULL);
}

int pg_webhook_delete(store_t *st, const char *id)
{
    pg_params_t p = {0};
    pg_p_text(&p, id);
    uint64_t changed = 0;
    int rc = pg_cmd(&st->pgw, -1,
                    "WITH t AS (UPDATE webhook_targets SET deleting = 1 WHERE id = $1"
                    " AND deleting = 0 RETURNING id) SELECT pg_notify('wagw_webhooks', id) FROM t",
                    &p, &changed); /* the queue goes by store_webhook_purge */
    return !rc && changed == 0 ? STORE_ENOTFOUND : rc;
}

int pg_webhooks_list(store_t *st, store_webhook_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* SQLite orders a second's targets by insertion (rowid); here by id */
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT id, url, secret, session, events, created_at FROM webhook_targets"
                         " WHERE deleting = 0 ORDER BY created_at, id",
                         NULL);
    if (!r)
        return STORE_EIO;
    int rows = PQntuples(r), rc = 0;
    store_webhook_t *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
    size_t k = 0;
    if (!v)
        rc = STORE_ENOMEM;
    for (int i = 0; !rc && i < rows; i++) {
        store_webhook_t *t = &v[k];
        const char *id = PQgetvalue(r, i, 0);
        if (!*id || strlen(id) >= sizeof(t->id)) {
            rc = STORE_ECORRUPT;
            break;
        }
        snprintf(t->id, sizeof(t->id), "%s", id);
        k++;
        int ok = 1;
        t->url = pg_text_dup(r, i, 1, &ok);
        t->secret = pg_bytes_dup(r, i, 2, &t->secret_len, &rc);
        t->session = pg_text_dup(r, i, 3, &ok);
        t->events = pg_text_dup(r, i, 4, &ok);
        t->created_at = pg_i64(r, i, 5);
        if (!rc && (!ok || !t->url || !t->events))
            rc = STORE_ENOMEM;
        if (!rc && !t->secret_len)
            rc = STORE_ECORRUPT;
    }
    PQclear(r);
    if (rc) {
        store_webhooks_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int pg_webhook_next(store_t *st, const char *target, uint64_t after, int want_body,
                    store_delivery_t *out)
{
    memset(out, 0, sizeof(*out));
    pg_params_t p = {0};
    pg_p_text(&p, target);
    pg_p_i64(&p, (int64_t)after);
    PGresult *r = pg_run(&st->pgw, PG_STMT_WH_NEXT,
                         "SELECT d.event_id, d.attempts, d.next_at, e.ts, e.body"
                         " FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
                         " WHERE d.target = $1 AND d.state = 0 AND d.event_id > $2"
                         " ORDER BY d.event_id LIMIT 1",
                         &p);
    if (!r)
        return STORE_EIO;
    int rc = PQntuples(r) > 0 ? 0 : STORE_ENOTFOUND;
    if (!rc) {
        out->event_id = (uint64_t)pg_i64(r, 0, 0);
        out->attempts = (uint32_t)pg_i64(r, 0, 1);
        out->next_at_ms = pg_i64(r, 0, 2);
        out->ts_ms = pg_i64(r, 0, 3);
        if (want_body) {
            int ok = 1;
            out->body_len = (size_t)PQgetlength(r, 0, 4);
            out->body = pg_text_dup(r, 0, 4, &ok);
            if (!out->body)
                rc = STORE_ENOMEM;
        }
    }
    PQclear(r);
    return rc;
}

/* Updates one delivery's state, attempts, next_at and error. */
static int set_state(store_t *st, const char *target, uint64_t event_id, int state,
                     uint32_t attempts, int64_t next_at_ms, const char *error)
{
    pg_params_t p = {0};
    pg_p_text(&p, target);
    pg_p_i64(&p, (int64_t)event_id);
    pg_p_i64(&p, state);
    pg_p_i64(&p, attempts);
    pg_p_i64(&p, next_at_ms);
    pg_p_text(&p, error);
    return pg_cmd(&st->pgw, -1,
                  "UPDATE webhook_deliveries SET state = $3, attempts = $4, next_at = $5,"
                  " last_error = $6 WHERE target = $1 AND event_id = $2",
                  &p, NULL);
}

int pg_webhook_failed(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                      int64_t next_at_ms, const char *error)
{
    return set_state(st, target, event_id, STORE_DELIVERY_PENDING, attempts, next_at_ms, error);
}

int pg_webhook_dead(store_t *st, const char *target, uint64_t event_id, uint32_t attempts,
                    const char *error)
{
    return set_state(st, target, event_id, STORE_DELIVERY_DEAD, attempts, 0, error);
}

int pg_webhook_delivered(store_t *st, const char *const *targets, const uint64_t *event_ids,
                         size_t n)
{
    if (n == 0)
        return 0;
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        pg_params_t p = {0};
        pg_p_text(&p, targets[i]);
        pg_p_i64(&p, (int64_t)event_ids[i]);
        rc = pg_cmd(&st->pgw, PG_STMT_WH_DELIVERED,
                    "DELETE FROM webhook_deliveries WHERE target = $1 AND event_id = $2", &p, NULL);
    }
    if (!rc)
        rc = pg_commit(&st->pgw);
    if (rc)
        pg_rollback(&st->pgw);
    return rc;
}

int pg_webhook_replay(store_t *st, const char *target, uint64_t since_id, uint64_t *n)
{
    *n = 0;
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    pg_params_t p = {0};
    pg_p_text(&p, target);
    uint64_t dead = 0, again = 0;
    int rc = pg_cmd(&st->pgw, -1,
                    "UPDATE webhook_deliveries SET state = 0, attempts = 0, next_at = 0,"
                    " last_error = NULL WHERE target = $1 AND state = 2",
                    &p, &dead);
    if (!rc && since_id > 0) {
        pg_params_t q = {0};
        pg_p_text(&q, target);
        pg_p_i64(&q, (int64_t)since_id);
        rc = pg_cmd(&st->pgw, -1,
                    "INSERT INTO webhook_deliveries (target, event_id)"
                    " SELECT t.id, e.id FROM webhook_targets t CROSS JOIN events e"
                    " WHERE t.id = $1 AND e.id > $2 AND e.session IS NOT NULL"
                    " AND (t.session IS NULL OR t.session = e.session)"
                    " AND (t.events = '' OR strpos(t.events, ' ' || e.type || ' ') > 0)"
                    " ON CONFLICT DO NOTHING",
                    &q, &again);
    }
    if (!rc)
        rc = pg_commit(&st->pgw);
    if (rc) {
        pg_rollback(&st->pgw);
        return rc;
    }
    *n = dead + again;
    return 0;
}

int pg_webhook_count(store_t *st, const char *target, int state, uint64_t *n)
{
    *n = 0;
    pg_params_t p = {0};
    pg_p_text(&p, target);
    pg_p_i64(&p, state);
    PGresult *r =
        pg_run(&st->pgw, -1,
               "SELECT count(*) FROM webhook_deliveries WHERE target = $1 AND state = $2", &p);
    if (!r)
        return STORE_EIO;
    *n = (uint64_t)pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_webhook_enqueue_batch(store_t *st, const char *const *targets, store_event_t *evs, size_t n)
{
    if (n == 0)
        return 0;
    if (!targets || !evs)
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!targets[i] || evs[i].session || !evs[i].type || !evs[i].body)
            return STORE_EINVAL;
    if (pg_begin_events(&st->pgw))
        return STORE_EIO;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        store_event_t *ev = &evs[i];
        pg_params_t p = {0};
        pg_p_i64(&p, (int64_t)ev->seq);
        pg_p_i64(&p, ev->ts_ms);
        pg_p_text(&p, ev->type);
        pg_p_textn(&p, ev->body, ev->body_len);
        pg_p_text(&p, targets[i]);
        PGresult *r = pg_run(&st->pgw, -1,
                             "WITH e AS (INSERT INTO events (session, seq, ts, type, body)"
                             "  VALUES (NULL, $1, $2, $3, $4) RETURNING id),"
                             " d AS (INSERT INTO webhook_deliveries (target, event_id)"
                             "  SELECT t.id, e.id FROM webhook_targets t, e"
                             "  WHERE t.id = $5 AND t.deleting = 0 RETURNING 1)"
                             " SELECT (SELECT id FROM e), (SELECT count(*) FROM d)",
                             &p);
        if (!r) {
            rc = STORE_EIO;
            break;
        }
        ev->id = (uint64_t)pg_i64(r, 0, 0);
        if (pg_i64(r, 0, 1) != 1)
            rc = STORE_ENOTFOUND;
        PQclear(r);
    }
    if (!rc)
        rc = pg_commit(&st->pgw);
    if (rc) {
        pg_rollback(&st->pgw);
        for (size_t i = 0; i < n; i++)
            evs[i].id = 0;
    }
    return rc;
}

int pg_webhook_purge(store_t *st, size_t batch, size_t *deleted, int *more)
{
    *deleted = 0;
    *more = 0;
    PGresult *r =
        pg_run(&st->pgw, -1,
               "SELECT id FROM webhook_targets WHERE deleting = 1 ORDER BY id LIMIT 2", NULL);
    if (!r)
        return STORE_EIO;
    char id[2][64];
    int n = PQntuples(r) < 2 ? PQntuples(r) : 2;
    for (int i = 0; i < n; i++)
        snprintf(id[i], sizeof(id[0]), "%s", PQgetvalue(r, i, 0));
    PQclear(r);
    if (n == 0)
        return 0;
    size_t lim = batch ? batch : 5000;
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    pg_params_t p = {0};
    pg_p_text(&p, id[0]);
    pg_p_i64(&p, (int64_t)lim);
    uint64_t del = 0;
    int rc = pg_cmd(&st->pgw, -1,
                    "DELETE FROM webhook_deliveries WHERE target = $1 AND event_id IN"
                    " (SELECT event_id FROM webhook_deliveries WHERE target = $1 LIMIT $2)",
                    &p, &del);
    if (!rc && del < lim) { /* the queue is empty: the target goes */
        pg_params_t q = {0};
        pg_p_text(&q, id[0]);
        rc = pg_cmd(&st->pgw, -1, "DELETE FROM webhook_targets WHERE id = $1 AND deleting = 1", &q,
                    NULL);
        *more = n > 1;
    } else {
        *more = 1;
    }
    if (!rc)
        rc = pg_commit(&st->pgw);
    if (rc) {
        pg_rollback(&st->pgw);
        *more = 0;
        return rc;
    }
    *deleted = (size_t)del;
    return 0;
}
