/*
 * framework/http_parse.h: http-hello's HTTP/1.1 request reader, kept apart
 * from the service so that tests and fuzzers reach it directly. It reads a
 * connection's byte stream (pipelined requests, split anywhere across
 * reads), checks each line of a request head as soon as its LF arrives, and
 * says what each request gets: a 200 that keeps or closes the connection, or
 * an error that closes it. Bodies framed by Content-Length are skipped;
 * Transfer-Encoding is refused. Input is (pointer, length): any byte value,
 * NUL included, is read as what it is (see http_parse.c on which bytes a
 * request may hold). Internal to the library.
 */
#ifndef CIO_FRAMEWORK_HTTP_PARSE_H
#define CIO_FRAMEWORK_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CIO__HTTP_HEAD_MAX 8192 /* request line and headers, the final CRLF CRLF included */

/* What a request gets: each verdict but the first is one of http-hello's responses. */
typedef enum cio__http_verdict {
    CIO__HTTP_NONE = -1,   /* no request has ended in the bytes read */
    CIO__HTTP_OK,          /* 200 to HTTP/1.1: the connection stays open */
    CIO__HTTP_OK_CLOSE,    /* 200, then close (Connection: close, or plain HTTP/1.0) */
    CIO__HTTP_OK_KEEP10,   /* 200 to HTTP/1.0 that asked for keep-alive */
    CIO__HTTP_BAD,         /* 400: a malformed request */
    CIO__HTTP_TOO_LARGE,   /* 431: a head over CIO__HTTP_HEAD_MAX */
    CIO__HTTP_NOT_IMPL,    /* 501: Transfer-Encoding (no coding is understood) */
    CIO__HTTP_BAD_VERSION, /* 505: not HTTP/1.x */
    CIO__HTTP_VERDICT_COUNT
} cio__http_verdict_t;

/* What the parser learnt of one request. */
typedef struct cio__http_request {
    bool head;       /* HEAD: the response has no body */
    bool http10;     /* HTTP/1.0 (else 1.1 rules) */
    bool conn_close; /* Connection: close */
    bool conn_keep;  /* Connection: keep-alive */
    bool has_length; /* a Content-Length was seen */
    uint64_t length; /* its value */
} cio__http_request_t;

/* One connection's reader; all zeroes is a new one. */
typedef struct cio__http_parser {
    cio__http_request_t rq; /* the request being read, or the one that just ended */
    uint64_t skip;          /* body bytes of the last request still to drop */
    size_t head_len;        /* bytes of the current head in lines already read */
    char *line;             /* a line split across reads (CIO__HTTP_HEAD_MAX bytes), kept */
    size_t line_len;        /* bytes of it buffered */
    bool in_head;           /* the request line is read: header lines follow */
} cio__http_parser_t;

/*
 * Read from in[0..len), len > 0. Returns how many bytes it used (at least
 * one), or -ENOMEM. *@p verdict is CIO__HTTP_NONE when no request ended in
 * them; else it is what that request gets and ps->rq describes it until the
 * next call. Call again with the bytes not used. After a verdict for which
 * cio__http_verdict_closes() holds, the caller stops: what follows would be
 * read as a new request.
 */
ssize_t cio__http_parser_feed(cio__http_parser_t *ps, const char *in, size_t len,
                              cio__http_verdict_t *verdict);

/* Whether @p ps is between requests: no head or body partly read. */
bool cio__http_parser_idle(const cio__http_parser_t *ps);

/* Release what @p ps holds; it is then a new parser. */
void cio__http_parser_free(cio__http_parser_t *ps);

/* Whether the response to @p v ends the connection. */
static inline bool cio__http_verdict_closes(cio__http_verdict_t v)
{
    return v != CIO__HTTP_OK && v != CIO__HTTP_OK_KEEP10;
}

#endif /* CIO_FRAMEWORK_HTTP_PARSE_H */
