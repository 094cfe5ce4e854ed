/* The fake WhatsApp server as a program: listens on loopback, prints the
 * root public key clients must trust (WA_ROOT_KEY) and its URL (WA_URL) on
 * the first line of stdout, then serves the server role: Noise handshake,
 * then nodes both ways (pings answered, every node logged). Stops on SIGINT
 * or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "tests/fakewa/fakewa.h"

typedef struct {
    uv_loop_t loop;
    fakewa_t *srv;
    uv_signal_t sigint, sigterm;
    int verbose;
} app_t;

static void on_client(void *arg, fakewa_conn_t *c, const uint8_t cs[32], const uint8_t *p,
                      size_t len)
{
    app_t *app = arg;
    (void)c;
    (void)p;
    if (app->verbose)
        fprintf(stderr, "fakewa: client %02x%02x%02x%02x... connected (%zu-byte payload)\n", cs[0],
                cs[1], cs[2], cs[3], len);
}

static void on_node(void *arg, fakewa_conn_t *c, const wa_node_t *node)
{
    app_t *app = arg;
    if (app->verbose) {
        char *t = wa_node_to_text(node, 1);
        fprintf(stderr, "fakewa: <- %s\n", t ? t : "?");
        free(t);
    }
    const char *type = wa_node_attr(node, "type");
    if (!strcmp(node->tag, "iq") && type && (!strcmp(type, "get") || !strcmp(type, "set"))) {
        wa_node_t *r = wa_node_new("iq");
        wa_node_set_attr(r, "type", "result");
        wa_node_set_attr(r, "id", wa_node_attr(node, "id"));
        wa_node_set_attr(r, "from", "s.whatsapp.net");
        fakewa_send(c, r);
        wa_node_free(r);
    }
}

static void on_close(void *arg, fakewa_conn_t *c, const char *reason)
{
    app_t *app = arg;
    (void)c;
    if (app->verbose)
        fprintf(stderr, "fakewa: client gone (%s)\n", reason);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    (void)signum;
    fakewa_stop(app->srv);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_stop(&app->loop); /* lws finishes its part in fakewa_free */
}

int main(int argc, char **argv)
{
    static app_t app;
    fakewa_opts_t o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            o.port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            o.host = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            o.cert_file = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            o.key_file = argv[++i];
        else if (!strcmp(argv[i], "-v"))
            app.verbose = 1;
        else {
            fprintf(stderr, "usage: fakewa [--host H] [--port P] [--cert PEM --key PEM] [-v]\n");
            return 2;
        }
    }
    uv_loop_init(&app.loop);
    char err[256];
    fakewa_callbacks_t cb = {on_client, on_node, on_close, &app};
    app.srv = fakewa_new(&app.loop, &o, &cb, err, sizeof(err));
    if (!app.srv) {
        fprintf(stderr, "fakewa: %s\n", err);
        return 1;
    }
    const uint8_t *root = fakewa_root_pub(app.srv);
    printf("WA_URL=%s://%s:%d/ws/chat WA_ROOT_KEY=", o.cert_file ? "wss" : "ws",
           o.host ? o.host : "127.0.0.1", fakewa_port(app.srv));
    for (int i = 0; i < 32; i++)
        printf("%02x", root[i]);
    printf("\n");
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    fakewa_free(app.srv);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    return 0;
}
