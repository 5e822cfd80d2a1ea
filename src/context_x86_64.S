/*
 * Context switch for x86-64 (System V).
 *
 * void plait__ctx_switch(void **save_sp, void *load_sp)
 *   Pushes the callee-saved registers (rbp, rbx, r12-r15) and the SSE/x87 control
 *   words on the current stack, stores the stack pointer in *save_sp, loads load_sp
 *   and pops the same frame from it.  Everything else is caller-saved, so the C
 *   compiler has already spilled it: this is the whole cost of a switch.
 *
 * A fresh stack is prepared by plait__ctx_make() (context.c) with this frame on
 * top and plait__ctx_trampoline as the return address; r12 carries the argument and
 * r13 the entry function.
 */
    .text
    .globl plait__ctx_switch
    .hidden plait__ctx_switch
    .type plait__ctx_switch, @function
    .p2align 4
plait__ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
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
