/* Base64 (RFC 4648): the standard alphabet "+/" with padding, shared by the
 * QR string (session/wa/pair.c) and the QR data URL (api/qr.c), and the
 * URL-safe alphabet "-_" without padding that WebAuthn's JSON uses (the
 * passkey step, session/wa/passkey.c). */
#ifndef WG_COMMON_BASE64_H
#define WG_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Encodes data[0..len). Returns a malloc'd NUL-terminated string (caller
 * frees), or NULL when out of memory. */
char *b64_encode(const uint8_t *data, size_t len);

/* Decodes s[0..len) (length a multiple of 4, padding only at the end,
 * canonical: the bits dropped by padding must be zero) into out (cap bytes).
 * Returns the decoded length, or -1 for malformed or non-canonical input or
 * too small a buffer. */
long b64_decode(const char *s, size_t len, uint8_t *out, size_t cap);

/* Encodes data[0..len) in the URL-safe alphabet without padding. Returns a
 * malloc'd NUL-terminated string (caller frees), or NULL when out of
 * memory. */
char *b64url_encode(const uint8_t *data, size_t len);

/* Decodes URL-safe base64 s[0..len) (no padding, or complete padding at the
 * end; canonical: the unused bits of the last character must be zero) into
 * out (cap bytes). Returns the decoded length, or -1 for malformed or
 * non-canonical input, a character of the standard alphabet, or too small a
 * buffer. */
long b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
