/* libwebsockets client for WhatsApp frames. lws owns the socket; our
 * wa_fsock_t lives until both lws has destroyed the connection and our
 * connect timer is closed (a two-count reference), so a caller may close at
 * any moment, even from inside a callback. */
#include "session/wa/framesocket.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/frame.h"

#define DEFAULT_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

struct wa_fsock_ctx {
    uv_loop_t *loop;
    struct lws_context *lws;
    size_t live;
};

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    uint8_t data[]; /* LWS_PRE bytes of headroom, then the message */
} out_msg_t;

struct wa_fsock {
    wa_fsock_ctx_t *ctx;
    struct lws *wsi;
    wa_fsock_callbacks_t cb;
    wa_frame_reader_t reader;
    uv_timer_t timer;
    int refs; /* lws connection + timer */
    int open, closing, reported, sent_first, timer_closed;
    int in_connect; /* inside lws_client_connect_via_info: report by return value */
    out_msg_t *head, *tail;
    char host[256];
};

const char *wa_fsock_strerror(int code)
{
    switch (code) {
    case WA_FSOCK_CLOSED:
        return "connection closed";
    case WA_FSOCK_ECONNECT:
        return "could not connect";
    case WA_FSOCK_ETIMEOUT:
        return "connect timed out";
    case WA_FSOCK_ETOOBIG:
        return "frame too large";
    case WA_FSOCK_ENOMEM:
        return "out of memory";
    case WA_FSOCK_EURL:
        return "invalid WebSocket URL";
    }
    return "unknown socket error";
}

static void sock_unref(wa_fsock_t *s)
{
    if (--s->refs > 0)
        return;
    out_msg_t *m = s->head;
    while (m) {
        out_msg_t *n = m->next;
        free(m);
        m = n;
    }
    wa_frame_reader_free(&s->reader);
    s->ctx->live--;
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    sock_unref(h->data);
}

static void close_timer(wa_fsock_t *s)
{
    if (s->timer_closed)
        return;
    s->timer_closed = 1;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

/* Reports the end once, unless the caller closed first. */
static void report_close(wa_fsock_t *s, int code, const char *reason)
{
    if (s->reported)
        return;
    s->reported = 1;
    close_timer(s);
    if (!s->closing && !s->in_connect && s->cb.on_close)
        s->cb.on_close(s->cb.arg, code, reason);
}

static void on_connect_timeout(uv_timer_t *t)
{
    wa_fsock_t *s = t->data;
    if (s->open)
        return;
    report_close(s, WA_FSOCK_ETIMEOUT, "connect timed out");
    s->closing = 1;
    if (s->wsi)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    wa_fsock_t *s = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        static const char extra[] = "Cache-Control: no-cache\x0d\x0aPragma: no-cache\x0d\x0a";
        if ((size_t)(end - *p) < sizeof(extra))
            return -1;
        memcpy(*p, extra, sizeof(extra) - 1);
        *p += sizeof(extra) - 1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!s)
            return -1;
        s->open = 1;
        uv_timer_stop(&s->timer);
        if (s->closing)
            return -1;
        if (s->cb.on_open)
            s->cb.on_open(s->cb.arg);
        if (s->head)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (!s)
            return -1;
        if (s->closing)
            return 0; /* closing after the queue is written; ignore input */
        if (!lws_frame_is_binary(wsi))
            return 0; /* text messages are ignored */
        int rc = wa_frame_reader_feed(&s->reader, in, len);
        if (rc) {
            report_close(s, rc == WA_FRAME_ETOOBIG ? WA_FSOCK_ETOOBIG : WA_FSOCK_ENOMEM,
                         rc == WA_FRAME_ETOOBIG ? "frame too large" : "out of memory");
            s->closing = 1;
            return -1;
        }
        const uint8_t *payload;
        size_t plen;
        while (!s->closing && wa_frame_reader_next(&s->reader, &payload, &plen) == 1)
            if (s->cb.on_frame)
                s->cb.on_frame(s->cb.arg, payload, plen);
        return 0; /* a close requested by a callback completes in WRITEABLE */
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (!s)
            return -1;
        out_msg_t *m = s->head;
        if (!m)
            return s->closing ? -1 : 0;
        int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY);
        if (n < (int)m->len)
            return -1;
        s->head = m->next;
        if (!s->head)
            s->tail = NULL;
        free(m);
        if (s->head || s->closing)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (s)
            report_close(s, WA_FSOCK_ECONNECT, in ? (const char *)in : "connection error");
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s)
            report_close(s, WA_FSOCK_CLOSED, "closed by peer");
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s) {
            report_close(s, s->open ? WA_FSOCK_CLOSED : WA_FSOCK_ECONNECT, "connection lost");
            s->wsi = NULL;
            lws_set_wsi_user(wsi, NULL);
            sock_unref(s);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"wa-gateway", ws_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, "lws", "%.*s", (int)n, line);
}

wa_fsock_ctx_t *wa_fsock_ctx_new(uv_loop_t *loop, const wa_fsock_ctx_opts_t *opts, char *err,
                                 size_t errlen)
{
    wa_fsock_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    lws_set_log_level(LLL_ERR, lws_log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *foreign[1] = {loop};
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = foreign;
    info.client_ssl_ca_filepath = opts && opts->ca_file ? opts->ca_file : DEFAULT_CA_BUNDLE;
    info.timeout_secs = 30;
    info.pcontext = &c->lws; /* lws clears it when the destruction completes */
    c->lws = lws_create_context(&info);
    if (!c->lws) {
        snprintf(err, errlen, "cannot create the WebSocket client context");
        free(c);
        return NULL;
    }
    return c;
}

uv_loop_t *wa_fsock_ctx_loop(wa_fsock_ctx_t *ctx)
{
    return ctx->loop;
}

void wa_fsock_ctx_destroy(wa_fsock_ctx_t *ctx)
{
    if (ctx && ctx->lws)
        lws_context_destroy(ctx->lws);
}

void wa_fsock_ctx_free(wa_fsock_ctx_t *ctx)
{
    if (!ctx)
        return;
    /* With a foreign loop lws finishes in stages, each needing the loop to
     * run; it clears ctx->lws (info.pcontext) when it is done. */
    for (int i = 0; i < 8 && ctx->lws; i++) {
        lws_context_destroy(ctx->lws);
        uv_run(ctx->loop, UV_RUN_NOWAIT);
    }
    free(ctx);
}

wa_fsock_t *wa_fsock_connect(wa_fsock_ctx_t *ctx, const char *url, const wa_fsock_callbacks_t *cb,
                             const wa_fsock_opts_t *opts, int *err)
{
    char buf[1024];
    const char *prot, *addr, *path;
    int port;
    if (strlen(url) >= sizeof(buf)) {
        *err = WA_FSOCK_EURL;
        return NULL;
    }
    strcpy(buf, url);
    if (lws_parse_uri(buf, &prot, &addr, &port, &path) ||
        (strcmp(prot, "ws") && strcmp(prot, "wss")) || !*addr) {
        *err = WA_FSOCK_EURL;
        return NULL;
    }
    int tls = !strcmp(prot, "wss");
    wa_fsock_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = WA_FSOCK_ENOMEM;
        return NULL;
    }
    s->ctx = ctx;
    s->cb = *cb;
    wa_frame_reader_init(&s->reader, opts ? opts->max_frame : 0);
    snprintf(s->host, sizeof(s->host), "%s", addr);
    char fullpath[1024];
    snprintf(fullpath, sizeof(fullpath), "/%s", path);
    uv_timer_init(ctx->loop, &s->timer);
    s->timer.data = s;
    s->refs = 2;
    ctx->live++;
    unsigned tmo = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 20000;
    uv_timer_start(&s->timer, on_connect_timeout, tmo, 0);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = ctx->lws;
    ci.address = s->host;
    ci.port = port;
    ci.path = fullpath;
    ci.host = s->host;
    ci.origin = WA_FSOCK_ORIGIN;
    ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    ci.protocol = NULL;
    ci.local_protocol_name = protocols[0].name;
    ci.userdata = s;
    ci.pwsi = &s->wsi;
    s->in_connect = 1;
    struct lws *w = lws_client_connect_via_info(&ci);
    s->in_connect = 0;
    if (!w) {
        /* lws already reported CONNECTION_ERROR (and WSI_DESTROY) or never
         * created a connection; either way ours is the only ref left. */
        if (s->wsi == NULL && !s->reported) {
            s->reported = 1;
            s->refs--; /* no lws connection will report */
        }
        s->closing = 1;
        *err = WA_FSOCK_ECONNECT;
        close_timer(s);
        return NULL;
    }
    return s;
}

int wa_fsock_send(wa_fsock_t *s, const uint8_t *payload, size_t len)
{
    if (s->closing || s->reported)
        return -100;
    uint8_t *frame;
    size_t flen;
    int rc = wa_frame_write(!s->sent_first, payload, len, &frame, &flen);
    if (rc)
        return rc == WA_FRAME_ETOOBIG ? WA_FSOCK_ETOOBIG : WA_FSOCK_ENOMEM;
    out_msg_t *m = malloc(sizeof(*m) + LWS_PRE + flen);
    if (!m) {
        free(frame);
        return WA_FSOCK_ENOMEM;
    }
    m->next = NULL;
    m->len = flen;
    memcpy(m->data + LWS_PRE, frame, flen);
    free(frame);
    s->sent_first = 1;
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    if (s->open && s->wsi)
        lws_callback_on_writable(s->wsi);
    return 0;
}

void wa_fsock_close(wa_fsock_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->reported = 1;
    close_timer(s);
    if (!s->wsi)
        return;
    if (s->open && s->head) {
        /* write what is queued (e.g. a last error reply), then close */
        lws_callback_on_writable(s->wsi);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
    } else {
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}
