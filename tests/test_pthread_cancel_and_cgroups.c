/*
 * test_pthread_cancel_and_cgroups.c — a review of the CPU count's cgroup reading
 * (src/cgroup.c and src/cpus.c: plait__cgroup_cpu_limit on made-up /proc trees, as
 * tests/test_cpu_count.c), of how a plait thread ends (src/thread.c), of the thread
 * starts made on the thread's own stack, and of plait_strerror's names written without
 * stdio.
 *
 *   small_stack_procpool, small_stack_pshared_watcher: a process pool and a first wait
 *       on a process-shared word (its watcher thread) from a coroutine on the smallest
 *       stack, in a fresh process (as tests/test_small_stack_starts; bound at load).
 *   thread_cancelled_inside_a_wake_up: a plait thread with a pthread_cancel pending
 *       wakes a coroutine of a scheduler parked in its poller: the eventfd write, under
 *       that scheduler's inbox lock, acted on the cancellation and the scheduler spun on
 *       the lock for ever.
 *   thread_cancelled_inside_a_process_start: the same thread starting and joining a
 *       process: the cancellation acted on in the close of the process's pidfd as the
 *       join freed its record left the descriptor, the record and the future.
 *   thread_cancelled_making_the_default_pool: the same thread making the default pool
 *       (a first plait_to_thread): plait_cpu_count's open() of /proc acted on the
 *       cancellation under the default pool's lock, and every later plait_to_thread
 *       of the process waited for ever.
 *   thread_cancelled_destroying_pools: the same thread destroying a thread pool and a
 *       process pool: pthread_join of a worker and close() acted on the cancellation
 *       half way, leaving the rest (the process pool's descriptor).
 *   coroutine_ends_its_plait_thread: a coroutine of a scheduler run by a plait thread
 *       calls pthread_exit: the thread's joiner gets -ECANCELED, the scheduler's
 *       coroutines end as cancelled (their joiners waited for ever) and its memory and
 *       descriptors are freed (they leaked).
 *   destructor_that_ends_the_thread: a task-local destructor that ends its thread
 *       (pthread_exit, pthread_cancel) after the function returned left the joiner
 *       waiting for ever; it gets the function's result now.
 *   files_that_are_not_files: a /proc file or a cgroup file that is a FIFO (opening it
 *       waited for a writer for ever), a directory, or an endless device (/dev/zero:
 *       the line reader skipped its "line" for ever) is no limit, read in a child that
 *       must end within seconds; a cgroup file that is no file leaves its ancestors'
 *       limits counted.
 *   dotdot_path_stays_in_the_hierarchy: a process outside its cgroup namespace's root
 *       sees "0::/../other" in /proc/self/cgroup: the path was appended to the mount
 *       point, and the limits of directories outside the cgroup mount were read.
 *   mount_that_holds_the_cgroup: of two mounts of the hierarchy, the first a subtree
 *       that does not hold the process's cgroup, the one that holds it is read.
 *   long_and_odd_lines: lines over the reader's 4 KiB, binary bytes, escapes, cut
 *       lines: the valid lines still count.
 *   random_trees: random cgroup, mountinfo and cpu.max texts never crash (run it under
 *       AddressSanitizer) and give a limit >= 0.
 *   strerror_names: every signal's and unknown code's text is written and ends.
 */
#include "cgroup_tree.h"
#include "fork_child.h"

#include <limits.h>
#include <sys/wait.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

/* The limit, computed in a child that must end within 5 s (a read that blocks for ever
 * is a failure, not a hang); -1 if it did not. */
static int limit_within_seconds(void)
{
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        int n = limit();
        _exit(write(pipefd[1], &n, sizeof n) == sizeof n ? 0 : 1);
    }
    close(pipefd[1]);
    int status = reap_within(child, 5);
    int n = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        read(pipefd[0], &n, sizeof n) != sizeof n)
        n = -1;
    close(pipefd[0]);
    return n;
}

TEST(files_that_are_not_files)
{
    /* /proc/self/cgroup or mountinfo a FIFO, a directory, /dev/zero */
    static const char *const procs[] = {"proc/cgroup", "proc/mountinfo"};
    for (int i = 0; i < 2; i++) {
        for (int kind = 0; kind < 3; kind++) {
            fresh_tree();
            put("proc/cgroup", "0::/a\n");
            put("proc/mountinfo", V2_MOUNT);
            put("sys/fs/cgroup/a/cpu.max", "200000 100000\n");
            CHECK_EQ(limit(), 2);
            unlink(strcat(strcat(strcpy((char[512]){0}, tree), "/"), procs[i]));
            if (kind == 0)
                put_fifo(procs[i]);
            else if (kind == 1)
                put_dir(procs[i]);
            else
                put_link(procs[i], "/dev/zero");
            CHECK_EQ(limit_within_seconds(), 0);
            remove_tree();
        }
    }
    /* a cgroup's cpu.max (v2) or its quota or period (v1) a FIFO or /dev/zero: that
     * directory sets no limit, its parent's still holds */
    static const char *const files[] = {"sys/fs/cgroup/a/b/cpu.max",
                                        "sys/fs/cgroup/cpu/a/b/cpu.cfs_quota_us",
                                        "sys/fs/cgroup/cpu/a/b/cpu.cfs_period_us"};
    for (int i = 0; i < 3; i++) {
        for (int kind = 0; kind < 2; kind++) {
            fresh_tree();
            if (i == 0) {
                put("proc/cgroup", "0::/a/b\n");
                put("proc/mountinfo", V2_MOUNT);
                put("sys/fs/cgroup/a/cpu.max", "300000 100000\n");
                put("sys/fs/cgroup/a/b/cpu.max", "100000 100000\n");
            } else {
                put("proc/cgroup", "3:cpu:/a/b\n");
                put("proc/mountinfo", V1_MOUNT);
                put("sys/fs/cgroup/cpu/a/cpu.cfs_quota_us", "300000\n");
                put("sys/fs/cgroup/cpu/a/cpu.cfs_period_us", "100000\n");
                put("sys/fs/cgroup/cpu/a/b/cpu.cfs_quota_us", "100000\n");
                put("sys/fs/cgroup/cpu/a/b/cpu.cfs_period_us", "100000\n");
            }
            CHECK_EQ(limit(), 1);
            if (kind == 0)
                put_fifo(files[i]);
            else
                put_link(files[i], "/dev/zero");
            CHECK_EQ(limit_within_seconds(), 3);
            remove_tree();
        }
    }
}

/* A process moved out of its cgroup namespace's root sees its cgroup as "/../other"
 * (the kernel's path relative to that root): it is outside the mount's root, as a path
 * outside a container's mount root (test_cpu_count's container_mount_roots), and only
 * the mount point's own files count, never directories beside or above the mount. */
TEST(dotdot_path_stays_in_the_hierarchy)
{
    fresh_tree();
    put("proc/cgroup", "0::/../other\n");
    put("proc/mountinfo", V2_MOUNT);
    put("sys/fs/cgroup/cpu.max", "300000 100000\n");
    put("sys/fs/other/cpu.max", "100000 100000\n"); /* beside the mount: not a cgroup */
    put("sys/fs/cpu.max", "100000 100000\n");       /* above it */
    CHECK_EQ(limit(), 3);
    /* the same past a mount root that is a prefix of the path */
    put("proc/cgroup", "0::/docker/abc/../../other\n");
    put("proc/mountinfo", "40 35 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup rw\n");
    CHECK_EQ(limit(), 3);
    put("proc/cgroup", "0::/docker/abc/x/..\n");
    CHECK_EQ(limit(), 3);
    /* a name that only begins with dots is a name */
    put("proc/cgroup", "0::/..a/b...\n");
    put("proc/mountinfo", V2_MOUNT);
    put("sys/fs/cgroup/..a/b.../cpu.max", "200000 100000\n");
    CHECK_EQ(limit(), 2);
    remove_tree();
}

/* Two mounts of the v2 hierarchy, the first a subtree (a container's, bind-mounted
 * here) that does not hold the process's cgroup: the second, which does, is read. */
TEST(mount_that_holds_the_cgroup)
{
    fresh_tree();
    put("proc/cgroup", "0::/user.slice/job\n");
    put("proc/mountinfo",
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "50 22 0:26 /machine.slice/ct /var/lib/ct/cgroup rw - cgroup2 cgroup2 rw\n" V2_MOUNT);
    put("var/lib/ct/cgroup/cpu.max", "100000 100000\n"); /* the container's: not ours */
    put("sys/fs/cgroup/user.slice/job/cpu.max", "400000 100000\n");
    CHECK_EQ(limit(), 4);
    /* the same for v1's cpu hierarchy */
    put("proc/cgroup", "3:cpu,cpuacct:/user.slice/job\n");
    put("proc/mountinfo",
        "51 22 0:29 /machine.slice/ct /var/lib/ct/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 25 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n");
    put("var/lib/ct/cpu/cpu.cfs_quota_us", "100000\n");
    put("var/lib/ct/cpu/cpu.cfs_period_us", "100000\n");
    put("sys/fs/cgroup/cpu/user.slice/job/cpu.cfs_quota_us", "500000\n");
    put("sys/fs/cgroup/cpu/user.slice/job/cpu.cfs_period_us", "100000\n");
    CHECK_EQ(limit(), 5);
    /* with only the subtree mounted, it stays what is read (container_mount_roots) */
    put("proc/mountinfo",
        "51 22 0:29 /machine.slice/ct /var/lib/ct/cpu rw - cgroup cgroup rw,cpu,cpuacct\n");
    CHECK_EQ(limit(), 1);
    remove_tree();
}

TEST(long_and_odd_lines)
{
    fresh_tree();
    /* lines of 4095, 4096, 4097 and 20000 bytes, binary ones, then the real ones */
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    CHECK(text != NULL);
    size_t len = 0;
    static const size_t longs[] = {4095, 4096, 4097, 8191, 8192, 20000};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        memset(text + len, i % 2 ? 'x' : ':', longs[i]);
        len += longs[i];
        text[len++] = '\n';
    }
    memcpy(text + len, "\0\0\1:\377\n", 6);
    len += 6;
    memcpy(text + len, "0::/a\n", 6);
    len += 6;
    put_n("proc/cgroup", text, len);
    len = 0;
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        memset(text + len, i % 2 ? ' ' : '-', longs[i]);
        len += longs[i];
        text[len++] = '\n';
    }
    static const char tail[] = "1 2 3 \\ \\0 - cgroup2\n"
                               "1 2 3 \\3 \\37 - cgroup2 x y\n"
                               "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    memcpy(text + len, tail, sizeof tail - 1);
    len += sizeof tail - 1;
    put_n("proc/mountinfo", text, len);
    put("sys/fs/cgroup/a/cpu.max", "700000 100000\n");
    CHECK_EQ(limit(), 7);
    free(text);
    remove_tree();
}

TEST(random_trees)
{
    uint64_t seed = 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    static const char *const pieces[] = {
        "0", "::", ":", "/", "a", "..", " ", " - ", "cgroup2", "cgroup", "cpu", ",", "\n",
        "\\040", "\\", "max", "100000", "-1", "99999999999999999999", "sys/fs/cgroup",
        "/sys/fs/cgroup", "\t", "\0", "\377", "rw,cpu"};
    char *text = malloc(16384);
    CHECK(text != NULL);
    for (int round = 0; round < 150; round++) {
        fresh_tree();
        static const char *const names[] = {"proc/cgroup", "proc/mountinfo",
                                            "sys/fs/cgroup/a/cpu.max", "sys/fs/cgroup/cpu.max",
                                            "sys/fs/cgroup/cpu/a/cpu.cfs_quota_us"};
        for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
            size_t len = 0, want = rnd(&seed) % (f < 2 ? 12000 : 80);
            while (len < want) {
                if (rnd(&seed) % 4 == 0) {
                    text[len++] = (char)rnd(&seed);
                } else {
                    const char *p = pieces[rnd(&seed) % (sizeof pieces / sizeof pieces[0])];
                    size_t n = *p ? strlen(p) : 1;
                    if (len + n > want)
                        break;
                    memcpy(text + len, p, n);
                    len += n;
                }
            }
            if (f == 0 && rnd(&seed) % 2)
                len += (size_t)snprintf(text + len, 40, "\n0::/a\n");
            if (f == 1 && rnd(&seed) % 2)
                len += (size_t)snprintf(text + len, 80, "\n" V2_MOUNT);
            put_n(names[f], text, len);
        }
        int n = limit();
        CHECK(n >= 0);
        remove_tree();
    }
    free(text);
}

TEST(strerror_names)
{
    for (int sig = 1; sig <= 127; sig++) {
        const char *s = plait_strerror(PLAIT_KILLED(sig));
        CHECK(s != NULL && strncmp(s, "the process was killed by signal ", 33) == 0);
        CHECK(s[strlen(s) - 1] == ')');
    }
    char want[128];
    snprintf(want, sizeof want,
             "the process was killed by signal %d (SIGRTMIN: Real-time signal 0)", SIGRTMIN);
    CHECK_EQ(strcmp(plait_strerror(PLAIT_KILLED(SIGRTMIN)), want), 0);
    CHECK_EQ(strcmp(plait_strerror(-4000), "Unknown error 4000"), 0);
    CHECK_EQ(strcmp(plait_strerror(4000), "Unknown error 4000"), 0);
    CHECK_EQ(strcmp(plait_strerror(INT_MIN), "Unknown error 2147483647"), 0);
    CHECK_EQ(strcmp(plait_strerror(-ENOENT), "No such file or directory"), 0);
    CHECK_EQ(strcmp(plait_strerror(PLAIT_EXITED(255)), "the process exited with status 255"),
             0);
}

/* A task-local destructor of a plait thread that ends the thread itself (pthread_exit,
 * or a pthread_cancel acted on at a cancellation point in it) after the function
 * returned, or while the thread unwinds from a pthread_exit of the function: the
 * future was completed only after the destructors, so its joiner waited for ever.  It
 * gets the function's outcome (-ECANCELED for one that did not return), once. */
static plait_key exit_key;
static atomic_int exit_destroyed;
static void exiting_destructor(void *v)
{
    atomic_fetch_add(&exit_destroyed, 1);
    if (INT(v) == 1)
        pthread_exit(NULL);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    pthread_testcancel();
}

static void *returns_with_exiting_local(void *arg)
{
    CHECK_EQ(plait_local_set(exit_key, arg), 0);
    return ARG(9);
}

static void *exits_with_exiting_local(void *arg)
{
    CHECK_EQ(plait_local_set(exit_key, arg), 0);
    pthread_exit(NULL);
}

TEST(destructor_that_ends_the_thread)
{
    CHECK_EQ(plait_key_create(&exit_key, exiting_destructor), 0);
    for (int how = 1; how <= 2; how++) {
        for (int returns = 0; returns < 2; returns++) {
            atomic_store(&exit_destroyed, 0);
            plait_task t;
            void *v = NULL;
            CHECK_EQ(plait_thread_start(&t, returns ? returns_with_exiting_local
                                                    : exits_with_exiting_local,
                                        ARG(how), NULL),
                     0);
            int r = plait_join(t, &v, plait_deadline_in(3 * PLAIT_SEC));
            CHECK_EQ(r, returns ? 0 : -ECANCELED);
            if (r != -ETIMEDOUT) {
                CHECK_EQ(INT(v), returns ? 9 : 0);
                CHECK_EQ(plait_join(t, NULL, 0), -ESRCH);
            }
            CHECK_EQ(atomic_load(&exit_destroyed), 1);
        }
    }
}

/* A plait thread that runs a scheduler, one of whose coroutines calls pthread_exit (on
 * its own stack, not the thread's): the thread ends (API.md), and its joiner gets
 * -ECANCELED rather than a wait for ever.  The scheduler winds down first, as when its
 * main returns: the coroutine that ended it (its task-local destructors run as itself)
 * and every other one end as cancelled (a reader blocked on a pipe, in the scheduler's
 * poller; one that ends the thread again as it is cancelled), and their joiners get
 * -ECANCELED; its memory and its poller's descriptors are freed.  (They were left for
 * good: the other coroutines' joiners waited for ever, and the scheduler, its
 * coroutines' futures and its poller's descriptors leaked.)  Twice: main ends the
 * thread, and another coroutine does while main sleeps.  In a child: the unwinding
 * crosses stacks. */
static int ends_pipe[2];
/* for the thread that joins them */
static plait_task ends_reader, ends_exiter, ends_exiting_again;
static plait_key ends_key;
static uint64_t ends_exiter_id, ends_destroyed_as;

static void *reads_the_pipe(void *arg)
{
    (void)arg;
    char c;
    return ARG(plait_read(ends_pipe[0], &c, 1, PLAIT_FOREVER));
}

static void destroyed_as(void *value)
{
    (void)value;
    ends_destroyed_as = plait_in_coroutine() ? plait_task_id() : 0;
}

static void *coro_exits(void *arg)
{
    (void)arg;
    ends_exiter_id = plait_task_id();
    CHECK_EQ(plait_local_set(ends_key, ARG(1)), 0);
    pthread_exit(NULL);
}

static void *exits_when_cancelled(void *arg)
{
    (void)arg;
    if (plait_sleep_until(PLAIT_FOREVER) == -ECANCELED)
        pthread_exit(NULL);
    return NULL;
}

static void *main_that_ends_its_thread(void *arg)
{
    bool main_exits = INT(arg);
    CHECK_EQ(plait_spawn(&ends_reader, reads_the_pipe, NULL), 0);
    if (main_exits) {
        CHECK_EQ(plait_yield(), 0); /* the reader blocks on the pipe */
        pthread_exit(NULL);
    }
    CHECK_EQ(plait_spawn(&ends_exiting_again, exits_when_cancelled, NULL), 0);
    CHECK_EQ(plait_spawn(&ends_exiter, coro_exits, NULL), 0);
    return ARG(plait_sleep_until(PLAIT_FOREVER));
}

static void *thread_runs_sched(void *arg)
{
    plait_run(main_that_ends_its_thread, arg, NULL);
    return ARG(4);
}

/* The checks, in a child: its status says whether they held. */
static void a_coroutine_ends_the_thread(bool main_exits)
{
    CHECK_EQ(pipe2(ends_pipe, O_NONBLOCK), 0); /* (a blocking one blocks the thread) */
    CHECK_EQ(plait_key_create(&ends_key, destroyed_as), 0);
    int fds = count_fds();
    plait_task t;
    void *v = ARG(1);
    CHECK_EQ(plait_thread_start(&t, thread_runs_sched, ARG(main_exits), NULL), 0);
    CHECK_EQ(plait_join(t, &v, plait_deadline_in(3 * PLAIT_SEC)), -ECANCELED);
    CHECK(v == NULL);
    /* done before the thread's end: no wait */
    v = ARG(1);
    CHECK_EQ(plait_join(ends_reader, &v, 0), -ECANCELED);
    CHECK(v == NULL);
    if (!main_exits) {
        CHECK_EQ(plait_join(ends_exiter, NULL, 0), -ECANCELED);
        CHECK_EQ(plait_join(ends_exiting_again, NULL, 0), -ECANCELED);
        CHECK(ends_exiter_id != 0);
        CHECK_EQ(ends_destroyed_as, ends_exiter_id);
    }
    CHECK_EQ(count_fds(), fds); /* the poller's descriptors closed */
    close(ends_pipe[0]);
    close(ends_pipe[1]);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

TEST(coroutine_ends_its_plait_thread)
{
    if (CHECK_TSAN) { /* its pthread_exit interceptor stops a thread on a fiber */
        CHECK_SKIP("ThreadSanitizer refuses pthread_exit from a fiber");
        return;
    }
    for (int main_exits = 0; main_exits < 2; main_exits++) {
        pid_t child = fork_child(true);
        if (child == 0) {
            a_coroutine_ends_the_thread(main_exits);
            child_exit();
        }
        reap_ok(child, 10);
    }
}

/* The starts of plait's threads that tests/test_small_stack_starts leaves out, made from
 * a coroutine on the smallest stack in a fresh process: a process pool (its manager,
 * its workers), and a first wait on a process-shared word (its watcher thread). */
static void *small_body_seven(void *arg)
{
    (void)arg;
    return ARG(7);
}

static void *small_procpool(void)
{
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}), 0);
    plait_task t;
    int64_t x = 12, y = 0;
    CHECK_EQ(plait_procpool_submit(pool, &t, proc_square, &x, sizeof x), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    plait_bytes *b = v;
    CHECK(b != NULL && b->len == sizeof y);
    if (b && b->len == sizeof y)
        memcpy(&y, b->data, sizeof y);
    free(b);
    CHECK_EQ(y, 144);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    return NULL;
}

static void *small_psem_wait(void)
{
    plait_psem *sem;
    CHECK_EQ(plait_psem_create(&sem, 0), 0);
    CHECK_EQ(plait_psem_acquire(sem, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_psem_release(sem), 0);
    CHECK_EQ(plait_psem_acquire(sem, SOON()), 0);
    CHECK_EQ(plait_psem_destroy(sem), 0);
    return NULL;
}

static void *(*small_call)(void);
static void *small_body(void *arg)
{
    (void)arg;
    return small_call();
}

static void *small_main(void *arg)
{
    (void)arg;
    plait_spawn_options o = {.name = "tiny", .stack_size = PLAIT_STACK_MIN};
    plait_task t;
    CHECK_EQ(plait_spawn_opts(&t, small_body, NULL, &o), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

/* Run main as a scheduler's main coroutine in a fresh child process (none of the
 * threads made once per process there yet): its checks must hold within seconds. */
static void run_in_a_child(plait_fn main, int seconds)
{
    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        check_failures = 0; /* the child's own checks only */
        check_run(main, NULL);
        fflush(NULL);
        _exit(check_failures == 0 ? 0 : 1);
    }
    int status = reap_within(child, seconds);
    if (WIFSIGNALED(status))
        fprintf(stderr, "  the child was killed by signal %d\n", WTERMSIG(status));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

static void small_in_a_fresh_process(void *(*call)(void))
{
    if (CHECK_SANITIZED) {
        CHECK_SKIP("sanitizer frames need larger stacks than PLAIT_STACK_MIN");
        return;
    }
    small_call = call;
    run_in_a_child(small_main, 20);
}

TEST(small_stack_procpool) { small_in_a_fresh_process(small_procpool); }
TEST(small_stack_pshared_watcher) { small_in_a_fresh_process(small_psem_wait); }

/* A plait thread ended by pthread_cancel where plait itself reaches a cancellation point:
 * its release of a semaphore wakes a coroutine of a scheduler asleep in its poller,
 * which plait does by writing the scheduler's eventfd under the scheduler's inbox lock.
 * The write acted on the pending cancellation, the thread unwound holding that lock,
 * and the scheduler spun on it for ever at its next look at its inbox.  The wake-up is
 * now no cancellation point: the coroutine gets the semaphore, and the thread's joiner
 * -ECANCELED at its next cancellation point.  In a child (a hang is a failure). */
static plait_sem *cancel_sem;
static atomic_int sched_tid;
static int cancel_pipe[2];

static void *cancelled_releaser(void *arg)
{
    (void)arg;
    wait_asleep(&sched_tid); /* the scheduler is parked in its poller */
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    CHECK_EQ(plait_sem_release(cancel_sem), 0);
    pthread_testcancel();
    return NULL; /* not reached */
}

static void *fd_waiter(void *arg)
{
    (void)arg; /* keeps the poller busy: the scheduler parks in it */
    CHECK_EQ(plait_wait_fd(cancel_pipe[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    return NULL;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    CHECK_EQ(pipe(cancel_pipe), 0);
    CHECK_EQ(plait_sem_create(&cancel_sem, 0), 0);
    plait_task fw, th;
    CHECK_EQ(plait_spawn(&fw, fd_waiter, NULL), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_thread_start(&th, cancelled_releaser, NULL, NULL), 0);
    atomic_store(&sched_tid, gettid_());
    CHECK_EQ(plait_sem_acquire(cancel_sem, plait_deadline_in(3 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), -ECANCELED);
    CHECK_EQ(write(cancel_pipe[1], "x", 1), 1);
    CHECK_EQ(plait_join(fw, NULL, SOON()), 0);
    return NULL;
}

TEST(thread_cancelled_inside_a_wake_up)
{
    run_in_a_child(cancel_main, 8);
}

/* The same in plait_process_start and plait_join: a plait thread with a pthread_cancel
 * pending starts a process and joins it.  The cancellation was acted on in the close of
 * the process's pidfd as the join freed its record: the descriptor, the record and the
 * future were left.  Nothing is left now, and a process started after it starts. */
static ssize_t child_nothing(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    return 0;
}

static void *cancelled_starter(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    plait_task t;
    if (plait_process_start(&t, child_nothing, NULL, 0, NULL, NULL) == 0)
        plait_join(t, NULL, SOON());
    pthread_testcancel();
    return NULL; /* not reached */
}

static void *process_after_cancel_main(void *arg)
{
    (void)arg;
    plait_task th, p;
    /* the process manager, its descriptors, started before the count */
    CHECK_EQ(plait_process_start(&p, child_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(p, NULL, SOON()), 0);
    int fds = count_fds();
    CHECK_EQ(plait_thread_start(&th, cancelled_starter, NULL, NULL), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), -ECANCELED);
    /* the join of the process freed it, its pidfd closed, though the cancellation was
     * acted on at that close (it was not: the descriptor and the process's record
     * were left) */
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(plait_process_start(&p, child_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(p, NULL, plait_deadline_in(3 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(thread_cancelled_inside_a_process_start)
{
    run_in_a_child(process_after_cancel_main, 8);
}

/* A plait thread with a pthread_cancel pending makes the default pool (its first
 * plait_to_thread): plait_cpu_count, sizing it under the default pool's lock, now
 * reads /proc and the cgroup files, and open() acted on the cancellation there: the
 * thread unwound holding the lock, and every later plait_to_thread of the process
 * waited for it for ever (and the count's scratch memory was left).  In a fresh
 * child, where the default pool is not made yet. */
static void *cancelled_offloader(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    void *v = NULL;
    plait_to_thread(small_body_seven, NULL, &v, SOON());
    pthread_testcancel();
    return NULL; /* not reached */
}

static void *default_pool_after_cancel_main(void *arg)
{
    (void)arg;
    plait_task th;
    CHECK_EQ(plait_thread_start(&th, cancelled_offloader, NULL, NULL), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), -ECANCELED);
    void *v = NULL;
    CHECK_EQ(plait_to_thread(small_body_seven, NULL, &v, plait_deadline_in(3 * PLAIT_SEC)), 0);
    CHECK_EQ(INT(v), 7);
    return NULL;
}

TEST(thread_cancelled_making_the_default_pool)
{
    run_in_a_child(default_pool_after_cancel_main, 8);
}

/* The same thread destroying a thread pool and a process pool: pthread_join of a
 * worker (the thread pool) and close() (the process pool) acted on the cancellation
 * half way through, leaving what was not freed yet. */
static void *cancelled_destroyer(void *arg)
{
    (void)arg;
    plait_pool *pool;
    plait_procpool *pp;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    CHECK_EQ(plait_procpool_create(&pp, &(plait_procpool_options){.processes = 1}), 0);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_shutdown(pp, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    plait_procpool_destroy(pp);
    plait_pool_destroy(pool);
    pthread_testcancel();
    return NULL; /* not reached */
}

static void *destroy_after_cancel_main(void *arg)
{
    (void)arg;
    plait_task p, th;
    /* the process manager and its descriptors first */
    CHECK_EQ(plait_process_start(&p, child_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(p, NULL, SOON()), 0);
    int fds = count_fds();
    CHECK_EQ(plait_thread_start(&th, cancelled_destroyer, NULL, NULL), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), -ECANCELED);
    CHECK_EQ(count_fds(), fds);
    return NULL;
}

TEST(thread_cancelled_destroying_pools)
{
    run_in_a_child(destroy_after_cancel_main, 8);
}

RUN_TESTS(CASE(thread_cancelled_making_the_default_pool), CASE(thread_cancelled_destroying_pools),
          CASE(thread_cancelled_inside_a_process_start), CASE(thread_cancelled_inside_a_wake_up), CASE(small_stack_procpool), CASE(small_stack_pshared_watcher),
          CASE(coroutine_ends_its_plait_thread), CASE(destructor_that_ends_the_thread),
          CASE(files_that_are_not_files), CASE(dotdot_path_stays_in_the_hierarchy),
          CASE(mount_that_holds_the_cgroup), CASE(long_and_odd_lines), CASE(random_trees),
          CASE(strerror_names))
