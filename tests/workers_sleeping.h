/* workers_sleeping.h — whether a pool's workers have gone to sleep, read from /proc:
 * how a test waits for that state without sleeping and hoping (test_pool.c,
 * test_pool_sandboxed.c). */
#ifndef PLAIT_TESTS_WORKERS_SLEEPING_H
#define PLAIT_TESTS_WORKERS_SLEEPING_H

#include "helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* How many threads named "<prefix>-..." sleep in the kernel (state S: a futex wait)
 * at this moment; a pool's worker does so only when it has parked. */
static inline int workers_sleeping(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    size_t len = strlen(prefix);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "", stat[256] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        if (strncmp(comm, prefix, len) != 0 || comm[len] != '-')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        if ((f = fopen(path, "r"))) {
            if (!fgets(stat, sizeof stat, f))
                stat[0] = 0;
            fclose(f);
        }
        const char *end = strrchr(stat, ')'); /* the state follows the name */
        n += end && end[1] == ' ' && end[2] == 'S';
    }
    if (d)
        closedir(d);
    return n;
}

#endif
