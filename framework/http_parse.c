/*
 * framework/http_parse.c: the HTTP/1.1 request reader of http-hello (see
 * http_parse.h). A head is read line by line: each line is judged when its
 * LF arrives, so a bad line is refused at once rather than when the whole
 * head is in. A head that arrives whole is read in place; only a line split
 * across reads is copied, into a buffer the parser keeps for later splits.
 *
 * Which bytes a request may hold (RFC 9112 2.2, RFC 9110 5.5 and 5.6.2):
 * every line ends in CRLF; the method and field names are tokens; the target
 * is visible ASCII or obs-text; a field value is HTAB, SP, visible ASCII or
 * obs-text. Anything else is a 400: RFC 9112 lets a recipient refuse a bare
 * LF as a line end and tells it to refuse (or blank) a CR, LF or NUL in a
 * field value; refusing is the safer choice for a server that forwards
 * nothing. So a NUL byte anywhere in a head gets a 400, never silence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

/*
 * RFC 9110 tchar, the characters of a method or a field name, as a bitmap of
 * ASCII: letters, digits and !#$%&'*+-.^_`|~ (one test per byte of a name).
 */
static const uint64_t tchar_map[2] = {0x03ff6cfa00000000u, 0x57ffffffc7fffffeu};

static bool is_tchar(unsigned char ch)
{
    return ch < 128 && (tchar_map[ch >> 6] >> (ch & 63)) & 1;
}

/* RFC 9110 field-vchar, SP or HTAB: what a field value holds. */
static bool is_field_char(unsigned char ch)
{
    return ch == '\t' || (ch >= ' ' && ch != 0x7f);
}

/*
 * The request line p[0..len) (its CRLF excluded): "METHOD SP target SP
 * HTTP/d.d". Returns CIO__HTTP_NONE when it is valid, else the verdict.
 */
static cio__http_verdict_t parse_request_line(const char *p, size_t len, cio__http_request_t *rq)
{
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ' ')
        return CIO__HTTP_BAD;
    rq->head = i == 4 && memcmp(p, "HEAD", 4) == 0;
    size_t target = ++i;
    while (i < len && (unsigned char)p[i] > ' ' && p[i] != 0x7f)
        i++;
    if (i == target || i == len || p[i] != ' ')
        return CIO__HTTP_BAD;
    const char *v = p + i + 1;
    if (len - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return CIO__HTTP_BAD;
    if (v[5] != '1')
        return CIO__HTTP_BAD_VERSION;
    rq->http10 = v[7] == '0';
    return CIO__HTTP_NONE;
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
static cio__http_verdict_t parse_length(const char *p, const char *end, cio__http_request_t *rq)
{
    uint64_t v = 0;
    if (p == end)
        return CIO__HTTP_BAD;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return CIO__HTTP_BAD;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (rq->has_length && rq->length != v)
        return CIO__HTTP_BAD;
    rq->has_length = true;
    rq->length = v;
    return CIO__HTTP_NONE;
}

/* One header line [p, end), CRLF excluded: check it, note the three headers that matter. */
static cio__http_verdict_t parse_header(const char *p, const char *end, cio__http_request_t *rq)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || colon == p)
        return CIO__HTTP_BAD;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)p[i]))
            return CIO__HTTP_BAD; /* also catches obs-fold and space before the colon */
    const char *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *q = v; q < end; q++)
        if (!is_field_char((unsigned char)*q))
            return CIO__HTTP_BAD; /* NUL, a bare CR or LF, another control character */
    if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
        rq->conn_close |= has_token(v, end, "close");
        rq->conn_keep |= has_token(v, end, "keep-alive");
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        return parse_length(v, end, rq);
    } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
        return CIO__HTTP_NOT_IMPL; /* no transfer coding is understood (RFC 9112 6.1) */
    }
    return CIO__HTTP_NONE;
}

/* The empty line that ends a head: the verdict of the request, whose body comes next. */
static cio__http_verdict_t end_head(cio__http_parser_t *ps)
{
    const cio__http_request_t *rq = &ps->rq;
    ps->skip = rq->length;
    if (rq->http10)
        return rq->conn_keep && !rq->conn_close ? CIO__HTTP_OK_KEEP10 : CIO__HTTP_OK_CLOSE;
    return rq->conn_close ? CIO__HTTP_OK_CLOSE : CIO__HTTP_OK;
}

/* One whole line p[0..n) of a head, its LF excluded: the verdict, or NONE to read on. */
static cio__http_verdict_t read_line(cio__http_parser_t *ps, const char *p, size_t n)
{
    if (n == 0 || p[n - 1] != '\r')
        return CIO__HTTP_BAD; /* a bare LF */
    n--;
    if (!ps->in_head) {
        ps->in_head = true;
        return parse_request_line(p, n, &ps->rq);
    }
    return n > 0 ? parse_header(p, p + n, &ps->rq) : end_head(ps);
}

/* Keep the start of a line, in[0..len), for the next read. */
static ssize_t keep_partial(cio__http_parser_t *ps, const char *in, size_t len)
{
    if (!ps->line && !(ps->line = malloc(CIO__HTTP_HEAD_MAX)))
        return -ENOMEM;
    memcpy(ps->line + ps->line_len, in, len);
    ps->line_len += len;
    return (ssize_t)len;
}

/* Read in[0..len) up to the end of the head's next line. Returns the bytes used. */
static ssize_t next_line(cio__http_parser_t *ps, const char *in, size_t len,
                         cio__http_verdict_t *verdict)
{
    /* The head may not pass CIO__HTTP_HEAD_MAX: look for the LF in what fits. */
    size_t room = CIO__HTTP_HEAD_MAX - ps->head_len - ps->line_len;
    const char *lf = memchr(in, '\n', len < room ? len : room);
    if (!lf && len < room)
        return keep_partial(ps, in, len);
    size_t used = lf ? (size_t)(lf - in) + 1 : len;
    if (!lf) {
        *verdict = CIO__HTTP_TOO_LARGE;
    } else if (ps->line_len == 0) {
        *verdict = read_line(ps, in, used - 1);
    } else {
        memcpy(ps->line + ps->line_len, in, used - 1);
        *verdict = read_line(ps, ps->line, ps->line_len + used - 1);
    }
    ps->head_len += ps->line_len + used;
    ps->line_len = 0;
    if (*verdict != CIO__HTTP_NONE) {
        ps->in_head = false;
        ps->head_len = 0;
    }
    return (ssize_t)used;
}

ssize_t cio__http_parser_feed(cio__http_parser_t *ps, const char *in, size_t len,
                              cio__http_verdict_t *verdict)
{
    *verdict = CIO__HTTP_NONE;
    if (ps->skip > 0) {
        size_t n = ps->skip < len ? (size_t)ps->skip : len;
        ps->skip -= n;
        return (ssize_t)n;
    }
    if (!ps->in_head && ps->line_len == 0) {
        /* Empty lines before a request line are ignored (RFC 9112 2.2). */
        size_t blank = 0;
        while (blank < len && (in[blank] == '\r' || in[blank] == '\n'))
            blank++;
        if (blank > 0)
            return (ssize_t)blank;
        memset(&ps->rq, 0, sizeof(ps->rq)); /* a new request begins */
    }
    size_t used = 0;
    while (used < len && *verdict == CIO__HTTP_NONE) {
        ssize_t n = next_line(ps, in + used, len - used, verdict);
        if (n < 0)
            return n;
        used += (size_t)n;
    }
    return (ssize_t)used;
}

bool cio__http_parser_idle(const cio__http_parser_t *ps)
{
    return !ps->in_head && ps->line_len == 0 && ps->skip == 0;
}

void cio__http_parser_free(cio__http_parser_t *ps)
{
    free(ps->line);
    *ps = (cio__http_parser_t){0};
}
