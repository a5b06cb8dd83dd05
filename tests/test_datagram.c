/*
 * tests/test_datagram.c: datagram endpoints (SEMANTICS.md "Datagrams,
 * sockets, DNS"): local and remote addresses, sendto without an address on a
 * connected endpoint, ICMP errors reaching error_received, reuse_port,
 * allow_broadcast, an existing socket, Unix datagrams; and loop.sendfile on
 * transports; datagrams read in batches (a Unix one larger than a batch
 * slot arrives whole), and a pause among them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

typedef struct dproto {
    cio_protocol_t base;
    cio_transport_t *t;
    char last[256];
    size_t last_len;
    size_t full_len; /* the last datagram's whole length */
    struct sockaddr_storage from;
    socklen_t fromlen;
    int received;
    int errors;
    int last_error;
    int lost;
    cio_future_t *got; /* settled at the next datagram or error */
} dproto_t;

static void settle(dproto_t *p)
{
    if (p->got && !cio_future_done(p->got))
        cio_future_set_result(p->got, NULL);
}

static int d_made(cio_protocol_t *proto, cio_transport_t *t)
{
    ((dproto_t *)proto)->t = t;
    return 0;
}

static int d_received(cio_protocol_t *proto, const void *data, size_t len,
                      const struct sockaddr *addr, socklen_t addrlen)
{
    dproto_t *p = (dproto_t *)proto;
    p->last_len = len < sizeof(p->last) ? len : sizeof(p->last);
    p->full_len = len;
    memcpy(p->last, data, p->last_len);
    if (addr && addrlen <= sizeof(p->from))
        memcpy(&p->from, addr, addrlen);
    p->fromlen = addrlen;
    p->received++;
    settle(p);
    return 0;
}

static int d_error(cio_protocol_t *proto, int err)
{
    dproto_t *p = (dproto_t *)proto;
    p->errors++;
    p->last_error = err;
    settle(p);
    return 0;
}

static void d_lost(cio_protocol_t *proto, int err)
{
    ((dproto_t *)proto)->lost++;
}

static const cio_protocol_ops_t d_ops = {
    .connection_made = d_made,
    .datagram_received = d_received,
    .error_received = d_error,
    .connection_lost = d_lost,
};

static cio_protocol_t *factory(void *arg)
{
    return arg;
}

/* Open an endpoint with @p opts for @p p; returns the transport. */
static cio_transport_t *open_endpoint(dproto_t *p, const cio_datagram_opts_t *opts)
{
    cio_loop_t *loop = cio_get_running_loop();
    p->base.ops = &d_ops;
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, factory, p, opts);
    ck_assert_ptr_nonnull(f);
    cio_transport_t *t = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&t), 0);
    cio_future_unref(f);
    ck_assert_ptr_eq(t, p->t);
    return t;
}

/* Wait (inside a task) for the next datagram or error of @p p. */
static void wait_for_datagram(dproto_t *p)
{
    p->got = cio_loop_create_future(cio_get_running_loop());
    cio_future_t *w = cio_wait_for(p->got, 5.0);
    ck_assert_int_eq(cio_await(w, NULL), 0);
    cio_future_unref(w);
    cio_future_unref(p->got);
    p->got = NULL;
}

static uint16_t port_of(cio_transport_t *t)
{
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "sockname", &info), 0);
    return ntohs(((struct sockaddr_in *)&info.addr)->sin_port);
}

static int local_remote_fn(void *arg, void **result)
{
    dproto_t server = {0}, client = {0};
    cio_datagram_opts_t so = {.local_host = "127.0.0.1", .local_port = "0"};
    cio_transport_t *ts = open_endpoint(&server, &so);
    char port[8];
    snprintf(port, sizeof(port), "%u", port_of(ts));
    cio_datagram_opts_t co = {.remote_host = "127.0.0.1", .remote_port = port};
    cio_transport_t *tc = open_endpoint(&client, &co);
    /* A connected endpoint sends without an address. */
    ck_assert_int_eq(cio_transport_sendto(tc, "ping", 4, NULL, 0), 0);
    wait_for_datagram(&server);
    ck_assert_int_eq(server.received, 1);
    ck_assert_int_eq(memcmp(server.last, "ping", 4), 0);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&server.from)->sin_port), port_of(tc));
    /* The server answers to the address it got. */
    ck_assert_int_eq(
        cio_transport_sendto(ts, "pong", 4, (struct sockaddr *)&server.from, server.fromlen), 0);
    wait_for_datagram(&client);
    ck_assert_int_eq(memcmp(client.last, "pong", 4), 0);
    /* An address other than the remote one is refused; so is none unconnected. */
    struct sockaddr_in other = {.sin_family = AF_INET, .sin_port = htons(9)};
    other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(cio_transport_sendto(tc, "x", 1, (struct sockaddr *)&other, sizeof(other)),
                     -EINVAL);
    ck_assert_int_eq(cio_transport_sendto(ts, "x", 1, NULL, 0), -EDESTADDRREQ);
    /* Stream calls do not apply. */
    ck_assert_int_eq(cio_transport_write(ts, "x", 1), -EINVAL);
    ck_assert(!cio_transport_can_write_eof(ts));
    cio_transport_close(ts);
    cio_transport_close(tc);
    ck_assert_int_eq(cio_transport_sendto(tc, "x", 1, NULL, 0), -EPIPE);
    cio_sleep(0);
    ck_assert_int_eq(server.lost + client.lost, 2);
    return 0;
}

START_TEST(test_endpoints_with_local_and_remote_addresses_exchange_datagrams)
{
    ck_assert_int_eq(cio_run(local_remote_fn, NULL, false, NULL), 0);
}
END_TEST

static int icmp_fn(void *arg, void **result)
{
    /* A port nobody listens on: take one, then free it. */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    char port[8];
    snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
    dproto_t client = {0};
    cio_datagram_opts_t co = {.remote_host = "127.0.0.1", .remote_port = port};
    cio_transport_t *tc = open_endpoint(&client, &co);
    ck_assert_int_eq(cio_transport_sendto(tc, "anyone?", 7, NULL, 0), 0);
    wait_for_datagram(&client);
    ck_assert_int_eq(client.errors, 1);
    ck_assert_int_eq(client.last_error, -ECONNREFUSED);
    /* Not fatal: the endpoint is still open. */
    ck_assert(!cio_transport_is_closing(tc));
    cio_transport_close(tc);
    cio_sleep(0);
    return 0;
}

START_TEST(test_icmp_port_unreachable_reaches_error_received)
{
    ck_assert_int_eq(cio_run(icmp_fn, NULL, false, NULL), 0);
}
END_TEST

static int options_fn(void *arg, void **result)
{
    dproto_t a = {0}, b = {0}, c = {0};
    cio_datagram_opts_t o = {
        .local_host = "127.0.0.1", .local_port = "0", .reuse_port = true, .allow_broadcast = true};
    cio_transport_t *ta = open_endpoint(&a, &o);
    cio_extra_info_t info;
    cio_transport_get_extra_info(ta, "socket", &info);
    int one = 0;
    socklen_t len = sizeof(one);
    getsockopt(info.fd, SOL_SOCKET, SO_REUSEPORT, &one, &len);
    ck_assert_int_eq(one, 1);
    getsockopt(info.fd, SOL_SOCKET, SO_BROADCAST, &one, &len);
    ck_assert_int_eq(one, 1);
    /* reuse_port lets a second endpoint bind the same port. */
    char port[8];
    snprintf(port, sizeof(port), "%u", port_of(ta));
    o.local_port = port;
    cio_transport_t *tb = open_endpoint(&b, &o);
    ck_assert_uint_eq(port_of(tb), port_of(ta));
    /* An existing socket, made non-blocking on the way. */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&sa, sizeof(sa));
    cio_datagram_opts_t e = {.use_sock = true, .sock = s};
    cio_transport_t *tc = open_endpoint(&c, &e);
    ck_assert(fcntl(s, F_GETFL) & O_NONBLOCK);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port_of(tc))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(cio_transport_sendto(ta, "via sock", 8, (struct sockaddr *)&to, sizeof(to)),
                     0);
    wait_for_datagram(&c);
    ck_assert_int_eq(memcmp(c.last, "via sock", 8), 0);
    cio_transport_close(ta);
    cio_transport_close(tb);
    cio_transport_close(tc);
    cio_sleep(0);
    return 0;
}

START_TEST(test_reuse_port_broadcast_and_existing_socket_options)
{
    ck_assert_int_eq(cio_run(options_fn, NULL, false, NULL), 0);
}
END_TEST

static int unix_fn(void *arg, void **result)
{
    char dir[] = "/tmp/cio-dgram-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char server_path[64], client_path[64];
    snprintf(server_path, sizeof(server_path), "%s/server", dir);
    snprintf(client_path, sizeof(client_path), "%s/client", dir);
    dproto_t server = {0}, client = {0};
    cio_datagram_opts_t so = {.family = AF_UNIX, .local_path = server_path};
    cio_transport_t *ts = open_endpoint(&server, &so);
    cio_datagram_opts_t co = {
        .family = AF_UNIX, .local_path = client_path, .remote_path = server_path};
    cio_transport_t *tc = open_endpoint(&client, &co);
    ck_assert_int_eq(cio_transport_sendto(tc, "unix datagram", 13, NULL, 0), 0);
    wait_for_datagram(&server);
    ck_assert_int_eq(memcmp(server.last, "unix datagram", 13), 0);
    ck_assert_str_eq(((struct sockaddr_un *)&server.from)->sun_path, client_path);
    /* Larger than an IP datagram, so larger than a batch slot: it arrives whole. */
    static char big[100000];
    memset(big, 'u', sizeof(big));
    ck_assert_int_eq(cio_transport_sendto(tc, big, sizeof(big), NULL, 0), 0);
    wait_for_datagram(&server);
    ck_assert_uint_eq(server.full_len, sizeof(big));
    cio_transport_close(ts);
    cio_transport_close(tc);
    cio_sleep(0);
    unlink(server_path);
    unlink(client_path);
    rmdir(dir);
    return 0;
}

START_TEST(test_unix_datagram_endpoints_exchange_datagrams)
{
    ck_assert_int_eq(cio_run(unix_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_bad_datagram_options_return_null)
{
    cio_loop_t *loop = cio_loop_new();
    dproto_t p = {.base.ops = &d_ops};
    cio_datagram_opts_t none = {0};
    ck_assert_ptr_null(cio_loop_create_datagram_endpoint(loop, factory, &p, &none));
    ck_assert_ptr_null(cio_loop_create_datagram_endpoint(loop, factory, &p, NULL));
    cio_datagram_opts_t path_inet = {.local_path = "/tmp/x", .family = AF_INET};
    ck_assert_ptr_null(cio_loop_create_datagram_endpoint(loop, factory, &p, &path_inet));
    cio_datagram_opts_t ok = {.local_port = "0"};
    ck_assert_ptr_null(cio_loop_create_datagram_endpoint(loop, NULL, &p, &ok));
    cio_loop_free(loop);
}
END_TEST

/* ---- loop.sendfile on transports ---------------------------------------------- */

typedef struct sink {
    cio_protocol_t base;
    cio_transport_t *t;
    unsigned char *data;
    size_t len;
} sink_t;

static int s_made(cio_protocol_t *proto, cio_transport_t *t)
{
    ((sink_t *)proto)->t = t;
    return 0;
}

static int s_received(cio_protocol_t *proto, const void *data, size_t len)
{
    sink_t *s = (sink_t *)proto;
    s->data = realloc(s->data, s->len + len);
    memcpy(s->data + s->len, data, len);
    s->len += len;
    return 0;
}

static const cio_protocol_ops_t sink_ops = {.connection_made = s_made, .data_received = s_received};

static int sendfile_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    sink_t a = {.base.ops = &sink_ops}, b = {.base.ops = &sink_ops};
    cio_future_t *fa = cio_loop_connect_accepted_socket(loop, factory, &a, sv[0], NULL);
    cio_future_t *fb = cio_loop_connect_accepted_socket(loop, factory, &b, sv[1], NULL);
    cio_await(fa, NULL);
    cio_await(fb, NULL);
    /* A file of 200,000 pattern bytes. */
    char path[] = "/tmp/cio-sf-XXXXXX";
    int file = mkstemp(path);
    unlink(path);
    enum { N = 200000 };
    unsigned char *pattern = malloc(N);
    for (size_t i = 0; i < N; i++)
        pattern[i] = (unsigned char)(i * 31 + 7);
    ck_assert_int_eq(write(file, pattern, N), N);
    /* What was written before goes first; writes wait during the sendfile. */
    ck_assert_int_eq(cio_transport_write(a.t, "HEAD", 4), 0);
    cio_future_t *f = cio_loop_sendfile(loop, a.t, file, 100, 0, true);
    ck_assert_ptr_nonnull(f);
    cio_sleep(0);
    ck_assert(cio_future_done(f) || cio_transport_write(a.t, "x", 1) == -EBUSY);
    void *sent = NULL;
    ck_assert_int_eq(cio_await(f, &sent), 0);
    ck_assert_uint_eq((uintptr_t)sent, N - 100);
    ck_assert_int_eq(lseek(file, 0, SEEK_CUR), N);
    ck_assert_int_eq(cio_transport_write(a.t, "TAIL", 4), 0);
    while (b.len < 4 + (N - 100) + 4)
        cio_sleep(0.001);
    ck_assert_int_eq(memcmp(b.data, "HEAD", 4), 0);
    ck_assert_int_eq(memcmp(b.data + 4, pattern + 100, N - 100), 0);
    ck_assert_int_eq(memcmp(b.data + 4 + N - 100, "TAIL", 4), 0);
    cio_future_unref(f);
    /* Datagram transports are not supported. */
    dproto_t d = {0};
    cio_datagram_opts_t o = {.local_host = "127.0.0.1", .local_port = "0"};
    cio_transport_t *td = open_endpoint(&d, &o);
    f = cio_loop_sendfile(loop, td, file, 0, 10, true);
    ck_assert_int_eq(cio_await(f, NULL), -ENOTSUP);
    cio_future_unref(f);
    cio_transport_close(td);
    cio_transport_close(a.t);
    cio_transport_close(b.t);
    cio_sleep(0);
    cio_future_unref(fa);
    cio_future_unref(fb);
    free(pattern);
    free(a.data);
    free(b.data);
    close(file);
    return 0;
}

START_TEST(test_transport_sendfile_keeps_write_order_and_moves_the_offset)
{
    ck_assert_int_eq(cio_run(sendfile_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * A socket given with use_sock is the loop's once a future is returned: an
 * endpoint cancelled before its task ran, or on a loop closed first, closes
 * it rather than leaking it.
 */
START_TEST(test_a_given_socket_is_closed_when_its_endpoint_never_starts)
{
    int s[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_ge((s[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), 0);
    cio_loop_t *loop = cio_loop_new();
    cio_datagram_opts_t o = {.use_sock = true, .sock = s[0]};
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, factory, NULL, &o);
    ck_assert_ptr_nonnull(f);
    ck_assert(cio_future_cancel(f, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, NULL), -ECANCELED);
    cio_future_unref(f);
    o.sock = s[1];
    f = cio_loop_create_datagram_endpoint(loop, factory, NULL, &o);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_loop_free(loop), 0); /* before the task ever ran */
    cio_future_unref(f);
    for (int i = 0; i < 2; i++) {
        errno = 0;
        ck_assert_int_eq(fcntl(s[i], F_GETFD), -1);
        ck_assert_int_eq(errno, EBADF);
    }
}
END_TEST

/* The library's allocation hook (loop/alloc.h), as tests/test_alloc.c uses it. */
void cio__alloc_fail_after(unsigned long n);
unsigned long cio__alloc_failures(void);

/*
 * Reading in batches. A protocol that logs the first byte of each datagram,
 * pauses reading at the bytes in pause_at (making the library's next
 * allocation fail first at those in starve_at), closes at close_at, logs 'E'
 * for error_received, and at its first datagram schedules a callback that
 * logs 'M'.
 */
typedef struct batch_proto {
    cio_protocol_t base;
    cio_transport_t *t;
    char log[64];
    size_t n;
    size_t first_len;
    const char *pause_at, *close_at, *starve_at;
    int lost;
    int last_error;
    cio_future_t *got; /* settled when the log holds want bytes */
    size_t want;
} batch_proto_t;

static void b_log(batch_proto_t *p, char c)
{
    ck_assert_uint_lt(p->n, sizeof(p->log) - 1);
    p->log[p->n++] = c;
    if (p->got && p->n >= p->want && !cio_future_done(p->got))
        cio_future_set_result(p->got, NULL);
}

static int b_mark(void *arg)
{
    b_log(arg, 'M');
    return 0;
}

static int b_made(cio_protocol_t *proto, cio_transport_t *t)
{
    ((batch_proto_t *)proto)->t = t;
    return 0;
}

static int b_received(cio_protocol_t *proto, const void *data, size_t len,
                      const struct sockaddr *addr, socklen_t addrlen)
{
    batch_proto_t *p = (batch_proto_t *)proto;
    char c = len ? *(const char *)data : '0';
    ck_assert(cio_transport_is_reading(p->t)); /* never while paused or closed */
    if (p->n == 0) {
        p->first_len = len;
        ck_assert_int_eq(cio_loop_call_soon(cio_get_running_loop(), b_mark, p, NULL), 0);
    }
    b_log(p, c);
    if (p->starve_at && strchr(p->starve_at, c))
        cio__alloc_fail_after(1);
    if (p->pause_at && strchr(p->pause_at, c))
        cio_transport_pause_reading(p->t);
    if (p->close_at && strchr(p->close_at, c))
        cio_transport_close(p->t);
    return 0;
}

static void b_lost(cio_protocol_t *proto, int err)
{
    batch_proto_t *p = (batch_proto_t *)proto;
    ck_assert_int_eq(err, 0);
    p->lost++;
    b_log(p, 'L');
}

static int b_error(cio_protocol_t *proto, int err)
{
    batch_proto_t *p = (batch_proto_t *)proto;
    p->last_error = err;
    b_log(p, 'E');
    return 0;
}

static const cio_protocol_ops_t batch_ops = {
    .connection_made = b_made,
    .datagram_received = b_received,
    .error_received = b_error,
    .connection_lost = b_lost,
};

/* Wait inside a task until @p p has logged @p n bytes in all (5 s at most). */
static void b_wait(batch_proto_t *p, size_t n)
{
    p->want = n;
    p->got = cio_loop_create_future(cio_get_running_loop());
    if (p->n >= n)
        cio_future_set_result(p->got, NULL);
    cio_future_t *w = cio_wait_for(p->got, 5.0);
    ck_assert_int_eq(cio_await(w, NULL), 0);
    cio_future_unref(w);
    cio_future_unref(p->got);
    p->got = NULL;
}

/* An endpoint on 127.0.0.1 for @p p, and a plain socket connected to it. */
static cio_transport_t *b_open(batch_proto_t *p, int *sender)
{
    cio_loop_t *loop = cio_get_running_loop();
    p->base.ops = &batch_ops;
    cio_datagram_opts_t o = {.local_host = "127.0.0.1", .local_port = "0"};
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, factory, p, &o);
    cio_transport_t *t = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&t), 0);
    cio_future_unref(f);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port_of(t))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *sender = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(*sender, 0);
    ck_assert_int_eq(connect(*sender, (struct sockaddr *)&to, sizeof(to)), 0);
    return t;
}

/* Send one datagram per byte of @p bytes: that byte, then @p len - 1 more. */
static void b_send(int fd, const char *bytes, size_t len)
{
    static char buf[65507];
    for (const char *c = bytes; *c; c++) {
        memset(buf, *c, len);
        ck_assert_int_eq(send(fd, buf, len, 0), (ssize_t)len);
    }
}

/*
 * Datagrams waiting together are read together: all five reach the protocol
 * before a callback the first one scheduled, the largest IPv4 payload
 * (65,507 bytes) arrives whole, and a close in the middle of them ends the
 * deliveries.
 */
static int batch_fn(void *arg, void **result)
{
    batch_proto_t p = {0};
    int fd;
    b_open(&p, &fd);
    b_send(fd, "a", 65507);
    b_send(fd, "bcde", 3);
    b_wait(&p, 6);
    ck_assert_str_eq(p.log, "abcdeM");
    ck_assert_uint_eq(p.first_len, 65507);
    close(fd);

    batch_proto_t q = {.close_at = "b"};
    b_open(&q, &fd);
    b_send(fd, "abcd", 1);
    b_wait(&q, 4);
    ck_assert_str_eq(q.log, "abML");
    ck_assert_int_eq(q.lost, 1); /* connection_lost ran: t is gone */
    close(fd);
    cio_transport_close(p.t);
    cio_sleep(0);
    ck_assert_int_eq(p.lost, 1);
    return 0;
}

START_TEST(test_datagrams_waiting_together_are_read_in_one_go)
{
    ck_assert_int_eq(cio_run(batch_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * pause_reading() in the middle of datagrams read together keeps the rest:
 * none arrives while paused, and after resume_reading() they arrive first, in
 * order, before anything sent later, even with nothing new on the socket; a
 * second pause among them keeps the rest again; a close drops them; without
 * the memory to keep them they are lost and error_received hears -ENOMEM.
 */
static int pause_fn(void *arg, void **result)
{
    batch_proto_t p = {.pause_at = "bd"};
    int fd;
    cio_transport_t *t = b_open(&p, &fd);
    b_send(fd, "abcde", 16);
    b_wait(&p, 3);
    ck_assert_str_eq(p.log, "abM");
    ck_assert(!cio_transport_is_reading(t));
    b_send(fd, "f", 16);
    cio_sleep(0.05);
    ck_assert_str_eq(p.log, "abM"); /* nothing while paused */
    b_log(&p, 'R');
    cio_transport_resume_reading(t);
    b_wait(&p, 6);
    cio_sleep(0.02);
    ck_assert_str_eq(p.log, "abMRcd");
    b_log(&p, 'R');
    cio_transport_resume_reading(t);
    b_wait(&p, 9);
    ck_assert_str_eq(p.log, "abMRcdRef");
    close(fd);

    batch_proto_t q = {.pause_at = "a"};
    t = b_open(&q, &fd);
    b_send(fd, "abc", 1);
    b_wait(&q, 2);
    cio_transport_close(t); /* b and c wait in the endpoint: dropped, not leaked */
    cio_sleep(0);
    ck_assert_str_eq(q.log, "aML");
    close(fd);

    /* No memory to keep them: b and c are lost, and error_received says so. */
    batch_proto_t r = {.pause_at = "a", .starve_at = "a"};
    t = b_open(&r, &fd);
    b_send(fd, "abc", 1);
    b_wait(&r, 3);
    ck_assert_str_eq(r.log, "aEM");
    ck_assert_int_eq(r.last_error, -ENOMEM);
    ck_assert_uint_eq(cio__alloc_failures(), 1);
    cio_transport_resume_reading(t);
    b_send(fd, "d", 1);
    b_wait(&r, 4);
    ck_assert_str_eq(r.log, "aEMd");
    cio_transport_close(t);
    close(fd);
    cio_transport_close(p.t);
    cio_sleep(0);
    return 0;
}

START_TEST(test_a_pause_among_datagrams_read_together_keeps_the_rest_in_order)
{
    ck_assert_int_eq(cio_run(pause_fn, NULL, false, NULL), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("datagram");
    TCase *tc = cio_test_case("datagram");
    CIO_TEST(tc, test_endpoints_with_local_and_remote_addresses_exchange_datagrams);
    CIO_TEST(tc, test_icmp_port_unreachable_reaches_error_received);
    CIO_TEST(tc, test_reuse_port_broadcast_and_existing_socket_options);
    CIO_TEST(tc, test_unix_datagram_endpoints_exchange_datagrams);
    CIO_TEST(tc, test_bad_datagram_options_return_null);
    CIO_TEST(tc, test_transport_sendfile_keeps_write_order_and_moves_the_offset);
    CIO_TEST(tc, test_a_given_socket_is_closed_when_its_endpoint_never_starts);
    CIO_TEST(tc, test_datagrams_waiting_together_are_read_in_one_go);
    CIO_TEST(tc, test_a_pause_among_datagrams_read_together_keeps_the_rest_in_order);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
