/* test_process_exec_waits.c — a program whose exec takes long holds up its own start
 * only, not the process manager (process.c: exec_decided); and a child forked to run a
 * program is no side of a process-shared queue, however its exec ends.
 *
 * The exec is held for as long as the test likes by a write lease (fcntl F_SETLEASE)
 * on the program's file: the child's execve opens the file, which breaks the lease,
 * and the open waits until the lease's holder lets it go (or the kernel's
 * lease-break-time, 45 s by default, passes).  Meanwhile the manager must go on:
 * another function child and another program start and end, a program that does not
 * exist is refused at once.  Before, the manager read the held exec's pipe itself and
 * every other start waited behind it.
 *
 * A keeper thread lets the lease go when the test says so, or after KEEP_AT_MOST: a
 * manager that is held up makes the test fail, not hang.
 *
 * others_go_on_while_a_thread_s_exec_waits: the held exec started from a plain thread.
 * others_go_on_while_a_coroutine_s_exec_waits: from a coroutine; the other starts are
 * made by another coroutine of the same scheduler.
 * an_exec_whose_decision_cannot_be_watched_is_not_left_running: in a throwaway
 * process whose epoll_ctl fails (a seccomp filter), after the manager has started, an
 * exec answers that error and leaves no child behind.
 * a_failed_exec_ends_no_side: a sender alone on a queue starts a program that does
 * not exist; its sends go on.  (Failed first: the child, entered in the queue's table
 * as a holder that could take either side, was reported dead, and the receivers' side
 * ended: -EPIPE.)
 * a_program_is_no_side_when_its_exec_report_waits: as above with a program that runs,
 * while another sender is stopped holding the queue's table of holders (the exec's
 * report could not enter the table then, and left the child in it as undecided, whose
 * death, purged later, ended the receivers' side: a send that waited for room got
 * -EPIPE instead of -ETIMEDOUT; session 53's review). */
#include "helpers.h"

#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "refuse_syscall.h"

#include "../src/internal.h"

#define KEEP_AT_MOST (20 * PLAIT_SEC)

typedef struct held_program {
    char dir[64];
    char path[96];
    int lease_fd;           /* holds a write lease on path */
    plait_event *let_go;    /* set: the keeper lets the lease go */
    atomic_bool kept_too_long;
    pthread_t keeper;
} held_program;

/* A copy of /bin/true in a new directory, executable. */
static bool copy_true(held_program *h)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(h->dir, sizeof h->dir, "%s/plait-exec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof h->dir || !mkdtemp(h->dir))
        return false;
    snprintf(h->path, sizeof h->path, "%s/true", h->dir);
    int in = open("/bin/true", O_RDONLY | O_CLOEXEC);
    int out = open(h->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    bool ok = in >= 0 && out >= 0;
    struct stat st;
    if (ok && fstat(in, &st) == 0) {
        off_t at = 0;
        while (ok && at < st.st_size)
            ok = sendfile(out, in, &at, (size_t)(st.st_size - at)) > 0;
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return ok;
}

static void *keeper_body(void *arg)
{
    held_program *h = arg;
    if (plait_event_wait(h->let_go, plait_deadline_in(KEEP_AT_MOST)) == -ETIMEDOUT)
        atomic_store(&h->kept_too_long, true);
    CHECK_EQ(fcntl(h->lease_fd, F_SETLEASE, F_UNLCK), 0);
    return NULL;
}

/* The program, with a write lease on it and its keeper started; false (and a skip) when
 * this file system gives no lease. */
static bool hold_program(held_program *h)
{
    memset(h, 0, sizeof *h);
    CHECK(copy_true(h));
    /* the lease's break is told by SIGIO, whose default ends the process */
    signal(SIGIO, SIG_IGN);
    h->lease_fd = open(h->path, O_RDONLY | O_CLOEXEC);
    CHECK(h->lease_fd >= 0);
    if (fcntl(h->lease_fd, F_SETLEASE, F_WRLCK) < 0) {
        int e = errno;
        close(h->lease_fd);
        unlink(h->path);
        rmdir(h->dir);
        CHECK(e == EINVAL || e == EAGAIN || e == EACCES);
        CHECK_SKIP("no write lease on a file in the temporary directory");
        return false;
    }
    CHECK_EQ(plait_event_create(&h->let_go), 0);
    thread_start(&h->keeper, keeper_body, h);
    return true;
}

/* Until the child's exec has broken the lease (the kernel then reports the lease it is
 * being brought down to, not F_WRLCK): true, or false after a deadline. */
static bool exec_is_held(const held_program *h)
{
    int64_t deadline = SOON();
    while (fcntl(h->lease_fd, F_GETLEASE) == F_WRLCK) {
        if (plait_now() > deadline)
            return false;
        plait_sleep(PLAIT_MS);
    }
    return true;
}

static void let_program_go(held_program *h)
{
    CHECK_EQ(plait_event_set(h->let_go), 0);
    thread_join(h->keeper);
    CHECK(!atomic_load(&h->kept_too_long));
    CHECK_EQ(plait_event_destroy(h->let_go), 0);
    close(h->lease_fd);
    CHECK_EQ(unlink(h->path), 0);
    CHECK_EQ(rmdir(h->dir), 0);
}

typedef struct held_start {
    held_program *program;
    atomic_bool returned;
    int started;
    void *outcome;
    int joined;
} held_start;

/* Start the held program and join it. */
static void *start_held(void *arg)
{
    held_start *s = arg;
    char *argv[] = {"true", NULL};
    plait_task t;
    s->started = plait_process_exec(&t, s->program->path, argv, NULL, NULL);
    atomic_store(&s->returned, true);
    if (s->started == 0)
        s->joined = plait_join(t, &s->outcome, SOON());
    return NULL;
}

static ssize_t answer(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)cap;
    *(char *)out = 42;
    return 1;
}

/* While the held start waits: a function child, a program that runs and one that does
 * not exist, each started and ended (bounded by the keeper). */
static void others_start_and_end(held_start *held)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, answer, NULL, 0, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v && ((plait_bytes *)v)->len == 1 && ((plait_bytes *)v)->data[0] == 42);
    free(v);

    char *argv[] = {"true", NULL};
    CHECK_EQ(plait_process_exec(&t, "/bin/true", argv, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_process_exec(&t, "/nonexistent/plait-no-such-program", argv, NULL, NULL),
             -ENOENT);
    /* all that while the held exec was still waiting */
    CHECK(!atomic_load(&held->returned));
}

static void check_held_start(held_start *s)
{
    CHECK_EQ(s->started, 0);
    CHECK_EQ(s->joined, 0);
    CHECK(s->outcome == NULL);
}

TEST(others_go_on_while_a_thread_s_exec_waits)
{
    held_program h;
    if (!hold_program(&h))
        return;
    held_start s = {.program = &h};
    pthread_t starter;
    thread_start(&starter, start_held, &s);
    CHECK(exec_is_held(&h));
    others_start_and_end(&s);
    let_program_go(&h);
    thread_join(starter);
    check_held_start(&s);
}

static void *coroutine_main(void *arg)
{
    held_start *s = arg;
    plait_task starter;
    CHECK_EQ(plait_spawn(&starter, start_held, s), 0);
    CHECK(exec_is_held(s->program));
    others_start_and_end(s);
    let_program_go(s->program);
    CHECK_EQ(plait_join(starter, NULL, SOON()), 0);
    return NULL;
}

TEST(others_go_on_while_a_coroutine_s_exec_waits)
{
    held_program h;
    if (!hold_program(&h))
        return;
    held_start s = {.program = &h};
    check_run(coroutine_main, &s);
    check_held_start(&s);
}

TEST(an_exec_whose_decision_cannot_be_watched_is_not_left_running)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        plait_task t;
        if (plait_process_start(&t, answer, NULL, 0, NULL, NULL) != 0 ||
            plait_join(t, NULL, SOON()) != 0) /* the manager runs */
            _exit(10);
        if (refuse_syscall_in_every_thread(SYS_epoll_ctl) < 0)
            _exit(11);
        char *argv[] = {"true", NULL};
        if (plait_process_exec(&t, "/bin/true", argv, NULL, NULL) != -ENOSYS)
            _exit(12);
        /* the child forked for it was killed and reaped */
        if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
            _exit(13);
        _exit(0);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

TEST(a_failed_exec_ends_no_side)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    CHECK_EQ(plait_queue_send(q, "a", 1, SOON()), 0); /* this process: a sender only */
    char *argv[] = {"nothing", NULL};
    plait_task t;
    CHECK_EQ(plait_process_exec(&t, "/nonexistent/plait-no-such-program", argv, NULL, NULL),
             -ENOENT);
    CHECK_EQ(plait_queue_send(q, "b", 1, SOON()), 0);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A child of a plain fork() that sends once (a sender), then takes the queue's table of
 * holders' lock and stops with it; its pid. */
static pid_t sender_stopped_with_the_table(plait_queue *q)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (plait_queue_send(q, "h", 1, plait_deadline_in(5 * PLAIT_SEC)) != 0 ||
            !plait__plock_trylock(((plait__shared_obj *)q)->map))
            _exit(1);
        raise(SIGSTOP);
        plait__plock_unlock(((plait__shared_obj *)q)->map);
        _exit(0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
    CHECK(WIFSTOPPED(status));
    return pid;
}

TEST(a_program_is_no_side_when_its_exec_report_waits)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    CHECK_EQ(plait_queue_send(q, "a", 1, SOON()), 0); /* this process: a sender only */
    held_program h;
    if (!hold_program(&h)) {
        CHECK_EQ(plait_queue_destroy(q), 0);
        return;
    }
    held_start s = {.program = &h};
    pthread_t starter;
    thread_start(&starter, start_held, &s); /* its fork is told to the queue now */
    CHECK(exec_is_held(&h));
    pid_t holder = sender_stopped_with_the_table(q);
    let_program_go(&h); /* its exec, then its end, are told while the table is held */
    thread_join(starter);
    check_held_start(&s);
    int status = 0;
    CHECK_EQ(kill(holder, SIGCONT), 0);
    CHECK_EQ(waitpid(holder, &status, 0), holder); /* reaped here: a death nobody tells */
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the queue holds "a" and "h": fill it, then a send waits for room, purging the
     * holders gone unreported as it waits; the receivers' side never had anyone */
    CHECK_EQ(plait_queue_send(q, "b", 1, SOON()), 0);
    CHECK_EQ(plait_queue_send(q, "c", 1, SOON()), 0);
    CHECK_EQ(plait_queue_send(q, "d", 1, plait_deadline_in(300 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

RUN_TESTS(CASE(others_go_on_while_a_thread_s_exec_waits),
          CASE(others_go_on_while_a_coroutine_s_exec_waits),
          CASE(an_exec_whose_decision_cannot_be_watched_is_not_left_running),
          CASE(a_failed_exec_ends_no_side), CASE(a_program_is_no_side_when_its_exec_report_waits))
