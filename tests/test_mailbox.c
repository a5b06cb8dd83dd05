/*
 * tests/test_mailbox.c: call_soon_threadsafe through the loop's mailbox. Every
 * message from any number of producer threads runs exactly once and in order
 * per producer; a sleeping loop is woken, a busy one is not.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "testutil.h"

enum { PRODUCERS = 8, PER_PRODUCER = 20000 };

typedef struct msg {
    struct shared *sh;
    int producer;
    int seq;
} msg_t;

typedef struct shared {
    cio_loop_t *loop;
    int next_seq[PRODUCERS]; /* loop thread only */
    int out_of_order;
    int received;
    int expected;
    msg_t *msgs;
    _Atomic int producers_done;
    int nproducers;
} shared_t;

static int receive_cb(void *arg)
{
    msg_t *m = arg;
    shared_t *sh = m->sh;
    if (m->seq != sh->next_seq[m->producer])
        sh->out_of_order++;
    sh->next_seq[m->producer] = m->seq + 1;
    if (++sh->received == sh->expected)
        cio_loop_stop(sh->loop);
    return 0;
}

typedef struct producer {
    shared_t *sh;
    int id;
    int count;
    int failures;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < p->count; i++) {
        msg_t *m = &p->sh->msgs[p->id * p->count + i];
        *m = (msg_t){p->sh, p->id, i};
        if (cio_loop_call_soon_threadsafe(p->sh->loop, receive_cb, m) != 0)
            p->failures++;
    }
    atomic_fetch_add(&p->sh->producers_done, 1);
    return NULL;
}

START_TEST(test_threadsafe_calls_from_many_threads_run_once_in_order_per_producer)
{
    shared_t sh = {
        .loop = cio_loop_new(), .expected = PRODUCERS * PER_PRODUCER, .nproducers = PRODUCERS};
    sh.msgs = calloc(PRODUCERS * PER_PRODUCER, sizeof(msg_t));
    pthread_t t[PRODUCERS];
    producer_t p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){&sh, i, PER_PRODUCER, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    ck_assert_int_eq(cio_loop_run_forever(sh.loop), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(p[i].failures, 0);
        ck_assert_int_eq(sh.next_seq[i], PER_PRODUCER);
    }
    ck_assert_int_eq(sh.received, PRODUCERS * PER_PRODUCER);
    ck_assert_int_eq(sh.out_of_order, 0);
    /* Nothing left over: a further iteration runs no callback. */
    cio_loop_stats_t before, after;
    cio_loop_get_stats(sh.loop, &before);
    cio_loop_stop(sh.loop);
    cio_loop_run_forever(sh.loop);
    cio_loop_get_stats(sh.loop, &after);
    ck_assert_uint_eq(after.callbacks, before.callbacks);
    ck_assert_uint_eq(after.mailbox_received, PRODUCERS * PER_PRODUCER);
    free(sh.msgs);
    cio_loop_free(sh.loop);
}
END_TEST

static void *send_stop_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    cio_loop_call_soon_threadsafe(arg, cio_test_stop_cb, arg);
    return NULL;
}

START_TEST(test_threadsafe_call_wakes_a_sleeping_loop)
{
    cio_loop_t *loop = cio_loop_new();
    pthread_t t;
    /* Nothing is scheduled: the loop sleeps in poll with no timeout. */
    ck_assert_int_eq(pthread_create(&t, NULL, send_stop_later, loop), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    pthread_join(t, NULL);
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    ck_assert_uint_eq(st.mailbox_received, 1);
    ck_assert_uint_eq(st.mailbox_wakeups, 1);
    cio_loop_free(loop);
}
END_TEST

/* Keeps the loop busy (never sleeping) until every producer is done. */
static int busy_cb(void *arg)
{
    shared_t *sh = arg;
    if (atomic_load(&sh->producers_done) < sh->nproducers || sh->received < sh->expected)
        cio_loop_call_soon(sh->loop, busy_cb, sh, NULL);
    else
        cio_loop_stop(sh->loop);
    return 0;
}

static int receive_quiet_cb(void *arg)
{
    msg_t *m = arg;
    m->sh->received++;
    return 0;
}

static void *produce_quiet(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < p->count; i++) {
        msg_t *m = &p->sh->msgs[i];
        *m = (msg_t){p->sh, 0, i};
        cio_loop_call_soon_threadsafe(p->sh->loop, receive_quiet_cb, m);
    }
    atomic_fetch_add(&p->sh->producers_done, 1);
    return NULL;
}

START_TEST(test_busy_loop_receives_without_eventfd_writes)
{
    shared_t sh = {.loop = cio_loop_new(), .expected = 5000, .nproducers = 1};
    sh.msgs = calloc(5000, sizeof(msg_t));
    cio_loop_call_soon(sh.loop, busy_cb, &sh, NULL);
    producer_t p = {&sh, 0, 5000, 0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, produce_quiet, &p), 0);
    ck_assert_int_eq(cio_loop_run_forever(sh.loop), 0);
    pthread_join(t, NULL);
    cio_loop_stats_t st;
    cio_loop_get_stats(sh.loop, &st);
    ck_assert_int_eq(sh.received, 5000);
    ck_assert_uint_eq(st.mailbox_received, 5000);
    ck_assert_uint_eq(st.mailbox_wakeups, 0);
    free(sh.msgs);
    cio_loop_free(sh.loop);
}
END_TEST

static int count_iteration_cb(void *arg)
{
    msg_t *m = arg;
    cio_loop_stats_t st;
    cio_loop_get_stats(m->sh->loop, &st);
    /* Record in which iteration each message ran. */
    m->seq = (int)st.iterations;
    m->sh->received++;
    return 0;
}

START_TEST(test_pending_messages_are_drained_in_one_batch)
{
    shared_t sh = {.loop = cio_loop_new()};
    msg_t m[1000];
    for (int i = 0; i < 1000; i++) {
        m[i] = (msg_t){&sh, 0, -1};
        ck_assert_int_eq(cio_loop_call_soon_threadsafe(sh.loop, count_iteration_cb, &m[i]), 0);
    }
    cio_loop_stop(sh.loop);
    ck_assert_int_eq(cio_loop_run_forever(sh.loop), 0);
    ck_assert_int_eq(sh.received, 1000);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(m[i].seq, 0);
    cio_loop_free(sh.loop);
}
END_TEST

START_TEST(test_messages_queued_before_close_are_dropped_without_leak)
{
    cio_loop_t *loop = cio_loop_new();
    static msg_t m = {0};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(cio_loop_call_soon_threadsafe(loop, receive_cb, &m), 0);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(loop, receive_cb, &m), CIO_ECLOSED);
    cio_loop_free(loop);
}
END_TEST

static int released;

static int release_cb(void *arg)
{
    released++;
    free(arg);
    return 0;
}

static int free_cb(void *arg)
{
    free(arg);
    return 0;
}

/* A message with a destructor: run, or released if the loop closes first. */
START_TEST(test_owned_messages_are_released_when_the_loop_closes_first)
{
    cio_loop_t *loop = cio_loop_new();
    released = 0;
    ck_assert_int_eq(cio_loop_call_soon_threadsafe_owned(loop, free_cb, malloc(8), release_cb), 0);
    cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(released, 0); /* ran: the callback freed it */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(cio_loop_call_soon_threadsafe_owned(loop, free_cb, malloc(8), release_cb),
                         0);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(released, 5);
    void *keep = malloc(8);
    ck_assert_int_eq(cio_loop_call_soon_threadsafe_owned(loop, free_cb, keep, release_cb),
                     CIO_ECLOSED);
    free(keep); /* refused: still the caller's */
    ck_assert_int_eq(cio_loop_call_soon_threadsafe_owned(NULL, free_cb, NULL, NULL), -EINVAL);
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = cio_test_case("mailbox");
    CIO_TEST(tc, test_threadsafe_calls_from_many_threads_run_once_in_order_per_producer);
    CIO_TEST(tc, test_threadsafe_call_wakes_a_sleeping_loop);
    CIO_TEST(tc, test_busy_loop_receives_without_eventfd_writes);
    CIO_TEST(tc, test_pending_messages_are_drained_in_one_batch);
    CIO_TEST(tc, test_messages_queued_before_close_are_dropped_without_leak);
    CIO_TEST(tc, test_owned_messages_are_released_when_the_loop_closes_first);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
