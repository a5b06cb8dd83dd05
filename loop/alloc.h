/*
 * loop/alloc.h: every allocation the library makes, and a test-only hook that
 * makes the Nth of them fail (tests/test_alloc.c walks N over each module).
 * The internal.h of loop/, workers/, framework/ and config/ includes this
 * header after its system headers, and the macros at its end send malloc,
 * calloc, realloc, aligned_alloc, strdup, strndup, asprintf, vasprintf and
 * open_memstream through the wrappers below.
 *
 * Macros rather than renamed call sites: one line per folder covers every
 * file, the ones other work is changing at the same time and the ones not
 * written yet, so no call site can be forgotten; free() stays as it is, as
 * every wrapper returns the C library's own memory. The macros are function
 * like, so a name that is not called (a destructor pointer) is untouched. A
 * system header included after them is harmless: this header includes each
 * one that declares a wrapped function first, and its guard keeps it from
 * being read again.
 *
 * Unarmed, a wrapper costs one load and one branch predicted not taken
 * before the C library's call.
 */
#ifndef CIO_LOOP_ALLOC_H
#define CIO_LOOP_ALLOC_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreio/common.h"

/* Allocations left before the one that fails; 0 when the hook is not armed. */
extern _Atomic unsigned long cio__alloc_countdown __attribute__((visibility("hidden")));

/* The armed path: counts this allocation; true (errno ENOMEM) if it is to fail. */
bool cio__alloc_fail_now(void) __attribute__((visibility("hidden")));

/**
 * Tests only: the @p n th allocation the library makes from now on fails
 * (once; the ones after it succeed again); 0 disarms. Any thread.
 */
CIO_EXTERN void cio__alloc_fail_after(unsigned long n);

/** Tests only: allocations failed by the hook since it was last armed (disarmed or not). */
CIO_EXTERN unsigned long cio__alloc_failures(void);

static inline bool cio__alloc_fails(void)
{
    return __builtin_expect(atomic_load_explicit(&cio__alloc_countdown, memory_order_relaxed) != 0,
                            0) &&
           cio__alloc_fail_now();
}

static inline void *cio__malloc(size_t size)
{
    return cio__alloc_fails() ? NULL : malloc(size);
}

static inline void *cio__calloc(size_t n, size_t size)
{
    return cio__alloc_fails() ? NULL : calloc(n, size);
}

/* A failed realloc leaves @p p as it was, as the C library's does. */
static inline void *cio__realloc(void *p, size_t size)
{
    return cio__alloc_fails() ? NULL : realloc(p, size);
}

static inline void *cio__aligned_alloc(size_t align, size_t size)
{
    return cio__alloc_fails() ? NULL : aligned_alloc(align, size);
}

static inline char *cio__strdup(const char *s)
{
    return cio__alloc_fails() ? NULL : strdup(s);
}

static inline char *cio__strndup(const char *s, size_t n)
{
    return cio__alloc_fails() ? NULL : strndup(s, n);
}

/* Fails as vasprintf does: -1, and *@p out is not to be used. */
static inline int cio__vasprintf(char **out, const char *fmt, va_list ap)
{
    return cio__alloc_fails() ? -1 : vasprintf(out, fmt, ap);
}

int cio__asprintf(char **out, const char *fmt, ...) __attribute__((visibility("hidden")))
__attribute__((format(printf, 2, 3)));

static inline FILE *cio__open_memstream(char **buf, size_t *size)
{
    return cio__alloc_fails() ? NULL : open_memstream(buf, size);
}

#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef strdup
#undef strndup
#undef asprintf
#undef vasprintf
#undef open_memstream
#define malloc(size)               cio__malloc(size)
#define calloc(n, size)            cio__calloc(n, size)
#define realloc(p, size)           cio__realloc(p, size)
#define aligned_alloc(align, size) cio__aligned_alloc(align, size)
#define strdup(s)                  cio__strdup(s)
#define strndup(s, n)              cio__strndup(s, n)
#define asprintf(...)              cio__asprintf(__VA_ARGS__)
#define vasprintf(out, fmt, ap)    cio__vasprintf(out, fmt, ap)
#define open_memstream(buf, size)  cio__open_memstream(buf, size)

#endif /* CIO_LOOP_ALLOC_H */
