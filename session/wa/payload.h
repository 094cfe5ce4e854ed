/* The ClientPayload WhatsApp Web sends in the Noise client-finish message
 * (protocol doc section 3): the registration payload of a new device and the
 * login payload of a paired one, with a configurable WhatsApp Web version. */
#ifndef WG_SESSION_WA_PAYLOAD_H
#define WG_SESSION_WA_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* The built-in WhatsApp Web version: used when WA_VERSION is not set and no
 * version could be discovered (sw.js) or was stored by an earlier run (see
 * README "WhatsApp Web version"). 2.3000.1047769893 is the newest version
 * we can establish as accepted by WhatsApp: whatsmeow announced it from its
 * commit "proto: update to v1047769893" of 2026-09-17, and WhatsApp
 * accepted it then (asternic/wuzapi PR #368, which also reports
 * 2.3000.1042386815 refused with 405 from 2026-09-15). */
#define WA_PAYLOAD_DEFAULT_VERSION "2.3000.1047769893"

/* The device name shown on the phone under "Linked devices". */
#define WA_PAYLOAD_DEVICE_NAME "wa-gateway"

/* The DeviceProps.PlatformType announced at registration (CHROME); the
 * passkey step repeats it (protocol doc 3.5 and 11.6). */
#define WA_PAYLOAD_PLATFORM_TYPE 1

typedef struct {
    uint32_t primary, secondary, tertiary;
} wa_version_t;

/* What the registration payload needs from the new identity. */
typedef struct {
    uint32_t reg_id;
    const uint8_t *ident_pub; /* 32 bytes */
    uint32_t spk_id;
    const uint8_t *spk_pub;  /* 32 bytes */
    const uint8_t *spk_sig;  /* 64 bytes */
    const char *device_name; /* shown under Linked devices; NULL = WA_PAYLOAD_DEVICE_NAME */
} wa_payload_reg_t;

/* Parses "2.3000.1045649367". Returns 0 or -1. */
int wa_payload_parse_version(const char *s, wa_version_t *out);

/* Builds the serialized registration ClientPayload. Returns 0 with a
 * malloc'd buffer (caller frees), or -1 when out of memory. */
int wa_payload_registration(const wa_payload_reg_t *reg, const wa_version_t *v, uint8_t **out,
                            size_t *len);

/* Builds the serialized login ClientPayload for the device JID `jid`
 * ("15551234567:12@s.whatsapp.net"). Returns 0, or -1 for a JID without a
 * numeric user or out of memory. */
int wa_payload_login(const char *jid, const wa_version_t *v, uint8_t **out, size_t *len);

#endif
