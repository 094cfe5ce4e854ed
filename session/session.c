/* Session registry, snapshots, subscriptions and the event log's group
 * commit (see session.h).
 *
 * Each session keeps its current snapshot behind a small mutex that is only
 * held to swap or take a reference, never across I/O. Publishing builds a new
 * immutable snapshot; with a journal it waits in a pending list that a
 * prepare handle commits once per loop iteration (one transaction for all),
 * then every snapshot is delivered: a reference goes into every live
 * subscriber's bounded queue. A full queue is ended, coalesced, or (with a
 * journal) replaced by catching up from the log, so a slow reader never
 * blocks the loop or the other subscribers. A subscription that catches up
 * reads pages of the log and goes back to live delivery, under the list
 * lock deliveries take, once it has read every delivered event; `seam`
 * drops the live copies of events it read ahead. */
#include "session/session.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "session/session_internal.h"

#define DEFAULT_MAX_QUEUE 256
/* Events stored per group commit transaction. */
#define FLUSH_BATCH 256
/* Events read from the log per page while a stream catches up. */
#define REPLAY_PAGE 64

struct sess_sub {
    sess_t *sess;         /* the session followed (holds a reference), or NULL */
    sess_registry_t *reg; /* for a registry-wide subscription, else NULL */
    sess_sub_opts_t opts;
    pthread_mutex_t mu; /* guards the queue fields below */
    sess_snapshot_t **ring;
    size_t cap, head, len; /* the ring grows on demand up to max */
    size_t max;
    uint64_t dropped;
    int ended;
    /* The event log (guarded by mu; the list lock also guards the switch
     * from replay to live). Keys are seqs on a session's stream, global
     * event ids on the registry-wide one. */
    int replay;         /* catching up from the log: live events are not queued */
    uint64_t cursor;    /* replay: the key of the last event read from the log */
    uint64_t handed;    /* the key of the last snapshot handed out (or before the first) */
    uint64_t seam;      /* live events with a key <= seam were read from the log */
    uint64_t gap_since; /* the first read checks for a gap after this key (0: done) */
    /* A resume from a key above what was delivered (0: none): a key the
     * log has (a stream that read it from the log before it was delivered
     * here) or one of another incarnation of the store. The first read
     * starts at the key itself and tells which: the key's own event is
     * dropped; nothing at or after it makes it a fresh start. */
    uint64_t probe;
    sess_registry_t *jreg; /* the registry when it has a journal, else NULL */
    /* With journal.read_async: a page of the log is being read off the
     * loop (reading); the subscriber went away meanwhile (gone: the read's
     * callback frees it). Guarded by mu. */
    int reading, gone;
    sess_sub_t *next; /* in the session's list (guarded by sess->sub_mu) */
};

struct sess {
    sess_registry_t *reg;
    char *name;
    pthread_mutex_t cur_mu; /* guards `current` */
    sess_snapshot_t *current;
    pthread_mutex_t sub_mu;     /* guards the subscriber list and `delivered` */
    sess_snapshot_t *delivered; /* the newest snapshot subscribers were given */
    sess_sub_t *subs;
    size_t nsubs;
    const sess_driver_ops_t *ops;
    void *drv;
    pthread_mutex_t key_mu; /* guards key_hash and has_key */
    uint8_t key_hash[32];
    int has_key;
    uint64_t connects; /* loop thread */
    int refs;          /* the registry's while listed, + sess_registry_get / subscriptions */
    int removed;       /* taken out of the registry (sess_registry_remove) */
    int following;     /* cluster: another node owns it; snapshots come from the log */
    int follow_busy, follow_again; /* sess_follow_later: a read in flight, another due */
    uint64_t epoch; /* cluster: the lease epoch its events are made under (loop thread) */
    size_t pending; /* its events waiting for the journal (loop thread) */
    void *parked;   /* a catch-up waiting for `pending` to reach 0 (sess_follow_async) */
    void (*removed_done)(void *);
    void *removed_arg;
    sess_t *next;
};

/* A published snapshot waiting for the journal's commit. */
typedef struct pend {
    sess_t *sess; /* holds a reference */
    sess_snapshot_t *snap;
    uint64_t epoch; /* the session's when it was published */
    struct pend *next;
} pend_t;

typedef struct post_item {
    void (*fn)(void *);
    void *arg;
    struct post_item *next;
} post_item_t;

struct sess_registry {
    uv_loop_t *loop;
    sess_render_hooks_t hooks;
    pthread_rwlock_t mu; /* guards the list and count */
    sess_t *sessions;    /* newest first */
    size_t count;
    pthread_mutex_t all_mu; /* guards the registry-wide subscriptions and delivered_id */
    sess_sub_t *all_subs;
    uint64_t delivered_id; /* the event id of the newest snapshot delivered */
    int reads;             /* atomic: reads of the log in flight (log_read) */
    /* With journal.read_async (PostgreSQL, several nodes writing the log):
     * the registry-wide subscriptions are fed by reading the log in id
     * order after `cursor`, so that their event ids only grow whichever
     * node wrote each event (ids commit in order). Loop thread. */
    struct {
        int on, busy, again;
        uint64_t cursor;
        sess_event_t ev[REPLAY_PAGE];
        size_t n;
        uint64_t pruned;
    } tail;
    sess_journal_t journal;
    int has_journal;
    uv_prepare_t flush;            /* commits the pending events once per loop iteration */
    pend_t *pend_head, *pend_tail; /* loop thread */
    uv_async_t async;
    pthread_mutex_t post_mu; /* guards the post queue and `closing` */
    post_item_t *post_head, *post_tail;
    int closing;
    /* The group commit in flight with journal.append_async (loop thread). */
    struct {
        int busy;
        size_t n, m;
        pend_t *batch[FLUSH_BATCH];
        sess_event_t ev[FLUSH_BATCH];
        size_t slot[FLUSH_BATCH];
    } inflight;
    /* Drivers detached by sess_stop_driver and still stopping (loop
     * thread); a registry stop waits for them too (stop_join). */
    size_t detaching;
    void *stop_join;
};

const char *sess_state_name(sess_state_t st)
{
    switch (st) {
    case SESS_DISCONNECTED:
        return "DISCONNECTED";
    case SESS_CONNECTING:
        return "CONNECTING";
    case SESS_QR_READY:
        return "QR_READY";
    case SESS_CONNECTED:
        return "CONNECTED";
    }
    return "DISCONNECTED";
}

int64_t sess_now_ms(void)
{
    return clk_now_ms();
}

/* --- QR and account helpers --- */

static void qr_unref(sess_qr_t *qr)
{
    if (!qr || __atomic_sub_fetch(&qr->refcount_, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (qr->rendered && qr->free_rendered_)
        qr->free_rendered_(qr->rendered);
    if (qr->text) /* it holds the adv secret and the device's public keys */
        explicit_bzero(qr->text, strlen(qr->text));
    free(qr->text);
    free(qr);
}

static sess_qr_t *qr_ref(sess_qr_t *qr)
{
    if (qr)
        __atomic_add_fetch(&qr->refcount_, 1, __ATOMIC_RELAXED);
    return qr;
}

static void account_clear(sess_account_t *a)
{
    free(a->jid);
    free(a->lid);
    free(a->phone);
    free(a->push_name);
    free(a->platform);
    free(a->business_name);
    memset(a, 0, sizeof(*a));
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static int account_copy(sess_account_t *dst, const sess_account_t *src)
{
    memset(dst, 0, sizeof(*dst));
    if (dup_str(&dst->jid, src->jid) || dup_str(&dst->lid, src->lid) ||
        dup_str(&dst->phone, src->phone) || dup_str(&dst->push_name, src->push_name) ||
        dup_str(&dst->platform, src->platform) ||
        dup_str(&dst->business_name, src->business_name)) {
        account_clear(dst);
        return -1;
    }
    return 0;
}

/* --- snapshots --- */

sess_snapshot_t *sess_snapshot_ref(sess_snapshot_t *s)
{
    if (s)
        __atomic_add_fetch(&s->refcount_, 1, __ATOMIC_RELAXED);
    return s;
}

void sess_snapshot_unref(sess_snapshot_t *s)
{
    if (!s || __atomic_sub_fetch(&s->refcount_, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free((char *)s->session);
    free((char *)s->detail);
    account_clear(&s->account);
    qr_unref(s->qr);
    if (s->link_code)
        explicit_bzero((char *)s->link_code, strlen(s->link_code));
    free((char *)s->link_code);
    free((char *)s->passkey_options);
    free(s);
}

int64_t sess_snapshot_qr_remaining_ms(const sess_snapshot_t *s, int64_t now_ms)
{
    if (!s->qr || s->state != SESS_QR_READY)
        return 0;
    int64_t left = s->qr->expires_at_ms - now_ms;
    return left > 0 ? left : 0;
}

int64_t sess_snapshot_qr_expires_in(const sess_snapshot_t *s, int64_t now_ms)
{
    return (sess_snapshot_qr_remaining_ms(s, now_ms) + 999) / 1000;
}

uint64_t sess_snapshot_event_id(const sess_snapshot_t *s)
{
    return __atomic_load_n(&s->event_id_, __ATOMIC_ACQUIRE);
}

sess_snapshot_t *sess_snapshot_new_(const char *name, const char *detail)
{
    sess_snapshot_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->refcount_ = 1;
    s->session = strdup(name);
    s->detail = strdup(detail ? detail : "");
    if (!s->session || !s->detail) {
        sess_snapshot_unref(s);
        return NULL;
    }
    return s;
}

sess_qr_t *sess_qr_new_(sess_registry_t *reg, const char *text, int64_t expires_at_ms)
{
    sess_qr_t *qr = calloc(1, sizeof(*qr));
    if (!qr || !(qr->text = strdup(text))) {
        free(qr);
        return NULL;
    }
    qr->refcount_ = 1;
    qr->expires_at_ms = expires_at_ms;
    if (reg->hooks.render) {
        qr->rendered = reg->hooks.render(qr->text, reg->hooks.arg);
        qr->free_rendered_ = reg->hooks.free_rendered;
    }
    return qr;
}

/* --- registry --- */

static void on_async(uv_async_t *h)
{
    sess_registry_t *reg = h->data;
    for (;;) {
        pthread_mutex_lock(&reg->post_mu);
        post_item_t *it = reg->post_head;
        reg->post_head = NULL;
        reg->post_tail = NULL;
        pthread_mutex_unlock(&reg->post_mu);
        if (!it)
            return;
        while (it) {
            post_item_t *next = it->next;
            it->fn(it->arg);
            free(it);
            it = next;
        }
    }
}

sess_registry_t *sess_registry_new(uv_loop_t *loop, const sess_render_hooks_t *hooks)
{
    sess_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    reg->loop = loop;
    if (hooks)
        reg->hooks = *hooks;
    pthread_mutex_init(&reg->post_mu, NULL);
    pthread_rwlock_init(&reg->mu, NULL);
    pthread_mutex_init(&reg->all_mu, NULL);
    if (uv_async_init(loop, &reg->async, on_async) != 0) {
        pthread_mutex_destroy(&reg->post_mu);
        pthread_rwlock_destroy(&reg->mu);
        pthread_mutex_destroy(&reg->all_mu);
        free(reg);
        return NULL;
    }
    reg->async.data = reg;
    uv_prepare_init(loop, &reg->flush);
    reg->flush.data = reg;
    return reg;
}

void sess_registry_set_journal(sess_registry_t *reg, const sess_journal_t *j)
{
    reg->journal = *j;
    reg->has_journal = 1;
    uint64_t id = 0;
    if (j->read_async && j->last_id && j->last_id(j->arg, &id) == 0) {
        reg->tail.on = 1; /* the log's order from its current end on */
        reg->tail.cursor = reg->delivered_id = id;
    }
}

int sess_registry_post(sess_registry_t *reg, void (*fn)(void *arg), void *arg)
{
    post_item_t *it = malloc(sizeof(*it));
    if (!it)
        return -1;
    it->fn = fn;
    it->arg = arg;
    it->next = NULL;
    pthread_mutex_lock(&reg->post_mu);
    if (reg->closing) {
        pthread_mutex_unlock(&reg->post_mu);
        free(it);
        return -1;
    }
    if (reg->post_tail)
        reg->post_tail->next = it;
    else
        reg->post_head = it;
    reg->post_tail = it;
    uv_async_send(&reg->async);
    pthread_mutex_unlock(&reg->post_mu);
    return 0;
}

static void sub_end_locked(sess_sub_t *sub);
static int sub_push_locked(sess_sub_t *sub, sess_snapshot_t *snap);
static void flush_pending(sess_registry_t *reg);
static void emit(sess_t *s, sess_snapshot_t *snap);
static sess_t *find_locked(sess_registry_t *reg, const char *name);
static void tail_kick(sess_registry_t *reg);

/* Ends one subscription and wakes its consumer. */
static void end_sub(sess_sub_t *sub)
{
    pthread_mutex_lock(&sub->mu);
    sub_end_locked(sub);
    pthread_mutex_unlock(&sub->mu);
    if (sub->opts.notify)
        sub->opts.notify(sub->opts.arg);
}

/* Ends every subscription of a session (they see SESS_SUB_ENDED). */
static void end_subs(sess_t *s)
{
    pthread_mutex_lock(&s->sub_mu);
    for (sess_sub_t *sub = s->subs; sub; sub = sub->next)
        end_sub(sub);
    pthread_mutex_unlock(&s->sub_mu);
}

/* Frees a session's memory (its driver is already destroyed). */
static void sess_free(sess_t *s)
{
    sess_snapshot_unref(s->current);
    sess_snapshot_unref(s->delivered);
    pthread_mutex_destroy(&s->cur_mu);
    pthread_mutex_destroy(&s->sub_mu);
    pthread_mutex_destroy(&s->key_mu);
    explicit_bzero(s->key_hash, sizeof(s->key_hash));
    free(s->name);
    free(s);
}

void sess_set_key_hash(sess_t *s, const uint8_t hash[32])
{
    pthread_mutex_lock(&s->key_mu);
    if (hash)
        memcpy(s->key_hash, hash, 32);
    else
        memset(s->key_hash, 0, 32);
    s->has_key = hash != NULL;
    pthread_mutex_unlock(&s->key_mu);
}

int sess_key_matches(sess_t *s, const uint8_t hash[32])
{
    pthread_mutex_lock(&s->key_mu);
    unsigned diff = s->has_key ? 0 : 1;
    for (int i = 0; i < 32; i++)
        diff |= (unsigned)(s->key_hash[i] ^ hash[i]);
    pthread_mutex_unlock(&s->key_mu);
    return diff == 0;
}

void sess_ref(sess_t *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void sess_unref(sess_t *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        sess_free(s);
}

void sess_registry_close(sess_registry_t *reg)
{
    pthread_mutex_lock(&reg->post_mu);
    int was = reg->closing;
    reg->closing = 1;
    pthread_mutex_unlock(&reg->post_mu);
    if (was)
        return;
    on_async(&reg->async); /* run what was posted before closing */
    uv_close((uv_handle_t *)&reg->async, NULL);
    flush_pending(reg); /* what was published is stored and delivered */
    uv_close((uv_handle_t *)&reg->flush, NULL);
    pthread_rwlock_rdlock(&reg->mu);
    for (sess_t *s = reg->sessions; s; s = s->next)
        end_subs(s);
    pthread_rwlock_unlock(&reg->mu);
    pthread_mutex_lock(&reg->all_mu);
    for (sess_sub_t *sub = reg->all_subs; sub; sub = sub->next)
        end_sub(sub);
    pthread_mutex_unlock(&reg->all_mu);
}

void sess_registry_free(sess_registry_t *reg)
{
    if (!reg)
        return;
    sess_t *s = reg->sessions;
    while (s) {
        sess_t *next = s->next;
        if (s->ops && s->ops->destroy)
            s->ops->destroy(s->drv);
        s->ops = NULL;
        sess_unref(s); /* subscriptions still owned by callers keep it alive */
        s = next;
    }
    pthread_mutex_lock(&reg->all_mu);
    for (sess_sub_t *sub = reg->all_subs; sub; sub = sub->next)
        sub->reg = NULL; /* detached: the owner still frees it */
    pthread_mutex_unlock(&reg->all_mu);
    while (reg->pend_head) { /* published after the registry closed: never delivered */
        pend_t *p = reg->pend_head;
        reg->pend_head = p->next;
        sess_snapshot_unref(p->snap);
        sess_unref(p->sess);
        free(p);
    }
    post_item_t *it = reg->post_head;
    while (it) {
        post_item_t *next = it->next;
        free(it);
        it = next;
    }
    pthread_mutex_destroy(&reg->post_mu);
    pthread_rwlock_destroy(&reg->mu);
    pthread_mutex_destroy(&reg->all_mu);
    free(reg);
}

/* The newest stored event of `name` as a snapshot (a new reference), or
 * NULL when the log has none or cannot be read. Loop thread. */
static sess_snapshot_t *newest_stored(sess_registry_t *reg, const char *name)
{
    uint64_t last = 0, pruned = 0;
    sess_event_t ev;
    size_t n = 0;
    if (!reg->has_journal || reg->journal.last_seq(reg->journal.arg, name, &last) != 0 || !last)
        return NULL;
    if (reg->journal.read(reg->journal.arg, name, last - 1, 1, &ev, &n, &pruned) != 0 || n != 1)
        return NULL;
    sess_snapshot_t *snap = sess_event_parse(reg, ev.body, ev.body_len);
    if (snap)
        __atomic_store_n(&snap->event_id_, ev.id, __ATOMIC_RELEASE);
    sess_event_clear(&ev);
    return snap;
}

static sess_t *registry_add(sess_registry_t *reg, const char *name, int follow);
static void deliver(sess_t *s, sess_snapshot_t *snap);
static int newest_later(sess_t *s, uint64_t last);

sess_t *sess_registry_add(sess_registry_t *reg, const char *name)
{
    return registry_add(reg, name, 0);
}

sess_t *sess_registry_add_follower(sess_registry_t *reg, const char *name)
{
    return registry_add(reg, name, 1);
}

static sess_t *registry_add(sess_registry_t *reg, const char *name, int follow)
{
    if (sess_registry_find(reg, name))
        return NULL;
    sess_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->reg = reg;
    s->name = strdup(name);
    s->current = sess_snapshot_new_(name, "");
    if (!s->name || !s->current) {
        free(s->name);
        sess_snapshot_unref(s->current);
        free(s);
        return NULL;
    }
    uint64_t last = 0;
    if (reg->has_journal && reg->journal.last_seq(reg->journal.arg, name, &last) != 0)
        last = 0; /* the journal refuses a seq it has given: logged there */
    s->current->seq = follow ? last : last + 1;
    s->current->state = SESS_DISCONNECTED;
    s->current->since_ms = s->current->changed_ms = sess_now_ms();
    s->following = follow;
    /* with read_async (PostgreSQL) the newest event is read off the loop */
    int later = follow && reg->has_journal && reg->journal.read_async;
    if (follow && !later) { /* as the log last saw it: the owner's newest event */
        sess_snapshot_t *newest = newest_stored(reg, name);
        if (newest) {
            sess_snapshot_unref(s->current);
            s->current = newest;
        }
    }
    pthread_mutex_init(&s->cur_mu, NULL);
    pthread_mutex_init(&s->sub_mu, NULL);
    pthread_mutex_init(&s->key_mu, NULL);
    s->refs = 1;
    pthread_rwlock_wrlock(&reg->mu);
    if (find_locked(reg, name)) {
        pthread_rwlock_unlock(&reg->mu);
        sess_free(s);
        return NULL;
    }
    s->next = reg->sessions;
    reg->sessions = s;
    reg->count++;
    pthread_rwlock_unlock(&reg->mu);
    if (later && newest_later(s, last) == 0) {
        /* delivered once read */
    } else if (follow) { /* stored already: delivered as it is */
        deliver(s, s->current);
        sess_follow(s); /* and newer ones the journal's table did not know of */
    } else
        emit(s, sess_snapshot_ref(s->current)); /* registry-wide watchers learn of it */
    return s;
}

void sess_set_following(sess_t *s, int on)
{
    __atomic_store_n(&s->following, on != 0, __ATOMIC_RELEASE);
}

int sess_following(const sess_t *s)
{
    return __atomic_load_n(&s->following, __ATOMIC_ACQUIRE);
}

void sess_set_epoch(sess_t *s, uint64_t epoch)
{
    s->epoch = epoch;
}

static uint64_t delivered_seq(sess_t *s)
{
    pthread_mutex_lock(&s->sub_mu);
    uint64_t seq = s->delivered ? s->delivered->seq : 0;
    pthread_mutex_unlock(&s->sub_mu);
    return seq;
}

/* A read of the log off the loop in flight (log_read). */
typedef struct {
    sess_registry_t *reg;
    void (*done)(void *ctx, int rc);
    void *ctx;
} log_read_t;

static void on_log_read(void *arg, int rc)
{
    log_read_t r = *(log_read_t *)arg;
    free(arg);
    r.done(r.ctx, rc);
    /* after done, which may start the next read: never 0 in between */
    __atomic_sub_fetch(&r.reg->reads, 1, __ATOMIC_ACQ_REL);
}

/* journal.read_async, counted in reads while in flight (what
 * sess_registry_flushing reports). 0, or -1 when it cannot start (done is
 * not called then). Any thread. */
static int log_read(sess_registry_t *reg, const char *session, uint64_t after, size_t max,
                    sess_event_t *out, size_t *n, uint64_t *pruned, void (*done)(void *ctx, int rc),
                    void *ctx)
{
    log_read_t *r = malloc(sizeof(*r));
    if (!r)
        return -1;
    *r = (log_read_t){reg, done, ctx};
    __atomic_add_fetch(&reg->reads, 1, __ATOMIC_ACQ_REL);
    if (reg->journal.read_async(reg->journal.arg, session, after, max, out, n, pruned, on_log_read,
                                r) != 0) {
        __atomic_sub_fetch(&reg->reads, 1, __ATOMIC_ACQ_REL);
        free(r);
        return -1;
    }
    return 0;
}

/* A follower's newest stored event being read (registry_add, with
 * read_async). */
typedef struct {
    sess_t *s;          /* holds a reference */
    uint64_t last;      /* the journal's last seq when it was added */
    sess_event_t ev[2]; /* from seq `last` on: a second one says the journal knew an older */
    size_t n;
    uint64_t pruned;
} newest_read_t;

/* The newest stored event is read: it becomes the follower's current
 * snapshot and is delivered (nothing stored: the DISCONNECTED one it
 * has). */
static void on_newest_read(void *ctx, int rc)
{
    newest_read_t *f = ctx;
    sess_t *s = f->s;
    if (!s->removed && !s->reg->closing && !s->delivered) { /* (loop thread: its writer) */
        sess_snapshot_t *snap =
            rc == 0 && f->n ? sess_event_parse(s->reg, f->ev[0].body, f->ev[0].body_len) : NULL;
        if (snap) {
            __atomic_store_n(&snap->event_id_, f->ev[0].id, __ATOMIC_RELEASE);
            pthread_mutex_lock(&s->cur_mu);
            sess_snapshot_t *old = s->current;
            s->current = sess_snapshot_ref(snap);
            pthread_mutex_unlock(&s->cur_mu);
            sess_snapshot_unref(old);
            deliver(s, snap);
            sess_snapshot_unref(snap);
            if ((f->n > 1 || f->ev[0].seq != f->last) && s->following)
                sess_follow_later(s); /* the journal knew an older one: read on */
        } else {
            sess_snapshot_t *cur = sess_current(s);
            deliver(s, cur);
            sess_snapshot_unref(cur);
        }
    }
    for (size_t i = 0; i < f->n; i++)
        sess_event_clear(&f->ev[i]);
    sess_unref(s);
    free(f);
}

/* Reads a new follower's newest stored event off the loop. 0, or -1 when
 * it cannot start (nothing is called then). */
static int newest_later(sess_t *s, uint64_t last)
{
    sess_registry_t *reg = s->reg;
    newest_read_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sess_ref(s);
    f->s = s;
    f->last = last;
    if (log_read(reg, s->name, last ? last - 1 : 0, 2, f->ev, &f->n, &f->pruned, on_newest_read,
                 f) != 0) {
        sess_unref(s);
        free(f);
        return -1;
    }
    return 0;
}

/* Delivers the events read from the log after `after` (those above the
 * newest delivered one: another read may have delivered some meanwhile)
 * and clears them. Returns how many were delivered. Loop thread. */
static int follow_deliver(sess_t *s, uint64_t after, sess_event_t *ev, size_t n, uint64_t pruned)
{
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        sess_snapshot_t *snap = ev[i].seq > delivered_seq(s)
                                    ? sess_event_parse(s->reg, ev[i].body, ev[i].body_len)
                                    : NULL;
        if (snap && snap->seq == ev[i].seq) {
            __atomic_store_n(&snap->event_id_, ev[i].id, __ATOMIC_RELEASE);
            if (after && pruned > after && ev[i].seq > after + 1 && i == 0) {
                snap->gap_from = after + 1; /* retention took the ones between */
                snap->gap_to = ev[i].seq - 1;
            }
            pthread_mutex_lock(&s->cur_mu);
            sess_snapshot_t *old = s->current;
            s->current = sess_snapshot_ref(snap);
            pthread_mutex_unlock(&s->cur_mu);
            sess_snapshot_unref(old);
            deliver(s, snap);
            total++;
        }
        sess_snapshot_unref(snap);
        sess_event_clear(&ev[i]);
    }
    return total;
}

int sess_follow(sess_t *s)
{
    sess_registry_t *reg = s->reg;
    if (!reg->has_journal)
        return -1;
    int total = 0;
    for (int page = 0; page < 1000; page++) { /* bounded: 64k events per call */
        uint64_t after = delivered_seq(s);
        sess_event_t ev[REPLAY_PAGE];
        size_t n = 0;
        uint64_t pruned = 0;
        if (reg->journal.read(reg->journal.arg, s->name, after, REPLAY_PAGE, ev, &n, &pruned) != 0)
            return total ? total : -1;
        total += follow_deliver(s, after, ev, n, pruned);
        if (n < REPLAY_PAGE)
            break;
    }
    return total;
}

/* One read of a follower's log in flight (sess_follow_later). */
typedef struct {
    sess_t *s; /* holds a reference */
    uint64_t after;
    sess_event_t ev[REPLAY_PAGE];
    size_t n;
    uint64_t pruned;
} follow_read_t;

static void follow_start(sess_t *s);

static void on_follow_read(void *ctx, int rc)
{
    follow_read_t *f = ctx;
    sess_t *s = f->s;
    int more = 0;
    if (rc == 0 && s->following && !s->removed && !s->reg->closing) {
        follow_deliver(s, f->after, f->ev, f->n, f->pruned);
        more = f->n == REPLAY_PAGE;
    } else {
        for (size_t i = 0; i < f->n; i++)
            sess_event_clear(&f->ev[i]);
    }
    s->follow_busy = 0;
    if ((more || s->follow_again) && s->following && !s->removed && !s->reg->closing)
        follow_start(s);
    sess_unref(s);
    free(f);
}

static void follow_start(sess_t *s)
{
    sess_registry_t *reg = s->reg;
    follow_read_t *f = calloc(1, sizeof(*f));
    if (!f) {
        sess_follow(s);
        return;
    }
    s->follow_again = 0;
    s->follow_busy = 1;
    sess_ref(s);
    f->s = s;
    f->after = delivered_seq(s);
    if (log_read(reg, s->name, f->after, REPLAY_PAGE, f->ev, &f->n, &f->pruned, on_follow_read,
                 f) != 0) {
        s->follow_busy = 0;
        sess_unref(s);
        free(f);
        sess_follow(s);
    }
}

void sess_follow_later(sess_t *s)
{
    if (!s->reg->has_journal || !s->reg->journal.read_async) {
        sess_follow(s);
        return;
    }
    if (s->follow_busy)
        s->follow_again = 1; /* read again once this one is delivered */
    else
        follow_start(s);
}

/* A complete catch-up in flight (sess_follow_async). */
typedef struct {
    sess_t *s; /* holds a reference */
    uint64_t after;
    sess_event_t ev[REPLAY_PAGE];
    size_t n;
    uint64_t pruned;
    int total, pages;
    void (*done)(void *arg, int rc);
    void *arg;
} catchup_t;

static void catchup_end(catchup_t *c, int rc)
{
    void (*done)(void *, int) = c->done;
    void *arg = c->arg;
    sess_unref(c->s);
    free(c);
    done(arg, rc);
}

static void catchup_next(void *arg);

static void on_catchup_read(void *ctx, int rc)
{
    catchup_t *c = ctx;
    sess_t *s = c->s;
    if (rc != 0 || s->removed || s->reg->closing) {
        for (size_t i = 0; i < c->n; i++)
            sess_event_clear(&c->ev[i]);
        catchup_end(c, rc != 0 && !c->total ? -1 : c->total);
        return;
    }
    c->total += follow_deliver(s, c->after, c->ev, c->n, c->pruned);
    if (c->n == REPLAY_PAGE && ++c->pages < 1000) /* bounded as sess_follow */
        catchup_next(c);
    else
        catchup_end(c, c->total);
}

static void catchup_next(void *arg)
{
    catchup_t *c = arg;
    sess_registry_t *reg = c->s->reg;
    c->after = delivered_seq(c->s);
    c->n = 0;
    c->pruned = 0;
    if (log_read(reg, c->s->name, c->after, REPLAY_PAGE, c->ev, &c->n, &c->pruned, on_catchup_read,
                 c) != 0)
        catchup_end(c, c->total ? c->total : -1);
}

int sess_follow_async(sess_t *s, void (*done)(void *arg, int rc), void *arg)
{
    sess_registry_t *reg = s->reg;
    if (!reg->has_journal || !reg->journal.read_async) {
        done(arg, sess_follow(s));
        return 0;
    }
    catchup_t *c = calloc(1, sizeof(*c));
    if (!c) {
        done(arg, sess_follow(s));
        return 0;
    }
    sess_ref(s);
    c->s = s;
    c->done = done;
    c->arg = arg;
    if (s->pending && !s->parked) {
        /* what it published itself settles first (stored, or refused by
         * the fence and taken back): the log is then all it has shown */
        s->parked = c;
        return 0;
    }
    catchup_next(c);
    return 0;
}

uv_loop_t *sess_registry_loop(sess_registry_t *reg)
{
    return reg->loop;
}

static sess_t *find_locked(sess_registry_t *reg, const char *name)
{
    for (sess_t *s = reg->sessions; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

sess_t *sess_registry_find(sess_registry_t *reg, const char *name)
{
    pthread_rwlock_rdlock(&reg->mu);
    sess_t *s = find_locked(reg, name);
    pthread_rwlock_unlock(&reg->mu);
    return s;
}

sess_t *sess_registry_get(sess_registry_t *reg, const char *name)
{
    pthread_rwlock_rdlock(&reg->mu);
    sess_t *s = find_locked(reg, name);
    if (s)
        sess_ref(s);
    pthread_rwlock_unlock(&reg->mu);
    return s;
}

sess_t *sess_registry_find_by_key(sess_registry_t *reg, const uint8_t hash[32])
{
    sess_t *found = NULL;
    pthread_rwlock_rdlock(&reg->mu);
    for (sess_t *s = reg->sessions; s; s = s->next)
        if (sess_key_matches(s, hash) && !found) /* no early exit: same time for all */
            found = s;
    if (found)
        sess_ref(found);
    pthread_rwlock_unlock(&reg->mu);
    return found;
}

size_t sess_registry_count(sess_registry_t *reg)
{
    pthread_rwlock_rdlock(&reg->mu);
    size_t n = reg->count;
    pthread_rwlock_unlock(&reg->mu);
    return n;
}

sess_snapshot_t **sess_registry_snapshots(sess_registry_t *reg, size_t *n)
{
    pthread_rwlock_rdlock(&reg->mu);
    sess_snapshot_t **v = malloc((reg->count ? reg->count : 1) * sizeof(*v));
    size_t k = 0;
    if (v) {
        /* oldest first: the list is newest first */
        k = reg->count;
        size_t i = k;
        for (sess_t *s = reg->sessions; s && i > 0; s = s->next)
            v[--i] = sess_current(s);
    }
    pthread_rwlock_unlock(&reg->mu);
    *n = k;
    return v;
}

void sess_snapshots_free(sess_snapshot_t **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        sess_snapshot_unref(v[i]);
    free(v);
}

static void on_removed_stopped(void *arg)
{
    sess_t *s = arg;
    if (s->ops && s->ops->destroy)
        s->ops->destroy(s->drv);
    s->ops = NULL;
    s->drv = NULL;
    void (*done)(void *) = s->removed_done;
    void *darg = s->removed_arg;
    sess_unref(s); /* the registry's reference */
    if (done)
        done(darg);
}

int sess_registry_remove(sess_registry_t *reg, sess_t *s, void (*done)(void *arg), void *arg)
{
    pthread_rwlock_wrlock(&reg->mu);
    int found = 0;
    for (sess_t **pp = &reg->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            reg->count--;
            found = 1;
            break;
        }
    pthread_rwlock_unlock(&reg->mu);
    if (!found || s->removed)
        return -1;
    s->removed = 1;
    s->removed_done = done;
    s->removed_arg = arg;
    end_subs(s);
    if (s->ops && s->ops->stop)
        s->ops->stop(s->drv, on_removed_stopped, s);
    else
        on_removed_stopped(s);
    return 0;
}

const char *sess_name(const sess_t *s)
{
    return s->name;
}

sess_registry_t *sess_registry_of(const sess_t *s)
{
    return s->reg;
}

sess_snapshot_t *sess_current(sess_t *s)
{
    pthread_mutex_lock(&s->cur_mu);
    sess_snapshot_t *snap = sess_snapshot_ref(s->current);
    pthread_mutex_unlock(&s->cur_mu);
    return snap;
}

/* --- subscriptions --- */

static void sub_end_locked(sess_sub_t *sub)
{
    sub->ended = 1;
}

/* The key of a snapshot on this subscription's stream: the seq on a
 * session's, the event id on the registry-wide one. */
static uint64_t sub_key(const sess_sub_t *sub, const sess_snapshot_t *snap)
{
    return sub->sess ? snap->seq : sess_snapshot_event_id(snap);
}

/* Doubles the ring (up to max), keeping the queue's order. 0 or -1. */
static int sub_grow_locked(sess_sub_t *sub)
{
    size_t cap = sub->cap * 2 > sub->max ? sub->max : sub->cap * 2;
    if (cap <= sub->cap)
        return -1;
    sess_snapshot_t **ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return -1;
    for (size_t i = 0; i < sub->len; i++)
        ring[i] = sub->ring[(sub->head + i) % sub->cap];
    free(sub->ring);
    sub->ring = ring;
    sub->cap = cap;
    sub->head = 0;
    return 0;
}

static void sub_clear_locked(sess_sub_t *sub, int count_dropped)
{
    while (sub->len > 0) {
        sess_snapshot_unref(sub->ring[sub->head]);
        sub->head = (sub->head + 1) % sub->cap;
        sub->len--;
        if (count_dropped)
            sub->dropped++;
    }
}

/* Queues a reference to `snap`; returns 1 when the consumer must be woken. */
static int sub_push_locked(sess_sub_t *sub, sess_snapshot_t *snap)
{
    if (sub->ended)
        return 0;
    if (sub->len == sub->cap && sub_grow_locked(sub) != 0) {
        if (sub->opts.policy == SESS_SLOW_DISCONNECT) {
            sub_end_locked(sub);
            return 1;
        }
        if (sub->jreg) {
            /* lossless: forget the queue, catch up from the log after what
             * was handed out (every delivered event is stored) */
            sub_clear_locked(sub, 0);
            sub->replay = 1;
            sub->cursor = sub->handed;
            return 1;
        }
        sub_clear_locked(sub, 1); /* coalesce: keep only the newest */
    }
    sub->ring[(sub->head + sub->len) % sub->cap] = sess_snapshot_ref(snap);
    sub->len++;
    return sub->len == 1;
}

/* Offers a delivered snapshot to a subscription (under its list's lock). */
static void sub_offer(sess_sub_t *sub, sess_snapshot_t *snap)
{
    pthread_mutex_lock(&sub->mu);
    uint64_t key = sub_key(sub, snap);
    int wake;
    if (sub->replay)
        wake = !sub->ended; /* it reads the log: there is more to read */
    else if (key && key <= sub->seam)
        wake = 0; /* it read this one from the log already */
    else
        wake = sub_push_locked(sub, snap);
    pthread_mutex_unlock(&sub->mu);
    if (wake && sub->opts.notify)
        sub->opts.notify(sub->opts.arg);
}

static sess_sub_t *sub_new(sess_registry_t *reg, const sess_sub_opts_t *opts, size_t default_max)
{
    sess_sub_t *sub = calloc(1, sizeof(*sub));
    if (!sub)
        return NULL;
    if (opts)
        sub->opts = *opts;
    sub->max = sub->opts.max_queue ? sub->opts.max_queue : default_max;
    sub->cap = sub->max < 4 ? sub->max : 4; /* most subscribers keep up */
    sub->ring = calloc(sub->cap, sizeof(*sub->ring));
    if (!sub->ring) {
        free(sub);
        return NULL;
    }
    if (reg->has_journal)
        sub->jreg = reg;
    pthread_mutex_init(&sub->mu, NULL);
    return sub;
}

/* Without a log: a copy of `snap` saying that the events after `since`
 * and before it are not available. NULL when out of memory. */
static sess_snapshot_t *gap_copy(sess_registry_t *reg, const sess_snapshot_t *snap, uint64_t since)
{
    size_t len;
    char *json = sess_event_json(snap, &len);
    sess_snapshot_t *c = json ? sess_event_parse(reg, json, len) : NULL;
    free(json);
    if (c) {
        c->gap_from = since + 1;
        c->gap_to = snap->seq - 1;
    }
    return c;
}

/* Queues the session's current (delivered) snapshot `d`, if any, and makes
 * the subscription live from there (s->sub_mu and sub->mu held). Returns 1
 * when something was queued. */
static int push_current_locked(sess_sub_t *sub, sess_snapshot_t *d)
{
    int wake = d && !sub->ended ? sub_push_locked(sub, d) : 0;
    sub->handed = d && d->seq ? d->seq - 1 : 0;
    sub->replay = 0;
    sub->probe = 0;
    return wake;
}

sess_sub_t *sess_subscribe_since(sess_t *s, uint64_t since, const sess_sub_opts_t *opts)
{
    sess_sub_t *sub = sub_new(s->reg, opts, DEFAULT_MAX_QUEUE);
    if (!sub)
        return NULL;
    sub->sess = s;
    sess_ref(s);
    /* Starting from `delivered` and joining the list under sub_mu means no
     * change can slip between the first snapshot and the stream. */
    pthread_mutex_lock(&s->sub_mu);
    sess_snapshot_t *d = s->delivered; /* NULL until the first is stored */
    uint64_t head = d ? d->seq : 0;
    pthread_mutex_lock(&sub->mu);
    int wake = 0;
    if (since == 0 || (since > head && !sub->jreg)) { /* fresh, or another incarnation's */
        wake = push_current_locked(sub, d);
    } else if (sub->jreg) {
        sub->replay = 1;
        sub->cursor = sub->handed = sub->gap_since = since;
        if (since > head) /* read from the log before it was delivered here? */
            sub->cursor = sub->handed = (sub->probe = since) - 1;
        wake = 1;
    } else {
        if (since < head) {
            sess_snapshot_t *c = since + 1 < head ? gap_copy(s->reg, d, since) : NULL;
            wake = sub_push_locked(sub, c ? c : d);
            sess_snapshot_unref(c);
        }
        sub->handed = since;
    }
    pthread_mutex_unlock(&sub->mu);
    sub->next = s->subs;
    s->subs = sub;
    s->nsubs++;
    if (s->removed) {
        pthread_mutex_lock(&sub->mu);
        sub_end_locked(sub);
        pthread_mutex_unlock(&sub->mu);
        wake = 1;
    }
    if (wake && sub->opts.notify)
        sub->opts.notify(sub->opts.arg);
    pthread_mutex_unlock(&s->sub_mu);
    return sub;
}

sess_sub_t *sess_subscribe(sess_t *s, const sess_sub_opts_t *opts)
{
    return sess_subscribe_since(s, 0, opts);
}

/* Queues every session's current state on a registry-wide subscription
 * and makes it live from there (reg->all_mu held, so that no session can be
 * added or deliver meanwhile). Returns 1 when something was queued. */
static int push_current_all_locked(sess_registry_t *reg, sess_sub_t *sub)
{
    int wake = 0;
    pthread_rwlock_rdlock(&reg->mu);
    size_t n = 0;
    for (sess_t *s = reg->sessions; s; s = s->next)
        n++;
    sess_snapshot_t **v = calloc(n ? n : 1, sizeof(*v));
    size_t i = n;
    for (sess_t *s = reg->sessions; v && s && i > 0; s = s->next) {
        pthread_mutex_lock(&s->sub_mu);
        /* with the tail, an event beyond it comes through it */
        if (!reg->tail.on || !s->delivered ||
            sess_snapshot_event_id(s->delivered) <= reg->delivered_id)
            v[--i] = sess_snapshot_ref(s->delivered);
        else
            v[--i] = NULL;
        pthread_mutex_unlock(&s->sub_mu);
    }
    pthread_rwlock_unlock(&reg->mu);
    pthread_mutex_lock(&sub->mu);
    for (size_t k = 0; v && k < n; k++)
        if (v[k])
            wake |= sub_push_locked(sub, v[k]);
    sub->handed = reg->delivered_id;
    sub->replay = 0;
    sub->probe = 0;
    pthread_mutex_unlock(&sub->mu);
    sess_snapshots_free(v, n);
    return wake;
}

sess_sub_t *sess_registry_subscribe_since(sess_registry_t *reg, uint64_t since,
                                          const sess_sub_opts_t *opts)
{
    sess_sub_t *sub = sub_new(reg, opts, DEFAULT_MAX_QUEUE * 16);
    if (!sub)
        return NULL;
    sub->reg = reg;
    /* all_mu first, then the list: no session can be added or deliver
     * between the first snapshots and the stream */
    pthread_mutex_lock(&reg->all_mu);
    int wake = 0;
    if (since && sub->jreg) {
        pthread_mutex_lock(&sub->mu);
        sub->replay = 1;
        sub->cursor = sub->handed = sub->gap_since = since;
        if (since > reg->delivered_id) /* read from the log before it was delivered here? */
            sub->cursor = sub->handed = (sub->probe = since) - 1;
        pthread_mutex_unlock(&sub->mu);
        wake = 1;
    } else {
        wake = push_current_all_locked(reg, sub);
    }
    sub->next = reg->all_subs;
    reg->all_subs = sub;
    if (wake && sub->opts.notify)
        sub->opts.notify(sub->opts.arg);
    pthread_mutex_unlock(&reg->all_mu);
    return sub;
}

sess_sub_t *sess_registry_subscribe(sess_registry_t *reg, const sess_sub_opts_t *opts)
{
    return sess_registry_subscribe_since(reg, 0, opts);
}

/* The events of a replay page per read: the ring's room, at most a page. */
static size_t replay_max(const sess_sub_t *sub)
{
    return sub->max < REPLAY_PAGE ? sub->max : REPLAY_PAGE;
}

/* A probed resume key the log does not have: the subscription starts
 * afresh, with the current state (of its session, or of every session),
 * then live. */
static void fresh_start(sess_sub_t *sub)
{
    sess_t *s = sub->sess;
    if (!s) {
        pthread_mutex_lock(&sub->reg->all_mu);
        push_current_all_locked(sub->reg, sub);
        pthread_mutex_unlock(&sub->reg->all_mu);
        return;
    }
    pthread_mutex_lock(&s->sub_mu);
    pthread_mutex_lock(&sub->mu);
    push_current_locked(sub, s->delivered);
    pthread_mutex_unlock(&sub->mu);
    pthread_mutex_unlock(&s->sub_mu);
}

/* Queues a page read from the log after `after` (the queue was empty when
 * it was asked for) and clears the events. */
static void replay_apply(sess_sub_t *sub, uint64_t after, uint64_t gap_since, sess_event_t *ev,
                         size_t n, uint64_t pruned)
{
    sess_snapshot_t *snaps[REPLAY_PAGE];
    size_t k = 0;
    uint64_t last = after;
    const char *session = sub->sess ? sub->sess->name : NULL;
    pthread_mutex_lock(&sub->mu);
    uint64_t probe = sub->probe;
    sub->probe = 0;
    pthread_mutex_unlock(&sub->mu);
    if (probe && n == 0) { /* nothing at or after it: another incarnation's key */
        fresh_start(sub);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        last = session ? ev[i].seq : ev[i].id;
        if (last <= probe) { /* the resumed-from event itself: the client has it */
            sess_event_clear(&ev[i]);
            continue;
        }
        sess_snapshot_t *snap = sess_event_parse(sub->jreg, ev[i].body, ev[i].body_len);
        if (snap) { /* an event this code cannot read is skipped */
            __atomic_store_n(&snap->event_id_, ev[i].id, __ATOMIC_RELEASE);
            snaps[k++] = snap;
        }
        sess_event_clear(&ev[i]);
    }
    if (gap_since && pruned > gap_since && k > 0) {
        uint64_t first = sub_key(sub, snaps[0]);
        if (first > gap_since + 1) {
            snaps[0]->gap_from = gap_since + 1;
            snaps[0]->gap_to = first - 1;
        }
    }
    pthread_mutex_lock(&sub->mu);
    for (size_t i = 0; i < k; i++) {
        if (!sub->ended)
            sub_push_locked(sub, snaps[i]);
        sess_snapshot_unref(snaps[i]);
    }
    sub->cursor = last;
    sub->gap_since = 0;
    pthread_mutex_unlock(&sub->mu);
}

/* Reads the next page of the log into the queue (empty when called), on
 * the calling thread. Returns the number of events read, or -1 when the
 * log cannot be read. */
static int replay_page(sess_sub_t *sub, uint64_t after, uint64_t gap_since)
{
    sess_event_t ev[REPLAY_PAGE];
    size_t n = 0;
    uint64_t pruned = 0;
    const sess_journal_t *j = &sub->jreg->journal;
    if (j->read(j->arg, sub->sess ? sub->sess->name : NULL, after, replay_max(sub), ev, &n,
                &pruned) != 0)
        return -1;
    replay_apply(sub, after, gap_since, ev, n, pruned);
    return (int)n;
}

static void try_go_live(sess_sub_t *sub);
static void sub_free(sess_sub_t *sub);

/* A replay page read off the loop (journal.read_async). */
typedef struct {
    sess_sub_t *sub;
    sess_t *sess; /* the subscription's session (a reference), or NULL */
    uint64_t after, gap_since;
    sess_event_t ev[REPLAY_PAGE];
    size_t n;
    uint64_t pruned;
} replay_read_t;

/* The page is read (loop thread): queued, and the consumer woken to take
 * it; a subscriber gone meanwhile is freed here (the read holds a
 * reference to its session). */
static void on_replay_read(void *ctx, int rc)
{
    replay_read_t *r = ctx;
    sess_sub_t *sub = r->sub;
    pthread_mutex_lock(&sub->mu);
    int gone = sub->gone;
    if (!gone && rc != 0)
        sub_end_locked(sub); /* the log cannot be read: end; the client resumes later */
    pthread_mutex_unlock(&sub->mu);
    if (!gone && rc == 0) {
        replay_apply(sub, r->after, r->gap_since, r->ev, r->n, r->pruned);
        if (r->n < replay_max(sub))
            try_go_live(sub);
    } else {
        for (size_t i = 0; i < r->n; i++)
            sess_event_clear(&r->ev[i]);
    }
    pthread_mutex_lock(&sub->mu);
    sub->reading = 0;
    gone = sub->gone;
    if (!gone && sub->opts.notify) /* under mu: it cannot unsubscribe meanwhile */
        sub->opts.notify(sub->opts.arg);
    pthread_mutex_unlock(&sub->mu);
    if (gone)
        sub_free(sub);
    sess_unref(r->sess);
    free(r);
}

/* Starts reading the next page off the loop; sub->reading is set (under
 * mu) by the caller. 0, or -1 when it cannot start. */
static int replay_start(sess_sub_t *sub, uint64_t after, uint64_t gap_since)
{
    replay_read_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->sub = sub;
    r->sess = sub->sess;
    if (r->sess)
        sess_ref(r->sess);
    r->after = after;
    r->gap_since = gap_since;
    if (log_read(sub->jreg, sub->sess ? sub->sess->name : NULL, after, replay_max(sub), r->ev,
                 &r->n, &r->pruned, on_replay_read, r) != 0) {
        sess_unref(r->sess);
        free(r);
        return -1;
    }
    return 0;
}

/* After the log had nothing more: back to live delivery when every
 * delivered event has been read (under the list lock deliveries take). */
static void try_go_live(sess_sub_t *sub)
{
    sess_t *s = sub->sess;
    sess_registry_t *reg = sub->reg;
    if (s)
        pthread_mutex_lock(&s->sub_mu);
    else if (reg)
        pthread_mutex_lock(&reg->all_mu);
    else
        return;
    uint64_t head = s ? (s->delivered ? s->delivered->seq : 0) : reg->delivered_id;
    pthread_mutex_lock(&sub->mu);
    if (sub->replay && sub->cursor >= head) {
        sub->replay = 0;
        sub->seam = sub->cursor;
    }
    pthread_mutex_unlock(&sub->mu);
    if (s)
        pthread_mutex_unlock(&s->sub_mu);
    else
        pthread_mutex_unlock(&reg->all_mu);
}

int sess_sub_next(sess_sub_t *sub, sess_snapshot_t **out)
{
    for (int round = 0;; round++) {
        pthread_mutex_lock(&sub->mu);
        if (sub->len > 0) {
            *out = sub->ring[sub->head];
            sub->head = (sub->head + 1) % sub->cap;
            sub->len--;
            uint64_t key = sub_key(sub, *out);
            if (key > sub->handed)
                sub->handed = key;
            pthread_mutex_unlock(&sub->mu);
            return SESS_SUB_OK;
        }
        if (sub->ended || !sub->replay || round >= 3) {
            int rc = sub->ended ? SESS_SUB_ENDED : SESS_SUB_EMPTY;
            pthread_mutex_unlock(&sub->mu);
            return rc;
        }
        uint64_t after = sub->cursor, gap_since = sub->gap_since;
        if (sub->jreg->journal.read_async) { /* off the loop: the read wakes the consumer */
            int start = !sub->reading;
            sub->reading = 1;
            pthread_mutex_unlock(&sub->mu);
            if (start && replay_start(sub, after, gap_since) != 0) {
                pthread_mutex_lock(&sub->mu);
                sub->reading = 0;
                sub_end_locked(sub);
                pthread_mutex_unlock(&sub->mu);
                return SESS_SUB_ENDED;
            }
            return SESS_SUB_EMPTY;
        }
        pthread_mutex_unlock(&sub->mu);
        int n = replay_page(sub, after, gap_since);
        if (n < 0) { /* the log cannot be read: end; the client resumes later */
            pthread_mutex_lock(&sub->mu);
            sub_end_locked(sub);
            pthread_mutex_unlock(&sub->mu);
        } else if ((size_t)n < replay_max(sub)) {
            try_go_live(sub);
        }
    }
}

uint64_t sess_sub_dropped(sess_sub_t *sub)
{
    pthread_mutex_lock(&sub->mu);
    uint64_t d = sub->dropped;
    pthread_mutex_unlock(&sub->mu);
    return d;
}

void sess_unsubscribe(sess_sub_t *sub)
{
    if (!sub)
        return;
    sess_t *s = sub->sess;
    if (s) {
        pthread_mutex_lock(&s->sub_mu);
        for (sess_sub_t **pp = &s->subs; *pp; pp = &(*pp)->next) {
            if (*pp == sub) {
                *pp = sub->next;
                s->nsubs--;
                break;
            }
        }
        pthread_mutex_unlock(&s->sub_mu);
        sess_unref(s);
    }
    sess_registry_t *reg = sub->reg;
    if (reg) {
        pthread_mutex_lock(&reg->all_mu);
        for (sess_sub_t **pp = &reg->all_subs; *pp; pp = &(*pp)->next) {
            if (*pp == sub) {
                *pp = sub->next;
                break;
            }
        }
        pthread_mutex_unlock(&reg->all_mu);
    }
    pthread_mutex_lock(&sub->mu);
    int reading = sub->reading;
    sub->gone = 1;
    sub_clear_locked(sub, 0);
    pthread_mutex_unlock(&sub->mu);
    if (!reading) /* else the read's callback frees it */
        sub_free(sub);
}

static void sub_free(sess_sub_t *sub)
{
    sub_clear_locked(sub, 0);
    free(sub->ring);
    pthread_mutex_destroy(&sub->mu);
    free(sub);
}

size_t sess_subscriber_count(sess_t *s)
{
    pthread_mutex_lock(&s->sub_mu);
    size_t n = s->nsubs;
    pthread_mutex_unlock(&s->sub_mu);
    return n;
}

/* --- publishing --- */

void sess_count_connect(sess_t *s)
{
    s->connects++;
}

/* Gives `snap` to the session's and the registry-wide subscribers and
 * makes it the one new subscriptions start from. Loop thread. */
static void deliver(sess_t *s, sess_snapshot_t *snap)
{
    sess_registry_t *reg = s->reg;
    uint64_t id = sess_snapshot_event_id(snap);
    pthread_mutex_lock(&reg->all_mu);
    pthread_mutex_lock(&s->sub_mu);
    sess_snapshot_t *old = s->delivered;
    s->delivered = sess_snapshot_ref(snap);
    for (sess_sub_t *sub = s->subs; sub; sub = sub->next)
        sub_offer(sub, snap);
    pthread_mutex_unlock(&s->sub_mu);
    if (!reg->tail.on) {
        if (id > reg->delivered_id)
            reg->delivered_id = id;
        for (sess_sub_t *sub = reg->all_subs; sub; sub = sub->next)
            sub_offer(sub, snap);
    }
    pthread_mutex_unlock(&reg->all_mu);
    sess_snapshot_unref(old);
    if (reg->tail.on && id)
        tail_kick(reg); /* the registry-wide ones get it from the log, in id order */
}

/* The log's next page for the registry-wide subscriptions has been read:
 * each event is delivered to them in id order. Loop thread. */
static void on_tail_read(void *ctx, int rc)
{
    sess_registry_t *reg = ctx;
    reg->tail.busy = 0;
    size_t n = rc == 0 ? reg->tail.n : 0;
    for (size_t i = 0; i < reg->tail.n; i++) {
        sess_event_t *ev = &reg->tail.ev[i];
        sess_snapshot_t *snap =
            i < n && !reg->closing ? sess_event_parse(reg, ev->body, ev->body_len) : NULL;
        pthread_mutex_lock(&reg->all_mu);
        if (i < n && ev->id > reg->tail.cursor)
            reg->tail.cursor = ev->id;
        if (snap) { /* an event this code cannot read is skipped */
            __atomic_store_n(&snap->event_id_, ev->id, __ATOMIC_RELEASE);
            if (ev->id > reg->delivered_id)
                reg->delivered_id = ev->id;
            for (sess_sub_t *sub = reg->all_subs; sub; sub = sub->next)
                sub_offer(sub, snap);
        }
        pthread_mutex_unlock(&reg->all_mu);
        sess_snapshot_unref(snap);
        sess_event_clear(ev);
    }
    reg->tail.n = 0;
    if (rc != 0)
        reg->tail.again = 1; /* read again on the next kick */
    if ((n == REPLAY_PAGE || reg->tail.again) && rc == 0 && !reg->closing)
        tail_kick(reg);
}

static void tail_kick(sess_registry_t *reg)
{
    if (reg->closing)
        return;
    if (reg->tail.busy) {
        reg->tail.again = 1; /* once this read is delivered */
        return;
    }
    reg->tail.busy = 1;
    reg->tail.again = 0;
    reg->tail.n = 0;
    if (log_read(reg, NULL, reg->tail.cursor, REPLAY_PAGE, reg->tail.ev, &reg->tail.n,
                 &reg->tail.pruned, on_tail_read, reg) != 0) {
        reg->tail.busy = 0;
        reg->tail.again = 1; /* not started: the next delivery tries again */
    }
}

static void on_flush(uv_prepare_t *h)
{
    flush_pending(h->data);
}

/* Takes over the caller's reference to a newly published snapshot: with
 * a journal it waits for this loop iteration's commit, else it is
 * delivered at once. Loop thread. */
static void emit(sess_t *s, sess_snapshot_t *snap)
{
    sess_registry_t *reg = s->reg;
    pend_t *p = reg->has_journal ? malloc(sizeof(*p)) : NULL;
    if (!p) { /* no log (or no memory for the wait): live only */
        deliver(s, snap);
        sess_snapshot_unref(snap);
        return;
    }
    sess_ref(s);
    p->sess = s;
    p->snap = snap;
    p->epoch = s->epoch;
    p->next = NULL;
    s->pending++;
    if (reg->pend_tail)
        reg->pend_tail->next = p;
    else
        reg->pend_head = p;
    reg->pend_tail = p;
    if (!uv_is_active((uv_handle_t *)&reg->flush) && !uv_is_closing((uv_handle_t *)&reg->flush))
        uv_prepare_start(&reg->flush, on_flush);
}

/* The session's current snapshot becomes the newest delivered one again
 * (its newer ones were refused by the log). Loop thread. */
static void revert_current(sess_t *s)
{
    pthread_mutex_lock(&s->sub_mu);
    sess_snapshot_t *d = s->delivered ? sess_snapshot_ref(s->delivered) : NULL;
    pthread_mutex_unlock(&s->sub_mu);
    if (!d)
        return;
    pthread_mutex_lock(&s->cur_mu);
    sess_snapshot_t *old = s->current;
    s->current = d;
    pthread_mutex_unlock(&s->cur_mu);
    sess_snapshot_unref(old);
}

/* Group commit: stores every pending event in one journal transaction
 * (per batch), then delivers them in order. Loop thread. */
/* Takes up to FLUSH_BATCH pending snapshots into batch[] with their events
 * in ev[] (slot[i]: batch[i]'s event, SIZE_MAX for none); sets *n, *m. */
static void take_batch(sess_registry_t *reg, pend_t **batch, sess_event_t *ev, size_t *slot,
                       size_t *n_out, size_t *m_out)
{
    size_t n = 0, m = 0;
    while (reg->pend_head && n < FLUSH_BATCH) {
        pend_t *p = reg->pend_head;
        reg->pend_head = p->next;
        batch[n++] = p;
    }
    if (!reg->pend_head)
        reg->pend_tail = NULL;
    for (size_t i = 0; i < n; i++) {
        sess_snapshot_t *snap = batch[i]->snap;
        size_t len = 0;
        char *body = sess_event_json(snap, &len);
        slot[i] = SIZE_MAX;
        if (!body)
            continue; /* out of memory: delivered live only */
        ev[m] = (sess_event_t){.session = snap->session,
                               .seq = snap->seq,
                               .ts_ms = snap->changed_ms,
                               .type = SESS_EVENT_STATUS,
                               .body = body,
                               .body_len = len,
                               .epoch = batch[i]->epoch};
        slot[i] = m++;
    }
    *n_out = n;
    *m_out = m;
}

static void finish_batch(pend_t **batch, sess_event_t *ev, const size_t *slot, size_t n, size_t m,
                         int rc);

static void start_async_batch(sess_registry_t *reg);

/* The journal stored (or failed to store) the batch in flight. */
static void on_batch_stored(void *ctx, int rc)
{
    sess_registry_t *reg = ctx;
    finish_batch(reg->inflight.batch, reg->inflight.ev, reg->inflight.slot, reg->inflight.n,
                 reg->inflight.m, rc);
    reg->inflight.busy = 0;
    if (reg->pend_head && !reg->closing)
        start_async_batch(reg);
}

/* Starts storing the next batch off the loop (journal.append_async). */
static void start_async_batch(sess_registry_t *reg)
{
    while (reg->pend_head && !reg->inflight.busy) {
        take_batch(reg, reg->inflight.batch, reg->inflight.ev, reg->inflight.slot, &reg->inflight.n,
                   &reg->inflight.m);
        if (!reg->inflight.m) {
            finish_batch(reg->inflight.batch, reg->inflight.ev, reg->inflight.slot, reg->inflight.n,
                         0, -1);
            continue;
        }
        reg->inflight.busy = 1;
        if (reg->journal.append_async(reg->journal.arg, reg->inflight.ev, reg->inflight.m,
                                      on_batch_stored, reg) != 0) {
            int rc = reg->journal.append(reg->journal.arg, reg->inflight.ev, reg->inflight.m);
            on_batch_stored(reg, rc); /* (not started: stored here) */
            return;
        }
    }
}

int sess_registry_flushing(sess_registry_t *reg)
{
    return reg->pend_head != NULL || reg->inflight.busy ||
           __atomic_load_n(&reg->reads, __ATOMIC_ACQUIRE) > 0;
}

static void flush_pending(sess_registry_t *reg)
{
    if (reg->journal.append_async) {
        if (reg->inflight.busy && reg->closing) /* closing: everything stored now */
            reg->journal.drain(reg->journal.arg);
        if (!reg->closing) {
            if (!reg->inflight.busy)
                start_async_batch(reg);
            if (!uv_is_closing((uv_handle_t *)&reg->flush))
                uv_prepare_stop(&reg->flush); /* the completion starts the next batch */
            return;
        }
    }
    sess_event_t ev[FLUSH_BATCH];
    pend_t *batch[FLUSH_BATCH];
    size_t slot[FLUSH_BATCH];
    while (reg->pend_head) {
        size_t n = 0, m = 0;
        take_batch(reg, batch, ev, slot, &n, &m);
        int rc = m ? reg->journal.append(reg->journal.arg, ev, m) : -1;
        finish_batch(batch, ev, slot, n, m, rc);
    }
    if (!uv_is_closing((uv_handle_t *)&reg->flush))
        uv_prepare_stop(&reg->flush);
}

/* A pending event is settled (stored, refused or failed): frees it; the
 * session's catch-up parked until its events settled goes on. Loop
 * thread. */
static void pend_done(pend_t *p)
{
    sess_t *s = p->sess;
    sess_snapshot_unref(p->snap);
    if (s->pending && --s->pending == 0 && s->parked) {
        void *c = s->parked;
        s->parked = NULL;
        catchup_next(c);
    }
    sess_unref(s);
    free(p);
}

/* Sets the ids the journal gave, delivers in order (dropping what the
 * fence refused) and frees the batch. Loop thread. */
static void finish_batch(pend_t **batch, sess_event_t *ev, const size_t *slot, size_t n, size_t m,
                         int rc)
{
    {
        for (size_t i = 0; i < n; i++) {
            pend_t *p = batch[i];
            if (slot[i] != SIZE_MAX && rc == SESS_JOURNAL_FENCED && ev[slot[i]].id == 0) {
                /* the session is owned by another node now: what this node
                 * published is not the session's history; back to the
                 * newest snapshot the log has (the owner's come next) */
                revert_current(p->sess);
                pend_done(p);
                continue;
            }
            if (slot[i] != SIZE_MAX && (rc == 0 || rc == SESS_JOURNAL_FENCED))
                __atomic_store_n(&p->snap->event_id_, ev[slot[i]].id, __ATOMIC_RELEASE);
            deliver(p->sess, p->snap);
            pend_done(p);
        }
        for (size_t i = 0; i < m; i++)
            free((char *)ev[i].body);
    }
}

int sess_publish(sess_t *s, const sess_change_t *c)
{
    if (s->following)
        return -1;                     /* another node's session: its owner publishes */
    sess_snapshot_t *old = s->current; /* only the loop thread swaps it */
    sess_snapshot_t *snap = sess_snapshot_new_(s->name, c->detail);
    if (!snap)
        return -1;
    snap->seq = old->seq + 1;
    snap->connects = s->connects;
    snap->state = c->state;
    snap->changed_ms = sess_now_ms();
    snap->since_ms = c->state == old->state ? old->since_ms : snap->changed_ms;
    if (c->clear_account) {
        snap->linked = 0;
    } else if (c->account) {
        if (account_copy(&snap->account, c->account) != 0)
            goto oom;
        snap->linked = 1;
    } else if (old->linked) {
        if (account_copy(&snap->account, &old->account) != 0)
            goto oom;
        snap->linked = 1;
    }
    if (c->qr_text && c->state == SESS_QR_READY) {
        if (!(snap->qr = sess_qr_new_(s->reg, c->qr_text, c->qr_expires_at_ms)))
            goto oom;
    } else if (c->keep_qr && c->state == SESS_QR_READY) {
        snap->qr = qr_ref(old->qr);
    }
    int keep_link = !c->clear_link && c->state != SESS_CONNECTED && c->state != SESS_DISCONNECTED;
    const char *code = c->link_code ? c->link_code : keep_link ? old->link_code : NULL;
    const char *opts = c->passkey_options ? c->passkey_options
                       : keep_link        ? old->passkey_options
                                          : NULL;
    if (code) {
        if (!(snap->link_code = strdup(code)))
            goto oom;
        snap->link_code_expires_at_ms =
            c->link_code ? c->link_code_expires_at_ms : old->link_code_expires_at_ms;
    }
    if (opts && !(snap->passkey_options = strdup(opts)))
        goto oom;

    pthread_mutex_lock(&s->cur_mu);
    s->current = snap;
    pthread_mutex_unlock(&s->cur_mu);
    emit(s, sess_snapshot_ref(snap));
    sess_snapshot_unref(old);
    return 0;
oom:
    sess_snapshot_unref(snap);
    return -1;
}

/* --- operations --- */

void sess_set_driver(sess_t *s, const sess_driver_ops_t *ops, void *drv)
{
    s->ops = ops;
    s->drv = drv;
}

int sess_start(sess_t *s)
{
    return s->ops && s->ops->start ? s->ops->start(s->drv) : -1;
}

int sess_reconnect(sess_t *s, int keep_credentials)
{
    return s->ops && s->ops->reconnect ? s->ops->reconnect(s->drv, keep_credentials) : -1;
}

int sess_logout(sess_t *s)
{
    return s->ops && s->ops->logout ? s->ops->logout(s->drv) : -1;
}

int sess_pairing_code(sess_t *s, const char *phone,
                      void (*done)(void *arg, int rc, const char *code, int64_t expires_at_ms),
                      void *arg)
{
    if (!s->ops || !s->ops->pairing_code)
        return SESS_ENOTSUP;
    return s->ops->pairing_code(s->drv, phone, done, arg);
}

int sess_passkey_response(sess_t *s, const char *json, size_t len, void (*done)(void *arg, int rc),
                          void *arg)
{
    if (!s->ops || !s->ops->passkey_response)
        return SESS_ENOTSUP;
    return s->ops->passkey_response(s->drv, json, len, done, arg);
}

typedef struct {
    size_t pending;
    void (*done)(void *);
    void *arg;
} stop_join_t;

static void on_driver_stopped(void *arg)
{
    stop_join_t *j = arg;
    if (--j->pending == 0) {
        void (*done)(void *) = j->done;
        void *darg = j->arg;
        free(j);
        done(darg);
    }
}

typedef struct {
    sess_t *s; /* holds a reference */
    const sess_driver_ops_t *ops;
    void *drv;
    void (*done)(void *);
    void *arg;
} detach_t;

static void on_detached_stopped(void *arg)
{
    detach_t *x = arg;
    sess_registry_t *reg = x->s->reg;
    if (x->ops->destroy)
        x->ops->destroy(x->drv);
    reg->detaching--;
    void *join = reg->stop_join;
    if (!reg->detaching)
        reg->stop_join = NULL;
    if (x->done)
        x->done(x->arg);
    sess_unref(x->s);
    free(x);
    if (join)
        on_driver_stopped(join);
}

int sess_stop_driver(sess_t *s, void (*done)(void *arg), void *arg)
{
    if (!s->ops)
        return -1;
    detach_t *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->s = s;
    sess_ref(s);
    x->ops = s->ops;
    x->drv = s->drv;
    x->done = done;
    x->arg = arg;
    s->ops = NULL;
    s->drv = NULL;
    s->reg->detaching++;
    if (x->ops->stop)
        x->ops->stop(x->drv, on_detached_stopped, x);
    else
        on_detached_stopped(x);
    return 0;
}

int sess_has_driver(const sess_t *s)
{
    return s->ops != NULL;
}

void sess_registry_stop(sess_registry_t *reg, void (*done)(void *arg), void *arg)
{
    stop_join_t *j = calloc(1, sizeof(*j));
    if (!j) {
        done(arg);
        return;
    }
    j->done = done;
    j->arg = arg;
    j->pending = 1 + reg->detaching; /* held until every stop has been started */
    if (reg->detaching)
        reg->stop_join = j;
    for (sess_t *s = reg->sessions; s; s = s->next) {
        if (s->ops && s->ops->stop) {
            j->pending++;
            s->ops->stop(s->drv, on_driver_stopped, j);
        }
    }
    on_driver_stopped(j);
}
