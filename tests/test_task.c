/*
 * tests/test_task.c: tasks (SEMANTICS.md "Futures and tasks"): creation never
 * runs inline, cio_await at any call depth, sleeping, cancellation at each
 * await point, task factories, names, stacks, and thousands of live tasks.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static cio_loop_t *the_loop;

/* Run the loop until @p task is done; returns its outcome. */
static int run_task(cio_loop_t *loop, cio_task_t *task, void **result)
{
    return cio_loop_run_until_complete(loop, cio_task_future(task), result);
}

static int return_arg_fn(void *arg, void **result)
{
    *result = arg;
    return 0;
}

START_TEST(test_task_result_is_its_function_result_and_never_runs_inline)
{
    cio_loop_t *loop = cio_loop_new();
    static int marker;
    cio_task_t *t = cio_loop_create_task(loop, return_arg_fn, &marker, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert(!cio_future_done(cio_task_future(t)));
    void *res = NULL;
    ck_assert_int_eq(run_task(loop, t, &res), 0);
    ck_assert_ptr_eq(res, &marker);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

static int fail_fn(void *arg, void **result)
{
    return -ECONNRESET;
}

START_TEST(test_task_error_becomes_its_future_error)
{
    cio_loop_t *loop = cio_loop_new();
    cio_task_t *t = cio_loop_create_task(loop, fail_fn, NULL, NULL);
    ck_assert_int_eq(run_task(loop, t, NULL), -ECONNRESET);
    ck_assert_int_eq(cio_future_error(cio_task_future(t)), -ECONNRESET);
    ck_assert(!cio_future_cancelled(cio_task_future(t)));
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_await_outside_a_task_fails_without_blocking)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    ck_assert_int_eq(cio_await(fut, NULL), CIO_ENOTASK);
    ck_assert_int_eq(cio_sleep(1), CIO_ENOTASK);
    ck_assert_ptr_null(cio_current_task());
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

static int set_result_cb(void *arg)
{
    cio_future_set_result(arg, (void *)(intptr_t)42);
    return 0;
}

/* Awaits three calls deep on the task's stack. */
static int await_deep(cio_future_t *fut, int depth)
{
    char pad[256];
    memset(pad, depth, sizeof(pad));
    if (depth > 0)
        return await_deep(fut, depth - 1) + pad[depth];
    void *res = NULL;
    int rc = cio_await(fut, &res);
    return rc < 0 ? rc : (int)(intptr_t)res;
}

static int nested_await_fn(void *arg, void **result)
{
    cio_future_t *fut = cio_loop_create_future(the_loop);
    cio_loop_call_later(the_loop, 0.001, set_result_cb, fut, NULL);
    int v = await_deep(fut, 3);
    cio_future_unref(fut);
    *result = (void *)(intptr_t)v;
    return 0;
}

START_TEST(test_await_works_inside_nested_calls)
{
    the_loop = cio_loop_new();
    cio_task_t *t = cio_loop_create_task(the_loop, nested_await_fn, NULL, NULL);
    void *res = NULL;
    ck_assert_int_eq(run_task(the_loop, t, &res), 0);
    /* 42 from the future, plus 3 + 2 + 1 from the frames it went through. */
    ck_assert_int_eq((int)(intptr_t)res, 48);
    cio_task_unref(t);
    cio_loop_free(the_loop);
}
END_TEST

typedef struct checks {
    int own_rc;
    int other_loop_rc;
    int null_rc;
    int done_rc;
    void *done_result;
    uint64_t iterations_before, iterations_after;
    cio_task_t *current;
} checks_t;

static int await_checks_fn(void *arg, void **result)
{
    checks_t *c = arg;
    cio_loop_t *other = cio_loop_new();
    cio_future_t *foreign = cio_loop_create_future(other);
    c->current = cio_current_task();
    c->own_rc = cio_await(cio_task_future(c->current), NULL);
    c->other_loop_rc = cio_await(foreign, NULL);
    c->null_rc = cio_await(NULL, NULL);
    /* A done future returns at once: no iteration passes. */
    cio_future_t *done = cio_loop_create_future(the_loop);
    cio_future_set_result(done, (void *)7);
    cio_loop_stats_t st;
    cio_loop_get_stats(the_loop, &st);
    c->iterations_before = st.iterations;
    c->done_rc = cio_await(done, &c->done_result);
    cio_loop_get_stats(the_loop, &st);
    c->iterations_after = st.iterations;
    cio_future_unref(done);
    cio_future_unref(foreign);
    cio_loop_free(other);
    return 0;
}

START_TEST(test_await_rejects_own_future_foreign_loop_and_null)
{
    the_loop = cio_loop_new();
    checks_t c = {0};
    cio_task_t *t = cio_loop_create_task(the_loop, await_checks_fn, &c, NULL);
    ck_assert_int_eq(run_task(the_loop, t, NULL), 0);
    ck_assert_ptr_eq(c.current, t);
    ck_assert_int_eq(c.own_rc, -EDEADLK);
    ck_assert_int_eq(c.other_loop_rc, -EINVAL);
    ck_assert_int_eq(c.null_rc, -EINVAL);
    ck_assert_int_eq(c.done_rc, 0);
    ck_assert_ptr_eq(c.done_result, (void *)7);
    ck_assert_uint_eq(c.iterations_after, c.iterations_before);
    cio_task_unref(t);
    cio_loop_free(the_loop);
}
END_TEST

typedef struct pingpong {
    cio_test_order_t *order;
    int id;
} pingpong_t;

static int yield_fn(void *arg, void **result)
{
    pingpong_t *p = arg;
    for (int i = 0; i < 3; i++) {
        p->order->v[p->order->n++] = p->id * 10 + i;
        ck_assert_int_eq(cio_sleep(0), 0);
    }
    return 0;
}

START_TEST(test_sleep_zero_yields_so_tasks_alternate)
{
    cio_loop_t *loop = cio_loop_new();
    cio_test_order_t order = {0};
    pingpong_t a = {&order, 1}, b = {&order, 2};
    cio_task_t *ta = cio_loop_create_task(loop, yield_fn, &a, NULL);
    cio_task_t *tb = cio_loop_create_task(loop, yield_fn, &b, NULL);
    run_task(loop, tb, NULL);
    int expect[] = {10, 20, 11, 21, 12, 22};
    ck_assert_int_eq(order.n, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(order.v[i], expect[i]);
    cio_task_unref(ta);
    cio_task_unref(tb);
    cio_loop_free(loop);
}
END_TEST

static int sleep_fn(void *arg, void **result)
{
    double *slept = arg;
    double t0 = cio_loop_time(cio_get_running_loop());
    int rc = cio_sleep(0.02);
    *slept = cio_loop_time(cio_get_running_loop()) - t0;
    return rc;
}

START_TEST(test_sleep_suspends_for_at_least_the_delay)
{
    cio_loop_t *loop = cio_loop_new();
    double slept = 0;
    cio_task_t *t = cio_loop_create_task(loop, sleep_fn, &slept, NULL);
    ck_assert_int_eq(run_task(loop, t, NULL), 0);
    ck_assert(slept >= 0.02 - 1e-6);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

/* Awaits three futures in turn, recording how far it got and what it saw. */
typedef struct stages {
    cio_future_t *futs[3];
    int reached;
    int rc[3];
    bool catch_cancel;
} stages_t;

static int stages_fn(void *arg, void **result)
{
    stages_t *s = arg;
    for (int i = 0; i < 3; i++) {
        s->reached = i + 1;
        s->rc[i] = cio_await(s->futs[i], NULL);
        if (s->rc[i] == -ECANCELED && !s->catch_cancel)
            return -ECANCELED;
    }
    *result = (void *)99;
    return 0;
}

static int cancel_task_cb(void *arg)
{
    cio_task_cancel(arg, "stop");
    return 0;
}

START_TEST(test_cancellation_at_each_await_point)
{
    for (int at = 0; at < 3; at++) {
        cio_loop_t *loop = cio_loop_new();
        stages_t s = {0};
        for (int i = 0; i < 3; i++)
            s.futs[i] = cio_loop_create_future(loop);
        cio_task_t *t = cio_loop_create_task(loop, stages_fn, &s, NULL);
        /* Complete the futures before the one where the cancel lands. */
        for (int i = 0; i < at; i++)
            cio_future_set_result(s.futs[i], NULL);
        /* Let the task reach await number @at, then cancel it. */
        for (int i = 0; i < 2 * at + 2; i++) {
            cio_loop_stop(loop);
            cio_loop_run_forever(loop);
        }
        ck_assert_int_eq(s.reached, at + 1);
        ck_assert(cio_task_cancel(t, "stop"));
        ck_assert_int_eq(run_task(loop, t, NULL), -ECANCELED);
        ck_assert(cio_future_cancelled(cio_task_future(t)));
        ck_assert_str_eq(cio_future_error_message(cio_task_future(t)), "stop");
        ck_assert_int_eq(s.rc[at], -ECANCELED);
        /* The awaited future was cancelled with the task. */
        ck_assert(cio_future_cancelled(s.futs[at]));
        ck_assert(!cio_task_cancel(t, NULL));
        for (int i = 0; i < 3; i++)
            cio_future_unref(s.futs[i]);
        cio_task_unref(t);
        cio_loop_free(loop);
    }
}
END_TEST

START_TEST(test_cancelled_task_may_catch_it_and_go_on)
{
    cio_loop_t *loop = cio_loop_new();
    stages_t s = {.catch_cancel = true};
    for (int i = 0; i < 3; i++)
        s.futs[i] = cio_loop_create_future(loop);
    cio_task_t *t = cio_loop_create_task(loop, stages_fn, &s, NULL);
    cio_loop_call_later(loop, 0.001, cancel_task_cb, t, NULL);
    cio_loop_call_later(loop, 0.005, set_result_cb, s.futs[1], NULL);
    cio_loop_call_later(loop, 0.006, set_result_cb, s.futs[2], NULL);
    void *res = NULL;
    ck_assert_int_eq(run_task(loop, t, &res), 0);
    ck_assert_ptr_eq(res, (void *)99);
    ck_assert_int_eq(s.rc[0], -ECANCELED);
    ck_assert_int_eq(s.rc[1], 0);
    ck_assert_int_eq(s.rc[2], 0);
    ck_assert(!cio_future_cancelled(cio_task_future(t)));
    for (int i = 0; i < 3; i++)
        cio_future_unref(s.futs[i]);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

static int must_not_run_fn(void *arg, void **result)
{
    ck_abort_msg("a task cancelled before it started must not run");
    return 0;
}

START_TEST(test_task_cancelled_before_start_never_runs)
{
    cio_loop_t *loop = cio_loop_new();
    cio_task_t *t = cio_loop_create_task(loop, must_not_run_fn, NULL, NULL);
    ck_assert(cio_future_cancel(cio_task_future(t), "early"));
    ck_assert_int_eq(run_task(loop, t, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(cio_task_future(t)));
    ck_assert_str_eq(cio_future_error_message(cio_task_future(t)), "early");
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

typedef struct selfcancel {
    cio_future_t *fut;
    int rc;
    bool fut_cancelled;
} selfcancel_t;

static int self_cancel_fn(void *arg, void **result)
{
    selfcancel_t *s = arg;
    cio_task_cancel(cio_current_task(), NULL);
    /* The next await of a pending future is cancelled at once. */
    s->rc = cio_await(s->fut, NULL);
    s->fut_cancelled = cio_future_cancelled(s->fut);
    return 0;
}

START_TEST(test_self_cancel_cancels_the_next_await)
{
    cio_loop_t *loop = cio_loop_new();
    selfcancel_t s = {.fut = cio_loop_create_future(loop)};
    cio_task_t *t = cio_loop_create_task(loop, self_cancel_fn, &s, NULL);
    /* The function caught the cancellation and returned 0: a result. */
    ck_assert_int_eq(run_task(loop, t, NULL), 0);
    ck_assert_int_eq(s.rc, -ECANCELED);
    ck_assert(s.fut_cancelled);
    cio_future_unref(s.fut);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

static int long_sleep_fn(void *arg, void **result)
{
    int *rc = arg;
    *rc = cio_sleep(3600);
    return *rc;
}

START_TEST(test_cancel_during_sleep_wakes_the_task_and_drops_its_timer)
{
    cio_loop_t *loop = cio_loop_new();
    int rc = 1;
    cio_task_t *t = cio_loop_create_task(loop, long_sleep_fn, &rc, NULL);
    cio_loop_call_later(loop, 0.002, cancel_task_cb, t, NULL);
    ck_assert_int_eq(run_task(loop, t, NULL), -ECANCELED);
    ck_assert_int_eq(rc, -ECANCELED);
    /* The hour-long timer was cancelled: it leaves the heap at its turn. */
    cio_loop_stop(loop);
    cio_loop_run_forever(loop);
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    ck_assert_uint_eq(st.timers, 0);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

typedef struct waiter {
    cio_task_t *other;
    void *got;
    int rc;
} waiter_t;

static int await_task_fn(void *arg, void **result)
{
    waiter_t *w = arg;
    w->rc = cio_await(cio_task_future(w->other), &w->got);
    return 0;
}

static int sleepy_result_fn(void *arg, void **result)
{
    cio_sleep(0.002);
    *result = arg;
    return 0;
}

START_TEST(test_task_can_await_another_task)
{
    cio_loop_t *loop = cio_loop_new();
    waiter_t w = {0};
    w.other = cio_loop_create_task(loop, sleepy_result_fn, (void *)5, NULL);
    cio_task_t *t = cio_loop_create_task(loop, await_task_fn, &w, NULL);
    run_task(loop, t, NULL);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_ptr_eq(w.got, (void *)5);
    cio_task_unref(w.other);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

/* ThreadSanitizer maps a trace per fiber and runs out long before 10,000. */
#if defined(__SANITIZE_THREAD__)
enum { MANY = 500 };
#else
enum { MANY = 10000 };
#endif

static int many_fn(void *arg, void **result)
{
    intptr_t i = (intptr_t)arg;
    if (cio_sleep(0.001 * (double)(i % 7)) < 0)
        return -EIO;
    *result = (void *)(i * 3);
    return 0;
}

START_TEST(test_ten_thousand_live_tasks_all_finish_with_their_results)
{
    cio_loop_t *loop = cio_loop_new();
    static cio_task_t *t[MANY];
    static cio_future_t *f[MANY];
    for (intptr_t i = 0; i < MANY; i++) {
        t[i] = cio_loop_create_task(loop, many_fn, (void *)i, NULL);
        ck_assert_ptr_nonnull(t[i]);
        f[i] = cio_task_future(t[i]);
    }
    cio_future_t *all = cio_gather(loop, f, MANY, NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, all, NULL), 0);
    for (intptr_t i = 0; i < MANY; i++) {
        void *res = NULL;
        ck_assert_int_eq(cio_future_result(f[i], &res), 0);
        ck_assert_ptr_eq(res, (void *)(i * 3));
        cio_task_unref(t[i]);
    }
    cio_future_unref(all);
    cio_loop_free(loop);
}
END_TEST

static int factory_calls;

static cio_task_t *counting_factory(cio_loop_t *loop, cio_task_fn fn, void *arg,
                                    const cio_task_opts_t *opts, void *data)
{
    factory_calls += *(int *)data;
    return cio_task_new(loop, fn, arg, opts);
}

START_TEST(test_task_factory_is_used_and_can_be_reset)
{
    cio_loop_t *loop = cio_loop_new();
    int step = 1;
    void *data = NULL;
    ck_assert_ptr_null(cio_loop_get_task_factory(loop, &data));
    cio_loop_set_task_factory(loop, counting_factory, &step);
    ck_assert(cio_loop_get_task_factory(loop, &data) == counting_factory);
    ck_assert_ptr_eq(data, &step);
    cio_task_t *a = cio_loop_create_task(loop, return_arg_fn, NULL, NULL);
    ck_assert_int_eq(factory_calls, 1);
    cio_loop_set_task_factory(loop, NULL, NULL);
    ck_assert_ptr_null(cio_loop_get_task_factory(loop, NULL));
    cio_task_t *b = cio_loop_create_task(loop, return_arg_fn, NULL, NULL);
    ck_assert_int_eq(factory_calls, 1);
    run_task(loop, b, NULL);
    ck_assert(cio_future_done(cio_task_future(a)));
    cio_task_unref(a);
    cio_task_unref(b);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_task_names_default_and_custom)
{
    cio_loop_t *loop = cio_loop_new();
    cio_task_opts_t opts = {.name = "worker"};
    cio_task_t *a = cio_loop_create_task(loop, return_arg_fn, NULL, NULL);
    cio_task_t *b = cio_loop_create_task(loop, return_arg_fn, NULL, &opts);
    ck_assert_int_eq(strncmp(cio_task_get_name(a), "Task-", 5), 0);
    ck_assert_str_eq(cio_task_get_name(b), "worker");
    ck_assert_int_eq(cio_task_set_name(a, "renamed"), 0);
    ck_assert_str_eq(cio_task_get_name(a), "renamed");
    ck_assert_int_eq(cio_task_set_name(a, NULL), -EINVAL);
    run_task(loop, b, NULL);
    cio_task_unref(a);
    cio_task_unref(b);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_task_future_refuses_set_result_and_bad_creation)
{
    cio_loop_t *loop = cio_loop_new();
    cio_task_t *t = cio_loop_create_task(loop, return_arg_fn, NULL, NULL);
    ck_assert_int_eq(cio_future_set_result(cio_task_future(t), NULL), -EPERM);
    ck_assert_int_eq(cio_future_set_error(cio_task_future(t), -EIO, NULL), -EPERM);
    ck_assert_ptr_null(cio_loop_create_task(loop, NULL, NULL, NULL));
    ck_assert_ptr_null(cio_loop_create_task(NULL, return_arg_fn, NULL, NULL));
    run_task(loop, t, NULL);
    cio_task_unref(t);
    cio_loop_close(loop);
    ck_assert_ptr_null(cio_loop_create_task(loop, return_arg_fn, NULL, NULL));
    cio_loop_free(loop);
}
END_TEST

static int big_frame_fn(void *arg, void **result)
{
    /* 512 KiB of locals: fits the 1 MiB stack asked for, not the default. */
    volatile char big[512 * 1024];
    for (size_t i = 0; i < sizeof(big); i += 4096)
        big[i] = (char)i;
    *result = (void *)(intptr_t)big[4096];
    return 0;
}

START_TEST(test_stack_size_is_configurable_per_task)
{
    cio_loop_t *loop = cio_loop_new();
    cio_task_opts_t opts = {.stack_size = 1024 * 1024};
    cio_task_t *t = cio_loop_create_task(loop, big_frame_fn, NULL, &opts);
    void *res = NULL;
    ck_assert_int_eq(run_task(loop, t, &res), 0);
    ck_assert_int_eq((int)(intptr_t)res, (char)4096);
    cio_task_unref(t);
    cio_loop_free(loop);
}
END_TEST

/* Recurses until @p limit, far past a 64 KiB stack. */
static int recurse(int n, int limit)
{
    volatile char frame[1024];
    frame[0] = (char)n;
    if (n >= limit)
        return frame[0];
    return recurse(n + 1, limit) + frame[0];
}

static int overflow_fn(void *arg, void **result)
{
    return recurse(0, 1 << 20);
}

START_TEST(test_stack_overflow_hits_the_guard_page_and_crashes)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Quiet child: the crash is the expected outcome. */
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        cio_loop_t *loop = cio_loop_new();
        cio_task_opts_t opts = {.stack_size = 64 * 1024};
        cio_task_t *t = cio_loop_create_task(loop, overflow_fn, NULL, &opts);
        run_task(loop, t, NULL);
        _exit(0); /* reached only if the overflow went unnoticed */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    /* Killed by SIGSEGV, or (under AddressSanitizer) exited with its report. */
    ck_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
}
END_TEST

typedef struct forever {
    int first_rc;  /* the pending await's outcome */
    int second_rc; /* a further await's */
    bool cleaned_up;
} forever_t;

static int forever_fn(void *arg, void **result)
{
    forever_t *f = arg;
    cio_future_t *never = cio_loop_create_future(cio_get_running_loop());
    f->first_rc = cio_await(never, NULL);
    cio_future_t *another = cio_loop_create_future(cio_get_running_loop());
    f->second_rc = another ? cio_await(another, NULL) : -ENOMEM;
    cio_future_unref(another);
    cio_future_unref(never);
    f->cleaned_up = true;
    return f->first_rc;
}

START_TEST(test_closing_a_loop_unwinds_pending_tasks_and_reports_them)
{
    cio_test_log_t log;
    cio_test_capture_log(&log);
    cio_loop_t *loop = cio_loop_new();
    forever_t f = {0};
    cio_task_t *t = cio_loop_create_task(loop, forever_fn, &f, NULL);
    cio_loop_stop(loop);
    cio_loop_run_forever(loop);
    ck_assert(!cio_future_done(cio_task_future(t)));
    cio_task_t *unstarted = cio_loop_create_task(loop, must_not_run_fn, NULL, NULL);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_ptr_nonnull(strstr(log.text, "Task was destroyed but it is pending!"));
    /* The pending await returned -ECANCELED, later ones fail at once, and
     * the function released what it held (ASan checks the leak). */
    ck_assert_int_eq(f.first_rc, -ECANCELED);
    ck_assert(f.cleaned_up);
    ck_assert(cio_future_cancelled(cio_task_future(t)));
    ck_assert(cio_future_cancelled(cio_task_future(unstarted)));
    cio_task_unref(unstarted);
    cio_task_unref(t);
    cio_loop_free(loop);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc = cio_test_case("task");
    CIO_TEST(tc, test_task_result_is_its_function_result_and_never_runs_inline);
    CIO_TEST(tc, test_task_error_becomes_its_future_error);
    CIO_TEST(tc, test_await_outside_a_task_fails_without_blocking);
    CIO_TEST(tc, test_await_works_inside_nested_calls);
    CIO_TEST(tc, test_await_rejects_own_future_foreign_loop_and_null);
    CIO_TEST(tc, test_sleep_zero_yields_so_tasks_alternate);
    CIO_TEST(tc, test_sleep_suspends_for_at_least_the_delay);
    CIO_TEST(tc, test_cancellation_at_each_await_point);
    CIO_TEST(tc, test_cancelled_task_may_catch_it_and_go_on);
    CIO_TEST(tc, test_task_cancelled_before_start_never_runs);
    CIO_TEST(tc, test_self_cancel_cancels_the_next_await);
    CIO_TEST(tc, test_cancel_during_sleep_wakes_the_task_and_drops_its_timer);
    CIO_TEST(tc, test_task_can_await_another_task);
    CIO_TEST(tc, test_ten_thousand_live_tasks_all_finish_with_their_results);
    CIO_TEST(tc, test_task_factory_is_used_and_can_be_reset);
    CIO_TEST(tc, test_task_names_default_and_custom);
    CIO_TEST(tc, test_task_future_refuses_set_result_and_bad_creation);
    CIO_TEST(tc, test_stack_size_is_configurable_per_task);
    CIO_TEST(tc, test_stack_overflow_hits_the_guard_page_and_crashes);
    CIO_TEST(tc, test_closing_a_loop_unwinds_pending_tasks_and_reports_them);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
