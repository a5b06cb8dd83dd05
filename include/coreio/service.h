/*
 * coreio/service.h: services, what a coreio application serves. A service is
 * a named protocol factory with optional per-worker state, its own
 * configuration keys and hooks for the application's life: the framework
 * starts it on every worker when a listener names it, hands each connection
 * the context of the worker and listener it came through, delivers new
 * values of its keys on reload, and stops it once its listeners have drained.
 * docs/SERVICES.md walks through writing one; examples/kv is a complete one.
 *
 * The life of a service on each worker, all on that worker's thread:
 *
 *   start ─┬─ listener_start (per listener) ── factory (per connection)
 *          │   ... drain (when the listener stops accepting) ── listener_stop
 *          ├─ reconfigure (on reload, when its keys changed)
 *          └─ stop (its listeners gone, its tasks ended, its children reaped)
 *
 * A service stays started while some listener names it: a reload that keeps
 * the service keeps its per-worker state and its connections. A reload that
 * changes its keys calls reconfigure; a service without that hook (or whose
 * hook fails) is restarted: a new instance starts beside the old one and
 * takes over the listening sockets, and the old one drains and stops.
 */
#ifndef COREIO_SERVICE_H
#define COREIO_SERVICE_H

#include <stdint.h>

#include "coreio/common.h"
#include "coreio/config.h"
#include "coreio/log.h"
#include "coreio/metrics.h"
#include "coreio/subprocess.h"
#include "coreio/task.h"
#include "coreio/transport.h"
#include "coreio/workers.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which transports a service can speak (a bit set). */
enum {
    CIO_SERVICE_STREAM = 1 << 0, /* TCP and Unix stream listeners */
    CIO_SERVICE_DGRAM = 1 << 1,  /* UDP listeners: one protocol per worker */
};

/** What a service's callbacks are given: where they run and with what. */
typedef struct cio_service_ctx cio_service_ctx_t;

/** A service: its name, its keys, its protocol factory and its hooks. */
typedef struct cio_service {
    const char *name; /* [A-Za-z0-9_.-], at most CIO_CONFIG_NAME_MAX bytes */
    unsigned kinds;   /* CIO_SERVICE_* it supports */
    const char *doc;  /* optional: one line for coreiod --list-services */
    /* The keys of its [service NAME] section; read with cio_service_value(). */
    const cio_config_key_t *keys;
    size_t nkeys;
    /**
     * Make the protocol of a new connection (or of a worker's datagram
     * endpoint); NULL refuses the connection. The context is the listener's
     * on this worker, valid for as long as the connection lives.
     */
    cio_protocol_t *(*factory)(cio_service_ctx_t *ctx);
    /** Optional: make this worker's state (cio_service_state()). 0 or -errno. */
    int (*start)(cio_service_ctx_t *ctx, void **state);
    /** Optional: release this worker's state; its listeners, tasks and children are gone. */
    void (*stop)(cio_service_ctx_t *ctx, void *state);
    /** Optional: make per-listener state on this worker (cio_service_listener_state()). */
    int (*listener_start)(cio_service_ctx_t *ctx, void **state);
    /** Optional: release it, once the listener's connections here are gone. */
    void (*listener_stop)(cio_service_ctx_t *ctx, void *state);
    /**
     * Optional: the listener has stopped accepting and its connections drain
     * (shutdown, or a reload that removes or moves it). Close what can go
     * without losing work, such as idle keep-alive connections; what is left
     * is aborted at drain_timeout.
     */
    void (*drain)(cio_service_ctx_t *ctx);
    /**
     * Optional: a reload changed the service's keys; cio_service_value()
     * already reads the new ones. 0 keeps the service (state and
     * connections); an error restarts it as if it had no hook.
     */
    int (*reconfigure)(cio_service_ctx_t *ctx, void *state);
    void *arg; /* cio_service_arg() */
} cio_service_t;

/**
 * Add @p svc to the process-wide registry (the struct is copied; what it
 * points to must outlive the process). -EINVAL for a bad name, no factory,
 * no kinds or a bad key (a bad name, type or default, or a name used
 * twice); -EEXIST if the name is taken; -ENOSPC past 64 services. Any thread;
 * an application sees services registered before it checks a configuration.
 */
CIO_EXTERN int cio_service_register(const cio_service_t *svc);

/** The registered service called @p name, or NULL. Any thread. */
CIO_EXTERN const cio_service_t *cio_service_find(const char *name);

/**
 * The registered services, built-in ones first, then in registration order:
 * up to @p max into @p out; returns how many there are. Any thread.
 */
CIO_EXTERN size_t cio_service_list(const cio_service_t **out, size_t max);

/* ---- the context ----------------------------------------------------------------- */

/** This worker's index, 0 .. cio_service_nworkers() - 1. */
CIO_EXTERN size_t cio_service_worker(const cio_service_ctx_t *ctx);

/** How many workers run the service. */
CIO_EXTERN size_t cio_service_nworkers(const cio_service_ctx_t *ctx);

/** This worker's loop. */
CIO_EXTERN cio_loop_t *cio_service_loop(const cio_service_ctx_t *ctx);

/** The workers, for cross-shard calls (cio_workers_submit_to() and the like). */
CIO_EXTERN cio_workers_t *cio_service_workers(const cio_service_ctx_t *ctx);

/** The cio_service_t's arg. */
CIO_EXTERN void *cio_service_arg(const cio_service_ctx_t *ctx);

/** This worker's state, as start made it (NULL before and without start). */
CIO_EXTERN void *cio_service_state(const cio_service_ctx_t *ctx);

/**
 * The listener the callback runs for (its name, protocol and address), or
 * NULL in start, stop and reconfigure.
 */
CIO_EXTERN const cio_config_listener_t *cio_service_listener(const cio_service_ctx_t *ctx);

/** The listener's state on this worker, as listener_start made it, or NULL. */
CIO_EXTERN void *cio_service_listener_state(const cio_service_ctx_t *ctx);

/**
 * The value of the declared key @p key: as the [service NAME] section sets
 * it, or its default. NULL for a key the service did not declare. The value
 * stays valid until the callback returns, or, in a connection, until the
 * next reconfigure on this worker.
 */
CIO_EXTERN const cio_config_value_t *cio_service_value(const cio_service_ctx_t *ctx,
                                                       const char *key);

/** Typed shortcuts for cio_service_value(); an undeclared key or another type reads 0. */
CIO_EXTERN int64_t cio_service_int(const cio_service_ctx_t *ctx, const char *key);
CIO_EXTERN uint64_t cio_service_size(const cio_service_ctx_t *ctx, const char *key);
CIO_EXTERN double cio_service_duration(const cio_service_ctx_t *ctx, const char *key);
CIO_EXTERN bool cio_service_bool(const cio_service_ctx_t *ctx, const char *key);
/** A string or path key's text (NULL otherwise). */
CIO_EXTERN const char *cio_service_string(const cio_service_ctx_t *ctx, const char *key);

/**
 * Log @p fmt tagged with the service, this worker and the listener (if any),
 * at @p level, which the app's log_level filters. Any thread holding @p ctx.
 */
CIO_EXTERN void cio_service_log(const cio_service_ctx_t *ctx, cio_log_level_t level,
                                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * This worker's handle on the service's metric @p name (a counter's name ends
 * in _total), exported on the admin port's /metrics as SERVICE_NAME with a
 * worker label. Every worker registers the same metrics, typically in start;
 * the handle is updated on this worker's thread only. NULL (and updates to
 * it do nothing) on a bad name, a clash with another type, or out of memory.
 */
CIO_EXTERN cio_metric_t *cio_service_counter(cio_service_ctx_t *ctx, const char *name,
                                             const char *help);
CIO_EXTERN cio_metric_t *cio_service_gauge(cio_service_ctx_t *ctx, const char *name,
                                           const char *help);
/** As above; @p bounds are the buckets' upper bounds, increasing (at most 32). */
CIO_EXTERN cio_metric_t *cio_service_histogram(cio_service_ctx_t *ctx, const char *name,
                                               const char *help, const double *bounds,
                                               size_t nbounds);

/* ---- cross-shard calls between the service's workers ------------------------------ */

/**
 * What a cross-shard call runs on the target worker, with the service's
 * context there (Seastar's sharded<Service>::invoke_on): a plain callback on
 * that worker's thread, which must not block. 0 with *@p result set, or a
 * negative error.
 */
typedef int (*cio_service_fn)(cio_service_ctx_t *ctx, void *arg, void **result);

/**
 * Run @p fn(target's context, @p arg) on worker @p worker; the future, on
 * this worker's loop, gets its result or error (cio_workers_submit_to()
 * carries it, with the same ownership rules for @p free_arg and
 * @p free_result). A target whose service is stopping completes the future
 * with CIO_ECLOSED and @p fn never runs. NULL, after @p free_arg has run, for
 * a bad worker, a NULL @p fn or out of memory. This worker's thread only.
 */
CIO_EXTERN cio_future_t *cio_service_submit_to(cio_service_ctx_t *ctx, size_t worker,
                                               cio_service_fn fn, void *arg,
                                               void (*free_arg)(void *arg),
                                               void (*free_result)(void *result));

/**
 * cio_service_submit_to() on every worker (this one included); the future's
 * result is as cio_workers_invoke_on_all()'s. @p free_arg runs once, after
 * the last worker is done with @p arg.
 */
CIO_EXTERN cio_future_t *cio_service_invoke_on_all(cio_service_ctx_t *ctx, cio_service_fn fn,
                                                   void *arg, void (*free_arg)(void *arg),
                                                   void (*free_result)(void *result));

/**
 * Run @p fn on every worker and fold the results here, in worker order, with
 * @p reduce from @p init, as cio_workers_map_reduce() (on NULL, @p free_arg
 * and @p free_acc(@p init) have run).
 */
CIO_EXTERN cio_future_t *cio_service_map_reduce(cio_service_ctx_t *ctx, cio_service_fn fn,
                                                void *arg, void (*free_arg)(void *arg),
                                                cio_shard_reduce_fn reduce, void *reduce_arg,
                                                void *init, void (*free_acc)(void *acc));

/**
 * Start @p fn(@p arg) as a task on this worker's loop that the service owns:
 * when the service stops (shutdown, or a reload that removes or restarts it)
 * its tasks still running are cancelled and awaited before stop runs, so none
 * outlives it. @p free_arg (optional) runs once when the task is done or could
 * not start. Returns a new reference (cio_task_unref() it), or NULL when out
 * of memory or once the service is stopping. This worker's thread only.
 */
CIO_EXTERN cio_task_t *cio_service_spawn(cio_service_ctx_t *ctx, cio_task_fn fn, void *arg,
                                         void (*free_arg)(void *arg));

/* ---- child processes the service owns ---------------------------------------------- */

/**
 * Start a child process on this worker's loop that the service owns:
 * cio_loop_subprocess_exec() with the same arguments, and its future (a new
 * reference; the result is the cio_subprocess_t *). The child is the
 * service's on this worker until its transport is finished (the child
 * reaped, its pipes closed, connection_lost delivered): then it is forgotten,
 * so children that come and go cost nothing. When the service stops on this
 * worker (shutdown, or a reload that removes or restarts it), after its
 * listeners have drained and its tasks have ended, the children still there
 * have until drain_timeout after the stop began (the time the connections
 * have too) to exit by themselves, as the service's drain hook or its tasks
 * may have asked them; then each one still running gets SIGTERM, and one
 * second later SIGKILL, each logged with its pid. stop runs once every child
 * is reaped and its protocol has had connection_lost, so a protocol may use
 * the worker's state to the end. A child that has exited by the time its
 * connection_made runs is forgotten at once. NULL as
 * cio_loop_subprocess_exec(), or once the service is stopping. Any context
 * of the service (start, a listener's callbacks, a connection, a task);
 * this worker's thread only.
 */
CIO_EXTERN cio_future_t *cio_service_subprocess_exec(cio_service_ctx_t *ctx,
                                                     cio_protocol_factory_t factory,
                                                     void *factory_arg, const char *program,
                                                     char *const argv[],
                                                     const cio_subprocess_opts_t *opts);

/** As cio_service_subprocess_exec(), running @p cmd with "/bin/sh -c". */
CIO_EXTERN cio_future_t *cio_service_subprocess_shell(cio_service_ctx_t *ctx,
                                                      cio_protocol_factory_t factory,
                                                      void *factory_arg, const char *cmd,
                                                      const cio_subprocess_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SERVICE_H */
