/*
 * bench/echo_coreio.c: the coreio TCP echo server that bench/echo_run.sh
 * measures beside the raw-epoll, asyncio and uvloop ones: one loop, one
 * protocol per connection that writes back what it reads. With CERT and KEY
 * (PEM) it speaks TLS with a cio_tls_server_context() (bench/tls_run.sh).
 * Usage: echo_coreio PORT [CERT KEY]; prints "listening" once it accepts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

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
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: echo_coreio PORT [CERT KEY]\n");
        return 2;
    }
    int rc = cio_run(serve, argv, false, NULL);
    if (rc < 0)
        fprintf(stderr, "echo_coreio: %s\n", cio_strerror(rc));
    return rc < 0;
}
