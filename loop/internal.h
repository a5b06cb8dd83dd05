/*
 * loop/internal.h: what the files of loop/ share. The loop struct, the handle
 * slab and ready ring, the timer heap and the mailbox.
 */
#ifndef CIO_LOOP_INTERNAL_H
#define CIO_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "coreio.h"
#include "heap.h"

#define cio_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* asyncio's constants (base_events.py). */
#define CIO__MAX_SELECT_TIMEOUT    (24.0 * 3600.0) /* poll timeout cap, seconds */
#define CIO__MIN_SCHEDULED_TIMERS  100             /* compaction threshold, entries */
#define CIO__SLOW_CALLBACK_DEFAULT 0.1             /* seconds */

/* ---- handle slots --------------------------------------------------------- */

enum cio__slot_state {
    CIO__SLOT_FREE = 0,
    CIO__SLOT_READY,     /* in the ready ring */
    CIO__SLOT_TIMER,     /* in the timer heap */
    CIO__SLOT_CANCELLED, /* cancelled, still in the ring or heap until discarded */
};

enum cio__slot_kind {
    CIO__SLOT_PLAIN = 0, /* fn.cb(arg) */
    CIO__SLOT_DONE,      /* fn.done(fut, arg), holding a reference to fut */
};

/* One scheduled callback. The generation changes whenever the slot is freed. */
typedef struct cio__slot {
    union {
        cio_callback_t cb;
        cio_done_cb done;
    } fn;
    union {
        void *arg;
        uint32_t next_free; /* free-list link while FREE */
    };
    cio_future_t *fut;
    uint32_t gen;
    uint8_t state;
    uint8_t kind;
    uint8_t in_heap;
} cio__slot_t;

typedef struct cio__slab {
    cio__slot_t *v;
    uint32_t cap;
    uint32_t free_head; /* UINT32_MAX when empty */
} cio__slab_t;

/* The ready queue: a FIFO ring of slot indexes, capacity a power of two. */
typedef struct cio__ring {
    uint32_t *v;
    uint32_t mask;
    uint32_t head;
    uint32_t len;
} cio__ring_t;

/* ---- mailbox --------------------------------------------------------------- */

typedef struct cio__mbox_node {
    _Atomic(struct cio__mbox_node *) next;
    cio_callback_t cb;
    void *arg;
    struct cio__mbox_block *block; /* the block the node was carved from */
} cio__mbox_node_t;

/*
 * Vyukov's multi-producer single-consumer queue: producers exchange @head, the
 * loop consumes from @tail. @sleeping is set by the loop before it blocks in
 * poll; a producer that clears it writes the eventfd. The producers' line, the
 * read-mostly line and the consumer's line are kept apart so that a busy loop
 * and its producers do not steal each other's cache lines.
 */
typedef struct cio__mailbox {
    /* Written by every producer. */
    _Alignas(64) _Atomic(cio__mbox_node_t *) head;
    /* Read by producers, written rarely. */
    _Alignas(64) _Atomic int sleeping;
    _Atomic int closed;
    int efd;
    _Atomic uint64_t wakeups; /* eventfd writes */
    struct event *ev;
    /* The loop's own. */
    _Alignas(64) cio__mbox_node_t *tail;
    cio__mbox_node_t stub;
    uint64_t received; /* messages drained */
} cio__mailbox_t;

/* ---- the loop -------------------------------------------------------------- */

struct cio_loop_s {
    struct event_base *base;
    struct event *poll_timer; /* bounds the poll when a timer is due */
    cio__slab_t slab;
    cio__ring_t ready;
    cio__heap_t timers;
    size_t timers_cancelled; /* cancelled entries still in the heap */
    uint64_t timer_seq;
    cio__mailbox_t mailbox;

    _Atomic int running;
    _Atomic int closed;
    int stopping;
    bool debug;
    double slow_callback_duration;
    double clock_resolution;
    pthread_t thread; /* valid while running */

    uint64_t iterations;
    uint64_t callbacks;

    cio_exception_handler_t exc_handler;
    void *exc_arg;
};

/* loop/handle.c: slots and the ready ring. */
int cio__slab_alloc(cio__slab_t *s, uint32_t *index);
void cio__slab_free(cio__slab_t *s, uint32_t index);
void cio__slab_destroy(cio__slab_t *s);
int cio__ring_push(cio__ring_t *r, uint32_t index);
void cio__ring_destroy(cio__ring_t *r);
static inline uint32_t cio__ring_pop(cio__ring_t *r)
{
    uint32_t v = r->v[r->head];
    r->head = (r->head + 1) & r->mask;
    r->len--;
    return v;
}
int cio__schedule(cio_loop_t *loop, const cio__slot_t *proto, cio_handle_t *handle);
int cio__schedule_check(cio_loop_t *loop, const void *cb);
void cio__slot_release(cio_loop_t *loop, uint32_t index);

/* loop/timer.c: the timer heap. */
int cio__timer_add(cio_loop_t *loop, double when, const cio__slot_t *proto, cio_handle_t *handle);
double cio__timer_timeout(cio_loop_t *loop);
void cio__timer_expire(cio_loop_t *loop, double now);
void cio__timer_discard_all(cio_loop_t *loop);

/* loop/mailbox.c: call_soon_threadsafe. */
int cio__mailbox_init(cio_loop_t *loop);
void cio__mailbox_close(cio_loop_t *loop);
void cio__mailbox_destroy(cio_loop_t *loop);
bool cio__mailbox_pending(cio_loop_t *loop);
bool cio__mailbox_sleep(cio_loop_t *loop);
void cio__mailbox_awake(cio_loop_t *loop);
void cio__mailbox_drain(cio_loop_t *loop);

/* loop/loop.c */
double cio__now(void);
double cio__poll_timeout(cio_loop_t *loop);
bool cio__wrong_thread(const cio_loop_t *loop);

/* loop/policy.c: the per-thread running loop. */
cio_loop_t *cio__get_running(void);
void cio__set_running(cio_loop_t *loop);
void cio__policy_forget(cio_loop_t *loop);

/* loop/log.c */
void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cio__log_enabled(cio_log_level_t level);

/* loop/exception.c: a callback reported an error; describe @p fn for logs. */
void cio__report_callback_error(cio_loop_t *loop, const cio_handle_t *h, const void *fn,
                                cio_future_t *fut, int err);
void cio__describe_fn(const void *fn, char *buf, size_t len);

#endif /* CIO_LOOP_INTERNAL_H */
