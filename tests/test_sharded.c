/*
 * tests/test_sharded.c: one service over every worker (coreio/sharded.h), in
 * both balancing modes, with real blocking clients on loopback.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "coreio.h"
#include "coreio/proxy.h"
#include "testutil.h"

#define NCONN 100

/* ---- an echo protocol, usable from every worker ------------------------------- */

typedef struct echo {
    cio_protocol_t base;
    cio_transport_t *t;
} echo_t;

static int echo_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((echo_t *)p)->t = t;
    return 0;
}

static int echo_data(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(((echo_t *)p)->t, data, len);
}

static int echo_datagram(cio_protocol_t *p, const void *data, size_t len,
                         const struct sockaddr *addr, socklen_t addrlen)
{
    return cio_transport_sendto(((echo_t *)p)->t, data, len, addr, addrlen);
}

static void echo_lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t echo_ops = {.connection_made = echo_made,
                                            .data_received = echo_data,
                                            .datagram_received = echo_datagram,
                                            .connection_lost = echo_lost};

static cio_protocol_t *echo_factory(void *arg)
{
    echo_t *e = calloc(1, sizeof(*e));
    if (e)
        e->base.ops = &echo_ops;
    return &e->base;
}

/* ---- blocking clients ------------------------------------------------------------ */

typedef struct target {
    struct sockaddr_storage addr;
    socklen_t len;
} target_t;

static target_t target_of(cio_sharded_t *s)
{
    target_t t = {.len = sizeof(t.addr)};
    ck_assert_int_eq(cio_sharded_sockname(s, &t.addr, &t.len), 0);
    return t;
}

/* Connect, send "ping" and read it back: the socket, or -errno. */
static int client_ping(const target_t *t)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&t->addr, t->len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    char buf[4];
    size_t got = 0;
    if (send(fd, "ping", 4, MSG_NOSIGNAL) != 4)
        goto lost;
    while (got < 4) {
        ssize_t n = recv(fd, buf + got, 4 - got, 0);
        if (n <= 0)
            goto lost;
        got += (size_t)n;
    }
    if (memcmp(buf, "ping", 4) == 0)
        return fd;
lost:
    close(fd);
    return -EPIPE; /* connected, then dropped: what closing must never do */
}

typedef struct many {
    target_t t;
    int fds[NCONN];
    int failed;
} many_t;

/* Executor job: open NCONN connections one after another and keep them. */
static int open_many(void *arg, void **result)
{
    many_t *m = arg;
    for (int i = 0; i < NCONN; i++) {
        m->fds[i] = client_ping(&m->t);
        if (m->fds[i] < 0)
            m->failed++;
    }
    return 0;
}

static void close_many(many_t *m)
{
    for (int i = 0; i < NCONN; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
}

/* ---- spreading ----------------------------------------------------------------------- */

typedef struct spread {
    cio_workers_t *w;
    cio_sharded_opts_t opts;
    const char *host;
    size_t counts[2], accepted[2], total, after_close;
    int failed;
} spread_t;

static cio_sharded_t *serve(cio_workers_t *w, const char *host, const cio_sharded_opts_t *o)
{
    cio_future_t *f = cio_workers_serve(w, echo_factory, NULL, host, "0", o);
    ck_assert_ptr_nonnull(f);
    void *s = NULL;
    ck_assert_int_eq(cio_await(f, &s), 0);
    cio_future_unref(f);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    return rc;
}

/* Wait (up to 5 s) until the service counts @p want connections. */
static size_t wait_for_count(cio_sharded_t *s, size_t want)
{
    size_t total = 0;
    for (int i = 0; i < 500 && (total = cio_sharded_connections(s, NULL, 0)) != want; i++)
        cio_sleep(0.01);
    return total;
}

static int spread_task(void *arg, void **result)
{
    spread_t *sp = arg;
    cio_sharded_t *s = serve(sp->w, sp->host, &sp->opts);
    many_t *m = calloc(1, sizeof(*m));
    m->t = target_of(s);
    ck_assert_int_eq(await_ok(cio_loop_run_in_executor(cio_get_running_loop(), NULL, open_many, m)),
                     0);
    sp->failed = m->failed;
    sp->total = wait_for_count(s, NCONN);
    cio_sharded_connections(s, sp->counts, 2);
    cio_sharded_accepted(s, sp->accepted, 2);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    close_many(m);
    free(m);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    sp->after_close = cio_sharded_connections(s, NULL, 0);
    cio_sharded_free(s);
    return 0;
}

static void check_spread(cio_balance_t balance)
{
    cio_workers_opts_t wo = {.count = 2};
    spread_t sp = {.w = cio_workers_new(&wo), .opts = {.balance = balance}, .host = "127.0.0.1"};
    ck_assert_ptr_nonnull(sp.w);
    ck_assert_int_eq(cio_run(spread_task, &sp, false, NULL), 0);
    printf("%s: %d connections, per worker: %zu + %zu\n",
           balance == CIO_BALANCE_HANDOFF ? "handoff" : "reuseport", NCONN, sp.counts[0],
           sp.counts[1]);
    ck_assert_int_eq(sp.failed, 0);
    ck_assert_uint_eq(sp.total, NCONN);
    ck_assert_uint_eq(sp.counts[0] + sp.counts[1], NCONN);
    ck_assert_uint_eq(sp.accepted[0] + sp.accepted[1], NCONN);
    /* Both workers serve: the kernel's hash over 100 source ports (REUSEPORT),
     * or strict least-loaded alternation (HANDOFF). */
    ck_assert_uint_gt(sp.counts[0], 0);
    ck_assert_uint_gt(sp.counts[1], 0);
    if (balance == CIO_BALANCE_HANDOFF) {
        ck_assert_uint_le(sp.counts[0], NCONN / 2 + 1);
        ck_assert_uint_le(sp.counts[1], NCONN / 2 + 1);
    }
    ck_assert_uint_eq(sp.after_close, 0);
    cio_workers_free(sp.w);
}

START_TEST(test_reuseport_spreads_100_connections_over_workers)
{
    check_spread(CIO_BALANCE_REUSEPORT);
}
END_TEST

START_TEST(test_handoff_gives_each_connection_to_the_least_loaded_worker)
{
    check_spread(CIO_BALANCE_HANDOFF);
}
END_TEST

/* ---- closing under load ---------------------------------------------------------------- */

typedef struct load {
    target_t t;
    atomic_bool stop;
    atomic_int served, lost, refused;
} load_t;

/* One client thread: connect, ping, close, again, until told to stop. */
static void *load_thread(void *arg)
{
    load_t *l = arg;
    while (!atomic_load(&l->stop)) {
        int fd = client_ping(&l->t);
        if (fd >= 0) {
            atomic_fetch_add(&l->served, 1);
            close(fd);
        } else if (fd == -EPIPE) {
            atomic_fetch_add(&l->lost, 1);
        } else {
            atomic_fetch_add(&l->refused, 1);
            usleep(1000);
        }
    }
    return NULL;
}

typedef struct close_load {
    cio_workers_t *w;
    cio_balance_t balance;
    load_t load;
    size_t accepted;
} close_load_t;

enum { LOAD_THREADS = 4 };

static int close_under_load_task(void *arg, void **result)
{
    close_load_t *c = arg;
    cio_sharded_opts_t o = {.balance = c->balance};
    cio_sharded_t *s = serve(c->w, "127.0.0.1", &o);
    c->load.t = target_of(s);
    pthread_t th[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, load_thread, &c->load), 0);
    cio_sleep(0.3);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    cio_sleep(0.2);
    atomic_store(&c->load.stop, true);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    c->accepted = cio_sharded_accepted(s, NULL, 0);
    cio_sharded_free(s);
    return 0;
}

static void check_close_under_load(cio_balance_t balance)
{
    cio_workers_opts_t wo = {.count = 2};
    close_load_t c = {.w = cio_workers_new(&wo), .balance = balance};
    ck_assert_ptr_nonnull(c.w);
    ck_assert_int_eq(cio_run(close_under_load_task, &c, false, NULL), 0);
    /* Every connection the kernel completed was accepted and answered; the
     * ones that came too late were refused, none was reset. */
    int lost = atomic_load(&c.load.lost), served = atomic_load(&c.load.served);
    ck_assert_int_eq(lost, 0);
    ck_assert_int_gt(served, 50);
    ck_assert_int_gt(atomic_load(&c.load.refused), 0);
    ck_assert_uint_eq(c.accepted, (size_t)served);
    cio_workers_free(c.w);
}

START_TEST(test_closing_a_reuseport_server_under_load_loses_no_connection)
{
    check_close_under_load(CIO_BALANCE_REUSEPORT);
}
END_TEST

START_TEST(test_closing_a_handoff_server_under_load_loses_no_connection)
{
    check_close_under_load(CIO_BALANCE_HANDOFF);
}
END_TEST

/* ---- taking over another server's sockets --------------------------------------------- */

static int take_over_task(void *arg, void **result)
{
    close_load_t *c = arg;
    cio_sharded_opts_t o = {.balance = c->balance};
    cio_sharded_t *old = serve(c->w, "127.0.0.1", &o);
    c->load.t = target_of(old);
    pthread_t th[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, load_thread, &c->load), 0);
    cio_sleep(0.2);
    /* The successor serves the very same sockets: no bind, no port of its own. */
    o.adopt = old;
    cio_sharded_t *s = serve(c->w, "127.0.0.1", &o);
    target_t t = target_of(s);
    ck_assert_int_eq(memcmp(&t.addr, &c->load.t.addr, t.len), 0);
    ck_assert_ptr_null(cio_workers_serve(c->w, echo_factory, NULL, "127.0.0.1", "0", &o));
    ck_assert_int_eq(await_ok(cio_sharded_close(old)), 0);
    cio_sleep(0.3);
    atomic_store(&c->load.stop, true);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(old)), 0);
    ck_assert_uint_gt(cio_sharded_accepted(s, NULL, 0), 0);
    c->accepted = cio_sharded_accepted(old, NULL, 0) + cio_sharded_accepted(s, NULL, 0);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    cio_sharded_free(old);
    cio_sharded_free(s);
    return 0;
}

/* Under load, a successor takes the sockets, the old server closes: nothing
 * refused, nothing reset, every connection served by one or the other. */
static void check_take_over_under_load(cio_balance_t balance)
{
    cio_workers_opts_t wo = {.count = 2};
    close_load_t c = {.w = cio_workers_new(&wo), .balance = balance};
    ck_assert_ptr_nonnull(c.w);
    ck_assert_int_eq(cio_run(take_over_task, &c, false, NULL), 0);
    int served = atomic_load(&c.load.served);
    ck_assert_int_eq(atomic_load(&c.load.lost), 0);
    ck_assert_int_eq(atomic_load(&c.load.refused), 0);
    ck_assert_int_gt(served, 50);
    ck_assert_uint_eq(c.accepted, (size_t)served);
    cio_workers_free(c.w);
}

START_TEST(test_a_successor_takes_over_reuseport_sockets_under_load_refusing_nothing)
{
    check_take_over_under_load(CIO_BALANCE_REUSEPORT);
}
END_TEST

START_TEST(test_a_successor_takes_over_a_handoff_socket_under_load_refusing_nothing)
{
    check_take_over_under_load(CIO_BALANCE_HANDOFF);
}
END_TEST

/* UDP: the successor answers on the very same port; the old endpoints let go. */
static int udp_take_over_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_sharded_opts_t o = {.type = SOCK_DGRAM};
    cio_sharded_t *old = serve(w, "127.0.0.1", &o);
    target_t t = target_of(old);
    o.adopt = old;
    cio_sharded_t *s = serve(w, "127.0.0.1", &o);
    ck_assert_int_eq(await_ok(cio_sharded_close(old)), 0);
    cio_sharded_free(old);
    for (int i = 0; i < 10; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[16];
        ck_assert_int_eq(sendto(fd, "again", 5, 0, (struct sockaddr *)&t.addr, t.len), 5);
        ck_assert_int_eq(recv(fd, buf, sizeof(buf), 0), 5);
        close(fd);
    }
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    cio_sharded_free(s);
    return 0;
}

START_TEST(test_a_successor_takes_over_udp_endpoints_on_the_same_port)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(cio_run(udp_take_over_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* ---- datagrams, Unix sockets, options ------------------------------------------------- */

static int udp_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_sharded_opts_t o = {.type = SOCK_DGRAM};
    cio_sharded_t *s = serve(w, "127.0.0.1", &o);
    target_t t = target_of(s);
    ck_assert_uint_ne(ntohs(((struct sockaddr_in *)&t.addr)->sin_port), 0);
    for (int i = 0; i < 20; i++) { /* a new source port each time */
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char msg[16], buf[16];
        int len = snprintf(msg, sizeof(msg), "dgram %d", i);
        ck_assert_int_eq(sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&t.addr, t.len), len);
        ck_assert_int_eq(recv(fd, buf, sizeof(buf), 0), len);
        ck_assert(memcmp(buf, msg, (size_t)len) == 0);
        close(fd);
    }
    ck_assert_uint_eq(cio_sharded_connections(s, NULL, 0), 0);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    cio_sharded_free(s);
    return 0;
}

START_TEST(test_udp_service_answers_on_every_worker_socket)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    ck_assert_int_eq(cio_run(udp_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* A v2 PROXY header for UDP4 from 192.0.2.1:5353 to 198.51.100.2:53 (28 bytes). */
static const char v2_udp4[] = "\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c"
                              "\xc0\x00\x02\x01\xc6\x33\x64\x02\x14\xe9\x00\x35";

/* Send @p len bytes of @p msg from a new socket; what comes back within @p wait s, or -1. */
static ssize_t udp_ask(const target_t *t, const void *msg, size_t len, char *buf, size_t cap,
                       int wait_ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(sendto(fd, msg, len, 0, (struct sockaddr *)&t->addr, t->len), (ssize_t)len);
    ssize_t n = recv(fd, buf, cap, 0);
    close(fd);
    return n;
}

static int udp_proxy_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_cidr_t lo, ten;
    ck_assert_int_eq(cio_cidr_parse("127.0.0.1", &lo), 0);
    ck_assert_int_eq(cio_cidr_parse("10.0.0.0/8", &ten), 0);
    cio_proxy_opts_t p = {.versions = CIO_PROXY_V2, .trusted = &lo, .ntrusted = 1};
    cio_sharded_opts_t o = {.type = SOCK_DGRAM, .proxy = &p};
    cio_sharded_t *s = serve(w, "127.0.0.1", &o);
    target_t t = target_of(s);
    for (int i = 0; i < 20; i++) { /* a new source port each time: both workers */
        char msg[64], buf[64];
        memcpy(msg, v2_udp4, 28);
        int len = snprintf(msg + 28, sizeof(msg) - 28, "dgram %d", i);
        ck_assert_int_eq(udp_ask(&t, msg, 28 + (size_t)len, buf, sizeof(buf), 2000), len);
        ck_assert(memcmp(buf, msg + 28, (size_t)len) == 0); /* the header was not echoed */
    }
    char buf[64];
    ck_assert_int_eq(udp_ask(&t, "no header", 9, buf, sizeof(buf), 300), -1);
    /* An endpoint keeps the options it was made with: other ones are refused. */
    cio_proxy_opts_t other = {.versions = CIO_PROXY_V2, .trusted = &ten, .ntrusted = 1};
    o.proxy = &other;
    ck_assert_ptr_null(cio_sharded_reconfigure(s, &o));
    o.proxy = NULL;
    ck_assert_ptr_null(cio_sharded_reconfigure(s, &o));
    o.proxy = &p;
    ck_assert_int_eq(await_ok(cio_sharded_reconfigure(s, &o)), 0);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    cio_sharded_free(s);
    return 0;
}

/* PROXY v2 over UDP: each worker's endpoint strips the header of every datagram. */
START_TEST(test_udp_workers_strip_a_v2_header_from_each_datagram)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    ck_assert_int_eq(cio_run(udp_proxy_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

typedef struct unix_args {
    cio_workers_t *w;
    char path[108];
    size_t counts[2];
    int failed;
} unix_args_t;

static int unix_task(void *arg, void **result)
{
    unix_args_t *u = arg;
    cio_sharded_opts_t o = {.balance = CIO_BALANCE_HANDOFF, .path = u->path};
    cio_future_t *f = cio_workers_serve(u->w, echo_factory, NULL, NULL, NULL, &o);
    void *sv = NULL;
    ck_assert_int_eq(cio_await(f, &sv), 0);
    cio_future_unref(f);
    cio_sharded_t *s = sv;
    many_t *m = calloc(1, sizeof(*m));
    m->t = target_of(s);
    ck_assert_int_eq(m->t.addr.ss_family, AF_UNIX);
    ck_assert_int_eq(await_ok(cio_loop_run_in_executor(cio_get_running_loop(), NULL, open_many, m)),
                     0);
    u->failed = m->failed;
    wait_for_count(s, NCONN);
    cio_sharded_connections(s, u->counts, 2);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    ck_assert_int_eq(access(u->path, F_OK), -1); /* the path goes with the listener */
    close_many(m);
    free(m);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    cio_sharded_free(s);
    return 0;
}

START_TEST(test_unix_service_hands_connections_to_both_workers)
{
    cio_workers_opts_t wo = {.count = 2};
    unix_args_t u = {.w = cio_workers_new(&wo)};
    char dir[] = "/tmp/cio-sharded-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(u.path, sizeof(u.path), "%s/sock", dir);
    ck_assert_int_eq(cio_run(unix_task, &u, false, NULL), 0);
    ck_assert_int_eq(u.failed, 0);
    ck_assert_uint_eq(u.counts[0], NCONN / 2);
    ck_assert_uint_eq(u.counts[1], NCONN / 2);
    rmdir(dir);
    cio_workers_free(u.w);
}
END_TEST

static int idle_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_sharded_opts_t o = {.idle_timeout = 0.2};
    cio_sharded_t *s = serve(w, "127.0.0.1", &o);
    target_t t = target_of(s);
    int fd = client_ping(&t);
    ck_assert_int_ge(fd, 0);
    double t0 = cio_loop_time(cio_get_running_loop());
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0); /* the server closes the idle connection */
    double dt = cio_loop_time(cio_get_running_loop()) - t0;
    ck_assert(dt >= 0.15 && dt < 3.0);
    close(fd);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    cio_sharded_free(s);
    return 0;
}

START_TEST(test_idle_connections_are_closed_after_the_timeout)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    ck_assert_int_eq(cio_run(idle_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* ---- sockets given by the caller (socket activation, a hand-over) ---------------- */

/* A listening TCP socket on 127.0.0.1 (or ::1), any port, as systemd would pass it. */
static int listening_socket_of(int family)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int rc = family == AF_INET ? bind(fd, (struct sockaddr *)&a, sizeof(a))
                               : bind(fd, (struct sockaddr *)&a6, sizeof(a6));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    return fd;
}

/* Does a connection to @p fd's address complete within a second (the kernel queues it)? */
static bool completes(int fd)
{
    target_t t = {.len = sizeof(t.addr)};
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&t.addr, &t.len), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = connect(c, (struct sockaddr *)&t.addr, t.len);
    struct pollfd p = {.fd = c, .events = POLLOUT};
    bool ok = (rc == 0 || errno == EINPROGRESS) && poll(&p, 1, 1000) == 1;
    int err = 0;
    socklen_t len = sizeof(err);
    ok = ok && getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    close(c);
    return ok;
}

typedef struct given {
    cio_workers_t *w;
    int fds[4];
    size_t nfds, per; /* in groups of per, one a worker */
    bool shared;
    bool owned; /* cio_sharded_owned() before closing: the giver let go of its copies */
    int before; /* a SYN filter on fds[0] before serving, as a stopped owner leaves one */
} given_t;

static int given_task(void *arg, void **result)
{
    given_t *g = arg;
    cio_sharded_opts_t o = {
        .socks = g->fds, .nsocks = g->nfds, .socks_per_worker = g->per, .socks_shared = g->shared};
    cio_sharded_t *s = serve(g->w, "192.0.2.1", &o); /* the address is ignored: nothing binds */
    target_t t = target_of(s);
    target_t mine = {.len = sizeof(mine.addr)};
    getsockname(g->fds[0], (struct sockaddr *)&mine.addr, &mine.len);
    ck_assert_int_eq(memcmp(&t.addr, &mine.addr, t.len), 0);
    /* Each worker serves copies of the group of sockets given for it. */
    size_t per = g->per ? g->per : 1, groups = g->nfds / per;
    for (size_t w = 0; w < 2; w++) {
        int fds[4];
        ck_assert_uint_eq(cio_sharded_sockets(s, w, fds, 4), per);
        for (size_t j = 0; j < per; j++) {
            int given = g->fds[(w % groups) * per + j];
            struct sockaddr_storage a;
            socklen_t len = sizeof(a);
            target_t want = {.len = sizeof(want.addr)};
            ck_assert_int_ne(fds[j], given);
            getsockname(fds[j], (struct sockaddr *)&a, &len);
            getsockname(given, (struct sockaddr *)&want.addr, &want.len);
            ck_assert_int_eq(memcmp(&a, &want.addr, len), 0);
        }
    }
    for (int i = 0; i < 20; i++) {
        target_t c = {.len = sizeof(c.addr)};
        getsockname(g->fds[i % g->nfds], (struct sockaddr *)&c.addr, &c.len);
        int fd = client_ping(&c);
        ck_assert_int_ge(fd, 0);
        close(fd);
    }
    for (size_t w = 0; g->owned && w < 2; w++)
        cio_sharded_owned(s, w);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    cio_sharded_free(s);
    return 0;
}

/* Serve @p nfds sockets of ours (in groups of @p per: IPv4, then IPv6) on 2 workers,
 * then close; returns whether a connection to the first still completes afterwards
 * (it is ours, open). */
static bool serve_given_groups(size_t nfds, size_t per, bool shared, bool filtered)
{
    cio_workers_opts_t wo = {.count = 2};
    given_t g = {.w = cio_workers_new(&wo), .nfds = nfds, .per = per, .shared = shared};
    for (size_t i = 0; i < nfds; i++)
        g.fds[i] = listening_socket_of(per > 1 && i % per ? AF_INET6 : AF_INET);
    if (filtered) { /* what a stopped owner's drain leaves: every SYN dropped */
        struct sock_filter drop[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
        struct sock_fprog prog = {1, drop};
        ck_assert_int_eq(setsockopt(g.fds[0], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)),
                         0);
        ck_assert(!completes(g.fds[0]));
    }
    ck_assert_int_eq(cio_run(given_task, &g, false, NULL), 0);
    bool ok = completes(g.fds[0]);
    for (size_t i = 0; i < nfds; i++)
        close(g.fds[i]);
    cio_workers_free(g.w);
    return ok;
}

static bool serve_given(size_t nfds, bool shared, bool filtered)
{
    return serve_given_groups(nfds, 0, shared, filtered);
}

START_TEST(test_given_sockets_are_served_one_per_worker_and_shared_past_them)
{
    serve_given(2, true, false); /* worker i: socket i */
    serve_given(1, true, false); /* both workers: the one socket */
}
END_TEST

/* One address on both families: each worker serves a group of two sockets. */
START_TEST(test_given_sockets_come_in_groups_per_worker)
{
    serve_given_groups(4, 2, true, false); /* worker i: group i */
    serve_given_groups(2, 2, true, false); /* both workers: the one group */
}
END_TEST

/* host NULL: a socket per family on every worker, and a successor takes them all. */
static int dual_take_over_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_sharded_opts_t o = {0};
    cio_sharded_t *old = serve(w, NULL, &o);
    int before[2][4], after[2][4];
    size_t n[2];
    for (size_t i = 0; i < 2; i++)
        n[i] = cio_sharded_sockets(old, i, before[i], 4);
    o.adopt = old;
    cio_sharded_t *s = serve(w, NULL, &o);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_uint_eq(cio_sharded_sockets(s, i, after[i], 4), n[i]);
        for (size_t j = 0; j < n[i]; j++) {
            struct sockaddr_storage a, b;
            socklen_t la = sizeof(a), lb = sizeof(b);
            getsockname(before[i][j], (struct sockaddr *)&a, &la);
            getsockname(after[i][j], (struct sockaddr *)&b, &lb);
            ck_assert_int_eq(memcmp(&a, &b, la), 0);
        }
    }
    ck_assert_int_eq(await_ok(cio_sharded_close(old)), 0);
    target_t t = target_of(s);
    int fd = client_ping(&t);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    cio_sharded_free(old);
    cio_sharded_free(s);
    return 0;
}

START_TEST(test_a_successor_takes_over_every_family_s_socket)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    ck_assert_int_eq(cio_run(dual_take_over_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

/* systemd keeps its socket for the next run: our close must leave it accepting. */
START_TEST(test_closing_leaves_a_shared_given_socket_unfiltered)
{
    ck_assert(serve_given(1, true, false));
    /* Not shared: the close refuses new connections as it drains (the socket is ours). */
    ck_assert(!serve_given(1, false, false));
}
END_TEST

/* A shared socket whose giver has let go (an old coreiod, once answered) is ours: our
 * close refuses new connections as it drains. */
START_TEST(test_closing_filters_a_shared_socket_once_owned)
{
    cio_workers_opts_t wo = {.count = 2};
    given_t g = {.w = cio_workers_new(&wo), .nfds = 1, .shared = true, .owned = true};
    g.fds[0] = listening_socket_of(AF_INET);
    ck_assert_int_eq(cio_run(given_task, &g, false, NULL), 0);
    ck_assert(!completes(g.fds[0]));
    close(g.fds[0]);
    cio_workers_free(g.w);
}
END_TEST

START_TEST(test_a_filter_left_on_a_given_socket_is_cleared)
{
    ck_assert(serve_given(1, true, true));
}
END_TEST

static int bad_args_task(void *arg, void **result)
{
    cio_workers_t *w = arg;
    cio_sharded_opts_t handoff_udp = {.type = SOCK_DGRAM, .balance = CIO_BALANCE_HANDOFF};
    cio_sharded_opts_t path_reuseport = {.path = "/tmp/x"};
    cio_sharded_opts_t bad_type = {.type = SOCK_RAW};
    cio_sharded_opts_t bad_marks = {.write_high = 10, .write_low = 20};
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &handoff_udp));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, NULL, NULL, &path_reuseport));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &bad_type));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &bad_marks));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", NULL, NULL));
    int minus = -1;
    cio_sharded_opts_t bad_sock = {.socks = &minus, .nsocks = 1};
    cio_sharded_opts_t no_socks = {.nsocks = 1};
    cio_sharded_opts_t proxy_udp = {.type = SOCK_DGRAM,
                                    .proxy = &(cio_proxy_opts_t){.versions = CIO_PROXY_V1}};
    cio_sharded_opts_t no_versions = {.proxy = &(cio_proxy_opts_t){0}};
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &bad_sock));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &no_socks));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &proxy_udp));
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", &no_versions));
    ck_assert_ptr_null(cio_workers_serve(w, NULL, NULL, "127.0.0.1", "0", NULL));
    /* An address nobody can bind fails the whole service. */
    cio_future_t *f = cio_workers_serve(w, echo_factory, NULL, "192.0.2.1", "0", NULL);
    ck_assert_int_eq(cio_await(f, NULL), -EADDRNOTAVAIL);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_bad_arguments_are_refused)
{
    cio_workers_opts_t wo = {.count = 2};
    cio_workers_t *w = cio_workers_new(&wo);
    /* Outside a running loop there is no loop to report to. */
    ck_assert_ptr_null(cio_workers_serve(w, echo_factory, NULL, "127.0.0.1", "0", NULL));
    ck_assert_int_eq(cio_run(bad_args_task, w, false, NULL), 0);
    cio_workers_free(w);
}
END_TEST

static Suite *sharded_suite(void)
{
    Suite *s = suite_create("sharded");
    TCase *tc = cio_test_case("spread");
    CIO_TEST(tc, test_reuseport_spreads_100_connections_over_workers);
    CIO_TEST(tc, test_handoff_gives_each_connection_to_the_least_loaded_worker);
    CIO_TEST(tc, test_unix_service_hands_connections_to_both_workers);
    suite_add_tcase(s, tc);
    tc = cio_test_case("close");
    CIO_TEST(tc, test_closing_a_reuseport_server_under_load_loses_no_connection);
    CIO_TEST(tc, test_closing_a_handoff_server_under_load_loses_no_connection);
    CIO_TEST(tc, test_a_successor_takes_over_reuseport_sockets_under_load_refusing_nothing);
    CIO_TEST(tc, test_a_successor_takes_over_a_handoff_socket_under_load_refusing_nothing);
    CIO_TEST(tc, test_a_successor_takes_over_udp_endpoints_on_the_same_port);
    CIO_TEST(tc, test_idle_connections_are_closed_after_the_timeout);
    suite_add_tcase(s, tc);
    tc = cio_test_case("given");
    CIO_TEST(tc, test_given_sockets_are_served_one_per_worker_and_shared_past_them);
    CIO_TEST(tc, test_given_sockets_come_in_groups_per_worker);
    CIO_TEST(tc, test_a_successor_takes_over_every_family_s_socket);
    CIO_TEST(tc, test_closing_leaves_a_shared_given_socket_unfiltered);
    CIO_TEST(tc, test_closing_filters_a_shared_socket_once_owned);
    CIO_TEST(tc, test_a_filter_left_on_a_given_socket_is_cleared);
    suite_add_tcase(s, tc);
    tc = cio_test_case("misc");
    CIO_TEST(tc, test_udp_service_answers_on_every_worker_socket);
    CIO_TEST(tc, test_udp_workers_strip_a_v2_header_from_each_datagram);
    CIO_TEST(tc, test_bad_arguments_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(sharded_suite)
