/* The WhatsApp companion life cycle behind a session: it owns the session's
 * credentials in the store and one protocol client at a time, turns what the
 * client reports into snapshots (DISCONNECTED / CONNECTING / QR_READY /
 * CONNECTED + detail), reconnects with capped exponential backoff and jitter,
 * wipes the credentials on a logged-out verdict, and never loops on QR
 * expiry or on being replaced. Its store calls run as jobs on the store's
 * queue (session/storeq.h), so the loop never waits on the database: a
 * connection starts only once the credentials it uses are stored, and jobs
 * run in the order queued (a load sees every save queued before it).
 * Loop-thread only. */
#ifndef WG_SESSION_DRIVER_H
#define WG_SESSION_DRIVER_H

#include "session/gate.h"
#include "session/session.h"
#include "session/store/store.h"
#include "session/version.h"
#include "session/wa/client.h"
#include "session/storeq.h"
#include "session/wa/framesocket.h"

typedef struct {
    wa_fsock_ctx_t *fsock; /* shared WebSocket context (not owned) */
    store_t *store;        /* credential store (not owned) */
    /* The store's job queue (not owned; it must outlive the driver's jobs:
     * close it after the sessions are freed): every store call goes through
     * it. NULL: the store is called at once on the loop thread. */
    sess_q_t *q;
    wa_client_config_t client; /* URL, trusted root, version, lifetimes */
    /* The WhatsApp Web version policy (not owned): each connection waits
     * until it is ready and announces its current version, and a 405 asks
     * it for a newer one (one retry). NULL: client.version, 405 final. */
    sess_version_t *version;
    unsigned backoff_min_ms; /* first retry delay; 0 = 1000 */
    unsigned backoff_max_ms; /* cap; 0 = 60000 */
    sess_gate_t *gate;       /* shared connection-rate gate (not owned); NULL = none */
} sess_driver_opts_t;

/* Attaches a driver to `s` (sess_set_driver); the session then owns it. The
 * options are copied (the URL string too). Returns 0 or -1 (out of memory).
 * Nothing connects until sess_start. The driver's stop completes once the
 * writes it queued have been made (a pending load is cancelled); destroying
 * it cancels what it queued, and the jobs still running then end without
 * touching it. */
int sess_driver_attach(sess_t *s, const sess_driver_opts_t *opts);

/* The delay before retry number `attempt` (0-based): min * 2^attempt capped
 * at max, then +-20% jitter from `rnd` (0..65535). Exposed for tests. */
unsigned sess_driver_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, unsigned rnd);

#endif
