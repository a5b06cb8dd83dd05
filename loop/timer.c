/*
 * loop/timer.c: call_later and call_at. Timers sit in a binary heap ordered by
 * due time and scheduling sequence. Cancelling only marks the slot; cancelled
 * entries leave the heap when they reach its top, or all at once when they
 * pass half of a heap of more than CIO__MIN_SCHEDULED_TIMERS entries (asyncio's
 * rule), so cancel is O(1) and the heap never fills with garbage.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

static int heap_reserve(cio__heap_t *h)
{
    if (h->len < h->cap)
        return 0;
    size_t cap = h->cap ? h->cap * 2 : 64;
    cio__heap_entry_t *v = realloc(h->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

int cio__timer_add(cio_loop_t *loop, double when, const cio__slot_t *proto, cio_handle_t *handle)
{
    uint32_t index;
    int rc = heap_reserve(&loop->timers);
    if (rc < 0)
        return rc;
    rc = cio__slot_alloc(loop, &index);
    if (rc < 0)
        return rc;
    cio__slot_t *slot = &loop->slab.v[index];
    uint32_t gen = slot->gen;
    *slot = *proto;
    slot->gen = gen;
    slot->state = CIO__SLOT_TIMER;
    slot->in_heap = 1;
    cio__heap_push(&loop->timers,
                   (cio__heap_entry_t){.when = when, .seq = loop->timer_seq++, .slot = index});
    if (handle)
        *handle = (cio_handle_t){.loop = loop, .slot = index, .gen = gen, .when = when};
    return 0;
}

int cio_loop_call_at(cio_loop_t *loop, double when, cio_callback_t cb, void *arg,
                     cio_handle_t *handle)
{
    int rc = cio__schedule_check(loop, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!isfinite(when))
        return -EINVAL;
    cio__slot_t proto = {.fn.cb = cb, .arg = arg, .kind = CIO__SLOT_PLAIN};
    return cio__timer_add(loop, when, &proto, handle);
}

int cio_loop_call_later(cio_loop_t *loop, double delay, cio_callback_t cb, void *arg,
                        cio_handle_t *handle)
{
    if (!isfinite(delay))
        return -EINVAL;
    return cio_loop_call_at(loop, cio__now() + delay, cb, arg, handle);
}

/* Drop every cancelled entry and rebuild the heap. */
static void compact(cio_loop_t *loop)
{
    cio__heap_t *h = &loop->timers;
    assert(loop->timers_cancelled <= h->len);
    size_t kept = 0;
    for (size_t i = 0; i < h->len; i++) {
        /* Slots are scattered over the slab: fetch ahead to overlap misses. */
        if (i + 8 < h->len)
            __builtin_prefetch(&loop->slab.v[h->v[i + 8].slot]);
        uint32_t index = h->v[i].slot;
        if (loop->slab.v[index].state == CIO__SLOT_CANCELLED)
            cio__slot_release(loop, index);
        else
            h->v[kept++] = h->v[i];
    }
    h->len = kept;
    cio__heap_heapify(h);
    loop->timers_cancelled = 0;
}

/*
 * Clear out cancelled timers (compacting, or popping them off the top) and
 * return the seconds until the earliest live timer, or -1 when there is none.
 */
double cio__timer_timeout(cio_loop_t *loop)
{
    cio__heap_t *h = &loop->timers;
    if (h->len > CIO__MIN_SCHEDULED_TIMERS && loop->timers_cancelled * 2 > h->len) {
        compact(loop);
    } else {
        while (h->len > 0 && loop->slab.v[h->v[0].slot].state == CIO__SLOT_CANCELLED) {
            uint32_t index = h->v[0].slot;
            cio__heap_pop(h);
            loop->timers_cancelled--;
            cio__slot_release(loop, index);
        }
    }
    if (h->len == 0)
        return -1;
    double t = h->v[0].when - cio__now();
    return t < 0 ? 0 : t;
}

/* Move every timer due at @p now (clock resolution included) to the ready queue. */
void cio__timer_expire(cio_loop_t *loop, double now)
{
    cio__heap_t *h = &loop->timers;
    double end = now + loop->clock_resolution;
    while (h->len > 0 && h->v[0].when <= end) {
        uint32_t index = h->v[0].slot;
        cio__slot_t *slot = &loop->slab.v[index];
        if (slot->state == CIO__SLOT_CANCELLED) {
            assert(loop->timers_cancelled > 0);
            loop->timers_cancelled--;
            cio__heap_pop(h);
            cio__slot_release(loop, index);
            continue;
        }
        assert(slot->in_heap && slot->state == CIO__SLOT_TIMER);
        int rc = cio__ring_push(&loop->ready, index);
        assert(rc == 0); /* the ring has room for every slot (cio__slot_alloc) */
        (void)rc;
        cio__heap_pop(h);
        slot->in_heap = 0;
        slot->state = CIO__SLOT_READY;
    }
}

/* Release every timer (closing the loop). */
void cio__timer_discard_all(cio_loop_t *loop)
{
    cio__heap_t *h = &loop->timers;
    for (size_t i = 0; i < h->len; i++)
        cio__slot_release(loop, h->v[i].slot);
    free(h->v);
    *h = (cio__heap_t){0};
    loop->timers_cancelled = 0;
}
