/*
 * workers/internal.h: what the files of workers/ share, and the two loop
 * internals they use (loop/mailbox.c and loop/log.c).
 */
#ifndef CIO_WORKERS_INTERNAL_H
#define CIO_WORKERS_INTERNAL_H

#include "coreio.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

/* A message whose argument is released, on the target loop's thread, if that
 * loop closes before running it. */
int cio__call_soon_threadsafe_owned(cio_loop_t *loop, cio_callback_t cb, cio_callback_t release,
                                    void *arg);

void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* CIO_WORKERS_INTERNAL_H */
