/*
 * loop/stream.c: stream transports (asyncio's _SelectorSocketTransport) over
 * connected TCP and Unix sockets. Reads go through the loop's one read buffer
 * (or the protocol's own, for a BufferedProtocol). write() sends at once what
 * the socket takes and buffers the rest; the write watch is armed only while
 * bytes wait; write_eof() shuts the write side once they are gone.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define READ_BUF_SIZE CIO__READ_BUF_SIZE

static const cio_protocol_ops_t *ops_of(const cio_transport_t *t)
{
    return t->protocol->ops;
}

/* One read: recv(2) from a socket, read(2) from a pipe (loop/pipe.c). */
static ssize_t stream_read(cio_transport_t *t, void *buf, size_t len)
{
    return t->pipe ? read(t->fd, buf, len) : recv(t->fd, buf, len, 0);
}

/* One write: send(2) or sendmsg(2) to a socket, without SIGPIPE; writev(2) to a pipe. */
static ssize_t stream_write(cio_transport_t *t, const struct iovec *iov, int iovcnt)
{
    if (t->pipe)
        return cio__pipe_writev(t, iov, iovcnt);
    if (iovcnt == 1) /* the common write() takes the cheaper send(2) */
        return send(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return sendmsg(t->fd, &msg, MSG_NOSIGNAL);
}

static void handle_eof(cio_transport_t *t)
{
    int keep_open = 0;
    if (ops_of(t)->eof_received) {
        keep_open = ops_of(t)->eof_received(t->protocol);
        if (keep_open < 0) {
            cio__transport_fatal(t, keep_open, "protocol.eof_received() failed", true);
            return;
        }
    }
    if (keep_open > 0 && !t->closing && !t->pipe) { /* a read pipe has no write side to keep */
        /* Half-open: nothing more to read, the write side stays. */
        cio__io_stop(t->loop, t->fd, t, CIO__IO_READ);
    } else {
        cio_transport_close(t);
    }
}

static int read_plain(cio_transport_t *t)
{
    if (!t->loop->read_buf && !(t->loop->read_buf = malloc(READ_BUF_SIZE)))
        return -ENOMEM;
    ssize_t n = stream_read(t, t->loop->read_buf, READ_BUF_SIZE);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0) {
        handle_eof(t);
        return 0;
    }
    cio__transport_traffic(t, (size_t)n, 0);
    if (ops_of(t)->data_received) {
        int rc = ops_of(t)->data_received(t->protocol, t->loop->read_buf, (size_t)n);
        if (rc < 0)
            cio__transport_fatal(t, rc, "protocol.data_received() call failed", true);
    }
    return 0;
}

/* BufferedProtocol: read straight into the protocol's buffer. */
static int read_buffered(cio_transport_t *t)
{
    size_t len = 0;
    void *buf = ops_of(t)->get_buffer(t->protocol, READ_BUF_SIZE, &len);
    if (!buf || len == 0) {
        cio__transport_fatal(t, -ENOBUFS, "get_buffer() returned an empty buffer", true);
        return 0;
    }
    ssize_t n = stream_read(t, buf, len);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0) {
        handle_eof(t);
        return 0;
    }
    cio__transport_traffic(t, (size_t)n, 0);
    if (ops_of(t)->buffer_updated) {
        int rc = ops_of(t)->buffer_updated(t->protocol, (size_t)n);
        if (rc < 0)
            cio__transport_fatal(t, rc, "protocol.buffer_updated() call failed", true);
    }
    return 0;
}

int cio__stream_on_readable(void *arg)
{
    cio_transport_t *t = arg;
    if (t->closing || t->paused)
        return 0;
    if (t->proxy_pending)
        return cio__proxy_on_readable(t);
    if (t->tls)
        return cio__tls_on_readable(t);
    int rc = ops_of(t)->get_buffer ? read_buffered(t) : read_plain(t);
    if (rc < 0)
        cio__transport_fatal(t, rc, "Fatal read error on socket transport", false);
    return 0;
}

int cio__stream_on_writable(void *arg)
{
    cio_transport_t *t = arg;
    if (t->lost || t->wlen == 0)
        return 0;
    struct iovec iov = {.iov_base = t->wbuf + t->whead, .iov_len = t->wlen};
    ssize_t n = stream_write(t, &iov, 1);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            cio__transport_fatal(t, -errno, "Fatal write error on socket transport", false);
        return 0;
    }
    assert((size_t)n <= t->wlen && t->whead + t->wlen <= t->wcap);
    cio__transport_traffic(t, 0, (size_t)n);
    t->whead += (size_t)n;
    t->wlen -= (size_t)n;
    if (t->wlen == 0)
        cio__transport_flushed(t);
    else
        cio__transport_maybe_resume(t);
    return 0;
}

static int check_writable(const cio_transport_t *t)
{
    if (t->kind != CIO__STREAM || t->pipe == CIO__PIPE_READ)
        return -EINVAL;
    if (t->sendfile_active)
        return -EBUSY; /* asyncio: "unable to write; sendfile is in progress" */
    if (t->eof || t->closing)
        return -EPIPE;
    return 0;
}

int cio_transport_writelines(cio_transport_t *t, const struct iovec *iov, int iovcnt)
{
    int rc = check_writable(t);
    if (rc < 0)
        return rc;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    size_t total = 0, sent = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    if (t->tls)
        return cio__tls_writev(t, iov, iovcnt, total);
    if (t->wlen == 0) {
        /* Nothing waits: try the socket first, as asyncio does. */
        ssize_t n = stream_write(t, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            cio__transport_fatal(t, -errno, "Fatal write error on socket transport", false);
            return 0;
        }
        sent = n > 0 ? (size_t)n : 0;
        cio__transport_traffic(t, 0, sent);
        if (sent == total)
            return 0;
    }
    /* Buffer what the socket did not take, all of it or (with nothing sent) none. */
    if (cio__transport_buffer_reserve(t, total - sent) < 0) {
        if (sent == 0)
            return -ENOMEM;
        /* Part of it is on the wire: the byte stream cannot go on with a gap. */
        cio__transport_fatal(t, -ENOMEM, "cannot buffer the rest of a write", false);
        return -ENOMEM;
    }
    size_t skip = sent;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        cio__transport_buffer_put(t, (const uint8_t *)iov[i].iov_base + skip, len - skip);
        skip = 0;
    }
    if (cio__transport_watch_writes(t) < 0)
        return 0;
    cio__transport_maybe_pause(t);
    return 0;
}

int cio_transport_write(cio_transport_t *t, const void *data, size_t len)
{
    if (!data && len)
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return cio_transport_writelines(t, &iov, 1);
}

bool cio_transport_can_write_eof(const cio_transport_t *t)
{
    /* TLS has no half-close; a write pipe's EOF is its close. */
    return t->kind == CIO__STREAM && !t->tls && t->pipe != CIO__PIPE_READ;
}

int cio_transport_write_eof(cio_transport_t *t)
{
    if (t->kind != CIO__STREAM || t->tls || t->pipe == CIO__PIPE_READ)
        return -ENOTSUP;
    if (t->closing)
        return -EPIPE;
    if (t->pipe) { /* asyncio: a write pipe's write_eof closes it once drained */
        cio_transport_close(t);
        return 0;
    }
    if (t->eof)
        return 0;
    t->eof = true;
    if (t->wlen == 0)
        shutdown(t->fd, SHUT_WR);
    return 0;
}
