/*
 * coreio/sharded.h: one service on every worker. A sharded server listens on
 * one address for a whole cio_workers_t, in one of two balancing modes:
 *
 *  - CIO_BALANCE_REUSEPORT: every worker opens its own socket on the address
 *    with SO_REUSEPORT and accepts on it; the kernel spreads connections (or
 *    datagrams) with no cross-thread hand-off.
 *  - CIO_BALANCE_HANDOFF: worker 0 owns the only listening socket and hands
 *    each accepted connection, through the mailbox, to the worker with the
 *    fewest connections (stream sockets only; the only mode for Unix paths).
 *
 * Each worker's connections are a cio_server_t on its loop, so the protocol
 * factory is called on the worker thread that owns the connection; it must be
 * safe to call from every worker (its argument is shared).
 */
#ifndef COREIO_SHARDED_H
#define COREIO_SHARDED_H

#include <sys/socket.h>

#include "coreio/common.h"
#include "coreio/transport.h"
#include "coreio/workers.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A service listening on one address across every worker. */
typedef struct cio_sharded_s cio_sharded_t;

/** How a sharded server spreads its connections over the workers. */
typedef enum cio_balance {
    CIO_BALANCE_REUSEPORT = 0, /* a socket per worker, SO_REUSEPORT */
    CIO_BALANCE_HANDOFF,       /* one listener, hand-off to the least-loaded worker */
} cio_balance_t;

/** Options of cio_workers_serve(); NULL or all-zero: TCP, REUSEPORT, backlog 100. */
typedef struct cio_sharded_opts {
    int type;   /* SOCK_STREAM (0 as well) or SOCK_DGRAM */
    int family; /* AF_UNSPEC (0): as getaddrinfo resolves the host */
    cio_balance_t balance;
    int backlog;         /* per listening socket; 0: 100 */
    const char *path;    /* a Unix socket path instead of host and port (HANDOFF only) */
    double drain_settle; /* seconds cio_sharded_close() keeps accepting; 0: 0.05 */
    /* Given to every connection, as in cio_server_opts_t: */
    double idle_timeout; /* 0: none */
    size_t write_high;   /* write buffer water marks; 0: the transport's default */
    size_t write_low;
    /*
     * TLS (stream only): every worker's server gets this context, so that
     * connections handed off to a worker speak TLS too. The set takes its own
     * reference: the caller may free its context at once.
     */
    struct ssl_ctx_st *ssl;
    double ssl_handshake_timeout; /* seconds; 0: 60 */
    double ssl_shutdown_timeout;  /* seconds; 0: 30 */
    /**
     * Take over the listening sockets of this open server on the same
     * workers, type and balance (its address is then ignored): each worker
     * serves copies of the sockets it had, so nothing is re-bound and no
     * queued connection is lost. Closing the old server afterwards stops its
     * accepting without refusing connections (the sockets live on here) and
     * lets its connections drain.
     */
    struct cio_sharded_s *adopt;
    /**
     * Serve these listening sockets instead of binding (socket activation, or
     * a process handing its sockets over), in groups of socks_per_worker (0:
     * 1; several for one address on every family, stream only): worker i
     * serves copies of group i, workers past the groups share group
     * i % groups, a HANDOFF acceptor takes group 0; the address is then
     * ignored, groups past the workers are not used, and the caller keeps its
     * descriptors. Not with adopt.
     */
    const int *socks;
    size_t nsocks;
    size_t socks_per_worker;
    /**
     * The giver of socks keeps them open for good (systemd's socket
     * activation): closing only lets go of this server's copies, without
     * refusing new connections on the sockets (the next server takes them)
     * nor removing a Unix socket's file.
     */
    bool socks_shared;
    /** PROXY headers (coreio/proxy.h), as in cio_server_opts_t; for SOCK_DGRAM v2 only,
     * as in cio_datagram_opts_t. Copied. */
    const struct cio_proxy_opts *proxy;
} cio_sharded_opts_t;

/**
 * Open the service on every worker of @p w: a protocol from @p factory
 * (@p factory_arg) for each connection, or one datagram endpoint per worker
 * for SOCK_DGRAM. Port "0" picks a free port, the same for every worker. The
 * returned future, on the caller's running loop, gets the cio_sharded_t (the
 * caller frees it with cio_sharded_free()), or the first worker's error, in
 * which case nothing stays open. NULL outside a running loop or with bad
 * arguments (HANDOFF with SOCK_DGRAM, a path with REUSEPORT, no port).
 * Loop thread only (the caller's, which must not be one of @p w's).
 */
CIO_EXTERN cio_future_t *cio_workers_serve(cio_workers_t *w, cio_protocol_factory_t factory,
                                           void *factory_arg, const char *host, const char *port,
                                           const cio_sharded_opts_t *opts);

/** The address of the (first) listening socket, as getsockname(). 0 or -errno. Any thread. */
CIO_EXTERN int cio_sharded_sockname(const cio_sharded_t *s, struct sockaddr_storage *addr,
                                    socklen_t *len);

/**
 * Connections each worker serves now: fills @p counts[i] for the first @p n
 * workers and returns the total. Always 0 for datagram services. Any thread
 * (the counts are a snapshot).
 */
CIO_EXTERN size_t cio_sharded_connections(const cio_sharded_t *s, size_t *counts, size_t n);

/** Connections each worker has accepted since the start, as above. Any thread. */
CIO_EXTERN size_t cio_sharded_accepted(const cio_sharded_t *s, size_t *counts, size_t n);

/**
 * Change the backlog and what connections accepted from now on get
 * (idle_timeout, write_high, write_low, ssl and its timeouts) on every
 * worker, closing nothing.
 * Every other field of @p opts must be as the server was opened with, and for
 * SOCK_DGRAM the proxy options too (each endpoint keeps its copy). The
 * future, on the caller's loop, is done once every worker has applied it.
 * NULL with bad arguments or outside a running loop. Loop thread only (the
 * caller's).
 */
CIO_EXTERN cio_future_t *cio_sharded_reconfigure(cio_sharded_t *s, const cio_sharded_opts_t *opts);

/**
 * Stop listening without losing a connection the kernel already accepted:
 * new connection attempts are refused at the socket (a filter drops their
 * SYNs), what is queued is accepted and served, then every listening socket
 * closes. Connections go on. The future, on the caller's loop, is done when
 * every worker has closed its sockets. Idempotent. Loop thread only (the
 * caller's).
 */
CIO_EXTERN cio_future_t *cio_sharded_close(cio_sharded_t *s);

/**
 * A future done once the server is closed and every worker's connections
 * have been lost (asyncio's wait_closed, over all workers). Loop thread only
 * (the caller's).
 */
CIO_EXTERN cio_future_t *cio_sharded_wait_closed(cio_sharded_t *s);

/**
 * Close (or, with @p abort, abort) every connection the service has on every
 * worker (asyncio 3.13: close_clients / abort_clients). Any thread.
 */
CIO_EXTERN void cio_sharded_close_clients(cio_sharded_t *s, bool abort);

/**
 * The listening sockets worker @p worker serves (one per address family it
 * listens on; none for a HANDOFF worker other than 0): at most @p max into
 * @p fds, and their number. The descriptors stay the server's. Any thread,
 * while the server is open.
 */
CIO_EXTERN size_t cio_sharded_sockets(const cio_sharded_t *s, size_t worker, int *fds, size_t max);

/**
 * Worker @p i's listening socket lives on elsewhere (another process took a
 * copy of it): cio_sharded_close() then lets go of this server's descriptor
 * without refusing new connections on the socket, and without removing a
 * Unix socket's file. Loop thread only (the caller's), before closing.
 */
CIO_EXTERN void cio_sharded_handed_over(cio_sharded_t *s, size_t i);

/**
 * The reverse, for sockets given with socks_shared: worker @p i's are this
 * server's alone from now on (their giver has let go of its copies), so
 * cio_sharded_close() refuses new connections on them and drains them again.
 * Loop thread only (the caller's), before closing.
 */
CIO_EXTERN void cio_sharded_owned(cio_sharded_t *s, size_t i);

/**
 * Release the service. It must be closed (cio_sharded_close() done) or never
 * have served; connections still open stay with their workers' loops.
 * Loop thread only (the caller's). NULL is ignored.
 */
CIO_EXTERN void cio_sharded_free(cio_sharded_t *s);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SHARDED_H */
