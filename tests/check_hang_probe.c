/*
 * check_hang_probe.c — a test program that hangs on purpose, for test_check_hang.sh:
 * the harness's alarm (check.h) must turn the hang into exit status 2 and print the
 * stacks of the program's threads, the hung frame named among them; and a child it
 * forked that hangs as well must end soon after; but not where the run has no alarm.
 */
#include "check.h"

#include <fcntl.h>

static __attribute__((noinline)) void probe_waits_for_ever(void)
{
    for (;;)
        pause();
}

/* With PROBE_CHILD_PID_FILE set, a child forked first hangs too (its output gone to
 * /dev/null, its pid written there): it must not outlive the run by long either. */
static void fork_a_hanging_child(const char *pid_file)
{
    pid_t child = fork();
    if (child == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        probe_waits_for_ever();
    }
    FILE *f = fopen(pid_file, "w");
    if (f) {
        fprintf(f, "%d\n", (int)child);
        fclose(f);
    }
}

TEST(hangs)
{
    const char *pid_file = getenv("PROBE_CHILD_PID_FILE");
    if (pid_file)
        fork_a_hanging_child(pid_file);
    probe_waits_for_ever();
}

/* Run alone with PLAIT_TEST_TIMEOUT=0 (no alarm: a run under a debugger): a child that
 * takes longer than the children's grace is not cut short (it was, after 5 s). */
TEST(a_slow_child_without_an_alarm)
{
    pid_t child = fork();
    if (child == 0) {
        struct timespec slow = {CHECK_CHILD_GRACE + 1, 0};
        nanosleep(&slow, NULL);
        _exit(0);
    }
    int status = -1;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

RUN_TESTS(CASE(hangs), CASE(a_slow_child_without_an_alarm))
