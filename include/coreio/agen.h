/*
 * coreio/agen.h: asynchronous generators. The generator's body runs as a task
 * on its own stack and hands values over with cio_agen_yield(); the consumer
 * asks for each with cio_agen_anext() and awaits the future it returns. As in
 * asyncio the two run in lockstep: the body runs only between an anext and its
 * next yield. A started generator is registered with its loop, and
 * cio_loop_shutdown_asyncgens() closes whichever are still open.
 *
 * Loop thread only.
 */
#ifndef COREIO_AGEN_H
#define COREIO_AGEN_H

#include "coreio/common.h"
#include "coreio/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An asynchronous generator. */
typedef struct cio_agen_s cio_agen_t;

/**
 * A generator's body: yield values with cio_agen_yield(@p gen, ...). Return 0
 * when exhausted, or a negative error, which the pending anext fails with.
 */
typedef int (*cio_agen_fn)(cio_agen_t *gen, void *arg);

/**
 * Create a generator that will run @p fn(gen, @p arg) when first iterated;
 * @p opts sets its task's stack size and name. Returns one reference for the
 * caller, or NULL (NULL @p fn, closed loop, no memory).
 */
CIO_EXTERN cio_agen_t *cio_agen_new(cio_loop_t *loop, cio_agen_fn fn, void *arg,
                                    const cio_task_opts_t *opts);

/**
 * Drop a reference. Dropping the last one of a generator whose body is alive
 * closes it (asyncio's finalizer hook): at once if it is suspended in a yield,
 * else at its next yield, after settling the pending anext. It is freed once
 * its body has ended.
 */
CIO_EXTERN void cio_agen_unref(cio_agen_t *gen);

/**
 * Ask for the next value (asyncio: __anext__). The returned future (one
 * reference for the caller) gets the value as its result, or
 * CIO_ESTOPASYNCITERATION once the body has returned, the body's error, or
 * CIO_EAGENRUNNING if an anext is already in progress. NULL on no memory.
 */
CIO_EXTERN cio_future_t *cio_agen_anext(cio_agen_t *gen);

/**
 * Inside the body: hand @p value to the pending anext and wait for the next
 * one. Returns 0 to go on; CIO_EGENERATOREXIT when the generator is being
 * closed (the body must return; yielding again makes the close fail);
 * -ECANCELED when the body's task was cancelled; -EINVAL outside the body.
 */
CIO_EXTERN int cio_agen_yield(cio_agen_t *gen, void *value);

/**
 * Close the generator (asyncio: aclose): a body suspended in a yield sees
 * CIO_EGENERATOREXIT there and returns. The future (one reference for the
 * caller) completes when the body has ended: with NULL, or the body's error,
 * or CIO_EGENERATOREXIT if it yielded again instead of returning, or
 * CIO_EAGENRUNNING if an anext is in progress. Closing a generator never
 * started or already finished completes at once.
 */
CIO_EXTERN cio_future_t *cio_agen_aclose(cio_agen_t *gen);

/**
 * Close every generator of @p loop still open (asyncio:
 * loop.shutdown_asyncgens). The returned future completes when all are closed;
 * a failure to close one is reported to the exception handler. NULL on no
 * memory or a closed loop.
 */
CIO_EXTERN cio_future_t *cio_loop_shutdown_asyncgens(cio_loop_t *loop);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_AGEN_H */
