/* SSE fan-out benchmark client: opens N subscribers to an SSE endpoint
 * (HTTP/1.1, chunked or read-until-close body), waits for every one's first
 * event and prints "ready <connected> <errors>", then reads a count K from
 * stdin and measures, over the next K events of each subscriber, delivery
 * latency (receive time - changedMs), losses, seq gaps and ordering. Single
 * thread, epoll, libc only. Benchmarks only.
 * Usage: sse-load --port P [--host 127.0.0.1] --path PATH --n N
 *                 [--header "Name: value"]... [--timeout-s 30] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
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

#define LINE_CAP 2048    /* per-connection line buffer; longer lines are truncated */
#define MAX_INFLIGHT 500 /* connections between connect() and the end of the response head */
#define RDBUF_SIZE 65536
#define MAX_EVENTS 1024
#define STDIN_TAG UINT64_MAX
#define REQ_CAP 8192

enum { ST_IDLE, ST_CONNECTING, ST_HEAD, ST_BODY, ST_CLOSED };
enum { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END };
enum { ERR_SOCKET, ERR_CONNECT, ERR_STATUS, ERR_CLOSED, ERR_PROTO, ERR_READ, ERR_STALL, ERR_N };

static const char *const err_names[ERR_N] = {"socket",   "connect", "status", "closed",
                                             "protocol", "read",    "stalled"};

struct conn {
    int fd;
    uint8_t state;
    uint8_t chunked;
    uint8_t ch_state;
    uint8_t ch_digits;  /* hex digits seen on the current chunk-size line */
    uint8_t status_ok;  /* status line seen (and was 200) */
    uint8_t cr_pending; /* last SSE line ended with CR: swallow a following LF */
    uint8_t line_trunc;
    uint8_t ev_data; /* current event has a data field */
    uint8_t ev_has_seq;
    uint8_t ev_has_changed;
    uint8_t got_first;
    uint8_t has_prev_seq;
    uint16_t line_len;
    uint16_t sent; /* request bytes sent */
    uint32_t chunk_left;
    uint32_t received; /* events after the first */
    int64_t ev_seq;
    int64_t ev_changed_ms;
    int64_t prev_seq;
    char line[LINE_CAP + 1];
};

struct ctx {
    long n;
    int timeout_s;
    struct sockaddr_in addr;
    char req[REQ_CAP];
    size_t req_len;
    int ep;
    struct conn *conns;
    char *rdbuf;
    long next_connect;
    long inflight;
    long pending_first; /* neither first event nor failed yet */
    long live;          /* got the first event and still open */
    long errors;
    long err_by[ERR_N];
    int ready;
    int stdin_in_epoll;
    char stdin_buf[64];
    size_t stdin_len;
    int have_k;
    long k;
    long below_k; /* live connections with fewer than k events after the first */
    int64_t deadline_us;
    int64_t last_progress_us;
    int64_t *lat;
    size_t nlat, lat_cap;
    uint64_t events;
    uint64_t gaps;
    uint64_t order_errors;
};

static int64_t now_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("sse-load: setrlimit");
    }
}

static void conn_fail(struct ctx *x, struct conn *c, int why)
{
    if (c->state == ST_CLOSED || c->state == ST_IDLE)
        return;
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    if (c->state == ST_CONNECTING || c->state == ST_HEAD)
        x->inflight--;
    if (!c->got_first) {
        x->pending_first--;
    } else {
        x->live--;
        if (x->have_k && c->received < (uint32_t)x->k)
            x->below_k--;
    }
    c->state = ST_CLOSED;
    x->errors++;
    x->err_by[why]++;
    x->last_progress_us = now_us(CLOCK_MONOTONIC);
}

static int lat_push(struct ctx *x, int64_t v)
{
    if (x->nlat == x->lat_cap) {
        size_t cap = x->lat_cap ? x->lat_cap * 2 : 4096;
        int64_t *p = realloc(x->lat, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        x->lat = p;
        x->lat_cap = cap;
    }
    x->lat[x->nlat++] = v;
    return 0;
}

static int on_event(struct ctx *x, struct conn *c, int64_t recv_us)
{
    int rc = 0;
    if (!c->got_first) {
        c->got_first = 1;
        x->pending_first--;
        x->live++;
        x->last_progress_us = now_us(CLOCK_MONOTONIC);
        if (c->ev_has_seq) {
            c->prev_seq = c->ev_seq;
            c->has_prev_seq = 1;
        }
        return 0;
    }
    c->received++;
    x->events++;
    if (c->ev_has_seq) {
        if (c->has_prev_seq && c->ev_seq <= c->prev_seq) {
            x->order_errors++;
        } else {
            if (c->has_prev_seq)
                x->gaps += (uint64_t)(c->ev_seq - c->prev_seq - 1);
            c->prev_seq = c->ev_seq;
            c->has_prev_seq = 1;
        }
    }
    if (c->ev_has_changed)
        rc = lat_push(x, recv_us - c->ev_changed_ms * 1000);
    if (x->have_k && c->received == (uint32_t)x->k)
        x->below_k--;
    return rc;
}

/* Finds `"key":` in the line and parses the integer after it. A number that
 * runs into the end of a truncated line is not trusted. */
static int find_int(const struct conn *c, const char *key, int64_t *out)
{
    size_t klen = strlen(key);
    const char *p = memmem(c->line, c->line_len, key, klen);
    if (p == NULL)
        return 0;
    const char *end = c->line + c->line_len;
    p += klen;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || (p == end && c->line_trunc))
        return 0;
    *out = neg ? -v : v;
    return 1;
}

static int sse_line(struct ctx *x, struct conn *c, int64_t recv_us)
{
    int rc = 0;
    if (c->line_len == 0 && !c->line_trunc) {
        if (c->ev_data)
            rc = on_event(x, c, recv_us);
        c->ev_data = c->ev_has_seq = c->ev_has_changed = 0;
    } else if (c->line[0] == ':') {
        /* comment / heartbeat */
    } else if ((c->line_len >= 5 && memcmp(c->line, "data:", 5) == 0) ||
               (c->line_len == 4 && memcmp(c->line, "data", 4) == 0)) {
        c->ev_data = 1;
        if (find_int(c, "\"seq\":", &c->ev_seq))
            c->ev_has_seq = 1;
        if (find_int(c, "\"changedMs\":", &c->ev_changed_ms))
            c->ev_has_changed = 1;
    }
    c->line_len = 0;
    c->line_trunc = 0;
    return rc;
}

static int sse_feed(struct ctx *x, struct conn *c, const char *p, size_t n, int64_t recv_us)
{
    for (size_t i = 0; i < n; i++) {
        char b = p[i];
        if (c->cr_pending) {
            c->cr_pending = 0;
            if (b == '\n')
                continue;
        }
        if (b == '\r' || b == '\n') {
            c->cr_pending = b == '\r';
            if (sse_line(x, c, recv_us) != 0)
                return -1;
        } else if (c->line_len < LINE_CAP) {
            c->line[c->line_len++] = b;
        } else {
            c->line_trunc = 1;
        }
    }
    return 0;
}

/* Dechunks (or passes through) body bytes into the SSE parser. Returns -1 on
 * a malformed chunk, 1 on the terminating zero-size chunk (stream ended). */
static int body_feed(struct ctx *x, struct conn *c, const char *p, size_t n, int64_t recv_us)
{
    if (!c->chunked)
        return sse_feed(x, c, p, n, recv_us);
    size_t i = 0;
    while (i < n) {
        char b;
        switch (c->ch_state) {
        case CH_SIZE:
        case CH_EXT:
            b = p[i++];
            if (b == '\n') {
                if (c->ch_digits == 0)
                    return -1;
                if (c->chunk_left == 0)
                    return 1;
                c->ch_state = CH_DATA;
            } else if (c->ch_state == CH_EXT || b == '\r') {
                /* chunk extension or CR: skip */
            } else if (b == ';' || b == ' ' || b == '\t') {
                c->ch_state = CH_EXT;
            } else {
                int v;
                if (b >= '0' && b <= '9')
                    v = b - '0';
                else if (b >= 'a' && b <= 'f')
                    v = b - 'a' + 10;
                else if (b >= 'A' && b <= 'F')
                    v = b - 'A' + 10;
                else
                    return -1;
                if (c->ch_digits >= 7)
                    return -1;
                c->chunk_left = c->chunk_left * 16 + (uint32_t)v;
                c->ch_digits++;
            }
            break;
        case CH_DATA: {
            size_t take = n - i < c->chunk_left ? n - i : c->chunk_left;
            if (sse_feed(x, c, p + i, take, recv_us) != 0)
                return -1;
            i += take;
            c->chunk_left -= (uint32_t)take;
            if (c->chunk_left == 0)
                c->ch_state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            b = p[i++];
            if (b == '\n') {
                c->ch_state = CH_SIZE;
                c->ch_digits = 0;
                c->chunk_left = 0;
            } else if (b != '\r') {
                return -1;
            }
            break;
        }
    }
    return 0;
}

/* One response-head line is in c->line. Returns 1 when the head is complete,
 * 0 to continue, -1 (with *why set) to fail the connection. */
static int head_line(struct conn *c, int *why)
{
    size_t len = c->line_len;
    if (len > 0 && c->line[len - 1] == '\r')
        len--;
    c->line[len] = '\0';
    c->line_len = 0;
    c->line_trunc = 0;
    if (!c->status_ok) {
        /* "HTTP/1.x 200 ..." */
        if (len < 12 || strncmp(c->line, "HTTP/1.", 7) != 0 || c->line[8] != ' ' ||
            strncmp(c->line + 9, "200", 3) != 0 || (len > 12 && c->line[12] != ' ')) {
            *why = ERR_STATUS;
            return -1;
        }
        c->status_ok = 1;
        return 0;
    }
    if (len == 0)
        return 1;
    static const char te[] = "transfer-encoding:";
    if (len >= sizeof(te) - 1 && strncasecmp(c->line, te, sizeof(te) - 1) == 0 &&
        strcasestr(c->line + sizeof(te) - 1, "chunked") != NULL)
        c->chunked = 1;
    return 0;
}

static int head_feed(struct ctx *x, struct conn *c, const char *p, size_t n, int64_t recv_us,
                     int *why)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (c->line_len < LINE_CAP)
                c->line[c->line_len++] = p[i];
            continue;
        }
        int r = head_line(c, why);
        if (r < 0)
            return -1;
        if (r == 1) {
            c->state = ST_BODY;
            x->inflight--;
            x->last_progress_us = now_us(CLOCK_MONOTONIC);
            int r2 = body_feed(x, c, p + i + 1, n - i - 1, recv_us);
            if (r2 != 0) {
                *why = r2 > 0 ? ERR_CLOSED : ERR_PROTO;
                return -1;
            }
            return 0;
        }
    }
    return 0;
}

static void on_readable(struct ctx *x, struct conn *c)
{
    ssize_t n = read(c->fd, x->rdbuf, RDBUF_SIZE);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_fail(x, c, ERR_READ);
        return;
    }
    if (n == 0) {
        conn_fail(x, c, ERR_CLOSED);
        return;
    }
    int64_t recv_us = now_us(CLOCK_REALTIME);
    int why = ERR_PROTO;
    int r;
    if (c->state == ST_HEAD) {
        r = head_feed(x, c, x->rdbuf, (size_t)n, recv_us, &why);
    } else {
        r = body_feed(x, c, x->rdbuf, (size_t)n, recv_us);
        why = r > 0 ? ERR_CLOSED : ERR_PROTO;
    }
    if (r != 0)
        conn_fail(x, c, why);
}

static void on_writable(struct ctx *x, struct conn *c, uint32_t ev)
{
    int err = 0;
    socklen_t elen = sizeof(err);
    if (c->sent == 0 && (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
                         (ev & EPOLLERR))) {
        conn_fail(x, c, ERR_CONNECT);
        return;
    }
    ssize_t n = send(c->fd, x->req + c->sent, x->req_len - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_fail(x, c, ERR_CONNECT);
        return;
    }
    c->sent += (uint16_t)n;
    if (c->sent < x->req_len)
        return;
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)(c - x->conns)};
    if (epoll_ctl(x->ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        conn_fail(x, c, ERR_SOCKET);
        return;
    }
    c->state = ST_HEAD;
}

static void start_connect(struct ctx *x, long i)
{
    struct conn *c = &x->conns[i];
    c->state = ST_CONNECTING;
    x->inflight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->fd = -1;
        x->inflight--;
        x->pending_first--;
        c->state = ST_CLOSED;
        x->errors++;
        x->err_by[ERR_SOCKET]++;
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&x->addr, sizeof(x->addr)) != 0 &&
        errno != EINPROGRESS) {
        conn_fail(x, c, ERR_CONNECT);
        return;
    }
    /* Connected or in progress: either way the request goes out on EPOLLOUT. */
    struct epoll_event e = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
    if (epoll_ctl(x->ep, EPOLL_CTL_ADD, c->fd, &e) != 0)
        conn_fail(x, c, ERR_SOCKET);
}

static int set_k(struct ctx *x, long k)
{
    x->have_k = 1;
    x->k = k;
    x->deadline_us = now_us(CLOCK_MONOTONIC) + (int64_t)x->timeout_s * 1000000;
    x->below_k = 0;
    for (long i = 0; i < x->n; i++) {
        struct conn *c = &x->conns[i];
        if (c->got_first && c->state != ST_CLOSED && c->received < (uint32_t)k)
            x->below_k++;
    }
    if (x->stdin_in_epoll) {
        epoll_ctl(x->ep, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
        x->stdin_in_epoll = 0;
    }
    size_t want = (size_t)x->live * (size_t)k;
    if (want > x->lat_cap) {
        int64_t *p = realloc(x->lat, want * sizeof(*p));
        if (p == NULL)
            return -1;
        x->lat = p;
        x->lat_cap = want;
    }
    return 0;
}

/* Reads what stdin has; returns 0 to go on (K may now be set), -1 on error
 * or EOF before K. */
static int on_stdin(struct ctx *x)
{
    ssize_t n =
        read(STDIN_FILENO, x->stdin_buf + x->stdin_len, sizeof(x->stdin_buf) - 1 - x->stdin_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        perror("sse-load: stdin");
        return -1;
    }
    x->stdin_len += (size_t)n;
    x->stdin_buf[x->stdin_len] = '\0';
    char *nl = strchr(x->stdin_buf, '\n');
    if (nl == NULL && n > 0) {
        if (x->stdin_len == sizeof(x->stdin_buf) - 1) {
            fprintf(stderr, "sse-load: stdin line too long\n");
            return -1;
        }
        return 0;
    }
    if (nl != NULL)
        *nl = '\0';
    char *end;
    errno = 0;
    long k = strtol(x->stdin_buf, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r')
        end++;
    if (end == x->stdin_buf || *end != '\0' || errno != 0 || k < 0 || k > UINT32_MAX / 2) {
        if (nl == NULL && x->stdin_len == 0)
            fprintf(stderr, "sse-load: stdin closed before K\n");
        else
            fprintf(stderr, "sse-load: bad K on stdin: \"%s\"\n", x->stdin_buf);
        return -1;
    }
    if (set_k(x, k) != 0) {
        fprintf(stderr, "sse-load: out of memory\n");
        return -1;
    }
    return 0;
}

static int start_stdin(struct ctx *x)
{
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    if (epoll_ctl(x->ep, EPOLL_CTL_ADD, STDIN_FILENO, &e) == 0) {
        x->stdin_in_epoll = 1;
        return 0;
    }
    if (errno != EPERM) {
        perror("sse-load: epoll stdin");
        return -1;
    }
    /* A regular file (or /dev/null): never blocks, read it right away. */
    while (!x->have_k) {
        size_t before = x->stdin_len;
        if (on_stdin(x) != 0)
            return -1;
        if (!x->have_k && x->stdin_len == before) {
            fprintf(stderr, "sse-load: stdin closed before K\n");
            return -1;
        }
    }
    return 0;
}

static void fail_unready(struct ctx *x)
{
    for (long i = 0; i < x->n; i++) {
        struct conn *c = &x->conns[i];
        if (c->state == ST_IDLE) {
            c->state = ST_CLOSED;
            x->pending_first--;
            x->errors++;
            x->err_by[ERR_STALL]++;
        } else if (c->state != ST_CLOSED && !c->got_first) {
            conn_fail(x, c, ERR_STALL);
        }
    }
    x->next_connect = x->n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, int p)
{
    if (n == 0)
        return 0.0;
    size_t rank = ((size_t)p * n + 99) / 100; /* nearest rank: ceil(p/100 * n) */
    if (rank == 0)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

static void print_result(struct ctx *x)
{
    uint64_t lost = 0;
    for (long i = 0; i < x->n; i++) {
        const struct conn *c = &x->conns[i];
        if (c->got_first && c->received < (uint32_t)x->k)
            lost += (uint64_t)x->k - c->received;
    }
    if (x->nlat > 0)
        qsort(x->lat, x->nlat, sizeof(*x->lat), cmp_i64);
    printf("result subs=%ld errors=%ld events=%" PRIu64 " lost=%" PRIu64 " gaps=%" PRIu64
           " order_errors=%" PRIu64 " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           x->live, x->errors, x->events, lost, x->gaps, x->order_errors,
           pct_ms(x->lat, x->nlat, 50), pct_ms(x->lat, x->nlat, 99),
           x->nlat ? (double)x->lat[x->nlat - 1] / 1000.0 : 0.0);
    fflush(stdout);
    if (x->errors > 0) {
        fprintf(stderr, "sse-load: errors:");
        for (int i = 0; i < ERR_N; i++)
            if (x->err_by[i])
                fprintf(stderr, " %s=%ld", err_names[i], x->err_by[i]);
        fprintf(stderr, "\n");
    }
    if (x->nlat < x->events)
        fprintf(stderr, "sse-load: %" PRIu64 " events had no changedMs\n",
                x->events - (uint64_t)x->nlat);
}

/* Returns 0 when the result line was printed, 1 on failure. */
static int run(struct ctx *x)
{
    struct epoll_event evs[MAX_EVENTS];
    x->last_progress_us = now_us(CLOCK_MONOTONIC);
    for (;;) {
        while (x->inflight < MAX_INFLIGHT && x->next_connect < x->n)
            start_connect(x, x->next_connect++);
        if (!x->ready && x->next_connect == x->n && x->pending_first == 0) {
            x->ready = 1;
            printf("ready %ld %ld\n", x->live, x->errors);
            fflush(stdout);
            if (start_stdin(x) != 0)
                return 1;
        }
        if (x->have_k && x->below_k == 0)
            break;
        int64_t now = now_us(CLOCK_MONOTONIC);
        int64_t deadline = -1;
        if (x->have_k)
            deadline = x->deadline_us;
        else if (!x->ready)
            deadline = x->last_progress_us + (int64_t)x->timeout_s * 1000000;
        if (deadline >= 0 && now >= deadline) {
            if (x->have_k) {
                fprintf(stderr, "sse-load: timed out, %ld subscribers short of %ld events\n",
                        x->below_k, x->k);
                break;
            }
            fprintf(stderr, "sse-load: no progress for %d s, giving up on %ld connections\n",
                    x->timeout_s, x->pending_first + (x->n - x->next_connect));
            fail_unready(x);
            continue;
        }
        int timeout_ms = deadline < 0 ? -1 : (int)((deadline - now + 999) / 1000);
        int nev = epoll_wait(x->ep, evs, MAX_EVENTS, timeout_ms);
        if (nev < 0) {
            if (errno == EINTR)
                continue;
            perror("sse-load: epoll_wait");
            return 1;
        }
        for (int i = 0; i < nev; i++) {
            if (evs[i].data.u64 == STDIN_TAG) {
                if (!x->have_k && on_stdin(x) != 0)
                    return 1;
                continue;
            }
            struct conn *c = &x->conns[evs[i].data.u64];
            if (c->state == ST_CONNECTING)
                on_writable(x, c, evs[i].events);
            else if (c->state == ST_HEAD || c->state == ST_BODY)
                on_readable(x, c);
        }
    }
    print_result(x);
    return 0;
}

static int build_request(struct ctx *x, const char *host, int port, const char *path,
                         const char *const *hdrs, int nhdrs)
{
    int len = snprintf(x->req, sizeof(x->req),
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n", path,
                       host, port);
    for (int i = 0; i < nhdrs && len > 0 && (size_t)len < sizeof(x->req); i++)
        len += snprintf(x->req + len, sizeof(x->req) - (size_t)len, "%s\r\n", hdrs[i]);
    if (len > 0 && (size_t)len < sizeof(x->req))
        len += snprintf(x->req + len, sizeof(x->req) - (size_t)len, "\r\n");
    if (len <= 0 || (size_t)len >= sizeof(x->req))
        return -1;
    x->req_len = (size_t)len;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sse-load --port P [--host 127.0.0.1] --path PATH --n N "
                    "[--header \"Name: value\"]... [--timeout-s 30]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = NULL;
    const char *hdrs[16];
    int nhdrs = 0;
    long port = 0, n = 0, timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--port") == 0)
            port = strtol(v, &end, 10);
        else if (strcmp(a, "--host") == 0)
            host = v;
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--n") == 0)
            n = strtol(v, &end, 10);
        else if (strcmp(a, "--timeout-s") == 0)
            timeout_s = strtol(v, &end, 10);
        else if (strcmp(a, "--header") == 0 && nhdrs < 16)
            hdrs[nhdrs++] = v;
        else {
            usage();
            return 2;
        }
        if (end != NULL && (*end != '\0' || end == v)) {
            usage();
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || n <= 0 || n > 1000000 || path == NULL || timeout_s <= 0 ||
        timeout_s > 86400) {
        usage();
        return 2;
    }

    struct ctx x;
    memset(&x, 0, sizeof(x));
    x.n = n;
    x.timeout_s = (int)timeout_s;
    x.addr.sin_family = AF_INET;
    x.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &x.addr.sin_addr) != 1) {
        fprintf(stderr, "sse-load: --host must be an IPv4 address\n");
        return 2;
    }
    if (build_request(&x, host, (int)port, path, hdrs, nhdrs) != 0) {
        fprintf(stderr, "sse-load: request too long\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    x.conns = calloc((size_t)n, sizeof(*x.conns));
    x.rdbuf = malloc(RDBUF_SIZE);
    x.ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 1;
    if (x.conns == NULL || x.rdbuf == NULL || x.ep < 0) {
        fprintf(stderr, "sse-load: out of memory or epoll\n");
    } else {
        x.pending_first = n;
        rc = run(&x);
    }
    if (x.conns != NULL)
        for (long i = 0; i < n; i++)
            if (x.conns[i].state != ST_IDLE && x.conns[i].state != ST_CLOSED)
                close(x.conns[i].fd);
    if (x.ep >= 0)
        close(x.ep);
    free(x.conns);
    free(x.rdbuf);
    free(x.lat);
    return rc;
}
