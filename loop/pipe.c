/*
 * loop/pipe.c: pipe transports (asyncio's _UnixReadPipeTransport and
 * _UnixWritePipeTransport). They are stream transports (loop/stream.c) whose
 * descriptor is not a socket: reads and writes use read(2) and writev(2),
 * and a write pipe watches its descriptor for readability only to learn
 * that the reading end went away (the kernel reports it as an error).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coreio/pipe.h"
#include "internal.h"

/* Whether the process ignores SIGPIPE, so that writes need not hold it back. */
static bool sigpipe_ignored(void)
{
    struct sigaction sa;
    return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

/*
 * writev(2) to a pipe without dying of SIGPIPE: pipes have no MSG_NOSIGNAL,
 * so SIGPIPE is blocked in this thread around the call, and the one the call
 * raised (thread-directed, pending) is taken back before it is unblocked.
 */
ssize_t cio__pipe_writev(cio_transport_t *t, const struct iovec *iov, int iovcnt)
{
    if (t->sigpipe_ignored)
        return writev(t->fd, iov, iovcnt);
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = writev(t->fd, iov, iovcnt);
    int err = errno;
    if (n < 0 && err == EPIPE) {
        static const struct timespec now = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    if (!sigismember(&old, SIGPIPE))
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

/*
 * The write pipe's descriptor is "readable": the reading end is gone. As
 * asyncio: a clean end with nothing waiting, a broken pipe otherwise.
 */
int cio__pipe_on_hup(void *arg)
{
    cio_transport_t *t = arg;
    if (t->lost)
        return 0;
    if (t->wlen > 0)
        cio__transport_fatal(t, -EPIPE, "the pipe's reader went away", false);
    else
        cio__transport_force_close(t, 0);
    return 0;
}

/* The second half of making a pipe transport, which cannot fail. */
static void pipe_start(cio_transport_t *t, int fd, bool writable, cio_protocol_t *p,
                       cio_future_t *waiter)
{
    t->pipe = writable ? CIO__PIPE_WRITE : CIO__PIPE_READ;
    t->sigpipe_ignored = writable && sigpipe_ignored();
    cio__transport_start(t, fd, CIO__STREAM, p, NULL, waiter);
}

int cio__pipe_transport_new(cio_loop_t *loop, int fd, bool writable, cio_protocol_t *protocol,
                            cio_future_t *waiter, cio_transport_t **out)
{
    if (fd < 0 || !protocol || !protocol->ops)
        return -EINVAL;
    int rc = cio__set_nonblocking(fd);
    if (rc < 0)
        return rc;
    cio_transport_t *t = cio__transport_alloc(loop);
    if (!t)
        return -ENOMEM;
    pipe_start(t, fd, writable, protocol, waiter);
    if (out)
        *out = t;
    return 0;
}

/* What both connect calls do: the protocol is made only once a transport can be. */
static cio_future_t *connect_pipe(cio_loop_t *loop, cio_protocol_factory_t factory, void *arg,
                                  int fd, bool writable)
{
    if (!loop || !factory || fd < 0 || atomic_load(&loop->closed) ||
        cio__set_nonblocking(fd) < 0)
        return NULL;
    cio_future_t *waiter = cio_loop_create_future(loop);
    cio_transport_t *t = waiter ? cio__transport_alloc(loop) : NULL;
    cio_protocol_t *p = t ? factory(arg) : NULL;
    if (!p || !p->ops) {
        cio__transport_discard(t);
        cio_future_unref(waiter);
        return NULL;
    }
    pipe_start(t, fd, writable, p, waiter);
    return waiter;
}

cio_future_t *cio_loop_connect_read_pipe(cio_loop_t *loop, cio_protocol_factory_t factory,
                                         void *factory_arg, int fd)
{
    return connect_pipe(loop, factory, factory_arg, fd, false);
}

cio_future_t *cio_loop_connect_write_pipe(cio_loop_t *loop, cio_protocol_factory_t factory,
                                          void *factory_arg, int fd)
{
    return connect_pipe(loop, factory, factory_arg, fd, true);
}
