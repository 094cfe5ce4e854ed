/* The hop of a forwarded command (see api.h, api_forward_send): what HTTP
 * (server/http/forward.c) and gRPC (server/grpc/forward.c) send to the
 * node that runs the session, with one policy for both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

/* A malloc'd "Name: value" line; NULL when out of memory or when the value
 * holds a control character (it would end the header). */
static char *header_line(const char *name, const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return NULL;
    size_t n = strlen(name) + 2 + len + 1;
    char *line = malloc(n);
    if (line)
        snprintf(line, n, "%s: %.*s", name, (int)len, v);
    return line;
}

api_code_t api_forward_send(api_t *api, httpc_t *httpc, const api_forward_req_t *r,
                            void (*done)(void *arg, const httpc_result_t *res), void *arg,
                            httpc_req_t **out)
{
    *out = NULL;
    const char *secret = api_node_secret(api);
    char *key = r->key ? header_line("X-API-Key", r->key, r->key_len) : NULL;
    char *ct = r->content_type ? header_line("Content-Type", r->content_type, r->ct_len) : NULL;
    char *sec = secret ? header_line(API_NODE_SECRET_HEADER, secret, strlen(secret)) : NULL;
    api_code_t code = API_OK;
    if (r->key && !key)
        code = API_ERR_UNAUTHENTICATED;
    else if (!sec || (r->content_type && !ct))
        code = API_ERR_INTERNAL;
    if (code == API_OK) {
        const char *headers[5];
        size_t nh = 0;
        if (key)
            headers[nh++] = key;
        if (ct)
            headers[nh++] = ct;
        headers[nh++] = sec;
        headers[nh++] = "Expect:"; /* no 100-continue round trip for a small body */
        headers[nh] = NULL;
        httpc_request_t h = {.method = r->method,
                             .url = r->url,
                             .headers = headers,
                             .body = r->body,
                             .body_len = r->body ? r->body_len : 0,
                             .timeout_ms = r->timeout_ms ? r->timeout_ms : API_FORWARD_TIMEOUT_MS,
                             .connect_timeout_ms = 2000,
                             .max_body = 1 << 20,
                             .keep_alive = 1,
                             .done = done,
                             .arg = arg};
        int rc = httpc_request(httpc, &h, out); /* (copies the headers) */
        if (rc != 0) {
            *out = NULL;
            code = rc == HTTPC_ECLOSED ? API_ERR_SHUTTING_DOWN : API_ERR_INTERNAL;
        }
    }
    free(key);
    free(ct);
    if (sec) {
        explicit_bzero(sec, strlen(sec));
        free(sec);
    }
    return code;
}
