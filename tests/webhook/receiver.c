/* The test webhook receiver (see receiver.h). */
#include "tests/webhook/receiver.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RCV_BUF 65536

void whrcv_serve(int fd, whrcv_fn fn, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char *buf = malloc(RCV_BUF);
    size_t len = 0;
    while (buf) {
        char *end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
        if (!end) {
            ssize_t n = len < RCV_BUF ? read(fd, buf + len, RCV_BUF - len) : -1;
            if (n <= 0)
                break;
            len += (size_t)n;
            continue;
        }
        size_t hlen = (size_t)(end - buf) + 4, clen = 0;
        uint64_t id = 0;
        for (char *p = buf; p < end;) {
            char *nl = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
            if (!nl)
                break;
            if (!strncasecmp(p, "content-length:", 15))
                clen = strtoul(p + 15, NULL, 10);
            else if (!strncasecmp(p, "webhook-id: evt_", 16))
                id = strtoull(p + 16, NULL, 10);
            p = nl + 2;
        }
        if (hlen + clen > RCV_BUF)
            break;
        int eof = 0;
        while (!eof && len < hlen + clen) {
            ssize_t n = read(fd, buf + len, RCV_BUF - len);
            if (n <= 0)
                eof = 1;
            else
                len += (size_t)n;
        }
        if (eof)
            break;
        fn(arg, buf, hlen, id);
        static const char ok[] = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if (write(fd, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
            break;
        memmove(buf, buf + hlen + clen, len - hlen - clen);
        len -= hlen + clen;
    }
    free(buf);
}

typedef struct {
    int fd;
    whrcv_fn fn;
    void *arg;
} conn_t;

static void *serve_thread(void *p)
{
    conn_t c = *(conn_t *)p;
    free(p);
    whrcv_serve(c.fd, c.fn, c.arg);
    close(c.fd);
    return NULL;
}

void whrcv_accept_loop(int lfd, const volatile int *stop, whrcv_fn fn, void *arg)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (*stop)
                return;
            continue;
        }
        conn_t *c = malloc(sizeof(*c));
        pthread_t th;
        if (!c || (*c = (conn_t){fd, fn, arg}, pthread_create(&th, NULL, serve_thread, c) != 0)) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(th);
    }
}
