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

/** Receives one complete log record (no trailing newline). */
typedef void (*cio_log_cb)(cio_log_level_t level, const char *message, void *arg);

/**
 * Send coreio's log records to @p cb (NULL restores the default: one line per
 * record on stderr, prefixed "coreio: LEVEL: "). Records below @p min_level are
 * dropped. Any thread; records already being written may still reach the old
 * handler.
 */
CIO_EXTERN void cio_log_set_handler(cio_log_cb cb, void *arg, cio_log_level_t min_level);

/** Name of a level ("DEBUG", "INFO", "WARNING", "ERROR"). */
CIO_EXTERN const char *cio_log_level_name(cio_log_level_t level);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_LOG_H */
