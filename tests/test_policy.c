/*
 * tests/test_policy.c: get_running_loop, get_event_loop, set_event_loop,
 * new_event_loop and event loop policies. Check forks every test, so the test
 * body runs in the child's only thread, which is its main thread.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "testutil.h"

/* Run @p fn(@p arg) in a new thread (never the main thread) and wait for it. */
static void run_in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, fn, arg), 0);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
}

/* What a callback saw of the running and the current loop. */
typedef struct probe {
    cio_loop_t *loop;
    cio_loop_t *running;
    cio_loop_t *current;
    int err;
} probe_t;

static int probe_cb(void *arg)
{
    probe_t *p = arg;
    p->running = cio_get_running_loop();
    p->current = cio_get_event_loop(&p->err);
    cio_loop_stop(p->loop);
    return 0;
}

/* No loop runs before run_forever() or after it returns. */
START_TEST(test_get_running_loop_is_null_outside_running_loop)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_ptr_null(cio_get_running_loop());
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_ptr_null(cio_get_running_loop());
    cio_loop_free(loop);
}
END_TEST

/* A callback sees its own loop as the running loop. */
START_TEST(test_get_running_loop_returns_loop_inside_callback)
{
    cio_loop_t *loop = cio_loop_new();
    probe_t probe = {.loop = loop};
    ck_assert_int_eq(cio_loop_call_soon(loop, probe_cb, &probe, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_ptr_eq(probe.running, loop);
    cio_loop_free(loop);
}
END_TEST

/* get_event_loop() prefers the running loop to the policy's current one. */
START_TEST(test_get_event_loop_returns_running_loop)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_t *other = cio_loop_new();
    probe_t probe = {.loop = loop};
    /* The running loop wins over the thread's current loop. */
    ck_assert_int_eq(cio_set_event_loop(other), 0);
    ck_assert_int_eq(cio_loop_call_soon(loop, probe_cb, &probe, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_ptr_eq(probe.current, loop);
    ck_assert_ptr_eq(cio_get_event_loop(NULL), other);
    ck_assert_int_eq(cio_set_event_loop(NULL), 0);
    cio_loop_free(other);
    cio_loop_free(loop);
}
END_TEST

/* The default policy creates the main thread's loop on first use, once. */
START_TEST(test_get_event_loop_creates_loop_in_main_thread)
{
    int err = 0;
    ck_assert_int_eq(gettid(), getpid());
    cio_loop_t *first = cio_get_event_loop(&err);
    ck_assert_ptr_nonnull(first);
    ck_assert(!cio_loop_is_closed(first));
    cio_loop_t *second = cio_get_event_loop(&err);
    ck_assert_ptr_eq(second, first);
    ck_assert_int_eq(cio_set_event_loop(NULL), 0);
    ck_assert_int_eq(cio_loop_free(first), 0);
}
END_TEST

/* asyncio raises once set_event_loop() was called, even with None, in the main thread too. */
START_TEST(test_get_event_loop_after_set_event_loop_null_makes_no_loop)
{
    int err = 0;
    ck_assert_int_eq(cio_set_event_loop(NULL), 0);
    ck_assert_ptr_null(cio_get_event_loop(&err));
    ck_assert_msg(err == CIO_ENOPOLICYLOOP, "err %s", cio_err_name(err));
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_set_event_loop(loop), 0);
    ck_assert_ptr_eq(cio_get_event_loop(NULL), loop);
    ck_assert_int_eq(cio_set_event_loop(NULL), 0);
    ck_assert_int_eq(cio_loop_free(loop), 0);
}
END_TEST

/* get_event_loop in a thread that is not the main thread. */
typedef struct worker {
    bool is_main;
    bool got_before;
    int err_before;
    int set_rc;
    bool got_set_loop;
    bool got_after_free;
    int err_after_free;
} worker_t;

static void *unset_then_set_worker(void *arg)
{
    worker_t *w = arg;
    w->is_main = gettid() == getpid();
    w->got_before = cio_get_event_loop(&w->err_before) != NULL;
    cio_loop_t *loop = cio_loop_new();
    w->set_rc = cio_set_event_loop(loop);
    w->got_set_loop = cio_get_event_loop(NULL) == loop;
    cio_set_event_loop(NULL);
    cio_loop_free(loop);
    return NULL;
}

/* Elsewhere than the main thread, only set_event_loop() gives a thread a loop. */
START_TEST(test_get_event_loop_in_other_thread_needs_set_event_loop)
{
    worker_t w = {.err_before = 0};
    run_in_thread(unset_then_set_worker, &w);
    ck_assert(!w.is_main);
    ck_assert(!w.got_before);
    ck_assert_int_eq(w.err_before, CIO_ENOPOLICYLOOP);
    ck_assert_int_eq(w.set_rc, 0);
    ck_assert(w.got_set_loop);
}
END_TEST

static void *free_current_worker(void *arg)
{
    worker_t *w = arg;
    cio_loop_t *loop = cio_loop_new();
    w->set_rc = cio_set_event_loop(loop);
    w->got_set_loop = cio_get_event_loop(NULL) == loop;
    cio_loop_free(loop);
    w->got_after_free = cio_get_event_loop(&w->err_after_free) != NULL;
    return NULL;
}

/* A freed loop stops being its thread's current loop. */
START_TEST(test_freeing_current_loop_unsets_it)
{
    worker_t w = {.err_after_free = 0};
    run_in_thread(free_current_worker, &w);
    ck_assert_int_eq(w.set_rc, 0);
    ck_assert(w.got_set_loop);
    ck_assert(!w.got_after_free);
    ck_assert_int_eq(w.err_after_free, CIO_ENOPOLICYLOOP);
}
END_TEST

/* new_event_loop() creates a fresh, open, idle loop each time. */
START_TEST(test_new_event_loop_returns_distinct_loops)
{
    cio_loop_t *a = cio_new_event_loop();
    cio_loop_t *b = cio_new_event_loop();
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert(!cio_loop_is_closed(a));
    ck_assert(!cio_loop_is_closed(b));
    ck_assert(!cio_loop_is_running(b));
    cio_loop_free(a);
    cio_loop_free(b);
}
END_TEST

/* A custom policy counting its calls through its data pointer. */
typedef struct counting {
    int gets, sets, news;
    cio_loop_t *current;
} counting_t;

static cio_loop_t *counting_get(void *data, int *err)
{
    counting_t *c = data;
    c->gets++;
    if (!c->current)
        *err = CIO_ENOPOLICYLOOP;
    return c->current;
}

static int counting_set(void *data, cio_loop_t *loop)
{
    counting_t *c = data;
    c->sets++;
    c->current = loop;
    return 0;
}

static cio_loop_t *counting_new(void *data)
{
    counting_t *c = data;
    c->news++;
    return cio_loop_new();
}

/* An installed policy answers get/set/new_event_loop, with its data pointer. */
START_TEST(test_custom_policy_is_used)
{
    counting_t counts = {0};
    const cio_policy_t policy = {counting_get, counting_set, counting_new, &counts};
    int err = 0;
    ck_assert_int_eq(cio_set_event_loop_policy(&policy), 0);
    ck_assert_ptr_eq(cio_get_event_loop_policy(), &policy);

    /* The default policy would create a loop here, in the main thread. */
    ck_assert_ptr_null(cio_get_event_loop(&err));
    ck_assert_int_eq(err, CIO_ENOPOLICYLOOP);
    ck_assert_int_eq(counts.gets, 1);

    cio_loop_t *loop = cio_new_event_loop();
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(counts.news, 1);
    ck_assert_int_eq(cio_set_event_loop(loop), 0);
    ck_assert_int_eq(counts.sets, 1);
    ck_assert_ptr_eq(counts.current, loop);
    ck_assert_ptr_eq(cio_get_event_loop(NULL), loop);
    ck_assert_int_eq(counts.gets, 2);

    ck_assert_int_eq(cio_set_event_loop_policy(NULL), 0);
    cio_loop_free(loop);
}
END_TEST

/* A policy missing a function is refused and the installed one stays. */
START_TEST(test_set_event_loop_policy_rejects_missing_function)
{
    counting_t counts = {0};
    const cio_policy_t no_get = {NULL, counting_set, counting_new, &counts};
    const cio_policy_t no_set = {counting_get, NULL, counting_new, &counts};
    const cio_policy_t no_new = {counting_get, counting_set, NULL, &counts};
    const cio_policy_t *before = cio_get_event_loop_policy();
    ck_assert_int_eq(cio_set_event_loop_policy(&no_get), -EINVAL);
    ck_assert_int_eq(cio_set_event_loop_policy(&no_set), -EINVAL);
    ck_assert_int_eq(cio_set_event_loop_policy(&no_new), -EINVAL);
    ck_assert_ptr_eq(cio_get_event_loop_policy(), before);
}
END_TEST

/* NULL reinstalls the default policy, functions and behaviour. */
START_TEST(test_set_event_loop_policy_null_restores_default)
{
    counting_t counts = {0};
    const cio_policy_t policy = {counting_get, counting_set, counting_new, &counts};
    ck_assert_int_eq(cio_set_event_loop_policy(&policy), 0);
    ck_assert_int_eq(cio_set_event_loop_policy(NULL), 0);

    const cio_policy_t *p = cio_get_event_loop_policy();
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_ne(p, &policy);
    ck_assert(p->get_event_loop && p->get_event_loop != counting_get);
    ck_assert(p->set_event_loop && p->set_event_loop != counting_set);
    ck_assert(p->new_event_loop && p->new_event_loop != counting_new);

    /* The default policy is back: it creates a loop in the main thread. */
    cio_loop_t *loop = cio_get_event_loop(NULL);
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(counts.gets, 0);
    ck_assert_int_eq(cio_set_event_loop(NULL), 0);
    cio_loop_free(loop);
}
END_TEST

/* From inside a running loop's callback, try to run @c target. */
typedef struct nested {
    cio_loop_t *loop;
    cio_loop_t *target;
    int run_rc;
    int until_rc;
} nested_t;

static int nested_run_cb(void *arg)
{
    nested_t *n = arg;
    /* Should the nested run start after all, it returns at once. */
    cio_loop_stop(n->target);
    n->run_rc = cio_loop_run_forever(n->target);
    cio_future_t *fut = cio_loop_create_future(n->target);
    cio_loop_stop(n->target);
    n->until_rc = cio_loop_run_until_complete(n->target, fut, NULL);
    cio_future_unref(fut);
    cio_loop_stop(n->loop);
    return 0;
}

/* One running loop per thread: running another from a callback fails. */
START_TEST(test_running_second_loop_inside_running_loop_fails)
{
    cio_loop_t *loop = cio_loop_new();
    cio_loop_t *other = cio_loop_new();
    nested_t n = {loop, other, 0, 0};
    ck_assert_int_eq(cio_loop_call_soon(loop, nested_run_cb, &n, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(n.run_rc, CIO_EOTHERLOOP);
    ck_assert_int_eq(n.until_rc, CIO_EOTHERLOOP);
    ck_assert(!cio_loop_is_running(other));
    cio_loop_free(other);
    cio_loop_free(loop);
}
END_TEST

/* A running loop cannot be run again from one of its own callbacks. */
START_TEST(test_running_running_loop_again_fails)
{
    cio_loop_t *loop = cio_loop_new();
    nested_t n = {loop, loop, 0, 0};
    ck_assert_int_eq(cio_loop_call_soon(loop, nested_run_cb, &n, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(n.run_rc, CIO_ERUNNING);
    ck_assert_int_eq(n.until_rc, CIO_ERUNNING);
    ck_assert(!cio_loop_is_running(loop));
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("policy");

    TCase *tc = cio_test_case("loops");
    CIO_TEST(tc, test_get_running_loop_is_null_outside_running_loop);
    CIO_TEST(tc, test_get_running_loop_returns_loop_inside_callback);
    CIO_TEST(tc, test_get_event_loop_returns_running_loop);
    CIO_TEST(tc, test_get_event_loop_creates_loop_in_main_thread);
    CIO_TEST(tc, test_get_event_loop_after_set_event_loop_null_makes_no_loop);
    CIO_TEST(tc, test_get_event_loop_in_other_thread_needs_set_event_loop);
    CIO_TEST(tc, test_freeing_current_loop_unsets_it);
    CIO_TEST(tc, test_new_event_loop_returns_distinct_loops);
    CIO_TEST(tc, test_running_second_loop_inside_running_loop_fails);
    CIO_TEST(tc, test_running_running_loop_again_fails);
    suite_add_tcase(s, tc);

    tc = cio_test_case("policies");
    CIO_TEST(tc, test_custom_policy_is_used);
    CIO_TEST(tc, test_set_event_loop_policy_rejects_missing_function);
    CIO_TEST(tc, test_set_event_loop_policy_null_restores_default);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
