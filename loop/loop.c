/*
 * loop/loop.c: the event loop's lifecycle and its iteration. run_once follows
 * asyncio's BaseEventLoop._run_once step by step: compute the poll timeout,
 * poll I/O once, move due timers to the ready queue, then run exactly the
 * callbacks that were ready at that moment.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "internal.h"

double cio__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* True when a loop is running in a thread other than the caller's. */
bool cio__wrong_thread(const cio_loop_t *loop)
{
    return atomic_load_explicit(&loop->running, memory_order_acquire) &&
           !pthread_equal(loop->thread, pthread_self());
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    /* Nothing to do: firing makes event_base_loop return. */
}

static bool debug_from_env(void)
{
    const char *v = getenv("COREIO_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

cio_loop_t *cio_loop_new(void)
{
    /* The mailbox keeps its cache lines apart: honour its alignment. */
    cio_loop_t *loop = aligned_alloc(_Alignof(cio_loop_t), sizeof(*loop));
    if (!loop)
        return NULL;
    memset(loop, 0, sizeof(*loop));
    loop->slab.free_head = UINT32_MAX;
    loop->mailbox.efd = -1;
    cio__queue_init(&loop->tasks);
    cio__queue_init(&loop->asyncgens);
    cio__queue_init(&loop->transports);
    cio__queue_init(&loop->servers);
    cio__queue_init(&loop->subprocesses);
    cio__queue_init(&loop->polled_children);
    loop->debug = debug_from_env();
    loop->slow_callback_duration = CIO__SLOW_CALLBACK_DEFAULT;
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    loop->clock_resolution = (double)res.tv_sec + (double)res.tv_nsec * 1e-9;

    /* Loops are confined to one thread: libevent needs no locks of its own. */
    struct event_config *cfg = event_config_new();
    if (!cfg)
        goto err_free;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    loop->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!loop->base)
        goto err_free;
    loop->poll_timer = evtimer_new(loop->base, on_poll_timer, loop);
    if (!loop->poll_timer)
        goto err_base;
    if (cio__mailbox_init(loop) < 0)
        goto err_timer;
    return loop;

err_timer:
    event_free(loop->poll_timer);
err_base:
    event_base_free(loop->base);
err_free:
    free(loop);
    return NULL;
}

int cio_loop_close(cio_loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    if (atomic_load(&loop->running))
        return CIO_ERUNNING;
    if (atomic_load(&loop->closed))
        return 0;
    atomic_store(&loop->closed, 1);
    /* No thread may post to the loop after this: then nothing posted leaks. */
    cio__signals_forget_loop(loop);
    cio__executors_forget_loop(loop); /* the resolver's pool too */
    cio_future_unref(loop->executor_idle); /* its waiters are discarded below */
    loop->executor_idle = NULL;
    cio__mailbox_close(loop);
    cio__mailbox_discard(loop);
    /* Discard pending callbacks, releasing what they hold. */
    while (loop->ready.len > 0)
        cio__slot_release(loop, cio__ring_pop(&loop->ready));
    cio__timer_discard_all(loop);
    cio__tasks_destroy_pending(loop);
    cio__agens_detach(loop);
    cio__transports_destroy_all(loop);
    cio__subprocesses_destroy_all(loop); /* after the pipes: kills and reaps the children */
    cio__servers_destroy_all(loop);
    cio__io_destroy_all(loop);
    free(loop->read_buf);
    loop->read_buf = NULL;
    free(loop->dgram_batch);
    loop->dgram_batch = NULL;
    event_free(loop->poll_timer);
    loop->poll_timer = NULL;
    event_base_free(loop->base);
    loop->base = NULL;
    return 0;
}

int cio_loop_free(cio_loop_t *loop)
{
    if (!loop)
        return 0;
    int rc = cio_loop_close(loop);
    if (rc < 0)
        return rc;
    cio__policy_forget(loop);
    cio__mailbox_destroy(loop);
    cio__ring_destroy(&loop->ready);
    cio__slab_destroy(&loop->slab);
    cio__stack_pool_destroy(loop);
    free(loop);
    return 0;
}

/* Wait for I/O at most @p timeout seconds (0: just look; negative: no limit). */
static void poll_io(cio_loop_t *loop, double timeout)
{
    if (timeout == 0 || !cio__mailbox_sleep(loop)) {
        /* NONBLOCK alone would keep polling while a descriptor stays ready. */
        event_base_loop(loop->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        return;
    }
    if (timeout > 0) {
        struct timeval tv;
        tv.tv_sec = (time_t)timeout;
        tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
        event_add(loop->poll_timer, &tv);
    }
    event_base_loop(loop->base, EVLOOP_ONCE);
    cio__mailbox_awake(loop);
    if (timeout > 0)
        event_del(loop->poll_timer);
}

/* Run one callback taken off the ready queue, reporting a failure. */
static void run_slot(cio_loop_t *loop, const cio__slot_t *slot, const cio_handle_t *h)
{
    const void *fn =
        slot->kind == CIO__SLOT_DONE ? (const void *)slot->fn.done : (const void *)slot->fn.cb;
    double t0 = loop->debug ? cio__now() : 0;
    int rc =
        slot->kind == CIO__SLOT_DONE ? slot->fn.done(slot->fut, slot->arg) : slot->fn.cb(slot->arg);
    if (rc < 0)
        cio__report_callback_error(loop, h, fn, slot->fut, rc);
    if (loop->debug) {
        double dt = cio__now() - t0;
        if (dt >= loop->slow_callback_duration) {
            char name[128];
            cio__describe_fn(fn, name, sizeof(name));
            cio__log(CIO_LOG_WARNING, "Executing callback %s took %.3f seconds", name, dt);
        }
    }
}

/*
 * Step 1 of an iteration: 0 when callbacks are ready, messages wait or the loop
 * is stopping; else the time to the earliest timer, capped at 24 hours; else
 * -1, no limit.
 */
double cio__poll_timeout(cio_loop_t *loop)
{
    double timeout = cio__timer_timeout(loop);
    if (loop->ready.len > 0 || loop->stopping || cio__mailbox_pending(loop))
        return 0;
    return timeout > CIO__MAX_SELECT_TIMEOUT ? CIO__MAX_SELECT_TIMEOUT : timeout;
}

static void run_once(cio_loop_t *loop)
{
    poll_io(loop, cio__poll_timeout(loop));
    loop->now = cio__now();
    cio__mailbox_drain(loop);
    if (loop->timers.len > 0)
        cio__timer_expire(loop, loop->now);

    /* Only what is ready now runs; callbacks scheduled meanwhile wait. */
    uint32_t nready = loop->ready.len;
    while (nready-- > 0) {
        uint32_t index = cio__ring_pop(&loop->ready);
        cio__slot_t *slot = &loop->slab.v[index];
        if (slot->state != CIO__SLOT_READY) {
            assert(slot->state == CIO__SLOT_CANCELLED); /* not FREE: a stale index */
            cio__slot_release(loop, index);
            continue;
        }
        /* Free the slot first: the handle is stale while its callback runs,
         * so cancelling it from inside is the no-op asyncio makes it. */
        cio__slot_t copy = *slot;
        cio_handle_t h = {.loop = loop, .slot = index, .gen = copy.gen, .when = NAN};
        cio__slab_free(&loop->slab, index);
        loop->callbacks++;
        run_slot(loop, &copy, &h);
        if (copy.kind == CIO__SLOT_DONE)
            cio_future_unref(copy.fut);
    }
    loop->iterations++;
}

int cio_loop_run_forever(cio_loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    if (atomic_load(&loop->closed))
        return CIO_ECLOSED;
    if (atomic_load(&loop->running))
        return CIO_ERUNNING;
    if (cio__get_running())
        return CIO_EOTHERLOOP;
    loop->thread = pthread_self();
    atomic_store_explicit(&loop->running, 1, memory_order_release);
    cio__set_running(loop);
    for (;;) {
        run_once(loop);
        if (loop->stopping)
            break;
    }
    loop->stopping = 0;
    cio__set_running(NULL);
    atomic_store_explicit(&loop->running, 0, memory_order_release);
    return 0;
}

static int stop_when_done(cio_future_t *fut, void *arg)
{
    cio_loop_stop(arg);
    return 0;
}

int cio_loop_run_until_complete(cio_loop_t *loop, cio_future_t *fut, void **result)
{
    if (!loop || !fut)
        return -EINVAL;
    if (cio_future_get_loop(fut) != loop)
        return -EINVAL;
    if (atomic_load(&loop->closed))
        return CIO_ECLOSED;
    if (atomic_load(&loop->running))
        return CIO_ERUNNING;
    if (cio__get_running())
        return CIO_EOTHERLOOP;
    int rc = cio_future_add_done_callback(fut, stop_when_done, loop);
    if (rc < 0)
        return rc;
    rc = cio_loop_run_forever(loop);
    cio_future_remove_done_callback(fut, stop_when_done, loop);
    if (rc < 0)
        return rc;
    if (!cio_future_done(fut))
        return CIO_ESTOPPED;
    return cio_future_result(fut, result);
}

void cio_loop_stop(cio_loop_t *loop)
{
    if (loop)
        loop->stopping = 1;
}

bool cio_loop_is_running(const cio_loop_t *loop)
{
    return loop && atomic_load(&loop->running);
}

bool cio_loop_is_closed(const cio_loop_t *loop)
{
    return loop && atomic_load(&loop->closed);
}

double cio_loop_time(const cio_loop_t *loop)
{
    return cio__now();
}

void cio_loop_set_debug(cio_loop_t *loop, bool enabled)
{
    loop->debug = enabled;
}

bool cio_loop_get_debug(const cio_loop_t *loop)
{
    return loop->debug;
}

int cio_loop_set_slow_callback_duration(cio_loop_t *loop, double seconds)
{
    if (!loop || !(seconds >= 0))
        return -EINVAL;
    loop->slow_callback_duration = seconds;
    return 0;
}

double cio_loop_get_slow_callback_duration(const cio_loop_t *loop)
{
    return loop->slow_callback_duration;
}

void cio_loop_get_stats(const cio_loop_t *loop, cio_loop_stats_t *stats)
{
    *stats = (cio_loop_stats_t){
        .iterations = loop->iterations,
        .callbacks = loop->callbacks,
        .ready = loop->ready.len,
        .timers = loop->timers.len,
        .mailbox_received = loop->mailbox.received,
        .mailbox_wakeups = atomic_load_explicit(&loop->mailbox.wakeups, memory_order_relaxed),
        .mailbox_depth = cio__mailbox_depth((cio_loop_t *)loop),
        .executor_jobs = loop->executor_jobs,
        .bytes_in = loop->bytes_in,
        .bytes_out = loop->bytes_out,
        .connections_accepted = loop->accepted,
        .transports = loop->ntransports,
    };
}
