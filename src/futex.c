/*
 * futex.c — the two kernel-facing primitives under every wait: the futex a plain
 * thread sleeps on, and the spin lock that guards each primitive's state.
 *
 * Futex words come in two kinds: private ones (the kernel keys them by this process's
 * address space: cheaper) and shared ones, in memory shared with other processes
 * (process-shared primitives, queues and pools).  A waiter and its waker must use the
 * same kind: the kernel keys a private word differently from the same word woken as
 * shared.
 *
 * The spin lock is held only across a few loads and stores (never across a wait, and
 * the wake-ups decided under it are delivered after it is released, see
 * plait__wakeups), so spinning is cheaper than sleeping; after a while it yields the
 * CPU so that a holder preempted on a 2-core machine can finish.  Taking a free lock
 * is one exchange, inlined (internal.h); this file has the contended path.
 *
 * Spinning before sleeping (plait__spin_while).  A sleep on a futex and the wake-up
 * that ends it cost a few microseconds on a bare machine and tens on a virtual one
 * (the wake-up is an interrupt to the other CPU, which the hypervisor has to deliver
 * and the sleeper's CPU to come back from idle for); a hand-off between two threads
 * on two CPUs takes well under one when the receiver is awake.  So a thread that is
 * about to block, and a scheduler with nothing to run, first looks at its word for a
 * while (PLAIT__WAIT_SPIN_NS for those two, and for a scheduler's look at its io_uring
 * ring, poll_uring.c; the pools' idle workers look longer): a
 * pause between looks at first, then a sched_yield, so that where the party that will
 * change the word shares this CPU it runs meanwhile.  A wait that lasts longer costs
 * that much CPU time once more than sleeping at once would: at most about what one
 * sleep and wake-up cost, the usual bound for spinning before blocking.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void plait__spin_pause(unsigned spins)
{
    if (spins < 64)
        plait__cpu_relax();
    else
        sched_yield();
}

void plait__spin_lock_contended(plait__spinlock *lock)
{
    for (unsigned spins = 0; !plait__spin_trylock(lock); spins++)
        plait__spin_pause(spins);
}

bool plait__spin_yield(plait__spin *spin)
{
    int64_t now = plait_now();
    /* (now + ns, not deadline - now: a deadline far in the past would overflow that) */
    if (!spin->until)
        spin->until = spin->deadline < now + spin->ns ? spin->deadline : now + spin->ns;
    if (now >= spin->until)
        return false;
    sched_yield(); /* on one CPU, the side that will end the wait needs this one */
    return true;
}

bool plait__spin_while(atomic_uint *word, unsigned value, int64_t ns, int64_t deadline)
{
    /* few pauses: where the other side shares this CPU they are time it cannot run */
    plait__spin spin = {.pauses = 16, .ns = ns, .deadline = deadline};
    do {
        if (atomic_load_explicit(word, memory_order_acquire) != value)
            return true;
    } while (plait__spin_again(&spin));
    return false;
}

struct timespec *plait__deadline_timespec(int64_t deadline, struct timespec *ts)
{
    if (deadline == PLAIT_FOREVER)
        return NULL;
    if (deadline < 0)
        deadline = 0;
    ts->tv_sec = deadline / PLAIT_SEC;
    ts->tv_nsec = deadline % PLAIT_SEC;
    return ts;
}

/* Sleep on word while it holds expected, until deadline: 0 for a wake-up (or a spurious
 * return: the callers look at their word again), -ETIMEDOUT. */
static int futex_sleep(atomic_uint *word, unsigned expected, int64_t deadline, int flags)
{
    struct timespec ts, *tsp = plait__deadline_timespec(deadline, &ts);
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    long r = syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_BITSET | flags, expected, tsp,
                     NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == -1 && errno == ETIMEDOUT)
        return -ETIMEDOUT;
    return 0;
}

#ifdef PLAIT_TSAN
/* ThreadSanitizer runs a signal's handler at once only where the thread sleeps in a
 * call it intercepts as blocking; elsewhere it queues the signal until the thread
 * next leaves an intercepted call or makes an atomic operation.  A futex wait through
 * syscall(2) is neither, and the kernel restarts it after the runtime's own handler
 * where the program's has SA_RESTART (plait's watchers' have): a signal sent to an
 * idle pool worker, or to a plain thread in plait_join, waited for the wake-up, for
 * ever where none came.  So in these builds a sleep is cut into slices, and the look
 * at the word between two runs what was queued; the caller sees no more wake-ups than
 * it would otherwise.  (Process-shared waits look every PLAIT__SHARED_RECHECK_NS in
 * any case, pfutex.c.)  (Session 60 tried ending each wait after 50 ms, its caller
 * looking again: a pool of 256 idle workers under ThreadSanitizer then never shut
 * down.) */
#define TSAN_SLICE_NS (100 * PLAIT_MS)

static int64_t sleep_slice_end(int64_t deadline)
{
    int64_t slice_end = plait_now() + TSAN_SLICE_NS;
    return slice_end < deadline ? slice_end : deadline;
}
#else
static int64_t sleep_slice_end(int64_t deadline) { return deadline; }
#endif

static int futex_wait(atomic_uint *word, unsigned expected, int64_t deadline, int flags)
{
    for (;;) {
        int64_t until = sleep_slice_end(deadline);
        int r = futex_sleep(word, expected, until, flags);
        if (until == deadline || r == 0)
            return r;
        /* a slice's end (ThreadSanitizer): the look runs the handlers queued */
        if (atomic_load_explicit(word, memory_order_acquire) != expected)
            return 0;
    }
}

int plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    return futex_wait(word, expected, deadline, FUTEX_PRIVATE_FLAG);
}

int plait__futex_wait_shared(atomic_uint *word, unsigned expected, int64_t deadline)
{
    return futex_wait(word, expected, deadline, 0);
}

void plait__futex_wake(atomic_uint *word, int count)
{
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, NULL,
            NULL, 0);
}

int plait__futex_wake_shared(atomic_uint *word, int count)
{
    long r = syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE, count, NULL, NULL, 0);
    return r > 0 ? (int)r : 0;
}
