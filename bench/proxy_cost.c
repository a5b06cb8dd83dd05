/*
 * bench/proxy_cost.c: what reading PROXY protocol headers (coreio/proxy.h)
 * costs, first for the parser alone, then per connection and per datagram
 * end to end.
 *
 *     proxy_cost [--scale S] [--rounds R] [--conns N] [--dgrams N] [--concurrency C]
 *     proxy_cost --parse-only KIND N        (N parses, for callgrind)
 *     proxy_cost --trace KIND N             (N connections or datagrams, for strace
 *                                            and callgrind)
 *
 * The headers (KIND): "v1", a HAProxy v1 line (TCP4, 46 bytes); "v2", a v2
 * PROXY header of the INET family without TLVs (28 bytes); "v2tlv", a v2
 * INET6 header with the ALPN, AUTHORITY and UNIQUE_ID TLVs HAProxy sends
 * (119 bytes); and, end to end only, "none" (a server without .proxy). The
 * datagram kinds "dgram-v2" and "dgram-v2tlv" are the same two v2 headers
 * with the UDP4 (0x12) and UDP6 (0x22) family byte; "dgram-none" sends the
 * payload alone to an endpoint without .proxy.
 *
 * Parse: cio_proxy_parse() of each header in a tight loop of 500,000 calls
 * (times the scale), REPEAT rounds, the median in ns per header.
 *
 * End to end: the main thread runs one loop pinned to CPU 0 with two
 * servers on 127.0.0.1, one plain and one with .proxy (versions ANY,
 * trusted 127.0.0.1/32), both serving a protocol that echoes one line and
 * closes. C client threads pinned to CPU 1 (plain blocking sockets) make N
 * connections in all per case, each: connect, send the header and "ping\n"
 * in one send, read until EOF (the server closes first, so the client side
 * keeps no TIME_WAIT) and check that exactly "ping\n" came back, close.
 * Each round runs the four cases in a rotated order after an unmeasured
 * round; the figure of a case is the median over R rounds of the server
 * thread's CPU time (its CPU clock, pthread_getcpuclockid) per connection,
 * and its ratio to "none" the median of the per-round ratios, so that what
 * the machine does meanwhile falls on both sides of each ratio.
 *
 * Datagrams: the same loop also has two UDP endpoints on 127.0.0.1, one
 * plain and one with .proxy (versions V2, the same trusted range), both
 * sending each datagram's payload back to its sender. Each client thread
 * has a blocking UDP socket connected to one of them and sends N datagrams
 * in all per case, one at a time: the header and a 64-byte payload in one
 * datagram, then it waits for the echo and checks that it is the payload.
 * After the four connection cases each round runs the three datagram cases,
 * rotated too; the figures are as above, per datagram.
 *
 * With --trace the loop runs on the main thread and the clients on others,
 * so `strace -c` without -f, and callgrind's first thread, see the server
 * alone (bench/proxy_run.sh takes the difference of two N to leave out
 * start-up and shutdown).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <coreio.h>

#include "benchutil.h"

#define SERVER_CPU  0
#define CLIENT_CPU  1
#define MAX_CLIENTS 64
#define MAX_ROUNDS  101
#define PARSE_N     500000
#define NKINDS      4 /* connections: none, v1, v2, v2tlv */
#define DGRAM       4 /* the first datagram kind: dgram-none, dgram-v2, dgram-v2tlv */
#define NALL        7
#define MSG         "ping\n"
#define PAYLOAD     64 /* bytes of a datagram after its header */

/* ---- the headers ------------------------------------------------------------------------ */

static const char v1_line[] = "PROXY TCP4 192.0.2.10 198.51.100.7 56324 443\r\n";

/* v2 PROXY, TCP over IPv4: 192.0.2.10:56324 -> 198.51.100.7:443. */
static const uint8_t v2_inet[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
    0x00, 12,   192,  0,    2,    10,   198,  51,   100,  7,    0xdc, 0x04, 0x01, 0xbb,
};

/* The same for a datagram: UDP over IPv4. */
static const uint8_t v2_udp4[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x12,
    0x00, 12,   192,  0,    2,    10,   198,  51,   100,  7,    0xdc, 0x04, 0x01, 0xbb,
};

/* A v2 INET6 header with ALPN "h2", AUTHORITY and a 41-byte UNIQUE_ID, built once;
 * and its copy for a datagram, UDP over IPv6. */
static uint8_t v2_tlv[256], v2_udp6[256];
static size_t v2_tlv_len;

static void put_tlv(uint8_t type, const char *value)
{
    size_t n = strlen(value);
    v2_tlv[v2_tlv_len++] = type;
    v2_tlv[v2_tlv_len++] = (uint8_t)(n >> 8);
    v2_tlv[v2_tlv_len++] = (uint8_t)n;
    memcpy(v2_tlv + v2_tlv_len, value, n);
    v2_tlv_len += n;
}

static void build_v2_tlv(void)
{
    memcpy(v2_tlv, v2_inet, 12);
    v2_tlv[12] = 0x21; /* version 2, PROXY */
    v2_tlv[13] = 0x21; /* TCP over IPv6 */
    v2_tlv_len = 16;
    struct in6_addr src, dst;
    inet_pton(AF_INET6, "2001:db8::10", &src);
    inet_pton(AF_INET6, "2001:db8:1::7", &dst);
    memcpy(v2_tlv + v2_tlv_len, &src, 16);
    memcpy(v2_tlv + v2_tlv_len + 16, &dst, 16);
    memcpy(v2_tlv + v2_tlv_len + 32, v2_inet + 24, 4); /* the same ports */
    v2_tlv_len += 36;
    put_tlv(CIO_PP2_TYPE_ALPN, "h2");
    put_tlv(CIO_PP2_TYPE_AUTHORITY, "www.example.com");
    put_tlv(CIO_PP2_TYPE_UNIQUE_ID, "C0000A0A:DC04_C6336407:01BB_65A1B2C3_0001");
    size_t body = v2_tlv_len - 16;
    v2_tlv[14] = (uint8_t)(body >> 8);
    v2_tlv[15] = (uint8_t)body;
    memcpy(v2_udp6, v2_tlv, v2_tlv_len);
    v2_udp6[13] = 0x22; /* UDP over IPv6 */
}

static const char *const kind_names[NALL] = {"none",       "v1",       "v2",         "v2tlv",
                                             "dgram-none", "dgram-v2", "dgram-v2tlv"};

/* Header @p k (none and dgram-none: empty) into *@p p, *@p n. */
static void header_of(int k, const void **p, size_t *n)
{
    static const void *const bufs[NALL] = {"", v1_line, v2_inet, v2_tlv, "", v2_udp4, v2_udp6};
    size_t lens[NALL] = {0, sizeof(v1_line) - 1, sizeof(v2_inet), v2_tlv_len,
                         0, sizeof(v2_udp4),     v2_tlv_len};
    *p = bufs[k];
    *n = lens[k];
}

static int kind_index(const char *name)
{
    for (int k = 0; k < NALL; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

static void fail(const char *what, int err)
{
    fprintf(stderr, "proxy_cost: %s: %s\n", what, err ? cio_strerror(err) : "failed");
    exit(1);
}

/* ---- parse only ------------------------------------------------------------------------- */

/* @p n parses of header @p k; fails loudly on a wrong length. */
static void parse_n(int k, long n)
{
    const void *p;
    size_t len;
    cio_proxy_header_t h;
    header_of(k, &p, &len);
    for (long i = 0; i < n; i++)
        if (cio_proxy_parse(p, len, CIO_PROXY_ANY, &h) != (ssize_t)len)
            fail(kind_names[k], CIO_EPROXY);
}

static void parse_table(void)
{
    long n = scaled(PARSE_N);
    printf("| header | bytes | ns per cio_proxy_parse() |\n|---|---:|---:|\n");
    for (int k = 1; k < NALL; k++) {
        if (k == DGRAM)
            continue; /* no header */
        double v[REPEAT];
        const void *p;
        size_t len;
        header_of(k, &p, &len);
        parse_n(k, n / 10); /* warm */
        for (int r = 0; r < REPEAT; r++) {
            uint64_t t0 = now_ns();
            parse_n(k, n);
            v[r] = (double)(now_ns() - t0) / (double)n;
        }
        printf("| %s | %zu | %.1f |\n", kind_names[k], len, median(v));
    }
}

/* ---- the server --------------------------------------------------------------------------- */

typedef struct echo {
    cio_protocol_t base;
    cio_transport_t *t;
} echo_t;

static int made(cio_protocol_t *p, cio_transport_t *t)
{
    ((echo_t *)p)->t = t;
    return 0;
}

/* Echo what came; once the line is whole, close (after the write, which the close keeps). */
static int received(cio_protocol_t *p, const void *data, size_t len)
{
    echo_t *e = (echo_t *)p;
    int rc = cio_transport_write(e->t, data, len);
    if (rc == 0 && memchr(data, '\n', len))
        cio_transport_close(e->t);
    return rc;
}

static void lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t echo_ops = {
    .connection_made = made, .data_received = received, .connection_lost = lost};

static cio_protocol_t *factory(void *arg)
{
    echo_t *e = calloc(1, sizeof(*e));
    if (e)
        e->base.ops = &echo_ops;
    return e ? &e->base : NULL;
}

/* A datagram endpoint's: the payload (after the header, if any) back to its sender. */
static int dgram_received(cio_protocol_t *p, const void *data, size_t len,
                          const struct sockaddr *addr, socklen_t addrlen)
{
    return cio_transport_sendto(((echo_t *)p)->t, data, len, addr, addrlen);
}

static const cio_protocol_ops_t dgram_ops = {.connection_made = made,
                                             .datagram_received = dgram_received};

/* An endpoint's protocol is the bench's own (@p arg), for the endpoint's life. */
static cio_protocol_t *dgram_factory(void *arg)
{
    return arg;
}

/* ---- the clients ---------------------------------------------------------------------- */

typedef struct bench {
    int rounds, concurrency;
    long conns, dgrams; /* per case and round, all clients together */
    int trace;          /* --trace: that case alone, once; -1: the timed rounds */
    int ports[4];       /* servers plain and proxy, then endpoints plain and proxy */
    echo_t endpoint[2]; /* the endpoints' protocols */
    pthread_t server;
    cio_loop_t *loop;
    cio_future_t *stop;
    double cpu[NALL][MAX_ROUNDS], wall[NALL][MAX_ROUNDS]; /* ns per connection or datagram */
} bench_t;

typedef struct client {
    const bench_t *b;
    int kind;
    long n;
    int err;
} client_t;

static void pin(pthread_t th, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(th, sizeof(set), &set); /* a machine with one CPU: unpinned */
}

/* One connection: connect, header + MSG in one send, read to EOF; 0 or -errno/-EPROTO. */
static int one_connection(const struct sockaddr_in *sa, const char *out, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    char in[64];
    size_t got = 0;
    ssize_t n = -1;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
    if (rc == 0 && send(fd, out, len, MSG_NOSIGNAL) != (ssize_t)len)
        rc = -EIO;
    while (rc == 0 && (n = recv(fd, in + got, sizeof(in) - got, 0)) > 0)
        got += (size_t)n;
    if (rc == 0 && (n < 0 || got != strlen(MSG) || memcmp(in, MSG, got) != 0))
        rc = n < 0 ? -errno : -EPROTO;
    close(fd);
    return rc;
}

/*
 * @p n datagrams, one at a time: @p out (@p hlen bytes of header, room for
 * PAYLOAD more) with a payload that numbers it, then its echo, checked.
 * 0 or -errno/-EPROTO; -ETIMEDOUT if an echo is 5 s late (a datagram lost).
 */
static int datagrams(const struct sockaddr_in *sa, uint8_t *out, size_t hlen, long n)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 5};
    uint8_t *payload = out + hlen, in[PAYLOAD + 1];
    for (int i = 0; i < PAYLOAD; i++)
        payload[i] = (uint8_t)(i * 7 + 1);
    int rc = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
                     connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0
                 ? -errno
                 : 0;
    for (long i = 0; i < n && rc == 0; i++) {
        memcpy(payload, &i, sizeof(i)); /* a late echo of an earlier one cannot match */
        ssize_t got = -1;
        if (send(fd, out, hlen + PAYLOAD, 0) == (ssize_t)(hlen + PAYLOAD))
            got = recv(fd, in, sizeof(in), 0);
        if (got != PAYLOAD || memcmp(in, payload, PAYLOAD) != 0)
            rc = got >= 0 ? -EPROTO : errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    close(fd);
    return rc;
}

/* The port that serves @p kind. */
static int port_of(const bench_t *b, int kind)
{
    return kind < DGRAM ? b->ports[kind != 0] : b->ports[2 + (kind != DGRAM)];
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    pin(pthread_self(), CLIENT_CPU);
    const void *h;
    size_t hlen;
    header_of(c->kind, &h, &hlen);
    uint8_t out[512];
    memcpy(out, h, hlen);
    memcpy(out + hlen, MSG, strlen(MSG));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sa.sin_port = htons((uint16_t)port_of(c->b, c->kind));
    if (c->kind >= DGRAM)
        c->err = datagrams(&sa, out, hlen, c->n);
    for (long i = 0; c->kind < DGRAM && i < c->n && c->err == 0; i++)
        c->err = one_connection(&sa, (const char *)out, hlen + strlen(MSG));
    return NULL;
}

/* The server thread's CPU time so far, in ns. */
static uint64_t server_cpu_ns(const bench_t *b)
{
    clockid_t id;
    struct timespec ts;
    if (pthread_getcpuclockid(b->server, &id) != 0 || clock_gettime(id, &ts) != 0)
        fail("the server thread's CPU clock", -errno);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * b->conns connections (b->dgrams datagrams) of @p kind by the clients at
 * once; per connection (datagram) into *cpu, *wall.
 */
static void run_case(const bench_t *b, int kind, double *cpu, double *wall)
{
    client_t cs[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    long total = kind < DGRAM ? b->conns : b->dgrams;
    uint64_t c0 = server_cpu_ns(b), t0 = now_ns();
    for (int i = 0; i < b->concurrency; i++) {
        cs[i] = (client_t){b, kind, total / b->concurrency + (i < total % b->concurrency), 0};
        if (pthread_create(&th[i], NULL, client_main, &cs[i]) != 0)
            fail("pthread_create", -EAGAIN);
    }
    for (int i = 0; i < b->concurrency; i++) {
        pthread_join(th[i], NULL);
        if (cs[i].err)
            fail(kind_names[kind], cs[i].err);
    }
    double n = total ? (double)total : 1; /* --trace KIND 0: start-up alone */
    *cpu = (double)(server_cpu_ns(b) - c0) / n;
    *wall = (double)(now_ns() - t0) / n;
}

static int stop_cb(void *arg)
{
    cio_future_set_result(arg, NULL);
    return 0;
}

/* The rounds (or the one traced case), then stop the server's loop. */
static void *driver_main(void *arg)
{
    bench_t *b = arg;
    double cpu, wall;
    if (b->trace >= 0) {
        run_case(b, b->trace, &cpu, &wall);
    } else {
        for (int k = 0; k < NALL; k++) /* warm-up, unmeasured */
            run_case(b, k, &cpu, &wall);
        for (int r = 0; r < b->rounds; r++) {
            for (int j = 0; j < NKINDS; j++) {
                int k = (j + r) % NKINDS; /* each case goes first in turn */
                run_case(b, k, &b->cpu[k][r], &b->wall[k][r]);
            }
            for (int j = 0; j < NALL - DGRAM; j++) {
                int k = DGRAM + (j + r) % (NALL - DGRAM);
                run_case(b, k, &b->cpu[k][r], &b->wall[k][r]);
            }
        }
    }
    if (cio_loop_call_soon_threadsafe(b->loop, stop_cb, b->stop) < 0)
        fail("cannot stop the server", 0);
    return NULL;
}

/* ---- the server's loop ------------------------------------------------------------------ */

/* A server on 127.0.0.1 (any port) with @p o; its port into *@p port. */
static cio_server_t *listen_on(const cio_server_opts_t *o, int *port)
{
    cio_future_t *f =
        cio_loop_create_server(cio_get_running_loop(), factory, NULL, "127.0.0.1", "0", o);
    cio_server_t *s = NULL;
    int rc = f ? cio_await(f, (void **)&s) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0)
        fail("cannot listen on 127.0.0.1", rc);
    int fd;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    if (cio_server_sockets(s, &fd, 1) != 1 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        fail("the server's port", -errno);
    *port = ntohs(sa.sin_port);
    return s;
}

/* A UDP endpoint on 127.0.0.1 (any port) with @p e and @p proxy; its port into *@p port. */
static cio_transport_t *endpoint_on(echo_t *e, const cio_proxy_opts_t *proxy, int *port)
{
    cio_datagram_opts_t o = {.local_host = "127.0.0.1", .local_port = "0", .proxy = proxy};
    e->base.ops = &dgram_ops;
    cio_future_t *f =
        cio_loop_create_datagram_endpoint(cio_get_running_loop(), dgram_factory, e, &o);
    cio_transport_t *t = NULL;
    int rc = f ? cio_await(f, (void **)&t) : -ENOMEM;
    cio_future_unref(f);
    cio_extra_info_t info;
    if (rc == 0)
        rc = cio_transport_get_extra_info(t, "sockname", &info);
    if (rc < 0)
        fail("cannot bind a datagram endpoint to 127.0.0.1", rc);
    *port = ntohs(((const struct sockaddr_in *)&info.addr)->sin_port);
    return t;
}

/* The main task: both servers and both endpoints, the driver thread, and the wait for its end. */
static int serve(void *arg, void **result)
{
    bench_t *b = arg;
    cio_cidr_t local;
    if (cio_cidr_parse("127.0.0.1/32", &local) < 0)
        fail("cio_cidr_parse", -EINVAL);
    cio_proxy_opts_t proxy = {.versions = CIO_PROXY_ANY, .trusted = &local, .ntrusted = 1};
    cio_proxy_opts_t dproxy = {.versions = CIO_PROXY_V2, .trusted = &local, .ntrusted = 1};
    cio_server_opts_t plain_o = {.backlog = 1024}, proxy_o = {.backlog = 1024, .proxy = &proxy};
    cio_server_t *plain = listen_on(&plain_o, &b->ports[0]);
    cio_server_t *px = listen_on(&proxy_o, &b->ports[1]);
    cio_transport_t *dplain = endpoint_on(&b->endpoint[0], NULL, &b->ports[2]);
    cio_transport_t *dpx = endpoint_on(&b->endpoint[1], &dproxy, &b->ports[3]);
    b->loop = cio_get_running_loop();
    b->stop = cio_loop_create_future(b->loop);
    pthread_t driver;
    if (!b->stop || pthread_create(&driver, NULL, driver_main, b) != 0)
        fail("cannot start the clients", -ENOMEM);
    int rc = cio_await(b->stop, NULL);
    pthread_join(driver, NULL);
    cio_future_unref(b->stop);
    cio_server_free(plain);
    cio_server_free(px);
    cio_transport_close(dplain);
    cio_transport_close(dpx);
    cio_sleep(0); /* their closes complete */
    return rc;
}

/* ---- output ----------------------------------------------------------------------------- */

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Kinds [@p from, @p to) per @p what, against @p from: CPU in us (or ns), wall in us. */
static void case_table(const bench_t *b, int from, int to, const char *what, bool us)
{
    printf("| header | server CPU %s/%s | vs none (median of per-round ratios) | "
           "wall us/%s |\n|---|---:|---:|---:|\n",
           us ? "us" : "ns", what, what);
    for (int k = from; k < to; k++) {
        double cpu[MAX_ROUNDS], wall[MAX_ROUNDS], ratio[MAX_ROUNDS];
        for (int r = 0; r < b->rounds; r++) {
            cpu[r] = b->cpu[k][r];
            wall[r] = b->wall[k][r];
            ratio[r] = b->cpu[k][r] / b->cpu[from][r];
        }
        printf("| %s | %.*f | %.3f | %.2f |\n", kind_names[k], us ? 2 : 0,
               median_of(cpu, b->rounds) / (us ? 1e3 : 1), median_of(ratio, b->rounds),
               median_of(wall, b->rounds) / 1e3);
    }
}

/* ---- main ----------------------------------------------------------------------------- */

static long number(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "proxy_cost: %s: \"%s\" is not a number from %ld to %ld\n", what, s, lo,
                hi);
        exit(2);
    }
    return v;
}

/* --parse-only KIND N or --trace KIND N: the kind's index, N into *@p n. */
static int kind_arg(char **argv, int i, int argc, long *n)
{
    int k = i + 2 < argc ? kind_index(argv[i + 1]) : -1;
    if (k < 0) {
        fprintf(stderr,
                "proxy_cost: %s needs a KIND (none, v1, v2, v2tlv, dgram-none, dgram-v2, "
                "dgram-v2tlv) and a count\n",
                argv[i]);
        exit(2);
    }
    *n = number(argv[i + 2], 0, 100000000, argv[i]);
    return k;
}

static int run_server(bench_t *b)
{
    pin(pthread_self(), SERVER_CPU); /* the clients move to CLIENT_CPU themselves */
    b->server = pthread_self();
    int rc = cio_run(serve, b, false, NULL);
    if (rc < 0)
        fail("the server", rc);
    return 0;
}

int main(int argc, char **argv)
{
    bench_t b = {.rounds = 9, .concurrency = 1, .conns = 2000, .dgrams = 5000, .trace = -1};
    int parse_kind = -1;
    long n = 0;
    build_v2_tlv();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--scale") == 0 && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (strcmp(a, "--rounds") == 0)
            b.rounds = (int)number(v, 1, MAX_ROUNDS, a), i++;
        else if (strcmp(a, "--conns") == 0)
            b.conns = number(v, 1, 10000000, a), i++;
        else if (strcmp(a, "--dgrams") == 0)
            b.dgrams = number(v, 1, 100000000, a), i++;
        else if (strcmp(a, "--concurrency") == 0)
            b.concurrency = (int)number(v, 1, MAX_CLIENTS, a), i++;
        else if (strcmp(a, "--parse-only") == 0)
            parse_kind = kind_arg(argv, i, argc, &n), i += 2;
        else if (strcmp(a, "--trace") == 0)
            b.trace = kind_arg(argv, i, argc, &b.conns), b.dgrams = b.conns, i += 2;
        else {
            fprintf(stderr, "usage: proxy_cost [--scale S] [--rounds R] [--conns N] [--dgrams N] "
                            "[--concurrency C] | --parse-only KIND N | --trace KIND N\n");
            return 2;
        }
    }
    if (parse_kind == 0 || parse_kind == DGRAM)
        fail("--parse-only: that kind has no header to parse", -EINVAL);
    if (parse_kind > 0) {
        parse_n(parse_kind, n);
        return 0;
    }
    if (b.trace >= 0)
        return run_server(&b);
    b.conns = scaled(b.conns);
    b.dgrams = scaled(b.dgrams);
    if (b.conns < b.concurrency)
        b.conns = b.concurrency;
    if (b.dgrams < b.concurrency)
        b.dgrams = b.concurrency;
    parse_table();
    printf("\n");
    run_server(&b);
    case_table(&b, 0, NKINDS, "connection", true);
    printf("\n");
    case_table(&b, DGRAM, NALL, "datagram", false);
    return 0;
}
