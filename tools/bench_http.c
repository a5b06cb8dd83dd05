/*
 * tools/bench_http.c: the incremental HTTP/1.x response parser (see
 * bench_http.h). Header blocks and chunk lines are gathered in the caller's
 * buffer, so a response may arrive split anywhere; bodies are counted, not
 * copied.
 */
#include "bench_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void bench_http_init(bench_http_parser_t *p, char *buf)
{
    *p = (bench_http_parser_t){.state = BENCH_HTTP_HEAD, .buf = buf};
}

/* Parse a decimal or (@p base 16) hexadecimal number that fills @p s but for blanks. */
static int parse_number(const char *s, int base, uint64_t *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isxdigit((unsigned char)*s))
        return -EPROTO;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || (*end && !(base == 16 && *end == ';'))) /* chunk extensions are allowed */
        return -EPROTO;
    *out = v;
    return 0;
}

/* One header line, NUL-terminated, without its CRLF. */
static int parse_header(bench_http_parser_t *p, char *line, bool *has_length, bool *chunked)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return -EPROTO;
    *colon = '\0';
    const char *value = colon + 1;
    if (strcasecmp(line, "Content-Length") == 0) {
        *has_length = true;
        return parse_number(value, 10, &p->body_left);
    }
    if (strcasecmp(line, "Transfer-Encoding") == 0 && strcasestr(value, "chunked"))
        *chunked = true;
    if (strcasecmp(line, "Connection") == 0) {
        if (strcasestr(value, "close"))
            p->close = true;
        else if (strcasestr(value, "keep-alive"))
            p->close = false;
    }
    return 0;
}

/*
 * The header block in buf (NUL-terminated, blank line included) is whole:
 * read the status and the headers, and choose how the body ends.
 */
static int parse_head(bench_http_parser_t *p)
{
    char *save = NULL;
    char *line = strtok_r(p->buf, "\r\n", &save);
    if (!line || strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
        line[8] != ' ' || !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != '\0'))
        return -EPROTO;
    p->status = atoi(line + 9);
    p->close = line[7] == '0'; /* HTTP/1.0 closes unless it says keep-alive */
    p->body_left = 0;
    bool has_length = false, chunked = false;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        int rc = parse_header(p, line, &has_length, &chunked);
        if (rc < 0)
            return rc;
    }
    if (p->status < 200 || p->status == 204 || p->status == 304)
        p->body_left = 0; /* no body; an interim 1xx is followed by the real response */
    else if (chunked)
        p->state = BENCH_HTTP_CHUNK_LINE;
    else if (has_length)
        p->state = p->body_left ? BENCH_HTTP_BODY : BENCH_HTTP_HEAD;
    else
        p->state = BENCH_HTTP_UNTIL_CLOSE;
    if (p->state == BENCH_HTTP_UNTIL_CLOSE)
        p->close = true;
    return 0;
}

/* Gather the header block; parse it once its blank line has come. */
static ssize_t feed_head(bench_http_parser_t *p, const char *data, size_t len, bool *done)
{
    size_t old = p->len;
    size_t n = len < BENCH_HTTP_HEAD_MAX - old ? len : BENCH_HTTP_HEAD_MAX - old;
    memcpy(p->buf + old, data, n);
    p->len += n;
    size_t from = old > 3 ? old - 3 : 0;
    char *end = memmem(p->buf + from, p->len - from, "\r\n\r\n", 4);
    if (!end) {
        if (p->len == BENCH_HTTP_HEAD_MAX)
            return -EMSGSIZE;
        return (ssize_t)n;
    }
    size_t head = (size_t)(end - p->buf) + 4;
    p->buf[head] = '\0';
    p->len = 0;
    int rc = parse_head(p);
    if (rc < 0)
        return rc;
    *done = p->state == BENCH_HTTP_HEAD && p->status >= 200;
    return (ssize_t)(head - old);
}

/* Gather one line into buf; *line_done once its LF has come. */
static ssize_t take_line(bench_http_parser_t *p, const char *data, size_t len, bool *line_done)
{
    const char *lf = memchr(data, '\n', len);
    size_t n = lf ? (size_t)(lf - data) + 1 : len;
    if (p->len + n > BENCH_HTTP_HEAD_MAX)
        return -EMSGSIZE;
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    p->buf[p->len] = '\0';
    *line_done = lf != NULL;
    return (ssize_t)n;
}

/* A chunk-size line or a trailer line. */
static ssize_t feed_line(bench_http_parser_t *p, const char *data, size_t len, bool *done)
{
    bool line_done = false;
    ssize_t n = take_line(p, data, len, &line_done);
    if (n < 0 || !line_done)
        return n;
    p->buf[strcspn(p->buf, "\r\n")] = '\0';
    bool blank = p->buf[0] == '\0';
    int rc = 0;
    if (p->state == BENCH_HTTP_TRAILER) {
        if (blank) {
            p->state = BENCH_HTTP_HEAD;
            *done = true;
        }
    } else if ((rc = parse_number(p->buf, 16, &p->body_left)) == 0) {
        /* The last chunk has size 0; trailers follow. Else skip data and CRLF. */
        p->state = p->body_left ? BENCH_HTTP_CHUNK_DATA : BENCH_HTTP_TRAILER;
        p->body_left += p->body_left ? 2 : 0;
    }
    p->len = 0;
    return rc < 0 ? rc : n;
}

ssize_t bench_http_feed(bench_http_parser_t *p, const char *data, size_t len, bool *done)
{
    *done = false;
    size_t n;
    switch (p->state) {
    case BENCH_HTTP_HEAD:
        return feed_head(p, data, len, done);
    case BENCH_HTTP_CHUNK_LINE:
    case BENCH_HTTP_TRAILER:
        return feed_line(p, data, len, done);
    case BENCH_HTTP_BODY:
    case BENCH_HTTP_CHUNK_DATA:
        n = len < p->body_left ? len : (size_t)p->body_left;
        p->body_left -= n;
        if (p->body_left == 0) {
            *done = p->state == BENCH_HTTP_BODY;
            p->state = *done ? BENCH_HTTP_HEAD : BENCH_HTTP_CHUNK_LINE;
        }
        return (ssize_t)n;
    case BENCH_HTTP_UNTIL_CLOSE:
        return (ssize_t)len;
    }
    return -EPROTO;
}

int bench_http_eof(bench_http_parser_t *p)
{
    if (p->state == BENCH_HTTP_UNTIL_CLOSE) {
        p->state = BENCH_HTTP_HEAD;
        return 1;
    }
    return p->state == BENCH_HTTP_HEAD && p->len == 0 ? 0 : -EPROTO;
}
