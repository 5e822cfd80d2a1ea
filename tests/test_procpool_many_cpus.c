/* test_procpool_many_cpus.c — a process pool sized by default on a machine with more
 * CPUs than PLAIT_PROCPOOL_MAX gets PLAIT_PROCPOOL_MAX workers, as a thread pool gets
 * PLAIT_POOL_THREADS_MAX: it was refused with -EINVAL, though the caller asked for no
 * number (session 43's cgroup/CPU audit; failed before the fix: -EINVAL).
 *
 * Built with -Wl,--wrap=plait_cpu_count (1500 CPUs) and -Wl,--wrap=plait__shared_map,
 * which refuses the pool's shared memory (so no worker is forked: 1024 of them would be
 * a heavy test) and notes the size asked for, which grows with the workers. */
#include "helpers.h"

#include "../src/internal.h"

int __wrap_plait_cpu_count(void);
void *__wrap_plait__shared_map(size_t size);

static atomic_int cpus = 1500;
static atomic_size_t asked;

int __wrap_plait_cpu_count(void) { return atomic_load(&cpus); }

void *__wrap_plait__shared_map(size_t size)
{
    atomic_store(&asked, size);
    return NULL; /* refused: the create ends with -ENOMEM before any fork */
}

/* The shared memory a pool of `processes` workers asks for (0: the default). */
static size_t map_size_of(unsigned processes)
{
    atomic_store(&asked, 0);
    plait_procpool *pool = NULL;
    plait_procpool_options o = {.processes = processes};
    CHECK_EQ(plait_procpool_create(&pool, processes ? &o : NULL), -ENOMEM);
    CHECK(pool == NULL);
    return atomic_load(&asked);
}

TEST(a_default_pool_on_more_cpus_than_the_most_is_the_most)
{
    size_t most = map_size_of(PLAIT_PROCPOOL_MAX);
    CHECK(most > 0);
    CHECK_EQ(map_size_of(0), most); /* not -EINVAL: the default is capped */
    CHECK(map_size_of(PLAIT_PROCPOOL_MAX - 1) < most);
    /* a number asked for beyond the most is still refused */
    plait_procpool *pool = NULL;
    plait_procpool_options o = {.processes = PLAIT_PROCPOOL_MAX + 1};
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL);
    /* and a machine within it gets its CPU count */
    atomic_store(&cpus, 3);
    CHECK_EQ(map_size_of(0), map_size_of(3));
    CHECK(map_size_of(3) < most);
}

RUN_TESTS(CASE(a_default_pool_on_more_cpus_than_the_most_is_the_most))
