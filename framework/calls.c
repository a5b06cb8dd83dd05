/*
 * framework/calls.c: cross-shard calls between a service's workers, Seastar's
 * sharded<Service>::invoke_on in C. The workers' own calls
 * (cio_workers_submit_to() and the like, workers/) carry them; this file
 * only gives the function the service's context on the target worker. The
 * call pins the instance, so even a call still in a mailbox when the
 * service stops finds its memory there, and it finds the service stopped:
 * it fails with CIO_ECLOSED instead of running.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct svc_call {
    cio__instance_t *inst; /* pinned until the call is released */
    cio_service_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
} svc_call_t;

/* On the target worker: the service's function with its context there. */
static int trampoline(void *arg, void **result)
{
    svc_call_t *c = arg;
    cio__svc_worker_t *w = &c->inst->w[cio__worker_index(c->inst->app)];
    if (!w->started || w->stopping)
        return CIO_ECLOSED;
    return c->fn(&w->ctx, c->arg, result);
}

/* Once, on whichever thread holds the call last. */
static void release(void *arg)
{
    svc_call_t *c = arg;
    if (c->free_arg)
        c->free_arg(c->arg);
    cio__instance_unpin(c->inst);
    free(c);
}

/* The workers' call for @p fn(@p arg) on this service; NULL (after free_arg) on bad
 * arguments or when out of memory. */
static svc_call_t *call_new(cio_service_ctx_t *ctx, cio_service_fn fn, void *arg,
                            void (*free_arg)(void *arg), cio_shard_call_t *out)
{
    svc_call_t *c = fn && ctx->inst->app ? malloc(sizeof(*c)) : NULL;
    if (!c) {
        if (free_arg)
            free_arg(arg);
        return NULL;
    }
    *c = (svc_call_t){
        .inst = cio__instance_pin(ctx->inst), .fn = fn, .arg = arg, .free_arg = free_arg};
    *out = (cio_shard_call_t){.fn = trampoline, .arg = c, .free_arg = release};
    return c;
}

cio_future_t *cio_service_submit_to(cio_service_ctx_t *ctx, size_t worker, cio_service_fn fn,
                                    void *arg, void (*free_arg)(void *arg),
                                    void (*free_result)(void *result))
{
    cio_shard_call_t call;
    if (worker >= ctx->inst->nworkers)
        fn = NULL; /* refused by call_new() */
    if (!call_new(ctx, fn, arg, free_arg, &call))
        return NULL;
    call.free_result = free_result;
    /* On NULL the call's free_arg (release) has run. */
    return cio_workers_submit_to(ctx->inst->app->workers, worker, &call);
}

cio_future_t *cio_service_invoke_on_all(cio_service_ctx_t *ctx, cio_service_fn fn, void *arg,
                                        void (*free_arg)(void *arg),
                                        void (*free_result)(void *result))
{
    cio_shard_call_t call;
    if (!call_new(ctx, fn, arg, free_arg, &call))
        return NULL;
    call.free_result = free_result;
    return cio_workers_invoke_on_all(ctx->inst->app->workers, &call);
}

cio_future_t *cio_service_map_reduce(cio_service_ctx_t *ctx, cio_service_fn fn, void *arg,
                                     void (*free_arg)(void *arg), cio_shard_reduce_fn reduce,
                                     void *reduce_arg, void *init, void (*free_acc)(void *acc))
{
    cio_shard_call_t call;
    if (!call_new(ctx, reduce ? fn : NULL, arg, free_arg, &call)) {
        if (free_acc)
            free_acc(init);
        return NULL;
    }
    return cio_workers_map_reduce(ctx->inst->app->workers, &call, reduce, reduce_arg, init,
                                  free_acc);
}
