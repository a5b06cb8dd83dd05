/*
 * coreio/connection.h: opening stream connections (asyncio:
 * loop.create_connection, create_unix_connection, connect_accepted_socket).
 * Each returns a future whose result is the connected transport, once its
 * protocol's connection_made has run. The connection may end before the
 * code awaiting the future runs (a peer that closes at once, or done
 * callbacks delayed by an allocation failure): the transport is valid only
 * until its protocol's connection_lost, so check the protocol first.
 *
 * Loop thread only.
 */
#ifndef COREIO_CONNECTION_H
#define COREIO_CONNECTION_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of cio_loop_create_connection(); NULL or all-zero: asyncio's defaults. */
typedef struct cio_connection_opts {
    int family;             /* AF_UNSPEC (0): whatever the host resolves to */
    int proto;              /* getaddrinfo protocol, 0 for any */
    int flags;              /* getaddrinfo AI_* flags */
    const char *local_host; /* local_addr: bind to this host and/or port first */
    const char *local_port;
    double happy_eyeballs_delay; /* > 0: race addresses this many seconds apart (RFC 8305) */
    int interleave;              /* addresses of the first family before alternating; 0: 1 */
    /* use the connected socket @c sock instead: the loop's once a future is
     * returned (closed if the connection fails or never starts) */
    bool use_sock;
    int sock;
    /*
     * TLS (coreio/tls.h): a client context makes the connection TLS; the
     * server's name is checked against server_hostname, or the host argument
     * when that is NULL. The timeouts are seconds, 0 for asyncio's defaults
     * (60 s, 30 s). For create_unix_connection only these four apply, and
     * server_hostname is then needed for a name check.
     */
    struct ssl_ctx_st *ssl;
    const char *server_hostname;
    double ssl_handshake_timeout;
    double ssl_shutdown_timeout;
    /*
     * A session to resume (OpenSSL's SSL_SESSION, from SSL_get1_session() on
     * the "ssl_object" of an earlier connection), as Python's
     * SSLSocket.session; the connection takes its own reference. A coreio
     * extension: create_connection has no session argument in asyncio.
     */
    struct ssl_session_st *ssl_session;
} cio_connection_opts_t;

/**
 * Connect to @p host and @p port (asyncio: create_connection) and attach a
 * protocol from @p factory(@p factory_arg). Each resolved address is tried in
 * turn; with a happy-eyeballs delay the attempts are started that far apart
 * and race, and the first to connect wins. If all fail, the error is the
 * last attempt's and the message names every address that failed. The
 * future's result is the transport. NULL for bad arguments.
 */
CIO_EXTERN cio_future_t *
cio_loop_create_connection(cio_loop_t *loop, cio_protocol_factory_t factory, void *factory_arg,
                           const char *host, const char *port, const cio_connection_opts_t *opts);

/**
 * As cio_loop_create_connection(), to the Unix socket @p path; of @p opts
 * (NULL: none) only the TLS fields apply.
 */
CIO_EXTERN cio_future_t *cio_loop_create_unix_connection(cio_loop_t *loop,
                                                         cio_protocol_factory_t factory,
                                                         void *factory_arg, const char *path,
                                                         const cio_connection_opts_t *opts);

/**
 * Wrap @p fd, a connected stream socket accepted elsewhere, in a transport
 * (asyncio: connect_accepted_socket); it is made non-blocking and is the
 * loop's once a future is returned: the transport's, or closed if the
 * connection fails or is cancelled before it starts (on NULL it is still the
 * caller's). Of @p opts (NULL: none) only ssl and the TLS
 * timeouts apply: the socket is then the server side of a TLS connection,
 * as in asyncio.
 */
CIO_EXTERN cio_future_t *cio_loop_connect_accepted_socket(cio_loop_t *loop,
                                                          cio_protocol_factory_t factory,
                                                          void *factory_arg, int fd,
                                                          const cio_connection_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_CONNECTION_H */
