/*
 * framework/echo.c: the "echo" service (RFC 862). On a stream every byte
 * received is written back; on a datagram endpoint every datagram goes back to
 * its sender. Back-pressure: while the transport's write buffer is above its
 * high-water mark the protocol stops reading, so a peer that sends without
 * reading holds the server to one read's worth of buffering.
 */
#include <errno.h>
#include <stdlib.h>

#include "builtin.h"

typedef struct echo {
    cio_protocol_t base;
    cio_transport_t *t;
} echo_t;

static int echo_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((echo_t *)p)->t = t;
    return 0;
}

static void echo_lost(cio_protocol_t *p, int err)
{
    free(p);
}

static int echo_pause_writing(cio_protocol_t *p)
{
    cio_transport_pause_reading(((echo_t *)p)->t);
    return 0;
}

static int echo_resume_writing(cio_protocol_t *p)
{
    cio_transport_resume_reading(((echo_t *)p)->t);
    return 0;
}

static int echo_data(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(((echo_t *)p)->t, data, len);
}

/* The peer is done sending: close, which first sends what is still buffered. */
static int echo_eof(cio_protocol_t *p)
{
    return 0;
}

static int echo_datagram(cio_protocol_t *p, const void *data, size_t len,
                         const struct sockaddr *addr, socklen_t addrlen)
{
    /*
     * A reply that cannot be sent (out of memory, say) is dropped, as the
     * network may drop it: failing here would close the endpoint for everyone.
     */
    if (addr)
        (void)cio_transport_sendto(((echo_t *)p)->t, data, len, addr, addrlen);
    return 0;
}

/* ICMP errors about a peer that went away must not close the endpoint. */
static int echo_error(cio_protocol_t *p, int err)
{
    return 0;
}

static const cio_protocol_ops_t echo_ops = {
    .connection_made = echo_made,
    .connection_lost = echo_lost,
    .pause_writing = echo_pause_writing,
    .resume_writing = echo_resume_writing,
    .data_received = echo_data,
    .eof_received = echo_eof,
    .datagram_received = echo_datagram,
    .error_received = echo_error,
};

static cio_protocol_t *echo_factory(cio_service_ctx_t *ctx)
{
    echo_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base.ops = &echo_ops;
    return &e->base;
}

const cio_service_t cio__service_echo = {
    .name = "echo",
    .kinds = CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM,
    .doc = "RFC 862 echo: every byte (or datagram) goes back to its sender",
    .factory = echo_factory,
};
