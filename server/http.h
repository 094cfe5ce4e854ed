/* The HTTP listener: h2o on the service's libuv loop. It serves HTTP/1.1 and
 * HTTP/2 (h2c prior knowledge; TLS with ALPN when a certificate is given),
 * routes the dashboard contract's paths under both /api/whatsapp/ and
 * /whatsapp/ to the api/ handlers, streams state changes over Server-Sent
 * Events and WebSocket, and answers /healthz, /readyz and /metrics. */
#ifndef WG_SERVER_HTTP_H
#define WG_SERVER_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "api/api.h"
#include "common/httpc.h"
#include "server/metrics.h"

typedef struct http_server http_server_t;

typedef struct {
    api_t *api;                /* handlers (required) */
    metrics_t *metrics;        /* counters (may be NULL) */
    const char *cors_origins;  /* comma-separated allowed origins, "*" = any, NULL = none */
    const char *allowed_hosts; /* Host names answered besides loopback names and the bind
                                * address, comma-separated, "*" = any; NULL = none */
    size_t body_limit;         /* largest accepted request body; 0 = 16 KiB */
    unsigned heartbeat_ms;     /* SSE/WebSocket keepalive interval; 0 = 15000 */
    size_t max_connections;    /* connections open at once, more are closed; 0 = 4096 */
    unsigned stall_ms;         /* close a connection not taking its response; 0 = 30000 */
    const char *tls_cert_file; /* PEM certificate chain: enables TLS (HTTP/2 by ALPN) */
    const char *tls_key_file;  /* PEM private key */
    /* Readiness for /readyz: returns 1 when ready, else 0 with *why set to
     * a static string. NULL = always ready. */
    int (*ready)(void *arg, const char **why);
    void *ready_arg;
    /* The link page served at GET / (NULL: 404). */
    const unsigned char *page_html;
    size_t page_len;
    /* Demo only: the fake server's control URL, given to the page. */
    const char *demo_control;
    /* Cluster: the client that forwards commands to the node running their
     * session (borrowed); NULL: such commands answer 409. */
    httpc_t *httpc;
} http_opts_t;

/* Starts listening on host:port on `loop`. On success returns 0 and stores a
 * server owned by the caller (stop with http_server_stop, run the loop until
 * the stop callback fires, then http_server_free). On failure returns a
 * negative libuv error code (or -1 for a TLS setup error) and writes a
 * one-line message into `err`. `opts` is copied; its strings and `host`
 * (also the name the Host check accepts) must outlive the server. */
int http_server_start(http_server_t **out, uv_loop_t *loop, const char *host, int port,
                      const http_opts_t *opts, char *err, size_t errlen);

/* Stops accepting, ends every event stream, asks open connections to finish
 * (HTTP/2 GOAWAY, HTTP/1 close after the current request) and calls
 * `on_stopped(arg)` once every connection is closed, or after `grace_ms`. */
void http_server_stop(http_server_t *srv, unsigned grace_ms, void (*on_stopped)(void *arg),
                      void *arg);

/* Releases the server: after the stop callback has run, or (start-up
 * failed before the loop ran) without a stop. */
void http_server_free(http_server_t *srv);

/* Number of open client connections. */
size_t http_server_connections(const http_server_t *srv);

/* Number of live SSE + WebSocket streams. */
size_t http_server_streams(const http_server_t *srv);

#endif
