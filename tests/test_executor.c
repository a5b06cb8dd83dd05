/*
 * tests/test_executor.c: run_in_executor and thread pools: jobs run off the
 * loop thread and settle their futures on the loop that submitted them; the
 * process-wide default pool serves several loops; set_default_executor;
 * cancelling queued and running jobs; shutdown with and without waiting; a
 * loop closing while its jobs run orphans them (it does not wait, cancels
 * their futures, and what the jobs own is freed); jobs that own their
 * argument and result free each exactly once, whatever happens.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct job_arg {
    pthread_t ran_on;
    int sleep_ms;
    int rc;
    _Atomic int started;
    _Atomic int finished;
    void *result;
} job_arg_t;

static int job_fn(void *arg, void **result)
{
    job_arg_t *a = arg;
    a->ran_on = pthread_self();
    atomic_store(&a->started, 1);
    if (a->sleep_ms)
        sleep_ms(a->sleep_ms);
    *result = a->result;
    atomic_store(&a->finished, 1);
    return a->rc;
}

typedef struct seen {
    pthread_t thread;
    cio_loop_t *loop;
} seen_t;

static int record_done(cio_future_t *f, void *arg)
{
    seen_t *s = arg;
    s->thread = pthread_self();
    s->loop = cio_get_running_loop();
    return 0;
}

START_TEST(test_job_runs_off_the_loop_and_settles_on_it)
{
    cio_loop_t *loop = cio_loop_new();
    job_arg_t a = {.result = (void *)42};
    cio_future_t *f = cio_loop_run_in_executor(loop, NULL, job_fn, &a);
    ck_assert_ptr_nonnull(f);
    seen_t s = {0};
    cio_future_add_done_callback(f, record_done, &s);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, &res), 0);
    ck_assert_ptr_eq(res, (void *)42);
    ck_assert(!pthread_equal(a.ran_on, pthread_self()));
    cio_loop_stop(loop);
    cio_loop_run_forever(loop);
    ck_assert(pthread_equal(s.thread, pthread_self()));
    ck_assert_ptr_eq(s.loop, loop);
    /* An error travels too. */
    job_arg_t b = {.rc = -EIO};
    cio_future_t *g = cio_loop_run_in_executor(loop, NULL, job_fn, &b);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), -EIO);
    cio_future_unref(f);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

enum { JOBS = 300 };

typedef struct loop_thread {
    pthread_t thread;
    int ok;
    int wrong_loop;
} loop_thread_t;

typedef struct counted {
    cio_loop_t *loop;
    loop_thread_t *lt;
    int *left;
} counted_t;

static int check_loop_done(cio_future_t *f, void *arg)
{
    counted_t *c = arg;
    void *res = NULL;
    if (cio_future_result(f, &res) == 0 && res == c)
        c->lt->ok++;
    if (cio_get_running_loop() != c->loop)
        c->lt->wrong_loop++;
    if (--*c->left == 0)
        cio_loop_stop(c->loop);
    return 0;
}

static int echo_arg_fn(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static void *loop_thread_main(void *arg)
{
    loop_thread_t *lt = arg;
    cio_loop_t *loop = cio_loop_new();
    static _Thread_local counted_t c[JOBS];
    int left = JOBS;
    for (int i = 0; i < JOBS; i++) {
        c[i] = (counted_t){loop, lt, &left};
        cio_future_t *f = cio_loop_run_in_executor(loop, NULL, echo_arg_fn, &c[i]);
        cio_future_add_done_callback(f, check_loop_done, &c[i]);
        cio_future_unref(f);
    }
    cio_loop_run_forever(loop);
    cio_loop_free(loop);
    return NULL;
}

START_TEST(test_default_pool_serves_several_loops_each_on_its_own_thread)
{
    loop_thread_t lt[2] = {0};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&lt[i].thread, NULL, loop_thread_main, &lt[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(lt[i].thread, NULL);
        ck_assert_int_eq(lt[i].ok, JOBS);
        ck_assert_int_eq(lt[i].wrong_loop, 0);
    }
}
END_TEST

START_TEST(test_default_executor_of_a_loop_can_be_replaced)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *one = cio_executor_new(1);
    cio_loop_set_default_executor(loop, one);
    job_arg_t a[5] = {0};
    cio_future_t *f[5];
    for (int i = 0; i < 5; i++)
        f[i] = cio_loop_run_in_executor(loop, NULL, job_fn, &a[i]);
    cio_future_t *all = cio_gather(loop, f, 5, NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, all, NULL), 0);
    /* One thread ran them all. */
    for (int i = 1; i < 5; i++)
        ck_assert(pthread_equal(a[i].ran_on, a[0].ran_on));
    for (int i = 0; i < 5; i++)
        cio_future_unref(f[i]);
    cio_future_unref(all);
    cio_loop_set_default_executor(loop, NULL);
    cio_executor_free(one);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_cancelling_a_queued_job_keeps_it_from_running)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *one = cio_executor_new(1);
    job_arg_t busy = {.sleep_ms = 100}, queued = {0};
    cio_future_t *fb = cio_loop_run_in_executor(loop, one, job_fn, &busy);
    cio_future_t *fq = cio_loop_run_in_executor(loop, one, job_fn, &queued);
    while (!atomic_load(&busy.started))
        sleep_ms(1);
    ck_assert(cio_future_cancel(fq, NULL));
    ck_assert(cio_future_cancelled(fq));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fb, NULL), 0);
    cio_executor_shutdown(one, true, false);
    ck_assert_int_eq(atomic_load(&queued.started), 0);
    cio_future_unref(fb);
    cio_future_unref(fq);
    cio_executor_free(one);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_cancelling_a_running_job_drops_its_outcome)
{
    cio_loop_t *loop = cio_loop_new();
    job_arg_t a = {.sleep_ms = 50, .result = (void *)1};
    cio_future_t *f = cio_loop_run_in_executor(loop, NULL, job_fn, &a);
    while (!atomic_load(&a.started))
        sleep_ms(1);
    ck_assert(cio_future_cancel(f, NULL));
    while (!atomic_load(&a.finished))
        sleep_ms(1);
    /* The outcome arrives and is dropped: the future stays cancelled. */
    for (int i = 0; i < 5; i++) {
        sleep_ms(5);
        cio_loop_stop(loop);
        cio_loop_run_forever(loop);
    }
    ck_assert(cio_future_cancelled(f));
    cio_future_unref(f);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_shutdown_waits_or_cancels_and_refuses_new_jobs)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *one = cio_executor_new(1);
    job_arg_t running = {.sleep_ms = 50}, queued = {0};
    cio_future_t *fr = cio_loop_run_in_executor(loop, one, job_fn, &running);
    cio_future_t *fq = cio_loop_run_in_executor(loop, one, job_fn, &queued);
    while (!atomic_load(&running.started))
        sleep_ms(1);
    /* Waiting: back only once the running job is over; the queued one cancelled. */
    cio_executor_shutdown(one, true, true);
    ck_assert_int_eq(atomic_load(&running.finished), 1);
    ck_assert_int_eq(atomic_load(&queued.started), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fr, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fq, NULL), -ECANCELED);
    cio_future_t *late = cio_loop_run_in_executor(loop, one, job_fn, &queued);
    ck_assert_int_eq(cio_future_error(late), CIO_ECLOSED);
    /* Without waiting: the call returns while the job runs, which then ends. */
    cio_executor_t *other = cio_executor_new(2);
    job_arg_t slow = {.sleep_ms = 100};
    cio_future_t *fs = cio_loop_run_in_executor(loop, other, job_fn, &slow);
    while (!atomic_load(&slow.started))
        sleep_ms(1);
    cio_executor_shutdown(other, false, false);
    ck_assert_int_eq(atomic_load(&slow.finished), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fs, NULL), 0);
    ck_assert_int_eq(atomic_load(&slow.finished), 1);
    cio_future_unref(fr);
    cio_future_unref(fq);
    cio_future_unref(late);
    cio_future_unref(fs);
    cio_executor_free(one);
    cio_executor_free(other);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_closing_a_loop_orphans_its_jobs_and_cancels_their_futures)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *pool = cio_executor_new(1);
    job_arg_t slow = {.sleep_ms = 200}, queued = {0};
    cio_future_t *f = cio_loop_run_in_executor(loop, pool, job_fn, &slow);
    cio_future_t *g = cio_loop_run_in_executor(loop, pool, job_fn, &queued);
    while (!atomic_load(&slow.started))
        sleep_ms(1);
    /* Close returns while the job still runs; both futures end cancelled. */
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(atomic_load(&slow.finished), 0);
    ck_assert(cio_future_cancelled(f));
    ck_assert(cio_future_cancelled(g));
    cio_future_unref(f);
    cio_future_unref(g);
    cio_loop_free(loop);
    /* The job ends later without a loop to post to (ASan: nothing leaks). */
    cio_executor_free(pool);
    ck_assert_int_eq(atomic_load(&slow.finished), 1);
    ck_assert_int_eq(atomic_load(&queued.started), 0);
}
END_TEST

/* ---- jobs that own their argument and result ------------------------------------ */

typedef struct owned {
    int sleep_ms;
    int rc;
    _Atomic int started;
    _Atomic int finished;
    _Atomic int arg_freed;
    _Atomic int result_freed;
    pthread_t freed_on; /* the thread that freed the result */
} owned_t;

typedef struct owned_result {
    owned_t *owner;
} owned_result_t;

/* Makes a result on the heap, whatever it returns. */
static int owned_fn(void *arg, void **result)
{
    owned_t *o = arg;
    atomic_store(&o->started, 1);
    if (o->sleep_ms)
        sleep_ms(o->sleep_ms);
    owned_result_t *r = malloc(sizeof(*r));
    r->owner = o;
    *result = r;
    atomic_store(&o->finished, 1);
    return o->rc;
}

static void owned_free_arg(void *arg)
{
    owned_t *o = arg;
    atomic_fetch_add(&o->arg_freed, 1);
}

static void owned_free_result(void *result)
{
    owned_result_t *r = result;
    r->owner->freed_on = pthread_self();
    atomic_fetch_add(&r->owner->result_freed, 1);
    free(r);
}

static cio_future_t *run_owned(cio_loop_t *loop, cio_executor_t *pool, owned_t *o)
{
    return cio_loop_run_in_executor_owned(loop, pool, owned_fn, o, owned_free_arg,
                                          owned_free_result);
}

START_TEST(test_owned_result_belongs_to_the_future)
{
    cio_loop_t *loop = cio_loop_new();
    owned_t ok = {0}, failing = {.rc = -EIO};
    cio_future_t *f = run_owned(loop, NULL, &ok);
    owned_result_t *r = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, (void **)&r), 0);
    ck_assert_ptr_eq(r->owner, &ok);
    ck_assert_int_eq(atomic_load(&ok.arg_freed), 1);
    ck_assert_int_eq(atomic_load(&ok.result_freed), 0);
    cio_future_unref(f); /* the last reference frees the result */
    ck_assert_int_eq(atomic_load(&ok.result_freed), 1);
    /* A failed job's result is nobody's: freed at once. */
    cio_future_t *g = run_owned(loop, NULL, &failing);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), -EIO);
    ck_assert_int_eq(atomic_load(&failing.result_freed), 1);
    ck_assert_int_eq(atomic_load(&failing.arg_freed), 1);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_owned_job_cancelled_frees_what_it_owns)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *one = cio_executor_new(1);
    owned_t running = {.sleep_ms = 50}, queued = {0};
    cio_future_t *fr = run_owned(loop, one, &running);
    cio_future_t *fq = run_owned(loop, one, &queued);
    while (!atomic_load(&running.started))
        sleep_ms(1);
    /* Queued: it never runs, and its argument is freed now. */
    ck_assert(cio_future_cancel(fq, NULL));
    ck_assert_int_eq(atomic_load(&queued.arg_freed), 1);
    /* Running: its outcome arrives, is dropped, and its result freed. */
    ck_assert(cio_future_cancel(fr, NULL));
    cio_executor_shutdown(one, true, false);
    for (int i = 0; i < 100 && !atomic_load(&running.result_freed); i++) {
        cio_loop_stop(loop);
        cio_loop_run_forever(loop);
        sleep_ms(1);
    }
    ck_assert_int_eq(atomic_load(&running.result_freed), 1);
    ck_assert_int_eq(atomic_load(&running.arg_freed), 1);
    ck_assert(cio_future_cancelled(fr));
    ck_assert_int_eq(atomic_load(&queued.started), 0);
    ck_assert_int_eq(atomic_load(&queued.result_freed), 0);
    cio_future_unref(fr);
    cio_future_unref(fq);
    cio_executor_free(one);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_owned_job_orphaned_by_a_closing_loop_frees_its_result_on_its_thread)
{
    cio_loop_t *loop = cio_loop_new();
    cio_executor_t *one = cio_executor_new(1);
    owned_t running = {.sleep_ms = 100}, queued = {0};
    cio_future_t *fr = run_owned(loop, one, &running);
    cio_future_t *fq = run_owned(loop, one, &queued);
    while (!atomic_load(&running.started))
        sleep_ms(1);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert(cio_future_cancelled(fr));
    ck_assert(cio_future_cancelled(fq));
    ck_assert_int_eq(atomic_load(&queued.arg_freed), 1);  /* dropped with the loop */
    ck_assert_int_eq(atomic_load(&running.arg_freed), 0); /* still in use */
    cio_future_unref(fr);
    cio_future_unref(fq);
    cio_loop_free(loop);
    cio_executor_free(one); /* waits for the running job */
    ck_assert_int_eq(atomic_load(&running.finished), 1);
    ck_assert_int_eq(atomic_load(&running.arg_freed), 1);
    ck_assert_int_eq(atomic_load(&running.result_freed), 1);
    ck_assert(!pthread_equal(running.freed_on, pthread_self()));
    ck_assert_int_eq(atomic_load(&queued.started), 0);
    ck_assert_int_eq(atomic_load(&queued.result_freed), 0);
}
END_TEST

START_TEST(test_owned_argument_is_freed_when_the_job_is_refused)
{
    cio_loop_t *loop = cio_loop_new();
    owned_t bad_fn = {0}, shut = {0}, closed = {0};
    ck_assert_ptr_null(
        cio_loop_run_in_executor_owned(loop, NULL, NULL, &bad_fn, owned_free_arg, NULL));
    ck_assert_int_eq(atomic_load(&bad_fn.arg_freed), 1);
    cio_executor_t *pool = cio_executor_new(1);
    cio_executor_shutdown(pool, true, false);
    cio_future_t *f = run_owned(loop, pool, &shut);
    ck_assert_int_eq(cio_future_error(f), CIO_ECLOSED);
    ck_assert_int_eq(atomic_load(&shut.arg_freed), 1);
    cio_future_unref(f);
    cio_executor_free(pool);
    cio_loop_close(loop);
    ck_assert_ptr_null(run_owned(loop, NULL, &closed));
    ck_assert_int_eq(atomic_load(&closed.arg_freed), 1);
    cio_loop_free(loop);
}
END_TEST

static int leave_a_job_running(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_future_t *f = cio_loop_run_in_executor(loop, NULL, job_fn, arg);
    cio_future_unref(f); /* not awaited: cio_run must wait for it */
    return 0;
}

START_TEST(test_run_waits_for_executor_jobs_in_flight)
{
    job_arg_t slow = {.sleep_ms = 100};
    ck_assert_int_eq(cio_run(leave_a_job_running, &slow, false, NULL), 0);
    ck_assert_int_eq(atomic_load(&slow.finished), 1);
}
END_TEST

START_TEST(test_shutdown_default_executor_waits_then_refuses_default_jobs)
{
    cio_loop_t *loop = cio_loop_new();
    job_arg_t a = {.sleep_ms = 30}, b = {0};
    cio_future_t *f = cio_loop_run_in_executor(loop, NULL, job_fn, &a);
    cio_future_t *down = cio_loop_shutdown_default_executor(loop);
    ck_assert(!cio_future_done(down));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, down, NULL), 0);
    ck_assert_int_eq(atomic_load(&a.finished), 1);
    ck_assert(cio_future_done(f));
    cio_future_t *g = cio_loop_run_in_executor(loop, NULL, job_fn, &b);
    ck_assert_int_eq(cio_future_error(g), CIO_ECLOSED);
    /* An explicit pool still takes jobs. */
    cio_executor_t *pool = cio_executor_new(1);
    cio_future_t *h = cio_loop_run_in_executor(loop, pool, job_fn, &b);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, h, NULL), 0);
    cio_future_unref(f);
    cio_future_unref(g);
    cio_future_unref(h);
    cio_future_unref(down);
    cio_executor_free(pool);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_run_in_executor_rejects_bad_arguments)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_ptr_null(cio_loop_run_in_executor(loop, NULL, NULL, NULL));
    ck_assert_ptr_null(cio_loop_run_in_executor(NULL, NULL, echo_arg_fn, NULL));
    cio_loop_close(loop);
    ck_assert_ptr_null(cio_loop_run_in_executor(loop, NULL, echo_arg_fn, NULL));
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = cio_test_case("executor");
    CIO_TEST(tc, test_job_runs_off_the_loop_and_settles_on_it);
    CIO_TEST(tc, test_default_pool_serves_several_loops_each_on_its_own_thread);
    CIO_TEST(tc, test_default_executor_of_a_loop_can_be_replaced);
    CIO_TEST(tc, test_cancelling_a_queued_job_keeps_it_from_running);
    CIO_TEST(tc, test_cancelling_a_running_job_drops_its_outcome);
    CIO_TEST(tc, test_shutdown_waits_or_cancels_and_refuses_new_jobs);
    CIO_TEST(tc, test_closing_a_loop_orphans_its_jobs_and_cancels_their_futures);
    CIO_TEST(tc, test_owned_result_belongs_to_the_future);
    CIO_TEST(tc, test_owned_job_cancelled_frees_what_it_owns);
    CIO_TEST(tc, test_owned_job_orphaned_by_a_closing_loop_frees_its_result_on_its_thread);
    CIO_TEST(tc, test_owned_argument_is_freed_when_the_job_is_refused);
    CIO_TEST(tc, test_run_waits_for_executor_jobs_in_flight);
    CIO_TEST(tc, test_shutdown_default_executor_waits_then_refuses_default_jobs);
    CIO_TEST(tc, test_run_in_executor_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
