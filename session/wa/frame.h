/* WhatsApp frames (protocol doc 1.2 and 1.3), without I/O: a reader that cuts
 * 3-byte-length-prefixed frames out of arbitrary byte chunks (frames split
 * across or merged within WebSocket messages), and a writer that prefixes the
 * intro header "WA" 06 03 to the first frame of a connection. */
#ifndef WG_SESSION_WA_FRAME_H
#define WG_SESSION_WA_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Frames must be shorter than 2^24 bytes. */
#define WA_FRAME_HARD_MAX ((1u << 24) - 1)

enum {
    WA_FRAME_OK = 0,
    WA_FRAME_ENOMEM = -1,
    WA_FRAME_ETOOBIG = -2, /* a frame longer than the reader's maximum */
};

typedef struct {
    uint8_t *buf;
    size_t start, len, cap; /* unconsumed bytes are buf[start..len) */
    size_t checked;         /* prefixes up to here were checked against max */
    size_t max_frame;
    int failed;
} wa_frame_reader_t;

/* Initialises a reader accepting frames up to `max_frame` bytes (0 or more
 * than WA_FRAME_HARD_MAX means WA_FRAME_HARD_MAX). */
void wa_frame_reader_init(wa_frame_reader_t *r, size_t max_frame);

/* Releases the reader's buffer. */
void wa_frame_reader_free(wa_frame_reader_t *r);

/* Appends a received chunk. Returns 0, WA_FRAME_ENOMEM, or WA_FRAME_ETOOBIG
 * as soon as a length prefix over the maximum is seen (the reader then stays
 * failed: the connection must be closed). */
int wa_frame_reader_feed(wa_frame_reader_t *r, const uint8_t *data, size_t len);

/* Takes the next complete frame: returns 1 and points *payload and *len at it
 * (valid until the next feed or next call), 0 when no complete frame is
 * buffered, or a negative error after a failed feed. */
int wa_frame_reader_next(wa_frame_reader_t *r, const uint8_t **payload, size_t *len);

/* Builds the bytes to send for one frame: the intro header when `first`,
 * then the 3-byte length, then the payload. Returns 0 with a malloc'd buffer
 * (caller frees), or WA_FRAME_ETOOBIG / WA_FRAME_ENOMEM. */
int wa_frame_write(int first, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len);

#endif
