/*
 * tools/bench_line.h: the line mode of coreio-bench, a request/response line
 * protocol. Requests are made from templates ("SET key{rand:100} v{n}") with
 * substitutions; each request is one line ended by "\n", and each response
 * is one line ended by "\n" or "\r\n", optionally expected to start with a
 * given prefix. Responses are scanned, never copied whole.
 */
#ifndef COREIO_BENCH_LINE_H
#define COREIO_BENCH_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Longest request and response line, in bytes, its line end excluded. */
#define BENCH_LINE_MAX 65536

/** Bytes of a response line kept to describe it in an error message. */
#define BENCH_LINE_HEAD 64

/**
 * The templates of a run, parsed once from the command line and then shared
 * read-only by every thread, but for the run's request counter ({n}), which
 * is atomic.
 */
typedef struct bench_lines bench_lines_t;

/** An empty set of templates, or NULL when out of memory. */
bench_lines_t *bench_lines_new(void);

/**
 * Parse @p tmpl and append it to @p lines. Returns 0, -ENOMEM, or -EINVAL
 * with the problem described in @p why (one phrase, NUL-terminated).
 */
int bench_lines_add(bench_lines_t *lines, const char *tmpl, char *why, size_t whylen);

/** How many templates @p lines holds. */
size_t bench_lines_count(const bench_lines_t *lines);

/** The longest request any template can make, its "\n" included. */
size_t bench_lines_max_len(const bench_lines_t *lines);

/** Free @p lines. NULL is ignored. */
void bench_lines_free(bench_lines_t *lines);

/** What one connection needs to make its requests: its index and its PRNG. */
typedef struct bench_line_gen {
    uint64_t rng[4]; /* xoshiro256** state */
    uint64_t conn;   /* {conn} */
    size_t next;     /* the template of the next request, in round-robin order */
} bench_line_gen_t;

/** Start the requests of connection @p conn, its PRNG seeded from @p seed and @p conn. */
void bench_line_gen_init(bench_line_gen_t *g, uint64_t seed, uint64_t conn);

/**
 * Write the next request of @p g into @p buf, which holds at least
 * bench_lines_max_len() bytes, and return its length ("\n" included).
 * Any thread, each generator on one thread at a time.
 */
size_t bench_lines_next(bench_lines_t *lines, bench_line_gen_t *g, char *buf);

/** The response scanner of one connection. */
typedef struct bench_line_reader {
    const char *expect; /* the prefix expected, or NULL */
    size_t expect_len;
    uint64_t len;    /* bytes of the current line so far, a last "\r" included */
    bool cr;         /* the last of them is "\r" */
    bool mismatch;   /* the current line differs from expect */
    bool unexpected; /* the line last ended does not start with expect */
    char *head;      /* the caller's BENCH_LINE_HEAD bytes, or NULL: the line's start */
    size_t head_len; /* bytes of the line in head */
} bench_line_reader_t;

/**
 * Start reading a new connection's responses. A line not starting with
 * @p expect (NULL: any line) is unexpected; the start of each line is kept
 * in @p head (BENCH_LINE_HEAD bytes, or NULL) to describe it.
 */
void bench_line_reader_init(bench_line_reader_t *r, const char *expect, char *head);

/**
 * Scan up to @p len bytes. Returns how many were used, and sets *@p done when
 * they ended a line (unexpected, head and head_len then describe it; call
 * again with the rest). Returns -EMSGSIZE once the line holds more than
 * BENCH_LINE_MAX bytes, its line end excluded.
 */
ssize_t bench_line_feed(bench_line_reader_t *r, const char *data, size_t len, bool *done);

#endif /* COREIO_BENCH_LINE_H */
