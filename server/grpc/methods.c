/* The gRPC methods as one table (see internal.h): each row names a method,
 * its request type, who may call it, its metrics route, its shape and its
 * handler. Adding a method is one row and its handler. Handlers take the
 * decoded request, ask api/ and encode what it answers (api/pb.h); work
 * that must run on the session loop is posted there with grpc_srv_post. */
#include <stdlib.h>
#include <string.h>

#include "api/pb.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "proto/gateway.pb-c.h"
#include "server/grpc/internal.h"

/* --- reads (cq thread, from snapshots) --- */

static void get_status(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    api_result_t r = api_status(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        api_pb_status_t v;
        api_pb_status(&v, r.snap, c->scope, sess_now_ms());
        grpc_srv_finish(c, &v.st.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
}

static void get_qr(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    api_result_t r = api_qr(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        Wagateway__V1__QRCode q;
        api_pb_qr(&q, r.snap, sess_now_ms());
        grpc_srv_finish(c, &q.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
}

static void get_passkey_options(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    api_result_t r = api_passkey_options(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        Wagateway__V1__PasskeyOptions o;
        api_pb_passkey_options(&o, r.snap);
        grpc_srv_finish(c, &o.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
}

/* --- Reconnect (loop thread) --- */

typedef struct {
    int keep;
    unsigned wait_ms;
} reconnect_args_t;

static void on_reconnected(api_result_t r, void *arg)
{
    grpc_srv_call_t *c = arg;
    c->wait = NULL;
    c->wait_over = 1;
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        api_pb_reconnect_t v;
        api_pb_reconnect(&v, &r, sess_now_ms());
        grpc_srv_finish(c, &v.rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c); /* the wait's reference */
}

static void loop_reconnect(grpc_srv_call_t *c, void *arg)
{
    reconnect_args_t a = *(reconnect_args_t *)arg;
    free(arg);
    if (c->wait_over) /* the client cancelled before it started */
        return;
    if (grpc_srv_forward(c, GRPC_SRV_FWD_RECONNECT,
                         &(grpc_srv_fwd_args_t){.keep = a.keep, .wait_ms = a.wait_ms}))
        return;
    metrics_reconnect(c->srv->o.metrics);
    grpc_srv_call_ref(c); /* the wait's, dropped by on_reconnected or the cancel */
    api_wait_t *w = api_reconnect(c->srv->o.api, c->session, a.keep, a.wait_ms, on_reconnected, c);
    if (!c->wait_over) /* else on_reconnected ran already */
        c->wait = w;
}

static void reconnect(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const Wagateway__V1__ReconnectRequest *q = (const Wagateway__V1__ReconnectRequest *)req;
    if (q->wait_ms > API_RECONNECT_WAIT_MAX_MS) { /* HTTP's range */
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST,
                              "wait_ms must be 0 (the default) or 1 to 300000");
        return;
    }
    reconnect_args_t *a = malloc(sizeof(*a));
    if (!a) {
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
        return;
    }
    *a = (reconnect_args_t){q->keep_credentials, q->wait_ms};
    if (grpc_srv_post(c, loop_reconnect, a) != 0)
        free(a);
}

/* The client of a command went away (cancelled, deadline): a Reconnect's
 * wait is cancelled at once instead of running to its end, a command
 * passed on to another node is abandoned. Loop thread. */
static void loop_cancel_command(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    grpc_srv_fwd_cancel(c);
    if (c->wait_over)
        return;
    c->wait_over = 1;
    if (c->wait) {
        api_wait_cancel(c->wait); /* on_reconnected will not run */
        c->wait = NULL;
        grpc_srv_call_unref(c); /* the wait's reference */
    }
}

static void command_cancel(grpc_srv_call_t *c)
{
    /* when the loop is closing, its end answers the wait, and the server's
     * stop the forwarded commands */
    grpc_srv_post(c, loop_cancel_command, NULL);
}

/* --- Logout (loop thread) --- */

static void loop_logout(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    if (grpc_srv_forward(c, GRPC_SRV_FWD_LOGOUT, &(grpc_srv_fwd_args_t){0}))
        return;
    api_result_t r = api_logout(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        api_pb_logout_t v;
        api_pb_logout(&v, &r, sess_now_ms());
        grpc_srv_finish(c, &v.rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
}

static void logout(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    grpc_srv_post(c, loop_logout, NULL);
}

/* --- RequestPairingCode (loop thread) --- */

static void on_pairing_code(api_result_t r, const char *code, int expires_in, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        Wagateway__V1__PairingCodeReply rep;
        api_pb_pairing_code(&rep, code, expires_in);
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

/* The call is not cancelled when its client goes away: the code is
 * published all the same, and the reply is then dropped by gRPC (a request
 * passed on to another node is abandoned, though). */
static void loop_pairing_code(grpc_srv_call_t *c, void *arg)
{
    if (grpc_srv_forward(c, GRPC_SRV_FWD_PAIRING_CODE, &(grpc_srv_fwd_args_t){.phone = arg})) {
        free(arg);
        return;
    }
    grpc_srv_call_ref(c); /* on_pairing_code's */
    api_pairing_code(c->srv->o.api, c->session, arg, on_pairing_code, c);
    free(arg);
}

static void pairing_code(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const char *number = ((const Wagateway__V1__PairingCodeRequest *)req)->phone_number;
    char phone[16];
    const char *why = NULL;
    if (api_normalize_phone(number ? number : "", number ? strlen(number) : 0, phone, &why)) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, why);
        return;
    }
    char *arg = strdup(phone);
    if (!arg)
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    else if (grpc_srv_post(c, loop_pairing_code, arg) != 0)
        free(arg);
}

/* --- SendPasskeyAssertion (loop thread) --- */

static void on_passkey_done(api_result_t r, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        api_pb_passkey_t v;
        api_pb_passkey(&v, &r, c->scope, sess_now_ms());
        grpc_srv_finish(c, &v.rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

static void loop_passkey(grpc_srv_call_t *c, void *arg)
{
    char *json = arg;
    if (grpc_srv_forward(c, GRPC_SRV_FWD_PASSKEY, &(grpc_srv_fwd_args_t){.assertion = json})) {
        free(json);
        return;
    }
    grpc_srv_call_ref(c); /* on_passkey_done's */
    api_passkey_response(c->srv->o.api, c->session, json, strlen(json), on_passkey_done, c);
    free(json);
}

static void passkey_assertion(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const char *json = ((const Wagateway__V1__PasskeyAssertionRequest *)req)->assertion_json;
    char *arg = strdup(json ? json : "");
    if (!arg)
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    else if (grpc_srv_post(c, loop_passkey, arg) != 0)
        free(arg);
}

/* --- streams --- */

static void watch_status(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    uint64_t since = ((const Wagateway__V1__WatchStatusRequest *)req)->since_seq;
    sess_sub_opts_t o = grpc_srv_stream_opts(c);
    api_code_t code;
    sess_sub_t *sub = api_watch_since(c->srv->o.api, c->session, since, &o, &code);
    if (!sub)
        grpc_srv_finish_error(c, code, NULL);
    else
        grpc_srv_stream(c, sub);
}

/* --- sessions --- */

/* Sends a reply carrying a session's key, then wipes and frees the key. */
static void finish_with_key(grpc_srv_call_t *c, const ProtobufCMessage *rep, char *key)
{
    grpc_srv_finish(c, rep, GRPC_STATUS_OK, "");
    explicit_bzero(key, strlen(key));
    free(key);
}

typedef struct {
    char *name, *device;
} create_args_t;

static void free_create_args(create_args_t *a)
{
    free(a->name);
    free(a->device);
    free(a);
}

static void on_session_created(api_result_t r, char *key, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code == API_OK && key) {
        api_pb_create_session_t v;
        api_pb_create_session(&v, &r, key, sess_now_ms());
        finish_with_key(c, &v.rep.base, key);
    } else {
        if (r.code == API_OK) /* created without a key: out of memory */
            r.code = API_ERR_INTERNAL;
        grpc_srv_finish_result(c, &r);
        free(key);
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

/* Answered once the session is stored (the call held meanwhile). */
static void loop_create_session(grpc_srv_call_t *c, void *arg)
{
    create_args_t *a = arg;
    grpc_srv_call_ref(c); /* on_session_created's */
    api_session_create(c->srv->o.api, a->name, a->device[0] ? a->device : NULL, on_session_created,
                       c);
    free_create_args(a);
}

static void create_session(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const Wagateway__V1__CreateSessionRequest *q = (const Wagateway__V1__CreateSessionRequest *)req;
    create_args_t *a = calloc(1, sizeof(*a));
    if (a) {
        a->name = strdup(q->name ? q->name : "");
        a->device = strdup(q->device_name ? q->device_name : "");
    }
    if (!a || !a->name || !a->device) {
        if (a)
            free_create_args(a);
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    } else if (grpc_srv_post(c, loop_create_session, a) != 0) {
        free_create_args(a);
    }
}

static void list_sessions(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const char *state = NULL;
    if (api_pb_state_filter(((const Wagateway__V1__ListSessionsRequest *)req)->state, &state)) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, "unknown state");
        return;
    }
    sess_snapshot_t **v = NULL;
    size_t n = 0;
    api_code_t code = api_session_list(c->srv->o.api, state, &v, &n);
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, NULL);
        return;
    }
    api_pb_sessions_t rep;
    if (api_pb_sessions(&rep, v, n, c->scope, sess_now_ms()) != 0) {
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    } else {
        grpc_srv_finish(c, &rep.rep.base, GRPC_STATUS_OK, "");
        api_pb_sessions_clear(&rep);
    }
    sess_snapshots_free(v, n);
}

static void on_session_deleted(api_result_t r, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        Wagateway__V1__DeleteSessionReply rep;
        api_pb_delete_session(&rep, &r);
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

/* The deletion goes on when the client goes away (the answer is then
 * dropped by gRPC; the owner of a session another node runs goes on
 * too). */
static void loop_delete_session(grpc_srv_call_t *c, void *arg)
{
    if (grpc_srv_forward(c, GRPC_SRV_FWD_DELETE, &(grpc_srv_fwd_args_t){.name = arg})) {
        free(arg);
        return;
    }
    grpc_srv_call_ref(c); /* on_session_deleted's */
    api_session_delete(c->srv->o.api, arg, on_session_deleted, c);
    free(arg);
}

static void delete_session(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const char *name = ((const Wagateway__V1__DeleteSessionRequest *)req)->name;
    char *arg = strdup(name ? name : "");
    if (!arg)
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    else if (grpc_srv_post(c, loop_delete_session, arg) != 0)
        free(arg);
}

static void on_key_rotated(api_result_t r, char *key, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code == API_OK && key) {
        api_pb_rotate_key_t v;
        api_pb_rotate_key(&v, &r, key, c->scope, sess_now_ms());
        finish_with_key(c, &v.rep.base, key);
    } else {
        if (r.code == API_OK)
            r.code = API_ERR_INTERNAL;
        grpc_srv_finish_result(c, &r);
        free(key);
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

/* Answered once the new key's hash is stored (the call held meanwhile). */
static void loop_rotate_key(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    grpc_srv_call_ref(c); /* on_key_rotated's */
    api_session_rotate_key(c->srv->o.api, c->session, on_key_rotated, c);
}

static void rotate_key(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    grpc_srv_post(c, loop_rotate_key, NULL);
}

static void watch_sessions(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    uint64_t since = ((const Wagateway__V1__WatchSessionsRequest *)req)->since_seq;
    sess_sub_opts_t o = grpc_srv_stream_opts(c);
    o.max_queue = 0; /* the registry's default: room for every session's first state */
    api_code_t code;
    sess_sub_t *sub = api_watch_all_since(c->srv->o.api, since, &o, &code);
    if (!sub)
        grpc_srv_finish_error(c, code, NULL);
    else
        grpc_srv_stream(c, sub);
}

/* --- webhooks (loop thread: the sender lives there) --- */

static void on_webhook_created(void *arg, api_code_t code, const char *message,
                               const wh_target_info_t *t, const char *secret)
{
    grpc_srv_call_t *c = arg;
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, message);
    } else {
        Wagateway__V1__CreateWebhookReply rep = WAGATEWAY__V1__CREATE_WEBHOOK_REPLY__INIT;
        api_pb_webhook_t w;
        api_pb_webhook(&w, t);
        rep.message = (char *)(secret ? "Webhook created: keep its secret, it is shown only once"
                                      : "Webhook created");
        rep.webhook = &w.w;
        rep.secret = (char *)(secret ? secret : "");
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    grpc_srv_call_unref(c);
}

static void loop_create_webhook(grpc_srv_call_t *c, void *arg)
{
    api_webhook_req_t *r = arg;
    grpc_srv_call_ref(c); /* on_webhook_created's */
    api_webhook_create(c->srv->o.api, &c->who, r, on_webhook_created, c);
    api_webhook_req_clear(r);
    free(r);
}

static void create_webhook(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const Wagateway__V1__CreateWebhookRequest *q = (const Wagateway__V1__CreateWebhookRequest *)req;
    if (q->n_events > WH_EVENTS_MAX) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, "events: at most 16 types");
        return;
    }
    api_webhook_req_t *r = calloc(1, sizeof(*r));
    int ok = r != NULL;
    if (ok) {
        r->url = strdup(q->url ? q->url : "");
        r->secret = q->secret && *q->secret ? strdup(q->secret) : NULL;
        r->session = q->session && *q->session ? strdup(q->session) : NULL;
        ok = r->url && (!q->secret || !*q->secret || r->secret) &&
             (!q->session || !*q->session || r->session);
        for (size_t i = 0; ok && i < q->n_events; i++)
            ok = (r->events[i] = strdup(q->events[i] ? q->events[i] : "")) != NULL;
    }
    if (!ok) {
        if (r) {
            api_webhook_req_clear(r);
            free(r);
        }
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    } else if (grpc_srv_post(c, loop_create_webhook, r) != 0) {
        api_webhook_req_clear(r);
        free(r);
    }
}

static void loop_list_webhooks(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    wh_target_info_t *v = NULL;
    size_t n = 0;
    api_code_t code = api_webhook_list(c->srv->o.api, &c->who, &v, &n);
    api_pb_webhooks_t rep;
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, NULL);
    } else if (api_pb_webhooks(&rep, v, n) != 0) {
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    } else {
        grpc_srv_finish(c, &rep.rep.base, GRPC_STATUS_OK, "");
        api_pb_webhooks_clear(&rep);
    }
    free(v);
}

static void list_webhooks(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    (void)req;
    grpc_srv_post(c, loop_list_webhooks, NULL);
}

/* Copies the id of a request for the loop (NULL after answering). */
static char *id_arg(grpc_srv_call_t *c, const char *id)
{
    char *a = strdup(id ? id : "");
    if (!a)
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    return a;
}

static void on_webhook_deleted(api_result_t r, void *arg)
{
    grpc_srv_call_t *c = arg;
    if (r.code != API_OK) {
        grpc_srv_finish_error(c, r.code, r.message);
    } else {
        Wagateway__V1__DeleteWebhookReply rep = WAGATEWAY__V1__DELETE_WEBHOOK_REPLY__INIT;
        rep.message = "Webhook deleted";
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    api_result_clear(&r);
    grpc_srv_call_unref(c);
}

/* The deletion goes on when the client goes away (the answer is then
 * dropped by gRPC). */
static void loop_delete_webhook(grpc_srv_call_t *c, void *arg)
{
    grpc_srv_call_ref(c); /* on_webhook_deleted's */
    api_webhook_delete(c->srv->o.api, &c->who, arg, on_webhook_deleted, c);
    free(arg);
}

static void delete_webhook(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    char *a = id_arg(c, ((const Wagateway__V1__DeleteWebhookRequest *)req)->id);
    if (a && grpc_srv_post(c, loop_delete_webhook, a) != 0)
        free(a);
}

typedef struct {
    char *id;
    uint64_t since;
} replay_args_t;

static void on_webhook_replayed(void *arg, api_code_t code, const char *message, uint64_t n)
{
    grpc_srv_call_t *c = arg;
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, message);
    } else {
        Wagateway__V1__ReplayWebhookReply rep = WAGATEWAY__V1__REPLAY_WEBHOOK_REPLY__INIT;
        rep.message = "Deliveries queued again";
        rep.requeued = n;
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    grpc_srv_call_unref(c);
}

/* As the deletion: goes on when the client goes away. */
static void loop_replay_webhook(grpc_srv_call_t *c, void *arg)
{
    replay_args_t *a = arg;
    grpc_srv_call_ref(c); /* on_webhook_replayed's */
    api_webhook_replay(c->srv->o.api, &c->who, a->id, a->since, on_webhook_replayed, c);
    free(a->id);
    free(a);
}

static void replay_webhook(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const Wagateway__V1__ReplayWebhookRequest *q = (const Wagateway__V1__ReplayWebhookRequest *)req;
    replay_args_t *a = malloc(sizeof(*a));
    char *id = a ? id_arg(c, q->id) : NULL;
    if (!a || !id) {
        if (!a)
            grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
        free(a);
        return;
    }
    a->id = id;
    a->since = q->since_event_id;
    if (grpc_srv_post(c, loop_replay_webhook, a) != 0) {
        free(a->id);
        free(a);
    }
}

static void on_webhook_tested(void *arg, api_code_t code, const char *message,
                              const wh_test_result_t *r)
{
    grpc_srv_call_t *c = arg;
    if (code != API_OK) {
        grpc_srv_finish_error(c, code, code == API_ERR_NOT_FOUND ? "No such webhook" : message);
    } else {
        Wagateway__V1__TestWebhookReply rep;
        api_pb_webhook_test(&rep, r);
        grpc_srv_finish(c, &rep.base, GRPC_STATUS_OK, "");
    }
    grpc_srv_call_unref(c);
}

typedef struct {
    char *id;
    unsigned wait_ms;
} test_args_t;

/* The wait is not cancelled when the client goes away: it ends by itself
 * within 60 s, and the reply is then dropped by gRPC. */
static void loop_test_webhook(grpc_srv_call_t *c, void *arg)
{
    test_args_t *a = arg;
    grpc_srv_call_ref(c); /* on_webhook_tested's */
    api_webhook_test(c->srv->o.api, &c->who, a->id, a->wait_ms, on_webhook_tested, c);
    free(a->id);
    free(a);
}

static void test_webhook(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    const Wagateway__V1__TestWebhookRequest *q = (const Wagateway__V1__TestWebhookRequest *)req;
    if (q->wait_ms > API_WEBHOOK_WAIT_MAX_MS) {
        grpc_srv_finish_error(c, API_ERR_BAD_REQUEST, "wait_ms must be 0 (10 s) or 1 to 60000");
        return;
    }
    test_args_t *a = malloc(sizeof(*a));
    char *id = a ? id_arg(c, q->id) : NULL;
    if (!a || !id) {
        if (!a)
            grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
        free(a);
        return;
    }
    a->id = id;
    a->wait_ms = q->queued_only ? 0 : q->wait_ms ? q->wait_ms : API_WEBHOOK_WAIT_DEFAULT_MS;
    if (grpc_srv_post(c, loop_test_webhook, a) != 0) {
        free(a->id);
        free(a);
    }
}

/* --- health (grpc.health.v1) --- */

static void health_watch(grpc_srv_call_t *c, const ProtobufCMessage *req);

int grpc_srv_health_status(grpc_srv_t *s)
{
    const char *why = NULL;
    return !s->o.ready || s->o.ready(s->o.ready_arg, &why)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

grpc_byte_buffer *grpc_srv_health_message(int status)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    size_t len = protobuf_c_message_get_packed_size(&r.base);
    uint8_t buf[16];
    if (len > sizeof(buf))
        return NULL;
    protobuf_c_message_pack(&r.base, buf);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

static void health(grpc_srv_call_t *c, const ProtobufCMessage *req, int watch)
{
    const char *service = ((const Grpc__Health__V1__HealthCheckRequest *)req)->service;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    int known = !service || !*service || !strcmp(service, "wagateway.v1.Gateway");
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)grpc_srv_health_status(c->srv);
    if (!known && !watch) {
        grpc_srv_finish(c, NULL, GRPC_STATUS_NOT_FOUND, "unknown service");
        return;
    }
    if (!known)
        r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (!watch) {
        grpc_srv_finish(c, &r.base, GRPC_STATUS_OK, "");
        return;
    }
    /* the status now; a change (draining, leases not renewed) is sent by the
     * server's sweep; the stream stays open until the client leaves or the
     * server stops (then NOT_SERVING is implied by UNAVAILABLE) */
    pthread_mutex_lock(&c->mu);
    c->health_status = known ? (int)r.status : 0;
    pthread_mutex_unlock(&c->mu);
    grpc_srv_send(c, &r.base);
}

int grpc_srv_is_health_watch(const grpc_srv_call_t *c)
{
    return c->m && c->m->handle == health_watch;
}

static void health_check(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    health(c, req, 0);
}

static void health_watch(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    health(c, req, 1);
}

/* --- reflection (v1alpha and v1 share their wire format) --- */

static void reflect(grpc_srv_call_t *c, const ProtobufCMessage *req)
{
    grpc_byte_buffer *reply = NULL;
    if (grpc_srv_refl_answer(c->srv->refl, req, &reply) != 0)
        grpc_srv_finish_error(c, API_ERR_INTERNAL, NULL);
    else
        grpc_srv_send_buffer(c, reply);
}

/* --- the table --- */

#define GW "/wagateway.v1.Gateway/"
#define REFLECTION_REQUEST &grpc__reflection__v1alpha__server_reflection_request__descriptor

static const grpc_srv_method_t methods[] = {
    /* path, request, auth, shape, unauth_cap, route, handle, cancel */
    {GW "GetStatus", &wagateway__v1__get_status_request__descriptor, GRPC_SRV_AUTH_OPTIONAL,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_GETSTATUS, get_status, NULL},
    {GW "GetQR", &wagateway__v1__get_qrrequest__descriptor, GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY,
     0, METRICS_ROUTE_GRPC_GETQR, get_qr, NULL},
    {GW "Reconnect", &wagateway__v1__reconnect_request__descriptor, GRPC_SRV_AUTH_SESSION,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_RECONNECT, reconnect, command_cancel},
    {GW "Logout", &wagateway__v1__logout_request__descriptor, GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY,
     0, METRICS_ROUTE_GRPC_LOGOUT, logout, command_cancel},
    {GW "WatchStatus", &wagateway__v1__watch_status_request__descriptor, GRPC_SRV_AUTH_SESSION,
     GRPC_SRV_STREAM, 0, METRICS_ROUTE_GRPC_WATCH, watch_status, NULL},
    {GW "GetPasskeyOptions", &wagateway__v1__passkey_options_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, get_passkey_options, NULL},
    {GW "SendPasskeyAssertion", &wagateway__v1__passkey_assertion_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, passkey_assertion,
     command_cancel},
    {GW "RequestPairingCode", &wagateway__v1__pairing_code_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_PAIRING_CODE, pairing_code,
     command_cancel},
    {GW "CreateSession", &wagateway__v1__create_session_request__descriptor, GRPC_SRV_AUTH_ADMIN,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, create_session, NULL},
    {GW "ListSessions", &wagateway__v1__list_sessions_request__descriptor, GRPC_SRV_AUTH_ADMIN,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, list_sessions, NULL},
    {GW "DeleteSession", &wagateway__v1__delete_session_request__descriptor, GRPC_SRV_AUTH_ADMIN,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, delete_session, command_cancel},
    {GW "RotateSessionKey", &wagateway__v1__rotate_session_key_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, rotate_key, NULL},
    {GW "WatchSessions", &wagateway__v1__watch_sessions_request__descriptor, GRPC_SRV_AUTH_ADMIN,
     GRPC_SRV_STREAM, 0, METRICS_ROUTE_GRPC_WATCH, watch_sessions, NULL},
    {GW "CreateWebhook", &wagateway__v1__create_webhook_request__descriptor,
     GRPC_SRV_AUTH_PRINCIPAL, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, create_webhook, NULL},
    {GW "ListWebhooks", &wagateway__v1__list_webhooks_request__descriptor, GRPC_SRV_AUTH_PRINCIPAL,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, list_webhooks, NULL},
    {GW "DeleteWebhook", &wagateway__v1__delete_webhook_request__descriptor,
     GRPC_SRV_AUTH_PRINCIPAL, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, delete_webhook, NULL},
    {GW "TestWebhook", &wagateway__v1__test_webhook_request__descriptor, GRPC_SRV_AUTH_PRINCIPAL,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, test_webhook, NULL},
    {GW "ReplayWebhook", &wagateway__v1__replay_webhook_request__descriptor,
     GRPC_SRV_AUTH_PRINCIPAL, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, replay_webhook, NULL},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, health_check, NULL},
    {"/grpc.health.v1.Health/Watch", &grpc__health__v1__health_check_request__descriptor,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_STREAM, 1, METRICS_ROUTE_GRPC_OTHER, health_watch, NULL},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", REFLECTION_REQUEST,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_BIDI, 0, METRICS_ROUTE_GRPC_OTHER, reflect, NULL},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", REFLECTION_REQUEST,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_BIDI, 0, METRICS_ROUTE_GRPC_OTHER, reflect, NULL},
};

const grpc_srv_method_t *grpc_srv_method_find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].path) == len && !memcmp(methods[i].path, path, len))
            return &methods[i];
    return NULL;
}
