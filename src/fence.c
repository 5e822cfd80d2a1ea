/*
 * fence.c — asymmetric fences: a handshake whose one side runs millions of times a
 * second and whose other side runs almost never.
 *
 * A Dekker-style handshake ("I store X, then load Y; you store Y, then load X; at
 * least one of us sees the other's store") needs a full fence between the store and
 * the load on both sides: on x86-64 a locked instruction, some twenty cycles.  Where
 * one side is hot (a pool worker entering and leaving each task) and the other rare
 * (shutting the pool down with cancellation), the whole cost can move to the rare
 * side: the hot side only stops the compiler from reordering (plait__light_fence,
 * internal.h), and the rare side makes every thread of the process execute a full
 * fence (plait__heavy_fence: membarrier(2) with MEMBARRIER_CMD_PRIVATE_EXPEDITED, an
 * interrupt to each CPU that runs one of our threads).  When the heavy fence returns,
 * each hot-side thread has either made its store visible already, or will see the
 * rare side's store when it loads.  liburcu and folly use the same pairing.
 *
 * A process must register before it may use the expedited command.  The kernel keeps
 * the registration with the address space: a forked child has it too, exec drops it.
 * The first registration of a process with threads waits for an RCU grace period
 * (0.2–3 ms here), so plait__asymmetric_fences() registers once and remembers the
 * answer; a yes is confirmed each time by a heavy fence (a filter may refuse membarrier
 * since).  Where membarrier is missing (kernels before 4.14, emulators, sandboxes that
 * refuse it) the answer is false, and the caller uses sequentially consistent accesses
 * on both sides instead.  The heavy fence can still fail later (the kernel out of
 * memory for its CPU mask; a seccomp filter installed since): its caller must then
 * not rely on the handshake.
 *
 * x86-64 only, for now.  There the hot side is a plain store and a plain load, and a
 * litmus test of the pairing (store; compiler barrier; load against store;
 * membarrier; load) never showed both loads stale in 200,000 rounds, where it did
 * thousands of times with no fence or a fence on one side.  The aarch64 build, run
 * under qemu-user in CI, missed the handshake (the pool's test of it failed 3 runs in
 * 8, and never with the sequentially consistent fallback); with no aarch64 hardware
 * to tell whether that is qemu's doing, other architectures keep the fallback.
 */
#include "internal.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { HEAVY_FENCE_TRIES = 100 };

bool plait__asymmetric_fences(void)
{
#if defined(__x86_64__)
    static atomic_int registered; /* 0: not asked yet, 1: registered, -1: refused */
    int answer = atomic_load_explicit(&registered, memory_order_relaxed);
    if (!answer) {
        /* two threads may both ask: the call is idempotent, and so is the answer */
        answer = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
                     ? 1
                     : -1;
        atomic_store_explicit(&registered, answer, memory_order_relaxed);
    }
    /* The registration lasts, but not the right to the call: a seccomp filter installed
     * since (a process that sandboxes itself after its first pool) refuses it, and a
     * pool made then must not count on the fence (its shutdown would not walk the
     * running chains, and its private pushes would wait for a fence that never comes).
     * So ask each time: a pool is made rarely, and the fence is cheap while no other
     * thread of the process runs. */
    return answer > 0 && plait__heavy_fence() == 0;
#else
    return false;
#endif
}

int plait__heavy_fence(void)
{
    for (int tries = 1;; tries++) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
            return 0;
        int e = errno;
        if ((e != ENOMEM && e != EAGAIN && e != EINTR) || tries == HEAVY_FENCE_TRIES)
            return -e;
        sched_yield(); /* out of memory for a moment: let the kernel reclaim */
    }
}
