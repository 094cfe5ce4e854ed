/* Server verdicts (whatsmeow's connectionevents.go): <stream:error> and
 * <failure> nodes classified into what the owner must do (protocol doc
 * section 7). Only <conflict type="device_removed"> and the login failures
 * 401/403/406 wipe the credentials; a bare stream:error 401 is an unknown
 * stream error that is retried, as whatsmeow does (11.4): if the device was
 * really removed, the next login is refused with failure 401. */
#include <stdlib.h>
#include <string.h>

#include "session/wa/client_internal.h"

void wa_client_verdict(wa_verdict_t *v, const char *detail, int code, wa_retry_t retry, int wipe,
                       const char *message)
{
    memset(v, 0, sizeof(*v));
    v->detail = detail;
    v->code = code;
    v->retry = retry;
    v->wipe = wipe;
    v->message = message;
}

/* The verdict table for stream:error codes (protocol doc 7.1). */
static void classify_stream_error(const wa_node_t *n, wa_verdict_t *v)
{
    const char *code_s = wa_node_attr(n, "code");
    int code = code_s ? atoi(code_s) : 0;
    const wa_node_t *conflict = wa_node_child(n, "conflict");
    const char *ctype = conflict ? wa_node_attr(conflict, "type") : NULL;
    if (ctype && !strcmp(ctype, "replaced"))
        wa_client_verdict(v, "replaced", code ? code : 440, WA_RETRY_NO, 0,
                          "another connection with the same credentials took over");
    else if (ctype && !strcmp(ctype, "device_removed"))
        wa_client_verdict(v, "logged_out", 401, WA_RETRY_NO, 1,
                          "this device was unlinked (logged out from the phone or by WhatsApp)");
    else if (conflict && !code)
        wa_client_verdict(v, "replaced", 440, WA_RETRY_NO, 0, "connection conflict");
    else if (code == 515)
        wa_client_verdict(v, "restart_required", 515, WA_RETRY_NOW, 0,
                          "WhatsApp asked for a restart");
    else if (code == 503)
        wa_client_verdict(v, "service_unavailable", 503, WA_RETRY_BACKOFF, 0,
                          "WhatsApp is temporarily unavailable");
    else
        wa_client_verdict(v, "stream_error", code ? code : 500, WA_RETRY_BACKOFF, 0,
                          "WhatsApp ended the stream with an error");
}

/* The verdict table for failure reasons (protocol doc 7.2). */
static void classify_failure(const wa_node_t *n, wa_verdict_t *v)
{
    const char *r = wa_node_attr(n, "reason");
    int code = r ? atoi(r) : 0;
    switch (code) {
    case 401:
        wa_client_verdict(v, "logged_out", 401, WA_RETRY_NO, 1, "this device is no longer linked");
        break;
    case 402: {
        wa_client_verdict(v, "temporarily_banned", 402, WA_RETRY_NO, 0,
                          "the account is temporarily banned");
        const char *e = wa_node_attr(n, "expire");
        v->expire_s = e ? atoll(e) : 0;
        break;
    }
    case 403:
        wa_client_verdict(v, "account_locked", 403, WA_RETRY_NO, 1,
                          "the account was logged out or locked on the phone");
        break;
    case 405:
        wa_client_verdict(v, "client_outdated", 405, WA_RETRY_NO, 0,
                          "WhatsApp refused this WhatsApp Web version as outdated");
        break;
    case 406:
        wa_client_verdict(v, "banned", 406, WA_RETRY_NO, 1, "the account was banned or logged out");
        break;
    case 409:
        wa_client_verdict(v, "bad_user_agent", 409, WA_RETRY_NO, 0,
                          "WhatsApp rejected the user agent");
        break;
    case 411:
        wa_client_verdict(v, "multidevice_mismatch", 411, WA_RETRY_NO, 0,
                          "the phone does not support linked devices");
        break;
    case 500:
        wa_client_verdict(v, "server_error", 500, WA_RETRY_BACKOFF, 0, "WhatsApp internal error");
        break;
    case 503:
        wa_client_verdict(v, "service_unavailable", 503, WA_RETRY_BACKOFF, 0,
                          "WhatsApp is temporarily unavailable");
        break;
    case 400:
        wa_client_verdict(v, "connect_failure", 400, WA_RETRY_NO, 0,
                          "WhatsApp refused the connection");
        break;
    default:
        wa_client_verdict(v, "connect_failure", code, WA_RETRY_NO, 0,
                          "WhatsApp refused the connection (unhandled reason)");
        break;
    }
}

int wa_client_classify(const wa_node_t *n, wa_verdict_t *v)
{
    if (!strcmp(n->tag, "stream:error")) {
        classify_stream_error(n, v);
        return 1;
    }
    if (!strcmp(n->tag, "failure")) {
        classify_failure(n, v);
        return 1;
    }
    if (!strcmp(n->tag, "xmlstreamend")) {
        wa_client_verdict(v, "connection_closed", 428, WA_RETRY_BACKOFF, 0,
                          "WhatsApp closed the stream");
        return 1;
    }
    return 0;
}
