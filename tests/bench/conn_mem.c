/* What one idle WhatsApp connection costs the gateway's transport, measured
 * in-process: opens N noise sockets (frame socket + TLS + Noise, exactly
 * the gateway's code) to tests/fakewa over ws:// or wss://, each with its
 * own noise key and a registration payload, waits until every one has
 * finished its handshake and received the server's pair-device, lets them
 * idle, and reports the heap (mallinfo2: bytes allocated) and RSS growth
 * per connection against a baseline taken with one connection open (so
 * that lws's and OpenSSL's one-time state is in the baseline). Used by
 * tests/bench/sessions_bench.sh to explain the per-session figure.
 *
 *   conn-mem --url wss://127.0.0.1:P/ws/chat --root-key HEX [--ca-file PEM]
 *            [-n 1000] [--idle-ms 3000]
 *
 * Prints one line: conns=N heap_per_conn=B rss_per_conn=B. With
 * CONN_MEM_KEEP set it exits without closing anything, so that a heap
 * profiler's "leaks" are what the open connections hold. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "session/wa/crypto.h"
#include "session/wa/noisesocket.h"
#include "session/wa/payload.h"

typedef struct {
    wa_nsock_t *s;
    int ready, got_node, closed;
} conn_t;

static int n_ready, n_nodes, n_closed;

static void on_ready(void *arg)
{
    conn_t *c = arg;
    c->ready = 1;
    n_ready++;
}

static void on_node(void *arg, const wa_node_t *node)
{
    conn_t *c = arg;
    (void)node;
    if (!c->got_node) {
        c->got_node = 1;
        n_nodes++;
    }
}

static void on_close(void *arg, int code, const char *reason)
{
    conn_t *c = arg;
    c->closed = 1;
    c->s = NULL;
    n_closed++;
    fprintf(stderr, "conn-mem: a connection closed: %s (%s)\n", wa_nsock_strerror(code), reason);
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int hexkey(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* Runs the loop until `cond` holds or `ms` pass. */
static void run_until(uv_loop_t *loop, int (*cond)(int), int arg, unsigned ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (!cond(arg) && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(loop);
    }
}

static int all_nodes(int n)
{
    return n_nodes + n_closed >= n;
}

static int never(int n)
{
    (void)n;
    return 0;
}

static int open_conn(wa_fsock_ctx_t *ctx, const char *url, const uint8_t root[32], conn_t *c)
{
    wa_keypair_t noise, ident, spk;
    uint8_t sig[64];
    wa_crypto_keypair_generate(&noise);
    wa_crypto_keypair_generate(&ident);
    wa_crypto_keypair_generate(&spk);
    wa_crypto_random(sig, sizeof(sig));
    wa_payload_reg_t reg = {
        .reg_id = 1234, .ident_pub = ident.pub, .spk_id = 1, .spk_pub = spk.pub, .spk_sig = sig};
    wa_version_t v;
    wa_payload_parse_version(WA_PAYLOAD_DEFAULT_VERSION, &v);
    uint8_t *pl;
    size_t plen;
    if (wa_payload_registration(&reg, &v, &pl, &plen))
        return -1;
    wa_nsock_opts_t o = {.url = url, .noise_key = noise, .payload = pl, .payload_len = plen};
    memcpy(o.trust.root_pub, root, 32);
    wa_nsock_callbacks_t cb = {on_ready, on_node, on_close, c};
    int err = 0;
    c->s = wa_nsock_connect(ctx, &o, &cb, &err);
    free(pl);
    return c->s ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *root_hex = NULL, *ca = NULL;
    int n = 1000;
    unsigned idle_ms = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--root-key"))
            root_hex = argv[i + 1];
        else if (!strcmp(argv[i], "--ca-file"))
            ca = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--idle-ms"))
            idle_ms = (unsigned)atoi(argv[i + 1]);
    }
    uint8_t root[32];
    if (!url || !root_hex || hexkey(root_hex, root) || n < 1 || n > 100000) {
        fprintf(stderr, "usage: conn-mem --url URL --root-key HEX [--ca-file PEM] [-n N] "
                        "[--idle-ms MS]\n");
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    wa_fsock_ctx_opts_t co = {.ca_file = ca};
    wa_fsock_ctx_t *ctx = wa_fsock_ctx_new(&loop, &co, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "conn-mem: %s\n", err);
        return 1;
    }
    conn_t *conns = calloc((size_t)n + 1, sizeof(*conns));
    if (!conns)
        return 1;
    /* the first connection warms lws and OpenSSL up: part of the baseline */
    if (open_conn(ctx, url, root, &conns[0]))
        return 1;
    run_until(&loop, all_nodes, 1, 20000);
    run_until(&loop, never, 0, idle_ms);
    malloc_trim(0);
    size_t heap0 = heap_bytes();
    long rss0 = rss_bytes();
    int started = 0;
    for (int i = 1; i <= n; i++) {
        if (open_conn(ctx, url, root, &conns[i]) == 0)
            started++;
        if (i % 50 == 0) /* a steady pace, as the connection gate makes it */
            run_until(&loop, all_nodes, i + 1, 20000);
    }
    run_until(&loop, all_nodes, n + 1, 60000);
    run_until(&loop, never, 0, idle_ms);
    malloc_trim(0);
    size_t heap1 = heap_bytes();
    long rss1 = rss_bytes();
    int ok = n_nodes - 1;
    printf("conns=%d closed=%d heap_per_conn=%.0f rss_per_conn=%.0f\n", ok, n_closed,
           ok > 0 ? ((double)heap1 - (double)heap0) / ok : 0.0,
           ok > 0 ? ((double)rss1 - (double)rss0) / ok : 0.0);
    fflush(stdout);
    if (getenv("CONN_MEM_KEEP")) /* for heaptrack: what is live now shows as leaked */
        return 0;
    for (int i = 0; i <= n; i++)
        if (conns[i].s)
            wa_nsock_close(conns[i].s);
    run_until(&loop, never, 0, 200);
    wa_fsock_ctx_destroy(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    wa_fsock_ctx_free(ctx);
    uv_loop_close(&loop);
    free(conns);
    return started == n && ok == n ? 0 : 1;
}
