/*
 * framework/context.c: what a service's callbacks can ask of their context
 * (coreio/service.h): where they run, their state, their configuration,
 * logging, metrics, and the tasks the service owns (its child processes
 * are children.c's). A context is either the service's own on a worker
 * (start, stop, reconfigure) or a listener's on a worker (factory,
 * listener_start, drain); both lead to the same per-worker part of the
 * instance.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static cio__svc_worker_t *worker_part(const cio_service_ctx_t *ctx)
{
    return &ctx->inst->w[ctx->worker];
}

size_t cio_service_worker(const cio_service_ctx_t *ctx)
{
    return ctx->worker;
}

size_t cio_service_nworkers(const cio_service_ctx_t *ctx)
{
    return ctx->inst->nworkers;
}

cio_loop_t *cio_service_loop(const cio_service_ctx_t *ctx)
{
    return ctx->loop;
}

cio_workers_t *cio_service_workers(const cio_service_ctx_t *ctx)
{
    return ctx->inst->app ? ctx->inst->app->workers : NULL;
}

void *cio_service_arg(const cio_service_ctx_t *ctx)
{
    return ctx->inst->svc->arg;
}

void *cio_service_state(const cio_service_ctx_t *ctx)
{
    return worker_part(ctx)->state;
}

const cio_config_listener_t *cio_service_listener(const cio_service_ctx_t *ctx)
{
    return ctx->listener;
}

void *cio_service_listener_state(const cio_service_ctx_t *ctx)
{
    return ctx->lstate;
}

/* ---- configuration ------------------------------------------------------------------ */

const cio_config_value_t *cio_service_value(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_service_t *svc = ctx->inst->svc;
    const cio__values_t *v = worker_part(ctx)->values;
    for (size_t i = 0; key && i < svc->nkeys; i++)
        if (strcmp(svc->keys[i].name, key) == 0)
            return &v->v[i];
    return NULL;
}

/* The value of @p key if it is of type @p type, else NULL. */
static const cio_config_value_t *typed(const cio_service_ctx_t *ctx, const char *key,
                                       cio_config_type_t type)
{
    const cio_config_value_t *v = cio_service_value(ctx, key);
    return v && v->type == type ? v : NULL;
}

int64_t cio_service_int(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_config_value_t *v = typed(ctx, key, CIO_CONFIG_INTEGER);
    return v ? v->u.integer : 0;
}

uint64_t cio_service_size(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_config_value_t *v = typed(ctx, key, CIO_CONFIG_SIZE);
    return v ? v->u.size : 0;
}

double cio_service_duration(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_config_value_t *v = typed(ctx, key, CIO_CONFIG_DURATION);
    return v ? v->u.duration : 0;
}

bool cio_service_bool(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_config_value_t *v = typed(ctx, key, CIO_CONFIG_BOOLEAN);
    return v ? v->u.boolean : false;
}

const char *cio_service_string(const cio_service_ctx_t *ctx, const char *key)
{
    const cio_config_value_t *v = cio_service_value(ctx, key);
    return v && (v->type == CIO_CONFIG_STRING || v->type == CIO_CONFIG_PATH) ? v->u.string : NULL;
}

/* ---- logging and metrics ---------------------------------------------------------------- */

void cio_service_log(const cio_service_ctx_t *ctx, cio_log_level_t level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cio_log_tags_t tags = {.service = ctx->inst->svc->name,
                           .listener = ctx->listener ? ctx->listener->name : NULL,
                           .worker = (long)ctx->worker};
    cio_log(level, &tags, "%s", msg);
}

/* Log why a metric could not be registered; the service goes on without it. */
static cio_metric_t *registered(const cio_service_ctx_t *ctx, const char *name, cio_metric_t *m,
                                int err)
{
    if (!m)
        cio_service_log(ctx, CIO_LOG_WARNING, "metric %s: %s", name ? name : "(null)",
                        cio_strerror(err));
    return m;
}

cio_metric_t *cio_service_counter(cio_service_ctx_t *ctx, const char *name, const char *help)
{
    int err = 0;
    cio_metric_t *m = cio__metrics_counter(ctx->inst->metrics, ctx->worker, name, help, &err);
    return registered(ctx, name, m, err);
}

cio_metric_t *cio_service_gauge(cio_service_ctx_t *ctx, const char *name, const char *help)
{
    int err = 0;
    cio_metric_t *m = cio__metrics_gauge(ctx->inst->metrics, ctx->worker, name, help, &err);
    return registered(ctx, name, m, err);
}

cio_metric_t *cio_service_histogram(cio_service_ctx_t *ctx, const char *name, const char *help,
                                    const double *bounds, size_t nbounds)
{
    int err = 0;
    cio_metric_t *m =
        cio__metrics_histogram(ctx->inst->metrics, ctx->worker, name, help, bounds, nbounds, &err);
    return registered(ctx, name, m, err);
}

/* ---- tasks the service owns ------------------------------------------------------------------ */

/* Take the finished task off its worker's list (the instance's stop waits for it). */
static int forget(cio_future_t *fut, void *arg)
{
    cio__spawned_t *s = arg;
    cio__svc_worker_t *w = s->w;
    for (size_t k = 0; w && k < w->ntasks; k++) {
        if (w->tasks[k] == s) {
            w->tasks[k] = w->tasks[--w->ntasks];
            cio_task_unref(s->task);
            break;
        }
    }
    if (s->free_arg)
        s->free_arg(s->arg);
    free(s);
    return 0;
}

static int run_spawned(void *arg, void **result)
{
    cio__spawned_t *s = arg;
    return s->fn(s->arg, result);
}

/* Room for one more task on @p w's list; 0 or -ENOMEM. */
static int tasks_room(cio__svc_worker_t *w)
{
    if (w->ntasks < w->tasks_cap)
        return 0;
    size_t cap = w->tasks_cap ? 2 * w->tasks_cap : 8;
    cio__spawned_t **v = realloc(w->tasks, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    w->tasks = v;
    w->tasks_cap = cap;
    return 0;
}

cio_task_t *cio_service_spawn(cio_service_ctx_t *ctx, cio_task_fn fn, void *arg,
                              void (*free_arg)(void *arg))
{
    cio__svc_worker_t *w = worker_part(ctx);
    cio__spawned_t *s = fn && !w->stopping && tasks_room(w) == 0 ? malloc(sizeof(*s)) : NULL;
    cio_task_t *t = s ? cio_loop_create_task(ctx->loop, run_spawned, s, NULL) : NULL;
    if (t) {
        *s = (cio__spawned_t){.w = w, .fn = fn, .arg = arg, .free_arg = free_arg, .task = t};
        if (cio_future_add_done_callback(cio_task_future(t), forget, s) == 0) {
            w->tasks[w->ntasks++] = s;
            cio_task_ref(t);
            return t;
        }
        /* Without its callback the task could not be tracked: it must not run. */
        cio_task_cancel(t, NULL);
        cio_task_unref(t);
        t = NULL;
    }
    free(s);
    if (free_arg)
        free_arg(arg);
    return NULL;
}

/* ---- a service alone, for tests ------------------------------------------------------------ */

/* A listener context as a worker would give it, on an instance of one worker with no app. */
typedef struct standalone {
    cio__instance_t inst;
    cio__svc_worker_t w;
    struct cio_service_ctx lctx;
    cio_config_listener_t listener;
} standalone_t;

/* Tests only (exported): start @p svc (start, then listener_start) on @p loop as the one
 * worker of no app, and return the listener context its callbacks take. 0 or -errno. */
CIO_EXTERN int cio__service_standalone(const cio_service_t *svc, cio_loop_t *loop,
                                       cio_service_ctx_t **out);
/* Tests only (exported): listener_stop, then stop, then free. */
CIO_EXTERN void cio__service_standalone_free(cio_service_ctx_t *ctx);

int cio__service_standalone(const cio_service_t *svc, cio_loop_t *loop, cio_service_ctx_t **out)
{
    standalone_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->inst = (cio__instance_t){.svc = svc, .w = &a->w, .nworkers = 1, .refs = 1};
    a->inst.values = cio__values_new(svc, NULL);
    a->inst.metrics = cio__metrics_new(svc->name, 1);
    a->listener =
        (cio_config_listener_t){.name = (char *)"standalone", .service = (char *)svc->name};
    a->w.ctx = (struct cio_service_ctx){.inst = &a->inst, .loop = loop};
    a->w.values = a->inst.values;
    a->lctx = (struct cio_service_ctx){.inst = &a->inst, .loop = loop, .listener = &a->listener};
    int rc = a->inst.values && a->inst.metrics ? 0 : -ENOMEM;
    if (rc == 0 && svc->start && (rc = svc->start(&a->w.ctx, &a->w.state)) == 0)
        a->w.started = true;
    if (rc == 0 && svc->listener_start &&
        (rc = svc->listener_start(&a->lctx, &a->lctx.lstate)) < 0 && a->w.started && svc->stop)
        svc->stop(&a->w.ctx, a->w.state);
    if (rc < 0) {
        cio__values_free(a->inst.values);
        cio__metrics_free(a->inst.metrics);
        free(a);
        return rc;
    }
    *out = &a->lctx;
    return 0;
}

void cio__service_standalone_free(cio_service_ctx_t *ctx)
{
    standalone_t *a = (standalone_t *)((char *)ctx - offsetof(standalone_t, lctx));
    const cio_service_t *svc = a->inst.svc;
    if (svc->listener_stop)
        svc->listener_stop(&a->lctx, a->lctx.lstate);
    cio__children_release(&a->w); /* not in a task: killed, reaped by the loop */
    if (a->w.started && svc->stop)
        svc->stop(&a->w.ctx, a->w.state);
    cio__values_free(a->inst.values);
    cio__metrics_free(a->inst.metrics);
    free(a->w.tasks);
    free(a);
}
