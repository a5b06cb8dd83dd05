/*
 * tests/test_io.c: add_reader / add_writer (asyncio's selector semantics):
 * readiness queues the callback behind what is already ready, a reader can be
 * replaced and removed, descriptors owned by a transport are refused, and a
 * descriptor that stays ready never stalls the loop. Name lookups are in
 * tests/test_resolver.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"

typedef struct rec {
    cio_loop_t *loop;
    cio_test_order_t order;
    int fd;
    int stop_after;
} rec_t;

static void push(rec_t *r, int v)
{
    r->order.v[r->order.n++] = v;
    if (r->stop_after && r->order.n >= r->stop_after)
        cio_loop_stop(r->loop);
}

static int reader_a(void *arg)
{
    push(arg, 1);
    return 0;
}

static int reader_b(void *arg)
{
    push(arg, 2);
    return 0;
}

static int soon_cb(void *arg)
{
    push(arg, 9);
    return 0;
}

static void one_iteration(cio_loop_t *loop)
{
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

START_TEST(test_reader_runs_after_callbacks_already_ready)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    rec_t r = {.loop = cio_loop_new()};
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(cio_loop_add_reader(r.loop, p[0], reader_a, &r), 0);
    ck_assert_int_eq(cio_loop_call_soon(r.loop, soon_cb, &r, NULL), 0);
    one_iteration(r.loop);
    /* asyncio order: what was ready before the poll, then the I/O callbacks. */
    ck_assert_int_eq(r.order.n, 2);
    ck_assert_int_eq(r.order.v[0], 9);
    ck_assert_int_eq(r.order.v[1], 1);
    ck_assert_int_eq(cio_loop_remove_reader(r.loop, p[0]), 1);
    ck_assert_int_eq(cio_loop_remove_reader(r.loop, p[0]), 0);
    cio_loop_free(r.loop);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_add_reader_replaces_the_previous_reader)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    rec_t r = {.loop = cio_loop_new()};
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    cio_loop_add_reader(r.loop, p[0], reader_a, &r);
    cio_loop_add_reader(r.loop, p[0], reader_b, &r);
    one_iteration(r.loop);
    ck_assert_int_eq(r.order.n, 1);
    ck_assert_int_eq(r.order.v[0], 2);
    cio_loop_free(r.loop);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* Removes the reader of the pipe from inside an earlier callback. */
static int remove_cb(void *arg)
{
    rec_t *r = arg;
    cio_loop_remove_reader(r->loop, r->fd);
    return 0;
}

START_TEST(test_removing_a_reader_cancels_its_queued_call)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    rec_t r = {.loop = cio_loop_new(), .fd = p[0]};
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    /* Both are ready in one poll; the writer, registered first, is queued
     * first and removes the reader whose call is already queued behind it. */
    cio_loop_add_writer(r.loop, p[1], remove_cb, &r);
    cio_loop_add_reader(r.loop, p[0], reader_a, &r);
    one_iteration(r.loop);
    ck_assert_int_eq(r.order.n, 0);
    ck_assert_int_eq(cio_loop_remove_reader(r.loop, p[0]), 0);
    ck_assert_int_eq(cio_loop_remove_writer(r.loop, p[1]), 1);
    cio_loop_free(r.loop);
    close(p[0]);
    close(p[1]);
}
END_TEST

static int count_cb(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

START_TEST(test_a_descriptor_that_stays_ready_does_not_stall_the_loop)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    cio_loop_t *loop = cio_loop_new();
    int writable = 0;
    /* An empty pipe is always writable: its writer fires every iteration. */
    cio_loop_add_writer(loop, p[1], count_cb, &writable);
    cio_test_chain_t c = {loop, 50};
    cio_loop_call_soon(loop, cio_test_chain_cb, &c, NULL);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(c.left, 0);
    /* Once per iteration, never queued twice. */
    ck_assert_int_ge(writable, 48);
    ck_assert_int_le(writable, 50);
    cio_loop_free(loop);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_add_reader_bad_arguments)
{
    cio_loop_t *loop = cio_loop_new();
    ck_assert_int_eq(cio_loop_add_reader(loop, -1, reader_a, NULL), -EBADF);
    ck_assert_int_eq(cio_loop_add_reader(loop, 0, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_add_writer(NULL, 0, reader_a, NULL), -EINVAL);
    ck_assert_int_eq(cio_loop_remove_reader(loop, 12345), 0);
    cio_loop_close(loop);
    ck_assert_int_eq(cio_loop_add_reader(loop, 0, reader_a, NULL), CIO_ECLOSED);
    cio_loop_free(loop);
}
END_TEST

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

static const cio_protocol_ops_t noop_ops = {0};

START_TEST(test_descriptor_owned_by_a_transport_is_refused)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cio_loop_t *loop = cio_loop_new();
    cio_protocol_t proto = {&noop_ops};
    ck_assert_ptr_null(cio_loop_connect_accepted_socket(loop, NULL, NULL, sv[0], NULL));
    cio_future_t *f = cio_loop_connect_accepted_socket(loop, static_factory, &proto, sv[0], NULL);
    cio_transport_t *t = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, (void **)&t), 0);
    ck_assert_int_eq(cio_loop_add_reader(loop, sv[0], reader_a, NULL), -EBUSY);
    ck_assert_int_eq(cio_loop_add_writer(loop, sv[0], reader_a, NULL), -EBUSY);
    ck_assert_int_eq(cio_loop_remove_reader(loop, sv[0]), -EBUSY);
    cio_transport_close(t);
    one_iteration(loop);
    /* The transport is gone: the descriptor is free (and closed) again. */
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
    cio_future_unref(f);
    cio_loop_free(loop);
    close(sv[1]);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = cio_test_case("io");
    CIO_TEST(tc, test_reader_runs_after_callbacks_already_ready);
    CIO_TEST(tc, test_add_reader_replaces_the_previous_reader);
    CIO_TEST(tc, test_removing_a_reader_cancels_its_queued_call);
    CIO_TEST(tc, test_a_descriptor_that_stays_ready_does_not_stall_the_loop);
    CIO_TEST(tc, test_add_reader_bad_arguments);
    CIO_TEST(tc, test_descriptor_owned_by_a_transport_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
