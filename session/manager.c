/* The session manager (see manager.h): driver options built once from
 * plain values, sessions restored from and recorded in the store, deletions
 * that unlink on WhatsApp first, and a remover for the devices of sessions
 * deleted while offline. */
#include "session/manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/driver.h"
#include "session/gate.h"
#include "session/removal.h"
#include "session/wa/framesocket.h"

#include "session/cluster/cluster.h"

/* How long a delete waits for WhatsApp to confirm the device removal. */
#define DELETE_WAIT_MS 5000

typedef struct del del_t;

struct sess_mgr {
    sess_mgr_opts_t o;
    clu_t *cluster; /* several nodes: sessions run here only while leased */
    char *wa_url, *device_name;
    wa_fsock_ctx_t *fsock;
    sess_gate_t *gate;
    sess_driver_opts_t dopts;
    sess_removal_t *orphans; /* devices of deleted sessions */
    del_t *deleting;         /* deletions under way */
    struct mk *creating;     /* creations under way (their rows being stored) */
    size_t del_storing;      /* deletions whose row is being deleted */
    int stop_deferred;       /* sess_mgr_stop waits for them to leave the registry */
    struct acq *acquiring;   /* cluster: sessions being started here */
    size_t calls;            /* creations and key rotations whose done has not run */
    int calls_awaited;       /* sess_mgr_stop waits for them (their callers' answers) */
    int stopping;
    size_t pending_stops;
    void (*stop_done)(void *);
    void *stop_arg;
};

/* One deletion under way. */
struct del {
    sess_mgr_t *m;
    sess_t *s; /* referenced */
    sess_sub_t *sub;
    uv_async_t wake;
    uv_timer_t timer;
    int handles, finished;
    int awaited; /* sess_mgr_stop waits for its end */
    void (*done)(void *arg, int rc);
    void *arg;
    store_t *store;               /* for the queue's thread */
    char name[SESS_NAME_MAX + 1]; /* the session's */
    del_t *next;
};

/* A session being started here (clu_on_acquire): its row is read, then
 * the log caught up with, both off the loop; a let_go meanwhile cancels
 * it. */
typedef struct acq {
    sess_mgr_t *m;
    store_t *store;
    char name[SESS_NAME_MAX + 8];
    uint64_t epoch;
    int cancelled;
    int stored;          /* the row was read */
    store_session_t row; /* (work) */
    sess_t *s;           /* referenced while catching up */
    struct acq *next;
} acq_t;

const char *sess_mgr_strerror(int code)
{
    switch (code) {
    case SESS_MGR_EEXISTS:
        return "a session of that name exists";
    case SESS_MGR_ELIMIT:
        return "too many sessions (MAX_SESSIONS)";
    case SESS_MGR_ENAME:
        return "a session name is 1 to 64 of a-z, 0-9, '_' and '-'";
    case SESS_MGR_ESTORE:
        return "the store refused the change";
    case SESS_MGR_ENOTFOUND:
        return "no such session";
    case SESS_MGR_EDEFAULT:
        return "the session \"default\" cannot be deleted";
    case SESS_MGR_EDEVICE:
        return "a device name is 1 to 64 bytes of text without control characters";
    case SESS_MGR_EBUSY:
        return "the session is being deleted";
    case SESS_MGR_EELSEWHERE:
        return "the session runs on another node of the cluster";
    }
    return "session error";
}

int sess_mgr_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > SESS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sess_mgr_device_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > SESS_DEVICE_NAME_MAX)
        return 0;
    /* UTF-8 without control characters (C0, DEL) */
    const unsigned char *p = (const unsigned char *)name;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (!len || i + len > n || (len == 1 && (c < 0x20 || c == 0x7f)) || (len == 2 && c < 0xc2))
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

static int orphan_accept(void *arg, const char *session)
{
    sess_mgr_t *m = arg;
    sess_t *s = sess_registry_get(m->o.reg, session);
    if (s) {
        sess_unref(s);
        return 0; /* its own driver sends it */
    }
    return 1;
}

int sess_mgr_new(const sess_mgr_opts_t *opts, sess_mgr_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sess_mgr_t *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->o = *opts;
    if (!m->o.max_sessions)
        m->o.max_sessions = SESS_MAX_SESSIONS_DEFAULT;
    m->wa_url = strdup(opts->wa_url ? opts->wa_url : WA_FSOCK_DEFAULT_URL);
    m->device_name = opts->device_name ? strdup(opts->device_name) : NULL;
    if (!m->wa_url || (opts->device_name && !m->device_name)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    wa_fsock_ctx_opts_t fo = {.ca_file = opts->ca_file};
    m->fsock = wa_fsock_ctx_new(opts->loop, &fo, err, errlen);
    if (!m->fsock)
        goto fail;
    m->gate = sess_gate_new(opts->loop, opts->connect_rate);
    if (!m->gate) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sess_driver_opts_t *d = &m->dopts;
    d->fsock = m->fsock;
    d->q = opts->q;
    d->store = opts->store;
    d->version = opts->version;
    d->gate = m->gate;
    d->backoff_min_ms = opts->backoff_min_ms;
    d->backoff_max_ms = opts->backoff_max_ms;
    d->client.url = m->wa_url;
    d->client.device_name = m->device_name;
    if (opts->root_key)
        memcpy(d->client.trust.root_pub, opts->root_key, 32);
    wa_payload_parse_version(WA_PAYLOAD_DEFAULT_VERSION, &d->client.version);
    d->client.qr_first_ms = opts->qr_first_ms;
    d->client.qr_next_ms = opts->qr_next_ms;
    d->client.keepalive_ms = opts->keepalive_ms;
    d->client.keepalive_timeout_ms = opts->keepalive_timeout_ms;
    d->client.keepalive_misses = opts->keepalive_misses;
    d->client.login_timeout_ms = opts->login_timeout_ms;
    m->orphans = sess_removal_new_orphans(m->fsock, opts->store, &d->client, orphan_accept, m);
    if (!m->orphans) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sess_removal_set_version(m->orphans, opts->version);
    sess_removal_set_queue(m->orphans, opts->q);
    *out = m;
    return 0;
fail:
    if (m->gate) {
        sess_gate_close(m->gate);
        m->gate = NULL; /* freed with the loop's handles: leaked on this error path */
    }
    if (m->fsock) {
        wa_fsock_ctx_destroy(m->fsock);
        wa_fsock_ctx_free(m->fsock);
    }
    free(m->wa_url);
    free(m->device_name);
    free(m);
    return -1;
}

static int attach_driver(sess_mgr_t *m, sess_t *s, const char *device_name);

/* Adds a session to the registry with its driver and key (in cluster mode
 * a follower without driver); does not start it. Returns it, or NULL. */
static sess_t *add_session(sess_mgr_t *m, const char *name, const char *device_name,
                           const uint8_t *key_hash)
{
    sess_t *s =
        m->cluster ? sess_registry_add_follower(m->o.reg, name) : sess_registry_add(m->o.reg, name);
    if (!s)
        return NULL;
    if (key_hash)
        sess_set_key_hash(s, key_hash);
    if (m->cluster) /* a driver only while this node holds the lease */
        return s;
    if (attach_driver(m, s, device_name) != 0) {
        sess_registry_remove(m->o.reg, s, NULL, NULL);
        return NULL;
    }
    return s;
}

/* Attaches a WhatsApp driver with the service's settings and the session's
 * own device name. 0 or -1. */
static int attach_driver(sess_mgr_t *m, sess_t *s, const char *device_name)
{
    sess_driver_opts_t d = m->dopts;
    if (device_name && device_name[0])
        d.client.device_name = device_name;
    return sess_driver_attach(s, &d);
}

int sess_mgr_restore(sess_mgr_t *m)
{
    store_session_t *all = NULL;
    size_t n = 0;
    if (store_session_add(m->o.store, "default", NULL, NULL) < 0 &&
        store_session_get(m->o.store, "default", &(store_session_t){0}) != 0)
        return SESS_MGR_ESTORE;
    if (store_sessions_list(m->o.store, &all, &n) != 0)
        return SESS_MGR_ESTORE;
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sess_mgr_name_ok(all[i].name)) {
            LOG_WARN("session", "ignoring a stored session with an invalid name");
            continue;
        }
        sess_t *s = add_session(m, all[i].name, all[i].device_name,
                                all[i].has_key ? all[i].key_hash : NULL);
        if (!s) {
            LOG_ERROR("session", "%s: cannot restore the session", all[i].name);
            continue;
        }
        if (!m->cluster)
            sess_start(s);
        started++;
    }
    explicit_bzero(all, n * sizeof(*all));
    free(all);
    LOG_INFO("session", "%d session(s) restored", started);
    sess_removal_kick(m->orphans);
    return started;
}

/* --- creation and key rotation (the store through the job queue) --- */

static void stop_part_done(void *arg);

/* A creation's or rotation's done ran: sess_mgr_stop may be waiting for
 * the last one (its caller answers before the servers stop). */
static void call_ended(sess_mgr_t *m)
{
    if (--m->calls == 0 && m->calls_awaited) {
        m->calls_awaited = 0;
        stop_part_done(m);
    }
}

/* A creation under way: its row is being stored. */
typedef struct mk {
    sess_mgr_t *m;
    store_t *store;
    char name[SESS_NAME_MAX + 1];
    char device[SESS_DEVICE_NAME_MAX + 1]; /* "" = the default one */
    uint8_t key[32];
    int has_key;
    sess_mgr_create_cb done;
    void *arg;
    struct mk *next;
} mk_t;

/* A row to delete (a creation that could not be completed). */
typedef struct {
    store_t *store;
    char name[SESS_NAME_MAX + 1];
} unrow_t;

static int unrow_work(void *arg)
{
    unrow_t *u = arg;
    return store_session_delete(u->store, u->name);
}

static void unrow_done(void *arg, int rc)
{
    unrow_t *u = arg;
    if (rc && rc != STORE_ENOTFOUND)
        LOG_ERROR("session", "%s: cannot delete the session from the store", u->name);
    free(u);
}

/* Deletes a stored row off the loop (nothing waits for it). */
static void delete_row_later(sess_mgr_t *m, const char *name)
{
    unrow_t *u = calloc(1, sizeof(*u));
    if (!u)
        return;
    u->store = m->o.store;
    snprintf(u->name, sizeof(u->name), "%s", name);
    if (sess_q_run(m->o.q, NULL, unrow_work, unrow_done, u) != 0) {
        unrow_done(u, store_session_delete(u->store, u->name)); /* queue closed */
    }
}

static int create_work(void *arg)
{
    mk_t *c = arg;
    return store_session_add(c->store, c->name, c->has_key ? c->key : NULL,
                             c->device[0] ? c->device : NULL);
}

static void create_done(void *arg, int rc)
{
    mk_t *c = arg;
    sess_mgr_t *m = c->m;
    for (mk_t **pp = &m->creating; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    sess_t *s = NULL;
    if (rc == STORE_EEXISTS) {
        rc = SESS_MGR_EEXISTS;
    } else if (rc) {
        rc = SESS_MGR_ESTORE;
    } else if (m->stopping) { /* too late to run it: not kept either */
        delete_row_later(m, c->name);
        rc = SESS_MGR_ESTORE;
    } else if (m->cluster && (s = sess_registry_find(m->o.reg, c->name)) != NULL) {
        /* the cluster listed the new row first: it is a follower already */
        clu_kick(m->cluster);
    } else if (!(s = add_session(m, c->name, c->device, c->has_key ? c->key : NULL))) {
        delete_row_later(m, c->name);
        rc = SESS_MGR_ESTORE;
    } else {
        LOG_INFO("session", "%s: session created", c->name);
        if (m->cluster)
            clu_kick(m->cluster); /* a node claims it (this one first) */
        else
            sess_start(s);
    }
    if (c->done)
        c->done(c->arg, rc, s);
    explicit_bzero(c, sizeof(*c));
    free(c);
    call_ended(m);
}

int sess_mgr_create(sess_mgr_t *m, const char *name, const char *device_name,
                    const uint8_t key_hash[32], sess_mgr_create_cb done, void *arg)
{
    if (!sess_mgr_name_ok(name))
        return SESS_MGR_ENAME;
    if (device_name && device_name[0] && !sess_mgr_device_name_ok(device_name))
        return SESS_MGR_EDEVICE;
    if (sess_registry_find(m->o.reg, name))
        return SESS_MGR_EEXISTS;
    size_t creating = 0;
    for (mk_t *c = m->creating; c; c = c->next, creating++)
        if (!strcmp(c->name, name))
            return SESS_MGR_EEXISTS;
    if (sess_registry_count(m->o.reg) + creating >= m->o.max_sessions)
        return SESS_MGR_ELIMIT;
    mk_t *c = calloc(1, sizeof(*c));
    if (!c)
        return SESS_MGR_ESTORE;
    c->m = m;
    c->store = m->o.store;
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->device, sizeof(c->device), "%s", device_name ? device_name : "");
    if (key_hash) {
        memcpy(c->key, key_hash, 32);
        c->has_key = 1;
    }
    c->done = done;
    c->arg = arg;
    if (sess_q_run(m->o.q, NULL, create_work, create_done, c) != 0) {
        explicit_bzero(c, sizeof(*c));
        free(c);
        return SESS_MGR_ESTORE;
    }
    c->next = m->creating;
    m->creating = c;
    m->calls++;
    return 0;
}

/* A key rotation under way. */
typedef struct {
    sess_mgr_t *m;
    store_t *store;
    char name[SESS_NAME_MAX + 1];
    uint8_t key[32];
    int has_key;
    int may_add; /* a missing row is added (not while the session is being deleted) */
    sess_mgr_done_cb done;
    void *arg;
} setkey_t;

static int setkey_work(void *arg)
{
    setkey_t *k = arg;
    const uint8_t *key = k->has_key ? k->key : NULL;
    int rc = store_session_set_key(k->store, k->name, key);
    if (rc == STORE_ENOTFOUND && k->may_add) /* restored sessions always have a row; be safe */
        rc = store_session_add(k->store, k->name, key, NULL);
    return rc;
}

static void setkey_done(void *arg, int rc)
{
    setkey_t *k = arg;
    sess_mgr_t *m = k->m;
    sess_t *s = rc ? NULL : sess_registry_find(k->m->o.reg, k->name);
    if (rc)
        rc = SESS_MGR_ESTORE;
    else if (!s)
        rc = SESS_MGR_ENOTFOUND;
    else
        sess_set_key_hash(s, k->has_key ? k->key : NULL);
    if (k->done)
        k->done(k->arg, rc);
    explicit_bzero(k, sizeof(*k));
    free(k);
    call_ended(m);
}

int sess_mgr_set_key(sess_mgr_t *m, const char *name, const uint8_t key_hash[32],
                     sess_mgr_done_cb done, void *arg)
{
    sess_t *s = sess_registry_find(m->o.reg, name);
    if (!s)
        return SESS_MGR_ENOTFOUND;
    setkey_t *k = calloc(1, sizeof(*k));
    if (!k)
        return SESS_MGR_ESTORE;
    k->m = m;
    k->store = m->o.store;
    snprintf(k->name, sizeof(k->name), "%s", name);
    if (key_hash) {
        memcpy(k->key, key_hash, 32);
        k->has_key = 1;
    }
    k->may_add = 1;
    for (del_t *x = m->deleting; x; x = x->next)
        if (x->s == s)
            k->may_add = 0;
    k->done = done;
    k->arg = arg;
    if (sess_q_run(m->o.q, NULL, setkey_work, setkey_done, k) != 0) {
        explicit_bzero(k, sizeof(*k));
        free(k);
        return SESS_MGR_ESTORE;
    }
    m->calls++;
    return 0;
}

size_t sess_mgr_count(const sess_mgr_t *m)
{
    return sess_registry_count(m->o.reg);
}

size_t sess_mgr_limit(const sess_mgr_t *m)
{
    return m->o.max_sessions;
}

unsigned long sess_mgr_gate_passed(const sess_mgr_t *m)
{
    return sess_gate_passed(m->gate);
}

size_t sess_mgr_gate_waiting(const sess_mgr_t *m)
{
    return sess_gate_waiting(m->gate);
}

/* --- deletion --- */

static void del_unlink(del_t *x)
{
    for (del_t **pp = &x->m->deleting; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

static void del_handle_closed(uv_handle_t *h)
{
    del_t *x = h->data;
    if (--x->handles == 0) {
        sess_unref(x->s);
        free(x);
    }
}

static void stop_part_done(void *arg);

static void del_removed(void *arg)
{
    del_t *x = arg;
    sess_mgr_t *m = x->m;
    if (x->done)
        x->done(x->arg, 0);
    del_unlink(x);
    uv_close((uv_handle_t *)&x->wake, del_handle_closed);
    uv_close((uv_handle_t *)&x->timer, del_handle_closed);
    if (!m->stopping)
        sess_removal_kick(m->orphans); /* a removal kept for a deleted session */
    if (x->awaited)
        stop_part_done(m);
}

static int del_work(void *arg)
{
    del_t *x = arg;
    return store_session_delete(x->store, x->name);
}

static void stop_registry(sess_mgr_t *m);

/* The row is deleted (or could not be): the session leaves the registry. */
static void del_stored(void *arg, int rc)
{
    del_t *x = arg;
    sess_mgr_t *m = x->m;
    if (rc)
        LOG_ERROR("session", "%s: cannot delete the session from the store", x->name);
    LOG_INFO("session", "%s: session deleted", x->name);
    if (sess_registry_remove(m->o.reg, x->s, del_removed, x) != 0)
        del_removed(x);
    if (--m->del_storing == 0 && m->stop_deferred) {
        m->stop_deferred = 0;
        stop_registry(m);
    }
}

/* The device is unlinked (or will be on the next connection): the session
 * goes, its row first (off the loop). */
static void del_finish(del_t *x)
{
    if (x->finished)
        return;
    x->finished = 1;
    uv_timer_stop(&x->timer);
    if (x->sub) {
        sess_unsubscribe(x->sub);
        x->sub = NULL;
    }
    sess_mgr_t *m = x->m;
    x->store = m->o.store;
    snprintf(x->name, sizeof(x->name), "%s", sess_name(x->s));
    m->del_storing++;
    if (sess_q_run(m->o.q, NULL, del_work, del_stored, x) != 0)
        del_stored(x, del_work(x)); /* the queue is closed: at once */
}

static void del_check(del_t *x)
{
    sess_snapshot_t *snap;
    int over = 0;
    while (x->sub && sess_sub_next(x->sub, &snap) == SESS_SUB_OK) {
        over |= snap->state == SESS_DISCONNECTED;
        sess_snapshot_unref(snap);
    }
    if (over)
        del_finish(x);
}

static void del_wake(uv_async_t *a)
{
    del_check(a->data);
}

static void del_notify(void *arg)
{
    del_t *x = arg;
    uv_async_send(&x->wake);
}

static void del_timeout(uv_timer_t *t)
{
    del_t *x = t->data;
    LOG_WARN("session", "%s: WhatsApp did not confirm the device removal in time; deleting",
             sess_name(x->s));
    del_finish(x);
}

int sess_mgr_delete(sess_mgr_t *m, const char *name, void (*done)(void *arg, int rc), void *arg)
{
    if (!strcmp(name, "default"))
        return SESS_MGR_EDEFAULT;
    sess_t *s = sess_registry_find(m->o.reg, name);
    if (!s)
        return SESS_MGR_ENOTFOUND;
    if (m->cluster && sess_following(s))
        return SESS_MGR_EELSEWHERE;
    for (del_t *x = m->deleting; x; x = x->next)
        if (x->s == s)
            return SESS_MGR_EBUSY;
    del_t *x = calloc(1, sizeof(*x));
    if (!x)
        return SESS_ENOTSUP;
    x->m = m;
    x->s = s;
    sess_ref(s);
    x->done = done;
    x->arg = arg;
    uv_async_init(m->o.loop, &x->wake, del_wake);
    uv_timer_init(m->o.loop, &x->timer);
    x->wake.data = x->timer.data = x;
    x->handles = 2;
    x->next = m->deleting;
    m->deleting = x;
    sess_snapshot_t *cur = sess_current(s);
    int linked = cur->linked, connected = cur->state == SESS_CONNECTED;
    sess_snapshot_unref(cur);
    if (linked && connected) {
        /* remove-companion-device on the live connection, then go */
        sess_sub_opts_t so = {.notify = del_notify, .arg = x, .max_queue = 64};
        x->sub = sess_subscribe(s, &so);
        sess_snapshot_t *first;
        if (x->sub && sess_sub_next(x->sub, &first) == SESS_SUB_OK)
            sess_snapshot_unref(first); /* the CONNECTED one */
        sess_logout(s);
        uv_timer_start(&x->timer, del_timeout, DELETE_WAIT_MS, 0);
        del_check(x);
        return 0;
    }
    if (linked)
        sess_logout(s); /* offline: the removal is kept for the next connection */
    del_finish(x);
    return 0;
}

/* --- stop and free --- */

static void stop_part_done(void *arg)
{
    sess_mgr_t *m = arg;
    if (--m->pending_stops == 0 && m->stop_done) {
        void (*done)(void *) = m->stop_done;
        m->stop_done = NULL;
        done(m->stop_arg);
    }
}

void sess_mgr_stop(sess_mgr_t *m, void (*done)(void *arg), void *arg)
{
    m->stopping = 1;
    m->stop_done = done;
    m->stop_arg = arg;
    m->pending_stops = 2;
    /* deletions under way end before the manager may be freed (their
     * session's driver is still stopping); those waiting for WhatsApp
     * finish now */
    for (del_t *x = m->deleting; x; x = x->next) {
        x->awaited = 1;
        m->pending_stops++;
    }
    if (m->calls) { /* creations and rotations under way answer first */
        m->calls_awaited = 1;
        m->pending_stops++;
    }
    for (del_t *x = m->deleting, *next; x; x = next) {
        next = x->next; /* del_finish may unlink x */
        if (!x->finished)
            del_finish(x);
    }
    if (m->del_storing) /* they leave the registry before it stops */
        m->stop_deferred = 1;
    else
        stop_registry(m);
}

/* The remover and the registry stop (sess_mgr_stop, once no deletion is
 * waiting for the store). */
static void stop_registry(sess_mgr_t *m)
{
    sess_removal_stop(m->orphans, stop_part_done, m);
    sess_registry_stop(m->o.reg, stop_part_done, m);
}

void sess_mgr_close(sess_mgr_t *m)
{
    if (!m)
        return;
    if (!m->stopping) { /* never started or stopped: close the remover's timer */
        m->stopping = 1;
        sess_removal_stop(m->orphans, NULL, NULL);
    }
    sess_gate_close(m->gate);
    wa_fsock_ctx_destroy(m->fsock);
}

void sess_mgr_free(sess_mgr_t *m)
{
    if (!m)
        return;
    wa_fsock_ctx_free(m->fsock);
    sess_gate_free(m->gate);
    sess_removal_free(m->orphans);
    free(m->wa_url);
    free(m->device_name);
    free(m);
}

/* --- cluster mode (several nodes) --- */

void sess_mgr_set_cluster(sess_mgr_t *m, clu_t *c)
{
    m->cluster = c;
}

/* A session whose driver stops because the lease went (lost or handed
 * over). */
typedef struct {
    sess_mgr_t *m;
    char name[SESS_NAME_MAX + 8];
    uint64_t release_epoch; /* > 0: hand the lease back once stopped */
} handoff_t;

static void on_handoff_stopped(void *arg)
{
    handoff_t *h = arg;
    sess_t *s = sess_registry_find(h->m->o.reg, h->name);
    if (s && sess_following(s) && !h->m->stopping)
        sess_follow_later(s); /* the new owner's events */
    if (h->release_epoch && h->m->cluster)
        clu_release(h->m->cluster, h->name, h->release_epoch);
    free(h);
}

/* Closes the session's connection at once and makes it a follower. */
static void let_go(sess_mgr_t *m, const char *name, uint64_t release_epoch)
{
    for (struct acq *a = m->acquiring; a; a = a->next)
        if (!strcmp(a->name, name))
            a->cancelled = 1;                         /* not started here after all */
    store_fence_set(m->o.store, name, release_epoch); /* 0: nothing more is written */
    sess_t *s = sess_registry_find(m->o.reg, name);
    handoff_t *h = calloc(1, sizeof(*h));
    if (h) {
        h->m = m;
        snprintf(h->name, sizeof(h->name), "%s", name);
        h->release_epoch = release_epoch;
    }
    if (s)
        sess_set_following(s, 1);
    if (s && h && sess_stop_driver(s, on_handoff_stopped, h) == 0)
        return;
    if (h)
        on_handoff_stopped(h);
    else if (release_epoch && m->cluster)
        clu_release(m->cluster, name, release_epoch);
}

static void acq_free(acq_t *a)
{
    for (acq_t **pp = &a->m->acquiring; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    if (a->s)
        sess_unref(a->s);
    explicit_bzero(a, sizeof(*a));
    free(a);
}

/* The session's acquisition under way, or NULL. */
static acq_t *acq_find(sess_mgr_t *m, const char *name)
{
    for (acq_t *a = m->acquiring; a; a = a->next)
        if (!a->cancelled && !strcmp(a->name, name))
            return a;
    return NULL;
}

/* Caught up with the log (the previous owner is fenced: it is final): the
 * driver starts, its seq continuing the log's. */
static void acq_caught_up(void *arg, int rc)
{
    acq_t *a = arg;
    sess_mgr_t *m = a->m;
    sess_t *s = a->s;
    (void)rc; /* unreadable: the journal logged it; the seq continues what was delivered */
    if (a->cancelled || m->stopping || sess_has_driver(s) ||
        sess_registry_find(m->o.reg, a->name) != s) {
        if (!a->cancelled && !m->stopping && sess_registry_find(m->o.reg, a->name) != s)
            clu_release(m->cluster, a->name, a->epoch); /* deleted meanwhile */
        acq_free(a);
        return;
    }
    if (attach_driver(m, s, a->row.device_name[0] ? a->row.device_name : NULL) != 0) {
        LOG_ERROR("session", "%s: cannot start the session here", a->name);
        char name[sizeof(a->name)];
        uint64_t epoch = a->epoch;
        snprintf(name, sizeof(name), "%s", a->name);
        acq_free(a);
        let_go(m, name, epoch);
        return;
    }
    sess_set_following(s, 0);
    LOG_INFO("session", "%s: running on this node (epoch %llu)", a->name,
             (unsigned long long)a->epoch);
    sess_start(s);
    acq_free(a);
}

static int acq_work(void *arg)
{
    acq_t *a = arg;
    a->stored = store_session_get(a->store, a->name, &a->row) == 0;
    if (!a->stored)
        a->row.device_name[0] = 0;
    return 0;
}

static void acq_read(void *arg, int rc)
{
    acq_t *a = arg;
    sess_mgr_t *m = a->m;
    (void)rc;
    if (a->cancelled || m->stopping) {
        acq_free(a);
        return;
    }
    sess_t *s = sess_registry_find(m->o.reg, a->name);
    if (!s && a->stored && sess_mgr_name_ok(a->name))
        s = add_session(m, a->name, NULL, a->row.has_key ? a->row.key_hash : NULL);
    if (!s || sess_has_driver(s)) {
        if (!s) /* deleted meanwhile: not ours to run */
            clu_release(m->cluster, a->name, a->epoch);
        acq_free(a);
        return;
    }
    store_fence_set(m->o.store, a->name, a->epoch);
    sess_set_epoch(s, a->epoch); /* what it published under an older lease is refused */
    sess_ref(s);
    a->s = s;
    sess_follow_async(s, acq_caught_up, a); /* the log is final: the previous owner is fenced */
}

static void clu_on_acquire(void *arg, const char *name, uint64_t epoch)
{
    sess_mgr_t *m = arg;
    if (m->stopping)
        return;
    acq_t *a = acq_find(m, name);
    if (a) { /* already starting: with the newest epoch */
        if (epoch > a->epoch) {
            a->epoch = epoch;
            if (a->s) {
                store_fence_set(m->o.store, name, epoch);
                sess_set_epoch(a->s, epoch);
            }
        }
        return;
    }
    a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->m = m;
    a->store = m->o.store;
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->epoch = epoch;
    if (sess_q_run(m->o.q, NULL, acq_work, acq_read, a) != 0) {
        free(a);
        return;
    }
    a->next = m->acquiring;
    m->acquiring = a;
}

static void clu_on_lose(void *arg, const char *name)
{
    sess_mgr_t *m = arg;
    LOG_WARN("session", "%s: no longer held by this node: connection closed", name);
    let_go(m, name, 0);
}

static void clu_on_shed(void *arg, const char *name, uint64_t epoch)
{
    sess_mgr_t *m = arg;
    LOG_INFO("session", "%s: handing over to another node", name);
    let_go(m, name, epoch);
}

static void clu_on_events(void *arg, const char *name)
{
    sess_mgr_t *m = arg;
    sess_t *s = sess_registry_find(m->o.reg, name);
    if (s && sess_following(s))
        sess_follow_later(s); /* off the loop on PostgreSQL */
}

/* A listing of the stored sessions (clu_on_sessions, clu_on_resync). */
typedef struct {
    sess_mgr_t *m;
    store_t *store;
    int resync;
    store_session_t *all;
    size_t n;
} list_t;

static int list_work(void *arg)
{
    list_t *l = arg;
    return store_sessions_list(l->store, &l->all, &l->n);
}

/* Sessions added or deleted on another node: followers come and go. */
static void apply_list(sess_mgr_t *m, store_session_t *all, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sess_t *s = sess_registry_find(m->o.reg, all[i].name);
        if (s) /* a key rotated on another node */
            sess_set_key_hash(s, all[i].has_key ? all[i].key_hash : NULL);
        else if (sess_mgr_name_ok(all[i].name))
            add_session(m, all[i].name, all[i].device_name,
                        all[i].has_key ? all[i].key_hash : NULL);
    }
    size_t k = 0;
    sess_snapshot_t **v = sess_registry_snapshots(m->o.reg, &k);
    for (size_t i = 0; v && i < k; i++) {
        int stored = 0;
        for (size_t j = 0; j < n && !stored; j++)
            stored = !strcmp(all[j].name, v[i]->session);
        sess_t *s = stored ? NULL : sess_registry_find(m->o.reg, v[i]->session);
        int deleting = 0;
        for (del_t *x = m->deleting; x && s; x = x->next)
            deleting |= x->s == s;
        if (s && sess_following(s) && !sess_has_driver(s) && !deleting &&
            !acq_find(m, v[i]->session)) {
            LOG_INFO("session", "%s: session deleted on another node", v[i]->session);
            sess_registry_remove(m->o.reg, s, NULL, NULL);
        }
    }
    sess_snapshots_free(v, k);
}

static void list_done(void *arg, int rc)
{
    list_t *l = arg;
    sess_mgr_t *m = l->m;
    if (rc == 0 && !m->stopping)
        apply_list(m, l->all, l->n);
    if (l->resync && !m->stopping) {
        /* every follower reads what it missed */
        size_t k = 0;
        sess_snapshot_t **v = sess_registry_snapshots(m->o.reg, &k);
        for (size_t i = 0; v && i < k; i++) {
            sess_t *s = sess_registry_find(m->o.reg, v[i]->session);
            if (s && sess_following(s))
                sess_follow_later(s);
        }
        sess_snapshots_free(v, k);
    }
    if (l->all)
        explicit_bzero(l->all, l->n * sizeof(*l->all));
    free(l->all);
    free(l);
}

/* Lists the stored sessions off the loop, then applies the list. */
static void list_later(sess_mgr_t *m, int resync)
{
    list_t *l = calloc(1, sizeof(*l));
    if (!l)
        return;
    l->m = m;
    l->store = m->o.store;
    l->resync = resync;
    if (sess_q_run(m->o.q, NULL, list_work, list_done, l) != 0)
        free(l);
}

/* Sessions added or deleted on another node. */
static void clu_on_sessions(void *arg)
{
    sess_mgr_t *m = arg;
    if (!m->stopping)
        list_later(m, 0);
}

/* The cluster's connection came back: the sessions added or deleted
 * meanwhile come and go, and every follower reads what it missed. */
static void clu_on_resync(void *arg)
{
    sess_mgr_t *m = arg;
    if (!m->stopping)
        list_later(m, 1);
}

static void on_fenced_later(void *arg)
{
    handoff_t *h = arg;
    if (h->m->cluster && !h->m->stopping)
        clu_fenced(h->m->cluster, h->name); /* on_lose: let_go */
    free(h);
}

/* The store refused a write (fenced): called inside the store call, so the
 * session is let go on the next loop turn. */
static void on_store_fenced(void *arg, const char *name)
{
    sess_mgr_t *m = arg;
    LOG_WARN("session", "%s: a write was refused: another node holds the session now", name);
    handoff_t *h = calloc(1, sizeof(*h));
    if (!h)
        return;
    h->m = m;
    snprintf(h->name, sizeof(h->name), "%s", name);
    if (sess_registry_post(m->o.reg, on_fenced_later, h) != 0)
        free(h);
}

void sess_mgr_cluster_callbacks(sess_mgr_t *m, clu_callbacks_t *cb)
{
    memset(cb, 0, sizeof(*cb));
    cb->on_acquire = clu_on_acquire;
    cb->on_lose = clu_on_lose;
    cb->on_shed = clu_on_shed;
    cb->on_events = clu_on_events;
    cb->on_sessions = clu_on_sessions;
    cb->on_resync = clu_on_resync;
    cb->arg = m;
    store_on_fenced(m->o.store, on_store_fenced, m);
}
