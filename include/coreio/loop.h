/*
 * coreio/loop.h: one asyncio event loop. Lifecycle, scheduling (call_soon,
 * call_later, call_at, call_soon_threadsafe), handles, debug mode and the
 * exception handler, named after asyncio's loop methods: loop.X() is
 * cio_loop_X(loop, ...).
 *
 * A loop is confined to one thread: every function here is "loop thread only"
 * unless it says "any thread". Before the loop first runs, the thread that
 * creates it counts as its thread.
 */
#ifndef COREIO_LOOP_H
#define COREIO_LOOP_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A handle names one scheduled callback. It is a small value, copied freely:
 * it refers to its callback by slot and generation, so a handle whose callback
 * has already run (or been cancelled and discarded) is simply stale, and using
 * it is a harmless no-op, never a use-after-free, as long as its loop exists.
 */
typedef struct cio_handle {
    cio_loop_t *loop; /* NULL for the zero handle */
    uint32_t slot;
    uint32_t gen;
    double when; /* loop time a timer is due; NaN for call_soon handles */
} cio_handle_t;

/* ---- creating and freeing ------------------------------------------------ */

/**
 * Create a new event loop (asyncio: the default loop class's constructor; most
 * code calls cio_new_event_loop() from coreio/policy.h instead). Debug mode is
 * on when the environment has COREIO_DEBUG=1. Returns NULL when out of memory
 * or when the I/O backend cannot start. Any thread; the loop then belongs to
 * the calling thread until it runs.
 */
CIO_EXTERN cio_loop_t *cio_loop_new(void);

/**
 * Close @p loop if it is not closed yet, then free it. Fails with
 * CIO_ERUNNING, freeing nothing, while the loop runs. Handles and futures of
 * the loop must not be used afterwards. If the loop is the calling thread's
 * current loop (coreio/policy.h) it stops being so; a thread that made it its
 * current loop must cio_set_event_loop(NULL) before another thread frees it.
 * NULL is accepted and ignored.
 */
CIO_EXTERN int cio_loop_free(cio_loop_t *loop);

/* ---- running and stopping ------------------------------------------------ */

/**
 * Run until cio_loop_stop(). Returns 0, or CIO_ECLOSED, CIO_ERUNNING (this
 * loop already runs), CIO_EOTHERLOOP (another loop runs in this thread).
 */
CIO_EXTERN int cio_loop_run_forever(cio_loop_t *loop);

/**
 * Run until @p fut is done. Returns the future's outcome: 0 with its result in
 * *@p result (when @p result is not NULL), its error code, -ECANCELED if it
 * was cancelled; or CIO_ESTOPPED if cio_loop_stop() ended the loop first, and
 * the errors of cio_loop_run_forever(). The caller keeps its reference to
 * @p fut. -EINVAL if @p fut belongs to another loop.
 */
CIO_EXTERN int cio_loop_run_until_complete(cio_loop_t *loop, cio_future_t *fut, void **result);

/**
 * Ask the loop to stop: a running loop finishes its current iteration and
 * returns; a loop not running yet will run one iteration with a zero poll
 * timeout at its next run. Callbacks scheduled meanwhile run at the next run.
 */
CIO_EXTERN void cio_loop_stop(cio_loop_t *loop);

/**
 * Close the loop: discard every pending callback and timer (releasing what they
 * hold) and the I/O backend. Idempotent; CIO_ERUNNING on a running loop.
 * After it, scheduling returns CIO_ECLOSED. The memory stays until
 * cio_loop_free().
 */
CIO_EXTERN int cio_loop_close(cio_loop_t *loop);

/** Whether the loop is running now. Any thread. */
CIO_EXTERN bool cio_loop_is_running(const cio_loop_t *loop);

/** Whether cio_loop_close() was called. Any thread. */
CIO_EXTERN bool cio_loop_is_closed(const cio_loop_t *loop);

/** The loop's clock: monotonic seconds, the time base of call_at. Any thread. */
CIO_EXTERN double cio_loop_time(const cio_loop_t *loop);

/* ---- scheduling ---------------------------------------------------------- */

/**
 * Schedule @p cb(@p arg) for the next iteration; callbacks run in FIFO order.
 * Stores the handle in *@p handle when it is not NULL. Returns 0, -EINVAL for
 * a NULL callback, CIO_ECLOSED, or (debug mode, running loop, other thread)
 * CIO_EWRONGTHREAD. Costs no allocation once the loop has warmed up.
 */
CIO_EXTERN int cio_loop_call_soon(cio_loop_t *loop, cio_callback_t cb, void *arg,
                                  cio_handle_t *handle);

/**
 * Schedule @p cb(@p arg) @p delay seconds from now (a negative delay means
 * now). Timers with the same due time run in the order they were scheduled.
 * -EINVAL for NaN or a NULL callback; otherwise as cio_loop_call_soon().
 */
CIO_EXTERN int cio_loop_call_later(cio_loop_t *loop, double delay, cio_callback_t cb, void *arg,
                                   cio_handle_t *handle);

/**
 * Schedule @p cb(@p arg) at loop time @p when (see cio_loop_time()). A timer
 * is due when when <= now + clock resolution. -EINVAL for a NaN or infinite
 * @p when; otherwise as cio_loop_call_soon().
 */
CIO_EXTERN int cio_loop_call_at(cio_loop_t *loop, double when, cio_callback_t cb, void *arg,
                                cio_handle_t *handle);

/**
 * Schedule @p cb(@p arg) on @p loop from any thread and wake the loop if it
 * sleeps. Callbacks from one thread run in the order sent. The loop wakes
 * through its eventfd only when it is asleep, and drains all pending messages
 * per wake. Returns 0, -EINVAL, -ENOMEM or CIO_ECLOSED (a loop closed after the
 * message was queued drops it). Unlike asyncio it returns no handle: a handle
 * is loop-confined. Closing the loop waits for senders already inside this
 * call, so a call that started while the loop was open finishes safely. Any
 * thread.
 */
CIO_EXTERN int cio_loop_call_soon_threadsafe(cio_loop_t *loop, cio_callback_t cb, void *arg);

/**
 * As cio_loop_call_soon_threadsafe(), with a destructor: the message owns
 * @p arg, and if the loop closes before running @p cb, @p release(@p arg)
 * runs instead (on the thread closing the loop), so nothing sent to a
 * closing loop leaks. On a non-zero return the caller keeps @p arg. Any
 * thread. A coreio extension.
 */
CIO_EXTERN int cio_loop_call_soon_threadsafe_owned(cio_loop_t *loop, cio_callback_t cb, void *arg,
                                                   cio_callback_t release);

/**
 * Cancel the callback: it will not run. A no-op for a stale handle (its
 * callback already ran or was discarded) and for the zero handle.
 */
CIO_EXTERN void cio_handle_cancel(cio_handle_t handle);

/**
 * Whether the handle's callback was cancelled. True from cio_handle_cancel()
 * until the loop discards the cancelled callback (at the latest, when it would
 * have run); a stale handle reports false.
 */
CIO_EXTERN bool cio_handle_cancelled(cio_handle_t handle);

/** A timer handle's due time in loop time; NaN for call_soon handles. */
CIO_EXTERN double cio_handle_when(cio_handle_t handle);

/* ---- debug mode ---------------------------------------------------------- */

/**
 * Turn debug mode on or off: callbacks slower than the slow-callback duration
 * are logged with their duration, and non-thread-safe calls from a thread
 * other than the running loop's fail with CIO_EWRONGTHREAD.
 */
CIO_EXTERN void cio_loop_set_debug(cio_loop_t *loop, bool enabled);

/** Whether debug mode is on. */
CIO_EXTERN bool cio_loop_get_debug(const cio_loop_t *loop);

/** Set the slow-callback threshold in seconds (default 0.1); -EINVAL if not >= 0. */
CIO_EXTERN int cio_loop_set_slow_callback_duration(cio_loop_t *loop, double seconds);

/** The slow-callback threshold in seconds. */
CIO_EXTERN double cio_loop_get_slow_callback_duration(const cio_loop_t *loop);

/* ---- statistics ---------------------------------------------------------- */

/** Counters of one loop, read with cio_loop_get_stats(). */
typedef struct cio_loop_stats {
    uint64_t iterations;           /* run_once calls */
    uint64_t callbacks;            /* callbacks run (cancelled ones excluded) */
    uint64_t ready;                /* callbacks waiting in the ready queue now */
    uint64_t timers;               /* timers in the heap now, cancelled ones included */
    uint64_t mailbox_received;     /* call_soon_threadsafe messages taken in so far */
    uint64_t mailbox_wakeups;      /* eventfd writes that woke the sleeping loop */
    uint64_t mailbox_depth;        /* call_soon_threadsafe messages waiting now */
    uint64_t executor_jobs;        /* run_in_executor jobs of this loop not finished */
    uint64_t bytes_in;             /* bytes read by this loop's transports so far */
    uint64_t bytes_out;            /* bytes sent by this loop's transports so far */
    uint64_t connections_accepted; /* connections this loop's servers accepted so far */
    uint64_t transports;           /* transports open now (connections and endpoints) */
} cio_loop_stats_t;

/**
 * Copy the loop's counters into *@p stats. Loop thread only.
 */
CIO_EXTERN void cio_loop_get_stats(const cio_loop_t *loop, cio_loop_stats_t *stats);

/* ---- error handling ------------------------------------------------------ */

/**
 * What asyncio passes its exception handler as a context dict. Fields that do
 * not apply are NULL, 0 or -1 (socket).
 */
typedef struct cio_exception_context {
    const char *message;        /* always set */
    int error;                  /* the error code, 0 when there is none */
    cio_future_t *future;       /* the future concerned */
    void *task;                 /* the task concerned (cio_task_t *) */
    const cio_handle_t *handle; /* the callback concerned */
    void *protocol;             /* the protocol concerned */
    void *transport;            /* the transport concerned (cio_transport_t *) */
    int socket;                 /* the socket concerned, -1 for none */
} cio_exception_context_t;

/** Fill @p ctx with "nothing applies" (error 0, pointers NULL, socket -1). */
CIO_EXTERN void cio_exception_context_init(cio_exception_context_t *ctx, const char *message);

/**
 * A custom exception handler. Return 0 when handled; a negative value means the
 * handler itself failed, and the loop reports that, and @p ctx, through the
 * default handler.
 */
typedef int (*cio_exception_handler_t)(cio_loop_t *loop, const cio_exception_context_t *ctx,
                                       void *arg);

/**
 * Install @p handler (NULL restores the default handler). Loop thread only.
 */
CIO_EXTERN void cio_loop_set_exception_handler(cio_loop_t *loop, cio_exception_handler_t handler,
                                               void *arg);

/** The custom handler (and its argument in *@p arg), or NULL for the default. */
CIO_EXTERN cio_exception_handler_t cio_loop_get_exception_handler(const cio_loop_t *loop,
                                                                  void **arg);

/**
 * The default handler: logs the message and every context field that applies,
 * at ERROR level, through coreio/log.h.
 */
CIO_EXTERN void cio_loop_default_exception_handler(cio_loop_t *loop,
                                                   const cio_exception_context_t *ctx);

/** Report @p ctx through the loop's current exception handler. */
CIO_EXTERN void cio_loop_call_exception_handler(cio_loop_t *loop,
                                                const cio_exception_context_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_LOOP_H */
