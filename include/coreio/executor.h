/*
 * coreio/executor.h: thread pools for blocking work (asyncio's
 * run_in_executor and concurrent.futures' ThreadPoolExecutor). A job runs a
 * cio_task_fn on a pool thread; its outcome settles a future on the loop
 * that submitted it, through that loop's mailbox. One process-wide default
 * pool, created on first use, serves every loop that has no executor of its
 * own. Name lookups (coreio/net.h) run on a private pool of their own, with
 * the same code and the same rules.
 *
 * The one rule for closing a loop: a loop that closes with jobs in flight
 * orphans them. A job not started yet never runs. A running job still runs to
 * its end on its thread; its answer is freed by its destructor (free_result
 * of cio_loop_run_in_executor_owned(); a plain run_in_executor result is
 * nobody's and is dropped) instead of being posted to the closed loop, and
 * its argument by free_arg. Either way the job's future is cancelled, and
 * closing never waits for a job: a job's argument stays in use until the job
 * ends, which may be after the loop is gone (cio_executor_shutdown() with
 * wait, or free_arg, tells when). cio_run() waits for the loop's
 * run_in_executor jobs before it closes the loop, so this matters to loops
 * closed by hand.
 */
#ifndef COREIO_EXECUTOR_H
#define COREIO_EXECUTOR_H

#include "coreio/common.h"
#include "coreio/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A pool of worker threads shared by any number of loops. */
typedef struct cio_executor_s cio_executor_t;

/**
 * Create a pool of @p threads threads (0: as Python's default,
 * min(32, CPUs + 4)), started as jobs arrive, with every signal blocked.
 * NULL when out of memory. Any thread.
 */
CIO_EXTERN cio_executor_t *cio_executor_new(size_t threads);

/**
 * Stop taking jobs (concurrent.futures: shutdown). With @p cancel_futures,
 * jobs not started yet are cancelled (their futures end cancelled); else they
 * still run. With @p wait, return once every job that runs has finished.
 * Idempotent. Any thread but a pool thread.
 */
CIO_EXTERN void cio_executor_shutdown(cio_executor_t *e, bool wait, bool cancel_futures);

/**
 * Shut down (waiting, jobs not started cancelled) and free the pool. Loops
 * still using it as their default must be given another first. NULL is
 * ignored.
 */
CIO_EXTERN void cio_executor_free(cio_executor_t *e);

/**
 * Run @p fn(@p arg, &result) on @p executor (NULL: the loop's default, else
 * the process-wide one) (asyncio: run_in_executor). The future settles on
 * @p loop with the job's outcome; the result is not the future's (see
 * cio_loop_run_in_executor_owned()). Cancelling it before the job starts takes
 * the job off the queue; a job already running finishes and its outcome is
 * dropped. Closing the loop orphans its jobs (see the head of this file).
 * NULL for a NULL @p fn or a closed loop; the future fails with CIO_ECLOSED
 * when the executor is shut down, -EAGAIN when no pool thread can start. Loop
 * thread only.
 */
CIO_EXTERN cio_future_t *cio_loop_run_in_executor(cio_loop_t *loop, cio_executor_t *executor,
                                                  cio_task_fn fn, void *arg);

/**
 * As cio_loop_run_in_executor(), for a job that owns what it uses.
 * @p free_arg(@p arg), if given, runs exactly once, whatever happens: on the
 * pool thread once @p fn has returned, or on the calling thread when the job
 * will never run (cancelled while queued, refused, NULL returned). With
 * @p free_result, the future owns a non-NULL result and frees it with
 * @p free_result when the future is freed; a result no future takes (the
 * future was cancelled while the job ran, the job failed, or the loop closed)
 * is freed with it too, on whichever thread has it. Loop thread only.
 */
CIO_EXTERN cio_future_t *cio_loop_run_in_executor_owned(cio_loop_t *loop, cio_executor_t *executor,
                                                        cio_task_fn fn, void *arg,
                                                        void (*free_arg)(void *arg),
                                                        void (*free_result)(void *result));

/**
 * Make @p executor the loop's default for run_in_executor (NULL: back to the
 * process-wide pool). The loop does not own it. Loop thread only.
 */
CIO_EXTERN void cio_loop_set_default_executor(cio_loop_t *loop, cio_executor_t *executor);

/**
 * Stop taking default-executor jobs on @p loop and wait for the ones it has
 * in flight (asyncio: shutdown_default_executor): the future is done once
 * every run_in_executor future of the loop has settled; run_in_executor with
 * the default executor then fails with CIO_ECLOSED. The pools themselves go
 * on serving other loops. cio_run() calls it before closing its loop. NULL on
 * a closed loop. Loop thread only.
 */
CIO_EXTERN cio_future_t *cio_loop_shutdown_default_executor(cio_loop_t *loop);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_EXECUTOR_H */
