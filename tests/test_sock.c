/*
 * tests/test_sock.c: the sock_* operations (SEMANTICS.md "Datagrams,
 * sockets, DNS") and sendfile (SEMANTICS.md "sendfile"): results, waiting for
 * readiness, cancellation leaving the socket usable, the checks asyncio makes,
 * the native sendfile path, the fallback and the file offset.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static int pair[2];

static void make_pair(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
}

static void close_pair(void)
{
    close(pair[0]);
    close(pair[1]);
}

static int write_later(void *arg)
{
    return send(pair[1], arg, strlen(arg), 0) > 0 ? 0 : -errno;
}

static int recv_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    static char hello[] = "hello";
    cio_loop_call_later(loop, 0.005, write_later, hello, NULL);
    cio_future_t *f = cio_loop_sock_recv(loop, pair[0], 100);
    cio_bytes_t *b = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&b), 0);
    ck_assert_uint_eq(b->len, 5);
    ck_assert_int_eq(memcmp(b->data, "hello", 5), 0);
    cio_future_unref(f);
    /* recv_into reports the byte count. */
    char buf[16];
    send(pair[1], "abc", 3, 0);
    f = cio_loop_sock_recv_into(loop, pair[0], buf, sizeof(buf));
    void *n = NULL;
    ck_assert_int_eq(cio_await(f, &n), 0);
    ck_assert_uint_eq((uintptr_t)n, 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    cio_future_unref(f);
    /* EOF: zero bytes. */
    shutdown(pair[1], SHUT_WR);
    f = cio_loop_sock_recv(loop, pair[0], 10);
    ck_assert_int_eq(cio_await(f, (void **)&b), 0);
    ck_assert_uint_eq(b->len, 0);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_sock_recv_waits_for_data_and_reports_eof)
{
    make_pair();
    ck_assert_int_eq(cio_run(recv_fn, NULL, false, NULL), 0);
    close_pair();
}
END_TEST

static int cancel_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_future_t *f = cio_loop_sock_recv(loop, pair[0], 100);
    ck_assert(!cio_future_done(f));
    ck_assert(cio_future_cancel(f, NULL));
    ck_assert_int_eq(cio_await(f, NULL), -ECANCELED);
    cio_future_unref(f);
    /* The socket is usable: nothing was consumed, a new receive gets the data. */
    send(pair[1], "later", 5, 0);
    cio_sleep(0.005);
    f = cio_loop_sock_recv(loop, pair[0], 100);
    cio_bytes_t *b = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&b), 0);
    ck_assert_uint_eq(b->len, 5);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_cancelled_sock_recv_leaves_the_socket_usable)
{
    make_pair();
    ck_assert_int_eq(cio_run(cancel_fn, NULL, false, NULL), 0);
    close_pair();
}
END_TEST

enum { BIG = 4 * 1024 * 1024 };

static int drain_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    size_t got = 0;
    unsigned char *buf = malloc(65536);
    int bad = 0;
    while (got < BIG) {
        cio_future_t *f = cio_loop_sock_recv_into(loop, pair[1], buf, 65536);
        void *n = NULL;
        int rc = cio_await(f, &n);
        cio_future_unref(f);
        if (rc < 0 || n == NULL)
            break;
        for (size_t i = 0; i < (uintptr_t)n; i++)
            bad += buf[i] != (unsigned char)((got + i) * 7);
        got += (uintptr_t)n;
    }
    free(buf);
    *result = (void *)(uintptr_t)(bad ? 0 : got);
    return 0;
}

static int sendall_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    unsigned char *data = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (unsigned char)(i * 7);
    cio_task_t *reader = cio_loop_create_task(loop, drain_fn, NULL, NULL);
    cio_future_t *f = cio_loop_sock_sendall(loop, pair[0], data, BIG);
    /* What did not go at once was copied: the buffer may change now. */
    memset(data, 0, BIG);
    ck_assert_int_eq(cio_await(f, NULL), 0);
    void *got = NULL;
    ck_assert_int_eq(cio_await(cio_task_future(reader), &got), 0);
    ck_assert_uint_eq((uintptr_t)got, BIG);
    cio_future_unref(f);
    cio_task_unref(reader);
    free(data);
    return 0;
}

START_TEST(test_sock_sendall_sends_everything_in_order)
{
    make_pair();
    ck_assert_int_eq(cio_run(sendall_fn, NULL, false, NULL), 0);
    close_pair();
}
END_TEST

static int udp_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(*bound);
    getsockname(fd, (struct sockaddr *)bound, &len);
    return fd;
}

static int udp_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    struct sockaddr_in a, b;
    int fa = udp_socket(&a), fb = udp_socket(&b);
    cio_future_t *r = cio_loop_sock_recvfrom(loop, fb, 64);
    cio_future_t *s = cio_loop_sock_sendto(loop, fa, "ping", 4, (struct sockaddr *)&b, sizeof(b));
    void *n = NULL;
    ck_assert_int_eq(cio_await(s, &n), 0);
    ck_assert_uint_eq((uintptr_t)n, 4);
    cio_recvfrom_t *d = NULL;
    ck_assert_int_eq(cio_await(r, (void **)&d), 0);
    ck_assert_uint_eq(d->len, 4);
    ck_assert_int_eq(memcmp(d->data, "ping", 4), 0);
    ck_assert_uint_eq(((struct sockaddr_in *)&d->addr)->sin_port, a.sin_port);
    cio_future_unref(r);
    cio_future_unref(s);
    /* recvfrom_into: the count and the sender. */
    char buf[8];
    sendto(fb, "pong", 4, 0, (struct sockaddr *)&a, sizeof(a));
    r = cio_loop_sock_recvfrom_into(loop, fa, buf, sizeof(buf));
    ck_assert_int_eq(cio_await(r, (void **)&d), 0);
    ck_assert_uint_eq(d->len, 4);
    ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
    ck_assert_uint_eq(((struct sockaddr_in *)&d->addr)->sin_port, b.sin_port);
    cio_future_unref(r);
    close(fa);
    close(fb);
    return 0;
}

START_TEST(test_sock_sendto_and_recvfrom_carry_datagrams_and_senders)
{
    ck_assert_int_eq(cio_run(udp_fn, NULL, false, NULL), 0);
}
END_TEST

static int connect_accept_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    listen(lfd, 8);
    cio_future_t *acc = cio_loop_sock_accept(loop, lfd);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cio_future_t *con = cio_loop_sock_connect(loop, cfd, (struct sockaddr *)&a, sizeof(a));
    ck_assert_int_eq(cio_await(con, NULL), 0);
    cio_accepted_t *ac = NULL;
    ck_assert_int_eq(cio_await(acc, (void **)&ac), 0);
    ck_assert_int_ge(ac->fd, 0);
    ck_assert(fcntl(ac->fd, F_GETFL) & O_NONBLOCK);
    struct sockaddr_in local;
    len = sizeof(local);
    getsockname(cfd, (struct sockaddr *)&local, &len);
    ck_assert_uint_eq(((struct sockaddr_in *)&ac->addr)->sin_port, local.sin_port);
    close(ac->fd);
    cio_future_unref(acc);
    cio_future_unref(con);
    /* Connecting to a closed port fails with the socket's error. */
    int dfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    close(lfd);
    con = cio_loop_sock_connect(loop, dfd, (struct sockaddr *)&a, sizeof(a));
    ck_assert_int_eq(cio_await(con, NULL), -ECONNREFUSED);
    cio_future_unref(con);
    close(cfd);
    close(dfd);
    return 0;
}

START_TEST(test_sock_connect_and_accept_make_a_connection)
{
    ck_assert_int_eq(cio_run(connect_accept_fn, NULL, false, NULL), 0);
}
END_TEST

static int checks_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int blocking[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, blocking);
    cio_future_t *f = cio_loop_sock_recv(loop, blocking[0], 10);
    ck_assert_int_eq(cio_await(f, NULL), -EINVAL); /* debug mode checks blocking sockets */
    cio_future_unref(f);
    ck_assert_ptr_null(cio_loop_sock_recv(loop, -1, 10));
    ck_assert_ptr_null(cio_loop_sock_connect(loop, pair[0], NULL, 0));
    ck_assert_ptr_null(cio_loop_sock_sendto(loop, pair[0], "x", 1, NULL, 0));
    close(blocking[0]);
    close(blocking[1]);
    return 0;
}

START_TEST(test_sock_operations_check_their_arguments)
{
    make_pair();
    ck_assert_int_eq(cio_run(checks_fn, NULL, true, NULL), 0);
    close_pair();
}
END_TEST

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

static const cio_protocol_ops_t empty_ops = {0};

static int owned_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_protocol_t proto = {&empty_ops};
    cio_future_t *f = cio_loop_connect_accepted_socket(loop, static_factory, &proto, pair[0], NULL);
    cio_transport_t *t = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&t), 0);
    cio_future_t *r = cio_loop_sock_recv(loop, pair[0], 10);
    ck_assert_int_eq(cio_await(r, NULL), -EBUSY);
    cio_future_unref(r);
    cio_transport_abort(t);
    cio_future_unref(f);
    cio_sleep(0);
    return 0;
}

START_TEST(test_sock_operation_on_a_transport_socket_is_refused)
{
    make_pair();
    ck_assert_int_eq(cio_run(owned_fn, NULL, false, NULL), 0);
    close(pair[1]);
}
END_TEST

/* A file of @p n pattern bytes; returns its descriptor. */
static int pattern_file(size_t n)
{
    char path[] = "/tmp/cio-sendfile-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 13 + 1);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    free(buf);
    return fd;
}

typedef struct sf_case {
    int file;
    off_t offset;
    size_t count;
    size_t expect;
} sf_case_t;

static int sendfile_fn(void *arg, void **result)
{
    sf_case_t *c = arg;
    cio_loop_t *loop = cio_get_running_loop();
    cio_task_t *reader = cio_loop_create_task(loop, drain_fn, NULL, NULL);
    cio_future_t *f = cio_loop_sock_sendfile(loop, pair[0], c->file, c->offset, c->count, false);
    void *sent = NULL;
    ck_assert_int_eq(cio_await(f, &sent), 0);
    ck_assert_uint_eq((uintptr_t)sent, c->expect);
    /* The file offset is left after the last byte sent. */
    ck_assert_int_eq(lseek(c->file, 0, SEEK_CUR), c->offset + (off_t)c->expect);
    cio_future_unref(f);
    shutdown(pair[0], SHUT_WR);
    cio_task_cancel(reader, NULL);
    cio_await(cio_task_future(reader), NULL);
    cio_task_unref(reader);
    return 0;
}

START_TEST(test_sock_sendfile_sends_the_file_natively_and_moves_its_offset)
{
    make_pair();
    sf_case_t c = {.file = pattern_file(300000), .offset = 1000, .count = 0, .expect = 299000};
    ck_assert_int_eq(cio_run(sendfile_fn, &c, false, NULL), 0);
    close(c.file);
    close_pair();
}
END_TEST

typedef struct fb_case {
    size_t count; /* procfs files have no size: say how much */
    bool fallback;
    int rc;
    size_t sent;
    char got[4096];
    size_t gotlen;
} fb_case_t;

static int fallback_fn(void *arg, void **result)
{
    fb_case_t *c = arg;
    cio_loop_t *loop = cio_get_running_loop();
    /* The kernel will not sendfile from procfs: asyncio's "not available". */
    int file = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    cio_future_t *f = cio_loop_sock_sendfile(loop, pair[0], file, 0, c->count, c->fallback);
    void *sent = NULL;
    c->rc = cio_await(f, &sent);
    c->sent = (uintptr_t)sent;
    cio_future_unref(f);
    close(file);
    cio_sleep(0.01);
    ssize_t n = recv(pair[1], c->got, sizeof(c->got), 0);
    c->gotlen = n > 0 ? (size_t)n : 0;
    return 0;
}

START_TEST(test_sock_sendfile_falls_back_or_says_not_available)
{
    char cmdline[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t len = read(fd, cmdline, sizeof(cmdline));
    close(fd);
    make_pair();
    fb_case_t with = {.count = (size_t)len, .fallback = true};
    ck_assert_int_eq(cio_run(fallback_fn, &with, false, NULL), 0);
    if (with.rc == 0 && with.sent == 0)
        ck_abort_msg("procfs gave nothing to send");
    /* sendfile(2) may accept procfs on some kernels: then it is native. */
    ck_assert_int_eq(with.rc, 0);
    ck_assert_uint_eq(with.gotlen, (size_t)len);
    ck_assert_int_eq(memcmp(with.got, cmdline, (size_t)len), 0);
    fb_case_t without = {.count = (size_t)len, .fallback = false};
    ck_assert_int_eq(cio_run(fallback_fn, &without, false, NULL), 0);
    ck_assert(without.rc == CIO_ENOSENDFILE || without.rc == 0);
    ck_assert(without.rc != 0 || without.gotlen == (size_t)len);
    close_pair();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("sock");
    TCase *tc = cio_test_case("sock");
    CIO_TEST(tc, test_sock_recv_waits_for_data_and_reports_eof);
    CIO_TEST(tc, test_cancelled_sock_recv_leaves_the_socket_usable);
    CIO_TEST(tc, test_sock_sendall_sends_everything_in_order);
    CIO_TEST(tc, test_sock_sendto_and_recvfrom_carry_datagrams_and_senders);
    CIO_TEST(tc, test_sock_connect_and_accept_make_a_connection);
    CIO_TEST(tc, test_sock_operations_check_their_arguments);
    CIO_TEST(tc, test_sock_operation_on_a_transport_socket_is_refused);
    CIO_TEST(tc, test_sock_sendfile_sends_the_file_natively_and_moves_its_offset);
    CIO_TEST(tc, test_sock_sendfile_falls_back_or_says_not_available);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
