/* libFuzzer target for what WebSocket clients send to the HTTP server:
 * the bytes after the upgrade go through a server-side wslay context set
 * up as server/http/streams.c sets it up (wsc_limit) and every message through
 * wsc_on_message, answering "ping" as the server does and never reading
 * what it queues (a client that does not read). The first byte sets how
 * the input is cut into reads. Traps when a message over WSC_MAX_MESSAGE
 * is delivered or the queue of answers grows past the unread bound without
 * the client being closed; nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "server/wsclient.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

typedef struct {
    const uint8_t *data;
    size_t len, pos, chunk;
    int closed; /* the server decided to close the client */
} input_t;

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    input_t *in = user;
    if (in->pos >= in->len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = in->len - in->pos;
    if (n > in->chunk)
        n = in->chunk;
    if (n > len)
        n = len;
    memcpy(buf, in->data + in->pos, n);
    in->pos += n;
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ctx;
    (void)data;
    (void)flags;
    (void)user;
    /* the client never reads: nothing can be written */
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    (void)len;
    return -1;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    input_t *in = user;
    check(arg->msg_length <= WSC_MAX_MESSAGE);
    if (in->closed)
        return;
    switch (wsc_on_message(ctx, arg)) {
    case WSC_CLOSE_UNREAD:
        in->closed = 1;
        wslay_event_shutdown_read(ctx);
        break;
    case WSC_SEND_STATE: {
        static const char state[] = "{\"state\":\"QR_READY\"}";
        struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)state, sizeof(state) - 1};
        wslay_event_queue_msg(ctx, &m);
        break;
    }
    case WSC_IGNORE:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    input_t in = {data + 1, size - 1, 0, (size_t)(data[0] % 64) + 1, 0};
    struct wslay_event_callbacks cbs = {on_recv, on_send, NULL, NULL, NULL, NULL, on_msg};
    wslay_event_context_ptr ctx;
    check(wslay_event_context_server_init(&ctx, &cbs, &in) == 0);
    wsc_limit(ctx);
    /* read until the input is gone or the server stops reading */
    for (int i = 0; i < 100000 && in.pos < in.len && wslay_event_want_read(ctx); i++) {
        if (wslay_event_recv(ctx) != 0)
            break;
        wslay_event_send(ctx);
    }
    /* the answers of a client that does not read stay bounded (a pong and
     * the close frame may be queued after the decision to close) */
    check(wslay_event_get_queued_msg_count(ctx) <= WSC_MAX_UNREAD + 3);
    wslay_event_context_free(ctx);
    return 0;
}
