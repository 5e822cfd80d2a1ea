/*
 * Context switch for aarch64 (AAPCS64).
 *
 * void plait__ctx_switch(void **save_sp, void *load_sp)
 *   Saves the callee-saved registers x19-x28, the frame pointer x29, the link
 *   register x30, the low halves d8-d15 of v8-v15 and the FPCR (the floating-point
 *   modes, which AAPCS64 has callee-saved) in a 176-byte frame on the current stack,
 *   stores sp in *save_sp, loads load_sp, restores the same frame and returns through
 *   the restored x30.  The FPCR is written only when the two sides' differ (a write
 *   may wait for the floating-point pipeline on some cores; a read does not).
 *
 * A fresh stack (context.c) holds this frame with x30 = plait__ctx_trampoline,
 * x19 = the argument, x20 = the entry function and the spawner's FPCR.
 *
 * Built with -mbranch-protection=bti or =standard (the default of some distributions),
 * the compiler marks every C object as BTI-compatible; the linker marks the program
 * only if every object is, so this file must say so too (the GNU property note at the
 * end), or linking libplait silently turns BTI off for the whole program.  Then both
 * entry points start with a landing pad (`hint #34` = `bti c`, a NOP elsewhere): a
 * linker veneer or PLT reaches a function with `br x16/x17`, which BTI checks.  Return
 * addresses are not signed here (the saved x30 is raw), so the note claims BTI, not PAC.
 */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define PLAIT_BTI_C hint #34
#define PLAIT_GNU_PROPERTY_BTI 1
#else
#define PLAIT_BTI_C
#define PLAIT_GNU_PROPERTY_BTI 0
#endif

    .text
    .globl plait__ctx_switch
    .hidden plait__ctx_switch
    .type plait__ctx_switch, %function
    .p2align 4
plait__ctx_switch:
    PLAIT_BTI_C
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x10, sp
    str x10, [x0]
    mov sp, x1
    ldr x10, [sp, #160]
    cmp x9, x10
    b.eq 1f
    msr fpcr, x10
1:
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size plait__ctx_switch, .-plait__ctx_switch

    .globl plait__ctx_trampoline
    .hidden plait__ctx_trampoline
    .type plait__ctx_trampoline, %function
    .p2align 4
plait__ctx_trampoline:
    PLAIT_BTI_C
    mov x0, x19
    blr x20
    brk #0                  /* the entry function never returns */
    .size plait__ctx_trampoline, .-plait__ctx_trampoline

    .section .note.GNU-stack, "", %progbits

#if PLAIT_GNU_PROPERTY_BTI
    .section .note.gnu.property, "a"
    .p2align 3
    .long 4                 /* n_namesz: "GNU" */
    .long 16                /* n_descsz */
    .long 5                 /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz "GNU"
    .long 0xc0000000        /* pr_type: GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long 4                 /* pr_datasz */
    .long 1                 /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .long 0                 /* padding to 8 bytes */
#endif
