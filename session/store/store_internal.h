/* What the store's source files share (not part of the store's interface):
 * the handle and a few statement helpers. Only session/store/ includes it. */
#ifndef WG_SESSION_STORE_STORE_INTERNAL_H
#define WG_SESSION_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "session/store/store.h"

struct store {
    sqlite3 *db; /* the writer, used from the owner's thread */
    char *path;
    /* A read-only connection for the readers that may run on any thread
     * (store_events_read, store_event_get), one at a time. */
    sqlite3 *rd;
    pthread_mutex_t rd_mu;
};

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
