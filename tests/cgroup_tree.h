/*
 * cgroup_tree.h — made-up trees for the cgroup limits (src/cgroup.h: the CPU limit, the
 * memory room): a /proc with its cgroup and mountinfo files, and cgroup files under the
 * same root (the prefix the functions put before every mount point), in /tmp.  For
 * test_cpu_count.c, test_cgroup_memory.c and test_pthread_cancel_and_cgroups.c.
 */
#ifndef PLAIT_TEST_CGROUP_TREE_H
#define PLAIT_TEST_CGROUP_TREE_H

#include "helpers.h"

#include "../src/cgroup.h"
#include "../src/internal.h"

#include <fcntl.h>
#include <sys/stat.h>

static char tree[64];

static inline void make_dirs(char *path)
{
    for (char *p = path + strlen(tree) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
}

/* Write len bytes of text into tree/rel, making the directories on the way. */
static inline void put_n(const char *rel, const char *text, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    make_dirs(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static inline void put(const char *rel, const char *text) { put_n(rel, text, strlen(text)); }

static inline void put_fifo(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    make_dirs(path);
    unlink(path);
    CHECK_EQ(mkfifo(path, 0600), 0);
}

static inline void put_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/x", tree, rel);
    make_dirs(path);
}

static inline void put_link(const char *rel, const char *target)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    make_dirs(path);
    unlink(path);
    CHECK_EQ(symlink(target, path), 0);
}

static inline void fresh_tree(void)
{
    static int n;
    snprintf(tree, sizeof tree, "/tmp/plait_cgroup_tree_%d_%d", (int)getpid(), n++);
    CHECK_EQ(mkdir(tree, 0700), 0);
}

static inline int limit(void)
{
    char proc[128];
    snprintf(proc, sizeof proc, "%s/proc", tree);
    return plait__cgroup_cpu_limit(proc, tree);
}

static inline long long memory_room(void)
{
    char proc[128];
    snprintf(proc, sizeof proc, "%s/proc", tree);
    return plait__cgroup_memory_room(proc, tree);
}

static inline void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tree);
    CHECK_EQ(system(cmd), 0);
}

#define V2_MOUNT "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n"
#define V1_MOUNT "33 25 0:29 / /sys/fs/cgroup/cpu rw shared:9 - cgroup cgroup rw,cpu\n"

#endif
