/* The ceiling for "nothing but HTTP" on this machine: a minimal libh2o
 * (libuv) program answering with fixed bytes: for paths containing "/qr"
 * the contents of QR_FILE, for anything else those of STATUS_FILE (the
 * benchmark passes bodies it fetched from wa-gateway, so both servers send
 * the same bytes), with the same Content-Type and Cache-Control headers.
 * Benchmarks only. Usage: h2o-min PORT [STATUS_FILE QR_FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <uv.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
#define DEFAULT_STATUS                                                                             \
    "{\"success\":true,\"data\":{\"connected\":false,\"state\":\"QR_READY\",\"hasQR\":true}}"
static h2o_iovec_t status_body = {DEFAULT_STATUS, sizeof(DEFAULT_STATUS) - 1};
static h2o_iovec_t qr_body;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    int qr =
        qr_body.base && h2o_strstr(req->path.base, req->path.len, H2O_STRLIT("/qr")) != SIZE_MAX;
    h2o_iovec_t body = qr ? qr_body : status_body;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body.base, body.len);
    return 0;
}

static int slurp(const char *path, h2o_iovec_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!buf || n == 0) {
        free(buf);
        return -1;
    }
    *out = h2o_iovec_init(buf, n);
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    h2o_accept(&accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    uv_tcp_t listener;
    struct sockaddr_in addr;
    if (argc > 3 && (slurp(argv[2], &status_body) || slurp(argv[3], &qr_body))) {
        fprintf(stderr, "h2o-min: cannot read %s / %s\n", argv[2], argv[3]);
        return 1;
    }
    uv_loop_init(&loop);
    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&ctx, &loop, &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 3200, &addr);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 4096, on_accept) != 0)
        return 1;
    return uv_run(&loop, UV_RUN_DEFAULT);
}
