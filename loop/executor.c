/*
 * loop/executor.c: thread pools for run_in_executor. Pool threads only ever
 * touch a job record; the future it settles belongs to the submitting loop
 * and is touched on that loop's thread only: the job's outcome travels there
 * in a mailbox message. A closing loop takes back its queued jobs and orphans
 * its running ones (their outcome is dropped when they end), so a pool never
 * posts to a loop that is gone and nothing leaks.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_ORPHANED };

typedef struct job {
    cio__queue_t link; /* in the executor's queue or running list */
    cio_executor_t *ex;
    cio_loop_t *loop;
    struct exec_future *fut; /* loop-side; NULL once orphaned */
    cio_task_fn fn;
    void *arg;
    int rc;
    void *result;
    enum job_state state;
} job_t;

/* The future of a job: cancelling it takes a queued job off the queue. */
typedef struct exec_future {
    struct cio_future_s fut;
    cio_executor_t *ex;
    job_t *job; /* while the job is queued; guarded by ex->mu */
} exec_future_t;

struct cio_executor_s {
    pthread_mutex_t mu;
    pthread_cond_t work;
    cio__queue_t queue;
    cio__queue_t running;
    pthread_t *threads;
    size_t max_threads;
    size_t nthreads;
    size_t idle;
    bool shutdown;
    cio__queue_t link; /* in the list of every executor */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static cio__queue_t registry = {&registry, &registry};
static cio_executor_t *default_executor;

/* ---- the pool side ----------------------------------------------------------- */

/* On the loop thread: one job of @p loop is over, one way or another. */
static void job_gone(cio_loop_t *loop)
{
    if (--loop->executor_jobs == 0 && loop->executor_idle) {
        cio_future_t *idle = loop->executor_idle;
        loop->executor_idle = NULL;
        cio_future_set_result(idle, NULL);
        cio_future_unref(idle);
    }
}

/* On the loop thread: settle the future with the job's outcome. */
static int job_complete(void *arg)
{
    job_t *j = arg;
    exec_future_t *f = j->fut;
    if (!cio_future_done(&f->fut)) {
        if (j->rc == 0)
            cio__future_set_result(&f->fut, j->result);
        else if (j->rc == -ECANCELED)
            cio__future_set_cancelled(&f->fut, NULL);
        else
            cio__future_set_error(&f->fut, j->rc < 0 ? j->rc : -EINVAL, NULL);
    }
    job_gone(j->loop);
    cio_future_unref(&f->fut);
    free(j);
    return 0;
}

/* On the loop thread, when the loop closed before the outcome ran. */
static int job_release(void *arg)
{
    job_t *j = arg;
    job_gone(j->loop);
    cio_future_unref(&j->fut->fut);
    free(j);
    return 0;
}

static void *worker(void *arg)
{
    cio_executor_t *ex = arg;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (cio__queue_empty(&ex->queue) && !ex->shutdown) {
            ex->idle++;
            pthread_cond_wait(&ex->work, &ex->mu);
            ex->idle--;
        }
        if (cio__queue_empty(&ex->queue))
            break; /* shut down and nothing left */
        job_t *j = cio_container_of(ex->queue.next, job_t, link);
        cio__queue_remove(&j->link);
        cio__queue_insert_tail(&ex->running, &j->link);
        j->state = JOB_RUNNING;
        j->fut->job = NULL;
        pthread_mutex_unlock(&ex->mu);
        j->rc = j->fn(j->arg, &j->result);
        pthread_mutex_lock(&ex->mu);
        cio__queue_remove(&j->link);
        /* Posted under the lock: a closing loop orphans its jobs under it. */
        if (j->state == JOB_ORPHANED ||
            cio__call_soon_threadsafe_owned(j->loop, job_complete, job_release, j) < 0)
            free(j);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

/* A thread for the new job if none is idle and the pool may grow. */
static void maybe_spawn(cio_executor_t *ex)
{
    if (ex->idle > 0 || ex->nthreads >= ex->max_threads)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&ex->threads[ex->nthreads], NULL, worker, ex) == 0)
        ex->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

cio_executor_t *cio_executor_new(size_t threads)
{
    if (threads == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (size_t)(ncpu > 0 ? ncpu : 1) + 4;
        if (threads > 32)
            threads = 32;
    }
    cio_executor_t *ex = calloc(1, sizeof(*ex));
    if (!ex || !(ex->threads = calloc(threads, sizeof(*ex->threads)))) {
        free(ex);
        return NULL;
    }
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->work, NULL);
    cio__queue_init(&ex->queue);
    cio__queue_init(&ex->running);
    ex->max_threads = threads;
    pthread_mutex_lock(&registry_mu);
    cio__queue_insert_tail(&registry, &ex->link);
    pthread_mutex_unlock(&registry_mu);
    return ex;
}

/* A queued job will not run: its future is cancelled on its loop. */
static void drop_queued(job_t *j)
{
    j->rc = -ECANCELED;
    if (cio__call_soon_threadsafe_owned(j->loop, job_complete, job_release, j) < 0)
        free(j); /* its loop is closing, and takes the future back itself */
}

void cio_executor_shutdown(cio_executor_t *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->mu);
    ex->shutdown = true;
    while (cancel_futures && !cio__queue_empty(&ex->queue)) {
        job_t *j = cio_container_of(ex->queue.next, job_t, link);
        cio__queue_remove(&j->link);
        j->fut->job = NULL;
        drop_queued(j);
    }
    pthread_cond_broadcast(&ex->work);
    size_t n = ex->nthreads;
    pthread_mutex_unlock(&ex->mu);
    for (size_t i = 0; wait && i < n; i++)
        pthread_join(ex->threads[i], NULL);
    if (wait) {
        pthread_mutex_lock(&ex->mu);
        ex->nthreads = 0;
        pthread_mutex_unlock(&ex->mu);
    }
}

void cio_executor_free(cio_executor_t *ex)
{
    if (!ex)
        return;
    cio_executor_shutdown(ex, true, true);
    pthread_mutex_lock(&registry_mu);
    cio__queue_remove(&ex->link);
    pthread_mutex_unlock(&registry_mu);
    pthread_cond_destroy(&ex->work);
    pthread_mutex_destroy(&ex->mu);
    free(ex->threads);
    free(ex);
}

/* ---- the loop side ----------------------------------------------------------- */

static bool exec_cancel(cio_future_t *fut, const char *message)
{
    exec_future_t *f = cio_container_of(fut, exec_future_t, fut);
    if (cio_future_done(fut))
        return false;
    /* Not started: it never will. A running job finishes; its outcome is dropped. */
    pthread_mutex_lock(&f->ex->mu);
    job_t *j = f->job;
    if (j) {
        cio__queue_remove(&j->link);
        f->job = NULL;
        free(j);
    }
    pthread_mutex_unlock(&f->ex->mu);
    if (j) {
        job_gone(fut->loop);
        cio_future_unref(fut); /* the job's reference */
    }
    return cio__future_set_cancelled(fut, message);
}

static void exec_destroy(cio_future_t *fut)
{
    free(cio_container_of(fut, exec_future_t, fut));
}

static const cio__future_ops_t exec_ops = {
    .cancel = exec_cancel,
    .destroy = exec_destroy,
    .readonly = true,
};

static cio_executor_t *get_default(void)
{
    pthread_mutex_lock(&registry_mu);
    bool create = !default_executor;
    pthread_mutex_unlock(&registry_mu);
    cio_executor_t *ex = create ? cio_executor_new(0) : NULL;
    pthread_mutex_lock(&registry_mu);
    if (!default_executor)
        default_executor = ex, ex = NULL;
    cio_executor_t *d = default_executor;
    pthread_mutex_unlock(&registry_mu);
    cio_executor_free(ex); /* another thread made it first */
    return d;
}

cio_future_t *cio_loop_run_in_executor(cio_loop_t *loop, cio_executor_t *executor, cio_task_fn fn,
                                       void *arg)
{
    if (cio__schedule_check(loop, (const void *)fn) < 0)
        return NULL;
    if (!executor && loop->executor_shutdown) {
        cio_future_t *fut = cio_loop_create_future(loop);
        if (fut)
            cio_future_set_error(fut, CIO_ECLOSED, "Executor shutdown has been called");
        return fut;
    }
    cio_executor_t *ex = executor                 ? executor
                         : loop->default_executor ? loop->default_executor
                                                  : get_default();
    exec_future_t *f = calloc(1, sizeof(*f));
    job_t *j = calloc(1, sizeof(*j));
    if (!ex || !f || !j) {
        free(f);
        free(j);
        return NULL;
    }
    cio__future_init(&f->fut, loop, &exec_ops);
    f->ex = ex;
    *j = (job_t){.ex = ex, .loop = loop, .fut = f, .fn = fn, .arg = arg};
    pthread_mutex_lock(&ex->mu);
    if (ex->shutdown) {
        pthread_mutex_unlock(&ex->mu);
        free(j);
        cio__future_set_error(&f->fut, CIO_ECLOSED, "cannot schedule new jobs after shutdown");
        return &f->fut;
    }
    cio_future_ref(&f->fut); /* the job's reference, dropped on the loop thread */
    loop->executor_jobs++;
    f->job = j;
    cio__queue_insert_tail(&ex->queue, &j->link);
    maybe_spawn(ex);
    pthread_cond_signal(&ex->work);
    pthread_mutex_unlock(&ex->mu);
    return &f->fut;
}

void cio_loop_set_default_executor(cio_loop_t *loop, cio_executor_t *executor)
{
    loop->default_executor = executor;
}

cio_future_t *cio_loop_shutdown_default_executor(cio_loop_t *loop)
{
    if (!loop || atomic_load(&loop->closed))
        return NULL;
    loop->executor_shutdown = true;
    if (loop->executor_jobs == 0) {
        cio_future_t *done = cio_loop_create_future(loop);
        if (done)
            cio_future_set_result(done, NULL);
        return done;
    }
    if (!loop->executor_idle && !(loop->executor_idle = cio_loop_create_future(loop)))
        return NULL;
    return cio_future_ref(loop->executor_idle);
}

/* Take back @p loop's jobs from one pool: queued ones go, running ones are orphaned. */
static void forget_in(cio_executor_t *ex, cio_loop_t *loop)
{
    pthread_mutex_lock(&ex->mu);
    cio__queue_t *q = ex->queue.next;
    while (q != &ex->queue) {
        job_t *j = cio_container_of(q, job_t, link);
        q = q->next;
        if (j->loop != loop)
            continue;
        cio__queue_remove(&j->link);
        job_gone(loop);
        cio_future_unref(&j->fut->fut);
        free(j);
    }
    cio__queue_foreach(q, &ex->running)
    {
        job_t *j = cio_container_of(q, job_t, link);
        if (j->loop == loop && j->state == JOB_RUNNING) {
            j->state = JOB_ORPHANED;
            job_gone(loop);
            cio_future_unref(&j->fut->fut);
            j->fut = NULL;
        }
    }
    pthread_mutex_unlock(&ex->mu);
}

/* The loop is closing: no pool may post to it afterwards (see the file head). */
void cio__executors_forget_loop(cio_loop_t *loop)
{
    pthread_mutex_lock(&registry_mu);
    cio__queue_t *q;
    cio__queue_foreach(q, &registry) forget_in(cio_container_of(q, cio_executor_t, link), loop);
    pthread_mutex_unlock(&registry_mu);
}
