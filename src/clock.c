/* clock.c — time and error names (a thread-local buffer for the names of a child's
 * signal or exit status, and of unknown codes). */
#include "internal.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t plait_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

int64_t plait__coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

int64_t plait_deadline_in(int64_t ns)
{
    int64_t now = plait_now();
    if (ns <= 0)
        return now;
    return ns > PLAIT_FOREVER - now ? PLAIT_FOREVER : now + ns;
}

const char *plait_strerror(int err)
{
    static PLAIT_TLS char text[96];
    int sig = PLAIT_KILL_SIGNAL(err), status = PLAIT_EXIT_STATUS(err);
    plait__text t = {text, sizeof text, 0}; /* not snprintf: see plait__text */
    if (sig > 0) {
        /* glibc's tables, not strsignal, which formats the names of real-time and
         * unknown signals with snprintf ("Real-time signal %d"): too deep a frame for a
         * coroutine's smallest stack, as are strerror's "Unknown error %d" below */
        const char *abbrev = sigabbrev_np(sig), *descr = sigdescr_np(sig);
        plait__text_str(&t, "the process was killed by signal ");
        plait__text_uint(&t, (unsigned)sig);
        if (abbrev && descr) {
            plait__text_str(&t, " (SIG");
            plait__text_str(&t, abbrev);
            plait__text_str(&t, ": ");
            plait__text_str(&t, descr);
        } else if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
            plait__text_str(&t, " (SIGRTMIN");
            if (sig > SIGRTMIN) {
                plait__text_str(&t, "+");
                plait__text_uint(&t, (unsigned)(sig - SIGRTMIN));
            }
            plait__text_str(&t, ": Real-time signal ");
            plait__text_uint(&t, (unsigned)(sig - SIGRTMIN));
        } else {
            plait__text_str(&t, " (unknown signal");
        }
        plait__text_str(&t, ")");
        plait__text_end(&t);
        return text;
    }
    if (status >= 0) {
        plait__text_str(&t, "the process exited with status ");
        plait__text_uint(&t, (unsigned)status);
        plait__text_end(&t);
        return text;
    }
    if (err < 0)
        err = err == INT_MIN ? INT_MAX : -err; /* no errno is that large: "unknown" */
    switch (err) {
    case 0: return "success";
    case ESRCH: return "no such task or process (a handle joined or detached already, or a process that has ended)";
    case EPERM: return "not permitted here (wrong context or not the owner)";
    case ETIMEDOUT: return "deadline passed";
    case ECANCELED: return "cancelled";
    case EPIPE: return "closed (a channel, queue, pool or set that takes no more; a pipe or socket whose reader is gone)";
    case EDEADLK: return "would wait on itself";
    case EBUSY: return "busy (still in use)";
    case EMSGSIZE: return "too large for the room there is for it";
    case ENODATA: return "end of file before all the bytes";
    case EOWNERDEAD: return "the holder died; the lock is yours, its data may need repair";
    case ECHILD: return "the child process was reaped by someone else (SIGCHLD ignored?)";
    }
    const char *descr = strerrordesc_np(err);
    if (descr)
        return descr;
    plait__text_str(&t, "Unknown error ");
    plait__text_uint(&t, (unsigned)err);
    plait__text_end(&t);
    return text;
}
