/*
 * loop/future.c: asyncio's Future. Completion schedules every registered done
 * callback with call_soon, in registration order, each holding a reference to
 * the future until it has run (or been discarded by a closing loop).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum future_state { PENDING, RESULT, ERROR, CANCELLED };

typedef struct done_entry {
    cio_done_cb cb;
    void *arg;
} done_entry_t;

struct cio_future_s {
    cio_loop_t *loop;
    unsigned refs;
    enum future_state state;
    int err;
    void *result;
    char *message;
    done_entry_t *callbacks;
    size_t ncallbacks;
    size_t cap;
    done_entry_t inline_cb[2]; /* most futures have one or two callbacks */
};

cio_future_t *cio_loop_create_future(cio_loop_t *loop)
{
    if (!loop || atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return NULL;
    cio_future_t *fut = calloc(1, sizeof(*fut));
    if (!fut)
        return NULL;
    fut->loop = loop;
    fut->refs = 1;
    fut->callbacks = fut->inline_cb;
    fut->cap = sizeof(fut->inline_cb) / sizeof(fut->inline_cb[0]);
    return fut;
}

cio_future_t *cio_future_ref(cio_future_t *fut)
{
    fut->refs++;
    return fut;
}

void cio_future_unref(cio_future_t *fut)
{
    if (!fut || --fut->refs > 0)
        return;
    if (fut->callbacks != fut->inline_cb)
        free(fut->callbacks);
    free(fut->message);
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

/* Mark the future done and hand its callbacks to the loop. */
static int complete(cio_future_t *fut, enum future_state state)
{
    int rc = 0;
    fut->state = state;
    for (size_t i = 0; i < fut->ncallbacks; i++) {
        int r = schedule_done(fut, fut->callbacks[i].cb, fut->callbacks[i].arg);
        if (r < 0 && rc == 0)
            rc = r;
    }
    fut->ncallbacks = 0;
    return rc;
}

int cio_future_set_result(cio_future_t *fut, void *result)
{
    if (!fut)
        return -EINVAL;
    if (fut->state != PENDING)
        return CIO_EINVALIDSTATE;
    fut->result = result;
    return complete(fut, RESULT);
}

int cio_future_set_error(cio_future_t *fut, int err, const char *message)
{
    if (!fut || err >= 0 || err == -ECANCELED)
        return -EINVAL;
    if (fut->state != PENDING)
        return CIO_EINVALIDSTATE;
    fut->err = err;
    fut->message = message ? strdup(message) : NULL;
    return complete(fut, ERROR);
}

bool cio_future_cancel(cio_future_t *fut, const char *message)
{
    if (!fut || fut->state != PENDING)
        return false;
    fut->err = -ECANCELED;
    fut->message = message ? strdup(message) : NULL;
    complete(fut, CANCELLED);
    return true;
}

bool cio_future_done(const cio_future_t *fut)
{
    return fut->state != PENDING;
}

bool cio_future_cancelled(const cio_future_t *fut)
{
    return fut->state == CANCELLED;
}

int cio_future_result(const cio_future_t *fut, void **result)
{
    switch (fut->state) {
    case PENDING:
        return CIO_EINVALIDSTATE;
    case RESULT:
        if (result)
            *result = fut->result;
        return 0;
    case ERROR:
    case CANCELLED:
        break;
    }
    return fut->err;
}

int cio_future_error(const cio_future_t *fut)
{
    return fut->state == PENDING ? CIO_EINVALIDSTATE : fut->err;
}

const char *cio_future_error_message(const cio_future_t *fut)
{
    return fut->message;
}

int cio_future_add_done_callback(cio_future_t *fut, cio_done_cb cb, void *arg)
{
    if (!fut || !cb)
        return -EINVAL;
    if (fut->state != PENDING)
        return schedule_done(fut, cb, arg);
    if (fut->ncallbacks == fut->cap) {
        size_t cap = fut->cap * 2;
        done_entry_t *v = fut->callbacks == fut->inline_cb
                              ? malloc(cap * sizeof(*v))
                              : realloc(fut->callbacks, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        if (fut->callbacks == fut->inline_cb)
            memcpy(v, fut->inline_cb, sizeof(fut->inline_cb));
        fut->callbacks = v;
        fut->cap = cap;
    }
    fut->callbacks[fut->ncallbacks++] = (done_entry_t){cb, arg};
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
