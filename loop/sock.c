/*
 * loop/sock.c: the sock_* operations. Each is a future with a small state of
 * its own: the operation is tried at once, and otherwise whenever the loop
 * sees the socket ready, through the same watch add_reader/add_writer use.
 * Cancelling the future removes the watch, so the socket is left as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

enum op_kind {
    OP_RECV,
    OP_RECV_INTO,
    OP_RECVFROM,
    OP_RECVFROM_INTO,
    OP_SENDALL,
    OP_SENDTO,
    OP_CONNECT,
    OP_ACCEPT
};

typedef struct sock_op {
    struct cio_future_s fut; /* first: the operation is a future */
    enum op_kind kind;
    int fd;
    int dir; /* the watch it waits on */
    bool watching;
    unsigned char *buf; /* where data goes or comes from */
    size_t len;
    size_t done; /* sendall: bytes sent so far */
    void *owned; /* a buffer the operation allocated (result or copy) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} sock_op_t;

static sock_op_t *op_of(cio_future_t *fut)
{
    return cio_container_of(fut, sock_op_t, fut);
}

static void stop_watch(sock_op_t *op)
{
    if (op->watching)
        cio__io_stop(op->fut.loop, op->fd, NULL, op->dir);
    op->watching = false;
}

static bool op_cancel(cio_future_t *fut, const char *message)
{
    sock_op_t *op = op_of(fut);
    if (cio_future_done(fut))
        return false;
    stop_watch(op);
    return cio__future_set_cancelled(fut, message);
}

static void op_destroy(cio_future_t *fut)
{
    sock_op_t *op = op_of(fut);
    /* A result handed over went to result_free; what was never handed over
     * (a buffer of a cancelled receive, a send's copy) goes here. */
    free(op->owned);
    free(op);
}

static const cio__future_ops_t op_ops = {
    .cancel = op_cancel, .destroy = op_destroy, .readonly = true};

/* One attempt: > 0 done (result set), 0 would block, < 0 failed. */
static int attempt(sock_op_t *op)
{
    ssize_t n;
    socklen_t alen = sizeof(op->addr);
    switch (op->kind) {
    case OP_RECV:
    case OP_RECV_INTO:
        n = recv(op->fd, op->buf, op->len, 0);
        if (n < 0)
            break;
        if (op->kind == OP_RECV) {
            ((cio_bytes_t *)op->owned)->len = (size_t)n;
            cio__future_set_owned_result(&op->fut, op->owned, free);
            op->owned = NULL;
        } else {
            cio__future_set_result(&op->fut, (void *)(uintptr_t)n);
        }
        return 1;
    case OP_RECVFROM:
    case OP_RECVFROM_INTO: {
        cio_recvfrom_t *r = op->owned;
        n = recvfrom(op->fd, op->buf, op->len, 0, (struct sockaddr *)&r->addr, &alen);
        if (n < 0)
            break;
        r->len = (size_t)n;
        r->addrlen = alen;
        cio__future_set_owned_result(&op->fut, r, free);
        op->owned = NULL;
        return 1;
    }
    case OP_SENDALL:
        n = send(op->fd, op->buf + op->done, op->len - op->done, MSG_NOSIGNAL);
        if (n < 0)
            break;
        op->done += (size_t)n;
        if (op->done < op->len)
            return 0;
        cio__future_set_result(&op->fut, NULL);
        return 1;
    case OP_SENDTO:
        n = sendto(op->fd, op->buf, op->len, MSG_NOSIGNAL, (struct sockaddr *)&op->addr,
                   op->addrlen);
        if (n < 0)
            break;
        cio__future_set_result(&op->fut, (void *)(uintptr_t)n);
        return 1;
    case OP_CONNECT: {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            err = errno;
        if (err)
            return -err;
        cio__future_set_result(&op->fut, NULL);
        return 1;
    }
    case OP_ACCEPT: {
        cio_accepted_t *a = op->owned;
        a->addrlen = sizeof(a->addr);
        int fd =
            accept4(op->fd, (struct sockaddr *)&a->addr, &a->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            n = -1;
            break;
        }
        a->fd = fd;
        cio__future_set_owned_result(&op->fut, a, free);
        op->owned = NULL;
        return 1;
    }
    }
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

static void finish(sock_op_t *op, int rc)
{
    stop_watch(op);
    if (rc < 0 && !cio_future_done(&op->fut))
        cio__future_set_error(&op->fut, rc, NULL);
}

static int on_ready(void *arg)
{
    sock_op_t *op = arg;
    if (cio_future_done(&op->fut))
        return 0;
    int rc = attempt(op);
    if (rc != 0)
        finish(op, rc);
    return 0;
}

/* Try now; if the socket is not ready, wait for it. */
static cio_future_t *start(sock_op_t *op)
{
    int rc = op->kind == OP_CONNECT ? 0 : attempt(op);
    if (rc == 0) {
        rc = cio__io_start(op->fut.loop, op->fd, NULL, op->dir, on_ready, op);
        op->watching = rc == 0;
    }
    if (rc != 0)
        finish(op, rc);
    return &op->fut;
}

/* A new operation on @p fd, or NULL; checks what asyncio checks. */
static sock_op_t *op_new(cio_loop_t *loop, int fd, enum op_kind kind, int dir, size_t extra)
{
    if (!loop || fd < 0 || atomic_load(&loop->closed))
        return NULL;
    sock_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    cio__future_init(&op->fut, loop, &op_ops);
    op->kind = kind;
    op->fd = fd;
    op->dir = dir;
    int err = 0;
    if (cio__io_owned(loop, fd))
        err = -EBUSY; /* asyncio: "File descriptor is used by transport" */
    else if (loop->debug && !(fcntl(fd, F_GETFL) & O_NONBLOCK))
        err = -EINVAL; /* asyncio (debug): "the socket must be non-blocking" */
    else if (extra && !(op->owned = calloc(1, extra)))
        err = -ENOMEM;
    if (err) {
        cio__future_set_error(&op->fut, err, NULL);
        op->kind = OP_RECV_INTO; /* nothing to start */
        op->fd = -1;
    }
    return op;
}

#define FAILED(op) ((op)->fd < 0)

cio_future_t *cio_loop_sock_recv(cio_loop_t *loop, int fd, size_t nbytes)
{
    sock_op_t *op = op_new(loop, fd, OP_RECV, CIO__IO_READ, sizeof(cio_bytes_t) + nbytes);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = ((cio_bytes_t *)op->owned)->data;
    op->len = nbytes;
    return start(op);
}

cio_future_t *cio_loop_sock_recv_into(cio_loop_t *loop, int fd, void *buf, size_t nbytes)
{
    if (!buf && nbytes)
        return NULL;
    sock_op_t *op = op_new(loop, fd, OP_RECV_INTO, CIO__IO_READ, 0);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = buf;
    op->len = nbytes;
    return start(op);
}

cio_future_t *cio_loop_sock_recvfrom(cio_loop_t *loop, int fd, size_t bufsize)
{
    sock_op_t *op = op_new(loop, fd, OP_RECVFROM, CIO__IO_READ, sizeof(cio_recvfrom_t) + bufsize);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = ((cio_recvfrom_t *)op->owned)->data;
    op->len = bufsize;
    return start(op);
}

cio_future_t *cio_loop_sock_recvfrom_into(cio_loop_t *loop, int fd, void *buf, size_t nbytes)
{
    if (!buf && nbytes)
        return NULL;
    sock_op_t *op = op_new(loop, fd, OP_RECVFROM_INTO, CIO__IO_READ, sizeof(cio_recvfrom_t));
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = buf;
    op->len = nbytes;
    return start(op);
}

cio_future_t *cio_loop_sock_sendall(cio_loop_t *loop, int fd, const void *data, size_t len)
{
    if (!data && len)
        return NULL;
    sock_op_t *op = op_new(loop, fd, OP_SENDALL, CIO__IO_WRITE, 0);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = (unsigned char *)data;
    op->len = len;
    int rc = attempt(op);
    if (rc != 0) {
        finish(op, rc);
        return &op->fut;
    }
    /* The rest waits: keep a copy so the caller may reuse its buffer. */
    size_t rest = op->len - op->done;
    if (!(op->owned = malloc(rest ? rest : 1))) {
        finish(op, -ENOMEM);
        return &op->fut;
    }
    memcpy(op->owned, op->buf + op->done, rest);
    op->buf = op->owned;
    op->len = rest;
    op->done = 0;
    rc = cio__io_start(loop, fd, NULL, CIO__IO_WRITE, on_ready, op);
    op->watching = rc == 0;
    if (rc < 0)
        finish(op, rc);
    return &op->fut;
}

cio_future_t *cio_loop_sock_sendto(cio_loop_t *loop, int fd, const void *data, size_t len,
                                   const struct sockaddr *addr, socklen_t addrlen)
{
    if ((!data && len) || !addr || addrlen > sizeof(struct sockaddr_storage))
        return NULL;
    sock_op_t *op = op_new(loop, fd, OP_SENDTO, CIO__IO_WRITE, 0);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    op->buf = (unsigned char *)data;
    op->len = len;
    memcpy(&op->addr, addr, addrlen);
    op->addrlen = addrlen;
    return start(op);
}

cio_future_t *cio_loop_sock_connect(cio_loop_t *loop, int fd, const struct sockaddr *addr,
                                    socklen_t addrlen)
{
    if (!addr)
        return NULL;
    sock_op_t *op = op_new(loop, fd, OP_CONNECT, CIO__IO_WRITE, 0);
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    if (connect(fd, addr, addrlen) == 0) {
        cio__future_set_result(&op->fut, NULL);
        return &op->fut;
    }
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR) {
        finish(op, -errno);
        return &op->fut;
    }
    return start(op);
}

cio_future_t *cio_loop_sock_accept(cio_loop_t *loop, int fd)
{
    sock_op_t *op = op_new(loop, fd, OP_ACCEPT, CIO__IO_READ, sizeof(cio_accepted_t));
    if (!op || FAILED(op))
        return op ? &op->fut : NULL;
    return start(op);
}
