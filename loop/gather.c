/*
 * loop/gather.c: asyncio.gather. A gathering future collects its children's
 * outcomes in their order; cancelling it cancels the children.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct gather {
    struct cio_future_s fut; /* first: the gathering future */
    bool return_exceptions;
    bool cancel_requested;
    size_t n;
    size_t ndone;
    cio_future_t **children; /* referenced until each is done */
    cio_outcome_t *outcomes;
} gather_t;

static gather_t *gather_of(cio_future_t *fut)
{
    return cio_container_of(fut, gather_t, fut);
}

static bool gather_cancel(cio_future_t *fut, const char *message)
{
    gather_t *g = gather_of(fut);
    if (cio_future_done(fut))
        return false;
    bool any = false;
    for (size_t i = 0; i < g->n; i++) {
        if (g->children[i] && cio_future_cancel(g->children[i], message))
            any = true;
    }
    /* As asyncio: the gather ends cancelled once the children are done. */
    if (any)
        g->cancel_requested = true;
    return any;
}

static void gather_destroy(cio_future_t *fut)
{
    gather_t *g = gather_of(fut);
    for (size_t i = 0; i < g->n; i++)
        cio_future_unref(g->children[i]);
    free(g->children);
    free(g->outcomes);
    free(g);
}

static const cio__future_ops_t gather_ops = {
    .cancel = gather_cancel,
    .destroy = gather_destroy,
    .readonly = true,
};

/* A child is done: record its outcome; settle the gather when it is time. */
static int child_done(cio_future_t *child, void *arg)
{
    gather_t *g = arg;
    /* A future passed twice is registered twice: each call takes one slot. */
    size_t i = 0;
    while (i < g->n && g->children[i] != child)
        i++;
    assert(i < g->n);
    g->outcomes[i].error = cio_future_result(child, &g->outcomes[i].result);
    g->children[i] = NULL;
    cio_future_unref(child);
    g->ndone++;
    if (cio_future_done(&g->fut)) {
        /* Already failed: the rest only finish. */
    } else if (!g->return_exceptions && g->outcomes[i].error != 0) {
        if (g->outcomes[i].error == -ECANCELED)
            cio__future_set_cancelled(&g->fut, NULL);
        else
            cio__future_set_error(&g->fut, g->outcomes[i].error, cio_future_error_message(child));
    } else if (g->ndone == g->n) {
        if (g->cancel_requested)
            cio__future_set_cancelled(&g->fut, NULL);
        else
            cio__future_set_result(&g->fut, g->outcomes);
    }
    cio_future_unref(&g->fut); /* the reference this callback held */
    return 0;
}

cio_future_t *cio_gather(cio_loop_t *loop, cio_future_t *const *futs, size_t n,
                         const cio_gather_opts_t *opts)
{
    if (!loop || (n > 0 && !futs) || atomic_load(&loop->closed))
        return NULL;
    assert(!cio__wrong_thread(loop));
    for (size_t i = 0; i < n; i++) {
        if (!futs[i] || futs[i]->loop != loop)
            return NULL;
    }
    gather_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    cio__future_init(&g->fut, loop, &gather_ops);
    g->return_exceptions = opts && opts->return_exceptions;
    g->children = calloc(n ? n : 1, sizeof(*g->children));
    g->outcomes = calloc(n ? n : 1, sizeof(*g->outcomes));
    if (!g->children || !g->outcomes)
        goto err;
    g->n = n; /* gather_destroy() walks the children from here on */
    for (size_t i = 0; i < n; i++) {
        if (cio_future_add_done_callback(futs[i], child_done, g) < 0)
            goto err_registered;
        g->children[i] = cio_future_ref(futs[i]);
        cio_future_ref(&g->fut);
    }
    if (n == 0)
        cio__future_set_result(&g->fut, g->outcomes);
    return &g->fut;

err_registered:
    for (size_t i = 0; i < n && g->children[i]; i++) {
        cio_future_remove_done_callback(g->children[i], child_done, g);
        g->fut.refs--;
    }
err:
    cio_future_unref(&g->fut);
    return NULL;
}
