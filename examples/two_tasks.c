/* Tasks of 2 s and 1 s, started together, finish in about 2 s: the total is the
 * longest task, not the sum.  Each task's result comes back through its handle. */
#include "example.h"

#include <stdint.h>

static void *work(void *seconds)
{
    intptr_t s = (intptr_t)seconds;
    printf("  %5.3f s  task of %ld s starts\n", example_elapsed(), (long)s);
    int r = plait_sleep(s * PLAIT_SEC);
    if (r < 0)
        return PLAIT_FAIL(r);
    printf("  %5.3f s  task of %ld s ends\n", example_elapsed(), (long)s);
    return (void *)(s * 10);
}

static void *run(void *arg)
{
    (void)arg;
    plait_task two, one;
    int r = plait_spawn(&two, work, (void *)(intptr_t)2);
    if (r == 0)
        r = plait_spawn(&one, work, (void *)(intptr_t)1);
    if (r < 0)
        return PLAIT_FAIL(r);
    void *a, *b;
    r = plait_join(two, &a, PLAIT_FOREVER);
    int r2 = plait_join(one, &b, PLAIT_FOREVER);
    if (r < 0 || r2 < 0)
        return PLAIT_FAIL(r < 0 ? r : r2);
    /* the sum, 3 s, or more: the tasks ran one after the other */
    char done[64];
    snprintf(done, sizeof done, "results: %ld and %ld", (long)(intptr_t)a, (long)(intptr_t)b);
    return example_overlap(done, "tasks", 3.0);
}

int example_two_tasks(void) { return example_run(run, "tasks of 2 s and 1 s"); }

EXAMPLE_MAIN(example_two_tasks)
