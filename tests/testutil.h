/*
 * tests/testutil.h: what every Check suite shares: a main() that runs one
 * suite forked with a per-test timeout, a log capture, and small loop helpers.
 */
#ifndef CIO_TESTUTIL_H
#define CIO_TESTUTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "coreio.h"

#define CIO_TEST_TIMEOUT 20

/* Add @p fn to @p tc; tests are named after the behaviour they check. */
#define CIO_TEST(tc, fn) tcase_add_test((tc), (fn))

/* main() for a suite built by @p make_suite. */
#define CIO_TEST_MAIN(make_suite)                                                                  \
    int main(void)                                                                                 \
    {                                                                                              \
        SRunner *sr = srunner_create(make_suite());                                                \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        int failed = srunner_ntests_failed(sr);                                                    \
        srunner_free(sr);                                                                          \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                               \
    }

/* A test case with the suite's timeout. */
static inline TCase *cio_test_case(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, CIO_TEST_TIMEOUT);
    return tc;
}

/* Log records captured by cio_test_capture_log(). */
typedef struct cio_test_log {
    char text[8192];
    size_t len;
    int records;
    cio_log_level_t last_level;
} cio_test_log_t;

static inline void cio_test_log_cb(cio_log_level_t level, const char *message, void *arg)
{
    cio_test_log_t *log = arg;
    size_t n = strlen(message);
    if (log->len + n + 2 < sizeof(log->text)) {
        memcpy(log->text + log->len, message, n);
        log->len += n;
        log->text[log->len++] = '\n';
        log->text[log->len] = '\0';
    }
    log->records++;
    log->last_level = level;
}

/* Route coreio's log into @p log (every level). */
static inline void cio_test_capture_log(cio_test_log_t *log)
{
    memset(log, 0, sizeof(*log));
    cio_log_set_handler(cio_test_log_cb, log, CIO_LOG_DEBUG);
}

/* A callback that stops the loop given as its argument. */
static inline int cio_test_stop_cb(void *arg)
{
    cio_loop_stop(arg);
    return 0;
}

/* A callback that re-schedules itself @c left times, then stops the loop:
 * one callback per loop iteration. */
typedef struct cio_test_chain {
    cio_loop_t *loop;
    int left;
} cio_test_chain_t;

static inline int cio_test_chain_cb(void *arg)
{
    cio_test_chain_t *c = arg;
    if (--c->left == 0)
        cio_loop_stop(c->loop);
    else
        cio_loop_call_soon(c->loop, cio_test_chain_cb, c, NULL);
    return 0;
}

/* An order recorder: callbacks append small integers. */
typedef struct cio_test_order {
    int v[4096];
    int n;
} cio_test_order_t;

#endif /* CIO_TESTUTIL_H */
