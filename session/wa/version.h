/* WhatsApp Web version facts (protocol doc 10.1 and 11.2): where the current
 * version is published (sw.js on the endpoint's host), how to read it
 * (the `client_revision` number, announced as 2.3000.<revision>), and how
 * versions compare and print. Pure functions, no I/O: the fetching is
 * session/version.c's job. */
#ifndef WG_SESSION_WA_VERSION_H
#define WG_SESSION_WA_VERSION_H

#include <stddef.h>
#include <stdint.h>

#include "session/wa/payload.h"

/* The version WhatsApp Web announces for a revision: 2.3000.<revision>. */
#define WA_VERSION_PRIMARY 2
#define WA_VERSION_SECONDARY 3000

/* Errors (negative). */
enum {
    WA_VERSION_ENOTFOUND = -1, /* no client_revision in the document */
    WA_VERSION_ERANGE = -2,    /* a revision that is 0 or does not fit in 32 bits */
    WA_VERSION_EINVAL = -3,    /* bad arguments, or a URL we cannot derive from */
};

/* Reads the client revision out of the sw.js document `buf` (`len` bytes,
 * not necessarily NUL-terminated, may contain NULs; never read past). It
 * accepts what Baileys' pattern `\\?"client_revision\\?":\s*(\d+)` accepts
 * (the key inside the escaped JSON string WhatsApp embeds), plus the
 * tolerant forms of whatsapp-rust: an unquoted key (`client_revision:123`),
 * a quoted value (`"client_revision": "123"`) and blanks around the colon.
 * The first occurrence that has this shape wins. On success returns 0 and
 * stores the revision; WA_VERSION_ENOTFOUND when there is none,
 * WA_VERSION_ERANGE when the first well-formed one is 0 or larger than
 * UINT32_MAX, WA_VERSION_EINVAL for NULL arguments. */
int wa_version_parse_sw(const uint8_t *buf, size_t len, uint32_t *revision);

/* The version announced for a revision: {2, 3000, revision}. */
wa_version_t wa_version_from_revision(uint32_t revision);

/* Derives the sw.js URL from the WhatsApp endpoint URL: the same host and
 * port, wss:// -> https://, ws:// -> http://, path /sw.js
 * ("wss://web.whatsapp.com/ws/chat" -> "https://web.whatsapp.com/sw.js",
 * "ws://[::1]:8080/ws/chat" -> "http://[::1]:8080/sw.js"). The scheme is
 * matched without regard to case. Returns 0 with the URL in out, or
 * WA_VERSION_EINVAL for another scheme, an empty or malformed authority
 * (user info, a bad IPv6 literal, a non-numeric or out-of-range port) or an
 * `out` too small. */
int wa_version_sw_url(const char *wa_url, char *out, size_t outlen);

/* Compares two versions field by field: <0, 0 or >0 as a is older than,
 * the same as, or newer than b. */
int wa_version_cmp(const wa_version_t *a, const wa_version_t *b);

/* Parses "2.3000.1047769893" strictly: three dot-separated decimal numbers
 * (digits only, each fitting in 32 bits), nothing else. Returns 0 or
 * WA_VERSION_EINVAL. */
int wa_version_parse(const char *s, wa_version_t *out);

/* Writes "a.b.c" into out (WA_VERSION_STRLEN bytes are always enough). */
#define WA_VERSION_STRLEN 36
void wa_version_format(const wa_version_t *v, char *out, size_t outlen);

#endif
