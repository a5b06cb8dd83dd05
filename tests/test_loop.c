/*
 * tests/test_loop.c: the loop's lifecycle and iteration (SEMANTICS.md "Loop"):
 * call_soon order, one iteration's exact batch, stop before and during
 * run_forever, close, handles, debug mode and bad arguments.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

typedef struct rec {
    cio_loop_t *loop;
    cio_test_order_t order;
    int value;
} rec_t;

typedef struct item {
    rec_t *rec;
    int value;
} item_t;

static int record_cb(void *arg)
{
    item_t *it = arg;
    it->rec->order.v[it->rec->order.n++] = it->value;
    return 0;
}

START_TEST(test_call_soon_runs_in_fifo_order)
{
    rec_t r = {.loop = cio_loop_new()};
    item_t items[100];
    for (int i = 0; i < 100; i++) {
        items[i] = (item_t){&r, i};
        ck_assert_int_eq(cio_loop_call_soon(r.loop, record_cb, &items[i], NULL), 0);
    }
    ck_assert_int_eq(cio_loop_call_soon(r.loop, cio_test_stop_cb, r.loop, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(r.loop), 0);
    ck_assert_int_eq(r.order.n, 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(r.order.v[i], i);
    cio_loop_free(r.loop);
}
END_TEST

/* A: schedules item 3 for later; B: stops the loop. */
static item_t later_item;
static int schedule_later_cb(void *arg)
{
    item_t *it = arg;
    record_cb(it);
    return cio_loop_call_soon(it->rec->loop, record_cb, &later_item, NULL);
}

START_TEST(test_callbacks_scheduled_during_iteration_wait_for_next_run)
{
    rec_t r = {.loop = cio_loop_new()};
    item_t a = {&r, 1};
    later_item = (item_t){&r, 3};
    cio_loop_call_soon(r.loop, schedule_later_cb, &a, NULL);
    cio_loop_call_soon(r.loop, cio_test_stop_cb, r.loop, NULL);
    ck_assert_int_eq(cio_loop_run_forever(r.loop), 0);
    /* stop() ended the iteration that ran A and B: the callback A scheduled waits. */
    ck_assert_int_eq(r.order.n, 1);
    cio_loop_stats_t st;
    cio_loop_get_stats(r.loop, &st);
    ck_assert_uint_eq(st.iterations, 1);
    ck_assert_uint_eq(st.ready, 1);
    /* It runs on the next run_forever. */
    cio_loop_call_soon(r.loop, cio_test_stop_cb, r.loop, NULL);
    ck_assert_int_eq(cio_loop_run_forever(r.loop), 0);
    ck_assert_int_eq(r.order.n, 2);
    ck_assert_int_eq(r.order.v[1], 3);
    cio_loop_free(r.loop);
}
END_TEST

static int never_cb(void *arg)
{
    ck_abort_msg("this callback must not run");
    return 0;
}

START_TEST(test_stop_before_run_forever_runs_one_iteration_without_blocking)
{
    cio_loop_t *loop = cio_loop_new();
    /* A far timer would make a blocking poll sleep for an hour. */
    ck_assert_int_eq(cio_loop_call_later(loop, 3600, never_cb, NULL, NULL), 0);
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    ck_assert_uint_eq(st.iterations, 1);
    ck_assert(!cio_loop_is_running(loop));
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_poll_does_not_block_while_callbacks_are_ready)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_call_later(loop, 3600, never_cb, NULL, NULL), 0);
    cio_test_chain_t c = {loop, 5};
    cio_loop_call_soon(loop, cio_test_chain_cb, &c, NULL);
    double t0 = cio_loop_time(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    /* One callback per iteration; had any poll blocked, the hour-long timer
     * would have held the test past its timeout. */
    ck_assert_uint_eq(st.iterations, 5);
    ck_assert_uint_eq(st.callbacks, 5);
    ck_assert(cio_loop_time(loop) - t0 < 60);
    cio_loop_free(loop);
}
END_TEST

typedef struct nested {
    cio_loop_t *loop;
    cio_loop_t *other;
    int same_rc;
    int other_rc;
    bool running_inside;
    cio_loop_t *running_loop;
} nested_t;

static int nested_run_cb(void *arg)
{
    nested_t *n = arg;
    n->same_rc = cio_loop_run_forever(n->loop);
    n->other_rc = cio_loop_run_forever(n->other);
    n->running_inside = cio_loop_is_running(n->loop);
    n->running_loop = cio_get_running_loop();
    cio_loop_stop(n->loop);
    return 0;
}

START_TEST(test_running_a_running_loop_or_a_second_loop_fails)
{
    nested_t n = {.loop = cio_loop_new(), .other = cio_loop_new()};
    cio_loop_call_soon(n.loop, nested_run_cb, &n, NULL);
    ck_assert_int_eq(cio_loop_run_forever(n.loop), 0);
    ck_assert_int_eq(n.same_rc, CIO_ERUNNING);
    ck_assert_int_eq(n.other_rc, CIO_EOTHERLOOP);
    ck_assert(n.running_inside);
    ck_assert_ptr_eq(n.running_loop, n.loop);
    ck_assert(!cio_loop_is_running(n.loop));
    ck_assert_ptr_null(cio_get_running_loop());
    cio_loop_free(n.loop);
    cio_loop_free(n.other);
}
END_TEST

static int close_inside_cb(void *arg)
{
    int *rc = arg;
    cio_loop_t *loop = cio_get_running_loop();
    *rc = cio_loop_close(loop);
    cio_loop_stop(loop);
    return 0;
}

START_TEST(test_close_fails_on_a_running_loop)
{
    cio_loop_t *loop = cio_loop_new();
    int rc = 1;
    cio_loop_call_soon(loop, close_inside_cb, &rc, NULL);
    cio_loop_run_forever(loop);
    ck_assert_int_eq(rc, CIO_ERUNNING);
    ck_assert(!cio_loop_is_closed(loop));
    ck_assert_int_eq(cio_loop_free(loop), 0);
}
END_TEST

START_TEST(test_close_discards_pending_callbacks_and_is_idempotent)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_call_soon(loop, never_cb, NULL, NULL);
    cio_loop_call_later(loop, 0.001, never_cb, NULL, NULL);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert(cio_loop_is_closed(loop));
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), CIO_ECLOSED);
    cio_loop_free(loop);
}
END_TEST

static int ok_cb(void *arg)
{
    return 0;
}

START_TEST(test_scheduling_on_a_closed_loop_fails)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_close(loop);
    cio_handle_t h = {0};
    ck_assert_int_eq(cio_loop_call_soon(loop, ok_cb, NULL, &h), CIO_ECLOSED);
    ck_assert_ptr_null(h.loop);
    ck_assert_int_eq(cio_loop_call_later(loop, 1, ok_cb, NULL, NULL), CIO_ECLOSED);
    ck_assert_int_eq(cio_loop_call_at(loop, 1, ok_cb, NULL, NULL), CIO_ECLOSED);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(loop, ok_cb, NULL), CIO_ECLOSED);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_bad_arguments_return_einval)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_call_soon(loop, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_soon(NULL, ok_cb, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_later(loop, NAN, ok_cb, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_later(loop, INFINITY, ok_cb, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_later(loop, 1, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_at(loop, NAN, ok_cb, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_at(loop, -INFINITY, ok_cb, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(NULL, ok_cb, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_run_forever(NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_set_slow_callback_duration(loop, -1), -EINVAL);
    ck_assert_int_eq(cio_loop_set_slow_callback_duration(loop, NAN), -EINVAL);
    /* Nothing was scheduled by the failed calls. */
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    ck_assert_uint_eq(st.ready + st.timers, 0);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_cancelled_handle_does_not_run)
{
    rec_t r = {.loop = cio_loop_new()};
    item_t a = {&r, 1}, b = {&r, 2};
    cio_handle_t ha, hb;
    cio_loop_call_soon(r.loop, record_cb, &a, &ha);
    cio_loop_call_soon(r.loop, record_cb, &b, &hb);
    ck_assert(isnan(cio_handle_when(ha)));
    ck_assert(!cio_handle_cancelled(ha));
    cio_handle_cancel(ha);
    ck_assert(cio_handle_cancelled(ha));
    ck_assert(!cio_handle_cancelled(hb));
    cio_loop_call_soon(r.loop, cio_test_stop_cb, r.loop, NULL);
    cio_loop_run_forever(r.loop);
    ck_assert_int_eq(r.order.n, 1);
    ck_assert_int_eq(r.order.v[0], 2);
    cio_loop_free(r.loop);
}
END_TEST

START_TEST(test_cancelling_a_handle_that_ran_is_a_noop)
{
    rec_t r = {.loop = cio_loop_new()};
    item_t a = {&r, 1}, b = {&r, 2};
    cio_handle_t ha, hb;
    cio_loop_call_soon(r.loop, record_cb, &a, &ha);
    cio_loop_stop(r.loop);
    cio_loop_run_forever(r.loop);
    /* The slot of the first handle is reused by the next callback. */
    cio_loop_call_soon(r.loop, record_cb, &b, &hb);
    ck_assert_uint_eq(hb.slot, ha.slot);
    cio_handle_cancel(ha);
    ck_assert(!cio_handle_cancelled(ha));
    ck_assert(!cio_handle_cancelled(hb));
    cio_loop_call_soon(r.loop, cio_test_stop_cb, r.loop, NULL);
    cio_loop_run_forever(r.loop);
    ck_assert_int_eq(r.order.n, 2);
    ck_assert_int_eq(r.order.v[1], 2);
    /* The zero handle is accepted too. */
    cio_handle_cancel((cio_handle_t){0});
    ck_assert(!cio_handle_cancelled((cio_handle_t){0}));
    cio_loop_free(r.loop);
}
END_TEST

typedef struct self_cancel {
    cio_handle_t h;
    bool cancelled_inside;
} self_cancel_t;

static int cancel_self_cb(void *arg)
{
    self_cancel_t *s = arg;
    cio_handle_cancel(s->h);
    s->cancelled_inside = cio_handle_cancelled(s->h);
    cio_loop_stop(s->h.loop);
    return 0;
}

START_TEST(test_cancelling_own_handle_while_running_is_a_noop)
{
    cio_loop_t *loop = cio_loop_new();
    self_cancel_t s = {0};
    cio_loop_call_soon(loop, cancel_self_cb, &s, &s.h);
    cio_loop_run_forever(loop);
    ck_assert(!s.cancelled_inside);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_loop_time_is_monotonic)
{
    cio_loop_t *loop = cio_loop_new();
    double prev = cio_loop_time(loop);
    for (int i = 0; i < 10000; i++) {
        double t = cio_loop_time(loop);
        ck_assert(t >= prev);
        prev = t;
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    ck_assert(cio_loop_time(loop) > prev);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_debug_mode_follows_set_debug_and_environment)
{
    unsetenv("COREIO_DEBUG");
    cio_loop_t *plain = cio_loop_new();
    ck_assert(!cio_loop_get_debug(plain));
    cio_loop_set_debug(plain, true);
    ck_assert(cio_loop_get_debug(plain));
    cio_loop_set_debug(plain, false);
    ck_assert(!cio_loop_get_debug(plain));
    setenv("COREIO_DEBUG", "1", 1);
    cio_loop_t *debug = cio_loop_new();
    ck_assert(cio_loop_get_debug(debug));
    setenv("COREIO_DEBUG", "0", 1);
    cio_loop_t *off = cio_loop_new();
    ck_assert(!cio_loop_get_debug(off));
    unsetenv("COREIO_DEBUG");
    cio_loop_free(plain);
    cio_loop_free(debug);
    cio_loop_free(off);
}
END_TEST

static int slow_cb(void *arg)
{
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}

START_TEST(test_debug_mode_logs_slow_callbacks_with_duration)
{
    cio_test_log_t log;
    cio_test_capture_log(&log);
    cio_loop_t *loop = cio_loop_new();
    ck_assert_double_eq_tol(cio_loop_get_slow_callback_duration(loop), 0.1, 1e-9);
    ck_assert_int_eq(cio_loop_set_slow_callback_duration(loop, 0.01), 0);
    /* Not in debug mode: nothing is logged. */
    cio_loop_call_soon(loop, slow_cb, NULL, NULL);
    cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL);
    cio_loop_run_forever(loop);
    ck_assert_int_eq(log.records, 0);
    cio_loop_set_debug(loop, true);
    cio_loop_call_soon(loop, slow_cb, NULL, NULL);
    cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL);
    cio_loop_run_forever(loop);
    ck_assert_int_eq(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_WARNING);
    ck_assert_ptr_nonnull(strstr(log.text, "Executing callback "));
    ck_assert_ptr_nonnull(strstr(log.text, "took 0.0"));
    ck_assert_ptr_nonnull(strstr(log.text, " seconds"));
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    cio_loop_free(loop);
}
END_TEST

typedef struct cross {
    cio_loop_t *loop;
    pthread_t thread;
    int rc_soon, rc_later, rc_threadsafe;
} cross_t;

static void *call_from_other_thread(void *arg)
{
    cross_t *c = arg;
    c->rc_soon = cio_loop_call_soon(c->loop, ok_cb, NULL, NULL);
    c->rc_later = cio_loop_call_later(c->loop, 0, ok_cb, NULL, NULL);
    c->rc_threadsafe = cio_loop_call_soon_threadsafe(c->loop, cio_test_stop_cb, c->loop);
    return NULL;
}

static int start_thread_cb(void *arg)
{
    cross_t *c = arg;
    return -pthread_create(&c->thread, NULL, call_from_other_thread, c);
}

START_TEST(test_debug_mode_rejects_calls_from_another_thread)
{
    cross_t c = {.loop = cio_loop_new()};
    cio_loop_set_debug(c.loop, true);
    cio_loop_call_soon(c.loop, start_thread_cb, &c, NULL);
    ck_assert_int_eq(cio_loop_run_forever(c.loop), 0);
    pthread_join(c.thread, NULL);
    ck_assert_int_eq(c.rc_soon, CIO_EWRONGTHREAD);
    ck_assert_int_eq(c.rc_later, CIO_EWRONGTHREAD);
    ck_assert_int_eq(c.rc_threadsafe, 0);
    cio_loop_free(c.loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = cio_test_case("loop");
    CIO_TEST(tc, test_call_soon_runs_in_fifo_order);
    CIO_TEST(tc, test_callbacks_scheduled_during_iteration_wait_for_next_run);
    CIO_TEST(tc, test_stop_before_run_forever_runs_one_iteration_without_blocking);
    CIO_TEST(tc, test_poll_does_not_block_while_callbacks_are_ready);
    CIO_TEST(tc, test_running_a_running_loop_or_a_second_loop_fails);
    CIO_TEST(tc, test_close_fails_on_a_running_loop);
    CIO_TEST(tc, test_close_discards_pending_callbacks_and_is_idempotent);
    CIO_TEST(tc, test_scheduling_on_a_closed_loop_fails);
    CIO_TEST(tc, test_bad_arguments_return_einval);
    CIO_TEST(tc, test_cancelled_handle_does_not_run);
    CIO_TEST(tc, test_cancelling_a_handle_that_ran_is_a_noop);
    CIO_TEST(tc, test_cancelling_own_handle_while_running_is_a_noop);
    CIO_TEST(tc, test_loop_time_is_monotonic);
    CIO_TEST(tc, test_debug_mode_follows_set_debug_and_environment);
    CIO_TEST(tc, test_debug_mode_logs_slow_callbacks_with_duration);
    CIO_TEST(tc, test_debug_mode_rejects_calls_from_another_thread);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
