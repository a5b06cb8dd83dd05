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
 * the responses to one read go out in one write. Requests are read by
 * http_parse.c, in place unless a line is split across reads.
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
#include <sys/ioctl.h>
#include <time.h>

#include "builtin.h"
#include "http_parse.h"

#define RESPONSE_MAX 256         /* one prepared response */
#define OUT_INITIAL  (16 * 1024) /* the worker's output buffer to begin with */
#define R_COUNT      CIO__HTTP_VERDICT_COUNT

/* The prepared response to each verdict; a HEAD request gets the same without its body. */
static const struct {
    const char *status;
    const char *connection;
    const char *body;
} response_spec[R_COUNT] = {
    [CIO__HTTP_OK] = {"200 OK", "", "Hello, World!\n"},
    [CIO__HTTP_OK_CLOSE] = {"200 OK", "Connection: close\r\n", "Hello, World!\n"},
    [CIO__HTTP_OK_KEEP10] = {"200 OK", "Connection: keep-alive\r\n", "Hello, World!\n"},
    [CIO__HTTP_BAD] = {"400 Bad Request", "Connection: close\r\n", "Bad Request\n"},
    [CIO__HTTP_TOO_LARGE] = {"431 Request Header Fields Too Large", "Connection: close\r\n",
                             "Request Header Fields Too Large\n"},
    [CIO__HTTP_NOT_IMPL] = {"501 Not Implemented", "Connection: close\r\n", "Not Implemented\n"},
    [CIO__HTTP_BAD_VERSION] = {"505 HTTP Version Not Supported", "Connection: close\r\n",
                               "HTTP Version Not Supported\n"},
};

struct http_conn;

/* A listener's state on one worker: prepared responses, the shared output buffer, its
 * connections (per listener, so that draining one listener leaves the others alone). */
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
    cio__http_parser_t ps;         /* the requests read */
    bool done;                     /* a closing response is out: ignore the rest */
} http_conn_t;

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

/* Queue the response to verdict @p kind; a closing one ends the connection's requests. */
static int respond(http_conn_t *c, cio__http_verdict_t kind, bool head)
{
    http_worker_t *w = c->w;
    if (w->draining && !cio__http_verdict_closes(kind))
        kind = CIO__HTTP_OK_CLOSE;
    size_t len = w->len[kind] - (head ? w->body_len[kind] : 0);
    if (cio__http_verdict_closes(kind))
        c->done = true;
    return out_append(w, w->response[kind], len);
}

/* ---- the protocol ---------------------------------------------------------------- */

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
        cio__http_verdict_t v;
        ssize_t n = cio__http_parser_feed(&c->ps, in, len, &v);
        if (n < 0)
            return (int)n;
        int rc = v == CIO__HTTP_NONE ? 0 : respond(c, v, c->ps.rq.head);
        if (rc < 0)
            return rc;
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
    cio__http_parser_free(&c->ps);
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

static cio_protocol_t *http_factory(cio_service_ctx_t *ctx)
{
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &http_ops;
    c->w = cio_service_listener_state(ctx);
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
    if (!cio__http_parser_idle(&c->ps) || c->done || !c->t)
        return false;
    if (cio_transport_get_extra_info(c->t, "socket", &info) == 0)
        ioctl(info.fd, FIONREAD, &unread);
    return unread == 0;
}

/* Draining: idle connections close now, the others after their next response. */
static void http_drain(cio_service_ctx_t *ctx)
{
    http_worker_t *w = cio_service_listener_state(ctx);
    w->draining = true;
    for (http_conn_t *c = w->conns; c; c = c->next)
        if (idle(c)) {
            c->done = true;
            cio_transport_close(c->t);
        }
}

/* ---- the worker's state ------------------------------------------------------- */

static int http_worker_init(cio_service_ctx_t *ctx, void **state)
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

static void http_worker_teardown(cio_service_ctx_t *ctx, void *state)
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
    .doc = "HTTP/1.1 \"Hello, World!\" to every request (a benchmark target)",
    .listener_start = http_worker_init,
    .listener_stop = http_worker_teardown,
    .drain = http_drain,
};
