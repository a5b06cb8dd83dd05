/*
 * loop/handle.c: handles and the ready queue. Every scheduled callback lives in
 * a slot of the loop's slab; a cio_handle_t names it by index and generation,
 * so stale handles are detected instead of touching a reused slot. The slab and
 * the ready ring grow by doubling and are reused, so call_soon allocates
 * nothing in steady state. A slot can be reserved ahead of time, so that
 * what must run at the end of an object's life (connection_lost) is
 * scheduled without allocating.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

#define SLAB_MIN 64

/* Chain new slots onto an exhausted slab, doubling it. */
static int slab_grow(cio__slab_t *s)
{
    uint32_t old = s->cap, cap = old ? old * 2 : SLAB_MIN;
    if (cap <= old)
        return -ENOMEM;
    cio__slot_t *v = realloc(s->v, (size_t)cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    /* Chain the new slots in index order so low indexes are used first. */
    for (uint32_t i = old; i < cap; i++)
        v[i] = (cio__slot_t){.gen = 1, .next_free = i + 1 < cap ? i + 1 : UINT32_MAX};
    s->v = v;
    s->cap = cap;
    s->free_head = old;
    return 0;
}

/* Take a free slot, growing the slab if none is left. */
static inline int slab_alloc(cio__slab_t *s, uint32_t *index)
{
    if (s->free_head == UINT32_MAX && slab_grow(s) < 0)
        return -ENOMEM;
    *index = s->free_head;
    s->free_head = s->v[*index].next_free;
    return 0;
}

int cio__slab_alloc(cio__slab_t *s, uint32_t *index)
{
    return slab_alloc(s, index);
}

/* Return a slot to the free list; its generation moves on so handles go stale. */
void cio__slab_free(cio__slab_t *s, uint32_t index)
{
    cio__slot_t *slot = &s->v[index];
    slot->state = CIO__SLOT_FREE;
    slot->gen++;
    slot->next_free = s->free_head;
    s->free_head = index;
}

void cio__slab_destroy(cio__slab_t *s)
{
    free(s->v);
    *s = (cio__slab_t){.free_head = UINT32_MAX};
}

static uint32_t ring_cap(const cio__ring_t *r)
{
    return r->v ? r->mask + 1 : 0;
}

/* Make room for at least @p want entries (a power of two). */
static int ring_grow(cio__ring_t *r, uint32_t want)
{
    uint32_t cap = ring_cap(r);
    if (want <= cap)
        return 0;
    assert((want & (want - 1)) == 0 && r->len <= cap);
    uint32_t *v = malloc((size_t)want * sizeof(*v));
    if (!v)
        return -ENOMEM;
    /* Unwrap the old ring into the start of the new one. */
    for (uint32_t i = 0; i < r->len; i++)
        v[i] = r->v[(r->head + i) & r->mask];
    free(r->v);
    r->v = v;
    r->mask = want - 1;
    r->head = 0;
    return 0;
}

/* Append to a ring known to have room (the loop's, by cio__slot_alloc's invariant). */
static inline void ring_put(cio__ring_t *r, uint32_t index)
{
    assert(r->len < ring_cap(r));
    r->v[(r->head + r->len) & r->mask] = index;
    r->len++;
}

int cio__ring_push(cio__ring_t *r, uint32_t index)
{
    uint32_t cap = ring_cap(r);
    if (r->len == cap) {
        uint32_t ncap = cap ? cap * 2 : SLAB_MIN;
        if (ncap <= cap || ring_grow(r, ncap) < 0)
            return -ENOMEM;
    }
    ring_put(r, index);
    return 0;
}

/*
 * Take a slot for the loop. Invariant: the ready ring can hold every slot of
 * the slab (a slot is in the ring at most once), so pushing a slot that is
 * already allocated never allocates: reserved slots rely on that.
 */
static inline int slot_alloc(cio_loop_t *loop, uint32_t *index)
{
    int rc = slab_alloc(&loop->slab, index);
    /* The slab only grew if it outgrew the ring: the common case is one compare. */
    if (rc == 0 && loop->slab.cap > ring_cap(&loop->ready) &&
        (rc = ring_grow(&loop->ready, loop->slab.cap)) < 0)
        cio__slab_free(&loop->slab, *index);
    assert(rc < 0 || ring_cap(&loop->ready) >= loop->slab.cap);
    return rc;
}

int cio__slot_alloc(cio_loop_t *loop, uint32_t *index)
{
    return slot_alloc(loop, index);
}

int cio__slot_reserve(cio_loop_t *loop, uint32_t *index)
{
    int rc = slot_alloc(loop, index);
    if (rc == 0)
        loop->slab.v[*index].state = CIO__SLOT_RESERVED;
    return rc;
}

void cio__slot_schedule_reserved(cio_loop_t *loop, uint32_t index, const cio__slot_t *proto)
{
    cio__slot_t *slot = &loop->slab.v[index];
    assert(slot->state == CIO__SLOT_RESERVED);
    uint32_t gen = slot->gen;
    *slot = *proto;
    slot->gen = gen;
    slot->state = CIO__SLOT_READY;
    slot->in_heap = 0;
    ring_put(&loop->ready, index); /* room for every slot: cio__slot_alloc's invariant */
}

void cio__slot_unreserve(cio_loop_t *loop, uint32_t index)
{
    assert(loop->slab.v[index].state == CIO__SLOT_RESERVED);
    cio__slab_free(&loop->slab, index);
}

void cio__ring_destroy(cio__ring_t *r)
{
    free(r->v);
    *r = (cio__ring_t){0};
}

/* Release what a slot holds (a future reference, an owned argument) and free it. */
void cio__slot_release(cio_loop_t *loop, uint32_t index)
{
    cio__slot_t *slot = &loop->slab.v[index];
    assert(slot->state != CIO__SLOT_FREE); /* released twice: a stale index */
    cio_future_t *fut = slot->kind == CIO__SLOT_DONE ? slot->fut : NULL;
    cio_callback_t release = slot->kind == CIO__SLOT_OWNED ? slot->release : NULL;
    void *arg = slot->arg;
    cio__slab_free(&loop->slab, index);
    cio_future_unref(fut);
    if (release)
        release(arg);
}

/* The checks every non-thread-safe scheduling call makes. */
int cio__schedule_check(cio_loop_t *loop, const void *cb)
{
    if (!loop || !cb)
        return -EINVAL;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return CIO_ECLOSED;
    if (loop->debug && cio__wrong_thread(loop))
        return CIO_EWRONGTHREAD;
    return 0;
}

/* Put a copy of @p proto in a new slot at the end of the ready queue. */
int cio__schedule(cio_loop_t *loop, const cio__slot_t *proto, cio_handle_t *handle)
{
    uint32_t index;
    int rc = slot_alloc(loop, &index);
    if (rc < 0)
        return rc;
    ring_put(&loop->ready, index); /* room for every slot: cio__slot_alloc's invariant */
    cio__slot_t *slot = &loop->slab.v[index];
    uint32_t gen = slot->gen;
    *slot = *proto;
    slot->gen = gen;
    slot->state = CIO__SLOT_READY;
    slot->in_heap = 0;
    if (handle)
        *handle = (cio_handle_t){.loop = loop, .slot = index, .gen = gen, .when = NAN};
    return 0;
}

int cio_loop_call_soon(cio_loop_t *loop, cio_callback_t cb, void *arg, cio_handle_t *handle)
{
    int rc = cio__schedule_check(loop, (const void *)cb);
    if (rc < 0)
        return rc;
    cio__slot_t proto = {.fn.cb = cb, .arg = arg, .kind = CIO__SLOT_PLAIN};
    return cio__schedule(loop, &proto, handle);
}

/* The live slot a handle names, or NULL if the handle is stale or zero. */
static cio__slot_t *handle_slot(cio_handle_t h)
{
    if (!h.loop || h.slot >= h.loop->slab.cap)
        return NULL;
    cio__slot_t *slot = &h.loop->slab.v[h.slot];
    if (slot->gen != h.gen || slot->state == CIO__SLOT_FREE)
        return NULL;
    return slot;
}

/* Whether the handle's callback is still waiting to run. */
bool cio__handle_pending(cio_handle_t h)
{
    cio__slot_t *slot = handle_slot(h);
    return slot && slot->state != CIO__SLOT_CANCELLED;
}

void cio_handle_cancel(cio_handle_t h)
{
    cio__slot_t *slot = handle_slot(h);
    if (!slot || slot->state == CIO__SLOT_CANCELLED)
        return;
    assert(slot->in_heap ? slot->state == CIO__SLOT_TIMER : slot->state == CIO__SLOT_READY);
    /* A cancelled timer stays in the heap until it surfaces or is compacted. */
    if (slot->in_heap)
        h.loop->timers_cancelled++;
    slot->state = CIO__SLOT_CANCELLED;
}

bool cio_handle_cancelled(cio_handle_t h)
{
    cio__slot_t *slot = handle_slot(h);
    return slot && slot->state == CIO__SLOT_CANCELLED;
}

double cio_handle_when(cio_handle_t h)
{
    return h.loop ? h.when : NAN;
}
