/*
 * test_cgroup_memory.c — plait__cgroup_memory_room (src/cgroup.c): the bytes the process
 * may still take under the memory limits of its cgroup and its ancestors, which
 * `plait compare` sizes its runs by (a container's limit is often far below the host's
 * free memory).  Read from made-up trees (tests/cgroup_tree.h) in each shape the kernel
 * shows: cgroup v2's memory.max and memory.current, "max" (no limit), an ancestor's
 * tighter limit, usage at or over the limit; v1's memory hierarchy (its own mount, beside
 * the cpu one) with its "unlimited" value; and files missing or malformed (no limit).
 * Finding the cgroup from /proc (malformed lines, odd mounts) is shared with the CPU
 * limit, and tested with it (test_cpu_count.c, test_pthread_cancel_and_cgroups.c).
 */
#include "cgroup_tree.h"

#define MIB (1LL << 20)

TEST(v2_limit_minus_usage)
{
    fresh_tree();
    put("proc/cgroup", "0::/app.slice/web.service\n");
    put("proc/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" V2_MOUNT);
    CHECK_EQ(memory_room(), -1); /* no files: no limit */
    put("sys/fs/cgroup/app.slice/web.service/memory.max", "max\n");
    put("sys/fs/cgroup/app.slice/web.service/memory.current", "104857600\n");
    CHECK_EQ(memory_room(), -1);
    put("sys/fs/cgroup/app.slice/web.service/memory.max", "536870912\n");
    CHECK_EQ(memory_room(), 412 * MIB);
    /* usage at or over the limit (the kernel reclaims down to it): no room */
    put("sys/fs/cgroup/app.slice/web.service/memory.current", "536870912\n");
    CHECK_EQ(memory_room(), 0);
    put("sys/fs/cgroup/app.slice/web.service/memory.current", "600000000\n");
    CHECK_EQ(memory_room(), 0);
    remove_tree();
}

/* A parent's limit holds for its children, counting their siblings' usage too: its room
 * binds where it is the smaller. */
TEST(v2_tighter_ancestor)
{
    fresh_tree();
    put("proc/cgroup", "0::/a/b\n");
    put("proc/mountinfo", V2_MOUNT);
    put("sys/fs/cgroup/a/b/memory.max", "524288000\n");     /* 500 MiB */
    put("sys/fs/cgroup/a/b/memory.current", "104857600\n"); /* 100 MiB */
    CHECK_EQ(memory_room(), 400 * MIB);
    put("sys/fs/cgroup/a/memory.max", "1073741824\n");     /* 1 GiB */
    put("sys/fs/cgroup/a/memory.current", "943718400\n");  /* 900 MiB */
    CHECK_EQ(memory_room(), 124 * MIB);
    put("sys/fs/cgroup/a/memory.max", "max\n");
    CHECK_EQ(memory_room(), 400 * MIB);
    remove_tree();
}

/* v1: the memory controller is a hierarchy of its own, here mounted beside cpu's, with
 * the process in another cgroup there; "unlimited" is the largest count of pages. */
TEST(v1_memory_hierarchy)
{
    fresh_tree();
    put("proc/cgroup", "4:memory:/jobs/42\n3:cpu,cpuacct:/\n0::/\n");
    put("proc/mountinfo", V1_MOUNT
        "35 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory\n");
    put("sys/fs/cgroup/memory/jobs/42/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/fs/cgroup/memory/jobs/42/memory.usage_in_bytes", "1048576\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/fs/cgroup/memory/memory.usage_in_bytes", "8589934592\n");
    CHECK_EQ(memory_room(), -1);
    put("sys/fs/cgroup/memory/jobs/memory.limit_in_bytes", "268435456\n");
    put("sys/fs/cgroup/memory/jobs/memory.usage_in_bytes", "67108864\n");
    CHECK_EQ(memory_room(), 192 * MIB);
    /* the cpu hierarchy's files are not the memory controller's */
    put("sys/fs/cgroup/cpu/memory.limit_in_bytes", "1048576\n");
    put("sys/fs/cgroup/cpu/memory.usage_in_bytes", "0\n");
    CHECK_EQ(memory_room(), 192 * MIB);
    /* nor do memory's files give a CPU limit */
    CHECK_EQ(limit(), 0);
    remove_tree();
}

/* A hybrid system: v2 mounted without the memory controller (no memory.max there)
 * beside v1's memory hierarchy, which is read. */
TEST(hybrid_takes_v1_memory)
{
    fresh_tree();
    put("proc/cgroup", "5:memory:/batch\n0::/batch\n");
    put("proc/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup/unified rw shared:4 - cgroup2 cgroup2 rw\n"
        "35 25 0:32 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n");
    put("sys/fs/cgroup/unified/batch/cgroup.procs", "");
    put("sys/fs/cgroup/memory/batch/memory.limit_in_bytes", "134217728\n");
    put("sys/fs/cgroup/memory/batch/memory.usage_in_bytes", "33554432\n");
    CHECK_EQ(memory_room(), 96 * MIB);
    remove_tree();
}

TEST(malformed_files_are_no_limit)
{
    static const char *const bad[] = {"", "abc\n", "-5\n", "99999999999999999999999\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int usage = 0; usage < 2; usage++) { /* the limit malformed, then the usage */
            fresh_tree();
            put("proc/cgroup", "0::/a\n");
            put("proc/mountinfo", V2_MOUNT);
            put("sys/fs/cgroup/a/memory.max", usage ? "536870912\n" : bad[i]);
            put("sys/fs/cgroup/a/memory.current", usage ? bad[i] : "1048576\n");
            if (memory_room() != -1)
                fprintf(stderr, "  %s \"%s\": room %lld\n", usage ? "usage" : "limit", bad[i],
                        memory_room());
            CHECK_EQ(memory_room(), -1);
            remove_tree();
        }
    }
    /* a limit without its usage: no limit known */
    fresh_tree();
    put("proc/cgroup", "0::/a\n");
    put("proc/mountinfo", V2_MOUNT);
    put("sys/fs/cgroup/a/memory.max", "536870912\n");
    CHECK_EQ(memory_room(), -1);
    remove_tree();
}

/* (Review 138.)  A cgroup whose name has a space, on a mount point with one (mountinfo
 * writes it as \040); values too large for a long long, with junk after them,
 * negative, and an ancestor's usage over its limit (no room at all, whatever the
 * child's). */
TEST(memory_room_with_odd_paths_and_values)
{
    fresh_tree();
    put("proc/cgroup", "0::/my slice/web app\n");
    put("proc/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                          "30 25 0:26 / /sys/fs/my\\040cgroup rw shared:4 - cgroup2 cgroup2 rw\n");
    put("sys/fs/my cgroup/my slice/web app/memory.max", "536870912\n");
    put("sys/fs/my cgroup/my slice/web app/memory.current", "104857600\n");
    CHECK_EQ(memory_room(), 412 * MIB);
    /* too large a number: no limit known there (not a wrapped one) */
    put("sys/fs/my cgroup/my slice/memory.max", "99999999999999999999\n");
    put("sys/fs/my cgroup/my slice/memory.current", "1\n");
    CHECK_EQ(memory_room(), 412 * MIB);
    put("sys/fs/my cgroup/my slice/memory.max", "-1\n");
    CHECK_EQ(memory_room(), 412 * MIB);
    put("sys/fs/my cgroup/my slice/memory.max", "\n");
    CHECK_EQ(memory_room(), 412 * MIB);
    /* usage over the ancestor's limit: none left */
    put("sys/fs/my cgroup/my slice/memory.max", "1048576\n");
    put("sys/fs/my cgroup/my slice/memory.current", "9223372036854775807\n");
    CHECK_EQ(memory_room(), 0);
    /* a limit of 0 */
    put("sys/fs/my cgroup/my slice/memory.max", "0\n");
    put("sys/fs/my cgroup/my slice/memory.current", "0\n");
    CHECK_EQ(memory_room(), 0);
    remove_tree();
}

RUN_TESTS(CASE(v2_limit_minus_usage), CASE(v2_tighter_ancestor), CASE(v1_memory_hierarchy),
          CASE(hybrid_takes_v1_memory), CASE(malformed_files_are_no_limit),
          CASE(memory_room_with_odd_paths_and_values))
