/*
 * cgroup.h — the limits of the process's cgroup (cgroup.c finds the cgroup and walks it
 * and its ancestors; cpus.c reads the CPU limit, cgroup.c the memory room).  Internal:
 * for the library, the `plait` tool (which sizes its runs by the memory room) and the
 * tests, which give made-up trees.
 *
 * Each function takes proc, /proc/self or a made-up one holding "cgroup" and
 * "mountinfo", and prefix, put before every mount point (a made-up tree's root; "" for
 * the real one).
 */
#ifndef PLAIT_CGROUP_H
#define PLAIT_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

/* One cgroup directory being visited by plait__cgroup_least. */
typedef struct plait__cgroup_dir plait__cgroup_dir;

/* What one cgroup directory allows: v2 says which hierarchy's files it has (cgroup v2,
 * or v1's of the controller asked for); LLONG_MAX when it sets no limit. */
typedef long long plait__cgroup_reader(plait__cgroup_dir *dir, bool v2);

/* The least that read_dir finds in the process's cgroup and its ancestors, up to the root
 * of the hierarchy's mount (a parent's limit holds for its children), in cgroup v2 and
 * in v1's hierarchy with v1_controller ("cpu", "memory"); LLONG_MAX for none.  Anything
 * missing or malformed is no limit. */
long long plait__cgroup_least(const char *proc, const char *prefix, const char *v1_controller,
                              plait__cgroup_reader *read_dir);

/* The directory's file name as a decimal number at its start: false if there is none, or
 * no such file. */
bool plait__cgroup_read_number(plait__cgroup_dir *dir, const char *name, long long *value);

/* The directory's file name, NUL-ended in text: its length, or -1. */
ssize_t plait__cgroup_read(plait__cgroup_dir *dir, const char *name, char *text, size_t cap);

/* A decimal number at *s (advanced past it); false if none or too large. */
bool plait__cgroup_number(const char **s, long long *value);

/* The CPU limit (quota over period, rounded up), 0 for none (cpus.c). */
int plait__cgroup_cpu_limit(const char *proc, const char *prefix);

/* The bytes the process may still take under its cgroups' memory limits: the least of
 * limit minus usage (v2's memory.max and memory.current, v1's memory.limit_in_bytes and
 * memory.usage_in_bytes), 0 where usage is at the limit; -1 for no limit. */
long long plait__cgroup_memory_room(const char *proc, const char *prefix);

#endif
