/*
 * loop/future.c: asyncio's Future. Completion schedules every registered done
 * callback with call_soon, in registration order, each holding a reference to
 * the future until it has run (or been discarded by a closing loop).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Set up a future embedded in a bigger object (a task, a gather). */
void cio__future_init(cio_future_t *fut, cio_loop_t *loop, const cio__future_ops_t *ops)
{
    memset(fut, 0, sizeof(*fut));
    fut->ops = ops;
    fut->loop = loop;
    fut->refs = 1;
    fut->callbacks = fut->inline_cb;
    fut->cap = sizeof(fut->inline_cb) / sizeof(fut->inline_cb[0]);
}

cio_future_t *cio_loop_create_future(cio_loop_t *loop)
{
    if (!loop || atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return NULL;
    assert(!cio__wrong_thread(loop));
    cio_future_t *fut = malloc(sizeof(*fut));
    if (!fut)
        return NULL;
    cio__future_init(fut, loop, NULL);
    return fut;
}

cio_future_t *cio_future_ref(cio_future_t *fut)
{
    assert(fut->refs > 0); /* not a freed future */
    fut->refs++;
    return fut;
}

void cio_future_unref(cio_future_t *fut)
{
    assert(!fut || fut->refs > 0);
    if (!fut || --fut->refs > 0)
        return;
    if (fut->callbacks != fut->inline_cb)
        free(fut->callbacks);
    free(fut->message);
    if (fut->result_free && fut->state == CIO__FUT_RESULT)
        fut->result_free(fut->result);
    if (fut->ops && fut->ops->destroy)
        fut->ops->destroy(fut);
    else
        free(fut);
}

cio_loop_t *cio_future_get_loop(const cio_future_t *fut)
{
    return fut->loop;
}

/* Schedule one done callback, the slot holding a reference to the future. */
static int schedule_done(cio_future_t *fut, cio_done_cb cb, void *arg)
{
    int rc = cio__schedule_check(fut->loop, (const void *)cb);
    if (rc < 0)
        return rc;
    cio__slot_t proto = {.fn.done = cb, .arg = arg, .fut = fut, .kind = CIO__SLOT_DONE};
    rc = cio__schedule(fut->loop, &proto, NULL);
    if (rc == 0)
        cio_future_ref(fut);
    return rc;
}

/*
 * Schedule the callbacks still registered, in order. One the loop refuses
 * (closed) is dropped; out of memory, it and those after it stay registered.
 */
static int schedule_callbacks(cio_future_t *fut)
{
    int rc = 0;
    size_t i = 0;
    for (; i < fut->ncallbacks; i++) {
        int r = schedule_done(fut, fut->callbacks[i].cb, fut->callbacks[i].arg);
        if (r < 0 && rc == 0)
            rc = r;
        if (r == -ENOMEM)
            break;
    }
    fut->ncallbacks -= i;
    memmove(fut->callbacks, fut->callbacks + i, fut->ncallbacks * sizeof(*fut->callbacks));
    return rc;
}

static int retry_deferred(void *arg);
static int discard_deferred(void *arg);

/* Schedule the retry in the slot the loop keeps for it (this cannot fail). */
static void arm_retry(cio_loop_t *loop)
{
    if (loop->retry_state != CIO__RETRY_RESERVED)
        return;
    cio__slot_t proto = {
        .fn.cb = retry_deferred, .arg = loop, .kind = CIO__SLOT_OWNED, .release = discard_deferred};
    cio__slot_schedule_reserved(loop, loop->retry_slot, &proto);
    loop->retry_state = CIO__RETRY_SCHEDULED;
}

/*
 * The retry: the slot it ran from was freed just before, so taking it back
 * cannot fail. Each waiting future's callbacks are scheduled, in the order
 * the futures completed; still out of memory, the rest wait another turn.
 */
static int retry_deferred(void *arg)
{
    cio_loop_t *loop = arg;
    int rc = cio__slot_reserve(loop, &loop->retry_slot);
    assert(rc == 0);
    loop->retry_state = rc == 0 ? CIO__RETRY_RESERVED : CIO__RETRY_NONE;
    while (loop->deferred) {
        cio_future_t *fut = loop->deferred;
        if (schedule_callbacks(fut) == -ENOMEM) {
            arm_retry(loop);
            return 0;
        }
        loop->deferred = fut->deferred_next;
        if (!loop->deferred)
            loop->deferred_tail = NULL;
        cio_future_unref(fut); /* the list's reference */
    }
    return 0;
}

/* The loop closes with the retry pending: those callbacks will never run. */
static int discard_deferred(void *arg)
{
    cio_loop_t *loop = arg;
    while (loop->deferred) {
        cio_future_t *fut = loop->deferred;
        loop->deferred = fut->deferred_next;
        fut->ncallbacks = 0;
        cio_future_unref(fut);
    }
    loop->deferred_tail = NULL;
    loop->retry_state = CIO__RETRY_NONE;
    return 0;
}

/*
 * Mark the future done and hand its callbacks to the loop. Callbacks that
 * cannot be scheduled for want of memory are not lost: the future waits, with
 * a reference, in the loop's list of deferred completions, retried from a
 * slot the loop reserved with its first done callback.
 */
static int complete(cio_future_t *fut, enum cio__future_state state)
{
    fut->state = state;
    int rc = schedule_callbacks(fut);
    if (rc != -ENOMEM)
        return rc;
    cio_loop_t *loop = fut->loop;
    assert(loop->retry_state != CIO__RETRY_NONE); /* a callback was added: see there */
    fut->deferred_next = NULL;
    if (loop->deferred_tail)
        loop->deferred_tail->deferred_next = cio_future_ref(fut);
    else
        loop->deferred = cio_future_ref(fut);
    loop->deferred_tail = fut;
    arm_retry(loop);
    return 0;
}

/* The completions, without the checks that keep users off tasks' futures. */
int cio__future_set_result(cio_future_t *fut, void *result)
{
    if (fut->state != CIO__FUT_PENDING)
        return CIO_EINVALIDSTATE;
    fut->result = result;
    return complete(fut, CIO__FUT_RESULT);
}

/* A result the future owns and frees with @p result_free when it goes. */
int cio__future_set_owned_result(cio_future_t *fut, void *result, void (*result_free)(void *))
{
    int rc = cio__future_set_result(fut, result);
    if (rc == CIO_EINVALIDSTATE)
        result_free(result);
    else
        fut->result_free = result_free;
    return rc;
}

/* Take an owned result away from a done future: the caller frees it now. */
void *cio__future_take_result(cio_future_t *fut)
{
    fut->result_free = NULL;
    return fut->result;
}

int cio__future_set_error(cio_future_t *fut, int err, const char *message)
{
    if (fut->state != CIO__FUT_PENDING)
        return CIO_EINVALIDSTATE;
    fut->err = err;
    fut->message = message ? strdup(message) : NULL;
    return complete(fut, CIO__FUT_ERROR);
}

bool cio__future_set_cancelled(cio_future_t *fut, const char *message)
{
    if (fut->state != CIO__FUT_PENDING)
        return false;
    fut->err = -ECANCELED;
    fut->message = message ? strdup(message) : NULL;
    complete(fut, CIO__FUT_CANCELLED);
    return true;
}

/* Give @p dst the outcome of the done future @p src. */
int cio__future_copy_outcome(cio_future_t *dst, const cio_future_t *src)
{
    switch (src->state) {
    case CIO__FUT_RESULT:
        return cio__future_set_result(dst, src->result);
    case CIO__FUT_ERROR:
        return cio__future_set_error(dst, src->err, src->message);
    case CIO__FUT_CANCELLED:
        cio__future_set_cancelled(dst, src->message);
        return 0;
    case CIO__FUT_PENDING:
        break;
    }
    return CIO_EINVALIDSTATE;
}

int cio_future_set_result(cio_future_t *fut, void *result)
{
    if (!fut)
        return -EINVAL;
    /* asyncio: "Task does not support set_result() operation". */
    if (fut->ops && fut->ops->readonly)
        return -EPERM;
    return cio__future_set_result(fut, result);
}

int cio_future_set_error(cio_future_t *fut, int err, const char *message)
{
    if (!fut || err >= 0 || err == -ECANCELED)
        return -EINVAL;
    if (fut->ops && fut->ops->readonly)
        return -EPERM;
    return cio__future_set_error(fut, err, message);
}

bool cio_future_cancel(cio_future_t *fut, const char *message)
{
    if (!fut)
        return false;
    if (fut->ops && fut->ops->cancel)
        return fut->ops->cancel(fut, message);
    return cio__future_set_cancelled(fut, message);
}

bool cio_future_done(const cio_future_t *fut)
{
    return fut->state != CIO__FUT_PENDING;
}

bool cio_future_cancelled(const cio_future_t *fut)
{
    return fut->state == CIO__FUT_CANCELLED;
}

int cio_future_result(const cio_future_t *fut, void **result)
{
    switch (fut->state) {
    case CIO__FUT_PENDING:
        return CIO_EINVALIDSTATE;
    case CIO__FUT_RESULT:
        if (result)
            *result = fut->result;
        return 0;
    case CIO__FUT_ERROR:
    case CIO__FUT_CANCELLED:
        break;
    }
    return fut->err;
}

int cio_future_error(const cio_future_t *fut)
{
    return fut->state == CIO__FUT_PENDING ? CIO_EINVALIDSTATE : fut->err;
}

const char *cio_future_error_message(const cio_future_t *fut)
{
    return fut->message;
}

int cio_future_add_done_callback(cio_future_t *fut, cio_done_cb cb, void *arg)
{
    if (!fut || !cb)
        return -EINVAL;
    /* Done, with none of its callbacks waiting for memory: this one goes at once. */
    if (fut->state != CIO__FUT_PENDING && fut->ncallbacks == 0)
        return schedule_done(fut, cb, arg);
    /* The slot that would retry it if completing could not schedule it. */
    cio_loop_t *loop = fut->loop;
    if (loop->retry_state == CIO__RETRY_NONE) {
        if (cio__slot_reserve(loop, &loop->retry_slot) < 0)
            return -ENOMEM;
        loop->retry_state = CIO__RETRY_RESERVED;
    }
    if (fut->ncallbacks == fut->cap) {
        size_t cap = fut->cap * 2;
        cio__done_entry_t *v = fut->callbacks == fut->inline_cb
                                   ? malloc(cap * sizeof(*v))
                                   : realloc(fut->callbacks, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        if (fut->callbacks == fut->inline_cb)
            memcpy(v, fut->inline_cb, sizeof(fut->inline_cb));
        fut->callbacks = v;
        fut->cap = cap;
    }
    fut->callbacks[fut->ncallbacks++] = (cio__done_entry_t){cb, arg};
    return 0;
}

size_t cio_future_remove_done_callback(cio_future_t *fut, cio_done_cb cb, void *arg)
{
    if (!fut)
        return 0;
    size_t kept = 0;
    for (size_t i = 0; i < fut->ncallbacks; i++) {
        if (fut->callbacks[i].cb != cb || fut->callbacks[i].arg != arg)
            fut->callbacks[kept++] = fut->callbacks[i];
    }
    size_t removed = fut->ncallbacks - kept;
    fut->ncallbacks = kept;
    return removed;
}
