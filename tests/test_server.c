/*
 * tests/test_server.c: servers and outgoing connections (SEMANTICS.md
 * "Streams"): which sockets create_server binds and with which options,
 * start_serving, serve_forever, wait_closed and close, errors, Unix servers,
 * wrapping existing sockets; create_connection's errors, address order,
 * happy eyeballs, local address and cancellation; and the accept back-off
 * when the process runs out of descriptors. Raw peers are plain sockets in
 * the same process, polled from the loop.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

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

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

/* Whether this host can use ::1. */
static bool ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* The loopback address of @p family with @p port, in *@p ss; returns its length. */
static socklen_t loopback(int family, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)port);
        return sizeof(*a);
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
    return sizeof(*a);
}

static const char *loopback_name(int family)
{
    return family == AF_INET6 ? "::1" : "127.0.0.1";
}

static int port_of_fd(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int family_of_fd(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    return ss.ss_family;
}

/* The port of the server's first socket, also as a string in @p port. */
static int server_port(cio_server_t *s, char *port, size_t len)
{
    int fd;
    ck_assert_uint_ge(cio_server_sockets(s, &fd, 1), 1);
    int p = port_of_fd(fd);
    snprintf(port, len, "%d", p);
    return p;
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t vl = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &vl), 0);
    return v;
}

/* A socket of @p family bound to loopback @p port and not listening: connections are refused. */
static int reserve_port(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl = loopback(family, port, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A blocking client connected to loopback @p port of @p family (-errno if refused). */
static int raw_connect(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl = loopback(family, port, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* ---- an echo server protocol and a raw client ---------------------------- */

typedef struct srv {
    int accepted, made, lost, lost_errors;
} srv_t;

typedef struct conn {
    cio_protocol_t base;
    cio_transport_t *t;
    srv_t *srv;
} conn_t;

static int conn_made(cio_protocol_t *p, cio_transport_t *t)
{
    conn_t *c = (conn_t *)p;
    c->t = t;
    c->srv->made++;
    return 0;
}

static int conn_data(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(((conn_t *)p)->t, data, len);
}

static void conn_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    c->srv->lost++;
    c->srv->lost_errors += err != 0;
    free(c);
}

static const cio_protocol_ops_t conn_ops = {
    .connection_made = conn_made,
    .connection_lost = conn_lost,
    .data_received = conn_data,
};

static cio_protocol_t *srv_factory(void *arg)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &conn_ops;
    c->srv = arg;
    c->srv->accepted++;
    return &c->base;
}

/* Non-blocking: add what @p fd has to @p buf; whether @p want bytes are there now. */
static bool got_bytes(int fd, char *buf, size_t want, size_t *have)
{
    while (*have < want) {
        ssize_t n = recv(fd, buf + *have, want - *have, MSG_DONTWAIT);
        if (n <= 0)
            break;
        *have += (size_t)n;
    }
    return *have == want;
}

/* Inside a task: @p msg sent on the raw client @p fd comes back. */
static void check_echo(int fd, const char *msg)
{
    size_t len = strlen(msg), have = 0;
    char buf[256] = {0};
    ck_assert_uint_lt(len, sizeof(buf));
    ck_assert_int_eq(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
    WAIT_UNTIL(got_bytes(fd, buf, len, &have));
    ck_assert_str_eq(buf, msg);
}

/* A client protocol that keeps what it receives. */
typedef struct cli {
    cio_protocol_t base;
    cio_transport_t *t;
    char rx[256];
    size_t nrx;
    int made, lost, lost_err;
} cli_t;

static int cli_made(cio_protocol_t *p, cio_transport_t *t)
{
    cli_t *c = (cli_t *)p;
    c->t = t;
    c->made++;
    return 0;
}

static int cli_data(cio_protocol_t *p, const void *data, size_t len)
{
    cli_t *c = (cli_t *)p;
    if (c->nrx + len < sizeof(c->rx)) {
        memcpy(c->rx + c->nrx, data, len);
        c->nrx += len;
    }
    return 0;
}

static void cli_lost(cio_protocol_t *p, int err)
{
    cli_t *c = (cli_t *)p;
    c->lost++;
    c->lost_err = err;
    c->t = NULL;
}

static const cio_protocol_ops_t cli_ops = {
    .connection_made = cli_made,
    .connection_lost = cli_lost,
    .data_received = cli_data,
};

/* Inside a task: close the client transport and wait for its end. */
static void cli_close(cli_t *c)
{
    cio_transport_close(c->t);
    WAIT_UNTIL(c->lost == 1);
}

/* ---- an exception handler that records ----------------------------------- */

typedef struct exc {
    int calls;
    int error;
    char message[256];
} exc_t;

static int exc_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    exc_t *e = arg;
    e->calls++;
    e->error = ctx->error;
    snprintf(e->message, sizeof(e->message), "%s", ctx->message ? ctx->message : "");
    return 0;
}

/* ---- which sockets create_server binds ----------------------------------- */

static int every_family_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s = await_ok(cio_loop_create_server(loop, srv_factory, &srv, NULL, "0", NULL));
    int fds[8];
    size_t n = cio_server_sockets(s, fds, 8);
    ck_assert_uint_le(n, 8);
    int v4 = 0, v6 = 0, clients[8], nclients = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(sockopt_int(fds[i], SOL_SOCKET, SO_ACCEPTCONN), 1);
        int family = family_of_fd(fds[i]);
        if (family == AF_INET6) {
            v6++;
            /* IPv4 has a socket of its own. */
            ck_assert_int_eq(sockopt_int(fds[i], IPPROTO_IPV6, IPV6_V6ONLY), 1);
        } else {
            ck_assert_int_eq(family, AF_INET);
            v4++;
        }
        int c = raw_connect(family, port_of_fd(fds[i]));
        ck_assert_int_ge(c, 0);
        clients[nclients++] = c;
    }
    ck_assert_int_eq(v4, 1);
    ck_assert_int_eq(v6, ipv6_loopback() ? 1 : 0);
    WAIT_UNTIL(srv.made == nclients);
    for (int i = 0; i < nclients; i++)
        close(clients[i]);
    WAIT_UNTIL(srv.lost == nclients);
    cio_server_free(s);
    return 0;
}

START_TEST(test_server_without_host_binds_every_address_family)
{
    ck_assert_int_eq(cio_run(every_family_fn, NULL, false, NULL), 0);
}
END_TEST

/* family and flags go to getaddrinfo: AF_INET alone binds no IPv6 socket. */
static int family_flags_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_opts_t opts = {.family = AF_INET, .flags = AI_NUMERICSERV};
    cio_server_t *s = await_ok(cio_loop_create_server(loop, srv_factory, &srv, NULL, "0", &opts));
    int fds[8];
    size_t n = cio_server_sockets(s, fds, 8);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(family_of_fd(fds[0]), AF_INET);
    cio_server_free(s);
    /* AI_NUMERICSERV refuses a service name. */
    cio_future_t *f = cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "http", &opts);
    ck_assert_int_lt(cio_await(f, NULL), 0);
    cio_future_unref(f);
    return 0;
}

START_TEST(test_server_family_and_flags_reach_name_resolution)
{
    ck_assert_int_eq(cio_run(family_flags_fn, NULL, false, NULL), 0);
}
END_TEST

static int several_hosts_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    bool v6 = ipv6_loopback();
    const char *hosts[] = {"127.0.0.1", v6 ? "::1" : "127.0.0.1"};
    cio_server_opts_t opts = {.hosts = hosts, .nhosts = 2};
    cio_server_t *s = await_ok(cio_loop_create_server(loop, srv_factory, &srv, NULL, "0", &opts));
    int fds[4];
    ck_assert_uint_eq(cio_server_sockets(s, fds, 4), 2);
    ck_assert_int_eq(family_of_fd(fds[0]), AF_INET);
    ck_assert_int_eq(family_of_fd(fds[1]), v6 ? AF_INET6 : AF_INET);
    int c0 = raw_connect(AF_INET, port_of_fd(fds[0]));
    int c1 = raw_connect(family_of_fd(fds[1]), port_of_fd(fds[1]));
    ck_assert_int_ge(c0, 0);
    ck_assert_int_ge(c1, 0);
    check_echo(c0, "zero");
    check_echo(c1, "one");
    ck_assert_int_eq(srv.accepted, 2);
    close(c0);
    close(c1);
    WAIT_UNTIL(srv.lost == 2);
    cio_server_free(s);
    return 0;
}

START_TEST(test_server_binds_a_socket_for_each_of_several_hosts)
{
    ck_assert_int_eq(cio_run(several_hosts_fn, NULL, false, NULL), 0);
}
END_TEST

static int server_sockopt(const cio_server_opts_t *opts, int level, int name)
{
    srv_t srv = {0};
    cio_server_t *s = await_ok(
        cio_loop_create_server(cio_get_running_loop(), srv_factory, &srv, "127.0.0.1", "0", opts));
    int fd;
    ck_assert_uint_eq(cio_server_sockets(s, &fd, 1), 1);
    int v = sockopt_int(fd, level, name);
    cio_server_free(s);
    return v;
}

static int reuse_fn(void *arg, void **result)
{
    ck_assert_int_ne(server_sockopt(NULL, SOL_SOCKET, SO_REUSEADDR), 0);
    cio_server_opts_t opts = {.reuse_address = CIO_ON};
    ck_assert_int_ne(server_sockopt(&opts, SOL_SOCKET, SO_REUSEADDR), 0);
    opts.reuse_address = CIO_OFF;
    ck_assert_int_eq(server_sockopt(&opts, SOL_SOCKET, SO_REUSEADDR), 0);
    return 0;
}

START_TEST(test_so_reuseaddr_is_on_by_default_and_off_with_cio_off)
{
    ck_assert_int_eq(cio_run(reuse_fn, NULL, false, NULL), 0);
}
END_TEST

static int reuse_port_fn(void *arg, void **result)
{
    ck_assert_int_eq(server_sockopt(NULL, SOL_SOCKET, SO_REUSEPORT), 0);
    cio_server_opts_t opts = {.reuse_port = true};
    ck_assert_int_ne(server_sockopt(&opts, SOL_SOCKET, SO_REUSEPORT), 0);
    return 0;
}

START_TEST(test_reuse_port_sets_so_reuseport)
{
    ck_assert_int_eq(cio_run(reuse_port_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * The listen backlog of the socket on @p port as the kernel reports it
 * (ss shows it as Send-Q of a listening socket), or -1 without ss.
 */
static int listen_backlog(int port)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "ss -ltnH 'sport = :%d' 2>/dev/null", port);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char state[32];
    int recvq = -1, sendq = -1;
    int n = fscanf(f, "%31s %d %d", state, &recvq, &sendq);
    pclose(f);
    return n == 3 ? sendq : -1;
}

static int backlog_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_opts_t opts = {.backlog = 5};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &opts));
    ck_assert(cio_server_is_serving(s));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    int c = raw_connect(AF_INET, p);
    ck_assert_int_ge(c, 0);
    check_echo(c, "backlog");
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    int given = listen_backlog(p);
    /* Without asyncio's default, 100. */
    cio_server_t *d =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    int dflt = listen_backlog(server_port(d, port, sizeof(port)));
    if (given >= 0) {
        ck_assert_int_eq(given, 5);
        ck_assert_int_eq(dflt, 100);
    }
    cio_server_free(d);
    cio_server_free(s);
    return 0;
}

START_TEST(test_backlog_is_passed_to_listen_and_defaults_to_100)
{
    ck_assert_int_eq(cio_run(backlog_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- the Server object --------------------------------------------------- */

static int start_serving_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_opts_t opts = {.start_serving = CIO_OFF};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &opts));
    ck_assert(!cio_server_is_serving(s));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    /* A client knocking now is not accepted. */
    struct sockaddr_storage ss;
    socklen_t sl = loopback(AF_INET, p, &ss);
    int early = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(early, 0);
    connect(early, (struct sockaddr *)&ss, sl);
    for (int i = 0; i < 20; i++)
        cio_sleep(0.001);
    ck_assert_int_eq(srv.accepted, 0);
    ck_assert(!cio_server_is_serving(s));
    close(early);

    cio_future_t *f = cio_server_start_serving(s);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_null(await_ok(f));
    ck_assert(cio_server_is_serving(s));
    int c = raw_connect(AF_INET, p);
    ck_assert_int_ge(c, 0);
    check_echo(c, "serving");
    ck_assert_int_ge(srv.accepted, 1);
    /* Again: nothing to do, done at once. */
    ck_assert_ptr_null(await_ok(cio_server_start_serving(s)));
    cio_server_close(s);
    f = cio_server_start_serving(s);
    ck_assert_int_eq(cio_await(f, NULL), CIO_ECLOSED);
    cio_future_unref(f);
    close(c);
    WAIT_UNTIL(srv.lost == srv.accepted);
    cio_server_free(s);
    return 0;
}

START_TEST(test_start_serving_off_defers_accepting_until_start_serving)
{
    ck_assert_int_eq(cio_run(start_serving_fn, NULL, false, NULL), 0);
}
END_TEST

static int serve_forever_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_opts_t opts = {.start_serving = CIO_OFF};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &opts));
    ck_assert(!cio_server_is_serving(s));
    cio_future_t *f = cio_server_serve_forever(s);
    ck_assert_ptr_nonnull(f);
    ck_assert(cio_server_is_serving(s));
    char port[16];
    int c = raw_connect(AF_INET, server_port(s, port, sizeof(port)));
    ck_assert_int_ge(c, 0);
    check_echo(c, "forever");
    /* A second serve_forever while one is pending is refused. */
    cio_future_t *f2 = cio_server_serve_forever(s);
    ck_assert_int_eq(cio_await(f2, NULL), -EBUSY);
    cio_future_unref(f2);
    spin(10);
    ck_assert(!cio_future_done(f));
    cio_server_close(s);
    WAIT_UNTIL(cio_future_done(f));
    ck_assert(cio_future_cancelled(f));
    ck_assert(!cio_server_is_serving(s));
    cio_future_unref(f);
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    return 0;
}

START_TEST(test_serve_forever_stays_pending_until_close_then_ends_cancelled)
{
    ck_assert_int_eq(cio_run(serve_forever_fn, NULL, false, NULL), 0);
}
END_TEST

static int cancel_forever_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    cio_future_t *f = cio_server_serve_forever(s);
    ck_assert(cio_server_is_serving(s));
    ck_assert(cio_future_cancel(f, "stop"));
    WAIT_UNTIL(!cio_server_is_serving(s));
    ck_assert_uint_eq(cio_server_sockets(s, NULL, 0), 0);
    ck_assert_int_eq(raw_connect(AF_INET, p), -ECONNREFUSED);
    ck_assert_int_eq(srv.accepted, 0);
    cio_future_unref(f);
    cio_server_free(s);
    return 0;
}

START_TEST(test_cancelling_serve_forever_closes_the_server)
{
    ck_assert_int_eq(cio_run(cancel_forever_fn, NULL, false, NULL), 0);
}
END_TEST

static int wait_closed_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    int c = raw_connect(AF_INET, server_port(s, port, sizeof(port)));
    ck_assert_int_ge(c, 0);
    WAIT_UNTIL(srv.made == 1);
    ck_assert_uint_eq(cio_server_active_connections(s), 1);
    cio_future_t *w = cio_server_wait_closed(s);
    ck_assert_ptr_nonnull(w);
    spin(5);
    ck_assert(!cio_future_done(w));
    /* Closed, but a connection is still there. */
    cio_server_close(s);
    ck_assert(!cio_server_is_serving(s));
    spin(10);
    ck_assert(!cio_future_done(w));
    /* The connection goes: now the server is done. */
    close(c);
    WAIT_UNTIL(cio_future_done(w));
    ck_assert_int_eq(srv.lost, 1);
    ck_assert_int_eq(cio_future_result(w, NULL), 0);
    cio_future_unref(w);
    w = cio_server_wait_closed(s);
    WAIT_UNTIL(cio_future_done(w));
    ck_assert_int_eq(cio_future_result(w, NULL), 0);
    cio_future_unref(w);
    cio_server_free(s);
    return 0;
}

START_TEST(test_wait_closed_waits_for_close_and_for_accepted_connections)
{
    ck_assert_int_eq(cio_run(wait_closed_fn, NULL, false, NULL), 0);
}
END_TEST

static int close_keeps_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    int c = raw_connect(AF_INET, p);
    ck_assert_int_ge(c, 0);
    check_echo(c, "before close");
    cio_server_close(s);
    cio_server_close(s); /* idempotent */
    ck_assert(!cio_server_is_serving(s));
    ck_assert_uint_eq(cio_server_sockets(s, NULL, 0), 0);
    spin(5);
    check_echo(c, "after close");
    ck_assert_int_eq(raw_connect(AF_INET, p), -ECONNREFUSED);
    ck_assert_int_eq(srv.lost, 0);
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    ck_assert_int_eq(srv.lost_errors, 0);
    cio_server_free(s);
    return 0;
}

START_TEST(test_close_keeps_existing_connections_working)
{
    ck_assert_int_eq(cio_run(close_keeps_fn, NULL, false, NULL), 0);
}
END_TEST

static int in_use_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    server_port(s, port, sizeof(port));
    cio_future_t *f = cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", port, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_await(f, NULL), -EADDRINUSE);
    ck_assert_int_eq(cio_future_error(f), -EADDRINUSE);
    cio_future_unref(f);
    ck_assert(cio_server_is_serving(s));
    cio_server_free(s);
    return 0;
}

START_TEST(test_binding_an_address_in_use_fails_with_eaddrinuse)
{
    ck_assert_int_eq(cio_run(in_use_fn, NULL, false, NULL), 0);
}
END_TEST

typedef struct ticker {
    cio_loop_t *loop;
    cio_future_t *until;
    int ticks;
} ticker_t;

static int tick_cb(void *arg)
{
    ticker_t *t = arg;
    if (cio_future_done(t->until))
        return 0;
    t->ticks++;
    return cio_loop_call_soon(t->loop, tick_cb, t, NULL);
}

static int host_name_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_future_t *f = cio_loop_create_server(loop, srv_factory, &srv, "localhost", "0", NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert(!cio_future_done(f));
    /* The loop goes on with other callbacks while the name is looked up. */
    ticker_t tk = {.loop = loop, .until = f};
    ck_assert_int_eq(cio_loop_call_soon(loop, tick_cb, &tk, NULL), 0);
    cio_server_t *s = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&s), 0);
    ck_assert_int_gt(tk.ticks, 0);
    int fds[4];
    size_t n = cio_server_sockets(s, fds, 4);
    ck_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n && i < 4; i++) {
        int c = raw_connect(family_of_fd(fds[i]), port_of_fd(fds[i]));
        ck_assert_int_ge(c, 0);
        check_echo(c, "localhost");
        close(c);
    }
    WAIT_UNTIL(srv.lost == (int)n);
    cio_server_free(s);
    cio_future_unref(f);
    spin(2);
    return 0;
}

START_TEST(test_a_host_name_resolves_without_blocking_the_loop)
{
    ck_assert_int_eq(cio_run(host_name_fn, NULL, false, NULL), 0);
}
END_TEST

static int unix_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    char dir[] = "/tmp/cio_server_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", dir);
    /* A stale socket file, left by a server that is gone. */
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(bind(stale, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(stale);
    struct stat st;
    ck_assert_int_eq(stat(sun.sun_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));

    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_unix_server(loop, srv_factory, &srv, sun.sun_path, NULL));
    int fd;
    ck_assert_uint_eq(cio_server_sockets(s, &fd, 1), 1);
    ck_assert_int_eq(family_of_fd(fd), AF_UNIX);
    cli_t c = {.base = {&cli_ops}};
    cio_transport_t *t = await_ok(
        cio_loop_create_unix_connection(loop, static_factory, &c.base, sun.sun_path, NULL));
    ck_assert(cio_transport_can_write_eof(t));
    ck_assert_int_eq(cio_transport_write(t, "over unix", 9), 0);
    WAIT_UNTIL(c.nrx == 9);
    ck_assert_str_eq(c.rx, "over unix");
    ck_assert_int_eq(srv.accepted, 1);
    cli_close(&c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    unlink(sun.sun_path);
    ck_assert_int_eq(rmdir(dir), 0);
    return 0;
}

START_TEST(test_unix_server_replaces_a_stale_socket_file_and_round_trips)
{
    ck_assert_int_eq(cio_run(unix_fn, NULL, false, NULL), 0);
}
END_TEST

/* A listening socket on 127.0.0.1 with @p backlog; its port in *@p port. */
static int raw_listener(int backlog, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = loopback(AF_INET, 0, &ss);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&ss, sl), 0);
    ck_assert_int_eq(listen(l, backlog), 0);
    *port = port_of_fd(l);
    return l;
}

static int accepted_socket_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port;
    int l = raw_listener(1, &port);
    int c = raw_connect(AF_INET, port);
    ck_assert_int_ge(c, 0);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    close(l);
    ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    srv_t srv = {0};
    cio_transport_t *t =
        await_ok(cio_loop_connect_accepted_socket(loop, srv_factory, &srv, fd, NULL));
    ck_assert_int_eq(srv.made, 1);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "socket", &info), 0);
    ck_assert_int_eq(info.fd, fd);
    check_echo(c, "wrapped");
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    ck_assert_int_eq(srv.lost_errors, 0);
    return 0;
}

START_TEST(test_connect_accepted_socket_wraps_an_accepted_descriptor)
{
    ck_assert_int_eq(cio_run(accepted_socket_fn, NULL, false, NULL), 0);
}
END_TEST

static int use_sock_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port;
    int l = raw_listener(8, &port);
    /* Should the socket stay blocking, accept() gives up after a second, not never. */
    struct timeval tv = {.tv_sec = 1};
    ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    srv_t srv = {0};
    cio_server_opts_t opts = {.use_sock = true, .sock = l};
    cio_server_t *s = await_ok(cio_loop_create_server(loop, srv_factory, &srv, NULL, NULL, &opts));
    int fd = -1;
    ck_assert_uint_eq(cio_server_sockets(s, &fd, 1), 1);
    ck_assert_int_eq(fd, l);
    ck_assert(cio_server_is_serving(s));
    /* asyncio makes the socket non-blocking: the loop must never wait in accept(). */
    ck_assert_int_ne(fcntl(l, F_GETFL) & O_NONBLOCK, 0);
    int c = raw_connect(AF_INET, port);
    ck_assert_int_ge(c, 0);
    check_echo(c, "existing socket");
    ck_assert_int_eq(srv.accepted, 1);
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    /* The server owned the socket (asyncio closes it with the server). */
    if (fcntl(l, F_GETFD) >= 0)
        close(l);
    return 0;
}

START_TEST(test_use_sock_serves_an_existing_listening_socket)
{
    ck_assert_int_eq(cio_run(use_sock_fn, NULL, false, NULL), 0);
}
END_TEST

/* socks: several listening sockets (two ports here) in one server, each served. */
static int use_socks_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port[2], l[2] = {raw_listener(8, &port[0]), raw_listener(8, &port[1])}, bad[] = {l[0], -1};
    srv_t srv = {0};
    cio_server_opts_t wrong = {.use_sock = true, .socks = bad, .nsocks = 2};
    ck_assert_ptr_null(cio_loop_create_server(loop, srv_factory, &srv, NULL, NULL, &wrong));
    cio_server_opts_t opts = {.use_sock = true, .sock = -1, .socks = l, .nsocks = 2};
    cio_future_t *f = cio_loop_create_server(loop, srv_factory, &srv, NULL, NULL, &opts);
    l[0] = l[1] = -1; /* the array was copied at the call: the caller's is free again */
    cio_server_t *s = await_ok(f);
    int fds[3];
    ck_assert_uint_eq(cio_server_sockets(s, fds, 3), 2);
    for (int i = 0; i < 2; i++) {
        int c = raw_connect(AF_INET, port[i]);
        ck_assert_int_ge(c, 0);
        check_echo(c, "one of two sockets");
        close(c);
    }
    WAIT_UNTIL(srv.lost == 2);
    ck_assert_int_eq(srv.accepted, 2);
    cio_server_free(s);
    return 0;
}

START_TEST(test_use_sock_serves_several_existing_sockets)
{
    ck_assert_int_eq(cio_run(use_socks_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- create_connection --------------------------------------------------- */

static int refused_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port;
    int l = raw_listener(1, &port);
    close(l);
    int r = reserve_port(AF_INET, port);
    ck_assert_int_ge(r, 0);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    cli_t c = {.base = {&cli_ops}};
    cio_future_t *f = cio_loop_create_connection(loop, static_factory, &c, "127.0.0.1", ps, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_await(f, NULL), -ECONNREFUSED);
    const char *msg = cio_future_error_message(f);
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strstr(msg, "127.0.0.1") && strstr(msg, ps), "message: %s", msg);
    ck_assert_int_eq(c.made, 0);
    cio_future_unref(f);
    close(r);
    return 0;
}

START_TEST(test_connection_to_a_closed_port_fails_with_econnrefused_naming_the_address)
{
    ck_assert_int_eq(cio_run(refused_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * A host that resolves to both loopback addresses, in the order create_connection
 * sees them: "localhost" when it has both, else NULL (getaddrinfo's loopback
 * addresses). Returns false when this host cannot give two families.
 */
static bool two_families(const char **host, int *first, int *second)
{
    const char *candidates[] = {"localhost", NULL};
    for (int i = 0; i < 2; i++) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        if (getaddrinfo(candidates[i], "80", &hints, &res) != 0)
            continue;
        bool v4 = false, v6 = false;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            v4 |= ai->ai_family == AF_INET;
            v6 |= ai->ai_family == AF_INET6;
        }
        int f = res->ai_family;
        freeaddrinfo(res);
        if (v4 && v6 && ipv6_loopback()) {
            *host = candidates[i];
            *first = f;
            *second = f == AF_INET ? AF_INET6 : AF_INET;
            return true;
        }
    }
    return false;
}

/*
 * Inside a task: a server on the @p second family's loopback whose port is
 * refused on the @p first family's loopback (*@p reserved, bound and not
 * listening). Returns the port.
 */
static int server_behind_refusal(srv_t *srv, int first, int second, cio_server_t **s, int *reserved)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        *s = await_ok(cio_loop_create_server(cio_get_running_loop(), srv_factory, srv,
                                             loopback_name(second), "0", NULL));
        char ps[16];
        int port = server_port(*s, ps, sizeof(ps));
        *reserved = reserve_port(first, port);
        if (*reserved >= 0)
            return port;
        cio_server_free(*s); /* that port is taken on the other family: another one */
    }
    ck_abort_msg("no port free on both families");
    return -1;
}

static int in_turn_fn(void *arg, void **result)
{
    const char *host;
    int first, second;
    if (!two_families(&host, &first, &second)) {
        fprintf(stderr, "skipped: no host name resolves to both IPv4 and IPv6 loopback\n");
        return 0;
    }
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s;
    int reserved;
    int port = server_behind_refusal(&srv, first, second, &s, &reserved);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    cli_t c = {.base = {&cli_ops}};
    cio_transport_t *t =
        await_ok(cio_loop_create_connection(loop, static_factory, &c, host, ps, NULL));
    /* The first address refused; the second one answered. */
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peername", &info), 0);
    ck_assert_int_eq(info.addr.ss_family, second);
    ck_assert_int_eq(cio_transport_write(t, "second", 6), 0);
    WAIT_UNTIL(c.nrx == 6);
    ck_assert_str_eq(c.rx, "second");
    cli_close(&c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    /* Now both refuse: the error names every address tried. */
    cli_t c2 = {.base = {&cli_ops}};
    cio_future_t *f = cio_loop_create_connection(loop, static_factory, &c2, host, ps, NULL);
    ck_assert_int_eq(cio_await(f, NULL), -ECONNREFUSED);
    const char *msg = cio_future_error_message(f);
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strstr(msg, "127.0.0.1") && strstr(msg, "::1") && strstr(msg, ps), "message: %s",
                  msg);
    cio_future_unref(f);
    close(reserved);
    return 0;
}

START_TEST(test_connection_tries_each_resolved_address_in_turn)
{
    ck_assert_int_eq(cio_run(in_turn_fn, NULL, false, NULL), 0);
}
END_TEST

static int happy_refused_fn(void *arg, void **result)
{
    const char *host;
    int first, second;
    if (!two_families(&host, &first, &second)) {
        fprintf(stderr, "skipped: no host name resolves to both IPv4 and IPv6 loopback\n");
        return 0;
    }
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s;
    int reserved;
    int port = server_behind_refusal(&srv, first, second, &s, &reserved);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    cli_t c = {.base = {&cli_ops}};
    cio_connection_opts_t opts = {.happy_eyeballs_delay = 0.05};
    cio_transport_t *t =
        await_ok(cio_loop_create_connection(loop, static_factory, &c, host, ps, &opts));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peername", &info), 0);
    ck_assert_int_eq(info.addr.ss_family, second);
    ck_assert_int_eq(cio_transport_write(t, "raced", 5), 0);
    WAIT_UNTIL(c.nrx == 5);
    ck_assert_str_eq(c.rx, "raced");
    ck_assert_int_eq(srv.accepted, 1);
    cli_close(&c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    close(reserved);
    return 0;
}

START_TEST(test_happy_eyeballs_connects_when_the_first_address_is_refused)
{
    ck_assert_int_eq(cio_run(happy_refused_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * A listener of @p family on loopback @p port whose accept queue is full, so
 * that a further connect hangs; *@p fillers get the two queued clients.
 * Returns the listener, or -1 when the port is taken.
 */
static int hanging_listener(int family, int port, int fillers[2])
{
    struct sockaddr_storage ss;
    socklen_t sl = loopback(family, port, &ss);
    int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    if (bind(l, (struct sockaddr *)&ss, sl) < 0) {
        close(l);
        return -1;
    }
    ck_assert_int_eq(listen(l, 0), 0);
    sl = loopback(family, port_of_fd(l), &ss);
    for (int i = 0; i < 2; i++) {
        fillers[i] = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fillers[i], 0);
        connect(fillers[i], (struct sockaddr *)&ss, sl);
    }
    return l;
}

static int happy_hang_fn(void *arg, void **result)
{
    const char *host;
    int first, second;
    if (!two_families(&host, &first, &second)) {
        fprintf(stderr, "skipped: no host name resolves to both IPv4 and IPv6 loopback\n");
        return 0;
    }
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s = NULL;
    int fillers[2], l = -1, port = 0;
    for (int attempt = 0; attempt < 20 && l < 0; attempt++) {
        s = await_ok(
            cio_loop_create_server(loop, srv_factory, &srv, loopback_name(second), "0", NULL));
        char tmp[16];
        port = server_port(s, tmp, sizeof(tmp));
        l = hanging_listener(first, port, fillers);
        if (l < 0)
            cio_server_free(s);
    }
    ck_assert_int_ge(l, 0);
    spin(5);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int fds_before = count_fds();
    /* The first address never answers; 50 ms later the second one is tried and wins. */
    cli_t c = {.base = {&cli_ops}};
    cio_connection_opts_t opts = {.happy_eyeballs_delay = 0.05};
    cio_transport_t *t =
        await_ok(cio_loop_create_connection(loop, static_factory, &c, host, ps, &opts));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peername", &info), 0);
    ck_assert_int_eq(info.addr.ss_family, second);
    WAIT_UNTIL(srv.made == 1);
    cli_close(&c);
    WAIT_UNTIL(srv.lost == 1);
    spin(2);
    /* The losing attempt's socket is closed too. */
    ck_assert_int_eq(count_fds(), fds_before);
    cio_server_free(s);
    close(fillers[0]);
    close(fillers[1]);
    close(l);
    return 0;
}

START_TEST(test_happy_eyeballs_races_past_an_address_that_hangs)
{
    ck_assert_int_eq(cio_run(happy_hang_fn, NULL, false, NULL), 0);
}
END_TEST

static int local_addr_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port;
    int l = raw_listener(4, &port);
    /* A local port that is free now. */
    int tmp_port;
    close(raw_listener(1, &tmp_port));
    char ps[16], lps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    snprintf(lps, sizeof(lps), "%d", tmp_port);
    cli_t c = {.base = {&cli_ops}};
    cio_connection_opts_t opts = {.local_host = "127.0.0.1", .local_port = lps};
    cio_transport_t *t =
        await_ok(cio_loop_create_connection(loop, static_factory, &c, "127.0.0.1", ps, &opts));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "sockname", &info), 0);
    struct sockaddr_in *sin = (struct sockaddr_in *)&info.addr;
    ck_assert_int_eq(sin->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(sin->sin_port), tmp_port);
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    /* The server sees the same end. */
    struct sockaddr_in peer;
    socklen_t pl = sizeof(peer);
    int a = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(ntohs(peer.sin_port), tmp_port);
    cli_close(&c);
    close(a);
    close(l);
    return 0;
}

static int conn_use_sock_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int port;
    int l = raw_listener(1, &port);
    int c = raw_connect(AF_INET, port);
    ck_assert_int_ge(c, 0);
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(a, 0);
    close(l);
    /* Should the socket stay blocking, reads give up after a second, not never. */
    struct timeval tv = {.tv_sec = 1};
    ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cli_t cl = {.base = {&cli_ops}};
    cio_connection_opts_t opts = {.use_sock = true, .sock = c};
    cio_transport_t *t =
        await_ok(cio_loop_create_connection(loop, static_factory, &cl, NULL, NULL, &opts));
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "socket", &info), 0);
    ck_assert_int_eq(info.fd, c);
    /* asyncio makes the socket non-blocking: the loop must never wait in recv() or send(). */
    ck_assert_int_ne(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(send(a, "via sock", 8, MSG_NOSIGNAL), 8);
    WAIT_UNTIL(cl.nrx == 8);
    ck_assert_str_eq(cl.rx, "via sock");
    close(a);
    WAIT_UNTIL(cl.lost == 1);
    return 0;
}

START_TEST(test_create_connection_use_sock_wraps_a_connected_socket)
{
    ck_assert_int_eq(cio_run(conn_use_sock_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_local_address_binds_the_local_end)
{
    ck_assert_int_eq(cio_run(local_addr_fn, NULL, false, NULL), 0);
}
END_TEST

static int cancel_connect_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int fillers[2];
    int l = hanging_listener(AF_INET, 0, fillers);
    ck_assert_int_ge(l, 0);
    spin(5);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port_of_fd(l));
    int before = count_fds();
    cli_t c = {.base = {&cli_ops}};
    cio_future_t *f = cio_loop_create_connection(loop, static_factory, &c, "127.0.0.1", ps, NULL);
    ck_assert_ptr_nonnull(f);
    /* The attempt's socket exists and its connect is under way. */
    WAIT_UNTIL(count_fds() == before + 1);
    spin(5);
    ck_assert(!cio_future_done(f));
    ck_assert(cio_future_cancel(f, NULL));
    WAIT_UNTIL(cio_future_done(f));
    ck_assert(cio_future_cancelled(f));
    spin(2);
    ck_assert_int_eq(count_fds(), before);
    ck_assert_int_eq(c.made, 0);
    cio_future_unref(f);
    close(fillers[0]);
    close(fillers[1]);
    close(l);
    return 0;
}

START_TEST(test_cancelling_a_connection_while_connecting_leaves_no_socket_open)
{
    ck_assert_int_eq(cio_run(cancel_connect_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_bad_arguments_return_null)
{
    cio_loop_t *loop = cio_loop_new();
    srv_t srv = {0};
    cio_connection_opts_t neg = {.happy_eyeballs_delay = -1};
    cio_connection_opts_t nan_delay = {.happy_eyeballs_delay = NAN};
    ck_assert_ptr_null(cio_loop_create_connection(NULL, srv_factory, &srv, "127.0.0.1", "1", NULL));
    ck_assert_ptr_null(cio_loop_create_connection(loop, NULL, &srv, "127.0.0.1", "1", NULL));
    ck_assert_ptr_null(cio_loop_create_connection(loop, srv_factory, &srv, NULL, NULL, NULL));
    ck_assert_ptr_null(cio_loop_create_connection(loop, srv_factory, &srv, "127.0.0.1", "1", &neg));
    ck_assert_ptr_null(
        cio_loop_create_connection(loop, srv_factory, &srv, "127.0.0.1", "1", &nan_delay));
    ck_assert_ptr_null(cio_loop_create_unix_connection(loop, srv_factory, &srv, NULL, NULL));
    ck_assert_ptr_null(cio_loop_create_unix_connection(NULL, srv_factory, &srv, "/x", NULL));
    ck_assert_ptr_null(cio_loop_connect_accepted_socket(loop, srv_factory, &srv, -1, NULL));
    ck_assert_ptr_null(cio_loop_create_server(NULL, srv_factory, &srv, "127.0.0.1", "0", NULL));
    ck_assert_ptr_null(cio_loop_create_server(loop, NULL, &srv, "127.0.0.1", "0", NULL));
    ck_assert_ptr_null(cio_loop_create_unix_server(loop, srv_factory, &srv, NULL, NULL));
    ck_assert_ptr_null(cio_loop_create_unix_server(loop, NULL, &srv, "/x", NULL));
    ck_assert_int_eq(srv.accepted, 0);
    cio_loop_free(loop);
}
END_TEST

/* ---- running out of descriptors ------------------------------------------ */

static int emfile_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    exc_t e = {0};
    cio_loop_set_exception_handler(loop, exc_handler, &e);
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char ps[16];
    int port = server_port(s, ps, sizeof(ps));
    struct sockaddr_storage ss;
    socklen_t sl = loopback(AF_INET, port, &ss);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);

    /* No descriptor can be had from here on: the lowest free one is over the limit. */
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = fcntl(c, F_DUPFD_CLOEXEC, 0);
    ck_assert_int_ge(lowest, 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    connect(c, (struct sockaddr *)&ss, sl);
    /* No assertion may fail while the limit is low: Check needs descriptors to report. */
    double until = cio_loop_time(loop) + 5.0;
    while (e.calls == 0 && cio_loop_time(loop) < until)
        cio_sleep(0.001);
    int first_calls = e.calls;
    cio_loop_stats_t st0, st1;
    cio_loop_get_stats(loop, &st0);
    cio_sleep(0.5);
    cio_loop_get_stats(loop, &st1);
    int calls_in_window = e.calls, accepted_in_window = srv.accepted;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);

    ck_assert_int_eq(first_calls, 1);
    ck_assert_str_eq(e.message, "socket.accept() out of system resource");
    ck_assert_int_eq(e.error, -EMFILE);
    /* Paused, not spinning on the ready socket: one report, few iterations. */
    ck_assert_int_eq(calls_in_window, 1);
    ck_assert_int_eq(accepted_in_window, 0);
    ck_assert_uint_lt(st1.iterations - st0.iterations, 1000);
    /* Descriptors are back: the waiting connection is accepted without help. */
    WAIT_UNTIL(srv.made == 1);
    ck_assert_int_eq(e.calls, 1);
    ck_assert(cio_server_is_serving(s));
    close(c);
    WAIT_UNTIL(srv.lost == 1);
    cio_server_free(s);
    cio_loop_set_exception_handler(loop, NULL, NULL);
    return 0;
}

START_TEST(test_accept_backs_off_for_a_second_when_out_of_descriptors)
{
    ck_assert_int_eq(cio_run(emfile_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- coreio's server extensions ------------------------------------------- */

typedef struct handed {
    int fds[4];
    int n;
} handed_t;

static int keep_fd(void *arg, int fd)
{
    handed_t *h = arg;
    h->fds[h->n++] = fd;
    return 0;
}

static int on_accept_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    handed_t h = {0};
    cio_server_opts_t ao = {.on_accept = keep_fd, .on_accept_arg = &h};
    cio_server_t *acceptor =
        await_ok(cio_loop_create_server(loop, NULL, NULL, "127.0.0.1", "0", &ao));
    /* A server with no socket serves what the acceptor got. */
    srv_t srv = {0};
    cio_server_opts_t to = {.use_sock = true, .sock = -1};
    cio_server_t *target =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, NULL, NULL, &to));
    ck_assert_uint_eq(cio_server_sockets(target, NULL, 0), 0);
    char port[16];
    int p = server_port(acceptor, port, sizeof(port));
    int c1 = raw_connect(AF_INET, p), c2 = raw_connect(AF_INET, p);
    WAIT_UNTIL(h.n == 2);
    ck_assert_int_eq(srv.accepted, 0); /* the hook owns them: no protocol yet */
    ck_assert_uint_eq(cio_server_accepted_connections(acceptor), 0);
    ck_assert_int_eq(cio_server_serve_accepted(target, h.fds[0]), 0);
    ck_assert_int_eq(cio_server_serve_accepted(target, h.fds[1]), 0);
    check_echo(c1, "handed over");
    check_echo(c2, "both");
    ck_assert_uint_eq(cio_server_active_connections(target), 2);
    ck_assert_uint_eq(cio_server_accepted_connections(target), 2);
    ck_assert_int_eq(cio_server_serve_accepted(target, -1), -EINVAL);
    ck_assert_int_eq(cio_server_serve_accepted(acceptor, dup(c1)), -EINVAL); /* no factory */
    close(c1);
    WAIT_UNTIL(cio_server_active_connections(target) == 1);
    ck_assert_uint_eq(cio_server_accepted_connections(target), 2);
    cio_server_close(target);
    ck_assert_int_eq(cio_server_serve_accepted(target, dup(c2)), CIO_ECLOSED);
    close(c2);
    await_ok(cio_server_wait_closed(target));
    cio_server_free(acceptor);
    cio_server_free(target);
    return 0;
}

START_TEST(test_on_accept_hands_sockets_to_a_server_without_socket)
{
    ck_assert_int_eq(cio_run(on_accept_fn, NULL, false, NULL), 0);
}
END_TEST

static int close_clients_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    bool abort = arg != NULL;
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = raw_connect(AF_INET, p);
        check_echo(c[i], "hello");
    }
    if (abort)
        cio_server_abort_clients(s);
    else
        cio_server_close_clients(s);
    WAIT_UNTIL(srv.lost == 3);
    ck_assert_int_eq(srv.lost_errors, 0);
    for (int i = 0; i < 3; i++) {
        char b;
        ck_assert_int_le(recv(c[i], &b, 1, 0), 0); /* EOF, or a reset after abort */
        close(c[i]);
    }
    /* The server itself still accepts. */
    int again = raw_connect(AF_INET, p);
    check_echo(again, "still serving");
    close(again);
    WAIT_UNTIL(srv.lost == 4);
    cio_server_free(s);
    return 0;
}

START_TEST(test_close_clients_and_abort_clients_end_every_connection)
{
    ck_assert_int_eq(cio_run(close_clients_fn, NULL, false, NULL), 0);
    ck_assert_int_eq(cio_run(close_clients_fn, (void *)1, false, NULL), 0);
}
END_TEST

static int idle_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_opts_t o = {.idle_timeout = 0.3, .write_high = 1000, .write_low = 100};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &o));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    int busy = raw_connect(AF_INET, p), quiet = raw_connect(AF_INET, p);
    double t0 = cio_loop_time(loop);
    /* Traffic every 0.1 s keeps one connection; the other goes at 0.3 s. */
    while (cio_loop_time(loop) - t0 < 0.6) {
        check_echo(busy, "tick");
        cio_sleep(0.1);
    }
    ck_assert_int_eq(srv.lost, 1);
    ck_assert_int_eq(srv.lost_errors, 1); /* connection_lost(-ETIMEDOUT) */
    char b;
    ck_assert_int_eq(recv(quiet, &b, 1, MSG_DONTWAIT), 0);
    WAIT_UNTIL(srv.lost == 2);
    close(busy);
    close(quiet);
    /* Bad values are refused. */
    cio_server_opts_t bad = {.idle_timeout = -1};
    ck_assert_ptr_null(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &bad));
    bad = (cio_server_opts_t){.write_high = 10, .write_low = 20};
    ck_assert_ptr_null(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", &bad));
    cio_loop_stats_t st;
    cio_loop_get_stats(loop, &st);
    ck_assert_uint_eq(st.connections_accepted, 2);
    ck_assert_uint_ge(st.bytes_in, 6 * 4);
    ck_assert_uint_eq(st.bytes_in, st.bytes_out); /* an echo */
    cio_server_free(s);
    return 0;
}

START_TEST(test_idle_timeout_closes_only_quiet_connections)
{
    ck_assert_int_eq(cio_run(idle_fn, NULL, false, NULL), 0);
}
END_TEST

/* cio_server_reconfigure: later connections get the new idle timeout; earlier ones keep theirs. */
static int reconfigure_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    srv_t srv = {0};
    cio_server_t *s =
        await_ok(cio_loop_create_server(loop, srv_factory, &srv, "127.0.0.1", "0", NULL));
    char port[16];
    int p = server_port(s, port, sizeof(port));
    int before = raw_connect(AF_INET, p);
    check_echo(before, "x");
    ck_assert_int_eq(cio_server_reconfigure(s, &(cio_server_opts_t){.idle_timeout = 0.2}), 0);
    int after = raw_connect(AF_INET, p);
    check_echo(after, "y");
    cio_sleep(0.5);
    char b;
    ck_assert_int_eq(recv(after, &b, 1, MSG_DONTWAIT), 0); /* closed when idle */
    check_echo(before, "z");                               /* still there */
    /* A new backlog reaches listen(2) at once. */
    ck_assert_int_eq(cio_server_reconfigure(s, &(cio_server_opts_t){.backlog = 7}), 0);
    int fd = -1;
    cio_server_sockets(s, &fd, 1);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    ck_assert_uint_eq(ti.tcpi_sacked, 7); /* a listener's backlog */
    /* Bad values change nothing. */
    cio_server_opts_t bad = {.idle_timeout = -1};
    ck_assert_int_eq(cio_server_reconfigure(s, &bad), -EINVAL);
    bad = (cio_server_opts_t){.write_high = 10, .write_low = 20};
    ck_assert_int_eq(cio_server_reconfigure(s, &bad), -EINVAL);
    ck_assert_int_eq(cio_server_reconfigure(s, &(cio_server_opts_t){.backlog = -1}), -EINVAL);
    ck_assert_int_eq(cio_server_reconfigure(NULL, &bad), -EINVAL);
    ck_assert_int_eq(cio_server_reconfigure(s, NULL), -EINVAL);
    close(before);
    close(after);
    WAIT_UNTIL(srv.lost == 2);
    cio_server_free(s);
    return 0;
}

START_TEST(test_reconfigure_applies_to_later_connections_and_the_backlog)
{
    ck_assert_int_eq(cio_run(reconfigure_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * Listening sockets given with use_sock (sock, or socks) are the loop's once
 * a future is returned: a create_server cancelled before its task ran, or
 * on a loop closed first, closes them rather than leaking them.
 */
START_TEST(test_given_sockets_are_closed_when_their_server_never_starts)
{
    int fd[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge((fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), 0);
    cio_loop_t *loop = cio_loop_new();
    cio_server_opts_t o = {.use_sock = true, .sock = fd[0]};
    cio_future_t *f = cio_loop_create_server(loop, static_factory, NULL, NULL, NULL, &o);
    ck_assert_ptr_nonnull(f);
    ck_assert(cio_future_cancel(f, NULL));
    ck_assert_int_eq(cio_loop_run_until_complete(loop, f, NULL), -ECANCELED);
    cio_future_unref(f);
    cio_server_opts_t several = {.use_sock = true, .sock = -1, .socks = fd + 1, .nsocks = 2};
    f = cio_loop_create_server(loop, static_factory, NULL, NULL, NULL, &several);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cio_loop_free(loop), 0); /* before the task ever ran */
    cio_future_unref(f);
    for (int i = 0; i < 3; i++) {
        errno = 0;
        ck_assert_int_eq(fcntl(fd[i], F_GETFD), -1);
        ck_assert_int_eq(errno, EBADF);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = cio_test_case("server");
    CIO_TEST(tc, test_server_without_host_binds_every_address_family);
    CIO_TEST(tc, test_server_family_and_flags_reach_name_resolution);
    CIO_TEST(tc, test_server_binds_a_socket_for_each_of_several_hosts);
    CIO_TEST(tc, test_so_reuseaddr_is_on_by_default_and_off_with_cio_off);
    CIO_TEST(tc, test_reuse_port_sets_so_reuseport);
    CIO_TEST(tc, test_on_accept_hands_sockets_to_a_server_without_socket);
    CIO_TEST(tc, test_close_clients_and_abort_clients_end_every_connection);
    CIO_TEST(tc, test_idle_timeout_closes_only_quiet_connections);
    CIO_TEST(tc, test_reconfigure_applies_to_later_connections_and_the_backlog);
    CIO_TEST(tc, test_backlog_is_passed_to_listen_and_defaults_to_100);
    CIO_TEST(tc, test_start_serving_off_defers_accepting_until_start_serving);
    CIO_TEST(tc, test_serve_forever_stays_pending_until_close_then_ends_cancelled);
    CIO_TEST(tc, test_cancelling_serve_forever_closes_the_server);
    CIO_TEST(tc, test_wait_closed_waits_for_close_and_for_accepted_connections);
    CIO_TEST(tc, test_close_keeps_existing_connections_working);
    CIO_TEST(tc, test_binding_an_address_in_use_fails_with_eaddrinuse);
    CIO_TEST(tc, test_a_host_name_resolves_without_blocking_the_loop);
    CIO_TEST(tc, test_unix_server_replaces_a_stale_socket_file_and_round_trips);
    CIO_TEST(tc, test_connect_accepted_socket_wraps_an_accepted_descriptor);
    CIO_TEST(tc, test_use_sock_serves_an_existing_listening_socket);
    CIO_TEST(tc, test_use_sock_serves_several_existing_sockets);
    CIO_TEST(tc, test_given_sockets_are_closed_when_their_server_never_starts);
    CIO_TEST(tc, test_connection_to_a_closed_port_fails_with_econnrefused_naming_the_address);
    CIO_TEST(tc, test_connection_tries_each_resolved_address_in_turn);
    CIO_TEST(tc, test_happy_eyeballs_connects_when_the_first_address_is_refused);
    CIO_TEST(tc, test_happy_eyeballs_races_past_an_address_that_hangs);
    CIO_TEST(tc, test_create_connection_use_sock_wraps_a_connected_socket);
    CIO_TEST(tc, test_local_address_binds_the_local_end);
    CIO_TEST(tc, test_cancelling_a_connection_while_connecting_leaves_no_socket_open);
    CIO_TEST(tc, test_bad_arguments_return_null);
    CIO_TEST(tc, test_accept_backs_off_for_a_second_when_out_of_descriptors);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
