/*
 * tests/test_exception.c: the loop's exception handler. Custom handlers get
 * the context as reported, NULL restores the default handler (which logs at
 * ERROR), a failing custom handler falls back to the default one, and a
 * failing callback is reported while the loop goes on.
 */
#include <errno.h>
#include <stdio.h>

#include "testutil.h"

/* What a custom handler was given, copied while the context was valid. */
typedef struct seen {
    int calls;
    int order; /* value of *tick when the handler ran */
    int *tick;
    cio_loop_t *loop;
    cio_exception_context_t ctx;
    cio_handle_t handle;
    char message[256];
    int rc; /* what the handler returns */
} seen_t;

static int seen_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    seen_t *s = arg;
    s->calls++;
    s->loop = loop;
    s->ctx = *ctx;
    if (ctx->handle)
        s->handle = *ctx->handle;
    snprintf(s->message, sizeof(s->message), "%s", ctx->message ? ctx->message : "(null)");
    if (s->tick)
        s->order = ++*s->tick;
    return s->rc;
}

/* A second handler, only to tell it apart from seen_handler. */
static int other_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    return 0;
}

/* call_exception_handler() passes every context field to the custom handler as is. */
START_TEST(test_exception_custom_handler_receives_context_fields)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *fut = cio_loop_create_future(loop);
    seen_t seen = {0};
    int task, protocol, transport;
    cio_handle_t handle = {.loop = loop, .slot = 3, .gen = 9, .when = 1.5};
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, "custom report");
    ctx.error = -ECONNRESET;
    ctx.future = fut;
    ctx.task = &task;
    ctx.handle = &handle;
    ctx.protocol = &protocol;
    ctx.transport = &transport;
    ctx.socket = 5;

    cio_loop_set_exception_handler(loop, seen_handler, &seen);
    cio_loop_call_exception_handler(loop, &ctx);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_eq(seen.loop, loop);
    ck_assert_str_eq(seen.message, "custom report");
    ck_assert_int_eq(seen.ctx.error, -ECONNRESET);
    ck_assert_ptr_eq(seen.ctx.future, fut);
    ck_assert_ptr_eq(seen.ctx.task, &task);
    ck_assert_ptr_eq(seen.ctx.handle, &handle);
    ck_assert_ptr_eq(seen.ctx.protocol, &protocol);
    ck_assert_ptr_eq(seen.ctx.transport, &transport);
    ck_assert_int_eq(seen.ctx.socket, 5);
    cio_future_unref(fut);
    cio_loop_free(loop);
}
END_TEST

/* get_exception_handler() returns what set_exception_handler() installed. */
START_TEST(test_exception_get_handler_returns_handler_and_arg)
{
    cio_loop_t *loop = cio_loop_new();
    seen_t seen = {0};
    void *arg = NULL;
    ck_assert(cio_loop_get_exception_handler(loop, &arg) == NULL);
    cio_loop_set_exception_handler(loop, seen_handler, &seen);
    ck_assert(cio_loop_get_exception_handler(loop, &arg) == seen_handler);
    ck_assert_ptr_eq(arg, &seen);
    /* Replacing the handler replaces its argument too. */
    cio_loop_set_exception_handler(loop, other_handler, loop);
    ck_assert(cio_loop_get_exception_handler(loop, NULL) == other_handler);
    ck_assert(cio_loop_get_exception_handler(loop, &arg) == other_handler);
    ck_assert_ptr_eq(arg, loop);
    ck_assert_int_eq(seen.calls, 0);
    cio_loop_free(loop);
}
END_TEST

/* NULL restores the default handler, which logs the report at ERROR. */
START_TEST(test_exception_null_handler_restores_default)
{
    cio_loop_t *loop = cio_loop_new();
    seen_t seen = {0};
    cio_test_log_t log;
    cio_loop_set_exception_handler(loop, seen_handler, &seen);
    cio_loop_set_exception_handler(loop, NULL, NULL);
    ck_assert(cio_loop_get_exception_handler(loop, NULL) == NULL);

    cio_test_capture_log(&log);
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, "peer went away");
    ctx.error = -ECONNRESET;
    cio_loop_call_exception_handler(loop, &ctx);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);

    ck_assert_int_eq(seen.calls, 0);
    ck_assert_int_eq(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(log.text, "peer went away"));
    ck_assert_ptr_nonnull(strstr(log.text, "ECONNRESET"));
    cio_loop_free(loop);
}
END_TEST

/* A custom handler that fails: the default handler reports that and the original. */
START_TEST(test_exception_failing_handler_falls_back_to_default)
{
    cio_loop_t *loop = cio_loop_new();
    seen_t seen = {.rc = -ENOMEM};
    cio_test_log_t log;
    cio_loop_set_exception_handler(loop, seen_handler, &seen);

    cio_test_capture_log(&log);
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, "original problem");
    ctx.error = -EPIPE;
    cio_loop_call_exception_handler(loop, &ctx);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);

    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_ge(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(log.text, "Unhandled error in exception handler"));
    ck_assert_ptr_nonnull(strstr(log.text, "original problem"));
    ck_assert_ptr_nonnull(strstr(log.text, "EPIPE"));
    cio_loop_free(loop);
}
END_TEST

/* Plain callbacks that note when they ran; failing_cb then fails. */
typedef struct step {
    int *tick;
    int order;
} step_t;

static int failing_cb(void *arg)
{
    step_t *s = arg;
    s->order = ++*s->tick;
    return -EPIPE;
}

static int step_cb(void *arg)
{
    step_t *s = arg;
    s->order = ++*s->tick;
    return 0;
}

/* asyncio's 'Exception in callback': reported with the handle, then the loop goes on. */
START_TEST(test_exception_failing_callback_reported_and_loop_goes_on)
{
    cio_loop_t *loop = cio_loop_new();
    int tick = 0;
    seen_t seen = {.tick = &tick};
    step_t failing = {&tick, 0}, after = {&tick, 0};
    cio_handle_t handle;
    cio_loop_set_exception_handler(loop, seen_handler, &seen);
    ck_assert_int_eq(cio_loop_call_soon(loop, failing_cb, &failing, &handle), 0);
    ck_assert_int_eq(cio_loop_call_soon(loop, step_cb, &after, NULL), 0);
    ck_assert_int_eq(cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL), 0);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);

    /* The failure is reported right after the callback, before the next one. */
    ck_assert_int_eq(failing.order, 1);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(seen.order, 2);
    ck_assert_int_eq(after.order, 3);
    ck_assert_msg(strncmp(seen.message, "Exception in callback", 21) == 0, "message: %s",
                  seen.message);
    ck_assert_int_eq(seen.ctx.error, -EPIPE);
    ck_assert_ptr_nonnull(seen.ctx.handle);
    ck_assert_ptr_eq(seen.handle.loop, loop);
    ck_assert_uint_eq(seen.handle.slot, handle.slot);
    ck_assert_uint_eq(seen.handle.gen, handle.gen);
    ck_assert_ptr_null(seen.ctx.future);
    cio_loop_free(loop);
}
END_TEST

/* A fresh context says nothing applies: no error, no objects, socket -1. */
START_TEST(test_exception_context_init_sets_nothing_applies)
{
    cio_exception_context_t ctx;
    memset(&ctx, 0xa5, sizeof(ctx));
    cio_exception_context_init(&ctx, "message");
    ck_assert_str_eq(ctx.message, "message");
    ck_assert_int_eq(ctx.error, 0);
    ck_assert_ptr_null(ctx.future);
    ck_assert_ptr_null(ctx.task);
    ck_assert_ptr_null(ctx.handle);
    ck_assert_ptr_null(ctx.protocol);
    ck_assert_ptr_null(ctx.transport);
    ck_assert_int_eq(ctx.socket, -1);
}
END_TEST

/* The default handler logs the message and each field that applies. */
START_TEST(test_exception_default_handler_logs_message_error_and_socket)
{
    cio_loop_t *loop = cio_loop_new();
    cio_test_log_t log;
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, "socket trouble");
    ctx.error = -ECONNRESET;
    ctx.socket = 7;

    cio_test_capture_log(&log);
    cio_loop_default_exception_handler(loop, &ctx);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);

    ck_assert_int_eq(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(log.text, "socket trouble"));
    ck_assert_ptr_nonnull(strstr(log.text, "ECONNRESET"));
    ck_assert_ptr_nonnull(strstr(log.text, "socket: fd 7"));
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("exception");

    TCase *tc = cio_test_case("handler");
    CIO_TEST(tc, test_exception_custom_handler_receives_context_fields);
    CIO_TEST(tc, test_exception_get_handler_returns_handler_and_arg);
    CIO_TEST(tc, test_exception_null_handler_restores_default);
    CIO_TEST(tc, test_exception_failing_handler_falls_back_to_default);
    CIO_TEST(tc, test_exception_failing_callback_reported_and_loop_goes_on);
    suite_add_tcase(s, tc);

    tc = cio_test_case("context");
    CIO_TEST(tc, test_exception_context_init_sets_nothing_applies);
    CIO_TEST(tc, test_exception_default_handler_logs_message_error_and_socket);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
