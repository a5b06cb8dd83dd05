/*
 * bench/bench_loop.c: the cost of the loop's scheduling primitives, measured
 * the same way bench/loop_py.py measures asyncio and uvloop, so bench/run.sh
 * can print them side by side. Each figure is the median of 5 runs; output
 * lines are "coreio<TAB>metric<TAB>value<TAB>unit".
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <coreio.h>

#include "benchutil.h"

static const char *only; /* run just this metric (--only NAME) */
static long counter;

/* Pin the calling thread to @p cpu (modulo the CPUs there are). */
static void pin_to(int cpu)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (ncpu > 0 ? ncpu : 1), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int count_cb(void *arg)
{
    counter++;
    return 0;
}

static int stop_cb(void *arg)
{
    cio_loop_stop(arg);
    return 0;
}

/* call_soon N callbacks from inside the loop, then run them all. */
static int schedule_batch_cb(void *arg)
{
    cio_loop_t *loop = cio_get_running_loop();
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        cio_loop_call_soon(loop, count_cb, NULL, NULL);
    cio_loop_call_soon(loop, stop_cb, loop, NULL);
    return 0;
}

static double bench_call_soon_batched(void)
{
    long n = scaled(200000);
    cio_loop_t *loop = cio_loop_new();
    /* Warm the slab and ring so the figure is steady state. */
    cio_loop_call_soon(loop, schedule_batch_cb, &n, NULL);
    cio_loop_run_forever(loop);
    uint64_t t0 = now_ns();
    cio_loop_call_soon(loop, schedule_batch_cb, &n, NULL);
    cio_loop_run_forever(loop);
    double r = (double)(now_ns() - t0) / (double)n;
    cio_loop_free(loop);
    return r;
}

typedef struct chain {
    cio_loop_t *loop;
    long left;
} chain_t;

static int chain_cb(void *arg)
{
    chain_t *c = arg;
    if (--c->left > 0)
        cio_loop_call_soon(c->loop, chain_cb, c, NULL);
    else
        cio_loop_stop(c->loop);
    return 0;
}

static double bench_call_soon_chain(void)
{
    long n = scaled(200000);
    chain_t c = {cio_loop_new(), n};
    uint64_t t0 = now_ns();
    cio_loop_call_soon(c.loop, chain_cb, &c, NULL);
    cio_loop_run_forever(c.loop);
    double r = (double)(now_ns() - t0) / (double)n;
    cio_loop_free(c.loop);
    return r;
}

static unsigned rnd_state = 12345;
static double rnd_delay(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return 1000.0 + (double)((rnd_state >> 8) % 1000000u) / 1000.0;
}

/* Schedule 100k pending timers (in the loop, as asyncio code would). */
static int schedule_pending_cb(void *arg)
{
    cio_loop_t *loop = cio_get_running_loop();
    for (int i = 0; i < 100000; i++)
        cio_loop_call_later(loop, rnd_delay(), count_cb, NULL, NULL);
    cio_loop_stop(loop);
    return 0;
}

static int schedule_cancel_cb(void *arg)
{
    cio_loop_t *loop = cio_get_running_loop();
    long m = *(long *)arg;
    cio_handle_t h;
    for (long i = 0; i < m; i++) {
        cio_loop_call_later(loop, rnd_delay(), count_cb, NULL, &h);
        cio_handle_cancel(h);
    }
    /* The next iteration gets to clean up the cancelled timers. */
    cio_loop_call_soon(loop, stop_cb, loop, NULL);
    return 0;
}

static double bench_timer_schedule_cancel(void)
{
    long m = scaled(200000);
    cio_loop_t *loop = cio_loop_new();
    cio_loop_call_soon(loop, schedule_pending_cb, NULL, NULL);
    cio_loop_run_forever(loop);
    /* One unmeasured round grows the heap and slab: the figure is steady state. */
    cio_loop_call_soon(loop, schedule_cancel_cb, &m, NULL);
    cio_loop_run_forever(loop);
    uint64_t t0 = now_ns();
    cio_loop_call_soon(loop, schedule_cancel_cb, &m, NULL);
    cio_loop_run_forever(loop);
    double r = (double)(now_ns() - t0) / (double)m;
    cio_loop_free(loop);
    return r;
}

/* Heap bytes per pending timer: slab slot, heap entry, and growth slack. */
static double bench_timer_bytes(void)
{
    cio_loop_t *loop = cio_loop_new();
    struct mallinfo2 before = mallinfo2();
    cio_loop_call_soon(loop, schedule_pending_cb, NULL, NULL);
    cio_loop_run_forever(loop);
    struct mallinfo2 after = mallinfo2();
    cio_loop_free(loop);
    return (double)(after.uordblks - before.uordblks) / 100000.0;
}

typedef struct ts_state {
    cio_loop_t *loop;
    long n;
    long received; /* loop thread */
    _Atomic long acked;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} ts_state_t;

static int ts_recv_cb(void *arg)
{
    ts_state_t *s = arg;
    if (++s->received == s->n)
        cio_loop_stop(s->loop);
    return 0;
}

static void *ts_producer(void *arg)
{
    ts_state_t *s = arg;
    pin_to(1);
    for (long i = 0; i < s->n; i++) {
        cio_loop_call_soon_threadsafe(s->loop, ts_recv_cb, s);
    }
    return NULL;
}

/* A producer thread streams messages as fast as it can. */
static double bench_threadsafe_batched(double *wakeups_per_msg)
{
    ts_state_t s = {.loop = cio_loop_new(), .n = scaled(200000)};
    pthread_t t;
    /* An unmeasured round grows the slab and ready ring: steady state. */
    pthread_create(&t, NULL, ts_producer, &s);
    cio_loop_run_forever(s.loop);
    pthread_join(t, NULL);
    s.received = 0;
    uint64_t t0 = now_ns();
    pthread_create(&t, NULL, ts_producer, &s);
    cio_loop_run_forever(s.loop);
    double r = (double)(now_ns() - t0) / (double)s.n;
    pthread_join(t, NULL);
    cio_loop_stats_t st;
    cio_loop_get_stats(s.loop, &st);
    *wakeups_per_msg = (double)st.mailbox_wakeups / (double)st.mailbox_received;
    cio_loop_free(s.loop);
    return r;
}

/* One message at a time: the producer waits until the loop has run it. */
static int ts_ack_cb(void *arg)
{
    ts_state_t *s = arg;
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add(&s->acked, 1);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (++s->received == s->n)
        cio_loop_stop(s->loop);
    return 0;
}

static void *ts_pinger(void *arg)
{
    ts_state_t *s = arg;
    pin_to(1);
    for (long i = 0; i < s->n; i++) {
        cio_loop_call_soon_threadsafe(s->loop, ts_ack_cb, s);
        pthread_mutex_lock(&s->mu);
        while (atomic_load(&s->acked) <= i)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static double bench_threadsafe_single(void)
{
    ts_state_t s = {.loop = cio_loop_new(), .n = scaled(20000)};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_t t;
    uint64_t t0 = now_ns();
    pthread_create(&t, NULL, ts_pinger, &s);
    cio_loop_run_forever(s.loop);
    pthread_join(t, NULL);
    double r = (double)(now_ns() - t0) / (double)s.n;
    cio_loop_free(s.loop);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return r;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--scale") == 0)
            scale = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--only") == 0)
            only = argv[i + 1];
    }
    double v[REPEAT], w[REPEAT], wake = 0;
    /* The loop runs on CPU 0; producer threads pin themselves to CPU 1. */
    pin_to(0);
#define RUN(metric, expr, unit)                                                                    \
    do {                                                                                           \
        if (only && strcmp(only, metric) != 0)                                                     \
            break;                                                                                 \
        for (int i = 0; i < REPEAT; i++)                                                           \
            v[i] = (expr);                                                                         \
        printf("coreio\t%s\t%.1f\t%s\n", metric, median(v), unit);                                 \
        fflush(stdout);                                                                            \
    } while (0)
    RUN("call_soon_batched", bench_call_soon_batched(), "ns");
    RUN("call_soon_chain", bench_call_soon_chain(), "ns");
    RUN("timer_schedule_cancel_100k", bench_timer_schedule_cancel(), "ns");
    RUN("timer_bytes_per_pending", bench_timer_bytes(), "bytes");
    if (!only || strcmp(only, "call_soon_threadsafe_batched") == 0) {
        for (int i = 0; i < REPEAT; i++) {
            v[i] = bench_threadsafe_batched(&wake);
            w[i] = wake;
        }
        printf("coreio\tcall_soon_threadsafe_batched\t%.1f\tns\n", median(v));
        printf("coreio\tthreadsafe_eventfd_writes_per_msg\t%.4f\tratio\n", median(w));
    }
    RUN("call_soon_threadsafe_single", bench_threadsafe_single(), "ns");
    (void)counter;
    return 0;
}
