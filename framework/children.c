/*
 * framework/children.c: the child processes a service owns
 * (cio_service_subprocess_exec()). Each child is on its worker's list from
 * its start until its subprocess transport is finished (the child reaped,
 * its pipes closed, connection_lost delivered), so many short-lived children
 * leave nothing behind. When the service stops on a worker, the list is
 * ended before the stop hook: the children have until the end of the drain
 * time to exit, then get SIGTERM, then CHILD_GRACE seconds later SIGKILL, and
 * the stop waits until each one is reaped.
 *
 * A child's cio_subprocess_t is the loop's, not ours: the list only touches
 * it while the future of cio_subprocess_wait() taken at its start is pending,
 * since that future settles as the transport is freed.
 *
 * Threads: everything here runs on the worker's thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

/* How long a child has between SIGTERM and SIGKILL, and SIGKILL and being reaped. */
#define CHILD_GRACE 1.0

struct cio__child {
    cio__svc_worker_t *w; /* NULL once the list let it go */
    struct cio__child *next, **pprev;
    cio_subprocess_t *sp; /* once started; valid while @c gone is pending */
    cio_future_t *gone;   /* cio_subprocess_wait(): settled as the transport is freed */
    pid_t pid;
    bool terminated; /* the stop sent SIGTERM */
    bool killed;     /* the stop sent SIGKILL */
};

/* Tell a stop waiting in wait_until() that the list changed. */
static void notify(cio__svc_worker_t *w)
{
    if (w && w->children_changed && !cio_future_done(w->children_changed))
        cio_future_set_result(w->children_changed, NULL);
}

static void unlink_child(cio__child_t *c)
{
    if (!c->w)
        return;
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    c->w->nchildren--;
    notify(c->w);
    c->w = NULL;
}

static void forget(cio__child_t *c)
{
    unlink_child(c);
    cio_future_unref(c->gone);
    free(c);
}

/* The child's transport if it still exists, else NULL. */
static cio_subprocess_t *live(const cio__child_t *c)
{
    return c->sp && !cio_future_done(c->gone) ? c->sp : NULL;
}

static bool running(const cio__child_t *c)
{
    return live(c) && cio_subprocess_get_returncode(c->sp, NULL) == -EBUSY;
}

/* The transport is freed: the child is reaped and its protocol has had connection_lost. */
static int on_gone(cio_future_t *fut, void *arg)
{
    cio__child_t *c = arg;
    void *code = NULL;
    if (c->w && c->terminated && !c->killed && cio_future_result(fut, &code) == 0)
        cio_service_log(&c->w->ctx, CIO_LOG_INFO,
                        "child process %d exited after SIGTERM (returncode %d)", (int)c->pid,
                        (int)(intptr_t)code);
    forget(c);
    return 0;
}

/* Follow a child that started until its transport is freed; false if it cannot be. */
static bool follow(cio__child_t *c, cio_subprocess_t *sp)
{
    c->gone = cio_subprocess_wait(sp);
    if (c->gone && cio_future_add_done_callback(c->gone, on_gone, c) == 0) {
        c->sp = sp;
        c->pid = cio_subprocess_get_pid(sp);
        return true;
    }
    return false;
}

/* The creation future settled: follow the child, or forget one that failed or is over. */
static int on_started(cio_future_t *fut, void *arg)
{
    cio__child_t *c = arg;
    cio__svc_worker_t *w = c->w;
    void *sp = NULL;
    if (w)
        w->nstarting--;
    bool started = cio_future_result(fut, &sp) == 0;
    /* A child reaped already has no transport to wait for: asyncio's _wait settles at once. */
    if (started && cio_subprocess_get_returncode(sp, NULL) == -EBUSY) {
        if (w && follow(c, sp)) {
            notify(w);
            return 0;
        }
        /* Untracked (out of memory, or the list let it go) it must not run. */
        if (w)
            cio_service_log(&w->ctx, CIO_LOG_WARNING, "child process %d: out of memory: killed",
                            (int)cio_subprocess_get_pid(sp));
        cio_subprocess_close(sp);
    }
    forget(c);
    return 0;
}

/* Put a new record on @p w's list (allocated before the spawn, which it then follows). */
static void link_child(cio__svc_worker_t *w, cio__child_t *c)
{
    c->w = w;
    c->next = w->children;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &w->children;
    w->children = c;
    w->nchildren++;
    w->nstarting++;
}

/* The loop's future of a child started by @p spawn, on @p ctx's list. */
static cio_future_t *track(cio_service_ctx_t *ctx, cio_future_t *fut, cio__child_t *c)
{
    if (!fut) {
        free(c);
        return NULL;
    }
    if (cio_future_add_done_callback(fut, on_started, c) < 0) {
        cio_future_cancel(fut, NULL); /* kills the child: it could not be tracked */
        cio_future_unref(fut);
        free(c);
        return NULL;
    }
    link_child(&ctx->inst->w[ctx->worker], c);
    return fut;
}

/* A record for a new child of @p ctx's service, or NULL once it is stopping. */
static cio__child_t *child_new(cio_service_ctx_t *ctx)
{
    return ctx->inst->w[ctx->worker].stopping ? NULL : calloc(1, sizeof(cio__child_t));
}

cio_future_t *cio_service_subprocess_exec(cio_service_ctx_t *ctx, cio_protocol_factory_t factory,
                                          void *factory_arg, const char *program,
                                          char *const argv[], const cio_subprocess_opts_t *opts)
{
    cio__child_t *c = child_new(ctx);
    if (!c)
        return NULL;
    return track(ctx,
                 cio_loop_subprocess_exec(ctx->loop, factory, factory_arg, program, argv, opts), c);
}

cio_future_t *cio_service_subprocess_shell(cio_service_ctx_t *ctx, cio_protocol_factory_t factory,
                                           void *factory_arg, const char *cmd,
                                           const cio_subprocess_opts_t *opts)
{
    cio__child_t *c = child_new(ctx);
    if (!c)
        return NULL;
    return track(ctx, cio_loop_subprocess_shell(ctx->loop, factory, factory_arg, cmd, opts), c);
}

/* ---- the end of the service on a worker --------------------------------------------- */

static bool none_starting(const cio__svc_worker_t *w)
{
    return w->nstarting == 0;
}

static bool none_left(const cio__svc_worker_t *w)
{
    return w->nchildren == 0;
}

/* Inside a task: wait until @p done(@p w) or loop time @p until; whether it is done. */
static bool wait_until(cio__svc_worker_t *w, bool (*done)(const cio__svc_worker_t *), double until)
{
    while (!done(w)) {
        double left = until - cio_loop_time(w->ctx.loop);
        cio_future_t *f = left > 0 ? cio_loop_create_future(w->ctx.loop) : NULL;
        cio_future_t *bounded = f ? cio_wait_for(f, left) : NULL;
        w->children_changed = f;
        /* Out of memory this gives up early, which only hastens the signals. */
        int rc = bounded ? cio_await(bounded, NULL) : -ETIMEDOUT;
        w->children_changed = NULL;
        cio_future_unref(bounded);
        cio_future_unref(f);
        if (rc < 0)
            return done(w);
    }
    return true;
}

/* SIGTERM to each child still running; those that exited only have their pipes closed. */
static void terminate_all(cio__svc_worker_t *w)
{
    for (cio__child_t *c = w->children; c; c = c->next) {
        if (running(c)) {
            cio_service_log(&w->ctx, CIO_LOG_INFO,
                            "child process %d still running at the end of the drain: SIGTERM",
                            (int)c->pid);
            c->terminated = cio_subprocess_terminate(c->sp) == 0;
        } else if (live(c)) {
            cio_subprocess_close(c->sp);
        }
    }
}

/* SIGKILL to each child still running, and its pipes aborted, whoever holds them. */
static void kill_all(cio__svc_worker_t *w)
{
    for (cio__child_t *c = w->children; c; c = c->next) {
        if (!live(c))
            continue;
        if (running(c)) {
            cio_service_log(&w->ctx, CIO_LOG_WARNING,
                            "child process %d still running %.3g s after SIGTERM: SIGKILL",
                            (int)c->pid, CHILD_GRACE);
            c->killed = true;
        }
        for (int fd = 0; fd < 3; fd++) {
            cio_transport_t *t = cio_subprocess_get_pipe_transport(c->sp, fd);
            if (t)
                cio_transport_abort(t);
        }
        cio_subprocess_close(c->sp); /* kills a child still running */
    }
}

void cio__children_end(cio__svc_worker_t *w, double deadline)
{
    w->stopping = true;
    if (!w->children)
        return;
    /* A creation future settles at the loop's next iteration: then the pid is known. */
    wait_until(w, none_starting, cio_loop_time(w->ctx.loop) + CHILD_GRACE);
    if (wait_until(w, none_left, deadline))
        return;
    terminate_all(w);
    if (wait_until(w, none_left, cio_loop_time(w->ctx.loop) + CHILD_GRACE))
        return;
    kill_all(w);
    if (wait_until(w, none_left, cio_loop_time(w->ctx.loop) + CHILD_GRACE))
        return;
    cio_service_log(&w->ctx, CIO_LOG_WARNING,
                    "%zu child processes not reaped %.3g s after SIGKILL: left to the loop's close",
                    w->nchildren, CHILD_GRACE);
    cio__children_release(w);
}

void cio__children_release(cio__svc_worker_t *w)
{
    w->stopping = true;
    while (w->children) {
        cio__child_t *c = w->children;
        if (live(c))
            cio_subprocess_close(c->sp); /* the loop kills and reaps it */
        /* Its callbacks free the record later; they find it let go. */
        unlink_child(c);
    }
    w->nstarting = 0;
}

/* Tests only (exported): how many children of @p ctx's service are on its worker's list. */
CIO_EXTERN size_t cio__service_children(const cio_service_ctx_t *ctx);

size_t cio__service_children(const cio_service_ctx_t *ctx)
{
    return ctx->inst->w[ctx->worker].nchildren;
}
