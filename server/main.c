/* wa-gateway entry point: loads the configuration, starts the HTTP (and
 * later gRPC) listeners on one libuv loop, and shuts everything down cleanly
 * on SIGINT/SIGTERM so that nothing leaks (checked under ASan). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "api/api.h"
#include "common/log.h"
#include "server/config.h"
#include "server/http.h"
#include "server/metrics.h"
#include "session/session.h"

/* Everything main owns, passed to the loop callbacks. */
typedef struct {
    uv_loop_t loop;
    cfg_t cfg;
    sess_registry_t *reg;
    api_t *api;
    metrics_t *metrics;
    http_server_t *http;
    uv_signal_t sigint, sigterm;
    int shutting_down;
} app_t;

static void on_http_stopped(void *arg)
{
    app_t *app = arg;
    LOG_INFO("main", "HTTP listener closed");
    uv_stop(&app->loop);
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
    if (app->http)
        http_server_stop(app->http, 3000, on_http_stopped, app);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    static app_t app; /* main's own state */
    char err[512];

    if (cfg_load(&app.cfg, argc, argv, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        return 2;
    }
    if (app.cfg.help) {
        cfg_print_help(stdout, "wa-gateway");
        cfg_free(&app.cfg);
        return 0;
    }
    if (cfg_validate(&app.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "wa-gateway: %s\n", err);
        cfg_free(&app.cfg);
        return 2;
    }
    log_set_level(app.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_init(&app.loop);
    int rc = 0;
    sess_render_hooks_t hooks = api_render_hooks();
    app.reg = sess_registry_new(&app.loop, &hooks);
    app.metrics = metrics_new();
    api_opts_t aopts = {.api_key = app.cfg.api_key};
    if (!app.reg || !app.metrics || !sess_registry_add(app.reg, "default") ||
        !(app.api = api_new(app.reg, &aopts))) {
        fprintf(stderr, "wa-gateway: out of memory\n");
        rc = 1;
        goto out;
    }
    http_opts_t hopts = {
        .api = app.api,
        .metrics = app.metrics,
        .cors_origins = app.cfg.cors_origins,
        .tls_cert_file = app.cfg.tls_cert,
        .tls_key_file = app.cfg.tls_key,
    };
    if (http_server_start(&app.http, &app.loop, app.cfg.host, app.cfg.port, &hopts, err,
                          sizeof(err)) != 0) {
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

    uv_run(&app.loop, UV_RUN_DEFAULT);

out:
    http_server_free(app.http);
    app.http = NULL;
    if (app.reg)
        sess_registry_close(app.reg);
    uv_run(&app.loop, UV_RUN_NOWAIT);
    uv_walk(&app.loop, close_any, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app.loop) != 0)
        LOG_WARN("main", "event loop closed with handles still open");
    if (rc == 0)
        LOG_INFO("main", "stopped");
    api_free(app.api);
    sess_registry_free(app.reg);
    metrics_free(app.metrics);
    cfg_free(&app.cfg);
    return rc;
}
