/*
 * test_process.c — the process strand: a function in a child process (result copied
 * back into the future, argument copied in by the fork), a program (exec with pipes,
 * environment, working directory), exit statuses and signals, kill and cancel, waits
 * from coroutines and threads, and what must never be left behind: zombies,
 * descriptors, children that outlive their parent.  Also fork safety: a child forked
 * while other threads are inside plait can use plait.
 */
#include "helpers.h"

#include <limits.h>

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>

/* No child is left unreaped. */
static void check_no_zombies(void)
{
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
}


static long join_long(plait_task t, int *err)
{
    void *v = NULL;
    *err = plait_join(t, &v, SOON());
    long r = -1;
    if (*err == 0) {
        plait_bytes *b = v;
        CHECK_EQ(b->len, sizeof r);
        memcpy(&r, b->data, sizeof r);
    }
    free(v);
    return r;
}

TEST(function_result_comes_back)
{
    long x = 12;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL), 0);
    int pid = plait_process_pid(t);
    CHECK(pid > 0 && pid != getpid());
    int err;
    CHECK_EQ(join_long(t, &err), 144);
    CHECK_EQ(err, 0);
    CHECK_EQ(plait_process_pid(t), -ESRCH); /* the handle is consumed */
    CHECK_EQ(plait_process_kill(t, SIGTERM), -ESRCH);
    check_no_zombies();
}

static int touched;

static ssize_t change_memory(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    touched = 42; /* the child's copy only */
    snprintf(out, cap, "child pid %d", (int)getpid());
    return (ssize_t)strlen(out) + 1;
}

TEST(child_memory_is_a_copy)
{
    touched = 7;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, change_memory, NULL, 0, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    plait_bytes *b = v;
    CHECK(b && b->len > 10 && !strncmp((char *)b->data, "child pid ", 10));
    free(v);
    CHECK_EQ(touched, 7);
}

/* A big argument is seen whole: the fork copies it, nothing is serialised. */
/* The int64_t a function child returned as its result (-1 when it is not one). */
static int64_t result_i64(const void *result)
{
    const plait_bytes *b = result;
    int64_t v = -1;
    if (b && b->len == sizeof v)
        memcpy(&v, b->data, sizeof v);
    return v;
}

static ssize_t sum_bytes(const void *arg, size_t len, void *out, size_t cap)
{
    (void)cap;
    const unsigned char *p = arg;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++)
        s += p[i];
    memcpy(out, &s, sizeof s);
    return sizeof s;
}

TEST(large_argument_and_result)
{
    size_t n = 8u << 20;
    unsigned char *big = malloc(n);
    uint64_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += big[i] = (unsigned char)(i * 7);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, sum_bytes, big, n, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    uint64_t got = 0;
    if (v)
        memcpy(&got, ((plait_bytes *)v)->data, sizeof got);
    CHECK_EQ(got, want);
    free(v);
    free(big);
}

static ssize_t fill(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    size_t want;
    memcpy(&want, arg, sizeof want);
    memset(out, 0xab, want < cap ? want : cap);
    return (ssize_t)want;
}

TEST(result_room)
{
    /* exactly the room fits; one byte more is -EMSGSIZE */
    plait_process_options o = {.result_max = 100};
    for (size_t want = 99; want <= 101; want++) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, fill, &want, sizeof want, &o, NULL), 0);
        void *v = NULL;
        int r = plait_join(t, &v, SOON());
        if (want <= 100) {
            CHECK_EQ(r, 0);
            CHECK(v && ((plait_bytes *)v)->len == want && ((plait_bytes *)v)->data[want - 1] == 0xab);
        } else {
            CHECK_EQ(r, -EMSGSIZE);
            CHECK(v == NULL);
        }
        free(v);
    }
    /* a result of 0 bytes is a result */
    size_t zero = 0;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, fill, &zero, sizeof zero, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v && ((plait_bytes *)v)->len == 0);
    free(v);
}

static ssize_t fail_with(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    int code;
    memcpy(&code, arg, sizeof code);
    return code;
}

static ssize_t die_how(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    switch (*(const int *)arg) {
    case 0: raise(SIGSEGV); break;
    case 1: abort();
    case 2: exit(3);
    case 3: _exit(0);
    case 4: kill(getpid(), SIGBUS); break;
    default: kill(getpid(), SIGKILL); break;
    }
    return 0;
}

TEST(failures_name_their_cause)
{
    int code = -ENOENT;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, fail_with, &code, sizeof code, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ENOENT);
    static const struct {
        int how, err;
    } cases[] = {{0, PLAIT_KILLED(SIGSEGV)}, {1, PLAIT_KILLED(SIGABRT)}, {2, PLAIT_EXITED(3)},
                 {3, PLAIT_EXITED(0)}, {4, PLAIT_KILLED(SIGBUS)}, {5, PLAIT_KILLED(SIGKILL)}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ(plait_process_start(&t, die_how, &cases[i].how, sizeof(int), NULL, NULL), 0);
        int r = plait_join(t, NULL, SOON());
        CHECK_EQ(r, cases[i].err);
    }
    CHECK_EQ(PLAIT_KILL_SIGNAL(PLAIT_KILLED(SIGSEGV)), SIGSEGV);
    CHECK_EQ(PLAIT_EXIT_STATUS(PLAIT_EXITED(3)), 3);
    CHECK_EQ(PLAIT_EXIT_STATUS(PLAIT_EXITED(0)), 0);
    CHECK_EQ(PLAIT_KILL_SIGNAL(-ENOENT), -1);
    CHECK_EQ(PLAIT_EXIT_STATUS(PLAIT_KILLED(9)), -1);
    CHECK(strstr(plait_strerror(PLAIT_KILLED(SIGSEGV)), "SIGSEGV") != NULL);
    CHECK(strstr(plait_strerror(PLAIT_EXITED(3)), "status 3") != NULL);
    /* every failure is a task failure code */
    CHECK(PLAIT_IS_FAIL(PLAIT_FAIL(PLAIT_KILLED(64))) && PLAIT_IS_FAIL(PLAIT_FAIL(PLAIT_EXITED(255))));
    check_no_zombies();
}

/* A task may fail with any code, -EAGAIN too (a function's own -errno): its waiter gets
 * that code (join once mistook it for "not done yet", waited again on the handle it had
 * just consumed, and reported -ESRCH). */
TEST(a_task_failing_with_eagain_reports_it)
{
    int code = -EAGAIN;
    plait_task t[2];
    CHECK_EQ(plait_process_start(&t[0], fail_with, &code, sizeof code, NULL, NULL), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), -EAGAIN);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_process_start(&t[i], fail_with, &code, sizeof code, NULL, NULL), 0);
    int errors[2] = {0, 0};
    CHECK_EQ(plait_wait_all(t, 2, NULL, errors, SOON()), -EAGAIN);
    CHECK_EQ(errors[0], -EAGAIN);
    CHECK_EQ(errors[1], -EAGAIN);
    check_no_zombies();
}

/* plait's stack-overflow reporter, installed by a scheduler, must let a SIGSEGV that
 * is not an overflow — a raise(), a kill() — kill the process (it once returned, and
 * the raise went on as if nothing happened). */
static void *idle_main(void *arg) { return arg; }

static ssize_t crash_after_a_scheduler(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    if (plait_run(idle_main, NULL, NULL) != 0)
        return -EIO;
    raise(SIGSEGV);
    return 0;
}

TEST(sent_segv_kills_despite_the_overflow_reporter)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, crash_after_a_scheduler, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_KILLED(SIGSEGV));
}

static ssize_t wait_forever(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    for (;;)
        pause();
    return 0;
}

TEST(kill_and_cancel)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, wait_forever, NULL, 0, NULL, NULL), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(100 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_TOOK(start, 100 * PLAIT_MS);
    CHECK_EQ(plait_process_kill(t, 0), -EINVAL);
    CHECK_EQ(plait_process_kill(t, 4096), -EINVAL);
    CHECK_EQ(plait_process_kill(t, SIGTERM), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_KILLED(SIGTERM));

    CHECK_EQ(plait_process_start(&t, wait_forever, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);

    /* kill after the end: -ESRCH, never another process */
    long x = 3;
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
    CHECK_EQ(plait_process_kill(t, SIGKILL), -ESRCH);
    int err;
    CHECK_EQ(join_long(t, &err), 9); /* cancel after the end changes nothing */
    CHECK_EQ(err, 0);
    check_no_zombies();
}

static void *not_a_process(void *arg) { return arg; }

TEST(bad_input)
{
    plait_task t;
    long x = 1;
    CHECK_EQ(plait_process_start(&t, NULL, &x, sizeof x, NULL, NULL), -EINVAL);
    CHECK_EQ(plait_process_start(&t, proc_square, NULL, 8, NULL, NULL), -EINVAL);
    plait_process_options big = {.result_max = PLAIT_RESULT_MAX + 1};
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, &big, NULL), -EINVAL);
    plait_process_options bad_stdio = {.stdio = {7, 0, 0}};
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, &bad_stdio, NULL), -EINVAL);
    plait_process_options piped = {.stdio = {PLAIT_STDIO_PIPE, 0, 0}};
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, &piped, NULL), -EINVAL); /* no pipes */
    CHECK_EQ(plait_process_exec(&t, NULL, NULL, NULL, NULL), -EINVAL);
    char *truth[] = {"true", NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, truth, &bad_stdio, NULL), -EINVAL);
    char *empty[] = {NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, empty, NULL, NULL), -EINVAL);
    char *missing[] = {"/nonexistent/program", NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, missing, NULL, NULL), -ENOENT);
    char path[] = "/tmp/plait-test-noexec-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ(fchmod(fd, 0644), 0);
    close(fd);
    char *not_exec[] = {path, NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, not_exec, NULL, NULL), -EACCES);
    unlink(path);
    char *in_path[] = {"no-such-program-plait-test", NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, in_path, NULL, NULL), -ENOENT);
    /* handles that are not processes, or stale */
    plait_task zero = {0};
    CHECK_EQ(plait_process_pid(zero), -EINVAL);
    CHECK_EQ(plait_process_kill(zero, SIGTERM), -EINVAL);
    CHECK_EQ(plait_thread_start(&t, not_a_process, NULL, NULL), 0);
    CHECK_EQ(plait_process_pid(t), -EINVAL);
    CHECK_EQ(plait_process_kill(t, SIGTERM), -EINVAL);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_process_pid(t), -ESRCH);
    check_no_zombies();
}

TEST(exec_with_pipes_env_and_cwd)
{
    char *argv[] = {"sh", "-c", "read line; echo \"$line/$PLAIT_TEST_VAR/$(pwd)\"; echo oops >&2; exit 5", NULL};
    char *env[] = {"PLAIT_TEST_VAR=hello", "PATH=/usr/bin:/bin", NULL};
    plait_process_options o = {.env = env, .cwd = "/tmp",
                               .stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE}};
    plait_pipes p;
    plait_task t;
    CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, &p), 0);
    CHECK(p.in >= 0 && p.out >= 0 && p.err >= 0);
    CHECK(fcntl(p.out, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(p.out, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(plait_write_all(p.in, "ping\n", 5, NULL, SOON()), 0);
    close(p.in);
    char out[256] = {0}, err[64] = {0};
    size_t got = 0;
    CHECK_EQ(plait_read_exactly(p.out, out, sizeof out, &got, SOON()), -ENODATA);
    CHECK_EQ(strcmp(out, "ping/hello//tmp\n"), 0);
    CHECK_EQ(got, strlen("ping/hello//tmp\n"));
    CHECK_EQ(plait_read(p.err, err, sizeof err, SOON()), 5);
    CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_EXITED(5));
    close(p.out);
    close(p.err);

    /* a null stream, and success */
    char *quiet[] = {"sh", "-c", "cat; echo done", NULL};
    plait_process_options n = {.stdio = {PLAIT_STDIO_NULL, PLAIT_STDIO_PIPE, 0}};
    CHECK_EQ(plait_process_exec(&t, NULL, quiet, &n, &p), 0);
    CHECK_EQ(p.in, -1);
    CHECK_EQ(p.err, -1);
    memset(out, 0, sizeof out);
    CHECK_EQ(plait_read_exactly(p.out, out, sizeof out, NULL, SOON()), -ENODATA);
    CHECK_EQ(strcmp(out, "done\n"), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    close(p.out);
}

static ssize_t exit_127(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    _exit(127);
}

/* A function child whose setup fails (here its working directory) reports the error as
 * its task's outcome, as exec reports it at the call; it once exited 127, which read
 * as PLAIT_EXITED(127), the same as a function that calls _exit(127). */
TEST(function_child_setup_failure_is_its_outcome)
{
    plait_process_options o = {.cwd = "/nonexistent-plait-test-dir"};
    plait_task t;
    long x = 3;
    void *res = (void *)1;
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, &o, NULL), 0);
    CHECK_EQ(plait_join(t, &res, SOON()), -ENOENT);
    CHECK(res == NULL);
    char *argv[] = {"true", NULL};
    CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, NULL), -ENOENT);
    /* and a function's own exit status stays its own */
    CHECK_EQ(plait_process_start(&t, exit_127, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_EXITED(127));
    check_no_zombies();
}

/* The child's stdout as a pipe for a function too; its output is flushed. */
static ssize_t chatter(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    printf("from the child");
    return 0;
}

TEST(function_with_a_pipe)
{
    plait_process_options o = {.stdio = {0, PLAIT_STDIO_PIPE, 0}};
    plait_pipes p;
    plait_task t;
    fflush(stdout);
    CHECK_EQ(plait_process_start(&t, chatter, NULL, 0, &o, &p), 0);
    char buf[64] = {0};
    CHECK_EQ(plait_read_exactly(p.out, buf, sizeof buf, NULL, SOON()), -ENODATA);
    CHECK_EQ(strcmp(buf, "from the child"), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    close(p.out);
}

/* A function child holds no end of its own pipes but its own: it sees the end of its
 * stdin once the caller closes its end, and the caller sees the end of the child's
 * stdout once the child closes fd 1.  (No exec closes the caller's ends in a function
 * child: it once kept them, and both ends waited for ever.)  The child writes "hi",
 * closes stdout, then reads stdin to its end and returns how much came. */
static ssize_t close_stdout_read_stdin(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    if (cap < sizeof(int64_t) || write(1, "hi", 2) != 2 || close(1) != 0)
        return -EIO;
    char buf[16];
    int64_t got = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
        got += n;
    memcpy(out, &got, sizeof got);
    return n < 0 ? -errno : (ssize_t)sizeof got;
}

TEST(function_child_holds_only_its_own_pipe_ends)
{
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, 0}};
    plait_pipes p;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, close_stdout_read_stdin, NULL, 0, &o, &p), 0);
    char buf[16] = {0};
    size_t got = 0;
    CHECK_EQ(plait_read_exactly(p.out, buf, sizeof buf, &got, SOON()), -ENODATA);
    CHECK_EQ(got, 2);
    CHECK_EQ(memcmp(buf, "hi", 2), 0);
    CHECK_EQ(plait_write_all(p.in, "abc", 3, NULL, SOON()), 0);
    CHECK_EQ(close(p.in), 0);
    void *result = NULL;
    int r = plait_join(t, &result, SOON());
    CHECK_EQ(r, 0);
    if (r < 0) { /* the child is stuck: it must not outlive the test */
        plait_cancel(t);
        plait_join(t, NULL, SOON());
    }
    CHECK_EQ(result_i64(result), 3);
    free(result);
    CHECK_EQ(close(p.out), 0);
}

/* A function child's own fork() leaves its descriptors alone.  The child inherited
 * plait's record of the descriptors made for its start (its stream ends), which the
 * child of a fork not made for that start closes; child_setup had closed them, fn's
 * next descriptors took their numbers, and a plain fork() in fn closed those in its
 * child.  fn returns how many of its descriptors its own child found closed. */
static ssize_t fork_with_descriptors(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = open("/dev/zero", O_RDONLY); /* the lowest free numbers */
    pid_t pid = fork();
    if (pid == 0) {
        int closed = 0;
        for (int i = 0; i < 8; i++)
            closed += fcntl(fds[i], F_GETFD) < 0;
        _exit(closed);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        cap < sizeof(int64_t))
        return -EIO;
    int64_t closed = WEXITSTATUS(status);
    memcpy(out, &closed, sizeof closed);
    return sizeof closed;
}

TEST(a_function_childs_own_fork_keeps_its_descriptors)
{
    plait_process_options o = {.stdio = {PLAIT_STDIO_NULL, PLAIT_STDIO_NULL, PLAIT_STDIO_NULL}};
    plait_task t;
    CHECK_EQ(plait_process_start(&t, fork_with_descriptors, NULL, 0, &o, NULL), 0);
    void *result = NULL;
    CHECK_EQ(plait_join(t, &result, SOON()), 0);
    CHECK_EQ(result_i64(result), 0);
    free(result);
}

/* A process that fn forks and that returns from fn too is not the task's: what it
 * returns is dropped, and the function child's own end is the outcome.  Its copy of
 * the start's code went on to write its result as the task's, and the function
 * child's _exit(0) before returning was hidden: the join gave "grandchild". */
static ssize_t fork_returns_then_exit(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    pid_t pid = fork();
    if (pid == 0) {
        memcpy(out, "grandchild", cap < 10 ? cap : 10);
        return 10; /* returns from fn in the copy */
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(0); /* the function child itself never returns */
}

TEST(a_function_childs_fork_that_returns_is_not_the_task)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, fork_returns_then_exit, NULL, 0, NULL, NULL), 0);
    void *result = NULL;
    CHECK_EQ(plait_join(t, &result, SOON()), PLAIT_EXITED(0));
    CHECK(result == NULL);
    free(result);
}

/* A task that writes over its result area's header (before `out`: a bug of its own)
 * and then ends, having "returned" a length larger than the area: the parent read that
 * many bytes past the mapping.  It fails with -EPROTO.  The header is {returned, code,
 * len} just before out (src/process.c). */
static _Noreturn void write_over_the_result_header(void *out, int code, uint64_t len)
{
    unsigned char *header = (unsigned char *)out - 16;
    memcpy(header + 8, &len, sizeof len);
    memcpy(header + 4, &code, sizeof code);
    atomic_store((atomic_int *)(void *)header, 1);
    _exit(0);
}

static ssize_t scribble_result_header(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)cap;
    write_over_the_result_header(out, 0, (uint64_t)1 << 40);
}

TEST(a_result_header_written_over_reads_nothing_past_the_area)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, scribble_result_header, NULL, 0, NULL, NULL), 0);
    void *result = NULL;
    CHECK_EQ(plait_join(t, &result, SOON()), -EPROTO);
    CHECK(result == NULL);
    free(result);
}

/* The same with the code written over (len 0): a code no function may give (positive,
 * or below PLAIT__CODE_MIN) was the task's outcome, so plait_join answered 7 and
 * plait_wait_all "all succeeded" for a task that failed (session 42's process audit). */
static ssize_t scribble_result_code(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)cap;
    int code;
    memcpy(&code, arg, sizeof code);
    write_over_the_result_header(out, code, 0);
}

TEST(a_result_code_written_over_is_eproto)
{
    const int codes[] = {7, INT_MAX, INT_MIN, -5000, -4096};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, scribble_result_code, &codes[i], sizeof codes[i],
                                     NULL, NULL), 0);
        int error = 0;
        CHECK_EQ(plait_wait_all(&t, 1, NULL, &error, SOON()), -EPROTO);
        CHECK_EQ(error, -EPROTO);
    }
}

/* The shared memory of a task or a pool is in the children forked for it, and in no
 * other: a function child's result area and a pool's state were in every child plait
 * forked while they existed (another start's, another pool's workers), which held them
 * after the task was joined or the pool destroyed (a pool of 128 MiB of result room
 * outlived its destroy in a later pool's workers).  Looked at by the children
 * themselves: whether /proc/self/maps has a mapping starting where the parent's new
 * shared mapping starts. */
enum { MAPPINGS_MAX = 256 };
/* The starts of this process's shared anonymous mappings (MAP_SHARED|MAP_ANONYMOUS:
 * "/dev/zero (deleted)"), up to MAPPINGS_MAX; how many. */
static int shared_mapping_starts(unsigned long *starts)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (n < MAPPINGS_MAX && fgets(line, sizeof line, f))
        if (strstr(line, "/dev/zero (deleted)"))
            starts[n++] = strtoul(line, NULL, 16);
    fclose(f);
    return n;
}

/* The start of the one shared mapping this process has now that it did not have in
 * `before` (n of them); 0 if not exactly one. */
static unsigned long new_shared_mapping(const unsigned long *before, int n)
{
    unsigned long now[MAPPINGS_MAX], found = 0;
    int m = shared_mapping_starts(now), fresh = 0;
    for (int i = 0; i < m; i++) {
        bool old = false;
        for (int j = 0; j < n && !old; j++)
            old = now[i] == before[j];
        if (!old) {
            found = now[i];
            fresh++;
        }
    }
    return fresh == 1 ? found : 0;
}

/* In a child: 1 if a shared mapping starts at *arg, else 0. */
static ssize_t has_mapping_at(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    unsigned long at, starts[MAPPINGS_MAX];
    memcpy(&at, arg, sizeof at);
    int n = shared_mapping_starts(starts);
    int64_t has = 0;
    for (int i = 0; i < n; i++)
        has |= starts[i] == at;
    if (n < 0 || cap < sizeof has)
        return -EIO;
    memcpy(out, &has, sizeof has);
    return sizeof has;
}

/* 1 if a new function child, and a new pool's worker, have a shared mapping at `at`. */
static void others_have_mapping_at(unsigned long at, int64_t *child, int64_t *worker)
{
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_process_start(&t, has_mapping_at, &at, sizeof at, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    *child = result_i64(v);
    free(v);
    plait_procpool *other;
    plait_procpool_options o = {.processes = 1};
    CHECK_EQ(plait_procpool_create(&other, &o), 0);
    CHECK_EQ(plait_procpool_submit(other, &t, has_mapping_at, &at, sizeof at), 0);
    v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    *worker = result_i64(v);
    free(v);
    CHECK_EQ(plait_procpool_destroy(other), 0);
}

static ssize_t wait_for_a_byte(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    int fd;
    memcpy(&fd, arg, sizeof fd);
    char c;
    return read(fd, &c, 1) == 1 ? 0 : -EIO;
}

TEST(a_result_area_is_in_its_child_alone)
{
    unsigned long before[MAPPINGS_MAX];
    int n = shared_mapping_starts(before);
    CHECK(n >= 0);
    int go[2];
    CHECK_EQ(pipe(go), 0);
    plait_task t;
    plait_process_options o = {.result_max = 1 << 20};
    CHECK_EQ(plait_process_start(&t, wait_for_a_byte, &go[0], sizeof go[0], &o, NULL), 0);
    unsigned long area = new_shared_mapping(before, n);
    CHECK(area != 0);
    int64_t child = -1, worker = -1;
    if (area)
        others_have_mapping_at(area, &child, &worker); /* while its task runs */
    CHECK_EQ(child, 0);
    CHECK_EQ(worker, 0);
    CHECK_EQ(write(go[1], "g", 1), 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    close(go[0]);
    close(go[1]);
}

TEST(a_pools_state_is_in_its_workers_alone)
{
    unsigned long before[MAPPINGS_MAX];
    int n = shared_mapping_starts(before);
    CHECK(n >= 0);
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 1};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    unsigned long state = new_shared_mapping(before, n);
    CHECK(state != 0);
    plait_task t;
    void *v = NULL; /* its own worker has it: it works through it */
    CHECK_EQ(plait_procpool_submit(pool, &t, has_mapping_at, &state, sizeof state), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(result_i64(v), 1);
    free(v);
    int64_t child = -1, worker = -1;
    if (state)
        others_have_mapping_at(state, &child, &worker);
    CHECK_EQ(child, 0);
    CHECK_EQ(worker, 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* A program that cannot be run is reported as such (-ENOENT) even where the caller has
 * its standard streams closed: the exec-error pipe then takes one of their numbers, and
 * putting the child's stderr (/dev/null) in place once closed it, so the failure read
 * as the program's exit status 127.  Run in a function child, which closes its 0-2
 * after a first start has given plait's own descriptors their numbers. */
static ssize_t exec_missing_with_streams_closed(const void *arg, size_t len, void *out,
                                               size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    char *true_argv[] = {"true", NULL}, *missing_argv[] = {"/nonexistent/program", NULL};
    plait_task t;
    if (plait_process_exec(&t, NULL, true_argv, NULL, NULL) != 0 ||
        plait_join(t, NULL, SOON()) != 0)
        return -EIO;
    for (int fd = 0; fd < 3; fd++)
        close(fd);
    plait_process_options o = {.stdio = {0, 0, PLAIT_STDIO_NULL}};
    int r = plait_process_exec(&t, NULL, missing_argv, &o, NULL);
    if (r == 0) {
        plait_join(t, NULL, SOON());
        return -EPROTO; /* started, and its join says exit status 127 */
    }
    return r == -ENOENT ? 0 : r;
}

TEST(exec_failure_reported_with_standard_streams_closed)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, exec_missing_with_streams_closed, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* Output buffered by a thread is none of the process manager's business: a thread that
 * holds stdout (blocked writing to a full pipe, say) holds up no start, reap or other
 * process.  (The manager flushed every stream before each fork, so it waited for that
 * thread, and every process call waited behind it.)  Here a thread holds stdout's lock
 * while a program is run. */
typedef struct {
    plait_event *holding, *release;
} stdout_holder;

static void *hold_stdout(void *arg)
{
    stdout_holder *h = arg;
    flockfile(stdout);
    plait_event_set(h->holding);
    plait_event_wait(h->release, SOON());
    funlockfile(stdout);
    return NULL;
}

TEST(a_thread_holding_stdout_holds_up_no_process)
{
    stdout_holder h;
    CHECK_EQ(plait_event_create(&h.holding), 0);
    CHECK_EQ(plait_event_create(&h.release), 0);
    pthread_t holder;
    CHECK_EQ(pthread_create(&holder, NULL, hold_stdout, &h), 0);
    CHECK_EQ(plait_event_wait(h.holding, SOON()), 0);
    char *true_argv[] = {"true", NULL};
    plait_task t;
    int64_t start = plait_now();
    CHECK_EQ(plait_process_exec(&t, NULL, true_argv, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(2 * PLAIT_SEC)), 0);
    CHECK(plait_now() - start < 2 * PLAIT_SEC); /* the start waited for the holder */
    CHECK_EQ(plait_event_set(h.release), 0);
    CHECK_EQ(pthread_join(holder, NULL), 0);
    CHECK_EQ(plait_event_destroy(h.holding), 0);
    CHECK_EQ(plait_event_destroy(h.release), 0);
}

/* A caller that holds stdout itself may start a function child (it once deadlocked
 * with the manager, which waited for stdout to flush it).  Run in a function child of
 * its own, which is killed if it hangs. */
static ssize_t quiet(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    return 0;
}

static ssize_t start_holding_stdout(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    flockfile(stdout);
    plait_task t;
    int r = plait_process_start(&t, quiet, NULL, 0, NULL, NULL);
    if (r == 0)
        r = plait_join(t, NULL, SOON());
    funlockfile(stdout);
    return r;
}

TEST(a_caller_holding_stdout_starts_a_function_child)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, start_holding_stdout, NULL, 0, NULL, NULL), 0);
    int r = plait_join(t, NULL, plait_deadline_in(3 * PLAIT_SEC));
    CHECK_EQ(r, 0);
    if (r == -ETIMEDOUT) { /* deadlocked: it must not outlive the test */
        plait_cancel(t);
        plait_join(t, NULL, SOON());
    }
}

/* ---- from coroutines ---- */

static ssize_t nap(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    int64_t ns;
    memcpy(&ns, arg, sizeof ns);
    struct timespec ts = {ns / PLAIT_SEC, ns % PLAIT_SEC};
    nanosleep(&ts, NULL);
    return 0;
}

static atomic_int ticks;

static void *ticker(void *stop)
{
    while (!atomic_load((atomic_int *)stop)) {
        atomic_fetch_add(&ticks, 1);
        if (plait_sleep(PLAIT_MS) < 0)
            break;
    }
    return NULL;
}

static void *await_processes(void *arg)
{
    (void)arg;
    atomic_int stop = 0;
    atomic_store(&ticks, 0);
    plait_task tick;
    CHECK_EQ(plait_spawn(&tick, ticker, &stop), 0);
    /* three processes that sleep 1 s, awaited together: about 1 s, not 3 */
    int64_t ns = PLAIT_SEC, start = plait_now();
    plait_task t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_process_start(&t[i], nap, &ns, sizeof ns, NULL, NULL), 0);
    int errors[3];
    CHECK_EQ(plait_wait_all(t, 3, NULL, errors, SOON()), 0);
    int64_t took = plait_now() - start;
    CHECK(took >= PLAIT_SEC && took < 3 * PLAIT_SEC); /* one after another: 3 s */
    CHECK(atomic_load(&ticks) > 20); /* the scheduler ran on while the coroutine waited */
    /* wait-any over a process and a coroutine */
    int64_t longer = 5 * PLAIT_SEC;
    plait_task mixed[2];
    CHECK_EQ(plait_process_start(&mixed[0], nap, &longer, sizeof longer, NULL, NULL), 0);
    atomic_store(&stop, 1);
    mixed[1] = tick;
    CHECK_EQ(plait_wait_any(mixed, 2, SOON()), 1);
    CHECK_EQ(plait_join(tick, NULL, SOON()), 0);
    CHECK_EQ(plait_cancel(mixed[0]), 0);
    CHECK_EQ(plait_join(mixed[0], NULL, SOON()), -ECANCELED);
    return NULL;
}

TEST(coroutines_await_processes) { check_run(await_processes, NULL); }

static void *read_child_output(void *arg)
{
    (void)arg;
    char *argv[] = {"sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.05; done", NULL};
    plait_process_options o = {.stdio = {0, PLAIT_STDIO_PIPE, 0}};
    plait_pipes p;
    plait_task t;
    CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, &p), 0);
    char buf[128];
    size_t got = 0;
    for (;;) {
        ssize_t n = plait_read(p.out, buf + got, sizeof buf - 1 - got, SOON());
        CHECK(n >= 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = 0;
    CHECK_EQ(strcmp(buf, "line1\nline2\nline3\n"), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    close(p.out);
    return NULL;
}

TEST(coroutine_reads_a_program) { check_run(read_child_output, NULL); }

/* ---- what is left behind ---- */

TEST(nothing_leaks)
{
    int fds = count_fds();
    long x = 5;
    for (int i = 0; i < 50; i++) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL), 0);
        if (i % 2)
            CHECK_EQ(plait_detach(t), 0); /* its result is freed without a joiner */
        else
            CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    }
    char *argv[] = {"true", NULL};
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE}};
    plait_pipes p;
    plait_task t;
    CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, &p), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    close(p.in);
    close(p.out);
    close(p.err);
    /* detached children are reaped too: wait until none is left, and until the manager
     * has closed their pidfds (it may see a child's end after this loop has reaped it:
     * TSan's CI stage once counted one pidfd still open) */
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (waitpid(-1, NULL, WNOHANG) != -1 && plait_now() < until)
        plait_sleep(PLAIT_MS);
    check_no_zombies();
    while (count_fds() != fds && plait_now() < until)
        plait_sleep(PLAIT_MS);
    CHECK_EQ(count_fds(), fds);
}

/* The middle process starts a grandchild through plait, tells the pid through a pipe,
 * and is killed: the grandchild must not outlive it. */
static ssize_t start_grandchild(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    int fd = *(const int *)arg;
    plait_task t;
    if (plait_process_start(&t, wait_forever, NULL, 0, NULL, NULL) < 0)
        return -1;
    int pid = plait_process_pid(t);
    if (write(fd, &pid, sizeof pid) != sizeof pid)
        return -1;
    for (;;)
        pause();
}

TEST(children_die_with_their_parent)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    plait_task middle;
    CHECK_EQ(plait_process_start(&middle, start_grandchild, &fds[1], sizeof fds[1], NULL, NULL), 0);
    int grandchild = 0;
    CHECK_EQ(plait_read_exactly(fds[0], &grandchild, sizeof grandchild, NULL, SOON()), 0);
    CHECK(grandchild > 0);
    CHECK_EQ(kill(grandchild, 0), 0);
    CHECK_EQ(plait_process_kill(middle, SIGKILL), 0);
    CHECK_EQ(plait_join(middle, NULL, SOON()), PLAIT_KILLED(SIGKILL));
    /* the grandchild is reaped by init once killed: wait until it is gone */
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (kill(grandchild, 0) == 0 && plait_now() < until)
        plait_sleep(PLAIT_MS);
    CHECK_EQ(kill(grandchild, 0), -1);
    close(fds[0]);
    close(fds[1]);
}

/* ---- fork safety ---- */

static atomic_int churn_stop;

static void *churn_crowd(void *arg)
{
    (void)arg;
    plait_task t[300];
    int n = 0;
    while (n < 300 && plait_spawn(&t[n], not_a_process, NULL) == 0)
        n++;
    for (int i = 0; i < n; i++)
        plait_join(t[i], NULL, SOON());
    return NULL;
}

static void *churn(void *arg)
{
    (void)arg;
    /* Schedulers that start, spawn hundreds of coroutines and end, over and over: they
     * take plait's global locks (futures, stacks) all the time.  (Not threads: a
     * sanitizer's own thread registry is not fork-safe in a child forked while another
     * thread is inside pthread_create.) */
    while (!atomic_load(&churn_stop))
        plait_run(churn_crowd, NULL, NULL);
    return NULL;
}

static void *child_sleeper(void *arg)
{
    (void)arg;
    plait_sleep(PLAIT_MS);
    return NULL;
}

static void *child_main(void *arg)
{
    (void)arg;
    plait_task t[4];
    for (int i = 0; i < 4; i++)
        if (plait_spawn(&t[i], child_sleeper, NULL) < 0)
            return PLAIT_FAIL(-EIO);
    return plait_wait_all(t, 4, NULL, NULL, SOON()) == 0 ? NULL : PLAIT_FAIL(-EIO);
}

/* The child uses every part of plait whose global state the fork handlers reset. */
static ssize_t use_plait(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    if (plait_run(child_main, NULL, NULL) != 0)
        return -EIO;
#if defined(__SANITIZE_THREAD__)
    return 0; /* ThreadSanitizer's own locks are not fork-safe for threads started here */
#else
    return plait_to_thread(not_a_process, NULL, NULL, SOON()) == 0 ? 0 : -EIO;
#endif
}

/* AddressSanitizer's own allocator (GCC 12's runtime) takes no fork handlers: a child
 * forked while another thread is inside malloc can hang in it.  ThreadSanitizer's
 * runtime is no safer (it calls itself unsafe for a fork while other threads run: a
 * child hung here once in 30 forks, in CI).  Under either sanitizer the forks run
 * without the churning threads; the plain build, where plait's own fork handlers are
 * what is tested, keeps them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
enum { CHURNERS = 0 };
#else
enum { CHURNERS = 2 };
#endif

TEST(fork_while_other_threads_use_plait)
{
    if (CHURNERS == 0)
        check_part_not_run(CHECK_TSAN ? "the churning threads, and a thread in each child"
                                      : "the churning threads",
                           "a sanitizer's runtime is not fork-safe beside running threads");
    atomic_store(&churn_stop, 0);
    pthread_t th[2];
    for (int i = 0; i < CHURNERS; i++)
        thread_start(&th[i], churn, NULL);
    for (int i = 0; i < 30; i++) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, use_plait, NULL, 0, NULL, NULL), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    }
    /* a fork by the program itself, not through plait */
    for (int i = 0; i < 10; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(use_plait(NULL, 0, NULL, 0) == 0 ? 0 : 1);
        int status = -1;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < CHURNERS; i++)
        thread_join(th[i]);
}

/* From a thread that is not the manager, with many processes at once. */
static void *start_many(void *arg)
{
    (void)arg;
    plait_task t[16];
    long x[16];
    for (int i = 0; i < 16; i++) {
        x[i] = i;
        CHECK_EQ(plait_process_start(&t[i], proc_square, &x[i], sizeof x[i], NULL, NULL), 0);
    }
    for (int i = 0; i < 16; i++) {
        int err;
        CHECK_EQ(join_long(t[i], &err), (long)i * i);
        CHECK_EQ(err, 0);
    }
    return NULL;
}

TEST(many_at_once_from_threads)
{
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        thread_start(&th[i], start_many, NULL);
    for (int i = 0; i < 3; i++)
        thread_join(th[i]);
    check_no_zombies();
}

/* A program starts at once, and its pipes reach end of file, while another thread
 * keeps starting children: the pipe that reports a failed exec (and the stdio pipes)
 * once were made in the caller's thread before the hand-off to the manager, so a child
 * forked meanwhile inherited an end and the start waited for that child to end. */
enum { BYSTANDERS = 64 };

typedef struct bystanders {
    atomic_int stop;
    int n;
    plait_task t[BYSTANDERS];
} bystanders;

static void *start_bystanders(void *arg)
{
    bystanders *b = arg;
    int64_t ns = 30 * PLAIT_SEC; /* cancelled at the end of the test */
    while (!atomic_load(&b->stop) && b->n < BYSTANDERS) {
        if (plait_process_start(&b->t[b->n], nap, &ns, sizeof ns, NULL, NULL) == 0)
            b->n++;
        plait_sleep(2 * PLAIT_MS); /* pacing only */
    }
    return NULL;
}

TEST(exec_not_held_up_by_other_children)
{
    bystanders b = {.stop = 0, .n = 0};
    pthread_t th;
    thread_start(&th, start_bystanders, &b);
    char *argv[] = {"true", NULL};
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, 0}};
    int64_t worst = 0;
    for (int i = 0; i < 40; i++) {
        plait_task t;
        plait_pipes p;
        int64_t start = plait_now();
        CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, &p), 0);
        close(p.in);
        char c;
        CHECK_EQ(plait_read(p.out, &c, 1, SOON()), 0); /* end of file: no one else holds it */
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        close(p.out);
        if (plait_now() - start > worst)
            worst = plait_now() - start;
    }
    /* a start held up by a bystander would wait 30 s for it (the read above fails
     * first); the room here is for a loaded machine */
    CHECK(worst < 5 * PLAIT_SEC);
    atomic_store(&b.stop, 1);
    thread_join(th);
    for (int i = 0; i < b.n; i++) {
        CHECK_EQ(plait_cancel(b.t[i]), 0);
        CHECK_EQ(plait_join(b.t[i], NULL, SOON()), -ECANCELED);
    }
}

/* A plain fork() the program makes in another thread while plait starts a program: the
 * fork's child must not inherit the ends plait makes for the program (the pipe that
 * reports a failed exec, the program's streams), or the start waits for as long as that
 * child lives.  The children forked here live until the test releases them, so a start
 * held up by one would wait for ever; the starts run on a thread joined with a deadline. */
enum { PLAIN_FORKS = 300, PLAIN_STARTS = 150 };
/* How long the starts beside plain forks below may take before they count as held up
 * for good: under a sanitizer every fork is slower (clang's ASan, which locks its
 * allocator around each, took 7 s alone for the 200 starts beside forks that gcc's
 * took 3 s for, and more than 20 s beside two other copies of itself). */
#define HELD_UP_FOR_GOOD (CHECK_SLOW_CHILDREN ? 120 * PLAIT_SEC : 20 * PLAIT_SEC)

typedef struct plain_forker {
    atomic_int stop;
    int release[2]; /* each child waits for end of file on release[0] */
    int n;
    pid_t pid[PLAIN_FORKS];
} plain_forker;

static void *fork_plainly(void *arg)
{
    plain_forker *f = arg;
    while (!atomic_load(&f->stop) && f->n < PLAIN_FORKS) {
        pid_t pid = fork();
        if (pid == 0) {
            close(f->release[1]);
            char c;
            while (read(f->release[0], &c, 1) < 0 && errno == EINTR) {
            }
            _exit(0);
        }
        if (pid > 0)
            f->pid[f->n++] = pid;
    }
    return NULL;
}

static void *start_programs(void *arg)
{
    (void)arg;
    char *argv[] = {"true", NULL};
    plait_process_options o = {.stdio = {PLAIT_STDIO_NULL, PLAIT_STDIO_PIPE, 0}};
    for (int i = 0; i < PLAIN_STARTS; i++) {
        plait_task t;
        plait_pipes p;
        if (plait_process_exec(&t, NULL, argv, &o, &p) != 0)
            return (void *)-1;
        char c;
        ssize_t n = plait_read(p.out, &c, 1, SOON()); /* end of file: no one else holds it */
        close(p.out);
        if (n != 0 || plait_join(t, NULL, SOON()) != 0)
            return (void *)-1;
    }
    return NULL;
}

TEST(exec_not_held_up_by_a_plain_fork_elsewhere)
{
    plain_forker f = {.stop = 0, .n = 0};
    CHECK_EQ(pipe2(f.release, O_CLOEXEC), 0);
    pthread_t forker;
    thread_start(&forker, fork_plainly, &f);
    plait_task starter;
    CHECK_EQ(plait_thread_start(&starter, start_programs, NULL, NULL), 0);
    void *failed = (void *)-1;
    int joined = plait_join(starter, &failed, plait_deadline_in(HELD_UP_FOR_GOOD));
    CHECK_EQ(joined, 0);
    CHECK(failed == NULL);
    atomic_store(&f.stop, 1);
    thread_join(forker);
    close(f.release[1]); /* the children end; so does a start held up by one */
    close(f.release[0]);
    if (joined != 0)
        CHECK_EQ(plait_join(starter, &failed, SOON()), 0);
    for (int i = 0; i < f.n; i++)
        CHECK_EQ(reap_within(f.pid[i], 10), 0);
    check_no_zombies();
}

/* The same with a fork handler of the program's own, registered after plait's (so
 * glibc runs it first at every fork, the manager's included): the usual "lock in
 * prepare, unlock after" pattern.  plait once held its spawn lock across the manager's
 * fork while other forks waited for it in their prepare handlers: a fork holding the
 * program's lock waited for plait's, the manager's fork for the program's, for ever.
 * Registering the handler is for good: this case comes last. */
static pthread_mutex_t program_fork_lock = PTHREAD_MUTEX_INITIALIZER;
static void program_prepare(void) { pthread_mutex_lock(&program_fork_lock); }
static void program_after(void) { pthread_mutex_unlock(&program_fork_lock); }

typedef struct fork_and_reap {
    atomic_int stop;
    int n;
} fork_and_reap;

static void *fork_and_reap_plainly(void *arg)
{
    fork_and_reap *f = arg;
    while (!atomic_load(&f->stop)) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid > 0) {
            CHECK_EQ(reap_within(pid, 10), 0);
            f->n++;
        }
    }
    return NULL;
}

static void *start_programs_plainly(void *arg)
{
    (void)arg;
    char *argv[] = {"true", NULL};
    for (int i = 0; i < 200; i++) {
        plait_task t;
        if (plait_process_exec(&t, NULL, argv, NULL, NULL) != 0 ||
            plait_join(t, NULL, SOON()) != 0)
            return (void *)-1;
    }
    return NULL;
}

TEST(exec_beside_forks_with_a_program_fork_handler)
{
    char *argv[] = {"true", NULL}; /* plait's fork handlers are registered by now */
    plait_task first;
    CHECK_EQ(plait_process_exec(&first, NULL, argv, NULL, NULL), 0);
    CHECK_EQ(plait_join(first, NULL, SOON()), 0);
    CHECK_EQ(pthread_atfork(program_prepare, program_after, program_after), 0);
    fork_and_reap f = {.stop = 0, .n = 0};
    pthread_t th;
    thread_start(&th, fork_and_reap_plainly, &f);
    plait_task starter;
    CHECK_EQ(plait_thread_start(&starter, start_programs_plainly, NULL, NULL), 0);
    void *failed = (void *)-1;
    int joined = plait_join(starter, &failed, plait_deadline_in(HELD_UP_FOR_GOOD));
    CHECK_EQ(joined, 0);
    CHECK(failed == NULL);
    if (joined != 0) { /* deadlocked: nothing here can end it */
        fprintf(stderr, "  deadlocked after %d plain forks\n", f.n);
        fflush(NULL);
        _exit(1);
    }
    atomic_store(&f.stop, 1);
    thread_join(th);
    CHECK(f.n > 0);
}

/* Bad options leave the caller's descriptors alone (a refused pipe request once closed
 * the caller's standard input). */
TEST(bad_options_close_nothing)
{
    CHECK(fcntl(0, F_GETFD) >= 0);
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE}};
    char *argv[] = {"true", NULL};
    plait_task t;
    int fds = count_fds();
    CHECK_EQ(plait_process_exec(&t, NULL, argv, &o, NULL), -EINVAL);
    long x = 1;
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, &o, NULL), -EINVAL);
    CHECK(fcntl(0, F_GETFD) >= 0);
    CHECK_EQ(count_fds(), fds);
}

/* A program that ignores SIGCHLD has its children reaped by the kernel: joins still
 * complete (the manager once spun on the pidfd and the join never came). */
static ssize_t start_with_sigchld_ignored(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    signal(SIGCHLD, SIG_IGN);
    long x = 7;
    plait_task t;
    if (plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL) < 0)
        return -EIO;
    void *v = NULL;
    int r = plait_join(t, &v, plait_deadline_in(5 * PLAIT_SEC));
    long sq = 0;
    if (r == 0)
        memcpy(&sq, ((plait_bytes *)v)->data, sizeof sq);
    free(v);
    if (r != 0 || sq != 49)
        return r < 0 ? r : -EIO;
    char *argv[] = {"true", NULL};
    if (plait_process_exec(&t, NULL, argv, NULL, NULL) < 0)
        return -EIO;
    r = plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC));
    return r == -ECHILD ? 0 : (r < 0 ? r : -EPROTO); /* its status went to the kernel */
}

TEST(children_reaped_by_someone_else)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, start_with_sigchld_ignored, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(20 * PLAIT_SEC)), 0);
}

/* A child the kernel reaps before the manager has opened its pidfd (SIGCHLD ignored,
 * and a child that ends at once) still counts as dead for the shared objects: a lock it
 * died holding is released (the manager once skipped them on that path, and the lock
 * stayed held by the dead pid for good). */
static plait_pmutex *dying_holder_mutex;

static ssize_t lock_and_return(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    return plait_pmutex_lock(dying_holder_mutex, PLAIT_FOREVER);
}

static ssize_t holders_reaped_by_the_kernel(const void *arg, size_t len, void *out,
                                            size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 300; i++) {
        if (plait_pmutex_create(&dying_holder_mutex) < 0)
            return -ENOMEM;
        plait_task t;
        if (plait_process_start(&t, lock_and_return, NULL, 0, NULL, NULL) < 0)
            return -EIO;
        int r = plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC));
        if (r != 0)
            return r < 0 ? r : -EPROTO;
        /* the join comes after the objects heard of the death: no wait needed */
        r = plait_pmutex_lock(dying_holder_mutex, 0);
        if (r != -EOWNERDEAD)
            return r < 0 ? r : -EPROTO;
        plait_pmutex_unlock(dying_holder_mutex);
        plait_pmutex_destroy(dying_holder_mutex);
    }
    return 0;
}

TEST(children_reaped_by_the_kernel_release_their_locks)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, holders_reaped_by_the_kernel, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
}

/* A function child whose stdin is a pipe (or /dev/null) reads it through stdio: not
 * the line the parent had buffered from its own stdin, nor the end of file the parent
 * had met (the child's copy of the stdin FILE kept both; session 51's process audit). */
static ssize_t line_from_stdin(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    if (!fgets(out, (int)cap, stdin))
        return feof(stdin) ? 0 : -EIO;
    return (ssize_t)strlen(out);
}

/* The child's first line of stdin (its length), "" at its end of file. */
static ssize_t child_line(int stdin_mode, const char *fed, char *got, size_t cap)
{
    plait_process_options o = {.stdio = {stdin_mode, 0, 0}};
    plait_pipes pipes;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, line_from_stdin, NULL, 0, &o, &pipes), 0);
    if (stdin_mode == PLAIT_STDIO_PIPE) {
        CHECK_EQ(plait_write_all(pipes.in, fed, strlen(fed), NULL, SOON()), 0);
        CHECK_EQ(close(pipes.in), 0);
    }
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(t, (void **)&b, SOON()), 0);
    size_t n = b && b->len < cap ? b->len : 0;
    if (b)
        memcpy(got, b->data, n);
    got[n] = '\0';
    free(b);
    return (ssize_t)n;
}

TEST(a_function_child_reads_its_own_stdin_through_stdio)
{
    int saved = dup(STDIN_FILENO), lines[2];
    CHECK(saved >= 0);
    CHECK_EQ(pipe(lines), 0);
    static const char two[] = "parent's first\nparent's second, buffered\n";
    CHECK_EQ(write(lines[1], two, sizeof two - 1), (ssize_t)(sizeof two - 1));
    CHECK_EQ(close(lines[1]), 0);
    CHECK_EQ(dup2(lines[0], STDIN_FILENO), STDIN_FILENO);
    CHECK_EQ(close(lines[0]), 0);
    char line[128];
    CHECK(fgets(line, sizeof line, stdin) != NULL); /* the second line stays buffered */
    char got[128];
    child_line(PLAIT_STDIO_PIPE, "from the pipe\n", got, sizeof got);
    CHECK(strcmp(got, "from the pipe\n") == 0);
    child_line(PLAIT_STDIO_NULL, NULL, got, sizeof got);
    CHECK(strcmp(got, "") == 0);
    CHECK(fgets(line, sizeof line, stdin) != NULL);
    CHECK(fgets(line, sizeof line, stdin) == NULL); /* the parent's stdin at its end */
    child_line(PLAIT_STDIO_PIPE, "after the end\n", got, sizeof got);
    CHECK(strcmp(got, "after the end\n") == 0);
    CHECK_EQ(dup2(saved, STDIN_FILENO), STDIN_FILENO);
    CHECK_EQ(close(saved), 0);
    clearerr(stdin);
}

/* A child takes its caller's no_new_privs, CPU affinity and name, though the manager
 * thread forks it: a thread that set no_new_privs (and then started a set-user-ID
 * program, which ran with its privileges), pinned itself or named itself after the
 * first start had made the manager got the manager's (session 51's process audit). */
typedef struct context_seen {
    int no_new_privs, cpus, first_cpu;
    char name[16];
} context_seen;

static ssize_t what_it_runs_with(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    context_seen c = {.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), .first_cpu = -1};
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        c.cpus = CPU_COUNT(&set);
        for (int i = 0; i < CPU_SETSIZE && c.first_cpu < 0; i++)
            if (CPU_ISSET(i, &set))
                c.first_cpu = i;
    }
    prctl(PR_GET_NAME, c.name, 0, 0, 0);
    if (cap < sizeof c)
        return -EMSGSIZE;
    memcpy(out, &c, sizeof c);
    return sizeof c;
}

static void *starts_after_narrowing_itself(void *expected)
{
    context_seen *want = expected;
    CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    CHECK_EQ(pin_to_one_cpu(), 0);
    CHECK_EQ(prctl(PR_SET_NAME, "narrowed", 0, 0, 0), 0);
    want->no_new_privs = 1;
    want->cpus = 1;
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    for (int i = 0; i < CPU_SETSIZE && want->first_cpu < 0; i++)
        if (CPU_ISSET(i, &set))
            want->first_cpu = i;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, what_it_runs_with, NULL, 0, NULL, NULL), 0);
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(t, (void **)&b, SOON()), 0);
    return b;
}

TEST(a_child_takes_its_callers_no_new_privs_affinity_and_name)
{
    plait_task first; /* the manager thread made, before the caller narrows itself */
    CHECK_EQ(plait_process_start(&first, what_it_runs_with, NULL, 0, NULL, NULL), 0);
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(first, (void **)&b, SOON()), 0);
    free(b);
    context_seen want = {.first_cpu = -1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, starts_after_narrowing_itself, &want), 0);
    CHECK_EQ(pthread_join(th, (void **)&b), 0);
    CHECK(b && b->len == sizeof(context_seen));
    if (b && b->len == sizeof(context_seen)) {
        context_seen got;
        memcpy(&got, b->data, sizeof got);
        CHECK_EQ(got.no_new_privs, 1);
        CHECK_EQ(got.cpus, 1);
        CHECK_EQ(got.first_cpu, want.first_cpu);
        CHECK(strcmp(got.name, "narrowed") == 0);
    }
    free(b);
}

/* A child of _Fork(), which runs no fork handler, after its parent started the process
 * manager: the child's copy of the manager looked started, so its start went to the
 * parent's manager through the eventfd they share, and waited for ever (failed first:
 * the child died of its alarm; a review's reproducer). */
static int start_in_a_child_without_fork_handlers(void)
{
    alarm(20); /* (a start is not cancellable: the alarm ends a child that hangs) */
    int64_t x = 5;
    plait_task t;
    if (plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL) != 0)
        return 1;
    void *v = NULL;
    int r = plait_join(t, &v, plait_deadline_in(10 * PLAIT_SEC));
    int64_t got = result_i64(v);
    free(v);
    return r == 0 && got == 25 ? 0 : 2;
}

TEST(a_child_made_without_fork_handlers_starts_processes)
{
#if defined(__SANITIZE_THREAD__)
    /* (the child starts a manager thread whose id may be the parent's manager's, which
     * ThreadSanitizer keeps in its books: "dup thread with used id", as test_signal) */
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    int64_t x = 3;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0); /* the manager runs */
    CHECK_EQ(result_i64(v), 9);
    free(v);
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    pid_t pid = _Fork();
    if (pid == 0)
        _exit(start_in_a_child_without_fork_handlers());
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), 0);
    /* the parent's manager is its own still */
    CHECK_EQ(plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(result_i64(v), 9);
    free(v);
    check_no_zombies();
}

RUN_TESTS(CASE(a_child_made_without_fork_handlers_starts_processes), CASE(function_result_comes_back), CASE(child_memory_is_a_copy),
          CASE(large_argument_and_result), CASE(result_room), CASE(failures_name_their_cause), CASE(a_task_failing_with_eagain_reports_it),
          CASE(sent_segv_kills_despite_the_overflow_reporter),
          CASE(kill_and_cancel), CASE(bad_input), CASE(exec_with_pipes_env_and_cwd),
          CASE(a_function_child_reads_its_own_stdin_through_stdio),
          CASE(a_child_takes_its_callers_no_new_privs_affinity_and_name),
          CASE(function_child_setup_failure_is_its_outcome),
          CASE(function_with_a_pipe), CASE(function_child_holds_only_its_own_pipe_ends),
          CASE(a_function_childs_own_fork_keeps_its_descriptors),
          CASE(a_function_childs_fork_that_returns_is_not_the_task),
          CASE(a_result_header_written_over_reads_nothing_past_the_area),
          CASE(a_result_code_written_over_is_eproto),
          CASE(a_result_area_is_in_its_child_alone), CASE(a_pools_state_is_in_its_workers_alone),
          CASE(exec_failure_reported_with_standard_streams_closed),
          CASE(a_thread_holding_stdout_holds_up_no_process),
          CASE(a_caller_holding_stdout_starts_a_function_child),
          CASE(coroutines_await_processes),
          CASE(coroutine_reads_a_program), CASE(nothing_leaks),
          CASE(children_die_with_their_parent), CASE(fork_while_other_threads_use_plait),
          CASE(many_at_once_from_threads), CASE(exec_not_held_up_by_other_children),
          CASE(exec_not_held_up_by_a_plain_fork_elsewhere),
          CASE(bad_options_close_nothing), CASE(children_reaped_by_someone_else),
          CASE(children_reaped_by_the_kernel_release_their_locks),
          CASE(exec_beside_forks_with_a_program_fork_handler))
