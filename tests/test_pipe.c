/*
 * tests/test_pipe.c: pipe transports (coreio/pipe.h): read pipes (data, EOF
 * then connection_lost, pausing), write pipes (flow control, write_eof, the
 * reader going away, no SIGPIPE), their arguments, and python3 on the other
 * end of os.pipe pairs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

#define KIB 1024
#define MIB (1024 * 1024)

#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 10.0;                              \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.001);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)

/* ---- a recording protocol ------------------------------------------------ */

typedef struct rec {
    cio_protocol_t base;
    cio_transport_t *t;
    char order[16]; /* M made, D data (a run counts once), E eof, P pause, R resume, L lost */
    int lost, lost_err, pauses, resumes;
    bool pause_on_data;  /* pause reading at the first data_received */
    size_t nrx, bad;     /* bytes received; how many broke the pattern */
    int eof_return;      /* what eof_received returns */
} rec_t;

static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 13));
}

static void note(rec_t *r, char ev)
{
    size_t n = strlen(r->order);
    if (!(ev == 'D' && n > 0 && r->order[n - 1] == 'D') && n + 1 < sizeof(r->order))
        r->order[n] = ev;
}

static int rec_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((rec_t *)p)->t = t;
    note((rec_t *)p, 'M');
    return 0;
}

static int rec_data(cio_protocol_t *p, const void *data, size_t len)
{
    rec_t *r = (rec_t *)p;
    note(r, 'D');
    for (size_t i = 0; i < len; i++)
        r->bad += ((const uint8_t *)data)[i] != pattern_at(r->nrx + i);
    r->nrx += len;
    if (r->pause_on_data) {
        r->pause_on_data = false;
        cio_transport_pause_reading(r->t);
    }
    return 0;
}

static int rec_eof(cio_protocol_t *p)
{
    note((rec_t *)p, 'E');
    return ((rec_t *)p)->eof_return;
}

static int rec_pause(cio_protocol_t *p)
{
    ((rec_t *)p)->pauses++;
    note((rec_t *)p, 'P');
    return 0;
}

static int rec_resume(cio_protocol_t *p)
{
    ((rec_t *)p)->resumes++;
    note((rec_t *)p, 'R');
    return 0;
}

static void rec_lost(cio_protocol_t *p, int err)
{
    rec_t *r = (rec_t *)p;
    note(r, 'L');
    r->lost++;
    r->lost_err = err;
    r->t = NULL;
}

static const cio_protocol_ops_t rec_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
    .data_received = rec_data,
    .eof_received = rec_eof,
};

static void rec_init(rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->base.ops = &rec_ops;
}

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

static void *await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    ck_assert_int_eq(cio_await(f, &res), 0);
    cio_future_unref(f);
    return res;
}

static void fill(uint8_t *buf, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_at(off + i);
}

/* Write all of @p len pattern bytes from @p off to the blocking @p fd. */
static void write_all(int fd, size_t off, size_t len)
{
    uint8_t buf[4096];
    while (len > 0) {
        size_t n = len < sizeof(buf) ? len : sizeof(buf);
        fill(buf, off, n);
        ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
        off += n;
        len -= n;
    }
}

/* ---- read pipes -------------------------------------------------------------- */

static int read_fn(void *arg, void **result)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t =
        await_ok(cio_loop_connect_read_pipe(cio_get_running_loop(), static_factory, &r, p[0]));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "pipe", &info), 0);
    ck_assert_int_eq(info.fd, p[0]);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "socket", &info), -ENOENT);
    ck_assert_int_eq(cio_transport_write(t, "x", 1), -EINVAL);
    ck_assert(!cio_transport_can_write_eof(t));
    ck_assert_int_eq(cio_transport_write_eof(t), -ENOTSUP);
    write_all(p[1], 0, 32 * KIB); /* what the pipe holds: this task is the loop's */
    WAIT_UNTIL(r.nrx == 32 * KIB);
    r.eof_return = 1; /* asked to stay open: a read pipe closes anyway */
    close(p[1]);
    WAIT_UNTIL(r.lost == 1);
    ck_assert_str_eq(r.order, "MDEL");
    ck_assert_int_eq(r.lost_err, 0);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(fcntl(p[0], F_GETFD), -1); /* the transport closed it */
    return 0;
}

START_TEST(test_a_read_pipe_delivers_data_then_eof_then_connection_lost)
{
    ck_assert_int_eq(cio_run(read_fn, NULL, false, NULL), 0);
}
END_TEST

static int paused_fn(void *arg, void **result)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    rec_t r;
    rec_init(&r);
    r.pause_on_data = true;
    cio_transport_t *t =
        await_ok(cio_loop_connect_read_pipe(cio_get_running_loop(), static_factory, &r, p[0]));
    write_all(p[1], 0, 10);
    WAIT_UNTIL(r.nrx == 10);
    write_all(p[1], 10, 1000);
    close(p[1]);
    cio_sleep(0.05);
    ck_assert_uint_eq(r.nrx, 10); /* paused: neither the data nor the EOF */
    ck_assert_str_eq(r.order, "MD");
    cio_transport_resume_reading(t);
    WAIT_UNTIL(r.lost == 1);
    ck_assert_uint_eq(r.nrx, 1010);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_str_eq(r.order, "MDEL");
    return 0;
}

START_TEST(test_a_paused_read_pipe_holds_data_and_eof_until_resumed)
{
    ck_assert_int_eq(cio_run(paused_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- write pipes --------------------------------------------------------------- */

/* Read what @p fd (non-blocking) has into the pattern check; true at EOF. */
static bool drain(int fd, size_t *got, size_t *bad)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0)
            return true;
        if (n < 0)
            return false;
        for (ssize_t i = 0; i < n; i++)
            *bad += buf[i] != pattern_at(*got + (size_t)i);
        *got += (size_t)n;
    }
}

static int write_fn(void *arg, void **result)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t =
        await_ok(cio_loop_connect_write_pipe(cio_get_running_loop(), static_factory, &r, p[1]));
    ck_assert(cio_transport_can_write_eof(t));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "pipe", &info), 0);
    ck_assert_int_eq(info.fd, p[1]);
    /* 1 MiB into a 64 KiB pipe nobody reads: buffered, and the protocol told to pause. */
    size_t total = MIB;
    uint8_t *buf = malloc(total);
    fill(buf, 0, total);
    for (size_t off = 0; off < total; off += 64 * KIB)
        ck_assert_int_eq(cio_transport_write(t, buf + off, 64 * KIB), 0);
    ck_assert_int_eq(r.pauses, 1);
    ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 64 * KIB);
    ck_assert_int_eq(cio_transport_write_eof(t), 0);
    ck_assert_int_eq(cio_transport_write(t, "x", 1), -EPIPE);
    size_t got = 0, bad = 0;
    bool eof = false;
    while (!eof) {
        eof = drain(p[0], &got, &bad);
        cio_sleep(0.001);
    }
    ck_assert_uint_eq(got, total);
    ck_assert_uint_eq(bad, 0);
    WAIT_UNTIL(r.lost == 1);
    ck_assert_str_eq(r.order, "MPRL");
    ck_assert_int_eq(r.lost_err, 0);
    close(p[0]);
    free(buf);
    return 0;
}

START_TEST(test_a_write_pipe_buffers_under_flow_control_and_write_eof_closes_once_drained)
{
    ck_assert_int_eq(cio_run(write_fn, NULL, false, NULL), 0);
}
END_TEST

/* The reader goes away: noticed while idle (a clean end), or with bytes waiting (-EPIPE). */
static int reader_gone_fn(void *arg, void **result)
{
    for (int waiting = 0; waiting < 2; waiting++) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        rec_t r;
        rec_init(&r);
        cio_transport_t *t = await_ok(
            cio_loop_connect_write_pipe(cio_get_running_loop(), static_factory, &r, p[1]));
        if (waiting) {
            static uint8_t big[256 * KIB];
            ck_assert_int_eq(cio_transport_write(t, big, sizeof(big)), 0);
            ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
        }
        close(p[0]);
        WAIT_UNTIL(r.lost == 1);
        ck_assert_int_eq(r.lost_err, waiting ? -EPIPE : 0);
    }
    return 0;
}

START_TEST(test_a_write_pipe_notices_its_reader_going_away)
{
    ck_assert_int_eq(cio_run(reader_gone_fn, NULL, false, NULL), 0);
}
END_TEST

/* With SIGPIPE's default action (death), a write into a pipe with no reader is -EPIPE. */
static int no_sigpipe_fn(void *arg, void **result)
{
    ck_assert_ptr_ne(signal(SIGPIPE, SIG_DFL), SIG_ERR);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t =
        await_ok(cio_loop_connect_write_pipe(cio_get_running_loop(), static_factory, &r, p[1]));
    close(p[0]);
    ck_assert_int_eq(cio_transport_write(t, "hello", 5), 0); /* failed at once: closing */
    WAIT_UNTIL(r.lost == 1);
    ck_assert_int_eq(r.lost_err, -EPIPE);
    sigset_t pending;
    ck_assert_int_eq(sigpending(&pending), 0);
    ck_assert(!sigismember(&pending, SIGPIPE));
    return 0;
}

START_TEST(test_a_write_to_a_pipe_without_reader_is_epipe_not_sigpipe)
{
    ck_assert_int_eq(cio_run(no_sigpipe_fn, NULL, false, NULL), 0);
}
END_TEST

static int bad_args_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    rec_t r;
    rec_init(&r);
    ck_assert_ptr_null(cio_loop_connect_read_pipe(NULL, static_factory, &r, 0));
    ck_assert_ptr_null(cio_loop_connect_read_pipe(loop, NULL, &r, 0));
    ck_assert_ptr_null(cio_loop_connect_read_pipe(loop, static_factory, &r, -1));
    ck_assert_ptr_null(cio_loop_connect_write_pipe(loop, static_factory, &r, -1));
    ck_assert_ptr_null(cio_loop_connect_write_pipe(loop, static_factory, &r, 1000000));
    return 0;
}

START_TEST(test_pipe_calls_refuse_bad_arguments)
{
    ck_assert_int_eq(cio_run(bad_args_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- python3 on the other end ---------------------------------------------------- */

/*
 * python3 reads its stdin (our write pipe) to EOF, checks the pattern, and
 * writes 4 MiB of the same pattern to its stdout (our read pipe).
 */
static char peer_py[] =
    "import sys\n"
    "def pat(i): return (i * 31 + (i >> 13)) & 255\n"
    "data = sys.stdin.buffer.read()\n"
    "bad = sum(1 for i, b in enumerate(data) if b != pat(i))\n"
    "sys.stderr.write('%d %d\\n' % (len(data), bad))\n"
    "out = bytes(pat(i) for i in range(4 << 20))\n"
    "sys.stdout.buffer.write(out)\n";

static pid_t spawn_peer(int in, int out, int err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    static char name[] = "python3", dash_c[] = "-c";
    char *argv[] = {name, dash_c, peer_py, NULL};
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, "/usr/bin/python3", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static int python_fn(void *arg, void **result)
{
    int to[2], from[2], err[2];
    ck_assert_int_eq(pipe2(to, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(from, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = spawn_peer(to[0], from[1], err[1]);
    close(to[0]);
    close(from[1]);
    close(err[1]);
    rec_t w, rd;
    rec_init(&w);
    rec_init(&rd);
    cio_loop_t *loop = cio_get_running_loop();
    cio_transport_t *wt = await_ok(cio_loop_connect_write_pipe(loop, static_factory, &w, to[1]));
    await_ok(cio_loop_connect_read_pipe(loop, static_factory, &rd, from[0]));
    size_t total = 2 * MIB + 3;
    uint8_t *buf = malloc(total);
    fill(buf, 0, total);
    ck_assert_int_eq(cio_transport_write(wt, buf, total), 0);
    ck_assert_int_eq(cio_transport_write_eof(wt), 0);
    WAIT_UNTIL(w.lost == 1 && rd.lost == 1);
    ck_assert_int_eq(w.lost_err, 0);
    ck_assert_int_eq(rd.lost_err, 0);
    ck_assert_uint_eq(rd.nrx, 4 * MIB);
    ck_assert_uint_eq(rd.bad, 0);
    char line[64] = {0};
    ck_assert_int_gt(read(err[0], line, sizeof(line) - 1), 0);
    char want[64];
    snprintf(want, sizeof(want), "%zu 0\n", total);
    ck_assert_str_eq(line, want);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(err[0]);
    free(buf);
    return 0;
}

START_TEST(test_pipes_carry_megabytes_both_ways_with_python3_on_the_other_end)
{
    ck_assert_int_eq(cio_run(python_fn, NULL, false, NULL), 0);
}
END_TEST

static Suite *pipe_suite(void)
{
    Suite *s = suite_create("pipe");
    TCase *tc = cio_test_case("pipe");
    CIO_TEST(tc, test_a_read_pipe_delivers_data_then_eof_then_connection_lost);
    CIO_TEST(tc, test_a_paused_read_pipe_holds_data_and_eof_until_resumed);
    CIO_TEST(tc, test_a_write_pipe_buffers_under_flow_control_and_write_eof_closes_once_drained);
    CIO_TEST(tc, test_a_write_pipe_notices_its_reader_going_away);
    CIO_TEST(tc, test_a_write_to_a_pipe_without_reader_is_epipe_not_sigpipe);
    CIO_TEST(tc, test_pipe_calls_refuse_bad_arguments);
    CIO_TEST(tc, test_pipes_carry_megabytes_both_ways_with_python3_on_the_other_end);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(pipe_suite)
