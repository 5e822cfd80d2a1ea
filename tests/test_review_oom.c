/* test_review_oom.c — allocation failure across the public API.  malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and mmap are wrapped (-Wl,--wrap): while a
 * call under test runs (ARMED), the k-th allocation made (by the library: the test
 * allocates nothing meanwhile) fails.  For k = 1, 2, ... until the call succeeds with
 * no failure met, each failing call must return a clear negative code (-ENOMEM), not
 * crash or hang, leak nothing (LeakSanitizer in the sanitizer build) and leave no
 * descriptor open; and the same call must work afterwards.  Calls that fail must not
 * have done what they were asked (a refused submit has queued nothing, a refused send
 * has delivered nothing). */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_int armed;
static atomic_int fail_at; /* 0: fail none; k: the k-th allocation while armed */
static atomic_int allocs;
static atomic_int failed;

static bool refuse(void)
{
    if (!atomic_load(&armed) || !atomic_load(&fail_at))
        return false;
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
    if (refuse()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n)
{
    if (refuse()) {
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

/* Evaluate expr with allocation failure armed. */
#define ARMED(expr)                                                                      \
    ({                                                                                   \
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
        int now = count_fds();
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

static int a_chan(void)
{
    plait_chan *c = NULL;
    int r = ARMED(plait_chan_create(&c, 8, 4));
    if (r == 0)
        CHECK_EQ(plait_chan_destroy(c), 0);
    return r;
}
static int a_mutex(void)
{
    plait_mutex *m = NULL;
    int r = ARMED(plait_mutex_create(&m));
    if (r == 0)
        CHECK_EQ(plait_mutex_destroy(m), 0);
    return r;
}
static int a_cond(void)
{
    plait_cond *c = NULL;
    int r = ARMED(plait_cond_create(&c));
    if (r == 0)
        CHECK_EQ(plait_cond_destroy(c), 0);
    return r;
}
static int a_sem(void)
{
    plait_sem *s = NULL;
    int r = ARMED(plait_sem_create(&s, 1));
    if (r == 0)
        CHECK_EQ(plait_sem_destroy(s), 0);
    return r;
}
static int a_event(void)
{
    plait_event *e = NULL;
    int r = ARMED(plait_event_create(&e));
    if (r == 0)
        CHECK_EQ(plait_event_destroy(e), 0);
    return r;
}
static int a_waitgroup(void)
{
    plait_waitgroup *w = NULL;
    int r = ARMED(plait_waitgroup_create(&w));
    if (r == 0)
        CHECK_EQ(plait_waitgroup_destroy(w), 0);
    return r;
}
static int a_rwlock(void)
{
    plait_rwlock *w = NULL;
    int r = ARMED(plait_rwlock_create(&w));
    if (r == 0)
        CHECK_EQ(plait_rwlock_destroy(w), 0);
    return r;
}
static int a_barrier(void)
{
    plait_barrier *b = NULL;
    int r = ARMED(plait_barrier_create(&b, 2));
    if (r == 0)
        CHECK_EQ(plait_barrier_destroy(b), 0);
    return r;
}
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
static int a_completed(void)
{
    plait_completed *s = NULL;
    int r = ARMED(plait_completed_create(&s));
    if (r == 0)
        CHECK_EQ(plait_completed_destroy(s), 0);
    return r;
}
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
static int a_queue(void)
{
    plait_queue *q = NULL;
    int r = ARMED(plait_queue_create(&q, 64, 4));
    if (r == 0)
        CHECK_EQ(plait_queue_destroy(q), 0);
    return r;
}
static int a_pmutex(void)
{
    plait_pmutex *m = NULL;
    int r = ARMED(plait_pmutex_create(&m));
    if (r == 0)
        CHECK_EQ(plait_pmutex_destroy(m), 0);
    return r;
}
static int a_psem(void)
{
    plait_psem *m = NULL;
    int r = ARMED(plait_psem_create(&m, 0));
    if (r == 0)
        CHECK_EQ(plait_psem_destroy(m), 0);
    return r;
}
static int a_pevent(void)
{
    plait_pevent *m = NULL;
    int r = ARMED(plait_pevent_create(&m));
    if (r == 0)
        CHECK_EQ(plait_pevent_destroy(m), 0);
    return r;
}
static int a_shm(void)
{
    plait_shm *m = NULL;
    int r = ARMED(plait_shm_create(&m, 4096));
    if (r == 0)
        CHECK_EQ(plait_shm_destroy(m), 0);
    return r;
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

static atomic_int ran;
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
}

TEST(thread_calls)
{
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
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2}), 0);
    void *args[40], *res[40];
    for (int i = 0; i < 40; i++)
        args[i] = ARG(i);
    int r = ARMED(plait_pool_map(pool, count_run, args, 40, res, NULL, SOON()));
    if (r == 0)
        for (int i = 0; i < 40; i++)
            CHECK_EQ(INT(res[i]), i);
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
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        plait_bytes *b = v;
        CHECK(b && b->len == 3 && memcmp(b->data, "abc", 3) == 0);
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
static int a_procpool_create(void)
{
    plait_procpool *pool = NULL;
    int r = ARMED(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}));
    if (r == 0) {
        CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    return r;
}
static plait_procpool *ppool;
static int a_procpool_submit(void)
{
    plait_task t;
    int r = ARMED(plait_procpool_submit(ppool, &t, proc_echo, "xy", 2));
    if (r == 0) {
        void *v = NULL;
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
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
        void *v = NULL;
        CHECK_EQ(plait_join(t[i], &v, SOON()), 0);
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
    if (r == 0)
        for (int i = 0; i < 20; i++)
            CHECK_EQ(res[i], i);
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

static void pools_body(void)
{
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
static int a_tcp_connect(void)
{
    int r = ARMED(plait_tcp_connect("127.0.0.1", listen_port, SOON()));
    if (r >= 0) {
        close(r);
        int a = plait_accept(listener, NULL, SOON());
        CHECK(a >= 0);
        close(a);
    }
    return r;
}
static int a_tcp_connect_name(void)
{
    int r = ARMED(plait_tcp_connect("localhost", listen_port, SOON()));
    if (r >= 0) {
        close(r);
        int a = plait_accept(listener, NULL, SOON());
        CHECK(a >= 0);
        close(a);
    }
    return r;
}
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

static void sockets_body(void)
{
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

RUN_TESTS(CASE(sync_objects), CASE(sync_objects_from_a_coroutine), CASE(tasks), CASE(thread_calls), CASE(tasks_on_a_fresh_scheduler), CASE(pools_from_a_coroutine), CASE(pools_from_a_thread),
          CASE(sockets_from_a_coroutine), CASE(sockets_from_a_thread),
          CASE(run_and_first_poll))
