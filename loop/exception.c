/*
 * loop/exception.c: the loop's exception handler (asyncio's
 * call_exception_handler and default_exception_handler). Errors that asyncio
 * would raise inside a callback arrive here with a context; the loop goes on.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void cio_exception_context_init(cio_exception_context_t *ctx, const char *message)
{
    *ctx = (cio_exception_context_t){.message = message, .socket = -1};
}

/* Name a function for logs: its symbol when the dynamic linker knows it. */
void cio__describe_fn(const void *fn, char *buf, size_t len)
{
    Dl_info info;
    if (dladdr(fn, &info) && info.dli_sname)
        snprintf(buf, len, "%s()", info.dli_sname);
    else
        snprintf(buf, len, "<function at %p>", fn);
}

void cio_loop_default_exception_handler(cio_loop_t *loop, const cio_exception_context_t *ctx)
{
    char text[2048];
    size_t n = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (n < sizeof(text))                                                                      \
            n += (size_t)snprintf(text + n, sizeof(text) - n, __VA_ARGS__);                        \
    } while (0)
    APPEND("%s", ctx->message ? ctx->message : "Unhandled error in event loop");
    if (ctx->error)
        APPEND("\n  error: %s (%s)", cio_err_name(ctx->error), cio_strerror(ctx->error));
    if (ctx->handle) {
        APPEND("\n  handle: slot %u gen %u", ctx->handle->slot, ctx->handle->gen);
        if (ctx->handle->when == ctx->handle->when)
            APPEND(" when %.6f", ctx->handle->when);
    }
    if (ctx->future)
        APPEND("\n  future: %p", (void *)ctx->future);
    if (ctx->task)
        APPEND("\n  task: %p", ctx->task);
    if (ctx->protocol)
        APPEND("\n  protocol: %p", ctx->protocol);
    if (ctx->transport)
        APPEND("\n  transport: %p", ctx->transport);
    if (ctx->socket >= 0)
        APPEND("\n  socket: fd %d", ctx->socket);
#undef APPEND
    cio__log(CIO_LOG_ERROR, "%s", text);
}

void cio_loop_call_exception_handler(cio_loop_t *loop, const cio_exception_context_t *ctx)
{
    cio_exception_handler_t handler = loop->exc_handler;
    if (!handler) {
        cio_loop_default_exception_handler(loop, ctx);
        return;
    }
    int rc = handler(loop, ctx, loop->exc_arg);
    if (rc < 0) {
        /* As asyncio: a failing custom handler falls back to the default one,
         * which reports both the handler's failure and the original context. */
        cio_exception_context_t failed;
        cio_exception_context_init(&failed, "Unhandled error in exception handler");
        failed.error = rc;
        cio_loop_default_exception_handler(loop, &failed);
        cio_loop_default_exception_handler(loop, ctx);
    }
}

void cio_loop_set_exception_handler(cio_loop_t *loop, cio_exception_handler_t handler, void *arg)
{
    loop->exc_handler = handler;
    loop->exc_arg = handler ? arg : NULL;
}

cio_exception_handler_t cio_loop_get_exception_handler(const cio_loop_t *loop, void **arg)
{
    if (arg)
        *arg = loop->exc_arg;
    return loop->exc_handler;
}

/* A callback returned an error: asyncio's "Exception in callback ...". */
void cio__report_callback_error(cio_loop_t *loop, const cio_handle_t *h, const void *fn,
                                cio_future_t *fut, int err)
{
    char name[128], message[192];
    cio__describe_fn(fn, name, sizeof(name));
    snprintf(message, sizeof(message), "Exception in callback %s", name);
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, message);
    ctx.error = err;
    ctx.handle = h;
    ctx.future = fut;
    cio_loop_call_exception_handler(loop, &ctx);
}
