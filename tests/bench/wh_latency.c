/* wh-latency: the webhook sender's delivery latency at a given event rate,
 * without the HTTP API or the WhatsApp side in the way: the real store
 * (session/store) and sender (session/webhook) on a libuv loop, events of
 * one session appended as the journal does (store_events_append, then
 * wh_wake) every millisecond for what is due at RATE events/s, one target
 * whose receiver is a plain HTTP/1.1 server on a thread of this process
 * (keep-alive, TCP_NODELAY, 200 at once). Latency = the receiver's clock
 * when the request's body is read minus the clock just before the event's
 * transaction began (both CLOCK_MONOTONIC). Prints one line:
 *
 *   events=N sent_rate=R delivered_rate=R p50_ms=.. p90_ms=.. p99_ms=..
 *   max_ms=.. lost=.. duplicates=.. out_of_order=..
 *
 *   wh-latency DIR RATE SECONDS
 *
 * Exits 0, or 1 with a message on stderr. Benchmark only (make bench). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "common/httpc.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "session/webhook/webhook.h"
#include "tests/webhook/receiver.h"

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

typedef struct {
    int lfd;
    size_t n;          /* events expected */
    double *sent;      /* by event id: when its append began (0: not yet) */
    double *got;       /* by event id: first arrival */
    size_t arrived;    /* distinct */
    size_t duplicates; /* same id again */
    size_t disorder;   /* an id below one seen before */
    uint64_t last_id;
    pthread_mutex_t mu;
    int stop;
} bench_t;

/* Records one delivery's arrival (the receiver's callback). */
static void record(void *arg, const char *head, size_t hlen, uint64_t id)
{
    (void)head;
    (void)hlen;
    bench_t *b = arg;
    double now = mono_ms();
    pthread_mutex_lock(&b->mu);
    if (id >= 1 && id <= b->n) {
        if (b->got[id] > 0) {
            b->duplicates++;
        } else {
            b->got[id] = now;
            b->arrived++;
            if (id < b->last_id)
                b->disorder++;
            b->last_id = id;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

static void *receiver(void *arg)
{
    bench_t *b = arg;
    while (!b->stop) {
        int fd = accept(b->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        whrcv_serve(fd, record, b);
        close(fd);
    }
    return NULL;
}

typedef struct {
    bench_t *b;
    wh_t *wh;
    store_t *st;
    uv_timer_t tick;
    double start, seconds;
    unsigned rate;
    uint64_t appended, seq;
    double wait_until;
    int failed;
} gen_t;

static void on_created(void *arg, int rc, const char *why, const wh_target_info_t *t,
                       const char *secret)
{
    (void)t;
    (void)secret;
    if (rc)
        fprintf(stderr, "wh-latency: cannot create the target: %s\n", why ? why : "");
    *(int *)arg = rc ? 1 : 2;
}

static void on_tick(uv_timer_t *tm)
{
    gen_t *g = tm->data;
    double now = mono_ms(), el = (now - g->start) / 1e3;
    uint64_t due = el <= 0 ? 0 : el >= g->seconds ? g->b->n : (uint64_t)(el * g->rate);
    if (due > g->b->n)
        due = g->b->n;
    if (due > g->appended) {
        size_t k = (size_t)(due - g->appended);
        store_event_t *ev = calloc(k, sizeof(*ev));
        char(*body)[192] = calloc(k, 192);
        if (!ev || !body) {
            g->failed = 1;
            uv_stop(tm->loop);
            free(ev);
            free(body);
            return;
        }
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        for (size_t i = 0; i < k; i++) {
            g->seq++;
            int len = snprintf(body[i], 192,
                               "{\"type\":\"session.status\",\"session\":\"bench\",\"seq\":%llu,"
                               "\"data\":{\"state\":\"CONNECTED\"}}",
                               (unsigned long long)g->seq);
            ev[i] = (store_event_t){.session = "bench",
                                    .seq = g->seq,
                                    .ts_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000,
                                    .type = "session.status",
                                    .body = body[i],
                                    .body_len = (size_t)len};
        }
        double t0 = mono_ms();
        int rc = store_events_append(g->st, ev, k);
        if (!rc) {
            pthread_mutex_lock(&g->b->mu);
            for (size_t i = 0; i < k; i++)
                if (ev[i].id >= 1 && ev[i].id <= g->b->n)
                    g->b->sent[ev[i].id] = t0;
            pthread_mutex_unlock(&g->b->mu);
            g->appended += k;
            wh_wake(g->wh);
        }
        free(ev);
        free(body);
        if (rc) {
            fprintf(stderr, "wh-latency: append: %s\n", store_strerror(rc));
            g->failed = 1;
            uv_stop(tm->loop);
            return;
        }
    }
    pthread_mutex_lock(&g->b->mu);
    size_t arrived = g->b->arrived;
    pthread_mutex_unlock(&g->b->mu);
    if ((g->appended == g->b->n && arrived == g->b->n) || now > g->wait_until)
        uv_stop(tm->loop);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: wh-latency DIR RATE SECONDS\n");
        return 1;
    }
    unsigned rate = (unsigned)strtoul(argv[2], NULL, 10);
    double seconds = strtod(argv[3], NULL);
    if (rate < 1 || rate > 100000 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "wh-latency: RATE 1..100000, SECONDS 0..600\n");
        return 1;
    }
    bench_t b = {.n = (size_t)(rate * seconds)};
    pthread_mutex_init(&b.mu, NULL);
    b.sent = calloc(b.n + 1, sizeof(double));
    b.got = calloc(b.n + 1, sizeof(double));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    b.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (!b.sent || !b.got || b.lfd < 0 || bind(b.lfd, (struct sockaddr *)&a, sizeof(a)) ||
        listen(b.lfd, 16) || getsockname(b.lfd, (struct sockaddr *)&a, &al)) {
        fprintf(stderr, "wh-latency: cannot listen\n");
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, receiver, &b);
    store_t *st = NULL;
    char err[256];
    if (store_open(argv[1], &st, err, sizeof(err)) != 0 || httpc_global_init() != 0) {
        fprintf(stderr, "wh-latency: %s\n", err);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* the store's queue as the service has it on SQLite (inline); WH_THREADED=1
     * puts it on a thread of its own, as on PostgreSQL */
    const char *threaded = getenv("WH_THREADED");
    sess_q_t *q = sess_q_new(&loop, threaded && *threaded == '1');
    if (!q) {
        fprintf(stderr, "wh-latency: cannot create the store queue\n");
        return 1;
    }
    wh_opts_t o = {.loop = &loop, .store = st, .q = q, .allow_private = 1};
    wh_t *wh = NULL;
    if (wh_new(&o, &wh, err, sizeof(err)) != 0) {
        fprintf(stderr, "wh-latency: %s\n", err);
        return 1;
    }
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", ntohs(a.sin_port));
    int bad = 0;
    wh_target_spec_t spec = {.url = url};
    if (wh_target_create(wh, &spec, on_created, &bad) != 0)
        return 1;
    while (!bad) /* stored through the queue */
        uv_run(&loop, UV_RUN_ONCE);
    if (bad == 1)
        return 1;
    gen_t g = {.b = &b, .wh = wh, .st = st, .rate = rate, .seconds = seconds};
    g.start = mono_ms() + 100;
    g.wait_until = g.start + seconds * 1e3 + 30000;
    uv_timer_init(&loop, &g.tick);
    g.tick.data = &g;
    const char *tick = getenv("WH_TICK_MS"); /* how often events are appended (1 ms) */
    uv_timer_start(&g.tick, on_tick, 100, tick ? strtoul(tick, NULL, 10) : 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    double took = (mono_ms() - g.start) / 1e3;
    uv_close((uv_handle_t *)&g.tick, NULL);
    wh_close(wh);
    sess_q_close(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    sess_q_free(q);
    wh_free(wh);
    uv_loop_close(&loop);
    store_close(st);
    b.stop = 1;
    shutdown(b.lfd, SHUT_RDWR);
    close(b.lfd);
    pthread_mutex_lock(&b.mu);
    double *lat = calloc(b.n + 1, sizeof(double));
    size_t k = 0;
    double last_arrival = 0;
    for (size_t i = 1; i <= b.n; i++)
        if (b.got[i] > 0 && b.sent[i] > 0) {
            lat[k++] = b.got[i] - b.sent[i];
            if (b.got[i] > last_arrival)
                last_arrival = b.got[i];
        }
    qsort(lat, k, sizeof(double), cmp);
#define PCT(p) (k ? lat[(size_t)((p) / 100.0 * (double)(k - 1) + 0.5)] : 0)
    printf("events=%zu sent_rate=%.0f delivered_rate=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f lost=%zu duplicates=%zu out_of_order=%zu\n",
           b.n, (double)g.appended / seconds,
           k ? (double)k / ((last_arrival - g.start) / 1e3) : 0.0, PCT(50), PCT(90), PCT(99),
           k ? lat[k - 1] : 0, b.n - b.arrived, b.duplicates, b.disorder);
    (void)took;
    if (getenv("WH_GAPS")) { /* arrival gaps, for the analysis */
        double *gap = calloc(b.n + 1, sizeof(double));
        size_t m = 0;
        for (size_t i = 2; i <= b.n; i++)
            if (b.got[i] > 0 && b.got[i - 1] > 0)
                gap[m++] = b.got[i] - b.got[i - 1];
        qsort(gap, m, sizeof(double), cmp);
        if (m)
            printf("gaps_ms p50=%.3f p90=%.3f p99=%.3f max=%.3f sum_over_5ms=%.1f\n", gap[m / 2],
                   gap[(size_t)(0.9 * (double)(m - 1))], gap[(size_t)(0.99 * (double)(m - 1))],
                   gap[m - 1], 0.0);
        double big = 0;
        for (size_t i = 0; i < m; i++)
            if (gap[i] > 5)
                big += gap[i];
        printf("time in gaps over 5 ms: %.1f ms\n", big);
        free(gap);
    }
    pthread_mutex_unlock(&b.mu);
    int rc = g.failed || b.arrived != b.n ? 1 : 0;
    free(lat); /* b.sent and b.got stay: the receiver thread is not joined */
    httpc_global_cleanup();
    return rc;
}
