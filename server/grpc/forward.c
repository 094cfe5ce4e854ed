/* Cluster mode: the commands (Reconnect, Logout, RequestPairingCode,
 * SendPasskeyAssertion, DeleteSession) for a session another node runs are
 * passed on to that node's HTTP API, as server/http/forward.c does for
 * HTTP: the owner's ADVERTISE_URL, the caller's X-API-Key (the owner
 * authorizes it again) and the node secret. The owner answers over HTTP,
 * so a command never travels twice. Its answer becomes the gRPC answer:
 * an error as the gRPC code of the api_code_t its HTTP status stands for,
 * with its message; a success as the reply the local handler would give,
 * built from this node's follower snapshot once that has caught up with
 * the owner's answer (its seq, its QR, its code; bounded wait).
 *
 * One path for every command; a row per command (fwd_methods) says what
 * differs: the HTTP method and path, the body, when the local snapshot has
 * caught up and how the reply is built. Loop thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <yajl/yajl_tree.h>

#include "api/pb.h"
#include "common/httpc.h"
#include "common/log.h"
#include "proto/gateway.pb-c.h"
#include "server/grpc/internal.h"

/* How long the owner may take to answer (a reconnect waits there for its
 * QR, up to its wait_ms): at least API_FORWARD_TIMEOUT_MS, or wait_ms +
 * FWD_SLACK_MS. */
#define FWD_SLACK_MS 5000
/* How often the catch-up wait looks at the local snapshot. */
#define FWD_POLL_MS 10

typedef struct fwd_method fwd_method_t;

struct grpc_srv_fwd {
    grpc_srv_t *srv;
    grpc_srv_call_t *c; /* holds a reference */
    const fwd_method_t *m;
    char session[GRPC_SRV_SESSION_MAX + 1];
    httpc_req_t *req; /* in flight; NULL once answered */
    uv_timer_t timer; /* the catch-up wait */
    int64_t deadline_ms;
    /* the owner's success answer */
    char *message; /* its "message", or NULL */
    uint64_t seq;  /* data.seq, 0 when none */
    char *qr;      /* data.qrCode (a data URL), or NULL */
    char *code;    /* data.pairingCode, or NULL */
    int expires_in;
    grpc_srv_fwd_t *prev, *next; /* in the server's list */
};

struct fwd_method {
    const char *method; /* "POST" or "DELETE" */
    const char *suffix; /* after /api/sessions/{name} */
    /* The request's body (malloc'd; NULL with *none = 1 for no body, NULL
     * with *none = 0 when out of memory). */
    char *(*body)(const grpc_srv_fwd_args_t *a, int *none);
    /* 1 when the local snapshot `r` (api_status's result) shows what the
     * owner answered. */
    int (*caught_up)(const grpc_srv_fwd_t *f, const api_result_t *r);
    /* Ends the call with the local handler's reply, from `r` (api_status's
     * result, API_OK). */
    void (*reply)(grpc_srv_fwd_t *f, const api_result_t *r);
    /* The reply needs the local snapshot (else `r` may be an error). */
    int needs_snapshot;
};

/* --- bodies --- */

static char *body_none(const grpc_srv_fwd_args_t *a, int *none)
{
    (void)a;
    *none = 1;
    return NULL;
}

/* What api_parse_reconnect_body reads: {"keepCredentials":bool[,"waitMs":N]}. */
static char *body_reconnect(const grpc_srv_fwd_args_t *a, int *none)
{
    *none = 0;
    char buf[64];
    if (a->wait_ms)
        snprintf(buf, sizeof(buf), "{\"keepCredentials\":%s,\"waitMs\":%u}",
                 a->keep ? "true" : "false", a->wait_ms);
    else
        snprintf(buf, sizeof(buf), "{\"keepCredentials\":%s}", a->keep ? "true" : "false");
    return strdup(buf);
}

/* What api_parse_pairing_code_body reads; the number is digits only. */
static char *body_pairing_code(const grpc_srv_fwd_args_t *a, int *none)
{
    *none = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "{\"phoneNumber\":\"%s\"}", a->phone ? a->phone : "");
    return strdup(buf);
}

/* The assertion as the caller gave it: the owner judges it. */
static char *body_passkey(const grpc_srv_fwd_args_t *a, int *none)
{
    *none = 0;
    return strdup(a->assertion ? a->assertion : "");
}

/* --- catching up --- */

/* The owner's answer carried the state's seq: the local one reached it. */
static int caught_up_seq(const grpc_srv_fwd_t *f, const api_result_t *r)
{
    return r->code == API_OK && r->snap->seq >= f->seq;
}

/* Reconnect: a CONNECTED answer has its seq; a QR answer shows the QR (the
 * same text renders the same data URL on every node). */
static int caught_up_reconnect(const grpc_srv_fwd_t *f, const api_result_t *r)
{
    if (r->code != API_OK)
        return 0;
    if (f->seq)
        return r->snap->seq >= f->seq;
    if (!f->qr)
        return 1;
    if (r->snap->state != SESS_QR_READY || !r->snap->qr)
        return 0;
    Wagateway__V1__QRCode q;
    api_pb_qr(&q, r->snap, sess_now_ms());
    return q.data_url && !strcmp(q.data_url, f->qr);
}

static int caught_up_pairing_code(const grpc_srv_fwd_t *f, const api_result_t *r)
{
    return r->code == API_OK && r->snap->link_code && f->code &&
           !strcmp(r->snap->link_code, f->code);
}

/* The session is gone here too. */
static int caught_up_deleted(const grpc_srv_fwd_t *f, const api_result_t *r)
{
    (void)f;
    return r->code == API_ERR_NOT_FOUND;
}

/* --- replies (as methods.c's handlers give them) --- */

static void reply_reconnect(grpc_srv_fwd_t *f, const api_result_t *r)
{
    api_result_t rr = {API_OK, f->message, r->snap};
    api_pb_reconnect_t v;
    api_pb_reconnect(&v, &rr, sess_now_ms());
    grpc_srv_finish(f->c, &v.rep.base, GRPC_STATUS_OK, "");
}

static void reply_logout(grpc_srv_fwd_t *f, const api_result_t *r)
{
    api_result_t rr = {API_OK, f->message ? f->message : API_LOGOUT_MESSAGE, r->snap};
    api_pb_logout_t v;
    api_pb_logout(&v, &rr, sess_now_ms());
    grpc_srv_finish(f->c, &v.rep.base, GRPC_STATUS_OK, "");
}

static void reply_pairing_code(grpc_srv_fwd_t *f, const api_result_t *r)
{
    (void)r;
    Wagateway__V1__PairingCodeReply rep;
    api_pb_pairing_code(&rep, f->code, f->expires_in);
    grpc_srv_finish(f->c, &rep.base, GRPC_STATUS_OK, "");
}

static void reply_passkey(grpc_srv_fwd_t *f, const api_result_t *r)
{
    api_result_t rr = {API_OK, f->message, r->snap};
    api_pb_passkey_t v;
    api_pb_passkey(&v, &rr, f->c->scope, sess_now_ms());
    grpc_srv_finish(f->c, &v.rep.base, GRPC_STATUS_OK, "");
}

static void reply_deleted(grpc_srv_fwd_t *f, const api_result_t *r)
{
    (void)r;
    api_result_t rr = {API_OK, f->message, NULL};
    Wagateway__V1__DeleteSessionReply rep;
    api_pb_delete_session(&rep, &rr);
    grpc_srv_finish(f->c, &rep.base, GRPC_STATUS_OK, "");
}

/* Indexed by grpc_srv_fwd_kind_t. */
static const fwd_method_t fwd_methods[] = {
    [GRPC_SRV_FWD_RECONNECT] = {"POST", "/reconnect", body_reconnect, caught_up_reconnect,
                                reply_reconnect, 1},
    [GRPC_SRV_FWD_LOGOUT] = {"POST", "/logout", body_none, caught_up_seq, reply_logout, 1},
    [GRPC_SRV_FWD_PAIRING_CODE] = {"POST", "/pairing-code", body_pairing_code,
                                   caught_up_pairing_code, reply_pairing_code, 0},
    [GRPC_SRV_FWD_PASSKEY] = {"POST", "/passkey", body_passkey, caught_up_seq, reply_passkey, 1},
    [GRPC_SRV_FWD_DELETE] = {"DELETE", "", body_none, caught_up_deleted, reply_deleted, 0},
};

/* --- the owner's HTTP status as an api/ code (api_http_status backwards;
 * 409 is CONFLICT: NO_QR and ALREADY_LINKED have its gRPC code too) --- */

static const struct {
    long http;
    api_code_t code;
} http_codes[] = {
    {400, API_ERR_BAD_REQUEST},   {401, API_ERR_UNAUTHENTICATED}, {403, API_ERR_FORBIDDEN},
    {404, API_ERR_NOT_FOUND},     {409, API_ERR_CONFLICT},        {413, API_ERR_TOO_LARGE},
    {429, API_ERR_RATE_LIMITED},  {500, API_ERR_INTERNAL},        {502, API_ERR_UNREACHABLE},
    {503, API_ERR_SHUTTING_DOWN}, {504, API_ERR_TIMEOUT},         {507, API_ERR_LIMIT},
};

static api_code_t code_of_http(long status)
{
    for (size_t i = 0; i < sizeof(http_codes) / sizeof(http_codes[0]); i++)
        if (http_codes[i].http == status)
            return http_codes[i].code;
    return API_ERR_INTERNAL;
}

/* --- a forward's life --- */

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Abandons f: out of the lists, the request cancelled, the call's
 * reference dropped, the memory freed once the timer is closed. */
static void fwd_dispose(grpc_srv_fwd_t *f)
{
    if (f->req) {
        httpc_cancel(f->req);
        f->req = NULL;
    }
    if (f->prev)
        f->prev->next = f->next;
    else
        f->srv->fwds = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->c->fwd = NULL;
    grpc_srv_call_unref(f->c);
    f->c = NULL;
    free(f->message);
    free(f->qr);
    free(f->code);
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

/* Ends the call with the local reply (or, when the local snapshot cannot
 * be read, that error) and disposes of f. */
static void fwd_reply(grpc_srv_fwd_t *f)
{
    api_result_t r = api_status(f->srv->o.api, f->session);
    if (f->m->needs_snapshot && r.code != API_OK)
        grpc_srv_finish_result(f->c, &r);
    else
        f->m->reply(f, &r);
    api_result_clear(&r);
    fwd_dispose(f);
}

/* 1 when the local snapshot shows the owner's answer. */
static int fwd_caught_up(grpc_srv_fwd_t *f)
{
    api_result_t r = api_status(f->srv->o.api, f->session);
    int ok = f->m->caught_up(f, &r);
    api_result_clear(&r);
    return ok;
}

static void on_tick(uv_timer_t *t)
{
    grpc_srv_fwd_t *f = t->data;
    if (fwd_caught_up(f) || sess_now_ms() >= f->deadline_ms)
        fwd_reply(f);
}

static yajl_val member(yajl_val o, const char *k1, const char *k2)
{
    const char *path[] = {k1, k2, NULL};
    return o ? yajl_tree_get(o, path, yajl_t_any) : NULL;
}

static char *dup_string(yajl_val v)
{
    const char *t = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    return t ? strdup(t) : NULL;
}

static void on_answer(void *arg, const httpc_result_t *res)
{
    grpc_srv_fwd_t *f = arg;
    f->req = NULL;
    if (res->error || res->status < 100) {
        LOG_WARN("grpc", "forwarding a command to the session's node failed: %s",
                 httpc_strerror(res->error));
        grpc_srv_finish_error(f->c, API_ERR_UNREACHABLE,
                              "The node that runs this session did not answer");
        fwd_dispose(f);
        return;
    }
    yajl_val j = yajl_tree_parse((const char *)res->body, NULL, 0);
    yajl_val msg = member(j, "message", NULL);
    if (res->status < 200 || res->status > 299) {
        api_code_t code = code_of_http(res->status);
        const char *text = YAJL_IS_STRING(msg) ? YAJL_GET_STRING(msg) : NULL;
        grpc_srv_finish_error(f->c, code, text ? text : api_code_message(code));
        yajl_tree_free(j);
        fwd_dispose(f);
        return;
    }
    f->message = dup_string(msg);
    yajl_val seq = member(j, "data", "seq");
    f->seq =
        YAJL_IS_INTEGER(seq) && YAJL_GET_INTEGER(seq) > 0 ? (uint64_t)YAJL_GET_INTEGER(seq) : 0;
    f->qr = dup_string(member(j, "data", "qrCode"));
    f->code = dup_string(member(j, "data", "pairingCode"));
    yajl_val exp = member(j, "data", "expiresIn");
    f->expires_in = YAJL_IS_INTEGER(exp) ? (int)YAJL_GET_INTEGER(exp) : 0;
    yajl_tree_free(j);
    if (f->m == &fwd_methods[GRPC_SRV_FWD_PAIRING_CODE] && !f->code) {
        grpc_srv_finish_error(f->c, API_ERR_INTERNAL, "The session's node answered no code");
        fwd_dispose(f);
        return;
    }
    if (fwd_caught_up(f)) {
        fwd_reply(f);
        return;
    }
    f->deadline_ms = sess_now_ms() + GRPC_SRV_FWD_CATCH_UP_MS;
    uv_timer_start(&f->timer, on_tick, FWD_POLL_MS, FWD_POLL_MS);
}

/* Appends `s` percent-encoded (all but RFC 3986's unreserved characters)
 * to buf at *n; returns -1 when it does not fit. */
static int put_encoded(char *buf, size_t len, size_t *n, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (*n + (plain ? 1 : 3) >= len)
            return -1;
        if (plain) {
            buf[(*n)++] = (char)*p;
        } else {
            buf[(*n)++] = '%';
            buf[(*n)++] = hex[*p >> 4];
            buf[(*n)++] = hex[*p & 15];
        }
    }
    buf[*n] = 0;
    return 0;
}

int grpc_srv_forward(grpc_srv_call_t *c, grpc_srv_fwd_kind_t kind, const grpc_srv_fwd_args_t *a)
{
    grpc_srv_t *s = c->srv;
    const char *session = kind == GRPC_SRV_FWD_DELETE ? (a->name ? a->name : "") : c->session;
    char owner[256];
    if (!s->o.httpc || !*session || strlen(session) > GRPC_SRV_SESSION_MAX ||
        !api_forward_to(s->o.api, session, owner, sizeof(owner)))
        return 0;     /* this node answers */
    if (c->wait_over) /* the client went away before it started */
        return 1;
    if (s->fwd_stopped) {
        grpc_srv_finish_error(c, API_ERR_SHUTTING_DOWN, NULL);
        return 1;
    }
    const fwd_method_t *m = &fwd_methods[kind];
    char url[512];
    size_t n = (size_t)snprintf(url, sizeof(url), "%s/api/sessions/", owner);
    if (n >= sizeof(url) || put_encoded(url, sizeof(url), &n, session) != 0 ||
        n + strlen(m->suffix) >= sizeof(url)) {
        grpc_srv_finish_error(c, API_ERR_INTERNAL, "the session's node has too long a URL");
        return 1;
    }
    memcpy(url + n, m->suffix, strlen(m->suffix) + 1);
    int none = 0;
    char *body = m->body(a, &none);
    grpc_srv_fwd_t *f = calloc(1, sizeof(*f));
    if ((!body && !none) || !f) {
        free(body);
        free(f);
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
        return 1;
    }
    f->srv = s;
    f->c = c;
    f->m = m;
    snprintf(f->session, sizeof(f->session), "%s", session);
    uv_timer_init(sess_registry_loop(api_registry(s->o.api)), &f->timer);
    f->timer.data = f;
    grpc_srv_call_ref(c); /* f's, dropped by fwd_dispose */
    c->fwd = f;
    f->next = s->fwds;
    if (s->fwds)
        s->fwds->prev = f;
    s->fwds = f;
    unsigned timeout = API_FORWARD_TIMEOUT_MS;
    if (kind == GRPC_SRV_FWD_RECONNECT && a->wait_ms + FWD_SLACK_MS > timeout)
        timeout = a->wait_ms + FWD_SLACK_MS;
    size_t klen = 0;
    const char *key = grpc_srv_call_key(c, &klen);
    api_forward_req_t r = {.method = m->method,
                           .url = url,
                           .key = key,
                           .key_len = klen,
                           .content_type = "application/json",
                           .ct_len = strlen("application/json"),
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .timeout_ms = timeout};
    api_code_t code = api_forward_send(s->o.api, s->o.httpc, &r, on_answer, f, &f->req);
    free(body);
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, NULL);
        fwd_dispose(f);
    }
    return 1;
}

void grpc_srv_fwd_cancel(grpc_srv_call_t *c)
{
    if (c->fwd)
        fwd_dispose(c->fwd);
}

void grpc_srv_fwd_stop(grpc_srv_t *s)
{
    s->fwd_stopped = 1;
    while (s->fwds) {
        grpc_srv_fwd_t *f = s->fwds;
        grpc_srv_finish_error(f->c, API_ERR_SHUTTING_DOWN, NULL);
        fwd_dispose(f);
    }
}
