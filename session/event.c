/* A snapshot as an event (see session.h, "the event log"): the JSON view
 * the journal stores and webhooks deliver, and its inverse, which rebuilds
 * the snapshot a resumed stream hands out. Times are ISO 8601 UTC with
 * milliseconds, so a rebuilt snapshot has the same times as the live one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/clock.h"
#include "session/session.h"
#include "session/session_internal.h"

/* Event JSON views are small; a bigger one is not ours. */
#define EVENT_JSON_MAX (256 * 1024)

static void gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_kv(yajl_gen g, const char *k, const char *v)
{
    if (!v)
        return;
    gen_str(g, k);
    gen_str(g, v);
}

static void gen_time(yajl_gen g, const char *k, int64_t ms)
{
    char buf[CLK_ISO_LEN];
    clk_iso8601(ms, buf);
    gen_kv(g, k, buf);
}

static void gen_data(yajl_gen g, const sess_snapshot_t *s)
{
    yajl_gen_map_open(g);
    gen_kv(g, "state", sess_state_name(s->state));
    gen_kv(g, "detail", s->detail ? s->detail : "");
    gen_str(g, "connected");
    yajl_gen_bool(g, s->state == SESS_CONNECTED);
    gen_str(g, "linked");
    yajl_gen_bool(g, s->linked != 0);
    gen_time(g, "since", s->since_ms);
    if (s->qr && s->qr->text) {
        gen_kv(g, "qr", s->qr->text);
        gen_time(g, "qrExpiresAt", s->qr->expires_at_ms);
    }
    if (s->linked) {
        const sess_account_t *a = &s->account;
        gen_str(g, "account");
        yajl_gen_map_open(g);
        gen_kv(g, "jid", a->jid);
        gen_kv(g, "lid", a->lid);
        gen_kv(g, "phone", a->phone);
        gen_kv(g, "pushName", a->push_name);
        gen_kv(g, "platform", a->platform);
        gen_kv(g, "businessName", a->business_name);
        yajl_gen_map_close(g);
    }
    if (s->link_code) {
        gen_kv(g, "linkCode", s->link_code);
        if (s->link_code_expires_at_ms)
            gen_time(g, "linkCodeExpiresAt", s->link_code_expires_at_ms);
    }
    gen_kv(g, "passkeyOptions", s->passkey_options);
    gen_str(g, "connects");
    yajl_gen_integer(g, (long long)s->connects);
    yajl_gen_map_close(g);
}

char *sess_event_json(const sess_snapshot_t *s, size_t *len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    gen_kv(g, "type", SESS_EVENT_STATUS);
    gen_kv(g, "session", s->session);
    gen_str(g, "seq");
    yajl_gen_integer(g, (long long)s->seq);
    gen_time(g, "timestamp", s->changed_ms);
    gen_str(g, "data");
    gen_data(g, s);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t n;
    char *out = NULL;
    if (yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok && (out = malloc(n + 1))) {
        memcpy(out, buf, n);
        out[n] = 0;
        *len = n;
    }
    yajl_gen_free(g);
    return out;
}

static const char *str_at(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -1 : 0;
}

static int parse_state(const char *name, sess_state_t *out)
{
    static const sess_state_t all[] = {SESS_DISCONNECTED, SESS_CONNECTING, SESS_QR_READY,
                                       SESS_CONNECTED};
    for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++)
        if (!strcmp(name, sess_state_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/* Fills the data members of `s` from the "data" object. 0 or -1. */
static int parse_data(sess_registry_t *reg, yajl_val data, sess_snapshot_t *s)
{
    if (!YAJL_IS_OBJECT(data) || parse_state(str_at(data, "state"), &s->state) != 0 ||
        clk_parse_iso8601(str_at(data, "since"), &s->since_ms) != 0)
        return -1;
    const char *detail = str_at(data, "detail");
    free((char *)s->detail);
    if (!(s->detail = strdup(detail ? detail : "")))
        return -1;
    const char *lpath[] = {"linked", NULL};
    s->linked = YAJL_IS_TRUE(yajl_tree_get(data, lpath, yajl_t_true));
    const char *cpath[] = {"connects", NULL};
    yajl_val c = yajl_tree_get(data, cpath, yajl_t_number);
    if (c && YAJL_IS_INTEGER(c) && YAJL_GET_INTEGER(c) >= 0)
        s->connects = (uint64_t)YAJL_GET_INTEGER(c);
    const char *qr = str_at(data, "qr");
    if (qr) {
        int64_t exp;
        if (clk_parse_iso8601(str_at(data, "qrExpiresAt"), &exp) != 0 ||
            !(s->qr = sess_qr_new_(reg, qr, exp)))
            return -1;
    }
    const char *apath[] = {"account", NULL};
    yajl_val a = yajl_tree_get(data, apath, yajl_t_object);
    if (s->linked && a) {
        sess_account_t *ac = &s->account;
        if (dup_opt(&ac->jid, str_at(a, "jid")) || dup_opt(&ac->lid, str_at(a, "lid")) ||
            dup_opt(&ac->phone, str_at(a, "phone")) ||
            dup_opt(&ac->push_name, str_at(a, "pushName")) ||
            dup_opt(&ac->platform, str_at(a, "platform")) ||
            dup_opt(&ac->business_name, str_at(a, "businessName")))
            return -1;
    }
    const char *code = str_at(data, "linkCode");
    if (code) {
        if (dup_opt((char **)&s->link_code, code) ||
            (str_at(data, "linkCodeExpiresAt") &&
             clk_parse_iso8601(str_at(data, "linkCodeExpiresAt"), &s->link_code_expires_at_ms) !=
                 0))
            return -1;
    }
    return dup_opt((char **)&s->passkey_options, str_at(data, "passkeyOptions"));
}

sess_snapshot_t *sess_event_parse(sess_registry_t *reg, const char *json, size_t len)
{
    if (!json || len == 0 || len > EVENT_JSON_MAX)
        return NULL;
    char *z = malloc(len + 1); /* yajl_tree_parse wants a C string */
    if (!z)
        return NULL;
    memcpy(z, json, len);
    z[len] = 0;
    yajl_val root = yajl_tree_parse(z, NULL, 0);
    free(z);
    if (!root)
        return NULL;
    sess_snapshot_t *s = NULL;
    const char *type = str_at(root, "type");
    const char *session = str_at(root, "session");
    const char *spath[] = {"seq", NULL};
    const char *dpath[] = {"data", NULL};
    yajl_val seq = yajl_tree_get(root, spath, yajl_t_number);
    int64_t ts;
    if (!type || strcmp(type, SESS_EVENT_STATUS) != 0 || !session || !seq ||
        !YAJL_IS_INTEGER(seq) || YAJL_GET_INTEGER(seq) < 1 ||
        clk_parse_iso8601(str_at(root, "timestamp"), &ts) != 0)
        goto out;
    s = sess_snapshot_new_(session, "");
    if (!s)
        goto out;
    s->seq = (uint64_t)YAJL_GET_INTEGER(seq);
    s->changed_ms = ts;
    if (parse_data(reg, yajl_tree_get(root, dpath, yajl_t_object), s) != 0) {
        sess_snapshot_unref(s);
        s = NULL;
    }
out:
    yajl_tree_free(root);
    return s;
}

void sess_event_clear(sess_event_t *ev)
{
    free((char *)ev->session);
    free((char *)ev->type);
    free((char *)ev->body);
    memset(ev, 0, sizeof(*ev));
}
