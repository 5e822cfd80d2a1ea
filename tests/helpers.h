/*
 * helpers.h — what the concurrency tests share: schedulers on their own threads,
 * plain threads, deadlines that turn a hang into a failure, timing checks with a
 * margin that holds on a loaded 2-core machine, and a cheap random generator.
 */
#ifndef PLAIT_TEST_HELPERS_H
#define PLAIT_TEST_HELPERS_H

#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define ARG(x) ((void *)(intptr_t)(x))
#define INT(p) ((int)(intptr_t)(p))
/* A deadline for waits that must not fail: a hang becomes a failure, not a stall. */
#define SOON() plait_deadline_in(10 * PLAIT_SEC)
/* A call that had to wait for a deadline `wait` after `start` took at least that,
 * and not absurdly longer. */
#define CHECK_TOOK(start, wait)                                                          \
    do {                                                                                 \
        int64_t took_ = plait_now() - (start);                                           \
        CHECK(took_ >= (wait));                                                          \
        CHECK(took_ < (wait) + 2 * PLAIT_SEC);                                           \
        if (took_ < (wait) || took_ >= (wait) + 2 * PLAIT_SEC)                           \
            fprintf(stderr, "  it took %.3f s, waiting %.3f s\n", (double)took_ / PLAIT_SEC, \
                    (double)(wait) / PLAIT_SEC);                                         \
    } while (0)
/* A call that must not block returned promptly. */
#define CHECK_PROMPT(start) CHECK(plait_now() - (start) < PLAIT_SEC)

/* A KiB figure of the process's /proc/self/status ("VmSize", "RssShmem"), -1 when it
 * cannot be read. */
static inline long status_kb(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':' &&
            sscanf(line + n + 1, "%ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The process's address space in KiB (VmSize), -1 when it cannot be read. */
static inline long vm_size_kb(void) { return status_kb("VmSize"); }

/* ---- helpers: schedulers on their own threads, plain threads, randomness ---- */

typedef struct {
    pthread_t th;
    plait_fn fn;
    void *arg;
    int rc;
} sched_thread;

static inline void *sched_thread_body(void *p)
{
    sched_thread *st = p;
    st->rc = plait_run(st->fn, st->arg, NULL);
    return NULL;
}

/* Start a thread that runs fn(arg) as the main coroutine of its own scheduler. */
static inline void sched_thread_start(sched_thread *st, plait_fn fn, void *arg)
{
    st->fn = fn;
    st->arg = arg;
    st->rc = 1;
    CHECK_EQ(pthread_create(&st->th, NULL, sched_thread_body, st), 0);
}

static inline void sched_thread_join(sched_thread *st)
{
    CHECK_EQ(pthread_join(st->th, NULL), 0);
    CHECK_EQ(st->rc, 0);
}

static inline void thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    CHECK_EQ(pthread_create(th, NULL, fn, arg), 0);
}

static inline void thread_join(pthread_t th) { CHECK_EQ(pthread_join(th, NULL), 0); }

static inline uint32_t rnd(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (uint32_t)(x >> 32);
}

static inline int gettid_(void) { return (int)syscall(SYS_gettid); }

/* Pin the calling thread to the first CPU of its mask (threads and processes it makes
 * from then on take that mask): 0, or -1. */
static inline int pin_to_one_cpu(void)
{
    cpu_set_t set, one;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set)) {
            CPU_SET(i, &one);
            break;
        }
    return sched_setaffinity(0, sizeof one, &one);
}

/* A function for another process (plait_proc_fn): its 8-byte argument squared. */
static inline ssize_t proc_square(const void *arg, size_t len, void *out, size_t cap)
{
    int64_t v;
    if (len != sizeof v || cap < sizeof v)
        return -EINVAL;
    memcpy(&v, arg, sizeof v);
    v *= v;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

/* Wait until *flag is set (by another thread), looking every millisecond: true, or
 * false once SOON() has passed. */
static inline bool wait_for_flag(atomic_int *flag)
{
    int64_t deadline = SOON();
    struct timespec ms = {0, PLAIT_MS};
    while (atomic_load(flag) == 0) {
        if (plait_now() > deadline)
            return false;
        nanosleep(&ms, NULL);
    }
    return true;
}

/* The same, a failure if it never is. */
static inline void wait_for(atomic_int *flag)
{
    if (!wait_for_flag(flag))
        CHECK(!"the flag was never set");
}

/* Descriptors open as the directory dir lists them (/proc/self/fd, or
 * /proc/thread-self/fd once the main thread is gone), not counting the one that reads
 * it; -1 when it cannot be read. */
static inline int count_fds_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Descriptors open in this process now; -1 when they cannot be counted. */
static inline int count_fds(void)
{
    return count_fds_in("/proc/self/fd");
}

/* The first line of the file at path into buf ("" when it cannot be read). */
static inline void read_first_line(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, (int)cap, f))
            buf[0] = 0;
        fclose(f);
    }
}

/* The state letter of a thread or process in /proc/ID/stat ('S': asleep in the
 * kernel), '?' when it cannot be read. */
static inline char thread_state(int tid)
{
    char path[64], line[512];
    /* (by its task entry: qemu-user answers /proc/PID/stat of its own process itself,
     * with the state R always, and a wait of the main thread was never seen asleep) */
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", tid, tid);
    read_first_line(path, line, sizeof line);
    const char *paren = strrchr(line, ')'); /* "tid (name) S ..." */
    return paren && paren[1] == ' ' && paren[2] ? paren[2] : '?';
}

/* The stacks of process pid and of its children onto stderr, by gdb where installed,
 * 20 s at most each: what a child that hung in CI leaves to look at (a tool run
 * under test_tool_faults once did not end in 60 s, once in hundreds of runs). */
static inline void dump_process_stacks(pid_t pid)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null || exit 0; "
             "for p in %d $(pgrep -P %d); do echo \"== the stacks of process $p:\"; "
             "timeout 20 gdb -q -batch -nx -p $p -ex 'thread apply all bt' 2>&1 | "
             "grep -v '^\\[\\|^$' | head -300; done >&2",
             (int)pid, (int)pid);
    if (system(cmd) != 0) { /* what it could print is printed */
    }
}

/* The first line of file path into buf (cap bytes, NUL-ended; empty if unreadable). */
static inline void first_line_of(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)cap, f))
        buf[0] = '\0';
    if (f)
        fclose(f);
}

/* The id of this process's thread named `name` (what it names itself as it starts),
 * or -1. */
static inline pid_t thread_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    pid_t found = -1;
    for (struct dirent *e; d && found < 0 && (e = readdir(d));) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (f && fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0 &&
            comm[strlen(name)] == '\n')
            found = atoi(e->d_name);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

/* Reap the child pid, waiting for it (through its pidfd) at most `seconds`: one that
 * has not ended by then is a failure, its stacks are printed (dump_process_stacks),
 * and it is killed.  Its wait status; uses no plait call. */
static inline int reap_within(pid_t pid, int seconds)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    CHECK(fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ended = fd >= 0 ? poll(&pfd, 1, seconds * 1000) : 0;
    if (fd >= 0)
        close(fd);
    if (ended != 1) {
        CHECK(!"the child did not end in time");
        dump_process_stacks(pid);
        kill(pid, SIGKILL);
    }
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

/* Let every ready coroutine of this scheduler run until it blocks (a few rounds, for
 * chains of same-scheduler wake-ups). */
static inline void settle(void)
{
    for (int i = 0; i < 8; i++)
        CHECK_EQ(plait_yield(), 0);
}

/* The first line of /proc/self/task/TID/FILE into buf ("" when it cannot be read). */
static inline void read_task_line(const char *tid, const char *file, char *buf, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/%s", tid, file);
    read_first_line(path, buf, cap);
}

/* The system call thread (or process) id is in, from /proc/ID/syscall: its number and
 * first two arguments; false when it is in none (running) or the file cannot be read.
 * Under qemu-user the number is the host's, which matches no SYS_ constant of the
 * guest. */
static inline bool thread_syscall(int id, long *nr, unsigned long args[2])
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/syscall", id);
    read_first_line(path, line, sizeof line);
    return sscanf(line, "%ld %lx %lx", nr, &args[0], &args[1]) == 3;
}

/* Whether thread (or child process) id sleeps in a lock's wait: a futex FUTEX_WAIT or a
 * priority-inheritance lock, what glibc's mutexes and the sanitizers' runtimes sleep
 * in.  plait's own waits never do (FUTEX_WAIT_BITSET, src/futex.c; futex_waitv,
 * src/pfutex.c; or the poller's wait). */
static inline bool thread_in_lock_wait(int id)
{
    long nr;
    unsigned long args[2];
    if (!thread_syscall(id, &nr, args) || nr != SYS_futex)
        return false;
    int cmd = (int)(args[1] & FUTEX_CMD_MASK);
    return cmd == FUTEX_WAIT || cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2;
}

/* Whether thread (or child process) id sleeps in the kernel: state S, in any wait. */
static inline bool thread_asleep(int id)
{
    return thread_state(id) == 'S';
}

/* Whether thread (or child process) id sleeps, and not in a lock's wait: in state S of
 * /proc/ID/stat, but not on a lock of libc's or a sanitizer's that it met on its way
 * into the wait under test, which state S alone took for that wait (stop 35's CI). */
static inline bool thread_asleep_in_wait(int id)
{
    return thread_asleep(id) && !thread_in_lock_wait(id);
}

/* Wait until the thread (or child process) whose id will appear in *tid is asleep in
 * its wait (thread_asleep_in_wait).  Each one publishes its id just before the wait
 * under test.  A failure after SOON(). */
static inline void wait_asleep(atomic_int *tid)
{
    if (!wait_for_flag(tid)) {
        CHECK(!"the thread never started waiting");
        return;
    }
    int64_t deadline = SOON();
    struct timespec ms = {0, PLAIT_MS};
    for (;;) {
        if (thread_asleep_in_wait(atomic_load(tid)))
            return;
        if (plait_now() > deadline) {
            CHECK(!"the thread never slept in its wait");
            return;
        }
        nanosleep(&ms, NULL);
    }
}

/* How many threads whose name starts with name_prefix are in this process now; with
 * `which`, only those for which it holds (thread_asleep, thread_asleep_in_wait). */
static inline int threads_named(const char *name_prefix, bool (*which)(int id))
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    size_t len = strlen(name_prefix);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char comm[32];
        read_task_line(e->d_name, "comm", comm, sizeof comm);
        if (strncmp(comm, name_prefix, len) == 0)
            n += !which || which(atoi(e->d_name));
    }
    if (d)
        closedir(d);
    return n;
}

/* Wait (10 s at most) until every other thread of this process sleeps in the kernel,
 * before a fork whose child goes on to allocate.  gcc 12's AddressSanitizer takes no
 * allocator lock around fork: a child forked while another thread was inside the
 * allocator (in a malloc, or in the sanitizer's own start of a new thread) inherits
 * that lock held, and hangs at its first allocation that needs it.  A sleeping thread
 * is not inside the allocator; the caller makes sure nothing wakes one before its fork. */
static inline void others_asleep_before_fork(void)
{
    int64_t until = SOON();
    struct timespec ms = {0, PLAIT_MS};
    while (threads_named("", thread_asleep) < threads_named("", NULL) - 1 &&
           plait_now() < until)
        nanosleep(&ms, NULL);
    CHECK_EQ(threads_named("", thread_asleep), threads_named("", NULL) - 1);
}

/* How many threads named "<prefix>-..." sleep in plait's wait at this moment
 * (thread_asleep_in_wait): a pool's worker does so only when it has parked, where state
 * S alone would also count one that sleeps on a lock of libc's or a sanitizer's. */
static inline int pool_workers_sleeping(const char *prefix)
{
    char name_prefix[32];
    snprintf(name_prefix, sizeof name_prefix, "%s-", prefix);
    return threads_named(name_prefix, thread_asleep_in_wait);
}

/* ---- a real cgroup, where the test may make one ---- */

/* Write text into the existing file at path (a cgroup's); whether all of it went. */
static inline bool write_cgroup_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* A cgroup of the test's own with the controller ("cpu", "memory"), at the root of its
 * v1 hierarchy (/sys/fs/cgroup/CONTROLLER) or else of cgroup v2 (the controller enabled
 * for the root's children): its directory in dir, *v1 which.  False where none may be
 * made (not root, no writable hierarchy).  rmdir it once its processes have ended. */
static inline bool make_cgroup(const char *controller, char dir[128], bool *v1)
{
    snprintf(dir, 128, "/sys/fs/cgroup/%s/plait_test_%d", controller, (int)getpid());
    *v1 = mkdir(dir, 0755) == 0;
    if (*v1)
        return true;
    char enable[32];
    snprintf(enable, sizeof enable, "+%s", controller);
    write_cgroup_file("/sys/fs/cgroup/cgroup.subtree_control", enable);
    snprintf(dir, 128, "/sys/fs/cgroup/plait_test_%d", (int)getpid());
    return mkdir(dir, 0755) == 0;
}

/* Move the calling process into the cgroup at dir: whether it went. */
static inline bool join_cgroup(const char *dir)
{
    char file[192], pid[32];
    snprintf(file, sizeof file, "%s/cgroup.procs", dir);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    return write_cgroup_file(file, pid);
}

/* Run fn as the main coroutine of a scheduler in a child process, its standard error
 * into out (NUL-terminated); the child's wait status (-1: no child).  The child exits 0
 * when plait_run returns 0 and its checks passed, else 4. */
static inline int run_with_stderr_in_child(plait_fn fn, char *out, size_t size)
{
    int fds[2];
    out[0] = '\0';
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        int r = plait_run(fn, NULL, NULL);
        _exit(r == 0 && check_failures == 0 ? 0 : 4);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (pid > 0 && len < size - 1 && (n = read(fds[0], out + len, size - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    return status;
}

/* How long cpu_hog runs: 1 s by default (20 thresholds of 50 ms: robust under load). */
static int64_t cpu_hog_ns = PLAIT_SEC;

/* A coroutine that runs cpu_hog_ns without ever yielding: the pitfall the
 * slow-coroutine warning exists for. */
static inline void *cpu_hog(void *unused)
{
    (void)unused;
    int64_t until = plait_now() + cpu_hog_ns;
    while (plait_now() < until)
        ;
    return NULL;
}

/* A scheduler's main: cpu_hog as a coroutine named 'cpu-hog', joined. */
static inline void *run_cpu_hog(void *unused)
{
    (void)unused;
    plait_task t;
    plait_spawn_options o = {.name = "cpu-hog"};
    CHECK_EQ(plait_spawn_opts(&t, cpu_hog, NULL, &o), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    return NULL;
}

/* check_run(main, NULL) with stderr captured into buf (cap bytes, NUL-ended); returns
 * the bytes captured. */
static inline size_t check_run_capturing_stderr(plait_fn main, char *buf, size_t cap)
{
    FILE *capture = tmpfile();
    CHECK(capture != NULL);
    if (!capture)
        return 0;
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(fileno(capture), STDERR_FILENO);
    check_run(main, NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(capture);
    size_t n = fread(buf, 1, cap - 1, capture);
    buf[n] = '\0';
    fclose(capture);
    return n;
}

#ifdef CHECK_WRAP_SYSCALL
/* For a test linked with -Wl,--wrap=syscall that defines CHECK_WRAP_SYSCALL before
 * including this: every syscall(2) of the library goes to the test's
 * wrapped_syscall(n, a) (which calls real_syscall(n, a) for the call itself).  Six
 * arguments are read whatever the call passed, as syscall(2) itself reads them (the
 * kernel ignores those the call does not take); reading those not passed reads the
 * caller's stack, which AddressSanitizer would take for an underflow of its frame
 * (plait__wake_fd_write's three-argument write). */
#include <stdarg.h>
long __real_syscall(long n, ...);
long __wrap_syscall(long n, ...);
static long wrapped_syscall(long n, const long a[6]);

__attribute__((no_sanitize_address)) long __wrap_syscall(long n, ...)
{
    va_list ap;
    va_start(ap, n);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    return wrapped_syscall(n, a);
}

static inline long real_syscall(long n, const long a[6])
{
    return __real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
#endif

#endif
