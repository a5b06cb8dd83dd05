/*
 * loop/heap.h: the timer heap, a binary min-heap of small entries kept in one
 * array. Entries order by due time, then by scheduling sequence, so timers
 * with equal deadlines fire in the order they were scheduled.
 */
#ifndef CIO_LOOP_HEAP_H
#define CIO_LOOP_HEAP_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cio__heap_entry {
    double when;   /* loop time the timer is due */
    uint64_t seq;  /* scheduling order, the tie-breaker */
    uint32_t slot; /* the handle slot holding the callback */
} cio__heap_entry_t;

typedef struct cio__heap {
    cio__heap_entry_t *v;
    size_t len;
    size_t cap;
} cio__heap_t;

static inline int cio__heap_less(const cio__heap_entry_t *a, const cio__heap_entry_t *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* The heap property around entry @p i: not before its parent, not after its children. */
static inline int cio__heap_ordered_at(const cio__heap_t *h, size_t i)
{
    size_t c = 2 * i + 1;
    return (i == 0 || !cio__heap_less(&h->v[i], &h->v[(i - 1) / 2])) &&
           (c >= h->len || !cio__heap_less(&h->v[c], &h->v[i])) &&
           (c + 1 >= h->len || !cio__heap_less(&h->v[c + 1], &h->v[i]));
}

/* Move entry @p i up to its place; returns where it landed. */
static inline size_t cio__heap_sift_up(cio__heap_t *h, size_t i)
{
    cio__heap_entry_t e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cio__heap_less(&e, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = e;
    return i;
}

/* Move entry @p i down to its place; returns where it landed. */
static inline size_t cio__heap_sift_down(cio__heap_t *h, size_t i)
{
    cio__heap_entry_t e = h->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && cio__heap_less(&h->v[child + 1], &h->v[child]))
            child++;
        if (!cio__heap_less(&h->v[child], &e))
            break;
        h->v[i] = h->v[child];
        i = child;
    }
    h->v[i] = e;
    return i;
}

/* Add an entry; the caller has made room (len < cap). */
static inline void cio__heap_push(cio__heap_t *h, cio__heap_entry_t e)
{
    assert(h->len < h->cap);
    h->v[h->len++] = e;
    size_t at = cio__heap_sift_up(h, h->len - 1);
    assert(cio__heap_ordered_at(h, at));
    (void)at;
}

/* Remove the earliest entry; the heap must not be empty. */
static inline void cio__heap_pop(cio__heap_t *h)
{
    assert(h->len > 0);
    h->v[0] = h->v[--h->len];
    if (h->len > 0) {
        size_t at = cio__heap_sift_down(h, 0);
        assert(cio__heap_ordered_at(h, at));
        (void)at;
    }
}

/* Restore the heap property over the whole array (after filtering it). */
static inline void cio__heap_heapify(cio__heap_t *h)
{
    for (size_t i = h->len / 2; i-- > 0;)
        cio__heap_sift_down(h, i);
}

#endif /* CIO_LOOP_HEAP_H */
