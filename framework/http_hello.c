/*
 * framework/http_hello.c: the "http-hello" service, a minimal HTTP/1.1
 * responder that answers every request with 200 and "Hello, World!\n" (the
 * target of wrk-style benchmarks). It keeps connections alive as HTTP/1.1 and
 * 1.0 ask, answers pipelined requests in order, skips request bodies framed by
 * Content-Length, and refuses what it cannot handle with a closing 400, 431,
 * 501 or 505.
 *
 * Speed: the responses are built once a second (when the Date changes) in the
 * worker's state; a request is answered by copying one of them into the
 * worker's output buffer, which every connection of the worker shares, and
 * the responses to one read go out in one write. A request head parses in
 * place unless it was split across reads; only then is it copied, into a
 * buffer the connection keeps for later splits.
 *
 * Draining (shutdown, reload): idle keep-alive connections close at once;
 * the others get their current response with "Connection: close", as nginx
 * does on a graceful stop.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>

#include "builtin.h"

#define HEAD_MAX     8192        /* request line and headers, final CRLF CRLF included */
#define RESPONSE_MAX 256         /* one prepared response */
#define OUT_INITIAL  (16 * 1024) /* the worker's output buffer to begin with */

/* The prepared responses; a HEAD request gets the same without its body. */
enum {
    R_OK,          /* HTTP/1.1 keep-alive: no Connection header */
    R_OK_CLOSE,    /* Connection: close */
    R_OK_KEEP10,   /* HTTP/1.0 that asked for keep-alive */
    R_BAD,         /* 400: malformed request */
    R_TOO_LARGE,   /* 431: head over HEAD_MAX */
    R_NOT_IMPL,    /* 501: Transfer-Encoding */
    R_BAD_VERSION, /* 505: not HTTP/1.x */
    R_COUNT
};

static const struct {
    const char *status;
    const char *connection;
    const char *body;
} response_spec[R_COUNT] = {
    [R_OK] = {"200 OK", "", "Hello, World!\n"},
    [R_OK_CLOSE] = {"200 OK", "Connection: close\r\n", "Hello, World!\n"},
    [R_OK_KEEP10] = {"200 OK", "Connection: keep-alive\r\n", "Hello, World!\n"},
    [R_BAD] = {"400 Bad Request", "Connection: close\r\n", "Bad Request\n"},
    [R_TOO_LARGE] = {"431 Request Header Fields Too Large", "Connection: close\r\n",
                     "Request Header Fields Too Large\n"},
    [R_NOT_IMPL] = {"501 Not Implemented", "Connection: close\r\n", "Not Implemented\n"},
    [R_BAD_VERSION] = {"505 HTTP Version Not Supported", "Connection: close\r\n",
                       "HTTP Version Not Supported\n"},
};

struct http_conn;

/* One worker's state: prepared responses, the shared output buffer, its connections. */
typedef struct http_worker {
    time_t date_sec;         /* the second the responses carry in their Date */
    bool draining;           /* the listener drains: every response closes its connection */
    struct http_conn *conns; /* open connections, for draining */
    char *out;               /* responses to the read being handled */
    size_t outlen, outcap;
    size_t len[R_COUNT];
    size_t body_len[R_COUNT];
    char response[R_COUNT][RESPONSE_MAX];
} http_worker_t;

typedef struct http_conn {
    cio_protocol_t base;
    cio_transport_t *t;
    http_worker_t *w;
    struct http_conn *prev, *next; /* in w->conns */
    uint64_t skip;                 /* body bytes of the last request still to drop */
    char *head;                    /* a request head split across reads (HEAD_MAX bytes) */
    size_t hlen;                   /* bytes of it buffered */
    bool line_checked;             /* the buffered head's request line was found valid */
    bool done;                     /* a closing response is out: ignore the rest */
} http_conn_t;

/* What the parser learnt of one request. */
typedef struct request {
    bool head;       /* HEAD: no body in the response */
    bool http10;     /* HTTP/1.0 (else 1.1 rules) */
    bool conn_close; /* Connection: close */
    bool conn_keep;  /* Connection: keep-alive */
    bool has_length; /* a Content-Length was seen */
    uint64_t length; /* its value */
} request_t;

/* ---- prepared responses ---------------------------------------------------------- */

/* An RFC 7231 IMF-fixdate, in English whatever the locale. */
static void format_date(time_t now, char *out, size_t size)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Rebuild every response when the second has changed since the last time. */
static void refresh_responses(http_worker_t *w)
{
    time_t now = time(NULL);
    if (now == w->date_sec)
        return;
    w->date_sec = now;
    char date[64];
    format_date(now, date, sizeof(date));
    for (int i = 0; i < R_COUNT; i++) {
        size_t body = strlen(response_spec[i].body);
        int n = snprintf(w->response[i], RESPONSE_MAX,
                         "HTTP/1.1 %s\r\nServer: coreio\r\nDate: %s\r\n"
                         "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
                         response_spec[i].status, date, body, response_spec[i].connection,
                         response_spec[i].body);
        assert(n > 0 && n < RESPONSE_MAX);
        w->len[i] = (size_t)n;
        w->body_len[i] = body;
    }
}

/* Append to the worker's output buffer, growing it (rarely: it is kept). */
static int out_append(http_worker_t *w, const char *data, size_t len)
{
    if (w->outlen + len > w->outcap) {
        size_t cap = w->outcap ? w->outcap : OUT_INITIAL;
        while (cap < w->outlen + len)
            cap *= 2;
        char *v = realloc(w->out, cap);
        if (!v)
            return -ENOMEM;
        w->out = v;
        w->outcap = cap;
    }
    memcpy(w->out + w->outlen, data, len);
    w->outlen += len;
    return 0;
}

/* Queue response @p kind; a closing one ends the connection's requests. */
static int respond(http_conn_t *c, int kind, bool head)
{
    http_worker_t *w = c->w;
    if (w->draining && (kind == R_OK || kind == R_OK_KEEP10))
        kind = R_OK_CLOSE;
    size_t len = w->len[kind] - (head ? w->body_len[kind] : 0);
    if (kind != R_OK && kind != R_OK_KEEP10)
        c->done = true;
    return out_append(w, w->response[kind], len);
}

/* ---- parsing ------------------------------------------------------------------- */

/* RFC 7230 tchar: the characters of a method or a header name. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * The request line p[0..len) (its CRLF excluded): "METHOD SP target SP
 * HTTP/d.d". Returns -1 when it is valid, else the error response to send.
 */
static int parse_request_line(const char *p, size_t len, request_t *rq)
{
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ' ')
        return R_BAD;
    rq->head = i == 4 && memcmp(p, "HEAD", 4) == 0;
    size_t target = ++i;
    while (i < len && (unsigned char)p[i] > ' ' && p[i] != 0x7f)
        i++;
    if (i == target || i == len || p[i] != ' ')
        return R_BAD;
    const char *v = p + i + 1;
    if (len - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return R_BAD;
    if (v[5] != '1')
        return R_BAD_VERSION;
    rq->http10 = v[7] == '0';
    return -1;
}

/* Whether [p, end) has @p token in its comma-separated list, in any case. */
static bool has_token(const char *p, const char *end, const char *token)
{
    size_t tlen = strlen(token);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

/* A Content-Length value: digits only, no overflow, equal to any earlier one. */
static int parse_length(const char *p, const char *end, request_t *rq)
{
    uint64_t v = 0;
    if (p == end)
        return R_BAD;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return R_BAD;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (rq->has_length && rq->length != v)
        return R_BAD;
    rq->has_length = true;
    rq->length = v;
    return -1;
}

/* One header line [p, end): look at the three headers that matter. -1 or an error. */
static int parse_header(const char *p, const char *end, request_t *rq)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || colon == p)
        return R_BAD;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)p[i]))
            return R_BAD; /* also catches obs-fold and space before the colon */
    const char *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
        rq->conn_close |= has_token(v, end, "close");
        rq->conn_keep |= has_token(v, end, "keep-alive");
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        return parse_length(v, end, rq);
    } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
        return R_NOT_IMPL; /* no transfer coding is understood (RFC 7230 3.3.1) */
    }
    return -1;
}

/* The end of the line that starts at @p p (its CR), or NULL if it is not CRLF-terminated. */
static const char *line_end(const char *p, const char *end)
{
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    return cr && cr + 1 < end && cr[1] == '\n' ? cr : NULL;
}

/* A whole request head p[0..len), ending in CRLF CRLF: the response it gets. */
static int parse_request(const char *p, size_t len, request_t *rq)
{
    const char *end = p + len - 2; /* the final empty line's CRLF */
    const char *eol = line_end(p, end + 2);
    if (!eol)
        return R_BAD; /* a bare CR in the request line */
    int rc = parse_request_line(p, (size_t)(eol - p), rq);
    if (rc >= 0)
        return rc;
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = line_end(p, end + 2);
        if (!eol || (rc = parse_header(p, eol, rq)) >= 0)
            return eol ? rc : R_BAD;
    }
    if (rq->http10)
        return rq->conn_keep && !rq->conn_close ? R_OK_KEEP10 : R_OK_CLOSE;
    return rq->conn_close ? R_OK_CLOSE : R_OK;
}

/* ---- the protocol ---------------------------------------------------------------- */

/* Answer the complete head p[0..len); its body, if any, is skipped next. */
static int answer(http_conn_t *c, const char *p, size_t len)
{
    request_t rq = {0};
    int kind = parse_request(p, len, &rq);
    c->line_checked = false;
    if (kind == R_OK || kind == R_OK_KEEP10)
        c->skip = rq.length;
    return respond(c, kind, rq.head);
}

/*
 * A head is incomplete in p[0..len): if its request line is there already and
 * malformed, answer 400 now rather than wait for the rest. Returns whether it
 * did.
 */
static bool reject_early(http_conn_t *c, const char *p, size_t len, int *rc)
{
    if (c->line_checked)
        return false;
    const char *lf = memchr(p, '\n', len);
    if (!lf)
        return false;
    request_t rq = {0};
    int kind = lf > p && lf[-1] == '\r' ? parse_request_line(p, (size_t)(lf - 1 - p), &rq) : R_BAD;
    if (kind < 0) {
        c->line_checked = true;
        return false;
    }
    *rc = respond(c, kind, rq.head);
    return true;
}

/* Keep an incomplete head of len (< HEAD_MAX) bytes for the next read. */
static ssize_t stash(http_conn_t *c, const char *p, size_t len)
{
    if (!c->head && !(c->head = malloc(HEAD_MAX)))
        return -ENOMEM;
    memcpy(c->head, p, len);
    c->hlen = len;
    return (ssize_t)len;
}

/* Handle input with no partial head buffered: parse in place. Returns bytes used. */
static ssize_t feed(http_conn_t *c, const char *in, size_t len)
{
    /* Empty lines before a request line are ignored (RFC 7230 3.5). */
    size_t blank = 0;
    while (blank < len && (in[blank] == '\r' || in[blank] == '\n'))
        blank++;
    if (blank > 0)
        return (ssize_t)blank;
    const char *e = memmem(in, len < HEAD_MAX ? len : HEAD_MAX, "\r\n\r\n", 4);
    int rc = 0;
    if (e) {
        size_t n = (size_t)(e + 4 - in);
        rc = answer(c, in, n);
        return rc < 0 ? rc : (ssize_t)n;
    }
    if (len >= HEAD_MAX)
        rc = respond(c, R_TOO_LARGE, false);
    else if (!reject_early(c, in, len, &rc))
        return stash(c, in, len);
    return rc < 0 ? rc : (ssize_t)len;
}

/* Handle input that continues the buffered partial head. Returns bytes used. */
static ssize_t feed_partial(http_conn_t *c, const char *in, size_t len)
{
    size_t old = c->hlen, take = HEAD_MAX - old;
    if (take > len)
        take = len;
    memcpy(c->head + old, in, take);
    c->hlen += take;
    /* The terminator may straddle the old bytes and the new ones. */
    size_t from = old > 3 ? old - 3 : 0;
    const char *e = memmem(c->head + from, c->hlen - from, "\r\n\r\n", 4);
    int rc = 0;
    if (e) {
        size_t n = (size_t)(e + 4 - c->head);
        assert(n > old);
        c->hlen = 0;
        rc = answer(c, c->head, n);
        return rc < 0 ? rc : (ssize_t)(n - old);
    }
    if (c->hlen == HEAD_MAX)
        rc = respond(c, R_TOO_LARGE, false);
    else if (!reject_early(c, c->head, c->hlen, &rc))
        return (ssize_t)take;
    return rc < 0 ? rc : (ssize_t)len;
}

/* Send what this read produced in one write; close after a closing response. */
static int flush(http_conn_t *c)
{
    http_worker_t *w = c->w;
    int rc = w->outlen ? cio_transport_write(c->t, w->out, w->outlen) : 0;
    w->outlen = 0;
    if (c->done)
        cio_transport_close(c->t);
    return rc;
}

static int http_data(cio_protocol_t *p, const void *data, size_t len)
{
    http_conn_t *c = (http_conn_t *)p;
    const char *in = data;
    refresh_responses(c->w);
    c->w->outlen = 0;
    while (len > 0 && !c->done) {
        ssize_t n;
        if (c->skip > 0) {
            n = (ssize_t)(c->skip < len ? c->skip : len);
            c->skip -= (uint64_t)n;
        } else {
            n = c->hlen > 0 ? feed_partial(c, in, len) : feed(c, in, len);
            if (n < 0)
                return (int)n;
        }
        in += n;
        len -= (size_t)n;
    }
    return flush(c);
}

static int http_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((http_conn_t *)p)->t = t;
    return 0;
}

static void http_lost(cio_protocol_t *p, int err)
{
    http_conn_t *c = (http_conn_t *)p;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->head);
    free(c);
}

/* A client that pipelines without reading must not make the server buffer without end. */
static int http_pause_writing(cio_protocol_t *p)
{
    cio_transport_pause_reading(((http_conn_t *)p)->t);
    return 0;
}

static int http_resume_writing(cio_protocol_t *p)
{
    cio_transport_resume_reading(((http_conn_t *)p)->t);
    return 0;
}

/* The client is done: close once the responses are out (a partial request is dropped). */
static int http_eof(cio_protocol_t *p)
{
    return 0;
}

static const cio_protocol_ops_t http_ops = {
    .connection_made = http_made,
    .connection_lost = http_lost,
    .pause_writing = http_pause_writing,
    .resume_writing = http_resume_writing,
    .data_received = http_data,
    .eof_received = http_eof,
};

static cio_protocol_t *http_factory(void *arg)
{
    if (!arg)
        return NULL; /* the worker state from http_worker_init is required */
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &http_ops;
    c->w = arg;
    c->next = c->w->conns;
    if (c->next)
        c->next->prev = c;
    c->w->conns = c;
    return &c->base;
}

/* Whether the connection waits between requests, with no request bytes unread. */
static bool idle(const http_conn_t *c)
{
    cio_extra_info_t info;
    int unread = 0;
    if (c->hlen || c->skip || c->done || !c->t)
        return false;
    if (cio_transport_get_extra_info(c->t, "socket", &info) == 0)
        ioctl(info.fd, FIONREAD, &unread);
    return unread == 0;
}

/* Draining: idle connections close now, the others after their next response. */
static void http_drain(void *state)
{
    http_worker_t *w = state;
    w->draining = true;
    for (http_conn_t *c = w->conns; c; c = c->next)
        if (idle(c)) {
            c->done = true;
            cio_transport_close(c->t);
        }
}

/* ---- the worker's state ------------------------------------------------------- */

static int http_worker_init(void *arg, cio_loop_t *loop, void **state)
{
    http_worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->date_sec = (time_t)-1;
    w->out = malloc(OUT_INITIAL);
    if (!w->out) {
        free(w);
        return -ENOMEM;
    }
    w->outcap = OUT_INITIAL;
    refresh_responses(w);
    *state = w;
    return 0;
}

static void http_worker_teardown(void *state)
{
    http_worker_t *w = state;
    if (!w)
        return;
    free(w->out);
    free(w);
}

const cio_service_t cio__service_http_hello = {
    .name = "http-hello",
    .kinds = CIO_SERVICE_STREAM,
    .factory = http_factory,
    .worker_init = http_worker_init,
    .worker_teardown = http_worker_teardown,
    .drain = http_drain,
};
