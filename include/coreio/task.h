/*
 * coreio/task.h: tasks, asyncio's coroutines in C. A task runs a C function on
 * a stack of its own; inside it, cio_await() suspends the task until a future
 * is done, so code reads as it does with `await`. A task is a future: its
 * outcome is its function's.
 *
 * Everything here is "loop thread only". Inside a task means: called from a
 * task's function (or anything it calls), on its stack.
 */
#ifndef COREIO_TASK_H
#define COREIO_TASK_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A task: a future whose outcome is its function's. */
typedef struct cio_task_s cio_task_t;

/**
 * A task's function. Return 0 with the task's result in *@p result, a
 * negative error to end the task with that error, or -ECANCELED to end it
 * cancelled (what happens when a cancellation is not caught).
 */
typedef int (*cio_task_fn)(void *arg, void **result);

/** Default usable stack size of a task (a guard page lies below it). */
#define CIO_TASK_STACK_DEFAULT (256 * 1024)

/** Options of cio_loop_create_task(); NULL or all-zero means the defaults. */
typedef struct cio_task_opts {
    size_t stack_size; /* usable stack in bytes, rounded up to pages; 0: default */
    const char *name;  /* copied; NULL: "Task-N" */
} cio_task_opts_t;

/**
 * A task factory (asyncio: loop.set_task_factory): creates the task for
 * cio_loop_create_task(), usually by calling cio_task_new() and adding
 * something. Returns NULL on failure.
 */
typedef cio_task_t *(*cio_task_factory_t)(cio_loop_t *loop, cio_task_fn fn, void *arg,
                                          const cio_task_opts_t *opts, void *data);

/**
 * Schedule @p fn(@p arg) to run as a task (asyncio: loop.create_task): it
 * starts on a later iteration, never inside this call. Uses the loop's task
 * factory when one is set. Returns a task holding one reference for the caller
 * (drop it with cio_task_unref(); the task runs to its end regardless), or NULL
 * for a NULL @p fn, a closed loop, or no memory for its stack.
 */
CIO_EXTERN cio_task_t *cio_loop_create_task(cio_loop_t *loop, cio_task_fn fn, void *arg,
                                            const cio_task_opts_t *opts);

/**
 * The default task constructor, what cio_loop_create_task() does without a
 * factory (asyncio: the Task class). For use by task factories.
 */
CIO_EXTERN cio_task_t *cio_task_new(cio_loop_t *loop, cio_task_fn fn, void *arg,
                                    const cio_task_opts_t *opts);

/** Install a task factory (NULL restores the default constructor). */
CIO_EXTERN void cio_loop_set_task_factory(cio_loop_t *loop, cio_task_factory_t factory, void *data);

/** The task factory (and its data in *@p data), or NULL for the default. */
CIO_EXTERN cio_task_factory_t cio_loop_get_task_factory(const cio_loop_t *loop, void **data);

/** The task as a future: every cio_future_* function applies to it. */
CIO_EXTERN cio_future_t *cio_task_future(cio_task_t *task);

/** Take one more reference; returns @p task. */
CIO_EXTERN cio_task_t *cio_task_ref(cio_task_t *task);

/** Drop one reference (cio_future_unref() on its future). NULL is ignored. */
CIO_EXTERN void cio_task_unref(cio_task_t *task);

/**
 * Request cancellation (asyncio: Task.cancel): the await the task is suspended
 * in (or its next one) returns -ECANCELED; the task may handle that and go
 * on. A task cancelled before it started never runs its function. Returns
 * false if the task is already done. Same as cio_future_cancel() on it.
 */
CIO_EXTERN bool cio_task_cancel(cio_task_t *task, const char *message);

/** The task's name. Valid until it is renamed or freed. */
CIO_EXTERN const char *cio_task_get_name(const cio_task_t *task);

/** Rename the task (the name is copied); -EINVAL for NULL, -ENOMEM. */
CIO_EXTERN int cio_task_set_name(cio_task_t *task, const char *name);

/** The task running in this thread now, or NULL outside a task. */
CIO_EXTERN cio_task_t *cio_current_task(void);

/**
 * Inside a task: wait until @p fut is done and return its outcome (asyncio:
 * `await fut`): 0 with the result in *@p result (when not NULL), its error, or
 * -ECANCELED when the future was cancelled or this task was. A done future
 * returns at once without suspending. The caller keeps its reference to
 * @p fut. CIO_ENOTASK outside a task (nothing blocks), -EINVAL for NULL or a
 * future of another loop, -EDEADLK for the task's own future.
 */
CIO_EXTERN int cio_await(cio_future_t *fut, void **result);

/**
 * Inside a task: suspend for @p seconds (asyncio.sleep); 0 or less yields to
 * the loop for one iteration. Returns 0, -ECANCELED if the task was cancelled
 * meanwhile, -EINVAL for NaN, CIO_ENOTASK outside a task.
 */
CIO_EXTERN int cio_sleep(double seconds);

/** One child's outcome in a cio_gather() result. */
typedef struct cio_outcome {
    int error;    /* 0, the child's error, or -ECANCELED */
    void *result; /* the child's result when error is 0 */
} cio_outcome_t;

/** Options of cio_gather(); NULL or all-zero means asyncio's defaults. */
typedef struct cio_gather_opts {
    bool return_exceptions; /* errors become outcomes instead of failing the gather */
} cio_gather_opts_t;

/**
 * Wait for all of @p futs (asyncio.gather). The returned future's result is a
 * cio_outcome_t array of @p n entries in the order of @p futs, owned by the
 * future. Without return_exceptions, the first child to fail or be cancelled
 * settles the gather at once (with its error, or cancelled); the others go
 * on. Cancelling the gather cancels every child not done: without
 * return_exceptions the first child's cancellation then cancels the gather at
 * once, with it the gather ends cancelled once every child is done. Holds a
 * reference to each child until it is done. Returns NULL for bad arguments
 * (NULL entries, futures of another loop) or no memory.
 */
CIO_EXTERN cio_future_t *cio_gather(cio_loop_t *loop, cio_future_t *const *futs, size_t n,
                                    const cio_gather_opts_t *opts);

/**
 * Wait for @p fut for at most @p timeout seconds (asyncio.wait_for; INFINITY
 * waits forever). The returned future gets @p fut's outcome; at the timeout
 * @p fut is cancelled and, once it has finished, the returned future fails
 * with -ETIMEDOUT (or gets its result if it ignored the cancellation).
 * Cancelling the returned future cancels @p fut. NULL for bad arguments or no
 * memory.
 */
CIO_EXTERN cio_future_t *cio_wait_for(cio_future_t *fut, double timeout);

/**
 * Run @p fn(@p arg) as the main task of a new event loop until it finishes
 * (asyncio.run): create the loop (debug mode if @p debug) and make it the
 * thread's current loop, run the task, cancel the tasks still pending and wait
 * for them, close open async generators, wait for its executor jobs in flight
 * (cio_loop_shutdown_default_executor), close and free the loop. Returns the
 * task's outcome (its result in *@p result), or CIO_EOTHERLOOP when a loop is
 * already running in this thread, -ENOMEM.
 */
CIO_EXTERN int cio_run(cio_task_fn fn, void *arg, bool debug, void **result);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_TASK_H */
