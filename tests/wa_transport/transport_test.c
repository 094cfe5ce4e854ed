/* Integration tests of the WhatsApp transport: our client (frame socket +
 * Noise + nodes) against the fake server (tests/fakewa) on loopback, over
 * ws:// and wss:// (a test CA generated at run time), with frames split one
 * byte per WebSocket message and merged several to a message, and the
 * failures that must end a connection with a clear reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/wa/framesocket.h"
#include "session/wa/noisesocket.h"
#include "tests/fakewa/fakewa.h"
#include "tests/fakewa/wsserver.h"

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard;
    fakewa_t *srv;
    wa_fsock_ctx_t *ctx;
    wa_nsock_t *cli;
    wa_keypair_t noise_key;
    int ready, closed, close_code;
    char close_reason[256];
    int server_got_client, server_nodes, client_nodes;
    char last_client_node[512];
    int want_client_nodes;
    int merge_count;
    int done;
    char dir[256];
    fakewa_ws_t *raw_ws;
} fx_t;

static void on_guard(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->done = -1; /* the whole scenario timed out */
    uv_stop(&fx->loop);
}

static void run_until_done(fx_t *fx)
{
    uv_timer_start(&fx->guard, on_guard, 10000, 0);
    while (!fx->done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
}

/* --- fake server behaviour: greet, echo pings, answer "burst" --- */

static void srv_client(void *arg, fakewa_conn_t *c, const uint8_t cs[32], const uint8_t *p,
                       size_t len)
{
    fx_t *fx = arg;
    assert_memory_equal(cs, fx->noise_key.pub, 32);
    assert_int_equal(len, 13);
    assert_memory_equal(p, "client-hello!", 13);
    fx->server_got_client = 1;
    wa_node_t *n = wa_node_new("success");
    wa_node_set_attr(n, "t", "1700000000");
    wa_node_set_attr(n, "lid", "123456789012345:12@lid");
    assert_int_equal(fakewa_send(c, n), 0);
    wa_node_free(n);
}

static void srv_node(void *arg, fakewa_conn_t *c, const wa_node_t *node)
{
    fx_t *fx = arg;
    fx->server_nodes++;
    if (!strcmp(node->tag, "iq") && wa_node_child(node, "ping")) {
        wa_node_t *r = wa_node_new("iq");
        wa_node_set_attr(r, "type", "result");
        wa_node_set_attr(r, "id", wa_node_attr(node, "id"));
        fakewa_send(c, r);
        wa_node_free(r);
    } else if (!strcmp(node->tag, "burst")) {
        fakewa_faults(fx->srv)->merge = 1;
        for (int i = 0; i < fx->merge_count; i++) {
            wa_node_t *r = wa_node_new("item");
            char id[16];
            snprintf(id, sizeof(id), "%d", i);
            wa_node_set_attr(r, "id", id);
            wa_node_set_bytes(r, "payload-bytes", 13);
            fakewa_send(c, r);
            wa_node_free(r);
        }
        fakewa_faults(fx->srv)->merge = 0;
        fakewa_flush(c);
    } else if (!strcmp(node->tag, "garbage")) {
        static const uint8_t junk[40] = {1, 2, 3};
        fakewa_send_raw_frame(c, junk, sizeof(junk));
    } else if (!strcmp(node->tag, "flip")) {
        fakewa_faults(fx->srv)->flip_next = 1;
        wa_node_t *r = wa_node_new("iq");
        fakewa_send(c, r);
        wa_node_free(r);
    }
}

static void srv_close(void *arg, fakewa_conn_t *c, const char *reason)
{
    (void)arg;
    (void)c;
    (void)reason;
}

/* --- client behaviour --- */

static void send_simple(fx_t *fx, const char *tag)
{
    wa_node_t *n = wa_node_new(tag);
    if (!strcmp(tag, "iq")) {
        wa_node_set_attr(n, "id", "1.2-3");
        wa_node_set_attr(n, "to", "@s.whatsapp.net");
        wa_node_set_attr(n, "type", "get");
        wa_node_set_attr(n, "xmlns", "w:p");
        wa_node_add(n, "ping");
    }
    assert_int_equal(wa_nsock_send(fx->cli, n), 0);
    wa_node_free(n);
}

static void cli_ready(void *arg)
{
    fx_t *fx = arg;
    fx->ready = 1;
}

static void cli_node(void *arg, const wa_node_t *node)
{
    fx_t *fx = arg;
    fx->client_nodes++;
    char *t = wa_node_to_text(node, 1);
    snprintf(fx->last_client_node, sizeof(fx->last_client_node), "%s", t);
    free(t);
    if (fx->client_nodes == 1) {
        assert_string_equal(node->tag, "success");
        assert_string_equal(wa_node_attr(node, "lid"), "123456789012345:12@lid");
        send_simple(fx, "iq");
    } else if (fx->client_nodes == 2) {
        assert_string_equal(node->tag, "iq");
        assert_string_equal(wa_node_attr(node, "type"), "result");
        assert_string_equal(wa_node_attr(node, "id"), "1.2-3");
        if (fx->merge_count)
            send_simple(fx, "burst");
    } else {
        assert_string_equal(node->tag, "item");
        char id[16];
        snprintf(id, sizeof(id), "%d", fx->client_nodes - 3);
        assert_string_equal(wa_node_attr(node, "id"), id); /* in order */
    }
    if (fx->client_nodes >= fx->want_client_nodes) {
        wa_nsock_close(fx->cli);
        fx->cli = NULL;
        fx->done = 1;
    }
}

static void cli_close(void *arg, int code, const char *reason)
{
    fx_t *fx = arg;
    fx->closed = 1;
    fx->close_code = code;
    snprintf(fx->close_reason, sizeof(fx->close_reason), "%s", reason);
    fx->cli = NULL;
    fx->done = 1;
}

static int setup_fx(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    wa_crypto_keypair_generate(&fx->noise_key);
    snprintf(fx->dir, sizeof(fx->dir), "%s",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    *state = fx;
    return 0;
}

static int teardown_fx(void **state)
{
    fx_t *fx = *state;
    if (fx->cli)
        wa_nsock_close(fx->cli);
    fakewa_stop(fx->srv);
    fakewa_ws_stop(fx->raw_ws);
    wa_fsock_ctx_destroy(fx->ctx);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    fakewa_free(fx->srv);
    fakewa_ws_free(fx->raw_ws);
    wa_fsock_ctx_free(fx->ctx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* Starts the server (wss when tls) and the client; returns after the run. */
static void scenario(fx_t *fx, int tls, int trust_ok, const uint8_t *root_override)
{
    char err[256], cert[300], key[300], ca[300];
    snprintf(cert, sizeof(cert), "%s/server.pem", fx->dir);
    snprintf(key, sizeof(key), "%s/server.key", fx->dir);
    snprintf(ca, sizeof(ca), "%s/%s", fx->dir, trust_ok ? "ca.pem" : "other-ca.pem");
    fakewa_opts_t so = {.port = 0, .cert_file = tls ? cert : NULL, .key_file = tls ? key : NULL};
    fakewa_callbacks_t scb = {srv_client, srv_node, srv_close, fx, NULL, NULL};
    fx->srv = fakewa_new(&fx->loop, &so, &scb, err, sizeof(err));
    assert_non_null(fx->srv);
    wa_fsock_ctx_opts_t co = {.ca_file = tls ? ca : NULL};
    fx->ctx = wa_fsock_ctx_new(&fx->loop, &co, err, sizeof(err));
    assert_non_null(fx->ctx);
    char url[128];
    snprintf(url, sizeof(url), "%s://%s:%d/ws/chat", tls ? "wss" : "ws",
             tls ? "localhost" : "127.0.0.1", fakewa_port(fx->srv));
    wa_nsock_opts_t o = {.url = url,
                         .noise_key = fx->noise_key,
                         .payload = (const uint8_t *)"client-hello!",
                         .payload_len = 13,
                         .connect_timeout_ms = 5000};
    memcpy(o.trust.root_pub, root_override ? root_override : fakewa_root_pub(fx->srv), 32);
    wa_nsock_callbacks_t cb = {cli_ready, cli_node, cli_close, fx};
    int e = 0;
    fx->cli = wa_nsock_connect(fx->ctx, &o, &cb, &e);
    assert_non_null(fx->cli);
    run_until_done(fx);
    assert_int_not_equal(fx->done, -1);
}

static void test_ws_exchange(void **state)
{
    fx_t *fx = *state;
    fx->want_client_nodes = 2;
    scenario(fx, 0, 1, NULL);
    assert_true(fx->ready);
    assert_true(fx->server_got_client);
    assert_int_equal(fx->server_nodes, 1);
    assert_int_equal(fx->client_nodes, 2);
    assert_false(fx->closed);
}

static void test_ws_byte_at_a_time(void **state)
{
    fx_t *fx = *state;
    fx->want_client_nodes = 2;
    char err[256];
    (void)err;
    /* every frame from the server arrives one byte per WebSocket message */
    fx->merge_count = 0;
    fakewa_opts_t so = {0};
    fakewa_callbacks_t scb = {srv_client, srv_node, srv_close, fx, NULL, NULL};
    fx->srv = fakewa_new(&fx->loop, &so, &scb, err, sizeof(err));
    assert_non_null(fx->srv);
    fakewa_faults(fx->srv)->split = 1;
    fx->ctx = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", fakewa_port(fx->srv));
    wa_nsock_opts_t o = {.url = url,
                         .noise_key = fx->noise_key,
                         .payload = (const uint8_t *)"client-hello!",
                         .payload_len = 13};
    memcpy(o.trust.root_pub, fakewa_root_pub(fx->srv), 32);
    wa_nsock_callbacks_t cb = {cli_ready, cli_node, cli_close, fx};
    int e;
    fx->cli = wa_nsock_connect(fx->ctx, &o, &cb, &e);
    run_until_done(fx);
    assert_int_not_equal(fx->done, -1);
    assert_int_equal(fx->client_nodes, 2);
    assert_false(fx->closed);
}

static void test_ws_merged_frames(void **state)
{
    fx_t *fx = *state;
    fx->merge_count = 5;
    fx->want_client_nodes = 2 + 5;
    scenario(fx, 0, 1, NULL);
    assert_int_equal(fx->client_nodes, 7);
    assert_false(fx->closed);
}

static int make_certs(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=wa-test-ca -keyout ca.key -out ca.pem 2>/dev/null && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=other-ca -keyout other-ca.key -out other-ca.pem 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-days 2 -extfile ext.cnf -out server.pem 2>/dev/null",
             dir);
    return system(cmd);
}

static void test_wss_exchange(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(make_certs(fx->dir), 0);
    fx->want_client_nodes = 2;
    scenario(fx, 1, 1, NULL);
    assert_true(fx->ready);
    assert_int_equal(fx->client_nodes, 2);
    assert_false(fx->closed);
}

static void test_wss_untrusted(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(make_certs(fx->dir), 0);
    scenario(fx, 1, 0, NULL);
    assert_false(fx->ready);
    assert_true(fx->closed);
    assert_int_equal(fx->close_code, WA_NSOCK_ECONNECT);
}

static void test_tampered_certificate(void **state)
{
    fx_t *fx = *state;
    char err[256];
    fakewa_opts_t so = {0};
    fakewa_callbacks_t scb = {srv_client, srv_node, srv_close, fx, NULL, NULL};
    fx->srv = fakewa_new(&fx->loop, &so, &scb, err, sizeof(err));
    fakewa_faults(fx->srv)->tamper_cert = 1;
    fx->ctx = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", fakewa_port(fx->srv));
    wa_nsock_opts_t o = {.url = url,
                         .noise_key = fx->noise_key,
                         .payload = (const uint8_t *)"client-hello!",
                         .payload_len = 13};
    memcpy(o.trust.root_pub, fakewa_root_pub(fx->srv), 32);
    wa_nsock_callbacks_t cb = {cli_ready, cli_node, cli_close, fx};
    int e;
    fx->cli = wa_nsock_connect(fx->ctx, &o, &cb, &e);
    run_until_done(fx);
    assert_true(fx->closed);
    assert_int_equal(fx->close_code, WA_NSOCK_ECERT);
    assert_non_null(strstr(fx->close_reason, "certificate"));
    assert_false(fx->ready);
}

static void test_wrong_root_key(void **state)
{
    fx_t *fx = *state;
    uint8_t wrong[32];
    memset(wrong, 0x42, sizeof(wrong));
    scenario(fx, 0, 1, wrong);
    assert_true(fx->closed);
    assert_int_equal(fx->close_code, WA_NSOCK_ECERT);
    assert_non_null(strstr(fx->close_reason, "root"));
}

static void cli_node_then(void *arg, const wa_node_t *node)
{
    fx_t *fx = arg;
    fx->client_nodes++;
    (void)node;
    if (fx->client_nodes == 1)
        send_simple(fx, fx->merge_count ? "garbage" : "flip");
}

static void failure_after_success(fx_t *fx, int garbage)
{
    char err[256];
    fakewa_opts_t so = {0};
    fakewa_callbacks_t scb = {srv_client, srv_node, srv_close, fx, NULL, NULL};
    fx->srv = fakewa_new(&fx->loop, &so, &scb, err, sizeof(err));
    fx->ctx = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    fx->merge_count = garbage;
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", fakewa_port(fx->srv));
    wa_nsock_opts_t o = {.url = url,
                         .noise_key = fx->noise_key,
                         .payload = (const uint8_t *)"client-hello!",
                         .payload_len = 13};
    memcpy(o.trust.root_pub, fakewa_root_pub(fx->srv), 32);
    wa_nsock_callbacks_t cb = {cli_ready, cli_node_then, cli_close, fx};
    int e;
    fx->cli = wa_nsock_connect(fx->ctx, &o, &cb, &e);
    run_until_done(fx);
    assert_true(fx->ready);
    assert_true(fx->closed);
    assert_int_equal(fx->close_code, WA_NSOCK_EDECRYPT);
}

static void test_flipped_ciphertext_bit(void **state)
{
    failure_after_success(*state, 0);
}

static void test_garbage_frame(void **state)
{
    failure_after_success(*state, 1);
}

static void test_connection_refused(void **state)
{
    fx_t *fx = *state;
    char err[256];
    fx->ctx = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    /* a port nothing listens on: bind one, note it, close it */
    uv_tcp_t t;
    uv_tcp_init(&fx->loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", ntohs(got.sin_port));
    wa_nsock_opts_t o = {
        .url = url, .noise_key = fx->noise_key, .payload = (const uint8_t *)"x", .payload_len = 1};
    wa_nsock_callbacks_t cb = {cli_ready, cli_node, cli_close, fx};
    int e = 0;
    fx->cli = wa_nsock_connect(fx->ctx, &o, &cb, &e);
    if (fx->cli) {
        run_until_done(fx);
        assert_true(fx->closed);
        assert_int_equal(fx->close_code, WA_NSOCK_ECONNECT);
    } else {
        assert_int_equal(e, WA_NSOCK_ECONNECT);
    }
    int e2 = 0;
    o.url = "http://not-a-websocket";
    assert_null(wa_nsock_connect(fx->ctx, &o, &cb, &e2));
    assert_int_equal(e2, WA_NSOCK_ECONNECT);
}

/* --- the frame socket alone: oversize frames --- */

typedef struct {
    fx_t *fx;
    fakewa_ws_conn_t *conn;
} raw_t;

static void *raw_open(void *arg, fakewa_ws_conn_t *c)
{
    raw_t *r = arg;
    r->conn = c;
    /* a frame header announcing 5000 bytes, over the client's 1000 limit */
    static const uint8_t big[] = {0x00, 0x13, 0x88, 1, 2, 3};
    fakewa_ws_send(c, big, sizeof(big));
    return r;
}

static void raw_msg(void *arg, fakewa_ws_conn_t *c, const uint8_t *d, size_t l)
{
    (void)arg;
    (void)c;
    (void)d;
    (void)l;
}

static void raw_close(void *arg, fakewa_ws_conn_t *c)
{
    (void)arg;
    (void)c;
}

static void fs_open(void *arg)
{
    (void)arg;
}

static void fs_frame(void *arg, const uint8_t *p, size_t l)
{
    (void)arg;
    (void)p;
    (void)l;
    fail_msg("no frame expected");
}

static void fs_close(void *arg, int code, const char *reason)
{
    fx_t *fx = arg;
    fx->closed = 1;
    fx->close_code = code;
    snprintf(fx->close_reason, sizeof(fx->close_reason), "%s", reason);
    fx->done = 1;
}

static void test_oversize_frame(void **state)
{
    fx_t *fx = *state;
    char err[256];
    raw_t r = {fx, NULL};
    fakewa_ws_opts_t wo = {0};
    fakewa_ws_callbacks_t wcb = {raw_open, raw_msg, raw_close, &r, NULL};
    fakewa_ws_t *ws = fakewa_ws_start(&fx->loop, &wo, &wcb, err, sizeof(err));
    assert_non_null(ws);
    fx->ctx = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat", fakewa_ws_port(ws));
    wa_fsock_callbacks_t cb = {fs_open, fs_frame, fs_close, fx};
    wa_fsock_opts_t o = {.max_frame = 1000};
    int e;
    wa_fsock_t *s = wa_fsock_connect(fx->ctx, url, &cb, &o, &e);
    assert_non_null(s);
    run_until_done(fx);
    assert_true(fx->closed);
    assert_int_equal(fx->close_code, WA_FSOCK_ETOOBIG);
    fx->raw_ws = ws; /* torn down with everything else */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ws_exchange, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_ws_byte_at_a_time, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_ws_merged_frames, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_wss_exchange, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_wss_untrusted, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_tampered_certificate, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_wrong_root_key, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_flipped_ciphertext_bit, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_garbage_frame, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup_fx, teardown_fx),
        cmocka_unit_test_setup_teardown(test_oversize_frame, setup_fx, teardown_fx),
    };
    if (getenv("WA_TEST_FILTER")) /* run one scenario while debugging */
        cmocka_set_test_filter(getenv("WA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
