/* Protobuf views of the gRPC API (see pb.h): snapshots to Status and QRCode
 * messages, the replies with their messages, and error details. */
#include "api/pb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_pb_sees_account(api_scope_t scope)
{
    return scope != API_SCOPE_NONE;
}

static Wagateway__V1__State state_of(sess_state_t s)
{
    switch (s) {
    case SESS_DISCONNECTED:
        return WAGATEWAY__V1__STATE__DISCONNECTED;
    case SESS_CONNECTING:
        return WAGATEWAY__V1__STATE__CONNECTING;
    case SESS_QR_READY:
        return WAGATEWAY__V1__STATE__QR_READY;
    case SESS_CONNECTED:
        return WAGATEWAY__V1__STATE__CONNECTED;
    }
    return WAGATEWAY__V1__STATE__DISCONNECTED;
}

static char *str(const char *s)
{
    return (char *)(s ? s : "");
}

void api_pb_status(api_pb_status_t *v, const sess_snapshot_t *s, api_scope_t scope, int64_t now_ms)
{
    Wagateway__V1__Status *st = &v->st;
    Wagateway__V1__LinkedAccount *acc = &v->acc;
    int with_account = api_pb_sees_account(scope);
    wagateway__v1__status__init(st);
    wagateway__v1__linked_account__init(acc);
    st->session = str(s->session);
    st->state = state_of(s->state);
    st->connected = s->state == SESS_CONNECTED;
    st->has_qr = sess_snapshot_qr_remaining_ms(s, now_ms) > 0;
    st->detail = str(s->detail);
    st->since_unix_ms = s->since_ms;
    st->qr_expires_in = (int32_t)sess_snapshot_qr_expires_in(s, now_ms);
    st->seq = s->seq;
    st->changed_unix_ms = s->changed_ms;
    st->event_id = sess_snapshot_event_id(s);
    st->gap_from = s->gap_from;
    st->gap_to = s->gap_to;
    if (with_account && s->passkey_options)
        st->passkey_options_json = (char *)s->passkey_options;
    if (with_account && s->linked) {
        acc->jid = str(s->account.jid);
        acc->lid = str(s->account.lid);
        acc->phone = str(s->account.phone);
        acc->push_name = str(s->account.push_name);
        acc->platform = str(s->account.platform);
        acc->business_name = str(s->account.business_name);
        st->account = acc;
    }
    int64_t code_left = with_account ? api_link_code_expires_in(s, now_ms) : 0;
    if (code_left > 0) { /* a secret like the QR: key holders only */
        st->link_code = (char *)s->link_code;
        st->link_code_expires_in = (int32_t)code_left;
    }
}

void api_pb_qr(Wagateway__V1__QRCode *q, const sess_snapshot_t *s, int64_t now_ms)
{
    wagateway__v1__qrcode__init(q);
    const api_qr_render_t *r = s->qr ? s->qr->rendered : NULL;
    q->qr = s->qr ? s->qr->text : "";
    if (r) {
        q->png.data = r->png;
        q->png.len = r->png_len;
        q->data_url = r->data_url;
    }
    q->expires_in = (int32_t)sess_snapshot_qr_expires_in(s, now_ms);
}

void api_pb_reconnect(api_pb_reconnect_t *v, const api_result_t *r, int64_t now_ms)
{
    const sess_snapshot_t *s = r->snap;
    wagateway__v1__reconnect_reply__init(&v->rep);
    v->rep.message = str(r->message ? r->message : "WhatsApp reconnection initiated");
    api_pb_status(&v->status, s, API_SCOPE_NONE, now_ms);
    v->rep.status = &v->status.st;
    if (s->state == SESS_QR_READY && s->qr) {
        api_pb_qr(&v->qr, s, now_ms);
        v->rep.qr = &v->qr;
    }
}

void api_pb_logout(api_pb_logout_t *v, const api_result_t *r, int64_t now_ms)
{
    wagateway__v1__logout_reply__init(&v->rep);
    v->rep.message = str(r->message ? r->message : "Logged out");
    api_pb_status(&v->status, r->snap, API_SCOPE_NONE, now_ms);
    v->rep.status = &v->status.st;
}

void api_pb_pairing_code(Wagateway__V1__PairingCodeReply *rep, const char *code, int expires_in)
{
    wagateway__v1__pairing_code_reply__init(rep);
    rep->message = API_PAIRING_CODE_MESSAGE;
    rep->pairing_code = str(code);
    rep->expires_in = expires_in;
}

void api_pb_passkey_options(Wagateway__V1__PasskeyOptions *o, const sess_snapshot_t *s)
{
    wagateway__v1__passkey_options__init(o);
    o->options_json = str(s->passkey_options);
}

void api_pb_passkey(api_pb_passkey_t *v, const api_result_t *r, api_scope_t scope, int64_t now_ms)
{
    wagateway__v1__passkey_assertion_reply__init(&v->rep);
    v->rep.message = str(r->message ? r->message : "Passkey accepted");
    api_pb_status(&v->status, r->snap, scope, now_ms);
    v->rep.status = &v->status.st;
}

/* --- sessions --- */

void api_pb_create_session(api_pb_create_session_t *v, const api_result_t *r, const char *key,
                           int64_t now_ms)
{
    wagateway__v1__create_session_reply__init(&v->rep);
    v->rep.message = str(r->message ? r->message : "Session created");
    api_pb_status(&v->status, r->snap, API_SCOPE_ADMIN, now_ms);
    v->rep.status = &v->status.st;
    v->rep.key = str(key);
}

void api_pb_rotate_key(api_pb_rotate_key_t *v, const api_result_t *r, const char *key,
                       api_scope_t scope, int64_t now_ms)
{
    wagateway__v1__rotate_session_key_reply__init(&v->rep);
    v->rep.message = str(r->message ? r->message : "New session key");
    api_pb_status(&v->status, r->snap, scope, now_ms);
    v->rep.status = &v->status.st;
    v->rep.key = str(key);
}

void api_pb_delete_session(Wagateway__V1__DeleteSessionReply *rep, const api_result_t *r)
{
    wagateway__v1__delete_session_reply__init(rep);
    rep->message = str(r->message ? r->message : "Session deleted");
}

int api_pb_state_filter(int state, const char **name)
{
    static const struct {
        Wagateway__V1__State pb;
        sess_state_t st;
    } states[] = {
        {WAGATEWAY__V1__STATE__DISCONNECTED, SESS_DISCONNECTED},
        {WAGATEWAY__V1__STATE__CONNECTING, SESS_CONNECTING},
        {WAGATEWAY__V1__STATE__QR_READY, SESS_QR_READY},
        {WAGATEWAY__V1__STATE__CONNECTED, SESS_CONNECTED},
    };
    if (state == WAGATEWAY__V1__STATE__STATE_UNSPECIFIED) {
        *name = NULL;
        return 0;
    }
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if ((int)states[i].pb == state) {
            *name = sess_state_name(states[i].st);
            return 0;
        }
    return -1;
}

int api_pb_sessions(api_pb_sessions_t *v, sess_snapshot_t *const *snaps, size_t n,
                    api_scope_t scope, int64_t now_ms)
{
    wagateway__v1__list_sessions_reply__init(&v->rep);
    v->status = calloc(n ? n : 1, sizeof(*v->status));
    v->list = calloc(n ? n : 1, sizeof(*v->list));
    if (!v->status || !v->list) {
        api_pb_sessions_clear(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        api_pb_status(&v->status[i], snaps[i], scope, now_ms);
        v->list[i] = &v->status[i].st;
    }
    v->rep.n_sessions = n;
    v->rep.sessions = v->list;
    return 0;
}

void api_pb_sessions_clear(api_pb_sessions_t *v)
{
    free(v->status);
    free(v->list);
    v->status = NULL;
    v->list = NULL;
    v->rep.n_sessions = 0;
    v->rep.sessions = NULL;
}

api_result_t api_pb_stream_end(api_t *api, const char *session)
{
    api_result_t r = {API_ERR_SHUTTING_DOWN, "server shutting down", NULL};
    if (session) {
        api_result_t st = api_status(api, session);
        if (st.code == API_ERR_NOT_FOUND) {
            r.code = API_ERR_NOT_FOUND;
            r.message = "The session was deleted";
        }
        api_result_clear(&st);
    }
    return r;
}

const char *api_pb_error(const api_result_t *r, char *buf, size_t len)
{
    const sess_snapshot_t *s = r->snap;
    if (r->code == API_ERR_NO_QR && s && !r->message)
        snprintf(buf, len, "no QR code in state %s%s%s", sess_state_name(s->state),
                 s->detail[0] ? " / " : "", s->detail);
    else if (!r->message && s && s->detail[0])
        snprintf(buf, len, "%s: %s", api_code_message(r->code), s->detail);
    else
        snprintf(buf, len, "%s", r->message ? r->message : api_code_message(r->code));
    return buf;
}

/* --- webhooks --- */

void api_pb_webhook(api_pb_webhook_t *v, const wh_target_info_t *t)
{
    wagateway__v1__webhook__init(&v->w);
    v->w.id = (char *)t->id;
    v->w.url = (char *)t->url;
    v->w.session = (char *)t->session;
    v->w.created_at_unix = t->created_at;
    v->w.delivered = t->delivered;
    v->w.failed = t->failed;
    v->w.dead = t->dead;
    v->w.retrying = t->retrying != 0;
    v->w.oldest_pending_seconds = t->oldest_pending_ms / 1000;
    v->w.last_error = (char *)t->last_error;
    snprintf(v->buf, sizeof(v->buf), "%s", t->events);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(v->buf, " ", &save); tok && n < WH_EVENTS_MAX;
         tok = strtok_r(NULL, " ", &save))
        v->events[n++] = tok;
    v->w.n_events = n;
    v->w.events = v->events;
}

int api_pb_webhooks(api_pb_webhooks_t *v, const wh_target_info_t *t, size_t n)
{
    wagateway__v1__list_webhooks_reply__init(&v->rep);
    v->items = calloc(n ? n : 1, sizeof(*v->items));
    v->list = calloc(n ? n : 1, sizeof(*v->list));
    if (!v->items || !v->list) {
        api_pb_webhooks_clear(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        api_pb_webhook(&v->items[i], &t[i]);
        v->list[i] = &v->items[i].w;
    }
    v->rep.n_webhooks = n;
    v->rep.webhooks = v->list;
    return 0;
}

void api_pb_webhooks_clear(api_pb_webhooks_t *v)
{
    free(v->items);
    free(v->list);
    v->items = NULL;
    v->list = NULL;
    v->rep.n_webhooks = 0;
    v->rep.webhooks = NULL;
}

void api_pb_webhook_test(Wagateway__V1__TestWebhookReply *rep, const wh_test_result_t *r)
{
    wagateway__v1__test_webhook_reply__init(rep);
    rep->message = (char *)(!r->answered   ? "Test event queued; no answer from the target yet"
                            : r->delivered ? "Test event delivered"
                                           : "Test event not delivered (it will be retried)");
    rep->answered = r->answered != 0;
    rep->delivered = r->delivered != 0;
    rep->status = (int32_t)r->status;
    rep->error = (char *)(r->error ? r->error : "");
    rep->event_id = r->event_id;
}
