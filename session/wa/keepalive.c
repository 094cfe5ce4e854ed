/* Keepalive and the login watchdog (whatsmeow's keepalive.go, protocol doc
 * 6.4 and 11.3). Pings start when the Noise handshake completes, also while
 * a QR is on screen, every keepalive_ms with +-10% jitter. A ping answered
 * within keepalive_timeout_ms resets the miss count; keepalive_misses
 * misses in a row end the connection with "keepalive_timeout". One lost
 * ping is therefore forgiven, and at the defaults (20 s, 10 s, 2) a dead
 * link is noticed within 2 x 22 + 10 = 54 s.
 *
 * The watchdog: a connection on which the server has said neither
 * pair-device, success nor failure login_timeout_ms after the handshake
 * ends with "timeout" (the owner retries with backoff), as Baileys gives up
 * with 408 on a silent server. */
#include <string.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/crypto.h"

static void schedule_ping(wa_client_t *c);

static void on_ping_answer(wa_client_t *c, const wa_node_t *resp, int ok, void *arg)
{
    (void)arg;
    (void)ok;
    if (c->done)
        return;
    c->ping_id[0] = 0;
    if (resp) {
        /* any answer, even an error, proves the link works */
        if (c->ping_misses)
            LOG_INFO("wa", "keepalive restored after %u missed ping(s)", c->ping_misses);
        c->ping_misses = 0;
        c->last_ok_ms = wa_client_now_ms();
    } else {
        c->ping_misses++;
        LOG_WARN("wa", "keepalive ping not answered within %u ms (%u/%u)",
                 c->cfg.keepalive_timeout_ms, c->ping_misses, c->cfg.keepalive_misses);
        if (c->ping_misses >= c->cfg.keepalive_misses) {
            wa_verdict_t v;
            wa_client_verdict(&v, "keepalive_timeout", 408, WA_RETRY_BACKOFF, 0,
                              "WhatsApp stopped answering keepalive pings");
            wa_client_finish(c, &v);
            return;
        }
    }
    schedule_ping(c);
}

static void on_ka_timer(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done || c->logging_out || c->ping_id[0])
        return;
    wa_node_t *p = wa_client_iq(NULL, "get", "w:p");
    if (p)
        wa_node_add(p, "ping");
    c->ping_sent_ms = wa_client_now_ms();
    if (wa_client_send_iq(c, p, c->cfg.keepalive_timeout_ms, on_ping_answer, NULL, c->ping_id,
                          sizeof(c->ping_id)) != 0) {
        c->ping_id[0] = 0;
        schedule_ping(c);
    }
}

/* The next ping goes out one interval (90% .. 110% of keepalive_ms) after
 * the previous one was sent, not after its answer or timeout: a lost ping
 * does not stretch the period. The due time is rounded up to a slot of
 * 1/200 of the interval (100 ms at 20 s) on the loop's clock, so that the
 * pings of all connections due in the same slot go out in one turn of the
 * loop: with a thousand sessions, one wake-up for several pings instead of
 * one each. The jitter is drawn from 90% .. 109.5% so that the rounding
 * keeps it within 110%. */
static void schedule_ping(wa_client_t *c)
{
    uint8_t r[2] = {0, 0};
    wa_crypto_random(r, 2);
    uint64_t base = c->cfg.keepalive_ms, slot = base / 200;
    int64_t ms = (int64_t)(base * (900 + ((unsigned)(r[0] << 8 | r[1]) % 196)) / 1000);
    if (c->ping_sent_ms)
        ms -= wa_client_now_ms() - c->ping_sent_ms;
    if (ms < 1)
        ms = 1;
    if (slot > 1) {
        uint64_t now = uv_now(c->ka_timer.loop), due = now + (uint64_t)ms;
        due = (due + slot - 1) / slot * slot;
        ms = (int64_t)(due - now);
    }
    uv_timer_start(&c->ka_timer, on_ka_timer, (uint64_t)ms, 0);
}

static void on_watchdog(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done)
        return;
    LOG_WARN("wa", "WhatsApp said nothing within %u ms of the handshake", c->cfg.login_timeout_ms);
    wa_verdict_t v;
    wa_client_verdict(&v, "timeout", 408, WA_RETRY_BACKOFF, 0,
                      "WhatsApp did not start pairing or logging in after the handshake");
    wa_client_finish(c, &v);
}

void wa_client_keepalive_start(wa_client_t *c)
{
    int64_t now = wa_client_now_ms();
    c->last_rx_ms = c->last_ok_ms = now;
    c->ping_misses = 0;
    c->ping_id[0] = 0;
    c->ping_sent_ms = 0;
    schedule_ping(c);
    uv_timer_start(&c->wd_timer, on_watchdog, c->cfg.login_timeout_ms, 0);
}

void wa_client_keepalive_rx(wa_client_t *c)
{
    c->last_rx_ms = wa_client_now_ms();
}

void wa_client_watchdog_clear(wa_client_t *c)
{
    uv_timer_stop(&c->wd_timer);
}
