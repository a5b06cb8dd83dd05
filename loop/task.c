/*
 * loop/task.c: tasks, asyncio's Task in C. A task's function runs on a fiber
 * of its own. The loop enters it from a scheduled step callback; the task
 * leaves by awaiting a pending future (the future's done callback resumes it)
 * or by returning. Cancellation follows Task.cancel(): it cancels the future
 * being awaited, or marks the task so its next resumption reports -ECANCELED.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Atomic unsigned long task_counter; /* for "Task-N" names, as asyncio's */

static bool task_cancel_op(cio_future_t *fut, const char *message);
static void task_destroy(cio_future_t *fut);

static const cio__future_ops_t task_ops = {
    .cancel = task_cancel_op,
    .destroy = task_destroy,
    .readonly = true,
};

static cio_task_t *task_of(cio_future_t *fut)
{
    return cio_container_of(fut, cio_task_t, fut);
}

/* Runs on the task's own stack: the task's whole life. */
static void task_entry(void *arg)
{
    cio_task_t *t = arg;
    cio__fiber_started(&t->fiber);
    t->rc = t->fn(t->arg, &t->result);
    t->state = CIO__TASK_FINISHED;
    cio__fiber_switch(&t->fiber, &t->fut.loop->fiber, true);
    abort(); /* a finished task is never resumed */
}

/* Settle the task's future from its function's outcome; free its stack. */
static void task_finish(cio_task_t *t, bool cancelled)
{
    cio_loop_t *loop = t->fut.loop;
    if (t->state == CIO__TASK_CREATED && t->free_arg)
        t->free_arg(t->arg); /* the function that would have freed it never ran */
    if (cancelled || t->rc == -ECANCELED || (t->rc == 0 && t->must_cancel))
        cio__future_set_cancelled(&t->fut, t->cancel_message);
    else if (t->rc == 0)
        cio__future_set_result(&t->fut, t->result);
    else if (t->rc < 0)
        cio__future_set_error(&t->fut, t->rc, t->error_message);
    else
        cio__future_set_error(&t->fut, -EINVAL, "task function returned a positive value");
    t->must_cancel = false;
    t->state = CIO__TASK_FINISHED;
    cio__queue_remove(&t->link);
    if (t->stack.lo) {
        cio__fiber_destroy(&t->fiber);
        cio__stack_put(loop, &t->stack);
    }
    cio_future_unref(&t->fut); /* the task's reference to itself */
}

/* Switch into the task until it awaits or returns (loop stack only). */
static void task_resume(cio_task_t *t)
{
    cio_loop_t *loop = t->fut.loop;
    assert(!loop->current_task &&
           (t->state == CIO__TASK_CREATED || t->state == CIO__TASK_SUSPENDED));
    loop->current_task = t;
    t->state = CIO__TASK_RUNNING;
    cio__fiber_switch(&loop->fiber, &t->fiber, false);
    loop->current_task = NULL;
    if (t->state == CIO__TASK_FINISHED)
        task_finish(t, false);
}

/* Switch from the running task back to the loop (task stack only). */
static void task_suspend(cio_task_t *t)
{
    assert(t->state == CIO__TASK_RUNNING && t->fut.loop->current_task == t);
    t->state = CIO__TASK_SUSPENDED;
    cio__fiber_switch(&t->fiber, &t->fut.loop->fiber, false);
}

/* A step scheduled with call_soon: the first one, or a resumption after a yield. */
static int task_step(void *arg)
{
    cio_task_t *t = arg;
    if (t->state == CIO__TASK_CREATED && t->must_cancel)
        task_finish(t, true); /* cancelled before it started: never runs */
    else
        task_resume(t);
    return 0;
}

/* Done callback of the awaited future. */
static int task_wakeup(cio_future_t *fut, void *arg)
{
    cio_task_t *t = arg;
    if (t->waiter == fut && t->state == CIO__TASK_SUSPENDED)
        task_resume(t);
    return 0;
}

static int schedule_step(cio_task_t *t)
{
    cio__slot_t proto = {.fn.cb = task_step, .arg = t, .kind = CIO__SLOT_PLAIN};
    return cio__schedule(t->fut.loop, &proto, NULL);
}

cio_task_t *cio_task_new(cio_loop_t *loop, cio_task_fn fn, void *arg, const cio_task_opts_t *opts)
{
    if (cio__schedule_check(loop, (const void *)fn) < 0)
        return NULL;
    size_t size = cio__stack_size(opts ? opts->stack_size : 0);
    if (!size)
        return NULL;
    cio_task_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    cio__future_init(&t->fut, loop, &task_ops);
    t->fn = fn;
    t->arg = arg;
    t->state = CIO__TASK_CREATED;
    cio__queue_init(&t->link);
    /* A default name is only numbered now, and written out when asked for. */
    t->number = atomic_fetch_add_explicit(&task_counter, 1, memory_order_relaxed) + 1;
    if (opts && opts->name && !(t->name = strdup(opts->name)))
        goto err_task;
    if (cio__stack_get(loop, size, &t->stack) < 0)
        goto err_name;
    if (cio__fiber_init(&t->fiber, t->stack.lo, t->stack.size, task_entry, t) < 0)
        goto err_stack;
    if (schedule_step(t) < 0)
        goto err_fiber;
    /* One reference for the caller, one the task holds until it finishes. */
    t->fut.refs = 2;
    cio__queue_insert_tail(&loop->tasks, &t->link);
    return t;

err_fiber:
    cio__fiber_destroy(&t->fiber);
err_stack:
    cio__stack_put(loop, &t->stack);
err_name:
    free(t->name);
err_task:
    free(t);
    return NULL;
}

/*
 * Run an internal coroutine method (create_server, create_connection, ...)
 * as a task: returns its future, or NULL after @p free_arg(@p arg) when the
 * task cannot be made. @p fn frees @p arg when it runs; if it never does
 * (cancelled first, or its loop closed), the task calls @p free_arg. Internal
 * tasks bypass the user's task factory.
 */
cio_future_t *cio__spawn(cio_loop_t *loop, cio_task_fn fn, void *arg, void (*free_arg)(void *))
{
    cio_task_t *t = cio_task_new(loop, fn, arg, NULL);
    if (!t) {
        free_arg(arg);
        return NULL;
    }
    t->free_arg = free_arg;
    return &t->fut;
}

cio_task_t *cio_loop_create_task(cio_loop_t *loop, cio_task_fn fn, void *arg,
                                 const cio_task_opts_t *opts)
{
    if (loop && loop->task_factory)
        return loop->task_factory(loop, fn, arg, opts, loop->task_factory_data);
    return cio_task_new(loop, fn, arg, opts);
}

void cio_loop_set_task_factory(cio_loop_t *loop, cio_task_factory_t factory, void *data)
{
    loop->task_factory = factory;
    loop->task_factory_data = factory ? data : NULL;
}

cio_task_factory_t cio_loop_get_task_factory(const cio_loop_t *loop, void **data)
{
    if (data)
        *data = loop->task_factory_data;
    return loop->task_factory;
}

cio_future_t *cio_task_future(cio_task_t *task)
{
    return task ? &task->fut : NULL;
}

cio_task_t *cio_task_ref(cio_task_t *task)
{
    cio_future_ref(&task->fut);
    return task;
}

void cio_task_unref(cio_task_t *task)
{
    if (task)
        cio_future_unref(&task->fut);
}

static void set_cancel_message(cio_task_t *t, const char *message)
{
    char *copy = message ? strdup(message) : NULL;
    free(t->cancel_message);
    t->cancel_message = copy;
}

static bool task_cancel_op(cio_future_t *fut, const char *message)
{
    cio_task_t *t = task_of(fut);
    if (cio_future_done(fut) || t->state == CIO__TASK_FINISHED)
        return false;
    /* The waiter's done callback then resumes the task with -ECANCELED. */
    if (t->waiter && cio_future_cancel(t->waiter, message))
        return true;
    t->must_cancel = true;
    set_cancel_message(t, message);
    return true;
}

bool cio_task_cancel(cio_task_t *task, const char *message)
{
    return task && task_cancel_op(&task->fut, message);
}

static void task_destroy(cio_future_t *fut)
{
    cio_task_t *t = task_of(fut);
    free(t->error_message);
    free(t->name);
    free(t->cancel_message);
    free(t);
}

const char *cio_task_get_name(const cio_task_t *task)
{
    if (!task->name) {
        /* The name is a cache the const view may fill in. */
        cio_task_t *t = (cio_task_t *)task;
        char buf[32];
        snprintf(buf, sizeof(buf), "Task-%lu", t->number);
        t->name = strdup(buf);
    }
    return task->name ? task->name : "Task";
}

int cio_task_set_name(cio_task_t *task, const char *name)
{
    if (!task || !name)
        return -EINVAL;
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    free(task->name);
    task->name = copy;
    return 0;
}

/* The message the running task's error will carry (internal callers only). */
void cio__task_set_error_message(const char *message)
{
    cio_task_t *t = cio_current_task();
    if (!t)
        return;
    char *copy = message ? strdup(message) : NULL;
    free(t->error_message);
    t->error_message = copy;
}

cio_task_t *cio_current_task(void)
{
    cio_loop_t *loop = cio__get_running();
    return loop ? loop->current_task : NULL;
}

/* After a suspension: a cancellation requested meanwhile wins. */
static bool take_cancel(cio_task_t *t)
{
    if (!t->must_cancel)
        return false;
    t->must_cancel = false;
    return true;
}

int cio_await(cio_future_t *fut, void **result)
{
    cio_task_t *t = cio_current_task();
    if (!t)
        return CIO_ENOTASK;
    if (!fut || fut->loop != t->fut.loop)
        return -EINVAL;
    if (fut == &t->fut)
        return -EDEADLK;
    if (t->unwinding && !cio_future_done(fut))
        return -ECANCELED; /* the loop is closing: no more suspensions */
    if (!cio_future_done(fut)) {
        int rc = cio_future_add_done_callback(fut, task_wakeup, t);
        if (rc < 0)
            return rc;
        t->waiter = cio_future_ref(fut);
        /* Cancelled while running: the new waiter is cancelled at once. */
        if (t->must_cancel && cio_future_cancel(fut, t->cancel_message))
            t->must_cancel = false;
        task_suspend(t);
        t->waiter = NULL;
        /* The cancellation's message travels with it, as CancelledError's does. */
        if (cio_future_cancelled(fut))
            set_cancel_message(t, cio_future_error_message(fut));
        cio_future_unref(fut);
        if (take_cancel(t))
            return -ECANCELED;
    }
    return cio_future_result(fut, result);
}

static int sleep_done(void *arg)
{
    cio_future_t *fut = arg;
    if (!cio_future_done(fut))
        cio_future_set_result(fut, NULL);
    return 0;
}

int cio_sleep(double seconds)
{
    cio_task_t *t = cio_current_task();
    if (!t)
        return CIO_ENOTASK;
    if (isnan(seconds))
        return -EINVAL;
    if (t->unwinding)
        return -ECANCELED;
    if (seconds <= 0) {
        /* asyncio.sleep(0): a bare yield, the task's step goes to the back. */
        int rc = schedule_step(t);
        if (rc < 0)
            return rc;
        task_suspend(t);
        return take_cancel(t) ? -ECANCELED : 0;
    }
    cio_future_t *fut = cio_loop_create_future(t->fut.loop);
    if (!fut)
        return -ENOMEM;
    cio_handle_t timer = {0};
    int rc =
        isinf(seconds) ? 0 : cio_loop_call_later(t->fut.loop, seconds, sleep_done, fut, &timer);
    if (rc == 0)
        rc = cio_await(fut, NULL);
    cio_handle_cancel(timer);
    cio_future_unref(fut);
    return rc;
}

/*
 * The loop is closing with tasks still pending (asyncio: "Task was destroyed
 * but it is pending!"). A task that never started is cancelled. One suspended
 * in an await is resumed one last time with -ECANCELED, and every await after
 * that fails at once, so its function can release what it holds and return:
 * the C counterpart of the GeneratorExit Python throws into a collected
 * coroutine.
 */
void cio__tasks_destroy_pending(cio_loop_t *loop)
{
    cio_loop_t *prev = cio__get_running();
    cio__set_running(loop); /* so cio_current_task() works while unwinding */
    while (!cio__queue_empty(&loop->tasks)) {
        cio_task_t *t = cio_container_of(loop->tasks.next, cio_task_t, link);
        cio_exception_context_t ctx;
        cio_exception_context_init(&ctx, "Task was destroyed but it is pending!");
        ctx.task = t;
        ctx.future = &t->fut;
        cio_loop_call_exception_handler(loop, &ctx);
        cio_task_ref(t);
        t->unwinding = true;
        t->must_cancel = true;
        if (t->state == CIO__TASK_CREATED) {
            task_finish(t, true);
        } else {
            if (t->waiter)
                cio_future_remove_done_callback(t->waiter, task_wakeup, t);
            task_resume(t);
        }
        if (t->state != CIO__TASK_FINISHED) {
            /* It suspended anyway (it cannot, short of a bug): abandon it. */
            cio__queue_remove(&t->link);
            cio__fiber_destroy(&t->fiber);
            cio__stack_put(loop, &t->stack);
            cio_future_unref(&t->fut);
        }
        cio_task_unref(t);
    }
    cio__set_running(prev);
}
