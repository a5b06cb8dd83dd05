/*
 * tests/test_workers.c: one loop per core. Each worker's thread is pinned to
 * its one core (read back from the kernel), runs its own loop, and blocks
 * signals; submit and broadcast bring outcomes back to the caller's loop;
 * call_soon_threadsafe from many threads to two worker loops delivers every
 * callback exactly once and in order per producer; a job whose caller's loop
 * closes first ends its future cancelled there, on the caller's thread, and
 * lets go of it (the sanitizer builds check that nothing leaks); a job whose
 * worker's loop closes before its task runs fails with CIO_ECLOSED.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

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
    /* The closing loop released the caller's future: nothing leaks (sanitizer builds). */
    ck_assert_int_eq(cio_run(submit_and_leave, w, false, NULL), 0);
    for (int i = 0; i < 300 && !atomic_load(&slow_job_done); i++)
        usleep(10000);
    ck_assert(atomic_load(&slow_job_done));
    usleep(50000); /* the outcome has been sent, or found the port closed */
    cio_workers_free(w);
}
END_TEST

/* ---- jobs whose caller's loop closes first --------------------------------------------- */

static int gate[2];                     /* a held job reads one byte from gate[0] */
static _Atomic int jobs_held, jobs_ran; /* jobs that reached the gate, and passed it */

static int held_job(void *arg, void **result)
{
    atomic_fetch_add(&jobs_held, 1);
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
    atomic_fetch_add(&jobs_ran, 1);
    *result = arg;
    return 0;
}

static void open_gate(int jobs)
{
    for (int k = 0; k < jobs; k++)
        ck_assert_int_eq(write(gate[1], "x", 1), 1);
}

/* Inside a task, the loop going on meanwhile: wait until @p n jobs reached the gate. */
static void await_jobs_held(int n)
{
    for (int i = 0; i < 10000 && atomic_load(&jobs_held) < n; i++)
        cio_sleep(0.001);
    ck_assert_int_eq(atomic_load(&jobs_held), n);
}

/* A caller's loop run by hand, so that the test chooses when it closes. */
typedef struct closing {
    cio_workers_t *w;
    cio_loop_t *loop;
    cio_future_t *fut[2];
    int njobs;
} closing_t;

static int submit_held_cb(void *arg)
{
    closing_t *c = arg;
    for (int k = 0; k < c->njobs; k++)
        c->fut[k] = cio_workers_submit(c->w, 0, held_job, (void *)"late");
    return 0;
}

/* Make the workers and the caller's loop, submit, and hold the first job on its worker. */
static void submit_and_hold(closing_t *c, int njobs)
{
    ck_assert_int_eq(pipe(gate), 0);
    atomic_store(&jobs_held, 0);
    atomic_store(&jobs_ran, 0);
    c->w = cio_workers_new(&(cio_workers_opts_t){.count = 1, .pin = CIO_OFF});
    ck_assert_ptr_nonnull(c->w);
    c->loop = cio_loop_new();
    c->njobs = njobs;
    ck_assert_int_eq(cio_loop_call_soon(c->loop, submit_held_cb, c, NULL), 0);
    for (int i = 0; i < 10000 && atomic_load(&jobs_held) == 0; i++, usleep(1000)) {
        cio_loop_call_soon(c->loop, cio_test_stop_cb, c->loop, NULL); /* one iteration */
        ck_assert_int_eq(cio_loop_run_forever(c->loop), 0);
    }
    ck_assert_int_eq(atomic_load(&jobs_held), 1);
    for (int k = 0; k < njobs; k++)
        ck_assert_ptr_nonnull(c->fut[k]);
}

/* Each future the caller still holds ended cancelled, not pending for ever. */
static void check_cancelled_and_drop(closing_t *c)
{
    for (int k = 0; k < c->njobs; k++) {
        ck_assert_msg(cio_future_cancelled(c->fut[k]), "job %d: future %s", k,
                      cio_future_done(c->fut[k]) ? "done, not cancelled" : "still pending");
        cio_future_unref(c->fut[k]);
    }
}

/*
 * The caller's loop closes while one job runs and another waits on the
 * worker: both futures end cancelled at once, and the outcomes that come back
 * later find the loop closed and are dropped by the worker without touching
 * the futures.
 */
START_TEST(test_jobs_whose_callers_loop_closed_first_end_cancelled)
{
    closing_t c = {0};
    submit_and_hold(&c, 2);
    ck_assert_int_eq(cio_loop_free(c.loop), 0);
    check_cancelled_and_drop(&c);
    open_gate(2);
    for (int i = 0; i < 10000 && atomic_load(&jobs_ran) < 2; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&jobs_ran), 2);
    cio_workers_free(c.w); /* joins the worker: both outcomes found the loop closed */
    close(gate[0]);
    close(gate[1]);
}
END_TEST

/* The outcome waits in the mailbox of the caller's stopped loop when that loop closes. */
START_TEST(test_a_job_outcome_waiting_in_a_closing_loop_cancels_its_future)
{
    closing_t c = {0};
    submit_and_hold(&c, 1);
    open_gate(1);
    cio_loop_stats_t st = {0};
    for (int i = 0; i < 10000 && st.mailbox_depth < 1; i++, usleep(1000))
        cio_loop_get_stats(c.loop, &st);
    ck_assert_uint_eq(st.mailbox_depth, 1);
    ck_assert(!cio_future_done(c.fut[0]));
    ck_assert_int_eq(cio_loop_free(c.loop), 0);
    check_cancelled_and_drop(&c);
    cio_workers_free(c.w);
    ck_assert_int_eq(atomic_load(&jobs_ran), 1);
    close(gate[0]);
    close(gate[1]);
}
END_TEST

/* Hold one job on the worker, queue a second and a stop behind it, then let the first go. */
static int stop_before_second_task(void *arg, void **result)
{
    closing_t *c = arg;
    cio_loop_t *worker = cio_workers_loop(c->w, 0);
    cio_future_t *first = cio_workers_submit(c->w, 0, held_job, (void *)"first");
    await_jobs_held(1);
    cio_future_t *second = cio_workers_submit(c->w, 0, held_job, (void *)"second");
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(worker, cio_test_stop_cb, worker), 0);
    open_gate(1);
    void *r = NULL;
    ck_assert_int_eq(cio_await(first, &r), 0);
    ck_assert_str_eq(r, "first");
    cio_future_unref(first);
    /* The worker ran the second job's start, which made its task, and then the stop:
     * closing its loop destroys the task before it ever ran (and says so). */
    cio_test_log_t log;
    cio_test_capture_log(&log);
    cio_workers_free(c->w);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    ck_assert_msg(strstr(log.text, "Task was destroyed but it is pending"), "log: %s", log.text);
    for (int i = 0; i < 100 && !cio_future_done(second); i++)
        cio_sleep(0);
    ck_assert_msg(cio_future_done(second), "the second job's future is still pending");
    int err = cio_future_error(second);
    ck_assert_msg(err == CIO_ECLOSED, "got %s", cio_err_name(err));
    cio_future_unref(second);
    return 0;
}

START_TEST(test_a_job_whose_worker_stops_before_its_task_runs_fails_with_eclosed)
{
    closing_t c = {0};
    ck_assert_int_eq(pipe(gate), 0);
    atomic_store(&jobs_held, 0);
    atomic_store(&jobs_ran, 0);
    c.w = cio_workers_new(&(cio_workers_opts_t){.count = 1, .pin = CIO_OFF});
    ck_assert_ptr_nonnull(c.w);
    ck_assert_int_eq(cio_run(stop_before_second_task, &c, false, NULL), 0);
    ck_assert_int_eq(atomic_load(&jobs_ran), 1);
    close(gate[0]);
    close(gate[1]);
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
    CIO_TEST(tc, test_jobs_whose_callers_loop_closed_first_end_cancelled);
    CIO_TEST(tc, test_a_job_outcome_waiting_in_a_closing_loop_cancels_its_future);
    CIO_TEST(tc, test_a_job_whose_worker_stops_before_its_task_runs_fails_with_eclosed);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
