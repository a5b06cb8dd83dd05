/*
 * loop/alloc.c: the allocation-failure hook behind loop/alloc.h. Armed with
 * N, it counts the library's allocations down, from any thread, and fails the
 * Nth with ENOMEM; then it disarms itself. Standalone (config/ is built
 * without the rest of the library for fuzzing), so it includes alloc.h alone.
 */
#include <errno.h>

#include "alloc.h"

_Atomic unsigned long cio__alloc_countdown;
static _Atomic unsigned long failures;

bool cio__alloc_fail_now(void)
{
    unsigned long n = atomic_load_explicit(&cio__alloc_countdown, memory_order_relaxed);
    /* Threads allocating at once each take one step: exactly one reaches zero. */
    while (n != 0 &&
           !atomic_compare_exchange_weak_explicit(&cio__alloc_countdown, &n, n - 1,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    if (n != 1)
        return false;
    atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
    errno = ENOMEM;
    return true;
}

/* Arming counts failures anew; disarming keeps the count for cio__alloc_failures(). */
void cio__alloc_fail_after(unsigned long n)
{
    if (n != 0)
        atomic_store_explicit(&failures, 0, memory_order_relaxed);
    atomic_store_explicit(&cio__alloc_countdown, n, memory_order_seq_cst);
}

unsigned long cio__alloc_failures(void)
{
    return atomic_load_explicit(&failures, memory_order_relaxed);
}

int cio__asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = cio__vasprintf(out, fmt, ap);
    va_end(ap);
    return n;
}
