/*
 * loop/sendfile.c: loop.sendfile and loop.sock_sendfile. The native path
 * hands the file to the kernel with sendfile(2), waiting for writability
 * between chunks; when the kernel refuses the pair, the fallback (if allowed)
 * reads blocks and writes them, else the call fails with "sendfile not
 * available". As in asyncio the file offset is moved past what was sent even
 * when sending fails.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define FALLBACK_BLOCK (256 * 1024)

typedef struct sf_args {
    cio_loop_t *loop;
    cio_transport_t *transport; /* NULL for sock_sendfile */
    int fd;                     /* the socket */
    int file;
    off_t offset;
    size_t count; /* 0: to the end of the file */
    bool fallback;
} sf_args_t;

/* How many bytes to send: @p count, or what the file has past @p offset. */
static int blocksize_total(int file, off_t offset, size_t count, size_t *total)
{
    if (count) {
        *total = count;
        return 0;
    }
    struct stat st;
    if (fstat(file, &st) < 0)
        return -errno;
    *total = st.st_size > offset ? (size_t)(st.st_size - offset) : 0;
    return 0;
}

/* sendfile(2) until @p total bytes went or an error; *sent counts them. */
static int send_native(sf_args_t *a, size_t total, size_t *sent)
{
    void *owner = a->transport;
    while (*sent < total) {
        off_t off = a->offset + (off_t)*sent;
        ssize_t n = sendfile(a->fd, a->file, &off, total - *sent);
        if (n > 0) {
            *sent += (size_t)n;
            continue;
        }
        if (n == 0)
            break; /* the file is shorter than asked */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = cio__await_fd(a->loop, a->fd, owner, CIO__IO_WRITE);
        if (rc < 0)
            return rc;
        if (a->transport && a->transport->closing)
            return -EPIPE;
    }
    return 0;
}

/* Read blocks and send them through the transport, or the socket. */
static int send_fallback(sf_args_t *a, size_t total, size_t *sent)
{
    unsigned char *buf = malloc(FALLBACK_BLOCK);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (rc == 0 && *sent < total) {
        size_t want = total - *sent < FALLBACK_BLOCK ? total - *sent : FALLBACK_BLOCK;
        ssize_t n = pread(a->file, buf, want, a->offset + (off_t)*sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        if (a->transport) {
            cio_transport_t *t = a->transport;
            t->sendfile_active = false;
            rc = cio_transport_write(t, buf, (size_t)n);
            t->sendfile_active = true;
            /* Wait for the buffer to drain before reading more. */
            if (rc == 0 && t->wlen > 0 && !t->lost) {
                if (!t->drained && !(t->drained = cio_loop_create_future(a->loop)))
                    rc = -ENOMEM;
                cio_future_t *d = rc == 0 ? cio_future_ref(t->drained) : NULL;
                rc = d ? cio_await(d, NULL) : rc;
                cio_future_unref(d);
            }
            if (rc == 0 && t->lost)
                rc = t->lost_err ? t->lost_err : -EPIPE;
        } else {
            cio_future_t *f = cio_loop_sock_sendall(a->loop, a->fd, buf, (size_t)n);
            rc = f ? cio_await(f, NULL) : -ENOMEM;
            cio_future_unref(f);
        }
        if (rc == 0)
            *sent += (size_t)n;
    }
    free(buf);
    return rc;
}

static int sendfile_task(void *arg, void **result)
{
    sf_args_t *a = arg;
    cio_transport_t *t = a->transport;
    size_t total = 0, sent = 0;
    int rc = blocksize_total(a->file, a->offset, a->count, &total);
    if (t && rc == 0) {
        /* asyncio: writes wait, reading pauses, and the buffer drains first. */
        t->sendfile_active = true;
        if (t->wlen > 0) {
            if (!t->drained && !(t->drained = cio_loop_create_future(a->loop)))
                rc = -ENOMEM;
            cio_future_t *d = rc == 0 ? cio_future_ref(t->drained) : NULL;
            rc = d ? cio_await(d, NULL) : rc;
            cio_future_unref(d);
        }
    }
    bool resume = t && cio_transport_is_reading(t);
    if (resume)
        cio_transport_pause_reading(t);
    if (rc == 0 && t && t->kind != CIO__STREAM) {
        cio__task_set_error_message("sendfile is not supported for datagram transports");
        rc = -ENOTSUP;
    } else if (rc == 0) {
        /* TLS: the kernel cannot encrypt here (no kTLS), so the bytes take the read/write path. */
        rc = t && t->tls ? -EOPNOTSUPP : send_native(a, total, &sent);
        /* The kernel refused this file or socket: asyncio's SendfileNotAvailable. */
        if ((rc == -EINVAL || rc == -ENOSYS || rc == -EOPNOTSUPP) && sent == 0) {
            if (a->fallback) {
                rc = send_fallback(a, total, &sent);
            } else {
                cio__task_set_error_message("sendfile not available");
                rc = CIO_ENOSENDFILE;
            }
        }
    }
    lseek(a->file, a->offset + (off_t)sent, SEEK_SET);
    if (t) {
        t->sendfile_active = false;
        if (resume && !t->freed)
            cio_transport_resume_reading(t);
        cio__transport_unpin(t);
    }
    free(a);
    *result = (void *)(uintptr_t)sent;
    return rc;
}

/* The task never ran (cancelled first, or its loop closed): let go of what it held. */
static void sf_args_free(void *arg)
{
    sf_args_t *a = arg;
    if (a->transport)
        cio__transport_unpin(a->transport);
    free(a);
}

static cio_future_t *start(sf_args_t *a)
{
    /* Pinned first: if spawning fails, sf_args_free unpins. */
    if (a->transport)
        cio__transport_pin(a->transport);
    return cio__spawn(a->loop, sendfile_task, a, sf_args_free);
}

static sf_args_t *args_new(cio_loop_t *loop, int file, off_t offset, size_t count, bool fallback)
{
    if (!loop || file < 0 || offset < 0 || atomic_load(&loop->closed))
        return NULL;
    sf_args_t *a = calloc(1, sizeof(*a));
    if (a)
        *a = (sf_args_t){loop, NULL, -1, file, offset, count, fallback};
    return a;
}

cio_future_t *cio_loop_sendfile(cio_loop_t *loop, cio_transport_t *transport, int file,
                                off_t offset, size_t count, bool fallback)
{
    if (!transport || transport->loop != loop || transport->closing || transport->sendfile_active)
        return NULL;
    sf_args_t *a = args_new(loop, file, offset, count, fallback);
    if (!a)
        return NULL;
    a->transport = transport;
    a->fd = transport->fd;
    return start(a);
}

cio_future_t *cio_loop_sock_sendfile(cio_loop_t *loop, int fd, int file, off_t offset, size_t count,
                                     bool fallback)
{
    if (fd < 0 || (loop && cio__io_owned(loop, fd)))
        return NULL;
    sf_args_t *a = args_new(loop, file, offset, count, fallback);
    if (!a)
        return NULL;
    a->fd = fd;
    return start(a);
}
