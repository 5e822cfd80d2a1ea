/* fail_threads.c — an LD_PRELOAD library for the tests: in every process forked from
 * the one that loaded it, the Nth call of pthread_create and each later one fail with
 * EAGAIN, as when a process may start no more threads (RLIMIT_NPROC, a cgroup's
 * pids.max: neither holds for root, who runs the suite in CI).  The process that loaded
 * it is spared, so a tool that forks its experiments (plait compare) runs as usual
 * and only its children run short of threads.  N comes from the environment variable
 * PLAIT_TEST_CHILD_THREADS (absent or 0: every call goes through).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static create_fn *real_create;
static pid_t loader;
static long fail_from;
static atomic_long calls; /* in a forked process, since its fork (the loader counts none) */

__attribute__((constructor)) static void fail_threads_init(void)
{
    real_create = (create_fn *)dlsym(RTLD_NEXT, "pthread_create");
    loader = getpid();
    const char *n = getenv("PLAIT_TEST_CHILD_THREADS");
    fail_from = n ? atol(n) : 0;
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                   void *arg)
{
    if (fail_from > 0 && getpid() != loader && atomic_fetch_add(&calls, 1) + 1 >= fail_from)
        return EAGAIN;
    return real_create(thread, attr, fn, arg);
}
