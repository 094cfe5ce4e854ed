/* wh-load: webhook delivery latency through the gateway binary at a fixed
 * event rate. It makes the events with the webhook test call
 * (POST /api/webhooks/{id}/test?waitMs=W) on a few kept-alive HTTP/1.1
 * connections to the gateway on loopback, paced open-loop at RATE calls/s
 * for SECONDS (each call is due at start + i/RATE and is written on an
 * idle connection as soon as it is due; a call that finds none waits and
 * the lag is reported), and receives the webhooks itself: a plain HTTP/1.1
 * receiver on threads of this process (one per connection, TCP_NODELAY, 200
 * at once) whose URL is the target it creates at the start
 * (POST /api/webhooks, the gateway needs WEBHOOK_ALLOW_PRIVATE=1).
 *
 * Latency of an event = the receiver's clock when the webhook's body is
 * read minus the clock just before its test call was written (both
 * CLOCK_MONOTONIC, one process); events are matched by the eventId of the
 * call's answer and the webhook-id (evt_<id>) of the delivery. Prints one
 * line:
 *
 *   events=N sent_rate=R delivered_rate=R p50_ms=.. p90_ms=.. p99_ms=..
 *   max_ms=.. lost=.. duplicates=.. out_of_order=.. failed_calls=..
 *   call_p50_ms=.. call_p99_ms=.. sched_p99_ms=.. max_send_lag_ms=..
 *
 * (call_*: the test call's own answer time; sched_p99_ms: latency from the
 * time a call was due, which counts the waits for a free connection.)
 *
 *   wh-load PORT API_KEY RATE SECONDS [CONNS [WAIT_MS]]
 *
 * PORT: the gateway's HTTP port on 127.0.0.1; CONNS 1..64 (16); WAIT_MS
 * the test call's waitMs (0: answered once queued). Bounded: RATE at most
 * 100000, SECONDS at most 600, and it waits at most 30 s for the last
 * deliveries. Exits 0 when every event arrived once, else 1 (a message on
 * stderr for a setup failure). Benchmark only (make bench). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "tests/webhook/receiver.h"

#define MAX_CONNS 64
#define RBUF 16384

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* --- the receiver --- */

typedef struct {
    uint64_t id;
    double at;
} arrival_t;

typedef struct {
    int lfd;
    pthread_mutex_t mu;
    arrival_t *v; /* in arrival order */
    size_t n, cap;
    volatile int stop;
} rcv_t;

/* Records one delivery's arrival (the receiver's callback). */
static void rcv_record(void *arg, const char *head, size_t hlen, uint64_t id)
{
    (void)head;
    (void)hlen;
    rcv_t *r = arg;
    double now = mono_ms();
    pthread_mutex_lock(&r->mu);
    if (r->n < r->cap)
        r->v[r->n++] = (arrival_t){id, now};
    pthread_mutex_unlock(&r->mu);
}

static void *rcv_accept(void *arg)
{
    rcv_t *r = arg;
    whrcv_accept_loop(r->lfd, &r->stop, rcv_record, r);
    return NULL;
}

/* --- the caller --- */

typedef struct {
    double due, sent, answered;
    int status; /* 0: no answer */
    uint64_t event_id;
} call_t;

typedef struct {
    int fd;
    long inflight; /* call index, -1 when idle */
    char buf[RBUF];
    size_t len;
} conn_t;

static int connect_gw(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Parses one whole response at the start of buf[0..len) (eof: the peer
 * closed after it): its length, the status, the body (content-length,
 * chunked, or up to the close) copied into body[0..bodylen) and, when
 * present, its "eventId". 0 when not complete yet, -1 when malformed. */
static long parse_response(const char *buf, size_t len, int eof, int *status, char *body,
                           size_t bodylen, uint64_t *event_id)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len >= RBUF ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4, clen = 0, total = 0, blen = 0;
    int has_len = 0, chunked = 0;
    if (len < 12 || strncmp(buf, "HTTP/1.1 ", 9))
        return -1;
    *status = atoi(buf + 9);
    for (const char *p = buf; p < end;) {
        const char *nl = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!nl)
            break;
        if (!strncasecmp(p, "content-length:", 15)) {
            clen = strtoul(p + 15, NULL, 10);
            has_len = 1;
        } else if (!strncasecmp(p, "transfer-encoding:", 18) &&
                   memmem(p, (size_t)(nl - p), "chunked", 7)) {
            chunked = 1;
        }
        p = nl + 2;
    }
    if (chunked) {
        size_t at = hlen;
        for (;;) {
            const char *nl = memmem(buf + at, len - at, "\r\n", 2);
            if (!nl)
                return len >= RBUF ? -1 : 0;
            size_t sz = strtoul(buf + at, NULL, 16);
            at = (size_t)(nl - buf) + 2;
            if (sz == 0) { /* no trailers: the final CRLF */
                if (len < at + 2)
                    return 0;
                total = at + 2;
                break;
            }
            if (len < at + sz + 2)
                return len >= RBUF ? -1 : 0;
            if (blen + sz < bodylen) {
                memcpy(body + blen, buf + at, sz);
                blen += sz;
            }
            at += sz + 2;
        }
    } else {
        if (!has_len) {
            if (!eof)
                return 0;
            clen = len - hlen;
        }
        if (hlen + clen > RBUF)
            return -1;
        if (len < hlen + clen)
            return 0;
        total = hlen + clen;
        blen = clen < bodylen ? clen : bodylen - 1;
        memcpy(body, buf + hlen, blen);
    }
    body[blen] = 0;
    *event_id = 0;
    const char *e = strstr(body, "\"eventId\":");
    if (e)
        *event_id = strtoull(e + 10, NULL, 10);
    return (long)total;
}

/* One blocking request on a new connection (setup): the response body into
 * out. The status, or -1. */
static int request_once(int port, const char *req, char *out, size_t outlen)
{
    int fd = connect_gw(port);
    if (fd < 0 || write_all(fd, req, strlen(req)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char buf[RBUF];
    size_t len = 0;
    int status = -1, eof = 0;
    uint64_t id;
    long n = 0;
    while (n == 0 && !eof) {
        ssize_t r = len < sizeof(buf) ? read(fd, buf + len, sizeof(buf) - len) : 0;
        eof = r <= 0;
        if (r > 0)
            len += (size_t)r;
        n = parse_response(buf, len, eof, &status, out, outlen, &id);
    }
    close(fd);
    return n > 0 ? status : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_arrival(const void *a, const void *b)
{
    const arrival_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : (x->at > y->at) - (x->at < y->at);
}

static double pct(const double *v, size_t n, double p)
{
    return n ? v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] : 0;
}

/* Arms the timer for the absolute monotonic time `at_ms` (0: disarmed). */
static void arm(int tfd, double at_ms)
{
    struct itimerspec its = {0};
    if (at_ms > 0) {
        its.it_value.tv_sec = (time_t)(at_ms / 1e3);
        its.it_value.tv_nsec = (long)((at_ms - (double)its.it_value.tv_sec * 1e3) * 1e6);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: wh-load PORT API_KEY RATE SECONDS [CONNS [WAIT_MS]]\n");
        return 1;
    }
    int port = atoi(argv[1]);
    const char *key = argv[2];
    unsigned rate = (unsigned)strtoul(argv[3], NULL, 10);
    double seconds = strtod(argv[4], NULL);
    unsigned nconns = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 16;
    unsigned wait_ms = argc > 6 ? (unsigned)strtoul(argv[6], NULL, 10) : 0;
    if (port < 1 || port > 65535 || rate < 1 || rate > 100000 || seconds <= 0 || seconds > 600 ||
        nconns < 1 || nconns > MAX_CONNS || wait_ms > 60000 || strlen(key) > 200) {
        fprintf(stderr, "wh-load: PORT 1..65535, RATE 1..100000, SECONDS 0..600, CONNS 1..64, "
                        "WAIT_MS 0..60000\n");
        return 1;
    }
    size_t n = (size_t)((double)rate * seconds);
    if (n < 1)
        n = 1;
    /* the receiver */
    rcv_t r = {.cap = 2 * n + 1024};
    pthread_mutex_init(&r.mu, NULL);
    r.v = calloc(r.cap, sizeof(*r.v));
    call_t *calls = calloc(n, sizeof(*calls));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    r.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (!r.v || !calls || r.lfd < 0 || bind(r.lfd, (struct sockaddr *)&a, sizeof(a)) ||
        listen(r.lfd, 64) || getsockname(r.lfd, (struct sockaddr *)&a, &al)) {
        fprintf(stderr, "wh-load: cannot listen\n");
        return 1;
    }
    pthread_t acc;
    if (pthread_create(&acc, NULL, rcv_accept, &r) != 0) {
        fprintf(stderr, "wh-load: no thread\n");
        return 1;
    }
    /* the target */
    char req[1024], body[256], answer[4096];
    snprintf(body, sizeof(body),
             "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"webhook.none\"]}",
             ntohs(a.sin_port));
    snprintf(req, sizeof(req),
             "POST /api/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             key, strlen(body), body);
    int st = request_once(port, req, answer, sizeof(answer));
    const char *idp = strstr(answer, "\"id\":\"");
    char id[40] = "";
    if (st == 201 && idp)
        sscanf(idp + 6, "%39[^\"]", id);
    if (!id[0]) {
        fprintf(stderr, "wh-load: cannot create the target: %d %.200s\n", st, answer);
        return 1;
    }
    char call_req[512];
    int call_len = snprintf(call_req, sizeof(call_req),
                            "POST /api/webhooks/%s/test?waitMs=%u HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "X-API-Key: %s\r\nContent-Length: 0\r\n\r\n",
                            id, wait_ms, key);
    /* the connections */
    conn_t *conns = calloc(nconns, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (!conns || ep < 0 || tfd < 0) {
        fprintf(stderr, "wh-load: no memory or epoll\n");
        return 1;
    }
    struct epoll_event ee = {.events = EPOLLIN, .data.u64 = MAX_CONNS};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ee);
    for (unsigned i = 0; i < nconns; i++) {
        conns[i].fd = connect_gw(port);
        conns[i].inflight = -1;
        if (conns[i].fd < 0) {
            fprintf(stderr, "wh-load: cannot connect to 127.0.0.1:%d\n", port);
            return 1;
        }
        ee = (struct epoll_event){.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ee);
    }
    double start = mono_ms() + 200;
    for (size_t i = 0; i < n; i++)
        calls[i].due = start + (double)i * 1e3 / rate;
    size_t next = 0, answered = 0, failed = 0;
    double max_lag = 0, deadline = start + seconds * 1e3 + 30000;
    arm(tfd, calls[0].due);
    while (answered < n && mono_ms() < deadline) {
        /* every due call on an idle connection */
        double now = mono_ms();
        for (unsigned c = 0; c < nconns && next < n && calls[next].due <= now; c++) {
            if (conns[c].inflight >= 0 || conns[c].fd < 0)
                continue;
            calls[next].sent = mono_ms();
            if (calls[next].sent - calls[next].due > max_lag)
                max_lag = calls[next].sent - calls[next].due;
            if (write_all(conns[c].fd, call_req, (size_t)call_len) != 0) {
                close(conns[c].fd);
                conns[c].fd = -1;
                failed++;
                answered++;
                next++;
                continue;
            }
            conns[c].inflight = (long)next++;
        }
        if (next < n)
            arm(tfd, calls[next].due);
        struct epoll_event evs[MAX_CONNS + 1];
        int k = epoll_wait(ep, evs, MAX_CONNS + 1, 100);
        for (int e = 0; e < k; e++) {
            if (evs[e].data.u64 == MAX_CONNS) {
                uint64_t x;
                if (read(tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
                    break;
                continue;
            }
            conn_t *c = &conns[evs[e].data.u64];
            ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
            if (got <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                if (c->inflight >= 0) {
                    failed++;
                    answered++;
                    c->inflight = -1;
                }
                continue;
            }
            c->len += (size_t)got;
            int status = 0;
            uint64_t ev = 0;
            char body[1024];
            long used = parse_response(c->buf, c->len, 0, &status, body, sizeof(body), &ev);
            if (used < 0 || (used > 0 && c->inflight < 0)) {
                fprintf(stderr, "wh-load: a malformed or unexpected answer\n");
                return 1;
            }
            if (used == 0)
                continue;
            call_t *cl = &calls[c->inflight];
            cl->answered = mono_ms();
            cl->status = status;
            cl->event_id = ev;
            if (status != 200 || !ev)
                failed++;
            answered++;
            c->inflight = -1;
            memmove(c->buf, c->buf + used, c->len - (size_t)used);
            c->len -= (size_t)used;
        }
        int alive = 0;
        for (unsigned c = 0; c < nconns; c++)
            alive |= conns[c].fd >= 0;
        if (!alive && answered < n) {
            fprintf(stderr, "wh-load: every connection to the gateway closed\n");
            break;
        }
    }
    double last_sent = 0;
    for (size_t i = 0; i < n; i++)
        if (calls[i].sent > last_sent)
            last_sent = calls[i].sent;
    /* the last deliveries */
    size_t want = n - failed;
    for (double until = mono_ms() + 30000; mono_ms() < until;) {
        pthread_mutex_lock(&r.mu);
        size_t got = r.n;
        pthread_mutex_unlock(&r.mu);
        if (got >= want)
            break;
        usleep(5000);
    }
    usleep(200000); /* a duplicate would show */
    r.stop = 1;
    shutdown(r.lfd, SHUT_RDWR);
    close(r.lfd);
    pthread_join(acc, NULL);
    pthread_mutex_lock(&r.mu);
    /* out of order: an id below one that arrived before it */
    size_t disorder = 0;
    uint64_t maxid = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (r.v[i].id < maxid)
            disorder++;
        else
            maxid = r.v[i].id;
    }
    /* first arrival by id; duplicates */
    qsort(r.v, r.n, sizeof(*r.v), cmp_arrival);
    size_t dups = 0, distinct = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (i && r.v[i].id == r.v[i - 1].id)
            dups++;
        else
            r.v[distinct++] = r.v[i];
    }
    double *lat = calloc(n, sizeof(double)), *slat = calloc(n, sizeof(double)),
           *clat = calloc(n, sizeof(double));
    size_t k = 0, kc = 0, lost = 0;
    double first_send = 0, last_arrival = 0;
    for (size_t i = 0; i < n; i++) {
        call_t *cl = &calls[i];
        if (cl->status == 200 && cl->event_id) {
            clat[kc++] = cl->answered - cl->sent;
            size_t lo = 0, hi = distinct;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (r.v[mid].id < cl->event_id)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            arrival_t *hit = lo < distinct && r.v[lo].id == cl->event_id ? &r.v[lo] : NULL;
            if (!hit) {
                lost++;
                continue;
            }
            lat[k] = hit->at - cl->sent;
            slat[k++] = hit->at - cl->due;
            if (!first_send || cl->sent < first_send)
                first_send = cl->sent;
            if (hit->at > last_arrival)
                last_arrival = hit->at;
        }
    }
    pthread_mutex_unlock(&r.mu);
    qsort(lat, k, sizeof(double), cmp_double);
    qsort(slat, k, sizeof(double), cmp_double);
    qsort(clat, kc, sizeof(double), cmp_double);
    double sent_span = (last_sent - start) / 1e3;
    printf("events=%zu sent_rate=%.0f delivered_rate=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f lost=%zu duplicates=%zu out_of_order=%zu failed_calls=%zu "
           "call_p50_ms=%.2f call_p99_ms=%.2f sched_p99_ms=%.2f max_send_lag_ms=%.2f\n",
           n, sent_span > 0 ? (double)(n - 1) / sent_span : 0.0,
           k && last_arrival > first_send ? (double)k / ((last_arrival - first_send) / 1e3) : 0.0,
           pct(lat, k, 50), pct(lat, k, 90), pct(lat, k, 99), k ? lat[k - 1] : 0, lost, dups,
           disorder, failed, pct(clat, kc, 50), pct(clat, kc, 99), pct(slat, k, 99), max_lag);
    return failed || lost || dups || disorder ? 1 : 0;
}
