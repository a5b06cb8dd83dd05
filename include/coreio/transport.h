/*
 * coreio/transport.h: transports and protocols (asyncio's Transport and
 * Protocol classes). A protocol is a table of callbacks, cio_protocol_ops_t,
 * that the user embeds (its first member, a cio_protocol_t, points at the
 * table); a transport is the loop's side of one connection or endpoint.
 *
 * Protocol callbacks return 0, or a negative error to report a failure: the
 * transport then goes through asyncio's fatal-error path (the exception
 * handler hears of it and the transport is closed with that error). A NULL
 * callback behaves as asyncio's base class does (does nothing; eof_received
 * closes). connection_made is always the first call and connection_lost the
 * last, so a protocol may free itself in connection_lost; the transport is
 * freed right after it and must not be used once connection_lost has begun.
 *
 * Loop thread only.
 */
#ifndef COREIO_TRANSPORT_H
#define COREIO_TRANSPORT_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One transport type for streams (TCP, Unix) and datagrams (UDP, Unix). */
typedef struct cio_transport_s cio_transport_t;

typedef struct cio_protocol cio_protocol_t;

/** The protocol callbacks; any may be NULL. */
typedef struct cio_protocol_ops {
    /** The connection is up: @p transport is the protocol's (BaseProtocol). */
    int (*connection_made)(cio_protocol_t *p, cio_transport_t *transport);
    /** The connection is gone: 0 for a clean close, else the error. Last call. */
    void (*connection_lost)(cio_protocol_t *p, int err);
    /** The write buffer went above the high-water mark. */
    int (*pause_writing)(cio_protocol_t *p);
    /** The write buffer drained to the low-water mark. */
    int (*resume_writing)(cio_protocol_t *p);
    /** Bytes arrived (Protocol); valid during the call only. */
    int (*data_received)(cio_protocol_t *p, const void *data, size_t len);
    /** The peer sent EOF: return > 0 to keep the write side open, 0 to close. */
    int (*eof_received)(cio_protocol_t *p);
    /**
     * BufferedProtocol: a buffer to read into, at least 1 byte (*len), with
     * @p sizehint as a hint. When set, data_received is not used. An empty or
     * NULL buffer is a fatal error.
     */
    void *(*get_buffer)(cio_protocol_t *p, size_t sizehint, size_t *len);
    /** BufferedProtocol: @p nbytes were written into the last buffer. */
    int (*buffer_updated)(cio_protocol_t *p, size_t nbytes);
    /** DatagramProtocol: one datagram from @p addr. */
    int (*datagram_received)(cio_protocol_t *p, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen);
    /** DatagramProtocol: a send or receive failed (an ICMP error, say). */
    int (*error_received)(cio_protocol_t *p, int err);
    /** SubprocessProtocol: the child wrote @p len bytes to its descriptor @p fd (1 or 2). */
    int (*pipe_data_received)(cio_protocol_t *p, int fd, const void *data, size_t len);
    /** SubprocessProtocol: the pipe of the child's descriptor @p fd closed (0, or the error). */
    int (*pipe_connection_lost)(cio_protocol_t *p, int fd, int err);
    /** SubprocessProtocol: the child exited (its pipes may still be open). */
    int (*process_exited)(cio_protocol_t *p);
} cio_protocol_ops_t;

/** Embed as the first member of a protocol and point @c ops at its table. */
struct cio_protocol {
    const cio_protocol_ops_t *ops;
};

/** Makes the protocol of each new connection (asyncio's protocol_factory). */
typedef cio_protocol_t *(*cio_protocol_factory_t)(void *arg);

/** What cio_transport_get_extra_info() fills in; fields that apply are set. */
typedef struct cio_extra_info {
    struct sockaddr_storage addr; /* "peername", "sockname" */
    socklen_t addrlen;
    int fd; /* "socket", "pipe" */
    /*
     * TLS transports (coreio/tls.h), borrowed from the connection: "ssl_object"
     * (SSL *), "sslcontext" (SSL_CTX *), "peercert" (X509 *, NULL when the
     * peer sent none or the handshake is not done).
     */
    void *object;
    /* "cipher": name, protocol version and secret bits; "compression": NULL. */
    const char *name;
    const char *version;
    int bits;
} cio_extra_info_t;

/**
 * asyncio's get_extra_info(name): "peername", "sockname" or "socket" ("pipe"
 * instead of "socket" on pipe transports, coreio/pipe.h), and on
 * TLS transports "peercert", "cipher", "compression", "ssl_object" and
 * "sslcontext". Returns 0, or -ENOENT for a name the transport does not have
 * (or a peer name it cannot know any more).
 */
CIO_EXTERN int cio_transport_get_extra_info(cio_transport_t *t, const char *name,
                                            cio_extra_info_t *info);

/** The loop the transport belongs to. */
CIO_EXTERN cio_loop_t *cio_transport_get_loop(const cio_transport_t *t);

/**
 * Close: stop reading, send what is buffered, then close the connection and
 * call connection_lost(0) (scheduled, never inside this call). Idempotent.
 */
CIO_EXTERN void cio_transport_close(cio_transport_t *t);

/** Whether the transport is closing or closed. */
CIO_EXTERN bool cio_transport_is_closing(const cio_transport_t *t);

/** Close at once, dropping buffered data; connection_lost(0) follows. */
CIO_EXTERN void cio_transport_abort(cio_transport_t *t);

/** Hand the connection to another protocol (asyncio: set_protocol). */
CIO_EXTERN void cio_transport_set_protocol(cio_transport_t *t, cio_protocol_t *p);

/** The current protocol. */
CIO_EXTERN cio_protocol_t *cio_transport_get_protocol(const cio_transport_t *t);

/** Whether the transport is reading (not paused, not closing). */
CIO_EXTERN bool cio_transport_is_reading(const cio_transport_t *t);

/** Stop delivering data until resume_reading; idempotent. */
CIO_EXTERN void cio_transport_pause_reading(cio_transport_t *t);

/** Deliver data again; idempotent. */
CIO_EXTERN void cio_transport_resume_reading(cio_transport_t *t);

/**
 * Send @p len bytes: written at once as far as the socket takes them, the rest
 * copied into the write buffer. Returns 0, -EPIPE after write_eof() or
 * close(), -ENOMEM, or -EINVAL (NULL data with a length, datagram transport).
 * The protocol's pause_writing is called when the buffer passes the high-water
 * mark.
 */
CIO_EXTERN int cio_transport_write(cio_transport_t *t, const void *data, size_t len);

/** Send several buffers, in order, as one write. Same returns. */
CIO_EXTERN int cio_transport_writelines(cio_transport_t *t, const struct iovec *iov, int iovcnt);

/** Whether write_eof() is possible (true for TCP and Unix streams, false over TLS). */
CIO_EXTERN bool cio_transport_can_write_eof(const cio_transport_t *t);

/**
 * Close the write side once the buffer has drained (shutdown(SHUT_WR)); the
 * transport goes on reading. -EPIPE if closing, -ENOTSUP where it cannot
 * (datagrams, TLS).
 */
CIO_EXTERN int cio_transport_write_eof(cio_transport_t *t);

/**
 * Close the connection, with connection_lost(-ETIMEDOUT), once no byte has
 * been read or sent for @p seconds; 0 turns it off (the default). A coreio
 * extension: asyncio leaves idle connections to the protocol. -EINVAL for a
 * negative or infinite time.
 */
CIO_EXTERN int cio_transport_set_idle_timeout(cio_transport_t *t, double seconds);

/** Bytes waiting in the write buffer. */
CIO_EXTERN size_t cio_transport_get_write_buffer_size(const cio_transport_t *t);

/** The low- and high-water marks of the write buffer. */
CIO_EXTERN void cio_transport_get_write_buffer_limits(const cio_transport_t *t, size_t *low,
                                                      size_t *high);

/**
 * Set the water marks (asyncio semantics): @p high < 0 means the default
 * (64 KiB, or 4 * low when only low is given); @p low < 0 means high / 4.
 * -EINVAL unless high >= low >= 0.
 */
CIO_EXTERN int cio_transport_set_write_buffer_limits(cio_transport_t *t, ssize_t high, ssize_t low);

/**
 * Datagram transports: send one datagram to @p addr (NULL: the connected
 * remote address). -EINVAL for an address on a connected endpoint that is not
 * its remote one, or a stream transport; -EPIPE when closing. A datagram the
 * socket cannot take now is buffered.
 */
CIO_EXTERN int cio_transport_sendto(cio_transport_t *t, const void *data, size_t len,
                                    const struct sockaddr *addr, socklen_t addrlen);

/**
 * Send @p count bytes (0: to the end) of @p file from @p offset over the
 * transport (asyncio: loop.sendfile): once its write buffer has drained, with
 * sendfile(2); if the kernel refuses the file, by reading and writing blocks
 * when @p fallback is set, else failing with CIO_ENOSENDFILE ("sendfile not
 * available"). Datagram transports are not supported (-ENOTSUP). Meanwhile
 * write() fails with -EBUSY and reading pauses. The result is the byte count,
 * as (void *)(uintptr_t); the file's offset is left after the last byte sent,
 * even on error. NULL for bad arguments or a closing transport.
 */
CIO_EXTERN cio_future_t *cio_loop_sendfile(cio_loop_t *loop, cio_transport_t *t, int file,
                                           off_t offset, size_t count, bool fallback);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_TRANSPORT_H */
