/*
 * examples/tcp_echo_client.c: asyncio's "TCP Echo Client" (protocols): send
 * "Hello World!" to 127.0.0.1 on the port given (8888 by default), print the
 * answer, and finish when the server closes the connection.
 */
#include <stdio.h>
#include <string.h>

#include <coreio.h>

typedef struct echo_client_protocol {
    cio_protocol_t base;
    const char *message;
    cio_future_t *on_con_lost;
} echo_client_protocol_t;

static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    int rc = cio_transport_write(transport, self->message, strlen(self->message));
    printf("Data sent: '%s'\n", self->message);
    return rc;
}

static int data_received(cio_protocol_t *p, const void *data, size_t len)
{
    printf("Data received: '%.*s'\n", (int)len, (const char *)data);
    return 0;
}

static void connection_lost(cio_protocol_t *p, int err)
{
    echo_client_protocol_t *self = (echo_client_protocol_t *)p;
    printf("The server closed the connection\n");
    cio_future_set_result(self->on_con_lost, NULL);
}

static const cio_protocol_ops_t echo_client_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *echo_client_factory(void *arg)
{
    return arg; /* one connection: the protocol is made in advance */
}

static int client(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    echo_client_protocol_t protocol = {
        .base.ops = &echo_client_ops,
        .message = "Hello World!",
        .on_con_lost = cio_loop_create_future(loop),
    };
    cio_transport_t *transport = NULL;
    cio_future_t *f =
        cio_loop_create_connection(loop, echo_client_factory, &protocol, "127.0.0.1", arg, NULL);
    int rc = cio_await(f, (void **)&transport);
    cio_future_unref(f);
    if (rc == 0)
        rc = cio_await(protocol.on_con_lost, NULL); /* until connection_lost */
    cio_future_unref(protocol.on_con_lost);
    return rc;
}

int main(int argc, char **argv)
{
    char default_port[] = "8888";
    int rc = cio_run(client, argc > 1 ? argv[1] : default_port, false, NULL);
    if (rc < 0)
        fprintf(stderr, "tcp_echo_client: %s\n", cio_strerror(rc));
    return rc < 0;
}
