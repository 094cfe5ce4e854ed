/* The store's public functions (store.h) that do not depend on the
 * backend, and the entry points of those that do: each calls the handle's
 * backend table (store_backend_t: SQLite in store.c, events.c and
 * webhooks.c; PostgreSQL in pg.c, pg_events.c and pg_webhooks.c). Also the
 * handle's cluster state: the node id, the lease epochs it holds and the
 * callback told of a refused (fenced) write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/store/store_internal.h"

/* The writer's operations hold w_mu: the loop's thread and the store's
 * job queue (session/storeq.h) may both call them. */
#define STORE_OP_WRITER(name, params, args)                                                        \
    int store_##name params                                                                        \
    {                                                                                              \
        pthread_mutex_lock(&st->w_mu);                                                             \
        int rc = st->be->name args;                                                                \
        pthread_mutex_unlock(&st->w_mu);                                                           \
        return rc;                                                                                 \
    }
#define STORE_OP_READER(name, params, args)                                                        \
    int store_##name params                                                                        \
    {                                                                                              \
        return st->be->name args;                                                                  \
    }
STORE_WRITER_OPS(STORE_OP_WRITER)
STORE_READER_OPS(STORE_OP_READER)
#undef STORE_OP_WRITER
#undef STORE_OP_READER

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK:
        return "ok";
    case STORE_ENOTFOUND:
        return "no credentials";
    case STORE_EIO:
        return "database error";
    case STORE_ECORRUPT:
        return "database file is corrupt";
    case STORE_ENEWER:
        return "database written by a newer version";
    case STORE_ENOMEM:
        return "out of memory";
    case STORE_EINVAL:
        return "invalid credential record";
    case STORE_EEXISTS:
        return "already exists";
    case STORE_EPERM:
        return "store not private to this service's user";
    case STORE_EFENCED:
        return "session not owned by this node (lease lost)";
    }
    return "unknown store error";
}

/* 1 when `url` starts with `scheme` (ASCII case-insensitive). */
static int has_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    for (size_t i = 0; i < n; i++) {
        char c = url[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return 0;
    }
    return 1;
}

/* 0: SQLite (NULL, "" or "sqlite:"), 1: PostgreSQL, -1: neither. */
static int url_kind(const char *url)
{
    if (!url || !*url || has_scheme(url, "sqlite:"))
        return url && *url && url[7] ? -1 : 0; /* "sqlite:" takes nothing after it */
    if (has_scheme(url, "postgres://") || has_scheme(url, "postgresql://"))
        return 1;
    return -1;
}

int store_open_url(const char *url, const char *data_dir, store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (url_kind(url)) {
    case 0:
        return store_open(data_dir, out, err, errlen);
    case 1:
        return pg_open(url, out, err, errlen);
    }
    /* the URL is not echoed: it may hold a password */
    snprintf(err, errlen, "STORE_URL must be empty, sqlite:, postgres://... or postgresql://...");
    return STORE_EINVAL;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    st->be->close(st);
    for (size_t i = 0; i < st->nfences; i++)
        free(st->fences[i].session);
    free(st->fences);
    pthread_mutex_destroy(&st->fence_mu);
    pthread_mutex_destroy(&st->w_mu);
    free(st->node_id);
    free(st->path);
    free(st);
}

const char *store_path(const store_t *st)
{
    return st->path;
}

int store_is_pg(const store_t *st)
{
    return st && st->be == &store_pg_backend;
}

int store_set_node(store_t *st, const char *node_id)
{
    char *copy = NULL;
    if (node_id && *node_id && !(copy = strdup(node_id)))
        return STORE_ENOMEM;
    free(st->node_id);
    st->node_id = copy;
    return 0;
}

void store_init_common(store_t *st)
{
    pthread_mutex_init(&st->fence_mu, NULL);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&st->w_mu, &a);
    pthread_mutexattr_destroy(&a);
}

static store_fence_t *fence_find(const store_t *st, const char *session)
{
    for (size_t i = 0; i < st->nfences; i++)
        if (!strcmp(st->fences[i].session, session))
            return &st->fences[i];
    return NULL;
}

static void fence_set_locked(store_t *st, const char *session, uint64_t epoch)
{
    store_fence_t *f = fence_find(st, session);
    if (f && epoch) {
        f->epoch = epoch;
        return;
    }
    if (f) {
        free(f->session);
        *f = st->fences[--st->nfences];
    }
    if (!epoch)
        return;
    if (st->nfences == st->capfences) {
        size_t nc = st->capfences ? st->capfences * 2 : 16;
        store_fence_t *nv = realloc(st->fences, nc * sizeof(*nv));
        if (!nv)
            return; /* holds none: fail closed */
        st->fences = nv;
        st->capfences = nc;
    }
    char *name = strdup(session);
    if (name)
        st->fences[st->nfences++] = (store_fence_t){.session = name, .epoch = epoch};
}

void store_fence_set(store_t *st, const char *session, uint64_t epoch)
{
    pthread_mutex_lock(&st->fence_mu);
    fence_set_locked(st, session, epoch);
    pthread_mutex_unlock(&st->fence_mu);
}

void store_on_fenced(store_t *st, void (*cb)(void *arg, const char *session), void *arg)
{
    st->on_fenced = cb;
    st->on_fenced_arg = arg;
}

uint64_t store_fence_epoch(store_t *st, const char *session)
{
    pthread_mutex_lock(&st->fence_mu);
    const store_fence_t *f = fence_find(st, session);
    uint64_t epoch = f ? f->epoch : 0;
    pthread_mutex_unlock(&st->fence_mu);
    return epoch;
}

int store_events_append_bg(store_t *st, store_event_t *ev, size_t n)
{
    if (!store_is_pg(st))
        return STORE_EINVAL;
    return pg_events_append_bg(st, ev, n);
}

uint64_t store_events_retries(store_t *st)
{
    return __atomic_load_n(&st->append_retries, __ATOMIC_RELAXED);
}

uint64_t store_fenced_writes(store_t *st)
{
    return __atomic_load_n(&st->fenced_writes, __ATOMIC_RELAXED);
}

void store_count_fenced(store_t *st, size_t n)
{
    __atomic_add_fetch(&st->fenced_writes, n, __ATOMIC_RELAXED);
}

void store_fenced(store_t *st, const char *session)
{
    if (st->on_fenced)
        st->on_fenced(st->on_fenced_arg, session);
}

void store_creds_free(store_creds_t *c)
{
    free(c->account);
    free(c->jid);
    free(c->lid);
    free(c->push_name);
    free(c->platform);
    free(c->business_name);
    explicit_bzero(c, sizeof(*c));
}

void store_seqs_free(store_seq_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].session);
    free(v);
}

void store_events_free(store_event_t *ev, size_t n)
{
    for (size_t i = 0; ev && i < n; i++) {
        free(ev[i].session);
        free(ev[i].type);
        free(ev[i].body);
        memset(&ev[i], 0, sizeof(ev[i]));
    }
}

void store_webhooks_free(store_webhook_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].url);
        if (v[i].secret)
            explicit_bzero(v[i].secret, v[i].secret_len);
        free(v[i].secret);
        free(v[i].session);
        free(v[i].events);
    }
    free(v);
}

int store_webhook_enqueue(store_t *st, const char *target, store_event_t *ev)
{
    if (!ev)
        return STORE_EINVAL;
    return store_webhook_enqueue_batch(st, &target, ev, 1);
}

/* The consistency checks store_check runs on both backends: a query that
 * counts the rows in the wrong, and what it means. */
const char *const store_checks[][2] = {
    {"SELECT count(*) FROM creds WHERE length(noise_priv)!=32 OR length(noise_pub)!=32 OR"
     " length(ident_priv)!=32 OR length(ident_pub)!=32 OR length(spk_priv)!=32 OR"
     " length(spk_pub)!=32 OR length(spk_sig)!=64 OR length(adv_secret)!=32",
     "a credential record has keys of the wrong size"},
    {"SELECT count(*) FROM creds WHERE (jid IS NULL) != (account IS NULL)",
     "a half-written pairing record"},
    {"SELECT count(*) FROM prekeys WHERE session NOT IN (SELECT session FROM creds)",
     "pre-keys without a session"},
    {"SELECT count(*) FROM prekeys p JOIN creds c USING (session)"
     " WHERE p.id >= c.next_prekey_id",
     "pre-key ids beyond the session's counter"},
    {"SELECT count(*) FROM removals WHERE length(noise_priv)!=32 OR length(noise_pub)!=32",
     "a pending device removal has keys of the wrong size"},
    {"SELECT count(*) FROM sessions WHERE name NOT IN (SELECT session FROM leases)",
     "a session without its lease row"},
};
const size_t store_nchecks = sizeof(store_checks) / sizeof(store_checks[0]);
