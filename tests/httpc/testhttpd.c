/* The test HTTP server (see testhttpd.h): an accept thread plus one thread
 * per connection, blocking I/O bounded by poll() on the socket and a stop
 * pipe, optional TLS with a certificate made here with OpenSSL. */
#include "tests/httpc/testhttpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CONNS 64

typedef struct conn {
    testhttpd_t *s;
    int fd;
    SSL *ssl;
    pthread_t th;
} conn_t;

struct testhttpd {
    int lfd, port;
    int stop_pipe[2];
    SSL_CTX *ctx;
    testhttpd_handler_t h;
    void *arg;
    pthread_t accept_th;
    pthread_mutex_t mu;
    conn_t *conns[MAX_CONNS];
    int nconns;
    int requests;
};

/* Waits until `fd` is readable (1), the server stops or 10 s pass (0). */
static int wait_readable(conn_t *c)
{
    if (c->ssl && SSL_pending(c->ssl) > 0)
        return 1;
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = c->s->stop_pipe[0], .events = POLLIN}};
    if (poll(p, 2, 10000) <= 0 || (p[1].revents & POLLIN))
        return 0;
    return 1;
}

static int conn_read(conn_t *c, char *buf, size_t n)
{
    if (!wait_readable(c))
        return -1;
    if (c->ssl)
        return SSL_read(c->ssl, buf, (int)n);
    return (int)read(c->fd, buf, n);
}

static int conn_write(conn_t *c, const char *buf, size_t n)
{
    while (n > 0) {
        int w = c->ssl ? SSL_write(c->ssl, buf, (int)n) : (int)write(c->fd, buf, n);
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    testhttpd_t *s = c->s;
    char *req = calloc(1, 65536 + 1);
    size_t len = 0;
    char *hdr_end = NULL;
    if (c->ssl && SSL_accept(c->ssl) != 1)
        goto out;
    while (req && !hdr_end && len < 65536) {
        int n = conn_read(c, req + len, 65536 - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = 0;
        hdr_end = strstr(req, "\r\n\r\n");
    }
    if (!hdr_end)
        goto out;
    size_t hlen = (size_t)(hdr_end - req) + 4;
    const char *cl = strcasestr(req, "\r\ncontent-length:");
    size_t want = cl && cl < hdr_end ? strtoul(cl + 17, NULL, 10) : 0;
    while (len - hlen < want && len < 65536) {
        int n = conn_read(c, req + len, 65536 - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = 0;
    }
    char method[16] = "", path[1024] = "";
    if (sscanf(req, "%15s %1023s", method, path) != 2)
        goto out;
    *hdr_end = 0;
    const char *line_end = strstr(req, "\r\n");
    testhttpd_req_t r = {.method = method,
                         .path = path,
                         .headers = line_end ? line_end + 2 : "",
                         .body = req + hlen,
                         .body_len = len - hlen};
    testhttpd_resp_t resp = {0};
    pthread_mutex_lock(&s->mu);
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    s->h(s->arg, &r, &resp);
    if (resp.hang) {
        char junk[256];
        while (conn_read(c, junk, sizeof(junk)) > 0) {
        }
        free(resp.owned);
        goto out;
    }
    const char *body = resp.body ? resp.body : "";
    size_t blen = resp.body_len ? resp.body_len : strlen(body);
    size_t reps = resp.repeat ? resp.repeat : 1;
    char head[1024];
    int hn = snprintf(head, sizeof(head), "HTTP/1.1 %d Test\r\nConnection: close\r\n%s",
                      resp.status ? resp.status : 200, resp.headers ? resp.headers : "");
    if (!resp.no_length)
        hn +=
            snprintf(head + hn, sizeof(head) - (size_t)hn, "Content-Length: %zu\r\n", blen * reps);
    hn += snprintf(head + hn, sizeof(head) - (size_t)hn, "\r\n");
    if (conn_write(c, head, (size_t)hn) == 0)
        for (size_t i = 0; i < reps && conn_write(c, body, blen) == 0; i++) {
        }
    free(resp.owned);
out:
    free(req);
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    testhttpd_t *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 || (p[1].revents & POLLIN))
            return NULL;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_t *c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&s->mu);
        int room = s->nconns < MAX_CONNS;
        if (c && room)
            s->conns[s->nconns++] = c;
        pthread_mutex_unlock(&s->mu);
        if (!c || !room) {
            free(c);
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (s->ctx) {
            c->ssl = SSL_new(s->ctx);
            SSL_set_fd(c->ssl, fd);
        }
        pthread_create(&c->th, NULL, conn_main, c);
    }
}

/* A self-signed certificate for localhost / 127.0.0.1, written to `path`. */
static SSL_CTX *make_tls(const char *path)
{
    EVP_PKEY *key = EVP_EC_gen("prime256v1");
    X509 *x = X509_new();
    SSL_CTX *ctx = NULL;
    FILE *f = NULL;
    if (!key || !x)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    const char *exts[][2] = {{"subjectAltName", "DNS:localhost,IP:127.0.0.1"},
                             {"basicConstraints", "critical,CA:TRUE"}};
    for (size_t i = 0; i < 2; i++) {
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
        if (!e)
            goto out;
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (!X509_sign(x, key, EVP_sha256()) || !(f = fopen(path, "w")) || !PEM_write_X509(f, x))
        goto out;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx && (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
out:
    if (f)
        fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

testhttpd_t *testhttpd_start(int tls, const char *cert_path, testhttpd_handler_t h, void *arg)
{
    /* clients hang up mid-answer on purpose (size bounds, timeouts): a write
     * to them must fail, not kill the test */
    signal(SIGPIPE, SIG_IGN);
    testhttpd_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->h = h;
    s->arg = arg;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->lfd, 16) != 0 || getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0 ||
        pipe(s->stop_pipe) != 0 || (tls && !(s->ctx = make_tls(cert_path)))) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_mutex_init(&s->mu, NULL);
    pthread_create(&s->accept_th, NULL, accept_main, s);
    return s;
}

int testhttpd_port(const testhttpd_t *s)
{
    return s->port;
}

int testhttpd_requests(testhttpd_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void testhttpd_stop(testhttpd_t *s)
{
    if (!s)
        return;
    (void)!write(s->stop_pipe[1], "x", 1);
    pthread_join(s->accept_th, NULL);
    for (int i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i]->th, NULL);
        free(s->conns[i]);
    }
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
