/*
 * loop/proxy_parse.c: the PROXY protocol header parser, the TLV lookup and the
 * address ranges of coreio/proxy.h, after HAProxy's doc/proxy-protocol.txt.
 * Pure code: no allocation, no loop, no system call. The parser judges every
 * prefix it is given: it asks for more bytes only while they can still begin
 * an accepted header, so a bad header is refused as soon as it is one, and the
 * verdict on a stream never depends on how it was cut into reads.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "coreio/error.h"
#include "coreio/proxy.h"

#define V1_SIG_LEN    5  /* "PROXY" */
#define V2_SIG_LEN    12 /* then, one byte each: version and command, family and transport */
#define V2_FAM_AT     13
#define V2_LEN_AT     14 /* 16-bit length of what follows the fixed part */
#define V2_FIXED_LEN  16
#define TLV_HEAD_LEN  3    /* type, 16-bit length */
#define SSL_HEAD_LEN  5    /* client byte, 32-bit verify */
#define UNIQUE_ID_MAX 128  /* the spec's bound on PP2_TYPE_UNIQUE_ID */
#define UNIX_PATH_LEN 108  /* a v2 AF_UNIX address */
#define SSL_SUB_FIRST 0x21 /* the PP2_SUBTYPE_SSL_* block */
#define SSL_SUB_LAST  0x2f

/* An IPv4-mapped IPv6 address: these 12 bytes, then the IPv4 one. */
static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                           0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The seven family and transport bytes a v2 PROXY command may carry. */
static const struct v2_family {
    uint8_t byte;
    int family; /* AF_UNSPEC: the receiver keeps the socket's addresses */
    int socktype;
    uint16_t addr_len; /* the address block before the TLVs */
} v2_families[] = {
    {0x00, AF_UNSPEC, 0, 0},          {0x11, AF_INET, SOCK_STREAM, 12},
    {0x12, AF_INET, SOCK_DGRAM, 12},  {0x21, AF_INET6, SOCK_STREAM, 36},
    {0x22, AF_INET6, SOCK_DGRAM, 36}, {0x31, AF_UNIX, SOCK_STREAM, 216},
    {0x32, AF_UNIX, SOCK_DGRAM, 216},
};

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- address text ------------------------------------------------------- */

/* The decimal s[0..n), without leading zeros, at most @p max: its value, or -1. */
static long parse_dec(const char *s, size_t n, long max)
{
    long v = 0;
    if (n == 0 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    return v;
}

/*
 * Read the dotted quad s[0..n) into out[0..4): 0, or -EINVAL. With @p
 * partial, accept any beginning of one. Each number alone is already either
 * valid or not (more digits only grow it), which makes prefixes easy.
 */
static int parse_ip4(const char *s, size_t n, bool partial, uint8_t *out)
{
    size_t at = 0;
    for (int part = 0;; part++) {
        const char *dot = memchr(s + at, '.', n - at);
        size_t end = dot ? (size_t)(dot - s) : n;
        long v = parse_dec(s + at, end - at, 255);
        if (v < 0 && !(partial && !dot && end == at))
            return -EINVAL;
        if (part == 3 && dot)
            return -EINVAL;
        out[part] = v < 0 ? 0 : (uint8_t)v;
        if (!dot)
            return partial || part == 3 ? 0 : -EINVAL;
        at = end + 1;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* IPv6 text as read so far: its 16-bit groups, and where "::" stood (-1: nowhere). */
typedef struct ip6_text {
    uint16_t g[8];
    int n;
    int gap;
} ip6_text_t;

/* The most groups @p t may reach: "::" stands for at least one. */
static int ip6_room(const ip6_text_t *t)
{
    return t->gap >= 0 ? 7 : 8;
}

/*
 * The embedded IPv4 s[0..n) that ends IPv6 text @p t: 0, or -EINVAL. Nothing
 * comes after it, so even a beginning of one must leave the groups complete.
 */
static int ip6_tail4(const char *s, size_t n, bool partial, ip6_text_t *t)
{
    uint8_t q[4] = {0};
    if ((t->gap < 0 ? t->n + 2 != 8 : t->n + 2 > 7) || parse_ip4(s, n, partial, q) < 0)
        return -EINVAL;
    t->g[t->n++] = (uint16_t)(q[0] << 8 | q[1]);
    t->g[t->n++] = (uint16_t)(q[2] << 8 | q[3]);
    return 0;
}

/* Read the groups of s[0..n) (after a leading "::", if any) into @p t: 0, or -EINVAL. */
static int ip6_groups(const char *s, size_t n, size_t at, bool partial, ip6_text_t *t)
{
    while (at < n) {
        size_t end = at;
        unsigned v = 0;
        while (end < n && hex_digit(s[end]) >= 0 && end - at < 5)
            v = v << 4 | (unsigned)hex_digit(s[end++]);
        if (end < n && s[end] == '.' && at > 0)
            return ip6_tail4(s + at, n - at, partial, t);
        if (end == at || end - at > 4 || t->n >= ip6_room(t))
            return -EINVAL;
        t->g[t->n++] = (uint16_t)v;
        if (end == n)
            return 0;
        if (s[end] != ':')
            return -EINVAL;
        at = end + 1;
        if (at == n) /* a last lone ':' wants one more group, or a second ':' */
            return partial && t->n < ip6_room(t) ? 0 : -EINVAL;
        if (s[at] == ':') {
            if (t->gap >= 0)
                return -EINVAL;
            t->gap = t->n;
            at++;
        }
    }
    return 0;
}

/*
 * Read the IPv6 text s[0..n) (RFC 4291 2.2, as inet_pton() does: groups of
 * one to four hex digits, one "::" for at least one group, an IPv4 tail) into
 * out[0..16): 0, or -EINVAL. With @p partial, accept any beginning of one.
 */
static int parse_ip6(const char *s, size_t n, bool partial, uint8_t *out)
{
    ip6_text_t t = {.n = 0, .gap = -1};
    size_t at = 0;
    if (n > 0 && s[0] == ':') {
        if (n == 1)
            return partial ? 0 : -EINVAL;
        if (s[1] != ':')
            return -EINVAL;
        t.gap = 0;
        at = 2;
    }
    if (ip6_groups(s, n, at, partial, &t) < 0 || t.n > ip6_room(&t))
        return -EINVAL;
    if (partial)
        return 0;
    if (t.gap < 0 ? t.n != 8 : t.n > 7)
        return -EINVAL;
    int zeros = 8 - t.n;
    for (int i = 0, j = 0; i < 8; i++) {
        bool in_gap = t.gap >= 0 && i >= t.gap && i < t.gap + zeros;
        uint16_t g = in_gap ? 0 : t.g[j++];
        out[2 * i] = (uint8_t)(g >> 8);
        out[2 * i + 1] = (uint8_t)g;
    }
    return 0;
}

/* ---- version 1 ---------------------------------------------------------- */

/* Fill @p ss with @p family's address @p addr (4 or 16 bytes) and @p port. */
static socklen_t set_inet(struct sockaddr_storage *ss, int family, const uint8_t *addr,
                          unsigned port)
{
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, addr, 4);
        sin->sin_port = htons((uint16_t)port);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, addr, 16);
    sin6->sin6_port = htons((uint16_t)port);
    return sizeof(*sin6);
}

/* The v1 protocol word s[0..n): AF_INET, AF_INET6, AF_UNSPEC (UNKNOWN), or -1. */
static int v1_proto(const char *s, size_t n, bool whole)
{
    static const struct {
        const char *word;
        int family;
    } words[] = {{"TCP4", AF_INET}, {"TCP6", AF_INET6}, {"UNKNOWN", AF_UNSPEC}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t wl = strlen(words[i].word);
        if ((whole ? n == wl : n <= wl) && memcmp(s, words[i].word, n) == 0)
            return words[i].family;
    }
    return -1;
}

/* The v1 fields after the protocol word, in order. */
enum { V1_SRC, V1_DST, V1_SPORT, V1_DPORT };

/* Field @p k, s[0..n) (whole, or the beginning of one), into @p h: 0, or -EINVAL. */
static int v1_field(int k, int family, const char *s, size_t n, bool whole, cio_proxy_header_t *h,
                    uint8_t addr[2][16])
{
    if (k == V1_SRC || k == V1_DST) {
        uint8_t *a = addr[k - V1_SRC];
        return family == AF_INET ? parse_ip4(s, n, !whole, a) : parse_ip6(s, n, !whole, a);
    }
    long port = parse_dec(s, n, 65535);
    if (port < 0)
        return whole || n > 0 ? -EINVAL : 0;
    if (whole && k == V1_SPORT)
        h->src_len = set_inet(&h->src, family, addr[0], (unsigned)port);
    else if (whole)
        h->dst_len = set_inet(&h->dst, family, addr[1], (unsigned)port);
    return 0;
}

/*
 * The v1 line after "PROXY", f[0..n) without its CRLF (@p whole) or the part
 * of it read so far, into @p h: 0 if it is (or may begin) a valid line, or
 * CIO_EPROXY. Fields are single-space separated; UNKNOWN ends the checks.
 */
static int v1_fields(const char *f, size_t n, bool whole, cio_proxy_header_t *h)
{
    uint8_t addr[2][16];
    int family = AF_UNSPEC;
    if (n == 0)
        return whole ? CIO_EPROXY : 0;
    if (f[0] != ' ')
        return CIO_EPROXY;
    for (int k = -1, at = 1;; k++) {
        const char *sp = memchr(f + at, ' ', n - (size_t)at);
        size_t end = sp ? (size_t)(sp - f) : n;
        bool tok_whole = sp || whole;
        if (k < 0) {
            family = v1_proto(f + at, end - (size_t)at, tok_whole);
            if (family < 0)
                return CIO_EPROXY;
            if (family == AF_UNSPEC && tok_whole)
                return 0; /* the spec: ignore whatever UNKNOWN's line holds */
        } else if (v1_field(k, family, f + at, end - (size_t)at, tok_whole, h, addr) < 0) {
            return CIO_EPROXY;
        }
        if (!tok_whole)
            return 0;
        if (k == V1_DPORT)
            return sp ? CIO_EPROXY : 0; /* a field too many, or the line */
        if (!sp)
            return CIO_EPROXY; /* fields missing */
        at = (int)end + 1;
    }
}

/*
 * The v1 header at s[0..len) (which begins "PROXY"): its length with *@p h
 * filled, 0 while it may still become one, or CIO_EPROXY. The CRLF must come
 * within CIO_PROXY_V1_MAX bytes; a CR or LF alone anywhere is an error.
 */
static ssize_t parse_v1(const char *s, size_t len, cio_proxy_header_t *h)
{
    size_t cr = len, scan = len < CIO_PROXY_V1_MAX - 1 ? len : CIO_PROXY_V1_MAX - 1;
    for (size_t i = V1_SIG_LEN; i < scan && cr == len; i++) {
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len && s[i + 1] != '\n'))
            return CIO_EPROXY;
        if (s[i] == '\r')
            cr = i;
    }
    if (cr == len && len >= CIO_PROXY_V1_MAX - 1)
        return CIO_EPROXY; /* no room left for the CRLF */
    int rc = v1_fields(s + V1_SIG_LEN, cr - V1_SIG_LEN, cr < len, h);
    if (rc < 0 || cr + 1 >= len)
        return rc; /* an error, or a line (perhaps with its CR) that needs more */
    h->version = 1;
    h->socktype = SOCK_STREAM;
    h->local = h->src_len == 0;
    return (ssize_t)cr + 2;
}

/* ---- version 2 ---------------------------------------------------------- */

/* The CRC32C (Castagnoli, RFC 4960 appendix B) of p[0..n), continuing from @p crc. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
        0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
        0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
    };
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return crc;
}

/* Whether header p[0..len) checks against the CRC32C value at p[at..at+4). */
static bool crc_matches(const uint8_t *p, size_t len, size_t at)
{
    static const uint8_t zeros[4];
    uint32_t crc = crc32c(0xffffffffu, p, at);
    crc = crc32c(crc, zeros, sizeof(zeros));
    crc = crc32c(crc, p + at + 4, len - at - 4);
    return (crc ^ 0xffffffffu) == be32(p + at);
}

/* What a TLV walk found: where the CRC32C value lies (0: nowhere). */
typedef struct tlv_walk {
    size_t crc_at;
} tlv_walk_t;

static int walk_tlvs(const uint8_t *p, size_t at, size_t end, size_t have, bool sub, tlv_walk_t *w);

/*
 * Check the TLV of @p type whose value is p[at..at+vlen), of which p[0..have)
 * has arrived: 0 or CIO_EPROXY.
 */
static int check_tlv(const uint8_t *p, uint8_t type, size_t at, size_t vlen, size_t have,
                     tlv_walk_t *w)
{
    switch (type) {
    case CIO_PP2_TYPE_CRC32C:
        /* Two checksums would each cover the other: the header is ill-formed. */
        if (vlen != 4 || w->crc_at != 0)
            return CIO_EPROXY;
        w->crc_at = at;
        return 0;
    case CIO_PP2_TYPE_UNIQUE_ID:
        return vlen > UNIQUE_ID_MAX ? CIO_EPROXY : 0;
    case CIO_PP2_TYPE_SSL:
        if (vlen < SSL_HEAD_LEN)
            return CIO_EPROXY;
        return walk_tlvs(p, at + SSL_HEAD_LEN, at + vlen, have, true, w);
    default:
        return 0;
    }
}

/*
 * Walk the TLVs of p[at..end), of which p[0..have) has arrived: 0 if what
 * arrived is well-formed so far (each TLV fits, and they fill the area
 * exactly), or CIO_EPROXY. @p sub: the SSL TLV's sub-TLVs, whose types have
 * no rules of their own.
 */
static int walk_tlvs(const uint8_t *p, size_t at, size_t end, size_t have, bool sub, tlv_walk_t *w)
{
    while (at < end) {
        if (end - at < TLV_HEAD_LEN)
            return CIO_EPROXY;
        if (have < at + TLV_HEAD_LEN)
            return 0;
        size_t vlen = be16(p + at + 1);
        if (vlen > end - at - TLV_HEAD_LEN)
            return CIO_EPROXY;
        int rc = sub ? 0 : check_tlv(p, p[at], at + TLV_HEAD_LEN, vlen, have, w);
        if (rc < 0)
            return rc;
        at += TLV_HEAD_LEN + vlen;
    }
    return 0;
}

/* Fill @p ss with the v2 AF_UNIX address at @p p (108 bytes, NUL padded); its length. */
static socklen_t set_unix(struct sockaddr_storage *ss, const uint8_t *p)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = UNIX_PATH_LEN;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, p, sizeof(sun->sun_path) < n ? sizeof(sun->sun_path) : n);
    /* A path ends at its NUL (kept, as getsockname() does); an abstract name at its last byte. */
    if (p[0] != 0)
        n = strnlen((const char *)p, n) + (memchr(p, 0, n) ? 1 : 0);
    else
        while (n > 0 && p[n - 1] == 0)
            n--;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* Fill @p h's addresses from the v2 address block @p a of family @p f. */
static void v2_addresses(const struct v2_family *f, const uint8_t *a, cio_proxy_header_t *h)
{
    size_t alen = f->family == AF_INET ? 4 : 16;
    if (f->family == AF_UNIX) {
        h->src_len = set_unix(&h->src, a);
        h->dst_len = set_unix(&h->dst, a + UNIX_PATH_LEN);
    } else if (f->family != AF_UNSPEC) {
        h->src_len = set_inet(&h->src, f->family, a, be16(a + 2 * alen));
        h->dst_len = set_inet(&h->dst, f->family, a + alen, be16(a + 2 * alen + 2));
    }
}

static const struct v2_family *v2_family(uint8_t byte)
{
    for (size_t i = 0; i < sizeof(v2_families) / sizeof(v2_families[0]); i++)
        if (v2_families[i].byte == byte)
            return &v2_families[i];
    return NULL;
}

/*
 * The v2 header at p[0..len) (which begins with the signature): its length
 * with *@p h filled, 0 while it may still become one, or CIO_EPROXY. A LOCAL
 * command's family is ignored, as the spec says; what follows its fixed part
 * is read as TLVs only with the UNSPEC family (as HAProxy sends it), and is
 * skipped unread with any other.
 */
static ssize_t parse_v2(const uint8_t *p, size_t len, cio_proxy_header_t *h)
{
    if (len <= V2_SIG_LEN)
        return 0;
    if (p[V2_SIG_LEN] >> 4 != 2 || (p[V2_SIG_LEN] & 15) > 1)
        return CIO_EPROXY;
    bool proxy = p[V2_SIG_LEN] & 1;
    if (len <= V2_FAM_AT)
        return 0;
    const struct v2_family *f = v2_family(p[V2_FAM_AT]);
    if (proxy && !f)
        return CIO_EPROXY;
    if (len < V2_FIXED_LEN)
        return 0;
    size_t body = be16(p + V2_LEN_AT), total = V2_FIXED_LEN + body;
    size_t skip = !proxy ? (p[V2_FAM_AT] == 0 ? 0 : body) : f->addr_len;
    if (skip > body)
        return CIO_EPROXY; /* too short for the family's addresses */
    size_t tlv_at = V2_FIXED_LEN + skip;
    tlv_walk_t w = {0};
    int rc = walk_tlvs(p, tlv_at, total, len < total ? len : total, false, &w);
    if (rc < 0 || len < total)
        return rc;
    if (w.crc_at != 0 && !crc_matches(p, total, w.crc_at))
        return CIO_EPROXY;
    h->version = 2;
    h->local = !proxy || f->family == AF_UNSPEC;
    h->socktype = proxy ? f->socktype : 0;
    if (proxy)
        v2_addresses(f, p + V2_FIXED_LEN, h);
    h->tlvs = total > tlv_at ? p + tlv_at : NULL;
    h->tlvs_len = total - tlv_at;
    return (ssize_t)total;
}

/* ---- the API ------------------------------------------------------------ */

/* How p[0..len) begins @p sig: -1 not at all, 0 a proper beginning, 1 whole. */
static int sig_match(const uint8_t *p, size_t len, const void *sig, size_t sig_len)
{
    size_t n = len < sig_len ? len : sig_len;
    if (memcmp(p, sig, n) != 0)
        return -1;
    return n == sig_len;
}

ssize_t cio_proxy_parse(const void *buf, size_t len, unsigned versions, cio_proxy_header_t *out)
{
    if ((!buf && len) || !out || !versions || (versions & ~(unsigned)CIO_PROXY_ANY))
        return -EINVAL;
    if (len == 0)
        return 0;
    const uint8_t *p = buf;
    int v1 = sig_match(p, len, "PROXY", V1_SIG_LEN), v2 = sig_match(p, len, v2_sig, V2_SIG_LEN);
    unsigned which = v1 >= 0 ? CIO_PROXY_V1 : CIO_PROXY_V2;
    if (v1 < 0 && v2 < 0)
        return CIO_EPROXYMISSING;
    /* A signature of a version not accepted is awaited whole: "POST" is no PROXY at all. */
    int whole = v1 >= 0 ? v1 : v2;
    if (!whole || !(versions & which))
        return whole ? CIO_EPROXYVERSION : 0;
    cio_proxy_header_t h;
    memset(&h, 0, sizeof(h));
    ssize_t n = which == CIO_PROXY_V1 ? parse_v1(buf, len, &h) : parse_v2(p, len, &h);
    if (n > 0)
        *out = h;
    return n;
}

/* The first TLV of @p type in t[0..n) into *@p v / *@p vlen: 0, or -ENOENT. */
static int find_tlv(const uint8_t *t, size_t n, uint8_t type, const uint8_t **v, size_t *vlen)
{
    for (size_t at = 0; n - at >= TLV_HEAD_LEN;) {
        size_t l = be16(t + at + 1);
        if (l > n - at - TLV_HEAD_LEN)
            break; /* not from the parser: stop at what does not fit */
        if (t[at] == type) {
            *v = t + at + TLV_HEAD_LEN;
            *vlen = l;
            return 0;
        }
        at += TLV_HEAD_LEN + l;
    }
    return -ENOENT;
}

int cio_proxy_tlv(const cio_proxy_header_t *h, uint8_t type, const void **value, size_t *len)
{
    const uint8_t *v;
    size_t vlen;
    if (!h)
        return -EINVAL;
    if (!h->tlvs)
        return -ENOENT;
    bool ssl_sub = type >= SSL_SUB_FIRST && type <= SSL_SUB_LAST;
    int rc = find_tlv(h->tlvs, h->tlvs_len, ssl_sub ? CIO_PP2_TYPE_SSL : type, &v, &vlen);
    if (rc == 0 && ssl_sub)
        rc = vlen < SSL_HEAD_LEN ? -ENOENT
                                 : find_tlv(v + SSL_HEAD_LEN, vlen - SSL_HEAD_LEN, type, &v, &vlen);
    if (rc < 0)
        return rc;
    if (value)
        *value = v;
    if (len)
        *len = vlen;
    return 0;
}

/* ---- address ranges ----------------------------------------------------- */

/* Whether a[] and b[] agree on their first @p bits bits. */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    if (memcmp(a, b, bits / 8) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff00 >> (bits % 8));
    return bits % 8 == 0 || ((a[bits / 8] ^ b[bits / 8]) & mask) == 0;
}

/* An IPv4-mapped IPv6 range (::ffff:0:0/96 and within) is kept as the IPv4 one it is. */
static void unmap_range(cio_cidr_t *c)
{
    if (c->family != AF_INET6 || c->prefix < 96 || memcmp(c->addr, v4_mapped, 12) != 0)
        return;
    memmove(c->addr, c->addr + 12, 4);
    memset(c->addr + 4, 0, 12);
    c->family = AF_INET;
    c->prefix -= 96;
}

int cio_cidr_parse(const char *text, cio_cidr_t *out)
{
    cio_cidr_t c;
    if (!text || !out)
        return -EINVAL;
    memset(&c, 0, sizeof(c));
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (parse_ip4(text, alen, false, c.addr) == 0)
        c.family = AF_INET;
    else if (parse_ip6(text, alen, false, c.addr) == 0)
        c.family = AF_INET6;
    else
        return -EINVAL;
    long max = c.family == AF_INET ? 32 : 128;
    long prefix = slash ? parse_dec(slash + 1, strlen(slash + 1), max) : max;
    if (prefix < 0)
        return -EINVAL;
    c.prefix = (unsigned)prefix;
    /* Host bits past the prefix: the range is not what was meant. */
    uint8_t net[16] = {0};
    memcpy(net, c.addr, c.prefix / 8);
    if (c.prefix % 8)
        net[c.prefix / 8] = c.addr[c.prefix / 8] & (uint8_t)(0xff00 >> (c.prefix % 8));
    if (memcmp(net, c.addr, sizeof(net)) != 0)
        return -EINVAL;
    unmap_range(&c);
    *out = c;
    return 0;
}

/* The IP address of @p sa into a[]: AF_INET (also for an IPv4-mapped IPv6 one), AF_INET6, or 0. */
static int peer_address(const struct sockaddr *sa, uint8_t *a)
{
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    bool v4 = memcmp(b, v4_mapped, sizeof(v4_mapped)) == 0;
    memcpy(a, v4 ? b + 12 : b, v4 ? 4 : 16);
    return v4 ? AF_INET : AF_INET6;
}

bool cio_cidr_match(const cio_cidr_t *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    if (!c || !sa)
        return false;
    int family = peer_address(sa, a);
    unsigned max = family == AF_INET ? 32 : 128;
    return family != 0 && family == c->family && c->prefix <= max &&
           same_prefix(a, c->addr, c->prefix);
}

bool cio_proxy_trusted(const cio_proxy_opts_t *o, const struct sockaddr *sa)
{
    if (!o || !sa || !o->trusted || o->ntrusted == 0)
        return false;
    if (sa->sa_family == AF_UNIX)
        return true; /* only this machine reaches a Unix socket */
    for (size_t i = 0; i < o->ntrusted; i++)
        if (cio_cidr_match(&o->trusted[i], sa))
            return true;
    return false;
}
