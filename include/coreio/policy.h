/*
 * coreio/policy.h: obtaining loops (asyncio.get_running_loop(),
 * get_event_loop(), set_event_loop(), new_event_loop()) and event loop
 * policies, which decide what "the current loop" of a thread is.
 */
#ifndef COREIO_POLICY_H
#define COREIO_POLICY_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An event loop policy: asyncio's AbstractEventLoopPolicy as a table. Every
 * function receives the table's @c data. A policy must stay valid while it is
 * installed.
 */
typedef struct cio_policy {
    /** The current thread's loop, or NULL (after setting *err) if it has none. */
    cio_loop_t *(*get_event_loop)(void *data, int *err);
    /** Make @p loop (may be NULL) the current thread's loop. */
    int (*set_event_loop)(void *data, cio_loop_t *loop);
    /** Create a new loop; NULL when out of memory. */
    cio_loop_t *(*new_event_loop)(void *data);
    void *data;
} cio_policy_t;

/**
 * The loop running in the calling thread, or NULL outside a running loop
 * (asyncio raises RuntimeError there). Any thread.
 */
CIO_EXTERN cio_loop_t *cio_get_running_loop(void);

/**
 * The running loop if there is one; otherwise the policy's current loop for
 * this thread. The default policy creates one on first use in the main thread
 * unless cio_set_event_loop() was ever called there, even with NULL, as
 * asyncio does (the caller then owns it: cio_set_event_loop(NULL) and
 * cio_loop_free() it when done); in other threads it needs
 * cio_set_event_loop() first. Returns
 * NULL, with the reason in *@p err when @p err is not NULL
 * (CIO_ENOPOLICYLOOP, -ENOMEM), when there is no loop.
 */
CIO_EXTERN cio_loop_t *cio_get_event_loop(int *err);

/** Make @p loop (or NULL) the current thread's loop through the policy. */
CIO_EXTERN int cio_set_event_loop(cio_loop_t *loop);

/** Create a new loop through the policy; NULL when out of memory. */
CIO_EXTERN cio_loop_t *cio_new_event_loop(void);

/** The installed policy (the default policy when none was set). */
CIO_EXTERN const cio_policy_t *cio_get_event_loop_policy(void);

/**
 * Install @p policy (NULL restores the default). Returns -EINVAL when one of
 * its functions is missing. Any thread; meant for program start-up.
 */
CIO_EXTERN int cio_set_event_loop_policy(const cio_policy_t *policy);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_POLICY_H */
