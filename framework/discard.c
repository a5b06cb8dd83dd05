/*
 * framework/discard.c: the "discard" service (RFC 863). Streams and datagrams
 * alike: everything received is dropped and nothing is ever sent; a stream
 * closes when the peer sends EOF.
 */
#include <stdlib.h>

#include "builtin.h"

typedef struct discard {
    cio_protocol_t base;
} discard_t;

static void discard_lost(cio_protocol_t *p, int err)
{
    free(p);
}

static int discard_data(cio_protocol_t *p, const void *data, size_t len)
{
    return 0;
}

/* The peer is done: close our side too. */
static int discard_eof(cio_protocol_t *p)
{
    return 0;
}

static int discard_datagram(cio_protocol_t *p, const void *data, size_t len,
                            const struct sockaddr *addr, socklen_t addrlen)
{
    return 0;
}

static int discard_error(cio_protocol_t *p, int err)
{
    return 0;
}

static const cio_protocol_ops_t discard_ops = {
    .connection_lost = discard_lost,
    .data_received = discard_data,
    .eof_received = discard_eof,
    .datagram_received = discard_datagram,
    .error_received = discard_error,
};

static cio_protocol_t *discard_factory(cio_service_ctx_t *ctx)
{
    discard_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->base.ops = &discard_ops;
    return &d->base;
}

const cio_service_t cio__service_discard = {
    .name = "discard",
    .kinds = CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM,
    .doc = "RFC 863 discard: everything received is dropped",
    .factory = discard_factory,
};
