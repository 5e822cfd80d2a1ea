/* fail_pipes.c — an LD_PRELOAD library for the tests: pipe() and pipe2() fail with
 * EMFILE, as when a process has no descriptor left for a pipe.  In `plait compare` only
 * the pipe figure of the process message rows makes one (tests/test_tool_edges.sh). */
#include <errno.h>
#include <unistd.h>

int pipe(int fds[2])
{
    (void)fds;
    errno = EMFILE;
    return -1;
}

int pipe2(int fds[2], int flags)
{
    (void)fds, (void)flags;
    errno = EMFILE;
    return -1;
}
