/*
 * workers/internal.h: what the files of workers/ share, and the loop
 * internals they use (loop/mailbox.c, loop/future.c and loop/log.c).
 */
#ifndef CIO_WORKERS_INTERNAL_H
#define CIO_WORKERS_INTERNAL_H

#include <stddef.h>

#include "coreio.h"
#include "../loop/queue.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

#define cio_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

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

/* A handle on a loop's mailbox that outlives the loop (loop/mailbox.c): posting
 * through it fails with CIO_ECLOSED once the loop has closed, and one client's
 * per-loop state can hang on it, told when the loop closes. */
typedef struct cio__mbox_port cio__mbox_port_t;
int cio__mailbox_port(cio_loop_t *loop, cio__mbox_port_t **port);
void cio__mailbox_port_ref(cio__mbox_port_t *p);
void cio__mailbox_port_unref(cio__mbox_port_t *p);
int cio__mailbox_port_post(cio__mbox_port_t *p, struct cio__mbox_node *n, cio_callback_t cb,
                           cio_callback_t release, void *arg);
void cio__mailbox_port_attach(cio__mbox_port_t *p, void *ext, void (*closed)(void *ext));
void *cio__mailbox_attached(cio_loop_t *loop);

/* A result the future owns and frees with @p result_free when it goes (loop/future.c). */
int cio__future_set_owned_result(cio_future_t *fut, void *result, void (*result_free)(void *));

/* @p fn(@p arg) as a task whose @p free_arg(@p arg) runs if fn never will, even when the
 * task cannot be made (NULL then) (loop/task.c). */
cio_future_t *cio__spawn(cio_loop_t *loop, cio_task_fn fn, void *arg, void (*free_arg)(void *));

/*
 * A calling loop's home (workers/home.c): what the files that send calls to
 * other loops keep per calling loop, one part each, hung on the loop's
 * mailbox port. Answers travel through the port, so they never touch a loop
 * that has gone; and when the loop closes, each part's @closed runs on the
 * closing thread, once no answer can get into the mailbox any more, to
 * cancel and let go of the futures still waiting (only that thread may touch
 * them) and free the part. The loop thread's only, and the closing thread's
 * at the end.
 */
enum cio__home_slot { CIO__HOME_SUBMIT, CIO__HOME_SHARD, CIO__HOME_SLOTS };

typedef struct cio__home cio__home_t;

typedef struct cio__home_part {
    cio__home_t *home;
    void (*closed)(struct cio__home_part *part);
} cio__home_part_t;

struct cio__home {
    cio__mbox_port_t *port; /* the loop's own, a reference: where answers are posted */
    cio__home_part_t *part[CIO__HOME_SLOTS];
};

cio__home_t *cio__home_get(cio_loop_t *loop);
void cio__home_add(cio__home_t *h, enum cio__home_slot slot, cio__home_part_t *part,
                   void (*closed)(cio__home_part_t *part));

void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* CIO_WORKERS_INTERNAL_H */
