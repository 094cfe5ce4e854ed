/* Binary node codec. The encoder follows the reference client's choices
 * (token, then nibble, then hex, then JID, then raw) so our bytes equal
 * theirs; the decoder reads through a cursor that checks every length
 * against the end of the buffer before touching a byte. */
#include "session/wa/node.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "session/wa/jid.h"
#include "session/wa/tokens.h"

enum {
    TAG_LIST_EMPTY = 0,
    TAG_DICTIONARY_0 = 236,
    TAG_DICTIONARY_3 = 239,
    TAG_INTEROP_JID = 245,
    TAG_FB_JID = 246,
    TAG_AD_JID = 247,
    TAG_LIST_8 = 248,
    TAG_LIST_16 = 249,
    TAG_JID_PAIR = 250,
    TAG_HEX_8 = 251,
    TAG_BINARY_8 = 252,
    TAG_BINARY_20 = 253,
    TAG_BINARY_32 = 254,
    TAG_NIBBLE_8 = 255,
    PACKED_MAX = 127,
};

const char *wa_node_strerror(int code)
{
    switch (code) {
    case WA_NODE_OK:
        return "ok";
    case WA_NODE_ENOMEM:
        return "out of memory";
    case WA_NODE_ETRUNCATED:
        return "node truncated";
    case WA_NODE_EBADTAG:
        return "invalid tag byte";
    case WA_NODE_EBADLIST:
        return "invalid node header";
    case WA_NODE_EBADPACKED:
        return "invalid packed string";
    case WA_NODE_EBADJID:
        return "invalid JID";
    case WA_NODE_EZLIB:
        return "compressed node does not inflate";
    case WA_NODE_ETOOBIG:
        return "node too large";
    case WA_NODE_ETOODEEP:
        return "node nested too deeply";
    case WA_NODE_ETRAILING:
        return "trailing bytes after node";
    case WA_NODE_EBADSTR:
        return "NUL byte in a node string";
    case WA_NODE_EINVAL:
        return "invalid node";
    }
    return "unknown node error";
}

/* --- building --- */

wa_node_t *wa_node_new(const char *tag)
{
    wa_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->tag = strdup(tag ? tag : "");
    if (!n->tag) {
        free(n);
        return NULL;
    }
    return n;
}

static void clear_content(wa_node_t *n)
{
    free(n->data);
    n->data = NULL;
    n->len = 0;
    for (size_t i = 0; i < n->nchildren; i++)
        wa_node_free(n->children[i]);
    free(n->children);
    n->children = NULL;
    n->nchildren = n->children_cap_ = 0;
    n->kind = WA_NODE_NONE;
}

void wa_node_free(wa_node_t *n)
{
    if (!n)
        return;
    clear_content(n);
    for (size_t i = 0; i < n->nattrs; i++) {
        free(n->attrs[i].key);
        free(n->attrs[i].value);
    }
    free(n->attrs);
    free(n->tag);
    free(n);
}

int wa_node_set_attr(wa_node_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < n->nattrs; i++) {
        if (strcmp(n->attrs[i].key, key) != 0)
            continue;
        if (!value) {
            free(n->attrs[i].key);
            free(n->attrs[i].value);
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->nattrs - i - 1) * sizeof(*n->attrs));
            n->nattrs--;
            return 0;
        }
        char *v = strdup(value);
        if (!v)
            return WA_NODE_ENOMEM;
        free(n->attrs[i].value);
        n->attrs[i].value = v;
        return 0;
    }
    if (!value)
        return 0;
    if (n->nattrs == n->attrs_cap_) {
        size_t cap = n->attrs_cap_ ? n->attrs_cap_ * 2 : 4;
        wa_node_attr_t *a = realloc(n->attrs, cap * sizeof(*a));
        if (!a)
            return WA_NODE_ENOMEM;
        n->attrs = a;
        n->attrs_cap_ = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return WA_NODE_ENOMEM;
    }
    n->attrs[n->nattrs].key = k;
    n->attrs[n->nattrs].value = v;
    n->nattrs++;
    return 0;
}

static int set_data(wa_node_t *n, wa_node_kind_t kind, const void *bytes, size_t len)
{
    uint8_t *d = malloc(len + 1);
    if (!d)
        return WA_NODE_ENOMEM;
    if (len)
        memcpy(d, bytes, len);
    d[len] = 0;
    clear_content(n);
    n->data = d;
    n->len = len;
    n->kind = kind;
    return 0;
}

int wa_node_set_bytes(wa_node_t *n, const void *bytes, size_t len)
{
    return set_data(n, WA_NODE_BYTES, bytes, len);
}

int wa_node_set_string(wa_node_t *n, const char *s)
{
    return set_data(n, WA_NODE_STRING, s, strlen(s));
}

void wa_node_set_empty_list(wa_node_t *n)
{
    clear_content(n);
    n->kind = WA_NODE_LIST;
}

wa_node_t *wa_node_add_child(wa_node_t *n, wa_node_t *child)
{
    if (!child)
        return NULL;
    if (n->kind != WA_NODE_LIST) {
        clear_content(n);
        n->kind = WA_NODE_LIST;
    }
    if (n->nchildren == n->children_cap_) {
        size_t cap = n->children_cap_ ? n->children_cap_ * 2 : 4;
        wa_node_t **c = realloc(n->children, cap * sizeof(*c));
        if (!c) {
            wa_node_free(child);
            return NULL;
        }
        n->children = c;
        n->children_cap_ = cap;
    }
    n->children[n->nchildren++] = child;
    return child;
}

wa_node_t *wa_node_add(wa_node_t *n, const char *tag)
{
    return wa_node_add_child(n, wa_node_new(tag));
}

/* --- reading --- */

const char *wa_node_attr(const wa_node_t *n, const char *key)
{
    if (!n)
        return NULL;
    for (size_t i = 0; i < n->nattrs; i++)
        if (!strcmp(n->attrs[i].key, key))
            return n->attrs[i].value;
    return NULL;
}

wa_node_t *wa_node_child(const wa_node_t *n, const char *tag)
{
    if (!n || n->kind != WA_NODE_LIST)
        return NULL;
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->tag, tag))
            return n->children[i];
    return NULL;
}

wa_node_t *wa_node_path(const wa_node_t *n, ...)
{
    va_list ap;
    va_start(ap, n);
    const char *tag;
    wa_node_t *cur = (wa_node_t *)n;
    while (cur && (tag = va_arg(ap, const char *)) != NULL)
        cur = wa_node_child(cur, tag);
    va_end(ap);
    return cur;
}

const uint8_t *wa_node_content(const wa_node_t *n, size_t *len)
{
    if (!n || (n->kind != WA_NODE_BYTES && n->kind != WA_NODE_STRING)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = n->len;
    return n->data;
}

/* --- encoder --- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int err;
} wbuf_t;

static void put(wbuf_t *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->err = WA_NODE_ENOMEM;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put8(wbuf_t *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(w, &b, 1);
}

static void write_byte_length(wbuf_t *w, size_t len)
{
    if ((uint64_t)len >= 4294967296ULL) {
        w->err = WA_NODE_ETOOBIG;
    } else if (len >= (1u << 20)) {
        uint8_t b[5] = {TAG_BINARY_32, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
                        (uint8_t)(len >> 8), (uint8_t)len};
        put(w, b, 5);
    } else if (len >= 256) {
        uint8_t b[4] = {TAG_BINARY_20, (uint8_t)((len >> 16) & 0x0f), (uint8_t)(len >> 8),
                        (uint8_t)len};
        put(w, b, 4);
    } else {
        uint8_t b[2] = {TAG_BINARY_8, (uint8_t)len};
        put(w, b, 2);
    }
}

static void write_raw(wbuf_t *w, const char *s, size_t len)
{
    write_byte_length(w, len);
    put(w, s, len);
}

static int is_nibble(const char *s, size_t len)
{
    if (len == 0 || len > PACKED_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

static int is_hex(const char *s, size_t len)
{
    if (len == 0 || len > PACKED_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

static unsigned pack_char(int nibble, char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c == 0)
        return 15;
    if (nibble)
        return c == '-' ? 10 : 11;
    return (unsigned)(10 + c - 'A');
}

static void write_packed(wbuf_t *w, const char *s, size_t len, int nibble)
{
    put8(w, nibble ? TAG_NIBBLE_8 : TAG_HEX_8);
    unsigned rounded = (unsigned)((len + 1) / 2);
    if (len % 2)
        rounded |= 0x80;
    put8(w, rounded);
    for (size_t i = 0; i + 1 < len; i += 2)
        put8(w, pack_char(nibble, s[i]) << 4 | pack_char(nibble, s[i + 1]));
    if (len % 2)
        put8(w, pack_char(nibble, s[len - 1]) << 4 | 15);
}

static void write_string_n(wbuf_t *w, const char *s, size_t len);

static void write_string(wbuf_t *w, const char *s)
{
    if (!s) {
        put8(w, TAG_LIST_EMPTY);
        return;
    }
    write_string_n(w, s, strlen(s));
}

/* Writes a string as the reference encoder's writeString does. A JID's
 * server is itself written as a string, so "a@b@c" becomes a chain of
 * JID_PAIRs; the chain is followed in a loop rather than by recursion (the
 * user part of a JID never contains '@', so it recurses at most once). */
static void write_string_n(wbuf_t *w, const char *s, size_t len)
{
    for (;;) {
        if (len == 0) {
            write_raw(w, s, 0);
            return;
        }
        const wa_tokens_entry_t *t = wa_tokens_find(s, len);
        if (t) {
            if (t->dict >= 0)
                put8(w, (unsigned)(TAG_DICTIONARY_0 + t->dict));
            put8(w, (unsigned)t->index);
            return;
        }
        if (is_nibble(s, len)) {
            write_packed(w, s, len, 1);
            return;
        }
        if (is_hex(s, len)) {
            write_packed(w, s, len, 0);
            return;
        }
        wa_jid_t jid;
        if (wa_jid_parse_n(s, len, &jid) != 0) {
            write_raw(w, s, len);
            return;
        }
        if (jid.has_device) {
            uint8_t b[3] = {TAG_AD_JID, jid.domain_type, jid.device};
            put(w, b, 3);
            write_string_n(w, jid.user, jid.user_len);
            return;
        }
        put8(w, TAG_JID_PAIR);
        if (jid.user_len)
            write_string_n(w, jid.user, jid.user_len);
        else
            put8(w, TAG_LIST_EMPTY);
        s = jid.server;
        len = jid.server_len;
    }
}

static void write_list_start(wbuf_t *w, size_t n)
{
    if (n == 0) {
        put8(w, TAG_LIST_EMPTY);
    } else if (n < 256) {
        uint8_t b[2] = {TAG_LIST_8, (uint8_t)n};
        put(w, b, 2);
    } else if (n <= 0xffff) {
        uint8_t b[3] = {TAG_LIST_16, (uint8_t)(n >> 8), (uint8_t)n};
        put(w, b, 3);
    } else {
        w->err = WA_NODE_EINVAL;
    }
}

static void encode_node(wbuf_t *w, const wa_node_t *n, int depth)
{
    if (depth > WA_NODE_MAX_DEPTH) {
        w->err = WA_NODE_ETOODEEP;
        return;
    }
    if (!n->tag || !n->tag[0]) {
        w->err = WA_NODE_EINVAL;
        return;
    }
    write_list_start(w, 2 * n->nattrs + 1 + (n->kind != WA_NODE_NONE ? 1 : 0));
    write_string(w, n->tag);
    for (size_t i = 0; i < n->nattrs; i++) {
        write_string(w, n->attrs[i].key);
        write_string(w, n->attrs[i].value);
    }
    switch (n->kind) {
    case WA_NODE_NONE:
        break;
    case WA_NODE_BYTES:
        write_byte_length(w, n->len);
        put(w, n->data, n->len);
        break;
    case WA_NODE_STRING:
        write_string_n(w, (const char *)n->data, n->len);
        break;
    case WA_NODE_LIST:
        write_list_start(w, n->nchildren);
        for (size_t i = 0; i < n->nchildren && !w->err; i++)
            encode_node(w, n->children[i], depth + 1);
        break;
    }
}

int wa_node_encode(const wa_node_t *n, uint8_t **out, size_t *out_len)
{
    wbuf_t w = {0};
    put8(&w, 0);
    encode_node(&w, n, 0);
    if (w.err) {
        free(w.buf);
        *out = NULL;
        *out_len = 0;
        return w.err;
    }
    *out = w.buf;
    *out_len = w.len;
    return 0;
}

/* --- decoder --- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    size_t nodes, attrs; /* decoded so far in this frame (WA_NODE_MAX_NODES/ATTRS) */
} rd_t;

static int rd_byte(rd_t *r, unsigned *v)
{
    *v = 0;
    if (r->pos >= r->len)
        return WA_NODE_ETRUNCATED;
    *v = r->p[r->pos++];
    return 0;
}

static int rd_int(rd_t *r, size_t n, size_t *v)
{
    *v = 0;
    if (r->len - r->pos < n)
        return WA_NODE_ETRUNCATED;
    size_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = x << 8 | r->p[r->pos++];
    *v = x;
    return 0;
}

static int rd_bytes(rd_t *r, size_t n, const uint8_t **p)
{
    if (r->len - r->pos < n)
        return WA_NODE_ETRUNCATED;
    *p = r->p + r->pos;
    r->pos += n;
    return 0;
}

/* A growable string being decoded. */
typedef struct {
    char *s;
    size_t len, cap;
} dstr_t;

static int ds_put(dstr_t *d, const void *p, size_t n)
{
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 32;
        while (cap < d->len + n + 1)
            cap *= 2;
        char *s = realloc(d->s, cap);
        if (!s)
            return WA_NODE_ENOMEM;
        d->s = s;
        d->cap = cap;
    }
    memcpy(d->s + d->len, p, n);
    d->len += n;
    d->s[d->len] = 0;
    return 0;
}

static int ds_putc(dstr_t *d, char c)
{
    return ds_put(d, &c, 1);
}

static int read_string(rd_t *r, unsigned tag, dstr_t *d, int depth);

static int read_len_for(rd_t *r, unsigned tag, size_t *n)
{
    unsigned b;
    int rc;
    switch (tag) {
    case TAG_BINARY_8:
        rc = rd_byte(r, &b);
        *n = b;
        return rc;
    case TAG_BINARY_20: {
        size_t v;
        rc = rd_int(r, 3, &v);
        *n = v & 0xfffff;
        return rc;
    }
    case TAG_BINARY_32:
        return rd_int(r, 4, n);
    }
    return WA_NODE_EBADTAG;
}

/* Reads a packed string and appends it to d (which may already hold the
 * first part of a JID). */
static int read_packed(rd_t *r, unsigned tag, dstr_t *d)
{
    size_t first = d->len;
    unsigned start, b;
    int rc = rd_byte(r, &start);
    if (rc)
        return rc;
    size_t nbytes = start & 0x7f;
    if (r->len - r->pos < nbytes)
        return WA_NODE_ETRUNCATED;
    for (size_t i = 0; i < nbytes; i++) {
        rd_byte(r, &b);
        unsigned nib[2] = {b >> 4, b & 15};
        for (int k = 0; k < 2; k++) {
            char c;
            unsigned v = nib[k];
            if (tag == TAG_NIBBLE_8) {
                if (v <= 9)
                    c = (char)('0' + v);
                else if (v == 10)
                    c = '-';
                else if (v == 11)
                    c = '.';
                else if (v == 15)
                    c = 0;
                else
                    return WA_NODE_EBADPACKED;
            } else {
                c = (char)(v < 10 ? '0' + v : 'A' + v - 10);
            }
            if ((rc = ds_putc(d, c)))
                return rc;
        }
    }
    if ((start & 0x80) && d->len > first) {
        d->len--;
        d->s[d->len] = 0;
    }
    if (d->len > first && memchr(d->s + first, 0, d->len - first))
        return WA_NODE_EBADPACKED; /* a terminator inside the string */
    return 0;
}

/* Reads a string introduced by `tag` and appends it to d. */
static int read_string(rd_t *r, unsigned tag, dstr_t *d, int depth)
{
    int rc;
    unsigned b;
    if (depth > 8)
        return WA_NODE_ETOODEEP;
    if (tag >= 1 && tag < WA_TOKENS_SINGLE_COUNT) {
        const char *t = wa_tokens_single[tag];
        return ds_put(d, t, strlen(t));
    }
    switch (tag) {
    case TAG_LIST_EMPTY:
        return ds_put(d, "", 0);
    case TAG_DICTIONARY_0:
    case TAG_DICTIONARY_0 + 1:
    case TAG_DICTIONARY_0 + 2:
    case TAG_DICTIONARY_3:
        if ((rc = rd_byte(r, &b)))
            return rc;
        return ds_put(d, wa_tokens_double[tag - TAG_DICTIONARY_0][b],
                      strlen(wa_tokens_double[tag - TAG_DICTIONARY_0][b]));
    case TAG_BINARY_8:
    case TAG_BINARY_20:
    case TAG_BINARY_32: {
        size_t n;
        const uint8_t *p;
        if ((rc = read_len_for(r, tag, &n)) || (rc = rd_bytes(r, n, &p)))
            return rc;
        if (memchr(p, 0, n))
            return WA_NODE_EBADSTR;
        return ds_put(d, p, n);
    }
    case TAG_NIBBLE_8:
    case TAG_HEX_8:
        return read_packed(r, tag, d);
    case TAG_JID_PAIR:
        /* user '@' server; a server that is itself a JID_PAIR (the encoding
         * of "a@b@c") is read in this loop, not by recursion */
        for (;;) {
            if ((rc = rd_byte(r, &b)) || (rc = read_string(r, b, d, depth + 1)) ||
                (rc = ds_putc(d, '@')) || (rc = rd_byte(r, &b)))
                return rc;
            if (b == TAG_JID_PAIR)
                continue;
            size_t before = d->len;
            if ((rc = read_string(r, b, d, depth + 1)))
                return rc;
            return d->len == before ? WA_NODE_EBADJID : 0;
        }
    case TAG_AD_JID: {
        unsigned domain, device;
        dstr_t user = {0};
        if ((rc = rd_byte(r, &domain)) || (rc = rd_byte(r, &device)) || (rc = rd_byte(r, &b)) ||
            (rc = read_string(r, b, &user, depth + 1))) {
            free(user.s);
            return rc;
        }
        char *j = wa_jid_format(user.s ? user.s : "", user.len, device,
                                wa_jid_server_for_domain((uint8_t)domain));
        free(user.s);
        if (!j)
            return WA_NODE_ENOMEM;
        rc = ds_put(d, j, strlen(j));
        free(j);
        return rc;
    }
    case TAG_FB_JID: {
        dstr_t user = {0}, server = {0};
        size_t device;
        if ((rc = rd_byte(r, &b)) || (rc = read_string(r, b, &user, depth + 1)) ||
            (rc = rd_int(r, 2, &device)) || (rc = rd_byte(r, &b)) ||
            (rc = read_string(r, b, &server, depth + 1))) {
            free(user.s);
            free(server.s);
            return rc;
        }
        char tmp[32];
        snprintf(tmp, sizeof(tmp), ":%zu@", device);
        if (!(rc = ds_put(d, user.s ? user.s : "", user.len)) &&
            !(rc = ds_put(d, tmp, strlen(tmp))))
            rc = ds_put(d, server.s ? server.s : "", server.len);
        free(user.s);
        free(server.s);
        return rc;
    }
    case TAG_INTEROP_JID: {
        dstr_t user = {0}, server = {0};
        size_t device, integrator;
        if ((rc = rd_byte(r, &b)) || (rc = read_string(r, b, &user, depth + 1)) ||
            (rc = rd_int(r, 2, &device)) || (rc = rd_int(r, 2, &integrator))) {
            free(user.s);
            return rc;
        }
        /* the server string is optional at the end of the input */
        size_t save = r->pos;
        if (rd_byte(r, &b) || read_string(r, b, &server, depth + 1)) {
            r->pos = save;
            free(server.s);
            server.s = NULL;
            server.len = 0;
        }
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%zu-", integrator);
        char tmp2[32];
        snprintf(tmp2, sizeof(tmp2), ":%zu@", device);
        if (!(rc = ds_put(d, tmp, strlen(tmp))) &&
            !(rc = ds_put(d, user.s ? user.s : "", user.len)) &&
            !(rc = ds_put(d, tmp2, strlen(tmp2))))
            rc = server.s ? ds_put(d, server.s, server.len) : ds_put(d, "interop", 7);
        free(user.s);
        free(server.s);
        return rc;
    }
    }
    return WA_NODE_EBADTAG;
}

/* Reads a string into a new heap C string. */
static int read_cstring(rd_t *r, char **out)
{
    unsigned tag;
    dstr_t d = {0};
    int rc = rd_byte(r, &tag);
    if (!rc)
        rc = read_string(r, tag, &d, 0);
    if (!rc && !d.s)
        rc = ds_put(&d, "", 0);
    if (rc) {
        free(d.s);
        return rc;
    }
    *out = d.s;
    return 0;
}

static int read_list_size(rd_t *r, unsigned tag, size_t *n)
{
    unsigned b;
    switch (tag) {
    case TAG_LIST_EMPTY:
        *n = 0;
        return 0;
    case TAG_LIST_8: {
        int rc = rd_byte(r, &b);
        *n = b;
        return rc;
    }
    case TAG_LIST_16:
        return rd_int(r, 2, n);
    }
    return WA_NODE_EBADLIST;
}

/* Keeps the last value of a key given more than once (as a JS object
 * does), at the position of its first occurrence. Linear in the number of
 * attributes: a hash table of their keys, not a comparison of every pair
 * (a node may carry 32767 attributes). */
static uint32_t key_hash(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h;
}

static int dedup_attrs(wa_node_t *n)
{
    size_t cnt = n->nattrs;
    if (cnt < 2)
        return 0;
    size_t cap = 16;
    while (cap < cnt * 2)
        cap <<= 1;
    size_t *slot = malloc(cap * sizeof(*slot)); /* attribute index + 1, 0 = empty */
    if (!slot)
        return WA_NODE_ENOMEM;
    memset(slot, 0, cap * sizeof(*slot));
    size_t kept = 0;
    for (size_t i = 0; i < cnt; i++) {
        wa_node_attr_t a = n->attrs[i];
        size_t h = key_hash(a.key) & (cap - 1);
        while (slot[h] && strcmp(n->attrs[slot[h] - 1].key, a.key) != 0)
            h = (h + 1) & (cap - 1);
        if (slot[h]) { /* a repeated key: its last value, its first place */
            wa_node_attr_t *first = &n->attrs[slot[h] - 1];
            free(first->value);
            first->value = a.value;
            free(a.key);
        } else {
            n->attrs[kept] = a;
            slot[h] = ++kept;
        }
    }
    n->nattrs = kept;
    free(slot);
    return 0;
}

static int decode_node(rd_t *r, wa_node_t **out, int depth)
{
    unsigned tag;
    size_t size;
    int rc;
    *out = NULL;
    if (depth > WA_NODE_MAX_DEPTH)
        return WA_NODE_ETOODEEP;
    if ((rc = rd_byte(r, &tag)) || (rc = read_list_size(r, tag, &size)))
        return rc;
    if (size == 0)
        return WA_NODE_EBADLIST;
    /* every node and attribute is an allocation: bound them per frame, or
     * a few bytes each could make a frame cost gigabytes */
    if (++r->nodes > WA_NODE_MAX_NODES || (r->attrs += (size - 1) / 2) > WA_NODE_MAX_ATTRS)
        return WA_NODE_ETOOBIG;
    wa_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return WA_NODE_ENOMEM;
    if ((rc = read_cstring(r, &n->tag)))
        goto fail;
    if (!n->tag[0]) {
        rc = WA_NODE_EBADLIST;
        goto fail;
    }
    size_t nattrs = (size - 1) / 2;
    if (nattrs > (r->len - r->pos) / 2) {
        rc = WA_NODE_ETRUNCATED;
        goto fail;
    }
    if (nattrs) {
        n->attrs = calloc(nattrs, sizeof(*n->attrs));
        if (!n->attrs) {
            rc = WA_NODE_ENOMEM;
            goto fail;
        }
        n->attrs_cap_ = nattrs;
    }
    for (size_t i = 0; i < nattrs; i++) {
        char *k = NULL, *v = NULL;
        if ((rc = read_cstring(r, &k)) || (rc = read_cstring(r, &v))) {
            free(k);
            goto fail;
        }
        n->attrs[n->nattrs].key = k;
        n->attrs[n->nattrs].value = v;
        n->nattrs++;
    }
    if ((rc = dedup_attrs(n)))
        goto fail;
    if (size % 2 == 0) {
        unsigned ct;
        if ((rc = rd_byte(r, &ct)))
            goto fail;
        if (ct == TAG_LIST_EMPTY || ct == TAG_LIST_8 || ct == TAG_LIST_16) {
            size_t count;
            if ((rc = read_list_size(r, ct, &count)))
                goto fail;
            n->kind = WA_NODE_LIST;
            if (count > (r->len - r->pos) / 2) {
                rc = WA_NODE_ETRUNCATED;
                goto fail;
            }
            if (count > WA_NODE_MAX_NODES - r->nodes) {
                rc = WA_NODE_ETOOBIG;
                goto fail;
            }
            if (count) {
                n->children = calloc(count, sizeof(*n->children));
                if (!n->children) {
                    rc = WA_NODE_ENOMEM;
                    goto fail;
                }
                n->children_cap_ = count;
            }
            for (size_t i = 0; i < count; i++) {
                if ((rc = decode_node(r, &n->children[i], depth + 1)))
                    goto fail;
                n->nchildren++;
            }
        } else if (ct == TAG_BINARY_8 || ct == TAG_BINARY_20 || ct == TAG_BINARY_32) {
            size_t len;
            const uint8_t *p;
            if ((rc = read_len_for(r, ct, &len)) || (rc = rd_bytes(r, len, &p)) ||
                (rc = set_data(n, WA_NODE_BYTES, p, len)))
                goto fail;
        } else {
            dstr_t d = {0};
            if ((rc = read_string(r, ct, &d, 0))) {
                free(d.s);
                goto fail;
            }
            n->kind = WA_NODE_STRING;
            if (!d.s && (rc = ds_put(&d, "", 0)))
                goto fail;
            n->data = (uint8_t *)d.s;
            n->len = d.len;
        }
    }
    *out = n;
    return 0;
fail:
    wa_node_free(n);
    return rc;
}

int wa_node_decode_raw(const uint8_t *buf, size_t len, wa_node_t **out, size_t *used)
{
    rd_t r = {buf, len, 0, 0, 0};
    int rc = decode_node(&r, out, 0);
    if (rc == 0 && used)
        *used = r.pos;
    return rc;
}

static int inflate_all(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return WA_NODE_ENOMEM;
    size_t cap = len * 4 + 256, n = 0;
    if (cap > WA_NODE_MAX_INFLATED)
        cap = WA_NODE_MAX_INFLATED;
    uint8_t *buf = malloc(cap);
    int rc = WA_NODE_ENOMEM;
    if (!buf)
        goto done;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        if (n == cap) {
            if (cap >= WA_NODE_MAX_INFLATED) {
                rc = WA_NODE_ETOOBIG;
                goto done;
            }
            size_t ncap = cap * 2 > WA_NODE_MAX_INFLATED ? WA_NODE_MAX_INFLATED : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb)
                goto done;
            buf = nb;
            cap = ncap;
        }
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n);
        int z = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (z == Z_STREAM_END)
            break;
        if (z == Z_BUF_ERROR && zs.avail_out != 0) {
            rc = WA_NODE_EZLIB; /* input ended before the stream did */
            goto done;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = WA_NODE_EZLIB;
            goto done;
        }
    }
    *out = buf;
    *out_len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    inflateEnd(&zs);
    return rc;
}

int wa_node_decode(const uint8_t *buf, size_t len, wa_node_t **out)
{
    *out = NULL;
    if (len < 1)
        return WA_NODE_ETRUNCATED;
    const uint8_t *p = buf + 1;
    size_t plen = len - 1;
    uint8_t *inflated = NULL;
    if (buf[0] & 2) {
        int rc = inflate_all(p, plen, &inflated, &plen);
        if (rc)
            return rc;
        p = inflated;
    }
    size_t used = 0;
    int rc = wa_node_decode_raw(p, plen, out, &used);
    if (rc == 0 && used != plen) {
        wa_node_free(*out);
        *out = NULL;
        rc = WA_NODE_ETRAILING;
    }
    free(inflated);
    return rc;
}

/* --- text and comparison --- */

static void txt_escaped(wbuf_t *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put8(w, '\\');
            put8(w, c);
        } else if (c < 0x20 || c == 0x7f) {
            char t[8];
            snprintf(t, sizeof(t), "\\x%02x", c);
            put(w, t, 4);
        } else {
            put8(w, c);
        }
    }
}

static void to_text(wbuf_t *w, const wa_node_t *n, int hide, int depth)
{
    if (depth > WA_NODE_MAX_DEPTH)
        return;
    put8(w, '<');
    put(w, n->tag, strlen(n->tag));
    for (size_t i = 0; i < n->nattrs; i++) {
        put8(w, ' ');
        put(w, n->attrs[i].key, strlen(n->attrs[i].key));
        put(w, "=\"", 2);
        txt_escaped(w, n->attrs[i].value, strlen(n->attrs[i].value));
        put8(w, '"');
    }
    if (n->kind == WA_NODE_NONE) {
        put(w, "/>", 2);
        return;
    }
    put8(w, '>');
    if (n->kind == WA_NODE_LIST) {
        for (size_t i = 0; i < n->nchildren; i++)
            to_text(w, n->children[i], hide, depth + 1);
    } else if (n->kind == WA_NODE_STRING) {
        put8(w, '"');
        txt_escaped(w, (const char *)n->data, n->len);
        put8(w, '"');
    } else if (hide) {
        char t[32];
        snprintf(t, sizeof(t), "[%zu bytes]", n->len);
        put(w, t, strlen(t));
    } else {
        static const char hex[] = "0123456789abcdef";
        put8(w, '#');
        for (size_t i = 0; i < n->len; i++) {
            put8(w, (unsigned)hex[n->data[i] >> 4]);
            put8(w, (unsigned)hex[n->data[i] & 15]);
        }
    }
    put(w, "</", 2);
    put(w, n->tag, strlen(n->tag));
    put8(w, '>');
}

char *wa_node_to_text(const wa_node_t *n, int hide_bytes)
{
    wbuf_t w = {0};
    to_text(&w, n, hide_bytes, 0);
    put8(&w, 0);
    if (w.err) {
        free(w.buf);
        return NULL;
    }
    return (char *)w.buf;
}

int wa_node_equal(const wa_node_t *a, const wa_node_t *b)
{
    if (strcmp(a->tag, b->tag) || a->nattrs != b->nattrs || a->kind != b->kind)
        return 0;
    for (size_t i = 0; i < a->nattrs; i++)
        if (strcmp(a->attrs[i].key, b->attrs[i].key) ||
            strcmp(a->attrs[i].value, b->attrs[i].value))
            return 0;
    if (a->kind == WA_NODE_BYTES || a->kind == WA_NODE_STRING)
        return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len));
    if (a->kind == WA_NODE_LIST) {
        if (a->nchildren != b->nchildren)
            return 0;
        for (size_t i = 0; i < a->nchildren; i++)
            if (!wa_node_equal(a->children[i], b->children[i]))
                return 0;
    }
    return 1;
}
