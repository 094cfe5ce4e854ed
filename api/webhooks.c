/* The webhooks API (see api.h, "webhooks"): who may manage which targets
 * (the admin all of them, a session key those of its own session), the
 * request body, the mapping of the sender's errors to the one error model,
 * and the JSON views. The delivery itself is session/webhook's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "api/api.h"
#include "api/json_internal.h"
#include "session/manager.h"

/* --- who is calling --- */

api_code_t api_authorize_principal(api_t *api, api_caller_t *caller, api_principal_t *who)
{
    memset(who, 0, sizeof(*who));
    caller->refused = 0;
    if (!api_key_required(api) || (caller->key && api_key_ok(api, caller->key, caller->key_len))) {
        who->scope = API_SCOPE_ADMIN;
        return API_OK;
    }
    if (!caller->key) {
        caller->refused = 1;
        return API_ERR_UNAUTHENTICATED;
    }
    uint8_t h[32];
    unsigned int hl = 0;
    if (EVP_Digest(caller->key, caller->key_len, h, &hl, EVP_sha256(), NULL) == 1 && hl == 32) {
        sess_t *owner = sess_registry_find_by_key(api_registry(api), h);
        explicit_bzero(h, sizeof(h));
        if (owner) {
            who->scope = API_SCOPE_SESSION;
            snprintf(who->session, sizeof(who->session), "%s", sess_name(owner));
            sess_unref(owner);
            return API_OK;
        }
    }
    caller->refused = 1;
    api_code_t rc =
        api_authorize(api, caller->client ? caller->client : "", caller->key, caller->key_len);
    return rc == API_OK ? API_ERR_UNAUTHENTICATED : rc;
}

/* May `who` see target t? */
static int visible(const api_principal_t *who, const wh_target_info_t *t)
{
    return who->scope == API_SCOPE_ADMIN || (t->session[0] && !strcmp(t->session, who->session));
}

static api_code_t code_of(int rc)
{
    switch (rc) {
    case WH_OK:
        return API_OK;
    case WH_EINVAL:
    case WH_EPRIVATE:
        return API_ERR_BAD_REQUEST;
    case WH_ENOTFOUND:
        return API_ERR_NOT_FOUND;
    case WH_ELIMIT:
        return API_ERR_LIMIT;
    case WH_ECLOSED:
        return API_ERR_SHUTTING_DOWN;
    default:
        return API_ERR_INTERNAL;
    }
}

int api_webhook_id_ok(const char *id)
{
    if (!id)
        return 0;
    if (!strcmp(id, WH_GLOBAL_ID))
        return 1;
    return strlen(id) == 27 && !strncmp(id, "wh_", 3) && strspn(id + 3, "0123456789abcdef") == 24;
}

/* Finds a target the caller may see. */
static api_code_t lookup(api_t *api, const api_principal_t *who, const char *id,
                         wh_target_info_t *t)
{
    wh_t *wh = api_webhooks(api);
    if (!wh)
        return API_ERR_INTERNAL;
    if (!api_webhook_id_ok(id) || wh_target_get(wh, id, t) != WH_OK || !visible(who, t))
        return API_ERR_NOT_FOUND;
    return API_OK;
}

/* --- the body --- */

void api_webhook_req_clear(api_webhook_req_t *r)
{
    free(r->url);
    if (r->secret) {
        explicit_bzero(r->secret, strlen(r->secret));
        free(r->secret);
    }
    free(r->session);
    for (size_t i = 0; r->events[i]; i++)
        free(r->events[i]);
    memset(r, 0, sizeof(*r));
}

int api_parse_webhook_body(const char *body, size_t len, api_webhook_req_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *malformed = "The body must be a JSON object {\"url\":\"https://...\"}";
    *why = malformed;
    yajl_val v = body && len ? api_jparse_object(body, len, malformed, why) : NULL;
    if (!v)
        return -1;
    int rc = -1;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        for (size_t j = 0; j < i; j++) /* at most 4 known members come before */
            if (!strcmp(v->u.object.keys[j], k)) {
                *why = "Duplicate member in the body";
                goto out;
            }
        if (!strcmp(k, "url") || !strcmp(k, "secret") || !strcmp(k, "session")) {
            if (YAJL_IS_NULL(x) && strcmp(k, "url"))
                continue;
            if (!YAJL_IS_STRING(x)) {
                *why = !strcmp(k, "url")      ? "\"url\" must be a string"
                       : !strcmp(k, "secret") ? "\"secret\" must be a string (whsec_...)"
                                              : "\"session\" must be a session name";
                goto out;
            }
            char **dst = !strcmp(k, "url")      ? &out->url
                         : !strcmp(k, "secret") ? &out->secret
                                                : &out->session;
            free(*dst);
            if (!(*dst = strdup(x->u.string))) {
                *why = "Out of memory";
                goto out;
            }
        } else if (!strcmp(k, "events")) {
            if (YAJL_IS_NULL(x))
                continue;
            if (!YAJL_IS_ARRAY(x) || x->u.array.len > WH_EVENTS_MAX) {
                *why = "\"events\" must be an array of at most 16 event types";
                goto out;
            }
            for (size_t j = 0; j < x->u.array.len; j++) {
                yajl_val e = x->u.array.values[j];
                if (!YAJL_IS_STRING(e)) {
                    *why = "\"events\" must be an array of strings";
                    goto out;
                }
                if (!(out->events[j] = strdup(e->u.string))) {
                    *why = "Out of memory";
                    goto out;
                }
            }
        } else {
            *why = "Unknown member (allowed: \"url\", \"secret\", \"events\", \"session\")";
            goto out;
        }
    }
    if (!out->url) {
        *why = "\"url\" is required";
        goto out;
    }
    rc = 0;
out:
    yajl_tree_free(v);
    if (rc)
        api_webhook_req_clear(out);
    return rc;
}

/* --- handlers --- */

typedef struct {
    api_webhook_created_cb cb;
    void *arg;
} create_ctx_t;

static void on_created(void *arg, int rc, const char *why, const wh_target_info_t *t,
                       const char *secret)
{
    create_ctx_t c = *(create_ctx_t *)arg;
    free(arg);
    c.cb(c.arg, code_of(rc), rc ? why : NULL, t, secret);
}

void api_webhook_create(api_t *api, const api_principal_t *who, const api_webhook_req_t *req,
                        api_webhook_created_cb cb, void *arg)
{
    wh_t *wh = api_webhooks(api);
    if (!wh) {
        cb(arg, API_ERR_INTERNAL, NULL, NULL, NULL);
        return;
    }
    const char *session = req->session && *req->session ? req->session : NULL;
    if (who->scope != API_SCOPE_ADMIN) {
        if (session && strcmp(session, who->session)) {
            cb(arg, API_ERR_FORBIDDEN, "A session key creates webhooks for its own session only",
               NULL, NULL);
            return;
        }
        session = who->session;
    }
    if (session) {
        if (!api_session_name_ok(session)) {
            cb(arg, API_ERR_BAD_REQUEST, API_BAD_NAME_MESSAGE, NULL, NULL);
            return;
        }
        sess_t *s = sess_registry_get(api_registry(api), session);
        if (!s) {
            cb(arg, API_ERR_NOT_FOUND, "No such session", NULL, NULL);
            return;
        }
        sess_unref(s);
    }
    create_ctx_t *c = malloc(sizeof(*c));
    if (!c) {
        cb(arg, API_ERR_INTERNAL, NULL, NULL, NULL);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    wh_target_spec_t spec = {.url = req->url,
                             .secret = req->secret,
                             .events = (const char *const *)req->events,
                             .session = session};
    int rc = wh_target_create(wh, &spec, on_created, c);
    if (rc) {
        free(c);
        cb(arg, code_of(rc), NULL, NULL, NULL);
    }
}

api_code_t api_webhook_list(api_t *api, const api_principal_t *who, wh_target_info_t **out,
                            size_t *n)
{
    *out = NULL;
    *n = 0;
    wh_t *wh = api_webhooks(api);
    if (!wh)
        return API_ERR_INTERNAL;
    wh_target_info_t *v;
    size_t total;
    if (wh_targets(wh, &v, &total) != WH_OK)
        return API_ERR_INTERNAL;
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (visible(who, &v[i]))
            v[k++] = v[i];
    *out = v;
    *n = k;
    return API_OK;
}

/* The message of an error of the delete and replay calls. */
static const char *message_of(api_code_t code)
{
    return code == API_ERR_NOT_FOUND ? "No such webhook" : NULL;
}

typedef struct {
    api_done_cb cb;
    void *arg;
} delete_ctx_t;

static void on_webhook_deleted(void *arg, int rc)
{
    delete_ctx_t c = *(delete_ctx_t *)arg;
    free(arg);
    api_code_t code = code_of(rc);
    api_result_t r = {code, code == API_OK ? "Webhook deleted" : message_of(code), NULL};
    c.cb(r, c.arg);
}

void api_webhook_delete(api_t *api, const api_principal_t *who, const char *id, api_done_cb cb,
                        void *arg)
{
    wh_target_info_t t;
    api_code_t code = lookup(api, who, id, &t);
    delete_ctx_t *c = code == API_OK ? malloc(sizeof(*c)) : NULL;
    if (c) {
        c->cb = cb;
        c->arg = arg;
        int rc = wh_target_delete(api_webhooks(api), id, on_webhook_deleted, c);
        if (rc == WH_OK)
            return;
        free(c);
        code = code_of(rc);
    } else if (code == API_OK) {
        code = API_ERR_INTERNAL;
    }
    api_result_t r = {code, message_of(code), NULL};
    cb(r, arg);
}

typedef struct {
    api_webhook_replay_cb cb;
    void *arg;
} replay_ctx_t;

static void on_webhook_replayed(void *arg, int rc, uint64_t n)
{
    replay_ctx_t c = *(replay_ctx_t *)arg;
    free(arg);
    api_code_t code = code_of(rc);
    c.cb(c.arg, code, message_of(code), n);
}

void api_webhook_replay(api_t *api, const api_principal_t *who, const char *id, uint64_t since_id,
                        api_webhook_replay_cb cb, void *arg)
{
    wh_target_info_t t;
    api_code_t code = lookup(api, who, id, &t);
    replay_ctx_t *c = code == API_OK ? malloc(sizeof(*c)) : NULL;
    if (c) {
        c->cb = cb;
        c->arg = arg;
        int rc = wh_replay(api_webhooks(api), id, since_id, on_webhook_replayed, c);
        if (rc == WH_OK)
            return;
        free(c);
        code = code_of(rc);
    } else if (code == API_OK) {
        code = API_ERR_INTERNAL;
    }
    cb(arg, code, message_of(code), 0);
}

struct api_webhook_wait {
    wh_test_t *w;
    api_webhook_test_cb cb;
    void *arg;
};

static void on_tested(void *arg, const wh_test_result_t *r)
{
    api_webhook_wait_t c = *(api_webhook_wait_t *)arg;
    free(arg);
    c.cb(c.arg, code_of(r->rc), r->rc ? r->error : NULL, r);
}

api_webhook_wait_t *api_webhook_test(api_t *api, const api_principal_t *who, const char *id,
                                     unsigned wait_ms, api_webhook_test_cb cb, void *arg)
{
    wh_target_info_t t;
    api_code_t c = lookup(api, who, id, &t);
    api_webhook_wait_t *ctx = c == API_OK ? malloc(sizeof(*ctx)) : NULL;
    if (!ctx) {
        cb(arg, c == API_OK ? API_ERR_INTERNAL : c, NULL, NULL);
        return NULL;
    }
    ctx->cb = cb;
    ctx->arg = arg;
    if (wait_ms > API_WEBHOOK_WAIT_MAX_MS)
        wait_ms = API_WEBHOOK_WAIT_MAX_MS;
    wh_test_t *w = wh_test(api_webhooks(api), id, wait_ms, on_tested, ctx);
    if (!w)
        return NULL; /* on_tested ran and freed ctx */
    ctx->w = w;
    return ctx;
}

void api_webhook_test_cancel(api_webhook_wait_t *t)
{
    if (t) {
        wh_test_cancel(t->w);
        free(t);
    }
}

/* --- JSON views --- */

#define KEY(g, k) yajl_gen_string(g, (const unsigned char *)(k), strlen(k))

static yajl_gen begin(const char *message)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    KEY(g, "success");
    yajl_gen_bool(g, 1);
    if (message)
        api_jput_str(g, "message", message);
    KEY(g, "data");
    return g;
}

static void put_target(yajl_gen g, const wh_target_info_t *t, const char *secret)
{
    yajl_gen_map_open(g);
    api_jput_str(g, "id", t->id);
    api_jput_str(g, "url", t->url);
    api_jput_str(g, "session", t->session[0] ? t->session : NULL);
    KEY(g, "events");
    yajl_gen_array_open(g);
    for (const char *p = t->events; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n)
            yajl_gen_string(g, (const unsigned char *)p, n);
        p += n;
    }
    yajl_gen_array_close(g);
    api_jput_int(g, "createdAt", t->created_at);
    api_jput_int(g, "delivered", (long long)t->delivered);
    api_jput_int(g, "failed", (long long)t->failed);
    api_jput_int(g, "dead", (long long)t->dead);
    KEY(g, "retrying");
    yajl_gen_bool(g, t->retrying);
    api_jput_int(g, "oldestPendingSeconds", (long long)(t->oldest_pending_ms / 1000));
    api_jput_str(g, "lastError", t->last_error[0] ? t->last_error : NULL);
    if (secret)
        api_jput_str(g, "secret", secret);
    yajl_gen_map_close(g);
}

char *api_json_webhook(const wh_target_info_t *t, const char *message, const char *secret)
{
    yajl_gen g = begin(message);
    if (!g)
        return NULL;
    put_target(g, t, secret);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_webhooks(const wh_target_info_t *v, size_t n)
{
    yajl_gen g = begin(NULL);
    if (!g)
        return NULL;
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        put_target(g, &v[i], NULL);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_webhook_test(const wh_test_result_t *r)
{
    yajl_gen g = begin(!r->answered   ? "Test event queued; no answer from the target yet"
                       : r->delivered ? "Test event delivered"
                                      : "Test event not delivered (it will be retried)");
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    KEY(g, "answered");
    yajl_gen_bool(g, r->answered);
    KEY(g, "delivered");
    yajl_gen_bool(g, r->delivered);
    api_jput_int(g, "status", r->status);
    api_jput_str(g, "error", r->error && *r->error ? r->error : NULL);
    api_jput_int(g, "eventId", (long long)r->event_id);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_webhook_replay(uint64_t n)
{
    yajl_gen g = begin("Deliveries queued again");
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_int(g, "requeued", (long long)n);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}
