/*
 * test_fork_without_handlers.c — a child of _Fork(), which runs no fork handler.  plait
 * finds out there that it is in a new process only when it is next called (a word the
 * kernel zeroes in every child: the fork epoch moves on then), and must then treat
 * what it inherited as its parent's:
 *  - descriptors: the child may have closed everything it inherited (close_range, as
 *    programs do after a fork) and opened files of its own at those numbers.  plait
 *    closed or put over the numbers its parent's objects had used, by then the
 *    child's own files: the process manager's epoll set and eventfd (closed), the
 *    signal dispatcher's pipe (dup3 over them), a plain thread's wake-up eventfd (kept:
 *    a wait beside a file always ready spun past its deadline); and a plain fork()
 *    made by such a child closed them in the grandchild;
 *  - handles: a task of the parent's (a process: plait_process_kill signalled the
 *    process of the child's own that reused the pidfd's number) and the parent's
 *    pools are -EPERM there; the default pool is the child's own;
 *  - threads: a dispatcher refused once is tried again; a coroutine's wait on a
 *    process-shared object gets a watcher thread of the child's own;
 *  - a parent's plait_file_read under way at the fork is no call of the child's;
 *  - all of this where parent and child have the same process id (each the first of a
 *    PID namespace): plait told the child by its pid, and took it for its parent; and
 *    where the kernel wipes nothing in children, the signal handler writes to no file.
 * (Two reviews' reproducers; each case failed first.)
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

enum { OWN_FILES = 12 };
enum { NO_NAMESPACE = 77, NO_FILTER = 78 }; /* a child's "cannot be tested here" */
static int own[OWN_FILES];

/* Close what the process inherited and open files of its own at the lowest numbers
 * (where the parent's were). */
static void close_all_and_open_own_files(void)
{
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        _exit(11);
    for (int i = 0; i < OWN_FILES; i++)
        own[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
}

/* How many of them no longer name /dev/zero. */
static int own_files_lost(void)
{
    int lost = 0;
    for (int i = 0; i < OWN_FILES; i++) {
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", own[i]);
        ssize_t n = own[i] < 0 ? -1 : readlink(path, target, sizeof target - 1);
        if (n > 0)
            target[n] = '\0';
        if (n <= 0 || strcmp(target, "/dev/zero") != 0) {
            fprintf(stderr, "  [%d] its descriptor %d: %s\n", (int)getpid(), own[i],
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

/* The three calls that make a descriptor of plait's in the parent. */
static int use_all_three(void)
{
    int r = start_a_process();
    r = r ? r : watch_a_signal();
    return r ? r : wait_on_a_pipe();
}

/* Wait for a child of the test's in bounded time: its exit status, or minus its
 * signal. */
static int outcome_of(pid_t pid)
{
    int status = reap_within(pid, 30);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Run child() in a child of _Fork() (after the other threads have settled, where a
 * sanitizer's own locks must be free), and check that it exits 0. */
static void in_a_child_of_fork_without_handlers(int (*child)(void))
{
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    fflush(NULL);
    pid_t pid = _Fork();
    if (pid == 0) {
        alarm(20); /* (a call that hangs or spins: the child dies of SIGALRM) */
        _exit(child());
    }
    CHECK(pid > 0);
    CHECK_EQ(outcome_of(pid), 0);
}

/* ---- descriptors ---- */

static int (*first_call)(void);

/* The child closes what it inherited, opens its own files, makes its first call, and
 * says whether the call worked (status 1-9) and its files stayed (10). */
static int first_call_keeps_own_files(void)
{
    close_all_and_open_own_files();
    int r = first_call();
    return r ? r : own_files_lost() ? 10 : 0;
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
    first_call = start_a_process;
    in_a_child_of_fork_without_handlers(first_call_keeps_own_files);
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
                          * is plait's from the start, and wrote to the parent's pipe's
                          * number */
    CHECK_EQ(plait_signals_create(&kept, &usr1, 1), 0);
    first_call = watch_a_signal;
    in_a_child_of_fork_without_handlers(first_call_keeps_own_files);
    CHECK_EQ(plait_signals_destroy(kept), 0);
    CHECK_EQ(watch_a_signal(), 0);
}

TEST(a_plain_threads_wait)
{
    CHECK_EQ(wait_on_a_pipe(), 0); /* this thread's wake-up eventfd */
    first_call = wait_on_a_pipe;
    in_a_child_of_fork_without_handlers(first_call_keeps_own_files);
    CHECK_EQ(wait_on_a_pipe(), 0);
}

/* The child, which has not called plait since it closed what it inherited, forks
 * (fork handlers run): the grandchild keeps the files it inherited from the child. */
static int grandchild_keeps_own_files_as_they_are(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(own_files_lost() ? 10 : 0);
    int r = pid < 0 ? 1 : outcome_of(pid);
    return r ? r : own_files_lost() ? 12 : 0;
}

static int grandchild_keeps_own_files(void)
{
    close_all_and_open_own_files();
    return grandchild_keeps_own_files_as_they_are();
}

TEST(a_fork_it_makes_itself)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    CHECK_EQ(use_all_three(), 0);
    in_a_child_of_fork_without_handlers(grandchild_keeps_own_files);
}

/* The child's first wait on a watcher it inherited is refused its dispatcher thread
 * (-EAGAIN); the next wait tries again.  It did not (the dispatcher looked started
 * once the child's pipe was made), and a signal sent during it was never seen. */
static atomic_bool refusing_threads;
int __real_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg);
int __wrap_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg);
int __wrap_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg)
{
    if (atomic_load(&refusing_threads))
        return EAGAIN;
    return __real_plait__thread_create(thread, attr, fn, arg);
}

static plait_signals *inherited;

static void *send_usr1_soon(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 50 * PLAIT_MS};
    nanosleep(&pause, NULL);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static int dispatcher_refused_then_made(void)
{
    atomic_store(&refusing_threads, true);
    if (plait_signals_wait(inherited, plait_deadline_in(PLAIT_SEC)) != -EAGAIN)
        return 1;
    atomic_store(&refusing_threads, false);
    pthread_t sender;
    if (pthread_create(&sender, NULL, send_usr1_soon, NULL) != 0)
        return 2;
    int r = plait_signals_wait(inherited, plait_deadline_in(10 * PLAIT_SEC));
    pthread_join(sender, NULL);
    return r == SIGUSR1 ? 0 : 3;
}

TEST(a_refused_dispatcher_is_tried_again)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(&inherited, &usr1, 1), 0);
    in_a_child_of_fork_without_handlers(dispatcher_refused_then_made);
    CHECK_EQ(plait_signals_destroy(inherited), 0);
}

/* Where the kernel refuses MADV_WIPEONFORK (before 4.14, or a sandbox's filter), a child
 * of _Fork() cannot be told apart before its first fork handler: what it does is its
 * parent's.  But the signal handler at least writes into no pipe of the parent's (by
 * then maybe the child's file): it looks at the pid too.  The case runs the test anew
 * with a seccomp filter refusing MADV_WIPEONFORK, installed before plait's constructor
 * asks for it. */
#define REFUSE_WIPE_ENV "PLAIT_TEST_REFUSE_WIPEONFORK"

__attribute__((constructor(101))) static void refuse_wipe_on_fork_if_asked(void)
{
    if (!getenv(REFUSE_WIPE_ENV))
        return;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_WIPEONFORK, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(NO_FILTER);
}

/* The child sends itself a watched signal: none of its files gets a byte. */
static int a_signal_writes_none_of_its_files(void)
{
    close_all_and_open_own_files();
    int sizes[OWN_FILES];
    for (int i = 0; i < OWN_FILES; i++) { /* files that show a byte written */
        close(own[i]);
        own[i] = memfd_create("own", MFD_CLOEXEC);
    }
    if (kill(getpid(), SIGUSR1) != 0)
        return 1;
    for (int i = 0; i < OWN_FILES; i++) {
        struct stat st;
        sizes[i] = fstat(own[i], &st) == 0 ? (int)st.st_size : -1;
        if (sizes[i] != 0) {
            fprintf(stderr, "  its file %d: %d bytes\n", own[i], sizes[i]);
            return 10;
        }
    }
    return 0;
}

TEST(where_the_kernel_wipes_nothing)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork: ThreadSanitizer's books are the parent's there");
    return;
#endif
    if (getenv(REFUSE_WIPE_ENV)) { /* the run anew, under the filter */
        int usr1 = SIGUSR1;
        plait_signals *w;
        CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0); /* the handler and the pipe */
        in_a_child_of_fork_without_handlers(a_signal_writes_none_of_its_files);
        CHECK_EQ(plait_signals_destroy(w), 0);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv(REFUSE_WIPE_ENV, "1", 1);
        setenv("PLAIT_TEST_ONLY", "where_the_kernel_wipes_nothing", 1);
        execl("/proc/self/exe", "test_fork_without_handlers", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    int r = outcome_of(pid);
    if (r == NO_FILTER) {
        CHECK_SKIP("no seccomp filter here");
        return;
    }
    CHECK_EQ(r, 0);
}

/* A plait_file_read of the parent's is under way on a pool worker when the parent
 * closes its descriptor (the number then holds a placeholder until the read ends), and
 * then forks without handlers.  The child, whose files take that number, closes one
 * there and forks: the parent's read is no call of the child's.  The child's close
 * found it unfinished and put a placeholder of its own in its file's place; the plain
 * fork closed the number in the grandchild. */
static int fifo[2];

static void *read_the_fifo(void *arg)
{
    (void)arg;
    char c;
    return (void *)(intptr_t)plait_file_read(fifo[0], &c, 1, -1);
}

static void *a_scheduler_reading(void *arg)
{
    void *result = NULL;
    int r = plait_run(read_the_fifo, arg, &result);
    return (void *)(intptr_t)(r ? r : (intptr_t)result);
}

/* Whether a thread of this process is in read(2) on fd (/proc/self/task/N/syscall). */
static bool a_thread_reads(int fd)
{
    char want[32];
    snprintf(want, sizeof want, "0 0x%x ", fd);
    bool found = false;
    DIR *tasks = opendir("/proc/self/task");
    for (struct dirent *e; tasks && !found && (e = readdir(tasks));) {
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(path, "r");
        found = f && fgets(line, sizeof line, f) && strncmp(line, want, strlen(want)) == 0;
        if (f)
            fclose(f);
    }
    if (tasks)
        closedir(tasks);
    return found;
}

static int close_and_fork_beside_the_parents_read(void)
{
    close_all_and_open_own_files();
    if (plait_close(fifo[0]) != 0) /* (the child's own /dev/zero now) */
        return 1;
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fifo[0]);
    if (readlink(path, target, sizeof target) >= 0)
        return 2; /* still open: a placeholder */
    for (int i = 0; i < OWN_FILES; i++)
        if (own[i] == fifo[0])
            own[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC); /* (the lowest: there again) */
    return grandchild_keeps_own_files_as_they_are();
}

TEST(a_file_read_of_the_parents)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork: ThreadSanitizer's books are the parent's there");
    return;
#endif
    char name[] = "/tmp/plait-fifo-XXXXXX";
    CHECK(mkdtemp(name) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", name);
    CHECK_EQ(mkfifo(path, 0600), 0);
    fifo[0] = open(path, O_RDWR | O_CLOEXEC); /* (no end of file: the read waits) */
    fifo[1] = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fifo[0] >= 0 && fifo[1] >= 0);
    pthread_t reader;
    CHECK_EQ(pthread_create(&reader, NULL, a_scheduler_reading, NULL), 0);
    int64_t give_up = SOON();
    while (!a_thread_reads(fifo[0]) && plait_now() < give_up)
        sched_yield();
    CHECK(a_thread_reads(fifo[0]));
    CHECK_EQ(plait_close(fifo[0]), 0); /* a placeholder in the number */
    in_a_child_of_fork_without_handlers(close_and_fork_beside_the_parents_read);
    CHECK_EQ(write(fifo[1], "x", 1), 1);
    void *read_result = NULL;
    CHECK_EQ(pthread_join(reader, &read_result), 0);
    CHECK_EQ((intptr_t)read_result, 1);
    close(fifo[1]);
    unlink(path);
    rmdir(name);
}

/* A coroutine's wait on a process-shared object is woken by a watcher thread.  The
 * child's copies of its parent's watchers have no thread: its coroutines' waits were
 * woken only by their 100 ms look.  The child's wait gets a watcher of its own. */
static plait_psem *shared_sem;

static void *acquire_the_sem(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_psem_acquire(shared_sem, plait_deadline_in(10 * PLAIT_SEC));
}

static void *release_once_watched(void *found)
{
    int64_t give_up = plait_deadline_in(5 * PLAIT_SEC);
    while (threads_named("plait-pwatch", NULL) == 0 && plait_now() < give_up)
        sched_yield();
    *(bool *)found = threads_named("plait-pwatch", NULL) > 0;
    plait_psem_release(shared_sem);
    return NULL;
}

static int a_coroutine_waits_on_a_shared_sem(void)
{
    bool found = false;
    pthread_t releaser;
    if (pthread_create(&releaser, NULL, release_once_watched, &found) != 0)
        return 1;
    void *result = (void *)1;
    int r = plait_run(acquire_the_sem, NULL, &result);
    pthread_join(releaser, NULL);
    return r != 0 || result != NULL ? 2 : found ? 0 : 3;
}

static void *time_out_on_the_sem(void *arg)
{
    (void)arg;
    int r = plait_psem_acquire(shared_sem, plait_deadline_in(20 * PLAIT_MS));
    return r == -ETIMEDOUT ? NULL : (void *)1;
}

TEST(a_coroutines_wait_on_a_shared_object)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    CHECK_EQ(plait_psem_create(&shared_sem, 0), 0);
    void *result = (void *)1;
    CHECK_EQ(plait_run(time_out_on_the_sem, NULL, &result), 0); /* the parent's watcher */
    CHECK(result == NULL);
    CHECK(threads_named("plait-pwatch", NULL) > 0);
    in_a_child_of_fork_without_handlers(a_coroutine_waits_on_a_shared_sem);
    CHECK_EQ(plait_psem_destroy(shared_sem), 0);
}

/* ---- the parent's handles ---- */

static plait_task parents_process, parents_pool_task;
static plait_pool *parents_pool;

static void *seven(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)7;
}

static int handles_are_the_parents(void)
{
    close_all_and_open_own_files(); /* (a pidfd's number reused) */
    void *v = NULL;
    plait_task t;
    if (plait_process_kill(parents_process, SIGTERM) != -EPERM ||
        plait_cancel(parents_process) != -EPERM || plait_join(parents_process, NULL, 0) != -EPERM ||
        plait_detach(parents_process) != -EPERM)
        return 1;
    if (plait_pool_submit(parents_pool, &t, seven, NULL) != -EPERM ||
        plait_cancel(parents_pool_task) != -EPERM || plait_join(parents_pool_task, &v, 0) != -EPERM)
        return 2;
    /* the default pool is the child's own (its first use in the parent came before) */
    if (plait_to_thread(seven, NULL, &v, plait_deadline_in(10 * PLAIT_SEC)) != 0 ||
        (intptr_t)v != 7)
        return 3;
    return own_files_lost() ? 10 : 0;
}

TEST(the_parents_tasks_and_pools)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    void *v = NULL;
    CHECK_EQ(plait_to_thread(seven, NULL, &v, SOON()), 0); /* the default pool runs */
    CHECK_EQ(plait_pool_create(&parents_pool, &(plait_pool_options){.threads = 1}), 0);
    CHECK_EQ(plait_pool_submit(parents_pool, &parents_pool_task, seven, NULL), 0);
    CHECK_EQ(plait_join(parents_pool_task, &v, SOON()), 0); /* (a copy of it stays) */
    CHECK_EQ(plait_pool_submit(parents_pool, &parents_pool_task, seven, NULL), 0);
    CHECK_EQ(plait_process_start(&parents_process, nothing, NULL, 0, NULL, NULL), 0);
    in_a_child_of_fork_without_handlers(handles_are_the_parents);
    CHECK_EQ(plait_join(parents_process, NULL, SOON()), 0);
    CHECK_EQ(plait_join(parents_pool_task, &v, SOON()), 0);
    CHECK_EQ((intptr_t)v, 7);
    CHECK_EQ(plait_pool_shutdown(parents_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(parents_pool), 0);
}

/* ---- the same process id ---- */

static plait_procpool *pid1s_pool;

/* In a child that is pid 1 like its parent: the parent's process pool is the parent's
 * (its copy was taken for the child's own, and a submit crashed), and plait's
 * descriptors are its own. */
static int a_pid1_child(void)
{
    if (getpid() != 1)
        return 23;
    alarm(20);
    plait_task t;
    if (plait_procpool_submit(pid1s_pool, &t, nothing, NULL, 0) != -EPERM)
        return 24;
    close_all_and_open_own_files();
    int r = use_all_three();
    return r ? r : own_files_lost() ? 10 : 0;
}

/* The first of a new PID namespace (pid 1): use plait, move the children to be made to
 * another new namespace, and fork a child there (pid 1 too), with or without fork
 * handlers. */
static int same_pid_in_a_new_namespace(bool without_handlers)
{
    if (getpid() != 1)
        return 20;
    if (use_all_three() != 0 ||
        plait_procpool_create(&pid1s_pool, &(plait_procpool_options){.processes = 1}) != 0)
        return 21;
    if (unshare(CLONE_NEWPID) != 0)
        return 22;
    fflush(NULL);
    pid_t pid = without_handlers ? _Fork() : fork();
    if (pid == 0)
        _exit(a_pid1_child());
    int r = pid < 0 ? 25 : outcome_of(pid);
    return r ? r : plait_procpool_destroy(pid1s_pool) == 0 ? 0 : 26;
}

/* A child of the test's own, whose children go to a new PID namespace (NO_NAMESPACE
 * where it may not make one: CAP_SYS_ADMIN). */
static int in_a_new_namespace(bool without_handlers)
{
    if (unshare(CLONE_NEWPID) != 0)
        return NO_NAMESPACE;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(40);
        _exit(same_pid_in_a_new_namespace(without_handlers));
    }
    return pid < 0 ? 27 : outcome_of(pid);
}

TEST(a_child_with_its_parents_process_id)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    for (int without_handlers = 0; without_handlers < 2; without_handlers++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(in_a_new_namespace(without_handlers));
        CHECK(pid > 0);
        int r = outcome_of(pid);
        if (r == NO_NAMESPACE) {
            CHECK_SKIP("no new PID namespace here (CAP_SYS_ADMIN)");
            return;
        }
        CHECK_EQ(r, 0);
    }
}

RUN_TESTS(CASE(the_process_manager), CASE(the_signal_dispatcher), CASE(a_plain_threads_wait),
          CASE(a_fork_it_makes_itself), CASE(a_refused_dispatcher_is_tried_again),
          CASE(where_the_kernel_wipes_nothing), CASE(a_file_read_of_the_parents),
          CASE(a_coroutines_wait_on_a_shared_object),
          CASE(the_parents_tasks_and_pools),
          CASE(a_child_with_its_parents_process_id))
