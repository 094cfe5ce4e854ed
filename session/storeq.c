/* The store's job queue (see storeq.h): a FIFO of jobs run by one thread
 * (or inline), and a list of finished jobs whose done callbacks the loop
 * runs when the thread wakes it. */
#include "session/storeq.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    const void *owner;
    int (*work)(void *arg);
    void (*done)(void *arg, int rc);
    void *arg;
    int rc, cancelled;
    struct job *next;
} job_t;

struct sess_q {
    uv_loop_t *loop;
    int threaded, thread_on, stop, working, closed;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    job_t *todo, **todo_tail; /* guarded by mu */
    job_t *done, **done_tail; /* guarded by mu */
    job_t *running;           /* guarded by mu */
    size_t pending;           /* atomic: queued from any thread, done on the loop */
    uv_async_t wake;
};

/* Appends a finished job to the done list and wakes the loop; mu held. */
static void finish_locked(sess_q_t *q, job_t *job)
{
    job->next = NULL;
    *q->done_tail = job;
    q->done_tail = &job->next;
}

static void *q_main(void *arg)
{
    sess_q_t *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->todo && !q->stop)
            pthread_cond_wait(&q->cond, &q->mu);
        job_t *job = q->todo;
        if (!job)
            break; /* stopping, nothing left */
        q->todo = job->next;
        if (!q->todo)
            q->todo_tail = &q->todo;
        if (!job->cancelled) {
            q->working = 1;
            q->running = job;
            pthread_mutex_unlock(&q->mu);
            job->rc = job->work(job->arg);
            pthread_mutex_lock(&q->mu);
            q->working = 0;
            q->running = NULL;
        }
        finish_locked(q, job);
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->mu);
        uv_async_send(&q->wake);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Runs the done callbacks of the finished jobs. Loop thread. */
static void run_done(sess_q_t *q)
{
    pthread_mutex_lock(&q->mu);
    job_t *job = q->done;
    q->done = NULL;
    q->done_tail = &q->done;
    pthread_mutex_unlock(&q->mu);
    while (job) {
        job_t *next = job->next;
        __atomic_sub_fetch(&q->pending, 1, __ATOMIC_ACQ_REL);
        job->done(job->arg, job->cancelled ? SESS_Q_CANCELLED : job->rc);
        free(job);
        job = next;
    }
}

static void on_wake(uv_async_t *a)
{
    run_done(a->data);
}

sess_q_t *sess_q_new(uv_loop_t *loop, int threaded)
{
    sess_q_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->loop = loop;
    q->threaded = threaded != 0;
    q->todo_tail = &q->todo;
    q->done_tail = &q->done;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cond, NULL);
    /* the thread sends wake only after a job, and none is queued before
     * this returns: it may start before the handle exists */
    if (q->threaded && pthread_create(&q->thread, NULL, q_main, q) != 0) {
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    uv_async_init(loop, &q->wake, on_wake);
    q->wake.data = q;
    uv_unref((uv_handle_t *)&q->wake); /* it never keeps the loop alive alone */
    q->thread_on = q->threaded;
    return q;
}

int sess_q_threaded(const sess_q_t *q)
{
    return q && q->threaded;
}

int sess_q_run(sess_q_t *q, const void *owner, int (*work)(void *arg),
               void (*done)(void *arg, int rc), void *arg)
{
    if (!q || __atomic_load_n(&q->closed, __ATOMIC_ACQUIRE))
        return -1;
    job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return -1;
    *job = (job_t){.owner = owner, .work = work, .done = done, .arg = arg};
    __atomic_add_fetch(&q->pending, 1, __ATOMIC_ACQ_REL);
    if (!q->threaded) {
        job->rc = work(arg);
        pthread_mutex_lock(&q->mu);
        finish_locked(q, job);
        pthread_mutex_unlock(&q->mu);
        uv_async_send(&q->wake);
        return 0;
    }
    pthread_mutex_lock(&q->mu);
    *q->todo_tail = job;
    q->todo_tail = &job->next;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void sess_q_cancel(sess_q_t *q, const void *owner)
{
    if (!q || !owner)
        return;
    pthread_mutex_lock(&q->mu);
    for (job_t *j = q->todo; j; j = j->next)
        if (j->owner == owner)
            j->cancelled = 1;
    if (q->running && q->running->owner == owner)
        q->running->cancelled = 1;
    for (job_t *j = q->done; j; j = j->next)
        if (j->owner == owner)
            j->cancelled = 1;
    pthread_mutex_unlock(&q->mu);
}

size_t sess_q_pending(sess_q_t *q)
{
    return q ? __atomic_load_n(&q->pending, __ATOMIC_ACQUIRE) : 0;
}

void sess_q_drain(sess_q_t *q)
{
    if (!q)
        return;
    while (sess_q_pending(q)) {
        pthread_mutex_lock(&q->mu);
        while (q->todo || q->working)
            pthread_cond_wait(&q->cond, &q->mu);
        pthread_mutex_unlock(&q->mu);
        run_done(q); /* a done may queue more: wait for that too */
    }
}

void sess_q_close(sess_q_t *q)
{
    if (!q || q->closed)
        return;
    sess_q_drain(q);
    __atomic_store_n(&q->closed, 1, __ATOMIC_RELEASE);
    if (q->thread_on) {
        pthread_mutex_lock(&q->mu);
        q->stop = 1;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        q->thread_on = 0;
    }
    uv_close((uv_handle_t *)&q->wake, NULL);
}

void sess_q_free(sess_q_t *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
