/* Handshake and transport over the frame socket. The handshake timer covers
 * both the WebSocket connect and the wait for the server hello; after that
 * every frame is decrypted and decoded, and any failure ends the connection
 * with a specific reason (a lost frame would desynchronise the counters). */
#include "session/wa/noisesocket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "session/wa/noise.h"

struct wa_nsock {
    wa_fsock_t *fs;
    wa_noise_t *noise;
    wa_nsock_callbacks_t cb;
    uint8_t *payload;
    size_t payload_len;
    int ready, done, in_frame, close_after;
    void (*gone)(void *arg); /* wa_nsock_close_then, passed to the frame socket */
    void *gone_arg;
    uv_timer_t timer;
    int timer_live;
    unsigned bad_nodes; /* stanzas dropped as malformed */
};

const char *wa_nsock_strerror(int code)
{
    switch (code) {
    case WA_NSOCK_CLOSED:
        return "connection closed by the server";
    case WA_NSOCK_ECONNECT:
        return "could not connect";
    case WA_NSOCK_ETIMEOUT:
        return "timed out";
    case WA_NSOCK_EHANDSHAKE:
        return "noise handshake failed";
    case WA_NSOCK_ECERT:
        return "server certificate rejected";
    case WA_NSOCK_EDECRYPT:
        return "frame failed to decrypt";
    case WA_NSOCK_EBADNODE:
        return "malformed node from the server";
    case WA_NSOCK_ETOOBIG:
        return "frame too large";
    case WA_NSOCK_ENOMEM:
        return "out of memory";
    }
    return "unknown connection error";
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void destroy(wa_nsock_t *s)
{
    if (s->gone)
        wa_fsock_close_then(s->fs, s->gone, s->gone_arg);
    else if (s->fs)
        wa_fsock_close(s->fs);
    s->gone = NULL;
    s->fs = NULL;
    wa_noise_free(s->noise);
    s->noise = NULL;
    if (s->payload) {
        memset(s->payload, 0, s->payload_len);
        free(s->payload);
        s->payload = NULL;
    }
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed); /* frees s */
}

/* Reports the end (once) and tears down. */
static void finish(wa_nsock_t *s, int code, const char *reason)
{
    if (s->done)
        return;
    s->done = 1;
    if (s->cb.on_close)
        s->cb.on_close(s->cb.arg, code, reason);
    destroy(s);
}

static void on_timeout(uv_timer_t *t)
{
    wa_nsock_t *s = t->data;
    finish(s, WA_NSOCK_ETIMEOUT, "no answer from the server in time");
}

static void on_fs_open(void *arg)
{
    wa_nsock_t *s = arg;
    uint8_t *hello;
    size_t len;
    int rc = wa_noise_client_hello(s->noise, &hello, &len);
    if (rc) {
        finish(s, WA_NSOCK_EHANDSHAKE, wa_noise_strerror(rc));
        return;
    }
    rc = wa_fsock_send(s->fs, hello, len);
    free(hello);
    if (rc)
        finish(s, WA_NSOCK_ENOMEM, "cannot send the client hello");
}

static void handle_server_hello(wa_nsock_t *s, const uint8_t *p, size_t len)
{
    uint8_t *finish_msg;
    size_t flen;
    int cert_err = 0;
    int rc = wa_noise_client_finish(s->noise, p, len, s->payload, s->payload_len, &finish_msg,
                                    &flen, &cert_err);
    if (rc == WA_NOISE_ECERT) {
        char why[160];
        snprintf(why, sizeof(why), "server certificate rejected: %s", wa_cert_strerror(cert_err));
        finish(s, WA_NSOCK_ECERT, why);
        return;
    }
    if (rc) {
        char why[160];
        snprintf(why, sizeof(why), "noise handshake failed: %s", wa_noise_strerror(rc));
        finish(s, rc == WA_NOISE_EDECRYPT ? WA_NSOCK_EDECRYPT : WA_NSOCK_EHANDSHAKE, why);
        return;
    }
    rc = wa_fsock_send(s->fs, finish_msg, flen);
    free(finish_msg);
    if (rc) {
        finish(s, WA_NSOCK_ENOMEM, "cannot send the client finish");
        return;
    }
    /* the payload went out in the finish message: not kept for the life
     * of the connection */
    memset(s->payload, 0, s->payload_len);
    free(s->payload);
    s->payload = NULL;
    s->payload_len = 0;
    s->ready = 1;
    uv_timer_stop(&s->timer);
    if (s->cb.on_ready)
        s->cb.on_ready(s->cb.arg);
}

static void on_fs_frame(void *arg, const uint8_t *p, size_t len)
{
    wa_nsock_t *s = arg;
    if (s->done)
        return;
    if (!s->ready) {
        handle_server_hello(s, p, len);
        return;
    }
    uint8_t *pt;
    size_t ptlen;
    int rc = wa_noise_decrypt(s->noise, p, len, &pt, &ptlen);
    if (rc) {
        finish(s, WA_NSOCK_EDECRYPT, "a frame failed to decrypt (tampered or out of step)");
        return;
    }
    wa_node_t *node;
    rc = wa_node_decode(pt, ptlen, &node);
    free(pt);
    if (rc) {
        /* the stream is still in step: drop this stanza, keep the link */
        LOG_WARN("wa", "dropped a malformed stanza from the server (%zu bytes): %s", ptlen,
                 wa_node_strerror(rc));
        s->bad_nodes++;
        return;
    }
    s->in_frame = 1;
    if (s->cb.on_node)
        s->cb.on_node(s->cb.arg, node);
    s->in_frame = 0;
    wa_node_free(node);
    if (s->close_after) {
        s->done = 1;
        destroy(s);
    }
}

static void on_fs_close(void *arg, int code, const char *reason)
{
    wa_nsock_t *s = arg;
    s->fs = NULL; /* already gone */
    int ncode = code == WA_FSOCK_CLOSED     ? WA_NSOCK_CLOSED
                : code == WA_FSOCK_ETIMEOUT ? WA_NSOCK_ETIMEOUT
                : code == WA_FSOCK_ETOOBIG  ? WA_NSOCK_ETOOBIG
                : code == WA_FSOCK_ENOMEM   ? WA_NSOCK_ENOMEM
                                            : WA_NSOCK_ECONNECT;
    finish(s, ncode, reason ? reason : wa_fsock_strerror(code));
}

wa_nsock_t *wa_nsock_connect(wa_fsock_ctx_t *ctx, const wa_nsock_opts_t *opts,
                             const wa_nsock_callbacks_t *cb, int *err)
{
    wa_nsock_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = WA_NSOCK_ENOMEM;
        return NULL;
    }
    s->cb = *cb;
    s->payload = malloc(opts->payload_len ? opts->payload_len : 1);
    s->noise = wa_noise_new_initiator(&opts->noise_key, &opts->trust,
                                      opts->now ? opts->now : (int64_t)time(NULL));
    if (!s->payload || !s->noise) {
        free(s->payload);
        wa_noise_free(s->noise);
        free(s);
        *err = WA_NSOCK_ENOMEM;
        return NULL;
    }
    memcpy(s->payload, opts->payload, opts->payload_len);
    s->payload_len = opts->payload_len;
    wa_fsock_callbacks_t fcb = {on_fs_open, on_fs_frame, on_fs_close, s};
    unsigned tmo = opts->connect_timeout_ms ? opts->connect_timeout_ms : 20000;
    wa_fsock_opts_t fo = {.connect_timeout_ms = tmo,
                          .routing_info = opts->routing_info,
                          .routing_info_len = opts->routing_info_len};
    int ferr = 0;
    uv_timer_init(wa_fsock_ctx_loop(ctx), &s->timer);
    s->timer.data = s;
    s->fs = wa_fsock_connect(ctx, opts->url, &fcb, &fo, &ferr);
    if (!s->fs) {
        *err = WA_NSOCK_ECONNECT;
        s->done = 1;
        destroy(s);
        return NULL;
    }
    uv_timer_start(&s->timer, on_timeout, tmo, 0);
    return s;
}

int wa_nsock_send(wa_nsock_t *s, const wa_node_t *node)
{
    if (!s->ready || s->done || !s->fs)
        return -100;
    uint8_t *pt, *ct;
    size_t ptlen, ctlen;
    int rc = wa_node_encode(node, &pt, &ptlen);
    if (rc)
        return rc;
    rc = wa_noise_encrypt(s->noise, pt, ptlen, &ct, &ctlen);
    free(pt);
    if (rc)
        return WA_NSOCK_ENOMEM;
    rc = wa_fsock_send(s->fs, ct, ctlen);
    free(ct);
    return rc;
}

void wa_nsock_close_then(wa_nsock_t *s, void (*gone)(void *arg), void *arg)
{
    if (!s || s->done || s->gone) {
        wa_nsock_close(s);
        gone(arg);
        return;
    }
    s->gone = gone;
    s->gone_arg = arg;
    wa_nsock_close(s);
}

void wa_nsock_close(wa_nsock_t *s)
{
    if (!s || s->done)
        return;
    if (s->in_frame) { /* closing from on_node: finish after it returns */
        s->close_after = 1;
        s->cb.on_close = NULL;
        s->cb.on_node = NULL;
        return;
    }
    s->done = 1;
    destroy(s);
}
