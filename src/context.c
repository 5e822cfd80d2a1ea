/*
 * context.c — building the first frame of a fresh coroutine stack.
 *
 * For the assembly back ends the frame must look exactly like the one
 * plait__ctx_switch pushes, so that its pops and `ret` land in
 * plait__ctx_trampoline with the entry function and its argument in callee-saved
 * registers, and with the stack aligned as the ABI wants at the call.
 *
 * The floating-point modes (rounding, flush-to-zero; x86-64's MXCSR and x87 control
 * words, aarch64's FPCR) are callee-saved in both ABIs, so each coroutine keeps its
 * own across switches, and a fresh one starts with its spawner's, read here (the
 * status flags of MXCSR left out), as a thread starts with its creator's
 * (pthread_create(3)) and as the ucontext back end's getcontext gives.  (Fixed
 * defaults made every coroutine round to nearest with denormals on, whatever the
 * program had set: -ffast-math's flush-to-zero, fesetround.)
 */
#include "context.h"

#include <stdint.h>
#include <string.h>

#ifdef PLAIT_CONTEXT_UCONTEXT

/* makecontext passes int arguments only: the pointers travel split in halves. */
static void ucontext_entry(unsigned entry_hi, unsigned entry_lo, unsigned arg_hi,
                           unsigned arg_lo)
{
    void (*entry)(void *) =
        (void (*)(void *))(((uintptr_t)entry_hi << 32) | (uintptr_t)entry_lo);
    void *arg = (void *)(((uintptr_t)arg_hi << 32) | (uintptr_t)arg_lo);
    entry(arg);
}

void plait__context_make(plait__context *ctx, void *lo, size_t size,
                         void (*entry)(void *), void *arg)
{
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 4, (unsigned)(e >> 32),
                (unsigned)e, (unsigned)(a >> 32), (unsigned)a);
}

#else

void plait__ctx_trampoline(void);

void plait__context_make(plait__context *ctx, void *lo, size_t size,
                         void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret, then 16 bytes of padding so that
     * the trampoline's call happens on a 16-byte aligned stack. */
    uint64_t *frame = (uint64_t *)(top - 16 - 8 * 8);
    memset(frame, 0, 8 * 8);
    uint32_t mxcsr;
    uint16_t x87_cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(x87_cw));
    frame[0] = (mxcsr & ~0x3Fu) | ((uint64_t)x87_cw << 32); /* the modes, no flags */
    frame[4] = (uint64_t)(uintptr_t)arg;                   /* r12 */
    frame[3] = (uint64_t)(uintptr_t)entry;                 /* r13 */
    frame[7] = (uint64_t)(uintptr_t)plait__ctx_trampoline;
#elif defined(__aarch64__)
    uint64_t *frame = (uint64_t *)(top - 176);
    memset(frame, 0, 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    frame[0] = (uint64_t)(uintptr_t)arg;                    /* x19 */
    frame[1] = (uint64_t)(uintptr_t)entry;                  /* x20 */
    frame[11] = (uint64_t)(uintptr_t)plait__ctx_trampoline; /* x30 */
    frame[20] = fpcr;
#else
#error "no assembly context switch for this architecture: build with -DPLAIT_CONTEXT=ucontext"
#endif
    ctx->sp = frame;
}

#endif
