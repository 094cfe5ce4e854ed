/* Device removals that still have to reach WhatsApp. A session logged out
 * while the service could not reach WhatsApp shows DISCONNECTED/logged_out
 * at once and its credentials are wiped, except what the removal request
 * needs (the device JID and its noise key pair, kept by store_retire). This
 * module then logs in as that device on the next connection it can make,
 * sends remove-companion-device, and forgets the device once WhatsApp has
 * the request (or refuses the login because the device is already gone).
 * Failed attempts are retried with capped exponential backoff. It never
 * publishes session states. Loop-thread only. */
#ifndef WG_SESSION_REMOVAL_H
#define WG_SESSION_REMOVAL_H

#include "session/store/store.h"
#include "session/storeq.h"
#include "session/version.h"
#include "session/wa/client.h"
#include "session/wa/framesocket.h"

typedef struct sess_removal sess_removal_t;

/* Creates the remover of session `session`'s pending removals. `cfg` is
 * copied (its url string too); `fsock` and `store` are borrowed and must
 * outlive it. Nothing connects until sess_removal_kick. Returns NULL when
 * out of memory. */
sess_removal_t *sess_removal_new(wa_fsock_ctx_t *fsock, store_t *store,
                                 const wa_client_config_t *cfg, const char *session);

/* Creates a remover for the pending removals of sessions that no longer
 * exist (deleted while their device could not be reached): it takes the
 * rows for which accept(arg, session) returns 1. As sess_removal_new
 * otherwise. */
sess_removal_t *sess_removal_new_orphans(wa_fsock_ctx_t *fsock, store_t *store,
                                         const wa_client_config_t *cfg,
                                         int (*accept)(void *arg, const char *session), void *arg);

/* Makes each attempt announce the version policy's current WhatsApp Web
 * version instead of cfg->version (`v` borrowed; NULL = cfg->version). */
void sess_removal_set_version(sess_removal_t *r, sess_version_t *v);

/* Runs the remover's store calls (reading the pending removals, forgetting
 * one once sent) as jobs on `q` (borrowed; it must outlive the remover's
 * jobs: close it after freeing the remover). Before this is called, or with
 * NULL, they run at once on the loop thread. */
void sess_removal_set_queue(sess_removal_t *r, sess_q_t *q);

/* Looks for pending removals of the session (a read queued to the store;
 * it sees every write queued before it) and works through them if it is
 * idle (no read or attempt running, none waiting for its retry). */
void sess_removal_kick(sess_removal_t *r);

/* Number of removals sent to WhatsApp and forgotten so far. */
unsigned sess_removal_done_count(const sess_removal_t *r);

/* Closes the connection and the timer and cancels a pending read of the
 * removals; `done(arg)` runs once they are closed (the remover may be freed
 * then: its jobs still queued end without touching it). */
void sess_removal_stop(sess_removal_t *r, void (*done)(void *arg), void *arg);

/* Frees a stopped remover; its queued jobs are cancelled (a removal being
 * forgotten still is). NULL is ignored. */
void sess_removal_free(sess_removal_t *r);

#endif
