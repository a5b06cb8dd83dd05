/*
 * fuzz/fuzz_proxy.c: the PROXY protocol parser and address ranges
 * (loop/proxy_parse.c) on any bytes. The input is the start of a connection,
 * parsed under each set of versions: the verdicts must agree with each other
 * and with those on the input's prefixes (a prefix waits, or fails the same
 * way, so a verdict cannot depend on how TCP cut the stream), a header must
 * lie within the input and every TLV must be found where a walk of our own
 * finds it. A short input is also read as a CIDR range, checked against
 * inet_pton() and against matching its own addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "coreio/error.h"
#include "coreio/proxy.h"
#include "fuzz.h"

#define PREFIXES_ALL  128 /* every prefix up to this length is parsed, then a sample */
#define PREFIX_SAMPLE 32
#define CIDR_MAX      64 /* inputs up to this long are also read as a range */

static void check_addr(const struct sockaddr_storage *ss, socklen_t len, int family)
{
    if (ss->ss_family != family || len > sizeof(*ss))
        abort();
    if ((family == AF_INET && len != sizeof(struct sockaddr_in)) ||
        (family == AF_INET6 && len != sizeof(struct sockaddr_in6)))
        abort();
    if (family == AF_UNIX &&
        (len < offsetof(struct sockaddr_un, sun_path) || len > sizeof(struct sockaddr_un)))
        abort();
}

/* Find the first TLV of @p type in t[0..n) our own way: its value, or NULL. */
static const uint8_t *first_tlv(const uint8_t *t, size_t n, unsigned type, size_t *len)
{
    for (size_t at = 0; at + 3 <= n; at += 3 + ((size_t)t[at + 1] << 8 | t[at + 2])) {
        size_t l = (size_t)t[at + 1] << 8 | t[at + 2];
        if (at + 3 + l > n)
            abort(); /* the parser let an overrunning TLV through */
        if (t[at] == type) {
            *len = l;
            return t + at + 3;
        }
    }
    return NULL;
}

/* cio_proxy_tlv() of every type agrees with first_tlv(), SSL sub-TLVs included. */
static void check_tlvs(const cio_proxy_header_t *h)
{
    size_t ssl_len = 0;
    const uint8_t *ssl = first_tlv(h->tlvs, h->tlvs_len, CIO_PP2_TYPE_SSL, &ssl_len);
    for (unsigned type = 0; type < 256; type++) {
        const void *v = NULL;
        size_t len = 0, want_len = 0;
        const uint8_t *want;
        if (type > CIO_PP2_TYPE_SSL && type < CIO_PP2_TYPE_NETNS)
            want = ssl && ssl_len >= 5 ? first_tlv(ssl + 5, ssl_len - 5, type, &want_len) : NULL;
        else
            want = first_tlv(h->tlvs, h->tlvs_len, type, &want_len);
        int rc = cio_proxy_tlv(h, (uint8_t)type, &v, &len);
        if (rc != (want ? 0 : -ENOENT) || (want && (v != want || len != want_len)))
            abort();
        if (type == CIO_PP2_TYPE_CRC32C && want && want_len != 4)
            abort();
    }
}

/* A header of @p n bytes parsed from @p data is consistent. */
static void check_header(const cio_proxy_header_t *h, const uint8_t *data, size_t n)
{
    if (h->version == 1
            ? n > CIO_PROXY_V1_MAX || h->tlvs || h->tlvs_len || h->socktype != SOCK_STREAM
            : h->version != 2 || n < 16 || n > CIO_PROXY_V2_MAX)
        abort();
    if (h->local ? h->src_len || h->dst_len : h->src.ss_family != h->dst.ss_family)
        abort();
    if (!h->local) {
        check_addr(&h->src, h->src_len, h->src.ss_family);
        check_addr(&h->dst, h->dst_len, h->src.ss_family);
    }
    if (!h->tlvs != !h->tlvs_len)
        abort();
    if (h->tlvs && (h->tlvs < data + 16 || h->tlvs + h->tlvs_len != data + n))
        abort();
    if (h->tlvs)
        check_tlvs(h);
}

/* Field by field: padding is not compared. */
static bool same_header(const cio_proxy_header_t *a, const cio_proxy_header_t *b)
{
    return a->version == b->version && a->local == b->local && a->socktype == b->socktype &&
           a->src_len == b->src_len && a->dst_len == b->dst_len && a->tlvs == b->tlvs &&
           a->tlvs_len == b->tlvs_len && memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

/* The verdict on data[0..n) is what the verdict @p full, header @p whole, implies. */
static void check_prefix(const uint8_t *data, size_t n, unsigned versions, ssize_t full,
                         const cio_proxy_header_t *whole)
{
    static cio_proxy_header_t h;
    memset(&h, 0, sizeof(h));
    ssize_t rc = cio_proxy_parse(data, n, versions, &h);
    if (full > 0 ? rc != ((ssize_t)n < full ? 0 : full) : rc != 0 && rc != full)
        abort();
    if (rc > 0 && !same_header(&h, whole))
        abort();
}

/* Parse under @p versions: whole, then on prefixes. The verdict. */
static ssize_t run(const uint8_t *data, size_t size, unsigned versions, cio_proxy_header_t *h)
{
    memset(h, 0, sizeof(*h));
    ssize_t full = cio_proxy_parse(data, size, versions, h);
    if (full > (ssize_t)size ||
        (full < 0 && full != CIO_EPROXY && full != CIO_EPROXYVERSION && full != CIO_EPROXYMISSING))
        abort();
    if (full > 0)
        check_header(h, data, (size_t)full);
    for (size_t n = 0; n < size && n <= PREFIXES_ALL; n++)
        check_prefix(data, n, versions, full, h);
    for (size_t n = PREFIXES_ALL; n < size; n += size / PREFIX_SAMPLE + 1)
        check_prefix(data, n, versions, full, h);
    if (full > 0 && (size_t)full > PREFIXES_ALL)
        check_prefix(data, (size_t)full - 1, versions, full, h);
    return full;
}

/* Under only the version the input's first byte announces, or only the other. */
static void check_versions(const uint8_t *data, size_t size)
{
    static cio_proxy_header_t any, mine, other;
    ssize_t r = run(data, size, CIO_PROXY_ANY, &any);
    unsigned v = size > 0 && data[0] == 'P' ? CIO_PROXY_V1 : CIO_PROXY_V2;
    ssize_t r_mine = run(data, size, v, &mine),
            r_other = run(data, size, CIO_PROXY_ANY ^ v, &other);
    if (r == CIO_EPROXYVERSION || r_mine != r)
        abort();
    if (r == CIO_EPROXYMISSING ? r_other != r : r_other != 0 && r_other != CIO_EPROXYVERSION)
        abort();
    if ((r > 0 || r == CIO_EPROXY) && r_other != CIO_EPROXYVERSION)
        abort();
    if (r > 0 && !same_header(&any, &mine))
        abort();
}

/* The socket address of range @p c's own address. */
static void range_address(const cio_cidr_t *c, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    ss->ss_family = (sa_family_t)c->family;
    if (c->family == AF_INET)
        memcpy(&((struct sockaddr_in *)ss)->sin_addr, c->addr, 4);
    else
        memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, c->addr, 16);
}

/* A range read from the text: well-formed, matching its own address, and not past its prefix. */
static void check_range(const cio_cidr_t *c)
{
    static const uint8_t zero[16];
    unsigned max = c->family == AF_INET ? 32 : 128;
    struct sockaddr_storage ss;
    if ((c->family != AF_INET && c->family != AF_INET6) || c->prefix > max ||
        (c->family == AF_INET && memcmp(c->addr + 4, zero, 12) != 0))
        abort();
    for (unsigned bit = c->prefix; bit < max; bit++)
        if (c->addr[bit / 8] & (0x80 >> (bit % 8)))
            abort(); /* host bits are refused */
    range_address(c, &ss);
    if (!cio_cidr_match(c, (struct sockaddr *)&ss))
        abort();
    if (c->prefix > 0) {
        uint8_t *a = c->family == AF_INET ? (uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr
                                          : ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        a[(c->prefix - 1) / 8] ^= (uint8_t)(0x80 >> ((c->prefix - 1) % 8));
        if (cio_cidr_match(c, (struct sockaddr *)&ss))
            abort();
    }
}

/* The input as text: a range exactly when inet_pton() reads the part before any '/'. */
static void check_cidr(const uint8_t *data, size_t size)
{
    char text[CIDR_MAX + 1], addr[CIDR_MAX + 1];
    uint8_t bin[16];
    cio_cidr_t c;
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = cio_cidr_parse(text, &c);
    if (rc != 0 && rc != -EINVAL)
        abort();
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    bool valid = inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1;
    if (rc == 0 ? !valid : valid && !slash)
        abort();
    if (rc == 0)
        check_range(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_versions(data, size);
    if (size <= CIDR_MAX)
        check_cidr(data, size);
    return 0;
}
