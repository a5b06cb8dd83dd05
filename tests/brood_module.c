/*
 * tests/brood_module.c: the module tests/coreiod_children.sh loads. Its
 * service "brood" starts `count` children on each worker, each running
 * `command` with /bin/sh (cio_service_subprocess_shell()), and logs each
 * child's pid; "brood2" is the same service under another name, so that one
 * can be removed by a reload while the other runs on.
 */
#include <errno.h>
#include <stdlib.h>

#include <coreio.h>

typedef struct child {
    cio_protocol_t base;
    cio_service_ctx_t *ctx;
} child_t;

static int child_made(cio_protocol_t *p, cio_transport_t *t)
{
    child_t *c = (child_t *)p;
    pid_t pid = cio_subprocess_get_pid(cio_subprocess_from_transport(t));
    cio_service_log(c->ctx, CIO_LOG_INFO, "child process %d started", (int)pid);
    return 0;
}

static void child_lost(cio_protocol_t *p, int err)
{
    free(p); /* the last call: the child is reaped and its pipes are closed */
}

static const cio_protocol_ops_t child_ops = {.connection_made = child_made,
                                             .connection_lost = child_lost};

static cio_protocol_t *child_factory(void *arg)
{
    child_t *c = calloc(1, sizeof(*c));
    if (c)
        *c = (child_t){.base.ops = &child_ops, .ctx = arg};
    return (cio_protocol_t *)c;
}

static int brood_start(cio_service_ctx_t *ctx, void **state)
{
    /* No pipes: the children's output, if any, goes where coreiod's stderr goes. */
    cio_subprocess_opts_t o = {
        .stdio = {{CIO_STDIO_DEVNULL}, {CIO_STDIO_DEVNULL}, {CIO_STDIO_INHERIT}}};
    for (int64_t i = 0; i < cio_service_int(ctx, "count"); i++) {
        cio_future_t *f = cio_service_subprocess_shell(ctx, child_factory, ctx,
                                                       cio_service_string(ctx, "command"), &o);
        if (!f)
            return -ENOMEM;
        cio_future_unref(f);
    }
    return 0;
}

/* Nothing connects: the listener is only what starts the service. */
static cio_protocol_t *refuse(cio_service_ctx_t *ctx)
{
    return NULL;
}

static const cio_config_key_t brood_keys[] = {
    {"command", CIO_CONFIG_STRING, "exec sleep 1000", 0, 0, "what each child runs"},
    {"count", CIO_CONFIG_INTEGER, "2", 0, 64, "children per worker"},
};

static const cio_service_t brood = {.name = "brood",
                                    .kinds = CIO_SERVICE_STREAM,
                                    .keys = brood_keys,
                                    .nkeys = 2,
                                    .factory = refuse,
                                    .start = brood_start};
static const cio_service_t brood2 = {.name = "brood2",
                                     .kinds = CIO_SERVICE_STREAM,
                                     .keys = brood_keys,
                                     .nkeys = 2,
                                     .factory = refuse,
                                     .start = brood_start};

CIO_MODULE("brood", "1.0", &brood, &brood2);
