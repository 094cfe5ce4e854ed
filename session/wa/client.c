/* Connection life and dispatch of one WhatsApp connection (see client.h and
 * client_internal.h for the files around it): connect with the payload,
 * route each received node through a table by tag (and notifications and
 * server iqs through tables of their own), match answers to the iqs we sent
 * by id with per-request deadlines, and tear everything down once. */
#include "session/wa/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/noisesocket.h"

int64_t wa_client_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* --- teardown --- */

static void on_timer_closed(uv_handle_t *h)
{
    wa_client_t *c = h->data;
    if (--c->timers_open == 0) {
        wa_client_qr_free(c);
        wa_client_passkey_free(c);
        free(c->jid);
        explicit_bzero(c, sizeof(*c));
        free(c);
    }
}

static void stop_timers(wa_client_t *c)
{
    uv_timer_stop(&c->qr_timer);
    uv_timer_stop(&c->ka_timer);
    uv_timer_stop(&c->wd_timer);
    uv_timer_stop(&c->iq_timer);
}

/* Every request still waiting learns that it will get no answer. */
static void fail_pending(wa_client_t *c)
{
    for (int i = 0; i < WA_CLIENT_MAX_PENDING; i++) {
        wa_client_pending_t p = c->pending[i];
        if (!p.cb)
            continue;
        memset(&c->pending[i], 0, sizeof(c->pending[i]));
        p.cb(c, NULL, 0, p.arg);
    }
}

static void destroy_then(wa_client_t *c, void (*gone)(void *), void *arg)
{
    if (gone)
        wa_nsock_close_then(c->sock, gone, arg);
    else if (c->sock)
        wa_nsock_close(c->sock);
    c->sock = NULL;
    fail_pending(c);
    wa_client_pair_drop(c);
    wa_client_paircode_end(c);
    uv_close((uv_handle_t *)&c->qr_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->ka_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->wd_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->iq_timer, on_timer_closed);
}

static void destroy(wa_client_t *c)
{
    destroy_then(c, NULL, NULL);
}

void wa_client_finish(wa_client_t *c, const wa_verdict_t *v)
{
    if (c->done)
        return;
    c->done = 1;
    stop_timers(c);
    if (c->hooks.on_closed)
        c->hooks.on_closed(c->hooks.arg, v);
    destroy(c);
}

/* --- sending --- */

const char *wa_client_next_id(wa_client_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u-%u", c->id_prefix[0], c->id_prefix[1], ++c->id_counter);
    return buf;
}

int wa_client_send(wa_client_t *c, wa_node_t *n)
{
    int rc = n && c->sock && !c->done ? wa_nsock_send(c->sock, n) : -1;
    wa_node_free(n);
    return rc;
}

wa_node_t *wa_client_iq(const char *id, const char *type, const char *xmlns)
{
    wa_node_t *n = wa_node_new("iq");
    if (!n)
        return NULL;
    if (id)
        wa_node_set_attr(n, "id", id);
    wa_node_set_attr(n, "to", "@s.whatsapp.net");
    wa_node_set_attr(n, "type", type);
    if (xmlns)
        wa_node_set_attr(n, "xmlns", xmlns);
    return n;
}

static void on_deadline(uv_timer_t *t);

/* Re-arms the deadline timer to the earliest pending deadline. */
static void arm_deadlines(wa_client_t *c)
{
    int64_t first = 0;
    for (int i = 0; i < WA_CLIENT_MAX_PENDING; i++)
        if (c->pending[i].cb && c->pending[i].deadline_ms &&
            (!first || c->pending[i].deadline_ms < first))
            first = c->pending[i].deadline_ms;
    uv_timer_stop(&c->iq_timer);
    if (first) {
        int64_t in = first - wa_client_now_ms();
        uv_timer_start(&c->iq_timer, on_deadline, in > 0 ? (uint64_t)in : 0, 0);
    }
}

/* Requests past their deadline learn that no answer will come. */
static void on_deadline(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    int64_t now = wa_client_now_ms();
    for (int i = 0; i < WA_CLIENT_MAX_PENDING && !c->done; i++) {
        wa_client_pending_t p = c->pending[i];
        if (!p.cb || !p.deadline_ms || p.deadline_ms > now)
            continue;
        memset(&c->pending[i], 0, sizeof(c->pending[i]));
        p.cb(c, NULL, 0, p.arg);
    }
    if (!c->done)
        arm_deadlines(c);
}

int wa_client_send_iq(wa_client_t *c, wa_node_t *q, unsigned timeout_ms, wa_client_iq_cb cb,
                      void *arg, char *id_out, size_t id_len)
{
    int slot = -1;
    for (int i = 0; i < WA_CLIENT_MAX_PENDING && slot < 0; i++)
        if (!c->pending[i].cb)
            slot = i;
    if (!q || slot < 0 || c->done) {
        if (slot < 0)
            LOG_WARN("wa", "too many requests waiting for an answer");
        wa_node_free(q);
        return -1;
    }
    char id[32];
    wa_client_next_id(c, id, sizeof(id));
    wa_node_set_attr(q, "id", id);
    if (wa_client_send(c, q) != 0)
        return -1;
    wa_client_pending_t *p = &c->pending[slot];
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = timeout_ms ? wa_client_now_ms() + timeout_ms : 0;
    if (id_out)
        snprintf(id_out, id_len, "%s", id);
    if (timeout_ms)
        arm_deadlines(c);
    return 0;
}

void wa_client_send_result(wa_client_t *c, const wa_node_t *req)
{
    wa_node_t *r = wa_node_new("iq");
    if (!r)
        return;
    const char *from = wa_node_attr(req, "from");
    const char *id = wa_node_attr(req, "id");
    wa_node_set_attr(r, "to", from ? from : "@s.whatsapp.net");
    wa_node_set_attr(r, "type", "result");
    wa_node_set_attr(r, "id", id ? id : "");
    wa_client_send(c, r);
}

void wa_client_send_error(wa_client_t *c, const wa_node_t *req, int code, const char *text)
{
    const char *id = wa_node_attr(req, "id"), *from = wa_node_attr(req, "from");
    wa_node_t *e = wa_pair_error_reply(id ? id : "", code, text);
    if (e && from)
        wa_node_set_attr(e, "to", from);
    wa_client_send(c, e);
}

/* --- answers to our requests --- */

static void handle_answer(wa_client_t *c, const wa_node_t *n)
{
    const char *id = wa_node_attr(n, "id");
    for (int i = 0; id && i < WA_CLIENT_MAX_PENDING; i++) {
        wa_client_pending_t p = c->pending[i];
        if (!p.cb || strcmp(p.id, id))
            continue;
        memset(&c->pending[i], 0, sizeof(c->pending[i]));
        const char *type = wa_node_attr(n, "type");
        p.cb(c, n, type && !strcmp(type, "result"), p.arg);
        if (!c->done && p.deadline_ms)
            arm_deadlines(c);
        return;
    }
}

/* --- pre-keys --- */

static void be(uint8_t *d, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void on_upload_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    uint32_t max = (uint32_t)(uintptr_t)arg;
    if (resp && ok && c->hooks.on_prekeys_uploaded)
        c->hooks.on_prekeys_uploaded(c->hooks.arg, max);
    else if (resp)
        LOG_WARN("wa", "WhatsApp refused the pre-key upload");
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
    wa_node_t *q = wa_client_iq(NULL, "set", "encrypt");
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
    LOG_INFO("wa", "uploading %d pre-keys", n);
    return wa_client_send_iq(c, q, 60000, on_upload_answer, (void *)(uintptr_t)max, NULL, 0);
}

int wa_client_upload_prekeys(wa_client_t *c, size_t want, int first)
{
    if (!c || c->done || !c->logged_in)
        return -1;
    return upload_prekeys(c, want, first);
}

static void on_count_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    (void)arg;
    const wa_node_t *cnt = resp ? wa_node_child(resp, "count") : NULL;
    const char *v = cnt ? wa_node_attr(cnt, "value") : NULL;
    if (!ok || !v)
        return;
    long count = atol(v);
    LOG_INFO("wa", "server holds %ld pre-keys", count);
    if (count < (long)c->cfg.prekey_min)
        (void)upload_prekeys(c, count == 0 ? 812 : c->cfg.prekey_batch, count == 0);
}

static void on_active_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    (void)arg;
    if (resp && !ok)
        LOG_WARN("wa", "WhatsApp refused to leave passive mode");
    (void)c;
}

/* --- handlers of received nodes --- */

static void handle_success(wa_client_t *c, const wa_node_t *n)
{
    if (!c->jid) {
        /* whatsmeow (June 2026): success on a connection that is not paired
         * carries nothing to log in with; it is ignored */
        LOG_WARN("wa", "ignoring <success> on a registration connection");
        return;
    }
    if (c->logged_in)
        return;
    wa_client_watchdog_clear(c);
    c->logged_in = 1;
    /* leave passive mode so the server sends what is waiting */
    wa_node_t *a = wa_client_iq(NULL, "set", "passive");
    wa_node_add(a, "active");
    wa_client_send_iq(c, a, 60000, on_active_answer, NULL, NULL, 0);
    /* how many pre-keys does the server hold? */
    wa_node_t *q = wa_client_iq(NULL, "get", "encrypt");
    wa_node_add(q, "count");
    wa_client_send_iq(c, q, 60000, on_count_answer, NULL, NULL, 0);
    if (c->hooks.on_connected)
        c->hooks.on_connected(c->hooks.arg, wa_node_attr(n, "lid"));
}

static int from_server(const wa_node_t *n)
{
    const char *from = wa_node_attr(n, "from");
    return !from || !strcmp(from, "s.whatsapp.net") || !strcmp(from, "@s.whatsapp.net");
}

static void iq_pair_device(wa_client_t *c, const wa_node_t *n)
{
    if (c->jid || !from_server(n)) {
        wa_client_send_error(c, n, 400, "bad-request");
        return;
    }
    wa_client_qr_pair_device(c, n, wa_node_child(n, "pair-device"));
    if (!c->done)
        wa_client_paircode_pair_device(c);
}

static void iq_pair_success(wa_client_t *c, const wa_node_t *n)
{
    if (c->jid || !from_server(n)) {
        wa_client_send_error(c, n, 400, "bad-request");
        return;
    }
    wa_client_pair_success(c, n);
}

static void iq_ping(wa_client_t *c, const wa_node_t *n)
{
    wa_client_send_result(c, n);
}

/* Server iqs of type get/set, by their first child (or xmlns for pings). */
static const struct {
    const char *child;
    wa_client_handler_fn fn;
} server_iqs[] = {
    {"pair-device", iq_pair_device},
    {"pair-success", iq_pair_success},
    {"ping", iq_ping},
};

static void handle_iq(wa_client_t *c, const wa_node_t *n)
{
    const char *type = wa_node_attr(n, "type");
    if (!type)
        return;
    if (!strcmp(type, "result") || !strcmp(type, "error")) {
        handle_answer(c, n);
        return;
    }
    if (strcmp(type, "get") && strcmp(type, "set"))
        return;
    const char *xmlns = wa_node_attr(n, "xmlns");
    if (xmlns && !strcmp(xmlns, "urn:xmpp:ping")) {
        iq_ping(c, n);
        return;
    }
    const wa_node_t *child = n->nchildren ? n->children[0] : NULL;
    for (size_t i = 0; child && i < sizeof(server_iqs) / sizeof(server_iqs[0]); i++)
        if (!strcmp(child->tag, server_iqs[i].child)) {
            server_iqs[i].fn(c, n);
            return;
        }
    /* answer what we do not implement so the server does not wait */
    wa_client_send_error(c, n, 501, "feature-not-implemented");
}

/* <notification type="encrypt"><count value=N/>: top up pre-keys. */
static void notif_encrypt(wa_client_t *c, const wa_node_t *n)
{
    const wa_node_t *cnt = wa_node_child(n, "count");
    const char *val = cnt ? wa_node_attr(cnt, "value") : NULL;
    if (val && c->logged_in && atol(val) < (long)c->cfg.prekey_min)
        (void)upload_prekeys(c, c->cfg.prekey_batch, 0);
}

/* Notifications we act on, by type; every notification is acked first. */
static const struct {
    const char *type;
    wa_client_handler_fn fn;
} notifications[] = {
    {"encrypt", notif_encrypt},
    {"companion_reg_refresh", wa_client_qr_refresh},
    {"passkey_prologue_request", wa_client_passkey_request},
    {"crsc_continuation", wa_client_passkey_continuation},
    {"link_code_companion_reg", wa_client_paircode_notification},
};

static void handle_notification(wa_client_t *c, const wa_node_t *n)
{
    const char *type = wa_node_attr(n, "type");
    wa_client_ack(c, n);
    for (size_t i = 0; type && i < sizeof(notifications) / sizeof(notifications[0]); i++)
        if (!strcmp(type, notifications[i].type)) {
            notifications[i].fn(c, n);
            return;
        }
}

static void handle_ib(wa_client_t *c, const wa_node_t *n)
{
    for (size_t i = 0; i < n->nchildren && !c->done; i++) {
        const wa_node_t *ch = n->children[i];
        if (!strcmp(ch->tag, "downgrade_webclient")) {
            wa_verdict_t v;
            wa_client_verdict(&v, "multidevice_mismatch", 411, WA_RETRY_NO, 0,
                              "the phone does not support linked devices");
            wa_client_finish(c, &v);
        } else if (!strcmp(ch->tag, "offline_preview")) {
            wa_node_t *ib = wa_node_new("ib");
            wa_node_set_attr(wa_node_add(ib, "offline_batch"), "count", "100");
            wa_client_send(c, ib);
        } else if (!strcmp(ch->tag, "edge_routing")) {
            size_t len = 0;
            const wa_node_t *ri = wa_node_child(ch, "routing_info");
            const uint8_t *b = ri ? wa_node_content(ri, &len) : NULL;
            if (b && len > 0 && len < 0x1000000 && c->hooks.on_routing_info) {
                LOG_DEBUG("wa", "edge routing info received (%zu bytes)", len);
                c->hooks.on_routing_info(c->hooks.arg, b, len);
            }
        }
    }
}

static void handle_ack_only(wa_client_t *c, const wa_node_t *n)
{
    wa_client_ack(c, n);
}

/* Every node WhatsApp sends, by tag (stream:error, failure and xmlstreamend
 * end the connection before this table is consulted). */
static const struct {
    const char *tag;
    wa_client_handler_fn fn;
} node_handlers[] = {
    {"iq", handle_iq},         {"success", handle_success},  {"notification", handle_notification},
    {"ib", handle_ib},         {"message", handle_ack_only}, {"receipt", handle_ack_only},
    {"call", handle_ack_only}, {"status", handle_ack_only},  {"appdata", handle_ack_only},
};

static void on_node(void *arg, const wa_node_t *n)
{
    wa_client_t *c = arg;
    if (c->done)
        return;
    wa_client_keepalive_rx(c);
    wa_verdict_t v;
    if (wa_client_classify(n, &v)) {
        if (c->paired && v.retry == WA_RETRY_NOW)
            v.message = "pairing complete, logging in";
        wa_client_finish(c, &v);
        return;
    }
    for (size_t i = 0; i < sizeof(node_handlers) / sizeof(node_handlers[0]); i++)
        if (!strcmp(n->tag, node_handlers[i].tag)) {
            node_handlers[i].fn(c, n);
            return;
        }
    LOG_DEBUG("wa", "ignoring <%s>", n->tag);
}

static void on_open(void *arg)
{
    wa_client_t *c = arg;
    c->open = 1;
    wa_client_keepalive_start(c);
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
        wa_client_verdict(&v, "certificate_rejected", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_ETIMEOUT:
        wa_client_verdict(&v, "timeout", 408, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_ECONNECT:
        wa_client_verdict(&v, "unreachable", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    case WA_NSOCK_CLOSED:
        wa_client_verdict(&v, c->logging_out ? "logged_out" : "connection_closed", 428,
                          c->logging_out ? WA_RETRY_NO : WA_RETRY_BACKOFF, c->logging_out, reason);
        break;
    default:
        wa_client_verdict(&v, "connection_lost", 0, WA_RETRY_BACKOFF, 0, reason);
        break;
    }
    wa_client_finish(c, &v);
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
        c->cfg.keepalive_ms = 20000;
    if (!c->cfg.keepalive_timeout_ms)
        c->cfg.keepalive_timeout_ms = 10000;
    if (!c->cfg.keepalive_misses)
        c->cfg.keepalive_misses = 2;
    if (!c->cfg.login_timeout_ms)
        c->cfg.login_timeout_ms = 30000;
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
        wa_payload_reg_t reg = {id->reg_id,  id->ident_pub, id->spk_id,
                                id->spk_pub, id->spk_sig,   cfg->device_name};
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
    uv_timer_init(loop, &c->wd_timer);
    uv_timer_init(loop, &c->iq_timer);
    c->qr_timer.data = c->ka_timer.data = c->wd_timer.data = c->iq_timer.data = c;
    c->timers_open = 4;
    wa_nsock_opts_t o = {.url = cfg->url,
                         .trust = cfg->trust,
                         .payload = payload,
                         .payload_len = plen,
                         .connect_timeout_ms = cfg->connect_timeout_ms,
                         .routing_info = id->routing_info,
                         .routing_info_len = id->routing_info_len};
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
    return c;
}

static void on_logout_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    (void)arg;
    (void)ok;
    if (c->done)
        return;
    wa_verdict_t v;
    wa_client_verdict(&v, "logged_out", 0, WA_RETRY_NO, 1,
                      resp ? "logged out" : "logged out (no answer from WhatsApp)");
    wa_client_finish(c, &v);
}

void wa_client_logout(wa_client_t *c)
{
    if (!c || c->done)
        return;
    if (!c->logged_in || !c->jid) {
        wa_verdict_t v;
        wa_client_verdict(&v, "logged_out", 0, WA_RETRY_NO, 1, "logged out");
        wa_client_finish(c, &v);
        return;
    }
    wa_node_t *q = wa_client_iq(NULL, "set", "md");
    wa_node_t *r = wa_node_add(q, "remove-companion-device");
    wa_node_set_attr(r, "jid", c->jid);
    wa_node_set_attr(r, "reason", "user_initiated");
    c->logging_out = 1;
    uv_timer_stop(&c->ka_timer);
    c->logged_in = 0;
    /* do not wait long for the answer */
    if (wa_client_send_iq(c, q, 3000, on_logout_answer, NULL, NULL, 0) != 0)
        on_logout_answer(c, NULL, 0, NULL);
}

void wa_client_close(wa_client_t *c)
{
    if (!c || c->done)
        return;
    c->done = 1;
    stop_timers(c);
    destroy(c);
}

void wa_client_close_then(wa_client_t *c, void (*gone)(void *arg), void *arg)
{
    if (!c || c->done) {
        gone(arg);
        return;
    }
    c->done = 1;
    stop_timers(c);
    destroy_then(c, gone, arg);
}
