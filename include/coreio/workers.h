/*
 * coreio/workers.h: many loops, one per core. A cio_workers_t starts N worker
 * threads, each running its own event loop pinned to its own core (hwloc),
 * with every signal blocked; they talk only through their loops' mailboxes.
 * Inside a worker, cio_get_running_loop() is that worker's loop.
 */
#ifndef COREIO_WORKERS_H
#define COREIO_WORKERS_H

#include "coreio/common.h"
#include "coreio/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A set of worker threads, each with its pinned loop. */
typedef struct cio_workers_s cio_workers_t;

/** How workers are laid out over the cores hwloc reports. */
typedef enum cio_placement {
    CIO_PLACE_SPREAD = 0, /* round-robin over packages, then cores */
    CIO_PLACE_PACK,       /* consecutive cores, filling one package first */
    CIO_PLACE_LIST,       /* the cores listed in the options */
} cio_placement_t;

/** Options of cio_workers_new(); NULL or all-zero: one pinned worker per core. */
typedef struct cio_workers_opts {
    size_t count; /* 0: one per core */
    cio_placement_t placement;
    const unsigned *cores; /* CIO_PLACE_LIST: logical core indexes, one per worker */
    size_t ncores;
    cio_tristate_t pin; /* default on; off runs unpinned */
} cio_workers_opts_t;

/**
 * Start the workers and their loops; returns once every loop runs. Where
 * pinning is impossible the workers run unpinned and a warning is logged.
 * NULL on bad options (-EINVAL: a core list of the wrong length or with an
 * index beyond the machine), out of memory, or when a thread cannot start.
 * Any thread.
 */
CIO_EXTERN cio_workers_t *cio_workers_new(const cio_workers_opts_t *opts);

/** How many workers there are. Any thread. */
CIO_EXTERN size_t cio_workers_count(const cio_workers_t *w);

/** Worker @p i's loop (for call_soon_threadsafe); NULL past the end. Any thread. */
CIO_EXTERN cio_loop_t *cio_workers_loop(const cio_workers_t *w, size_t i);

/**
 * The logical core worker @p i is pinned to (hwloc's core index), or -1 when
 * unpinned or past the end. Any thread.
 */
CIO_EXTERN int cio_workers_core(const cio_workers_t *w, size_t i);

/**
 * Run @p fn(@p arg) as a task on worker @p i's loop; the returned future,
 * on the calling thread's running loop, gets its outcome (CIO_ECLOSED if the
 * workers stop before it starts). If the calling loop closes first, the
 * future ends cancelled there; the job still runs, and a result it gives is
 * not freed (the library does not know how). NULL outside a running loop or
 * for a bad index. Loop thread only (the caller's).
 */
CIO_EXTERN cio_future_t *cio_workers_submit(cio_workers_t *w, size_t i, cio_task_fn fn, void *arg);

/**
 * cio_workers_submit() to every worker: the future is their cio_gather(), its
 * result a cio_outcome_t per worker, in worker order (or the first error).
 * If the calling loop closes while jobs are away, their futures end
 * cancelled but the gather stays pending (a closed loop runs no callback):
 * only unref it then. NULL if a submit fails (out of memory); the workers
 * already given the job still run it. Loop thread only (the caller's).
 */
CIO_EXTERN cio_future_t *cio_workers_broadcast(cio_workers_t *w, cio_task_fn fn, void *arg);

/* ---- cross-shard calls (Seastar's submit_to, invoke_on_all, map_reduce) ---- */

/*
 * A cross-shard call runs a plain callback on a worker's thread, between two
 * iterations of its loop, and brings its outcome back to the caller's loop as
 * a future. Calls are batched: those a loop makes to one worker during one
 * iteration of its loop travel in one mailbox message, which the loop sends
 * at its next iteration (at once when 64 are waiting), and their outcomes
 * come back in one message, settling the futures in the order the calls were
 * made. So a burst of calls costs two messages and at most two wake-ups, not
 * two each; and a loop that has just sent or answered calls stays awake for
 * 50 µs (its poll does not block; I/O and timers are served as usual), so the
 * other side's next batch usually costs no wake-up at all. A call from a
 * worker to itself takes the same path: its future is never settled inside
 * the call that made it.
 *
 * Ownership is as for cio_loop_run_in_executor_owned(). free_arg, if given,
 * runs exactly once, whatever happens: on the worker's thread as soon as fn
 * has returned; or, when fn will never run, on whichever thread then holds
 * the call: the caller's, when the call returns NULL or the worker's loop has
 * closed by the time the batch is sent; the thread closing either loop when
 * the worker stops before the call reaches it, or the caller's loop closes
 * before sending it.
 * With free_result, the future owns a non-NULL result and frees it with
 * free_result when the future is freed; a result no future takes (the
 * future was cancelled or settled by hand meanwhile, fn failed after setting
 * it, or the caller's loop closed before the answer came) is freed with
 * free_result on whichever thread holds it. Without free_result a result is
 * nobody's and is dropped.
 *
 * Cancelling a call's future does not stop fn (it may be running already); its
 * result is then freed as above. A call that reaches a worker after the last
 * iteration of its loop (cio_workers_free() stops the loops) fails with
 * CIO_ECLOSED; one that came before still runs. Closing the caller's
 * loop orphans its calls, as it orphans executor jobs: their futures are
 * cancelled, calls not sent yet never run, and the answers of the others are
 * freed where they arrive; closing waits for none of them, and freeing the
 * caller's loop meanwhile is safe. @p w must stay alive during each call
 * (not until its future settles).
 */

/**
 * What a cross-shard call runs on the worker's thread, from its loop: a plain
 * callback, not a task, so it must not block or await. It returns 0 with
 * *@p result set (NULL if it has nothing to say), or a negative error
 * (-ECANCELED makes the future cancelled; a positive value counts as -EINVAL).
 */
typedef int (*cio_shard_fn)(void *arg, void **result);

/** One cross-shard call: what runs, on what, and who frees what (see above). */
typedef struct cio_shard_call {
    cio_shard_fn fn;
    void *arg;
    void (*free_arg)(void *arg);       /* optional: frees @c arg once fn is done with it */
    void (*free_result)(void *result); /* optional: the future owns fn's result */
} cio_shard_call_t;

/**
 * Run @p call on worker @p i (Seastar: submit_to): the returned future, on
 * the calling thread's running loop, gets fn's result or error. NULL, after
 * free_arg has run, outside a running loop, for a NULL @p w or @p call, a
 * NULL fn or an index past the end, or when out of memory. Loop thread only
 * (any loop's, a worker's included).
 */
CIO_EXTERN cio_future_t *cio_workers_submit_to(cio_workers_t *w, size_t i,
                                               const cio_shard_call_t *call);

/**
 * Run @p call on every worker, each with the same arg (Seastar:
 * invoke_on_all); free_arg runs once, on the thread that is last done with
 * arg. Once every worker has answered, the future's result is a `void **`
 * array of one result per worker, in worker order, owned by the future
 * (freed with it, each element with free_result when given); or the error of
 * the first worker, in worker order, that failed, every result then being
 * freed with free_result. NULL as cio_workers_submit_to(). Loop thread only.
 */
CIO_EXTERN cio_future_t *cio_workers_invoke_on_all(cio_workers_t *w, const cio_shard_call_t *call);

/**
 * Fold step of cio_workers_map_reduce(): take @p result over (keep it in the
 * new accumulator or free it) and return the new accumulator.
 */
typedef void *(*cio_shard_reduce_fn)(void *acc, void *result, void *reduce_arg);

/**
 * Run @p call on every worker as cio_workers_invoke_on_all() does, then, on
 * the caller's thread once every worker has answered, fold the results in
 * worker order, starting from @p init: acc = @p reduce(acc, result,
 * @p reduce_arg) (Seastar: map_reduce). The future's result is the final
 * accumulator, owned by the future when @p free_acc is given; or the first
 * error as for invoke_on_all, in which case nothing is reduced, the results
 * are freed with free_result and @p init with @p free_acc. An accumulator no
 * future takes (cancelled, the caller's loop closed) goes to @p free_acc too.
 * NULL, after free_arg and @p free_acc(@p init) have run, as
 * cio_workers_submit_to() or for a NULL @p reduce. Loop thread only.
 */
CIO_EXTERN cio_future_t *cio_workers_map_reduce(cio_workers_t *w, const cio_shard_call_t *call,
                                                cio_shard_reduce_fn reduce, void *reduce_arg,
                                                void *init, void (*free_acc)(void *acc));

/**
 * How long a loop that sent or answered a batch of cross-shard calls keeps
 * polling without sleeping, waiting for the next (see above): 50 µs unless
 * set; 0 lets loops sleep at once, the right choice when workers share cores
 * with each other or with other busy threads. 0 to 1 ms; -EINVAL otherwise.
 * Process-wide, for every loop from its next batch on. Any thread.
 */
CIO_EXTERN int cio_workers_set_idle_poll(double seconds);

/**
 * Stop every worker's loop after its current iteration, join the threads and
 * free everything (each loop is closed, which cancels what is pending).
 * Not from a worker thread. NULL is ignored.
 */
CIO_EXTERN void cio_workers_free(cio_workers_t *w);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_WORKERS_H */
