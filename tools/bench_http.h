/*
 * tools/bench_http.h: an incremental HTTP/1.x response parser for
 * coreio-bench: the status line, the header block up to the blank line, then
 * a body delimited by Content-Length, chunked transfer coding, or the close
 * of the connection. It only finds where responses end; bodies are skipped.
 */
#ifndef COREIO_BENCH_HTTP_H
#define COREIO_BENCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Largest header block (and chunk-size or trailer line) accepted. */
#define BENCH_HTTP_HEAD_MAX 4096

typedef enum bench_http_state {
    BENCH_HTTP_HEAD = 0,    /* reading the status line and headers */
    BENCH_HTTP_BODY,        /* skipping body_left bytes of a Content-Length body */
    BENCH_HTTP_CHUNK_LINE,  /* reading a chunk-size line */
    BENCH_HTTP_CHUNK_DATA,  /* skipping a chunk and its CRLF */
    BENCH_HTTP_TRAILER,     /* reading trailer lines up to the blank one */
    BENCH_HTTP_UNTIL_CLOSE, /* the body runs to the end of the connection */
} bench_http_state_t;

/** Parser state of one connection; @c buf is the caller's, BENCH_HTTP_HEAD_MAX + 1 bytes. */
typedef struct bench_http_parser {
    bench_http_state_t state;
    char *buf;
    size_t len;         /* bytes held in buf */
    uint64_t body_left; /* BODY, CHUNK_DATA: bytes still to skip */
    int status;         /* of the response being read, then of the last one ended */
    bool close;         /* the connection closes after this response */
} bench_http_parser_t;

/** Start parsing a new connection's responses, with @p buf as header space. */
void bench_http_init(bench_http_parser_t *p, char *buf);

/**
 * Parse up to @p len bytes. Returns how many were used, and sets *@p done
 * when they ended a response (status and close then describe it; call again
 * with the rest). Returns -EPROTO for a malformed response, -EMSGSIZE for a
 * header block or line over BENCH_HTTP_HEAD_MAX.
 */
ssize_t bench_http_feed(bench_http_parser_t *p, const char *data, size_t len, bool *done);

/**
 * The connection ended: 1 if that ended a response (one delimited by the
 * close), 0 between responses, -EPROTO in the middle of one.
 */
int bench_http_eof(bench_http_parser_t *p);

#endif /* COREIO_BENCH_HTTP_H */
