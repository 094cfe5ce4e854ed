/* The SSE fan-out benchmark's baseline: a bare single-thread epoll HTTP/1.1
 * server that keeps every GET .../events connection as an SSE subscriber and,
 * on POST /bench/change, flips a status and broadcasts one event to all of
 * them (never blocking, never dropping: a slow reader's backlog is kept in a
 * per-connection pending buffer). GET /healthz answers {"status":"ok"}.
 * libc only; listens on 127.0.0.1. Benchmarks only. Usage: sse-bcast PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_CAP 8192
#define MAX_EVENTS 1024
#define LISTEN_TAG NULL

enum { K_HEAD, K_BODY, K_SUB, K_RESP };

struct client {
    struct client *prev, *next; /* all live clients; next links the graveyard */
    int fd;
    uint8_t kind;
    uint8_t dead;
    uint8_t out_armed; /* EPOLLOUT in the interest set */
    uint32_t sub_idx;  /* index in server.subs when kind == K_SUB */
    char *in;          /* request head being read; freed once parsed */
    uint32_t in_len;
    uint32_t out_len, out_off, out_cap;
    char *out; /* unsent bytes, allocated only when a write falls short */
    uint64_t body_left;
};

struct server {
    int lfd, ep, spare_fd;
    struct client *all;
    struct client *graveyard;
    struct client **subs;
    uint32_t nsubs, subs_cap;
    int qr_ready;
    int64_t seq;
    int64_t changed_ms;
    char ev[192];
    size_t ev_len;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void format_event(struct server *s)
{
    int n = snprintf(s->ev, sizeof(s->ev),
                     "id: %" PRId64 "\nevent: status\ndata: {\"state\":\"%s\",\"seq\":%" PRId64
                     ",\"changedMs\":%" PRId64 "}\n\n",
                     s->seq, s->qr_ready ? "QR_READY" : "CONNECTING", s->seq, s->changed_ms);
    s->ev_len = n > 0 && (size_t)n < sizeof(s->ev) ? (size_t)n : 0;
}

static void client_close(struct server *s, struct client *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    close(c->fd);
    if (c->kind == K_SUB) {
        struct client *last = s->subs[--s->nsubs];
        s->subs[c->sub_idx] = last;
        last->sub_idx = c->sub_idx;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Freed after the current epoll batch, which may still name it. */
    c->next = s->graveyard;
    s->graveyard = c;
}

static void client_free(struct client *c)
{
    free(c->in);
    free(c->out);
    free(c);
}

static void bury(struct server *s)
{
    while (s->graveyard) {
        struct client *c = s->graveyard;
        s->graveyard = c->next;
        client_free(c);
    }
}

static int set_out_armed(struct server *s, struct client *c, int on)
{
    if (c->out_armed == on)
        return 0;
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
        return -1;
    c->out_armed = (uint8_t)on;
    return 0;
}

static int append_out(struct client *c, const char *p, size_t n)
{
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if ((size_t)c->out_len + n > UINT32_MAX)
        return -1;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? (size_t)c->out_cap * 2 : 256;
        while (cap < c->out_len + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        char *q = realloc(c->out, cap);
        if (q == NULL)
            return -1;
        c->out = q;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    return 0;
}

/* Writes what the socket takes; the rest waits in c->out behind EPOLLOUT.
 * Returns -1 if the client must be closed. */
static int client_send(struct server *s, struct client *c, const char *p, size_t n)
{
    if (c->out_len > c->out_off)
        return append_out(c, p, n) == 0 && set_out_armed(s, c, 1) == 0 ? 0 : -1;
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        w = 0;
    }
    if ((size_t)w == n)
        return 0;
    if (append_out(c, p + w, n - (size_t)w) != 0 || set_out_armed(s, c, 1) != 0)
        return -1;
    return 0;
}

/* Flushes c->out. Returns 1 when empty, 0 when more is left, -1 on error. */
static int client_flush(struct client *c)
{
    while (c->out_len > c->out_off) {
        ssize_t w =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->out_off += (uint32_t)w;
    }
    c->out_len = c->out_off = 0;
    if (c->out_cap > 4096) { /* give back what a slow burst needed */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 1;
}

/* Sends a whole response then closes (now or once EPOLLOUT drains it). */
static void respond(struct server *s, struct client *c, const char *status, const char *body)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n%s",
                     status, strlen(body), body);
    free(c->in);
    c->in = NULL;
    c->kind = K_RESP;
    if (n <= 0 || (size_t)n >= sizeof(buf) || client_send(s, c, buf, (size_t)n) != 0 ||
        c->out_len == c->out_off)
        client_close(s, c);
}

static void broadcast(struct server *s)
{
    s->qr_ready = !s->qr_ready;
    s->seq++;
    s->changed_ms = now_ms();
    format_event(s);
    /* Backwards: client_close moves the last subscriber into the hole. */
    for (uint32_t i = s->nsubs; i-- > 0;) {
        struct client *c = s->subs[i];
        if (client_send(s, c, s->ev, s->ev_len) != 0)
            client_close(s, c);
    }
}

static void do_change(struct server *s, struct client *c)
{
    broadcast(s);
    char body[64];
    snprintf(body, sizeof(body), "{\"ok\":true,\"subscribers\":%" PRIu32 "}", s->nsubs);
    respond(s, c, "200 OK", body);
}

static void subscribe(struct server *s, struct client *c)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\n\r\n";
    char buf[sizeof(head) + sizeof(s->ev)];
    free(c->in);
    c->in = NULL;
    if (s->nsubs == s->subs_cap) {
        uint32_t cap = s->subs_cap ? s->subs_cap * 2 : 1024;
        struct client **p = realloc(s->subs, cap * sizeof(*p));
        if (p == NULL) {
            client_close(s, c);
            return;
        }
        s->subs = p;
        s->subs_cap = cap;
    }
    c->kind = K_SUB;
    c->sub_idx = s->nsubs;
    s->subs[s->nsubs++] = c;
    memcpy(buf, head, sizeof(head) - 1);
    memcpy(buf + sizeof(head) - 1, s->ev, s->ev_len);
    if (client_send(s, c, buf, sizeof(head) - 1 + s->ev_len) != 0)
        client_close(s, c);
}

static uint64_t content_length(const char *head, size_t len)
{
    static const char name[] = "\ncontent-length:";
    for (size_t i = 0; i + sizeof(name) - 1 <= len; i++) {
        if (head[i] != '\n' || strncasecmp(head + i, name, sizeof(name) - 1) != 0)
            continue;
        const char *p = head + i + sizeof(name) - 1;
        while (*p == ' ' || *p == '\t')
            p++;
        uint64_t v = 0;
        for (int d = 0; *p >= '0' && *p <= '9' && d < 18; p++, d++)
            v = v * 10 + (uint64_t)(*p - '0');
        return v;
    }
    return 0;
}

/* The head (terminated, NUL after it) is in c->in; `extra` bytes follow it. */
static void route(struct server *s, struct client *c, size_t head_len, size_t extra)
{
    const char *h = c->in;
    const char *sp1 = memchr(h, ' ', head_len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - h)) : NULL;
    if (sp1 == NULL || sp2 == NULL) {
        respond(s, c, "400 Bad Request", "{\"error\":\"bad request\"}");
        return;
    }
    size_t mlen = (size_t)(sp1 - h);
    const char *path = sp1 + 1;
    const char *q = memchr(path, '?', (size_t)(sp2 - path));
    size_t plen = (size_t)((q ? q : sp2) - path);
#define IS(ptr, len, lit) ((len) == sizeof(lit) - 1 && memcmp((ptr), (lit), sizeof(lit) - 1) == 0)
    int get = IS(h, mlen, "GET");
    int post = IS(h, mlen, "POST");
    if (get && IS(path, plen, "/healthz")) {
        respond(s, c, "200 OK", "{\"status\":\"ok\"}");
    } else if (get && plen >= 7 && memcmp(path + plen - 7, "/events", 7) == 0) {
        subscribe(s, c);
    } else if (post && IS(path, plen, "/bench/change")) {
        uint64_t cl = content_length(h, head_len);
        if (cl > extra) {
            c->body_left = cl - extra;
            c->kind = K_BODY;
            free(c->in);
            c->in = NULL;
        } else {
            do_change(s, c);
        }
    } else {
        respond(s, c, "404 Not Found", "{\"error\":\"not found\"}");
    }
#undef IS
}

static void on_head_readable(struct server *s, struct client *c)
{
    char buf[HEAD_CAP];
    ssize_t n = read(c->fd, buf, HEAD_CAP - c->in_len);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            client_close(s, c);
        return;
    }
    char *p = realloc(c->in, c->in_len + (size_t)n + 1);
    if (p == NULL) {
        client_close(s, c);
        return;
    }
    c->in = p;
    memcpy(c->in + c->in_len, buf, (size_t)n);
    size_t from = c->in_len > 3 ? c->in_len - 3 : 0;
    c->in_len += (uint32_t)n;
    c->in[c->in_len] = '\0';
    const char *end = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
    if (end != NULL) {
        size_t head_len = (size_t)(end - c->in) + 4;
        route(s, c, head_len, c->in_len - head_len);
    } else if (c->in_len >= HEAD_CAP) {
        respond(s, c, "431 Request Header Fields Too Large", "{\"error\":\"head too large\"}");
    }
}

/* Body of POST /bench/change, or anything a subscriber sends: discarded. */
static void on_drain_readable(struct server *s, struct client *c)
{
    char buf[4096];
    size_t want = sizeof(buf);
    if (c->kind == K_BODY && c->body_left < want)
        want = (size_t)c->body_left;
    ssize_t n = read(c->fd, buf, want);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            client_close(s, c);
        return;
    }
    if (c->kind == K_BODY) {
        c->body_left -= (uint64_t)n;
        if (c->body_left == 0)
            do_change(s, c);
    }
}

static void on_client(struct server *s, struct client *c, uint32_t ev)
{
    if ((ev & EPOLLOUT) && !c->dead) {
        int r = client_flush(c);
        if (r < 0 || (r == 1 && c->kind == K_RESP)) {
            client_close(s, c);
            return;
        }
        if (r == 1 && set_out_armed(s, c, 0) != 0) {
            client_close(s, c);
            return;
        }
    }
    if (c->dead)
        return;
    if (ev & (EPOLLERR | EPOLLHUP)) {
        client_close(s, c);
        return;
    }
    if ((ev & EPOLLRDHUP) && c->kind != K_HEAD && c->kind != K_BODY) {
        client_close(s, c); /* a subscriber or a response reader hung up */
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP)) {
        if (c->kind == K_HEAD)
            on_head_readable(s, c);
        else
            on_drain_readable(s, c);
    }
}

static void on_accept(struct server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
                /* Out of fds: take the pending one and drop it, not spin. */
                close(s->spare_fd);
                fd = accept(s->lfd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN or otherwise: wait for the next wakeup */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct client *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->kind = K_HEAD;
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->all;
        if (s->all)
            s->all->prev = c;
        s->all = c;
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("sse-bcast: setrlimit");
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int serve(struct server *s, const sigset_t *waitmask)
{
    struct epoll_event evs[MAX_EVENTS];
    while (!stop_flag) {
        int n = epoll_pwait(s->ep, evs, MAX_EVENTS, -1, waitmask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("sse-bcast: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == LISTEN_TAG)
                on_accept(s);
            else
                on_client(s, evs[i].data.ptr, evs[i].events);
        }
        bury(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: sse-bcast PORT\n");
        return 2;
    }
    raise_nofile();

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask); /* delivered only inside epoll_pwait */
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server s;
    memset(&s, 0, sizeof(s));
    s.qr_ready = 1;
    s.seq = 1;
    s.changed_ms = now_ms();
    format_event(&s);
    s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s.lfd = listen_on((int)port);
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 1;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = LISTEN_TAG};
    if (s.lfd < 0 || s.ep < 0 || epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &e) != 0) {
        fprintf(stderr, "sse-bcast: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
    } else {
        fprintf(stderr, "sse-bcast: listening on 127.0.0.1:%ld\n", port);
        rc = serve(&s, &waitmask);
    }

    while (s.all)
        client_close(&s, s.all);
    bury(&s);
    free(s.subs);
    if (s.lfd >= 0)
        close(s.lfd);
    if (s.ep >= 0)
        close(s.ep);
    if (s.spare_fd >= 0)
        close(s.spare_fd);
    return rc;
}
