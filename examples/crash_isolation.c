/* A task that crashes takes down its own process only.  Tasks on a process pool; one of
 * them dereferences a bad pointer (SIGSEGV).  In a thread, that would end the whole
 * program; in a worker process it fails exactly that task — its error names the signal
 * — a fresh worker takes the dead one's place, and every other task's result arrives.
 * Python's ProcessPoolExecutor would instead mark the whole pool broken
 * (BrokenProcessPool) and fail every pending task.
 */
#include "example.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t square_or_crash(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)cap;
    long n;
    memcpy(&n, arg, sizeof n);
    if (n == 3) {
        printf("  task 3 (pid %d) crashes with SIGSEGV\n", (int)getpid());
        fflush(stdout);
        /* as a bad pointer would: the same signal, without undefined behaviour, and with
         * its default action whatever handler is installed (a sanitizer has one) and
         * whatever the mask: a fault's signal is delivered even when blocked, while
         * raise's would stay pending (a mask is inherited through exec and fork) and
         * the task would go on to return 9 */
        sigset_t segv;
        sigemptyset(&segv);
        sigaddset(&segv, SIGSEGV);
        signal(SIGSEGV, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &segv, NULL);
        raise(SIGSEGV);
    }
    n *= n;
    memcpy(out, &n, sizeof n);
    return sizeof n;
}

static void show_workers(plait_procpool *pool, const char *when)
{
    int pids[8];
    int n = plait_procpool_pids(pool, pids, 8);
    printf("  workers %s:", when);
    for (int i = 0; i < n; i++)
        printf(" %d", pids[i]);
    printf("\n");
    /* out now: a worker writes its own lines to the same output, and where that is a
     * pipe or a file this line would wait in our buffer and come after them */
    fflush(stdout);
}

static void *run(void *arg)
{
    (void)arg;
    plait_procpool *pool;
    int r = plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2});
    if (r < 0)
        return PLAIT_FAIL(r);
    show_workers(pool, "before");
    enum { TASKS = 6 };
    plait_task tasks[TASKS];
    long args[TASKS];
    int submitted = 0;
    for (; submitted < TASKS; submitted++) {
        args[submitted] = submitted;
        r = plait_procpool_submit(pool, &tasks[submitted], square_or_crash, &args[submitted],
                                  sizeof args[submitted]);
        if (r < 0)
            break;
    }
    int wrong = 0;
    for (int i = 0; i < submitted; i++) {
        void *v = NULL;
        int j = plait_join(tasks[i], &v, PLAIT_FOREVER);
        if (j == 0) {
            long sq;
            memcpy(&sq, ((plait_bytes *)v)->data, sizeof sq);
            printf("  task %d: %ld\n", i, sq);
            wrong += sq != (long)i * i || i == 3; /* task 3 must not come back */
        } else {
            printf("  task %d failed: %s\n", i, plait_strerror(j));
            wrong += !(i == 3 && PLAIT_KILL_SIGNAL(j) == SIGSEGV);
        }
        free(v);
    }
    show_workers(pool, "after ");
    int d = plait_procpool_destroy(pool);
    printf("  the program goes on: %s\n",
           wrong ? "SOMETHING WENT WRONG" : "one task failed, the others all arrived");
    if (r < 0 || d < 0)
        return PLAIT_FAIL(r < 0 ? r : d);
    return wrong ? PLAIT_FAIL(-EIO) : NULL;
}

int example_crash_isolation(void) { return example_run(run, "a crashing task in a process pool"); }

EXAMPLE_MAIN(example_crash_isolation)
