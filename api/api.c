/* The handler layer: resolves the session, checks nothing about transports,
 * and returns results in the one error model (see api.h). Reconnect waits
 * for its QR through an ordinary subscription, so it never blocks the loop. */
#include "api/api.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "api/qr.h"
#include "session/manager.h"

#define AUTH_SLOTS 4096

/* Wrong-key counters per client group: an IPv4 address, or the /64 of an
 * IPv6 address (one host usually owns a whole /64). A slot is reused only
 * once its window and lockout are over, so an attacker cannot flush their
 * own count by trying from many addresses; when every slot is in use, new
 * groups share one overflow slot (which then locks out every new wrong
 * key, never a right one: the key is checked first). */
typedef struct {
    uint8_t group[16]; /* IPv4 as ::ffff:a.b.c.d, IPv6 as its /64 */
    int used;
    int64_t window_start_ms, blocked_until_ms;
    unsigned failures;
} auth_slot_t;

struct api {
    sess_registry_t *reg;
    sess_mgr_t *sessions;
    wh_t *webhooks;
    clu_t *cluster;
    char *node_secret; /* CLUSTER_SECRET: forwarded commands (NULL: not forwarded) */
    char *key;
    size_t key_len;
    unsigned reconnect_wait_ms;
    size_t waits;            /* reconnects waiting (loop thread) */
    pthread_mutex_t auth_mu; /* guards auth and auth_overflow */
    auth_slot_t auth[AUTH_SLOTS];
    auth_slot_t auth_overflow;
};

struct api_wait {
    api_t *api;
    sess_t *sess;
    sess_sub_t *sub;
    uv_async_t wake;
    uv_timer_t timer;
    int keep;
    uint64_t start_seq;
    int saw_connecting;
    api_reconnect_cb cb;
    void *arg;
    int closing, handles;
};

static const struct {
    int http;
    int grpc;
    const char *msg;
} code_table[] = {
    [API_OK] = {200, 0, "OK"},
    [API_ERR_UNAUTHENTICATED] = {401, 16, "Invalid API key"},
    [API_ERR_NO_QR] = {409, 9, "No QR code available in the current state"},
    [API_ERR_BAD_REQUEST] = {400, 3, "Bad request"},
    [API_ERR_NOT_FOUND] = {404, 5, "Not found"},
    [API_ERR_TOO_LARGE] = {413, 3, "Request body too large"},
    [API_ERR_RATE_LIMITED] = {429, 8, "Too many failed attempts, try again later"},
    [API_ERR_TIMEOUT] = {504, 4, "WhatsApp did not answer in time"},
    [API_ERR_UNREACHABLE] = {502, 14, "WhatsApp could not be reached"},
    [API_ERR_SHUTTING_DOWN] = {503, 14, "The service is shutting down"},
    [API_ERR_INTERNAL] = {500, 13, "Internal error"},
    [API_ERR_CONFLICT] = {409, 9, "Not possible in the current state"},
    [API_ERR_ALREADY_LINKED] = {409, 9, "Already linked to a WhatsApp account"},
    [API_ERR_FORBIDDEN] = {403, 7, "Forbidden"},
    [API_ERR_LIMIT] = {507, 8, "Too many sessions (MAX_SESSIONS)"},
};

int api_http_status(api_code_t code)
{
    return code_table[code].http;
}

int api_grpc_status(api_code_t code)
{
    return code_table[code].grpc;
}

const char *api_code_message(api_code_t code)
{
    return code_table[code].msg;
}

api_t *api_new(sess_registry_t *reg, const api_opts_t *opts)
{
    api_t *api = calloc(1, sizeof(*api));
    if (!api)
        return NULL;
    api->reg = reg;
    api->sessions = opts ? opts->sessions : NULL;
    api->webhooks = opts ? opts->webhooks : NULL;
    api->cluster = opts ? opts->cluster : NULL;
    pthread_mutex_init(&api->auth_mu, NULL);
    if (opts && opts->node_secret && !(api->node_secret = strdup(opts->node_secret))) {
        api_free(api);
        return NULL;
    }
    if (opts && opts->api_key && *opts->api_key) {
        api->key = strdup(opts->api_key);
        if (!api->key) {
            api_free(api);
            return NULL;
        }
        api->key_len = strlen(api->key);
    }
    api->reconnect_wait_ms = opts && opts->reconnect_wait_ms ? opts->reconnect_wait_ms : 30000;
    return api;
}

void api_free(api_t *api)
{
    if (!api)
        return;
    if (api->key) {
        explicit_bzero(api->key, api->key_len);
        free(api->key);
    }
    if (api->node_secret) {
        explicit_bzero(api->node_secret, strlen(api->node_secret));
        free(api->node_secret);
    }
    pthread_mutex_destroy(&api->auth_mu);
    free(api);
}

sess_registry_t *api_registry(api_t *api)
{
    return api->reg;
}

sess_mgr_t *api_sessions(api_t *api)
{
    return api->sessions;
}

wh_t *api_webhooks(api_t *api)
{
    return api->webhooks;
}

int api_key_required(const api_t *api)
{
    return api->key != NULL;
}

/* 1 when the presented `v` (len bytes) is the configured `want`. Every
 * byte of `want` is compared whatever the presented length, so timing
 * reveals neither content nor a matching prefix. */
static int secret_equal(const char *want, size_t want_len, const char *v, size_t len)
{
    unsigned diff = (unsigned)(len ^ want_len);
    for (size_t i = 0; i < want_len; i++) {
        unsigned char k = len ? (unsigned char)v[i % len] : 0;
        diff |= (unsigned)(k ^ (unsigned char)want[i]);
    }
    return diff == 0;
}

int api_key_ok(const api_t *api, const char *key, size_t len)
{
    if (!api->key)
        return 1;
    if (!key)
        return 0;
    return secret_equal(api->key, api->key_len, key, len);
}

int api_node_secret_ok(const api_t *api, const char *v, size_t len)
{
    if (!api->node_secret || !v)
        return 0;
    return secret_equal(api->node_secret, strlen(api->node_secret), v, len);
}

const char *api_node_secret(const api_t *api)
{
    return api->node_secret;
}

int api_forward_to(api_t *api, const char *session, char *url, size_t len)
{
    if (!api->cluster || !api->node_secret)
        return 0;
    sess_t *s = sess_registry_get(api->reg, session && *session ? session : "default");
    int follower = s && sess_following(s);
    if (s)
        sess_unref(s);
    return follower &&
           clu_owner_url(api->cluster, session && *session ? session : "default", url, len) == 0;
}

/* Parses a client address as the transports give it into its group. */
static void client_group(const char *client, uint8_t out[16])
{
    char buf[80];
    memset(out, 0, 16);
    if (!client)
        client = "";
    /* gRPC peers: "ipv4:1.2.3.4:port", "ipv6:[::1]:port" (or %5B...%5D) */
    if (!strncmp(client, "ipv4:", 5) || !strncmp(client, "ipv6:", 5))
        client += 5;
    size_t n = 0;
    for (const char *p = client; *p && n + 1 < sizeof(buf); p++) {
        if (p[0] == '%' && (!strncasecmp(p, "%5B", 3) || !strncasecmp(p, "%5D", 3))) {
            buf[n++] = (p[2] == 'B' || p[2] == 'b') ? '[' : ']';
            p += 2;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = 0;
    char *a = buf;
    if (a[0] == '[') { /* [v6] or [v6]:port */
        a++;
        char *close = strchr(a, ']');
        if (close)
            *close = 0;
    } else {
        char *colon = strchr(a, ':');
        if (colon && !strchr(colon + 1, ':'))
            *colon = 0; /* v4:port */
    }
    char *pct = strchr(a, '%'); /* a zone index: fe80::1%eth0 */
    if (pct)
        *pct = 0;
    uint8_t v6[16];
    struct in_addr v4;
    if (inet_pton(AF_INET, a, &v4) == 1) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
    } else if (inet_pton(AF_INET6, a, v6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(v6, mapped, 12))
            memcpy(out, v6, 16); /* ::ffff:a.b.c.d is the IPv4 client */
        else
            memcpy(out, v6, 8);
    } else {
        memset(out, 0xff, 16); /* unknown: one group of its own */
    }
}

int api_client_group(const char *client, char *out, size_t outlen)
{
    uint8_t g[16];
    client_group(client, g);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t unknown[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    char txt[INET6_ADDRSTRLEN];
    if (!memcmp(g, unknown, 16))
        return snprintf(out, outlen, "unknown") >= (int)outlen ? -1 : 0;
    if (!memcmp(g, mapped, 12)) {
        inet_ntop(AF_INET, g + 12, txt, sizeof(txt));
        return snprintf(out, outlen, "%s", txt) >= (int)outlen ? -1 : 0;
    }
    inet_ntop(AF_INET6, g, txt, sizeof(txt));
    return snprintf(out, outlen, "%s/64", txt) >= (int)outlen ? -1 : 0;
}

static int slot_active(const auth_slot_t *s, int64_t now)
{
    return s->used && (s->blocked_until_ms > now || now - s->window_start_ms <= API_AUTH_WINDOW_MS);
}

/* The slot counting `group` (existing, else a free one, else the shared
 * overflow slot). Caller holds auth_mu. */
static auth_slot_t *auth_slot(api_t *api, const uint8_t group[16], int64_t now)
{
    auth_slot_t *free_slot = NULL;
    for (int i = 0; i < AUTH_SLOTS; i++) {
        auth_slot_t *s = &api->auth[i];
        if (s->used && !memcmp(s->group, group, 16))
            return s;
        if (!free_slot && !slot_active(s, now))
            free_slot = s;
    }
    if (!free_slot)
        return &api->auth_overflow;
    memset(free_slot, 0, sizeof(*free_slot));
    memcpy(free_slot->group, group, 16);
    free_slot->used = 1;
    free_slot->window_start_ms = now;
    return free_slot;
}

api_code_t api_authorize(api_t *api, const char *client, const char *key, size_t len)
{
    if (!api->key)
        return API_OK;
    /* The right key passes first, lockout or not: a flood of wrong keys from
     * a shared address (NAT, /64) cannot lock its legitimate users out. */
    if (api_key_ok(api, key, len))
        return API_OK;
    if (!key)
        return API_ERR_UNAUTHENTICATED;
    int64_t now = sess_now_ms();
    uint8_t group[16];
    client_group(client, group);
    api_code_t rc = API_ERR_UNAUTHENTICATED;
    pthread_mutex_lock(&api->auth_mu);
    auth_slot_t *s = auth_slot(api, group, now);
    if (s->blocked_until_ms > now) {
        rc = API_ERR_RATE_LIMITED;
    } else {
        if (now - s->window_start_ms > API_AUTH_WINDOW_MS) {
            s->window_start_ms = now;
            s->failures = 0;
        }
        if (++s->failures >= API_AUTH_MAX_FAILURES)
            s->blocked_until_ms = now + API_AUTH_LOCKOUT_MS;
    }
    pthread_mutex_unlock(&api->auth_mu);
    return rc;
}

void api_result_clear(api_result_t *r)
{
    sess_snapshot_unref(r->snap);
    r->snap = NULL;
}

static sess_t *find(api_t *api, const char *name)
{
    return sess_registry_find(api->reg, name && *name ? name : "default");
}

static api_result_t result(api_code_t code, sess_snapshot_t *snap)
{
    api_result_t r = {code, NULL, snap};
    return r;
}

/* In a cluster, a session another node runs: its commands go there (see
 * API_ELSEWHERE_MESSAGE). */
static int elsewhere(const api_t *api, sess_t *s)
{
    return api->cluster && sess_following(s);
}

static api_result_t elsewhere_result(sess_t *s)
{
    api_result_t r = result(API_ERR_CONFLICT, sess_current(s));
    r.message = API_ELSEWHERE_MESSAGE;
    return r;
}

api_result_t api_status(api_t *api, const char *name)
{
    /* any thread: a reference keeps a session deleted meanwhile readable */
    sess_t *s = sess_registry_get(api->reg, name && *name ? name : "default");
    if (!s)
        return result(API_ERR_NOT_FOUND, NULL);
    api_result_t r = result(API_OK, sess_current(s));
    sess_unref(s);
    return r;
}

/* Why there is no QR, in words for the caller. */
static const char *no_qr_message(const sess_snapshot_t *s)
{
    switch (s->state) {
    case SESS_CONNECTED:
        return "No QR code: already connected";
    case SESS_CONNECTING:
        return "No QR code yet: connecting to WhatsApp";
    case SESS_DISCONNECTED:
        return "No QR code: disconnected (POST reconnect to get a new one)";
    default:
        return "No QR code available";
    }
}

api_result_t api_qr(api_t *api, const char *name)
{
    sess_t *s = find(api, name);
    if (!s)
        return result(API_ERR_NOT_FOUND, NULL);
    sess_snapshot_t *snap = sess_current(s);
    if (sess_snapshot_qr_remaining_ms(snap, sess_now_ms()) <= 0 || !snap->qr->rendered) {
        api_result_t r = result(API_ERR_NO_QR, snap);
        r.message = no_qr_message(snap);
        return r;
    }
    return result(API_OK, snap);
}

api_result_t api_logout(api_t *api, const char *name)
{
    sess_t *s = find(api, name);
    if (!s)
        return result(API_ERR_NOT_FOUND, NULL);
    if (elsewhere(api, s))
        return elsewhere_result(s);
    if (sess_logout(s) != 0)
        return result(API_ERR_INTERNAL, sess_current(s));
    api_result_t r = result(API_OK, sess_current(s));
    r.message = API_LOGOUT_MESSAGE;
    return r;
}

sess_sub_t *api_watch(api_t *api, const char *name, const sess_sub_opts_t *opts, api_code_t *code)
{
    return api_watch_since(api, name, 0, opts, code);
}

sess_sub_t *api_watch_since(api_t *api, const char *name, uint64_t since,
                            const sess_sub_opts_t *opts, api_code_t *code)
{
    sess_t *s = sess_registry_get(api->reg, name && *name ? name : "default");
    if (!s) {
        *code = API_ERR_NOT_FOUND;
        return NULL;
    }
    /* the subscription holds its own reference */
    sess_sub_t *sub = since ? sess_subscribe_since(s, since, opts) : sess_subscribe(s, opts);
    sess_unref(s);
    *code = sub ? API_OK : API_ERR_INTERNAL;
    return sub;
}

int api_parse_since(const char *s, size_t len, uint64_t *out)
{
    if (!s || len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1; /* over UINT64_MAX */
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

api_code_t api_resume_cursor(const char *last_event_id, size_t lei_len, const char *since,
                             size_t since_len, uint64_t *out)
{
    *out = 0;
    if (last_event_id && lei_len > 0)
        return api_parse_since(last_event_id, lei_len, out) ? API_ERR_BAD_REQUEST : API_OK;
    if (since)
        return api_parse_since(since, since_len, out) ? API_ERR_BAD_REQUEST : API_OK;
    return API_OK;
}

/* --- the passkey step --- */

api_result_t api_passkey_options(api_t *api, const char *name)
{
    sess_t *s = sess_registry_get(api->reg, name && *name ? name : "default");
    if (!s)
        return result(API_ERR_NOT_FOUND, NULL);
    sess_snapshot_t *snap = sess_current(s);
    sess_unref(s);
    api_result_t r = result(snap->passkey_options ? API_OK : API_ERR_CONFLICT, snap);
    if (r.code != API_OK)
        r.message = "No passkey step is waiting for an assertion";
    return r;
}

typedef struct {
    sess_t *s;
    api_passkey_cb cb;
    void *arg;
} passkey_wait_t;

static const char *passkey_message(int rc, api_code_t *code)
{
    switch (rc) {
    case 0:
        *code = API_OK;
        return "Passkey accepted; compare the code with the phone's";
    case SESS_EINVAL:
        *code = API_ERR_BAD_REQUEST;
        return "Malformed WebAuthn assertion, or one for another challenge";
    case SESS_ESTATE:
    case SESS_ENOTSUP:
        *code = API_ERR_CONFLICT;
        return "No passkey step is waiting for an assertion";
    case SESS_EBUSY:
        *code = API_ERR_CONFLICT;
        return "An assertion is being sent already";
    case SESS_EREFUSED:
        *code = API_ERR_UNREACHABLE;
        return "WhatsApp refused the passkey assertion";
    case SESS_ETIMEOUT:
        *code = API_ERR_TIMEOUT;
        return NULL;
    case SESS_ESTOPPED: /* 502, not 503: the service itself is still there */
        *code = API_ERR_UNREACHABLE;
        return "The connection to WhatsApp ended first";
    }
    *code = API_ERR_INTERNAL;
    return NULL;
}

static void passkey_done(void *arg, int rc)
{
    passkey_wait_t *w = arg;
    api_result_t r = result(API_OK, sess_current(w->s));
    r.message = passkey_message(rc, &r.code);
    w->cb(r, w->arg);
    sess_unref(w->s);
    free(w);
}

void api_passkey_response(api_t *api, const char *name, const char *json, size_t len,
                          api_passkey_cb cb, void *arg)
{
    sess_t *s = find(api, name);
    if (!s) {
        cb(result(API_ERR_NOT_FOUND, NULL), arg);
        return;
    }
    if (elsewhere(api, s)) {
        cb(elsewhere_result(s), arg);
        return;
    }
    if (!json || !len) {
        api_result_t r = result(API_ERR_BAD_REQUEST, NULL);
        r.message = "Missing body: the WebAuthn assertion (PublicKeyCredential.toJSON())";
        cb(r, arg);
        return;
    }
    passkey_wait_t *w = malloc(sizeof(*w));
    if (!w) {
        cb(result(API_ERR_INTERNAL, NULL), arg);
        return;
    }
    *w = (passkey_wait_t){s, cb, arg};
    sess_ref(s); /* until the step answers, even if the session is removed meanwhile */
    int rc = sess_passkey_response(s, json, len, passkey_done, w);
    if (rc != 0)
        passkey_done(w, rc);
}

/* --- reconnect: wait for the first new QR (or CONNECTED) --- */

size_t api_reconnect_waits(const api_t *api)
{
    return api->waits;
}

static void wait_handle_closed(uv_handle_t *h)
{
    api_wait_t *w = h->data;
    if (--w->handles == 0)
        free(w);
}

static void wait_finish(api_wait_t *w, api_code_t code, sess_snapshot_t *snap)
{
    if (w->closing) {
        sess_snapshot_unref(snap);
        return;
    }
    w->closing = 1;
    w->api->waits--;
    sess_unsubscribe(w->sub);
    w->sub = NULL;
    uv_timer_stop(&w->timer);
    if (w->cb) {
        api_result_t r = {code, code == API_OK ? API_RECONNECT_MESSAGE : NULL, snap};
        w->cb(r, w->arg);
    } else {
        sess_snapshot_unref(snap);
    }
    uv_close((uv_handle_t *)&w->wake, wait_handle_closed);
    uv_close((uv_handle_t *)&w->timer, wait_handle_closed);
}

void api_wait_cancel(api_wait_t *w)
{
    if (!w || w->closing)
        return;
    w->cb = NULL;
    wait_finish(w, API_OK, NULL);
}

static void on_wait_timeout(uv_timer_t *t)
{
    api_wait_t *w = t->data;
    wait_finish(w, API_ERR_TIMEOUT, sess_current(w->sess));
}

static void on_wait_wake(uv_async_t *a)
{
    api_wait_t *w = a->data;
    sess_snapshot_t *snap;
    int rc = SESS_SUB_EMPTY;
    while (!w->closing && (rc = sess_sub_next(w->sub, &snap)) == SESS_SUB_OK) {
        if (snap->seq <= w->start_seq) {
            sess_snapshot_unref(snap);
            continue;
        }
        if (snap->state == SESS_CONNECTING)
            w->saw_connecting = 1;
        if (snap->state == SESS_QR_READY && snap->qr) {
            wait_finish(w, API_OK, snap);
            return;
        }
        if (snap->state == SESS_CONNECTED && w->keep) {
            wait_finish(w, API_OK, snap);
            return;
        }
        if (snap->state == SESS_DISCONNECTED && w->saw_connecting) {
            wait_finish(w, API_ERR_UNREACHABLE, snap);
            return;
        }
        sess_snapshot_unref(snap);
    }
    if (!w->closing && rc == SESS_SUB_ENDED)
        wait_finish(w, API_ERR_SHUTTING_DOWN, NULL);
}

static void wait_notify(void *arg)
{
    api_wait_t *w = arg;
    uv_async_send(&w->wake);
}

api_wait_t *api_reconnect(api_t *api, const char *name, int keep_credentials, unsigned wait_ms,
                          api_reconnect_cb cb, void *arg)
{
    sess_t *s = find(api, name);
    if (!s) {
        cb(result(API_ERR_NOT_FOUND, NULL), arg);
        return NULL;
    }
    if (elsewhere(api, s)) {
        cb(elsewhere_result(s), arg);
        return NULL;
    }
    api_wait_t *w = calloc(1, sizeof(*w));
    if (!w) {
        cb(result(API_ERR_INTERNAL, NULL), arg);
        return NULL;
    }
    w->api = api;
    api->waits++;
    w->keep = keep_credentials;
    w->cb = cb;
    w->arg = arg;
    w->sess = s;
    uv_loop_t *loop = sess_registry_loop(api->reg);
    uv_async_init(loop, &w->wake, on_wait_wake);
    uv_timer_init(loop, &w->timer);
    w->wake.data = w->timer.data = w;
    w->handles = 2;
    sess_snapshot_t *cur = sess_current(s);
    w->start_seq = cur->seq;
    sess_snapshot_unref(cur);
    sess_sub_opts_t o = {.notify = wait_notify, .arg = w, .policy = SESS_SLOW_COALESCE};
    w->sub = sess_subscribe(s, &o);
    if (!w->sub || sess_reconnect(s, keep_credentials) != 0) {
        wait_finish(w, API_ERR_INTERNAL, sess_current(s));
        return NULL;
    }
    uv_timer_start(&w->timer, on_wait_timeout, wait_ms ? wait_ms : api->reconnect_wait_ms, 0);
    return w;
}

/* --- pairing code --- */

struct api_pc {
    api_t *api;
    sess_t *sess;
    api_pairing_code_cb cb; /* NULL once cancelled */
    void *arg;
};

int api_normalize_phone(const char *in, size_t len, char out[16], const char **why)
{
    size_t n = 0, i = 0;
    if (len > 0 && in[0] == '+')
        i = 1;
    for (; i < len; i++) {
        char ch = in[i];
        if (ch == ' ' || ch == '-')
            continue;
        if (ch < '0' || ch > '9') {
            *why = "phoneNumber may hold only digits, a leading '+', spaces and dashes";
            return -1;
        }
        if (n >= 15) {
            *why = "phoneNumber must have 8 to 15 digits (country code first)";
            return -1;
        }
        out[n++] = ch;
    }
    if (n < 8) {
        *why = "phoneNumber must have 8 to 15 digits (country code first)";
        return -1;
    }
    if (out[0] == '0') {
        *why = "phoneNumber must start with the country code, not 0";
        return -1;
    }
    out[n] = 0;
    return 0;
}

int64_t api_link_code_expires_in(const sess_snapshot_t *s, int64_t now_ms)
{
    if (!s->link_code || s->link_code_expires_at_ms <= now_ms)
        return 0;
    return (s->link_code_expires_at_ms - now_ms + 999) / 1000;
}

static api_code_t pc_code(int rc, const char **msg)
{
    switch (rc) {
    case SESS_ELINKED:
    case SESS_ESTATE:
        *msg = "Already linked to a WhatsApp account (log out first to link again)";
        return API_ERR_ALREADY_LINKED;
    case SESS_EBUSY:
        *msg = "A pairing code was asked for less than 10 s ago; try again later";
        return API_ERR_RATE_LIMITED;
    case SESS_EINVAL:
        *msg = "Invalid phone number";
        return API_ERR_BAD_REQUEST;
    case SESS_EREFUSED:
        *msg = "WhatsApp refused the pairing-code request (check the number)";
        return API_ERR_UNREACHABLE;
    case SESS_ETIMEOUT:
        *msg = NULL;
        return API_ERR_TIMEOUT;
    case SESS_EUNREACH:
        *msg = NULL;
        return API_ERR_UNREACHABLE;
    case SESS_ESTOPPED:
        *msg = NULL;
        return API_ERR_SHUTTING_DOWN;
    case SESS_ENOTSUP:
        *msg = "Linking by pairing code is not available";
        return API_ERR_INTERNAL;
    }
    *msg = NULL;
    return API_ERR_INTERNAL;
}

static void pc_done(void *arg, int rc, const char *code, int64_t expires_at_ms)
{
    api_pc_t *p = arg;
    if (p->cb) {
        api_result_t r = {API_OK, NULL, sess_current(p->sess)};
        int left = 0;
        if (rc) {
            r.code = pc_code(rc, &r.message);
            code = NULL;
        } else {
            int64_t ms = expires_at_ms - sess_now_ms();
            left = ms > 0 ? (int)((ms + 999) / 1000) : 0;
        }
        p->cb(r, code, left, p->arg);
    }
    free(p);
}

api_pc_t *api_pairing_code(api_t *api, const char *name, const char *phone, api_pairing_code_cb cb,
                           void *arg)
{
    sess_t *s = find(api, name);
    if (!s) {
        cb(result(API_ERR_NOT_FOUND, NULL), NULL, 0, arg);
        return NULL;
    }
    if (elsewhere(api, s)) {
        cb(elsewhere_result(s), NULL, 0, arg);
        return NULL;
    }
    api_pc_t *p = calloc(1, sizeof(*p));
    if (!p) {
        cb(result(API_ERR_INTERNAL, NULL), NULL, 0, arg);
        return NULL;
    }
    p->api = api;
    p->sess = s;
    p->cb = cb;
    p->arg = arg;
    int rc = sess_pairing_code(s, phone, pc_done, p);
    if (rc) {
        free(p);
        api_result_t r = {API_OK, NULL, sess_current(s)};
        r.code = pc_code(rc, &r.message);
        cb(r, NULL, 0, arg);
        return NULL;
    }
    return p;
}

void api_pairing_code_cancel(api_pc_t *p)
{
    if (p)
        p->cb = NULL;
}

/* --- QR rendering once per QR (the registry's render hook) --- */

static void *render_qr(const char *text, void *arg)
{
    (void)arg;
    api_qr_render_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (api_qr_png(text, 0, &r->png, &r->png_len, NULL) != 0 ||
        !(r->data_url = api_qr_data_url(r->png, r->png_len))) {
        free(r->png);
        free(r);
        return NULL;
    }
    return r;
}

static void free_render(void *p)
{
    api_qr_render_t *r = p;
    if (!r)
        return;
    /* both encode the QR, adv secret included */
    if (r->png)
        explicit_bzero(r->png, r->png_len);
    if (r->data_url)
        explicit_bzero(r->data_url, strlen(r->data_url));
    free(r->png);
    free(r->data_url);
    free(r);
}

sess_render_hooks_t api_render_hooks(void)
{
    sess_render_hooks_t h = {render_qr, free_render, NULL};
    return h;
}

/* --- names in paths --- */

int api_session_name_ok(const char *name)
{
    return name && sess_mgr_name_ok(name);
}

/* --- the cluster --- */

struct api_cluster_call {
    void (*done)(void *arg, api_code_t code, char *json);
    void *arg;
    int cancelled;
};

static void on_cluster_status(void *arg, char *json)
{
    api_cluster_call_t *call = arg;
    if (!call->cancelled)
        call->done(call->arg, json ? API_OK : API_ERR_UNREACHABLE, json);
    else
        free(json);
    free(call);
}

api_cluster_call_t *
api_cluster_status(api_t *api, void (*done)(void *arg, api_code_t code, char *json), void *arg)
{
    if (!api->cluster) { /* one node on SQLite */
        char *json = strdup("{\"clustered\":false,\"nodes\":[],\"sessions\":[]}");
        done(arg, json ? API_OK : API_ERR_INTERNAL, json);
        return NULL;
    }
    api_cluster_call_t *call = calloc(1, sizeof(*call));
    if (!call) {
        done(arg, API_ERR_INTERNAL, NULL);
        return NULL;
    }
    call->done = done;
    call->arg = arg;
    if (clu_status(api->cluster, on_cluster_status, call) != 0) {
        free(call);
        done(arg, API_ERR_INTERNAL, NULL);
        return NULL;
    }
    return call;
}

void api_cluster_status_cancel(api_cluster_call_t *call)
{
    if (call)
        call->cancelled = 1;
}

api_code_t api_cluster_rebalance(api_t *api)
{
    if (!api->cluster)
        return API_ERR_CONFLICT;
    clu_rebalance(api->cluster);
    return API_OK;
}
