/*
 * coreio/executor.h: thread pools for blocking work (asyncio's
 * run_in_executor and concurrent.futures' ThreadPoolExecutor). A job runs a
 * cio_task_fn on a pool thread; its outcome settles a future on the loop
 * that submitted it, through that loop's mailbox. One process-wide default
 * pool, created on first use, serves every loop that has no executor of its
 * own.
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
 * @p loop with the job's outcome. Cancelling it before the job starts takes
 * the job off the queue; a job already running finishes and its outcome is
 * dropped. NULL for a NULL @p fn or a closed loop; the future fails with
 * CIO_ECLOSED when the executor is shut down. Loop thread only.
 */
CIO_EXTERN cio_future_t *cio_loop_run_in_executor(cio_loop_t *loop, cio_executor_t *executor,
                                                  cio_task_fn fn, void *arg);

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
