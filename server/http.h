/* The HTTP listener: h2o on the service's libuv loop. It accepts TCP
 * connections, serves HTTP/1.1 and HTTP/2 (h2c prior knowledge and upgrade),
 * and dispatches requests through a route table to handlers. */
#ifndef WG_SERVER_HTTP_H
#define WG_SERVER_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct http_server http_server_t;

/* Starts listening on host:port on `loop`. On success returns 0 and stores a
 * server owned by the caller (release with http_server_stop, run the loop
 * until the stop callback fires, then http_server_free). On failure returns
 * a negative libuv error code and writes a one-line message into `err`. */
int http_server_start(http_server_t **out, uv_loop_t *loop, const char *host, int port, char *err,
                      size_t errlen);

/* Stops accepting, asks open connections to finish (HTTP/2 GOAWAY, HTTP/1
 * close after the current request) and calls `on_stopped(arg)` once every
 * connection is closed, or after `grace_ms` milliseconds at the latest. */
void http_server_stop(http_server_t *srv, unsigned grace_ms, void (*on_stopped)(void *arg),
                      void *arg);

/* Releases the server. Call only after the stop callback has run. */
void http_server_free(http_server_t *srv);

/* Returns the number of currently open client connections. */
size_t http_server_connections(const http_server_t *srv);

#endif
