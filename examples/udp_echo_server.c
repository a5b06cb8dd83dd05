/*
 * examples/udp_echo_server.c: asyncio's "UDP Echo Server": every datagram is
 * sent back to where it came from. Binds 127.0.0.1 on the port given (9999 by
 * default) and serves for an hour.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include <coreio.h>

typedef struct echo_server_protocol {
    cio_protocol_t base;
    cio_transport_t *transport;
} echo_server_protocol_t;

static int connection_made(cio_protocol_t *p, cio_transport_t *transport)
{
    ((echo_server_protocol_t *)p)->transport = transport;
    return 0;
}

static int datagram_received(cio_protocol_t *p, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen)
{
    echo_server_protocol_t *self = (echo_server_protocol_t *)p;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    printf("Received '%.*s' from ('%s', %u)\n", (int)len, (const char *)data, host,
           ntohs(sin->sin_port));
    printf("Send '%.*s' to ('%s', %u)\n", (int)len, (const char *)data, host, ntohs(sin->sin_port));
    fflush(stdout);
    return cio_transport_sendto(self->transport, data, len, addr, addrlen);
}

static const cio_protocol_ops_t echo_server_ops = {
    .connection_made = connection_made,
    .datagram_received = datagram_received,
};

static cio_protocol_t *factory(void *arg)
{
    return arg;
}

static int serve(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    echo_server_protocol_t protocol = {.base.ops = &echo_server_ops};
    printf("Starting UDP server\n");
    fflush(stdout);
    cio_datagram_opts_t opts = {.local_host = "127.0.0.1", .local_port = arg};
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, factory, &protocol, &opts);
    cio_transport_t *transport = NULL;
    int rc = cio_await(f, (void **)&transport);
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    rc = cio_sleep(3600); /* serve for one hour */
    cio_transport_close(transport);
    return rc;
}

int main(int argc, char **argv)
{
    char default_port[] = "9999";
    int rc = cio_run(serve, argc > 1 ? argv[1] : default_port, false, NULL);
    if (rc < 0)
        fprintf(stderr, "udp_echo_server: %s\n", cio_strerror(rc));
    return rc < 0;
}
