/* The protobuf views of the gRPC API (proto/gateway.proto): what a gRPC
 * caller is shown of a snapshot (the linked account and the linking secrets
 * only with a key), the message of every answer and the details of every
 * error. Decided here, once, so that server/grpc only encodes: each view
 * fills a caller-provided struct whose protobuf-c message borrows its
 * strings from the snapshot (keep the snapshot referenced until the message
 * is packed). Any thread. */
#ifndef WG_API_PB_H
#define WG_API_PB_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "proto/gateway.pb-c.h"

/* Returns 1 when a caller of `scope` may see what a key protects (the
 * linked account, the pairing code, the passkey options), else 0. */
int api_pb_sees_account(api_scope_t scope);

/* A Status message and the LinkedAccount it may point to. */
typedef struct {
    Wagateway__V1__Status st;
    Wagateway__V1__LinkedAccount acc;
} api_pb_status_t;

/* Fills v with the Status of `s` as a caller of `scope` sees it at now_ms. */
void api_pb_status(api_pb_status_t *v, const sess_snapshot_t *s, api_scope_t scope, int64_t now_ms);

/* Fills q with the snapshot's QR (text, PNG, data URL, seconds left). */
void api_pb_qr(Wagateway__V1__QRCode *q, const sess_snapshot_t *s, int64_t now_ms);

/* The reply of a started Reconnect (r->code API_OK): its message, the
 * status after it started (never with the account) and the new QR when
 * there is one. */
typedef struct {
    Wagateway__V1__ReconnectReply rep;
    api_pb_status_t status;
    Wagateway__V1__QRCode qr;
} api_pb_reconnect_t;

void api_pb_reconnect(api_pb_reconnect_t *v, const api_result_t *r, int64_t now_ms);

/* The reply of Logout (r->code API_OK): its message and the state after
 * it. */
typedef struct {
    Wagateway__V1__LogoutReply rep;
    api_pb_status_t status;
} api_pb_logout_t;

void api_pb_logout(api_pb_logout_t *v, const api_result_t *r, int64_t now_ms);

/* The reply of RequestPairingCode (`code` is borrowed). */
void api_pb_pairing_code(Wagateway__V1__PairingCodeReply *rep, const char *code, int expires_in);

/* The reply of GetPasskeyOptions for a snapshot with passkey options. */
void api_pb_passkey_options(Wagateway__V1__PasskeyOptions *o, const sess_snapshot_t *s);

/* The reply of SendPasskeyAssertion for an accepted assertion (r.code
 * API_OK): api's message and the state after it, as `scope` sees it. */
typedef struct {
    Wagateway__V1__PasskeyAssertionReply rep;
    api_pb_status_t status;
} api_pb_passkey_t;

void api_pb_passkey(api_pb_passkey_t *v, const api_result_t *r, api_scope_t scope, int64_t now_ms);

/* --- sessions --- */

/* The reply of CreateSession (created: r->code API_OK; `key` borrowed). */
typedef struct {
    Wagateway__V1__CreateSessionReply rep;
    api_pb_status_t status;
} api_pb_create_session_t;

void api_pb_create_session(api_pb_create_session_t *v, const api_result_t *r, const char *key,
                           int64_t now_ms);

/* The reply of RotateSessionKey (r->code API_OK; `key` borrowed), the
 * status as `scope` sees it. */
typedef struct {
    Wagateway__V1__RotateSessionKeyReply rep;
    api_pb_status_t status;
} api_pb_rotate_key_t;

void api_pb_rotate_key(api_pb_rotate_key_t *v, const api_result_t *r, const char *key,
                       api_scope_t scope, int64_t now_ms);

/* The reply of DeleteSession (r->code API_OK). */
void api_pb_delete_session(Wagateway__V1__DeleteSessionReply *rep, const api_result_t *r);

/* ListSessionsRequest.state as api_session_list's filter: NULL for
 * STATE_UNSPECIFIED (every session), a state name ("QR_READY") for the four
 * states. Returns 0, or -1 for a value outside the enum. */
int api_pb_state_filter(int state, const char **name);

/* The reply of ListSessions: one Status per snapshot, as `scope` sees it. */
typedef struct {
    Wagateway__V1__ListSessionsReply rep;
    api_pb_status_t *status; /* malloc'd, one per session */
    Wagateway__V1__Status **list;
} api_pb_sessions_t;

/* Fills v from v[0..n) (borrowed until the message is packed). Returns 0,
 * or -1 when out of memory. Release with api_pb_sessions_clear. */
int api_pb_sessions(api_pb_sessions_t *v, sess_snapshot_t *const *snaps, size_t n,
                    api_scope_t scope, int64_t now_ms);

void api_pb_sessions_clear(api_pb_sessions_t *v);

/* Why a stream of session `session` (NULL: of every session) ended when its
 * subscription did: API_ERR_NOT_FOUND with "The session was deleted" when
 * it no longer exists, else API_ERR_SHUTTING_DOWN (the service is
 * stopping). r.snap is NULL. Any thread. */
api_result_t api_pb_stream_end(api_t *api, const char *session);

/* Writes the details of an error answer (the gRPC status message) into
 * buf and returns buf: r->message or the code's default message; for
 * API_ERR_NO_QR the state and detail it was asked in; for other errors
 * without a message of their own, the session's detail when it has one. */
const char *api_pb_error(const api_result_t *r, char *buf, size_t len);

/* --- webhooks --- */

/* A Webhook message borrowing its strings from `t` (keep t until packed)
 * and its event list from v itself. */
typedef struct {
    Wagateway__V1__Webhook w;
    char buf[512];
    char *events[WH_EVENTS_MAX + 1];
} api_pb_webhook_t;

/* Fills v with target t. */
void api_pb_webhook(api_pb_webhook_t *v, const wh_target_info_t *t);

/* A ListWebhooksReply over t[0..n) (malloc'd parts; api_pb_webhooks_clear). */
typedef struct {
    Wagateway__V1__ListWebhooksReply rep;
    api_pb_webhook_t *items;
    Wagateway__V1__Webhook **list;
} api_pb_webhooks_t;

/* Fills v; 0, or -1 when out of memory (v is then clear). */
int api_pb_webhooks(api_pb_webhooks_t *v, const wh_target_info_t *t, size_t n);

/* Releases what api_pb_webhooks allocated. */
void api_pb_webhooks_clear(api_pb_webhooks_t *v);

/* A TestWebhookReply of a test call's outcome (strings borrowed from r). */
void api_pb_webhook_test(Wagateway__V1__TestWebhookReply *rep, const wh_test_result_t *r);

#endif
