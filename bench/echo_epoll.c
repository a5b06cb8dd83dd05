/*
 * bench/echo_epoll.c: the physical reference for the TCP echo benchmark
 * (bench/echo_run.sh). A minimal single-threaded echo server on raw epoll, with
 * no framework in the way: its CPU time per request is the floor the event-loop
 * implementations are compared to.
 *
 *     echo_epoll PORT
 *
 * Listens on 127.0.0.1:PORT and prints "listening" once ready. Exits with 0 on
 * SIGTERM or SIGINT.
 *
 * epoll is used level-triggered: each readiness event costs one read() and one
 * write(). Edge-triggered mode would need a second read() that fails with
 * EAGAIN to re-arm the event, an extra system call per request. One 64 KiB
 * buffer serves all connections. When a write is partial, the unsent bytes are
 * copied into the connection's own buffer and the connection waits for EPOLLOUT
 * instead of EPOLLIN: it is not read again until the peer has taken them all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef BUF_SIZE
#define BUF_SIZE (256 * 1024) /* as coreio's and asyncio's read size; -DBUF_SIZE=... */
#endif
#define BACKLOG    128
#define MAX_EVENTS 64

/* Per-descriptor state, indexed by fd; only connections that hit a partial write use it. */
struct conn {
    int open;      /* 1 while fd is an accepted connection */
    size_t len;    /* unsent bytes at the start of pending; 0: waiting for EPOLLIN */
    char *pending; /* BUF_SIZE bytes, allocated on the first partial write */
};

static int epfd;
static struct conn *conns;
static size_t nconns;
static char buf[BUF_SIZE];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Make conns[fd] exist, growing the table (zero-filled) as descriptors get larger. */
static struct conn *conn_slot(int fd)
{
    if ((size_t)fd >= nconns) {
        size_t n = nconns ? nconns : 64;
        while (n <= (size_t)fd)
            n *= 2;
        conns = realloc(conns, n * sizeof(*conns));
        if (conns == NULL)
            die("realloc");
        memset(conns + nconns, 0, (n - nconns) * sizeof(*conns));
        nconns = n;
    }
    return &conns[fd];
}

static void conn_close(int fd)
{
    struct conn *c = &conns[fd];

    /* close() also removes fd from the epoll set: it was never dup()ed. */
    close(fd);
    free(c->pending);
    memset(c, 0, sizeof(*c));
}

/* Switch fd's interest between EPOLLIN and EPOLLOUT. */
static int watch(int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

static int listen_on(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket");
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        die("SO_REUSEADDR");
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind");
    if (listen(fd, BACKLOG) < 0)
        die("listen");
    return fd;
}

/* Accept every pending connection; the listener is level-triggered, so stop at EAGAIN. */
static void accept_all(int lfd)
{
    int one = 1;

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("accept4"); /* e.g. EMFILE: keep serving the others */
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_ctl");
            close(fd);
            continue;
        }
        conn_slot(fd)->open = 1;
    }
}

/*
 * Send len bytes of data and keep the unsent rest at the start of the connection's
 * own buffer (data may point into it). Returns 0 if everything went out, 1 if some
 * is kept, -1 if the connection failed and is closed.
 */
static int send_or_keep(int fd, const char *data, size_t len)
{
    struct conn *c = &conns[fd];
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(fd);
            return -1;
        }
        n = 0;
    }
    if ((size_t)n == len)
        return 0;
    if (c->pending == NULL && (c->pending = malloc(BUF_SIZE)) == NULL)
        die("malloc");
    /* len <= BUF_SIZE: at most one read's worth is ever unsent. */
    memmove(c->pending, data + n, len - n);
    c->len = len - n;
    return 1;
}

/* One readiness event on a connection: echo what arrived, or flush what is pending. */
static void on_conn(int fd)
{
    struct conn *c = &conns[fd];
    int r;

    if (c->len > 0) {
        /* Waiting for EPOLLOUT (or EPOLLERR/EPOLLHUP, which send() reports). */
        r = send_or_keep(fd, c->pending, c->len);
        if (r == 0) {
            c->len = 0;
            if (watch(fd, EPOLLIN) < 0)
                conn_close(fd);
        }
        return;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        r = send_or_keep(fd, buf, n);
        if (r == 1 && watch(fd, EPOLLOUT) < 0)
            conn_close(fd);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        conn_close(fd); /* EOF or error */
    }
}

static void on_stop_signal(int sig)
{
}

int main(int argc, char **argv)
{
    struct epoll_event events[MAX_EVENTS];
    sigset_t stop_signals, wait_mask;

    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /*
     * SIGTERM and SIGINT stay blocked except inside epoll_pwait(), so one that
     * arrives while events are being handled is seen by the next wait and not lost.
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    /* A handler that does nothing: its only job is to make epoll_pwait() fail with EINTR. */
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = listen_on(atoi(argv[1]));
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    printf("listening\n");
    fflush(stdout);

    for (;;) {
        int n = epoll_pwait(epfd, events, MAX_EVENTS, -1, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                break; /* only SIGTERM and SIGINT can interrupt the wait */
            die("epoll_pwait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd)
                accept_all(lfd);
            else if (conns[fd].open)
                on_conn(fd);
        }
    }

    for (size_t fd = 0; fd < nconns; fd++)
        if (conns[fd].open)
            conn_close((int)fd);
    free(conns);
    close(lfd);
    close(epfd);
    return 0;
}
