/* WebSocket server for the fake WhatsApp server, on libwebsockets with the
 * caller's libuv loop. Outgoing messages (or message fragments) are queued
 * per connection and written one per writable callback, so each send is one
 * WebSocket message. Received fragments are reassembled into whole messages
 * (up to MAX_MESSAGE bytes). */
#include "tests/fakewa/wsserver.h"

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest message accepted from a client (a full frame plus intro). */
#define MAX_MESSAGE ((size_t)17 << 20)

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    int flags;      /* lws_write_protocol of this write */
    uint8_t data[]; /* LWS_PRE bytes of headroom, then the bytes */
} out_msg_t;

/* Request headers captured at open (see fakewa_ws_conn_header). */
static const struct {
    const char *name;
    enum lws_token_indexes tok;
} hdr_names[] = {
    {"path", WSI_TOKEN_GET_URI},       {"host", WSI_TOKEN_HOST},
    {"origin", WSI_TOKEN_ORIGIN},      {"cache-control", WSI_TOKEN_HTTP_CACHE_CONTROL},
    {"pragma", WSI_TOKEN_HTTP_PRAGMA}, {"sec-websocket-protocol", WSI_TOKEN_PROTOCOL},
};
#define N_HDRS (sizeof(hdr_names) / sizeof(hdr_names[0]))

struct fakewa_ws_conn {
    fakewa_ws_t *srv;
    struct lws *wsi;
    void *user;
    out_msg_t *head, *tail;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    int closing;
    char *hdrs[N_HDRS];
    fakewa_ws_conn_t *prev, *next;
};

struct fakewa_ws {
    uv_loop_t *loop;
    SSL_CTX *client_ctx; /* ours, so lws does not make (and keep) one */
    struct lws_context *lws;
    struct lws_vhost *vh;
    fakewa_ws_callbacks_t cb;
    fakewa_ws_conn_t *conns;
    int port;
};

static void conn_free(fakewa_ws_conn_t *c)
{
    out_msg_t *m = c->head;
    while (m) {
        out_msg_t *n = m->next;
        free(m);
        m = n;
    }
    free(c->rx);
    for (size_t i = 0; i < N_HDRS; i++)
        free(c->hdrs[i]);
    free(c);
}

/* A plain HTTP request in progress (the control API). */
typedef struct {
    char path[512]; /* with "?" and the query when there is one */
    int post;
    char *body;
    size_t body_len;
    uint8_t *resp; /* LWS_PRE bytes of headroom, then the body */
    size_t resp_len;
} http_req_t;

/* Per-connection data: a WebSocket connection or an HTTP request. */
typedef struct {
    fakewa_ws_conn_t *c;
    http_req_t *h;
} pss_t;

static int http_respond(struct lws *wsi, fakewa_ws_t *srv, http_req_t *h)
{
    char *resp = NULL;
    int status = srv->cb.on_http ? srv->cb.on_http(srv->cb.arg, h->post, h->path,
                                                   h->body ? h->body : "", h->body_len, &resp)
                                 : 404;
    if (status == 0) { /* leave it unanswered (a hanging server, on demand) */
        free(resp);
        return 0;
    }
    if (!resp)
        resp = strdup("{}");
    size_t n = resp ? strlen(resp) : 0;
    h->resp = malloc(LWS_PRE + n + 1);
    if (!h->resp) {
        free(resp);
        return -1;
    }
    memcpy(h->resp + LWS_PRE, resp ? resp : "", n);
    h->resp_len = n;
    free(resp);
    uint8_t buf[LWS_PRE + 512], *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof(buf) - 1];
    size_t pl = strlen(h->path);
    const char *ctype =
        pl > 3 && !strcmp(h->path + pl - 3, ".js") ? "application/javascript" : "application/json";
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, n, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static void http_free(pss_t *pss)
{
    if (pss && pss->h) {
        free(pss->h->body);
        free(pss->h->resp);
        free(pss->h);
        pss->h = NULL;
    }
}

static int srv_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    pss_t *pss = user;
    fakewa_ws_conn_t **slot = pss ? &pss->c : NULL;
    fakewa_ws_t *srv = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        fakewa_ws_conn_t *c = calloc(1, sizeof(*c));
        if (!c)
            return -1;
        c->srv = srv;
        c->wsi = wsi;
        for (size_t i = 0; i < N_HDRS; i++) {
            int n = lws_hdr_total_length(wsi, hdr_names[i].tok);
            if (n <= 0)
                continue;
            c->hdrs[i] = malloc((size_t)n + 1);
            if (c->hdrs[i] && lws_hdr_copy(wsi, c->hdrs[i], n + 1, hdr_names[i].tok) < 0) {
                free(c->hdrs[i]);
                c->hdrs[i] = NULL;
            }
        }
        *slot = c;
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        if (srv->cb.on_open)
            c->user = srv->cb.on_open(srv->cb.arg, c);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        fakewa_ws_conn_t *c = slot ? *slot : NULL;
        if (!c)
            return -1;
        if (c->closing)
            return 0;
        if (!lws_frame_is_binary(wsi))
            return 0;
        if (len > MAX_MESSAGE - c->rx_len) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
            return -1;
        }
        if (c->rx_len + len > c->rx_cap) {
            size_t cap = c->rx_cap ? c->rx_cap * 2 : 4096;
            while (cap < c->rx_len + len)
                cap *= 2;
            uint8_t *b = realloc(c->rx, cap);
            if (!b)
                return -1;
            c->rx = b;
            c->rx_cap = cap;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            size_t n = c->rx_len;
            c->rx_len = 0;
            if (srv->cb.on_message)
                srv->cb.on_message(srv->cb.arg, c, c->rx, n);
            if (c->rx_cap > 65536) { /* after a big message: do not keep its buffer */
                free(c->rx);
                c->rx = NULL;
                c->rx_cap = 0;
            }
        }
        return 0; /* a close requested meanwhile happens after the queue is written */
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        fakewa_ws_conn_t *c = slot ? *slot : NULL;
        if (!c)
            return 0;
        if (c->closing && !c->head)
            return -1; /* lws 4.1 then drops the TCP connection (no close frame) */
        out_msg_t *m = c->head;
        if (!m)
            return 0;
        if (lws_write(wsi, m->data + LWS_PRE, m->len, (enum lws_write_protocol)m->flags) <
            (int)m->len)
            return -1;
        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        free(m);
        if (c->head || c->closing)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_HTTP: {
        if (!pss)
            return -1;
        pss->h = calloc(1, sizeof(*pss->h));
        if (!pss->h)
            return -1;
        snprintf(pss->h->path, sizeof(pss->h->path), "%s", in ? (const char *)in : "/");
        int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
        size_t pl = strlen(pss->h->path);
        if (alen > 0 && pl + 1 + (size_t)alen + 1 < sizeof(pss->h->path)) {
            pss->h->path[pl] = '?'; /* the query, its arguments joined by '&' */
            if (lws_hdr_copy(wsi, pss->h->path + pl + 1, (int)(sizeof(pss->h->path) - pl - 1),
                             WSI_TOKEN_HTTP_URI_ARGS) < 0)
                pss->h->path[pl] = 0;
        }
        pss->h->post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        if (pss->h->post)
            return 0; /* the body follows */
        return http_respond(wsi, srv, pss->h);
    }
    case LWS_CALLBACK_HTTP_BODY: {
        http_req_t *h = pss ? pss->h : NULL;
        if (!h || h->body_len + len > 65536)
            return -1;
        char *b = realloc(h->body, h->body_len + len + 1);
        if (!b)
            return -1;
        if (len) /* an empty POST body comes as (NULL, 0) */
            memcpy(b + h->body_len, in, len);
        h->body = b;
        h->body_len += len;
        h->body[h->body_len] = 0;
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return pss && pss->h ? http_respond(wsi, srv, pss->h) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        http_req_t *h = pss ? pss->h : NULL;
        if (!h || !h->resp)
            return 0;
        int n = lws_write(wsi, h->resp + LWS_PRE, h->resp_len, LWS_WRITE_HTTP_FINAL);
        http_free(pss);
        if (n < 0 || lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        http_free(pss);
        return 0;
    case LWS_CALLBACK_CLOSED: {
        fakewa_ws_conn_t *c = slot ? *slot : NULL;
        if (!c)
            return 0;
        *slot = NULL;
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (srv->cb.on_close)
            srv->cb.on_close(srv->cb.arg, c);
        conn_free(c);
        return 0;
    }
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols srv_protocols[] = {
    /* 4 KiB of receive buffer per connection (lws keeps one each); messages
     * are reassembled in fakewa_ws_conn_t */
    {"fakewa", srv_callback, sizeof(pss_t), 4096, 0, NULL, 16384},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

fakewa_ws_t *fakewa_ws_start(uv_loop_t *loop, const fakewa_ws_opts_t *opts,
                             const fakewa_ws_callbacks_t *cb, char *err, size_t errlen)
{
    fakewa_ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ws->cb = *cb;
    ws->loop = loop;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *foreign[1] = {loop};
    info.port = opts->port;
    info.iface = opts->host ? opts->host : "127.0.0.1";
    info.protocols = srv_protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = foreign;
    info.user = ws;
    info.pcontext = &ws->lws;
    ws->client_ctx = SSL_CTX_new(TLS_client_method());
    info.provided_client_ssl_ctx = ws->client_ctx;
    if (opts->cert_file) {
        info.ssl_cert_filepath = opts->cert_file;
        info.ssl_private_key_filepath = opts->key_file;
    }
    ws->lws = lws_create_context(&info);
    if (!ws->lws) {
        snprintf(err, errlen, "cannot start the WebSocket server on %s:%d", info.iface, opts->port);
        SSL_CTX_free(ws->client_ctx);
        free(ws);
        return NULL;
    }
    ws->vh = lws_get_vhost_by_name(ws->lws, "default");
    ws->port = ws->vh ? lws_get_vhost_listen_port(ws->vh) : opts->port;
    return ws;
}

int fakewa_ws_port(const fakewa_ws_t *ws)
{
    return ws->port;
}

void fakewa_ws_stop(fakewa_ws_t *ws)
{
    if (ws && ws->lws)
        lws_context_destroy(ws->lws);
}

void fakewa_ws_free(fakewa_ws_t *ws)
{
    if (!ws)
        return;
    /* lws finishes in stages on a foreign loop; it clears ws->lws when done */
    for (int i = 0; i < 8 && ws->lws; i++) {
        lws_context_destroy(ws->lws);
        uv_run(ws->loop, UV_RUN_NOWAIT);
    }
    /* connections still listed were closed by the destroy */
    while (ws->conns) {
        fakewa_ws_conn_t *c = ws->conns;
        ws->conns = c->next;
        conn_free(c);
    }
    SSL_CTX_free(ws->client_ctx);
    free(ws);
}

/* Queues `len` bytes cut in pieces of `piece` bytes, each written as a whole
 * message of `type`, or as the fragments of one message when `fragments`;
 * all or nothing. */
static int enqueue(fakewa_ws_conn_t *c, const uint8_t *data, size_t len, size_t piece,
                   int fragments, int type)
{
    if (c->closing)
        return -1;
    if (piece == 0)
        piece = 1;
    out_msg_t *head = NULL, **tailp = &head, *last = NULL;
    size_t off = 0;
    do { /* at least one message, even for len 0 */
        size_t n = len - off < piece ? len - off : piece;
        out_msg_t *m = malloc(sizeof(*m) + LWS_PRE + n);
        if (!m) {
            while (head) {
                out_msg_t *nx = head->next;
                free(head);
                head = nx;
            }
            return -1;
        }
        m->next = NULL;
        m->len = n;
        m->flags = fragments ? lws_write_ws_flags(type, off == 0, off + n == len) : type;
        if (n)
            memcpy(m->data + LWS_PRE, data + off, n);
        *tailp = m;
        tailp = &m->next;
        last = m;
        off += n;
    } while (off < len);
    if (c->tail)
        c->tail->next = head;
    else
        c->head = head;
    c->tail = last;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int fakewa_ws_send(fakewa_ws_conn_t *c, const uint8_t *data, size_t len)
{
    return enqueue(c, data, len, len ? len : 1, 0, LWS_WRITE_BINARY);
}

int fakewa_ws_send_split(fakewa_ws_conn_t *c, const uint8_t *data, size_t len, size_t piece)
{
    return enqueue(c, data, len, piece, 0, LWS_WRITE_BINARY);
}

int fakewa_ws_send_fragmented(fakewa_ws_conn_t *c, const uint8_t *data, size_t len, size_t piece)
{
    return enqueue(c, data, len, piece, 1, LWS_WRITE_BINARY);
}

int fakewa_ws_send_text(fakewa_ws_conn_t *c, const char *text, size_t len)
{
    return enqueue(c, (const uint8_t *)text, len, len ? len : 1, 0, LWS_WRITE_TEXT);
}

void fakewa_ws_close(fakewa_ws_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    lws_callback_on_writable(c->wsi); /* writes what is queued, then closes */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 3);
}

const char *fakewa_ws_conn_header(const fakewa_ws_conn_t *c, const char *name)
{
    for (size_t i = 0; i < N_HDRS; i++)
        if (!strcmp(hdr_names[i].name, name))
            return c->hdrs[i];
    return NULL;
}

void *fakewa_ws_conn_user(const fakewa_ws_conn_t *c)
{
    return c->user;
}
