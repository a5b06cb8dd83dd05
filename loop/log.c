/*
 * loop/log.c: coreio's diagnostics sink. One handler for the process, swapped
 * under a mutex and called outside it, so a handler may itself log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static cio_log_cb log_cb;
static void *log_arg;
static _Atomic int log_min = CIO_LOG_DEBUG;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

const char *cio_log_level_name(cio_log_level_t level)
{
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "UNKNOWN";
    return level_names[level];
}

void cio_log_set_handler(cio_log_cb cb, void *arg, cio_log_level_t min_level)
{
    pthread_mutex_lock(&log_lock);
    log_cb = cb;
    log_arg = arg;
    atomic_store(&log_min, (int)min_level);
    pthread_mutex_unlock(&log_lock);
}

bool cio__log_enabled(cio_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

/* The default handler: one write per record so threads do not interleave. */
static void log_stderr(cio_log_level_t level, const char *message)
{
    char line[4096];
    int n = snprintf(line, sizeof(line), "coreio: %s: %s\n", cio_log_level_name(level), message);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line);
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void cio__log(cio_log_level_t level, const char *fmt, ...)
{
    if (!cio__log_enabled(level))
        return;
    char message[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    cio_log_cb cb = log_cb;
    void *arg = log_arg;
    pthread_mutex_unlock(&log_lock);
    if (cb)
        cb(level, message, arg);
    else
        log_stderr(level, message);
}
