/*
 * pfutex.c — waiting on futex words in memory shared between processes, from threads
 * and from coroutines; and the lock that guards plait's own shared structures.
 *
 * Every process-shared object (process mutex, semaphore and event, queue, process
 * pool) keeps its state in a shared mapping and waits on futex words there.  A word
 * is a sequence number or a count that its waker changes before it wakes, so a waiter
 * can tell a real wake-up from a stale one by the value, and every wake wakes all the
 * waiters of a word: they are few, and wake-one could hand the one wake-up to a
 * waiter that has given up meanwhile (a timed-out coroutine), losing it.
 *
 * A thread waits directly, on the shared word and on its own waiter's `signalled`
 * word at once (futex_waitv).  A plait thread or pool task stays cancellable: its
 * waiter names the word (waiter.c), and plait_cancel's signal stores `signalled` and
 * wakes the word, which every other waiter tolerates as spurious; waiting on both
 * words means the store cannot fall between the thread's look and its sleep.
 *
 * A coroutine must not block its scheduler, and a scheduler cannot sleep on a futex
 * of someone else's.  So a watcher thread sleeps on behalf of every coroutine that
 * waits on a shared word: futex_waitv (Linux 5.16) waits on up to 128 words at once,
 * the first being the watcher's own control word, which a new registration bumps so
 * the watcher rebuilds its list.  When a word is woken, or its value is no longer the
 * one a coroutine waits on, the watcher signals every coroutine waiting on that
 * (word, value) pair through the ordinary waiter protocol (their scheduler's inbox).
 * Coroutines waiting on the same pair share one slot; a watcher holds WATCH_SLOTS
 * distinct pairs, and more watchers start when they are full.  When no watcher can be
 * had (WATCHERS_MAX of them full, or the system refuses a thread), a coroutine's wait
 * is a short sleep that ends as a spurious wake-up would: its caller looks at the word
 * again, and waits again.  Slower to hear a change, but a wait all the same, with its
 * deadline and cancellation, and no error its caller's contract does not know.
 *
 * Invariants:
 *  - A watch entry lives on the waiting coroutine's stack and is linked under its
 *    watcher's lock from before the coroutine blocks until after it has woken; the
 *    watcher touches entries (and the waiters they name) only under that lock.
 *  - A pair's slot is in use exactly while entries are linked to it; the watcher reads
 *    a pair's word only under the lock, so only while someone waits on it.
 *
 * The pid lock (plait__plock) guards plait's own shared structures.  Its word is the
 * holder's process id (with a bit set while others wait), so when a process dies
 * holding it, whoever learns of the death (the parent that reaps it) can release it,
 * and the data it guards is written so that a holder that dies mid-way leaves it
 * consistent (each structure says how).  It is held for a few stores or a copy; a
 * contended locker spins briefly and then sleeps on the shared word, looking again
 * every PLOCK_RECHECK_NS in case the holder died (see there).  Where a party that
 * shares the word cannot be trusted to leave it alone (a process pool's workers run
 * tasks that may have memory bugs), the trusted side takes it with patience: after so
 * many looks at one live holder it hears who that is, and decides (kill that process,
 * or seize a word that names no process that will ever clear it).
 */
#include "internal.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

struct waitv_item { /* struct futex_waitv of <linux/futex.h>, Linux 5.16 */
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

enum { WATCH_SLOTS = 127, WATCHERS_MAX = 64 };
/* How long a coroutine that no watcher can take sleeps before it looks at its word
 * again: the latency of its wake-up then, and what its polling costs (a thousand
 * looks a second for each such coroutine). */
#define NO_WATCHER_PAUSE_NS PLAIT_MS

typedef struct watch_entry watch_entry;
typedef struct watcher watcher;

typedef struct watch_pair {
    atomic_uint *word;
    unsigned expected;
    watch_entry *entries;       /* NULL: the slot is free */
} watch_pair;

struct watch_entry {
    watch_entry *prev, *next;
    watcher *owner;
    unsigned slot;
    bool linked;
    plait__waiter *waiter;
};

struct watcher {
    plait__spinlock lock;
    watch_pair pairs[WATCH_SLOTS];
    unsigned used;              /* slots with entries */
    atomic_uint ctl;            /* bumped to make the watcher rebuild its list */
    bool asleep;                /* in futex_waitv with a list that may be stale */
    pthread_mutex_t working;    /* held by its thread but while it sleeps (see the fork) */
};

static pthread_mutex_t watchers_lock = PTHREAD_MUTEX_INITIALIZER;
static watcher *watchers[WATCHERS_MAX];
static atomic_uint watcher_count;
/* The fork epoch they are of (set with the first, under watchers_lock): a child of
 * _Fork(), which runs no fork handler, has copies of its parent's, whose threads are
 * not there (its coroutines' waits were woken only by their 100 ms look). */
static atomic_uint watchers_epoch;

/* ---- the watcher thread ---- */

/* Signal every waiter of a slot and free it; the wake-ups go into later. */
static void slot_fire(watcher *wt, unsigned i, plait__wakeups *later)
{
    watch_pair *p = &wt->pairs[i];
    for (watch_entry *e = p->entries; e; e = e->next) {
        e->linked = false;
        if (plait__waiter_claim(e->waiter))
            plait__waiter_signal(e->waiter, 0, -1, later);
    }
    p->entries = NULL;
    wt->used--;
}

/* Whether the kernel has futex_waitv (Linux 5.16): asked once, with no words (-EINVAL
 * there, -ENOSYS before, -EPERM from a sandbox that filters calls it does not know;
 * qemu-user has none either).  Without it a thread waits on the shared word alone, in
 * short slices (wait_word_or_signal), and a watcher that has words to watch sleeps on
 * its control word for a millisecond at a time and looks at them in between
 * (NO_WAITV_POLL_NS): a coroutine's wait works, a millisecond late at most.  (It spun:
 * futex_waitv failed at once, and the watcher went round again.) */
static bool have_futex_waitv(void)
{
    static atomic_int known; /* 0: not asked yet; 1: there; -1: missing */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (PLAIT_UNLIKELY(k == 0)) {
        long r = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC);
        k = r < 0 && (errno == ENOSYS || errno == EPERM) ? -1 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k > 0;
}

/* How long a thread without futex_waitv sleeps on the word before it looks at its own
 * again: a cancellation stores that, then wakes the word, and the store may fall
 * between the look and the sleep. */
#define NO_WAITV_SLICE_NS (10 * PLAIT_MS)
/* How long a watcher without futex_waitv sleeps before it compares its words again. */
#define NO_WAITV_POLL_NS PLAIT_MS

static void *watcher_main(void *arg)
{
    watcher *wt = arg;
    struct waitv_item v[WATCH_SLOTS + 1];
    unsigned slot_of[WATCH_SLOTS + 1];
    pthread_setname_np(pthread_self(), "plait-pwatch"); /* see plait__thread_create */
    pthread_mutex_lock(&wt->working);
    for (;;) {
        unsigned ctl = atomic_load(&wt->ctl);
        size_t n = 0;
        v[n++] = (struct waitv_item){ctl, (uintptr_t)&wt->ctl, FUTEX_32 | FUTEX_PRIVATE_FLAG, 0};
        plait__spin_lock(&wt->lock);
        for (unsigned i = 0; i < WATCH_SLOTS; i++) {
            watch_pair *p = &wt->pairs[i];
            if (!p->entries)
                continue;
            slot_of[n] = i;
            v[n++] = (struct waitv_item){p->expected, (uintptr_t)p->word, FUTEX_32, 0};
        }
        wt->asleep = true;
        plait__spin_unlock(&wt->lock);
        pthread_mutex_unlock(&wt->working);
        long r = -1; /* no word named as woken: each is compared with its value below */
        if (have_futex_waitv())
            r = syscall(SYS_futex_waitv, v, n, 0, NULL, CLOCK_MONOTONIC);
        else
            plait__futex_wait(&wt->ctl, ctl,
                              n > 1 ? plait_deadline_in(NO_WAITV_POLL_NS) : PLAIT_FOREVER);
        pthread_mutex_lock(&wt->working);
        plait__wakeups later;
        later.n = 0;
        plait__spin_lock(&wt->lock);
        wt->asleep = false;
        for (unsigned i = 0; i < WATCH_SLOTS; i++) {
            watch_pair *p = &wt->pairs[i];
            if (!p->entries)
                continue;
            bool woken = r > 0 && slot_of[r] == i && v[r].uaddr == (uintptr_t)p->word &&
                         v[r].val == p->expected;
            if (woken || atomic_load_explicit(p->word, memory_order_acquire) != p->expected)
                slot_fire(wt, i, &later);
        }
        plait__spin_unlock(&wt->lock);
        plait__wakeups_deliver(&later);
    }
    return NULL;
}

/* A watcher with a slot for (word, expected), started if all are full.  Returns the
 * watcher locked, with *slot set; NULL when no watcher can be had, with *error: -EAGAIN
 * (the table is full, or no thread), -ENOMEM (no memory for a new watcher).  The
 * caller is a coroutine, perhaps on a PLAIT_STACK_MIN stack: see plait__thread_create. */
static watcher *watcher_for(atomic_uint *word, unsigned expected, unsigned *slot,
                            int *error)
{
    /* the epoch first, then the count: one that sees this epoch's first watcher made
     * sees the count reset before it (a count read before the reset, with the new
     * epoch after it, named the parent's watcher to a second thread of the child) */
    unsigned epoch = plait__fork_epoch();
    if (PLAIT_UNLIKELY(atomic_load_explicit(&watchers_epoch, memory_order_acquire) != epoch)) {
        pthread_mutex_lock(&watchers_lock); /* (left as they are, as by the fork handler) */
        if (atomic_load(&watchers_epoch) != epoch)
            atomic_store(&watcher_count, 0);
        pthread_mutex_unlock(&watchers_lock);
    }
    unsigned count = atomic_load_explicit(&watcher_count, memory_order_acquire);
    for (unsigned k = 0;; k++) {
        if (k == count) {
            pthread_mutex_lock(&watchers_lock);
            count = atomic_load_explicit(&watcher_count, memory_order_relaxed);
            if (k == count) {
                watcher *wt = count < WATCHERS_MAX ? calloc(1, sizeof *wt) : NULL;
                pthread_t th;
                pthread_attr_t attr;
                if (wt)
                    pthread_mutex_init(&wt->working, NULL);
                bool ok = wt && pthread_attr_init(&attr) == 0;
                if (ok) {
                    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                    pthread_attr_setstacksize(&attr, 64 * 1024);
                    ok = plait__thread_create(&th, &attr, watcher_main, wt) == 0;
                    pthread_attr_destroy(&attr);
                }
                if (!ok) {
                    pthread_mutex_unlock(&watchers_lock);
                    if (wt)
                        pthread_mutex_destroy(&wt->working);
                    *error = count < WATCHERS_MAX && !wt ? -ENOMEM : -EAGAIN;
                    free(wt);
                    return NULL;
                }
                watchers[count] = wt;
                atomic_store_explicit(&watchers_epoch, epoch, memory_order_release);
                atomic_store_explicit(&watcher_count, count + 1, memory_order_release);
            }
            pthread_mutex_unlock(&watchers_lock);
        }
        watcher *wt = watchers[k];
        plait__spin_lock(&wt->lock);
        unsigned free_slot = WATCH_SLOTS;
        for (unsigned i = 0; i < WATCH_SLOTS; i++) {
            watch_pair *p = &wt->pairs[i];
            if (p->entries && p->word == word && p->expected == expected) {
                *slot = i;
                return wt;
            }
            if (!p->entries && free_slot == WATCH_SLOTS)
                free_slot = i;
        }
        if (free_slot < WATCH_SLOTS) {
            wt->pairs[free_slot].word = word;
            wt->pairs[free_slot].expected = expected;
            *slot = free_slot;
            return wt;
        }
        plait__spin_unlock(&wt->lock);
    }
}

static int watch_add(watch_entry *e, atomic_uint *word, unsigned expected)
{
    unsigned slot;
    int error;
    watcher *wt = watcher_for(word, expected, &slot, &error);
    if (!wt)
        return error;
    watch_pair *p = &wt->pairs[slot];
    bool fresh = p->entries == NULL;
    e->owner = wt;
    e->slot = slot;
    e->linked = true;
    e->prev = NULL;
    e->next = p->entries;
    if (p->entries)
        p->entries->prev = e;
    p->entries = e;
    if (fresh)
        wt->used++;
    bool poke = fresh && wt->asleep; /* its list lacks this word */
    if (poke)
        atomic_fetch_add(&wt->ctl, 1);
    plait__spin_unlock(&wt->lock);
    if (poke)
        plait__futex_wake(&wt->ctl, 1);
    return 0;
}

static void watch_remove(watch_entry *e)
{
    watcher *wt = e->owner;
    plait__spin_lock(&wt->lock);
    if (e->linked) {
        watch_pair *p = &wt->pairs[e->slot];
        if (e->prev)
            e->prev->next = e->next;
        else
            p->entries = e->next;
        if (e->next)
            e->next->prev = e->prev;
        if (!p->entries)
            wt->used--; /* the watcher may still sleep on the word: a stale wake, harmless */
    }
    plait__spin_unlock(&wt->lock);
}

/* In a forked child the watchers are gone with their threads, but the coroutines of
 * the forking thread's scheduler that waited through them are there: each is woken (a
 * spurious wake-up, which every waiter takes in its stride: it looks at its word again,
 * and waits through a watcher of the child).  Its entry is unlinked from the old
 * watcher's memory, which stays, when it runs.  Other threads' coroutines are not in the
 * child to run.  The fork found every watcher asleep and its lock free (the prepare
 * handler holds `working` and the lock), so the lists are whole, and no wake-up a
 * watcher had claimed is still on its way: it was delivered before the fork, into the
 * inbox the child has (one half delivered would leave its coroutine waiting for ever,
 * as a lock held by a watcher at the fork once did; a claimed waiter is left alone). */
static void wake_own_waits(void)
{
    plait__sched *s = plait__sched_current();
    unsigned count = atomic_load(&watcher_count);
    for (unsigned k = 0; s && k < count; k++) {
        watcher *wt = watchers[k];
        for (unsigned i = 0; i < WATCH_SLOTS; i++)
            for (watch_entry *e = wt->pairs[i].entries; e; e = e->next)
                if (e->waiter->coro && e->waiter->coro->sched == s &&
                    plait__waiter_claim(e->waiter))
                    plait__waiter_signal_now(e->waiter, 0, -1);
    }
}

void plait__pfutex_atfork(int phase)
{
    if (phase == PLAIT__FORK_PREPARE)
        pthread_mutex_lock(&watchers_lock);
    unsigned count = atomic_load(&watcher_count);
    for (unsigned k = 0; k < count; k++) {
        watcher *wt = watchers[k];
        if (phase == PLAIT__FORK_PREPARE) {
            pthread_mutex_lock(&wt->working);
            plait__spin_lock(&wt->lock);
        } else {
            plait__spin_unlock(&wt->lock);
            pthread_mutex_unlock(&wt->working);
        }
    }
    /* in the child the threads are gone; their memory is left as it is (a slot's
     * entries lived on stacks of threads that are gone too, or of coroutines woken here) */
    if (phase == PLAIT__FORK_CHILD) {
        wake_own_waits();
        atomic_store(&watcher_count, 0);
    }
    if (phase != PLAIT__FORK_PREPARE)
        pthread_mutex_unlock(&watchers_lock);
}

/* ---- waiting ---- */

/* Sleep until *word is woken or differs from expected, or *signalled is no longer 0
 * (it is this thread's own word, and a cancellation stores it before it wakes word:
 * waiting on both means that store cannot fall between our look at it and our sleep),
 * or the deadline.  0 or -ETIMEDOUT. */
static int wait_word_or_signal(atomic_uint *word, unsigned expected, atomic_uint *signalled,
                               int64_t deadline)
{
    struct waitv_item v[2] = {
        {expected, (uintptr_t)word, FUTEX_32, 0},
        {0, (uintptr_t)signalled, FUTEX_32 | FUTEX_PRIVATE_FLAG, 0},
    };
    if (PLAIT_UNLIKELY(!have_futex_waitv())) {
        for (;;) {
            if (atomic_load_explicit(signalled, memory_order_acquire))
                return 0;
            int64_t slice = plait_deadline_in(NO_WAITV_SLICE_NS);
            if (slice >= deadline)
                return plait__futex_wait_shared(word, expected, deadline);
            if (plait__futex_wait_shared(word, expected, slice) != -ETIMEDOUT)
                return 0; /* woken, or the value moved on */
        }
    }
    struct timespec ts, *tsp = plait__deadline_timespec(deadline, &ts);
    long r = syscall(SYS_futex_waitv, v, 2, 0, tsp, CLOCK_MONOTONIC);
    return r < 0 && errno == ETIMEDOUT ? -ETIMEDOUT : 0;
}

int plait__shared_word_block(plait__waiter *w, int64_t deadline)
{
    atomic_uint *word = w->shared_word;
    for (unsigned spins = 0;;) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire))
            return w->status;
        int r = wait_word_or_signal(word, w->shared_expected, &w->signalled, deadline);
        if (atomic_load_explicit(&w->signalled, memory_order_acquire))
            return w->status;
        if (plait__waiter_claim(w))
            return w->status = r; /* 0: woken, or the value moved on; or -ETIMEDOUT */
        /* a cancellation claimed it and is about to publish: wait for that */
        while (!atomic_load_explicit(&w->signalled, memory_order_acquire)) {
            if (++spins < 64)
                plait__cpu_relax();
            else
                sched_yield();
        }
    }
}

int plait__pfutex_wait(atomic_uint *word, unsigned expected, int64_t deadline,
                       const char *what, const void *object)
{
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    if (atomic_load_explicit(word, memory_order_acquire) != expected)
        return 0;
    if (plait__deadline_passed(deadline))
        return -ETIMEDOUT;
    plait__waiter w;
    plait__waiter_init(&w, what, object);
    if (!w.coro) {
        w.shared_word = word;
        w.shared_expected = expected;
        return plait__waiter_block(&w, deadline);
    }
    watch_entry e;
    e.waiter = &w;
    if (watch_add(&e, word, expected) < 0) {
        /* No watcher to be had (the table full, no thread, no memory): the coroutine
         * sleeps a while, its scheduler free meanwhile, and its caller looks at the word
         * again as after a wake-up, which may find a watcher then. */
        int64_t pause = plait_deadline_in(NO_WATCHER_PAUSE_NS);
        r = plait_sleep_until(pause < deadline ? pause : deadline);
        return r == 0 && pause >= deadline ? -ETIMEDOUT : r;
    }
    r = plait__waiter_block(&w, deadline);
    watch_remove(&e);
    return r;
}

void plait__pfutex_wake(atomic_uint *word)
{
    plait__futex_wake_shared(word, INT32_MAX);
}

/* ---- the pid lock ---- */

enum { PLOCK_WAITERS = 1u << 31 };
/* How long a sleeping locker waits before it looks again: a holder that died inside
 * unlock (word cleared, nobody woken), or a waiter that died with the only wake-up,
 * must not strand the others; nor may a dead child's lock wait for its reaper, which
 * may be the very thread that waits. */
#define PLOCK_RECHECK_NS (10 * PLAIT_MS)

static PLAIT_TLS unsigned tls_pid_cache;
static PLAIT_TLS unsigned tls_pid_epoch; /* the fork epoch it was read at */

unsigned plait__pid(void)
{
    /* a child's cached pid is its parent's until its epoch moves on (fork handlers, or
     * a child of _Fork() finding itself out: plait__fork_epoch) */
    unsigned epoch = plait__fork_epoch();
    if (PLAIT_UNLIKELY(!tls_pid_cache || tls_pid_epoch != epoch)) {
        tls_pid_cache = (unsigned)getpid();
        tls_pid_epoch = epoch;
    }
    return tls_pid_cache;
}

/* A holder that has ended will never unlock: release the lock for it, as its reaper
 * would — whether it is a child of this process not yet reaped (a zombie, which kill()
 * would still find) or a process that no longer exists at all (reaped by a parent that
 * did not hear of this lock). */
static void release_if_dead(plait__plock *l, unsigned holder)
{
    siginfo_t info;
    info.si_pid = 0;
    int cancel_state = plait__cancel_off(); /* waitid(2) is a cancellation point */
    bool zombie_child = waitid(P_PID, (id_t)holder, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                        info.si_pid == (pid_t)holder;
    plait__cancel_restore(cancel_state);
    if (zombie_child || (kill((pid_t)holder, 0) < 0 && errno == ESRCH))
        plait__plock_release_dead(l, holder);
}

bool plait__plock_trylock(plait__plock *l)
{
    unsigned expected = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, &expected, plait__pid(),
                                                   memory_order_acquire, memory_order_relaxed);
}

/* The lock taken at once, or within a short spin: true. */
static bool plock_take_soon(plait__plock *l, unsigned me)
{
    unsigned expected = 0;
    if (PLAIT_LIKELY(atomic_compare_exchange_strong_explicit(
            &l->word, &expected, me, memory_order_acquire, memory_order_relaxed)))
        return true;
    for (unsigned spins = 0; spins < 100; spins++) {
        plait__cpu_relax();
        expected = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &expected, me,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

/* Before a sleep: take the lock if it is free, with the mark that it is waited on (we
 * cannot know whether others still wait when we get it): true; or mark the holder's
 * word as waited on: false, *marked being the word to sleep on. */
static bool plock_take_or_mark(plait__plock *l, unsigned me, unsigned *marked)
{
    for (;;) {
        unsigned v = atomic_load_explicit(&l->word, memory_order_relaxed);
        if (v == 0) {
            if (atomic_compare_exchange_weak_explicit(&l->word, &v, me | PLOCK_WAITERS,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return true;
            continue;
        }
        if (!(v & PLOCK_WAITERS) &&
            !atomic_compare_exchange_weak_explicit(&l->word, &v, v | PLOCK_WAITERS,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed))
            continue;
        *marked = v | PLOCK_WAITERS;
        return false;
    }
}

int plait__plock_lock_patient(plait__plock *l, unsigned patience, unsigned *holder)
{
    unsigned me = plait__pid();
    if (plock_take_soon(l, me))
        return 0;
    /* sleep; count the looks that found the word unchanged, its holder alive */
    unsigned looks = 0, last = 0, v;
    for (;;) {
        if (plock_take_or_mark(l, me, &v))
            return 0;
        if (v != last) {
            looks = 0;
            last = v;
        }
        if (plait__futex_wait_shared(&l->word, v, plait_deadline_in(PLOCK_RECHECK_NS)) !=
            -ETIMEDOUT)
            continue;
        release_if_dead(l, v & ~PLOCK_WAITERS);
        if (atomic_load_explicit(&l->word, memory_order_relaxed) != v)
            continue;
        if (++looks >= patience) {
            if (holder)
                *holder = v & ~PLOCK_WAITERS;
            return -ETIMEDOUT;
        }
    }
}

/* As plait__plock_lock_patient, but a locker that must wait waits as any other waiter on a
 * shared word does (a coroutine through a watcher, so its scheduler goes on), and gives
 * up at its deadline: the holder may be a process that is stopped (a debugger, job
 * control) or slow in a copy of many megabytes, and a send or receive must not outlive
 * its deadline, nor freeze every coroutine of its scheduler, for that. */
int plait__plock_lock_until(plait__plock *l, int64_t deadline, int64_t grace)
{
    unsigned v;
    if (plock_take_soon(l, plait__pid()))
        return 0;
    int64_t at_least = plait_deadline_in(grace); /* (the clock only once it must wait) */
    if (deadline < at_least)
        deadline = at_least;
    for (;;) {
        /* the id read at each look: a coroutine that waits here while another of its
         * scheduler forks goes on in the child, which must take the lock as itself (in
         * its parent's name, its death could not release it) */
        if (plock_take_or_mark(l, plait__pid(), &v))
            return 0;
        int64_t recheck = plait_deadline_in(PLOCK_RECHECK_NS);
        int r = plait__pfutex_wait(&l->word, v, recheck < deadline ? recheck : deadline,
                                   "shared lock", l);
        if (r == -ETIMEDOUT) {
            release_if_dead(l, v & ~PLOCK_WAITERS);
            /* the last look takes what it freed: a try answered -ETIMEDOUT on a lock
             * its own look had just found left by a dead holder */
            if (recheck >= deadline)
                return plait__plock_trylock(l) ? 0 : -ETIMEDOUT;
        } else if (r < 0) {
            return r;
        }
    }
}

bool plait__plock_seize(plait__plock *l, unsigned holder)
{
    unsigned v = atomic_load_explicit(&l->word, memory_order_relaxed);
    if ((v & ~PLOCK_WAITERS) != holder)
        return false;
    /* with the waiters' bit: whoever sleeps on the word is woken at the unlock */
    return atomic_compare_exchange_strong_explicit(&l->word, &v, plait__pid() | PLOCK_WAITERS,
                                                   memory_order_acquire, memory_order_relaxed);
}

void plait__plock_unlock(plait__plock *l)
{
    unsigned v = atomic_exchange_explicit(&l->word, 0, memory_order_release);
    if (v & PLOCK_WAITERS) /* all: one could be a watcher whose coroutines gave up */
        plait__futex_wake_shared(&l->word, INT32_MAX);
}

bool plait__plock_release_dead(plait__plock *l, unsigned dead_pid)
{
    unsigned v = atomic_load_explicit(&l->word, memory_order_acquire);
    if ((v & ~PLOCK_WAITERS) != dead_pid || dead_pid == 0)
        return false;
    if (!atomic_compare_exchange_strong(&l->word, &v, 0))
        return false;
    plait__futex_wake_shared(&l->word, INT32_MAX);
    return true;
}
