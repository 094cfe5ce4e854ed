/* The WhatsApp companion's protocol engine for one connection (whatsmeow's
 * pair.go, qrchan.go, keepalive.go and connectionevents.go together; the
 * files are listed in client_internal.h): it opens a noise socket with the
 * registration or login payload and then reacts to the server: pair-device
 * refs become QR codes that rotate on their lifetimes and are redrawn when
 * WhatsApp refreshes the adv secret; pair-success is verified, handed to the
 * owner to persist, and countersigned; a pairing code can be asked for
 * instead of a scan (linking by phone number); a passkey request is handed
 * to the owner and its assertion completed as whatsmeow's pair-passkey.go
 * does; success starts the connected life (passive/active, pre-key count
 * and upload); pings run from the handshake on, and a login watchdog ends a
 * connection the server stays silent on; every stanza WhatsApp expects
 * acknowledged is acked; stream errors and failures end the connection with
 * a classified verdict (section 7 of the
 * protocol doc). Loop-thread only; one wa_client_t per connection attempt. */
#ifndef WG_SESSION_WA_CLIENT_H
#define WG_SESSION_WA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/cert.h"
#include "session/wa/framesocket.h"
#include "session/wa/pair.h"
#include "session/wa/payload.h"

/* What the owner should do after a connection ended. */
typedef enum {
    WA_RETRY_NO = 0,      /* stay disconnected until asked */
    WA_RETRY_NOW = 1,     /* reconnect at once (restart requested) */
    WA_RETRY_BACKOFF = 2, /* reconnect after an increasing delay */
} wa_retry_t;

/* A classified end of connection. */
typedef struct {
    const char *detail; /* named detail, e.g. "logged_out", "replaced", "qr_timeout" */
    int code;           /* the server's code (stream:error code / failure reason), or 0 */
    wa_retry_t retry;
    int wipe;            /* the credentials are useless: delete them */
    int64_t expire_s;    /* temporary ban: seconds until it ends (0 if none) */
    const char *message; /* human-readable, no secrets */
} wa_verdict_t;

/* Classifies a server node that ends the stream (stream:error, failure,
 * xmlstreamend) into *out. Returns 1 when `node` is such a node, else 0. */
int wa_client_classify(const wa_node_t *node, wa_verdict_t *out);

/* The identity the connection uses (borrowed for wa_client_connect). */
typedef struct {
    const uint8_t *noise_priv, *noise_pub;
    const uint8_t *ident_priv, *ident_pub;
    uint32_t reg_id;
    uint32_t spk_id;
    const uint8_t *spk_pub, *spk_sig;
    const uint8_t *adv_secret;
    const char *jid; /* NULL: register (QR pairing); else log in as this device */
    /* Edge routing info from an earlier connection (sent as the "ED"
     * intro prefix, protocol doc 1.2); NULL when none. */
    const uint8_t *routing_info;
    size_t routing_info_len;
} wa_client_identity_t;

typedef struct {
    const char *url;
    const char *device_name; /* what the phone shows under Linked devices; NULL = "wa-gateway" */
    wa_cert_trust_t trust;
    wa_version_t version;
    unsigned connect_timeout_ms; /* 0 = 20000 */
    unsigned qr_first_ms;        /* 0 = 60000 */
    unsigned qr_next_ms;         /* 0 = 20000 */
    /* Keepalive: a ping every keepalive_ms (+-10% jitter) from the end of
     * the handshake on; a ping not answered within keepalive_timeout_ms is a
     * miss; keepalive_misses misses in a row end the connection
     * ("keepalive_timeout"). At the defaults a dead link is noticed within
     * 2 x 22 + 10 = 54 s, and one lost ping is forgiven. */
    unsigned keepalive_ms;         /* 0 = 20000 */
    unsigned keepalive_timeout_ms; /* 0 = 10000 */
    unsigned keepalive_misses;     /* 0 = 2 */
    /* Login watchdog: without pair-device, success or failure this long
     * after the handshake the connection ends ("timeout"). 0 = 30000. */
    unsigned login_timeout_ms;
    unsigned prekey_min;   /* upload when the server has fewer; 0 = 5 */
    unsigned prekey_batch; /* keys per upload; 0 = 50 (first upload: 812) */
} wa_client_config_t;

typedef struct wa_client wa_client_t;

/* One-time pre-keys the owner provides for an upload. */
typedef struct {
    uint32_t id;
    uint8_t pub[32];
} wa_client_prekey_t;

typedef struct {
    /* The socket opened and the handshake completed. */
    void (*on_open)(void *arg);
    /* A new QR to show, valid until expires_at_ms (wall clock). */
    void (*on_qr)(void *arg, const char *qr, int64_t expires_at_ms);
    /* pair-success verified: persist it before we answer. Return 0 when it
     * is stored (we answer now), WA_CLIENT_PAIR_PENDING when it is being
     * stored (res is borrowed for the call only: copy it; the answer waits
     * for wa_client_pair_answer), anything else to answer with an error
     * and close. */
    int (*on_paired)(void *arg, const wa_pair_result_t *res);
    /* Logged in: `lid` from the success node (may be NULL). */
    void (*on_connected)(void *arg, const char *lid);
    /* The server wants `want` more pre-keys (first upload or low count):
     * fill up to `want` keys into out (generated and persisted by the owner)
     * and return how many, or -1. 0 means none yet: the owner is making them
     * elsewhere and calls wa_client_upload_prekeys when they are ready. */
    int (*get_prekeys)(void *arg, size_t want, int first, wa_client_prekey_t *out);
    /* The upload of keys up to max_id was accepted. */
    void (*on_prekeys_uploaded)(void *arg, uint32_t max_id);
    /* WhatsApp replaced the adv secret (companion_reg_refresh, or derived
     * by a pairing-code or passkey flow): persist the 32 bytes and return
     * 0; on a non-zero return the old secret stays. May be NULL. */
    int (*on_adv_secret)(void *arg, const uint8_t secret[32]);
    /* Edge routing info to send as the "ED" prefix on later connections
     * (borrowed for the call). May be NULL. */
    void (*on_routing_info)(void *arg, const uint8_t *info, size_t len);
    /* Linking needs a passkey (protocol doc 11.6): hand the WebAuthn
     * request options (JSON, borrowed for the call) to the account owner;
     * the assertion comes back through wa_client_passkey_response. May be
     * NULL (the step then times out). */
    void (*on_passkey_request)(void *arg, const char *options_json);
    /* The passkey step's confirmation code ("XXXX-XXXX"), for the user to
     * compare with the one the phone shows. May be NULL. */
    void (*on_passkey_code)(void *arg, const char *code);
    /* The connection ended (always the last call; the client is gone). */
    void (*on_closed)(void *arg, const wa_verdict_t *v);
    void *arg;
} wa_client_hooks_t;

/* Connects with the registration (identity->jid == NULL) or login payload.
 * Returns NULL when it cannot start (bad URL, out of memory). */
wa_client_t *wa_client_connect(wa_fsock_ctx_t *ctx, const wa_client_config_t *cfg,
                               const wa_client_identity_t *id, const wa_client_hooks_t *hooks);

/* Sends the remove-companion-device request (when logged in) and closes;
 * on_closed follows with detail "logged_out". */
void wa_client_logout(wa_client_t *c);

/* What on_paired returns when the pairing is being stored. */
#define WA_CLIENT_PAIR_PENDING 1

/* The pairing that on_paired left pending is stored (ok 1): the phone is
 * answered with the countersigned device identity, as on_paired returning
 * 0 would have. ok 0: it could not be stored: the phone is answered with an
 * error, and the owner closes the client. Nothing happens when no pairing
 * is pending on `c`. Loop thread. */
void wa_client_pair_answer(wa_client_t *c, int ok);

/* Uploads up to `want` pre-keys now (asking get_prekeys for them), as the
 * client does by itself when the server runs low. For owners whose
 * get_prekeys answered 0 earlier. Returns 0 when an upload was sent, -1 when
 * the client is not logged in or got no keys. Loop thread. */
int wa_client_upload_prekeys(wa_client_t *c, size_t want, int first);

/* Results of the passkey step's response (wa_client_passkey_response). */
enum {
    WA_CLIENT_PASSKEY_OK = 0,
    WA_CLIENT_PASSKEY_EINVAL = -1,   /* malformed assertion, or for another challenge */
    WA_CLIENT_PASSKEY_ESTATE = -2,   /* no passkey request is waiting for an answer */
    WA_CLIENT_PASSKEY_EBUSY = -3,    /* an answer is being sent already */
    WA_CLIENT_PASSKEY_EREFUSED = -4, /* WhatsApp refused the ref request or the prologue */
    WA_CLIENT_PASSKEY_ETIMEOUT = -5, /* WhatsApp did not answer in time */
    WA_CLIENT_PASSKEY_ECLOSED = -6,  /* the connection ended first */
    WA_CLIENT_PASSKEY_EFAIL = -7,    /* out of memory or a crypto failure */
};

/* How long the passkey step may take from WhatsApp's request to
 * pair-success before the connection ends with "passkey_timeout". */
#define WA_CLIENT_PASSKEY_TIMEOUT_MS (5 * 60 * 1000)

/* Answers WhatsApp's passkey request with a WebAuthn assertion (json[0..len),
 * as PublicKeyCredential.toJSON() gives it): asks WhatsApp for a ref, then
 * sends <passkey_prologue> (see session/wa/passkey.h). Returns 0 when started:
 * cb(arg, rc) then runs exactly once, with WA_CLIENT_PASSKEY_OK when WhatsApp
 * accepted the prologue, or a WA_CLIENT_PASSKEY_E* code (also when the
 * connection ends first, during wa_client_close included). Returns a
 * negative code without calling cb when it cannot start (EINVAL, ESTATE,
 * EBUSY, ECLOSED, EFAIL). Loop thread. */
int wa_client_passkey_response(wa_client_t *c, const char *json, size_t len,
                               void (*cb)(void *arg, int rc), void *arg);
/* Results of a pairing-code request (the rc of wa_client_paircode_cb). */
enum {
    WA_CLIENT_PC_OK = 0,
    WA_CLIENT_PC_EINVAL = -1,   /* the phone number is not 1..15 digits */
    WA_CLIENT_PC_ESTATE = -2,   /* a login connection, or already paired */
    WA_CLIENT_PC_EBUSY = -3,    /* a request is running, or the phone is confirming a code */
    WA_CLIENT_PC_EREFUSED = -4, /* WhatsApp refused companion_hello (or answered nonsense) */
    WA_CLIENT_PC_ETIMEOUT = -5, /* WhatsApp did not answer in time */
    WA_CLIENT_PC_ECLOSED = -6,  /* the connection ended first */
    WA_CLIENT_PC_EFAIL = -7,    /* out of memory, crypto or worker failure */
};

/* The answer to wa_client_request_pairing_code: rc 0 with the code to show
 * ("ABCD-EFGH", borrowed for the call) and when it stops being usable (wall
 * clock ms: 180 s after it was made, or earlier when the connection's QR
 * codes run out first), or a negative WA_CLIENT_PC_* code (code NULL). */
typedef void (*wa_client_paircode_cb)(void *arg, int rc, const char *code, int64_t expires_at_ms);

/* Links by phone number (protocol doc 5.7, 11.5) on a registration
 * connection: makes a code, asks WhatsApp to notify the phone `phone` (digits
 * only, country code first) with companion_hello and calls cb once, on the
 * loop thread. A request made before pair-device arrived waits for it. When
 * the user types the code on the phone, the phone's primary_hello is
 * answered with companion_finish and the adv secret is replaced by the one
 * derived from the code (through on_adv_secret, the QR on screen redrawn
 * with it), so the pair-success that follows links as a QR scan does; the QR
 * stays usable meanwhile. A new request replaces an earlier code unless the
 * phone is confirming it. Returns 0 when started (cb follows, also when the
 * connection ends: ECLOSED), or EINVAL, ESTATE, EBUSY, EFAIL, ECLOSED (the
 * client is finished) with cb not called. The PBKDF2 work runs on the
 * loop's worker threads. */
int wa_client_request_pairing_code(wa_client_t *c, const char *phone, wa_client_paircode_cb cb,
                                   void *arg);

/* Closes now; no hook runs after this returns. */
void wa_client_close(wa_client_t *c);

/* The same, and gone(arg) runs once the connection is really gone (the
 * server sees it closed; see wa_fsock_close_then), at once when it is
 * already. For handing a session over: the next connection of the device
 * must not overlap this one. */
void wa_client_close_then(wa_client_t *c, void (*gone)(void *arg), void *arg);

#endif
