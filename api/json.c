/* JSON views of the API contract, generated with yajl: status, qr,
 * reconnect, pairing code, errors and the streamed event object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "api/api.h"
#include "api/json_internal.h"
#include "common/clock.h"
#include "session/manager.h"

#define KEY(g, k) yajl_gen_string(g, (const unsigned char *)(k), strlen(k))

void api_jput_str(yajl_gen g, const char *k, const char *v)
{
    KEY(g, k);
    if (v)
        yajl_gen_string(g, (const unsigned char *)v, strlen(v));
    else
        yajl_gen_null(g);
}

void api_jput_int(yajl_gen g, const char *k, long long v)
{
    KEY(g, k);
    yajl_gen_integer(g, v);
}

void api_jput_bool(yajl_gen g, const char *k, int v)
{
    KEY(g, k);
    yajl_gen_bool(g, v != 0);
}

char *api_jfinish(yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    char *out = NULL;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
        out = malloc(len + 1);
        if (out) {
            memcpy(out, buf, len);
            out[len] = 0;
        }
    }
    yajl_gen_free(g);
    return out;
}

yajl_gen api_jgen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g)
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

/* Writes the yajl tree v; nesting deeper than 32 becomes null. */
static void put_tree(yajl_gen g, yajl_val v, int depth)
{
    if (!v || depth > 32) {
        yajl_gen_null(g);
    } else if (YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            KEY(g, v->u.object.keys[i]);
            put_tree(g, v->u.object.values[i], depth + 1);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            put_tree(g, v->u.array.values[i], depth + 1);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}

/* Writes the JSON text `json` (checked by the session layer) as a value;
 * null when it does not parse. */
static void put_raw_json(yajl_gen g, const char *json)
{
    char err[64];
    yajl_val v = yajl_tree_parse(json, err, sizeof(err));
    put_tree(g, v, 0);
    yajl_tree_free(v);
}

/* The status data object's members (without the braces). */
static void status_members(yajl_gen g, const sess_snapshot_t *s, int with_account, int64_t now_ms)
{
    long long left = sess_snapshot_qr_expires_in(s, now_ms);
    api_jput_bool(g, "connected", s->state == SESS_CONNECTED);
    api_jput_str(g, "state", sess_state_name(s->state));
    api_jput_bool(g, "hasQR", left > 0);
    api_jput_str(g, "detail", s->detail);
    char since[CLK_ISO_LEN];
    clk_iso8601(s->since_ms, since);
    api_jput_str(g, "since", since);
    api_jput_int(g, "sinceMs", s->since_ms);
    api_jput_int(g, "seq", (long long)s->seq);
    api_jput_int(g, "changedMs", s->changed_ms);
    api_jput_int(g, "expiresIn", left);
    api_jput_str(g, "session", s->session);
    api_jput_bool(g, "linked", s->linked);
    if (with_account && s->linked) {
        KEY(g, "account");
        yajl_gen_map_open(g);
        api_jput_str(g, "jid", s->account.jid);
        api_jput_str(g, "lid", s->account.lid);
        api_jput_str(g, "phone", s->account.phone);
        api_jput_str(g, "pushName", s->account.push_name);
        api_jput_str(g, "platform", s->account.platform);
        api_jput_str(g, "businessName", s->account.business_name);
        yajl_gen_map_close(g);
    }
    if (with_account && s->passkey_options) {
        KEY(g, "passkeyOptions");
        put_raw_json(g, s->passkey_options);
    }
    if (with_account) { /* the pairing or confirmation code is a secret like the QR */
        int64_t code_left = api_link_code_expires_in(s, now_ms);
        api_jput_str(g, "linkCode", code_left > 0 ? s->link_code : NULL);
        api_jput_int(g, "linkCodeExpiresIn", code_left);
    }
}

/* {"success":true[,"message":...],"data":{[name,]status...[,key]}}: every
 * answer that carries a session's status. */
static char *status_reply(const sess_snapshot_t *s, const char *message, int with_account,
                          int64_t now_ms, const char *name, const char *key)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    if (message)
        api_jput_str(g, "message", message);
    KEY(g, "data");
    yajl_gen_map_open(g);
    if (name)
        api_jput_str(g, "name", name);
    status_members(g, s, with_account, now_ms);
    if (key)
        api_jput_str(g, "key", key);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_status(const sess_snapshot_t *s, int with_account, int64_t now_ms)
{
    return status_reply(s, NULL, with_account, now_ms, NULL, NULL);
}

char *api_json_event(const sess_snapshot_t *s, int with_account, int64_t now_ms)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    status_members(g, s, with_account, now_ms);
    uint64_t id = sess_snapshot_event_id(s);
    if (id)
        api_jput_int(g, "eventId", (long long)id);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_gap(const sess_snapshot_t *s, int typed)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    if (typed)
        api_jput_str(g, "type", "gap");
    api_jput_int(g, "from", (long long)s->gap_from);
    api_jput_int(g, "to", (long long)s->gap_to);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_qr(const sess_snapshot_t *s, const char *message, int64_t now_ms)
{
    const api_qr_render_t *r = s->qr ? s->qr->rendered : NULL;
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    if (message)
        api_jput_str(g, "message", message);
    KEY(g, "data");
    yajl_gen_map_open(g);
    api_jput_str(g, "qrCode", r ? r->data_url : NULL);
    api_jput_int(g, "expiresIn", sess_snapshot_qr_expires_in(s, now_ms));
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_status_message(const sess_snapshot_t *s, const char *message, int with_account,
                              int64_t now_ms)
{
    return status_reply(s, message, with_account, now_ms, NULL, NULL);
}

char *api_json_passkey(const sess_snapshot_t *s)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    KEY(g, "data");
    yajl_gen_map_open(g);
    KEY(g, "passkeyOptions");
    put_raw_json(g, s->passkey_options ? s->passkey_options : "null");
    api_jput_str(g, "state", sess_state_name(s->state));
    api_jput_str(g, "detail", s->detail);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_pairing_code(const char *code, int expires_in)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    api_jput_str(g, "message", API_PAIRING_CODE_MESSAGE);
    KEY(g, "data");
    yajl_gen_map_open(g);
    api_jput_str(g, "pairingCode", code);
    api_jput_int(g, "expiresIn", expires_in);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_message(const char *message)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    api_jput_str(g, "message", message);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_error(const char *message, const sess_snapshot_t *s)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 0);
    api_jput_str(g, "message", message);
    if (s) {
        api_jput_str(g, "state", sess_state_name(s->state));
        api_jput_str(g, "detail", s->detail);
    }
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

/* Parses a request body that must be one JSON object (NUL bytes refused).
 * Returns the tree (caller frees with yajl_tree_free), or NULL with
 * `malformed` in *why. */
yajl_val api_jparse_object(const char *body, size_t len, const char *malformed, const char **why)
{
    char *text = body ? malloc(len + 1) : NULL;
    if (!text) {
        *why = body ? "Out of memory" : malformed;
        return NULL;
    }
    memcpy(text, body, len);
    text[len] = 0;
    char errbuf[128];
    yajl_val v = memchr(text, 0, len) ? NULL : yajl_tree_parse(text, errbuf, sizeof(errbuf));
    explicit_bzero(text, len);
    free(text);
    if (!v || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        *why = malformed;
        return NULL;
    }
    return v;
}

int api_parse_pairing_code_body(const char *body, size_t len, char out[16], const char **why)
{
    if (!body || !len) {
        *why = "A JSON body {\"phoneNumber\":\"+15551234567\"} is required";
        return -1;
    }
    yajl_val v = api_jparse_object(
        body, len, "Malformed JSON body (expected {\"phoneNumber\":\"+15551234567\"})", why);
    if (!v)
        return -1;
    int rc = -1;
    *why = "phoneNumber is missing";
    for (size_t i = 0; i < v->u.object.len; i++) {
        if (strcmp(v->u.object.keys[i], "phoneNumber"))
            continue;
        yajl_val x = v->u.object.values[i];
        const char *p = YAJL_GET_STRING(x);
        if (!YAJL_IS_STRING(x) || !p) {
            *why = "phoneNumber must be a string";
            rc = -1;
        } else {
            rc = api_normalize_phone(p, strlen(p), out, why);
        }
    }
    yajl_tree_free(v);
    return rc;
}

int api_parse_reconnect_body(const char *body, size_t len, int *keep, unsigned *wait_ms,
                             const char **why)
{
    yajl_val v = api_jparse_object(body, len, "Malformed JSON body (expected an object)", why);
    if (!v)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        if (!strcmp(k, "keepCredentials")) {
            if (!YAJL_IS_TRUE(x) && !YAJL_IS_FALSE(x)) {
                *why = "keepCredentials must be a boolean";
                rc = -1;
            } else {
                *keep = YAJL_IS_TRUE(x);
            }
        } else if (!strcmp(k, "waitMs")) {
            if (!YAJL_IS_INTEGER(x) || YAJL_GET_INTEGER(x) < API_RECONNECT_WAIT_MIN_MS ||
                YAJL_GET_INTEGER(x) > API_RECONNECT_WAIT_MAX_MS) {
                *why = "waitMs must be an integer from 1 to 300000";
                rc = -1;
            } else {
                *wait_ms = (unsigned)YAJL_GET_INTEGER(x);
            }
        }
    }
    yajl_tree_free(v);
    return rc;
}

char *api_json_sessions(sess_snapshot_t *const *v, size_t n, int with_account, int64_t now_ms)
{
    yajl_gen g = api_jgen_new();
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    api_jput_bool(g, "success", 1);
    KEY(g, "data");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        api_jput_str(g, "name", v[i]->session);
        status_members(g, v[i], with_account, now_ms);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    return api_jfinish(g);
}

char *api_json_session_key(const sess_snapshot_t *s, const char *message, const char *key,
                           int64_t now_ms)
{
    return status_reply(s, message, 1, now_ms, s->session, key);
}

int api_parse_session_body(const char *body, size_t len, char name[65], char device[65],
                           const char **why)
{
    name[0] = device[0] = 0;
    yajl_val v =
        api_jparse_object(body, len, "The body must be a JSON object {\"name\":\"sales\"}", why);
    if (!v)
        return -1;
    int rc = -1;
    *why = "\"name\" must be 1 to 64 of a-z, 0-9, '_' and '-'";
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        if (!strcmp(k, "name")) {
            if (!YAJL_IS_STRING(x) || !sess_mgr_name_ok(YAJL_GET_STRING(x)))
                goto out;
            snprintf(name, 65, "%s", YAJL_GET_STRING(x));
        } else if (!strcmp(k, "deviceName")) {
            if (!YAJL_IS_STRING(x) || !sess_mgr_device_name_ok(YAJL_GET_STRING(x))) {
                *why = "\"deviceName\" must be 1 to 64 bytes of text without control characters";
                goto out;
            }
            snprintf(device, 65, "%s", YAJL_GET_STRING(x));
        } else {
            *why = "Unknown member (allowed: \"name\", \"deviceName\")";
            goto out;
        }
    }
    if (!name[0]) {
        *why = "\"name\" is required";
        goto out;
    }
    rc = 0;
out:
    yajl_tree_free(v);
    return rc;
}
