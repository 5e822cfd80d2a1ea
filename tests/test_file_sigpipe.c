/* test_file_sigpipe.c — plait_file_write on a pipe whose reader has gone is -EPIPE,
 * from a thread and from a coroutine (it killed the process with SIGPIPE: the file
 * calls did not ignore it first, as plait_write does; review 116).
 *
 * The SIGPIPE cases run first, each in a forked child that puts SIGPIPE at its default
 * (whatever the test runner left it at): plait has not ignored it yet in this program,
 * which has made no plait pipe or socket before them. */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- plait_file_write on a pipe whose reader has gone ----
 *
 * The file calls take pipes and sockets ("not refused"), their errors are -errno, and
 * docs/API.md: "A write to a pipe or socket whose reader has gone returns -EPIPE: once
 * plait has made a pipe or a socket, or written one, it ignores SIGPIPE".  A
 * plait_file_write on such a pipe, plait's first write to one, killed the process with
 * SIGPIPE (from a thread: in place; from a coroutine: on a pool worker). */

static int write_to_a_reader_gone(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 10;
    close(p[0]);
    ssize_t r = plait_file_write(p[1], "x", 1, -1);
    close(p[1]);
    return r == -EPIPE ? 0 : 11;
}

static void *coroutine_writes(void *arg)
{
    (void)arg;
    return ARG(write_to_a_reader_gone());
}

static int from_a_coroutine(void)
{
    void *r = ARG(20);
    int rc = plait_run(coroutine_writes, NULL, &r);
    return rc != 0 ? 21 : INT(r);
}

/* The child's exit status, or -signal that killed it. */
static int child_outcome(int (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        _exit(sigaction(SIGPIPE, &dfl, NULL) == 0 ? fn() : 30);
    }
    CHECK(pid > 0);
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

TEST(file_write_to_a_pipe_whose_reader_has_gone_from_a_thread)
{
    CHECK_EQ(child_outcome(write_to_a_reader_gone), 0);
}

TEST(file_write_to_a_pipe_whose_reader_has_gone_from_a_coroutine)
{
    CHECK_EQ(child_outcome(from_a_coroutine), 0);
}

RUN_TESTS(CASE(file_write_to_a_pipe_whose_reader_has_gone_from_a_thread),
          CASE(file_write_to_a_pipe_whose_reader_has_gone_from_a_coroutine))
