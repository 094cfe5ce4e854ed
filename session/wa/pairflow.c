/* pair-success on a registration connection (whatsmeow's pair.go, protocol
 * doc 5.5): verified against the adv secret the phone scanned (the current
 * one: a refresh or a pairing-code flow may have replaced it), persisted
 * through on_paired before we answer (at once, or later through
 * wa_client_pair_answer when the owner stores it off the loop), then
 * countersigned with the [6,1] device signature. Any failure answers with an error iq and ends the
 * connection with "pairing_failed" or "store_error". */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session/wa/client_internal.h"
#include "session/wa/pair.h"

int wa_client_set_adv_secret(wa_client_t *c, const uint8_t secret[32])
{
    if (c->hooks.on_adv_secret && c->hooks.on_adv_secret(c->hooks.arg, secret) != 0)
        return -1;
    memcpy(c->adv_secret, secret, 32);
    return 0;
}

/* Answers pair-success `id`: the countersigned identity when the pairing
 * is stored (ok), else an error and (finish) the end of the connection.
 * Frees res. */
static void pair_answer(wa_client_t *c, const char *id, wa_pair_result_t *res, int ok, int finish)
{
    if (!ok) {
        wa_verdict_t v;
        wa_client_send(c, wa_pair_error_reply(id, 500, "internal-error"));
        wa_pair_result_free(res);
        if (!finish)
            return;
        wa_client_verdict(&v, "store_error", 500, WA_RETRY_NO, 0,
                          "could not save the new credentials");
        wa_client_finish(c, &v);
        return;
    }
    c->paired = 1;
    LOG_INFO("wa", "paired (key index %u); waiting for the restart request", res->key_index);
    wa_client_send(c, wa_pair_sign_reply(id, res));
    wa_pair_result_free(res);
}

void wa_client_pair_success(wa_client_t *c, const wa_node_t *n)
{
    wa_client_qr_stop(c);
    const char *id = wa_node_attr(n, "id");
    wa_pair_result_t res;
    int rc = wa_pair_success(n, c->ident_priv, c->ident_pub, c->adv_secret, &res);
    wa_verdict_t v;
    if (rc) {
        LOG_WARN("wa", "pairing rejected: %s", wa_pair_strerror(rc));
        wa_client_send(c, wa_pair_error_reply(id ? id : "",
                                              rc == WA_PAIR_EHMAC || rc == WA_PAIR_ESIG ? 401 : 500,
                                              rc == WA_PAIR_EHMAC  ? "hmac-mismatch"
                                              : rc == WA_PAIR_ESIG ? "signature-mismatch"
                                                                   : "internal-error"));
        wa_client_verdict(&v, "pairing_failed", 401, WA_RETRY_NO, 0,
                          rc == WA_PAIR_EHMAC  ? "pair-success HMAC did not match"
                          : rc == WA_PAIR_ESIG ? "pair-success account signature did not verify"
                                               : "pair-success could not be processed");
        wa_client_finish(c, &v);
        return;
    }
    /* persist before answering: the follow-up login needs it */
    int hr = c->hooks.on_paired ? c->hooks.on_paired(c->hooks.arg, &res) : 0;
    if (hr == WA_CLIENT_PAIR_PENDING) {
        c->pair_id = strdup(id ? id : "");
        if (c->pair_id) { /* answered once stored (wa_client_pair_answer) */
            c->pair_res = res;
            c->pair_pending = 1;
            return;
        }
        hr = -1;
    }
    pair_answer(c, id ? id : "", &res, hr == 0, 1);
}

void wa_client_pair_answer(wa_client_t *c, int ok)
{
    if (!c || !c->pair_pending || c->done)
        return;
    c->pair_pending = 0;
    char *id = c->pair_id;
    c->pair_id = NULL;
    pair_answer(c, id, &c->pair_res, ok, 0);
    free(id);
}

void wa_client_pair_drop(wa_client_t *c)
{
    if (!c->pair_pending)
        return;
    c->pair_pending = 0;
    wa_pair_result_free(&c->pair_res);
    free(c->pair_id);
    c->pair_id = NULL;
}
