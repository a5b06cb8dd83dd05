/*
 * workers/submit.c: running a function on a given worker and getting its
 * outcome back on the caller's loop. Both trips go through mailboxes: the
 * job starts as a task on the worker's loop, and its outcome settles the
 * caller's future on the caller's thread.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct job {
    cio__mbox_port_t *caller; /* the caller's mailbox, which outlives its loop */
    cio_future_t *fut;        /* the caller's; touched on the caller's thread only */
    cio_task_fn fn;
    void *arg;
    int rc;
    void *result;
    struct cio__mbox_node *reply; /* taken at submission: the outcome always gets home */
} job_t;

/* On the caller's thread: settle the future. */
static int finish(void *arg)
{
    job_t *j = arg;
    if (!cio_future_done(j->fut)) {
        if (j->rc == 0)
            cio_future_set_result(j->fut, j->result);
        else if (j->rc == -ECANCELED)
            cio_future_cancel(j->fut, NULL);
        else
            cio_future_set_error(j->fut, j->rc, NULL);
    }
    cio_future_unref(j->fut);
    cio__mailbox_port_unref(j->caller);
    free(j);
    return 0;
}

/* On the caller's thread, when its loop closed before the outcome arrived. */
static int release(void *arg)
{
    job_t *j = arg;
    cio_future_unref(j->fut);
    cio__mailbox_port_unref(j->caller);
    free(j);
    return 0;
}

/*
 * Send the outcome home. A caller loop closed already (and perhaps freed) is
 * told through its port, never touched: its future, which only that loop's
 * thread may release, is left to it.
 */
static void send_back(job_t *j)
{
    if (cio__mailbox_port_post(j->caller, j->reply, finish, release, j) < 0) {
        cio__mailbox_node_unreserve(j->reply);
        cio__mailbox_port_unref(j->caller);
        free(j);
    }
}

/* The task on the worker. */
static int job_task(void *arg, void **result)
{
    job_t *j = arg;
    j->rc = j->fn(j->arg, &j->result);
    send_back(j);
    return 0;
}

static int start(void *arg)
{
    job_t *j = arg;
    cio_task_t *t = cio_task_new(cio_get_running_loop(), job_task, j, NULL);
    if (!t) {
        j->rc = -ENOMEM;
        send_back(j);
        return 0;
    }
    cio_task_unref(t);
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

cio_future_t *cio_workers_submit(cio_workers_t *w, size_t i, cio_task_fn fn, void *arg)
{
    cio_loop_t *caller = cio_get_running_loop();
    cio_loop_t *target = w ? cio_workers_loop(w, i) : NULL;
    if (!caller || !target || !fn)
        return NULL;
    job_t *j = calloc(1, sizeof(*j));
    struct cio__mbox_node *reply = cio__mailbox_node_reserve();
    cio_future_t *fut = cio_loop_create_future(caller);
    cio__mbox_port_t *port = NULL;
    if (!j || !reply || !fut || cio__mailbox_port(caller, &port) < 0) {
        free(j);
        cio__mailbox_node_unreserve(reply);
        cio_future_unref(fut);
        return NULL;
    }
    *j = (job_t){.caller = port, .fut = cio_future_ref(fut), .fn = fn, .arg = arg, .reply = reply};
    int rc = cio__call_soon_threadsafe_owned(target, start, not_started, j);
    if (rc < 0) {
        cio_future_set_error(fut, rc, NULL);
        cio_future_unref(j->fut);
        cio__mailbox_node_unreserve(reply);
        cio__mailbox_port_unref(port);
        free(j);
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
