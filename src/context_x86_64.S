/*
 * Context switch for x86-64 (System V).
 *
 * void plait__ctx_switch(void **save_sp, void *load_sp)
 *   Stores the callee-saved registers (rbp, rbx, r12-r15) and the SSE/x87 control
 *   words (the floating-point modes, callee-saved in the ABI) in a 56-byte frame below
 *   the return address on the current stack, stores the stack pointer in *save_sp,
 *   loads load_sp and pops the same frame from it.  Everything else is caller-saved,
 *   so the C compiler has already spilled it: this is the whole cost of a switch.
 *
 * A fresh stack is prepared by plait__context_make() (context.c) with this frame on
 * top and plait__ctx_trampoline as the return address; r12 carries the argument,
 * r13 the entry function, and the control words are the spawner's.
 */
    .text
    .globl plait__ctx_switch
    .hidden plait__ctx_switch
    .type plait__ctx_switch, @function
    .p2align 4
plait__ctx_switch:
    leaq -0x38(%rsp), %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %r15, 0x08(%rsp)
    movq %r14, 0x10(%rsp)
    movq %r13, 0x18(%rsp)
    movq %r12, 0x20(%rsp)
    movq %rbx, 0x28(%rsp)
    movq %rbp, 0x30(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    movq 0x08(%rsp), %r15
    movq 0x10(%rsp), %r14
    movq 0x18(%rsp), %r13
    movq 0x20(%rsp), %r12
    movq 0x28(%rsp), %rbx
    movq 0x30(%rsp), %rbp
    leaq 0x38(%rsp), %rsp
    /* ret, not jmp: it pops the return-stack predictor entry our call pushed, so
     * the predictor stays in step.  The scheduler switches from one call site
     * (switch_to is never inlined), so the predicted target is always right. */
    ret
    .size plait__ctx_switch, .-plait__ctx_switch

    .globl plait__ctx_trampoline
    .hidden plait__ctx_trampoline
    .type plait__ctx_trampoline, @function
    .p2align 4
plait__ctx_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2                     /* the entry function never returns */
    .size plait__ctx_trampoline, .-plait__ctx_trampoline

    .section .note.GNU-stack, "", @progbits
