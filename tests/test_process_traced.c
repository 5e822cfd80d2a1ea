/* test_process_traced.c — a child of plait's that another process traces (a debugger,
 * strace) ends.  Its pidfd is readable at once, but its status is the tracer's until
 * the tracer takes it (or lets it go): the manager must wait without spinning
 * meanwhile, and complete the child's task once the status is the parent's
 * (process.c: plait__manager_not_yet).  Failed first: watched level-triggered, the
 * readable pidfd with nothing to reap was reported again at once, and the manager
 * thread ("plait-procs") spun at 100 % CPU for as long as the tracer held the status.
 *
 * The same for a process pool's worker that dies in a task, traced.
 *
 * The tracer is a process the test forks, which seizes the child (the child allows it:
 * PR_SET_PTRACER, for Yama's ptrace_scope 1); skipped where the system refuses the
 * trace (ptrace_scope 2 or 3, a sandbox). */
#include "helpers.h"

#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <unistd.h>

/* How long the tracer holds the status while the manager's CPU time is looked at, and
 * the most that time may grow by meanwhile (clock ticks, 10 ms each: spinning took
 * about all of it). */
#define HELD_NS (400 * PLAIT_MS)
#define MOST_TICKS 10

/* The child: let any process trace it, wait until the tracer says it has, end. */
static ssize_t traced_child(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len, (void)out, (void)out_cap;
    int go = *(const int *)arg;
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    char c;
    return read(go, &c, 1) == 1 ? 0 : -EIO;
}

/* The tracer: seize pid, say how that went (0 or the errno) on report, let the child
 * go on go; when told on hold, take the child's end, and exit. */
static _Noreturn void tracer(pid_t pid, int report, int go, int hold)
{
    int err = ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0 ? 0 : errno;
    if (write(report, &err, sizeof err) != (ssize_t)sizeof err || err)
        _exit(1);
    char c = 0, h;
    if (write(go, &c, 1) != 1 || read(hold, &h, 1) != 1)
        _exit(2);
    int status;
    while (waitpid(pid, &status, __WALL) == pid && !WIFEXITED(status) && !WIFSIGNALED(status))
        ptrace(PTRACE_CONT, pid, NULL, NULL);
    _exit(0);
}

/* The CPU time (utime + stime, clock ticks) of this process's thread tid. */
static long thread_ticks(pid_t tid)
{
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    first_line_of(path, stat, sizeof stat);
    const char *p = strrchr(stat, ')'); /* "pid (comm) state ppid ... utime stime" */
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (long)(utime + stime);
}

/* Whether process pid is a zombie (it has ended, not yet reaped). */
static bool a_zombie(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    first_line_of(path, stat, sizeof stat);
    const char *p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

/* Trace child (which allowed it and waits on go[0]) from a forked tracer, and check
 * that its end, its status held by the tracer, leaves the manager idle; then have the
 * tracer take the status.  false where the system refuses the trace. */
static bool traced_end_leaves_the_manager_idle(pid_t child, const int go[2])
{
    int report[2], hold[2];
    CHECK_EQ(pipe2(report, O_CLOEXEC), 0);
    CHECK_EQ(pipe2(hold, O_CLOEXEC), 0);
    pid_t tr = fork();
    CHECK(tr >= 0);
    if (tr == 0)
        tracer(child, report[1], go[1], hold[0]);
    int err = -1;
    CHECK_EQ(read(report[0], &err, sizeof err), (ssize_t)sizeof err);
    if (err != 0) {
        (void)reap_within(tr, 10); /* it exits at once, having said why */
    } else {
        /* the child has ended; its status is the tracer's */
        for (int64_t give_up = SOON(); !a_zombie(child) && plait_now() < give_up;)
            sched_yield();
        CHECK(a_zombie(child));
        pid_t manager = thread_named("plait-procs");
        CHECK(manager > 0);
        long before = thread_ticks(manager);
        struct timespec held = {0, HELD_NS};
        nanosleep(&held, NULL); /* the time measured */
        long after = thread_ticks(manager);
        CHECK(before >= 0 && after >= before);
        if (after - before > MOST_TICKS)
            fprintf(stderr, "  the manager ran %ld ticks while the status was held\n",
                    after - before);
        CHECK(after - before <= MOST_TICKS);
        CHECK(a_zombie(child)); /* not the parent's to take yet */
        /* the tracer takes the child's end: then it is the parent's */
        CHECK_EQ(write(hold[1], "", 1), 1);
        CHECK_EQ(reap_within(tr, 10), 0);
    }
    for (int i = 0; i < 2; i++) {
        close(report[i]);
        close(hold[i]);
    }
    return err == 0;
}

TEST(a_traced_childs_end_leaves_the_manager_idle)
{
    int go[2];
    CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, traced_child, &go[0], sizeof go[0], NULL, NULL), 0);
    pid_t child = plait_process_pid(t);
    CHECK(child > 0);
    if (traced_end_leaves_the_manager_idle(child, go)) {
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    } else {
        CHECK_EQ(plait_process_kill(t, SIGKILL), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_KILLED(SIGKILL));
        CHECK_SKIP("the system refuses to let a process trace another (ptrace)");
    }
    close(go[0]);
    close(go[1]);
}

/* A process pool's worker, traced, dies in a task: the same wait without spinning
 * (procpool.c's worker_exited), then the task's failure and a replacement. */
static int ready[2], go_on[2];

static ssize_t allows_a_tracer_then_dies(const void *arg, size_t arg_len, void *out,
                                         size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    char c;
    if (write(ready[1], "", 1) != 1 || read(go_on[0], &c, 1) != 1)
        return -EIO;
    _exit(7);
}

static ssize_t says_its_pid(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len;
    pid_t pid = getpid();
    if (out_cap < sizeof pid)
        return -EMSGSIZE;
    memcpy(out, &pid, sizeof pid);
    return (ssize_t)sizeof pid;
}

TEST(a_traced_pool_workers_end_leaves_the_manager_idle)
{
    CHECK_EQ(pipe2(ready, O_CLOEXEC), 0); /* before the workers are forked */
    CHECK_EQ(pipe2(go_on, O_CLOEXEC), 0);
    plait_procpool *pool;
    plait_procpool_options options = {.processes = 1};
    CHECK_EQ(plait_procpool_create(&pool, &options), 0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, allows_a_tracer_then_dies, NULL, 0), 0);
    char c;
    CHECK_EQ(read(ready[0], &c, 1), 1);
    int worker = 0;
    CHECK_EQ(plait_procpool_pids(pool, &worker, 1), 1);
    bool traced = traced_end_leaves_the_manager_idle(worker, go_on);
    if (!traced)
        CHECK_EQ(kill(worker, SIGKILL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), traced ? PLAIT_EXITED(7) : PLAIT_KILLED(SIGKILL));
    /* its replacement runs the next task */
    plait_task next;
    void *res = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &next, says_its_pid, NULL, 0), 0);
    CHECK_EQ(plait_join(next, &res, SOON()), 0);
    plait_bytes *b = res;
    pid_t pid = 0;
    CHECK(b && b->len == sizeof pid);
    if (b && b->len == sizeof pid)
        memcpy(&pid, b->data, sizeof pid);
    free(res);
    CHECK(pid > 0 && pid != worker);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    if (!traced)
        CHECK_SKIP("the system refuses to let a process trace another (ptrace)");
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(go_on[i]);
    }
}

RUN_TESTS(CASE(a_traced_childs_end_leaves_the_manager_idle),
          CASE(a_traced_pool_workers_end_leaves_the_manager_idle))
