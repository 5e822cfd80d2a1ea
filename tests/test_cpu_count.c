/*
 * test_cpu_count.c — plait_cpu_count: the affinity mask, lowered to the CPU limit of the
 * process's cgroup (src/cpus.c).  The limit is read from made-up trees here (a
 * /proc/self with its cgroup and mountinfo, and the cgroup files under a prefix), in
 * each shape the kernel shows: cgroup v2 with and without a quota, nested limits (the
 * smallest holds), v1's CFS quota, a hybrid system (v2 mounted without the cpu
 * controller beside v1's cpu), a container's mount whose root is its own cgroup, paths
 * with escaped spaces, and files missing or malformed (no limit).  Then the count
 * itself: never above the mask, following a one-CPU mask, and a real cgroup's quota
 * where the test may make one.
 */
#include "cgroup_tree.h"

#include <sched.h>

TEST(v2_quota_and_none)
{
    fresh_tree();
    put("proc/cgroup", "0::/app.slice/web.service\n");
    put("proc/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" V2_MOUNT);
    /* no cpu.max anywhere: no limit */
    CHECK_EQ(limit(), 0);
    put("sys/fs/cgroup/app.slice/web.service/cpu.max", "max 100000\n");
    CHECK_EQ(limit(), 0);
    put("sys/fs/cgroup/app.slice/web.service/cpu.max", "150000 100000\n");
    CHECK_EQ(limit(), 2); /* rounded up */
    put("sys/fs/cgroup/app.slice/web.service/cpu.max", "400000 100000\n");
    CHECK_EQ(limit(), 4);
    put("sys/fs/cgroup/app.slice/web.service/cpu.max", "1000 100000\n");
    CHECK_EQ(limit(), 1); /* a hundredth of a CPU is still one */
    /* a parent's smaller limit holds for its children; the root's file counts too */
    put("sys/fs/cgroup/app.slice/cpu.max", "300000 100000\n");
    put("sys/fs/cgroup/app.slice/web.service/cpu.max", "max 100000\n");
    CHECK_EQ(limit(), 3);
    put("sys/fs/cgroup/cpu.max", "200000 100000\n");
    CHECK_EQ(limit(), 2);
    remove_tree();
}

TEST(malformed_files_are_no_limit)
{
    static const char *const bad[] = {"", "abc 100000\n", "200000\n", "200000 0\n",
                                      "-5 100000\n", "200000 x\n",
                                      "99999999999999999999999 100000\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh_tree();
        put("proc/cgroup", "0::/a\n");
        put("proc/mountinfo", V2_MOUNT);
        put("sys/fs/cgroup/a/cpu.max", bad[i]);
        CHECK_EQ(limit(), 0);
        remove_tree();
    }
    /* no /proc files at all; a cgroup line without a path; a mount line cut short */
    fresh_tree();
    CHECK_EQ(limit(), 0);
    put("proc/cgroup", "0::\ngarbage\n1:cpu\n");
    put("proc/mountinfo", "30 25 0:26 / /sys/fs/cgroup\n31 25 0:27 /\n");
    CHECK_EQ(limit(), 0);
    remove_tree();
}

TEST(v1_cfs_quota)
{
    fresh_tree();
    put("proc/cgroup", "12:pids:/user.slice\n4:cpu,cpuacct:/user.slice/job\n"
                       "1:name=systemd:/user.slice\n");
    put("proc/mountinfo",
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "34 25 0:30 / /sys/fs/cgroup/pids rw shared:10 - cgroup cgroup rw,pids\n");
    put("sys/fs/cgroup/cpu,cpuacct/user.slice/job/cpu.cfs_quota_us", "-1\n");
    put("sys/fs/cgroup/cpu,cpuacct/user.slice/job/cpu.cfs_period_us", "100000\n");
    CHECK_EQ(limit(), 0);
    put("sys/fs/cgroup/cpu,cpuacct/user.slice/job/cpu.cfs_quota_us", "250000\n");
    CHECK_EQ(limit(), 3);
    /* a quota without its period is no limit */
    put("sys/fs/cgroup/cpu,cpuacct/user.slice/job/cpu.cfs_period_us", "");
    CHECK_EQ(limit(), 0);
    remove_tree();
}

/* A hybrid system: v2 mounted (no cpu controller there: no cpu.max) beside v1's cpu. */
TEST(hybrid_takes_v1_cpu)
{
    fresh_tree();
    put("proc/cgroup", "2:cpu:/batch\n0::/batch\n");
    put("proc/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup/unified rw shared:4 - cgroup2 cgroup2 rw\n"
        "33 25 0:29 / /sys/fs/cgroup/cpu rw shared:9 - cgroup cgroup rw,cpu\n");
    put("sys/fs/cgroup/unified/batch/cgroup.procs", "");
    put("sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us", "100000\n");
    put("sys/fs/cgroup/cpu/batch/cpu.cfs_period_us", "100000\n");
    CHECK_EQ(limit(), 1);
    remove_tree();
}

/* A container without a cgroup namespace: /proc/self/cgroup names the host's path, and
 * the hierarchy is mounted with that cgroup as its root; the limits are at the mount
 * point.  With a namespace the path is "/" and the mount's root "/". */
TEST(container_mount_roots)
{
    fresh_tree();
    put("proc/cgroup", "0::/docker/abc123\n");
    put("proc/mountinfo",
        "40 35 0:26 /docker/abc123 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
    put("sys/fs/cgroup/cpu.max", "200000 100000\n");
    CHECK_EQ(limit(), 2);
    put("proc/cgroup", "0::/\n");
    put("proc/mountinfo", "40 35 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
    CHECK_EQ(limit(), 2);
    /* a path outside the mount's root: the mount point's own files */
    put("proc/cgroup", "0::/elsewhere\n");
    put("proc/mountinfo",
        "40 35 0:26 /docker/abc123 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
    CHECK_EQ(limit(), 2);
    remove_tree();
}

/* Two mounts of the hierarchy hold the process's cgroup: a subtree's (root /a/b) listed
 * before the whole hierarchy's.  The whole one reaches /a's limit; the subtree's, taken
 * first, hid it (session 43's cgroup/CPU audit). */
TEST(the_mount_reaching_most_ancestors)
{
    fresh_tree();
    put("proc/cgroup", "0::/a/b/c\n");
    put("proc/mountinfo", "40 22 0:26 /a/b /mnt/sub rw - cgroup2 cgroup2 rw\n" V2_MOUNT);
    put("sys/fs/cgroup/a/cpu.max", "100000 100000\n");
    CHECK_EQ(limit(), 1);
    put("proc/mountinfo", V2_MOUNT "40 22 0:26 /a/b /mnt/sub rw - cgroup2 cgroup2 rw\n");
    CHECK_EQ(limit(), 1);
    remove_tree();
}

/* mountinfo writes a space in a path as \040. */
TEST(escaped_mount_point)
{
    fresh_tree();
    put("proc/cgroup", "0::/g\n");
    put("proc/mountinfo", "30 25 0:26 / /my\\040cgroups rw - cgroup2 cgroup2 rw\n");
    put("my cgroups/g/cpu.max", "500000 100000\n");
    CHECK_EQ(limit(), 5);
    remove_tree();
}

/* The live count: at least 1, never above the mask, and a one-CPU mask gives 1. */
static void *count_on_one_cpu(void *arg)
{
    (void)arg;
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    CHECK(plait_cpu_count() >= 1);
    CHECK(plait_cpu_count() <= CPU_COUNT(&set));
    CHECK_EQ(pin_to_one_cpu(), 0);
    CHECK_EQ(plait_cpu_count(), 1);
    return NULL;
}

TEST(count_follows_the_mask)
{
    pthread_t th;
    thread_start(&th, count_on_one_cpu, NULL);
    thread_join(th);
}

/* The real thing, where this process may make a cgroup (root, a writable hierarchy
 * with the cpu controller: v1's, or v2's): a child moved into one with a quota of one
 * CPU counts 1.  Skipped elsewhere. */
TEST(a_real_cgroup_quota)
{
    char dir[128], file[192];
    bool v1;
    if (!make_cgroup("cpu", dir, &v1)) {
        CHECK_SKIP("no cgroup may be made here");
        return;
    }
    snprintf(file, sizeof file, "%s/%s", dir, v1 ? "cpu.cfs_quota_us" : "cpu.max");
    if (!write_cgroup_file(file, v1 ? "100000" : "100000 100000")) {
        rmdir(dir);
        CHECK_SKIP("the cgroup takes no CPU quota here");
        return;
    }
    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0)
        _exit(!join_cgroup(dir) ? 2 : plait_cpu_count() == 1 ? 0 : 1);
    int status = reap_within(child, 10);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(rmdir(dir), 0);
}

/* A thread in a cgroup of its own (v1's `tasks` file takes a thread): its count is its
 * cgroup's, not the main thread's (it read /proc/self/cgroup, the main thread's, and
 * counted the mask: a helper's audit of session 63).  In a child, whose thread moves;
 * skipped where no v1 cpu cgroup may be made, or with a one-CPU mask. */
static const char *thread_cgroup_dir;

static void *count_in_a_cgroup_of_its_own(void *arg)
{
    (void)arg;
    char file[192], tid[32];
    snprintf(file, sizeof file, "%s/tasks", thread_cgroup_dir);
    snprintf(tid, sizeof tid, "%d", (int)gettid());
    return (void *)(intptr_t)(!write_cgroup_file(file, tid) ? 2 : plait_cpu_count() == 1 ? 0 : 1);
}

TEST(a_thread_in_a_cgroup_of_its_own)
{
    char dir[128], file[192];
    bool v1;
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) < 2) {
        CHECK_SKIP("a one-CPU mask counts 1 in any cgroup");
        return;
    }
    bool made = make_cgroup("cpu", dir, &v1);
    if (!made || !v1) {
        if (made)
            rmdir(dir);
        CHECK_SKIP("no v1 cpu cgroup may be made here");
        return;
    }
    snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir);
    if (!write_cgroup_file(file, "100000")) {
        rmdir(dir);
        CHECK_SKIP("the cgroup takes no CPU quota here");
        return;
    }
    thread_cgroup_dir = dir;
    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        pthread_t th;
        void *moved_count = (void *)3;
        if (pthread_create(&th, NULL, count_in_a_cgroup_of_its_own, NULL) != 0 ||
            pthread_join(th, &moved_count) != 0)
            _exit(3);
        /* the main thread, still in its own cgroup, counts its mask */
        _exit(moved_count ? (int)(intptr_t)moved_count
                          : plait_cpu_count() == CPU_COUNT(&set) ? 0 : 4);
    }
    int status = reap_within(child, 10);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(rmdir(dir), 0);
}

RUN_TESTS(CASE(v2_quota_and_none), CASE(malformed_files_are_no_limit), CASE(v1_cfs_quota),
          CASE(the_mount_reaching_most_ancestors),
          CASE(hybrid_takes_v1_cpu), CASE(container_mount_roots), CASE(escaped_mount_point),
          CASE(count_follows_the_mask), CASE(a_real_cgroup_quota),
          CASE(a_thread_in_a_cgroup_of_its_own))
