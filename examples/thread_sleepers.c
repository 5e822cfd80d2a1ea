/* Three threads that each sleep one second finish together in about one second: each
 * sleeps on its own OS thread, so the sleeps overlap.  A plait thread is a task like a
 * coroutine: named when it starts, joined through its handle.  Python's threading would
 * say:
 *
 *     def sleeper():                           static void *sleeper(void *arg) {
 *         name = current_thread().name             const char *name = plait_task_name();
 *         print(name, "sleeps")                    printf("%s sleeps\n", name);
 *         time.sleep(1)                            plait_sleep(1 * PLAIT_SEC);
 *         print(name, "wakes")                     printf("%s wakes\n", name);
 *                                                  return NULL; }
 *     ts = [Thread(target=sleeper, name=n)     plait_task t[3]; ...
 *           for n in ("a", "b", "c")]            plait_thread_start(&t[i], sleeper, NULL,
 *     for t in ts: t.start()                       &(plait_thread_options){.name = n});
 *     for t in ts: t.join()                      plait_join(t[i], NULL, PLAIT_FOREVER);
 */
#include "example.h"

static void *sleeper(void *arg)
{
    (void)arg;
    printf("  %5.3f s  %s sleeps for 1 s\n", example_elapsed(), plait_task_name());
    int r = plait_sleep(1 * PLAIT_SEC);
    printf("  %5.3f s  %s wakes\n", example_elapsed(), plait_task_name());
    return r < 0 ? PLAIT_FAIL(r) : NULL;
}

static void *run(void *arg)
{
    (void)arg;
    static const char *names[] = {"thread a", "thread b", "thread c"};
    plait_task threads[3];
    int started = 0, r = 0;
    for (; started < 3; started++) {
        r = plait_thread_start(&threads[started], sleeper, NULL,
                               &(plait_thread_options){.name = names[started]});
        if (r < 0)
            break;
    }
    /* join every thread that was started, even after a failure */
    for (int i = 0; i < started; i++) {
        int j = plait_join(threads[i], NULL, PLAIT_FOREVER);
        if (j < 0 && r == 0)
            r = j;
    }
    if (r < 0)
        return PLAIT_FAIL(r);
    return example_overlap("all three joined", "sleeps", 2.0);
}

int example_thread_sleepers(void) { return example_run(run, "three 1 s sleeps on threads"); }

EXAMPLE_MAIN(example_thread_sleepers)
