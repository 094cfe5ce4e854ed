/* Atomic counters and their Prometheus text rendering (see metrics.h). */
#include "server/metrics.h"

#include "session/cluster/cluster.h"

#include "session/journal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_CODES 8
static const int http_codes[HTTP_CODES] = {200, 400, 401, 404, 405, 409, 413, 0};

struct metrics {
    uint64_t req[METRICS_ROUTE_COUNT][METRICS_STATUS_SLOTS + HTTP_CODES + 16];
    uint64_t auth_failures;
    int64_t subs_sse, subs_ws, subs_grpc;
    uint64_t reconnects;
    sess_registry_t *reg;       /* every session's series; NULL: only the snapshot given */
    sess_jstore_t *journal;     /* the event log's counters, or NULL */
    pthread_mutex_t version_mu; /* guards wa_version and wa_version_source */
    char wa_version[48], wa_version_source[48];
    uint64_t limits[METRICS_LIMIT_COUNT];
    int64_t http_connections;
    uint64_t reconnect_waits;
    wh_t *wh;       /* the webhook targets' series; NULL: none */
    clu_t *cluster; /* the node's cluster series; NULL: a single node */
};

static const char *const limit_names[METRICS_LIMIT_COUNT] = {
    "http_connections", "stalled", "ws_message_size", "ws_unread", "grpc_streams"};

static const char *const route_names[METRICS_ROUTE_COUNT] = {
    [METRICS_ROUTE_STATUS] = "status",
    [METRICS_ROUTE_QR] = "qr",
    [METRICS_ROUTE_RECONNECT] = "reconnect",
    [METRICS_ROUTE_LOGOUT] = "logout",
    [METRICS_ROUTE_EVENTS] = "events",
    [METRICS_ROUTE_HEALTH] = "health",
    [METRICS_ROUTE_METRICS] = "metrics",
    [METRICS_ROUTE_PAGE] = "page",
    [METRICS_ROUTE_PAIRING_CODE] = "pairing_code",
    [METRICS_ROUTE_OTHER] = "other",
    [METRICS_ROUTE_GRPC_GETSTATUS] = "GetStatus",
    [METRICS_ROUTE_GRPC_GETQR] = "GetQR",
    [METRICS_ROUTE_GRPC_RECONNECT] = "Reconnect",
    [METRICS_ROUTE_GRPC_LOGOUT] = "Logout",
    [METRICS_ROUTE_GRPC_WATCH] = "WatchStatus",
    [METRICS_ROUTE_GRPC_PAIRING_CODE] = "RequestPairingCode",
    [METRICS_ROUTE_GRPC_OTHER] = "other"};

void metrics_set_registry(metrics_t *m, sess_registry_t *reg)
{
    m->reg = reg;
}

void metrics_set_webhooks(metrics_t *m, wh_t *wh)
{
    m->wh = wh;
}

void metrics_set_journal(metrics_t *m, sess_jstore_t *j)
{
    m->journal = j;
}

void metrics_set_cluster(metrics_t *m, clu_t *c)
{
    m->cluster = c;
}

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof(metrics_t));
    if (m)
        pthread_mutex_init(&m->version_mu, NULL);
    return m;
}

void metrics_free(metrics_t *m)
{
    if (m)
        pthread_mutex_destroy(&m->version_mu);
    free(m);
}

/* Keeps what is safe inside a label value: no quote, backslash or newline. */
static void label_copy(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < n; i++)
        dst[i] = (src[i] == '"' || src[i] == '\\' || src[i] == '\n') ? '_' : src[i];
    dst[i] = 0;
}

void metrics_wa_version(metrics_t *m, const char *version, const char *source)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->version_mu);
    label_copy(m->wa_version, sizeof(m->wa_version), version);
    label_copy(m->wa_version_source, sizeof(m->wa_version_source), source);
    pthread_mutex_unlock(&m->version_mu);
}

static int is_grpc(metrics_route_t r)
{
    return r >= METRICS_ROUTE_GRPC_GETSTATUS;
}

/* HTTP statuses are stored by exact code when common, else by class
 * (slots 100..599 -> 1xx..5xx at the end). */
static size_t slot_for(metrics_route_t route, int status)
{
    if (is_grpc(route))
        return (status >= 0 && status < METRICS_STATUS_SLOTS) ? (size_t)status : 2;
    for (size_t i = 0; i + 1 < HTTP_CODES; i++)
        if (http_codes[i] == status)
            return METRICS_STATUS_SLOTS + i;
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    return METRICS_STATUS_SLOTS + HTTP_CODES + (size_t)cls;
}

void metrics_request(metrics_t *m, metrics_route_t route, int status)
{
    if (!m || route >= METRICS_ROUTE_COUNT)
        return;
    __atomic_add_fetch(&m->req[route][slot_for(route, status)], 1, __ATOMIC_RELAXED);
}

void metrics_auth_failure(metrics_t *m)
{
    if (m)
        __atomic_add_fetch(&m->auth_failures, 1, __ATOMIC_RELAXED);
}

void metrics_subscribers(metrics_t *m, const char *transport, int delta)
{
    if (!m)
        return;
    int64_t *c = !strcmp(transport, "sse")         ? &m->subs_sse
                 : !strcmp(transport, "websocket") ? &m->subs_ws
                                                   : &m->subs_grpc;
    __atomic_add_fetch(c, delta, __ATOMIC_RELAXED);
}

void metrics_reconnect(metrics_t *m)
{
    if (m)
        __atomic_add_fetch(&m->reconnects, 1, __ATOMIC_RELAXED);
}

void metrics_limit(metrics_t *m, metrics_limit_t which)
{
    if (m && which < METRICS_LIMIT_COUNT)
        __atomic_add_fetch(&m->limits[which], 1, __ATOMIC_RELAXED);
}

void metrics_reconnect_waits(metrics_t *m, size_t n)
{
    if (m)
        __atomic_store_n(&m->reconnect_waits, (uint64_t)n, __ATOMIC_RELAXED);
}

void metrics_http_connections(metrics_t *m, int delta)
{
    if (m)
        __atomic_add_fetch(&m->http_connections, delta, __ATOMIC_RELAXED);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int err;
} out_t;

static void outf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(out_t *o, const char *fmt, ...)
{
    if (o->err)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->err = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n + 1024;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->err = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

/* The cluster node's series (fenced_writes: the store's count of refused
 * writes). */
static void render_cluster(out_t *o, clu_t *c, uint64_t fenced_writes)
{
    clu_stats_t cs;
    clu_stats(c, &cs);
    const struct {
        const char *name, *type, *help;
        unsigned long long value;
    } series[] = {
        {"ready", "gauge", "1 while the node serves (leases renewed, not draining).",
         (unsigned long long)cs.ready},
        {"draining", "gauge", "1 while the node hands its sessions over.",
         (unsigned long long)cs.draining},
        {"webhook_leader", "gauge", "1 while this node delivers the cluster's webhooks.",
         (unsigned long long)cs.leader},
        {"sessions_owned", "gauge", "Sessions whose lease this node holds.",
         (unsigned long long)cs.owned},
        {"claims_total", "counter", "Leases claimed (unowned or expired sessions).",
         (unsigned long long)cs.claims},
        {"lost_total", "counter", "Leases lost (taken over, expired or fenced).",
         (unsigned long long)cs.lost},
        {"released_total", "counter", "Sessions handed over (drain, rebalance).",
         (unsigned long long)cs.released},
        {"self_fences_total", "counter",
         "Times the node closed its sessions because it could not renew in time.",
         (unsigned long long)cs.self_fences},
        {"renew_failures_total", "counter", "Renewal passes that failed.",
         (unsigned long long)cs.renew_failures},
        {"fenced_writes_total", "counter",
         "Writes and events the store refused: this node no longer held the session.",
         (unsigned long long)fenced_writes},
    };
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++)
        outf(o,
             "# HELP wagw_cluster_%s %s\n# TYPE wagw_cluster_%s %s\n"
             "wagw_cluster_%s{node=\"%s\"} %llu\n",
             series[i].name, series[i].help, series[i].name, series[i].type, series[i].name,
             clu_node_id(c), series[i].value);
}

/* Per webhook target (at most MAX_WEBHOOKS series sets; the id is the only
 * label: never the URL, which may carry a token). The counters come from
 * the sender's memory (wh_targets): a scrape never waits on the store. */
static void render_webhooks(metrics_t *m, out_t *o)
{
    wh_target_info_t *v = NULL;
    size_t n = 0;
    if (!m->wh || wh_targets(m->wh, &v, &n) != WH_OK)
        return;
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"wagw_webhook_delivered_total", "counter", "Events delivered (2xx) since the start."},
        {"wagw_webhook_failed_attempts_total", "counter",
         "Delivery attempts that failed since the start."},
        {"wagw_webhook_retrying", "gauge",
         "1 while the target's next delivery waits to be retried."},
        {"wagw_webhook_dead", "gauge", "Dead letters (retry budget spent) waiting for a replay."},
        {"wagw_webhook_oldest_pending_seconds", "gauge",
         "Age of the oldest delivery still pending."},
    };
    for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
        outf(o, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help, series[k].name,
             series[k].type);
        for (size_t i = 0; i < n; i++) {
            unsigned long long val = k == 0   ? v[i].delivered
                                     : k == 1 ? v[i].failed
                                     : k == 2 ? (unsigned long long)v[i].retrying
                                     : k == 3 ? v[i].dead
                                              : (unsigned long long)(v[i].oldest_pending_ms / 1000);
            outf(o, "%s{webhook=\"%s\"} %llu\n", series[k].name, v[i].id, val);
        }
    }
    free(v);
}

char *metrics_render(metrics_t *m, const sess_snapshot_t *snap)
{
    out_t o = {malloc(4096), 0, 4096, 0};
    if (!o.buf)
        return NULL;
    o.buf[0] = 0;
    /* per session: one series set each, so the cardinality is bounded by
     * MAX_SESSIONS; the detail as a label of an info series */
    size_t n = 0;
    sess_snapshot_t **all = m->reg ? sess_registry_snapshots(m->reg, &n) : NULL;
    sess_snapshot_t *one[1] = {(sess_snapshot_t *)snap};
    sess_snapshot_t **v = all ? all : one;
    if (!all)
        n = snap ? 1 : 0;
    static const sess_state_t states[] = {SESS_DISCONNECTED, SESS_CONNECTING, SESS_QR_READY,
                                          SESS_CONNECTED};
    uint64_t fenced = 0;
    if (m->journal) {
        sess_jstore_stats_t js;
        sess_jstore_stats(m->journal, &js);
        fenced = js.fenced;
        outf(&o,
             "# HELP wagw_events_stored_total Events written to the event log.\n"
             "# TYPE wagw_events_stored_total counter\n"
             "wagw_events_stored_total %llu\n"
             "# HELP wagw_events_store_failures_total Events the log could not store (delivered "
             "live only).\n"
             "# TYPE wagw_events_store_failures_total counter\n"
             "wagw_events_store_failures_total %llu\n"
             "# HELP wagw_events_commits_total Event log transactions (group commits).\n"
             "# TYPE wagw_events_commits_total counter\n"
             "wagw_events_commits_total %llu\n"
             "# HELP wagw_events_pruned_total Events deleted by EVENT_RETENTION.\n"
             "# TYPE wagw_events_pruned_total counter\n"
             "wagw_events_pruned_total %llu\n"
             "# HELP wagw_events_store_retries_total Event log transactions PostgreSQL ended "
             "(a deadlock it broke, a serialization failure) and that were run again.\n"
             "# TYPE wagw_events_store_retries_total counter\n"
             "wagw_events_store_retries_total %llu\n",
             (unsigned long long)js.appended, (unsigned long long)js.failed,
             (unsigned long long)js.commits, (unsigned long long)js.pruned,
             (unsigned long long)js.retried);
    }
    if (m->cluster)
        render_cluster(&o, m->cluster, fenced);
    outf(&o,
         "# HELP wagw_sessions Sessions (WhatsApp accounts) held.\n"
         "# TYPE wagw_sessions gauge\n"
         "wagw_sessions %zu\n",
         n);
    outf(&o, "# HELP wagw_session_state 1 for the session's current state.\n"
             "# TYPE wagw_session_state gauge\n");
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < 4; i++)
            outf(&o, "wagw_session_state{session=\"%s\",state=\"%s\"} %d\n", v[k]->session,
                 sess_state_name(states[i]), v[k]->state == states[i]);
    outf(&o, "# HELP wagw_session_detail 1 for the detail of the session's current state.\n"
             "# TYPE wagw_session_detail gauge\n");
    for (size_t k = 0; k < n; k++)
        outf(&o, "wagw_session_detail{session=\"%s\",detail=\"%s\"} 1\n", v[k]->session,
             v[k]->detail);
    outf(&o, "# HELP wagw_session_transitions_total State changes published.\n"
             "# TYPE wagw_session_transitions_total counter\n");
    for (size_t k = 0; k < n; k++)
        outf(&o, "wagw_session_transitions_total{session=\"%s\"} %llu\n", v[k]->session,
             (unsigned long long)(v[k]->seq - 1));
    outf(&o, "# HELP wagw_session_connects_total WhatsApp connections started (reconnects "
             "included).\n"
             "# TYPE wagw_session_connects_total counter\n");
    for (size_t k = 0; k < n; k++)
        outf(&o, "wagw_session_connects_total{session=\"%s\"} %llu\n", v[k]->session,
             (unsigned long long)v[k]->connects);
    outf(&o, "# HELP wagw_session_linked 1 when credentials of a linked account exist.\n"
             "# TYPE wagw_session_linked gauge\n");
    for (size_t k = 0; k < n; k++)
        outf(&o, "wagw_session_linked{session=\"%s\"} %d\n", v[k]->session, v[k]->linked);
    if (all)
        sess_snapshots_free(all, n);
    outf(&o, "# HELP wagw_requests_total Requests by transport, route and status.\n"
             "# TYPE wagw_requests_total counter\n");
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++) {
        for (size_t s = 0; s < sizeof(m->req[r]) / sizeof(m->req[r][0]); s++) {
            uint64_t v = __atomic_load_n(&m->req[r][s], __ATOMIC_RELAXED);
            if (!v)
                continue;
            char code[16];
            if (s < METRICS_STATUS_SLOTS)
                snprintf(code, sizeof(code), "%zu", s);
            else if (s < METRICS_STATUS_SLOTS + HTTP_CODES - 1)
                snprintf(code, sizeof(code), "%d", http_codes[s - METRICS_STATUS_SLOTS]);
            else
                snprintf(code, sizeof(code), "%zuxx", s - METRICS_STATUS_SLOTS - HTTP_CODES);
            outf(&o, "wagw_requests_total{transport=\"%s\",route=\"%s\",%s=\"%s\"} %llu\n",
                 is_grpc((metrics_route_t)r) ? "grpc" : "http", route_names[r],
                 is_grpc((metrics_route_t)r) ? "code" : "status", code, (unsigned long long)v);
        }
    }
    outf(&o,
         "# HELP wagw_subscribers Live state subscribers by transport.\n"
         "# TYPE wagw_subscribers gauge\n"
         "wagw_subscribers{transport=\"sse\"} %lld\n"
         "wagw_subscribers{transport=\"websocket\"} %lld\n"
         "wagw_subscribers{transport=\"grpc\"} %lld\n",
         (long long)__atomic_load_n(&m->subs_sse, __ATOMIC_RELAXED),
         (long long)__atomic_load_n(&m->subs_ws, __ATOMIC_RELAXED),
         (long long)__atomic_load_n(&m->subs_grpc, __ATOMIC_RELAXED));
    outf(&o,
         "# HELP wagw_reconnects_total Reconnects requested through the API.\n"
         "# TYPE wagw_reconnects_total counter\n"
         "wagw_reconnects_total %llu\n"
         "# HELP wagw_auth_failures_total Requests refused for a missing or wrong API key.\n"
         "# TYPE wagw_auth_failures_total counter\n"
         "wagw_auth_failures_total %llu\n",
         (unsigned long long)__atomic_load_n(&m->reconnects, __ATOMIC_RELAXED),
         (unsigned long long)__atomic_load_n(&m->auth_failures, __ATOMIC_RELAXED));
    pthread_mutex_lock(&m->version_mu);
    if (m->wa_version[0])
        outf(&o,
             "# HELP wagw_wa_version_info The WhatsApp Web version announced to WhatsApp and its "
             "source (configured, discovered, stored or builtin).\n"
             "# TYPE wagw_wa_version_info gauge\n"
             "wagw_wa_version_info{version=\"%s\",source=\"%s\"} 1\n",
             m->wa_version, m->wa_version_source);
    pthread_mutex_unlock(&m->version_mu);
    outf(&o,
         "# HELP wagw_reconnect_waits Reconnects waiting for their answer.\n"
         "# TYPE wagw_reconnect_waits gauge\n"
         "wagw_reconnect_waits %llu\n",
         (unsigned long long)__atomic_load_n(&m->reconnect_waits, __ATOMIC_RELAXED));
    outf(&o,
         "# HELP wagw_http_connections Open HTTP connections.\n"
         "# TYPE wagw_http_connections gauge\n"
         "wagw_http_connections %lld\n"
         "# HELP wagw_limit_hits_total Requests or connections refused or closed by a resource "
         "limit.\n"
         "# TYPE wagw_limit_hits_total counter\n",
         (long long)__atomic_load_n(&m->http_connections, __ATOMIC_RELAXED));
    for (int i = 0; i < METRICS_LIMIT_COUNT; i++)
        outf(&o, "wagw_limit_hits_total{limit=\"%s\"} %llu\n", limit_names[i],
             (unsigned long long)__atomic_load_n(&m->limits[i], __ATOMIC_RELAXED));
    render_webhooks(m, &o);
    if (o.err) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
