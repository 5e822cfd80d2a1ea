/*
 * test_poller_table.c — what a scheduler's table of descriptors costs (both backends).
 *
 * The table has a slot per descriptor number up to the highest one the scheduler has
 * waited on (some 150 bytes each).  It was one realloc'd array whose new part was
 * cleared with memset: every slot cost memory, written or not, so a scheduler that
 * waited on a single descriptor numbered 19,000 held 4.7 MB for as long as it ran, and
 * each scheduler of a process with many descriptors paid for all of them (an audit's
 * soak run: 8 schedulers, one wait each, 38 MB).  Now only the pages of slots written
 * cost memory.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* The lowest number the high descriptor may take: its slot lies past 16,384 others
 * (2.3 MB of slots below it, were they all paid for). */
enum { HIGH_FD = 16400 };

/* The memory the process has in RAM, in KiB (VmRSS), or -1. */
static long resident_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* A wait on a low descriptor (the poller made), then one on a descriptor numbered
 * HIGH_FD or above: the second may cost a few pages, not a slot per number below. */
static void *wait_on_a_high_number(void *unused)
{
    (void)unused;
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(write(p[1], "ab", 2), 2);
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    long before = resident_kib();
    int high = fcntl(p[0], F_DUPFD_CLOEXEC, HIGH_FD);
    CHECK(high >= HIGH_FD);
    CHECK_EQ(plait_wait_fd(high, PLAIT_READABLE, SOON()), PLAIT_READABLE);
    long after = resident_kib();
    CHECK(before > 0 && after > 0);
    /* the slots below would be 2.3 MB at least; a margin for the pages the wait's own
     * work touches (a sanitizer's shadow, the allocator) */
    if (after - before >= 512)
        fprintf(stderr, "  resident %ld KiB -> %ld KiB\n", before, after);
    CHECK(after - before < 512);
    /* the table still serves the low number and the high one */
    char c[2];
    CHECK_EQ(plait_read(high, c, 1, SOON()), 1);
    CHECK_EQ(plait_read(p[0], c + 1, 1, SOON()), 1);
    CHECK_EQ(memcmp(c, "ab", 2), 0);
    CHECK_EQ(plait_close(high), 0);
    CHECK_EQ(plait_close(p[0]), 0);
    CHECK_EQ(plait_close(p[1]), 0);
    return NULL;
}

TEST(a_wait_on_a_high_number_costs_no_slot_per_number_below)
{
    struct rlimit lim;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max <= HIGH_FD + 1) {
        CHECK_SKIP("the hard descriptor limit is below the number the case needs");
        return;
    }
    struct rlimit raised = lim;
    if (raised.rlim_cur == RLIM_INFINITY || raised.rlim_cur <= HIGH_FD + 1)
        raised.rlim_cur = HIGH_FD + 64;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0);
    check_run(wait_on_a_high_number, NULL);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

RUN_TESTS(CASE(a_wait_on_a_high_number_costs_no_slot_per_number_below))
