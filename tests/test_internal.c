/*
 * tests/test_internal.c: white-box checks of loop/ internals that the public
 * API cannot reach in a test's time: the poll timeout of step 1 (its 24-hour
 * cap included), the timer heap's order, and the ready ring's growth.
 * Built from the loop sources directly, not from libcoreio.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <math.h>

#include "internal.h"
#include "testutil.h"

static int noop_cb(void *arg)
{
    return 0;
}

START_TEST(test_poll_timeout_is_unbounded_without_timers)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert(cio__poll_timeout(loop) < 0);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_poll_timeout_is_capped_at_24_hours)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_call_later(loop, 48 * 3600.0, noop_cb, NULL, NULL), 0);
    ck_assert_double_eq(cio__poll_timeout(loop), 24 * 3600.0);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_poll_timeout_waits_for_the_earliest_timer)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_call_later(loop, 30, noop_cb, NULL, NULL);
    cio_loop_call_later(loop, 10, noop_cb, NULL, NULL);
    double t = cio__poll_timeout(loop);
    ck_assert(t > 9 && t <= 10);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_poll_timeout_is_zero_when_ready_stopping_or_mail_waits)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_call_later(loop, 10, noop_cb, NULL, NULL);
    cio_handle_t h;
    cio_loop_call_soon(loop, noop_cb, NULL, &h);
    ck_assert_double_eq(cio__poll_timeout(loop), 0);
    /* A cancelled ready callback still counts until discarded, as in asyncio. */
    cio_handle_cancel(h);
    ck_assert_double_eq(cio__poll_timeout(loop), 0);
    cio_loop_stop(loop);
    cio_loop_run_forever(loop);
    ck_assert(cio__poll_timeout(loop) > 0);
    cio_loop_stop(loop);
    ck_assert_double_eq(cio__poll_timeout(loop), 0);
    loop->stopping = 0;
    cio_loop_call_soon_threadsafe(loop, noop_cb, NULL);
    ck_assert_double_eq(cio__poll_timeout(loop), 0);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_heap_pops_in_when_then_sequence_order)
{
    enum { N = 20000 };
    cio__heap_t h = {.v = malloc(N * sizeof(cio__heap_entry_t)), .cap = N};
    unsigned seed = 7;
    for (uint32_t i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        /* Few distinct deadlines, so ties are common. */
        cio__heap_push(&h, (cio__heap_entry_t){.when = (double)((seed >> 16) % 50), .seq = i});
    }
    cio__heap_entry_t prev = h.v[0];
    cio__heap_pop(&h);
    for (int i = 1; i < N; i++) {
        cio__heap_entry_t e = h.v[0];
        ck_assert(prev.when < e.when || (prev.when == e.when && prev.seq < e.seq));
        prev = e;
        cio__heap_pop(&h);
    }
    ck_assert_uint_eq(h.len, 0);
    free(h.v);
}
END_TEST

START_TEST(test_ready_ring_keeps_fifo_order_across_growth_and_wrap)
{
    cio__ring_t r = {0};
    uint32_t next_in = 0, next_out = 0;
    /* Interleave pushes and pops so the ring wraps before it grows. */
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(cio__ring_push(&r, next_in++), 0);
        for (int i = 0; i < 2; i++)
            ck_assert_uint_eq(cio__ring_pop(&r), next_out++);
    }
    while (r.len > 0)
        ck_assert_uint_eq(cio__ring_pop(&r), next_out++);
    ck_assert_uint_eq(next_out, next_in);
    cio__ring_destroy(&r);
}
END_TEST

START_TEST(test_freed_slot_is_reused_with_a_new_generation)
{
    cio__slab_t s = {.free_head = UINT32_MAX};
    uint32_t a, b;
    ck_assert_int_eq(cio__slab_alloc(&s, &a), 0);
    uint32_t gen = s.v[a].gen;
    cio__slab_free(&s, a);
    ck_assert_int_eq(cio__slab_alloc(&s, &b), 0);
    ck_assert_uint_eq(a, b);
    ck_assert_uint_ne(s.v[b].gen, gen);
    cio__slab_destroy(&s);
}
END_TEST

/* ---- internal tasks: their argument is freed even if they never run ---------------- */

static int freed_args;

static void count_free(void *arg)
{
    freed_args++;
}

static int never_runs(void *arg, void **result)
{
    ck_abort_msg("a task cancelled before it started ran");
    return 0;
}

START_TEST(test_an_internal_task_cancelled_before_it_starts_frees_its_argument)
{
    cio_loop_t *loop = cio_loop_new();
    freed_args = 0;
    cio_future_t *f = cio__spawn(loop, never_runs, NULL, count_free);
    ck_assert_ptr_nonnull(f);
    ck_assert(cio_future_cancel(f, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, NULL), -ECANCELED);
    ck_assert_int_eq(freed_args, 1);
    cio_future_unref(f);
    /* A loop closed before the task's first step frees it too. */
    f = cio__spawn(loop, never_runs, NULL, count_free);
    cio_future_unref(f);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    ck_assert_int_eq(freed_args, 2);
}
END_TEST

/* ---- the mailbox: closing waits for a producer inside a push ---------------------- */

typedef struct closer {
    cio_loop_t *loop;
    _Atomic int done;
} closer_t;

static void *close_thread(void *arg)
{
    closer_t *c = arg;
    cio_loop_close(c->loop);
    atomic_store(&c->done, 1);
    return NULL;
}

START_TEST(test_closing_waits_for_a_producer_inside_a_push)
{
    closer_t c = {.loop = cio_loop_new()};
    /* As a producer does on entry: counted, then it saw the mailbox open. */
    atomic_fetch_add(&c.loop->mailbox.senders, 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, close_thread, &c), 0);
    usleep(100000);
    ck_assert_int_eq(atomic_load(&c.done), 0); /* still waiting for the producer */
    ck_assert_int_eq(atomic_load(&c.loop->mailbox.closed), 1);
    atomic_fetch_sub(&c.loop->mailbox.senders, 1); /* the producer leaves */
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&c.done), 1);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(c.loop, noop_cb, NULL), CIO_ECLOSED);
    ck_assert_uint_eq(atomic_load(&c.loop->mailbox.senders), 0); /* a refused call leaves too */
    cio_loop_free(c.loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("internal");
    TCase *tc = cio_test_case("internal");
    CIO_TEST(tc, test_poll_timeout_is_unbounded_without_timers);
    CIO_TEST(tc, test_poll_timeout_is_capped_at_24_hours);
    CIO_TEST(tc, test_poll_timeout_waits_for_the_earliest_timer);
    CIO_TEST(tc, test_poll_timeout_is_zero_when_ready_stopping_or_mail_waits);
    CIO_TEST(tc, test_heap_pops_in_when_then_sequence_order);
    CIO_TEST(tc, test_ready_ring_keeps_fifo_order_across_growth_and_wrap);
    CIO_TEST(tc, test_freed_slot_is_reused_with_a_new_generation);
    CIO_TEST(tc, test_an_internal_task_cancelled_before_it_starts_frees_its_argument);
    CIO_TEST(tc, test_closing_waits_for_a_producer_inside_a_push);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
