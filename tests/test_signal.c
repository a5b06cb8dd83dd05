/*
 * tests/test_signal.c: add_signal_handler / remove_signal_handler
 * (SEMANTICS.md "Pipes, subprocesses, signals"): the callback runs on the
 * registering loop's thread wherever the signal lands, several loops can
 * handle one signal, invalid and uncatchable signals are refused, and removing
 * the last handler restores the default disposition.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

typedef struct got {
    cio_loop_t *loop;
    pthread_t loop_thread;
    pthread_t ran_on;
    cio_loop_t *ran_in;
    int count;
} got_t;

static int on_signal(void *arg)
{
    got_t *g = arg;
    g->ran_on = pthread_self();
    g->ran_in = cio_get_running_loop();
    g->count++;
    cio_loop_stop(g->loop);
    return 0;
}

static void *send_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    kill(getpid(), *(int *)arg);
    return NULL;
}

START_TEST(test_handler_runs_on_the_registering_loop)
{
    got_t g = {.loop = cio_loop_new(), .loop_thread = pthread_self()};
    ck_assert_int_eq(cio_loop_add_signal_handler(g.loop, SIGUSR1, on_signal, &g), 0);
    /* The signal comes from, and may land on, another thread. */
    int sig = SIGUSR1;
    pthread_t t;
    pthread_create(&t, NULL, send_later, &sig);
    ck_assert_int_eq(cio_loop_run_forever(g.loop), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(g.count, 1);
    ck_assert(pthread_equal(g.ran_on, pthread_self()));
    ck_assert_ptr_eq(g.ran_in, g.loop);
    ck_assert_int_eq(cio_loop_remove_signal_handler(g.loop, SIGUSR1), 1);
    ck_assert_int_eq(cio_loop_remove_signal_handler(g.loop, SIGUSR1), 0);
    cio_loop_free(g.loop);
}
END_TEST

static _Atomic int registered;

static void *loop_thread(void *arg)
{
    got_t *g = arg;
    g->loop = cio_loop_new();
    g->loop_thread = pthread_self();
    cio_loop_add_signal_handler(g->loop, SIGUSR2, on_signal, g);
    atomic_fetch_add(&registered, 1);
    cio_loop_run_forever(g->loop);
    cio_loop_free(g->loop); /* closing drops its handler */
    return NULL;
}

START_TEST(test_several_loops_each_get_the_signal_on_their_own_thread)
{
    got_t g[2] = {0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, loop_thread, &g[i]);
    /* Let both register and go to sleep; then one signal reaches both loops. */
    while (atomic_load(&registered) < 2) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    kill(getpid(), SIGUSR2);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(g[i].count, 1);
        ck_assert(pthread_equal(g[i].ran_on, g[i].loop_thread));
    }
    /* Both loops are gone: SIGUSR2 is back to its default. */
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
}
END_TEST

START_TEST(test_invalid_and_uncatchable_signals_are_refused)
{
    cio_loop_t *loop = cio_loop_new();
    got_t g = {.loop = loop};
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGKILL, on_signal, &g), -EINVAL);
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGSTOP, on_signal, &g), -EINVAL);
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, 0, on_signal, &g), -EINVAL);
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, NSIG, on_signal, &g), -EINVAL);
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGUSR1, NULL, &g), -EINVAL);
    ck_assert_int_eq(cio_loop_remove_signal_handler(loop, -3), -EINVAL);
    ck_assert_int_eq(cio_loop_remove_signal_handler(loop, SIGUSR1), 0);
    cio_loop_close(loop);
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGUSR1, on_signal, &g), CIO_ECLOSED);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_removing_the_last_handler_restores_the_default)
{
    cio_loop_t *loop = cio_loop_new();
    got_t g = {.loop = loop};
    struct sigaction sa;
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGHUP, on_signal, &g), 0);
    sigaction(SIGHUP, NULL, &sa);
    ck_assert(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    /* A second add replaces the callback, it does not stack. */
    ck_assert_int_eq(cio_loop_add_signal_handler(loop, SIGHUP, on_signal, &g), 0);
    ck_assert_int_eq(cio_loop_remove_signal_handler(loop, SIGHUP), 1);
    sigaction(SIGHUP, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
    ck_assert_int_eq(cio_loop_remove_signal_handler(loop, SIGHUP), 0);
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("signal");
    TCase *tc = cio_test_case("signal");
    CIO_TEST(tc, test_handler_runs_on_the_registering_loop);
    CIO_TEST(tc, test_several_loops_each_get_the_signal_on_their_own_thread);
    CIO_TEST(tc, test_invalid_and_uncatchable_signals_are_refused);
    CIO_TEST(tc, test_removing_the_last_handler_restores_the_default);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
