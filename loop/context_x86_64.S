/*
 * loop/context_x86_64.S: stack switching for x86-64 (System V ABI). Only what
 * the ABI says a callee preserves is saved: rbx, rbp, r12-r15, the MXCSR
 * control bits and the x87 control word. No system call, no signal mask.
 */
    .text

/* void cio__ctx_switch(cio__ctx_t *from, cio__ctx_t *to) */
    .globl  cio__ctx_switch
    .hidden cio__ctx_switch
    .type   cio__ctx_switch, @function
cio__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp */
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   cio__ctx_switch, .-cio__ctx_switch

/*
 * First code of a new context: cio__ctx_make left the entry function in r12
 * and its argument in r13. The entry never returns.
 */
    .globl  cio__ctx_trampoline
    .hidden cio__ctx_trampoline
    .type   cio__ctx_trampoline, @function
cio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* the outermost frame: backtraces stop here */
    movq    %r13, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
