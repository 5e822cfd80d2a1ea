/* test_no_descriptors.c — descriptor exhaustion across the public API (review
 * 125).  RLIMIT_NOFILE is lowered so that exactly k more descriptors can be made,
 * for k = 0, 1, 2, ... until the call under test succeeds: each failing k must answer
 * a negative code (-EMFILE), leak no descriptor and leave nothing half-made; with the
 * limit back the same call works.  Run on both pollers (PLAIT_POLLER).
 *
 * Defects found (each case failed on the code reviewed):
 * backend_choice_survives_no_descriptors: the poller's kernel interface was chosen
 * once, by a probe (an eventfd and a ring) made at the first poller: made while the
 * process had no descriptor to spare, the probe failed and epoll was chosen for good,
 * where the kernel allows io_uring (plait_io_backend() said "epoll" ever after).
 * resolve, resolve_in_coroutine: out of descriptors plait_resolve said -ENOENT (glibc's
 * EAI_NONAME) or -EBUSY (EAI_SYSTEM with a stray errno), not -EMFILE.
 * fork_from_a_coroutine_short_of_descriptors: a child that could not remake its
 * scheduler's poller called abort().
 * procpool_worker_replaced_with_no_descriptor_left: a worker's replacement that found
 * no descriptor for its pidfd, nor for the retry's timerfd, broke the pool for good.
 * The other cases passed on the code reviewed and stay as regression cases.
 */
#include "fork_child.h"
#include "helpers.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

static struct rlimit saved_limit;

/* Lower the soft limit so that exactly k more descriptors can be made now. */
static void leave_room_for(int k)
{
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    int fd = 0, free_seen = 0;
    for (;; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        if (free_seen++ == k)
            break;
    }
    struct rlimit low = saved_limit;
    low.rlim_cur = (rlim_t)fd;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
}

static void room_back(void) { CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved_limit), 0); }

/* The backend this kernel and environment give a process that has descriptors. */
static void backend_expected(char *name, size_t cap)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        const char *b = plait_io_backend();
        if (write(p[1], b, strlen(b) + 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    memset(name, 0, cap);
    CHECK(read(p[0], name, cap - 1) > 0);
    close(p[0]);
    reap_ok(pid, 10);
}

typedef struct {
    int fd;
    int r;
} first_wait;

/* A wait on a readable descriptor, with a deadline far off: it needs the poller, and
 * answers PLAIT_READABLE at once when the poller could be made.  (A deadline of 1 ms
 * that passed before the wait began was answered by a look, without a poller: a
 * loaded CI machine's first wait thus "succeeded" with no descriptor to spare.) */
static void *wait_once(void *arg)
{
    first_wait *f = arg;
    f->r = plait_wait_fd(f->fd, PLAIT_READABLE, plait_deadline_in(30 * PLAIT_SEC));
    return NULL;
}

TEST(backend_choice_survives_no_descriptors)
{
    char want[32];
    backend_expected(want, sizeof want);
    /* (checked under ThreadSanitizer too: the first wait that once found room at k = 0
     * there, as under ASan since, was the 1 ms deadline's, not TSan's descriptors) */
    pid_t pid = fork_child(true);
    if (pid == 0) { /* a process whose first poller is made short of descriptors */
        int p[2];
        CHECK_EQ(pipe(p), 0);
        CHECK_EQ(write(p[1], "x", 1), 1);
        int before = count_fds();
        int k = 0;
        for (;; k++) {
            first_wait f = {.fd = p[0], .r = 0};
            leave_room_for(k);
            check_run(wait_once, &f);
            room_back();
            CHECK_EQ(count_fds(), before);
            if (f.r == PLAIT_READABLE)
                break;
            CHECK_EQ(f.r, -EMFILE);
            if (k > 8 || f.r != -EMFILE)
                break;
        }
        CHECK(k >= 1); /* the poller takes descriptors */
        CHECK_EQ(strcmp(plait_io_backend(), want), 0);
        if (strcmp(plait_io_backend(), want) != 0)
            fprintf(stderr, "  backend %s, expected %s\n", plait_io_backend(), want);
        child_exit();
    }
    reap_ok(pid, 20);
}


/* ---- a call under test, made with room for k = 0, 1, 2, ... descriptors ---- */

typedef struct scenario {
    const char *name;
    /* 0 and a made object (undone by undo), or -errno */
    int (*attempt)(struct scenario *sc);
    void (*undo)(struct scenario *sc);
    void *obj;
    int fd;
} scenario;

/* This process's children (any state: a zombie is one not reaped) once none is left,
 * or the count when some still are after a while (a killed child is reaped by plait's
 * manager thread, which may take a moment). */
static int children_left(void)
{
    int64_t deadline = plait_deadline_in(2 * PLAIT_SEC);
    for (;;) {
        int n = 0;
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && (e = readdir(d));) {
            char path[300], line[512];
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            if (fgets(line, sizeof line, f)) {
                char *close_paren = strrchr(line, ')');
                int ppid = 0;
                char state;
                if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 &&
                    ppid == getpid())
                    n++;
            }
            fclose(f);
        }
        if (d)
            closedir(d);
        if (n == 0 || plait_now() > deadline)
            return n;
        struct timespec ms = {0, PLAIT_MS};
        nanosleep(&ms, NULL);
    }
}

/* Try sc with room for k = 0, 1, ... until it works: each failure is -EMFILE (or
 * -ENFILE).  check_counts: each failure leaves the descriptor count as it was. */
static void try_until_it_works(scenario *sc, bool check_counts)
{
    int before = count_fds();
    int k = 0, r = -1;
    for (; k < 40; k++) {
        leave_room_for(k);
        r = sc->attempt(sc);
        room_back();
        if (r == 0)
            break;
        if (r != -EMFILE && r != -ENFILE) {
            fprintf(stderr, "  %s: k=%d answered %d (%s)\n", sc->name, k, r,
                    plait_strerror(r));
            CHECK(!"a failure other than -EMFILE");
            break;
        }
        int now = count_fds();
        if (check_counts && now != before) {
            fprintf(stderr, "  %s: k=%d leaked %d descriptors\n", sc->name, k,
                    now - before);
            CHECK_EQ(now, before);
        }
    }
    CHECK_EQ(r, 0);
    if (r == 0 && sc->undo)
        sc->undo(sc);
}

/* In a fresh child (first-time paths: the process manager, the signal pipe, a pool's
 * first worker), try sc until it works; then again, where what is made once (a
 * manager, a thread's wake-up eventfd) is there already, every failure leaving the
 * descriptor count as it was, and the call working as before with room back. */
static void run_scenario(scenario *sc, bool in_child)
{
    pid_t pid = in_child ? fork_child(false) : 0;
    if (pid == 0) {
        if (in_child)
            check_failures = 0; /* the parent's are its own */
        try_until_it_works(sc, false);
        int warm = count_fds();
        try_until_it_works(sc, true);
        CHECK_EQ(count_fds(), warm);
        CHECK_EQ(children_left(), 0); /* none left running, nor unreaped */
        if (in_child)
            child_exit();
        return;
    }
    reap_ok(pid, 30);
}

static atomic_int waiter_tid;

static void *waits_1ms(void *arg)
{
    atomic_store(&waiter_tid, gettid_());
    int *p = arg;
    int r = plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS));
    return PLAIT_FAIL(r == -ETIMEDOUT ? 0 : r); /* a failure is the join's code */
}

/* a plain thread's first wait (its wake-up eventfd) */
static int thread_wait_attempt(scenario *sc)
{
    (void)sc;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    plait_task t;
    int r = plait_thread_start(&t, waits_1ms, p, NULL);
    if (r == 0) {
        r = plait_join(t, NULL, SOON());
        /* the thread's wake-up eventfd is closed as it ends, which may be just after
         * the join: until then the count would be one more */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d", atomic_load(&waiter_tid));
        int64_t deadline = SOON();
        struct timespec ms = {0, PLAIT_MS};
        while (access(path, F_OK) == 0 && plait_now() < deadline)
            nanosleep(&ms, NULL);
        CHECK(access(path, F_OK) != 0);
    }
    close(p[0]);
    close(p[1]);
    return r;
}

static int pool_attempt(scenario *sc)
{
    plait_pool *pool;
    plait_pool_options o = {.threads = 2};
    int r = plait_pool_create(&pool, &o);
    if (r < 0)
        return r;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        CHECK_EQ(plait_pool_destroy(pool), 0);
        return r;
    }
    plait_task t;
    r = plait_pool_submit(pool, &t, waits_1ms, p);
    if (r == 0)
        r = plait_join(t, NULL, SOON());
    close(p[0]);
    close(p[1]);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    (void)sc;
    return r;
}

static ssize_t proc_child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return 0;
}

static int process_attempt(scenario *sc)
{
    (void)sc;
    plait_task t;
    int r = plait_process_start(&t, proc_child, NULL, 0, NULL, NULL);
    if (r < 0)
        return r;
    void *res = ARG(1);
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    return 0;
}

static int exec_attempt(scenario *sc)
{
    (void)sc;
    plait_task t;
    char *argv[] = {"true", NULL};
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE,
                                         PLAIT_STDIO_INHERIT}};
    plait_pipes pp;
    int r = plait_process_exec(&t, NULL, argv, &o, &pp);
    if (r < 0)
        return r;
    close(pp.in);
    close(pp.out);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return 0;
}

static int procpool_attempt(scenario *sc)
{
    (void)sc;
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 2};
    int r = plait_procpool_create(&pool, &o);
    if (r < 0)
        return r;
    plait_task t;
    r = plait_procpool_submit(pool, &t, proc_child, NULL, 0);
    if (r == 0)
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    return r;
}

static int signals_attempt(scenario *sc)
{
    (void)sc;
    plait_signals *w;
    int sig = SIGUSR1;
    int r = plait_signals_create(&w, &sig, 1);
    if (r < 0)
        return r;
    CHECK_EQ(raise(SIGUSR1), 0);
    r = plait_signals_wait(w, SOON());
    CHECK_EQ(r, SIGUSR1);
    CHECK_EQ(plait_signals_destroy(w), 0);
    return r == SIGUSR1 ? 0 : r;
}

static int queue_attempt(scenario *sc)
{
    (void)sc;
    plait_queue *q;
    int r = plait_queue_create(&q, 16, 4);
    if (r < 0)
        return r;
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    CHECK_EQ(plait_queue_destroy(q), 0);
    return 0;
}

static int file_attempt(scenario *sc)
{
    (void)sc;
    int fd = plait_file_open("/dev/null", O_RDONLY, 0);
    if (fd < 0)
        return fd;
    CHECK_EQ(plait_close(fd), 0);
    return 0;
}

static int tcp_attempt(scenario *sc)
{
    (void)sc;
    int l = plait_tcp_listen("127.0.0.1", 0, 0);
    if (l < 0)
        return l;
    plait_addr a;
    int r = plait_local_addr(l, &a);
    CHECK_EQ(r, 0);
    int c = r < 0 ? r : plait_tcp_connect("127.0.0.1", plait_addr_port(&a), SOON());
    int s = c < 0 ? c : plait_accept(l, NULL, SOON());
    if (s >= 0)
        plait_close(s);
    if (c >= 0)
        plait_close(c);
    plait_close(l);
    return s < 0 ? s : 0;
}

static int resolve_attempt(scenario *sc)
{
    (void)sc;
    plait_addr a[4];
    int r = plait_resolve("localhost", 80, PLAIT_STREAM, a, 4, SOON());
    return r > 0 ? 0 : r;
}

static int process_stdio_attempt(scenario *sc)
{
    (void)sc;
    plait_task t;
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_NULL,
                                         PLAIT_STDIO_PIPE}};
    plait_pipes pp;
    int r = plait_process_start(&t, proc_child, NULL, 0, &o, &pp);
    if (r < 0)
        return r;
    CHECK_EQ(pp.out, -1);
    close(pp.in);
    char c;
    CHECK_EQ(plait_read(pp.err, &c, 1, SOON()), 0); /* its end of stderr: it ended */
    close(pp.err);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return 0;
}

static int unix_attempt(scenario *sc)
{
    (void)sc;
    char path[64];
    snprintf(path, sizeof path, "/tmp/plait-emfile-%d.sock", (int)getpid());
    unlink(path);
    int l = plait_unix_listen(path, 0);
    if (l < 0)
        return l;
    int c = plait_unix_connect(path, SOON());
    int s = c < 0 ? c : plait_accept(l, NULL, SOON());
    int r = s;
    if (s >= 0) {
        r = plait_write(c, "y", 1, SOON()) == 1 ? 0 : -EIO;
        char b;
        if (r == 0)
            r = plait_read(s, &b, 1, SOON()) == 1 ? 0 : -EIO;
        plait_close(s);
    }
    if (c >= 0)
        plait_close(c);
    plait_close(l);
    unlink(path);
    return r;
}

static int udp_attempt(scenario *sc)
{
    (void)sc;
    plait_addr a;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int u = plait_udp_bind(&a);
    if (u < 0)
        return u;
    int v = plait_udp_bind(&a);
    if (v < 0) {
        plait_close(u);
        return v;
    }
    plait_close(v);
    plait_close(u);
    return 0;
}

/* a program that cannot be run is -ENOENT once there is room to say so */
static int exec_missing_attempt(scenario *sc)
{
    (void)sc;
    plait_task t;
    char *argv[] = {"/nonexistent/plait-emfile", NULL};
    int r = plait_process_exec(&t, NULL, argv, NULL, NULL);
    if (r == 0) {
        CHECK(!"a missing program ran");
        plait_join(t, NULL, SOON());
        return -EIO;
    }
    return r == -ENOENT ? 0 : r;
}

static void *in_coroutine(void *arg)
{
    scenario *sc = arg;
    run_scenario(sc, false);
    return NULL;
}

#define SCENARIO(name_, attempt_)                                                        \
    TEST(name_)                                                                          \
    {                                                                                    \
        scenario sc = {.name = #name_, .attempt = attempt_};                             \
        run_scenario(&sc, true);                                                         \
    }                                                                                    \
    static void *name_##_main(void *arg)                                                 \
    {                                                                                    \
        (void)arg;                                                                       \
        scenario sc = {.name = #name_ "_in_coroutine", .attempt = attempt_};             \
        return in_coroutine(&sc);                                                        \
    }                                                                                    \
    TEST(name_##_in_coroutine)                                                           \
    {                                                                                    \
        pid_t pid = fork_child(false);                                                   \
        if (pid == 0) {                                                                  \
            check_failures = 0;                                                          \
            check_run(name_##_main, NULL);                                               \
            child_exit();                                                                \
        }                                                                                \
        reap_ok(pid, 30);                                                                \
    }

SCENARIO(thread_first_wait, thread_wait_attempt)
SCENARIO(pool_first_task, pool_attempt)
SCENARIO(process_start, process_attempt)
SCENARIO(process_exec, exec_attempt)
SCENARIO(procpool, procpool_attempt)
SCENARIO(signals, signals_attempt)
SCENARIO(queue, queue_attempt)
SCENARIO(file_open, file_attempt)
SCENARIO(tcp, tcp_attempt)
SCENARIO(resolve, resolve_attempt)
SCENARIO(process_stdio, process_stdio_attempt)
SCENARIO(unix_socket, unix_attempt)
SCENARIO(udp, udp_attempt)
SCENARIO(exec_missing, exec_missing_attempt)

/* ---- fork from a coroutine: the child remakes its scheduler's poller ---- */

static void *reads_long(void *arg)
{
    int *p = arg;
    char c;
    ssize_t r = plait_read(p[0], &c, 1, SOON());
    return r < 0 ? PLAIT_FAIL(r) : ARG(r);
}

static void *waits_long(void *arg)
{
    int *p = arg;
    int r = plait_wait_fd(p[0], PLAIT_READABLE, SOON());
    return r < 0 ? PLAIT_FAIL(r) : ARG(r);
}

/* The poller was made while numbers below it were taken, since closed: with room for
 * k descriptors below the limit, the child's new eventfd and epoll set or ring cannot
 * have the old numbers (above the limit).  The child aborted when its poller could not
 * be remade; a wait in it now fails with -EMFILE until descriptors are back, then
 * waits. */
static void *fork_short_of_descriptors(void *arg)
{
    int k = INT(arg);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    int low[4];
    for (int i = 0; i < 4; i++)
        CHECK((low[i] = dup(0)) >= 0);
    /* the poller, above low[] */
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        close(low[i]);
    plait_task waiter; /* waiting in the poller at the fork */
    CHECK_EQ(plait_spawn(&waiter, waits_long, p), 0);
    int p2[2]; /* a read under way too (on io_uring, the kernel's to make) */
    CHECK_EQ(pipe2(p2, O_CLOEXEC | O_NONBLOCK), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, reads_long, p2), 0);
    CHECK_EQ(plait_yield(), 0);
    leave_room_for(k);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        check_failures = 0;
        void *res = NULL;
        if (k >= 2) { /* room for a new poller: the wait goes on in it */
            /* two bytes: the parent's reader (its ring's read) may take one */
            CHECK_EQ(write(p2[1], "rr", 2), 2);
            CHECK_EQ(plait_join(reader, &res, SOON()), 0);
            CHECK_EQ(INT(res), 1);
            CHECK_EQ(write(p[1], "x", 1), 1);
            CHECK_EQ(plait_join(waiter, &res, SOON()), 0);
            CHECK_EQ(INT(res), PLAIT_READABLE);
            char c;
            CHECK_EQ(read(p[0], &c, 1), 1);
        } else { /* none: the wait is answered so */
            CHECK_EQ(plait_join(waiter, &res, SOON()), -EMFILE);
            CHECK_EQ(plait_join(reader, &res, SOON()), -EMFILE);
        }
        int r = plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS));
        if (r != -ETIMEDOUT)
            CHECK_EQ(r, -EMFILE);
        room_back();
        CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS)),
                 -ETIMEDOUT);
        CHECK_EQ(write(p[1], "x", 1), 1);
        CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
        char c;
        CHECK_EQ(read(p[0], &c, 1), 1); /* the pipe is the parent's too */
        child_exit();
    }
    room_back();
    CHECK(pid > 0);
    if (pid > 0)
        reap_ok(pid, 10);
    CHECK_EQ(plait_cancel(waiter), 0);
    CHECK_EQ(plait_join(waiter, NULL, SOON()), -ECANCELED);
    /* the child's byte, if it wrote one, went to its own copy's reader: the pipe is
     * shared, so the parent's reader may have it too; either ends it */
    CHECK_EQ(plait_cancel(reader), 0);
    int rr = plait_join(reader, NULL, SOON());
    CHECK(rr == -ECANCELED || rr == 0);
    close(p2[0]);
    close(p2[1]);
    /* the parent's poller is its own still */
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    return NULL;
}

TEST(fork_from_a_coroutine_short_of_descriptors)
{
    for (int k = 0; k < 3; k++) {
        pid_t pid = fork_child(false);
        if (pid == 0) {
            check_failures = 0;
            check_run(fork_short_of_descriptors, ARG(k));
            child_exit();
        }
        reap_ok(pid, 20);
    }
}

/* ---- a process pool's worker replaced while no descriptor is left ---- */

/* A worker that ends (max_tasks) is replaced on the manager: the replacement's pidfd
 * and, when that fails, the retry's timerfd take descriptors.  With none left, the
 * pool broke for good (-EAGAIN from every later submit), though plait.h says it tries
 * again: with descriptors back, a submit must run again. */
static ssize_t reads_a_byte(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    int fd;
    memcpy(&fd, arg, sizeof fd);
    char c;
    return read(fd, &c, 1) == 1 ? 0 : -EIO;
}

TEST(procpool_worker_replaced_with_no_descriptor_left)
{
    pid_t pid = fork_child(false);
    if (pid == 0) {
        check_failures = 0;
        int q[2];
        CHECK_EQ(pipe2(q, O_CLOEXEC), 0); /* the worker has it: it forks after */
        plait_procpool *pool;
        plait_procpool_options o = {.processes = 1, .max_tasks = 1};
        CHECK_EQ(plait_procpool_create(&pool, &o), 0);
        int first;
        CHECK_EQ(plait_procpool_pids(pool, &first, 1), 1);
        plait_task t;
        CHECK_EQ(plait_procpool_submit(pool, &t, reads_a_byte, &q[0], sizeof q[0]), 0);
        leave_room_for(0);
        CHECK_EQ(write(q[1], "x", 1), 1); /* the task ends, and its worker */
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        /* the replacement was tried, under the pool's lock, as the worker's end was
         * seen: no worker alive (it failed), or another one (it did not) */
        int now = first, n;
        int64_t deadline = SOON();
        while ((n = plait_procpool_pids(pool, &now, 1)) == 1 && now == first &&
               plait_now() < deadline) {
            struct timespec ms = {0, PLAIT_MS};
            nanosleep(&ms, NULL);
        }
        room_back();
        CHECK_EQ(n, 0); /* no descriptor for its pidfd */
        /* with descriptors back the pool runs tasks again: it tries again every 50 ms
         * (submit says -EAGAIN meanwhile) */
        int r = -EAGAIN;
        while (r == -EAGAIN && plait_now() < deadline) {
            r = plait_procpool_submit(pool, &t, proc_child, NULL, 0);
            struct timespec ms = {0, 5 * PLAIT_MS};
            if (r == -EAGAIN)
                nanosleep(&ms, NULL);
        }
        CHECK_EQ(r, 0);
        if (r == 0)
            CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
        close(q[0]);
        close(q[1]);
        child_exit();
    }
    reap_ok(pid, 30);
}

/* ---- what needs no descriptor works with none left ---- */

static void *sleeper(void *arg)
{
    plait_chan *ch = arg;
    CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    int v = 7;
    CHECK_EQ(plait_chan_send(ch, &v, SOON()), 0);
    return NULL;
}

static void *no_descriptor_needed(void *arg)
{
    (void)arg;
    leave_room_for(0);
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, sleeper, ch), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_sleep(2 * PLAIT_MS), 0);
    CHECK(plait_now() - start >= 2 * PLAIT_MS);
    int v = 0;
    CHECK_EQ(plait_chan_recv(ch, &v, SOON()), 0);
    CHECK_EQ(v, 7);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    /* a thread's task and a pool's, joined from here */
    plait_task th;
    CHECK_EQ(plait_thread_start(&th, sleeper, ch, NULL), 0);
    CHECK_EQ(plait_chan_recv(ch, &v, SOON()), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), 0);
    int p[2] = {-1, -1};
    room_back();
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    leave_room_for(0);
    /* a write and a read that need no wait go through */
    CHECK_EQ(plait_write(p[1], "z", 1, SOON()), 1);
    char c = 0;
    CHECK_EQ(plait_read(p[0], &c, 1, SOON()), 1);
    CHECK_EQ(c, 'z');
    /* one that must wait says why it cannot */
    CHECK_EQ(plait_read(p[0], &c, 1, SOON()), -EMFILE);
    room_back();
    CHECK_EQ(plait_read(p[0], &c, 1, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    plait_chan_destroy(ch);
    close(p[0]);
    close(p[1]);
    return NULL;
}

TEST(coroutines_need_no_descriptor_until_they_wait_on_one)
{
    pid_t pid = fork_child(false);
    if (pid == 0) {
        check_failures = 0;
        int before = count_fds();
        check_run(no_descriptor_needed, NULL);
        CHECK_EQ(count_fds(), before);
        child_exit();
    }
    reap_ok(pid, 20);
}

/* A registration that outlived a plait_close (the file open elsewhere: a dup) goes on
 * reporting; epoll's remedy, a new set, needs a descriptor.  With none free, every
 * wait was ended at once by that report, and the scheduler spun for as long as the
 * shortage lasted (a review found it: ~1 s of CPU for a 1 s wait).  Now waits go by
 * number meanwhile, or, where ppoll(2) refuses the numbers (a limit under the
 * descriptors waited on), pause on the inbox a millisecond at a time, looking at the
 * set between (failed first: the thread's CPU time over its 300 ms wait). */
static int closed_elsewhere; /* the socket closed by another thread */

static void *closes_it(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_close(closed_elsewhere), 0);
    return NULL;
}

static void *writes_later(void *arg)
{
    CHECK_EQ(plait_sleep(20 * PLAIT_MS), 0);
    CHECK_EQ(write(*(int *)arg, "w", 1), 1);
    return NULL;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

static void *waits_beside_a_registration_out_of_reach(void *arg)
{
    bool limit_under_the_waits = arg != NULL;
    int sv[2], p[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    int copy = dup(sv[0]); /* the file stays open past the close of its number */
    CHECK(copy >= 0);
    closed_elsewhere = sv[0];
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    pthread_t t;
    thread_start(&t, closes_it, NULL);
    CHECK_EQ(pthread_join(t, NULL), 0);
    leave_room_for(0);
    if (limit_under_the_waits) { /* (a limit under the descriptors open is allowed) */
        struct rlimit one = saved_limit;
        one.rlim_cur = 1;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &one), 0);
    }
    int64_t cpu = thread_cpu_ns(), start = plait_now();
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, plait_deadline_in(300 * PLAIT_MS)),
             -ETIMEDOUT);
    cpu = thread_cpu_ns() - cpu;
    int64_t wall = plait_now() - start;
    CHECK(wall >= 300 * PLAIT_MS);
    /* a sleep, not a spin (which took all it was given): a wake-up each millisecond
     * takes 8-9 ms of 300 here, more under a sanitizer's interceptors */
    if (cpu > wall / 3)
        fprintf(stderr, "  the wait took %.0f ms of CPU in %.0f ms\n", (double)cpu / PLAIT_MS,
                (double)wall / PLAIT_MS);
    CHECK(cpu <= wall / 3);
    /* still served meanwhile: a write to the pipe wakes the wait on it */
    plait_task w;
    CHECK_EQ(plait_spawn(&w, writes_later, &p[1]), 0);
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_join(w, NULL, SOON()), 0);
    room_back(); /* and with descriptors back, the waits go on */
    char c;
    CHECK_EQ(plait_read(p[0], &c, 1, SOON()), 1);
    CHECK_EQ(plait_read(p[0], &c, 1, plait_deadline_in(5 * PLAIT_MS)), -ETIMEDOUT);
    close(copy);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    return NULL;
}

static void out_of_reach_scenario(void *limit_under_the_waits)
{
    pid_t pid = fork_child(false);
    if (pid == 0) {
        check_failures = 0;
        check_run(waits_beside_a_registration_out_of_reach, limit_under_the_waits);
        child_exit();
    }
    reap_ok(pid, 20);
}

TEST(a_registration_out_of_reach_with_no_descriptor_free_does_not_spin)
{
    out_of_reach_scenario(NULL);
}

TEST(a_registration_out_of_reach_with_a_limit_under_the_waits_does_not_spin)
{
    out_of_reach_scenario(&saved_limit);
}

#define BOTH(n) CASE(n), CASE(n##_in_coroutine)

RUN_TESTS(CASE(backend_choice_survives_no_descriptors), BOTH(thread_first_wait),
          BOTH(pool_first_task), BOTH(process_start), BOTH(process_exec), BOTH(procpool),
          BOTH(signals), BOTH(queue), BOTH(file_open), BOTH(tcp), BOTH(resolve),
          BOTH(process_stdio), BOTH(unix_socket), BOTH(udp),
          BOTH(exec_missing),
          CASE(fork_from_a_coroutine_short_of_descriptors),
          CASE(procpool_worker_replaced_with_no_descriptor_left),
          CASE(coroutines_need_no_descriptor_until_they_wait_on_one),
          CASE(a_registration_out_of_reach_with_no_descriptor_free_does_not_spin),
          CASE(a_registration_out_of_reach_with_a_limit_under_the_waits_does_not_spin))
