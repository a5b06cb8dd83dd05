/*
 * loop/context.c: preparing a new context. With the assembly switch, the new
 * stack is laid out as if cio__ctx_switch had saved it, so the first switch
 * "returns" into cio__ctx_trampoline; with ucontext, makecontext does it.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "context.h"

#if CIO_CONTEXT_UCONTEXT

/* makecontext passes int arguments only: the pointer travels in two halves. */
static void ucontext_entry(unsigned int fn_hi, unsigned int fn_lo, unsigned int arg_hi,
                           unsigned int arg_lo)
{
    uintptr_t fn = ((uintptr_t)fn_hi << 32) | fn_lo;
    uintptr_t arg = ((uintptr_t)arg_hi << 32) | arg_lo;
    ((cio__ctx_entry_t)fn)((void *)arg);
}

void cio__ctx_make(cio__ctx_t *ctx, void *stack, size_t size, cio__ctx_entry_t entry, void *arg)
{
    uintptr_t fn = (uintptr_t)entry, a = (uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 4, (unsigned)(fn >> 32), (unsigned)fn,
                (unsigned)(a >> 32), (unsigned)a);
}

void cio__ctx_switch(cio__ctx_t *from, cio__ctx_t *to)
{
    swapcontext(&from->uc, &to->uc);
}

#else

void cio__ctx_trampoline(void);

#if defined(__x86_64__)
/* Saved by cio__ctx_switch, lowest address first. */
struct initial_frame {
    uint32_t mxcsr;
    uint16_t fpucw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp;
    uint64_t ret; /* "returns" into the trampoline, leaving the stack 16-byte aligned */
};

void cio__ctx_make(cio__ctx_t *ctx, void *stack, size_t size, cio__ctx_entry_t entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    struct initial_frame *f = (struct initial_frame *)(top - sizeof(*f));
    memset(f, 0, sizeof(*f));
    /* Default MXCSR (all exceptions masked) and x87 control word. */
    f->mxcsr = 0x1f80;
    f->fpucw = 0x037f;
    f->r12 = (uint64_t)(uintptr_t)entry;
    f->r13 = (uint64_t)(uintptr_t)arg;
    f->ret = (uint64_t)(uintptr_t)cio__ctx_trampoline;
    ctx->sp = f;
}
#elif defined(__aarch64__)
/* Saved by cio__ctx_switch, lowest address first: 160 bytes. */
struct initial_frame {
    uint64_t x19, x20, x21_x28[8], x29, x30;
    uint64_t d8_d15[8];
};

void cio__ctx_make(cio__ctx_t *ctx, void *stack, size_t size, cio__ctx_entry_t entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    struct initial_frame *f = (struct initial_frame *)(top - sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->x19 = (uint64_t)(uintptr_t)entry;
    f->x20 = (uint64_t)(uintptr_t)arg;
    f->x30 = (uint64_t)(uintptr_t)cio__ctx_trampoline;
    ctx->sp = f;
}
#else
#error "no assembly context switch for this CPU: configure --with-context=ucontext"
#endif

#endif /* CIO_CONTEXT_UCONTEXT */

/* ---- fibers: context switches the sanitizers can follow ------------------- */

int cio__fiber_init(cio__fiber_t *f, void *stack, size_t size, cio__ctx_entry_t entry, void *arg)
{
    memset(f, 0, sizeof(*f));
    f->stack = stack;
    f->stack_size = size;
#ifdef CIO_TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
    if (!f->tsan_fiber)
        return -ENOMEM;
#endif
    cio__ctx_make(&f->ctx, stack, size, entry, arg);
    return 0;
}

void cio__fiber_destroy(cio__fiber_t *f)
{
#ifdef CIO_TSAN
    /* A thread's own fiber belongs to ThreadSanitizer, not to us. */
    if (f->stack && f->tsan_fiber)
        __tsan_destroy_fiber(f->tsan_fiber);
#endif
    f->tsan_fiber = NULL;
}

/*
 * Back in @p self after a switch. AddressSanitizer reports the stack we came
 * from: for a thread's own stack that is the only way to learn its bounds,
 * which the next switch back to it needs.
 */
static void finish_switch(cio__fiber_t *self)
{
#ifdef CIO_ASAN
    const void *lo = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &lo, &size);
    if (self->peer && !self->peer->stack) {
        self->peer->asan_stack = lo;
        self->peer->asan_stack_size = size;
    }
#else
    (void)self;
#endif
}

void cio__fiber_switch(cio__fiber_t *from, cio__fiber_t *to, bool from_exits)
{
    to->peer = from;
#ifdef CIO_ASAN
    const void *lo = to->stack ? to->stack : to->asan_stack;
    size_t size = to->stack ? to->stack_size : to->asan_stack_size;
    __sanitizer_start_switch_fiber(from_exits ? NULL : &from->asan_fake_stack, lo, size);
#else
    (void)from_exits;
#endif
#ifdef CIO_TSAN
    if (!from->tsan_fiber)
        from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    cio__ctx_switch(&from->ctx, &to->ctx);
    finish_switch(from);
}

void cio__fiber_started(cio__fiber_t *self)
{
    finish_switch(self);
}
