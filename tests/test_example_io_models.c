/*
 * test_example_io_models.c — examples/io_models.c (a stop of `plait tour`) where the
 * kernel's peak resident memory cannot be reset (/proc/self/clear_refs refused: a
 * sandbox, a kernel without it): the coroutines' and threads' memory is said not to be
 * measured.  It printed VmHWM less what was resident, VmHWM being then the peak since
 * the process started, an earlier example's, as the clients' cost (a tools audit).
 * open() is wrapped (-Wl,--wrap=open, tests/CMakeLists.txt) to refuse that file.
 */
#define PLAIT_TOUR /* the example's own main left out */
#include "../examples/io_models.c"

#include "check.h"

#include <stdarg.h>

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if (strcmp(path, "/proc/self/clear_refs") == 0) {
        errno = EACCES;
        return -1;
    }
    return __real_open(path, flags, mode);
}

TEST(memory_not_measured_where_the_peak_cannot_be_reset)
{
    char path[] = "/tmp/plait-io-models-XXXXXX";
    int out = mkstemp(path);
    CHECK(out >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    CHECK_EQ(dup2(out, STDOUT_FILENO), STDOUT_FILENO);
    int r = example_io_models();
    fflush(stdout);
    CHECK_EQ(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    CHECK_EQ(r, 0);
    static char said[8192];
    ssize_t n = pread(out, said, sizeof said - 1, 0);
    close(out);
    CHECK(n > 0);
    said[n > 0 ? n : 0] = '\0';
    const char *co = strstr(said, "  coroutines "), *th = strstr(said, "  threads ");
    CHECK(co && th);
    CHECK(co && strstr(co, "memory not measured") && strstr(co, "memory not measured") < th);
    CHECK(th && strstr(th, "memory not measured") != NULL);
    if (!co || !strstr(co, "memory not measured"))
        fprintf(stderr, "  the example said:\n%s", said);
}

RUN_TESTS(CASE(memory_not_measured_where_the_peak_cannot_be_reset))
