/* Event streams: Server-Sent Events and WebSocket. Each stream holds a
 * session subscription and pulls snapshots from it only when its socket
 * can take more, so a slow client coalesces instead of growing a buffer;
 * each event is rendered once per snapshot and shared by every stream that
 * sends it; one server-wide timer sends heartbeats to all of them.
 *
 * Resuming: a stream opens after the cursor api_resume_cursor finds in
 * Last-Event-ID or ?since=. The SSE id of an event is the session's seq on
 * a stream of one session, and on a stream of every session the highest
 * event id the stream has sent (its cursor: the current states a stream
 * starts with are not in event id order), so that the id an EventSource
 * sends back when it reconnects resumes exactly after what it received.
 * Events no longer kept are announced before the first snapshot after them:
 * "event: gap" (its id the last event missed) or a {"type":"gap"} WebSocket
 * message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/http_internal.h"

#define WS_MAX_QUEUED WSC_MAX_QUEUED
#define SSE_BATCH 64
/* The queue of a stream of every session: this plus two per session. */
#define ALL_QUEUE_MIN 256

typedef enum { STREAM_SSE, STREAM_WS } stream_kind_t;

struct http_stream {
    http_server_t *srv;
    stream_kind_t kind;
    sess_sub_t *sub;
    int with_account;
    char session[65];  /* the session streamed; "" = every session */
    uint64_t last_seq; /* one session: the last seq sent (never sent twice) */
    uint64_t cursor;   /* every session: the highest event id sent (SSE id) */
    /* SSE */
    h2o_generator_t gen;
    h2o_req_t *req;
    int inflight;
    char *sendbuf;           /* bytes h2o is sending (several events), or NULL */
    http_event_blob_t *held; /* the one shared event h2o is sending, or NULL */
    uint64_t inflight_since; /* loop time of the send h2o has not taken yet */
    /* WebSocket */
    h2o_websocket_conn_t *ws;
    uint64_t ws_writing_since; /* loop time the socket write got stuck, 0 = not stuck */
    int busy;                  /* inside h2o_websocket_proceed (see ws_flush) */
    int dead;                  /* the connection closed while busy: free when done */
    int closing;               /* its connection is being closed by a limit */
    int ended;                 /* the subscription ended; the final bytes were queued */
    int in_dirty;
    http_stream_t *prev, *next, *dirty_next;
};

static void stream_link(http_server_t *srv, http_stream_t *st)
{
    st->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = st;
    srv->streams = st;
    srv->nstreams++;
}

static void stream_unlink(http_server_t *srv, http_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        srv->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    srv->nstreams--;
    if (st->in_dirty) {
        for (http_stream_t **pp = &srv->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == st) {
                *pp = st->dirty_next;
                break;
            }
    }
}

static void blob_unref(http_event_blob_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}

/* A new blob (one reference): the SSE event "id: <id>\nevent: <type>\n
 * data: <json>\n\n". NULL when out of memory. */
static http_event_blob_t *blob_new(uint64_t id, const char *type, const char *json, size_t jl)
{
    char head[80];
    int hl =
        snprintf(head, sizeof(head), "id: %llu\nevent: %s\ndata: ", (unsigned long long)id, type);
    http_event_blob_t *b = malloc(sizeof(*b) + (size_t)hl + jl + 3);
    if (!b)
        return NULL;
    b->refs = 1;
    memcpy(b->data, head, (size_t)hl);
    memcpy(b->data + hl, json, jl);
    memcpy(b->data + hl + jl, "\n\n", 3);
    b->json_off = (size_t)hl;
    b->json_len = jl;
    b->len = (size_t)hl + jl + 2;
    return b;
}

/* The event for `snap` as a stream with(out) the account sees it now, its
 * SSE id the snapshot's seq or (by_event_id) its event id, rendered once
 * per (snapshot, account visibility, id kind, second of QR countdown) and
 * shared; a new reference, or NULL when out of memory. Loop thread. */
static http_event_blob_t *event_get(http_server_t *srv, sess_snapshot_t *snap, int with_account,
                                    int by_event_id)
{
    int64_t now_ms = sess_now_ms();
    long long left = sess_snapshot_qr_expires_in(snap, now_ms);
    long long code_left = api_link_code_expires_in(snap, now_ms);
    uint64_t event_id = sess_snapshot_event_id(snap);
    http_event_cache_t *c =
        &http_cache_slot(srv, snap)->events[(with_account ? 1 : 0) + (by_event_id ? 2 : 0)];
    if (c->blob && c->snap == snap && c->left_s == left && c->code_s == code_left &&
        c->event_id == event_id) {
        c->blob->refs++;
        return c->blob;
    }
    char *json = api_json_event(snap, with_account, now_ms);
    if (!json)
        return NULL;
    http_event_blob_t *b =
        blob_new(by_event_id ? event_id : snap->seq, "status", json, strlen(json));
    free(json);
    if (!b)
        return NULL;
    b->refs = 2; /* the cache's and the caller's */
    blob_unref(c->blob);
    sess_snapshot_unref(c->snap);
    c->blob = b;
    c->snap = sess_snapshot_ref(snap);
    c->left_s = left;
    c->code_s = code_left;
    c->event_id = event_id;
    return b;
}

void http_event_cache_clear(http_server_t *srv)
{
    for (size_t k = 0; k < HTTP_CACHE_SLOTS; k++)
        for (int i = 0; i < 4; i++) {
            http_event_cache_t *c = &srv->caches[k].events[i];
            blob_unref(c->blob);
            sess_snapshot_unref(c->snap);
            c->blob = NULL;
            c->snap = NULL;
        }
}

/* h2o is done with what the stream sent: drop it. */
static void stream_sent(http_stream_t *st)
{
    free(st->sendbuf);
    st->sendbuf = NULL;
    blob_unref(st->held);
    st->held = NULL;
}

static void stream_free(http_stream_t *st)
{
    http_server_t *srv = st->srv;
    stream_unlink(srv, st);
    sess_unsubscribe(st->sub);
    metrics_subscribers(srv->opts.metrics, st->kind == STREAM_SSE ? "sse" : "websocket", -1);
    stream_sent(st);
    free(st);
}

/* Called by the subscription when snapshots are queued (loop thread). */
static void stream_notify(void *arg)
{
    http_stream_t *st = arg;
    if (st->in_dirty)
        return;
    st->in_dirty = 1;
    st->dirty_next = st->srv->dirty;
    st->srv->dirty = st;
    uv_async_send(&st->srv->flush);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static int sbuf_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return -1;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
    return 0;
}

static void ws_send_text(http_stream_t *st, const char *s, size_t n)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)s, n};
    wslay_event_queue_msg(st->ws->ws_ctx, &msg);
}

/* Runs h2o's WebSocket I/O for a stream. Nothing may run before the upgrade
 * has completed: h2o attaches the socket only then (h2o_websocket_proceed
 * would dereference NULL), and flushes what was queued meanwhile itself.
 * h2o may close the connection from here, which ends the stream: returns 0
 * when `st` is still alive, -1 when it has been freed. */
static int ws_flush(http_stream_t *st)
{
    if (!st->ws || !st->ws->sock)
        return 0;
    st->busy++;
    h2o_websocket_proceed(st->ws);
    st->busy--;
    if (st->dead && !st->busy) {
        stream_free(st);
        return -1;
    }
    return 0;
}

/* The SSE "event: gap" of a resumed stream's first snapshot: its id is
 * the last event missed (an EventSource that reconnects now is not told
 * of the gap again), or the stream's cursor when that is higher. A new
 * blob, or NULL when out of memory. */
static http_event_blob_t *gap_blob(http_stream_t *st, const sess_snapshot_t *snap)
{
    char *json = api_json_gap(snap, st->kind == STREAM_WS);
    if (!json)
        return NULL;
    uint64_t id = snap->gap_to;
    if (!st->session[0]) {
        if (st->cursor < id)
            st->cursor = id;
        id = st->cursor;
    }
    http_event_blob_t *b = blob_new(id, "gap", json, strlen(json));
    free(json);
    return b;
}

/* The event of `snap` for this stream (a new reference), or NULL when it
 * is not to be sent (a seq already sent) or memory runs out. On a stream
 * of every session the SSE id is the stream's cursor: the shared rendering
 * when the event's id is the cursor, a copy with the cursor otherwise. */
static http_event_blob_t *stream_event(http_stream_t *st, sess_snapshot_t *snap)
{
    if (st->session[0]) {
        /* never the same seq twice, whatever the seam between the stored
         * events and the live ones does */
        if (st->last_seq && snap->seq <= st->last_seq)
            return NULL;
        st->last_seq = snap->seq;
        return event_get(st->srv, snap, st->with_account, 0);
    }
    http_event_blob_t *ev = event_get(st->srv, snap, st->with_account, 1);
    uint64_t id = sess_snapshot_event_id(snap);
    if (st->cursor < id)
        st->cursor = id;
    if (!ev || st->kind == STREAM_WS || id == st->cursor)
        return ev;
    http_event_blob_t *own = blob_new(st->cursor, "status", ev->data + ev->json_off, ev->json_len);
    blob_unref(ev);
    return own;
}

/* Moves queued snapshots to the socket when it can take them. The common
 * case, one new event, sends the shared rendering without copying it. */
static void stream_pump(http_stream_t *st, int flush_ws)
{
    if (st->ended || st->dead || (st->kind == STREAM_WS && !st->ws))
        return;
    if (st->kind == STREAM_SSE && (st->inflight || !st->req))
        return;
    if (st->kind == STREAM_WS && wslay_event_get_queued_msg_count(st->ws->ws_ctx) >= WS_MAX_QUEUED)
        return;
    sbuf_t b = {0};
    http_event_blob_t *one = NULL;
    sess_snapshot_t *snap;
    int rc = SESS_SUB_EMPTY, n = 0;
    while (n < SSE_BATCH && (rc = sess_sub_next(st->sub, &snap)) == SESS_SUB_OK) {
        http_event_blob_t *pieces[2] = {NULL, NULL};
        if (snap->gap_to) /* events no longer kept: said before the snapshot */
            pieces[0] = gap_blob(st, snap);
        pieces[1] = stream_event(st, snap);
        sess_snapshot_unref(snap);
        n++;
        for (int k = 0; k < 2; k++) {
            http_event_blob_t *ev = pieces[k];
            if (!ev)
                continue;
            if (st->kind == STREAM_WS) {
                ws_send_text(st, ev->data + ev->json_off, ev->json_len); /* wslay copies */
                blob_unref(ev);
            } else if (!one && b.len == 0) {
                one = ev;
            } else {
                if (one) { /* a second event: from now on, copy */
                    sbuf_add(&b, one->data, one->len);
                    blob_unref(one);
                    one = NULL;
                }
                sbuf_add(&b, ev->data, ev->len);
                blob_unref(ev);
            }
        }
    }
    if (rc == SESS_SUB_ENDED)
        st->ended = 1;
    if (st->kind == STREAM_WS) {
        if (st->ended) {
            struct wslay_event_msg m = {WSLAY_CONNECTION_CLOSE, (const uint8_t *)"\x03\xe9", 2};
            wslay_event_queue_msg(st->ws->ws_ctx, &m); /* 1001 going away */
        }
        if (n > 0 || st->ended || flush_ws)
            ws_flush(st); /* may free st */
        return;
    }
    if (!one && b.len == 0 && !st->ended) {
        free(b.buf);
        return;
    }
    stream_sent(st);
    h2o_iovec_t iov;
    if (one) {
        st->held = one;
        iov = h2o_iovec_init(one->data, one->len);
    } else {
        st->sendbuf = b.buf;
        iov = h2o_iovec_init(b.buf ? b.buf : "", b.len);
    }
    st->inflight = 1;
    st->inflight_since = uv_now(st->srv->loop);
    h2o_send(st->req, &iov, 1, st->ended ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

void http_on_flush(uv_async_t *a)
{
    http_server_t *srv = a->data;
    while (srv->dirty) {
        http_stream_t *st = srv->dirty;
        srv->dirty = st->dirty_next;
        st->in_dirty = 0;
        stream_pump(st, 0);
    }
}

void http_on_heartbeat(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    http_stream_t *next;
    for (http_stream_t *st = srv->streams; st; st = next) {
        next = st->next;
        if (st->ended)
            continue;
        if (st->kind == STREAM_SSE) {
            if (st->inflight || !st->req)
                continue;
            stream_sent(st);
            static const char hb[] = ": heartbeat\n\n";
            h2o_iovec_t iov = h2o_iovec_init(hb, sizeof(hb) - 1);
            st->inflight = 1;
            st->inflight_since = uv_now(st->srv->loop);
            h2o_send(st->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
        } else {
            struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"hb", 2};
            if (wslay_event_get_queued_msg_count(st->ws->ws_ctx) < WS_MAX_QUEUED)
                wslay_event_queue_msg(st->ws->ws_ctx, &m);
            stream_pump(st, 1); /* also retries a stream held back by a full queue */
        }
    }
}

static void sse_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    http_stream_t *st = H2O_STRUCT_FROM_MEMBER(http_stream_t, gen, gen);
    st->inflight = 0;
    stream_sent(st);
    if (st->srv->stopping && !st->ended) { /* it was busy when the server stopped */
        st->ended = 1;
        st->inflight = 1;
        st->inflight_since = uv_now(st->srv->loop);
        h2o_iovec_t iov = h2o_iovec_init("", 0);
        h2o_send(st->req, &iov, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    stream_pump(st, 0);
}

static void sse_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    http_stream_t *st = H2O_STRUCT_FROM_MEMBER(http_stream_t, gen, gen);
    st->ended = 1;
}

/* Lives in the request's pool; its dispose runs when the request is gone. */
typedef struct {
    http_stream_t *st;
} sse_anchor_t;

static void sse_dispose(void *p)
{
    sse_anchor_t *a = p;
    if (a->st)
        stream_free(a->st);
}

/* A stream of session `session`, or of every session when NULL, resuming
 * after `since` (0: the current state first). Returns NULL with *code set
 * (API_ERR_NOT_FOUND, API_ERR_INTERNAL). */
static http_stream_t *stream_new(http_server_t *srv, stream_kind_t kind, const char *session,
                                 int with_account, uint64_t since, api_code_t *code)
{
    http_stream_t *st = calloc(1, sizeof(*st));
    if (!st) {
        *code = API_ERR_INTERNAL;
        return NULL;
    }
    st->srv = srv;
    st->kind = kind;
    st->with_account = with_account;
    if (session)
        snprintf(st->session, sizeof(st->session), "%s", session);
    sess_sub_opts_t o = {
        .notify = stream_notify, .arg = st, .max_queue = 64, .policy = SESS_SLOW_COALESCE};
    /* link first: the subscription notifies at once with the current state */
    stream_link(srv, st);
    if (session) {
        st->sub = api_watch_since(srv->opts.api, session, since, &o, code);
    } else {
        /* every session's current state first, then every change: coalescing
         * would drop other sessions' states, so a client that falls that far
         * behind is ended instead (it reconnects and starts from the current
         * states again) */
        o.max_queue = ALL_QUEUE_MIN + 2 * sess_registry_count(api_registry(srv->opts.api));
        o.policy = SESS_SLOW_DISCONNECT;
        st->cursor = since;
        st->sub = api_watch_all_since(srv->opts.api, since, &o, code);
    }
    if (!st->sub) {
        stream_unlink(srv, st);
        free(st);
        return NULL;
    }
    metrics_subscribers(srv->opts.metrics, kind == STREAM_SSE ? "sse" : "websocket", +1);
    return st;
}

static void on_ws_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    http_stream_t *st = conn->data;
    if (arg == NULL) { /* closed, failed, or the upgrade failed */
        h2o_websocket_close(conn);
        if (st) {
            st->ws = NULL;
            if (st->busy)
                st->dead = 1; /* http_ws_flush frees it */
            else
                stream_free(st);
        }
        return;
    }
    if (!st)
        return;
    wsc_action_t act = wsc_on_message(conn->ws_ctx, arg);
    if (act == WSC_CLOSE_UNREAD) {
        /* it keeps sending (pings, which wslay answers with pongs) without
         * reading the answers: stop reading it and close it, instead of
         * queueing answers without bound */
        wslay_event_shutdown_read(conn->ws_ctx);
        if (!st->closing) {
            st->closing = 1;
            http_force_close_sock(st->srv, conn->sock, METRICS_LIMIT_WS_UNREAD);
        }
        return;
    }
    /* Clients have nothing to say; a text "ping" gets the current state of
     * the stream's session (nothing on a stream of every session). */
    if (act == WSC_SEND_STATE && st->session[0]) {
        api_result_t r = api_status(st->srv->opts.api, st->session);
        char *json = r.snap ? api_json_event(r.snap, st->with_account, sess_now_ms()) : NULL;
        if (json)
            ws_send_text(st, json, strlen(json));
        free(json);
        api_result_clear(&r);
    }
}

/* Counts messages refused for their size (wslay closes them with 1009 as
 * soon as the frame header declares a size over the limit). */
static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)ctx;
    h2o_websocket_conn_t *conn = user;
    http_stream_t *st = conn->data;
    if (st && arg->payload_length > WSC_MAX_MESSAGE)
        metrics_limit(st->srv->opts.metrics, METRICS_LIMIT_WS_MESSAGE);
}

/* Bounds what a WebSocket client may send (see wsclient.h). */
static void ws_limit(h2o_websocket_conn_t *ws)
{
    struct wslay_event_callbacks cbs = ws->ws_callbacks;
    cbs.on_frame_recv_start_callback = ws_on_frame_start;
    wslay_event_config_set_callbacks(ws->ws_ctx, &cbs);
    wsc_limit(ws->ws_ctx);
}

int http_stream_open(http_server_t *srv, h2o_req_t *req, const char *session, int with_account)
{
    const char *client_key;
    int is_ws = h2o_is_websocket_handshake(req, &client_key) == 0 && client_key != NULL;
    if (srv->stopping) {
        http_send_error(srv, req, METRICS_ROUTE_EVENTS, API_ERR_SHUTTING_DOWN, NULL, NULL);
        return 0;
    }
    /* where it resumes: Last-Event-ID (what an EventSource sends when it
     * reconnects) wins over ?since= (see api_resume_cursor) */
    h2o_iovec_t lei = {NULL, 0}, q = {NULL, 0};
    int has_lei = http_header_value(req, "last-event-id", &lei);
    int has_q = http_query_param(req, "since", &q);
    uint64_t since = 0;
    if (api_resume_cursor(has_lei ? lei.base : NULL, lei.len, has_q ? q.base : NULL, q.len,
                          &since) != API_OK) {
        http_send_error(srv, req, METRICS_ROUTE_EVENTS, API_ERR_BAD_REQUEST, API_BAD_SINCE_MESSAGE,
                        NULL);
        return 0;
    }
    api_code_t code = API_ERR_INTERNAL;
    http_stream_t *st =
        stream_new(srv, is_ws ? STREAM_WS : STREAM_SSE, session, with_account, since, &code);
    if (!st) {
        http_send_error(srv, req, METRICS_ROUTE_EVENTS, code, NULL, NULL);
        return 0;
    }
    http_count(srv, METRICS_ROUTE_EVENTS, is_ws ? 101 : 200);
    if (is_ws) {
        st->ws = h2o_upgrade_to_websocket(req, client_key, st, on_ws_message);
        ws_limit(st->ws);
        return 0;
    }
    st->req = req;
    st->gen.proceed = sse_proceed;
    st->gen.stop = sse_stop;
    sse_anchor_t *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), sse_dispose);
    a->st = st;
    req->res.status = 200;
    req->res.reason = "OK";
    http_add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream");
    http_add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    http_add_header_str(req, "x-accel-buffering", "no");
    h2o_start_response(req, &st->gen);
    /* the retry hint first; the current snapshot follows from the flush */
    static const char hello[] = "retry: 3000\n\n";
    h2o_iovec_t iov = h2o_iovec_init(hello, sizeof(hello) - 1);
    st->inflight = 1;
    st->inflight_since = uv_now(st->srv->loop);
    h2o_send(req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

void http_streams_sweep(http_server_t *srv, uint64_t now, uint64_t limit)
{
    for (http_stream_t *st = srv->streams; st; st = st->next) {
        if (st->closing)
            continue;
        if (st->kind == STREAM_SSE) {
            if (st->inflight && st->req && now - st->inflight_since > limit) {
                st->closing = 1;
                http_force_close_req(srv, st->req, METRICS_LIMIT_STALLED);
            }
        } else if (st->ws && st->ws->sock) {
            if (!h2o_socket_is_writing(st->ws->sock)) {
                st->ws_writing_since = 0;
            } else if (!st->ws_writing_since) {
                st->ws_writing_since = now;
            } else if (now - st->ws_writing_since > limit) {
                st->closing = 1;
                http_force_close_sock(srv, st->ws->sock, METRICS_LIMIT_STALLED);
            }
        }
    }
}

void http_streams_end(http_server_t *srv)
{
    http_stream_t *next;
    for (http_stream_t *st = srv->streams; st; st = next) {
        next = st->next;
        if (st->ended)
            continue;
        if (st->kind == STREAM_SSE) {
            if (!st->inflight && st->req) {
                st->ended = 1;
                st->inflight = 1;
                st->inflight_since = uv_now(st->srv->loop);
                h2o_iovec_t iov = h2o_iovec_init("", 0);
                h2o_send(st->req, &iov, 1, H2O_SEND_STATE_FINAL);
            }
        } else if (st->ws) {
            st->ended = 1;
            struct wslay_event_msg m = {WSLAY_CONNECTION_CLOSE, (const uint8_t *)"\x03\xe9", 2};
            wslay_event_queue_msg(st->ws->ws_ctx, &m);
            ws_flush(st); /* may free st */
        }
    }
}
