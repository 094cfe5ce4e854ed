/* Connection events, QR rotation, pairing, keepalive and pre-keys for one
 * connection (see client.h). Requests we send are matched to their answers
 * by id through a small table of pending iqs. */
#include "session/wa/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include <sys/time.h>
#include "session/wa/noisesocket.h"

#define MAX_REFS 16
#define MAX_PENDING 16

typedef enum { REQ_NONE, REQ_PING, REQ_COUNT, REQ_UPLOAD, REQ_ACTIVE, REQ_LOGOUT } req_kind_t;

typedef struct {
    char id[32];
    req_kind_t kind;
    uint32_t max_id;
} pending_t;

struct wa_client {
    wa_client_config_t cfg;
    wa_client_hooks_t hooks;
    wa_nsock_t *sock;
    char *jid;
    uint8_t ident_priv[32], ident_pub[32], noise_pub[32], adv_secret[32];
    uint32_t reg_id, spk_id;
    uint8_t spk_pub[32], spk_sig[64];
    /* QR refs */
    char *refs[MAX_REFS];
    size_t nrefs, next_ref;
    uv_timer_t qr_timer, ka_timer;
    int timers_open;
    /* state */
    int logged_in, done, paired, logging_out;
    uint32_t id_counter;
    uint16_t id_prefix[2];
    pending_t pending[MAX_PENDING];
    int64_t ping_sent_ms;
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void set_verdict(wa_verdict_t *v, const char *detail, int code, wa_retry_t retry, int wipe,
                        const char *message)
{
    memset(v, 0, sizeof(*v));
    v->detail = detail;
    v->code = code;
    v->retry = retry;
    v->wipe = wipe;
    v->message = message;
}

/* The verdict table for stream:error codes (protocol doc 7.1). */
static void classify_stream_error(const wa_node_t *n, wa_verdict_t *v)
{
    const char *code_s = wa_node_attr(n, "code");
    int code = code_s ? atoi(code_s) : 0;
    const wa_node_t *conflict = wa_node_child(n, "conflict");
    const char *ctype = conflict ? wa_node_attr(conflict, "type") : NULL;
    if (ctype && !strcmp(ctype, "replaced"))
        set_verdict(v, "replaced", code ? code : 440, WA_RETRY_NO, 0,
                    "another connection with the same credentials took over");
    else if ((ctype && !strcmp(ctype, "device_removed")) || code == 401)
        set_verdict(v, "logged_out", 401, WA_RETRY_NO, 1,
                    "this device was unlinked (logged out from the phone or by WhatsApp)");
    else if (conflict && !code)
        set_verdict(v, "replaced", 440, WA_RETRY_NO, 0, "connection conflict");
    else if (code == 515)
        set_verdict(v, "restart_required", 515, WA_RETRY_NOW, 0, "WhatsApp asked for a restart");
    else if (code == 503)
        set_verdict(v, "service_unavailable", 503, WA_RETRY_BACKOFF, 0,
                    "WhatsApp is temporarily unavailable");
    else
        set_verdict(v, "stream_error", code ? code : 500, WA_RETRY_BACKOFF, 0,
                    "WhatsApp ended the stream with an error");
}

/* The verdict table for failure reasons (protocol doc 7.2). */
static void classify_failure(const wa_node_t *n, wa_verdict_t *v)
{
    const char *r = wa_node_attr(n, "reason");
    int code = r ? atoi(r) : 0;
    switch (code) {
    case 401:
        set_verdict(v, "logged_out", 401, WA_RETRY_NO, 1, "this device is no longer linked");
        break;
    case 402: {
        set_verdict(v, "temporarily_banned", 402, WA_RETRY_NO, 0,
                    "the account is temporarily banned");
        const char *e = wa_node_attr(n, "expire");
        v->expire_s = e ? atoll(e) : 0;
        break;
    }
    case 403:
        set_verdict(v, "account_locked", 403, WA_RETRY_NO, 1,
                    "the account was logged out or locked on the phone");
        break;
    case 405:
        set_verdict(v, "client_outdated", 405, WA_RETRY_NO, 0,
                    "WhatsApp rejected this WhatsApp Web version (update WA_VERSION)");
        break;
    case 406:
        set_verdict(v, "banned", 406, WA_RETRY_NO, 1, "the account was banned or logged out");
        break;
    case 409:
        set_verdict(v, "bad_user_agent", 409, WA_RETRY_NO, 0, "WhatsApp rejected the user agent");
        break;
    case 411:
        set_verdict(v, "multidevice_mismatch", 411, WA_RETRY_NO, 0,
                    "the phone does not support linked devices");
        break;
    case 500:
        set_verdict(v, "server_error", 500, WA_RETRY_BACKOFF, 0, "WhatsApp internal error");
        break;
    case 503:
        set_verdict(v, "service_unavailable", 503, WA_RETRY_BACKOFF, 0,
                    "WhatsApp is temporarily unavailable");
        break;
    case 400:
        set_verdict(v, "connect_failure", 400, WA_RETRY_NO, 0, "WhatsApp refused the connection");
        break;
    default:
        set_verdict(v, "connect_failure", code, WA_RETRY_NO, 0,
                    "WhatsApp refused the connection (unhandled reason)");
        break;
    }
}

int wa_client_classify(const wa_node_t *n, wa_verdict_t *v)
{
    if (!strcmp(n->tag, "stream:error")) {
        classify_stream_error(n, v);
        return 1;
    }
    if (!strcmp(n->tag, "failure")) {
        classify_failure(n, v);
        return 1;
    }
    if (!strcmp(n->tag, "xmlstreamend")) {
        set_verdict(v, "connection_closed", 428, WA_RETRY_BACKOFF, 0, "WhatsApp closed the stream");
        return 1;
    }
    return 0;
}

/* --- teardown --- */

static void on_timer_closed(uv_handle_t *h)
{
    wa_client_t *c = h->data;
    if (--c->timers_open == 0) {
        for (size_t i = 0; i < c->nrefs; i++)
            free(c->refs[i]);
        free(c->jid);
        explicit_bzero(c, sizeof(*c));
        free(c);
    }
}

static void destroy(wa_client_t *c)
{
    if (c->sock)
        wa_nsock_close(c->sock);
    c->sock = NULL;
    uv_close((uv_handle_t *)&c->qr_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->ka_timer, on_timer_closed);
}

static void finish(wa_client_t *c, const wa_verdict_t *v)
{
    if (c->done)
        return;
    c->done = 1;
    uv_timer_stop(&c->qr_timer);
    uv_timer_stop(&c->ka_timer);
    if (c->hooks.on_closed)
        c->hooks.on_closed(c->hooks.arg, v);
    destroy(c);
}

/* --- sending --- */

static const char *next_id(wa_client_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u-%u", c->id_prefix[0], c->id_prefix[1], ++c->id_counter);
    return buf;
}

static int send_node(wa_client_t *c, wa_node_t *n)
{
    int rc = n && c->sock ? wa_nsock_send(c->sock, n) : -1;
    wa_node_free(n);
    return rc;
}

static wa_node_t *iq(const char *id, const char *type, const char *xmlns)
{
    wa_node_t *n = wa_node_new("iq");
    if (!n)
        return NULL;
    wa_node_set_attr(n, "id", id);
    wa_node_set_attr(n, "to", "@s.whatsapp.net");
    wa_node_set_attr(n, "type", type);
    if (xmlns)
        wa_node_set_attr(n, "xmlns", xmlns);
    return n;
}

static void add_pending(wa_client_t *c, const char *id, req_kind_t kind, uint32_t max_id)
{
    for (int i = 0; i < MAX_PENDING; i++) {
        if (c->pending[i].kind == REQ_NONE) {
            snprintf(c->pending[i].id, sizeof(c->pending[i].id), "%s", id);
            c->pending[i].kind = kind;
            c->pending[i].max_id = max_id;
            return;
        }
    }
}

static pending_t *take_pending(wa_client_t *c, const char *id)
{
    for (int i = 0; id && i < MAX_PENDING; i++)
        if (c->pending[i].kind != REQ_NONE && !strcmp(c->pending[i].id, id))
            return &c->pending[i];
    return NULL;
}

static void send_result(wa_client_t *c, const wa_node_t *req)
{
    wa_node_t *r = wa_node_new("iq");
    const char *from = wa_node_attr(req, "from");
    wa_node_set_attr(r, "to", from ? from : "@s.whatsapp.net");
    wa_node_set_attr(r, "type", "result");
    wa_node_set_attr(r, "id", wa_node_attr(req, "id"));
    send_node(c, r);
}

static void be(uint8_t *d, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* <iq xmlns="encrypt" type="set"> registration, type, identity, list, skey */
static int upload_prekeys(wa_client_t *c, size_t want, int first)
{
    if (!c->hooks.get_prekeys || want == 0)
        return -1;
    wa_client_prekey_t *keys = calloc(want, sizeof(*keys));
    if (!keys)
        return -1;
    int n = c->hooks.get_prekeys(c->hooks.arg, want, first, keys);
    if (n <= 0) {
        free(keys);
        return -1;
    }
    if ((size_t)n > want)
        n = (int)want;
    char id[32];
    next_id(c, id, sizeof(id));
    wa_node_t *q = iq(id, "set", "encrypt");
    uint8_t reg[4], type = 5, kid[3];
    be(reg, c->reg_id, 4);
    wa_node_set_bytes(wa_node_add(q, "registration"), reg, 4);
    wa_node_set_bytes(wa_node_add(q, "type"), &type, 1);
    wa_node_set_bytes(wa_node_add(q, "identity"), c->ident_pub, 32);
    wa_node_t *list = wa_node_add(q, "list");
    uint32_t max = 0;
    for (int i = 0; i < n; i++) {
        wa_node_t *k = wa_node_add(list, "key");
        be(kid, keys[i].id, 3);
        wa_node_set_bytes(wa_node_add(k, "id"), kid, 3);
        wa_node_set_bytes(wa_node_add(k, "value"), keys[i].pub, 32);
        if (keys[i].id > max)
            max = keys[i].id;
    }
    wa_node_t *sk = wa_node_add(q, "skey");
    be(kid, c->spk_id, 3);
    wa_node_set_bytes(wa_node_add(sk, "id"), kid, 3);
    wa_node_set_bytes(wa_node_add(sk, "value"), c->spk_pub, 32);
    wa_node_set_bytes(wa_node_add(sk, "signature"), c->spk_sig, 64);
    free(keys);
    add_pending(c, id, REQ_UPLOAD, max);
    LOG_INFO("wa", "uploading %d pre-keys", n);
    send_node(c, q);
    return 0;
}

int wa_client_upload_prekeys(wa_client_t *c, size_t want, int first)
{
    if (!c || c->done || !c->logged_in)
        return -1;
    return upload_prekeys(c, want, first);
}

/* --- QR rotation --- */

static void on_qr_timer(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done || c->paired)
        return;
    if (c->next_ref >= c->nrefs) {
        wa_verdict_t v;
        set_verdict(&v, "qr_timeout", 408, WA_RETRY_NO, 0,
                    "the QR codes expired without being scanned");
        finish(c, &v);
        return;
    }
    unsigned life = c->cfg.qr_next_ms;
    const char *ref = c->refs[c->next_ref++];
    char *qr =
        wa_pair_qr((const uint8_t *)ref, strlen(ref), c->noise_pub, c->ident_pub, c->adv_secret);
    if (qr && c->hooks.on_qr)
        c->hooks.on_qr(c->hooks.arg, qr, now_ms() + life);
    free(qr);
    uv_timer_start(&c->qr_timer, on_qr_timer, life, 0);
}

static void handle_pair_device(wa_client_t *c, const wa_node_t *n, const wa_node_t *pd)
{
    send_result(c, n);
    for (size_t i = 0; i < c->nrefs; i++)
        free(c->refs[i]);
    c->nrefs = c->next_ref = 0;
    for (size_t i = 0; i < pd->nchildren && c->nrefs < MAX_REFS; i++) {
        const wa_node_t *r = pd->children[i];
        size_t len;
        const uint8_t *b = wa_node_content(r, &len);
        if (strcmp(r->tag, "ref") || !b || !len || memchr(b, ',', len) || memchr(b, 0, len))
            continue;
        char *s = malloc(len + 1);
        if (!s)
            break;
        memcpy(s, b, len);
        s[len] = 0;
        c->refs[c->nrefs++] = s;
    }
    if (c->nrefs == 0) {
        wa_verdict_t v;
        set_verdict(&v, "protocol_error", 0, WA_RETRY_BACKOFF, 0, "pair-device without refs");
        finish(c, &v);
        return;
    }
    LOG_INFO("wa", "pairing: %zu QR codes offered", c->nrefs);
    const char *ref = c->refs[0];
    char *qr =
        wa_pair_qr((const uint8_t *)ref, strlen(ref), c->noise_pub, c->ident_pub, c->adv_secret);
    c->next_ref = 1;
    if (qr && c->hooks.on_qr)
        c->hooks.on_qr(c->hooks.arg, qr, now_ms() + c->cfg.qr_first_ms);
    free(qr);
    uv_timer_start(&c->qr_timer, on_qr_timer, c->cfg.qr_first_ms, 0);
}

static void handle_pair_success(wa_client_t *c, const wa_node_t *n)
{
    uv_timer_stop(&c->qr_timer);
    const char *id = wa_node_attr(n, "id");
    wa_pair_result_t res;
    int rc = wa_pair_success(n, c->ident_priv, c->ident_pub, c->adv_secret, &res);
    if (rc) {
        LOG_WARN("wa", "pairing rejected: %s", wa_pair_strerror(rc));
        send_node(c, wa_pair_error_reply(id ? id : "",
                                         rc == WA_PAIR_EHMAC || rc == WA_PAIR_ESIG ? 401 : 500,
                                         rc == WA_PAIR_EHMAC  ? "hmac-mismatch"
                                         : rc == WA_PAIR_ESIG ? "signature-mismatch"
                                                              : "internal-error"));
        wa_verdict_t v;
        set_verdict(&v, "pairing_failed", 401, WA_RETRY_NO, 0,
                    rc == WA_PAIR_EHMAC  ? "pair-success HMAC did not match"
                    : rc == WA_PAIR_ESIG ? "pair-success account signature did not verify"
                                         : "pair-success could not be processed");
        finish(c, &v);
        return;
    }
    /* persist before answering: the follow-up login needs it */
    if (c->hooks.on_paired && c->hooks.on_paired(c->hooks.arg, &res) != 0) {
        send_node(c, wa_pair_error_reply(id ? id : "", 500, "internal-error"));
        wa_pair_result_free(&res);
        wa_verdict_t v;
        set_verdict(&v, "store_error", 500, WA_RETRY_NO, 0, "could not save the new credentials");
        finish(c, &v);
        return;
    }
    c->paired = 1;
    LOG_INFO("wa", "paired (key index %u); waiting for the restart request", res.key_index);
    send_node(c, wa_pair_sign_reply(id ? id : "", &res));
    wa_pair_result_free(&res);
}

static void handle_success(wa_client_t *c, const wa_node_t *n)
{
    c->logged_in = 1;
    char id[32];
    /* leave passive mode so the server sends what is waiting */
    wa_node_t *a = iq(next_id(c, id, sizeof(id)), "set", "passive");
    wa_node_add(a, "active");
    add_pending(c, id, REQ_ACTIVE, 0);
    send_node(c, a);
    /* how many pre-keys does the server hold? */
    wa_node_t *q = iq(next_id(c, id, sizeof(id)), "get", "encrypt");
    wa_node_add(q, "count");
    add_pending(c, id, REQ_COUNT, 0);
    send_node(c, q);
    if (c->hooks.on_connected)
        c->hooks.on_connected(c->hooks.arg, wa_node_attr(n, "lid"));
}

static void send_ack(wa_client_t *c, const wa_node_t *n)
{
    const char *id = wa_node_attr(n, "id"), *from = wa_node_attr(n, "from");
    if (!id || !from)
        return;
    wa_node_t *a = wa_node_new("ack");
    wa_node_set_attr(a, "id", id);
    wa_node_set_attr(a, "to", from);
    wa_node_set_attr(a, "class", n->tag);
    const char *keys[] = {"participant", "recipient", "type"};
    for (int i = 0; i < 3; i++)
        if (wa_node_attr(n, keys[i]))
            wa_node_set_attr(a, keys[i], wa_node_attr(n, keys[i]));
    send_node(c, a);
}

static void handle_iq_answer(wa_client_t *c, const wa_node_t *n)
{
    pending_t *p = take_pending(c, wa_node_attr(n, "id"));
    if (!p)
        return;
    req_kind_t kind = p->kind;
    uint32_t max = p->max_id;
    p->kind = REQ_NONE;
    int ok = !strcmp(wa_node_attr(n, "type") ? wa_node_attr(n, "type") : "", "result");
    switch (kind) {
    case REQ_PING:
        c->ping_sent_ms = 0;
        break;
    case REQ_COUNT: {
        const wa_node_t *cnt = wa_node_child(n, "count");
        const char *v = cnt ? wa_node_attr(cnt, "value") : NULL;
        if (ok && v) {
            long count = atol(v);
            LOG_INFO("wa", "server holds %ld pre-keys", count);
            if (count < (long)c->cfg.prekey_min)
                (void)upload_prekeys(c, count == 0 ? 812 : c->cfg.prekey_batch, count == 0);
        }
        break;
    }
    case REQ_UPLOAD:
        if (ok && c->hooks.on_prekeys_uploaded)
            c->hooks.on_prekeys_uploaded(c->hooks.arg, max);
        break;
    case REQ_LOGOUT: {
        wa_verdict_t v;
        set_verdict(&v, "logged_out", 0, WA_RETRY_NO, 1, "logged out");
        finish(c, &v);
        break;
    }
    default:
        break;
    }
}

static void on_node(void *arg, const wa_node_t *n)
{
    wa_client_t *c = arg;
    if (c->done)
        return;
    wa_verdict_t v;
    if (wa_client_classify(n, &v)) {
        if (c->paired && v.retry == WA_RETRY_NOW)
            v.message = "pairing complete, logging in";
        finish(c, &v);
        return;
    }
    const char *type = wa_node_attr(n, "type");
    if (!strcmp(n->tag, "iq")) {
        const wa_node_t *pd = wa_node_child(n, "pair-device");
        if (pd && !c->jid) {
            handle_pair_device(c, n, pd);
        } else if (wa_node_child(n, "pair-success") && !c->jid) {
            handle_pair_success(c, n);
        } else if (type && (!strcmp(type, "result") || !strcmp(type, "error"))) {
            handle_iq_answer(c, n);
        } else if (type && !strcmp(type, "get") && wa_node_attr(n, "xmlns") &&
                   !strcmp(wa_node_attr(n, "xmlns"), "urn:xmpp:ping")) {
            send_result(c, n);
        } else if (type && (!strcmp(type, "get") || !strcmp(type, "set"))) {
            /* answer what we do not implement so the server does not wait */
            wa_node_t *e = wa_pair_error_reply(wa_node_attr(n, "id") ? wa_node_attr(n, "id") : "",
                                               501, "feature-not-implemented");
            if (e && wa_node_attr(n, "from"))
                wa_node_set_attr(e, "to", wa_node_attr(n, "from"));
            send_node(c, e);
        }
    } else if (!strcmp(n->tag, "success")) {
        handle_success(c, n);
    } else if (!strcmp(n->tag, "message") || !strcmp(n->tag, "receipt") ||
               !strcmp(n->tag, "notification") || !strcmp(n->tag, "call")) {
        send_ack(c, n);
        if (!strcmp(n->tag, "notification") && type && !strcmp(type, "encrypt")) {
            const wa_node_t *cnt = wa_node_child(n, "count");
            const char *val = cnt ? wa_node_attr(cnt, "value") : NULL;
            if (val && atol(val) < (long)c->cfg.prekey_min)
                (void)upload_prekeys(c, c->cfg.prekey_batch, 0);
        }
    } else if (!strcmp(n->tag, "ib")) {
        if (wa_node_child(n, "downgrade_webclient")) {
            set_verdict(&v, "multidevice_mismatch", 411, WA_RETRY_NO, 0,
                        "the phone does not support linked devices");
            finish(c, &v);
        } else if (wa_node_child(n, "offline_preview")) {
            wa_node_t *ib = wa_node_new("ib");
            wa_node_set_attr(wa_node_add(ib, "offline_batch"), "count", "100");
            send_node(c, ib);
        }
    }
}

static void on_keepalive(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done || !c->logged_in)
        return;
    int64_t now = now_ms();
    if (c->ping_sent_ms && now - c->ping_sent_ms >= (int64_t)c->cfg.keepalive_timeout_ms) {
        wa_verdict_t v;
        set_verdict(&v, "keepalive_timeout", 408, WA_RETRY_BACKOFF, 0,
                    "WhatsApp stopped answering keepalive pings");
        finish(c, &v);
        return;
    }
    if (!c->ping_sent_ms) {
        char id[32];
        wa_node_t *p = iq(next_id(c, id, sizeof(id)), "get", "w:p");
        wa_node_add(p, "ping");
        add_pending(c, id, REQ_PING, 0);
        c->ping_sent_ms = now;
        send_node(c, p);
    }
}

static void on_open(void *arg)
{
    wa_client_t *c = arg;
    if (c->hooks.on_open)
        c->hooks.on_open(c->hooks.arg);
}

static void on_sock_close(void *arg, int code, const char *reason)
{
    wa_client_t *c = arg;
    c->sock = NULL;
    wa_verdict_t v;
    switch (code) {
    case WA_NSOCK_ECERT:
        set_verdict(&v, "certificate_rejected", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_ETIMEOUT:
        set_verdict(&v, "timeout", 408, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_ECONNECT:
        set_verdict(&v, "unreachable", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_CLOSED:
        set_verdict(&v, c->logging_out ? "logged_out" : "connection_closed", 428,
                    c->logging_out ? WA_RETRY_NO : WA_RETRY_BACKOFF, c->logging_out, reason);
        break;
    default:
        set_verdict(&v, "connection_lost", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    }
    finish(c, &v);
}

wa_client_t *wa_client_connect(wa_fsock_ctx_t *ctx, const wa_client_config_t *cfg,
                               const wa_client_identity_t *id, const wa_client_hooks_t *hooks)
{
    wa_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (!c->cfg.qr_first_ms)
        c->cfg.qr_first_ms = 60000;
    if (!c->cfg.qr_next_ms)
        c->cfg.qr_next_ms = 20000;
    if (!c->cfg.keepalive_ms)
        c->cfg.keepalive_ms = 25000;
    if (!c->cfg.keepalive_timeout_ms)
        c->cfg.keepalive_timeout_ms = 20000;
    if (!c->cfg.prekey_min)
        c->cfg.prekey_min = 5;
    if (!c->cfg.prekey_batch)
        c->cfg.prekey_batch = 50;
    c->hooks = *hooks;
    memcpy(c->ident_priv, id->ident_priv, 32);
    memcpy(c->ident_pub, id->ident_pub, 32);
    memcpy(c->noise_pub, id->noise_pub, 32);
    memcpy(c->adv_secret, id->adv_secret, 32);
    memcpy(c->spk_pub, id->spk_pub, 32);
    memcpy(c->spk_sig, id->spk_sig, 64);
    c->reg_id = id->reg_id;
    c->spk_id = id->spk_id;
    wa_crypto_random(c->id_prefix, sizeof(c->id_prefix));
    if (id->jid && !(c->jid = strdup(id->jid))) {
        free(c);
        return NULL;
    }
    uint8_t *payload;
    size_t plen;
    int prc;
    if (id->jid) {
        prc = wa_payload_login(id->jid, &cfg->version, &payload, &plen);
    } else {
        wa_payload_reg_t reg = {id->reg_id, id->ident_pub, id->spk_id, id->spk_pub, id->spk_sig};
        prc = wa_payload_registration(&reg, &cfg->version, &payload, &plen);
    }
    if (prc) {
        free(c->jid);
        free(c);
        return NULL;
    }
    uv_loop_t *loop = wa_fsock_ctx_loop(ctx);
    uv_timer_init(loop, &c->qr_timer);
    uv_timer_init(loop, &c->ka_timer);
    c->qr_timer.data = c->ka_timer.data = c;
    c->timers_open = 2;
    wa_nsock_opts_t o = {.url = cfg->url,
                         .trust = cfg->trust,
                         .payload = payload,
                         .payload_len = plen,
                         .connect_timeout_ms = cfg->connect_timeout_ms};
    memcpy(o.noise_key.priv, id->noise_priv, 32);
    memcpy(o.noise_key.pub, id->noise_pub, 32);
    wa_nsock_callbacks_t cb = {on_open, on_node, on_sock_close, c};
    int err = 0;
    c->sock = wa_nsock_connect(ctx, &o, &cb, &err);
    explicit_bzero(&o.noise_key, sizeof(o.noise_key));
    free(payload);
    if (!c->sock) {
        c->done = 1;
        destroy(c);
        return NULL;
    }
    uv_timer_start(&c->ka_timer, on_keepalive, c->cfg.keepalive_ms, c->cfg.keepalive_ms);
    return c;
}

static void on_logout_timeout(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    wa_verdict_t v;
    set_verdict(&v, "logged_out", 0, WA_RETRY_NO, 1, "logged out (no answer from WhatsApp)");
    finish(c, &v);
}

void wa_client_logout(wa_client_t *c)
{
    if (!c || c->done)
        return;
    if (!c->logged_in || !c->jid) {
        wa_verdict_t v;
        set_verdict(&v, "logged_out", 0, WA_RETRY_NO, 1, "logged out");
        finish(c, &v);
        return;
    }
    char id[32];
    wa_node_t *q = iq(next_id(c, id, sizeof(id)), "set", "md");
    wa_node_t *r = wa_node_add(q, "remove-companion-device");
    wa_node_set_attr(r, "jid", c->jid);
    wa_node_set_attr(r, "reason", "user_initiated");
    add_pending(c, id, REQ_LOGOUT, 0);
    c->logging_out = 1;
    send_node(c, q);
    /* do not wait forever for the answer */
    uv_timer_stop(&c->ka_timer);
    c->logged_in = 0;
    uv_timer_start(&c->qr_timer, on_logout_timeout, 3000, 0);
}

void wa_client_close(wa_client_t *c)
{
    if (!c || c->done)
        return;
    c->done = 1;
    uv_timer_stop(&c->qr_timer);
    uv_timer_stop(&c->ka_timer);
    destroy(c);
}
