/*
 * stack.c — coroutine stacks carved out of large mappings.
 *
 * Linux allows vm.max_map_count (65530 by default) memory maps per process.  One
 * mmap per stack would cap a program near 32k coroutines (a guard page splits a
 * mapping in two), so stacks are carved from chunks: one mmap holds many slots, and
 * the kernel merges neighbouring chunks into one map.  A million coroutines cost a
 * few thousand maps.
 *
 * A slot is laid out, from low to high addresses:
 *
 *     [guard page?] [canary | stack, growing down ........] [plait__coro]
 *
 * The coroutine's control block sits at the top of its own slot, on the page its
 * first frames touch, so a parked coroutine costs the pages it used and nothing
 * more: MAP_NORESERVE memory is committed only when touched.
 *
 * Overflow detection, the two tiers:
 *   - Stacks of PLAIT_GUARD_MIN_STACK and more get a PROT_NONE guard page while the
 *     process holds fewer than GUARD_BUDGET guarded slots (each guard costs two
 *     maps).  A fault there is reported by a SIGSEGV handler on an alternate stack,
 *     naming the coroutine, then the program aborts.
 *   - Every stack without a guard page has a canary at its lowest word, checked each
 *     time the coroutine is switched out (and so when it ends).  A fault below an
 *     unguarded stack's end is reported by the same handler.  Small stacks are packed back to back, so an
 *     overflow there is found at the next switch, reported, and the program aborts:
 *     never silently corrupted memory that runs on.
 *
 * Slots are never unmapped: a finished coroutine's slot goes to its scheduler's
 * cache (no lock on the spawn path) or back to the global pool of its size.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef PLAIT_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define PLAIT_GUARD_MIN_STACK ((size_t)16 * 1024)
#define GUARD_BUDGET 16384
#define CHUNK_MIN_BYTES ((size_t)2 << 20)
#define CHUNK_MIN_SLOTS 16
#define CANARY 0x9e3779b97f4a7c15ull

typedef struct size_class {
    struct size_class *next;
    size_t stack_size;   /* as asked for */
    size_t slot_size;
    bool big;            /* may get a guard page */
    plait__coro *free;
} size_class;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static size_class *classes;
static atomic_int guarded_slots;
static size_t page_size;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static size_t control_size(void) { return round_up(sizeof(plait__coro), 64); }

int plait__stack_check_size(size_t size)
{
    return size < PLAIT_STACK_MIN || size > PLAIT_STACK_MAX ? -EINVAL : 0;
}

size_t plait_guard_budget(void)
{
    int used = atomic_load(&guarded_slots);
    return used >= GUARD_BUDGET ? 0 : (size_t)(GUARD_BUDGET - used);
}

static uint64_t canary_for(const char *lo) { return CANARY ^ (uint64_t)(uintptr_t)lo; }

/* Called with pool_lock held. */
static size_class *class_for(size_t stack_size)
{
    for (size_class *c = classes; c; c = c->next)
        if (c->stack_size == stack_size)
            return c;
    size_class *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (!page_size)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    c->stack_size = stack_size;
    c->big = stack_size >= PLAIT_GUARD_MIN_STACK;
    c->slot_size = c->big ? page_size + round_up(stack_size + control_size(), page_size)
                          : round_up(stack_size + control_size(), 64);
    c->next = classes;
    classes = c;
    return c;
}

/* Called with pool_lock held: map a chunk and put its slots on the free list. */
static int class_grow(size_class *c)
{
    plait__fork_init();
    size_t slots = CHUNK_MIN_BYTES / c->slot_size;
    if (slots < CHUNK_MIN_SLOTS)
        slots = CHUNK_MIN_SLOTS;
    size_t bytes = slots * c->slot_size;
    char *chunk = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (chunk == MAP_FAILED)
        return -ENOMEM;
    for (size_t i = slots; i-- > 0;) {
        char *slot = chunk + i * c->slot_size;
        plait__coro *coro = (plait__coro *)(slot + c->slot_size - control_size());
        coro->guarded = false;
        if (c->big && atomic_load(&guarded_slots) < GUARD_BUDGET &&
            mprotect(slot, page_size, PROT_NONE) == 0) {
            atomic_fetch_add(&guarded_slots, 1);
            coro->guarded = true;
        }
        coro->stack_lo = c->big ? slot + page_size : slot;
        coro->stack_size = (size_t)((char *)coro - coro->stack_lo);
        coro->stack_class = c->stack_size;
        coro->free_next = c->free;
        c->free = coro;
    }
    return 0;
}

static void prepare(plait__coro *coro)
{
#ifdef PLAIT_ASAN
    /* frames of the slot's previous coroutine may have left poison behind */
    ASAN_UNPOISON_MEMORY_REGION(coro->stack_lo, coro->stack_size);
#endif
    if (!coro->guarded) /* a guarded stack has its guard page; the canary would
                           only commit the stack's lowest page for nothing */
        *(uint64_t *)coro->stack_lo = canary_for(coro->stack_lo);
}

plait__coro *plait__stack_alloc(plait__sched *sched, size_t size)
{
    plait__coro *coro = NULL;
    if (size == sched->default_stack && sched->free_coros) {
        coro = sched->free_coros;
        sched->free_coros = coro->free_next;
        prepare(coro);
        return coro;
    }
    pthread_mutex_lock(&pool_lock);
    size_class *c = class_for(size);
    if (c && (c->free || class_grow(c) == 0)) {
        coro = c->free;
        c->free = coro->free_next;
    }
    pthread_mutex_unlock(&pool_lock);
    if (coro)
        prepare(coro);
    return coro;
}

static void pool_put(plait__coro *coro)
{
    pthread_mutex_lock(&pool_lock);
    size_class *c = class_for(coro->stack_class); /* exists: the slot came from it */
    coro->free_next = c->free;
    c->free = coro;
    pthread_mutex_unlock(&pool_lock);
}

void plait__stack_free(plait__sched *sched, plait__coro *coro)
{
    if (coro->stack_class == sched->default_stack) {
        coro->free_next = sched->free_coros;
        sched->free_coros = coro;
    } else {
        pool_put(coro);
    }
}

void plait__stack_flush(plait__sched *sched)
{
    while (sched->free_coros) {
        plait__coro *coro = sched->free_coros;
        sched->free_coros = coro->free_next;
        pool_put(coro);
    }
}

static void report_overflow(const plait__coro *coro, const char *how)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "plait: fatal: stack overflow in coroutine '%s' (#%llu): %s; its "
                     "stack holds %zu bytes, spawn it with a larger stack_size\n",
                     coro->name, (unsigned long long)coro->id, how, coro->stack_size);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
        abort();
    abort();
}

void plait__stack_check(plait__coro *coro)
{
    if (PLAIT_UNLIKELY(!coro->guarded &&
                       *(const uint64_t *)coro->stack_lo != canary_for(coro->stack_lo)))
        report_overflow(coro, "its canary was overwritten");
}

/* ---- guard page faults ---- */

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static bool handler_installed;

/* The stack pointer of the interrupted code. */
static char *interrupted_sp(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (char *)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (char *)uc->uc_mcontext.sp;
#else
    (void)uc;
    return NULL;
#endif
}

static void segv_handler(int sig, siginfo_t *info, void *uctx)
{
    plait__coro *coro = plait__coro_current();
    if (coro) {
        char *addr = info->si_addr, *sp = interrupted_sp(uctx);
        if (coro->guarded && addr >= coro->stack_lo - page_size && addr < coro->stack_lo)
            report_overflow(coro, "it ran into its guard page");
        /* unguarded stacks: the fault came from running below the stack's end */
        if (sp && sp < coro->stack_lo)
            report_overflow(coro, "it ran past the end of its stack");
    }
    /* Not ours: the default action.  A fault would happen again on return, but a
     * signal that was sent (raise, kill) would not: send it again, so that it is
     * delivered, with the default action, when this handler returns. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_handler(void)
{
    struct sigaction old;
    if (sigaction(SIGSEGV, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
        return; /* the program (or a sanitizer) handles SIGSEGV itself */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    handler_installed = sigaction(SIGSEGV, &sa, NULL) == 0;
}

static PLAIT_TLS void *alt_stack;

void plait__stack_thread_init(plait__sched *sched)
{
    (void)sched;
    pthread_once(&handler_once, install_handler);
    if (!handler_installed || alt_stack)
        return;
    stack_t ss, old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return; /* the thread has one already */
    size_t size = 64 * 1024;
    alt_stack = malloc(size);
    if (!alt_stack)
        return;
    ss.ss_sp = alt_stack;
    ss.ss_size = size;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        free(alt_stack);
        alt_stack = NULL;
    }
}

void plait__stack_thread_exit(plait__sched *sched)
{
    (void)sched;
    if (!alt_stack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(alt_stack);
    alt_stack = NULL;
}

void plait__stack_atfork(int phase)
{
    if (phase == PLAIT__FORK_PREPARE)
        pthread_mutex_lock(&pool_lock);
    else if (phase == PLAIT__FORK_PARENT)
        pthread_mutex_unlock(&pool_lock);
    else
        pthread_mutex_init(&pool_lock, NULL);
}
