/* PostgreSQL implementation of the credential store (see store.h), with
 * pg_events.c (the event log) and pg_webhooks.c (webhook targets and the
 * outbox): opening by URL (the password never in a message), the
 * connection's settings and its reset, running statements with a bound on
 * the wait, the migrations (the same schema as SQLite's, under an advisory
 * lock), the fencing of writes by the session's lease, and the credential,
 * pre-key, session, removal and meta operations. Uses libpq, synchronously. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <postgresql/libpq-fe.h>

#include "common/log.h"
#include "session/store/store_internal.h"

/* Type OIDs of the parameters (pg_type.h, stable across versions). */
enum { PG_BYTEA = 17, PG_INT8 = 20, PG_TEXT = 25 };

/* Seconds since the epoch, as SQLite's strftime('%s','now') (truncated). */
#define PG_NOW_S "floor(extract(epoch from now()))::bigint"

/* Migrations, in order: migrations[i] takes the schema from i to i + 1;
 * each is store.c's of the same index in PostgreSQL's types (BLOB: bytea,
 * INTEGER: bigint, AUTOINCREMENT: an identity column). */
static const char *const migrations[] = {
    "CREATE TABLE creds ("
    " session text PRIMARY KEY,"
    " noise_priv bytea NOT NULL, noise_pub bytea NOT NULL,"
    " ident_priv bytea NOT NULL, ident_pub bytea NOT NULL,"
    " spk_id bigint NOT NULL, spk_priv bytea NOT NULL, spk_pub bytea NOT NULL,"
    " spk_sig bytea NOT NULL, reg_id bigint NOT NULL, adv_secret bytea NOT NULL,"
    " next_prekey_id bigint NOT NULL DEFAULT 1,"
    " account bytea, jid text, lid text, push_name text, platform text, business_name text,"
    " updated_at bigint NOT NULL DEFAULT " PG_NOW_S ");"
    "CREATE TABLE prekeys ("
    " session text NOT NULL REFERENCES creds(session) ON DELETE CASCADE,"
    " id bigint NOT NULL, priv bytea NOT NULL, pub bytea NOT NULL,"
    " uploaded bigint NOT NULL DEFAULT 0, PRIMARY KEY (session, id));",
    /* 1 -> 2 */
    "ALTER TABLE creds ADD COLUMN confirmed bigint NOT NULL DEFAULT 1;",
    /* 2 -> 3 */
    "CREATE TABLE sessions ("
    " name text PRIMARY KEY, key_hash bytea, device_name text,"
    " created_at bigint NOT NULL DEFAULT " PG_NOW_S ");"
    "INSERT INTO sessions (name) SELECT session FROM creds;"
    "CREATE TABLE meta ("
    " session text NOT NULL, key text NOT NULL, value bytea NOT NULL,"
    " PRIMARY KEY (session, key));"
    "CREATE TABLE removals ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, session text NOT NULL,"
    " jid text NOT NULL, noise_priv bytea NOT NULL, noise_pub bytea NOT NULL,"
    " created_at bigint NOT NULL DEFAULT " PG_NOW_S ");",
    /* 3 -> 4 */
    "CREATE TABLE events ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, session text, seq bigint NOT NULL,"
    " ts bigint NOT NULL, type text NOT NULL, body text NOT NULL);"
    "CREATE UNIQUE INDEX events_by_session ON events (session, seq);"
    "CREATE INDEX events_by_ts ON events (ts);"
    "CREATE TABLE event_heads ("
    " session text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0,"
    " pruned_seq bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE webhook_targets ("
    " id text PRIMARY KEY, url text NOT NULL, secret bytea NOT NULL, session text,"
    " events text NOT NULL DEFAULT '', deleting bigint NOT NULL DEFAULT 0,"
    " created_at bigint NOT NULL DEFAULT " PG_NOW_S ");"
    "CREATE TABLE webhook_deliveries ("
    " target text NOT NULL REFERENCES webhook_targets(id) ON DELETE CASCADE,"
    " event_id bigint NOT NULL, state bigint NOT NULL DEFAULT 0,"
    " attempts bigint NOT NULL DEFAULT 0, next_at bigint NOT NULL DEFAULT 0,"
    " last_error text, PRIMARY KEY (target, event_id));"
    "CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);"
    "CREATE INDEX webhook_deliveries_next ON webhook_deliveries (target, state, event_id);",
    /* 4 -> 5: the nodes and the sessions' leases (times by the database
     * clock); every session has its lease row */
    "CREATE TABLE nodes ("
    " id text PRIMARY KEY, advertise_url text, started_at timestamptz,"
    " heartbeat_at timestamptz, draining boolean NOT NULL DEFAULT false);"
    "CREATE TABLE leases ("
    " session text PRIMARY KEY, owner text, epoch bigint NOT NULL DEFAULT 0,"
    " expires_at timestamptz, acquired_at timestamptz);"
    "CREATE INDEX leases_by_owner ON leases (owner);"
    "INSERT INTO leases (session) SELECT name FROM sessions;",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

/* The advisory lock key the migrations run under (any constant; "wagw"). */
#define PG_MIGRATION_LOCK "2003265399"

/* How long the server lets one of our transactions sit idle before it ends
 * it (and the connection): ours run their statements back to back, so
 * only a frozen process (SIGSTOP, a paused VM) gets there. Its locks
 * would otherwise keep the lease rows it had locked FOR SHARE from being
 * claimed (the claim skips locked rows) for as long as it is frozen. */
#define PG_IDLE_TX_TIMEOUT_MS 5000

/* The client-side bound of a statement: the server's statement_timeout
 * plus time for the answer to come back; of the migration transaction. */
#define PG_CLIENT_TIMEOUT_MS (STORE_PG_TIMEOUT_MS + 5000)
#define PG_MIGRATE_TIMEOUT_MS 60000

/* --- the password: never in a message --- */

/* Up to four strings to scrub: the password as written in the URL and
 * percent-decoded, from the user info and from a password= parameter. */
typedef struct {
    char *s[4];
    int n;
} secrets_t;

static void secrets_free(secrets_t *k)
{
    for (int i = 0; i < k->n; i++) {
        explicit_bzero(k->s[i], strlen(k->s[i]));
        free(k->s[i]);
    }
    k->n = 0;
}

static int hexdig(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void secrets_add(secrets_t *k, const char *p, size_t len)
{
    if (len == 0 || k->n > 2)
        return;
    char *raw = strndup(p, len), *dec = malloc(len + 1);
    if (!raw || !dec) {
        free(raw);
        free(dec);
        return;
    }
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && i + 2 < len && hexdig(p[i + 1]) >= 0 && hexdig(p[i + 2]) >= 0) {
            dec[j++] = (char)(hexdig(p[i + 1]) << 4 | hexdig(p[i + 2]));
            i += 2;
        } else {
            dec[j++] = p[i];
        }
    }
    dec[j] = 0;
    k->s[k->n++] = raw;
    if (strcmp(raw, dec) && j > 0)
        k->s[k->n++] = dec;
    else
        free(dec);
}

/* The spans of the URL that hold a password: the user info's after its
 * ':' (as libpq reads it: up to the first '@' before any '/'), and the
 * value of each password= parameter. */
static int secret_spans(const char *url, size_t sp[][2], int max)
{
    int k = 0;
    const char *a = strstr(url, "://");
    if (!a)
        return 0;
    a += 3;
    size_t auth = strcspn(a, "@/");
    if (a[auth] == '@') {
        const char *colon = memchr(a, ':', auth);
        if (colon && k < max) {
            sp[k][0] = (size_t)(colon + 1 - url);
            sp[k][1] = (size_t)(a + auth - url);
            k++;
        }
    }
    const char *q = strchr(a, '?');
    while (q && k < max) {
        q++;
        size_t plen = strcspn(q, "&");
        if (!strncmp(q, "password=", 9)) {
            sp[k][0] = (size_t)(q + 9 - url);
            sp[k][1] = (size_t)(q + plen - url);
            k++;
        }
        q = q[plen] ? q + plen : NULL;
    }
    return k;
}

/* The URL with each password replaced by "***" (malloc'd; NULL out of
 * memory), and the secrets to scrub from messages. */
static char *redact_url(const char *url, secrets_t *k)
{
    size_t sp[8][2];
    int n = secret_spans(url, sp, 8);
    size_t len = strlen(url);
    char *out = malloc(len + 3 * (size_t)n + 1);
    if (!out)
        return NULL;
    size_t o = 0, at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + o, url + at, sp[i][0] - at);
        o += sp[i][0] - at;
        memcpy(out + o, "***", 3);
        o += 3;
        at = sp[i][1];
        secrets_add(k, url + sp[i][0], sp[i][1] - sp[i][0]);
    }
    memcpy(out + o, url + at, len - at);
    out[o + len - at] = 0;
    return out;
}

/* Rewrites msg in place: each secret becomes "***" (when that fits: a
 * secret shorter than 3 bytes becomes as many '*'), newlines become
 * spaces, trailing blanks go. */
static void scrub(char *msg, const secrets_t *k)
{
    for (int i = 0; i < k->n; i++) {
        size_t sl = strlen(k->s[i]);
        size_t stars = sl < 3 ? sl : 3;
        for (char *p = strstr(msg, k->s[i]); p; p = strstr(p + stars, k->s[i])) {
            memset(p, '*', stars);
            memmove(p + stars, p + sl, strlen(p + sl) + 1);
        }
    }
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(msg);
    while (n && msg[n - 1] == ' ')
        msg[--n] = 0;
}

/* --- parameters --- */

static void p_add(pg_params_t *p, const char *v, int len, int fmt, unsigned type)
{
    if (p->n >= (int)(sizeof(p->v) / sizeof(p->v[0])))
        return; /* never: the statements here have fewer */
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    p->type[p->n] = type;
    p->n++;
}

void pg_p_text(pg_params_t *p, const char *t)
{
    p_add(p, t, 0, 0, PG_TEXT);
}

void pg_p_textn(pg_params_t *p, const char *t, size_t len)
{
    /* the binary form of text is its bytes: the length is honoured */
    p_add(p, t ? t : "", (int)len, 1, PG_TEXT);
}

void pg_p_bytes(pg_params_t *p, const void *b, size_t len)
{
    p_add(p, b ? (const char *)b : NULL, (int)len, 1, PG_BYTEA);
}

void pg_p_i64(pg_params_t *p, int64_t v)
{
    if (p->n >= (int)(sizeof(p->v) / sizeof(p->v[0])))
        return;
    snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
    p_add(p, p->num[p->n], 0, 0, PG_INT8);
}

/* --- running statements --- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Logs a failed statement: the primary message only (a DETAIL may quote
 * values). */
static void log_failure(PGconn *conn, const PGresult *r)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", m ? m : PQerrorMessage(conn));
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    LOG_WARN("store", "postgres: %s", buf);
}

/* Waits for the results of what was sent, at most the connection's bound;
 * returns the last one when every one succeeded, else NULL. */
static PGresult *wait_results(pg_conn_t *c)
{
    int64_t deadline = mono_ms() + c->timeout_ms;
    PGresult *last = NULL;
    int failed = 0;
    for (;;) {
        while (PQisBusy(c->conn)) {
            int64_t left = deadline - mono_ms();
            if (left <= 0) {
                LOG_WARN("store", "postgres: no answer within %d ms; the connection will be reset",
                         c->timeout_ms);
                c->broken = 1;
                PQclear(last);
                return NULL;
            }
            struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
            int pr = poll(&pfd, 1, (int)left);
            if (pr < 0 && errno != EINTR) {
                c->broken = 1;
                PQclear(last);
                return NULL;
            }
            if (pr > 0 && !PQconsumeInput(c->conn))
                break; /* the connection failed: PQgetResult says so */
        }
        PGresult *r = PQgetResult(c->conn);
        if (!r)
            break;
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            if (!failed) {
                log_failure(c->conn, r);
                const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", code ? code : "");
            }
            failed = 1;
        }
        PQclear(last);
        last = r;
        if (PQstatus(c->conn) == CONNECTION_BAD)
            break;
    }
    if (!failed && !last && PQstatus(c->conn) == CONNECTION_BAD) {
        log_failure(c->conn, NULL);
        failed = 1;
    }
    if (failed) {
        PQclear(last);
        return NULL;
    }
    return last;
}

static const char *stmt_name(int which, char buf[16])
{
    snprintf(buf, 16, "wagw_%d", which);
    return buf;
}

PGresult *pg_run(pg_conn_t *c, int which, const char *sql, const pg_params_t *p)
{
    static const pg_params_t none;
    if (!p)
        p = &none;
    if (c->broken || !c->conn) {
        c->sent++;
        return NULL;
    }
    int first = c->sent == 0, ok;
    char name[16];
    if (which >= 0 && !c->prepared[which]) {
        ok = PQsendPrepare(c->conn, stmt_name(which, name), sql, p->n, p->type);
        PGresult *r = ok ? wait_results(c) : NULL;
        if (!ok)
            log_failure(c->conn, NULL);
        if (r)
            c->prepared[which] = 1;
        PQclear(r);
        if (!r) {
            c->sent++;
            if (first && PQstatus(c->conn) == CONNECTION_BAD)
                c->retry = 1;
            return NULL;
        }
    }
    if (which >= 0)
        ok = PQsendQueryPrepared(c->conn, stmt_name(which, name), p->n, p->v, p->len, p->fmt, 0);
    else if (p == &none)
        ok = PQsendQuery(c->conn, sql); /* may hold several statements */
    else
        ok = PQsendQueryParams(c->conn, sql, p->n, p->type, p->v, p->len, p->fmt, 0);
    if (!ok)
        log_failure(c->conn, NULL);
    PGresult *r = ok ? wait_results(c) : NULL;
    c->sent++;
    if (!r && first && PQstatus(c->conn) == CONNECTION_BAD)
        c->retry = 1;
    return r;
}

int pg_cmd(pg_conn_t *c, int which, const char *sql, const pg_params_t *p, uint64_t *changed)
{
    PGresult *r = pg_run(c, which, sql, p);
    if (!r)
        return STORE_EIO;
    if (changed) {
        const char *t = PQcmdTuples(r);
        *changed = *t ? strtoull(t, NULL, 10) : 0;
    }
    PQclear(r);
    return 0;
}

int pg_begin(pg_conn_t *c)
{
    return pg_cmd(c, -1, "BEGIN", NULL, NULL);
}

int pg_begin_events(pg_conn_t *c)
{
    /* one appender at a time over all nodes: event ids then commit in the
     * order they were given, so a reader of "ids after N" never skips one
     * that commits later (the registry-wide resume) */
    int rc = pg_cmd(c, -1, "BEGIN", NULL, NULL);
    return rc ? rc : pg_cmd(c, -1, "SELECT pg_advisory_xact_lock(7760611826)", NULL, NULL);
}

int pg_commit(pg_conn_t *c)
{
    return pg_cmd(c, -1, "COMMIT", NULL, NULL);
}

void pg_rollback(pg_conn_t *c)
{
    if (c->conn && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        pg_cmd(c, -1, "ROLLBACK", NULL, NULL);
}

/* Notices (e.g. "already exists, skipping") go to the debug log, not to
 * stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    LOG_DEBUG("store", "postgres: %.*s", (int)strcspn(message, "\n"), message);
}

/* What every connection runs after it is established (again after a
 * reset): the bound of a statement on the server, no notices. */
static int setup_conn(pg_conn_t *c)
{
    memset(c->prepared, 0, sizeof(c->prepared));
    c->broken = 0;
    c->timeout_ms = PG_CLIENT_TIMEOUT_MS;
    PQsetNoticeProcessor(c->conn, on_notice, NULL);
    int sent = c->sent;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SET statement_timeout = %d; SET client_min_messages = warning;"
             " SET idle_in_transaction_session_timeout = %d",
             STORE_PG_TIMEOUT_MS, PG_IDLE_TX_TIMEOUT_MS);
    int rc = pg_cmd(c, -1, sql, NULL, NULL);
    c->sent = sent;
    return rc;
}

static int connect_conn(pg_conn_t *c, const char *url, const char *shown, const secrets_t *k,
                        char *err, size_t errlen)
{
    /* our settings first: what the URL says wins over them */
    static const char *const keys[] = {
        "connect_timeout",     "keepalives",       "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
        "application_name",    "dbname",           NULL};
    const char *vals[] = {"10", "1", "30", "10", "3", "20000", "wa-gateway", url, NULL};
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (!c->conn) {
        snprintf(err, errlen, "out of memory");
        return STORE_ENOMEM;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->conn));
        scrub(msg, k);
        snprintf(err, errlen, "cannot connect to PostgreSQL %s: %s", shown, msg);
        PQfinish(c->conn);
        c->conn = NULL;
        return STORE_EIO;
    }
    if (setup_conn(c)) {
        snprintf(err, errlen, "cannot configure the connection to PostgreSQL %s", shown);
        PQfinish(c->conn);
        c->conn = NULL;
        return STORE_EIO;
    }
    return 0;
}

/* Re-establishes a broken connection (blocks up to the connect timeout). */
static int reset_conn(pg_conn_t *c)
{
    if (!c->conn)
        return -1;
    LOG_WARN("store", "postgres: connection lost; reconnecting");
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        log_failure(c->conn, NULL);
        c->broken = 1;
        return -1;
    }
    return setup_conn(c) ? -1 : 0;
}

void pg_call_begin(pg_conn_t *c)
{
    c->sent = 0;
    c->retry = 0;
    if (c->conn && (c->broken || PQstatus(c->conn) == CONNECTION_BAD))
        reset_conn(c);
}

int pg_call_retry(pg_conn_t *c)
{
    if (!c->retry)
        return 0;
    c->retry = 0;
    if (reset_conn(c))
        return 0;
    c->sent = 0;
    return 1;
}

/* --- columns --- */

int64_t pg_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *pg_text_dup(const PGresult *r, int row, int col, int *ok)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    char *t = strdup(PQgetvalue(r, row, col));
    if (!t)
        *ok = 0;
    return t;
}

/* The bytes of a bytea column (malloc'd, wiped by the caller), NULL when
 * NULL or out of memory (*err set then). */
uint8_t *pg_bytes_dup(const PGresult *r, int row, int col, size_t *len, int *err)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (!b) {
        *err = STORE_ENOMEM;
        return NULL;
    }
    uint8_t *out = malloc(n ? n : 1);
    if (out)
        memcpy(out, b, n);
    else
        *err = STORE_ENOMEM;
    explicit_bzero(b, n);
    PQfreemem(b);
    *len = out ? n : 0;
    return out;
}

int pg_blob(const PGresult *r, int row, int col, uint8_t *dst, size_t len)
{
    int err = 0;
    size_t n;
    uint8_t *b = pg_bytes_dup(r, row, col, &n, &err);
    int rc = err ? err : (!b || n != len) ? STORE_ECORRUPT : 0;
    if (!rc)
        memcpy(dst, b, len);
    if (b)
        explicit_bzero(b, n);
    free(b);
    return rc;
}

/* --- fencing --- */

int pg_fence(store_t *st, const char *session)
{
    return pg_fence_on(st, &st->pgw, session);
}

int pg_fence_on(store_t *st, pg_conn_t *c, const char *session)
{
    return pg_fence_epoch_on(st, c, session, 0);
}

int pg_transient(const pg_conn_t *c)
{
    return !strcmp(c->sqlstate, "40P01") || !strcmp(c->sqlstate, "40001");
}

int pg_fence_epoch_on(store_t *st, pg_conn_t *c, const char *session, uint64_t epoch)
{
    if (!st->node_id || !session || !*session)
        return 0;
    if (!epoch)
        epoch = store_fence_epoch(st, session);
    if (epoch == 0)
        return STORE_EFENCED;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_text(&p, st->node_id);
    pg_p_i64(&p, (int64_t)epoch);
    PGresult *r = pg_run(c, PG_STMT_FENCE,
                         "SELECT 1 FROM leases WHERE session = $1 AND owner = $2 AND epoch = $3"
                         " AND expires_at > clock_timestamp() FOR SHARE",
                         &p);
    if (!r)
        return STORE_EIO;
    int held = PQntuples(r) == 1;
    PQclear(r);
    return held ? 0 : STORE_EFENCED;
}

/* Opens the writer's transaction of a fenced write of `session`: 0 (the
 * transaction open), STORE_EFENCED (rolled back, the callback called) or
 * STORE_EIO. */
static int begin_fenced(store_t *st, const char *session)
{
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    int rc = pg_fence(st, session);
    if (rc) {
        pg_rollback(&st->pgw);
        if (rc == STORE_EFENCED) {
            store_count_fenced(st, 1);
            store_fenced(st, session);
        }
    }
    return rc;
}

/* Commits, or on rc != 0 rolls back; returns rc, or STORE_EIO when the
 * commit failed. */
static int end_tx(store_t *st, int rc)
{
    if (!rc && pg_commit(&st->pgw))
        rc = STORE_EIO;
    if (rc)
        pg_rollback(&st->pgw);
    return rc;
}

/* One statement of `session` inside its fenced transaction; *changed as
 * pg_cmd. */
static int fenced_cmd(store_t *st, const char *session, const char *sql, const pg_params_t *p,
                      uint64_t *changed)
{
    int rc = begin_fenced(st, session);
    if (rc)
        return rc;
    return end_tx(st, pg_cmd(&st->pgw, -1, sql, p, changed));
}

/* --- opening --- */

static int migrate(store_t *st, char *err, size_t errlen)
{
    pg_conn_t *c = &st->pgw;
    c->timeout_ms = PG_MIGRATE_TIMEOUT_MS + 5000;
    char setlocal[80];
    snprintf(setlocal, sizeof(setlocal), "SET LOCAL statement_timeout = %d", PG_MIGRATE_TIMEOUT_MS);
    /* READ COMMITTED: each statement sees what another node committed
     * before it got the lock */
    int rc =
        pg_cmd(c, -1, "BEGIN ISOLATION LEVEL READ COMMITTED", NULL, NULL) ||
                pg_cmd(c, -1, setlocal, NULL, NULL) ||
                pg_cmd(c, -1, "SELECT pg_advisory_xact_lock(" PG_MIGRATION_LOCK ")", NULL, NULL) ||
                pg_cmd(c, -1,
                       "CREATE TABLE IF NOT EXISTS schema_version ("
                       " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
                       " version integer NOT NULL)",
                       NULL, NULL)
            ? STORE_EIO
            : 0;
    int version = 0;
    if (!rc) {
        PGresult *r = pg_run(c, -1, "SELECT version FROM schema_version", NULL);
        if (!r)
            rc = STORE_EIO;
        else if (PQntuples(r) > 0)
            version = (int)pg_i64(r, 0, 0);
        PQclear(r);
    }
    if (rc) {
        snprintf(err, errlen, "cannot read the schema version of PostgreSQL %s", st->path);
    } else if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "PostgreSQL %s has schema version %d, newer than this wa-gateway (%d); refusing "
                 "to touch it",
                 st->path, version, STORE_SCHEMA_VERSION);
        rc = STORE_ENEWER;
    }
    for (int v = version; !rc && v < STORE_SCHEMA_VERSION; v++) {
        pg_params_t p = {0};
        pg_p_i64(&p, v + 1);
        if (pg_cmd(c, -1, migrations[v], NULL, NULL) ||
            pg_cmd(c, -1,
                   "INSERT INTO schema_version (version) VALUES ($1::integer)"
                   " ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                   &p, NULL)) {
            snprintf(err, errlen, "cannot migrate PostgreSQL %s to schema %d", st->path, v + 1);
            rc = STORE_EIO;
        }
    }
    if (!rc && pg_commit(c)) {
        snprintf(err, errlen, "cannot commit the migration of PostgreSQL %s", st->path);
        rc = STORE_EIO;
    }
    if (rc)
        pg_rollback(c);
    c->timeout_ms = PG_CLIENT_TIMEOUT_MS;
    return rc;
}

static void pg_close(store_t *st)
{
    if (st->pgr.conn) {
        pthread_mutex_destroy(&st->rd_mu);
        pthread_mutex_destroy(&st->bg_mu);
    }
    PQfinish(st->pgr.conn);
    PQfinish(st->pgw.conn);
    PQfinish(st->pga.conn);
    st->pgr.conn = st->pgw.conn = st->pga.conn = NULL;
    if (st->url) {
        explicit_bzero(st->url, strlen(st->url));
        free(st->url);
        st->url = NULL;
    }
}

int pg_open(const char *url, store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = 0;
    secrets_t k = {0};
    store_t *st = calloc(1, sizeof(*st));
    if (!st || !(st->path = redact_url(url, &k))) {
        free(st);
        secrets_free(&k);
        snprintf(err, errlen, "out of memory");
        return STORE_ENOMEM;
    }
    st->be = &store_pg_backend;
    store_init_common(st);
    int rc = connect_conn(&st->pgw, url, st->path, &k, err, errlen);
    if (!rc)
        rc = migrate(st, err, errlen);
    if (!rc)
        rc = connect_conn(&st->pgr, url, st->path, &k, err, errlen);
    secrets_free(&k);
    if (rc) {
        PQfinish(st->pgw.conn);
        free(st->path);
        free(st);
        return rc;
    }
    pthread_mutex_init(&st->rd_mu, NULL);
    pthread_mutex_init(&st->bg_mu, NULL);
    if (!(st->url = strdup(url))) {
        pg_close(st);
        free(st->path);
        free(st);
        snprintf(err, errlen, "out of memory");
        return STORE_ENOMEM;
    }
    *out = st;
    return 0;
}

int pg_events_append_bg(store_t *st, store_event_t *ev, size_t n)
{
    pthread_mutex_lock(&st->bg_mu);
    int rc = 0;
    if (!st->pga.conn) {
        char err[256];
        secrets_t k = {0};
        char *shown = redact_url(st->url, &k);
        rc = shown ? connect_conn(&st->pga, st->url, shown, &k, err, sizeof(err)) : STORE_ENOMEM;
        if (rc)
            LOG_WARN("store", "%s", shown ? err : "out of memory");
        free(shown);
        secrets_free(&k);
    }
    if (!rc) {
        pg_call_begin(&st->pga);
        rc = pg_events_append_on(st, &st->pga, ev, n);
        if (rc < 0 && pg_call_retry(&st->pga))
            rc = pg_events_append_on(st, &st->pga, ev, n);
    }
    pthread_mutex_unlock(&st->bg_mu);
    return rc;
}

/* --- credentials --- */

int pg_load(store_t *st, const char *session, store_creds_t *c)
{
    memset(c, 0, sizeof(*c));
    pg_params_t p = {0};
    pg_p_text(&p, session);
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT noise_priv, noise_pub, ident_priv, ident_pub, spk_id, spk_priv,"
                         " spk_pub, spk_sig, reg_id, adv_secret, next_prekey_id, account, jid,"
                         " lid, push_name, platform, business_name, confirmed FROM creds"
                         " WHERE session = $1",
                         &p);
    if (!r)
        return STORE_EIO;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return STORE_ENOTFOUND;
    }
    int rc = pg_blob(r, 0, 0, c->noise_priv, 32) || pg_blob(r, 0, 1, c->noise_pub, 32) ||
                     pg_blob(r, 0, 2, c->ident_priv, 32) || pg_blob(r, 0, 3, c->ident_pub, 32) ||
                     pg_blob(r, 0, 5, c->spk_priv, 32) || pg_blob(r, 0, 6, c->spk_pub, 32) ||
                     pg_blob(r, 0, 7, c->spk_sig, 64) || pg_blob(r, 0, 9, c->adv_secret, 32)
                 ? STORE_ECORRUPT
                 : 0;
    c->spk_id = (uint32_t)pg_i64(r, 0, 4);
    c->reg_id = (uint32_t)pg_i64(r, 0, 8);
    c->next_prekey_id = (uint32_t)pg_i64(r, 0, 10);
    if (!rc && !PQgetisnull(r, 0, 11))
        c->account = pg_bytes_dup(r, 0, 11, &c->account_len, &rc);
    if (!rc) {
        int ok = 1;
        c->jid = pg_text_dup(r, 0, 12, &ok);
        c->lid = pg_text_dup(r, 0, 13, &ok);
        c->push_name = pg_text_dup(r, 0, 14, &ok);
        c->platform = pg_text_dup(r, 0, 15, &ok);
        c->business_name = pg_text_dup(r, 0, 16, &ok);
        c->confirmed = (int)pg_i64(r, 0, 17);
        if (!ok)
            rc = STORE_ENOMEM;
        else if (!c->jid != !c->account)
            rc = STORE_ECORRUPT; /* pairing data is written whole or not at all */
    }
    PQclear(r);
    if (rc)
        store_creds_free(c);
    return rc;
}

int pg_save(store_t *st, const char *session, const store_creds_t *c)
{
    if (!c->jid != !c->account)
        return STORE_EINVAL;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_bytes(&p, c->noise_priv, 32);
    pg_p_bytes(&p, c->noise_pub, 32);
    pg_p_bytes(&p, c->ident_priv, 32);
    pg_p_bytes(&p, c->ident_pub, 32);
    pg_p_i64(&p, c->spk_id);
    pg_p_bytes(&p, c->spk_priv, 32);
    pg_p_bytes(&p, c->spk_pub, 32);
    pg_p_bytes(&p, c->spk_sig, 64);
    pg_p_i64(&p, c->reg_id);
    pg_p_bytes(&p, c->adv_secret, 32);
    pg_p_i64(&p, c->next_prekey_id ? c->next_prekey_id : 1);
    pg_p_bytes(&p, c->account, c->account_len);
    pg_p_text(&p, c->jid);
    pg_p_text(&p, c->lid);
    pg_p_text(&p, c->push_name);
    pg_p_text(&p, c->platform);
    pg_p_text(&p, c->business_name);
    pg_p_i64(&p, c->confirmed);
    return fenced_cmd(
        st, session,
        /* an upsert, as on SQLite: the session's pre-keys stay */
        "INSERT INTO creds (session, noise_priv, noise_pub, ident_priv, ident_pub, spk_id,"
        " spk_priv, spk_pub, spk_sig, reg_id, adv_secret, next_prekey_id, account, jid, lid,"
        " push_name, platform, business_name, confirmed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
        " $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        " ON CONFLICT (session) DO UPDATE SET noise_priv = excluded.noise_priv,"
        " noise_pub = excluded.noise_pub, ident_priv = excluded.ident_priv,"
        " ident_pub = excluded.ident_pub, spk_id = excluded.spk_id,"
        " spk_priv = excluded.spk_priv, spk_pub = excluded.spk_pub,"
        " spk_sig = excluded.spk_sig, reg_id = excluded.reg_id,"
        " adv_secret = excluded.adv_secret,"
        " next_prekey_id = greatest(creds.next_prekey_id, excluded.next_prekey_id),"
        " account = excluded.account, jid = excluded.jid, lid = excluded.lid,"
        " push_name = excluded.push_name, platform = excluded.platform,"
        " business_name = excluded.business_name, confirmed = excluded.confirmed,"
        " updated_at = " PG_NOW_S,
        &p, NULL);
}

int pg_save_pairing(store_t *st, const char *session, const uint8_t *account, size_t account_len,
                    const char *jid, const char *lid, const char *platform,
                    const char *business_name, const char *push_name)
{
    if (!account || !jid)
        return STORE_EINVAL;
    pg_params_t p = {0};
    pg_p_bytes(&p, account, account_len);
    pg_p_text(&p, jid);
    pg_p_text(&p, lid);
    pg_p_text(&p, platform);
    pg_p_text(&p, business_name);
    pg_p_text(&p, push_name);
    pg_p_text(&p, session);
    uint64_t changed = 0;
    int rc = fenced_cmd(st, session,
                        "UPDATE creds SET account = $1, jid = $2, lid = $3, platform = $4,"
                        " business_name = $5, push_name = $6, confirmed = 0,"
                        " updated_at = " PG_NOW_S " WHERE session = $7",
                        &p, &changed);
    return !rc && changed != 1 ? STORE_ENOTFOUND : rc;
}

int pg_confirm_pairing(store_t *st, const char *session)
{
    pg_params_t p = {0};
    pg_p_text(&p, session);
    return fenced_cmd(st, session,
                      "UPDATE creds SET confirmed = 1 WHERE session = $1 AND confirmed = 0", &p,
                      NULL);
}

/* Runs `sql` with `session` as $1 in the open transaction (rc 0), or
 * passes rc on. */
static int tx_session(store_t *st, int rc, const char *sql, const char *session)
{
    if (rc)
        return rc;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    return pg_cmd(&st->pgw, -1, sql, &p, NULL);
}

int pg_wipe(store_t *st, const char *session)
{
    int rc = begin_fenced(st, session);
    if (rc)
        return rc;
    rc = tx_session(st, rc, "DELETE FROM prekeys WHERE session = $1", session);
    rc = tx_session(st, rc, "DELETE FROM creds WHERE session = $1", session);
    return end_tx(st, rc);
}

int pg_retire(store_t *st, const char *session)
{
    int rc = begin_fenced(st, session);
    if (rc)
        return rc;
    rc = tx_session(st, rc,
                    "INSERT INTO removals (session, jid, noise_priv, noise_pub)"
                    " SELECT session, jid, noise_priv, noise_pub FROM creds"
                    " WHERE session = $1 AND jid IS NOT NULL",
                    session);
    rc = tx_session(st, rc, "DELETE FROM prekeys WHERE session = $1", session);
    rc = tx_session(st, rc, "DELETE FROM creds WHERE session = $1", session);
    return end_tx(st, rc);
}

/* --- pre-keys --- */

int pg_prekeys_add(store_t *st, const char *session, const store_prekey_t *keys, size_t n)
{
    /* one statement for the batch: the ids as a list, the keys as one
     * bytea of n * 32 bytes each */
    char *ids = malloc(n * 11 + 1);
    uint8_t *priv = malloc(n * 32 + 1), *pub = malloc(n * 32 + 1);
    int rc = ids && priv && pub ? 0 : STORE_ENOMEM;
    uint32_t max = 0;
    size_t o = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        o += (size_t)sprintf(ids + o, "%s%u", i ? "," : "", (unsigned)keys[i].id);
        memcpy(priv + i * 32, keys[i].priv, 32);
        memcpy(pub + i * 32, keys[i].pub, 32);
        if (keys[i].id > max)
            max = keys[i].id;
    }
    if (ids)
        ids[o] = 0;
    if (!rc)
        rc = begin_fenced(st, session);
    if (!rc) {
        pg_params_t p = {0};
        pg_p_text(&p, session);
        pg_p_text(&p, ids);
        pg_p_bytes(&p, priv, n * 32);
        pg_p_bytes(&p, pub, n * 32);
        pg_p_i64(&p, (int64_t)n);
        rc = pg_cmd(&st->pgw, -1,
                    "INSERT INTO prekeys (session, id, priv, pub)"
                    " SELECT $1, (string_to_array($2, ','))[i]::bigint,"
                    " substring($3 from (i - 1) * 32 + 1 for 32),"
                    " substring($4 from (i - 1) * 32 + 1 for 32)"
                    " FROM generate_series(1, $5::integer) AS i",
                    &p, NULL);
        uint64_t changed = 0;
        pg_params_t u = {0};
        pg_p_i64(&u, (int64_t)max + 1);
        pg_p_text(&u, session);
        if (!rc)
            rc = pg_cmd(&st->pgw, -1,
                        "UPDATE creds SET next_prekey_id = greatest(next_prekey_id, $1)"
                        " WHERE session = $2",
                        &u, &changed);
        if (!rc && changed != 1)
            rc = STORE_EIO;
        rc = end_tx(st, rc);
    }
    if (priv)
        explicit_bzero(priv, n * 32);
    free(ids);
    free(priv);
    free(pub);
    return rc;
}

int pg_prekeys_pending(store_t *st, const char *session, store_prekey_t *out, size_t max, size_t *n)
{
    *n = 0;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_i64(&p, (int64_t)max);
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT id, priv, pub FROM prekeys WHERE session = $1 AND uploaded = 0"
                         " ORDER BY id LIMIT $2",
                         &p);
    if (!r)
        return STORE_EIO;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        out[*n].id = (uint32_t)pg_i64(r, i, 0);
        if (pg_blob(r, i, 1, out[*n].priv, 32) || pg_blob(r, i, 2, out[*n].pub, 32)) {
            rc = STORE_ECORRUPT;
            break;
        }
        (*n)++;
    }
    PQclear(r);
    return rc;
}

int pg_prekeys_mark_uploaded(store_t *st, const char *session, uint32_t max_id)
{
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_i64(&p, max_id);
    return fenced_cmd(st, session,
                      "UPDATE prekeys SET uploaded = 1 WHERE session = $1 AND id <= $2", &p, NULL);
}

/* A count(*) (or any one bigint) of `sql` with `session` as $1 (when not
 * NULL). */
static int count_of(pg_conn_t *c, const char *sql, const char *session, uint64_t *n)
{
    *n = 0;
    pg_params_t p = {0};
    if (session)
        pg_p_text(&p, session);
    PGresult *r = pg_run(c, -1, sql, &p);
    if (!r)
        return STORE_EIO;
    if (PQntuples(r) > 0)
        *n = (uint64_t)pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_prekeys_count(store_t *st, const char *session, size_t *n)
{
    uint64_t v;
    int rc = count_of(&st->pgw, "SELECT count(*) FROM prekeys WHERE session = $1", session, &v);
    *n = (size_t)v;
    return rc;
}

int pg_check(store_t *st, char *err, size_t errlen)
{
    for (size_t i = 0; i < store_nchecks; i++) {
        uint64_t n = 0;
        if (count_of(&st->pgw, store_checks[i][0], NULL, &n) || n != 0) {
            snprintf(err, errlen, "%s", store_checks[i][1]);
            return STORE_ECORRUPT;
        }
    }
    return 0;
}

/* --- sessions --- */

int pg_session_add(store_t *st, const char *name, const uint8_t key_hash[32],
                   const char *device_name)
{
    pg_params_t p = {0};
    pg_p_text(&p, name);
    pg_p_bytes(&p, key_hash, key_hash ? 32 : 0);
    pg_p_text(&p, device_name);
    uint64_t changed = 0;
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    int rc = pg_cmd(&st->pgw, -1,
                    "INSERT INTO sessions (name, key_hash, device_name) VALUES ($1, $2, $3)"
                    " ON CONFLICT (name) DO NOTHING",
                    &p, &changed);
    if (!rc && changed != 1)
        rc = STORE_EEXISTS;
    rc =
        tx_session(st, rc, "INSERT INTO leases (session) VALUES ($1) ON CONFLICT DO NOTHING", name);
    rc = tx_session(st, rc, "SELECT pg_notify('wagw_sessions', $1)", name);
    return end_tx(st, rc);
}

int pg_session_set_key(store_t *st, const char *name, const uint8_t key_hash[32])
{
    pg_params_t p = {0};
    pg_p_bytes(&p, key_hash, key_hash ? 32 : 0);
    pg_p_text(&p, name);
    uint64_t changed = 0;
    int rc = pg_cmd(&st->pgw, -1,
                    /* the other nodes learn of the new key (wagw_sessions) */
                    "WITH u AS (UPDATE sessions SET key_hash = $1 WHERE name = $2 RETURNING name)"
                    " SELECT pg_notify('wagw_sessions', name) FROM u",
                    &p, &changed);
    return !rc && changed != 1 ? STORE_ENOTFOUND : rc;
}

static void session_row(const PGresult *r, int i, store_session_t *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(r, i, 0));
    if (!PQgetisnull(r, i, 1) && pg_blob(r, i, 1, s->key_hash, 32) == 0)
        s->has_key = 1;
    snprintf(s->device_name, sizeof(s->device_name), "%s", PQgetvalue(r, i, 2));
    s->created_at = pg_i64(r, i, 3);
}

int pg_session_get(store_t *st, const char *name, store_session_t *out)
{
    pg_params_t p = {0};
    pg_p_text(&p, name);
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT name, key_hash, device_name, created_at FROM sessions"
                         " WHERE name = $1",
                         &p);
    if (!r)
        return STORE_EIO;
    int rc = PQntuples(r) > 0 ? 0 : STORE_ENOTFOUND;
    if (!rc)
        session_row(r, 0, out);
    PQclear(r);
    return rc;
}

int pg_sessions_list(store_t *st, store_session_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT name, key_hash, device_name, created_at FROM sessions"
                         " ORDER BY created_at, name",
                         NULL);
    if (!r)
        return STORE_EIO;
    int rows = PQntuples(r);
    store_session_t *v = malloc((rows ? (size_t)rows : 1) * sizeof(*v));
    if (!v) {
        PQclear(r);
        return STORE_ENOMEM;
    }
    for (int i = 0; i < rows; i++)
        session_row(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return 0;
}

int pg_session_delete(store_t *st, const char *name)
{
    if (pg_begin(&st->pgw))
        return STORE_EIO;
    int rc = tx_session(st, 0, "DELETE FROM prekeys WHERE session = $1", name);
    rc = tx_session(st, rc, "DELETE FROM creds WHERE session = $1", name);
    rc = tx_session(st, rc, "DELETE FROM meta WHERE session = $1", name);
    rc = tx_session(st, rc, "DELETE FROM leases WHERE session = $1", name);
    rc = tx_session(st, rc, "DELETE FROM sessions WHERE name = $1", name);
    rc = tx_session(st, rc, "SELECT pg_notify('wagw_sessions', $1)", name);
    return end_tx(st, rc);
}

/* --- pending removals --- */

int pg_removals_list(store_t *st, store_removal_t *out, size_t max, size_t *n)
{
    *n = 0;
    pg_params_t p = {0};
    pg_p_i64(&p, (int64_t)max);
    PGresult *r = pg_run(&st->pgw, -1,
                         "SELECT id, session, jid, noise_priv, noise_pub FROM removals"
                         " ORDER BY id LIMIT $1",
                         &p);
    if (!r)
        return STORE_EIO;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        store_removal_t *m = &out[*n];
        memset(m, 0, sizeof(*m));
        m->id = pg_i64(r, i, 0);
        snprintf(m->session, sizeof(m->session), "%s", PQgetvalue(r, i, 1));
        snprintf(m->jid, sizeof(m->jid), "%s", PQgetvalue(r, i, 2));
        if (pg_blob(r, i, 3, m->noise_priv, 32) || pg_blob(r, i, 4, m->noise_pub, 32)) {
            rc = STORE_ECORRUPT;
            break;
        }
        (*n)++;
    }
    PQclear(r);
    return rc;
}

int pg_removal_done(store_t *st, int64_t id)
{
    pg_params_t p = {0};
    pg_p_i64(&p, id);
    return pg_cmd(&st->pgw, -1, "DELETE FROM removals WHERE id = $1", &p, NULL);
}

/* --- meta --- */

int pg_meta_set(store_t *st, const char *session, const char *key, const void *value, size_t len)
{
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_text(&p, key);
    pg_p_bytes(&p, len ? value : "", len);
    /* the service-wide values (session "") are not a session's: not fenced */
    return fenced_cmd(st, session,
                      "INSERT INTO meta (session, key, value) VALUES ($1, $2, $3)"
                      " ON CONFLICT (session, key) DO UPDATE SET value = excluded.value",
                      &p, NULL);
}

int pg_meta_get(store_t *st, const char *session, const char *key, uint8_t **value, size_t *len)
{
    *value = NULL;
    *len = 0;
    pg_params_t p = {0};
    pg_p_text(&p, session);
    pg_p_text(&p, key);
    PGresult *r =
        pg_run(&st->pgw, -1, "SELECT value FROM meta WHERE session = $1 AND key = $2", &p);
    if (!r)
        return STORE_EIO;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return STORE_ENOTFOUND;
    }
    int rc = 0;
    size_t n = 0;
    uint8_t *b = pg_bytes_dup(r, 0, 0, &n, &rc);
    PQclear(r);
    if (rc)
        return rc;
    uint8_t *v = realloc(b, n + 1);
    if (!v) {
        free(b);
        return STORE_ENOMEM;
    }
    v[n] = 0;
    *value = v;
    *len = n;
    return 0;
}

/* --- the backend table --- */

/* Each writer operation, run again once on a reset connection when its
 * first statement found the connection broken (no transaction was open:
 * nothing of it can have been applied). */
#define PG_RETRYING_OP(name, params, args)                                                         \
    static int pgr_##name params                                                                   \
    {                                                                                              \
        pg_call_begin(&st->pgw);                                                                   \
        int rc = pg_##name args;                                                                   \
        if (rc < 0 && pg_call_retry(&st->pgw))                                                     \
            rc = pg_##name args;                                                                   \
        return rc;                                                                                 \
    }
STORE_WRITER_OPS(PG_RETRYING_OP)
#undef PG_RETRYING_OP

const store_backend_t store_pg_backend = {
#define PG_OP_ENTRY(name, params, args) .name = pgr_##name,
    STORE_WRITER_OPS(PG_OP_ENTRY)
#undef PG_OP_ENTRY
#define PG_OP_ENTRY(name, params, args) .name = pg_##name,
        STORE_READER_OPS(PG_OP_ENTRY)
#undef PG_OP_ENTRY
            .close = pg_close,
};
