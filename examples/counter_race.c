/* Two threads add 1 to a shared counter a million times each.  Without a lock the
 * total comes out short: an increment is a read followed by a write, and when both
 * threads read the same value, one write undoes the other.  With a plait_mutex
 * around each increment the total is exact.
 *
 * The increment is written as a relaxed atomic load followed by a relaxed atomic
 * store: a read-modify-write that is not atomic, so it loses updates exactly as
 * `counter++` does, but is defined behaviour in C (a plain `counter++` from two
 * threads is a data race, undefined, and ThreadSanitizer rightly stops on it).
 */
#include "example.h"

#include <stdatomic.h>

enum { THREADS = 2, INCREMENTS = 1000000 };

typedef struct race {
    atomic_long counter;
    int increments;          /* per thread */
    plait_mutex *mutex;      /* NULL: no lock */
    plait_barrier *start;    /* so that both threads begin together */
    atomic_int running;      /* threads through the barrier */
} race;

static void *incrementer(void *arg)
{
    race *rc = arg;
    printf("  %5.3f s  %s is ready for %d increments\n", example_elapsed(), plait_task_name(),
           rc->increments);
    int r = plait_barrier_wait(rc->start, PLAIT_FOREVER);
    if (r < 0)
        return PLAIT_FAIL(r);
    /* The barrier wakes one thread while the other already runs: wait the few
     * microseconds until both run, or one could be done before the other starts. */
    atomic_fetch_add(&rc->running, 1);
    while (atomic_load(&rc->running) < THREADS)
        ;
    for (int i = 0; i < rc->increments; i++) {
        if (rc->mutex && (r = plait_mutex_lock(rc->mutex, PLAIT_FOREVER)) < 0)
            return PLAIT_FAIL(r);
        /* counter++, as a read and then a write */
        long seen = atomic_load_explicit(&rc->counter, memory_order_relaxed);
        atomic_store_explicit(&rc->counter, seen + 1, memory_order_relaxed);
        if (rc->mutex && (r = plait_mutex_unlock(rc->mutex)) < 0)
            return PLAIT_FAIL(r);
    }
    printf("  %5.3f s  %s done\n", example_elapsed(), plait_task_name());
    return NULL;
}

/* Run the threads over rc, print the total and leave it in *total. */
static int race_once(race *rc, const char *how, long *total)
{
    static const char *names[THREADS] = {"adder 1", "adder 2"};
    atomic_init(&rc->counter, 0);
    atomic_init(&rc->running, 0);
    plait_task threads[THREADS];
    int started = 0, r = 0;
    int64_t t0 = plait_now();
    for (; started < THREADS; started++) {
        r = plait_thread_start(&threads[started], incrementer, rc,
                               &(plait_thread_options){.name = names[started]});
        if (r < 0)
            break;
    }
    for (int i = 0; r < 0 && i < started; i++) /* they wait at the barrier for the missing */
        plait_cancel(threads[i]);
    for (int i = 0; i < started; i++) {
        int j = plait_join(threads[i], NULL, PLAIT_FOREVER);
        if (j < 0 && r == 0)
            r = j;
    }
    *total = atomic_load(&rc->counter);
    printf("  %5.3f s  %s: total %ld of %ld, in %.3f s\n", example_elapsed(), how, *total,
           (long)THREADS * rc->increments, (double)(plait_now() - t0) / PLAIT_SEC);
    return r;
}

static void *run(void *arg)
{
    (void)arg;
    race rc = {.increments = INCREMENTS, .mutex = NULL};
    int r = plait_barrier_create(&rc.start, THREADS);
    if (r < 0)
        return PLAIT_FAIL(r);

    long unlocked, locked = 0;
    r = race_once(&rc, "without a lock", &unlocked);
    if (r == 0) {
        long lost = (long)THREADS * INCREMENTS - unlocked;
        if (lost > 0)
            printf("             lost %ld updates: both threads read the same value, "
                   "one write undid the other\n", lost);
        else
            printf("             no update lost this time (one CPU? %d here)\n",
                   plait_cpu_count());
        r = plait_mutex_create(&rc.mutex);
    }
    if (r == 0) {
        rc.increments = INCREMENTS;
        r = race_once(&rc, "with a plait_mutex", &locked);
        plait_mutex_destroy(rc.mutex);
    }
    plait_barrier_destroy(rc.start);
    if (r < 0)
        return PLAIT_FAIL(r);
    int exact = locked == (long)THREADS * INCREMENTS;
    printf("             with the lock: %s\n",
           exact ? "exact" : "WRONG (the mutex let two increments overlap)");
    return exact ? NULL : PLAIT_FAIL(-EIO);
}

int example_counter_race(void) { return example_run(run, "a counter raced, then locked"); }

EXAMPLE_MAIN(example_counter_race)
