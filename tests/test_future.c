/*
 * tests/test_future.c: asyncio's Future in C. States and their transitions,
 * done callbacks (scheduled, never inline, in registration order), reference
 * counting around scheduled callbacks, and run_until_complete.
 */
#include <errno.h>
#include <stdio.h>

#include "testutil.h"

/* Run exactly one loop iteration: stop() before run_forever() does that. */
static void run_one_iteration(cio_loop_t *loop)
{
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

/* A done callback that counts its calls in the int at @p arg. */
static int count_cb(cio_future_t *fut, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

/* Another done callback, distinguishable from count_cb: adds 10. */
static int bump_cb(cio_future_t *fut, void *arg)
{
    *(int *)arg += 10;
    return 0;
}

/* A done callback appending its id to an order recorder. */
typedef struct mark {
    cio_test_order_t *order;
    int id;
} mark_t;

static int mark_cb(cio_future_t *fut, void *arg)
{
    mark_t *m = arg;
    m->order->v[m->order->n++] = m->id;
    return 0;
}

/* What a done callback saw of its future. */
typedef struct seen {
    int calls;
    cio_future_t *fut;
    void *arg;
    bool done;
    int rc;
    void *result;
} seen_t;

static int seen_cb(cio_future_t *fut, void *arg)
{
    seen_t *s = arg;
    s->calls++;
    s->fut = fut;
    s->arg = arg;
    s->done = cio_future_done(fut);
    s->rc = cio_future_result(fut, &s->result);
    return 0;
}

/* A plain callback completing a future the way @p how says. */
typedef struct resolve {
    cio_future_t *fut;
    enum { RESOLVE_RESULT, RESOLVE_ERROR, RESOLVE_CANCEL } how;
    void *result;
} resolve_t;

static int resolve_cb(void *arg)
{
    resolve_t *r = arg;
    switch (r->how) {
    case RESOLVE_RESULT:
        return cio_future_set_result(r->fut, r->result);
    case RESOLVE_ERROR:
        return cio_future_set_error(r->fut, -ECONNREFUSED, "refused");
    case RESOLVE_CANCEL:
        cio_future_cancel(r->fut, NULL);
        return 0;
    }
    return -EINVAL;
}

/* A new future is pending: no outcome can be read yet. */
START_TEST(test_future_new_is_pending)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    ck_assert_ptr_nonnull(fut);
    ck_assert_ptr_eq(cio_future_get_loop(fut), loop);
    ck_assert(!cio_future_done(fut));
    ck_assert(!cio_future_cancelled(fut));
    void *out = &out;
    ck_assert_int_eq(cio_future_result(fut, &out), CIO_EINVALIDSTATE);
    ck_assert_ptr_eq(out, &out);
    ck_assert_int_eq(cio_future_error(fut), CIO_EINVALIDSTATE);
    ck_assert_ptr_null(cio_future_error_message(fut));
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* set_result() makes the future done with that pointer as its result. */
START_TEST(test_future_set_result_makes_result_available)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int token;
    void *out = NULL;
    ck_assert_int_eq(cio_future_set_result(fut, &token), 0);
    ck_assert(cio_future_done(fut));
    ck_assert(!cio_future_cancelled(fut));
    ck_assert_int_eq(cio_future_result(fut, &out), 0);
    ck_assert_ptr_eq(out, &token);
    ck_assert_int_eq(cio_future_result(fut, NULL), 0);
    ck_assert_int_eq(cio_future_error(fut), 0);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A future is done exactly once; later outcomes are refused, the first kept. */
START_TEST(test_future_set_result_twice_fails)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int first, second;
    void *out = NULL;
    ck_assert_int_eq(cio_future_set_result(fut, &first), 0);
    ck_assert_int_eq(cio_future_set_result(fut, &second), CIO_EINVALIDSTATE);
    ck_assert_int_eq(cio_future_set_error(fut, -EIO, "late"), CIO_EINVALIDSTATE);
    ck_assert_int_eq(cio_future_result(fut, &out), 0);
    ck_assert_ptr_eq(out, &first);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* set_error() keeps the code and its own copy of the message. */
START_TEST(test_future_set_error_stores_code_and_copied_message)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    char message[] = "connection refused";
    ck_assert_int_eq(cio_future_set_error(fut, -ECONNREFUSED, message), 0);
    /* The future copied the message: changing the caller's buffer is harmless. */
    memset(message, 'x', sizeof(message) - 1);
    ck_assert(cio_future_done(fut));
    ck_assert(!cio_future_cancelled(fut));
    ck_assert_int_eq(cio_future_error(fut), -ECONNREFUSED);
    ck_assert_int_eq(cio_future_result(fut, NULL), -ECONNREFUSED);
    ck_assert_str_eq(cio_future_error_message(fut), "connection refused");
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Errors are negative, and cancellation has its own call, so these are -EINVAL. */
START_TEST(test_future_set_error_rejects_non_negative_and_ecanceled)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    ck_assert_int_eq(cio_future_set_error(fut, 0, "zero"), -EINVAL);
    ck_assert_int_eq(cio_future_set_error(fut, EIO, "positive"), -EINVAL);
    ck_assert_int_eq(cio_future_set_error(fut, -ECANCELED, "cancel"), -EINVAL);
    ck_assert(!cio_future_done(fut));
    ck_assert_int_eq(cio_future_error(fut), CIO_EINVALIDSTATE);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Cancelling a pending future completes it with -ECANCELED and the message. */
START_TEST(test_future_cancel_pending_returns_true)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    char message[] = "shutting down";
    ck_assert(cio_future_cancel(fut, message));
    memset(message, 'x', sizeof(message) - 1);
    ck_assert(cio_future_done(fut));
    ck_assert(cio_future_cancelled(fut));
    ck_assert_int_eq(cio_future_result(fut, NULL), -ECANCELED);
    ck_assert_int_eq(cio_future_error(fut), -ECANCELED);
    ck_assert_str_eq(cio_future_error_message(fut), "shutting down");
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* asyncio: cancel() on a done future returns False and changes nothing. */
START_TEST(test_future_cancel_done_returns_false)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int token;
    void *out = NULL;
    ck_assert_int_eq(cio_future_set_result(fut, &token), 0);
    ck_assert(!cio_future_cancel(fut, "too late"));
    ck_assert(!cio_future_cancelled(fut));
    ck_assert_int_eq(cio_future_result(fut, &out), 0);
    ck_assert_ptr_eq(out, &token);
    /* A second cancel of a cancelled future is also refused. */
    cio_future_t *cancelled = cio_loop_create_future(loop);
    ck_assert(cio_future_cancel(cancelled, NULL));
    ck_assert(!cio_future_cancel(cancelled, NULL));
    cio_future_unref(cancelled);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A cancelled future is done: a late result is refused. */
START_TEST(test_future_set_result_after_cancel_fails)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int token;
    ck_assert(cio_future_cancel(fut, NULL));
    ck_assert_int_eq(cio_future_set_result(fut, &token), CIO_EINVALIDSTATE);
    ck_assert(cio_future_cancelled(fut));
    ck_assert_int_eq(cio_future_result(fut, NULL), -ECANCELED);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Done callbacks go through call_soon: none runs inside set_result(). */
START_TEST(test_future_done_callbacks_not_run_inline)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int calls = 0;
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &calls), 0);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    ck_assert_int_eq(calls, 0);
    run_one_iteration(loop);
    ck_assert_int_eq(calls, 1);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Done callbacks run on the next iteration, in the order they were added. */
START_TEST(test_future_done_callbacks_run_in_registration_order)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    cio_test_order_t order = {.n = 0};
    mark_t marks[5];
    /* Five registrations: more than the future's inline callback storage. */
    for (int i = 0; i < 5; i++) {
        marks[i] = (mark_t){&order, i + 1};
        ck_assert_int_eq(cio_future_add_done_callback(fut, mark_cb, &marks[i]), 0);
    }
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    run_one_iteration(loop);
    ck_assert_int_eq(order.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(order.v[i], i + 1);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Adding a callback to a done future schedules it; it still never runs inline. */
START_TEST(test_future_callback_added_when_done_is_scheduled)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int calls = 0;
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &calls), 0);
    ck_assert_int_eq(calls, 0);
    run_one_iteration(loop);
    ck_assert_int_eq(calls, 1);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* remove_done_callback() removes every registration of the exact (cb, arg) pair. */
START_TEST(test_future_remove_done_callback_returns_count)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int a = 0, b = 0;
    /* Only (count_cb, &a) matches: the same callback with another arg, and
     * another callback with the same arg, must stay registered. */
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &a), 0);
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &b), 0);
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &a), 0);
    ck_assert_int_eq(cio_future_add_done_callback(fut, bump_cb, &a), 0);
    ck_assert_uint_eq(cio_future_remove_done_callback(fut, count_cb, &a), 2);
    ck_assert_uint_eq(cio_future_remove_done_callback(fut, count_cb, &a), 0);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    run_one_iteration(loop);
    ck_assert_int_eq(a, 10);
    ck_assert_int_eq(b, 1);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* Once completion scheduled a callback, removing it is too late. */
START_TEST(test_future_remove_after_completion_returns_zero)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int calls = 0;
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &calls), 0);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    /* Already scheduled: nothing left to remove, and it still runs. */
    ck_assert_uint_eq(cio_future_remove_done_callback(fut, count_cb, &calls), 0);
    run_one_iteration(loop);
    ck_assert_int_eq(calls, 1);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A done callback gets the completed future and the arg it was registered with. */
START_TEST(test_future_done_callback_receives_future_and_arg)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    seen_t seen = {0};
    int token;
    ck_assert_int_eq(cio_future_add_done_callback(fut, seen_cb, &seen), 0);
    ck_assert_int_eq(cio_future_set_result(fut, &token), 0);
    run_one_iteration(loop);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_eq(seen.fut, fut);
    ck_assert_ptr_eq(seen.arg, &seen);
    ck_assert(seen.done);
    ck_assert_int_eq(seen.rc, 0);
    ck_assert_ptr_eq(seen.result, &token);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* The loop's reference keeps a future alive until its done callback has run. */
START_TEST(test_future_scheduled_callback_keeps_future_alive)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    seen_t seen = {0};
    int token;
    ck_assert_int_eq(cio_future_add_done_callback(fut, seen_cb, &seen), 0);
    ck_assert_int_eq(cio_future_set_result(fut, &token), 0);
    /* Only the scheduled callback's reference is left; ASan checks its use. */
    cio_future_unref(fut);
    run_one_iteration(loop);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(seen.rc, 0);
    ck_assert_ptr_eq(seen.result, &token);
    cio_loop_free(loop);
}
END_TEST

/* run_until_complete() runs the loop until the future is done, then returns its result. */
START_TEST(test_run_until_complete_returns_result)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int token;
    resolve_t r = {fut, RESOLVE_RESULT, &token};
    void *out = NULL;
    ck_assert_int_eq(cio_loop_call_soon(loop, resolve_cb, &r, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, &out), 0);
    ck_assert_ptr_eq(out, &token);
    ck_assert(cio_future_done(fut));
    ck_assert(!cio_loop_is_running(loop));
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A failed future's error code is run_until_complete()'s return value. */
START_TEST(test_run_until_complete_returns_error_of_failed_future)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    resolve_t r = {fut, RESOLVE_ERROR, NULL};
    void *out = NULL;
    ck_assert_int_eq(cio_loop_call_soon(loop, resolve_cb, &r, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, &out), -ECONNREFUSED);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(cio_future_error_message(fut), "refused");
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A cancelled future makes run_until_complete() return -ECANCELED. */
START_TEST(test_run_until_complete_returns_ecanceled_for_cancelled_future)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    resolve_t r = {fut, RESOLVE_CANCEL, NULL};
    ck_assert_int_eq(cio_loop_call_soon(loop, resolve_cb, &r, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, NULL), -ECANCELED);
    ck_assert(cio_future_cancelled(fut));
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* asyncio: 'Event loop stopped before Future completed.' is CIO_ESTOPPED here. */
START_TEST(test_run_until_complete_stopped_first_returns_estopped)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    ck_assert_int_eq(cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, NULL), CIO_ESTOPPED);
    ck_assert(!cio_future_done(fut));
    ck_assert(!cio_loop_is_running(loop));
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* A future can only be awaited on its own loop. */
START_TEST(test_run_until_complete_with_other_loops_future_is_einval)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_t *other = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(other);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, fut, NULL), -EINVAL);
    cio_future_unref(fut);
    cio_loop_free(other);
    cio_loop_free(loop);
}
END_TEST

/* A closed loop creates no futures. */
START_TEST(test_create_future_on_closed_loop_returns_null)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_ptr_null(cio_loop_create_future(loop));
    cio_loop_free(loop);
}
END_TEST

/* Closing discards scheduled done callbacks and the references they hold. */
START_TEST(test_loop_close_releases_scheduled_done_callback)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    int calls = 0;
    ck_assert_int_eq(cio_future_add_done_callback(fut, count_cb, &calls), 0);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    /* The scheduled callback holds the last reference: close must drop it
     * (LeakSanitizer reports the future otherwise) without running it. */
    cio_future_unref(fut);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    ck_assert_int_eq(calls, 0);
}
END_TEST

/* An exception handler recording what it was given. */
typedef struct report {
    int calls;
    int error;
    cio_future_t *future;
    bool has_handle;
    char message[256];
} report_t;

static int record_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    report_t *r = arg;
    r->calls++;
    r->error = ctx->error;
    r->future = ctx->future;
    r->has_handle = ctx->handle != NULL;
    snprintf(r->message, sizeof(r->message), "%s", ctx->message ? ctx->message : "");
    return 0;
}

static int failing_done_cb(cio_future_t *fut, void *arg)
{
    (*(int *)arg)++;
    return -EIO;
}

/* A done callback's error is reported like any callback's, naming the future. */
START_TEST(test_future_failing_done_callback_reaches_exception_handler)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    report_t report = {0};
    int calls = 0;
    cio_loop_set_exception_handler(loop, record_handler, &report);
    ck_assert_int_eq(cio_future_add_done_callback(fut, failing_done_cb, &calls), 0);
    ck_assert_int_eq(cio_future_set_result(fut, NULL), 0);
    run_one_iteration(loop);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(report.calls, 1);
    ck_assert_ptr_eq(report.future, fut);
    ck_assert_int_eq(report.error, -EIO);
    ck_assert(report.has_handle);
    ck_assert_msg(strncmp(report.message, "Exception in callback", 21) == 0, "message: %s",
                  report.message);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("future");

    TCase *tc = cio_test_case("state");
    CIO_TEST(tc, test_future_new_is_pending);
    CIO_TEST(tc, test_future_set_result_makes_result_available);
    CIO_TEST(tc, test_future_set_result_twice_fails);
    CIO_TEST(tc, test_future_set_error_stores_code_and_copied_message);
    CIO_TEST(tc, test_future_set_error_rejects_non_negative_and_ecanceled);
    CIO_TEST(tc, test_future_cancel_pending_returns_true);
    CIO_TEST(tc, test_future_cancel_done_returns_false);
    CIO_TEST(tc, test_future_set_result_after_cancel_fails);
    CIO_TEST(tc, test_create_future_on_closed_loop_returns_null);
    suite_add_tcase(s, tc);

    tc = cio_test_case("done_callbacks");
    CIO_TEST(tc, test_future_done_callbacks_not_run_inline);
    CIO_TEST(tc, test_future_done_callbacks_run_in_registration_order);
    CIO_TEST(tc, test_future_callback_added_when_done_is_scheduled);
    CIO_TEST(tc, test_future_remove_done_callback_returns_count);
    CIO_TEST(tc, test_future_remove_after_completion_returns_zero);
    CIO_TEST(tc, test_future_done_callback_receives_future_and_arg);
    CIO_TEST(tc, test_future_scheduled_callback_keeps_future_alive);
    CIO_TEST(tc, test_loop_close_releases_scheduled_done_callback);
    CIO_TEST(tc, test_future_failing_done_callback_reaches_exception_handler);
    suite_add_tcase(s, tc);

    tc = cio_test_case("run_until_complete");
    CIO_TEST(tc, test_run_until_complete_returns_result);
    CIO_TEST(tc, test_run_until_complete_returns_error_of_failed_future);
    CIO_TEST(tc, test_run_until_complete_returns_ecanceled_for_cancelled_future);
    CIO_TEST(tc, test_run_until_complete_stopped_first_returns_estopped);
    CIO_TEST(tc, test_run_until_complete_with_other_loops_future_is_einval);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
