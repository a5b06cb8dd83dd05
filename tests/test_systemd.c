/*
 * tests/test_systemd.c: framework/systemd.c, compiled into this suite (it is
 * internal to the library): sd_notify messages arrive as one datagram each,
 * byte for byte, at abstract and path sockets, up to the longest address
 * sun_path holds; unset, malformed and unreachable addresses give the
 * kernel's or the documented error, a full queue -EAGAIN without blocking,
 * and no descriptor is left open. Socket activation is tried in a process
 * of its own (a fresh pid, descriptors 3.. laid out as systemd lays them):
 * names in order or "unknown", counts of names that differ refused as
 * libsystemd refuses them, descriptors made close-on-exec, non-sockets and
 * closed descriptors refused, malformed LISTEN_PID and LISTEN_FDS values,
 * another process's LISTEN_PID left alone, the environment cleared once it
 * was ours, and allocation failures that leak nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "systemd.h"
#include "testutil.h"

/* loop/alloc.c's hook, compiled in (alloc.h would route this file's own allocations through it). */
void cio__alloc_fail_after(unsigned long n);

/* An errno value's name for failure messages: -ENOENT -> "ENOENT". */
static const char *err_name(int rc)
{
    const char *s = rc < 0 ? strerrorname_np(-rc) : NULL;
    return s ? s : rc < 0 ? "?" : "no error";
}

#define ck_assert_rc(rc, want)                                                                     \
    do {                                                                                           \
        int rc_ = (rc), want_ = (want);                                                            \
        ck_assert_msg(rc_ == want_, "%s: got %d (%s), want %d (%s)", #rc, rc_, err_name(rc_),      \
                      want_, err_name(want_));                                                     \
    } while (0)

/* ---- sd_notify ------------------------------------------------------------------ */

/* A datagram socket bound at @p name (a path, or '@' and an abstract name). */
static int bind_receiver(const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t l = strlen(name);
    ck_assert_uint_le(l, sizeof(sun.sun_path));
    memcpy(sun.sun_path, name, l);
    if (name[0] == '@')
        sun.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + (name[0] != '@'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sun, len) == 0, "bind %s: %s", name,
                  strerror(errno));
    return fd;
}

/* The next datagram on @p fd, which must be there already, NUL-terminated. */
static ssize_t receive(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, MSG_DONTWAIT);
    ck_assert_msg(n >= 0, "recv: %s", strerror(errno));
    buf[n] = '\0';
    return n;
}

/* No datagram is waiting on @p fd. */
static void assert_nothing_more(int fd)
{
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, MSG_DONTWAIT), -1);
    ck_assert_int_eq(errno, EAGAIN);
}

/* The lowest descriptor free now: equal before and after a call that leaks none. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return fd;
}

/* A unique abstract name of @p len bytes after the '@'. */
static void abstract_name(char *out, size_t len)
{
    static int seq;
    int n = snprintf(out, len + 2, "@coreio-test-sd-%d-%d-", (int)getpid(), seq++);
    ck_assert_int_le(n, (int)len + 1);
    memset(out + n, 'x', len + 1 - (size_t)n);
    out[len + 1] = '\0';
}

START_TEST(test_notify_sends_one_datagram_to_an_abstract_socket)
{
    char name[64], buf[256];
    abstract_name(name, 40);
    int r = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);
    int before = lowest_free_fd();
    ck_assert_rc(cio__sd_notify("READY=1\nSTATUS=serving"), 1);
    ck_assert_int_eq(lowest_free_fd(), before);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 22);
    ck_assert_str_eq(buf, "READY=1\nSTATUS=serving");
    assert_nothing_more(r);
    /* Left set: coreiod sends more messages later (STOPPING=1, MAINPID=...). */
    ck_assert_str_eq(getenv("NOTIFY_SOCKET"), name);
    ck_assert_rc(cio__sd_notify("STOPPING=1"), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 10);
    ck_assert_str_eq(buf, "STOPPING=1");
    close(r);
}
END_TEST

/* A directory of its own for path sockets, removed with what is in it. */
static char *temp_dir(void)
{
    char tmpl[] = "/tmp/coreio-sd-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return strdup(tmpl);
}

START_TEST(test_notify_sends_one_datagram_to_a_path_socket)
{
    char *dir = temp_dir(), path[256], buf[256];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int r = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("READY=1\nMAINPID=4242\n"), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 21);
    ck_assert_str_eq(buf, "READY=1\nMAINPID=4242\n");
    assert_nothing_more(r);
    close(r);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_notify_without_notify_socket_sends_nothing)
{
    unsetenv("NOTIFY_SOCKET");
    int before = lowest_free_fd();
    ck_assert_rc(cio__sd_notify("READY=1"), 0);
    ck_assert_rc(cio__sd_notifyf("STATUS=%d workers", 4), 0);
    ck_assert_int_eq(lowest_free_fd(), before);
}
END_TEST

/* The longest names sun_path holds are used whole; one byte more is refused. */
START_TEST(test_notify_address_at_the_sun_path_limit)
{
    struct sockaddr_un sun;
    const size_t max = sizeof(sun.sun_path);
    char name[sizeof(sun.sun_path) + 8], buf[64];
    abstract_name(name, max - 1); /* '@' stands for the leading NUL: 108 bytes */
    int r = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 7);
    close(r);
    abstract_name(name, max);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -EINVAL);

    /* A path keeps a byte for its NUL: 107 characters at most. */
    char *dir = temp_dir(), path[sizeof(sun.sun_path) + 8];
    int n = snprintf(path, sizeof(path), "%s/", dir);
    memset(path + n, 'p', max - 1 - (size_t)n);
    path[max - 1] = '\0';
    r = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("STATUS=long"), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 11);
    close(r);
    unlink(path);
    path[max - 1] = 'p';
    path[max] = '\0';
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -EINVAL);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_notify_to_no_listener_fails_as_the_kernel_says)
{
    char *dir = temp_dir(), path[256], name[64];
    int before = lowest_free_fd();
    snprintf(path, sizeof(path), "%s/absent", dir);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -ENOENT);
    /* A socket file whose socket is closed, and a file that is no socket. */
    snprintf(path, sizeof(path), "%s/stale", dir);
    close(bind_receiver(path));
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -ECONNREFUSED);
    unlink(path);
    snprintf(path, sizeof(path), "%s/file", dir);
    close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -ECONNREFUSED);
    unlink(path);
    abstract_name(name, 40);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_rc(cio__sd_notify("READY=1"), -ECONNREFUSED);
    ck_assert_int_eq(lowest_free_fd(), before);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_notify_refuses_what_is_no_socket_address)
{
    static const struct {
        const char *value;
        int rc;
    } cases[] = {
        {"", -EINVAL},
        {"run/systemd/notify", -EINVAL},
        {"@", -EINVAL},
        {"vsock:2:1234", -EAFNOSUPPORT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv("NOTIFY_SOCKET", cases[i].value, 1);
        ck_assert_msg(cio__sd_notify("READY=1") == cases[i].rc, "NOTIFY_SOCKET=\"%s\"",
                      cases[i].value);
    }
    setenv("NOTIFY_SOCKET", "/run/anything", 1);
    ck_assert_rc(cio__sd_notify(NULL), -EINVAL);
}
END_TEST

/* A manager that reads nothing: the queue fills, and the call says so at once. */
START_TEST(test_notify_to_a_full_queue_returns_eagain)
{
    char name[64];
    abstract_name(name, 40);
    int r = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);
    int rc = 1, sent = 0;
    while (rc == 1 && sent < 100000) {
        rc = cio__sd_notify("WATCHDOG=1");
        sent += rc == 1;
    }
    ck_assert_rc(rc, -EAGAIN);
    ck_assert_int_gt(sent, 0);
    close(r);
}
END_TEST

START_TEST(test_notifyf_formats_within_its_bound)
{
    char name[64];
    static char buf[CIO__SD_NOTIFY_MAX + 16];
    abstract_name(name, 40);
    int r = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_rc(cio__sd_notifyf("MAINPID=%d\nREADY=1\nSTATUS=%s", 77, "upgraded"), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), 34);
    ck_assert_str_eq(buf, "MAINPID=77\nREADY=1\nSTATUS=upgraded");
    /* The longest message fits with its NUL; one character more is not cut but refused. */
    ck_assert_rc(cio__sd_notifyf("STATUS=%0*d", CIO__SD_NOTIFY_MAX - 8, 0), 1);
    ck_assert_int_eq(receive(r, buf, sizeof(buf)), CIO__SD_NOTIFY_MAX - 1);
    ck_assert_rc(cio__sd_notifyf("STATUS=%0*d", CIO__SD_NOTIFY_MAX - 7, 0), -EMSGSIZE);
    assert_nothing_more(r);
    close(r);
}
END_TEST

/* ---- sd_listen_fds ---------------------------------------------------------------- */

#define MAX_FDS    4
#define PID_SELF   "self"   /* LISTEN_PID: the process that makes the call */
#define PID_PARENT "parent" /* LISTEN_PID: another live process */

/* What the process that makes the call is given. */
typedef struct layout {
    int nfds;                      /* descriptors placed at 3, 4, ... */
    bool pipe_at[MAX_FDS];         /* that one is a pipe, not a socket */
    const char *pid, *fds, *names; /* LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; NULL: unset */
    bool alloc_failures;           /* fail the 1st, 2nd, ... allocation until the call succeeds */
} layout_t;

/* What it saw; read back by the test's process. */
typedef struct outcome {
    int setup_line; /* a line of child_setup() that failed, or 0 */
    int rc;
    size_t n;
    bool arrays_null; /* *fds and *names were NULL after the call */
    int fds[MAX_FDS];
    char names[MAX_FDS][32];
    bool same[MAX_FDS];    /* the descriptor returned is the one placed there */
    bool cloexec[MAX_FDS]; /* descriptor 3 + i, after the call */
    bool env_pid, env_fds, env_names;
    int enomem_calls;    /* calls refused with -ENOMEM before the one that succeeded */
    bool enomem_cleared; /* each of them left n 0 and both arrays NULL */
} outcome_t;

#define SETUP_CHECK(o, cond)                                                                       \
    do {                                                                                           \
        if (!(cond) && (o)->setup_line == 0)                                                       \
            (o)->setup_line = __LINE__;                                                            \
    } while (0)

/* Place what @p lay asks for at 3, 4, ... (descriptors above the Check runner's own). */
static void place_fds(const layout_t *lay, outcome_t *o, ino_t *ino)
{
    int high[MAX_FDS];
    for (int i = 0; i < lay->nfds; i++) {
        int p[2] = {-1, -1};
        if (lay->pipe_at[i])
            SETUP_CHECK(o, pipe(p) == 0);
        else
            p[0] = socket(AF_UNIX, SOCK_STREAM, 0);
        SETUP_CHECK(o, p[0] >= 0);
        high[i] = fcntl(p[0], F_DUPFD, 100 + i);
        close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
    }
    /* dup2 clears FD_CLOEXEC, as the descriptors systemd passes come. */
    for (int i = 0; i < lay->nfds; i++) {
        struct stat st;
        SETUP_CHECK(o, dup2(high[i], CIO__SD_LISTEN_FDS_START + i) >= 0);
        SETUP_CHECK(o, fstat(high[i], &st) == 0);
        ino[i] = st.st_ino;
        close(high[i]);
    }
}

static void set_env(const char *key, const char *value)
{
    if (value)
        setenv(key, value, 1);
    else
        unsetenv(key);
}

static void child_env(const layout_t *lay)
{
    char pid[32] = "";
    if (lay->pid && strcmp(lay->pid, PID_SELF) == 0)
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
    else if (lay->pid && strcmp(lay->pid, PID_PARENT) == 0)
        snprintf(pid, sizeof(pid), "%d", (int)getppid());
    set_env("LISTEN_PID", !lay->pid ? NULL : pid[0] ? pid : lay->pid);
    set_env("LISTEN_FDS", lay->fds);
    set_env("LISTEN_FDNAMES", lay->names);
}

/* The call, once or (alloc_failures) until no allocation fails. */
static void child_call(const layout_t *lay, outcome_t *o, const ino_t *ino)
{
    int *fds = (int *)1;
    char **names = (char **)1;
    size_t n = 99;
    o->enomem_cleared = true;
    for (unsigned long k = lay->alloc_failures ? 1 : 0; k < 100; k++) {
        child_env(lay);
        cio__alloc_fail_after(k);
        o->rc = cio__sd_listen_fds(&fds, &names, &n);
        cio__alloc_fail_after(0);
        if (!lay->alloc_failures || o->rc != -ENOMEM)
            break;
        o->enomem_calls++;
        o->enomem_cleared &= n == 0 && !fds && !names;
    }
    o->n = n;
    o->arrays_null = !fds && !names;
    for (size_t i = 0; o->rc == 0 && i < n && i < MAX_FDS; i++) {
        struct stat st;
        o->fds[i] = fds[i];
        snprintf(o->names[i], sizeof(o->names[i]), "%s", names[i]);
        o->same[i] = fstat(fds[i], &st) == 0 && st.st_ino == ino[i];
    }
    cio__sd_listen_free(fds, names, n);
}

/* The process that makes the call: a pid of its own, descriptors 3.. as systemd leaves them. */
static void child_main(const layout_t *lay, int report)
{
    outcome_t o = {0};
    ino_t ino[MAX_FDS] = {0};
    int w = fcntl(report, F_DUPFD_CLOEXEC, 200);
    SETUP_CHECK(&o, w >= 0);
    close(report);
    place_fds(lay, &o, ino);
    child_call(lay, &o, ino);
    for (int i = 0; i < MAX_FDS; i++) {
        int flags = fcntl(CIO__SD_LISTEN_FDS_START + i, F_GETFD);
        o.cloexec[i] = flags >= 0 && (flags & FD_CLOEXEC);
    }
    o.env_pid = getenv("LISTEN_PID") != NULL;
    o.env_fds = getenv("LISTEN_FDS") != NULL;
    o.env_names = getenv("LISTEN_FDNAMES") != NULL;
    ssize_t n = write(w, &o, sizeof(o));
    /* exit(), not _exit(): a sanitizer's leak check runs here, and fails the status. */
    exit(n == (ssize_t)sizeof(o) ? 0 : 3);
}

static outcome_t run(const layout_t *lay)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child_main(lay, p[1]);
    }
    close(p[1]);
    outcome_t o;
    ssize_t n = read(p[0], &o, sizeof(o));
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    ck_assert_int_eq(n, (ssize_t)sizeof(o));
    ck_assert_msg(o.setup_line == 0, "child setup failed at line %d", o.setup_line);
    return o;
}

/* An error left nothing to free and the descriptors where they were. */
static void assert_refused(const outcome_t *o, int rc)
{
    ck_assert_rc(o->rc, rc);
    ck_assert_uint_eq(o->n, 0);
    ck_assert(o->arrays_null);
}

START_TEST(test_listen_fds_without_listen_pid_is_not_activated)
{
    layout_t lay = {.nfds = 1, .fds = "1", .names = "http"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 0);
    ck_assert(o.arrays_null);
    ck_assert(!o.cloexec[0]);
    ck_assert(o.env_fds && o.env_names);
}
END_TEST

/* Meant for another process (a parent that did not exec yet): untouched, env included. */
START_TEST(test_listen_fds_of_another_pid_are_left_alone)
{
    layout_t lay = {.nfds = 2, .pid = PID_PARENT, .fds = "2", .names = "http:admin"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 0);
    ck_assert(o.arrays_null);
    ck_assert(!o.cloexec[0] && !o.cloexec[1]);
    ck_assert(o.env_pid && o.env_fds && o.env_names);
}
END_TEST

START_TEST(test_listen_fds_named_in_order)
{
    layout_t lay = {.nfds = 3, .pid = PID_SELF, .fds = "3", .names = "http:admin:agent"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 3);
    static const char *const want[] = {"http", "admin", "agent"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(o.fds[i], CIO__SD_LISTEN_FDS_START + i);
        ck_assert_str_eq(o.names[i], want[i]);
        ck_assert_msg(o.same[i], "descriptor %d is not the socket placed there", o.fds[i]);
        ck_assert_msg(o.cloexec[i], "descriptor %d is not close-on-exec", o.fds[i]);
    }
    ck_assert(!o.cloexec[3]); /* no descriptor past the count is touched */
    ck_assert(!o.env_pid && !o.env_fds && !o.env_names);
}
END_TEST

START_TEST(test_listen_fds_without_fdnames_are_unknown)
{
    layout_t lay = {.nfds = 2, .pid = PID_SELF, .fds = "2"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 2);
    ck_assert_str_eq(o.names[0], "unknown");
    ck_assert_str_eq(o.names[1], "unknown");
    ck_assert(o.cloexec[0] && o.cloexec[1]);
    ck_assert(!o.env_pid && !o.env_fds);
}
END_TEST

/* Empty names between colons count, as in libsystemd (EXTRACT_DONT_COALESCE_SEPARATORS). */
START_TEST(test_listen_fds_keep_empty_names)
{
    layout_t lay = {.nfds = 3, .pid = PID_SELF, .fds = "3", .names = "a::c"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 3);
    ck_assert_str_eq(o.names[0], "a");
    ck_assert_str_eq(o.names[1], "");
    ck_assert_str_eq(o.names[2], "c");
}
END_TEST

/* libsystemd: a name list that is there must name each descriptor, no more, no fewer. */
START_TEST(test_listen_fds_with_a_name_count_that_differs_are_refused)
{
    static const struct {
        int nfds;
        const char *fds, *names;
    } cases[] = {{3, "3", "a:b"}, {1, "1", "a:b"}, {1, "1", ""}, {2, "2", "a:b:"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        layout_t lay = {
            .nfds = cases[i].nfds, .pid = PID_SELF, .fds = cases[i].fds, .names = cases[i].names};
        outcome_t o = run(&lay);
        ck_assert_msg(o.rc == -EINVAL, "LISTEN_FDNAMES=\"%s\": %d", cases[i].names, o.rc);
        assert_refused(&o, -EINVAL);
        /* Ours all the same: not inherited, and the environment consumed. */
        ck_assert(o.cloexec[0]);
        ck_assert(!o.env_pid && !o.env_fds && !o.env_names);
    }
}
END_TEST

START_TEST(test_listen_fds_refuse_a_descriptor_that_is_no_socket)
{
    layout_t lay = {.nfds = 3, .pipe_at = {false, true, false}, .pid = PID_SELF, .fds = "3"};
    outcome_t o = run(&lay);
    assert_refused(&o, -ENOTSOCK);
    /* Each is marked close-on-exec, past the pipe too: none leaks into a child. */
    ck_assert(o.cloexec[0] && o.cloexec[1] && o.cloexec[2]);
    ck_assert(!o.env_pid && !o.env_fds);
}
END_TEST

START_TEST(test_listen_fds_refuse_a_closed_descriptor)
{
    layout_t lay = {.nfds = 1, .pid = PID_SELF, .fds = "2", .names = "a:b"};
    outcome_t o = run(&lay);
    assert_refused(&o, -EBADF);
    ck_assert(o.cloexec[0]);
    ck_assert(!o.env_pid);
    /* The largest count allowed ends at the first closed descriptor, allocating nothing. */
    lay.fds = "2147483644";
    lay.names = NULL;
    o = run(&lay);
    assert_refused(&o, -EBADF);
}
END_TEST

START_TEST(test_listen_fds_with_our_pid_and_no_count_are_not_activated)
{
    layout_t lay = {.nfds = 1, .pid = PID_SELF, .names = "http"};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 0);
    ck_assert(o.arrays_null);
    ck_assert(!o.cloexec[0]);
    ck_assert(!o.env_pid && !o.env_names);
}
END_TEST

/* A LISTEN_PID that is no pid: whose it was is unknown, so the environment stays. */
START_TEST(test_listen_fds_refuse_a_malformed_listen_pid)
{
    static const char *const bad[] = {"", "0", "-1", "+5", " 5", "5 ", "5x", "0x10", "2147483648"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        layout_t lay = {.nfds = 1, .pid = bad[i], .fds = "1"};
        outcome_t o = run(&lay);
        ck_assert_msg(o.rc == -EINVAL, "LISTEN_PID=\"%s\": %d", bad[i], o.rc);
        assert_refused(&o, -EINVAL);
        ck_assert(o.env_pid && o.env_fds);
        ck_assert(!o.cloexec[0]);
    }
}
END_TEST

START_TEST(test_listen_fds_refuse_a_malformed_count)
{
    static const char *const bad[] = {"",   "0",  "-1",         "+1",         " 1",
                                      "1x", "01", "2147483645", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        layout_t lay = {.nfds = 1, .pid = PID_SELF, .fds = bad[i]};
        outcome_t o = run(&lay);
        ck_assert_msg(o.rc == -EINVAL, "LISTEN_FDS=\"%s\": %d", bad[i], o.rc);
        assert_refused(&o, -EINVAL);
        ck_assert(!o.env_pid && !o.env_fds);
    }
}
END_TEST

/* Each allocation failing in turn: -ENOMEM with nothing returned (a leak fails the child). */
START_TEST(test_listen_fds_allocation_failures_leak_nothing)
{
    layout_t lay = {.nfds = 3,
                    .pid = PID_SELF,
                    .fds = "3",
                    .names = "http:admin:agent",
                    .alloc_failures = true};
    outcome_t o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_uint_eq(o.n, 3);
    ck_assert_str_eq(o.names[2], "agent");
    /* Two arrays and three names. */
    ck_assert_int_eq(o.enomem_calls, 5);
    ck_assert(o.enomem_cleared);
    lay.names = NULL;
    o = run(&lay);
    ck_assert_rc(o.rc, 0);
    ck_assert_str_eq(o.names[0], "unknown");
    ck_assert_int_eq(o.enomem_calls, 5);
    ck_assert(o.enomem_cleared);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("systemd");
    TCase *tc = cio_test_case("notify");
    CIO_TEST(tc, test_notify_sends_one_datagram_to_an_abstract_socket);
    CIO_TEST(tc, test_notify_sends_one_datagram_to_a_path_socket);
    CIO_TEST(tc, test_notify_without_notify_socket_sends_nothing);
    CIO_TEST(tc, test_notify_address_at_the_sun_path_limit);
    CIO_TEST(tc, test_notify_to_no_listener_fails_as_the_kernel_says);
    CIO_TEST(tc, test_notify_refuses_what_is_no_socket_address);
    CIO_TEST(tc, test_notify_to_a_full_queue_returns_eagain);
    CIO_TEST(tc, test_notifyf_formats_within_its_bound);
    suite_add_tcase(s, tc);
    tc = cio_test_case("listen_fds");
    CIO_TEST(tc, test_listen_fds_without_listen_pid_is_not_activated);
    CIO_TEST(tc, test_listen_fds_of_another_pid_are_left_alone);
    CIO_TEST(tc, test_listen_fds_named_in_order);
    CIO_TEST(tc, test_listen_fds_without_fdnames_are_unknown);
    CIO_TEST(tc, test_listen_fds_keep_empty_names);
    CIO_TEST(tc, test_listen_fds_with_a_name_count_that_differs_are_refused);
    CIO_TEST(tc, test_listen_fds_refuse_a_descriptor_that_is_no_socket);
    CIO_TEST(tc, test_listen_fds_refuse_a_closed_descriptor);
    CIO_TEST(tc, test_listen_fds_with_our_pid_and_no_count_are_not_activated);
    CIO_TEST(tc, test_listen_fds_refuse_a_malformed_listen_pid);
    CIO_TEST(tc, test_listen_fds_refuse_a_malformed_count);
    CIO_TEST(tc, test_listen_fds_allocation_failures_leak_nothing);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
