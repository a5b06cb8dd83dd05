/*
 * tests/test_timer.c: call_later and call_at (SEMANTICS.md "Loop"): deadline
 * order, equal deadlines in scheduling order, never early, cancellation, and
 * the lazy removal and compaction of cancelled timers.
 */
#include <math.h>

#include "testutil.h"

typedef struct fired {
    cio_loop_t *loop;
    cio_test_order_t order;
    double at[64];
    int stop_after;
} fired_t;

typedef struct timer_item {
    fired_t *f;
    int value;
} timer_item_t;

static int fire_cb(void *arg)
{
    timer_item_t *it = arg;
    fired_t *f = it->f;
    if (f->order.n < 64)
        f->at[f->order.n] = cio_loop_time(f->loop);
    f->order.v[f->order.n++] = it->value;
    if (f->order.n == f->stop_after)
        cio_loop_stop(f->loop);
    return 0;
}

START_TEST(test_timers_fire_in_deadline_order_and_never_early)
{
    fired_t f = {.loop = cio_loop_new(), .stop_after = 3};
    timer_item_t a = {&f, 30}, b = {&f, 10}, c = {&f, 20};
    cio_handle_t ha, hb, hc;
    ck_assert_int_eq(cio_loop_call_later(f.loop, 0.030, fire_cb, &a, &ha), 0);
    ck_assert_int_eq(cio_loop_call_later(f.loop, 0.010, fire_cb, &b, &hb), 0);
    ck_assert_int_eq(cio_loop_call_later(f.loop, 0.020, fire_cb, &c, &hc), 0);
    ck_assert_int_eq(cio_loop_run_forever(f.loop), 0);
    ck_assert_int_eq(f.order.v[0], 10);
    ck_assert_int_eq(f.order.v[1], 20);
    ck_assert_int_eq(f.order.v[2], 30);
    /* Each ran at or after its due time (within the clock's resolution). */
    ck_assert(f.at[0] >= cio_handle_when(hb) - 1e-6);
    ck_assert(f.at[1] >= cio_handle_when(hc) - 1e-6);
    ck_assert(f.at[2] >= cio_handle_when(ha) - 1e-6);
    cio_loop_free(f.loop);
}
END_TEST

START_TEST(test_equal_deadlines_fire_in_scheduling_order)
{
    fired_t f = {.loop = cio_loop_new(), .stop_after = 200};
    timer_item_t items[200];
    double when = cio_loop_time(f.loop) + 0.005;
    for (int i = 0; i < 200; i++) {
        items[i] = (timer_item_t){&f, i};
        ck_assert_int_eq(cio_loop_call_at(f.loop, when, fire_cb, &items[i], NULL), 0);
    }
    ck_assert_int_eq(cio_loop_run_forever(f.loop), 0);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(f.order.v[i], i);
    cio_loop_free(f.loop);
}
END_TEST

START_TEST(test_past_deadline_and_negative_delay_fire_on_next_iteration)
{
    fired_t f = {.loop = cio_loop_new(), .stop_after = 2};
    timer_item_t a = {&f, 1}, b = {&f, 2};
    cio_handle_t ha;
    ck_assert_int_eq(cio_loop_call_at(f.loop, cio_loop_time(f.loop) - 100, fire_cb, &a, &ha), 0);
    ck_assert_int_eq(cio_loop_call_later(f.loop, -5, fire_cb, &b, NULL), 0);
    ck_assert(cio_handle_when(ha) < cio_loop_time(f.loop));
    ck_assert_int_eq(cio_loop_run_forever(f.loop), 0);
    ck_assert_int_eq(f.order.n, 2);
    cio_loop_stats_t st;
    cio_loop_get_stats(f.loop, &st);
    ck_assert_uint_eq(st.iterations, 1);
    cio_loop_free(f.loop);
}
END_TEST

START_TEST(test_call_later_handle_reports_when)
{
    cio_loop_t *loop = cio_loop_new();
    cio_handle_t h;
    double before = cio_loop_time(loop);
    ck_assert_int_eq(cio_loop_call_later(loop, 5, cio_test_stop_cb, loop, &h), 0);
    double after = cio_loop_time(loop);
    ck_assert(cio_handle_when(h) >= before + 5 && cio_handle_when(h) <= after + 5);
    ck_assert_int_eq(cio_loop_call_at(loop, 1234.5, cio_test_stop_cb, loop, &h), 0);
    ck_assert(cio_handle_when(h) == 1234.5);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_cancelled_timer_does_not_fire)
{
    fired_t f = {.loop = cio_loop_new(), .stop_after = 1};
    timer_item_t a = {&f, 1}, b = {&f, 2};
    cio_handle_t ha;
    cio_loop_call_later(f.loop, 0.001, fire_cb, &a, &ha);
    cio_loop_call_later(f.loop, 0.010, fire_cb, &b, NULL);
    cio_handle_cancel(ha);
    ck_assert(cio_handle_cancelled(ha));
    ck_assert_int_eq(cio_loop_run_forever(f.loop), 0);
    ck_assert_int_eq(f.order.n, 1);
    ck_assert_int_eq(f.order.v[0], 2);
    /* Discarded from the heap, the handle is stale: cancel stays a no-op. */
    ck_assert(!cio_handle_cancelled(ha));
    cio_handle_cancel(ha);
    cio_loop_free(f.loop);
}
END_TEST

static int noop_cb(void *arg)
{
    return 0;
}

/* Run one iteration: stop is set before run_forever. */
static void one_iteration(cio_loop_t *loop)
{
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

static uint64_t timers_in_heap(cio_loop_t *loop)
{
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    return st.timers;
}

START_TEST(test_cancelled_timer_at_heap_top_is_removed_next_iteration)
{
    cio_loop_t *loop = cio_loop_new();
    cio_handle_t h1, h2;
    cio_loop_call_later(loop, 100, noop_cb, NULL, &h1);
    cio_loop_call_later(loop, 200, noop_cb, NULL, &h2);
    cio_handle_cancel(h2);
    one_iteration(loop);
    /* h2 is not at the top: it stays until it surfaces. */
    ck_assert_uint_eq(timers_in_heap(loop), 2);
    cio_handle_cancel(h1);
    one_iteration(loop);
    ck_assert_uint_eq(timers_in_heap(loop), 0);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_heap_is_compacted_when_most_timers_are_cancelled)
{
    cio_loop_t *loop = cio_loop_new();
    static cio_handle_t h[1000];
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(cio_loop_call_later(loop, 100 + i, noop_cb, NULL, &h[i]), 0);
    /* Cancel 600 that are not at the top: more than half of the heap. */
    for (int i = 400; i < 1000; i++)
        cio_handle_cancel(h[i]);
    one_iteration(loop);
    ck_assert_uint_eq(timers_in_heap(loop), 400);
    for (int i = 0; i < 400; i++)
        ck_assert(!cio_handle_cancelled(h[i]));
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_small_or_mostly_live_heaps_are_not_compacted)
{
    cio_loop_t *loop = cio_loop_new();
    static cio_handle_t h[1000];
    /* 100 timers, 90 cancelled: at or under the 100-entry threshold. */
    for (int i = 0; i < 100; i++)
        cio_loop_call_later(loop, 100 + i, noop_cb, NULL, &h[i]);
    for (int i = 10; i < 100; i++)
        cio_handle_cancel(h[i]);
    one_iteration(loop);
    ck_assert_uint_eq(timers_in_heap(loop), 100);
    /* 1000 timers, exactly half cancelled: not more than half. */
    for (int i = 100; i < 1000; i++)
        cio_loop_call_later(loop, 100 + i, noop_cb, NULL, &h[i]);
    for (int i = 100; i < 100 + 410; i++)
        cio_handle_cancel(h[i]);
    one_iteration(loop);
    ck_assert_uint_eq(timers_in_heap(loop), 1000);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_many_timers_fire_in_order_after_random_cancellations)
{
    enum { N = 5000 };
    fired_t f = {.loop = cio_loop_new()};
    static timer_item_t items[N];
    static cio_handle_t h[N];
    double base = cio_loop_time(f.loop);
    unsigned seed = 42;
    int live = 0;
    for (int i = 0; i < N; i++) {
        items[i] = (timer_item_t){&f, i};
        /* Deadlines in scheduling order, several per millisecond. */
        cio_loop_call_at(f.loop, base + 0.002 + i * 0.00001, fire_cb, &items[i], &h[i]);
    }
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245 + 12345;
        if ((seed >> 16) % 3 == 0)
            cio_handle_cancel(h[i]);
        else
            live++;
    }
    f.stop_after = live;
    ck_assert_int_eq(cio_loop_run_forever(f.loop), 0);
    ck_assert_int_eq(f.order.n, live);
    for (int i = 1; i < live; i++)
        ck_assert_int_lt(f.order.v[i - 1], f.order.v[i]);
    for (int i = 0; i < live; i++)
        ck_assert(!cio_handle_cancelled(h[f.order.v[i]]));
    cio_loop_free(f.loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = cio_test_case("timer");
    CIO_TEST(tc, test_timers_fire_in_deadline_order_and_never_early);
    CIO_TEST(tc, test_equal_deadlines_fire_in_scheduling_order);
    CIO_TEST(tc, test_past_deadline_and_negative_delay_fire_on_next_iteration);
    CIO_TEST(tc, test_call_later_handle_reports_when);
    CIO_TEST(tc, test_cancelled_timer_does_not_fire);
    CIO_TEST(tc, test_cancelled_timer_at_heap_top_is_removed_next_iteration);
    CIO_TEST(tc, test_heap_is_compacted_when_most_timers_are_cancelled);
    CIO_TEST(tc, test_small_or_mostly_live_heaps_are_not_compacted);
    CIO_TEST(tc, test_many_timers_fire_in_order_after_random_cancellations);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
