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
 *     unguarded stack's end is reported by the same handler.  Small stacks are packed
 *     back to back, so an overflow that writes the canary is found at the next
 *     switch, reported, and the program aborts.  What a canary cannot see is a frame
 *     that steps over it without writing it (a local array written only in part, the
 *     locals of inlined calls not made): that writes into the slot below, another
 *     coroutine's stack, unseen.  Only a guard page stops that; reviews showed it with a
 *     6 KiB frame on a 4 KiB stack and with an inlined recursion of 200-byte arrays on a
 *     2 KiB stack (a band of canary words, 64 to 256 bytes, caught that no better), and
 *     the docs say to give such code 16 KiB or more.
 *   - A switch runs on the stack it leaves after the scheduler names the next coroutine
 *     (sched->leaving says which): the handler looks at that stack first.
 *   - Signal frames.  The kernel writes a handler's frame (several KiB with AVX-512)
 *     on the stack that runs, a coroutine's among them, unless the handler was
 *     installed with SA_ONSTACK and the thread has an alternate stack.  plait's
 *     handlers (SIGSEGV's here, plait_signals' in signal.c) are, and every scheduler
 *     thread gets a 64 KiB alternate stack, whether plait's SIGSEGV handler is
 *     installed or the program handles SIGSEGV itself (then it was left without one,
 *     and a watched signal that came while a 2 KiB coroutine ran overflowed it).
 *
 * Slots are never unmapped: a finished coroutine's slot goes to its scheduler's
 * cache (no lock on the spawn path) or back to the global pool of its size.
 *
 * Giving memory back.  A free slot keeps the pages its coroutine touched, so after a
 * burst (a server that held 100,000 connections for a moment) the free slots would hold
 * that memory for good.  Each cache of free slots (a scheduler's, for its default
 * size, and the global pool's, one per size) gives back the pages of the slots it did
 * not need for a while: over each period of TRIM_PERIOD it notes the fewest slots it
 * held (`low`), and those beyond the first STACK_WARM stayed unused the whole period,
 * so at the end of it their pages go back to the kernel (madvise MADV_DONTNEED; they
 * read as zeros when touched again).  A load that swings up and down within a period
 * keeps its memory and never pays for a page fault again; a burst that is over is given
 * back one to two periods later.  The trimming is done by schedulers about to sleep, at
 * most TRIM_BATCH slots at a time (a madvise costs a system call and page-table work,
 * and a sleep with work to come must not wait for a thousand of them): their sleeps
 * end at the next period's end while a cache holds more than STACK_WARM.  A scheduler
 * that ends hands its slots to the global pool, and what the pool then holds beyond
 * STACK_WARM goes back at once: that scheduler will not sleep again, and no other may
 * for a long time; the last scheduler to end does that in every size.  A cache keeps
 * its memory (`keep`) where a slot holds no whole page of its own (under two pages:
 * packed slots share their ends with their neighbours) and once giving back failed
 * (madvise refuses locked memory): trying again every period would cost a wake-up each
 * time for nothing.  Slots given back ("cold") lose their
 * control block with their pages, so the global pool keeps them in an array of
 * addresses (the guard bit in the lowest) and fills in the control block's stack
 * fields again when one is used.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
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
#define STACK_WARM 256                   /* free slots a cache keeps in any case */
#define TRIM_PERIOD ((int64_t)1000000000) /* unused this long: the memory goes back */
#define TRIM_BATCH 64                    /* slots given back per sleep at most */

typedef struct size_class {
    struct size_class *next;
    size_t stack_size;   /* as asked for */
    size_t slot_size;
    bool big;            /* may get a guard page */
    plait__stack_cache warm; /* free slots with their memory */
    uintptr_t *cold;     /* free slots whose memory went back: slot address | guarded */
    size_t cold_len, cold_cap;
} size_class;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static size_class *classes;
static size_t schedulers; /* alive in this process (give_back_excess) */
static atomic_llong global_trim_at; /* the earliest trim_at of the classes; 0: none */
static atomic_int guarded_slots;
static size_t page_size;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
static size_t round_down(size_t n, size_t to) { return n / to * to; }

static size_t control_size(void) { return round_up(sizeof(plait__coro), 64); }

int plait__stack_check_size(size_t size)
{
    return size < PLAIT_STACK_MIN || size > PLAIT_STACK_MAX ? -EINVAL : 0;
}

/* Size classes.  A class is never freed and its first chunk maps 16 slots or more
 * (guarded while the budget lasts), so a class per size asked for let a program that
 * asks for many sizes (one at a time, each computed from its work) run out of address
 * space and guard pages with one coroutine alive.  Sizes are rounded up to 64 bytes
 * under PLAIT_GUARD_MIN_STACK (slots are packed at that grain anyway: at most 224
 * classes) and to an eighth of their power of two above it (at most 12.5% more, 128
 * classes up to PLAIT_STACK_MAX, itself a power of two). */
size_t plait__stack_round(size_t size)
{
    if (size < PLAIT_GUARD_MIN_STACK)
        return round_up(size, 64);
    size_t step = ((size_t)1 << (63 - __builtin_clzll((unsigned long long)size))) / 8;
    return round_up(size, step);
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
    /* a slot under two pages may hold no whole page of its own */
    c->warm.keep = c->slot_size < 2 * page_size;
    c->next = classes;
    classes = c;
    return c;
}

/* ---- caches of free slots ---- */

static void cache_push(plait__stack_cache *k, plait__coro *coro)
{
    coro->free_next = k->head;
    k->head = coro;
    k->len++;
}

static plait__coro *cache_pop(plait__stack_cache *k)
{
    plait__coro *coro = k->head;
    if (coro) {
        k->head = coro->free_next;
        if (--k->len < k->low)
            k->low = k->len;
    }
    return coro;
}

/* Push every slot of a list (through free_next). */
static void cache_push_all(plait__stack_cache *k, plait__coro *list)
{
    while (list) {
        plait__coro *coro = list;
        list = coro->free_next;
        cache_push(k, coro);
    }
}

/* Detach the first n slots of the cache (it holds that many) as a list. */
static plait__coro *cache_take(plait__stack_cache *k, size_t n)
{
    plait__coro *list = NULL;
    for (size_t i = 0; i < n; i++) { /* any n will do: free slots are all alike */
        plait__coro *coro = k->head;
        k->head = coro->free_next;
        k->len--;
        coro->free_next = list;
        list = coro;
    }
    return list;
}

/* At a scheduler's sleep: detach into *out (a list) what the cache may give back now,
 * see "Giving memory back".  Returns when to look again (PLAIT_FOREVER: nothing beyond
 * STACK_WARM, or a cache that keeps its memory). */
static int64_t cache_trim(plait__stack_cache *k, int64_t now, plait__coro **out)
{
    *out = NULL;
    if (k->keep) {
        k->trim_at = 0;
        return PLAIT_FOREVER;
    }
    if (k->trim_at && now >= k->trim_at) {
        size_t n = k->low > STACK_WARM ? k->low - STACK_WARM : 0; /* unused all along */
        if (n > TRIM_BATCH)
            n = TRIM_BATCH;
        *out = cache_take(k, n);
        k->low -= n;
        if (k->low > STACK_WARM)
            return k->trim_at; /* more of this period's to give back: at the next sleep */
        k->trim_at = 0;
    }
    if (k->len <= STACK_WARM) {
        k->trim_at = 0;
        return PLAIT_FOREVER;
    }
    if (!k->trim_at) {
        k->low = k->len;
        k->trim_at = now + TRIM_PERIOD;
    }
    return k->trim_at;
}

/* The control block of the slot at `slot` (whose first page is its guard page when
 * guarded), its stack fields filled in. */
static plait__coro *slot_init(const size_class *c, char *slot, bool guarded)
{
    plait__coro *coro = (plait__coro *)(slot + c->slot_size - control_size());
    coro->guarded = guarded;
    coro->stack_lo = c->big ? slot + page_size : slot;
    coro->stack_size = (size_t)((char *)coro - coro->stack_lo);
    coro->stack_class = c->stack_size;
    return coro;
}

/* Called with pool_lock held: map a chunk and put its slots on the free list. */
static int class_grow(size_class *c)
{
    plait__fork_init();
    size_t slots = CHUNK_MIN_BYTES / c->slot_size;
    if (slots < CHUNK_MIN_SLOTS)
        slots = CHUNK_MIN_SLOTS;
    char *chunk;
    /* Big stacks make big chunks (16 slots of 1 GiB are 16 GiB): where that much
     * address space is refused (RLIMIT_AS, vm.overcommit_memory=2), fewer slots may
     * still fit, down to the one the spawn needs. */
    for (;;) {
        chunk = mmap(NULL, slots * c->slot_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (chunk != MAP_FAILED)
            break;
        if (slots == 1)
            return -ENOMEM;
        slots /= 2;
    }
    for (size_t i = slots; i-- > 0;) {
        char *slot = chunk + i * c->slot_size;
        bool guarded = false;
        if (c->big && atomic_load(&guarded_slots) < GUARD_BUDGET &&
            mprotect(slot, page_size, PROT_NONE) == 0) {
            atomic_fetch_add(&guarded_slots, 1);
            guarded = true;
        }
        cache_push(&c->warm, slot_init(c, slot, guarded));
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

/* A cold store entry: a slot's address, its guard bit in the lowest. */
static char *entry_slot(uintptr_t entry) { return (char *)(entry & ~(uintptr_t)1); }

plait__coro *plait__stack_alloc(plait__sched *sched, size_t size)
{
    plait__coro *coro = NULL;
    size = plait__stack_round(size); /* the class's size: sched->default_stack is one */
    if (size == sched->default_stack && (coro = cache_pop(&sched->stacks))) {
        prepare(coro);
        return coro;
    }
    uintptr_t cold = 0;
    pthread_mutex_lock(&pool_lock);
    size_class *c = class_for(size);
    if (c && !c->warm.head && c->cold_len)
        cold = c->cold[--c->cold_len];
    else if (c && (c->warm.head || class_grow(c) == 0))
        coro = cache_pop(&c->warm);
    pthread_mutex_unlock(&pool_lock);
    if (cold) /* its pages are zeros: the control block is made again, outside the lock */
        coro = slot_init(c, entry_slot(cold), cold & 1);
    if (coro)
        prepare(coro);
    return coro;
}

static bool cold_grow(size_class *c)
{
    size_t cap = c->cold_cap ? 2 * c->cold_cap : 256;
    uintptr_t *cold = realloc(c->cold, cap * sizeof *cold);
    if (!cold)
        return false;
    c->cold = cold;
    c->cold_cap = cap;
    return true;
}

/* Hand the pages of free slots of class c (a list of TRIM_BATCH at most) back to the
 * kernel and keep the slots in the cold store.  Neighbouring slots go in one madvise:
 * its fixed cost is most of it (15 µs against under 1 µs a page on this project's
 * virtual machine).  Slots whose pages could not be given back (madvise refused: locked
 * memory; no room for the cold store) go on the warm list, the class keeps its memory
 * from then on, and the result is false. */
static bool give_back(size_class *c, plait__coro *list)
{
    uintptr_t slot[TRIM_BATCH]; /* address | guarded */
    bool released[TRIM_BATCH];
    size_t n = 0;
    for (; list && n < TRIM_BATCH; list = list->free_next)
        slot[n++] = ((uintptr_t)list + control_size() - c->slot_size) | list->guarded;
    qsort(slot, n, sizeof slot[0], plait__by_address);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && entry_slot(slot[j]) == entry_slot(slot[j - 1]) + c->slot_size;
             j++)
            ;
        /* whole pages only: a small slot shares its first and last with its
         * neighbours; guard pages between big ones hold nothing to give back */
        uintptr_t lo = round_up((uintptr_t)entry_slot(slot[i]) + (c->big ? page_size : 0),
                                page_size);
        uintptr_t hi = round_down((uintptr_t)entry_slot(slot[j - 1]) + c->slot_size, page_size);
        bool ok = lo < hi && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0;
        for (size_t k = i; k < j; k++)
            released[k] = ok;
    }
    bool all = true;
    pthread_mutex_lock(&pool_lock);
    for (size_t i = 0; i < n; i++) {
        if (released[i] && (c->cold_len < c->cold_cap || cold_grow(c))) {
            c->cold[c->cold_len++] = slot[i];
        } else { /* its control block may have gone with the pages: made again */
            cache_push(&c->warm, slot_init(c, entry_slot(slot[i]), slot[i] & 1));
            all = false;
        }
    }
    if (!all)
        c->warm.keep = true; /* trying again and again would only cost */
    pthread_mutex_unlock(&pool_lock);
    return all;
}

/* give_back, for a list of any length; after a failure the rest goes back on the warm
 * list. */
static void give_back_all(size_class *c, plait__coro *list)
{
    while (list) {
        plait__coro *batch = list, *last = list;
        for (size_t n = 1; n < TRIM_BATCH && last->free_next; n++)
            last = last->free_next;
        list = last->free_next;
        last->free_next = NULL;
        if (!give_back(c, batch)) {
            pthread_mutex_lock(&pool_lock);
            cache_push_all(&c->warm, list);
            pthread_mutex_unlock(&pool_lock);
            return;
        }
    }
}

/* Called with pool_lock held: a class's trim_at changed, and so may the earliest. */
static void global_trim_at_update(void)
{
    int64_t first = 0;
    for (size_class *c = classes; c; c = c->next)
        if (c->warm.trim_at && (!first || c->warm.trim_at < first))
            first = c->warm.trim_at;
    atomic_store_explicit(&global_trim_at, first, memory_order_relaxed);
}

/* Free slots of one size (a list through free_next) back to the global pool.  From a
 * scheduler that ends (`ending`), what the pool then holds beyond STACK_WARM goes back
 * at once: no scheduler might sleep for a long time to come, and the one that ends
 * never will again. */
static void pool_put(plait__coro *list, bool ending)
{
    plait__coro *excess = NULL;
    pthread_mutex_lock(&pool_lock);
    size_class *c = class_for(list->stack_class); /* exists: the slots came from it */
    cache_push_all(&c->warm, list);
    if (!c->warm.keep && c->warm.len > STACK_WARM) {
        if (ending) {
            excess = cache_take(&c->warm, c->warm.len - STACK_WARM);
            if (c->warm.low > c->warm.len)
                c->warm.low = c->warm.len;
        } else if (!c->warm.trim_at) {
            plait__coro *none;
            cache_trim(&c->warm, plait_now(), &none); /* starts a period */
            global_trim_at_update();
        }
    }
    pthread_mutex_unlock(&pool_lock);
    if (excess)
        give_back_all(c, excess);
}

/* From the last scheduler that ends: what the global pool holds beyond STACK_WARM in
 * the other sizes too (stacks spawned with a stack_size of their own, which came back
 * one by one as their coroutines ended, and those of a default since changed) goes
 * back, as no scheduler is left to sleep and trim them.  (While another lives, its
 * sleeps trim them, a period later: taking them at once would make it pay page faults
 * again for stacks it may be reusing.)  One pass, each class once. */
static void give_back_excess(void)
{
    pthread_mutex_lock(&pool_lock);
    for (size_class *c = classes; c; c = c->next) {
        if (c->warm.keep || c->warm.len <= STACK_WARM)
            continue;
        plait__coro *excess = cache_take(&c->warm, c->warm.len - STACK_WARM);
        if (c->warm.low > c->warm.len)
            c->warm.low = c->warm.len;
        pthread_mutex_unlock(&pool_lock);
        give_back_all(c, excess);
        pthread_mutex_lock(&pool_lock); /* classes are only ever added, at the head */
    }
    pthread_mutex_unlock(&pool_lock);
}

void plait__stack_free(plait__sched *sched, plait__coro *coro)
{
    if (coro->stack_class == sched->default_stack) {
        cache_push(&sched->stacks, coro);
    } else {
        coro->free_next = NULL;
        pool_put(coro, false);
    }
}

void plait__stack_flush(plait__sched *sched, bool ending)
{
    if (sched->stacks.head)
        pool_put(sched->stacks.head, ending);
    sched->stacks = (plait__stack_cache){0};
    if (!ending)
        return;
    pthread_mutex_lock(&pool_lock);
    bool last = --schedulers == 0;
    pthread_mutex_unlock(&pool_lock);
    if (last)
        give_back_excess();
}

/* The global pool's part of plait__stack_trim. */
static int64_t global_trim(int64_t now)
{
    pthread_mutex_lock(&pool_lock);
    for (size_class *c = classes; c; c = c->next) {
        plait__coro *out;
        if (c->warm.trim_at && now >= c->warm.trim_at) {
            cache_trim(&c->warm, now, &out);
            if (out) {
                global_trim_at_update();
                pthread_mutex_unlock(&pool_lock);
                give_back(c, out); /* one class per sleep: TRIM_BATCH slots at most */
                return atomic_load_explicit(&global_trim_at, memory_order_relaxed);
            }
        }
    }
    global_trim_at_update();
    pthread_mutex_unlock(&pool_lock);
    return atomic_load_explicit(&global_trim_at, memory_order_relaxed);
}

/* The class of a scheduler's default size (it exists: the cache's slots came from it). */
static size_class *default_class(plait__sched *sched)
{
    pthread_mutex_lock(&pool_lock);
    size_class *c = class_for(sched->default_stack);
    pthread_mutex_unlock(&pool_lock);
    return c;
}

/* Whether that class keeps its memory: another scheduler's give_back may set it, under
 * the pool's lock, so it is read under the lock too. */
static bool default_class_keeps(plait__sched *sched)
{
    pthread_mutex_lock(&pool_lock);
    bool keep = class_for(sched->default_stack)->warm.keep;
    pthread_mutex_unlock(&pool_lock);
    return keep;
}

int64_t plait__stack_trim(plait__sched *sched, int64_t now)
{
    plait__stack_cache *k = &sched->stacks;
    int64_t global = atomic_load_explicit(&global_trim_at, memory_order_relaxed);
    if (PLAIT_LIKELY(k->len <= STACK_WARM && !global)) {
        k->trim_at = 0;
        return PLAIT_FOREVER;
    }
    int64_t next = PLAIT_FOREVER;
    if (!now)
        now = plait_now();
    if (k->len > STACK_WARM && !k->trim_at && !k->keep)
        k->keep = default_class_keeps(sched); /* a period starts: can it give back? */
    if (k->len > STACK_WARM || k->trim_at) {
        plait__coro *out;
        next = cache_trim(k, now, &out);
        if (out) {
            if (!give_back(default_class(sched), out))
                k->keep = true;
            return global && global < next ? global : next; /* one batch per sleep */
        }
    }
    if (global && now >= global)
        global = global_trim(now);
    return global && global < next ? global : next;
}

/* Called from the SIGSEGV handler: the message is built with plait__text (plain
 * stores), as snprintf is not async-signal-safe, and written with write(2), which is. */
static void report_overflow(const plait__coro *coro, const char *how)
{
    char msg[256];
    plait__text t = {msg, sizeof msg, 0};
    plait__text_str(&t, "plait: fatal: stack overflow in coroutine '");
    plait__text_str(&t, coro->name);
    plait__text_str(&t, "' (#");
    plait__text_uint(&t, coro->id);
    plait__text_str(&t, "): ");
    plait__text_str(&t, how);
    plait__text_str(&t, "; its stack holds ");
    plait__text_uint(&t, coro->stack_size);
    plait__text_str(&t, " bytes, spawn it with a larger stack_size\n");
    size_t len = plait__text_end(&t);
    if (len >= sizeof msg) { /* cut: the line still ends */
        len = sizeof msg - 1;
        msg[len - 1] = '\n';
    }
    if (write(STDERR_FILENO, msg, len) < 0)
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

/* Whether sp is on the thread's alternate signal stack: a fault in a handler that runs
 * there (SA_ONSTACK, as API.md advises) while a coroutine is current has its stack
 * pointer below the coroutine's stack (the alternate stack is on the heap) without any
 * overflow.  sigaltstack is async-signal-safe. */
static bool on_alternate_stack(const char *sp)
{
    stack_t ss;
    return sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) &&
           sp >= (const char *)ss.ss_sp && sp < (const char *)ss.ss_sp + ss.ss_size;
}

static void segv_handler(int sig, siginfo_t *info, void *uctx)
{
    char *addr = info->si_addr, *sp = interrupted_sp(uctx);
    /* A switch runs on the stack it leaves after the scheduler names the next coroutine
     * (the cancel state's save, the register pushes): a fault just below that stack's
     * end is its overflow (it was blamed on the one switched to, or, switching to the
     * loop, on none). */
    plait__sched *s = plait__tls_sched;
    plait__coro *leaving = s ? atomic_load_explicit(&s->leaving, memory_order_relaxed) : NULL;
    if (leaving && addr < leaving->stack_lo && addr >= leaving->stack_lo - page_size)
        report_overflow(leaving, leaving->guarded ? "it ran into its guard page"
                                                  : "it ran past the end of its stack");
    plait__coro *coro = plait__coro_current();
    if (coro) {
        if (coro->guarded && addr >= coro->stack_lo - page_size && addr < coro->stack_lo)
            report_overflow(coro, "it ran into its guard page");
        /* unguarded stacks: the fault came from running below the stack's end */
        if (sp && sp < coro->stack_lo && !on_alternate_stack(sp))
            report_overflow(coro, "it ran past the end of its stack");
    }
    /* Not ours: the default action.  A fault (si_code > 0, from the kernel) happens
     * again on return, and ends the process with its own siginfo, its address kept for
     * a core or a debugger.  A signal that was sent (raise, kill) would not come again:
     * send it again, so that it is delivered, with the default action, when this
     * handler returns. */
    signal(sig, SIG_DFL);
    if (info->si_code <= 0)
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
    sigaction(SIGSEGV, &sa, NULL);
}

static PLAIT_TLS void *alt_stack;

void plait__stack_thread_init(plait__sched *sched)
{
    (void)sched;
    pthread_mutex_lock(&pool_lock);
    schedulers++;
    pthread_mutex_unlock(&pool_lock);
    pthread_once(&handler_once, install_handler);
    if (alt_stack)
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
    /* Turned off only while it is still plait's: one the program installed since (for
     * its own overflow handler, from a coroutine) stays (a helper's audit). */
    stack_t now;
    if (sigaltstack(NULL, &now) != 0 || (now.ss_sp == alt_stack && !(now.ss_flags & SS_DISABLE))) {
        stack_t ss = {.ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
    }
    free(alt_stack);
    alt_stack = NULL;
}

void plait__stack_atfork(int phase)
{
    if (phase == PLAIT__FORK_CHILD) /* the other threads' schedulers stayed behind */
        schedulers = plait__tls_sched != NULL;
    plait__atfork_mutex(&pool_lock, phase);
}
