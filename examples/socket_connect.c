/*
 * examples/socket_connect.c: asyncio's "Register an open socket to wait for
 * data using a protocol": create_connection on one end of a socket pair
 * (use_sock), data written to the other end.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coreio.h>

typedef struct my_protocol {
    cio_protocol_t base;
    cio_transport_t *transport;
    cio_future_t *on_con_lost;
} my_protocol_t;

static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    ((my_protocol_t *)p)->transport = transport;
    return 0;
}

static int data_received(cio_protocol_t *p, const void *data, size_t len)
{
    printf("Received: %.*s\n", (int)len, (const char *)data);
    /* We are done: close the transport; connection_lost() will be called. */
    cio_transport_close(((my_protocol_t *)p)->transport);
    return 0;
}

static void connection_lost(cio_protocol_t *p, int err)
{
    cio_future_set_result(((my_protocol_t *)p)->on_con_lost, NULL);
}

static const cio_protocol_ops_t my_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *factory(void *arg)
{
    return arg;
}

static int wsock;

static int send_abc(void *arg)
{
    return send(wsock, "abc", 3, 0) == 3 ? 0 : -EIO;
}

static int wait_for_data(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    wsock = sv[1];
    my_protocol_t protocol = {.base.ops = &my_ops, .on_con_lost = cio_loop_create_future(loop)};
    /* Register the open socket to wait for data. */
    cio_connection_opts_t opts = {.use_sock = true, .sock = sv[0]};
    cio_future_t *f = cio_loop_create_connection(loop, factory, &protocol, NULL, NULL, &opts);
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    /* Simulate the reception of data from the network. */
    if (rc == 0)
        rc = cio_loop_call_soon(loop, send_abc, NULL, NULL);
    if (rc == 0)
        rc = cio_await(protocol.on_con_lost, NULL);
    cio_future_unref(protocol.on_con_lost);
    close(wsock);
    return rc;
}

int main(void)
{
    int rc = cio_run(wait_for_data, NULL, false, NULL);
    if (rc < 0)
        fprintf(stderr, "socket_connect: %s\n", cio_strerror(rc));
    return rc < 0;
}
