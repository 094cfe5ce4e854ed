/* Several WhatsApp accounts (see api.h, "callers" and "sessions"): who may
 * act on which session (the admin key, each session's own key, 403 for a
 * key used outside its session), and the handlers of the sessions API on
 * top of the session manager. Keys are 32 random bytes in base64url; only
 * their SHA-256 is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api/api.h"
#include "common/base64.h"
#include "session/manager.h"

/* SHA-256 of a presented key. Returns 0 or -1. */
static int key_hash(const char *key, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    return EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

static api_code_t decide(api_t *api, const api_caller_t *caller, const char *session,
                         int key_optional, api_scope_t *scope)
{
    *scope = API_SCOPE_NONE;
    if (!api_key_required(api)) {
        *scope = API_SCOPE_ADMIN;
        return API_OK;
    }
    if (!caller->key) {
        if (key_optional)
            return API_OK;
        return API_ERR_UNAUTHENTICATED; /* not counted: a misconfigured client */
    }
    if (api_key_ok(api, caller->key, caller->key_len)) {
        *scope = API_SCOPE_ADMIN;
        return API_OK;
    }
    uint8_t h[32];
    if (key_hash(caller->key, caller->key_len, h) == 0) {
        sess_t *owner = sess_registry_find_by_key(api_registry(api), h);
        explicit_bzero(h, sizeof(h));
        if (owner) {
            const char *target = session && *session ? session : NULL;
            int own = target && !strcmp(sess_name(owner), target);
            sess_unref(owner);
            if (own) {
                *scope = API_SCOPE_SESSION;
                return API_OK;
            }
            return API_ERR_FORBIDDEN; /* a valid key, not a guess: not counted */
        }
    }
    /* a wrong key: counted (and refused while the client is locked out) */
    api_code_t rc =
        api_authorize(api, caller->client ? caller->client : "", caller->key, caller->key_len);
    return rc == API_OK ? API_ERR_UNAUTHENTICATED : rc;
}

api_code_t api_authorize_for(api_t *api, api_caller_t *caller, const char *session,
                             int key_optional, api_scope_t *scope)
{
    api_code_t rc = decide(api, caller, session, key_optional, scope);
    caller->refused = rc != API_OK;
    if (rc != API_OK && key_optional && caller->key) {
        /* open without a key: a key that does not open the session only
         * hides what a key shows (a wrong one was counted) */
        *scope = API_SCOPE_NONE;
        return API_OK;
    }
    return rc;
}

/* A fresh key (base64url of 32 random bytes, malloc'd) and its hash. */
static char *new_key(uint8_t hash[32])
{
    uint8_t raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    char *key = b64url_encode(raw, sizeof(raw));
    explicit_bzero(raw, sizeof(raw));
    if (key && key_hash(key, strlen(key), hash) != 0) {
        explicit_bzero(key, strlen(key));
        free(key);
        key = NULL;
    }
    return key;
}

static api_code_t mgr_code(int rc, const char **msg)
{
    *msg = sess_mgr_strerror(rc);
    switch (rc) {
    case SESS_MGR_ENAME:
    case SESS_MGR_EDEVICE:
        return API_ERR_BAD_REQUEST;
    case SESS_MGR_EEXISTS:
    case SESS_MGR_EDEFAULT:
    case SESS_MGR_EBUSY:
        return API_ERR_CONFLICT;
    case SESS_MGR_EELSEWHERE:
        *msg = API_ELSEWHERE_MESSAGE;
        return API_ERR_CONFLICT;
    case SESS_MGR_ELIMIT:
        return API_ERR_LIMIT;
    case SESS_MGR_ENOTFOUND:
        return API_ERR_NOT_FOUND;
    default:
        *msg = NULL;
        return API_ERR_INTERNAL;
    }
}

/* A creation or rotation waiting for the manager: the new key goes to the
 * caller with the session's snapshot, or is wiped. */
typedef struct {
    api_key_cb cb;
    void *arg;
    char *key;
    const char *message;
    sess_t *s; /* rotation: the session (referenced) */
} key_req_t;

static void key_req_end(key_req_t *k, int rc, sess_t *s)
{
    api_result_t r = {API_OK, k->message, NULL};
    char *key = k->key;
    if (rc || !s) {
        explicit_bzero(key, strlen(key));
        free(key);
        key = NULL;
        r.code = rc ? mgr_code(rc, &r.message) : API_ERR_INTERNAL;
        if (!rc)
            r.message = NULL;
    } else {
        r.snap = sess_current(s);
    }
    if (k->s)
        sess_unref(k->s);
    api_key_cb cb = k->cb;
    void *arg = k->arg;
    free(k);
    cb(r, key, arg);
}

static void on_created(void *arg, int rc, sess_t *s)
{
    key_req_end(arg, rc, s);
}

static void on_key_set(void *arg, int rc)
{
    key_req_t *k = arg;
    key_req_end(k, rc, k->s);
}

/* A request for a fresh key: NULL (after cb with API_ERR_INTERNAL) when
 * out of memory. h gets the key's hash. */
static key_req_t *key_req_new(api_t *api, api_key_cb cb, void *arg, const char *message,
                              uint8_t h[32])
{
    key_req_t *k = api_sessions(api) ? calloc(1, sizeof(*k)) : NULL;
    if (k)
        k->key = new_key(h);
    if (!k || !k->key) {
        free(k);
        cb((api_result_t){API_ERR_INTERNAL, NULL, NULL}, NULL, arg);
        return NULL;
    }
    k->cb = cb;
    k->arg = arg;
    k->message = message;
    return k;
}

/* The manager refused at once: rc to the caller, the key wiped. */
static void key_req_refused(key_req_t *k, int rc)
{
    if (k->s) {
        sess_unref(k->s);
        k->s = NULL;
    }
    key_req_end(k, rc, NULL);
}

void api_session_create(api_t *api, const char *name, const char *device_name, api_key_cb cb,
                        void *arg)
{
    uint8_t h[32];
    key_req_t *k =
        key_req_new(api, cb, arg, "Session created: keep its key, it is shown only once", h);
    if (!k)
        return;
    int rc = sess_mgr_create(api_sessions(api), name ? name : "", device_name, h, on_created, k);
    explicit_bzero(h, sizeof(h));
    if (rc)
        key_req_refused(k, rc);
}

void api_session_rotate_key(api_t *api, const char *name, api_key_cb cb, void *arg)
{
    sess_t *s = name ? sess_registry_get(api_registry(api), name) : NULL;
    if (!s) {
        cb((api_result_t){API_ERR_NOT_FOUND, NULL, NULL}, NULL, arg);
        return;
    }
    uint8_t h[32];
    key_req_t *k = key_req_new(api, cb, arg, "New session key: the old one no longer works", h);
    if (!k) {
        sess_unref(s);
        return;
    }
    k->s = s;
    int rc = sess_mgr_set_key(api_sessions(api), name, h, on_key_set, k);
    explicit_bzero(h, sizeof(h));
    if (rc)
        key_req_refused(k, rc);
}

api_code_t api_session_list(api_t *api, const char *state, sess_snapshot_t ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int want = -1;
    if (state && *state) {
        static const sess_state_t all[] = {SESS_DISCONNECTED, SESS_CONNECTING, SESS_QR_READY,
                                           SESS_CONNECTED};
        for (size_t i = 0; i < 4; i++)
            if (!strcmp(state, sess_state_name(all[i])))
                want = (int)all[i];
        if (want < 0)
            return API_ERR_BAD_REQUEST;
    }
    size_t total;
    sess_snapshot_t **v = sess_registry_snapshots(api_registry(api), &total);
    if (!v)
        return API_ERR_INTERNAL;
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        if (want < 0 || (int)v[i]->state == want)
            v[k++] = v[i];
        else
            sess_snapshot_unref(v[i]);
    }
    *out = v;
    *n = k;
    return API_OK;
}

typedef struct {
    api_done_cb cb;
    void *arg;
} del_req_t;

static void on_deleted(void *arg, int rc)
{
    del_req_t *d = arg;
    api_result_t r = {rc ? API_ERR_INTERNAL : API_OK, rc ? NULL : "Session deleted", NULL};
    d->cb(r, d->arg);
    free(d);
}

void api_session_delete(api_t *api, const char *name, api_done_cb cb, void *arg)
{
    api_result_t r = {API_ERR_INTERNAL, NULL, NULL};
    sess_mgr_t *m = api_sessions(api);
    del_req_t *d = m ? malloc(sizeof(*d)) : NULL;
    if (!d) {
        cb(r, arg);
        return;
    }
    d->cb = cb;
    d->arg = arg;
    int rc = sess_mgr_delete(m, name ? name : "", on_deleted, d);
    if (rc) {
        free(d);
        r.code = mgr_code(rc, &r.message);
        cb(r, arg);
    }
}

sess_sub_t *api_watch_all(api_t *api, const sess_sub_opts_t *opts, api_code_t *code)
{
    return api_watch_all_since(api, 0, opts, code);
}

sess_sub_t *api_watch_all_since(api_t *api, uint64_t since, const sess_sub_opts_t *opts,
                                api_code_t *code)
{
    sess_registry_t *reg = api_registry(api);
    sess_sub_t *sub = since ? sess_registry_subscribe_since(reg, since, opts)
                            : sess_registry_subscribe(reg, opts);
    *code = sub ? API_OK : API_ERR_INTERNAL;
    return sub;
}
