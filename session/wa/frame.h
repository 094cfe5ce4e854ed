/* WhatsApp frames (protocol doc 1.2 and 1.3), without I/O: a reader that cuts
 * 3-byte-length-prefixed frames out of arbitrary byte chunks (frames split
 * across or merged within WebSocket messages), and a writer that prefixes the
 * intro header "WA" 06 03 to the first frame of a connection. */
#ifndef WG_SESSION_WA_FRAME_H
#define WG_SESSION_WA_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Frames must be shorter than 2^24 bytes (a 3-byte length cannot say more). */
#define WA_FRAME_HARD_MAX ((1u << 24) - 1)

/* Bytes of the big-endian length prefix of every frame. */
#define WA_FRAME_PREFIX_LEN 3

/* The intro header sent once, before the first frame of a connection. */
#define WA_FRAME_INTRO_LEN 4
extern const uint8_t wa_frame_intro[WA_FRAME_INTRO_LEN];

enum {
    WA_FRAME_OK = 0,
    WA_FRAME_ENOMEM = -1,
    WA_FRAME_ETOOBIG = -2, /* a frame longer than the reader's (or the protocol's) maximum */
    WA_FRAME_ESPACE = -3,  /* the output buffer is too small */
};

/* --- reader --- */

typedef struct {
    uint8_t *buf;
    size_t start, len, cap; /* unconsumed bytes are buf[start..len) */
    size_t checked;         /* prefixes up to here were checked against max */
    size_t max_frame;
    int failed;
} wa_frame_reader_t;

/* Initialises a reader accepting frames of up to `max_frame` payload bytes
 * (0 or more than WA_FRAME_HARD_MAX means WA_FRAME_HARD_MAX). Cannot fail;
 * memory is only allocated by feed. */
void wa_frame_reader_init(wa_frame_reader_t *r, size_t max_frame);

/* Releases the reader's buffer (the reader may be initialised again). */
void wa_frame_reader_free(wa_frame_reader_t *r);

/* Appends a received chunk of any size (0 included), copying it. Returns 0,
 * WA_FRAME_ENOMEM, or WA_FRAME_ETOOBIG as soon as a complete length prefix
 * over the maximum is seen, before any of that frame's payload is buffered.
 * After WA_FRAME_ETOOBIG the reader stays failed (feed and next return it
 * again; frames still buffered are dropped): the connection must be closed.
 * Payloads returned by wa_frame_reader_next before this call are invalid
 * afterwards. */
int wa_frame_reader_feed(wa_frame_reader_t *r, const uint8_t *data, size_t len);

/* Takes the next complete frame: returns 1 and points *payload and *len at
 * its payload (borrowed from the reader, valid until the next feed or free;
 * several frames taken one after the other all stay valid), 0 when no
 * complete frame is buffered, or WA_FRAME_ETOOBIG on a failed reader. */
int wa_frame_reader_next(wa_frame_reader_t *r, const uint8_t **payload, size_t *len);

/* Bytes buffered but not yet returned as frames (an incomplete frame at the
 * end of a stream, for instance). */
size_t wa_frame_reader_pending(const wa_frame_reader_t *r);

/* --- writer --- */

/* Bytes needed to encode a frame of `len` payload bytes, with the intro
 * header when `first` (no overflow check: len must be <= WA_FRAME_HARD_MAX). */
size_t wa_frame_encoded_len(int first, size_t len);

/* Encodes one frame into out[0..cap): the intro header when `first`, the
 * 3-byte length, the payload. Returns the number of bytes written, or
 * WA_FRAME_ETOOBIG (len > WA_FRAME_HARD_MAX) or WA_FRAME_ESPACE. */
long wa_frame_encode(int first, const uint8_t *payload, size_t len, uint8_t *out, size_t cap);

/* Like wa_frame_encode into a new buffer: returns 0 with a malloc'd buffer
 * in *out (caller frees) and its size in *out_len, or WA_FRAME_ETOOBIG /
 * WA_FRAME_ENOMEM (then *out is untouched). */
int wa_frame_write(int first, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len);

/* A writer for one connection: remembers whether the intro header went out,
 * and the optional edge-routing prefix sent before it. */
typedef struct {
    int intro_sent;
    uint8_t *edge; /* "ED" 00 01 len[3] routing_info, or NULL */
    size_t edge_len;
} wa_frame_writer_t;

/* The largest routing info accepted for the edge-routing prefix. */
#define WA_FRAME_ROUTING_MAX 4096

/* Initialises a writer for a new connection (the next frame gets the intro). */
void wa_frame_writer_init(wa_frame_writer_t *w);

/* Makes the first frame start with the edge-routing prefix
 * `'E' 'D' 00 01 len[3 bytes BE] info` before the intro header (protocol doc
 * 1.2). Call before the first frame. Returns 0, WA_FRAME_ETOOBIG (empty or
 * over WA_FRAME_ROUTING_MAX) or WA_FRAME_ENOMEM. */
int wa_frame_writer_set_edge(wa_frame_writer_t *w, const uint8_t *info, size_t len);

/* Releases what the writer holds (the edge prefix). */
void wa_frame_writer_dispose(wa_frame_writer_t *w);

/* Bytes the writer's next frame of `len` payload bytes needs. */
size_t wa_frame_writer_size(const wa_frame_writer_t *w, size_t len);

/* Encodes the next frame into out[0..cap) (the intro header in front of the
 * first one only). Returns the number of bytes written, or WA_FRAME_ETOOBIG /
 * WA_FRAME_ESPACE; a failed call does not count as the first frame. */
long wa_frame_writer_put(wa_frame_writer_t *w, const uint8_t *payload, size_t len, uint8_t *out,
                         size_t cap);

#endif
