/*
 * tests/context_test.c: a self-contained check of the stack switch under
 * tasks: loop/context.c with loop/context_<cpu>.S, or the ucontext fallback.
 * No libevent, no Check, no configure: it needs only loop/ and an (empty)
 * config.h on the include path, and -DCIO_CONTEXT_UCONTEXT=0 or 1.
 * tests/context_cross.sh builds it natively and for AArch64 (run under
 * qemu-user).
 *
 * Checked: ping-pong between the main context and two coroutines, raw and
 * through the fiber wrappers; callee-saved registers surviving a switch, both
 * as compiled locals and as every register the ABI names (set and checked in
 * assembly); a 16-byte aligned stack at entry; deep recursion using most of a
 * 64 KiB stack; entry functions that switch away for good (and, with the
 * assembly switch, that one returning traps instead of running wild).
 */
#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "context.h"

#if defined(__aarch64__)
#define ARCH "aarch64"
#elif defined(__x86_64__)
#define ARCH "x86_64"
#else
#define ARCH "unknown-cpu"
#endif

#if CIO_CONTEXT_UCONTEXT
#define BACKEND "ucontext"
#else
#define BACKEND "asm"
#endif

#define NOINLINE __attribute__((noinline))

/* ---- reporting --------------------------------------------------------- */

static int n_passed, n_failed, n_skipped;
static int test_failures; /* failed checks in the running test */

static void check_failed(int line, const char *what)
{
    if (test_failures++ < 10)
        fprintf(stderr, "  context_test.c:%d: check failed: %s\n", line, what);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__LINE__, #cond);                                                         \
    } while (0)

/* A test writes a short note on what it did into @p note. */
typedef void (*test_fn)(char *note, size_t n);

static void run(const char *name, test_fn fn)
{
    char note[160] = "";
    test_failures = 0;
    fn(note, sizeof note);
    if (test_failures == 0) {
        printf("PASS: %s%s%s\n", name, note[0] ? ": " : "", note);
        n_passed++;
    } else {
        printf("FAIL: %s (%d failed checks)%s%s\n", name, test_failures, note[0] ? ": " : "", note);
        n_failed++;
    }
    fflush(stdout);
}

/* ---- stacks: a PROT_NONE guard page below, a canary page above ------------ */

#define STACK_SIZE (64 * 1024)
#define CANARY 0xa5

struct stack {
    void *map;
    size_t map_size, page;
    char *lo; /* lowest usable address */
    size_t size;
};

static void stack_alloc(struct stack *s, size_t size)
{
    s->page = (size_t)sysconf(_SC_PAGESIZE);
    s->size = (size + s->page - 1) & ~(s->page - 1);
    s->map_size = s->page + s->size + s->page;
    s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(s->map, s->page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    s->lo = (char *)s->map + s->page;
    memset(s->lo + s->size, CANARY, s->page);
}

/* Unmap @p s; nothing may have been written above its top. */
static void stack_free(struct stack *s)
{
    const unsigned char *c = (const unsigned char *)s->lo + s->size;
    size_t bad = 0;
    for (size_t i = 0; i < s->page; i++)
        bad += c[i] != CANARY;
    CHECK(bad == 0); /* written above the top of the stack */
    munmap(s->map, s->map_size);
}

/* ---- (a) ping-pong: main -> co0 -> co1 -> main, many times --------------- */

#define PP_ROUNDS 40000L

static cio__ctx_t pp_main, pp_co[2];
static const int pp_ids[2] = {0, 1};
static volatile long pp_seq, pp_value, pp_switches;
static volatile int pp_done[2], pp_after_final;

static void pp_entry(void *arg)
{
    int id = *(const int *)arg;
    CHECK(arg == &pp_ids[id]);
    cio__ctx_t *next = id == 0 ? &pp_co[1] : &pp_main;
    for (long i = 0; i < PP_ROUNDS; i++) {
        CHECK(pp_seq == 3 * i + 1 + id);
        CHECK(pp_value == pp_seq * 7 + 3);
        pp_seq = pp_seq + 1;
        pp_value = pp_seq * 7 + 3;
        pp_switches = pp_switches + 1;
        cio__ctx_switch(&pp_co[id], next);
    }
    pp_done[id] = 1;
    pp_switches = pp_switches + 1;
    cio__ctx_switch(&pp_co[id], next); /* for good */
    pp_after_final = 1;
    abort();
}

static void test_pingpong_ctx(char *note, size_t n)
{
    struct stack st[2];
    pp_seq = 0;
    pp_value = 3;
    pp_switches = 0;
    for (int i = 0; i < 2; i++) {
        stack_alloc(&st[i], STACK_SIZE);
        cio__ctx_make(&pp_co[i], st[i].lo, st[i].size, pp_entry, (void *)&pp_ids[i]);
    }
    for (long i = 0; i < PP_ROUNDS; i++) {
        CHECK(pp_seq == 3 * i);
        CHECK(pp_value == pp_seq * 7 + 3);
        pp_seq = pp_seq + 1;
        pp_value = pp_seq * 7 + 3;
        pp_switches = pp_switches + 1;
        cio__ctx_switch(&pp_main, &pp_co[0]);
    }
    CHECK(pp_seq == 3 * PP_ROUNDS);
    CHECK(!pp_done[0] && !pp_done[1]);
    pp_switches = pp_switches + 1;
    cio__ctx_switch(&pp_main, &pp_co[0]); /* both finish, co1 comes back here */
    CHECK(pp_done[0] && pp_done[1]);
    CHECK(!pp_after_final);
    for (int i = 0; i < 2; i++)
        stack_free(&st[i]);
    snprintf(note, n, "%ld switches main->co0->co1->main", (long)pp_switches);
}

/* ---- (a') the same through the fiber wrappers ---------------------------- */

static cio__fiber_t fb_main, fb_co[2];
static volatile long fb_seq, fb_switches;
static volatile int fb_done[2], fb_after_final;

static void fb_entry(void *arg)
{
    cio__fiber_t *self = arg;
    cio__fiber_started(self);
    int id = self == &fb_co[0] ? 0 : 1;
    cio__fiber_t *next = id == 0 ? &fb_co[1] : &fb_main;
    CHECK(self->peer == (id == 0 ? &fb_main : &fb_co[0]));
    for (long i = 0; i < PP_ROUNDS; i++) {
        CHECK(fb_seq == 3 * i + 1 + id);
        fb_seq = fb_seq + 1;
        fb_switches = fb_switches + 1;
        cio__fiber_switch(self, next, false);
    }
    fb_done[id] = 1;
    fb_switches = fb_switches + 1;
    cio__fiber_switch(self, next, true); /* for good */
    fb_after_final = 1;
    abort();
}

static void test_pingpong_fiber(char *note, size_t n)
{
    struct stack st[2];
    memset(&fb_main, 0, sizeof(fb_main)); /* a thread's own stack: a zeroed fiber */
    fb_seq = 0;
    fb_switches = 0;
    for (int i = 0; i < 2; i++) {
        stack_alloc(&st[i], STACK_SIZE);
        CHECK(cio__fiber_init(&fb_co[i], st[i].lo, st[i].size, fb_entry, &fb_co[i]) == 0);
    }
    for (long i = 0; i < PP_ROUNDS; i++) {
        CHECK(fb_seq == 3 * i);
        fb_seq = fb_seq + 1;
        fb_switches = fb_switches + 1;
        cio__fiber_switch(&fb_main, &fb_co[0], false);
        CHECK(fb_main.peer == &fb_co[1]);
    }
    fb_switches = fb_switches + 1;
    cio__fiber_switch(&fb_main, &fb_co[0], false);
    CHECK(fb_done[0] && fb_done[1]);
    CHECK(!fb_after_final);
    CHECK(fb_main.peer == &fb_co[1]);
    for (int i = 0; i < 2; i++) {
        cio__fiber_destroy(&fb_co[i]);
        stack_free(&st[i]);
    }
    snprintf(note, n, "%ld fiber switches", (long)fb_switches);
}

/* ---- (b) callee-saved registers: 12 integer and 8 double locals ---------- */

#define RL_ROUNDS 20000L
#define RL_K 6364136223846793005UL

static cio__ctx_t rl_main, rl_co;
static volatile unsigned long rl_seed = 0x243f6a8885a308d3UL;
static volatile unsigned long rl_co_bad;
static volatile int rl_after_final;

/*
 * Computes 20 values from the loop counter, switches, then checks them
 * against values computed afresh from a second volatile read, so the compiler
 * must keep the first ones alive across the switch (in callee-saved registers
 * at -O2, on the stack at -O0). Only exact floating-point operations are used.
 */
static NOINLINE unsigned long rl_work(unsigned long side, cio__ctx_t *self, cio__ctx_t *peer)
{
    unsigned long bad = 0;
    for (long i = 0; i < RL_ROUNDS; i++) {
        unsigned long s = rl_seed ^ (unsigned long)i ^ (side << 40);
        unsigned long l0 = s * RL_K + 1, l1 = l0 * RL_K + 2, l2 = l1 * RL_K + 3;
        unsigned long l3 = l2 * RL_K + 4, l4 = l3 * RL_K + 5, l5 = l4 * RL_K + 6;
        unsigned long l6 = l5 * RL_K + 7, l7 = l6 * RL_K + 8, l8 = l7 * RL_K + 9;
        unsigned long l9 = l8 * RL_K + 10, l10 = l9 * RL_K + 11, l11 = l10 * RL_K + 12;
        double d0 = (double)(l0 >> 11) * 0.5, d1 = (double)(l1 >> 11) * 0.25;
        double d2 = (double)(l2 >> 11) * 2.0, d3 = (double)(l3 >> 11) * 4.0;
        double d4 = -(double)(l4 >> 11), d5 = (double)(l5 >> 11) * 0.125;
        double d6 = (double)(l6 >> 11) * 8.0, d7 = -(double)(l7 >> 11) * 0.5;

        cio__ctx_switch(self, peer);

        unsigned long t = rl_seed ^ (unsigned long)i ^ (side << 40);
        unsigned long e0 = t * RL_K + 1, e1 = e0 * RL_K + 2, e2 = e1 * RL_K + 3;
        unsigned long e3 = e2 * RL_K + 4, e4 = e3 * RL_K + 5, e5 = e4 * RL_K + 6;
        unsigned long e6 = e5 * RL_K + 7, e7 = e6 * RL_K + 8, e8 = e7 * RL_K + 9;
        unsigned long e9 = e8 * RL_K + 10, e10 = e9 * RL_K + 11, e11 = e10 * RL_K + 12;
        bad += (l0 != e0) + (l1 != e1) + (l2 != e2) + (l3 != e3) + (l4 != e4) + (l5 != e5);
        bad += (l6 != e6) + (l7 != e7) + (l8 != e8) + (l9 != e9) + (l10 != e10) + (l11 != e11);
        bad += (d0 != (double)(e0 >> 11) * 0.5) + (d1 != (double)(e1 >> 11) * 0.25);
        bad += (d2 != (double)(e2 >> 11) * 2.0) + (d3 != (double)(e3 >> 11) * 4.0);
        bad += (d4 != -(double)(e4 >> 11)) + (d5 != (double)(e5 >> 11) * 0.125);
        bad += (d6 != (double)(e6 >> 11) * 8.0) + (d7 != -(double)(e7 >> 11) * 0.5);
    }
    return bad;
}

static void rl_entry(void *arg)
{
    (void)arg;
    rl_co_bad = rl_work(1, &rl_co, &rl_main);
    cio__ctx_switch(&rl_co, &rl_main); /* for good */
    rl_after_final = 1;
    abort();
}

static void test_saved_locals(char *note, size_t n)
{
    struct stack st;
    stack_alloc(&st, STACK_SIZE);
    rl_co_bad = ~0UL;
    cio__ctx_make(&rl_co, st.lo, st.size, rl_entry, NULL);
    unsigned long bad = rl_work(0, &rl_main, &rl_co);
    cio__ctx_switch(&rl_main, &rl_co); /* let the coroutine check its last round */
    CHECK(bad == 0);
    CHECK(rl_co_bad == 0);
    CHECK(!rl_after_final);
    stack_free(&st);
    snprintf(note, n, "%ld rounds, mismatches main %lu, coroutine %lu", RL_ROUNDS, bad,
             (unsigned long)rl_co_bad);
}

/* ---- (b') every callee-saved register, set and read back in assembly ------ */

#if defined(__aarch64__) || defined(__x86_64__)
#define HAVE_SENTINEL 1
#if defined(__aarch64__)
#define NSENT 19
static const char *const sent_names[NSENT] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                              "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                              "d11", "d12", "d13", "d14", "d15"};
#else
#define NSENT 6
static const char *const sent_names[NSENT] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
#endif

/* ctxtest_sentinel_switch(s): load s->in into the callee-saved registers, call
 * cio__ctx_switch(s->from, s->to), store the registers into s->out. */
struct sentinel {
    cio__ctx_t *from, *to;
    uint64_t in[NSENT];
    uint64_t out[NSENT];
};
_Static_assert(offsetof(struct sentinel, in) == 16, "struct sentinel layout");
_Static_assert(offsetof(struct sentinel, out) == 16 + 8 * NSENT, "struct sentinel layout");
void ctxtest_sentinel_switch(struct sentinel *s);

#if defined(__aarch64__)
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl ctxtest_sentinel_switch\n"
        ".hidden ctxtest_sentinel_switch\n"
        ".type ctxtest_sentinel_switch, %function\n"
        "ctxtest_sentinel_switch:\n"
        "  stp x29, x30, [sp, #-176]!\n"
        "  mov x29, sp\n"
        "  stp x19, x20, [sp, #16]\n"
        "  stp x21, x22, [sp, #32]\n"
        "  stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n"
        "  stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  str x0, [sp, #160]\n"
        "  add x2, x0, #16\n" /* in[] */
        "  ldp x19, x20, [x2, #0]\n"
        "  ldp x21, x22, [x2, #16]\n"
        "  ldp x23, x24, [x2, #32]\n"
        "  ldp x25, x26, [x2, #48]\n"
        "  ldp x27, x28, [x2, #64]\n"
        "  ldr x29, [x2, #80]\n"
        "  ldp d8, d9, [x2, #88]\n"
        "  ldp d10, d11, [x2, #104]\n"
        "  ldp d12, d13, [x2, #120]\n"
        "  ldp d14, d15, [x2, #136]\n"
        "  ldp x0, x1, [x0]\n" /* from, to */
        "  bl cio__ctx_switch\n"
        "  ldr x0, [sp, #160]\n"
        "  add x2, x0, #168\n" /* out[] */
        "  stp x19, x20, [x2, #0]\n"
        "  stp x21, x22, [x2, #16]\n"
        "  stp x23, x24, [x2, #32]\n"
        "  stp x25, x26, [x2, #48]\n"
        "  stp x27, x28, [x2, #64]\n"
        "  str x29, [x2, #80]\n"
        "  stp d8, d9, [x2, #88]\n"
        "  stp d10, d11, [x2, #104]\n"
        "  stp d12, d13, [x2, #120]\n"
        "  stp d14, d15, [x2, #136]\n"
        "  ldp x19, x20, [sp, #16]\n"
        "  ldp x21, x22, [sp, #32]\n"
        "  ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n"
        "  ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size ctxtest_sentinel_switch, .-ctxtest_sentinel_switch\n"
        ".popsection\n");
#else
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl ctxtest_sentinel_switch\n"
        ".hidden ctxtest_sentinel_switch\n"
        ".type ctxtest_sentinel_switch, @function\n"
        "ctxtest_sentinel_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %rdi\n" /* 7 pushes: the stack is 16-byte aligned again */
        "  movq 8(%rdi), %rsi\n"
        "  movq 16(%rdi), %rbx\n"
        "  movq 24(%rdi), %rbp\n"
        "  movq 32(%rdi), %r12\n"
        "  movq 40(%rdi), %r13\n"
        "  movq 48(%rdi), %r14\n"
        "  movq 56(%rdi), %r15\n"
        "  movq (%rdi), %rdi\n"
        "  call cio__ctx_switch\n"
        "  movq (%rsp), %rax\n"
        "  movq %rbx, 64(%rax)\n"
        "  movq %rbp, 72(%rax)\n"
        "  movq %r12, 80(%rax)\n"
        "  movq %r13, 88(%rax)\n"
        "  movq %r14, 96(%rax)\n"
        "  movq %r15, 104(%rax)\n"
        "  popq %rdi\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size ctxtest_sentinel_switch, .-ctxtest_sentinel_switch\n"
        ".popsection\n");
#endif

#define SN_ROUNDS 20000L

static cio__ctx_t sn_main, sn_co;
static volatile unsigned long sn_co_bad;
static volatile int sn_after_final;
static char sn_first_bad[96];

static uint64_t sn_pattern(unsigned long side, long i, int k)
{
    return (0x1111111111111111ULL * (side + 1)) ^ ((uint64_t)i << 12) ^ ((uint64_t)k << 52) ^
           (uint64_t)k;
}

/* Switch @p self -> @p peer with sentinels in every callee-saved register. */
static unsigned long sn_work(unsigned long side, cio__ctx_t *self, cio__ctx_t *peer)
{
    struct sentinel s;
    unsigned long bad = 0;
    for (long i = 0; i < SN_ROUNDS; i++) {
        s.from = self;
        s.to = peer;
        for (int k = 0; k < NSENT; k++) {
            s.in[k] = sn_pattern(side, i, k);
            s.out[k] = 0;
        }
        ctxtest_sentinel_switch(&s);
        for (int k = 0; k < NSENT; k++) {
            if (s.out[k] != s.in[k]) {
                if (bad++ == 0)
                    snprintf(sn_first_bad, sizeof sn_first_bad,
                             "%s side %lu round %ld: %#llx, expected %#llx", sent_names[k], side,
                             i, (unsigned long long)s.out[k], (unsigned long long)s.in[k]);
            }
        }
    }
    return bad;
}

static void sn_entry(void *arg)
{
    (void)arg;
    sn_co_bad = sn_work(1, &sn_co, &sn_main);
    cio__ctx_switch(&sn_co, &sn_main); /* for good */
    sn_after_final = 1;
    abort();
}

static void test_saved_registers(char *note, size_t n)
{
    struct stack st;
    stack_alloc(&st, STACK_SIZE);
    sn_co_bad = ~0UL;
    sn_first_bad[0] = '\0';
    cio__ctx_make(&sn_co, st.lo, st.size, sn_entry, NULL);
    unsigned long bad = sn_work(0, &sn_main, &sn_co);
    cio__ctx_switch(&sn_main, &sn_co);
    CHECK(bad == 0);
    CHECK(sn_co_bad == 0);
    CHECK(!sn_after_final);
    stack_free(&st);
    if (sn_first_bad[0])
        snprintf(note, n, "first mismatch %s", sn_first_bad);
    else
        snprintf(note, n, "%d registers (%s..%s), %ld rounds each way", NSENT, sent_names[0],
                 sent_names[NSENT - 1], SN_ROUNDS);
}
#endif /* sentinel */

/* ---- (c) the stack of a new context is 16-byte aligned at entry ---------- */

struct al_result {
    uintptr_t frame, callee_frame, buf, sp;
    long double ld_in, ld;
    double vsum;
    char text[128];
    int ran;
};

static cio__ctx_t al_main, al_co;

static NOINLINE uintptr_t al_callee(void)
{
    _Alignas(16) volatile char buf[16];
    buf[0] = 1;
    if (((uintptr_t)buf & 15) != 0)
        return 1;
    return (uintptr_t)__builtin_frame_address(0);
}

static NOINLINE double al_vsum(int count, ...)
{
    va_list ap;
    double sum = 0;
    va_start(ap, count);
    for (int i = 0; i < count; i++)
        sum += va_arg(ap, double);
    va_end(ap);
    return sum;
}

static NOINLINE void al_format(char *out, size_t n, long double x)
{
    volatile double a = 1.25, b = -2.5;
    snprintf(out, n, "%.2f|%.3f|%.6Lf|%d|%s", a, b, x, 42, "ok");
}

static void al_entry(void *arg)
{
    struct al_result *r = arg;
    _Alignas(16) char buf[48];
    r->ran = 1;
    r->frame = (uintptr_t)__builtin_frame_address(0);
#if defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(r->sp));
#else
    r->sp = r->frame;
#endif
    __asm__ volatile("" : : "r"(buf) : "memory");
    r->buf = (uintptr_t)buf;
    r->callee_frame = al_callee();
    volatile long double x = r->ld_in;
    x = x * 3 / 7;
    r->ld = x;
    r->vsum = al_vsum(4, 0.5, 1.5, 2.5, 3.75);
    al_format(r->text, sizeof r->text, x);
    cio__ctx_switch(&al_co, &al_main); /* for good */
    abort();
}

static void test_alignment(char *note, size_t n)
{
    struct stack st;
    stack_alloc(&st, STACK_SIZE);
    char expect_text[128];
    volatile long double x = 1234.5L;
    x = x * 3 / 7;
    al_format(expect_text, sizeof expect_text, x);
    /* Every misalignment of the top the caller might pass. */
    for (size_t off = 0; off < 16; off++) {
        struct al_result r;
        memset(&r, 0, sizeof r);
        r.ld_in = 1234.5L;
        cio__ctx_make(&al_co, st.lo, st.size - off, al_entry, &r);
        cio__ctx_switch(&al_main, &al_co);
        uintptr_t lo = (uintptr_t)st.lo, top = lo + st.size - off;
        CHECK(r.ran);
        CHECK(r.frame % 16 == 0);
        CHECK(r.sp % 16 == 0);
        CHECK(r.buf % 16 == 0);
        CHECK(r.callee_frame % 16 == 0);
        CHECK(r.frame > lo && r.frame < top); /* it runs on the stack it was given */
        CHECK(r.buf > lo && r.buf < top);
        CHECK(top - r.frame < 1024);
        CHECK(r.ld == x);
        CHECK(r.vsum == 8.25);
        CHECK(strcmp(r.text, expect_text) == 0);
        if (strcmp(r.text, expect_text) != 0)
            fprintf(stderr, "  got \"%s\", expected \"%s\"\n", r.text, expect_text);
    }
    stack_free(&st);
    snprintf(note, n, "16 top offsets; printf \"%s\"", expect_text);
}

/* ---- (d) deep recursion using most of a 64 KiB stack --------------------- */

#define DP_MARGIN 8192 /* left unused at the bottom */

static cio__ctx_t dp_main, dp_co;
static char *dp_lo;
static uintptr_t dp_min;
static volatile int dp_depth;
static volatile unsigned long dp_pad_errors, dp_result;
static volatile int dp_after_final;

static NOINLINE unsigned long dp_recurse(int depth, unsigned long acc)
{
    volatile unsigned char pad[480];
    for (size_t k = 0; k < sizeof pad; k++)
        pad[k] = (unsigned char)(depth * 7 + (int)k);
    uintptr_t here = (uintptr_t)&pad[0];
    if (here < dp_min)
        dp_min = here;
    unsigned long r;
    if (here - (uintptr_t)dp_lo > DP_MARGIN) {
        r = dp_recurse(depth + 1, acc * 31 + (unsigned long)depth);
    } else {
        dp_depth = depth;
        r = acc;
        cio__ctx_switch(&dp_co, &dp_main); /* main scribbles on its own stack meanwhile */
    }
    for (size_t k = 0; k < sizeof pad; k++)
        if (pad[k] != (unsigned char)(depth * 7 + (int)k))
            dp_pad_errors = dp_pad_errors + 1;
    return r + (unsigned long)depth;
}

static void dp_entry(void *arg)
{
    dp_result = dp_recurse(0, (unsigned long)(uintptr_t)arg);
    cio__ctx_switch(&dp_co, &dp_main); /* for good */
    dp_after_final = 1;
    abort();
}

static NOINLINE void dp_scribble(void)
{
    volatile char big[32768];
    memset((char *)big, 0x5a, sizeof big);
}

static void test_deep_recursion(char *note, size_t n)
{
    struct stack st;
    stack_alloc(&st, STACK_SIZE);
    const unsigned long seed = 12345;
    dp_lo = st.lo;
    dp_min = UINTPTR_MAX;
    dp_depth = -1;
    dp_pad_errors = 0;
    cio__ctx_make(&dp_co, st.lo, st.size, dp_entry, (void *)(uintptr_t)seed);
    cio__ctx_switch(&dp_main, &dp_co); /* back from the deepest point */
    CHECK(dp_depth > 0);
    dp_scribble();
    cio__ctx_switch(&dp_main, &dp_co); /* unwinds, then back for good */
    unsigned long expect = seed;
    for (int d = 0; d < dp_depth; d++)
        expect = expect * 31 + (unsigned long)d;
    for (int d = dp_depth; d >= 0; d--)
        expect += (unsigned long)d;
    size_t used = (size_t)((uintptr_t)st.lo + st.size - dp_min);
    CHECK(dp_result == expect);
    CHECK(dp_pad_errors == 0);
    CHECK(used >= 48 * 1024 && used < STACK_SIZE);
    CHECK(!dp_after_final);
    stack_free(&st);
    snprintf(note, n, "depth %d, %zu of %d bytes used", dp_depth, used, STACK_SIZE);
}

/* ---- (e) entry functions never return: they switch away for good ---------- */

#define RS_ROUNDS 1000

static cio__ctx_t rs_main, rs_co;
static volatile long rs_runs;
static volatile int rs_after_final, rs_bad_arg;

static void rs_entry(void *arg)
{
    if ((long)(intptr_t)arg != rs_runs)
        rs_bad_arg = 1;
    rs_runs = rs_runs + 1;
    cio__ctx_switch(&rs_co, &rs_main); /* for good */
    rs_after_final = 1;
    abort();
}

/* A finished context's stack is reused for a new one, as task stacks are. */
static void test_restart(char *note, size_t n)
{
    struct stack st;
    stack_alloc(&st, STACK_SIZE);
    rs_runs = 0;
    for (long i = 0; i < RS_ROUNDS; i++) {
        cio__ctx_make(&rs_co, st.lo, st.size, rs_entry, (void *)(intptr_t)i);
        cio__ctx_switch(&rs_main, &rs_co);
    }
    CHECK(rs_runs == RS_ROUNDS);
    CHECK(!rs_bad_arg);
    CHECK(!rs_after_final);
    stack_free(&st);
    snprintf(note, n, "%d contexts made on one stack, each switched away for good", RS_ROUNDS);
}

/* Many live contexts, each on its own stack, resumed round-robin. */
#define MC_COUNT 64
#define MC_ROUNDS 200

static cio__ctx_t mc_main, mc_co[MC_COUNT];
static volatile long mc_turn;
static volatile int mc_bad, mc_finished;

static void mc_entry(void *arg)
{
    long id = (long)(intptr_t)arg;
    long local = id * 1000003;
    for (long r = 0; r < MC_ROUNDS; r++) {
        if (mc_turn != r * MC_COUNT + id || local != id * 1000003 + r)
            mc_bad = 1;
        local++;
        mc_turn = mc_turn + 1;
        cio__ctx_switch(&mc_co[id], &mc_main);
    }
    mc_finished = mc_finished + 1;
    cio__ctx_switch(&mc_co[id], &mc_main); /* for good */
    abort();
}

static void test_many_contexts(char *note, size_t n)
{
    static struct stack st[MC_COUNT];
    mc_turn = 0;
    for (long i = 0; i < MC_COUNT; i++) {
        stack_alloc(&st[i], 16 * 1024);
        cio__ctx_make(&mc_co[i], st[i].lo, st[i].size, mc_entry, (void *)(intptr_t)i);
    }
    for (long r = 0; r <= MC_ROUNDS; r++)
        for (long i = 0; i < MC_COUNT; i++)
            cio__ctx_switch(&mc_main, &mc_co[i]);
    CHECK(!mc_bad);
    CHECK(mc_turn == (long)MC_COUNT * MC_ROUNDS);
    CHECK(mc_finished == MC_COUNT);
    for (long i = 0; i < MC_COUNT; i++)
        stack_free(&st[i]);
    snprintf(note, n, "%d contexts x %d rounds", MC_COUNT, MC_ROUNDS);
}

#if !CIO_CONTEXT_UCONTEXT
/* An entry function that returns lands on the trampoline's trap (brk on
 * AArch64, ud2 on x86-64), not on whatever follows it. Run in a child. */
static cio__ctx_t tr_main, tr_co;

static void tr_entry(void *arg)
{
    int fd = *(int *)arg;
    if (write(fd, "R", 1) != 1)
        _exit(3);
    /* returns: breaks the contract on purpose */
}

static void test_return_traps(char *note, size_t n)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        alarm(20); /* should the entry's return run on instead of trapping */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2); /* qemu-user reports the uncaught signal on stderr */
        close(fds[0]);
        struct stack st;
        stack_alloc(&st, STACK_SIZE);
        cio__ctx_make(&tr_co, st.lo, st.size, tr_entry, &fds[1]);
        cio__ctx_switch(&tr_main, &tr_co);
        _exit(4); /* not reached */
    }
    close(fds[1]);
    char c = 0;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    CHECK(got == 1 && c == 'R');
    CHECK(WIFSIGNALED(status));
    CHECK(WIFSIGNALED(status) && (WTERMSIG(status) == SIGTRAP || WTERMSIG(status) == SIGILL));
    if (WIFSIGNALED(status))
        snprintf(note, n, "the child died of signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(note, n, "the child exited with status %d", WEXITSTATUS(status));
}
#endif

/* ---- information only: is the floating-point control state per context? -- */

static cio__ctx_t fe_main, fe_co;

static void fe_entry(void *arg)
{
    int *r = arg;
    r[0] = fegetround(); /* what a new context starts with */
    fesetround(FE_UPWARD);
    cio__ctx_switch(&fe_co, &fe_main);
    fesetround(FE_TONEAREST);
    cio__ctx_switch(&fe_co, &fe_main); /* for good */
    abort();
}

static void info_fenv(void)
{
    struct stack st;
    int r[1] = {-1};
    stack_alloc(&st, STACK_SIZE);
    fesetround(FE_DOWNWARD);
    cio__ctx_make(&fe_co, st.lo, st.size, fe_entry, r);
    cio__ctx_switch(&fe_main, &fe_co); /* the coroutine sets FE_UPWARD and switches back */
    int back = fegetround();
    cio__ctx_switch(&fe_main, &fe_co);
    fesetround(FE_TONEAREST);
    stack_free(&st);
    printf("INFO: FP rounding mode: a new context starts %s; a mode set in a coroutine %s\n",
           r[0] == FE_TONEAREST  ? "at round-to-nearest (own default)"
           : r[0] == FE_DOWNWARD ? "with the creator's mode (shared)"
                                 : "with another mode",
           back == FE_DOWNWARD ? "stays there (per-context)"
           : back == FE_UPWARD ? "leaks into the context switched to (shared)"
                               : "gives something else");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("context_test: %s, %s switch\n", ARCH, BACKEND);
    run("pingpong_ctx", test_pingpong_ctx);
    run("pingpong_fiber", test_pingpong_fiber);
    run("saved_locals", test_saved_locals);
#ifdef HAVE_SENTINEL
    run("saved_registers", test_saved_registers);
#else
    printf("SKIP: saved_registers (no assembly helper for this CPU)\n");
    n_skipped++;
#endif
    run("alignment", test_alignment);
    run("deep_recursion", test_deep_recursion);
    run("restart", test_restart);
    run("many_contexts", test_many_contexts);
#if !CIO_CONTEXT_UCONTEXT
    run("return_traps", test_return_traps);
#else
    printf("SKIP: return_traps (ucontext ends the thread when an entry returns)\n");
    n_skipped++;
#endif
    info_fenv();
    if (n_skipped)
        printf("%d passed, %d failed, %d skipped\n", n_passed, n_failed, n_skipped);
    else
        printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
