/* The fake WhatsApp server as a program, for end-to-end tests and
 * `make demo`: listens on loopback, prints on its first stdout line the
 * WA_URL and WA_ROOT_KEY a gateway must use and the CONTROL URL, then plays
 * the server and the phone (see whatsapp.h). Control API on the same port:
 *   GET  /control/state            counters, paired and logged-in devices (JSON)
 *   GET  /control/connects[?since=MS]  times of the WebSocket opens since MS
 *        and the most within any second (what CONNECT_RATE must bound)
 *   POST /control/scan[?phone=N] body=QR  the phone (of account N, made on
 *        first use; default: --phone, or a new one with --account-per-scan)
 *        scans this QR
 *   POST /control/pair-code body=CODE  the phone's user types this pairing code
 *   POST /control/fault  body=NAME [TARGET]  inject a fault, on every
 *        connection or on those of TARGET (a device JID or a phone number;
 *        also ?target=) only (see fakewa_fault_t in
 *        whatsapp.h: drop, stall, garbage, restart, logged_out, replaced,
 *        server_error, outdated, banned, bad_hmac, bad_signature, drop_ping,
 *        silent, bad_node, stanzas, early_success, bare_401, hosted, refresh,
 *        refresh_on_scan, routing, offline, online)
 *   POST /control/passkey/credential  body={"credentialId":b64url,
 *        "publicKey":SPKI DER base64 or PEM,"rpId":..,"origin":.. or
 *        "origins":[..],"userVerification":..}  the account's passkey
 *   POST /control/passkey/request  [body=bare]  send passkey_prologue_request
 *        now ("bare": without options, the client must ask for them)
 *   POST /control/passkey/on-scan  the next scan asks for the passkey first
 *   POST /control/version body=revision=N min=V|0 sw=ok|404|500|hang
 *        what /sw.js announces, the oldest version accepted, how /sw.js
 *        answers (see version.c)
 *   GET  /sw.js                    the version document (WhatsApp Web's form)
 * Stops on SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "tests/fakewa/whatsapp.h"

typedef struct {
    uv_loop_t loop;
    fakewa_wa_t *srv;
    uv_signal_t sigint, sigterm;
} app_t;

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    (void)signum;
    fakewa_wa_stop(app->srv);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_stop(&app->loop); /* lws finishes its part in fakewa_wa_free */
}

static int num(const char *s)
{
    return atoi(s);
}

int main(int argc, char **argv)
{
    static app_t app;
    fakewa_wa_opts_t o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v)
            o.transport.port = num(argv[++i]);
        else if (!strcmp(a, "--host") && v)
            o.transport.host = argv[++i];
        else if (!strcmp(a, "--cert") && v)
            o.transport.cert_file = argv[++i];
        else if (!strcmp(a, "--key") && v)
            o.transport.key_file = argv[++i];
        else if (!strcmp(a, "--refs") && v)
            o.refs = num(argv[++i]);
        else if (!strcmp(a, "--qr-first-ms") && v)
            o.qr_first_ms = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--qr-next-ms") && v)
            o.qr_next_ms = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--server-ping-ms") && v)
            o.server_ping_ms = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--phone") && v)
            o.phone = argv[++i];
        else if (!strcmp(a, "--prekey-count") && v)
            o.prekey_count = num(argv[++i]);
        else if (!strcmp(a, "--account-per-scan"))
            o.account_per_scan = 1;
        else if (!strcmp(a, "--client-revision") && v)
            o.client_revision = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--min-version") && v)
            o.min_version = argv[++i];
        else if (!strcmp(a, "--sw") && v && fakewa_sw_mode_parse(v) >= 0)
            o.sw_mode = fakewa_sw_mode_parse(argv[++i]);
        else {
            fprintf(stderr, "usage: fakewa-server [--host H] [--port P] [--cert PEM --key PEM]\n"
                            "       [--refs N] [--qr-first-ms MS] [--qr-next-ms MS]\n"
                            "       [--server-ping-ms MS] [--phone NUMBER] [--account-per-scan]\n"
                            "       [--prekey-count N]\n"
                            "       [--client-revision N] [--min-version 2.3000.N]\n"
                            "       [--sw ok|404|500|hang]\n");
            return 2;
        }
    }
    /* thousands of linked devices: one descriptor each */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    uv_loop_init(&app.loop);
    char err[256];
    app.srv = fakewa_wa_new(&app.loop, &o, err, sizeof(err));
    if (!app.srv) {
        fprintf(stderr, "fakewa: %s\n", err);
        return 1;
    }
    fakewa_t *t = fakewa_wa_transport(app.srv);
    const uint8_t *root = fakewa_root_pub(t);
    const char *host = o.transport.host ? o.transport.host : "127.0.0.1";
    int tls = o.transport.cert_file != NULL;
    printf("WA_URL=%s://%s:%d/ws/chat WA_ROOT_KEY=", tls ? "wss" : "ws", host, fakewa_port(t));
    for (int i = 0; i < 32; i++)
        printf("%02x", root[i]);
    printf(" CONTROL=%s://%s:%d/control\n", tls ? "https" : "http", host, fakewa_port(t));
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    /* let every handle close before lws finishes (it unloads its libuv
     * plugin, whose close callbacks must not be pending any more) */
    uv_run(&app.loop, UV_RUN_DEFAULT);
    fakewa_wa_free(app.srv);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    return 0;
}
