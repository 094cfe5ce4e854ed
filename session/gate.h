/* The connection gate: every new WhatsApp connection of every session
 * passes through one gate that lets at most `rate` connections start per
 * second, in the order they asked, each delayed by a little jitter. A
 * restart of a thousand linked sessions then reaches WhatsApp as a steady
 * trickle instead of a flood (CONNECT_RATE). Loop-thread only. */
#ifndef WG_SESSION_GATE_H
#define WG_SESSION_GATE_H

#include <stddef.h>

#include <uv.h>

typedef struct sess_gate sess_gate_t;

/* A place in the gate's queue, owned by the caller (e.g. inside its
 * driver); initialise with sess_gate_ticket_init. */
typedef struct sess_gate_ticket {
    void (*go)(void *arg); /* runs on the loop thread when it is this ticket's turn */
    void *arg;
    struct sess_gate_ticket *prev, *next;
    int queued;
} sess_gate_ticket_t;

/* Creates a gate on `loop` letting `rate` connections per second through
 * (0 = no limit: tickets go at once). Returns NULL when out of memory. */
sess_gate_t *sess_gate_new(uv_loop_t *loop, unsigned rate);

/* Closes the gate's timer (queued tickets never run); call sess_gate_free
 * once the loop has run the close. */
void sess_gate_close(sess_gate_t *g);

/* Frees a closed gate. NULL is ignored. */
void sess_gate_free(sess_gate_t *g);

/* Prepares a ticket. */
void sess_gate_ticket_init(sess_gate_ticket_t *t, void (*go)(void *arg), void *arg);

/* Queues the ticket; its `go` runs when the rate allows (possibly from
 * inside this call when the gate is open and idle). A ticket already
 * queued keeps its place. */
void sess_gate_enter(sess_gate_t *g, sess_gate_ticket_t *t);

/* Takes a ticket out of the queue (its `go` will not run). Safe on a
 * ticket that is not queued. */
void sess_gate_leave(sess_gate_t *g, sess_gate_ticket_t *t);

/* Tickets waiting now. */
size_t sess_gate_waiting(const sess_gate_t *g);

/* Tickets let through so far. */
unsigned long sess_gate_passed(const sess_gate_t *g);

#endif
