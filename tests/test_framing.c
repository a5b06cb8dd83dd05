/*
 * tests/test_framing.c: the framer of coreio/framing.h. Unit tests feed it
 * byte streams cut every way (delimiters and headers split across feeds,
 * frames at and over the limit, callbacks that stop, allocations that
 * fail); cio_framer_write() writes into a socket pair read raw; and a coreio
 * server whose protocol frames with it talks to python3's asyncio over
 * loopback (StreamReader.readline, struct.pack('>I')).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrun.h"
#include "testutil.h"

/* loop/alloc.h's test hook, exported by the library. */
void cio__alloc_fail_after(unsigned long n);

/* ---- collecting frames ----------------------------------------------------- */

/* The frames seen as "frame|frame|" ("[N bytes: first 8]" when long), and where each lay. */
typedef struct got {
    char text[16384];
    size_t ntext;
    const void *at[512];
    size_t len[512];
    int n;
    int stop_at; /* return stop_value on this frame (1-based); 0: never */
    int stop_value;
    cio_framer_t *f; /* for the callbacks that misuse it */
} got_t;

static int collect(void *arg, const void *frame, size_t len)
{
    got_t *g = arg;
    ck_assert_ptr_nonnull(frame);
    ck_assert_int_lt(g->n, 512);
    ck_assert_uint_lt(g->ntext + 64, sizeof(g->text));
    if (len <= 32) {
        memcpy(g->text + g->ntext, frame, len);
        g->ntext += len;
    } else {
        g->ntext += (size_t)sprintf(g->text + g->ntext, "[%zu bytes: %.8s]", len, (char *)frame);
    }
    g->text[g->ntext++] = '|';
    g->text[g->ntext] = '\0';
    g->at[g->n] = frame;
    g->len[g->n++] = len;
    return g->n == g->stop_at ? g->stop_value : 0;
}

static void init_lines(cio_framer_t *f, const char *delim, size_t max)
{
    cio_framer_opts_t o = {.kind = CIO_FRAME_LINES, .max_frame = max};
    if (delim) {
        o.delimiter = delim;
        o.delimiter_len = strlen(delim);
    }
    int rc = cio_framer_init(f, &o);
    ck_assert_msg(rc == 0, "init: %s", cio_err_name(rc));
}

static void init_length(cio_framer_t *f, unsigned size, bool includes_header, size_t max)
{
    cio_framer_opts_t o = {.kind = CIO_FRAME_LENGTH,
                           .length_size = size,
                           .length_includes_header = includes_header,
                           .max_frame = max};
    int rc = cio_framer_init(f, &o);
    ck_assert_msg(rc == 0, "init: %s", cio_err_name(rc));
}

static int feed(cio_framer_t *f, got_t *g, const void *data, size_t len)
{
    return cio_framer_feed(f, data, len, collect, g);
}

static int feed_str(cio_framer_t *f, got_t *g, const char *s)
{
    return feed(f, g, s, strlen(s));
}

#define ASSERT_RC(expr, want)                                                                      \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == (want), "%s: %s (%d), want %s", #expr, cio_err_name(rc_), rc_,        \
                      cio_err_name(want));                                                         \
    } while (0)

/* ---- options ------------------------------------------------------------------ */

/* NULL options: lines ended by "\n", 64 KiB at most; nothing allocated. */
START_TEST(test_init_defaults_to_newline_lines_of_64_kib)
{
    cio_framer_t f;
    got_t g = {0};
    ASSERT_RC(cio_framer_init(&f, NULL), 0);
    ck_assert_ptr_null(f.buf);
    ASSERT_RC(feed_str(&f, &g, "a\r\nb\n"), 0);
    ck_assert_str_eq(g.text, "a\r|b|");
    char *big = malloc(CIO_FRAMER_DEFAULT_MAX + 1);
    memset(big, 'x', CIO_FRAMER_DEFAULT_MAX);
    big[CIO_FRAMER_DEFAULT_MAX] = '\n';
    ASSERT_RC(feed(&f, &g, big, CIO_FRAMER_DEFAULT_MAX + 1), 0);
    ck_assert_str_eq(g.text, "a\r|b|[65536 bytes: xxxxxxxx]|");
    ASSERT_RC(feed(&f, &g, big, CIO_FRAMER_DEFAULT_MAX), 0);
    ASSERT_RC(feed_str(&f, &g, "y"), CIO_EFRAMETOOLONG);
    free(big);
    cio_framer_clear(&f);
}
END_TEST

/* Every option out of range, or of the other kind, is refused. */
START_TEST(test_init_rejects_bad_options)
{
    static const cio_framer_opts_t bad[] = {
        {.kind = 2},
        {.kind = CIO_FRAME_LINES, .delimiter = "", .delimiter_len = 0},
        {.kind = CIO_FRAME_LINES, .delimiter = "123456789", .delimiter_len = 9},
        {.kind = CIO_FRAME_LINES, .delimiter = NULL, .delimiter_len = 2},
        {.kind = CIO_FRAME_LINES, .length_size = 4},
        {.kind = CIO_FRAME_LINES, .length_includes_header = true},
        {.kind = CIO_FRAME_LENGTH, .length_size = 3},
        {.kind = CIO_FRAME_LENGTH, .length_size = 16},
        {.kind = CIO_FRAME_LENGTH, .delimiter = "\n", .delimiter_len = 1},
        {.kind = CIO_FRAME_LINES, .max_frame = SIZE_MAX / 2 + 1},
    };
    cio_framer_t f;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(cio_framer_init(&f, &bad[i]) == -EINVAL, "options %zu accepted", i);
    ASSERT_RC(cio_framer_init(NULL, NULL), -EINVAL);
    cio_framer_opts_t eight = {.delimiter = "12345678", .delimiter_len = 8};
    ASSERT_RC(cio_framer_init(&f, &eight), 0);
    cio_framer_opts_t length = {.kind = CIO_FRAME_LENGTH};
    ASSERT_RC(cio_framer_init(&f, &length), 0);
    got_t g = {0};
    ASSERT_RC(feed(&f, &g, "\0\0\0\2hi", 6), 0); /* the default header is 4 bytes */
    ck_assert_str_eq(g.text, "hi|");
}
END_TEST

START_TEST(test_feed_rejects_bad_arguments)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, NULL, 0);
    ASSERT_RC(cio_framer_feed(NULL, "a\n", 2, collect, &g), -EINVAL);
    ASSERT_RC(cio_framer_feed(&f, "a\n", 2, NULL, &g), -EINVAL);
    ASSERT_RC(cio_framer_feed(&f, NULL, 2, collect, &g), -EINVAL);
    ASSERT_RC(cio_framer_feed(&f, NULL, 0, collect, &g), 0);
    ck_assert_int_eq(g.n, 0);
    cio_framer_clear(NULL);
}
END_TEST

/* ---- lines ------------------------------------------------------------------------- */

/* Whole lines are handed out where they lie in the bytes fed, not copied. */
START_TEST(test_lines_in_one_feed_are_delivered_in_place_in_order)
{
    cio_framer_t f;
    got_t g = {0};
    static const char s[] = "one\ntwo\nthree\n";
    init_lines(&f, NULL, 16);
    ASSERT_RC(feed_str(&f, &g, s), 0);
    ck_assert_str_eq(g.text, "one|two|three|");
    ck_assert_ptr_eq(g.at[0], s);
    ck_assert_ptr_eq(g.at[1], s + 4);
    ck_assert_ptr_eq(g.at[2], s + 8);
    ck_assert_uint_eq(cio_framer_pending(&f), 0);
    ck_assert_ptr_null(f.buf);
}
END_TEST

START_TEST(test_empty_lines_are_empty_frames)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, "\r\n", 8);
    ASSERT_RC(feed_str(&f, &g, "\r\n\r\na\r\n\r\n"), 0);
    ck_assert_int_eq(g.n, 4);
    ck_assert_str_eq(g.text, "||a||");
    ck_assert_uint_eq(g.len[0], 0);
    ck_assert_uint_eq(g.len[3], 0);
}
END_TEST

/* A line cut by the end of a feed is kept, completed by the next, then the buffer goes. */
START_TEST(test_partial_line_is_kept_until_its_delimiter_then_freed)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, NULL, 64);
    ASSERT_RC(feed_str(&f, &g, "first\nsec"), 0);
    ck_assert_str_eq(g.text, "first|");
    ck_assert_uint_eq(cio_framer_pending(&f), 3);
    ck_assert_ptr_nonnull(f.buf);
    ck_assert_uint_le(f.cap, 64 + 1);
    ASSERT_RC(feed_str(&f, &g, "ond"), 0);
    ck_assert_uint_eq(cio_framer_pending(&f), 6);
    static const char rest[] = "\nthird\n";
    ASSERT_RC(feed_str(&f, &g, rest), 0);
    ck_assert_str_eq(g.text, "first|second|third|");
    ck_assert_ptr_eq(g.at[2], rest + 1); /* back to delivering in place */
    ck_assert_uint_eq(cio_framer_pending(&f), 0);
    ck_assert_ptr_null(f.buf); /* an idle connection holds no buffer */
}
END_TEST

/* The frames of @p s fed whole, split once at every point, split twice, and a byte at a time. */
static void check_every_split(const cio_framer_opts_t *o, const char *s, const char *want)
{
    size_t n = strlen(s);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            cio_framer_t f;
            got_t g = {0};
            ASSERT_RC(cio_framer_init(&f, o), 0);
            ASSERT_RC(feed(&f, &g, s, i), 0);
            ASSERT_RC(feed(&f, &g, s + i, j - i), 0);
            ASSERT_RC(feed(&f, &g, s + j, n - j), 0);
            ck_assert_msg(strcmp(g.text, want) == 0, "split at %zu and %zu: \"%s\", want \"%s\"", i,
                          j, g.text, want);
            cio_framer_clear(&f);
        }
    }
    cio_framer_t f;
    got_t g = {0};
    ASSERT_RC(cio_framer_init(&f, o), 0);
    for (size_t i = 0; i < n; i++)
        ASSERT_RC(feed(&f, &g, s + i, 1), 0);
    ck_assert_str_eq(g.text, want);
    cio_framer_clear(&f);
}

/* Delimiters of one to eight bytes, one that overlaps itself among them, cut anywhere. */
START_TEST(test_delimiter_split_across_feeds_is_found_at_every_split_point)
{
    cio_framer_opts_t o = {.max_frame = 32};
    o.delimiter = "\n";
    o.delimiter_len = 1;
    check_every_split(&o, "ab\n\ncd\r\nlonger line\ntail", "ab||cd\r|longer line|");
    o.delimiter = "\r\n";
    o.delimiter_len = 2;
    check_every_split(&o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\r\n\n\r\nz\r",
                      "GET / HTTP/1.1|Host: x||\r|\n|");
    o.delimiter = "--BOUND-";
    o.delimiter_len = 8;
    check_every_split(&o, "a--BOUND---BOUND---BOUNDb--BOUND-", "a||--BOUNDb|");
    o.delimiter = "aa";
    o.delimiter_len = 2;
    check_every_split(&o, "xaaay aaaaab", "x|ay ||");
}
END_TEST

/* ---- lines and the limit ------------------------------------------------------------ */

START_TEST(test_line_of_exactly_max_frame_is_delivered)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, "\r\n", 8);
    ASSERT_RC(feed_str(&f, &g, "12345678\r\n"), 0);
    ASSERT_RC(feed_str(&f, &g, "abcdefg"), 0);
    ASSERT_RC(feed_str(&f, &g, "h\r"), 0);
    ck_assert_uint_eq(cio_framer_pending(&f), 9);
    ASSERT_RC(feed_str(&f, &g, "\n"), 0);
    ck_assert_str_eq(g.text, "12345678|abcdefgh|");
}
END_TEST

START_TEST(test_line_one_byte_over_max_frame_fails)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, NULL, 8);
    ASSERT_RC(feed_str(&f, &g, "ok\n123456789\nnever\n"), CIO_EFRAMETOOLONG);
    ck_assert_str_eq(g.text, "ok|");
    ck_assert_uint_eq(cio_framer_pending(&f), 0);
    ck_assert_ptr_null(f.buf);
}
END_TEST

/*
 * A byte at a time: the error comes with byte max_frame + delimiter_len of
 * the line, not before and not after, and the framer never holds more than
 * max_frame + delimiter_len - 1 bytes on the way.
 */
START_TEST(test_line_over_max_frame_fails_as_soon_as_max_plus_delimiter_bytes_arrive)
{
    static const char *delims[] = {"\n", "\r\n", "--BOUND-"};
    for (size_t d = 0; d < 3; d++) {
        size_t max = 16, dl = strlen(delims[d]);
        cio_framer_t f;
        got_t g = {0};
        init_lines(&f, delims[d], max);
        ASSERT_RC(feed_str(&f, &g, "x"), 0);
        ASSERT_RC(feed_str(&f, &g, delims[d]), 0);
        for (size_t i = 1; i < max + dl; i++) {
            ASSERT_RC(feed_str(&f, &g, "y"), 0);
            ck_assert_uint_eq(cio_framer_pending(&f), i);
            ck_assert_uint_le(f.cap, max + dl);
        }
        ASSERT_RC(feed_str(&f, &g, "y"), CIO_EFRAMETOOLONG);
        ck_assert_str_eq(g.text, "x|");
        ck_assert_ptr_null(f.buf);
    }
}
END_TEST

/* The delimiter arrives split, but starts one byte past max_frame. */
START_TEST(test_line_whose_split_delimiter_starts_past_max_frame_fails)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, "abc", 4);
    ASSERT_RC(feed_str(&f, &g, "xxxxxa"), 0);
    ASSERT_RC(feed_str(&f, &g, "bc"), CIO_EFRAMETOOLONG);
    ck_assert_int_eq(g.n, 0);
    init_lines(&f, "abc", 4);
    ASSERT_RC(feed_str(&f, &g, "xxxxa"), 0);
    ASSERT_RC(feed_str(&f, &g, "bc"), 0);
    ck_assert_str_eq(g.text, "xxxx|");
}
END_TEST

/* After a framing error every feed returns it; clear makes the framer new again. */
START_TEST(test_framing_error_is_sticky_until_clear)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, NULL, 4);
    ASSERT_RC(feed_str(&f, &g, "toolong\n"), CIO_EFRAMETOOLONG);
    ASSERT_RC(feed_str(&f, &g, "ok\n"), CIO_EFRAMETOOLONG);
    ASSERT_RC(feed(&f, &g, NULL, 0), CIO_EFRAMETOOLONG);
    ck_assert_int_eq(g.n, 0);
    cio_framer_clear(&f);
    ASSERT_RC(feed_str(&f, &g, "ok\n"), 0);
    ck_assert_str_eq(g.text, "ok|");
}
END_TEST

/* ---- length-prefixed frames ---------------------------------------------------------- */

/* @p payload after a big-endian header of @p size bytes holding @p value, into @p out. */
static size_t put_frame(unsigned char *out, unsigned size, uint64_t value, const char *payload)
{
    for (unsigned i = 0; i < size; i++)
        out[i] = (unsigned char)(value >> (8 * (size - 1 - i)));
    memcpy(out + size, payload, strlen(payload));
    return size + strlen(payload);
}

START_TEST(test_length_frames_are_read_with_each_header_size)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        unsigned char s[64];
        size_t n = put_frame(s, sizes[i], 5, "hello");
        n += put_frame(s + n, sizes[i], 0, "");
        n += put_frame(s + n, sizes[i], 3, "abc");
        cio_framer_t f;
        got_t g = {0};
        init_length(&f, sizes[i], false, 100);
        ASSERT_RC(feed(&f, &g, s, n), 0);
        ck_assert_str_eq(g.text, "hello||abc|");
        ck_assert_ptr_eq(g.at[0], s + sizes[i]); /* in place */
        ck_assert_ptr_null(f.buf);
    }
}
END_TEST

START_TEST(test_length_header_split_across_feeds_is_read_at_every_split_point)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        char s[64] = {0};
        size_t n = put_frame((unsigned char *)s, sizes[i], 2, "hi");
        n += put_frame((unsigned char *)s + n, sizes[i], 0, "");
        n += put_frame((unsigned char *)s + n, sizes[i], 4, "four");
        cio_framer_opts_t o = {.kind = CIO_FRAME_LENGTH, .length_size = sizes[i], .max_frame = 9};
        for (size_t a = 0; a <= n; a++) {
            for (size_t b = a; b <= n; b++) {
                cio_framer_t f;
                got_t g = {0};
                ASSERT_RC(cio_framer_init(&f, &o), 0);
                ASSERT_RC(feed(&f, &g, s, a), 0);
                ASSERT_RC(feed(&f, &g, s + a, b - a), 0);
                ASSERT_RC(feed(&f, &g, s + b, n - b), 0);
                ck_assert_msg(strcmp(g.text, "hi||four|") == 0, "size %u split %zu %zu: %s",
                              sizes[i], a, b, g.text);
                ck_assert_ptr_null(f.buf);
            }
        }
    }
}
END_TEST

START_TEST(test_zero_length_frames_are_delivered)
{
    cio_framer_t f;
    got_t g = {0};
    init_length(&f, 2, false, 10);
    ASSERT_RC(feed(&f, &g, "\0\0\0\0\0", 5), 0);
    ck_assert_int_eq(g.n, 2);
    ck_assert_uint_eq(g.len[0] + g.len[1], 0);
    ck_assert_uint_eq(cio_framer_pending(&f), 1);
    ASSERT_RC(feed(&f, &g, "\0", 1), 0);
    ck_assert_int_eq(g.n, 3);
    ck_assert_ptr_nonnull(g.at[2]);
    ck_assert_ptr_null(f.buf);
}
END_TEST

/* A header that counts itself: 2 + payload; a value below 2 is a protocol error. */
START_TEST(test_length_that_includes_the_header_counts_it)
{
    cio_framer_t f;
    got_t g = {0};
    init_length(&f, 2, true, 4);
    ASSERT_RC(feed(&f, &g, "\0\5abc\0\2\0\6abcd", 13), 0);
    ck_assert_str_eq(g.text, "abc||abcd|");
    ASSERT_RC(feed(&f, &g, "\0\7", 2), CIO_EFRAMETOOLONG);
    init_length(&f, 2, true, 4);
    ASSERT_RC(feed(&f, &g, "\0", 1), 0);
    ASSERT_RC(feed(&f, &g, "\1", 1), -EPROTO);
    ASSERT_RC(feed(&f, &g, "\0\2", 2), -EPROTO);
}
END_TEST

/* The error comes with the header's last byte, before any of the payload. */
START_TEST(test_length_over_max_frame_fails_when_the_header_arrives)
{
    cio_framer_t f;
    got_t g = {0};
    init_length(&f, 4, false, 10);
    ASSERT_RC(feed(&f, &g,
                   "\0\0\0\12"
                   "0123456789"
                   "\0\0",
                   16),
              0);
    ck_assert_str_eq(g.text, "0123456789|");
    ASSERT_RC(feed(&f, &g, "\0", 1), 0);
    ASSERT_RC(feed(&f, &g, "\13", 1), CIO_EFRAMETOOLONG);
    ck_assert_ptr_null(f.buf);
}
END_TEST

/* An 8-byte length near 2^64 fails at once; the buffer never grew past the header. */
START_TEST(test_huge_eight_byte_length_fails_without_allocating_it)
{
    cio_framer_t f;
    got_t g = {0};
    init_length(&f, 8, false, 0);
    ASSERT_RC(feed(&f, &g, "\xff\xff\xff\xff", 4), 0);
    ck_assert_uint_eq(f.cap, 8);
    ASSERT_RC(feed(&f, &g, "\xff\xff\xff\xf0payload", 11), CIO_EFRAMETOOLONG);
    ck_assert_ptr_null(f.buf);
    init_length(&f, 8, true, 0);
    ASSERT_RC(feed(&f, &g, "\x80\0\0\0\0\0\0\0", 8), CIO_EFRAMETOOLONG);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* A length frame cut short is kept in a buffer of exactly its size. */
START_TEST(test_length_frame_buffer_is_sized_to_the_frame)
{
    cio_framer_t f;
    got_t g = {0};
    init_length(&f, 4, false, 1 << 20);
    ASSERT_RC(feed(&f, &g,
                   "\0\1\206\240"
                   "0123456789",
                   14),
              0); /* 100000 bytes follow */
    ck_assert_uint_eq(f.cap, 4 + 100000);
    ck_assert_uint_eq(cio_framer_pending(&f), 14);
    char *rest = calloc(1, 100000);
    ASSERT_RC(feed(&f, &g, rest, 100000 - 10), 0);
    ck_assert_str_eq(g.text, "[100000 bytes: 01234567]|");
    ck_assert_ptr_null(f.buf);
    free(rest);
}
END_TEST

/* ---- stopping --------------------------------------------------------------------- */

/* The callback stops on "b": "c", "d" and the start of "e" wait for the next feed. */
START_TEST(test_stop_in_mid_chunk_keeps_the_rest_for_the_next_feed)
{
    cio_framer_t f;
    got_t g = {.stop_at = 2, .stop_value = 7};
    init_lines(&f, NULL, 8);
    ASSERT_RC(feed_str(&f, &g, "a\nb\nc\nd\ne"), 7);
    ck_assert_str_eq(g.text, "a|b|");
    ck_assert_uint_eq(cio_framer_pending(&f), 5);
    ASSERT_RC(feed(&f, &g, NULL, 0), 0);
    ck_assert_str_eq(g.text, "a|b|c|d|");
    ck_assert_uint_eq(cio_framer_pending(&f), 1);
    ASSERT_RC(feed_str(&f, &g, "\n"), 0);
    ck_assert_str_eq(g.text, "a|b|c|d|e|");
    ck_assert_ptr_null(f.buf);
}
END_TEST

/* Fed while stopped, new bytes queue behind the kept ones, in order. */
START_TEST(test_bytes_fed_while_stopped_wait_behind_the_kept_ones)
{
    cio_framer_t f;
    got_t g = {.stop_at = 1, .stop_value = 1};
    init_length(&f, 1, false, 8);
    ASSERT_RC(feed(&f, &g, "\1a\1b\1", 5), 1);
    g.stop_at = 2;
    ASSERT_RC(feed(&f, &g, "c\1d", 3), 1); /* "b" comes, and stops again */
    ck_assert_str_eq(g.text, "a|b|");
    ck_assert_uint_eq(cio_framer_pending(&f), 4);
    ASSERT_RC(feed(&f, &g, "\0", 1), 0);
    ck_assert_str_eq(g.text, "a|b|c|d||");
    ck_assert_ptr_null(f.buf);
}
END_TEST

/* A negative stop value is the callback's, not a framing error: the framer goes on. */
START_TEST(test_negative_stop_value_is_returned_and_the_framer_goes_on)
{
    cio_framer_t f;
    got_t g = {.stop_at = 1, .stop_value = -EPROTO};
    init_lines(&f, NULL, 8);
    ASSERT_RC(feed_str(&f, &g, "a\nb\n"), -EPROTO);
    ASSERT_RC(feed_str(&f, &g, "c\n"), 0);
    ck_assert_str_eq(g.text, "a|b|c|");
}
END_TEST

/* The frame that stops is one completed from the buffer: the rest of the feed is kept. */
START_TEST(test_stop_on_a_frame_completed_from_the_buffer_keeps_the_rest)
{
    cio_framer_t f;
    got_t g = {.stop_at = 1, .stop_value = 1};
    init_lines(&f, "\r\n", 8);
    ASSERT_RC(feed_str(&f, &g, "ab\r"), 0);
    ASSERT_RC(feed_str(&f, &g, "\ncd\r\ne"), 1);
    ck_assert_str_eq(g.text, "ab|");
    ck_assert_uint_eq(cio_framer_pending(&f), 5);
    ASSERT_RC(feed(&f, &g, NULL, 0), 0);
    ASSERT_RC(feed_str(&f, &g, "\r\n"), 0);
    ck_assert_str_eq(g.text, "ab|cd|e|");
}
END_TEST

/* Kept bytes are framed by the same rules: a line too long among them fails when reached. */
START_TEST(test_kept_bytes_with_a_line_too_long_fail_when_reached)
{
    cio_framer_t f;
    got_t g = {.stop_at = 1, .stop_value = 1};
    init_lines(&f, NULL, 4);
    ASSERT_RC(feed_str(&f, &g, "a\nbb\nxxxxxxxxxxxx\n"), 1);
    ck_assert_uint_eq(cio_framer_pending(&f), 16);
    ASSERT_RC(feed(&f, &g, NULL, 0), CIO_EFRAMETOOLONG);
    ck_assert_str_eq(g.text, "a|bb|");
    ck_assert_uint_eq(cio_framer_pending(&f), 0);
}
END_TEST

/* ---- misuse and memory ------------------------------------------------------------ */

static int feed_again(void *arg, const void *frame, size_t len)
{
    got_t *g = arg;
    collect(g, frame, len);
    return cio_framer_feed(g->f, "x\n", 2, collect, g);
}

static int clear_it(void *arg, const void *frame, size_t len)
{
    got_t *g = arg;
    cio_framer_clear(g->f);
    return 0;
}

#ifndef NDEBUG
/* Feeding its own framer from the frame callback is a bug: an assert stops it. */
START_TEST(test_feed_from_the_frame_callback_aborts)
{
    cio_framer_t f;
    got_t g = {.f = &f};
    init_lines(&f, NULL, 8);
    cio_framer_feed(&f, "a\n", 2, feed_again, &g);
}
END_TEST

START_TEST(test_clear_from_the_frame_callback_aborts)
{
    cio_framer_t f;
    got_t g = {.f = &f};
    init_lines(&f, NULL, 8);
    cio_framer_feed(&f, "a", 1, collect, &g);
    cio_framer_feed(&f, "\n", 1, clear_it, &g);
}
END_TEST
#else
/* Built without asserts, a feed from the frame callback is refused instead. */
START_TEST(test_feed_from_the_frame_callback_is_refused_without_asserts)
{
    cio_framer_t f;
    got_t g = {.f = &f};
    init_lines(&f, NULL, 8);
    ASSERT_RC(cio_framer_feed(&f, "a\nb\n", 4, feed_again, &g), -EBUSY);
    (void)clear_it;
}
END_TEST
#endif

/* A failed allocation loses bytes: -ENOMEM, for good, after the frames already whole. */
START_TEST(test_allocation_failure_is_enomem_and_sticky)
{
    cio_framer_t f;
    got_t g = {0};
    init_lines(&f, NULL, 64);
    cio__alloc_fail_after(1);
    int rc = feed_str(&f, &g, "whole\npartial");
    cio__alloc_fail_after(0);
    ASSERT_RC(rc, -ENOMEM);
    ck_assert_str_eq(g.text, "whole|");
    ck_assert_uint_eq(cio_framer_pending(&f), 0);
    ASSERT_RC(feed_str(&f, &g, "more\n"), -ENOMEM);
    cio_framer_clear(&f);
    ASSERT_RC(feed_str(&f, &g, "more\n"), 0);
    ck_assert_str_eq(g.text, "whole|more|");
}
END_TEST

/* ---- writing, into a socket pair read raw ------------------------------------------------ */

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

static const cio_protocol_ops_t quiet_ops = {0};

typedef struct write_case {
    cio_framer_opts_t o;
    const char *data;
    size_t len;
    int rc;
    const char *wire; /* what the peer reads */
    size_t wire_len;
} write_case_t;

static int write_fn(void *arg, void **result)
{
    const write_case_t *cases = arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cio_protocol_t proto = {&quiet_ops};
    cio_future_t *fut =
        cio_loop_connect_accepted_socket(cio_get_running_loop(), static_factory, &proto, sv[0], NULL);
    void *t = NULL;
    ASSERT_RC(cio_await(fut, &t), 0);
    cio_future_unref(fut);
    for (const write_case_t *c = cases; c->data; c++) {
        cio_framer_t f;
        ASSERT_RC(cio_framer_init(&f, &c->o), 0);
        ASSERT_RC(cio_framer_write(&f, t, c->data, c->len), c->rc);
        char buf[512];
        ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
        if (c->wire_len == 0) {
            ck_assert_int_eq(n, -1);
            continue;
        }
        ck_assert_int_eq(n, (ssize_t)c->wire_len);
        ck_assert_mem_eq(buf, c->wire, c->wire_len);
    }
    ASSERT_RC(cio_framer_write(NULL, t, "x", 1), -EINVAL);
    cio_transport_close(t);
    close(sv[1]);
    return 0;
}

/* The header, or the delimiter, goes out with the bytes, in one write. */
START_TEST(test_write_sends_a_frame_as_the_reader_expects_it)
{
    static const write_case_t cases[] = {
        {{.delimiter = "\r\n", .delimiter_len = 2}, "abc", 3, 0, "abc\r\n", 5},
        {{0}, "", 0, 0, "\n", 1},
        {{.kind = CIO_FRAME_LENGTH}, "hello", 5, 0, "\0\0\0\5hello", 9},
        {{.kind = CIO_FRAME_LENGTH, .length_size = 2, .length_includes_header = true},
         "hi",
         2,
         0,
         "\0\4hi",
         4},
        {{.kind = CIO_FRAME_LENGTH, .length_size = 8}, "", 0, 0, "\0\0\0\0\0\0\0\0", 8},
        {{.kind = CIO_FRAME_LENGTH, .length_size = 1, .max_frame = 300}, "x", 1, 0, "\1x", 2},
        {.data = NULL},
    };
    ck_assert_int_eq(cio_run(write_fn, (void *)cases, false, NULL), 0);
}
END_TEST

/* What the reader would refuse, or cut differently, is not written at all. */
START_TEST(test_write_refuses_frames_the_reader_would_not_read_back)
{
    static char big[300];
    static const write_case_t cases[] = {
        {{.max_frame = 4}, "12345", 5, CIO_EFRAMETOOLONG, NULL, 0},
        {{.max_frame = 4}, "1234", 4, 0, "1234\n", 5},
        {{.kind = CIO_FRAME_LENGTH, .length_size = 1, .max_frame = 300},
         big,
         256,
         CIO_EFRAMETOOLONG,
         NULL,
         0},
        {{.kind = CIO_FRAME_LENGTH, .length_size = 1, .length_includes_header = true},
         big,
         255,
         CIO_EFRAMETOOLONG,
         NULL,
         0},
        {{0}, "two\nlines", 9, -EINVAL, NULL, 0},
        {{.delimiter = "\r\n", .delimiter_len = 2}, "ends in CR\r", 11, 0, "ends in CR\r\r\n", 13},
        /* "xa" + "aa" would read as "x" then "a...": the delimiter overlaps itself. */
        {{.delimiter = "aa", .delimiter_len = 2}, "xa", 2, -EINVAL, NULL, 0},
        {{.delimiter = "aa", .delimiter_len = 2}, "ax", 2, 0, "axaa", 4},
        {.data = NULL},
    };
    ck_assert_int_eq(cio_run(write_fn, (void *)cases, false, NULL), 0);
}
END_TEST

/* ---- a framing server and python3's asyncio, over loopback ---------------------------- */

#define MAX_CONN 8

/*
 * Inside a task: let the loop run until @p cond holds. The deadline only keeps
 * a broken build from hanging; passing runs take milliseconds.
 */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 10.0;                              \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.001);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)

typedef struct server server_t;

/* One connection: a protocol that echoes each frame back, framed the same way. */
typedef struct conn {
    cio_protocol_t base;
    cio_framer_t framer;
    cio_transport_t *t; /* from connection_made to connection_lost */
    server_t *srv;
    int frames;
} conn_t;

struct server {
    cio_framer_opts_t opts;
    bool pause_each; /* pause reading after each frame, resume from a callback */
    conn_t conns[MAX_CONN];
    int accepted, lost;
    int lost_err[MAX_CONN], lost_frames[MAX_CONN];
    bool eof[MAX_CONN];
    size_t eof_pending[MAX_CONN];
    int resumes;
};

static int conn_frame(void *arg, const void *frame, size_t len);

/* The pausing protocol's resume: deliver what the framer kept, then read again. */
static int conn_resume(void *arg)
{
    conn_t *c = arg;
    if (!c->t)
        return 0;
    c->srv->resumes++;
    cio_transport_resume_reading(c->t);
    int rc = cio_framer_feed(&c->framer, NULL, 0, conn_frame, c);
    if (rc < 0)
        cio_transport_abort(c->t); /* outside data_received: close it ourselves */
    return 0;
}

static int conn_frame(void *arg, const void *frame, size_t len)
{
    conn_t *c = arg;
    c->frames++;
    int rc = cio_framer_write(&c->framer, c->t, frame, len);
    if (rc < 0 || !c->srv->pause_each)
        return rc;
    cio_transport_pause_reading(c->t);
    ck_assert_int_eq(cio_loop_call_soon(cio_transport_get_loop(c->t), conn_resume, c, NULL), 0);
    return 1;
}

static int conn_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((conn_t *)p)->t = t;
    return 0;
}

static int conn_data(cio_protocol_t *p, const void *data, size_t len)
{
    conn_t *c = (conn_t *)p;
    return cio_framer_feed(&c->framer, data, len, conn_frame, c);
}

/* At EOF, what the framer holds is a truncated last frame. */
static int conn_eof(cio_protocol_t *p)
{
    conn_t *c = (conn_t *)p;
    int id = (int)(c - c->srv->conns);
    c->srv->eof[id] = true;
    c->srv->eof_pending[id] = cio_framer_pending(&c->framer);
    return 0;
}

static void conn_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    int id = (int)(c - c->srv->conns);
    c->srv->lost_err[id] = err;
    c->srv->lost_frames[id] = c->frames;
    c->srv->lost++;
    cio_framer_clear(&c->framer);
    c->t = NULL;
}

static const cio_protocol_ops_t conn_ops = {
    .connection_made = conn_made,
    .connection_lost = conn_lost,
    .data_received = conn_data,
    .eof_received = conn_eof,
};

static cio_protocol_t *conn_factory(void *arg)
{
    server_t *srv = arg;
    ck_assert_int_lt(srv->accepted, MAX_CONN);
    conn_t *c = &srv->conns[srv->accepted++];
    *c = (conn_t){.base = {&conn_ops}, .srv = srv};
    ck_assert_int_eq(cio_framer_init(&c->framer, &srv->opts), 0);
    return &c->base;
}

typedef struct exc {
    int calls;
    int error;
    char message[128];
} exc_t;

static int exc_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    exc_t *e = arg;
    e->calls++;
    e->error = ctx->error;
    snprintf(e->message, sizeof(e->message), "%s", ctx->message ? ctx->message : "");
    return 0;
}

/* Inside a task: listen on 127.0.0.1, an ephemeral port, written into @p port. */
static cio_server_t *serve(server_t *srv, char *port, size_t len)
{
    cio_future_t *f =
        cio_loop_create_server(cio_get_running_loop(), conn_factory, srv, "127.0.0.1", "0", NULL);
    void *s = NULL;
    ASSERT_RC(cio_await(f, &s), 0);
    cio_future_unref(f);
    int fd;
    ck_assert_uint_ge(cio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, len, "%d", ntohs(sin.sin_port));
    return s;
}

/* Inside a task: python3 -c @p script @p port; its exit status, -1 after 15 s (killed). */
static int run_python(const char *script, const char *port, char *out, size_t outlen)
{
    char *argv[] = {(char *)PYTHON, (char *)"-c", (char *)script, (char *)port, NULL};
    return run_captured(argv, out, outlen, 15.0);
}

/*
 * Lines sent in one write, a byte per write, and split in two writes at
 * every byte boundary; each echo is read with StreamReader.readline. Last, a
 * line without its delimiter, then EOF: the server's eof_received sees it
 * pending and closes.
 */
static const char lines_script[] =
    "import asyncio, sys\n"
    "LINES = [b'hello', b'', b'a line with spaces and \\r inside', b'x' * 300, b'last']\n"
    "SHORT = b'ab\\n\\ncd\\r\\nlonger line\\n'\n"
    "async def expect(r, lines):\n"
    "    for l in lines:\n"
    "        got = await asyncio.wait_for(r.readline(), 10)\n"
    "        if got != l + b'\\n':\n"
    "            sys.exit('expected %r, got %r' % (l + b'\\n', got))\n"
    "async def main():\n"
    "    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]))\n"
    "    payload = b''.join(l + b'\\n' for l in LINES)\n"
    "    w.write(payload)\n"
    "    await w.drain()\n"
    "    await expect(r, LINES)\n"
    "    for i in range(len(payload)):\n"
    "        w.write(payload[i:i + 1])\n"
    "        await w.drain()\n"
    "        await asyncio.sleep(0.0002)\n"
    "    await expect(r, LINES)\n"
    "    short = SHORT.split(b'\\n')[:-1]\n"
    "    for i in range(1, len(SHORT)):\n"
    "        w.write(SHORT[:i])\n"
    "        await w.drain()\n"
    "        await asyncio.sleep(0.001)\n"
    "        w.write(SHORT[i:])\n"
    "        await w.drain()\n"
    "        await expect(r, short)\n"
    "    w.write(b'tail without newline')\n"
    "    w.write_eof()\n"
    "    rest = await asyncio.wait_for(r.read(), 10)\n"
    "    if rest != b'':\n"
    "        sys.exit('expected EOF, got %r' % rest)\n"
    "    w.close()\n"
    "    print('OK', flush=True)\n"
    "asyncio.run(main())\n";

#define LINES_FRAMES (5 + 5 + 19 * 4) /* LINES twice, the 4 SHORT lines at 19 splits */

static int lines_echo_fn(void *arg, void **result)
{
    server_t *srv = arg;
    char port[16], out[4096];
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    cio_server_t *s = serve(srv, port, sizeof(port));
    int status = run_python(lines_script, port, out, sizeof(out));
    ck_assert_msg(status == 0 && strcmp(out, "OK\n") == 0, "python3 exited %d: %s", status, out);
    WAIT_UNTIL(srv->lost == 1);
    ck_assert_int_eq(srv->accepted, 1);
    ck_assert_int_eq(srv->lost_frames[0], LINES_FRAMES);
    ck_assert_msg(srv->lost_err[0] == 0, "connection_lost(%s)", cio_err_name(srv->lost_err[0]));
    ck_assert(srv->eof[0]);
    ck_assert_uint_eq(srv->eof_pending[0], strlen("tail without newline"));
    ck_assert_int_eq(e.calls, 0);
    cio_server_free(s);
    return 0;
}

START_TEST(test_lines_echo_to_asyncio_readline_whatever_the_cuts)
{
    if (!have_python())
        return;
    server_t srv = {.opts = {.max_frame = 1024}};
    ck_assert_int_eq(cio_run(lines_echo_fn, &srv, false, NULL), 0);
}
END_TEST

/* A protocol that pauses reading after each line, and resumes later, loses none. */
START_TEST(test_lines_echo_when_the_protocol_pauses_after_each_line)
{
    if (!have_python())
        return;
    server_t srv = {.opts = {.max_frame = 1024}, .pause_each = true};
    ck_assert_int_eq(cio_run(lines_echo_fn, &srv, false, NULL), 0);
    ck_assert_int_eq(srv.resumes, LINES_FRAMES);
}
END_TEST

/*
 * B talks; A sends a line and then one over max_frame (64): A gets its first
 * line back, then is closed; B goes on talking as before.
 */
static const char too_long_script[] =
    "import asyncio, sys\n"
    "async def line(r):\n"
    "    return await asyncio.wait_for(r.readline(), 10)\n"
    "async def main():\n"
    "    port = int(sys.argv[1])\n"
    "    rb, wb = await asyncio.open_connection('127.0.0.1', port)\n"
    "    wb.write(b'before\\n')\n"
    "    if await line(rb) != b'before\\n':\n"
    "        sys.exit('B: no echo before')\n"
    "    ra, wa = await asyncio.open_connection('127.0.0.1', port)\n"
    "    wa.write(b'ok\\n' + b'y' * 65 + b'\\n')\n"
    "    if await line(ra) != b'ok\\n':\n"
    "        sys.exit('A: no echo of its first line')\n"
    "    try:\n"
    "        rest = await asyncio.wait_for(ra.read(), 10)\n"
    "    except ConnectionResetError:\n"
    "        rest = b''\n"
    "    if rest != b'':\n"
    "        sys.exit('A: not closed, got %r' % rest)\n"
    "    wa.close()\n"
    "    wb.write(b'after\\n')\n"
    "    if await line(rb) != b'after\\n':\n"
    "        sys.exit('B: no echo after')\n"
    "    wb.close()\n"
    "    await wb.wait_closed()\n"
    "    print('OK', flush=True)\n"
    "asyncio.run(main())\n";

static int too_long_fn(void *arg, void **result)
{
    server_t srv = {.opts = {.max_frame = 64}};
    char port[16], out[4096];
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    cio_server_t *s = serve(&srv, port, sizeof(port));
    int status = run_python(too_long_script, port, out, sizeof(out));
    ck_assert_msg(status == 0 && strcmp(out, "OK\n") == 0, "python3 exited %d: %s", status, out);
    WAIT_UNTIL(srv.lost == 2);
    ck_assert_int_eq(srv.accepted, 2);
    /* B was accepted first; A was closed with the framer's error after its first line. */
    ck_assert_msg(srv.lost_err[0] == 0, "B lost: %s", cio_err_name(srv.lost_err[0]));
    ck_assert_int_eq(srv.lost_frames[0], 2);
    ck_assert_msg(srv.lost_err[1] == CIO_EFRAMETOOLONG, "A lost: %s",
                  cio_err_name(srv.lost_err[1]));
    ck_assert_int_eq(srv.lost_frames[1], 1);
    ck_assert_int_eq(e.calls, 1);
    ck_assert_msg(e.error == CIO_EFRAMETOOLONG, "handler heard %s", cio_err_name(e.error));
    ck_assert_str_eq(e.message, "protocol.data_received() call failed");
    cio_server_free(s);
    return 0;
}

START_TEST(test_line_over_max_frame_closes_only_its_connection)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(too_long_fn, NULL, false, NULL), 0);
}
END_TEST

/* Frames of struct.pack('>I', n) + n bytes, in one write and in 7-byte writes, echoed. */
static const char length_script[] =
    "import asyncio, struct, sys\n"
    "PAYLOADS = [b'hello', b'', b'\\x00\\xff binary \\n\\r', bytes(range(256)) * 40, b'z']\n"
    "async def main():\n"
    "    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]))\n"
    "    stream = b''.join(struct.pack('>I', len(p)) + p for p in PAYLOADS)\n"
    "    w.write(stream)\n"
    "    await w.drain()\n"
    "    for i in range(0, len(stream), 7):\n"
    "        w.write(stream[i:i + 7])\n"
    "        await w.drain()\n"
    "        await asyncio.sleep(0)\n"
    "    for _ in range(2):\n"
    "        for p in PAYLOADS:\n"
    "            n, = struct.unpack('>I', await asyncio.wait_for(r.readexactly(4), 10))\n"
    "            got = await asyncio.wait_for(r.readexactly(n), 10)\n"
    "            if got != p:\n"
    "                sys.exit('expected %d bytes, got %d: %r' % (len(p), n, got[:32]))\n"
    "    w.close()\n"
    "    await w.wait_closed()\n"
    "    print('OK', flush=True)\n"
    "asyncio.run(main())\n";

static int length_fn(void *arg, void **result)
{
    server_t srv = {.opts = {.kind = CIO_FRAME_LENGTH, .length_size = 4}};
    char port[16], out[4096];
    cio_server_t *s = serve(&srv, port, sizeof(port));
    int status = run_python(length_script, port, out, sizeof(out));
    ck_assert_msg(status == 0 && strcmp(out, "OK\n") == 0, "python3 exited %d: %s", status, out);
    WAIT_UNTIL(srv.lost == 1);
    ck_assert_int_eq(srv.lost_frames[0], 10);
    ck_assert_msg(srv.lost_err[0] == 0, "connection_lost(%s)", cio_err_name(srv.lost_err[0]));
    ck_assert_uint_eq(srv.eof_pending[0], 0);
    cio_server_free(s);
    return 0;
}

START_TEST(test_length_prefixed_round_trip_with_python_struct)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(length_fn, NULL, false, NULL), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("framing");
    TCase *tc = cio_test_case("framing");
    CIO_TEST(tc, test_init_defaults_to_newline_lines_of_64_kib);
    CIO_TEST(tc, test_init_rejects_bad_options);
    CIO_TEST(tc, test_feed_rejects_bad_arguments);
    CIO_TEST(tc, test_lines_in_one_feed_are_delivered_in_place_in_order);
    CIO_TEST(tc, test_empty_lines_are_empty_frames);
    CIO_TEST(tc, test_partial_line_is_kept_until_its_delimiter_then_freed);
    CIO_TEST(tc, test_delimiter_split_across_feeds_is_found_at_every_split_point);
    CIO_TEST(tc, test_line_of_exactly_max_frame_is_delivered);
    CIO_TEST(tc, test_line_one_byte_over_max_frame_fails);
    CIO_TEST(tc, test_line_over_max_frame_fails_as_soon_as_max_plus_delimiter_bytes_arrive);
    CIO_TEST(tc, test_line_whose_split_delimiter_starts_past_max_frame_fails);
    CIO_TEST(tc, test_framing_error_is_sticky_until_clear);
    CIO_TEST(tc, test_length_frames_are_read_with_each_header_size);
    CIO_TEST(tc, test_length_header_split_across_feeds_is_read_at_every_split_point);
    CIO_TEST(tc, test_zero_length_frames_are_delivered);
    CIO_TEST(tc, test_length_that_includes_the_header_counts_it);
    CIO_TEST(tc, test_length_over_max_frame_fails_when_the_header_arrives);
    CIO_TEST(tc, test_huge_eight_byte_length_fails_without_allocating_it);
    CIO_TEST(tc, test_length_frame_buffer_is_sized_to_the_frame);
    CIO_TEST(tc, test_stop_in_mid_chunk_keeps_the_rest_for_the_next_feed);
    CIO_TEST(tc, test_bytes_fed_while_stopped_wait_behind_the_kept_ones);
    CIO_TEST(tc, test_negative_stop_value_is_returned_and_the_framer_goes_on);
    CIO_TEST(tc, test_stop_on_a_frame_completed_from_the_buffer_keeps_the_rest);
    CIO_TEST(tc, test_kept_bytes_with_a_line_too_long_fail_when_reached);
    CIO_TEST(tc, test_allocation_failure_is_enomem_and_sticky);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_feed_from_the_frame_callback_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_clear_from_the_frame_callback_aborts, SIGABRT);
#else
    CIO_TEST(tc, test_feed_from_the_frame_callback_is_refused_without_asserts);
#endif
    CIO_TEST(tc, test_write_sends_a_frame_as_the_reader_expects_it);
    CIO_TEST(tc, test_write_refuses_frames_the_reader_would_not_read_back);
    CIO_TEST(tc, test_lines_echo_to_asyncio_readline_whatever_the_cuts);
    CIO_TEST(tc, test_lines_echo_when_the_protocol_pauses_after_each_line);
    CIO_TEST(tc, test_line_over_max_frame_closes_only_its_connection);
    CIO_TEST(tc, test_length_prefixed_round_trip_with_python_struct);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
