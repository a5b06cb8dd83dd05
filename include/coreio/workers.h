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
 * workers stop before it starts). NULL outside a running loop or for a bad
 * index. Loop thread only (the caller's).
 */
CIO_EXTERN cio_future_t *cio_workers_submit(cio_workers_t *w, size_t i, cio_task_fn fn, void *arg);

/**
 * cio_workers_submit() to every worker: the future is their cio_gather(), its
 * result a cio_outcome_t per worker, in worker order (or the first error).
 * Loop thread only (the caller's).
 */
CIO_EXTERN cio_future_t *cio_workers_broadcast(cio_workers_t *w, cio_task_fn fn, void *arg);

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
