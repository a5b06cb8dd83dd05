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

/* A mailbox node taken ahead (loop/mailbox.c), so a message that must not be
 * lost (a stop, a job's outcome) is posted later without allocating. */
struct cio__mbox_node;
struct cio__mbox_node *cio__mailbox_node_reserve(void);
void cio__mailbox_node_unreserve(struct cio__mbox_node *n);
int cio__mailbox_post_reserved(cio_loop_t *loop, struct cio__mbox_node *n, cio_callback_t cb,
                               cio_callback_t release, void *arg);

void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* CIO_WORKERS_INTERNAL_H */
