/* segv_as_abort.c — an LD_PRELOAD library for the tests: raise(SIGSEGV) raises SIGABRT
 * instead, as when a process about to crash of its own fault is killed by something
 * else first (the OOM killer, someone's kill).  In `plait compare` only the crash drill
 * raises SIGSEGV (tests/test_tool_edges.sh). */
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int raise(int sig)
{
    return (int)syscall(SYS_tgkill, getpid(), gettid(), sig == SIGSEGV ? SIGABRT : sig);
}
