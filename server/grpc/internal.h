/* Internals of the gRPC endpoint (server/grpc.h), shared by its three files
 * and used nowhere else:
 *   server.c      the completion-queue thread, the stream pump thread, call
 *                 life (references, batches), authorization and the limits;
 *   methods.c     the method table: one row per method (full name, request
 *                 type, who may call it, metrics route, handler);
 *   reflection.c  the reflection index and its answers;
 *   forward.c     cluster mode: commands for a session another node runs,
 *                 passed on to that node's HTTP API.
 *
 * A call's life: server.c accepts it, finds its row, has api/ look at its
 * key (no key or a wrong one is refused at once where one is needed),
 * admits it under the stream caps, receives the request message, decodes
 * it with the row's descriptor, has api/ decide a session key for the
 * session the request names, and hands it to the row's handler. A handler
 * answers with grpc_srv_finish*, or posts work to the session loop
 * (grpc_srv_post) and answers from there, or turns the call into a
 * stream of a subscription (grpc_srv_stream). */
#ifndef WG_SERVER_GRPC_INTERNAL_H
#define WG_SERVER_GRPC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "api/api.h"
#include "server/grpc.h"
#include "server/metrics.h"

typedef struct grpc_srv_call grpc_srv_call_t;

/* The longest session name a request may carry (session/manager.h's
 * SESS_NAME_MAX); longer ones are INVALID_ARGUMENT. */
#define GRPC_SRV_SESSION_MAX 64

/* Who may call a method. */
typedef enum {
    GRPC_SRV_AUTH_NONE = 0,      /* anyone (health, reflection) */
    GRPC_SRV_AUTH_OPTIONAL = 1,  /* a session's method open without a key (GetStatus);
                                  * a key shows what it protects */
    GRPC_SRV_AUTH_SESSION = 2,   /* the admin key or the session's own key */
    GRPC_SRV_AUTH_ADMIN = 3,     /* the admin key only (the sessions API) */
    GRPC_SRV_AUTH_PRINCIPAL = 4, /* the admin key or any session's key, decided at arrival
                                  * (c->who); the handler decides what it opens (webhooks) */
} grpc_srv_auth_t;

/* The shape of a method's exchange. */
typedef enum {
    GRPC_SRV_UNARY = 0,  /* one request, one reply */
    GRPC_SRV_STREAM = 1, /* one request, replies until the end (grpc_srv_stream, health Watch) */
    GRPC_SRV_BIDI = 2,   /* a reply per request until the client half-closes (reflection) */
} grpc_srv_shape_t;

/* One row of the method table. */
typedef struct {
    const char *path;                          /* "/wagateway.v1.Gateway/GetStatus" */
    const ProtobufCMessageDescriptor *request; /* the request message type */
    grpc_srv_auth_t auth;
    grpc_srv_shape_t shape;
    int unauth_cap;        /* always counted with the calls without a key (health Watch) */
    metrics_route_t route; /* where /metrics counts it */
    /* Answers the decoded request (cq thread; `req` is freed after it
     * returns: copy what outlives it). */
    void (*handle)(grpc_srv_call_t *c, const ProtobufCMessage *req);
    /* The client went away before the answer (cancelled, deadline): stop
     * waiting for it (cq thread). NULL: nothing to stop. */
    void (*cancel)(grpc_srv_call_t *c);
} grpc_srv_method_t;

/* Finds the row of a method by its full name; NULL when unknown. */
const grpc_srv_method_t *grpc_srv_method_find(const char *path, size_t len);

typedef enum {
    GRPC_SRV_T_NEW,
    GRPC_SRV_T_RECV,
    GRPC_SRV_T_SENT,
    GRPC_SRV_T_CLOSE,
    GRPC_SRV_T_DONE
} grpc_srv_tag_kind_t;

typedef struct {
    grpc_srv_call_t *c;
    grpc_srv_tag_kind_t kind;
} grpc_srv_tag_t;

typedef struct grpc_srv_refl grpc_srv_refl_t;
typedef struct grpc_srv_fwd grpc_srv_fwd_t;

struct grpc_srv_call {
    grpc_srv_t *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    int cancelled;
    const grpc_srv_method_t *m; /* NULL: an unknown method */
    api_scope_t scope;          /* what the caller may see, once authorized */
    api_principal_t who; /* GRPC_SRV_AUTH_PRINCIPAL methods: the admin or the key's session */
    /* The session the request names ("default" when empty); "" for methods
     * without one. */
    char session[GRPC_SRV_SESSION_MAX + 1];
    atomic_int refs;    /* batches in flight, loop jobs, the stream, the ready list */
    pthread_mutex_t mu; /* guards the fields below */
    int sent_md, sending, finished, status_sent;
    int64_t sending_since;       /* when the message in flight was handed over */
    int counted, counted_unauth; /* in grpc_srv_t's live counts and list */
    int stall_cancelled;         /* cancelled for not taking its messages */
    int keyed;                   /* a valid key came with it (not counted as unauthenticated) */
    int authorized;              /* the caller's scope is decided (c->scope) */
    grpc_srv_call_t *live_prev, *live_next; /* in grpc_srv_t's list of admitted calls */
    sess_sub_t *sub;                        /* a stream's subscription (holds a reference) */
    uint64_t last_seq;                      /* the last seq a stream of one session sent */
    /* in the pump's ready list (guarded by grpc_srv_t.ready_mu) */
    int ready;
    grpc_srv_call_t *ready_next;
    /* Reconnect's wait for its QR (loop thread) */
    api_wait_t *wait;
    int wait_over; /* answered, or cancelled (any command whose client went away) */
    /* a command passed on to the node that runs its session (loop thread;
     * NULL when none is in progress) */
    grpc_srv_fwd_t *fwd;
    /* Health/Watch: the serving status last sent (guarded by mu; 0 = none) */
    int health_status;
    grpc_srv_tag_t t_new, t_recv, t_sent, t_close, t_done;
};

struct grpc_srv {
    grpc_srv_opts_t o;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread, pump;
    int thread_started, pump_started;
    grpc_srv_tag_t shutdown_tag;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int shut_down;
    size_t live, live_unauth; /* calls open now (guarded by mu) */
    grpc_srv_call_t *calls;   /* the admitted calls (guarded by mu) */
    int64_t last_sweep_ms;    /* cq thread only */
    grpc_srv_refl_t *refl;
    /* Streams with snapshots to send: notify callbacks queue their call here
     * and wake the pump thread, which sends. */
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cond;
    grpc_srv_call_t *ready_head, *ready_tail;
    int pump_stop;
    /* the last stream Status serialized, per account visibility: every
     * stream sends the same bytes for one change */
    pthread_mutex_t watch_mu;
    struct {
        sess_snapshot_t *snap; /* referenced; NULL when empty */
        int32_t expires_in, code_expires_in;
        grpc_slice bytes;
    } watch_cache[2];
    /* commands being passed on to other nodes (loop thread only) */
    grpc_srv_fwd_t *fwds;
    int fwd_stopped; /* the server stops: no more forwarding */
};

/* --- for the handlers (server.c) --- */

/* Takes / drops a reference on a call; the last one frees it. Any thread. */
void grpc_srv_call_ref(grpc_srv_call_t *c);
void grpc_srv_call_unref(grpc_srv_call_t *c);

/* Ends the call with `status` (a grpc_status_code) and `details`, sending
 * `msg` first when non-NULL. Only the first end of a call is sent. Any
 * thread. */
void grpc_srv_finish(grpc_srv_call_t *c, const ProtobufCMessage *msg, int status,
                     const char *details);

/* The caller's x-api-key metadata value (*len bytes, not NUL-terminated),
 * or NULL when none came. Any thread, while the call is held. */
const char *grpc_srv_call_key(grpc_srv_call_t *c, size_t *len);

/* Ends the call with the gRPC code of `code` and `message` (NULL: the
 * code's default message). */
void grpc_srv_finish_error(grpc_srv_call_t *c, api_code_t code, const char *message);

/* Ends the call with an api/ result's error (its details from
 * api_pb_error). */
void grpc_srv_finish_result(grpc_srv_call_t *c, const api_result_t *r);

/* Sends one message of a stream without ending it (initial metadata first
 * when not sent yet). Returns 0, or -1 when it could not be started. */
int grpc_srv_send(grpc_srv_call_t *c, const ProtobufCMessage *msg);

/* The same with a serialized message; takes bb (destroyed in every case). */
int grpc_srv_send_buffer(grpc_srv_call_t *c, grpc_byte_buffer *bb);

/* Runs fn(c, arg) on the session loop with a reference on c held for its
 * duration (fn takes its own with grpc_srv_call_ref for work that outlives
 * it). fn owns arg. Returns 0, or -1 when the loop is closing: the call is
 * then ended with UNAVAILABLE and arg is the caller's to free. */
int grpc_srv_post(grpc_srv_call_t *c, void (*fn)(grpc_srv_call_t *c, void *arg), void *arg);

/* The options a stream subscribes with: its notify only queues the call for
 * the pump thread. */
sess_sub_opts_t grpc_srv_stream_opts(grpc_srv_call_t *c);

/* Turns the call into a stream of `sub` (subscribed with
 * grpc_srv_stream_opts(c)): every snapshot is sent as a Status as the
 * caller's scope sees it, one message in flight at a time; the end of the
 * subscription ends the call (NOT_FOUND when the session was deleted,
 * UNAVAILABLE when the service stops: api_pb_stream_end). Takes sub. */
void grpc_srv_stream(grpc_srv_call_t *c, sess_sub_t *sub);

/* --- health (methods.c) --- */

/* The service's serving status now (a Grpc__Health__V1__HealthCheckResponse
 * ServingStatus: SERVING or NOT_SERVING, from the ready option). */
int grpc_srv_health_status(grpc_srv_t *s);

/* 1 for a Health/Watch call. */
int grpc_srv_is_health_watch(const grpc_srv_call_t *c);

/* A serialized HealthCheckResponse with `status` (NULL when out of
 * memory). */
grpc_byte_buffer *grpc_srv_health_message(int status);

/* --- forwarding to the session's node (forward.c; loop thread) --- */

/* The commands that go to the node that runs their session. */
typedef enum {
    GRPC_SRV_FWD_RECONNECT,    /* POST /api/sessions/{name}/reconnect */
    GRPC_SRV_FWD_LOGOUT,       /* POST /api/sessions/{name}/logout */
    GRPC_SRV_FWD_PAIRING_CODE, /* POST /api/sessions/{name}/pairing-code */
    GRPC_SRV_FWD_PASSKEY,      /* POST /api/sessions/{name}/passkey */
    GRPC_SRV_FWD_DELETE,       /* DELETE /api/sessions/{name} */
} grpc_srv_fwd_kind_t;

/* What a forwarded command carries besides its session (borrowed: copied
 * into the request's body before grpc_srv_forward returns). */
typedef struct {
    int keep;              /* Reconnect: keep_credentials */
    unsigned wait_ms;      /* Reconnect: wait_ms (0 = the owner's default) */
    const char *phone;     /* RequestPairingCode: the normalised digits */
    const char *assertion; /* SendPasskeyAssertion: the assertion JSON, as given */
    const char *name;      /* DeleteSession: the session to delete */
} grpc_srv_fwd_args_t;

/* Decides where the command `kind` of call c is carried out: returns 0 when
 * this node does it (it runs the session, there is no cluster, no node
 * secret or no HTTP client), or 1 when the call is answered otherwise: it
 * is passed on to the owner's HTTP API (with the caller's key and the node
 * secret) and ended with the owner's answer, mapped back to gRPC (errors:
 * the HTTP status as its api_code_t's gRPC code, the answer's message as
 * the details; success: the reply the local handler gives, built from this
 * node's follower snapshot once it has caught up with the owner's answer,
 * waiting at most GRPC_SRV_FWD_CATCH_UP_MS); or the call had already been
 * cancelled, or the server stops (UNAVAILABLE). Loop thread. */
int grpc_srv_forward(grpc_srv_call_t *c, grpc_srv_fwd_kind_t kind, const grpc_srv_fwd_args_t *a);

/* How long a forwarded command's success waits for this node's snapshot to
 * show what the owner answered. */
#define GRPC_SRV_FWD_CATCH_UP_MS 2000

/* The client of a call went away: its forwarded command, if any, is
 * abandoned (the HTTP request cancelled; nothing is answered). Loop
 * thread. */
void grpc_srv_fwd_cancel(grpc_srv_call_t *c);

/* The server stops: every forwarded command still in progress is ended
 * with UNAVAILABLE and abandoned, and no new one starts. Loop thread (from
 * grpc_srv_stop). */
void grpc_srv_fwd_stop(grpc_srv_t *s);

/* --- reflection (reflection.c) --- */

/* Builds the index from the embedded descriptor sets. Returns 0, or -1 with
 * a message in err. */
int grpc_srv_refl_new(grpc_srv_refl_t **out, char *err, size_t errlen);

/* Frees the index. NULL is ignored. */
void grpc_srv_refl_free(grpc_srv_refl_t *r);

/* Answers one decoded ServerReflectionRequest (v1alpha and v1 share their
 * wire format): 0 and a new byte buffer holding the response (the caller
 * destroys it; unknown names get an error_response NOT_FOUND), or -1 when
 * out of memory. Immutable index: any thread. */
int grpc_srv_refl_answer(const grpc_srv_refl_t *r, const ProtobufCMessage *req,
                         grpc_byte_buffer **out);

#endif
