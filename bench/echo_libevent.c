/*
 * bench/echo_libevent.c: a TCP echo server on plain libevent, the loop under
 * coreio, as the reference of the instruction-count comparison
 * (bench/callgrind_echo.sh): what coreio's echo costs above the event library
 * it is built on.
 *
 *     echo_libevent PORT
 *
 * Listens on 127.0.0.1:PORT and prints "listening" once ready; exits with 0
 * on SIGTERM or SIGINT. Written the way a libevent program without bufferevents
 * would be: one persistent read event per connection (event_new with
 * EV_READ | EV_PERSIST), each readiness does one recv() into a 256 KiB buffer
 * shared by every connection and one send() of what came. A write event is
 * armed only when a send() was partial: the unsent bytes are kept and reading
 * stops until they are out, as bench/echo_epoll.c and bench/echo_libuv.c do.
 * TCP_NODELAY is set on every connection.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024) /* as echo_epoll's, echo_libuv's and coreio's read size */
#define BACKLOG  128

/* One accepted connection. */
typedef struct conn {
    int fd;
    struct event *rd; /* persistent read event, pending unless a send is */
    struct event *wr; /* write event, pending only while bytes wait */
    char *pending;    /* those bytes (BUF_SIZE, allocated on the first partial send) */
    size_t off, len;  /* the unsent part of pending */
} conn_t;

static struct event_base *base;
static char buf[BUF_SIZE];

static void conn_free(conn_t *c)
{
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Send what is pending; once it is all out, stop writing and read again. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    ssize_t n = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_free(c);
        return;
    }
    c->off += n > 0 ? (size_t)n : 0;
    if (c->off < c->len)
        return; /* the write event is persistent: wait for more room */
    event_del(c->wr);
    event_add(c->rd, NULL);
}

/* Keep the bytes send() did not take and wait for room instead of reading. */
static int keep_unsent(conn_t *c, const char *data, size_t len)
{
    if (c->pending == NULL && (c->pending = malloc(BUF_SIZE)) == NULL)
        return -1;
    memcpy(c->pending, data, len);
    c->off = 0;
    c->len = len;
    event_del(c->rd);
    return event_add(c->wr, NULL);
}

/* One recv() into the shared buffer, one send() of what came. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_free(c); /* end of stream or an error */
        return;
    }
    ssize_t sent = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN && errno != EINTR) {
        conn_free(c);
        return;
    }
    if (sent < 0)
        sent = 0;
    if (sent < n && keep_unsent(c, buf + sent, (size_t)(n - sent)) < 0)
        conn_free(c);
}

static conn_t *conn_new(int fd)
{
    conn_t *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    if (c->rd == NULL || c->wr == NULL || event_add(c->rd, NULL) < 0) {
        if (c->rd)
            event_free(c->rd);
        if (c->wr)
            event_free(c->wr);
        free(c);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

/* Accept every queued connection; a failure to set one up drops only that one. */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or e.g. EMFILE: keep serving the others */
        if (conn_new(fd) == NULL)
            close(fd);
    }
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(base);
}

static int listen_on(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, BACKLOG) < 0) {
        perror("echo_libevent: listen on 127.0.0.1");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "echo_libevent: event_base_new failed\n");
        return 1;
    }
    int lfd = listen_on(atoi(argv[1]));
    struct event *acc = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    struct event *term = evsignal_new(base, SIGTERM, on_stop_signal, NULL);
    struct event *intr = evsignal_new(base, SIGINT, on_stop_signal, NULL);
    if (acc == NULL || term == NULL || intr == NULL || event_add(acc, NULL) < 0 ||
        event_add(term, NULL) < 0 || event_add(intr, NULL) < 0) {
        fprintf(stderr, "echo_libevent: cannot set up the listener's events\n");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);

    event_base_dispatch(base);
    /* Connections still open are reclaimed by exit; the benchmark closes them first. */
    event_free(acc);
    event_free(term);
    event_free(intr);
    close(lfd);
    event_base_free(base);
    return 0;
}
