/* The gRPC endpoint's machinery (see grpc.h and internal.h): the gRPC C
 * core server, the completion-queue thread that completes every batch, the
 * pump thread that sends streams' snapshots, call life (a count of
 * references: batches in flight, loop jobs, a stream's subscription, the
 * ready list; the last one frees the call), the dispatch of each call to
 * its row of the method table, authorization (by api/, in two steps: the
 * key when the call arrives, the session once its request names it) and
 * the limits (stream caps, stalled streams). */
#include "server/grpc/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "api/pb.h"
#include "common/log.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- call life --- */

void grpc_srv_call_ref(grpc_srv_call_t *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void grpc_srv_call_unref(grpc_srv_call_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) > 1)
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
    /* c->sub is NULL here: a subscription holds a reference until it ends */
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static grpc_srv_call_t *call_new(grpc_srv_t *s)
{
    grpc_srv_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    pthread_mutex_init(&c->mu, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    c->t_new = (grpc_srv_tag_t){c, GRPC_SRV_T_NEW};
    c->t_recv = (grpc_srv_tag_t){c, GRPC_SRV_T_RECV};
    c->t_sent = (grpc_srv_tag_t){c, GRPC_SRV_T_SENT};
    c->t_close = (grpc_srv_tag_t){c, GRPC_SRV_T_CLOSE};
    c->t_done = (grpc_srv_tag_t){c, GRPC_SRV_T_DONE};
    atomic_init(&c->refs, 1); /* the T_NEW request */
    return c;
}

/* Ends a stream's subscription (no notify runs once it returns) and drops
 * the reference it held. Not under c->mu: a notify may be waiting for it. */
static void drop_sub(grpc_srv_call_t *c)
{
    pthread_mutex_lock(&c->mu);
    sess_sub_t *sub = c->sub;
    c->sub = NULL;
    pthread_mutex_unlock(&c->mu);
    if (!sub)
        return;
    sess_unsubscribe(sub);
    metrics_subscribers(c->srv->o.metrics, "grpc", -1);
    grpc_srv_call_unref(c);
}

/* --- sending --- */

static grpc_byte_buffer *to_buffer(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Sends (optionally) one message and the final status. Caller holds c->mu. */
static void finish_locked(grpc_srv_call_t *c, const ProtobufCMessage *msg, int status,
                          const char *details)
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
    grpc_srv_call_ref(c);
    if (grpc_call_start_batch(c->call, ops, n, &c->t_done, NULL) != GRPC_CALL_OK)
        atomic_fetch_sub(&c->refs, 1); /* never the last: the caller holds one */
    grpc_slice_unref(det);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    metrics_request(c->srv->o.metrics, c->m ? c->m->route : METRICS_ROUTE_GRPC_OTHER, status);
}

void grpc_srv_finish(grpc_srv_call_t *c, const ProtobufCMessage *msg, int status,
                     const char *details)
{
    pthread_mutex_lock(&c->mu);
    finish_locked(c, msg, status, details);
    pthread_mutex_unlock(&c->mu);
}

void grpc_srv_finish_error(grpc_srv_call_t *c, api_code_t code, const char *message)
{
    grpc_srv_finish(c, NULL, api_grpc_status(code), message ? message : api_code_message(code));
}

void grpc_srv_finish_result(grpc_srv_call_t *c, const api_result_t *r)
{
    char msg[256];
    grpc_srv_finish(c, NULL, api_grpc_status(r->code), api_pb_error(r, msg, sizeof(msg)));
}

/* Sends one stream message (initial metadata first when not sent yet);
 * takes `bb` (NULL: nothing sent, -1). Caller holds c->mu. */
static int send_buffer_locked(grpc_srv_call_t *c, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!bb)
        return -1;
    if (c->status_sent) {
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    if (!c->sent_md) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->sent_md = 1;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    grpc_srv_call_ref(c);
    c->sending = 1;
    c->sending_since = mono_ms();
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_sent, NULL);
    grpc_byte_buffer_destroy(bb);
    if (e != GRPC_CALL_OK) {
        atomic_fetch_sub(&c->refs, 1); /* never the last: the caller holds one */
        c->sending = 0;
        return -1;
    }
    return 0;
}

int grpc_srv_send_buffer(grpc_srv_call_t *c, grpc_byte_buffer *bb)
{
    pthread_mutex_lock(&c->mu);
    int rc = send_buffer_locked(c, bb);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int grpc_srv_send(grpc_srv_call_t *c, const ProtobufCMessage *msg)
{
    return grpc_srv_send_buffer(c, to_buffer(msg));
}

/* --- work on the session loop --- */

typedef struct {
    grpc_srv_call_t *c;
    void (*fn)(grpc_srv_call_t *c, void *arg);
    void *arg;
} loop_job_t;

static void run_job(void *arg)
{
    loop_job_t *j = arg;
    j->fn(j->c, j->arg);
    grpc_srv_call_unref(j->c);
    free(j);
}

int grpc_srv_post(grpc_srv_call_t *c, void (*fn)(grpc_srv_call_t *c, void *arg), void *arg)
{
    loop_job_t *j = malloc(sizeof(*j));
    if (j) {
        *j = (loop_job_t){c, fn, arg};
        grpc_srv_call_ref(c);
        if (sess_registry_post(api_registry(c->srv->o.api), run_job, j) == 0)
            return 0;
        atomic_fetch_sub(&c->refs, 1); /* never the last: the caller holds one */
        free(j);
    }
    grpc_srv_finish_error(c, j ? API_ERR_SHUTTING_DOWN : API_ERR_INTERNAL, NULL);
    return -1;
}

/* --- streams: notify queues, the pump thread sends --- */

/* The serialized Status for `snap` as a caller of `scope` sees it now, made
 * once per change (and second of QR countdown) and shared by every stream.
 * Returns a new byte buffer (caller destroys) or NULL. Any thread. */
static grpc_byte_buffer *stream_message(grpc_srv_t *srv, sess_snapshot_t *snap, api_scope_t scope)
{
    api_pb_status_t v;
    api_pb_status(&v, snap, scope, sess_now_ms());
    if (snap->gap_to) { /* a resumed stream's first message: its own, not shared */
        size_t n = protobuf_c_message_get_packed_size(&v.st.base);
        grpc_slice sl = grpc_slice_malloc(n);
        protobuf_c_message_pack(&v.st.base, GRPC_SLICE_START_PTR(sl));
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        return bb;
    }
    int i = api_pb_sees_account(scope) ? 1 : 0;
    pthread_mutex_lock(&srv->watch_mu);
    if (srv->watch_cache[i].snap != snap || srv->watch_cache[i].expires_in != v.st.qr_expires_in ||
        srv->watch_cache[i].code_expires_in != v.st.link_code_expires_in) {
        size_t n = protobuf_c_message_get_packed_size(&v.st.base);
        grpc_slice sl = grpc_slice_malloc(n);
        protobuf_c_message_pack(&v.st.base, GRPC_SLICE_START_PTR(sl));
        if (srv->watch_cache[i].snap)
            grpc_slice_unref(srv->watch_cache[i].bytes);
        sess_snapshot_unref(srv->watch_cache[i].snap);
        srv->watch_cache[i].snap = sess_snapshot_ref(snap);
        srv->watch_cache[i].expires_in = v.st.qr_expires_in;
        srv->watch_cache[i].code_expires_in = v.st.link_code_expires_in;
        srv->watch_cache[i].bytes = sl;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&srv->watch_cache[i].bytes, 1);
    pthread_mutex_unlock(&srv->watch_mu);
    return bb;
}

/* Sends the next queued snapshot of a stream if none is in flight; ends
 * the call when the subscription ended. Pump thread and cq thread. */
static void stream_pump(grpc_srv_call_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->sending || c->finished || c->status_sent || !c->sub) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    sess_snapshot_t *snap;
    int rc;
    /* A stream of one session never repeats a seq: a subscription made
     * while the session publishes can find the new snapshot both as its
     * first state and queued as the change (sess_publish swaps the current
     * snapshot before it queues it to the subscribers). */
    while ((rc = sess_sub_next(c->sub, &snap)) == SESS_SUB_OK && c->session[0] &&
           snap->seq <= c->last_seq)
        sess_snapshot_unref(snap);
    if (rc == SESS_SUB_OK) {
        c->last_seq = snap->seq;
        send_buffer_locked(c, stream_message(c->srv, snap, c->scope));
        sess_snapshot_unref(snap);
    } else if (rc == SESS_SUB_ENDED) {
        pthread_mutex_unlock(&c->mu);
        api_result_t r = api_pb_stream_end(c->srv->o.api, c->session[0] ? c->session : NULL);
        grpc_srv_finish_result(c, &r);
        return;
    }
    pthread_mutex_unlock(&c->mu);
}

/* A subscription's notify: queues the call for the pump thread and wakes
 * it; nothing else (it runs under the session's lock). */
static void stream_notify(void *arg)
{
    grpc_srv_call_t *c = arg;
    grpc_srv_t *s = c->srv;
    pthread_mutex_lock(&s->ready_mu);
    if (!c->ready) {
        c->ready = 1;
        grpc_srv_call_ref(c); /* the subscription holds one: c is alive */
        c->ready_next = NULL;
        if (s->ready_tail)
            s->ready_tail->ready_next = c;
        else
            s->ready_head = c;
        s->ready_tail = c;
        pthread_cond_signal(&s->ready_cond);
    }
    pthread_mutex_unlock(&s->ready_mu);
}

static void *pump_thread(void *arg)
{
    grpc_srv_t *s = arg;
    pthread_mutex_lock(&s->ready_mu);
    for (;;) {
        while (!s->ready_head && !s->pump_stop)
            pthread_cond_wait(&s->ready_cond, &s->ready_mu);
        grpc_srv_call_t *c = s->ready_head;
        if (!c)
            break; /* stopping, nothing left */
        s->ready_head = c->ready_next;
        if (!s->ready_head)
            s->ready_tail = NULL;
        c->ready = 0;
        pthread_mutex_unlock(&s->ready_mu);
        if (!s->pump_stop)
            stream_pump(c);
        grpc_srv_call_unref(c);
        pthread_mutex_lock(&s->ready_mu);
    }
    pthread_mutex_unlock(&s->ready_mu);
    return NULL;
}

sess_sub_opts_t grpc_srv_stream_opts(grpc_srv_call_t *c)
{
    sess_sub_opts_t o = {
        .notify = stream_notify, .arg = c, .max_queue = 64, .policy = SESS_SLOW_COALESCE};
    return o;
}

void grpc_srv_stream(grpc_srv_call_t *c, sess_sub_t *sub)
{
    grpc_srv_call_ref(c); /* the subscription's, dropped by drop_sub */
    pthread_mutex_lock(&c->mu);
    c->sub = sub;
    int over = c->finished;
    pthread_mutex_unlock(&c->mu);
    metrics_subscribers(c->srv->o.metrics, "grpc", +1);
    if (over) /* the client left meanwhile (on_close ran before c->sub was set) */
        drop_sub(c);
    else
        stream_pump(c);
}

/* --- authorization and admission --- */

/* The x-api-key metadata value, or NULL. */
static const grpc_slice *key_of(grpc_srv_call_t *c)
{
    for (size_t i = 0; i < c->md.count; i++) {
        grpc_metadata *m = &c->md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == 9 && !memcmp(GRPC_SLICE_START_PTR(m->key), "x-api-key", 9))
            return &m->value;
    }
    return NULL;
}

const char *grpc_srv_call_key(grpc_srv_call_t *c, size_t *len)
{
    const grpc_slice *k = key_of(c);
    *len = k ? GRPC_SLICE_LENGTH(*k) : 0;
    return k ? (const char *)GRPC_SLICE_START_PTR(*k) : NULL;
}

/* Asks api/ about the caller (its key, its address as gRPC gives it) for
 * `session` (NULL: the service as a whole); *refused says whether api/
 * refused the presented key (for the metrics). */
static api_code_t authorize(grpc_srv_call_t *c, const char *session, int key_optional,
                            api_scope_t *scope, int *refused)
{
    char *peer = grpc_call_get_peer(c->call);
    const grpc_slice *k = key_of(c);
    api_caller_t caller = {
        .client = peer ? peer : "",
        .key = k ? (const char *)GRPC_SLICE_START_PTR(*k) : NULL,
        .key_len = k ? GRPC_SLICE_LENGTH(*k) : 0,
    };
    api_code_t rc = api_authorize_for(c->srv->o.api, &caller, session, key_optional, scope);
    if (peer)
        gpr_free(peer);
    *refused = caller.refused;
    return rc;
}

/* The first step, when the call arrives (its request, which names the
 * session, is not there yet): api/ looks at the key for the service as a
 * whole. The admin key passes (and decides); another valid key is a
 * session's, decided by authorize_request once the request names the
 * session (an admin method refuses it now). No key, or a wrong one (counted
 * by api/), is refused at once, unless the method is open without a key
 * (GetStatus: it goes on as a caller without one). Sets c->keyed (a valid
 * key came with the call: it does not count against the unauthenticated
 * cap). */
static api_code_t authorize_arrival(grpc_srv_call_t *c)
{
    api_t *api = c->srv->o.api;
    const grpc_slice *k = key_of(c);
    c->scope = API_SCOPE_NONE;
    if (c->m->auth == GRPC_SRV_AUTH_NONE) { /* anyone; the admin key is still "keyed" */
        c->keyed =
            !api_key_required(api) ||
            (k && api_key_ok(api, (const char *)GRPC_SLICE_START_PTR(*k), GRPC_SLICE_LENGTH(*k)));
        c->authorized = 1;
        return API_OK;
    }
    if (c->m->auth == GRPC_SRV_AUTH_PRINCIPAL) {
        char *peer = grpc_call_get_peer(c->call);
        api_caller_t caller = {
            .client = peer ? peer : "",
            .key = k ? (const char *)GRPC_SLICE_START_PTR(*k) : NULL,
            .key_len = k ? GRPC_SLICE_LENGTH(*k) : 0,
        };
        api_code_t prc = api_authorize_principal(api, &caller, &c->who);
        if (peer)
            gpr_free(peer);
        if (caller.refused)
            metrics_auth_failure(c->srv->o.metrics);
        if (prc == API_OK) {
            c->keyed = 1;
            c->scope = c->who.scope;
            c->authorized = 1;
        }
        return prc;
    }
    api_scope_t scope;
    int refused;
    api_code_t rc = authorize(c, NULL, 0, &scope, &refused);
    if (rc == API_OK) { /* the admin key, or no key configured */
        c->keyed = 1;
        c->scope = scope;
        c->authorized = 1;
        return API_OK;
    }
    if (rc == API_ERR_FORBIDDEN && c->m->auth != GRPC_SRV_AUTH_ADMIN) {
        c->keyed = 1; /* a session's key: which one is for the request to say */
        return API_OK;
    }
    if (c->m->auth == GRPC_SRV_AUTH_OPTIONAL) {
        if (k) /* a wrong key (counted) only hides what a key shows */
            metrics_auth_failure(c->srv->o.metrics);
        c->authorized = 1;
        return API_OK;
    }
    metrics_auth_failure(c->srv->o.metrics);
    return rc;
}

/* The second step, once the request named its session (c->session): a
 * session's key opens that session's methods only (elsewhere
 * API_ERR_FORBIDDEN; on GetStatus no more than no key, as api/ decides).
 * Sets c->scope. */
static api_code_t authorize_request(grpc_srv_call_t *c)
{
    int refused;
    api_code_t rc =
        authorize(c, c->session, c->m->auth == GRPC_SRV_AUTH_OPTIONAL, &c->scope, &refused);
    if (refused)
        metrics_auth_failure(c->srv->o.metrics);
    if (rc != API_OK)
        c->scope = API_SCOPE_NONE;
    return rc;
}

/* Counts a call against the stream caps: every call, and apart the ones
 * without a valid key (when keys are required) and health Watch streams,
 * which anyone may open. Returns 0, or -1 when a cap is reached. */
static int admit(grpc_srv_call_t *c)
{
    grpc_srv_t *s = c->srv;
    int unauth = c->m->unauth_cap || !c->keyed;
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
    int health = grpc_srv_health_status(s);
    pthread_mutex_lock(&s->mu);
    for (grpc_srv_call_t *c = s->calls; c; c = c->live_next) {
        pthread_mutex_lock(&c->mu);
        int stalled = c->sending && !c->stall_cancelled && now - c->sending_since > s->o.stall_ms;
        if (stalled)
            c->stall_cancelled = 1;
        /* a Health/Watch stream gets a change of the serving status (one
         * message in flight: a busy one gets it on a later sweep) */
        if (!stalled && c->health_status && c->health_status != health && !c->sending &&
            grpc_srv_is_health_watch(c) &&
            send_buffer_locked(c, grpc_srv_health_message(health)) == 0)
            c->health_status = health;
        pthread_mutex_unlock(&c->mu);
        if (stalled) {
            metrics_limit(s->o.metrics, METRICS_LIMIT_STALLED);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                         "the client does not read its stream", NULL);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* --- dispatch (cq thread) --- */

static void start_recv(grpc_srv_call_t *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    grpc_srv_call_ref(c);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
        grpc_srv_call_unref(c);
}

static void request_next(grpc_srv_t *s)
{
    grpc_srv_call_t *c = call_new(s);
    if (!c)
        return;
    if (grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                 &c->t_new) != GRPC_CALL_OK)
        grpc_srv_call_unref(c);
}

static void on_new_call(grpc_srv_call_t *c, int ok)
{
    grpc_srv_t *s = c->srv;
    request_next(s);
    if (!ok || !c->call) {
        grpc_srv_call_unref(c);
        return;
    }
    c->m = grpc_srv_method_find((const char *)GRPC_SLICE_START_PTR(c->details.method),
                                GRPC_SLICE_LENGTH(c->details.method));
    /* learn about cancellation and the client's half-close */
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_srv_call_ref(c);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK)
        grpc_srv_call_unref(c);
    api_code_t auth;
    if (!c->m) {
        grpc_srv_finish(c, NULL, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    } else if ((auth = authorize_arrival(c)) != API_OK) {
        grpc_srv_finish_error(c, auth, NULL);
    } else if (admit(c) != 0) {
        metrics_limit(s->o.metrics, METRICS_LIMIT_GRPC_STREAMS);
        grpc_srv_finish(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "too many open calls; try again later");
    } else {
        start_recv(c);
    }
    grpc_srv_call_unref(c); /* the T_NEW reference */
}

/* Reads the string field "session" of a request, when its type has one. */
static const char *session_of(const ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "session");
    if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    const char *v = *(const char *const *)((const char *)req + f->offset);
    return v ? v : "";
}

/* A request message arrived (or the client half-closed: recv == NULL). */
static void on_recv(grpc_srv_call_t *c, int ok)
{
    grpc_byte_buffer *bb = c->recv;
    c->recv = NULL;
    if (!ok) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        grpc_srv_call_unref(c);
        return;
    }
    if (!bb) { /* the client half-closed */
        if (c->m->shape == GRPC_SRV_BIDI)
            grpc_srv_finish(c, NULL, GRPC_STATUS_OK, ""); /* done asking */
        else
            grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, "missing request message");
        grpc_srv_call_unref(c);
        return;
    }
    grpc_byte_buffer_reader r;
    grpc_byte_buffer_reader_init(&r, bb);
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(bb);
    ProtobufCMessage *req = protobuf_c_message_unpack(c->m->request, NULL, GRPC_SLICE_LENGTH(sl),
                                                      GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    if (!req) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST,
                              c->m->shape == GRPC_SRV_BIDI ? "malformed reflection request"
                                                           : "malformed request message");
        grpc_srv_call_unref(c);
        return;
    }
    /* the session the request acts on: its "session" field, "default"
     * when empty (requests without the field act on none, or on the
     * session they name otherwise, as DeleteSession); a session's key is
     * decided for it (once: every request of a call is of one type) */
    const char *session = c->m->auth == GRPC_SRV_AUTH_PRINCIPAL ? NULL : session_of(req);
    api_code_t auth = API_OK;
    if (session && strlen(session) > GRPC_SRV_SESSION_MAX) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, "session name too long");
    } else {
        if (session)
            snprintf(c->session, sizeof(c->session), "%s", *session ? session : "default");
        if (!c->authorized) {
            auth = authorize_request(c);
            c->authorized = auth == API_OK;
        }
        if (auth != API_OK)
            grpc_srv_finish_error(c, auth, NULL);
        else
            c->m->handle(c, req);
    }
    protobuf_c_message_free_unpacked(req, NULL);
    grpc_srv_call_unref(c);
}

static void on_sent(grpc_srv_call_t *c, int ok)
{
    pthread_mutex_lock(&c->mu);
    c->sending = 0;
    pthread_mutex_unlock(&c->mu);
    if (ok && c->m->shape == GRPC_SRV_STREAM)
        stream_pump(c);
    else if (ok && c->m->shape == GRPC_SRV_BIDI)
        start_recv(c); /* the next request */
    grpc_srv_call_unref(c);
}

/* The call is over for gRPC (answered, cancelled, deadline, shutdown). */
static void on_close(grpc_srv_call_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->finished = 1;
    int gone = c->cancelled && !c->status_sent;
    pthread_mutex_unlock(&c->mu);
    drop_sub(c);
    if (gone && c->m && c->m->cancel)
        c->m->cancel(c);
    grpc_srv_call_unref(c);
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
        grpc_srv_tag_t *t = ev.tag;
        if (t == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shut_down = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            grpc_completion_queue_shutdown(s->cq);
            continue;
        }
        switch (t->kind) {
        case GRPC_SRV_T_NEW:
            on_new_call(t->c, ev.success);
            break;
        case GRPC_SRV_T_RECV:
            on_recv(t->c, ev.success);
            break;
        case GRPC_SRV_T_SENT:
            on_sent(t->c, ev.success);
            break;
        case GRPC_SRV_T_CLOSE:
            on_close(t->c);
            break;
        case GRPC_SRV_T_DONE: /* the final status went out: a stream is over */
            drop_sub(t->c);
            grpc_srv_call_unref(t->c);
            break;
        }
    }
    return NULL;
}

/* --- start and stop --- */

/* Reads a PEM file (at most 1 MiB); NULL when unreadable. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf && fread(buf, 1, (1 << 20) - 1, f) == 0) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void free_server(grpc_srv_t *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->watch_cache[i].snap)
            grpc_slice_unref(s->watch_cache[i].bytes);
        sess_snapshot_unref(s->watch_cache[i].snap);
    }
    grpc_srv_refl_free(s->refl);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_mutex_destroy(&s->ready_mu);
    pthread_cond_destroy(&s->ready_cond);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_mutex_init(&s->ready_mu, NULL);
    pthread_cond_init(&s->ready_cond, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (grpc_srv_refl_new(&s->refl, err, errlen) != 0) {
        free_server(s);
        return -1;
    }
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
        char *cert = read_pem(opts->tls_cert_file);
        char *key = read_pem(opts->tls_key_file);
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = cert && key ? grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL) : NULL;
        if (key)
            explicit_bzero(key, strlen(key));
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
        free_server(s);
        return -1;
    }
    grpc_server_start(s->server);
    for (int i = 0; i < 8; i++)
        request_next(s);
    pthread_create(&s->pump, NULL, pump_thread, s);
    s->pump_started = 1;
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
    grpc_srv_fwd_stop(s); /* (the loop thread) */
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
    /* every call has ended: the pump only releases what is still queued */
    pthread_mutex_lock(&s->ready_mu);
    s->pump_stop = 1;
    pthread_cond_signal(&s->ready_cond);
    pthread_mutex_unlock(&s->ready_mu);
    pthread_join(s->pump, NULL);
    s->pump_started = 0;
}

void grpc_srv_free(grpc_srv_t *s)
{
    if (!s)
        return;
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    grpc_shutdown();
    free_server(s);
}
