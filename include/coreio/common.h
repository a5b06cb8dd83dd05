/*
 * coreio/common.h: export macro, the core opaque types and callback signatures
 * shared by every coreio header.
 */
#ifndef COREIO_COMMON_H
#define COREIO_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CIO_EXTERN __attribute__((visibility("default")))
#else
#define CIO_EXTERN
#endif

/** One asyncio-style event loop, confined to the thread that runs it. */
typedef struct cio_loop_s cio_loop_t;

/** An asyncio Future: pending, then done with a result, an error, or cancelled. */
typedef struct cio_future_s cio_future_t;

/**
 * A scheduled callback. Return 0, or a negative error code to report a failure:
 * the loop then calls its exception handler (as asyncio does when a callback
 * raises) and goes on with the next callback.
 */
typedef int (*cio_callback_t)(void *arg);

/**
 * An option whose asyncio default is "on": a zeroed options struct must mean
 * the default, so the default is its own value.
 */
typedef enum cio_tristate {
    CIO_DEFAULT = 0,
    CIO_ON,
    CIO_OFF,
} cio_tristate_t;

#ifdef __cplusplus
}
#endif

#endif /* COREIO_COMMON_H */
