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
 * that per address space, so a forked child registers anew: plait__asymmetric_fences()
 * registers on every call (a cheap, idempotent system call) and callers ask it when
 * they set up, not on the hot path.  Where membarrier is missing (kernels before
 * 4.14, emulators, sandboxes that refuse it) the answer is false, and the caller uses
 * sequentially consistent accesses on both sides instead.
 */
#include "internal.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

bool plait__asymmetric_fences(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void plait__heavy_fence(void)
{
    /* Cannot fail once this address space registered (EPERM is the only error the
     * command has then), and the callers only use it after plait__asymmetric_fences()
     * said true in this process. */
    (void)syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}
