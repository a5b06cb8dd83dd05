/*
 * tests/test_workers.c: one loop per core. Each worker's thread is pinned to
 * its one core (read back from the kernel), runs its own loop, and blocks
 * signals; submit and broadcast bring outcomes back to the caller's loop;
 * call_soon_threadsafe from many threads to two worker loops delivers every
 * callback exactly once and in order per producer.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAKS_EXPECTED_BEGIN() __lsan_disable()
#define LEAKS_EXPECTED_END()   __lsan_enable()
#else
#define LEAKS_EXPECTED_BEGIN() ((void)0)
#define LEAKS_EXPECTED_END()   ((void)0)
#endif

typedef struct where {
    int ncpus; /* CPUs in the worker thread's affinity mask */
    int cpu;   /* the one CPU, when there is one */
    cio_loop_t *loop;
    pthread_t thread;
    int sigusr1_blocked;
} where_t;

static int where_fn(void *arg, void **result)
{
    where_t *w = calloc(1, sizeof(*w));
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof(set), &set);
    w->ncpus = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            w->cpu = c;
    w->loop = cio_get_running_loop();
    w->thread = pthread_self();
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    w->sigusr1_blocked = sigismember(&mask, SIGUSR1);
    *result = w;
    return 0;
}

typedef struct run_args {
    cio_workers_t *w;
    where_t got[8];
    size_t n;
    pthread_t caller;
    int bad_thread;
} run_args_t;

static int on_caller(cio_future_t *f, void *arg)
{
    run_args_t *r = arg;
    if (!pthread_equal(pthread_self(), r->caller))
        r->bad_thread++;
    return 0;
}

static int ask_every_worker(void *arg, void **result)
{
    run_args_t *r = arg;
    r->caller = pthread_self();
    r->n = cio_workers_count(r->w);
    for (size_t i = 0; i < r->n && i < 8; i++) {
        cio_future_t *f = cio_workers_submit(r->w, i, where_fn, NULL);
        ck_assert_ptr_nonnull(f);
        cio_future_add_done_callback(f, on_caller, r);
        where_t *w = NULL;
        ck_assert_int_eq(cio_await(f, (void **)&w), 0);
        r->got[i] = *w;
        free(w);
        cio_future_unref(f);
    }
    cio_sleep(0);
    return 0;
}

START_TEST(test_each_worker_runs_its_loop_pinned_to_its_own_core)
{
    cio_workers_t *w = cio_workers_new(NULL);
    ck_assert_ptr_nonnull(w);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_uint_ge(cio_workers_count(w), 1);
    run_args_t r = {.w = w};
    ck_assert_int_eq(cio_run(ask_every_worker, &r, false, NULL), 0);
    ck_assert_int_eq(r.bad_thread, 0);
    for (size_t i = 0; i < r.n; i++) {
        /* Its own loop, on its own thread, with signals blocked. */
        ck_assert_ptr_eq(r.got[i].loop, cio_workers_loop(w, i));
        ck_assert(!pthread_equal(r.got[i].thread, r.caller));
        ck_assert_int_eq(r.got[i].sigusr1_blocked, 1);
        /* Pinned: the kernel reports exactly one CPU, a different one each. */
        ck_assert_int_ge(cio_workers_core(w, i), 0);
        ck_assert_int_eq(r.got[i].ncpus, 1);
        for (size_t j = 0; j < i; j++)
            if ((long)r.n <= ncpu)
                ck_assert_int_ne(r.got[i].cpu, r.got[j].cpu);
    }
    cio_workers_free(w);
}
END_TEST

START_TEST(test_unpinned_workers_may_run_anywhere)
{
    cio_workers_opts_t o = {.count = 2, .pin = CIO_OFF};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    run_args_t r = {.w = w};
    ck_assert_int_eq(cio_run(ask_every_worker, &r, false, NULL), 0);
    ck_assert_uint_eq(r.n, 2);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(cio_workers_core(w, i), -1);
        ck_assert_int_eq(r.got[i].ncpus, (int)sysconf(_SC_NPROCESSORS_ONLN));
    }
    cio_workers_free(w);
}
END_TEST

START_TEST(test_explicit_core_list_places_workers_and_bad_lists_fail)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cores[2] = {(unsigned)(ncpu > 1 ? 1 : 0), 0};
    cio_workers_opts_t o = {.placement = CIO_PLACE_LIST, .cores = cores, .ncores = 2};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(cio_workers_core(w, 0), (int)cores[0]);
    ck_assert_int_eq(cio_workers_core(w, 1), 0);
    cio_workers_free(w);
    unsigned bad[1] = {4096};
    cio_workers_opts_t b = {.placement = CIO_PLACE_LIST, .cores = bad, .ncores = 1};
    ck_assert_ptr_null(cio_workers_new(&b));
    cio_workers_opts_t none = {.placement = CIO_PLACE_LIST};
    ck_assert_ptr_null(cio_workers_new(&none));
}
END_TEST

static _Atomic int broadcast_hits;

static int count_fn(void *arg, void **result)
{
    atomic_fetch_add(&broadcast_hits, 1);
    *result = cio_get_running_loop();
    return 0;
}

static int fail_fn(void *arg, void **result)
{
    return -EIO;
}

static int broadcast_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_future_t *all = cio_workers_broadcast(w, count_fn, NULL);
    cio_outcome_t *out = NULL;
    ck_assert_int_eq(cio_await(all, (void **)&out), 0);
    for (size_t i = 0; i < cio_workers_count(w); i++) {
        ck_assert_int_eq(out[i].error, 0);
        ck_assert_ptr_eq(out[i].result, cio_workers_loop(w, i));
    }
    cio_future_unref(all);
    /* An error comes back as the submit future's error. */
    cio_future_t *f = cio_workers_submit(w, 0, fail_fn, NULL);
    ck_assert_int_eq(cio_await(f, NULL), -EIO);
    cio_future_unref(f);
    ck_assert_ptr_null(cio_workers_submit(w, cio_workers_count(w), fail_fn, NULL));
    return 0;
}

START_TEST(test_broadcast_runs_once_on_every_worker)
{
    cio_workers_opts_t o = {.count = 3};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(cio_run(broadcast_task, w, false, NULL), 0);
    ck_assert_int_eq(atomic_load(&broadcast_hits), 3);
    /* Outside a running loop there is nowhere to deliver an outcome. */
    ck_assert_ptr_null(cio_workers_submit(w, 0, count_fn, NULL));
    cio_workers_free(w);
}
END_TEST

/* ---- 8 producers, 2 worker loops ------------------------------------------- */

enum { PRODUCERS = 8, PER_PRODUCER = 5000 };

typedef struct lane {
    int next[PRODUCERS]; /* owned by the worker loop's thread */
    int out_of_order;
    int received;
} lane_t;

typedef struct msg {
    lane_t *lane;
    int producer;
    int seq;
} msg_t;

static int deliver(void *arg)
{
    msg_t *m = arg;
    if (m->seq != m->lane->next[m->producer])
        m->lane->out_of_order++;
    m->lane->next[m->producer] = m->seq + 1;
    m->lane->received++;
    return 0;
}

typedef struct producer {
    cio_workers_t *w;
    lane_t *lanes;
    msg_t *msgs;
    int id;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int target = i % 2;
        msg_t *m = &p->msgs[i];
        *m = (msg_t){&p->lanes[target], p->id, i / 2};
        cio_loop_call_soon_threadsafe(cio_workers_loop(p->w, (size_t)target), deliver, m);
    }
    return NULL;
}

static int read_lane(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int wait_lanes(void *arg, void **result)
{
    producer_t *p = arg;
    /* A round trip through each worker: it returns once everything before it ran. */
    for (;;) {
        int total = 0;
        for (int t = 0; t < 2; t++) {
            cio_future_t *f = cio_workers_submit(p->w, (size_t)t, read_lane, &p->lanes[t]);
            cio_await(f, NULL);
            cio_future_unref(f);
            total += p->lanes[t].received;
        }
        if (total == PRODUCERS * PER_PRODUCER)
            return 0;
        cio_sleep(0.01);
    }
}

START_TEST(test_threadsafe_calls_from_8_threads_to_2_loops_run_once_in_order)
{
    cio_workers_opts_t o = {.count = 2};
    cio_workers_t *w = cio_workers_new(&o);
    lane_t lanes[2] = {0};
    producer_t p[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){w, lanes, calloc(PER_PRODUCER, sizeof(msg_t)), i};
        pthread_create(&t[i], NULL, produce, &p[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(cio_run(wait_lanes, &p[0], false, NULL), 0);
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(lanes[l].out_of_order, 0);
        ck_assert_int_eq(lanes[l].received, PRODUCERS * PER_PRODUCER / 2);
        for (int i = 0; i < PRODUCERS; i++)
            ck_assert_int_eq(lanes[l].next[i], PER_PRODUCER / 2);
    }
    cio_workers_free(w);
    for (int i = 0; i < PRODUCERS; i++)
        free(p[i].msgs);
}
END_TEST

/* ---- messages that must not be lost to a failed allocation ------------------------- */

/* The library's allocation-failure hook (loop/alloc.h), for tests. */
void cio__alloc_fail_after(unsigned long n);

/* On a worker that never sent a message: the next allocation fails. */
static int fail_next_allocation(void *arg, void **result)
{
    cio__alloc_fail_after(1);
    *result = arg;
    return 0;
}

static int outcome_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_future_t *f = cio_workers_submit(w, 1, fail_next_allocation, (void *)"home");
    ck_assert_ptr_nonnull(f);
    void *r = NULL;
    ck_assert_int_eq(cio_await(f, &r), 0); /* the outcome's message was reserved */
    ck_assert_str_eq(r, "home");
    cio_future_unref(f);
    cio__alloc_fail_after(0);
    return 0;
}

START_TEST(test_a_job_outcome_and_the_stop_get_through_when_allocation_fails)
{
    cio_workers_opts_t o = {.count = 2, .pin = CIO_OFF};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(cio_run(outcome_task, w, false, NULL), 0);
    /* Stopping posts to every worker: nothing may be left to allocate. */
    cio__alloc_fail_after(1);
    cio_workers_free(w); /* a lost stop would hang here */
    cio__alloc_fail_after(0);
}
END_TEST

static atomic_int slow_job_done;

static int slow_job(void *arg, void **result)
{
    int rc = cio_sleep(0.2);
    atomic_store(&slow_job_done, 1);
    return rc;
}

/* Submit a job and return at once: cio_run() closes and frees the loop while it runs. */
static int submit_and_leave(void *arg, void **result)
{
    cio_future_t *f = cio_workers_submit(arg, 0, slow_job, NULL);
    ck_assert_ptr_nonnull(f);
    cio_future_unref(f);
    return 0;
}

/* A job whose caller's loop is gone sends its outcome through the loop's port, which says
 * closed, instead of into freed memory (AddressSanitizer saw the use after free). */
START_TEST(test_a_job_outliving_its_callers_loop_leaves_that_loop_alone)
{
    atomic_store(&slow_job_done, 0);
    cio_workers_t *w = cio_workers_new(&(cio_workers_opts_t){.count = 1, .pin = CIO_OFF});
    ck_assert_ptr_nonnull(w);
    /* The caller's future stays referenced by the orphaned job: only the caller's
     * thread may release it, and that thread's loop is gone. */
    LEAKS_EXPECTED_BEGIN();
    ck_assert_int_eq(cio_run(submit_and_leave, w, false, NULL), 0);
    LEAKS_EXPECTED_END();
    for (int i = 0; i < 300 && !atomic_load(&slow_job_done); i++)
        usleep(10000);
    ck_assert(atomic_load(&slow_job_done));
    usleep(50000); /* the outcome has been sent, or found the port closed */
    cio_workers_free(w);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = cio_test_case("workers");
    CIO_TEST(tc, test_each_worker_runs_its_loop_pinned_to_its_own_core);
    CIO_TEST(tc, test_unpinned_workers_may_run_anywhere);
    CIO_TEST(tc, test_explicit_core_list_places_workers_and_bad_lists_fail);
    CIO_TEST(tc, test_broadcast_runs_once_on_every_worker);
    CIO_TEST(tc, test_threadsafe_calls_from_8_threads_to_2_loops_run_once_in_order);
    CIO_TEST(tc, test_a_job_outcome_and_the_stop_get_through_when_allocation_fails);
    CIO_TEST(tc, test_a_job_outliving_its_callers_loop_leaves_that_loop_alone);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
