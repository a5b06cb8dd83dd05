/*
 * bench/idle_memory.c: heap bytes per idle connection. A coreio server on one
 * loop accepts N connections (default 10,000) from a child process that then
 * sits still; the heap growth measured with mallinfo2() across the accepts,
 * divided by N, is what one idle connection costs: transport, descriptor
 * watch and protocol (the read buffer is per loop). Prints
 * "coreio<TAB>idle_connection_heap<TAB>BYTES<TAB>bytes".
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coreio.h>

typedef struct idle {
    cio_protocol_t base;
} idle_t;

static void lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t idle_ops = {.connection_lost = lost};

static cio_protocol_t *factory(void *arg)
{
    idle_t *p = calloc(1, sizeof(*p));
    if (p)
        p->base.ops = &idle_ops;
    return p ? &p->base : NULL;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* The child: open @p n connections and keep them, idle, until killed. */
static void connect_all(int port, int n, int ready_fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("idle_memory: connect");
            _exit(1);
        }
    }
    if (write(ready_fd, "x", 1) != 1)
        _exit(1);
    pause();
    _exit(0);
}

typedef struct run {
    int n;
    int port;
    pid_t child;
    cio_server_t *server;
    size_t before;
} run_t;

static int measure(void *arg, void **result)
{
    run_t *r = arg;
    cio_loop_t *loop = cio_get_running_loop();
    cio_server_opts_t opts = {.backlog = 4096};
    cio_future_t *f = cio_loop_create_server(loop, factory, NULL, "127.0.0.1", "0", &opts);
    int rc = cio_await(f, (void **)&r->server);
    cio_future_unref(f);
    if (rc < 0)
        return rc;
    int fd;
    cio_server_sockets(r->server, &fd, 1);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return -1;
    /* Warm up: the per-loop read buffer and tables exist before counting. */
    r->before = mallinfo2().uordblks;
    r->child = fork();
    if (r->child == 0)
        connect_all(ntohs(a.sin_port), r->n, pipefd[1]);
    while (cio_server_active_connections(r->server) < (size_t)r->n)
        cio_sleep(0.01);
    cio_sleep(0.05); /* every connection_made has run */
    size_t after = mallinfo2().uordblks;
    *result = (void *)(uintptr_t)((after - r->before) / (size_t)r->n);
    kill(r->child, SIGKILL);
    waitpid(r->child, NULL, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    return 0;
}

int main(int argc, char **argv)
{
    run_t r = {.n = argc > 1 ? atoi(argv[1]) : 10000};
    raise_fd_limit();
    void *per = NULL;
    int rc = cio_run(measure, &r, false, &per);
    if (rc < 0) {
        fprintf(stderr, "idle_memory: %s\n", cio_strerror(rc));
        return 1;
    }
    printf("coreio\tidle_connection_heap\t%zu\tbytes\n", (size_t)(uintptr_t)per);
    return 0;
}
