/* libwebsockets client for WhatsApp frames. lws owns the socket; our
 * wa_fsock_t lives until both lws has destroyed the connection
 * (LWS_CALLBACK_WSI_DESTROY) and our connect timer is closed (a two-count
 * reference), so a caller may close at any moment, even from inside a
 * callback. Outgoing frames are queued, each with LWS_PRE bytes of headroom,
 * and written one per writable callback, so each is one WebSocket message.
 * The trusted CAs are loaded on a worker thread (parsing the system bundle
 * takes ~25 ms) and installed in lws's client SSL_CTX when ready; wss://
 * connects made before that wait for it, ws:// ones do not. Until the store
 * is installed the SSL_CTX trusts nothing, so a failure fails closed. */
#include "session/wa/framesocket.h"

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "session/wa/frame.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 20000u
/* How long a caller's close may take to flush queued frames. */
#define CLOSE_FLUSH_SECS 5

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    uint8_t data[]; /* LWS_PRE bytes of headroom, then the message */
} out_msg_t;

struct wa_fsock_ctx {
    uv_loop_t *loop;
    struct lws_context *lws; /* cleared by lws once its destruction completes */
    wa_fsock_t *socks;       /* connections not yet released */
    char ca_file[1024];      /* "" = OpenSSL's default paths */
    SSL_CTX *ssl_ctx;        /* lws's client TLS context (not ours) */
    uv_thread_t ca_thread;   /* loads ca_store off the loop thread */
    uv_async_t ca_async;     /* ca_thread is done */
    int ca_async_open;       /* ca_async not closed yet */
    X509_STORE *ca_store;    /* set by the worker; NULL on failure */
    int ca_state;            /* CA_LOADING, CA_READY or CA_FAILED */
    int destroyed;           /* wa_fsock_ctx_destroy was called */
};

enum { CA_LOADING, CA_READY, CA_FAILED };

struct wa_fsock {
    wa_fsock_ctx_t *ctx;
    wa_fsock_t *prev, *next; /* in ctx->socks */
    struct lws *wsi;
    wa_fsock_callbacks_t cb;
    wa_frame_reader_t reader;
    wa_frame_writer_t writer;
    uv_timer_t timer;
    int refs;     /* the lws connection + the timer */
    int open;     /* the WebSocket handshake completed */
    int closing;  /* no more input or sends; lws closes after the queue */
    int reported; /* on_close ran, or must not run */
    int timer_closed;
    int peer_status; /* close status sent by the peer, 0 if none */
    char *tls_error; /* why the server certificate was refused (malloc'd), or NULL */
    out_msg_t *head, *tail;
    int waiting_ca;          /* wss:// connect deferred until the CAs are loaded */
    int lws_ref;             /* the lws connection's reference is still held */
    void (*gone)(void *arg); /* wa_fsock_close_then: once lws destroyed it */
    void *gone_arg;
    int tls, port;
    /* the address, the path and the Host header, in one allocation: kept
     * exactly as long as needed, as thousands of idle connections each hold
     * them */
    char *host, *path, *hosthdr;
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
    case WA_FSOCK_ECLOSED:
        return "socket closed";
    }
    return "unknown socket error";
}

static void free_queue(wa_fsock_t *s)
{
    out_msg_t *m = s->head;
    while (m) {
        out_msg_t *n = m->next;
        free(m);
        m = n;
    }
    s->head = s->tail = NULL;
}

static void sock_unref(wa_fsock_t *s)
{
    if (--s->refs > 0)
        return;
    free_queue(s);
    free(s->host); /* path and hosthdr live in the same block */
    free(s->tls_error);
    wa_frame_reader_free(&s->reader);
    wa_frame_writer_dispose(&s->writer);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->ctx->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
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
    close_timer(s);
    if (s->reported)
        return;
    s->reported = 1;
    s->closing = 1;
    if (s->cb.on_close)
        s->cb.on_close(s->cb.arg, code, reason);
}

static void on_connect_timeout(uv_timer_t *t)
{
    wa_fsock_t *s = t->data;
    if (s->open)
        return;
    struct lws *wsi = s->wsi;
    report_close(s, WA_FSOCK_ETIMEOUT, "connect timed out");
    if (wsi)
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* Queues a normal close once the queue is written (or at once). */
static void start_close(wa_fsock_t *s)
{
    if (!s->wsi)
        return;
    if (s->open && s->head) {
        lws_callback_on_writable(s->wsi);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_FLUSH_SECS);
    } else if (s->open) {
        lws_callback_on_writable(s->wsi); /* WRITEABLE sends the close */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_FLUSH_SECS);
    } else {
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}

static int on_receive(wa_fsock_t *s, struct lws *wsi, const uint8_t *in, size_t len)
{
    if (s->closing)
        return 0; /* closing after the queue is written; ignore input */
    if (!lws_frame_is_binary(wsi))
        return 0; /* text messages are ignored (also their continuations) */
    int rc = wa_frame_reader_feed(&s->reader, in, len);
    if (rc) {
        char why[96];
        if (rc == WA_FRAME_ETOOBIG)
            snprintf(why, sizeof(why), "frame over %zu bytes from the server", s->reader.max_frame);
        report_close(s, rc == WA_FRAME_ETOOBIG ? WA_FSOCK_ETOOBIG : WA_FSOCK_ENOMEM,
                     rc == WA_FRAME_ETOOBIG ? why : "out of memory");
        lws_close_reason(wsi,
                         rc == WA_FRAME_ETOOBIG ? LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE
                                                : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                         NULL, 0);
        return -1;
    }
    const uint8_t *payload;
    size_t plen;
    while (!s->closing && wa_frame_reader_next(&s->reader, &payload, &plen) == 1)
        if (s->cb.on_frame)
            s->cb.on_frame(s->cb.arg, payload, plen);
    /* idle connections keep no receive buffer (it would be 4 KiB each) */
    if (wa_frame_reader_pending(&s->reader) == 0)
        wa_frame_reader_free(&s->reader);
    return 0; /* a close requested by a callback completes in WRITEABLE */
}

static int on_writeable(wa_fsock_t *s, struct lws *wsi)
{
    out_msg_t *m = s->head;
    if (!m) {
        if (!s->closing)
            return 0;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY);
    if (n < (int)m->len) {
        report_close(s, WA_FSOCK_CLOSED, "write failed");
        return -1;
    }
    s->head = m->next;
    if (!s->head)
        s->tail = NULL;
    free(m);
    if (s->head || s->closing)
        lws_callback_on_writable(wsi);
    return 0;
}

/* Notes why OpenSSL refused the server certificate (the verification
 * itself stays OpenSSL's), for a clear on_close reason. */
static void note_cert_result(wa_fsock_t *s, X509_STORE_CTX *x509, int preverify_ok)
{
    if (!s || preverify_ok || !x509 || s->tls_error || !(s->tls_error = malloc(128)))
        return;
    int err = X509_STORE_CTX_get_error(x509);
    snprintf(s->tls_error, 128, "%s (depth %d)", X509_verify_cert_error_string(err),
             X509_STORE_CTX_get_error_depth(x509));
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    wa_fsock_t *s = user;
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS: {
        /* at context creation: `user` is the client SSL_CTX */
        wa_fsock_ctx_t *ctx = lws_context_user(lws_get_context(wsi));
        if (ctx)
            ctx->ssl_ctx = user;
        return 0;
    }
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* here `user` is the X509_STORE_CTX and len is preverify_ok */
        note_cert_result(lws_wsi_user(wsi), user, (int)len);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!s)
            return -1;
        if (s->closing) /* timed out or closed meanwhile */
            return -1;
        s->open = 1;
        uv_timer_stop(&s->timer);
        if (s->cb.on_open)
            s->cb.on_open(s->cb.arg);
        if (s->head && !s->closing)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return s ? on_receive(s, wsi, in, len) : -1;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return s ? on_writeable(s, wsi) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (s && in && len >= 2)
            s->peer_status = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (s) {
            char why[600];
            const char *what = in && len ? (const char *)in : "connection error";
            int wl = in && len ? (int)strnlen(what, len) : (int)strlen(what);
            if (s->tls_error)
                snprintf(why, sizeof(why),
                         "could not connect to %s: TLS server certificate rejected: %s", s->host,
                         s->tls_error);
            else
                snprintf(why, sizeof(why), "could not connect to %s: %.*s", s->host, wl, what);
            report_close(s, WA_FSOCK_ECONNECT, why);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s) {
            char why[96];
            if (s->peer_status)
                snprintf(why, sizeof(why), "closed by the server (WebSocket status %d)",
                         s->peer_status);
            else
                snprintf(why, sizeof(why), "connection closed");
            report_close(s, WA_FSOCK_CLOSED, why);
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s) {
            report_close(s, s->open ? WA_FSOCK_CLOSED : WA_FSOCK_ECONNECT,
                         s->open ? "connection lost" : "could not connect");
            s->wsi = NULL;
            lws_set_wsi_user(wsi, NULL);
            s->lws_ref = 0;
            void (*gone)(void *) = s->gone;
            void *gone_arg = s->gone_arg;
            s->gone = NULL;
            sock_unref(s);
            if (gone)
                gone(gone_arg);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

/* Memory per connection: lws keeps a receive buffer of rx_buffer_size for
 * the life of each connection (its default, 4 KiB, is most of what an idle
 * connection costs it), and only assembles bytes there before handing them
 * to ws_callback, which appends them to the frame reader anyway; 1 KiB
 * holds a keepalive answer whole, and larger frames arrive in more pieces.
 * Writes are cut at tx_packet_size (by default the same rx_buffer_size):
 * a TLS record's worth, so that an upload of pre-keys is a few writes. */
#define RX_BUFFER_SIZE 1024
#define TX_PACKET_SIZE 16384

static const struct lws_protocols protocols[] = {
    {"wa-frame-socket", ws_callback, 0, RX_BUFFER_SIZE, 0, NULL, TX_PACKET_SIZE},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, "lws", "%.*s", (int)n, line);
}

/* The CA thread: builds the store at the lowest CPU priority, so that on a
 * busy or single core it does not delay start-up or the loop; touches no
 * lws or loop state, and reports through ca_async. */
static void ca_load_thread(void *arg)
{
    wa_fsock_ctx_t *c = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19); /* this thread only */
    X509_STORE *st = X509_STORE_new();
    int ok = st != NULL;
    if (ok && c->ca_file[0])
        ok = X509_STORE_load_file(st, c->ca_file) == 1;
    else if (ok)
        ok = X509_STORE_set_default_paths(st) == 1;
    if (!ok) {
        X509_STORE_free(st);
        st = NULL;
    }
    c->ca_store = st;
    uv_async_send(&c->ca_async);
}

static void on_ca_async_closed(uv_handle_t *h)
{
    wa_fsock_ctx_t *c = h->data;
    c->ca_async_open = 0;
}

static int start_lws_connect(wa_fsock_t *s);

/* Loop thread: installs the store and starts the connects that waited. */
static void ca_load_done(uv_async_t *a)
{
    wa_fsock_ctx_t *c = a->data;
    uv_thread_join(&c->ca_thread);
    uv_close((uv_handle_t *)&c->ca_async, on_ca_async_closed);
    if (c->ca_store && c->ssl_ctx && !c->destroyed) {
        SSL_CTX_set_cert_store(c->ssl_ctx, c->ca_store); /* takes ownership */
        c->ca_store = NULL;
        c->ca_state = CA_READY;
    } else {
        if (!c->destroyed)
            LOG_WARN("fsock", "cannot load the trusted CA certificates%s%s",
                     c->ca_file[0] ? " from " : " (OpenSSL default paths)", c->ca_file);
        X509_STORE_free(c->ca_store);
        c->ca_store = NULL;
        c->ca_state = CA_FAILED;
    }
    for (wa_fsock_t *s = c->socks, *n; s; s = n) {
        n = s->next; /* a failing start may release s (on a later turn) */
        if (s->waiting_ca) {
            s->waiting_ca = 0;
            (void)start_lws_connect(s);
        }
    }
}

wa_fsock_ctx_t *wa_fsock_ctx_new(uv_loop_t *loop, const wa_fsock_ctx_opts_t *opts, char *err,
                                 size_t errlen)
{
    const char *ca = opts && opts->ca_file ? opts->ca_file : NULL;
    if (ca && (strlen(ca) >= sizeof(((wa_fsock_ctx_t *)0)->ca_file) || access(ca, R_OK) != 0)) {
        snprintf(err, errlen, "cannot read the CA file %s", ca);
        return NULL;
    }
    wa_fsock_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    if (ca)
        snprintf(c->ca_file, sizeof(c->ca_file), "%s", ca);
    lws_set_log_level(LLL_ERR, lws_log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *foreign[1] = {loop};
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    /* RAW_ORIGIN: send our Origin as is (lws would prefix "http://").
     * No CAs here: lws would parse them on this thread; see ca_load_thread. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    info.user = c;
    info.foreign_loops = foreign;
    info.timeout_secs = 30;
    info.pcontext = &c->lws; /* lws clears it when the destruction completes */
    c->lws = lws_create_context(&info);
    if (!c->lws) {
        snprintf(err, errlen, "cannot create the WebSocket client context");
        free(c);
        return NULL;
    }
    c->ca_state = CA_FAILED;
    c->ca_async.data = c;
    if (uv_async_init(loop, &c->ca_async, ca_load_done) == 0) {
        c->ca_async_open = 1;
        c->ca_state = CA_LOADING;
        if (uv_thread_create(&c->ca_thread, ca_load_thread, c) != 0) {
            c->ca_state = CA_FAILED;
            uv_close((uv_handle_t *)&c->ca_async, on_ca_async_closed);
        }
    }
    return c;
}

uv_loop_t *wa_fsock_ctx_loop(wa_fsock_ctx_t *ctx)
{
    return ctx->loop;
}

void wa_fsock_ctx_destroy(wa_fsock_ctx_t *ctx)
{
    if (!ctx)
        return;
    ctx->destroyed = 1;
    /* connections still open end silently; lws releases them below */
    for (wa_fsock_t *s = ctx->socks; s; s = s->next) {
        s->reported = 1;
        s->closing = 1;
    }
    for (wa_fsock_t *s = ctx->socks, *n; s; s = n) {
        n = s->next; /* closing the timer may release s (on a later loop turn) */
        close_timer(s);
    }
    if (ctx->lws)
        lws_context_destroy(ctx->lws);
}

void wa_fsock_ctx_free(wa_fsock_ctx_t *ctx)
{
    if (!ctx)
        return;
    /* With a foreign loop lws finishes in stages, each needing the loop to
     * run; it clears ctx->lws (info.pcontext) when it is done. Normally the
     * caller ran the loop after wa_fsock_ctx_destroy and nothing is left. */
    for (int i = 0; i < 16 && ctx->lws; i++) {
        lws_context_destroy(ctx->lws);
        if (ctx->lws)
            uv_run(ctx->loop, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < 64 && ctx->ca_async_open; i++)
        uv_run(ctx->loop, UV_RUN_ONCE); /* the CA thread must finish first */
    if (ctx->lws || ctx->socks)
        LOG_WARN("fsock", "WebSocket context freed before lws finished");
    free(ctx);
}

/* Splits a ws:// or wss:// URL. Returns 0 or WA_FSOCK_EURL. */
static int parse_url(const char *url, char *buf, size_t buflen, int *tls, const char **addr,
                     int *port, char *path, size_t pathlen)
{
    if (!url || strlen(url) >= buflen)
        return WA_FSOCK_EURL;
    memcpy(buf, url, strlen(url) + 1);
    const char *prot, *p;
    if (lws_parse_uri(buf, &prot, addr, port, &p))
        return WA_FSOCK_EURL;
    if (strcmp(prot, "ws") && strcmp(prot, "wss"))
        return WA_FSOCK_EURL;
    if (!**addr || **addr == '+' || *port <= 0 || *port > 65535 || strpbrk(*addr, "@/ \t\r\n"))
        return WA_FSOCK_EURL;
    *tls = !strcmp(prot, "wss");
    if (strpbrk(p, " \t\r\n"))
        return WA_FSOCK_EURL;
    int n = snprintf(path, pathlen, "%s%s", p[0] == '/' ? "" : "/", p);
    return n < 0 || (size_t)n >= pathlen ? WA_FSOCK_EURL : 0;
}

/* Asks lws for the connection described in s; returns 0 when started. On
 * failure (-1) marks s closing, reports the failure unless s->reported is
 * set, closes its timer and drops the lws reference: s may be gone after. */
static int start_lws_connect(wa_fsock_t *s)
{
    wa_fsock_ctx_t *ctx = s->ctx;
    struct lws *w = NULL;
    if (!s->closing && ctx->lws && !ctx->destroyed && (!s->tls || ctx->ca_state == CA_READY)) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = ctx->lws;
        ci.address = s->host;
        ci.port = s->port;
        ci.path = s->path;
        ci.host = s->hosthdr;
        ci.origin = WA_FSOCK_ORIGIN; /* lws adds Pragma and Cache-Control: no-cache itself */
        ci.ssl_connection = s->tls ? LCCSCF_USE_SSL : 0; /* certificate and host name checked */
        ci.protocol = NULL;                              /* no Sec-WebSocket-Protocol */
        ci.local_protocol_name = protocols[0].name;
        ci.userdata = s;
        ci.pwsi = &s->wsi;
        w = lws_client_connect_via_info(&ci);
        if (w)
            return 0;
    }
    /* lws either destroyed the connection it started (WSI_DESTROY dropped
     * the lws reference and cleared s->wsi) or never made one; in that case
     * the lws reference is dropped below, last, as it may release s. */
    s->wsi = NULL;
    if (!s->closing && s->tls && ctx->ca_state == CA_FAILED)
        report_close(s, WA_FSOCK_ECONNECT,
                     "could not connect: the trusted CA certificates could not be loaded");
    else
        report_close(s, WA_FSOCK_ECONNECT, "could not connect");
    s->closing = 1;
    close_timer(s);
    if (s->lws_ref) {
        s->lws_ref = 0;
        void (*gone)(void *) = s->gone;
        void *gone_arg = s->gone_arg;
        s->gone = NULL;
        sock_unref(s);
        if (gone)
            gone(gone_arg);
    }
    return -1;
}

wa_fsock_t *wa_fsock_connect(wa_fsock_ctx_t *ctx, const char *url, const wa_fsock_callbacks_t *cb,
                             const wa_fsock_opts_t *opts, int *err)
{
    char buf[1024], path[1024];
    const char *addr;
    int port, tls;
    if (parse_url(url, buf, sizeof(buf), &tls, &addr, &port, path, sizeof(path))) {
        *err = WA_FSOCK_EURL;
        return NULL;
    }
    if (!ctx->lws || ctx->destroyed || (tls && ctx->ca_state == CA_FAILED)) {
        *err = WA_FSOCK_ECONNECT;
        return NULL;
    }
    wa_fsock_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = WA_FSOCK_ENOMEM;
        return NULL;
    }
    s->ctx = ctx;
    if (cb)
        s->cb = *cb;
    wa_frame_reader_init(&s->reader, opts ? opts->max_frame : 0);
    wa_frame_writer_init(&s->writer);
    if (opts && opts->routing_info && opts->routing_info_len &&
        wa_frame_writer_set_edge(&s->writer, opts->routing_info, opts->routing_info_len) != 0)
        wa_frame_writer_init(&s->writer); /* unusable routing info: plain intro */
    /* Host header: with the port unless it is the default one (lws strips
     * it again for SNI and the certificate check). IPv6 literals go without
     * port, as lws would cut them at the first colon. */
    int bare = port == (tls ? 443 : 80) || strchr(addr, ':');
    size_t al = strlen(addr), pl = strlen(path), hl = al + (bare ? 0 : 6);
    s->host = malloc(al + 1 + pl + 1 + hl + 1);
    if (!s->host) {
        wa_frame_writer_dispose(&s->writer);
        free(s);
        *err = WA_FSOCK_ENOMEM;
        return NULL;
    }
    memcpy(s->host, addr, al + 1);
    s->path = s->host + al + 1;
    memcpy(s->path, path, pl + 1);
    s->hosthdr = s->path + pl + 1;
    if (bare)
        memcpy(s->hosthdr, addr, al + 1);
    else
        snprintf(s->hosthdr, hl + 1, "%s:%d", addr, port);
    s->port = port;
    s->tls = tls;
    uv_timer_init(ctx->loop, &s->timer);
    s->timer.data = s;
    s->refs = 2;
    s->lws_ref = 1;
    s->next = ctx->socks;
    if (ctx->socks)
        ctx->socks->prev = s;
    ctx->socks = s;
    unsigned tmo =
        opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    uv_timer_start(&s->timer, on_connect_timeout, tmo, 0);
    if (tls && ctx->ca_state == CA_LOADING) {
        s->waiting_ca = 1; /* ca_load_done starts it, or reports the failure */
        return s;
    }
    /* Callbacks during the call must not reach the caller: report nothing. */
    s->reported = 1;
    if (start_lws_connect(s)) { /* s stays until its timer closes */
        *err = WA_FSOCK_ECONNECT;
        return NULL;
    }
    s->reported = 0;
    return s;
}

int wa_fsock_send(wa_fsock_t *s, const uint8_t *payload, size_t len)
{
    if (!s || s->closing || s->reported)
        return WA_FSOCK_ECLOSED;
    if (len > WA_FRAME_HARD_MAX)
        return WA_FSOCK_ETOOBIG;
    size_t flen = wa_frame_writer_size(&s->writer, len);
    out_msg_t *m = malloc(sizeof(*m) + LWS_PRE + flen);
    if (!m)
        return WA_FSOCK_ENOMEM;
    long n = wa_frame_writer_put(&s->writer, payload, len, m->data + LWS_PRE, flen);
    if (n < 0) {
        free(m);
        return n == WA_FRAME_ETOOBIG ? WA_FSOCK_ETOOBIG : WA_FSOCK_ENOMEM;
    }
    m->next = NULL;
    m->len = (size_t)n;
    wa_frame_writer_dispose(&s->writer); /* the edge-routing prefix went out with the first */
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    if (s->open && s->wsi)
        lws_callback_on_writable(s->wsi);
    return 0;
}

void wa_fsock_close_then(wa_fsock_t *s, void (*gone)(void *arg), void *arg)
{
    if (!s || !s->lws_ref || s->gone) { /* nothing (more) to wait for */
        wa_fsock_close(s);
        gone(arg);
        return;
    }
    s->gone = gone;
    s->gone_arg = arg;
    wa_fsock_close(s);
}

void wa_fsock_close(wa_fsock_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->reported = 1;
    close_timer(s);
    start_close(s);
}
