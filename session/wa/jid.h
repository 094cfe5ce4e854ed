/* WhatsApp JIDs (protocol doc 4.6): parsing the textual form
 * `user[_agent][:device]@server` exactly the way the reference client's
 * encoder (Baileys jidDecode + encodeBinaryNode) reads it, so that our node
 * encoding is byte-identical; formatting decoded JIDs back to text; and small
 * helpers for the pairing and login code (user number and device of our own
 * JID, the JID without its device part, same-user comparison). */
#ifndef WG_SESSION_WA_JID_H
#define WG_SESSION_WA_JID_H

#include <stddef.h>
#include <stdint.h>

/* AD_JID domain types. */
enum {
    WA_JID_DOMAIN_WHATSAPP = 0,
    WA_JID_DOMAIN_LID = 1,
    WA_JID_DOMAIN_HOSTED = 128,
    WA_JID_DOMAIN_HOSTED_LID = 129,
};

/* Well-known servers. */
#define WA_JID_SERVER_PN "s.whatsapp.net"
#define WA_JID_SERVER_LID "lid"
#define WA_JID_SERVER_GROUP "g.us"
#define WA_JID_SERVER_BROADCAST "broadcast"
#define WA_JID_SERVER_NEWSLETTER "newsletter"
#define WA_JID_SERVER_LEGACY "c.us"
#define WA_JID_SERVER_HOSTED "hosted"
#define WA_JID_SERVER_HOSTED_LID "hosted.lid"
#define WA_JID_SERVER_MSGR "msgr"
#define WA_JID_SERVER_INTEROP "interop"
#define WA_JID_SERVER_BOT "bot"

/* A parsed JID; every pointer points into the parsed string (not owned, not
 * NUL-terminated: use the lengths).
 *   "15551234567_1:12@s.whatsapp.net"
 *    user="15551234567" agent="1" device_text="12" server="s.whatsapp.net"
 * The user is the text before the first '_' of the text before the first ':'
 * (of the text before the first '@'); the agent is the text between the first
 * and second '_' there; the device text is the text between the first and
 * second ':'; the server is everything after the first '@'. */
typedef struct {
    const char *user;
    size_t user_len;
    const char *server;
    size_t server_len;
    int has_device;      /* a non-empty ":device" part was present */
    uint8_t device;      /* the byte the reference encoder writes for it:
                            JavaScript Number(text) & 0xff, NaN -> 0 */
    uint8_t domain_type; /* from the server (lid, hosted, hosted.lid), else
                            the agent as parseInt(agent) & 0xff, else 0 */
    int has_agent;       /* a non-empty "_agent" part was present */
    const char *agent;   /* agent text (agent_len 0 when absent) */
    size_t agent_len;
    const char *device_text; /* device text (device_len 0 when absent) */
    size_t device_len;
} wa_jid_t;

/* Parses s[0..len) (need not be NUL-terminated; NUL bytes are ordinary
 * characters). Returns 0 when it contains '@' (it is a JID for the encoder's
 * purposes) and fills *out; returns -1 otherwise (*out zeroed). Never fails
 * on odd content: every string with an '@' has a parse. */
int wa_jid_parse_n(const char *s, size_t len, wa_jid_t *out);

/* wa_jid_parse_n on a NUL-terminated string. */
int wa_jid_parse(const char *s, wa_jid_t *out);

/* Server name for an AD_JID domain type: "lid", "hosted", "hosted.lid", or
 * "s.whatsapp.net" for 0 and any other (agent) value. Static string. */
const char *wa_jid_server_for_domain(uint8_t domain_type);

/* Formats `user[:device]@server` into a new heap string (device 0 omitted,
 * as the reference decoder does for AD_JIDs). Returns NULL when out of
 * memory; the caller frees. */
char *wa_jid_format(const char *user, size_t user_len, unsigned device, const char *server);

/* Splits a device JID "15551234567:12@s.whatsapp.net" (an "_agent" part is
 * skipped) into the user number and the device: returns 0 with *user and
 * *device set (device 0 when there is no ":device"), or -1 when the user is
 * not a decimal number that fits 64 bits, the device is not a decimal number
 * up to 65535, or there is no '@'. */
int wa_jid_user_device(const char *jid, uint64_t *user, unsigned *device);

/* The JID without agent and device: "15551234567:12@s.whatsapp.net" ->
 * "15551234567@s.whatsapp.net". Returns a new heap string (caller frees), or
 * NULL when `jid` has no '@' or memory runs out. */
char *wa_jid_without_device(const char *jid);

/* 1 when both JIDs have an '@' and the same user and server (agent and
 * device ignored), else 0. */
int wa_jid_same_user(const char *a, const char *b);

#endif
