/* test_pool_many_cpus.c — a machine with more CPUs than a pool may have workers
 * (PLAIT_POOL_THREADS_MAX).  sched_getaffinity fails there with glibc's fixed
 * cpu_set_t (EINVAL: the kernel's mask is wider than 1024 bits) and sysconf counts
 * them all: a pool sized from the CPU count, the default pool included, was refused
 * (-EINVAL for options the caller never set out of range; plait_pool_default NULL). */
#include "helpers.h"

#include <sched.h>

/* 0: the machine's own; WIDE_MASK: the kernel's mask is 2048 bits wide, and this
 * process may run on 3 CPUs; NO_MASK: the mask cannot be read, sysconf says 2048. */
enum { OWN, WIDE_MASK, NO_MASK };
static atomic_int many_cpus;

int __real_sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set);
int __wrap_sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set);
int __wrap_sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set)
{
    int mode = atomic_load(&many_cpus);
    if (mode == OWN)
        return __real_sched_getaffinity(pid, size, set);
    if (mode == NO_MASK || size * 8 < 2048) {
        errno = EINVAL;
        return -1;
    }
    CPU_ZERO_S(size, set);
    for (int cpu = 1000; cpu < 1003; cpu++)
        CPU_SET_S(cpu, size, set);
    return 0;
}

long __real_sysconf(int name);
long __wrap_sysconf(int name);
long __wrap_sysconf(int name)
{
    if (atomic_load(&many_cpus) != OWN && name == _SC_NPROCESSORS_ONLN)
        return 2048;
    return __real_sysconf(name);
}

static void *value(void *p) { return p; }

/* The CPUs this process may run on, read with a set as wide as the kernel's. */
TEST(cpu_count_reads_a_mask_wider_than_glibc_s_set)
{
    atomic_store(&many_cpus, WIDE_MASK);
    int cpus = plait_cpu_count();
    atomic_store(&many_cpus, OWN);
    CHECK_EQ(cpus, 3); /* not sysconf's 2048 */
}

/* A pool sized from a CPU count above PLAIT_POOL_THREADS_MAX has that many workers (it
 * was refused), and so has the default pool; an explicit count above it is -EINVAL. */
TEST(pool_sized_from_more_cpus_than_threads_max)
{
    plait_pool *pool = NULL;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = PLAIT_POOL_THREADS_MAX + 1}),
             -EINVAL);
    atomic_store(&many_cpus, NO_MASK);
    CHECK_EQ(plait_cpu_count(), 2048);
    CHECK_EQ(plait_pool_create(&pool, NULL), 0);
    CHECK_EQ(plait_pool_threads(pool), PLAIT_POOL_THREADS_MAX);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    plait_pool *d = plait_pool_default();
    CHECK(d != NULL);
    void *out = NULL;
    CHECK_EQ(plait_to_thread(value, ARG(7), &out, SOON()), 0);
    CHECK(out == ARG(7));
    atomic_store(&many_cpus, OWN);
}

RUN_TESTS(CASE(cpu_count_reads_a_mask_wider_than_glibc_s_set),
          CASE(pool_sized_from_more_cpus_than_threads_max))
