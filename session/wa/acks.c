/* Acknowledgements (protocol doc 6.6 and 11.4), as whatsmeow's sendAck:
 * every stanza of a class WhatsApp expects acknowledged gets
 * <ack id= to=<from> class=<tag> [participant=] [recipient=] [type=]/>, with
 * `type` copied except for messages. Unacknowledged stanzas come back on
 * every reconnect. */
#include <string.h>

#include "session/wa/client_internal.h"

/* The classes acked, and whether `type` is copied into the ack. */
static const struct {
    const char *tag;
    int copy_type;
} acked[] = {
    {"message", 0}, {"receipt", 1}, {"notification", 1}, {"call", 1}, {"status", 1}, {"appdata", 1},
};

int wa_client_ack(wa_client_t *c, const wa_node_t *n)
{
    const char *id = wa_node_attr(n, "id"), *from = wa_node_attr(n, "from");
    if (!id || !from)
        return 0;
    for (size_t i = 0; i < sizeof(acked) / sizeof(acked[0]); i++) {
        if (strcmp(n->tag, acked[i].tag))
            continue;
        wa_node_t *a = wa_node_new("ack");
        if (!a)
            return 0;
        wa_node_set_attr(a, "class", n->tag);
        wa_node_set_attr(a, "id", id);
        wa_node_set_attr(a, "to", from);
        static const char *const copied[] = {"participant", "recipient"};
        for (int k = 0; k < 2; k++)
            if (wa_node_attr(n, copied[k]))
                wa_node_set_attr(a, copied[k], wa_node_attr(n, copied[k]));
        if (acked[i].copy_type && wa_node_attr(n, "type"))
            wa_node_set_attr(a, "type", wa_node_attr(n, "type"));
        return wa_client_send(c, a) == 0;
    }
    return 0;
}
