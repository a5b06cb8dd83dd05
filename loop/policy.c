/*
 * loop/policy.c: which loop is running in this thread, and event loop
 * policies. The default policy keeps one current loop per thread and creates
 * one on first use in the main thread only, as asyncio's default policy does.
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

static __thread cio_loop_t *running_loop;
static __thread cio_loop_t *current_loop;
static __thread bool set_called; /* set_event_loop() ran in this thread (asyncio's _set_called) */

cio_loop_t *cio__get_running(void)
{
    return running_loop;
}

void cio__set_running(cio_loop_t *loop)
{
    running_loop = loop;
}

/* A loop being freed stops being this thread's current loop. */
void cio__policy_forget(cio_loop_t *loop)
{
    if (current_loop == loop)
        current_loop = NULL;
}

static bool is_main_thread(void)
{
    return gettid() == getpid();
}

static cio_loop_t *default_get_event_loop(void *data, int *err)
{
    /* Only a main thread that never chose its loop gets one made for it. */
    if (!current_loop && !set_called && is_main_thread()) {
        current_loop = cio_loop_new();
        if (!current_loop)
            *err = -ENOMEM;
        return current_loop;
    }
    if (!current_loop)
        *err = CIO_ENOPOLICYLOOP;
    return current_loop;
}

static int default_set_event_loop(void *data, cio_loop_t *loop)
{
    set_called = true;
    current_loop = loop;
    return 0;
}

static cio_loop_t *default_new_event_loop(void *data)
{
    return cio_loop_new();
}

static const cio_policy_t default_policy = {
    .get_event_loop = default_get_event_loop,
    .set_event_loop = default_set_event_loop,
    .new_event_loop = default_new_event_loop,
};

static _Atomic(const cio_policy_t *) installed_policy = &default_policy;

const cio_policy_t *cio_get_event_loop_policy(void)
{
    return atomic_load_explicit(&installed_policy, memory_order_acquire);
}

int cio_set_event_loop_policy(const cio_policy_t *policy)
{
    if (policy && (!policy->get_event_loop || !policy->set_event_loop || !policy->new_event_loop))
        return -EINVAL;
    atomic_store_explicit(&installed_policy, policy ? policy : &default_policy,
                          memory_order_release);
    return 0;
}

cio_loop_t *cio_get_running_loop(void)
{
    return running_loop;
}

cio_loop_t *cio_get_event_loop(int *err)
{
    int dummy = 0;
    if (running_loop)
        return running_loop;
    const cio_policy_t *p = cio_get_event_loop_policy();
    return p->get_event_loop(p->data, err ? err : &dummy);
}

int cio_set_event_loop(cio_loop_t *loop)
{
    const cio_policy_t *p = cio_get_event_loop_policy();
    return p->set_event_loop(p->data, loop);
}

cio_loop_t *cio_new_event_loop(void)
{
    const cio_policy_t *p = cio_get_event_loop_policy();
    return p->new_event_loop(p->data);
}
