/*
 * loop/proxy_dgram.c: PROXY protocol v2 on a datagram endpoint
 * (coreio/proxy.h). Over UDP every datagram carries a header of its own (v1
 * is for streams only), as dnsdist sends them to its backends. A datagram
 * from a sender outside the trusted ranges, or whose header is missing, not
 * v2, cut short or for a stream, is dropped with a warning line (rate-limited
 * as refused connections are). The protocol gets the payload after the
 * header with the sender's own address, which is where a reply must go (the
 * proxy passes it on); the header, with the client's address and its TLVs,
 * is get_extra_info("proxy") for the time of that datagram_received call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "coreio/proxy.h"
#include "internal.h"

typedef struct cio__dgram_proxy {
    cio_proxy_opts_t opts;             /* a copy: its trusted ranges are ours */
    const cio_proxy_header_t *current; /* the delivered datagram's header, else NULL */
} cio__dgram_proxy_t;

bool cio__dgram_proxy_opts_valid(const cio_proxy_opts_t *o)
{
    return !o || (cio__proxy_opts_valid(o) && o->versions == CIO_PROXY_V2);
}

int cio__dgram_proxy_attach(cio_transport_t *t, const cio_proxy_opts_t *o)
{
    cio__dgram_proxy_t *d = calloc(1, sizeof(*d));
    if (!d || cio__proxy_opts_copy(&d->opts, o) < 0) {
        free(d);
        return -ENOMEM;
    }
    t->dproxy = d;
    return 0;
}

void cio__dgram_proxy_free(cio_transport_t *t)
{
    cio__proxy_opts_clear(&t->dproxy->opts);
    free(t->dproxy);
    t->dproxy = NULL;
}

/* The header of @p buf[0..@p n) into *@p h: its length, or an error (the datagram goes). */
static ssize_t header_of(const cio__dgram_proxy_t *d, const struct sockaddr *from,
                         const uint8_t *buf, size_t n, cio_proxy_header_t *h)
{
    if (!from || !cio_proxy_trusted(&d->opts, from))
        return CIO_EPROXYUNTRUSTED;
    ssize_t len = cio_proxy_parse(buf, n, CIO_PROXY_V2, h);
    if (len == 0) /* the rest of it will never come */
        return CIO_EPROXY;
    if (len > 0 && !h->local && h->socktype != SOCK_DGRAM && h->socktype != 0)
        return CIO_EPROXY; /* a stream's addresses on a datagram */
    return len;
}

ssize_t cio__dgram_proxy_strip(cio_transport_t *t, const struct sockaddr *from, socklen_t fromlen,
                               const uint8_t *buf, size_t n, cio_proxy_header_t *h)
{
    ssize_t len = header_of(t->dproxy, fromlen ? from : NULL, buf, n, h);
    if (len < 0)
        cio__proxy_log_dropped(t->loop, fromlen ? from : NULL, fromlen, (int)len);
    return len;
}

void cio__dgram_proxy_set_current(cio_transport_t *t, const cio_proxy_header_t *h)
{
    t->dproxy->current = h;
}

int cio__dgram_proxy_extra_info(const cio_transport_t *t, const char *name, cio_extra_info_t *info)
{
    if (strcmp(name, "proxy") != 0)
        return 1; /* the transport answers */
    if (!t->dproxy->current)
        return -ENOENT;
    info->object = (void *)t->dproxy->current;
    info->addrlen = 0;
    return 0;
}
