/*
 * loop/mailbox.c: call_soon_threadsafe, the only way into a loop from another
 * thread. Producers push onto a lock-free multi-producer single-consumer queue
 * (Vyukov's: one atomic exchange per push); the loop drains all of it after
 * every poll. The eventfd is written only when the loop has said it is about to
 * sleep, and only by the one producer that clears that flag, so a busy loop
 * receives messages without a single system call.
 *
 * Nodes are carved from blocks of MBOX_BLOCK that each producer thread keeps
 * for itself; a block is freed when its last node has been consumed, so a
 * message costs one malloc in MBOX_BLOCK and no cross-thread free per message.
 *
 * A port is a small reference-counted handle on a loop's mailbox for senders
 * that may post after the loop is gone (a cross-shard call's answer, whose
 * caller may close and free its loop meanwhile): it outlives the loop, and
 * posting through it fails with CIO_ECLOSED once the loop has closed instead
 * of touching freed memory.
 */
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "internal.h"

#define MBOX_BLOCK 64

/* A block of nodes. @refs counts nodes not yet consumed, plus one while the
 * producer thread still carves from it. */
typedef struct cio__mbox_block {
    _Atomic uint32_t refs;
    cio__mbox_node_t nodes[MBOX_BLOCK];
} mbox_block_t;

/* The calling thread's block and how many of its nodes it has used; kept out
 * of the block so the consumer's reference drops do not share its line. The
 * initial-exec model makes each access one instruction, not a libc call. */
static __thread struct {
    mbox_block_t *block;
    uint32_t used;
} producer __attribute__((tls_model("initial-exec")));
static pthread_key_t block_key;
static pthread_once_t block_key_once = PTHREAD_ONCE_INIT;

static void block_unref(mbox_block_t *b, uint32_t n)
{
    uint32_t refs = atomic_fetch_sub_explicit(&b->refs, n, memory_order_acq_rel);
    assert(refs >= n);
    if (refs == n)
        free(b);
}

/* A producer thread exits: give up its block and the nodes it never used. */
static void block_release_at_exit(void *arg)
{
    block_unref(arg, MBOX_BLOCK - producer.used + 1);
}

static void block_key_create(void)
{
    pthread_key_create(&block_key, block_release_at_exit);
}

static cio__mbox_node_t *node_alloc(void)
{
    mbox_block_t *b = producer.block;
    if (!b || producer.used == MBOX_BLOCK) {
        mbox_block_t *nb = malloc(sizeof(*nb));
        if (!nb)
            return NULL;
        atomic_init(&nb->refs, MBOX_BLOCK + 1);
        pthread_once(&block_key_once, block_key_create);
        pthread_setspecific(block_key, nb);
        if (b)
            block_unref(b, 1);
        producer.block = b = nb;
        producer.used = 0;
    }
    cio__mbox_node_t *n = &b->nodes[producer.used++];
    n->block = b;
    return n;
}

/* A node has been consumed (it is no longer the queue's dummy). */
static void node_free(cio__mailbox_t *mb, cio__mbox_node_t *n)
{
    if (n != &mb->sentinel)
        block_unref(n->block, 1);
}

/* The eventfd fired: consume its counter. The messages are drained after poll. */
static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
}

int cio__mailbox_init(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    atomic_init(&mb->sentinel.next, NULL);
    atomic_init(&mb->head, &mb->sentinel);
    mb->tail = &mb->sentinel;
    atomic_init(&mb->sleeping, 0);
    atomic_init(&mb->closed, 0);
    atomic_init(&mb->senders, 0);
    atomic_init(&mb->wakeups, 0);
    atomic_init(&mb->port, NULL);
    mb->received = 0;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0)
        return -errno;
    mb->ev = event_new(loop->base, mb->efd, EV_READ | EV_PERSIST, on_wakeup, loop);
    if (!mb->ev || event_add(mb->ev, NULL) < 0) {
        cio__mailbox_destroy(loop);
        return CIO_EBACKEND;
    }
    return 0;
}

static void port_close(cio__mailbox_t *mb);

/*
 * Refuse new messages, wait for the producers already inside a push (as
 * libuv's uv__async_spin), and leave the event loop backend. Once this
 * returns no producer will touch the loop again: every message is linked, so
 * cio__mailbox_discard() releases them all, and the eventfd may close.
 */
void cio__mailbox_close(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    /* Sequentially consistent, with the producers' increment-then-check: a
     * producer that saw @closed clear is counted in @senders here. */
    atomic_store_explicit(&mb->closed, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&mb->senders, memory_order_seq_cst) != 0)
        sched_yield();
    port_close(mb);
    if (mb->ev) {
        event_free(mb->ev);
        mb->ev = NULL;
    }
}

/* Free the eventfd and every message never drained (freeing the loop). */
void cio__mailbox_destroy(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    cio__mailbox_close(loop);
    if (mb->efd >= 0) {
        close(mb->efd);
        mb->efd = -1;
    }
    cio__mbox_node_t *n = mb->tail;
    while (n) {
        cio__mbox_node_t *next = atomic_load_explicit(&n->next, memory_order_acquire);
        node_free(mb, n);
        n = next;
    }
    mb->tail = &mb->sentinel;
    atomic_store(&mb->sentinel.next, NULL);
    atomic_store(&mb->head, &mb->sentinel);
}

int cio_loop_call_soon_threadsafe(cio_loop_t *loop, cio_callback_t cb, void *arg)
{
    return cio__call_soon_threadsafe_owned(loop, cb, NULL, arg);
}

int cio_loop_call_soon_threadsafe_owned(cio_loop_t *loop, cio_callback_t cb, void *arg,
                                        cio_callback_t release)
{
    return cio__call_soon_threadsafe_owned(loop, cb, release, arg);
}

/* Leave a push: the last access to the loop (see cio__mailbox_close()). */
static int leave(cio__mailbox_t *mb, int rc)
{
    atomic_fetch_sub_explicit(&mb->senders, 1, memory_order_release);
    return rc;
}

/* Enter a push: counted first, then the check, so closing either sees us or we see it closed.
 * The counter shares the producers' line with @head, so it costs no miss. */
static bool enter(cio__mailbox_t *mb)
{
    atomic_fetch_add_explicit(&mb->senders, 1, memory_order_seq_cst);
    return !atomic_load_explicit(&mb->closed, memory_order_seq_cst);
}

/* Fill @p n in and link it; the caller has entered. */
static void push(cio__mailbox_t *mb, cio__mbox_node_t *n, cio_callback_t cb, cio_callback_t release,
                 void *arg)
{
    n->cb = cb;
    n->release = release;
    n->arg = arg;
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* The exchange is sequentially consistent: it orders against the loading
     * of @sleeping below, pairing with the loop's store-then-check. */
    cio__mbox_node_t *prev = atomic_exchange_explicit(&mb->head, n, memory_order_seq_cst);
    /* Wake the loop before linking the node, so the wake-up never follows a
     * message the loop already ran. A loop woken early sees the message
     * pending and polls without blocking until the link lands. */
    if (atomic_load_explicit(&mb->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&mb->sleeping, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        atomic_fetch_add_explicit(&mb->wakeups, 1, memory_order_relaxed);
        while (write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/*
 * call_soon_threadsafe whose @p arg is owned by the message: if the loop
 * closes before running @p cb, @p release(@p arg) runs instead, on the loop's
 * thread, so nothing sent to a loop leaks.
 */
int cio__call_soon_threadsafe_owned(cio_loop_t *loop, cio_callback_t cb, cio_callback_t release,
                                    void *arg)
{
    if (!loop || !cb)
        return -EINVAL;
    cio__mailbox_t *mb = &loop->mailbox;
    if (!enter(mb))
        return leave(mb, CIO_ECLOSED);
    cio__mbox_node_t *n = node_alloc();
    if (!n)
        return leave(mb, -ENOMEM);
    push(mb, n, cb, release, arg);
    /* The message may run (and free the loop) from here on, but only after
     * closing, which waits for this release of the count. */
    return leave(mb, 0);
}

/*
 * A node for a message that must not be lost to a lack of memory (a job's
 * outcome): taken now, on any thread, by whoever can still report the
 * failure, and sent later with cio__mailbox_post_reserved(), which cannot
 * fail for want of memory. NULL when out of memory.
 */
cio__mbox_node_t *cio__mailbox_node_reserve(void)
{
    return node_alloc();
}

/* Give back a reserved node that was never posted (NULL is ignored); any thread. */
void cio__mailbox_node_unreserve(cio__mbox_node_t *n)
{
    if (n)
        block_unref(n->block, 1);
}

/* cio__call_soon_threadsafe_owned() with a reserved node: 0, or CIO_ECLOSED (@p n stays the
 * caller's). */
int cio__mailbox_post_reserved(cio_loop_t *loop, cio__mbox_node_t *n, cio_callback_t cb,
                               cio_callback_t release, void *arg)
{
    cio__mailbox_t *mb = &loop->mailbox;
    if (!enter(mb))
        return leave(mb, CIO_ECLOSED);
    push(mb, n, cb, release, arg);
    return leave(mb, 0);
}

/* ---- ports ------------------------------------------------------------------ */

struct cio__mbox_port {
    _Atomic unsigned refs;    /* the mailbox's until the loop closes, and each holder's */
    _Atomic unsigned senders; /* posters inside cio__mailbox_port_post() */
    _Atomic int closed;
    cio_loop_t *loop;
    void *ext; /* the loop thread's: see cio__mailbox_port_attach() */
    void (*ext_closed)(void *ext);
};

/*
 * A new reference to @p loop's port, made on first use: 0, CIO_ECLOSED once
 * the loop is closing, or -ENOMEM. Any thread, while the loop is not freed.
 * Asking from inside a push keeps the loop from closing meanwhile, so a port
 * installed here is one that port_close() will find.
 */
int cio__mailbox_port(cio_loop_t *loop, cio__mbox_port_t **port)
{
    cio__mailbox_t *mb = &loop->mailbox;
    if (!enter(mb))
        return leave(mb, CIO_ECLOSED);
    /* Acquire: a port another thread made is seen initialised. */
    cio__mbox_port_t *p = atomic_load_explicit(&mb->port, memory_order_acquire);
    if (!p) {
        cio__mbox_port_t *np = calloc(1, sizeof(*np));
        if (!np)
            return leave(mb, -ENOMEM);
        atomic_init(&np->refs, 1);
        np->loop = loop;
        /* Release publishes the initialisation; a thread that lost the race uses the winner's. */
        if (atomic_compare_exchange_strong_explicit(&mb->port, &p, np, memory_order_acq_rel,
                                                    memory_order_acquire))
            p = np;
        else
            free(np);
    }
    /* Relaxed, as any reference count's increment: the mailbox's own
     * reference cannot go while this thread is inside a push. */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    *port = p;
    return leave(mb, 0);
}

void cio__mailbox_port_ref(cio__mbox_port_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* Drop a reference; any thread. Acquire-release, so the last one frees after every use. */
void cio__mailbox_port_unref(cio__mbox_port_t *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

/*
 * cio__mailbox_post_reserved() through a port: 0, or CIO_ECLOSED when the loop
 * has closed (@p n stays the caller's). Any thread, whether the loop is alive
 * or freed. Entering and closing pair as for the mailbox itself (enter()).
 */
int cio__mailbox_port_post(cio__mbox_port_t *p, cio__mbox_node_t *n, cio_callback_t cb,
                           cio_callback_t release, void *arg)
{
    atomic_fetch_add_explicit(&p->senders, 1, memory_order_seq_cst);
    int rc = CIO_ECLOSED;
    if (!atomic_load_explicit(&p->closed, memory_order_seq_cst))
        rc = cio__mailbox_post_reserved(p->loop, n, cb, release, arg);
    /* Release: port_close() frees nothing until our use of the loop is over. */
    atomic_fetch_sub_explicit(&p->senders, 1, memory_order_release);
    return rc;
}

/*
 * Hang one client's per-loop state on the port (workers/shard_call.c's): the
 * loop thread finds it with cio__mailbox_attached(), and @p closed(@p ext)
 * runs on the thread closing the loop, once no port post can reach it any
 * more and before undrained messages are released. Loop thread only.
 */
void cio__mailbox_port_attach(cio__mbox_port_t *p, void *ext, void (*closed)(void *ext))
{
    p->ext = ext;
    p->ext_closed = closed;
}

/* What was attached to the loop's port, or NULL. Loop thread only. */
void *cio__mailbox_attached(cio_loop_t *loop)
{
    cio__mbox_port_t *p = atomic_load_explicit(&loop->mailbox.port, memory_order_acquire);
    return p ? p->ext : NULL;
}

/* Closing: no post gets through the port after this; the mailbox's reference goes. */
static void port_close(cio__mailbox_t *mb)
{
    cio__mbox_port_t *p = atomic_exchange_explicit(&mb->port, NULL, memory_order_acq_rel);
    if (!p)
        return;
    atomic_store_explicit(&p->closed, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&p->senders, memory_order_seq_cst) != 0)
        sched_yield();
    if (p->ext_closed)
        p->ext_closed(p->ext);
    cio__mailbox_port_unref(p);
}

/* Whether a message was pushed that the loop has not drained yet. */
bool cio__mailbox_pending(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    return atomic_load_explicit(&mb->head, memory_order_seq_cst) != mb->tail;
}

/* Messages linked and not drained yet: a walk, for statistics only. */
size_t cio__mailbox_depth(cio_loop_t *loop)
{
    size_t n = 0;
    for (cio__mbox_node_t *node = loop->mailbox.tail;
         (node = atomic_load_explicit(&node->next, memory_order_acquire));)
        n++;
    return n;
}

/*
 * Announce that the loop is about to block in poll. Returns false (and stays
 * awake) when a message arrived meanwhile, in which case poll must not block.
 */
bool cio__mailbox_sleep(cio_loop_t *loop)
{
    atomic_store_explicit(&loop->mailbox.sleeping, 1, memory_order_seq_cst);
    if (cio__mailbox_pending(loop)) {
        atomic_store_explicit(&loop->mailbox.sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void cio__mailbox_awake(cio_loop_t *loop)
{
    atomic_store_explicit(&loop->mailbox.sleeping, 0, memory_order_relaxed);
}

/*
 * Move every message that is fully linked into the ready queue. A producer
 * caught between its exchange and its link is picked up on the next
 * iteration, which cio__mailbox_pending() keeps from blocking. Consumed nodes
 * are returned to their blocks in runs: one atomic operation per run of a
 * producer's consecutive nodes instead of one per message.
 */
void cio__mailbox_drain(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    mbox_block_t *run_block = NULL;
    uint32_t run_len = 0;
    uint64_t before = mb->received;
    for (;;) {
        cio__mbox_node_t *tail = mb->tail;
        cio__mbox_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
        if (!next)
            break;
        /* A producer's nodes are contiguous in its block and mostly queued in
         * order: fetching the lines ahead hides the cross-core misses. */
        __builtin_prefetch((const char *)next + 128);
        cio__slot_t proto = {.fn.cb = next->cb, .arg = next->arg, .kind = CIO__SLOT_PLAIN};
        if (next->release) {
            proto.kind = CIO__SLOT_OWNED;
            proto.release = next->release;
        }
        if (cio__schedule(loop, &proto, NULL) < 0)
            break; /* out of memory: the message waits for the next drain */
        /* @next becomes the new dummy; the old one is consumed. */
        mb->tail = next;
        mb->received++;
        if (tail == &mb->sentinel)
            continue;
        if (tail->block != run_block) {
            if (run_block)
                block_unref(run_block, run_len);
            run_block = tail->block;
            run_len = 0;
        }
        run_len++;
    }
    if (run_block)
        block_unref(run_block, run_len);
    /* Nothing linked yet, though a producer has pushed: it woke this loop and
     * was then preempted before its link, perhaps by this very thread on its
     * CPU. Give it the CPU rather than spin on zero-timeout polls. */
    if (mb->received == before && cio__mailbox_pending(loop))
        sched_yield();
}

/* Closing: release what undrained messages own; they will never run. */
void cio__mailbox_discard(cio_loop_t *loop)
{
    cio__mailbox_t *mb = &loop->mailbox;
    for (;;) {
        cio__mbox_node_t *tail = mb->tail;
        cio__mbox_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
        if (!next)
            return;
        if (next->release)
            next->release(next->arg);
        next->release = NULL;
        mb->tail = next;
        node_free(mb, tail);
    }
}
