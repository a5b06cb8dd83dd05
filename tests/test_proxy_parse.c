/*
 * tests/test_proxy_parse.c: the PROXY protocol parser, TLV lookup and address
 * ranges of coreio/proxy.h (loop/proxy_parse.c), without sockets. Every valid
 * form of versions 1 and 2, each waited for to its last byte and not a byte
 * past it; malformed headers refused as soon as they are; version filtering;
 * TLVs and SSL sub-TLVs; CRC32C; CIDR text and matching, and trust.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/un.h>

#include "testutil.h"

/*
 * Headers made with Python's struct and socket modules (and a bitwise CRC32C
 * checked against RFC 3720's "123456789" value), so that the parser is not
 * judged by a writer sharing its mistakes.
 */
/* 28 bytes */
static const uint8_t v2_tcp4[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
    0x00, 0x0c, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0xdc, 0x04, 0x01, 0xbb,
};
/* 28 bytes */
static const uint8_t v2_udp4[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x12,
    0x00, 0x0c, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x14, 0xe9, 0x00, 0x35,
};
/* 52 bytes */
static const uint8_t v2_tcp6[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21,
    0x21, 0x00, 0x24, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x20, 0xfb,
};
/* 52 bytes */
static const uint8_t v2_udp6[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21,
    0x22, 0x00, 0x24, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xff, 0xff, 0xc0, 0x00, 0x02, 0x09, 0x00, 0x01, 0xff, 0xff,
};
/* 232 bytes */
static const uint8_t v2_unix_stream[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x31, 0x00, 0xd8,
    0x2f, 0x74, 0x6d, 0x70, 0x2f, 0x63, 0x2e, 0x73, 0x6f, 0x63, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2f, 0x72, 0x75, 0x6e,
    0x2f, 0x63, 0x6f, 0x72, 0x65, 0x69, 0x6f, 0x2e, 0x73, 0x6f, 0x63, 0x6b, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
/* 232 bytes */
static const uint8_t v2_unix_dgram[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x32, 0x00, 0xd8,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x6f, 0x72,
    0x65, 0x69, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
/* 16 bytes */
static const uint8_t v2_local[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00,
};
/* 23 bytes */
static const uint8_t v2_local_crc[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
    0x20, 0x00, 0x00, 0x07, 0x03, 0x00, 0x04, 0xa9, 0xb8, 0x7e, 0x8f,
};
/* 30 bytes */
static const uint8_t v2_unspec[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x00, 0x00,
    0x0e, 0x02, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
};
/* 139 bytes */
static const uint8_t v2_tlvs_crc[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x7b,
    0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0xdc, 0x04, 0x01, 0xbb, 0x01, 0x00, 0x02, 0x68,
    0x32, 0x02, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x05,
    0x00, 0x10, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x20, 0x00, 0x39, 0x07, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x07, 0x54, 0x4c, 0x53,
    0x76, 0x31, 0x2e, 0x33, 0x22, 0x00, 0x0e, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x2e, 0x65, 0x78,
    0x61, 0x6d, 0x70, 0x6c, 0x65, 0x23, 0x00, 0x16, 0x54, 0x4c, 0x53, 0x5f, 0x41, 0x45, 0x53, 0x5f,
    0x31, 0x32, 0x38, 0x5f, 0x47, 0x43, 0x4d, 0x5f, 0x53, 0x48, 0x41, 0x32, 0x35, 0x36, 0x04, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x04, 0xe8, 0xa6, 0x6c, 0x38,
};
/* 139 bytes */
static const uint8_t v2_tlvs_bad_crc[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x7b,
    0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0xdc, 0x04, 0x01, 0xbb, 0x01, 0x00, 0x02, 0x68,
    0x32, 0x02, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x05,
    0x00, 0x10, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x20, 0x00, 0x39, 0x07, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x07, 0x54, 0x4c, 0x53,
    0x76, 0x31, 0x2e, 0x33, 0x22, 0x00, 0x0e, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x2e, 0x65, 0x78,
    0x61, 0x6d, 0x70, 0x6c, 0x65, 0x23, 0x00, 0x16, 0x54, 0x4c, 0x53, 0x5f, 0x41, 0x45, 0x53, 0x5f,
    0x31, 0x32, 0x38, 0x5f, 0x47, 0x43, 0x4d, 0x5f, 0x53, 0x48, 0x41, 0x32, 0x35, 0x36, 0x04, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x04, 0xe8, 0xa6, 0x6c, 0x39,
};

/* A header under test: its name, bytes and length. */
typedef struct sample {
    const char *name;
    const uint8_t *p;
    size_t len;
} sample_t;

/* A sample_t's fields for an array @p a, or a string literal @p s. */
#define SAMPLE(a)      #a, a, sizeof(a)
#define TEXT(s)        s, (const uint8_t *)(s), sizeof(s) - 1
#define PARSE_WHOLE(a) parse_whole(&(sample_t){SAMPLE(a)})

static const sample_t valid_headers[] = {
    {TEXT("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n")},
    {TEXT("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n")},
    {TEXT("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 40000 8443\r\n")},
    {TEXT("PROXY TCP6 FFFF:ffff:FFFF:ffff:FFFF:ffff:FFFF:ffff 0:0:0:0:0:0:0:1 1 2\r\n")},
    {TEXT("PROXY UNKNOWN\r\n")},
    {TEXT("PROXY UNKNOWN 2001:db8::1 2001:db8::2 1 2\r\n")},
    {SAMPLE(v2_tcp4)},
    {SAMPLE(v2_udp4)},
    {SAMPLE(v2_tcp6)},
    {SAMPLE(v2_udp6)},
    {SAMPLE(v2_unix_stream)},
    {SAMPLE(v2_unix_dgram)},
    {SAMPLE(v2_local)},
    {SAMPLE(v2_local_crc)},
    {SAMPLE(v2_unspec)},
    {SAMPLE(v2_tlvs_crc)},
};

/* Parse @p n bytes of @p p accepting @p versions into *@p h, which starts zeroed. */
static ssize_t parse(const void *p, size_t n, unsigned versions, cio_proxy_header_t *h)
{
    memset(h, 0, sizeof(*h));
    return cio_proxy_parse(p, n, versions, h);
}

static const char *rc_name(ssize_t rc)
{
    return rc < 0 ? cio_err_name((int)rc) : rc == 0 ? "need more" : "a header";
}

/* @p n bytes of @p p, under @p versions, give exactly @p want. */
static void expect_rc(const void *p, size_t n, unsigned versions, ssize_t want, const char *what)
{
    cio_proxy_header_t h;
    ssize_t rc = parse(p, n, versions, &h);
    ck_assert_msg(rc == want, "%s (%zu bytes): got %zd (%s), expected %zd (%s)", what, n, rc,
                  rc_name(rc), want, rc_name(want));
}

/* The text @p s, whole, is malformed; so is every longer text that begins with it. */
static void expect_bad_text(const char *s)
{
    expect_rc(s, strlen(s), CIO_PROXY_ANY, CIO_EPROXY, s);
    char more[256];
    snprintf(more, sizeof(more), "%s 1 2 3\r\nGET / HTTP/1.1\r\n", s);
    expect_rc(more, strlen(more), CIO_PROXY_ANY, CIO_EPROXY, more);
}

/* Parse the whole header @p s and check that it is exactly its bytes. */
static cio_proxy_header_t parse_whole(const sample_t *s)
{
    cio_proxy_header_t h;
    ssize_t rc = parse(s->p, s->len, CIO_PROXY_ANY, &h);
    ck_assert_msg(rc == (ssize_t)s->len, "%s: got %zd (%s), expected %zu", s->name, rc, rc_name(rc),
                  s->len);
    return h;
}

/* A v2 header with the given version/command and family bytes and body into out[]. */
static size_t v2_make(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t n)
{
    memcpy(out, v2_local, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n > 0)
        memcpy(out + 16, body, n);
    return 16 + n;
}

static void check_in4(const struct sockaddr_storage *ss, socklen_t len, const char *addr,
                      unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char text[INET_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)));
    ck_assert_str_eq(text, addr);
    ck_assert_uint_eq(ntohs(sin->sin_port), port);
}

static void check_in6(const struct sockaddr_storage *ss, socklen_t len, const char *addr,
                      unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char text[INET6_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)));
    ck_assert_str_eq(text, addr);
    ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
}

/* @p ss is AF_UNIX with the @p n bytes of @p path as its significant sun_path. */
static void check_un(const struct sockaddr_storage *ss, socklen_t len, const char *path, size_t n)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
    ck_assert_int_eq(ss->ss_family, AF_UNIX);
    ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + n);
    ck_assert_mem_eq(sun->sun_path, path, n);
}

static void check_tlv_value(const cio_proxy_header_t *h, uint8_t type, const void *want, size_t n)
{
    const void *v = NULL;
    size_t len = 0;
    int rc = cio_proxy_tlv(h, type, &v, &len);
    ck_assert_msg(rc == 0, "TLV 0x%02x: %s", type, cio_err_name(rc));
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(v, want, n);
    ck_assert(v >= (const void *)h->tlvs && (const uint8_t *)v + n <= h->tlvs + h->tlvs_len);
}

/* ---- version 1 ---------------------------------------------------------- */

START_TEST(test_proxy_parse_v1_tcp4_gives_both_addresses_and_ports)
{
    cio_proxy_header_t h = parse_whole(&valid_headers[0]);
    ck_assert_uint_eq(h.version, 1);
    ck_assert(!h.local);
    ck_assert_int_eq(h.socktype, SOCK_STREAM);
    check_in4(&h.src, h.src_len, "192.0.2.1", 56324);
    check_in4(&h.dst, h.dst_len, "198.51.100.7", 443);
    ck_assert_ptr_null(h.tlvs);
    ck_assert_uint_eq(h.tlvs_len, 0);
    h = parse_whole(&valid_headers[1]);
    check_in4(&h.src, h.src_len, "0.0.0.0", 0);
    check_in4(&h.dst, h.dst_len, "255.255.255.255", 65535);
}
END_TEST

START_TEST(test_proxy_parse_v1_tcp6_gives_both_addresses_and_ports)
{
    cio_proxy_header_t h = parse_whole(&valid_headers[2]);
    ck_assert_uint_eq(h.version, 1);
    ck_assert(!h.local);
    check_in6(&h.src, h.src_len, "2001:db8::1", 40000);
    check_in6(&h.dst, h.dst_len, "::ffff:192.0.2.9", 8443);
    h = parse_whole(&valid_headers[3]);
    check_in6(&h.src, h.src_len, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
    check_in6(&h.dst, h.dst_len, "::1", 2);
    static const char *forms[] = {"::",
                                  "1::",
                                  "::1:2:3:4:5:6:7",
                                  "1:2:3:4:5:6:7::",
                                  "1:2:3:4:5:6::8",
                                  "::1.2.3.4",
                                  "1:2:3:4:5:6:1.2.3.4",
                                  "0001:02:3::a:B:c"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char line[128];
        uint8_t want[16];
        int n = snprintf(line, sizeof(line), "PROXY TCP6 %s ::2 1 2\r\n", forms[i]);
        expect_rc(line, (size_t)n, CIO_PROXY_V1, n, line);
        parse(line, (size_t)n, CIO_PROXY_V1, &h);
        ck_assert_int_eq(inet_pton(AF_INET6, forms[i], want), 1);
        ck_assert_mem_eq(&((struct sockaddr_in6 *)&h.src)->sin6_addr, want, 16);
    }
}
END_TEST

START_TEST(test_proxy_parse_v1_unknown_with_or_without_addresses_is_local)
{
    for (int i = 4; i <= 5; i++) {
        cio_proxy_header_t h = parse_whole(&valid_headers[i]);
        ck_assert_uint_eq(h.version, 1);
        ck_assert(h.local);
        ck_assert_int_eq(h.socktype, SOCK_STREAM);
        ck_assert_uint_eq(h.src_len, 0);
        ck_assert_uint_eq(h.dst_len, 0);
    }
    /* The spec: whatever UNKNOWN's line holds before its CRLF is ignored. */
    const char *s = "PROXY UNKNOWN whatever \x01 it\tholds  \r\n";
    expect_rc(s, strlen(s), CIO_PROXY_ANY, (ssize_t)strlen(s), s);
}
END_TEST

START_TEST(test_proxy_parse_v1_line_of_107_bytes_is_read_and_one_more_is_refused)
{
    char line[128];
    const char *a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    int n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 65535\r\n", a, a);
    ck_assert_int_eq(n, CIO_PROXY_V1_MAX);
    expect_rc(line, (size_t)n, CIO_PROXY_ANY, n, "107 bytes");
    n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s 65535 65535\r\n", a, a);
    ck_assert_int_eq(n, 104);
    expect_rc(line, (size_t)n, CIO_PROXY_ANY, n, "TCP6, longest");
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 65535 \r\n", a, a);
    ck_assert_int_eq(n, CIO_PROXY_V1_MAX + 1);
    expect_rc(line, (size_t)n, CIO_PROXY_ANY, CIO_EPROXY, "108 bytes");
    /* Refused once 106 bytes hold no CR: the CRLF could no longer fit. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    expect_rc(line, 105, CIO_PROXY_ANY, 0, "105 bytes, no CR");
    expect_rc(line, 106, CIO_PROXY_ANY, CIO_EPROXY, "106 bytes, no CR");
    line[105] = '\r';
    expect_rc(line, 106, CIO_PROXY_ANY, 0, "CR as the 106th byte");
    line[106] = '\n';
    expect_rc(line, 107, CIO_PROXY_ANY, 107, "CRLF ends at 107");
}
END_TEST

START_TEST(test_proxy_parse_v1_bad_fields_are_refused)
{
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.01 198.51.100.7 1 2", /* leading zeros */
        "PROXY TCP4 192.0.2.1 198.51.100.7 01 2",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 00",
        "PROXY TCP4 192.0.2.256 198.51.100.7 1 2", /* out of range */
        "PROXY TCP4 192.0.2.1 198.51.100.7 65536 2",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 99999999999999999999",
        "PROXY TCP4 192.0.2 198.51.100.7 1 2", /* not four numbers */
        "PROXY TCP4 192.0.2.1.5 198.51.100.7 1 2",
        "PROXY TCP4 192.0.2. 198.51.100.7 1 2",
        "PROXY TCP4 0x1.0.0.1 198.51.100.7 1 2",
        "PROXY TCP4 ::1 198.51.100.7 1 2", /* the other family */
        "PROXY TCP6 192.0.2.1 ::1 1 2",
        "PROXY TCP6 ::1 ::1:: 1 2", /* IPv6 that is not */
        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2",
        "PROXY TCP6 1::2::3 ::1 1 2",
        "PROXY TCP6 12345::1 ::1 1 2",
        "PROXY TCP6 :1 ::1 1 2",
        "PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2",
        "PROXY TCP6 ::1.2.3.04 ::1 1 2",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1", /* fields missing or extra */
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3",
        "PROXY TCP4 192.0.2.1  198.51.100.7 1 2",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 ",
        "PROXY TCP4",
        "PROXY TCP4 ",
        "PROXY TCP4 192.0.2.1 198.51.100.7 +1 2",
        "PROXY TCP4 192.0.2.1 198.51.100.7 -1 2",
        "PROXY TCP4\t192.0.2.1 198.51.100.7 1 2",
        "PROXY tcp4 192.0.2.1 198.51.100.7 1 2", /* words */
        "PROXY TCP5 192.0.2.1 198.51.100.7 1 2",
        "PROXY UDP4 192.0.2.1 198.51.100.7 1 2",
        "PROXY UNKNOWNX",
        "PROXY",
        "PROXY ",
        "PROXYTCP4 192.0.2.1 198.51.100.7 1 2",
        "PROXY  UNKNOWN",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[160];
        int n = snprintf(line, sizeof(line), "%s\r\n", bad[i]);
        expect_rc(line, (size_t)n, CIO_PROXY_ANY, CIO_EPROXY, line);
        expect_rc(line, (size_t)n, CIO_PROXY_V1, CIO_EPROXY, line);
    }
}
END_TEST

START_TEST(test_proxy_parse_v1_bad_field_is_refused_before_the_line_ends)
{
    expect_bad_text("PROXY TCP4 256");
    expect_bad_text("PROXY TCP4 01");
    expect_bad_text("PROXY TCP4 1.2.3.4.");
    expect_bad_text("PROXY TCP4 1.2.3.4 5.6.7.8 65536");
    expect_bad_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 00");
    expect_bad_text("PROXY TCP5");
    expect_bad_text("PROXY UNKNOWNX");
    expect_bad_text("PROXY TCP6 1:2:3:4:5:6:7:8:");
    expect_bad_text("PROXY TCP6 1::2:3:4:5:6:7:");
    expect_bad_text("PROXY TCP6 :::");
    expect_bad_text("PROXY TCP6 g");
    expect_bad_text("PROXY TCP6 1:2:3:4:5:6:7:1.");
    expect_bad_text("PROXYX");
    /* Beginnings of valid fields wait. */
    static const char *wait[] = {"PROXY TCP6 1:2:3:4:5:6:7:",
                                 "PROXY TCP6 1:2:3:4:5:6:1.",
                                 "PROXY TCP6 ::ffff:1.2.",
                                 "PROXY TCP6 1:",
                                 "PROXY TCP6 :",
                                 "PROXY TCP4 1.2.3.4 5.6.7.8 6553",
                                 "PROXY UNK",
                                 "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"};
    for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
        expect_rc(wait[i], strlen(wait[i]), CIO_PROXY_ANY, 0, wait[i]);
}
END_TEST

START_TEST(test_proxy_parse_v1_lone_cr_or_lf_is_refused)
{
    static const char *bad[] = {
        "PROXY UNKNOWN\n",
        "PROXY UNKNOWN\rX",
        "PROXY UNKNOWN a\rb\r\n",
        "PROXY UNKNOWN a\nb\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\r\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 1\r",
        "PROXY\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rc(bad[i], strlen(bad[i]), CIO_PROXY_ANY, CIO_EPROXY, bad[i]);
}
END_TEST

/* Whether some @p text + (up to @p left characters of @p alphabet) is an address of @p family. */
static bool completes(int family, char *text, size_t len, const char *alphabet, int left)
{
    uint8_t bin[16];
    text[len] = '\0';
    if (inet_pton(family, text, bin) == 1)
        return true;
    for (const char *c = alphabet; left > 0 && *c; c++) {
        text[len] = *c;
        if (completes(family, text, len + 1, alphabet, left - 1))
            return true;
    }
    return false;
}

/*
 * Every text of up to @p max characters of @p alphabet as a v1 address field:
 * a whole field is read exactly when inet_pton() reads it, and a field still
 * arriving waits exactly when it can still become one (some completion of up
 * to @p depth characters of @p fill reaches every address these texts begin).
 */
static void check_every_field(int family, const char *alphabet, size_t max, const char *fill,
                              int depth)
{
    size_t k = strlen(alphabet), count = 1;
    for (size_t len = 0; len <= max; len++, count *= k) {
        for (size_t i = 0; i < count; i++) {
            char text[32], line[128];
            uint8_t bin[16];
            for (size_t j = 0, v = i; j < len; j++, v /= k)
                text[j] = alphabet[v % k];
            text[len] = '\0';
            const char *word = family == AF_INET ? "TCP4" : "TCP6";
            int n = snprintf(line, sizeof(line), "PROXY %s %s", word, text);
            bool can = completes(family, text, len, fill, depth);
            text[len] = '\0';
            expect_rc(line, (size_t)n, CIO_PROXY_V1, can ? 0 : CIO_EPROXY, line);
            n = snprintf(line, sizeof(line), "PROXY %s %s %s 1 2\r\n", word, text, text);
            bool whole = inet_pton(family, text, bin) == 1;
            expect_rc(line, (size_t)n, CIO_PROXY_V1, whole ? n : CIO_EPROXY, line);
        }
    }
}

START_TEST(test_proxy_parse_v1_short_addresses_agree_with_inet_pton_whole_and_in_part)
{
    check_every_field(AF_INET, "0256.", 6, "0.", 7);
    check_every_field(AF_INET6, "0a1:.", 6, "0:.", 5);
}
END_TEST

/* ---- version 2 ---------------------------------------------------------- */

START_TEST(test_proxy_parse_v2_inet_stream_and_dgram_give_addresses_and_ports)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_tcp4);
    ck_assert_uint_eq(h.version, 2);
    ck_assert(!h.local);
    ck_assert_int_eq(h.socktype, SOCK_STREAM);
    check_in4(&h.src, h.src_len, "192.0.2.1", 56324);
    check_in4(&h.dst, h.dst_len, "198.51.100.7", 443);
    ck_assert_ptr_null(h.tlvs);
    ck_assert_uint_eq(h.tlvs_len, 0);
    h = PARSE_WHOLE(v2_udp4);
    ck_assert_int_eq(h.socktype, SOCK_DGRAM);
    check_in4(&h.src, h.src_len, "192.0.2.1", 5353);
    check_in4(&h.dst, h.dst_len, "198.51.100.7", 53);
}
END_TEST

START_TEST(test_proxy_parse_v2_inet6_stream_and_dgram_give_addresses_and_ports)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_tcp6);
    ck_assert(!h.local);
    ck_assert_int_eq(h.socktype, SOCK_STREAM);
    check_in6(&h.src, h.src_len, "2001:db8::1", 40000);
    check_in6(&h.dst, h.dst_len, "2001:db8::2", 8443);
    h = PARSE_WHOLE(v2_udp6);
    ck_assert_int_eq(h.socktype, SOCK_DGRAM);
    check_in6(&h.src, h.src_len, "2001:db8::1", 1);
    check_in6(&h.dst, h.dst_len, "::ffff:192.0.2.9", 65535);
}
END_TEST

START_TEST(test_proxy_parse_v2_unix_gives_paths_unnamed_and_abstract_addresses)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_unix_stream);
    ck_assert(!h.local);
    ck_assert_int_eq(h.socktype, SOCK_STREAM);
    check_un(&h.src, h.src_len, "/tmp/c.sock", sizeof("/tmp/c.sock"));
    check_un(&h.dst, h.dst_len, "/run/coreio.sock", sizeof("/run/coreio.sock"));
    h = PARSE_WHOLE(v2_unix_dgram);
    ck_assert_int_eq(h.socktype, SOCK_DGRAM);
    check_un(&h.src, h.src_len, "", 0);
    check_un(&h.dst, h.dst_len, "\0coreio", 7);
    /* A path of all 108 bytes has no NUL to keep. */
    uint8_t body[216], hdr[232];
    memset(body, 'a', 108);
    memset(body + 108, 0, 108);
    size_t n = v2_make(hdr, 0x21, 0x31, body, sizeof(body));
    ck_assert_int_eq(parse(hdr, n, CIO_PROXY_V2, &h), (ssize_t)n);
    check_un(&h.src, h.src_len, (const char *)body, 108);
}
END_TEST

START_TEST(test_proxy_parse_v2_local_is_local_and_ignores_its_family)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_local);
    ck_assert_uint_eq(h.version, 2);
    ck_assert(h.local);
    ck_assert_int_eq(h.socktype, 0);
    ck_assert_uint_eq(h.src_len, 0);
    ck_assert_uint_eq(h.dst_len, 0);
    ck_assert_ptr_null(h.tlvs);
    /* Any family, even one PROXY may not carry, and whatever it holds: skipped whole. */
    static const uint8_t junk[7] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t hdr[64];
    static const uint8_t fams[] = {0x11, 0x45, 0x13, 0xff};
    for (size_t i = 0; i < sizeof(fams); i++) {
        size_t n = v2_make(hdr, 0x20, fams[i], junk, sizeof(junk));
        ck_assert_int_eq(parse(hdr, n, CIO_PROXY_V2, &h), (ssize_t)n);
        ck_assert(h.local);
        ck_assert_uint_eq(h.src_len, 0);
        ck_assert_ptr_null(h.tlvs);
    }
    /* With UNSPEC, as HAProxy sends it, the body is TLVs: checked and found. */
    h = PARSE_WHOLE(v2_local_crc);
    ck_assert(h.local);
    ck_assert_uint_eq(h.tlvs_len, 7);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_CRC32C, NULL, NULL), 0);
    memcpy(hdr, v2_local_crc, sizeof(v2_local_crc));
    hdr[sizeof(v2_local_crc) - 1] ^= 0x10;
    expect_rc(hdr, sizeof(v2_local_crc), CIO_PROXY_V2, CIO_EPROXY, "LOCAL, bad CRC32C");
}
END_TEST

START_TEST(test_proxy_parse_v2_unspec_proxy_is_local_with_its_tlvs)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_unspec);
    ck_assert(h.local);
    ck_assert_int_eq(h.socktype, 0);
    ck_assert_uint_eq(h.src_len, 0);
    ck_assert_uint_eq(h.dst_len, 0);
    check_tlv_value(&h, CIO_PP2_TYPE_AUTHORITY, "example.com", 11);
}
END_TEST

START_TEST(test_proxy_tlv_finds_each_tlv_and_ssl_sub_tlv)
{
    cio_proxy_header_t h = PARSE_WHOLE(v2_tlvs_crc);
    check_in4(&h.src, h.src_len, "192.0.2.1", 56324);
    ck_assert_ptr_eq(h.tlvs, v2_tlvs_crc + 28);
    ck_assert_uint_eq(h.tlvs_len, sizeof(v2_tlvs_crc) - 28);
    check_tlv_value(&h, CIO_PP2_TYPE_ALPN, "h2", 2);
    check_tlv_value(&h, CIO_PP2_TYPE_AUTHORITY, "example.com", 11);
    static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    check_tlv_value(&h, CIO_PP2_TYPE_UNIQUE_ID, id, sizeof(id));
    check_tlv_value(&h, CIO_PP2_TYPE_NOOP, "\0\0\0", 3);
    check_tlv_value(&h, CIO_PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
    check_tlv_value(&h, CIO_PP2_SUBTYPE_SSL_CN, "client.example", 14);
    check_tlv_value(&h, CIO_PP2_SUBTYPE_SSL_CIPHER, "TLS_AES_128_GCM_SHA256", 22);
    const uint8_t *ssl;
    size_t len;
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_SSL, (const void **)&ssl, &len), 0);
    ck_assert_uint_eq(len, 5 + 10 + 17 + 25);
    ck_assert_uint_eq(ssl[0],
                      CIO_PP2_CLIENT_SSL | CIO_PP2_CLIENT_CERT_CONN | CIO_PP2_CLIENT_CERT_SESS);
    ck_assert_mem_eq(ssl + 1, "\0\0\0\0", 4);
    const uint8_t *crc;
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_CRC32C, (const void **)&crc, &len), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_ptr_eq(crc, v2_tlvs_crc + sizeof(v2_tlvs_crc) - 4);
    /* Absent: a sub-TLV the SSL TLV lacks, a type the header lacks. */
    const void *v = &h;
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_SUBTYPE_SSL_SIG_ALG, &v, &len), -ENOENT);
    ck_assert_ptr_eq(v, &h);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_NETNS, &v, &len), -ENOENT);
    ck_assert_int_eq(cio_proxy_tlv(NULL, CIO_PP2_TYPE_ALPN, &v, &len), -EINVAL);
}
END_TEST

START_TEST(test_proxy_tlv_finds_nothing_without_tlvs)
{
    cio_proxy_header_t h = parse_whole(&valid_headers[0]);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_ALPN, NULL, NULL), -ENOENT);
    h = PARSE_WHOLE(v2_tcp6);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_ALPN, NULL, NULL), -ENOENT);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_SUBTYPE_SSL_CN, NULL, NULL), -ENOENT);
    /* No SSL TLV: its sub-types are not looked for among the others. */
    h = PARSE_WHOLE(v2_unspec);
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_SUBTYPE_SSL_VERSION, NULL, NULL), -ENOENT);
}
END_TEST

START_TEST(test_proxy_parse_v2_crc32c_must_match_the_whole_header)
{
    expect_rc(v2_tlvs_bad_crc, sizeof(v2_tlvs_bad_crc), CIO_PROXY_ANY, CIO_EPROXY, "bad CRC");
    /* Any byte changed, not only in the TLV: the checksum covers the whole header. */
    uint8_t hdr[sizeof(v2_tlvs_crc)];
    static const size_t at[] = {17, 27, 40, sizeof(v2_tlvs_crc) - 10};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        memcpy(hdr, v2_tlvs_crc, sizeof(hdr));
        hdr[at[i]] ^= 0x01;
        expect_rc(hdr, sizeof(hdr), CIO_PROXY_ANY, CIO_EPROXY, "one bit changed");
    }
    /* A CRC32C TLV of the wrong length, and a second one. */
    uint8_t body[32] = {0x03, 0x00, 0x03, 0, 0, 0}, out[64];
    size_t n = v2_make(out, 0x20, 0x00, body, 6);
    expect_rc(out, n, CIO_PROXY_ANY, CIO_EPROXY, "3-byte CRC32C");
    cio_proxy_header_t h = PARSE_WHOLE(v2_local_crc);
    memcpy(body, h.tlvs, 7);
    memcpy(body + 7, h.tlvs, 7);
    n = v2_make(out, 0x20, 0x00, body, 14);
    expect_rc(out, n, CIO_PROXY_ANY, CIO_EPROXY, "two CRC32C TLVs");
}
END_TEST

START_TEST(test_proxy_parse_v2_bad_version_command_or_family_is_refused)
{
    uint8_t hdr[64], addr[12] = {0};
    static const uint8_t ver_cmd[] = {0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f, 0x20 | 0x0e};
    for (size_t i = 0; i < sizeof(ver_cmd); i++) {
        size_t n = v2_make(hdr, ver_cmd[i], 0x11, addr, sizeof(addr));
        expect_rc(hdr, n, CIO_PROXY_ANY, CIO_EPROXY, "version/command byte");
        expect_rc(hdr, 13, CIO_PROXY_ANY, CIO_EPROXY, "version/command byte alone");
    }
    static const uint8_t fam[] = {0x13, 0x10, 0x01, 0x02, 0x03, 0x20, 0x30, 0x41, 0xf1, 0x1f};
    for (size_t i = 0; i < sizeof(fam); i++) {
        size_t n = v2_make(hdr, 0x21, fam[i], addr, sizeof(addr));
        expect_rc(hdr, n, CIO_PROXY_ANY, CIO_EPROXY, "family byte");
        expect_rc(hdr, 14, CIO_PROXY_ANY, CIO_EPROXY, "family byte alone");
    }
}
END_TEST

START_TEST(test_proxy_parse_v2_length_too_short_for_the_family_is_refused)
{
    uint8_t hdr[300], body[300] = {0};
    static const struct {
        uint8_t fam;
        size_t need;
    } fams[] = {{0x11, 12}, {0x12, 12}, {0x21, 36}, {0x22, 36}, {0x31, 216}, {0x32, 216}};
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
        size_t n = v2_make(hdr, 0x21, fams[i].fam, body, fams[i].need - 1);
        expect_rc(hdr, n, CIO_PROXY_ANY, CIO_EPROXY, "short body");
        expect_rc(hdr, 16, CIO_PROXY_ANY, CIO_EPROXY, "short length, fixed part alone");
        n = v2_make(hdr, 0x21, fams[i].fam, body, fams[i].need);
        expect_rc(hdr, n, CIO_PROXY_ANY, (ssize_t)n, "exact body");
    }
}
END_TEST

START_TEST(test_proxy_parse_v2_tlv_overrunning_its_header_is_refused)
{
    uint8_t hdr[512], body[400];
    static const struct {
        const char *what;
        const char *tlvs;
        size_t n;
    } bad[] = {
        {"TLV longer than the header", "\x01\x00\x03h2", 5},
        {"one byte after the TLVs", "\x01\x00\x02h2\x04", 6},
        {"two bytes after the TLVs", "\x01\x00\x02h2\x04\x00", 7},
        {"SSL TLV shorter than its fixed part", "\x20\x00\x04\x01\x00\x00\x00", 7},
        {"SSL sub-TLV overrunning the SSL TLV", "\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x01", 11},
        {"SSL sub-TLV overrunning into the next TLV",
         "\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x02\x04\x00\x00", 14},
        {"SSL sub-TLV cut short", "\x20\x00\x07\x01\x00\x00\x00\x00\x21\x00", 10},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(body, 0, 12);
        memcpy(body + 12, bad[i].tlvs, bad[i].n);
        size_t n = v2_make(hdr, 0x21, 0x11, body, 12 + bad[i].n);
        expect_rc(hdr, n, CIO_PROXY_ANY, CIO_EPROXY, bad[i].what);
    }
    /* UNIQUE_ID: up to 128 bytes. */
    memset(body, 0, sizeof(body));
    body[0] = CIO_PP2_TYPE_UNIQUE_ID;
    body[2] = 128;
    size_t n = v2_make(hdr, 0x20, 0x00, body, 3 + 128);
    expect_rc(hdr, n, CIO_PROXY_ANY, (ssize_t)n, "128-byte unique id");
    body[2] = 129;
    n = v2_make(hdr, 0x20, 0x00, body, 3 + 129);
    expect_rc(hdr, n, CIO_PROXY_ANY, CIO_EPROXY, "129-byte unique id");
}
END_TEST

START_TEST(test_proxy_parse_v2_bad_tlv_is_refused_before_the_header_ends)
{
    /* A 200-byte header whose first TLV claims 300: refused once its length is in. */
    uint8_t hdr[300], body[200] = {0};
    body[12] = CIO_PP2_TYPE_ALPN;
    body[13] = 0x01;
    body[14] = 0x2c;
    size_t n = v2_make(hdr, 0x21, 0x11, body, sizeof(body));
    expect_rc(hdr, 16 + 12 + 2, CIO_PROXY_V2, 0, "TLV length not in yet");
    expect_rc(hdr, 16 + 12 + 3, CIO_PROXY_V2, CIO_EPROXY, "TLV length in");
    expect_rc(hdr, n, CIO_PROXY_V2, CIO_EPROXY, "whole");
    /* A body of 2 bytes after a PROXY INET block can hold no TLV. */
    n = v2_make(hdr, 0x21, 0x11, body, 14);
    expect_rc(hdr, 16, CIO_PROXY_V2, CIO_EPROXY, "fixed part alone");
}
END_TEST

/* ---- both versions ------------------------------------------------------ */

START_TEST(test_proxy_parse_every_valid_header_waits_for_its_last_byte_and_stops_there)
{
    static const char more[] = "GET / HTTP/1.1\r\n\r\n\r\n\r\n\0\r\nQUIT\n!";
    for (size_t i = 0; i < sizeof(valid_headers) / sizeof(valid_headers[0]); i++) {
        const sample_t *s = &valid_headers[i];
        cio_proxy_header_t whole = parse_whole(s), h;
        for (size_t n = 0; n < s->len; n++)
            expect_rc(s->p, n, CIO_PROXY_ANY, 0, s->name);
        uint8_t buf[300];
        memcpy(buf, s->p, s->len);
        memcpy(buf + s->len, more, sizeof(more));
        for (size_t extra = 1; extra <= sizeof(more); extra++) {
            ssize_t rc = parse(buf, s->len + extra, CIO_PROXY_ANY, &h);
            ck_assert_msg(rc == (ssize_t)s->len, "%s + %zu bytes: %zd (%s)", s->name, extra, rc,
                          rc_name(rc));
            ck_assert_mem_eq(&h.src, &whole.src, sizeof(h.src));
            ck_assert_uint_eq(h.tlvs_len, whole.tlvs_len);
        }
    }
}
END_TEST

START_TEST(test_proxy_parse_no_signature_is_missing_at_its_first_wrong_byte)
{
    expect_rc("", 0, CIO_PROXY_ANY, 0, "nothing yet");
    expect_rc("GET / HTTP/1.1\r\n", 1, CIO_PROXY_ANY, CIO_EPROXYMISSING, "G");
    expect_rc("\x16\x03\x01\x02\x00", 5, CIO_PROXY_ANY, CIO_EPROXYMISSING, "a TLS record");
    expect_rc("P", 1, CIO_PROXY_ANY, 0, "P");
    expect_rc("POST / HTTP/1.1\r\n", 2, CIO_PROXY_ANY, CIO_EPROXYMISSING, "PO");
    expect_rc("PROX", 4, CIO_PROXY_ANY, 0, "PROX");
    expect_rc("PROXI", 5, CIO_PROXY_ANY, CIO_EPROXYMISSING, "PROXI");
    uint8_t sig[16];
    memcpy(sig, v2_local, 16);
    sig[11] = 'X';
    expect_rc(sig, 11, CIO_PROXY_ANY, 0, "v2 signature, 11 bytes");
    expect_rc(sig, 12, CIO_PROXY_ANY, CIO_EPROXYMISSING, "v2 signature, last byte wrong");
    expect_rc("\r\n\r\n\r\n", 6, CIO_PROXY_ANY, CIO_EPROXYMISSING, "CRLFs");
    expect_rc("\r\n\r\n\r\n", 6, CIO_PROXY_V1, CIO_EPROXYMISSING, "CRLFs, v1 only");
    expect_rc("GET", 3, CIO_PROXY_V2, CIO_EPROXYMISSING, "GET, v2 only");
}
END_TEST

START_TEST(test_proxy_parse_version_not_accepted_is_refused_once_its_signature_is_whole)
{
    const sample_t *v1 = &valid_headers[0];
    for (size_t n = 0; n < 5; n++)
        expect_rc(v1->p, n, CIO_PROXY_V2, 0, "v1 signature so far, v2 only");
    for (size_t n = 5; n <= v1->len; n++)
        expect_rc(v1->p, n, CIO_PROXY_V2, CIO_EPROXYVERSION, "v1, v2 only");
    for (size_t n = 0; n < 12; n++)
        expect_rc(v2_tcp4, n, CIO_PROXY_V1, 0, "v2 signature so far, v1 only");
    for (size_t n = 12; n <= sizeof(v2_tcp4); n++)
        expect_rc(v2_tcp4, n, CIO_PROXY_V1, CIO_EPROXYVERSION, "v2, v1 only");
    expect_rc(v1->p, v1->len, CIO_PROXY_V1, (ssize_t)v1->len, "v1, v1 only");
    expect_rc(v2_tcp4, sizeof(v2_tcp4), CIO_PROXY_V2, sizeof(v2_tcp4), "v2, v2 only");
    /* Not even a malformed header of a refused version is looked at. */
    expect_rc("PROXY TCP9\r\n", 12, CIO_PROXY_V2, CIO_EPROXYVERSION, "bad v1, v2 only");
}
END_TEST

START_TEST(test_proxy_parse_bad_arguments_are_einval_and_out_is_kept_until_a_header)
{
    cio_proxy_header_t h;
    const sample_t *s = &valid_headers[0];
    ck_assert_int_eq(cio_proxy_parse(s->p, s->len, CIO_PROXY_ANY, NULL), -EINVAL);
    ck_assert_int_eq(cio_proxy_parse(s->p, s->len, 0, &h), -EINVAL);
    ck_assert_int_eq(cio_proxy_parse(s->p, s->len, CIO_PROXY_ANY | 4u, &h), -EINVAL);
    ck_assert_int_eq(cio_proxy_parse(NULL, 5, CIO_PROXY_ANY, &h), -EINVAL);
    ck_assert_int_eq(cio_proxy_parse(NULL, 0, CIO_PROXY_ANY, &h), 0);
    cio_proxy_header_t before;
    memset(&h, 0xa5, sizeof(h));
    memcpy(&before, &h, sizeof(h));
    ck_assert_int_eq(cio_proxy_parse(s->p, s->len - 1, CIO_PROXY_ANY, &h), 0);
    ck_assert_mem_eq(&h, &before, sizeof(h));
    const char *bad = "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n";
    ck_assert_int_eq(cio_proxy_parse(bad, strlen(bad), CIO_PROXY_ANY, &h), CIO_EPROXY);
    ck_assert_mem_eq(&h, &before, sizeof(h));
}
END_TEST

/* ---- address ranges ----------------------------------------------------- */

static cio_cidr_t cidr(const char *text)
{
    cio_cidr_t c;
    int rc = cio_cidr_parse(text, &c);
    ck_assert_msg(rc == 0, "%s: %s", text, cio_err_name(rc));
    return c;
}

/* A socket address for the text @p addr (IPv4 or IPv6). */
static struct sockaddr_storage sa_of(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);
        sin6->sin6_family = AF_INET6;
    }
    return ss;
}

static bool match(const char *range, const char *addr)
{
    cio_cidr_t c = cidr(range);
    struct sockaddr_storage ss = sa_of(addr);
    return cio_cidr_match(&c, (struct sockaddr *)&ss);
}

START_TEST(test_proxy_cidr_parse_reads_ranges_and_lone_addresses)
{
    cio_cidr_t c = cidr("10.0.0.0/8");
    static const uint8_t ten[16] = {10};
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 8);
    ck_assert_mem_eq(c.addr, ten, 16);
    c = cidr("192.0.2.77");
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 32);
    ck_assert_mem_eq(c.addr, "\xc0\x00\x02\x4d", 4);
    c = cidr("0.0.0.0/0");
    ck_assert_uint_eq(c.prefix, 0);
    c = cidr("2001:db8::/32");
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 32);
    ck_assert_mem_eq(c.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    c = cidr("::1");
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 128);
    c = cidr("::/0");
    ck_assert_uint_eq(c.prefix, 0);
    c = cidr("fe80::/10");
    ck_assert_uint_eq(c.prefix, 10);
    /* IPv4-mapped ranges are kept as the IPv4 ones they are. */
    c = cidr("::ffff:10.1.0.0/112");
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 16);
    ck_assert_mem_eq(c.addr, "\x0a\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    c = cidr("::ffff:0:0/96");
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 0);
    c = cidr("::fffe:0:0/95");
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 95);
}
END_TEST

START_TEST(test_proxy_cidr_parse_refuses_bad_text_and_host_bits)
{
    static const char *bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/08",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "10.0.0.0/8 ",
        " 10.0.0.0/8",
        "10.0.0/8",
        "010.0.0.0/8",
        "10.0.0.256",
        "::/129",
        "::1/0128",
        "fe80::1%lo",
        "10.0.0.1/8",
        "11.0.0.0/7",
        "192.0.2.128/24",
        "2001:db8::1/64",
        "::1/127",
        "garbage",
        "10.0.0.0/x",
        "1:2:3:4:5:6:7:8:9",
        "10.0.0.0/4294967304",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cio_cidr_t c = {.family = 99};
        ck_assert_msg(cio_cidr_parse(bad[i], &c) == -EINVAL, "\"%s\" was read", bad[i]);
        ck_assert_int_eq(c.family, 99);
    }
    cio_cidr_t c;
    ck_assert_int_eq(cio_cidr_parse(NULL, &c), -EINVAL);
    ck_assert_int_eq(cio_cidr_parse("10.0.0.0/8", NULL), -EINVAL);
}
END_TEST

START_TEST(test_proxy_cidr_match_checks_the_prefix_bits)
{
    ck_assert(match("10.0.0.0/8", "10.255.255.255"));
    ck_assert(match("10.0.0.0/8", "10.0.0.0"));
    ck_assert(!match("10.0.0.0/8", "11.0.0.0"));
    ck_assert(!match("10.0.0.0/8", "9.255.255.255"));
    ck_assert(match("192.0.2.32/27", "192.0.2.63"));
    ck_assert(!match("192.0.2.32/27", "192.0.2.64"));
    ck_assert(!match("192.0.2.32/27", "192.0.2.31"));
    ck_assert(match("192.0.2.1", "192.0.2.1"));
    ck_assert(!match("192.0.2.1", "192.0.2.0"));
    ck_assert(match("0.0.0.0/0", "203.0.113.9"));
    ck_assert(match("2001:db8::/32", "2001:db8:ffff::1"));
    ck_assert(!match("2001:db8::/32", "2001:db9::1"));
    ck_assert(match("fe80::/10", "febf::1"));
    ck_assert(!match("fe80::/10", "fec0::1"));
    ck_assert(match("::/127", "::1"));
    ck_assert(!match("::/127", "::2"));
    ck_assert(match("::1", "::1"));
    ck_assert(match("::/0", "2001:db8::1"));
}
END_TEST

START_TEST(test_proxy_cidr_match_v4_mapped_peer_matches_as_its_ipv4_address)
{
    ck_assert(match("10.0.0.0/8", "::ffff:10.1.2.3"));
    ck_assert(!match("10.0.0.0/8", "::ffff:11.1.2.3"));
    ck_assert(match("127.0.0.1", "::ffff:127.0.0.1"));
    ck_assert(match("::ffff:10.0.0.0/104", "10.9.9.9"));
    /* Not as an IPv6 one: "::/0" is all of IPv6, which IPv4 is not. */
    ck_assert(!match("::/0", "::ffff:10.1.2.3"));
    ck_assert(!match("::/0", "10.1.2.3"));
}
END_TEST

START_TEST(test_proxy_cidr_match_other_families_do_not_match)
{
    ck_assert(!match("0.0.0.0/0", "::1"));
    ck_assert(!match("::/0", "127.0.0.1"));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    cio_cidr_t c = cidr("0.0.0.0/0");
    ck_assert(!cio_cidr_match(&c, (struct sockaddr *)&sun));
    ck_assert(!cio_cidr_match(NULL, (struct sockaddr *)&sun));
    ck_assert(!cio_cidr_match(&c, NULL));
    c.prefix = 33; /* not from cio_cidr_parse(): matches nothing */
    struct sockaddr_storage ss = sa_of("0.0.0.0");
    ck_assert(!cio_cidr_match(&c, (struct sockaddr *)&ss));
}
END_TEST

START_TEST(test_proxy_trusted_takes_listed_ranges_and_unix_peers_only_with_a_list)
{
    cio_cidr_t ranges[2] = {cidr("10.0.0.0/8"), cidr("2001:db8::/32")};
    cio_proxy_opts_t o = {.versions = CIO_PROXY_ANY, .trusted = ranges, .ntrusted = 2};
    struct sockaddr_storage in = sa_of("10.2.3.4"), in6 = sa_of("2001:db8::7"),
                            mapped = sa_of("::ffff:10.2.3.4"), out = sa_of("192.0.2.1");
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/run/lb.sock"};
    ck_assert(cio_proxy_trusted(&o, (struct sockaddr *)&in));
    ck_assert(cio_proxy_trusted(&o, (struct sockaddr *)&in6));
    ck_assert(cio_proxy_trusted(&o, (struct sockaddr *)&mapped));
    ck_assert(!cio_proxy_trusted(&o, (struct sockaddr *)&out));
    ck_assert(cio_proxy_trusted(&o, (struct sockaddr *)&sun));
    o.ntrusted = 0;
    ck_assert(!cio_proxy_trusted(&o, (struct sockaddr *)&in));
    ck_assert(!cio_proxy_trusted(&o, (struct sockaddr *)&sun));
    ck_assert(!cio_proxy_trusted(NULL, (struct sockaddr *)&sun));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("proxy_parse");

    TCase *tc = cio_test_case("v1");
    CIO_TEST(tc, test_proxy_parse_v1_tcp4_gives_both_addresses_and_ports);
    CIO_TEST(tc, test_proxy_parse_v1_tcp6_gives_both_addresses_and_ports);
    CIO_TEST(tc, test_proxy_parse_v1_unknown_with_or_without_addresses_is_local);
    CIO_TEST(tc, test_proxy_parse_v1_line_of_107_bytes_is_read_and_one_more_is_refused);
    CIO_TEST(tc, test_proxy_parse_v1_bad_fields_are_refused);
    CIO_TEST(tc, test_proxy_parse_v1_bad_field_is_refused_before_the_line_ends);
    CIO_TEST(tc, test_proxy_parse_v1_lone_cr_or_lf_is_refused);
    CIO_TEST(tc, test_proxy_parse_v1_short_addresses_agree_with_inet_pton_whole_and_in_part);
    suite_add_tcase(s, tc);

    tc = cio_test_case("v2");
    CIO_TEST(tc, test_proxy_parse_v2_inet_stream_and_dgram_give_addresses_and_ports);
    CIO_TEST(tc, test_proxy_parse_v2_inet6_stream_and_dgram_give_addresses_and_ports);
    CIO_TEST(tc, test_proxy_parse_v2_unix_gives_paths_unnamed_and_abstract_addresses);
    CIO_TEST(tc, test_proxy_parse_v2_local_is_local_and_ignores_its_family);
    CIO_TEST(tc, test_proxy_parse_v2_unspec_proxy_is_local_with_its_tlvs);
    CIO_TEST(tc, test_proxy_parse_v2_crc32c_must_match_the_whole_header);
    CIO_TEST(tc, test_proxy_parse_v2_bad_version_command_or_family_is_refused);
    CIO_TEST(tc, test_proxy_parse_v2_length_too_short_for_the_family_is_refused);
    CIO_TEST(tc, test_proxy_parse_v2_tlv_overrunning_its_header_is_refused);
    CIO_TEST(tc, test_proxy_parse_v2_bad_tlv_is_refused_before_the_header_ends);
    suite_add_tcase(s, tc);

    tc = cio_test_case("tlv");
    CIO_TEST(tc, test_proxy_tlv_finds_each_tlv_and_ssl_sub_tlv);
    CIO_TEST(tc, test_proxy_tlv_finds_nothing_without_tlvs);
    suite_add_tcase(s, tc);

    tc = cio_test_case("stream");
    CIO_TEST(tc, test_proxy_parse_every_valid_header_waits_for_its_last_byte_and_stops_there);
    CIO_TEST(tc, test_proxy_parse_no_signature_is_missing_at_its_first_wrong_byte);
    CIO_TEST(tc, test_proxy_parse_version_not_accepted_is_refused_once_its_signature_is_whole);
    CIO_TEST(tc, test_proxy_parse_bad_arguments_are_einval_and_out_is_kept_until_a_header);
    suite_add_tcase(s, tc);

    tc = cio_test_case("cidr");
    CIO_TEST(tc, test_proxy_cidr_parse_reads_ranges_and_lone_addresses);
    CIO_TEST(tc, test_proxy_cidr_parse_refuses_bad_text_and_host_bits);
    CIO_TEST(tc, test_proxy_cidr_match_checks_the_prefix_bits);
    CIO_TEST(tc, test_proxy_cidr_match_v4_mapped_peer_matches_as_its_ipv4_address);
    CIO_TEST(tc, test_proxy_cidr_match_other_families_do_not_match);
    CIO_TEST(tc, test_proxy_trusted_takes_listed_ranges_and_unix_peers_only_with_a_list);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
