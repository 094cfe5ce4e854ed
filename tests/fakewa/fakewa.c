/* Fake WhatsApp server, transport layer: per connection it checks the intro
 * header, reassembles frames, plays the Noise responder, then decrypts and
 * decodes the client's nodes and encrypts its own. Faults alter how frames
 * leave (split, merged, tampered). */
#include "tests/fakewa/fakewa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session/wa/cert.h"
#include "session/wa/frame.h"
#include "session/wa/noise.h"
#include "tests/fakewa/wsserver.h"

struct fakewa {
    fakewa_ws_t *ws;
    uv_timer_t flush_timer; /* merge == 2 */
    struct fakewa_conn *conns;
    fakewa_callbacks_t cb;
    fakewa_faults_t faults;
    wa_keypair_t root, inter, server;
    uint8_t *chain, *bad_chain;
    size_t chain_len;
};

enum { C_INTRO, C_HELLO, C_FINISH, C_TRANSPORT, C_DEAD };

struct fakewa_conn {
    fakewa_t *f;
    fakewa_ws_conn_t *ws;
    int state;
    wa_noise_t *noise;
    wa_frame_reader_t reader;
    uint8_t *held;
    size_t held_len;
    uint8_t *routing; /* what the client's "ED" intro prefix carried */
    size_t routing_len;
    void *user;
    struct fakewa_conn *prev, *next;
};

static void conn_fail(fakewa_conn_t *c, const char *why)
{
    (void)why;
    c->state = C_DEAD;
    fakewa_ws_close(c->ws);
}

static void on_flush_timer(uv_timer_t *t)
{
    fakewa_t *f = t->data;
    for (fakewa_conn_t *c = f->conns; c; c = c->next)
        fakewa_flush(c);
}

/* Sends one frame (payload already encrypted or raw), applying faults. */
static int send_frame(fakewa_conn_t *c, const uint8_t *payload, size_t len)
{
    uint8_t *bytes;
    size_t n;
    if (wa_frame_write(0, payload, len, &bytes, &n))
        return -1;
    fakewa_faults_t *ft = &c->f->faults;
    int rc = 0;
    if (ft->merge) {
        uint8_t *h = realloc(c->held, c->held_len + n);
        if (!h) {
            free(bytes);
            return -1;
        }
        memcpy(h + c->held_len, bytes, n);
        c->held = h;
        c->held_len += n;
        if (ft->merge == 2 && !uv_is_active((uv_handle_t *)&c->f->flush_timer))
            uv_timer_start(&c->f->flush_timer, on_flush_timer, 5, 0);
    } else if (ft->split > 0) {
        for (size_t off = 0; off < n && rc == 0; off += ft->split)
            rc = fakewa_ws_send(c->ws, bytes + off, n - off < ft->split ? n - off : ft->split);
    } else {
        rc = fakewa_ws_send(c->ws, bytes, n);
    }
    free(bytes);
    return rc;
}

void fakewa_flush(fakewa_conn_t *c)
{
    if (!c->held_len)
        return;
    fakewa_ws_send(c->ws, c->held, c->held_len);
    free(c->held);
    c->held = NULL;
    c->held_len = 0;
}

static void handle_frame(fakewa_conn_t *c, const uint8_t *p, size_t len)
{
    fakewa_t *f = c->f;
    if (c->state == C_HELLO) {
        c->noise = wa_noise_new_responder(
            &f->server, f->faults.tamper_cert ? f->bad_chain : f->chain, f->chain_len);
        uint8_t *out;
        size_t olen;
        if (!c->noise || wa_noise_server_hello(c->noise, p, len, &out, &olen)) {
            conn_fail(c, "bad client hello");
            return;
        }
        send_frame(c, out, olen);
        free(out);
        c->state = C_FINISH;
        return;
    }
    if (c->state == C_FINISH) {
        uint8_t cs[32], *payload;
        size_t plen;
        if (wa_noise_server_finish(c->noise, p, len, cs, &payload, &plen)) {
            conn_fail(c, "bad client finish");
            return;
        }
        c->state = C_TRANSPORT;
        if (f->cb.on_client)
            f->cb.on_client(f->cb.arg, c, cs, payload, plen);
        free(payload);
        return;
    }
    if (c->state != C_TRANSPORT)
        return;
    uint8_t *pt;
    size_t ptlen;
    if (wa_noise_decrypt(c->noise, p, len, &pt, &ptlen)) {
        conn_fail(c, "client frame failed to decrypt");
        return;
    }
    wa_node_t *node;
    int rc = wa_node_decode(pt, ptlen, &node);
    free(pt);
    if (rc) {
        conn_fail(c, "client sent a malformed node");
        return;
    }
    if (f->cb.on_node)
        f->cb.on_node(f->cb.arg, c, node);
    wa_node_free(node);
}

static void *ws_open(void *arg, fakewa_ws_conn_t *wc)
{
    fakewa_t *f = arg;
    fakewa_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->f = f;
    c->ws = wc;
    c->state = C_INTRO;
    wa_frame_reader_init(&c->reader, 0);
    c->next = f->conns;
    if (f->conns)
        f->conns->prev = c;
    f->conns = c;
    if (f->cb.on_open)
        f->cb.on_open(f->cb.arg);
    return c;
}

static void ws_message(void *arg, fakewa_ws_conn_t *wc, const uint8_t *data, size_t len)
{
    (void)arg;
    fakewa_conn_t *c = fakewa_ws_conn_user(wc);
    if (!c || c->state == C_DEAD)
        return;
    if (c->state == C_INTRO && c->f->faults.refuse) {
        conn_fail(c, "refusing connections (offline)");
        return;
    }
    if (c->state == C_INTRO && len >= 7 && data[0] == 'E' && data[1] == 'D' && data[2] == 0 &&
        data[3] == 1) {
        /* edge routing prefix (protocol doc 1.2): ED 00 01 len[3] info */
        size_t rl = (size_t)data[4] << 16 | (size_t)data[5] << 8 | data[6];
        if (rl == 0 || rl > len - 7 || !(c->routing = malloc(rl))) {
            conn_fail(c, "bad edge routing prefix");
            return;
        }
        memcpy(c->routing, data + 7, rl);
        c->routing_len = rl;
        data += 7 + rl;
        len -= 7 + rl;
    }
    if (c->state == C_INTRO) {
        if (len < 4 || memcmp(data, wa_noise_prologue, 4) != 0) {
            conn_fail(c, "bad intro header");
            return;
        }
        data += 4;
        len -= 4;
        c->state = C_HELLO;
    }
    if (wa_frame_reader_feed(&c->reader, data, len)) {
        conn_fail(c, "oversize frame");
        return;
    }
    const uint8_t *p;
    size_t plen;
    while (c->state != C_DEAD && wa_frame_reader_next(&c->reader, &p, &plen) == 1)
        handle_frame(c, p, plen);
}

static void ws_close(void *arg, fakewa_ws_conn_t *wc)
{
    fakewa_t *f = arg;
    fakewa_conn_t *c = fakewa_ws_conn_user(wc);
    if (!c)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (f->cb.on_close)
        f->cb.on_close(f->cb.arg, c, c->state == C_DEAD ? "closed by the server" : "closed");
    wa_noise_free(c->noise);
    wa_frame_reader_free(&c->reader);
    free(c->held);
    free(c->routing);
    free(c);
}

static int ws_http(void *arg, int post, const char *path, const char *body, size_t len, char **resp)
{
    fakewa_t *f = arg;
    return f->cb.on_http(f->cb.arg, post, path, body, len, resp);
}

fakewa_t *fakewa_new(uv_loop_t *loop, const fakewa_opts_t *opts, const fakewa_callbacks_t *cb,
                     char *err, size_t errlen)
{
    fakewa_t *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->cb = *cb;
    if (opts->root)
        f->root = *opts->root;
    else
        wa_crypto_keypair_generate(&f->root);
    wa_crypto_keypair_generate(&f->inter);
    wa_crypto_keypair_generate(&f->server);
    uint64_t now = (uint64_t)time(NULL);
    wa_cert_details_t inter = {.serial = 1,
                               .issuer_serial = 0,
                               .not_before = now - 86400,
                               .not_after = now + 365 * 86400ULL};
    memcpy(inter.key, f->inter.pub, 32);
    wa_cert_details_t leaf = {.serial = 2,
                              .issuer_serial = 1,
                              .not_before = now - 86400,
                              .not_after = now + 30 * 86400ULL};
    memcpy(leaf.key, f->server.pub, 32);
    if (wa_cert_build_chain(f->root.priv, f->inter.priv, &inter, &leaf, &f->chain, &f->chain_len)) {
        snprintf(err, errlen, "cannot build the certificate chain");
        free(f);
        return NULL;
    }
    f->bad_chain = malloc(f->chain_len);
    if (!f->bad_chain) {
        free(f->chain);
        free(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(f->bad_chain, f->chain, f->chain_len);
    f->bad_chain[8] ^= 0x01; /* inside the leaf's signed details (field 1 comes first) */
    fakewa_ws_opts_t wo = {opts->host, opts->port, opts->cert_file, opts->key_file};
    fakewa_ws_callbacks_t wcb = {ws_open, ws_message, ws_close, f, cb->on_http ? ws_http : NULL};
    uv_timer_init(loop, &f->flush_timer);
    f->flush_timer.data = f;
    f->ws = fakewa_ws_start(loop, &wo, &wcb, err, errlen);
    if (!f->ws) {
        uv_close((uv_handle_t *)&f->flush_timer, NULL);
        free(f->chain);
        free(f->bad_chain);
        free(f);
        return NULL;
    }
    return f;
}

void fakewa_stop(fakewa_t *f)
{
    if (!f)
        return;
    uv_timer_stop(&f->flush_timer);
    uv_close((uv_handle_t *)&f->flush_timer, NULL);
    fakewa_ws_stop(f->ws);
}

void fakewa_free(fakewa_t *f)
{
    if (!f)
        return;
    fakewa_ws_free(f->ws);
    free(f->chain);
    free(f->bad_chain);
    memset(f, 0, sizeof(*f));
    free(f);
}

int fakewa_port(const fakewa_t *f)
{
    return fakewa_ws_port(f->ws);
}

const uint8_t *fakewa_root_pub(const fakewa_t *f)
{
    return f->root.pub;
}

fakewa_faults_t *fakewa_faults(fakewa_t *f)
{
    return &f->faults;
}

int fakewa_send(fakewa_conn_t *c, const wa_node_t *node)
{
    if (c->state != C_TRANSPORT)
        return -1;
    uint8_t *pt, *ct;
    size_t ptlen, ctlen;
    if (wa_node_encode(node, &pt, &ptlen))
        return -1;
    int rc = wa_noise_encrypt(c->noise, pt, ptlen, &ct, &ctlen);
    free(pt);
    if (rc)
        return -1;
    if (c->f->faults.flip_next) {
        c->f->faults.flip_next = 0;
        ct[ctlen / 2] ^= 0x08;
    }
    rc = send_frame(c, ct, ctlen);
    free(ct);
    return rc;
}

int fakewa_send_plain(fakewa_conn_t *c, const uint8_t *plain, size_t len)
{
    if (c->state != C_TRANSPORT)
        return -1;
    uint8_t *ct;
    size_t ctlen;
    if (wa_noise_encrypt(c->noise, plain, len, &ct, &ctlen))
        return -1;
    int rc = send_frame(c, ct, ctlen);
    free(ct);
    return rc;
}

const uint8_t *fakewa_conn_routing(const fakewa_conn_t *c, size_t *len)
{
    *len = c->routing_len;
    return c->routing;
}

int fakewa_send_raw_frame(fakewa_conn_t *c, const uint8_t *data, size_t len)
{
    return send_frame(c, data, len);
}

void fakewa_close(fakewa_conn_t *c)
{
    conn_fail(c, "closed by request");
}

void fakewa_conn_set_user(fakewa_conn_t *c, void *user)
{
    c->user = user;
}

void *fakewa_conn_user(const fakewa_conn_t *c)
{
    return c->user;
}
