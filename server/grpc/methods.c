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
        api_pb_reconnect(&v, r.snap, sess_now_ms());
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

/* The client of a Reconnect went away (cancelled, deadline): its wait is
 * cancelled at once instead of running to its end. Loop thread. */
static void loop_cancel_wait(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    if (c->wait_over)
        return;
    c->wait_over = 1;
    if (c->wait) {
        api_wait_cancel(c->wait); /* on_reconnected will not run */
        c->wait = NULL;
        grpc_srv_call_unref(c); /* the wait's reference */
    }
}

static void reconnect_cancel(grpc_srv_call_t *c)
{
    /* when the loop is closing, its end answers the wait */
    grpc_srv_post(c, loop_cancel_wait, NULL);
}

/* --- Logout (loop thread) --- */

static void loop_logout(grpc_srv_call_t *c, void *arg)
{
    (void)arg;
    api_result_t r = api_logout(c->srv->o.api, c->session);
    if (r.code != API_OK) {
        grpc_srv_finish_result(c, &r);
    } else {
        api_pb_logout_t v;
        api_pb_logout(&v, r.snap, sess_now_ms());
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
 * published all the same, and the reply is then dropped by gRPC. */
static void loop_pairing_code(grpc_srv_call_t *c, void *arg)
{
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
    (void)req;
    sess_sub_opts_t o = grpc_srv_stream_opts(c);
    api_code_t code;
    sess_sub_t *sub = api_watch(c->srv->o.api, c->session, &o, &code);
    if (!sub)
        grpc_srv_finish_error(c, code, NULL);
    else
        grpc_srv_stream(c, sub);
}

/* --- health (grpc.health.v1) --- */

static void health(grpc_srv_call_t *c, const ProtobufCMessage *req, int watch)
{
    const char *service = ((const Grpc__Health__V1__HealthCheckRequest *)req)->service;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    int known = !service || !*service || !strcmp(service, "wagateway.v1.Gateway");
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (!known && !watch) {
        grpc_srv_finish(c, NULL, GRPC_STATUS_NOT_FOUND, "unknown service");
        return;
    }
    if (!known)
        r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (!watch)
        grpc_srv_finish(c, &r.base, GRPC_STATUS_OK, "");
    else /* the status now; the stream stays open until the client leaves or
          * the server stops (then NOT_SERVING is implied by UNAVAILABLE) */
        grpc_srv_send(c, &r.base);
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

const grpc_srv_method_t grpc_srv_methods[] = {
    /* path, request, auth, shape, unauth_cap, route, handle, cancel */
    {GW "GetStatus", &wagateway__v1__get_status_request__descriptor, GRPC_SRV_AUTH_OPTIONAL,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_GETSTATUS, get_status, NULL},
    {GW "GetQR", &wagateway__v1__get_qrrequest__descriptor, GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY,
     0, METRICS_ROUTE_GRPC_GETQR, get_qr, NULL},
    {GW "Reconnect", &wagateway__v1__reconnect_request__descriptor, GRPC_SRV_AUTH_SESSION,
     GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_RECONNECT, reconnect, reconnect_cancel},
    {GW "Logout", &wagateway__v1__logout_request__descriptor, GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY,
     0, METRICS_ROUTE_GRPC_LOGOUT, logout, NULL},
    {GW "WatchStatus", &wagateway__v1__watch_status_request__descriptor, GRPC_SRV_AUTH_SESSION,
     GRPC_SRV_STREAM, 0, METRICS_ROUTE_GRPC_WATCH, watch_status, NULL},
    {GW "GetPasskeyOptions", &wagateway__v1__passkey_options_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, get_passkey_options, NULL},
    {GW "SendPasskeyAssertion", &wagateway__v1__passkey_assertion_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, passkey_assertion, NULL},
    {GW "RequestPairingCode", &wagateway__v1__pairing_code_request__descriptor,
     GRPC_SRV_AUTH_SESSION, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_PAIRING_CODE, pairing_code, NULL},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_UNARY, 0, METRICS_ROUTE_GRPC_OTHER, health_check, NULL},
    {"/grpc.health.v1.Health/Watch", &grpc__health__v1__health_check_request__descriptor,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_STREAM, 1, METRICS_ROUTE_GRPC_OTHER, health_watch, NULL},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", REFLECTION_REQUEST,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_BIDI, 0, METRICS_ROUTE_GRPC_OTHER, reflect, NULL},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", REFLECTION_REQUEST,
     GRPC_SRV_AUTH_NONE, GRPC_SRV_BIDI, 0, METRICS_ROUTE_GRPC_OTHER, reflect, NULL},
};

const size_t grpc_srv_nmethods = sizeof(grpc_srv_methods) / sizeof(grpc_srv_methods[0]);

const grpc_srv_method_t *grpc_srv_method_find(const char *path, size_t len)
{
    for (size_t i = 0; i < grpc_srv_nmethods; i++)
        if (strlen(grpc_srv_methods[i].path) == len && !memcmp(grpc_srv_methods[i].path, path, len))
            return &grpc_srv_methods[i];
    return NULL;
}
