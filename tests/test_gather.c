/*
 * tests/test_gather.c: asyncio.gather, asyncio.wait_for (3.11) and
 * asyncio.run in C. Gather keeps argument order, fails at the first error or
 * collects errors as outcomes, and cancels its children when cancelled;
 * wait_for cancels the inner future at the timeout and waits for it; cio_run
 * runs a main task on a fresh loop and cleans up after it.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "testutil.h"

/* Run exactly one loop iteration: stop() before run_forever() does that. */
static void run_one_iteration(cio_loop_t *loop)
{
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

/*
 * A child task: sleeps @c delay seconds, then awaits @c gate if there is one,
 * then returns @c value or fails with @c error, completing @c release first.
 * When a wait is cancelled it records that, optionally spends @c cleanup
 * seconds cleaning up, and ends cancelled unless @c swallow_cancel says to
 * return @c value anyway. Gates make the order of completion certain where a
 * loaded machine could reorder sleeps.
 */
typedef struct child {
    double delay;
    cio_future_t *gate;
    cio_future_t *release;
    int error;
    void *value;
    double cleanup;
    bool swallow_cancel;
    cio_test_order_t *order; /* when set, @c id is appended when the child ends */
    int id;
    int await_rc;   /* what the sleep (then the gate) returned */
    int cleanup_rc; /* what the cleanup's sleep returned */
    bool finished;
} child_t;

static int child_fn(void *arg, void **result)
{
    child_t *c = arg;
    c->await_rc = cio_sleep(c->delay);
    if (c->await_rc == 0 && c->gate)
        c->await_rc = cio_await(c->gate, NULL);
    if (c->await_rc == -ECANCELED && c->cleanup > 0)
        c->cleanup_rc = cio_sleep(c->cleanup);
    c->finished = true;
    if (c->release)
        cio_future_set_result(c->release, NULL);
    if (c->order)
        c->order->v[c->order->n++] = c->id;
    if (c->await_rc == -ECANCELED && !c->swallow_cancel)
        return -ECANCELED;
    if (c->error)
        return c->error;
    *result = c->value;
    return 0;
}

/* Start @p c as a task; returns the task's future (one reference). */
static cio_future_t *spawn(cio_loop_t *loop, child_t *c)
{
    cio_task_t *t = cio_loop_create_task(loop, child_fn, c, NULL);
    ck_assert_ptr_nonnull(t);
    return cio_task_future(t);
}

/* A plain callback completing a future with a result or an error. */
typedef struct resolve {
    cio_future_t *fut;
    void *value;
    int error;
    const char *message;
} resolve_t;

static int resolve_cb(void *arg)
{
    resolve_t *r = arg;
    if (r->error)
        return cio_future_set_error(r->fut, r->error, r->message);
    return cio_future_set_result(r->fut, r->value);
}

/* ---- gather ---------------------------------------------------------------- */

/* Children finishing in reverse order still give their outcomes in argument order. */
START_TEST(test_gather_keeps_argument_order_when_children_finish_in_reverse)
{
    cio_loop_t *loop = cio_loop_new();
    cio_test_order_t order = {0};
    int values[3];
    child_t c[3];
    cio_future_t *futs[3];
    /* Child i also waits for child i + 1 to finish, whatever the scheduler does. */
    cio_future_t *gates[2] = {cio_loop_create_future(loop), cio_loop_create_future(loop)};
    for (int i = 0; i < 3; i++) {
        c[i] = (child_t){.delay = 0.03 - 0.01 * i, .value = &values[i], .order = &order, .id = i};
        c[i].gate = i < 2 ? gates[i] : NULL;
        c[i].release = i > 0 ? gates[i - 1] : NULL;
        futs[i] = spawn(loop, &c[i]);
    }
    cio_future_t *g = cio_gather(loop, futs, 3, NULL);
    ck_assert_ptr_nonnull(g);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, &res), 0);
    /* They did finish last to first... */
    ck_assert_int_eq(order.n, 3);
    ck_assert_int_eq(order.v[0], 2);
    ck_assert_int_eq(order.v[2], 0);
    /* ...and the outcomes are in the order they were given. */
    cio_outcome_t *out = res;
    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i].error, 0);
        ck_assert_ptr_eq(out[i].result, &values[i]);
        cio_future_unref(futs[i]);
    }
    cio_future_unref(gates[0]);
    cio_future_unref(gates[1]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* Plain futures completed by scheduled callbacks are gathered like tasks. */
START_TEST(test_gather_of_plain_futures_completed_by_callbacks)
{
    cio_loop_t *loop = cio_loop_new();
    int x = 1, y = 2;
    cio_future_t *futs[2] = {cio_loop_create_future(loop), cio_loop_create_future(loop)};
    resolve_t r0 = {.fut = futs[0], .value = &x};
    resolve_t r1 = {.fut = futs[1], .value = &y};
    ck_assert_int_eq(cio_loop_call_later(loop, 0.01, resolve_cb, &r0, NULL), 0);
    ck_assert_int_eq(cio_loop_call_soon(loop, resolve_cb, &r1, NULL), 0);
    cio_future_t *g = cio_gather(loop, futs, 2, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert(!cio_future_done(g));
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, &res), 0);
    cio_outcome_t *out = res;
    ck_assert_int_eq(out[0].error, 0);
    ck_assert_ptr_eq(out[0].result, &x);
    ck_assert_int_eq(out[1].error, 0);
    ck_assert_ptr_eq(out[1].result, &y);
    cio_future_unref(futs[0]);
    cio_future_unref(futs[1]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* Without return_exceptions the first error fails the gather while a sibling still runs. */
START_TEST(test_gather_first_error_fails_gather_while_sibling_still_runs)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    cio_future_t *hold = cio_loop_create_future(loop);
    child_t slow = {.gate = hold, .value = &value};
    cio_future_t *futs[2] = {cio_loop_create_future(loop), spawn(loop, &slow)};
    resolve_t fail = {.fut = futs[0], .error = -EIO, .message = "disk on fire"};
    ck_assert_int_eq(cio_loop_call_later(loop, 0.01, resolve_cb, &fail, NULL), 0);
    cio_future_t *g = cio_gather(loop, futs, 2, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), -EIO);
    ck_assert(!cio_future_cancelled(g));
    ck_assert_str_eq(cio_future_error_message(g), "disk on fire");
    /* The gather is done, the slow child is not, and it was not cancelled. */
    ck_assert(!cio_future_done(futs[1]));
    ck_assert(!slow.finished);
    ck_assert_int_eq(cio_future_set_result(hold, NULL), 0);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, futs[1], &res), 0);
    ck_assert_ptr_eq(res, &value);
    ck_assert_int_eq(slow.await_rc, 0);
    cio_future_unref(hold);
    cio_future_unref(futs[0]);
    cio_future_unref(futs[1]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* With return_exceptions, errors and cancellations are outcomes and the gather succeeds. */
START_TEST(test_gather_return_exceptions_collects_errors_and_cancellations)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t ok = {.delay = 0.01, .value = &value};
    child_t bad = {.delay = 0.01, .error = -EPIPE};
    child_t doomed = {.delay = 10};
    cio_future_t *futs[3] = {spawn(loop, &ok), spawn(loop, &bad), spawn(loop, &doomed)};
    cio_gather_opts_t opts = {.return_exceptions = true};
    cio_future_t *g = cio_gather(loop, futs, 3, &opts);
    ck_assert_ptr_nonnull(g);
    run_one_iteration(loop);
    ck_assert(cio_future_cancel(futs[2], NULL));
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, &res), 0);
    ck_assert(!cio_future_cancelled(g));
    cio_outcome_t *out = res;
    ck_assert_int_eq(out[0].error, 0);
    ck_assert_ptr_eq(out[0].result, &value);
    ck_assert_int_eq(out[1].error, -EPIPE);
    ck_assert_int_eq(out[2].error, -ECANCELED);
    ck_assert_int_eq(doomed.await_rc, -ECANCELED);
    for (int i = 0; i < 3; i++)
        cio_future_unref(futs[i]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* Cancelling the gather cancels each child not yet done; the gather ends cancelled. */
START_TEST(test_gather_cancel_cancels_pending_children)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t a = {.delay = 10}, b = {.delay = 10};
    cio_future_t *futs[3] = {cio_loop_create_future(loop), spawn(loop, &a), spawn(loop, &b)};
    ck_assert_int_eq(cio_future_set_result(futs[0], &value), 0);
    cio_future_t *g = cio_gather(loop, futs, 3, NULL);
    ck_assert_ptr_nonnull(g);
    run_one_iteration(loop); /* both tasks are now in their sleep */
    ck_assert(cio_future_cancel(g, "stop"));
    ck_assert(!cio_future_done(g));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(g));
    ck_assert_int_eq(a.await_rc, -ECANCELED);
    ck_assert_int_eq(b.await_rc, -ECANCELED);
    ck_assert(cio_future_cancelled(futs[1]));
    ck_assert(cio_future_cancelled(futs[2]));
    /* The child that was already done keeps its result. */
    ck_assert(!cio_future_cancelled(futs[0]));
    for (int i = 0; i < 3; i++)
        cio_future_unref(futs[i]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* With return_exceptions, a cancelled gather waits for a child's slow cleanup. */
START_TEST(test_gather_cancelled_ends_only_after_every_child_is_done)
{
    cio_loop_t *loop = cio_loop_new();
    child_t quick = {.delay = 10};
    child_t slow = {.delay = 10, .cleanup = 0.02};
    cio_future_t *futs[2] = {spawn(loop, &quick), spawn(loop, &slow)};
    cio_gather_opts_t opts = {.return_exceptions = true};
    cio_future_t *g = cio_gather(loop, futs, 2, &opts);
    ck_assert_ptr_nonnull(g);
    run_one_iteration(loop);
    ck_assert(cio_future_cancel(g, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(g));
    ck_assert(slow.finished);
    ck_assert_int_eq(slow.cleanup_rc, 0);
    ck_assert(cio_future_done(futs[1]));
    ck_assert_int_eq(quick.await_rc, -ECANCELED);
    ck_assert_int_eq(slow.await_rc, -ECANCELED);
    cio_future_unref(futs[0]);
    cio_future_unref(futs[1]);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* A gather of nothing is done at once with an empty result, as asyncio.gather(). */
START_TEST(test_gather_of_zero_futures_completes_with_empty_result)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *g = cio_gather(loop, NULL, 0, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert(cio_future_done(g));
    ck_assert_int_eq(cio_future_result(g, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, g, NULL), 0);
    cio_future_unref(g);
    cio_loop_free(loop);
}
END_TEST

/* A NULL entry or another loop's future makes gather return NULL, touching nothing. */
START_TEST(test_gather_rejects_null_entry_and_foreign_future)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_t *other = cio_loop_new();
    cio_future_t *mine = cio_loop_create_future(loop);
    cio_future_t *theirs = cio_loop_create_future(other);
    cio_future_t *with_null[2] = {mine, NULL};
    cio_future_t *with_foreign[2] = {mine, theirs};
    ck_assert_ptr_null(cio_gather(loop, with_null, 2, NULL));
    ck_assert_ptr_null(cio_gather(loop, with_foreign, 2, NULL));
    /* Nothing was registered on the valid future: completing it runs no callback. */
    ck_assert_int_eq(cio_future_set_result(mine, NULL), 0);
    run_one_iteration(loop);
    cio_loop_stats_t stats;
    cio_loop_get_stats(loop, &stats);
    ck_assert_uint_eq(stats.callbacks, 0);
    cio_future_unref(mine);
    cio_future_unref(theirs);
    cio_loop_free(other);
    cio_loop_free(loop);
}
END_TEST

/* ---- wait_for -------------------------------------------------------------- */

/* An inner task finishing before the timeout gives the outer future its result. */
START_TEST(test_wait_for_returns_result_when_inner_finishes_first)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t c = {.delay = 0.01, .value = &value};
    cio_future_t *inner = spawn(loop, &c);
    cio_future_t *outer = cio_wait_for(inner, 5.0);
    ck_assert_ptr_nonnull(outer);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, &res), 0);
    ck_assert_ptr_eq(res, &value);
    ck_assert_int_eq(c.await_rc, 0);
    ck_assert(!cio_future_cancelled(inner));
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* At the timeout the inner task is cancelled, then the outer fails with -ETIMEDOUT. */
START_TEST(test_wait_for_timeout_cancels_inner_and_fails_with_etimedout)
{
    cio_loop_t *loop = cio_loop_new();
    child_t c = {.delay = 10};
    cio_future_t *inner = spawn(loop, &c);
    double start = cio_loop_time(loop);
    cio_future_t *outer = cio_wait_for(inner, 0.02);
    ck_assert_ptr_nonnull(outer);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, NULL), -ETIMEDOUT);
    ck_assert(!cio_future_cancelled(outer));
    ck_assert(cio_loop_time(loop) - start >= 0.02 - 1e-3);
    ck_assert_int_eq(c.await_rc, -ECANCELED);
    /* As in 3.11, the outer future waited for the inner one to finish. */
    ck_assert(cio_future_cancelled(inner));
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* An inner task that catches the cancellation and returns a result wins over the timeout. */
START_TEST(test_wait_for_inner_ignoring_cancellation_gives_its_result)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t c = {.delay = 10, .cleanup = 0.01, .swallow_cancel = true, .value = &value};
    cio_future_t *inner = spawn(loop, &c);
    cio_future_t *outer = cio_wait_for(inner, 0.01);
    ck_assert_ptr_nonnull(outer);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, &res), 0);
    ck_assert_ptr_eq(res, &value);
    ck_assert_int_eq(c.await_rc, -ECANCELED);
    ck_assert(c.finished);
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* Cancelling the outer future cancels the inner one; the outer ends cancelled after it. */
START_TEST(test_wait_for_cancel_outer_cancels_inner)
{
    cio_loop_t *loop = cio_loop_new();
    child_t c = {.delay = 10, .cleanup = 0.01};
    cio_future_t *inner = spawn(loop, &c);
    cio_future_t *outer = cio_wait_for(inner, 10);
    ck_assert_ptr_nonnull(outer);
    run_one_iteration(loop); /* the inner task is now in its sleep */
    ck_assert(cio_future_cancel(outer, "enough"));
    ck_assert(!cio_future_done(outer));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(outer));
    ck_assert_int_eq(c.await_rc, -ECANCELED);
    ck_assert(c.finished);
    ck_assert(cio_future_cancelled(inner));
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* Once the outer future is cancelled it ends cancelled, even if the inner one ignores it. */
START_TEST(test_wait_for_cancelled_outer_stays_cancelled_when_inner_ignores_it)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t c = {.delay = 10, .swallow_cancel = true, .value = &value};
    cio_future_t *inner = spawn(loop, &c);
    cio_future_t *outer = cio_wait_for(inner, 10);
    ck_assert_ptr_nonnull(outer);
    run_one_iteration(loop);
    ck_assert(cio_future_cancel(outer, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(outer));
    ck_assert_int_eq(c.await_rc, -ECANCELED);
    void *res = NULL;
    ck_assert_int_eq(cio_future_result(inner, &res), 0);
    ck_assert_ptr_eq(res, &value);
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* A zero timeout on a done future gives that future's result. */
START_TEST(test_wait_for_zero_timeout_on_done_future_gives_result)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    cio_future_t *inner = cio_loop_create_future(loop);
    ck_assert_int_eq(cio_future_set_result(inner, &value), 0);
    cio_future_t *outer = cio_wait_for(inner, 0);
    ck_assert_ptr_nonnull(outer);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, &res), 0);
    ck_assert_ptr_eq(res, &value);
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* A zero timeout on a pending future cancels it and times out (asyncio 3.11). */
START_TEST(test_wait_for_zero_timeout_on_pending_future_times_out)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *inner = cio_loop_create_future(loop);
    cio_future_t *outer = cio_wait_for(inner, 0);
    ck_assert_ptr_nonnull(outer);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, NULL), -ETIMEDOUT);
    ck_assert(cio_future_cancelled(inner));
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* An infinite timeout never times out: the outer gets the inner's result. */
START_TEST(test_wait_for_infinite_timeout_never_times_out)
{
    cio_loop_t *loop = cio_loop_new();
    int value = 0;
    child_t c = {.delay = 0.03, .value = &value};
    cio_future_t *inner = spawn(loop, &c);
    cio_future_t *outer = cio_wait_for(inner, INFINITY);
    ck_assert_ptr_nonnull(outer);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, outer, &res), 0);
    ck_assert_ptr_eq(res, &value);
    ck_assert_int_eq(c.await_rc, 0);
    cio_future_unref(outer);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* A NaN timeout (or a NULL future) is rejected with NULL. */
START_TEST(test_wait_for_nan_timeout_returns_null)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *inner = cio_loop_create_future(loop);
    ck_assert_ptr_null(cio_wait_for(inner, NAN));
    ck_assert_ptr_null(cio_wait_for(NULL, 1.0));
    /* The future was left alone: it is still pending and can complete. */
    ck_assert(!cio_future_done(inner));
    ck_assert_int_eq(cio_future_set_result(inner, NULL), 0);
    cio_future_unref(inner);
    cio_loop_free(loop);
}
END_TEST

/* ---- cio_run --------------------------------------------------------------- */

static int return_token_fn(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int return_error_fn(void *arg, void **result)
{
    return -EPIPE;
}

/* cio_run returns the main task's result... */
START_TEST(test_run_returns_main_task_result)
{
    int token = 0;
    void *res = NULL;
    ck_assert_int_eq(cio_run(return_token_fn, &token, false, &res), 0);
    ck_assert_ptr_eq(res, &token);
}
END_TEST

/* ...and its error. */
START_TEST(test_run_returns_main_task_error)
{
    ck_assert_int_eq(cio_run(return_error_fn, NULL, false, NULL), -EPIPE);
}
END_TEST

/* A background task: sleeps forever, then records how it ended and cleans up. */
typedef struct background {
    int sleep_rc;
    int cleanup_rc;
    bool cleaned_up;
    int fail_with; /* returned after the cleanup instead of the sleep's outcome */
} background_t;

static int background_fn(void *arg, void **result)
{
    background_t *b = arg;
    b->sleep_rc = cio_sleep(INFINITY);
    b->cleanup_rc = cio_sleep(0); /* the cleanup may still await */
    b->cleaned_up = true;
    return b->fail_with ? b->fail_with : b->sleep_rc;
}

/* A main task that starts background_fn(arg), lets it start, and returns. */
static int spawn_background_fn(void *arg, void **result)
{
    cio_task_t *t = cio_loop_create_task(cio_get_running_loop(), background_fn, arg, NULL);
    if (!t)
        return -ENOMEM;
    cio_task_unref(t);
    return cio_sleep(0);
}

/* Tasks still pending when the main task ends are cancelled and awaited. */
START_TEST(test_run_cancels_pending_background_task_at_shutdown)
{
    background_t b = {.sleep_rc = 1, .cleanup_rc = 1};
    ck_assert_int_eq(cio_run(spawn_background_fn, &b, false, NULL), 0);
    ck_assert_int_eq(b.sleep_rc, -ECANCELED);
    ck_assert_int_eq(b.cleanup_rc, 0);
    ck_assert(b.cleaned_up);
}
END_TEST

/* What the main task saw of the loops. */
typedef struct seen_loops {
    cio_loop_t *running;
    cio_loop_t *current;
    bool debug;
} seen_loops_t;

static int look_at_loops_fn(void *arg, void **result)
{
    seen_loops_t *s = arg;
    s->running = cio_get_running_loop();
    s->current = cio_get_event_loop(NULL);
    s->debug = s->running && cio_loop_get_debug(s->running);
    return 0;
}

/* Inside, the new loop runs; afterwards no loop runs and, as after asyncio.run()
 * (which calls set_event_loop(None)), the main thread has no current loop. */
START_TEST(test_run_leaves_no_running_loop_behind)
{
    seen_loops_t s = {0};
    ck_assert_ptr_null(cio_get_running_loop());
    ck_assert_int_eq(cio_run(look_at_loops_fn, &s, false, NULL), 0);
    ck_assert_ptr_nonnull(s.running);
    ck_assert_ptr_eq(s.current, s.running);
    ck_assert_ptr_null(cio_get_running_loop());
    int err = 0;
    ck_assert_ptr_null(cio_get_event_loop(&err));
    ck_assert_msg(err == CIO_ENOPOLICYLOOP, "%s", cio_err_name(err));
    /* A loop set by hand is the next one. */
    cio_loop_t *next = cio_loop_new();
    ck_assert_int_eq(cio_set_event_loop(next), 0);
    ck_assert_ptr_eq(cio_get_event_loop(NULL), next);
    cio_set_event_loop(NULL);
    cio_loop_free(next);
}
END_TEST

/* A policy that records every set_event_loop() call. */
typedef struct recording_policy {
    cio_loop_t *current;
    cio_loop_t *set[4];
    int nset;
    int nnew;
} recording_policy_t;

static cio_loop_t *rec_get_event_loop(void *data, int *err)
{
    recording_policy_t *p = data;
    if (!p->current)
        *err = CIO_ENOPOLICYLOOP;
    return p->current;
}

static int rec_set_event_loop(void *data, cio_loop_t *loop)
{
    recording_policy_t *p = data;
    if (p->nset < 4)
        p->set[p->nset++] = loop;
    p->current = loop;
    return 0;
}

static cio_loop_t *rec_new_event_loop(void *data)
{
    recording_policy_t *p = data;
    p->nnew++;
    return cio_loop_new();
}

/* cio_run gets its loop from the policy, makes it current, and clears it at the end. */
START_TEST(test_run_sets_then_clears_current_loop)
{
    recording_policy_t rec = {0};
    cio_policy_t policy = {rec_get_event_loop, rec_set_event_loop, rec_new_event_loop, &rec};
    ck_assert_int_eq(cio_set_event_loop_policy(&policy), 0);
    seen_loops_t s = {0};
    ck_assert_int_eq(cio_run(look_at_loops_fn, &s, false, NULL), 0);
    ck_assert_int_eq(cio_set_event_loop_policy(NULL), 0);
    ck_assert_int_eq(rec.nnew, 1);
    ck_assert_int_ge(rec.nset, 2);
    ck_assert_ptr_eq(rec.set[0], s.running);
    ck_assert_ptr_null(rec.set[rec.nset - 1]);
    ck_assert_ptr_null(rec.current);
}
END_TEST

/* The debug flag sets the new loop's debug mode. */
START_TEST(test_run_debug_flag_sets_loop_debug_mode)
{
    seen_loops_t on = {0}, off = {.debug = true};
    ck_assert_int_eq(cio_run(look_at_loops_fn, &on, true, NULL), 0);
    ck_assert(on.debug);
    ck_assert_int_eq(cio_run(look_at_loops_fn, &off, false, NULL), 0);
    ck_assert(!off.debug);
}
END_TEST

static int mark_ran_fn(void *arg, void **result)
{
    *(bool *)arg = true;
    return 0;
}

typedef struct nested_run {
    cio_loop_t *loop;
    bool ran;
    int rc;
} nested_run_t;

static int nested_run_cb(void *arg)
{
    nested_run_t *n = arg;
    n->rc = cio_run(mark_ran_fn, &n->ran, false, NULL);
    cio_loop_stop(n->loop);
    return 0;
}

/* cio_run inside a running loop fails with CIO_EOTHERLOOP and runs nothing. */
START_TEST(test_run_inside_running_loop_returns_eotherloop)
{
    cio_loop_t *loop = cio_loop_new();
    nested_run_t n = {.loop = loop, .rc = 1};
    ck_assert_int_eq(cio_loop_call_soon(loop, nested_run_cb, &n, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(n.rc, CIO_EOTHERLOOP);
    ck_assert(!n.ran);
    cio_loop_free(loop);
}
END_TEST

/* A background task failing instead of being cancelled at shutdown is logged. */
START_TEST(test_run_reports_background_task_failing_at_shutdown)
{
    cio_test_log_t log;
    background_t b = {.fail_with = -EIO};
    cio_test_capture_log(&log);
    int rc = cio_run(spawn_background_fn, &b, false, NULL);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    ck_assert_int_eq(rc, 0);
    ck_assert(b.cleaned_up);
    ck_assert_msg(strstr(log.text, "unhandled error during cio_run() shutdown") != NULL, "log: %s",
                  log.text);
    ck_assert_int_eq(log.last_level, CIO_LOG_ERROR);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("gather");

    TCase *tc = cio_test_case("gather");
    CIO_TEST(tc, test_gather_keeps_argument_order_when_children_finish_in_reverse);
    CIO_TEST(tc, test_gather_of_plain_futures_completed_by_callbacks);
    CIO_TEST(tc, test_gather_first_error_fails_gather_while_sibling_still_runs);
    CIO_TEST(tc, test_gather_return_exceptions_collects_errors_and_cancellations);
    CIO_TEST(tc, test_gather_cancel_cancels_pending_children);
    CIO_TEST(tc, test_gather_cancelled_ends_only_after_every_child_is_done);
    CIO_TEST(tc, test_gather_of_zero_futures_completes_with_empty_result);
    CIO_TEST(tc, test_gather_rejects_null_entry_and_foreign_future);
    suite_add_tcase(s, tc);

    tc = cio_test_case("wait_for");
    CIO_TEST(tc, test_wait_for_returns_result_when_inner_finishes_first);
    CIO_TEST(tc, test_wait_for_timeout_cancels_inner_and_fails_with_etimedout);
    CIO_TEST(tc, test_wait_for_inner_ignoring_cancellation_gives_its_result);
    CIO_TEST(tc, test_wait_for_cancel_outer_cancels_inner);
    CIO_TEST(tc, test_wait_for_cancelled_outer_stays_cancelled_when_inner_ignores_it);
    CIO_TEST(tc, test_wait_for_zero_timeout_on_done_future_gives_result);
    CIO_TEST(tc, test_wait_for_zero_timeout_on_pending_future_times_out);
    CIO_TEST(tc, test_wait_for_infinite_timeout_never_times_out);
    CIO_TEST(tc, test_wait_for_nan_timeout_returns_null);
    suite_add_tcase(s, tc);

    tc = cio_test_case("run");
    CIO_TEST(tc, test_run_returns_main_task_result);
    CIO_TEST(tc, test_run_returns_main_task_error);
    CIO_TEST(tc, test_run_cancels_pending_background_task_at_shutdown);
    CIO_TEST(tc, test_run_leaves_no_running_loop_behind);
    CIO_TEST(tc, test_run_sets_then_clears_current_loop);
    CIO_TEST(tc, test_run_debug_flag_sets_loop_debug_mode);
    CIO_TEST(tc, test_run_inside_running_loop_returns_eotherloop);
    CIO_TEST(tc, test_run_reports_background_task_failing_at_shutdown);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
