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

int http_forward(http_server_t *srv, h2o_req_t *req, const char *base, metrics_route_t metric)
{
    if (!srv->opts.httpc) {
        http_send_error(srv, req, metric, API_ERR_CONFLICT, API_ELSEWHERE_MESSAGE, NULL);
        return 0;
    }
    size_t ulen = strlen(base) + req->path.len + 1;
    char *url = h2o_mem_alloc_pool(&req->pool, ulen);
    snprintf(url, ulen, "%s%.*s", base, (int)req->path.len, req->path.base);
    h2o_iovec_t key = {NULL, 0}, ct = {NULL, 0};
    http_header_value(req, "x-api-key", &key);
    http_header_value(req, "content-type", &ct);
    fwd_t *f = h2o_mem_alloc_shared(&req->pool, sizeof(*f), fwd_dispose);
    *f = (fwd_t){.srv = srv, .req = req, .metric = metric};
    int post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    int del = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    api_forward_req_t r = {.method = post  ? "POST"
                                     : del ? "DELETE"
                                           : "GET",
                           .url = url,
                           .key = key.base,
                           .key_len = key.len,
                           .content_type = ct.base,
                           .ct_len = ct.len,
                           .body = req->entity.base,
                           .body_len = req->entity.len};
    api_code_t code = api_forward_send(srv->opts.api, srv->opts.httpc, &r, on_answer, f, &f->call);
    if (code != API_OK)
        http_send_error(srv, req, metric, code, NULL, NULL);
    return 0;
}
