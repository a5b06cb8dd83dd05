/*
 * tests/test_shard_call.c: cross-shard calls (cio_workers_submit_to,
 * invoke_on_all, map_reduce). Outcomes come back to the caller's loop, in
 * worker order for fan-outs; a worker calling itself is answered later, not
 * inline; every argument and result is freed exactly once on every path
 * (normal, failed, cancelled, the caller's loop closing before sending,
 * before the answer, or with the answer in its mailbox, the worker stopping,
 * the workers freed, freeing racing the calls), counted here and checked for
 * leaks by the sanitizer builds; and many calls in flight travel in few
 * messages and wake-ups.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"

/* The library's allocation-failure hook (loop/alloc.h), for tests. */
void cio__alloc_fail_after(unsigned long n);

/* ---- counting destructors and small functions ---------------------------------------- */

static _Atomic int args_freed, results_freed, accs_freed, runs;
static _Atomic(pthread_t) arg_freed_on; /* the thread of the last free_arg */

static int *box(int v)
{
    int *p = malloc(sizeof(*p));
    *p = v;
    return p;
}

static void free_arg_counted(void *arg)
{
    atomic_store(&arg_freed_on, pthread_self());
    atomic_fetch_add(&args_freed, 1);
    free(arg);
}

static void free_result_counted(void *result)
{
    atomic_fetch_add(&results_freed, 1);
    free(result);
}

static void free_acc_counted(void *acc)
{
    atomic_fetch_add(&accs_freed, 1);
    free(acc);
}

/* *arg times two, boxed. */
static int double_fn(void *arg, void **result)
{
    atomic_fetch_add(&runs, 1);
    *result = box(*(int *)arg * 2);
    return 0;
}

static int fail_fn(void *arg, void **result)
{
    return -EIO;
}

static int fail_after_setting_fn(void *arg, void **result)
{
    *result = box(1);
    return -EIO;
}

static int cancel_fn(void *arg, void **result)
{
    return -ECANCELED;
}

static int positive_fn(void *arg, void **result)
{
    return 1;
}

/* The index of the worker it runs on (arg: the workers), boxed. */
static int whoami_fn(void *arg, void **result)
{
    cio_workers_t *w = arg;
    atomic_fetch_add(&runs, 1);
    for (size_t i = 0; i < cio_workers_count(w); i++)
        if (cio_workers_loop(w, i) == cio_get_running_loop())
            *result = box((int)i);
    return 0;
}

static int fail_on_workers_1_and_2_fn(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_loop_t *loop = cio_get_running_loop();
    if (loop == cio_workers_loop(w, 1))
        return -EIO;
    if (loop == cio_workers_loop(w, 2))
        return -EPIPE;
    *result = box(0);
    return 0;
}

/* ---- a gate that holds a call on its worker ------------------------------------------- */

static _Atomic int gate_open, gate_waiting;
static _Atomic int stop_worker_at_gate; /* the held call also stops its worker's loop */

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Spin until @p v reaches @p want (10 s at most): off any loop. */
static void wait_for(_Atomic int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        sleep_ms(1);
    ck_assert_int_ge(atomic_load(v), want);
}

/* As wait_for(), inside a task: the loop goes on meanwhile. */
static void await_count(_Atomic int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        cio_sleep(0.001);
    ck_assert_int_ge(atomic_load(v), want);
}

static int held_fn(void *arg, void **result)
{
    atomic_fetch_add(&gate_waiting, 1);
    while (!atomic_load(&gate_open))
        sched_yield();
    if (atomic_load(&stop_worker_at_gate))
        cio_loop_stop(cio_get_running_loop());
    atomic_fetch_add(&runs, 1);
    *result = box(7);
    return 0;
}

static cio_shard_call_t counted(cio_shard_fn fn, int v)
{
    return (cio_shard_call_t){
        .fn = fn, .arg = box(v), .free_arg = free_arg_counted, .free_result = free_result_counted};
}

static cio_workers_t *two_workers(void)
{
    cio_workers_opts_t o = {.count = 2, .pin = CIO_OFF};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    return w;
}

/* Await @p f, expect @p want, drop it; the result (an int) or -1. */
static int await_int(cio_future_t *f, int want)
{
    ck_assert_ptr_nonnull(f);
    void *r = NULL;
    int rc = cio_await(f, &r);
    ck_assert_msg(rc == want, "got %s, expected %s", cio_err_name(rc), cio_err_name(want));
    int v = rc == 0 && r ? *(int *)r : -1;
    cio_future_unref(f);
    return v;
}

/* ---- outcomes ----------------------------------------------------------------------- */

static int outcomes_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = counted(double_fn, 21);
    ck_assert_int_eq(await_int(cio_workers_submit_to(w, 1, &c), 0), 42);
    cio_shard_call_t plain = {.fn = fail_fn};
    ck_assert_int_eq(await_int(cio_workers_submit_to(w, 0, &plain), -EIO), -1);
    plain.fn = positive_fn;
    ck_assert_int_eq(await_int(cio_workers_submit_to(w, 0, &plain), -EINVAL), -1);
    plain.fn = cancel_fn;
    cio_future_t *f = cio_workers_submit_to(w, 1, &plain);
    ck_assert_int_eq(await_int(cio_future_ref(f), -ECANCELED), -1);
    ck_assert(cio_future_cancelled(f));
    cio_future_unref(f);
    return 0;
}

START_TEST(test_submit_to_returns_the_result_an_error_or_a_cancellation)
{
    cio_workers_t *w = two_workers();
    ck_assert_int_eq(cio_run(outcomes_task, w, false, NULL), 0);
    cio_workers_free(w);
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    ck_assert_int_eq(atomic_load(&results_freed), 1); /* with its future */
}
END_TEST

/* On worker 0: a call to itself goes through its own mailbox. */
static int self_call_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_loop_stats_t before, after;
    cio_loop_get_stats(cio_get_running_loop(), &before);
    cio_shard_call_t c = {.fn = whoami_fn, .arg = w, .free_result = free};
    cio_future_t *f = cio_workers_submit_to(w, 0, &c);
    ck_assert_ptr_nonnull(f);
    ck_assert(!cio_future_done(f)); /* never settled inside the call */
    ck_assert_int_eq(await_int(f, 0), 0);
    cio_loop_get_stats(cio_get_running_loop(), &after);
    ck_assert_uint_ge(after.mailbox_received - before.mailbox_received, 2); /* call, answer */
    return 0;
}

static int on_worker_0_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_future_t *f = cio_workers_submit(w, 0, self_call_task, w);
    ck_assert_int_eq(cio_await(f, NULL), 0);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_a_worker_calling_itself_is_answered_later_through_its_mailbox)
{
    cio_workers_t *w = two_workers();
    ck_assert_int_eq(cio_run(on_worker_0_task, w, false, NULL), 0);
    cio_workers_free(w);
    ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

/* ---- fan-outs ----------------------------------------------------------------------------- */

static cio_workers_t *three_workers(void)
{
    cio_workers_opts_t o = {.count = 3, .pin = CIO_OFF};
    cio_workers_t *w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(w);
    return w;
}

static int invoke_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = {.fn = whoami_fn, .arg = w, .free_result = free_result_counted};
    void **v = NULL;
    cio_future_t *f = cio_workers_invoke_on_all(w, &c);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_await(f, (void **)&v), 0);
    for (size_t i = 0; i < cio_workers_count(w); i++)
        ck_assert_int_eq(*(int *)v[i], (int)i);
    ck_assert_int_eq(atomic_load(&results_freed), 0);
    cio_future_unref(f); /* frees every result, once the task's wake-up has let it go */
    cio_sleep(0);
    ck_assert_int_eq(atomic_load(&results_freed), (int)cio_workers_count(w));
    return 0;
}

/* A fan-out's free_arg: once, after every worker ran fn. */
static void free_shared_arg(void *arg)
{
    ck_assert_int_eq(atomic_load(&runs), 3);
    free_arg_counted(arg);
}

static int invoke_shared_arg_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = {.fn = double_fn, .arg = box(5), .free_arg = free_shared_arg};
    void **v = NULL;
    cio_future_t *f = cio_workers_invoke_on_all(w, &c);
    ck_assert_int_eq(cio_await(f, (void **)&v), 0);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(*(int *)v[i], 10);
        free(v[i]); /* no free_result: the elements are the caller's to free */
    }
    cio_future_unref(f);
    return 0;
}

START_TEST(test_invoke_on_all_gives_every_result_in_worker_order_and_frees_arg_once)
{
    cio_workers_t *w = three_workers();
    ck_assert_int_eq(cio_run(invoke_task, w, false, NULL), 0);
    atomic_store(&runs, 0);
    ck_assert_int_eq(cio_run(invoke_shared_arg_task, w, false, NULL), 0);
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    cio_workers_free(w);
}
END_TEST

static int invoke_fails_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = {
        .fn = fail_on_workers_1_and_2_fn, .arg = w, .free_result = free_result_counted};
    ck_assert_int_eq(await_int(cio_workers_invoke_on_all(w, &c), -EIO), -1);
    ck_assert_int_eq(atomic_load(&results_freed), 1); /* worker 0's */
    return 0;
}

START_TEST(test_invoke_on_all_reports_the_lowest_failing_worker_and_frees_the_rest)
{
    cio_workers_t *w = three_workers();
    ck_assert_int_eq(cio_run(invoke_fails_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* acc = acc * 10 + worker index + 1: the digits show the order of the fold. */
static void *append_digit(void *acc, void *result, void *reduce_arg)
{
    int *a = acc;
    *a = *a * 10 + *(int *)result + 1;
    free_result_counted(result);
    (*(int *)reduce_arg)++;
    return a;
}

static int map_reduce_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = {.fn = whoami_fn, .arg = w, .free_result = free_result_counted};
    int reduced = 0;
    cio_future_t *f =
        cio_workers_map_reduce(w, &c, append_digit, &reduced, box(0), free_acc_counted);
    ck_assert_int_eq(await_int(f, 0), 123); /* workers 0, 1, 2 in that order */
    ck_assert_int_eq(reduced, 3);
    cio_sleep(0);
    ck_assert_int_eq(atomic_load(&accs_freed), 1); /* the future owned the final acc */
    /* A failure reduces nothing: init and every result are freed. */
    c.fn = fail_on_workers_1_and_2_fn;
    f = cio_workers_map_reduce(w, &c, append_digit, &reduced, box(0), free_acc_counted);
    ck_assert_int_eq(await_int(f, -EIO), -1);
    ck_assert_int_eq(reduced, 3);
    ck_assert_int_eq(atomic_load(&accs_freed), 2);
    ck_assert_int_eq(atomic_load(&results_freed), 4);
    return 0;
}

START_TEST(test_map_reduce_folds_the_results_in_worker_order)
{
    cio_workers_t *w = three_workers();
    ck_assert_int_eq(cio_run(map_reduce_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* ---- destructors ---------------------------------------------------------------------- */

static pthread_t ran_on;

static int where_fn(void *arg, void **result)
{
    ran_on = pthread_self();
    *result = box(*(int *)arg);
    return 0;
}

static int owned_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = counted(where_fn, 3);
    cio_future_t *f = cio_workers_submit_to(w, 1, &c);
    void *r = NULL;
    ck_assert_int_eq(cio_await(f, &r), 0);
    ck_assert_int_eq(*(int *)r, 3);
    /* Freed on the worker, once fn had returned. */
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    ck_assert(pthread_equal(atomic_load(&arg_freed_on), ran_on));
    ck_assert(!pthread_equal(ran_on, pthread_self()));
    ck_assert_int_eq(atomic_load(&results_freed), 0);
    cio_future_unref(f);
    cio_sleep(0);
    ck_assert_int_eq(atomic_load(&results_freed), 1);
    /* A result set before failing is nobody's: freed, and the future fails. */
    c = counted(fail_after_setting_fn, 0);
    ck_assert_int_eq(await_int(cio_workers_submit_to(w, 0, &c), -EIO), -1);
    ck_assert_int_eq(atomic_load(&results_freed), 2);
    ck_assert_int_eq(atomic_load(&args_freed), 2);
    return 0;
}

START_TEST(test_arg_is_freed_on_the_worker_and_the_result_with_the_future)
{
    cio_workers_t *w = two_workers();
    ck_assert_int_eq(cio_run(owned_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

static int cancel_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = counted(held_fn, 0);
    cio_future_t *f = cio_workers_submit_to(w, 1, &c);
    await_count(&gate_waiting, 1);
    ck_assert(cio_future_cancel(f, NULL));
    atomic_store(&gate_open, 1);
    /* fn still runs; its result, which nobody takes, is freed. */
    await_count(&results_freed, 1);
    ck_assert_int_eq(atomic_load(&runs), 1);
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_a_cancelled_call_still_runs_and_its_result_is_freed)
{
    cio_workers_t *w = two_workers();
    ck_assert_int_eq(cio_run(cancel_task, w, false, NULL), 0);
    cio_workers_free(w);
    ck_assert_int_eq(atomic_load(&results_freed), 1);
}
END_TEST

typedef struct orphans {
    cio_workers_t *w;
    cio_future_t *one, *all;
} orphans_t;

/* Start calls that the workers hold, and leave without waiting for them. */
static int leave_calls_behind_task(void *arg, void **result)
{
    orphans_t *o = arg;
    static int reduced;
    cio_shard_call_t c = counted(held_fn, 0);
    o->one = cio_future_ref(cio_workers_submit_to(o->w, 1, &c));
    c = counted(held_fn, 0);
    o->all = cio_workers_map_reduce(o->w, &c, append_digit, &reduced, box(0), free_acc_counted);
    ck_assert_ptr_nonnull(o->all);
    cio_future_unref(o->one);      /* the task's; the test keeps the other */
    await_count(&gate_waiting, 2); /* both workers hold a call */
    return 0;
}

START_TEST(test_answers_to_a_caller_loop_closed_meanwhile_are_freed_by_the_workers)
{
    orphans_t o = {.w = two_workers()};
    ck_assert_int_eq(cio_run(leave_calls_behind_task, &o, false, NULL), 0);
    /* cio_run closed and freed its loop: the calls are orphaned, their futures cancelled. */
    ck_assert(cio_future_cancelled(o.one));
    ck_assert(cio_future_cancelled(o.all));
    cio_future_unref(o.one);
    cio_future_unref(o.all);
    ck_assert_int_eq(atomic_load(&accs_freed), 1); /* init, never reduced */
    atomic_store(&gate_open, 1);
    wait_for(&runs, 3);
    wait_for(&results_freed, 3);
    wait_for(&args_freed, 2);
    cio_workers_free(o.w);
}
END_TEST

/* A loop run by hand, so that the test chooses when it stops and closes. */
typedef struct manual {
    cio_workers_t *w;
    cio_loop_t *loop;
    cio_future_t *one, *all;
    bool stop_before_sending;
} manual_t;

static int submit_and_stop_cb(void *arg)
{
    manual_t *m = arg;
    cio_shard_call_t c = counted(double_fn, 4);
    m->one = cio_workers_submit_to(m->w, 1, &c);
    c = counted(double_fn, 5);
    m->all = cio_workers_invoke_on_all(m->w, &c);
    if (m->stop_before_sending)
        cio_loop_stop(m->loop);
    else /* after the flush, scheduled first, has sent the calls */
        cio_loop_call_soon(m->loop, cio_test_stop_cb, m->loop, NULL);
    return 0;
}

static void run_and_stop(manual_t *m)
{
    m->w = two_workers();
    m->loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_call_soon(m->loop, submit_and_stop_cb, m, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(m->loop), 0);
    ck_assert_ptr_nonnull(m->one);
    ck_assert_ptr_nonnull(m->all);
}

static void free_and_check_cancelled(manual_t *m)
{
    ck_assert_int_eq(cio_loop_free(m->loop), 0);
    ck_assert(cio_future_cancelled(m->one));
    ck_assert(cio_future_cancelled(m->all));
    cio_future_unref(m->one);
    cio_future_unref(m->all);
}

START_TEST(test_answers_waiting_in_a_closed_caller_mailbox_are_freed)
{
    manual_t m = {0};
    run_and_stop(&m);
    wait_for(&runs, 3);
    /* The answers wait in the stopped loop's mailbox (one message per worker). */
    cio_loop_stats_t st = {0};
    for (int i = 0; i < 10000 && st.mailbox_depth < 2; i++, sleep_ms(1))
        cio_loop_get_stats(m.loop, &st);
    ck_assert_uint_eq(st.mailbox_depth, 2);
    ck_assert_int_eq(atomic_load(&results_freed), 0);
    free_and_check_cancelled(&m);
    ck_assert_int_eq(atomic_load(&results_freed), 3);
    ck_assert_int_eq(atomic_load(&args_freed), 2);
    cio_workers_free(m.w);
}
END_TEST

START_TEST(test_calls_not_sent_when_the_caller_loop_closes_never_run)
{
    manual_t m = {.stop_before_sending = true};
    run_and_stop(&m);
    free_and_check_cancelled(&m);
    /* Their arguments are freed by the closing thread; fn never runs. */
    ck_assert_int_eq(atomic_load(&args_freed), 2);
    ck_assert(pthread_equal(atomic_load(&arg_freed_on), pthread_self()));
    cio_workers_free(m.w);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

typedef struct awaiting {
    cio_workers_t *w;
    int rc;
    bool cleaned_up;
} awaiting_t;

static int await_held_task(void *arg, void **result)
{
    awaiting_t *a = arg;
    cio_shard_call_t c = counted(held_fn, 0);
    cio_future_t *f = cio_workers_submit_to(a->w, 1, &c);
    a->rc = cio_await(f, NULL);
    cio_future_unref(f);
    a->cleaned_up = true;
    return 0;
}

START_TEST(test_a_task_awaiting_a_call_is_unwound_when_its_loop_closes)
{
    cio_test_log_t log;
    cio_test_capture_log(&log);
    awaiting_t a = {.w = two_workers()};
    cio_loop_t *loop = cio_loop_new();
    cio_task_t *t = cio_loop_create_task(loop, await_held_task, &a, NULL);
    for (int i = 0; i < 10000 && atomic_load(&gate_waiting) == 0; i++, sleep_ms(1)) {
        cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL); /* one iteration */
        cio_loop_run_forever(loop);
    }
    ck_assert_int_eq(atomic_load(&gate_waiting), 1);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    /* The call's future was cancelled first, then the task unwound from its await. */
    ck_assert_int_eq(a.rc, -ECANCELED);
    ck_assert(a.cleaned_up);
    cio_task_unref(t);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    atomic_store(&gate_open, 1);
    wait_for(&results_freed, 1);
    wait_for(&args_freed, 1);
    cio_workers_free(a.w);
}
END_TEST

enum { QUEUED = 8 };

static int stopped_worker_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    atomic_store(&stop_worker_at_gate, 1);
    cio_shard_call_t c = counted(held_fn, 0);
    cio_future_t *held = cio_workers_submit_to(w, 1, &c);
    await_count(&gate_waiting, 1);
    cio_future_t *f[QUEUED];
    for (int k = 0; k < QUEUED; k++) {
        c = counted(double_fn, k);
        f[k] = cio_workers_submit_to(w, 1, &c);
    }
    cio_sleep(0.01); /* the flush has sent them: they wait in worker 1's mailbox */
    atomic_store(&gate_open, 1);
    /* The held call returns and stops its loop: the queued calls never run. */
    ck_assert_int_eq(await_int(held, 0), 7);
    cio_workers_free(w); /* releases them, on this thread */
    for (int k = 0; k < QUEUED; k++)
        ck_assert_int_eq(await_int(f[k], CIO_ECLOSED), -1);
    ck_assert_int_eq(atomic_load(&args_freed), QUEUED + 1);
    ck_assert(pthread_equal(atomic_load(&arg_freed_on), pthread_self()));
    return 0;
}

START_TEST(test_calls_to_a_worker_that_stopped_fail_with_eclosed)
{
    ck_assert_int_eq(cio_run(stopped_worker_task, two_workers(), false, NULL), 0);
    ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

static int freed_workers_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_future_t *f[4];
    for (int k = 0; k < 4; k++) {
        cio_shard_call_t c = counted(double_fn, k);
        f[k] = cio_workers_submit_to(w, (size_t)k % 2, &c);
    }
    cio_shard_call_t c = counted(double_fn, 9);
    cio_future_t *all = cio_workers_invoke_on_all(w, &c);
    cio_workers_free(w); /* before the calls are sent: they find their workers gone */
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(await_int(f[k], CIO_ECLOSED), -1);
    ck_assert_int_eq(await_int(all, CIO_ECLOSED), -1);
    ck_assert_int_eq(atomic_load(&args_freed), 5);
    ck_assert(pthread_equal(atomic_load(&arg_freed_on), pthread_self()));
    return 0;
}

START_TEST(test_calls_to_freed_workers_fail_with_eclosed)
{
    ck_assert_int_eq(cio_run(freed_workers_task, two_workers(), false, NULL), 0);
    ck_assert_int_eq(atomic_load(&runs), 0);
}
END_TEST

enum { RACE_CALLS = 200, RACE_ROUNDS = 20 };

typedef struct race {
    cio_workers_t *w;
    _Atomic int go;
    int delay_us; /* before the calls are sent: each round lands elsewhere in the free */
    int ran, closed;
} race_t;

static void *free_when_told(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    cio_workers_free(r->w);
    return NULL;
}

/* Calls on their way (sent or not yet) while another thread frees the workers. */
static int race_task(void *arg, void **result)
{
    race_t *r = arg;
    cio_future_t *f[RACE_CALLS];
    for (int k = 0; k < RACE_CALLS; k++) {
        cio_shard_call_t c = counted(double_fn, k);
        f[k] = cio_workers_submit_to(r->w, (size_t)k % 2, &c);
    }
    cio_shard_call_t c = counted(double_fn, 1);
    cio_future_t *all = cio_workers_invoke_on_all(r->w, &c);
    atomic_store(&r->go, 1); /* w is the freeing thread's from here on */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do /* hold the loop: the flush comes later */
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 < r->delay_us);
    for (int k = 0; k < RACE_CALLS; k++) {
        void *v = NULL;
        int rc = cio_await(f[k], &v);
        ck_assert_msg(rc == 0 || rc == CIO_ECLOSED, "call %d: %s", k, cio_err_name(rc));
        if (rc == 0)
            ck_assert_int_eq(*(int *)v, 2 * k);
        rc == 0 ? r->ran++ : r->closed++;
        cio_future_unref(f[k]);
    }
    int rc = cio_await(all, NULL);
    ck_assert_msg(rc == 0 || rc == CIO_ECLOSED, "invoke_on_all: %s", cio_err_name(rc));
    cio_future_unref(all);
    return 0;
}

START_TEST(test_calls_racing_cio_workers_free_run_or_fail_and_free_everything)
{
    int ran = 0, closed = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        race_t r = {.w = two_workers(), .delay_us = round * 250};
        pthread_t t;
        pthread_create(&t, NULL, free_when_told, &r);
        ck_assert_int_eq(cio_run(race_task, &r, false, NULL), 0);
        pthread_join(t, NULL);
        ran += r.ran;
        closed += r.closed;
    }
    ck_assert_int_eq(ran + closed, RACE_ROUNDS * RACE_CALLS);
    ck_assert_int_eq(atomic_load(&args_freed), RACE_ROUNDS * (RACE_CALLS + 1));
    ck_assert_int_eq(atomic_load(&results_freed), atomic_load(&runs)); /* each exactly once */
}
END_TEST

/* ---- bad arguments, out of memory --------------------------------------------------------- */

static int bad_arguments_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_shard_call_t c = counted(double_fn, 1);
    ck_assert_ptr_null(cio_workers_submit_to(NULL, 0, &c));
    c = counted(double_fn, 1);
    ck_assert_ptr_null(cio_workers_submit_to(w, 2, &c));
    c = counted(NULL, 1);
    ck_assert_ptr_null(cio_workers_submit_to(w, 0, &c));
    ck_assert_ptr_null(cio_workers_submit_to(w, 0, NULL));
    c = counted(NULL, 1);
    ck_assert_ptr_null(cio_workers_invoke_on_all(w, &c));
    c = counted(double_fn, 1);
    ck_assert_ptr_null(cio_workers_map_reduce(w, &c, NULL, NULL, box(0), free_acc_counted));
    c = counted(double_fn, 1);
    ck_assert_ptr_null(
        cio_workers_map_reduce(NULL, &c, append_digit, NULL, box(0), free_acc_counted));
    /* Each NULL ran free_arg (and free_acc on init) before returning. */
    ck_assert_int_eq(atomic_load(&args_freed), 6);
    ck_assert_int_eq(atomic_load(&accs_freed), 2);
    c = counted(double_fn, 1);
    cio__alloc_fail_after(1);
    ck_assert_ptr_null(cio_workers_submit_to(w, 0, &c));
    cio__alloc_fail_after(0);
    c = counted(double_fn, 1);
    cio__alloc_fail_after(1);
    ck_assert_ptr_null(cio_workers_invoke_on_all(w, &c));
    cio__alloc_fail_after(0);
    ck_assert_int_eq(atomic_load(&args_freed), 8);
    c = counted(double_fn, 2);
    ck_assert_int_eq(await_int(cio_workers_submit_to(w, 1, &c), 0), 4);
    return 0;
}

START_TEST(test_bad_arguments_and_no_memory_return_null_after_free_arg)
{
    cio_workers_t *w = two_workers();
    /* Outside a running loop there is nowhere to deliver an outcome. */
    cio_shard_call_t c = counted(double_fn, 1);
    ck_assert_ptr_null(cio_workers_submit_to(w, 0, &c));
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    atomic_store(&args_freed, 0);
    ck_assert_int_eq(cio_run(bad_arguments_task, w, false, NULL), 0);
    cio_workers_free(w);
    ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

/* ---- many calls in flight ------------------------------------------------------------------ */

typedef struct stream {
    cio_workers_t *w;
    int n, inflight;
    int settled; /* futures done so far, checked in the order they settle */
    cio_loop_stats_t before[2], after[2];
} stream_t;

static int twice_fn(void *arg, void **result)
{
    *result = (void *)((intptr_t)arg * 2);
    return 0;
}

static int stats_fn(void *arg, void **result)
{
    cio_loop_get_stats(cio_get_running_loop(), arg);
    return 0;
}

static void stats_of_both(cio_workers_t *w, cio_loop_stats_t *st)
{
    for (size_t i = 0; i < 2; i++) {
        cio_shard_call_t c = {.fn = stats_fn, .arg = &st[i]};
        await_int(cio_workers_submit_to(w, i, &c), 0);
    }
}

/* Done callback: the futures of one caller to one worker settle in call order. */
static int check_order(cio_future_t *f, void *arg)
{
    stream_t *s = arg;
    void *v = NULL;
    ck_assert_int_eq(cio_future_result(f, &v), 0);
    ck_assert_int_eq((intptr_t)v, 2 * (intptr_t)s->settled);
    s->settled++;
    return 0;
}

static cio_future_t *stream_call(stream_t *s, int k)
{
    cio_shard_call_t c = {.fn = twice_fn, .arg = (void *)(intptr_t)k};
    cio_future_t *f = cio_workers_submit_to(s->w, 1, &c);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_future_add_done_callback(f, check_order, s), 0);
    return f;
}

/* On worker 0: n calls to worker 1, inflight at a time, each awaited in turn. */
static int stream_task(void *arg, void **result)
{
    stream_t *s = arg;
    cio_future_t **f = calloc((size_t)s->inflight, sizeof(*f));
    stats_of_both(s->w, s->before);
    int next = 0;
    for (; next < s->inflight && next < s->n; next++)
        f[next] = stream_call(s, next);
    for (int k = 0; k < s->n; k++) {
        void *v = NULL;
        ck_assert_int_eq(cio_await(f[k % s->inflight], &v), 0);
        ck_assert_int_eq((intptr_t)v, 2 * (intptr_t)k);
        cio_future_unref(f[k % s->inflight]);
        if (next < s->n)
            f[k % s->inflight] = stream_call(s, next++);
    }
    stats_of_both(s->w, s->after);
    free(f);
    return 0;
}

static int stream_main_task(void *arg, void **result)
{
    stream_t *s = arg;
    cio_future_t *f = cio_workers_submit(s->w, 0, stream_task, s);
    ck_assert_int_eq(cio_await(f, NULL), 0);
    cio_future_unref(f);
    return 0;
}

static void run_stream(stream_t *s)
{
    cio_workers_opts_t o = {.count = 2};
    s->w = cio_workers_new(&o);
    ck_assert_ptr_nonnull(s->w);
    ck_assert_int_eq(cio_run(stream_main_task, s, false, NULL), 0);
    cio_workers_free(s->w);
    ck_assert_int_eq(s->settled, s->n);
}

START_TEST(test_64_calls_in_flight_cost_few_messages_and_wakeups)
{
    stream_t s = {.n = 10000, .inflight = 64};
    run_stream(&s);
    uint64_t msgs = s.after[1].mailbox_received - s.before[1].mailbox_received;
    uint64_t wakeups = 0;
    for (int i = 0; i < 2; i++)
        wakeups += s.after[i].mailbox_wakeups - s.before[i].mailbox_wakeups;
    /* Batched: far fewer messages to the worker, and wake-ups of either loop, than calls. */
    ck_assert_msg(msgs <= (uint64_t)s.n / 4, "%llu messages for %d calls", (unsigned long long)msgs,
                  s.n);
    ck_assert_msg(wakeups <= (uint64_t)s.n / 4, "%llu wake-ups for %d calls",
                  (unsigned long long)wakeups, s.n);
}
END_TEST

/* Loops that may not poll (workers sharing cores) sleep between batches; calls still batch. */
START_TEST(test_idle_poll_is_checked_and_zero_still_batches)
{
    ck_assert_int_eq(cio_workers_set_idle_poll(-1e-6), -EINVAL);
    ck_assert_int_eq(cio_workers_set_idle_poll(2e-3), -EINVAL);
    ck_assert_int_eq(cio_workers_set_idle_poll(0.0 / 0.0), -EINVAL);
    ck_assert_int_eq(cio_workers_set_idle_poll(0), 0);
    stream_t s = {.n = 10000, .inflight = 64};
    run_stream(&s);
    uint64_t msgs = s.after[1].mailbox_received - s.before[1].mailbox_received;
    ck_assert_msg(msgs <= (uint64_t)s.n / 4, "%llu messages for %d calls", (unsigned long long)msgs,
                  s.n);
    ck_assert_int_eq(cio_workers_set_idle_poll(50e-6), 0);
}
END_TEST

START_TEST(test_100000_calls_64_in_flight_are_all_answered_in_order)
{
    stream_t s = {.n = 100000, .inflight = 64};
    run_stream(&s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("shard_call");
    TCase *tc = cio_test_case("shard_call");
    CIO_TEST(tc, test_submit_to_returns_the_result_an_error_or_a_cancellation);
    CIO_TEST(tc, test_a_worker_calling_itself_is_answered_later_through_its_mailbox);
    CIO_TEST(tc, test_invoke_on_all_gives_every_result_in_worker_order_and_frees_arg_once);
    CIO_TEST(tc, test_invoke_on_all_reports_the_lowest_failing_worker_and_frees_the_rest);
    CIO_TEST(tc, test_map_reduce_folds_the_results_in_worker_order);
    CIO_TEST(tc, test_arg_is_freed_on_the_worker_and_the_result_with_the_future);
    CIO_TEST(tc, test_a_cancelled_call_still_runs_and_its_result_is_freed);
    CIO_TEST(tc, test_answers_to_a_caller_loop_closed_meanwhile_are_freed_by_the_workers);
    CIO_TEST(tc, test_answers_waiting_in_a_closed_caller_mailbox_are_freed);
    CIO_TEST(tc, test_calls_not_sent_when_the_caller_loop_closes_never_run);
    CIO_TEST(tc, test_a_task_awaiting_a_call_is_unwound_when_its_loop_closes);
    CIO_TEST(tc, test_calls_to_a_worker_that_stopped_fail_with_eclosed);
    CIO_TEST(tc, test_calls_to_freed_workers_fail_with_eclosed);
    CIO_TEST(tc, test_calls_racing_cio_workers_free_run_or_fail_and_free_everything);
    CIO_TEST(tc, test_bad_arguments_and_no_memory_return_null_after_free_arg);
    CIO_TEST(tc, test_64_calls_in_flight_cost_few_messages_and_wakeups);
    CIO_TEST(tc, test_100000_calls_64_in_flight_are_all_answered_in_order);
    CIO_TEST(tc, test_idle_poll_is_checked_and_zero_still_batches);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
