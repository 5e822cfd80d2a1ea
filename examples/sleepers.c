/* Three coroutines that each sleep one second finish together in about one second:
 * while one sleeps, the scheduler runs the others.  Python's asyncio would say:
 *
 *     async def sleeper(name):                 static void *sleeper(void *name) {
 *         print(name, "sleeps")                    printf("%s sleeps\n", name);
 *         await asyncio.sleep(1)                   plait_sleep(1 * PLAIT_SEC);
 *         print(name, "wakes")                     printf("%s wakes\n", name);
 *                                                  return NULL; }
 *     async def main():                        static void *run(void *arg) {
 *         await asyncio.gather(                    plait_task t[3]; ...spawn...
 *             sleeper("a"), sleeper("b"),          return PLAIT_FAIL(
 *             sleeper("c"))                          plait_wait_all(t, 3, ...)); }
 *     asyncio.run(main())                      plait_run(run, NULL, NULL);
 */
#include "example.h"

static void *sleeper(void *name)
{
    printf("  %5.3f s  %s sleeps for 1 s\n", example_elapsed(), (const char *)name);
    int r = plait_sleep(1 * PLAIT_SEC);
    printf("  %5.3f s  %s wakes\n", example_elapsed(), (const char *)name);
    return r < 0 ? PLAIT_FAIL(r) : NULL;
}

static void *run(void *arg)
{
    (void)arg;
    static const char *names[] = {"sleeper a", "sleeper b", "sleeper c"};
    plait_task tasks[3];
    for (int i = 0; i < 3; i++) {
        int r = plait_spawn(&tasks[i], sleeper, (void *)names[i]);
        if (r < 0)
            return PLAIT_FAIL(r);
    }
    int r = plait_wait_all(tasks, 3, NULL, NULL, PLAIT_FOREVER);
    if (r < 0)
        return PLAIT_FAIL(r);
    return example_overlap("all three done", "sleeps", 2.0);
}

int example_sleepers(void) { return example_run(run, "three 1 s sleeps"); }

EXAMPLE_MAIN(example_sleepers)
