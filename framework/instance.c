/*
 * framework/instance.c: a service started on every worker. An instance is
 * what survives a reload that keeps the service: each worker's state, its
 * tasks, its metrics and the values of its keys. Listeners share it by
 * reference; the app's table holds one more while the instance is the
 * service's current one. The last reference stops it: on each worker the
 * tasks the service spawned are cancelled and awaited, then its children
 * (children.c) are ended, then its stop hook runs, so nothing of the service
 * outlives it.
 *
 * Threads: the control loop starts, reconfigures and drops instances (inside
 * its tasks); everything a worker's part holds is touched on that worker's
 * thread only, through tasks the control loop sends there.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- values ---------------------------------------------------------------------- */

/* @p key's text in @p section, or its default. */
static const char *key_text(const cio_config_key_t *key, const cio_config_service_t *section)
{
    for (size_t i = 0; section && i < section->nentries; i++)
        if (strcmp(section->entries[i].key, key->name) == 0)
            return section->entries[i].value;
    return key->default_value;
}

cio__values_t *cio__values_new(const cio_service_t *svc, const cio_config_service_t *section)
{
    cio__values_t *v = calloc(1, sizeof(*v) + svc->nkeys * sizeof(v->v[0]));
    if (!v)
        return NULL;
    for (; v->n < svc->nkeys; v->n++) {
        const cio_config_key_t *key = &svc->keys[v->n];
        const char *text = key_text(key, section);
        /* check.c refused a file without a required key or with a bad value. */
        if (!text || cio_config_value_parse(key, text, &v->v[v->n], NULL, 0) < 0) {
            cio__values_free(v);
            return NULL;
        }
    }
    return v;
}

static bool same_text(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool value_equal(const cio_config_value_t *a, const cio_config_value_t *b)
{
    switch (a->type) {
    case CIO_CONFIG_STRING:
    case CIO_CONFIG_PATH:
        return strcmp(a->u.string, b->u.string) == 0;
    case CIO_CONFIG_INTEGER:
        return a->u.integer == b->u.integer;
    case CIO_CONFIG_SIZE:
        return a->u.size == b->u.size;
    case CIO_CONFIG_DURATION:
        return a->u.duration == b->u.duration;
    case CIO_CONFIG_BOOLEAN:
        return a->u.boolean == b->u.boolean;
    case CIO_CONFIG_ADDRESS:
        return same_text(a->u.address.host, b->u.address.host) &&
               same_text(a->u.address.port, b->u.address.port);
    }
    return false;
}

bool cio__values_equal(const cio__values_t *a, const cio__values_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!value_equal(&a->v[i], &b->v[i]))
            return false;
    return true;
}

void cio__values_free(cio__values_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        cio_config_value_clear(&v->v[i]);
    free(v);
}

/* ---- the worker's index ------------------------------------------------------------- */

/* Found once per thread: the loops of the app's workers, compared with ours. */
static __thread const cio_workers_t *tls_workers;
static __thread size_t tls_index;

size_t cio__worker_index(const cio_app_t *app)
{
    if (tls_workers != app->workers) {
        cio_loop_t *loop = cio_get_running_loop();
        for (size_t i = 0; i < cio_workers_count(app->workers); i++)
            if (cio_workers_loop(app->workers, i) == loop)
                tls_index = i;
        tls_workers = app->workers;
    }
    return tls_index;
}

/* ---- start and stop, on each worker ----------------------------------------------------- */

static void end_tasks(cio__svc_worker_t *w, double timeout);

/* End the service's tasks on this worker and forget their list. */
static void release_tasks(cio__svc_worker_t *w, double timeout)
{
    end_tasks(w, timeout);
    free(w->tasks);
    w->tasks = NULL;
    w->tasks_cap = 0;
}

static int start_task(void *arg, void **result)
{
    cio__instance_t *inst = arg;
    size_t i = cio__worker_index(inst->app);
    cio__svc_worker_t *w = &inst->w[i];
    w->ctx = (struct cio_service_ctx){.inst = inst, .worker = i, .loop = cio_get_running_loop()};
    w->values = inst->values;
    int rc = inst->svc->start ? inst->svc->start(&w->ctx, &w->state) : 0;
    w->started = rc == 0;
    if (rc < 0) { /* what start spawned before failing; its children get SIGTERM at once */
        release_tasks(w, inst->task_timeout);
        cio__children_end(w, 0);
    }
    return rc;
}

/* Let the tasks still running go: they outlive the instance, so they must not find it. */
static void detach_tasks(cio__svc_worker_t *w)
{
    for (size_t k = 0; k < w->ntasks; k++) {
        w->tasks[k]->w = NULL;
        cio_task_unref(w->tasks[k]->task);
    }
    w->ntasks = 0;
}

/* Cancel the service's tasks on this worker and wait for them, for at most @p timeout. */
static void end_tasks(cio__svc_worker_t *w, double timeout)
{
    w->stopping = true;
    for (size_t k = 0; k < w->ntasks; k++)
        cio_task_cancel(w->tasks[k]->task, NULL);
    while (w->ntasks > 0) {
        /* Each task takes itself off the list when done (context.c). */
        cio_future_t *f = cio_future_ref(cio_task_future(w->tasks[0]->task));
        cio_future_t *bounded = cio_wait_for(f, timeout);
        int rc = bounded ? cio_await(bounded, NULL) : -ENOMEM;
        cio_future_unref(bounded);
        cio_future_unref(f);
        if (rc == -ETIMEDOUT || rc == -ENOMEM) {
            cio_service_log(&w->ctx, CIO_LOG_WARNING,
                            "%zu tasks still running after %.3g s: left to the loop's close",
                            w->ntasks, timeout);
            detach_tasks(w);
            return;
        }
    }
}

static int stop_task(void *arg, void **result)
{
    cio__instance_t *inst = arg;
    cio__svc_worker_t *w = &inst->w[cio__worker_index(inst->app)];
    if (!w->started)
        return 0;
    release_tasks(w, inst->task_timeout);
    /* The children next: a task may have been the one to tell its child to exit. */
    cio__children_end(w, inst->stop_began ? inst->stop_began + inst->task_timeout : 0);
    if (inst->svc->stop)
        inst->svc->stop(&w->ctx, w->state);
    w->started = false;
    return 0;
}

static void instance_free(cio__instance_t *inst)
{
    cio__metrics_free(inst->metrics);
    cio__values_free(inst->values);
    cio__values_free(inst->retired);
    free(inst->w);
    free(inst);
}

int cio__instance_start(cio_app_t *app, const cio_service_t *svc, cio__values_t *values,
                        cio__instance_t **out)
{
    cio__instance_t *inst = calloc(1, sizeof(*inst));
    size_t n = cio_workers_count(app->workers);
    if (inst) {
        *inst = (cio__instance_t){.app = app,
                                  .svc = svc,
                                  .values = values,
                                  .nworkers = n,
                                  .task_timeout = app->cfg->drain_timeout};
        inst->w = calloc(n, sizeof(*inst->w));
        inst->metrics = cio__metrics_new(svc->name, n);
    }
    if (!inst || !inst->w || !inst->metrics) {
        if (inst)
            instance_free(inst);
        else
            cio__values_free(values);
        return -ENOMEM;
    }
    int rc = cio__on_every_worker(app, start_task, inst);
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "service %s: cannot start: %s", svc->name, cio_strerror(rc));
        cio__on_every_worker(app, stop_task, inst);
        instance_free(inst);
        return rc;
    }
    inst->refs = 1;
    atomic_init(&inst->pins, 1);
    *out = inst;
    return 0;
}

/* ---- reconfigure ------------------------------------------------------------------------ */

static int reconfigure_task(void *arg, void **result)
{
    cio__instance_t *inst = arg;
    cio__svc_worker_t *w = &inst->w[cio__worker_index(inst->app)];
    w->values = inst->values;
    return inst->svc->reconfigure(&w->ctx, w->state);
}

int cio__instance_reconfigure(cio__instance_t *inst, cio__values_t *values)
{
    if (!inst->svc->reconfigure) {
        cio__values_free(values);
        return -ENOTSUP;
    }
    /* The values before stay readable until the instance goes: a connection may hold them. */
    cio__values_free(inst->retired);
    inst->retired = inst->values;
    inst->values = values;
    int rc = cio__on_every_worker(inst->app, reconfigure_task, inst);
    if (rc < 0)
        cio__log(CIO_LOG_WARNING, "service %s: reconfigure failed (%s): restarting it",
                 inst->svc->name, cio_strerror(rc));
    return rc;
}

/* ---- references -------------------------------------------------------------------------- */

cio__instance_t *cio__instance_ref(cio__instance_t *inst)
{
    inst->refs++;
    return inst;
}

void cio__instance_unref(cio__instance_t *inst)
{
    assert(inst->refs > 0);
    if (--inst->refs > 0)
        return;
    /* Read here, on the control loop: a reload may replace the configuration meanwhile. */
    inst->task_timeout = inst->app->cfg->drain_timeout;
    cio__instance_stopping(inst);
    cio__on_every_worker(inst->app, stop_task, inst);
    cio__log(CIO_LOG_DEBUG, "service %s: stopped", inst->svc->name);
    cio__instance_unpin(inst);
}

void cio__instance_stopping(cio__instance_t *inst)
{
    if (!inst->stop_began)
        inst->stop_began = cio_loop_time(cio_get_running_loop());
}

cio__instance_t *cio__instance_pin(cio__instance_t *inst)
{
    /* Relaxed: the pinner already holds a pin (its reference or its context's). */
    atomic_fetch_add_explicit(&inst->pins, 1, memory_order_relaxed);
    return inst;
}

void cio__instance_unpin(cio__instance_t *inst)
{
    /* Release so that every use before it happens before the free; acquire on the last. */
    if (atomic_fetch_sub_explicit(&inst->pins, 1, memory_order_acq_rel) == 1)
        instance_free(inst);
}
