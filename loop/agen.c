/*
 * loop/agen.c: asynchronous generators. The body runs as a task; a yield
 * settles the pending anext future and awaits a "demand" future, which the
 * next anext (or aclose) completes. So the body runs only between an anext
 * and its next yield, as an asyncio async generator does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct cio_agen_s {
    cio_loop_t *loop;
    cio_agen_fn fn;
    void *arg;
    size_t stack_size;
    char *name;
    unsigned user_refs;
    bool body_alive;       /* the body's task has started and not ended */
    bool finished;         /* the body returned, or the generator closed before */
    bool exiting;          /* GeneratorExit is due at the body's yield */
    bool ignored_exit;     /* the body yielded again while exiting */
    cio_task_t *task;      /* the body's task, referenced */
    cio_future_t *next;    /* the anext in progress */
    cio_future_t *demand;  /* what the body awaits in its yield */
    cio_future_t *closing; /* the aclose in progress */
    cio__queue_t link;     /* in loop->asyncgens while started and open */
};

cio_agen_t *cio_agen_new(cio_loop_t *loop, cio_agen_fn fn, void *arg, const cio_task_opts_t *opts)
{
    if (cio__schedule_check(loop, (const void *)fn) < 0)
        return NULL;
    cio_agen_t *gen = calloc(1, sizeof(*gen));
    if (!gen)
        return NULL;
    gen->loop = loop;
    gen->fn = fn;
    gen->arg = arg;
    gen->user_refs = 1;
    gen->stack_size = opts ? opts->stack_size : 0;
    cio__queue_init(&gen->link);
    if (opts && opts->name && !(gen->name = strdup(opts->name))) {
        free(gen);
        return NULL;
    }
    return gen;
}

static void agen_free(cio_agen_t *gen)
{
    cio__queue_remove(&gen->link);
    cio_task_unref(gen->task);
    cio_future_unref(gen->next);
    cio_future_unref(gen->demand);
    cio_future_unref(gen->closing);
    free(gen->name);
    free(gen);
}

/* A future already settled with @p err, or NULL with no memory. */
static cio_future_t *failed_future(cio_loop_t *loop, int err, const char *message)
{
    cio_future_t *fut = cio_loop_create_future(loop);
    if (fut)
        cio__future_set_error(fut, err, message);
    return fut;
}

/* The body ended with @p rc: settle what waits on it. */
static void body_ended(cio_agen_t *gen, int rc)
{
    gen->finished = true;
    gen->body_alive = false;
    cio__queue_remove(&gen->link);
    bool exit_rc = rc == 0 || rc == CIO_EGENERATOREXIT || rc == -ECANCELED;
    if (gen->next) {
        if (!cio_future_done(gen->next))
            cio__future_set_error(gen->next, exit_rc ? CIO_ESTOPASYNCITERATION : rc, NULL);
        cio_future_unref(gen->next);
        gen->next = NULL;
    }
    if (gen->closing) {
        if (gen->ignored_exit)
            cio__future_set_error(gen->closing, CIO_EGENERATOREXIT,
                                  "async generator ignored GeneratorExit");
        else if (!exit_rc)
            cio__future_set_error(gen->closing, rc, NULL);
        else
            cio__future_set_result(gen->closing, NULL);
        cio_future_unref(gen->closing);
        gen->closing = NULL;
    }
}

/* The body's task function. */
int cio__agen_body(void *arg, void **result)
{
    cio_agen_t *gen = arg;
    int rc = gen->fn(gen, gen->arg);
    body_ended(gen, rc);
    if (gen->user_refs == 0)
        agen_free(gen);
    return rc == CIO_EGENERATOREXIT ? 0 : rc;
}

static int start_body(cio_agen_t *gen)
{
    cio_task_opts_t opts = {.stack_size = gen->stack_size, .name = gen->name};
    gen->task = cio_task_new(gen->loop, cio__agen_body, gen, &opts);
    if (!gen->task)
        return -ENOMEM;
    gen->body_alive = true;
    /* asyncio's first-iteration hook: the loop now knows the generator. */
    cio__queue_insert_tail(&gen->loop->asyncgens, &gen->link);
    return 0;
}

/* Resume a body suspended in its yield. */
static void wake_body(cio_agen_t *gen)
{
    if (gen->demand && !cio_future_done(gen->demand))
        cio__future_set_result(gen->demand, NULL);
}

cio_future_t *cio_agen_anext(cio_agen_t *gen)
{
    if (gen->next || gen->closing)
        return failed_future(gen->loop, CIO_EAGENRUNNING,
                             "anext(): asynchronous generator is already running");
    if (gen->finished)
        return failed_future(gen->loop, CIO_ESTOPASYNCITERATION, NULL);
    cio_future_t *fut = cio_loop_create_future(gen->loop);
    if (!fut)
        return NULL;
    if (!gen->task && start_body(gen) < 0) {
        cio__future_set_error(fut, -ENOMEM, NULL);
        return fut;
    }
    gen->next = cio_future_ref(fut);
    wake_body(gen);
    return fut;
}

int cio_agen_yield(cio_agen_t *gen, void *value)
{
    if (!gen || !gen->task || cio_current_task() != gen->task)
        return -EINVAL;
    if (gen->exiting) {
        gen->ignored_exit = true;
        return CIO_EGENERATOREXIT;
    }
    if (gen->next) {
        if (!cio_future_done(gen->next))
            cio__future_set_result(gen->next, value);
        cio_future_unref(gen->next);
        gen->next = NULL;
    }
    /* Nobody holds the generator any more: close it here (the finalizer). */
    if (gen->user_refs == 0) {
        gen->exiting = true;
        return CIO_EGENERATOREXIT;
    }
    cio_future_t *demand = cio_loop_create_future(gen->loop);
    if (!demand)
        return -ENOMEM;
    gen->demand = demand;
    int rc = cio_await(demand, NULL);
    gen->demand = NULL;
    cio_future_unref(demand);
    return gen->exiting ? CIO_EGENERATOREXIT : rc;
}

/* Raise GeneratorExit in a body suspended in its yield. */
static void begin_exit(cio_agen_t *gen)
{
    gen->exiting = true;
    wake_body(gen);
}

cio_future_t *cio_agen_aclose(cio_agen_t *gen)
{
    if (gen->closing)
        return cio_future_ref(gen->closing);
    if (gen->next)
        return failed_future(gen->loop, CIO_EAGENRUNNING,
                             "aclose(): asynchronous generator is already running");
    cio_future_t *fut = cio_loop_create_future(gen->loop);
    if (!fut)
        return NULL;
    if (!gen->body_alive) {
        gen->finished = true;
        cio__queue_remove(&gen->link);
        cio__future_set_result(fut, NULL);
        return fut;
    }
    gen->closing = cio_future_ref(fut);
    begin_exit(gen);
    return fut;
}

void cio_agen_unref(cio_agen_t *gen)
{
    if (!gen || --gen->user_refs > 0)
        return;
    if (!gen->body_alive) {
        agen_free(gen);
        return;
    }
    /* asyncio's finalizer hook: close it; the body frees it when it ends. */
    if (!gen->next && !gen->closing)
        begin_exit(gen);
}

/* The loop is closing: its generators' bodies are gone with its tasks. */
void cio__agens_detach(cio_loop_t *loop)
{
    while (!cio__queue_empty(&loop->asyncgens)) {
        cio_agen_t *gen = cio_container_of(loop->asyncgens.next, cio_agen_t, link);
        cio__queue_remove(&gen->link);
        gen->body_alive = false;
        gen->finished = true;
        if (gen->user_refs == 0)
            agen_free(gen);
    }
}

typedef struct shutdown {
    cio_loop_t *loop;
    cio_future_t *done;
    cio_agen_t **gens;
    cio_future_t **closes;
    size_t n;
} shutdown_t;

static void shutdown_free(shutdown_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        cio_future_unref(s->closes[i]);
        cio_agen_unref(s->gens[i]);
    }
    cio_future_unref(s->done);
    free(s->closes);
    free(s->gens);
    free(s);
}

/* Every aclose has finished: report the failures, then complete. */
static int shutdown_finished(cio_future_t *all, void *arg)
{
    shutdown_t *s = arg;
    for (size_t i = 0; i < s->n; i++) {
        int err = cio_future_error(s->closes[i]);
        if (err != 0 && err != -ECANCELED) {
            cio_exception_context_t ctx;
            cio_exception_context_init(
                &ctx, "an error occurred during closing of asynchronous generator");
            ctx.error = err;
            ctx.future = s->closes[i];
            cio_loop_call_exception_handler(s->loop, &ctx);
        }
    }
    cio__future_set_result(s->done, NULL);
    shutdown_free(s);
    return 0;
}

cio_future_t *cio_loop_shutdown_asyncgens(cio_loop_t *loop)
{
    cio_future_t *done = cio_loop_create_future(loop);
    if (!done)
        return NULL;
    size_t n = 0;
    cio__queue_t *q;
    cio__queue_foreach(q, &loop->asyncgens) n++;
    shutdown_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->gens = calloc(n + 1, sizeof(*s->gens))) ||
        !(s->closes = calloc(n + 1, sizeof(*s->closes))))
        goto err;
    s->loop = loop;
    s->done = cio_future_ref(done);
    /* Take them all first: closing unlinks them from the list. */
    cio__queue_foreach(q, &loop->asyncgens)
    {
        s->gens[s->n] = cio_container_of(q, cio_agen_t, link);
        s->gens[s->n++]->user_refs++;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!(s->closes[i] = cio_agen_aclose(s->gens[i])))
            goto err;
    }
    cio_future_t *all = cio_gather(loop, s->closes, s->n, &(cio_gather_opts_t){true});
    if (!all || cio_future_add_done_callback(all, shutdown_finished, s) < 0) {
        cio_future_unref(all);
        goto err;
    }
    cio_future_unref(all); /* the scheduled callback keeps it */
    return done;

err:
    if (s && s->done)
        shutdown_free(s);
    else if (s) {
        free(s->gens);
        free(s->closes);
        free(s);
    }
    cio_future_unref(done);
    return NULL;
}
