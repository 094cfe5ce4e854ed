/* What the webhook sender's source files share (not part of the webhook
 * interface): the sender, its targets and test calls, and the helpers one
 * file calls in another. webhook.c: the store's queue, the targets in
 * memory, reading them, the sender's life; deliver.c: delivery, the writes
 * of its state, the purge of deleted targets' queues; targets.c: the
 * management calls; test.c: the test calls and their waits. Only
 * session/webhook/ includes it. */
#ifndef WG_SESSION_WEBHOOK_WEBHOOK_INTERNAL_H
#define WG_SESSION_WEBHOOK_WEBHOOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/httpc.h"
#include "session/store/store.h"
#include "session/storeq.h"
#include "session/webhook/webhook.h"

#define POLL_MS 1000u /* slow poll for new deliveries (wake-ups are the fast path) */
#define FLUSH_MAX 256 /* delivered rows are deleted when this many wait (or after FLUSH_MS) */
#define REASON_MAX 128
#define TEST_BODY_MAX 256

typedef struct target target_t;

struct target {
    wh_t *wh;
    uint64_t serial; /* unique in this sender: how a job finds its target again */
    char id[40];
    char *url;
    char host[256];
    uint8_t key[WH_SECRET_MAX];
    size_t keylen;
    char *session; /* NULL: every session */
    char *events;  /* " t1 t2 " or "" */
    int64_t created_at;
    /* the head */
    int has_head;
    store_delivery_t head;
    uint64_t cursor; /* the highest event id delivered or dead since the last replay */
    int refetch;     /* a replay happened while a request was in flight */
    int reading;     /* a read of the next head is queued */
    int again;       /* pumped while reading: read again when it finds nothing */
    unsigned epoch;  /* bumped by a replay: a read queued before it is stale */
    int deleting;    /* its deletion is queued: no longer found by id */
    int rescan;      /* a dead letter could not be recorded: read from the start when idle */
    httpc_req_t *req;
    uv_timer_t timer; /* the retry wait */
    int waiting;
    /* since the start */
    uint64_t delivered, failed, dead;
    char last_error[REASON_MAX];
    target_t *next;
};

typedef struct tq tq_t;

struct wh_test {
    wh_t *wh;
    char target[40];
    uint64_t event_id; /* 0 until its event is stored */
    tq_t *pending;     /* its event, until it is stored */
    int queued_only;   /* answered once stored (wait_ms 0, or the wait ran out) */
    int done;          /* answered or cancelled: unlinked, its timer closing */
    wh_test_cb cb;
    void *arg;
    uv_timer_t timer;
    wh_test_t *next;
};

/* A test event waiting for the group commit, then in its job. */
struct tq {
    char target[40];
    int64_t ts_ms;
    char body[TEST_BODY_MAX];
    size_t body_len;
    wh_test_t *w; /* the call that waits for it; NULL once answered or cancelled */
    tq_t *next;
};

struct wh {
    wh_opts_t o;
    httpc_t *http;
    target_t *targets; /* oldest first */
    size_t ntargets;
    uint64_t serials; /* the last target serial given */
    size_t creating;  /* creations queued (they count against max_targets) */
    uv_async_t wake;
    uv_timer_t poll, flush;
    uv_timer_t purge; /* deletes the queues of deleted targets, a batch per job */
    int purging, purge_again;
    int reloading, reload_again;
    int flush_armed;
    /* delivered rows not yet queued for deletion */
    char (*done_target)[40];
    uint64_t *done_event;
    size_t ndone;
    wh_test_t *tests;
    /* test events not queued yet (FIFO), and the group commit's handle */
    tq_t *tq_head, *tq_tail;
    size_t ntq;
    uv_prepare_t commit;
    uv_timer_t commit_later; /* the next commit when the last one was too recent */
    uint64_t last_commit_ns; /* uv_hrtime() after the last commit */
    unsigned commit_gap_ms;  /* wh_opts_t's, or the default */
    uint64_t rnd;            /* xorshift state for the jitter */
    size_t jobs;             /* queued jobs whose done has not run */
    int free_asked;          /* wh_free was called while jobs were left */
    int closed;
    int paused; /* wh_set_sending(0): another node delivers (cluster) */
};

/* --- the store's queue (webhook.c) --- */

/* Queues a store job of this sender: a read (cancellable: the sender is its
 * owner, wh_close cancels it) or a write (no owner: stored even after
 * wh_close). Every job is counted until its done ran, which must end with
 * wh_job_end. 0, or -1 when it cannot be queued (the caller keeps arg). */
int wh_job_run(wh_t *wh, int cancellable, int (*work)(void *), void (*done)(void *, int),
               void *arg);

/* The last use of wh by a done callback: frees the sender when wh_free
 * was called before (wh is then gone). */
void wh_job_end(wh_t *wh);

/* Runs one job through the queue and waits for it (sess_q_drain, which
 * blocks the loop): for the start only (wh_new, wh_set_global). work's
 * result, or STORE_EIO when it could not be queued or was cancelled. */
int wh_run_sync(sess_q_t *q, int (*work)(void *), void *arg);

/* --- the targets in memory (webhook.c) --- */

/* The target with that id, unless its deletion is queued; NULL when none.
 * Owned by the sender. */
target_t *wh_find(wh_t *wh, const char *id);

/* The target with that id, even while its deletion is queued; NULL when
 * none. Owned by the sender. */
target_t *wh_find_any(wh_t *wh, const char *id);

/* The target with that serial (how a job finds its target again); NULL
 * when it is gone. Owned by the sender. */
target_t *wh_by_serial(wh_t *wh, uint64_t serial);

/* Frees the target's head and marks it as having none. */
void wh_head_clear(target_t *t);

/* A new in-memory target from a stored one (the key is copied), not linked
 * yet: the caller links it (wh_target_link), then the sender owns it. NULL
 * when out of memory or when the stored target is unusable. */
target_t *wh_target_new(wh_t *wh, const store_webhook_t *s);

/* Appends a target to the sender's list (the sender owns it from then on). */
void wh_target_link(wh_t *wh, target_t *t);

/* Takes a target out: its request is abandoned, its memory freed once its
 * timer is closed; its queued jobs no longer find it. */
void wh_target_drop(wh_t *wh, target_t *t);

/* --- delivery (deliver.c) --- */

/* Queues the deletion of the delivered rows noted so far. A read queued
 * afterwards no longer finds them. Never fails (when out of memory it
 * logs: those events may be sent again). */
void wh_flush_done(wh_t *wh);

/* Advances a target as far as it can without waiting (reads its head,
 * sends it, or waits for its retry). */
void wh_pump(target_t *t);

/* Pumps every target that has no head, no request in flight and no retry
 * wait. */
void wh_pump_all(wh_t *wh);

/* The purge timer's callback (tm->data: the sender): deletes a batch of the
 * queues of deleted targets per job; started with uv_timer_start on
 * wh->purge. Does nothing while paused or closed (wh_set_sending starts it
 * again). Failures are logged and retried. */
void wh_on_purge(uv_timer_t *tm);

/* --- test calls (test.c) --- */

/* Answers a test call with r and unlinks it (its memory is freed once its
 * timer is closed). */
void wh_test_answer(wh_test_t *w, const wh_test_result_t *r);

/* An attempt of (target, event) finished: answers the test waits for it. */
void wh_tests_answer(wh_t *wh, const char *target, uint64_t event_id, int delivered, long status,
                     const char *error);

/* The group commit: queues every test event asked for so far (calls whose
 * event cannot be queued are answered with an error). */
void wh_tq_flush(wh_t *wh);

#endif
