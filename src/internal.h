/*
 * internal.h — the structures every part of plait shares.
 *
 * The three ideas the rest of the code is built on:
 *
 *   coroutine  (plait__coro)   a stack, a saved context and the bookkeeping of one task.
 *              It lives at the top of its own stack slot (stack.c), so a suspended
 *              coroutine costs the pages it touched and nothing else.
 *
 *   scheduler  (plait__sched)  one per thread that runs coroutines: a FIFO ready
 *              queue, a timer heap, and an inbox through which other threads hand it
 *              wake-ups and cancellations.  Only its own thread touches anything but
 *              the inbox.
 *
 *   waiter     (plait__waiter) one blocked party, a coroutine or a plain thread,
 *              enqueued through one wait node per thing it waits on (several for
 *              select and wait-any).  Every blocking primitive is a lock, some state
 *              and queues of wait nodes; waiter.c holds the one protocol they all use.
 */
#ifndef PLAIT_INTERNAL_H
#define PLAIT_INTERNAL_H

#include "plait.h"
#include "context.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#if defined(__SANITIZE_THREAD__)
#define PLAIT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PLAIT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PLAIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PLAIT_ASAN 1
#endif
#endif

/* Under ThreadSanitizer: a function the compiler leaves uninstrumented, its entry and
 * exit included (sched.c's coro_entry, whose frame never returns), and
 * PLAIT__TSAN_FIBER_REUSE where that can be had: gcc's no_sanitize_thread leaves out all;
 * clang's equivalent is disable_sanitizer_instrumentation (its no_sanitize("thread")
 * keeps entry and exit).  Empty in other builds. */
#if defined(PLAIT_TSAN) && defined(__clang__) && defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define PLAIT__TSAN_NO_ENTRY_EXIT __attribute__((disable_sanitizer_instrumentation))
#define PLAIT__TSAN_FIBER_REUSE 1
#endif
#elif defined(PLAIT_TSAN) && defined(__GNUC__)
#define PLAIT__TSAN_NO_ENTRY_EXIT __attribute__((no_sanitize_thread))
#define PLAIT__TSAN_FIBER_REUSE 1
#endif
#ifndef PLAIT__TSAN_NO_ENTRY_EXIT
#define PLAIT__TSAN_NO_ENTRY_EXIT
#endif

#define PLAIT_LIKELY(x) __builtin_expect(!!(x), 1)
#define PLAIT_UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef struct plait__sched plait__sched;
typedef struct plait__coro plait__coro;
typedef struct plait__waiter plait__waiter;
typedef struct plait__wait_node plait__wait_node;

/* A pause in a spin loop: lets the sibling hyperthread run and saves power. */
static inline void plait__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* ---- pthread_cancel ----
 * plait's own code is no cancellation point (docs/ARCHITECTURE.md, "pthread_cancel"):
 * a section that makes one — a libc call that is (read, write, close, poll, connect,
 * waitid, pthread_join...), reached with a lock held, a wait linked on the caller's
 * stack, a descriptor not yet handed over, or on a scheduler's thread — runs between
 * these two.  A pthread_cancel pending then is acted on at the caller's next
 * cancellation point outside plait (restoring does not act on it: deferred). */
static inline int plait__cancel_off(void)
{
    int previous;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &previous);
    return previous;
}

static inline void plait__cancel_restore(int previous)
{
    pthread_setcancelstate(previous, NULL);
}

/* ---- asymmetric fences (fence.c): a hot side that pays nothing, a rare side that
 * pays a system call ---- */
/* Whether the heavy fence works in this process (registers it for membarrier, once). */
bool plait__asymmetric_fences(void);
/* The hot side, between its store and its load: only the compiler is held back. */
static inline void plait__light_fence(void) { atomic_signal_fence(memory_order_seq_cst); }
/* The rare side, between its store and its load: a full fence on every thread; 0, or
 * -errno when it could not be made (the handshake then did not happen). */
int plait__heavy_fence(void);

/* Between a sequentially consistent store and a sequentially consistent load of
 * another variable, where a handshake needs one of two threads to see the other's
 * store (Dekker).  C11 needs nothing more, and on x86-64 nothing is emitted (the store
 * is an exchange there).  Elsewhere a full fence is added: qemu-user (7.2, on an
 * x86-64 host: the CI's aarch64 stage) lets a later LDAR pass an earlier STLR, which
 * ARMv8 forbids — a store-buffering litmus test showed both loads stale in 23–130 of
 * 20,000 rounds under it, and in none with the fence — and tests/test_deque.c's
 * Chase–Lev stress then took items twice. */
static inline void plait__store_load_fence(void)
{
#if !defined(__x86_64__)
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Sort n elements of size bytes at base, ascending by cmp, as qsort does, but in place
 * with a few words of stack (sort.c: for a caller's stack, a coroutine's smallest). */
void plait__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* qsort's comparison of two uintptr_t (addresses), ascending. */
static inline int plait__by_address(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- spin lock: guards a primitive's few words of state; held for nanoseconds ---- */
typedef struct plait__spinlock { atomic_int held; } plait__spinlock;
/* Take the lock if it is free; whether it was. */
static inline bool plait__spin_trylock(plait__spinlock *lock)
{
    return !atomic_load_explicit(&lock->held, memory_order_relaxed) &&
           !atomic_exchange_explicit(&lock->held, 1, memory_order_acquire);
}
/* The pause of the spins-th failed try to take a spin lock: spin, then yield. */
void plait__spin_pause(unsigned spins);
/* The contended path of plait__spin_lock: pause until it is taken. */
void plait__spin_lock_contended(plait__spinlock *lock);
static inline void plait__spin_lock(plait__spinlock *lock)
{
    if (atomic_exchange_explicit(&lock->held, 1, memory_order_acquire))
        plait__spin_lock_contended(lock);
}
static inline void plait__spin_unlock(plait__spinlock *lock)
{
    atomic_store_explicit(&lock->held, 0, memory_order_release);
}

/* ---- futex ---- */
/* Wait while *word == expected, until the absolute monotonic deadline.  Returns 0 when
 * woken or the value differed, -ETIMEDOUT.  The private kind is for words of this
 * process only; the shared kind for words in memory shared with other processes. */
int plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
/* An absolute CLOCK_MONOTONIC deadline as a timespec in *ts; NULL for PLAIT_FOREVER. */
struct timespec;
struct timespec *plait__deadline_timespec(int64_t deadline, struct timespec *ts);
void plait__futex_wake(atomic_uint *word, int count);
int plait__futex_wait_shared(atomic_uint *word, unsigned expected, int64_t deadline);
/* Returns how many waiters it woke (0 also when the call failed). */
int plait__futex_wake_shared(atomic_uint *word, int count);
/* Spinning before sleeping (futex.c says why).  A spin lets the CPU go between two
 * looks at what ends the wait: `pauses` CPU pauses first, then sched_yield() until ns
 * have passed since the first yield, and never past the absolute deadline.
 * plait__spin_again makes one such step, false (and no step) when the time is up. */
typedef struct plait__spin {
    unsigned pauses;   /* set by the caller, with ns and deadline */
    int64_t ns, deadline;
    unsigned turns;    /* pauses made */
    int64_t until;     /* 0 until the first yield */
} plait__spin;
bool plait__spin_yield(plait__spin *spin); /* the step after the pauses (futex.c) */
static inline bool plait__spin_again(plait__spin *spin)
{
    if (spin->turns < spin->pauses) {
        spin->turns++;
        plait__cpu_relax();
        return true;
    }
    return plait__spin_yield(spin);
}
/* Look at *word so (16 pauses, then yields) for up to ns: true as soon as it is no
 * longer value, false when the time is up. */
bool plait__spin_while(atomic_uint *word, unsigned value, int64_t ns, int64_t deadline);
/* How long a blocked thread, or a scheduler with nothing to run, looks before it sleeps
 * on its futex word (or in its io_uring ring): about what a sleep and a wake-up cost
 * on a virtual machine.  Not under ThreadSanitizer, whose threads run several times
 * slower (a hand-off never comes within the look) and whose suite the looks' yields
 * made a third slower: there a wait makes only its sixteen pauses before it sleeps. */
#ifdef PLAIT_TSAN
#define PLAIT__WAIT_SPIN_NS 0
#else
#define PLAIT__WAIT_SPIN_NS (20 * 1000)
#endif

/* ---- process-shared futex words (pfutex.c) ---- */
/* Wait while *word == expected (a word in shared memory), from a coroutine (only it
 * waits) or a thread.  0 when woken or the value moved on (possibly spurious: check the
 * condition again), -ETIMEDOUT, -ECANCELED. */
int plait__pfutex_wait(atomic_uint *word, unsigned expected, int64_t deadline,
                       const char *what, const void *object);
/* Wake every waiter of a shared word (after changing it). */
void plait__pfutex_wake(atomic_uint *word);
/* This process's id, cached for the fork epoch. */
unsigned plait__pid(void);
/* The fork epoch: raised in every forked child (fork.c), so that what was made at
 * another epoch (a thread pool, a task, a descriptor of plait's) is known for a copy
 * of an ancestor's, without a look at the process id on any fast path.  A child that
 * ran no fork handler (_Fork, a raw clone) raises it when it first asks: the word
 * plait__epoch_known, which the kernel zeroes in every child, says whether this
 * process knows its epoch (1). */
extern atomic_uint plait__fork_epoch_now;
extern atomic_uint *plait__epoch_known;
/* The name future.c gives this process in task handles, 0 until it is named: in a
 * page the kernel zeroes in every child, as plait__epoch_known. */
extern atomic_ullong *plait__process_name;
unsigned plait__fork_epoch_found_out(void);
static inline unsigned plait__fork_epoch(void)
{
    if (PLAIT_UNLIKELY(atomic_load_explicit(plait__epoch_known, memory_order_acquire) != 1))
        return plait__fork_epoch_found_out();
    return atomic_load_explicit(&plait__fork_epoch_now, memory_order_relaxed);
}
/* The epoch where this process knows it (async-signal-safe: never raises it): false in
 * a child of _Fork() that has not yet asked. */
static inline bool plait__fork_epoch_if_known(unsigned *epoch)
{
    if (atomic_load_explicit(plait__epoch_known, memory_order_acquire) != 1)
        return false;
    *epoch = atomic_load_explicit(&plait__fork_epoch_now, memory_order_relaxed);
    return true;
}
/* In a child's fork handlers: the epoch of the process that forked it.  A descriptor
 * plait made at that epoch is plait's to close there; one of an older epoch (a copy
 * the forking process, a child of _Fork(), had from its own parent) may be a file the
 * program opened at that number since, and is left alone. */
extern unsigned plait__fork_epoch_parent;
/* A lock in shared memory whose word is its holder's process id. */
typedef struct plait__plock { atomic_uint word; } plait__plock;
/* Take the lock if it is free, without waiting: true. */
bool plait__plock_trylock(plait__plock *lock);
/* Take the lock, or give up with -ETIMEDOUT once its word has named one holder, alive,
 * for `patience` looks in a row (about 10 ms apart), saying which in *holder (may be
 * NULL): for a word that another process can write anything to (pfutex.c). */
int plait__plock_lock_patient(plait__plock *lock, unsigned patience, unsigned *holder);
/* Take the lock for a call with a deadline, from a coroutine (only it waits) or a
 * thread, waiting grace ns at least (a holder's short copy) even where the deadline
 * comes sooner: 0, or -ETIMEDOUT once both have passed (a holder that is stopped, or
 * slow in a long copy), or -ECANCELED. */
int plait__plock_lock_until(plait__plock *lock, int64_t deadline, int64_t grace);
/* Take the lock from holder, which holds it by no right (the word was written over with
 * a value that no process holding it will clear): false when the word names another. */
bool plait__plock_seize(plait__plock *lock, unsigned holder);
void plait__plock_unlock(plait__plock *lock);
/* Release the lock if the process dead_pid (dead, not yet reaped) holds it. */
bool plait__plock_release_dead(plait__plock *lock, unsigned dead_pid);
/* In a forked child: forget the watcher threads of the parent. */
void plait__pfutex_after_fork(void);

/* ---- timers (timer.c): a binary min-heap per scheduler, and a list beside it ---- */
typedef struct plait__timer {
    int64_t when;
    uint64_t seq; /* the order of adding: of equal deadlines the earlier added fires first */
    size_t index; /* heap position; PLAIT__TIMER_IN_LIST; SIZE_MAX: in neither */
    plait__waiter *waiter;
    struct plait__timer *prev, *next; /* in the list (timer.c) */
} plait__timer;

#define PLAIT__TIMER_IN_LIST (SIZE_MAX - 1)

/* A heap entry keeps its timer's deadline beside it: sifting compares without
 * reaching into the waiters' stacks. */
typedef struct plait__timer_entry {
    int64_t when;
    plait__timer *timer;
} plait__timer_entry;

/* The heap, and beside it a list of timers in the order of their deadlines for those
 * that come in that order (timer.c). */
typedef struct plait__timer_heap {
    plait__timer_entry *items;
    size_t len, cap;
    plait__timer *head, *tail; /* the list: earliest first */
    uint64_t added; /* timers ever added: the next one's seq */
} plait__timer_heap;

int plait__timer_add(plait__timer_heap *heap, plait__timer *timer);
void plait__timer_remove(plait__timer_heap *heap, plait__timer *timer);
/* Whether a fires before b: the earlier deadline, or of equal ones the earlier added. */
static inline bool plait__timer_before(const plait__timer *a, const plait__timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}
static inline plait__timer *plait__timer_first(plait__timer_heap *heap)
{
    plait__timer *t = heap->len ? heap->items[0].timer : NULL;
    return heap->head && (!t || plait__timer_before(heap->head, t)) ? heap->head : t;
}
void plait__timer_heap_free(plait__timer_heap *heap);

/* ---- waiters (waiter.c) ---- */

/* A queue of wait nodes.  It has no lock of its own: the primitive that owns it
 * guards it (and its other state) with one spin lock, which every node records. */
typedef struct plait__waitq {
    plait__wait_node *head, *tail;
} plait__waitq;

struct plait__wait_node {
    plait__wait_node *prev, *next;
    plait__waiter *waiter;
    plait__waitq *queue;      /* where it is linked, NULL once unlinked */
    plait__spinlock *lock;    /* the lock that guards queue */
    int index;                /* which case of a multi-wait this node is */
    int same_next;            /* index when alone; for a select's case on a channel that
                               * other cases share, the next of them (a ring, by case
                               * index, in the select's array of nodes): whoever claims
                               * through one node unlinks the others (waiter.c);
                               * PLAIT__STRANDED in a forked child whose parent had the
                               * object's lock held by another thread at the fork
                               * (plait__sched_strand_after_fork): left linked, never
                               * unlinked */
    void *data;               /* the case's payload (a channel element, ...) */
};

enum { PLAIT__STRANDED = -1 };

/* Bytes of a channel element that a wait carries in its waiter (plait__wait_on_element). */
enum { PLAIT__WAITER_PAYLOAD = 24 };

/*
 * A waiter is laid out by who touches what (cache lines cross between CPUs at every
 * hand-off, and each crossing is a cache miss on the critical path;
 * docs/ARCHITECTURE.md, "A hand-off's cache lines"):
 *  - first what a waker reads first: the claim, and the node of a wait on one queue,
 *    which it unlinks;
 *  - then what the claimer writes and the waiting party reads back: the outcome, the
 *    word a thread looks at, how to wake it, and a small element handed over;
 *  - last the rest, which only the waiting party, a timer or a rare path reads.
 * Each group is 64 bytes or less, but the waiter is not aligned to cache lines: on the
 * stack that made every wait realign its frame, and measured slower, across threads
 * too, than the groups as they fall (docs/BENCHMARKS.md, session 41).
 */
struct plait__waiter {
    atomic_int claimed;       /* 0 until the one party that decides the outcome claims it */
    plait__wait_node node;    /* the node of a plait__wait_on and its variants (multi-waits
                                 * and a few others link nodes of their own) */

    atomic_uint signalled; /* 0 -> 1 when signalled: a plain thread waiter's
                                 futex word (not for helper, shared_word or poll_fd
                                 ones), PLAIT__SIGNAL_AWAITED_ASLEEP from when that
                                 thread marks it to sleep until a signal (and for good
                                 after its own time-out); for a coroutine, only that its
                                 outcome is written (read after a fork) */
    int status;               /* the outcome, written by the claimer before it signals */
    int index;                /* the node (case) the outcome came through, -1 for none */
    int wake_fd;              /* a thread's wake-up eventfd (poll.c, see shared_word) */
    plait__coro *coro;        /* the suspended coroutine, or NULL for a blocked thread */
    union {
        struct { /* a coroutine's wait (coro set) */
            plait__sched *sched;          /* coro's scheduler, for a waker that must not
                                           * touch the coroutine's own cache line */
            plait__waiter *inbox_next;    /* in that scheduler's inbox once signalled
                                           * from another thread (sched.c) */
        };
        struct { /* a plain thread's (coro NULL) */
            struct plait__worker *helper; /* a pool worker that runs queued tasks while
                                           * it waits (pool.c); it sleeps on its own
                                           * word, which the signal pokes */
            /* A thread waiter that sleeps on something other than `signalled`: a
             * process-shared futex word (pfutex.c), woken by the signal with a shared
             * FUTEX_WAKE, or poll() on a descriptor and its thread's wake-up eventfd
             * (wake_fd, beside coro above: poll.c), which the signal writes before it
             * publishes `signalled`. */
            atomic_uint *shared_word;
        };
    };
    /* a channel element of up to PLAIT__WAITER_PAYLOAD bytes, copied here by the
     * waker (a receive) or by the waiting sender (plait__wait_on_element) */
    _Alignas(8) unsigned char payload[PLAIT__WAITER_PAYLOAD];

    bool cancellable;
    bool fd_closed;           /* plait_close found this wait linked on its descriptor,
                               * claimed or not (poll.c: close_pass) */
    unsigned shared_expected;
    int poll_fd;
    short poll_events;
    plait__timer timer;       /* coroutine waiters with a deadline */
    const char *what;         /* for plait_dump(): what is waited on */
    const void *object;
    struct plait__kernel_io *io; /* a read or write the kernel makes for this wait
                                 * (io_uring: poll.c), for plait_close; or NULL */
    plait__wait_node *nodes;  /* a select's or a condition's own nodes (n_nodes), for a
                               * fork's look at their locks (plait__sched_strand_after_fork);
                               * else NULL, and `node` is the wait's if its lock is set */
    size_t n_nodes;
};
_Static_assert(offsetof(plait__waiter, node) + sizeof(plait__wait_node) <= 64,
               "a waiter's claim and node fit in 64 bytes");
_Static_assert(offsetof(plait__waiter, payload) + PLAIT__WAITER_PAYLOAD -
                       offsetof(plait__waiter, signalled) <= 64,
               "a waiter's outcome, how to wake it and its payload fit in 64 bytes");

/* Start a wait by the calling coroutine or thread. */
void plait__waiter_init(plait__waiter *w, const char *what, const void *object);
/* The first check of every blocking call: -ECANCELED if the calling coroutine, plait
 * thread or pool task has been cancelled and is not shielded (plait_cancel_shield),
 * else 0. */
int plait__check_cancel(void);
/* Whether the calling task holds its cancellation off (plait_cancel_shield). */
bool plait__shielded(void);
/* In a forked child, whose thread's work is no longer its own: the thread keeps the
 * shield's state as a plain thread's (plait__future_atfork). */
void plait__shield_keep_as_plain(bool shielded);
/* Link a node of w into q (the caller holds the queue's lock). */
void plait__waitq_push(plait__waitq *q, plait__spinlock *lock, plait__wait_node *node,
                       plait__waiter *w, int index, void *data);
/* The same for a select's case whose channel other cases share: same_next is the next
 * of them in a ring over the select's nodes, an array indexed by case, whose nodes not
 * linked have queue NULL and their same_next (plait__wait_node, waiter.c). */
void plait__waitq_push_case(plait__waitq *q, plait__spinlock *lock, plait__wait_node *node,
                            plait__waiter *w, int index, void *data, int same_next);
/* Claim the first waiter of q whose outcome is still open and unlink its node; NULL if
 * none.  Nodes whose waiter was claimed elsewhere are skipped and stay linked (waiter.c,
 * invariant 4).  The caller
 * holds the queue's lock, completes the hand-off, then calls plait__waiter_signal, and
 * delivers the wake-up after unlocking. */
plait__wait_node *plait__waitq_claim(plait__waitq *q);
/* The same, leaving alone the nodes of except (a select must not pair with itself). */
plait__wait_node *plait__waitq_claim_except(plait__waitq *q, const plait__waiter *except);
/* Whether q holds a node of a waiter other than except whose outcome is open. */
bool plait__waitq_has_other(plait__waitq *q, const plait__waiter *except);
static inline bool plait__waitq_empty(const plait__waitq *q) { return q->head == NULL; }
/* Claim w on behalf of its own wait (an immediate completion inside a multi-wait);
 * false when someone else has claimed it first. */
bool plait__waiter_claim(plait__waiter *w);
/*
 * Wake-ups decided under a primitive's spin lock and delivered after it is released.
 * A woken thread often runs at once (on one CPU it preempts its waker); woken under
 * the lock, it would find the lock still held (it must take it to unlink its node)
 * and spin or yield until the waker is scheduled again.  Delivery needs only a futex
 * word's address, safe once a thread waiter's stack may be gone (a futex wake of an
 * address that is dead or reused is at worst a spurious wake-up, which every futex
 * wait tolerates: the argument glibc's pthread_mutex_unlock makes), or a coroutine's
 * waiter, alive until the wake-up arrives, as its coroutine stays suspended until
 * then.  Beyond PLAIT__WAKEUPS_MAX a signal
 * wakes at once, under the lock: slower, never wrong.  A collection starts with only
 * its count set (`later.n = 0`, not `= {.n = 0}`): entries are written before they are
 * read, and zeroing the whole was a `rep stos` of 104 bytes that cost a channel message
 * within one scheduler a fifth of its time (docs/BENCHMARKS.md, session 41).
 */
enum { PLAIT__WAKEUPS_MAX = 4 };
typedef struct plait__wakeups {
    unsigned n;
    struct {
        plait__waiter *waiter; /* a coroutine's wait to end (its coroutine made ready), or */
        atomic_uint *futex;   /* a futex word to wake (one waiter), or */
        atomic_uint *shared;  /* a process-shared futex word to wake (every waiter) */
    } to[PLAIT__WAKEUPS_MAX];
} plait__wakeups;
/* Deliver the wake-ups collected (the caller holds no spin lock) and empty it. */
void plait__wakeups_deliver(plait__wakeups *later);
/* Publish the outcome of a claimed waiter; its wake-up goes into later, for the
 * caller to deliver after unlocking.  After this the waker must not touch w (only the
 * delivery of a coroutine's wake-up does): it lives on the waiter's stack. */
void plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);
/* The same, waking at once: for a caller that holds no spin lock. */
void plait__waiter_signal_now(plait__waiter *w, int status, int index);
/* The value of a plain thread waiter's `signalled` while it sleeps on that word: its
 * signaller exchanges the word for 1 and makes a FUTEX_WAKE only when it finds this
 * mark, none for a waiter still looking (waiter.c, futex_block). */
#define PLAIT__SIGNAL_AWAITED_ASLEEP 2u
/* Block until w is signalled or the deadline passes (then status -ETIMEDOUT) or the
 * coroutine is cancelled (-ECANCELED).  Returns the status.  The caller then unlinks
 * its nodes with plait__wait_node_unlink. */
int plait__waiter_block(plait__waiter *w, int64_t deadline);
/* How a thread waiter sleeping on a shared word / in poll() blocks (pfutex.c, poll.c):
 * until it is signalled, its condition is met (it claims itself: status 0) or the
 * deadline passes. */
int plait__shared_word_block(plait__waiter *w, int64_t deadline);
int plait__poll_block(plait__waiter *w, int64_t deadline);
/* Add one to an eventfd (a thread's wake-up descriptor). */
void plait__wake_fd_write(int fd);
/* After the wait: unlink node if still linked, taking its lock; not the node the
 * outcome came through (its waker unlinked it, and the object may be gone since). */
void plait__wait_node_unlink(plait__wait_node *node);
/* While the outcome is not decided (no waker has signalled, though one may be about to):
 * unlink node if still linked, taking its lock. */
void plait__wait_node_withdraw(plait__wait_node *node);
/* The common single-queue wait.  The caller holds lock and has found it must wait:
 * unless cancelled (when cancellable) or past the deadline, link a node carrying data
 * into q, unlock, block, unlink.  Returns the outcome; lock is not held on return. */
int plait__wait_on(plait__waitq *q, plait__spinlock *lock, void *data, int64_t deadline,
                   bool cancellable, const char *what, const void *object);
/* The same, linked just before before, a node of q (NULL: at the tail): a waiter woken
 * to try again that found the object taken by a caller that never waited goes back to
 * its place among the others, before those that came later (mutex.c). */
int plait__wait_on_before(plait__waitq *q, plait__spinlock *lock, void *data,
                          int64_t deadline, bool cancellable, const char *what,
                          const void *object, plait__wait_node *before);
/* The same (cancellable, no data) for a wait on work done by tasks: a pool task that
 * waits runs queued tasks meanwhile, as a join does, so that it cannot starve its
 * pool of the tasks it waits for. */
int plait__wait_on_helping(plait__waitq *q, plait__spinlock *lock, int64_t deadline,
                           const char *what, const void *object);
/* The same for a caller with bookkeeping to undo when its wait fails: a wait that
 * ends by its deadline or a cancellation (not through its node) returns with lock
 * held and the node unlinked, *locked true.  Until then the node is in q, so a
 * destroy that refuses while q has waiters cannot free the object between the wait's
 * end and the undoing.  A wait that a waker ended returns unlocked, *locked false:
 * the waker may have destroyed the object since (waiter.c, invariant 3). */
int plait__wait_on_keep_lock(plait__waitq *q, plait__spinlock *lock, void *data,
                             int64_t deadline, bool cancellable, const char *what,
                             const void *object, bool *locked);
/* The same (cancellable) for a channel's element of `size` bytes at elem, which a
 * waker copies in (receiving) or out of (a sender's wait).  An element of up to
 * PLAIT__WAITER_PAYLOAD bytes travels in the waiter's own cache line, next to the
 * outcome, instead of in the caller's buffer: a hand-off then moves one line less
 * each way between CPUs.  On success a receive's element is in elem. */
int plait__wait_on_element(plait__waitq *q, plait__spinlock *lock, void *elem,
                           size_t size, bool receiving, int64_t deadline,
                           const char *what, const void *object);
/* plait_event_wait, and cancellable or not (e not null): for clean-up that must finish
 * in a cancelled caller too. */
int plait__event_wait(plait_event *e, int64_t deadline, bool cancellable);
/* Claim the waiter of one node (the queue's lock held) and unlink it; false when it
 * was claimed elsewhere (left linked, invariant 4). */
bool plait__waitq_claim_node(plait__waitq *q, plait__wait_node *node);
/* Signal with status every waiter of q whose node carries data. */
void plait__waitq_wake_matching(plait__waitq *q, const void *data, int status,
                                plait__wakeups *later);
/* In a child just forked: unlink the nodes of every waiter but the coroutines of sched
 * (the forking thread's scheduler, or NULL): the other threads are not in the child. */
void plait__waitq_forget_other_threads(plait__waitq *q, const plait__sched *sched);
/* Signal every waiter of q with 0 (the caller holds the queue's lock). */
void plait__waitq_wake_all(plait__waitq *q, plait__wakeups *later);
/* Free object, whose only busy state is a non-empty q; -EBUSY while it is not empty. */
int plait__destroy_idle(plait__spinlock *lock, plait__waitq *q, void *object);
/* Who is calling, as the owner of a lock: the running coroutine's id, else the work
 * the thread runs (a plait thread's or a pool task's: each run of a task is one owner,
 * even where a helping join runs tasks on top of each other on one worker), else the
 * plain thread's; drawn from one counter on first use.  Never 0 and never reused, so a
 * coroutine, thread or task that ends holding a lock passes it to no later one that
 * gets its stack slot, thread-local block or worker. */
uint64_t plait__self(void);
/* Whether owner (a plait__self()) runs beneath the caller on the same thread, so that
 * it cannot go on until the caller returns and waiting for what it holds would never
 * end (-EDEADLK, as for the caller's own): a pool task that the caller runs on top of
 * in a helping wait on the same worker, or, for a coroutine, the thread, plait thread
 * or pool task that called plait_run (which returns only once every coroutine of its
 * scheduler has ended), and whatever that one runs on top of. */
bool plait__held_beneath(uint64_t owner);
/* The owner identity of the work or plain thread under this thread's coroutines (what
 * plait__self() says outside them); 0 if it never asked for one (it holds nothing). */
uint64_t plait__self_outside_coroutines(void);
/* Make id the calling plain thread's identity (a forked child going on as the work
 * that forked it). */
void plait__self_become(uint64_t id);
/* A time for "waiting since" in dumps: cheap, millisecond-coarse. */
int64_t plait__coarse_now(void);

/* ---- coroutines and schedulers (sched.c) ---- */

enum plait__coro_state { PLAIT__READY, PLAIT__RUNNING, PLAIT__WAITING, PLAIT__DONE };

struct plait__coro {
    plait__context ctx;
    plait__sched *sched;
    plait__coro *next;          /* ready queue */
    plait__coro *cancel_next;   /* inbox cancel list */
    plait__coro *all_prev, *all_next; /* every coroutine of the scheduler */
    plait__coro *group_prev, *group_next;
    plait_fn fn;
    void *arg;
    struct plait__future *future;
    struct plait_group *group;
    bool group_keeps_outcome;
    plait__waiter *waiter;      /* the wait it is blocked in, NULL when not blocked */
    int64_t wait_since;
    uint64_t id;
    atomic_int cancelled;
    atomic_int cancel_queued;   /* on the inbox cancel list of another thread */
    bool shielded;              /* plait_cancel_shield: written and read by itself only */
    int state;
    bool is_loop;               /* the thread's own stack, where the scheduler loop runs */
    bool recycle_pending;       /* finished while named by the inbox: freed when drained */
    int cancel_state;           /* the thread's pthread cancel state as it switched away:
                                 * its own (switch_to) */
    void **locals;
    /* the stack: [lo, lo + size) with the canary at lo; see stack.c */
    char *stack_lo;
    size_t stack_size;
    size_t stack_class;         /* the stack size asked for: the pool it returns to */
    bool guarded;
    plait__coro *free_next;
#ifdef PLAIT_TSAN
    void *tsan_fiber; /* ThreadSanitizer's (sched.c, "ThreadSanitizer's fibers") */
#endif
#ifdef PLAIT_ASAN
    void *asan_fake_stack;
    const void *asan_stack_lo;
    size_t asan_stack_size;
#endif
    char name[32];
};

typedef struct plait__inbox {
    plait__spinlock lock;
    plait__waiter *wake_head, *wake_tail; /* waits signalled, through inbox_next */
    plait__coro *cancel_head;
    atomic_uint seq;            /* futex word the parked scheduler sleeps on; every post
                                 * adds one, under the lock, after its item */
    unsigned drained;           /* seq as the scheduler's last drain read it before it
                                 * took the lists: equal to seq, nothing is waiting */
    atomic_int parked;          /* PLAIT__PARKED_* */
    int poll_wake_fd;           /* eventfd in the poller's epoll set, -1 without poller */
} plait__inbox;

/* Where a scheduler with nothing to run sleeps: nowhere (running), on inbox.seq, or in
 * its poller's epoll_wait (then a post writes poll_wake_fd). */
enum { PLAIT__RUNNING_LOOP = 0, PLAIT__PARKED_FUTEX = 1, PLAIT__PARKED_POLL = 2 };

/* Free coroutine slots of one stack size, with their memory (stack.c). */
typedef struct plait__stack_cache {
    plait__coro *head;          /* through free_next, the last freed first */
    size_t len;
    size_t low;                 /* the fewest held since trim_at was set */
    int64_t trim_at;            /* when to look for slots left unused; 0: none */
    bool keep;                  /* nothing can be given back: never trimmed */
} plait__stack_cache;

struct plait__sched {
    plait__coro loop;           /* the thread's own context */
#ifdef PLAIT_TSAN
    void *tsan_idle_fibers[4];  /* ended coroutines' fibers, for the next (sched.c) */
    unsigned tsan_idle_count;
    sigset_t tsan_signal_mask;  /* the thread's, held across a switch (sched.c) */
#endif
    plait__coro *current;
    /* The coroutine being switched away from, from the moment `current` names the next
     * until the next runs (after_switch): code still runs on its stack meanwhile, and an
     * overflow there is its own (stack.c's SIGSEGV handler).  NULL otherwise.  Atomic
     * (relaxed: plain moves) as a signal handler of this thread reads it. */
    _Atomic(plait__coro *) leaving;
    plait__coro *ready_head, *ready_tail;
    int budget;                 /* direct switches left before the loop runs again */
    unsigned long io_turn_mark; /* `switches` at the first of the I/O calls in a row */
    unsigned io_turn_calls;     /* I/O calls that completed without a switch since */
    plait__timer_heap timers;
    int64_t loop_now;           /* the clock as the loop last read it (fire_timers): a
                                 * deadline at or before it has passed, no read needed */
    /* In a cache line with the inbox, apart from what the loop writes at every switch:
     * another thread waking a coroutine reads it (plait__sched_elsewhere) and then takes
     * the inbox's lock, one cache miss for both. */
    _Alignas(64) uint64_t id;   /* never 0, never reused: names it in its tasks' futures,
                                 * whose coroutines a child forked on its thread goes on
                                 * running (future.c) */
    plait__inbox inbox;
    _Alignas(64) struct plait__poller *poller; /* descriptors waited on (poll.c); NULL until needed */
    plait__coro *all;           /* list of live coroutines */
    size_t alive;
    plait__coro *zombie;        /* finished; recycled by whoever runs next */
    plait__stack_cache stacks;  /* free coroutines of the default stack size */
    size_t default_stack;
    plait__coro *main;
    plait_task main_task;       /* main's handle, joined as the scheduler ends */
    bool main_done;
    struct plait__future *work; /* the plait thread's or pool task's work it runs in */
    /* slow-coroutine watch (diag.c) */
    atomic_ulong switches;
    atomic_ulong running_id;
    atomic_llong slow_since;    /* set by the watchdog when the running one stalls */
    atomic_ulong slow_switches; /* `switches` during that stall: whose it was */
    int64_t slow_threshold;
    struct plait__watchdog *watchdog;
    /* the report of a stall, noted on the switch away from the coroutine that stalled
     * and printed by the loop, on the thread's own stack (diag.c) */
    bool slow_noted;
    uint64_t slow_id;
    int64_t slow_ns;
    char slow_name[32];
    /* a call a coroutine asked the loop to make on the thread's own stack
     * (plait__call_on_thread_stack) */
    void (*loop_call)(void *arg);
    void *loop_call_arg;
};

/* A pthread key whose destructor is a thread-exit hook of plait's, made at its first
 * use (exit_key.c): declare it static with PLAIT__EXIT_KEY(destructor).  false while the
 * program holds every key there is (the next call tries again); else *key. */
typedef struct plait__exit_key {
    _Atomic uint64_t word;      /* 0, or the key with a bit that says it is made */
    void (*destructor)(void *);
} plait__exit_key;
#define PLAIT__EXIT_KEY(fn) {.word = 0, .destructor = (fn)}
bool plait__exit_key_get(plait__exit_key *k, pthread_key_t *key);
/* fork.c's handlers: a child forgets a maker of another thread of the parent. */
void plait__exit_key_atfork(int phase);

/* Thread-local, initial-exec: a plain load from the thread pointer, even in the
 * shared library (the general-dynamic default would call __tls_get_addr on every
 * switch). */
#define PLAIT_TLS __thread __attribute__((tls_model("initial-exec")))
extern PLAIT_TLS plait__sched *plait__tls_sched;

static inline plait__sched *plait__sched_current(void) { return plait__tls_sched; }
/* Whether a scheduler is a copy, in a forked child, of one of the parent's other
 * threads (not the forking thread's, whose coroutines go on here): its coroutines are
 * not in this process, and nothing may post to its inbox, whose lock a parent thread
 * may have held at the fork and whose wake-up descriptor the parent shares (future.c). */
extern uint64_t plait__forked_sched_id, plait__forked_id_floor;
static inline bool plait__sched_elsewhere(const plait__sched *s)
{
    return PLAIT_UNLIKELY(s->id < plait__forked_id_floor) && s->id != plait__forked_sched_id;
}
/* The running coroutine, or NULL on a plain thread or in the scheduler loop. */
static inline plait__coro *plait__coro_current(void)
{
    plait__sched *s = plait__tls_sched;
    return s && !s->current->is_loop ? s->current : NULL;
}
/* Make the coroutine of a signalled wait ready; from any thread.  Until it runs, the
 * coroutine stays suspended and the waiter alive. */
void plait__coro_wake(plait__waiter *w);
void plait__sched_after_fork(plait__sched *s); /* fork.c: in the child */
/* The same walk for the waits on objects whose lock another thread of the parent held at
 * the fork (their nodes stranded): once every fork handler has let plait's locks go. */
void plait__sched_strand_after_fork(plait__sched *s);
/* Suspend the running coroutine; something must already be arranged to wake it. */
void plait__coro_suspend(void);
/* fn(arg), on the thread's own stack: from a coroutine, the loop makes the call and
 * the coroutine goes on at once after it (no other coroutine runs in between).  For
 * calls whose frames a coroutine's smallest stack (PLAIT_STACK_MIN) does not hold, as
 * starting a thread (pthread_create takes some 2-4 KiB).  fn must not block or switch. */
void plait__call_on_thread_stack(void (*fn)(void *arg), void *arg);
/* Ask a coroutine to stop (any thread).  The caller keeps it alive during the call. */
void plait__coro_cancel(plait__coro *coro);
/* A pseudo-random number below bound (> 0), from a generator of the calling thread's
 * (random.c): for fair choices, not for secrets. */
uint32_t plait__random(uint32_t bound);
/* A new id, unique in the process (from 1): a coroutine's, or a thread's identity. */
uint64_t plait__new_id(void);
/* n consecutive new ids: the first. */
uint64_t plait__new_ids(unsigned n);

/* ---- the poller (poll.c) ---- */
/* Whether coroutines of s wait on descriptors now. */
bool plait__poller_busy(const plait__sched *s);
/* Wait for descriptor events until the deadline (a past one: look without waiting),
 * or a post to the inbox; wake the coroutines whose descriptors are ready.  now is the
 * clock as the caller has just read it (the wait is that much longer: a deadline is
 * never early), or 0 when it has not. */
void plait__poller_poll(plait__sched *s, int64_t deadline, int64_t now);
/* Before the scheduler sleeps in its poller: look, without sleeping, for up to
 * PLAIT__WAIT_SPIN_NS (never past the deadline) for an event due or a post to the
 * inbox (its sequence moved from `drained`): true as soon as one is there, and then the
 * caller's wait that does not sleep (a past deadline) takes it.  True at once while
 * requests are queued for the kernel: that wait hands them over, taking in the same
 * system call what they find already, and the caller looks again if it woke nobody.
 * False at once with a backend whose events are not seen in memory (epoll: its
 * readiness takes a system call to see). */
bool plait__poller_look(plait__sched *s, const atomic_uint *inbox_seq, unsigned drained,
                        int64_t deadline);
void plait__poller_free(plait__sched *s);
/* In a forked child: drop the calling thread's wake-up eventfd, shared with the parent,
 * and give the poller of the scheduler this thread runs new kernel objects. */
void plait__poll_after_fork(void);
/* A call on a descriptor under way (a read, a write, an accept, ...; fdio.c,
 * socket.c): what its tries need, found once by plait__fd_call_open, so that a read
 * looks its scheduler, poller and descriptor slot up once rather than at each step. */
typedef struct plait__fd_call {
    int fd;
    uint32_t since;               /* fd's close count as the current try began */
    plait__sched *sched;          /* the calling coroutine's scheduler; NULL outside one */
    struct plait__poller *poller; /* sched's poller (NULL: none could be made; the wait
                                   * says why) */
    /* As the scheduler knew fd when the call opened (false outside coroutines, and
     * socket false too when the call was opened without its kind):
     * drained, the read hint (its last read took less than it asked, so the next is
     * likely to find nothing and should wait first); socket, whether fd is a socket
     * that send(2)/recv(2) move as write(2)/read(2) would (any but SOCK_SEQPACKET,
     * whose records write(2) ends; looked up once per file).  A number closed with
     * close(2) may name another file since: send(2)/recv(2) then fail with ENOTSOCK,
     * and the caller calls plait__fd_call_kind_stale and moves bytes as for any file.
     * hinted: fd is a socket, pipe or FIFO, whose reads take what is there into a
     * buffer of any size, so that a short one says "nothing more yet": the hint is
     * kept for those only.  Other files may refuse a read at once whatever is there
     * (an eventfd a buffer under 8 bytes), which a wait first would put off until data
     * came (epoll).  Both false when the call was opened without its kind. */
    bool drained, socket, hinted;
    unsigned retries; /* waits after EAGAIN so far, quick ones then pauses (fdio.c) */
    /* A plait_close of fd came while the kernel read for the call (io_uring), which
     * returned the bytes it had moved all the same: a caller that would go on to
     * another transfer on the number stops there (plait_read_exactly). */
    bool closed;
} plait__fd_call;

/* Open a call on fd from the calling coroutine or thread: makes the coroutine's
 * poller, reads the hints; the socket kind only when kind is true (a read or write
 * that moves bytes: finding it may take fstat(2) and getsockopt(2), which an accept, a
 * send-to or a receive-from would make for nothing).  It cannot fail:
 * plait__fd_call_begin says what is wrong. */
void plait__fd_call_open(plait__fd_call *call, int fd, bool kind);
/* At the top of each try of the call: makes what the call's wait will need (the
 * coroutine's poller, the thread's wake-up descriptor) now, not between its try and
 * its wait, where one could take fd's number were fd closed meanwhile; and reads fd's
 * close count (call->since, plait__fd_close_gen), which the call's wait or kernel read
 * checks once it is where a plait_close would find it: a close since (before then) has
 * it look again (0, or -EAGAIN from the ring) instead of waiting on a number that may
 * name another file now.  0, or -EBADF for fd < 0, or a number that is the caller's
 * own poller's or wake-up descriptor (taken after fd was closed) (poll.c). */
int plait__fd_call_begin(plait__fd_call *call);
/* Keep the read hint for the calling coroutine's next read of fd. */
void plait__fd_call_set_drained(plait__fd_call *call, bool drained);
/* fd is not a socket any more (ENOTSOCK): its kind is looked up again next time. */
void plait__fd_call_kind_stale(plait__fd_call *call);
/* After a non-blocking system call on fd failed (errno set): 0 to try it again (it was
 * interrupted, or fd is now ready for events), else the -errno to return (the call's
 * own error, or the wait's: -ETIMEDOUT, -ECANCELED, ...).  fdio.c. */
int plait__wait_to_retry(plait__fd_call *call, int events, int64_t deadline);
/* After a read, write, accept, send-to or receive-from that moved something: the
 * calling coroutine yields once it has made PLAIT__IO_TURN such calls in a row without
 * a switch, so one peer that keeps data ready and room free cannot hold its scheduler's
 * other coroutines off.  What the call moved stays reported: a cancellation during the
 * yield is the next call's to say.  sched.c. */
enum { PLAIT__IO_TURN = 64 };
void plait__io_turn(void);
/* The count alone: true when the calling coroutine should yield now.  A call that
 * goes on after its turn (plait_read_exactly, plait_write_all) yields with
 * plait__fd_turn, where a plait_close of its descriptor finds it. */
bool plait__io_turn_due(void);
/* Yield in the middle of a call on fd, linked where plait_close finds the caller: 0,
 * or -EBADF when fd was closed meanwhile (the number may name another file now; the
 * call must make no read or write on it).  A cancellation meanwhile is the next
 * wait's.  poll.c. */
int plait__fd_turn(int fd);
/* After a call on fd that failed with errno: whether that was EAGAIN after a wait said
 * fd is ready (woken), or where the call may not wait (plait__wait_refused(deadline):
 * a try, a cancelled caller), on a descriptor shut down for reading (POLLRDHUP, looked
 * at without waiting; errno kept) — a datagram socket or a Unix listener that is polls
 * readable for good while recv(2) or accept(2) says EAGAIN.  fdio.c. */
bool plait__shut_for_reading(int fd, bool woken, int64_t deadline);
/* plait_wait_fd() within such a call: 0 at once if a plait_close came since the try
 * began; tried: the caller's system call said it would block, so a caller cancelled, or
 * past its deadline, gets -ECANCELED or -ETIMEDOUT without another look (poll.c). */
int plait__wait_fd_in_call(const plait__fd_call *call, int events, int64_t deadline,
                           bool tried);
/* A pause within such a call until `until` (fdio.c's pauses between tries of a
 * descriptor that polls ready yet says EAGAIN): a wait on fd that plait_close wakes as
 * it wakes the others, -EBADF, as a sleep would not.  0 once the time has come (or a
 * plait_close came before the pause could be found: the caller's wait looks again),
 * -EBADF, -ECANCELED, -ENOMEM (poll.c). */
int plait__fd_call_pause(const plait__fd_call *call, int64_t until);
/* From a coroutine whose poller's backend can read (io_uring): read fd into buf in
 * the kernel once it has data, waiting until the deadline; the bytes, 0 at end of
 * file, or -errno.  -ENOSYS when the caller should read(2) itself instead (not a
 * coroutine, a backend that cannot, a deadline known to be past), -EAGAIN when the
 * deadline passed before the kernel read, or a plait_close came since the try began:
 * the caller reads(2) once. */
ssize_t plait__ring_read(plait__fd_call *call, void *buf, size_t len, int64_t deadline);

/* ---- stacks (stack.c) ---- */
int plait__stack_check_size(size_t size);
/* The size of the class that serves a stack of `size` bytes (checked): at least size. */
size_t plait__stack_round(size_t size);
/* A coroutine with a stack of (at least) size bytes, from the scheduler's cache or
 * the global pool.  NULL when out of memory. */
plait__coro *plait__stack_alloc(plait__sched *sched, size_t size);
void plait__stack_free(plait__sched *sched, plait__coro *coro);
/* Return the scheduler's cached coroutines to the global pool.  ending: the scheduler
 * ends, and what the pool then holds beyond what it keeps goes back to the kernel at
 * once (the caller is on its thread's stack); else it goes back at a later sleep. */
void plait__stack_flush(plait__sched *sched, bool ending);
/* The scheduler is about to sleep: hand back to the kernel the memory of free stacks
 * that were left unused for a while (see stack.c).  now: the clock as the caller has
 * just read it, or 0 (it is read if needed).  Returns when to call it again: the
 * latest deadline the sleep may have, PLAIT_FOREVER when nothing is pending. */
int64_t plait__stack_trim(plait__sched *sched, int64_t now);
/* Stop with a message if the coroutine's canary is gone. */
void plait__stack_check(plait__coro *coro);
/* Give this scheduler thread its alternate signal stack (for the guard-page fault
 * reporter and plait's other handlers, all SA_ONSTACK), installing the reporter once. */
void plait__stack_thread_init(plait__sched *sched);
void plait__stack_thread_exit(plait__sched *sched);

/* ---- futures (future.c) ----
 *
 * A future is a task's outcome, shared by its producer (whatever runs the task) and
 * its handle.  Work that runs on a plain thread (a plait thread, a pool task) is a
 * future too: fn/arg say what to run, and `cancelled`/`blocked` carry plait_cancel()
 * to it, as a coroutine's own fields do for a coroutine. */
typedef struct plait__future plait__future;
struct plait__future {
    atomic_ullong generation;
    plait__spinlock lock;
    atomic_bool done;           /* written under lock; read without it by helping joins */
    bool fork_held;             /* locked by a fork's prepare (plait__future_sched_atfork) */
    int refs;                   /* producer + handle + a watching completed-set */
    unsigned batch_len;         /* free, first of a batch: the batch's length (future.c) */
    void *value;
    int error;
    atomic_uint epoch;          /* see sched_id */
    plait__waitq joiners;
    plait__coro *coro;          /* a running coroutine: the target of plait_cancel */
    /* work on a plain thread */
    bool on_thread;
    bool withdrawable;          /* a cancel before it starts withdraws it (a pool task);
                                   a plait thread's function always runs, as a
                                   coroutine's does, and sees the cancellation */
    atomic_int work_state;      /* queued -> running, or queued -> withdrawn (cancelled
                                   before it started: completed at once by the canceller) */
    atomic_int cancelled;       /* sticky, seen by the thread's blocking calls */
    bool shielded;              /* plait_cancel_shield of the running work: its thread's */
    plait__waiter *blocked;     /* under lock: the cancellable wait the thread is in */
    plait_fn fn;
    void *arg;
    uint64_t identity;          /* the running work's plait__self(); 0 until asked */
    /* Where the producer runs, set as it starts and read without the lock
     * (plait__future_lock): the fork epoch it was made at (epoch, above, where it
     * fills a hole) and, for a coroutine, its scheduler's id (0 for other work). */
    atomic_ullong sched_id;
    plait__future *next;        /* a pool queue, or the chain of tasks a worker runs;
                                   free, first of a batch: the next batch (future.c) */
    /* work produced elsewhere (a process, a process-pool task): its hooks and data */
    const struct plait__future_ops *ops;
    void *ext;
    /* as-completed: the set that watches it, written under the lock and, by an add,
     * under the set's lock too, where plait_completed_next() reads a caller's own */
    struct plait_completed *_Atomic watch;
    uint64_t watch_generation;
    plait__future *watch_next;
    plait__future *free_next;
    plait__coro *sched_main;    /* under lock: the main coroutine of the scheduler the
                                   thread runs (plait_run), until main finishes (cold:
                                   after the fields a task's run touches) */
};

/* How a future whose work runs elsewhere (another process) is cancelled and let go. */
typedef struct plait__future_ops {
    /* Under f->lock, f not done: stop the work.  true when it had not started and never
     * will (f is then completed as cancelled at once, and the producer still drops its
     * reference with plait__future_release when it comes across it). */
    bool (*cancel)(plait__future *f);
    /* Producer and handle have both let go (no lock held): free f->ext and f->value,
     * which is NULL when the joiner took it. */
    void (*release)(plait__future *f);
    /* A plain thread is about to wait for f (NULL: it just waits): help the work along
     * until f is done, the deadline passes or the caller is cancelled.  join's own
     * wait then takes the outcome. */
    void (*help)(plait__future *f, int64_t deadline);
    /* Free a value the task's outcome drops because a cancellation reached it before
     * the outcome was recorded (the outcome is then -ECANCELED, as for a coroutine's).
     * NULL: the work decides (a process pool's task whose worker has finished keeps its
     * outcome). */
    void (*drop)(void *value);
} plait__future_ops;

/* A future for work that ops describe; fills *task when not NULL. */
plait__future *plait__future_start_ext(const plait__future_ops *ops, void *ext,
                                       plait_task *task);
/* Lock the future a handle names; NULL and *err (-EINVAL, -ESRCH) when it is null or
 * stale, -EPERM in a forked child when its task is not the child's (future.c), whose
 * lock is then left alone.  Unlock with plait__spin_unlock(&f->lock). */
plait__future *plait__future_lock(plait_task task, int *err);
/* Wait on a locked future's joiners: the node holds a reference, so a wait that ends
 * otherwise (a deadline; its node left linked until it withdraws) cannot see f
 * recycled for another task meanwhile, when a copy of the handle is joined elsewhere.
 * plait__joiner_unlink takes the node out (if still in) and drops the reference. */
void plait__joiner_push(plait__future *f, plait__wait_node *node, plait__waiter *w, int index);
void plait__joiner_unlink(plait__wait_node *node);
/* A future for a coroutine being spawned; fills *task when not NULL (else the handle
 * is given up at once).  NULL when out of memory. */
plait__future *plait__future_start(plait__coro *coro, plait_task *task);
/* A future for fn(arg) to run on a plain thread (a plait thread, a pool task);
 * withdrawable: a cancel before it starts means it never runs (a pool task's). */
plait__future *plait__future_start_work(plait_fn fn, void *arg, plait_task *task,
                                        bool withdrawable);
/* Complete a future; drops the producer's reference.  A future whose producer (work, a
 * coroutine, or ops with drop) was cancelled by then completes as cancelled
 * (-ECANCELED, value dropped), whatever it was given. */
void plait__future_complete(plait__future *f, void *value, int error);
/* The same with the wake-ups put into later (the caller delivers them); returns the
 * code recorded. */
int plait__future_complete_into(plait__future *f, void *value, int error,
                                plait__wakeups *later);
/* Run a plain-thread future's fn on this thread, as the thread's current work, and
 * return its outcome for plait__future_complete(): the code, with *value the result;
 * -ECANCELED without running fn when its cancellation came as it started.
 * PLAIT__WITHDRAWN when it was cancelled while queued: the canceller has completed it
 * already, and the caller only lets go of it with plait__future_release(). */
#define PLAIT__WITHDRAWN 1
int plait__future_run_work(plait__future *f, void **value);
void plait__future_release(plait__future *f);
/* The thread running work calls plait_run: main (NULL once it has finished) is what a
 * cancellation of work cancels; a work cancelled already cancels main at once. */
void plait__work_set_main(plait__future *work, plait__coro *main);
/* Cancel a future's producer (under no lock; f must be kept alive by the caller). */
void plait__future_cancel(plait__future *f);
/* plait_join() of a task told to stop (cancelled: one not started is done at once),
 * for calls that must not return while it may still use their memory: the caller's own
 * cancellation does not interrupt it, and a pool task waits without running other
 * queued tasks, which could keep it far longer than the stopped task (pool_map.c). */
int plait__join_stopped(plait_task task, void **result);
/* plait_join() that, in a pool task, waits without running other queued tasks (which
 * could keep it past its deadline for as long as such a task runs): for a task the
 * caller started on a thread of its own to meet a deadline (plait_resolve). */
int plait__join_without_helping(plait_task task, void **result, int64_t deadline);
/* The default pool, made on first use: 0, or its creation's code (-EAGAIN, -ENOMEM)
 * and *out NULL (pool.c). */
int plait__pool_default_get(plait_pool **out);
/* Submit fn(arg) to the default pool for the calling coroutine or thread (through
 * plait__pool_submit_reachable): -ECANCELED if the caller is cancelled already, the
 * pool's creation's code without a pool (pool_map.c). */
int plait__submit_default(plait_task *task, plait_fn fn, void *arg);
/* plait_close(fd) is closing fd: the plait_file_* operations on it that the pool has
 * not started answer -EBADF without their system call (file.c).  1 when one has
 * started and not finished: then the close is plait__file_ops_close's, which keeps the
 * number from other files (a placeholder in it) until they have; its result is
 * plait_close's.  -EBADF when the number holds such a placeholder (closed already),
 * else 0. */
int plait__file_ops_closing(int fd);
int plait__file_ops_close(int fd);
/* plait_pool_submit, but where that pool's workers may be waiting for the caller
 * (plait__pool_waiting_here) to a thread of its own, which is sure to run; -EPIPE
 * there once the pool is shut down, -EPERM in a forked child, and what
 * plait_thread_start answers (pool.c). */
int plait__pool_submit_reachable(plait_pool *pool, plait_task *task, plait_fn fn, void *arg);
/* The pool whose workers may be waiting for the caller, whose waits run none of its
 * queued tasks: a coroutine's whose scheduler runs in a task of it, a thread's that
 * stands in for it (plait__tls_stands_in_for); NULL for none. */
const struct plait_pool *plait__pool_waiting_here(void);
/* Whether a join that returned r was cut short, the task still running: -ETIMEDOUT,
 * -ECANCELED or -ENOMEM (no room for a coroutine's timer) of the wait itself, not the
 * task's own code (which consumes the handle). */
bool plait__join_cut_short(int r, plait_task task);
/* Join a task of the caller's own making until the deadline or a cancellation; if that
 * cuts the wait short, cancel the task (one not started never runs) and wait until it
 * no longer runs: an outcome it reached first (its result, or its own failure) is the
 * call's, else the wait's -ETIMEDOUT / -ECANCELED / -ENOMEM.  The task's arguments may
 * live on the caller's stack. */
int plait__join_to_the_end(plait_task task, void **result, int64_t deadline);
void plait__future_flush_cache(void);

/* The plain-thread work this thread runs now (a plait thread's own future, or the pool
 * task on a worker), NULL otherwise.  Its cancellation reaches the thread's waits. */
extern PLAIT_TLS plait__future *plait__tls_work;
/* The name of this plait thread or pool worker, which may be ""; NULL on other
 * threads (a pointer, not an array whose first byte tells the two apart). */
extern PLAIT_TLS const char *plait__tls_thread_name;
/* pthread_create for every thread plait starts (thread.c): from a coroutine it is made
 * on the thread's own stack (plait__call_on_thread_stack), as glibc's frames take 2-4
 * KiB, more than a coroutine's smallest stack holds.  Returns pthread_create's code.
 * Threads name themselves (pthread_setname_np of another thread formats a path with
 * sprintf, on the caller's stack). */
int plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                         void *(*fn)(void *), void *arg);
/* plait_thread_start (default options) for a thread that stands in for a task of pool
 * (plait__pool_submit_reachable): as a pool task, a cancel before it starts withdraws
 * it, and fn never runs.  While fn runs, plait__tls_stands_in_for is pool. */
struct plait_pool;
int plait__thread_start_as_task(plait_task *task, plait_fn fn, void *arg,
                                const struct plait_pool *pool);
/* The pool whose task this thread runs in its stead, or whose workers may wait for it
 * otherwise (a plait thread started where plait__pool_waiting_here said so), or NULL. */
extern PLAIT_TLS const struct plait_pool *plait__tls_stands_in_for;
/* Whether this thread runs a task of plait__tls_stands_in_for in the task's stead (a
 * stand-in: an offload, a map's runner), which is that pool's task as a worker's is. */
extern PLAIT_TLS bool plait__tls_runs_a_task;
/* The list of idle stand-ins (thread.c) across a fork: last in prepare. */
void plait__thread_atfork(int phase);

/* ---- thread pools (pool.c) ---- */
struct plait__worker;
/* The pool worker the calling thread is, if it may help (not inside a coroutine). */
struct plait__worker *plait__worker_helping(void);
/* Run queued tasks until w is signalled or the deadline passes; returns w's status.
 * No task starts after the deadline, but one started before it runs to its end. */
int plait__worker_help(plait__waiter *w, int64_t deadline);
/* The calling thread is about to block in a wait that does not help: if it is a pool
 * worker, its private tasks become public and it stops counting as a worker that may
 * push (pool.c, "Private pushes"); that worker, or NULL.  plait__worker_unblocked
 * counts it back in. */
struct plait__worker *plait__worker_blocking(void);
void plait__worker_unblocked(struct plait__worker *worker);
/* A pool worker joining f: run queued tasks while f is not done, the deadline has not
 * passed, the caller (when cancellable) is not cancelled, and there are some (the fast
 * path of a fork-join, before any wait is set up).  A task it has started runs to its
 * end, past the deadline if need be. */
void plait__worker_run_until_done(plait__future *f, int64_t deadline, bool cancellable);
/* Tell the worker waiting in plait__worker_help that w's signal was published: the
 * word to futex-wake if it sleeps (after the caller's unlock), else NULL. */
atomic_uint *plait__worker_poke(struct plait__worker *worker);

/* ---- groups (group.c) ---- */
int plait__group_child_started(struct plait_group *group, plait__coro *coro);
/* coro ends with its function's outcome (result, error): its future's outcome (when it
 * has a future: none when it could not start) and the group's record of it are made
 * in one step, under the group's lock, so that whoever sees one sees the other. */
void plait__group_child_finished(struct plait_group *group, plait__coro *coro, void *result,
                                 int error);
/* The locks of the groups of the forking thread's scheduler's coroutines across a fork
 * (group.c); in the child, the waits of the parent's other threads in them are
 * forgotten. */
void plait__group_sched_atfork(const plait__sched *s, int phase);

/* ---- task-local storage (local.c) ---- */
void plait__locals_destroy(plait__coro *coro);
/* Run the calling thread's key destructors now (a plait thread as it ends). */
void plait__thread_locals_destroy(void);

/* ---- diagnostics (diag.c) ---- */
void plait__watchdog_start(plait__sched *sched);
void plait__watchdog_stop(plait__sched *sched);
/* In a forked child: the calling thread's scheduler gets a watchdog of its own. */
void plait__watchdog_after_fork(void);
/* On the switch away from coro, before it is counted: whether the watchdog marked a
 * stall of coro's, then noted for plait__slow_report (it prints nothing: the switch
 * runs on coro's stack, which may be PLAIT_STACK_MIN, and fprintf takes kilobytes). */
bool plait__slow_note(plait__sched *sched, const plait__coro *coro);
/* Print the stall noted, if any: from the loop, on the thread's own stack. */
void plait__slow_report(plait__sched *sched);

/* ---- fork (fork.c): plait's global state across fork() ---- */
enum { PLAIT__FORK_PREPARE, PLAIT__FORK_PARENT, PLAIT__FORK_CHILD };
/* signal.c: the watcher registry's lock; a child gives back the old dispositions. */
void plait__signals_atfork(int phase);
/* Ignore sig if the program left it at its default; while a watcher holds sig, the
 * disposition given back when the last watcher goes becomes SIG_IGN instead. */
bool plait__signals_ignore_default(int sig); /* true: it did */
/* Free a forked child's copy of a semaphore whose only waiters were the parent's other
 * threads (signal.c checks that none of the child's own waits on it). */
void plait__sem_free_forked_copy(plait_sem *s);
/* A semaphore plait keeps in a global structure (a signal watcher's) across fork: its
 * spin lock taken before the fork and released after it; in the child the waits of the
 * parent's other threads go. */
void plait__sem_atfork(plait_sem *s, int phase);
/* signal.c: the watchers' semaphores (spin locks, taken with the others, last; the
 * registry lock is held then). */
void plait__signals_atfork_sems(int phase);
/* Register the fork handlers (once; called wherever global state is first made). */
void plait__fork_init(void);
/* A global mutex across fork: taken before it, released after it in the parent and in
 * the child (by the thread that took it, the child's only thread). */
void plait__atfork_mutex(pthread_mutex_t *m, int phase);
/* A global spin lock guarding a wait queue across fork, the same way; in the child the
 * queue's waits of the parent's other threads go (they are not there to end them). */
void plait__atfork_wait_queue(plait__spinlock *lock, plait__waitq *q, int phase);
/* Each module's part: take its global lock before the fork, release it after in the
 * parent, release it in the child and reset what the child does not inherit. */
void plait__local_atfork(int phase);
void plait__stack_atfork(int phase);
void plait__future_atfork(int phase);
/* The locks of the tasks of the forking thread's scheduler s, and of the sets watching
 * them, across a fork (future.c); in the child, the waits of the parent's other threads
 * in them are forgotten. */
void plait__future_sched_atfork(const plait__sched *s, int phase);
void plait__pfutex_atfork(int phase);
void plait__shared_atfork(int phase);
/* poll.c: the locks of the table of blocking waits by descriptor (spin locks: taken
 * last, after every mutex above). */
void plait__fd_waits_atfork(int phase);
/* plait_file_*'s list of calls a close may withdraw (file.c): its lock across a fork. */
void plait__file_atfork(int phase);
/* once.c: the locks of the buckets onces wait in (spin locks: taken after the table's;
 * a wake-up delivered under one may take a scheduler's inbox lock). */
void plait__once_atfork(int phase);
/* The lock of the record of a start's descriptors (process.c), held for an instant;
 * in a child not made for that start, closes them. */
void plait__spawn_atfork(int phase);
/* The default pool's creation lock and the manager's start lock: taken next (each is
 * held while its holder takes the locks above); in the child, the default pool's
 * workers and the manager thread are not there. */
void plait__pool_atfork(int phase);
/* A process pool worker's task that forks: the rooms its fork() child gets (procpool.c). */
void plait__procpool_atfork(int phase);
void plait__manager_atfork(int phase);

/* ---- process-shared objects (shared.c) ---- */
/* The handle of a process-shared object, in this process's memory: its place in the
 * registry that hears of dead children, and the waits of this process on it. */
struct plait__shared_obj;
/* What an object's kind does when a child dies or is forked (called under the
 * registry's lock; one constant per kind, given at registration).  `program`: the
 * child was forked to run a program, and runs none of plait's code before its exec,
 * so it never uses the object (it is no queue's side). */
typedef struct plait__shared_hooks {
    void (*died)(struct plait__shared_obj *obj, unsigned pid);
    void (*forked)(struct plait__shared_obj *obj, unsigned pid,
                   bool program); /* NULL: nothing to do */
} plait__shared_hooks;
typedef struct plait__shared_obj {
    const plait__shared_hooks *hooks;
    struct plait__shared_obj *prev, *next;
    atomic_int local_waiters;
    atomic_int in_calls;        /* calls of this process that still touch the state after
                                   publishing a change (plait__shared_enter) */
    void *map;                  /* the object's state: the mapping and its size */
    size_t map_size;
    uint64_t made_at;           /* shared.c: this process's forks before it was made */
    size_t children;            /* shared.c: children forked since, not yet gone */
    uint64_t let_go_at;         /* shared.c: forks before its handle was destroyed (kept
                                 * to hear of deaths); UINT64_MAX while held */
} plait__shared_obj;
/* A call that publishes a change (a release, a set, an unlock, a close) and reads or
 * bumps the state after it (the sleepers' count, a sequence) stays inside from before
 * the change until it is done with the state: another thread that sees the change may
 * destroy the object at once (nobody waits on it), and that destroy waits for the call
 * to leave before it unmaps the state (plait__shared_let_go). */
static inline void plait__shared_enter(plait__shared_obj *obj)
{
    atomic_fetch_add(&obj->in_calls, 1);
}
static inline void plait__shared_exit(plait__shared_obj *obj)
{
    atomic_fetch_sub(&obj->in_calls, 1);
}
/* A zeroed mapping shared with the children forked after it; NULL when out of memory. */
void *plait__shared_map(size_t size);
void plait__shared_unmap(void *p, size_t size);
/* Register obj, the first member of a handle allocated with malloc, whose state is the
 * mapping map (map_size bytes, from plait__shared_map). */
void plait__shared_register(plait__shared_obj *obj, const plait__shared_hooks *hooks,
                            void *map, size_t map_size);
/* The process lets go of obj (its handle was destroyed): obj, its handle and its mapping
 * are freed now, or once every child forked since it was made is gone, for until then
 * a death must still reach the object. */
void plait__shared_let_go(plait__shared_obj *obj);
/* A child just forked (pid) holds every object now: called by the parent that forked
 * it (plait__fork_child), before anything else can happen to the objects.  A child
 * the program forks itself calls plait__shared_forked_self as it starts. */
void plait__shared_forked(unsigned pid, bool program);
void plait__shared_forked_self(void);
/* A child of this process holds the objects no more (it died and is about to be
 * reaped): tell every object. */
void plait__shared_child_died(unsigned pid);
/* A child of this process forked to run a program (plait__shared_forked's `program`)
 * exec'd it: it maps the objects no more, so they need not wait for its death to be
 * freed.  The objects themselves never counted it as a user. */
void plait__shared_child_execd(unsigned pid);
/* Whether pid is a child plait forked here whose death has not been reported yet
 * (plait__shared_child_died): one someone else reaped (SIGCHLD ignored, the program's
 * waitpid) until the manager's or its pool's look.  A new child with that pid would be
 * taken for it by that report (its locks released, its queue sides ended). */
bool plait__shared_pid_unreported(unsigned pid);
/* plait__pfutex_wait on a word of obj, counted in obj->local_waiters and in *sleepers
 * (the object's shared count of waiters on word, which its wakers read to decide
 * whether to wake it).  A wait in progress at a fork goes on in the child too, as a
 * second wait that takes itself off the count as the parent's does: the child counts
 * it again.  No wake-up is lost between the count and the word only because the
 * decision to sleep is made again by the kernel: the waiter's look at the word is an
 * acquire load (not seq_cst), so C11 lets it and a waker's look at *sleepers both see
 * the old values; futex_wait/futex_waitv (for a coroutine, in the watcher thread)
 * compare the word after a full barrier.  A wait that slept without such a compare (an
 * eventfd, a poll) would lose wake-ups here. */
int plait__shared_wait(plait__shared_obj *obj, atomic_uint *word, unsigned expected,
                       atomic_uint *sleepers, int64_t deadline, const char *what);
/* A call that waits looks at the object's state again after its wait has returned
 * (its lock, its counters): a close, set or release followed at once by a destroy in
 * this process must not unmap the state under it.  So a call stays counted in
 * obj->local_waiters (destroy: -EBUSY) from before its first plait__shared_wait until
 * plait__shared_leave, as the last thing it does.  `me` lives on the caller's stack;
 * zero it before the call, stay before each wait (only the first counts), leave once
 * (nothing when it never stayed).  A fork in between counts it in the child too. */
typedef struct plait__shared_waiting {
    struct plait__shared_waiting *next;
    struct plait__shared_waiting **at; /* what points to it: out of the list at once */
    plait__shared_obj *obj;
    atomic_uint *sleepers;      /* NULL for a call that stays */
} plait__shared_waiting;
void plait__shared_stay(plait__shared_obj *obj, plait__shared_waiting *me);
void plait__shared_leave(plait__shared_waiting *me);

/* ---- the process-shared mutex (psync.c), also the lock of a plait_shm region ---- */
typedef struct plait__pmutex_state {
    atomic_uint holder;         /* the holder's process id; 0 when free; or
                                   PLAIT__PMUTEX_DIED: free, its last holder died */
    atomic_uint seq;            /* bumped at each release: what waiters sleep on */
    atomic_uint waiters;
    atomic_uint owner_pid;      /* the process whose owner_id that is (psync.c) */
    atomic_ullong owner_id;     /* which coroutine or thread of the holder's process */
} plait__pmutex_state;
/* The holder word of a free mutex whose last holder died holding it (no pid is this
 * large: pid_max is at most 2^22). */
#define PLAIT__PMUTEX_DIED 0x7fffffffu
/* How often a waiter on a process-shared object looks whether the process it waits
 * for still exists, in case nobody will report its death (a grandchild whose parent
 * died first, reaped by init). */
#define PLAIT__SHARED_RECHECK_NS (100 * PLAIT_MS)
/* Whether no process pid exists any more (a zombie still exists). */
bool plait__pid_gone(unsigned pid);
int plait__pmutex_lock(plait__shared_obj *obj, plait__pmutex_state *st, int64_t deadline);
int plait__pmutex_unlock(plait__shared_obj *obj, plait__pmutex_state *st);
bool plait__pmutex_busy(plait__shared_obj *obj, plait__pmutex_state *st);
/* Process pid died: release the mutex if it held it. */
void plait__pmutex_died(plait__pmutex_state *st, unsigned pid);
/* A child was just forked with id pid: release the mutex if the word names that id
 * (a holder gone unreported, whose id was reused). */
void plait__pmutex_forked(plait__pmutex_state *st, unsigned pid);

/* ---- the process manager (process.c) ---- */
/* Something the manager thread watches in its epoll set. */
typedef struct plait__mgr_source {
    void (*ready)(struct plait__mgr_source *src, uint32_t events);
    /* the manager's (process.c): the descriptor watched, and a pause out of the set
     * (plait__manager_not_yet) */
    int fd;
    int64_t pause, due;
    struct plait__mgr_source *later_next;
} plait__mgr_source;
/* Run fn(arg) on the manager thread (started if needed) and wait for it, without
 * blocking a coroutine's scheduler; not cancellable.  0, or -errno when the manager
 * cannot start. */
int plait__manager_call(void (*fn)(void *arg), void *arg);
bool plait__on_manager(void);
/* On the manager thread: watch fd for input, calling src->ready; stop watching it. */
int plait__manager_watch(int fd, plait__mgr_source *src);
void plait__manager_unwatch(int fd);
/* On the manager thread, from src->ready: src's descriptor is ready but there is
 * nothing to act on yet; it is watched again after a pause (process.c). */
void plait__manager_not_yet(plait__mgr_source *src);
/* What a child takes of the thread that asked for it, not of the manager thread that
 * forks it (a fork copies the forking thread's): its signal mask, its no_new_privs
 * (a thread that set it, then started a set-user-ID program, ran it with its
 * privileges), its CPU affinity and its name.  Read on the caller's thread
 * (plait__caller_take).  Not its seccomp filter, capabilities, namespaces, nice value
 * or thread-locals: the manager's (API.md, "Processes"). */
typedef struct plait__caller {
    sigset_t mask;
    bool no_new_privs;
    bool affinity_known;  /* false: more CPUs than a cpu_set_t holds (the manager's) */
    cpu_set_t affinity;
    char name[16];
} plait__caller;
void plait__caller_take(plait__caller *c);
/* On the manager thread: fork a child that runs child(arg) and _exits with what it
 * returns, with the caller's context (plait__caller) and SIGKILL when its parent dies.
 * 0 and *pid, or -errno.  The child drops what the standard streams hold at the fork (the parent's to
 * write): a caller flushes them first, on its own thread, with plait__flush_before_fork
 * (the manager must not wait for a stream another thread holds). */
void plait__flush_before_fork(void);
typedef struct plait__fork_spec {
    const plait__caller *caller; /* the child's signal mask, affinity, ... */
    int (*child)(void *arg);  /* what it runs; it _exits with what this returns */
    void *arg;
    /* the shared memory of the task or pool the child is forked for (NULL: none),
     * which every other child leaves out (plait__keep_from_children); this one has it */
    void *map;
    size_t map_size;
    bool program; /* it runs a program, none of plait's code before its exec */
    /* a child that someone else reaped (plait__reap_peek's -ECHILD), whose death the
     * shared objects are told here, after the fork (0: none): a replacement is their
     * holder before the one it replaces is gone.  A child forked with that pid (free
     * since that reaping) is killed before it runs anything, and another forked:
     * processes are known by pid, there and in a pool's records. */
    pid_t gone;
    /* Other pids the caller still takes for processes of its own (a pool's workers
     * whose deaths it has not handled yet, each reaped by someone else, so that its
     * pid is free): a child forked with one is killed before it runs anything and
     * another forked, as for `gone` (NULL: none). */
    bool (*pid_taken)(pid_t pid, const void *arg);
    const void *pid_taken_arg;
} plait__fork_spec;
int plait__fork_child(const plait__fork_spec *spec, pid_t *pid);
/* Keep a shared mapping of a task or a pool (its result area, its state) out of the
 * children plait or the program forks from now on (MADV_DONTFORK), but for the ones
 * plait__fork_child forks for it: another child held it until its own end, after the
 * task was joined or the pool destroyed.  The children of the ones it is for have it
 * (their mapping is not marked), as does a child another thread forks between its
 * mmap and this call, or while plait__fork_child lets it through: until they end (or
 * exec). */
void plait__keep_from_children(void *map, size_t map_size);
/* True in the manager while it forks (and so in the child it forks, which is its copy). */
extern PLAIT_TLS bool plait__forking;
int plait__pidfd_open(pid_t pid);
int plait__pidfd_kill(int pidfd, int sig);
/* Whether the child behind pidfd has ended, without reaping it.  0: it has, info says
 * how, and it stays a zombie (its pid cannot be reused) until plait__reap_finish;
 * -EAGAIN: it has not; -ECHILD: someone else reaped it (its fate is not known, and its
 * pid may be reused already), so *published (where its pid is shown, may be NULL) has
 * been cleared; the caller tells the shared objects (plait__shared_child_died, or a
 * replacement's fork: plait__fork_spec's gone). */
int plait__reap_peek(int pidfd, siginfo_t *info, atomic_uint *published);
/* Finish with a child that plait__reap_peek found ended: tell the shared objects, then
 * reap it.  Whoever shows its pid stops before this. */
void plait__reap_finish(int pidfd, pid_t pid);
/* 0, PLAIT_EXITED(status) or PLAIT_KILLED(signal) for a reaped child. */
int plait__child_outcome(const siginfo_t *info);
/* Ignore SIGPIPE if the program left it at its default (once): a write to a pipe whose
 * reader is gone then returns -EPIPE instead of killing the program. */
void plait__ignore_sigpipe(void);

/* ---- process pools (procpool.c) ---- */
/* The lowest failure code a function run in another process (a process, a process
 * pool's task) may give as its outcome, -errno: -4095, as PLAIT_IS_FAIL's range. A
 * lower return is -EINVAL; a lower code read back from a worker's memory, -EPROTO. */
enum { PLAIT__CODE_MIN = -4095 };
/* A code read back from the memory of a function that ran in another process: itself
 * when such a function may give it ([PLAIT__CODE_MIN, 0]), else -EPROTO (the memory
 * was written over). */
static inline int plait__code_read_back(int64_t code)
{
    return code < PLAIT__CODE_MIN || code > 0 ? -EPROTO : (int)code;
}

/* Text written into buf (cap bytes, NUL-ended when cap > 0, cut short where it does not
 * fit) as snprintf writes it, and its whole length counted, without snprintf's frames:
 * some 2 KiB of glibc's, more than a coroutine's smallest stack holds (plait_addr_format,
 * plait_strerror). */
typedef struct plait__text {
    char *buf;
    size_t cap, len;
} plait__text;

static inline void plait__text_add(plait__text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, t->len++)
        if (t->len + 1 < t->cap)
            t->buf[t->len] = s[i];
}

static inline void plait__text_str(plait__text *t, const char *s)
{
    plait__text_add(t, s, strlen(s));
}

/* v's digits in base (10 or 16, lower case). */
static inline void plait__text_digits(plait__text *t, unsigned long long v, unsigned base)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = "0123456789abcdef"[v % base];
    while (v /= base);
    while (n)
        plait__text_add(t, &digits[--n], 1);
}

static inline void plait__text_uint(plait__text *t, unsigned long long v)
{
    plait__text_digits(t, v, 10);
}

/* NUL-end the text; its whole length. */
static inline size_t plait__text_end(plait__text *t)
{
    if (t->cap)
        t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
    return t->len;
}
/* How a finished pool task's result reaches its owner, on the manager thread: code is
 * the task's outcome (result/len valid when 0); returns the code its future completes
 * with, and may set *value, the future's value. */
typedef int (*plait__procpool_deliver)(void *ctx, size_t tag, int code,
                                       const unsigned char *result, size_t len,
                                       void **value);
/* Submit fn with the argument head + body (copied), delivered by deliver (NULL: as a
 * plait_bytes value) with ctx and tag. */
int plait__procpool_submit(plait_procpool *pool, plait_task *task, plait_proc_fn fn,
                           const void *head, size_t head_len, const void *body,
                           size_t body_len, plait__procpool_deliver deliver, void *ctx,
                           size_t tag);
/* 0 in the process that made the pool, -EPERM in any other (a forked child's copy). */
int plait__procpool_caller(const plait_procpool *pool);
/* An imap iterator over pool is made (+1) or destroyed (-1). */
void plait__procpool_count_iter(plait_procpool *pool, int delta);
/* A map's chunk, run in a worker (procpool_map.c).  Its argument is a header of
 * PLAIT__MAP_ARG_EXTRA bytes, then the items; its result, the items' codes (padded:
 * PLAIT__MAP_RESULT_EXTRA bytes for one item), then the results.  A pool's slots have
 * that much room beyond arg_max and result_max, for chunks only (a task submitted gets
 * arg_max and result_max), so that a chunk of one item of those sizes fits. */
ssize_t plait__procpool_chunk_run(const void *arg, size_t arg_len, void *out, size_t out_cap);
enum { PLAIT__MAP_ARG_EXTRA = 32, PLAIT__MAP_RESULT_EXTRA = 16 };
/* The rooms a map's chunk has (arg_max and result_max and the extras above). */
size_t plait__procpool_arg_max(const plait_procpool *pool);
size_t plait__procpool_result_max(const plait_procpool *pool);

/* Shared check for the primitives: a blocking call's deadline has already passed. */
static inline bool plait__deadline_passed(int64_t deadline)
{
    return deadline != PLAIT_FOREVER && deadline <= plait_now();
}

/* Whether a call that would block may wait until deadline: 0, or what it answers at
 * once instead: -ECANCELED for a cancelled caller (cancellation comes before the
 * deadline, whatever it is), -ETIMEDOUT when the deadline has passed. */
static inline int plait__wait_refused(int64_t deadline)
{
    int r = plait__check_cancel();
    return r < 0 ? r : plait__deadline_passed(deadline) ? -ETIMEDOUT : 0;
}

#endif
