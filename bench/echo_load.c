/*
 * bench/echo_load.c: closed-loop load generator for the TCP echo benchmark
 * (bench/echo_run.sh).
 *
 *     echo_load -p PORT -c CONNS -s MSG_SIZE -d SECONDS [-w WARMUP_SECONDS] [-b]
 *
 * Opens CONNS connections to 127.0.0.1:PORT. Each one sends a MSG_SIZE-byte
 * message, reads the echo back and checks it byte for byte, then sends the next:
 * one message outstanding per connection. Round trips that complete during the
 * warm-up (default 1 s) are not counted; then the ones that complete in the
 * next SECONDS are, and one line of JSON is printed:
 *
 *     {"conns":10,"size":1024,"seconds":5.000,"requests":..,"rps":..,
 *      "p50_us":..,"p99_us":..,"errors":0}
 *
 * "seconds" is the measured window as it really was (it ends at the first
 * epoll_wait() return past the deadline), "rps" is requests / seconds, and the
 * latencies are per round trip, from the send of a message's first byte until
 * its last byte is back (nearest-rank percentiles, exact: every sample is kept).
 * Round trips still in flight at the end are dropped.
 *
 * Exits with 1 on the first error (content mismatch, more bytes than were sent,
 * a connection reset or closed by the server, no round trip at all), after
 * printing the JSON line with "errors" set. Single-threaded, level-triggered
 * epoll; messages are sent with one send() when the socket buffer allows it.
 *
 * -b: busy-poll, call epoll_wait() with a zero timeout instead of sleeping in
 * it. For a generator pinned to a CPU of its own: it then never waits to be
 * woken up, which on a VM can take tens of microseconds per wake-up, so the
 * server rather than the wake-up latency sets the pace.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_CHUNK (256 * 1024)
#define MAX_EVENTS 64

struct conn {
    int fd;
    int want_out;      /* EPOLLOUT is in the interest set: the message is partly sent */
    size_t sent;       /* bytes of the current message sent */
    size_t rcvd;       /* bytes of its echo received and checked */
    uint64_t start_ns; /* when the current message's round trip began */
};

static struct {
    int port, nconns;
    size_t size;
    double seconds, warmup;
    int busy_poll;
} opt = {.warmup = 1.0};

static int epfd;
static unsigned char *pattern; /* the message, opt.size bytes */
static unsigned char *scratch; /* receive buffer shared by all connections */
static uint64_t *lat_ns;       /* round-trip times measured so far */
static size_t nlat, lat_cap;
static int measuring;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s -p PORT -c CONNS -s MSG_SIZE -d SECONDS [-w WARMUP_SECONDS] [-b]\n",
            argv0);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    int ch;
    char *end = NULL;

    while ((ch = getopt(argc, argv, "p:c:s:d:w:b")) != -1) {
        errno = 0;
        switch (ch) {
        case 'p':
            opt.port = (int)strtol(optarg, &end, 10);
            break;
        case 'c':
            opt.nconns = (int)strtol(optarg, &end, 10);
            break;
        case 's':
            opt.size = strtoul(optarg, &end, 10);
            break;
        case 'd':
            opt.seconds = strtod(optarg, &end);
            break;
        case 'w':
            opt.warmup = strtod(optarg, &end);
            break;
        case 'b':
            opt.busy_poll = 1;
            continue; /* no argument to check */
        default:
            usage(argv[0]);
        }
        if (errno != 0 || end == optarg || *end != '\0')
            usage(argv[0]);
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.nconns <= 0 || opt.size == 0 ||
        !(opt.seconds > 0) || !(opt.warmup >= 0))
        usage(argv[0]);
}

/* A fixed pseudo-random message (xorshift32), so that bytes echoed out of order show. */
static void make_pattern(void)
{
    uint32_t x = 2463534242u;

    pattern = malloc(opt.size);
    scratch = malloc(RECV_CHUNK);
    if (pattern == NULL || scratch == NULL) {
        perror("malloc");
        exit(1);
    }
    for (size_t i = 0; i < opt.size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }
}

static int set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Connect (blocking, it is loopback), then switch to non-blocking and watch for input. */
static int conn_open(struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        perror("connect to 127.0.0.1");
        if (c->fd >= 0)
            close(c->fd);
        return -1;
    }
    return 0;
}

/* Send as much of the current message as the socket takes; watch EPOLLOUT for the rest. */
static int conn_send(struct conn *c)
{
    ssize_t n = send(c->fd, pattern + c->sent, opt.size - c->sent, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            perror("send");
            return -1;
        }
        n = 0;
    }
    c->sent += n;
    int want_out = c->sent < opt.size;
    if (want_out != c->want_out) {
        c->want_out = want_out;
        if (set_events(c, want_out ? EPOLLIN | EPOLLOUT : EPOLLIN) < 0) {
            perror("epoll_ctl");
            return -1;
        }
    }
    return 0;
}

static int conn_start(struct conn *c, uint64_t now)
{
    c->sent = c->rcvd = 0;
    c->start_ns = now;
    return conn_send(c);
}

static void record(uint64_t ns)
{
    if (nlat == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
        lat_ns = realloc(lat_ns, lat_cap * sizeof(*lat_ns));
        if (lat_ns == NULL) {
            perror("realloc");
            exit(1);
        }
    }
    lat_ns[nlat++] = ns;
}

/* Read once (level-triggered), check the bytes, and start the next message when complete. */
static int conn_recv(struct conn *c)
{
    size_t want = opt.size - c->rcvd;
    ssize_t n = recv(c->fd, scratch, want < RECV_CHUNK ? want : RECV_CHUNK, 0);

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        fprintf(stderr, "echo_load: %s\n",
                n == 0 ? "connection closed by the server" : strerror(errno));
        return -1;
    }
    if (c->rcvd + n > c->sent) {
        fprintf(stderr, "echo_load: received more bytes than were sent\n");
        return -1;
    }
    if (memcmp(scratch, pattern + c->rcvd, n) != 0) {
        fprintf(stderr, "echo_load: echoed bytes differ from those sent (offset %zu)\n", c->rcvd);
        return -1;
    }
    c->rcvd += n;
    if (c->rcvd < opt.size)
        return 0;
    uint64_t now = now_ns();
    if (measuring)
        record(now - c->start_ns);
    return conn_start(c, now);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile (p in 1..100) of the sorted samples, in microseconds. */
static double percentile_us(size_t p)
{
    size_t rank = (p * nlat + 99) / 100;
    return lat_ns[rank > 0 ? rank - 1 : 0] / 1000.0;
}

/* Run the closed loop until the deadline or the first error; returns the error count. */
static int run(struct conn *conns, uint64_t *window_ns)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t now = now_ns(), t_start = now;
    uint64_t warm_end = now + (uint64_t)(opt.warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt.seconds * 1e9);

    measuring = opt.warmup == 0;
    for (int i = 0; i < opt.nconns; i++)
        if (conn_start(&conns[i], now) < 0)
            return 1;
    while (now < end) {
        uint64_t deadline = measuring ? end : warm_end;
        int timeout_ms = opt.busy_poll ? 0 : (int)((deadline - now + 999999) / 1000000);
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if ((events[i].events & EPOLLOUT) && c->want_out && conn_send(c) < 0)
                return 1;
            if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && conn_recv(c) < 0)
                return 1;
        }
        now = now_ns();
        if (!measuring && now >= warm_end) {
            measuring = 1;
            t_start = now;
        }
        if (measuring)
            *window_ns = now - t_start;
    }
    return 0;
}

/* Print the JSON line; sorts the samples. */
static void print_result(uint64_t window_ns, int errors)
{
    double secs = window_ns / 1e9;

    printf("{\"conns\":%d,\"size\":%zu,\"seconds\":%.3f,\"requests\":%zu,\"rps\":%.1f,", opt.nconns,
           opt.size, secs, nlat, secs > 0 ? nlat / secs : 0.0);
    if (nlat > 0) {
        qsort(lat_ns, nlat, sizeof(*lat_ns), cmp_u64);
        printf("\"p50_us\":%.1f,\"p99_us\":%.1f,", percentile_us(50), percentile_us(99));
    } else {
        printf("\"p50_us\":null,\"p99_us\":null,");
    }
    printf("\"errors\":%d}\n", errors);
}

int main(int argc, char **argv)
{
    uint64_t window_ns = 0;
    int errors = 1, opened = 0;
    struct conn *conns;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    make_pattern();
    conns = calloc(opt.nconns, sizeof(*conns));
    if (conns == NULL || (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("echo_load");
        goto free_memory;
    }
    for (; opened < opt.nconns; opened++)
        if (conn_open(&conns[opened]) < 0)
            goto close_conns;

    errors = run(conns, &window_ns);
    if (errors == 0 && nlat == 0) {
        fprintf(stderr, "echo_load: no round trip completed in the measured window\n");
        errors = 1;
    }
    print_result(window_ns, errors);

close_conns:
    for (int i = 0; i < opened; i++)
        close(conns[i].fd);
    close(epfd);
free_memory:
    free(lat_ns);
    free(conns);
    free(scratch);
    free(pattern);
    return errors ? 1 : 0;
}
