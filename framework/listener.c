/*
 * framework/listener.c: one [listener] of the configuration, open on every
 * worker. Each worker gets its own service state (worker_init runs on the
 * worker's thread), and the sharded server's factory hands each new
 * connection the state of the worker it lands on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The index of the worker this thread runs, found once per thread. */
static __thread const cio_workers_t *tls_workers;
static __thread size_t tls_index;

static size_t worker_index(const cio_workers_t *w)
{
    if (tls_workers != w) {
        cio_loop_t *loop = cio_get_running_loop();
        for (size_t i = 0; i < cio_workers_count(w); i++)
            if (cio_workers_loop(w, i) == loop)
                tls_index = i;
        tls_workers = w;
    }
    return tls_index;
}

/* The sharded server's factory, on a worker: the service's, with that worker's state. */
static cio_protocol_t *listener_factory(void *arg)
{
    cio__listener_t *l = arg;
    return l->svc->factory(l->state[worker_index(l->app->workers)]);
}

/* ---- per-worker state --------------------------------------------------------- */

static int init_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = worker_index(l->app->workers);
    if (!l->svc->worker_init) {
        l->state[i] = l->svc->arg;
        return 0;
    }
    int rc = l->svc->worker_init(l->svc->arg, cio_get_running_loop(), &l->state[i]);
    l->inited[i] = rc == 0;
    return rc;
}

static int drain_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = worker_index(l->app->workers);
    if (l->svc->drain && (l->inited[i] || !l->svc->worker_init))
        l->svc->drain(l->state[i]);
    return 0;
}

static int teardown_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = worker_index(l->app->workers);
    if (l->inited[i] && l->svc->worker_teardown)
        l->svc->worker_teardown(l->state[i]);
    l->inited[i] = false;
    return 0;
}

/* ---- the copy of the configuration ----------------------------------------------- */

static void cfg_clear(cio_config_listener_t *c)
{
    free(c->name);
    free(c->service);
    free(c->host);
    free(c->port);
    free(c->path);
}

static int cfg_copy(cio_config_listener_t *dst, const cio_config_listener_t *src)
{
    *dst = *src;
    dst->name = src->name ? strdup(src->name) : NULL;
    dst->service = src->service ? strdup(src->service) : NULL;
    dst->host = src->host ? strdup(src->host) : NULL;
    dst->port = src->port ? strdup(src->port) : NULL;
    dst->path = src->path ? strdup(src->path) : NULL;
    if ((src->name && !dst->name) || (src->service && !dst->service) || (src->host && !dst->host) ||
        (src->port && !dst->port) || (src->path && !dst->path)) {
        cfg_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

static void listener_free(cio__listener_t *l)
{
    cfg_clear(&l->cfg);
    free(l->state);
    free(l->inited);
    free(l);
}

/* ---- opening and draining ------------------------------------------------------------ */

/* Inside a task: wait for @p f (NULL: bad arguments) and release it. */
static int await_done(cio_future_t *f)
{
    int rc = f ? cio_await(f, NULL) : -EINVAL;
    cio_future_unref(f);
    return rc;
}

static cio_sharded_opts_t sharded_opts(const cio_config_listener_t *c)
{
    return (cio_sharded_opts_t){.type = c->protocol == CIO_CONFIG_UDP ? SOCK_DGRAM : SOCK_STREAM,
                                .balance = c->balance,
                                .backlog = c->backlog,
                                .path = c->protocol == CIO_CONFIG_UNIX ? c->path : NULL,
                                .idle_timeout = c->idle_timeout,
                                .write_high = c->write_high,
                                .write_low = c->write_low};
}

int cio__listener_open(cio_app_t *app, const cio_config_listener_t *cfg, cio__listener_t *from,
                       cio__listener_t **out)
{
    size_t n = cio_workers_count(app->workers);
    cio__listener_t *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->app = app;
    l->svc = cio_service_find(cfg->service);
    l->state = calloc(n, sizeof(*l->state));
    l->inited = calloc(n, sizeof(*l->inited));
    int rc = !l->state || !l->inited ? -ENOMEM : cfg_copy(&l->cfg, cfg);
    if (rc < 0 || !l->svc) {
        free(l->state);
        free(l->inited);
        free(l);
        return rc < 0 ? rc : -ENOENT;
    }
    rc = cio__on_every_worker(l->app, init_task, l);
    if (rc == 0) {
        cio_sharded_opts_t o = sharded_opts(&l->cfg);
        o.adopt = from ? from->sharded : NULL;
        cio_future_t *f =
            cio_workers_serve(app->workers, listener_factory, l, l->cfg.host, l->cfg.port, &o);
        void *s = NULL;
        rc = f ? cio_await(f, &s) : -EINVAL;
        cio_future_unref(f);
        l->sharded = s;
    }
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "listener %s (%s): cannot open: %s", l->cfg.name, l->cfg.service,
                 cio_strerror(rc));
        cio__on_every_worker(l->app, teardown_task, l);
        listener_free(l);
        return rc;
    }
    cio__log(CIO_LOG_INFO, "listener %s: %s on %s%s%s", l->cfg.name, l->cfg.service,
             l->cfg.path   ? l->cfg.path
             : l->cfg.host ? l->cfg.host
                           : "*",
             l->cfg.path ? "" : ":", l->cfg.path ? "" : l->cfg.port);
    *out = l;
    return 0;
}

int cio__listener_reconfigure(cio__listener_t *l, const cio_config_listener_t *cfg)
{
    cio_sharded_opts_t o = sharded_opts(cfg);
    int rc = await_done(cio_sharded_reconfigure(l->sharded, &o));
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "listener %s: cannot apply the new settings: %s", l->cfg.name,
                 cio_strerror(rc));
        return rc;
    }
    l->cfg.backlog = cfg->backlog;
    l->cfg.idle_timeout = cfg->idle_timeout;
    l->cfg.write_high = cfg->write_high;
    l->cfg.write_low = cfg->write_low;
    return 0;
}

void cio__listener_drain_and_free(cio__listener_t *l, double drain_timeout)
{
    cio_future_t *f = cio_sharded_close(l->sharded);
    if (f) {
        cio_await(f, NULL);
        cio_future_unref(f);
    }
    cio__on_every_worker(l->app, drain_task, l);
    f = cio_sharded_wait_closed(l->sharded);
    cio_future_t *w = f ? cio_wait_for(f, drain_timeout) : NULL;
    int rc = w ? cio_await(w, NULL) : -ENOMEM;
    cio_future_unref(w);
    cio_future_unref(f);
    if (rc < 0) {
        size_t left = cio_sharded_connections(l->sharded, NULL, 0);
        if (left)
            cio__log(CIO_LOG_WARNING,
                     "listener %s: %zu connections still open after %.3g s: "
                     "closing them",
                     l->cfg.name, left, drain_timeout);
        cio_sharded_close_clients(l->sharded, true);
        f = cio_sharded_wait_closed(l->sharded);
        if (f)
            cio_await(f, NULL);
        cio_future_unref(f);
    }
    cio_sharded_free(l->sharded);
    cio__on_every_worker(l->app, teardown_task, l);
    cio__log(CIO_LOG_INFO, "listener %s: closed", l->cfg.name);
    listener_free(l);
}
