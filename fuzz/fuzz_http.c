/*
 * fuzz/fuzz_http.c: http-hello's request reader (framework/http_parse.c) on
 * any byte stream. The input is one connection's bytes. It is read three
 * ways: in one read, one byte per read, and in reads of a size taken from
 * the input; all three must give the same verdicts, for the same requests,
 * in the same order, as a server's answers cannot depend on how TCP cut the
 * stream. Each call must also keep the parser's invariants.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_parse.h"

#define MAX_VERDICTS 64 /* more pipelined requests than that are not compared */

typedef struct outcome {
    int n;
    cio__http_verdict_t v[MAX_VERDICTS];
    bool head[MAX_VERDICTS];
    bool closed; /* the last verdict ends the connection */
    bool idle;
} outcome_t;

/* Abort unless @p ps is consistent after a call that used @p n of @p len bytes. */
static void check_call(const cio__http_parser_t *ps, ssize_t n, size_t len, cio__http_verdict_t v)
{
    if (n <= 0 || (size_t)n > len || v < CIO__HTTP_NONE || v >= CIO__HTTP_VERDICT_COUNT)
        abort();
    if (ps->head_len > CIO__HTTP_HEAD_MAX || ps->line_len >= CIO__HTTP_HEAD_MAX ||
        ps->head_len + ps->line_len > CIO__HTTP_HEAD_MAX)
        abort();
    if (ps->line_len > 0 && !ps->line)
        abort();
    if (v != CIO__HTTP_NONE && (ps->in_head || ps->line_len != 0))
        abort(); /* a verdict ends the head */
    if (!cio__http_verdict_closes(v) && ps->skip != ps->rq.length)
        abort(); /* the body of an answered request is skipped whole */
}

/* Feed one read, s[0..len), until it is used or a verdict closes the connection. */
static void feed_read(cio__http_parser_t *ps, const char *s, size_t len, outcome_t *o)
{
    while (len > 0 && !o->closed) {
        cio__http_verdict_t v;
        ssize_t n = cio__http_parser_feed(ps, s, len, &v);
        check_call(ps, n, len, v);
        if (v != CIO__HTTP_NONE) {
            if (o->n < MAX_VERDICTS) {
                o->head[o->n] = ps->rq.head;
                o->v[o->n] = v;
            }
            o->n++;
            o->closed = cio__http_verdict_closes(v);
        }
        s += n;
        len -= (size_t)n;
    }
}

/* Read s[0..len) in reads of @p chunk bytes (0: one read). */
static void run(const char *s, size_t len, size_t chunk, outcome_t *o)
{
    cio__http_parser_t ps = {0};
    memset(o, 0, sizeof(*o));
    for (size_t at = 0; at < len && !o->closed; at += chunk ? chunk : len)
        feed_read(&ps, s + at, chunk && chunk < len - at ? chunk : len - at, o);
    o->idle = cio__http_parser_idle(&ps);
    cio__http_parser_free(&ps);
}

static void check_same(const outcome_t *a, const outcome_t *b)
{
    if (a->n != b->n || a->closed != b->closed || (!a->closed && a->idle != b->idle))
        abort();
    for (int i = 0; i < a->n && i < MAX_VERDICTS; i++)
        if (a->v[i] != b->v[i] || a->head[i] != b->head[i])
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outcome_t whole, bytewise, chunked;
    const char *s = (const char *)data;
    run(s, size, 0, &whole);
    run(s, size, 1, &bytewise);
    check_same(&whole, &bytewise);
    run(s, size, 2 + size % 61, &chunked);
    check_same(&whole, &chunked);
    return 0;
}
