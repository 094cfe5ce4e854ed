/* What the HTTP server accepts from its WebSocket clients (the event
 * stream's /ws and /events upgrades). Clients have nothing to say but a
 * text "ping" (answered with the current state); this module bounds the
 * rest: the size of a message, and how much a client that sends without
 * reading may make the server queue. Kept apart from server/http/ so that
 * tests/fuzz/fuzz_ws_client.c can drive it with wslay alone. */
#ifndef WG_SERVER_WSCLIENT_H
#define WG_SERVER_WSCLIENT_H

#include <stddef.h>

#include <wslay/wslay.h>

/* Largest message accepted; a frame declaring more is closed with 1009
 * (wslay checks the declared length as soon as the frame's payload starts
 * to arrive, before buffering it). */
#define WSC_MAX_MESSAGE 4096
/* Events queued to a client at most; more wait in its subscription. */
#define WSC_MAX_QUEUED 16
/* A client whose queued answers (pongs, state replies, events) exceed this
 * does not read: it is closed. */
#define WSC_MAX_UNREAD 64
#define WSC_MAX_UNREAD_BYTES (64 * 1024)

typedef enum {
    WSC_IGNORE = 0,   /* nothing to do */
    WSC_SEND_STATE,   /* a text "ping": queue the current state */
    WSC_CLOSE_UNREAD, /* the client does not read its answers: close it */
} wsc_action_t;

/* Applies the limits to a server-side wslay context (message size). */
void wsc_limit(wslay_event_context_ptr ctx);

/* Decides what to do with a message `arg` just received on `ctx` (wslay
 * has already queued the pong of a ping). */
wsc_action_t wsc_on_message(wslay_event_context_ptr ctx,
                            const struct wslay_event_on_msg_recv_arg *arg);

#endif
