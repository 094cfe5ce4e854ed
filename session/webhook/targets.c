/* The management of webhook targets (see webhook.h): their info and list,
 * deletion, replay, creation (checks, the resolution of the URL's host,
 * then the store) and the global target from WEBHOOK_URL. */
#include "session/webhook/webhook_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/log.h"

/* --- management --- */

static void info_of(const target_t *t, wh_target_info_t *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", t->id);
    snprintf(o->url, sizeof(o->url), "%s", t->url);
    snprintf(o->session, sizeof(o->session), "%s", t->session ? t->session : "");
    snprintf(o->events, sizeof(o->events), "%s", t->events);
    o->created_at = t->created_at;
    o->delivered = t->delivered;
    o->failed = t->failed;
    o->dead = t->dead;
    o->retrying = t->has_head && t->head.attempts > 0;
    o->oldest_pending_ms = t->has_head ? clk_now_ms() - t->head.ts_ms : 0;
    if (o->oldest_pending_ms < 0)
        o->oldest_pending_ms = 0;
    snprintf(o->last_error, sizeof(o->last_error), "%s", t->last_error);
}

int wh_targets(wh_t *wh, wh_target_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!wh->ntargets)
        return WH_OK;
    wh_target_info_t *v = calloc(wh->ntargets, sizeof(*v));
    if (!v)
        return WH_ENOMEM;
    size_t k = 0;
    for (target_t *t = wh->targets; t; t = t->next)
        if (!t->deleting)
            info_of(t, &v[k++]);
    *out = v;
    *n = k;
    return WH_OK;
}

int wh_target_get(wh_t *wh, const char *id, wh_target_info_t *out)
{
    target_t *t = id ? wh_find(wh, id) : NULL;
    if (!t)
        return WH_ENOTFOUND;
    info_of(t, out);
    return WH_OK;
}

/* A target's deletion (its queue is purged afterwards). */
typedef struct {
    wh_t *wh;
    store_t *st;
    uint64_t serial; /* the target to drop once deleted; 0: none */
    char id[40];
    wh_done_cb cb; /* NULL: nobody waits */
    void *arg;
} delete_job_t;

static int delete_work(void *arg)
{
    delete_job_t *a = arg;
    int rc = store_webhook_delete(a->st, a->id);
    return rc == STORE_ENOTFOUND ? 0 : rc;
}

static void delete_done(void *arg, int rc)
{
    delete_job_t *a = arg;
    wh_t *wh = a->wh;
    target_t *t = a->serial && !wh->closed ? wh_by_serial(wh, a->serial) : NULL;
    if (rc)
        LOG_WARN("webhook", "target %s: cannot delete it: %s", a->id,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    if (t && rc) {
        t->deleting = 0;
    } else if (t) {
        LOG_INFO("webhook", "target %s (%s) deleted", t->id, t->host);
        wh_target_drop(wh, t);
    }
    if (!rc && !wh->closed)
        uv_timer_start(&wh->purge, wh_on_purge, 0, 0);
    if (a->cb)
        a->cb(a->arg, rc ? WH_EIO : WH_OK);
    free(a);
    wh_job_end(wh);
}

/* Queues the deletion of target `id` (t: the one in memory, dropped once it
 * is deleted, or NULL). 0 or -1. */
static int delete_queue(wh_t *wh, const char *id, target_t *t, wh_done_cb cb, void *arg)
{
    delete_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    *a = (delete_job_t){
        .wh = wh, .st = wh->o.store, .serial = t ? t->serial : 0, .cb = cb, .arg = arg};
    snprintf(a->id, sizeof(a->id), "%s", id);
    if (wh_job_run(wh, 0, delete_work, delete_done, a) != 0) {
        free(a);
        return -1;
    }
    if (t)
        t->deleting = 1;
    return 0;
}

/* The target `id` a call is about, in *out; WH_OK or the call's error
 * (WH_EINVAL: no wh or no callback (has_cb 0), WH_ECLOSED, WH_ENOTFOUND). */
static int target_for(wh_t *wh, const char *id, int has_cb, target_t **out)
{
    if (!wh || !has_cb)
        return WH_EINVAL;
    if (wh->closed)
        return WH_ECLOSED;
    *out = id ? wh_find(wh, id) : NULL;
    return *out ? WH_OK : WH_ENOTFOUND;
}

int wh_target_delete(wh_t *wh, const char *id, wh_done_cb cb, void *arg)
{
    target_t *t;
    int rc = target_for(wh, id, cb != NULL, &t);
    if (rc != WH_OK)
        return rc;
    return delete_queue(wh, id, t, cb, arg) ? WH_ENOMEM : WH_OK;
}

/* A replay. */
typedef struct {
    wh_t *wh;
    store_t *st;
    uint64_t serial;
    char id[40];
    uint64_t since_id, n;
    wh_replay_cb cb;
    void *arg;
} replay_job_t;

static int replay_work(void *arg)
{
    replay_job_t *a = arg;
    return store_webhook_replay(a->st, a->id, a->since_id, &a->n);
}

static void replay_done(void *arg, int rc)
{
    replay_job_t *a = arg;
    wh_t *wh = a->wh;
    target_t *t = !rc && a->n && !wh->closed ? wh_by_serial(wh, a->serial) : NULL;
    if (rc)
        LOG_WARN("webhook", "target %s: cannot replay: %s", a->id,
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
    if (t) {
        t->dead = 0;
        t->epoch++; /* a read queued before the replay is stale */
        if (t->req) {
            t->refetch = 1;
        } else {
            wh_flush_done(wh); /* the cursor goes back: delivered rows must be gone first */
            t->cursor = 0;
            wh_head_clear(t);
            if (t->waiting) {
                uv_timer_stop(&t->timer);
                t->waiting = 0;
            }
            wh_pump(t);
        }
        LOG_INFO("webhook", "target %s (%s): %llu deliveries queued again", t->id, t->host,
                 (unsigned long long)a->n);
    }
    a->cb(a->arg, rc ? WH_EIO : WH_OK, rc ? 0 : a->n);
    free(a);
    wh_job_end(wh);
}

int wh_replay(wh_t *wh, const char *id, uint64_t since_id, wh_replay_cb cb, void *arg)
{
    target_t *t;
    int rc = target_for(wh, id, cb != NULL, &t);
    if (rc != WH_OK)
        return rc;
    replay_job_t *a = calloc(1, sizeof(*a));
    if (!a)
        return WH_ENOMEM;
    *a = (replay_job_t){.wh = wh,
                        .st = wh->o.store,
                        .serial = t->serial,
                        .since_id = since_id,
                        .cb = cb,
                        .arg = arg};
    snprintf(a->id, sizeof(a->id), "%s", id);
    wh_flush_done(wh); /* stored before the replay: the cursor will go back */
    if (wh_job_run(wh, 0, replay_work, replay_done, a) != 0) {
        free(a);
        return WH_ENOMEM;
    }
    return WH_OK;
}

/* Checks and normalises an event filter into " t1 t2 " (out, outlen). */
static int filter_of(const char *const *events, char *out, size_t outlen, const char **why)
{
    out[0] = 0;
    size_t len = 0, count = 0;
    for (size_t i = 0; events && events[i]; i++) {
        const char *e = events[i];
        size_t el = strlen(e);
        if (el == 0 || el > 64 || strspn(e, "abcdefghijklmnopqrstuvwxyz0123456789._-") != el) {
            *why = "events: each type is 1 to 64 of a-z, 0-9, '.', '_' and '-'";
            return WH_EINVAL;
        }
        if (++count > WH_EVENTS_MAX) {
            *why = "events: at most 16 types";
            return WH_EINVAL;
        }
        if (len + el + 3 > outlen) {
            *why = "events: too long";
            return WH_EINVAL;
        }
        if (len == 0)
            out[len++] = ' ';
        memcpy(out + len, e, el);
        len += el;
        out[len++] = ' ';
        out[len] = 0;
    }
    return WH_OK;
}

static int session_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A creation: checked, maybe waiting for the resolver, then stored by a
 * job. */
typedef struct {
    wh_t *wh;
    store_t *st;
    uv_getaddrinfo_t gai;
    char *url, *session, *secret_shown;
    char events[512];
    char id[40];
    uint8_t key[WH_SECRET_MAX];
    size_t keylen;
    int64_t created_at;
    wh_created_cb cb;
    void *arg;
} create_t;

static void create_free(create_t *c)
{
    free(c->url);
    free(c->session);
    if (c->secret_shown) {
        explicit_bzero(c->secret_shown, strlen(c->secret_shown));
        free(c->secret_shown);
    }
    explicit_bzero(c->key, sizeof(c->key));
    free(c);
}

/* The target as the store has it (pointing into c). */
static store_webhook_t create_record(create_t *c)
{
    store_webhook_t s = {.url = c->url,
                         .secret = c->key,
                         .secret_len = c->keylen,
                         .session = c->session,
                         .events = c->events,
                         .created_at = c->created_at};
    snprintf(s.id, sizeof(s.id), "%s", c->id);
    return s;
}

static int create_work(void *arg)
{
    create_t *c = arg;
    store_webhook_t s = create_record(c);
    return store_webhook_put(c->st, &s);
}

static void create_done(void *arg, int rc)
{
    create_t *c = arg;
    wh_t *wh = c->wh;
    wh->creating--;
    if (wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
    } else if (rc) {
        LOG_WARN("webhook", "cannot store a new target: %s",
                 rc == SESS_Q_CANCELLED ? "cancelled" : store_strerror(rc));
        c->cb(c->arg, WH_EIO, "cannot store the webhook", NULL, NULL);
    } else {
        store_webhook_t s = create_record(c);
        target_t *t = wh_target_new(wh, &s);
        if (!t) {
            delete_queue(wh, c->id, NULL, NULL, NULL);
            c->cb(c->arg, WH_ENOMEM, "out of memory", NULL, NULL);
        } else {
            wh_target_link(wh, t);
            LOG_INFO("webhook", "target %s (%s) created", t->id, t->host);
            wh_target_info_t info;
            info_of(t, &info);
            c->cb(c->arg, WH_OK, NULL, &info, c->secret_shown);
        }
    }
    create_free(c);
    wh_job_end(wh);
}

/* Queues the storing of the target; cb answers once it is stored. Takes
 * c. */
static void create_finish(create_t *c)
{
    wh_t *wh = c->wh;
    if (wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
        create_free(c);
        return;
    }
    if (wh->ntargets + wh->creating >=
        (wh->o.max_targets ? wh->o.max_targets : WH_MAX_TARGETS_DEFAULT)) {
        c->cb(c->arg, WH_ELIMIT, "too many webhooks (MAX_WEBHOOKS)", NULL, NULL);
        create_free(c);
        return;
    }
    c->st = wh->o.store;
    c->created_at = (int64_t)time(NULL);
    if (wh_job_run(wh, 0, create_work, create_done, c) != 0) {
        c->cb(c->arg, WH_ENOMEM, "out of memory", NULL, NULL);
        create_free(c);
        return;
    }
    wh->creating++;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    create_t *c = g->data;
    int finish = 0;
    if (status == UV_ECANCELED || c->wh->closed) {
        c->cb(c->arg, WH_ECLOSED, "shutting down", NULL, NULL);
    } else if (status != 0 || !res) {
        c->cb(c->arg, WH_EINVAL, "url host does not resolve", NULL, NULL);
    } else {
        int priv = 0;
        for (struct addrinfo *a = res; a; a = a->ai_next)
            priv |= wh_addr_private(a->ai_addr, a->ai_addrlen);
        if (priv)
            c->cb(c->arg, WH_EPRIVATE,
                  "url host resolves to a private, loopback or link-local address (refused "
                  "unless WEBHOOK_ALLOW_PRIVATE=1)",
                  NULL, NULL);
        else
            finish = 1;
    }
    if (res)
        uv_freeaddrinfo(res);
    if (finish)
        create_finish(c);
    else
        create_free(c);
}

int wh_target_create(wh_t *wh, const wh_target_spec_t *spec, wh_created_cb cb, void *arg)
{
    if (!wh || !spec || !cb)
        return WH_EINVAL;
    if (wh->closed)
        return WH_ECLOSED;
    char host[256];
    const char *why = NULL;
    int rc = wh_url_check(spec->url, wh->o.allow_private, host, sizeof(host), &why);
    if (rc) {
        cb(arg, rc, why, NULL, NULL);
        return WH_OK;
    }
    create_t *c = calloc(1, sizeof(*c));
    if (!c)
        return WH_ENOMEM;
    c->wh = wh;
    c->cb = cb;
    c->arg = arg;
    if (filter_of(spec->events, c->events, sizeof(c->events), &why) != WH_OK) {
        create_free(c);
        cb(arg, WH_EINVAL, why, NULL, NULL);
        return WH_OK;
    }
    if (spec->session && *spec->session && !session_ok(spec->session)) {
        create_free(c);
        cb(arg, WH_EINVAL, "session: 1 to 64 of a-z, 0-9, '_' and '-'", NULL, NULL);
        return WH_OK;
    }
    if (spec->secret) {
        if (wh_secret_parse(spec->secret, c->key, &c->keylen) != WH_OK) {
            create_free(c);
            cb(arg, WH_EINVAL,
               "secret must be whsec_ followed by the base64 of 16 to 64 random bytes", NULL, NULL);
            return WH_OK;
        }
    } else {
        c->keylen = 24;
        char *b = RAND_bytes(c->key, (int)c->keylen) == 1 ? b64_encode(c->key, c->keylen) : NULL;
        size_t bl = b ? strlen(b) : 0;
        c->secret_shown = b ? malloc(bl + 7) : NULL;
        if (c->secret_shown)
            snprintf(c->secret_shown, bl + 7, "whsec_%s", b);
        if (b) {
            explicit_bzero(b, bl);
            free(b);
        }
        if (!c->secret_shown) {
            create_free(c);
            return WH_ENOMEM;
        }
    }
    uint8_t rid[12];
    if (RAND_bytes(rid, sizeof(rid)) != 1) {
        create_free(c);
        return WH_ENOMEM;
    }
    memcpy(c->id, "wh_", 3);
    for (size_t i = 0; i < sizeof(rid); i++)
        snprintf(c->id + 3 + 2 * i, 3, "%02x", rid[i]);
    c->url = strdup(spec->url);
    c->session = spec->session && *spec->session ? strdup(spec->session) : NULL;
    if (!c->url || (spec->session && *spec->session && !c->session)) {
        create_free(c);
        return WH_ENOMEM;
    }
    struct in6_addr a6;
    struct in_addr a4;
    int is_literal = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    if (wh->o.allow_private || is_literal) { /* nothing to resolve */
        create_finish(c);
        return WH_OK;
    }
    c->gai.data = c;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(wh->o.loop, &c->gai, on_resolved, host, NULL, &hints) != 0) {
        cb(arg, WH_EINVAL, "url host does not resolve", NULL, NULL);
        create_free(c);
    }
    return WH_OK;
}

/* The global target's record, or its dead letters (wh_set_global, through
 * wh_run_sync). */
typedef struct {
    store_t *st;
    const store_webhook_t *s;
    uint64_t dead;
} global_job_t;

static int global_put_work(void *arg)
{
    global_job_t *a = arg;
    return store_webhook_put(a->st, a->s);
}

static int global_count_work(void *arg)
{
    global_job_t *a = arg;
    return store_webhook_count(a->st, WH_GLOBAL_ID, STORE_DELIVERY_DEAD, &a->dead);
}

int wh_set_global(wh_t *wh, const char *url, const char *secret, char *err, size_t errlen)
{
    if (wh->closed) {
        snprintf(err, errlen, "webhooks: shutting down");
        return WH_ECLOSED;
    }
    target_t *t = wh_find_any(wh, WH_GLOBAL_ID);
    if (!url || !*url) {
        if (!t)
            return WH_OK;
        LOG_INFO("webhook", "WEBHOOK_URL is not set: the global webhook and its queue are removed");
        delete_job_t d = {.st = wh->o.store};
        snprintf(d.id, sizeof(d.id), "%s", WH_GLOBAL_ID);
        int rc = wh_run_sync(wh->o.q, delete_work, &d);
        if (rc) {
            snprintf(err, errlen, "cannot delete the global webhook: %s", store_strerror(rc));
            return WH_EIO;
        }
        wh_target_drop(wh, t);
        uv_timer_start(&wh->purge, wh_on_purge, 0, 0);
        return WH_OK;
    }
    char host[256];
    const char *why = NULL;
    int rc = wh_url_check(url, wh->o.allow_private, host, sizeof(host), &why);
    if (rc) {
        snprintf(err, errlen, "WEBHOOK_URL: %s", why);
        return rc;
    }
    uint8_t key[WH_SECRET_MAX];
    size_t keylen = 0;
    if (!secret || wh_secret_parse(secret, key, &keylen) != WH_OK) {
        snprintf(err, errlen,
                 "WEBHOOK_SECRET must be whsec_ followed by the base64 of 16 to 64 random bytes");
        return WH_EINVAL;
    }
    store_webhook_t s = {.url = (char *)url,
                         .secret = key,
                         .secret_len = keylen,
                         .events = "",
                         .created_at = t ? t->created_at : (int64_t)time(NULL)};
    snprintf(s.id, sizeof(s.id), "%s", WH_GLOBAL_ID);
    global_job_t g = {.st = wh->o.store, .s = &s};
    rc = wh_run_sync(wh->o.q, global_put_work, &g);
    if (rc) {
        explicit_bzero(key, sizeof(key));
        snprintf(err, errlen, "cannot store the global webhook: %s", store_strerror(rc));
        return WH_EIO;
    }
    target_t *nt = wh_target_new(wh, &s);
    explicit_bzero(key, sizeof(key));
    if (!nt) {
        snprintf(err, errlen, "out of memory");
        return WH_ENOMEM;
    }
    if (t) { /* keep what it counted */
        nt->delivered = t->delivered;
        nt->failed = t->failed;
        nt->dead = t->dead;
        wh_flush_done(wh); /* the new one reads from the start: delivered rows go first */
        wh_target_drop(wh, t);
    } else if (wh_run_sync(wh->o.q, global_count_work, &g) == 0) {
        nt->dead = g.dead;
    }
    wh_target_link(wh, nt);
    LOG_INFO("webhook", "global webhook to %s", nt->host);
    wh_pump(nt);
    return WH_OK;
}
