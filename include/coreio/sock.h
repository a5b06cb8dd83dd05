/*
 * coreio/sock.h: operations on sockets the caller owns (asyncio's
 * loop.sock_* coroutine methods). Each returns a future; the operation is
 * tried at once and, if the socket is not ready, when the loop sees it ready.
 * Cancelling the future stops the operation and leaves the socket usable.
 * The socket must be non-blocking (checked in debug mode, -EINVAL, as
 * asyncio does) and not owned by a transport (-EBUSY). Results that carry
 * data are owned by the future: valid while you hold a reference.
 *
 * Loop thread only.
 */
#ifndef COREIO_SOCK_H
#define COREIO_SOCK_H

#include <sys/socket.h>
#include <sys/types.h>

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes received: the result of cio_loop_sock_recv(). */
typedef struct cio_bytes {
    size_t len;
    unsigned char data[];
} cio_bytes_t;

/** A datagram and its sender, or a byte count and a sender (recvfrom_into). */
typedef struct cio_recvfrom {
    size_t len;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned char data[]; /* empty for cio_loop_sock_recvfrom_into() */
} cio_recvfrom_t;

/** An accepted connection: the result of cio_loop_sock_accept(). */
typedef struct cio_accepted {
    int fd; /* non-blocking, close-on-exec; the caller owns it */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} cio_accepted_t;

/**
 * Receive up to @p nbytes (asyncio: sock_recv): the result is a cio_bytes_t,
 * with len 0 at EOF. Errors are the socket's, negated.
 */
CIO_EXTERN cio_future_t *cio_loop_sock_recv(cio_loop_t *loop, int fd, size_t nbytes);

/**
 * Receive into @p buf (asyncio: sock_recv_into), which must stay valid until
 * the future is done: the result is the byte count, as (void *)(uintptr_t).
 */
CIO_EXTERN cio_future_t *cio_loop_sock_recv_into(cio_loop_t *loop, int fd, void *buf,
                                                 size_t nbytes);

/** One datagram of up to @p bufsize bytes and its sender (asyncio: sock_recvfrom). */
CIO_EXTERN cio_future_t *cio_loop_sock_recvfrom(cio_loop_t *loop, int fd, size_t bufsize);

/**
 * One datagram into @p buf (asyncio: sock_recvfrom_into): the result is a
 * cio_recvfrom_t with the byte count and the sender.
 */
CIO_EXTERN cio_future_t *cio_loop_sock_recvfrom_into(cio_loop_t *loop, int fd, void *buf,
                                                     size_t nbytes);

/**
 * Send all of @p data (asyncio: sock_sendall); what cannot go at once is
 * copied, so @p data may be reused at once. NULL result when all is sent.
 */
CIO_EXTERN cio_future_t *cio_loop_sock_sendall(cio_loop_t *loop, int fd, const void *data,
                                               size_t len);

/**
 * Send one datagram to @p addr (asyncio: sock_sendto): the result is the
 * byte count, as (void *)(uintptr_t).
 */
CIO_EXTERN cio_future_t *cio_loop_sock_sendto(cio_loop_t *loop, int fd, const void *data,
                                              size_t len, const struct sockaddr *addr,
                                              socklen_t addrlen);

/** Connect to @p addr (asyncio: sock_connect); NULL result once connected. */
CIO_EXTERN cio_future_t *cio_loop_sock_connect(cio_loop_t *loop, int fd,
                                               const struct sockaddr *addr, socklen_t addrlen);

/** Accept one connection (asyncio: sock_accept): the result is a cio_accepted_t. */
CIO_EXTERN cio_future_t *cio_loop_sock_accept(cio_loop_t *loop, int fd);

/**
 * Send @p count bytes (0: to the end) of the file @p file from @p offset over
 * the socket @p fd (asyncio: sock_sendfile) with sendfile(2), or, when the
 * kernel refuses the pair and @p fallback is set, by reading and sending
 * blocks. The result is the byte count, as (void *)(uintptr_t); the file's
 * offset is left after the last byte sent, even on error.
 */
CIO_EXTERN cio_future_t *cio_loop_sock_sendfile(cio_loop_t *loop, int fd, int file, off_t offset,
                                                size_t count, bool fallback);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SOCK_H */
