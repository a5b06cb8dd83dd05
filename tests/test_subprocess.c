/*
 * tests/test_subprocess.c: child processes (coreio/subprocess.h): exit
 * statuses and signals (negative returncodes), asyncio's callback order, 50 MB
 * through stdout with the reading paused and through stdin with flow control,
 * stdin closed early, kill/terminate/send_signal, the child's signal state
 * and descriptors (only 0-2 and pass_fds, with a high RLIMIT_NOFILE), a pid
 * taken over by another process never signalled, programs that cannot start,
 * cwd/env/session/process group/umask, close() and loop close leaving no
 * zombie, a thousand children on two loops in two threads, and the task
 * helpers (cio_create_subprocess_exec and cio_process_*).
 *
 * Most tests run in three modes: posix_spawn with a pidfd, the clone path
 * forced, and the polling fallback forced (as if pidfd_open were missing).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

/* Tests only (loop/child.c): 1 forces the polling fallback, 2 the clone path, 4 (with 2)
 * closing descriptors from the /proc/self/fd listing as before Linux 5.9. */
void cio__child_set_test_flags(int flags);
/* Tests only (loop/alloc.h): the nth allocation of the library fails. */
void cio__alloc_fail_after(unsigned long n);
unsigned long cio__alloc_failures(void);

#define MIB      (1024 * 1024)
#define BIG      (50 * MIB)
#define PYTHON   "/usr/bin/python3"
#define A(s)     ((char *)(s)) /* argv strings are not const in C */
#define LONG_RUN 180           /* seconds: the big transfers and the thousand children */

enum { MODE_SPAWN, MODE_CLONE, MODE_POLL, NMODES };
static const char *const mode_names[] = {"posix_spawn+pidfd", "clone+pidfd", "posix_spawn+poll"};

static void use_mode(int mode)
{
    cio__child_set_test_flags(mode == MODE_CLONE ? 2 : mode == MODE_POLL ? 1 : 0);
}

static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i % 251);
}

/* ---- the process table ---------------------------------------------------------- */

/* Children of this process in /proc: all of them, or only the zombies. */
static int count_children(bool zombies_only)
{
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'), state;
        int ppid;
        if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
            (!zombies_only || state == 'Z'))
            n++;
    }
    closedir(d);
    return n;
}

/* Whether @p pid is no child of ours any more (reaped). */
static bool reaped(pid_t pid)
{
    siginfo_t si;
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

/* ---- running the loop until something holds --------------------------------------- */

typedef struct until {
    cio_loop_t *loop;
    bool (*cond)(void *arg);
    void *arg;
    double deadline;
    bool met;
} until_t;

static int until_tick(void *arg)
{
    until_t *u = arg;
    if ((u->met = u->cond(u->arg)) || cio_loop_time(u->loop) > u->deadline)
        cio_loop_stop(u->loop);
    else
        cio_loop_call_later(u->loop, 0.002, until_tick, u, NULL);
    return 0;
}

/* Run @p loop until cond(arg); the deadline only keeps a broken build from hanging. */
static void run_until(cio_loop_t *loop, bool (*cond)(void *), void *arg, const char *what)
{
    until_t u = {.loop = loop, .cond = cond, .arg = arg, .deadline = cio_loop_time(loop) + 20};
    cio_loop_call_soon(loop, until_tick, &u, NULL);
    cio_loop_run_forever(loop);
    ck_assert_msg(u.met, "timed out waiting for %s", what);
}

static bool no_children(void *arg)
{
    return count_children(false) == 0;
}

/* ---- a recording subprocess protocol ------------------------------------------------ */

typedef struct rec rec_t;
struct rec {
    cio_protocol_t base;
    cio_loop_t *loop;
    cio_subprocess_t *sp;
    char order[256]; /* the callbacks: made, dataN (a run counts once), lostN, exited, lost */
    char last[16];
    char out[3][4096]; /* the first bytes of each pipe */
    size_t len[3];
    int pipe_err[3];
    int made, exited, lost, lost_err, returncode, pauses;
    int sig_after_exit; /* send_signal(SIGKILL)'s return inside process_exited */
    bool stop_on_lost;
    int (*on_data)(rec_t *r, int fd, const uint8_t *d, size_t n);
    int (*on_pipe_lost)(rec_t *r, int fd);
    int (*on_exited)(rec_t *r);
    int (*on_made)(rec_t *r);
    void (*on_resume)(rec_t *r);
    void *user;
};

static void note(rec_t *r, const char *ev)
{
    if (strncmp(ev, "data", 4) == 0 && strcmp(r->last, ev) == 0)
        return;
    size_t used = strlen(r->order);
    snprintf(r->order + used, sizeof(r->order) - used, "%s%s", used ? "," : "", ev);
    snprintf(r->last, sizeof(r->last), "%s", ev);
}

static int rec_made(cio_protocol_t *p, cio_transport_t *t)
{
    rec_t *r = (rec_t *)p;
    r->sp = cio_subprocess_from_transport(t);
    ck_assert_ptr_nonnull(r->sp);
    ck_assert_ptr_eq(cio_subprocess_get_protocol(r->sp), p);
    r->made++;
    note(r, "made");
    return r->on_made ? r->on_made(r) : 0;
}

static int rec_data(cio_protocol_t *p, int fd, const void *data, size_t n)
{
    rec_t *r = (rec_t *)p;
    char ev[16];
    snprintf(ev, sizeof(ev), "data%d", fd);
    note(r, ev);
    if (r->on_data)
        return r->on_data(r, fd, data, n);
    size_t room = sizeof(r->out[fd]) - 1 - r->len[fd];
    size_t k = n < room ? n : room;
    memcpy(r->out[fd] + r->len[fd], data, k);
    r->len[fd] += k;
    return 0;
}

static int rec_pipe_lost(cio_protocol_t *p, int fd, int err)
{
    rec_t *r = (rec_t *)p;
    char ev[16];
    snprintf(ev, sizeof(ev), "lost%d", fd);
    note(r, ev);
    r->pipe_err[fd] = err;
    return r->on_pipe_lost ? r->on_pipe_lost(r, fd) : 0;
}

static int rec_exited(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    note(r, "exited");
    r->exited++;
    int code;
    ck_assert_int_eq(cio_subprocess_get_returncode(r->sp, &code), 0);
    r->sig_after_exit = cio_subprocess_send_signal(r->sp, SIGKILL);
    return r->on_exited ? r->on_exited(r) : 0;
}

static void rec_lost(cio_protocol_t *p, int err)
{
    rec_t *r = (rec_t *)p;
    note(r, "lost");
    r->lost++;
    r->lost_err = err;
    r->returncode = INT32_MIN;
    cio_subprocess_get_returncode(r->sp, &r->returncode);
    if (r->stop_on_lost)
        cio_loop_stop(r->loop);
}

static int rec_pause(cio_protocol_t *p)
{
    ((rec_t *)p)->pauses++;
    return 0;
}

static int rec_resume(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    if (r->on_resume)
        r->on_resume(r);
    return 0;
}

static const cio_protocol_ops_t rec_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .pipe_data_received = rec_data,
    .pipe_connection_lost = rec_pipe_lost,
    .process_exited = rec_exited,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

static cio_protocol_t *rec_factory(void *arg)
{
    return arg;
}

static void rec_init(rec_t *r, cio_loop_t *loop)
{
    memset(r, 0, sizeof(*r));
    r->base.ops = &rec_ops;
    r->loop = loop;
}

static cio_subprocess_opts_t devnull_opts(void)
{
    cio_subprocess_opts_t o = {0};
    for (int i = 0; i < 3; i++)
        o.stdio[i].mode = CIO_STDIO_DEVNULL;
    return o;
}

/* Start @p prog with @p r as its protocol; returns once connection_made has run. */
static cio_subprocess_t *spawn(cio_loop_t *loop, rec_t *r, const char *prog, char *const argv[],
                               const cio_subprocess_opts_t *o)
{
    cio_future_t *f = cio_loop_subprocess_exec(loop, rec_factory, r, prog, argv, o);
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    int rc = cio_loop_run_until_complete(loop, f, &res);
    const char *msg = cio_future_error_message(f);
    ck_assert_msg(rc == 0, "starting %s failed: %s (%s)", prog, cio_err_name(rc), msg ? msg : "");
    cio_future_unref(f);
    ck_assert_ptr_eq(res, r->sp);
    return res;
}

static cio_subprocess_t *spawn_sh(cio_loop_t *loop, rec_t *r, const char *cmd,
                                  const cio_subprocess_opts_t *o)
{
    char *const argv[] = {A("sh"), A("-c"), (char *)cmd, NULL};
    return spawn(loop, r, "/bin/sh", argv, o);
}

static void run_until_lost(rec_t *r)
{
    r->stop_on_lost = true;
    if (!r->lost)
        cio_loop_run_forever(r->loop);
    ck_assert_int_eq(r->lost, 1);
}

/* ---- exit statuses and the order of callbacks ------------------------------------------ */

static int take_wait(rec_t *r)
{
    ck_assert_ptr_null(cio_subprocess_get_pipe_transport(r->sp, 1));
    ck_assert_int_eq(cio_subprocess_get_returncode(r->sp, NULL), -EBUSY);
    r->user = cio_subprocess_wait(r->sp);
    ck_assert_ptr_nonnull(r->user);
    ck_assert(!cio_future_done(r->user));
    return 0;
}

START_TEST(test_exit_status_is_the_returncode)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = devnull_opts();
    static const int codes[] = {0, 1, 7, 255};
    for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
        rec_t r;
        rec_init(&r, loop);
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "exit %d", codes[k]);
        r.on_made = take_wait; /* a quick child may be gone once spawn() returns */
        spawn_sh(loop, &r, cmd, &o);
        run_until_lost(&r);
        cio_future_t *w = r.user;
        int code;
        ck_assert_msg(strcmp(r.order, "made,exited,lost") == 0, "[%s] order %s", mode_names[_i],
                      r.order);
        ck_assert_int_eq(r.returncode, codes[k]);
        ck_assert_int_eq(r.lost_err, 0);
        ck_assert_int_eq(r.sig_after_exit, -ESRCH);
        void *res; /* settled right after connection_lost */
        ck_assert_int_eq(cio_future_result(w, &res), 0);
        code = (int)(intptr_t)res;
        ck_assert_int_eq(code, codes[k]);
        cio_future_unref(w);
    }
    cio_loop_free(loop);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

/* stdout closes first; the test closes stdin then, and the child exits on its EOF. */
static int close_stdin_after_stdout(rec_t *r, int fd)
{
    if (fd == 1)
        cio_transport_close(cio_subprocess_get_pipe_transport(r->sp, 0));
    return 0;
}

START_TEST(test_order_pipes_close_before_the_exit)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.stdio[2].mode = CIO_STDIO_DEVNULL;
    rec_t r;
    rec_init(&r, loop);
    r.on_pipe_lost = close_stdin_after_stdout;
    spawn_sh(loop, &r, "echo hi; exec 1>&-; read x", &o);
    ck_assert_ptr_nonnull(cio_subprocess_get_pipe_transport(r.sp, 0));
    ck_assert_ptr_nonnull(cio_subprocess_get_pipe_transport(r.sp, 1));
    ck_assert_ptr_null(cio_subprocess_get_pipe_transport(r.sp, 2));
    run_until_lost(&r);
    ck_assert_msg(strcmp(r.order, "made,data1,lost1,lost0,exited,lost") == 0, "[%s] order %s",
                  mode_names[_i], r.order);
    ck_assert_str_eq(r.out[1], "hi\n");
    ck_assert_int_eq(r.returncode, 1); /* read fails at end of file */
    cio_loop_free(loop);
}
END_TEST

/* The child has exited while a grandchild holds its pipes: close stdin, and they go. */
static int close_stdin_at_exit(rec_t *r)
{
    ck_assert_ptr_nonnull(cio_subprocess_get_pipe_transport(r->sp, 1));
    cio_transport_close(cio_subprocess_get_pipe_transport(r->sp, 0));
    return 0;
}

START_TEST(test_order_exit_before_the_pipes_close)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.stdio[2].mode = CIO_STDIO_DEVNULL;
    rec_t r;
    rec_init(&r, loop);
    r.on_exited = close_stdin_at_exit;
    spawn_sh(loop, &r, "exec 3<&0; cat <&3 & exit 5", &o);
    run_until_lost(&r);
    ck_assert_msg(strcmp(r.order, "made,exited,lost0,lost1,lost") == 0, "[%s] order %s",
                  mode_names[_i], r.order);
    ck_assert_int_eq(r.returncode, 5);
    cio_loop_free(loop);
}
END_TEST

/* ---- 50 MB out, with the reading paused until the child blocks ------------------------ */

typedef struct flow {
    size_t got, got_at_pause;
    bool paused;
    int pipe_fd, pipe_size, checks_when_full;
} flow_t;

static int check_blocked(void *arg)
{
    rec_t *r = arg;
    flow_t *fl = r->user;
    int avail = 0;
    ck_assert_int_eq(ioctl(fl->pipe_fd, FIONREAD, &avail), 0);
    if (avail < fl->pipe_size) { /* the child is still filling the pipe */
        cio_loop_call_later(r->loop, 0.005, check_blocked, r, NULL);
        return 0;
    }
    /* The pipe is full and nothing was delivered meanwhile: the child is blocked. */
    ck_assert_uint_eq(fl->got, fl->got_at_pause);
    ck_assert_int_eq(cio_subprocess_get_returncode(r->sp, NULL), -EBUSY);
    cio_transport_t *t = cio_subprocess_get_pipe_transport(r->sp, 1);
    ck_assert(!cio_transport_is_reading(t));
    fl->checks_when_full++;
    cio_transport_resume_reading(t);
    return 0;
}

static int check_pattern(rec_t *r, int fd, const uint8_t *d, size_t n)
{
    flow_t *fl = r->user;
    ck_assert_int_eq(fd, 1);
    ck_assert_msg(!fl->paused || fl->checks_when_full, "data while paused");
    for (size_t k = 0; k < n; k++) {
        if (d[k] != pattern_at(fl->got + k))
            ck_abort_msg("byte %zu is %u, expected %u", fl->got + k, d[k], pattern_at(fl->got + k));
    }
    fl->got += n;
    if (!fl->paused && fl->got >= 10 * MIB) {
        fl->paused = true;
        fl->got_at_pause = fl->got;
        cio_transport_t *t = cio_subprocess_get_pipe_transport(r->sp, 1);
        cio_extra_info_t info;
        ck_assert_int_eq(cio_transport_get_extra_info(t, "pipe", &info), 0);
        fl->pipe_fd = info.fd;
        fl->pipe_size = fcntl(info.fd, F_GETPIPE_SZ);
        ck_assert_int_gt(fl->pipe_size, 0);
        cio_transport_pause_reading(t);
        cio_loop_call_later(r->loop, 0.005, check_blocked, r, NULL);
    }
    return 0;
}

START_TEST(test_50_mb_from_stdout_in_order_with_reading_paused)
{
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.stdio[0].mode = CIO_STDIO_DEVNULL;
    rec_t r;
    rec_init(&r, loop);
    flow_t fl = {0};
    r.user = &fl;
    r.on_data = check_pattern;
    char *const argv[] = {A("python3"), A("-c"),
                          A("import sys\n"
                            "b = bytes(range(251)) * 4096\n"
                            "n = 52428800\n"
                            "w = sys.stdout.buffer\n"
                            "for i in range(0, n, len(b)):\n"
                            "    w.write(b[:n - i])\n"),
                          NULL};
    spawn(loop, &r, PYTHON, argv, &o);
    run_until_lost(&r);
    ck_assert_uint_eq(fl.got, BIG);
    ck_assert_int_eq(fl.checks_when_full, 1);
    ck_assert_int_eq(r.returncode, 0);
    ck_assert_int_eq(r.pipe_err[1], 0);
    cio_loop_free(loop);
}
END_TEST

/* ---- 50 MB in, with flow control, checked by sha256sum ------------------------------------ */

typedef struct feed {
    size_t sent;
    bool blocked;
    EVP_MD_CTX *md;
    uint8_t chunk[256 * 1024];
} feed_t;

static int feed_more(void *arg)
{
    rec_t *r = arg;
    feed_t *fd = r->user;
    cio_transport_t *t = cio_subprocess_get_pipe_transport(r->sp, 0);
    while (fd->sent < BIG && cio_transport_get_write_buffer_size(t) <= 64 * 1024) {
        size_t n = BIG - fd->sent < sizeof(fd->chunk) ? BIG - fd->sent : sizeof(fd->chunk);
        for (size_t k = 0; k < n; k++)
            fd->chunk[k] = pattern_at(fd->sent + k);
        EVP_DigestUpdate(fd->md, fd->chunk, n);
        ck_assert_int_eq(cio_transport_write(t, fd->chunk, n), 0);
        fd->sent += n;
    }
    if (fd->sent == BIG)
        cio_transport_close(t); /* after the buffer drains */
    return 0;
}

static void feed_on_resume(rec_t *r)
{
    cio_loop_call_soon(r->loop, feed_more, r, NULL);
}

START_TEST(test_50_mb_into_stdin_with_flow_control)
{
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.stdio[2].mode = CIO_STDIO_DEVNULL;
    rec_t r;
    rec_init(&r, loop);
    feed_t *fd = calloc(1, sizeof(*fd));
    fd->md = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestInit_ex(fd->md, EVP_sha256(), NULL), 1);
    r.user = fd;
    r.on_resume = feed_on_resume;
    char *const argv[] = {A("sha256sum"), NULL};
    spawn(loop, &r, "sha256sum", argv, &o);
    cio_loop_call_soon(loop, feed_more, &r, NULL);
    run_until_lost(&r);
    uint8_t md[32];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(fd->md, md, &mdlen);
    char hex[65];
    for (int k = 0; k < 32; k++)
        snprintf(hex + 2 * k, 3, "%02x", md[k]);
    ck_assert_uint_eq(fd->sent, BIG);
    ck_assert_int_ge(r.pauses, 1); /* the water marks were reached */
    ck_assert_int_eq(r.pipe_err[0], 0);
    ck_assert_int_eq(r.returncode, 0);
    ck_assert_msg(strncmp(r.out[1], hex, 64) == 0, "sha256sum said %s, expected %s", r.out[1], hex);
    EVP_MD_CTX_free(fd->md);
    free(fd);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_stdin_closed_early_is_eof_in_the_child)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r, loop);
    char *const argv[] = {A("cat"), NULL};
    cio_subprocess_t *sp = spawn(loop, &r, "cat", argv, NULL);
    cio_transport_t *in = cio_subprocess_get_pipe_transport(sp, 0);
    ck_assert(cio_transport_can_write_eof(in));
    ck_assert_int_eq(cio_transport_write(in, "hello", 5), 0);
    cio_transport_close(in);
    run_until_lost(&r);
    ck_assert_str_eq(r.out[1], "hello");
    ck_assert_int_eq(r.len[2], 0);
    ck_assert_int_eq(r.returncode, 0);
    /* What follows cat's EOF (its pipes closing, its exit) comes in the kernel's order. */
    size_t len = strlen(r.order);
    ck_assert_msg(strncmp(r.order, "made,lost0,data1,", 17) == 0 && strstr(r.order, "lost1") &&
                      strstr(r.order, "lost2") && strstr(r.order, "exited") &&
                      strcmp(r.order + len - 5, ",lost") == 0,
                  "order %s", r.order);
    cio_loop_free(loop);
}
END_TEST

/* ---- signals -------------------------------------------------------------------------- */

/* Block SIGUSR1 and ignore SIGTERM here, as a worker thread might: the child must not care. */
static void unsettle_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    signal(SIGTERM, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
}

START_TEST(test_kill_terminate_and_send_signal_report_minus_the_signal)
{
    use_mode(_i);
    unsettle_signals();
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = devnull_opts();
    int (*how[3])(cio_subprocess_t *) = {cio_subprocess_kill, cio_subprocess_terminate, NULL};
    static const int expect[3] = {-SIGKILL, -SIGTERM, -SIGUSR1};
    for (int k = 0; k < 3; k++) {
        rec_t r;
        rec_init(&r, loop);
        char *const argv[] = {A("sleep"), A("30"), NULL};
        cio_subprocess_t *sp = spawn(loop, &r, "sleep", argv, &o);
        ck_assert_int_eq(cio_subprocess_get_returncode(sp, NULL), -EBUSY);
        ck_assert_int_gt(cio_subprocess_get_pid(sp), 0);
        int rc = how[k] ? how[k](sp) : cio_subprocess_send_signal(sp, SIGUSR1);
        ck_assert_int_eq(rc, 0);
        run_until_lost(&r);
        ck_assert_msg(r.returncode == expect[k], "[%s] returncode %d, expected %d", mode_names[_i],
                      r.returncode, expect[k]);
        ck_assert_int_eq(r.sig_after_exit, -ESRCH);
    }
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_child_killed_by_its_own_signal)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = devnull_opts();
    rec_t r;
    rec_init(&r, loop);
    spawn_sh(loop, &r, "kill -USR2 $$; sleep 5", &o);
    run_until_lost(&r);
    ck_assert_int_eq(r.returncode, -SIGUSR2);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_child_has_no_blocked_or_ignored_signal)
{
    use_mode(_i);
    unsettle_signals(); /* and coreio ignores SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r, loop);
    char *const argv[] = {A("grep"), A("-E"), A("^Sig(Blk|Ign):"), A("/proc/self/status"), NULL};
    spawn(loop, &r, "grep", argv, NULL);
    run_until_lost(&r);
    ck_assert_str_eq(r.out[1], "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    cio_loop_free(loop);
}
END_TEST

/* ---- descriptors --------------------------------------------------------------------- */

/* RLIMIT_NOFILE as high as 1,048,576, or as the hard limit allows (said once on stderr). */
static int raise_nofile(void)
{
    struct rlimit rl = {1048576, 1048576};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        fprintf(stderr,
                "test_subprocess: RLIMIT_NOFILE hard limit is %llu, not 1048576: using it\n",
                (unsigned long long)rl.rlim_max);
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    return (int)rl.rlim_cur;
}

static bool in_set(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++) {
        if (v[i] == x)
            return true;
    }
    return false;
}

/*
 * _i: 0 posix_spawn, 1 the clone path forced, 2 with pass_fds (the clone path),
 * 3 with pass_fds and no close_range.
 */
START_TEST(test_child_sees_only_0_1_2_and_pass_fds)
{
    use_mode(_i == 1 ? MODE_CLONE : MODE_SPAWN);
    if (_i == 3)
        cio__child_set_test_flags(4);
    int limit = raise_nofile();
    /* Descriptors without CLOEXEC, as careless code in the process might leave. */
    int leak = open("/dev/null", O_RDONLY);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    int p[2], cl[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(pipe2(cl, O_CLOEXEC), 0);
    int high = limit - 1;
    ck_assert_int_eq(dup2(leak, high), high);
    ck_assert_int_ge(sock, 0);
    int pass[3] = {p[0], cl[1], high}; /* one plain, one CLOEXEC here, the highest possible */
    cio_subprocess_opts_t o = {0};
    o.stdio[0].mode = CIO_STDIO_DEVNULL;
    o.stdio[2].mode = CIO_STDIO_DEVNULL;
    if (_i >= 2) {
        o.pass_fds = pass;
        o.npass_fds = 3;
    }
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r, loop);
    char *const argv[] = {A("ls"), A("/proc/self/fd"), NULL};
    spawn(loop, &r, "ls", argv, &o);
    run_until_lost(&r);
    ck_assert_int_eq(r.returncode, 0);
    int seen[64], n = 0;
    for (char *tok = strtok(r.out[1], "\n"); tok && n < 64; tok = strtok(NULL, "\n"))
        seen[n++] = atoi(tok);
    int want[8] = {0, 1, 2}, nwant = 3;
    for (int k = 0; _i >= 2 && k < 3; k++)
        want[nwant++] = pass[k];
    int listing = 3; /* ls's own descriptor on /proc/self/fd: the lowest free one */
    while (in_set(want, nwant, listing))
        listing++;
    want[nwant++] = listing;
    ck_assert_msg(n == nwant, "[%d] the child has %d descriptors, expected %d", _i, n, nwant);
    for (int k = 0; k < n; k++)
        ck_assert_msg(in_set(want, nwant, seen[k]), "[%d] the child has descriptor %d", _i,
                      seen[k]);
    cio_loop_free(loop);
}
END_TEST

static int write_in_and_close(rec_t *r)
{
    cio_transport_t *in = cio_subprocess_get_pipe_transport(r->sp, 0);
    ck_assert_int_eq(cio_transport_write(in, "in", 2), 0);
    cio_transport_close(in);
    return 0;
}

/* The parent has closed 0-2: the pipes and /dev/null it opens take those numbers. */
START_TEST(test_parent_without_0_1_2)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new(); /* before: its own descriptors must not fill 0-2 */
    close(0);
    close(1);
    close(2);
    cio_subprocess_opts_t o = {0};
    o.stdio[2].mode = CIO_STDIO_STDOUT;
    rec_t r;
    rec_init(&r, loop);
    r.on_made = write_in_and_close;
    spawn_sh(loop, &r, "cat; echo err >&2", &o);
    run_until_lost(&r);
    ck_assert_str_eq(r.out[1], "inerr\n");
    o = devnull_opts();
    o.stdio[1].mode = CIO_STDIO_PIPE;
    rec_init(&r, loop);
    spawn_sh(loop, &r, "readlink /proc/self/fd/0 /proc/self/fd/2", &o);
    run_until_lost(&r);
    ck_assert_str_eq(r.out[1], "/dev/null\n/dev/null\n");
    cio_loop_free(loop);
}
END_TEST

/* ---- a reused pid is never signalled ------------------------------------------------------ */

typedef struct reuse {
    pid_t pid, sleeper;
    bool reused;
} reuse_t;

/* Start `sleep 30` with pid @p want if the kernel lets us (ns_last_pid), trying a few times. */
static pid_t take_pid(pid_t want, bool *got)
{
    char *const argv[] = {A("sleep"), A("30"), NULL};
    posix_spawnattr_t at; /* every signal its default: SIGTERM must end it */
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
    pid_t q = 0;
    for (int tries = 0; tries < 50; tries++) {
        FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
        if (f) {
            fprintf(f, "%d", (int)want - 1);
            fclose(f);
        }
        ck_assert_int_eq(posix_spawnp(&q, "sleep", NULL, &at, argv, environ), 0);
        if ((*got = q == want) || !f)
            break;
        kill(q, SIGKILL);
        waitpid(q, NULL, 0);
    }
    posix_spawnattr_destroy(&at);
    return q;
}

static int reuse_pid_at_exit(rec_t *r)
{
    reuse_t *u = r->user;
    u->pid = cio_subprocess_get_pid(r->sp);
    u->sleeper = take_pid(u->pid, &u->reused);
    /* The child is reaped and its pid maybe another process's now: no signal may go. */
    ck_assert_int_eq(cio_subprocess_send_signal(r->sp, SIGKILL), -ESRCH);
    ck_assert_int_eq(cio_subprocess_terminate(r->sp), -ESRCH);
    return 0;
}

START_TEST(test_signal_after_reap_never_reaches_a_reused_pid)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = devnull_opts();
    rec_t r;
    rec_init(&r, loop);
    reuse_t u = {0};
    r.user = &u;
    r.on_exited = reuse_pid_at_exit;
    spawn_sh(loop, &r, "exit 0", &o);
    run_until_lost(&r);
    if (!u.reused)
        fprintf(stderr,
                "test_subprocess: pid %d could not be handed to another process; "
                "checked -ESRCH only\n",
                (int)u.pid);
    /* The sleeper, maybe under the old pid, dies of our SIGTERM: coreio's SIGKILL never came. */
    int st;
    kill(u.sleeper, SIGTERM);
    ck_assert_int_eq(waitpid(u.sleeper, &st, 0), u.sleeper);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "the sleeper ended with status %#x",
                  st);
    cio_loop_free(loop);
}
END_TEST

/* ---- programs that cannot start ------------------------------------------------------------ */

static int start_error(cio_loop_t *loop, rec_t *r, const char *prog, const cio_subprocess_opts_t *o)
{
    rec_init(r, loop);
    cio_future_t *f = cio_loop_subprocess_exec(loop, rec_factory, r, prog, NULL, o);
    ck_assert_ptr_nonnull(f);
    int rc = cio_loop_run_until_complete(loop, f, NULL);
    if (rc < 0) {
        const char *msg = cio_future_error_message(f);
        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(strstr(msg, prog), "message '%s' does not name %s", msg, prog);
    }
    cio_future_unref(f);
    return rc;
}

START_TEST(test_a_program_that_cannot_start_fails_the_future)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    ck_assert_int_eq(start_error(loop, &r, "/nonexistent/program", NULL), -ENOENT);
    ck_assert_int_eq(start_error(loop, &r, "no-such-program-in-path", NULL), -ENOENT);
    char path[] = "/tmp/cio-noexec-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(start_error(loop, &r, path, NULL), -EACCES);
    unlink(path);
    cio_subprocess_opts_t o = {0};
    o.cwd = "/nonexistent/dir";
    ck_assert_int_eq(start_error(loop, &r, "/bin/true", &o), -ENOENT);
    o.cwd = NULL;
    o.stdio[1].mode = CIO_STDIO_FD;
    o.stdio[1].fd = 999; /* not open */
    ck_assert_int_eq(start_error(loop, &r, "/bin/true", &o), -EBADF);
    ck_assert_int_eq(r.made, 0); /* the factory never ran */
    cio_loop_free(loop);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

START_TEST(test_bad_arguments_return_null)
{
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r, loop);
    cio_subprocess_opts_t o = {0};
    o.stdio[0].mode = CIO_STDIO_STDOUT;
    ck_assert_ptr_null(cio_loop_subprocess_exec(loop, rec_factory, &r, "/bin/true", NULL, &o));
    o = (cio_subprocess_opts_t){0};
    o.start_new_session = o.use_process_group = true;
    ck_assert_ptr_null(cio_loop_subprocess_exec(loop, rec_factory, &r, "/bin/true", NULL, &o));
    o = (cio_subprocess_opts_t){0};
    int bad = -1;
    o.pass_fds = &bad;
    o.npass_fds = 1;
    ck_assert_ptr_null(cio_loop_subprocess_exec(loop, rec_factory, &r, "/bin/true", NULL, &o));
    ck_assert_ptr_null(cio_loop_subprocess_exec(loop, NULL, &r, "/bin/true", NULL, NULL));
    ck_assert_ptr_null(cio_loop_subprocess_exec(loop, rec_factory, &r, NULL, NULL, NULL));
    ck_assert_ptr_null(cio_loop_subprocess_shell(loop, rec_factory, &r, NULL, NULL));
    ck_assert_ptr_null(cio_subprocess_from_transport(NULL));
    cio_loop_free(loop);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

/* ---- the child's environment ---------------------------------------------------------- */

static void run_sh_out(cio_loop_t *loop, const char *cmd, const cio_subprocess_opts_t *o, rec_t *r)
{
    rec_init(r, loop);
    spawn_sh(loop, r, cmd, o);
    run_until_lost(r);
    ck_assert_int_eq(r->returncode, 0);
}

START_TEST(test_cwd_and_env_apply_in_the_child)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    char dir[] = "/tmp/cio-cwd-XXXXXX", real[4096], want[4200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(realpath(dir, real));
    cio_subprocess_opts_t o = {0};
    o.cwd = dir;
    rec_t r;
    run_sh_out(loop, "pwd -P", &o, &r);
    snprintf(want, sizeof(want), "%s\n", real);
    ck_assert_str_eq(r.out[1], want);
    rmdir(dir);
    char *const env[] = {A("FOO=bar"), A("X=1"), NULL};
    o = (cio_subprocess_opts_t){0};
    o.env = env;
    rec_init(&r, loop);
    char *const argv[] = {A("env"), NULL};
    spawn(loop, &r, "/usr/bin/env", argv, &o);
    run_until_lost(&r);
    ck_assert_str_eq(r.out[1], "FOO=bar\nX=1\n");
    cio_loop_free(loop);
}
END_TEST

/* The child's pid, process group and session, from /proc/self/stat as cat prints it. */
static void stat_ids(const char *stat, int ids[3])
{
    const char *rp = strrchr(stat, ')');
    ck_assert_ptr_nonnull(rp);
    char state;
    int ppid;
    ck_assert_int_eq(sscanf(stat, "%d", &ids[0]), 1);
    ck_assert_int_eq(sscanf(rp + 2, "%c %d %d %d", &state, &ppid, &ids[1], &ids[2]), 4);
}

START_TEST(test_new_session_and_process_group)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    char *const argv[] = {A("cat"), A("/proc/self/stat"), NULL};
    int ids[3];
    cio_subprocess_opts_t o = {0};
    o.start_new_session = true;
    rec_t r;
    rec_init(&r, loop);
    spawn(loop, &r, "cat", argv, &o);
    run_until_lost(&r);
    stat_ids(r.out[1], ids);
    ck_assert_int_eq(ids[1], ids[0]); /* getpgid() == getpid() */
    ck_assert_int_eq(ids[2], ids[0]); /* getsid() == getpid() */
    o = (cio_subprocess_opts_t){0};
    o.use_process_group = true;
    o.process_group = 0;
    rec_init(&r, loop);
    spawn(loop, &r, "cat", argv, &o);
    run_until_lost(&r);
    stat_ids(r.out[1], ids);
    ck_assert_int_eq(ids[1], ids[0]);
    ck_assert_int_eq(ids[2], getsid(0)); /* the parent's session still */
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_umask_applies_in_the_child_only)
{
    use_mode(_i);
    mode_t mine = umask(022);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.use_umask = true;
    o.umask = 027;
    rec_t r;
    run_sh_out(loop, "umask", &o, &r);
    ck_assert_str_eq(r.out[1], "0027\n");
    o.umask = 0;
    run_sh_out(loop, "umask", &o, &r);
    ck_assert_str_eq(r.out[1], "0000\n");
    ck_assert_int_eq(umask(mine), 022); /* the parent's is untouched */
    cio_loop_free(loop);
}
END_TEST

/* ---- close and loop close ------------------------------------------------------------------ */

START_TEST(test_close_kills_a_running_child_and_closes_its_pipes)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r, loop);
    char *const argv[] = {A("sleep"), A("30"), NULL};
    cio_subprocess_t *sp = spawn(loop, &r, "sleep", argv, NULL);
    pid_t pid = cio_subprocess_get_pid(sp);
    ck_assert(!cio_subprocess_is_closing(sp));
    cio_subprocess_close(sp);
    ck_assert(cio_subprocess_is_closing(sp));
    cio_subprocess_close(sp); /* idempotent */
    run_until_lost(&r);
    ck_assert_msg(strcmp(r.order, "made,lost0,lost1,lost2,exited,lost") == 0, "[%s] order %s",
                  mode_names[_i], r.order);
    ck_assert_int_eq(r.returncode, -SIGKILL);
    ck_assert(reaped(pid));
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_loop_close_kills_and_reaps_running_children)
{
    use_mode(_i);
    cio_test_log_t log;
    cio_test_capture_log(&log);
    cio_loop_t *loop = cio_loop_new();
    rec_t r[2];
    char *const argv[] = {A("sleep"), A("30"), NULL};
    cio_subprocess_opts_t o = devnull_opts();
    rec_init(&r[0], loop);
    rec_init(&r[1], loop);
    pid_t pid0 = cio_subprocess_get_pid(spawn(loop, &r[0], "sleep", argv, NULL));
    pid_t pid1 = cio_subprocess_get_pid(spawn(loop, &r[1], "sleep", argv, &o));
    ck_assert_int_eq(count_children(false), 2);
    cio_loop_free(loop);
    ck_assert(reaped(pid0) && reaped(pid1));
    ck_assert_int_eq(count_children(false), 0);
    ck_assert_str_eq(r[0].order, "made,lost0,lost1,lost2,lost");
    ck_assert_int_eq(r[0].pipe_err[1], CIO_ECLOSED);
    ck_assert_str_eq(r[1].order, "made,lost");
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(r[k].lost_err, CIO_ECLOSED);
        ck_assert_int_eq(r[k].returncode, -SIGKILL);
    }
    ck_assert_msg(strstr(log.text, "still running when its loop closed"), "log: %s", log.text);
    cio_log_set_handler(NULL, NULL, CIO_LOG_INFO);
}
END_TEST

/* ---- failures after the child started ------------------------------------------------------ */

static cio_protocol_t *null_factory(void *arg)
{
    return NULL;
}

static int fail_made(rec_t *r)
{
    return -EPROTO;
}

static int count_reports(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

START_TEST(test_failures_after_the_start_kill_the_child)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    char *const argv[] = {A("sleep"), A("30"), NULL};
    /* The factory fails: no protocol, the child killed and reaped. */
    cio_future_t *f = cio_loop_subprocess_exec(loop, null_factory, NULL, "sleep", argv, NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, NULL), -ENOMEM);
    cio_future_unref(f);
    run_until(loop, no_children, NULL, "the child to be reaped");
    /* Cancelled before the start: the same. */
    rec_t r;
    rec_init(&r, loop);
    f = cio_loop_subprocess_exec(loop, rec_factory, &r, "sleep", argv, NULL);
    cio_future_cancel(f, NULL);
    cio_future_unref(f);
    run_until(loop, no_children, NULL, "the cancelled child to be reaped");
    ck_assert_int_eq(r.made, 0);
    /* connection_made fails: reported, the future fails, connection_lost still comes. */
    int reports = 0;
    cio_loop_set_exception_handler(loop, count_reports, &reports);
    rec_init(&r, loop);
    r.on_made = fail_made;
    f = cio_loop_subprocess_exec(loop, rec_factory, &r, "sleep", argv, NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, NULL), -EPROTO);
    cio_future_unref(f);
    run_until_lost(&r);
    ck_assert_int_eq(reports, 1);
    ck_assert_int_eq(r.returncode, -SIGKILL);
    ck_assert_str_eq(r.order, "made,lost0,lost1,lost2,exited,lost");
    cio_loop_free(loop);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

static int fail_data(rec_t *r, int fd, const uint8_t *d, size_t n)
{
    return -EPROTO;
}

static int fail_exited(rec_t *r)
{
    return -EPROTO;
}

static int close_at_pipe_lost(rec_t *r, int fd)
{
    cio_subprocess_close(r->sp);
    return 0;
}

START_TEST(test_failing_callbacks_are_reported)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    int reports = 0;
    cio_loop_set_exception_handler(loop, count_reports, &reports);
    /* pipe_data_received fails: that pipe closes with the error; the child runs on. */
    cio_subprocess_opts_t o = devnull_opts();
    o.stdio[1].mode = CIO_STDIO_PIPE;
    rec_t r;
    rec_init(&r, loop);
    r.on_data = fail_data;
    r.on_pipe_lost = close_at_pipe_lost;
    spawn_sh(loop, &r, "echo hi; exec sleep 30", &o);
    run_until_lost(&r);
    ck_assert_int_eq(reports, 1);
    ck_assert_int_eq(r.pipe_err[1], -EPROTO);
    ck_assert_str_eq(r.order, "made,data1,lost1,exited,lost");
    ck_assert_int_eq(r.returncode, -SIGKILL);
    /* process_exited fails: reported, and the transport closes (stdin, stdout here). */
    o.stdio[0].mode = CIO_STDIO_PIPE;
    rec_init(&r, loop);
    r.on_exited = fail_exited;
    spawn_sh(loop, &r, "exec 0<&- 1>&-; exit 4", &o);
    run_until_lost(&r);
    ck_assert_int_eq(reports, 2);
    ck_assert_int_eq(r.returncode, 4);
    ck_assert_msg(strstr(r.order, "exited") && strstr(r.order, "lost0") &&
                      strcmp(r.order + strlen(r.order) - 5, ",lost") == 0,
                  "order %s", r.order);
    cio_loop_free(loop);
}
END_TEST

static bool lost_or_never_made(void *arg)
{
    rec_t *r = arg;
    return (r->lost || !r->made) && count_children(false) == 0;
}

/*
 * Each allocation of a start made to fail in turn: the start fails or the
 * child runs to its end, and either way no child and (under ASan) no memory
 * is left behind.
 */
START_TEST(test_allocation_failures_while_starting_leave_nothing_behind)
{
    use_mode(_i);
    cio_loop_t *loop = cio_loop_new();
    cio_subprocess_opts_t o = {0};
    o.use_umask = _i == MODE_CLONE; /* the clone path's plan allocates too */
    bool clean = false;
    for (unsigned long n = 1; n < 100 && !clean; n++) {
        rec_t r;
        rec_init(&r, loop);
        cio__alloc_fail_after(n);
        cio_future_t *f = cio_loop_subprocess_shell(loop, rec_factory, &r, "exit 3", &o);
        cio__alloc_fail_after(0);
        clean = cio__alloc_failures() == 0;
        int rc = f ? cio_loop_run_until_complete(loop, f, NULL) : -ENOMEM;
        cio_future_unref(f);
        ck_assert_msg(rc == 0 || rc == -ENOMEM, "allocation %lu: %s", n, cio_err_name(rc));
        ck_assert(rc < 0 || !clean || r.made);
        run_until(loop, lost_or_never_made, &r, "the end of the child");
        if (r.made)
            ck_assert_int_eq(r.returncode, 3);
    }
    ck_assert(clean);
    cio_loop_free(loop);
}
END_TEST

/* ---- a thousand children, two loops, two threads ------------------------------------------- */

typedef struct fleet fleet_t;
typedef struct kid {
    cio_protocol_t base;
    fleet_t *fl;
    int index, returncode, err;
    cio_subprocess_t *sp;
    bool done;
} kid_t;

struct fleet {
    cio_loop_t *loop;
    kid_t *kids;
    int total, next, inflight, done;
};

#define FLEET_INFLIGHT 16

static int kid_expected(int i)
{
    return i % 2 == 0 ? 0 : (i * 37) % 256;
}

static void fleet_fill(fleet_t *fl);

static void kid_finished(kid_t *k)
{
    fleet_t *fl = k->fl;
    k->done = true;
    fl->inflight--;
    if (++fl->done == fl->total)
        cio_loop_stop(fl->loop);
    else
        fleet_fill(fl);
}

static int kid_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((kid_t *)p)->sp = cio_subprocess_from_transport(t);
    return 0;
}

static void kid_lost(cio_protocol_t *p, int err)
{
    kid_t *k = (kid_t *)p;
    k->err = err;
    if (cio_subprocess_get_returncode(k->sp, &k->returncode) < 0)
        k->err = -EBUSY;
    kid_finished(k);
}

static const cio_protocol_ops_t kid_ops = {.connection_made = kid_made,
                                           .connection_lost = kid_lost};

static cio_protocol_t *kid_factory(void *arg)
{
    return arg;
}

static int kid_created(cio_future_t *f, void *arg)
{
    kid_t *k = arg;
    int rc = cio_future_error(f);
    cio_future_unref(f);
    if (rc < 0) {
        k->err = rc;
        kid_finished(k);
    }
    return 0;
}

static void fleet_fill(fleet_t *fl)
{
    cio_subprocess_opts_t o = devnull_opts();
    while (fl->inflight < FLEET_INFLIGHT && fl->next < fl->total) {
        kid_t *k = &fl->kids[fl->next];
        *k = (kid_t){.base.ops = &kid_ops, .fl = fl, .index = fl->next++};
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "exit %d", kid_expected(k->index));
        cio_future_t *f =
            k->index % 2 == 0
                ? cio_loop_subprocess_exec(fl->loop, kid_factory, k, "/bin/true", NULL, &o)
                : cio_loop_subprocess_shell(fl->loop, kid_factory, k, cmd, &o);
        fl->inflight++;
        if (!f) {
            k->err = -ENOMEM;
            kid_finished(k);
        } else {
            ck_assert_int_eq(cio_future_add_done_callback(f, kid_created, k), 0);
        }
    }
}

static void *fleet_thread(void *arg)
{
    fleet_t *fl = arg;
    fl->loop = cio_loop_new();
    fleet_fill(fl);
    cio_loop_run_forever(fl->loop);
    cio_loop_free(fl->loop);
    return NULL;
}

/* _i: MODE_SPAWN (pidfds, 2 x 500 children) or MODE_POLL (the fallback, 2 x 100). */
START_TEST(test_a_thousand_children_on_two_loops_in_two_threads)
{
    use_mode(_i);
    int per_loop = _i == MODE_POLL ? 100 : 500;
    fleet_t fl[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        fl[t] = (fleet_t){.total = per_loop, .kids = calloc((size_t)per_loop, sizeof(kid_t))};
        ck_assert_int_eq(pthread_create(&th[t], NULL, fleet_thread, &fl[t]), 0);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(fl[t].done, per_loop);
        for (int i = 0; i < per_loop; i++) {
            kid_t *k = &fl[t].kids[i];
            ck_assert_msg(k->done && k->err == 0, "[%s] loop %d child %d: %s", mode_names[_i], t, i,
                          cio_err_name(k->err));
            ck_assert_msg(k->returncode == kid_expected(i), "loop %d child %d: returncode %d", t, i,
                          k->returncode);
        }
        free(fl[t].kids);
    }
    ck_assert_int_eq(count_children(true), 0);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

/* ---- the task helpers ------------------------------------------------------------------------ */

#define CAT_BYTES (4 * MIB)

static void *await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    int rc = cio_await(f, &res);
    ck_assert_msg(rc == 0, "await failed: %s", cio_err_name(rc));
    cio_future_unref(f);
    return res;
}

static int cat_writer(void *arg, void **result)
{
    cio_process_t *p = arg;
    static uint8_t chunk[64 * 1024];
    for (size_t sent = 0; sent < CAT_BYTES; sent += sizeof(chunk)) {
        for (size_t k = 0; k < sizeof(chunk); k++)
            chunk[k] = pattern_at(sent + k);
        ck_assert_int_eq(cio_process_write(p, chunk, sizeof(chunk)), 0);
    }
    return cio_process_close_stdin(p);
}

static int cat_main(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_process_t *p = await_ok(cio_create_subprocess_exec(loop, "cat", NULL, NULL));
    ck_assert_int_gt(cio_process_get_pid(p), 0);
    cio_task_t *w = cio_loop_create_task(loop, cat_writer, p, NULL);
    uint8_t buf[10000];
    size_t got = 0;
    ssize_t n;
    while ((n = cio_process_read(p, 1, buf, sizeof(buf))) > 0) {
        for (ssize_t k = 0; k < n; k++) { /* not one ck_assert a byte: each is a write to Check */
            if (buf[k] != pattern_at(got + (size_t)k))
                ck_abort_msg("byte %zu is %u", got + (size_t)k, buf[k]);
        }
        got += (size_t)n;
    }
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(got, CAT_BYTES);
    ck_assert_int_eq(cio_await(cio_task_future(w), NULL), 0);
    cio_task_unref(w);
    ck_assert_int_eq(cio_process_read(p, 2, buf, sizeof(buf)), 0); /* stderr: nothing */
    ck_assert_int_eq(cio_process_read(p, 0, buf, sizeof(buf)), -EBADF);
    int code = -1;
    ck_assert_int_eq(cio_process_wait(p, &code), 0);
    ck_assert_int_eq(code, 0);
    ck_assert_int_eq(cio_process_send_signal(p, SIGTERM), -ESRCH);
    cio_process_free(p);
    return 0;
}

START_TEST(test_process_write_read_to_eof_and_wait)
{
    use_mode(_i);
    ck_assert_int_eq(cio_run(cat_main, NULL, false, NULL), 0);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

static int shell_main(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_process_t *p =
        await_ok(cio_create_subprocess_shell(loop, "echo hello; echo oops >&2; exit 3", NULL));
    char out[64] = {0}, err[64] = {0};
    size_t no = 0, ne = 0;
    ssize_t n;
    while ((n = cio_process_read(p, 1, out + no, sizeof(out) - 1 - no)) > 0)
        no += (size_t)n;
    while ((n = cio_process_read(p, 2, err + ne, sizeof(err) - 1 - ne)) > 0)
        ne += (size_t)n;
    ck_assert_str_eq(out, "hello\n");
    ck_assert_str_eq(err, "oops\n");
    int code = 0;
    ck_assert_int_eq(cio_process_wait(p, &code), 0);
    ck_assert_int_eq(code, 3);
    ck_assert_int_eq(cio_process_get_returncode(p, &code), 0);
    ck_assert_int_eq(code, 3);
    cio_process_free(p);
    /* Freed while running: the loop kills and reaps it. */
    p = await_ok(cio_create_subprocess_shell(loop, "sleep 30", NULL));
    pid_t pid = cio_process_get_pid(p);
    cio_process_free(p);
    while (!reaped(pid))
        cio_sleep(0.002);
    /* A program that cannot start. */
    cio_future_t *f = cio_create_subprocess_exec(loop, "/nonexistent/program", NULL, NULL);
    ck_assert_int_eq(cio_await(f, NULL), -ENOENT);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_process_shell_stdout_stderr_and_free)
{
    ck_assert_int_eq(cio_run(shell_main, NULL, false, NULL), 0);
    ck_assert_int_eq(count_children(false), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("subprocess");
    TCase *tc = cio_test_case("subprocess");
    tcase_add_loop_test(tc, test_exit_status_is_the_returncode, 0, NMODES);
    tcase_add_loop_test(tc, test_order_pipes_close_before_the_exit, 0, NMODES);
    tcase_add_loop_test(tc, test_order_exit_before_the_pipes_close, 0, NMODES);
    tcase_add_loop_test(tc, test_stdin_closed_early_is_eof_in_the_child, 0, NMODES);
    tcase_add_loop_test(tc, test_kill_terminate_and_send_signal_report_minus_the_signal, 0, NMODES);
    tcase_add_loop_test(tc, test_child_killed_by_its_own_signal, 0, NMODES);
    tcase_add_loop_test(tc, test_child_has_no_blocked_or_ignored_signal, 0, NMODES);
    tcase_add_loop_test(tc, test_child_sees_only_0_1_2_and_pass_fds, 0, 4);
    tcase_add_loop_test(tc, test_parent_without_0_1_2, 0, NMODES);
    tcase_add_loop_test(tc, test_signal_after_reap_never_reaches_a_reused_pid, 0, NMODES);
    tcase_add_loop_test(tc, test_a_program_that_cannot_start_fails_the_future, 0, NMODES);
    CIO_TEST(tc, test_bad_arguments_return_null);
    tcase_add_loop_test(tc, test_cwd_and_env_apply_in_the_child, 0, NMODES);
    tcase_add_loop_test(tc, test_new_session_and_process_group, 0, NMODES);
    tcase_add_loop_test(tc, test_umask_applies_in_the_child_only, 0, NMODES);
    tcase_add_loop_test(tc, test_close_kills_a_running_child_and_closes_its_pipes, 0, NMODES);
    tcase_add_loop_test(tc, test_loop_close_kills_and_reaps_running_children, 0, NMODES);
    tcase_add_loop_test(tc, test_failures_after_the_start_kill_the_child, 0, NMODES);
    tcase_add_loop_test(tc, test_allocation_failures_while_starting_leave_nothing_behind, 0,
                        NMODES);
    tcase_add_loop_test(tc, test_failing_callbacks_are_reported, 0, NMODES);
    tcase_add_loop_test(tc, test_process_write_read_to_eof_and_wait, 0, NMODES);
    CIO_TEST(tc, test_process_shell_stdout_stderr_and_free);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("big");
    tcase_set_timeout(big, LONG_RUN);
    CIO_TEST(big, test_50_mb_from_stdout_in_order_with_reading_paused);
    CIO_TEST(big, test_50_mb_into_stdin_with_flow_control);
    tcase_add_loop_test(big, test_a_thousand_children_on_two_loops_in_two_threads, MODE_SPAWN,
                        MODE_SPAWN + 1);
    tcase_add_loop_test(big, test_a_thousand_children_on_two_loops_in_two_threads, MODE_POLL,
                        MODE_POLL + 1);
    suite_add_tcase(s, big);
    return s;
}

CIO_TEST_MAIN(make_suite)
