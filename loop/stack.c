/*
 * loop/stack.c: task stacks. Each is an anonymous mapping with a PROT_NONE
 * guard page below it, so an overflow faults at once instead of overwriting
 * the neighbouring memory. Pages are committed only when touched. A loop keeps
 * a few released stacks of the default size for reuse, so creating and
 * finishing a task costs no system call in steady state.
 */
#include <assert.h>
#include <errno.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define STACK_POOL_MAX 64

static size_t page_size(void)
{
    static size_t cached;
    if (!cached)
        cached = (size_t)sysconf(_SC_PAGESIZE);
    return cached;
}

/* Round a requested size up to whole pages; 0 means the default. */
size_t cio__stack_size(size_t requested)
{
    size_t ps = page_size();
    size_t size = requested ? requested : CIO_TASK_STACK_DEFAULT;
    if (size > SIZE_MAX - ps)
        return 0;
    return (size + ps - 1) & ~(ps - 1);
}

static int map_stack(size_t size, cio__stack_t *st)
{
    size_t guard = page_size();
    char *base = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    if (mprotect(base, guard, PROT_NONE) < 0) {
        int err = -errno;
        munmap(base, size + guard);
        return err;
    }
    st->lo = base + guard;
    st->size = size;
    return 0;
}

static void unmap_stack(cio__stack_t *st)
{
    munmap((char *)st->lo - page_size(), st->size + page_size());
    st->lo = NULL;
}

/* A stack of @p size usable bytes (already rounded), from the pool if it fits. */
int cio__stack_get(cio_loop_t *loop, size_t size, cio__stack_t *st)
{
    if (size == cio__stack_size(0) && loop->stack_pool_len > 0) {
        *st = loop->stack_pool[--loop->stack_pool_len];
#ifdef CIO_ASAN
        /* Frames of the stack's last task may still be poisoned. */
        __asan_unpoison_memory_region(st->lo, st->size);
#endif
        return 0;
    }
    return map_stack(size, st);
}

/* Give a stack back: pooled if it has the default size and there is room. */
void cio__stack_put(cio_loop_t *loop, cio__stack_t *st)
{
    assert(st->lo && st->size > 0);
    if (st->size == cio__stack_size(0) && loop->stack_pool_len < STACK_POOL_MAX) {
        if (!loop->stack_pool) {
            loop->stack_pool = malloc(STACK_POOL_MAX * sizeof(*loop->stack_pool));
            if (!loop->stack_pool) {
                unmap_stack(st);
                return;
            }
        }
        loop->stack_pool[loop->stack_pool_len++] = *st;
        st->lo = NULL;
        return;
    }
    unmap_stack(st);
}

/* Unmap every pooled stack (freeing the loop). */
void cio__stack_pool_destroy(cio_loop_t *loop)
{
    while (loop->stack_pool_len > 0)
        unmap_stack(&loop->stack_pool[--loop->stack_pool_len]);
    free(loop->stack_pool);
    loop->stack_pool = NULL;
}
