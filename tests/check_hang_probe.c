/*
 * check_hang_probe.c — a test program that hangs on purpose, for test_check_hang.sh:
 * the harness's alarm (check.h) must turn the hang into exit status 2 and print the
 * stacks of the program's threads, the hung frame named among them.
 */
#include "check.h"

static __attribute__((noinline)) void probe_waits_for_ever(void)
{
    for (;;)
        pause();
}

TEST(hangs) { probe_waits_for_ever(); }

RUN_TESTS(CASE(hangs))
