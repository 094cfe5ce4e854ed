/* Cluster membership and leases (see cluster.h): the database thread
 * (heartbeat, renew, claim, release, LISTEN) and the loop side (the owned
 * set, the self-fencing deadline, the callbacks). The two talk through two
 * queues: commands to the thread (woken by an eventfd it polls beside the
 * libpq socket) and messages to the loop (a uv_async). */
#include "session/cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <postgresql/libpq-fe.h>
#include <yajl/yajl_gen.h>

#include "common/log.h"

#define NAME_MAX_ 72
/* Sessions handed over per pass while draining or rebalancing. */
#define SHED_BATCH 64
/* Sessions claimed per pass. */
#define CLAIM_BATCH 200
/* The closest two passes may follow each other (ms). */
#define PASS_MIN_MS 50

typedef enum {
    CMD_RELEASE,
    CMD_DROP,
    CMD_FORGET_ALL,
    CMD_KICK,
    CMD_DRAIN,
    CMD_REBALANCE,
    CMD_STATUS,
    CMD_STOP
} cmd_kind_t;

typedef enum {
    EV_ACQUIRE,
    EV_LOSE,
    EV_SHED,
    EV_EVENTS,
    EV_SESSIONS,
    EV_STATUS,
    EV_READY,
    EV_LEADER,
    EV_WEBHOOKS,
    EV_RESYNC
} ev_kind_t;

/* The advisory lock the webhook leader holds (a constant of our own). */
#define LEADER_LOCK "7760611827"

typedef struct msg {
    int kind;
    char name[NAME_MAX_];
    uint64_t epoch;
    void (*status_cb)(void *, char *);
    void *status_arg;
    char *json;
    struct msg *next;
} msg_t;

typedef struct {
    char name[NAME_MAX_];
    uint64_t epoch;
    int shedding; /* asked the loop to hand it over */
} lease_t;

typedef struct {
    lease_t *v;
    size_t n, cap;
} lease_set_t;

struct clu {
    uv_loop_t *loop;
    char *url, *node_id, *advertise_url;
    unsigned lease_ms, renew_ms, margin_ms;
    clu_callbacks_t cb;

    /* thread side */
    pthread_t th;
    int started;
    int wake_fd;
    pthread_mutex_t cmd_mu;
    msg_t *cmd_head, *cmd_tail;
    PGconn *db;
    lease_set_t held; /* what the database says this node holds */
    int draining, rebalance, stop;
    int leader;      /* this connection holds the leader lock */
    int node_locked; /* this connection holds the NODE_ID lock (node_lock) */
    int dup_told;    /* the NODE_ID-in-use error was logged (once until it clears) */

    /* loop side */
    uv_async_t async;
    pthread_mutex_t out_mu;
    msg_t *out_head, *out_tail;
    uv_timer_t fence_timer;
    lease_set_t owned; /* what the loop runs */
    int handles_open, stop_called;
    void (*stop_done)(void *);
    void *stop_arg;
    void (*drain_done)(void *);
    void *drain_arg;
    uv_timer_t drain_timer;
    int drain_timer_open;
    int last_ready;
    int leader_loop; /* what the loop was told */

    /* both: who holds which session, as of the last pass (sorted by name) */
    pthread_mutex_t own_mu;
    struct owner_row {
        char name[NAME_MAX_];
        char *url; /* the holder's advertise URL */
        int self;
    } * owners;
    size_t nowners;

    int64_t valid_until; /* monotonic ms the leases are surely ours until (atomic) */
    int ready_db;        /* connected and renewed (atomic) */
    int draining_flag;   /* (atomic) */
    uint64_t claims, lost, released, self_fences, renew_failures; /* atomics */
    size_t owned_n;                                               /* atomic */
    int leader_flag;                                              /* atomic */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- lease sets --- */

static lease_t *set_find(lease_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return &s->v[i];
    return NULL;
}

static int set_put(lease_set_t *s, const char *name, uint64_t epoch)
{
    lease_t *l = set_find(s, name);
    if (!l) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            lease_t *v = realloc(s->v, cap * sizeof(*v));
            if (!v)
                return -1;
            s->v = v;
            s->cap = cap;
        }
        l = &s->v[s->n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->name, sizeof(l->name), "%s", name);
    }
    l->epoch = epoch;
    return 0;
}

static void set_del(lease_set_t *s, const char *name)
{
    lease_t *l = set_find(s, name);
    if (l)
        *l = s->v[--s->n];
}

/* --- queues --- */

static msg_t *msg_new(int kind, const char *name, uint64_t epoch)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->kind = kind;
    if (name)
        snprintf(m->name, sizeof(m->name), "%s", name);
    m->epoch = epoch;
    return m;
}

static void push(pthread_mutex_t *mu, msg_t **head, msg_t **tail, msg_t *m)
{
    pthread_mutex_lock(mu);
    if (*tail)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
    pthread_mutex_unlock(mu);
}

static msg_t *take_all(pthread_mutex_t *mu, msg_t **head, msg_t **tail)
{
    pthread_mutex_lock(mu);
    msg_t *m = *head;
    *head = *tail = NULL;
    pthread_mutex_unlock(mu);
    return m;
}

static void to_thread(clu_t *c, msg_t *m)
{
    if (!m)
        return;
    push(&c->cmd_mu, &c->cmd_head, &c->cmd_tail, m);
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        LOG_WARN("cluster", "cannot wake the database thread: %s", strerror(errno));
}

static void to_loop(clu_t *c, msg_t *m)
{
    if (!m)
        return;
    push(&c->out_mu, &c->out_head, &c->out_tail, m);
    uv_async_send(&c->async);
}

/* --- the database thread --- */

/* Runs a statement with text parameters; returns the result when it has
 * the expected status, else NULL (logged; the connection is reset later). */
static PGresult *q(clu_t *c, const char *sql, int n, const char *const *params)
{
    if (!c->db)
        return NULL;
    PGresult *r = PQexecParams(c->db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    LOG_WARN("cluster", "database: %s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
}

static void set_leader(clu_t *c, int on)
{
    if (c->leader == on)
        return;
    c->leader = on;
    to_loop(c, msg_new(EV_LEADER, NULL, (uint64_t)on));
}

static void db_close(clu_t *c)
{
    if (c->db)
        PQfinish(c->db); /* the leader and NODE_ID locks go with the connection */
    c->db = NULL;
    c->node_locked = 0;
    set_leader(c, 0);
    __atomic_store_n(&c->ready_db, 0, __ATOMIC_RELEASE);
}

static int db_connect(clu_t *c)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "keepalives_idle", NULL};
    char app[64]; /* names the node in pg_stat_activity */
    snprintf(app, sizeof(app), "wagw-cluster:%s", c->node_id);
    const char *vals[] = {c->url, "5", app, "5", NULL};
    c->db = PQconnectdbParams(keys, vals, 1);
    if (!c->db || PQstatus(c->db) != CONNECTION_OK) {
        /* libpq's message never holds the password */
        LOG_WARN("cluster", "cannot connect to the database: %s",
                 c->db ? PQerrorMessage(c->db) : "out of memory");
        db_close(c);
        return -1;
    }
    /* (several statements: the simple query protocol). The server's
     * keepalives end this connection (and the NODE_ID lock below) within
     * about 11 s when this host vanishes without closing it. */
    PGresult *r = PQexec(c->db, "SET statement_timeout = 5000; SET tcp_keepalives_idle = 5;"
                                " SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3;"
                                " LISTEN wagw_events;"
                                " LISTEN wagw_sessions; LISTEN wagw_leases; LISTEN wagw_rebalance;"
                                " LISTEN wagw_webhooks");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        LOG_WARN("cluster", "database: %s", PQresultErrorMessage(r));
        PQclear(r);
        db_close(c);
        return -1;
    }
    PQclear(r);
    LOG_INFO("cluster", "node %s connected to the database", c->node_id);
    /* what was notified while not listening is read from the log */
    to_loop(c, msg_new(EV_RESYNC, NULL, 0));
    return 0;
}

/* The leases this node holds as a text array literal "{a,b}" and the
 * matching epochs "{1,2}" (session names are [a-z0-9_-]). */
static int held_arrays(clu_t *c, char **names, char **epochs)
{
    size_t cap = 3 + c->held.n * (NAME_MAX_ + 1), ecap = 3 + c->held.n * 21;
    char *a = malloc(cap), *e = malloc(ecap);
    if (!a || !e) {
        free(a);
        free(e);
        return -1;
    }
    size_t n = 0, m = 0;
    a[n++] = '{';
    e[m++] = '{';
    for (size_t i = 0; i < c->held.n; i++) {
        n += (size_t)snprintf(a + n, cap - n, "%s%s", i ? "," : "", c->held.v[i].name);
        m += (size_t)snprintf(e + m, ecap - m, "%s%" PRIu64, i ? "," : "", c->held.v[i].epoch);
    }
    snprintf(a + n, cap - n, "}");
    snprintf(e + m, ecap - m, "}");
    *names = a;
    *epochs = e;
    return 0;
}

/* Renews every lease held; the ones the database no longer gives this node
 * are lost. Returns 0, or -1 when the database could not be asked. */
static int renew(clu_t *c, int64_t t0)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%u", c->lease_ms);
    PGresult *r = q(c,
                    "INSERT INTO nodes (id, advertise_url, started_at, heartbeat_at, draining)"
                    " VALUES ($1, $2, now(), now(), $3::boolean)"
                    " ON CONFLICT (id) DO UPDATE SET advertise_url = EXCLUDED.advertise_url,"
                    " heartbeat_at = now(), draining = EXCLUDED.draining",
                    3, (const char *[]){c->node_id, c->advertise_url, c->draining ? "t" : "f"});
    if (!r)
        return -1;
    PQclear(r);
    if (!c->held.n) { /* what this pass claims is held at least until then */
        __atomic_store_n(&c->valid_until, t0 + c->lease_ms, __ATOMIC_RELEASE);
        return 0;
    }
    char *names, *epochs;
    if (held_arrays(c, &names, &epochs) != 0)
        return -1;
    r = q(c,
          /* the rows are locked in the order the event log's appends lock
           * them FOR SHARE (strcmp, i.e. COLLATE "C"): never a deadlock */
          "UPDATE leases l SET expires_at = now() + $2::bigint * interval '1 millisecond'"
          " FROM (SELECT k.session FROM leases k"
          "  JOIN unnest($3::text[], $4::bigint[]) AS h(session, epoch)"
          "  ON k.session = h.session AND k.epoch = h.epoch"
          "  WHERE k.owner = $1 AND k.expires_at > now()"
          "  ORDER BY k.session COLLATE \"C\" FOR UPDATE OF k) f"
          " WHERE l.session = f.session AND l.owner = $1 AND l.expires_at > now()"
          " RETURNING l.session",
          4, (const char *[]){c->node_id, lease, names, epochs});
    free(names);
    free(epochs);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    for (size_t i = 0; i < c->held.n;) {
        int still = 0;
        for (int k = 0; k < rows && !still; k++)
            still = !strcmp(PQgetvalue(r, k, 0), c->held.v[i].name);
        if (still) {
            i++;
            continue;
        }
        LOG_WARN("cluster", "%s: lease lost (taken over or expired)", c->held.v[i].name);
        to_loop(c, msg_new(EV_LOSE, c->held.v[i].name, 0)); /* counted there */
        c->held.v[i] = c->held.v[--c->held.n];
    }
    PQclear(r);
    __atomic_store_n(&c->valid_until, t0 + c->lease_ms, __ATOMIC_RELEASE);
    return 0;
}

/* This node's fair share: ceil(sessions / live nodes that do not drain). */
static long fair_share(clu_t *c)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%u", c->lease_ms);
    PGresult *r = q(c,
                    "SELECT (SELECT count(*) FROM leases),"
                    " (SELECT count(*) FROM nodes WHERE NOT draining"
                    "  AND heartbeat_at > now() - $1::bigint * interval '1 millisecond')",
                    1, (const char *[]){lease});
    if (!r)
        return -1;
    long total = atol(PQgetvalue(r, 0, 0)), live = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (live < 1)
        live = 1;
    return (total + live - 1) / live;
}

static void claim(clu_t *c, long want)
{
    char lease[24], lim[24];
    snprintf(lease, sizeof(lease), "%u", c->lease_ms);
    snprintf(lim, sizeof(lim), "%ld", want > CLAIM_BATCH ? (long)CLAIM_BATCH : want);
    /* unowned, expired, or held by an earlier run of this node (same
     * NODE_ID: that process is gone, its epoch is fenced by the new one) */
    char *names = NULL, *epochs = NULL;
    if (held_arrays(c, &names, &epochs) != 0)
        return;
    PGresult *r = q(c,
                    "UPDATE leases l SET owner = $1, epoch = l.epoch + 1,"
                    " expires_at = now() + $2::bigint * interval '1 millisecond',"
                    " acquired_at = now()"
                    " FROM (SELECT session FROM leases WHERE owner IS NULL OR expires_at IS NULL"
                    "  OR expires_at <= now() OR (owner = $1 AND NOT (session = ANY($4::text[])))"
                    "  ORDER BY random() LIMIT $3::bigint FOR UPDATE SKIP LOCKED) f"
                    " WHERE l.session = f.session"
                    " RETURNING l.session, l.epoch, pg_notify('wagw_leases', l.session)",
                    4, (const char *[]){c->node_id, lease, lim, names});
    free(names);
    free(epochs);
    if (!r)
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        uint64_t epoch = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        if (set_put(&c->held, name, epoch) != 0)
            continue; /* out of memory: it expires and another node takes it */
        __atomic_add_fetch(&c->claims, 1, __ATOMIC_RELAXED);
        LOG_INFO("cluster", "%s: claimed (epoch %" PRIu64 ")", name, epoch);
        to_loop(c, msg_new(EV_ACQUIRE, name, epoch));
    }
    PQclear(r);
}

static int owner_cmp(const void *a, const void *b)
{
    return strcmp(((const struct owner_row *)a)->name, ((const struct owner_row *)b)->name);
}

static void owners_free(struct owner_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].url);
    free(v);
}

/* Reads who holds each session (for commands sent to another node). */
static void refresh_owners(clu_t *c)
{
    PGresult *r = q(c,
                    "SELECT l.session, n.advertise_url, l.owner = $1 FROM leases l"
                    " JOIN nodes n ON n.id = l.owner WHERE l.expires_at > now()",
                    1, (const char *[]){c->node_id});
    if (!r)
        return;
    size_t n = (size_t)PQntuples(r), k = 0;
    struct owner_row *v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v && i < n; i++) {
        snprintf(v[k].name, sizeof(v[k].name), "%s", PQgetvalue(r, (int)i, 0));
        v[k].url = strdup(PQgetvalue(r, (int)i, 1));
        v[k].self = PQgetvalue(r, (int)i, 2)[0] == 't';
        if (v[k].url)
            k++;
    }
    PQclear(r);
    if (!v)
        return;
    qsort(v, k, sizeof(*v), owner_cmp);
    pthread_mutex_lock(&c->own_mu);
    struct owner_row *old = c->owners;
    size_t nold = c->nowners;
    c->owners = v;
    c->nowners = k;
    pthread_mutex_unlock(&c->own_mu);
    owners_free(old, nold);
}

int clu_owner_url(clu_t *c, const char *session, char *url, size_t len)
{
    struct owner_row key;
    snprintf(key.name, sizeof(key.name), "%s", session);
    int rc = -1;
    pthread_mutex_lock(&c->own_mu);
    struct owner_row *o =
        c->owners ? bsearch(&key, c->owners, c->nowners, sizeof(key), owner_cmp) : NULL;
    if (o && !o->self && o->url[0] && strlen(o->url) < len) {
        snprintf(url, len, "%s", o->url);
        rc = 0;
    }
    pthread_mutex_unlock(&c->own_mu);
    return rc;
}

/* Asks the loop to hand over what this node holds above `target`. */
static void shed(clu_t *c, long target)
{
    long held = (long)c->held.n, asked = 0;
    for (size_t i = 0; i < c->held.n; i++)
        if (c->held.v[i].shedding)
            asked++;
    long excess = held - asked - target;
    for (size_t i = 0; i < c->held.n && excess > 0 && asked < SHED_BATCH; i++) {
        lease_t *l = &c->held.v[i];
        if (l->shedding)
            continue;
        l->shedding = 1;
        asked++;
        excess--;
        to_loop(c, msg_new(EV_SHED, l->name, l->epoch));
    }
}

/* One live process per NODE_ID: the connection takes a lock named after
 * it, released with the connection (a process killed lets the next one in
 * at once). Two processes with one NODE_ID would each take the other's
 * leases for its own stale ones, over and over; the second one waits here,
 * not ready and holding nothing, until the first is gone. 0 once held, -1
 * while another process holds it or the database cannot be asked. */
static int node_lock(clu_t *c)
{
    PGresult *r = q(c, "SELECT pg_try_advisory_lock(hashtextextended('wagw-node:' || $1, 0))", 1,
                    (const char *[]){c->node_id});
    if (!r)
        return -1;
    c->node_locked = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!c->node_locked) {
        if (!c->dup_told)
            LOG_ERROR("cluster",
                      "NODE_ID %s is in use by another live process: this one stays out of the "
                      "cluster (not ready, no sessions) until that one is gone; every node needs "
                      "its own NODE_ID",
                      c->node_id);
        c->dup_told = 1;
        return -1;
    }
    if (c->dup_told)
        LOG_INFO("cluster", "NODE_ID %s is free again: this process joins", c->node_id);
    c->dup_told = 0;
    return 0;
}

/* A pass that could not renew: counted, the connection dropped if it is
 * broken, and the node not ready (the loop told once). */
static void pass_failed(clu_t *c)
{
    __atomic_add_fetch(&c->renew_failures, 1, __ATOMIC_RELAXED);
    if (PQstatus(c->db) != CONNECTION_OK)
        db_close(c);
    if (__atomic_exchange_n(&c->ready_db, 0, __ATOMIC_ACQ_REL))
        to_loop(c, msg_new(EV_READY, NULL, 0));
}

/* One pass: heartbeat and renew, then claim up to the fair share (or shed
 * down to it when draining or rebalancing). */
static void pass(clu_t *c)
{
    int64_t t0 = mono_ms();
    if (!c->db && db_connect(c) != 0) {
        __atomic_add_fetch(&c->renew_failures, 1, __ATOMIC_RELAXED);
        return;
    }
    if ((!c->node_locked && node_lock(c) != 0) || renew(c, t0) != 0) {
        pass_failed(c);
        return;
    }
    if (!__atomic_exchange_n(&c->ready_db, 1, __ATOMIC_ACQ_REL))
        to_loop(c, msg_new(EV_READY, NULL, 0));
    if (c->draining) {
        if (c->leader) { /* another node delivers the webhooks from now on */
            PGresult *u = q(c, "SELECT pg_advisory_unlock(" LEADER_LOCK ")", 0, NULL);
            PQclear(u);
            set_leader(c, 0);
        }
        shed(c, 0);
        return;
    }
    if (!c->leader) {
        PGresult *l = q(c, "SELECT pg_try_advisory_lock(" LEADER_LOCK ")", 0, NULL);
        if (l && PQgetvalue(l, 0, 0)[0] == 't') {
            LOG_INFO("cluster", "node %s delivers the webhooks", c->node_id);
            set_leader(c, 1);
        }
        PQclear(l);
    }
    long fair = fair_share(c);
    if (fair < 0)
        return;
    if (c->rebalance) {
        c->rebalance = 0;
        shed(c, fair);
        return;
    }
    if ((long)c->held.n < fair)
        claim(c, fair - (long)c->held.n);
    refresh_owners(c);
}

static void release(clu_t *c, const char *name, uint64_t epoch)
{
    char e[24];
    snprintf(e, sizeof(e), "%" PRIu64, epoch);
    set_del(&c->held, name);
    PGresult *r = q(c,
                    "WITH r AS (UPDATE leases SET owner = NULL, expires_at = NULL"
                    " WHERE session = $1 AND owner = $2 AND epoch = $3::bigint RETURNING session)"
                    " SELECT pg_notify('wagw_leases', session) FROM r",
                    3, (const char *[]){name, c->node_id, e});
    if (r) {
        __atomic_add_fetch(&c->released, 1, __ATOMIC_RELAXED);
        LOG_INFO("cluster", "%s: handed over", name);
        PQclear(r);
    }
}

static void json_str(yajl_gen g, const char *k, const char *v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    if (v)
        yajl_gen_string(g, (const unsigned char *)v, strlen(v));
    else
        yajl_gen_null(g);
}

static void json_int(yajl_gen g, const char *k, long long v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    yajl_gen_integer(g, v);
}

static void json_bool(yajl_gen g, const char *k, int v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    yajl_gen_bool(g, v);
}

static char *status_json(clu_t *c)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%u", c->lease_ms);
    PGresult *nr =
        q(c,
          "SELECT id, advertise_url,"
          " (extract(epoch from now() - heartbeat_at) * 1000)::bigint,"
          " heartbeat_at > now() - $1::bigint * interval '1 millisecond', draining,"
          " (SELECT count(*) FROM leases l WHERE l.owner = n.id AND l.expires_at > now())"
          " FROM nodes n ORDER BY id",
          1, (const char *[]){lease});
    PGresult *lr = nr ? q(c,
                          "SELECT session, owner, epoch,"
                          " coalesce((extract(epoch from now() - acquired_at) * 1000)::bigint, -1),"
                          " coalesce((extract(epoch from expires_at - now()) * 1000)::bigint, 0)"
                          " FROM leases ORDER BY session",
                          0, NULL)
                      : NULL;
    char *out = NULL;
    yajl_gen g = nr && lr ? yajl_gen_alloc(NULL) : NULL;
    if (g) {
        yajl_gen_map_open(g);
        json_bool(g, "clustered", 1);
        json_str(g, "node", c->node_id);
        json_int(g, "leaseMs", c->lease_ms);
        json_int(g, "renewMs", c->renew_ms);
        json_bool(g, "ready", clu_ready(c));
        yajl_gen_string(g, (const unsigned char *)"nodes", 5);
        yajl_gen_array_open(g);
        for (int i = 0; i < PQntuples(nr); i++) {
            yajl_gen_map_open(g);
            json_str(g, "id", PQgetvalue(nr, i, 0));
            json_str(g, "advertiseUrl", PQgetisnull(nr, i, 1) ? NULL : PQgetvalue(nr, i, 1));
            json_int(g, "heartbeatAgeMs", atoll(PQgetvalue(nr, i, 2)));
            json_bool(g, "live", PQgetvalue(nr, i, 3)[0] == 't');
            json_bool(g, "draining", PQgetvalue(nr, i, 4)[0] == 't');
            json_int(g, "sessions", atoll(PQgetvalue(nr, i, 5)));
            json_bool(g, "self", !strcmp(PQgetvalue(nr, i, 0), c->node_id));
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        yajl_gen_string(g, (const unsigned char *)"sessions", 8);
        yajl_gen_array_open(g);
        for (int i = 0; i < PQntuples(lr); i++) {
            int owned = !PQgetisnull(lr, i, 1) && atoll(PQgetvalue(lr, i, 4)) > 0;
            yajl_gen_map_open(g);
            json_str(g, "name", PQgetvalue(lr, i, 0));
            json_str(g, "owner", owned ? PQgetvalue(lr, i, 1) : NULL);
            json_int(g, "epoch", atoll(PQgetvalue(lr, i, 2)));
            json_int(g, "leaseAgeMs", owned ? atoll(PQgetvalue(lr, i, 3)) : 0);
            json_int(g, "expiresInMs", owned ? atoll(PQgetvalue(lr, i, 4)) : 0);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        const unsigned char *buf;
        size_t len;
        if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
            out = strndup((const char *)buf, len);
        yajl_gen_free(g);
    }
    PQclear(nr);
    PQclear(lr);
    return out;
}

/* Runs the commands the loop queued. */
static void run_commands(clu_t *c, int *want_pass)
{
    uint64_t v;
    if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        LOG_WARN("cluster", "wake: %s", strerror(errno));
    for (msg_t *m = take_all(&c->cmd_mu, &c->cmd_head, &c->cmd_tail), *next; m; m = next) {
        next = m->next;
        switch (m->kind) {
        case CMD_RELEASE:
            if (!c->db)
                db_connect(c);
            release(c, m->name, m->epoch);
            if (c->draining) /* the next ones to hand over */
                *want_pass = 1;
            break;
        case CMD_DROP:
            set_del(&c->held, m->name);
            break;
        case CMD_FORGET_ALL:
            c->held.n = 0;
            break;
        case CMD_KICK:
            *want_pass = 1;
            break;
        case CMD_DRAIN:
            c->draining = 1;
            *want_pass = 1;
            break;
        case CMD_REBALANCE: {
            PGresult *r = q(c, "SELECT pg_notify('wagw_rebalance', '')", 0, NULL);
            PQclear(r);
            break;
        }
        case CMD_STATUS: {
            if (!c->db)
                db_connect(c);
            msg_t *o = msg_new(EV_STATUS, NULL, 0);
            if (o) {
                o->status_cb = m->status_cb;
                o->status_arg = m->status_arg;
                o->json = c->db ? status_json(c) : NULL;
                to_loop(c, o);
            }
            break;
        }
        case CMD_STOP:
            c->stop = 1;
            break;
        }
        free(m);
    }
}

/* Reads the notifications that arrived and tells the loop. */
static void run_notifications(clu_t *c, int *want_pass)
{
    if (!c->db)
        return;
    if (!PQconsumeInput(c->db)) {
        LOG_WARN("cluster", "database connection lost: %s", PQerrorMessage(c->db));
        db_close(c);
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->db))) {
        if (!strcmp(n->relname, "wagw_events")) {
            lease_t *l = set_find(&c->held, n->extra);
            if (!l) /* the owner delivered its own events already */
                to_loop(c, msg_new(EV_EVENTS, n->extra, 0));
        } else if (!strcmp(n->relname, "wagw_sessions")) {
            to_loop(c, msg_new(EV_SESSIONS, n->extra, 0));
            *want_pass = 1;
        } else if (!strcmp(n->relname, "wagw_leases")) {
            *want_pass = 1; /* released: claim it; claimed: learn the owner */
        } else if (!strcmp(n->relname, "wagw_webhooks")) {
            to_loop(c, msg_new(EV_WEBHOOKS, NULL, 0));
        } else if (!strcmp(n->relname, "wagw_rebalance")) {
            c->rebalance = 1;
            *want_pass = 1;
        }
        PQfreemem(n);
    }
}

static void *thread_main(void *arg)
{
    clu_t *c = arg;
    int64_t next = 0, last = 0;
    while (!c->stop) {
        int64_t now = mono_ms();
        int want = 0;
        if (now >= next) {
            pass(c);
            last = mono_ms();
            /* (the NODE_ID lock is asked for again sooner: a killed
             * predecessor's connection ends within moments) */
            next = last + (!c->db ? 1000 : c->node_locked ? c->renew_ms : 250);
            continue;
        }
        struct pollfd p[2] = {{.fd = c->wake_fd, .events = POLLIN},
                              {.fd = c->db ? PQsocket(c->db) : -1, .events = POLLIN}};
        int rc = poll(p, c->db ? 2 : 1, (int)(next - now));
        if (rc < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            run_commands(c, &want);
        if (c->db)
            run_notifications(c, &want);
        if (want && !c->stop) {
            int64_t at = last + PASS_MIN_MS;
            if (at < next)
                next = at > mono_ms() ? at : mono_ms();
        }
    }
    db_close(c);
    return NULL;
}

/* --- the loop side --- */

static void set_ready(clu_t *c)
{
    int r = clu_ready(c);
    if (r != c->last_ready) {
        c->last_ready = r;
        LOG_INFO("cluster", "node %s %s", c->node_id, r ? "ready" : "not ready");
        if (c->cb.on_ready)
            c->cb.on_ready(c->cb.app_arg, r);
    }
}

/* Drops `name` from the sessions this node runs (on_lose lets it go) and
 * counts the loss, once: the self-fence, a fenced write and the renewal's
 * answer may each report the same lease. */
static void lose(clu_t *c, const char *name)
{
    if (!set_find(&c->owned, name))
        return; /* lost already (a self-fence before the renewal said so) */
    set_del(&c->owned, name);
    __atomic_store_n(&c->owned_n, c->owned.n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->lost, 1, __ATOMIC_RELAXED);
    if (c->cb.on_lose)
        c->cb.on_lose(c->cb.arg, name);
}

static void check_drained(clu_t *c)
{
    if (!c->drain_done || c->owned.n)
        return;
    void (*done)(void *) = c->drain_done;
    c->drain_done = NULL;
    if (c->drain_timer_open)
        uv_timer_stop(&c->drain_timer);
    done(c->drain_arg);
}

static void on_async(uv_async_t *a)
{
    clu_t *c = a->data;
    for (msg_t *m = take_all(&c->out_mu, &c->out_head, &c->out_tail), *next; m; m = next) {
        next = m->next;
        switch (m->kind) {
        case EV_ACQUIRE:
            if (c->stop_done || c->drain_done) { /* stopping: give it back */
                to_thread(c, msg_new(CMD_RELEASE, m->name, m->epoch));
                break;
            }
            if (set_put(&c->owned, m->name, m->epoch) == 0) {
                __atomic_store_n(&c->owned_n, c->owned.n, __ATOMIC_RELAXED);
                if (c->cb.on_acquire)
                    c->cb.on_acquire(c->cb.arg, m->name, m->epoch);
            }
            break;
        case EV_LOSE:
            lose(c, m->name);
            break;
        case EV_SHED: {
            lease_t *l = set_find(&c->owned, m->name);
            if (l && l->epoch == m->epoch && !l->shedding) {
                l->shedding = 1;
                if (c->cb.on_shed)
                    c->cb.on_shed(c->cb.arg, m->name, m->epoch);
            }
            break;
        }
        case EV_EVENTS:
            if (!set_find(&c->owned, m->name) && c->cb.on_events)
                c->cb.on_events(c->cb.arg, m->name);
            if (c->cb.on_log)
                c->cb.on_log(c->cb.app_arg);
            break;
        case EV_LEADER:
            __atomic_store_n(&c->leader_flag, (int)m->epoch, __ATOMIC_RELAXED);
            if ((int)m->epoch != c->leader_loop) {
                c->leader_loop = (int)m->epoch;
                if (c->cb.on_leader && !c->stop_done)
                    c->cb.on_leader(c->cb.app_arg, c->leader_loop);
            }
            break;
        case EV_RESYNC:
            if (c->cb.on_resync && !c->stop_done)
                c->cb.on_resync(c->cb.arg);
            if (c->cb.on_log && !c->stop_done)
                c->cb.on_log(c->cb.app_arg);
            break;
        case EV_WEBHOOKS:
            if (c->cb.on_webhooks && !c->stop_done)
                c->cb.on_webhooks(c->cb.app_arg);
            break;
        case EV_SESSIONS:
            if (c->cb.on_sessions)
                c->cb.on_sessions(c->cb.arg);
            break;
        case EV_STATUS:
            m->status_cb(m->status_arg, m->json);
            break;
        case EV_READY:
            break;
        }
        free(m);
    }
    set_ready(c);
    check_drained(c);
}

/* Self-fencing: past the deadline every session is closed here, whatever
 * the database thread is doing. */
static void on_fence_timer(uv_timer_t *t)
{
    clu_t *c = t->data;
    int64_t until = __atomic_load_n(&c->valid_until, __ATOMIC_ACQUIRE);
    if (c->owned.n && mono_ms() >= until - (int64_t)c->margin_ms) {
        LOG_WARN("cluster",
                 "node %s could not renew its leases in time: closing its %zu session(s)",
                 c->node_id, c->owned.n);
        __atomic_add_fetch(&c->self_fences, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&c->ready_db, 0, __ATOMIC_RELEASE);
        to_thread(c, msg_new(CMD_FORGET_ALL, NULL, 0));
        while (c->owned.n) {
            char name[NAME_MAX_];
            snprintf(name, sizeof(name), "%s", c->owned.v[0].name);
            lose(c, name);
        }
    }
    set_ready(c);
    check_drained(c);
}

int clu_new(const clu_opts_t *o, clu_t **out, char *err, size_t errlen)
{
    unsigned lease = o->lease_ms ? o->lease_ms : CLU_LEASE_MS_DEFAULT;
    unsigned renew = o->renew_ms ? o->renew_ms : CLU_RENEW_MS_DEFAULT;
    if (lease < 1000 || renew * 2 >= lease) {
        snprintf(err, errlen, "LEASE_MS must be at least 1000 and more than twice RENEW_MS");
        return -1;
    }
    if (!o->url || !o->node_id || !o->node_id[0] || strlen(o->node_id) > 128) {
        snprintf(err, errlen, "a cluster node needs a database URL and a NODE_ID (1-128 bytes)");
        return -1;
    }
    clu_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->loop = o->loop;
    c->url = strdup(o->url);
    c->node_id = strdup(o->node_id);
    c->advertise_url = strdup(o->advertise_url ? o->advertise_url : "");
    c->lease_ms = lease;
    c->renew_ms = renew;
    /* what closing the sessions may take, before the leases can expire */
    c->margin_ms = lease / 5 < 500 ? 500 : lease / 5;
    c->cb = o->cb;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->last_ready = -1;
    pthread_mutex_init(&c->cmd_mu, NULL);
    pthread_mutex_init(&c->out_mu, NULL);
    pthread_mutex_init(&c->own_mu, NULL);
    if (!c->url || !c->node_id || !c->advertise_url || c->wake_fd < 0) {
        snprintf(err, errlen, "out of memory");
        clu_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int clu_start(clu_t *c)
{
    if (uv_async_init(c->loop, &c->async, on_async) != 0)
        return -1;
    c->async.data = c;
    uv_timer_init(c->loop, &c->fence_timer);
    c->fence_timer.data = c;
    uv_timer_init(c->loop, &c->drain_timer);
    c->drain_timer.data = c;
    c->drain_timer_open = 1;
    c->handles_open = 3;
    uv_timer_start(&c->fence_timer, on_fence_timer, 100, 100);
    if (pthread_create(&c->th, NULL, thread_main, c) != 0)
        return -1;
    c->started = 1;
    return 0;
}

const char *clu_node_id(const clu_t *c)
{
    return c->node_id;
}

unsigned clu_lease_ms(const clu_t *c)
{
    return c->lease_ms;
}

unsigned clu_renew_ms(const clu_t *c)
{
    return c->renew_ms;
}

int clu_ready(const clu_t *c)
{
    int64_t until = __atomic_load_n(&c->valid_until, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&c->ready_db, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&c->draining_flag, __ATOMIC_ACQUIRE) &&
           mono_ms() < until - (int64_t)c->margin_ms;
}

uint64_t clu_epoch(const clu_t *c, const char *session)
{
    lease_t *l = set_find((lease_set_t *)&c->owned, session);
    return l ? l->epoch : 0;
}

void clu_release(clu_t *c, const char *session, uint64_t epoch)
{
    lease_t *l = set_find(&c->owned, session);
    if (l && l->epoch == epoch) {
        set_del(&c->owned, session);
        __atomic_store_n(&c->owned_n, c->owned.n, __ATOMIC_RELAXED);
    }
    to_thread(c, msg_new(CMD_RELEASE, session, epoch));
    check_drained(c);
}

void clu_fenced(clu_t *c, const char *session)
{
    to_thread(c, msg_new(CMD_DROP, session, 0));
    lose(c, session);
    check_drained(c);
}

void clu_kick(clu_t *c)
{
    to_thread(c, msg_new(CMD_KICK, NULL, 0));
}

static void on_drain_timeout(uv_timer_t *t)
{
    clu_t *c = t->data;
    if (!c->drain_done)
        return;
    LOG_WARN("cluster", "drain: %zu session(s) not handed over in time", c->owned.n);
    void (*done)(void *) = c->drain_done;
    c->drain_done = NULL;
    done(c->drain_arg);
}

void clu_drain(clu_t *c, unsigned timeout_ms, void (*done)(void *arg), void *arg)
{
    __atomic_store_n(&c->draining_flag, 1, __ATOMIC_RELEASE);
    set_ready(c);
    c->drain_done = done;
    c->drain_arg = arg;
    LOG_INFO("cluster", "node %s draining: handing over %zu session(s)", c->node_id, c->owned.n);
    to_thread(c, msg_new(CMD_DRAIN, NULL, 0));
    uv_timer_start(&c->drain_timer, on_drain_timeout, timeout_ms, 0);
    check_drained(c);
}

void clu_rebalance(clu_t *c)
{
    to_thread(c, msg_new(CMD_REBALANCE, NULL, 0));
}

int clu_status(clu_t *c, void (*done)(void *arg, char *json), void *arg)
{
    msg_t *m = msg_new(CMD_STATUS, NULL, 0);
    if (!m)
        return -1;
    m->status_cb = done;
    m->status_arg = arg;
    to_thread(c, m);
    return 0;
}

void clu_stats(const clu_t *c, clu_stats_t *o)
{
    clu_t *m = (clu_t *)c;
    o->claims = __atomic_load_n(&m->claims, __ATOMIC_RELAXED);
    o->lost = __atomic_load_n(&m->lost, __ATOMIC_RELAXED);
    o->released = __atomic_load_n(&m->released, __ATOMIC_RELAXED);
    o->self_fences = __atomic_load_n(&m->self_fences, __ATOMIC_RELAXED);
    o->renew_failures = __atomic_load_n(&m->renew_failures, __ATOMIC_RELAXED);
    o->owned = __atomic_load_n(&m->owned_n, __ATOMIC_RELAXED);
    o->ready = clu_ready(c);
    o->draining = __atomic_load_n(&m->draining_flag, __ATOMIC_RELAXED);
    o->leader = __atomic_load_n(&m->leader_flag, __ATOMIC_RELAXED);
}

static void on_handle_closed(uv_handle_t *h)
{
    clu_t *c = h->data;
    if (--c->handles_open == 0 && c->stop_done)
        c->stop_done(c->stop_arg);
}

static void stop_noop(void *arg)
{
    (void)arg;
}

void clu_stop(clu_t *c, void (*done)(void *arg), void *arg)
{
    if (c->stop_called) {
        if (done)
            done(arg);
        return;
    }
    c->stop_called = 1;
    if (!done)
        done = stop_noop;
    c->stop_done = done;
    c->stop_arg = arg;
    if (c->started) {
        to_thread(c, msg_new(CMD_STOP, NULL, 0));
        pthread_join(c->th, NULL);
        c->started = 0;
    }
    if (!c->handles_open) {
        done(arg);
        return;
    }
    /* the statuses asked and not answered still get their callback */
    on_async(&c->async);
    for (msg_t *m = take_all(&c->cmd_mu, &c->cmd_head, &c->cmd_tail), *next; m; m = next) {
        next = m->next;
        if (m->kind == CMD_STATUS)
            m->status_cb(m->status_arg, NULL);
        free(m);
    }
    uv_close((uv_handle_t *)&c->async, on_handle_closed);
    uv_close((uv_handle_t *)&c->fence_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->drain_timer, on_handle_closed);
}

void clu_free(clu_t *c)
{
    if (!c)
        return;
    for (msg_t *m = c->cmd_head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    for (msg_t *m = c->out_head, *n; m; m = n) {
        n = m->next;
        free(m->json);
        free(m);
    }
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->cmd_mu);
    pthread_mutex_destroy(&c->out_mu);
    pthread_mutex_destroy(&c->own_mu);
    owners_free(c->owners, c->nowners);
    free(c->held.v);
    free(c->owned.v);
    free(c->url);
    free(c->node_id);
    free(c->advertise_url);
    free(c);
}
