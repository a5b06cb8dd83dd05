/*
 * loop/wait_for.c: asyncio.wait_for. The returned future mirrors the inner
 * one; at the timeout the inner future is cancelled, and once it has finished
 * the outer one fails with -ETIMEDOUT (unless the inner one produced a result
 * after all, as in asyncio 3.11).
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

typedef struct wait_for {
    struct cio_future_s fut; /* first: the waiting future */
    cio_future_t *inner;     /* referenced until it is done */
    cio_handle_t timer;
    bool timed_out;
    bool cancel_requested;
} wait_for_t;

static wait_for_t *wait_for_of(cio_future_t *fut)
{
    return cio_container_of(fut, wait_for_t, fut);
}

static bool wait_for_cancel(cio_future_t *fut, const char *message)
{
    wait_for_t *w = wait_for_of(fut);
    if (cio_future_done(fut) || !w->inner)
        return false;
    w->cancel_requested = true;
    cio_handle_cancel(w->timer);
    cio_future_cancel(w->inner, message);
    return true;
}

static void wait_for_destroy(cio_future_t *fut)
{
    wait_for_t *w = wait_for_of(fut);
    cio_future_unref(w->inner);
    free(w);
}

static const cio__future_ops_t wait_for_ops = {
    .cancel = wait_for_cancel,
    .destroy = wait_for_destroy,
    .readonly = true,
};

static int inner_done(cio_future_t *inner, void *arg)
{
    wait_for_t *w = arg;
    cio_handle_cancel(w->timer);
    if (w->cancel_requested)
        cio__future_set_cancelled(&w->fut, cio_future_error_message(inner));
    else if (w->timed_out && cio_future_cancelled(inner))
        cio__future_set_error(&w->fut, -ETIMEDOUT, "timed out");
    else
        cio__future_copy_outcome(&w->fut, inner);
    cio_future_unref(&w->fut); /* the reference this callback held */
    return 0;
}

static int on_timeout(void *arg)
{
    wait_for_t *w = arg;
    w->timed_out = true;
    cio_future_cancel(w->inner, NULL);
    return 0;
}

cio_future_t *cio_wait_for(cio_future_t *fut, double timeout)
{
    if (!fut || isnan(timeout))
        return NULL;
    cio_loop_t *loop = fut->loop;
    if (atomic_load(&loop->closed))
        return NULL;
    assert(!cio__wrong_thread(loop));
    wait_for_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    cio__future_init(&w->fut, loop, &wait_for_ops);
    w->inner = cio_future_ref(fut);
    if (cio_future_add_done_callback(fut, inner_done, w) < 0)
        goto err;
    cio_future_ref(&w->fut);
    if (timeout <= 0) {
        /* Already over: a done future gives its outcome, another is cancelled. */
        if (!cio_future_done(fut))
            on_timeout(w);
    } else if (!isinf(timeout) &&
               cio_loop_call_later(loop, timeout, on_timeout, w, &w->timer) < 0) {
        cio_future_remove_done_callback(fut, inner_done, w);
        w->fut.refs--;
        goto err;
    }
    return &w->fut;

err:
    cio_future_unref(&w->fut);
    return NULL;
}
