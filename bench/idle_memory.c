/*
 * bench/idle_memory.c: heap bytes per idle connection. A coreio server on one
 * loop accepts N connections (default 10,000) from a child process that then
 * sits still; the heap growth measured with mallinfo2() across the accepts,
 * divided by N, is what one idle connection costs: transport, descriptor
 * watch and protocol (the read buffer is per loop). Prints
 * "coreio<TAB>idle_connection_heap<TAB>BYTES<TAB>bytes".
 *
 *     idle_memory [N] [--tls CERT KEY]
 *
 * With --tls the server speaks TLS (cio_tls_server_context() from CERT and
 * KEY) and the child makes a full TLS handshake on each connection, one
 * after the other with blocking OpenSSL calls, then keeps them all, idle.
 * The first WARM connections pay for what OpenSSL sets up once (its
 * algorithm tables, the ticket keys), so the baseline is taken once they are
 * done, and the growth from there, once every handshake is done and the
 * server has nothing left to do, is divided by the connections made since:
 * the SSL object, its session and keys, and coreio's TLS state. Prints
 * "coreio<TAB>idle_tls_connection_heap<TAB>KIB<TAB>KiB".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coreio.h>
#include <coreio/tls.h>

#define WARM 100 /* TLS: connections made before the baseline */

typedef struct idle {
    cio_protocol_t base;
} idle_t;

static size_t made; /* connection_made calls: over TLS, handshakes done */

static int on_made(cio_protocol_t *p, cio_transport_t *t)
{
    made++;
    return 0;
}

static void lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t idle_ops = {.connection_made = on_made, .connection_lost = lost};

static cio_protocol_t *factory(void *arg)
{
    idle_t *p = calloc(1, sizeof(*p));
    if (p)
        p->base.ops = &idle_ops;
    return p ? &p->base : NULL;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* The child's TLS client: no verification (the server is ours), small when idle. */
static SSL_CTX *child_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

/* The child: open @p n connections (over TLS if @p tls) and keep them, idle, until killed. */
static void connect_all(int port, int n, bool tls, int ready_fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL_CTX *ctx = tls ? child_context() : NULL;
    if (tls && !ctx)
        _exit(1);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("idle_memory: connect");
            _exit(1);
        }
        SSL *ssl = tls ? SSL_new(ctx) : NULL;
        if (tls && (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)) {
            fprintf(stderr, "idle_memory: TLS handshake %d failed\n", i);
            _exit(1);
        }
    }
    if (write(ready_fd, "x", 1) != 1)
        _exit(1);
    pause();
    _exit(0);
}

typedef struct run {
    int n;
    const char *cert, *key; /* --tls */
    int port;
    pid_t child;
    cio_server_t *server;
    double per; /* bytes per connection */
} run_t;

/* Listen on 127.0.0.1, a port of the kernel's choosing, over TLS with --tls. */
static int listen_any(run_t *r)
{
    cio_server_opts_t opts = {.backlog = 4096};
    if (r->cert) {
        int rc = cio_tls_server_context(&opts.ssl, r->cert, r->key);
        if (rc < 0)
            return rc;
    }
    cio_loop_t *loop = cio_get_running_loop();
    cio_future_t *f = cio_loop_create_server(loop, factory, NULL, "127.0.0.1", "0", &opts);
    SSL_CTX_free(opts.ssl); /* the server keeps its own reference */
    int rc = f ? cio_await(f, (void **)&r->server) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    int fd;
    cio_server_sockets(r->server, &fd, 1);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    r->port = ntohs(a.sin_port);
    return 0;
}

/*
 * Sleep until @p n connections are made and, if @p ready_fd is not -1, the
 * child says it made all of them. -ECHILD if the child gave up first.
 */
static int wait_made(const run_t *r, size_t n, int ready_fd)
{
    char c;
    while (made < n) {
        if (waitpid(r->child, NULL, WNOHANG) == r->child)
            return -ECHILD; /* it said why on stderr */
        cio_sleep(0.01);
    }
    return ready_fd < 0 || read(ready_fd, &c, 1) == 1 ? 0 : -ECHILD;
}

static int measure(void *arg, void **result)
{
    run_t *r = arg;
    int rc = listen_any(r);
    if (rc < 0)
        return rc;
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return -errno;
    /* Warm up: the per-loop read buffer and tables exist before counting. */
    size_t before = mallinfo2().uordblks, base = 0;
    r->child = fork();
    if (r->child == 0)
        connect_all(r->port, r->n, r->cert != NULL, pipefd[1]);
    if (r->cert && (rc = wait_made(r, WARM, -1)) == 0) {
        base = made; /* OpenSSL's one-time set-up is done */
        before = mallinfo2().uordblks;
    }
    if (rc == 0)
        rc = wait_made(r, (size_t)r->n, r->cert ? pipefd[0] : -1);
    if (rc == 0) {
        cio_sleep(r->cert ? 0.2 : 0.05); /* every connection_made has run, every ticket gone */
        size_t after = mallinfo2().uordblks;
        r->per = (double)(after - before) / (double)((size_t)r->n - base);
    }
    kill(r->child, SIGKILL);
    waitpid(r->child, NULL, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}

int main(int argc, char **argv)
{
    run_t r = {.n = argc > 1 ? atoi(argv[1]) : 10000};
    if (argc == 5 && strcmp(argv[2], "--tls") == 0) {
        r.cert = argv[3];
        r.key = argv[4];
    } else if (argc > 2) {
        fprintf(stderr, "usage: idle_memory [N] [--tls CERT KEY]\n");
        return 2;
    }
    if (r.n <= (r.cert ? WARM : 0)) {
        fprintf(stderr, "idle_memory: N must be above %d\n", r.cert ? WARM : 0);
        return 2;
    }
    raise_fd_limit();
    /* Killing the child resets every connection; over TLS each would be a debug line. */
    cio_log_set_level(CIO_LOG_WARNING);
    int rc = cio_run(measure, &r, false, NULL);
    if (rc < 0) {
        fprintf(stderr, "idle_memory: %s\n", cio_strerror(rc));
        return 1;
    }
    if (r.cert)
        printf("coreio\tidle_tls_connection_heap\t%.1f\tKiB\n", r.per / 1024);
    else
        printf("coreio\tidle_connection_heap\t%zu\tbytes\n", (size_t)r.per);
    return 0;
}
