/*
 * loop/io.c: file descriptor watching (asyncio's add_reader / add_writer and
 * what transports build on). One record per descriptor holds a libevent read
 * event and write event. As in asyncio's selector loop, readiness does not run
 * the callback inside the poll: it puts the callback's handle at the end of
 * the ready queue, so I/O callbacks run in step 4 after what was already
 * ready, and removing a watch cancels a handle still queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "internal.h"

struct cio__io {
    cio_loop_t *loop;
    int fd;
    void *owner; /* the transport or server owning the descriptor, or NULL */
    struct event ev[2];
    bool added[2];
    cio_callback_t cb[2];
    void *arg[2];
    cio_handle_t pending[2]; /* the queued call, while it waits to run */
};

static int grow_table(cio_loop_t *loop, int fd)
{
    size_t cap = loop->io_cap ? loop->io_cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    cio__io_t **v = realloc(loop->io_by_fd, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = loop->io_cap; i < cap; i++)
        v[i] = NULL;
    loop->io_by_fd = v;
    loop->io_cap = cap;
    return 0;
}

static cio__io_t *io_find(cio_loop_t *loop, int fd)
{
    return fd >= 0 && (size_t)fd < loop->io_cap ? loop->io_by_fd[fd] : NULL;
}

/* Readiness from libevent: queue the callback unless it is queued already. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    cio__io_t *io = arg;
    int dir = (what & EV_WRITE) ? CIO__IO_WRITE : CIO__IO_READ;
    if (cio__handle_pending(io->pending[dir]))
        return;
    cio__slot_t proto = {.fn.cb = io->cb[dir], .arg = io->arg[dir], .kind = CIO__SLOT_PLAIN};
    cio__schedule(io->loop, &proto, &io->pending[dir]);
}

/* The record of @p fd, created when missing (owned by @p owner). */
static int io_get(cio_loop_t *loop, int fd, void *owner, cio__io_t **out)
{
    if (fd < 0)
        return -EBADF;
    cio__io_t *io = io_find(loop, fd);
    if (io) {
        if (io->owner != owner)
            return -EBUSY; /* asyncio: "File descriptor is used by transport" */
        *out = io;
        return 0;
    }
    if ((size_t)fd >= loop->io_cap && grow_table(loop, fd) < 0)
        return -ENOMEM;
    io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->loop = loop;
    io->fd = fd;
    io->owner = owner;
    if (event_assign(&io->ev[CIO__IO_READ], loop->base, fd, EV_READ | EV_PERSIST, on_ready, io) <
            0 ||
        event_assign(&io->ev[CIO__IO_WRITE], loop->base, fd, EV_WRITE | EV_PERSIST, on_ready, io) <
            0) {
        free(io);
        return CIO_EBACKEND;
    }
    loop->io_by_fd[fd] = io;
    *out = io;
    return 0;
}

/* Forget the record once neither direction is watched. */
static void io_maybe_free(cio__io_t *io)
{
    if (io->added[0] || io->added[1])
        return;
    io->loop->io_by_fd[io->fd] = NULL;
    free(io);
}

int cio__io_start(cio_loop_t *loop, int fd, void *owner, int dir, cio_callback_t cb, void *arg)
{
    cio__io_t *io;
    int rc = io_get(loop, fd, owner, &io);
    if (rc < 0)
        return rc;
    io->cb[dir] = cb;
    io->arg[dir] = arg;
    if (!io->added[dir]) {
        if (event_add(&io->ev[dir], NULL) < 0) {
            io_maybe_free(io);
            return CIO_EBACKEND;
        }
        io->added[dir] = true;
    }
    return 0;
}

/* Stop watching; returns whether @p dir was watched. */
bool cio__io_stop(cio_loop_t *loop, int fd, void *owner, int dir)
{
    cio__io_t *io = io_find(loop, fd);
    if (!io || io->owner != owner || !io->added[dir])
        return false;
    event_del(&io->ev[dir]);
    io->added[dir] = false;
    cio_handle_cancel(io->pending[dir]);
    io->pending[dir] = (cio_handle_t){0};
    io_maybe_free(io);
    return true;
}

/*
 * Treat the watched @p dir of @p fd as ready at the next poll, whether it is
 * or not: for buffered input (a datagram stash) that no readiness would
 * announce.
 */
void cio__io_kick(cio_loop_t *loop, int fd, void *owner, int dir)
{
    cio__io_t *io = io_find(loop, fd);
    if (io && io->owner == owner && io->added[dir])
        event_active(&io->ev[dir], dir == CIO__IO_WRITE ? EV_WRITE : EV_READ, 0);
}

/* Make a socket handed over by the user non-blocking, as asyncio does. */
int cio__set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Whether @p fd belongs to a transport or server (add_reader refuses it). */
bool cio__io_owned(cio_loop_t *loop, int fd)
{
    cio__io_t *io = io_find(loop, fd);
    return io && io->owner;
}

/* Drop every record (closing the loop; the base is about to go). */
void cio__io_destroy_all(cio_loop_t *loop)
{
    for (size_t fd = 0; fd < loop->io_cap; fd++) {
        cio__io_t *io = loop->io_by_fd[fd];
        if (!io)
            continue;
        for (int dir = 0; dir < 2; dir++) {
            if (io->added[dir])
                event_del(&io->ev[dir]);
        }
        free(io);
    }
    free(loop->io_by_fd);
    loop->io_by_fd = NULL;
    loop->io_cap = 0;
}

static int add_watch(cio_loop_t *loop, int fd, int dir, cio_callback_t cb, void *arg)
{
    int rc = cio__schedule_check(loop, (const void *)cb);
    if (rc < 0)
        return rc;
    return cio__io_start(loop, fd, NULL, dir, cb, arg);
}

static int remove_watch(cio_loop_t *loop, int fd, int dir)
{
    if (!loop)
        return -EINVAL;
    if (atomic_load(&loop->closed))
        return 0;
    if (cio__io_owned(loop, fd))
        return -EBUSY;
    return cio__io_stop(loop, fd, NULL, dir) ? 1 : 0;
}

int cio_loop_add_reader(cio_loop_t *loop, int fd, cio_callback_t cb, void *arg)
{
    return add_watch(loop, fd, CIO__IO_READ, cb, arg);
}

int cio_loop_remove_reader(cio_loop_t *loop, int fd)
{
    return remove_watch(loop, fd, CIO__IO_READ);
}

int cio_loop_add_writer(cio_loop_t *loop, int fd, cio_callback_t cb, void *arg)
{
    return add_watch(loop, fd, CIO__IO_WRITE, cb, arg);
}

int cio_loop_remove_writer(cio_loop_t *loop, int fd)
{
    return remove_watch(loop, fd, CIO__IO_WRITE);
}
