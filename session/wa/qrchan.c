/* QR codes of a registration connection (whatsmeow's qrchan.go, protocol doc
 * 5.2-5.4 and 11.1): the refs of <pair-device> become QR codes shown one
 * after the other, the first for qr_first_ms and each next one for
 * qr_next_ms; when they run out the attempt ends with "qr_timeout" (no
 * retry loop). On <notification type="companion_reg_refresh"> WhatsApp
 * retires the adv secret: a new one is drawn, persisted, and the QR on
 * screen is redrawn with it (same ref, same remaining lifetime, no ref
 * consumed), so the phone scans the secret the later pair-success HMAC is
 * keyed with. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/crypto.h"
#include "session/wa/pair.h"

/* Shows ref `idx` until expires_at_ms. */
static void show(wa_client_t *c, size_t idx, int64_t expires_at_ms)
{
    const char *ref = c->refs[idx];
    char *qr =
        wa_pair_qr((const uint8_t *)ref, strlen(ref), c->noise_pub, c->ident_pub, c->adv_secret);
    c->qr_shown = (int)idx + 1;
    c->qr_expires_at_ms = expires_at_ms;
    if (qr && c->hooks.on_qr)
        c->hooks.on_qr(c->hooks.arg, qr, expires_at_ms);
    if (qr)
        explicit_bzero(qr, strlen(qr));
    free(qr);
}

static void on_qr_timer(uv_timer_t *t)
{
    wa_client_t *c = t->data;
    if (c->done || c->paired)
        return;
    if (c->next_ref >= c->nrefs) {
        c->qr_shown = 0;
        wa_verdict_t v;
        wa_client_verdict(&v, "qr_timeout", 408, WA_RETRY_NO, 0,
                          "the QR codes expired without being scanned");
        wa_client_finish(c, &v);
        return;
    }
    unsigned life = c->cfg.qr_next_ms;
    show(c, c->next_ref++, wa_client_now_ms() + life);
    uv_timer_start(&c->qr_timer, on_qr_timer, life, 0);
}

void wa_client_qr_free(wa_client_t *c)
{
    for (size_t i = 0; i < c->nrefs; i++)
        free(c->refs[i]);
    c->nrefs = c->next_ref = 0;
    c->qr_shown = 0;
}

void wa_client_qr_stop(wa_client_t *c)
{
    uv_timer_stop(&c->qr_timer);
    c->qr_shown = 0;
}

void wa_client_qr_pair_device(wa_client_t *c, const wa_node_t *n, const wa_node_t *pd)
{
    wa_client_watchdog_clear(c);
    wa_client_send_result(c, n);
    wa_client_qr_free(c);
    for (size_t i = 0; i < pd->nchildren && c->nrefs < WA_CLIENT_MAX_REFS; i++) {
        const wa_node_t *r = pd->children[i];
        size_t len;
        const uint8_t *b = wa_node_content(r, &len);
        if (strcmp(r->tag, "ref") || !b || !len || len > 256 || memchr(b, ',', len) ||
            memchr(b, 0, len))
            continue;
        char *s = malloc(len + 1);
        if (!s)
            break;
        memcpy(s, b, len);
        s[len] = 0;
        c->refs[c->nrefs++] = s;
    }
    if (c->nrefs == 0) {
        wa_verdict_t v;
        wa_client_verdict(&v, "protocol_error", 0, WA_RETRY_BACKOFF, 0, "pair-device without refs");
        wa_client_finish(c, &v);
        return;
    }
    LOG_INFO("wa", "pairing: %zu QR codes offered", c->nrefs);
    c->next_ref = 1;
    show(c, 0, wa_client_now_ms() + c->cfg.qr_first_ms);
    uv_timer_start(&c->qr_timer, on_qr_timer, c->cfg.qr_first_ms, 0);
}

void wa_client_qr_refresh(wa_client_t *c, const wa_node_t *n)
{
    if (!wa_node_child(n, "companion_reg_refresh") && !wa_node_child(n, "pair-device-rotate-qr")) {
        LOG_WARN("wa", "companion_reg_refresh without a refresh child; ignored");
        return;
    }
    if (c->jid || c->paired) {
        LOG_DEBUG("wa", "companion_reg_refresh on a paired connection; ignored");
        return;
    }
    if (c->adv_locked) {
        /* a pairing-code flow is past primary_hello: its pair-success is
         * keyed by the secret it derived (protocol doc 11.1) */
        LOG_INFO("wa", "companion_reg_refresh while a pairing code is being confirmed; kept");
        return;
    }
    uint8_t secret[32];
    if (wa_crypto_random(secret, 32) != 0 || wa_client_set_adv_secret(c, secret) != 0) {
        explicit_bzero(secret, 32);
        LOG_ERROR("wa", "could not replace the adv secret on WhatsApp's refresh request");
        return;
    }
    explicit_bzero(secret, 32);
    LOG_INFO("wa", "WhatsApp refreshed the pairing secret; QR redrawn");
    wa_client_qr_redraw(c);
}

void wa_client_qr_redraw(wa_client_t *c)
{
    if (c->qr_shown && c->qr_expires_at_ms > wa_client_now_ms())
        show(c, (size_t)c->qr_shown - 1, c->qr_expires_at_ms);
}
