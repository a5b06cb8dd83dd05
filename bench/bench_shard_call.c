/*
 * bench/bench_shard_call.c: cross-shard calls between two workers, each on
 * its own pinned core (cio_workers_new: two workers, spread, pinned). Worker
 * 0's loop calls worker 1 with cio_workers_submit_to(), a function that
 * returns its argument; a done callback on each future makes the next call,
 * so what is timed is the calls themselves, not a task:
 *
 *   submit_to_single       one call at a time: ns per round trip
 *   submit_to_64_inflight  64 calls in flight: ns per call
 *   invoke_on_all          64 cio_workers_invoke_on_all() in flight, each a
 *                          call to worker 0 (itself) and one to worker 1: ns
 *                          per invoke_on_all
 *   loop_to_loop_pingpong  for comparison, bench/bench_mailbox.c's: one
 *                          call_soon_threadsafe to worker 1 and one back, µs
 *
 * With each, the process's CPU time (getrusage RUSAGE_SELF, user + system,
 * both cores) per call, and for the calls in flight the mailbox messages
 * worker 1 received and the wake-ups of both loops (cio_loop_get_stats, read
 * on each loop's own thread), per call. Each figure is the median of REPEAT
 * runs; output lines are "coreio<TAB>metric<TAB>value<TAB>unit" as in
 * bench/bench_mailbox.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>

#include "benchutil.h"

/* One run's shared state. Worker 0 writes it while the run goes; the main
 * thread reads it once `done` is set under `mu`. */
typedef struct run {
    cio_workers_t *w;
    cio_loop_t *l0, *l1;
    long n;        /* calls (or round trips) */
    int inflight;  /* calls in flight at most */
    bool all;      /* invoke_on_all instead of submit_to */
    size_t target; /* submit_to's worker: 1, or 0 for worker 0 calling itself */
    long sent, settled;
    uint64_t t0, t1, cpu0, cpu1;
    cio_loop_stats_t s0[2], s1[2]; /* each loop's, before and after */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} run_t;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_shard_call: %s: %s\n", what, cio_strerror(rc));
    abort();
}

static void run_finish(run_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Main thread: run @p cb on @p loop and wait until it (or what it starts) calls run_finish(). */
static void run_on(run_t *r, cio_loop_t *loop, cio_callback_t cb)
{
    r->done = false;
    int rc = cio_loop_call_soon_threadsafe(loop, cb, r);
    if (rc < 0)
        die("call_soon_threadsafe", rc);
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* ---- cross-shard calls --------------------------------------------------------- */

static int echo_fn(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int on_settled(cio_future_t *f, void *arg);

static void call_next(run_t *r)
{
    cio_shard_call_t c = {.fn = echo_fn, .arg = (void *)(intptr_t)r->sent};
    cio_future_t *f =
        r->all ? cio_workers_invoke_on_all(r->w, &c) : cio_workers_submit_to(r->w, r->target, &c);
    if (!f)
        die("a call returned NULL", -ENOMEM);
    r->sent++;
    int rc = cio_future_add_done_callback(f, on_settled, r);
    if (rc < 0)
        die("add_done_callback", rc);
    cio_future_unref(f); /* the call keeps it until it settles */
}

/* Worker 0: one call is back; make the next, or end the run. */
static int on_settled(cio_future_t *f, void *arg)
{
    run_t *r = arg;
    int rc = cio_future_error(f);
    if (rc != 0)
        die("call failed", rc);
    if (++r->settled < r->n) {
        if (r->sent < r->n)
            call_next(r);
        return 0;
    }
    r->t1 = now_ns();
    r->cpu1 = cpu_ns();
    cio_loop_get_stats(r->l0, &r->s0[1]);
    run_finish(r);
    return 0;
}

static int calls_start_cb(void *arg) /* worker 0 */
{
    run_t *r = arg;
    r->sent = r->settled = 0;
    cio_loop_get_stats(r->l0, &r->s0[0]);
    r->cpu0 = cpu_ns();
    r->t0 = now_ns();
    while (r->sent < r->inflight && r->sent < r->n)
        call_next(r);
    return 0;
}

static int stats_before_cb(void *arg) /* worker 1 */
{
    run_t *r = arg;
    cio_loop_get_stats(r->l1, &r->s1[0]);
    run_finish(r);
    return 0;
}

static int stats_after_cb(void *arg) /* worker 1 */
{
    run_t *r = arg;
    cio_loop_get_stats(r->l1, &r->s1[1]);
    run_finish(r);
    return 0;
}

typedef struct figures {
    double wall, cpu; /* ns per call */
    double msgs;      /* messages worker 1 received, per call */
    double wakeups;   /* wake-ups of either loop, per call */
} figures_t;

/* Busy runs: a callback that schedules itself keeps each loop from sleeping. */
static _Atomic int keep_awake;

static int awake_cb(void *arg)
{
    if (atomic_load_explicit(&keep_awake, memory_order_relaxed))
        cio_loop_call_soon(arg, awake_cb, arg, NULL);
    return 0;
}

static void bench_calls(run_t *r, long n, int inflight, bool all, bool busy, figures_t *out)
{
    r->n = n;
    r->inflight = inflight;
    r->all = all;
    atomic_store(&keep_awake, busy);
    if (busy) {
        cio_loop_call_soon_threadsafe(r->l0, awake_cb, r->l0);
        cio_loop_call_soon_threadsafe(r->l1, awake_cb, r->l1);
    }
    run_on(r, r->l1, stats_before_cb);
    run_on(r, r->l0, calls_start_cb);
    run_on(r, r->l1, stats_after_cb);
    atomic_store(&keep_awake, 0);
    uint64_t msgs = r->s1[1].mailbox_received - r->s1[0].mailbox_received;
    uint64_t wakes = (r->s0[1].mailbox_wakeups - r->s0[0].mailbox_wakeups) +
                     (r->s1[1].mailbox_wakeups - r->s1[0].mailbox_wakeups);
    out->wall = (double)(r->t1 - r->t0) / (double)n;
    out->cpu = (double)(r->cpu1 - r->cpu0) / (double)n;
    out->msgs = (double)msgs / (double)n;
    out->wakeups = (double)wakes / (double)n;
}

/* ---- the mailbox alone: bench_mailbox's ping-pong ------------------------------------ */

static int pong_cb(void *arg);

static int ping_cb(void *arg) /* worker 1 */
{
    run_t *r = arg;
    int rc = cio_loop_call_soon_threadsafe(r->l0, pong_cb, r);
    if (rc < 0)
        die("call_soon_threadsafe", rc);
    return 0;
}

static int pong_cb(void *arg) /* worker 0 */
{
    run_t *r = arg;
    if (++r->settled == r->n) {
        r->t1 = now_ns();
        run_finish(r);
        return 0;
    }
    int rc = cio_loop_call_soon_threadsafe(r->l1, ping_cb, r);
    if (rc < 0)
        die("call_soon_threadsafe", rc);
    return 0;
}

static int pingpong_start_cb(void *arg) /* worker 0 */
{
    run_t *r = arg;
    r->settled = 0;
    r->t0 = now_ns();
    int rc = cio_loop_call_soon_threadsafe(r->l1, ping_cb, r);
    if (rc < 0)
        die("call_soon_threadsafe", rc);
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */

static void print_line(const char *metric, double value, int decimals, const char *unit)
{
    printf("coreio\t%s\t%.*f\t%s\n", metric, decimals, value, unit);
    fflush(stdout);
}

static const char *only; /* --only NAME: just that figure */

static bool wanted(const char *name)
{
    return !only || strcmp(only, name) == 0;
}

/* REPEAT runs of a call benchmark (after one unmeasured), printed as medians. */
static void report_calls(run_t *r, const char *name, long n, int inflight, bool all, bool busy)
{
    if (!wanted(name))
        return;
    figures_t f;
    double wall[REPEAT], cpu[REPEAT], msgs[REPEAT], wakeups[REPEAT];
    bench_calls(r, n / 10 + 1, inflight, all, busy, &f); /* warm: slabs, rings, spare batches */
    for (int i = 0; i < REPEAT; i++) {
        bench_calls(r, n, inflight, all, busy, &f);
        wall[i] = f.wall, cpu[i] = f.cpu, msgs[i] = f.msgs, wakeups[i] = f.wakeups;
    }
    char metric[96];
    print_line(name, median(wall), 1, "ns");
    snprintf(metric, sizeof(metric), "%s_cpu", name);
    print_line(metric, median(cpu), 1, "ns");
    snprintf(metric, sizeof(metric), "%s_messages_per_call", name);
    print_line(metric, median(msgs), 4, "ratio");
    snprintf(metric, sizeof(metric), "%s_wakeups_per_call", name);
    print_line(metric, median(wakeups), 4, "ratio");
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--scale") == 0)
            scale = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--only") == 0)
            only = argv[i + 1];
    }
    cio_workers_opts_t opts = {.count = 2, .placement = CIO_PLACE_SPREAD, .pin = CIO_ON};
    cio_workers_t *w = cio_workers_new(&opts);
    if (!w) {
        fprintf(stderr, "bench_shard_call: cannot start two workers\n");
        return 1;
    }
    int c0 = cio_workers_core(w, 0), c1 = cio_workers_core(w, 1);
    if (c0 < 0 || c1 < 0 || c0 == c1)
        fprintf(stderr, "bench_shard_call: workers not on two distinct cores (%d, %d)\n", c0, c1);
    run_t r = {.w = w, .l0 = cio_workers_loop(w, 0), .l1 = cio_workers_loop(w, 1)};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);

    r.target = 0;
    report_calls(&r, "submit_to_self_64_inflight", scaled(2000000), 64, false, false);
    r.target = 1;
    report_calls(&r, "submit_to_single", scaled(50000), 1, false, false);
    report_calls(&r, "submit_to_64_inflight", scaled(2000000), 64, false, false);
    report_calls(&r, "invoke_on_all", scaled(1000000), 64, true, false);
    report_calls(&r, "submit_to_64_inflight_busy", scaled(2000000), 64, false, true);
    report_calls(&r, "invoke_on_all_busy", scaled(1000000), 64, true, true);

    double wall[REPEAT];
    r.n = scaled(50000);
    for (int i = 0; wanted("loop_to_loop_pingpong") && i < REPEAT; i++) {
        run_on(&r, r.l0, pingpong_start_cb);
        wall[i] = (double)(r.t1 - r.t0) / (double)r.n / 1000.0;
        if (i == REPEAT - 1)
            print_line("loop_to_loop_pingpong", median(wall), 2, "us");
    }

    cio_workers_free(w);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return 0;
}
