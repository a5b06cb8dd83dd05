/*
 * coreio/app.h: a coreio application, what coreiod runs. An app is built from
 * a configuration (coreio/config.h): it starts the workers and the shared
 * executor, opens every listener on every worker with its service (coreio/
 * service.h), serves statistics on the admin listener, and runs until it is
 * stopped. The calling thread runs a control loop that takes the signals:
 *
 *  - SIGINT, SIGTERM: graceful shutdown. Listeners stop accepting without
 *    losing queued connections, open connections get drain_timeout to finish,
 *    the rest are aborted, and cio_app_run() returns 0.
 *  - SIGHUP: reload the configuration file. Listeners whose socket settings
 *    are unchanged keep their sockets and connections; added ones open,
 *    removed ones drain; a file with errors leaves the running configuration
 *    alone and the errors are logged.
 *
 * Behind a load balancer, an app answers health checks: GET /health on the
 * admin listener, and HAProxy's agent-check on the [global] agent listener.
 * Draining (cio_app_drain(), or POST /drain on the admin listener) makes them
 * fail while everything else goes on, so the balancer moves the traffic
 * away before the app is stopped.
 *
 * One app runs at a time in a process (the "stats" service reports on it).
 */
#ifndef COREIO_APP_H
#define COREIO_APP_H

#include "coreio/common.h"
#include "coreio/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_app_s cio_app_t;

/** Settings that override the file and survive reloads (coreiod's command line). */
typedef struct cio_app_opts {
    const char *name;        /* prefix of the app's own log lines; NULL: "app" */
    const char *config_path; /* what SIGHUP re-reads; NULL: the embedded default */
    bool set_workers;        /* overrides [global] workers (and placement = list) */
    size_t workers;
    bool set_log_level; /* overrides [global] log_level */
    cio_log_level_t log_level;
    /*
     * The program and arguments SIGUSR2 starts to take over (argv[0] an
     * absolute path, NULL-terminated; NULL: SIGUSR2 is ignored, with a log
     * line). The new process finds this one's sockets through the
     * environment (COREIO_UPGRADE_FD), which cio_app_run() reads.
     */
    const char *const *upgrade_argv;
    /* A file cio_app_run() writes the process id to once serving (NULL: none). */
    const char *pid_file;
} cio_app_opts_t;

/**
 * The checks an app makes of a configuration beyond the file's own (a
 * cio_config_checker_t; @p arg is unused): it loads the [module] sections'
 * shared objects, and checks that each listener's service exists and speaks
 * its protocol and that each [service] section's keys are declared by the
 * service, with good values, none required missing. Give it to
 * cio_config_load_checked() to get every error of a file at once (coreiod -t
 * does).
 */
CIO_EXTERN void cio_app_check(const cio_config_t *c, cio_config_check_t *chk, void *arg);

/**
 * Make an app from @p config, which it takes over (also on failure), after
 * cio_app_check() (modules load here if the file was parsed without it). NULL on error, with a
 * malloc'd message in *@p error when @p error is not NULL ("FILE:LINE: ..."). Any thread.
 */
CIO_EXTERN cio_app_t *cio_app_new(cio_config_t *config, const cio_app_opts_t *opts, char **error);

/**
 * Start and serve until stopped; see the file comment. Returns 0 after a
 * graceful stop, or the error that kept the app from starting (a listener's
 * address in use, say; it is logged). Runs its own loop on the calling
 * thread, which must not be running one.
 */
CIO_EXTERN int cio_app_run(cio_app_t *app);

/** Ask a running app to stop gracefully, as SIGTERM does. Any thread. */
CIO_EXTERN void cio_app_stop(cio_app_t *app);

/** Ask a running app to reload its configuration, as SIGHUP does. Any thread. */
CIO_EXTERN void cio_app_reload(cio_app_t *app);

/**
 * Drain (@p on) or serve again: while draining, GET /health answers 503 and
 * the agent-check "drain", and nothing else changes: the listeners go on
 * accepting and the connections go on, for the balancer to move the traffic
 * away (a stop comes later). A change is logged. The state lasts across
 * reloads, until changed again. Any thread, running or not.
 */
CIO_EXTERN void cio_app_drain(cio_app_t *app, bool on);

/** Whether @p app is draining (cio_app_drain()). Any thread. */
CIO_EXTERN bool cio_app_draining(const cio_app_t *app);

/** Free an app that is not running. NULL is ignored. */
CIO_EXTERN void cio_app_free(cio_app_t *app);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_APP_H */
