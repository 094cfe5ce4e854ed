/* Commands for a session another node of the cluster runs: the request is
 * passed on to that node (its ADVERTISE_URL + the same path and query, the
 * same method, body, Content-Type and X-API-Key, plus the node secret that
 * marks it as forwarded) and the owner's answer is the answer. The caller
 * was authorized here first, so only authorized requests travel; the owner
 * authorizes them again. A forwarded request is never forwarded again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "server/http/http_internal.h"

/* How long the owner may take to answer a forwarded command (a reconnect
 * waits up to RECONNECT_WAIT_MS for its QR there). */
#define FORWARD_TIMEOUT_MS 65000

typedef struct {
    http_server_t *srv;
    h2o_req_t *req;
    httpc_req_t *call; /* NULL once done */
    metrics_route_t metric;
} fwd_t;

static void fwd_dispose(void *p)
{
    fwd_t *f = p;
    if (f->call) { /* the client went away first */
        httpc_cancel(f->call);
        f->call = NULL;
    }
}

static void on_answer(void *arg, const httpc_result_t *res)
{
    fwd_t *f = arg;
    f->call = NULL;
    if (res->error || res->status < 100) {
        LOG_WARN("http", "forwarding a command to the session's node failed: %s",
                 httpc_strerror(res->error));
        http_send_error(f->srv, f->req, f->metric, API_ERR_UNREACHABLE,
                        "The node that runs this session did not answer", NULL);
        return;
    }
    char *body = malloc(res->body_len + 1);
    if (!body) {
        http_send_error(f->srv, f->req, f->metric, API_ERR_INTERNAL, NULL, NULL);
        return;
    }
    memcpy(body, res->body, res->body_len);
    body[res->body_len] = 0;
    http_send_json(f->srv, f->req, f->metric, (int)res->status, body);
}

/* A header line "Name: value" in the request's pool (value copied as is;
 * h2o has already refused CR/LF in header values). */
static const char *header_line(h2o_req_t *req, const char *name, const char *v, size_t len)
{
    size_t n = strlen(name) + 2 + len + 1;
    char *line = h2o_mem_alloc_pool(&req->pool, n);
    snprintf(line, n, "%s: %.*s", name, (int)len, v);
    return line;
}

int http_forward(http_server_t *srv, h2o_req_t *req, const char *base, metrics_route_t metric)
{
    if (!srv->opts.httpc) {
        http_send_error(srv, req, metric, API_ERR_CONFLICT, API_ELSEWHERE_MESSAGE, NULL);
        return 0;
    }
    size_t ulen = strlen(base) + req->path.len + 1;
    char *url = h2o_mem_alloc_pool(&req->pool, ulen);
    snprintf(url, ulen, "%s%.*s", base, (int)req->path.len, req->path.base);
    const char *headers[5];
    size_t nh = 0;
    h2o_iovec_t v;
    if (http_header_value(req, "x-api-key", &v))
        headers[nh++] = header_line(req, "X-API-Key", v.base, v.len);
    if (http_header_value(req, "content-type", &v))
        headers[nh++] = header_line(req, "Content-Type", v.base, v.len);
    const char *secret = api_node_secret(srv->opts.api);
    headers[nh++] = header_line(req, API_NODE_SECRET_HEADER, secret, strlen(secret));
    headers[nh++] = "Expect:"; /* no 100-continue round trip for a small body */
    headers[nh] = NULL;
    fwd_t *f = h2o_mem_alloc_shared(&req->pool, sizeof(*f), fwd_dispose);
    *f = (fwd_t){.srv = srv, .req = req, .metric = metric};
    int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    int del = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    httpc_request_t r = {.method = post  ? "POST"
                                   : del ? "DELETE"
                                         : "GET",
                         .url = url,
                         .headers = headers,
                         .body = req->entity.base,
                         .body_len = req->entity.base ? req->entity.len : 0,
                         .timeout_ms = FORWARD_TIMEOUT_MS,
                         .connect_timeout_ms = 2000,
                         .max_body = 1 << 20,
                         .keep_alive = 1,
                         .done = on_answer,
                         .arg = f};
    int rc = httpc_request(srv->opts.httpc, &r, &f->call);
    if (rc != 0) {
        f->call = NULL;
        http_send_error(srv, req, metric, API_ERR_INTERNAL, NULL, NULL);
    }
    return 0;
}
