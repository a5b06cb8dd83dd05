/*
 * coreio/service.h: services, what a coreio application serves. A service is
 * a named protocol factory; the framework opens it on every worker for each
 * listener that names it in the configuration. Register services before the
 * application starts; coreio registers its built-ins ("echo", "discard",
 * "http-hello", "stats") itself.
 */
#ifndef COREIO_SERVICE_H
#define COREIO_SERVICE_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which transports a service can speak (a bit set). */
enum {
    CIO_SERVICE_STREAM = 1 << 0, /* TCP and Unix stream listeners */
    CIO_SERVICE_DGRAM = 1 << 1,  /* UDP listeners: one protocol per worker */
};

/** A service: a name, a protocol factory and optional per-worker state. */
typedef struct cio_service {
    const char *name; /* [A-Za-z0-9_.-], at most CIO_CONFIG_NAME_MAX bytes */
    unsigned kinds;   /* CIO_SERVICE_* it supports */
    /**
     * Make the protocol of a new connection (or a worker's datagram endpoint).
     * Runs on the worker's thread; @p arg is that worker's state from
     * worker_init, or @c arg when there is no worker_init.
     */
    cio_protocol_factory_t factory;
    /** Optional: make this worker's state; runs on the worker's thread. 0 or -errno. */
    int (*worker_init)(void *arg, cio_loop_t *loop, void **state);
    /** Optional: release a worker's state once its connections are gone; worker's thread. */
    void (*worker_teardown)(void *state);
    /**
     * Optional: the listener has stopped accepting and its connections
     * drain (shutdown, or a reload that removes it); runs on each worker's
     * thread with its state. Close what can go without losing work, such as
     * idle keep-alive connections; what is left is aborted at drain_timeout.
     */
    void (*drain)(void *state);
    void *arg; /* given to worker_init (or to factory without one) */
} cio_service_t;

/**
 * Add @p svc to the process-wide registry (the struct is copied; the name and
 * arg must outlive the registry). -EINVAL for a bad name, no factory or no
 * kinds; -EEXIST if the name is taken; -ENOSPC past 64 services. Any
 * thread, before cio_app_new().
 */
CIO_EXTERN int cio_service_register(const cio_service_t *svc);

/** The registered service called @p name, or NULL. Any thread. */
CIO_EXTERN const cio_service_t *cio_service_find(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SERVICE_H */
