/*
 * coreio/net.h: the loop's networking entry points: watching descriptors
 * (add_reader/add_writer) and name resolution that never blocks the loop.
 * Servers, connections, datagram endpoints and socket operations are in
 * coreio/server.h, coreio/connection.h, coreio/datagram.h and coreio/sock.h.
 *
 * Loop thread only.
 */
#ifndef COREIO_NET_H
#define COREIO_NET_H

#include <netdb.h>
#include <sys/socket.h>

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Call @p cb(@p arg) whenever @p fd is readable (asyncio: add_reader), from
 * the ready queue like any callback; replaces an earlier reader of @p fd.
 * Returns 0, -EINVAL, -EBADF, -EBUSY for a descriptor a transport or server
 * owns, CIO_ECLOSED.
 */
CIO_EXTERN int cio_loop_add_reader(cio_loop_t *loop, int fd, cio_callback_t cb, void *arg);

/** Stop watching @p fd for reading: 1 if it was watched, 0 if not, -EBUSY. */
CIO_EXTERN int cio_loop_remove_reader(cio_loop_t *loop, int fd);

/** As cio_loop_add_reader(), for writability (asyncio: add_writer). */
CIO_EXTERN int cio_loop_add_writer(cio_loop_t *loop, int fd, cio_callback_t cb, void *arg);

/** Stop watching @p fd for writing: 1 if it was watched, 0 if not, -EBUSY. */
CIO_EXTERN int cio_loop_remove_writer(cio_loop_t *loop, int fd);

/**
 * Resolve @p host and @p port (either may be NULL, not both) as getaddrinfo(3)
 * does, on the resolver's private pool of two threads, apart from every
 * executor so that slow DNS cannot starve user jobs. A loop closed with
 * lookups in flight orphans them as it does its executor jobs
 * (coreio/executor.h): each still runs to its end, its answer is freed, and
 * its future is cancelled. The future's result is the struct addrinfo list,
 * owned by the future (valid while you hold a reference); its error is a
 * CIO_EAI_* code with getaddrinfo's message, as asyncio's socket.gaierror
 * (CIO_EAI_NONAME "Name or service not known" for an unknown host,
 * CIO_EAI_SERVICE for an unknown service, CIO_EAI_AGAIN when the name server
 * does not answer), -ENOMEM, or the errno value behind EAI_SYSTEM. NULL for
 * bad arguments or a closed loop.
 */
CIO_EXTERN cio_future_t *cio_loop_getaddrinfo(cio_loop_t *loop, const char *host, const char *port,
                                              const struct addrinfo *hints);

/** Result of cio_loop_getnameinfo(). */
typedef struct cio_nameinfo {
    char host[NI_MAXHOST];
    char service[NI_MAXSERV];
} cio_nameinfo_t;

/**
 * getnameinfo(3) of @p addr with @p flags (NI_*), on the resolver threads. The
 * future's result is a cio_nameinfo_t owned by the future; errors and the
 * closing rule as cio_loop_getaddrinfo(). NULL for bad arguments.
 */
CIO_EXTERN cio_future_t *cio_loop_getnameinfo(cio_loop_t *loop, const struct sockaddr *addr,
                                              socklen_t addrlen, int flags);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_NET_H */
