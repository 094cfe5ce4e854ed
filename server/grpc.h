/* The gRPC endpoint: the gRPC C core server on GRPC_PORT serving
 * wagateway.v1.Gateway (proto/gateway.proto) through the same api/ handlers
 * as HTTP, the standard grpc.health.v1.Health service, and server
 * reflection (v1alpha and v1) for grpcurl and buf curl. The implementation
 * is in server/grpc/ (server.c, methods.c: the method table, reflection.c,
 * forward.c: in a cluster, the commands for a session another node runs go
 * to that node's HTTP API).
 *
 * Threads: one completion-queue thread completes every call's batches. It
 * answers reads (status, QR, health, reflection) itself from immutable
 * snapshots and hands the operations (Reconnect, Logout, ...) to the
 * session loop (sess_registry_post). Streams (WatchStatus) follow a session
 * subscription whose notify only queues the call for a pump thread, which
 * sends, one message in flight at a time. Start, stop and free are called
 * from the loop thread. */
#ifndef WG_SERVER_GRPC_H
#define WG_SERVER_GRPC_H

#include <stddef.h>

#include "api/api.h"
#include "common/httpc.h"
#include "server/metrics.h"

/* Largest request message accepted; bigger ones end with
 * RESOURCE_EXHAUSTED (the gateway's requests carry a session name). */
#define GRPC_SRV_MAX_REQUEST_BYTES (64 * 1024)

typedef struct grpc_srv grpc_srv_t;

typedef struct {
    api_t *api;
    metrics_t *metrics;        /* may be NULL */
    const char *tls_cert_file; /* PEM chain: serve TLS */
    const char *tls_key_file;
    /* Calls open at once: in all (0 = GRPC_SRV_MAX_STREAMS), and without the
     * key when one is configured, health Watch streams always
     * (0 = GRPC_SRV_MAX_UNAUTH_STREAMS); more end with RESOURCE_EXHAUSTED. */
    size_t max_streams, max_unauth_streams;
    /* A stream whose message the client has not taken for this long is
     * cancelled (0 = 30000). */
    unsigned stall_ms;
    /* Readiness for grpc.health.v1 (as /readyz): returns 1 when serving,
     * else 0 with *why set. Any thread. NULL = always serving. Health/Watch
     * streams get the new status within a second of a change. */
    int (*ready)(void *arg, const char **why);
    void *ready_arg;
    /* Cluster: the client that passes a command (Reconnect, Logout,
     * RequestPairingCode, SendPasskeyAssertion, DeleteSession) for a
     * session another node runs on to that node's HTTP API (the same one
     * HTTP forwards with); NULL = such commands are answered
     * FAILED_PRECONDITION here. Loop thread. */
    httpc_t *httpc;
} grpc_srv_opts_t;

#define GRPC_SRV_MAX_STREAMS 1000
#define GRPC_SRV_MAX_UNAUTH_STREAMS 100
/* HTTP/2 streams one connection may open at once. */
#define GRPC_SRV_MAX_STREAMS_PER_CONNECTION 100

/* Starts the server on host:port. Returns 0 and the server, or -1 with a
 * one-line message in err. */
int grpc_srv_start(grpc_srv_t **out, const char *host, int port, const grpc_srv_opts_t *opts,
                   char *err, size_t errlen);

/* Ends every stream with UNAVAILABLE "server shutting down", cancels what is
 * left and stops the server; blocks until the completion-queue thread has
 * finished (at most a few seconds). */
void grpc_srv_stop(grpc_srv_t *s);

/* Frees the server (after grpc_srv_stop). NULL is ignored. */
void grpc_srv_free(grpc_srv_t *s);

#endif
