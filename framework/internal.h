/*
 * framework/internal.h: what the files of framework/ share. The app
 * (app.c) owns the workers, the listeners (listener.c) and the statistics
 * (stats.c); services come from the registry (service.c).
 */
#ifndef CIO_FRAMEWORK_INTERNAL_H
#define CIO_FRAMEWORK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "coreio.h"
#include "coreio/app.h"
#include "coreio/config.h"
#include "coreio/service.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

/* loop/log.c */
void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- listener.c: one configured listener, open on every worker ---------------- */

typedef struct cio__listener {
    struct cio_app_s *app;
    cio_config_listener_t cfg; /* a private copy: it outlives reloads */
    const cio_service_t *svc;
    void **state; /* per worker: worker_init's state, or the service's arg */
    bool *inited; /* per worker: worker_init succeeded */
    cio_sharded_t *sharded;
    bool reload_mark; /* a reload's scratch: in the new list (control loop only) */
} cio__listener_t;

/* Inside a task on the control loop: open @p cfg's service on every worker,
 * on the listening sockets of @p from (which then drains) if not NULL. */
int cio__listener_open(struct cio_app_s *app, const cio_config_listener_t *cfg,
                       cio__listener_t *from, cio__listener_t **out);

/* Inside a task: apply @p cfg's backlog, idle timeout and water marks to the
 * open listener @p l (its connections from now on); 0 or -errno. */
int cio__listener_reconfigure(cio__listener_t *l, const cio_config_listener_t *cfg);

/* Inside a task: stop accepting (losing nothing queued), give the connections
 * @p drain_timeout seconds, abort the rest, release everything. */
void cio__listener_drain_and_free(cio__listener_t *l, double drain_timeout);

/* ---- stats.c: per-worker statistics and their Prometheus text ------------------ */

typedef struct cio__worker_stats {
    pthread_mutex_t mu;
    cio_loop_stats_t loop; /* the last snapshot */
    double lag;            /* how late the last tick ran, seconds */
    double lag_max;        /* the worst since the start */
    cio_handle_t tick;     /* the worker's own timer (its thread only) */
    bool stopping;
} cio__worker_stats_t;

/* Inside a task on the control loop: start (or stop) every worker's ticker. */
int cio__stats_start(struct cio_app_s *app);
void cio__stats_stop(struct cio_app_s *app);

/* The Prometheus text of @p app's statistics, malloc'd (length in *len). Any thread. */
char *cio__stats_format(struct cio_app_s *app, size_t *len);

/* The "stats" service: an HTTP responder with the running app's statistics. */
extern const cio_service_t cio__service_stats;

/* ---- app.c ------------------------------------------------------------------------ */

struct cio_app_s {
    cio_config_t *cfg;
    cio_app_opts_t opts;
    char *config_path;
    cio_workers_t *workers;
    cio_executor_t *executor;
    cio__worker_stats_t *wstats; /* one per worker */
    size_t nworkers;
    cio_loop_t *loop; /* the control loop, while running; set and read under @mu */
    cio_server_t *admin;
    cio_future_t **drains;  /* listeners draining after a reload, finished ones released */
    _Atomic size_t ndrains; /* written by the control loop; atomic so tests may read it */
    cio_future_t *wake;     /* settled when a signal or a request needs the app's attention */
    _Atomic int stop_requested, reload_requested;
    /* The listeners; the control loop changes the list under @mu, other
     * threads (the stats service) read it under @mu. */
    pthread_mutex_t mu;
    cio__listener_t **ls;
    size_t nls;
};

/* Inside a task on the control loop: run @p fn(@p arg) on every worker and
 * wait for all; the first error, or 0. */
int cio__on_every_worker(struct cio_app_s *app, cio_task_fn fn, void *arg);

/* The app running in this process, for the stats service; NULL when none. */
struct cio_app_s *cio__app_current(void);

#endif /* CIO_FRAMEWORK_INTERNAL_H */
