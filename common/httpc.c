/* The HTTP client (see httpc.h): libcurl's multi-socket interface on libuv,
 * as in curl's own multi-uv example. curl asks through sock_cb which sockets
 * to watch and through timer_cb when to be woken; each wake-up is a
 * curl_multi_socket_action, after which finished transfers are collected
 * (collect) and their callbacks run. */
#include "common/httpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_MAX_BODY (1u << 20)
#define MAX_MAX_BODY (1u << 30) /* whatever the caller asks, bodies stay in memory */

struct httpc_req {
    httpc_t *c;
    CURL *easy;
    struct curl_slist *headers;
    char *post; /* copied POST body */
    uint8_t *body;
    size_t len, cap, max;
    int too_big;
    int finished; /* its callback is running: cancel is a no-op */
    int refused;  /* allow_addr refused an address */
    int (*allow_addr)(void *addr_arg, const struct sockaddr *sa, socklen_t len);
    void *addr_arg;
    void (*done)(void *arg, const httpc_result_t *res);
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
    httpc_req_t *prev, *next;
};

/* One watched socket. */
typedef struct sock {
    uv_poll_t poll; /* first: the close callback frees the sock_t through it */
    httpc_t *c;
    curl_socket_t fd;
    struct sock *prev, *next; /* open (not yet closing) sockets */
} sock_t;

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ca_file;
    char *user_agent;
    httpc_req_t *reqs;
    size_t nreqs;
    sock_t *socks;
    size_t handles; /* our uv handles not yet closed (timer + polls) */
    int destroying;
    void (*destroyed)(void *arg);
    void *destroyed_arg;
};

const char *httpc_strerror(int err)
{
    switch (err) {
    case HTTPC_OK:
        return "ok";
    case HTTPC_EINVAL:
        return "invalid request";
    case HTTPC_ENOMEM:
        return "out of memory";
    case HTTPC_ECONNECT:
        return "cannot connect";
    case HTTPC_ETIMEOUT:
        return "timed out";
    case HTTPC_ETOOBIG:
        return "response too large";
    case HTTPC_ETLS:
        return "TLS failure";
    case HTTPC_EPROTO:
        return "protocol or I/O error";
    case HTTPC_ECLOSED:
        return "client closed";
    case HTTPC_EREFUSED:
        return "address not allowed";
    default:
        return "unknown error";
    }
}

int httpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void httpc_global_cleanup(void)
{
    curl_global_cleanup();
}

/* --- handle bookkeeping: the client is freed after its last handle --- */

static void maybe_free(httpc_t *c)
{
    if (!c->destroying || c->handles)
        return;
    void (*done)(void *) = c->destroyed;
    void *arg = c->destroyed_arg;
    free(c->ca_file);
    free(c->user_agent);
    free(c);
    if (done)
        done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    httpc_t *c = h->data;
    if (h->type == UV_POLL)
        free(h); /* the sock_t (poll is its first member) */
    c->handles--;
    maybe_free(c);
}

/* --- requests --- */

static void req_unlink(httpc_req_t *r)
{
    httpc_t *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    c->nreqs--;
}

static void req_free(httpc_req_t *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->post);
    free(r->body);
    free(r);
}

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
    httpc_req_t *r = arg;
    size_t len = size * n;
    if (len > r->max - r->len) {
        r->too_big = 1;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        if (cap > r->max + 1)
            cap = r->max + 1;
        uint8_t *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    return len;
}

static int map_error(CURLcode rc, const httpc_req_t *r)
{
    switch (rc) {
    case CURLE_OK:
        return HTTPC_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return HTTPC_ETIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return r->refused ? HTTPC_EREFUSED : HTTPC_ECONNECT;
    case CURLE_FILESIZE_EXCEEDED:
        return HTTPC_ETOOBIG;
    case CURLE_WRITE_ERROR:
        return r->too_big ? HTTPC_ETOOBIG : HTTPC_ENOMEM;
    case CURLE_OUT_OF_MEMORY:
        return HTTPC_ENOMEM;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return HTTPC_EINVAL;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return HTTPC_ETLS;
    default:
        return HTTPC_EPROTO;
    }
}

/* curl's socket opener for requests with an address filter: the filter sees
 * each address curl is about to connect to. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    httpc_req_t *r = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!r->allow_addr(r->addr_arg, &a->addr, a->addrlen)) {
        r->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Runs the callbacks of finished transfers. Stops when a callback destroyed
 * the client. */
static void collect(httpc_t *c)
{
    CURLMsg *m;
    int left;
    while (!c->destroying && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        httpc_req_t *r = (httpc_req_t *)priv;
        curl_multi_remove_handle(c->multi, e);
        if (!r)
            continue;
        req_unlink(r);
        httpc_result_t res = {.error = map_error(rc, r), .message = ""};
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res.status);
        if (res.error != HTTPC_OK)
            res.message = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        if (res.error == HTTPC_ETOOBIG)
            res.message = "response body larger than the bound";
        if (res.error == HTTPC_EREFUSED)
            res.message = "every address of the host is refused";
        if (!r->body) /* an empty body still reads as "" */
            r->body = calloc(1, 1);
        if (r->body)
            r->body[r->len] = 0;
        res.body = r->body ? r->body : (const uint8_t *)"";
        res.body_len = r->body ? r->len : 0;
        char *loc = NULL, *ctype = NULL;
        if (res.status >= 300 && res.status < 400 &&
            curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK)
            res.location = loc;
        if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK)
            res.content_type = ctype;
        r->finished = 1;
        if (r->done)
            r->done(r->arg, &res);
        req_free(r);
    }
}

/* --- curl's socket and timer callbacks --- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = (sock_t *)p;
    httpc_t *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    collect(c);
}

static void sock_close(httpc_t *c, sock_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static sock_t *sock_find(httpc_t *c, curl_socket_t fd)
{
    for (sock_t *s = c->socks; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

/* curl closes a socket: its poll handle goes first (a kept-alive
 * connection keeps its handle between transfers: closing a poll handle and
 * opening another on the same descriptor within one loop turn loses
 * events). */
static int close_socket(void *arg, curl_socket_t fd)
{
    httpc_t *c = arg;
    sock_t *s = sock_find(c, fd);
    if (s)
        sock_close(c, s);
    return close(fd);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    httpc_t *c = userp;
    sock_t *s = socketp ? socketp : sock_find(c, fd);
    if (what == CURL_POLL_REMOVE) {
        if (s) /* not watched any more; closed with the socket (close_socket) */
            uv_poll_stop(&s->poll);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = c;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->handles++;
    }
    curl_multi_assign(c->multi, fd, s);
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_timeout(uv_timer_t *t)
{
    httpc_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(c);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    httpc_t *c = userp;
    if (c->destroying)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 too: curl is run from the loop, never from inside its own call */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* --- public --- */

httpc_t *httpc_new(uv_loop_t *loop, const httpc_opts_t *opts, char *err, size_t errlen)
{
    const char *ca = opts ? opts->ca_file : NULL;
    const char *ua = opts && opts->user_agent ? opts->user_agent : "wa-gateway";
    if (ca && access(ca, R_OK) != 0) {
        snprintf(err, errlen, "CA file '%s' is not readable", ca);
        return NULL;
    }
    httpc_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->user_agent = strdup(ua)) || (ca && !(c->ca_file = strdup(ca))) ||
        !(c->multi = curl_multi_init())) {
        if (c) {
            free(c->user_agent);
            free(c->ca_file);
        }
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    return c;
}

int httpc_request(httpc_t *c, const httpc_request_t *o, httpc_req_t **out)
{
    if (out)
        *out = NULL;
    if (!c || !o || !o->url || !o->done)
        return HTTPC_EINVAL;
    if (c->destroying)
        return HTTPC_ECLOSED;
    if (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8) != 0)
        return HTTPC_EINVAL;
    int post = 0, del = 0;
    if (o->method && !strcmp(o->method, "POST"))
        post = 1;
    else if (o->method && !strcmp(o->method, "DELETE"))
        del = 1;
    else if (o->method && strcmp(o->method, "GET"))
        return HTTPC_EINVAL;
    httpc_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return HTTPC_ENOMEM;
    r->c = c;
    r->done = o->done;
    r->arg = o->arg;
    r->max = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
    r->allow_addr = o->allow_addr;
    r->addr_arg = o->addr_arg;
    if (r->max > MAX_MAX_BODY)
        r->max = MAX_MAX_BODY;
    unsigned timeout = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    unsigned ctimeout =
        o->connect_timeout_ms && o->connect_timeout_ms < timeout ? o->connect_timeout_ms : timeout;
    CURL *e = r->easy = curl_easy_init();
    int ok = e != NULL;
    for (size_t i = 0; ok && o->headers && o->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, o->headers[i]);
        ok = l != NULL;
        if (ok)
            r->headers = l;
    }
    if (ok && post) {
        r->post = malloc(o->body_len ? o->body_len : 1);
        ok = r->post != NULL;
        if (ok && o->body_len)
            memcpy(r->post, o->body, o->body_len);
    }
#define SET(opt, val) (ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK)
    SET(CURLOPT_URL, o->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_QUICK_EXIT, 1L); /* never wait for a resolver thread on cleanup */
    SET(CURLOPT_FORBID_REUSE, o->keep_alive ? 0L : 1L);
    if (o->allow_addr) {
        SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SET(CURLOPT_OPENSOCKETDATA, r);
        SET(CURLOPT_PROXY, ""); /* direct: the filter must see the real peer */
    }
    SET(CURLOPT_TIMEOUT_MS, (long)timeout);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)ctimeout);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_USERAGENT, c->user_agent);
    if (r->headers)
        SET(CURLOPT_HTTPHEADER, r->headers);
    if (del)
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    if (post) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        SET(CURLOPT_POSTFIELDS, r->post);
    }
    SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, c);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_PRIVATE, (char *)r);
#undef SET
    if (!ok) {
        req_free(r);
        return HTTPC_ENOMEM;
    }
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->nreqs++;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        req_unlink(r);
        req_free(r);
        return HTTPC_ENOMEM;
    }
    if (out)
        *out = r;
    /* start it now (connect, or write the request on a kept connection)
     * rather than on the loop's next turn; what finishes is collected from
     * the loop as usual */
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    return 0;
}

void httpc_cancel(httpc_req_t *r)
{
    if (!r || r->finished)
        return;
    httpc_t *c = r->c;
    req_unlink(r);
    curl_multi_remove_handle(c->multi, r->easy);
    req_free(r);
}

size_t httpc_pending(const httpc_t *c)
{
    return c ? c->nreqs : 0;
}

void httpc_destroy(httpc_t *c, void (*done)(void *arg), void *arg)
{
    if (!c || c->destroying)
        return;
    while (c->reqs) {
        httpc_req_t *r = c->reqs;
        req_unlink(r);
        curl_multi_remove_handle(c->multi, r->easy);
        req_free(r);
    }
    c->destroying = 1; /* from here sock_cb only closes, timer_cb does nothing */
    c->destroyed = done;
    c->destroyed_arg = arg;
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks) /* any socket curl did not remove itself */
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
