/*
 * examples/watch_fd.c: asyncio's "Watch a file descriptor for read events":
 * add_reader on one end of a socket pair, the other end written from a
 * call_soon callback.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coreio.h>

static int rsock, wsock;
static cio_loop_t *loop;

static int reader(void *arg)
{
    char data[100];
    ssize_t n = recv(rsock, data, sizeof(data), 0);
    printf("Received: %.*s\n", (int)(n > 0 ? n : 0), data);
    /* We are done: unregister the file descriptor and stop the loop. */
    cio_loop_remove_reader(loop, rsock);
    cio_loop_stop(loop);
    return 0;
}

static int send_abc(void *arg)
{
    return send(wsock, "abc", 3, 0) == 3 ? 0 : -EIO;
}

int main(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 1;
    rsock = sv[0];
    wsock = sv[1];
    loop = cio_new_event_loop();
    /* Register the file descriptor for read events, then simulate the
     * reception of data from the network. */
    cio_loop_add_reader(loop, rsock, reader, NULL);
    cio_loop_call_soon(loop, send_abc, NULL, NULL);
    int rc = cio_loop_run_forever(loop);
    close(rsock);
    close(wsock);
    cio_loop_free(loop);
    return rc < 0;
}
