/*
 * tools/bench_run.c: the connections of one coreio-bench thread. Every
 * connection is a protocol (cio_protocol_ops_t) on the thread's loop that
 * keeps DEPTH requests in flight: it sends DEPTH at connection_made and one
 * more each time a reply completes. Send times wait in a ring (TCP, where
 * replies come in order) or in numbered slots (UDP, where they may not), all
 * allocated up front: no request allocates. Line requests are made in a
 * buffer of the thread and written in batches of up to LINE_BATCH bytes.
 *
 * A connection that fails is counted as an error and opened again 100 ms
 * later; one the server closed after saying so (HTTP "Connection: close") is
 * opened again at once. Once stopping, nothing is counted or reopened.
 *
 * With --new-conn a connection carries one request: it is closed once the
 * reply is complete and opened again at once, and the request's latency runs
 * from the start of the connect (so it includes the TLS handshake).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_http.h"
#include "bench_tls.h"

#define RETRY_DELAY     0.1           /* seconds before reopening a failed connection */
#define UDP_TIMEOUT_NS  1000000000ull /* a datagram unanswered this long is lost */
#define UDP_SCAN_PERIOD 0.1           /* seconds between looks for lost datagrams */
#define CLOSE_TIMEOUT   2.0           /* seconds closing connections may take before aborting */
#define LINE_BATCH      16384         /* line: bytes of requests gathered into one write */

#define STR_(x) #x
#define STR(x)  STR_(x)

typedef struct conn {
    cio_protocol_t base;
    bench_thread_t *thread;
    cio_transport_t *transport; /* from connection_made to connection_lost */
    cio_future_t *connecting;   /* the create_connection future while pending */
    cio_handle_t retry;         /* the timer that reopens it */
    uint64_t opened_ns;         /* when the connect started */
    uint64_t *sent;             /* depth send times: ring (TCP) or slots (UDP; 0: unused) */
    uint32_t *seq;              /* udp: sequence number of each slot */
    size_t head, inflight;      /* the ring */
    size_t partial;             /* echo: bytes of the oldest echo received so far */
    bool failed;                /* an error was counted: its close is not another */
    bool close_expected;        /* http: the server said it closes */
    union {
        bench_http_parser_t http;
        struct {
            bench_line_gen_t gen;
            bench_line_reader_t reader;
            char *head; /* BENCH_LINE_HEAD bytes for the reader, or NULL */
        } line;
    };
} conn_t;

struct bench_thread {
    const bench_config_t *cfg;
    cio_loop_t *loop;
    conn_t *conns;
    size_t nconns;
    size_t live; /* pending connects plus open transports */
    bool started, stopping;
    uint64_t begin_ns;        /* start of the measured window */
    cio_future_t *all_closed; /* set once stopping and live is 0 */
    cio_handle_t scan;        /* udp: the lost-datagram timer */
    uint64_t *sent;           /* backing arrays of the connections */
    uint32_t *seq;
    char *http_bufs;
    char *line_heads; /* line: the connections' response heads, with --expect */
    char *line_buf;   /* line: requests being gathered for one write */
    size_t line_cap;
    char *datagram;                 /* udp: the datagram being sent */
    bench_tls_sessions_t *sessions; /* --tls-resume: the sessions to resume */
    bench_stats_t stats;
};

static void conn_open(conn_t *c);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- counting --------------------------------------------------------- */

/* Count an error; @p err (0 if none applies) and @p what describe the first. */
static void count_error(bench_thread_t *t, bench_err_kind_t kind, int err, const char *what)
{
    bench_stats_t *s = &t->stats;
    if (t->stopping)
        return;
    s->errors[kind]++;
    if (s->first_error[0] == '\0') {
        snprintf(s->first_error, sizeof(s->first_error), "%s%s%s", err ? cio_strerror(err) : "",
                 err && what ? ": " : "", what ? what : "");
        s->first_error_kind = kind;
    }
}

/* A reply to the request sent at @p sent completed at @p now. */
static void count_reply(bench_thread_t *t, uint64_t sent, uint64_t now)
{
    t->stats.requests++;
    bench_hist_record(&t->stats.latency, now > sent ? now - sent : 0);
}

/* Take the oldest send time off the ring; the ring must not be empty. */
static uint64_t ring_pop(conn_t *c)
{
    uint64_t sent = c->sent[c->head];
    c->head = (c->head + 1) % c->thread->cfg->depth;
    c->inflight--;
    return sent;
}

/* http: the response to the oldest request in flight ended at @p now. */
static void http_response_done(conn_t *c, uint64_t now)
{
    count_reply(c->thread, ring_pop(c), now);
    if (c->http.status < 200 || c->http.status > 299)
        c->thread->stats.non_2xx++;
}

/* The connection misbehaved: count it, and drop it to be opened again. */
static void conn_fail(conn_t *c, bench_err_kind_t kind, int err, const char *what)
{
    count_error(c->thread, kind, err, what);
    c->failed = true;
    if (c->transport)
        cio_transport_abort(c->transport);
}

/* ---- sending ---------------------------------------------------------- */

/* Write the @p len bytes of requests gathered in the thread's buffer; false if closing. */
static bool line_flush(conn_t *c, size_t len)
{
    bench_thread_t *t = c->thread;
    if (len == 0)
        return true;
    if (cio_transport_write(c->transport, t->line_buf, len) < 0)
        return false; /* closing: connection_lost follows */
    if (!t->stopping)
        t->stats.bytes_out += len;
    return true;
}

/* line: make @p n more requests from the templates and send them, as few writes as fit. */
static void line_send(conn_t *c, size_t n, uint64_t now)
{
    bench_thread_t *t = c->thread;
    const bench_config_t *cfg = t->cfg;
    size_t used = 0, max = bench_lines_max_len(cfg->lines);
    for (size_t i = 0; i < n && c->inflight < cfg->depth; i++) {
        if (used + max > t->line_cap) {
            if (!line_flush(c, used))
                return;
            used = 0;
        }
        used += bench_lines_next(cfg->lines, &c->line.gen, t->line_buf + used);
        c->sent[(c->head + c->inflight) % cfg->depth] = now;
        c->inflight++;
    }
    line_flush(c, used);
}

/* TCP: send @p n more requests, noting their send time @p now in the ring. */
static void stream_send(conn_t *c, size_t n, uint64_t now)
{
    const bench_config_t *cfg = c->thread->cfg;
    if (cfg->mode == BENCH_LINE) {
        line_send(c, n, now);
        return;
    }
    for (size_t i = 0; i < n && c->inflight < cfg->depth && !c->close_expected; i++) {
        if (cio_transport_write(c->transport, cfg->request, cfg->request_len) < 0)
            return; /* closing: connection_lost follows */
        c->sent[(c->head + c->inflight) % cfg->depth] = now;
        c->inflight++;
        if (!c->thread->stopping)
            c->thread->stats.bytes_out += cfg->request_len;
    }
}

/* UDP: send a new request from slot @p slot, under a new sequence number. */
static void datagram_send(conn_t *c, size_t slot, uint64_t now)
{
    bench_thread_t *t = c->thread;
    uint32_t hdr[BENCH_UDP_HEADER / sizeof(uint32_t)] = {(uint32_t)slot, ++c->seq[slot]};
    memcpy(t->datagram, hdr, sizeof(hdr));
    c->sent[slot] = now;
    if (cio_transport_sendto(c->transport, t->datagram, t->cfg->size, NULL, 0) == 0 && !t->stopping)
        t->stats.bytes_out += t->cfg->size;
}

/*
 * @p n requests completed at @p now: send as many new ones, or with
 * --new-conn, once the one request is answered, close (the close is expected,
 * and conn_lost opens the connection again at once).
 */
static void conn_continue(conn_t *c, size_t n, uint64_t now)
{
    if (!c->thread->cfg->new_conn) {
        stream_send(c, n, now);
    } else if (n > 0 && c->inflight == 0 && !c->close_expected) {
        c->close_expected = true;
        cio_transport_close(c->transport);
    }
}

/* ---- connection life -------------------------------------------------- */

static cio_protocol_t *conn_factory(void *arg)
{
    return arg; /* each conn_t is the protocol of its one connection at a time */
}

/* Wake the stop task once the last connection is gone. */
static void check_closed(bench_thread_t *t)
{
    if (t->stopping && t->live == 0 && t->all_closed && !cio_future_done(t->all_closed))
        cio_future_set_result(t->all_closed, NULL);
}

static int retry_cb(void *arg)
{
    conn_t *c = arg;
    c->retry = (cio_handle_t){0};
    conn_open(c);
    return 0;
}

/* Open @p c again: after RETRY_DELAY when it failed, else at once. */
static void conn_reopen(conn_t *c, bool failed)
{
    bench_thread_t *t = c->thread;
    if (t->stopping || c->connecting || c->transport)
        return;
    if (!failed) {
        conn_open(c);
    } else if (cio_loop_call_later(t->loop, RETRY_DELAY, retry_cb, c, &c->retry) < 0) {
        count_error(t, BENCH_ERR_CONNECT, -ENOMEM, NULL);
    }
}

static int connect_done_cb(cio_future_t *fut, void *arg)
{
    conn_t *c = arg;
    bench_thread_t *t = c->thread;
    int err = cio_future_error(fut);
    c->connecting = NULL;
    t->live--;
    if (err != 0 && err != -ECANCELED) {
        /* coreio's message names the addresses tried. */
        count_error(t, BENCH_ERR_CONNECT, err, cio_future_error_message(fut));
        conn_reopen(c, true);
    } else if (err == 0 && !c->transport) {
        /*
         * The connection was made and lost before this callback ran (one
         * request, answered at once): conn_lost could not reopen it then.
         */
        conn_reopen(c, c->failed || !c->close_expected);
    }
    cio_future_unref(fut);
    check_closed(t);
    return 0;
}

/* Start connecting @p c (TCP) or making its endpoint (UDP). */
static void conn_open(conn_t *c)
{
    bench_thread_t *t = c->thread;
    const bench_config_t *cfg = t->cfg;
    cio_future_t *f;
    if (t->stopping)
        return;
    if (cfg->mode == BENCH_UDP) {
        cio_datagram_opts_t opts = {.remote_host = cfg->host, .remote_port = cfg->port};
        f = cio_loop_create_datagram_endpoint(t->loop, conn_factory, c, &opts);
    } else {
        cio_connection_opts_t opts = {.ssl = cfg->tls_ctx, .server_hostname = cfg->tls_servername};
        if (t->sessions) /* --tls-resume: the newest session this thread was handed */
            opts.ssl_session = bench_tls_sessions_take(t->sessions);
        f = cio_loop_create_connection(t->loop, conn_factory, c, cfg->host, cfg->port, &opts);
        SSL_SESSION_free(opts.ssl_session); /* the connection took its own reference */
    }
    if (!f) {
        count_error(t, BENCH_ERR_CONNECT, -ENOMEM, NULL);
        conn_reopen(c, true);
        return;
    }
    c->connecting = f;
    c->opened_ns = now_ns();
    t->live++;
    if (cio_future_add_done_callback(f, connect_done_cb, c) < 0) {
        cio_future_cancel(f, NULL); /* its connection, if any, still reports to c */
        cio_future_unref(f);
        c->connecting = NULL;
        t->live--;
    }
}

/* A connection was made (TLS: its handshake is done): count it, and what TLS says. */
static void count_connection(conn_t *c)
{
    bench_stats_t *s = &c->thread->stats;
    bench_tls_info_t info;
    s->connections++;
    if (!c->thread->cfg->tls || bench_tls_info(c->transport, &info) < 0)
        return;
    s->resumed += info.resumed;
    if (s->tls_version[0] == '\0') {
        snprintf(s->tls_version, sizeof(s->tls_version), "%s", info.version ? info.version : "?");
        snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", info.cipher ? info.cipher : "?");
    }
}

static int conn_made(cio_protocol_t *p, cio_transport_t *transport)
{
    conn_t *c = (conn_t *)p;
    bench_thread_t *t = c->thread;
    c->transport = transport;
    t->live++;
    c->head = c->inflight = c->partial = 0;
    c->failed = c->close_expected = false;
    if (t->stopping) {
        cio_transport_close(transport);
        return 0;
    }
    count_connection(c);
    /* One request per connection: it was sent, as far as latency goes, at the connect. */
    uint64_t now = t->cfg->new_conn ? c->opened_ns : now_ns();
    if (t->cfg->mode == BENCH_UDP) {
        for (size_t i = 0; i < t->cfg->depth; i++)
            datagram_send(c, i, now);
    } else {
        if (t->cfg->mode == BENCH_HTTP)
            bench_http_init(&c->http, c->http.buf);
        if (t->cfg->mode == BENCH_LINE)
            bench_line_reader_init(&c->line.reader, t->cfg->expect, c->line.head);
        stream_send(c, t->cfg->depth, now);
    }
    return 0;
}

static void conn_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    bench_thread_t *t = c->thread;
    c->transport = NULL;
    t->live--;
    if (!t->stopping && t->cfg->mode == BENCH_HTTP && !c->failed) {
        int rc = bench_http_eof(&c->http);
        if (rc == 1 && c->inflight > 0) { /* a response delimited by the close */
            http_response_done(c, now_ns());
            c->close_expected = true;
        } else if (rc < 0) {
            conn_fail(c, BENCH_ERR_BAD, rc, "a response cut short by the close");
        }
    }
    bool expected = c->close_expected && !c->failed;
    if (!c->failed && !expected)
        count_error(t, BENCH_ERR_CLOSED, err, err ? NULL : "closed by the peer");
    conn_reopen(c, !expected);
    check_closed(t);
}

/* ---- receiving -------------------------------------------------------- */

/* echo: every SIZE bytes back complete the oldest request in flight. */
static int echo_received(conn_t *c, const void *data, size_t len)
{
    bench_thread_t *t = c->thread;
    size_t size = t->cfg->size;
    size_t avail = c->partial + len;
    size_t done = avail / size;
    if (done > c->inflight || (done == c->inflight && avail % size)) {
        conn_fail(c, BENCH_ERR_BAD, 0, "more bytes back than were sent");
        return 0;
    }
    c->partial = avail % size;
    uint64_t now = now_ns();
    for (size_t i = 0; i < done; i++)
        count_reply(t, ring_pop(c), now);
    conn_continue(c, done, now);
    return 0;
}

/* http: parse; every response ended completes the oldest request. */
static int http_received(conn_t *c, const char *data, size_t len)
{
    uint64_t now = 0;
    size_t completed = 0;
    while (len > 0) {
        bool done = false;
        ssize_t n = bench_http_feed(&c->http, data, len, &done);
        if (n < 0 || (done && c->inflight == 0)) {
            conn_fail(c, BENCH_ERR_BAD, n < 0 ? (int)n : 0,
                      n < 0 ? "a malformed HTTP response" : "a response never asked for");
            return 0;
        }
        data += n;
        len -= (size_t)n;
        if (!done)
            continue;
        now = now ? now : now_ns();
        http_response_done(c, now);
        completed++;
        if (c->http.close) {
            c->close_expected = true; /* requests still in flight are dropped */
            break;
        }
    }
    if (completed)
        conn_continue(c, completed, now);
    return 0;
}

/* line: the head of the response line that just ended, printable. */
static void describe_unexpected(conn_t *c, char *out, size_t outlen)
{
    const bench_line_reader_t *r = &c->line.reader;
    char head[BENCH_LINE_HEAD + 1];
    size_t n = r->head ? r->head_len : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)r->head[i];
        head[i] = b >= 0x20 && b < 0x7f ? (char)b : '?';
    }
    head[n] = '\0';
    snprintf(out, outlen, "a response not starting with '%s': '%s%s'", c->thread->cfg->expect, head,
             n == BENCH_LINE_HEAD ? "..." : "");
}

/* line: every line ended completes the oldest request; count it if unexpected. */
static int line_received(conn_t *c, const char *data, size_t len)
{
    bench_thread_t *t = c->thread;
    uint64_t now = 0;
    size_t completed = 0;
    while (len > 0) {
        bool done = false;
        ssize_t n = bench_line_feed(&c->line.reader, data, len, &done);
        if (n < 0 || (done && c->inflight == 0)) {
            conn_fail(c, BENCH_ERR_BAD, 0,
                      n < 0 ? "a response line longer than " STR(BENCH_LINE_MAX) " bytes"
                            : "a response line never asked for");
            return 0;
        }
        data += n;
        len -= (size_t)n;
        if (!done)
            continue;
        now = now ? now : now_ns();
        count_reply(t, ring_pop(c), now);
        completed++;
        if (c->line.reader.unexpected) {
            char what[BENCH_LINE_HEAD + 128] = "";
            if (t->stats.first_error[0] == '\0') /* only the first is described */
                describe_unexpected(c, what, sizeof(what));
            count_error(t, BENCH_ERR_UNEXPECTED, 0, what);
        }
    }
    if (completed)
        conn_continue(c, completed, now);
    return 0;
}

static int conn_data_received(cio_protocol_t *p, const void *data, size_t len)
{
    conn_t *c = (conn_t *)p;
    bench_thread_t *t = c->thread;
    if (t->stopping || c->failed)
        return 0;
    t->stats.bytes_in += len;
    if (t->cfg->mode == BENCH_HTTP)
        return http_received(c, data, len);
    if (t->cfg->mode == BENCH_LINE)
        return line_received(c, data, len);
    return echo_received(c, data, len);
}

static int conn_eof_received(cio_protocol_t *p)
{
    return 0; /* close; connection_lost decides whether that was expected */
}

static int datagram_received(cio_protocol_t *p, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen)
{
    conn_t *c = (conn_t *)p;
    bench_thread_t *t = c->thread;
    if (t->stopping)
        return 0;
    t->stats.bytes_in += len;
    uint32_t hdr[BENCH_UDP_HEADER / sizeof(uint32_t)];
    if (len != t->cfg->size) {
        count_error(t, BENCH_ERR_BAD, 0, "a datagram of the wrong size");
        return 0;
    }
    memcpy(hdr, data, sizeof(hdr));
    size_t slot = hdr[0];
    /* A late echo of a datagram already counted lost matches no slot: ignore it. */
    if (slot >= t->cfg->depth || c->seq[slot] != hdr[1] || c->sent[slot] == 0)
        return 0;
    uint64_t now = now_ns();
    count_reply(t, c->sent[slot], now);
    datagram_send(c, slot, now);
    return 0;
}

static int datagram_error_received(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    count_error(c->thread, BENCH_ERR_CLOSED, err, NULL);
    return 0;
}

static const cio_protocol_ops_t stream_ops = {
    .connection_made = conn_made,
    .connection_lost = conn_lost,
    .data_received = conn_data_received,
    .eof_received = conn_eof_received,
};

static const cio_protocol_ops_t datagram_ops = {
    .connection_made = conn_made,
    .connection_lost = conn_lost,
    .datagram_received = datagram_received,
    .error_received = datagram_error_received,
};

/* udp: count datagrams unanswered for UDP_TIMEOUT_NS as lost and send new ones. */
static int scan_cb(void *arg)
{
    bench_thread_t *t = arg;
    uint64_t now = now_ns();
    for (size_t i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        for (size_t s = 0; c->transport && s < t->cfg->depth; s++) {
            if (c->sent[s] == 0 || now - c->sent[s] < UDP_TIMEOUT_NS)
                continue;
            t->stats.lost++;
            datagram_send(c, s, now);
        }
    }
    return cio_loop_call_later(t->loop, UDP_SCAN_PERIOD, scan_cb, t, &t->scan);
}

/* ---- the thread ------------------------------------------------------- */

/* line: the request buffer, and the response heads if responses are checked. */
static int line_alloc(bench_thread_t *t, size_t n)
{
    size_t max = bench_lines_max_len(t->cfg->lines);
    t->line_cap = max > LINE_BATCH ? max : LINE_BATCH;
    t->line_buf = malloc(t->line_cap);
    t->line_heads = t->cfg->expect ? malloc(n * BENCH_LINE_HEAD) : NULL;
    return t->line_buf && (t->line_heads || !t->cfg->expect) ? 0 : -ENOMEM;
}

/* Connection @p i of @p t, numbered @p index in the run, ready to open. */
static void conn_init(bench_thread_t *t, size_t i, size_t index)
{
    const bench_config_t *cfg = t->cfg;
    conn_t *c = &t->conns[i];
    c->base.ops = cfg->mode == BENCH_UDP ? &datagram_ops : &stream_ops;
    c->thread = t;
    c->sent = t->sent + i * cfg->depth;
    c->seq = t->seq ? t->seq + i * cfg->depth : NULL;
    if (cfg->mode == BENCH_HTTP)
        bench_http_init(&c->http, t->http_bufs + i * (BENCH_HTTP_HEAD_MAX + 1));
    if (cfg->mode == BENCH_LINE) {
        bench_line_gen_init(&c->line.gen, cfg->seed, index);
        c->line.head = t->line_heads ? t->line_heads + i * BENCH_LINE_HEAD : NULL;
    }
}

bench_thread_t *bench_thread_new(const bench_config_t *cfg, cio_loop_t *loop, size_t nconns,
                                 size_t first)
{
    bench_thread_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    size_t n = nconns ? nconns : 1, depth = cfg->depth;
    bool udp = cfg->mode == BENCH_UDP, http = cfg->mode == BENCH_HTTP;
    *t = (bench_thread_t){.cfg = cfg, .loop = loop, .nconns = nconns};
    t->conns = calloc(n, sizeof(*t->conns));
    t->sent = calloc(n * depth, sizeof(*t->sent));
    t->seq = udp ? calloc(n * depth, sizeof(*t->seq)) : NULL;
    t->datagram = udp ? malloc(cfg->size) : NULL;
    t->http_bufs = http ? malloc(n * (BENCH_HTTP_HEAD_MAX + 1)) : NULL;
    t->sessions = cfg->tls_resume ? bench_tls_sessions_new(n * BENCH_TLS_SESSIONS_PER_CONN) : NULL;
    if (!t->conns || !t->sent || (udp && (!t->seq || !t->datagram)) || (http && !t->http_bufs) ||
        (cfg->tls_resume && !t->sessions) || (cfg->mode == BENCH_LINE && line_alloc(t, n) < 0) ||
        bench_hist_init(&t->stats.latency, BENCH_HIST_HIGHEST) < 0) {
        bench_thread_free(t);
        return NULL;
    }
    if (udp)
        memcpy(t->datagram, cfg->request, cfg->size);
    for (size_t i = 0; i < nconns; i++)
        conn_init(t, i, first + i);
    return t;
}

cio_loop_t *bench_thread_loop(const bench_thread_t *t)
{
    return t->loop;
}

int bench_thread_start(bench_thread_t *t)
{
    t->started = true;
    t->begin_ns = now_ns();
    bench_tls_sessions_attach(t->sessions); /* this loop's handshakes resume from its pool */
    for (size_t i = 0; i < t->nconns; i++)
        conn_open(&t->conns[i]);
    if (t->cfg->mode == BENCH_UDP)
        return cio_loop_call_later(t->loop, UDP_SCAN_PERIOD, scan_cb, t, &t->scan);
    return 0;
}

void bench_thread_begin(bench_thread_t *t)
{
    bench_stats_t *s = &t->stats;
    s->requests = s->lost = s->non_2xx = s->bytes_in = s->bytes_out = 0;
    s->connections = s->resumed = 0;
    memset(s->errors, 0, sizeof(s->errors));
    bench_hist_reset(&s->latency);
    t->begin_ns = now_ns();
}

/* Inside the stop task: wait up to @p timeout seconds for every connection to go. */
static int await_closed(bench_thread_t *t, double timeout)
{
    if (t->live == 0)
        return 0;
    t->all_closed = cio_loop_create_future(t->loop);
    cio_future_t *w = t->all_closed ? cio_wait_for(t->all_closed, timeout) : NULL;
    int rc = w ? cio_await(w, NULL) : -ENOMEM;
    cio_future_unref(w);
    cio_future_unref(t->all_closed);
    t->all_closed = NULL;
    return rc;
}

int bench_thread_stop(bench_thread_t *t)
{
    if (!t->started || t->stopping)
        return 0;
    t->stopping = true;
    t->stats.seconds = (double)(now_ns() - t->begin_ns) / 1e9;
    cio_handle_cancel(t->scan);
    for (size_t i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        cio_handle_cancel(c->retry);
        if (c->connecting)
            cio_future_cancel(c->connecting, NULL);
        if (c->transport)
            cio_transport_close(c->transport);
    }
    int rc = await_closed(t, CLOSE_TIMEOUT);
    if (rc == -ETIMEDOUT) {
        /* A peer that does not read keeps close() waiting to flush: drop the data. */
        for (size_t i = 0; i < t->nconns; i++)
            if (t->conns[i].transport)
                cio_transport_abort(t->conns[i].transport);
        rc = await_closed(t, CLOSE_TIMEOUT);
    }
    return rc;
}

const bench_stats_t *bench_thread_stats(const bench_thread_t *t)
{
    return &t->stats;
}

void bench_thread_free(bench_thread_t *t)
{
    if (!t)
        return;
    bench_hist_free(&t->stats.latency);
    free(t->conns);
    free(t->sent);
    free(t->seq);
    free(t->datagram);
    free(t->http_bufs);
    free(t->line_heads);
    free(t->line_buf);
    bench_tls_sessions_free(t->sessions);
    free(t);
}
