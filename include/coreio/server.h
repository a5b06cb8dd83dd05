/*
 * coreio/server.h: listening servers (asyncio: loop.create_server,
 * loop.create_unix_server and the Server object).
 *
 * Loop thread only.
 */
#ifndef COREIO_SERVER_H
#define COREIO_SERVER_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A server: one or more listening sockets and the connections they accept. */
typedef struct cio_server_s cio_server_t;

/** Options of the create_server calls; NULL or all-zero means asyncio's defaults. */
typedef struct cio_server_opts {
    int family;               /* AF_UNSPEC (0): every family the host has */
    int flags;                /* getaddrinfo AI_* flags; AI_PASSIVE is implied */
    const char *const *hosts; /* several hosts (nhosts), instead of the host argument */
    size_t nhosts;
    int backlog;                  /* 0: 100 */
    cio_tristate_t reuse_address; /* SO_REUSEADDR, default on */
    bool reuse_port;              /* SO_REUSEPORT */
    cio_tristate_t start_serving; /* default on: accept at once */
    bool use_sock;                /* serve the listening socket @c sock instead; */
    int sock;                     /* -1: no socket, only cio_server_serve_accepted() */
    const int *socks; /* with use_sock and nsocks: these sockets instead of sock (one per */
    size_t nsocks;    /* address family, say); the array is copied, the sockets taken */
    /* (the given sockets are the loop's once a future is returned: closed if the
     * server fails or never starts) */
    /* coreio extensions, applied to every connection the server serves: */
    double idle_timeout; /* cio_transport_set_idle_timeout(); 0: none */
    size_t write_high;   /* write buffer water marks; 0: the transport's default */
    size_t write_low;
    /**
     * When set, each accepted socket goes to on_accept(on_accept_arg, fd),
     * which owns it, instead of becoming a connection here (the factory may
     * then be NULL); a negative return is logged. Runs on the loop.
     */
    int (*on_accept)(void *arg, int fd);
    void *on_accept_arg;
    /*
     * TLS (coreio/tls.h): a server context makes every connection TLS; the
     * timeouts are seconds, 0 for asyncio's defaults (60 s, 30 s).
     */
    struct ssl_ctx_st *ssl;
    double ssl_handshake_timeout;
    double ssl_shutdown_timeout;
    /*
     * The PROXY protocol (coreio/proxy.h): each connection starts with a
     * balancer's header, read before TLS and the protocol; peers outside the
     * trusted ranges are refused at accept. Copied; NULL: none.
     */
    const struct cio_proxy_opts *proxy;
} cio_server_opts_t;

/**
 * Listen on @p host and @p port (asyncio: create_server); each connection gets
 * a protocol from @p factory(@p factory_arg). @p host NULL listens on every
 * interface (an IPv6 socket is made IPV6_V6ONLY so IPv4 gets its own), and
 * each host resolved to several addresses gets a socket per address. Names are
 * resolved without blocking the loop. The future's result is the server (the
 * caller frees it with cio_server_free()); its error is the failed bind's or
 * the resolution's. NULL for bad arguments (no factory nor on_accept, a
 * negative backlog or idle_timeout, write_low above write_high).
 */
CIO_EXTERN cio_future_t *cio_loop_create_server(cio_loop_t *loop, cio_protocol_factory_t factory,
                                                void *factory_arg, const char *host,
                                                const char *port, const cio_server_opts_t *opts);

/**
 * As cio_loop_create_server(), on the Unix socket @p path (asyncio:
 * create_unix_server); a stale socket file at @p path is removed first. Only
 * backlog, start_serving, use_sock/sock, the TLS fields and proxy of @p opts
 * apply (with proxy, a non-empty trusted list trusts every peer: all are local).
 */
CIO_EXTERN cio_future_t *cio_loop_create_unix_server(cio_loop_t *loop,
                                                     cio_protocol_factory_t factory,
                                                     void *factory_arg, const char *path,
                                                     const cio_server_opts_t *opts);

/**
 * Stop listening and close the listening sockets; connections already
 * accepted go on (asyncio 3.11). Idempotent.
 */
CIO_EXTERN void cio_server_close(cio_server_t *s);

/** The loop the server runs on. */
CIO_EXTERN cio_loop_t *cio_server_get_loop(const cio_server_t *s);

/**
 * Start accepting if not yet (asyncio: start_serving). The future (one
 * reference for the caller) is done at once: NULL result, or CIO_ECLOSED.
 */
CIO_EXTERN cio_future_t *cio_server_start_serving(cio_server_t *s);

/**
 * Start accepting and return a future that stays pending until the server is
 * closed, then ends cancelled (asyncio: serve_forever); cancelling it closes
 * the server. -EBUSY error if another serve_forever is pending.
 */
CIO_EXTERN cio_future_t *cio_server_serve_forever(cio_server_t *s);

/** Whether the server accepts connections. */
CIO_EXTERN bool cio_server_is_serving(const cio_server_t *s);

/**
 * A future done once the server is closed and every connection it accepted
 * has been lost (asyncio: wait_closed).
 */
CIO_EXTERN cio_future_t *cio_server_wait_closed(cio_server_t *s);

/** Copy up to @p max listening descriptors into @p fds; returns how many there are. */
CIO_EXTERN size_t cio_server_sockets(const cio_server_t *s, int *fds, size_t max);

/** Connections accepted and not lost yet. Any thread (a snapshot). */
CIO_EXTERN size_t cio_server_active_connections(const cio_server_t *s);

/** Connections served since the server was made. Any thread (a snapshot). */
CIO_EXTERN size_t cio_server_accepted_connections(const cio_server_t *s);

/**
 * Serve @p fd, a connected stream socket accepted elsewhere (another loop's
 * listener, say), as a connection of this server: it gets a protocol from the
 * factory and counts in active_connections and wait_closed. @p fd is consumed
 * in every case. 0, CIO_ECLOSED once the server is closed, -EINVAL (no
 * factory), -ENOMEM. A coreio extension.
 */
CIO_EXTERN int cio_server_serve_accepted(cio_server_t *s, int fd);

/**
 * Change what @p s gives the connections it accepts from now on, and its
 * backlog, without closing anything: @p o's backlog (0: 100; a listening
 * server calls listen(2) again, which the kernel takes as a new backlog),
 * idle_timeout, write_high/write_low, ssl (new certificates, say; NULL:
 * plaintext) and the TLS timeouts; its other fields are ignored.
 * Connections already served keep their settings. 0, -EINVAL (bad values, as
 * for cio_loop_create_server()) or the -errno of listen(2). Loop thread only.
 * A coreio extension (a configuration reload uses it).
 */
CIO_EXTERN int cio_server_reconfigure(cio_server_t *s, const cio_server_opts_t *o);

/** Close every connection the server accepted (asyncio 3.13: close_clients). */
CIO_EXTERN void cio_server_close_clients(cio_server_t *s);

/** Abort every connection the server accepted (asyncio 3.13: abort_clients). */
CIO_EXTERN void cio_server_abort_clients(cio_server_t *s);

/**
 * Close the server if needed and release it; the memory goes once its last
 * connection is lost. NULL is ignored.
 */
CIO_EXTERN void cio_server_free(cio_server_t *s);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SERVER_H */
