/*
 * examples/udp_echo_client.c: asyncio's "UDP Echo Client": send "Hello
 * World!" to 127.0.0.1 on the port given (9999 by default), print the echo and
 * close.
 */
#include <stdio.h>
#include <string.h>

#include <coreio.h>

typedef struct echo_client_protocol {
    cio_protocol_t base;
    const char *message;
    cio_transport_t *transport;
    cio_future_t *on_con_lost;
} echo_client_protocol_t;

static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    self->transport = transport;
    printf("Send: %s\n", self->message);
    return cio_transport_sendto(transport, self->message, strlen(self->message), NULL, 0);
}

static int datagram_received(cio_protocol_t *p, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    printf("Received: %.*s\n", (int)len, (const char *)data);
    printf("Close the socket\n");
    cio_transport_close(self->transport);
    return 0;
}

static int error_received(cio_protocol_t *p, int err)
{
    printf("Error received: %s\n", cio_strerror(err));
    return 0;
}

static void connection_lost(cio_protocol_t *p, int err)
{
    printf("Connection closed\n");
    cio_future_set_result(((echo_client_protocol_t *)p)->on_con_lost, NULL);
}

static const cio_protocol_ops_t echo_client_ops = {
    .connection_made = connection_made,
    .datagram_received = datagram_received,
    .error_received = error_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *factory(void *arg)
{
    return arg;
}

static int client(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    echo_client_protocol_t protocol = {
        .base.ops = &echo_client_ops,
        .message = "Hello World!",
        .on_con_lost = cio_loop_create_future(loop),
    };
    cio_datagram_opts_t opts = {.remote_host = "127.0.0.1", .remote_port = arg};
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, factory, &protocol, &opts);
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    if (rc == 0)
        rc = cio_await(protocol.on_con_lost, NULL);
    cio_future_unref(protocol.on_con_lost);
    return rc;
}

int main(int argc, char **argv)
{
    char default_port[] = "9999";
    int rc = cio_run(client, argc > 1 ? argv[1] : default_port, false, NULL);
    if (rc < 0)
        fprintf(stderr, "udp_echo_client: %s\n", cio_strerror(rc));
    return rc < 0;
}
