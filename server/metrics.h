/* Process-wide counters for GET /metrics (Prometheus text format): requests
 * by route and status, state transitions, subscribers, reconnects, failed
 * key checks, the WhatsApp Web version in use. Counters are atomic, so HTTP
 * (loop) and gRPC threads update them without locks (the version text has a
 * small lock of its own). No secret ever becomes a label or a value. */
#ifndef WG_SERVER_METRICS_H
#define WG_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "session/session.h"
#include "session/webhook/webhook.h"

/* Routes counted separately. */
typedef enum {
    METRICS_ROUTE_STATUS,
    METRICS_ROUTE_QR,
    METRICS_ROUTE_RECONNECT,
    METRICS_ROUTE_LOGOUT,
    METRICS_ROUTE_EVENTS,
    METRICS_ROUTE_HEALTH,
    METRICS_ROUTE_METRICS,
    METRICS_ROUTE_PAGE,
    METRICS_ROUTE_PAIRING_CODE,
    METRICS_ROUTE_OTHER,
    METRICS_ROUTE_GRPC_GETSTATUS,
    METRICS_ROUTE_GRPC_GETQR,
    METRICS_ROUTE_GRPC_RECONNECT,
    METRICS_ROUTE_GRPC_LOGOUT,
    METRICS_ROUTE_GRPC_WATCH,
    METRICS_ROUTE_GRPC_PAIRING_CODE,
    METRICS_ROUTE_GRPC_OTHER,
    METRICS_ROUTE_COUNT
} metrics_route_t;

/* Status classes counted per route: HTTP statuses, or gRPC codes 0..16. */
#define METRICS_STATUS_SLOTS 17

typedef struct metrics metrics_t;

/* Creates zeroed counters. Returns NULL when out of memory. */
metrics_t *metrics_new(void);

/* Renders every session of `reg` (borrowed) instead of the one snapshot
 * metrics_render is given. Set once, before the listeners start. */
void metrics_set_registry(metrics_t *m, sess_registry_t *reg);

/* Renders each webhook target's series (delivered, failed attempts,
 * retrying, dead, oldest pending age) from `wh` (borrowed). Set once at
 * start; metrics_render must then run on the loop thread (GET /metrics
 * does). */
void metrics_set_webhooks(metrics_t *m, wh_t *wh);
/* Renders the event log's counters of `j` (borrowed; it must outlive the
 * metrics). Set once, before the listeners start. */
typedef struct sess_jstore sess_jstore_t;
void metrics_set_journal(metrics_t *m, sess_jstore_t *j);

/* Renders the cluster node's series (wagw_cluster_*: ready, draining,
 * sessions owned, claims, losses, hand-overs, self-fences, renewal
 * failures, fenced writes) from `c` (borrowed). Set once at start. */
typedef struct clu clu_t;
void metrics_set_cluster(metrics_t *m, clu_t *c);

/* Frees the counters. */
void metrics_free(metrics_t *m);

/* Counts one finished request: an HTTP status (100..599) for HTTP routes, a
 * gRPC code (0..16) for gRPC routes. Any thread. */
void metrics_request(metrics_t *m, metrics_route_t route, int status);

/* Counts a failed API-key check. Any thread. */
void metrics_auth_failure(metrics_t *m);

/* Adds `delta` (+1/-1) to the number of live subscribers of a transport
 * ("sse", "websocket", "grpc"). Any thread. */
void metrics_subscribers(metrics_t *m, const char *transport, int delta);

/* Counts a reconnect requested through the API. Any thread. */
void metrics_reconnect(metrics_t *m);

/* Records the WhatsApp Web version announced and its source ("configured",
 * "discovered", "stored", "builtin"), shown as wagw_wa_version_info. Both
 * strings are copied (truncated to 47 characters). Any thread. */
void metrics_wa_version(metrics_t *m, const char *version, const char *source);
/* The resource limits whose hits are counted. */
typedef enum {
    METRICS_LIMIT_HTTP_CONNECTIONS, /* a connection over MAX_CONNECTIONS, closed at once */
    METRICS_LIMIT_STALLED,          /* a connection closed for not taking its response */
    METRICS_LIMIT_WS_MESSAGE,       /* a WebSocket message over the size limit (1009) */
    METRICS_LIMIT_WS_UNREAD,        /* a WebSocket client sending without reading */
    METRICS_LIMIT_GRPC_STREAMS,     /* a gRPC call over a stream cap */
    METRICS_LIMIT_COUNT
} metrics_limit_t;

/* Counts one hit of a resource limit. Any thread. */
void metrics_limit(metrics_t *m, metrics_limit_t which);

/* Sets the number of reconnects waiting for their answer (rendered as
 * wagw_reconnect_waits). Any thread. */
void metrics_reconnect_waits(metrics_t *m, size_t n);

/* Adds `delta` to the number of open HTTP connections. Any thread. */
void metrics_http_connections(metrics_t *m, int delta);

/* Renders every counter, plus the state of `snap` (may be NULL) and the
 * session's transition count (its seq), as Prometheus text. Returns a
 * malloc'd string the caller frees, or NULL when out of memory. */
char *metrics_render(metrics_t *m, const sess_snapshot_t *snap);

#endif
