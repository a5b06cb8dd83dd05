/*
 * examples/tls_echo_client.c: asyncio's "TCP Echo Client" with ssl=: send
 * a message over TLS, print what comes back and, once all of it has, close
 * with close_notify. The server's certificate must chain to the CA file
 * and name the host (or --servername).
 *
 *     tls_echo_client --ca ca.pem [--host 127.0.0.1] [--port 8443] [--servername N] [message]
 *
 * Exits 0 when the whole message came back and the connection ended
 * cleanly, 1 otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>
#include <coreio/tls.h>

typedef struct echo_client_options {
    const char *ca;
    const char *host;
    const char *port;
    const char *servername;
    const char *message;
} echo_client_options_t;

typedef struct echo_client_protocol {
    cio_protocol_t base;
    cio_transport_t *transport;
    const char *message;
    size_t received;
    cio_future_t *on_con_lost;
} echo_client_protocol_t;

/* Runs once the handshake is done and the server's certificate is verified. */
static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    cio_extra_info_t cipher;
    self->transport = transport;
    if (cio_transport_get_extra_info(transport, "cipher", &cipher) == 0)
        printf("Connected over %s, %s\n", cipher.version, cipher.name);
    int rc = cio_transport_write(transport, self->message, strlen(self->message));
    printf("Data sent: '%s'\n", self->message);
    fflush(stdout);
    if (self->message[0] == '\0')
        cio_transport_close(transport);
    return rc;
}

/* Close (sending close_notify) once the whole message has come back. */
static int data_received(cio_protocol_t *p, const void *data, size_t len)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    printf("Data received: '%.*s'\n", (int)len, (const char *)data);
    fflush(stdout);
    self->received += len;
    if (self->received >= strlen(self->message))
        cio_transport_close(self->transport);
    return 0;
}

static int eof_received(cio_protocol_t *p)
{
    printf("The server sent close_notify\n");
    return 0;
}

static void connection_lost(cio_protocol_t *p, int err)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    /* Without a transport the handshake failed: main() reports the error. */
    if (self->transport && err == 0)
        printf("The connection closed cleanly\n");
    else if (self->transport)
        printf("The connection was lost: %s (%s)\n", cio_strerror(err), cio_err_name(err));
    fflush(stdout);
    if (!self->on_con_lost)
        return;
    if (err == 0)
        cio_future_set_result(self->on_con_lost, NULL);
    else
        cio_future_set_error(self->on_con_lost, err, NULL);
}

static const cio_protocol_ops_t echo_client_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .eof_received = eof_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *echo_client_factory(void *arg)
{
    return arg; /* one connection: the protocol is made in advance */
}

/* Connect over TLS and wait until the connection is lost; @p self lives in main(). */
static int echo(cio_loop_t *loop, const echo_client_options_t *o, SSL_CTX *ctx,
                echo_client_protocol_t *self)
{
    cio_connection_opts_t opts = {.ssl = ctx, .server_hostname = o->servername};
    cio_future_t *f =
        cio_loop_create_connection(loop, echo_client_factory, self, o->host, o->port, &opts);
    int rc = f ? cio_await(f, NULL) : -ENOMEM;
    cio_future_unref(f);
    if (rc == 0)
        rc = cio_await(self->on_con_lost, NULL); /* until connection_lost */
    if (rc == 0 && self->received < strlen(self->message))
        rc = -EPROTO;
    return rc;
}

static int client(void *arg, void **result)
{
    const echo_client_options_t *o = ((void **)arg)[0];
    echo_client_protocol_t *self = ((void **)arg)[1];
    cio_loop_t *loop = cio_get_running_loop();
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_client_context(&ctx, o->ca);
    if (rc < 0) {
        fprintf(stderr, "tls_echo_client: %s: %s\n", o->ca, cio_strerror(rc));
        return rc;
    }
    self->on_con_lost = cio_loop_create_future(loop);
    rc = self->on_con_lost ? echo(loop, o, ctx, self) : -ENOMEM;
    SSL_CTX_free(ctx); /* each connection holds its own reference */
    cio_future_unref(self->on_con_lost);
    self->on_con_lost = NULL;
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_echo_client --ca FILE [--host HOST] [--port PORT] "
                    "[--servername NAME] [message]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ca", required_argument, NULL, 'a'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"servername", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    echo_client_options_t o = {.host = "127.0.0.1", .port = "8443", .message = "Hello World!"};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o.ca = optarg;
            break;
        case 'H':
            o.host = optarg;
            break;
        case 'p':
            o.port = optarg;
            break;
        case 's':
            o.servername = optarg;
            break;
        default:
            usage();
        }
    }
    if (!o.ca || argc - optind > 1)
        usage();
    if (optind < argc)
        o.message = argv[optind];
    /* The protocol outlives the task: a failed handshake may still report to it. */
    echo_client_protocol_t protocol = {.base.ops = &echo_client_ops, .message = o.message};
    void *args[2] = {&o, &protocol};
    int rc = cio_run(client, args, false, NULL);
    if (rc < 0)
        fprintf(stderr, "tls_echo_client: %s (%s)\n", cio_strerror(rc), cio_err_name(rc));
    return rc < 0;
}
