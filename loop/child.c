/*
 * loop/child.c: watching a child process from the loop that started it. The
 * child's pidfd (pidfd_open, Linux 5.3) is watched with the loop's own I/O
 * watching: it becomes readable when the child exits, and waitid(P_PIDFD)
 * reaps exactly that child. No SIGCHLD handler (libevent lets one event_base
 * at a time own a signal, which does not fit a loop per core) and no watcher
 * thread (asyncio's default until 3.12), so any number of loops can spawn at
 * once. Signals go through pidfd_send_signal: a pid taken over by another
 * process is never signalled.
 *
 * Where pidfd_open is missing, each loop polls its own children with a timer
 * and waitpid(pid, WNOHANG): 1 ms after a spawn, doubling to 100 ms while any
 * child runs. It never waits for "any child", so loops do not steal each
 * other's children; a pid cannot be reused before coreio reaps it, so
 * signalling by pid is safe until then.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define POLL_FIRST 0.001 /* seconds after a spawn */
#define POLL_MAX   0.1

_Atomic int cio__child_test_flags;

/* Whether pidfd_open works here: 0 not known yet, 1 yes, -1 no. */
static _Atomic int pidfd_support;

void cio__child_set_test_flags(int flags)
{
    atomic_store(&cio__child_test_flags, flags);
}

/* A pidfd for @p pid, or -ENOSYS when the loop must poll instead. */
static int open_pidfd(pid_t pid)
{
    if ((atomic_load(&cio__child_test_flags) & CIO__CHILD_NO_PIDFD) ||
        atomic_load_explicit(&pidfd_support, memory_order_relaxed) < 0)
        return -ENOSYS;
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0); /* CLOEXEC by definition */
    if (fd >= 0) {
        atomic_store_explicit(&pidfd_support, 1, memory_order_relaxed);
        return (int)fd;
    }
    /* EPERM: a seccomp filter of an older container runtime that does not know the call. */
    if (errno != ENOSYS && errno != EPERM)
        return -errno;
#endif
    atomic_store_explicit(&pidfd_support, -1, memory_order_relaxed);
    return -ENOSYS;
}

/* Stop watching @p c and note how it ended. */
static void mark_exited(cio__child_t *c, int returncode)
{
    c->exited = true;
    c->returncode = returncode;
    if (c->pidfd >= 0) {
        cio__io_stop(c->loop, c->pidfd, c, CIO__IO_READ);
        close(c->pidfd);
        c->pidfd = -1;
    } else {
        cio__queue_remove(&c->poll_link);
    }
}

/* Reap @p c if it has exited (or wait until it has, with @p block); true once reaped. */
static bool reap(cio__child_t *c, bool block)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int flags = WEXITED | (block ? 0 : WNOHANG), rc;
    do {
        rc = c->pidfd >= 0 ? waitid(P_PIDFD, (id_t)c->pidfd, &si, flags)
                           : waitid(P_PID, (id_t)c->pid, &si, flags);
        if (rc < 0 && errno == EINVAL && c->pidfd >= 0) /* Linux 5.3: pidfds, no P_PIDFD */
            rc = waitid(P_PID, (id_t)c->pid, &si, flags);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) { /* ECHILD: waited for elsewhere (SIGCHLD ignored, waitpid(-1)) */
        cio__log(CIO_LOG_WARNING, "child process %d was reaped elsewhere: returncode 255",
                 (int)c->pid);
        mark_exited(c, 255);
        return true;
    }
    if (si.si_pid == 0)
        return false;
    mark_exited(c, si.si_code == CLD_EXITED ? si.si_status : -si.si_status);
    return true;
}

static int on_pidfd_readable(void *arg)
{
    cio__child_t *c = arg;
    if (reap(c, false))
        c->on_exit(c);
    return 0;
}

/* ---- the polling fallback ---------------------------------------------------- */

static int poll_children(void *arg);

static int poll_arm(cio_loop_t *loop, double delay)
{
    cio_handle_cancel(loop->child_poll);
    loop->child_poll_delay = delay;
    return cio_loop_call_later(loop, delay, poll_children, loop, &loop->child_poll);
}

/* The timer: reap what exited, then tell each owner (whose callbacks may spawn more). */
static int poll_children(void *arg)
{
    cio_loop_t *loop = arg;
    loop->child_poll = (cio_handle_t){0};
    cio__queue_t done, *q, *next;
    cio__queue_init(&done);
    for (q = loop->polled_children.next; q != &loop->polled_children; q = next) {
        next = q->next;
        cio__child_t *c = cio_container_of(q, cio__child_t, poll_link);
        if (reap(c, false))
            cio__queue_insert_tail(&done, &c->poll_link);
    }
    while (!cio__queue_empty(&done)) {
        cio__child_t *c = cio_container_of(done.next, cio__child_t, poll_link);
        cio__queue_remove(&c->poll_link);
        c->on_exit(c);
    }
    if (cio__queue_empty(&loop->polled_children) || cio__handle_pending(loop->child_poll))
        return 0;
    double delay = loop->child_poll_delay * 2;
    return poll_arm(loop, delay < POLL_MAX ? delay : POLL_MAX);
}

/* ---- the interface ------------------------------------------------------------ */

/*
 * Watch the child @p pid from @p loop: @p on_exit(c) runs from the loop once
 * it has exited and been reaped, with c->returncode set. Returns 0, or an
 * error (-EMFILE, -ENOMEM) with the child not watched.
 */
int cio__child_watch(cio_loop_t *loop, cio__child_t *c, pid_t pid, void (*on_exit)(cio__child_t *))
{
    *c = (cio__child_t){.loop = loop, .pid = pid, .pidfd = -1, .on_exit = on_exit};
    cio__queue_init(&c->poll_link);
    int fd = open_pidfd(pid);
    if (fd >= 0) {
        int rc = cio__io_start(loop, fd, c, CIO__IO_READ, on_pidfd_readable, c);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        c->pidfd = fd;
        return 0;
    }
    if (fd != -ENOSYS)
        return fd;
    int rc = poll_arm(loop, POLL_FIRST);
    if (rc == 0)
        cio__queue_insert_tail(&loop->polled_children, &c->poll_link);
    return rc;
}

/* Send @p sig: -ESRCH once reaped, whoever has the pid now. */
int cio__child_signal(cio__child_t *c, int sig)
{
    if (c->exited)
        return -ESRCH;
    long rc;
#ifdef SYS_pidfd_send_signal
    if (c->pidfd >= 0)
        rc = syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
    else
#endif
        rc = kill(c->pid, sig);
    return rc < 0 ? -errno : 0;
}

/* Kill the child if it runs and reap it, waiting (the loop is closing, or a start failed). */
void cio__child_reap_now(cio__child_t *c)
{
    if (c->exited)
        return;
    cio__child_signal(c, SIGKILL);
    reap(c, true);
}
