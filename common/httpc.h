/* An asynchronous HTTP(S) client on the service's libuv loop, for the few
 * outgoing requests the gateway makes (the WhatsApp Web version discovery
 * now, webhooks later). It is libcurl's multi interface driven by libuv:
 * curl tells us which sockets to watch (uv_poll_t) and when to wake it
 * (uv_timer_t), so nothing blocks the loop and no thread is started besides
 * curl's own name resolver.
 *
 * Policy, the same for every request:
 *   - http:// and https:// only; redirects are NOT followed (a 3xx is handed
 *     to the caller with its Location);
 *   - TLS peers are verified (certificate chain and host name) against the
 *     system CAs, or against the PEM bundle given as ca_file instead;
 *   - every request has a deadline for the whole exchange and a bound on the
 *     response body (a bigger body fails the request with HTTPC_ETOOBIG;
 *     a compressed body is bounded after decompression);
 *   - connections are not kept alive between requests, unless a request
 *     asks for it (keep_alive: the connection may serve a later request of
 *     the same client to the same host);
 *   - the usual proxy variables (https_proxy, no_proxy, ...) are honoured,
 *     as libcurl does, except by requests with an address filter
 *     (allow_addr), which connect directly: the filter sees the address
 *     actually connected to (DNS rebinding cannot get around it).
 *
 * Completion is reported once per request, on the loop thread, from a loop
 * callback (never from inside httpc_request). Loop-thread only: every
 * function here must be called on the loop's thread. The process must
 * ignore SIGPIPE (main does): TLS writes to a peer that hung up would
 * otherwise kill it. */
#ifndef WG_COMMON_HTTPC_H
#define WG_COMMON_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

typedef struct httpc httpc_t;
typedef struct httpc_req httpc_req_t;

/* Error codes: 0 or one of these (negative). */
enum {
    HTTPC_OK = 0,
    HTTPC_EINVAL = -1,   /* bad arguments (no URL, not http/https, no callback) */
    HTTPC_ENOMEM = -2,   /* out of memory */
    HTTPC_ECONNECT = -3, /* name not resolved, connection refused or unreachable */
    HTTPC_ETIMEOUT = -4, /* the deadline passed */
    HTTPC_ETOOBIG = -5,  /* the response body is larger than max_body */
    HTTPC_ETLS = -6,     /* TLS handshake or certificate verification failed */
    HTTPC_EPROTO = -7,   /* malformed response or I/O error during the exchange */
    HTTPC_ECLOSED = -8,  /* the client is being destroyed */
    HTTPC_EREFUSED = -9, /* every address of the host was refused by allow_addr */
};

/* A short English description of an HTTPC_E* code; never NULL. */
const char *httpc_strerror(int err);

/* What a finished request gives its callback. Every pointer is borrowed for
 * the duration of the callback only. */
typedef struct {
    int error;                /* HTTPC_OK, or a negative HTTPC_E* code */
    const char *message;      /* details of the error (libcurl's words), "" when none */
    long status;              /* HTTP status, 0 when no response arrived */
    const uint8_t *body;      /* the response body, NUL-terminated after body_len */
    size_t body_len;          /* (any status: the caller judges 3xx/4xx/5xx) */
    const char *location;     /* a 3xx's redirect target (not followed), or NULL */
    const char *content_type; /* the Content-Type header, or NULL */
} httpc_result_t;

/* One request. Everything is copied by httpc_request. */
typedef struct {
    const char *method;         /* "GET" (the default when NULL), "POST" or "DELETE" */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const void *body;           /* POST: the request body (body_len bytes) */
    size_t body_len;
    unsigned timeout_ms;         /* whole exchange; 0 = 30000 */
    unsigned connect_timeout_ms; /* name resolution + connect + TLS; 0 = timeout_ms */
    size_t max_body;             /* response body bound; 0 = 1 MiB; at most 1 GiB */
    int keep_alive;              /* 1: the connection may be kept for a later request */
    /* When not NULL: called with each address before connecting to it (after
     * name resolution, on the loop thread); returns 1 to allow it, 0 to
     * refuse it (then the next address is tried; when none is left the
     * request fails with HTTPC_EREFUSED). Proxies are not used then. */
    int (*allow_addr)(void *addr_arg, const struct sockaddr *sa, socklen_t len);
    void *addr_arg;
    /* Called once when the request finished (successfully or not), unless
     * it was cancelled or the client destroyed first. */
    void (*done)(void *arg, const httpc_result_t *res);
    void *arg;
} httpc_request_t;

typedef struct {
    const char *ca_file;    /* PEM bundle trusted instead of the system CAs; NULL = system */
    const char *user_agent; /* default User-Agent; NULL = "wa-gateway" */
} httpc_opts_t;

/* Initialises libcurl for the process (its global state). Call once from
 * main before any other thread starts and before httpc_new. Returns 0 or
 * -1. */
int httpc_global_init(void);

/* Releases libcurl's global state at the very end of main (after every
 * client was destroyed and the loop ran). */
void httpc_global_cleanup(void);

/* Creates a client on `loop`. The options are copied. Returns the client,
 * or NULL with a one-line message in err (out of memory, unreadable
 * ca_file). Release it with httpc_destroy. */
httpc_t *httpc_new(uv_loop_t *loop, const httpc_opts_t *opts, char *err, size_t errlen);

/* Starts a request. Returns 0 and, when `out` is not NULL, a handle valid
 * until the done callback has returned or httpc_cancel was called; or a
 * negative HTTPC_E* code (then no callback follows): HTTPC_EINVAL for a
 * missing/non-http URL, a missing callback or an unknown method,
 * HTTPC_ENOMEM, HTTPC_ECLOSED after httpc_destroy. */
int httpc_request(httpc_t *c, const httpc_request_t *r, httpc_req_t **out);

/* Abandons a request: its callback is not called, its connection closed.
 * A no-op for a request whose callback is running. NULL is ignored. */
void httpc_cancel(httpc_req_t *r);

/* Destroys the client: every pending request is abandoned (no callbacks),
 * every connection closed. The handles close asynchronously: the memory is
 * released, and `done` (may be NULL) called, from the loop once the last
 * handle is closed, so the caller must run the loop afterwards (as every
 * libuv shutdown does). Safe from a done callback. NULL is ignored. */
void httpc_destroy(httpc_t *c, void (*done)(void *arg), void *arg);

/* The number of requests in flight (tests, metrics). */
size_t httpc_pending(const httpc_t *c);

#endif
