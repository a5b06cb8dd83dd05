/*
 * fuzz/fuzz_framing.c: the framer (loop/framing.c) on any byte stream. The
 * input's first four bytes choose the options and the way the stream is fed,
 * then come the delimiter (lines with one of their own) and the stream.
 *
 * A plain model, written from coreio/framing.h, says which frames the stream
 * holds and where it fails (the offset at which the error must be known).
 * The framer must agree with it fed in one piece, a byte at a time, and in
 * chunks of a size from the input: the same frames, each delivered by the
 * feed that brought its last byte, the same error from the feed that
 * brought the byte that proves it, and the same bytes pending at the end;
 * it must keep no more than one frame's worth of bytes in between. Fed again
 * with a callback that stops every few frames (resumed by feeds of no bytes,
 * or by feeding on behind the kept bytes), and with an allocation made to
 * fail, it must still deliver the model's frames in order (a prefix of them
 * and a sticky -ENOMEM in the second case). Last, cio_framer_write() must
 * write each frame back as the bytes it was read from, and whatever it
 * accepts must read back as one frame. This file stands in for
 * cio_transport_writelines(), so the framer is built without the loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "coreio/error.h"
#include "coreio/framing.h"
#include "fuzz.h"

/* loop/alloc.c's hook (alloc.h would route this file's own allocations through it). */
void cio__alloc_fail_after(unsigned long n);

/* What one way of feeding (or the model) saw. */
typedef struct run {
    unsigned char *bytes; /* the frames, one after the other */
    size_t nbytes;
    size_t *lens; /* each frame's length and the byte count fed when it came */
    size_t *when;
    size_t nframes;
    int err;             /* the error, or 0 */
    size_t err_after;    /* bytes fed when it came */
    size_t pending;      /* at the end */
    size_t fed;          /* so far */
    unsigned stop_every; /* the callback stops every so many frames (0: never) */
    int stop_value;
    cio_framer_t *f;
} run_t;

/* The options and the feeding, from the input's first bytes. */
typedef struct setup {
    cio_framer_opts_t o;
    char delim[CIO_FRAMER_DELIMITER_MAX];
    size_t chunk;
    unsigned stop_every;
    bool stop_negative, drain_by_feeding;
    unsigned fail_nth;
} setup_t;

static void run_init(run_t *r, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->bytes = malloc(n + 1);
    r->lens = malloc((n + 1) * sizeof(size_t));
    r->when = malloc((n + 1) * sizeof(size_t));
    if (!r->bytes || !r->lens || !r->when)
        abort();
}

static void run_free(run_t *r)
{
    free(r->bytes);
    free(r->lens);
    free(r->when);
}

static void record(run_t *r, const void *frame, size_t len)
{
    if (!frame || len > r->f->max_frame)
        abort();
    memcpy(r->bytes + r->nbytes, frame, len);
    r->nbytes += len;
    r->lens[r->nframes] = len;
    r->when[r->nframes++] = r->fed;
}

static int on_frame(void *arg, const void *frame, size_t len)
{
    run_t *r = arg;
    if (!r->f->busy)
        abort();
    record(r, frame, len);
    return r->stop_every && r->nframes % r->stop_every == 0 ? r->stop_value : 0;
}

/* ---- the model ------------------------------------------------------------ */

static size_t overhead(const cio_framer_t *f)
{
    return f->kind == CIO_FRAME_LINES ? f->delim_len : f->length_size;
}

/*
 * The next frame of s[0..n): its length, and in *@p used the bytes it takes;
 * 0 from *@p used when s ends inside it; an error in *@p err, with in
 * *@p used the bytes of @p s that prove it.
 */
static size_t model_next(const cio_framer_t *f, const unsigned char *s, size_t n, size_t *used,
                         int *err)
{
    size_t max = f->max_frame, hs = f->length_size;
    *used = 0;
    if (f->kind == CIO_FRAME_LINES) {
        const unsigned char *d = n >= f->delim_len ? memmem(s, n, f->delim, f->delim_len) : NULL;
        size_t at = d ? (size_t)(d - s) : n;
        if (at > max && (d || n >= max + f->delim_len)) {
            *err = CIO_EFRAMETOOLONG;
            *used = max + f->delim_len;
        } else if (d) {
            *used = at + f->delim_len;
        }
        return at;
    }
    if (n < hs)
        return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < hs; i++)
        v = v << 8 | s[i];
    if (f->includes_header && v < hs)
        *err = -EPROTO;
    v -= f->includes_header ? hs : 0;
    if (!*err && v > max)
        *err = CIO_EFRAMETOOLONG;
    if (*err || n - hs >= v)
        *used = *err ? hs : hs + (size_t)v;
    return (size_t)v;
}

static void model(run_t *m, const unsigned char *s, size_t n)
{
    size_t at = 0, used;
    for (;;) {
        size_t len = model_next(m->f, s + at, n - at, &used, &m->err);
        if (m->err) {
            m->err_after = at + used;
            return;
        }
        if (used == 0)
            break;
        m->fed = at + used;
        record(m, s + at + (m->f->kind == CIO_FRAME_LINES ? 0 : m->f->length_size), len);
        at += used;
    }
    m->pending = n - at;
}

/* ---- feeding the framer ----------------------------------------------------- */

/* After a feed with no stop: at most an incomplete frame is kept, and only while there is one. */
static void check_bound(const cio_framer_t *f)
{
    size_t limit = f->max_frame + overhead(f);
    if (cio_framer_pending(f) >= limit || f->cap > limit || (f->len == 0) != (f->buf == NULL))
        abort();
}

/* A feed returned @p rc: a stop, or an error, which must be the first or the same again. */
static bool note(run_t *r, int rc)
{
    if (rc == 0 || (rc == r->stop_value && !r->err))
        return rc == 0;
    if ((r->err && rc != r->err) || cio_framer_pending(r->f) != 0 || r->f->buf)
        abort();
    if (!r->err) {
        r->err = rc;
        r->err_after = r->fed;
    }
    return false;
}

/* Feed s[0..n) in pieces of @p chunk bytes (0: one piece); the callback never stops. */
static void feed_chunks(run_t *r, const unsigned char *s, size_t n, size_t chunk)
{
    for (size_t at = 0; at < n; at += chunk ? chunk : n) {
        size_t len = chunk && chunk < n - at ? chunk : n - at;
        r->fed += len;
        if (note(r, cio_framer_feed(r->f, s + at, len, on_frame, r)))
            check_bound(r->f);
    }
    r->pending = cio_framer_pending(r->f);
}

/* Empty feeds until one is not stopped. */
static void drain(run_t *r)
{
    while (!r->err && !note(r, cio_framer_feed(r->f, NULL, 0, on_frame, r)))
        ;
}

/* As feed_chunks(), with a callback that stops: resumed by empty feeds, or by feeding on. */
static void feed_stopping(run_t *r, const setup_t *st, const unsigned char *s, size_t n)
{
    for (size_t at = 0; at < n && !r->err; at += st->chunk) {
        size_t len = st->chunk < n - at ? st->chunk : n - at;
        r->fed += len;
        bool done = note(r, cio_framer_feed(r->f, s + at, len, on_frame, r));
        if (!done && !st->drain_by_feeding)
            drain(r);
    }
    drain(r);
    r->pending = cio_framer_pending(r->f);
}

/* ---- comparing ---------------------------------------------------------------- */

static void same_frames(const run_t *m, const run_t *r, size_t nframes)
{
    size_t bytes = 0;
    for (size_t i = 0; i < nframes; i++)
        bytes += m->lens[i];
    if (nframes > m->nframes || memcmp(m->lens, r->lens, nframes * sizeof(size_t)) != 0 ||
        memcmp(m->bytes, r->bytes, bytes) != 0)
        abort();
}

/* Where the feed that brings byte @p end of @p n ends, fed in pieces of @p chunk (0: one). */
static size_t feed_end(size_t end, size_t n, size_t chunk)
{
    size_t e = chunk ? (end + chunk - 1) / chunk * chunk : n;
    return e < n ? e : n;
}

/* The model's frames, each from the feed that completed it; its error, from the one proving it. */
static void check_timely(const run_t *m, const run_t *r, size_t n, size_t chunk)
{
    if (r->nframes != m->nframes || r->err != m->err || r->pending != m->pending)
        abort();
    same_frames(m, r, m->nframes);
    for (size_t i = 0; i < r->nframes; i++)
        if (r->when[i] != feed_end(m->when[i], n, chunk))
            abort();
    if (m->err && r->err_after != feed_end(m->err_after, n, chunk))
        abort();
}

/* A run whose callback stopped: the model's frames and outcome all the same. */
static void check_stopping(const run_t *m, const run_t *r)
{
    if (r->nframes != m->nframes || r->err != m->err || r->pending != m->pending)
        abort();
    same_frames(m, r, m->nframes);
}

/* A run with a failed allocation: the model's, or a prefix of its frames then -ENOMEM. */
static void check_enomem(const run_t *m, const run_t *r)
{
    if (r->err == -ENOMEM)
        same_frames(m, r, r->nframes);
    else
        check_stopping(m, r);
}

/* ---- writing -------------------------------------------------------------------- */

/* What cio_framer_write() wrote, through the stand-in below. */
typedef struct capture {
    unsigned char *buf;
    size_t len, cap;
    int calls;
} capture_t;

int cio_transport_writelines(cio_transport_t *t, const struct iovec *iov, int iovcnt)
{
    capture_t *c = (capture_t *)(void *)t;
    c->calls++;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > c->cap - c->len)
            abort();
        memcpy(c->buf + c->len, iov[i].iov_base, iov[i].iov_len);
        c->len += iov[i].iov_len;
    }
    return 0;
}

/* Whether the line d[0..len) and the delimiter after it hold the delimiter before its end. */
static bool line_ends_early(const cio_framer_t *f, const unsigned char *d, size_t len, capture_t *c)
{
    memcpy(c->buf, d, len);
    memcpy(c->buf + len, f->delim, f->delim_len);
    return (unsigned char *)memmem(c->buf, len + f->delim_len, f->delim, f->delim_len) !=
           c->buf + len;
}

/* Each frame read is written back as the bytes it was read from. */
static void check_write_frames(const run_t *m, const unsigned char *s, capture_t *c)
{
    const unsigned char *frame = m->bytes;
    for (size_t i = 0; i < m->nframes; frame += m->lens[i], i++) {
        size_t len = m->lens[i], start = m->when[i] - len - overhead(m->f);
        c->len = 0;
        c->calls = 0;
        if (cio_framer_write(m->f, (cio_transport_t *)(void *)c, frame, len) != 0 ||
            c->calls != 1 || c->len != len + overhead(m->f) || memcmp(c->buf, s + start, c->len))
            abort();
    }
}

static int take_frame(void *arg, const void *frame, size_t len)
{
    run_t *r = arg;
    record(r, frame, len);
    return 0;
}

/* Any payload: refused for a reason, or written so that it reads back as one frame. */
static void check_write_any(const setup_t *st, const cio_framer_t *f, const unsigned char *d,
                            size_t len, capture_t *c)
{
    uint64_t v = (uint64_t)len + (f->includes_header ? f->length_size : 0);
    bool too_long = len > f->max_frame || (f->kind == CIO_FRAME_LENGTH && f->length_size < 8 &&
                                           v >> (8 * f->length_size) != 0);
    bool early = !too_long && f->kind == CIO_FRAME_LINES && line_ends_early(f, d, len, c);
    c->len = 0;
    c->calls = 0;
    int rc = cio_framer_write(f, (cio_transport_t *)(void *)c, d, len);
    if (rc != (too_long ? CIO_EFRAMETOOLONG : early ? -EINVAL : 0) || c->calls != (rc == 0))
        abort();
    if (rc != 0)
        return;
    cio_framer_t g;
    run_t r;
    run_init(&r, len);
    r.f = &g;
    if (cio_framer_init(&g, &st->o) != 0 || cio_framer_feed(&g, c->buf, c->len, take_frame, &r) ||
        r.nframes != 1 || r.lens[0] != len || memcmp(r.bytes, d, len) != 0 ||
        cio_framer_pending(&g) != 0 || g.buf)
        abort();
    run_free(&r);
}

/* ---- the input -------------------------------------------------------------------- */

/*
 * Byte 0: bit 0 the kind (lines, length); bits 1-2 the length size (4, 1, 2,
 * 8); bit 3 whether it counts the header; bits 4-7 the delimiter's length
 * (0: the default "\n"; else 1 to 8, its bytes following these four). Byte
 * 1: max_frame (0: the default). Byte 2: the chunk size, 1 to 256. Byte 3:
 * bits 0-1 stop every that many frames, bit 2 with a negative value, bit 3
 * resume by feeding on; bits 4-7 the allocation to fail (0: none).
 */
static size_t parse_setup(const uint8_t *data, size_t size, setup_t *st)
{
    static const unsigned sizes[] = {0, 1, 2, 8};
    memset(st, 0, sizeof(*st));
    if (size < 4)
        return 0;
    size_t dl = data[0] >> 4 ? 1 + ((data[0] >> 4) - 1u) % CIO_FRAMER_DELIMITER_MAX : 0;
    st->o.kind = data[0] & 1 ? CIO_FRAME_LENGTH : CIO_FRAME_LINES;
    st->o.max_frame = data[1];
    st->chunk = 1 + (size_t)data[2];
    st->stop_every = data[3] & 3;
    st->stop_negative = data[3] & 4;
    st->drain_by_feeding = data[3] & 8;
    st->fail_nth = data[3] >> 4;
    if (st->o.kind == CIO_FRAME_LENGTH) {
        st->o.length_size = sizes[(data[0] >> 1) & 3];
        st->o.length_includes_header = data[0] & 8;
        return 4;
    }
    if (dl == 0)
        return 4;
    if (size < 4 + dl)
        return 0;
    memcpy(st->delim, data + 4, dl);
    st->o.delimiter = st->delim;
    st->o.delimiter_len = dl;
    return 4 + dl;
}

/* A run of a framer set up with @p st's options. */
static void start(run_t *r, cio_framer_t *f, const setup_t *st, size_t n)
{
    run_init(r, n);
    r->f = f;
    if (cio_framer_init(f, &st->o) != 0)
        abort();
}

static void finish(run_t *r)
{
    cio_framer_clear(r->f);
    if (r->f->buf || cio_framer_pending(r->f) != 0 || r->f->error)
        abort();
    run_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_t st;
    size_t skip = parse_setup(data, size, &st), n = size - skip;
    const unsigned char *s = data + skip;
    if (skip == 0)
        return 0;
    static const size_t chunks[] = {0, 1, 0};
    cio_framer_t fm, f;
    run_t m, r;
    start(&m, &fm, &st, n);
    model(&m, s, n);
    for (int i = 0; i < 3; i++) {
        size_t chunk = i == 2 ? st.chunk : chunks[i];
        start(&r, &f, &st, n);
        feed_chunks(&r, s, n, chunk);
        check_timely(&m, &r, n, chunk);
        finish(&r);
    }
    if (st.stop_every) {
        start(&r, &f, &st, n);
        r.stop_every = st.stop_every;
        r.stop_value = st.stop_negative ? -EINTR : 1; /* never a framer's own error */
        feed_stopping(&r, &st, s, n);
        check_stopping(&m, &r);
        finish(&r);
    }
    if (st.fail_nth) {
        start(&r, &f, &st, n);
        cio__alloc_fail_after(st.fail_nth);
        feed_chunks(&r, s, n, st.chunk);
        cio__alloc_fail_after(0);
        check_enomem(&m, &r);
        finish(&r);
    }
    capture_t c = {.buf = malloc(n + 64), .cap = n + 64};
    if (!c.buf)
        abort();
    check_write_frames(&m, s, &c);
    check_write_any(&st, &fm, s, n <= fm.max_frame + 1 ? n : n % (fm.max_frame + 2), &c);
    free(c.buf);
    finish(&m);
    return 0;
}
