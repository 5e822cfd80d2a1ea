/*
 * context — the switch between two stacks, and nothing else.
 *
 * Two back ends share this interface, chosen at build time (CMake PLAIT_CONTEXT):
 *   asm       hand-written switch for x86-64 and aarch64 (context_*.S): saves only the
 *             callee-saved registers, a few nanoseconds;
 *   ucontext  the portable fallback (glibc makecontext/swapcontext), for any other
 *             architecture; correct but two orders of magnitude slower, since
 *             swapcontext saves the signal mask with a system call.
 * Sanitizer bookkeeping (TSan/ASan fibers) is the scheduler's job, not this file's.
 */
#ifndef PLAIT_CONTEXT_H
#define PLAIT_CONTEXT_H

#include <stddef.h>

#if defined(PLAIT_CONTEXT_UCONTEXT) == defined(PLAIT_CONTEXT_ASM)
/* Said by the build (CMakeLists.txt), for the library and every program that includes
 * its internal headers alike: a test compiled with the other layout than the library's
 * read the wrong offsets of a coroutine's fields, silently. */
#error "define exactly one of PLAIT_CONTEXT_ASM and PLAIT_CONTEXT_UCONTEXT"
#endif

#ifdef PLAIT_CONTEXT_UCONTEXT
#include <ucontext.h>
typedef struct plait__context { ucontext_t uc; } plait__context;
#else
typedef struct plait__context { void *sp; } plait__context;
void plait__ctx_switch(void **save_sp, void *load_sp);
#endif

/* Prepare ctx so that switching to it runs entry(arg) on the stack [lo, lo + size).
 * entry must never return. */
void plait__context_make(plait__context *ctx, void *lo, size_t size,
                         void (*entry)(void *), void *arg);

/* Save the running context in from and resume to. */
static inline void plait__context_switch(plait__context *from, plait__context *to)
{
#ifdef PLAIT_CONTEXT_UCONTEXT
    swapcontext(&from->uc, &to->uc);
#else
    plait__ctx_switch(&from->sp, to->sp);
#endif
}

#endif
