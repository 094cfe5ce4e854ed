/* The inside of one WhatsApp connection (wa_client_t), shared by the files
 * that make up the protocol engine, one per protocol step as in whatsmeow:
 *   client.c     connection life, the node dispatch tables, iq requests and
 *                their answers, sending
 *   verdict.c    stream errors and failures classified into verdicts
 *   keepalive.c  pings from the handshake on, the login watchdog
 *   qrchan.c     pair-device refs as rotating QR codes, secret refresh
 *   pairflow.c   pair-success: verify, persist, countersign
 *   passkeyflow.c the passkey step of linking (request, prologue,
 *                continuation, encrypted pairing request)
 *   paircodeflow.c  linking by pairing code: companion_hello, primary_hello,
 *                companion_finish
 *   acks.c       which stanzas get an <ack>, and its attributes
 * Nothing outside session/wa includes this header. Loop-thread only. */
#ifndef WG_SESSION_WA_CLIENT_INTERNAL_H
#define WG_SESSION_WA_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "session/wa/client.h"
#include "session/wa/noisesocket.h"

#define WA_CLIENT_MAX_REFS 16
#define WA_CLIENT_MAX_PENDING 32

/* Called with the answer to an iq we sent: `resp` is the <iq type="result">
 * or <iq type="error"> node (ok = 1 for a result), or NULL (ok = 0) when the
 * request timed out or the connection ended first (then `c` may be done:
 * only clean up). `arg` is what wa_client_send_iq was given. */
typedef void (*wa_client_iq_cb)(wa_client_t *c, const wa_node_t *resp, int ok, void *arg);

typedef struct {
    char id[32];
    wa_client_iq_cb cb; /* NULL: slot free */
    void *arg;
    int64_t deadline_ms; /* 0: no deadline */
} wa_client_pending_t;

/* A handler of one kind of incoming node or notification. */
typedef void (*wa_client_handler_fn)(wa_client_t *c, const wa_node_t *n);

struct wa_client {
    wa_client_config_t cfg;
    wa_client_hooks_t hooks;
    wa_nsock_t *sock;
    char *jid; /* NULL on a registration connection */
    uint8_t ident_priv[32], ident_pub[32], noise_pub[32], adv_secret[32];
    uint32_t reg_id, spk_id;
    uint8_t spk_pub[32], spk_sig[64];

    /* timers: QR rotation (or the passkey step's deadline once the QR codes
     * stopped for it), keepalive, login watchdog, iq deadlines */
    uv_timer_t qr_timer, ka_timer, wd_timer, iq_timer;
    int timers_open;

    /* connection state */
    int open;      /* handshake completed */
    int logged_in; /* <success> seen on a login connection */
    int done;      /* finished: no hook runs any more */
    int paired;    /* pair-device-sign sent; a restart is expected */
    /* pair-success stored off the loop (on_paired said pending): the iq id
     * and the result the answer needs, kept until wa_client_pair_answer */
    int pair_pending;
    char *pair_id;
    wa_pair_result_t pair_res;
    int logging_out; /* remove-companion-device sent */
    uint32_t id_counter;
    uint16_t id_prefix[2];
    wa_client_pending_t pending[WA_CLIENT_MAX_PENDING];

    /* keepalive (keepalive.c) */
    char ping_id[32]; /* the ping waiting for its answer, "" when none */
    int64_t ping_sent_ms;
    unsigned ping_misses; /* consecutive pings without an answer in time */
    int64_t last_rx_ms;   /* last node received */
    int64_t last_ok_ms;   /* last answered ping (or the handshake) */

    /* QR codes (qrchan.c) */
    char *refs[WA_CLIENT_MAX_REFS];
    size_t nrefs, next_ref;
    int64_t qr_expires_at_ms; /* expiry of the QR on screen, 0 when none */
    int qr_shown;             /* index + 1 of the ref on screen, 0 when none */
    int adv_locked;           /* a pending pair-success depends on the secret: no refresh */

    /* extensions owned by their files */
    void *paircode; /* pairing-code flow state (paircode flow), NULL when idle */
    void *passkey;  /* passkey flow state, NULL when idle */
};

/* --- client.c --- */

/* Ends the connection with verdict `v`: stops the timers, runs on_closed
 * and frees the client once its handles are closed. Idempotent. */
void wa_client_finish(wa_client_t *c, const wa_verdict_t *v);

/* Fills *v. `message` must be static text. */
void wa_client_verdict(wa_verdict_t *v, const char *detail, int code, wa_retry_t retry, int wipe,
                       const char *message);

/* Writes a new request id into buf ("<u16>.<u16>-<counter>"), returns buf. */
const char *wa_client_next_id(wa_client_t *c, char *buf, size_t len);

/* A new <iq id= to="@s.whatsapp.net" type= [xmlns=]> (NULL when out of
 * memory). */
wa_node_t *wa_client_iq(const char *id, const char *type, const char *xmlns);

/* Sends `n` and frees it (NULL is ignored). Returns 0 or -1. */
int wa_client_send(wa_client_t *c, wa_node_t *n);

/* Sends the iq `q` (its id attribute is replaced by a fresh one, written
 * to id_out when non-NULL) and registers `cb` for its answer, with a
 * deadline of timeout_ms (0 = none). Frees `q`. Returns 0, or -1 when it
 * could not be sent (cb is then not called). */
int wa_client_send_iq(wa_client_t *c, wa_node_t *q, unsigned timeout_ms, wa_client_iq_cb cb,
                      void *arg, char *id_out, size_t id_len);

/* Answers the server's iq `req` with an empty result (to= its from). */
void wa_client_send_result(wa_client_t *c, const wa_node_t *req);

/* Answers the server's iq `req` with <error code= text=/>. */
void wa_client_send_error(wa_client_t *c, const wa_node_t *req, int code, const char *text);

/* Current wall-clock time in ms since the epoch. */
int64_t wa_client_now_ms(void);

/* --- verdict.c: see wa_client_classify in client.h --- */

/* --- keepalive.c --- */

/* Starts pings and the login watchdog once the handshake completed. */
void wa_client_keepalive_start(wa_client_t *c);

/* Something arrived: the link is alive. */
void wa_client_keepalive_rx(wa_client_t *c);

/* The server said what this connection is (pair-device, success, failure):
 * the login watchdog stops. */
void wa_client_watchdog_clear(wa_client_t *c);

/* --- qrchan.c --- */

/* <iq><pair-device> from the server: acknowledge, keep the refs, show the
 * first QR. */
void wa_client_qr_pair_device(wa_client_t *c, const wa_node_t *iq, const wa_node_t *pd);

/* <notification type="companion_reg_refresh">: a new adv secret, persisted
 * through on_adv_secret, and the QR on screen redrawn with it. */
void wa_client_qr_refresh(wa_client_t *c, const wa_node_t *n);

/* Stops rotating (paired, or the connection ends). */
void wa_client_qr_stop(wa_client_t *c);

/* Frees the refs. */
void wa_client_qr_free(wa_client_t *c);

/* Redraws the QR on screen with the current adv secret (same ref, same
 * remaining lifetime); nothing when none is shown. */
void wa_client_qr_redraw(wa_client_t *c);

/* --- pairflow.c --- */

/* <iq><pair-success>: verify with the current adv secret, persist through
 * on_paired, answer with pair-device-sign (or an error and close). */
void wa_client_pair_success(wa_client_t *c, const wa_node_t *iq);

/* Frees a pairing still waiting for its answer (the client goes away). */
void wa_client_pair_drop(wa_client_t *c);

/* Replaces the adv secret the next pair-success is checked against (after a
 * refresh, or derived by the pairing-code flow). Persists it through the
 * on_adv_secret hook; returns 0, or -1 when the owner could not store it
 * (the old secret stays). */
int wa_client_set_adv_secret(wa_client_t *c, const uint8_t secret[32]);

/* --- passkeyflow.c --- */

/* <notification type="passkey_prologue_request">: derive the handoff key,
 * mint a new adv secret, stop the QR codes and hand the options to the owner
 * (fetching them first when the notification has none). */
void wa_client_passkey_request(wa_client_t *c, const wa_node_t *n);

/* <notification type="crsc_continuation">: reveal the nonce, report the
 * confirmation code, send the encrypted pairing request. */
void wa_client_passkey_continuation(wa_client_t *c, const wa_node_t *n);

/* Frees the passkey flow's state (teardown). */
void wa_client_passkey_free(wa_client_t *c);
/* --- paircodeflow.c --- */

/* pair-device arrived: a pairing-code request waiting for it starts. */
void wa_client_paircode_pair_device(wa_client_t *c);

/* <notification type="link_code_companion_reg">: the phone's primary_hello
 * (already acked) is answered with companion_finish. */
void wa_client_paircode_notification(wa_client_t *c, const wa_node_t *n);

/* The connection ends: a request still waiting learns it (ECLOSED), a
 * worker job is orphaned, the state freed. Idempotent. */
void wa_client_paircode_end(wa_client_t *c);

/* --- acks.c --- */

/* Sends the <ack> whatsmeow sends for stanza `n` when its tag is one that
 * WhatsApp expects acknowledged (message, receipt, notification, call,
 * status, appdata). Returns 1 when an ack was sent, else 0. */
int wa_client_ack(wa_client_t *c, const wa_node_t *n);

#endif
