/* The transport-neutral handler layer: status, qr, reconnect, logout,
 * pairing code and watch, with one error model that HTTP (server/http/) and gRPC
 * (server/grpc/) map to their own status codes, the API-key check, and the
 * JSON views of api-contract.md. Nothing here knows about sockets.
 *
 * Threads: every function runs on the loop thread unless it says otherwise. */
#ifndef WG_API_API_H
#define WG_API_API_H

#include <stddef.h>
#include <stdint.h>

#include "common/httpc.h"
#include "session/cluster/cluster.h"
#include "session/session.h"
#include "session/webhook/webhook.h"

/* The one error model. Each code has one HTTP status and one gRPC code. */
typedef enum {
    API_OK = 0,
    API_ERR_UNAUTHENTICATED, /* 401 / UNAUTHENTICATED: missing or wrong key */
    API_ERR_NO_QR,           /* 409 / FAILED_PRECONDITION: no QR in this state */
    API_ERR_BAD_REQUEST,     /* 400 / INVALID_ARGUMENT: malformed input */
    API_ERR_NOT_FOUND,       /* 404 / NOT_FOUND: unknown path or session */
    API_ERR_TOO_LARGE,       /* 413 / INVALID_ARGUMENT: body over the limit */
    API_ERR_RATE_LIMITED,    /* 429 / RESOURCE_EXHAUSTED: too many bad keys */
    API_ERR_TIMEOUT,         /* 504 / DEADLINE_EXCEEDED: WhatsApp not reached in time */
    API_ERR_UNREACHABLE,     /* 502 / UNAVAILABLE: WhatsApp refused or unreachable */
    API_ERR_SHUTTING_DOWN,   /* 503 / UNAVAILABLE: the service is stopping */
    API_ERR_INTERNAL,        /* 500 / INTERNAL */
    API_ERR_CONFLICT,        /* 409 / FAILED_PRECONDITION: not possible in this state */
    API_ERR_ALREADY_LINKED,  /* 409 / FAILED_PRECONDITION: linked already, nothing to link */
    API_ERR_FORBIDDEN,       /* 403 / PERMISSION_DENIED: Host or Origin not allowed, or a
                              * session key used outside its session */
    API_ERR_LIMIT,           /* 507 / RESOURCE_EXHAUSTED: MAX_SESSIONS reached */
} api_code_t;

/* HTTP status for a code (200 for API_OK). */
int api_http_status(api_code_t code);

/* gRPC status code number (grpc_status_code values; 0 for API_OK). */
int api_grpc_status(api_code_t code);

/* A short default message for a code, e.g. "Invalid API key"; never NULL. */
const char *api_code_message(api_code_t code);

typedef struct api api_t;

typedef struct sess_mgr sess_mgr_t;

typedef struct {
    const char *api_key;        /* the admin key; NULL: no key required anywhere */
    unsigned reconnect_wait_ms; /* how long reconnect waits for a QR; 0 = 30000 */
    sess_mgr_t *sessions;       /* creates and deletes sessions (borrowed); NULL: the
                                 * sessions API answers API_ERR_INTERNAL */
    wh_t *webhooks;             /* webhook targets (borrowed); NULL: the webhooks API
                                 * answers API_ERR_INTERNAL */
    clu_t *cluster;             /* several nodes (borrowed); NULL: a single node */
    /* CLUSTER_SECRET: the secret the nodes share; commands for a session
     * another node runs are forwarded to it with this secret (NULL: they
     * answer 409 instead). Copied (and wiped on free). */
    const char *node_secret;
} api_opts_t;

/* Creates the handler layer over `reg`; `opts` strings are copied. Returns
 * NULL when out of memory. Free with api_free. */
api_t *api_new(sess_registry_t *reg, const api_opts_t *opts);

/* Releases the handler layer (not the registry). */
void api_free(api_t *api);

/* The registry the handlers act on. */
sess_registry_t *api_registry(api_t *api);

/* The session manager the sessions API uses (NULL when none was given). */
sess_mgr_t *api_sessions(api_t *api);

/* The webhook sender the webhooks API uses (NULL when none was given). */
wh_t *api_webhooks(api_t *api);

/* Checks a presented key (may be NULL) in constant time with respect to the
 * configured key's content. Returns 1 when no key is configured or the key
 * matches, else 0. Any thread. */
int api_key_ok(const api_t *api, const char *key, size_t len);

/* Checks a presented key for the caller at `client` (its address as either
 * transport gives it: "127.0.0.1", "::1", "[::1]:5", "ipv4:1.2.3.4:5",
 * "ipv6:[::1]:5", "ipv6:%5B::1%5D:5"; see api_client_group), counting wrong
 * keys per client group: after API_AUTH_MAX_FAILURES wrong keys within
 * API_AUTH_WINDOW_MS further wrong keys from the group are refused with
 * API_ERR_RATE_LIMITED for API_AUTH_LOCKOUT_MS. The right key always passes
 * (it is checked first), so the lockout cannot be used to shut out the
 * legitimate users behind an address. A missing key is not counted (that is
 * a misconfigured client, not a guess). Returns API_OK,
 * API_ERR_UNAUTHENTICATED or API_ERR_RATE_LIMITED. Any thread. */
api_code_t api_authorize(api_t *api, const char *client, const char *key, size_t len);

/* Writes the group that api_authorize counts `client` in: the IPv4 address
 * ("1.2.3.4", also for "::ffff:1.2.3.4"), the /64 of an IPv6 address
 * ("2001:db8:1:2::/64"), or "unknown". Returns 0, or -1 when `out` is too
 * small. Any thread. */
int api_client_group(const char *client, char *out, size_t outlen);

#define API_AUTH_MAX_FAILURES 10
#define API_AUTH_WINDOW_MS 60000
#define API_AUTH_LOCKOUT_MS 60000

/* Returns 1 when the service has a key configured. */
int api_key_required(const api_t *api);

/* --- callers and what they may do (multi-session) ---
 *
 * API_KEY is the admin key: it opens every route and method. Each session
 * has its own key (only its SHA-256 is stored), valid on that session's
 * routes and methods only (the seed routes /api/whatsapp/... are those of
 * "default"). A session key on another session or on an admin route gets
 * API_ERR_FORBIDDEN. With no API_KEY configured every caller is admin. */

/* Who is calling, as the transport knows it. */
typedef struct {
    const char *client; /* the peer address, in either transport's form (api_authorize) */
    const char *key;    /* the presented key, NULL when none */
    size_t key_len;
    int refused; /* out: set when the presented key was refused (for metrics) */
} api_caller_t;

typedef enum {
    API_SCOPE_NONE = 0,    /* no key (a route open without one: status) */
    API_SCOPE_SESSION = 1, /* the key of the session acted on */
    API_SCOPE_ADMIN = 2,   /* the admin key, or no key configured */
} api_scope_t;

/* Decides whether `caller` may use a route acting on session `session`
 * (NULL: an admin route such as the sessions list). With `key_optional`
 * (status, GetStatus) a caller without a key passes with API_SCOPE_NONE,
 * and so does one whose key does not open the session (a wrong key is still
 * counted; caller->refused says so): the key only adds what it shows.
 * Wrong keys are counted per client as api_authorize does; a valid key of
 * another session is not a guess (not counted) and gets
 * API_ERR_FORBIDDEN. Keys are compared in constant time. Returns API_OK
 * with *scope set, API_ERR_UNAUTHENTICATED, API_ERR_RATE_LIMITED or
 * API_ERR_FORBIDDEN. An unknown `session` is not decided here (the handler
 * answers API_ERR_NOT_FOUND; the scope is then ADMIN or an error). Any
 * thread. */
api_code_t api_authorize_for(api_t *api, api_caller_t *caller, const char *session,
                             int key_optional, api_scope_t *scope);

/* The result of a synchronous handler. `snap` is a snapshot reference the
 * caller must release with api_result_clear (NULL on some errors). */
typedef struct {
    api_code_t code;
    const char *message; /* static text; NULL means api_code_message(code) */
    sess_snapshot_t *snap;
} api_result_t;

/* Releases the snapshot held by a result. */
void api_result_clear(api_result_t *r);

/* --- sessions (several WhatsApp accounts) --- */

/* The default cap of MAX_SESSIONS. */
#define API_MAX_SESSIONS_DEFAULT 1000

/* Parses the body of POST /api/sessions: {"name":"sales"[,"deviceName":"..."]}.
 * Returns 0 with name (<= 64 bytes + NUL) and device name (<= 64 bytes +
 * NUL, "" when absent) filled, or -1 with a static reason in *why. */
int api_parse_session_body(const char *body, size_t len, char name[65], char device[65],
                           const char **why);

/* Completion of api_session_create and api_session_rotate_key: r.code
 * API_OK with r.snap the session's snapshot and `key` its new key
 * (malloc'd, shown once), or the error with key NULL. The callee owns r
 * (api_result_clear) and the key (it wipes and frees it). */
typedef void (*api_key_cb)(api_result_t r, char *key, void *arg);

/* Creates a session (POST /api/sessions, CreateSession) with a fresh key;
 * it is stored off the loop. cb runs once on the loop thread (possibly
 * before this returns) with its first snapshot and its key. Errors:
 * API_ERR_BAD_REQUEST (name or device name), API_ERR_CONFLICT (the name
 * exists), API_ERR_LIMIT (MAX_SESSIONS reached), API_ERR_INTERNAL. Loop
 * thread. */
void api_session_create(api_t *api, const char *name, const char *device_name, api_key_cb cb,
                        void *arg);

/* The current snapshot of every session, oldest first, keeping only those
 * in `state` when it is not NULL ("QR_READY", ...; an unknown state is
 * API_ERR_BAD_REQUEST). *out is a malloc'd array of *n references (free
 * with sess_snapshots_free). Any thread. */
api_code_t api_session_list(api_t *api, const char *state, sess_snapshot_t ***out, size_t *n);

/* Completion of api_session_delete: r.code API_OK, or the error. The callee
 * owns r. */
typedef void (*api_done_cb)(api_result_t r, void *arg);

/* Deletes session `name` (DELETE /api/sessions/{name}, DeleteSession):
 * unlinks on WhatsApp when linked, wipes its credentials, ends its
 * streams. cb runs once on the loop thread (possibly before this returns).
 * Errors: API_ERR_NOT_FOUND, API_ERR_CONFLICT ("default" cannot be
 * deleted). Loop thread. */
void api_session_delete(api_t *api, const char *name, api_done_cb cb, void *arg);

/* Rotates a session's key (POST /api/sessions/{name}/key): once the new
 * hash is stored (off the loop) the old key stops working. cb runs once on
 * the loop thread (possibly before this returns) with the session's
 * snapshot and the new key. Errors: API_ERR_NOT_FOUND, API_ERR_INTERNAL.
 * Loop thread. */
void api_session_rotate_key(api_t *api, const char *name, api_key_cb cb, void *arg);

/* Returns 1 when `name` is a valid session name ([a-z0-9_-]{1,64}), else 0:
 * a transport answers API_ERR_BAD_REQUEST for a malformed name in a path
 * before asking for the session. Any thread. */
int api_session_name_ok(const char *name);

/* The messages of a malformed session name in a path and of an unknown
 * ?state= filter (API_ERR_BAD_REQUEST). */
#define API_BAD_NAME_MESSAGE "Invalid session name (1 to 64 of a-z, 0-9, '_' and '-')"
#define API_BAD_STATE_MESSAGE "Unknown state (use CONNECTED, DISCONNECTED, CONNECTING or QR_READY)"

/* Subscribes to every session's changes (GET /api/events, WatchSessions);
 * NULL with *code set on failure. Any thread. */
sess_sub_t *api_watch_all(api_t *api, const sess_sub_opts_t *opts, api_code_t *code);

/* As api_watch_all, resuming after global event id `since` (0: every
 * session's current state first, as api_watch_all): the stored events
 * after it in order, then the live ones; the first snapshot carries
 * gap_from..gap_to (event ids) when some were no longer kept. Any
 * thread. */
sess_sub_t *api_watch_all_since(api_t *api, uint64_t since, const sess_sub_opts_t *opts,
                                api_code_t *code);

/* The current state of session `name` (NULL or "" = "default"). No key needed.
 * Any thread. */
api_result_t api_status(api_t *api, const char *name);

/* The current QR; API_ERR_NO_QR (with the snapshot, and a message saying
 * why in its state) when there is none. */
api_result_t api_qr(api_t *api, const char *name);

/* The message of a successful logout and of a started reconnect (JSON and
 * gRPC). */
#define API_LOGOUT_MESSAGE "Logged out"

/* A command (reconnect, logout, pairing code, passkey, delete) sent, in a
 * cluster, to a node that does not run the session: 409. */
#define API_ELSEWHERE_MESSAGE                                                                      \
    "This session runs on another node of the cluster: send the command to that node "             \
    "(GET /api/cluster names it)"
#define API_RECONNECT_MESSAGE "WhatsApp reconnection initiated"

/* Logs the session out: removes the companion device on WhatsApp when linked
 * and wipes the credentials; r.message is API_LOGOUT_MESSAGE on success. */
api_result_t api_logout(api_t *api, const char *name);

/* Completion of api_reconnect: `r.snap` is the snapshot with the new QR (or
 * CONNECTED with keep_credentials), r.message API_RECONNECT_MESSAGE on
 * success. The callee owns r and must clear it. */
typedef void (*api_reconnect_cb)(api_result_t r, void *arg);

typedef struct api_wait api_wait_t;

/* Starts a reconnect: by default unlinks and starts a new registration, then
 * calls `cb` once the first new QR is published; with keep_credentials
 * restarts the connection and completes at CONNECTED or a new QR. Completes
 * with API_ERR_TIMEOUT after wait_ms (0 = default), API_ERR_UNREACHABLE when
 * the attempt ends DISCONNECTED. Returns a handle that api_wait_cancel can
 * cancel (then cb is never called), or NULL when cb was already called. */
api_wait_t *api_reconnect(api_t *api, const char *name, int keep_credentials, unsigned wait_ms,
                          api_reconnect_cb cb, void *arg);

/* Cancels a pending reconnect wait (e.g. the client went away). */
void api_wait_cancel(api_wait_t *w);

/* --- linking by pairing code --- */

/* The message of a successful pairing-code answer (JSON and gRPC). */
#define API_PAIRING_CODE_MESSAGE                                                                   \
    "Enter this code on the phone: Linked devices > Link with phone number"

/* Normalises a phone number as people write it: digits, one optional
 * leading '+', spaces and dashes between them. Writes the 8..15 digits
 * (country code first) to `out` and returns 0, or -1 with a static reason
 * in *why. Any thread. */
int api_normalize_phone(const char *in, size_t len, char out[16], const char **why);

/* Parses the body of POST pairing-code, {"phoneNumber":"+62 812-3456-7890"}
 * (other members are ignored), and normalises the number into `out`.
 * Returns 0, or -1 with a static reason in *why (no body, malformed JSON,
 * invalid UTF-8, not an object, phoneNumber missing or not a string, a
 * malformed number). Any thread. */
int api_parse_pairing_code_body(const char *body, size_t len, char out[16], const char **why);

/* Completion of api_pairing_code: r.code API_OK with `code` ("ABCD-EFGH")
 * and the seconds it stays valid, or an error (API_ERR_ALREADY_LINKED when
 * linked, API_ERR_RATE_LIMITED within 10 s of the last request,
 * API_ERR_BAD_REQUEST, API_ERR_UNREACHABLE, API_ERR_TIMEOUT,
 * API_ERR_SHUTTING_DOWN, API_ERR_INTERNAL) with a message and the session's
 * snapshot (the callee clears r). */
typedef void (*api_pairing_code_cb)(api_result_t r, const char *code, int expires_in, void *arg);

typedef struct api_pc api_pc_t;

/* Asks for a pairing code for `phone` (digits, from api_normalize_phone) on
 * session `name`: starts a registration when none runs, waits for WhatsApp's
 * answer, and publishes the code in the snapshots (QR_READY, the QR still
 * valid). Returns a handle for api_pairing_code_cancel, or NULL when cb was
 * already called (an error found at once). Loop thread. */
api_pc_t *api_pairing_code(api_t *api, const char *name, const char *phone, api_pairing_code_cb cb,
                           void *arg);

/* The caller went away: cb is never called (the code is still published). */
void api_pairing_code_cancel(api_pc_t *p);

/* Seconds (rounded up) the snapshot's pairing code stays valid at now_ms;
 * 0 when there is none or it expired. */
int64_t api_link_code_expires_in(const sess_snapshot_t *s, int64_t now_ms);

/* Subscribes to session `name` for a watcher (SSE, WebSocket, gRPC stream).
 * Any thread. Returns NULL with *code set (API_ERR_NOT_FOUND, ...). */
sess_sub_t *api_watch(api_t *api, const char *name, const sess_sub_opts_t *opts, api_code_t *code);

/* --- resuming streams (SSE Last-Event-ID and ?since=, WebSocket ?since=,
 * gRPC since_seq) ---
 *
 * A stream of one session resumes after a per-session `seq`; a stream of
 * every session after a global event id. The missed events come first, in
 * order, then the live ones, with no gap and no duplicate at the seam. When
 * events after the cursor are no longer kept (EVENT_RETENTION), the first
 * snapshot handed out carries gap_from..gap_to and every transport says so
 * before it (SSE "event: gap", a WebSocket {"type":"gap"} message, gRPC
 * Status.gap_from/gap_to). A cursor at or past the newest event waits for
 * the next change; one from an earlier store (above anything ever given)
 * is taken as 0. */

/* Subscribes to session `name` (NULL or "" = "default") resuming after
 * `since` (0: the current snapshot first, as api_watch). Any thread.
 * Returns NULL with *code set (API_ERR_NOT_FOUND, API_ERR_INTERNAL). */
sess_sub_t *api_watch_since(api_t *api, const char *name, uint64_t since,
                            const sess_sub_opts_t *opts, api_code_t *code);

/* The message of a malformed resume cursor (API_ERR_BAD_REQUEST). */
#define API_BAD_SINCE_MESSAGE                                                                      \
    "Invalid since / Last-Event-ID (a decimal event number, 0 to 18446744073709551615)"

/* Parses a resume cursor: 1 to 20 decimal digits, nothing else (no sign,
 * no spaces), at most UINT64_MAX. Returns 0 with *out set, or -1. Any
 * thread. */
int api_parse_since(const char *s, size_t len, uint64_t *out);

/* Decides where an HTTP stream resumes from its Last-Event-ID header and
 * its ?since= parameter (either NULL when absent). The header wins: a
 * browser's EventSource reconnects to the same URL (its ?since= unchanged)
 * and sends the id of the last event it received, which is newer. An
 * empty header counts as absent (what an EventSource whose last id was
 * reset would send); an empty ?since= is malformed. Returns API_OK with
 * *since set (0 when neither is given), or API_ERR_BAD_REQUEST (message
 * API_BAD_SINCE_MESSAGE). Any thread. */
api_code_t api_resume_cursor(const char *last_event_id, size_t lei_len, const char *since,
                             size_t since_len, uint64_t *out);

/* --- the passkey step of linking (protocol doc 11.6) --- */

/* The WebAuthn request options of the passkey step waiting for an
 * assertion (r.snap->passkey_options, a JSON object); API_ERR_CONFLICT (with
 * the snapshot) when none is pending, API_ERR_NOT_FOUND for an unknown
 * session. Any thread. */
api_result_t api_passkey_options(api_t *api, const char *name);

/* Completion of api_passkey_response; the callee owns r and clears it. */
typedef void (*api_passkey_cb)(api_result_t r, void *arg);

/* Hands a WebAuthn assertion (json[0..len), as PublicKeyCredential.toJSON()
 * gives it) to the session's passkey step and calls cb once, possibly
 * before returning: API_OK with the snapshot when WhatsApp accepted it (the
 * confirmation code follows in a later snapshot), API_ERR_BAD_REQUEST for a
 * malformed or missing assertion or one for another challenge, API_ERR_CONFLICT when
 * no passkey step waits for one (or one is being sent), API_ERR_UNREACHABLE
 * when WhatsApp refused it or the connection ended first, API_ERR_TIMEOUT,
 * API_ERR_NOT_FOUND, API_ERR_INTERNAL. `message` says which. Loop thread. */
void api_passkey_response(api_t *api, const char *name, const char *json, size_t len,
                          api_passkey_cb cb, void *arg);
/* The range of a reconnect's wait (HTTP waitMs, gRPC wait_ms; 0 there means
 * the configured default). */
#define API_RECONNECT_WAIT_MIN_MS 1
#define API_RECONNECT_WAIT_MAX_MS 300000

/* Returns the number of reconnects waiting for their answer now (loop
 * thread). */
size_t api_reconnect_waits(const api_t *api);

/* Parses the optional JSON body of reconnect, {"keepCredentials":bool,
 * "waitMs":int}, leaving *keep and *wait_ms unchanged for absent members.
 * Returns 0, or -1 with a static reason in *why (malformed JSON, invalid
 * UTF-8, not an object, wrong types, waitMs outside 1..300000). */
int api_parse_reconnect_body(const char *body, size_t len, int *keep, unsigned *wait_ms,
                             const char **why);

/* --- JSON views (yajl). Each returns a malloc'd NUL-terminated string the
 * caller frees, or NULL when out of memory. --- */

/* {"success":true,"data":{connected,state,hasQR,detail,since,sinceMs,seq,
 * expiresIn[,account,passkeyOptions,linkCode,linkCodeExpiresIn]}}; the
 * account, the passkey step's WebAuthn options (an object) and the pairing
 * or confirmation code (null / 0 when none is valid) only when
 * `with_account` (a caller holding the key). */
char *api_json_status(const sess_snapshot_t *s, int with_account, int64_t now_ms);

/* {"success":true,"data":{"qrCode":"data:image/png;base64,...","expiresIn":N}}
 * with `message` added at top level when non-NULL (reconnect's body). */
char *api_json_qr(const sess_snapshot_t *s, const char *message, int64_t now_ms);

/* {"success":true,"message":...,"data":{status as api_json_status}}. */
char *api_json_status_message(const sess_snapshot_t *s, const char *message, int with_account,
                              int64_t now_ms);

/* {"success":true,"data":{"passkeyOptions":{...},"state":...,"detail":...}}
 * for a snapshot with passkey options. */
char *api_json_passkey(const sess_snapshot_t *s);
/* {"success":true,"message":API_PAIRING_CODE_MESSAGE,"data":{"pairingCode":
 * code,"expiresIn":N}}. */
char *api_json_pairing_code(const char *code, int expires_in);

/* {"success":false,"message":...[,"state":...,"detail":...]}; the state
 * fields only when `s` is non-NULL. */
char *api_json_error(const char *message, const sess_snapshot_t *s);

/* {"success":true,"message":...} (an answer with nothing more to say, e.g.
 * a deleted session). */
char *api_json_message(const char *message);

/* {"success":true,"data":[{status data of each session}, ...]} (GET
 * /api/sessions); the accounts only with `with_account`. */
char *api_json_sessions(sess_snapshot_t *const *v, size_t n, int with_account, int64_t now_ms);

/* {"success":true,"message":...,"data":{status...,"key":key}} (the answer
 * to a created session or a rotated key). */
char *api_json_session_key(const sess_snapshot_t *s, const char *message, const char *key,
                           int64_t now_ms);

/* The event object streamed over SSE and WebSocket: the status data object
 * ({"seq":..,"state":..,"connected":..,"hasQR":..,...}) plus "eventId",
 * the event's global id (sess_snapshot_event_id; omitted when 0): the
 * cursor of streams of every session. */
char *api_json_event(const sess_snapshot_t *s, int with_account, int64_t now_ms);

/* The notice of events no longer kept that precedes the first snapshot of
 * a resumed stream (s->gap_to != 0): {"from":A,"to":B} (SSE "event: gap"
 * data), or with `typed` {"type":"gap","from":A,"to":B} (a WebSocket
 * message, told apart from status events, which have no "type"). */
char *api_json_gap(const sess_snapshot_t *s, int typed);

/* --- webhooks (api/webhooks.c) ---
 *
 * Targets are the admin's (any session or every session) or a session's
 * (a session key creates, lists, tests, replays and deletes the targets of
 * its own session only; another session's target is "not found"). Loop
 * thread, except api_parse_webhook_body and the JSON views (any thread). */

/* Who is calling, once the key is checked: the admin, or the session whose
 * key it is. */
typedef struct {
    api_scope_t scope; /* API_SCOPE_ADMIN or API_SCOPE_SESSION */
    char session[65];  /* the key's session (API_SCOPE_SESSION) */
} api_principal_t;

/* Decides who a caller is for routes that serve the admin and every
 * session (the webhooks API): the admin key (or no key configured), or a
 * session's own key. Wrong keys are counted as api_authorize does.
 * Returns API_OK with *who set, API_ERR_UNAUTHENTICATED or
 * API_ERR_RATE_LIMITED. Any thread. */
api_code_t api_authorize_principal(api_t *api, api_caller_t *caller, api_principal_t *who);

/* The body of POST /api/webhooks, parsed. */
typedef struct {
    char *url, *secret, *session;    /* malloc'd; secret and session NULL when absent */
    char *events[WH_EVENTS_MAX + 1]; /* NULL-terminated */
} api_webhook_req_t;

/* Parses {"url":..,"secret":..,"events":[..],"session":..} (url required;
 * other members optional; unknown members refused). Returns 0, or -1 with
 * a static reason in *why. Free with api_webhook_req_clear. */
int api_parse_webhook_body(const char *body, size_t len, api_webhook_req_t *out, const char **why);

/* Releases a parsed body (the secret is wiped). */
void api_webhook_req_clear(api_webhook_req_t *r);

/* Completion of api_webhook_create: API_OK with the target and, when the
 * key was generated, its secret (shown once), or the error and its
 * message. Everything is borrowed for the callback. */
typedef void (*api_webhook_created_cb)(void *arg, api_code_t code, const char *message,
                                       const wh_target_info_t *t, const char *secret);

/* Creates a target (POST /api/webhooks, CreateWebhook). A session key
 * creates for its own session only (a missing session means its own; an
 * other one is API_ERR_FORBIDDEN); the session must exist
 * (API_ERR_NOT_FOUND). Refusals: API_ERR_BAD_REQUEST (URL, private
 * address, secret, filter: the message says which), API_ERR_LIMIT
 * (MAX_WEBHOOKS). cb runs once, possibly before this returns. */
void api_webhook_create(api_t *api, const api_principal_t *who, const api_webhook_req_t *req,
                        api_webhook_created_cb cb, void *arg);

/* The targets the caller may see (all for the admin, its session's for a
 * session key), malloc'd in *out (caller frees), from the sender's memory
 * (no store round trip). API_OK or API_ERR_INTERNAL. */
api_code_t api_webhook_list(api_t *api, const api_principal_t *who, wh_target_info_t **out,
                            size_t *n);

/* Deletes a target with its queue (DELETE /api/webhooks/{id},
 * DeleteWebhook). cb runs once on the loop thread (possibly before this
 * returns) with r.code API_OK (r.message "Webhook deleted"), or
 * API_ERR_NOT_FOUND (r.message "No such webhook": an unknown id or one
 * the caller may not see), API_ERR_SHUTTING_DOWN or API_ERR_INTERNAL (the
 * store failed). r.snap is NULL. `id` is copied. Loop thread. */
void api_webhook_delete(api_t *api, const api_principal_t *who, const char *id, api_done_cb cb,
                        void *arg);

/* Completion of api_webhook_replay: API_OK with n, how many deliveries are
 * pending again, or the error and its message (NULL: the code's). */
typedef void (*api_webhook_replay_cb)(void *arg, api_code_t code, const char *message, uint64_t n);

/* Re-queues the target's dead letters (and with since_id > 0 the stored
 * events after that id) (POST /api/webhooks/{id}/replay, ReplayWebhook).
 * cb runs once on the loop thread (possibly before this returns). Errors
 * as api_webhook_delete's. `id` is copied. Loop thread. */
void api_webhook_replay(api_t *api, const api_principal_t *who, const char *id, uint64_t since_id,
                        api_webhook_replay_cb cb, void *arg);

/* Completion of api_webhook_test (API_OK: r says what the attempt gave). */
typedef void (*api_webhook_test_cb)(void *arg, api_code_t code, const char *message,
                                    const wh_test_result_t *r);

typedef struct api_webhook_wait api_webhook_wait_t;

/* The wait of a test call when the caller names none (HTTP without
 * waitMs, gRPC wait_ms 0), and its bound. */
#define API_WEBHOOK_WAIT_DEFAULT_MS 10000u
#define API_WEBHOOK_WAIT_MAX_MS 60000u

/* Queues a "webhook.test" event to the target only (stored by the sender's
 * group commit, see wh_test) and waits up to wait_ms (at most
 * API_WEBHOOK_WAIT_MAX_MS) for its first attempt; wait_ms 0 answers once
 * the event is stored ("queued": answered false, eventId set). Returns a
 * handle for api_webhook_test_cancel, or NULL when cb already ran. */
api_webhook_wait_t *api_webhook_test(api_t *api, const api_principal_t *who, const char *id,
                                     unsigned wait_ms, api_webhook_test_cb cb, void *arg);

/* The caller went away: cb will not run. NULL is ignored. */
void api_webhook_test_cancel(api_webhook_wait_t *t);

/* Returns 1 when `id` has the form of a webhook id (WH_GLOBAL_ID or
 * "wh_" + 24 hex digits), else 0. Any thread. */
int api_webhook_id_ok(const char *id);

/* JSON views: {"success":true[,"message":..],"data":{target[,"secret"]}},
 * {"success":true,"data":[targets]}, the test answer
 * {"success":true,"message":..,"data":{"delivered":..,"status":..,
 * "error":..,"eventId":..,"answered":..}} and the replay answer
 * {"success":true,"message":..,"data":{"requeued":N}}. malloc'd. */
char *api_json_webhook(const wh_target_info_t *t, const char *message, const char *secret);
char *api_json_webhooks(const wh_target_info_t *v, size_t n);
char *api_json_webhook_test(const wh_test_result_t *r);
char *api_json_webhook_replay(uint64_t n);

/* What the registry's render hook makes of each QR: PNG and data URL. */
typedef struct {
    uint8_t *png;
    size_t png_len;
    char *data_url;
} api_qr_render_t;

/* Render hooks for sess_registry_new (render once per QR). */
sess_render_hooks_t api_render_hooks(void);

/* --- the cluster (several nodes on PostgreSQL) --- */

typedef struct api_cluster_call api_cluster_call_t;

/* Reads the cluster's state (nodes, their sessions, lease ages; see
 * clu_status for the JSON, with "clustered":true) and calls done(arg, code,
 * json) once on the loop thread: API_OK with a malloc'd JSON object the
 * callback owns ({"clustered":false,"nodes":[],"sessions":[]} for a single
 * node on SQLite), API_ERR_UNREACHABLE when the database cannot be read.
 * Returns a handle to cancel with (NULL when done already ran). */
api_cluster_call_t *
api_cluster_status(api_t *api, void (*done)(void *arg, api_code_t code, char *json), void *arg);

/* The caller went away: done is not called. */
void api_cluster_status_cancel(api_cluster_call_t *call);

/* Asks every node to shed what it holds above its fair share (the others
 * claim it): API_OK, or API_ERR_CONFLICT when not a cluster. */
api_code_t api_cluster_rebalance(api_t *api);

/* The header that carries the node secret on a forwarded command (HTTP
 * and gRPC forward over HTTP). */
#define API_NODE_SECRET_HEADER "X-WAGW-Node-Secret"

/* 1 when `v` (len bytes) is the cluster's node secret (constant time); 0
 * otherwise or when none is configured. Any thread. */
int api_node_secret_ok(const api_t *api, const char *v, size_t len);

/* The node secret to send with a forwarded command (NULL: none). */
const char *api_node_secret(const api_t *api);

/* Where a command for `session` ("" = "default") goes: 1 with the
 * advertise URL of the node that runs it in url, when another node runs it
 * and a node secret is configured; 0 when this node answers (it runs the
 * session, no other node is known to, or there is no cluster). Any
 * thread. */
int api_forward_to(api_t *api, const char *session, char *url, size_t len);

/* How long the node that runs a session may take to answer a forwarded
 * command (a reconnect waits there for its QR, RECONNECT_WAIT_MS). */
#define API_FORWARD_TIMEOUT_MS 65000

/* A command passed on to the node that runs its session. */
typedef struct {
    const char *method; /* "POST", "DELETE" or "GET" */
    const char *url;    /* that node's ADVERTISE_URL + the path (and query) */
    const char *key;    /* the caller's X-API-Key (key_len bytes), or NULL */
    size_t key_len;
    const char *content_type; /* its Content-Type (ct_len bytes), or NULL: none */
    size_t ct_len;
    const void *body; /* the body (body_len bytes), or NULL */
    size_t body_len;
    unsigned timeout_ms; /* 0 = API_FORWARD_TIMEOUT_MS */
} api_forward_req_t;

/* Sends `r` through `httpc` (the one hop of HTTP and gRPC forwarding): the
 * caller's key and content type, the node secret that marks the request
 * as forwarded (API_NODE_SECRET_HEADER), connect within 2 s, an answer of
 * at most 1 MiB, the connection kept for the next command. done(arg, res)
 * runs once on the loop thread, as httpc's; *out is the handle to cancel
 * (httpc_cancel). Returns API_OK; API_ERR_UNAUTHENTICATED when the key
 * holds a control character; API_ERR_SHUTTING_DOWN when httpc is closing;
 * API_ERR_INTERNAL without a node secret or memory (done is then not
 * called). Loop thread. */
api_code_t api_forward_send(api_t *api, httpc_t *httpc, const api_forward_req_t *r,
                            void (*done)(void *arg, const httpc_result_t *res), void *arg,
                            httpc_req_t **out);

#endif
