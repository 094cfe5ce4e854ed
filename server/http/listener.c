/* The HTTP listener and the server's life cycle: h2o on the service's libuv
 * loop (HTTP/1.1 and HTTP/2, cleartext or TLS with ALPN), accepting within
 * MAX_CONNECTIONS, the sweep that closes stalled connections, and a
 * graceful stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "server/http/http_internal.h"

struct http_conn {
    uv_tcp_t tcp;
    http_server_t *srv;
    http_conn_t *prev, *next;
};

static void maybe_finish_stop(http_server_t *srv)
{
    if (!srv->stopping || (srv->nconns > 0 && !srv->abandoned) || srv->listener_open ||
        !srv->on_stopped)
        return;
    uv_timer_stop(&srv->grace_timer);
    void (*cb)(void *) = srv->on_stopped;
    srv->on_stopped = NULL;
    cb(srv->on_stopped_arg);
}

static void on_conn_close(uv_handle_t *h)
{
    http_conn_t *c = (http_conn_t *)h;
    http_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    srv->nconns--;
    metrics_http_connections(srv->opts.metrics, -1);
    maybe_finish_stop(srv);
}

/* A connection over MAX_CONNECTIONS: taken off the backlog and closed. */
static void refuse_conn(http_server_t *srv, uv_stream_t *listener)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        return;
    uv_tcp_init(listener->loop, t);
    if (uv_accept(listener, (uv_stream_t *)t) == 0)
        metrics_limit(srv->opts.metrics, METRICS_LIMIT_HTTP_CONNECTIONS);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    uint64_t now = uv_now(srv->loop);
    if (!srv->refused_log_ms || now - srv->refused_log_ms > 10000) {
        srv->refused_log_ms = now;
        LOG_WARN("http", "%zu connections open (MAX_CONNECTIONS): closing new ones", srv->nconns);
    }
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status != 0 || srv->stopping)
        return;
    if (srv->nconns >= srv->opts.max_connections) {
        refuse_conn(srv, listener);
        return;
    }
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(listener->loop, &c->tcp);
    srv->nconns++;
    metrics_http_connections(srv->opts.metrics, +1);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&srv->accept_ctx, sock);
}

/* Closes connections that stall: a response h2o has held for STALL_TIMEOUT_MS
 * without the client taking it (a reader that stopped, an HTTP/2 client
 * that keeps its flow-control window at zero), an SSE chunk not taken for as
 * long, a WebSocket whose socket write has been stuck for as long. h2o
 * 2.2's own timeouts cover none of these (its HTTP/2 idle timeout stops
 * while a response is open). */
static void on_sweep(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    uint64_t now = uv_now(srv->loop), limit = srv->opts.stall_ms;
    http_reconnects_sweep(srv);
    http_tracks_sweep(srv, now, limit);
    http_streams_sweep(srv, now, limit);
}

static int setup_tls(http_server_t *srv, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    if (SSL_CTX_use_certificate_chain_file(ctx, srv->opts.tls_cert_file) != 1) {
        snprintf(err, errlen, "cannot load TLS certificate '%s'", srv->opts.tls_cert_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, srv->opts.tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "cannot load TLS private key '%s' (or it does not match)",
                 srv->opts.tls_key_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    srv->ssl_ctx = ctx;
    srv->accept_ctx.ssl_ctx = ctx;
    return 0;
}

int http_server_start(http_server_t **out, uv_loop_t *loop, const char *host, int port,
                      const http_opts_t *opts, char *err, size_t errlen)
{
    http_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    srv->loop = loop;
    srv->opts = *opts;
    srv->guard.bind_host = host;
    srv->guard.allowed_hosts = opts->allowed_hosts;
    srv->guard.cors_origins = opts->cors_origins;
    if (!srv->opts.body_limit)
        srv->opts.body_limit = HTTP_DEFAULT_BODY_LIMIT;
    if (!srv->opts.heartbeat_ms)
        srv->opts.heartbeat_ms = HTTP_DEFAULT_HEARTBEAT_MS;
    if (!srv->opts.max_connections)
        srv->opts.max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    if (!srv->opts.stall_ms)
        srv->opts.stall_ms = HTTP_DEFAULT_STALL_MS;
    h2o_config_init(&srv->config);
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("wa-gateway"));
    srv->config.http2.graceful_shutdown_timeout = 2000;
    /* h2o itself answers bodies over this with a plain 413; ours (smaller)
     * answer with JSON. */
    srv->config.max_request_entity_size = srv->opts.body_limit * 4 + 65536;
    /* a client has 10 s to send its request headers (slowloris), HTTP/2
     * connections with nothing open are closed after 10 s */
    srv->config.http1.req_timeout = 10000;
    srv->config.http2.idle_timeout = 10000;
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    http_handler_t *handler = (http_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = http_on_req;
    handler->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->config);
    /* Socket input buffers start at 4 KB instead of h2o's 8 KB (they grow
     * for bigger requests): every open event stream keeps one, and our
     * requests are small. h2o's tuning knob is per thread; this is the loop
     * thread, the only one serving HTTP. */
    h2o_socket_buffer_prototype._initial_buf.capacity = H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE;
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    int r = 0;
    if (srv->opts.tls_cert_file && setup_tls(srv, err, errlen) != 0)
        r = -1;
    struct sockaddr_storage addr;
    const char *bind_host = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (r == 0 && (r = uv_ip4_addr(bind_host, port, (struct sockaddr_in *)&addr)) != 0)
        r = uv_ip6_addr(bind_host, port, (struct sockaddr_in6 *)&addr);
    if (r == 0)
        r = uv_tcp_init(loop, &srv->listener);
    if (r == 0) {
        srv->listener_open = 1;
        srv->listener.data = srv;
        r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&srv->listener, 4096, on_accept);
        if (r != 0)
            snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    }
    if (r != 0) {
        if (srv->listener_open) {
            uv_close((uv_handle_t *)&srv->listener, NULL);
            uv_run(loop, UV_RUN_NOWAIT);
        }
        h2o_context_dispose(&srv->ctx);
        h2o_config_dispose(&srv->config);
        if (srv->ssl_ctx)
            SSL_CTX_free(srv->ssl_ctx);
        free(srv);
        return r;
    }
    uv_timer_init(loop, &srv->grace_timer);
    srv->grace_timer.data = srv;
    uv_timer_init(loop, &srv->heartbeat);
    srv->heartbeat.data = srv;
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    unsigned every = srv->opts.stall_ms / 4 < 1000 ? srv->opts.stall_ms / 4 : 1000;
    uv_timer_start(&srv->sweep, on_sweep, every ? every : 1, every ? every : 1);
    uv_timer_start(&srv->heartbeat, http_on_heartbeat, srv->opts.heartbeat_ms,
                   srv->opts.heartbeat_ms);
    uv_async_init(loop, &srv->flush, http_on_flush);
    srv->flush.data = srv;
    LOG_INFO("http", "listening on %s:%d (%s)", host, port,
             srv->ssl_ctx ? "HTTPS: HTTP/1.1, HTTP/2 by ALPN" : "HTTP/1.1, HTTP/2 cleartext");
    *out = srv;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->listener_open = 0;
    maybe_finish_stop(srv);
}

/* Shuts down the socket of every connection still open: h2o then sees the
 * end of input (or a failing write) and closes each one itself, releasing
 * its timeouts, streams and requests; nothing is freed from under it. */
static void close_all_conns(http_server_t *srv)
{
    for (http_conn_t *c = srv->conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
}

static void on_grace_timeout(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    if (srv->nconns == 0) {
        maybe_finish_stop(srv);
        return;
    }
    if (!srv->grace_expired++) {
        /* idle keep-alive connections, half-sent requests, clients that do
         * not read or do not answer our close frame: close them now */
        LOG_INFO("http", "closing %zu connection(s) left after the grace period", srv->nconns);
        close_all_conns(srv);
        uv_timer_start(&srv->grace_timer, on_grace_timeout, 1000, 0);
        return;
    }
    /* should not happen: h2o did not close a shut-down socket */
    LOG_WARN("http", "%zu connection(s) still open after a forced close", srv->nconns);
    srv->abandoned = 1;
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
    uv_timer_stop(&srv->heartbeat);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    /* waiting reconnects are answered now (503), before anything goes away */
    http_reconnects_cancel(srv);
    /* end every stream: SSE gets its final chunk (a busy one when h2o takes
     * the one in flight), WebSocket a close frame (sent once the upgrade is
     * complete, when it is not yet) */
    http_streams_end(srv);
    h2o_context_request_shutdown(&srv->ctx);
    uv_timer_start(&srv->grace_timer, on_grace_timeout, grace_ms, 0);
}

void http_server_free(http_server_t *srv)
{
    if (!srv)
        return;
    if (!srv->stopping && srv->listener_open) {
        /* never stopped (start-up failed further on): nobody can have
         * connected through a loop that never ran; just stop listening */
        srv->stopping = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    }
    uv_close((uv_handle_t *)&srv->grace_timer, NULL);
    uv_close((uv_handle_t *)&srv->heartbeat, NULL);
    uv_close((uv_handle_t *)&srv->sweep, NULL);
    uv_close((uv_handle_t *)&srv->flush, NULL);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    if (srv->abandoned || srv->nconns > 0) {
        /* h2o still owns connections (their timeouts, pools, streams):
         * disposing its context would abort and freeing the server would
         * leave them dangling. Leave it all to the process exit. */
        LOG_WARN("http", "%zu connection(s) never closed; not releasing the HTTP server",
                 srv->nconns);
        return;
    }
    if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    http_event_cache_clear(srv);
    http_body_cache_clear(srv);
    http_tracks_clear(srv);
    free(srv);
}

size_t http_server_connections(const http_server_t *srv)
{
    return srv->nconns;
}

size_t http_server_streams(const http_server_t *srv)
{
    return srv->nstreams;
}
