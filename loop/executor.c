/*
 * loop/executor.c: thread pools for run_in_executor, and the same pool code
 * behind the resolver's private pool. Pool threads only ever touch a job
 * record; the future it settles belongs to the submitting loop and is touched
 * on that loop's thread only: the job's outcome travels there in a mailbox
 * message that carries its destructor, in a node reserved when the job was
 * submitted, so that running out of memory cannot lose it. A closing loop
 * orphans its jobs (the rule is in coreio/executor.h): queued ones are
 * dropped, running ones run to their end and free their outcome on the pool
 * thread, and their futures are cancelled. So a pool never posts to a loop
 * that is gone, closing never waits for a job, and nothing leaks.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_ORPHANED };

typedef struct job {
    cio__queue_t link; /* in the executor's queue or running list, or a local list */
    cio_executor_t *ex;
    cio_loop_t *loop;
    struct exec_future *fut; /* loop-side; NULL once orphaned */
    cio__job_spec_t spec;
    cio__mbox_node_t *node; /* reserved at submission: posting the outcome cannot fail */
    bool ran;               /* fn has returned and the argument is freed */
    int rc;                 /* fn's return value */
    void *result;           /* fn's result while no future owns it */
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

/* ---- jobs ------------------------------------------------------------------- */

/* Free a job and what it still owns: its argument if it never ran, its result. */
static void job_free(job_t *j)
{
    if (!j->ran && j->spec.free_arg)
        j->spec.free_arg(j->spec.arg);
    if (j->result && j->spec.free_result)
        j->spec.free_result(j->result);
    cio__mailbox_node_unreserve(j->node);
    free(j);
}

/* Free every job of a local list, outside the pool's lock: destructors are user code. */
static void job_free_list(cio__queue_t *list)
{
    while (!cio__queue_empty(list)) {
        job_t *j = cio_container_of(list->next, job_t, link);
        cio__queue_remove(&j->link);
        job_free(j);
    }
}

/* On the loop thread: one job of @p loop is over, one way or another. */
static void job_gone(job_t *j)
{
    cio_loop_t *loop = j->loop;
    if (j->spec.uncounted)
        return;
    if (--loop->executor_jobs == 0 && loop->executor_idle) {
        cio_future_t *idle = loop->executor_idle;
        loop->executor_idle = NULL;
        cio_future_set_result(idle, NULL);
        cio_future_unref(idle);
    }
}

/* On the loop thread: settle the pending future @p fut with the job's outcome. */
static void job_settle(job_t *j, cio_future_t *fut)
{
    if (j->rc == 0 && j->result && j->spec.free_result) {
        cio__future_set_owned_result(fut, j->result, j->spec.free_result);
        j->result = NULL; /* the future's now */
    } else if (j->rc == 0) {
        cio__future_set_result(fut, j->result);
        j->result = NULL; /* not owned by anyone */
    } else if (j->rc == -ECANCELED) {
        cio__future_set_cancelled(fut, NULL);
    } else {
        int err = j->rc < 0 ? j->rc : -EINVAL;
        cio__future_set_error(fut, err, j->spec.describe_errors ? cio_strerror(err) : NULL);
    }
}

/* On the loop thread: the job's outcome arrived. A done future drops it. */
static int job_complete(void *arg)
{
    job_t *j = arg;
    cio_future_t *fut = &j->fut->fut;
    if (!cio_future_done(fut))
        job_settle(j, fut);
    job_gone(j);
    cio_future_unref(fut);
    job_free(j);
    return 0;
}

/* On the loop thread, when the loop closed before the outcome ran: orphaned too. */
static int job_release(void *arg)
{
    job_t *j = arg;
    cio__future_set_cancelled(&j->fut->fut, NULL);
    job_gone(j);
    cio_future_unref(&j->fut->fut);
    job_free(j);
    return 0;
}

/* ---- the pool side ----------------------------------------------------------- */

/* Under ex->mu: send the job's outcome to its loop in the node reserved for it. */
static int post(job_t *j)
{
    cio__mbox_node_t *n = j->node;
    j->node = NULL; /* the message's now: the loop may free the job at once */
    int rc = cio__mailbox_post_reserved(j->loop, n, job_complete, job_release, j);
    if (rc < 0)
        j->node = n;
    return rc;
}

/* Under ex->mu: take the next queued job and mark it running. */
static job_t *job_start(cio_executor_t *ex)
{
    job_t *j = cio_container_of(ex->queue.next, job_t, link);
    cio__queue_remove(&j->link);
    cio__queue_insert_tail(&ex->running, &j->link);
    j->state = JOB_RUNNING;
    j->fut->job = NULL;
    return j;
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
        job_t *j = job_start(ex);
        pthread_mutex_unlock(&ex->mu);
        j->rc = j->spec.fn(j->spec.arg, &j->result);
        if (j->spec.free_arg)
            j->spec.free_arg(j->spec.arg);
        j->ran = true;
        pthread_mutex_lock(&ex->mu);
        cio__queue_remove(&j->link);
        /* Posted under the lock: a closing loop orphans its jobs under it. */
        bool drop = j->state == JOB_ORPHANED || post(j) < 0;
        if (drop) {
            pthread_mutex_unlock(&ex->mu);
            job_free(j); /* the answer goes with its destructor */
            pthread_mutex_lock(&ex->mu);
        }
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

/*
 * Under ex->mu: a queued job will not run; its future is cancelled on its
 * loop. A job that cannot be posted (its loop closed) goes to @p dropped.
 */
static void drop_queued(job_t *j, cio__queue_t *dropped)
{
    cio__queue_remove(&j->link);
    j->fut->job = NULL;
    j->rc = -ECANCELED;
    if (post(j) < 0)
        cio__queue_insert_tail(dropped, &j->link);
}

void cio_executor_shutdown(cio_executor_t *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return;
    cio__queue_t dropped;
    cio__queue_init(&dropped);
    pthread_mutex_lock(&ex->mu);
    ex->shutdown = true;
    while (cancel_futures && !cio__queue_empty(&ex->queue))
        drop_queued(cio_container_of(ex->queue.next, job_t, link), &dropped);
    pthread_cond_broadcast(&ex->work);
    size_t n = ex->nthreads;
    pthread_mutex_unlock(&ex->mu);
    job_free_list(&dropped);
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
    }
    pthread_mutex_unlock(&f->ex->mu);
    if (j) {
        job_gone(j);
        cio_future_unref(fut); /* the job's reference */
        job_free(j);
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

/* A job that will not run settles its new future with @p err at once. */
static cio_future_t *refuse(exec_future_t *f, job_t *j, int err, const char *message)
{
    job_free(j);
    cio__future_set_error(&f->fut, err, message);
    return &f->fut;
}

/* Queue @p j on @p ex, with a pool thread to run it. */
static cio_future_t *enqueue(cio_executor_t *ex, exec_future_t *f, job_t *j)
{
    pthread_mutex_lock(&ex->mu);
    if (ex->shutdown) {
        pthread_mutex_unlock(&ex->mu);
        return refuse(f, j, CIO_ECLOSED, "cannot schedule new jobs after shutdown");
    }
    maybe_spawn(ex);
    if (ex->nthreads == 0) {
        pthread_mutex_unlock(&ex->mu);
        return refuse(f, j, -EAGAIN, "cannot start a pool thread");
    }
    cio_future_ref(&f->fut); /* the job's reference, dropped on the loop thread */
    if (!j->spec.uncounted)
        j->loop->executor_jobs++;
    f->job = j;
    cio__queue_insert_tail(&ex->queue, &j->link);
    pthread_cond_signal(&ex->work);
    pthread_mutex_unlock(&ex->mu);
    return &f->fut;
}

/*
 * Run @p spec on @p ex for @p loop, on the loop's thread. Its argument is
 * freed whatever happens: NULL (closed loop, out of memory) frees it at once.
 */
cio_future_t *cio__executor_submit(cio_loop_t *loop, cio_executor_t *ex,
                                   const cio__job_spec_t *spec)
{
    exec_future_t *f = NULL;
    job_t *j = atomic_load(&loop->closed) ? NULL : calloc(1, sizeof(*j));
    if (j)
        *j = (job_t){.ex = ex, .loop = loop, .spec = *spec, .node = cio__mailbox_node_reserve()};
    if (!j || !j->node || !ex || !(f = calloc(1, sizeof(*f)))) {
        if (j)
            job_free(j);
        else if (spec->free_arg)
            spec->free_arg(spec->arg);
        return NULL;
    }
    cio__future_init(&f->fut, loop, &exec_ops);
    f->ex = ex;
    j->fut = f;
    return enqueue(ex, f, j);
}

cio_future_t *cio_loop_run_in_executor_owned(cio_loop_t *loop, cio_executor_t *executor,
                                             cio_task_fn fn, void *arg, void (*free_arg)(void *),
                                             void (*free_result)(void *))
{
    cio__job_spec_t spec = {.fn = fn, .arg = arg, .free_arg = free_arg, .free_result = free_result};
    if (!fn || cio__schedule_check(loop, (const void *)fn) < 0) {
        if (free_arg)
            free_arg(arg);
        return NULL;
    }
    if (!executor && loop->executor_shutdown) {
        cio_future_t *fut = cio_loop_create_future(loop);
        if (fut)
            cio_future_set_error(fut, CIO_ECLOSED, "Executor shutdown has been called");
        if (free_arg)
            free_arg(arg);
        return fut;
    }
    cio_executor_t *ex = executor                 ? executor
                         : loop->default_executor ? loop->default_executor
                                                  : get_default();
    return cio__executor_submit(loop, ex, &spec);
}

cio_future_t *cio_loop_run_in_executor(cio_loop_t *loop, cio_executor_t *executor, cio_task_fn fn,
                                       void *arg)
{
    return cio_loop_run_in_executor_owned(loop, executor, fn, arg, NULL, NULL);
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

/* Under ex->mu, on the closing loop's thread: the job's future ends cancelled. */
static void orphan_future(job_t *j)
{
    exec_future_t *f = j->fut;
    f->job = NULL;
    j->fut = NULL;
    cio__future_set_cancelled(&f->fut, NULL); /* no callback can run on a closed loop */
    job_gone(j);
    cio_future_unref(&f->fut); /* the job's reference */
}

/* Orphan @p loop's jobs on one pool: queued ones go to @p dropped, running ones run on. */
static void forget_in(cio_executor_t *ex, cio_loop_t *loop, cio__queue_t *dropped)
{
    pthread_mutex_lock(&ex->mu);
    cio__queue_t *q = ex->queue.next;
    while (q != &ex->queue) {
        job_t *j = cio_container_of(q, job_t, link);
        q = q->next;
        if (j->loop != loop)
            continue;
        cio__queue_remove(&j->link);
        orphan_future(j);
        cio__queue_insert_tail(dropped, &j->link);
    }
    cio__queue_foreach(q, &ex->running)
    {
        job_t *j = cio_container_of(q, job_t, link);
        if (j->loop == loop && j->state == JOB_RUNNING) {
            j->state = JOB_ORPHANED;
            orphan_future(j);
        }
    }
    pthread_mutex_unlock(&ex->mu);
}

/* The loop is closing: no pool may post to it afterwards (see the file head). */
void cio__executors_forget_loop(cio_loop_t *loop)
{
    cio__queue_t dropped;
    cio__queue_init(&dropped);
    pthread_mutex_lock(&registry_mu);
    cio__queue_t *q;
    cio__queue_foreach(q, &registry)
        forget_in(cio_container_of(q, cio_executor_t, link), loop, &dropped);
    pthread_mutex_unlock(&registry_mu);
    job_free_list(&dropped);
}
