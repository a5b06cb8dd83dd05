/*
 * tests/test_error.c: error codes and log plumbing. cio_strerror() and
 * cio_err_name() for coreio's own codes (from the CIO_ERRNO_MAP table), errno
 * values, success and unknown values; log level names; the log level filter.
 */
#include <errno.h>
#include <limits.h>

#include <unistd.h>

#include "testutil.h"

/* coreio's own codes, generated from the same table as the library's. */
typedef struct code {
    int value;
    int table_value;
    const char *name;
    const char *message;
} code_t;

static const code_t own_codes[] = {
#define CODE_ROW(name, value, msg) {CIO_E##name, (value), "CIO_E" #name, (msg)},
    CIO_ERRNO_MAP(CODE_ROW)
#undef CODE_ROW
};

#define NUM_OWN_CODES (sizeof(own_codes) / sizeof(own_codes[0]))

/* Every row of CIO_ERRNO_MAP names and describes its code. */
START_TEST(test_error_own_codes_have_table_name_and_message)
{
    ck_assert_uint_gt(NUM_OWN_CODES, 0);
    for (size_t i = 0; i < NUM_OWN_CODES; i++) {
        const code_t *c = &own_codes[i];
        ck_assert_int_eq(c->value, c->table_value);
        ck_assert_str_eq(cio_err_name(c->value), c->name);
        ck_assert_str_eq(cio_strerror(c->value), c->message);
    }
}
END_TEST

/* coreio's codes stay clear of errno values and of each other. */
START_TEST(test_error_own_codes_are_below_minus_4000_and_distinct)
{
    for (size_t i = 0; i < NUM_OWN_CODES; i++) {
        ck_assert_int_lt(own_codes[i].value, -4000);
        for (size_t j = i + 1; j < NUM_OWN_CODES; j++)
            ck_assert_int_ne(own_codes[i].value, own_codes[j].value);
    }
}
END_TEST

/* Negated errno values get the system's name and message. */
START_TEST(test_error_errno_values_use_system_names)
{
    ck_assert_str_eq(cio_err_name(-ECONNRESET), "ECONNRESET");
    ck_assert_ptr_nonnull(strstr(cio_strerror(-ECONNRESET), "reset"));
    ck_assert_str_eq(cio_err_name(-EINVAL), "EINVAL");
    ck_assert_str_eq(cio_err_name(-ECANCELED), "ECANCELED");
    ck_assert_str_ne(cio_strerror(-EPIPE), "unknown error");
}
END_TEST

/* Zero is success, with a name and a message of its own. */
START_TEST(test_error_zero_is_success)
{
    ck_assert_str_eq(cio_err_name(0), "0");
    ck_assert_str_eq(cio_strerror(0), "success");
}
END_TEST

/* Values that are no error code get the fixed 'unknown' strings. */
START_TEST(test_error_unknown_values_are_unknown)
{
    /* Neither an errno value nor one of coreio's codes, on either side of
     * coreio's range, and positive values, which are never errors. */
    static const int unknown[] = {-999999, -4000, -4999, 5, EINVAL, INT_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ck_assert_msg(strcmp(cio_err_name(unknown[i]), "unknown") == 0, "name of %d: %s",
                      unknown[i], cio_err_name(unknown[i]));
        ck_assert_msg(strcmp(cio_strerror(unknown[i]), "unknown error") == 0, "message of %d: %s",
                      unknown[i], cio_strerror(unknown[i]));
    }
}
END_TEST

/* The most negative int is no error code either. */
START_TEST(test_error_int_min_is_unknown)
{
    /* INT_MIN has no negation in int: describing it must not overflow. */
    ck_assert_str_eq(cio_err_name(INT_MIN), "unknown");
    ck_assert_str_eq(cio_strerror(INT_MIN), "unknown error");
}
END_TEST

/* Each level has the name the default log handler prints. */
START_TEST(test_log_level_names)
{
    ck_assert_str_eq(cio_log_level_name(CIO_LOG_DEBUG), "DEBUG");
    ck_assert_str_eq(cio_log_level_name(CIO_LOG_INFO), "INFO");
    ck_assert_str_eq(cio_log_level_name(CIO_LOG_WARNING), "WARNING");
    ck_assert_str_eq(cio_log_level_name(CIO_LOG_ERROR), "ERROR");
}
END_TEST

/* A value outside the enum gets a name too, never NULL. */
START_TEST(test_log_level_name_out_of_range_is_unknown)
{
    ck_assert_str_eq(cio_log_level_name((cio_log_level_t)(CIO_LOG_ERROR + 1)), "UNKNOWN");
    ck_assert_str_eq(cio_log_level_name((cio_log_level_t)42), "UNKNOWN");
}
END_TEST

/* Route the log into @p log, dropping records below @p min_level. */
static void capture_log_from(cio_test_log_t *log, cio_log_level_t min_level)
{
    memset(log, 0, sizeof(*log));
    cio_log_set_handler(cio_test_log_cb, log, min_level);
}

/* Report one error through the loop's (default) exception handler. */
static void report_error(cio_loop_t *loop, const char *message)
{
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, message);
    ctx.error = -ECONNRESET;
    cio_loop_call_exception_handler(loop, &ctx);
}

/* Exception handler reports are ERROR records: a WARNING or ERROR minimum passes them. */
START_TEST(test_log_min_level_delivers_error_reports)
{
    cio_loop_t *loop = cio_loop_new();
    cio_test_log_t log;
    capture_log_from(&log, CIO_LOG_WARNING);
    report_error(loop, "above the minimum");
    ck_assert_int_eq(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(log.text, "above the minimum"));
    /* A record exactly at the minimum level passes too. */
    capture_log_from(&log, CIO_LOG_ERROR);
    report_error(loop, "at the minimum");
    ck_assert_int_eq(log.records, 1);
    ck_assert_ptr_nonnull(strstr(log.text, "at the minimum"));
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    cio_loop_free(loop);
}
END_TEST

static int noop_cb(void *arg)
{
    return 0;
}

/* Run one callback, which debug mode with a zero threshold reports as slow. */
static void run_slow_callback(cio_loop_t *loop)
{
    ck_assert_int_eq(cio_loop_call_soon(loop, noop_cb, NULL, NULL), 0);
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
}

/* Records below the handler's minimum level never reach it. */
START_TEST(test_log_records_below_min_level_are_dropped)
{
    cio_loop_t *loop = cio_loop_new();
    cio_test_log_t log;
    cio_loop_set_debug(loop, true);
    ck_assert_int_eq(cio_loop_set_slow_callback_duration(loop, 0), 0);

    /* First learn the slow-callback record's level with nothing filtered. */
    capture_log_from(&log, CIO_LOG_DEBUG);
    run_slow_callback(loop);
    ck_assert_int_ge(log.records, 1);
    cio_log_level_t level = log.last_level;
    ck_assert_int_lt(level, CIO_LOG_ERROR);

    capture_log_from(&log, (cio_log_level_t)(level + 1));
    run_slow_callback(loop);
    ck_assert_int_eq(log.records, 0);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    cio_loop_free(loop);
}
END_TEST

/* cio_log(): tags before the message for a handler; a level change keeps the handler. */
START_TEST(test_log_tags_worker_listener_and_service)
{
    cio_test_log_t log;
    capture_log_from(&log, CIO_LOG_DEBUG);
    cio_log_tags_t tags = {.service = "kv", .listener = "front", .worker = 1};
    cio_log(CIO_LOG_WARNING, &tags, "%d keys", 5);
    ck_assert_int_eq(log.records, 1);
    ck_assert_int_eq(log.last_level, CIO_LOG_WARNING);
    ck_assert_str_eq(log.text, "[worker 1] [listener front] kv: 5 keys\n"); /* as captured */
    capture_log_from(&log, CIO_LOG_DEBUG);
    cio_log(CIO_LOG_INFO, &(cio_log_tags_t){.worker = -1}, "untagged");
    ck_assert_str_eq(log.text, "untagged\n");
    cio_log_set_level(CIO_LOG_ERROR);
    cio_log(CIO_LOG_WARNING, &tags, "dropped");
    ck_assert_int_eq(log.records, 1);
    cio_log(CIO_LOG_ERROR, NULL, "kept");
    ck_assert_int_eq(log.records, 2); /* the same handler still gets records */
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
}
END_TEST

/* The default handler in JSON: one object per line, the message escaped. */
START_TEST(test_log_json_format_writes_one_escaped_object_per_record)
{
    int fds[2], saved = dup(STDERR_FILENO);
    ck_assert_int_eq(pipe(fds), 0);
    dup2(fds[1], STDERR_FILENO);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    cio_log_set_format(CIO_LOG_JSON);
    cio_log(CIO_LOG_INFO, &(cio_log_tags_t){.service = "s", .listener = "l\"1", .worker = 0},
            "say \"hi\"\n\tbye\\");
    cio_log_set_format(CIO_LOG_TEXT);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[512] = "";
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_msg(strncmp(buf, "{\"time\":", 8) == 0, "%s", buf);
    ck_assert_msg(strstr(buf,
                         ",\"level\":\"INFO\",\"worker\":0,\"listener\":\"l\\\"1\","
                         "\"service\":\"s\",\"msg\":\"say \\\"hi\\\"\\u000a\\u0009bye\\\\\"}\n"),
                  "%s", buf);
    ck_assert_ptr_eq(strchr(buf, '\n'), buf + n - 1); /* one line */
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("error");

    TCase *tc = cio_test_case("codes");
    CIO_TEST(tc, test_error_own_codes_have_table_name_and_message);
    CIO_TEST(tc, test_error_own_codes_are_below_minus_4000_and_distinct);
    CIO_TEST(tc, test_error_errno_values_use_system_names);
    CIO_TEST(tc, test_error_zero_is_success);
    CIO_TEST(tc, test_error_unknown_values_are_unknown);
    CIO_TEST(tc, test_error_int_min_is_unknown);
    suite_add_tcase(s, tc);

    tc = cio_test_case("log");
    CIO_TEST(tc, test_log_level_names);
    CIO_TEST(tc, test_log_level_name_out_of_range_is_unknown);
    CIO_TEST(tc, test_log_min_level_delivers_error_reports);
    CIO_TEST(tc, test_log_tags_worker_listener_and_service);
    CIO_TEST(tc, test_log_json_format_writes_one_escaped_object_per_record);
    CIO_TEST(tc, test_log_records_below_min_level_are_dropped);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
