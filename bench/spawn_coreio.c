/*
 * bench/spawn_coreio.c: how many child processes per second a coreio task
 * starts and waits for, as bench/spawn_py.py measures asyncio and uvloop.
 * Each spawn is cio_create_subprocess_exec("/bin/true") with stdin, stdout
 * and stderr on /dev/null, then cio_process_wait() and cio_process_free().
 *
 *     spawn_coreio [--seconds S] [--touch-mib M] [--concurrency K] [--loops L]
 *
 * Shapes, each run for S seconds (default 2) after a 0.3 s warm-up:
 *   seq      one task spawning and waiting, one child at a time
 *   concK    K tasks doing the same at once (K children in flight, default 16)
 * With --loops L above 1, only "seqxL": L threads, each running its own loop
 * with one such task, all at once (no loop shares anything with another).
 * With --touch-mib M the process first mallocs M MiB and writes every page
 * of it, so that the children start from a large parent.
 *
 * One line per shape, tab-separated: "coreio", the shape, the spawns, the
 * seconds they took, spawns/s, then per spawn the parent's CPU time (utime +
 * stime of every thread, getrusage RUSAGE_SELF) and the children's
 * (RUSAGE_CHILDREN: the reaped /bin/true processes, from their clone on) in
 * microseconds, and the parent's VmRSS in MiB.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <coreio.h>

#define MAX_CONCURRENCY 1024
#define MAX_LOOPS       64

/* One shape's run: its tasks spawn until the deadline; only one loop touches it. */
typedef struct run {
    uint64_t deadline; /* CLOCK_MONOTONIC ns */
    int concurrency;   /* tasks spawning at once in this loop */
    long spawns;
    int err;
} run_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double tv_us(struct timeval tv)
{
    return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

/* utime + stime of @p who (RUSAGE_SELF or RUSAGE_CHILDREN) in microseconds. */
static double cpu_us(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

/* Inside a task: start /bin/true on /dev/null, wait for it; its returncode in *@p code. */
static int spawn_one(int *code)
{
    static char prog[] = "/bin/true";
    char *const argv[] = {prog, NULL};
    cio_subprocess_opts_t opts = {0};
    for (int i = 0; i < 3; i++)
        opts.stdio[i].mode = CIO_STDIO_DEVNULL;
    cio_future_t *started = cio_create_subprocess_exec(cio_get_running_loop(), prog, argv, &opts);
    if (!started)
        return -ENOMEM;
    void *proc = NULL;
    int rc = cio_await(started, &proc);
    cio_future_unref(started);
    if (rc < 0)
        return rc;
    rc = cio_process_wait(proc, code);
    cio_process_free(proc);
    return rc;
}

/* A task: spawn one child after another until the deadline. */
static int spawner(void *arg, void **result)
{
    run_t *r = arg;
    while (r->err == 0 && now_ns() < r->deadline) {
        int code = -1;
        int rc = spawn_one(&code);
        if (rc < 0) {
            fprintf(stderr, "spawn_coreio: /bin/true: %s\n", cio_strerror(rc));
            r->err = rc;
        } else if (code != 0) {
            fprintf(stderr, "spawn_coreio: /bin/true exited with %d\n", code);
            r->err = -ECHILD;
        } else {
            r->spawns++;
        }
    }
    return r->err;
}

/* The main task: r->concurrency spawner tasks at once, then wait for them all. */
static int spawn_all(void *arg, void **result)
{
    run_t *r = arg;
    cio_task_t *tasks[MAX_CONCURRENCY];
    int n = 0;
    for (; n < r->concurrency; n++) {
        tasks[n] = cio_loop_create_task(cio_get_running_loop(), spawner, r, NULL);
        if (!tasks[n]) {
            r->err = -ENOMEM;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        cio_await(cio_task_future(tasks[i]), NULL);
        cio_task_unref(tasks[i]);
    }
    return r->err;
}

static void *loop_thread(void *arg)
{
    run_t *r = arg;
    int rc = cio_run(spawn_all, r, false, NULL);
    if (rc < 0 && r->err == 0)
        r->err = rc;
    return NULL;
}

/* Run @p loops loops in as many threads (the calling one if 1); the spawns in all. */
static int run_loops(run_t *runs, int loops, long *spawns)
{
    pthread_t th[MAX_LOOPS];
    int started = 0, err = 0;
    for (; started < loops && loops > 1; started++) {
        if (pthread_create(&th[started], NULL, loop_thread, &runs[started]) != 0) {
            fprintf(stderr, "spawn_coreio: cannot start a thread\n");
            err = -EAGAIN; /* the threads started run to the deadline */
            break;
        }
    }
    if (loops == 1)
        loop_thread(&runs[0]);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    *spawns = 0;
    for (int i = 0; i < loops; i++) {
        *spawns += runs[i].spawns;
        if (err == 0)
            err = runs[i].err;
    }
    return err;
}

/* The parent's resident set in MiB, from /proc/self/status. */
static long rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

/* Run one shape for @p seconds and print its line (none for a NULL @p shape); 0 or an error. */
static int measure(const char *shape, int loops, int concurrency, double seconds)
{
    run_t runs[MAX_LOOPS];
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < loops; i++)
        runs[i] = (run_t){.deadline = deadline, .concurrency = concurrency};
    double self0 = cpu_us(RUSAGE_SELF), kids0 = cpu_us(RUSAGE_CHILDREN);
    uint64_t t0 = now_ns();
    long n = 0;
    int rc = run_loops(runs, loops, &n);
    double secs = (double)(now_ns() - t0) / 1e9;
    double self = cpu_us(RUSAGE_SELF) - self0, kids = cpu_us(RUSAGE_CHILDREN) - kids0;
    if (rc < 0 || n == 0)
        return rc < 0 ? rc : -EIO;
    if (!shape)
        return 0;
    printf("coreio\t%s\t%ld\t%.3f\t%.1f\t%.1f\t%.1f\t%ld\n", shape, n, secs, (double)n / secs,
           self / (double)n, kids / (double)n, rss_mib());
    fflush(stdout);
    return 0;
}

/* Allocate @p mib MiB and write every page: the parent's memory is then really there. */
static void *touch(long mib)
{
    size_t len = (size_t)mib << 20;
    volatile char *p = malloc(len);
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; p && off < len; off += (size_t)page)
        p[off] = 1;
    return (void *)p;
}

static int usage(void)
{
    fprintf(stderr, "usage: spawn_coreio [--seconds S] [--touch-mib M] [--concurrency K] "
                    "[--loops L]\n");
    return 2;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    long mib = 0;
    int concurrency = 16, loops = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--touch-mib") == 0)
            mib = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--loops") == 0)
            loops = atoi(argv[i + 1]);
        else
            return usage();
    }
    if (!(seconds > 0) || mib < 0 || concurrency < 1 || concurrency > MAX_CONCURRENCY ||
        loops < 1 || loops > MAX_LOOPS)
        return usage();
    void *mem = mib > 0 ? touch(mib) : NULL;
    if (mib > 0 && !mem) {
        fprintf(stderr, "spawn_coreio: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    char shape[32];
    snprintf(shape, sizeof(shape), loops > 1 ? "seqx%d" : "conc%d",
             loops > 1 ? loops : concurrency);
    int rc = measure(NULL, loops, 1, 0.3); /* the warm-up */
    if (rc == 0 && loops > 1)
        rc = measure(shape, loops, 1, seconds);
    if (rc == 0 && loops == 1)
        rc = measure("seq", 1, 1, seconds);
    if (rc == 0 && loops == 1)
        rc = measure(shape, 1, concurrency, seconds);
    if (rc < 0)
        fprintf(stderr, "spawn_coreio: %s\n", cio_strerror(rc));
    free(mem);
    return rc < 0 ? 1 : 0;
}
