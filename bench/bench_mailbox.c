/*
 * bench/bench_mailbox.c: call_soon_threadsafe between two event loops, each
 * on its own pinned core (cio_workers_new: two workers, spread, pinned), the
 * way sharded servers talk. Two workloads:
 *
 *   batched   worker 0 posts N callbacks to worker 1's loop in bursts of
 *             BURST, yielding to its own loop (call_soon) between bursts;
 *             wall time from the first post until worker 1 has run the last.
 *   pingpong  worker 0 posts one callback to worker 1, which posts one back;
 *             M round trips, each message waking a loop that sleeps.
 *
 * Each reports the wall time, the process's CPU time (getrusage RUSAGE_SELF,
 * user + system, both cores) and the eventfd writes (loop wake-ups, from
 * cio_loop_get_stats on each loop's own thread) per message. Each figure is
 * the median of REPEAT runs; output lines are "coreio<TAB>metric<TAB>value<TAB>unit"
 * as in bench/bench_loop.c, for bench/run.sh.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <coreio.h>

#include "benchutil.h"

#define BURST 1000

/* Abort on a failed post: a benchmark that dropped messages would hang. */
static void post(cio_loop_t *loop, cio_callback_t cb, void *arg)
{
    int rc = cio_loop_call_soon_threadsafe(loop, cb, arg);
    if (rc < 0) {
        fprintf(stderr, "bench_mailbox: call_soon_threadsafe: %s\n", cio_strerror(rc));
        abort();
    }
}

/* One run's shared state. Fields are written by one worker and read by the
 * main thread only after `done` is set under `mu`. */
typedef struct run {
    cio_loop_t *l0, *l1;
    long n;    /* messages (batched) or round trips (pingpong) */
    long sent; /* worker 0 */
    uint64_t t0, t1, cpu0, cpu1;
    cio_loop_stats_t s0_before, s0_after, s1_before, s1_after;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    /* Batched: worker 1's, last and on a line of its own so that counting
     * does not steal the line worker 0 reads while posting. Pingpong: worker 0's. */
    _Alignas(64) long received;
} run_t;

static void run_finish(run_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Main thread: send @p start to worker 1's loop and wait for the run to end. */
static void run_wait(run_t *r, cio_callback_t start)
{
    r->done = false;
    post(r->l1, start, r);
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* ---- batched: a stream from worker 0 to worker 1 -------------------------- */

static int batch_consume_cb(void *arg)
{
    run_t *r = arg;
    if (++r->received < r->n)
        return 0;
    r->t1 = now_ns();
    r->cpu1 = cpu_ns();
    cio_loop_get_stats(r->l1, &r->s1_after);
    run_finish(r);
    return 0;
}

/* Worker 0: one burst, then yield to the loop and come back for the next. */
static int batch_produce_cb(void *arg)
{
    run_t *r = arg;
    long end = r->sent + BURST < r->n ? r->sent + BURST : r->n;
    for (long i = r->sent; i < end; i++)
        post(r->l1, batch_consume_cb, r);
    r->sent = end;
    if (r->sent < r->n)
        cio_loop_call_soon(r->l0, batch_produce_cb, r, NULL);
    return 0;
}

static int batch_go_cb(void *arg)
{
    run_t *r = arg;
    r->cpu0 = cpu_ns();
    r->t0 = now_ns();
    return batch_produce_cb(r);
}

/* Worker 1: take its counters before the first message, then start worker 0. */
static int batch_start_cb(void *arg)
{
    run_t *r = arg;
    cio_loop_get_stats(r->l1, &r->s1_before);
    post(r->l0, batch_go_cb, r);
    return 0;
}

static void bench_batched(run_t *r, long n, double *wall, double *cpu, double *writes)
{
    r->n = n;
    r->sent = r->received = 0;
    run_wait(r, batch_start_cb);
    uint64_t msgs = r->s1_after.mailbox_received - r->s1_before.mailbox_received;
    *wall = (double)(r->t1 - r->t0) / (double)n;
    *cpu = (double)(r->cpu1 - r->cpu0) / (double)n;
    *writes = (double)(r->s1_after.mailbox_wakeups - r->s1_before.mailbox_wakeups) / (double)msgs;
}

/* ---- pingpong: one message in flight at a time ----------------------------- */

static int pong_cb(void *arg);

static int ping_cb(void *arg) /* worker 1 */
{
    run_t *r = arg;
    post(r->l0, pong_cb, r);
    return 0;
}

/* Worker 1, after the last round trip: its counters, then the main thread. */
static int pp_end_cb(void *arg)
{
    run_t *r = arg;
    cio_loop_get_stats(r->l1, &r->s1_after);
    run_finish(r);
    return 0;
}

static int pong_cb(void *arg) /* worker 0 */
{
    run_t *r = arg;
    if (++r->received < r->n) {
        post(r->l1, ping_cb, r);
        return 0;
    }
    r->t1 = now_ns();
    r->cpu1 = cpu_ns();
    cio_loop_get_stats(r->l0, &r->s0_after);
    post(r->l1, pp_end_cb, r);
    return 0;
}

static int pp_go_cb(void *arg) /* worker 0 */
{
    run_t *r = arg;
    cio_loop_get_stats(r->l0, &r->s0_before);
    r->cpu0 = cpu_ns();
    r->t0 = now_ns();
    post(r->l1, ping_cb, r);
    return 0;
}

static int pp_start_cb(void *arg) /* worker 1 */
{
    run_t *r = arg;
    cio_loop_get_stats(r->l1, &r->s1_before);
    post(r->l0, pp_go_cb, r);
    return 0;
}

static void bench_pingpong(run_t *r, long m, double *wall, double *cpu, double *writes)
{
    r->n = m;
    r->received = 0;
    run_wait(r, pp_start_cb);
    /* Worker 1's count includes the one pp_end_cb message: one in 2m. */
    uint64_t msgs = (r->s0_after.mailbox_received - r->s0_before.mailbox_received) +
                    (r->s1_after.mailbox_received - r->s1_before.mailbox_received);
    uint64_t wakes = (r->s0_after.mailbox_wakeups - r->s0_before.mailbox_wakeups) +
                     (r->s1_after.mailbox_wakeups - r->s1_before.mailbox_wakeups);
    *wall = (double)(r->t1 - r->t0) / (double)m / 1000.0;
    *cpu = (double)(r->cpu1 - r->cpu0) / (double)(2 * m) / 1000.0;
    *writes = (double)wakes / (double)msgs;
}

/* ---- main ------------------------------------------------------------------ */

static void print_line(const char *metric, double value, int decimals, const char *unit)
{
    printf("coreio\t%s\t%.*f\t%s\n", metric, decimals, value, unit);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--scale") == 0)
            scale = strtod(argv[i + 1], NULL);
    cio_workers_opts_t opts = {.count = 2, .placement = CIO_PLACE_SPREAD, .pin = CIO_ON};
    cio_workers_t *w = cio_workers_new(&opts);
    if (!w) {
        fprintf(stderr, "bench_mailbox: cannot start two workers\n");
        return 1;
    }
    int c0 = cio_workers_core(w, 0), c1 = cio_workers_core(w, 1);
    if (c0 < 0 || c1 < 0 || c0 == c1)
        fprintf(stderr, "bench_mailbox: workers not on two distinct cores (%d, %d)\n", c0, c1);
    run_t r = {.l0 = cio_workers_loop(w, 0), .l1 = cio_workers_loop(w, 1)};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    double wall[REPEAT], cpu[REPEAT], writes[REPEAT];

    /* An unmeasured round grows worker 1's ready ring and slab: steady state. */
    long n = scaled(2000000);
    bench_batched(&r, n, &wall[0], &cpu[0], &writes[0]);
    for (int i = 0; i < REPEAT; i++)
        bench_batched(&r, n, &wall[i], &cpu[i], &writes[i]);
    print_line("loop_to_loop_batched", median(wall), 1, "ns");
    print_line("loop_to_loop_batched_cpu", median(cpu), 1, "ns");
    print_line("loop_to_loop_batched_eventfd_writes_per_msg", median(writes), 6, "ratio");

    long m = scaled(100000);
    for (int i = 0; i < REPEAT; i++)
        bench_pingpong(&r, m, &wall[i], &cpu[i], &writes[i]);
    print_line("loop_to_loop_pingpong", median(wall), 2, "us");
    print_line("loop_to_loop_pingpong_cpu", median(cpu), 2, "us");
    print_line("loop_to_loop_pingpong_eventfd_writes_per_msg", median(writes), 4, "ratio");

    cio_workers_free(w);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return 0;
}
