/*
 * loop/log.c: coreio's diagnostics sink. One handler for the process, swapped
 * under a mutex and called outside it, so a handler may itself log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static cio_log_cb log_cb;
static void *log_arg;
static _Atomic int log_min = CIO_LOG_DEBUG;
static _Atomic int log_format = CIO_LOG_TEXT;

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

void cio_log_set_level(cio_log_level_t min_level)
{
    atomic_store(&log_min, (int)min_level);
}

void cio_log_set_format(cio_log_format_t format)
{
    atomic_store(&log_format, (int)format);
}

/* @p s into @p out as a JSON string's contents: quotes, backslashes and controls escaped. */
static size_t json_escape(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(out + n, size - n, "\\%c", c);
        else if (c < 0x20)
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
    return n;
}

/* One JSON object per record: the tags as fields of their own, the bare message as msg. */
static int format_json(char *line, size_t size, cio_log_level_t level, const cio_log_tags_t *t,
                       const char *message)
{
    static __thread char esc_buf[3072 * 6 + 1]; /* every byte may become \u00XX */
    char svc[256] = "", lis[256] = "";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_escape(esc_buf, sizeof(esc_buf), message);
    int n = snprintf(line, size, "{\"time\":%lld.%03ld,\"level\":\"%s\"", (long long)ts.tv_sec,
                     ts.tv_nsec / 1000000, cio_log_level_name(level));
    if (t && t->worker >= 0)
        n += snprintf(line + n, size - (size_t)n, ",\"worker\":%ld", t->worker);
    if (t && t->listener && json_escape(lis, sizeof(lis), t->listener))
        n += snprintf(line + n, size - (size_t)n, ",\"listener\":\"%s\"", lis);
    if (t && t->service && json_escape(svc, sizeof(svc), t->service))
        n += snprintf(line + n, size - (size_t)n, ",\"service\":\"%s\"", svc);
    n += snprintf(line + n, size - (size_t)n, ",\"msg\":\"%s\"}\n", esc_buf);
    return n;
}

/* The default handler: one write per record so threads do not interleave. */
static void log_stderr(cio_log_level_t level, const cio_log_tags_t *tags, const char *tagged,
                       const char *bare)
{
    static __thread char line[3072 * 6 + 1024];
    int n =
        atomic_load_explicit(&log_format, memory_order_relaxed) == CIO_LOG_JSON
            ? format_json(line, sizeof(line), level, tags, bare)
            : snprintf(line, sizeof(line), "coreio: %s: %s\n", cio_log_level_name(level), tagged);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line);
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

/* "[worker N] [listener L] SERVICE: " for @p t into @p out; its length. */
static size_t tag_prefix(char *out, size_t size, const cio_log_tags_t *t)
{
    size_t n = 0;
    out[0] = '\0';
    if (t && t->worker >= 0)
        n += (size_t)snprintf(out + n, size - n, "[worker %ld] ", t->worker);
    if (t && t->listener && n < size)
        n += (size_t)snprintf(out + n, size - n, "[listener %s] ", t->listener);
    if (t && t->service && n < size)
        n += (size_t)snprintf(out + n, size - n, "%s: ", t->service);
    return n < size ? n : size - 1;
}

static void log_va(cio_log_level_t level, const cio_log_tags_t *tags, const char *fmt, va_list ap)
{
    char message[3072];
    size_t head = tag_prefix(message, sizeof(message), tags);
    vsnprintf(message + head, sizeof(message) - head, fmt, ap);

    pthread_mutex_lock(&log_lock);
    cio_log_cb cb = log_cb;
    void *arg = log_arg;
    pthread_mutex_unlock(&log_lock);
    if (cb)
        cb(level, message, arg);
    else
        log_stderr(level, tags, message, message + head);
}

void cio_log(cio_log_level_t level, const cio_log_tags_t *tags, const char *fmt, ...)
{
    if (!cio__log_enabled(level) || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_va(level, tags, fmt, ap);
    va_end(ap);
}

void cio__log(cio_log_level_t level, const char *fmt, ...)
{
    if (!cio__log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_va(level, NULL, fmt, ap);
    va_end(ap);
}
