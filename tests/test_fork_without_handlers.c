/*
 * test_fork_closed_inherited.c — a child of _Fork(), which runs no fork handler, that
 * closes every descriptor it inherited (close_range, as programs do after a fork) and
 * opens files of its own: plait's first use there must leave those files alone.  plait
 * found out only then that it was in a new process, and closed or put over the
 * numbers its parent's objects had used, by now the child's own files: the process
 * manager's epoll set and eventfd (closed), the signal dispatcher's pipe (dup3 over
 * them), and a plain thread's wake-up eventfd (kept: a wait beside a file always ready
 * spun past its deadline).  Each case forks after the parent used the object, and the
 * child checks that its files still name what it opened (a review's reproducers).
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

enum { OWN_FILES = 12 };

/* The child's own files, at the lowest numbers (where the parent's were). */
static void open_own_files(int fds[OWN_FILES])
{
    for (int i = 0; i < OWN_FILES; i++)
        fds[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
}

/* How many of them no longer name /dev/zero. */
static int own_files_lost(const int fds[OWN_FILES])
{
    int lost = 0;
    for (int i = 0; i < OWN_FILES; i++) {
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t n = fds[i] < 0 ? -1 : readlink(path, target, sizeof target - 1);
        if (n > 0)
            target[n] = '\0';
        if (n <= 0 || strcmp(target, "/dev/zero") != 0) {
            fprintf(stderr, "  the child's descriptor %d: %s\n", fds[i],
                    n <= 0 ? "closed" : target);
            lost++;
        }
    }
    return lost;
}

static ssize_t nothing(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    return 0;
}

static int start_a_process(void)
{
    plait_task t;
    if (plait_process_start(&t, nothing, NULL, 0, NULL, NULL) != 0)
        return 1;
    return plait_join(t, NULL, plait_deadline_in(10 * PLAIT_SEC)) == 0 ? 0 : 2;
}

static int watch_a_signal(void)
{
    int usr1 = SIGUSR1;
    plait_signals *w;
    if (plait_signals_create(&w, &usr1, 1) != 0)
        return 1;
    if (kill(getpid(), SIGUSR1) != 0 ||
        plait_signals_wait(w, plait_deadline_in(10 * PLAIT_SEC)) != SIGUSR1)
        return 2;
    return plait_signals_destroy(w) == 0 ? 0 : 3;
}

/* A plain thread's wait on an empty pipe ends at its deadline. */
static int wait_on_a_pipe(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return 1;
    int r = plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(100 * PLAIT_MS));
    close(p[0]);
    close(p[1]);
    return r == -ETIMEDOUT ? 0 : 2;
}

/* _Fork; the child closes what it inherited, opens its own files, makes its first
 * call, and says whether the call worked (status 1-9) and its files stayed (10). */
static void in_a_child_that_closed_all(int (*first_call)(void))
{
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    fflush(NULL);
    pid_t pid = _Fork();
    if (pid == 0) {
        alarm(20); /* (a call that hangs or spins: the child dies of SIGALRM) */
        if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
            _exit(11);
        int own[OWN_FILES];
        open_own_files(own);
        int r = first_call();
        if (r != 0)
            _exit(r);
        _exit(own_files_lost(own) ? 10 : 0);
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 30);
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), 0);
}

TEST(the_process_manager)
{
#if defined(__SANITIZE_THREAD__)
    /* (the child starts a manager thread whose id may be the parent's manager's, which
     * ThreadSanitizer keeps in its books: "dup thread with used id", as test_process) */
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    CHECK_EQ(start_a_process(), 0); /* the parent's manager runs */
    in_a_child_that_closed_all(start_a_process);
    CHECK_EQ(start_a_process(), 0); /* and is still the parent's */
}

TEST(the_signal_dispatcher)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    CHECK_EQ(watch_a_signal(), 0); /* the parent's dispatcher and pipe */
    int usr1 = SIGUSR1;
    plait_signals *kept; /* a watcher of the parent's at the fork: the child's handler
                          * is plait's, and wrote to the parent's pipe's number */
    CHECK_EQ(plait_signals_create(&kept, &usr1, 1), 0);
    in_a_child_that_closed_all(watch_a_signal);
    CHECK_EQ(plait_signals_wait(kept, plait_now()), -ETIMEDOUT); /* the child's: not here */
    CHECK_EQ(plait_signals_destroy(kept), 0);
    CHECK_EQ(watch_a_signal(), 0);
}

TEST(a_plain_threads_wait)
{
    CHECK_EQ(wait_on_a_pipe(), 0); /* this thread's wake-up eventfd */
    in_a_child_that_closed_all(wait_on_a_pipe);
    CHECK_EQ(wait_on_a_pipe(), 0);
}

RUN_TESTS(CASE(the_process_manager), CASE(the_signal_dispatcher), CASE(a_plain_threads_wait))
