/* Limits on what WebSocket clients send (see wsclient.h). */
#include "server/wsclient.h"

#include <string.h>

void wsc_limit(wslay_event_context_ptr ctx)
{
    wslay_event_config_set_max_recv_msg_length(ctx, WSC_MAX_MESSAGE);
}

wsc_action_t wsc_on_message(wslay_event_context_ptr ctx,
                            const struct wslay_event_on_msg_recv_arg *arg)
{
    if (wslay_event_get_queued_msg_count(ctx) > WSC_MAX_UNREAD ||
        wslay_event_get_queued_msg_length(ctx) > WSC_MAX_UNREAD_BYTES)
        return WSC_CLOSE_UNREAD;
    if (arg->opcode == WSLAY_TEXT_FRAME && arg->msg_length == 4 && !memcmp(arg->msg, "ping", 4) &&
        wslay_event_get_queued_msg_count(ctx) < WSC_MAX_QUEUED)
        return WSC_SEND_STATE;
    return WSC_IGNORE;
}
