/*
 * tests/test_http_parse.c: http-hello's request reader (framework/http_parse.c),
 * without sockets. Complete, incomplete and pipelined requests; every split
 * of a stream into two reads, and one byte per read, gives the same verdicts
 * as one read; bodies skipped by Content-Length; the head size limit at and
 * past its edge; bad Content-Length values; NUL bytes, bare CR and LF and
 * other bad bytes anywhere; versions, Connection tokens, Transfer-Encoding.
 */
#include <errno.h>
#include <stdio.h>

#include "http_parse.h"
#include "testutil.h"

#define MAX_VERDICTS 16

/* What a parser made of a stream: its verdicts in order, up to the first that closes. */
typedef struct outcome {
    int n;
    cio__http_verdict_t v[MAX_VERDICTS];
    bool head[MAX_VERDICTS]; /* the request was a HEAD */
    size_t used;             /* bytes read */
    bool closed;             /* the last verdict closes the connection */
    bool idle;               /* the parser ended between requests */
} outcome_t;

/* Feed one read, s[0..len), as http-hello does: until it is used or a verdict closes. */
static void feed_read(cio__http_parser_t *ps, const char *s, size_t len, outcome_t *o)
{
    while (len > 0 && !o->closed) {
        cio__http_verdict_t v;
        ssize_t n = cio__http_parser_feed(ps, s, len, &v);
        ck_assert_int_gt(n, 0);
        ck_assert_uint_le((size_t)n, len);
        if (v != CIO__HTTP_NONE) {
            ck_assert_int_lt(o->n, MAX_VERDICTS);
            o->head[o->n] = ps->rq.head;
            o->v[o->n++] = v;
            o->closed = cio__http_verdict_closes(v);
        }
        s += n;
        len -= (size_t)n;
        o->used += (size_t)n;
    }
}

/* Feed s[0..len): s[0..split) as one read, then the rest in reads of @p chunk (0: one read). */
static outcome_t run_reads(const char *s, size_t len, size_t split, size_t chunk)
{
    cio__http_parser_t ps = {0};
    outcome_t o = {0};
    feed_read(&ps, s, split, &o);
    for (size_t at = split; at < len; at += chunk ? chunk : len) {
        size_t n = chunk && chunk < len - at ? chunk : len - at;
        feed_read(&ps, s + at, n, &o);
    }
    o.idle = cio__http_parser_idle(&ps);
    cio__http_parser_free(&ps);
    return o;
}

static outcome_t run(const char *s, size_t len)
{
    return run_reads(s, len, len, 0);
}

static outcome_t run_str(const char *s)
{
    return run(s, strlen(s));
}

/* @p s in one read gets exactly the one verdict @p want. */
static void expect_one(const char *s, size_t len, cio__http_verdict_t want)
{
    outcome_t o = run(s, len);
    ck_assert_msg(o.n == 1 && o.v[0] == want, "%.*s: %d verdicts, the first %d, expected %d",
                  (int)len, s, o.n, o.n ? (int)o.v[0] : -1, (int)want);
}

static void expect_str(const char *s, cio__http_verdict_t want)
{
    expect_one(s, strlen(s), want);
}

/* Every way of reading @p s in two reads, and one byte per read, matches one read. */
static void expect_same_in_any_reads(const char *s, size_t len)
{
    outcome_t whole = run(s, len);
    for (size_t split = 0; split <= len + 1; split++) {
        bool bytewise = split == len + 1;
        outcome_t o = bytewise ? run_reads(s, len, 0, 1) : run_reads(s, len, split, 0);
        ck_assert_msg(o.n == whole.n, "%s at %zu: %d verdicts, %d in one read",
                      bytewise ? "bytewise" : "split", split, o.n, whole.n);
        for (int i = 0; i < o.n; i++) {
            ck_assert_msg(o.v[i] == whole.v[i] && o.head[i] == whole.head[i],
                          "split at %zu, verdict %d: %d (head %d), %d (head %d) in one read", split,
                          i, o.v[i], o.head[i], whole.v[i], whole.head[i]);
        }
        ck_assert_int_eq(o.idle, whole.idle);
    }
}

#define GET "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

/* ---- whole, partial, pipelined ----------------------------------------------- */

START_TEST(test_http_parse_whole_request_is_read_in_place_to_its_last_byte)
{
    cio__http_parser_t ps = {0};
    cio__http_verdict_t v;
    const char req[] = "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nXYZ";
    ssize_t n = cio__http_parser_feed(&ps, req, sizeof(req) - 1, &v);
    ck_assert_int_eq(n, (ssize_t)sizeof(req) - 4); /* "XYZ" is the next request's */
    ck_assert_int_eq(v, CIO__HTTP_OK);
    ck_assert(!ps.rq.head);
    ck_assert(!ps.rq.http10);
    ck_assert(!ps.rq.has_length);
    ck_assert(cio__http_parser_idle(&ps));
    ck_assert_ptr_null(ps.line); /* nothing was copied */
    cio__http_parser_free(&ps);
}
END_TEST

START_TEST(test_http_parse_incomplete_head_waits_for_its_end)
{
    cio__http_parser_t ps = {0};
    cio__http_verdict_t v;
    const char part[] = "GET / HTTP/1.1\r\nHost: x\r\nAccept: te";
    ck_assert_int_eq(cio__http_parser_feed(&ps, part, sizeof(part) - 1, &v),
                     (ssize_t)sizeof(part) - 1);
    ck_assert_int_eq(v, CIO__HTTP_NONE);
    ck_assert(!cio__http_parser_idle(&ps));
    ck_assert_ptr_nonnull(ps.line); /* the split line is kept */
    ck_assert_int_eq(cio__http_parser_feed(&ps, "xt\r\n", 4, &v), 4);
    ck_assert_int_eq(v, CIO__HTTP_NONE);
    ck_assert_int_eq(cio__http_parser_feed(&ps, "\r", 1, &v), 1);
    ck_assert_int_eq(v, CIO__HTTP_NONE);
    ck_assert_int_eq(cio__http_parser_feed(&ps, "\n", 1, &v), 1);
    ck_assert_int_eq(v, CIO__HTTP_OK);
    ck_assert(cio__http_parser_idle(&ps));
    cio__http_parser_free(&ps);
    ck_assert_ptr_null(ps.line);
    ck_assert_uint_eq(ps.line_len, 0);
}
END_TEST

START_TEST(test_http_parse_pipelined_requests_end_one_call_each_in_order)
{
    const char *reqs[] = {"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /2 HTTP/1.1\r\n\r\n",
                          "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n"};
    const cio__http_verdict_t want[] = {CIO__HTTP_OK, CIO__HTTP_OK, CIO__HTTP_OK_CLOSE};
    char stream[256];
    int len = snprintf(stream, sizeof(stream), "%s%s%s", reqs[0], reqs[1], reqs[2]);
    cio__http_parser_t ps = {0};
    const char *p = stream;
    for (int i = 0; i < 3; i++) {
        cio__http_verdict_t v;
        ssize_t n = cio__http_parser_feed(&ps, p, (size_t)(stream + len - p), &v);
        ck_assert_int_eq(n, (ssize_t)strlen(reqs[i]));
        ck_assert_int_eq(v, want[i]);
        ck_assert_int_eq(ps.rq.head, i == 1);
        p += n;
    }
    ck_assert_ptr_eq(p, stream + len);
    cio__http_parser_free(&ps);
}
END_TEST

START_TEST(test_http_parse_every_split_gives_the_verdicts_of_one_read)
{
    static const char *streams[] = {
        GET GET "HEAD / HTTP/1.1\r\n\r\n",
        "POST /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" GET,
        "\r\n\r\n" GET "\n" GET,
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" GET,
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\ny\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" GET "GET / HTTP/1.1\r\n",
        "HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n" GET,
    };
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
        expect_same_in_any_reads(streams[i], strlen(streams[i]));
    const char nul[] = GET "GET / HTTP/1.1\r\nHo\0st: x\r\n\r\n";
    expect_same_in_any_reads(nul, sizeof(nul) - 1);
}
END_TEST

START_TEST(test_http_parse_blank_lines_before_a_request_are_skipped)
{
    outcome_t o = run_str("\r\n\n\r\r\n" GET "\r\n" GET);
    ck_assert_int_eq(o.n, 2);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    ck_assert_int_eq(o.v[1], CIO__HTTP_OK);
    ck_assert(o.idle);
}
END_TEST

/* ---- bodies --------------------------------------------------------------------- */

START_TEST(test_http_parse_body_is_skipped_within_and_across_reads)
{
    const char s[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nGET / HTTP/" GET;
    outcome_t o = run_reads(s, sizeof(s) - 1, 45, 3); /* the body over three reads */
    ck_assert_int_eq(o.n, 2);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    ck_assert_int_eq(o.v[1], CIO__HTTP_OK);
    ck_assert(o.idle);
    /* A body still expected: the parser is not between requests. */
    cio__http_parser_t ps = {0};
    cio__http_verdict_t v;
    const char post[] = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab";
    ck_assert_int_eq(cio__http_parser_feed(&ps, post, sizeof(post) - 1, &v),
                     (ssize_t)sizeof(post) - 3);
    ck_assert_int_eq(v, CIO__HTTP_OK);
    ck_assert(ps.rq.has_length);
    ck_assert_uint_eq(ps.rq.length, 4);
    ck_assert_int_eq(cio__http_parser_feed(&ps, "ab", 2, &v), 2);
    ck_assert_int_eq(v, CIO__HTTP_NONE);
    ck_assert(!cio__http_parser_idle(&ps));
    ck_assert_int_eq(cio__http_parser_feed(&ps, "cdGET", 5, &v), 2);
    ck_assert(cio__http_parser_idle(&ps));
    cio__http_parser_free(&ps);
}
END_TEST

START_TEST(test_http_parse_equal_content_lengths_are_one)
{
    outcome_t o = run_str("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length:2 \r\n\r\nhi");
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    ck_assert(o.idle);
    expect_str("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", CIO__HTTP_OK);
}
END_TEST

START_TEST(test_http_parse_bad_content_length_is_400)
{
    /* Signs, blanks, lists, other bases, and values past UINT64_MAX are not lengths. */
    const char *bad[] = {"",
                         "12x",
                         "-1",
                         "+1",
                         "1 2",
                         "0x10",
                         "1,1",
                         "1.0",
                         "\x80",
                         "99999999999999999999",
                         "18446744073709551615"};
    char req[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
        expect_one(req, (size_t)n, CIO__HTTP_BAD);
    }
    expect_str("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", CIO__HTTP_BAD);
    /* The largest accepted value is skipped as a count, without overflow. */
    cio__http_parser_t ps = {0};
    cio__http_verdict_t v;
    const char big[] = "POST / HTTP/1.1\r\nContent-Length: 1844674407370955160\r\n\r\n";
    ck_assert_int_eq(cio__http_parser_feed(&ps, big, sizeof(big) - 1, &v),
                     (ssize_t)sizeof(big) - 1);
    ck_assert_int_eq(v, CIO__HTTP_OK);
    ck_assert_uint_eq(ps.skip, UINT64_C(1844674407370955160));
    cio__http_parser_free(&ps);
}
END_TEST

/* ---- the head size limit --------------------------------------------------------- */

/* A GET whose head is exactly @p size bytes, padded by one header. */
static size_t head_of_size(char *buf, size_t size)
{
    int n = snprintf(buf, size + 1, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", (int)size - 27, 0);
    ck_assert_int_eq(n, (int)size);
    return size;
}

START_TEST(test_http_parse_head_of_the_limit_is_read_one_more_byte_is_431)
{
    static char buf[CIO__HTTP_HEAD_MAX + 16];
    size_t n = head_of_size(buf, CIO__HTTP_HEAD_MAX);
    outcome_t o = run(buf, n);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    o = run_reads(buf, n, 0, 1);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    /* Blank lines before it do not count, nor do the requests before it. */
    static char more[CIO__HTTP_HEAD_MAX + 64];
    memcpy(more, "\r\n\r\n", 4);
    memcpy(more + 4, buf, n);
    expect_one(more, n + 4, CIO__HTTP_OK);
    memcpy(more, GET, strlen(GET));
    memcpy(more + strlen(GET), buf, n);
    o = run_reads(more, n + strlen(GET), 7, 0);
    ck_assert_int_eq(o.n, 2);
    ck_assert_int_eq(o.v[1], CIO__HTTP_OK);

    n = head_of_size(buf, CIO__HTTP_HEAD_MAX + 1);
    expect_one(buf, n, CIO__HTTP_TOO_LARGE);
    o = run_reads(buf, n, 0, 1);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_TOO_LARGE);
    expect_same_in_any_reads(buf, n);
}
END_TEST

START_TEST(test_http_parse_long_line_or_many_headers_are_431_before_the_end)
{
    static char buf[3 * CIO__HTTP_HEAD_MAX];
    /* One header line with no end, over several reads. */
    int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'a', sizeof(buf) - (size_t)n);
    outcome_t o = run_reads(buf, sizeof(buf), 0, 4000);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_TOO_LARGE);
    ck_assert_uint_le(o.used, CIO__HTTP_HEAD_MAX + 4000); /* refused once over, not at the end */
    /* Many short header lines. */
    size_t len = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    while (len < 2 * CIO__HTTP_HEAD_MAX)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "X-Header: value\r\n");
    o = run_reads(buf, len, 0, 100);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_TOO_LARGE);
    ck_assert_uint_le(o.used, CIO__HTTP_HEAD_MAX + 100);
    expect_one(buf, len, CIO__HTTP_TOO_LARGE);
    /* A request line alone past the limit. */
    memset(buf, 'A', sizeof(buf));
    expect_one(buf, sizeof(buf), CIO__HTTP_TOO_LARGE);
}
END_TEST

/* ---- bad bytes ----------------------------------------------------------------------- */

START_TEST(test_http_parse_nul_byte_anywhere_in_a_head_is_400)
{
    const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    size_t len = sizeof(req) - 1;
    char buf[sizeof(req) + 1];
    /* A NUL before each byte of the head: a 400, whether read at once or bytewise. */
    for (size_t at = 0; at < len; at++) {
        memcpy(buf, req, at);
        buf[at] = '\0';
        memcpy(buf + at + 1, req + at, len - at);
        outcome_t o = run(buf, len + 1);
        ck_assert_msg(o.n == 1 && o.v[0] == CIO__HTTP_BAD, "NUL at %zu: %d verdicts, first %d", at,
                      o.n, o.n ? (int)o.v[0] : -1);
        o = run_reads(buf, len + 1, 0, 1);
        ck_assert_msg(o.n == 1 && o.v[0] == CIO__HTTP_BAD, "NUL at %zu, bytewise", at);
    }
    /* After a head, a NUL starts the next request line, which is refused in turn. */
    memcpy(buf, req, len);
    buf[len] = '\0';
    outcome_t o = run(buf, len + 1);
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    ck_assert(!o.idle); /* the NUL waits as the start of a line */
    o = run("GET / HTTP/1.1\r\n\r\n\0\r\n", 21);
    ck_assert_int_eq(o.n, 2);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK);
    ck_assert_int_eq(o.v[1], CIO__HTTP_BAD);
}
END_TEST

START_TEST(test_http_parse_bare_cr_or_lf_is_400_without_waiting)
{
    const char *bad[] = {
        "GET / HTTP/1.1\n",                    /* LF ends the request line */
        "GET / HTTP/1.1\r\nHost: x\n",         /* ... or a header line */
        "GET / HTTP/1.1\r\nHost: x\r\n\n",     /* ... or the head */
        "GET / HTTP/1.1\r\nHost: a\rb\r\n",    /* a bare CR in a value */
        "GET / HTTP/1.1\r\nHost: a\r\r\n",     /* ... at its end */
        "GET /\r HTTP/1.1\r\n",                /* ... in the request line */
        "GET / HTTP/1.1\r\nHo\rst: a\r\n",     /* ... in a name */
        "GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", /* ... in the empty line */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        outcome_t o = run_str(bad[i]);
        ck_assert_msg(o.n == 1 && o.v[0] == CIO__HTTP_BAD, "%zu: %d verdicts", i, o.n);
        ck_assert_uint_eq(o.used, strlen(bad[i]));
    }
}
END_TEST

START_TEST(test_http_parse_control_bytes_in_values_are_400_but_obs_text_is_read)
{
    const char *bad[] = {"\x01", "a\x7f", "a\x1b[0m", "\x0b", "a\x0cz"};
    char req[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nUser-Agent: %s\r\n\r\n", bad[i]);
        expect_one(req, (size_t)n, CIO__HTTP_BAD);
    }
    expect_str("GET / HTTP/1.1\r\nUser-Agent: caf\xc3\xa9\tx \t\r\n\r\n", CIO__HTTP_OK);
    expect_str("GET /caf\xc3\xa9 HTTP/1.1\r\nEmpty:\r\n\r\n", CIO__HTTP_OK);
}
END_TEST

/* Whether @p b may be in a method or a field name (RFC 9110 5.6.2), spelt out. */
static bool rfc_tchar(int b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           (b && strchr("!#$%&'*+-.^_`|~", b));
}

/* The request @p fmt with its "%c" replaced by the byte @p b. */
static outcome_t run_with_byte(const char *fmt, int b)
{
    char req[128];
    const char *at = strstr(fmt, "%c");
    size_t pre = (size_t)(at - fmt), post = strlen(at + 2);
    memcpy(req, fmt, pre);
    req[pre] = (char)b;
    memcpy(req + pre + 1, at + 2, post);
    return run(req, pre + 1 + post);
}

START_TEST(test_http_parse_every_byte_value_is_judged_as_rfc_9110_says)
{
    for (int b = 0; b < 256; b++) {
        bool tchar = rfc_tchar(b), vchar = b == '\t' || (b >= ' ' && b != 0x7f);
        outcome_t name = run_with_byte("GET / HTTP/1.1\r\nX%c: v\r\n\r\n", b);
        outcome_t method = run_with_byte("G%cT / HTTP/1.1\r\n\r\n", b);
        outcome_t value = run_with_byte("GET / HTTP/1.1\r\nX: a%ca\r\n\r\n", b);
        outcome_t target = run_with_byte("GET /%c HTTP/1.1\r\n\r\n", b);
        /* A ':' ends the name: "X:: v" has the value ": v". */
        ck_assert_msg(name.n == 1 && (name.v[0] == CIO__HTTP_OK) == (tchar || b == ':'),
                      "name byte %#x", b);
        ck_assert_msg(method.n == 1 && (method.v[0] == CIO__HTTP_OK) == tchar, "method byte %#x",
                      b);
        ck_assert_msg(value.n == 1 && (value.v[0] == CIO__HTTP_OK) == vchar, "value byte %#x", b);
        ck_assert_msg(target.n == 1 && (target.v[0] == CIO__HTTP_OK) == (vchar && b > ' '),
                      "target byte %#x", b);
    }
}
END_TEST

START_TEST(test_http_parse_malformed_lines_are_400)
{
    const char *bad[] = {
        "garbage\r\n\r\n",
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET / FTP/1.1\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET / HTTP/1.1\r\nName : space before colon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\n\tHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_str(bad[i], CIO__HTTP_BAD);
}
END_TEST

START_TEST(test_http_parse_bad_line_is_refused_before_the_head_ends)
{
    const char *early[] = {"\x01\x02\x03 nonsense\r\n",
                           "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n",
                           "GET / HTTP/1.1\r\nContent-Length: x\r\n"};
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        outcome_t o = run_str(early[i]);
        ck_assert_msg(o.n == 1 && o.v[0] == CIO__HTTP_BAD, "%s", early[i]);
    }
    outcome_t o = run_str("GET / HTTP/3.0\r\nHost: x\r\n");
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_BAD_VERSION);
    o = run_str("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n");
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_NOT_IMPL);
}
END_TEST

/* ---- versions and headers -------------------------------------------------------- */

START_TEST(test_http_parse_versions_decide_keep_alive)
{
    expect_str("GET / HTTP/1.1\r\n\r\n", CIO__HTTP_OK);
    expect_str("GET / HTTP/1.9\r\n\r\n", CIO__HTTP_OK); /* a later 1.x reads as 1.1 */
    expect_str("GET / HTTP/1.0\r\n\r\n", CIO__HTTP_OK_CLOSE);
    expect_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", CIO__HTTP_OK_KEEP10);
    expect_str("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", CIO__HTTP_OK_CLOSE);
    expect_str("GET / HTTP/2.0\r\n\r\n", CIO__HTTP_BAD_VERSION);
    expect_str("GET / HTTP/0.9\r\n\r\n", CIO__HTTP_BAD_VERSION);
    outcome_t o = run_str("HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" GET);
    ck_assert_int_eq(o.n, 2);
    ck_assert_int_eq(o.v[0], CIO__HTTP_OK_KEEP10);
    ck_assert(o.head[0]);
    ck_assert(!o.head[1]);
}
END_TEST

START_TEST(test_http_parse_connection_tokens_are_read_in_lists_in_any_case)
{
    expect_str("GET / HTTP/1.1\r\nConnection: upgrade, CLOSE\r\n\r\n", CIO__HTTP_OK_CLOSE);
    expect_str("GET / HTTP/1.1\r\nconnection:close\r\n\r\n", CIO__HTTP_OK_CLOSE);
    expect_str("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", CIO__HTTP_OK);
    expect_str("GET / HTTP/1.1\r\nConnection: ,, \r\n\r\n", CIO__HTTP_OK);
    expect_str("GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", CIO__HTTP_OK);
    expect_str("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
               CIO__HTTP_OK_CLOSE);
}
END_TEST

START_TEST(test_http_parse_transfer_encoding_is_501)
{
    expect_str("POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\n\r\n", CIO__HTTP_NOT_IMPL);
    expect_str("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n",
               CIO__HTTP_NOT_IMPL);
}
END_TEST

START_TEST(test_http_parse_head_flag_belongs_to_the_request_it_answers)
{
    /* An error after a HEAD request line answers that HEAD. */
    outcome_t o = run_str("HEAD / HTTP/1.1\r\nbad\r\n\r\n");
    ck_assert_int_eq(o.n, 1);
    ck_assert_int_eq(o.v[0], CIO__HTTP_BAD);
    ck_assert(o.head[0]);
    /* A HEAD, then a request line too long to be read: that one is no HEAD. */
    static char buf[2 * CIO__HTTP_HEAD_MAX];
    int n = snprintf(buf, sizeof(buf), "HEAD / HTTP/1.1\r\n\r\n");
    memset(buf + n, 'A', sizeof(buf) - (size_t)n);
    o = run(buf, sizeof(buf));
    ck_assert_int_eq(o.n, 2);
    ck_assert(o.head[0]);
    ck_assert_int_eq(o.v[1], CIO__HTTP_TOO_LARGE);
    ck_assert(!o.head[1]);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("http_parse");

    TCase *tc = cio_test_case("stream");
    CIO_TEST(tc, test_http_parse_whole_request_is_read_in_place_to_its_last_byte);
    CIO_TEST(tc, test_http_parse_incomplete_head_waits_for_its_end);
    CIO_TEST(tc, test_http_parse_pipelined_requests_end_one_call_each_in_order);
    CIO_TEST(tc, test_http_parse_every_split_gives_the_verdicts_of_one_read);
    CIO_TEST(tc, test_http_parse_blank_lines_before_a_request_are_skipped);
    suite_add_tcase(s, tc);

    tc = cio_test_case("bodies");
    CIO_TEST(tc, test_http_parse_body_is_skipped_within_and_across_reads);
    CIO_TEST(tc, test_http_parse_equal_content_lengths_are_one);
    CIO_TEST(tc, test_http_parse_bad_content_length_is_400);
    suite_add_tcase(s, tc);

    tc = cio_test_case("limits");
    CIO_TEST(tc, test_http_parse_head_of_the_limit_is_read_one_more_byte_is_431);
    CIO_TEST(tc, test_http_parse_long_line_or_many_headers_are_431_before_the_end);
    suite_add_tcase(s, tc);

    tc = cio_test_case("bytes");
    CIO_TEST(tc, test_http_parse_nul_byte_anywhere_in_a_head_is_400);
    CIO_TEST(tc, test_http_parse_bare_cr_or_lf_is_400_without_waiting);
    CIO_TEST(tc, test_http_parse_control_bytes_in_values_are_400_but_obs_text_is_read);
    CIO_TEST(tc, test_http_parse_every_byte_value_is_judged_as_rfc_9110_says);
    CIO_TEST(tc, test_http_parse_malformed_lines_are_400);
    CIO_TEST(tc, test_http_parse_bad_line_is_refused_before_the_head_ends);
    suite_add_tcase(s, tc);

    tc = cio_test_case("headers");
    CIO_TEST(tc, test_http_parse_versions_decide_keep_alive);
    CIO_TEST(tc, test_http_parse_connection_tokens_are_read_in_lists_in_any_case);
    CIO_TEST(tc, test_http_parse_transfer_encoding_is_501);
    CIO_TEST(tc, test_http_parse_head_flag_belongs_to_the_request_it_answers);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
