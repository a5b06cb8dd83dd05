/*
 * loop/framing.c: the framer of coreio/framing.h. Frames that lie whole in
 * the bytes fed are delivered in place; only an incomplete frame (or, after a
 * stop, the bytes not delivered yet) is copied into the framer's buffer, which
 * is freed as soon as it is empty. The limit is checked before anything is
 * kept, so the buffer never holds more than one frame's worth of a peer's
 * bytes unless the protocol itself stopped the delivery.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "coreio/error.h"
#include "coreio/framing.h"
/*
 * Not internal.h: the framer needs none of the loop's internals, and the fuzz
 * target compiles this file on its own. Allocations still go through the hook.
 */
#include "alloc.h"

#define MIN_CAP 64 /* first buffer size of a line; doubled up to the limit */

/* Bytes before a frame (header) or after it (delimiter). */
static size_t overhead(const cio_framer_t *f)
{
    return f->kind == CIO_FRAME_LINES ? f->delim_len : f->length_size;
}

static int check_lines_opts(cio_framer_t *f, const cio_framer_opts_t *o)
{
    if (o->length_size != 0 || o->length_includes_header)
        return -EINVAL;
    if (!o->delimiter) {
        if (o->delimiter_len != 0)
            return -EINVAL;
        f->delim[0] = '\n';
        f->delim_len = 1;
        return 0;
    }
    if (o->delimiter_len == 0 || o->delimiter_len > CIO_FRAMER_DELIMITER_MAX)
        return -EINVAL;
    memcpy(f->delim, o->delimiter, o->delimiter_len);
    f->delim_len = (uint8_t)o->delimiter_len;
    return 0;
}

static int check_length_opts(cio_framer_t *f, const cio_framer_opts_t *o)
{
    unsigned size = o->length_size ? o->length_size : 4;
    if (o->delimiter || o->delimiter_len != 0)
        return -EINVAL;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return -EINVAL;
    f->length_size = (uint8_t)size;
    f->includes_header = o->length_includes_header;
    return 0;
}

int cio_framer_init(cio_framer_t *f, const cio_framer_opts_t *opts)
{
    static const cio_framer_opts_t defaults = {0};
    const cio_framer_opts_t *o = opts ? opts : &defaults;
    if (!f)
        return -EINVAL;
    memset(f, 0, sizeof(*f));
    if (o->max_frame > SIZE_MAX / 2)
        return -EINVAL;
    f->max_frame = o->max_frame ? o->max_frame : CIO_FRAMER_DEFAULT_MAX;
    f->kind = (uint8_t)o->kind;
    if (o->kind == CIO_FRAME_LINES)
        return check_lines_opts(f, o);
    if (o->kind == CIO_FRAME_LENGTH)
        return check_length_opts(f, o);
    return -EINVAL;
}

/* ---- finding frames ------------------------------------------------------- */

/* Where one frame was found: its bytes, and how many bytes it took with its framing. */
typedef struct found {
    const unsigned char *frame;
    size_t len;
    size_t used;
} found_t;

/* The payload length the header at @p p gives: 1, or a framing error. */
static int read_header(const cio_framer_t *f, const unsigned char *p, size_t *len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < f->length_size; i++)
        v = v << 8 | p[i];
    if (f->includes_header) {
        if (v < f->length_size)
            return -EPROTO;
        v -= f->length_size;
    }
    /* Compared before any use, so a huge 8-byte length allocates nothing. */
    if (v > f->max_frame)
        return CIO_EFRAMETOOLONG;
    *len = (size_t)v;
    return 1;
}

/*
 * The first frame of p[0..n): 1 and *@p out when it is whole, 0 when the
 * bytes end inside it (and do not yet exceed the limit), or a framing error.
 * A line's delimiter is looked for only where it could end a frame of at
 * most max_frame bytes, so the search is bounded whatever @p n is.
 */
static int find_frame(const cio_framer_t *f, const unsigned char *p, size_t n, found_t *out)
{
    if (f->kind == CIO_FRAME_LINES) {
        size_t window = f->max_frame + f->delim_len;
        const unsigned char *d = memmem(p, n < window ? n : window, f->delim, f->delim_len);
        if (!d)
            return n >= window ? CIO_EFRAMETOOLONG : 0;
        *out = (found_t){p, (size_t)(d - p), (size_t)(d - p) + f->delim_len};
        return 1;
    }
    size_t len;
    if (n < f->length_size)
        return 0;
    int rc = read_header(f, p, &len);
    if (rc < 0 || n - f->length_size < len)
        return rc < 0 ? rc : 0;
    *out = (found_t){p + f->length_size, len, f->length_size + len};
    return 1;
}

/* Call the frame callback, which must not come back into @p f. */
static int deliver(cio_framer_t *f, const void *frame, size_t len, cio_frame_cb on_frame, void *arg)
{
    f->busy = true;
    int rc = on_frame(arg, frame, len);
    f->busy = false;
    return rc;
}

/*
 * Deliver the frames lying whole at the start of p[0..n), in place; *@p at
 * is where the first one not delivered starts. Returns 0 when the rest is an
 * incomplete frame within the limit, or a framing error; a non-zero value
 * from the callback ends it early, in *@p stop.
 */
static int deliver_whole(cio_framer_t *f, const unsigned char *p, size_t n, size_t *at, int *stop,
                         cio_frame_cb on_frame, void *arg)
{
    int rc;
    found_t fr;
    *at = 0;
    while ((rc = find_frame(f, p + *at, n - *at, &fr)) > 0) {
        *at += fr.used;
        *stop = deliver(f, fr.frame, fr.len, on_frame, arg);
        if (*stop != 0)
            return 0;
    }
    return rc;
}

/* ---- the buffer ----------------------------------------------------------- */

/*
 * Room for @p need bytes. A line's buffer grows by doubling up to the limit;
 * a length frame's is sized exactly (its header, then the whole frame).
 */
static int reserve(cio_framer_t *f, size_t need)
{
    if (need <= f->cap)
        return 0;
    size_t limit = f->max_frame + overhead(f);
    size_t cap = need < f->length_size ? f->length_size : need;
    if (f->kind == CIO_FRAME_LINES) {
        cap = f->cap ? f->cap * 2 : MIN_CAP;
        cap = cap > limit ? limit : cap;
        cap = cap < need ? need : cap; /* bytes kept by a stop may pass the limit */
    }
    unsigned char *b = realloc(f->buf, cap);
    if (!b)
        return -ENOMEM;
    f->buf = b;
    f->cap = cap;
    return 0;
}

static int append(cio_framer_t *f, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int rc = reserve(f, f->len + len);
    if (rc < 0)
        return rc;
    memcpy(f->buf + f->len, data, len);
    f->len += len;
    return 0;
}

/*
 * Keep d[0..n), the start of a frame, in the empty buffer: sized for the
 * whole frame at once when a length header tells its size.
 */
static int keep_partial(cio_framer_t *f, const unsigned char *d, size_t n)
{
    size_t plen;
    assert(f->len == 0);
    if (f->kind == CIO_FRAME_LENGTH && n >= f->length_size && read_header(f, d, &plen) > 0 &&
        reserve(f, f->length_size + plen) < 0)
        return -ENOMEM;
    return append(f, d, n);
}

void cio_framer_clear(cio_framer_t *f)
{
    if (!f)
        return;
    assert(!f->busy); /* the frame being delivered may lie in the buffer */
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    f->whole_frames = false;
    f->error = 0;
}

size_t cio_framer_pending(const cio_framer_t *f)
{
    return f->len;
}

/* The stream is lost: hold nothing, and give @p err to every later feed. */
static int fail(cio_framer_t *f, int err)
{
    cio_framer_clear(f);
    f->error = err;
    return err;
}

/* ---- completing the frame the buffer holds the start of ------------------- */

/*
 * A delimiter that starts in the buffer's last bytes and ends in d[0..len):
 * the one starting first wins. Returns 1 (the frame is buf[0..len) now,
 * *@p at bytes of @p d taken), 0 (none, or too few bytes in @p d to tell,
 * and then none can end in @p d) or CIO_EFRAMETOOLONG.
 */
static int straddling_delimiter(cio_framer_t *f, const unsigned char *d, size_t len, size_t *at)
{
    size_t k = f->len < f->delim_len - 1u ? f->len : f->delim_len - 1u;
    for (; k > 0; k--) {
        size_t need = f->delim_len - k;
        if (len < need || memcmp(f->buf + f->len - k, f->delim, k) != 0 ||
            memcmp(d, f->delim + k, need) != 0)
            continue;
        if (f->len - k > f->max_frame)
            return CIO_EFRAMETOOLONG;
        f->len -= k;
        *at = need;
        return 1;
    }
    return 0;
}

/* As complete_frame(), for a line: the buffer holds no delimiter and less than the limit. */
static int complete_line(cio_framer_t *f, const unsigned char *d, size_t len, size_t *at)
{
    size_t room = f->max_frame + f->delim_len - f->len;
    int rc = straddling_delimiter(f, d, len, at);
    if (rc != 0)
        return rc;
    const unsigned char *end = memmem(d, len < room ? len : room, f->delim, f->delim_len);
    if (!end && len >= room)
        return CIO_EFRAMETOOLONG; /* max_frame + delimiter bytes and no delimiter */
    size_t n = end ? (size_t)(end - d) : len;
    if (append(f, d, n) < 0)
        return -ENOMEM;
    *at = end ? n + f->delim_len : len;
    return end != NULL;
}

/* As complete_frame(), for a length frame: the buffer holds less than its header and payload. */
static int complete_length(cio_framer_t *f, const unsigned char *d, size_t len, size_t *at)
{
    size_t hs = f->length_size, plen;
    size_t take = f->len < hs ? hs - f->len : 0;
    take = take < len ? take : len;
    if (append(f, d, take) < 0)
        return -ENOMEM;
    *at = take;
    if (f->len < hs)
        return 0;
    int rc = read_header(f, f->buf, &plen);
    if (rc < 0)
        return rc;
    size_t total = hs + plen;
    take = total - f->len < len - *at ? total - f->len : len - *at;
    if (reserve(f, total) < 0 || append(f, d + *at, take) < 0)
        return -ENOMEM;
    *at += take;
    return f->len == total;
}

/*
 * Add to the incomplete frame in the buffer from d[0..len): 1 when it is
 * whole (*@p at bytes of @p d taken), 0 when all of @p d went into it, or an
 * error (framing, -ENOMEM).
 */
static int complete_frame(cio_framer_t *f, const unsigned char *d, size_t len, size_t *at)
{
    return f->kind == CIO_FRAME_LINES ? complete_line(f, d, len, at)
                                      : complete_length(f, d, len, at);
}

/* ---- feeding --------------------------------------------------------------- */

/*
 * Deliver the frames a stop left in the buffer, then keep the rest there at
 * its start: an incomplete frame, or after another stop the frames not
 * delivered. Returns 0 or a framing error; a stop value goes to *@p stop.
 */
static int feed_kept(cio_framer_t *f, int *stop, cio_frame_cb on_frame, void *arg)
{
    size_t at;
    int rc = deliver_whole(f, f->buf, f->len, &at, stop, on_frame, arg);
    if (rc < 0)
        return rc;
    memmove(f->buf, f->buf + at, f->len - at);
    f->len -= at;
    f->whole_frames = *stop != 0 && f->len > 0;
    return 0;
}

/* Deliver the frame the buffer now holds whole; the buffer is empty afterwards. */
static int deliver_buffered(cio_framer_t *f, cio_frame_cb on_frame, void *arg)
{
    size_t skip = f->kind == CIO_FRAME_LINES ? 0 : f->length_size;
    int stop = deliver(f, f->buf + skip, f->len - skip, on_frame, arg);
    f->len = 0;
    return stop;
}

/*
 * The frames of d[0..len) after what the buffer holds. Returns 0 or a
 * framing error; a stop value goes to *@p stop, and the bytes after the frame
 * that stopped are kept.
 */
static int feed_new(cio_framer_t *f, const unsigned char *d, size_t len, int *stop,
                    cio_frame_cb on_frame, void *arg)
{
    size_t at = 0, used;
    int rc;
    if (len == 0)
        return 0;
    if (f->len > 0) {
        rc = complete_frame(f, d, len, &at);
        if (rc <= 0)
            return rc;
        *stop = deliver_buffered(f, on_frame, arg);
    }
    if (*stop == 0) {
        rc = deliver_whole(f, d + at, len - at, &used, stop, on_frame, arg);
        if (rc < 0)
            return rc;
        at += used;
    }
    /* After a stop, whole frames may follow; else an incomplete one within the limit. */
    rc = *stop != 0 ? append(f, d + at, len - at) : keep_partial(f, d + at, len - at);
    if (rc < 0)
        return rc;
    f->whole_frames = *stop != 0 && f->len > 0;
    return 0;
}

int cio_framer_feed(cio_framer_t *f, const void *data, size_t len, cio_frame_cb on_frame, void *arg)
{
    if (!f || !on_frame || (!data && len > 0))
        return -EINVAL;
    assert(!f->busy); /* not from the frame callback */
    if (f->busy)
        return -EBUSY;
    if (f->error)
        return f->error;
    int stop = 0, rc = 0;
    if (f->whole_frames) {
        rc = feed_kept(f, &stop, on_frame, arg);
        if (rc == 0 && stop != 0) {
            /* Still stopped: the new bytes wait behind the kept ones. */
            rc = append(f, data, len);
            f->whole_frames = f->len > 0;
        }
    }
    if (rc == 0 && stop == 0)
        rc = feed_new(f, data, len, &stop, on_frame, arg);
    if (rc < 0)
        return fail(f, rc);
    if (f->len == 0)
        cio_framer_clear(f); /* an idle connection holds no buffer */
    return stop;
}

/* ---- writing ---------------------------------------------------------------- */

/*
 * Whether the delimiter would end the line d[0..len) early: it is in the
 * line, or starts in its last bytes and runs on into the delimiter sent
 * after it (possible when the delimiter overlaps itself, as "aa" does).
 */
static bool line_ends_early(const cio_framer_t *f, const unsigned char *d, size_t len)
{
    size_t dl = f->delim_len;
    if (len >= dl && memmem(d, len, f->delim, dl))
        return true;
    for (size_t k = 1; k < dl && k <= len; k++)
        if (memcmp(d + len - k, f->delim, k) == 0 && memcmp(f->delim + k, f->delim, dl - k) == 0)
            return true;
    return false;
}

/* The big-endian header of a @p len byte frame, into @p hdr. 0 or CIO_EFRAMETOOLONG. */
static int encode_header(const cio_framer_t *f, size_t len, unsigned char *hdr)
{
    uint64_t v = (uint64_t)len + (f->includes_header ? f->length_size : 0);
    if (f->length_size < 8 && v >> (8 * f->length_size) != 0)
        return CIO_EFRAMETOOLONG;
    for (unsigned i = f->length_size; i > 0; i--, v >>= 8)
        hdr[i - 1] = (unsigned char)v;
    return 0;
}

int cio_framer_write(const cio_framer_t *f, cio_transport_t *t, const void *data, size_t len)
{
    unsigned char hdr[8];
    struct iovec iov[2];
    int n = 0;
    if (!f || !t || (!data && len > 0))
        return -EINVAL;
    if (len > f->max_frame)
        return CIO_EFRAMETOOLONG;
    if (f->kind == CIO_FRAME_LENGTH) {
        int rc = encode_header(f, len, hdr);
        if (rc < 0)
            return rc;
        iov[n++] = (struct iovec){hdr, f->length_size};
    } else if (line_ends_early(f, data, len)) {
        return -EINVAL;
    }
    if (len > 0)
        iov[n++] = (struct iovec){(void *)data, len};
    if (f->kind == CIO_FRAME_LINES)
        iov[n++] = (struct iovec){(void *)f->delim, f->delim_len};
    return cio_transport_writelines(t, iov, n);
}
