/* wa-gateway entry point: loads the configuration, opens the credential
 * store, starts the "default" WhatsApp session, the HTTP listener (and later
 * gRPC) on one libuv loop, and shuts everything down cleanly on SIGINT or
 * SIGTERM so that nothing leaks (checked under ASan). */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "api/api.h"
#include "common/httpc.h"
#include "common/log.h"
#include "api/qr.h"
#include "server/config.h"
#include "server/grpc.h"
#include "server/http.h"
#include "server/metrics.h"
#include "session/cluster/cluster.h"
#include "session/journal.h"
#include "session/manager.h"
#include "session/session.h"
#include "session/store/store.h"
#include "session/version.h"
#include "session/webhook/webhook.h"

/* --qr-terminal: prints every new QR as half-blocks, and every new pairing
 * code, on the controlling terminal. Never on stderr: that is the log
 * stream (a file, the journal), and the QR carries the adv secret. */
typedef struct {
    sess_sub_t *sub;
    uv_async_t wake;
    const void *last_qr;
    char last_code[16];
    int tty; /* /dev/tty, or -1 */
} qrterm_t;

/* Everything main owns, passed to the loop callbacks. */
typedef struct {
    uv_loop_t loop;
    cfg_t cfg;
    store_t *store;
    sess_mgr_t *mgr;         /* the sessions and the WhatsApp side they share */
    httpc_t *httpc;          /* outgoing HTTP (version discovery); NULL with WA_VERSION */
    sess_version_t *version; /* the WhatsApp Web version policy */
    sess_registry_t *reg;
    wh_t *wh;               /* webhook delivery */
    sess_jstore_t *journal; /* the event log (store-backed journal of reg) */
    sess_q_t *storeq;       /* the store's job queue: its round trips off the loop */
    api_t *api;
    metrics_t *metrics;
    http_server_t *http;
    grpc_srv_t *grpc;
    qrterm_t qrterm;
    uv_signal_t sigint, sigterm;
    int shutting_down, pending;
    clu_t *cluster;     /* several nodes on PostgreSQL; NULL with SQLite */
    httpc_t *fwd_httpc; /* cluster: forwards commands to the session's node */
} app_t;

static void maybe_stop_loop(app_t *app)
{
    if (--app->pending == 0)
        uv_stop(&app->loop); /* lws finishes its part after the loop returns */
}

static void on_http_stopped(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "HTTP listener closed");
    maybe_stop_loop(app);
}

static void on_sessions_stopped(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "sessions stopped");
    maybe_stop_loop(app);
}

static void on_cluster_stopped(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "cluster node stopped");
    maybe_stop_loop(app);
}

/* The sessions are stopped; in a cluster the node's thread goes last. */
static void on_sessions_stopped_cluster(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "sessions stopped");
    clu_stop(app->cluster, on_cluster_stopped, app);
}

/* Cluster: this node delivers the webhooks, or another one does. */
static void on_leader(void *arg, int leader)
{
    app_t *app = arg;
    wh_set_sending(app->wh, leader);
}

static void on_webhooks_changed(void *arg)
{
    app_t *app = arg;
    wh_reload(app->wh);
}

static void on_log_grew(void *arg)
{
    app_t *app = arg;
    wh_wake(app->wh);
}

static void shut_down(app_t *app)
{
    app->pending = 2;
    wh_close(app->wh); /* pending deliveries stay in the store for the next start */
    http_server_stop(app->http, 3000, on_http_stopped, app);
    sess_mgr_stop(app->mgr, app->cluster ? on_sessions_stopped_cluster : on_sessions_stopped, app);
}

/* Drained: every session of this node was handed over (or the time ran
 * out). */
static void on_drained(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "drained: shutting down");
    shut_down(app);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (app->shutting_down)
        return;
    app->shutting_down = 1;
    LOG_INFO("main", "received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    if (app->cluster) /* hand the sessions over first: no QR, seconds of downtime */
        clu_drain(app->cluster, (unsigned)app->cfg.drain_timeout_ms, on_drained, app);
    else
        shut_down(app);
}

/* Cluster mode: the node's id (NODE_ID, else hostname:PORT) and the URL the
 * other nodes reach it at (ADVERTISE_URL, else http://HOST:PORT). */
static int start_cluster(app_t *app, char *err, size_t errlen)
{
    char host[128] = "localhost", node[200], adv[300];
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "localhost");
    snprintf(node, sizeof(node), "%s:%d", host, app->cfg.port);
    snprintf(adv, sizeof(adv), "%s://%s:%d", app->cfg.tls_cert ? "https" : "http", app->cfg.host,
             app->cfg.port);
    clu_opts_t co = {.loop = &app->loop,
                     .url = app->cfg.store_url,
                     .node_id = app->cfg.node_id ? app->cfg.node_id : node,
                     .advertise_url = app->cfg.advertise_url ? app->cfg.advertise_url : adv,
                     .lease_ms = (unsigned)app->cfg.lease_ms,
                     .renew_ms = (unsigned)app->cfg.renew_ms};
    sess_mgr_cluster_callbacks(app->mgr, &co.cb);
    co.cb.on_leader = on_leader;
    co.cb.on_webhooks = on_webhooks_changed;
    co.cb.on_log = on_log_grew;
    co.cb.app_arg = app;
    if (app->cfg.cluster_secret && strlen(app->cfg.cluster_secret) < 32) {
        snprintf(err, errlen, "CLUSTER_SECRET must be at least 32 characters");
        return -1;
    }
    if (!app->cfg.cluster_secret)
        LOG_WARN("main", "CLUSTER_SECRET is not set: commands sent to a node that does not run "
                         "their session are answered 409 instead of forwarded");
    else if (!(app->fwd_httpc = httpc_new(&app->loop, &(httpc_opts_t){0}, err, errlen)))
        return -1;
    if (clu_new(&co, &app->cluster, err, errlen) != 0)
        return -1;
    if (store_set_node(app->store, co.node_id) != 0) {
        snprintf(err, errlen, "cannot set the store's node id");
        return -1;
    }
    sess_mgr_set_cluster(app->mgr, app->cluster);
    LOG_INFO("main", "cluster node %s (lease %u ms, renewed every %u ms)", co.node_id,
             clu_lease_ms(app->cluster), clu_renew_ms(app->cluster));
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

extern const unsigned char wagw_page_html[];
extern const size_t wagw_page_html_len;

static void tty_write(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(fd, s + off, len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
}

static void qrterm_drain(uv_async_t *a)
{
    qrterm_t *q = a->data;
    sess_snapshot_t *snap;
    while (q->sub && sess_sub_next(q->sub, &snap) == SESS_SUB_OK) {
        if (snap->state == SESS_QR_READY && snap->qr && snap->qr != q->last_qr) {
            q->last_qr = snap->qr;
            int err;
            char *block = api_qr_terminal(snap->qr->text, &err);
            if (block) {
                LOG_INFO("qr", "a new QR code is on the terminal (valid %lld s)",
                         (long long)sess_snapshot_qr_expires_in(snap, sess_now_ms()));
                tty_write(q->tty, block);
                explicit_bzero(block, strlen(block));
                free(block);
            }
        }
        int64_t code_left = api_link_code_expires_in(snap, sess_now_ms());
        if (code_left > 0 && strcmp(snap->link_code, q->last_code)) {
            snprintf(q->last_code, sizeof(q->last_code), "%s", snap->link_code);
            LOG_INFO("qr",
                     "a new pairing code is on the terminal: type it on the phone, Linked "
                     "devices > Link with phone number (valid %lld s)",
                     (long long)code_left);
            char line[48];
            snprintf(line, sizeof(line), "\n    %s\n\n", snap->link_code);
            tty_write(q->tty, line);
            explicit_bzero(line, sizeof(line));
        }
        sess_snapshot_unref(snap);
    }
}

static void qrterm_notify(void *arg)
{
    qrterm_t *q = arg;
    uv_async_send(&q->wake);
}

/* The journal committed events: the webhook sender looks for new
 * deliveries at once (its poll is only the fallback). */
static void on_events_committed(void *arg)
{
    app_t *app = arg;
    wh_wake(app->wh);
}

/* The version in use changed: /metrics shows it (the policy logs it). */
static void on_version(void *arg, const char *version, sess_version_source_t src)
{
    app_t *app = arg;
    metrics_wa_version(app->metrics, version, sess_version_source_name(src));
}

/* Raises the open-files limit to its hard limit (every connection is a
 * descriptor) and returns how many descriptors the process may use. */
static rlim_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

static int ready(void *arg, const char **why)
{
    app_t *app = arg;
    if (!app->store) {
        *why = "credential store not open";
        return 0;
    }
    if (app->cluster && !clu_ready(app->cluster)) {
        *why = app->shutting_down ? "draining" : "cluster: leases not renewed in time";
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static app_t app; /* main's own state */
    char err[512];

    if (cfg_load(&app.cfg, argc, argv, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        return 2;
    }
    /* the key is copied: blank it in the environment (/proc/PID/environ) */
    char *env_key = getenv("API_KEY");
    if (env_key)
        explicit_bzero(env_key, strlen(env_key));
    char *env_whsec = getenv("WEBHOOK_SECRET");
    if (env_whsec)
        explicit_bzero(env_whsec, strlen(env_whsec));
    char *env_csec = getenv("CLUSTER_SECRET");
    if (env_csec)
        explicit_bzero(env_csec, strlen(env_csec));
    if (app.cfg.help) {
        cfg_print_help(stdout, "wa-gateway");
        cfg_free(&app.cfg);
        return 0;
    }
    if (app.cfg.device_name && !sess_mgr_device_name_ok(app.cfg.device_name)) {
        fprintf(stderr, "wa-gateway: invalid DEVICE_NAME: %s\n",
                sess_mgr_strerror(SESS_MGR_EDEVICE));
        cfg_free(&app.cfg);
        return 2;
    }
    if (cfg_validate(&app.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        cfg_free(&app.cfg);
        return 2;
    }
    log_set_level(app.cfg.log_level);
    if (!app.cfg.allow_core_dumps) {
        /* a core dump or a debugger attached by another process of the same
         * user would hold the keys in memory */
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    rlim_t nofile = raise_nofile();
    /* keep descriptors for gRPC, the store and WhatsApp beside HTTP */
    if (nofile != RLIM_INFINITY && (rlim_t)app.cfg.max_connections + 256 > nofile) {
        int max = nofile > 512 ? (int)(nofile - 256) : (int)(nofile / 2);
        LOG_WARN("main", "MAX_CONNECTIONS %d is over what the open-files limit (%llu) allows: %d",
                 app.cfg.max_connections, (unsigned long long)nofile, max);
        app.cfg.max_connections = max;
    }
    const char *warnings[8];
    for (size_t i = 0, n = cfg_warnings(&app.cfg, warnings, 8); i < n; i++)
        LOG_WARN("config", "%s", warnings[i]);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    if (store_open_url(app.cfg.store_url, app.cfg.data_dir, &app.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        cfg_free(&app.cfg);
        return 2;
    }
    if (app.cfg.check_store) {
        rc = store_check(app.store, err, sizeof(err));
        printf("%s: %s\n", store_path(app.store), rc ? err : "consistent");
        store_close(app.store);
        cfg_free(&app.cfg);
        return rc ? 1 : 0;
    }
    if (httpc_global_init() != 0) { /* before any thread starts */
        fprintf(stderr, "wa-gateway: cannot initialise libcurl\n");
        store_close(app.store);
        cfg_free(&app.cfg);
        return 1;
    }
    uv_loop_init(&app.loop);
    /* PostgreSQL: every store call is a network round trip, run by the
     * queue's thread; SQLite: a local file, called inline as before */
    app.storeq = sess_q_new(&app.loop, store_is_pg(app.store));
    sess_render_hooks_t hooks = api_render_hooks();
    app.reg = sess_registry_new(&app.loop, &hooks);
    app.metrics = metrics_new();
    if (app.metrics)
        metrics_set_registry(app.metrics, app.reg);
    sess_jstore_opts_t jo = {.retention_count = app.cfg.event_retention_count,
                             .retention_age_ms = app.cfg.event_retention_age_ms};
    app.journal = app.reg ? sess_jstore_new(&app.loop, app.store, &jo) : NULL;
    if (app.journal) {
        sess_jstore_attach(app.journal, app.reg); /* before any session exists */
        if (app.metrics)
            metrics_set_journal(app.metrics, app.journal);
    }
    if (!app.reg || !app.metrics || !app.journal || !app.storeq) {
        fprintf(stderr, "wa-gateway: cannot initialise: out of memory\n");
        rc = 1;
        goto out;
    }
    if (!app.cfg.wa_version) { /* discovery: sw.js over HTTPS, same CAs as wss:// */
        httpc_opts_t ho = {.ca_file = app.cfg.wa_ca_file};
        app.httpc = httpc_new(&app.loop, &ho, err, sizeof(err));
    }
    sess_version_opts_t vo = {.loop = &app.loop,
                              .http = app.httpc,
                              .store = app.store,
                              .q = app.storeq,
                              .configured = app.cfg.wa_version,
                              .wa_url = app.cfg.wa_url,
                              .sw_url = app.cfg.wa_version_url,
                              .on_change = on_version,
                              .arg = &app};
    if ((!app.cfg.wa_version && !app.httpc) ||
        sess_version_new(&vo, &app.version, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        rc = 2;
        goto out;
    }
    sess_mgr_opts_t mo = {.loop = &app.loop,
                          .reg = app.reg,
                          .store = app.store,
                          .q = app.storeq,
                          .version = app.version,
                          .wa_url = app.cfg.wa_url,
                          .root_key = app.cfg.wa_root_key_bin,
                          .ca_file = app.cfg.wa_ca_file,
                          .qr_first_ms = (unsigned)app.cfg.qr_first_ms,
                          .qr_next_ms = (unsigned)app.cfg.qr_next_ms,
                          .keepalive_ms = (unsigned)app.cfg.keepalive_ms,
                          .keepalive_timeout_ms = (unsigned)app.cfg.keepalive_timeout_ms,
                          .keepalive_misses = (unsigned)app.cfg.keepalive_misses,
                          .login_timeout_ms = (unsigned)app.cfg.login_timeout_ms,
                          .connect_rate = (unsigned)app.cfg.connect_rate,
                          .max_sessions = (size_t)app.cfg.max_sessions,
                          .device_name = app.cfg.device_name};
    if (sess_mgr_new(&mo, &app.mgr, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: cannot initialise: %s\n", err);
        rc = 1;
        goto out;
    }
    if (store_is_pg(app.store) && start_cluster(&app, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        rc = 2;
        goto out;
    }
    unsigned wh_connect = (unsigned)app.cfg.webhook_timeout_ms / 2;
    wh_opts_t who = {.loop = &app.loop,
                     .store = app.store,
                     .q = app.storeq,
                     .ca_file = app.cfg.webhook_ca_file,
                     .allow_private = app.cfg.webhook_allow_private,
                     .max_targets = (unsigned)app.cfg.max_webhooks,
                     .max_attempts = (unsigned)app.cfg.webhook_max_attempts,
                     .max_age_ms = (int64_t)app.cfg.webhook_max_age_s * 1000,
                     .backoff_ms = (unsigned)app.cfg.webhook_backoff_ms,
                     .backoff_max_ms = (unsigned)app.cfg.webhook_backoff_max_ms,
                     .timeout_ms = (unsigned)app.cfg.webhook_timeout_ms,
                     .connect_timeout_ms = wh_connect > 5000 ? 5000 : wh_connect};
    if (wh_new(&who, &app.wh, err, sizeof(err)) != 0 ||
        wh_set_global(app.wh, app.cfg.webhook_url, app.cfg.webhook_secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        rc = 2;
        goto out;
    }
    if (app.cluster) /* until this node is the one that delivers */
        wh_set_sending(app.wh, 0);
    metrics_set_webhooks(app.metrics, app.wh);
    if (app.cluster)
        metrics_set_cluster(app.metrics, app.cluster);
    sess_jstore_on_commit(app.journal, on_events_committed, &app);
    api_opts_t aopts = {.api_key = app.cfg.api_key,
                        .reconnect_wait_ms = (unsigned)app.cfg.reconnect_wait_ms,
                        .sessions = app.mgr,
                        .webhooks = app.wh,
                        .cluster = app.cluster,
                        .node_secret = app.cluster ? app.cfg.cluster_secret : NULL};
    if (!(app.api = api_new(app.reg, &aopts))) {
        fprintf(stderr, "wa-gateway: cannot initialise: out of memory\n");
        rc = 1;
        goto out;
    }
    http_opts_t hopts = {
        .api = app.api,
        .metrics = app.metrics,
        .cors_origins = app.cfg.cors_origins,
        .allowed_hosts = app.cfg.allowed_hosts,
        .tls_cert_file = app.cfg.tls_cert,
        .tls_key_file = app.cfg.tls_key,
        .heartbeat_ms = (unsigned)app.cfg.heartbeat_ms,
        .max_connections = (size_t)app.cfg.max_connections,
        .stall_ms = (unsigned)app.cfg.stall_timeout_ms,
        .page_html = app.cfg.page ? wagw_page_html : NULL,
        .page_len = app.cfg.page ? wagw_page_html_len : 0,
        .demo_control = app.cfg.demo_control,
        .ready = ready,
        .ready_arg = &app,
        .httpc = app.fwd_httpc,
    };
    if (http_server_start(&app.http, &app.loop, app.cfg.host, app.cfg.port, &hopts, err,
                          sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        rc = 1;
        goto out;
    }
    grpc_srv_opts_t gopts = {.api = app.api,
                             .metrics = app.metrics,
                             .max_streams = (size_t)app.cfg.grpc_max_streams,
                             .max_unauth_streams = (size_t)app.cfg.grpc_max_unauth_streams,
                             .stall_ms = (unsigned)app.cfg.stall_timeout_ms,
                             .tls_cert_file = app.cfg.tls_cert,
                             .tls_key_file = app.cfg.tls_key,
                             .ready = ready,
                             .ready_arg = &app,
                             .httpc = app.fwd_httpc};
    if (grpc_srv_start(&app.grpc, app.cfg.host, app.cfg.grpc_port, &gopts, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        rc = 1;
        goto out;
    }
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    LOG_INFO("main", "wa-gateway started (data dir %s, WhatsApp endpoint %s)", app.cfg.data_dir,
             app.cfg.wa_url);
    app.qrterm.tty = app.cfg.qr_terminal ? open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC) : -1;
    if (app.cfg.qr_terminal && app.qrterm.tty < 0)
        LOG_WARN("qr", "QR_TERMINAL: no terminal to print the QR on (it is never written to "
                       "the log); use the link page or GET qr");
    if (app.qrterm.tty >= 0) {
        uv_async_init(&app.loop, &app.qrterm.wake, qrterm_drain);
        app.qrterm.wake.data = &app.qrterm;
        sess_sub_opts_t so = {.notify = qrterm_notify, .arg = &app.qrterm};
        app.qrterm.sub = sess_registry_subscribe(app.reg, &so);
    }
    sess_version_start(app.version);
    if (sess_mgr_restore(app.mgr) < 0) {
        fprintf(stderr, "wa-gateway: cannot restore the sessions from the store\n");
        rc = 1;
        uv_stop(&app.loop);
    } else if (app.cluster && clu_start(app.cluster) != 0) {
        fprintf(stderr, "wa-gateway: cannot start the cluster node\n");
        rc = 1;
        uv_stop(&app.loop);
    }

    uv_run(&app.loop, UV_RUN_DEFAULT);

out:
    /* Close our handles, start lws's destruction and let the loop run until
     * every handle is closed; only then may lws finish (it unloads its libuv
     * plugin, whose close callbacks must not be pending any more). */
    http_server_free(app.http);
    app.http = NULL;
    if (app.qrterm.sub) {
        sess_unsubscribe(app.qrterm.sub);
        app.qrterm.sub = NULL;
        uv_close((uv_handle_t *)&app.qrterm.wake, NULL);
        close(app.qrterm.tty);
    }
    if (app.reg)
        sess_registry_close(app.reg); /* ends gRPC streams with a final status too */
    uv_run(&app.loop, UV_RUN_NOWAIT);
    grpc_srv_stop(app.grpc);
    grpc_srv_free(app.grpc);
    app.grpc = NULL;
    if (app.cluster)
        clu_stop(app.cluster, NULL, NULL); /* (a no-op after the shutdown's) */
    sess_mgr_close(app.mgr);
    wh_close(app.wh);
    sess_q_close(app.storeq); /* what was queued is stored, and its callbacks run */
    sess_jstore_close(app.journal);
    sess_version_close(app.version);
    httpc_destroy(app.httpc, NULL, NULL);
    app.httpc = NULL;
    httpc_destroy(app.fwd_httpc, NULL, NULL);
    app.fwd_httpc = NULL;
    uv_run(&app.loop, UV_RUN_DEFAULT);
    sess_mgr_free(app.mgr); /* lws finishes here, once its handles are closed */
    app.mgr = NULL;
    uv_walk(&app.loop, close_any, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app.loop) != 0)
        LOG_WARN("main", "event loop closed with handles still open");
    if (rc == 0)
        LOG_INFO("main", "stopped");
    api_free(app.api);
    wh_free(app.wh);
    sess_registry_free(app.reg);
    sess_jstore_free(app.journal);  /* after the registry: subscriptions read through it */
    sess_version_free(app.version); /* after the drivers, which refer to it */
    metrics_free(app.metrics);
    clu_free(app.cluster);
    sess_q_free(app.storeq);
    store_close(app.store);
    cfg_free(&app.cfg);
    httpc_global_cleanup();
    return rc;
}
