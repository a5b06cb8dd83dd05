/*
 * examples/upper_service.c: a complete coreio service, the one README.md's
 * "Write a service" walks through. The "upper" service answers every line
 * with the line in capitals and counts, per worker, the lines it served.
 * The program registers it, builds an app from an ini text with one sharded
 * TCP listener and an admin listener, and runs until SIGINT or SIGTERM.
 *
 *     ./upper_service PORT [ADMIN_PORT]
 *     printf 'hello\n' | socat - TCP:127.0.0.1:PORT      -> HELLO
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <coreio.h>

/* One per worker, made on the worker's own thread: no locks needed. */
typedef struct upper_worker {
    unsigned long lines;
} upper_worker_t;

/* One per connection. */
typedef struct upper_conn {
    cio_protocol_t base; /* first: coreio calls back with this pointer */
    cio_transport_t *transport;
    upper_worker_t *worker;
} upper_conn_t;

static int upper_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((upper_conn_t *)p)->transport = t;
    return 0;
}

static int upper_data(cio_protocol_t *p, const void *data, size_t len)
{
    upper_conn_t *c = (upper_conn_t *)p;
    char out[4096];
    const char *in = data;
    while (len > 0) {
        size_t n = len < sizeof(out) ? len : sizeof(out);
        for (size_t i = 0; i < n; i++) {
            out[i] = (char)toupper((unsigned char)in[i]);
            c->worker->lines += in[i] == '\n';
        }
        int rc = cio_transport_write(c->transport, out, n);
        if (rc < 0)
            return rc; /* the transport closes with this error */
        in += n;
        len -= n;
    }
    return 0;
}

static void upper_lost(cio_protocol_t *p, int err)
{
    free(p); /* connection_lost is the last call */
}

static const cio_protocol_ops_t upper_ops = {
    .connection_made = upper_made,
    .data_received = upper_data,
    .connection_lost = upper_lost,
};

/* The factory runs on the worker that got the connection, with its state. */
static cio_protocol_t *upper_factory(cio_service_ctx_t *ctx)
{
    upper_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &upper_ops;
    c->worker = cio_service_state(ctx);
    return &c->base;
}

static int upper_worker_init(cio_service_ctx_t *ctx, void **state)
{
    *state = calloc(1, sizeof(upper_worker_t));
    return *state ? 0 : -ENOMEM;
}

static void upper_worker_teardown(cio_service_ctx_t *ctx, void *state)
{
    upper_worker_t *w = state;
    printf("a worker served %lu lines\n", w->lines);
    fflush(stdout);
    free(w);
}

static const cio_service_t upper_service = {
    .name = "upper",
    .kinds = CIO_SERVICE_STREAM,
    .factory = upper_factory,
    .start = upper_worker_init,
    .stop = upper_worker_teardown,
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: upper_service PORT [ADMIN_PORT]\n");
        return 2;
    }
    if (cio_service_register(&upper_service) < 0)
        return 1;
    char ini[512];
    snprintf(ini, sizeof(ini),
             "[global]\n"
             "workers = 2\n"
             "admin = %s%s\n"
             "\n"
             "[listener upper]\n"
             "service = upper\n"
             "address = 127.0.0.1:%s\n",
             argc > 2 ? "127.0.0.1:" : "off", argc > 2 ? argv[2] : "", argv[1]);
    char *errors = NULL;
    cio_config_t *cfg = cio_config_parse(ini, "upper.ini", &errors);
    cio_app_opts_t opts = {.name = "upper"};
    cio_app_t *app = cfg ? cio_app_new(cfg, &opts, &errors) : NULL;
    if (!app) {
        fputs(errors ? errors : "out of memory\n", stderr);
        free(errors);
        return 1;
    }
    int rc = cio_app_run(app); /* until SIGINT or SIGTERM */
    cio_app_free(app);
    return rc == 0 ? 0 : 1;
}
