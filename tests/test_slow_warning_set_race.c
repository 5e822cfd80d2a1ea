/* test_slow_warning_set_race.c — plait_set_slow_warning() made while the first
 * scheduler reads PLAIT_SLOW_MS holds: the first read stored the environment's value
 * (0: off) over the threshold just set, and schedulers started afterwards ran with no
 * watchdog, though plait.h says the setting applies to them (session 43's
 * timers/stacks audit; failed before the fix: no warning).
 *
 * Built with -Wl,--wrap=getenv: the first read of PLAIT_SLOW_MS waits until the test
 * has set the threshold. */
#include "helpers.h"

#include <semaphore.h>

char *__real_getenv(const char *name);
char *__wrap_getenv(const char *name);

static sem_t in_getenv, may_go;
static atomic_int held;

char *__wrap_getenv(const char *name)
{
    if (strcmp(name, "PLAIT_SLOW_MS") == 0 && !atomic_exchange(&held, 1)) {
        CHECK_EQ(sem_post(&in_getenv), 0);
        while (sem_wait(&may_go) != 0)
            ;
    }
    return __real_getenv(name);
}

static void *nothing(void *unused)
{
    (void)unused;
    return NULL;
}

static void *first_scheduler(void *unused)
{
    (void)unused;
    check_run(nothing, NULL);
    return NULL;
}

TEST(a_threshold_set_while_the_environment_is_read_holds)
{
    CHECK_EQ(unsetenv("PLAIT_SLOW_MS"), 0);
    CHECK_EQ(sem_init(&in_getenv, 0, 0), 0);
    CHECK_EQ(sem_init(&may_go, 0, 0), 0);
    pthread_t first;
    CHECK_EQ(pthread_create(&first, NULL, first_scheduler, NULL), 0);
    while (sem_wait(&in_getenv) != 0)
        ;
    CHECK_EQ(plait_set_slow_warning(50 * PLAIT_MS), 0);
    CHECK_EQ(sem_post(&may_go), 0);
    CHECK_EQ(pthread_join(first, NULL), 0);

    /* a scheduler started afterwards warns of its coroutine's stall */
    char buf[4096];
    size_t n = check_run_capturing_stderr(run_cpu_hog, buf, sizeof buf);
    CHECK_EQ(plait_set_slow_warning(0), 0);
    CHECK(n > 0);
    CHECK(strstr(buf, "coroutine 'cpu-hog'") != NULL);
    sem_destroy(&in_getenv);
    sem_destroy(&may_go);
}

RUN_TESTS(CASE(a_threshold_set_while_the_environment_is_read_holds))
