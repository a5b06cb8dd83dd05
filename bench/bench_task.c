/*
 * bench/bench_task.c: what tasks cost, measured as bench/task_py.py measures
 * asyncio and uvloop: awaiting a done future, yielding to the loop, a round
 * trip between two tasks, creating and finishing a task; plus coreio's raw
 * fiber switch. Built from the loop sources to reach the switch itself.
 * Output lines are "coreio<TAB>metric<TAB>value<TAB>unit", medians of 5 runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#include "benchutil.h"

/* ---- the raw switch: main <-> one fiber, ns per switch ------------------- */

static cio__fiber_t main_fiber, ping_fiber;
static long switches_left;

static void ping_entry(void *arg)
{
    cio__fiber_started(&ping_fiber);
    for (;;)
        cio__fiber_switch(&ping_fiber, &main_fiber, false);
}

static double bench_raw_switch(void)
{
    long n = scaled(2000000);
    size_t size = 64 * 1024;
    void *stack = malloc(size);
    cio__fiber_init(&ping_fiber, stack, size, ping_entry, NULL);
    switches_left = n;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        cio__fiber_switch(&main_fiber, &ping_fiber, false);
    double r = (double)(now_ns() - t0) / (double)(2 * n);
    cio__fiber_destroy(&ping_fiber);
    free(stack);
    return r;
}

/* ---- through the public API ---------------------------------------------- */

static long iterations;

static int await_done_fn(void *arg, void **result)
{
    cio_future_t *fut = cio_loop_create_future(cio_get_running_loop());
    cio_future_set_result(fut, NULL);
    uint64_t t0 = now_ns();
    for (long i = 0; i < iterations; i++)
        cio_await(fut, NULL);
    *(double *)arg = (double)(now_ns() - t0) / (double)iterations;
    cio_future_unref(fut);
    return 0;
}

static int sleep0_fn(void *arg, void **result)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < iterations; i++)
        cio_sleep(0);
    *(double *)arg = (double)(now_ns() - t0) / (double)iterations;
    return 0;
}

/* Two tasks hand a token back and forth through futures. */
typedef struct pingpong {
    cio_future_t *to_b, *to_a;
} pingpong_t;

static int pong_fn(void *arg, void **result)
{
    pingpong_t *p = arg;
    cio_loop_t *loop = cio_get_running_loop();
    for (long i = 0; i < iterations; i++) {
        cio_await(p->to_b, NULL);
        cio_future_unref(p->to_b);
        p->to_b = cio_loop_create_future(loop);
        cio_future_set_result(p->to_a, NULL);
    }
    return 0;
}

static int ping_fn(void *arg, void **result)
{
    pingpong_t *p = arg;
    cio_loop_t *loop = cio_get_running_loop();
    for (long i = 0; i < iterations; i++) {
        cio_future_set_result(p->to_b, NULL);
        cio_await(p->to_a, NULL);
        cio_future_unref(p->to_a);
        p->to_a = cio_loop_create_future(loop);
    }
    return 0;
}

static double bench_pingpong(void)
{
    cio_loop_t *loop = cio_loop_new();
    iterations = scaled(100000);
    pingpong_t p = {cio_loop_create_future(loop), cio_loop_create_future(loop)};
    cio_task_t *b = cio_loop_create_task(loop, pong_fn, &p, NULL);
    cio_task_t *a = cio_loop_create_task(loop, ping_fn, &p, NULL);
    uint64_t t0 = now_ns();
    cio_loop_run_until_complete(loop, cio_task_future(a), NULL);
    cio_loop_run_until_complete(loop, cio_task_future(b), NULL);
    double r = (double)(now_ns() - t0) / (double)iterations;
    cio_task_unref(a);
    cio_task_unref(b);
    cio_future_unref(p.to_a);
    cio_future_unref(p.to_b);
    cio_loop_free(loop);
    return r;
}

static double bench_in_task(cio_task_fn fn, long n)
{
    cio_loop_t *loop = cio_loop_new();
    double r = 0;
    iterations = n;
    cio_task_t *t = cio_loop_create_task(loop, fn, &r, NULL);
    cio_loop_run_until_complete(loop, cio_task_future(t), NULL);
    cio_task_unref(t);
    cio_loop_free(loop);
    return r;
}

static int empty_fn(void *arg, void **result)
{
    return 0;
}

/* Create N tasks that return at once and run them all: ns per task. */
static double bench_create_finish(void)
{
    cio_loop_t *loop = cio_loop_new();
    long n = scaled(100000);
    cio_task_t **t = malloc((size_t)n * sizeof(*t));
    /* Warm the stack pool, as a server in steady state has it. */
    for (int i = 0; i < 64; i++)
        t[i] = cio_loop_create_task(loop, empty_fn, NULL, NULL);
    cio_loop_run_until_complete(loop, cio_task_future(t[63]), NULL);
    for (int i = 0; i < 64; i++)
        cio_task_unref(t[i]);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        t[i] = cio_loop_create_task(loop, empty_fn, NULL, NULL);
        cio_task_unref(t[i]);
        /* Keep as many live as the pool holds, as a server's short tasks do. */
        if (i % 32 == 31) {
            cio_loop_stop(loop);
            cio_loop_run_forever(loop);
        }
    }
    cio_loop_stop(loop);
    cio_loop_run_forever(loop);
    double r = (double)(now_ns() - t0) / (double)n;
    free(t);
    cio_loop_free(loop);
    return r;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--scale") == 0)
            scale = strtod(argv[i + 1], NULL);
    }
    double v[REPEAT];
#define RUN(metric, expr)                                                                          \
    do {                                                                                           \
        for (int i = 0; i < REPEAT; i++)                                                           \
            v[i] = (expr);                                                                         \
        qsort(v, REPEAT, sizeof(v[0]), cmp_double);                                                \
        printf("coreio\t%s\t%.1f\tns\n", metric, v[REPEAT / 2]);                                   \
        fflush(stdout);                                                                            \
    } while (0)
    RUN("fiber_switch", bench_raw_switch());
    RUN("await_done_future", bench_in_task(await_done_fn, scaled(2000000)));
    RUN("sleep0_yield", bench_in_task(sleep0_fn, scaled(200000)));
    RUN("pingpong_roundtrip", bench_pingpong());
    RUN("task_create_finish", bench_create_finish());
    return 0;
}
