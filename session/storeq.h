/* The store's job queue: keeps database round trips off the event loop.
 * A job is a pair of functions: `work`, which calls session/store and may
 * block, and `done`, which gets work's result back on the loop thread.
 * Threaded (PostgreSQL: every call is a network round trip), the jobs run
 * one at a time, in the order they were queued, on a thread of the
 * queue's own; inline (SQLite: a local file, as before), work runs at once
 * on the caller's thread. Either way `done` runs later, from the loop,
 * never inside sess_q_run, so a caller is written once for both. */
#ifndef WG_SESSION_STOREQ_H
#define WG_SESSION_STOREQ_H

#include <stddef.h>
#include <uv.h>

typedef struct sess_q sess_q_t;

/* The rc a job's done gets when its owner was cancelled (sess_q_cancel)
 * or the queue was closed before work could run. */
#define SESS_Q_CANCELLED (-10000)

/* Creates a queue on `loop`; threaded: 1 for a thread of its own, 0 to
 * run work inline. Returns NULL when out of memory or when the thread
 * cannot start. Loop thread. The caller frees it with sess_q_free after
 * sess_q_close. */
sess_q_t *sess_q_new(uv_loop_t *loop, int threaded);

/* 1 when jobs run on the queue's thread. NULL: 0. Any thread. */
int sess_q_threaded(const sess_q_t *q);

/* Queues a job for `owner` (any pointer: the key sess_q_cancel matches;
 * NULL for none). work(arg) runs off the loop (or inline), then
 * done(arg, rc) on the loop thread with work's return value, or with
 * SESS_Q_CANCELLED (work may then not have run). work must touch nothing
 * but arg and what is safe from another thread (the store); done owns arg
 * and frees it. done may queue further jobs. Returns 0, or -1 when out
 * of memory or closed (nothing runs then: the caller still owns arg).
 * Any thread (threaded queues; an inline queue runs work on the caller's
 * thread, so call it from the loop). */
int sess_q_run(sess_q_t *q, const void *owner, int (*work)(void *arg),
               void (*done)(void *arg, int rc), void *arg);

/* The owner goes away: its jobs' done callbacks still run (to free their
 * arg) but with SESS_Q_CANCELLED, and must not touch the owner; work that
 * has not started is skipped. Loop thread. */
void sess_q_cancel(sess_q_t *q, const void *owner);

/* Jobs queued or running whose done has not run yet. Any thread. */
size_t sess_q_pending(sess_q_t *q);

/* Waits until every queued job has run and runs their done callbacks
 * (a done that queues more is waited for too). Loop thread. */
void sess_q_drain(sess_q_t *q);

/* Drains, stops the thread and closes the loop handle; free after the
 * loop has run its close callbacks. NULL is ignored. Loop thread. */
void sess_q_close(sess_q_t *q);

/* Frees a closed queue. NULL is ignored. */
void sess_q_free(sess_q_t *q);

#endif
