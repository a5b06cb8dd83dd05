/*
 * tests/test_services.c: the built-in services (framework/builtin.h) as a
 * worker runs them: each test starts one service (its start and
 * listener_start, through a standalone context) on a loop in a server thread, on 127.0.0.1 port 0,
 * and talks to it from the test's thread with blocking sockets, asserting the bytes that come back.
 * echo and discard over TCP and UDP; http-hello's responses, keep-alive rules, pipelining, split
 * requests, bodies, errors, and curl as a real client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "testutil.h"

#define IO_TIMEOUT_MS 5000

/* ---- a service running on a loop in a server thread ---------------------- */

typedef struct fixture {
    const cio_service_t *svc;
    bool dgram;        /* a UDP endpoint instead of a TCP server */
    int small_buffers; /* > 0: SO_RCVBUF and SO_SNDBUF of accepted sockets */
    pthread_t thread;
    sem_t ready;
    cio_loop_t *loop;
    cio_service_ctx_t *ctx; /* the service's context, as a worker gives it */
    int port;
    int error; /* why the service did not start, 0 if it did */
} fixture_t;

/* The port of the bound socket @p fd. */
static int port_of_fd(int fd)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    return ntohs(a.sin_port);
}

/* The service started alone on a loop (framework/context.c, exported for tests). */
CIO_EXTERN int cio__service_standalone(const cio_service_t *svc, cio_loop_t *loop,
                                       cio_service_ctx_t **out);
CIO_EXTERN void cio__service_standalone_free(cio_service_ctx_t *ctx);

static cio_protocol_t *fixture_factory(void *arg)
{
    fixture_t *fx = arg;
    return fx->svc->factory(fx->ctx);
}

/* Open the service on @p loop; fills fx->port. Returns the server or transport. */
static void *open_service(fixture_t *fx)
{
    cio_future_t *f;
    if (fx->dgram) {
        cio_datagram_opts_t opts = {.local_host = "127.0.0.1", .local_port = "0"};
        f = cio_loop_create_datagram_endpoint(fx->loop, fixture_factory, fx, &opts);
    } else {
        f = cio_loop_create_server(fx->loop, fixture_factory, fx, "127.0.0.1", "0", NULL);
    }
    void *res = NULL;
    fx->error = f ? cio_loop_run_until_complete(fx->loop, f, &res) : -EINVAL;
    cio_future_unref(f);
    if (fx->error < 0)
        return NULL;
    int fd = -1;
    if (fx->dgram) {
        cio_extra_info_t info = {.fd = -1};
        fx->error = cio_transport_get_extra_info(res, "socket", &info);
        fd = info.fd;
    } else {
        fx->error = cio_server_sockets(res, &fd, 1) == 1 ? 0 : -ENOENT;
    }
    if (fx->error == 0 && fx->small_buffers > 0) {
        /* Accepted sockets inherit these, keeping the kernel's own buffering small. */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &fx->small_buffers, sizeof(int));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &fx->small_buffers, sizeof(int));
    }
    fx->port = fx->error == 0 ? port_of_fd(fd) : -1;
    return res;
}

/* Close the service: wait for its connections to go, then its worker state. */
static void close_service(fixture_t *fx, void *handle)
{
    if (fx->dgram) {
        cio_transport_close(handle);
        cio_test_chain_t chain = {.loop = fx->loop, .left = 3};
        cio_loop_call_soon(fx->loop, cio_test_chain_cb, &chain, NULL);
        cio_loop_run_forever(fx->loop);
    } else {
        cio_server_close(handle);
        cio_future_t *f = cio_server_wait_closed(handle);
        cio_loop_run_until_complete(fx->loop, f, NULL);
        cio_future_unref(f);
        cio_server_free(handle);
    }
    cio__service_standalone_free(fx->ctx);
}

static void *serve_thread(void *arg)
{
    fixture_t *fx = arg;
    void *handle = NULL;
    fx->loop = cio_loop_new();
    fx->error = fx->loop ? cio__service_standalone(fx->svc, fx->loop, &fx->ctx) : -ENOMEM;
    bool started = fx->error == 0;
    if (started)
        handle = open_service(fx);
    sem_post(&fx->ready);
    if (handle) {
        cio_loop_run_forever(fx->loop);
        close_service(fx, handle);
    } else if (started) {
        cio__service_standalone_free(fx->ctx);
    }
    cio_loop_free(fx->loop);
    return NULL;
}

/* Start @p svc in a server thread; returns once it listens on fx->port. */
static void start(fixture_t *fx, const cio_service_t *svc, bool dgram)
{
    fx->svc = svc;
    fx->dgram = dgram;
    ck_assert_int_eq(sem_init(&fx->ready, 0, 0), 0);
    ck_assert_int_eq(pthread_create(&fx->thread, NULL, serve_thread, fx), 0);
    sem_wait(&fx->ready);
    ck_assert_msg(fx->error == 0, "service did not start: %s", cio_err_name(fx->error));
    ck_assert_int_gt(fx->port, 0);
}

/* Stop the service (its clients must be closed first) and join its thread. */
static void stop(fixture_t *fx)
{
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(fx->loop, cio_test_stop_cb, fx->loop), 0);
    ck_assert_int_eq(pthread_join(fx->thread, NULL), 0);
    sem_destroy(&fx->ready);
}

/* ---- blocking clients ----------------------------------------------------- */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void set_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

/* A blocking socket of @p type connected to 127.0.0.1:@p port, with I/O timeouts. */
static int client(int type, int port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    set_timeout(fd, IO_TIMEOUT_MS);
    struct sockaddr_in a = loopback(port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "send failed: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Receive exactly @p len bytes; fails the test on EOF or timeout. */
static void recv_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        ck_assert_msg(n > 0, "recv: %s", n == 0 ? "EOF" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Whether the peer closes with nothing more to read (within the timeout). */
static bool closes_without_data(int fd)
{
    char ch;
    return recv(fd, &ch, 1, 0) == 0;
}

/* Whether nothing arrives on @p fd within @p ms. */
static bool silent_for(int fd, int ms)
{
    set_timeout(fd, ms);
    char ch;
    ssize_t n = recv(fd, &ch, 1, 0);
    bool silent = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    set_timeout(fd, IO_TIMEOUT_MS);
    return silent;
}

/* ---- echo ------------------------------------------------------------------- */

START_TEST(test_echo_and_discard_descriptors_serve_streams_and_datagrams)
{
    ck_assert_str_eq(cio__service_echo.name, "echo");
    ck_assert_uint_eq(cio__service_echo.kinds, CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM);
    ck_assert_str_eq(cio__service_discard.name, "discard");
    ck_assert_uint_eq(cio__service_discard.kinds, CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM);
    ck_assert_str_eq(cio__service_http_hello.name, "http-hello");
    ck_assert_uint_eq(cio__service_http_hello.kinds, CIO_SERVICE_STREAM);
    ck_assert_ptr_nonnull(cio__service_http_hello.listener_start);
    ck_assert_ptr_nonnull(cio__service_http_hello.listener_stop);
}
END_TEST

START_TEST(test_echo_stream_returns_every_byte_and_closes_after_eof)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_echo, false);
    int fd = client(SOCK_STREAM, fx.port);
    char buf[64] = {0};
    send_str(fd, "hello, echo");
    recv_exact(fd, buf, 11);
    ck_assert_str_eq(buf, "hello, echo");
    /* Bytes sent with the EOF still come back before the server closes. */
    send_str(fd, "last words");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    memset(buf, 0, sizeof(buf));
    recv_exact(fd, buf, 10);
    ck_assert_str_eq(buf, "last words");
    ck_assert(closes_without_data(fd));
    close(fd);
    stop(&fx);
}
END_TEST

#define BIG (1024 * 1024)

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 7 + i / 251) & 0xff);
}

typedef struct sender {
    int fd;
    _Atomic size_t sent;
    bool ok;
} sender_t;

static void *sender_thread(void *arg)
{
    sender_t *s = arg;
    static unsigned char buf[BIG];
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i);
    size_t off = 0;
    while (off < BIG) {
        size_t chunk = BIG - off < 16384 ? BIG - off : 16384;
        ssize_t n = send(s->fd, buf + off, chunk, MSG_NOSIGNAL);
        if (n <= 0 && errno != EAGAIN && errno != EINTR)
            return NULL;
        if (n > 0)
            off += (size_t)n;
        atomic_store(&s->sent, off);
    }
    s->ok = true;
    return NULL;
}

/* How far the sender got once it stopped making progress for 300 ms. */
static size_t sent_when_stalled(sender_t *s)
{
    size_t last = (size_t)-1;
    for (int quiet = 0, i = 0; quiet < 6 && i < 200; i++) {
        usleep(50 * 1000);
        size_t now = atomic_load(&s->sent);
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
    return last;
}

/*
 * A client that sends 1 MiB and does not read: the server stops reading once
 * its write buffer is over the high-water mark, so the sender stalls well
 * short of 1 MiB; once the client reads, every byte comes back in order.
 */
START_TEST(test_echo_stream_stops_reading_while_the_client_does_not_read)
{
    fixture_t fx = {.small_buffers = 32 * 1024};
    start(&fx, &cio__service_echo, false);
    sender_t s = {.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ck_assert_int_ge(s.fd, 0);
    int small = 32 * 1024;
    setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    set_timeout(s.fd, 10000);
    struct sockaddr_in a = loopback(fx.port);
    ck_assert_int_eq(connect(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, sender_thread, &s), 0);
    size_t stalled = sent_when_stalled(&s);
    ck_assert_msg(stalled < BIG / 2, "server buffered without bound: %zu bytes taken", stalled);
    ck_assert_uint_gt(stalled, 0);
    static unsigned char back[BIG];
    recv_exact(s.fd, back, BIG);
    size_t i = 0;
    while (i < BIG && back[i] == pattern(i))
        i++;
    ck_assert_msg(i == BIG, "byte %zu differs", i);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert(s.ok);
    shutdown(s.fd, SHUT_WR);
    ck_assert(closes_without_data(s.fd));
    close(s.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_echo_datagram_returns_each_datagram_to_its_sender)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_echo, true);
    int a = client(SOCK_DGRAM, fx.port), b = client(SOCK_DGRAM, fx.port);
    send_str(a, "from a 1");
    send_str(b, "from b");
    send_str(a, "from a 2");
    const char *want_a[] = {"from a 1", "from a 2"};
    char buf[64];
    for (int i = 0; i < 2; i++) {
        ssize_t n = recv(a, buf, sizeof(buf) - 1, 0);
        ck_assert_int_eq(n, (ssize_t)strlen(want_a[i]));
        buf[n] = '\0';
        ck_assert_str_eq(buf, want_a[i]);
    }
    ssize_t n = recv(b, buf, sizeof(buf) - 1, 0);
    ck_assert_int_eq(n, 6);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "from b");
    /* An empty datagram is a datagram too. */
    ck_assert_int_eq(send(b, "", 0, 0), 0);
    ck_assert_int_eq(recv(b, buf, sizeof(buf), 0), 0);
    ck_assert(silent_for(a, 100));
    close(a);
    close(b);
    stop(&fx);
}
END_TEST

/* ---- discard ---------------------------------------------------------------- */

START_TEST(test_discard_stream_sends_nothing_and_closes_on_eof)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_discard, false);
    int fd = client(SOCK_STREAM, fx.port);
    static char junk[200 * 1024];
    memset(junk, 'x', sizeof(junk));
    send_all(fd, junk, sizeof(junk));
    ck_assert(silent_for(fd, 100));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert(closes_without_data(fd));
    close(fd);
    stop(&fx);
}
END_TEST

START_TEST(test_discard_datagram_sends_nothing_back)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_discard, true);
    int fd = client(SOCK_DGRAM, fx.port);
    for (int i = 0; i < 10; i++)
        send_str(fd, "into the void");
    ck_assert(silent_for(fd, 300));
    close(fd);
    stop(&fx);
}
END_TEST

/* ---- an HTTP client ----------------------------------------------------------- */

typedef struct http_client {
    int fd;
    char buf[64 * 1024];
    size_t len;
} http_client_t;

typedef struct response {
    char head[4096]; /* status line and headers, NUL-terminated */
    int status;
    long content_length;
    char body[256];
    size_t body_len;
} response_t;

static void http_connect(http_client_t *c, int port)
{
    c->fd = client(SOCK_STREAM, port);
    c->len = 0;
}

/* Read more into the client's buffer; fails the test on EOF or timeout. */
static void http_fill(http_client_t *c)
{
    ck_assert_uint_lt(c->len, sizeof(c->buf));
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    ck_assert_msg(n > 0, "recv: %s", n == 0 ? "EOF" : strerror(errno));
    c->len += (size_t)n;
}

/* The value of header @p name in @p r (its first occurrence), or NULL. */
static const char *header(const response_t *r, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nlen) == 0 && p[2 + nlen] == ':') {
            const char *v = p + 3 + nlen, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)(e - v), v);
            return out;
        }
    }
    return NULL;
}

/* Read one response; @p head_request: it answers a HEAD, so it has no body. */
static void http_read(http_client_t *c, response_t *r, bool head_request)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        http_fill(c);
    size_t hlen = (size_t)(end + 4 - c->buf);
    ck_assert_uint_lt(hlen, sizeof(r->head));
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    ck_assert_int_eq(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    char v[64];
    ck_assert_ptr_nonnull(header(r, "Content-Length", v, sizeof(v)));
    r->content_length = atol(v);
    r->body_len = head_request ? 0 : (size_t)r->content_length;
    ck_assert_uint_lt(r->body_len, sizeof(r->body));
    while (c->len < hlen + r->body_len)
        http_fill(c);
    memcpy(r->body, c->buf + hlen, r->body_len);
    r->body[r->body_len] = '\0';
    c->len -= hlen + r->body_len;
    memmove(c->buf, c->buf + hlen + r->body_len, c->len);
}

/* Whether header @p name of @p r has the value @p want. */
static bool header_is(const response_t *r, const char *name, const char *want)
{
    char v[128];
    return header(r, name, v, sizeof(v)) && strcmp(v, want) == 0;
}

/* A 200 with the hello body (or none, for HEAD) and the fixed headers. */
static void assert_hello(const response_t *r, bool head_request)
{
    ck_assert_msg(strncmp(r->head, "HTTP/1.1 200 OK\r\n", 17) == 0, "status line: %s", r->head);
    ck_assert_int_eq(r->content_length, 14);
    ck_assert(header_is(r, "Content-Type", "text/plain"));
    ck_assert(header_is(r, "Server", "coreio"));
    ck_assert_str_eq(r->body, head_request ? "" : "Hello, World!\n");
}

/* After the last response: nothing more, and the server closes. */
static void assert_closed(http_client_t *c)
{
    ck_assert_uint_eq(c->len, 0);
    ck_assert(closes_without_data(c->fd));
}

#define GET_REQ "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

/* ---- http-hello ----------------------------------------------------------------- */

START_TEST(test_http_get_has_status_length_body_and_a_current_date)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    send_str(c.fd, GET_REQ);
    response_t r;
    http_read(&c, &r, false);
    assert_hello(&r, false);
    char v[128];
    ck_assert_ptr_null(header(&r, "Connection", v, sizeof(v)));
    ck_assert_ptr_nonnull(header(&r, "Date", v, sizeof(v)));
    struct tm tm = {0};
    char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ck_assert_msg(rest && *rest == '\0', "Date is not an IMF-fixdate: %s", v);
    ck_assert_uint_eq(strlen(v), 29);
    double skew = difftime(timegm(&tm), time(NULL));
    ck_assert_msg(skew > -5 && skew < 5, "Date %s is %.0f s off", v, skew);
    /* Keep-alive: the connection takes another request. */
    send_str(c.fd, GET_REQ);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    close(c.fd);
    stop(&fx);
}
END_TEST

/* The Date of one GET on @p c, as a time. */
static time_t get_date(http_client_t *c)
{
    response_t r;
    char v[128];
    struct tm tm = {0};
    send_str(c->fd, GET_REQ);
    http_read(c, &r, false);
    ck_assert_ptr_nonnull(header(&r, "Date", v, sizeof(v)));
    ck_assert_ptr_nonnull(strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm));
    return timegm(&tm);
}

/* The cached Date is rebuilt as the clock moves on. */
START_TEST(test_http_date_follows_the_clock)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    time_t first = get_date(&c);
    usleep(1100 * 1000);
    time_t second = get_date(&c);
    ck_assert_int_gt(second, first);
    ck_assert_int_le(labs((long)(second - time(NULL))), 1);
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_pipelined_requests_are_answered_in_order)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    send_str(c.fd, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    response_t r;
    http_read(&c, &r, false);
    assert_hello(&r, false);
    http_read(&c, &r, true);
    assert_hello(&r, true);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    ck_assert(header_is(&r, "Connection", "close"));
    assert_closed(&c);
    close(c.fd);
    stop(&fx);
}
END_TEST

/* Send @p s one byte per segment, with a pause so that each is its own read. */
static void send_bytewise(int fd, const char *s)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (; *s; s++) {
        send_all(fd, s, 1);
        usleep(500);
    }
}

START_TEST(test_http_request_split_byte_by_byte_is_answered)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    send_bytewise(c.fd, "POST /form HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello"
                        "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    response_t r;
    http_read(&c, &r, false);
    assert_hello(&r, false);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    /* And a whole request after the split ones. */
    send_str(c.fd, GET_REQ);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    ck_assert(silent_for(c.fd, 50));
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_request_body_is_skipped_within_and_across_reads)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    response_t r;
    /* Body and next request in the same send. */
    send_str(c.fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" GET_REQ);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    /* A body that arrives in three reads, a request right behind it. */
    send_str(c.fd, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\nGET / HTTP");
    http_read(&c, &r, false);
    assert_hello(&r, false);
    usleep(20 * 1000);
    send_str(c.fd, "/1.1\r\n");
    usleep(20 * 1000);
    send_str(c.fd, "\r\nGET / HTTP/1.1\r\n\r\n");
    http_read(&c, &r, false);
    assert_hello(&r, false);
    ck_assert(silent_for(c.fd, 50));
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_connection_close_is_answered_then_closed)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    /* Header names and the token are case-insensitive; a request after it is ignored. */
    send_str(c.fd, "GET / HTTP/1.1\r\nCONNECTION: Close\r\n\r\n" GET_REQ);
    response_t r;
    http_read(&c, &r, false);
    assert_hello(&r, false);
    ck_assert(header_is(&r, "Connection", "close"));
    assert_closed(&c);
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_1_0_closes_unless_it_asks_for_keep_alive)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    response_t r;
    http_connect(&c, fx.port);
    send_str(c.fd, "GET / HTTP/1.0\r\n\r\n");
    http_read(&c, &r, false);
    assert_hello(&r, false);
    ck_assert(header_is(&r, "Connection", "close"));
    assert_closed(&c);
    close(c.fd);

    http_connect(&c, fx.port);
    for (int i = 0; i < 2; i++) {
        send_str(c.fd, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        http_read(&c, &r, false);
        assert_hello(&r, false);
        ck_assert(header_is(&r, "Connection", "keep-alive"));
    }
    ck_assert(silent_for(c.fd, 50));
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_head_has_the_length_but_no_body)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    send_str(c.fd, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    response_t r;
    http_read(&c, &r, true);
    assert_hello(&r, true);
    /* Nothing follows the headers: the next bytes are the next response. */
    ck_assert(silent_for(c.fd, 50));
    ck_assert_uint_eq(c.len, 0);
    send_str(c.fd, GET_REQ);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    close(c.fd);
    stop(&fx);
}
END_TEST

/* Send @p req on a new connection: the reply has @p status, Connection: close, then EOF. */
static void expect_error(int port, const char *req, size_t len, int status)
{
    http_client_t c;
    http_connect(&c, port);
    send_all(c.fd, req, len);
    response_t r;
    http_read(&c, &r, false);
    ck_assert_int_eq(r.status, status);
    ck_assert(header_is(&r, "Connection", "close"));
    ck_assert_int_gt(r.content_length, 0);
    assert_closed(&c);
    close(c.fd);
}

START_TEST(test_http_oversized_headers_get_431)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    static char req[10000];
    int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %09000d\r\n\r\n", 0);
    expect_error(fx.port, req, (size_t)n, 431);
    /* Also when the head grows past the limit over several reads. */
    http_client_t c;
    http_connect(&c, fx.port);
    send_str(c.fd, "GET / HTTP/1.1\r\n");
    memset(req, 'a', 4000);
    for (int i = 0; i < 3; i++) {
        usleep(10 * 1000);
        send_all(c.fd, req, 4000);
    }
    response_t r;
    http_read(&c, &r, false);
    ck_assert_int_eq(r.status, 431);
    close(c.fd);
    /* A head just under the limit is fine. */
    n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 8192 - 27, 0);
    ck_assert_int_eq(n, 8192);
    http_connect(&c, fx.port);
    send_all(c.fd, req, (size_t)n);
    http_read(&c, &r, false);
    assert_hello(&r, false);
    close(c.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_malformed_requests_get_400)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    const char *bad[] = {
        "garbage\r\n\r\n",
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET / FTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "\x01\x02\x03 nonsense\r\n", /* refused before the head is complete */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(fx.port, bad[i], strlen(bad[i]), 400);
    expect_error(fx.port, "GET / HTTP/2.0\r\n\r\n", 18, 505);
    expect_error(fx.port, "GET / HTTP/3.0\r\nHost: x\r\n", 25, 505); /* early, too */
    stop(&fx);
}
END_TEST

START_TEST(test_http_chunked_request_gets_501)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    const char req[] = "POST / HTTP/1.1\r\nHost: x\r\ntransfer-ENCODING: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n";
    expect_error(fx.port, req, sizeof(req) - 1, 501);
    stop(&fx);
}
END_TEST

START_TEST(test_http_keep_alive_serves_many_requests_on_one_connection)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t c;
    http_connect(&c, fx.port);
    response_t r;
    for (int i = 0; i < 2000; i++) {
        send_str(c.fd, GET_REQ);
        http_read(&c, &r, false);
        assert_hello(&r, false);
    }
    close(c.fd);
    stop(&fx);
}
END_TEST

/* On the server thread: the listener drains. */
static int drain_cb(void *arg)
{
    fixture_t *fx = arg;
    fx->svc->drain(fx->ctx);
    return 0;
}

START_TEST(test_http_drain_closes_idle_connections_and_answers_the_rest_with_close)
{
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    http_client_t idle_c, busy;
    response_t r;
    http_connect(&idle_c, fx.port);
    http_connect(&busy, fx.port);
    send_str(idle_c.fd, GET_REQ);
    http_read(&idle_c, &r, false);
    assert_hello(&r, false);
    ck_assert(!header_is(&r, "Connection", "close"));
    send_str(busy.fd, "GET / HTTP/1.1\r\nHost: x\r\n"); /* a request half sent */
    ck_assert(silent_for(busy.fd, 100));
    ck_assert_int_eq(cio_loop_call_soon_threadsafe(fx.loop, drain_cb, &fx), 0);
    /* The idle connection goes at once; the busy one gets its answer, then goes. */
    assert_closed(&idle_c);
    send_str(busy.fd, "\r\n");
    http_read(&busy, &r, false);
    assert_hello(&r, false);
    ck_assert(header_is(&r, "Connection", "close"));
    assert_closed(&busy);
    close(idle_c.fd);
    close(busy.fd);
    stop(&fx);
}
END_TEST

START_TEST(test_http_curl_gets_hello_world)
{
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        printf("test_http_curl_gets_hello_world: skipped, curl not found\n");
        return;
    }
    fixture_t fx = {0};
    start(&fx, &cio__service_http_hello, false);
    char cmd[128], out[4096] = {0};
    snprintf(cmd, sizeof(cmd), "curl -s -i --max-time 5 http://127.0.0.1:%d/", fx.port);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_uint_gt(n, 0);
    ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "curl said: %s", out);
    ck_assert_ptr_nonnull(strcasestr(out, "\r\nContent-Length: 14\r\n"));
    ck_assert_ptr_nonnull(strcasestr(out, "\r\nDate: "));
    ck_assert_ptr_nonnull(strcasestr(out, "\r\nServer: coreio\r\n"));
    ck_assert_msg(n > 18 && strcmp(out + n - 18, "\r\n\r\nHello, World!\n") == 0, "curl said: %s",
                  out);
    stop(&fx);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("services");
    TCase *tc = cio_test_case("services");
    CIO_TEST(tc, test_echo_and_discard_descriptors_serve_streams_and_datagrams);
    CIO_TEST(tc, test_echo_stream_returns_every_byte_and_closes_after_eof);
    CIO_TEST(tc, test_echo_stream_stops_reading_while_the_client_does_not_read);
    CIO_TEST(tc, test_echo_datagram_returns_each_datagram_to_its_sender);
    CIO_TEST(tc, test_discard_stream_sends_nothing_and_closes_on_eof);
    CIO_TEST(tc, test_discard_datagram_sends_nothing_back);
    CIO_TEST(tc, test_http_get_has_status_length_body_and_a_current_date);
    CIO_TEST(tc, test_http_date_follows_the_clock);
    CIO_TEST(tc, test_http_pipelined_requests_are_answered_in_order);
    CIO_TEST(tc, test_http_request_split_byte_by_byte_is_answered);
    CIO_TEST(tc, test_http_request_body_is_skipped_within_and_across_reads);
    CIO_TEST(tc, test_http_connection_close_is_answered_then_closed);
    CIO_TEST(tc, test_http_1_0_closes_unless_it_asks_for_keep_alive);
    CIO_TEST(tc, test_http_head_has_the_length_but_no_body);
    CIO_TEST(tc, test_http_oversized_headers_get_431);
    CIO_TEST(tc, test_http_malformed_requests_get_400);
    CIO_TEST(tc, test_http_chunked_request_gets_501);
    CIO_TEST(tc, test_http_keep_alive_serves_many_requests_on_one_connection);
    CIO_TEST(tc, test_http_drain_closes_idle_connections_and_answers_the_rest_with_close);
    CIO_TEST(tc, test_http_curl_gets_hello_world);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
