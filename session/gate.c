/* The connection gate (see gate.h): a FIFO of tickets and a token bucket
 * refilled at `rate` per second with a burst of at most one second's worth,
 * drained by one timer. Jitter comes from spreading each second's tokens
 * over the second at random offsets, so connections do not go out in
 * lock-step bursts. */
#include "session/gate.h"

#include <stdint.h>
#include <stdlib.h>

struct sess_gate {
    uint64_t rng; /* xorshift state for the jitter */
    int pumping;  /* inside pump: entering tickets only queue */
    uv_timer_t timer;
    unsigned rate;
    double tokens;
    uint64_t last_ms;
    sess_gate_ticket_t *head, *tail;
    size_t waiting;
    unsigned long passed;
    int closed;
};

static void pump(sess_gate_t *g);

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

static void refill(sess_gate_t *g)
{
    uint64_t now = uv_now(g->timer.loop);
    g->tokens += (double)(now - g->last_ms) * g->rate / 1000.0;
    if (g->tokens > g->rate)
        g->tokens = g->rate;
    g->last_ms = now;
}

static sess_gate_ticket_t *pop(sess_gate_t *g)
{
    sess_gate_ticket_t *t = g->head;
    if (!t)
        return NULL;
    g->head = t->next;
    if (g->head)
        g->head->prev = NULL;
    else
        g->tail = NULL;
    t->next = t->prev = NULL;
    t->queued = 0;
    g->waiting--;
    return t;
}

static uint64_t next_rand(sess_gate_t *g)
{
    uint64_t x = g->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return g->rng = x;
}

static void pump(sess_gate_t *g)
{
    if (g->closed || g->pumping)
        return;
    g->pumping = 1;
    if (g->rate)
        refill(g);
    while (g->head && (!g->rate || g->tokens >= 1.0)) {
        if (g->rate)
            g->tokens -= 1.0;
        sess_gate_ticket_t *t = pop(g);
        g->passed++;
        t->go(t->arg); /* may enter or leave tickets */
        if (g->closed)
            return;
    }
    g->pumping = 0;
    if (g->head && g->rate && !uv_is_active((uv_handle_t *)&g->timer)) {
        /* the next token, plus up to half a token period of jitter */
        uint64_t period = 1000 / g->rate ? 1000 / g->rate : 1;
        uint64_t need = (uint64_t)((1.0 - g->tokens) * 1000.0 / g->rate) + 1;
        uint64_t jitter = next_rand(g) % (period / 2 + 1);
        uv_timer_start(&g->timer, on_timer, need + jitter, 0);
    }
}

sess_gate_t *sess_gate_new(uv_loop_t *loop, unsigned rate)
{
    sess_gate_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->rate = rate;
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    g->last_ms = uv_now(loop);
    g->tokens = rate ? 1.0 : 0; /* the first connection goes at once */
    g->rng = uv_hrtime() | 1;
    return g;
}

void sess_gate_close(sess_gate_t *g)
{
    if (!g || g->closed)
        return;
    g->closed = 1;
    while (pop(g))
        ;
    uv_close((uv_handle_t *)&g->timer, NULL);
}

void sess_gate_free(sess_gate_t *g)
{
    free(g);
}

void sess_gate_ticket_init(sess_gate_ticket_t *t, void (*go)(void *arg), void *arg)
{
    t->go = go;
    t->arg = arg;
    t->prev = t->next = NULL;
    t->queued = 0;
}

void sess_gate_enter(sess_gate_t *g, sess_gate_ticket_t *t)
{
    if (t->queued || g->closed)
        return;
    t->queued = 1;
    t->next = NULL;
    t->prev = g->tail;
    if (g->tail)
        g->tail->next = t;
    else
        g->head = t;
    g->tail = t;
    g->waiting++;
    if (!uv_is_active((uv_handle_t *)&g->timer))
        pump(g);
}

void sess_gate_leave(sess_gate_t *g, sess_gate_ticket_t *t)
{
    if (!t->queued)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        g->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        g->tail = t->prev;
    t->next = t->prev = NULL;
    t->queued = 0;
    g->waiting--;
}

size_t sess_gate_waiting(const sess_gate_t *g)
{
    return g->waiting;
}

unsigned long sess_gate_passed(const sess_gate_t *g)
{
    return g->passed;
}
