/* A minimal webhook receiver for tests and benchmarks: plain HTTP/1.1 on
 * kept-alive connections, each request read whole (Content-Length) and
 * answered 200 with an empty body. What is done with a request is the
 * caller's (a callback with its head and the event id of its webhook-id). */
#ifndef WG_TESTS_WEBHOOK_RECEIVER_H
#define WG_TESTS_WEBHOOK_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

/* Called once per request, on the thread serving its connection, once the
 * whole request is read: `head` is its request line and headers (`hlen`
 * bytes, not NUL-terminated), `id` the N of "webhook-id: evt_N" (0 when
 * absent). */
typedef void (*whrcv_fn)(void *arg, const char *head, size_t hlen, uint64_t id);

/* Serves one connection until the peer closes it, a read or write fails,
 * or a request is over 64 KiB. Does not close `fd`. */
void whrcv_serve(int fd, whrcv_fn fn, void *arg);

/* Accepts on the listening socket `lfd` and serves each connection on a
 * thread of its own (which closes it), until accept fails once *stop is
 * set (shut the socket down to end it). Runs on the calling thread. */
void whrcv_accept_loop(int lfd, const volatile int *stop, whrcv_fn fn, void *arg);

#endif
