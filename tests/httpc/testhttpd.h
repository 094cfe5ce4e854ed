/* A tiny HTTP/1.1 server on loopback for tests of outgoing HTTP (common/httpc
 * and its users): plain or TLS (a self-signed certificate made at start),
 * one thread per connection with blocking I/O, so that it runs beside the
 * libuv loop under test without touching it. What it answers is decided by
 * a handler the test provides. One request per connection. Starting one
 * ignores SIGPIPE for the process (clients hang up mid-answer on purpose).
 * Tests only. */
#ifndef WG_TESTS_HTTPC_TESTHTTPD_H
#define WG_TESTS_HTTPC_TESTHTTPD_H

#include <stddef.h>

typedef struct testhttpd testhttpd_t;

/* What the handler sees of a request (borrowed for the call). */
typedef struct {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* with the query string */
    const char *headers; /* the raw header block (lines after the request line) */
    const char *body;
    size_t body_len;
} testhttpd_req_t;

/* What the handler answers. */
typedef struct {
    int status;          /* HTTP status; 0 = 200 */
    const char *body;    /* NULL = "" */
    size_t body_len;     /* 0 with body set = strlen(body) */
    size_t repeat;       /* > 0: send the body this many times (large bodies) */
    int no_length;       /* 1: no Content-Length, the body ends when the connection closes */
    const char *headers; /* extra header lines, each ending in \r\n, or NULL */
    int hang;            /* 1: answer nothing until the client goes away */
    char *owned;         /* freed after the answer was sent (may be the body) */
} testhttpd_resp_t;

typedef void (*testhttpd_handler_t)(void *arg, const testhttpd_req_t *req, testhttpd_resp_t *resp);

/* Starts listening on 127.0.0.1 (any free port); `tls` 1 serves HTTPS with
 * a fresh self-signed certificate for "localhost" and 127.0.0.1, written as
 * PEM to `cert_path` (the CA file a client must trust). The handler runs on
 * the server's threads. Returns NULL on failure. */
testhttpd_t *testhttpd_start(int tls, const char *cert_path, testhttpd_handler_t h, void *arg);

/* The port listened on. */
int testhttpd_port(const testhttpd_t *s);

/* Requests received so far (thread-safe). */
int testhttpd_requests(testhttpd_t *s);

/* Stops (hanging answers end), joins every thread and frees. */
void testhttpd_stop(testhttpd_t *s);

#endif
