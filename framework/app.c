/*
 * framework/app.c: a running application. cio_app_run() turns the calling
 * thread into the control loop: it starts the workers and the executor, opens
 * the listeners and the admin listener, then waits for signals. SIGTERM and
 * SIGINT drain everything and return; SIGHUP reloads the configuration file,
 * all or nothing: the new listeners open first, and only when every one of
 * them has opened do the removed ones drain. A TLS listener's context is
 * made again at every reload (its files may have changed under the same
 * names), before anything changes, so a certificate that cannot be loaded
 * refuses the reload.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreio/tls.h"
#include "systemd.h"
#include "internal.h"

static _Atomic(cio_app_t *) current_app;

cio_app_t *cio__app_current(void)
{
    return atomic_load(&current_app);
}

/* Log a line of the app's own, prefixed with its name. */
static void app_log(const cio_app_t *app, cio_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void app_log(const cio_app_t *app, cio_log_level_t level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cio__log(level, "%s: %s", app->opts.name ? app->opts.name : "app", msg);
}

/* ---- checking and adjusting a configuration ------------------------------------- */

void cio_app_check(const cio_config_t *c, cio_config_check_t *chk, void *arg)
{
    cio__check_config(c, chk, arg);
}

static void apply_overrides(const cio_app_opts_t *o, cio_config_t *c)
{
    if (o->set_workers) {
        c->workers = o->workers;
        if (c->placement == CIO_PLACE_LIST)
            c->placement = CIO_PLACE_SPREAD;
    }
    if (o->set_log_level)
        c->log_level = o->log_level;
}

cio_app_t *cio_app_new(cio_config_t *config, const cio_app_opts_t *opts, char **error)
{
    if (error)
        *error = NULL;
    char *errors = NULL;
    if (!config || cio_config_check(config, cio_app_check, NULL, &errors) < 0) {
        if (error)
            *error = errors;
        else
            free(errors);
        cio_config_free(config);
        return NULL;
    }
    cio_app_t *app = calloc(1, sizeof(*app));
    if (!app) {
        cio_config_free(config);
        return NULL;
    }
    app->opts = opts ? *opts : (cio_app_opts_t){0};
    if (app->opts.config_path && !(app->config_path = strdup(app->opts.config_path))) {
        free(app);
        cio_config_free(config);
        return NULL;
    }
    app->opts.config_path = app->config_path;
    if (app->opts.pid_file && !(app->pid_file = strdup(app->opts.pid_file))) {
        free(app->config_path);
        free(app);
        cio_config_free(config);
        return NULL;
    }
    app->opts.pid_file = app->pid_file;
    app->upgrade_chan = -1;
    apply_overrides(&app->opts, config);
    app->cfg = config;
    pthread_mutex_init(&app->mu, NULL);
    return app;
}

/* ---- start and stop --------------------------------------------------------------- */

static int set_executor_task(void *arg, void **result)
{
    cio_loop_set_default_executor(cio_get_running_loop(), arg);
    return 0;
}

static int set_debug_task(void *arg, void **result)
{
    cio_loop_set_debug(cio_get_running_loop(), true);
    return 0;
}

/*
 * Not cio_workers_broadcast(): its gather is done at the first error, while
 * the other workers may still be running @p fn on what the caller frees
 * next; every worker's outcome is awaited here, the first error kept.
 */
int cio__on_every_worker(cio_app_t *app, cio_task_fn fn, void *arg)
{
    size_t n = app->nworkers;
    cio_future_t **f = calloc(n, sizeof(*f));
    int rc = f ? 0 : -ENOMEM;
    for (size_t i = 0; f && i < n; i++)
        f[i] = cio_workers_submit(app->workers, i, fn, arg);
    for (size_t i = 0; f && i < n; i++) {
        int one = f[i] ? cio_await(f[i], NULL) : -ENOMEM;
        rc = rc < 0 ? rc : one;
        cio_future_unref(f[i]);
    }
    free(f);
    return rc;
}

static int start_workers(cio_app_t *app)
{
    const cio_config_t *c = app->cfg;
    cio_workers_opts_t wo = {.count = c->workers,
                             .placement = c->placement,
                             .cores = c->cores,
                             .ncores = c->ncores,
                             .pin = c->pin ? CIO_DEFAULT : CIO_OFF};
    if (!(app->workers = cio_workers_new(&wo)))
        return -EINVAL;
    app->nworkers = cio_workers_count(app->workers);
    if (!(app->wstats = calloc(app->nworkers, sizeof(*app->wstats))))
        return -ENOMEM;
    for (size_t i = 0; i < app->nworkers; i++)
        pthread_mutex_init(&app->wstats[i].mu, NULL);
    int rc = 0;
    if (c->executor_threads) {
        app->executor = cio_executor_new(c->executor_threads);
        rc = app->executor ? cio__on_every_worker(app, set_executor_task, app->executor) : -ENOMEM;
    }
    if (rc == 0 && c->debug)
        rc = cio__on_every_worker(app, set_debug_task, NULL);
    return rc < 0 ? rc : cio__stats_start(app);
}

/*
 * Open one of the app's own listeners, @p name ("@admin", "@agent") on
 * @p host:@p port, on the control loop: on the socket an old process handed
 * over, if it did, else bound here. Nothing to do without a port.
 */
static int open_own(cio_app_t *app, const char *name, cio_protocol_factory_t factory,
                    const char *host, const char *port, cio_server_t **out)
{
    if (!port)
        return 0;
    cio_server_opts_t o = {.sock = -1};
    int fds[16];
    int rc = cio__inherit_own(&app->inherit, name, host, port, fds, 16, &o);
    cio_future_t *f = rc < 0 ? NULL
                              : cio_loop_create_server(app->loop, factory, app,
                                                       o.use_sock ? NULL : host,
                                                       o.use_sock ? NULL : port, &o);
    void *s = NULL;
    rc = rc < 0 ? rc : f ? cio_await(f, &s) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0) {
        char where[CIO_CONFIG_LINE_MAX];
        cio_config_listener_t own = {.host = (char *)host, .port = (char *)port};
        cio__listener_address(&own, where, sizeof(where));
        app_log(app, CIO_LOG_ERROR, "%s listener %s: %s", name + 1, where, cio_strerror(rc));
        return rc;
    }
    *out = s;
    return 0;
}

/* Close one of the app's own listeners and end its clients: nothing of it outlives the app. */
static void close_own(cio_server_t **s)
{
    if (!*s)
        return;
    cio_server_close(*s);
    cio_server_abort_clients(*s);
    cio_future_t *f = cio_server_wait_closed(*s);
    if (f)
        cio_await(f, NULL);
    cio_future_unref(f);
    cio_server_free(*s);
    *s = NULL;
}

/* ---- service instances --------------------------------------------------------------- */

/* The instance named @p name in @p v, or NULL. */
static cio__instance_t *find_instance(cio__instance_t *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->svc->name, name) == 0)
            return v[i];
    return NULL;
}

/* Drop every reference of a table of instances, and the table. Inside a task. */
static void drop_instances(cio__instance_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cio__instance_unref(v[i]);
    free(v);
}

/*
 * The instance @p svc runs as under @p c: the running one (@p old) when its
 * values are the same, or when its reconfigure hook accepts the new ones;
 * otherwise a new one, started. Inside a task.
 */
static int instance_for(cio_app_t *app, const cio_config_t *c, const cio_service_t *svc,
                        cio__instance_t *old, cio__instance_t **out)
{
    cio__values_t *values = cio__values_new(svc, cio_config_find_service(c, svc->name));
    if (!values)
        return -ENOMEM;
    if (old && old->svc == svc && cio__values_equal(old->values, values)) {
        cio__values_free(values);
        *out = cio__instance_ref(old);
        return 0;
    }
    if (old && old->svc == svc && svc->reconfigure) {
        cio__values_t *copy = cio__values_new(svc, cio_config_find_service(c, svc->name));
        int rc = copy ? cio__instance_reconfigure(old, copy) : -ENOMEM;
        if (rc == 0) {
            cio__values_free(values);
            app_log(app, CIO_LOG_INFO, "service %s: reconfigured", svc->name);
            *out = cio__instance_ref(old);
            return 0;
        }
    }
    if (old)
        app_log(app, CIO_LOG_INFO, "service %s: restarting with its new keys", svc->name);
    return cio__instance_start(app, svc, values, out);
}

/*
 * The instances the listeners of @p c need, one per service, into a new table
 * (each entry a reference); the running ones are kept where they can be. On
 * failure what started is stopped. Inside a task.
 */
static int plan_instances(cio_app_t *app, const cio_config_t *c, cio__instance_t ***out,
                          size_t *nout)
{
    cio__instance_t **v = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*v));
    size_t n = 0;
    int rc = v ? 0 : -ENOMEM;
    for (size_t i = 0; i < c->nlisteners && rc == 0; i++) {
        const cio_service_t *svc = cio_service_find(c->listeners[i].service);
        if (find_instance(v, n, svc->name))
            continue;
        rc = instance_for(app, c, svc, find_instance(app->insts, app->ninsts, svc->name), &v[n]);
        n += rc == 0;
    }
    if (rc < 0) {
        drop_instances(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* Make @p v the app's table of instances; the old table's references go, and the
 * instances not in @p v begin to stop. Inside a task. */
static void swap_instances(cio_app_t *app, cio__instance_t **v, size_t n)
{
    pthread_mutex_lock(&app->mu);
    cio__instance_t **old = app->insts;
    size_t nold = app->ninsts;
    app->insts = v;
    app->ninsts = n;
    pthread_mutex_unlock(&app->mu);
    for (size_t i = 0; i < nold; i++)
        if (find_instance(v, n, old[i]->svc->name) != old[i])
            cio__instance_stopping(old[i]);
    drop_instances(old, nold);
}

/* The instance of @p cfg's service in the table @p v. */
static cio__instance_t *instance_of(cio__instance_t *const *v, size_t n,
                                    const cio_config_listener_t *cfg)
{
    cio__instance_t *inst = find_instance(v, n, cfg->service);
    assert(inst); /* plan_instances() made one for every listener's service */
    return inst;
}

/* Open @p c's listeners into a new array; on failure close what opened. */
static int open_listeners(cio_app_t *app, const cio_config_t *c, cio__listener_t ***out)
{
    size_t n = c->nlisteners;
    cio__listener_t **ls = calloc(n ? n : 1, sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    int rc = 0;
    size_t opened = 0;
    for (; opened < n && rc == 0; opened++)
        rc = cio__listener_open(app, &c->listeners[opened],
                                instance_of(app->insts, app->ninsts, &c->listeners[opened]), NULL,
                                &ls[opened]);
    if (rc < 0) {
        for (size_t i = 0; i + 1 < opened; i++)
            cio__listener_drain_and_free(ls[i], 0);
        free(ls);
        return rc;
    }
    *out = ls;
    return 0;
}

static int drain_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    cio__listener_drain_and_free(l, l->app->cfg->drain_timeout);
    return 0;
}

/* Forget the drains that have finished, so a long run of reloads keeps none. */
static void prune_drains(cio_app_t *app)
{
    size_t kept = 0;
    for (size_t i = 0; i < app->ndrains; i++) {
        if (cio_future_done(app->drains[i]))
            cio_future_unref(app->drains[i]);
        else
            app->drains[kept++] = app->drains[i];
    }
    app->ndrains = kept;
}

/* Tests only (exported): the drains the app keeps, running or not yet released. Any thread. */
CIO_EXTERN size_t cio__app_drains(cio_app_t *app);

size_t cio__app_drains(cio_app_t *app)
{
    return atomic_load(&app->ndrains);
}

/* Start draining @p l in the background; shutdown waits for it. */
static void drain_later(cio_app_t *app, cio__listener_t *l)
{
    prune_drains(app);
    cio_future_t **v = realloc(app->drains, (app->ndrains + 1) * sizeof(*v));
    cio_task_t *t = v ? cio_loop_create_task(app->loop, drain_task, l, NULL) : NULL;
    if (v)
        app->drains = v;
    if (!t) {
        app_log(app, CIO_LOG_ERROR, "out of memory: listener %s closes at once", l->cfg.name);
        cio__listener_drain_and_free(l, 0);
        return;
    }
    app->drains[app->ndrains++] = cio_task_future(t);
}

static void wait_drains(cio_app_t *app)
{
    for (size_t i = 0; i < app->ndrains; i++) {
        cio_await(app->drains[i], NULL);
        cio_future_unref(app->drains[i]);
    }
    free(app->drains);
    app->drains = NULL;
    app->ndrains = 0;
}

static void stop_everything(cio_app_t *app)
{
    /* Their children's drain time runs beside the listeners' (docs/SERVICES.md). */
    for (size_t i = 0; i < app->ninsts; i++)
        cio__instance_stopping(app->insts[i]);
    close_own(&app->admin);
    /* After a hand-over the new process answers the agent on the same socket: an old
     * one saying "maint" beside it would make the balancer flap. */
    if (app->handed_over)
        close_own(&app->agent);
    pthread_mutex_lock(&app->mu);
    cio__listener_t **ls = app->ls;
    size_t n = app->nls;
    app->ls = NULL;
    app->nls = 0;
    pthread_mutex_unlock(&app->mu);
    for (size_t i = 0; i < n; i++)
        drain_later(app, ls[i]);
    free(ls);
    wait_drains(app);
    close_own(&app->agent); /* only now: while the listeners drain, it says "maint" */
    swap_instances(app, NULL, 0); /* the services stop once their listeners are gone */
    if (app->workers)
        cio__stats_stop(app);
}

/* ---- reload ------------------------------------------------------------------------ */

static cio_config_t *read_config(cio_app_t *app, char **errors)
{
    return app->config_path ? cio_config_load_checked(app->config_path, cio_app_check, NULL, errors)
                            : cio_config_parse_checked(cio_config_default_text(), "<default>",
                                                       cio_app_check, NULL, errors);
}

/* Do two HOST:PORT settings (NULL port: off; NULL host: every interface) agree? */
static bool same_address(const char *h1, const char *p1, const char *h2, const char *p2)
{
    if (!p1 || !p2)
        return !p1 == !p2;
    return strcmp(p1, p2) == 0 && !h1 == !h2 && (!h1 || strcmp(h1, h2) == 0);
}

static void warn_restart_only(cio_app_t *app, const cio_config_t *old, const cio_config_t *nc)
{
    bool same_cores =
        old->ncores == nc->ncores &&
        (!old->ncores || !memcmp(old->cores, nc->cores, nc->ncores * sizeof(unsigned)));
    if (old->workers != nc->workers || old->placement != nc->placement || !same_cores ||
        old->pin != nc->pin || old->executor_threads != nc->executor_threads)
        app_log(app, CIO_LOG_WARNING,
                "workers, placement, cores, pin and executor_threads take "
                "effect at the next start");
    if (!same_address(old->admin_host, old->admin_port, nc->admin_host, nc->admin_port))
        app_log(app, CIO_LOG_WARNING, "admin takes effect at the next start");
    if (!same_address(old->agent_host, old->agent_port, nc->agent_host, nc->agent_port))
        app_log(app, CIO_LOG_WARNING, "agent takes effect at the next start");
}

static void log_errors(cio_app_t *app, char *errors)
{
    for (char *save = NULL, *line = strtok_r(errors, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        app_log(app, CIO_LOG_ERROR, "%s", line);
}

/* What a reload does with one listener of the new file. */
typedef enum reload_how {
    RELOAD_KEEP,        /* nothing changed */
    RELOAD_RECONFIGURE, /* backlog, per-connection settings or TLS: applied in place */
    RELOAD_TAKE_OVER,   /* another service on the same sockets: a new listener adopts them */
    RELOAD_OPEN,        /* new, or another address: a new listener, the old one drains */
} reload_how_t;

typedef struct reload_step {
    const cio_config_listener_t *cfg;
    cio__instance_t *inst; /* the instance it serves after the reload */
    cio__listener_t *old;  /* the running listener of that name, or NULL */
    reload_how_t how;
    cio__listener_t *next; /* the listener that serves cfg after the reload */
    SSL_CTX *ssl;          /* RELOAD_RECONFIGURE with TLS: the new context, until applied */
} reload_step_t;

/* What to do with @p l to serve @p c with the instance @p inst. */
static reload_how_t classify(const cio__listener_t *l, const cio_config_listener_t *c,
                             const cio__instance_t *inst)
{
    const cio_config_listener_t *o = &l->cfg;
    cio_config_listener_t same_backlog = *c;
    same_backlog.backlog = o->backlog; /* listen(2) again changes a backlog in place */
    if (!cio_config_listener_same_socket(o, &same_backlog))
        return RELOAD_OPEN;
    if (l->inst != inst) /* another service, or the service restarted */
        return RELOAD_TAKE_OVER;
    /* A datagram endpoint reads its PROXY options once: new endpoints, the same socket. */
    if (c->protocol == CIO_CONFIG_UDP && !cio_config_listener_same_proxy(o, c))
        return RELOAD_TAKE_OVER;
    if (o->backlog != c->backlog || o->idle_timeout != c->idle_timeout ||
        o->write_high != c->write_high || o->write_low != c->write_low ||
        !cio_config_listener_same_proxy(o, c))
        return RELOAD_RECONFIGURE;
    /* The files behind the same names may be new: TLS listeners always load them again. */
    if (o->tls.certificate || c->tls.certificate)
        return RELOAD_RECONFIGURE;
    return RELOAD_KEEP;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(cio__listener_t *const *)a)->cfg.name,
                  (*(cio__listener_t *const *)b)->cfg.name);
}

/* Pair each listener of @p nc with the running one of its name (n log n); the
 * instances each will serve are in @p insts. */
static int plan_reload(cio_app_t *app, const cio_config_t *nc, cio__instance_t *const *insts,
                       size_t ninsts, reload_step_t *steps)
{
    cio__listener_t **sorted = malloc((app->nls ? app->nls : 1) * sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    memcpy(sorted, app->ls, app->nls * sizeof(*sorted));
    qsort(sorted, app->nls, sizeof(*sorted), by_name);
    for (size_t i = 0; i < nc->nlisteners; i++) {
        cio__listener_t key = {.cfg.name = nc->listeners[i].name}, *k = &key;
        cio__listener_t **found = bsearch(&k, sorted, app->nls, sizeof(*sorted), by_name);
        steps[i] = (reload_step_t){.cfg = &nc->listeners[i],
                                   .inst = instance_of(insts, ninsts, &nc->listeners[i]),
                                   .old = found ? *found : NULL};
        steps[i].how = found ? classify(*found, steps[i].cfg, steps[i].inst) : RELOAD_OPEN;
    }
    free(sorted);
    return 0;
}

/* The new TLS contexts of the listeners reconfigured in place, made before
 * anything changes: one that cannot be made refuses the reload. */
static int make_contexts(cio_app_t *app, reload_step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *key = "tls_certificate";
        if (steps[i].how != RELOAD_RECONFIGURE)
            continue;
        int rc = cio__listener_tls_context(steps[i].cfg, &steps[i].ssl, &key);
        if (rc < 0) {
            app_log(app, CIO_LOG_ERROR, "listener %s: %s: %s", steps[i].cfg->name, key,
                    cio_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static void free_contexts(reload_step_t *steps, size_t n)
{
    for (size_t i = 0; steps && i < n; i++) {
        SSL_CTX_free(steps[i].ssl);
        steps[i].ssl = NULL;
    }
}

/* Open the new listeners (fresh ones first: they may find their address busy);
 * on failure close those opened, which gives taken-over sockets back. */
static int open_new(cio_app_t *app, reload_step_t *steps, size_t n)
{
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (size_t i = 0; i < n && rc == 0; i++)
            if (steps[i].how == (pass ? RELOAD_TAKE_OVER : RELOAD_OPEN))
                rc = cio__listener_open(app, steps[i].cfg, steps[i].inst,
                                        pass ? steps[i].old : NULL, &steps[i].next);
    for (size_t i = 0; rc < 0 && i < n; i++)
        if (steps[i].how >= RELOAD_TAKE_OVER && steps[i].next)
            cio__listener_drain_and_free(steps[i].next, 0);
    return rc;
}

/* Make the new listeners the running list; drain the old ones not in it. */
static void swap_listeners(cio_app_t *app, reload_step_t *steps, cio__listener_t **next, size_t n)
{
    for (size_t i = 0; i < n; i++)
        next[i] = steps[i].how >= RELOAD_TAKE_OVER ? steps[i].next : steps[i].old;
    for (size_t i = 0; i < n; i++) {
        if (steps[i].how == RELOAD_RECONFIGURE)
            cio__listener_reconfigure(steps[i].old, steps[i].cfg, steps[i].ssl);
        steps[i].ssl = NULL; /* taken over */
    }
    pthread_mutex_lock(&app->mu);
    cio__listener_t **old = app->ls;
    size_t nold = app->nls;
    app->ls = next;
    app->nls = n;
    pthread_mutex_unlock(&app->mu);
    for (size_t k = 0; k < nold; k++)
        old[k]->reload_mark = false;
    for (size_t i = 0; i < n; i++)
        next[i]->reload_mark = true;
    for (size_t i = 0; i < n; i++)
        if (steps[i].old && steps[i].next)
            steps[i].old->replaced = true;
    for (size_t k = 0; k < nold; k++)
        if (!old[k]->reload_mark)
            drain_later(app, old[k]);
    free(old);
}

/* What a reload's reading of the file found, made on an executor thread. */
typedef struct read_outcome {
    cio_config_t *config;
    char *errors;
} read_outcome_t;

static int read_config_job(void *arg, void **result)
{
    read_outcome_t *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    o->config = read_config(arg, &o->errors);
    *result = o;
    return 0;
}

/* The future's destructor for the outcome: frees what the control loop did not take. */
static void read_outcome_free(void *result)
{
    read_outcome_t *o = result;
    cio_config_free(o->config);
    free(o->errors);
    free(o);
}

/* Read and check the file off the control loop, so a huge one never stalls it. */
static cio_config_t *read_config_off_loop(cio_app_t *app, char **errors)
{
    cio_future_t *f = cio_loop_run_in_executor_owned(app->loop, NULL, read_config_job, app, NULL,
                                                     read_outcome_free);
    read_outcome_t *o = NULL;
    int rc = f ? cio_await(f, (void **)&o) : -ENOMEM;
    cio_config_t *c = NULL;
    if (rc == 0) {
        c = o->config;
        *errors = o->errors;
        o->config = NULL;
        o->errors = NULL;
    }
    cio_future_unref(f); /* frees the outcome */
    return c;
}

static void reload_config(cio_app_t *app)
{
    char *errors = NULL;
    cio_config_t *nc = read_config_off_loop(app, &errors);
    if (!nc) {
        app_log(app, CIO_LOG_ERROR, "reload failed, keeping the running configuration");
        log_errors(app, errors);
        free(errors);
        return;
    }
    apply_overrides(&app->opts, nc);
    size_t n = nc->nlisteners, nopen = 0, ninsts = 0;
    cio__instance_t **insts = NULL;
    reload_step_t *steps = calloc(n ? n : 1, sizeof(*steps));
    cio__listener_t **next = calloc(n ? n : 1, sizeof(*next));
    int rc = steps && next ? plan_instances(app, nc, &insts, &ninsts) : -ENOMEM;
    if (rc == 0 && (rc = plan_reload(app, nc, insts, ninsts, steps)) == 0 &&
        (rc = make_contexts(app, steps, n)) == 0)
        rc = open_new(app, steps, n);
    if (rc < 0) {
        app_log(app, CIO_LOG_ERROR, "reload failed, keeping the running configuration: %s",
                cio_strerror(rc));
        free_contexts(steps, n);
        if (insts)
            drop_instances(insts, ninsts);
        cio_config_free(nc);
        free(steps);
        free(next);
        return;
    }
    for (size_t i = 0; i < n; i++)
        nopen += steps[i].how >= RELOAD_TAKE_OVER;
    swap_listeners(app, steps, next, n);
    swap_instances(app, insts, ninsts);
    free(steps);
    warn_restart_only(app, app->cfg, nc);
    cio_log_set_level(nc->log_level);
    cio_log_set_format(nc->log_format);
    cio_workers_set_idle_poll(nc->idle_poll);
    cio_config_free(app->cfg);
    app->cfg = nc;
    app_log(app, CIO_LOG_INFO, "reloaded: %zu listener%s, %zu of them opened or moved", n,
            n == 1 ? "" : "s", nopen);
}

/* SIGHUP: systemd hears the reload begin and end, whatever its outcome. */
static void reload(cio_app_t *app)
{
    cio__announce_reloading(app);
    reload_config(app);
    cio__announce_reloaded(app);
}

/* ---- upgrade ----------------------------------------------------------------------- */

/* SIGUSR2: a new process takes our sockets over; once it serves, we stop. */
static void upgrade(cio_app_t *app)
{
    if (!app->opts.upgrade_argv) {
        app_log(app, CIO_LOG_WARNING, "SIGUSR2: this app was not given a program to upgrade to");
        return;
    }
    app_log(app, CIO_LOG_INFO, "upgrade: starting %s", app->opts.upgrade_argv[0]);
    if (cio__handover_upgrade(app) == 0) {
        app->handed_over = true;
        atomic_store(&app->stop_requested, 1);
    }
}

/* ---- the control loop -------------------------------------------------------------- */

/* Wake the control loop's main task (on the control loop); a stop also ends
 * the wait for an upgrade's answer. */
static int poke(void *arg)
{
    cio_app_t *app = arg;
    if (app->wake && !cio_future_done(app->wake))
        cio_future_set_result(app->wake, NULL);
    if (app->upgrading && atomic_load(&app->stop_requested))
        cio_future_cancel(app->upgrading, "stop requested");
    return 0;
}

static int on_stop_signal(void *arg)
{
    cio_app_t *app = arg;
    atomic_store(&app->stop_requested, 1);
    return poke(app);
}

static int on_reload_signal(void *arg)
{
    cio_app_t *app = arg;
    atomic_store(&app->reload_requested, 1);
    return poke(app);
}

static int on_upgrade_signal(void *arg)
{
    cio_app_t *app = arg;
    atomic_store(&app->upgrade_requested, 1);
    return poke(app);
}

/* Post @p cb to the control loop, if it runs. */
static void post(cio_app_t *app, cio_callback_t cb)
{
    pthread_mutex_lock(&app->mu);
    if (app->loop)
        cio_loop_call_soon_threadsafe(app->loop, cb, app);
    pthread_mutex_unlock(&app->mu);
}

void cio_app_stop(cio_app_t *app)
{
    atomic_store(&app->stop_requested, 1);
    post(app, poke);
}

void cio_app_reload(cio_app_t *app)
{
    atomic_store(&app->reload_requested, 1);
    post(app, poke);
}

/* The sockets systemd or an old coreiod gave us, for the listeners to take; and
 * the notify socket, kept for ourselves. */
static int collect_inherited(cio_app_t *app)
{
    const char *notify = getenv("NOTIFY_SOCKET");
    if (notify && !app->notify_socket && !(app->notify_socket = strdup(notify)))
        return -ENOMEM;
    unsetenv("NOTIFY_SOCKET");
    int rc = cio__inherit_from_systemd(&app->inherit);
    if (rc == 0)
        rc = cio__handover_receive(&app->inherit, &app->upgrade_chan);
    app->upgraded = app->upgrade_chan >= 0;
    return rc;
}

static int start(cio_app_t *app)
{
    cio_log_set_level(app->cfg->log_level);
    cio_log_set_format(app->cfg->log_format);
    cio_workers_set_idle_poll(app->cfg->idle_poll);
    int rc = collect_inherited(app);
    if (rc == 0)
        rc = start_workers(app);
    if (rc == 0)
        rc = open_own(app, "@admin", cio__stats_protocol, app->cfg->admin_host,
                      app->cfg->admin_port, &app->admin);
    cio__instance_t **insts = NULL;
    size_t ninsts = 0;
    if (rc == 0 && (rc = plan_instances(app, app->cfg, &insts, &ninsts)) == 0)
        swap_instances(app, insts, ninsts);
    if (rc == 0) {
        cio__listener_t **ls = NULL;
        rc = open_listeners(app, app->cfg, &ls);
        pthread_mutex_lock(&app->mu);
        app->ls = ls;
        app->nls = rc == 0 ? app->cfg->nlisteners : 0;
        pthread_mutex_unlock(&app->mu);
    }
    if (rc == 0) /* last: "up" only once every listener serves */
        rc = open_own(app, "@agent", cio__agent_protocol, app->cfg->agent_host,
                      app->cfg->agent_port, &app->agent);
    return rc;
}

static const int stop_signals[] = {SIGINT, SIGTERM};

static void watch_signals(cio_app_t *app, bool on)
{
    for (size_t i = 0; i < 2; i++)
        if (on)
            cio_loop_add_signal_handler(app->loop, stop_signals[i], on_stop_signal, app);
        else
            cio_loop_remove_signal_handler(app->loop, stop_signals[i]);
    if (on) {
        cio_loop_add_signal_handler(app->loop, SIGHUP, on_reload_signal, app);
        cio_loop_add_signal_handler(app->loop, SIGUSR2, on_upgrade_signal, app);
    } else {
        cio_loop_remove_signal_handler(app->loop, SIGHUP);
        cio_loop_remove_signal_handler(app->loop, SIGUSR2);
    }
}

/* Wait until a signal or a request arrives. */
static void wait_for_work(cio_app_t *app)
{
    app->wake = cio_loop_create_future(app->loop);
    if (!app->wake)
        return;
    if (!atomic_load(&app->stop_requested) && !atomic_load(&app->reload_requested) &&
        !atomic_load(&app->upgrade_requested))
        cio_await(app->wake, NULL);
    cio_future_unref(app->wake);
    app->wake = NULL;
}

static int app_main(void *arg, void **result)
{
    cio_app_t *app = arg;
    pthread_mutex_lock(&app->mu);
    app->loop = cio_get_running_loop();
    pthread_mutex_unlock(&app->mu);
    atomic_store(&current_app, app);
    watch_signals(app, true);
    int rc = start(app);
    if (rc == 0) {
        cio__announce_ready(app);
        app_log(app, CIO_LOG_INFO, "ready (%zu worker%s, %zu listener%s)", app->nworkers,
                app->nworkers == 1 ? "" : "s", app->nls, app->nls == 1 ? "" : "s");
    } else {
        cio__announce_failed_start(app);
    }
    while (rc == 0 && !atomic_load(&app->stop_requested)) {
        if (atomic_exchange(&app->upgrade_requested, 0))
            upgrade(app);
        else if (atomic_exchange(&app->reload_requested, 0))
            reload(app);
        else
            wait_for_work(app);
    }
    app_log(app, CIO_LOG_INFO, "stopping");
    cio__announce_stopping(app);
    stop_everything(app);
    cio__announce_stopped(app);
    watch_signals(app, false);
    atomic_store(&current_app, NULL);
    pthread_mutex_lock(&app->mu);
    app->loop = NULL;
    pthread_mutex_unlock(&app->mu);
    if (rc == 0)
        app_log(app, CIO_LOG_INFO, "stopped");
    return rc;
}

int cio_app_run(cio_app_t *app)
{
    if (!app)
        return -EINVAL;
    atomic_store(&app->stop_requested, 0);
    int rc = cio_run(app_main, app, app->cfg->debug, NULL);
    cio_workers_free(app->workers);
    app->workers = NULL;
    if (app->executor) {
        cio_executor_shutdown(app->executor, true, false);
        cio_executor_free(app->executor);
        app->executor = NULL;
    }
    for (size_t i = 0; app->wstats && i < app->nworkers; i++)
        pthread_mutex_destroy(&app->wstats[i].mu);
    free(app->wstats);
    app->wstats = NULL;
    return rc;
}

void cio_app_free(cio_app_t *app)
{
    if (!app)
        return;
    cio_config_free(app->cfg);
    pthread_mutex_destroy(&app->mu);
    free(app->config_path);
    free(app->pid_file);
    free(app->notify_socket);
    free(app);
}
