/*
 * tests/dns_whoami_module.c: the module tests/dnsdist.sh loads behind
 * dnsdist. Its datagram service "dns-whoami" answers every DNS query over
 * UDP with the question repeated and, for a TXT query, one TXT record saying
 * whom the query came from, as the service sees it:
 *
 *   client=HOST:PORT via=HOST:PORT     (a PROXY v2 header carried the client)
 *   client=none via=HOST:PORT          (no header: a plain listener)
 *   client=local via=HOST:PORT         (a LOCAL header)
 *
 * "via" is the datagram's sender, where the answer goes. Other query types
 * (dnsdist's health checks ask for A) get NOERROR and no answer. Queries
 * that do not parse are dropped.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>
#include <coreio/proxy.h>

#define DNS_HEADER 12
#define DNS_MAX    512 /* a plain UDP answer, no EDNS */
#define TYPE_TXT   16

typedef struct endpoint {
    cio_protocol_t base;
    cio_transport_t *t;
} endpoint_t;

/* "HOST:PORT" ("[HOST]:PORT" for IPv6) of @p sa. */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, n, "?");
    else
        snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* The text of the TXT record: who sent the query. */
static void whoami_text(cio_transport_t *t, const struct sockaddr *from, socklen_t fromlen,
                        char *out, size_t n)
{
    char client[NI_MAXHOST + NI_MAXSERV + 4] = "none", via[NI_MAXHOST + NI_MAXSERV + 4];
    cio_extra_info_t info;
    if (cio_transport_get_extra_info(t, "proxy", &info) == 0) {
        const cio_proxy_header_t *h = info.object;
        if (h->local)
            snprintf(client, sizeof(client), "local");
        else
            format_addr((const struct sockaddr *)&h->src, h->src_len, client, sizeof(client));
    }
    format_addr(from, fromlen, via, sizeof(via));
    snprintf(out, n, "client=%s via=%s", client, via);
}

/* The length of the question section at q[0..n) (QNAME, QTYPE, QCLASS), or 0. */
static size_t question_len(const uint8_t *q, size_t n)
{
    size_t at = 0;
    while (at < n && q[at] != 0) {
        if (q[at] & 0xc0) /* a compression pointer has no place in a query's question */
            return 0;
        at += (size_t)q[at] + 1;
    }
    return at + 5 <= n ? at + 5 : 0;
}

static int dns_received(cio_protocol_t *p, const void *data, size_t len,
                        const struct sockaddr *from, socklen_t fromlen)
{
    endpoint_t *e = (endpoint_t *)p;
    const uint8_t *q = data;
    size_t qlen = len > DNS_HEADER ? question_len(q + DNS_HEADER, len - DNS_HEADER) : 0;
    if (qlen == 0 || (q[2] & 0x80) || q[4] != 0 || q[5] != 1 || !from)
        return 0; /* not a query with one question */
    uint8_t a[DNS_MAX];
    char text[256];
    whoami_text(e->t, from, fromlen, text, sizeof(text));
    size_t tlen = strlen(text), at = DNS_HEADER + qlen;
    bool txt = (q[DNS_HEADER + qlen - 4] << 8 | q[DNS_HEADER + qlen - 3]) == TYPE_TXT;
    memcpy(a, q, at);
    a[2] = 0x84 | (q[2] & 0x01); /* QR, AA, the query's RD */
    a[3] = 0;                    /* NOERROR */
    memset(a + 6, 0, 6);         /* ANCOUNT, NSCOUNT, ARCOUNT */
    if (txt && at + 12 + 1 + tlen <= sizeof(a)) {
        static const uint8_t rr[10] = {0xc0, 0x0c, 0, TYPE_TXT, 0, 1, 0, 0, 0, 0};
        a[7] = 1;
        memcpy(a + at, rr, sizeof(rr)); /* the question's name, TXT, IN, TTL 0 */
        at += sizeof(rr);
        a[at++] = 0;
        a[at++] = (uint8_t)(tlen + 1); /* RDLENGTH: one character-string */
        a[at++] = (uint8_t)tlen;
        memcpy(a + at, text, tlen);
        at += tlen;
    }
    return cio_transport_sendto(e->t, a, at, from, fromlen);
}

static int dns_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((endpoint_t *)p)->t = t;
    return 0;
}

static void dns_lost(cio_protocol_t *p, int err)
{
    (void)err;
    free(p);
}

static const cio_protocol_ops_t dns_ops = {
    .connection_made = dns_made,
    .datagram_received = dns_received,
    .connection_lost = dns_lost,
};

static cio_protocol_t *dns_factory(cio_service_ctx_t *ctx)
{
    endpoint_t *e = calloc(1, sizeof(*e));
    (void)ctx;
    if (!e)
        return NULL;
    e->base.ops = &dns_ops;
    return &e->base;
}

static const cio_service_t dns_whoami = {
    .name = "dns-whoami",
    .kinds = CIO_SERVICE_DGRAM,
    .doc = "answers a DNS TXT query with who sent it (PROXY v2 client included)",
    .factory = dns_factory,
};

CIO_MODULE("dns_whoami", "1.0", &dns_whoami);
