/* Host and Origin guards of the HTTP listener (see guard.h). */
#include "server/guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Splits "name[:port]" / "[v6][:port]" into the name (brackets removed).
 * Returns 0, or -1 when malformed (empty name, bad port, bad brackets). */
static int split_host(const char *s, size_t len, const char **name, size_t *nlen)
{
    const char *port = NULL;
    if (len == 0)
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close == s + 1)
            return -1;
        *name = s + 1;
        *nlen = (size_t)(close - s - 1);
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)))
            return -1; /* an unbracketed IPv6 address is not a Host value */
        *name = s;
        *nlen = colon ? (size_t)(colon - s) : len;
        if (colon)
            port = colon + 1;
        if (*nlen == 0)
            return -1;
    }
    if (port) {
        const char *end = s + len;
        if (port == end || end - port > 5)
            return -1;
        for (const char *p = port; p < end; p++)
            if (!isdigit((unsigned char)*p))
                return -1;
    }
    for (size_t i = 0; i < *nlen; i++)
        if ((unsigned char)(*name)[i] <= ' ' || (*name)[i] == '/' || (*name)[i] == '@')
            return -1;
    return 0;
}

static int eq_nocase(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && strncasecmp(a, b, al) == 0;
}

/* Parses an IP literal; returns AF_INET / AF_INET6 (filling buf) or 0. */
static int ip_literal(const char *name, size_t len, unsigned char buf[16])
{
    char tmp[64];
    if (len == 0 || len >= sizeof(tmp))
        return 0;
    memcpy(tmp, name, len);
    tmp[len] = 0;
    if (inet_pton(AF_INET, tmp, buf) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, tmp, buf) == 1)
        return AF_INET6;
    return 0;
}

static int is_loopback(const char *name, size_t len)
{
    unsigned char a[16];
    if (eq_nocase(name, len, "localhost", 9))
        return 1;
    int fam = ip_literal(name, len, a);
    if (fam == AF_INET)
        return a[0] == 127;
    if (fam == AF_INET6) {
        static const unsigned char one[16] = {[15] = 1};
        return memcmp(a, one, 16) == 0;
    }
    return 0;
}

/* Calls match(item, len, arg) for each trimmed item of a comma-separated
 * list; returns 1 as soon as one matches. */
static int list_any(const char *list, int (*match)(const char *, size_t, const void *),
                    const void *arg)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if (t > p && match(p, (size_t)(t - p), arg))
            return 1;
        p = e;
    }
    return 0;
}

typedef struct {
    const char *s;
    size_t len;
} span_t;

static int match_host_item(const char *item, size_t n, const void *arg)
{
    const span_t *name = arg;
    if (n == 1 && item[0] == '*')
        return 1;
    const char *in;
    size_t inl;
    /* an item may itself carry a port or brackets: compare names only */
    if (split_host(item, n, &in, &inl) != 0) {
        in = item;
        inl = n;
    }
    return eq_nocase(in, inl, name->s, name->len);
}

int guard_host_ok(const guard_t *g, const char *host, size_t len)
{
    const char *name;
    size_t nlen;
    if (!host || split_host(host, len, &name, &nlen) != 0)
        return 0;
    if (is_loopback(name, nlen))
        return 1;
    if (g->bind_host) {
        const char *bn = g->bind_host;
        size_t bl = strlen(bn);
        if (bl > 2 && bn[0] == '[' && bn[bl - 1] == ']') {
            bn++;
            bl -= 2;
        }
        unsigned char a[16], b[16];
        int fb = ip_literal(bn, bl, b), fa = ip_literal(name, nlen, a);
        static const unsigned char zero[16] = {0};
        int wildcard =
            (fb == AF_INET && !memcmp(b, zero, 4)) || (fb == AF_INET6 && !memcmp(b, zero, 16));
        if (wildcard && fa)
            return 1;
        if (fa && fa == fb && !memcmp(a, b, fa == AF_INET ? 4 : 16))
            return 1;
        if (eq_nocase(bn, bl, name, nlen))
            return 1;
    }
    span_t sp = {name, nlen};
    return list_any(g->allowed_hosts, match_host_item, &sp);
}

static int match_origin_item(const char *item, size_t n, const void *arg)
{
    const span_t *o = arg;
    return eq_nocase(item, n, o->s, o->len);
}

static int match_star(const char *item, size_t n, const void *arg)
{
    (void)arg;
    return n == 1 && item[0] == '*';
}

guard_origin_t guard_origin(const guard_t *g, const char *origin, size_t olen, const char *host,
                            size_t hlen)
{
    if (!origin)
        return GUARD_ORIGIN_NONE;
    const char *sep = olen >= 3 ? memchr(origin, ':', olen) : NULL;
    if (sep && (size_t)(origin + olen - sep) > 3 && sep[1] == '/' && sep[2] == '/' && host &&
        hlen > 0) {
        const char *auth = sep + 3;
        size_t alen = (size_t)(origin + olen - auth);
        if (eq_nocase(auth, alen, host, hlen))
            return GUARD_ORIGIN_SAME;
    }
    span_t sp = {origin, olen};
    if (olen > 0 && list_any(g->cors_origins, match_origin_item, &sp))
        return GUARD_ORIGIN_LISTED;
    if (list_any(g->cors_origins, match_star, NULL))
        return GUARD_ORIGIN_ANY;
    return GUARD_ORIGIN_FOREIGN;
}

int guard_may_change_state(guard_origin_t oc, int key_required)
{
    switch (oc) {
    case GUARD_ORIGIN_NONE:
    case GUARD_ORIGIN_SAME:
    case GUARD_ORIGIN_LISTED:
        return 1;
    case GUARD_ORIGIN_ANY:
        return key_required;
    case GUARD_ORIGIN_FOREIGN:
        break;
    }
    return 0;
}
