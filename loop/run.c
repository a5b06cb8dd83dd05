/*
 * loop/run.c: asyncio.run. A fresh loop runs the main task; then the tasks
 * still pending are cancelled and waited for, open async generators are
 * closed, executor jobs in flight are waited for, and the loop is closed and
 * freed.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* Cancel every pending task and wait for all of them to finish. */
static void cancel_all_tasks(cio_loop_t *loop)
{
    size_t n = 0;
    cio__queue_t *q;
    /* Generators' bodies are left to cio_loop_shutdown_asyncgens(). */
    cio__queue_foreach(q, &loop->tasks)
    {
        if (cio_container_of(q, cio_task_t, link)->fn != cio__agen_body)
            n++;
    }
    if (n == 0)
        return;
    cio_future_t **futs = malloc(n * sizeof(*futs));
    if (!futs)
        return; /* closing the loop reports them instead */
    n = 0;
    cio__queue_foreach(q, &loop->tasks)
    {
        cio_task_t *t = cio_container_of(q, cio_task_t, link);
        if (t->fn == cio__agen_body)
            continue;
        futs[n++] = cio_future_ref(&t->fut);
        cio_task_cancel(t, NULL);
    }
    cio_gather_opts_t opts = {.return_exceptions = true};
    cio_future_t *all = cio_gather(loop, futs, n, &opts);
    if (all)
        cio_loop_run_until_complete(loop, all, NULL);
    /* A task that failed instead of being cancelled is worth a report. */
    for (size_t i = 0; i < n; i++) {
        int err = cio_future_done(futs[i]) ? cio_future_error(futs[i]) : 0;
        if (err != 0 && err != -ECANCELED) {
            cio_exception_context_t ctx;
            cio_exception_context_init(&ctx, "unhandled error during cio_run() shutdown");
            ctx.error = err;
            ctx.future = futs[i];
            ctx.task = cio_container_of(futs[i], cio_task_t, fut);
            cio_loop_call_exception_handler(loop, &ctx);
        }
        cio_future_unref(futs[i]);
    }
    cio_future_unref(all);
    free(futs);
}

int cio_run(cio_task_fn fn, void *arg, bool debug, void **result)
{
    if (!fn)
        return -EINVAL;
    if (cio__get_running())
        return CIO_EOTHERLOOP;
    cio_loop_t *loop = cio_new_event_loop();
    if (!loop)
        return -ENOMEM;
    cio_loop_set_debug(loop, debug);
    cio_set_event_loop(loop);
    int rc = -ENOMEM;
    cio_task_t *main_task = cio_loop_create_task(loop, fn, arg, NULL);
    if (main_task) {
        rc = cio_loop_run_until_complete(loop, cio_task_future(main_task), result);
        cio_task_unref(main_task);
    }
    cancel_all_tasks(loop);
    cio_future_t *agens = cio_loop_shutdown_asyncgens(loop);
    if (agens) {
        cio_loop_run_until_complete(loop, agens, NULL);
        cio_future_unref(agens);
    }
    cio_future_t *executor = cio_loop_shutdown_default_executor(loop);
    if (executor) {
        cio_loop_run_until_complete(loop, executor, NULL);
        cio_future_unref(executor);
    }
    cio_set_event_loop(NULL);
    cio_loop_free(loop);
    return rc;
}
