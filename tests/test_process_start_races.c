/* test_process_start_races.c — a process start against pid reuse and early signals
 * (each case failed before its fix; review 105).
 *
 * pid_reused_before_the_pidfd_*: a child that the program reaps first (SIGCHLD ignored,
 * or its own waitpid(-1)) may be gone before the manager opens its pidfd, and its id
 * taken by another process meanwhile; the pidfd then names that other process:
 * plait_process_kill() signals it (API.md: "-ESRCH once it has ended: it can never
 * reach a process that reused the id"), and the task waits for its end.  To reuse the
 * id for certain, the case runs in a PID namespace of its own (it is skipped where none
 * can be made) and sets ns_last_pid from the manager thread, at the moment between the
 * fork (plait__shared_forked, plait__shared_child_execd: -Wl,--wrap) and the pidfd.
 *
 * sigterm_at_a_plain_fork_childs_start_kills_it: while SIGTERM is watched, the child of
 * a plain fork() gets its old disposition back in plait's fork handler (API.md: "so a
 * child that runs a function still dies of SIGTERM"); a SIGTERM that reaches the child
 * before that handler has run (its parent kills it as soon as fork returns there) ran
 * plait's handler, whose count the child then dropped as the parent's: the child lived
 * on.  The handler that runs just before (plait__local_atfork, -Wl,--wrap) raises it.
 */

#include "helpers.h"

#include "../src/internal.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>

void __real_plait__shared_forked(unsigned pid, bool program);
void __wrap_plait__shared_forked(unsigned pid, bool program);
void __real_plait__shared_child_execd(unsigned pid);
void __wrap_plait__shared_child_execd(unsigned pid);

static atomic_int squat_armed;
static atomic_int squatter; /* the process that took the ended child's id, or 0 */

/* On the manager thread: wait (1 s at most) for the child to be reaped by the kernel,
 * then make a process with its id (a raw clone: no fork handler runs in it). */
static void squat(pid_t pid, int at)
{
    int armed = at;
    if (!atomic_compare_exchange_strong(&squat_armed, &armed, 0))
        return;
    int64_t deadline = plait_deadline_in(PLAIT_SEC);
    while (kill(pid, 0) == 0 && plait_now() < deadline)
        plait_sleep(PLAIT_SEC / 1000);
    if (kill(pid, 0) == 0 || errno != ESRCH)
        return; /* not reaped (a fixed plait keeps it until its pidfd is open) */
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char text[32];
    int len = snprintf(text, sizeof text, "%d", (int)pid - 1);
    ssize_t w = write(fd, text, (size_t)len);
    close(fd);
    if (w != len)
        return;
    long s = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (s == 0) { /* the manager's copy: let SIGTERM reach it, as any process's would */
        sigset_t none;
        sigemptyset(&none);
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(long));
        for (;;)
            pause();
    }
    if (s > 0)
        atomic_store(&squatter, (int)s);
}

void __wrap_plait__shared_forked(unsigned pid, bool program)
{
    __real_plait__shared_forked(pid, program);
    squat((pid_t)pid, 1);
}

void __wrap_plait__shared_child_execd(unsigned pid)
{
    __real_plait__shared_child_execd(pid);
    squat((pid_t)pid, 2);
}

void __real_plait__local_atfork(int phase);
void __wrap_plait__local_atfork(int phase);
static atomic_int term_at_child_start;

void __wrap_plait__local_atfork(int phase)
{
    __real_plait__local_atfork(phase);
    if (phase == PLAIT__FORK_CHILD && atomic_load(&term_at_child_start))
        raise(SIGTERM); /* as a kill from the parent would, at this moment */
}

static ssize_t answer(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    if (cap < 1)
        return -EINVAL;
    *(char *)out = 42;
    return 1;
}

/* In the namespace, not its init: start the child with SIGCHLD ignored, and look at
 * what plait says of it.  Exit status: bits of what went wrong. */
static int in_namespace(bool program)
{
    signal(SIGCHLD, SIG_IGN); /* the kernel reaps the children */
    /* a program's id is taken once its exec is seen (the fork's wrap would hand its
     * exec-error pipe on to the squatter) */
    atomic_store(&squat_armed, program ? 2 : 1);
    plait_task t;
    char *argv[] = {"true", NULL};
    int r = program ? plait_process_exec(&t, NULL, argv, NULL, NULL)
                    : plait_process_start(&t, answer, NULL, 0, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "  start: %d\n", r);
        return 64;
    }
    int s = atomic_load(&squatter);
    int bits = 0;
    if (s > 0 && s != plait_process_pid(t))
        fprintf(stderr, "  the squatter took %d, not %d\n", s, plait_process_pid(t));
    /* the child ends at once: its task must finish, and a kill then reach nobody */
    int w = plait_wait_any(&t, 1, plait_deadline_in(3 * PLAIT_SEC));
    if (w != 0) {
        fprintf(stderr, "  the task of an ended child does not finish: %d\n", w);
        bits |= 8;
    }
    int k = plait_process_kill(t, SIGTERM);
    if (k != -ESRCH) {
        fprintf(stderr, "  plait_process_kill of an ended child: %d\n", k);
        bits |= 1;
    }
    if (s > 0 && kill(s, 0) != 0) {
        fprintf(stderr, "  the process that reused the id was killed\n");
        bits |= 2;
    }
    if (s > 0)
        kill(s, SIGKILL);
    void *v = NULL;
    int j = plait_join(t, &v, plait_deadline_in(5 * PLAIT_SEC));
    /* a function child that returned still gives its result; a program's status is
     * taken by the kernel: -ECHILD */
    if (program ? j != -ECHILD : (j != 0 || !v || ((plait_bytes *)v)->len != 1 ||
                                  ((plait_bytes *)v)->data[0] != 42)) {
        fprintf(stderr, "  join: %d\n", j);
        bits |= 4;
    }
    free(v);
    if (j == -ETIMEDOUT) {
        plait_cancel(t);
        plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC));
    }
    return bits;
}

/* Run in_namespace in a new PID namespace (as its second process: the first, its init,
 * adopts the squatter); 77 where no namespace can be made. */
static int in_a_pid_namespace(bool program)
{
    others_asleep_before_fork(); /* the first case's signal dispatcher (ASan) */
    pid_t h = fork();
    if (h == 0) {
        if (unshare(CLONE_NEWPID) < 0)
            _exit(77);
        pid_t init = fork();
        if (init == 0) {
            /* should h be killed (a hang), the namespace ends with its init */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(67);
            pid_t t = fork();
            if (t == 0)
                _exit(in_namespace(program));
            int st = 0;
            for (;;) {
                pid_t r = waitpid(-1, &st, 0);
                if (r == t)
                    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                if (r < 0 && errno != EINTR)
                    _exit(65);
            }
        }
        int st = 0;
        if (init < 0 || waitpid(init, &st, 0) != init)
            _exit(66);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    CHECK(h > 0);
    int st = h > 0 ? reap_within(h, 60) : -1;
    CHECK(WIFEXITED(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(pid_reused_before_the_pidfd_function_child)
{
    int r = in_a_pid_namespace(false);
    if (r == 77) {
        CHECK_SKIP("no PID namespace");
        return;
    }
    CHECK_EQ(r, 0);
}

TEST(pid_reused_before_the_pidfd_program)
{
    int r = in_a_pid_namespace(true);
    if (r == 77) {
        CHECK_SKIP("no PID namespace");
        return;
    }
    CHECK_EQ(r, 0);
}

TEST(sigterm_at_a_plain_fork_childs_start_kills_it)
{
    int sig = SIGTERM;
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, &sig, 1), 0);
    others_asleep_before_fork(); /* the dispatcher, just started (ASan) */
    atomic_store(&term_at_child_start, 1);
    pid_t pid = fork();
    if (pid == 0) { /* SIGTERM's default must end it; give it a second */
        int64_t deadline = plait_deadline_in(PLAIT_SEC);
        while (plait_now() < deadline)
            plait_sleep(PLAIT_SEC / 100);
        _exit(0);
    }
    atomic_store(&term_at_child_start, 0);
    CHECK(pid > 0);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st));
    CHECK_EQ(WIFSIGNALED(st) ? WTERMSIG(st) : -WEXITSTATUS(st), SIGTERM);
    /* the parent's watcher saw nothing of it */
    CHECK_EQ(plait_signals_wait(w, plait_now()), -ETIMEDOUT);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

RUN_TESTS(CASE(sigterm_at_a_plain_fork_childs_start_kills_it), CASE(pid_reused_before_the_pidfd_function_child),
          CASE(pid_reused_before_the_pidfd_program))
