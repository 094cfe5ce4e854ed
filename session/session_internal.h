/* What session.c shares with event.c (not part of the session interface). */
#ifndef WG_SESSION_SESSION_INTERNAL_H
#define WG_SESSION_SESSION_INTERNAL_H

#include "session/session.h"

/* A new snapshot (refcount 1) of session `name` with `detail` and nothing
 * else set; NULL when out of memory. */
sess_snapshot_t *sess_snapshot_new_(const char *name, const char *detail);

/* A new QR (refcount 1) rendered with the registry's hooks; NULL when out
 * of memory. */
sess_qr_t *sess_qr_new_(sess_registry_t *reg, const char *text, int64_t expires_at_ms);

#endif
