/*
 * examples/tcp_echo_server.c: asyncio's "TCP Echo Server" (protocols): each
 * connection's data is echoed back, then the connection is closed. Listens on
 * 127.0.0.1 and the port given (8888 by default) until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <coreio.h>

typedef struct echo_server_protocol {
    cio_protocol_t base;
    cio_transport_t *transport;
} echo_server_protocol_t;

static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    cio_extra_info_t peer;
    char host[INET6_ADDRSTRLEN] = "?";
    if (cio_transport_get_extra_info(transport, "peername", &peer) == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&peer.addr;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        printf("Connection from ('%s', %u)\n", host, ntohs(sin->sin_port));
    }
    self->transport = transport;
    return 0;
}

static int data_received(cio_protocol_t *p, const void *data, size_t len)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    printf("Data received: '%.*s'\n", (int)len, (const char *)data);
    printf("Send: '%.*s'\n", (int)len, (const char *)data);
    int rc = cio_transport_write(self->transport, data, len);
    printf("Close the client socket\n");
    fflush(stdout);
    cio_transport_close(self->transport);
    return rc;
}

static void connection_lost(cio_protocol_t *p, int err)
{
    free(p); /* the last call: the protocol may go */
}

static const cio_protocol_ops_t echo_server_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static cio_protocol_t *echo_server_factory(void *arg)
{
    echo_server_protocol_t *self = calloc(1, sizeof(*self));
    if (self)
        self->base.ops = &echo_server_ops;
    return &self->base;
}

static int serve(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    cio_server_t *server = NULL;
    cio_future_t *f =
        cio_loop_create_server(loop, echo_server_factory, NULL, "127.0.0.1", arg, NULL);
    int rc = f ? cio_await(f, (void **)&server) : -ENOMEM;
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    printf("Serving on 127.0.0.1:%s\n", (const char *)arg);
    fflush(stdout);
    cio_future_t *forever = cio_server_serve_forever(server);
    rc = cio_await(forever, NULL);
    cio_future_unref(forever);
    cio_server_free(server);
    return rc;
}

int main(int argc, char **argv)
{
    char default_port[] = "8888";
    int rc = cio_run(serve, argc > 1 ? argv[1] : default_port, false, NULL);
    if (rc < 0)
        fprintf(stderr, "tcp_echo_server: %s\n", cio_strerror(rc));
    return rc < 0;
}
