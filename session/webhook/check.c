/* The pure pieces of webhook delivery (see webhook.h, "pieces"): what a
 * target URL may be, which addresses are private, the Standard Webhooks
 * secret format and signature, and the retry delay. No I/O, no state. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/base64.h"
#include "session/webhook/webhook.h"

static int v4_private(uint32_t a)
{
    static const struct {
        uint32_t net, mask;
    } nets[] = {
        {0x00000000, 0xff000000}, /* 0.0.0.0/8 "this network" */
        {0x0a000000, 0xff000000}, /* 10/8 */
        {0x64400000, 0xffc00000}, /* 100.64/10 CGNAT */
        {0x7f000000, 0xff000000}, /* 127/8 loopback */
        {0xa9fe0000, 0xffff0000}, /* 169.254/16 link-local, cloud metadata */
        {0xac100000, 0xfff00000}, /* 172.16/12 */
        {0xc0000000, 0xffffff00}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200, 0xffffff00}, /* 192.0.2/24 TEST-NET-1 */
        {0xc0a80000, 0xffff0000}, /* 192.168/16 */
        {0xc6120000, 0xfffe0000}, /* 198.18/15 benchmarking */
        {0xc6336400, 0xffffff00}, /* 198.51.100/24 TEST-NET-2 */
        {0xcb007100, 0xffffff00}, /* 203.0.113/24 TEST-NET-3 */
        {0xe0000000, 0xf0000000}, /* 224/4 multicast */
        {0xf0000000, 0xf0000000}, /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
        if ((a & nets[i].mask) == nets[i].net)
            return 1;
    return 0;
}

static uint32_t v4_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int v6_private(const uint8_t *a)
{
    static const uint8_t zero[16];
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) /* :: and ::1 */
        return 1;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, 12)) /* ::ffff:a.b.c.d */
        return v4_private(v4_at(a + 12));
    if (!memcmp(a, zero, 12)) /* ::a.b.c.d (deprecated compatible form) */
        return 1;
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, nat64, 12)) /* 64:ff9b::/96 */
        return v4_private(v4_at(a + 12));
    if (a[0] == 0x20 && a[1] == 0x02) /* 2002::/16 6to4 */
        return v4_private(v4_at(a + 2));
    if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 ULA (fd00:ec2::254 metadata too) */
        return 1;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
        return 1;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) /* fec0::/10 site-local */
        return 1;
    if (a[0] == 0xff) /* multicast */
        return 1;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) /* 2001:db8::/32 */
        return 1;
    if (a[0] == 0x01 && !memcmp(a + 1, zero, 7)) /* 100::/64 discard */
        return 1;
    return 0;
}

int wh_addr_private(const struct sockaddr *sa, socklen_t len)
{
    if (!sa)
        return 1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_private(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return v6_private(in6->sin6_addr.s6_addr);
    }
    return 1; /* anything else (unix sockets, ...) is not a web address */
}

/* Parses a literal address host; 1 when it is one (and *priv says whether
 * it is private), 0 when host is a name. */
static int literal(const char *host, int *priv)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
        *priv = wh_addr_private((struct sockaddr *)&in, sizeof(in));
        return 1;
    }
    char buf[64];
    const char *pct = strchr(host, '%'); /* a zone id: fe80::1%eth0 */
    size_t hl = pct ? (size_t)(pct - host) : strlen(host);
    if (hl < sizeof(buf)) {
        memcpy(buf, host, hl);
        buf[hl] = 0;
        if (inet_pton(AF_INET6, buf, &in6.sin6_addr) == 1) {
            *priv = pct ? 1 : wh_addr_private((struct sockaddr *)&in6, sizeof(in6));
            return 1;
        }
    }
    /* forms inet_pton refuses but resolvers take: 2130706433, 0x7f.1, 127.1 */
    int digits_only = 1;
    for (const char *p = host; *p; p++)
        if (!strchr("0123456789.xXabcdefABCDEF", *p))
            digits_only = 0;
    if (digits_only && *host && strchr("0123456789", host[strlen(host) - 1]) &&
        strchr("0123456789", host[0])) {
        *priv = 1; /* a numeric host in a legacy form: refused outright */
        return 1;
    }
    return 0;
}

int wh_url_check(const char *url, int allow_private, char *host, size_t hostlen, const char **why)
{
    *why = NULL;
    if (hostlen)
        host[0] = 0;
    if (!url || !*url) {
        *why = "url is required";
        return WH_EINVAL;
    }
    if (strlen(url) > WH_URL_MAX) {
        *why = "url is too long (at most 2048 bytes)";
        return WH_EINVAL;
    }
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            *why = "url contains spaces or control characters";
            return WH_EINVAL;
        }
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
        *why = "url must start with http:// or https://";
        return WH_EINVAL;
    }
    const char *auth = strstr(url, "://") + 3;
    if (*auth == '/' || *auth == '?' || *auth == 0) {
        *why = "url has no host";
        return WH_EINVAL;
    }
    CURLU *u = curl_url();
    if (!u) {
        *why = "out of memory";
        return WH_ENOMEM;
    }
    int rc = WH_OK;
    char *scheme = NULL, *user = NULL, *pass = NULL, *h = NULL, *frag = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        *why = "url is malformed";
        rc = WH_EINVAL;
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
    if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
        *why = "url must use http or https";
        rc = WH_EINVAL;
    } else if (user || pass) {
        *why = "url must not contain user info (user:password@)";
        rc = WH_EINVAL;
    } else if (frag) {
        *why = "url must not contain a fragment (#...)";
        rc = WH_EINVAL;
    } else if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h || !*h) {
        *why = "url has no host";
        rc = WH_EINVAL;
    }
    if (rc)
        goto out;
    size_t hl = strlen(h);
    const char *hs = h;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        hs = h + 1;
        hl -= 2;
    }
    if (hl + 1 > hostlen) {
        *why = "url host is too long";
        rc = WH_EINVAL;
        goto out;
    }
    memcpy(host, hs, hl);
    host[hl] = 0;
    if (!allow_private) {
        int priv = 0;
        size_t n = strlen(host);
        int local_name = !strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.") ||
                         (n > 10 && !strcasecmp(host + n - 10, ".localhost")) ||
                         (n > 11 && !strcasecmp(host + n - 11, ".localhost."));
        if (local_name || (literal(host, &priv) && priv)) {
            *why = "url points to a private, loopback or link-local address (refused unless "
                   "WEBHOOK_ALLOW_PRIVATE=1)";
            rc = WH_EPRIVATE;
        }
    }
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(pass);
    curl_free(frag);
    curl_free(h);
    curl_url_cleanup(u);
    return rc;
}

int wh_secret_parse(const char *secret, uint8_t key[WH_SECRET_MAX], size_t *len)
{
    *len = 0;
    if (!secret || strncmp(secret, "whsec_", 6))
        return WH_EINVAL;
    const char *b = secret + 6;
    size_t bl = strlen(b);
    if (bl == 0 || bl > 128)
        return WH_EINVAL;
    char buf[132];
    memcpy(buf, b, bl);
    while (bl % 4) /* padding is optional */
        buf[bl++] = '=';
    uint8_t tmp[WH_SECRET_MAX + 3];
    long n = b64_decode(buf, bl, tmp, sizeof(tmp));
    explicit_bzero(buf, sizeof(buf));
    if (n < WH_SECRET_MIN || n > WH_SECRET_MAX) {
        explicit_bzero(tmp, sizeof(tmp));
        return WH_EINVAL;
    }
    memcpy(key, tmp, (size_t)n);
    explicit_bzero(tmp, sizeof(tmp));
    *len = (size_t)n;
    return WH_OK;
}

int wh_sign(const uint8_t *key, size_t keylen, const char *id, int64_t ts, const char *body,
            size_t len, char out[WH_SIG_MAX])
{
    out[0] = 0;
    char pre[160];
    int pl = snprintf(pre, sizeof(pre), "%s.%lld.", id, (long long)ts);
    if (pl < 0 || (size_t)pl >= sizeof(pre))
        return WH_EINVAL;
    uint8_t mac[32];
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int ok = c && EVP_MAC_init(c, key, keylen, params) == 1 &&
             EVP_MAC_update(c, (const uint8_t *)pre, (size_t)pl) == 1 &&
             EVP_MAC_update(c, (const uint8_t *)body, len) == 1 &&
             EVP_MAC_final(c, mac, &outl, sizeof(mac)) == 1 && outl == 32;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    if (!ok)
        return WH_ENOMEM;
    char *b = b64_encode(mac, sizeof(mac));
    explicit_bzero(mac, sizeof(mac));
    if (!b)
        return WH_ENOMEM;
    snprintf(out, WH_SIG_MAX, "v1,%s", b);
    free(b);
    return WH_OK;
}

uint64_t wh_backoff_ms(uint32_t attempts, unsigned base, unsigned cap, uint64_t rnd)
{
    if (attempts == 0)
        return 0;
    uint64_t d = base ? base : 1;
    for (uint32_t i = 1; i < attempts && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    uint64_t half = d / 2;
    return d - half + rnd % (half + 1);
}
