/*
 * cpus.c — how many CPUs the process may use: its affinity mask, lowered to the CPU
 * limit of its cgroup.
 *
 * A container given "2 CPUs" on a 64-CPU host usually gets them as a quota of CPU time
 * (cgroup v2's cpu.max "200000 100000"; v1's cpu.cfs_quota_us over cpu.cfs_period_us),
 * not as an affinity mask.  Sized from the mask alone, a default pool would run 64
 * workers that the kernel throttles to two CPUs' worth of time, each stopped for most
 * of every period.  So the count is the mask's, lowered to the quota over the period
 * rounded up (as Go's GOMAXPROCS, the JVM and .NET do), the smallest such limit of the
 * calling thread's cgroup (as the mask is the thread's; usually the process's) and its
 * ancestors (a parent's limit holds for its children), in cgroup v2 and v1's cpu
 * hierarchy (cgroup.c finds them and walks them).
 */
#include "cgroup.h"
#include "internal.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- the limit ---- */

/* The limit one cgroup directory sets: quota over period rounded up, LLONG_MAX for none. */
static long long cpu_limit_in(plait__cgroup_dir *dir, bool v2)
{
    long long quota, period;
    if (v2) { /* "QUOTA PERIOD" or "max PERIOD" */
        char text[64];
        const char *s = text;
        if (plait__cgroup_read(dir, "cpu.max", text, sizeof text) <= 0 ||
            !plait__cgroup_number(&s, &quota) || *s++ != ' ' || !plait__cgroup_number(&s, &period))
            return LLONG_MAX;
    } else if (!plait__cgroup_read_number(dir, "cpu.cfs_quota_us", &quota) || /* -1: none */
               !plait__cgroup_read_number(dir, "cpu.cfs_period_us", &period)) {
        return LLONG_MAX;
    }
    if (quota <= 0 || period <= 0)
        return LLONG_MAX;
    return quota / period + (quota % period != 0);
}

int plait__cgroup_cpu_limit(const char *proc, const char *prefix)
{
    long long least = plait__cgroup_least(proc, prefix, "cpu", cpu_limit_in);
    return least == LLONG_MAX ? 0 : least > INT_MAX ? INT_MAX : (int)least;
}

/* ---- the count ---- */

/* The affinity mask's CPUs, at least 1. */
static int affinity_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    /* The kernel's mask is wider than glibc's cpu_set_t (1024 CPUs) where it has more
     * possible CPUs than that: EINVAL until the set is large enough. */
    for (int cpus = 2048; errno == EINVAL && cpus <= (1 << 20); cpus *= 2) {
        cpu_set_t *big = CPU_ALLOC((size_t)cpus);
        if (!big)
            break;
        size_t size = CPU_ALLOC_SIZE((size_t)cpus);
        int n = sched_getaffinity(0, size, big) == 0 ? CPU_COUNT_S(size, big) : 0;
        CPU_FREE(big);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int plait_cpu_count(void)
{
    /* open(), read() and close() are cancellation points, and no call of plait's may be
     * one: a thread with a pthread_cancel pending unwound in the count, leaving its
     * scratch memory, a descriptor, or a lock of its caller held for ever (the default
     * pool's, which it sizes) */
    int cancel_state = plait__cancel_off();
    /* the calling thread's cgroup, as its mask is the thread's: a thread may be in a
     * cgroup of its own (v1's tasks, v2's threaded mode); /proc/self is the main
     * thread's (before Linux 3.17, the only one there is) */
    const char *proc = access("/proc/thread-self/cgroup", R_OK) == 0 ? "/proc/thread-self"
                                                                        : "/proc/self";
    int n = affinity_count(), limit = plait__cgroup_cpu_limit(proc, "");
    plait__cancel_restore(cancel_state);
    return limit > 0 && limit < n ? limit : n;
}
