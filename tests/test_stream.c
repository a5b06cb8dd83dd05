/*
 * tests/test_stream.c: stream transports (SEMANTICS.md "Streams"): TCP_NODELAY,
 * connection_made scheduled before any data, write buffering with the
 * high/low-water marks, write_eof and half-close, eof_received, pausing
 * reads, close and abort, resets, the order of protocol callbacks, failing
 * callbacks, BufferedProtocol, extra info, set_protocol, writelines, and a
 * thousand connections on one loop. Peers are plain sockets in the same
 * process: polled from the loop, or driven by a helper thread when blocking.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "many_echo.h"
#include "testutil.h"

#define MIB       (1024 * 1024)
#define SMALL_BUF (64 * 1024)

/* ---- helpers ------------------------------------------------------------- */

/* The byte at offset @p i of every test stream; 251 is prime, so shifted blocks differ. */
static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i % 251);
}

static void fill_pattern(uint8_t *buf, size_t off, size_t n)
{
    for (size_t k = 0; k < n; k++)
        buf[k] = pattern_at(off + k);
}

/*
 * Inside a task: let the loop run until @p cond holds. The deadline only keeps
 * a broken build from hanging; passing runs take milliseconds.
 */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 5.0;                               \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.001);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)

/* Inside a task: let the loop run @p n iterations. */
static void spin(int n)
{
    for (int i = 0; i < n; i++)
        cio_sleep(0);
}

/* Inside a task: await @p f, which must succeed; returns its result and drops @p f. */
static void *await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    int rc = cio_await(f, &res);
    const char *msg = cio_future_error_message(f);
    ck_assert_msg(rc == 0, "await failed: %s (%s)", cio_err_name(rc), msg ? msg : "");
    cio_future_unref(f);
    return res;
}

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static void set_buffers(int fd, int size)
{
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

/*
 * A connected TCP pair on 127.0.0.1, both ends blocking: sv[0] for the
 * transport, sv[1] for the peer. A @p bufsize (0: the system's) sets both
 * socket buffers, so that a few hundred KiB fill the kernel and the rest waits
 * in the write buffer.
 */
static void tcp_pair(int sv[2], int bufsize)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    if (bufsize)
        set_buffers(l, bufsize);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(sv[0], 0);
    if (bufsize)
        set_buffers(sv[0], bufsize);
    ck_assert_int_eq(connect(sv[0], (struct sockaddr *)&a, sizeof(a)), 0);
    sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(sv[1], 0);
    close(l);
}

static void unix_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Send the short string @p s (it fits the socket buffer). */
static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    ck_assert_int_eq(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Whether @p fd has bytes to read right now. */
static bool readable_now(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

/* Inside a task: wrap the connected socket @p fd in a transport for @p p. */
static cio_transport_t *wrap(int fd, cio_protocol_t *p)
{
    return await_ok(
        cio_loop_connect_accepted_socket(cio_get_running_loop(), static_factory, p, fd, NULL));
}

/* ---- a recording protocol ------------------------------------------------ */

enum { EV_MADE = 1, EV_DATA, EV_EOF, EV_LOST, EV_PAUSE, EV_RESUME };

typedef struct rec {
    cio_protocol_t base;
    cio_transport_t *t; /* from connection_made to connection_lost */
    cio_test_order_t order;
    int made, datas, eofs, lost, pauses, resumes;
    int lost_err;
    int after_lost;        /* callbacks that came after connection_lost */
    int made_ret;          /* what connection_made returns */
    int data_ret;          /* what data_received returns */
    int eof_ret;           /* what eof_received returns */
    const char *eof_reply; /* written by eof_received when set */
    int eof_reply_rc;
    bool abort_on_data; /* abort() inside the first data_received */
    bool check_pattern; /* compare received bytes with pattern_at() */
    bool keep;          /* keep the received bytes in rx */
    size_t nrx, bad;
    uint8_t *rx;
    size_t rxcap;
} rec_t;

static void note(rec_t *r, int ev)
{
    if (r->lost)
        r->after_lost++;
    if (r->order.n < (int)(sizeof(r->order.v) / sizeof(r->order.v[0])))
        r->order.v[r->order.n++] = ev;
}

static int rec_made(cio_protocol_t *p, cio_transport_t *t)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_MADE);
    r->made++;
    r->t = t;
    return r->made_ret;
}

static void rec_lost(cio_protocol_t *p, int err)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_LOST);
    r->lost++;
    r->lost_err = err;
    r->t = NULL;
}

static void rec_take(rec_t *r, const uint8_t *d, size_t n)
{
    if (r->check_pattern) {
        for (size_t k = 0; k < n; k++)
            r->bad += d[k] != pattern_at(r->nrx + k);
    }
    if (r->keep) {
        if (r->nrx + n + 1 > r->rxcap) {
            r->rxcap = 2 * (r->nrx + n + 1);
            r->rx = realloc(r->rx, r->rxcap);
            ck_assert_ptr_nonnull(r->rx);
        }
        memcpy(r->rx + r->nrx, d, n);
        r->rx[r->nrx + n] = '\0';
    }
    r->nrx += n;
}

static int rec_data(cio_protocol_t *p, const void *data, size_t len)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_DATA);
    r->datas++;
    rec_take(r, data, len);
    if (r->abort_on_data && r->t && r->datas == 1)
        cio_transport_abort(r->t);
    return r->data_ret;
}

static int rec_eof(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_EOF);
    r->eofs++;
    if (r->eof_reply)
        r->eof_reply_rc = cio_transport_write(r->t, r->eof_reply, strlen(r->eof_reply));
    return r->eof_ret;
}

static int rec_pause(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_PAUSE);
    r->pauses++;
    return 0;
}

static int rec_resume(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    note(r, EV_RESUME);
    r->resumes++;
    return 0;
}

static const cio_protocol_ops_t rec_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
    .data_received = rec_data,
    .eof_received = rec_eof,
};

/* The same without eof_received: asyncio's base class, which closes. */
static const cio_protocol_ops_t rec_ops_no_eof = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .data_received = rec_data,
};

static void rec_init(rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->base.ops = &rec_ops;
}

static void rec_fini(rec_t *r)
{
    free(r->rx);
    r->rx = NULL;
}

/* ---- a raw peer polled from the loop ------------------------------------- */

typedef struct peer {
    cio_loop_t *loop;
    int fd;
    size_t got, bad;
    bool eof;
    int err;
    bool keep;
    uint8_t *rx;
    size_t rxcap;
} peer_t;

static int peer_readable(void *arg)
{
    peer_t *pr = arg;
    static uint8_t buf[64 * 1024];
    for (;;) {
        ssize_t n = recv(pr->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            for (ssize_t k = 0; k < n; k++)
                pr->bad += buf[k] != pattern_at(pr->got + (size_t)k);
            if (pr->keep) {
                if (pr->got + (size_t)n + 1 > pr->rxcap) {
                    pr->rxcap = 2 * (pr->got + (size_t)n + 1);
                    pr->rx = realloc(pr->rx, pr->rxcap);
                    ck_assert_ptr_nonnull(pr->rx);
                }
                memcpy(pr->rx + pr->got, buf, (size_t)n);
                pr->rx[pr->got + (size_t)n] = '\0';
            }
            pr->got += (size_t)n;
            continue;
        }
        if (n == 0)
            pr->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            pr->err = -errno;
        if (pr->eof || pr->err)
            cio_loop_remove_reader(pr->loop, pr->fd);
        return 0;
    }
}

/* Inside a task: start reading @p fd from the loop (it becomes non-blocking). */
static void peer_start(peer_t *pr, int fd, bool keep)
{
    memset(pr, 0, sizeof(*pr));
    pr->loop = cio_get_running_loop();
    pr->fd = fd;
    pr->keep = keep;
    set_nonblocking(fd);
    ck_assert_int_eq(cio_loop_add_reader(pr->loop, fd, peer_readable, pr), 0);
}

static void peer_fini(peer_t *pr)
{
    if (!pr->eof && !pr->err)
        cio_loop_remove_reader(pr->loop, pr->fd);
    free(pr->rx);
    pr->rx = NULL;
}

/* ---- a blocking peer on a helper thread ---------------------------------- */

typedef struct writer {
    pthread_t th;
    int fd;
    size_t len; /* bytes of pattern to send */
    bool shut;  /* shutdown(SHUT_WR) afterwards */
    size_t sent;
    int err;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    static __thread uint8_t buf[64 * 1024];
    while (w->sent < w->len) {
        size_t n = w->len - w->sent < sizeof(buf) ? w->len - w->sent : sizeof(buf);
        fill_pattern(buf, w->sent, n);
        ssize_t k = send(w->fd, buf, n, MSG_NOSIGNAL);
        if (k < 0) {
            w->err = -errno;
            return NULL; /* the transport went away: expected in some tests */
        }
        w->sent += (size_t)k;
    }
    if (w->shut)
        shutdown(w->fd, SHUT_WR);
    return NULL;
}

static void writer_start(writer_t *w, int fd, size_t len, bool shut)
{
    memset(w, 0, sizeof(*w));
    w->fd = fd;
    w->len = len;
    w->shut = shut;
    ck_assert_int_eq(pthread_create(&w->th, NULL, writer_main, w), 0);
}

/* ---- an exception handler that records ----------------------------------- */

typedef struct exc {
    int calls;
    int error;
    void *transport;
    void *protocol;
    char message[256];
} exc_t;

static int exc_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    exc_t *e = arg;
    e->calls++;
    e->error = ctx->error;
    e->transport = ctx->transport;
    e->protocol = ctx->protocol;
    snprintf(e->message, sizeof(e->message), "%s", ctx->message ? ctx->message : "");
    return 0;
}

/* ---- TCP_NODELAY --------------------------------------------------------- */

typedef struct conns {
    rec_t r[4];
    int n;
} conns_t;

static cio_protocol_t *conns_factory(void *arg)
{
    conns_t *c = arg;
    if (c->n == 4)
        return NULL;
    rec_t *r = &c->r[c->n++];
    rec_init(r);
    return &r->base;
}

static int port_of_server(cio_server_t *s, char *port, size_t len)
{
    int fd;
    ck_assert_uint_ge(cio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    int p = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                    : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(port, len, "%d", p);
    return p;
}

static int nodelay_of(cio_transport_t *t)
{
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "socket", &info), 0);
    int v = 0;
    socklen_t vl = sizeof(v);
    ck_assert_int_eq(getsockopt(info.fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    return v;
}

static int nodelay_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    conns_t srv = {0};
    rec_t cli;
    rec_init(&cli);
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, conns_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    port_of_server(s, port, sizeof(port));
    cio_transport_t *ct =
        await_ok(cio_loop_create_connection(loop, static_factory, &cli, "127.0.0.1", port, NULL));
    WAIT_UNTIL(srv.n == 1 && srv.r[0].made == 1);
    ck_assert_int_ne(nodelay_of(ct), 0);
    ck_assert_int_ne(nodelay_of(srv.r[0].t), 0);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && srv.r[0].lost == 1);
    cio_server_free(s);
    rec_fini(&cli);
    rec_fini(&srv.r[0]);
    return 0;
}

START_TEST(test_tcp_nodelay_is_set_on_accepted_and_connected_transports)
{
    ck_assert_int_eq(cio_run(nodelay_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- connection_made and reading ----------------------------------------- */

static int made_first_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    /* create_connection: connection_made has not run when the call returns. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    rec_t r1;
    rec_init(&r1);
    cio_future_t *f =
        cio_loop_create_connection(loop, static_factory, &r1, "127.0.0.1", port, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(r1.made, 0);
    cio_transport_t *t1 = await_ok(f);
    ck_assert_int_eq(r1.made, 1);
    ck_assert_ptr_eq(r1.t, t1);
    int peer1 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(peer1, 0);
    close(l);

    /* Data already waiting when the socket is wrapped comes after connection_made. */
    int sv[2];
    unix_pair(sv);
    send_str(sv[1], "early");
    rec_t r2;
    rec_init(&r2);
    r2.keep = true;
    f = cio_loop_connect_accepted_socket(loop, static_factory, &r2, sv[0], NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(r2.made, 0);
    ck_assert(!cio_future_done(f));
    await_ok(f);
    WAIT_UNTIL(r2.nrx == 5);
    ck_assert_str_eq((char *)r2.rx, "early");
    ck_assert_int_ge(r2.order.n, 2);
    ck_assert_int_eq(r2.order.v[0], EV_MADE);
    for (int i = 1; i < r2.order.n; i++)
        ck_assert_int_eq(r2.order.v[i], EV_DATA);

    cio_transport_close(t1);
    cio_transport_close(r2.t);
    WAIT_UNTIL(r1.lost == 1 && r2.lost == 1);
    close(peer1);
    close(sv[1]);
    rec_fini(&r1);
    rec_fini(&r2);
    return 0;
}

START_TEST(test_connection_made_is_scheduled_and_comes_before_any_data)
{
    ck_assert_int_eq(cio_run(made_first_fn, NULL, false, NULL), 0);
}
END_TEST

static int mebibyte_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, 0);
    rec_t r;
    rec_init(&r);
    r.check_pattern = true;
    writer_t w;
    writer_start(&w, sv[1], MIB, true);
    wrap(sv[0], &r.base);
    WAIT_UNTIL(r.lost == 1);
    pthread_join(w.th, NULL);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(r.nrx, MIB);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(r.eofs, 1);
    ck_assert_int_eq(r.lost_err, 0);
    /* made, data..., eof, lost */
    ck_assert_int_ge(r.order.n, 4);
    ck_assert_int_eq(r.order.v[0], EV_MADE);
    for (int i = 1; i < r.order.n - 2; i++)
        ck_assert_int_eq(r.order.v[i], EV_DATA);
    ck_assert_int_eq(r.order.v[r.order.n - 2], EV_EOF);
    ck_assert_int_eq(r.order.v[r.order.n - 1], EV_LOST);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_a_mebibyte_from_the_peer_arrives_complete_and_in_order)
{
    ck_assert_int_eq(cio_run(mebibyte_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- writing ------------------------------------------------------------- */

static int write_at_once_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, 0);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t = wrap(sv[0], &r.base);
    uint8_t msg[100];
    fill_pattern(msg, 0, sizeof(msg));
    ck_assert_uint_eq(cio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(cio_transport_write(t, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(cio_transport_get_write_buffer_size(t), 0);
    /* The bytes left without the loop running again: the peer reads them now. */
    struct timeval tv = {.tv_sec = 3};
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    uint8_t got[100];
    ck_assert_int_eq(recv(sv[1], got, sizeof(got), MSG_WAITALL), (ssize_t)sizeof(got));
    ck_assert_mem_eq(got, msg, sizeof(msg));
    cio_transport_close(t);
    WAIT_UNTIL(r.lost == 1);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_write_sends_at_once_when_the_buffer_is_empty)
{
    ck_assert_int_eq(cio_run(write_at_once_fn, NULL, false, NULL), 0);
}
END_TEST

#define CHUNK (16 * 1024)

/* A protocol that writes CHUNK bytes per loop iteration until told to pause. */
typedef struct flow {
    cio_protocol_t base;
    cio_loop_t *loop;
    cio_transport_t *t;
    size_t low, high;
    size_t written, max_size, size_at_pause, size_at_resume;
    int writes, late_writes, pauses, resumes, lost, lost_err;
    bool paused, stop, peer_reading, resumed_before_peer_read;
} flow_t;

static int flow_write_cb(void *arg)
{
    flow_t *f = arg;
    if (f->paused || f->stop || f->lost)
        return 0;
    static uint8_t chunk[CHUNK];
    fill_pattern(chunk, f->written, CHUNK);
    size_t before = cio_transport_get_write_buffer_size(f->t);
    if (before > f->high)
        f->late_writes++; /* writing above high water, and nobody said pause */
    ck_assert_int_eq(cio_transport_write(f->t, chunk, CHUNK), 0);
    f->written += CHUNK;
    f->writes++;
    size_t after = cio_transport_get_write_buffer_size(f->t);
    if (after > f->max_size)
        f->max_size = after;
    cio_loop_call_soon(f->loop, flow_write_cb, f, NULL);
    return 0;
}

static int flow_made(cio_protocol_t *p, cio_transport_t *t)
{
    flow_t *f = (flow_t *)p;
    f->t = t;
    cio_transport_get_write_buffer_limits(t, &f->low, &f->high);
    return 0;
}

static int flow_pause(cio_protocol_t *p)
{
    flow_t *f = (flow_t *)p;
    f->pauses++;
    f->paused = true;
    f->size_at_pause = cio_transport_get_write_buffer_size(f->t);
    return 0;
}

static int flow_resume(cio_protocol_t *p)
{
    flow_t *f = (flow_t *)p;
    f->resumes++;
    f->paused = false;
    f->stop = true; /* enough: the test closes the transport next */
    f->size_at_resume = cio_transport_get_write_buffer_size(f->t);
    if (!f->peer_reading)
        f->resumed_before_peer_read = true;
    return 0;
}

static void flow_lost(cio_protocol_t *p, int err)
{
    flow_t *f = (flow_t *)p;
    f->lost++;
    f->lost_err = err;
}

static const cio_protocol_ops_t flow_ops = {
    .connection_made = flow_made,
    .connection_lost = flow_lost,
    .pause_writing = flow_pause,
    .resume_writing = flow_resume,
};

static int flow_fn(void *arg, void **result)
{
    int sv[2];
    /* Tiny kernel buffers: the write buffer drains a few KiB at a time. */
    tcp_pair(sv, 4096);
    flow_t f = {.base = {&flow_ops}, .loop = cio_get_running_loop()};
    wrap(sv[0], &f.base);
    ck_assert_uint_eq(f.high, 64 * 1024);
    ck_assert_uint_eq(f.low, 16 * 1024);
    cio_loop_call_soon(f.loop, flow_write_cb, &f, NULL);
    WAIT_UNTIL(f.pauses == 1);
    int writes = f.writes;
    spin(10);
    /* The protocol stopped on pause, so memory stays bounded. */
    ck_assert_int_eq(f.writes, writes);
    ck_assert_int_eq(f.pauses, 1);
    ck_assert_uint_gt(f.size_at_pause, f.high);
    ck_assert_int_eq(f.late_writes, 0);
    ck_assert_uint_le(f.max_size, f.high + CHUNK);
    ck_assert_int_eq(f.resumes, 0);

    /* The peer reads: the buffer drains and resume_writing follows, once. */
    peer_t pr;
    f.peer_reading = true;
    peer_start(&pr, sv[1], false);
    WAIT_UNTIL(f.resumes == 1);
    ck_assert(!f.resumed_before_peer_read);
    ck_assert_uint_le(f.size_at_resume, f.low);
    cio_transport_close(f.t);
    WAIT_UNTIL(pr.eof && f.lost == 1);
    ck_assert_int_eq(f.pauses, 1);
    ck_assert_int_eq(f.resumes, 1);
    ck_assert_uint_eq(pr.got, f.written);
    ck_assert_uint_eq(pr.bad, 0);
    ck_assert_int_eq(f.lost_err, 0);
    peer_fini(&pr);
    close(sv[1]);
    return 0;
}

START_TEST(test_pause_writing_above_high_water_and_resume_writing_at_low_water)
{
    ck_assert_int_eq(cio_run(flow_fn, NULL, false, NULL), 0);
}
END_TEST

static void check_limits(cio_transport_t *t, size_t low, size_t high)
{
    size_t l = 0, h = 0;
    cio_transport_get_write_buffer_limits(t, &l, &h);
    ck_assert_uint_eq(l, low);
    ck_assert_uint_eq(h, high);
}

static int limits_fn(void *arg, void **result)
{
    int sv[2];
    unix_pair(sv);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t = wrap(sv[0], &r.base);
    check_limits(t, 16 * 1024, 64 * 1024);
    ck_assert_int_eq(cio_transport_set_write_buffer_limits(t, -1, 1000), 0);
    check_limits(t, 1000, 4000);
    ck_assert_int_eq(cio_transport_set_write_buffer_limits(t, 8000, -1), 0);
    check_limits(t, 2000, 8000);
    ck_assert_int_eq(cio_transport_set_write_buffer_limits(t, 100, 200), -EINVAL);
    check_limits(t, 2000, 8000);
    ck_assert_int_eq(cio_transport_set_write_buffer_limits(t, 300, 300), 0);
    check_limits(t, 300, 300);
    ck_assert_int_eq(cio_transport_set_write_buffer_limits(t, -1, -1), 0);
    check_limits(t, 16 * 1024, 64 * 1024);
    ck_assert_int_eq(r.pauses, 0);
    cio_transport_close(t);
    WAIT_UNTIL(r.lost == 1);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_write_buffer_limits_follow_asyncio_rules)
{
    ck_assert_int_eq(cio_run(limits_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- write_eof and half-close -------------------------------------------- */

#define BIG (2 * MIB)

static int write_eof_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, SMALL_BUF);
    rec_t r;
    rec_init(&r);
    r.keep = true;
    cio_transport_t *t = wrap(sv[0], &r.base);
    uint8_t *big = malloc(BIG);
    ck_assert_ptr_nonnull(big);
    fill_pattern(big, 0, BIG);
    ck_assert_int_eq(cio_transport_write(t, big, BIG), 0);
    free(big);
    ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
    ck_assert_int_eq(cio_transport_write_eof(t), 0);
    ck_assert(!cio_transport_is_closing(t));
    /* The peer gets every byte, then EOF. */
    peer_t pr;
    peer_start(&pr, sv[1], false);
    WAIT_UNTIL(pr.eof || pr.err);
    ck_assert_int_eq(pr.err, 0);
    ck_assert_uint_eq(pr.got, BIG);
    ck_assert_uint_eq(pr.bad, 0);
    /* Half-close: the transport still hears the peer. */
    send_str(sv[1], "still here");
    WAIT_UNTIL(r.nrx == 10);
    ck_assert_str_eq((char *)r.rx, "still here");
    ck_assert_int_eq(r.lost, 0);
    shutdown(sv[1], SHUT_WR);
    WAIT_UNTIL(r.lost == 1);
    ck_assert_int_eq(r.eofs, 1);
    ck_assert_int_eq(r.lost_err, 0);
    peer_fini(&pr);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_write_eof_sends_fin_after_the_buffer_drains_and_reading_goes_on)
{
    ck_assert_int_eq(cio_run(write_eof_fn, NULL, false, NULL), 0);
}
END_TEST

static int can_write_eof_fn(void *arg, void **result)
{
    int tv[2], uv[2];
    tcp_pair(tv, 0);
    unix_pair(uv);
    rec_t rt, ru;
    rec_init(&rt);
    rec_init(&ru);
    cio_transport_t *tt = wrap(tv[0], &rt.base);
    cio_transport_t *tu = wrap(uv[0], &ru.base);
    ck_assert(cio_transport_can_write_eof(tt));
    ck_assert(cio_transport_can_write_eof(tu));
    cio_transport_close(tt);
    cio_transport_close(tu);
    WAIT_UNTIL(rt.lost == 1 && ru.lost == 1);
    close(tv[1]);
    close(uv[1]);
    rec_fini(&rt);
    rec_fini(&ru);
    return 0;
}

START_TEST(test_can_write_eof_is_true_for_tcp_and_unix)
{
    ck_assert_int_eq(cio_run(can_write_eof_fn, NULL, false, NULL), 0);
}
END_TEST

static int epipe_fn(void *arg, void **result)
{
    int a[2], b[2];
    unix_pair(a);
    unix_pair(b);
    rec_t ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    cio_transport_t *ta = wrap(a[0], &ra.base);
    cio_transport_t *tb = wrap(b[0], &rb.base);
    struct iovec iov = {.iov_base = (void *)"x", .iov_len = 1};

    ck_assert_int_eq(cio_transport_write(ta, "before", 6), 0);
    ck_assert_int_eq(cio_transport_write_eof(ta), 0);
    ck_assert_int_eq(cio_transport_write(ta, "after", 5), -EPIPE);
    ck_assert_int_eq(cio_transport_writelines(ta, &iov, 1), -EPIPE);

    cio_transport_close(tb);
    ck_assert_int_eq(cio_transport_write(tb, "after", 5), -EPIPE);
    ck_assert_int_eq(cio_transport_writelines(tb, &iov, 1), -EPIPE);
    ck_assert_int_eq(cio_transport_write_eof(tb), -EPIPE);

    /* Only what came before write_eof reached the peer. */
    char buf[16] = {0};
    struct timeval tv = {.tv_sec = 3};
    setsockopt(a[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(recv(a[1], buf, sizeof(buf), MSG_WAITALL), 6);
    ck_assert_str_eq(buf, "before");

    cio_transport_close(ta);
    WAIT_UNTIL(ra.lost == 1 && rb.lost == 1);
    close(a[1]);
    close(b[1]);
    rec_fini(&ra);
    rec_fini(&rb);
    return 0;
}

START_TEST(test_write_after_write_eof_or_close_fails_with_epipe)
{
    ck_assert_int_eq(cio_run(epipe_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- eof_received -------------------------------------------------------- */

static int eof_keep_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, 0);
    rec_t r;
    rec_init(&r);
    r.eof_ret = 1;
    r.eof_reply = "pong";
    cio_transport_t *t = wrap(sv[0], &r.base);
    send_str(sv[1], "ping");
    shutdown(sv[1], SHUT_WR);
    WAIT_UNTIL(r.eofs == 1);
    spin(10);
    ck_assert_int_eq(r.lost, 0);
    ck_assert(!cio_transport_is_closing(t));
    ck_assert_int_eq(r.eof_reply_rc, 0);
    /* The reply sent after the peer's shutdown arrives, and more can follow. */
    ck_assert_int_eq(cio_transport_write(t, "!", 1), 0);
    peer_t pr;
    peer_start(&pr, sv[1], true);
    WAIT_UNTIL(pr.got == 5);
    ck_assert_str_eq((char *)pr.rx, "pong!");
    ck_assert(!pr.eof);
    cio_transport_close(t);
    WAIT_UNTIL(pr.eof && r.lost == 1);
    ck_assert_int_eq(r.lost_err, 0);
    ck_assert_int_eq(r.eofs, 1);
    peer_fini(&pr);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_eof_received_returning_true_keeps_the_write_side_open)
{
    ck_assert_int_eq(cio_run(eof_keep_fn, NULL, false, NULL), 0);
}
END_TEST

static int eof_close_fn(void *arg, void **result)
{
    /* Variant 0: eof_received returns 0; variant 1: no eof_received at all. */
    for (int variant = 0; variant < 2; variant++) {
        int sv[2];
        tcp_pair(sv, 0);
        rec_t r;
        rec_init(&r);
        if (variant == 1)
            r.base.ops = &rec_ops_no_eof;
        wrap(sv[0], &r.base);
        send_str(sv[1], "ping");
        shutdown(sv[1], SHUT_WR);
        WAIT_UNTIL(r.lost == 1);
        ck_assert_int_eq(r.lost_err, 0);
        ck_assert_uint_eq(r.nrx, 4);
        ck_assert_int_eq(r.eofs, variant == 0 ? 1 : 0);
        /* The transport closed its side: the peer reads EOF. */
        peer_t pr;
        peer_start(&pr, sv[1], false);
        WAIT_UNTIL(pr.eof || pr.err);
        ck_assert_int_eq(pr.err, 0);
        ck_assert_uint_eq(pr.got, 0);
        spin(5);
        ck_assert_int_eq(r.lost, 1);
        peer_fini(&pr);
        close(sv[1]);
        rec_fini(&r);
    }
    return 0;
}

START_TEST(test_eof_received_returning_false_or_missing_closes_the_transport)
{
    ck_assert_int_eq(cio_run(eof_close_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- pausing reads ------------------------------------------------------- */

static int pause_reading_fn(void *arg, void **result)
{
    int sv[2];
    unix_pair(sv);
    rec_t r;
    rec_init(&r);
    r.keep = true;
    cio_transport_t *t = wrap(sv[0], &r.base);
    ck_assert(cio_transport_is_reading(t));
    cio_transport_pause_reading(t);
    ck_assert(!cio_transport_is_reading(t));
    cio_transport_pause_reading(t);
    ck_assert(!cio_transport_is_reading(t));
    send_str(sv[1], "data");
    WAIT_UNTIL(readable_now(sv[0]));
    spin(20);
    ck_assert_int_eq(r.datas, 0);
    cio_transport_resume_reading(t);
    ck_assert(cio_transport_is_reading(t));
    cio_transport_resume_reading(t);
    ck_assert(cio_transport_is_reading(t));
    WAIT_UNTIL(r.nrx == 4);
    ck_assert_str_eq((char *)r.rx, "data");
    /* Paused again, then resumed: nothing is lost or repeated. */
    cio_transport_pause_reading(t);
    send_str(sv[1], "more");
    WAIT_UNTIL(readable_now(sv[0]));
    spin(10);
    ck_assert_uint_eq(r.nrx, 4);
    cio_transport_resume_reading(t);
    WAIT_UNTIL(r.nrx == 8);
    ck_assert_str_eq((char *)r.rx, "datamore");
    cio_transport_close(t);
    ck_assert(!cio_transport_is_reading(t));
    WAIT_UNTIL(r.lost == 1);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_pause_and_resume_reading_are_idempotent_and_hold_back_data)
{
    ck_assert_int_eq(cio_run(pause_reading_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- close and abort ----------------------------------------------------- */

/* Inside a task: a transport over a small-buffer TCP pair with BIG bytes written. */
static cio_transport_t *loaded_transport(int sv[2], rec_t *r)
{
    tcp_pair(sv, SMALL_BUF);
    rec_init(r);
    cio_transport_t *t = wrap(sv[0], &r->base);
    uint8_t *big = malloc(BIG);
    ck_assert_ptr_nonnull(big);
    fill_pattern(big, 0, BIG);
    ck_assert_int_eq(cio_transport_write(t, big, BIG), 0);
    free(big);
    ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
    return t;
}

static int close_flushes_fn(void *arg, void **result)
{
    int sv[2];
    rec_t r;
    cio_transport_t *t = loaded_transport(sv, &r);
    cio_transport_close(t);
    ck_assert(cio_transport_is_closing(t));
    /* The peer does not read yet: the data cannot go, so neither can the transport. */
    for (int i = 0; i < 20; i++)
        cio_sleep(0.001);
    ck_assert_int_eq(r.lost, 0);
    peer_t pr;
    peer_start(&pr, sv[1], false);
    WAIT_UNTIL(pr.eof || pr.err);
    ck_assert_int_eq(pr.err, 0);
    ck_assert_uint_eq(pr.got, BIG);
    ck_assert_uint_eq(pr.bad, 0);
    WAIT_UNTIL(r.lost == 1);
    spin(5);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_err, 0);
    peer_fini(&pr);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_close_flushes_the_buffer_before_connection_lost)
{
    ck_assert_int_eq(cio_run(close_flushes_fn, NULL, false, NULL), 0);
}
END_TEST

static int abort_fn(void *arg, void **result)
{
    int sv[2];
    rec_t r;
    cio_transport_t *t = loaded_transport(sv, &r);
    size_t buffered = cio_transport_get_write_buffer_size(t);
    cio_transport_abort(t);
    ck_assert(cio_transport_is_closing(t));
    ck_assert_int_eq(r.lost, 0); /* scheduled, not called inside abort() */
    peer_t pr;
    peer_start(&pr, sv[1], false);
    WAIT_UNTIL(pr.eof || pr.err);
    /* What the kernel had arrives; the buffered rest is dropped. */
    ck_assert_uint_eq(pr.got, BIG - buffered);
    ck_assert_uint_eq(pr.bad, 0);
    WAIT_UNTIL(r.lost == 1);
    spin(5);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_err, 0);
    peer_fini(&pr);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_abort_drops_the_buffer_and_reports_a_clean_loss)
{
    ck_assert_int_eq(cio_run(abort_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- resets -------------------------------------------------------------- */

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
    sigpipes++;
}

/* Reset the connection from the peer's side: RST instead of FIN. */
static void reset_peer(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

/*
 * Mode 0: the peer resets while the transport has data waiting (reading
 * paused, so only the write side can notice). Mode 1: the same after the peer
 * half-closed (the transport kept its write side open), where a send fails
 * with EPIPE, the error that raises SIGPIPE. Modes 2 and 3: as 1 with an
 * empty buffer, so the reset meets a write() or writelines() that sends at once.
 */
static int reset_fn(void *arg, void **result)
{
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    for (int mode = 0; mode < 4; mode++) {
        int sv[2];
        tcp_pair(sv, SMALL_BUF);
        rec_t r;
        rec_init(&r);
        r.eof_ret = 1;
        cio_transport_t *t = wrap(sv[0], &r.base);
        if (mode > 0) {
            shutdown(sv[1], SHUT_WR);
            WAIT_UNTIL(r.eofs == 1);
        }
        cio_transport_pause_reading(t);
        if (mode < 2) {
            uint8_t *big = calloc(1, BIG);
            ck_assert_ptr_nonnull(big);
            ck_assert_int_eq(cio_transport_write(t, big, BIG), 0);
            free(big);
            ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
        }
        reset_peer(sv[1]);
        if (mode >= 2) {
            struct pollfd pfd = {.fd = sv[0], .events = POLLOUT};
            WAIT_UNTIL(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)));
            struct iovec iov[] = {{.iov_base = (void *)"la", .iov_len = 2},
                                  {.iov_base = (void *)"te", .iov_len = 2}};
            if (mode == 2)
                cio_transport_write(t, "late", 4);
            else
                cio_transport_writelines(t, iov, 2);
        }
        WAIT_UNTIL(r.lost == 1);
        spin(5);
        ck_assert_int_eq(r.lost, 1);
        ck_assert_msg(r.lost_err == -ECONNRESET || r.lost_err == -EPIPE,
                      "mode %d: connection_lost(%s)", mode, cio_err_name(r.lost_err));
        ck_assert_msg(sigpipes == 0, "mode %d: SIGPIPE", mode);
        rec_fini(&r);
    }
    /* A reset peer is ordinary: asyncio does not call the exception handler. */
    ck_assert_int_eq(e.calls, 0);
    cio_loop_set_exception_handler(cio_get_running_loop(), NULL, NULL);
    return 0;
}

START_TEST(test_peer_reset_mid_write_reports_econnreset_without_sigpipe)
{
    struct sigaction sa = {.sa_handler = on_sigpipe}, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGPIPE, &sa, &old), 0);
    sigpipes = 0;
    ck_assert_int_eq(cio_run(reset_fn, NULL, false, NULL), 0);
    ck_assert_int_eq(sigpipes, 0);
    sigaction(SIGPIPE, &old, NULL);
}
END_TEST

/* ---- connection_lost is the last call ------------------------------------ */

static int lost_last_fn(void *arg, void **result)
{
    /* Mode 0: abort() inside data_received; mode 1: close() with a full buffer. */
    for (int mode = 0; mode < 2; mode++) {
        int sv[2];
        rec_t r;
        cio_transport_t *t = loaded_transport(sv, &r);
        WAIT_UNTIL(r.pauses == 1);
        r.abort_on_data = mode == 0;
        if (mode == 1)
            cio_transport_close(t);
        /* The peer sends a stream and EOF, and drains what comes its way. */
        writer_t w;
        writer_start(&w, dup(sv[1]), 512 * 1024, true);
        peer_t pr;
        peer_start(&pr, sv[1], false);
        WAIT_UNTIL(r.lost == 1);
        WAIT_UNTIL(pr.eof || pr.err);
        pthread_join(w.th, NULL);
        close(w.fd);
        for (int i = 0; i < 20; i++)
            cio_sleep(0.001);
        ck_assert_int_eq(r.lost, 1);
        ck_assert_int_eq(r.lost_err, 0);
        ck_assert_int_eq(r.after_lost, 0);
        ck_assert_int_eq(r.order.v[0], EV_MADE);
        ck_assert_int_eq(r.order.v[r.order.n - 1], EV_LOST);
        if (mode == 0)
            ck_assert_int_eq(r.datas, 1);
        peer_fini(&pr);
        close(sv[1]);
        rec_fini(&r);
    }
    return 0;
}

START_TEST(test_no_protocol_callback_follows_connection_lost)
{
    ck_assert_int_eq(cio_run(lost_last_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- a failing callback -------------------------------------------------- */

static int failing_cb_fn(void *arg, void **result)
{
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    int sv[2];
    unix_pair(sv);
    rec_t r;
    rec_init(&r);
    r.data_ret = -EPROTO;
    cio_transport_t *t = wrap(sv[0], &r.base);
    send_str(sv[1], "garbage");
    WAIT_UNTIL(r.lost == 1);
    ck_assert_int_eq(r.lost_err, -EPROTO);
    ck_assert_int_eq(r.datas, 1);
    ck_assert_int_eq(e.calls, 1);
    ck_assert_int_eq(e.error, -EPROTO);
    ck_assert_ptr_eq(e.transport, t);
    ck_assert_ptr_eq(e.protocol, &r.base);
    ck_assert_str_ne(e.message, "");
    spin(5);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.after_lost, 0);
    close(sv[1]);
    rec_fini(&r);
    cio_loop_set_exception_handler(cio_get_running_loop(), NULL, NULL);
    return 0;
}

START_TEST(test_a_failing_callback_reaches_the_exception_handler_and_closes)
{
    ck_assert_int_eq(cio_run(failing_cb_fn, NULL, false, NULL), 0);
}
END_TEST

static int made_fails_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    exc_t e = {0};
    cio_loop_set_exception_handler(loop, exc_handler, &e);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    rec_t r;
    rec_init(&r);
    r.made_ret = -EPROTO;
    cio_future_t *f = cio_loop_create_connection(loop, static_factory, &r, "127.0.0.1", port, NULL);
    ck_assert_ptr_nonnull(f);
    WAIT_UNTIL(r.lost == 1);
    ck_assert_int_eq(r.lost_err, -EPROTO);
    /* The transport was closed with the error: there is no transport to hand out. */
    WAIT_UNTIL(cio_future_done(f));
    void *res = NULL;
    int rc = cio_future_result(f, &res);
    ck_assert_msg(rc == -EPROTO, "create_connection gave %s, result %p", cio_err_name(rc), res);
    ck_assert_int_eq(e.calls, 1);
    ck_assert_int_eq(e.error, -EPROTO);
    cio_future_unref(f);
    close(l);
    rec_fini(&r);
    cio_loop_set_exception_handler(loop, NULL, NULL);
    return 0;
}

START_TEST(test_connection_made_failing_fails_create_connection)
{
    ck_assert_int_eq(cio_run(made_fails_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- BufferedProtocol ---------------------------------------------------- */

typedef struct bufp {
    cio_protocol_t base;
    cio_transport_t *t;
    uint8_t buf[1000];
    bool empty;       /* get_buffer hands out an empty buffer */
    bool outstanding; /* get_buffer called, buffer_updated not yet */
    int gets, updates, datas, lost, lost_err, misuse;
    size_t nrx, bad;
} bufp_t;

static int bufp_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((bufp_t *)p)->t = t;
    return 0;
}

static void *bufp_get(cio_protocol_t *p, size_t sizehint, size_t *len)
{
    bufp_t *b = (bufp_t *)p;
    b->gets++;
    b->outstanding = true;
    *len = b->empty ? 0 : sizeof(b->buf);
    return b->buf;
}

static int bufp_updated(cio_protocol_t *p, size_t n)
{
    bufp_t *b = (bufp_t *)p;
    b->updates++;
    if (!b->outstanding || n == 0 || n > sizeof(b->buf))
        b->misuse++;
    b->outstanding = false;
    for (size_t k = 0; k < n && k < sizeof(b->buf); k++)
        b->bad += b->buf[k] != pattern_at(b->nrx + k);
    b->nrx += n;
    return 0;
}

static int bufp_data(cio_protocol_t *p, const void *data, size_t len)
{
    ((bufp_t *)p)->datas++;
    return 0;
}

static void bufp_lost(cio_protocol_t *p, int err)
{
    bufp_t *b = (bufp_t *)p;
    b->lost++;
    b->lost_err = err;
}

static const cio_protocol_ops_t bufp_ops = {
    .connection_made = bufp_made,
    .connection_lost = bufp_lost,
    .data_received = bufp_data,
    .get_buffer = bufp_get,
    .buffer_updated = bufp_updated,
};

static int buffered_fn(void *arg, void **result)
{
    int sv[2];
    unix_pair(sv);
    bufp_t b = {.base = {&bufp_ops}};
    writer_t w;
    writer_start(&w, sv[1], 100 * 1000 + 7, true);
    wrap(sv[0], &b.base);
    WAIT_UNTIL(b.lost == 1);
    pthread_join(w.th, NULL);
    ck_assert_uint_eq(b.nrx, 100 * 1000 + 7);
    ck_assert_uint_eq(b.bad, 0);
    ck_assert_int_eq(b.misuse, 0);
    ck_assert_int_ge(b.updates, 101); /* at most 1000 bytes per buffer */
    ck_assert_int_ge(b.gets, b.updates);
    ck_assert_int_eq(b.datas, 0);
    ck_assert_int_eq(b.lost_err, 0);
    close(sv[1]);
    return 0;
}

START_TEST(test_buffered_protocol_reads_into_its_own_buffer)
{
    ck_assert_int_eq(cio_run(buffered_fn, NULL, false, NULL), 0);
}
END_TEST

static int empty_buffer_fn(void *arg, void **result)
{
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    int sv[2];
    unix_pair(sv);
    bufp_t b = {.base = {&bufp_ops}, .empty = true};
    cio_transport_t *t = wrap(sv[0], &b.base);
    send_str(sv[1], "abc");
    WAIT_UNTIL(b.lost == 1);
    ck_assert_int_lt(b.lost_err, 0);
    ck_assert_int_ge(b.gets, 1);
    ck_assert_int_eq(b.updates, 0);
    ck_assert_int_eq(b.datas, 0);
    ck_assert_int_eq(e.calls, 1);
    ck_assert_ptr_eq(e.transport, t);
    ck_assert_ptr_eq(e.protocol, &b.base);
    ck_assert_int_lt(e.error, 0);
    /* The transport is gone: the peer reads EOF (a reset, as "abc" was left unread). */
    char c;
    struct timeval tv = {.tv_sec = 3};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(sv[1], &c, 1, 0);
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "recv: %zd (%s)", n,
                  n < 0 ? strerror(errno) : "data");
    close(sv[1]);
    cio_loop_set_exception_handler(cio_get_running_loop(), NULL, NULL);
    return 0;
}

START_TEST(test_an_empty_buffer_from_get_buffer_is_a_fatal_error)
{
    ck_assert_int_eq(cio_run(empty_buffer_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- extra info, set_protocol, writelines -------------------------------- */

static void check_same_in(const cio_extra_info_t *info, const struct sockaddr_in *want)
{
    const struct sockaddr_in *got = (const struct sockaddr_in *)&info->addr;
    ck_assert_uint_eq(info->addrlen, sizeof(struct sockaddr_in));
    ck_assert_int_eq(got->sin_family, AF_INET);
    ck_assert_uint_eq(got->sin_port, want->sin_port);
    ck_assert_uint_eq(got->sin_addr.s_addr, want->sin_addr.s_addr);
}

static int extra_info_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, 0);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t = wrap(sv[0], &r.base);
    struct sockaddr_in peer_name, peer_sock;
    socklen_t l1 = sizeof(peer_name), l2 = sizeof(peer_sock);
    ck_assert_int_eq(getpeername(sv[1], (struct sockaddr *)&peer_name, &l1), 0);
    ck_assert_int_eq(getsockname(sv[1], (struct sockaddr *)&peer_sock, &l2), 0);
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peername", &info), 0);
    check_same_in(&info, &peer_sock);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "sockname", &info), 0);
    check_same_in(&info, &peer_name);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "socket", &info), 0);
    ck_assert_int_eq(info.fd, sv[0]);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "no such thing", &info), -ENOENT);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peercert", &info), -ENOENT);
    ck_assert_ptr_eq(cio_transport_get_loop(t), cio_get_running_loop());
    cio_transport_close(t);
    WAIT_UNTIL(r.lost == 1);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_extra_info_gives_the_addresses_and_the_socket)
{
    ck_assert_int_eq(cio_run(extra_info_fn, NULL, false, NULL), 0);
}
END_TEST

static int set_protocol_fn(void *arg, void **result)
{
    int sv[2];
    unix_pair(sv);
    rec_t a, b;
    rec_init(&a);
    rec_init(&b);
    a.keep = b.keep = true;
    cio_transport_t *t = wrap(sv[0], &a.base);
    ck_assert_ptr_eq(cio_transport_get_protocol(t), &a.base);
    send_str(sv[1], "one");
    WAIT_UNTIL(a.nrx == 3);
    cio_transport_set_protocol(t, &b.base);
    ck_assert_ptr_eq(cio_transport_get_protocol(t), &b.base);
    send_str(sv[1], "two");
    WAIT_UNTIL(b.nrx == 3);
    ck_assert_str_eq((char *)a.rx, "one");
    ck_assert_str_eq((char *)b.rx, "two");
    ck_assert_uint_eq(a.nrx, 3);
    /* The new protocol also hears the end. */
    shutdown(sv[1], SHUT_WR);
    WAIT_UNTIL(b.lost == 1);
    ck_assert_int_eq(b.eofs, 1);
    ck_assert_int_eq(a.eofs, 0);
    ck_assert_int_eq(a.lost, 0);
    close(sv[1]);
    rec_fini(&a);
    rec_fini(&b);
    return 0;
}

START_TEST(test_set_protocol_switches_the_protocol_receiving_data)
{
    ck_assert_int_eq(cio_run(set_protocol_fn, NULL, false, NULL), 0);
}
END_TEST

static int writelines_fn(void *arg, void **result)
{
    int sv[2];
    tcp_pair(sv, SMALL_BUF);
    rec_t r;
    rec_init(&r);
    cio_transport_t *t = wrap(sv[0], &r.base);
    size_t big_len = 512 * 1024;
    char *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    struct iovec iov[] = {
        {.iov_base = (void *)"alpha,", .iov_len = 6},
        {.iov_base = (void *)"", .iov_len = 0},
        {.iov_base = big, .iov_len = big_len},
        {.iov_base = (void *)",omega", .iov_len = 6},
    };
    ck_assert_int_eq(cio_transport_writelines(t, iov, 4), 0);
    /* Part of it waits in the buffer; what follows goes after it. */
    ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
    struct iovec tail[] = {{.iov_base = (void *)",x", .iov_len = 2},
                           {.iov_base = (void *)",y", .iov_len = 2}};
    ck_assert_int_eq(cio_transport_writelines(t, tail, 2), 0);
    cio_transport_close(t);
    peer_t pr;
    peer_start(&pr, sv[1], true);
    WAIT_UNTIL(pr.eof || pr.err);
    size_t want_len = 6 + big_len + 6 + 4;
    ck_assert_uint_eq(pr.got, want_len);
    ck_assert_mem_eq(pr.rx, "alpha,", 6);
    ck_assert_mem_eq(pr.rx + 6, big, big_len);
    ck_assert_mem_eq(pr.rx + 6 + big_len, ",omega,x,y", 10);
    WAIT_UNTIL(r.lost == 1);
    free(big);
    peer_fini(&pr);
    close(sv[1]);
    rec_fini(&r);
    return 0;
}

START_TEST(test_writelines_sends_the_buffers_in_order)
{
    ck_assert_int_eq(cio_run(writelines_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- a thousand connections ---------------------------------------------- */

#define NCONN   1000
static int thousand_fn(void *arg, void **result)
{
    many_echo(NCONN, NULL, NULL);
    return 0;
}

START_TEST(test_a_thousand_concurrent_connections_echo_on_one_loop)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2100) {
        fprintf(stderr, "skipped: RLIMIT_NOFILE hard limit %lu is below 2100\n",
                (unsigned long)rl.rlim_max);
        return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2100) {
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_int_eq(cio_run(thousand_fn, NULL, false, NULL), 0);
}
END_TEST

/* A loop closed with transports open: each protocol hears the end, last, once. */
START_TEST(test_closing_the_loop_delivers_connection_lost_to_open_transports)
{
    cio_loop_t *loop = cio_loop_new();
    rec_t open_one, closing_one;
    rec_init(&open_one);
    rec_init(&closing_one);
    int a[2], b[2];
    tcp_pair(a, 0);
    tcp_pair(b, 0);
    cio_future_t *f1 = cio_loop_connect_accepted_socket(loop, static_factory, &open_one, a[0], NULL);
    cio_future_t *f2 = cio_loop_connect_accepted_socket(loop, static_factory, &closing_one, b[0], NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f1, NULL), 0);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f2, NULL), 0);
    cio_future_unref(f1);
    cio_future_unref(f2);
    /* One is closed but its connection_lost has not run yet when the loop closes. */
    cio_transport_close(closing_one.t);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    ck_assert_int_eq(open_one.lost, 1);
    ck_assert_msg(open_one.lost_err == CIO_ECLOSED, "%s", cio_err_name(open_one.lost_err));
    ck_assert_int_eq(closing_one.lost, 1);
    ck_assert_int_eq(closing_one.lost_err, 0);
    ck_assert_int_eq(open_one.after_lost + closing_one.after_lost, 0);
    /* The sockets were closed: the peers see the end. */
    char c;
    ck_assert_int_eq(recv(a[1], &c, 1, 0), 0);
    ck_assert_int_eq(recv(b[1], &c, 1, 0), 0);
    close(a[1]);
    close(b[1]);
    rec_fini(&open_one);
    rec_fini(&closing_one);
}
END_TEST

/*
 * A socket given to connect_accepted_socket, or to create_connection with
 * use_sock, belongs to the loop once the call returned a future: cancelled
 * before the task ran, or with the loop closed first, it is closed (the peer
 * sees the end), never leaked.
 */
START_TEST(test_a_given_socket_is_closed_when_its_connection_never_starts)
{
    cio_loop_t *loop = cio_loop_new();
    rec_t r;
    rec_init(&r);
    int a[2], b[2], c[2];
    tcp_pair(a, 0);
    tcp_pair(b, 0);
    tcp_pair(c, 0);
    cio_future_t *f1 = cio_loop_connect_accepted_socket(loop, static_factory, &r, a[0], NULL);
    cio_connection_opts_t o = {.use_sock = true, .sock = b[0]};
    cio_future_t *f2 = cio_loop_create_connection(loop, static_factory, &r, NULL, NULL, &o);
    ck_assert_ptr_nonnull(f1);
    ck_assert_ptr_nonnull(f2);
    ck_assert(cio_future_cancel(f1, NULL));
    ck_assert(cio_future_cancel(f2, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f1, NULL), -ECANCELED);
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f2, NULL), -ECANCELED);
    cio_future_unref(f1);
    cio_future_unref(f2);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    /* A loop closed before it ever ran the task. */
    loop = cio_loop_new();
    cio_future_t *f3 = cio_loop_connect_accepted_socket(loop, static_factory, &r, c[0], NULL);
    ck_assert_ptr_nonnull(f3);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    cio_future_unref(f3);
    ck_assert_int_eq(r.made, 0);
    struct pollfd p[3] = {{a[1], POLLIN, 0}, {b[1], POLLIN, 0}, {c[1], POLLIN, 0}};
    for (int i = 0; i < 3; i++) {
        char ch;
        ck_assert_int_eq(poll(&p[i], 1, 5000), 1);
        ck_assert_int_eq(recv(p[i].fd, &ch, 1, 0), 0);
    }
    ck_assert_int_eq(fcntl(a[0], F_GETFD), -1);
    ck_assert_int_eq(fcntl(b[0], F_GETFD), -1);
    ck_assert_int_eq(fcntl(c[0], F_GETFD), -1);
    close(a[1]);
    close(b[1]);
    close(c[1]);
    rec_fini(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = cio_test_case("stream");
    CIO_TEST(tc, test_tcp_nodelay_is_set_on_accepted_and_connected_transports);
    CIO_TEST(tc, test_connection_made_is_scheduled_and_comes_before_any_data);
    CIO_TEST(tc, test_a_mebibyte_from_the_peer_arrives_complete_and_in_order);
    CIO_TEST(tc, test_write_sends_at_once_when_the_buffer_is_empty);
    CIO_TEST(tc, test_pause_writing_above_high_water_and_resume_writing_at_low_water);
    CIO_TEST(tc, test_write_buffer_limits_follow_asyncio_rules);
    CIO_TEST(tc, test_write_eof_sends_fin_after_the_buffer_drains_and_reading_goes_on);
    CIO_TEST(tc, test_can_write_eof_is_true_for_tcp_and_unix);
    CIO_TEST(tc, test_write_after_write_eof_or_close_fails_with_epipe);
    CIO_TEST(tc, test_eof_received_returning_true_keeps_the_write_side_open);
    CIO_TEST(tc, test_eof_received_returning_false_or_missing_closes_the_transport);
    CIO_TEST(tc, test_pause_and_resume_reading_are_idempotent_and_hold_back_data);
    CIO_TEST(tc, test_close_flushes_the_buffer_before_connection_lost);
    CIO_TEST(tc, test_abort_drops_the_buffer_and_reports_a_clean_loss);
    CIO_TEST(tc, test_peer_reset_mid_write_reports_econnreset_without_sigpipe);
    CIO_TEST(tc, test_no_protocol_callback_follows_connection_lost);
    CIO_TEST(tc, test_a_failing_callback_reaches_the_exception_handler_and_closes);
    CIO_TEST(tc, test_connection_made_failing_fails_create_connection);
    CIO_TEST(tc, test_buffered_protocol_reads_into_its_own_buffer);
    CIO_TEST(tc, test_an_empty_buffer_from_get_buffer_is_a_fatal_error);
    CIO_TEST(tc, test_extra_info_gives_the_addresses_and_the_socket);
    CIO_TEST(tc, test_set_protocol_switches_the_protocol_receiving_data);
    CIO_TEST(tc, test_writelines_sends_the_buffers_in_order);
    CIO_TEST(tc, test_a_thousand_concurrent_connections_echo_on_one_loop);
    CIO_TEST(tc, test_closing_the_loop_delivers_connection_lost_to_open_transports);
    CIO_TEST(tc, test_a_given_socket_is_closed_when_its_connection_never_starts);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
