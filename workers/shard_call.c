/*
 * workers/shard_call.c: cross-shard calls (Seastar's submit_to, invoke_on_all
 * and map_reduce), batched.
 *
 * Each calling loop keeps its part of its home (home.c), hung on its mailbox
 * port: the batches it is filling, one per target loop, and those out on a
 * worker. A call takes a slot in the open batch for its target; the first
 * batch opened in an iteration schedules a flush (call_soon), which posts
 * each open batch as one message (a full batch goes at once). The worker
 * runs the whole batch in one callback, writing the outcomes into the batch,
 * and posts it back to the caller's port in a node reserved when the batch
 * was opened, so no outcome is lost for want of memory. Back home one
 * callback settles every future of the batch, in the order of the calls.
 * Messages travel through ports, never raw loops: either loop may close, and
 * be freed, while a batch is on its way.
 *
 * A batch belongs to one thread at a time: the caller's while open and once
 * back, the worker's in between. The exception is the caller's loop closing
 * while a batch is out: the home's close hook, on the closing thread, cancels
 * the futures, which only the waiters name, while the worker may still be
 * running the requests and writing their outcomes. Each side then lets go of
 * the batch on its own, and its @owners count says which one frees it.
 *
 * A loop that sent or answered a batch stays awake for 50 us (a callback
 * that schedules itself keeps its poll from blocking; I/O and timers are
 * served as usual): the other side's next message usually comes within
 * microseconds, and a sleep and wake-up, two context switches, costs more
 * than a whole batch of calls. Without it, 64 calls in flight between two
 * idle workers cost as much as the wake-ups, one per batch each way. Where
 * loops share cores, polling takes the CPU the other side needs:
 * cio_workers_set_idle_poll(0) lets them sleep at once.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define BATCH_CAP 64    /* calls per message; a full batch is sent at once */
#define SPARE_MAX 4     /* empty batches a home keeps for reuse */
#define AWAKE_NS  50000 /* by default, how long a loop stays awake for the next batch */
#define AWAKE_MAX 1e-3  /* seconds cio_workers_set_idle_poll() accepts at most */

/* The argument every worker gets in a fan-out, freed by the last one done with it. */
typedef struct share {
    _Atomic size_t users;
    void *arg;
    void (*free_arg)(void *arg);
} share_t;

/* invoke_on_all's result: one per worker, owned by the future. */
typedef struct results {
    size_t n;
    void (*free_result)(void *result);
    void *v[];
} results_t;

/* A call to every worker, on the caller's thread: the answers it waits for. */
typedef struct fanout {
    cio_future_t *fut; /* with a reference, until settled or orphaned */
    size_t left;       /* answers not back yet */
    int err;           /* the failure of the lowest-numbered worker, or 0 */
    size_t err_index;
    results_t *res;
    cio_shard_reduce_fn reduce; /* map_reduce only */
    void *reduce_arg;
    void *acc;
    void (*free_acc)(void *acc);
} fanout_t;

/*
 * A call is three records in three arrays of its batch, so that each cache
 * line crosses between the cores only in the direction it must: the request
 * (written by the caller, read by the worker), the outcome (written by the
 * worker, read back home) and the waiter (the caller's alone).
 */
typedef struct request {
    cio_shard_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
    void (*free_result)(void *result);
    share_t *share; /* a fan-out's argument, instead of free_arg */
} request_t;

typedef struct outcome {
    void *result;
    int rc;
} outcome_t;

typedef struct waiter {
    cio_future_t *fut; /* submit_to: the future, with a reference */
    fanout_t *all;     /* or the fan-out this call is part of */
    size_t index;      /* the worker's place in it */
} waiter_t;

struct home;

typedef struct batch {
    /* The caller's. */
    cio__queue_t link; /* in its home's open, out or spare list */
    struct home *home;
    cio_loop_t *to; /* the target loop, to find an open batch */
    /* Shared, each field used by one side at a time (see the file's head). */
    cio__mbox_port_t *target; /* a reference; NULL when the target is closed */
    cio__mbox_port_t *caller; /* a reference: where the outcomes go */
    /* The two messages' nodes, reserved when the batch opens; NULL once posted. */
    struct cio__mbox_node *post_node, *reply_node;
    _Atomic int owners; /* while out: the caller's side and the worker's (batch_drop()) */
    uint32_t n;
    _Alignas(64) request_t req[BATCH_CAP];
    _Alignas(64) outcome_t out[BATCH_CAP];
    _Alignas(64) waiter_t wait[BATCH_CAP];
} batch_t;

/* A loop's part of its home for cross-shard calls, made when it first calls or
 * answers; its thread's only (and the closing thread's, at the end). */
typedef struct home {
    cio__home_part_t part;
    cio_loop_t *loop;
    cio__queue_t open; /* batches being filled */
    cio__queue_t out;  /* batches sent and not back */
    cio__queue_t spare;
    size_t nspare;
    bool flush_scheduled;
    bool awake_scheduled;
    uint64_t awake_until; /* CLOCK_MONOTONIC ns */
} home_t;

static void home_closed(cio__home_part_t *part);
static int flush_cb(void *arg);
static home_t *home_get(cio_loop_t *loop);

/* ---- staying awake ------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Each iteration until the deadline: schedule itself again, so the poll does not block. */
static int awake_cb(void *arg)
{
    home_t *h = arg;
    h->awake_scheduled =
        now_ns() < h->awake_until && cio_loop_call_soon(h->loop, awake_cb, h, NULL) == 0;
    return 0;
}

/* How long loops stay awake, in ns; relaxed: a setting, read again at every batch. */
static _Atomic uint64_t awake_ns = AWAKE_NS;

int cio_workers_set_idle_poll(double seconds)
{
    if (!(seconds >= 0 && seconds <= AWAKE_MAX))
        return -EINVAL;
    atomic_store_explicit(&awake_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
    return 0;
}

/* Keep @p h's loop awake for awake_ns from now (best effort; 0: not at all). */
static void stay_awake(home_t *h)
{
    uint64_t ns = atomic_load_explicit(&awake_ns, memory_order_relaxed);
    if (ns == 0)
        return;
    h->awake_until = now_ns() + ns;
    if (!h->awake_scheduled)
        h->awake_scheduled = cio_loop_call_soon(h->loop, awake_cb, h, NULL) == 0;
}

/* ---- the worker's side ---------------------------------------------------------- */

/* fn is done with the argument, or will never run: the last user frees it. */
static void release_arg(const request_t *s)
{
    if (s->share) {
        /* Acquire-release: the last user frees after every other's use. */
        if (atomic_fetch_sub_explicit(&s->share->users, 1, memory_order_acq_rel) == 1) {
            if (s->share->free_arg)
                s->share->free_arg(s->share->arg);
            free(s->share);
        }
    } else if (s->free_arg) {
        s->free_arg(s->arg);
    }
}

/* Free the outcomes no future will take; any thread. */
static void drop_outcomes(batch_t *b)
{
    for (uint32_t k = 0; k < b->n; k++)
        if (b->out[k].result && b->req[k].free_result)
            b->req[k].free_result(b->out[k].result);
}

/* Free a batch nobody else holds; any thread. */
static void batch_free(batch_t *b)
{
    cio__mailbox_node_unreserve(b->post_node);
    cio__mailbox_node_unreserve(b->reply_node);
    if (b->target)
        cio__mailbox_port_unref(b->target);
    if (b->caller)
        cio__mailbox_port_unref(b->caller);
    free(b);
}

/*
 * One side of a batch that is out lets go of it: the caller's closing loop
 * (the waiters), or whoever holds the message that cannot reach it.
 * Acquire-release, so the second frees it after the first side's last use.
 */
static void batch_drop(batch_t *b)
{
    if (atomic_fetch_sub_explicit(&b->owners, 1, memory_order_acq_rel) == 1)
        batch_free(b);
}

static int batch_home(void *arg);
static int batch_lost(void *arg);

/* Send the outcomes home; a caller's loop that has closed takes none. */
static void send_home(batch_t *b)
{
    struct cio__mbox_node *n = b->reply_node;
    b->reply_node = NULL; /* the message's once posted: the caller may free b at once */
    if (cio__mailbox_port_post(b->caller, n, batch_home, batch_lost, b) == 0)
        return;
    b->reply_node = n;
    drop_outcomes(b);
    batch_drop(b);
}

/* On the worker's thread: run every call of the batch, in order. */
static int run_batch(void *arg)
{
    batch_t *b = arg;
    for (uint32_t k = 0; k < b->n; k++) {
        const request_t *s = &b->req[k];
        void *result = NULL;
        int rc = s->fn(s->arg, &result);
        release_arg(s);
        if (rc > 0)
            rc = -EINVAL;
        if (rc < 0 && result && s->free_result)
            s->free_result(result);
        b->out[k] = (outcome_t){.result = rc == 0 ? result : NULL, .rc = rc};
    }
    send_home(b);
    /* The caller's next batch likely follows while it settles this one. */
    home_t *h = home_get(cio_get_running_loop());
    if (h)
        stay_awake(h);
    return 0;
}

/* The worker's loop closed before running the batch: no call will run. */
static int batch_unrun(void *arg)
{
    batch_t *b = arg;
    for (uint32_t k = 0; k < b->n; k++) {
        release_arg(&b->req[k]);
        b->out[k] = (outcome_t){.rc = CIO_ECLOSED};
    }
    send_home(b);
    return 0;
}

/* ---- the caller's side: settling ----------------------------------------------- */

static void results_free(void *v)
{
    results_t *r = cio_container_of(v, results_t, v);
    for (size_t k = 0; k < r->n; k++)
        if (r->v[k] && r->free_result)
            r->free_result(r->v[k]);
    free(r);
}

static void fanout_free(fanout_t *f)
{
    if (f->res)
        results_free(f->res->v);
    if (f->acc && f->free_acc)
        f->free_acc(f->acc);
    free(f);
}

/* Give a pending future an outcome; a result it cannot take is freed. */
static void settle(cio_future_t *fut, int rc, void *result, void (*free_result)(void *))
{
    if (cio_future_done(fut)) {
        if (result && free_result)
            free_result(result);
    } else if (rc == 0 && result && free_result) {
        cio__future_set_owned_result(fut, result, free_result);
    } else if (rc == 0) {
        cio_future_set_result(fut, result);
    } else if (rc == -ECANCELED) {
        cio_future_cancel(fut, NULL);
    } else {
        cio_future_set_error(fut, rc, NULL);
    }
}

/* Every worker has answered: the fan-out's outcome, folded for map_reduce. */
static void fanout_finish(fanout_t *f)
{
    if (f->err || cio_future_done(f->fut)) {
        settle(f->fut, f->err ? f->err : CIO_ECLOSED, NULL, NULL);
    } else if (!f->reduce) {
        cio__future_set_owned_result(f->fut, f->res->v, results_free);
        f->res = NULL;
    } else {
        void *acc = f->acc;
        f->acc = NULL;
        for (size_t k = 0; k < f->res->n; k++) {
            acc = f->reduce(acc, f->res->v[k], f->reduce_arg);
            f->res->v[k] = NULL; /* reduce's now */
        }
        settle(f->fut, 0, acc, f->free_acc);
    }
    cio_future_unref(f->fut);
    fanout_free(f);
}

static void fanout_answer(fanout_t *f, size_t index, int rc, void *result)
{
    if (rc == 0)
        f->res->v[index] = result;
    else if (f->err == 0 || index < f->err_index)
        f->err = rc, f->err_index = index;
    if (--f->left == 0)
        fanout_finish(f);
}

/* Put a batch aside for reuse, or free it. */
static void batch_recycle(home_t *h, batch_t *b)
{
    cio__mailbox_node_unreserve(b->post_node);
    cio__mailbox_node_unreserve(b->reply_node);
    if (b->target)
        cio__mailbox_port_unref(b->target);
    cio__mailbox_port_unref(b->caller);
    b->post_node = b->reply_node = NULL;
    b->target = b->caller = NULL;
    if (h->nspare == SPARE_MAX) {
        free(b);
        return;
    }
    cio__queue_insert_tail(&h->spare, &b->link);
    h->nspare++;
}

/* Settle every call of a batch that is the caller's again, in order. */
static void batch_settle(home_t *h, batch_t *b)
{
    for (uint32_t k = 0; k < b->n; k++) {
        const waiter_t *wt = &b->wait[k];
        if (wt->all) {
            fanout_answer(wt->all, wt->index, b->out[k].rc, b->out[k].result);
        } else {
            settle(wt->fut, b->out[k].rc, b->out[k].result, b->req[k].free_result);
            cio_future_unref(wt->fut);
        }
    }
    batch_recycle(h, b);
}

/* On the caller's thread: the batch is back. */
static int batch_home(void *arg)
{
    batch_t *b = arg;
    home_t *h = b->home;
    cio__queue_remove(&b->link);
    batch_settle(h, b);
    if (!cio__queue_empty(&h->out))
        stay_awake(h);
    return 0;
}

/* The caller's loop closed with the outcomes in its mailbox: the home has let its half go. */
static int batch_lost(void *arg)
{
    batch_t *b = arg;
    drop_outcomes(b);
    batch_drop(b);
    return 0;
}

/* ---- the caller's side: sending --------------------------------------------------- */

/* Post an open batch to its worker: 0, or CIO_ECLOSED (the batch stays open, its target gone). */
static int batch_send(home_t *h, batch_t *b)
{
    if (!b->target)
        return CIO_ECLOSED;
    cio__queue_remove(&b->link);
    cio__queue_insert_tail(&h->out, &b->link);
    /* Relaxed: the post publishes it to the worker. */
    atomic_store_explicit(&b->owners, 2, memory_order_relaxed);
    struct cio__mbox_node *n = b->post_node;
    b->post_node = NULL; /* the message's once posted: the worker may hold b at once */
    int rc = cio__mailbox_port_post(b->target, n, run_batch, batch_unrun, b);
    if (rc == 0) {
        stay_awake(h); /* the answer may be quick */
        return 0;
    }
    b->post_node = n;
    cio__queue_remove(&b->link);
    cio__queue_insert_tail(&h->open, &b->link);
    cio__mailbox_port_unref(b->target);
    b->target = NULL;
    return rc;
}

/* A batch that cannot reach its worker: no call runs, each fails with @p err. */
static void batch_fail(home_t *h, batch_t *b, int err)
{
    cio__queue_remove(&b->link);
    for (uint32_t k = 0; k < b->n; k++) {
        release_arg(&b->req[k]);
        b->out[k] = (outcome_t){.rc = err};
    }
    batch_settle(h, b);
}

/* At the iteration after the calls: send what was batched. */
static int flush_cb(void *arg)
{
    home_t *h = arg;
    h->flush_scheduled = false;
    while (!cio__queue_empty(&h->open)) {
        batch_t *b = cio_container_of(h->open.next, batch_t, link);
        if (b->n == 0) {
            cio__queue_remove(&b->link);
            batch_recycle(h, b);
        } else if (batch_send(h, b) < 0) {
            batch_fail(h, b, CIO_ECLOSED);
        }
    }
    return 0;
}

/* A new empty batch for @p to, with its two messages' nodes: 0 or -ENOMEM. */
static int batch_open(home_t *h, cio_loop_t *to, batch_t **out)
{
    if (!h->flush_scheduled) {
        int rc = cio_loop_call_soon(h->loop, flush_cb, h, NULL);
        if (rc < 0)
            return rc;
        h->flush_scheduled = true;
    }
    batch_t *b;
    if (h->nspare > 0) {
        b = cio_container_of(h->spare.next, batch_t, link);
        cio__queue_remove(&b->link);
        h->nspare--;
    } else if (!(b = aligned_alloc(_Alignof(batch_t), sizeof(*b)))) {
        return -ENOMEM;
    }
    b->post_node = cio__mailbox_node_reserve();
    b->reply_node = cio__mailbox_node_reserve();
    b->caller = NULL;
    /* A target already closed leaves the batch without one: its calls fail at the flush. */
    int rc = cio__mailbox_port(to, &b->target);
    if (rc < 0)
        b->target = NULL;
    if (!b->post_node || !b->reply_node || rc == -ENOMEM) {
        batch_free(b);
        return -ENOMEM;
    }
    cio__mailbox_port_ref(h->part.home->port);
    b->caller = h->part.home->port;
    b->home = h;
    b->to = to;
    b->n = 0;
    cio__queue_insert_tail(&h->open, &b->link);
    *out = b;
    return 0;
}

/* The open batch for @p to, opened if need be: it has room for one more call. */
static batch_t *batch_for(home_t *h, cio_loop_t *to)
{
    cio__queue_t *q;
    cio__queue_foreach(q, &h->open)
    {
        batch_t *b = cio_container_of(q, batch_t, link);
        if (b->to == to && b->n < BATCH_CAP)
            return b;
    }
    batch_t *b = NULL;
    return batch_open(h, to, &b) == 0 ? b : NULL;
}

/*
 * Fill the next slot of @p b, which batch_for() gave. A full batch goes at
 * once; one that cannot stays open, without a target, for the flush to fail
 * its calls (never here: no future settles inside the call that made it).
 */
static void batch_add(home_t *h, batch_t *b, const request_t *r, const waiter_t *wt)
{
    b->req[b->n] = *r;
    b->wait[b->n++] = *wt;
    if (b->n == BATCH_CAP)
        batch_send(h, b);
}

/* ---- homes ------------------------------------------------------------------------ */

/* The calling loop's part of its home, made on first use; NULL when out of memory. */
static home_t *home_get(cio_loop_t *loop)
{
    cio__home_t *home = cio__home_get(loop);
    if (!home)
        return NULL;
    if (home->part[CIO__HOME_SHARD])
        return cio_container_of(home->part[CIO__HOME_SHARD], home_t, part);
    home_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    cio__queue_init(&h->open);
    cio__queue_init(&h->out);
    cio__queue_init(&h->spare);
    cio__home_add(home, CIO__HOME_SHARD, &h->part, home_closed);
    return h;
}

/* A call whose caller's loop closed first: its future ends cancelled. */
static void orphan(const waiter_t *wt)
{
    if (!wt->all) {
        cio_future_cancel(wt->fut, NULL);
        cio_future_unref(wt->fut);
        return;
    }
    fanout_t *f = wt->all;
    if (f->fut) {
        cio_future_cancel(f->fut, NULL);
        cio_future_unref(f->fut);
        f->fut = NULL;
    }
    if (--f->left == 0)
        fanout_free(f);
}

/*
 * The calling loop closes (on the closing thread, once no answer can get into
 * its mailbox): the futures of its calls are cancelled, calls not sent never
 * run, and the batches out are left to their workers, which free what comes
 * back (batch_lost(), or send_home() failing).
 */
static void home_closed(cio__home_part_t *part)
{
    home_t *h = cio_container_of(part, home_t, part);
    while (!cio__queue_empty(&h->open)) {
        batch_t *b = cio_container_of(h->open.next, batch_t, link);
        cio__queue_remove(&b->link);
        for (uint32_t k = 0; k < b->n; k++) {
            release_arg(&b->req[k]);
            orphan(&b->wait[k]);
        }
        batch_free(b);
    }
    while (!cio__queue_empty(&h->out)) {
        batch_t *b = cio_container_of(h->out.next, batch_t, link);
        cio__queue_remove(&b->link);
        for (uint32_t k = 0; k < b->n; k++)
            orphan(&b->wait[k]);
        batch_drop(b);
    }
    while (!cio__queue_empty(&h->spare)) {
        batch_t *b = cio_container_of(h->spare.next, batch_t, link);
        cio__queue_remove(&b->link);
        free(b);
    }
    free(h);
}

/* ---- the public calls ---------------------------------------------------------------- */

cio_future_t *cio_workers_submit_to(cio_workers_t *w, size_t i, const cio_shard_call_t *call)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_loop_t *to = w ? cio_workers_loop(w, i) : NULL;
    home_t *h = loop && to && call && call->fn ? home_get(loop) : NULL;
    batch_t *b = h ? batch_for(h, to) : NULL;
    cio_future_t *fut = b ? cio_loop_create_future(loop) : NULL;
    if (!fut) {
        if (call && call->free_arg)
            call->free_arg(call->arg);
        return NULL;
    }
    request_t r = {.fn = call->fn,
                   .arg = call->arg,
                   .free_arg = call->free_arg,
                   .free_result = call->free_result};
    waiter_t wt = {.fut = cio_future_ref(fut)};
    batch_add(h, b, &r, &wt);
    return fut;
}

/* A fan-out's caller-side record and shared argument; NULL when out of memory. */
static fanout_t *fanout_new(cio_loop_t *loop, size_t n, const cio_shard_call_t *call,
                            share_t **share)
{
    fanout_t *f = calloc(1, sizeof(*f));
    results_t *r = calloc(1, sizeof(*r) + n * sizeof(void *));
    share_t *sh = calloc(1, sizeof(*sh));
    cio_future_t *fut = f && r && sh ? cio_loop_create_future(loop) : NULL;
    if (!fut) {
        free(f);
        free(r);
        free(sh);
        return NULL;
    }
    *r = (results_t){.n = n, .free_result = call->free_result};
    *f = (fanout_t){.fut = fut, .left = n, .res = r};
    *sh = (share_t){.arg = call->arg, .free_arg = call->free_arg};
    atomic_init(&sh->users, n);
    *share = sh;
    return f;
}

/*
 * Queue @p call to every worker, for @p f. Every worker's batch is found (or
 * opened) first, so the calls go to all workers or to none: NULL then.
 */
static cio_future_t *fan_out(cio_workers_t *w, const cio_shard_call_t *call, fanout_t *f,
                             share_t *share, home_t *h)
{
    size_t n = f->res->n;
    batch_t **bs = calloc(n, sizeof(*bs));
    for (size_t i = 0; bs && i < n; i++) {
        if (!(bs[i] = batch_for(h, cio_workers_loop(w, i)))) {
            free(bs);
            bs = NULL;
        }
    }
    if (!bs)
        return NULL;
    cio_future_t *fut = cio_future_ref(f->fut);
    request_t r = {
        .fn = call->fn, .arg = call->arg, .free_result = call->free_result, .share = share};
    for (size_t i = 0; i < n; i++) {
        waiter_t wt = {.all = f, .index = i};
        batch_add(h, bs[i], &r, &wt);
    }
    free(bs);
    return fut;
}

/* invoke_on_all and map_reduce: @p reduce NULL for the first. */
static cio_future_t *fan(cio_workers_t *w, const cio_shard_call_t *call, cio_shard_reduce_fn reduce,
                         void *reduce_arg, void *init, void (*free_acc)(void *))
{
    cio_loop_t *loop = cio_get_running_loop();
    bool valid = loop && w && call && call->fn;
    home_t *h = valid ? home_get(loop) : NULL;
    share_t *share = NULL;
    fanout_t *f = h ? fanout_new(loop, cio_workers_count(w), call, &share) : NULL;
    cio_future_t *fut = NULL;
    if (f) {
        f->reduce = reduce;
        f->reduce_arg = reduce_arg;
        f->acc = init;
        f->free_acc = free_acc;
        fut = fan_out(w, call, f, share, h);
    }
    if (fut)
        return fut;
    if (f) {
        cio_future_unref(f->fut);
        free(share);
        fanout_free(f); /* frees init */
    } else if (init && free_acc) {
        free_acc(init);
    }
    if (call && call->free_arg)
        call->free_arg(call->arg);
    return NULL;
}

cio_future_t *cio_workers_invoke_on_all(cio_workers_t *w, const cio_shard_call_t *call)
{
    return fan(w, call, NULL, NULL, NULL, NULL);
}

cio_future_t *cio_workers_map_reduce(cio_workers_t *w, const cio_shard_call_t *call,
                                     cio_shard_reduce_fn reduce, void *reduce_arg, void *init,
                                     void (*free_acc)(void *acc))
{
    if (!reduce) {
        if (init && free_acc)
            free_acc(init);
        if (call && call->free_arg)
            call->free_arg(call->arg);
        return NULL;
    }
    return fan(w, call, reduce, reduce_arg, init, free_acc);
}
