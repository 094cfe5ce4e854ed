/* What the store's source files share (not part of the store's interface):
 * the handle and a few statement helpers. Only session/store/ includes it. */
#ifndef WG_SESSION_STORE_STORE_INTERNAL_H
#define WG_SESSION_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "session/store/store.h"

/* Statements of the hot paths (one per webhook delivery, one set per group
 * commit), prepared once on the writer and kept (store_stmt). */
enum {
    STORE_STMT_WH_NEXT,
    STORE_STMT_WH_INS_EVENT,
    STORE_STMT_WH_INS_DELIVERY,
    STORE_STMT_WH_DELIVERED,
    STORE_STMT_EV_INSERT,
    STORE_STMT_EV_HEAD,
    STORE_STMT_EV_OUTBOX,
    STORE_STMT_COUNT,
};

struct store {
    sqlite3 *db; /* the writer, used from the owner's thread */
    char *path;
    /* A read-only connection for the readers that may run on any thread
     * (store_events_read, store_event_get), one at a time. */
    sqlite3 *rd;
    pthread_mutex_t rd_mu;
    sqlite3_stmt *stmt[STORE_STMT_COUNT]; /* on the writer; finalized by store_close */
};

/* The writer's kept statement `which` for `sql` (always the same SQL for a
 * given `which`): prepared on first use, else reset with its bindings
 * cleared. The caller resets it when done (a SELECT left unreset would hold
 * its read snapshot). NULL when it cannot be prepared. */
sqlite3_stmt *store_stmt(store_t *st, int which, const char *sql);

/* Runs SQL without results on the writer. 0 or STORE_EIO. */
int store_exec(store_t *st, const char *sql);

/* Steps a prepared write statement inside its own transaction and
 * finalizes it. 0 or STORE_EIO. */
int store_run_tx(store_t *st, sqlite3_stmt *s);

/* Binds text, or NULL when t is NULL. */
void store_bind_opt_text(sqlite3_stmt *s, int i, const char *t);

/* A malloc'd copy of a text column (NULL when the column is NULL). */
char *store_text_dup(sqlite3_stmt *s, int col);

#endif
