/* gRPC C core server (see grpc.h). Every call is a call_t whose lifetime is
 * a count of outstanding batches plus holders on the loop thread; the last
 * one to let go frees it. Methods are looked up in a table. */
#include "server/grpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/log.h"
#include "grpc/health/v1/health.pb-c.h"
#include "proto/gateway.pb-c.h"
#include "server/reflection.h"

typedef enum {
    M_GET_STATUS,
    M_GET_QR,
    M_RECONNECT,
    M_LOGOUT,
    M_WATCH,
    M_PASSKEY_OPTIONS,
    M_PASSKEY_ASSERTION,
    M_PAIRING_CODE,
    M_HEALTH_CHECK,
    M_HEALTH_WATCH,
    M_REFLECT_V1ALPHA,
    M_REFLECT_V1,
    M_UNKNOWN
} method_t;

static const struct {
    const char *path;
    method_t m;
    metrics_route_t route;
    int needs_key;
} methods[] = {
    {"/wagateway.v1.Gateway/GetStatus", M_GET_STATUS, METRICS_ROUTE_GRPC_GETSTATUS, 0},
    {"/wagateway.v1.Gateway/GetQR", M_GET_QR, METRICS_ROUTE_GRPC_GETQR, 1},
    {"/wagateway.v1.Gateway/Reconnect", M_RECONNECT, METRICS_ROUTE_GRPC_RECONNECT, 1},
    {"/wagateway.v1.Gateway/Logout", M_LOGOUT, METRICS_ROUTE_GRPC_LOGOUT, 1},
    {"/wagateway.v1.Gateway/WatchStatus", M_WATCH, METRICS_ROUTE_GRPC_WATCH, 1},
    {"/wagateway.v1.Gateway/GetPasskeyOptions", M_PASSKEY_OPTIONS, METRICS_ROUTE_GRPC_OTHER, 1},
    {"/wagateway.v1.Gateway/SendPasskeyAssertion", M_PASSKEY_ASSERTION, METRICS_ROUTE_GRPC_OTHER,
     1},
    {"/wagateway.v1.Gateway/RequestPairingCode", M_PAIRING_CODE, METRICS_ROUTE_GRPC_PAIRING_CODE,
     1},
    {"/grpc.health.v1.Health/Check", M_HEALTH_CHECK, METRICS_ROUTE_GRPC_OTHER, 0},
    {"/grpc.health.v1.Health/Watch", M_HEALTH_WATCH, METRICS_ROUTE_GRPC_OTHER, 0},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", M_REFLECT_V1ALPHA,
     METRICS_ROUTE_GRPC_OTHER, 0},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", M_REFLECT_V1,
     METRICS_ROUTE_GRPC_OTHER, 0},
};

typedef struct call call_t;

typedef enum { T_NEW, T_RECV, T_SENT, T_CLOSE, T_DONE } tag_kind_t;

typedef struct {
    call_t *c;
    tag_kind_t kind;
} tag_t;

struct call {
    grpc_srv_t *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    int cancelled;
    method_t m;
    metrics_route_t route;
    int authed;
    pthread_mutex_t mu; /* guards the fields below */
    int refs;
    int sent_md, sending, finished, status_sent;
    int64_t sending_since;         /* when the message in flight was handed over */
    int counted, counted_unauth;   /* in grpc_srv_t's live counts and list */
    int stall_cancelled;           /* cancelled for not taking its messages */
    call_t *live_prev, *live_next; /* in grpc_srv_t's list of admitted calls */
    sess_sub_t *sub;
    api_wait_t *wait; /* a Reconnect's wait for its QR (loop thread) */
    int wait_over;    /* answered or cancelled (loop thread) */
    char session[64];
    tag_t t_new, t_recv, t_sent, t_close, t_done;
};

struct grpc_srv {
    grpc_srv_opts_t o;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread;
    int thread_started;
    tag_t shutdown_tag;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int shut_down;
    size_t live, live_unauth; /* calls open now (guarded by mu) */
    call_t *calls;            /* the admitted calls (guarded by mu) */
    int64_t last_sweep_ms;    /* cq thread only */
    reflection_t *refl;
    /* the last WatchStatus message serialized, per account visibility:
     * every stream sends the same bytes for one change */
    pthread_mutex_t watch_mu;
    struct {
        sess_snapshot_t *snap; /* referenced; NULL when empty */
        int32_t expires_in, code_expires_in;
        grpc_slice bytes;
    } watch_cache[2];
};

/* --- call lifetime --- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void call_unref(call_t *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left > 0)
        return;
    if (c->counted) {
        grpc_srv_t *s = c->srv;
        pthread_mutex_lock(&s->mu);
        s->live--;
        if (c->counted_unauth)
            s->live_unauth--;
        if (c->live_prev)
            c->live_prev->live_next = c->live_next;
        else
            s->calls = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
        pthread_mutex_unlock(&s->mu);
    }
    if (c->sub)
        sess_unsubscribe(c->sub);
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void call_ref(call_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

static void request_next(grpc_srv_t *s);

static call_t *call_new(grpc_srv_t *s)
{
    call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    pthread_mutex_init(&c->mu, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    c->t_new = (tag_t){c, T_NEW};
    c->t_recv = (tag_t){c, T_RECV};
    c->t_sent = (tag_t){c, T_SENT};
    c->t_close = (tag_t){c, T_CLOSE};
    c->t_done = (tag_t){c, T_DONE};
    c->refs = 1; /* the T_NEW request */
    return c;
}

/* --- sending --- */

static grpc_byte_buffer *to_buffer(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(msg, buf);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, n);
    free(buf);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Sends (optionally) one message and the final status. Caller holds c->mu. */
static void finish_locked(call_t *c, const ProtobufCMessage *msg, int status, const char *details)
{
    if (c->status_sent)
        return;
    c->status_sent = 1;
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    grpc_byte_buffer *bb = msg ? to_buffer(msg) : NULL;
    if (!c->sent_md) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->sent_md = 1;
    }
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
    }
    grpc_slice det = grpc_slice_from_copied_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n].data.send_status_from_server.status_details = &det;
    n++;
    c->refs++;
    if (grpc_call_start_batch(c->call, ops, n, &c->t_done, NULL) != GRPC_CALL_OK)
        c->refs--;
    grpc_slice_unref(det);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    metrics_request(c->srv->o.metrics, c->route, status);
}

static void finish(call_t *c, const ProtobufCMessage *msg, int status, const char *details)
{
    pthread_mutex_lock(&c->mu);
    finish_locked(c, msg, status, details);
    pthread_mutex_unlock(&c->mu);
}

static void finish_error(call_t *c, api_code_t code, const char *message)
{
    finish(c, NULL, api_grpc_status(code), message ? message : api_code_message(code));
}

/* Sends one stream message. Caller holds c->mu and checked !sending. */
/* Sends one stream message (initial metadata first when not sent yet);
 * takes `bb` (NULL: nothing sent, -1). Caller holds c->mu. */
static int send_buffer_locked(call_t *c, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!bb)
        return -1;
    if (!c->sent_md) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->sent_md = 1;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    c->refs++;
    c->sending = 1;
    c->sending_since = mono_ms();
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_sent, NULL);
    grpc_byte_buffer_destroy(bb);
    if (e != GRPC_CALL_OK) {
        c->refs--;
        c->sending = 0;
        return -1;
    }
    return 0;
}

static int send_locked(call_t *c, const ProtobufCMessage *msg)
{
    return send_buffer_locked(c, to_buffer(msg));
}

/* --- message views --- */

static Wagateway__V1__State state_of(sess_state_t s)
{
    switch (s) {
    case SESS_DISCONNECTED:
        return WAGATEWAY__V1__STATE__DISCONNECTED;
    case SESS_CONNECTING:
        return WAGATEWAY__V1__STATE__CONNECTING;
    case SESS_QR_READY:
        return WAGATEWAY__V1__STATE__QR_READY;
    case SESS_CONNECTED:
        return WAGATEWAY__V1__STATE__CONNECTED;
    }
    return WAGATEWAY__V1__STATE__DISCONNECTED;
}

/* Fills st (and acc) from a snapshot; strings are borrowed from it. */
static void status_view(const sess_snapshot_t *s, int with_account, Wagateway__V1__Status *st,
                        Wagateway__V1__LinkedAccount *acc)
{
    wagateway__v1__status__init(st);
    wagateway__v1__linked_account__init(acc);
    int64_t now = sess_now_ms();
    int64_t left = sess_snapshot_qr_remaining_ms(s, now);
    st->session = (char *)s->session;
    st->state = state_of(s->state);
    st->connected = s->state == SESS_CONNECTED;
    st->has_qr = left > 0;
    st->detail = (char *)s->detail;
    st->since_unix_ms = s->since_ms;
    st->qr_expires_in = (int32_t)sess_snapshot_qr_expires_in(s, now);
    st->seq = s->seq;
    st->changed_unix_ms = s->changed_ms;
    if (with_account && s->passkey_options)
        st->passkey_options_json = (char *)s->passkey_options;
    if (with_account && s->linked) {
        acc->jid = s->account.jid ? s->account.jid : "";
        acc->lid = s->account.lid ? s->account.lid : "";
        acc->phone = s->account.phone ? s->account.phone : "";
        acc->push_name = s->account.push_name ? s->account.push_name : "";
        acc->platform = s->account.platform ? s->account.platform : "";
        acc->business_name = s->account.business_name ? s->account.business_name : "";
        st->account = acc;
    }
    int64_t code_left = with_account ? api_link_code_expires_in(s, now) : 0;
    if (code_left > 0) { /* a secret like the QR: key holders only */
        st->link_code = (char *)s->link_code;
        st->link_code_expires_in = (int32_t)code_left;
    }
}

static void qr_view(const sess_snapshot_t *s, Wagateway__V1__QRCode *q)
{
    wagateway__v1__qrcode__init(q);
    const api_qr_render_t *r = s->qr ? s->qr->rendered : NULL;
    q->qr = s->qr ? s->qr->text : "";
    if (r) {
        q->png.data = r->png;
        q->png.len = r->png_len;
        q->data_url = r->data_url;
    }
    q->expires_in = (int32_t)sess_snapshot_qr_expires_in(s, sess_now_ms());
}

/* --- unary handlers (completion-queue thread) --- */

static void do_get_status(call_t *c)
{
    api_result_t r = api_status(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        finish_error(c, r.code, NULL);
        return;
    }
    Wagateway__V1__Status st;
    Wagateway__V1__LinkedAccount acc;
    status_view(r.snap, c->authed, &st, &acc);
    finish(c, &st.base, 0, "");
    api_result_clear(&r);
}

static void do_get_qr(call_t *c)
{
    api_result_t r = api_qr(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "no QR code in state %s%s%s",
                 r.snap ? sess_state_name(r.snap->state) : "unknown",
                 r.snap && r.snap->detail[0] ? " / " : "", r.snap ? r.snap->detail : "");
        finish_error(c, r.code, r.code == API_ERR_NO_QR ? msg : NULL);
        api_result_clear(&r);
        return;
    }
    Wagateway__V1__QRCode q;
    qr_view(r.snap, &q);
    finish(c, &q.base, 0, "");
    api_result_clear(&r);
}

/* --- Reconnect / Logout run on the loop thread --- */

typedef struct {
    call_t *c;
    int keep;
    unsigned wait_ms;
    char phone[16]; /* RequestPairingCode: the normalised number */
} loop_req_t;

static void on_reconnected(api_result_t r, void *arg)
{
    call_t *c = arg;
    c->wait = NULL;
    c->wait_over = 1;
    if (r.code != API_OK) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s%s%s", api_code_message(r.code),
                 r.snap && r.snap->detail[0] ? ": " : "", r.snap ? r.snap->detail : "");
        finish_error(c, r.code, msg);
    } else {
        Wagateway__V1__ReconnectReply rep = WAGATEWAY__V1__RECONNECT_REPLY__INIT;
        Wagateway__V1__Status st;
        Wagateway__V1__LinkedAccount acc;
        Wagateway__V1__QRCode q;
        rep.message = "WhatsApp reconnection initiated";
        status_view(r.snap, 0, &st, &acc);
        rep.status = &st;
        if (r.snap->state == SESS_QR_READY && r.snap->qr) {
            qr_view(r.snap, &q);
            rep.qr = &q;
        }
        finish(c, &rep.base, 0, "");
    }
    api_result_clear(&r);
    call_unref(c);
}

static void loop_reconnect(void *arg)
{
    loop_req_t *q = arg;
    call_t *c = q->c;
    int keep = q->keep;
    unsigned wait_ms = q->wait_ms;
    free(q);
    if (c->wait_over) { /* the client cancelled before it started */
        call_unref(c);
        return;
    }
    metrics_reconnect(c->srv->o.metrics);
    api_wait_t *w = api_reconnect(c->srv->o.api, c->session, keep, wait_ms, on_reconnected, c);
    if (!c->wait_over) /* else on_reconnected ran already (and dropped its reference) */
        c->wait = w;
}

/* The client of a Reconnect went away (cancelled, deadline): its wait is
 * cancelled at once instead of running to its end. Loop thread. */
static void loop_cancel_wait(void *arg)
{
    call_t *c = arg;
    if (!c->wait_over) {
        c->wait_over = 1;
        if (c->wait) {
            api_wait_cancel(c->wait); /* on_reconnected will not run */
            c->wait = NULL;
            call_unref(c); /* its reference */
        }
    }
    call_unref(c); /* this job's */
}

static void loop_logout(void *arg)
{
    loop_req_t *q = arg;
    call_t *c = q->c;
    api_result_t r = api_logout(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        finish_error(c, r.code, NULL);
    } else {
        Wagateway__V1__LogoutReply rep = WAGATEWAY__V1__LOGOUT_REPLY__INIT;
        Wagateway__V1__Status st;
        Wagateway__V1__LinkedAccount acc;
        rep.message = "Logged out";
        status_view(r.snap, 0, &st, &acc);
        rep.status = &st;
        finish(c, &rep.base, 0, "");
    }
    api_result_clear(&r);
    call_unref(c);
    free(q);
}

static void on_pairing_code(api_result_t r, const char *code, int expires_in, void *arg)
{
    call_t *c = arg;
    if (r.code != API_OK) {
        finish_error(c, r.code, r.message);
    } else {
        Wagateway__V1__PairingCodeReply rep = WAGATEWAY__V1__PAIRING_CODE_REPLY__INIT;
        rep.message = API_PAIRING_CODE_MESSAGE;
        rep.pairing_code = (char *)code;
        rep.expires_in = expires_in;
        finish(c, &rep.base, 0, "");
    }
    api_result_clear(&r);
    call_unref(c);
}

/* The call is not cancelled when its client goes away: the code is
 * published all the same, and the reply is then dropped by gRPC. */
static void loop_pairing_code(void *arg)
{
    loop_req_t *q = arg;
    api_pairing_code(q->c->srv->o.api, q->c->session, q->phone, on_pairing_code, q->c);
    free(q);
}

static void post_to_loop(call_t *c, void (*fn)(void *), int keep, unsigned wait_ms,
                         const char *phone)
{
    loop_req_t *q = malloc(sizeof(*q));
    if (!q) {
        finish_error(c, API_ERR_INTERNAL, NULL);
        return;
    }
    q->c = c;
    q->keep = keep;
    q->wait_ms = wait_ms;
    snprintf(q->phone, sizeof(q->phone), "%s", phone ? phone : "");
    call_ref(c);
    if (sess_registry_post(api_registry(c->srv->o.api), fn, q) != 0) {
        free(q);
        call_unref(c);
        finish_error(c, API_ERR_SHUTTING_DOWN, NULL);
    }
}

/* --- the passkey step --- */

static void do_passkey_options(call_t *c)
{
    api_result_t r = api_passkey_options(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        finish_error(c, r.code, r.message);
    } else {
        Wagateway__V1__PasskeyOptions o = WAGATEWAY__V1__PASSKEY_OPTIONS__INIT;
        o.options_json = (char *)r.snap->passkey_options;
        finish(c, &o.base, 0, "");
    }
    api_result_clear(&r);
}

typedef struct {
    call_t *c;
    char *json;
    size_t len;
} passkey_req_t;

static void on_passkey_done(api_result_t r, void *arg)
{
    call_t *c = arg;
    if (r.code != API_OK) {
        finish_error(c, r.code, r.message);
    } else {
        Wagateway__V1__PasskeyAssertionReply rep = WAGATEWAY__V1__PASSKEY_ASSERTION_REPLY__INIT;
        Wagateway__V1__Status st;
        Wagateway__V1__LinkedAccount acc;
        rep.message = (char *)(r.message ? r.message : "Passkey accepted");
        status_view(r.snap, 1, &st, &acc);
        rep.status = &st;
        finish(c, &rep.base, 0, "");
    }
    api_result_clear(&r);
    call_unref(c);
}

static void loop_passkey(void *arg)
{
    passkey_req_t *q = arg;
    api_passkey_response(q->c->srv->o.api, q->c->session, q->json, q->len, on_passkey_done, q->c);
    free(q->json);
    free(q);
}

static void do_passkey_assertion(call_t *c, const char *json)
{
    passkey_req_t *q = calloc(1, sizeof(*q));
    if (q && json)
        q->json = strdup(json);
    if (!q || !q->json) {
        free(q);
        finish_error(c, API_ERR_INTERNAL, NULL);
        return;
    }
    q->c = c;
    q->len = strlen(json);
    call_ref(c);
    if (sess_registry_post(api_registry(c->srv->o.api), loop_passkey, q) != 0) {
        free(q->json);
        free(q);
        call_unref(c);
        finish_error(c, API_ERR_SHUTTING_DOWN, NULL);
    }
}

/* --- WatchStatus --- */

/* The serialized Status for `snap` as a caller with(out) the key sees it
 * now, made once per change (and second of QR countdown) and shared by all
 * streams. Returns a new byte buffer (caller destroys) or NULL. Any thread. */
static grpc_byte_buffer *watch_message(grpc_srv_t *srv, sess_snapshot_t *snap, int authed)
{
    Wagateway__V1__Status st;
    Wagateway__V1__LinkedAccount acc;
    status_view(snap, authed, &st, &acc);
    pthread_mutex_lock(&srv->watch_mu);
    int i = authed ? 1 : 0;
    if (srv->watch_cache[i].snap != snap || srv->watch_cache[i].expires_in != st.qr_expires_in ||
        srv->watch_cache[i].code_expires_in != st.link_code_expires_in) {
        size_t n = protobuf_c_message_get_packed_size(&st.base);
        grpc_slice sl = grpc_slice_malloc(n);
        protobuf_c_message_pack(&st.base, GRPC_SLICE_START_PTR(sl));
        if (srv->watch_cache[i].snap)
            grpc_slice_unref(srv->watch_cache[i].bytes);
        sess_snapshot_unref(srv->watch_cache[i].snap);
        srv->watch_cache[i].snap = sess_snapshot_ref(snap);
        srv->watch_cache[i].expires_in = st.qr_expires_in;
        srv->watch_cache[i].code_expires_in = st.link_code_expires_in;
        srv->watch_cache[i].bytes = sl;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&srv->watch_cache[i].bytes, 1);
    pthread_mutex_unlock(&srv->watch_mu);
    return bb;
}

/* Sends the next queued snapshot if none is in flight. */
static void watch_pump(call_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->sending || c->finished || c->status_sent || !c->sub) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    sess_snapshot_t *snap;
    int rc = sess_sub_next(c->sub, &snap);
    if (rc == SESS_SUB_OK) {
        send_buffer_locked(c, watch_message(c->srv, snap, c->authed));
        sess_snapshot_unref(snap);
    } else if (rc == SESS_SUB_ENDED) {
        finish_locked(c, NULL, api_grpc_status(API_ERR_SHUTTING_DOWN), "server shutting down");
    }
    pthread_mutex_unlock(&c->mu);
}

static void watch_notify(void *arg)
{
    watch_pump(arg);
}

static void do_watch(call_t *c)
{
    sess_sub_opts_t o = {
        .notify = watch_notify, .arg = c, .max_queue = 64, .policy = SESS_SLOW_COALESCE};
    api_code_t code;
    /* subscribe under the lock so the first notify waits for c->sub */
    pthread_mutex_lock(&c->mu);
    pthread_mutex_unlock(&c->mu);
    sess_sub_t *sub = api_watch(c->srv->o.api, c->session, &o, &code);
    if (!sub) {
        finish_error(c, code, NULL);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->sub = sub;
    pthread_mutex_unlock(&c->mu);
    metrics_subscribers(c->srv->o.metrics, "grpc", +1);
    watch_pump(c);
}

/* --- health --- */

static void do_health(call_t *c, int watch, const char *service)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    int known = !*service || !strcmp(service, "wagateway.v1.Gateway");
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (!known && !watch) {
        finish(c, NULL, 5, "unknown service");
        return;
    }
    if (!known)
        r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (!watch) {
        finish(c, &r.base, 0, "");
        return;
    }
    /* Watch: the status now; the stream stays open until the client leaves
     * or the server stops (then NOT_SERVING is implied by UNAVAILABLE). */
    pthread_mutex_lock(&c->mu);
    send_locked(c, &r.base);
    pthread_mutex_unlock(&c->mu);
}

/* --- dispatch --- */

/* The x-api-key metadata value, or NULL. */
static const grpc_slice *key_of(call_t *c)
{
    for (size_t i = 0; i < c->md.count; i++) {
        grpc_metadata *m = &c->md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == 9 && !memcmp(GRPC_SLICE_START_PTR(m->key), "x-api-key", 9))
            return &m->value;
    }
    return NULL;
}

/* Checks the x-api-key metadata, counting wrong keys per peer (the peer
 * string goes to api_authorize as is: it groups HTTP's and gRPC's forms of
 * an address alike). */
static api_code_t authorize(call_t *c)
{
    char *peer = grpc_call_get_peer(c->call);
    const grpc_slice *k = key_of(c);
    api_code_t rc = api_authorize(c->srv->o.api, peer ? peer : "",
                                  k ? (const char *)GRPC_SLICE_START_PTR(*k) : NULL,
                                  k ? GRPC_SLICE_LENGTH(*k) : 0);
    if (peer)
        gpr_free(peer);
    if (rc != API_OK)
        metrics_auth_failure(c->srv->o.metrics);
    return rc;
}

/* Counts a call against the stream caps: every call, and apart the ones
 * without the key (when one is configured) and health Watch streams, which
 * anyone may open. Returns 0, or -1 when a cap is reached. */
static int admit(call_t *c)
{
    grpc_srv_t *s = c->srv;
    int unauth = c->m == M_HEALTH_WATCH || !c->authed;
    pthread_mutex_lock(&s->mu);
    int ok = s->live < s->o.max_streams && (!unauth || s->live_unauth < s->o.max_unauth_streams);
    if (ok) {
        s->live++;
        c->counted = 1;
        if (unauth) {
            s->live_unauth++;
            c->counted_unauth = 1;
        }
        c->live_next = s->calls;
        if (s->calls)
            s->calls->live_prev = c;
        s->calls = c;
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

/* Cancels streams whose client has not taken a message for stall_ms (a
 * reader that stopped, or keeps its HTTP/2 window at zero): they would hold
 * a call, a subscription and a slot of the caps forever. cq thread. */
static void sweep_stalled(grpc_srv_t *s)
{
    int64_t now = mono_ms();
    if (now - s->last_sweep_ms < 1000)
        return;
    s->last_sweep_ms = now;
    pthread_mutex_lock(&s->mu);
    for (call_t *c = s->calls; c; c = c->live_next) {
        pthread_mutex_lock(&c->mu);
        int stalled = c->sending && !c->stall_cancelled && now - c->sending_since > s->o.stall_ms;
        if (stalled)
            c->stall_cancelled = 1;
        pthread_mutex_unlock(&c->mu);
        if (stalled) {
            metrics_limit(s->o.metrics, METRICS_LIMIT_STALLED);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                         "the client does not read its stream", NULL);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void start_recv(call_t *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
        call_unref(c);
}

static void on_new_call(call_t *c, int ok)
{
    grpc_srv_t *s = c->srv;
    request_next(s);
    if (!ok || !c->call) {
        call_unref(c);
        return;
    }
    c->m = M_UNKNOWN;
    c->route = METRICS_ROUTE_GRPC_OTHER;
    size_t ml = GRPC_SLICE_LENGTH(c->details.method);
    const char *mp = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    int needs_key = 0;
    api_code_t auth = API_OK;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].path) == ml && !memcmp(methods[i].path, mp, ml)) {
            c->m = methods[i].m;
            c->route = methods[i].route;
            needs_key = methods[i].needs_key;
        }
    /* A key on a method that needs none (GetStatus) still counts when wrong:
     * the right one shows the linked account. */
    if (c->m == M_GET_STATUS && api_key_required(s->o.api) && key_of(c))
        c->authed = authorize(c) == API_OK;
    else if (!needs_key)
        c->authed = key_of(c) ? api_key_ok(s->o.api, (const char *)GRPC_SLICE_START_PTR(*key_of(c)),
                                           GRPC_SLICE_LENGTH(*key_of(c)))
                              : !api_key_required(s->o.api);
    else
        c->authed = !api_key_required(s->o.api);
    /* learn about cancellation and the client's half-close */
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK)
        call_unref(c);
    if (c->m == M_UNKNOWN) {
        finish(c, NULL, 12, "unknown method");
    } else if (needs_key && (auth = authorize(c)) != API_OK) {
        finish_error(c, auth, NULL);
    } else {
        if (needs_key)
            c->authed = 1;
        if (admit(c) != 0) {
            metrics_limit(s->o.metrics, METRICS_LIMIT_GRPC_STREAMS);
            finish(c, NULL, 8, "too many open calls; try again later");
        } else {
            start_recv(c);
        }
    }
    call_unref(c); /* the T_NEW reference */
}

/* A request message arrived (or the client half-closed: recv == NULL). */
static void on_recv(call_t *c, int ok)
{
    grpc_byte_buffer *bb = c->recv;
    c->recv = NULL;
    if (!ok) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        call_unref(c);
        return;
    }
    grpc_slice sl = grpc_empty_slice();
    if (bb) {
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, bb);
        sl = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(bb);
    }
    const uint8_t *p = GRPC_SLICE_START_PTR(sl);
    size_t n = GRPC_SLICE_LENGTH(sl);
    if (c->m == M_REFLECT_V1ALPHA || c->m == M_REFLECT_V1) {
        if (!bb) { /* the client is done asking */
            finish(c, NULL, 0, "");
        } else {
            grpc_byte_buffer *reply = NULL;
            int rc = reflection_answer(c->srv->refl, c->m == M_REFLECT_V1, p, n, &reply);
            if (rc != 0) {
                finish(c, NULL, 3, "malformed reflection request");
            } else {
                pthread_mutex_lock(&c->mu);
                grpc_op ops[2];
                memset(ops, 0, sizeof(ops));
                size_t k = 0;
                if (!c->sent_md) {
                    ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
                    c->sent_md = 1;
                }
                ops[k].op = GRPC_OP_SEND_MESSAGE;
                ops[k].data.send_message.send_message = reply;
                k++;
                c->refs++;
                c->sending = 1;
                if (grpc_call_start_batch(c->call, ops, k, &c->t_sent, NULL) != GRPC_CALL_OK) {
                    c->refs--;
                    c->sending = 0;
                }
                pthread_mutex_unlock(&c->mu);
                grpc_byte_buffer_destroy(reply);
            }
        }
        grpc_slice_unref(sl);
        call_unref(c);
        return;
    }
    if (!bb) {
        grpc_slice_unref(sl);
        finish_error(c, API_ERR_BAD_REQUEST, "missing request message");
        call_unref(c);
        return;
    }
    /* each request message carries the session name as field 1 */
    ProtobufCMessage *req = NULL;
    const ProtobufCMessageDescriptor *d =
        c->m == M_GET_STATUS          ? &wagateway__v1__get_status_request__descriptor
        : c->m == M_GET_QR            ? &wagateway__v1__get_qrrequest__descriptor
        : c->m == M_RECONNECT         ? &wagateway__v1__reconnect_request__descriptor
        : c->m == M_LOGOUT            ? &wagateway__v1__logout_request__descriptor
        : c->m == M_WATCH             ? &wagateway__v1__watch_status_request__descriptor
        : c->m == M_PASSKEY_OPTIONS   ? &wagateway__v1__passkey_options_request__descriptor
        : c->m == M_PASSKEY_ASSERTION ? &wagateway__v1__passkey_assertion_request__descriptor
        : c->m == M_PAIRING_CODE      ? &wagateway__v1__pairing_code_request__descriptor
                                      : &grpc__health__v1__health_check_request__descriptor;
    req = protobuf_c_message_unpack(d, NULL, n, p);
    grpc_slice_unref(sl);
    if (!req) {
        finish_error(c, API_ERR_BAD_REQUEST, "malformed request message");
        call_unref(c);
        return;
    }
    const char *session = NULL, *number = NULL;
    int keep = 0;
    unsigned wait_ms = 0;
    switch (c->m) {
    case M_GET_STATUS:
        session = ((Wagateway__V1__GetStatusRequest *)req)->session;
        break;
    case M_GET_QR:
        session = ((Wagateway__V1__GetQRRequest *)req)->session;
        break;
    case M_RECONNECT:
        session = ((Wagateway__V1__ReconnectRequest *)req)->session;
        keep = ((Wagateway__V1__ReconnectRequest *)req)->keep_credentials;
        wait_ms = ((Wagateway__V1__ReconnectRequest *)req)->wait_ms;
        break;
    case M_LOGOUT:
        session = ((Wagateway__V1__LogoutRequest *)req)->session;
        break;
    case M_WATCH:
        session = ((Wagateway__V1__WatchStatusRequest *)req)->session;
        break;
    case M_PASSKEY_OPTIONS:
        session = ((Wagateway__V1__PasskeyOptionsRequest *)req)->session;
        break;
    case M_PASSKEY_ASSERTION:
        session = ((Wagateway__V1__PasskeyAssertionRequest *)req)->session;
        break;
    case M_PAIRING_CODE:
        session = ((Wagateway__V1__PairingCodeRequest *)req)->session;
        number = ((Wagateway__V1__PairingCodeRequest *)req)->phone_number;
        break;
    default:
        session = ((Grpc__Health__V1__HealthCheckRequest *)req)->service;
        break;
    }
    snprintf(c->session, sizeof(c->session), "%s", session && *session ? session : "default");
    if (c->m != M_HEALTH_CHECK && c->m != M_HEALTH_WATCH && strlen(session ? session : "") >= 64) {
        protobuf_c_message_free_unpacked(req, NULL);
        finish_error(c, API_ERR_BAD_REQUEST, "session name too long");
        call_unref(c);
        return;
    }
    if (c->m == M_RECONNECT && wait_ms > API_RECONNECT_WAIT_MAX_MS) { /* HTTP's range */
        protobuf_c_message_free_unpacked(req, NULL);
        finish_error(c, API_ERR_BAD_REQUEST, "wait_ms must be 0 (the default) or 1 to 300000");
        call_unref(c);
        return;
    }
    switch (c->m) {
    case M_GET_STATUS:
        do_get_status(c);
        break;
    case M_GET_QR:
        do_get_qr(c);
        break;
    case M_RECONNECT:
        post_to_loop(c, loop_reconnect, keep, wait_ms, NULL);
        break;
    case M_LOGOUT:
        post_to_loop(c, loop_logout, 0, 0, NULL);
        break;
    case M_WATCH:
        do_watch(c);
        break;
    case M_PASSKEY_OPTIONS:
        do_passkey_options(c);
        break;
    case M_PASSKEY_ASSERTION:
        do_passkey_assertion(c, ((Wagateway__V1__PasskeyAssertionRequest *)req)->assertion_json);
        break;
    case M_PAIRING_CODE: {
        char phone[16];
        const char *why = NULL;
        if (api_normalize_phone(number ? number : "", number ? strlen(number) : 0, phone, &why))
            finish_error(c, API_ERR_BAD_REQUEST, why);
        else
            post_to_loop(c, loop_pairing_code, 0, 0, phone);
        break;
    }
    case M_HEALTH_CHECK:
    case M_HEALTH_WATCH:
        do_health(c, c->m == M_HEALTH_WATCH, session ? session : "");
        break;
    default:
        break;
    }
    protobuf_c_message_free_unpacked(req, NULL);
    call_unref(c);
}

static void on_sent(call_t *c, int ok)
{
    pthread_mutex_lock(&c->mu);
    c->sending = 0;
    pthread_mutex_unlock(&c->mu);
    if (ok && c->m == M_WATCH)
        watch_pump(c);
    else if (ok && (c->m == M_REFLECT_V1ALPHA || c->m == M_REFLECT_V1))
        start_recv(c); /* the next reflection request */
    call_unref(c);
}

static void on_close(call_t *c)
{
    sess_sub_t *sub;
    pthread_mutex_lock(&c->mu);
    c->finished = 1;
    sub = c->sub;
    c->sub = NULL;
    int cancel_wait = c->m == M_RECONNECT && c->cancelled && !c->status_sent;
    if (cancel_wait)
        c->refs++;
    pthread_mutex_unlock(&c->mu);
    if (sub) {
        sess_unsubscribe(sub); /* outside c->mu: notify may be waiting for it */
        metrics_subscribers(c->srv->o.metrics, "grpc", -1);
    }
    if (cancel_wait && sess_registry_post(api_registry(c->srv->o.api), loop_cancel_wait, c) != 0)
        call_unref(c); /* the registry is closing: its end answers the wait */
    call_unref(c);
}

static void request_next(grpc_srv_t *s)
{
    call_t *c = call_new(s);
    if (!c)
        return;
    if (grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                 &c->t_new) != GRPC_CALL_OK)
        call_unref(c);
}

static void *cq_thread(void *arg)
{
    grpc_srv_t *s = arg;
    for (;;) {
        /* wake at least every second to sweep stalled streams */
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(1000, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        sweep_stalled(s);
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        tag_t *t = ev.tag;
        if (t == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shut_down = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            grpc_completion_queue_shutdown(s->cq);
            continue;
        }
        switch (t->kind) {
        case T_NEW:
            on_new_call(t->c, ev.success);
            break;
        case T_RECV:
            on_recv(t->c, ev.success);
            break;
        case T_SENT:
            on_sent(t->c, ev.success);
            break;
        case T_CLOSE:
            on_close(t->c);
            break;
        case T_DONE:
            call_unref(t->c);
            break;
        }
    }
    return NULL;
}

int grpc_srv_start(grpc_srv_t **out, const char *host, int port, const grpc_srv_opts_t *opts,
                   char *err, size_t errlen)
{
    grpc_srv_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->o = *opts;
    if (!s->o.max_streams)
        s->o.max_streams = GRPC_SRV_MAX_STREAMS;
    if (!s->o.max_unauth_streams)
        s->o.max_unauth_streams = GRPC_SRV_MAX_UNAUTH_STREAMS;
    if (!s->o.stall_ms)
        s->o.stall_ms = 30000;
    s->last_sweep_ms = mono_ms();
    if (reflection_new(&s->refl, err, errlen) != 0) {
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    grpc_init();
    /* Requests are a session name at most: anything over 64 KB is refused
     * with RESOURCE_EXHAUSTED before it reaches a handler. */
    /* Per connection: at most 100 streams at once, 10 s to finish the
     * handshake, pings every minute to find dead peers (20 s to answer),
     * and connections without a call for 5 minutes are closed. */
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = GRPC_SRV_MAX_REQUEST_BYTES},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = GRPC_SRV_MAX_STREAMS_PER_CONNECTION},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 60000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONNECTION_IDLE_MS, .value.integer = 300000},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    grpc_server_credentials *creds;
    if (opts->tls_cert_file) {
        char *cert = NULL, *key = NULL;
        FILE *f = fopen(opts->tls_cert_file, "r");
        size_t n;
        if (f) {
            cert = calloc(1, 1 << 20);
            n = fread(cert, 1, (1 << 20) - 1, f);
            (void)n;
            fclose(f);
        }
        f = fopen(opts->tls_key_file, "r");
        if (f) {
            key = calloc(1, 1 << 20);
            n = fread(key, 1, (1 << 20) - 1, f);
            (void)n;
            fclose(f);
        }
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = cert && key ? grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL) : NULL;
        free(cert);
        free(key);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    char addr[300];
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
             strcmp(host, "localhost") ? host : "127.0.0.1", port);
    int bound = creds ? grpc_server_add_http2_port(s->server, addr, creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    if (bound <= 0) {
        snprintf(err, errlen, "cannot listen for gRPC on %s%s", addr,
                 creds ? "" : " (TLS certificate or key unreadable)");
        grpc_server_destroy(s->server);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        grpc_shutdown();
        reflection_free(s->refl);
        free(s);
        return -1;
    }
    grpc_server_start(s->server);
    for (int i = 0; i < 8; i++)
        request_next(s);
    pthread_create(&s->thread, NULL, cq_thread, s);
    s->thread_started = 1;
    LOG_INFO("grpc", "listening on %s (%s)", addr, opts->tls_cert_file ? "TLS" : "plaintext");
    *out = s;
    return 0;
}

void grpc_srv_stop(grpc_srv_t *s)
{
    if (!s || !s->thread_started)
        return;
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_mutex_lock(&s->mu);
    while (!s->shut_down) {
        if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) != 0)
            break;
    }
    int done = s->shut_down;
    pthread_mutex_unlock(&s->mu);
    if (!done)
        grpc_server_cancel_all_calls(s->server); /* what is left ends CANCELLED */
    pthread_join(s->thread, NULL);
    s->thread_started = 0;
}

void grpc_srv_free(grpc_srv_t *s)
{
    if (!s)
        return;
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    for (int i = 0; i < 2; i++) {
        if (s->watch_cache[i].snap)
            grpc_slice_unref(s->watch_cache[i].bytes);
        sess_snapshot_unref(s->watch_cache[i].snap);
    }
    grpc_shutdown();
    reflection_free(s->refl);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}
