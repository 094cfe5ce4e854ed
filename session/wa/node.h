/* WhatsApp binary nodes (WABinary, protocol doc section 4): the node tree,
 * its encoder and bounds-checked decoder, and small helpers to build and read
 * nodes. An encoded node is a frame plaintext: a flags byte, then the node
 * (zlib-compressed when flags & 2, incoming only). */
#ifndef WG_SESSION_WA_NODE_H
#define WG_SESSION_WA_NODE_H

#include <stddef.h>
#include <stdint.h>

/* Error codes (negative). wa_node_strerror names them. */
enum {
    WA_NODE_OK = 0,
    WA_NODE_ENOMEM = -1,
    WA_NODE_ETRUNCATED = -2, /* input ends inside a value */
    WA_NODE_EBADTAG = -3,    /* a tag byte not allowed there (240..244, ...) */
    WA_NODE_EBADLIST = -4,   /* a node without a list header or tag */
    WA_NODE_EBADPACKED = -5, /* invalid nibble or packed length */
    WA_NODE_EBADJID = -6,    /* JID pair without a server */
    WA_NODE_EZLIB = -7,      /* compressed payload does not inflate */
    WA_NODE_ETOOBIG = -8,    /* over a size limit (inflated size, lengths, node count) */
    WA_NODE_ETOODEEP = -9,   /* nesting deeper than WA_NODE_MAX_DEPTH */
    WA_NODE_ETRAILING = -10, /* bytes left after the node */
    WA_NODE_EBADSTR = -11,   /* a NUL byte inside a tag or attribute string */
    WA_NODE_EINVAL = -12,    /* an invalid node given to the encoder */
};

#define WA_NODE_MAX_DEPTH 64
/* Largest inflated payload accepted: no more than the largest frame on the
 * wire (< 16 MiB). */
#define WA_NODE_MAX_INFLATED (16u * 1024 * 1024)
/* Most nodes and attributes one frame may decode to (each is an
 * allocation; WhatsApp's largest stanzas, group and contact lists, stay far
 * below). Beyond: WA_NODE_ETOOBIG. */
#define WA_NODE_MAX_NODES 65536
#define WA_NODE_MAX_ATTRS 262144

typedef enum {
    WA_NODE_NONE = 0,   /* no content */
    WA_NODE_BYTES = 1,  /* raw bytes (BINARY_8/20/32 content) */
    WA_NODE_STRING = 2, /* a string content (token, packed, JID, ...) */
    WA_NODE_LIST = 3,   /* child nodes */
} wa_node_kind_t;

typedef struct {
    char *key;
    char *value;
} wa_node_attr_t;

typedef struct wa_node wa_node_t;
struct wa_node {
    char *tag;
    wa_node_attr_t *attrs; /* in wire order */
    size_t nattrs;
    wa_node_kind_t kind;
    uint8_t *data; /* BYTES / STRING content (NUL-terminated extra byte) */
    size_t len;
    wa_node_t **children; /* LIST content */
    size_t nchildren;
    size_t attrs_cap_, children_cap_; /* private */
};

/* Returns a short English description of an error code. */
const char *wa_node_strerror(int code);

/* --- building --- */

/* Creates a node with tag `tag` and no attributes or content. Returns NULL
 * when out of memory. The caller owns it (wa_node_free). */
wa_node_t *wa_node_new(const char *tag);

/* Frees a node and all its children. NULL is ignored. */
void wa_node_free(wa_node_t *n);

/* Sets (adds or replaces) an attribute; value NULL removes it. Returns 0 or
 * WA_NODE_ENOMEM. */
int wa_node_set_attr(wa_node_t *n, const char *key, const char *value);

/* Sets content to a copy of bytes[0..len). Returns 0 or WA_NODE_ENOMEM. */
int wa_node_set_bytes(wa_node_t *n, const void *bytes, size_t len);

/* Sets content to a copy of the string `s` (encoded as a string: token,
 * packed, JID or raw). Returns 0 or WA_NODE_ENOMEM. */
int wa_node_set_string(wa_node_t *n, const char *s);

/* Appends `child` (ownership passes to `n`, also on failure) and makes the
 * content a list. Returns `child`, or NULL when out of memory. */
wa_node_t *wa_node_add_child(wa_node_t *n, wa_node_t *child);

/* Shorthand: creates a child with `tag`, appends it, returns it (or NULL). */
wa_node_t *wa_node_add(wa_node_t *n, const char *tag);

/* Makes the content an empty child list (encodes as LIST_EMPTY). */
void wa_node_set_empty_list(wa_node_t *n);

/* --- reading --- */

/* The value of attribute `key`, or NULL. Borrowed from the node. */
const char *wa_node_attr(const wa_node_t *n, const char *key);

/* The first child with tag `tag`, or NULL. Borrowed. */
wa_node_t *wa_node_child(const wa_node_t *n, const char *tag);

/* Walks a path of tags: wa_node_path(n, "pair-device", "ref", NULL). */
wa_node_t *wa_node_path(const wa_node_t *n, ...);

/* Content bytes (BYTES or STRING) and their length; NULL when none. */
const uint8_t *wa_node_content(const wa_node_t *n, size_t *len);

/* --- wire format --- */

/* Encodes `n` as a frame plaintext: flags byte 0x00, then the node, exactly
 * as the reference client encodes it. On success returns 0 and a malloc'd
 * buffer in *out (caller frees) of *out_len bytes. Strings are written as
 * the reference does: token, dictionary token, NIBBLE_8, HEX_8, JID (any
 * string with an '@': AD_JID when it has a ":device" part, else JID_PAIR),
 * else raw with a BINARY_8/20/32 length. On error *out is NULL. Errors:
 * WA_NODE_ENOMEM, WA_NODE_EINVAL (a node with an empty tag, more than 65535
 * children), WA_NODE_ETOODEEP (nested deeper than WA_NODE_MAX_DEPTH),
 * WA_NODE_ETOOBIG (a string or content of 4 GiB or more). */
int wa_node_encode(const wa_node_t *n, uint8_t **out, size_t *out_len);

/* Decodes a frame plaintext (flags byte first; the rest is zlib-inflated,
 * up to WA_NODE_MAX_INFLATED bytes, when flags & 2; other flag bits are
 * ignored). Every read is bounds-checked; trailing bytes are an error; at
 * most WA_NODE_MAX_NODES nodes and WA_NODE_MAX_ATTRS attributes per frame
 * (WA_NODE_ETOOBIG); a key given twice keeps its last value.
 * Decoded strings never contain NUL bytes (such input is rejected). On
 * success returns 0 and a new node in *out (caller frees). On error returns a
 * negative WA_NODE_E* code (see wa_node_strerror) and *out is NULL. */
int wa_node_decode(const uint8_t *buf, size_t len, wa_node_t **out);

/* Decodes one node from buf[0..len) with no flags byte and no trailing-byte
 * check; on success returns 0, *out (caller frees) and *used, the number of
 * bytes read (used may be NULL). Errors as wa_node_decode. */
int wa_node_decode_raw(const uint8_t *buf, size_t len, wa_node_t **out, size_t *used);

/* Renders the node as XML-like text for logs and tests, e.g.
 * `<iq id="1" type="get"><ping/></iq>`. Byte contents are written as hex, or
 * as `[N bytes]` when `hide_bytes`. Returns a malloc'd string or NULL. */
char *wa_node_to_text(const wa_node_t *n, int hide_bytes);

/* 1 when two nodes have the same tag, attributes (in order), content kind
 * and content, recursively; else 0. */
int wa_node_equal(const wa_node_t *a, const wa_node_t *b);

#endif
