/* Integration tests of the frame socket (session/wa/framesocket.c) against
 * the fake server's WebSocket transport (tests/fakewa/wsserver.c) on
 * 127.0.0.1: frames both ways over ws:// and wss:// (a test CA and server
 * certificates made with the openssl CLI at run time), the request headers,
 * frames split over messages, merged in one message, sent as WebSocket
 * fragments, text messages ignored, big frames, oversize frames, closes from
 * either side at awkward moments, refused / timed-out / untrusted / wrong-host
 * connections, bad URLs and two connections on one context. Every scenario
 * runs under a guard timer; teardown checks that the loop ends with no
 * handle left (uv_loop_close succeeds), and ASan checks for leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/wa/frame.h"
#include "session/wa/framesocket.h"
#include "tests/fakewa/wsserver.h"

#define MAX_REC 64
#define GUARD_MS 8000

typedef struct fx fx_t;

typedef struct {
    uint8_t *data;
    size_t len;
} rec_t;

struct fx {
    uv_loop_t loop;
    uv_timer_t guard, pause;
    int guard_fired, paused;
    fakewa_ws_t *srv;
    wa_fsock_ctx_t *ctx;
    wa_fsock_t *cli;
    /* client side */
    int opened, closed, close_code;
    char close_reason[512];
    rec_t frames[MAX_REC];
    int nframes;
    /* server side */
    fakewa_ws_conn_t *conn;
    int srv_opens, srv_closes;
    rec_t msgs[MAX_REC];
    int nmsgs;
    char origin[128], cache_control[64], pragma[64], path[128], host[128];
    int had_subprotocol;
    /* scenario hooks */
    void (*srv_open_hook)(fx_t *fx, fakewa_ws_conn_t *c);
    void (*srv_msg_hook)(fx_t *fx, fakewa_ws_conn_t *c, const uint8_t *d, size_t l);
    void (*cli_open_hook)(fx_t *fx);
    void (*cli_frame_hook)(fx_t *fx, const uint8_t *d, size_t l);
    size_t push_piece;
    int push_mode; /* see push_stream */
    void *peers;   /* test_two_connections_one_context */
    /* raw TCP listener that never answers (connect timeout) */
    uv_tcp_t hold_srv, hold_conn;
    int hold_srv_used, hold_conn_used;
};

/* Paths of the test certificates (made once per process). */
static char certdir[512];

static void path_of(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", certdir, file);
}

static void rec_add(rec_t *r, int *n, const uint8_t *d, size_t l)
{
    assert_true(*n < MAX_REC);
    r[*n].data = malloc(l ? l : 1);
    assert_non_null(r[*n].data);
    if (l)
        memcpy(r[*n].data, d, l);
    r[*n].len = l;
    (*n)++;
}

static void copy_hdr(char *out, size_t n, const char *v)
{
    snprintf(out, n, "%s", v ? v : "");
}

/* --- server callbacks --- */

static void *srv_open(void *arg, fakewa_ws_conn_t *c)
{
    fx_t *fx = arg;
    fx->srv_opens++;
    fx->conn = c;
    copy_hdr(fx->origin, sizeof(fx->origin), fakewa_ws_conn_header(c, "origin"));
    copy_hdr(fx->cache_control, sizeof(fx->cache_control),
             fakewa_ws_conn_header(c, "cache-control"));
    copy_hdr(fx->pragma, sizeof(fx->pragma), fakewa_ws_conn_header(c, "pragma"));
    copy_hdr(fx->path, sizeof(fx->path), fakewa_ws_conn_header(c, "path"));
    copy_hdr(fx->host, sizeof(fx->host), fakewa_ws_conn_header(c, "host"));
    fx->had_subprotocol = fakewa_ws_conn_header(c, "sec-websocket-protocol") != NULL;
    if (fx->srv_open_hook)
        fx->srv_open_hook(fx, c);
    return fx;
}

static void srv_message(void *arg, fakewa_ws_conn_t *c, const uint8_t *d, size_t l)
{
    fx_t *fx = arg;
    rec_add(fx->msgs, &fx->nmsgs, d, l);
    if (fx->srv_msg_hook)
        fx->srv_msg_hook(fx, c, d, l);
}

static void srv_close(void *arg, fakewa_ws_conn_t *c)
{
    fx_t *fx = arg;
    fx->srv_closes++;
    if (fx->conn == c)
        fx->conn = NULL;
}

/* --- client callbacks --- */

static void cli_open(void *arg)
{
    fx_t *fx = arg;
    fx->opened++;
    if (fx->cli_open_hook)
        fx->cli_open_hook(fx);
}

static void cli_frame(void *arg, const uint8_t *d, size_t l)
{
    fx_t *fx = arg;
    rec_add(fx->frames, &fx->nframes, d, l);
    if (fx->cli_frame_hook)
        fx->cli_frame_hook(fx, d, l);
}

static void cli_close(void *arg, int code, const char *reason)
{
    fx_t *fx = arg;
    fx->closed++;
    fx->close_code = code;
    snprintf(fx->close_reason, sizeof(fx->close_reason), "%s", reason ? reason : "");
    fx->cli = NULL; /* gone */
}

/* --- running --- */

static void on_guard(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->guard_fired = 1;
}

/* Runs the loop until cond(fx) holds; fails the test after GUARD_MS. */
static void run_until(fx_t *fx, int (*cond)(fx_t *))
{
    fx->guard_fired = 0;
    uv_timer_start(&fx->guard, on_guard, GUARD_MS, 0);
    while (!cond(fx) && !fx->guard_fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    if (!cond(fx))
        fail_msg("scenario did not complete within %d ms", GUARD_MS);
}

static void on_pause(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->paused = 1;
}

/* Lets the loop run for `ms` (to give events a chance to happen that must
 * not; nothing is asserted about time). */
static void run_for(fx_t *fx, unsigned ms)
{
    fx->paused = 0;
    uv_timer_start(&fx->pause, on_pause, ms, 0);
    while (!fx->paused)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static int c_opened_both(fx_t *fx)
{
    return (fx->opened && fx->conn) || fx->closed;
}

static int c_closed(fx_t *fx)
{
    return fx->closed > 0;
}

static int c_srv_closed(fx_t *fx)
{
    return fx->srv_closes > 0;
}

static int c_closed_both(fx_t *fx)
{
    return fx->closed > 0 && fx->srv_closes > 0;
}

/* --- fixture --- */

static int setup_fx(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->guard);
    uv_timer_init(&fx->loop, &fx->pause);
    fx->guard.data = fx->pause.data = fx;
    *state = fx;
    return 0;
}

static int teardown_fx(void **state)
{
    fx_t *fx = *state;
    if (fx->cli)
        wa_fsock_close(fx->cli);
    fx->cli = NULL;
    if (fx->hold_conn_used)
        uv_close((uv_handle_t *)&fx->hold_conn, NULL);
    if (fx->hold_srv_used)
        uv_close((uv_handle_t *)&fx->hold_srv, NULL);
    wa_fsock_ctx_destroy(fx->ctx);
    fakewa_ws_stop(fx->srv);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_close((uv_handle_t *)&fx->pause, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    wa_fsock_ctx_free(fx->ctx);
    fakewa_ws_free(fx->srv);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* no handle left behind */
    for (int i = 0; i < fx->nframes; i++)
        free(fx->frames[i].data);
    for (int i = 0; i < fx->nmsgs; i++)
        free(fx->msgs[i].data);
    free(fx);
    return 0;
}

/* Starts the server (wss:// with the given certificate, or ws://). */
static void start_server(fx_t *fx, const char *cert, const char *key)
{
    char err[256], certp[600], keyp[600];
    fakewa_ws_opts_t o = {.host = "127.0.0.1", .port = 0};
    if (cert) {
        path_of(certp, sizeof(certp), cert);
        path_of(keyp, sizeof(keyp), key);
        o.cert_file = certp;
        o.key_file = keyp;
    }
    fakewa_ws_callbacks_t cb = {srv_open, srv_message, srv_close, fx, NULL};
    fx->srv = fakewa_ws_start(&fx->loop, &o, &cb, err, sizeof(err));
    if (!fx->srv)
        fail_msg("server: %s", err);
    assert_true(fakewa_ws_port(fx->srv) > 0);
}

/* Creates the client context, trusting `ca` (a file in certdir) or the
 * system's CAs when NULL. */
static void start_ctx(fx_t *fx, const char *ca)
{
    char err[256], cap[600];
    wa_fsock_ctx_opts_t o = {0};
    if (ca) {
        path_of(cap, sizeof(cap), ca);
        o.ca_file = cap;
    }
    fx->ctx = wa_fsock_ctx_new(&fx->loop, &o, err, sizeof(err));
    if (!fx->ctx)
        fail_msg("context: %s", err);
}

static wa_fsock_t *connect_url(fx_t *fx, const char *url, const wa_fsock_opts_t *o)
{
    wa_fsock_callbacks_t cb = {cli_open, cli_frame, cli_close, fx};
    int err = 0;
    wa_fsock_t *s = wa_fsock_connect(fx->ctx, url, &cb, o, &err);
    if (!s)
        fail_msg("connect %s: %d", url, err);
    return s;
}

/* Connects to our server at `host` (ws:// or wss://). */
static void connect_to_server(fx_t *fx, int tls, const char *host, const wa_fsock_opts_t *o)
{
    char url[256];
    snprintf(url, sizeof(url), "%s://%s:%d/ws/chat", tls ? "wss" : "ws", host,
             fakewa_ws_port(fx->srv));
    fx->cli = connect_url(fx, url, o);
}

static void assert_rec(const rec_t *r, const void *data, size_t len)
{
    assert_int_equal(r->len, len);
    if (len)
        assert_memory_equal(r->data, data, len);
}

/* Frames of sizes 0, 5, 300, 70000 (byte value = index + 1), concatenated. */
static const size_t stream_lens[] = {0, 5, 300, 70000};
#define N_STREAM 4

static uint8_t *make_stream(size_t *total)
{
    size_t t = 0;
    for (int i = 0; i < N_STREAM; i++)
        t += 3 + stream_lens[i];
    uint8_t *b = malloc(t), *p = b;
    assert_non_null(b);
    for (int i = 0; i < N_STREAM; i++) {
        size_t l = stream_lens[i];
        *p++ = (uint8_t)(l >> 16);
        *p++ = (uint8_t)(l >> 8);
        *p++ = (uint8_t)l;
        memset(p, i + 1, l);
        p += l;
    }
    *total = t;
    return b;
}

static void check_stream_frames(fx_t *fx)
{
    assert_int_equal(fx->nframes, N_STREAM);
    for (int i = 0; i < N_STREAM; i++) {
        assert_int_equal(fx->frames[i].len, stream_lens[i]);
        for (size_t j = 0; j < stream_lens[i]; j++)
            if (fx->frames[i].data[j] != i + 1)
                fail_msg("frame %d byte %zu differs", i, j);
    }
}

/* ------------------------------------------------------------------ */
/* Certificates (openssl CLI), made once. */

static int make_certs(void **state)
{
    (void)state;
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(certdir, sizeof(certdir), "%s/wa_socket_certs", tmp ? tmp : "/tmp");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "set -e; mkdir -p '%s'; cd '%s'; "
             "k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'; "
             "openssl req -x509 $k -days 2 -subj /CN=wa-test-ca -keyout ca.key -out ca.pem; "
             "openssl req -x509 $k -days 2 -subj /CN=wa-other-ca -keyout other-ca.key "
             "-out other-ca.pem; "
             "openssl req $k -subj /CN=127.0.0.1 -keyout server.key -out server.csr; "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.cnf; "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile san.cnf -out server.pem; "
             "openssl req $k -subj /CN=other.invalid -keyout wrong.key -out wrong.csr; "
             "printf 'subjectAltName=DNS:other.invalid\\n' > wrong.cnf; "
             "openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile wrong.cnf -out wrong.pem",
             certdir, certdir);
    strncat(cmd, " >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the test certificates with the openssl CLI\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Frames both ways over ws:// */

static void echo_frames(fx_t *fx, fakewa_ws_conn_t *c, const uint8_t *d, size_t l)
{
    /* strip the intro of the first message, send the frame back as is */
    if (fx->nmsgs == 1) {
        assert_true(l >= 4);
        d += 4;
        l -= 4;
    }
    assert_int_equal(fakewa_ws_send(c, d, l), 0);
}

static void send_three(fx_t *fx)
{
    assert_int_equal(wa_fsock_send(fx->cli, (const uint8_t *)"one", 3), 0);
    assert_int_equal(wa_fsock_send(fx->cli, NULL, 0), 0);
    assert_int_equal(wa_fsock_send(fx->cli, (const uint8_t *)"three-longer", 12), 0);
}

static int c_three_back(fx_t *fx)
{
    return fx->nframes >= 3 || fx->closed;
}

static void check_three(fx_t *fx)
{
    /* the server saw one message per frame, the intro only on the first */
    assert_int_equal(fx->nmsgs, 3);
    static const uint8_t m0[] = {'W', 'A', 6, 3, 0, 0, 3, 'o', 'n', 'e'};
    static const uint8_t m1[] = {0, 0, 0};
    static const uint8_t m2[] = {0,   0,   12,  't', 'h', 'r', 'e', 'e',
                                 '-', 'l', 'o', 'n', 'g', 'e', 'r'};
    assert_rec(&fx->msgs[0], m0, sizeof(m0));
    assert_rec(&fx->msgs[1], m1, sizeof(m1));
    assert_rec(&fx->msgs[2], m2, sizeof(m2));
    /* and the client got the frames back */
    assert_int_equal(fx->nframes, 3);
    assert_rec(&fx->frames[0], "one", 3);
    assert_rec(&fx->frames[1], "", 0);
    assert_rec(&fx->frames[2], "three-longer", 12);
    assert_int_equal(fx->closed, 0);
}

static void test_ws_exchange(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_msg_hook = echo_frames;
    fx->cli_open_hook = send_three;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_three_back);
    assert_int_equal(fx->opened, 1);
    check_three(fx);
    /* the upgrade request */
    assert_string_equal(fx->origin, "https://web.whatsapp.com");
    assert_string_equal(fx->cache_control, "no-cache");
    assert_string_equal(fx->pragma, "no-cache");
    assert_string_equal(fx->path, "/ws/chat");
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", fakewa_ws_port(fx->srv));
    assert_string_equal(fx->host, host);
    assert_false(fx->had_subprotocol);
    /* a caller's close: the server sees it, the client gets no callback */
    wa_fsock_close(fx->cli);
    fx->cli = NULL;
    run_until(fx, c_srv_closed);
    assert_int_equal(fx->closed, 0);
}

static void test_send_before_open(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_msg_hook = echo_frames;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    send_three(fx); /* queued until the handshake completes */
    run_until(fx, c_three_back);
    check_three(fx);
}

/* ------------------------------------------------------------------ */
/* Server -> client boundaries */

/* Sends the test stream as fx->push_mode says: 0 split in messages of
 * push_piece bytes, 1 merged in one message, 2 one message in fragments of
 * push_piece bytes, 3 whole frames with text messages in between. */
static void push_stream(fx_t *fx, fakewa_ws_conn_t *c)
{
    size_t total;
    uint8_t *s = make_stream(&total);
    switch (fx->push_mode) {
    case 0:
        assert_int_equal(fakewa_ws_send_split(c, s, total, fx->push_piece), 0);
        break;
    case 1:
        assert_int_equal(fakewa_ws_send(c, s, total), 0);
        break;
    case 2:
        assert_int_equal(fakewa_ws_send_fragmented(c, s, total, fx->push_piece), 0);
        break;
    case 3:
        assert_int_equal(fakewa_ws_send_text(c, "\x00\x00\x01x", 4), 0);
        assert_int_equal(fakewa_ws_send(c, s, 3), 0); /* the empty frame */
        assert_int_equal(fakewa_ws_send_text(c, "ignored", 7), 0);
        assert_int_equal(fakewa_ws_send(c, s + 3, total - 3), 0);
        break;
    }
    free(s);
}

static int c_stream_done(fx_t *fx)
{
    return fx->nframes >= N_STREAM || fx->closed;
}

static void pushed(fx_t *fx, int mode, size_t piece)
{
    fx->push_mode = mode;
    fx->push_piece = piece;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_open_hook = push_stream;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_stream_done);
    check_stream_frames(fx);
    assert_int_equal(fx->closed, 0);
}

static void test_split_one_byte_messages(void **state)
{
    /* 70 KiB as one-byte messages would be slow: split the start finely */
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    static const uint8_t bytes[] = {0, 0, 2, 'h', 'i', 0, 0, 0, 0, 0, 1, '!'};
    run_until(fx, c_opened_both);
    assert_non_null(fx->conn);
    assert_int_equal(fakewa_ws_send_split(fx->conn, bytes, sizeof(bytes), 1), 0);
    run_until(fx, c_three_back);
    assert_int_equal(fx->nframes, 3);
    assert_rec(&fx->frames[0], "hi", 2);
    assert_rec(&fx->frames[1], "", 0);
    assert_rec(&fx->frames[2], "!", 1);
}

static void test_split_messages(void **state)
{
    pushed(*state, 0, 2); /* length prefixes split 2 + 1 and 1 + 2 */
}

static void test_split_odd_messages(void **state)
{
    pushed(*state, 0, 4093);
}

static void test_merged_frames(void **state)
{
    pushed(*state, 1, 0); /* all four frames in one message */
}

static void test_fragmented_message(void **state)
{
    pushed(*state, 2, 1000); /* one message, 71 WebSocket fragments */
}

static void test_text_ignored(void **state)
{
    pushed(*state, 3, 0);
}

/* ------------------------------------------------------------------ */
/* Big frames both ways */

#define BIG_LEN (1u << 20)

static void big_echo(fx_t *fx, fakewa_ws_conn_t *c, const uint8_t *d, size_t l)
{
    (void)fx;
    /* the client's frame (after the intro) comes back in 3 messages */
    assert_int_equal(l, 4 + 3 + BIG_LEN);
    assert_int_equal(fakewa_ws_send_split(c, d + 4, l - 4, 400000), 0);
}

static void send_big(fx_t *fx)
{
    uint8_t *b = malloc(BIG_LEN);
    assert_non_null(b);
    for (size_t i = 0; i < BIG_LEN; i++)
        b[i] = (uint8_t)(i * 31 + 7);
    assert_int_equal(wa_fsock_send(fx->cli, b, BIG_LEN), 0);
    free(b);
}

static int c_one_frame(fx_t *fx)
{
    return fx->nframes >= 1 || fx->closed;
}

static void test_big_frames(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_msg_hook = big_echo;
    fx->cli_open_hook = send_big;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_one_frame);
    assert_int_equal(fx->nmsgs, 1);
    assert_int_equal(fx->nframes, 1);
    assert_int_equal(fx->frames[0].len, BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        if (fx->frames[0].data[i] != (uint8_t)(i * 31 + 7))
            fail_msg("byte %zu differs", i);
}

static void test_send_too_big(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    static const uint8_t b = 0;
    /* the length is checked before the payload is read */
    assert_int_equal(wa_fsock_send(fx->cli, &b, WA_FRAME_HARD_MAX + 1), WA_FSOCK_ETOOBIG);
}

/* ------------------------------------------------------------------ */
/* Errors and closes */

static void send_oversize(fx_t *fx, fakewa_ws_conn_t *c)
{
    (void)fx;
    /* a good frame, then a prefix announcing 1001 bytes (limit 1000) */
    static const uint8_t bytes[] = {0, 0, 1, 'k', 0x00, 0x03, 0xe9, 1, 2, 3};
    assert_int_equal(fakewa_ws_send(c, bytes, 4), 0);
    assert_int_equal(fakewa_ws_send(c, bytes + 4, sizeof(bytes) - 4), 0);
}

static void test_oversize_frame(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_open_hook = send_oversize;
    wa_fsock_opts_t o = {.max_frame = 1000};
    connect_to_server(fx, 0, "127.0.0.1", &o);
    run_until(fx, c_closed_both);
    assert_int_equal(fx->close_code, WA_FSOCK_ETOOBIG);
    assert_non_null(strstr(fx->close_reason, "1000"));
    assert_int_equal(fx->nframes, 1); /* the good frame before it */
    assert_rec(&fx->frames[0], "k", 1);
    assert_int_equal(fx->closed, 1);
}

static void close_after_bye(fx_t *fx, fakewa_ws_conn_t *c)
{
    (void)fx;
    static const uint8_t bye[] = {0, 0, 3, 'b', 'y', 'e'};
    assert_int_equal(fakewa_ws_send(c, bye, sizeof(bye)), 0);
    fakewa_ws_close(c);
}

static void test_server_closes(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_open_hook = close_after_bye;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_closed_both);
    assert_int_equal(fx->nframes, 1); /* queued before the close: delivered */
    assert_rec(&fx->frames[0], "bye", 3);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(fx->close_code, WA_FSOCK_CLOSED);
    assert_true(fx->close_reason[0] != 0);
}

/* Returns a loopback port nothing listens on (bound, then closed). */
static int closed_port(fx_t *fx)
{
    uv_tcp_t t;
    uv_tcp_init(&fx->loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return ntohs(got.sin_port);
}

static void test_closed_port(void **state)
{
    fx_t *fx = *state;
    start_ctx(fx, NULL);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", closed_port(fx));
    fx->cli = connect_url(fx, url, NULL);
    run_until(fx, c_closed);
    assert_int_equal(fx->opened, 0);
    assert_int_equal(fx->close_code, WA_FSOCK_ECONNECT);
    assert_non_null(strstr(fx->close_reason, "127.0.0.1"));
}

static void on_hold_conn(uv_stream_t *srv, int status)
{
    fx_t *fx = srv->data;
    if (status < 0 || fx->hold_conn_used)
        return;
    uv_tcp_init(&fx->loop, &fx->hold_conn);
    fx->hold_conn_used = 1;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&fx->hold_conn), 0);
    /* and never answer the upgrade request */
}

static void test_connect_timeout(void **state)
{
    fx_t *fx = *state;
    start_ctx(fx, NULL);
    uv_tcp_init(&fx->loop, &fx->hold_srv);
    fx->hold_srv_used = 1;
    fx->hold_srv.data = fx;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&fx->hold_srv, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx->hold_srv, 4, on_hold_conn), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&fx->hold_srv, (struct sockaddr *)&got, &len);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", ntohs(got.sin_port));
    wa_fsock_opts_t o = {.connect_timeout_ms = 300};
    fx->cli = connect_url(fx, url, &o);
    run_until(fx, c_closed);
    assert_int_equal(fx->opened, 0);
    assert_int_equal(fx->close_code, WA_FSOCK_ETIMEOUT);
    assert_true(fx->hold_conn_used);
}

static void test_bad_urls(void **state)
{
    fx_t *fx = *state;
    start_ctx(fx, NULL);
    static const char *bad[] = {
        "http://127.0.0.1/ws/chat",
        "127.0.0.1:80",
        "ws://",
        "ws://127.0.0.1:0/",
        "ws://127.0.0.1:99999/",
        "wss:///ws/chat",
        "ws://+/tmp/socket",
        "",
    };
    wa_fsock_callbacks_t cb = {cli_open, cli_frame, cli_close, fx};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int err = 0;
        assert_null(wa_fsock_connect(fx->ctx, bad[i], &cb, NULL, &err));
        assert_int_equal(err, WA_FSOCK_EURL);
    }
    int err = 0;
    assert_null(wa_fsock_connect(fx->ctx, NULL, &cb, NULL, &err));
    assert_int_equal(err, WA_FSOCK_EURL);
    run_for(fx, 20);
    assert_int_equal(fx->closed, 0);
    assert_string_equal(wa_fsock_strerror(WA_FSOCK_EURL), "invalid WebSocket URL");
}

static void test_close_before_open(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    assert_int_equal(wa_fsock_send(fx->cli, (const uint8_t *)"x", 1), 0);
    wa_fsock_close(fx->cli);
    wa_fsock_close(NULL);
    fx->cli = NULL;
    run_for(fx, 200);
    assert_int_equal(fx->opened, 0);
    assert_int_equal(fx->closed, 0);
    assert_int_equal(fx->nmsgs, 0);
}

static void close_in_open(fx_t *fx)
{
    wa_fsock_close(fx->cli);
    fx->cli = NULL;
}

static void test_close_in_on_open(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->cli_open_hook = close_in_open;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_srv_closed);
    assert_int_equal(fx->opened, 1);
    assert_int_equal(fx->closed, 0);
}

static void close_in_frame(fx_t *fx, const uint8_t *d, size_t l)
{
    (void)d;
    (void)l;
    wa_fsock_close(fx->cli);
    fx->cli = NULL;
}

static void test_close_in_on_frame(void **state)
{
    fx_t *fx = *state;
    fx->push_mode = 1; /* four frames in one message */
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_open_hook = push_stream;
    fx->cli_frame_hook = close_in_frame;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_srv_closed);
    assert_int_equal(fx->nframes, 1); /* nothing after the close */
    assert_int_equal(fx->closed, 0);
}

static void send_three_and_close(fx_t *fx)
{
    send_three(fx);
    wa_fsock_close(fx->cli);
    fx->cli = NULL;
}

static void test_close_flushes_queue(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->cli_open_hook = send_three_and_close;
    connect_to_server(fx, 0, "127.0.0.1", NULL);
    run_until(fx, c_srv_closed);
    assert_int_equal(fx->nmsgs, 3); /* written before the close */
    assert_int_equal(fx->msgs[0].len, 10);
    assert_int_equal(fx->closed, 0);
}

/* Two connections on one context, at the same time. */
typedef struct {
    fx_t *fx;
    int frames, closed;
} peer_t;

static void p_frame(void *arg, const uint8_t *d, size_t l)
{
    peer_t *p = arg;
    assert_rec(&(rec_t){(uint8_t *)d, l}, "one", 3);
    p->frames++;
}

static void p_close(void *arg, int code, const char *reason)
{
    peer_t *p = arg;
    (void)code;
    (void)reason;
    p->closed++;
}

static int c_two_done(fx_t *fx)
{
    peer_t *p = fx->peers;
    return p[0].frames && p[1].frames;
}

static int c_second_frame(fx_t *fx)
{
    peer_t *p = fx->peers;
    return p[1].frames >= 2 || p[1].closed;
}

static int c_srv_closed_two(fx_t *fx)
{
    return fx->srv_closes >= 2;
}

static void echo_strip_intro(fx_t *fx, fakewa_ws_conn_t *c, const uint8_t *d, size_t l)
{
    (void)fx;
    if (l >= 4 && !memcmp(d, wa_frame_intro, 4)) {
        d += 4;
        l -= 4;
    }
    assert_int_equal(fakewa_ws_send(c, d, l), 0);
}

static void test_two_connections_one_context(void **state)
{
    fx_t *fx = *state;
    start_server(fx, NULL, NULL);
    start_ctx(fx, NULL);
    fx->srv_msg_hook = echo_strip_intro;
    peer_t peers[2] = {{fx, 0, 0}, {fx, 0, 0}};
    fx->peers = peers;
    wa_fsock_t *s[2];
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d", fakewa_ws_port(fx->srv)); /* no path */
    for (int i = 0; i < 2; i++) {
        wa_fsock_callbacks_t cb = {NULL, p_frame, p_close, &peers[i]};
        int err;
        s[i] = wa_fsock_connect(fx->ctx, url, &cb, NULL, &err);
        assert_non_null(s[i]);
        assert_int_equal(wa_fsock_send(s[i], (const uint8_t *)"one", 3), 0);
    }
    run_until(fx, c_two_done);
    assert_int_equal(fx->srv_opens, 2);
    assert_string_equal(fx->path, "/");
    /* each connection's first frame carried the intro */
    assert_int_equal(fx->nmsgs, 2);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(fx->msgs[i].data, wa_frame_intro, 4);
    /* one closes, the other still works */
    wa_fsock_close(s[0]);
    assert_int_equal(wa_fsock_send(s[1], (const uint8_t *)"one", 3), 0);
    run_until(fx, c_second_frame);
    assert_int_equal(peers[1].frames, 2);
    /* the second is left open: destroying the context drops it silently */
    wa_fsock_ctx_destroy(fx->ctx);
    run_until(fx, c_srv_closed_two);
    assert_int_equal(peers[0].closed + peers[1].closed, 0);
    fx->peers = NULL;
}

/* ------------------------------------------------------------------ */
/* wss:// */

static void test_wss_exchange(void **state)
{
    fx_t *fx = *state;
    start_server(fx, "server.pem", "server.key");
    start_ctx(fx, "ca.pem");
    fx->srv_msg_hook = echo_frames;
    fx->cli_open_hook = send_three;
    connect_to_server(fx, 1, "127.0.0.1", NULL);
    run_until(fx, c_three_back);
    if (fx->closed)
        fail_msg("closed: %s", fx->close_reason);
    check_three(fx);
    assert_string_equal(fx->origin, "https://web.whatsapp.com");
}

static void wss_fails(fx_t *fx, const char *cert, const char *key, const char *ca)
{
    start_server(fx, cert, key);
    start_ctx(fx, ca);
    connect_to_server(fx, 1, "127.0.0.1", NULL);
    run_until(fx, c_closed);
    assert_int_equal(fx->opened, 0);
    assert_int_equal(fx->srv_opens, 0);
    assert_int_equal(fx->close_code, WA_FSOCK_ECONNECT);
    print_message("reason: %s\n", fx->close_reason);
}

static void test_wss_untrusted(void **state)
{
    fx_t *fx = *state;
    wss_fails(fx, "server.pem", "server.key", "other-ca.pem");
    assert_non_null(strstr(fx->close_reason, "cert"));
}

static void test_wss_system_cas_only(void **state)
{
    fx_t *fx = *state;
    wss_fails(fx, "server.pem", "server.key", NULL); /* our test CA is not a system CA */
    assert_non_null(strstr(fx->close_reason, "cert"));
}

static void test_wss_wrong_host(void **state)
{
    fx_t *fx = *state;
    wss_fails(fx, "wrong.pem", "wrong.key", "ca.pem"); /* trusted, but for other.invalid */
    assert_non_null(strstr(fx->close_reason, "cert"));
}

static void test_wss_to_plain_server(void **state)
{
    wss_fails(*state, NULL, NULL, "ca.pem");
}

/* A wss:// connect made before the CA worker finished, closed at once:
 * nothing is reported and nothing leaks (ASan). */
static void test_wss_close_while_loading_cas(void **state)
{
    fx_t *fx = *state;
    start_server(fx, "server.pem", "server.key");
    start_ctx(fx, "ca.pem");
    connect_to_server(fx, 1, "127.0.0.1", NULL);
    wa_fsock_close(fx->cli);
    fx->cli = NULL;
    run_for(fx, 300);
    assert_int_equal(fx->opened, 0);
    assert_int_equal(fx->closed, 0);
    assert_int_equal(fx->srv_opens, 0);
}

/* A readable CA file holding no certificate: the background load fails and
 * the waiting wss:// connect is refused with a reason naming the CAs. */
static void test_wss_unloadable_ca_file(void **state)
{
    fx_t *fx = *state;
    char bad[600];
    path_of(bad, sizeof(bad), "not-a-ca.pem");
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    wss_fails(fx, "server.pem", "server.key", "not-a-ca.pem");
    assert_non_null(strstr(fx->close_reason, "CA"));
}

static void test_ctx_bad_ca_file(void **state)
{
    fx_t *fx = *state;
    char err[256] = "";
    wa_fsock_ctx_opts_t o = {.ca_file = "/nonexistent/ca.pem"};
    assert_null(wa_fsock_ctx_new(&fx->loop, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_fx, teardown_fx)
    const struct CMUnitTest tests[] = {
        T(test_ws_exchange),
        T(test_send_before_open),
        T(test_split_one_byte_messages),
        T(test_split_messages),
        T(test_split_odd_messages),
        T(test_merged_frames),
        T(test_fragmented_message),
        T(test_text_ignored),
        T(test_big_frames),
        T(test_send_too_big),
        T(test_oversize_frame),
        T(test_server_closes),
        T(test_closed_port),
        T(test_connect_timeout),
        T(test_bad_urls),
        T(test_close_before_open),
        T(test_close_in_on_open),
        T(test_close_in_on_frame),
        T(test_close_flushes_queue),
        T(test_two_connections_one_context),
        T(test_wss_exchange),
        T(test_wss_untrusted),
        T(test_wss_system_cas_only),
        T(test_wss_wrong_host),
        T(test_wss_to_plain_server),
        T(test_ctx_bad_ca_file),
        T(test_wss_close_while_loading_cas),
        T(test_wss_unloadable_ca_file),
    };
#undef T
    if (getenv("WA_TEST_FILTER")) /* run one scenario while debugging */
        cmocka_set_test_filter(getenv("WA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, make_certs, NULL);
}
