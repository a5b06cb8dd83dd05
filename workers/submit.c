/*
 * workers/submit.c: running a function on a given worker and getting its
 * outcome back on the caller's loop. Both trips go through mailboxes: the
 * job starts as a task on the worker's loop, and its outcome settles the
 * caller's future on the caller's thread.
 *
 * The caller keeps its jobs out in its home (home.c) until their outcomes are
 * back. If its loop closes first, the home's close hook cancels their futures
 * and lets go of them, on the closing thread, the only one that may touch
 * them; the outcome that comes back later finds the caller's port closed, or
 * is released undelivered, and frees what is left of the job. While a job is
 * away, each side holds one of its two @owners and the last to let go frees
 * it (job_drop()). A job the worker's loop drops unrun, its message or its
 * task, still sends its outcome home: CIO_ECLOSED.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

/* submit.c's part of a calling loop's home: the jobs not back yet. */
typedef struct jobs {
    cio__home_part_t part;
    cio__queue_t away;
} jobs_t;

typedef struct job {
    /* The caller's thread's only. */
    cio__queue_t link; /* in its home's away list until it is back or orphaned */
    cio_future_t *fut; /* a reference */
    /* The worker's while the job is away, the caller's once it is back. */
    cio__mbox_port_t *caller; /* a reference: where the outcome goes */
    cio_task_fn fn;
    void *arg;
    int rc;
    void *result;
    struct cio__mbox_node *reply; /* taken at submission: the outcome always gets home */
    _Atomic int owners;           /* while away: the caller's home and the job's messages */
} job_t;

/* Free a job nobody else holds; any thread. Its future was let go of already; its
 * result, if it never got home, was never the library's to free. */
static void job_free(job_t *j)
{
    cio__mailbox_node_unreserve(j->reply);
    cio__mailbox_port_unref(j->caller);
    free(j);
}

/*
 * One side of a job that is away lets go of it: the caller's closing home,
 * or whoever holds the outcome that cannot reach it. Acquire-release, so the
 * second frees it after the first side's last use of it.
 */
static void job_drop(job_t *j)
{
    if (atomic_fetch_sub_explicit(&j->owners, 1, memory_order_acq_rel) == 1)
        job_free(j);
}

/* On the caller's thread, its loop running: settle the future. */
static int finish(void *arg)
{
    job_t *j = arg;
    cio__queue_remove(&j->link);
    if (!cio_future_done(j->fut)) {
        if (j->rc == 0)
            cio_future_set_result(j->fut, j->result);
        else if (j->rc == -ECANCELED)
            cio_future_cancel(j->fut, NULL);
        else
            cio_future_set_error(j->fut, j->rc, NULL);
    }
    cio_future_unref(j->fut);
    /* Both halves are here, the worker's brought by the message: its post (a
     * release) and this loop's drain (an acquire) order the worker's writes first. */
    job_free(j);
    return 0;
}

/* On the thread closing the caller's loop, with the outcome undelivered: the home
 * has let go of the future. */
static int lost(void *arg)
{
    job_drop(arg);
    return 0;
}

/* Send the outcome home; a caller's loop that has closed takes none. */
static void send_back(job_t *j)
{
    struct cio__mbox_node *n = j->reply;
    j->reply = NULL; /* the message's once posted: the caller may free j at once */
    if (cio__mailbox_port_post(j->caller, n, finish, lost, j) == 0)
        return;
    j->reply = n;
    job_drop(j);
}

/* The task on the worker. */
static int job_task(void *arg, void **result)
{
    job_t *j = arg;
    j->rc = j->fn(j->arg, &j->result);
    send_back(j);
    return 0;
}

/* The task will never run (the worker's loop closed first), or could not be made. */
static void job_unrun(void *arg)
{
    send_back(arg);
}

static int start(void *arg)
{
    job_t *j = arg;
    j->rc = -ENOMEM; /* the outcome if no task can be made: job_unrun() runs at once */
    cio_future_t *t = cio__spawn(cio_get_running_loop(), job_task, j, job_unrun);
    if (t) {
        j->rc = CIO_ECLOSED; /* if the loop closes before the task's first step */
        cio_future_unref(t);
    }
    return 0;
}

/* The worker's loop closed before the job started. */
static int not_started(void *arg)
{
    job_t *j = arg;
    j->rc = CIO_ECLOSED;
    send_back(j);
    return 0;
}

/*
 * The calling loop closes (on the closing thread, once no outcome can get
 * into its mailbox): the futures of its jobs away end cancelled and are let
 * go of; each job is left to its worker, which frees it when its outcome
 * finds the loop closed (send_back() or lost()).
 */
static void jobs_closed(cio__home_part_t *part)
{
    jobs_t *js = cio_container_of(part, jobs_t, part);
    while (!cio__queue_empty(&js->away)) {
        job_t *j = cio_container_of(js->away.next, job_t, link);
        cio__queue_remove(&j->link);
        cio_future_cancel(j->fut, NULL);
        cio_future_unref(j->fut);
        job_drop(j);
    }
    free(js);
}

/* The calling loop's jobs, made on first use; NULL when out of memory. */
static jobs_t *jobs_get(cio_loop_t *loop)
{
    cio__home_t *h = cio__home_get(loop);
    if (!h)
        return NULL;
    if (h->part[CIO__HOME_SUBMIT])
        return cio_container_of(h->part[CIO__HOME_SUBMIT], jobs_t, part);
    jobs_t *js = calloc(1, sizeof(*js));
    if (!js)
        return NULL;
    cio__queue_init(&js->away);
    cio__home_add(h, CIO__HOME_SUBMIT, &js->part, jobs_closed);
    return js;
}

/* A job for @p fn(@p arg), away in @p js, with a reference to @p fut; NULL when out of memory. */
static job_t *job_new(jobs_t *js, cio_future_t *fut, cio_task_fn fn, void *arg)
{
    job_t *j = calloc(1, sizeof(*j));
    struct cio__mbox_node *reply = cio__mailbox_node_reserve();
    if (!j || !reply) {
        free(j);
        cio__mailbox_node_unreserve(reply);
        return NULL;
    }
    cio__mailbox_port_ref(js->part.home->port);
    *j = (job_t){.caller = js->part.home->port,
                 .fut = cio_future_ref(fut),
                 .fn = fn,
                 .arg = arg,
                 .reply = reply};
    /* Not atomic: posting the job publishes it to the worker. */
    atomic_init(&j->owners, 2);
    cio__queue_insert_tail(&js->away, &j->link);
    return j;
}

cio_future_t *cio_workers_submit(cio_workers_t *w, size_t i, cio_task_fn fn, void *arg)
{
    cio_loop_t *caller = cio_get_running_loop();
    cio_loop_t *target = w ? cio_workers_loop(w, i) : NULL;
    jobs_t *js = caller && target && fn ? jobs_get(caller) : NULL;
    cio_future_t *fut = js ? cio_loop_create_future(caller) : NULL;
    job_t *j = fut ? job_new(js, fut, fn, arg) : NULL;
    if (!j) {
        cio_future_unref(fut);
        return NULL;
    }
    int rc = cio__call_soon_threadsafe_owned(target, start, not_started, j);
    if (rc < 0) {
        /* Never away: the job is all the caller's. */
        cio__queue_remove(&j->link);
        cio_future_set_error(fut, rc, NULL);
        cio_future_unref(j->fut);
        job_free(j);
    }
    return fut;
}

cio_future_t *cio_workers_broadcast(cio_workers_t *w, cio_task_fn fn, void *arg)
{
    cio_loop_t *caller = cio_get_running_loop();
    size_t n = w ? cio_workers_count(w) : 0;
    if (!caller || n == 0 || !fn)
        return NULL;
    cio_future_t **futs = calloc(n, sizeof(*futs));
    if (!futs)
        return NULL;
    size_t made = 0;
    while (made < n && (futs[made] = cio_workers_submit(w, made, fn, arg)))
        made++;
    cio_future_t *all = made == n ? cio_gather(caller, futs, n, NULL) : NULL;
    for (size_t i = 0; i < made; i++)
        cio_future_unref(futs[i]);
    free(futs);
    return all;
}
