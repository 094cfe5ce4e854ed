/* The shared harness of the session flow tests: a libuv loop with the fake
 * WhatsApp server (tests/fakewa) on loopback, a credential store in a
 * temporary directory, a registry with the session "default" driven by the
 * real driver and client, and a subscriber recording every state it sees,
 * so tests assert sequences of states. The driver's store calls go through
 * a store queue (inline, or on a thread of its own when FLOW_THREADED_Q is
 * set in the environment or q_threaded is). Loop-thread only. */
#ifndef WG_TESTS_SESSION_FLOW_FLOWLIB_H
#define WG_TESTS_SESSION_FLOW_FLOWLIB_H

#include <stddef.h>

#include "session/driver.h"
#include "session/gate.h"
#include "session/session.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "tests/fakewa/whatsapp.h"

#define FLOW_MAX_SEEN 256

typedef struct {
    uv_loop_t loop;
    fakewa_wa_t *srv;
    wa_fsock_ctx_t *fsock;
    store_t *store;
    sess_q_t *q;    /* the store's job queue, from flow_start to flow_stop */
    int q_threaded; /* 1: flow_start makes a threaded queue */
    sess_registry_t *reg;
    sess_t *s; /* "default" */
    sess_sub_t *sub;
    uv_async_t wake;
    uv_timer_t guard;
    char dir[512];
    /* what the subscriber saw */
    sess_state_t seen[FLOW_MAX_SEEN];
    char detail[FLOW_MAX_SEEN][40];
    char qr[FLOW_MAX_SEEN][400];
    char code[FLOW_MAX_SEEN][16];   /* link_code */
    int has_options[FLOW_MAX_SEEN]; /* passkey options present */
    int nseen;
    int timed_out;
    /* client settings for the next flow_start (0 = the harness's) */
    unsigned qr_first, qr_next;
    unsigned ka_ms, ka_timeout_ms, login_timeout_ms;
    int ka_defaults;   /* 1: the product's keepalive defaults */
    sess_gate_t *gate; /* connection gate, or NULL */
    void *user;        /* the test's own state */
} flow_t;

/* Creates the loop, the fake server (with `wo`), the WebSocket context and
 * the temporary directory (named after `tag`). Returns a new harness;
 * failures fail the test. */
flow_t *flow_new(const char *tag, const fakewa_wa_opts_t *wo);

/* Stops everything, removes the directory and frees the harness. */
void flow_free(flow_t *fx);

/* Opens the store, adds "default" with a driver configured from the
 * harness's settings, subscribes and starts it. */
void flow_start(flow_t *fx);

/* Stops and frees the registry, closes and frees the store's queue (what
 * was queued is run), then closes the store (the fake server stays). */
void flow_stop(flow_t *fx);

/* Waits until every job queued to the store has run and their callbacks
 * too, so the test may read the store. */
void flow_settle(flow_t *fx);

/* Records what the subscriber has queued. */
void flow_drain(flow_t *fx);

/* Runs the loop until the subscriber has seen `state` (with `detail` when
 * non-NULL) at index >= from, or `ms` pass. Returns its index or -1. */
int flow_wait_for(flow_t *fx, int from, sess_state_t state, const char *detail, unsigned ms);

/* Runs the loop for `ms` milliseconds. */
void flow_run_for(flow_t *fx, unsigned ms);

/* Runs the loop until cond(fx) is true or `ms` pass; returns cond(fx). */
int flow_run_until(flow_t *fx, int (*cond)(flow_t *fx), unsigned ms);

/* Clears fx->timed_out and arms the guard timer: fx->timed_out becomes 1
 * after `ms` (for loops of the test's own). */
void flow_guard(flow_t *fx, unsigned ms);

/* Fails the test with the sequence seen when idx < 0. */
void flow_must(flow_t *fx, int idx, const char *what);

/* Pairs: waits for a QR, the fake phone scans it, waits for CONNECTED.
 * Returns the index of CONNECTED. */
int flow_pair(flow_t *fx);

#endif
