/*
 * coreio/future.h: asyncio's Future. A future is pending, then done exactly
 * once: with a result (a void pointer the future does not own), with an error
 * (a negative code and an optional message), or cancelled. Done callbacks are
 * always scheduled with call_soon on the future's loop, never run inline.
 *
 * Futures are reference counted: cio_loop_create_future() returns one
 * reference, which its caller drops with cio_future_unref(). The loop keeps its
 * own reference while a done callback is scheduled. Loop thread only.
 */
#ifndef COREIO_FUTURE_H
#define COREIO_FUTURE_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A done callback; its return value is handled as a cio_callback_t's. */
typedef int (*cio_done_cb)(cio_future_t *fut, void *arg);

/**
 * Create a pending future attached to @p loop (asyncio: loop.create_future()).
 * Returns NULL when out of memory or when the loop is closed.
 */
CIO_EXTERN cio_future_t *cio_loop_create_future(cio_loop_t *loop);

/** Take one more reference; returns @p fut. */
CIO_EXTERN cio_future_t *cio_future_ref(cio_future_t *fut);

/** Drop one reference; the last one frees the future. NULL is ignored. */
CIO_EXTERN void cio_future_unref(cio_future_t *fut);

/** The loop the future belongs to. */
CIO_EXTERN cio_loop_t *cio_future_get_loop(const cio_future_t *fut);

/**
 * Mark the future done with @p result and schedule its done callbacks.
 * CIO_EINVALIDSTATE if it is already done (or cancelled); -EPERM on the
 * future of a task or another combinator, which settles itself. If the loop
 * is closed, the future is settled all the same but its callbacks can never
 * run: the call returns CIO_ECLOSED.
 */
CIO_EXTERN int cio_future_set_result(cio_future_t *fut, void *result);

/**
 * Mark the future done with error @p err (negative; -EINVAL otherwise, and for
 * -ECANCELED, which is what cio_future_cancel() is for; the argument is
 * checked first) and an optional message, copied. Otherwise returns as
 * cio_future_set_result().
 */
CIO_EXTERN int cio_future_set_error(cio_future_t *fut, int err, const char *message);

/**
 * Cancel the future with an optional message (copied) and schedule its done
 * callbacks. Returns true if it was pending, false if it was already done.
 */
CIO_EXTERN bool cio_future_cancel(cio_future_t *fut, const char *message);

/** Whether the future is done (result, error or cancelled). */
CIO_EXTERN bool cio_future_done(const cio_future_t *fut);

/** Whether the future was cancelled. */
CIO_EXTERN bool cio_future_cancelled(const cio_future_t *fut);

/**
 * Read the outcome: 0 with the result in *@p result (when not NULL); the error
 * code for a failed future; -ECANCELED for a cancelled one; CIO_EINVALIDSTATE
 * while pending.
 */
CIO_EXTERN int cio_future_result(const cio_future_t *fut, void **result);

/**
 * The future's error (asyncio: exception()): 0 if it has a result, its error
 * code, -ECANCELED if cancelled, CIO_EINVALIDSTATE while pending.
 */
CIO_EXTERN int cio_future_error(const cio_future_t *fut);

/**
 * The message given with the error or the cancellation, or NULL. Valid while
 * the caller holds a reference.
 */
CIO_EXTERN const char *cio_future_error_message(const cio_future_t *fut);

/**
 * Call @p cb(@p fut, @p arg) once the future is done, scheduled with call_soon
 * in registration order; on a done future it is scheduled at once. Returns 0,
 * -EINVAL, -ENOMEM or CIO_ECLOSED.
 */
CIO_EXTERN int cio_future_add_done_callback(cio_future_t *fut, cio_done_cb cb, void *arg);

/**
 * Remove every registration of (@p cb, @p arg) not yet scheduled; returns how
 * many were removed.
 */
CIO_EXTERN size_t cio_future_remove_done_callback(cio_future_t *fut, cio_done_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_FUTURE_H */
