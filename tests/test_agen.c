/*
 * tests/test_agen.c: asynchronous generators. Values arrive through anext in
 * lockstep with the body, exhaustion and errors end the iteration, aclose
 * raises GeneratorExit in a suspended yield, and open generators are closed by
 * cio_loop_shutdown_asyncgens(), by cio_run() and by dropping the last
 * reference.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "testutil.h"

/* Run exactly one loop iteration: stop() before run_forever() does that. */
static void run_one_iteration(cio_loop_t *loop)
{
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

static void run_iterations(cio_loop_t *loop, int n)
{
    for (int i = 0; i < n; i++)
        run_one_iteration(loop);
}

/*
 * A counting generator: yields 1, 2, ... @c limit, then returns @c end_error
 * (0: plain exhaustion). When a yield returns non-zero (a close) it records
 * that, optionally yields once more, runs a cleanup that awaits, and returns
 * @c close_error, or else what the yield returned.
 */
typedef struct counter {
    int limit;
    cio_future_t *gate; /* awaited before the first yield when set */
    int end_error;
    int close_error;
    bool yield_again;
    int entered;    /* steps begun: counted before each yield */
    int exit_rc;    /* the non-zero value a yield returned, 0 if none */
    int cleanup_rc; /* what the cleanup's await returned */
    bool cleaned;
} counter_t;

static int counter_body(cio_agen_t *gen, void *arg)
{
    counter_t *c = arg;
    for (int i = 1; i <= c->limit; i++) {
        c->entered++;
        if (c->gate && i == 1)
            cio_await(c->gate, NULL);
        int rc = cio_agen_yield(gen, (void *)(intptr_t)i);
        if (rc != 0) {
            c->exit_rc = rc;
            if (c->yield_again)
                cio_agen_yield(gen, (void *)(intptr_t)-1);
            c->cleanup_rc = cio_sleep(0);
            c->cleaned = true;
            return c->close_error ? c->close_error : rc;
        }
    }
    return c->end_error;
}

static cio_agen_t *new_counter(cio_loop_t *loop, counter_t *c)
{
    cio_agen_t *gen = cio_agen_new(loop, counter_body, c, NULL);
    ck_assert_ptr_nonnull(gen);
    return gen;
}

/* Ask for the next value and run the loop until it is there; returns the outcome. */
static int next_value(cio_loop_t *loop, cio_agen_t *gen, intptr_t *value)
{
    cio_future_t *fut = cio_agen_anext(gen);
    ck_assert_ptr_nonnull(fut);
    void *v = NULL;
    int rc = cio_loop_run_until_complete(loop, fut, &v);
    cio_future_unref(fut);
    if (value)
        *value = (intptr_t)v;
    return rc;
}

/* Close the generator and run the loop until that is done; returns the outcome. */
static int close_gen(cio_loop_t *loop, cio_agen_t *gen)
{
    cio_future_t *fut = cio_agen_aclose(gen);
    ck_assert_ptr_nonnull(fut);
    int rc = cio_loop_run_until_complete(loop, fut, NULL);
    cio_future_unref(fut);
    return rc;
}

/* What a custom exception handler was told. */
typedef struct report {
    int calls;
    int error;
    char message[256];
} report_t;

static int record_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    report_t *r = arg;
    r->calls++;
    r->error = ctx->error;
    snprintf(r->message, sizeof(r->message), "%s", ctx->message);
    return 0;
}

/* ---- iteration ------------------------------------------------------------- */

/* A consumer task awaiting anext five times. */
typedef struct consumer {
    cio_agen_t *gen;
    int rc[5];
    intptr_t value[5];
} consumer_t;

static int consumer_fn(void *arg, void **result)
{
    consumer_t *c = arg;
    for (int i = 0; i < 5; i++) {
        cio_future_t *fut = cio_agen_anext(c->gen);
        void *v = NULL;
        c->rc[i] = fut ? cio_await(fut, &v) : -ENOMEM;
        c->value[i] = (intptr_t)v;
        cio_future_unref(fut);
    }
    return 0;
}

/* 1, 2, 3, then CIO_ESTOPASYNCITERATION for this anext and every later one. */
START_TEST(test_agen_yields_values_then_stop_async_iteration)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3};
    consumer_t con = {.gen = new_counter(loop, &c)};
    cio_task_t *t = cio_loop_create_task(loop, consumer_fn, &con, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, cio_task_future(t), NULL), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(con.rc[i], 0);
        ck_assert_int_eq(con.value[i], i + 1);
    }
    ck_assert_int_eq(con.rc[3], CIO_ESTOPASYNCITERATION);
    ck_assert_int_eq(con.rc[4], CIO_ESTOPASYNCITERATION);
    ck_assert_int_eq(c.exit_rc, 0);
    cio_task_unref(t);
    cio_agen_unref(con.gen);
    cio_loop_free(loop);
}
END_TEST

/* The body waits for the first anext, then runs only up to its next yield. */
START_TEST(test_agen_body_runs_in_lockstep_with_anext)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3};
    cio_agen_t *gen = new_counter(loop, &c);
    run_iterations(loop, 3);
    ck_assert_int_eq(c.entered, 0);
    intptr_t v = 0;
    ck_assert_int_eq(next_value(loop, gen, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(c.entered, 1);
    run_iterations(loop, 3);
    ck_assert_int_eq(c.entered, 1);
    ck_assert_int_eq(next_value(loop, gen, &v), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(c.entered, 2);
    ck_assert_int_eq(close_gen(loop, gen), 0);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* A body returning an error fails the pending anext with it; the generator is then done. */
START_TEST(test_agen_body_error_fails_pending_anext)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 1, .end_error = -EPROTO};
    cio_agen_t *gen = new_counter(loop, &c);
    intptr_t v = 0;
    ck_assert_int_eq(next_value(loop, gen, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(next_value(loop, gen, NULL), -EPROTO);
    ck_assert_int_eq(next_value(loop, gen, NULL), CIO_ESTOPASYNCITERATION);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* A second anext while the first is in progress fails with CIO_EAGENRUNNING. */
START_TEST(test_agen_anext_while_another_pending_is_eagenrunning)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *gate = cio_loop_create_future(loop);
    counter_t c = {.limit = 1, .gate = gate};
    cio_agen_t *gen = new_counter(loop, &c);
    cio_future_t *first = cio_agen_anext(gen);
    ck_assert_ptr_nonnull(first);
    run_one_iteration(loop); /* the body now awaits the gate before its yield */
    ck_assert_int_eq(c.entered, 1);
    cio_future_t *second = cio_agen_anext(gen);
    ck_assert_ptr_nonnull(second);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, second, NULL), CIO_EAGENRUNNING);
    ck_assert(!cio_future_done(first));
    ck_assert_int_eq(cio_future_set_result(gate, NULL), 0);
    void *v = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, first, &v), 0);
    ck_assert_int_eq((intptr_t)v, 1);
    ck_assert_int_eq(close_gen(loop, gen), 0);
    cio_future_unref(first);
    cio_future_unref(second);
    cio_future_unref(gate);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* ---- closing --------------------------------------------------------------- */

/* aclose: the yield returns CIO_EGENERATOREXIT, the body cleans up, the close succeeds. */
START_TEST(test_agen_aclose_raises_generator_exit_in_suspended_yield)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3, .cleanup_rc = 1};
    cio_agen_t *gen = new_counter(loop, &c);
    ck_assert_int_eq(next_value(loop, gen, NULL), 0);
    cio_future_t *closing = cio_agen_aclose(gen);
    ck_assert_ptr_nonnull(closing);
    ck_assert(!c.cleaned); /* not run inside the call */
    void *res = &c;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, closing, &res), 0);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(c.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(c.cleaned);
    ck_assert_int_eq(c.cleanup_rc, 0);
    ck_assert_int_eq(c.entered, 1);
    ck_assert_int_eq(next_value(loop, gen, NULL), CIO_ESTOPASYNCITERATION);
    cio_future_unref(closing);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* A body that yields again after CIO_EGENERATOREXIT makes aclose fail with it. */
START_TEST(test_agen_yield_after_generator_exit_fails_aclose)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3, .yield_again = true};
    cio_agen_t *gen = new_counter(loop, &c);
    ck_assert_int_eq(next_value(loop, gen, NULL), 0);
    ck_assert_int_eq(close_gen(loop, gen), CIO_EGENERATOREXIT);
    ck_assert_int_eq(c.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(c.cleaned);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* Closing a generator never started completes at once; its body never runs. */
START_TEST(test_agen_aclose_of_unstarted_generator_never_runs_body)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3};
    cio_agen_t *gen = new_counter(loop, &c);
    cio_future_t *closing = cio_agen_aclose(gen);
    ck_assert_ptr_nonnull(closing);
    run_one_iteration(loop);
    ck_assert(cio_future_done(closing));
    ck_assert_int_eq(cio_future_result(closing, NULL), 0);
    ck_assert_int_eq(next_value(loop, gen, NULL), CIO_ESTOPASYNCITERATION);
    run_iterations(loop, 3);
    ck_assert_int_eq(c.entered, 0);
    cio_future_unref(closing);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

/* shutdown_asyncgens closes every started, open generator, and only those. */
START_TEST(test_shutdown_asyncgens_closes_every_started_open_generator)
{
    cio_loop_t *loop = cio_loop_new();
    report_t report = {0};
    cio_loop_set_exception_handler(loop, record_handler, &report);
    counter_t a = {.limit = 3}, b = {.limit = 3}, unstarted = {.limit = 3}, done = {.limit = 1};
    cio_agen_t *ga = new_counter(loop, &a), *gb = new_counter(loop, &b);
    cio_agen_t *gu = new_counter(loop, &unstarted), *gd = new_counter(loop, &done);
    ck_assert_int_eq(next_value(loop, ga, NULL), 0);
    ck_assert_int_eq(next_value(loop, gb, NULL), 0);
    ck_assert_int_eq(next_value(loop, gd, NULL), 0);
    ck_assert_int_eq(next_value(loop, gd, NULL), CIO_ESTOPASYNCITERATION);
    cio_future_t *shutdown = cio_loop_shutdown_asyncgens(loop);
    ck_assert_ptr_nonnull(shutdown);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, shutdown, NULL), 0);
    ck_assert_int_eq(a.exit_rc, CIO_EGENERATOREXIT);
    ck_assert_int_eq(b.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(a.cleaned && b.cleaned);
    ck_assert_int_eq(unstarted.entered, 0);
    ck_assert_int_eq(done.exit_rc, 0);
    ck_assert_int_eq(report.calls, 0);
    ck_assert_int_eq(next_value(loop, ga, NULL), CIO_ESTOPASYNCITERATION);
    cio_future_unref(shutdown);
    cio_agen_unref(ga);
    cio_agen_unref(gb);
    cio_agen_unref(gu);
    cio_agen_unref(gd);
    cio_loop_free(loop);
}
END_TEST

/* A body failing while it is closed is reported to the exception handler. */
START_TEST(test_shutdown_asyncgens_reports_failing_close_to_exception_handler)
{
    cio_loop_t *loop = cio_loop_new();
    report_t report = {0};
    cio_loop_set_exception_handler(loop, record_handler, &report);
    counter_t bad = {.limit = 3, .close_error = -EIO}, good = {.limit = 3};
    cio_agen_t *gbad = new_counter(loop, &bad), *ggood = new_counter(loop, &good);
    ck_assert_int_eq(next_value(loop, gbad, NULL), 0);
    ck_assert_int_eq(next_value(loop, ggood, NULL), 0);
    cio_future_t *shutdown = cio_loop_shutdown_asyncgens(loop);
    ck_assert_ptr_nonnull(shutdown);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, shutdown, NULL), 0);
    ck_assert_int_eq(report.calls, 1);
    ck_assert_int_eq(report.error, -EIO);
    ck_assert_msg(strstr(report.message, "closing of asynchronous generator") != NULL,
                  "message: %s", report.message);
    ck_assert_int_eq(bad.exit_rc, CIO_EGENERATOREXIT);
    ck_assert_int_eq(good.exit_rc, CIO_EGENERATOREXIT);
    cio_future_unref(shutdown);
    cio_agen_unref(gbad);
    cio_agen_unref(ggood);
    cio_loop_free(loop);
}
END_TEST

/* A main task that starts a generator, takes one value and leaves it suspended. */
typedef struct left_open {
    counter_t counter;
    cio_agen_t *gen;
    int first_rc;
} left_open_t;

static int leave_generator_open_fn(void *arg, void **result)
{
    left_open_t *l = arg;
    l->gen = cio_agen_new(cio_get_running_loop(), counter_body, &l->counter, NULL);
    if (!l->gen)
        return -ENOMEM;
    cio_future_t *fut = cio_agen_anext(l->gen);
    l->first_rc = fut ? cio_await(fut, NULL) : -ENOMEM;
    cio_future_unref(fut);
    return 0;
}

/* cio_run closes the generators left open by the main task. */
START_TEST(test_run_closes_generators_left_open)
{
    left_open_t l = {.counter = {.limit = 3}, .first_rc = 1};
    ck_assert_int_eq(cio_run(leave_generator_open_fn, &l, false, NULL), 0);
    ck_assert_ptr_nonnull(l.gen);
    ck_assert_int_eq(l.first_rc, 0);
    ck_assert_int_eq(l.counter.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(l.counter.cleaned);
    /* The main task's reference outlives the loop; dropping it now frees the generator. */
    cio_agen_unref(l.gen);
}
END_TEST

/* Dropping the last reference of a suspended generator closes it, then frees it. */
START_TEST(test_agen_unref_of_suspended_generator_closes_it)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3, .cleanup_rc = 1};
    cio_agen_t *gen = new_counter(loop, &c);
    ck_assert_int_eq(next_value(loop, gen, NULL), 0);
    cio_agen_unref(gen);
    ck_assert_int_eq(c.exit_rc, 0); /* not inside the call */
    run_iterations(loop, 10);
    ck_assert_int_eq(c.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(c.cleaned);
    ck_assert_int_eq(c.cleanup_rc, 0);
    ck_assert_int_eq(c.entered, 1);
    cio_loop_free(loop);
}
END_TEST

/* Dropping the last reference while an anext is pending: the pending anext
 * still gets its value, and the generator closes at that yield. */
START_TEST(test_agen_unref_with_anext_pending_closes_at_next_yield)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *gate = cio_loop_create_future(loop);
    counter_t c = {.limit = 3, .gate = gate, .cleanup_rc = 1};
    cio_agen_t *gen = new_counter(loop, &c);
    cio_future_t *fut = cio_agen_anext(gen);
    run_iterations(loop, 2); /* the body now waits on the gate */
    ck_assert_int_eq(c.entered, 1);
    cio_agen_unref(gen);
    cio_future_set_result(gate, NULL);
    void *v = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, 1);
    run_iterations(loop, 10);
    ck_assert_int_eq(c.exit_rc, CIO_EGENERATOREXIT);
    ck_assert(c.cleaned);
    ck_assert_int_eq(c.entered, 1);
    cio_future_unref(fut);
    cio_future_unref(gate);
    cio_loop_free(loop);
}
END_TEST

/* A task other than the body calling cio_agen_yield(). */
typedef struct intruder {
    cio_agen_t *gen;
    int rc;
} intruder_t;

static int intruder_fn(void *arg, void **result)
{
    intruder_t *in = arg;
    in->rc = cio_agen_yield(in->gen, NULL);
    return 0;
}

/* cio_agen_yield outside the generator's body is -EINVAL. */
START_TEST(test_agen_yield_outside_body_is_einval)
{
    cio_loop_t *loop = cio_loop_new();
    counter_t c = {.limit = 3};
    cio_agen_t *gen = new_counter(loop, &c);
    ck_assert_int_eq(cio_agen_yield(gen, NULL), -EINVAL); /* not started, not a task */
    ck_assert_int_eq(cio_agen_yield(NULL, NULL), -EINVAL);
    ck_assert_int_eq(next_value(loop, gen, NULL), 0);
    ck_assert_int_eq(cio_agen_yield(gen, NULL), -EINVAL); /* started, not a task */
    intruder_t in = {.gen = gen, .rc = 1};
    cio_task_t *t = cio_loop_create_task(loop, intruder_fn, &in, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, cio_task_future(t), NULL), 0);
    ck_assert_int_eq(in.rc, -EINVAL); /* a task, but not the body's */
    /* The generator was not disturbed: it goes on with its next value. */
    intptr_t v = 0;
    ck_assert_int_eq(next_value(loop, gen, &v), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(close_gen(loop, gen), 0);
    cio_task_unref(t);
    cio_agen_unref(gen);
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("agen");

    TCase *tc = cio_test_case("iteration");
    CIO_TEST(tc, test_agen_yields_values_then_stop_async_iteration);
    CIO_TEST(tc, test_agen_body_runs_in_lockstep_with_anext);
    CIO_TEST(tc, test_agen_body_error_fails_pending_anext);
    CIO_TEST(tc, test_agen_anext_while_another_pending_is_eagenrunning);
    CIO_TEST(tc, test_agen_yield_outside_body_is_einval);
    suite_add_tcase(s, tc);

    tc = cio_test_case("closing");
    CIO_TEST(tc, test_agen_aclose_raises_generator_exit_in_suspended_yield);
    CIO_TEST(tc, test_agen_yield_after_generator_exit_fails_aclose);
    CIO_TEST(tc, test_agen_aclose_of_unstarted_generator_never_runs_body);
    CIO_TEST(tc, test_shutdown_asyncgens_closes_every_started_open_generator);
    CIO_TEST(tc, test_shutdown_asyncgens_reports_failing_close_to_exception_handler);
    CIO_TEST(tc, test_run_closes_generators_left_open);
    CIO_TEST(tc, test_agen_unref_of_suspended_generator_closes_it);
    CIO_TEST(tc, test_agen_unref_with_anext_pending_closes_at_next_yield);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
