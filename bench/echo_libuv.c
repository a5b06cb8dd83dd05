/*
 * bench/echo_libuv.c: a TCP echo server on libuv, the C event loop under
 * uvloop and Node.js, as a peer in the echo benchmark (bench/echo_run.sh).
 *
 *     echo_libuv PORT
 *
 * Built by echo_run.sh with ${CC:-cc} -O2 ... -luv (Debian: libuv1-dev).
 * Listens on 127.0.0.1:PORT and prints "listening" once ready. Exits with 0 on
 * SIGTERM or SIGINT.
 *
 * It does what bench/echo_epoll.c does, the way a libuv program would: one
 * 256 KiB read buffer serves every connection (the alloc callback hands it
 * out, and libuv reads into it just before the read callback), each read is
 * sent back with uv_try_write(), and only bytes the socket did not take are
 * copied into a uv_write() request of their own, while the connection stops
 * reading until that write completes. TCP_NODELAY is set on every connection.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE (256 * 1024) /* as echo_epoll's, coreio's and asyncio's read size */
#define BACKLOG  128

/* One accepted connection; the uv_tcp_t comes first so a handle pointer is one to it. */
struct conn {
    uv_tcp_t tcp;
    uv_write_t req; /* the write of bytes uv_try_write() left, while one is pending */
    char *pending;  /* those bytes (BUF_SIZE, allocated on the first partial write) */
};

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_signal_t sigterm, sigint;
static char buf[BUF_SIZE];

static void die(const char *what, int err)
{
    fprintf(stderr, "echo_libuv: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    *out = uv_buf_init(buf, sizeof(buf));
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    free(c->pending);
    free(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* The rest of a partial write is out: read again. */
static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Echo what arrived: at once if the socket takes it all, else keep the rest. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = (struct conn *)s;

    if (n < 0) { /* UV_EOF or an error */
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0)
        return; /* EAGAIN */
    uv_buf_t out = uv_buf_init(b->base, (unsigned int)n);
    int sent = uv_try_write(s, &out, 1);
    if (sent == UV_EAGAIN)
        sent = 0;
    if (sent < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (sent == n)
        return;
    /* Keep the unsent bytes (at most one read's worth) and stop reading until they are out. */
    if (c->pending == NULL && (c->pending = malloc(BUF_SIZE)) == NULL) {
        fprintf(stderr, "echo_libuv: out of memory\n");
        exit(1);
    }
    memcpy(c->pending, b->base + sent, n - sent);
    out = uv_buf_init(c->pending, (unsigned int)(n - sent));
    uv_read_stop(s);
    c->req.data = c;
    if (uv_write(&c->req, s, &out, 1, on_write) < 0)
        uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct conn *c;

    if (status < 0)
        return; /* e.g. EMFILE: keep serving the others */
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        fprintf(stderr, "echo_libuv: out of memory\n");
        exit(1);
    }
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
}

/* Close every handle; uv_run() then returns once their close callbacks have run. */
static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)&server ? on_close : NULL);
}

static void on_stop_signal(uv_signal_t *sig, int signum)
{
    uv_walk(loop, close_handle, NULL);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    int err;

    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&sigint, on_stop_signal, SIGINT);

    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &sa);
    /* libuv sets SO_REUSEADDR on TCP sockets it binds, as echo_epoll does by hand. */
    if ((err = uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0)) < 0)
        die("bind", err);
    if ((err = uv_listen((uv_stream_t *)&server, BACKLOG, on_connection)) < 0)
        die("listen", err);
    printf("listening\n");
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
