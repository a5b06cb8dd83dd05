/*
 * loop/context.h: switching between stacks, the engine under tasks. A context
 * is a saved stack pointer (the assembly versions) or a ucontext_t (the
 * portable fallback, which costs a system call per switch); configure picks
 * one with --with-context.
 */
#ifndef CIO_LOOP_CONTEXT_H
#define CIO_LOOP_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CIO_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CIO_TSAN 1
#endif

#if CIO_CONTEXT_UCONTEXT
#include <ucontext.h>
typedef struct cio__ctx {
    ucontext_t uc;
} cio__ctx_t;
#else
typedef struct cio__ctx {
    void *sp; /* the stack pointer, callee-saved registers pushed below it */
} cio__ctx_t;
#endif

/* Entry point of a new context; it must never return (switch away instead). */
typedef void (*cio__ctx_entry_t)(void *arg);

/*
 * Prepare @p ctx to run @p entry(@p arg) on the stack [@p stack, @p stack +
 * @p size) when first switched to.
 */
void cio__ctx_make(cio__ctx_t *ctx, void *stack, size_t size, cio__ctx_entry_t entry, void *arg);

/* Save the current context in @p from and resume @p to. */
void cio__ctx_switch(cio__ctx_t *from, cio__ctx_t *to);

/*
 * A fiber: a context plus what the sanitizers must be told about its stack.
 * Always switch with cio__fiber_switch(), never cio__ctx_switch() directly, so
 * AddressSanitizer and ThreadSanitizer follow the stack changes. A thread's own
 * stack is a fiber too (a zeroed one, learnt on the first switch).
 */
typedef struct cio__fiber {
    cio__ctx_t ctx;
    void *stack; /* lowest usable address; NULL for a thread's own stack */
    size_t stack_size;
    void *asan_fake_stack;  /* AddressSanitizer's fake stack while switched out */
    const void *asan_stack; /* a thread's own stack, as AddressSanitizer reported it */
    size_t asan_stack_size;
    void *tsan_fiber;        /* ThreadSanitizer's fiber */
    struct cio__fiber *peer; /* the fiber that last switched to this one */
} cio__fiber_t;

/* Make @p f run @p entry(@p arg) on [@p stack, @p stack + @p size). 0 or -ENOMEM. */
int cio__fiber_init(cio__fiber_t *f, void *stack, size_t size, cio__ctx_entry_t entry, void *arg);

/* Release what cio__fiber_init() took; @p f must not be running. */
void cio__fiber_destroy(cio__fiber_t *f);

/* Switch from the running fiber @p from to @p to; @p from_exits when @p from
 * will never be resumed (its stack is about to be freed). */
void cio__fiber_switch(cio__fiber_t *from, cio__fiber_t *to, bool from_exits);

/* The first call of a fiber's entry function, completing the switch into it. */
void cio__fiber_started(cio__fiber_t *self);

#endif /* CIO_LOOP_CONTEXT_H */
