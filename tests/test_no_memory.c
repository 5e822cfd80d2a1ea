/* test_no_memory.c — allocation failure across the public API (review 124).  malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and mmap are wrapped (-Wl,--wrap): while a
 * call under test runs (ARMED), the k-th allocation made (by the library: the test
 * allocates nothing meanwhile) fails.  For k = 1, 2, ... until the call succeeds with
 * no failure met, each failing call must return a clear negative code (-ENOMEM), not
 * crash or hang, leak nothing (LeakSanitizer in the sanitizer build) and leave no
 * descriptor open; and the same call must work afterwards.  Calls that fail must not
 * have done what they were asked (a refused submit has queued nothing, a refused send
 * has delivered nothing). */
#include "helpers.h"
#include "../src/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int armed;
static atomic_int fail_at; /* 0: fail none; k: the k-th allocation while armed */
static atomic_int allocs;
static atomic_int failed;

/* While set (and armed): refuse every calloc of this many bytes or more (the chunks
 * futures are carved from: 256 of them), whatever fail_at says. */
static atomic_size_t refuse_big_calloc;

static _Atomic pid_t test_pid;

static bool refuse(void)
{
    if (!atomic_load(&armed) || !atomic_load(&fail_at))
        return false;
    if (getpid() != test_pid)
        return false; /* a child forked while armed: its own allocations are not counted */
    if (atomic_fetch_add(&allocs, 1) + 1 != atomic_load(&fail_at))
        return false;
    atomic_fetch_add(&failed, 1);
    return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
char *__real_strdup(const char *s);
char *__wrap_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n)
{
    if (refuse()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size)
{
    size_t big = atomic_load(&refuse_big_calloc);
    if (big && atomic_load(&armed) && n * size >= big && getpid() == test_pid) {
        atomic_fetch_add(&failed, 1);
        errno = ENOMEM;
        return NULL;
    }
    if (refuse()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}
/* When set: a refused realloc (a timer heap's growth) first waits until this flag is
 * set, so that a task the call under test started is running when its wait fails. */
static atomic_int *realloc_refused_after;

/* While set (and armed): refuse every realloc, whatever fail_at says. */
static atomic_int refuse_every_realloc;

void *__wrap_realloc(void *p, size_t n)
{
    if (atomic_load(&refuse_every_realloc) && atomic_load(&armed) && getpid() == test_pid) {
        atomic_fetch_add(&failed, 1);
        errno = ENOMEM;
        return NULL;
    }
    if (refuse()) {
        atomic_int *flag = realloc_refused_after;
        if (flag)
            wait_for(flag);
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    if (refuse())
        return ENOMEM;
    return __real_posix_memalign(p, align, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    if (refuse()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_aligned_alloc(align, n);
}
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (refuse()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

char *__wrap_strdup(const char *s)
{
    if (refuse()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

/* Evaluate expr with allocation failure armed. */
#define ARMED(expr)                                                                      \
    ({                                                                                   \
        test_pid = getpid();                                                             \
        atomic_store(&armed, 1);                                                         \
        __typeof__(expr) armed_r_ = (expr);                                              \
        atomic_store(&armed, 0);                                                         \
        armed_r_;                                                                        \
    })

/* One attempt: set up, run the call under test ARMED, check what it did, clean up.
 * Returns the call's result. */
typedef int (*attempt_fn)(void);

static void oom_loop(const char *what, attempt_fn attempt)
{
    /* once with nothing refused, so that what is made once (lazily) is there */
    CHECK(attempt() >= 0);
    int fds = count_fds();
    int k;
    for (k = 1; k < 400; k++) {
        atomic_store(&allocs, 0);
        atomic_store(&failed, 0);
        atomic_store(&fail_at, k);
        int r = attempt();
        atomic_store(&fail_at, 0);
        bool hit = atomic_load(&failed) != 0;
        if (r < 0 && r != -ENOMEM) {
            fprintf(stderr, "  %s: allocation %d refused: %d (%s)\n", what, k, r,
                    plait_strerror(r));
            check_failures++;
        }
        if (!hit && r < 0) {
            fprintf(stderr, "  %s: failed with nothing refused: %d\n", what, r);
            check_failures++;
        }
        /* work a refused call left to finish in the background (a name lookup on the
         * pool) may hold a descriptor a moment longer: a leak holds it for good */
        int now = count_fds();
        for (int64_t end = plait_deadline_in(2 * PLAIT_SEC); now != fds && plait_now() < end;
             now = count_fds())
            plait_sleep(PLAIT_MS);
        if (now != fds) {
            fprintf(stderr, "  %s: allocation %d refused: %d descriptors, %d before\n",
                    what, k, now, fds);
            check_failures++;
            fds = now;
        }
        if (!hit)
            break;
    }
    CHECK(k < 400);
    if (getenv("OOM_VERBOSE"))
        fprintf(stderr, "  %s: %d allocations\n", what, k - 1);
    CHECK(attempt() >= 0);
    CHECK_EQ(count_fds(), fds);
}

static void *run_in_coroutine(void *arg)
{
    ((void (*)(void))arg)();
    return NULL;
}
#define IN_COROUTINE(body) check_run(run_in_coroutine, (void *)(body))

/* ------------------------------------------------------------------------ */
/* Synchronisation objects                                                   */

static atomic_int ran;
static void *count_run_early(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return arg;
}

/* A case that makes an object under refusals (create, which names obj) and frees it. */
#define MADE_AND_FREED(name, type, obj, create, destroy)                                  \
    static int name(void)                                                                \
    {                                                                                    \
        type *obj = NULL;                                                                \
        int r = ARMED(create);                                                           \
        if (r == 0)                                                                      \
            CHECK_EQ(destroy(obj), 0);                                                   \
        return r;                                                                        \
    }
MADE_AND_FREED(a_chan, plait_chan, c, plait_chan_create(&c, 8, 4), plait_chan_destroy)
MADE_AND_FREED(a_mutex, plait_mutex, m, plait_mutex_create(&m), plait_mutex_destroy)
MADE_AND_FREED(a_cond, plait_cond, c, plait_cond_create(&c), plait_cond_destroy)
MADE_AND_FREED(a_sem, plait_sem, s, plait_sem_create(&s, 1), plait_sem_destroy)
MADE_AND_FREED(a_event, plait_event, e, plait_event_create(&e), plait_event_destroy)
MADE_AND_FREED(a_waitgroup, plait_waitgroup, w, plait_waitgroup_create(&w), plait_waitgroup_destroy)
MADE_AND_FREED(a_rwlock, plait_rwlock, w, plait_rwlock_create(&w), plait_rwlock_destroy)
MADE_AND_FREED(a_barrier, plait_barrier, b, plait_barrier_create(&b, 2), plait_barrier_destroy)
static int once_fn(void *arg)
{
    (*(int *)arg)++;
    return 0;
}
static int a_once(void)
{
    plait_once once = PLAIT_ONCE_INIT;
    int n = 0;
    int r = ARMED(plait_once_call(&once, once_fn, &n, SOON()));
    CHECK_EQ(n, r == 0 ? 1 : 0);
    return r;
}
MADE_AND_FREED(a_completed, plait_completed, s, plait_completed_create(&s), plait_completed_destroy)
static int a_signals(void)
{
    plait_signals *w = NULL;
    int sigs[] = {SIGUSR1, SIGUSR2};
    int r = ARMED(plait_signals_create(&w, sigs, 2));
    if (r == 0)
        CHECK_EQ(plait_signals_destroy(w), 0);
    /* the old disposition is back either way */
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    CHECK(sa.sa_handler == SIG_DFL);
    return r;
}
MADE_AND_FREED(a_queue, plait_queue, q, plait_queue_create(&q, 64, 4), plait_queue_destroy)
MADE_AND_FREED(a_pmutex, plait_pmutex, m, plait_pmutex_create(&m), plait_pmutex_destroy)
MADE_AND_FREED(a_psem, plait_psem, m, plait_psem_create(&m, 0), plait_psem_destroy)
MADE_AND_FREED(a_pevent, plait_pevent, m, plait_pevent_create(&m), plait_pevent_destroy)
MADE_AND_FREED(a_shm, plait_shm, m, plait_shm_create(&m, 4096), plait_shm_destroy)

/* The very first plait_run of the process (its stacks, futures, fork handlers are made
 * then): runs first. */
static void *first_main(void *arg) { return arg; }
static void *first_spawns(void *arg)
{
    (void)arg;
    plait_task t;
    int r = plait_spawn(&t, first_main, ARG(4));
    if (r == 0) {
        void *v = NULL;
        r = plait_join(t, &v, SOON());
        if (r == 0 && INT(v) != 4)
            r = -EPROTO;
    }
    return PLAIT_FAIL(r);
}
/* Each refusal in a fresh child, forked before this process made anything of plait's:
 * exit status 0 (ran), 1 (-ENOMEM), 2 (another code); +4 when an allocation was
 * refused. */
static int first_run_in_a_child(int k)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        atomic_store(&fail_at, k);
        int r = ARMED(plait_run(first_spawns, NULL, NULL));
        atomic_store(&fail_at, 0);
        if (r != 0 && r != -ENOMEM)
            fprintf(stderr, "  first plait_run, allocation %d refused: %d\n", k, r);
        _exit((r == 0 ? 0 : r == -ENOMEM ? 1 : 2) + (atomic_load(&failed) ? 4 : 0));
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) {
        fprintf(stderr, "  first plait_run, allocation %d refused: status %#x\n", k, status);
        return 2;
    }
    return WEXITSTATUS(status);
}
TEST(first_run_of_the_process)
{
    int k, st = 0;
    for (k = 1; k < 100; k++) {
        st = first_run_in_a_child(k);
        CHECK((st & 3) <= 1);
        if (!(st & 4))
            break;
    }
    CHECK_EQ(st, 0);
    if (getenv("OOM_VERBOSE"))
        fprintf(stderr, "  first plait_run: %d allocations\n", k - 1);
}

/* A coroutine's first wait on a process-shared object starts a watcher thread, whose
 * memory is refused: out of memory, -ENOMEM (-EAGAIN says the watchers' room of 8,128
 * waits is full, which it is not).  Runs first: the watcher, once made, stays. */
static void *first_shared_wait(void *arg)
{
    (void)arg;
    plait_psem *sem;
    CHECK_EQ(plait_psem_create(&sem, 0), 0);
    int r = 0, k;
    for (k = 1; k < 50; k++) {
        atomic_store(&allocs, 0);
        atomic_store(&failed, 0);
        atomic_store(&fail_at, k);
        r = ARMED(plait_psem_acquire(sem, plait_deadline_in(10 * PLAIT_MS)));
        atomic_store(&fail_at, 0);
        if (!atomic_load(&failed))
            break;
        if (r != -ENOMEM && r != -ETIMEDOUT)
            fprintf(stderr, "  psem_acquire, allocation %d refused: %d (%s)\n", k, r,
                    plait_strerror(r));
        CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    }
    CHECK_EQ(r, -ETIMEDOUT);
    CHECK_EQ(plait_psem_release(sem), 0);
    CHECK_EQ(plait_psem_acquire(sem, SOON()), 0);
    CHECK_EQ(plait_psem_destroy(sem), 0);
    return NULL;
}
TEST(first_shared_wait_of_a_coroutine) { check_run(first_shared_wait, NULL); }

/* The default pool, made by the first call that needs it. */
TEST(default_pool_at_first_use)
{
    int fds = count_fds();
    int k, r = -1;
    for (k = 1; k < 100; k++) {
        atomic_store(&allocs, 0);
        atomic_store(&failed, 0);
        atomic_store(&fail_at, k);
        void *v = NULL;
        atomic_store(&ran, 0);
        r = ARMED(plait_to_thread(count_run_early, ARG(8), &v, SOON()));
        atomic_store(&fail_at, 0);
        if (r == 0)
            CHECK_EQ(INT(v), 8);
        else
            CHECK_EQ(r, -ENOMEM);
        CHECK_EQ(atomic_load(&ran), r == 0);
        if (r == 0)
            break;
        CHECK_EQ(count_fds(), fds);
    }
    CHECK_EQ(r, 0);
}

TEST(sync_objects)
{
    oom_loop("chan", a_chan);
    oom_loop("mutex", a_mutex);
    oom_loop("cond", a_cond);
    oom_loop("sem", a_sem);
    oom_loop("event", a_event);
    oom_loop("waitgroup", a_waitgroup);
    oom_loop("rwlock", a_rwlock);
    oom_loop("barrier", a_barrier);
    oom_loop("once", a_once);
    oom_loop("completed", a_completed);
    oom_loop("signals", a_signals);
    oom_loop("queue", a_queue);
    oom_loop("pmutex", a_pmutex);
    oom_loop("psem", a_psem);
    oom_loop("pevent", a_pevent);
    oom_loop("shm", a_shm);
}

static void sync_objects_in_coroutine(void)
{
    oom_loop("chan", a_chan);
    oom_loop("once", a_once);
    oom_loop("completed", a_completed);
    oom_loop("signals", a_signals);
    oom_loop("queue", a_queue);
}
TEST(sync_objects_from_a_coroutine) { IN_COROUTINE(sync_objects_in_coroutine); }

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */

static void *count_run(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return arg;
}

static int a_spawn(void)
{
    atomic_store(&ran, 0);
    plait_task t;
    int r = ARMED(plait_spawn(&t, count_run, ARG(7)));
    if (r == 0) {
        void *v = NULL;
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK_EQ(INT(v), 7);
    }
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(atomic_load(&ran), r == 0);
    return r;
}
static int a_spawn_big(void)
{
    atomic_store(&ran, 0);
    plait_task t;
    /* a size class of its own each time (a fresh chunk, guard pages) */
    static size_t size = 64 * 1024;
    size += size / 4;
    plait_spawn_options o = {.name = "big", .stack_size = size};
    int r = ARMED(plait_spawn_opts(&t, count_run, ARG(7), &o));
    if (r == 0)
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(atomic_load(&ran), r == 0);
    return r;
}
static int a_group(void)
{
    atomic_store(&ran, 0);
    plait_group *g = NULL;
    int r = ARMED(plait_group_create(&g));
    if (r < 0)
        return r;
    r = ARMED(plait_group_spawn(g, NULL, count_run, NULL));
    CHECK_EQ(plait_group_destroy(g), 0);
    CHECK_EQ(atomic_load(&ran), r == 0);
    return r;
}
static int a_local_set(void)
{
    static plait_key key;
    static bool made;
    if (!made) {
        CHECK_EQ(plait_key_create(&key, NULL), 0);
        made = true;
    }
    plait_task t;
    CHECK_EQ(plait_spawn(&t, count_run, NULL), 0); /* a fresh coroutine's locals */
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    int r = ARMED(plait_local_set(key, ARG(5)));
    CHECK(plait_local_get(key) == (r == 0 ? ARG(5) : NULL));
    if (r == 0)
        CHECK_EQ(plait_local_set(key, NULL), 0);
    return r;
}
static void *local_in_task(void *arg)
{
    (void)arg;
    static plait_key key;
    static bool made;
    if (!made) {
        CHECK_EQ(plait_key_create(&key, NULL), 0);
        made = true;
    }
    int r = ARMED(plait_local_set(key, ARG(5)));
    CHECK(plait_local_get(key) == (r == 0 ? ARG(5) : NULL));
    return PLAIT_FAIL(r);
}
static int a_local_set_task(void)
{
    plait_task t;
    CHECK_EQ(plait_spawn(&t, local_in_task, NULL), 0);
    int r = plait_join(t, NULL, SOON());
    return r;
}
static int a_local_set_thread(void)
{
    static plait_key key;
    static bool made;
    if (!made) {
        CHECK_EQ(plait_key_create(&key, NULL), 0);
        made = true;
    }
    void *r_;
    int r = 0;
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, local_in_task, NULL, NULL), 0);
    r_ = NULL;
    r = plait_join(t, &r_, SOON());
    return r;
}
static int a_thread(void)
{
    atomic_store(&ran, 0);
    plait_task t;
    int r = ARMED(plait_thread_start(&t, count_run, ARG(3), NULL));
    if (r == 0) {
        void *v = NULL;
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK_EQ(INT(v), 3);
    }
    CHECK_EQ(atomic_load(&ran), r == 0);
    return r;
}
static int a_wait_any(void)
{
    plait_task t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_spawn(&t[i], count_run, ARG(i)), 0);
    int r = ARMED(plait_wait_any(t, 10, SOON()));
    CHECK(r == -ENOMEM || (r >= 0 && r < 10));
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return r;
}
static int a_wait_all(void)
{
    plait_task t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_spawn(&t[i], count_run, ARG(i)), 0);
    void *res[10];
    int r = ARMED(plait_wait_all(t, 10, res, NULL, SOON()));
    if (r < 0) /* the call's own failure consumes none */
        for (int i = 0; i < 10; i++)
            CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    else
        for (int i = 0; i < 10; i++)
            CHECK_EQ(INT(res[i]), i);
    return r;
}
static int a_select(void)
{
    plait_chan *c[10];
    int v[10] = {0};
    plait_select_case cs[10];
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(plait_chan_create(&c[i], sizeof(int), 1), 0);
        cs[i] = (plait_select_case){.chan = c[i], .op = PLAIT_SEND, .elem = &v[i]};
    }
    int r = ARMED(plait_select(cs, 10, SOON()));
    size_t total = 0;
    for (int i = 0; i < 10; i++) {
        total += plait_chan_len(c[i]);
        CHECK_EQ(plait_chan_destroy(c[i]), 0);
    }
    CHECK_EQ(total, r >= 0 ? 1u : 0u); /* a failed select delivered nothing */
    return r;
}
static int a_sleep(void)
{
    int r = ARMED(plait_sleep(1000));
    return r;
}
static int a_chan_send_timed(void)
{
    /* a send that must wait (a full buffer) arms a timer; refused, it delivers nothing */
    plait_chan *c;
    CHECK_EQ(plait_chan_create(&c, sizeof(int), 1), 0);
    int one = 1, two = 2;
    CHECK_EQ(plait_chan_send(c, &one, 0), 0);
    int r = ARMED(plait_chan_send(c, &two, plait_deadline_in(PLAIT_MS)));
    if (r == -ETIMEDOUT)
        r = 0;
    CHECK_EQ(plait_chan_len(c), 1u);
    int got = 0;
    CHECK_EQ(plait_chan_recv(c, &got, 0), 0);
    CHECK_EQ(got, 1);
    CHECK_EQ(plait_chan_destroy(c), 0);
    return r;
}

static void tasks_body(void)
{
    oom_loop("spawn", a_spawn);
    oom_loop("spawn_opts big stack", a_spawn_big);
    oom_loop("group", a_group);
    oom_loop("local_set", a_local_set);
    oom_loop("local_set in a task", a_local_set_task);
    oom_loop("thread_start", a_thread);
    oom_loop("wait_any", a_wait_any);
    oom_loop("wait_all", a_wait_all);
    oom_loop("select", a_select);
    oom_loop("sleep", a_sleep);
    oom_loop("chan_send timed", a_chan_send_timed);
}
TEST(tasks) { IN_COROUTINE(tasks_body); }

/* Each attempt as the main coroutine of a fresh scheduler: its stacks, timer heap and
 * poller are made by the call under test. */
static int a_wait_fd_high(void);
static attempt_fn fresh_attempt;
static void *fresh_main(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(fresh_attempt());
}
static int fresh(void)
{
    int r = plait_run(fresh_main, NULL, NULL);
    return r;
}
static void oom_loop_fresh(const char *what, attempt_fn attempt)
{
    fresh_attempt = attempt;
    oom_loop(what, fresh);
}

TEST(tasks_on_a_fresh_scheduler)
{
    oom_loop_fresh("spawn", a_spawn);
    oom_loop_fresh("spawn_opts big stack", a_spawn_big);
    oom_loop_fresh("group", a_group);
    oom_loop_fresh("local_set", a_local_set);
    oom_loop_fresh("thread_start", a_thread);
    oom_loop_fresh("wait_any", a_wait_any);
    oom_loop_fresh("wait_all", a_wait_all);
    oom_loop_fresh("select", a_select);
    oom_loop_fresh("sleep", a_sleep);
    oom_loop_fresh("chan_send timed", a_chan_send_timed);
    oom_loop_fresh("wait_fd high", a_wait_fd_high);
}

static int a_waits_of_a_thread(void)
{
    plait_task t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_thread_start(&t[i], count_run, ARG(i), NULL), 0);
    int r = ARMED(plait_wait_any(t, 10, SOON()));
    CHECK(r == -ENOMEM || (r >= 0 && r < 10));
    void *res[10];
    int r2 = ARMED(plait_wait_all(t, 10, res, NULL, SOON()));
    if (r2 < 0) /* the call's own failure consumes none */
        for (int i = 0; i < 10; i++)
            CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    else
        for (int i = 0; i < 10; i++)
            CHECK_EQ(INT(res[i]), i);
    plait_chan *c[10];
    int v[10] = {0};
    plait_select_case cs[10];
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(plait_chan_create(&c[i], sizeof(int), 1), 0);
        cs[i] = (plait_select_case){.chan = c[i], .op = PLAIT_SEND, .elem = &v[i]};
    }
    int r3 = ARMED(plait_select(cs, 10, SOON()));
    size_t total = 0;
    for (int i = 0; i < 10; i++) {
        total += plait_chan_len(c[i]);
        CHECK_EQ(plait_chan_destroy(c[i]), 0);
    }
    CHECK_EQ(total, r3 >= 0 ? 1u : 0u);
    return r < 0 ? r : r2 < 0 ? r2 : r3 < 0 ? r3 : 0;
}

TEST(thread_calls)
{
    oom_loop("waits of a thread", a_waits_of_a_thread);
    oom_loop("local_set", a_local_set_thread);
    oom_loop("thread_start", a_thread);
}

/* ------------------------------------------------------------------------ */
/* Pools, processes                                                          */

static int a_pool_create(void)
{
    plait_pool *pool = NULL;
    int r = ARMED(plait_pool_create(&pool, &(plait_pool_options){.threads = 2}));
    if (r == 0) {
        CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_pool_destroy(pool), 0);
    } else {
        CHECK(pool == NULL);
    }
    return r;
}
static int a_pool_submit(void)
{
    plait_pool *pool = NULL;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    atomic_store(&ran, 0);
    plait_task t[40];
    int r = 0, n = 0;
    /* enough to need a second block of the injection queue */
    for (n = 0; n < 40 && r == 0; n++)
        r = ARMED(plait_pool_submit(pool, &t[n], count_run, ARG(n)));
    int ok = r == 0 ? n : n - 1;
    for (int i = 0; i < ok; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(t[i], &v, SOON()), 0);
        CHECK_EQ(INT(v), i);
    }
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(atomic_load(&ran), ok); /* the refused one never ran */
    return r;
}
static int a_pool_map(void)
{
    plait_pool *pool = NULL;
    /* more than 16 runners: their handles take memory */
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 18}), 0);
    void *args[40], *res[40];
    for (int i = 0; i < 40; i++)
        args[i] = ARG(i);
    int errs[40];
    atomic_store(&ran, 0);
    int r = ARMED(plait_pool_map(pool, count_run, args, 40, res, errs, SOON()));
    /* refused as a whole (every item says so), or, in a coroutine, cut short by its
     * timed wait's refusal (the items not started say -ECANCELED, as on a deadline):
     * each item ran, or says why not, and none runs after the call.  From a thread
     * nothing is taken once a runner has started: a -ENOMEM is a refusal as a whole
     * (its wait for more than 8 runners took memory, and said -ENOMEM with every item
     * run: a review) */
    int done = 0;
    for (int i = 0; i < 40; i++) {
        if (r == -ENOMEM && !plait_in_coroutine())
            CHECK_EQ(errs[i], -ENOMEM);
        CHECK(errs[i] == 0 || (r < 0 && (errs[i] == r || errs[i] == -ECANCELED)));
        if (errs[i] == 0) {
            CHECK_EQ(INT(res[i]), i);
            done++;
        }
    }
    CHECK_EQ(atomic_load(&ran), done);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    return r;
}
static int a_to_thread(void)
{
    atomic_store(&ran, 0);
    void *v = NULL;
    int r = ARMED(plait_to_thread(count_run, ARG(4), &v, SOON()));
    if (r == 0)
        CHECK_EQ(INT(v), 4);
    /* a refused call ran nothing (plait_pool_default's workers finish it before) */
    CHECK_EQ(atomic_load(&ran), r == 0);
    return r;
}
static int a_completed_add(void)
{
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task t[20];
    int r = 0, n;
    for (n = 0; n < 20 && r == 0; n++) {
        CHECK_EQ(plait_in_coroutine() ? plait_spawn(&t[n], count_run, ARG(n))
                                      : plait_thread_start(&t[n], count_run, ARG(n), NULL),
                 0);
        r = ARMED(plait_completed_add(set, t[n]));
        if (r < 0)
            CHECK_EQ(plait_join(t[n], NULL, SOON()), 0); /* still the caller's */
    }
    int added = r == 0 ? n : n - 1;
    for (int i = 0; i < added; i++) {
        plait_task d;
        CHECK_EQ(plait_completed_next(set, &d, SOON()), 0);
        CHECK_EQ(plait_join(d, NULL, SOON()), 0);
    }
    CHECK_EQ(plait_completed_destroy(set), 0);
    return r;
}

static ssize_t proc_echo(const void *arg, size_t len, void *out, size_t cap)
{
    if (len > cap)
        return -EMSGSIZE;
    memcpy(out, arg, len);
    return (ssize_t)len;
}
static int a_process_start(void)
{
    plait_task t;
    int r = ARMED(plait_process_start(&t, proc_echo, "abc", 3, NULL, NULL));
    if (r == 0) {
        void *v = NULL;
        int e = plait_join(t, &v, SOON()); /* as a_process_pipes */
        CHECK(e == 0 || e == -ENOMEM);
        plait_bytes *b = v;
        CHECK(e < 0 || (b && b->len == 3 && memcmp(b->data, "abc", 3) == 0));
        free(b);
    }
    return r;
}
static int a_process_exec(void)
{
    plait_task t;
    char *argv[] = {"true", NULL};
    plait_pipes pp;
    plait_process_options o = {.stdio = {PLAIT_STDIO_NULL, PLAIT_STDIO_PIPE, PLAIT_STDIO_NULL}};
    int r = ARMED(plait_process_exec(&t, NULL, argv, &o, &pp));
    if (r == 0) {
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        close(pp.out);
    }
    return r;
}
/* The children of this process (every thread's), zombies included. */
static int count_children(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%.255s/children", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        for (int pid; fscanf(f, "%d", &pid) == 1;)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}
/* Wait until no child is left (the pool's are reaped as it goes): true, or false once
 * SOON() has passed. */
static bool no_children_left(void)
{
    int64_t deadline = SOON();
    while (count_children() != 0) {
        if (plait_now() > deadline)
            return false;
        struct timespec ms = {0, PLAIT_MS};
        nanosleep(&ms, NULL);
    }
    return true;
}
static int a_procpool_create(void)
{
    plait_procpool *pool = NULL;
    int r = ARMED(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2}));
    if (r == 0) {
        CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    /* no worker left behind, running or unreaped */
    CHECK(no_children_left());
    return r;
}
static plait_procpool *ppool;
static int a_procpool_submit(void)
{
    plait_task t;
    int r = ARMED(plait_procpool_submit(ppool, &t, proc_echo, "xy", 2));
    if (r == 0) {
        void *v = NULL;
        int e = plait_join(t, &v, SOON()); /* as a_process_pipes */
        CHECK(e == 0 || e == -ENOMEM);
        free(v);
    }
    return r;
}
static int a_procpool_submit_many(void)
{
    /* beyond the slots: the argument is copied to wait */
    plait_task t[8];
    int r = 0, n;
    for (n = 0; n < 8 && r == 0; n++)
        r = ARMED(plait_procpool_submit(ppool, &t[n], proc_echo, "xy", 2));
    int ok = r == 0 ? n : n - 1;
    for (int i = 0; i < ok; i++) {
        /* an earlier task's result may have been copied out during a later (armed)
         * submit, and that copy refused: the task then fails with -ENOMEM */
        void *v = NULL;
        int e = plait_join(t[i], &v, SOON());
        CHECK(e == 0 || e == -ENOMEM);
        free(v);
    }
    return r;
}
static int a_procpool_map(void)
{
    int args[20], res[20], err[20];
    for (int i = 0; i < 20; i++)
        args[i] = i;
    int r = ARMED(plait_procpool_map(ppool, proc_echo, args, sizeof(int), 20, res, sizeof(int),
                                     err, 2, SOON()));
    /* every item ran, or says why not (its chunk refused, or its result's copy) */
    for (int i = 0; i < 20; i++) {
        CHECK(err[i] == 0 || (r < 0 && (err[i] == -ENOMEM || err[i] == -ECANCELED)));
        CHECK_EQ(res[i], err[i] == 0 ? i : 0);
    }
    return r;
}
static int a_procpool_imap(void)
{
    int args[20];
    for (int i = 0; i < 20; i++)
        args[i] = i;
    plait_procpool_iter *it = NULL;
    int r = ARMED(plait_procpool_imap(&it, ppool, proc_echo, args, sizeof(int), 20,
                                      sizeof(int), 2, 0));
    if (r < 0)
        return r;
    int seen = 0;
    for (;;) {
        size_t idx;
        int v, err = 0;
        int e = ARMED(plait_procpool_imap_next(it, &idx, &v, &err, SOON()));
        if (e == -EPIPE)
            break;
        if (e == 0 && err == 0) {
            CHECK_EQ(v, (int)idx);
            seen++;
        } else if (e == 0) {
            if (err != -ENOMEM)
                fprintf(stderr, "  imap item %zu: %d\n", idx, err);
            CHECK_EQ(err, -ENOMEM); /* its chunk could not be submitted */
            r = err;
        } else {
            CHECK_EQ(e, -ENOMEM);
            r = e;
            break;
        }
    }
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    if (r == 0)
        CHECK_EQ(seen, 20);
    return r;
}

/* The result's copy, made when the child has returned: refused, its task fails with
 * -ENOMEM (nothing leaked). */
static plait_pevent *gate;
static ssize_t proc_gated(const void *arg, size_t len, void *out, size_t cap)
{
    if (plait_pevent_wait(gate, SOON()) != 0)
        return -EIO;
    return proc_echo(arg, len, out, cap);
}
static int a_process_result(void)
{
    CHECK_EQ(plait_pevent_create(&gate), 0);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, proc_gated, "abc", 3, NULL, NULL), 0);
    void *v = NULL;
    int r = ARMED(({
        CHECK_EQ(plait_pevent_set(gate), 0);
        plait_join(t, &v, SOON());
    }));
    if (r == 0) {
        plait_bytes *b = v;
        CHECK(b && b->len == 3 && memcmp(b->data, "abc", 3) == 0);
        free(b);
    }
    CHECK_EQ(plait_pevent_destroy(gate), 0);
    return r;
}
static int a_procpool_result(void)
{
    CHECK_EQ(plait_pevent_create(&gate), 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, proc_gated, "abc", 3), 0);
    void *v = NULL;
    int r = ARMED(({
        CHECK_EQ(plait_pevent_set(gate), 0);
        plait_join(t, &v, SOON());
    }));
    if (r == 0) {
        plait_bytes *b = v;
        CHECK(b && b->len == 3 && memcmp(b->data, "abc", 3) == 0);
        free(b);
    }
    /* the pool goes on */
    CHECK_EQ(plait_procpool_submit(pool, &t, proc_echo, "de", 2), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    free(v);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_pevent_destroy(gate), 0);
    return r;
}
static int a_process_pipes(void)
{
    plait_task t;
    plait_pipes pp = {-1, -1, -1};
    plait_process_options o = {.stdio = {PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE, PLAIT_STDIO_PIPE}};
    int r = ARMED(plait_process_start(&t, proc_echo, "abc", 3, &o, &pp));
    if (r == 0) {
        close(pp.in);
        void *v = NULL;
        /* (the child may end, and its result be copied out, before the start returns:
         * that copy is counted, and may be the one refused) */
        int e = plait_join(t, &v, SOON());
        CHECK(e == 0 || e == -ENOMEM);
        free(v);
        close(pp.out);
        close(pp.err);
    }
    return r;
}

/* Submits from a worker of the pool itself: its deque grows, or (refused) the task
 * goes to the injection queue, whose blocks may be refused too. */
static plait_pool *local_pool;
static void *submit_locally(void *arg)
{
    (void)arg;
    static plait_task t[600];
    int r = 0, n;
    for (n = 0; n < 600 && r == 0; n++)
        r = ARMED(plait_pool_submit(local_pool, &t[n], count_run, ARG(n)));
    int ok = r == 0 ? n : n - 1;
    for (int i = 0; i < ok; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(t[i], &v, SOON()), 0);
        CHECK_EQ(INT(v), i);
    }
    return PLAIT_FAIL(r);
}
static int a_pool_submit_local(void)
{
    CHECK_EQ(plait_pool_create(&local_pool, &(plait_pool_options){.threads = 1}), 0);
    atomic_store(&ran, 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(local_pool, &t, submit_locally, NULL), 0);
    int r = plait_join(t, NULL, SOON());
    CHECK_EQ(plait_pool_shutdown(local_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(local_pool), 0);
    CHECK_EQ(atomic_load(&ran), r == 0 ? 600 : atomic_load(&ran));
    return r;
}

static void pools_body(void)
{
    oom_loop("pool_submit from a worker", a_pool_submit_local);
    oom_loop("process result", a_process_result);
    oom_loop("procpool result", a_procpool_result);
    oom_loop("process with pipes", a_process_pipes);
    oom_loop("pool_create", a_pool_create);
    oom_loop("pool_submit", a_pool_submit);
    oom_loop("pool_map", a_pool_map);
    oom_loop("to_thread", a_to_thread);
    oom_loop("completed_add", a_completed_add);
    oom_loop("process_start", a_process_start);
    oom_loop("process_exec", a_process_exec);
    oom_loop("procpool_create", a_procpool_create);
    CHECK_EQ(plait_procpool_create(&ppool, &(plait_procpool_options){.processes = 2}), 0);
    oom_loop("procpool_submit", a_procpool_submit);
    oom_loop("procpool_submit many", a_procpool_submit_many);
    oom_loop("procpool_map", a_procpool_map);
    oom_loop("procpool_imap", a_procpool_imap);
    CHECK_EQ(plait_procpool_shutdown(ppool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(ppool), 0);
}
TEST(pools_from_a_coroutine) { IN_COROUTINE(pools_body); }
TEST(pools_from_a_thread) { pools_body(); }

/* The list of live children, which process-shared objects' memory waits on, cannot
 * grow at a fork: the child goes on, and an object made before it must still be freed
 * once it is destroyed and every child is gone (it was counted as held by that child
 * for ever: its mapping was never unmapped). */
static ssize_t proc_gated_empty(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return plait_pevent_wait(gate, SOON()) == 0 ? 0 : -EIO;
}
static bool mapped(void *p)
{
    return msync((void *)((uintptr_t)p & ~(uintptr_t)4095), 1, MS_ASYNC) == 0;
}
static void untracked_child_body(void)
{
    plait_shm *shm;
    CHECK_EQ(plait_shm_create(&shm, 100), 0);
    void *data = plait_shm_data(shm);
    CHECK_EQ(plait_pevent_create(&gate), 0);
    enum { MOST = 80 };
    plait_task t[MOST];
    int n;
    atomic_store(&failed, 0);
    atomic_store(&refuse_every_realloc, 1);
    for (n = 0; n < MOST && !atomic_load(&failed); n++)
        CHECK_EQ(ARMED(plait_process_start(&t[n], proc_gated_empty, NULL, 0, NULL, NULL)), 0);
    atomic_store(&refuse_every_realloc, 0);
    CHECK(atomic_load(&failed) > 0); /* the list was full at the last fork */
    CHECK_EQ(plait_pevent_set(gate), 0);
    for (int i = 0; i < n; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(t[i], &v, SOON()), 0);
        free(v);
    }
    CHECK(no_children_left());
    CHECK(mapped(data));
    CHECK_EQ(plait_shm_destroy(shm), 0);
    /* no child holds it: unmapped at once, or when the last is reported gone */
    int64_t deadline = SOON();
    while (mapped(data) && plait_now() < deadline) {
        struct timespec ms = {0, PLAIT_MS};
        nanosleep(&ms, NULL);
    }
    CHECK(!mapped(data));
    CHECK_EQ(plait_pevent_destroy(gate), 0);
}
TEST(a_child_the_live_list_has_no_room_for) { IN_COROUTINE(untracked_child_body); }

/* ------------------------------------------------------------------------ */
/* Sockets, files                                                            */

static int listener = -1, listen_port;
static int a_tcp_listen(void)
{
    int r = ARMED(plait_tcp_listen("127.0.0.1", 0, 8));
    if (r >= 0)
        close(r);
    return r;
}
static int a_resolve(void)
{
    plait_addr out[4];
    int r = ARMED(plait_resolve("localhost", 80, SOCK_STREAM, out, 4, SOON()));
    return r;
}
/* A connection to the test's listener by host, refused or made (then both ends closed). */
static int connect_to(const char *host)
{
    int r = ARMED(plait_tcp_connect(host, listen_port, SOON()));
    if (r >= 0) {
        close(r);
        int a = plait_accept(listener, NULL, SOON());
        CHECK(a >= 0);
        close(a);
    }
    return r;
}
static int a_tcp_connect(void) { return connect_to("127.0.0.1"); }
static int a_tcp_connect_name(void) { return connect_to("localhost"); }
static int a_file_open(void)
{
    int r = ARMED(plait_file_open("/dev/null", O_RDONLY, 0));
    if (r >= 0)
        CHECK_EQ(plait_close(r), 0);
    return r;
}
static int a_wait_fd(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    int r = ARMED(plait_wait_fd(p[0], POLLIN, SOON()));
    close(p[0]);
    close(p[1]);
    return r < 0 ? r : 0;
}

static int a_wait_fd_high(void)
{
    /* a descriptor numbered past the poller's table: the table grows */
    static int high = 300;
    high += 150;
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    CHECK_EQ(dup3(p[0], high, O_CLOEXEC), high);
    close(p[0]);
    /* empty: the wait must watch it */
    int r = ARMED(plait_wait_fd(high, POLLIN, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ETIMEDOUT || r == -ENOMEM);
    if (r == -ETIMEDOUT)
        r = 0;
    CHECK_EQ(write(p[1], "x", 1), 1);
    char c;
    CHECK_EQ(plait_read(high, &c, 1, SOON()), 1);
    CHECK_EQ(plait_close(high), 0);
    close(p[1]);
    return r < 0 ? r : 0;
}

static void sockets_body(void)
{
    oom_loop("wait_fd high", a_wait_fd_high);
    listener = plait_tcp_listen("127.0.0.1", 0, 64);
    CHECK(listener >= 0);
    plait_addr a;
    CHECK_EQ(plait_local_addr(listener, &a), 0);
    listen_port = plait_addr_port(&a);
    oom_loop("tcp_listen", a_tcp_listen);
    oom_loop("resolve", a_resolve);
    oom_loop("tcp_connect", a_tcp_connect);
    oom_loop("tcp_connect by name", a_tcp_connect_name);
    oom_loop("file_open", a_file_open);
    oom_loop("wait_fd", a_wait_fd);
    close(listener);
}
TEST(sockets_from_a_coroutine) { IN_COROUTINE(sockets_body); }
TEST(sockets_from_a_thread) { sockets_body(); }

/* ------------------------------------------------------------------------ */
/* A coroutine's timed wait whose timer cannot be kept: a sleeper with a later deadline
 * holds the end of the scheduler's timer list, so the wait's earlier deadline goes to
 * the heap, whose first growth is refused.  The call fails (-ENOMEM) and has done
 * nothing: delivered nothing, taken nothing, joined no round. */

static void *sleep_long(void *arg)
{
    (void)arg;
    plait_sleep(60 * PLAIT_SEC);
    return NULL;
}
/* Start the sleeper (cancelled when the fresh scheduler's main returns). */
static void hold_timer_tail(void)
{
    CHECK_EQ(plait_spawn(NULL, sleep_long, NULL), 0);
    CHECK_EQ(plait_yield(), 0);
}
#define EARLIER() plait_deadline_in(PLAIT_SEC)
/* A timed wait under refusals: -ENOMEM (refused) or its deadline (0: nothing refused). */
static int refused_or_timed_out(int r)
{
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    return r == -ETIMEDOUT ? 0 : r;
}

static int t_chan_send(void)
{
    hold_timer_tail();
    plait_chan *c;
    CHECK_EQ(plait_chan_create(&c, sizeof(int), 0), 0);
    int x = 5;
    int r = ARMED(plait_chan_send(c, &x, plait_deadline_in(10 * PLAIT_MS)));
    CHECK_EQ(plait_chan_destroy(c), 0);
    return refused_or_timed_out(r);
}
static int t_chan_recv(void)
{
    hold_timer_tail();
    plait_chan *c;
    CHECK_EQ(plait_chan_create(&c, sizeof(int), 1), 0);
    int x = 0;
    int r = ARMED(plait_chan_recv(c, &x, plait_deadline_in(10 * PLAIT_MS)));
    CHECK_EQ(plait_chan_destroy(c), 0);
    return refused_or_timed_out(r);
}
static int t_cond(void)
{
    hold_timer_tail();
    plait_mutex *m;
    plait_cond *c;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_cond_create(&c), 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);
    int r = ARMED(plait_cond_wait(c, m, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    /* the mutex is locked again on every outcome */
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_cond_destroy(c), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    return r == -ETIMEDOUT ? 0 : r;
}
static int t_barrier(void)
{
    hold_timer_tail();
    plait_barrier *b;
    CHECK_EQ(plait_barrier_create(&b, 2), 0);
    int r = ARMED(plait_barrier_wait(b, plait_deadline_in(10 * PLAIT_MS)));
    /* not counted in the round: one arrival does not complete it */
    CHECK_EQ(plait_barrier_wait(b, 0), -ETIMEDOUT);
    CHECK_EQ(plait_barrier_destroy(b), 0);
    return refused_or_timed_out(r);
}
static int t_sem(void)
{
    hold_timer_tail();
    plait_sem *sem;
    CHECK_EQ(plait_sem_create(&sem, 0), 0);
    int r = ARMED(plait_sem_acquire(sem, plait_deadline_in(10 * PLAIT_MS)));
    CHECK_EQ(plait_sem_value(sem), 0);
    CHECK_EQ(plait_sem_destroy(sem), 0);
    return refused_or_timed_out(r);
}
static plait_event *release_lock;
static void *hold_lock(void *arg)
{
    CHECK_EQ(plait_mutex_lock(arg, 0), 0);
    CHECK_EQ(plait_event_wait(release_lock, SOON()), 0);
    CHECK_EQ(plait_mutex_unlock(arg), 0);
    return NULL;
}
static int t_mutex(void)
{
    hold_timer_tail();
    plait_mutex *m;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_event_create(&release_lock), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, hold_lock, m), 0);
    CHECK_EQ(plait_yield(), 0);
    int r = ARMED(plait_mutex_lock(m, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    CHECK_EQ(plait_event_set(release_lock), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    CHECK_EQ(plait_event_destroy(release_lock), 0);
    return r == -ETIMEDOUT ? 0 : r;
}
static int t_sleep(void)
{
    hold_timer_tail();
    int r = ARMED(plait_sleep(PLAIT_MS));
    return r;
}
static int t_join(void)
{
    hold_timer_tail();
    plait_task t;
    CHECK_EQ(plait_spawn(&t, sleep_long, NULL), 0);
    int r = ARMED(plait_join(t, NULL, plait_deadline_in(10 * PLAIT_MS)));
    /* the handle is still valid */
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    return refused_or_timed_out(r);
}
static int t_wait_fd(void)
{
    hold_timer_tail();
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    int r = ARMED(plait_wait_fd(p[0], POLLIN, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    /* the descriptor can be waited on again, and closed */
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK(plait_wait_fd(p[0], POLLIN, SOON()) > 0);
    CHECK_EQ(plait_close(p[0]), 0);
    close(p[1]);
    return r == -ETIMEDOUT ? 0 : r;
}
static int t_read(void)
{
    hold_timer_tail();
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    char ch;
    ssize_t n = ARMED(plait_read(p[0], &ch, 1, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(n == -ENOMEM || n == -ETIMEDOUT);
    CHECK_EQ(write(p[1], "y", 1), 1);
    CHECK_EQ(plait_read(p[0], &ch, 1, SOON()), 1);
    CHECK_EQ(ch, 'y');
    CHECK_EQ(plait_close(p[0]), 0);
    close(p[1]);
    return n == -ETIMEDOUT ? 0 : (int)n;
}
static int t_queue(void)
{
    hold_timer_tail();
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    char buf[16];
    ssize_t n = ARMED(plait_queue_recv(q, buf, sizeof buf, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(n == -ENOMEM || n == -ETIMEDOUT);
    CHECK_EQ(plait_queue_send(q, "ab", 2, 0), 0);
    CHECK_EQ(plait_queue_send(q, "cd", 2, 0), -ETIMEDOUT);
    int r = ARMED(plait_queue_send(q, "cd", 2, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    CHECK_EQ(plait_queue_len(q), 1u);
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, 0), 2);
    CHECK_EQ(plait_queue_destroy(q), 0);
    if (n == -ENOMEM)
        return -ENOMEM;
    return r == -ETIMEDOUT ? 0 : r;
}
static int t_select(void)
{
    hold_timer_tail();
    plait_chan *c[3];
    int v[3] = {0};
    plait_select_case cs[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_chan_create(&c[i], sizeof(int), 0), 0);
        cs[i] = (plait_select_case){.chan = c[i], .op = i ? PLAIT_RECV : PLAIT_SEND,
                                    .elem = &v[i]};
    }
    int r = ARMED(plait_select(cs, 3, plait_deadline_in(10 * PLAIT_MS)));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_chan_destroy(c[i]), 0); /* nothing waits on them any more */
    return refused_or_timed_out(r);
}
static int t_resolve(void)
{
    hold_timer_tail();
    plait_addr out[4];
    /* refused, the lookup finishes on its own and frees what it holds */
    int r = ARMED(plait_resolve("localhost", 80, PLAIT_STREAM, out, 4, SOON()));
    CHECK(r == -ENOMEM || r > 0);
    return r > 0 ? 0 : r;
}
static int t_completed_next(void)
{
    hold_timer_tail();
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task t, d;
    CHECK_EQ(plait_spawn(&t, sleep_long, NULL), 0);
    CHECK_EQ(plait_completed_add(set, t), 0);
    int r = ARMED(plait_completed_next(set, &d, plait_deadline_in(10 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_completed_next(set, &d, SOON()), 0);
    CHECK_EQ(plait_join(d, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_completed_destroy(set), 0);
    return r == -ETIMEDOUT ? 0 : r;
}
static int t_group_wait(void)
{
    hold_timer_tail();
    plait_group *g;
    CHECK_EQ(plait_group_create(&g), 0);
    CHECK_EQ(plait_group_spawn(g, NULL, sleep_long, NULL), 0);
    int r = ARMED(plait_group_wait(g, plait_deadline_in(10 * PLAIT_MS)));
    CHECK_EQ(plait_group_destroy(g), 0);
    return refused_or_timed_out(r);
}
static int t_signals(void)
{
    hold_timer_tail();
    plait_signals *w;
    int sig = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &sig, 1), 0);
    int r = ARMED(plait_signals_wait(w, plait_deadline_in(10 * PLAIT_MS)));
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR2);
    CHECK_EQ(plait_signals_destroy(w), 0);
    return refused_or_timed_out(r);
}

/* to_thread's wait for its task fails (-ENOMEM): the task must not run on past the
 * call, with the caller's memory (plait.h: "if it had started, the call waits for it to
 * return first"), nor its handle be lost. */
static atomic_int tt_started, tt_finished, tt_caller_gone, tt_late;
static plait_event *tt_gate;
static void *tt_fn(void *arg)
{
    atomic_store(&tt_started, 1);
    plait_event_wait(tt_gate, SOON()); /* until cancelled, or the gate opens */
    if (atomic_load(&tt_caller_gone))
        atomic_store(&tt_late, 1);
    atomic_store(&tt_finished, 1);
    return arg;
}
static int t_to_thread(void)
{
    hold_timer_tail();
    atomic_store(&tt_started, 0);
    atomic_store(&tt_finished, 0);
    atomic_store(&tt_caller_gone, 0);
    atomic_store(&tt_late, 0);
    CHECK_EQ(plait_event_create(&tt_gate), 0);
    realloc_refused_after = &tt_started;
    void *v = NULL;
    int r = ARMED(plait_to_thread(tt_fn, ARG(1), &v, plait_deadline_in(20 * PLAIT_MS)));
    realloc_refused_after = NULL;
    atomic_store(&tt_caller_gone, 1);
    CHECK(r == -ENOMEM || r == -ETIMEDOUT || r == 0);
    /* returned: its task has not started, or has finished */
    CHECK_EQ(atomic_load(&tt_started), atomic_load(&tt_finished));
    CHECK_EQ(plait_event_set(tt_gate), 0);
    if (atomic_load(&tt_started))
        wait_for(&tt_finished);
    CHECK_EQ(atomic_load(&tt_late), 0);
    CHECK_EQ(plait_event_destroy(tt_gate), 0);
    return r == -ETIMEDOUT ? 0 : r;
}

/* A process pool map whose wait for a chunk fails (-ENOMEM): no chunk of it may go on
 * after the call (they deliver into its memory), nor a handle be lost: the pool drains
 * at once. */
static ssize_t proc_wait_gate(const void *arg, size_t len, void *out, size_t cap)
{
    if (plait_pevent_wait(gate, SOON()) != 0)
        return -EIO;
    return proc_echo(arg, len, out, cap);
}
static int t_procpool_map(void)
{
    hold_timer_tail();
    CHECK_EQ(plait_pevent_create(&gate), 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2}), 0);
    int args[8], res[8], err[8];
    for (int i = 0; i < 8; i++)
        args[i] = i;
    int r = ARMED(plait_procpool_map(pool, proc_wait_gate, args, sizeof(int), 8, res,
                                     sizeof(int), err, 1, plait_deadline_in(20 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT);
    /* nothing of the map is left in the pool (the gate is still shut) */
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(2 * PLAIT_SEC)),
             0);
    CHECK_EQ(plait_pevent_set(gate), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_pevent_destroy(gate), 0);
    return r == -ETIMEDOUT ? 0 : r;
}
/* The same for imap: a chunk whose wait failed is joined again by the next call, and
 * the iterator's destroy stops it. */
static int t_procpool_imap(void)
{
    hold_timer_tail();
    CHECK_EQ(plait_pevent_create(&gate), 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2}), 0);
    static int args[8];
    for (int i = 0; i < 8; i++)
        args[i] = i;
    plait_procpool_iter *it;
    CHECK_EQ(plait_procpool_imap(&it, pool, proc_wait_gate, args, sizeof(int), 8, sizeof(int),
                                 1, 0),
             0);
    size_t idx = 0;
    int v = -1, e = 0;
    int r = ARMED(plait_procpool_imap_next(it, &idx, &v, &e, plait_deadline_in(20 * PLAIT_MS)));
    CHECK(r == -ENOMEM || r == -ETIMEDOUT || r == 0);
    if (r == 0) /* the wait was refused: the item says so, then */
        CHECK_EQ(e, -ENOMEM);
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    /* nothing of the iterator is left in the pool (the gate is still shut) */
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(2 * PLAIT_SEC)),
             0);
    CHECK_EQ(plait_pevent_set(gate), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_pevent_destroy(gate), 0);
    if (r == 0)
        return -ENOMEM;
    return r == -ETIMEDOUT ? 0 : r;
}

TEST(to_thread_without_room_for_a_timer)
{
    oom_loop_fresh("to_thread", t_to_thread);
}
TEST(procpool_map_without_room_for_a_timer)
{
    oom_loop_fresh("procpool_map", t_procpool_map);
    oom_loop_fresh("procpool_imap", t_procpool_imap);
}

TEST(timed_waits_without_room_for_a_timer)
{
    oom_loop_fresh("chan_send", t_chan_send);
    oom_loop_fresh("chan_recv", t_chan_recv);
    oom_loop_fresh("cond_wait", t_cond);
    oom_loop_fresh("barrier_wait", t_barrier);
    oom_loop_fresh("sem_acquire", t_sem);
    oom_loop_fresh("mutex", t_mutex);
    oom_loop_fresh("sleep", t_sleep);
    oom_loop_fresh("join", t_join);
    oom_loop_fresh("wait_fd", t_wait_fd);
    oom_loop_fresh("read", t_read);
    oom_loop_fresh("queue", t_queue);
    oom_loop_fresh("signals_wait", t_signals);
    oom_loop_fresh("completed_next", t_completed_next);
    oom_loop_fresh("select", t_select);
    oom_loop_fresh("resolve", t_resolve);
    oom_loop_fresh("group_wait", t_group_wait);
}

/* ------------------------------------------------------------------------ */
/* Out of futures: the call's own allocations succeed, but a new chunk of futures is
 * refused.  Each call is made until one is refused (-ENOMEM); the refused one must
 * not run, every accepted one must. */

enum { CALLS_MAX = 3000 };
static plait_task many[CALLS_MAX];

typedef int (*call_fn)(plait_task *t, int i);

static int c_procpool_submit(plait_task *t, int i);
static void out_of_futures(const char *what, call_fn call)
{
    int fds = count_fds();
    atomic_store(&ran, 0);
    atomic_store(&failed, 0);
    atomic_store(&refuse_big_calloc, 256 * sizeof(plait__future));
    int n, r = 0;
    for (n = 0; n < CALLS_MAX; n++) {
        r = ARMED(call(&many[n], n));
        if (r < 0)
            break;
    }
    atomic_store(&refuse_big_calloc, 0);
    if (r != -ENOMEM)
        fprintf(stderr, "  %s: call %d: %d\n", what, n, r);
    CHECK_EQ(r, -ENOMEM);
    CHECK(atomic_load(&failed) > 0);
    for (int i = 0; i < n; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(many[i], &v, SOON()), 0);
        if (call == c_procpool_submit) {
            plait_bytes *b = v;
            CHECK(b && b->len == sizeof i && memcmp(b->data, &i, sizeof i) == 0);
            free(b);
            atomic_fetch_add(&ran, 1);
        } else {
            CHECK_EQ(INT(v), i);
        }
    }
    CHECK_EQ(atomic_load(&ran), n); /* the refused one never ran */
    CHECK_EQ(count_fds(), fds);
    /* and the call works again */
    CHECK_EQ(call(&many[0], 0), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(many[0], &v, SOON()), 0);
    if (call == c_procpool_submit)
        free(v);
}

static int c_spawn(plait_task *t, int i) { return plait_spawn(t, count_run, ARG(i)); }
static plait_group *the_group;
static int c_group_spawn(plait_task *t, int i)
{
    return plait_group_spawn(the_group, t, count_run, ARG(i));
}
static plait_pool *the_pool;
static int c_pool_submit(plait_task *t, int i)
{
    return plait_pool_submit(the_pool, t, count_run, ARG(i));
}
static void *in_to_thread(void *arg)
{
    return arg;
}
static int c_to_thread(plait_task *t, int i)
{
    /* to_thread's own future; the task made only to give the loop a handle */
    void *v = NULL;
    int r = plait_to_thread(in_to_thread, ARG(i), &v, SOON());
    if (r == 0) {
        CHECK_EQ(INT(v), i);
        r = plait_spawn(t, count_run, ARG(i));
    }
    return r;
}

static plait_procpool *the_procpool;
static int c_procpool_submit(plait_task *t, int i)
{
    return plait_procpool_submit(the_procpool, t, proc_echo, &i, sizeof i);
}
static int c_thread_start(plait_task *t, int i)
{
    return plait_thread_start(t, count_run, ARG(i), NULL);
}

static void out_of_futures_body(void)
{
    out_of_futures("spawn", c_spawn);
    CHECK_EQ(plait_group_create(&the_group), 0);
    out_of_futures("group_spawn", c_group_spawn);
    CHECK_EQ(plait_group_destroy(the_group), 0);
    CHECK_EQ(plait_pool_create(&the_pool, &(plait_pool_options){.threads = 2}), 0);
    out_of_futures("pool_submit", c_pool_submit);
    CHECK_EQ(plait_pool_shutdown(the_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(the_pool), 0);
    out_of_futures("to_thread", c_to_thread);
    out_of_futures("thread_start", c_thread_start);
    CHECK_EQ(plait_procpool_create(&the_procpool, &(plait_procpool_options){.processes = 2}),
             0);
    out_of_futures("procpool_submit", c_procpool_submit);
    CHECK_EQ(plait_procpool_shutdown(the_procpool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(the_procpool), 0);
}
TEST(out_of_futures_in_a_coroutine) { IN_COROUTINE(out_of_futures_body); }

static void out_of_futures_thread_body(void)
{
    CHECK_EQ(plait_pool_create(&the_pool, &(plait_pool_options){.threads = 2}), 0);
    out_of_futures("pool_submit from a thread", c_pool_submit);
    CHECK_EQ(plait_pool_shutdown(the_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(the_pool), 0);
}
TEST(out_of_futures_in_a_thread) { out_of_futures_thread_body(); }

/* ------------------------------------------------------------------------ */
/* plait_run itself, and a scheduler's poller at its first use               */

static void *nothing(void *arg) { return arg; }
static int a_run(void)
{
    void *v = NULL;
    int r = ARMED(plait_run(nothing, ARG(9), &v));
    if (r == 0)
        CHECK_EQ(INT(v), 9);
    return r;
}
static void *wait_fd_first(void *arg)
{
    int *p = arg;
    return PLAIT_FAIL(ARMED(plait_wait_fd(p[0], POLLIN, SOON())));
}
static int a_wait_fd_first(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    int r = plait_run(wait_fd_first, p, NULL);
    if (r > 0)
        r = 0;
    close(p[0]);
    close(p[1]);
    return r;
}
static void *read_first(void *arg)
{
    int *p = arg;
    char c;
    ssize_t n = ARMED(plait_read(p[0], &c, 1, SOON()));
    if (n == 1)
        CHECK_EQ(c, 'x');
    return PLAIT_FAIL(n < 0 ? (int)n : 0);
}
static int a_read_first(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    int r = plait_run(read_first, p, NULL);
    (void)r;
    close(p[0]);
    close(p[1]);
    return r;
}

TEST(run_and_first_poll)
{
    oom_loop("plait_run", a_run);
    oom_loop("wait_fd first use", a_wait_fd_first);
    oom_loop("read first use", a_read_first);
}

RUN_TESTS(CASE(first_run_of_the_process), CASE(first_shared_wait_of_a_coroutine), CASE(default_pool_at_first_use), CASE(sync_objects), CASE(sync_objects_from_a_coroutine), CASE(tasks), CASE(thread_calls), CASE(tasks_on_a_fresh_scheduler), CASE(pools_from_a_coroutine), CASE(pools_from_a_thread),
          CASE(a_child_the_live_list_has_no_room_for),
          CASE(sockets_from_a_coroutine), CASE(sockets_from_a_thread),
          CASE(timed_waits_without_room_for_a_timer),
          CASE(to_thread_without_room_for_a_timer), CASE(procpool_map_without_room_for_a_timer),
          CASE(out_of_futures_in_a_coroutine), CASE(out_of_futures_in_a_thread),
          CASE(run_and_first_poll))
