/*
 * tools/bench_line.c: the line protocol of coreio-bench (see bench_line.h).
 * A template is parsed once into segments: literal text, {n}, {conn} and
 * {rand:N}; making a request copies the text and prints the numbers, with
 * no allocation. Responses are scanned for their "\n" with memchr and
 * compared with the expected prefix as they come, however they are split.
 */
#include "bench_line.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U64_DIGITS 20 /* decimal digits of the largest uint64_t */

typedef enum seg_kind {
    SEG_TEXT = 0, /* literal bytes */
    SEG_N,        /* {n}: the run's request number */
    SEG_CONN,     /* {conn}: the connection's index */
    SEG_RAND,     /* {rand:N}: uniform in [0, N) */
} seg_kind_t;

typedef struct seg {
    seg_kind_t kind;
    size_t off, len; /* SEG_TEXT: the bytes text[off, off + len) */
    uint64_t bound;  /* SEG_RAND: N */
    uint64_t reject; /* SEG_RAND: 2^64 mod N; draws below it are drawn again */
} seg_t;

typedef struct tmpl {
    char *text; /* the literal bytes of every SEG_TEXT, braces unescaped */
    seg_t *segs;
    size_t nsegs;
    size_t max_len; /* the longest request it makes, "\n" included */
} tmpl_t;

struct bench_lines {
    tmpl_t *tmpls;
    size_t count, cap;
    size_t max_len;
    bool uses_n;             /* some template has {n}: every request takes a number */
    _Atomic uint64_t next_n; /* the next {n}, shared by every thread */
};

/* What parsing one template needs. */
typedef struct parser {
    const char *src;
    tmpl_t *t;
    size_t text_len;
    char *why;
    size_t whylen;
} parser_t;

/* ---- parsing ------------------------------------------------------------ */

/* Describe the problem in the parser's message; returns -EINVAL. */
__attribute__((format(printf, 2, 3))) static int fail(parser_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, p->whylen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static size_t digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* One literal byte, merged into the literal segment before it if there is one. */
static void add_text(parser_t *p, char c)
{
    tmpl_t *t = p->t;
    if (t->nsegs > 0 && t->segs[t->nsegs - 1].kind == SEG_TEXT)
        t->segs[t->nsegs - 1].len++;
    else
        t->segs[t->nsegs++] = (seg_t){.kind = SEG_TEXT, .off = p->text_len, .len = 1};
    t->text[p->text_len++] = c;
    t->max_len++;
}

/* N of {rand:N}: digits only, from 1 to UINT64_MAX. */
static bool parse_bound(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return v > 0;
}

/* The substitution @p name (between the braces, @p len bytes) at column @p col. */
static int add_sub(parser_t *p, const char *name, size_t len, size_t col)
{
    seg_t s = {.kind = SEG_N};
    int w = len > 40 ? 40 : (int)len; /* quote at most this much of it */
    if (len == 1 && name[0] == 'n') {
        s.kind = SEG_N;
    } else if (len == 4 && memcmp(name, "conn", 4) == 0) {
        s.kind = SEG_CONN;
    } else if (len >= 4 && memcmp(name, "rand", 4) == 0 && (len == 4 || name[4] == ':')) {
        if (len == 4 || !parse_bound(name + 5, len - 5, &s.bound))
            return fail(p,
                        "'{%.*s}' at column %zu: write {rand:N} with N a whole number from 1 to "
                        "%" PRIu64,
                        w, name, col, UINT64_MAX);
        s.kind = SEG_RAND;
        s.reject = (0 - s.bound) % s.bound;
    } else {
        return fail(p,
                    "unknown substitution '{%.*s}' at column %zu (there are {n}, {conn} and "
                    "{rand:N}; write {{ and }} for literal braces)",
                    w, name, col);
    }
    p->t->segs[p->t->nsegs++] = s;
    p->t->max_len += s.kind == SEG_RAND ? digits(s.bound - 1) : U64_DIGITS;
    return 0;
}

/* Parse the text of p->t from p->src; p->t has room for every segment. */
static int parse(parser_t *p)
{
    const char *s = p->src;
    for (size_t i = 0; s[i]; i++) {
        if ((s[i] == '{' && s[i + 1] == '{') || (s[i] == '}' && s[i + 1] == '}')) {
            add_text(p, s[i++]);
        } else if (s[i] == '{') {
            const char *close = strchr(s + i, '}');
            if (!close)
                return fail(p, "the '{' at column %zu is never closed (write {{ for a literal {)",
                            i + 1);
            size_t len = (size_t)(close - (s + i + 1));
            int rc = add_sub(p, s + i + 1, len, i + 1);
            if (rc < 0)
                return rc;
            i += len + 1;
        } else if (s[i] == '}') {
            return fail(p, "the '}' at column %zu closes nothing (write }} for a literal })",
                        i + 1);
        } else if (s[i] == '\n' || s[i] == '\r') {
            return fail(p,
                        "a line end at column %zu: a template is one line, ended with \\n by "
                        "coreio-bench",
                        i + 1);
        } else {
            add_text(p, s[i]);
        }
    }
    if (p->t->max_len > BENCH_LINE_MAX)
        return fail(p, "its requests can be %zu bytes long, more than %d", p->t->max_len,
                    BENCH_LINE_MAX);
    p->t->max_len++; /* the "\n" */
    return 0;
}

bench_lines_t *bench_lines_new(void)
{
    bench_lines_t *lines = calloc(1, sizeof(*lines));
    if (lines)
        atomic_init(&lines->next_n, 0);
    return lines;
}

int bench_lines_add(bench_lines_t *lines, const char *tmpl, char *why, size_t whylen)
{
    if (lines->count == lines->cap) {
        size_t cap = lines->cap ? 2 * lines->cap : 4;
        tmpl_t *grown = realloc(lines->tmpls, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        lines->tmpls = grown;
        lines->cap = cap;
    }
    /* Every substitution adds at most itself and one literal before it. */
    size_t braces = 0;
    for (const char *c = tmpl; (c = strchr(c, '{')); c++)
        braces++;
    tmpl_t *t = &lines->tmpls[lines->count];
    *t = (tmpl_t){.text = malloc(strlen(tmpl) + 1), .segs = calloc(2 * braces + 1, sizeof(seg_t))};
    parser_t p = {.src = tmpl, .t = t, .why = why, .whylen = whylen};
    int rc = t->text && t->segs ? parse(&p) : -ENOMEM;
    if (rc < 0) {
        free(t->text);
        free(t->segs);
        return rc;
    }
    for (size_t i = 0; i < t->nsegs; i++)
        lines->uses_n |= t->segs[i].kind == SEG_N;
    if (t->max_len > lines->max_len)
        lines->max_len = t->max_len;
    lines->count++;
    return 0;
}

size_t bench_lines_count(const bench_lines_t *lines)
{
    return lines->count;
}

size_t bench_lines_max_len(const bench_lines_t *lines)
{
    return lines->max_len;
}

void bench_lines_free(bench_lines_t *lines)
{
    if (!lines)
        return;
    for (size_t i = 0; i < lines->count; i++) {
        free(lines->tmpls[i].text);
        free(lines->tmpls[i].segs);
    }
    free(lines->tmpls);
    free(lines);
}

/* ---- making requests ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna): fast, and good enough for keys. */
static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void bench_line_gen_init(bench_line_gen_t *g, uint64_t seed, uint64_t conn)
{
    /* Mixing seed and conn apart keeps the connections' streams unrelated. */
    uint64_t a = seed, b = conn ^ 0x6a09e667f3bcc909u;
    uint64_t x = splitmix64(&a) ^ rotl(splitmix64(&b), 32);
    for (int i = 0; i < 4; i++)
        g->rng[i] = splitmix64(&x); /* never all zero: splitmix64 is a bijection */
    g->conn = conn;
    g->next = 0;
}

/* Uniform in [0, bound): redrawing below 2^64 mod bound leaves a multiple of bound. */
static uint64_t draw_below(uint64_t s[4], uint64_t bound, uint64_t reject)
{
    uint64_t r;
    do
        r = rng_next(s);
    while (r < reject);
    return r % bound;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[U64_DIGITS];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(p, tmp + i, sizeof(tmp) - i);
    return p + sizeof(tmp) - i;
}

size_t bench_lines_next(bench_lines_t *lines, bench_line_gen_t *g, char *buf)
{
    const tmpl_t *t = &lines->tmpls[g->next];
    g->next = g->next + 1 < lines->count ? g->next + 1 : 0;
    /* Only uniqueness matters, not ordering with other memory: relaxed. */
    uint64_t n =
        lines->uses_n ? atomic_fetch_add_explicit(&lines->next_n, 1, memory_order_relaxed) : 0;
    char *p = buf;
    for (size_t i = 0; i < t->nsegs; i++) {
        const seg_t *s = &t->segs[i];
        switch (s->kind) {
        case SEG_TEXT:
            memcpy(p, t->text + s->off, s->len);
            p += s->len;
            break;
        case SEG_N:
            p = put_u64(p, n);
            break;
        case SEG_CONN:
            p = put_u64(p, g->conn);
            break;
        case SEG_RAND:
            p = put_u64(p, draw_below(g->rng, s->bound, s->reject));
            break;
        }
    }
    *p++ = '\n';
    return (size_t)(p - buf);
}

/* ---- reading responses -------------------------------------------------- */

void bench_line_reader_init(bench_line_reader_t *r, const char *expect, char *head)
{
    *r = (bench_line_reader_t){
        .expect = expect, .expect_len = expect ? strlen(expect) : 0, .head = head};
}

/* Compare the @p n bytes of the current line at @p data with expect, keep its head. */
static void look_at(bench_line_reader_t *r, const char *data, size_t n)
{
    if (r->len == 0)
        r->head_len = 0;
    if (r->expect && !r->mismatch && r->len < r->expect_len) {
        size_t k = r->expect_len - (size_t)r->len;
        k = n < k ? n : k;
        r->mismatch = memcmp(data, r->expect + r->len, k) != 0;
    }
    if (r->head && r->head_len < BENCH_LINE_HEAD) {
        size_t k = BENCH_LINE_HEAD - r->head_len;
        k = n < k ? n : k;
        memcpy(r->head + r->head_len, data, k);
        r->head_len += k;
    }
}

ssize_t bench_line_feed(bench_line_reader_t *r, const char *data, size_t len, bool *done)
{
    const char *lf = memchr(data, '\n', len);
    size_t n = lf ? (size_t)(lf - data) : len;
    look_at(r, data, n);
    if (n > 0)
        r->cr = data[n - 1] == '\r';
    r->len += n;
    /* A last "\r" may yet be the start of the line end: it does not count. */
    uint64_t content = r->len - (r->cr ? 1 : 0);
    *done = false;
    if (content > BENCH_LINE_MAX)
        return -EMSGSIZE;
    if (!lf)
        return (ssize_t)n;
    *done = true;
    r->unexpected = r->expect && (r->mismatch || content < r->expect_len);
    if (r->cr && r->head_len > 0 && r->head_len == content + 1)
        r->head_len--; /* the "\r" of "\r\n" is no part of the line */
    r->len = 0;
    r->cr = r->mismatch = false;
    return (ssize_t)n + 1;
}
