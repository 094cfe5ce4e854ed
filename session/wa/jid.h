/* WhatsApp JIDs (protocol doc 4.6): parsing the textual form
 * `user[_agent][:device]@server` the way the reference client's encoder does,
 * and formatting decoded AD_JIDs back to text. */
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

/* A parsed JID; the pointers point into the parsed string (not owned). */
typedef struct {
    const char *user;
    size_t user_len;
    const char *server;
    size_t server_len;
    int has_device;      /* a ":device" part was present */
    uint8_t device;      /* as encoded (low 8 bits; non-numeric = 0) */
    uint8_t domain_type; /* from the server, or the numeric agent */
    int has_agent;
} wa_jid_t;

/* Parses `s` (NUL-terminated). Returns 0 when it contains '@' (it is a JID
 * for the encoder's purposes), -1 otherwise. Never fails on odd content. */
int wa_jid_parse(const char *s, wa_jid_t *out);

/* Server name for an AD_JID domain type ("s.whatsapp.net" for unknown). */
const char *wa_jid_server_for_domain(uint8_t domain_type);

/* Formats `user[:device]@server` into a new heap string (device 0 omitted).
 * Returns NULL when out of memory; the caller frees. */
char *wa_jid_format(const char *user, size_t user_len, unsigned device, const char *server);

/* Splits a device JID "15551234567:12@s.whatsapp.net" into the user number
 * and device: returns 0 with *user (uint64) and *device set, or -1 when the
 * user part is not a decimal number. */
int wa_jid_user_device(const char *jid, uint64_t *user, unsigned *device);

#endif
