/* Unit tests of session/session.c in cluster mode against a journal held
 * in memory whose appends and reads complete when the test says so: the
 * events a session published under a lease it lost are never stored once
 * it holds the session again under a newer epoch (sess_set_epoch), and its
 * acquire catch-up (sess_follow_async) waits until those events are
 * settled, so the seq it goes on from is the log's: the log never gets a
 * hole, whatever order the refusals and the new lease come in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/session.h"

#define LOG_MAX 32

/* One stored event. */
typedef struct {
    uint64_t id, seq, epoch;
    char *body;
    size_t len;
} rec_t;

/* The journal: a log and a lease; one append and one read held at a time
 * until complete_append / complete_read. */
typedef struct {
    rec_t log[LOG_MAX];
    size_t n;
    uint64_t held; /* the lease's epoch (0: not held) */
    struct {
        int busy;
        sess_event_t *ev;
        size_t n;
        void (*done)(void *, int);
        void *ctx;
    } ap;
    struct {
        int busy;
        uint64_t after;
        size_t max;
        sess_event_t *out;
        size_t *n;
        uint64_t *pruned;
        void (*done)(void *, int);
        void *ctx;
    } rd;
} fj_t;

static int fj_last_seq(void *arg, const char *session, uint64_t *seq)
{
    fj_t *j = arg;
    (void)session;
    *seq = j->n ? j->log[j->n - 1].seq : 0;
    return 0;
}

/* What the store does: an event is stored while the lease is held with
 * the epoch it was made under (0: the epoch held). */
static int fj_append(void *arg, sess_event_t *ev, size_t n)
{
    fj_t *j = arg;
    int fenced = 0;
    for (size_t i = 0; i < n; i++) {
        ev[i].id = 0;
        if (!j->held || (ev[i].epoch && ev[i].epoch != j->held)) {
            fenced = 1;
            continue;
        }
        assert_true(j->n < LOG_MAX);
        rec_t *r = &j->log[j->n];
        r->id = j->n + 1;
        r->seq = ev[i].seq;
        r->epoch = ev[i].epoch ? ev[i].epoch : j->held;
        r->body = malloc(ev[i].body_len + 1);
        memcpy(r->body, ev[i].body, ev[i].body_len);
        r->body[ev[i].body_len] = 0;
        r->len = ev[i].body_len;
        ev[i].id = r->id;
        j->n++;
    }
    return fenced ? SESS_JOURNAL_FENCED : 0;
}

static int fj_read(void *arg, const char *session, uint64_t after, size_t max, sess_event_t *out,
                   size_t *n, uint64_t *pruned)
{
    fj_t *j = arg;
    *n = 0;
    *pruned = 0;
    for (size_t i = 0; i < j->n && *n < max; i++) {
        if (j->log[i].seq <= after)
            continue;
        out[*n] = (sess_event_t){.id = j->log[i].id,
                                 .session = strdup(session),
                                 .seq = j->log[i].seq,
                                 .type = strdup(SESS_EVENT_STATUS),
                                 .body = strdup(j->log[i].body),
                                 .body_len = j->log[i].len};
        (*n)++;
    }
    return 0;
}

static int fj_append_async(void *arg, sess_event_t *ev, size_t n, void (*done)(void *, int),
                           void *ctx)
{
    fj_t *j = arg;
    assert_false(j->ap.busy);
    j->ap.busy = 1;
    j->ap.ev = ev;
    j->ap.n = n;
    j->ap.done = done;
    j->ap.ctx = ctx;
    return 0;
}

/* The append held completes (on the loop thread, as the loop would). */
static void complete_append(fj_t *j)
{
    assert_true(j->ap.busy);
    j->ap.busy = 0;
    j->ap.done(j->ap.ctx, fj_append(j, j->ap.ev, j->ap.n));
}

static void fj_drain(void *arg)
{
    fj_t *j = arg;
    if (j->ap.busy)
        complete_append(j);
}

static int fj_read_async(void *arg, const char *session, uint64_t after, size_t max,
                         sess_event_t *out, size_t *n, uint64_t *pruned, void (*done)(void *, int),
                         void *ctx)
{
    fj_t *j = arg;
    (void)session;
    assert_false(j->rd.busy);
    j->rd.busy = 1;
    j->rd.after = after;
    j->rd.max = max;
    j->rd.out = out;
    j->rd.n = n;
    j->rd.pruned = pruned;
    j->rd.done = done;
    j->rd.ctx = ctx;
    return 0;
}

static void complete_read(fj_t *j)
{
    assert_true(j->rd.busy);
    j->rd.busy = 0;
    int rc = fj_read(j, "s", j->rd.after, j->rd.max, j->rd.out, j->rd.n, j->rd.pruned);
    j->rd.done(j->rd.ctx, rc);
}

static void publish(sess_t *s, sess_state_t st)
{
    sess_change_t c = {.state = st};
    assert_int_equal(sess_publish(s, &c), 0);
}

static void on_caught_up(void *arg, int rc)
{
    (void)rc;
    *(int *)arg = 1;
}

static uint64_t current_seq(sess_t *s)
{
    sess_snapshot_t *c = sess_current(s);
    uint64_t seq = c->seq;
    sess_snapshot_unref(c);
    return seq;
}

/* The session publishes seq 2 and 3 under epoch 1; the lease goes before
 * seq 2 is stored (refused); the node holds the session again (epoch 2)
 * before seq 3 is stored. Seq 3 is refused too, the catch-up waits for it,
 * and the next event is seq 2: the log is 1, 2 with no hole. */
static void test_events_of_a_lost_lease_never_stored(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fj_t j = {.held = 1};
    sess_journal_t jr = {.last_seq = fj_last_seq,
                         .append = fj_append,
                         .read = fj_read,
                         .append_async = fj_append_async,
                         .drain = fj_drain,
                         .read_async = fj_read_async,
                         .arg = &j};
    sess_registry_t *reg = sess_registry_new(&loop, NULL);
    assert_non_null(reg);
    sess_registry_set_journal(reg, &jr);
    sess_t *s = sess_registry_add(reg, "s");
    assert_non_null(s);
    sess_set_epoch(s, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    complete_append(&j); /* seq 1, stored */
    assert_int_equal(j.n, 1);

    publish(s, SESS_CONNECTING); /* seq 2 */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(j.ap.busy);
    publish(s, SESS_CONNECTED); /* seq 3, waiting behind it */
    assert_int_equal(current_seq(s), 3);

    j.held = 0; /* the lease went: seq 2 is refused */
    complete_append(&j);
    assert_int_equal(j.n, 1);
    sess_set_following(s, 1); /* the node lets the session go */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(j.ap.busy); /* seq 3 is being stored */

    /* the node holds the session again, with epoch 2, before seq 3 is */
    j.held = 2;
    sess_set_epoch(s, 2);
    int caught = 0;
    assert_int_equal(sess_follow_async(s, on_caught_up, &caught), 0);
    assert_false(j.rd.busy); /* the catch-up waits for seq 3 to settle */
    complete_append(&j);     /* made under epoch 1: refused */
    assert_int_equal(j.n, 1);
    assert_true(j.rd.busy);
    complete_read(&j);
    assert_true(caught);
    assert_int_equal(current_seq(s), 1);

    sess_set_following(s, 0);
    publish(s, SESS_CONNECTING);
    uv_run(&loop, UV_RUN_NOWAIT);
    complete_append(&j);
    assert_int_equal(j.n, 2);
    assert_int_equal(j.log[1].seq, 2);
    assert_int_equal(j.log[1].epoch, 2);

    sess_registry_close(reg);
    uv_run(&loop, UV_RUN_DEFAULT);
    sess_registry_free(reg);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (size_t i = 0; i < j.n; i++)
        free(j.log[i].body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_of_a_lost_lease_never_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
