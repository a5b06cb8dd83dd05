/*
 * bench/bench_executor.c: what a run_in_executor round trip costs, measured
 * the way bench/executor_py.py measures asyncio and uvloop, so bench/run.sh
 * can print them side by side. The job is trivial (it returns its argument),
 * so the figure is the executor's own cost: queueing the job, waking a pool
 * thread, and settling the future on the loop through its mailbox.
 *
 *   executor_roundtrip      a main task awaits K jobs one after the other
 *   executor_concurrent_64  the same K jobs in gathers of 64 in flight at a time
 *
 * Each repetition is one cio_run() on the default executor, with an
 * unmeasured gather of 64 jobs first so every pool thread has started (as
 * executor_py.py does for Python's per-loop pool). The loop and the pool
 * threads are not pinned: they share the CPUs bench/run.sh gives them, as
 * Python's threads do. Figures are wall and process CPU time (getrusage
 * RUSAGE_SELF, user + system) per job, each the median of REPEAT runs;
 * output lines are "coreio<TAB>metric<TAB>value<TAB>unit".
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <coreio.h>

#include "benchutil.h"

#define INFLIGHT 64

/* The job: Python's `lambda x: x`. */
static int identity_fn(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* Await one job and check it came back with its argument. */
static int one_job(cio_loop_t *loop, uintptr_t i)
{
    cio_future_t *f = cio_loop_run_in_executor(loop, NULL, identity_fn, (void *)i);
    void *res = NULL;
    int rc = f ? cio_await(f, &res) : -ENOMEM;
    cio_future_unref(f);
    return rc < 0 ? rc : res == (void *)i ? 0 : -EIO;
}

/* Jobs first..first+n-1 at once, gathered (asyncio.gather). */
static int gather_jobs(cio_loop_t *loop, uintptr_t first, size_t n)
{
    cio_future_t *f[INFLIGHT] = {0};
    for (size_t k = 0; k < n; k++)
        f[k] = cio_loop_run_in_executor(loop, NULL, identity_fn, (void *)(first + k));
    cio_future_t *all = cio_gather(loop, f, n, NULL);
    void *res = NULL;
    int rc = all ? cio_await(all, &res) : -ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++)
        if (((cio_outcome_t *)res)[k].result != (void *)(first + k))
            rc = -EIO;
    cio_future_unref(all);
    for (size_t k = 0; k < n; k++)
        cio_future_unref(f[k]);
    return rc;
}

typedef struct bench {
    long jobs;
    bool concurrent;
    double wall_us, cpu_us; /* per job */
} bench_t;

static int main_task(void *arg, void **result)
{
    bench_t *b = arg;
    cio_loop_t *loop = cio_get_running_loop();
    int rc = gather_jobs(loop, 1, INFLIGHT); /* start every pool thread */
    uint64_t c0 = cpu_ns(), t0 = now_ns();
    for (long i = 0; rc == 0 && i < b->jobs;) {
        size_t n = 1;
        if (b->concurrent) {
            n = b->jobs - i < INFLIGHT ? (size_t)(b->jobs - i) : INFLIGHT;
            rc = gather_jobs(loop, (uintptr_t)i + 1, n);
        } else {
            rc = one_job(loop, (uintptr_t)i + 1);
        }
        i += (long)n;
    }
    b->wall_us = (double)(now_ns() - t0) / (double)b->jobs / 1000.0;
    b->cpu_us = (double)(cpu_ns() - c0) / (double)b->jobs / 1000.0;
    return rc;
}

static void run(const char *metric, long jobs, bool concurrent)
{
    double wall[REPEAT], cpu[REPEAT];
    for (int i = 0; i < REPEAT; i++) {
        bench_t b = {.jobs = jobs, .concurrent = concurrent};
        int rc = cio_run(main_task, &b, false, NULL);
        if (rc < 0) {
            fprintf(stderr, "bench_executor: %s: %s\n", metric, cio_strerror(rc));
            exit(1);
        }
        wall[i] = b.wall_us;
        cpu[i] = b.cpu_us;
    }
    printf("coreio\t%s\t%.2f\tus\n", metric, median(wall));
    printf("coreio\t%s_cpu\t%.2f\tus\n", metric, median(cpu));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--scale") == 0)
            scale = strtod(argv[i + 1], NULL);
    run("executor_roundtrip", scaled(20000), false);
    run("executor_concurrent_64", scaled(20000), true);
    return 0;
}
