/* The session manager: the sessions of the service as a whole. It restores
 * every stored session at start (the session "default" always exists),
 * creates and deletes sessions at runtime (persisted in the store, at most
 * max_sessions), attaches a WhatsApp driver to each with the service's
 * settings and its own device name, lets every new connection through the
 * shared connection gate (CONNECT_RATE), and keeps each session's key hash
 * where any thread can check it (sess_key_matches). The api/ layer reaches
 * it through these calls only; nothing here knows HTTP or gRPC.
 * Loop-thread only unless a function says otherwise. */
#ifndef WG_SESSION_MANAGER_H
#define WG_SESSION_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "session/driver.h"
#include "session/session.h"

typedef struct sess_mgr sess_mgr_t;

/* Session names: [a-z0-9_-]{1,64}. */
#define SESS_NAME_MAX 64

/* The device name shown on the phone (Linked devices): at most this many
 * bytes of printable UTF-8. */
#define SESS_DEVICE_NAME_MAX 64

typedef struct {
    sess_registry_t *reg;      /* borrowed */
    store_t *store;            /* borrowed */
    sess_driver_opts_t driver; /* copied into each session's driver (its url too) */
    size_t max_sessions;       /* 0 = 1000 */
    const char *device_name;   /* default device name; NULL = "wa-gateway" */
} sess_mgr_opts_t;

/* Errors of the manager's calls (in addition to the SESS_E* codes). */
enum {
    SESS_MGR_EEXISTS = -20, /* a session of that name exists */
    SESS_MGR_ELIMIT = -21,  /* max_sessions reached */
    SESS_MGR_ENAME = -22,   /* not [a-z0-9_-]{1,64} */
    SESS_MGR_ESTORE = -23,  /* the store refused the change */
    SESS_MGR_ENOTFOUND = -24,
    SESS_MGR_EDEFAULT = -25, /* the session "default" cannot be deleted */
};

/* Returns a short English description of a SESS_MGR_E* or SESS_E* code. */
const char *sess_mgr_strerror(int code);

/* Returns 1 when `name` is a valid session name, else 0. Any thread. */
int sess_mgr_name_ok(const char *name);

/* Creates the manager (nothing is restored or started yet). Returns NULL
 * when out of memory. */
sess_mgr_t *sess_mgr_new(const sess_mgr_opts_t *opts);

/* Restores every stored session (creating "default" when it is missing),
 * attaches their drivers and starts them; the gate spaces out the
 * connections. Returns the number of sessions, or a negative code. */
int sess_mgr_restore(sess_mgr_t *m);

/* Creates, persists and starts a session. `device_name` may be NULL (the
 * default one); `key_hash` (SHA-256 of the session's key) may be NULL.
 * Returns 0 with the session in *out (owned by the registry), or
 * SESS_MGR_ENAME, SESS_MGR_EEXISTS, SESS_MGR_ELIMIT, SESS_MGR_ESTORE,
 * SESS_EINVAL (device name). */
int sess_mgr_create(sess_mgr_t *m, const char *name, const char *device_name,
                    const uint8_t key_hash[32], sess_t **out);

/* Deletes a session: when linked and connected, WhatsApp is asked to remove
 * the companion device first (bounded wait); when linked but offline, the
 * removal is kept for the next connection (as a logout while offline);
 * then its streams end, its driver stops, and its credentials and row are
 * deleted. done(arg, rc) runs once when all of that is over (rc 0, or a
 * negative code; done may run inside this call). Returns 0 when started,
 * or SESS_MGR_ENOTFOUND / SESS_MGR_EDEFAULT without calling done. */
int sess_mgr_delete(sess_mgr_t *m, const char *name, void (*done)(void *arg, int rc), void *arg);

/* Replaces a session's key hash (NULL removes the key), in the store and in
 * memory. Returns 0, SESS_MGR_ENOTFOUND or SESS_MGR_ESTORE. */
int sess_mgr_set_key(sess_mgr_t *m, const char *name, const uint8_t key_hash[32]);

/* Number of sessions and the limit. Any thread. */
size_t sess_mgr_count(const sess_mgr_t *m);
size_t sess_mgr_limit(const sess_mgr_t *m);

/* Stops every session (sess_registry_stop) and then the manager's own
 * work; done(arg) when all has stopped. */
void sess_mgr_stop(sess_mgr_t *m, void (*done)(void *arg), void *arg);

/* Frees the manager (not the registry or the store). NULL is ignored. */
void sess_mgr_free(sess_mgr_t *m);

#endif
