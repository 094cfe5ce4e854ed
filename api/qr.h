/* QR images for the API: a WhatsApp linking string rendered with libqrencode
 * into a 1-bit grayscale PNG (libpng) with a 4-module quiet zone, as a data
 * URL, and as Unicode half-blocks for terminals. */
#ifndef WG_API_QR_H
#define WG_API_QR_H

#include <stddef.h>
#include <stdint.h>

enum {
    API_QR_OK = 0,
    API_QR_ENOMEM = -1,
    API_QR_ETOOLONG = -2, /* the text does not fit in a QR code */
    API_QR_EPNG = -3,     /* libpng failed */
    API_QR_EINVAL = -4,   /* bad arguments (empty text, scale out of range) */
};

#define API_QR_QUIET_ZONE 4

/* Renders `text` (8-bit mode, error correction M) as a PNG with `scale`
 * pixels per module (1..32; 0 means 6). On success returns 0 and a malloc'd
 * buffer in *png (caller frees) of *len bytes; optionally *modules is the
 * symbol width in modules (without quiet zone). Errors: API_QR_*. */
int api_qr_png(const char *text, int scale, uint8_t **png, size_t *len, int *modules);

/* Standard base64 (RFC 4648, with padding) of data[0..len). Returns a
 * malloc'd NUL-terminated string or NULL when out of memory. */
char *api_qr_base64(const uint8_t *data, size_t len);

/* "data:image/png;base64,..." for a PNG. Returns a malloc'd string or NULL. */
char *api_qr_data_url(const uint8_t *png, size_t len);

/* The QR as text for a terminal: two module rows per line using ' ', '▀',
 * '▄' and '█'. Light modules (and the quiet zone) are drawn as blocks in the
 * terminal's foreground colour and dark modules left blank, so it scans on
 * the usual light-text-on-dark-background terminal. Returns a malloc'd string (lines end with '\n')
 * or NULL on error
 * (*err set to an API_QR_* code when err is non-NULL). */
char *api_qr_terminal(const char *text, int *err);

#endif
