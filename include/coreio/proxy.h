/*
 * coreio/proxy.h: the PROXY protocol (HAProxy's, versions 1 and 2), by which
 * a load balancer tells its backend who the client is. A server with
 * cio_server_opts_t.proxy reads the header before anything else of each
 * connection (before TLS), from trusted peers only, and never consumes a
 * byte past it; its protocol hears connection_made only once the header is
 * in, and get_extra_info() answers with the header's addresses:
 *
 *  - "peername" and "sockname": the client's and the address it connected
 *    to, as the balancer saw them (for a LOCAL or UNKNOWN header, or one of
 *    another family than TCP and UNIX, the socket's own);
 *  - "socket_peername" and "socket_sockname": the socket's own, always;
 *  - "proxy": the parsed header (info.object is a const cio_proxy_header_t *,
 *    valid while the transport lives).
 *
 * A datagram endpoint with cio_datagram_opts_t.proxy reads a v2 header in
 * each datagram instead (coreio/datagram.h); the parser is also usable on its
 * own (cio_proxy_parse()).
 */
#ifndef COREIO_PROXY_H
#define COREIO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which header versions a server accepts (a bit set). */
enum {
    CIO_PROXY_V1 = 1u << 0,
    CIO_PROXY_V2 = 1u << 1,
    CIO_PROXY_ANY = CIO_PROXY_V1 | CIO_PROXY_V2,
};

/** The longest header of each version (v2: the 16-byte fixed part and 65535 more). */
#define CIO_PROXY_V1_MAX 107
#define CIO_PROXY_V2_MAX (16 + 65535)

/** v2 TLV types (the spec's PP2_TYPE_*), for cio_proxy_tlv(). */
enum {
    CIO_PP2_TYPE_ALPN = 0x01,
    CIO_PP2_TYPE_AUTHORITY = 0x02,
    CIO_PP2_TYPE_CRC32C = 0x03,
    CIO_PP2_TYPE_NOOP = 0x04,
    CIO_PP2_TYPE_UNIQUE_ID = 0x05,
    CIO_PP2_TYPE_SSL = 0x20,
    CIO_PP2_SUBTYPE_SSL_VERSION = 0x21,
    CIO_PP2_SUBTYPE_SSL_CN = 0x22,
    CIO_PP2_SUBTYPE_SSL_CIPHER = 0x23,
    CIO_PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    CIO_PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    CIO_PP2_SUBTYPE_SSL_GROUP = 0x26,
    CIO_PP2_SUBTYPE_SSL_SIG_SCHEME = 0x27,
    CIO_PP2_SUBTYPE_SSL_CLIENT_CERT = 0x28,
    CIO_PP2_TYPE_NETNS = 0x30,
};

/** PP2_TYPE_SSL's client bits. */
enum {
    CIO_PP2_CLIENT_SSL = 0x01,
    CIO_PP2_CLIENT_CERT_CONN = 0x02,
    CIO_PP2_CLIENT_CERT_SESS = 0x04,
};

/** A parsed header. */
typedef struct cio_proxy_header {
    uint8_t version; /* 1 or 2 */
    /* v2 LOCAL, or v1 UNKNOWN (or v2 PROXY with the UNSPEC family): the balancer
     * speaks for itself (a health check); the addresses below are then empty. */
    bool local;
    int socktype; /* SOCK_STREAM or SOCK_DGRAM (v2); v1: SOCK_STREAM; 0 when unspecified */
    /* The client (source) and the address it reached (destination): AF_INET,
     * AF_INET6 or AF_UNIX; len 0 when the header carries none. */
    struct sockaddr_storage src, dst;
    socklen_t src_len, dst_len;
    /* v2: the TLVs as sent (type, 16-bit big-endian length, value ...), inside
     * the parsed buffer; NULL and 0 for v1 and for none. A LOCAL header's
     * body is read as TLVs only with the UNSPEC family (as HAProxy sends it):
     * with any other, the spec has its family ignored, and the body skipped. */
    const uint8_t *tlvs;
    size_t tlvs_len;
} cio_proxy_header_t;

/**
 * Parse the header at the start of @p buf (@p len bytes), accepting the
 * @p versions (CIO_PROXY_*): the header's length (> 0) with *@p out filled,
 * 0 while the bytes are a valid beginning that needs more (never more than
 * the version's maximum), or CIO_EPROXY (malformed), CIO_EPROXYVERSION (a
 * version not accepted) or CIO_EPROXYMISSING (no PROXY signature at all).
 * -EINVAL for bad arguments. *@p out is written only when a header is whole.
 *
 * A beginning is valid while it can still become an accepted header, or a
 * signature of a version not accepted (awaited whole to tell a refused
 * version, CIO_EPROXYVERSION, from none at all, CIO_EPROXYMISSING); each
 * error is returned as soon as the bytes make it certain. So the verdict on a
 * stream does not depend on how it was cut into reads: a prefix of the bytes
 * gets 0 or the verdict on the whole. The spec's rules are kept strictly
 * (v1: single spaces, no leading zeros, CRLF within CIO_PROXY_V1_MAX bytes,
 * no lone CR or LF; v2: version 2, a known command, and for PROXY one of the
 * seven family and transport bytes, TLVs that fill the header exactly,
 * SSL sub-TLVs that fill the SSL TLV, a UNIQUE_ID of at most 128 bytes, one
 * CRC32C of 4 bytes that checks). Reads nothing past the header. Any thread.
 */
CIO_EXTERN ssize_t cio_proxy_parse(const void *buf, size_t len, unsigned versions,
                                   cio_proxy_header_t *out);

/**
 * The first v2 TLV of @p type in @p h into *@p value / *@p len (pointing into
 * the header's TLVs; either may be NULL): 0, or -ENOENT (-EINVAL without
 * @p h). Types 0x21 to 0x2f (the CIO_PP2_SUBTYPE_SSL_* ones) are looked for
 * among the first SSL TLV's sub-TLVs only; *@p value of the SSL TLV itself
 * starts with its client byte and 32-bit verify field. Any thread.
 */
CIO_EXTERN int cio_proxy_tlv(const cio_proxy_header_t *h, uint8_t type, const void **value,
                             size_t *len);

/** An address range: family AF_INET or AF_INET6, the address, the prefix length. */
typedef struct cio_cidr {
    int family;
    uint8_t addr[16]; /* network byte order; bits past the prefix are zero */
    unsigned prefix;  /* 0..32 or 0..128 */
} cio_cidr_t;

/**
 * Parse "ADDR/PREFIX" or a lone address (a full-length prefix), IPv4 or
 * IPv6, into *@p out: 0, or -EINVAL (also for host bits set past the prefix,
 * which usually hides a typo). IPv4 is a dotted quad without leading zeros,
 * IPv6 what inet_pton() reads; the prefix is decimal without leading zeros.
 * An IPv4-mapped IPv6 range (within ::ffff:0:0/96) is stored as the IPv4
 * range it is, as it matches as one. Any thread.
 */
CIO_EXTERN int cio_cidr_parse(const char *text, cio_cidr_t *out);

/**
 * Whether the address @p sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address
 * matches as its IPv4 one, and so lies in no IPv6 range) lies in @p c. Other
 * families lie in no range: for AF_UNIX peers, see cio_proxy_trusted(). Any
 * thread.
 */
CIO_EXTERN bool cio_cidr_match(const cio_cidr_t *c, const struct sockaddr *sa);

/** Options of a server that reads PROXY headers (cio_server_opts_t.proxy). */
typedef struct cio_proxy_opts {
    unsigned versions;         /* CIO_PROXY_V1, _V2 or _ANY; 0 is invalid */
    const cio_cidr_t *trusted; /* the peers that may send a header: the rest are */
    size_t ntrusted;           /* refused at accept; none: nobody is trusted */
    double timeout;            /* seconds to wait for the whole header; 0: 5 s */
} cio_proxy_opts_t;

/**
 * Whether a peer at @p sa may send a header under @p o: its address lies in
 * one of the trusted ranges, or it is an AF_UNIX peer and the list is not
 * empty (a Unix socket is reachable only from this machine). Any thread.
 */
CIO_EXTERN bool cio_proxy_trusted(const cio_proxy_opts_t *o, const struct sockaddr *sa);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_PROXY_H */
