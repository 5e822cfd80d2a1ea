/*
 * test_review_core.c — the coroutine core and the scheduler's life, attacked at its
 * edges (review "core"): the slow-coroutine report of a coroutine on the smallest
 * stack, calls from the wrong context, handles consumed twice, groups and task-local
 * values at their limits, sleeps with deadlines at and before now.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdatomic.h>

/* ---- the slow-coroutine report of a coroutine on a PLAIT_STACK_MIN stack ----
 *
 * The report that names a coroutine which held its thread past the threshold was
 * printed (fprintf to stderr: kilobytes of stack in glibc) from the switch path, on
 * the stack of the coroutine that stalled.  A coroutine spawned with PLAIT_STACK_MIN,
 * which plait.h allows, then overflowed its stack in plait's own code: the program
 * stopped with "stack overflow", or wrote over the slot below (another coroutine's
 * stack) unseen.  The run happens in a child process, so that a crash is a failure of
 * this case and not the end of the binary.  The stalled coroutine spins until the
 * watchdog's first warning ("has run N ms") has reached the pipe that stands for
 * stderr, then long enough for the watchdog to mark the stall (it does so right after
 * that write), then yields: the switch away must report it. */

static int slow_pipe_rd = -1;

static bool slow_warning_seen(char *buf, size_t cap, size_t *len)
{
    ssize_t n = read(slow_pipe_rd, buf + *len, cap - 1 - *len);
    if (n > 0)
        *len += (size_t)n;
    buf[*len] = '\0';
    return strstr(buf, "has run") != NULL;
}

static char slow_buf[1 << 15];
static size_t slow_len;

static void *tiny_hog(void *arg)
{
    (void)arg;
    int64_t give_up = plait_now() + 10 * PLAIT_SEC;
    while (!slow_warning_seen(slow_buf, sizeof slow_buf, &slow_len) && plait_now() < give_up)
        ;
    int64_t until = plait_now() + 300 * PLAIT_MS; /* the watchdog marks the stall */
    while (plait_now() < until)
        ;
    (void)plait_yield();
    return NULL;
}

static void *yields_a_while(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        (void)plait_yield();
    return NULL;
}

static void *tiny_slow_main(void *arg)
{
    (void)arg;
    plait_task t[4];
    for (int i = 0; i < 4; i++) {
        plait_spawn_options o = {.name = i == 1 ? "tiny-hog" : "tiny",
                                 .stack_size = CHECK_SMALL_STACK};
        if (plait_spawn_opts(&t[i], i == 1 ? tiny_hog : yields_a_while, NULL, &o) != 0)
            return PLAIT_FAIL(-EIO);
    }
    for (int i = 0; i < 4; i++)
        if (plait_join(t[i], NULL, SOON()) != 0)
            return PLAIT_FAIL(-EIO);
    return NULL;
}

TEST(slow_report_of_a_coroutine_on_the_smallest_stack)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fds[2];
        if (pipe(fds) != 0)
            _exit(10);
        slow_pipe_rd = fds[0];
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        dup2(fds[1], STDERR_FILENO);
        /* read and strstr are bound now: the lazy binding of a function's first call
         * saves the vector registers on the stack (kilobytes with AVX-512), more than
         * the hog's stack holds */
        (void)slow_warning_seen(slow_buf, sizeof slow_buf, &slow_len);
        plait_set_slow_warning(20 * PLAIT_MS);
        int r = plait_run(tiny_slow_main, NULL, NULL);
        plait_set_slow_warning(0);
        fflush(stderr);
        for (ssize_t n = 1; n > 0 && slow_len < sizeof slow_buf - 1;) {
            n = read(slow_pipe_rd, slow_buf + slow_len, sizeof slow_buf - 1 - slow_len);
            slow_len += n > 0 ? (size_t)n : 0;
        }
        slow_buf[slow_len] = '\0';
        bool named = strstr(slow_buf, "coroutine 'tiny-hog'") != NULL;
        _exit(r != 0 ? 11 : !named ? 12 : 0);
    }
    int status = reap_within(pid, 30);
    if (!WIFEXITED(status))
        fprintf(stderr, "  the child was killed by signal %d\n",
                WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

RUN_TESTS(CASE(slow_report_of_a_coroutine_on_the_smallest_stack))
