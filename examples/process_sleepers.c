/* Three processes that each sleep one second finish together in about one second: each
 * sleeps in its own process, and a coroutine awaits all three without blocking its
 * scheduler (a ticker coroutine keeps running meanwhile).  A process is a task like a
 * coroutine or a thread: started, then joined or gathered through its handle.  Python's
 * multiprocessing would say:
 *
 *     def sleeper(name):                       static ssize_t sleeper(const void *name,
 *         print(name, "sleeps")                        size_t len, void *out, size_t cap) {
 *         time.sleep(1)                            ... sleep(1) ...
 *                                                  return 0; }
 *     ps = [Process(target=sleeper, args=(n,)) plait_process_start(&t[i], sleeper, names[i],
 *           for n in ("a", "b", "c")]              strlen(names[i]) + 1, NULL, NULL);
 *     for p in ps: p.start()
 *     for p in ps: p.join()                    plait_wait_all(t, 3, NULL, NULL, PLAIT_FOREVER);
 */
#include "example.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static ssize_t sleeper(const void *name, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    printf("  %5.3f s  %s (pid %d) sleeps for 1 s\n", example_elapsed(), (const char *)name,
           (int)getpid());
    fflush(stdout);
    /* the whole second, even if a signal comes: a Ctrl-C in `plait tour` reaches this
     * child too, whose handler (the tool's, inherited) lets the example finish, and an
     * interrupted nanosleep woke all three at once ("three 1 s sleeps took 0.012 s") */
    struct timespec second = {1, 0};
    while (nanosleep(&second, &second) != 0 && errno == EINTR) {
    }
    printf("  %5.3f s  %s wakes\n", example_elapsed(), (const char *)name);
    return 0;
}

static void *ticker(void *arg)
{
    int *ticks = arg;
    while (plait_sleep(250 * PLAIT_MS) == 0)
        (*ticks)++;
    return NULL;
}

static void *run(void *arg)
{
    (void)arg;
    static const char *names[] = {"process a", "process b", "process c"};
    int ticks = 0;
    plait_task tick, procs[3];
    int spawned = plait_spawn(&tick, ticker, &ticks), r = spawned;
    int started = 0;
    for (; r == 0 && started < 3; started++) {
        r = plait_process_start(&procs[started], sleeper, names[started],
                                strlen(names[started]) + 1, NULL, NULL);
        if (r < 0)
            break;
    }
    int w = started ? plait_wait_all(procs, (size_t)started, NULL, NULL, PLAIT_FOREVER) : 0;
    if (r == 0)
        r = w;
    if (spawned == 0) { /* (a spawn that failed set no handle) */
        plait_cancel(tick);
        plait_join(tick, NULL, PLAIT_FOREVER);
    }
    if (r < 0)
        return PLAIT_FAIL(r);
    char done[80];
    snprintf(done, sizeof done, "all three joined (the main coroutine ticked %d times meanwhile)",
             ticks);
    return example_overlap(done, "sleeps", 2.0);
}

int example_process_sleepers(void) { return example_run(run, "three 1 s sleeps in processes"); }

EXAMPLE_MAIN(example_process_sleepers)
