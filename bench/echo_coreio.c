/*
 * bench/echo_coreio.c: the coreio TCP echo server that bench/echo_run.sh
 * measures beside the raw-epoll, asyncio and uvloop ones: one loop, one
 * protocol per connection that writes back what it reads. With CERT and KEY
 * (PEM) it speaks TLS with a cio_tls_server_context() (bench/tls_run.sh).
 * With --udp it is a UDP echo endpoint instead, sending each datagram back
 * to its sender (bench/udp_run.sh).
 * Usage: echo_coreio PORT [CERT KEY] | echo_coreio --udp PORT; prints
 * "listening" once it accepts connections or datagrams.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>
#include <coreio/tls.h>

typedef struct echo {
    cio_protocol_t base;
    cio_transport_t *transport;
} echo_t;

static int made(cio_protocol_t *p, cio_transport_t *t)
{
    ((echo_t *)p)->transport = t;
    return 0;
}

static int received(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(((echo_t *)p)->transport, data, len);
}

static void lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t echo_ops = {
    .connection_made = made,
    .data_received = received,
    .connection_lost = lost,
};

static cio_protocol_t *factory(void *arg)
{
    echo_t *e = calloc(1, sizeof(*e));
    if (e)
        e->base.ops = &echo_ops;
    return e ? &e->base : NULL;
}

static int d_received(cio_protocol_t *p, const void *data, size_t len,
                      const struct sockaddr *addr, socklen_t addrlen)
{
    return cio_transport_sendto(((echo_t *)p)->transport, data, len, addr, addrlen);
}

static const cio_protocol_ops_t udp_ops = {
    .connection_made = made,
    .datagram_received = d_received,
};

static cio_protocol_t *udp_factory(void *arg)
{
    echo_t *e = arg;
    e->base.ops = &udp_ops;
    return &e->base;
}

/* Echo datagrams on 127.0.0.1:@p arg until SIGTERM ends the run. */
static int serve_udp(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    static echo_t echo;
    cio_datagram_opts_t o = {.local_host = "127.0.0.1", .local_port = arg};
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, udp_factory, &echo, &o);
    int rc = f ? cio_await(f, NULL) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    printf("listening\n");
    fflush(stdout);
    cio_future_t *forever = cio_loop_create_future(loop); /* SIGTERM ends the process */
    rc = forever ? cio_await(forever, NULL) : -ENOMEM;
    cio_future_unref(forever);
    return rc;
}

static int serve(void *arg, void **result)
{
    char **argv = arg;
    cio_loop_t *loop = cio_get_running_loop();
    cio_server_opts_t opts = {.backlog = 1024};
    if (argv[2]) {
        /* A load generator that stops resets connections: not worth a debug line each. */
        cio_log_set_level(CIO_LOG_WARNING);
        int rc = cio_tls_server_context(&opts.ssl, argv[2], argv[3]);
        if (rc < 0)
            return rc;
    }
    cio_future_t *f = cio_loop_create_server(loop, factory, NULL, "127.0.0.1", argv[1], &opts);
    SSL_CTX_free(opts.ssl); /* the server holds its own reference */
    cio_server_t *server = NULL;
    int rc = f ? cio_await(f, (void **)&server) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    printf("listening\n");
    fflush(stdout);
    cio_future_t *forever = cio_server_serve_forever(server);
    rc = cio_await(forever, NULL);
    cio_future_unref(forever);
    cio_server_free(server);
    return rc;
}

int main(int argc, char **argv)
{
    bool udp = argc == 3 && strcmp(argv[1], "--udp") == 0;
    if (argc != 2 && argc != 4 && !udp) {
        fprintf(stderr, "usage: echo_coreio PORT [CERT KEY] | echo_coreio --udp PORT\n");
        return 2;
    }
    int rc = udp ? cio_run(serve_udp, argv[2], false, NULL) : cio_run(serve, argv, false, NULL);
    if (rc < 0)
        fprintf(stderr, "echo_coreio: %s\n", cio_strerror(rc));
    return rc < 0;
}
