/*
 * examples/tls_echo_server.c: asyncio's "TCP Echo Server" with ssl=: every
 * connection is TLS (cio_server_opts_t.ssl) and everything a client sends
 * is echoed back until it closes, for as many clients as come. SIGINT or
 * SIGTERM stops the server: it closes its clients (each gets close_notify),
 * waits for them and exits 0.
 *
 *     tls_echo_server --cert server.pem --key server.key [--port 8443] [--host 127.0.0.1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <coreio.h>
#include <coreio/tls.h>

typedef struct echo_options {
    const char *cert;
    const char *key;
    const char *host;
    const char *port;
} echo_options_t;

typedef struct echo_server_protocol {
    cio_protocol_t base;
    cio_transport_t *transport;
    char peer[INET6_ADDRSTRLEN + 8];
    unsigned long long echoed;
} echo_server_protocol_t;

/* The peer's address as "host:port", for the log lines. */
static void describe_peer(cio_transport_t *transport, char *out, size_t size)
{
    cio_extra_info_t info;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    snprintf(out, size, "?");
    if (cio_transport_get_extra_info(transport, "peername", &info) < 0)
        return;
    if (info.addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&info.addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&info.addr;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        port = ntohs(sin->sin_port);
    }
    snprintf(out, size, "%s:%u", host, port);
}

/* Runs once the handshake is done: the protocol never sees a half-made connection. */
static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    cio_extra_info_t cipher;
    self->transport = transport;
    describe_peer(transport, self->peer, sizeof(self->peer));
    if (cio_transport_get_extra_info(transport, "cipher", &cipher) == 0)
        printf("Connection from %s over %s, %s\n", self->peer, cipher.version, cipher.name);
    fflush(stdout);
    return 0;
}

static int data_received(cio_protocol_t *p, const void *data, size_t len)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    self->echoed += len;
    return cio_transport_write(self->transport, data, len);
}

/*
 * A client that sends faster than it reads would grow the write buffer
 * without bound: stop reading while the buffer is above its high-water mark.
 */
static int pause_writing(cio_protocol_t *p)
{
    cio_transport_pause_reading(((echo_server_protocol_t *)p)->transport);
    return 0;
}

static int resume_writing(cio_protocol_t *p)
{
    cio_transport_resume_reading(((echo_server_protocol_t *)p)->transport);
    return 0;
}

/* The client's close_notify: TLS has no half-close, the connection closes (and sends ours). */
static int eof_received(cio_protocol_t *p)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    printf("Close from %s: close_notify received\n", self->peer);
    fflush(stdout);
    return 0;
}

/* Also the one call a connection whose handshake failed gets: the protocol is freed here. */
static void connection_lost(cio_protocol_t *p, int err)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    if (!self->transport)
        printf("No TLS connection: %s (%s)\n", cio_strerror(err), cio_err_name(err));
    else if (err == 0)
        printf("Closed %s cleanly after echoing %llu bytes\n", self->peer, self->echoed);
    else
        printf("Lost %s after echoing %llu bytes: %s (%s)\n", self->peer, self->echoed,
               cio_strerror(err), cio_err_name(err));
    fflush(stdout);
    free(self);
}

static const cio_protocol_ops_t echo_server_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .pause_writing = pause_writing,
    .resume_writing = resume_writing,
    .eof_received = eof_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *echo_server_factory(void *arg)
{
    echo_server_protocol_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->base.ops = &echo_server_ops;
    return &self->base;
}

/* A signal cancels serve_forever, which closes the listening sockets. */
static int ask_exit(void *arg)
{
    printf("Signal received: stopping\n");
    fflush(stdout);
    cio_future_cancel(arg, "signal");
    return 0;
}

/* Stop: close every client (close_notify to each) and wait until all are gone. */
static int stop_server(cio_server_t *server)
{
    cio_server_close(server);
    cio_server_close_clients(server);
    cio_future_t *closed = cio_server_wait_closed(server);
    int rc = closed ? cio_await(closed, NULL) : -ENOMEM;
    cio_future_unref(closed);
    cio_server_free(server);
    printf("Stopped\n");
    fflush(stdout);
    return rc;
}

static int serve_until_signal(cio_loop_t *loop, cio_server_t *server)
{
    cio_future_t *forever = cio_server_serve_forever(server);
    if (!forever)
        return -ENOMEM;
    int rc = cio_loop_add_signal_handler(loop, SIGINT, ask_exit, forever);
    if (rc == 0)
        rc = cio_loop_add_signal_handler(loop, SIGTERM, ask_exit, forever);
    if (rc == 0) {
        rc = cio_await(forever, NULL);
        rc = rc == -ECANCELED ? 0 : rc;
    }
    cio_loop_remove_signal_handler(loop, SIGINT);
    cio_loop_remove_signal_handler(loop, SIGTERM);
    cio_future_unref(forever);
    return rc;
}

static int serve(void *arg, void **result)
{
    const echo_options_t *o = arg;
    cio_loop_t *loop = cio_get_running_loop();
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_server_context(&ctx, o->cert, o->key);
    if (rc < 0) {
        fprintf(stderr, "tls_echo_server: %s / %s: %s\n", o->cert, o->key, cio_strerror(rc));
        return rc;
    }
    cio_server_opts_t opts = {.ssl = ctx};
    cio_server_t *server = NULL;
    cio_future_t *f =
        cio_loop_create_server(loop, echo_server_factory, NULL, o->host, o->port, &opts);
    rc = f ? cio_await(f, (void **)&server) : -ENOMEM;
    cio_future_unref(f);
    SSL_CTX_free(ctx); /* the server keeps its own reference */
    if (rc < 0)
        return rc;
    printf("Serving TLS on %s:%s\n", o->host, o->port);
    fflush(stdout);
    rc = serve_until_signal(loop, server);
    int stop_rc = stop_server(server);
    return rc < 0 ? rc : stop_rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_echo_server --cert FILE --key FILE [--port PORT] [--host HOST]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    echo_options_t o = {.host = "127.0.0.1", .port = "8443"};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.cert = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'p':
            o.port = optarg;
            break;
        case 'H':
            o.host = optarg;
            break;
        default:
            usage();
        }
    }
    if (!o.cert || !o.key || optind != argc)
        usage();
    int rc = cio_run(serve, &o, false, NULL);
    if (rc < 0)
        fprintf(stderr, "tls_echo_server: %s\n", cio_strerror(rc));
    return rc < 0;
}
