/* HTTP server on h2o + libuv. One catch-all h2o handler looks the path up in
 * a route table (the Redis command-table style) so that unknown paths get a
 * JSON 404 and wrong methods a 405 with Allow, instead of h2o's plain text. */
#include "server/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "common/log.h"

struct http_server {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t grace_timer;
    size_t nconns;
    int stopping;
    int listener_open, timer_open;
    void (*on_stopped)(void *);
    void *on_stopped_arg;
};

/* The handler h2o sees; carries a pointer back to our server. */
typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} http_handler_t;

/* A connection's libuv handle, tagged with its server for accounting. */
typedef struct {
    uv_tcp_t tcp;
    http_server_t *srv;
} http_conn_t;

typedef int (*http_route_fn)(http_server_t *srv, h2o_req_t *req);

typedef struct {
    const char *path;
    const char *allow; /* methods, as sent in the Allow header */
    http_route_fn get; /* handler for GET and HEAD */
} http_route_t;

static void send_json(h2o_req_t *req, int status, const char *reason, const char *body)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, strlen(body));
}

static int route_healthz(http_server_t *srv, h2o_req_t *req)
{
    (void)srv;
    send_json(req, 200, "OK", "{\"status\":\"ok\"}");
    return 0;
}

static const http_route_t routes[] = {
    {"/healthz", "GET, HEAD", route_healthz},
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((http_handler_t *)self)->srv;
    h2o_iovec_t path = req->path_normalized;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const http_route_t *r = &routes[i];
        if (path.len != strlen(r->path) || memcmp(path.base, r->path, path.len) != 0)
            continue;
        if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
            h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
            return r->get(srv, req);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, r->allow,
                       strlen(r->allow));
        send_json(req, 405, "Method Not Allowed",
                  "{\"success\":false,\"message\":\"Method not allowed\"}");
        return 0;
    }
    send_json(req, 404, "Not Found", "{\"success\":false,\"message\":\"Not found\"}");
    return 0;
}

static void maybe_finish_stop(http_server_t *srv)
{
    if (!srv->stopping || srv->nconns > 0 || srv->listener_open || !srv->on_stopped)
        return;
    if (srv->timer_open) {
        uv_timer_stop(&srv->grace_timer);
    }
    void (*cb)(void *) = srv->on_stopped;
    srv->on_stopped = NULL;
    cb(srv->on_stopped_arg);
}

static void on_conn_close(uv_handle_t *h)
{
    http_conn_t *c = (http_conn_t *)h;
    http_server_t *srv = c->srv;
    free(c);
    srv->nconns--;
    maybe_finish_stop(srv);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status != 0 || srv->stopping)
        return;
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(listener->loop, &c->tcp);
    srv->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&srv->accept_ctx, sock);
}

int http_server_start(http_server_t **out, uv_loop_t *loop, const char *host, int port, char *err,
                      size_t errlen)
{
    http_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    srv->loop = loop;
    h2o_config_init(&srv->config);
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("wa-gateway"));
    srv->config.http2.graceful_shutdown_timeout = 2000;
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    http_handler_t *handler = (http_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->config);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    struct sockaddr_storage addr;
    const char *bind_host = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    int r = uv_ip4_addr(bind_host, port, (struct sockaddr_in *)&addr);
    if (r != 0)
        r = uv_ip6_addr(bind_host, port, (struct sockaddr_in6 *)&addr);
    if (r == 0)
        r = uv_tcp_init(loop, &srv->listener);
    if (r == 0) {
        srv->listener_open = 1;
        srv->listener.data = srv;
        r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&srv->listener, 1024, on_accept);
    }
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
        if (srv->listener_open) {
            uv_close((uv_handle_t *)&srv->listener, NULL);
            uv_run(loop, UV_RUN_NOWAIT);
        }
        h2o_context_dispose(&srv->ctx);
        h2o_config_dispose(&srv->config);
        free(srv);
        return r;
    }
    uv_timer_init(loop, &srv->grace_timer);
    srv->timer_open = 1;
    srv->grace_timer.data = srv;
    LOG_INFO("http", "listening on %s:%d (HTTP/1.1, HTTP/2)", host, port);
    *out = srv;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->listener_open = 0;
    maybe_finish_stop(srv);
}

static void on_grace_timeout(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    if (srv->nconns > 0)
        LOG_WARN("http", "%zu connection(s) still open after the grace period", srv->nconns);
    srv->nconns = 0; /* give up waiting; their memory goes with the process */
    maybe_finish_stop(srv);
}

void http_server_stop(http_server_t *srv, unsigned grace_ms, void (*on_stopped)(void *arg),
                      void *arg)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->on_stopped = on_stopped;
    srv->on_stopped_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    h2o_context_request_shutdown(&srv->ctx);
    uv_timer_start(&srv->grace_timer, on_grace_timeout, grace_ms, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void http_server_free(http_server_t *srv)
{
    if (!srv)
        return;
    if (srv->timer_open) {
        uv_close((uv_handle_t *)&srv->grace_timer, on_timer_closed);
        srv->timer_open = 0;
        uv_run(srv->loop, UV_RUN_NOWAIT);
    }
    /* request_shutdown links a context-level graceful-shutdown timer entry
     * that h2o_context_dispose asserts to be gone. */
    if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    free(srv);
}

size_t http_server_connections(const http_server_t *srv)
{
    return srv->nconns;
}
