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
#include "metrics.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

/* loop/log.c */
void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- service.c: the registry ------------------------------------------------------ */

/* Register all of @p svcs or none: -EINVAL, -EEXIST or -ENOSPC as cio_service_register(). */
int cio__service_register_many(const cio_service_t *const *svcs, size_t n);

/* ---- instance.c: a service started on every worker ------------------------------- */

/* A service's key values, in the order of its keys; never changed once made. */
typedef struct cio__values {
    size_t n;
    cio_config_value_t v[];
} cio__values_t;

/* What a callback sees (coreio/service.h): the service's, or a listener's, on a worker. */
struct cio_service_ctx {
    struct cio__instance *inst;
    size_t worker;
    cio_loop_t *loop;
    const cio_config_listener_t *listener; /* NULL: the service's own context */
    void *lstate;                          /* listener_start's state */
};

/* A task a service owns (cio_service_spawn()), on its worker's list while it runs. */
typedef struct cio__spawned {
    struct cio__svc_worker *w; /* NULL once the list let it go (stop timed out) */
    cio_task_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
    cio_task_t *task; /* the list's reference */
} cio__spawned_t;

/* A child process a service owns (children.c). */
typedef struct cio__child cio__child_t;

/* One worker's part of an instance; touched on that worker's thread only. */
typedef struct cio__svc_worker {
    struct cio_service_ctx ctx; /* the service's own context here */
    void *state;                /* start's */
    bool started;
    bool stopping;               /* no more tasks or children may start */
    const cio__values_t *values; /* what cio_service_value() reads here */
    cio__spawned_t **tasks;      /* cio_service_spawn()'s, still running */
    size_t ntasks, tasks_cap;
    cio__child_t *children;         /* cio_service_subprocess_exec()'s, not finished */
    size_t nchildren, nstarting;    /* on the list; of them, not started yet */
    cio_future_t *children_changed; /* settled when the list changes, while the stop waits */
} cio__svc_worker_t;

/* A service started on every worker, shared by the listeners that name it. */
typedef struct cio__instance {
    struct cio_app_s *app;
    const cio_service_t *svc;
    cio__values_t *values;  /* the latest (control loop); workers read their own pointer */
    cio__values_t *retired; /* values replaced by a reconfigure, freed with the instance */
    cio__svc_worker_t *w;   /* one per worker */
    size_t nworkers;
    size_t refs;         /* the app's table while current, plus one per listener (control loop) */
    double task_timeout; /* how long stopping waits for the service's tasks (drain_timeout) */
    /* Loop time the service began to stop (shutdown, or the reload that removed or
     * restarted it); its children have until then + task_timeout. 0: at once. */
    double stop_began;
    /* Who may still touch the memory: one while refs > 0, plus one per cross-shard
     * call in flight (calls.c), which may be released on any thread. */
    _Atomic size_t pins;
    struct cio__metrics *metrics;
} cio__instance_t;

/* The values of @p svc's keys from @p section (NULL: every default); NULL when out of
 * memory. The section has been checked (check.c). Any thread. */
cio__values_t *cio__values_new(const cio_service_t *svc, const cio_config_service_t *section);
bool cio__values_equal(const cio__values_t *a, const cio__values_t *b);
void cio__values_free(cio__values_t *v);

/* Inside a task on the control loop: start @p svc with @p values (taken over) on every
 * worker; 0 or the first worker's error, after stopping the workers that started. */
int cio__instance_start(struct cio_app_s *app, const cio_service_t *svc, cio__values_t *values,
                        cio__instance_t **out);

/* Inside a task: give every worker @p values (taken over) and call reconfigure;
 * 0, or the first error (the instance must then be restarted). */
int cio__instance_reconfigure(cio__instance_t *inst, cio__values_t *values);

/* Take, or (inside a task) drop, a reference; the last one stops the instance on
 * every worker: its tasks are cancelled and awaited, then stop runs. */
cio__instance_t *cio__instance_ref(cio__instance_t *inst);
void cio__instance_unref(cio__instance_t *inst);

/* The service begins to stop (shutdown, or a reload that removes or restarts it): the
 * drain time of its children counts from now. Control loop; later calls change nothing. */
void cio__instance_stopping(cio__instance_t *inst);

/* Keep the instance's memory (not the service) alive; the last unpin frees it. Any thread. */
cio__instance_t *cio__instance_pin(cio__instance_t *inst);
void cio__instance_unpin(cio__instance_t *inst);

/* The index of the worker running the calling thread (a worker of @p app). */
size_t cio__worker_index(const struct cio_app_s *app);

/* ---- children.c: child processes a service owns ---------------------------------- */

/* Inside a task on @p w's worker: no more children; those left have until loop time
 * @p deadline to exit, then get SIGTERM, then a second later SIGKILL; returns once each
 * is reaped and its protocol has had connection_lost (or, past another second, after
 * letting the rest go to the loop's close with a warning). */
void cio__children_end(cio__svc_worker_t *w, double deadline);

/* No more children, and let those left go at once: the ones still running are killed
 * (cio_subprocess_close()), and the loop reaps them. The worker's thread, in a task or not. */
void cio__children_release(cio__svc_worker_t *w);

/* ---- check.c: what a configuration asks of services and modules ------------------- */

/* The checker the app parses files with (cio_config_checker_t; @p arg unused). */
void cio__check_config(const cio_config_t *c, cio_config_check_t *chk, void *arg);

/* ---- listener.c: one configured listener, open on every worker ---------------- */

typedef struct cio__listener {
    struct cio_app_s *app;
    cio_config_listener_t cfg;   /* a private copy: it outlives reloads */
    cio__instance_t *inst;       /* the service it serves (a reference) */
    struct cio_service_ctx *ctx; /* per worker */
    bool *lstarted;              /* per worker: listener_start succeeded (or there is none) */
    cio_sharded_t *sharded;
    struct ssl_ctx_st *ssl; /* TLS: the context its servers share (a reference), else NULL */
    bool shared;            /* its sockets are systemd's too: never filtered nor unlinked */
    bool lent;              /* the old coreiod keeps its copies until our answer: as shared */
    bool reload_mark;       /* a reload's scratch: in the new list (control loop only) */
    bool replaced;          /* a listener of the same name serves in its place (for the log) */
} cio__listener_t;

/* Inside a task on the control loop: open @p cfg with @p inst (a reference is taken) on
 * every worker, on the listening sockets of @p from (which then drains) if not NULL. */
int cio__listener_open(struct cio_app_s *app, const cio_config_listener_t *cfg,
                       cio__instance_t *inst, cio__listener_t *from, cio__listener_t **out);

/* A deep copy of @p src into @p dst (0 or -ENOMEM, nothing kept), and its release. */
int cio__listener_cfg_copy(cio_config_listener_t *dst, const cio_config_listener_t *src);
void cio__listener_cfg_clear(cio_config_listener_t *c);

/* @p c's address as logs show it: [V6]:PORT, HOST:PORT, *:PORT or a path. */
void cio__listener_address(const cio_config_listener_t *c, char *out, size_t size);

/* The old coreiod has let go of the sockets @p l took from it: closing @p l drains
 * them again (cio_sharded_owned()). Control loop. */
void cio__listener_own(cio__listener_t *l);

/* Inside a task: apply @p cfg's backlog, idle timeout, water marks and TLS
 * context @p ssl (taken over; NULL: plaintext) to the open listener @p l, for
 * its connections from now on; 0 or -errno. */
int cio__listener_reconfigure(cio__listener_t *l, const cio_config_listener_t *cfg,
                              struct ssl_ctx_st *ssl);

/* 0 if @p path names a regular file this process can open for reading, else
 * -errno (-EISDIR for a directory, -EINVAL for another kind of file). Any thread. */
int cio__file_readable(const char *path);

/*
 * The server context @p cfg's tls_* keys describe into *@p out (NULL when it
 * has no tls_certificate: plaintext): 0, or the -errno of a file that cannot
 * be read or the error of cio_tls_server_context() and
 * cio_tls_context_verify_clients(), with *@p key set to the key at fault
 * ("tls_certificate", "tls_key", "tls_ca", "tls_min_version"). Any thread.
 */
int cio__listener_tls_context(const cio_config_listener_t *cfg, struct ssl_ctx_st **out,
                              const char **key);

/* Inside a task: stop accepting (losing nothing queued), give the connections
 * @p drain_timeout seconds, end the rest (TLS: closed, so that close_notify is
 * sent, and aborted only if that has not ended them a second later; plaintext:
 * aborted), release everything. */
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

/* A protocol of the admin listener (a cio_protocol_factory_t; @p arg unused). */
cio_protocol_t *cio__stats_protocol(void *arg);

/* The "stats" service: an HTTP responder with the running app's statistics. */
extern const cio_service_t cio__service_stats;

/* ---- clients.c: a small listener's clients, oldest first, each with a deadline ---- */

typedef struct cio__client {
    cio_transport_t *t;
    cio_handle_t deadline;
    struct cio__clients *list; /* NULL once removed */
    struct cio__client *prev, *next;
} cio__client_t;

typedef struct cio__clients {
    cio__client_t *head, *tail;
    size_t n;
} cio__clients_t;

/* Inside connection_made: add @p c (whose transport is @p t) to @p l, aborting the
 * oldest client first when @p l holds @p max already; @p c is aborted and removed
 * @p timeout seconds from now unless removed before. 0, or -errno from the timer. */
int cio__clients_add(cio__clients_t *l, cio__client_t *c, cio_transport_t *t, size_t max,
                     double timeout);

/* Take @p c off its list and cancel its deadline; again changes nothing. */
void cio__clients_remove(cio__client_t *c);

/* ---- health.c: what the app answers to a load balancer's checks ------------------ */

typedef enum cio__health {
    CIO__HEALTH_SERVING = 0,
    CIO__HEALTH_DRAINING, /* cio_app_drain(): checks fail, connections go on */
    CIO__HEALTH_STOPPING, /* a stop was asked for: listeners drain */
} cio__health_t;

/* The state @p app is in, and its word ("serving", "draining", "stopping"). Any thread. */
cio__health_t cio__health(const struct cio_app_s *app);
const char *cio__health_word(cio__health_t h);

/* The load weight, 10..100 (percent), from the worst worker's loop lag. Any thread. */
unsigned cio__health_weight(struct cio_app_s *app);

/* ---- agent.c: the HAProxy agent-check listener ([global] agent) ------------------ */

/* A protocol of the agent listener (a cio_protocol_factory_t; @p app the app). */
cio_protocol_t *cio__agent_protocol(void *app);

/* ---- inherit.c: listening sockets given to this process ------------------------ */

typedef struct cio__inherited {
    char *name;     /* a listener's, or "@admin" / "@agent" */
    int fd;         /* the table's; whoever takes it serves a copy */
    uint32_t id;    /* the giver's number for it (a hand-over's answer names it) */
    size_t worker;  /* the giver's worker (systemd: each socket its own) */
    bool described; /* from an old coreiod: cfg holds its listener's socket fields */
    bool shared;    /* its giver keeps it open after we close ours (systemd does) */
    bool taken;
    cio_config_listener_t cfg;
} cio__inherited_t;

typedef struct cio__inherit {
    cio__inherited_t *v;
    size_t n;
} cio__inherit_t;

/* Add @p fd (taken over) named @p name, of the giver's worker @p worker; @p cfg (copied;
 * NULL from systemd) describes it; @p shared: its giver keeps it open for good. */
int cio__inherit_add(cio__inherit_t *in, const char *name, int fd, uint32_t id, size_t worker,
                     const cio_config_listener_t *cfg, bool shared);

/* What a listener takes from the table. */
typedef struct cio__taken {
    int *fds;      /* malloc'd (the caller frees the array); the table keeps the sockets */
    size_t n, per; /* n sockets in groups of per, one group per worker */
    bool shared;   /* one of them is kept by its giver (systemd) */
    bool lent;     /* they came from an old coreiod, which keeps them until our answer */
} cio__taken_t;

/* The sockets @p cfg may serve, at most @p groups worker groups, now taken: 0 (none is
 * n 0), or a negative error (logged) when a socket of its name cannot serve it (another
 * type, family or port). */
int cio__inherit_take(cio__inherit_t *in, const cio_config_listener_t *cfg, size_t groups,
                      cio__taken_t *out);

/* The app's own listener @p name ("@admin", "@agent") on @p host:@p port: when the
 * table has its sockets, copies go into @p fds (room for @p max) and @p o is set to
 * serve them (use_sock); 0 either way, or -errno. */
int cio__inherit_own(cio__inherit_t *in, const char *name, const char *host, const char *port,
                     int *fds, size_t max, cio_server_opts_t *o);

/* Close every descriptor of the table and empty it; systemd's sockets that no
 * listener took are named in a warning. */
void cio__inherit_release(cio__inherit_t *in);

/* Socket activation: add what systemd passed (LISTEN_FDS), by name; 0 or -errno (logged). */
int cio__inherit_from_systemd(cio__inherit_t *in);

/* ---- handover.c: the zero-loss restart (SIGUSR2) ------------------------------- */

/* Inside a task on the control loop of the running app: start the new process, hand
 * it the listening sockets, wait for its answer; 0 once it serves (then the caller
 * stops), or the error (logged), the app going on as before. */
int cio__handover_upgrade(struct cio_app_s *app);

/* In the new process, before it starts: the sockets of the old one, if COREIO_UPGRADE_FD
 * is set, into @p in; *@p chan is the channel to answer on (-1: no upgrade). 0 or -errno. */
int cio__handover_receive(cio__inherit_t *in, int *chan);

/* Tell the old process which inherited sockets were taken (on app->upgrade_chan), then
 * wait on the control loop for its "let go": only then are the sockets ours alone
 * (cio__listener_own()). The channel is closed on failure; 0 or -errno. */
int cio__handover_ready(struct cio_app_s *app);

/* Stop waiting for the old process's "let go" (a stop), closing the channel. */
void cio__handover_forget(struct cio_app_s *app);

/* ---- announce.c: the app's state, told to systemd, the pid file, an old process -- */

/* Serving: the old process hears what we took (the inherited sockets are released),
 * systemd READY (and our MAINPID after an upgrade), the pid file is written. */
void cio__announce_ready(struct cio_app_s *app);
/* The start failed: an old process goes on; the inherited sockets are released. */
void cio__announce_failed_start(struct cio_app_s *app);
void cio__announce_reloading(struct cio_app_s *app);
void cio__announce_reloaded(struct cio_app_s *app);
void cio__announce_stopping(struct cio_app_s *app);
/* Gone: the pid file is removed if it still names this process. */
void cio__announce_stopped(struct cio_app_s *app);

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
    cio__inherit_t inherit; /* sockets given to this process, until it has started */
    int upgrade_chan;       /* started by an upgrade: the channel to the old process, else -1 */
    bool upgraded;          /* started by an upgrade (systemd hears our MAINPID) */
    bool handed_over;       /* our sockets went to a new process: stopping is no news */
    char *pid_file;         /* opts.pid_file, copied */
    /* NOTIFY_SOCKET, taken out of the environment at the start so that the
     * services' children cannot speak for us (an upgrade's process gets it back). */
    char *notify_socket;
    _Atomic int upgrade_requested;
    cio_server_t *agent;     /* the agent-check listener (agent.c), NULL when off */
    _Atomic bool draining;   /* cio_app_drain(): health checks fail */
    cio_future_t **drains;   /* listeners draining after a reload, finished ones released */
    _Atomic size_t ndrains;  /* written by the control loop; atomic so tests may read it */
    cio_future_t *wake;      /* settled when a signal or a request needs the app's attention */
    cio_future_t *upgrading; /* the wait for an upgrade's answer, which a stop cancels */
    _Atomic int stop_requested, reload_requested;
    /* The listeners; the control loop changes the list under @mu, other
     * threads (the stats service) read it under @mu. */
    pthread_mutex_t mu;
    cio__listener_t **ls;
    size_t nls;
    /* The current instance of each service some listener names, under @mu as the
     * listeners (the stats service reads their metrics). */
    cio__instance_t **insts;
    size_t ninsts;
};

/* Inside a task on the control loop: run @p fn(@p arg) on every worker and
 * wait for all of them, also after an error; the first error, or 0. */
int cio__on_every_worker(struct cio_app_s *app, cio_task_fn fn, void *arg);

/* The app running in this process, for the stats service; NULL when none. */
struct cio_app_s *cio__app_current(void);

#endif /* CIO_FRAMEWORK_INTERNAL_H */
