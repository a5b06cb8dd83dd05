/*
 * tests/netpeer.c: a coreio program for the interoperability tests
 * (tests/interop.sh), talking to peers nobody here wrote: python3's asyncio,
 * socat, raw sockets. One mode per behaviour:
 *   netpeer unix-echo PATH        echo server on a Unix socket
 *   netpeer unix-client PATH MSG  send MSG, print the reply, finish at EOF
 *   netpeer halfclose PORT        echo; at EOF reply "EOF received" and close
 *   netpeer flood PORT            write to each client until it goes; report
 *                                 pauses, the largest buffer and how it ended
 * Servers print "listening" once they accept, and run until killed; the
 * flood server also exits after its first connection is lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>

typedef struct peer {
    cio_protocol_t base;
    cio_transport_t *t;
    const char *mode;
    size_t max_buffer;
    int pauses, resumes;
    bool paused;
    cio_future_t *done;
} peer_t;

static int made(cio_protocol_t *p, cio_transport_t *t);
static int received(cio_protocol_t *p, const void *data, size_t len);
static int eof(cio_protocol_t *p);
static void lost(cio_protocol_t *p, int err);
static int pause_writing(cio_protocol_t *p);
static int resume_writing(cio_protocol_t *p);

static const cio_protocol_ops_t peer_ops = {
    .connection_made = made,
    .data_received = received,
    .eof_received = eof,
    .connection_lost = lost,
    .pause_writing = pause_writing,
    .resume_writing = resume_writing,
};

static const char *mode;
static cio_future_t *finished;

static cio_protocol_t *factory(void *arg)
{
    peer_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->base.ops = &peer_ops;
    p->mode = mode;
    p->done = arg;
    return &p->base;
}

/* The flood: write 64 KiB blocks until the protocol is paused. */
static void flood(peer_t *p)
{
    static char block[65536];
    while (!p->paused && !cio_transport_is_closing(p->t)) {
        if (cio_transport_write(p->t, block, sizeof(block)) < 0)
            return;
        size_t size = cio_transport_get_write_buffer_size(p->t);
        if (size > p->max_buffer)
            p->max_buffer = size;
    }
}

static int made(cio_protocol_t *proto, cio_transport_t *t)
{
    peer_t *p = (peer_t *)proto;
    p->t = t;
    if (strcmp(p->mode, "flood") == 0)
        flood(p);
    return 0;
}

static int received(cio_protocol_t *proto, const void *data, size_t len)
{
    peer_t *p = (peer_t *)proto;
    if (strcmp(p->mode, "unix-client") == 0) {
        printf("%.*s", (int)len, (const char *)data);
        fflush(stdout);
        return 0;
    }
    return cio_transport_write(p->t, data, len);
}

static int eof(cio_protocol_t *proto)
{
    peer_t *p = (peer_t *)proto;
    if (strcmp(p->mode, "halfclose") == 0) {
        /* Keep the write side open (return > 0), answer, then close. */
        cio_transport_write(p->t, "EOF received", 12);
        cio_transport_close(p->t);
        return 1;
    }
    return 0;
}

static int pause_writing(cio_protocol_t *proto)
{
    peer_t *p = (peer_t *)proto;
    p->paused = true;
    p->pauses++;
    return 0;
}

static int resume_writing(cio_protocol_t *proto)
{
    peer_t *p = (peer_t *)proto;
    p->paused = false;
    p->resumes++;
    flood(p);
    return 0;
}

static void lost(cio_protocol_t *proto, int err)
{
    peer_t *p = (peer_t *)proto;
    if (strcmp(p->mode, "flood") == 0) {
        size_t low, high;
        cio_transport_get_write_buffer_limits(p->t, &low, &high);
        printf("pauses %d resumes %d max_buffer %zu high %zu lost %s\n", p->pauses, p->resumes,
               p->max_buffer, high, err ? cio_err_name(err) : "0");
        fflush(stdout);
    }
    if (p->done && !cio_future_done(p->done))
        cio_future_set_result(p->done, NULL);
    free(p);
}

static int serve(void *arg, void **result)
{
    const char *where = arg;
    cio_loop_t *loop = cio_get_running_loop();
    finished = cio_loop_create_future(loop);
    bool is_unix = strcmp(mode, "unix-echo") == 0;
    void *fa = strcmp(mode, "flood") == 0 ? finished : NULL;
    cio_future_t *f = is_unix ? cio_loop_create_unix_server(loop, factory, fa, where, NULL)
                              : cio_loop_create_server(loop, factory, fa, "127.0.0.1", where, NULL);
    cio_server_t *s = NULL;
    int rc = cio_await(f, (void **)&s);
    cio_future_unref(f);
    if (rc == 0) {
        printf("listening\n");
        fflush(stdout);
        rc = cio_await(finished, NULL);
        cio_server_free(s);
    }
    cio_future_unref(finished);
    return rc;
}

typedef struct client_args {
    const char *path;
    const char *msg;
} client_args_t;

static int client(void *arg, void **result)
{
    client_args_t *a = arg;
    cio_loop_t *loop = cio_get_running_loop();
    cio_future_t *done = cio_loop_create_future(loop);
    cio_future_t *f = cio_loop_create_unix_connection(loop, factory, done, a->path, NULL);
    cio_transport_t *t = NULL;
    int rc = cio_await(f, (void **)&t);
    cio_future_unref(f);
    if (rc == 0) {
        cio_transport_write(t, a->msg, strlen(a->msg));
        cio_transport_write_eof(t);
        rc = cio_await(done, NULL);
    }
    cio_future_unref(done);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: netpeer MODE ARGS (see tests/netpeer.c)\n");
        return 2;
    }
    mode = argv[1];
    int rc;
    if (strcmp(mode, "unix-client") == 0 && argc > 3) {
        client_args_t a = {argv[2], argv[3]};
        rc = cio_run(client, &a, false, NULL);
    } else {
        rc = cio_run(serve, argv[2], false, NULL);
    }
    if (rc < 0)
        fprintf(stderr, "netpeer %s: %s\n", mode, cio_strerror(rc));
    return rc < 0;
}
