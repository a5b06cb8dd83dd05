/*
 * loop/context_aarch64.S: stack switching for AArch64 (AAPCS64). Saves what a
 * callee preserves: x19-x28, the frame pointer x29, the link register x30 and
 * the low halves of v8-v15 (d8-d15). No system call, no signal mask.
 */
    .text

/* void cio__ctx_switch(cio__ctx_t *from, cio__ctx_t *to) */
    .globl  cio__ctx_switch
    .hidden cio__ctx_switch
    .type   cio__ctx_switch, %function
    .p2align 4
cio__ctx_switch:
    sub     sp, sp, #160
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x9, sp
    str     x9, [x0]            /* from->sp */
    ldr     x9, [x1]            /* to->sp */
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    ret
    .size   cio__ctx_switch, .-cio__ctx_switch

/*
 * First code of a new context: cio__ctx_make left the entry function in x19
 * and its argument in x20, and x30 pointing here. The entry never returns.
 */
    .globl  cio__ctx_trampoline
    .hidden cio__ctx_trampoline
    .type   cio__ctx_trampoline, %function
    .p2align 4
cio__ctx_trampoline:
    mov     x29, #0             /* the outermost frame: backtraces stop here */
    mov     x0, x20
    blr     x19
    brk     #0
    .size   cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
