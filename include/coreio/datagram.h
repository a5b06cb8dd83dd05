/*
 * coreio/datagram.h: datagram endpoints (asyncio:
 * loop.create_datagram_endpoint) over UDP or Unix datagram sockets. The
 * transport sends with cio_transport_sendto(); the protocol receives
 * datagram_received and error_received.
 *
 * One readiness event reads every datagram waiting on a UDP endpoint, up to
 * 16, and hands them to datagram_received in order before other callbacks
 * run (asyncio reads one per event). A Unix endpoint (or a given socket of
 * another family) reads one at a time, up to 256 KiB each.
 * cio_transport_pause_reading() takes effect at once all the same: datagrams
 * already read wait in the endpoint and come first after
 * cio_transport_resume_reading(); a close drops them, as it drops those in the
 * socket. Only if it cannot keep them (no memory) are they lost, and
 * error_received hears -ENOMEM.
 *
 * Loop thread only.
 */
#ifndef COREIO_DATAGRAM_H
#define COREIO_DATAGRAM_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of cio_loop_create_datagram_endpoint(); all-zero is asyncio's defaults. */
typedef struct cio_datagram_opts {
    const char *local_host; /* local_addr: bind here (host and/or port) */
    const char *local_port;
    const char *remote_host; /* remote_addr: connect here; sendto() may omit the address */
    const char *remote_port;
    const char *local_path;  /* AF_UNIX: bind to this path */
    const char *remote_path; /* AF_UNIX: connect to this path */
    int family;              /* AF_UNSPEC (0): from the addresses; AF_UNIX for paths */
    int proto;
    int flags;            /* getaddrinfo AI_* flags */
    bool reuse_port;      /* SO_REUSEPORT */
    bool allow_broadcast; /* SO_BROADCAST */
    /* use the datagram socket @c sock instead: the loop's once a future is
     * returned (closed if the endpoint fails or never starts) */
    bool use_sock;
    int sock;
    /*
     * PROXY protocol v2 in every datagram (coreio/proxy.h; versions must be
     * CIO_PROXY_V2, copied at the call), NULL for none: datagrams from
     * senders outside the trusted ranges, or without a good header, are
     * dropped (logged, at most ten lines a second per loop). datagram_received
     * gets what follows the header, with the sender's address (the proxy,
     * where replies must go); during that call get_extra_info("proxy") gives
     * the header: the client's address and the TLVs. A coreio extension.
     */
    const struct cio_proxy_opts *proxy;
} cio_datagram_opts_t;

/**
 * Create a datagram endpoint (asyncio: create_datagram_endpoint) with a
 * protocol from @p factory(@p factory_arg). With a remote address the socket
 * is connected: sendto() without an address goes there, and ICMP errors (a
 * closed port, say) reach error_received. The future's result is the
 * transport. NULL for bad arguments (no address at all, paths with a
 * non-Unix family).
 */
CIO_EXTERN cio_future_t *cio_loop_create_datagram_endpoint(cio_loop_t *loop,
                                                           cio_protocol_factory_t factory,
                                                           void *factory_arg,
                                                           const cio_datagram_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_DATAGRAM_H */
