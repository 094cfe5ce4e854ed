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
    del_t *next;
};

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

int sess_mgr_create(sess_mgr_t *m, const char *name, const char *device_name,
                    const uint8_t key_hash[32], sess_t **out)
{
    if (out)
        *out = NULL;
    if (!sess_mgr_name_ok(name))
        return SESS_MGR_ENAME;
    if (device_name && device_name[0] && !sess_mgr_device_name_ok(device_name))
        return SESS_MGR_EDEVICE;
    if (sess_registry_find(m->o.reg, name))
        return SESS_MGR_EEXISTS;
    if (sess_registry_count(m->o.reg) >= m->o.max_sessions)
        return SESS_MGR_ELIMIT;
    int rc = store_session_add(m->o.store, name, key_hash,
                               device_name && device_name[0] ? device_name : NULL);
    if (rc == STORE_EEXISTS)
        return SESS_MGR_EEXISTS;
    if (rc)
        return SESS_MGR_ESTORE;
    sess_t *s = add_session(m, name, device_name, key_hash);
    if (!s) {
        store_session_delete(m->o.store, name);
        return SESS_MGR_ESTORE;
    }
    LOG_INFO("session", "%s: session created", name);
    if (m->cluster)
        clu_kick(m->cluster); /* a node claims it (this one first) */
    else
        sess_start(s);
    if (out)
        *out = s;
    return 0;
}

int sess_mgr_set_key(sess_mgr_t *m, const char *name, const uint8_t key_hash[32])
{
    sess_t *s = sess_registry_find(m->o.reg, name);
    if (!s)
        return SESS_MGR_ENOTFOUND;
    int rc = store_session_set_key(m->o.store, name, key_hash);
    if (rc == STORE_ENOTFOUND) /* restored sessions always have a row; be safe */
        rc = store_session_add(m->o.store, name, key_hash, NULL);
    if (rc)
        return SESS_MGR_ESTORE;
    sess_set_key_hash(s, key_hash);
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

/* The device is unlinked (or will be on the next connection): the session
 * goes. */
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
    const char *name = sess_name(x->s);
    if (store_session_delete(m->o.store, name) != 0)
        LOG_ERROR("session", "%s: cannot delete the session from the store", name);
    LOG_INFO("session", "%s: session deleted", name);
    if (sess_registry_remove(m->o.reg, x->s, del_removed, x) != 0)
        del_removed(x);
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
    for (del_t *x = m->deleting, *next; x; x = next) {
        next = x->next; /* del_finish may unlink x */
        if (!x->finished)
            del_finish(x);
    }
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

static void clu_on_acquire(void *arg, const char *name, uint64_t epoch)
{
    sess_mgr_t *m = arg;
    if (m->stopping)
        return;
    sess_t *s = sess_registry_find(m->o.reg, name);
    store_session_t row;
    int stored = store_session_get(m->o.store, name, &row) == 0;
    if (!stored)
        row.device_name[0] = 0;
    if (!s && stored && sess_mgr_name_ok(name))
        s = add_session(m, name, NULL, row.has_key ? row.key_hash : NULL);
    if (!s || sess_has_driver(s)) {
        if (!s) /* deleted meanwhile: not ours to run */
            clu_release(m->cluster, name, epoch);
        return;
    }
    store_fence_set(m->o.store, name, epoch);
    sess_follow(s); /* the log is final: the previous owner is fenced */
    if (attach_driver(m, s, row.device_name[0] ? row.device_name : NULL) != 0) {
        LOG_ERROR("session", "%s: cannot start the session here", name);
        let_go(m, name, epoch);
        return;
    }
    explicit_bzero(&row, sizeof(row));
    sess_set_following(s, 0);
    LOG_INFO("session", "%s: running on this node (epoch %llu)", name, (unsigned long long)epoch);
    sess_start(s);
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

/* Sessions added or deleted on another node: followers come and go. */
static void clu_on_sessions(void *arg)
{
    sess_mgr_t *m = arg;
    store_session_t *all = NULL;
    size_t n = 0;
    if (m->stopping || store_sessions_list(m->o.store, &all, &n) != 0)
        return;
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
        if (s && sess_following(s) && !sess_has_driver(s) && !deleting) {
            LOG_INFO("session", "%s: session deleted on another node", v[i]->session);
            sess_registry_remove(m->o.reg, s, NULL, NULL);
        }
    }
    sess_snapshots_free(v, k);
    explicit_bzero(all, n * sizeof(*all));
    free(all);
}

/* The cluster's connection came back: every follower reads what it missed,
 * and the sessions added or deleted meanwhile come and go. */
static void clu_on_resync(void *arg)
{
    sess_mgr_t *m = arg;
    if (m->stopping)
        return;
    clu_on_sessions(m);
    size_t k = 0;
    sess_snapshot_t **v = sess_registry_snapshots(m->o.reg, &k);
    for (size_t i = 0; v && i < k; i++) {
        sess_t *s = sess_registry_find(m->o.reg, v[i]->session);
        if (s && sess_following(s))
            sess_follow_later(s);
    }
    sess_snapshots_free(v, k);
}

static void on_fenced_later(void *arg)
{
    handoff_t *h = arg;
    if (h->m->cluster && !h->m->stopping) {
        clu_count_fenced(h->m->cluster);
        clu_fenced(h->m->cluster, h->name); /* on_lose: let_go */
    }
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
