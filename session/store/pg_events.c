/* The event log on PostgreSQL (see store.h, "the event log", and events.c,
 * its SQLite twin): appending a group of events with their webhook
 * deliveries in one transaction (one kept statement per event; each
 * session's events fenced on their own in cluster mode; NOTIFY
 * wagw_events once per session), reading them back from any thread through
 * the readers' connection, and the retention. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/store/store_internal.h"

int pg_events_last_seq(store_t *st, const char *session, uint64_t *seq)
{
    *seq = 0;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    PGresult *r = pg_run(&st->pgw, -1, "SELECT last_seq FROM event_heads WHERE session = $1", &p);
    if (!r)
        return STORE_EIO;
    if (PQntuples(r) > 0)
        *seq = (uint64_t)pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_events_last_seqs(store_t *st, store_seq_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT session, last_seq FROM event_heads"
                         " WHERE session <> '' AND last_seq > 0",
                         NULL);
    if (!r)
        return STORE_EIO;
    int rows = PQntuples(r);
    store_seq_t *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
    if (!v) {
        PQclear(r);
        return STORE_ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        v[i].session = strdup(PQgetvalue(r, i, 0));
        v[i].seq = (uint64_t)pg_i64(r, i, 1);
        if (!v[i].session) {
            PQclear(r);
            store_seqs_free(v, (size_t)i);
            return STORE_ENOMEM;
        }
    }
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return 0;
}

/* One event, its head and its deliveries in one statement: the event's id,
 * and whether the head moved (1; a seq not above the last one: 0). */
static const char append_sql[] =
    "WITH e AS (INSERT INTO events (session, seq, ts, type, body)"
    "  VALUES ($1, $2, $3, $4, $5) RETURNING id),"
    " h AS (INSERT INTO event_heads (session, last_seq) SELECT $1, $2 WHERE $1 IS NOT NULL"
    "  ON CONFLICT (session) DO UPDATE SET last_seq = excluded.last_seq"
    "  WHERE excluded.last_seq > event_heads.last_seq RETURNING 1),"
    " o AS (INSERT INTO webhook_deliveries (target, event_id)"
    "  SELECT t.id, e.id FROM webhook_targets t, e"
    "  WHERE $1 IS NOT NULL AND t.deleting = 0 AND (t.session IS NULL OR t.session = $1)"
    "  AND (t.events = '' OR strpos(t.events, ' ' || $4 || ' ') > 0))"
    " SELECT (SELECT id FROM e), (SELECT count(*) FROM h)";

static int append_one(pg_conn_t *c, store_event_t *e)
{
    pg_params_t p = {0};
    pg_p_text(&p, e->session);
    pg_p_i64(&p, (int64_t)e->seq);
    pg_p_i64(&p, e->ts_ms);
    pg_p_text(&p, e->type);
    pg_p_textn(&p, e->body, e->body_len);
    PGresult *r = pg_run(c, PG_STMT_EV_APPEND, append_sql, &p);
    if (!r)
        return STORE_EIO;
    int rc = PQntuples(r) == 1 ? 0 : STORE_EIO;
    if (!rc) {
        e->id = (uint64_t)pg_i64(r, 0, 0);
        /* the seq only goes up: a lower one means two writers */
        if (e->session && pg_i64(r, 0, 1) != 1)
            rc = STORE_EINVAL;
    }
    PQclear(r);
    return rc;
}

int pg_events_append(store_t *st, store_event_t *ev, size_t n)
{
    return pg_events_append_on(st, &st->pgw, ev, n);
}

/* The events of one session made under one epoch, within a batch. */
typedef struct {
    const char *session;
    uint64_t epoch;
    int fenced; /* refused: not stored */
    int stale;  /* made under an epoch this node no longer holds */
} fence_group_t;

static int group_cmp(const void *a, const void *b)
{
    const fence_group_t *x = a, *y = b;
    int c = strcmp(x->session, y->session);
    return c ? c : (x->epoch > y->epoch) - (x->epoch < y->epoch);
}

/* The group of event e (it is there: groups_of made it). */
static fence_group_t *group_of(fence_group_t *g, size_t k, const store_event_t *e)
{
    fence_group_t key = {.session = e->session, .epoch = e->epoch};
    return bsearch(&key, g, k, sizeof(*g), group_cmp);
}

/* The distinct (session, epoch) of the batch, sorted (strcmp): the lease
 * rows are locked in that order. */
static size_t groups_of(const store_event_t *ev, size_t n, fence_group_t *g)
{
    size_t m = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].session)
            g[m++] = (fence_group_t){.session = ev[i].session, .epoch = ev[i].epoch};
    qsort(g, m, sizeof(*g), group_cmp);
    for (size_t i = 0; i < m; i++)
        if (!k || group_cmp(&g[k - 1], &g[i]))
            g[k++] = g[i];
    return k;
}

/* One attempt of pg_events_append_on: its transaction, committed or rolled
 * back. 0, STORE_EFENCED (some groups refused: their ids stay 0) or
 * STORE_EIO. */
static int append_once(store_t *st, pg_conn_t *c, store_event_t *ev, size_t n, fence_group_t *g,
                       size_t k)
{
    for (size_t i = 0; i < n; i++)
        ev[i].id = 0;
    int rc = pg_begin_events(c) ? STORE_EIO : 0;
    int any_fenced = 0;
    for (size_t j = 0; !rc && j < k; j++) {
        /* an event made under an older lease than the one held now (or
         * after the lease went) is refused without asking: the session's
         * log goes on from what the newer holder read, never past a hole */
        uint64_t held = st->node_id ? store_fence_epoch(st, g[j].session) : 0;
        g[j].stale = st->node_id && g[j].epoch && g[j].epoch != held;
        int f = g[j].stale ? STORE_EFENCED : pg_fence_epoch_on(st, c, g[j].session, g[j].epoch);
        g[j].fenced = f == STORE_EFENCED;
        any_fenced |= g[j].fenced;
        if (f != STORE_EFENCED)
            rc = f;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (ev[i].session && group_of(g, k, &ev[i])->fenced)
            continue; /* not stored: its id stays 0 */
        rc = append_one(c, &ev[i]);
    }
    for (size_t j = 0; !rc && j < k; j++) {
        if (g[j].fenced || (j && !strcmp(g[j - 1].session, g[j].session) && !g[j - 1].fenced))
            continue; /* once per session stored */
        pg_params_t p = {0};
        pg_p_text(&p, g[j].session);
        rc = pg_cmd(c, -1, "SELECT pg_notify('wagw_events', $1)", &p, NULL);
    }
    if (!rc && pg_commit(c))
        rc = STORE_EIO;
    if (rc) {
        pg_rollback(c);
        for (size_t i = 0; i < n; i++)
            ev[i].id = 0;
        return rc;
    }
    return any_fenced ? STORE_EFENCED : 0;
}

/* Attempts of one append when PostgreSQL ends it for a reason a retry
 * cures (a deadlock it broke, a serialization failure). */
#define APPEND_ATTEMPTS 5

int pg_events_append_on(store_t *st, pg_conn_t *c, store_event_t *ev, size_t n)
{
    if (n == 0)
        return 0;
    fence_group_t *g = calloc(n, sizeof(*g));
    if (!g)
        return STORE_ENOMEM;
    size_t k = groups_of(ev, n, g);
    int rc = STORE_EIO;
    for (int attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
        c->sqlstate[0] = 0;
        rc = append_once(st, c, ev, n, g, k);
        if (rc != STORE_EIO || !pg_transient(c))
            break;
        __atomic_add_fetch(&st->append_retries, 1, __ATOMIC_RELAXED);
        LOG_WARN("store", "postgres: storing %zu event(s) again (attempt %d)", n, attempt + 2);
    }
    if (rc == STORE_EFENCED) {
        size_t refused = 0;
        for (size_t i = 0; i < n; i++)
            refused += ev[i].session && !ev[i].id;
        store_count_fenced(st, refused);
        for (size_t j = 0; j < k; j++)
            if (g[j].fenced && !g[j].stale)
                store_fenced(st, g[j].session); /* the lease held now is gone */
    }
    free(g);
    return rc;
}

/* Fills one event from row i (id, session, seq, ts, type, body). */
static int event_row(const PGresult *r, int i, store_event_t *e)
{
    memset(e, 0, sizeof(*e));
    int ok = 1;
    e->id = (uint64_t)pg_i64(r, i, 0);
    e->session = pg_text_dup(r, i, 1, &ok);
    e->seq = (uint64_t)pg_i64(r, i, 2);
    e->ts_ms = pg_i64(r, i, 3);
    e->type = pg_text_dup(r, i, 4, &ok);
    e->body_len = (size_t)PQgetlength(r, i, 5);
    e->body = pg_text_dup(r, i, 5, &ok);
    if (!ok || !e->type || !e->body) {
        store_events_free(e, 1);
        return STORE_ENOMEM;
    }
    return 0;
}

static int read_once(store_t *st, const char *session, uint64_t after, size_t max,
                     store_event_t *out, size_t *n, uint64_t *pruned)
{
    pg_conn_t *c = &st->pgr;
    /* one snapshot: `pruned` and the rows agree */
    if (pg_cmd(c, -1, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL))
        return STORE_EIO;
    pg_params_t p = {0};
    pg_p_text(&p, session ? session : "");
    PGresult *r = pg_run(c, -1, "SELECT pruned_seq FROM event_heads WHERE session = $1", &p);
    int rc = r ? 0 : STORE_EIO;
    if (r && PQntuples(r) > 0)
        *pruned = (uint64_t)pg_i64(r, 0, 0);
    PQclear(r);
    if (!rc) {
        pg_params_t q = {0};
        if (session)
            pg_p_text(&q, session);
        pg_p_i64(&q, (int64_t)after);
        pg_p_i64(&q, (int64_t)max);
        r = session ? pg_run(c, PG_STMT_EV_READ_SESSION,
                             "SELECT id, session, seq, ts, type, body FROM events"
                             " WHERE session = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                             &q)
                    : pg_run(c, PG_STMT_EV_READ_ALL,
                             "SELECT id, session, seq, ts, type, body FROM events"
                             " WHERE id > $1 AND session IS NOT NULL ORDER BY id LIMIT $2",
                             &q);
        if (!r)
            rc = STORE_EIO;
        for (int i = 0; r && !rc && i < PQntuples(r) && *n < max; i++)
            if (!(rc = event_row(r, i, &out[*n])))
                (*n)++;
        PQclear(r);
    }
    if (rc || pg_cmd(c, -1, "COMMIT", NULL, NULL)) {
        if (c->conn && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
            pg_cmd(c, -1, "ROLLBACK", NULL, NULL);
        if (!rc)
            rc = STORE_EIO;
    }
    if (rc) {
        store_events_free(out, *n);
        *n = 0;
        *pruned = 0;
    }
    return rc;
}

int pg_events_read(store_t *st, const char *session, uint64_t after, size_t max, store_event_t *out,
                   size_t *n, uint64_t *pruned)
{
    *n = 0;
    *pruned = 0;
    pthread_mutex_lock(&st->rd_mu);
    pg_call_begin(&st->pgr);
    int rc = read_once(st, session, after, max, out, n, pruned);
    if (rc < 0 && pg_call_retry(&st->pgr))
        rc = read_once(st, session, after, max, out, n, pruned);
    pthread_mutex_unlock(&st->rd_mu);
    return rc;
}

static int get_once(store_t *st, uint64_t id, store_event_t *out)
{
    pg_params_t p = {0};
    pg_p_i64(&p, (int64_t)id);
    PGresult *r = pg_run(&st->pgr, -1,
                         "SELECT id, session, seq, ts, type, body FROM events WHERE id = $1", &p);
    if (!r)
        return STORE_EIO;
    int rc = PQntuples(r) > 0 ? event_row(r, 0, out) : STORE_ENOTFOUND;
    PQclear(r);
    return rc;
}

int pg_event_get(store_t *st, uint64_t id, store_event_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->rd_mu);
    pg_call_begin(&st->pgr);
    int rc = get_once(st, id, out);
    if (rc < 0 && pg_call_retry(&st->pgr))
        rc = get_once(st, id, out);
    pthread_mutex_unlock(&st->rd_mu);
    return rc;
}

/* One integer from `sql` (a single-row query) on the writer. */
static int scalar(store_t *st, const char *sql, uint64_t *n)
{
    *n = 0;
    PGresult *r = pg_run(&st->pgw, -1, sql, NULL);
    if (!r)
        return STORE_EIO;
    *n = (uint64_t)pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_events_count(store_t *st, uint64_t *n)
{
    return scalar(st, "SELECT count(*) FROM events", n);
}

int pg_events_max_id(store_t *st, uint64_t *id)
{
    return scalar(st, "SELECT COALESCE(max(id), 0) FROM events", id);
}

/* The prune in one statement (events.c's, same rules): the picked events,
 * their deliveries and rows deleted, the heads' pruned_seq raised. */
static const char prune_sql[] =
    "WITH p AS (SELECT e.id, e.session, e.seq FROM events e"
    " WHERE (($1 > 0 AND e.session IS NOT NULL AND e.seq <= (SELECT last_seq FROM event_heads h"
    "   WHERE h.session = e.session) - $1)"
    "  OR ($2 > 0 AND e.ts < $2)"
    "  OR (e.session IS NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    "   WHERE d.event_id = e.id)))"
    " AND (e.session IS NULL OR e.seq < (SELECT max(seq) FROM events x"
    "  WHERE x.session = e.session))"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 0)"
    " ORDER BY e.id LIMIT $3),"
    " dd AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM p)),"
    " de AS (DELETE FROM events WHERE id IN (SELECT id FROM p)),"
    " hs AS (INSERT INTO event_heads (session, last_seq, pruned_seq)"
    "  SELECT session, max(seq), max(seq) FROM p WHERE session IS NOT NULL GROUP BY session"
    "  ON CONFLICT (session) DO UPDATE"
    "  SET pruned_seq = greatest(event_heads.pruned_seq, excluded.pruned_seq)),"
    " ha AS (INSERT INTO event_heads (session, last_seq, pruned_seq)"
    "  SELECT '', 0, max(id) FROM p WHERE session IS NOT NULL HAVING count(*) > 0"
    "  ON CONFLICT (session) DO UPDATE"
    "  SET pruned_seq = greatest(event_heads.pruned_seq, excluded.pruned_seq))"
    " SELECT count(*) FROM p";

int pg_events_prune(store_t *st, uint64_t max_count, int64_t max_age_ms, int64_t now_ms,
                    size_t batch, size_t *deleted)
{
    *deleted = 0;
    pg_params_t p = {0};
    pg_p_i64(&p, (int64_t)max_count);
    pg_p_i64(&p, max_age_ms > 0 ? now_ms - max_age_ms : 0);
    pg_p_i64(&p, (int64_t)(batch ? batch : 1000));
    PGresult *r = pg_run(&st->pgw, -1, prune_sql, &p);
    if (!r)
        return STORE_EIO;
    *deleted = (size_t)pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}
