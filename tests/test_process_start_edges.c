/* test_process_start_edges.c — checks of the process start's "go" pipe (process.c) and
 * the forking thread's signal mask (fork.c).  These checks passed on the code reviewed
 * (review 113 found no defect); they stay as regression cases.
 *
 * start_failures_leak_no_descriptor: RLIMIT_NOFILE leaves room for 0-5 descriptors, so
 * each of the start's pipe2 calls and its pidfd_open fail in turn (-EMFILE); nothing
 * stays open, and no child is left to reap.
 * starts_with_sigchld_ignored: the kernel reaps the children; a failed exec is still
 * reported at once, a function child still gives its result.
 * fork_gives_the_mask_back_in_parent_child_and_failure: the mask prepare() blocks is
 * given back in the parent and the child, and after a fork that fails (a seccomp
 * filter refuses clone in a throwaway process).
 * signal_during_fork_handlers_reaches_the_watcher: a watched signal raised inside the
 * handlers (-Wl,--wrap=plait__local_atfork) in prepare or parent is delivered after
 * the last one; raised in the child's, it meets the child's old disposition. */
#include "helpers.h"

#include "../src/internal.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "refuse_syscall.h"

static ssize_t answer(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)cap;
    *(char *)out = 1;
    return 1;
}

/* Fill every free descriptor number below the highest: the next one is `top`. */
static int fill_holes(int *opened, int max)
{
    int n = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        opened[n++] = fd;
        /* is every number below fd taken? */
        bool holes = false;
        for (int i = 0; i < fd && !holes; i++)
            if (fcntl(i, F_GETFD) < 0)
                holes = true;
        if (!holes || n == max)
            break;
    }
    return n;
}

static int start_with_room(bool program, int room)
{
    int opened[4096];
    int n = fill_holes(opened, 4096);
    int top = opened[n - 1];
    close(opened[--n]); /* next descriptor: top */
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(top + room);
    setrlimit(RLIMIT_NOFILE, &lim);
    plait_task t;
    char *argv[] = {"true", NULL};
    int r = program ? plait_process_exec(&t, NULL, argv, NULL, NULL)
                    : plait_process_start(&t, answer, NULL, 0, NULL, NULL);
    setrlimit(RLIMIT_NOFILE, &old);
    if (r == 0)
        plait_join(t, NULL, SOON());
    for (int i = 0; i < n; i++)
        close(opened[i]);
    return r;
}

TEST(start_failures_leak_no_descriptor)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, answer, NULL, 0, NULL, NULL), 0); /* the manager */
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    int before = count_fds();
    for (int room = 0; room < 6; room++) {
        int a = start_with_room(false, room);
        int b = start_with_room(true, room);
        fprintf(stderr, "  room %d: function %d, program %d, fds %d (before %d)\n", room, a, b,
                count_fds(), before);
        CHECK_EQ(count_fds(), before);
    }
    /* no child left unreaped */
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
}

static int ignored_sigchld_child(void)
{
    signal(SIGCHLD, SIG_IGN);
    int bits = 0;
    for (int i = 0; i < 50; i++) {
        plait_task t;
        char *bad[] = {"/nonexistent/program", NULL};
        int64_t start = plait_now();
        int r = plait_process_exec(&t, NULL, bad, NULL, NULL);
        if (r != -ENOENT) {
            fprintf(stderr, "  exec of a missing program: %d\n", r);
            bits |= 1;
        }
        if (plait_now() - start > PLAIT_SEC)
            bits |= 2;
        char *ok[] = {"true", NULL};
        r = plait_process_exec(&t, NULL, ok, NULL, NULL);
        if (r == 0) {
            r = plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC));
            if (r != 0 && r != -ECHILD) {
                fprintf(stderr, "  join of true: %d\n", r);
                bits |= 4;
            }
        } else {
            bits |= 8;
        }
        r = plait_process_start(&t, answer, NULL, 0, NULL, NULL);
        if (r == 0) {
            void *v = NULL;
            r = plait_join(t, &v, plait_deadline_in(5 * PLAIT_SEC));
            if (r != 0) {
                fprintf(stderr, "  join of a function child: %d\n", r);
                bits |= 16;
            }
            free(v);
        } else {
            bits |= 32;
        }
    }
    return bits;
}

TEST(starts_with_sigchld_ignored)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(ignored_sigchld_child());
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

/* ---- fork.c: the forking thread's mask ---- */

void __real_plait__local_atfork(int phase);
void __wrap_plait__local_atfork(int phase);
static atomic_int raise_in_phase = -1;

void __wrap_plait__local_atfork(int phase)
{
    __real_plait__local_atfork(phase);
    if (phase == atomic_load(&raise_in_phase))
        raise(SIGUSR1);
}

static bool same_mask(const sigset_t *a)
{
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    for (int s = 1; s < 65; s++)
        if (sigismember(a, s) != sigismember(&now, s))
            return false;
    return true;
}

static int mask_child(void)
{
    plait__fork_init();
    sigset_t mine;
    sigemptyset(&mine);
    sigaddset(&mine, SIGUSR2);
    sigaddset(&mine, SIGRTMIN + 3);
    pthread_sigmask(SIG_SETMASK, &mine, NULL);
    int bits = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(same_mask(&mine) ? 0 : 1);
    if (!same_mask(&mine))
        bits |= 2;
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bits |= 4;
    if (bits) /* (not lost to a skip below: the cases above need no seccomp) */
        return bits;
    if (refuse_syscall(SYS_clone) < 0 || refuse_syscall(SYS_clone3) < 0)
        return 77;
    pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    else if (!same_mask(&mine))
        bits |= 8; /* a failed fork left signals blocked */
    if (pid > 0)
        bits |= 16;
    return bits;
}

TEST(fork_gives_the_mask_back_in_parent_child_and_failure)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(mask_child());
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        CHECK_SKIP("no seccomp filter");
        return;
    }
    CHECK_EQ(WEXITSTATUS(st), 0);
}

/* A watched signal that comes to the forking thread during the handlers (blocked) is
 * delivered once the parent's last handler has run: the watcher sees it. */
TEST(signal_during_fork_handlers_reaches_the_watcher)
{
    int sig = SIGUSR1;
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, &sig, 1), 0);
    for (int phase = PLAIT__FORK_PREPARE; phase <= PLAIT__FORK_CHILD; phase++) {
        atomic_store(&raise_in_phase, phase);
        pid_t pid = fork();
        if (pid == 0) /* the child's own: its old disposition (the default) ends it */
            _exit(phase == PLAIT__FORK_CHILD ? 3 : 0);
        atomic_store(&raise_in_phase, -1);
        int st = 0;
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        if (phase == PLAIT__FORK_CHILD) {
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);
            CHECK_EQ(plait_signals_wait(w, plait_now()), -ETIMEDOUT);
        } else {
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1);
        }
    }
    CHECK_EQ(plait_signals_destroy(w), 0);
}

RUN_TESTS(CASE(start_failures_leak_no_descriptor), CASE(starts_with_sigchld_ignored),
          CASE(fork_gives_the_mask_back_in_parent_child_and_failure),
          CASE(signal_during_fork_handlers_reaches_the_watcher))
