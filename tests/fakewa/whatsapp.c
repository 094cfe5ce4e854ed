/* Server-side WhatsApp behaviour and the simulated phone (see whatsapp.h).
 * Pairing here is the mirror of session/wa/pair.c: the phone signs
 * [6,0] || details || companion identity with its identity key, wraps it in
 * an HMAC with the adv secret read from the QR, and later checks the
 * companion's signature over [6,1] || details || identity || phone key. */
#include "tests/fakewa/whatsapp.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "proto/wa/adv.pb-c.h"
#include "proto/wa/client_payload.pb-c.h"
#include "session/wa/crypto.h"
#include "session/wa/pair.h"
#include "tests/fakewa/whatsapp_internal.h"

int64_t fakewa_wa_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const char *const fault_names[FAKEWA_FAULT_COUNT] = {
    [FAKEWA_DROP] = "drop",
    [FAKEWA_STALL] = "stall",
    [FAKEWA_GARBAGE] = "garbage",
    [FAKEWA_RESTART] = "restart",
    [FAKEWA_LOGGED_OUT] = "logged_out",
    [FAKEWA_REPLACED] = "replaced",
    [FAKEWA_SERVER_ERROR] = "server_error",
    [FAKEWA_OUTDATED] = "outdated",
    [FAKEWA_BANNED] = "banned",
    [FAKEWA_BAD_HMAC] = "bad_hmac",
    [FAKEWA_BAD_SIGNATURE] = "bad_signature",
    [FAKEWA_DROP_PING] = "drop_ping",
    [FAKEWA_SILENT] = "silent",
    [FAKEWA_BAD_NODE] = "bad_node",
    [FAKEWA_STANZAS] = "stanzas",
    [FAKEWA_EARLY_SUCCESS] = "early_success",
    [FAKEWA_BARE_401] = "bare_401",
    [FAKEWA_HOSTED] = "hosted",
    [FAKEWA_REFRESH] = "refresh",
    [FAKEWA_REFRESH_ON_SCAN] = "refresh_on_scan",
    [FAKEWA_ROUTING] = "routing",
    [FAKEWA_OFFLINE] = "offline",
    [FAKEWA_ONLINE] = "online",
};

int fakewa_wa_fault_parse(const char *name)
{
    for (int i = 0; i < FAKEWA_FAULT_COUNT; i++)
        if (!strcmp(name, fault_names[i]))
            return i;
    return -1;
}

static void send_and_free(fakewa_conn_t *c, wa_node_t *n)
{
    if (n)
        fakewa_send(c, n);
    wa_node_free(n);
}

void fakewa_wa_send(conn_state_t *cs, wa_node_t *n)
{
    send_and_free(cs->c, n);
}

void fakewa_wa_reply(conn_state_t *cs, const wa_node_t *req, const char *type, wa_node_t *child)
{
    wa_node_t *r = wa_node_new("iq");
    wa_node_set_attr(r, "from", "s.whatsapp.net");
    wa_node_set_attr(r, "type", type);
    wa_node_set_attr(r, "id", wa_node_attr(req, "id"));
    if (child)
        wa_node_add_child(r, child);
    send_and_free(cs->c, r);
}

static void stream_error(conn_state_t *cs, const char *code, const char *conflict)
{
    wa_node_t *e = wa_node_new("stream:error");
    if (code)
        wa_node_set_attr(e, "code", code);
    if (conflict)
        wa_node_set_attr(wa_node_add(e, "conflict"), "type", conflict);
    send_and_free(cs->c, e);
    fakewa_close(cs->c);
}

/* Remembers that `n` (about to be sent) must be acked. */
static void expect_ack(fakewa_wa_t *w, const wa_node_t *n)
{
    if (w->nexpects >= MAX_EXPECT)
        return;
    expect_t *e = &w->expects[w->nexpects++];
    const char *type = wa_node_attr(n, "type"), *from = wa_node_attr(n, "from");
    snprintf(e->id, sizeof(e->id), "%s", wa_node_attr(n, "id"));
    snprintf(e->cls, sizeof(e->cls), "%s", n->tag);
    snprintf(e->type, sizeof(e->type), "%s", strcmp(n->tag, "message") && type ? type : "");
    snprintf(e->to, sizeof(e->to), "%s", from ? from : "");
    w->stats.unacked = w->nexpects;
}

/* An <ack> from the client: it must match a stanza we sent, with the
 * attributes whatsmeow puts in it. */
static void handle_ack(fakewa_wa_t *w, const wa_node_t *n)
{
    const char *id = wa_node_attr(n, "id"), *cls = wa_node_attr(n, "class");
    const char *to = wa_node_attr(n, "to"), *type = wa_node_attr(n, "type");
    for (int i = 0; id && i < w->nexpects; i++) {
        expect_t *e = &w->expects[i];
        if (strcmp(e->id, id))
            continue;
        int ok = cls && !strcmp(cls, e->cls) && to && !strcmp(to, e->to) &&
                 (e->type[0] ? type && !strcmp(type, e->type) : !type);
        if (ok)
            w->stats.acks_ok++;
        else
            w->stats.acks_bad++;
        w->expects[i] = w->expects[--w->nexpects];
        w->stats.unacked = w->nexpects;
        return;
    }
    w->stats.acks_bad++;
}

/* Sends `n` (freed) expecting an ack for it. */
void fakewa_wa_send_expecting_ack(conn_state_t *cs, wa_node_t *n)
{
    if (!n)
        return;
    expect_ack(cs->w, n);
    send_and_free(cs->c, n);
}

wa_node_t *fakewa_wa_stanza(fakewa_wa_t *w, const char *tag, const char *from, const char *type)
{
    wa_node_t *n = wa_node_new(tag);
    char id[32], t[32];
    snprintf(id, sizeof(id), "%s-%u", tag, ++w->id_counter);
    snprintf(t, sizeof(t), "%lld", (long long)(fakewa_wa_now_ms() / 1000));
    wa_node_set_attr(n, "id", id);
    wa_node_set_attr(n, "from", from);
    if (type)
        wa_node_set_attr(n, "type", type);
    wa_node_set_attr(n, "t", t);
    return n;
}

/* One stanza of every class WhatsApp expects acknowledged (protocol doc
 * 6.6, 11.4), as a logged-in client receives them. */
static void send_stanzas(conn_state_t *cs)
{
    fakewa_wa_t *w = cs->w;
    const char *contact = "15550001111@s.whatsapp.net";
    wa_node_t *n = fakewa_wa_stanza(w, "message", contact, "text");
    wa_node_set_bytes(wa_node_add(n, "enc"), "\x01\x02", 2);
    fakewa_wa_send_expecting_ack(cs, n);
    n = fakewa_wa_stanza(w, "receipt", contact, "read");
    fakewa_wa_send_expecting_ack(cs, n);
    n = fakewa_wa_stanza(w, "receipt", "120363000000000000@g.us", NULL);
    wa_node_set_attr(n, "participant", contact);
    fakewa_wa_send_expecting_ack(cs, n);
    static const char *const notif_types[] = {"devices",      "picture",   "server_sync",
                                              "account_sync", "w:gp2",     "privacy_token",
                                              "status",       "mediaretry"};
    for (size_t i = 0; i < sizeof(notif_types) / sizeof(notif_types[0]); i++)
        fakewa_wa_send_expecting_ack(
            cs, fakewa_wa_stanza(w, "notification", "s.whatsapp.net", notif_types[i]));
    n = fakewa_wa_stanza(w, "notification", "s.whatsapp.net", "encrypt");
    wa_node_set_attr(wa_node_add(n, "count"), "value", "50");
    fakewa_wa_send_expecting_ack(cs, n);
    n = fakewa_wa_stanza(w, "call", contact, NULL);
    wa_node_set_attr(wa_node_add(n, "offer"), "call-id", "CALL1");
    fakewa_wa_send_expecting_ack(cs, n);
    n = fakewa_wa_stanza(w, "status", contact, "text");
    fakewa_wa_send_expecting_ack(cs, n);
    n = fakewa_wa_stanza(w, "appdata", contact, "text");
    fakewa_wa_send_expecting_ack(cs, n);
}

static void send_routing(conn_state_t *cs)
{
    wa_node_t *ib = wa_node_new("ib");
    wa_node_t *er = wa_node_add(ib, "edge_routing");
    wa_node_set_bytes(wa_node_add(er, "routing_info"), cs->w->routing, sizeof(cs->w->routing));
    cs->w->stats.routing_sent++;
    send_and_free(cs->c, ib);
}

static void send_refresh(conn_state_t *cs)
{
    wa_node_t *n =
        fakewa_wa_stanza(cs->w, "notification", "s.whatsapp.net", "companion_reg_refresh");
    wa_node_add(n, "companion_reg_refresh");
    cs->w->stats.refreshes++;
    fakewa_wa_send_expecting_ack(cs, n);
}

static device_t *find_device(fakewa_wa_t *w, const char *jid)
{
    return fakewa_map_get(w->dev_by_jid, jid, strlen(jid));
}

/* Records a newly paired device. Returns 0, or -1 (limit, memory). */
static int add_device(fakewa_wa_t *w, const char *jid, const char *lid, const uint8_t noise_pub[32],
                      const uint8_t ident_pub[32])
{
    if (w->ndevices >= MAX_DEVICES || find_device(w, jid) ||
        fakewa_map_get(w->dev_by_noise, noise_pub, 32))
        return -1;
    device_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    snprintf(d->jid, sizeof(d->jid), "%s", jid);
    snprintf(d->lid, sizeof(d->lid), "%s", lid);
    memcpy(d->noise_pub, noise_pub, 32);
    memcpy(d->ident_pub, ident_pub, 32);
    d->prekeys = w->o.prekey_count;
    if (fakewa_map_put(w->dev_by_jid, d->jid, strlen(d->jid), d) ||
        fakewa_map_put(w->dev_by_noise, d->noise_pub, 32, d)) {
        fakewa_map_del(w->dev_by_jid, d->jid, strlen(d->jid));
        free(d);
        return -1;
    }
    d->prev = w->devices_tail;
    if (d->prev)
        d->prev->next = d;
    else
        w->devices = d;
    w->devices_tail = d;
    w->ndevices++;
    return 0;
}

static void forget_device(fakewa_wa_t *w, const uint8_t noise_pub[32])
{
    device_t *d = fakewa_map_del(w->dev_by_noise, noise_pub, 32);
    if (!d)
        return;
    fakewa_map_del(w->dev_by_jid, d->jid, strlen(d->jid));
    if (d->prev)
        d->prev->next = d->next;
    else
        w->devices = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        w->devices_tail = d->prev;
    w->ndevices--;
    free(d);
}

/* The account pairing on `cs` (the default one unless a scan chose
 * another): its number and identity key. */
static const char *acct_phone(const conn_state_t *cs)
{
    return cs->pending_acct ? cs->pending_acct->phone : cs->w->phone;
}

static const wa_keypair_t *acct_ident(const conn_state_t *cs)
{
    return cs->pending_acct ? &cs->pending_acct->ident : &cs->w->phone_ident;
}

static const char *acct_lid_user(const conn_state_t *cs)
{
    return cs->pending_acct ? cs->pending_acct->lid_user : "123456789012345";
}

/* The account with phone number `phone`, made on first use (its own
 * identity key and LID). NULL when out of memory or over MAX_ACCOUNTS. */
static account_t *account_for(fakewa_wa_t *w, const char *phone)
{
    account_t *a = fakewa_map_get(w->accounts, phone, strlen(phone));
    if (a)
        return a;
    if (fakewa_map_count(w->accounts) >= MAX_ACCOUNTS || !(a = calloc(1, sizeof(*a))))
        return NULL;
    snprintf(a->phone, sizeof(a->phone), "%s", phone);
    snprintf(a->lid_user, sizeof(a->lid_user), "%llu",
             200000000000000ULL + (unsigned long long)fakewa_map_count(w->accounts));
    wa_crypto_keypair_generate(&a->ident);
    a->next_device = 10;
    if (fakewa_map_put(w->accounts, a->phone, strlen(a->phone), a)) {
        free(a);
        return NULL;
    }
    a->next = w->account_list;
    w->account_list = a;
    w->stats.accounts = (int)fakewa_map_count(w->accounts);
    return a;
}

/* Drops the connection's pairing refs from the index. */
static void unindex_refs(conn_state_t *cs)
{
    for (int i = 0; i < cs->nrefs; i++)
        if (fakewa_map_get(cs->w->refs, cs->refs[i], strlen(cs->refs[i])) == cs)
            fakewa_map_del(cs->w->refs, cs->refs[i], strlen(cs->refs[i]));
}

/* --- connection life --- */

static void send_pair_device(conn_state_t *cs)
{
    wa_node_t *iq = wa_node_new("iq");
    char id[32];
    snprintf(id, sizeof(id), "pd-%u", ++cs->w->id_counter);
    wa_node_set_attr(iq, "from", "s.whatsapp.net");
    wa_node_set_attr(iq, "type", "set");
    wa_node_set_attr(iq, "id", id);
    wa_node_set_attr(iq, "xmlns", "md");
    wa_node_t *pd = wa_node_add(iq, "pair-device");
    unindex_refs(cs);
    cs->nrefs = cs->w->o.refs;
    for (int i = 0; i < cs->nrefs; i++) {
        uint8_t rnd[18];
        wa_crypto_random(rnd, sizeof(rnd));
        char *b = wa_pair_b64(rnd, sizeof(rnd));
        snprintf(cs->refs[i], sizeof(cs->refs[i]), "2@%s", b ? b : "x");
        free(b);
        fakewa_map_put(cs->w->refs, cs->refs[i], strlen(cs->refs[i]), cs);
        wa_node_set_bytes(wa_node_add(pd, "ref"), cs->refs[i], strlen(cs->refs[i]));
    }
    cs->refs_at_ms = fakewa_wa_now_ms();
    send_and_free(cs->c, iq);
}

static void on_client(void *arg, fakewa_conn_t *c, const uint8_t cs_pub[32], const uint8_t *p,
                      size_t len)
{
    fakewa_wa_t *w = arg;
    conn_state_t *cs = calloc(1, sizeof(*cs));
    if (!cs) {
        fakewa_close(c);
        return;
    }
    cs->w = w;
    cs->c = c;
    memcpy(cs->noise_pub, cs_pub, 32);
    cs->next = w->conns;
    if (w->conns)
        w->conns->prev = cs;
    w->conns = cs;
    fakewa_conn_set_user(c, cs);
    w->stats.connections++;
    w->stats.live++;
    size_t rlen = 0;
    const uint8_t *ri = fakewa_conn_routing(c, &rlen);
    if (ri && rlen == sizeof(w->routing) && !memcmp(ri, w->routing, rlen)) {
        cs->routed = 1;
        w->stats.routed++;
    }
    if (w->silent_next) {
        w->silent_next = 0;
        cs->silent = 1;
        return;
    }
    Wa__ClientPayload *pl = wa__client_payload__unpack(NULL, len, p);
    if (!pl) {
        stream_error(cs, "500", NULL);
        return;
    }
    if (fakewa_version_refuses(w, pl)) { /* older than --min-version */
        wa_node_t *n = wa_node_new("failure");
        wa_node_set_attr(n, "reason", "405");
        wa_node_set_attr(n, "location", "fake");
        send_and_free(c, n);
        fakewa_close(c);
        wa__client_payload__free_unpacked(pl, NULL);
        return;
    }
    if (pl->devicepairingdata) {
        cs->registration = 1;
        w->stats.registrations++;
        if (w->early_success) {
            /* a success a registration has nothing to log in with */
            w->early_success = 0;
            wa_node_t *n = wa_node_new("success");
            wa_node_set_attr(n, "t", "1700000000");
            send_and_free(c, n);
        }
        send_pair_device(cs);
    } else {
        char jid[64];
        snprintf(jid, sizeof(jid), "%llu:%u@s.whatsapp.net", (unsigned long long)pl->username,
                 pl->device);
        device_t *d = find_device(w, jid);
        wa_node_t *n;
        if (w->outdated) {
            w->outdated = 0;
            n = wa_node_new("failure");
            wa_node_set_attr(n, "reason", "405");
            wa_node_set_attr(n, "location", "fake");
            w->stats.logins_refused++;
            w->stats.refused_405++;
        } else if (w->banned) {
            w->banned = 0;
            if (d)
                forget_device(w, d->noise_pub);
            n = wa_node_new("failure");
            wa_node_set_attr(n, "reason", "403");
            w->stats.logins_refused++;
        } else if (!d || memcmp(d->noise_pub, cs_pub, 32) != 0) {
            n = wa_node_new("failure");
            wa_node_set_attr(n, "reason", "401");
            w->stats.logins_refused++;
        } else {
            n = wa_node_new("success");
            char t[32];
            snprintf(t, sizeof(t), "%lld", (long long)(fakewa_wa_now_ms() / 1000));
            wa_node_set_attr(n, "t", t);
            wa_node_set_attr(n, "lid", d->lid);
            wa_node_set_attr(n, "props", "1");
            /* one live connection per device: the older one is replaced */
            conn_state_t *o = d->live;
            if (o && o != cs && o->logged_in) {
                w->stats.double_live++;
                o->logged_in = 0;
                stream_error(o, NULL, "replaced");
            }
            d->live = cs;
            cs->logged_in = 1;
            snprintf(cs->jid, sizeof(cs->jid), "%s", jid);
            w->stats.logins_ok++;
        }
        int fail = strcmp(n->tag, "success") != 0;
        send_and_free(c, n);
        if (fail)
            fakewa_close(c);
        else if (w->send_routing)
            send_routing(cs);
    }
    wa__client_payload__free_unpacked(pl, NULL);
}

static void handle_pair_sign(conn_state_t *cs, const wa_node_t *n)
{
    fakewa_wa_t *w = cs->w;
    const wa_node_t *di = wa_node_path(n, "pair-device-sign", "device-identity", NULL);
    size_t len;
    const uint8_t *b = wa_node_content(di, &len);
    Wa__ADVSignedDeviceIdentity *sdi =
        b ? wa__advsigned_device_identity__unpack(NULL, len, b) : NULL;
    int ok = 0;
    if (sdi && sdi->has_devicesignature && sdi->devicesignature.len == 64 && sdi->has_details &&
        sdi->details.len == cs->pending_details_len &&
        !memcmp(sdi->details.data, cs->pending_details, cs->pending_details_len) &&
        !sdi->has_accountsignaturekey) {
        size_t dl = cs->pending_details_len;
        uint8_t *msg = malloc(2 + dl + 64);
        msg[0] = 6;
        msg[1] = 1;
        memcpy(msg + 2, cs->pending_details, dl);
        memcpy(msg + 2 + dl, cs->pending_ident, 32);
        memcpy(msg + 2 + dl + 32, acct_ident(cs)->pub, 32);
        ok = wa_crypto_verify(cs->pending_ident, msg, 2 + dl + 64, sdi->devicesignature.data, 64) ==
             0;
        free(msg);
    }
    if (sdi)
        wa__advsigned_device_identity__free_unpacked(sdi, NULL);
    cs->pending_id[0] = 0;
    if (!ok) {
        w->stats.bad_device_sigs++;
        stream_error(cs, "500", NULL);
        return;
    }
    char lid[64];
    snprintf(lid, sizeof(lid), "%s:%u@lid", acct_lid_user(cs), cs->pending_device);
    if (add_device(w, cs->pending_jid, lid, cs->noise_pub, cs->pending_ident) != 0)
        fprintf(stderr, "fakewa: cannot record device %s\n", cs->pending_jid);
    w->stats.paired++;
    stream_error(cs, "515", NULL); /* restart required: log in now */
}

/* The pre-keys WhatsApp holds for the device logged in on `cs` (each
 * device has its own; a connection that is not logged in uses the
 * server-wide count). */
static int *prekey_count(conn_state_t *cs)
{
    device_t *d = cs->logged_in ? find_device(cs->w, cs->jid) : NULL;
    return d ? &d->prekeys : &cs->w->prekey_count;
}

static void handle_iq(conn_state_t *cs, const wa_node_t *n)
{
    fakewa_wa_t *w = cs->w;
    const char *type = wa_node_attr(n, "type"), *xmlns = wa_node_attr(n, "xmlns");
    const char *id = wa_node_attr(n, "id");
    if (!type)
        return;
    if (cs->pending_id[0] && id && !strcmp(id, cs->pending_id)) {
        if (!strcmp(type, "result"))
            handle_pair_sign(cs, n);
        else {
            w->stats.pair_errors++;
            cs->pending_id[0] = 0;
        }
        return;
    }
    if (!strcmp(type, "result") || !strcmp(type, "error"))
        return; /* answers to our iqs (pair-device ack, server pings) */
    if (xmlns && !strcmp(xmlns, "w:p")) {
        w->stats.pings++;
        if (cs->registration)
            w->stats.pings_unpaired++;
        if (w->drop_ping) {
            w->drop_ping = 0;
            w->stats.pings_dropped++;
            return;
        }
        fakewa_wa_reply(cs, n, "result", NULL);
    } else if (xmlns && !strcmp(xmlns, "encrypt") && !strcmp(type, "get") &&
               wa_node_child(n, "count")) {
        wa_node_t *c = wa_node_new("count");
        char v[16];
        snprintf(v, sizeof(v), "%d", *prekey_count(cs));
        wa_node_set_attr(c, "value", v);
        fakewa_wa_reply(cs, n, "result", c);
    } else if (xmlns && !strcmp(xmlns, "encrypt") && !strcmp(type, "set")) {
        const wa_node_t *list = wa_node_child(n, "list");
        int keys = list ? (int)list->nchildren : 0;
        *prekey_count(cs) += keys;
        w->stats.prekeys_uploaded += keys;
        fakewa_wa_reply(cs, n, "result", NULL);
    } else if (fakewa_passkey_iq(cs, n)) {
        /* the passkey step of linking */
    } else if (xmlns && !strcmp(xmlns, "md") && wa_node_child(n, "link_code_companion_reg")) {
        fakewa_pc_iq(cs, n);
    } else if (xmlns && !strcmp(xmlns, "md") && wa_node_child(n, "remove-companion-device")) {
        w->stats.logouts++;
        forget_device(w, cs->noise_pub);
        fakewa_wa_reply(cs, n, "result", NULL);
        fakewa_close(cs->c);
    } else {
        fakewa_wa_reply(cs, n, "result", NULL);
    }
}

static void on_node(void *arg, fakewa_conn_t *c, const wa_node_t *n)
{
    fakewa_wa_t *w = arg;
    conn_state_t *cs = fakewa_conn_user(c);
    if (!cs || w->stall || cs->silent)
        return;
    if (!strcmp(n->tag, "iq"))
        handle_iq(cs, n);
    else if (!strcmp(n->tag, "ack"))
        handle_ack(w, n);
}

static void on_close(void *arg, fakewa_conn_t *c, const char *reason)
{
    fakewa_wa_t *w = arg;
    (void)reason;
    conn_state_t *cs = fakewa_conn_user(c);
    if (!cs)
        return;
    if (cs->prev)
        cs->prev->next = cs->next;
    else
        w->conns = cs->next;
    if (cs->next)
        cs->next->prev = cs->prev;
    unindex_refs(cs);
    device_t *d = cs->jid[0] ? find_device(w, cs->jid) : NULL;
    if (d && d->live == cs)
        d->live = NULL;
    w->stats.live--;
    fakewa_passkey_conn_free(cs);
    fakewa_pc_conn_free(cs);
    free(cs);
}

static void on_open(void *arg)
{
    fakewa_wa_t *w = arg;
    w->opens[w->nopens++ % OPEN_LOG] = fakewa_wa_now_ms();
    w->stats.opens++;
}

static void on_ping_timer(uv_timer_t *t)
{
    fakewa_wa_t *w = t->data;
    if (w->stall)
        return;
    for (conn_state_t *cs = w->conns; cs; cs = cs->next) {
        if (!cs->logged_in)
            continue;
        wa_node_t *iq = wa_node_new("iq");
        char id[32];
        snprintf(id, sizeof(id), "sp-%u", ++w->id_counter);
        wa_node_set_attr(iq, "from", "s.whatsapp.net");
        wa_node_set_attr(iq, "type", "get");
        wa_node_set_attr(iq, "xmlns", "urn:xmpp:ping");
        wa_node_set_attr(iq, "id", id);
        send_and_free(cs->c, iq);
    }
}

/* The value of `name` in the query string `q` ("a=1&b=2") into out;
 * returns 1 when present, else 0 (out is then ""). */
static int query_arg(const char *q, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    out[0] = 0;
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (!strncmp(p, name, nl) && p[nl] == '=') {
            snprintf(out, outlen, "%.*s", (int)strcspn(p + nl + 1, "&"), p + nl + 1);
            return 1;
        }
    }
    return 0;
}

/* GET /control/connects[?since=MS]: the times (ms) of the connection opens
 * at or after `since` that the log still holds, and the most of them
 * within any 1,000 ms window. */
static char *connects_json(const fakewa_wa_t *w, int64_t since)
{
    unsigned long long first = w->nopens > OPEN_LOG ? w->nopens - OPEN_LOG : 0, i = w->nopens;
    while (i > first && w->opens[(i - 1) % OPEN_LOG] >= since)
        i--; /* the log is in time order */
    size_t count = (size_t)(w->nopens - i), cap = 128 + count * 16, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int max = 0;
    unsigned long long lo = i;
    n += (size_t)snprintf(out + n, cap - n, "{\"now\":%lld,\"times\":[",
                          (long long)fakewa_wa_now_ms());
    for (unsigned long long j = i; j < w->nopens; j++) {
        int64_t t = w->opens[j % OPEN_LOG];
        while (w->opens[lo % OPEN_LOG] <= t - 1000)
            lo++;
        if ((int)(j - lo + 1) > max)
            max = (int)(j - lo + 1);
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", j > i ? "," : "", (long long)t);
    }
    snprintf(out + n, cap - n, "],\"count\":%zu,\"maxPerSecond\":%d,\"logged\":%llu}", count, max,
             w->nopens - first);
    return out;
}

/* The control API (whatsapp.h's main.c lists it): GET /control/state,
 * GET /control/connects, POST /control/scan[?phone=N] (body: the QR text),
 * POST /control/pair-code (body: the code typed on the phone), POST
 * /control/fault[?target=JID|PHONE] (body: a fault name, optionally
 * followed by a space and the target), and the passkey and version
 * routes. */
static int on_http(void *arg, int post, const char *full_path, const char *body, size_t len,
                   char **resp)
{
    fakewa_wa_t *w = arg;
    char buf[256], path[256], arg1[64];
    int status;
    const char *q = strchr(full_path, '?');
    snprintf(path, sizeof(path), "%.*s", (int)(q ? (size_t)(q - full_path) : strlen(full_path)),
             full_path);
    q = q ? q + 1 : "";
    if (fakewa_version_http(w, post, path, body, resp, &status))
        return status;
    if (!post && !strcmp(path, "/control/state")) {
        *resp = fakewa_wa_state_json(w);
        return 200;
    }
    if (!post && !strcmp(path, "/control/connects")) {
        query_arg(q, "since", arg1, sizeof(arg1));
        *resp = connects_json(w, arg1[0] ? strtoll(arg1, NULL, 10) : 0);
        return *resp ? 200 : 500;
    }
    if (post && !strcmp(path, "/control/scan")) {
        char why[128];
        char *qr = strndup(body, strcspn(body, "\r\n"));
        int has_phone = query_arg(q, "phone", arg1, sizeof(arg1));
        int rc = qr ? fakewa_wa_scan_as(w, qr, has_phone ? arg1 : NULL, why, sizeof(why)) : -1;
        free(qr);
        if (rc == 1)
            snprintf(buf, sizeof(buf), "{\"ok\":true,\"refreshed\":true}");
        else if (rc == 2)
            snprintf(buf, sizeof(buf), "{\"ok\":true,\"passkey\":true}");
        else
            snprintf(buf, sizeof(buf), rc ? "{\"ok\":false,\"error\":\"%s\"}" : "{\"ok\":true}",
                     rc ? why : "");
        *resp = strdup(buf);
        return rc < 0 ? 409 : rc >= 1 ? 202 : 200;
    }
    if (post && !strcmp(path, "/control/pair-code")) {
        char why[128], code[32];
        snprintf(code, sizeof(code), "%.*s", (int)strcspn(body, "\r\n"), body);
        int rc = fakewa_wa_pair_code(w, code, why, sizeof(why));
        snprintf(buf, sizeof(buf), rc ? "{\"ok\":false,\"error\":\"%s\"}" : "{\"ok\":true}",
                 rc ? why : "");
        *resp = strdup(buf);
        return rc ? 409 : 200;
    }
    if (post && !strcmp(path, "/control/fault")) {
        char name[32];
        size_t nl = strcspn(body, " \r\n");
        snprintf(name, sizeof(name), "%.*s", (int)nl, body);
        if (!query_arg(q, "target", arg1, sizeof(arg1)) && body[nl] == ' ')
            snprintf(arg1, sizeof(arg1), "%.*s", (int)strcspn(body + nl + 1, " \r\n"),
                     body + nl + 1);
        int f = fakewa_wa_fault_parse(name);
        if (f < 0) {
            *resp = strdup("{\"ok\":false,\"error\":\"unknown fault\"}");
            return 400;
        }
        fakewa_wa_fault_at(w, (fakewa_fault_t)f, arg1);
        *resp = strdup("{\"ok\":true}");
        return 200;
    }
    int st = fakewa_passkey_http(w, post, path, body, len, resp);
    if (st)
        return st;
    *resp = strdup("{\"ok\":false,\"error\":\"not found\"}");
    return 404;
}

/* Frees the devices, the accounts and the indexes. */
static void free_indexes(fakewa_wa_t *w)
{
    while (w->devices) {
        device_t *d = w->devices;
        w->devices = d->next;
        free(d);
    }
    w->devices_tail = NULL;
    w->ndevices = 0;
    while (w->account_list) {
        account_t *a = w->account_list;
        w->account_list = a->next;
        free(a);
    }
    fakewa_map_free(w->dev_by_jid);
    fakewa_map_free(w->dev_by_noise);
    fakewa_map_free(w->accounts);
    fakewa_map_free(w->refs);
}

fakewa_wa_t *fakewa_wa_new(uv_loop_t *loop, const fakewa_wa_opts_t *opts, char *err, size_t errlen)
{
    fakewa_wa_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->o = *opts;
    if (!w->o.refs || w->o.refs > MAX_REFS)
        w->o.refs = 6;
    if (!w->o.qr_first_ms)
        w->o.qr_first_ms = 60000;
    if (!w->o.qr_next_ms)
        w->o.qr_next_ms = 20000;
    snprintf(w->phone, sizeof(w->phone), "%s", opts->phone ? opts->phone : "15551234567");
    w->prekey_count = opts->prekey_count;
    w->next_device = 10;
    if (fakewa_version_init(w, opts) != 0) {
        snprintf(err, errlen, "invalid minimum version '%s'", opts->min_version);
        free(w);
        return NULL;
    }
    wa_crypto_keypair_generate(&w->phone_ident);
    wa_crypto_random(w->routing, sizeof(w->routing));
    w->next_phone = 15550000001ULL;
    w->dev_by_jid = fakewa_map_new();
    w->dev_by_noise = fakewa_map_new();
    w->accounts = fakewa_map_new();
    w->refs = fakewa_map_new();
    if (!w->dev_by_jid || !w->dev_by_noise || !w->accounts || !w->refs) {
        snprintf(err, errlen, "out of memory");
        free_indexes(w);
        free(w);
        return NULL;
    }
    fakewa_callbacks_t cb = {on_client, on_node, on_close, w, on_http, on_open};
    w->f = fakewa_new(loop, &opts->transport, &cb, err, errlen);
    if (!w->f) {
        free_indexes(w);
        free(w);
        return NULL;
    }
    uv_timer_init(loop, &w->ping_timer);
    w->ping_timer.data = w;
    if (opts->server_ping_ms)
        uv_timer_start(&w->ping_timer, on_ping_timer, opts->server_ping_ms, opts->server_ping_ms);
    return w;
}

void fakewa_wa_stop(fakewa_wa_t *w)
{
    if (!w)
        return;
    uv_timer_stop(&w->ping_timer);
    uv_close((uv_handle_t *)&w->ping_timer, NULL);
    fakewa_stop(w->f);
}

void fakewa_wa_free(fakewa_wa_t *w)
{
    if (!w)
        return;
    fakewa_free(w->f);
    fakewa_passkey_free(w);
    while (w->conns) {
        conn_state_t *n = w->conns->next;
        fakewa_passkey_conn_free(w->conns);
        fakewa_pc_conn_free(w->conns);
        free(w->conns);
        w->conns = n;
    }
    free_indexes(w);
    free(w);
}

fakewa_t *fakewa_wa_transport(fakewa_wa_t *w)
{
    return w->f;
}

const fakewa_wa_stats_t *fakewa_wa_stats(const fakewa_wa_t *w)
{
    return &w->stats;
}

int fakewa_wa_scan(fakewa_wa_t *w, const char *qr, char *why, size_t whylen)
{
    return fakewa_wa_scan_as(w, qr, NULL, why, whylen);
}

/* 6 to 15 digits, not starting with 0. */
static int phone_ok(const char *p)
{
    size_t n = strlen(p);
    if (n < 6 || n > 15 || p[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

int fakewa_wa_scan_as(fakewa_wa_t *w, const char *qr, const char *phone, char *why, size_t whylen)
{
    char auto_phone[32];
    if (phone && !phone_ok(phone)) {
        snprintf(why, whylen, "not a phone number (6 to 15 digits)");
        return -1;
    }
    wa_pair_qr_parts_t parts;
    if (wa_pair_qr_parse(qr, &parts) != 0) {
        snprintf(why, whylen, "not a WhatsApp linking QR");
        return -1;
    }
    conn_state_t *cs = fakewa_map_get(w->refs, parts.ref, strlen(parts.ref));
    int idx = -1;
    for (int i = 0; cs && i < cs->nrefs; i++)
        if (!strcmp(cs->refs[i], parts.ref))
            idx = i;
    if (cs && (!cs->registration || idx < 0))
        cs = NULL;
    if (!cs) {
        wa_pair_qr_parts_free(&parts);
        snprintf(why, whylen, "unknown ref (no registration connection offers it)");
        w->stats.scans_refused++;
        return -1;
    }
    /* ref i is valid from its start until its lifetime has passed */
    int64_t t = fakewa_wa_now_ms() - cs->refs_at_ms;
    int64_t start = idx == 0 ? 0 : w->o.qr_first_ms + (int64_t)(idx - 1) * w->o.qr_next_ms;
    int64_t end = idx == 0 ? w->o.qr_first_ms : start + w->o.qr_next_ms;
    if (t > end + 100 || t + 100 < start) { /* 100 ms for clock and network slack */
        wa_pair_qr_parts_free(&parts);
        snprintf(why, whylen, "expired ref");
        w->stats.scans_refused++;
        return -1;
    }
    if (memcmp(parts.noise_pub, cs->noise_pub, 32) != 0) {
        wa_pair_qr_parts_free(&parts);
        snprintf(why, whylen, "QR noise key does not match the connection");
        return -1;
    }
    for (int i = 0; i < cs->nretired; i++)
        if (!memcmp(cs->retired[i], parts.adv_secret, 32)) {
            wa_pair_qr_parts_free(&parts);
            snprintf(why, whylen, "the QR carries a secret retired by companion_reg_refresh");
            w->stats.scans_refused++;
            return -1;
        }
    if (w->refresh_on_scan) {
        /* as WhatsApp does since mid 2026: the scan retires the secret, the
         * companion must redraw its QR and the phone scan again */
        w->refresh_on_scan = 0;
        if (cs->nretired < MAX_RETIRED)
            memcpy(cs->retired[cs->nretired++], parts.adv_secret, 32);
        wa_pair_qr_parts_free(&parts);
        send_refresh(cs);
        return 1;
    }
    if (!phone && w->o.account_per_scan) {
        snprintf(auto_phone, sizeof(auto_phone), "%llu", w->next_phone++);
        phone = auto_phone;
    }
    if (phone && strcmp(phone, w->phone)) {
        cs->pending_acct = account_for(w, phone);
        if (!cs->pending_acct) {
            wa_pair_qr_parts_free(&parts);
            snprintf(why, whylen, "too many accounts");
            return -1;
        }
    } else {
        cs->pending_acct = NULL; /* the default account */
    }
    if (fakewa_passkey_scanned(cs, parts.adv_secret)) {
        wa_pair_qr_parts_free(&parts);
        return 2; /* this account requires a passkey first */
    }
    int rc = fakewa_wa_send_pair_success(cs, parts.ident_pub, parts.adv_secret);
    wa_pair_qr_parts_free(&parts);
    if (rc)
        snprintf(why, whylen, "cannot build pair-success");
    return rc;
}

int fakewa_wa_send_pair_success(conn_state_t *cs, const uint8_t ident_pub[32],
                                const uint8_t adv_secret[32])
{
    fakewa_wa_t *w = cs->w;
    int hosted = w->hosted_next;
    w->hosted_next = 0;
    /* the device identity the phone issues */
    /* each account numbers its own devices; a JID's device is one byte */
    int *next = cs->pending_acct ? &cs->pending_acct->next_device : &w->next_device;
    if (++*next > 255)
        *next = 1;
    unsigned device = (unsigned)*next;
    Wa__ADVDeviceIdentity id = WA__ADVDEVICE_IDENTITY__INIT;
    id.has_rawid = id.has_timestamp = id.has_keyindex = 1;
    id.rawid = 424242;
    id.timestamp = (uint64_t)(fakewa_wa_now_ms() / 1000);
    id.keyindex = device;
    if (hosted) {
        id.has_accounttype = id.has_devicetype = 1;
        id.accounttype = WA__ADVENCRYPTION_TYPE__HOSTED;
        id.devicetype = WA__ADVENCRYPTION_TYPE__HOSTED;
    }
    uint8_t details[128];
    size_t dl = wa__advdevice_identity__pack(&id, details);
    uint8_t msg[2 + 128 + 32], sig[64];
    msg[0] = 6;
    msg[1] = hosted ? 5 : 0;
    memcpy(msg + 2, details, dl);
    memcpy(msg + 2 + dl, ident_pub, 32);
    const wa_keypair_t *acct = acct_ident(cs);
    wa_crypto_sign(acct->priv, msg, 2 + dl + 32, sig);
    if (w->bad_sig) {
        w->bad_sig = 0;
        sig[5] ^= 1;
    }
    Wa__ADVSignedDeviceIdentity sdi = WA__ADVSIGNED_DEVICE_IDENTITY__INIT;
    sdi.has_details = sdi.has_accountsignaturekey = sdi.has_accountsignature = 1;
    sdi.details.data = details;
    sdi.details.len = dl;
    sdi.accountsignaturekey.data = (uint8_t *)acct->pub;
    sdi.accountsignaturekey.len = 32;
    sdi.accountsignature.data = sig;
    sdi.accountsignature.len = 64;
    uint8_t sbuf[512];
    size_t sl = wa__advsigned_device_identity__pack(&sdi, sbuf);
    uint8_t mac[32];
    static const uint8_t hosted_prefix[2] = {6, 5};
    const uint8_t *pp[2] = {hosted_prefix, sbuf};
    size_t ll[2] = {2, sl};
    wa_crypto_hmac_sha256(adv_secret, 32, hosted ? pp : pp + 1, hosted ? ll : ll + 1,
                          hosted ? 2 : 1, mac);
    if (w->bad_hmac) {
        w->bad_hmac = 0;
        mac[0] ^= 1;
    }
    Wa__ADVSignedDeviceIdentityHMAC h = WA__ADVSIGNED_DEVICE_IDENTITY_HMAC__INIT;
    h.has_details = h.has_hmac = 1;
    h.details.data = sbuf;
    h.details.len = sl;
    h.hmac.data = mac;
    h.hmac.len = 32;
    if (hosted) {
        h.has_accounttype = 1;
        h.accounttype = WA__ADVENCRYPTION_TYPE__HOSTED;
    }
    uint8_t hbuf[600];
    size_t hl = wa__advsigned_device_identity_hmac__pack(&h, hbuf);

    memcpy(cs->pending_details, details, dl);
    cs->pending_details_len = dl;
    memcpy(cs->pending_ident, ident_pub, 32);
    snprintf(cs->pending_jid, sizeof(cs->pending_jid), "%s:%u@s.whatsapp.net", acct_phone(cs),
             device);
    cs->pending_device = device;
    snprintf(cs->pending_id, sizeof(cs->pending_id), "ps-%u", ++w->id_counter);

    wa_node_t *iq = wa_node_new("iq");
    wa_node_set_attr(iq, "from", "s.whatsapp.net");
    wa_node_set_attr(iq, "type", "set");
    wa_node_set_attr(iq, "id", cs->pending_id);
    char ts[32], lid[64];
    snprintf(ts, sizeof(ts), "%lld", (long long)(fakewa_wa_now_ms() / 1000));
    wa_node_set_attr(iq, "t", ts);
    wa_node_t *ps = wa_node_add(iq, "pair-success");
    wa_node_set_bytes(wa_node_add(ps, "device-identity"), hbuf, hl);
    wa_node_set_attr(wa_node_add(ps, "platform"), "name", "android");
    wa_node_t *dev = wa_node_add(ps, "device");
    snprintf(lid, sizeof(lid), "%s:%u@lid", acct_lid_user(cs), device);
    wa_node_set_attr(dev, "jid", cs->pending_jid);
    wa_node_set_attr(dev, "lid", lid);
    send_and_free(cs->c, iq);
    return 0;
}

void fakewa_wa_fault(fakewa_wa_t *w, fakewa_fault_t f)
{
    fakewa_wa_fault_at(w, f, NULL);
}

/* Whether the connection is logged in as `target`: a device JID, or the
 * phone number of its account. */
static int conn_matches(const conn_state_t *cs, const char *target)
{
    if (!cs->logged_in || !cs->jid[0])
        return 0;
    if (!strcmp(cs->jid, target))
        return 1;
    size_t n = strcspn(cs->jid, ":@");
    return strlen(target) == n && !strncmp(cs->jid, target, n);
}

void fakewa_wa_fault_at(fakewa_wa_t *w, fakewa_fault_t f, const char *target)
{
    if ((target && !*target) || f == FAKEWA_OFFLINE || f == FAKEWA_ROUTING)
        target = NULL;
    switch (f) {
    case FAKEWA_STALL:
        if (target)
            break; /* those connections fall silent, below */
        w->stall = 1;
        return;
    case FAKEWA_OUTDATED:
        w->outdated = 1;
        return;
    case FAKEWA_BANNED:
        w->banned = 1;
        return;
    case FAKEWA_BAD_HMAC:
        w->bad_hmac = 1;
        return;
    case FAKEWA_BAD_SIGNATURE:
        w->bad_sig = 1;
        return;
    case FAKEWA_DROP_PING:
        w->drop_ping = 1;
        return;
    case FAKEWA_SILENT:
        w->silent_next = 1;
        return;
    case FAKEWA_EARLY_SUCCESS:
        w->early_success = 1;
        return;
    case FAKEWA_HOSTED:
        w->hosted_next = 1;
        return;
    case FAKEWA_REFRESH_ON_SCAN:
        w->refresh_on_scan = 1;
        return;
    case FAKEWA_ROUTING:
        w->send_routing = 1;
        break;
    case FAKEWA_OFFLINE:
        fakewa_faults(w->f)->refuse = 1;
        break;
    case FAKEWA_ONLINE:
        fakewa_faults(w->f)->refuse = 0;
        return;
    default:
        break;
    }
    if (!target)
        w->stall = 0;
    conn_state_t *next;
    for (conn_state_t *cs = w->conns; cs; cs = next) {
        next = cs->next;
        if (target && !conn_matches(cs, target))
            continue;
        switch (f) {
        case FAKEWA_STALL:
            cs->silent = 1;
            break;
        case FAKEWA_DROP:
            fakewa_close(cs->c);
            break;
        case FAKEWA_GARBAGE: {
            static const uint8_t junk[48] = {0xde, 0xad, 0xbe, 0xef};
            fakewa_send_raw_frame(cs->c, junk, sizeof(junk));
            break;
        }
        case FAKEWA_RESTART:
            stream_error(cs, "515", NULL);
            break;
        case FAKEWA_LOGGED_OUT:
            forget_device(w, cs->noise_pub);
            stream_error(cs, "401", "device_removed");
            break;
        case FAKEWA_REPLACED:
            stream_error(cs, NULL, "replaced");
            break;
        case FAKEWA_SERVER_ERROR:
            stream_error(cs, "503", NULL);
            break;
        case FAKEWA_BARE_401:
            stream_error(cs, "401", NULL);
            break;
        case FAKEWA_BAD_NODE: {
            /* flags 0, then a list header promising more than there is */
            static const uint8_t bad[] = {0x00, 0xf8, 0x05, 0xff};
            if (fakewa_send_plain(cs->c, bad, sizeof(bad)) == 0)
                w->stats.bad_nodes_sent++;
            break;
        }
        case FAKEWA_STANZAS:
            if (cs->logged_in)
                send_stanzas(cs);
            break;
        case FAKEWA_REFRESH:
            if (cs->registration)
                send_refresh(cs);
            break;
        case FAKEWA_ROUTING:
            if (cs->logged_in)
                send_routing(cs);
            break;
        case FAKEWA_OFFLINE:
            fakewa_close(cs->c);
            break;
        default:
            break;
        }
    }
}

/* The counters of /control/state, one row each (name, field). */
#define STAT(name, field)                                                                          \
    {                                                                                              \
        name, offsetof(fakewa_wa_stats_t, field)                                                   \
    }
static const struct {
    const char *name;
    size_t off;
} stat_rows[] = {
    STAT("connections", connections),
    STAT("registrations", registrations),
    STAT("loginsOk", logins_ok),
    STAT("loginsRefused", logins_refused),
    STAT("paired", paired),
    STAT("badDeviceSignatures", bad_device_sigs),
    STAT("pairErrors", pair_errors),
    STAT("prekeysUploaded", prekeys_uploaded),
    STAT("pings", pings),
    STAT("logouts", logouts),
    STAT("live", live),
    STAT("pingsUnpaired", pings_unpaired),
    STAT("pingsDropped", pings_dropped),
    STAT("acksOk", acks_ok),
    STAT("acksBad", acks_bad),
    STAT("unacked", unacked),
    STAT("refreshes", refreshes),
    STAT("scansRefused", scans_refused),
    STAT("routingSent", routing_sent),
    STAT("routed", routed),
    STAT("badNodesSent", bad_nodes_sent),
    STAT("doubleLive", double_live),
    STAT("pairCodeHellos", paircode_hellos),
    STAT("pairCodeBadHellos", paircode_bad_hellos),
    STAT("pairCodeEntries", paircode_entries),
    STAT("pairCodeAccepted", paircode_accepted),
    STAT("pairCodeRefused", paircode_refused),
    STAT("pairCodeTooMany", paircode_too_many),
    STAT("pairCodeBadFinishes", paircode_bad_finishes),
    STAT("swFetches", sw_fetches),
    STAT("refused405", refused_405),
    STAT("opens", opens),
    STAT("accounts", accounts),
};

char *fakewa_wa_state_json(const fakewa_wa_t *w)
{
    size_t cap = 2048 + (size_t)w->ndevices * 160;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = 0;
    out[n++] = '{';
    for (size_t i = 0; i < sizeof(stat_rows) / sizeof(stat_rows[0]); i++) {
        int v = *(const int *)((const char *)&w->stats + stat_rows[i].off);
        n += (size_t)snprintf(out + n, cap - n, "\"%s\":%d,", stat_rows[i].name, v);
    }
    n += (size_t)fakewa_version_json(w, out + n, cap - n);
    /* the devices logged in now (each on one connection), then every paired one */
    int first = 1;
    n += (size_t)snprintf(out + n, cap - n, "\"liveDevices\":[");
    for (const device_t *d = w->devices; d && n < cap; d = d->next)
        if (d->live && d->live->logged_in) {
            n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", first ? "" : ",", d->jid);
            first = 0;
        }
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n, "],\"devices\":[");
    for (const device_t *d = w->devices; d && n < cap; d = d->next)
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", d != w->devices ? "," : "", d->jid);
    char *pk = fakewa_passkey_state_json(w);
    if (n < cap)
        snprintf(out + n, cap - n, "],\"passkey\":%s}", pk ? pk : "null");
    free(pk);
    return out;
}
