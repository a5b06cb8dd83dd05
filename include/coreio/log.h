/*
 * coreio/log.h: where coreio's own diagnostics go (the analogue of asyncio's
 * "asyncio" logger): exception handler reports, slow callbacks in debug mode.
 */
#ifndef COREIO_LOG_H
#define COREIO_LOG_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Severity of a log record, lowest first. */
typedef enum cio_log_level {
    CIO_LOG_DEBUG = 0,
    CIO_LOG_INFO,
    CIO_LOG_WARNING,
    CIO_LOG_ERROR,
} cio_log_level_t;

/** How the default handler writes a record. */
typedef enum cio_log_format {
    CIO_LOG_TEXT = 0, /* coreio: LEVEL: [worker N] [listener L] SERVICE: message */
    CIO_LOG_JSON,     /* one JSON object per line: time, level, worker, listener, service, msg */
} cio_log_format_t;

/** What a record is about; NULL names and a negative worker are left out. */
typedef struct cio_log_tags {
    const char *service;
    const char *listener;
    long worker;
} cio_log_tags_t;

/** Receives one complete log record (no trailing newline). */
typedef void (*cio_log_cb)(cio_log_level_t level, const char *message, void *arg);

/**
 * Send coreio's log records to @p cb (NULL restores the default: one line per
 * record on stderr, prefixed "coreio: LEVEL: "). Records below @p min_level are
 * dropped. Any thread; records already being written may still reach the old
 * handler.
 */
CIO_EXTERN void cio_log_set_handler(cio_log_cb cb, void *arg, cio_log_level_t min_level);

/** Drop records below @p min_level from now on, whatever the handler. Any thread. */
CIO_EXTERN void cio_log_set_level(cio_log_level_t min_level);

/** Make the default handler write @p format. Any thread. */
CIO_EXTERN void cio_log_set_format(cio_log_format_t format);

/**
 * Log a record about @p tags (NULL: none) if @p level is not below the
 * handler's minimum. A handler set with cio_log_set_handler() gets the text
 * form ("[worker N] [listener L] SERVICE: message"); the default one writes
 * the chosen format, one write(2) per record, so threads never interleave.
 * Records are cut at 3 KiB. Any thread.
 */
CIO_EXTERN void cio_log(cio_log_level_t level, const cio_log_tags_t *tags, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Name of a level ("DEBUG", "INFO", "WARNING", "ERROR"). */
CIO_EXTERN const char *cio_log_level_name(cio_log_level_t level);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_LOG_H */
