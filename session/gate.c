/* The connection gate (see gate.h): a FIFO of tickets released one at a
 * time, each at least 1000 / rate ms (rounded up) after the previous one,
 * plus a random jitter of up to a quarter of that period which only adds
 * to the interval. So no window of one second ever sees more than `rate`
 * releases, and an idle gate lets the next ticket through at once. */
#include "session/gate.h"

#include <stdint.h>
#include <stdlib.h>

struct sess_gate {
    uint64_t rng; /* xorshift state for the jitter */
    int pumping;  /* inside pump: entering tickets only queue */
    uv_timer_t timer;
    unsigned rate;
    uint64_t period_ms; /* the least interval between two releases */
    uint64_t next_ms;   /* loop time before which nothing is released */
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
    while (g->head) {
        if (g->rate) {
            uint64_t now = uv_now(g->timer.loop);
            if (now < g->next_ms) {
                if (!uv_is_active((uv_handle_t *)&g->timer))
                    uv_timer_start(&g->timer, on_timer, g->next_ms - now, 0);
                break;
            }
            g->next_ms = now + g->period_ms + next_rand(g) % (g->period_ms / 4 + 1);
        }
        sess_gate_ticket_t *t = pop(g);
        g->passed++;
        t->go(t->arg); /* may enter or leave tickets */
        if (g->closed)
            return;
    }
    g->pumping = 0;
}

sess_gate_t *sess_gate_new(uv_loop_t *loop, unsigned rate)
{
    sess_gate_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->rate = rate;
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    g->period_ms = rate ? (1000 + rate - 1) / rate + 1 : 0;
    g->next_ms = 0; /* the first connection goes at once */
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
