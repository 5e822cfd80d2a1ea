/* test_procpool.c — process pools: submit and join (from threads and coroutines),
 * wait_any / as-completed over pool tasks, crash isolation (segfault, abort, exit,
 * SIGKILL, a kill from outside) with worker replacement and a crash stress run,
 * per-task timeouts, max_tasks, initialisers (working and failing), cancellation of
 * queued and running tasks, shutdown (drain, cancel, a deadline then escalation),
 * map and imap (results, per-item errors, crashes, deadlines, chunk sizes, early
 * destroy), bad input, and that nothing is left behind (no zombies, no workers, no
 * descriptors).
 *
 * Tasks run in forked workers, so what they do is observed through a plait_shm region
 * (run counts and pids per task id) and process-shared events and semaphores, all made
 * before the pool (fx_init), so every worker — replacements too — shares them.  A task
 * that must hold its worker says so on `started` (a psem) and then waits on a gate (a
 * pevent) that the test opens, or never opens when the task is meant to be killed.
 * Every blocking call has a deadline; a sleep appears only where the test is about
 * time, with margins for a loaded 2-core machine.  Scenarios that cancel tasks just as
 * they finish run in a child process with a time budget (run_isolated), so that a
 * deadlock of the pool fails that case instead of hanging the file. */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A deadline for joins of tasks that end at once (a quick task, a crash, a kill, a
 * cancel): shorter than SOON(), so that a pool that fails to report an outcome makes the
 * case fail in seconds and the file stays within its alarm.  A batch of joins shares
 * one deadline. */
#define PROMPTLY() plait_deadline_in((CHECK_SLOW_CHILDREN ? 5 : 2) * PLAIT_SEC)
/* How soon a crash, kill or cancel must be reported (under ThreadSanitizer, exit() in a
 * worker lingers a second: its atexit_sleep_ms; in a coverage build it writes its
 * counts). */
#define REPORT_WITHIN ((CHECK_SLOW_CHILDREN ? 3 : 1) * PLAIT_SEC)

/* ======================================================================== */
/* Shared fixture: made before each pool, so the workers see it              */
/* ======================================================================== */

enum { IDS = 4096, GATES = 4 };

typedef struct shared {
    atomic_int runs[IDS];   /* how many times the task (or map item) with this id ran */
    atomic_int pid_of[IDS]; /* the worker that ran it last */
    atomic_int inits;       /* initialiser calls */
    atomic_int locked;      /* an initialiser has locked init_lock */
} shared;

static struct {
    plait_shm *shm;
    shared *sh;
    plait_pevent *gate[GATES]; /* held tasks wait on one of these */
    plait_psem *started;       /* a held task has started (one release each) */
    plait_psem *meet[2];       /* two tasks that must run at the same time */
} fx;

static void fx_init(void)
{
    memset(&fx, 0, sizeof fx);
    CHECK_EQ(plait_shm_create(&fx.shm, sizeof(shared)), 0);
    fx.sh = plait_shm_data(fx.shm);
    for (int i = 0; i < GATES; i++)
        CHECK_EQ(plait_pevent_create(&fx.gate[i]), 0);
    CHECK_EQ(plait_psem_create(&fx.started, 0), 0);
    CHECK_EQ(plait_psem_create(&fx.meet[0], 0), 0);
    CHECK_EQ(plait_psem_create(&fx.meet[1], 0), 0);
}

static void fx_fini(void)
{
    for (int i = 0; i < GATES; i++)
        CHECK_EQ(plait_pevent_destroy(fx.gate[i]), 0);
    CHECK_EQ(plait_psem_destroy(fx.started), 0);
    CHECK_EQ(plait_psem_destroy(fx.meet[0]), 0);
    CHECK_EQ(plait_psem_destroy(fx.meet[1]), 0);
    CHECK_EQ(plait_shm_destroy(fx.shm), 0);
    memset(&fx, 0, sizeof fx);
}

/* Wait until n held tasks have said they started. */
static void await_started(int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(plait_psem_acquire(fx.started, SOON()), 0);
}

static int runs(int id) { return atomic_load(&fx.sh->runs[id]); }
static int pid_of(int id) { return atomic_load(&fx.sh->pid_of[id]); }

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer's hook: no leak check at exit() in a worker (J_EXIT3 calls it there):
 * the heap it would look at is its copy of this process's. */
static pid_t main_pid;
__attribute__((constructor)) static void note_main_pid(void) { main_pid = getpid(); }
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return getpid() != main_pid; }
#endif

/* ======================================================================== */
/* Tasks                                                                      */
/* ======================================================================== */

enum job_kind {
    J_VALUE,      /* value * value + 1 */
    J_PID,        /* the worker's pid */
    J_FAIL,       /* fails with -EDOM */
    J_TOO_BIG,    /* claims a result one byte larger than the room */
    J_INIT_VALUE, /* what the initialiser left in g_init_value */
    J_MEET,       /* meets its partner (id 0 or 1): both must run at once; its pid */
    J_BLOCK,      /* started, then waits for its gate (5 s at most); J_VALUE's result */
    J_SPIN,       /* started, then spins forever */
    J_SLEEP,      /* sleeps value ms; J_VALUE's result */
    J_BRIEF,      /* spins value rounds (a few microseconds); J_VALUE's result */
    J_SEGV,       /* raise(SIGSEGV) */
    J_NULL,       /* a write through a null pointer */
    J_ABORT,      /* abort() */
    J__EXIT3,     /* _exit(3) */
    J_EXIT3,      /* exit(3) */
    J_SIGKILL,    /* kills itself with SIGKILL */
};

typedef struct job {
    int32_t kind, id, gate, pad;
    int64_t value;
} job;

static int64_t value_of(int64_t v) { return v * v + 1; }

static int g_init_value; /* set in the workers by init_set */
static volatile unsigned long spin_sink;
static int *volatile null_target; /* stays NULL */

/* Not instrumented: UBSan would stop the process itself instead of the segfault. */
__attribute__((no_sanitize("undefined"))) static void null_write(void) { *null_target = 1; }

/* End the calling worker the way `kind` says. */
static void die_by(int kind)
{
    prctl(PR_SET_DUMPABLE, 0); /* no core file */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL; /* a sanitizer's handler would turn the crash into an exit */
    switch (kind) {
    case J_SEGV:
        sigaction(SIGSEGV, &dfl, NULL);
        raise(SIGSEGV);
        break;
    case J_NULL:
        sigaction(SIGSEGV, &dfl, NULL);
        null_write();
        break;
    case J_ABORT:
        sigaction(SIGABRT, &dfl, NULL);
        abort();
    case J__EXIT3:
        _exit(3);
    case J_EXIT3:
        exit(3);
    case J_SIGKILL:
        raise(SIGKILL);
        break;
    }
    _exit(99); /* not reached */
}

static bool is_crash(int kind) { return kind >= J_SEGV; }

/* ThreadSanitizer makes exit() return 66 once it has reported anything in the process,
 * and a worker inherits the reports its parent had made before the fork: after an
 * earlier report, a worker's exit(3) comes back as status 66. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_EXIT_OVERRIDDEN(r) ((r) == PLAIT_EXITED(66))
#else
#define TSAN_EXIT_OVERRIDDEN(r) false
#endif

/* What a crash of that kind must fail its task with. */
static int crash_code(int kind)
{
    switch (kind) {
    case J_SEGV:
    case J_NULL: return PLAIT_KILLED(SIGSEGV);
    case J_ABORT: return PLAIT_KILLED(SIGABRT);
    case J__EXIT3:
    case J_EXIT3: return PLAIT_EXITED(3);
    case J_SIGKILL: return PLAIT_KILLED(SIGKILL);
    }
    return 0;
}

/* The one task function: what it does is the job's kind; its result is an int64. */
static ssize_t job_fn(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    job j;
    if (arg_len < sizeof j)
        return -EBADMSG;
    memcpy(&j, arg, sizeof j);
    if (j.id >= 0 && j.id < IDS) {
        atomic_store(&fx.sh->pid_of[j.id], (int)getpid());
        atomic_fetch_add(&fx.sh->runs[j.id], 1);
    }
    int64_t v = value_of(j.value);
    switch (j.kind) {
    case J_VALUE: break;
    case J_PID: v = getpid(); break;
    case J_FAIL: return -EDOM;
    case J_TOO_BIG: return (ssize_t)out_cap + 1;
    case J_INIT_VALUE: v = g_init_value; break;
    case J_MEET: {
        int r = plait_psem_release(fx.meet[j.id]);
        if (r == 0)
            r = plait_psem_acquire(fx.meet[1 - j.id], plait_deadline_in(5 * PLAIT_SEC));
        if (r < 0)
            return r;
        v = getpid();
        break;
    }
    case J_BLOCK: {
        plait_psem_release(fx.started);
        int r = plait_pevent_wait(fx.gate[j.gate], plait_deadline_in(5 * PLAIT_SEC));
        if (r < 0)
            return r;
        break;
    }
    case J_SPIN:
        plait_psem_release(fx.started);
        for (;;)
            spin_sink++;
    case J_SLEEP: plait_sleep(j.value * PLAIT_MS); break;
    case J_BRIEF:
        for (int64_t i = 0; i < j.value; i++)
            spin_sink++;
        break;
    default: die_by(j.kind);
    }
    if (out_cap < sizeof v)
        return -ENOSPC;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

/* Returns nothing: a result of length 0. */
static ssize_t empty_fn(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg;
    (void)out;
    (void)out_cap;
    return arg_len == 0 ? 0 : -EBADMSG;
}

/* The argument's bytes reversed. */
static ssize_t reverse_fn(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    if (arg_len > out_cap)
        return -ENOSPC;
    const unsigned char *in = arg;
    unsigned char *o = out;
    for (size_t i = 0; i < arg_len; i++)
        o[i] = in[arg_len - 1 - i];
    return (ssize_t)arg_len;
}

static int submit_job(plait_procpool *pool, plait_task *t, int kind, int id, int64_t value)
{
    job j = {.kind = kind, .id = id, .value = value};
    return plait_procpool_submit(pool, t, job_fn, &j, sizeof j);
}

static int submit_held(plait_procpool *pool, plait_task *t, int kind, int id, int gate)
{
    job j = {.kind = kind, .id = id, .gate = gate, .value = id};
    return plait_procpool_submit(pool, t, job_fn, &j, sizeof j);
}

/* Join a task whose result is one int64: its code, and *v (may be NULL) its value. */
static int join_i64(plait_task t, int64_t *v, int64_t deadline)
{
    void *res = NULL;
    int r = plait_join(t, &res, deadline);
    if (r == 0) {
        plait_bytes *b = res;
        CHECK(b != NULL);
        if (b) {
            CHECK_EQ(b->len, sizeof(int64_t));
            if (b->len == sizeof(int64_t) && v)
                memcpy(v, b->data, sizeof *v);
            free(b);
        }
    }
    return r;
}

/* ---- map items: an int64 each ---- */

static int64_t item_of(int64_t x) { return 3 * x + 1; }

static int64_t load_i64(const void *p)
{
    int64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

static ssize_t store_i64(void *out, size_t out_cap, int64_t v)
{
    if (out_cap < sizeof v)
        return -ENOSPC;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

static void count_item(int64_t x)
{
    if (x >= 0 && x < IDS)
        atomic_fetch_add(&fx.sh->runs[x], 1);
}

static ssize_t item_affine(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    if (arg_len != sizeof(int64_t))
        return -EBADMSG;
    return store_i64(out, out_cap, item_of(load_i64(arg)));
}

/* Item 3 fails with -ERANGE, every item ending in 7 with -EDOM. */
static ssize_t item_some_fail(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x == 3)
        return -ERANGE;
    if (x % 10 == 7)
        return -EDOM;
    return store_i64(out, out_cap, item_of(x));
}

/* Item 3 fails with -ETIMEDOUT: its own code, not a deadline of anyone's. */
static ssize_t item_3_times_out(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x == 3)
        return -ETIMEDOUT;
    return store_i64(out, out_cap, item_of(x));
}

static ssize_t item_crash_13(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x == 13)
        die_by(J_SEGV);
    return store_i64(out, out_cap, item_of(x));
}

/* Items from 4 on are held on gate 0 (started first). */
static ssize_t item_held_from_4(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x >= 4) {
        plait_psem_release(fx.started);
        int r = plait_pevent_wait(fx.gate[0], plait_deadline_in(5 * PLAIT_SEC));
        if (r < 0)
            return r;
    }
    return store_i64(out, out_cap, item_of(x));
}

/* Items 0 and 1 say they started; item 0 is held on gate 0, the others on gate 1. */
static ssize_t item_held_0_then_1(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x <= 1)
        plait_psem_release(fx.started);
    int r = plait_pevent_wait(fx.gate[x == 0 ? 0 : 1], plait_deadline_in(5 * PLAIT_SEC));
    return r < 0 ? r : store_i64(out, out_cap, item_of(x));
}

/* Item 0 is held on gate 0. */
static ssize_t item_held_0(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    count_item(x);
    if (x == 0) {
        int r = plait_pevent_wait(fx.gate[0], plait_deadline_in(5 * PLAIT_SEC));
        if (r < 0)
            return r;
    }
    return store_i64(out, out_cap, item_of(x));
}

/* Item 0 is held on gate 0; item 2 fails with -ECANCELED, its own code; item 6 says
 * it has started (its worker has finished items 2..5 by then). */
static ssize_t item_held_0_own_ecanceled_2(const void *arg, size_t arg_len, void *out,
                                           size_t out_cap)
{
    int64_t x = load_i64(arg);
    if (x == 2) {
        count_item(x);
        return -ECANCELED;
    }
    if (x == 6)
        plait_psem_release(fx.started);
    return item_held_0(arg, arg_len, out, out_cap);
}

/* A 12-byte item {a, b, c} -> a 20-byte result {a+b+c, a*b, c, -a, 7}. */
static ssize_t item_odd_sizes(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    if (arg_len != 12 || out_cap != 20)
        return -EBADMSG;
    int32_t in[3], r[5];
    memcpy(in, arg, sizeof in);
    r[0] = in[0] + in[1] + in[2];
    r[1] = in[0] * in[1];
    r[2] = in[2];
    r[3] = -in[0];
    r[4] = 7;
    memcpy(out, r, sizeof r);
    return sizeof r;
}

/* ======================================================================== */
/* Pools, pids, descriptors                                                  */
/* ======================================================================== */

static plait_procpool *make_pool(const plait_procpool_options *o)
{
    plait_procpool *pool = NULL;
    int r = plait_procpool_create(&pool, o);
    CHECK_EQ(r, 0);
    return r == 0 ? pool : NULL;
}

static plait_procpool *make_pool_n(unsigned processes)
{
    plait_procpool_options o = {.processes = processes};
    return make_pool(&o);
}

/* The fixture (fx_init) and a pool made with it; NULL (the fixture undone, the failure
 * counted) when the pool cannot be made. */
static plait_procpool *fx_pool(const plait_procpool_options *o)
{
    fx_init();
    plait_procpool *pool = make_pool(o);
    if (!pool)
        fx_fini();
    return pool;
}

static plait_procpool *fx_pool_n(unsigned processes)
{
    plait_procpool_options o = {.processes = processes};
    return fx_pool(&o);
}

/* Tear down whatever is left: a failed test must not hang the next ones. */
static void close_pool(plait_procpool *pool)
{
    if (!pool)
        return;
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

static bool has_pid(const int *pids, int n, int pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* The process is gone (reaped: not even a zombie is left). */
static bool pid_gone(int pid) { return pid > 0 && kill(pid, 0) == -1 && errno == ESRCH; }

/* A worker retired after max_tasks is reaped on the manager thread once its replacement
 * has been forked (see worker_exited): the replacement's results can come back before
 * that reap, so a test waits for it, with a deadline. */
static bool pid_gone_soon(int pid)
{
    int64_t until = SOON();
    while (!pid_gone(pid) && plait_now() < until)
        plait_sleep(PLAIT_MS);
    return pid_gone(pid);
}

/* The pool's pids: n of them, distinct, alive, none of them ours. */
static int check_pids(plait_procpool *pool, int *pids, unsigned n)
{
    int k = plait_procpool_pids(pool, pids, PLAIT_PROCPOOL_MAX);
    CHECK_EQ(k, (int)n);
    for (int i = 0; i < k; i++) {
        CHECK(pids[i] > 0);
        CHECK(pids[i] != getpid());
        CHECK_EQ(kill(pids[i], 0), 0);
        for (int j = 0; j < i; j++)
            CHECK(pids[i] != pids[j]);
    }
    return k;
}

/* After max_tasks a worker exits once its result is out, and is replaced when it has
 * been reaped: wait (with a deadline) until the pool has n workers again.  One of them
 * may be on its way out, so they are not checked for being alive. */
static int settled_pids(plait_procpool *pool, int *pids, unsigned n)
{
    int64_t until = SOON();
    int k;
    while ((k = plait_procpool_pids(pool, pids, PLAIT_PROCPOOL_MAX)) != (int)n &&
           plait_now() < until)
        plait_sleep(PLAIT_MS);
    CHECK_EQ(k, (int)n);
    for (int i = 0; i < k; i++) {
        CHECK(pids[i] > 0 && pids[i] != getpid());
        for (int j = 0; j < i; j++)
            CHECK(pids[i] != pids[j]);
    }
    return k < 0 ? 0 : k;
}

/* Run a scenario in a child process (plait_process_start) and wait for it with a time
 * budget.  For scenarios that cancel tasks while they may be finishing: a deadlock of
 * the pool there (see procpool_cancel_racing_completion) becomes a failure of that
 * case instead of a hang that stops the whole file.  The child counts its own failures
 * and hands the count back as its result. */
static ssize_t isolated_body(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    void (*scenario)(void);
    if (arg_len != sizeof scenario || out_cap < sizeof(int32_t))
        return -EINVAL;
    memcpy(&scenario, arg, sizeof scenario);
    check_failures = 0;
    scenario();
    int32_t failures = check_failures;
    memcpy(out, &failures, sizeof failures);
    return sizeof failures;
}

/* What an isolated scenario may take (they take a few seconds at most, alone: the one
 * of 210 workers reaped by the kernel 1 s plain, 4 s under ThreadSanitizer, on a host
 * whose fork took 0.8 ms; CI's ThreadSanitizer suite, four programs at once, once took
 * it past 12 s there). */
#define ISOLATED_BUDGET ((CHECK_SLOW_CHILDREN ? 30 : 8) * PLAIT_SEC)

static void run_isolated(void (*scenario)(void), int64_t budget)
{
    plait_task t;
    int r = plait_process_start(&t, isolated_body, &scenario, sizeof scenario, NULL, NULL);
    CHECK_EQ(r, 0);
    if (r < 0)
        return;
    void *res = NULL;
    r = plait_join(t, &res, plait_deadline_in(budget));
    if (r == -ETIMEDOUT) {
        fprintf(stderr, "  HANG: the scenario did not finish in %lld s; killing it\n",
                (long long)(budget / PLAIT_SEC));
        CHECK(!"the scenario finishes (no deadlock)");
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
        return;
    }
    CHECK_EQ(r, 0);
    if (r == 0) {
        plait_bytes *b = res;
        int32_t failures = -1;
        if (b && b->len == sizeof failures)
            memcpy(&failures, b->data, sizeof failures);
        CHECK_EQ(failures, 0); /* what failed is printed above, by the child */
        free(b);
    } else {
        fprintf(stderr, "  the scenario's process: %s\n", plait_strerror(r));
    }
}

/* ======================================================================== */
/* Bad input                                                                  */
/* ======================================================================== */

/* A worker that uses its own pool (the address is the same in every fork) gets -EPERM
 * from every call: its copy of the parent's side is stale, and what it wrote to the
 * shared rings once took the parent's tasks and completions (nested submits timed out,
 * later tasks never completed). */
enum { FOREIGN_CALLS = 6 };

static ssize_t uses_its_own_pool(const void *arg, size_t len, void *out, size_t cap)
{
    plait_procpool *pool;
    if (len != sizeof pool || cap < FOREIGN_CALLS * sizeof(int))
        return -EBADMSG;
    memcpy(&pool, arg, sizeof pool);
    int64_t x = 1, y = 0;
    int pids[4];
    plait_task t;
    plait_procpool_iter *it = NULL;
    int codes[FOREIGN_CALLS] = {
        plait_procpool_submit(pool, &t, job_fn, &x, sizeof x),
        plait_procpool_map(pool, item_affine, &x, sizeof x, 1, &y, sizeof y, NULL, 0, SOON()),
        plait_procpool_imap(&it, pool, item_affine, &x, sizeof x, 1, sizeof y, 0, 0),
        plait_procpool_pids(pool, pids, 4),
        plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, 0),
        plait_procpool_destroy(pool),
    };
    memcpy(out, codes, sizeof codes);
    return sizeof codes;
}

TEST(procpool_used_from_a_worker_is_refused)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    for (int round = 0; round < 3; round++) {
        plait_task t;
        CHECK_EQ(plait_procpool_submit(pool, &t, uses_its_own_pool, &pool, sizeof pool), 0);
        void *res = NULL;
        CHECK_EQ(plait_join(t, &res, SOON()), 0);
        plait_bytes *b = res;
        CHECK(b && b->len == FOREIGN_CALLS * sizeof(int));
        if (b && b->len == FOREIGN_CALLS * sizeof(int)) {
            int codes[FOREIGN_CALLS];
            memcpy(codes, b->data, sizeof codes);
            for (int i = 0; i < FOREIGN_CALLS; i++)
                CHECK_EQ(codes[i], -EPERM);
        }
        free(b);
    }
    /* the parent's pool is whole: a task still runs and comes back */
    plait_task t;
    job j = {.kind = J_VALUE, .id = -1, .value = 7};
    CHECK_EQ(plait_procpool_submit(pool, &t, job_fn, &j, sizeof j), 0);
    void *res = NULL;
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    free(res);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_bad_input)
{
    plait_procpool *pool = NULL;
    plait_procpool_options o = {0};
    CHECK_EQ(plait_procpool_create(NULL, NULL), -EINVAL);
    o.processes = PLAIT_PROCPOOL_MAX + 1;
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL);
    o = (plait_procpool_options){.processes = 1, .task_timeout = -1};
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL);
    o = (plait_procpool_options){.processes = 1, .arg_max = PLAIT_RESULT_MAX + 1};
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL);
    o = (plait_procpool_options){.processes = 1, .result_max = PLAIT_RESULT_MAX + 1};
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL);
    CHECK(pool == NULL);

    /* calls on no pool */
    plait_task t;
    int64_t x = 1, y = 0;
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_submit(NULL, &t, job_fn, &x, sizeof x), -EINVAL);
    CHECK_EQ(plait_procpool_map(NULL, item_affine, &x, sizeof x, 1, &y, sizeof y, NULL, 0,
                                SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_imap(&it, NULL, item_affine, &x, sizeof x, 1, sizeof y, 0, 0),
             -EINVAL);
    CHECK_EQ(plait_procpool_shutdown(NULL, PLAIT_POOL_DRAIN, SOON()), -EINVAL);
    CHECK_EQ(plait_procpool_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_procpool_processes(NULL), 0);
    int pids[4];
    CHECK_EQ(plait_procpool_pids(NULL, pids, 4), -EINVAL);
    CHECK_EQ(plait_procpool_imap_next(NULL, NULL, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_procpool_imap_destroy(NULL), -EINVAL);

    /* the default size: one worker per CPU */
    CHECK_EQ(plait_procpool_create(&pool, NULL), 0);
    if (pool) {
        CHECK_EQ(plait_procpool_processes(pool), plait_cpu_count());
        int all[PLAIT_PROCPOOL_MAX];
        check_pids(pool, all, (unsigned)plait_cpu_count());
        CHECK_EQ(plait_procpool_pids(pool, NULL, 4), -EINVAL);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }

    o = (plait_procpool_options){.processes = 1, .arg_max = 64, .result_max = 64};
    pool = fx_pool(&o);
    if (!pool)
        return;
    CHECK_EQ(plait_procpool_processes(pool), 1);
    CHECK_EQ(plait_procpool_submit(pool, &t, NULL, &x, sizeof x), -EINVAL);
    CHECK_EQ(plait_procpool_submit(pool, &t, job_fn, NULL, 8), -EINVAL);
    CHECK_EQ(plait_procpool_shutdown(pool, 7, SOON()), -EINVAL);

    /* the argument: up to arg_max */
    unsigned char big[65];
    memset(big, 0, sizeof big);
    job j = {.kind = J_VALUE, .id = 1, .value = 9};
    memcpy(big, &j, sizeof j);
    CHECK_EQ(plait_procpool_submit(pool, &t, job_fn, big, 65), -EMSGSIZE);
    CHECK_EQ(plait_procpool_submit(pool, &t, job_fn, big, 64), 0);
    CHECK_EQ(join_i64(t, &y, PROMPTLY()), 0);
    CHECK_EQ(y, value_of(9));
    CHECK_EQ(runs(1), 1); /* the refused one never ran */

    /* a result over result_max fails the task; a task's own code comes back */
    CHECK_EQ(submit_job(pool, &t, J_TOO_BIG, 2, 0), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -EMSGSIZE);
    CHECK_EQ(submit_job(pool, &t, J_FAIL, 3, 0), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -EDOM);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ESRCH); /* joined already */

    /* no argument, an empty result */
    void *res = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, empty_fn, NULL, 0), 0);
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    CHECK(res != NULL);
    if (res)
        CHECK_EQ(((plait_bytes *)res)->len, 0);
    free(res);

    /* map / imap: n == 0, nulls, items too large for the room */
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    char huge[100] = {0}, huge_out[100];
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 0, out, sizeof out[0],
                                NULL, 0, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, NULL, in, sizeof in[0], 4, out, sizeof out[0], NULL,
                                0, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, item_affine, NULL, sizeof in[0], 4, out, sizeof out[0],
                                NULL, 0, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 4, NULL, sizeof out[0],
                                NULL, 0, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 1, huge_out,
                                sizeof huge_out, NULL, 0, SOON()),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_map(pool, item_affine, huge, sizeof huge, 1, out, sizeof out[0],
                                NULL, 0, SOON()),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_imap(NULL, pool, item_affine, in, sizeof in[0], 4, sizeof out[0],
                                 0, 0),
             -EINVAL);
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 0, sizeof out[0],
                                 0, 0),
             -EINVAL);
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 4, sizeof out[0],
                                 0, 0x100),
             -EINVAL);
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 1, sizeof huge_out,
                                 0, 0),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, 0, 4, out, sizeof out[0], NULL, 0,
                                SOON()),
             -EINVAL); /* items of no size */
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, 0, 4, sizeof out[0], 0, 0),
             -EINVAL);
    /* and what does fit works on the same pool */
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 4, out, sizeof out[0],
                                NULL, 0, SOON()),
             0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(out[i], item_of(in[i]));
    /* shut down: a map is refused as a whole, every item told why; so is an imap */
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    int err[4] = {1, 1, 1, 1};
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 4, out, sizeof out[0],
                                err, 0, SOON()),
             -EPIPE);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(err[i], -EPIPE);
        CHECK_EQ(out[i], 0);
    }
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 4, sizeof out[0],
                                 0, 0),
             -EPIPE);

    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* ======================================================================== */
/* Behaviour                                                                  */
/* ======================================================================== */

enum { MANY = 300 };

TEST(procpool_submit_many)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    /* more tasks than slots: most wait in this process first */
    static plait_task t[MANY];
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(submit_job(pool, &t[i], J_VALUE, i, i * 7 - 50), 0);
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = MANY; i-- > 0;) { /* joined from the back */
        int64_t v = -1;
        CHECK_EQ(join_i64(t[i], &v, batch), 0);
        CHECK_EQ(v, value_of(i * 7 - 50));
    }
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(runs(i), 1);

    /* one at a time: each join returns when its task is done, not at its deadline */
    for (int i = 0; i < 200; i++) {
        int64_t start = plait_now(), v = 0;
        CHECK_EQ(submit_job(pool, &t[0], J_VALUE, 2000 + i, i), 0);
        CHECK_EQ(join_i64(t[0], &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
        CHECK_PROMPT(start);
        if (check_failures)
            break;
    }

    /* gathered with wait_all: each result a plait_bytes of its own */
    enum { GATHER = 20 };
    void *results[GATHER];
    int errors[GATHER];
    for (int i = 0; i < GATHER; i++)
        CHECK_EQ(submit_job(pool, &t[i], i == 13 ? J_FAIL : J_VALUE, 500 + i, i), 0);
    CHECK_EQ(plait_wait_all(t, GATHER, results, errors, SOON()), -EDOM);
    for (int i = 0; i < GATHER; i++) {
        CHECK_EQ(errors[i], i == 13 ? -EDOM : 0);
        plait_bytes *b = errors[i] == 0 ? results[i] : NULL;
        if (errors[i] == 0 && b) {
            int64_t v = 0;
            CHECK_EQ(b->len, sizeof v);
            memcpy(&v, b->data, sizeof v);
            CHECK_EQ(v, value_of(i));
        }
        free(b);
    }

    /* detached tasks run too */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(submit_job(pool, NULL, J_VALUE, 1000 + i, 0), 0);

    /* the full default room both ways */
    enum { ROOM = 64 * 1024 };
    static unsigned char arg[ROOM];
    for (int i = 0; i < ROOM; i++)
        arg[i] = (unsigned char)(i * 31 + i / 256);
    void *res = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t[0], reverse_fn, arg, ROOM), 0);
    CHECK_EQ(plait_join(t[0], &res, SOON()), 0);
    plait_bytes *b = res;
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ(b->len, ROOM);
        int bad = 0;
        for (int i = 0; i < ROOM && b->len == ROOM; i++)
            bad += b->data[i] != arg[ROOM - 1 - i];
        CHECK_EQ(bad, 0);
        free(b);
    }
    CHECK_EQ(plait_procpool_submit(pool, &t[0], reverse_fn, arg, ROOM + 1), -EMSGSIZE);

    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(runs(1000 + i), 1); /* drained */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* Shut down with PLAIT_POOL_CANCEL right after joining a task: the joiner frees the
 * task's record, so the pool must not look at it any more (a stale pointer is a
 * use-after-free, which AddressSanitizer reports).  Many short-lived pools; the outcome
 * delivered by a worker (joined from a thread), by the manager thread (a crash), and
 * awaited by a coroutine. */
typedef struct {
    plait_procpool *pool;
    int id;
} after_join_ctx;

static void *join_then_cancel_pool(void *p)
{
    after_join_ctx *c = p;
    plait_task t;
    int64_t v = 0;
    CHECK_EQ(submit_job(c->pool, &t, J_VALUE, c->id, c->id), 0);
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(c->id));
    CHECK_EQ(plait_procpool_shutdown(c->pool, PLAIT_POOL_CANCEL, SOON()), 0);
    return NULL;
}

TEST(procpool_shutdown_cancel_after_join)
{
    fx_init();
    for (int i = 0; i < 90; i++) {
        plait_procpool *pool = make_pool_n(1);
        if (!pool)
            break;
        int how = i % 3;
        if (how == 2) {
            after_join_ctx c = {pool, i};
            check_run(join_then_cancel_pool, &c);
        } else {
            plait_task t;
            int64_t v = 0;
            CHECK_EQ(submit_job(pool, &t, how ? J_SEGV : J_VALUE, i, i), 0);
            CHECK_EQ(join_i64(t, &v, PROMPTLY()), how ? PLAIT_KILLED(SIGSEGV) : 0);
            if (!how)
                CHECK_EQ(v, value_of(i));
            CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
        }
        CHECK_EQ(plait_procpool_destroy(pool), 0);
        CHECK_EQ(runs(i), 1);
    }
    fx_fini();
}

TEST(procpool_runs_in_other_processes)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    CHECK_EQ(plait_procpool_processes(pool), 2);
    int pids[PLAIT_PROCPOOL_MAX];
    int k = check_pids(pool, pids, 2);

    /* two tasks that can only finish when both run at once: two processes */
    plait_task a, b;
    int64_t pa = 0, pb = 0;
    CHECK_EQ(submit_job(pool, &a, J_MEET, 0, 0), 0);
    CHECK_EQ(submit_job(pool, &b, J_MEET, 1, 0), 0);
    CHECK_EQ(join_i64(a, &pa, PROMPTLY()), 0);
    CHECK_EQ(join_i64(b, &pb, PROMPTLY()), 0);
    CHECK(pa != pb);
    CHECK(pa != getpid() && pb != getpid());
    CHECK(has_pid(pids, k, (int)pa));
    CHECK(has_pid(pids, k, (int)pb));

    /* every task runs in one of the pool's workers, none here */
    for (int i = 0; i < 20; i++) {
        plait_task t;
        int64_t p = 0;
        CHECK_EQ(submit_job(pool, &t, J_PID, 10 + i, 0), 0);
        CHECK_EQ(join_i64(t, &p, PROMPTLY()), 0);
        CHECK(p != getpid());
        CHECK(has_pid(pids, k, (int)p));
        CHECK_EQ(pid_of(10 + i), (int)p);
    }
    /* copy-on-write: the worker's memory is its own */
    CHECK_EQ(g_init_value, 0);
    /* destroy drains: detached tasks still queued run first */
    for (int i = 0; i < 6; i++)
        CHECK_EQ(submit_job(pool, NULL, J_SLEEP, 40 + i, 20), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(runs(40 + i), 1);
    for (int i = 0; i < k; i++)
        CHECK(pid_gone(pids[i]));
    fx_fini();
}

/* ---- plait_join from a coroutine ---- */

typedef struct {
    plait_procpool *pool;
    int ticks;
} tick_ctx;

/* Ticks while the main coroutine waits; the pool task needs it to open the gate. */
static void *ticker(void *p)
{
    tick_ctx *c = p;
    while (c->ticks < 20) {
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
        c->ticks++;
    }
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    return NULL;
}

static void *join_in_coroutine_main(void *p)
{
    tick_ctx *c = p;
    plait_task t, tk;
    CHECK_EQ(submit_held(c->pool, &t, J_BLOCK, 0, 0), 0);
    CHECK_EQ(plait_spawn(&tk, ticker, c), 0);
    /* if this join blocked the thread, the ticker would never open the gate and the
     * task would fail after 5 s */
    int64_t v = 0;
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(0));
    CHECK(c->ticks >= 20);
    CHECK_EQ(plait_join(tk, NULL, SOON()), 0);

    /* and a failure reaches the coroutine as a code */
    CHECK_EQ(submit_job(c->pool, &t, J_FAIL, 1, 0), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -EDOM);
    return NULL;
}

TEST(procpool_join_from_coroutine)
{
    fx_init();
    tick_ctx c = {.pool = make_pool_n(2)};
    if (c.pool) {
        check_run(join_in_coroutine_main, &c);
        close_pool(c.pool);
    }
    fx_fini();
}

/* ---- wait_any and as-completed over pool tasks ---- */

static void *completed_main(void *p)
{
    plait_procpool *pool = p;
    plait_task t[GATES];
    for (int i = 0; i < GATES; i++)
        CHECK_EQ(submit_held(pool, &t[i], J_BLOCK, i, i), 0);
    await_started(GATES); /* all four hold a worker each */
    plait_completed *set = NULL;
    CHECK_EQ(plait_completed_create(&set), 0);
    for (int i = 0; i < GATES; i++)
        CHECK_EQ(plait_completed_add(set, t[i]), 0);
    plait_task got;
    CHECK_EQ(plait_completed_next(set, &got, 0), -ETIMEDOUT); /* none finished */
    static const int order[GATES] = {2, 0, 3, 1};
    for (int k = 0; k < GATES; k++) {
        int i = order[k];
        CHECK_EQ(plait_pevent_set(fx.gate[i]), 0);
        CHECK_EQ(plait_completed_next(set, &got, SOON()), 0);
        CHECK(got.future == t[i].future && got.generation == t[i].generation);
        int64_t v = 0;
        CHECK_EQ(join_i64(got, &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
    }
    CHECK_EQ(plait_completed_next(set, &got, SOON()), -EPIPE);
    CHECK_EQ(plait_completed_destroy(set), 0);
    return NULL;
}

TEST(procpool_wait_any_and_completed)
{
    plait_procpool *pool = fx_pool_n(GATES);
    if (!pool)
        return;
    /* wait_any from a thread: the held task cannot be the one */
    plait_task t[2];
    CHECK_EQ(submit_held(pool, &t[0], J_BLOCK, 0, 0), 0);
    CHECK_EQ(submit_job(pool, &t[1], J_VALUE, 1, 5), 0);
    CHECK_EQ(plait_wait_any(t, 2, SOON()), 1);
    int64_t v = 0;
    CHECK_EQ(join_i64(t[1], &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(5));
    await_started(1);
    CHECK_EQ(plait_wait_any(t, 1, 0), -ETIMEDOUT);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    CHECK_EQ(plait_wait_any(t, 1, SOON()), 0);
    CHECK_EQ(join_i64(t[0], &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(0));
    CHECK_EQ(plait_pevent_reset(fx.gate[0]), 0);

    /* as-completed from a coroutine, in the order the gates open */
    check_run(completed_main, pool);
    close_pool(pool);
    fx_fini();
}

/* ======================================================================== */
/* Crash isolation                                                           */
/* ======================================================================== */

static const int crash_kinds[] = {J_SEGV, J_NULL, J_ABORT, J__EXIT3, J_EXIT3, J_SIGKILL};
static const char *const crash_names[] = {"SIGSEGV", "SIGSEGV", "SIGABRT",
                                          "status 3", "status 3", "SIGKILL"};

TEST(procpool_crash_fails_only_that_task)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    /* a bystander holds one worker throughout: the crashes must not touch it */
    plait_task by;
    CHECK_EQ(submit_held(pool, &by, J_BLOCK, 0, 0), 0);
    await_started(1);
    int by_pid = pid_of(0);

    int id = 1;
    for (size_t k = 0; k < sizeof crash_kinds / sizeof crash_kinds[0]; k++, id++) {
        int kind = crash_kinds[k], code = crash_code(kind);
        int before[PLAIT_PROCPOOL_MAX], after[PLAIT_PROCPOOL_MAX];
        check_pids(pool, before, 2);
        plait_task t;
        CHECK_EQ(submit_job(pool, &t, kind, id, 0), 0);
        int64_t start = plait_now();
        int r = join_i64(t, NULL, PROMPTLY());
        if (kind == J_EXIT3 && TSAN_EXIT_OVERRIDDEN(r))
            r = code; /* see TSAN_EXIT_OVERRIDDEN */
        if (r != code)
            fprintf(stderr, "  crash kind %d: %d (%s), expected %d\n", kind, r,
                    plait_strerror(r), code);
        CHECK_EQ(r, code);
        int64_t took = plait_now() - start; /* when the worker dies, not at the deadline */
        if (took >= REPORT_WITHIN)
            fprintf(stderr, "  crash kind %d reported after %lld ms\n", kind,
                    (long long)(took / PLAIT_MS));
        CHECK(took < REPORT_WITHIN);
        CHECK_EQ(runs(id), 1);
        if (PLAIT_KILL_SIGNAL(code) > 0) {
            CHECK_EQ(PLAIT_KILL_SIGNAL(r), PLAIT_KILL_SIGNAL(code));
            CHECK_EQ(PLAIT_EXIT_STATUS(r), -1);
        } else {
            CHECK_EQ(PLAIT_EXIT_STATUS(r), 3);
            CHECK_EQ(PLAIT_KILL_SIGNAL(r), -1);
        }
        CHECK(PLAIT_IS_FAIL(PLAIT_FAIL(r)));
        CHECK(strstr(plait_strerror(r), crash_names[k]) != NULL);
        /* the dead worker is gone and replaced; the bystander's is the same */
        int dead = pid_of(id);
        CHECK(dead != by_pid);
        CHECK(pid_gone(dead));
        int n = check_pids(pool, after, 2);
        CHECK(!has_pid(after, n, dead));
        CHECK(has_pid(after, n, by_pid));
        CHECK(has_pid(before, 2, dead));
        CHECK_EQ(plait_procpool_processes(pool), 2);
        /* and the pool goes on */
        int64_t v = 0;
        CHECK_EQ(submit_job(pool, &t, J_VALUE, 100 + id, id), 0);
        CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(id));
        if (check_failures)
            break; /* one kind shows it; the bystander must not run out of time */
    }

    plait_task t;
    if (check_failures)
        goto out; /* the bystander's wait is not endless */

    /* killed from outside while it runs a task: that task fails */
    CHECK_EQ(submit_held(pool, &t, J_BLOCK, 50, 1), 0);
    await_started(1);
    int victim = pid_of(50);
    CHECK(victim != by_pid);
    int64_t start = plait_now();
    CHECK_EQ(kill(victim, SIGKILL), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), PLAIT_KILLED(SIGKILL));
    CHECK_PROMPT(start);
    CHECK(pid_gone(victim));

    /* killed from outside while idle: no task fails, it is replaced */
    int now[PLAIT_PROCPOOL_MAX];
    int n = check_pids(pool, now, 2);
    int idle = 0;
    for (int i = 0; i < n; i++)
        if (now[i] != by_pid)
            idle = now[i];
    CHECK(idle > 0);
    if (idle > 0) {
        CHECK_EQ(kill(idle, SIGKILL), 0);
        int64_t until = SOON();
        while (plait_now() < until) { /* the replacement is forked when it is reaped */
            n = plait_procpool_pids(pool, now, PLAIT_PROCPOOL_MAX);
            if (n == 2 && !has_pid(now, n, idle))
                break;
            plait_sleep(PLAIT_MS);
        }
        n = check_pids(pool, now, 2);
        CHECK(!has_pid(now, n, idle));
    }
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < 10; i++) {
        int64_t v = 0;
        CHECK_EQ(submit_job(pool, &t, J_VALUE, 200 + i, i), 0);
        CHECK_EQ(join_i64(t, &v, batch), 0);
        CHECK_EQ(v, value_of(i));
    }

out:
    /* the bystander is untouched */
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    int64_t v = 0;
    CHECK_EQ(join_i64(by, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(0));
    CHECK_EQ(runs(0), 1);
    close_pool(pool);
    fx_fini();
}

TEST(procpool_crash_stress)
{
    plait_procpool *pool = fx_pool_n(3);
    if (!pool)
        return;
    static const int kinds[] = {J_SEGV, J_ABORT, J__EXIT3, J_SIGKILL};
    static plait_task t[MANY];
    static int kind_of[MANY];
    for (int i = 0; i < MANY; i++) {
        kind_of[i] = i % 7 == 3 ? kinds[(i / 7) % 4] : J_VALUE;
        CHECK_EQ(submit_job(pool, &t[i], kind_of[i], i, i), 0);
    }
    /* one deadline for all the joins: a pool that misses outcomes fails in seconds */
    int crashed = 0;
    int64_t all_by = plait_deadline_in(5 * PLAIT_SEC);
    for (int i = 0; i < MANY; i++) {
        int64_t v = -1;
        int r = join_i64(t[i], &v, all_by);
        if (is_crash(kind_of[i])) {
            CHECK_EQ(r, crash_code(kind_of[i]));
            crashed++;
        } else {
            CHECK_EQ(r, 0);
            CHECK_EQ(v, value_of(i));
        }
    }
    CHECK_EQ(crashed, (MANY + 3) / 7);
    CHECK(plait_now() < all_by);
    int lost = 0, twice = 0;
    for (int i = 0; i < MANY; i++) {
        lost += runs(i) == 0;
        twice += runs(i) > 1;
    }
    CHECK_EQ(lost, 0);
    CHECK_EQ(twice, 0);
    int pids[PLAIT_PROCPOOL_MAX];
    check_pids(pool, pids, 3);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* ======================================================================== */
/* Per-task timeout, max_tasks                                                */
/* ======================================================================== */

TEST(procpool_task_timeout)
{
    const int64_t limit = 400 * PLAIT_MS;
    plait_procpool_options o = {.processes = 2, .task_timeout = limit};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    /* spinning, and blocked in a wait: both are stopped at the limit */
    for (int kind = J_BLOCK; kind <= J_SPIN; kind++) {
        int before[PLAIT_PROCPOOL_MAX];
        check_pids(pool, before, 2);
        plait_task t;
        int id = kind;
        int64_t start = plait_now();
        CHECK_EQ(submit_held(pool, &t, kind, id, 3), 0);
        CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -ETIMEDOUT);
        CHECK_TOOK(start, limit);
        CHECK_EQ(plait_join(t, NULL, 0), -ESRCH); /* the task's outcome, not the join's */
        CHECK_EQ(plait_wait_any(&t, 1, 0), -ESRCH); /* how plait.h says to tell them apart */
        CHECK_EQ(runs(id), 1);
        CHECK(pid_gone(pid_of(id)));
        int after[PLAIT_PROCPOOL_MAX];
        int n = check_pids(pool, after, 2);
        CHECK(!has_pid(after, n, pid_of(id)));
        CHECK(has_pid(before, 2, pid_of(id)));
        if (check_failures)
            break;
    }
    /* the limit is per task: a worker runs several short ones past it in total */
    enum { SHORT = 8 };
    plait_task t[SHORT];
    for (int i = 0; i < SHORT; i++)
        CHECK_EQ(submit_job(pool, &t[i], J_SLEEP, 10 + i, 100), 0);
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < SHORT; i++) {
        int64_t v = 0;
        CHECK_EQ(join_i64(t[i], &v, batch), 0);
        CHECK_EQ(v, value_of(100));
    }
    close_pool(pool);
    fx_fini();
}

TEST(procpool_max_tasks)
{
    enum { N = 10, PER = 3 };
    plait_procpool_options o = {.processes = 1, .max_tasks = PER};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    /* one worker, tasks in order: a fresh worker every PER tasks */
    plait_task t[40];
    int64_t pid[40];
    for (int i = 0; i < N; i++)
        CHECK_EQ(submit_job(pool, &t[i], J_PID, i, 0), 0);
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < N; i++)
        CHECK_EQ(join_i64(t[i], &pid[i], batch), 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++)
            if ((pid[i] == pid[j]) != (i / PER == j / PER)) {
                fprintf(stderr, "  task %d ran in %lld, task %d in %lld\n", i,
                        (long long)pid[i], j, (long long)pid[j]);
                CHECK(!"tasks grouped by worker as max_tasks says");
            }
    for (int i = 0; i < N; i++)
        CHECK_EQ(runs(i), 1);
    int now[PLAIT_PROCPOOL_MAX];
    int n = check_pids(pool, now, 1);
    CHECK(n == 1 && now[0] == pid[N - 1]); /* the last worker has room left */
    for (int i = 0; i < N - 1; i++)
        if (pid[i] != pid[N - 1])
            CHECK(pid_gone_soon((int)pid[i]));
    CHECK_EQ(plait_procpool_destroy(pool), 0);

    /* two workers: none runs more than PER tasks, and all 40 run once */
    memset(fx.sh, 0, sizeof *fx.sh);
    o.processes = 2;
    pool = make_pool(&o);
    if (!pool) {
        fx_fini();
        return;
    }
    for (int i = 0; i < 40; i++)
        CHECK_EQ(submit_job(pool, &t[i], J_PID, i, 0), 0);
    batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < 40; i++)
        CHECK_EQ(join_i64(t[i], &pid[i], batch), 0);
    int distinct = 0;
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(runs(i), 1);
        int same = 0, first = 1;
        for (int j = 0; j < 40; j++) {
            same += pid[j] == pid[i];
            if (j < i && pid[j] == pid[i])
                first = 0;
        }
        CHECK(same <= PER);
        distinct += first;
    }
    CHECK(distinct >= (40 + PER - 1) / PER);
    settled_pids(pool, now, 2);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* ======================================================================== */
/* Initialisers                                                               */
/* ======================================================================== */

static int init_set(void *arg)
{
    atomic_fetch_add(&fx.sh->inits, 1);
    g_init_value = *(const int *)arg;
    return 0;
}

static int init_fail(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fx.sh->inits, 1);
    return -EDOM;
}

TEST(procpool_init)
{
    static const int magic = 4321;
    plait_procpool_options o = {.processes = 2, .init = init_set, .init_arg = (void *)&magic,
                                .max_tasks = 2};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    CHECK_EQ(atomic_load(&fx.sh->inits), 2); /* create waited for both */
    /* every task sees what its worker's initialiser left, replacements too */
    enum { N = 12 };
    plait_task t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(submit_job(pool, &t[i], J_INIT_VALUE, i, 0), 0);
    int64_t v[N];
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < N; i++) {
        CHECK_EQ(join_i64(t[i], &v[i], batch), 0);
        CHECK_EQ(v[i], magic);
    }
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        bool first = true;
        for (int j = 0; j < i; j++)
            first = first && pid_of(j) != pid_of(i);
        distinct += first;
    }
    CHECK(distinct >= N / 2);                        /* max_tasks 2 */
    CHECK(atomic_load(&fx.sh->inits) >= distinct);   /* once per worker that ran one */
    CHECK_EQ(g_init_value, 0);                       /* not here */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* An initialiser that fails after create has forked its worker: it says it has started
 * and waits for gate 0, which a thread opens once it has. */
static int init_fail_out_of_range(void *arg)
{
    (void)arg;
    return -5000; /* below -4095: no errno (it was the pool's code as it was) */
}

static int init_fail_at_gate(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fx.sh->inits, 1);
    plait_psem_release(fx.started);
    int r = plait_pevent_wait(fx.gate[0], plait_deadline_in(5 * PLAIT_SEC));
    return r < 0 ? r : -EDOM;
}

static void *open_gate_once_started(void *arg)
{
    (void)arg;
    await_started(1);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    return NULL;
}

static int init_kills_itself(void *arg)
{
    (void)arg;
    raise(SIGKILL);
    return 0;
}

/* create returns the initialiser's failure: it waits for every first worker's
 * initialiser (it once looked at once, and nearly always returned 0 with the pool
 * broken), also for one that fails late, and a worker that dies in it fails create
 * with its fate. */
TEST(procpool_init_fails)
{
    fx_init();
    plait_procpool_options o = {.processes = 2, .init = init_fail};
    plait_procpool *pool = NULL;
    CHECK_EQ(plait_procpool_create(&pool, &o), -EDOM);
    CHECK(pool == NULL);
    CHECK(atomic_load(&fx.sh->inits) >= 1);

    o = (plait_procpool_options){.processes = 1, .init = init_fail_at_gate};
    pthread_t th;
    thread_start(&th, open_gate_once_started, NULL);
    CHECK_EQ(plait_procpool_create(&pool, &o), -EDOM);
    thread_join(th);
    CHECK(pool == NULL);

    o = (plait_procpool_options){.processes = 2, .init = init_kills_itself};
    CHECK_EQ(plait_procpool_create(&pool, &o), PLAIT_KILLED(SIGKILL));
    CHECK(pool == NULL);

    o = (plait_procpool_options){.processes = 1, .init = init_fail_out_of_range};
    CHECK_EQ(plait_procpool_create(&pool, &o), -EINVAL); /* as a task's code is */
    CHECK(pool == NULL);
    fx_fini();
}

/* With SIGCHLD ignored the kernel may reap a worker whose initialiser failed before the
 * manager has opened its pidfd: create still reports the initialiser's code (it once
 * answered -ESRCH, after a kill() of a pid that was no longer the worker's). */
static int init_refuses(void *arg)
{
    (void)arg;
    return -EDOM;
}

static void init_fails_reaped_by_kernel_scenario(void)
{
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 200; i++) {
        plait_procpool_options o = {.processes = 1, .init = init_refuses};
        plait_procpool *pool = NULL;
        int r = plait_procpool_create(&pool, &o);
        CHECK(r == 0 || r == -EDOM);
        if (r != 0 && r != -EDOM) {
            fprintf(stderr, "  create: %s\n", plait_strerror(r));
            return;
        }
        if (r == 0)
            CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
}

TEST(procpool_init_fails_reaped_by_kernel)
{
    run_isolated(init_fails_reaped_by_kernel_scenario, ISOLATED_BUDGET);
}

/* A worker that create kills because another one's initialiser failed has died: a lock
 * its initialiser took is released, and the next holder is told (create once killed
 * and reaped those workers without telling the shared objects, and the lock stayed
 * held by the dead pid for good).  One initialiser takes the lock, the other, finding
 * it taken, fails; with SIGCHLD ignored create often sees that failure at once. */
static plait_pmutex *init_lock;

static int init_lock_or_refuse(void *arg)
{
    (void)arg;
    if (plait_pmutex_lock(init_lock, 0) < 0)
        return -EDOM;
    atomic_store(&fx.sh->locked, 1);
    return 0;
}

static void init_fails_lock_holder_killed_scenario(void)
{
    signal(SIGCHLD, SIG_IGN);
    fx_init();
    for (int i = 0; i < 200; i++) {
        atomic_store(&fx.sh->locked, 0);
        CHECK_EQ(plait_pmutex_create(&init_lock), 0);
        plait_procpool_options o = {.processes = 2, .init = init_lock_or_refuse};
        plait_procpool *pool = NULL;
        int r = plait_procpool_create(&pool, &o);
        CHECK(r == 0 || r == -EDOM);
        if (r == 0)
            CHECK_EQ(plait_procpool_destroy(pool), 0);
        /* every worker is gone and was told of: the lock is free, or its holder died */
        int l = plait_pmutex_lock(init_lock, 0);
        CHECK(l == -EOWNERDEAD || (l == 0 && !atomic_load(&fx.sh->locked)));
        if (l != 0 && l != -EOWNERDEAD) {
            fprintf(stderr, "  round %d (create: %s): lock: %s\n", i, plait_strerror(r),
                    plait_strerror(l));
            return;
        }
        CHECK_EQ(plait_pmutex_unlock(init_lock), 0);
        CHECK_EQ(plait_pmutex_destroy(init_lock), 0);
    }
    fx_fini();
}

/* (200 rounds of forks: some 5 s under ASan, 2 s plain; twice it ran past 12 s in a
 * sanitizer suite beside the memory-hungry tests, and 6,000 rounds alone never hung) */
TEST(procpool_init_fails_lock_holder_killed)
{
    run_isolated(init_fails_lock_holder_killed_scenario, 3 * ISOLATED_BUDGET);
}

/* A replacement worker whose initialiser fails breaks the pool with the initialiser's
 * code, also when the kernel reaps it before the manager has opened its pidfd (SIGCHLD
 * ignored): the pool once answered -EAGAIN when no other worker was left, and was not
 * broken at all while one was. */
static int init_calls_that_succeed; /* the first this many initialiser calls succeed */

static int init_succeeds_at_first(void *arg)
{
    (void)arg;
    return atomic_fetch_add(&fx.sh->inits, 1) < init_calls_that_succeed ? 0 : -EDOM;
}

static void replacement_init_fails_scenario(void)
{
    signal(SIGCHLD, SIG_IGN);
    fx_init();
    init_calls_that_succeed = 1;
    for (int i = 0; i < 200; i++) { /* the last worker goes: no other is left */
        atomic_store(&fx.sh->inits, 0);
        plait_procpool_options o = {.processes = 1, .init = init_succeeds_at_first,
                                    .max_tasks = 1};
        plait_procpool *pool = make_pool(&o);
        if (!pool)
            break;
        plait_task t;
        CHECK_EQ(submit_job(pool, &t, J_VALUE, 0, 1), 0);
        CHECK_EQ(join_i64(t, NULL, PROMPTLY()), 0); /* then its worker is replaced */
        int r = submit_job(pool, &t, J_VALUE, 1, 1);
        if (r == 0)
            r = join_i64(t, NULL, PROMPTLY());
        CHECK_EQ(r, -EDOM);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
        if (r != -EDOM) {
            fprintf(stderr, "  round %d, no worker left: %s\n", i, plait_strerror(r));
            break;
        }
    }
    init_calls_that_succeed = 2;
    for (int i = 0; i < 150; i++) { /* one of two workers is killed; the other is held */
        atomic_store(&fx.sh->inits, 0);
        plait_procpool_options o = {.processes = 2, .init = init_succeeds_at_first};
        plait_procpool *pool = make_pool(&o);
        if (!pool)
            break;
        plait_task held, killed, t[7];
        CHECK_EQ(submit_held(pool, &held, J_BLOCK, 0, 0), 0);
        await_started(1);
        CHECK_EQ(submit_job(pool, &killed, J_SIGKILL, 1, 0), 0);
        int k_r = join_i64(killed, NULL, PROMPTLY()); /* how is not known once reaped */
        CHECK(k_r == PLAIT_KILLED(SIGKILL) || k_r == -ECHILD);
        /* its replacement fails; the held worker keeps the slots full, so the last of
         * these waits in this process, and fails when the pool breaks */
        int r[7];
        for (int k = 0; k < 7; k++)
            r[k] = submit_job(pool, &t[k], J_VALUE, 2 + k, 1);
        int last = r[6] == 0 ? join_i64(t[6], NULL, PROMPTLY()) : r[6];
        CHECK_EQ(last, -EDOM);
        CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
        CHECK_EQ(join_i64(held, NULL, PROMPTLY()), 0);
        for (int k = 0; k < 6; k++) { /* in a slot, the held worker runs them */
            CHECK(r[k] == 0 || r[k] == -EDOM);
            int j = r[k] == 0 ? join_i64(t[k], NULL, PROMPTLY()) : 0;
            CHECK(j == 0 || j == -EDOM);
        }
        CHECK_EQ(plait_pevent_reset(fx.gate[0]), 0);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
        if (last != -EDOM) {
            fprintf(stderr, "  round %d, a worker left: %s\n", i, plait_strerror(last));
            break;
        }
    }
    fx_fini();
}

TEST(procpool_replacement_init_fails_reaped_by_kernel)
{
    /* 350 pools, 2.7 s alone here: on a loaded machine, or under ThreadSanitizer, it
     * ran past the usual budget without being stuck (the rounds went on) */
    run_isolated(replacement_init_fails_scenario, 6 * ISOLATED_BUDGET);
}

/* A pool broken by a failing initialiser (a replacement's, as create reports a first
 * worker's) refuses work with its code: the task waiting, every later submit, a map. */
TEST(procpool_broken_pool_refuses_work)
{
    init_calls_that_succeed = 1;
    plait_procpool_options o = {.processes = 1, .init = init_succeeds_at_first,
                                .max_tasks = 1};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 0, 1), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), 0); /* then its worker is replaced */
    int s = submit_job(pool, &t, J_VALUE, 1, 1);
    CHECK(s == 0 || s == -EDOM);
    if (s == 0)
        CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -EDOM);
    /* broken now (the join saw it): every later submit fails with the code */
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 1, 1), -EDOM);
    CHECK_EQ(submit_job(pool, NULL, J_VALUE, 1, 1), -EDOM);
    int64_t in[3] = {1, 2, 3}, out[3] = {9, 9, 9};
    int errs[3] = {0};
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 3, out, sizeof out[0],
                                errs, 0, SOON()),
             -EDOM);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(errs[i], -EDOM);
        CHECK_EQ(out[i], 0);
    }
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(runs(1), 0);
    fx_fini();
}

/* ======================================================================== */
/* Cancellation                                                               */
/* ======================================================================== */

TEST(procpool_cancel_queued)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    plait_task blocker, q[7];
    CHECK_EQ(submit_held(pool, &blocker, J_BLOCK, 0, 0), 0);
    await_started(1);
    /* queued behind it: some in the pool's slots, the rest waiting in this process */
    for (int i = 1; i <= 6; i++)
        CHECK_EQ(submit_job(pool, &q[i], J_VALUE, i, i), 0);
    static const int cancelled[] = {1, 5, 6};
    for (int k = 0; k < 3; k++) {
        int64_t start = plait_now();
        CHECK_EQ(plait_cancel(q[cancelled[k]]), 0);
        CHECK_EQ(join_i64(q[cancelled[k]], NULL, PROMPTLY()), -ECANCELED);
        CHECK_PROMPT(start);
    }
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    int64_t v = 0;
    CHECK_EQ(join_i64(blocker, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(0));
    for (int i = 2; i <= 4; i++) {
        CHECK_EQ(join_i64(q[i], &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
    }
    /* the pool is idle now: a cancelled task would have run by this time */
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 7, 7), 0);
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    for (int i = 0; i <= 7; i++)
        CHECK_EQ(runs(i), (i == 1 || i == 5 || i == 6) ? 0 : 1);
    /* a finished task is unaffected by cancel */
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 8, 8), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(8));
    /* the slots of the withdrawn tasks work again */
    plait_task more[20];
    for (int i = 0; i < 20; i++)
        CHECK_EQ(submit_job(pool, &more[i], J_VALUE, 20 + i, i), 0);
    int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(join_i64(more[i], &v, batch), 0);
        CHECK_EQ(v, value_of(i));
    }
    close_pool(pool);
    fx_fini();
}

TEST(procpool_cancel_running)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    for (int round = 0; round < 2; round++) { /* a task held in a wait, then a spinner */
        int kind = round ? J_SPIN : J_BLOCK, id = round;
        plait_task t;
        CHECK_EQ(submit_held(pool, &t, kind, id, 0), 0);
        await_started(1);
        int victim = pid_of(id);
        int64_t start = plait_now();
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(join_i64(t, NULL, PROMPTLY()), -ECANCELED);
        CHECK_PROMPT(start);
        CHECK(pid_gone(victim));
        int now[PLAIT_PROCPOOL_MAX];
        int n = check_pids(pool, now, 2);
        CHECK(!has_pid(now, n, victim));
        if (check_failures)
            break;
    }
    int64_t v = 0;
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 9, 9), 0);
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(9));
    close_pool(pool);
    fx_fini();
}

/* Cancel a task of a busy worker as it runs, over and over.  One worker goes through a
 * stream of brief tasks (a few microseconds each); once task V has started (its run
 * count says so) the parent cancels it.  By then the worker may be finishing V or
 * already on a later task: V either completes with its result or reports -ECANCELED,
 * and runs once; every other task, which nobody cancelled, must complete normally and
 * run once.  (A kill that reaches the worker after it has moved on fails a bystander;
 * one that lands while the worker holds the pool's shared lock must not wedge the
 * pool.) */
static void cancel_racing_scenario(void)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    enum { STREAM = 8, V = 2 };
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int cancelled = 0, completed = 0, rounds = 0;
    int64_t until = plait_deadline_in(2 * PLAIT_SEC);
    for (int r = 0; plait_now() < until && !check_failures; r++, rounds++) {
        int64_t round_start = plait_now();
        int base = (r * STREAM) % (IDS - STREAM);
        plait_task t[STREAM];
        int64_t spins[STREAM];
        for (int i = 0; i < STREAM; i++) {
            atomic_store(&fx.sh->runs[base + i], 0);
            spins[i] = rnd(&seed) % 3000;
            CHECK_EQ(submit_job(pool, &t[i], J_BRIEF, base + i, spins[i]), 0);
        }
        int64_t give_up = SOON();
        while (runs(base + V) == 0 && plait_now() < give_up) /* V has started */
            ;
        CHECK_EQ(plait_cancel(t[V]), 0);
        for (int i = 0; i < STREAM; i++) {
            int64_t x = 0;
            int rc = join_i64(t[i], &x, PROMPTLY());
            if (i == V && rc != 0) {
                CHECK_EQ(rc, -ECANCELED);
                cancelled++;
                CHECK_EQ(runs(base + i), 1);
                continue;
            }
            completed += i == V;
            if (rc != 0)
                fprintf(stderr, "  round %d: task %d, not cancelled, failed: %d (%s)\n", r, i,
                        rc, plait_strerror(rc));
            CHECK_EQ(rc, 0);
            if (rc == 0)
                CHECK_EQ(x, value_of(spins[i]));
            CHECK_EQ(runs(base + i), 1);
        }
        /* the outcomes came when the tasks ended: a cancel's as soon as it is reported
         * (CHECK_PROMPT's second was short of it once in a CI run's TSan stage) */
        CHECK(plait_now() - round_start < REPORT_WITHIN);
    }
    if (check_failures)
        fprintf(stderr, "  %d rounds: the cancelled task completed %d times, was cancelled %d\n",
                rounds, completed, cancelled);
    close_pool(pool);
    fx_fini();
}

TEST(procpool_cancel_racing_completion)
{
    run_isolated(cancel_racing_scenario, ISOLATED_BUDGET);
}

/* ======================================================================== */
/* Shutdown                                                                   */
/* ======================================================================== */

TEST(procpool_shutdown_drain)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    int pids[PLAIT_PROCPOOL_MAX];
    int k = check_pids(pool, pids, 2);
    plait_task held[2], q[10];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(submit_held(pool, &held[i], J_BLOCK, i, 0), 0);
    await_started(2);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(submit_job(pool, &q[i], J_VALUE, 10 + i, i), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, 0), -ETIMEDOUT);
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 30, 0), -EPIPE);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    /* everything queued ran, once */
    int64_t v = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(join_i64(held[i], &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
    }
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(join_i64(q[i], &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
        CHECK_EQ(runs(10 + i), 1);
    }
    CHECK_EQ(runs(30), 0);
    /* the workers are gone */
    int now[PLAIT_PROCPOOL_MAX];
    CHECK_EQ(plait_procpool_pids(pool, now, PLAIT_PROCPOOL_MAX), 0);
    for (int i = 0; i < k; i++)
        CHECK(pid_gone(pids[i]));
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0); /* again: done */
    CHECK_EQ(submit_job(pool, NULL, J_VALUE, 31, 0), -EPIPE);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* Submits from three threads race a shutdown: each is refused (-EPIPE) or accepted,
 * and every accepted task runs (drain) or reports its cancellation (cancel) — none is
 * lost, none waits for ever.  The arguments are large (32 KiB, copied into the slots),
 * so the submits keep the pool busy while the shutdown comes. */
enum { RACE_SUBMITTERS = 3, RACE_MAX = 200, RACE_ARG = 32 * 1024 };

typedef struct race_submitter {
    plait_procpool *pool;
    int id;
    atomic_int *started;
    int accepted;
    plait_task tasks[RACE_MAX];
    unsigned char arg[RACE_ARG];
} race_submitter;

static void *race_submit(void *arg)
{
    race_submitter *rs = arg;
    for (int i = 0; i < RACE_MAX; i++) {
        memset(rs->arg, rs->id * RACE_MAX + i, RACE_ARG);
        rs->arg[0] = (unsigned char)i; /* reversed: the result's last byte */
        int r = plait_procpool_submit(rs->pool, &rs->tasks[rs->accepted], reverse_fn,
                                      rs->arg, RACE_ARG);
        if (r == -EPIPE)
            break;
        CHECK_EQ(r, 0);
        if (r != 0)
            break;
        rs->accepted++;
        if (i == 4)
            atomic_fetch_add(rs->started, 1);
    }
    if (rs->accepted < 5)
        atomic_fetch_add(rs->started, 1); /* refused early: do not hold the shutdown */
    return NULL;
}

static void submits_race_a_shutdown(int how)
{
    plait_procpool *pool = NULL;
    plait_procpool_options o = {.processes = 2};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    atomic_int started = 0;
    static race_submitter rs[RACE_SUBMITTERS];
    pthread_t th[RACE_SUBMITTERS];
    for (int k = 0; k < RACE_SUBMITTERS; k++) {
        rs[k] = (race_submitter){.pool = pool, .id = k, .started = &started};
        thread_start(&th[k], race_submit, &rs[k]);
    }
    while (atomic_load(&started) < RACE_SUBMITTERS)
        sched_yield();
    CHECK_EQ(plait_procpool_shutdown(pool, how, SOON()), 0);
    int ran = 0, cancelled = 0, accepted = 0;
    for (int k = 0; k < RACE_SUBMITTERS; k++) {
        thread_join(th[k]);
        accepted += rs[k].accepted;
        for (int i = 0; i < rs[k].accepted; i++) {
            void *res = NULL;
            int r = plait_join(rs[k].tasks[i], &res, SOON());
            plait_bytes *b = res;
            if (r == 0 && b && b->len == RACE_ARG) {
                ran++;
                CHECK_EQ(b->data[0], (unsigned char)(k * RACE_MAX + i));
            } else if (how == PLAIT_POOL_CANCEL && r == -ECANCELED) {
                cancelled++;
            } else {
                CHECK_EQ(r, 0);
            }
            free(b);
        }
    }
    CHECK(accepted >= 5 * RACE_SUBMITTERS); /* the shutdown came after five each */
    CHECK_EQ(ran + cancelled, accepted);
    if (how == PLAIT_POOL_DRAIN)
        CHECK_EQ(ran, accepted);
    CHECK_EQ(plait_procpool_submit(pool, NULL, reverse_fn, "ab", 2), -EPIPE);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_submits_racing_a_drain_are_refused_or_run)
{
    submits_race_a_shutdown(PLAIT_POOL_DRAIN);
}

TEST(procpool_submits_racing_a_cancel_are_refused_or_settled)
{
    submits_race_a_shutdown(PLAIT_POOL_CANCEL);
}

TEST(procpool_shutdown_cancel)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    plait_task held[2], q[8];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(submit_held(pool, &held[i], J_BLOCK, i, 0), 0);
    await_started(2);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(submit_job(pool, &q[i], J_VALUE, 10 + i, i), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_PROMPT(start); /* the held tasks were killed, not waited for */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(join_i64(held[i], NULL, PROMPTLY()), -ECANCELED);
        CHECK(pid_gone(pid_of(i)));
    }
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(join_i64(q[i], NULL, PROMPTLY()), -ECANCELED);
        CHECK_EQ(runs(10 + i), 0);
    }
    int now[PLAIT_PROCPOOL_MAX];
    CHECK_EQ(plait_procpool_pids(pool, now, PLAIT_PROCPOOL_MAX), 0);
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 30, 0), -EPIPE);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

TEST(procpool_shutdown_timeout_then_cancel)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    plait_task spin, q;
    CHECK_EQ(submit_held(pool, &spin, J_SPIN, 0, 0), 0);
    await_started(1);
    CHECK_EQ(submit_job(pool, &q, J_VALUE, 1, 1), 0);
    const int64_t wait = 300 * PLAIT_MS;
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(wait)),
             -ETIMEDOUT);
    CHECK_TOOK(start, wait);
    CHECK_EQ(submit_job(pool, NULL, J_VALUE, 2, 2), -EPIPE);
    CHECK_EQ(plait_wait_any(&spin, 1, 0), -ETIMEDOUT); /* still running */
    start = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(join_i64(spin, NULL, PROMPTLY()), -ECANCELED);
    CHECK_EQ(join_i64(q, NULL, PROMPTLY()), -ECANCELED);
    CHECK(pid_gone(pid_of(0)));
    CHECK_EQ(runs(1), 0);
    CHECK_EQ(runs(2), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* ======================================================================== */
/* map                                                                        */
/* ======================================================================== */

enum { BIG_N = 100000 };
static int64_t big_in[BIG_N], big_out[BIG_N];
static int big_err[BIG_N];

TEST(procpool_map_results)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    static const size_t chunks[] = {0, 1, 1000, (size_t)1 << 40};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        size_t n = chunks[c] == 1 ? 500 : BIG_N; /* a task per item: fewer of them */
        for (size_t i = 0; i < n; i++) {
            big_in[i] = (int64_t)(i * 2654435761u % 1000003) - 500000;
            big_out[i] = -7;
            big_err[i] = 1;
        }
        CHECK_EQ(plait_procpool_map(pool, item_affine, big_in, sizeof big_in[0], n, big_out,
                                    sizeof big_out[0], big_err, chunks[c], SOON()),
                 0);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += big_out[i] != item_of(big_in[i]) || big_err[i] != 0;
        if (bad)
            fprintf(stderr, "  chunk %zu: %zu items wrong\n", chunks[c], bad);
        CHECK_EQ(bad, 0);
    }
    /* errors may be NULL; odd item and result sizes */
    enum { ODD = 777 };
    static int32_t odd_in[ODD][3], odd_out[ODD][5];
    for (int i = 0; i < ODD; i++) {
        odd_in[i][0] = i;
        odd_in[i][1] = i % 13;
        odd_in[i][2] = -i;
    }
    CHECK_EQ(plait_procpool_map(pool, item_odd_sizes, odd_in, 12, ODD, odd_out, 20, NULL, 5,
                                SOON()),
             0);
    int bad = 0;
    for (int i = 0; i < ODD; i++)
        bad += odd_out[i][0] != i % 13 || odd_out[i][1] != i * (i % 13) ||
               odd_out[i][2] != -i || odd_out[i][3] != -i || odd_out[i][4] != 7;
    CHECK_EQ(bad, 0);

    /* a result size near the pool's room: one item per chunk still fits */
    plait_procpool_options o = {.processes = 2, .result_max = 256};
    plait_procpool *small = make_pool(&o);
    if (small) {
        static unsigned char wide[10][128], wider[10][300];
        int64_t in[10];
        for (int i = 0; i < 10; i++)
            in[i] = i;
        CHECK_EQ(plait_procpool_map(small, item_affine, in, sizeof in[0], 10, wide,
                                    sizeof wide[0], NULL, 0, SOON()),
                 0);
        for (int i = 0; i < 10; i++)
            CHECK_EQ(load_i64(wide[i]), item_of(i));
        /* larger than the room: not even one item fits */
        CHECK_EQ(plait_procpool_map(small, item_affine, in, sizeof in[0], 10, wider,
                                    sizeof wider[0], NULL, 0, SOON()),
                 -EMSGSIZE);
        CHECK_EQ(plait_procpool_destroy(small), 0);
    }
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

TEST(procpool_map_item_errors)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 1000 };
    static const size_t chunks[] = {0, 1, 64};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        memset(fx.sh->runs, 0, sizeof fx.sh->runs);
        for (int i = 0; i < N; i++) {
            big_in[i] = i;
            big_out[i] = -7;
            big_err[i] = 1;
        }
        /* the first failure in index order, though later ones (-EDOM) are more common
         * and may finish first */
        CHECK_EQ(plait_procpool_map(pool, item_some_fail, big_in, sizeof big_in[0], N, big_out,
                                    sizeof big_out[0], big_err, chunks[c], SOON()),
                 -ERANGE);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            int want = i == 3 ? -ERANGE : i % 10 == 7 ? -EDOM : 0;
            bad += big_err[i] != want;
            bad += big_out[i] != (want ? 0 : item_of(i)); /* a failed item's is zeroed */
            bad += runs(i) != 1;
        }
        if (bad)
            fprintf(stderr, "  chunk %zu: %d wrong\n", chunks[c], bad);
        CHECK_EQ(bad, 0);
    }
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* An item, or a chunk, may fail with -ETIMEDOUT of its own (a function's code; a worker
 * killed at the pool's task_timeout) long before the map's deadline: it is that item's
 * failure, and the map goes on with the others.  (The map once took the chunk's
 * -ETIMEDOUT from plait_join for its own deadline: it cancelled the chunks not done,
 * their items got -ETIMEDOUT and never ran.) */
static void check_map_one_timed_out(plait_procpool *pool, plait_proc_fn fn, int failing,
                                    size_t chunk)
{
    enum { N = 40 };
    int64_t in[N], out[N];
    int err[N];
    memset(fx.sh->runs, 0, sizeof fx.sh->runs);
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -7;
        err[i] = 1;
    }
    CHECK_EQ(plait_procpool_map(pool, fn, in, sizeof in[0], N, out, sizeof out[0], err, chunk,
                                SOON()),
             -ETIMEDOUT);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int want = i == failing ? -ETIMEDOUT : 0;
        bad += err[i] != want;
        bad += out[i] != (want ? 0 : item_of(i));
        bad += runs(i) != 1;
    }
    if (bad)
        fprintf(stderr, "  chunk %zu: %d wrong (item 39: %d)\n", chunk, bad, err[N - 1]);
    CHECK_EQ(bad, 0);
}

TEST(procpool_map_item_failing_with_etimedout)
{
    fx_init();
    plait_procpool *pool = make_pool_n(2);
    if (pool) {
        check_map_one_timed_out(pool, item_3_times_out, 3, 1);
        check_map_one_timed_out(pool, item_3_times_out, 3, 0);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    /* item 0 is held until the pool's task_timeout kills its worker */
    plait_procpool_options o = {.processes = 2, .task_timeout = 300 * PLAIT_MS};
    pool = make_pool(&o);
    if (pool) {
        check_map_one_timed_out(pool, item_held_0, 0, 1);
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    fx_fini();
}

TEST(procpool_map_crash_fails_its_chunk)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 40, CHUNK = 4 };
    int64_t in[N], out[N];
    int err[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -7;
        err[i] = 1;
    }
    CHECK_EQ(plait_procpool_map(pool, item_crash_13, in, sizeof in[0], N, out, sizeof out[0],
                                err, CHUNK, SOON()),
             PLAIT_KILLED(SIGSEGV));
    for (int i = 0; i < N; i++) {
        bool mate = i / CHUNK == 13 / CHUNK; /* items 12..15 */
        CHECK_EQ(err[i], mate ? PLAIT_KILLED(SIGSEGV) : 0);
        CHECK_EQ(out[i], mate ? 0 : item_of(i));
        /* in order within the chunk: 12 and 13 ran, 14 and 15 never; nothing again */
        CHECK_EQ(runs(i), mate && i > 13 ? 0 : 1);
    }
    int pids[PLAIT_PROCPOOL_MAX];
    check_pids(pool, pids, 2);
    /* the pool goes on */
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], N, out, sizeof out[0],
                                err, CHUNK, SOON()),
             0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(out[i], item_of(i));
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

static void map_deadline_scenario(void)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 8 };
    int64_t in[N], out[N];
    int err[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -7;
        err[i] = 1;
    }
    /* items 0..3 are quick; 4 and 5 hold both workers until they are killed, 6 and 7
     * never start */
    int before[PLAIT_PROCPOOL_MAX];
    check_pids(pool, before, 2);
    /* long enough for items 0..3 to run and 4 and 5 to start on a stalled machine */
    const int64_t wait = (CHECK_SLOW_CHILDREN ? 2 : 1) * PLAIT_SEC;
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_map(pool, item_held_from_4, in, sizeof in[0], N, out,
                                sizeof out[0], err, 1, plait_deadline_in(wait)),
             -ETIMEDOUT);
    CHECK_TOOK(start, wait);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(err[i], 0);
        CHECK_EQ(out[i], item_of(i));
    }
    for (int i = 4; i < N; i++) {
        if (err[i] != -ETIMEDOUT)
            fprintf(stderr, "  item %d: %d (%s), the header says the caller's -ETIMEDOUT\n", i,
                    err[i], plait_strerror(err[i]));
        CHECK_EQ(err[i], -ETIMEDOUT);
        CHECK_EQ(out[i], 0);
    }
    CHECK_EQ(runs(6), 0);
    CHECK_EQ(runs(7), 0);
    /* items 4 and 5 had started; they were killed with their workers, which were
     * replaced */
    CHECK_EQ(plait_psem_value(fx.started), 2);
    CHECK_EQ(runs(4), 1);
    CHECK_EQ(runs(5), 1);
    int after[PLAIT_PROCPOOL_MAX];
    int n = check_pids(pool, after, 2);
    for (int i = 0; i < 2; i++)
        CHECK(!has_pid(after, n, before[i]));
    /* nothing is written after the call returned: the pool is idle, the arrays stay */
    int64_t out_copy[N];
    int err_copy[N];
    memcpy(out_copy, out, sizeof out);
    memcpy(err_copy, err, sizeof err);
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 100, 1), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), 0);
    CHECK(memcmp(out_copy, out, sizeof out) == 0);
    CHECK(memcmp(err_copy, err, sizeof err) == 0);
    CHECK_EQ(runs(6), 0);
    CHECK_EQ(runs(7), 0);

    /* a deadline already past: nothing waits */
    start = plait_now();
    CHECK_EQ(plait_procpool_map(pool, item_held_from_4, in, sizeof in[0], N, out,
                                sizeof out[0], err, 1, 0),
             -ETIMEDOUT);
    CHECK_PROMPT(start);
    close_pool(pool);
    fx_fini();
}

/* A map whose caller is cancelled keeps what its finished chunks say, a chunk that
 * failed with -ECANCELED of its own included: only the chunks it cancelled get the
 * caller's code.  (The map once took every -ECANCELED it joined after stopping for a
 * chunk it had cancelled: the finished chunk of items 2 and 3 was overwritten, item 3's
 * result zeroed and its code -ECANCELED.)  Chunks of two items: items 0 and 1 are held in
 * one worker; the other runs the rest in order, and once it runs item 6 the caller is
 * cancelled. */
typedef struct {
    plait_procpool *pool;
    int64_t in[8], out[8];
    int err[8];
} cancelled_map;

static void *map_to_be_cancelled(void *arg)
{
    cancelled_map *c = arg;
    CHECK_EQ(plait_procpool_map(c->pool, item_held_0_own_ecanceled_2, c->in, sizeof c->in[0], 8,
                                c->out, sizeof c->out[0], c->err, 2, SOON()),
             -ECANCELED);
    return NULL;
}

static void map_cancelled_keeps_own_ecanceled_scenario(void)
{
    fx_init();
    cancelled_map c = {.pool = make_pool_n(2)};
    if (!c.pool) {
        fx_fini();
        return;
    }
    for (int i = 0; i < 8; i++) {
        c.in[i] = i;
        c.out[i] = -7;
        c.err[i] = 1;
    }
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, map_to_be_cancelled, &c, NULL), 0);
    CHECK_EQ(plait_psem_acquire(fx.started, SOON()), 0); /* item 6 runs */
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    for (int i = 0; i < 2; i++) { /* cancelled by the map: the caller's code */
        CHECK_EQ(c.err[i], -ECANCELED);
        CHECK_EQ(c.out[i], 0);
    }
    CHECK_EQ(c.err[2], -ECANCELED); /* its own */
    CHECK_EQ(c.out[2], 0);
    for (int i = 3; i < 6; i++) { /* finished before the cancellation */
        CHECK_EQ(c.err[i], 0);
        CHECK_EQ(c.out[i], item_of(i));
    }
    CHECK_EQ(runs(1), 0);
    close_pool(c.pool);
    fx_fini();
}

TEST(procpool_map_cancelled_keeps_own_ecanceled)
{
    run_isolated(map_cancelled_keeps_own_ecanceled_scenario, ISOLATED_BUDGET);
}

/* A map whose pool is shut down (draining) by another thread meanwhile stops
 * submitting, yet still keeps its deadline for the chunks it has out.  (It once
 * waited for them without one: -EPIPE after every held chunk had run out its 5 s.)
 * Two workers: once items 0 and 1 run (both out, so item 1 is out at the deadline
 * whatever the map submitted by then) the pool is shut down and item 0 let go, so the
 * map's next submit is refused; items 1.. are held past the deadline.  (With one
 * worker, the shutdown could come between the map's submits of items 0 and 1, under
 * load: item 1 refused, nothing held, -EPIPE at once.) */
static void *shut_down_once_items_0_and_1_started(void *arg)
{
    await_started(2);
    /* no wait for the drain: -ETIMEDOUT, as work is still out */
    CHECK_EQ(plait_procpool_shutdown(arg, PLAIT_POOL_DRAIN, 0), -ETIMEDOUT);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    return NULL;
}

static void map_deadline_after_refusal_scenario(void)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 12 };
    int64_t in[N], out[N];
    int err[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    plait_task shutter;
    CHECK_EQ(plait_thread_start(&shutter, shut_down_once_items_0_and_1_started, pool, NULL), 0);
    const int64_t wait = 1500 * PLAIT_MS;
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_map(pool, item_held_0_then_1, in, sizeof in[0], N, out,
                                sizeof out[0], err, 1, plait_deadline_in(wait)),
             -ETIMEDOUT);
    CHECK_TOOK(start, wait);
    CHECK_EQ(plait_join(shutter, NULL, SOON()), 0);
    CHECK_EQ(err[0], 0);
    CHECK_EQ(out[0], item_of(0));
    CHECK_EQ(err[1], -ETIMEDOUT); /* out when the deadline came */
    CHECK_EQ(err[N - 1], -EPIPE); /* past the window of 8: never submitted, refused */
    CHECK_EQ(plait_pevent_set(fx.gate[1]), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

TEST(procpool_map_keeps_its_deadline_after_a_refused_submit)
{
    run_isolated(map_deadline_after_refusal_scenario, ISOLATED_BUDGET);
}

/* A deadline of 0 cancels chunks of quick items as they finish: isolated. */
TEST(procpool_map_deadline) { run_isolated(map_deadline_scenario, ISOLATED_BUDGET); }

/* ======================================================================== */
/* imap                                                                       */
/* ======================================================================== */

TEST(procpool_imap_ordered)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        big_in[i] = i;
    plait_procpool_iter *it = NULL;
    /* a chunk that does not divide n; failures come through per item */
    CHECK_EQ(plait_procpool_imap(&it, pool, item_some_fail, big_in, sizeof big_in[0], N,
                                 sizeof(int64_t), 7, 0),
             0);
    int out_of_order = 0, wrong = 0;
    for (int i = 0; i < N && it; i++) {
        size_t index = SIZE_MAX;
        int64_t v = -7;
        int e = 1;
        int r = plait_procpool_imap_next(it, &index, &v, &e, SOON());
        CHECK_EQ(r, 0);
        if (r < 0)
            break;
        out_of_order += index != (size_t)i;
        int want = i == 3 ? -ERANGE : i % 10 == 7 ? -EDOM : 0;
        wrong += e != want || v != (want ? 0 : item_of(i));
    }
    CHECK_EQ(out_of_order, 0);
    CHECK_EQ(wrong, 0);
    if (it) {
        CHECK_EQ(plait_procpool_imap_next(it, NULL, NULL, NULL, SOON()), -EPIPE);
        CHECK_EQ(plait_procpool_imap_next(it, NULL, NULL, NULL, SOON()), -EPIPE);
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(runs(i), 1);

    /* the first item held: ordered, nothing comes until it is done */
    memset(fx.sh->runs, 0, sizeof fx.sh->runs);
    it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_held_0, big_in, sizeof big_in[0], 16,
                                 sizeof(int64_t), 1, 0),
             0);
    if (it) {
        size_t index = SIZE_MAX;
        int64_t v = 0;
        int e = 1;
        CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, plait_deadline_in(100 * PLAIT_MS)),
                 -ETIMEDOUT);
        CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
        for (size_t i = 0; i < 16; i++) { /* -ETIMEDOUT: call again to go on */
            CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), 0);
            CHECK_EQ(index, i);
            CHECK_EQ(e, 0);
            CHECK_EQ(v, item_of((int64_t)i));
        }
        CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), -EPIPE);
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    }
    for (int i = 0; i < 16; i++)
        CHECK_EQ(runs(i), 1);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

TEST(procpool_imap_unordered)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 1000 };
    static int seen[N];
    for (int i = 0; i < N; i++)
        big_in[i] = i;
    memset(seen, 0, sizeof seen);
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, big_in, sizeof big_in[0], N,
                                 sizeof(int64_t), 0, PLAIT_IMAP_UNORDERED),
             0);
    int wrong = 0;
    for (int i = 0; i < N && it; i++) {
        size_t index = SIZE_MAX;
        int64_t v = -7;
        int e = 1;
        int r = plait_procpool_imap_next(it, &index, &v, &e, SOON());
        CHECK_EQ(r, 0);
        if (r < 0)
            break;
        CHECK(index < N);
        if (index >= N)
            continue;
        seen[index]++;
        wrong += e != 0 || v != item_of((int64_t)index);
    }
    CHECK_EQ(wrong, 0);
    int twice = 0, missing = 0;
    for (int i = 0; i < N; i++) {
        twice += seen[i] > 1;
        missing += seen[i] == 0;
    }
    CHECK_EQ(twice, 0);
    CHECK_EQ(missing, 0);
    if (it) {
        CHECK_EQ(plait_procpool_imap_next(it, NULL, NULL, NULL, SOON()), -EPIPE);
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    }

    /* the first item held: unordered, the others come back first */
    enum { M = 16 };
    memset(seen, 0, sizeof seen);
    it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_held_0, big_in, sizeof big_in[0], M,
                                 sizeof(int64_t), 1, PLAIT_IMAP_UNORDERED),
             0);
    if (it) {
        size_t index = SIZE_MAX;
        int64_t v = 0;
        int e = 1;
        for (int i = 0; i < M - 1; i++) {
            CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), 0);
            CHECK(index >= 1 && index < M);
            if (index < M)
                seen[index]++;
            CHECK_EQ(e, 0);
            CHECK_EQ(v, item_of((int64_t)index));
        }
        CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, plait_deadline_in(50 * PLAIT_MS)),
                 -ETIMEDOUT);
        CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
        CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), 0);
        CHECK_EQ(index, 0);
        CHECK_EQ(v, item_of(0));
        seen[0]++;
        CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), -EPIPE);
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
        for (int i = 0; i < M; i++)
            CHECK_EQ(seen[i], 1);
    }
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* A chunk that fails with -ETIMEDOUT of its own (its worker killed at the pool's
 * task_timeout) is handed back like any failed chunk: its items with that code, well
 * before the caller's deadline.  (The iterator once took the join's -ETIMEDOUT for its
 * own deadline: it returned -ETIMEDOUT, and the next call joined the consumed handle and
 * handed the items back with -ESRCH.) */
static void check_imap_held_0_timed_out(plait_procpool *pool, int flags)
{
    enum { M = 8 };
    int seen[M] = {0};
    memset(fx.sh->runs, 0, sizeof fx.sh->runs);
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_held_0, big_in, sizeof big_in[0], M,
                                 sizeof(int64_t), 1, flags),
             0);
    if (!it)
        return;
    for (size_t i = 0; i < M; i++) {
        size_t index = SIZE_MAX;
        int64_t v = -7;
        int e = 1;
        int r = plait_procpool_imap_next(it, &index, &v, &e, SOON());
        CHECK_EQ(r, 0);
        if (r < 0 || index >= M)
            break;
        if (!(flags & PLAIT_IMAP_UNORDERED))
            CHECK_EQ(index, i);
        seen[index]++;
        CHECK_EQ(e, index == 0 ? -ETIMEDOUT : 0);
        CHECK_EQ(v, index == 0 ? 0 : item_of((int64_t)index));
    }
    CHECK_EQ(plait_procpool_imap_next(it, NULL, NULL, NULL, SOON()), -EPIPE);
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    for (int i = 0; i < M; i++) {
        CHECK_EQ(seen[i], 1);
        CHECK_EQ(runs(i), 1);
    }
}

TEST(procpool_imap_chunk_timing_out)
{
    /* item 0 is held until the pool's task_timeout kills its worker */
    plait_procpool_options o = {.processes = 2, .task_timeout = 300 * PLAIT_MS};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    for (int i = 0; i < 8; i++)
        big_in[i] = i;
    check_imap_held_0_timed_out(pool, 0);
    check_imap_held_0_timed_out(pool, PLAIT_IMAP_UNORDERED);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

static void imap_destroy_early_scenario(void)
{
    plait_procpool *pool = fx_pool_n(2);
    if (!pool)
        return;
    enum { N = 10000 };
    for (int i = 0; i < N; i++)
        big_in[i] = i;
    /* after a few items, ordered and unordered; and before any */
    for (int flags = 0; flags <= PLAIT_IMAP_UNORDERED; flags++) {
        plait_procpool_iter *it = NULL;
        CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, big_in, sizeof big_in[0], N,
                                     sizeof(int64_t), 10, flags),
                 0);
        for (int i = 0; i < 5 && it; i++) {
            size_t index;
            int64_t v = 0;
            int e = 1;
            CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), 0);
            CHECK_EQ(e, 0);
            CHECK_EQ(v, item_of((int64_t)index));
        }
        if (it)
            CHECK_EQ(plait_procpool_imap_destroy(it), 0);
        it = NULL;
        CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, big_in, sizeof big_in[0], N,
                                     sizeof(int64_t), 10, flags),
                 0);
        if (it)
            CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    }

    /* with items held in both workers: destroying kills them, promptly */
    int before[PLAIT_PROCPOOL_MAX];
    check_pids(pool, before, 2);
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_held_from_4, big_in, sizeof big_in[0], 8,
                                 sizeof(int64_t), 1, 0),
             0);
    if (it) {
        for (size_t i = 0; i < 4; i++) {
            size_t index = SIZE_MAX;
            CHECK_EQ(plait_procpool_imap_next(it, &index, NULL, NULL, SOON()), 0);
            CHECK_EQ(index, i);
        }
        await_started(2);
        int64_t start = plait_now();
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
        CHECK_PROMPT(start);
    }
    /* the pool is usable, with fresh workers in place of the killed ones */
    int after[PLAIT_PROCPOOL_MAX];
    int n = check_pids(pool, after, 2);
    for (int i = 0; i < 2; i++)
        CHECK(!has_pid(after, n, before[i]));
    plait_task t;
    int64_t v = 0;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 100, 4), 0);
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
    CHECK_EQ(v, value_of(4));
    int64_t out[64];
    CHECK_EQ(plait_procpool_map(pool, item_affine, big_in, sizeof big_in[0], 64, out,
                                sizeof out[0], NULL, 0, SOON()),
             0);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(out[i], item_of(i));
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* Destroying early cancels chunks of quick items as they finish: isolated. */
TEST(procpool_imap_destroy_early)
{
    run_isolated(imap_destroy_early_scenario, ISOLATED_BUDGET);
}

/* A pool with an iterator over it is not destroyed under it: -EBUSY until the
 * iterator is (the iterator once went on using the freed pool). */
TEST(procpool_destroy_refused_while_an_iterator_lives)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    int64_t in[4] = {0, 1, 2, 3};
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 4, sizeof(int64_t),
                                 1, 0),
             0);
    CHECK_EQ(plait_procpool_destroy(pool), -EBUSY);
    size_t index;
    int64_t v = 0;
    int e = 1;
    CHECK_EQ(plait_procpool_imap_next(it, &index, &v, &e, SOON()), 0); /* it goes on */
    CHECK_EQ(e, 0);
    CHECK_EQ(v, item_of((int64_t)index));
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* ======================================================================== */
/* Nothing left behind                                                       */
/* ======================================================================== */
/* Found in review                                                            */
/* ======================================================================== */

static ssize_t slow_square(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)cap;
    struct timespec ms = {0, 5 * PLAIT_MS};
    nanosleep(&ms, NULL);
    int64_t v;
    memcpy(&v, arg, sizeof v);
    v *= v;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

/* A lazy map whose pool is shut down under it hands back every item once, the rest
 * failed, then -EPIPE (it once handed back "all done" early, then bogus items for
 * ever). */
TEST(procpool_imap_after_shutdown)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    enum { N = 40 };
    int64_t args[N];
    for (int i = 0; i < N; i++)
        args[i] = i;
    plait_procpool_iter *it;
    CHECK_EQ(plait_procpool_imap(&it, pool, slow_square, args, sizeof args[0], N,
                                 sizeof args[0], 1, 0), 0);
    size_t idx;
    int64_t out;
    int err;
    CHECK_EQ(plait_procpool_imap_next(it, &idx, &out, &err, SOON()), 0);
    CHECK_EQ(idx, 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    bool seen[N] = {true};
    int items = 1, r;
    while ((r = plait_procpool_imap_next(it, &idx, &out, &err, SOON())) == 0 && items <= N) {
        CHECK(idx < N && !seen[idx]);
        if (idx < N)
            seen[idx] = true;
        CHECK(err == 0 ? out == (int64_t)(idx * idx) : err < 0);
        items++;
    }
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(items, N);
    CHECK_EQ(plait_procpool_imap_next(it, &idx, &out, &err, SOON()), -EPIPE);
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

static ssize_t sleep_ms(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    int64_t ms;
    memcpy(&ms, arg, sizeof ms);
    struct timespec ts = {ms / 1000, (ms % 1000) * PLAIT_MS};
    nanosleep(&ts, NULL);
    return 0;
}

typedef struct withdrawn_join {
    plait_task task;
    atomic_int tid;
    int result;
    int64_t took;
} withdrawn_join;

static void *join_after_publishing(void *arg)
{
    withdrawn_join *wj = arg;
    atomic_store(&wj->tid, gettid_());
    int64_t start = plait_now();
    wj->result = plait_join(wj->task, NULL, SOON());
    wj->took = plait_now() - start;
    return NULL;
}

/* A plain thread joining a queued task that is then cancelled returns at once (it
 * slept on the pool's completion word, which a withdrawal did not touch, until some
 * other task finished). */
TEST(procpool_join_of_withdrawn_task_is_prompt)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    int64_t long_ms = 3000, short_ms = 1;
    plait_task busy;
    withdrawn_join wj = {.result = 1};
    atomic_init(&wj.tid, 0);
    CHECK_EQ(plait_procpool_submit(pool, &busy, sleep_ms, &long_ms, sizeof long_ms), 0);
    CHECK_EQ(plait_procpool_submit(pool, &wj.task, sleep_ms, &short_ms, sizeof short_ms), 0);
    pthread_t th;
    thread_start(&th, join_after_publishing, &wj);
    wait_asleep(&wj.tid);
    CHECK_EQ(plait_cancel(wj.task), 0);
    thread_join(th);
    CHECK_EQ(wj.result, -ECANCELED);
    CHECK(wj.took < PLAIT_SEC); /* not when the busy task ends */
    CHECK_EQ(plait_cancel(busy), 0);
    CHECK_EQ(plait_join(busy, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* Sizes that wrap when multiplied or added are refused with the documented codes (a
 * result size near SIZE_MAX once divided by zero or copied a "negative" length; n near
 * SIZE_MAX divided by zero, or with chunk 2 ran nothing and returned 0). */
TEST(procpool_map_sizes_that_wrap)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    int64_t in[1] = {0}, out[1];
    plait_procpool_iter *it = NULL;
    /* not even one item fits the room */
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 1, out, SIZE_MAX, NULL,
                                0, SOON()),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 1, out, SIZE_MAX - 3,
                                NULL, 0, SOON()),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], 1, SIZE_MAX - 3,
                                 0, 0),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, SIZE_MAX, 1, out, sizeof out[0], NULL,
                                0, SOON()),
             -EMSGSIZE);
    /* arrays larger than any object */
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], SIZE_MAX, NULL, 0, NULL,
                                2, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], SIZE_MAX, NULL, 0, NULL,
                                0, SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, 1, SIZE_MAX / 2, out, 4, NULL, 0,
                                SOON()),
             -EINVAL);
    CHECK_EQ(plait_procpool_imap(&it, pool, item_affine, in, sizeof in[0], SIZE_MAX,
                                 sizeof out[0], 0, 0),
             -EINVAL);
    /* and the pool still maps what is sound */
    CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 1, out, sizeof out[0],
                                NULL, 0, SOON()),
             0);
    CHECK_EQ(out[0], item_of(0));
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* Fills its whole result room with 0xAA. */
static ssize_t item_fills_room(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg;
    (void)arg_len;
    memset(out, 0xAA, out_cap);
    return (ssize_t)out_cap;
}

/* Writes three bytes of its room and says so. */
static ssize_t item_writes_three(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg;
    (void)arg_len;
    (void)out_cap;
    memcpy(out, "abc", 3);
    return 3;
}

/* A map's item whose function returns fewer bytes than result_size has the rest of its
 * result zeroed: not what an earlier task left in the worker's room (the first map's
 * 0xAA, which these items would otherwise hand back as theirs). */
TEST(procpool_map_short_results_are_zero_filled)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    enum { N = 8, SIZE = 16 };
    int64_t in[N] = {0};
    unsigned char out[N][SIZE];
    CHECK_EQ(plait_procpool_map(pool, item_fills_room, in, sizeof in[0], N, out, SIZE, NULL, 0,
                                SOON()),
             0);
    CHECK_EQ(out[N - 1][SIZE - 1], 0xAA);
    memset(out, 0x55, sizeof out);
    CHECK_EQ(plait_procpool_map(pool, item_writes_three, in, sizeof in[0], N, out, SIZE, NULL,
                                0, SOON()),
             0);
    unsigned char want[SIZE] = "abc";
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += memcmp(out[i], want, SIZE) != 0;
    CHECK_EQ(bad, 0);
    /* the lazy map hands back the same */
    CHECK_EQ(plait_procpool_map(pool, item_fills_room, in, sizeof in[0], N, out, SIZE, NULL, 0,
                                SOON()),
             0);
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_writes_three, in, sizeof in[0], N, SIZE, 0, 0),
             0);
    size_t index, handed = 0;
    int error;
    unsigned char one[SIZE];
    bad = 0;
    while (it && plait_procpool_imap_next(it, &index, one, &error, SOON()) == 0) {
        handed++;
        bad += error != 0 || memcmp(one, want, SIZE) != 0;
    }
    CHECK_EQ(handed, N);
    CHECK_EQ(bad, 0);
    if (it)
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* A result that needs the alignment of its type: a long double, and where out lay. */
typedef struct wide_result {
    long double value;
    uint64_t out_mod_16;
} wide_result;

static ssize_t item_wide_result(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len;
    if (out_cap < sizeof(wide_result))
        return -EMSGSIZE;
    wide_result *r = out; /* as aligned as an element of an array of them */
    r->value = (long double)load_i64(arg);
    r->out_mod_16 = (uintptr_t)out % 16;
    return sizeof *r;
}

static ssize_t item_u64_out_mod_8(const void *arg, size_t arg_len, void *out,
                                  size_t out_cap)
{
    (void)arg;
    (void)arg_len;
    if (out_cap < sizeof(uint64_t))
        return -EMSGSIZE;
    *(uint64_t *)out = (uintptr_t)out % 8;
    return sizeof(uint64_t);
}

/* Each item's out is aligned as the same element of an array of results would be,
 * also in a chunk of an odd count (the results once followed 4-byte codes directly, so
 * every out was 4 past an 8-byte boundary). */
TEST(procpool_map_results_aligned)
{
    plait_procpool *pool = make_pool_n(1);
    if (!pool)
        return;
    enum { N = 7, CHUNK = 3 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i + 1;
    wide_result wide[N];
    uint64_t mod8[N];
    int errs[N];
    CHECK_EQ(plait_procpool_map(pool, item_wide_result, in, sizeof in[0], N, wide,
                                sizeof wide[0], errs, CHUNK, SOON()),
             0);
    CHECK_EQ(plait_procpool_map(pool, item_u64_out_mod_8, in, sizeof in[0], N, mod8,
                                sizeof mod8[0], errs, CHUNK, SOON()),
             0);
    for (int i = 0; i < N; i++) {
        CHECK(wide[i].value == (long double)in[i]);
        CHECK_EQ(wide[i].out_mod_16, 0);
        CHECK_EQ(mod8[i], 0);
    }
    plait_procpool_iter *it;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_wide_result, in, sizeof in[0], N,
                                 sizeof(wide_result), CHUNK, 0),
             0);
    size_t idx;
    wide_result w;
    int err, got = 0;
    while (plait_procpool_imap_next(it, &idx, &w, &err, SOON()) == 0 && got <= N) {
        CHECK_EQ(err, 0);
        CHECK(idx < N && w.value == (long double)in[idx]);
        CHECK_EQ(w.out_mod_16, 0);
        got++;
    }
    CHECK_EQ(got, N);
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* Item 0 says it has started, waits for gate 0, then fails with -EDOM. */
static ssize_t item_0_fails_after_gate(const void *arg, size_t arg_len, void *out,
                                       size_t out_cap)
{
    (void)arg_len;
    int64_t x = load_i64(arg);
    if (x == 0) {
        plait_psem_release(fx.started);
        int r = plait_pevent_wait(fx.gate[0], plait_deadline_in(5 * PLAIT_SEC));
        return r < 0 ? r : -EDOM;
    }
    return store_i64(out, out_cap, item_of(x));
}

/* Once item 0 runs (holding the only worker, so the map has chunks left to submit),
 * shut the pool down, then let item 0 fail. */
static void *shut_down_under_map(void *arg)
{
    plait_procpool *pool = arg;
    CHECK_EQ(plait_psem_acquire(fx.started, SOON()), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(0)),
             -ETIMEDOUT);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    return NULL;
}

/* A map whose pool is shut down under it returns its first failure in index order: an
 * item's own code, not the -EPIPE of the chunks it could no longer submit (which came
 * after it). */
TEST(procpool_map_shut_down_under_it_returns_first_failure)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    enum { N = 8 }; /* more than the map's window of 4 chunks of 1 */
    int64_t in[N], out[N];
    int errs[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    pthread_t th;
    thread_start(&th, shut_down_under_map, pool);
    CHECK_EQ(plait_procpool_map(pool, item_0_fails_after_gate, in, sizeof in[0], N, out,
                                sizeof out[0], errs, 1, SOON()),
             -EDOM);
    thread_join(th);
    CHECK_EQ(errs[0], -EDOM);
    CHECK_EQ(errs[N - 1], -EPIPE); /* never submitted */
    for (int i = 1; i < N; i++)
        CHECK(errs[i] == -EPIPE || (errs[i] == 0 && out[i] == item_of(i)));
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* Out of descriptors, create says so: -EMFILE (it once answered -ENOMEM). */
TEST(procpool_create_out_of_descriptors)
{
    struct rlimit old, none;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = old;
    none.rlim_cur = 0; /* no new descriptor at all; the open ones stay usable */
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
    plait_procpool *pool = NULL;
    plait_procpool_options o = {.processes = 1};
    int r = plait_procpool_create(&pool, &o);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    CHECK_EQ(r, -EMFILE);
    CHECK(pool == NULL);
}

static plait_queue *sent_queue; /* made before the pool: its workers share it */

static ssize_t send_the_argument(const void *arg, size_t len, void *out, size_t cap)
{
    (void)out;
    (void)cap;
    return plait_queue_send(sent_queue, arg, len, plait_deadline_in(5 * PLAIT_SEC));
}

/* Replacing a worker (here after each task: max_tasks 1) never leaves a queue without
 * a sender for a moment: its receiver does not hear that every sender has died while
 * the pool lives.  (The old worker's death was told to the queue before its
 * replacement was forked, and a receiver waiting then got -EPIPE, in most rounds.) */
static void replacing_a_worker_keeps_a_queue_sender(void)
{
    enum { N = 40 };
    CHECK_EQ(plait_queue_create(&sent_queue, sizeof(int), N), 0);
    int v;
    CHECK_EQ(plait_queue_recv(sent_queue, &v, sizeof v, 0), -ETIMEDOUT); /* a receiver */
    plait_procpool_options o = {.processes = 1, .max_tasks = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool) {
        CHECK_EQ(plait_queue_destroy(sent_queue), 0);
        return;
    }
    plait_task t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(plait_procpool_submit(pool, &t[i], send_the_argument, &i, sizeof i), 0);
    int got = 0;
    ssize_t r = 0;
    while (got < N && (r = plait_queue_recv(sent_queue, &v, sizeof v, SOON())) == sizeof v)
        CHECK_EQ(v, got++);
    CHECK_EQ(got, N);
    if (got < N)
        fprintf(stderr, "  message %d of %d: %s\n", got, N, plait_strerror((int)r));
    int64_t batch = SOON();
    for (int i = 0; i < N; i++) {
        void *res = NULL;
        CHECK_EQ(plait_join(t[i], &res, batch), 0);
        free(res);
    }
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    /* with the pool gone, its senders are: now the queue says so */
    CHECK_EQ(plait_queue_recv(sent_queue, &v, sizeof v, SOON()), -EPIPE);
    CHECK_EQ(plait_queue_destroy(sent_queue), 0);
}

TEST(procpool_replacing_a_worker_keeps_a_queue_sender)
{
    replacing_a_worker_keeps_a_queue_sender();
}

/* The same where the kernel reaps the workers (SIGCHLD ignored): the pool then found
 * its worker reaped already, and told the queue of its death at once, before it forked
 * the replacement (a receiver got -EPIPE in 298 rounds of 300, process audit). */
TEST(procpool_replacing_a_worker_reaped_by_the_kernel_keeps_a_queue_sender)
{
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ignore, &old);
    replacing_a_worker_keeps_a_queue_sender();
    sigaction(SIGCHLD, &old, NULL);
}

/* ======================================================================== */

/* ---- tasks that fork, tasks that close the pool's descriptor ---- */

/* A task forks and the fork's child returns from the task as well (the parent waits for
 * it, then returns).  That child once went on as a worker of its own: it put the slot on
 * the done ring a second time (the task completed with the child's result, and its slot
 * was freed twice: a later task sharing it never reported and shutdown timed out), then
 * took tasks with no one watching it. */
static ssize_t forks_and_both_return(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    if (cap < sizeof(int64_t))
        return -EINVAL;
    pid_t child = arg ? _Fork() : fork(); /* _Fork: no fork handlers run */
    if (child < 0)
        return -errno;
    int64_t v = child == 0 ? 666 : 1;
    if (child > 0)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

static void task_forks_scenario(void)
{
    fx_init();
    plait_procpool *pool = make_pool_n(1);
    for (int raw = 0; pool && raw < 2; raw++) {
        plait_task t;
        char one = 1;
        CHECK_EQ(plait_procpool_submit(pool, &t, forks_and_both_return, raw ? &one : NULL,
                                       raw ? 1 : 0), 0);
        int64_t v = 0;
        CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0);
        CHECK_EQ(v, 1); /* the worker's, not its child's */
        enum { MORE = 12 }; /* more than the slots */
        plait_task more[MORE];
        for (int i = 0; i < MORE; i++)
            CHECK_EQ(submit_job(pool, &more[i], J_VALUE, i, i), 0);
        for (int i = 0; i < MORE; i++) {
            v = 0;
            CHECK_EQ(join_i64(more[i], &v, PROMPTLY()), 0);
            CHECK_EQ(v, value_of(i));
            CHECK_EQ(runs(i), 1 + raw);
        }
    }
    if (pool)
        close_pool(pool);
    fx_fini();
}

TEST(procpool_task_whose_fork_returns_too)
{
    run_isolated(task_forks_scenario, ISOLATED_BUDGET);
}

/* The same of a map's item: its child ends as the item returns in it.  It went on
 * through the rest of its chunk (those items ran twice, one run of each in the child)
 * and wrote their outcomes into the slot's room, which its parent had handed on to the
 * next task by then (session 51's audit).  The worker here waits for the child before
 * it goes on, so the child has done whatever it did first. */
enum { FORKING_MAP_ITEMS = 6 };

static ssize_t item_forking_at_the_first(const void *arg, size_t len, void *out, size_t cap)
{
    int32_t id;
    if (len != sizeof id || cap < sizeof id)
        return -EINVAL;
    memcpy(&id, arg, sizeof id);
    atomic_fetch_add(&fx.sh->runs[id], 1);
    if (id == 0) {
        pid_t child = fork();
        if (child < 0)
            return -errno;
        if (child > 0)
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
            }
    }
    int32_t v = 2 * id;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

static void map_item_forks_scenario(void)
{
    fx_init();
    plait_procpool *pool = make_pool_n(1);
    if (pool) {
        int32_t in[FORKING_MAP_ITEMS], out[FORKING_MAP_ITEMS];
        int errors[FORKING_MAP_ITEMS];
        for (int i = 0; i < FORKING_MAP_ITEMS; i++)
            in[i] = i;
        CHECK_EQ(plait_procpool_map(pool, item_forking_at_the_first, in, sizeof in[0],
                                    FORKING_MAP_ITEMS, out, sizeof out[0], errors,
                                    FORKING_MAP_ITEMS, PROMPTLY()),
                 0);
        for (int i = 0; i < FORKING_MAP_ITEMS; i++) {
            CHECK_EQ(errors[i], 0);
            CHECK_EQ(out[i], 2 * i);
            CHECK_EQ(runs(i), 1);
        }
        close_pool(pool);
    }
    fx_fini();
}

TEST(procpool_map_item_whose_fork_returns_too)
{
    run_isolated(map_item_forks_scenario, ISOLATED_BUDGET);
}

/* The same of an initialiser: its fork's child returned from it too and went on as a
 * worker nobody watched, taking tasks it never reported (their joins waited for ever),
 * with no timer and no parent-death signal, outliving the program (session 50's audit).
 * Here the initialiser waits for its child, which then never ended: the pool's one
 * worker never started.  Now the child ends as the initialiser returns in it. */
static int init_forks_and_both_return(void *arg)
{
    (void)arg;
    pid_t child = fork();
    if (child < 0)
        return -errno;
    if (child > 0)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
    return 0;
}

static void init_forks_scenario(void)
{
    plait_procpool_options o = {.processes = 1, .init = init_forks_and_both_return};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    enum { MORE = 12 }; /* more than the slots */
    plait_task more[MORE];
    for (int i = 0; i < MORE; i++)
        CHECK_EQ(submit_job(pool, &more[i], J_VALUE, i, i), 0);
    for (int i = 0; i < MORE; i++) {
        int64_t v = 0;
        CHECK_EQ(join_i64(more[i], &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(i));
        CHECK_EQ(runs(i), 1);
    }
    close_pool(pool);
    fx_fini();
}

TEST(procpool_initialiser_whose_fork_returns_too)
{
    run_isolated(init_forks_scenario, ISOLATED_BUDGET);
}

/* A replacement whose initialiser never returns: shutdown times out on it, as plait.h
 * says, and PLAIT_POOL_CANCEL, the escalation it names, ends it (it killed only workers
 * running a task: the cancel timed out too, and destroy waited for ever; session 50's
 * audit). */
static int init_stuck_after_the_first(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&fx.sh->inits, 1) == 0)
        return 0;
    plait_psem_release(fx.started);
    for (;;)
        pause();
}

static void init_stuck_scenario(void)
{
    plait_procpool_options o = {.processes = 1, .init = init_stuck_after_the_first};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_SIGKILL, 0, 0), 0);
    CHECK_EQ(join_i64(t, NULL, PROMPTLY()), PLAIT_KILLED(SIGKILL));
    await_started(1); /* the replacement is in its initialiser */
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(100 * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, PROMPTLY()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

TEST(procpool_cancel_ends_an_initialiser_that_never_returns)
{
    run_isolated(init_stuck_scenario, ISOLATED_BUDGET);
}

/* A task (or an initialiser) that closes every descriptor above the standard streams
 * closes the pool's notification descriptor in its worker: that worker's completions
 * never reached the manager, so a coroutine's join (which does not collect itself)
 * waited for ever, and create waited for ever for such an initialiser. */
static ssize_t closes_descriptors(const void *arg, size_t len, void *out, size_t cap)
{
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    return job_fn(arg, len, out, cap);
}

/* The same, then opening files that it keeps: one takes the pool's descriptor's number
 * (the counter's 8 bytes went into it, and the manager never heard).  What it opens:
 * /dev/null, or descriptors of the pool's own kind (eventfds) or of its anonymous inode
 * (epoll instances): the descriptor's inode alone took these for the pool's (failed
 * first: a join waited for ever, and create for such an initialiser). */
typedef enum { REOPEN_NONE, REOPEN_DEV_NULL, REOPEN_EVENTFD, REOPEN_EPOLL } reopening;

static void close_and_reopen(reopening what)
{
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    for (int i = 0; i < 16; i++)
        switch (what) {
        case REOPEN_NONE:
            return;
        case REOPEN_DEV_NULL:
            open("/dev/null", O_WRONLY);
            break;
        case REOPEN_EVENTFD:
            eventfd(0, 0);
            break;
        case REOPEN_EPOLL:
            epoll_create1(0);
            break;
        }
}

static ssize_t closes_and_reopens(const void *arg, size_t len, void *out, size_t cap)
{
    close_and_reopen(REOPEN_DEV_NULL);
    return job_fn(arg, len, out, cap);
}

static ssize_t closes_and_makes_eventfds(const void *arg, size_t len, void *out, size_t cap)
{
    close_and_reopen(REOPEN_EVENTFD);
    return job_fn(arg, len, out, cap);
}

static void *join_after_closing_main(void *p)
{
    plait_procpool *pool = p;
    for (int i = 0; i < 6; i++) {
        job j = {.kind = J_VALUE, .id = i, .value = i};
        plait_task t;
        plait_proc_fn fn = i == 0   ? closes_descriptors
                           : i == 2 ? closes_and_reopens
                           : i == 4 ? closes_and_makes_eventfds
                                    : job_fn;
        CHECK_EQ(plait_procpool_submit(pool, &t, fn, &j, sizeof j), 0);
        int64_t v = 0;
        int r = join_i64(t, &v, PROMPTLY());
        CHECK_EQ(r, 0);
        CHECK_EQ(v, value_of(i));
        if (r == -ETIMEDOUT) {
            plait_cancel(t);
            plait_detach(t);
            return NULL;
        }
    }
    return NULL;
}

static int init_closes_descriptors(void *arg)
{
    close_and_reopen(*(const reopening *)arg);
    return 0;
}

/* Closes every descriptor once its gate (fx.gate[0]) is set, then J_VALUE's result. */
static ssize_t closes_descriptors_at_the_gate(const void *arg, size_t len, void *out,
                                              size_t cap)
{
    if (plait_pevent_wait(fx.gate[0], plait_deadline_in(5 * PLAIT_SEC)) < 0)
        return -ETIMEDOUT;
    return closes_descriptors(arg, len, out, cap);
}

static plait_task closing; /* that task, joined by a thread: */
static atomic_int closing_joiner_tid;
static int closing_joined;
static int64_t closing_result;

static void *join_closing_asleep(void *arg)
{
    (void)arg;
    atomic_store(&closing_joiner_tid, gettid_());
    closing_joined = join_i64(closing, &closing_result, SOON());
    return NULL;
}

static int64_t worker_pid(plait_procpool *pool)
{
    plait_task t;
    int64_t pid = -1;
    CHECK_EQ(submit_job(pool, &t, J_PID, 0, 0), 0);
    CHECK_EQ(join_i64(t, &pid, SOON()), 0);
    return pid;
}

/* The same task, finishing while a thread is asleep in its join: its worker is
 * replaced too.  (Failed first: a worker that woke a joiner did not look at the
 * descriptor, and ran on, the same process serving the next task, until a completion
 * found no joiner asleep; an audit of the process API found it.) */
static void closed_descriptor_with_a_joiner_asleep_scenario(void)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    int64_t before = worker_pid(pool);
    job j = {.kind = J_VALUE, .id = 1, .value = 5};
    CHECK_EQ(plait_procpool_submit(pool, &closing, closes_descriptors_at_the_gate, &j, sizeof j),
             0);
    atomic_store(&closing_joiner_tid, 0);
    closing_joined = 1;
    pthread_t joiner;
    thread_start(&joiner, join_closing_asleep, NULL);
    wait_asleep(&closing_joiner_tid);
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    CHECK_EQ(pthread_join(joiner, NULL), 0);
    CHECK_EQ(closing_joined, 0);
    CHECK_EQ(closing_result, value_of(5));
    int64_t after = worker_pid(pool);
    CHECK(after > 0 && after != before);
    close_pool(pool);
    fx_fini();
}

TEST(procpool_task_closing_the_pools_descriptor_with_a_joiner_asleep)
{
    run_isolated(closed_descriptor_with_a_joiner_asleep_scenario, ISOLATED_BUDGET);
}

static void closed_descriptors_scenario(void)
{
    fx_init();
    plait_procpool *pool = make_pool_n(1);
    if (pool) {
        check_run(join_after_closing_main, pool);
        close_pool(pool);
    }
    /* (reopening: create waited for ever) */
    static const reopening ways[] = {REOPEN_NONE, REOPEN_DEV_NULL, REOPEN_EVENTFD, REOPEN_EPOLL};
    for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
        plait_procpool_options o = {.processes = 2, .init = init_closes_descriptors,
                                    .init_arg = (void *)&ways[i]};
        pool = NULL;
        CHECK_EQ(plait_procpool_create(&pool, &o), -EBADF);
    }
    fx_fini();
}

TEST(procpool_task_closing_the_pools_descriptor)
{
    run_isolated(closed_descriptors_scenario, ISOLATED_BUDGET);
}


/* Where SIGCHLD is ignored the kernel reaps the workers.  A replacement that ended
 * before the manager had opened its pidfd passed for a fork that failed: one that took
 * a crashing task at once left that task unreported (and shutdown timed out), and one
 * that ended after its max_tasks made the pool smaller, and at its last worker broke it
 * with -EAGAIN. */
static void kernel_reaps_workers_scenario(void)
{
    signal(SIGCHLD, SIG_IGN);
    fx_init();
    enum { QUICK = 150, CRASHES = 60 };
    plait_procpool_options o = {.processes = 1, .max_tasks = 1};
    plait_procpool *pool = make_pool(&o);
    if (pool) {
        static plait_task t[QUICK];
        int refused = 0;
        for (int i = 0; i < QUICK; i++)
            CHECK_EQ(submit_job(pool, &t[i], J_VALUE, i, i), 0);
        for (int i = 0; i < QUICK; i++) {
            int64_t v = 0;
            int r = join_i64(t[i], &v, PROMPTLY());
            refused += r != 0;
            CHECK(r == 0 ? v == value_of(i) : r != -ETIMEDOUT);
        }
        CHECK_EQ(refused, 0);
        close_pool(pool);
    }
    pool = make_pool_n(1);
    if (pool) {
        static plait_task t[CRASHES];
        for (int i = 0; i < CRASHES; i++)
            CHECK_EQ(submit_job(pool, &t[i], J_SIGKILL, i, 0), 0);
        int unreported = 0;
        for (int i = 0; i < CRASHES; i++) {
            int r = join_i64(t[i], NULL, PROMPTLY());
            unreported += r == -ETIMEDOUT;
            if (r != -ETIMEDOUT) /* how is not known once reaped */
                CHECK(r == PLAIT_KILLED(SIGKILL) || r == -ECHILD);
        }
        CHECK_EQ(unreported, 0);
        plait_task t1;
        int64_t v = 0;
        CHECK_EQ(submit_job(pool, &t1, J_VALUE, CRASHES, 3), 0);
        CHECK_EQ(join_i64(t1, &v, PROMPTLY()), 0);
        CHECK_EQ(v, value_of(3));
        close_pool(pool);
    }
    /* a task its task_timeout ends reports -ETIMEDOUT though its worker's fate is not
     * known (it said -ECHILD: session 50's audit) */
    o = (plait_procpool_options){.processes = 1, .task_timeout = 300 * PLAIT_MS};
    pool = make_pool(&o);
    if (pool) {
        plait_task t1;
        CHECK_EQ(submit_held(pool, &t1, J_BLOCK, 0, 3), 0);
        CHECK_EQ(join_i64(t1, NULL, PROMPTLY()), -ETIMEDOUT);
        close_pool(pool);
    }
    fx_fini();
}

TEST(procpool_workers_reaped_by_the_kernel)
{
    run_isolated(kernel_reaps_workers_scenario, ISOLATED_BUDGET);
}


TEST(procpool_nothing_leaked)
{
    /* the manager thread and its descriptors are made on first use: use them first */
    plait_procpool *warm = make_pool_n(1);
    if (warm)
        CHECK_EQ(plait_procpool_destroy(warm), 0);
    int fds = count_fds();
    CHECK(fds > 0);

    fx_init();
    int seen[64], nseen = 0;
    plait_procpool_options o = {.processes = 3, .max_tasks = 4};
    plait_procpool *pool = make_pool(&o);
    if (pool) {
        nseen += check_pids(pool, seen, 3);
        plait_task t[12];
        for (int i = 0; i < 12; i++)
            CHECK_EQ(submit_job(pool, &t[i], i == 5 ? J_ABORT : J_PID, i, 0), 0);
        int64_t batch = plait_deadline_in(5 * PLAIT_SEC); /* one for the batch */
        for (int i = 0; i < 12; i++)
            CHECK_EQ(join_i64(t[i], NULL, batch), i == 5 ? PLAIT_KILLED(SIGABRT) : 0);
        for (int i = 0; i < 12; i++)
            if (!has_pid(seen, nseen, pid_of(i)))
                seen[nseen++] = pid_of(i);
        /* a cancelled running task, a map, and a pool destroyed with its workers idle */
        CHECK_EQ(submit_held(pool, &t[0], J_BLOCK, 20, 0), 0);
        await_started(1);
        CHECK_EQ(plait_cancel(t[0]), 0);
        CHECK_EQ(join_i64(t[0], NULL, PROMPTLY()), -ECANCELED);
        seen[nseen++] = pid_of(20);
        int64_t in[100], out[100];
        for (int i = 0; i < 100; i++)
            in[i] = i;
        CHECK_EQ(plait_procpool_map(pool, item_affine, in, sizeof in[0], 100, out,
                                    sizeof out[0], NULL, 0, SOON()),
                 0);
        int now[PLAIT_PROCPOOL_MAX];
        int n = settled_pids(pool, now, 3);
        for (int i = 0; i < n; i++)
            if (!has_pid(seen, nseen, now[i]))
                seen[nseen++] = now[i];
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    fx_fini();

    for (int i = 0; i < nseen; i++) {
        if (!pid_gone(seen[i]))
            fprintf(stderr, "  worker %d is still there\n", seen[i]);
        CHECK(pid_gone(seen[i]));
    }
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1); /* no child at all, not even a zombie */
    CHECK_EQ(errno, ECHILD);
    CHECK_EQ(count_fds(), fds);
}

/* A task's handle outlives its pool: joining it after destroy (it finished before, as
 * destroy drains) hands over its result without touching the freed pool (the join's
 * help once read the pool's owner first: a use after free). */
TEST(join_after_destroy_touches_no_pool)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(submit_job(pool, &t, J_VALUE, 1, 6), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0); /* drains: t is done */
    int64_t v = 0;
    CHECK_EQ(join_i64(t, &v, PROMPTLY()), 0); /* ptask_help reads the freed pool */
    CHECK_EQ(v, value_of(6));
    fx_fini();
}

/* Two threads join copies of one task's handle at once: one gets the result, the other
 * -ESRCH, and neither reads the task after the other consumed it.  (A joiner that had
 * seen the handle current but not yet begun to collect could read the task's record
 * freed by the other's join.  That window is a few instructions wide: the rounds
 * check the outcome, and ThreadSanitizer reported the free racing the read.) */
typedef struct {
    plait_task task;
    pthread_barrier_t *start;
    int r;
    int64_t v;
} copy_joiner;

static void *join_a_copy(void *arg)
{
    copy_joiner *c = arg;
    pthread_barrier_wait(c->start);
    c->r = join_i64(c->task, &c->v, PROMPTLY());
    return NULL;
}

TEST(two_threads_join_copies_of_one_task)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    pthread_barrier_t start;
    CHECK_EQ(pthread_barrier_init(&start, NULL, 2), 0);
    for (int round = 0; round < 300; round++) {
        copy_joiner a = {.start = &start}, b = {.start = &start};
        CHECK_EQ(submit_job(pool, &a.task, J_VALUE, 1, round), 0);
        b.task = a.task;
        pthread_t other;
        CHECK_EQ(pthread_create(&other, NULL, join_a_copy, &b), 0);
        join_a_copy(&a);
        CHECK_EQ(pthread_join(other, NULL), 0);
        copy_joiner *won = a.r == 0 ? &a : &b, *lost = a.r == 0 ? &b : &a;
        CHECK_EQ(won->r, 0);
        CHECK_EQ(won->v, value_of(round));
        CHECK_EQ(lost->r, -ESRCH);
    }
    CHECK_EQ(pthread_barrier_destroy(&start), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* A forked child's copy of an iterator: every plait_procpool_* call there is -EPERM,
 * imap_next and imap_destroy too (they once were not: imap_next waited out its
 * deadline, and imap_destroy waited for ever for the parent's chunks). */
static ssize_t uses_parents_iter(const void *arg, size_t len, void *out, size_t cap)
{
    plait_procpool_iter *it;
    if (len != sizeof it || cap < 2 * sizeof(int))
        return -EBADMSG;
    memcpy(&it, arg, sizeof it);
    size_t index;
    int err;
    int codes[2];
    codes[0] = plait_procpool_imap_next(it, &index, NULL, &err, plait_deadline_in(300 * PLAIT_MS));
    atomic_store(&fx.sh->pid_of[IDS - 1], codes[0]); /* seen by the parent even if we hang */
    codes[1] = plait_procpool_imap_destroy(it);
    memcpy(out, codes, sizeof codes);
    return sizeof codes;
}

TEST(imap_from_a_forked_child_is_refused)
{
    plait_procpool *pool = fx_pool_n(1);
    if (!pool)
        return;
    int64_t args[4] = {0, 1, 2, 3};
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, item_held_0, args, sizeof args[0], 4,
                                 sizeof(int64_t), 1, 0),
             0);
    plait_task child;
    CHECK_EQ(plait_process_start(&child, uses_parents_iter, &it, sizeof it, NULL, NULL), 0);
    void *res = NULL;
    int r = plait_join(child, &res, plait_deadline_in(3 * PLAIT_SEC));
    CHECK_EQ(r, 0);
    if (r == -ETIMEDOUT) {
        CHECK_EQ(pid_of(IDS - 1), -EPERM); /* what its imap_next said; destroy hangs */
        CHECK_EQ(plait_cancel(child), 0);
        CHECK_EQ(plait_join(child, NULL, SOON()), -ECANCELED);
    } else if (r == 0) {
        plait_bytes *b = res;
        int codes[2] = {0, 0};
        if (b && b->len == sizeof codes)
            memcpy(codes, b->data, sizeof codes);
        CHECK_EQ(codes[0], -EPERM);
        CHECK_EQ(codes[1], -EPERM);
        free(b);
    }
    CHECK_EQ(plait_pevent_set(fx.gate[0]), 0);
    CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    fx_fini();
}

/* A worker killed between its two publishing stores (done ring += s; DONE) while a
 * helping joiner collects: the joiner takes s off the done ring (the plock, released
 * for the dead worker) and delivers it.  The manager's fail_running then found s
 * RUNNING, its runner the dead pid and in neither ring, and put it on the done ring a
 * second time: s was freed twice, a later task was lost.
 *
 * To kill the worker exactly there, the task single-steps (x86 TF) the rest of its
 * worker's code after it returns, and its SIGTRAP handler acts on the first step after
 * done_tail has moved: it says so, waits (holding the pool's plock, as a worker that
 * dies there does) until the parent's joiner sleeps in its join, then SIGKILLs itself.
 * (A 300 ms pause stood for that wait: a joiner held up through it came after the
 * death, and the case passed without a joiner waiting for the plock.)  The addresses
 * come from procpool.c's layout for one worker (4 slots), with the task in slot 0 (the
 * pool's first); a layout that moved fails the task with -EINVAL, so the test fails
 * rather than passing unawares.  x86-64 only, and not under ThreadSanitizer, which
 * delays signal handlers. */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#include <ucontext.h>

enum { TRAP_SHM_DONE_TAIL = 48, TRAP_SLOT0 = 192, TRAP_SLOT0_ARG = 256 };
enum { TRAP_RESULT = 64 << 20 }; /* a large result: its delivery takes a while */
/* in the shared fixture: the joiner's thread id, as it joins; and 1 once the worker has
 * seen it asleep in its join */
enum { TRAP_JOINER = IDS - 2, TRAP_JOINER_SEEN = IDS - 3 };
static volatile uint64_t *trap_done_tail;

static void trap_step(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    if (*trap_done_tail == 0)
        return; /* not yet: the next instruction traps again */
    ucontext_t *uc = ctx;
    uc->uc_mcontext.gregs[REG_EFL] &= ~0x100;
    /* the slot's state as the worker dies: still RUNNING (2), not DONE (3) */
    atomic_store(&fx.sh->runs[IDS - 2],
                 (int)*(volatile uint32_t *)((const char *)trap_done_tail -
                                             TRAP_SHM_DONE_TAIL + TRAP_SLOT0));
    plait_psem_release(fx.started);
    for (int64_t give_up = PROMPTLY(); plait_now() < give_up;) {
        int joiner = atomic_load(&fx.sh->pid_of[TRAP_JOINER]);
        if (joiner && thread_asleep_in_wait(joiner)) {
            atomic_store(&fx.sh->runs[TRAP_JOINER_SEEN], 1);
            break;
        }
        nanosleep(&(struct timespec){0, PLAIT_MS}, NULL);
    }
    raise(SIGKILL);
}

/* From here on, every instruction this process runs traps into step (x86-64's trap
 * flag): the handler watches the worker publish, one instruction at a time. */
static void single_step_into(void (*step)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = step;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, NULL);
    __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq" ::: "memory", "cc");
}

static ssize_t dies_mid_publish(const void *arg, size_t arg_len, void *out, size_t cap)
{
    (void)arg_len;
    memset(out, 0x5a, cap);
    trap_done_tail = (volatile uint64_t *)((const char *)arg - TRAP_SLOT0_ARG +
                                           TRAP_SHM_DONE_TAIL);
    if (*trap_done_tail != 0)
        return -EINVAL; /* not the layout assumed */
    single_step_into(trap_step);
    return (ssize_t)cap;
}

TEST(worker_killed_mid_publish_completes_once)
{
    plait_procpool_options o = {.processes = 1, .result_max = TRAP_RESULT};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, dies_mid_publish, NULL, 0), 0);
    /* the worker has pushed slot 0 on the done ring and holds the plock: a join here
     * helps, and its collect waits for the plock until the manager releases it for
     * the dead worker */
    CHECK_EQ(plait_psem_acquire(fx.started, SOON()), 0);
    CHECK_EQ(runs(IDS - 2), 2);
    void *res = NULL;
    /* its result was on the done ring, whole: it is delivered, once */
    atomic_store(&fx.sh->pid_of[TRAP_JOINER], gettid_());
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    CHECK_EQ(runs(TRAP_JOINER_SEEN), 1); /* the worker died while the join waited */
    CHECK(res && ((plait_bytes *)res)->len == TRAP_RESULT);
    free(res);
    /* each of these must run once and come back */
    enum { MORE = 6 };
    plait_task more[MORE];
    for (int i = 0; i < MORE; i++)
        CHECK_EQ(submit_job(pool, &more[i], J_VALUE, 100 + i, i), 0);
    for (int i = 0; i < MORE; i++) {
        int64_t v = 0;
        int jr = join_i64(more[i], &v, PROMPTLY());
        if (jr != 0)
            fprintf(stderr, "  task %d: %d (%s)\n", i, jr, plait_strerror(jr));
        CHECK_EQ(jr, 0);
        CHECK_EQ(v, value_of(i));
        CHECK_EQ(runs(100 + i), 1);
    }
    close_pool(pool);
    fx_fini();
}

/* A task with a memory bug that writes over its slot's header or the done ring, in the
 * memory the pool shares with its workers, fails with -EPROTO, and the parent, which
 * once took what it found there on trust, goes on: it copied result_len bytes out of
 * the slot (past the mapping: SIGSEGV) or indexed a slot out of range.  The write must
 * land after the worker stored the task's outcome (which writes result_len) and before
 * the parent reads it, as a stray thread of the task's could do it: single-stepped as
 * above, the worker is stopped once it has put the slot on the done ring, still
 * holding the pool's lock, and the scribble made then.  Layout as above (one worker,
 * task in slot 0); a task_slot's fn is at 16, arg_len at 24, result_len at 32; the
 * done ring starts at 80. */
enum { SCRIBBLE_SLOT0_FN = TRAP_SLOT0 + 16, SCRIBBLE_SLOT0_ARG_LEN = TRAP_SLOT0 + 24,
       SCRIBBLE_SLOT0_RESULT_LEN = TRAP_SLOT0 + 32, SCRIBBLE_DONE_RING = 80 };
enum { SCRIBBLE_RESULT_LEN, SCRIBBLE_DONE_ENTRY };
static volatile char *scribble_base;
static int scribble_what;

static void scribble_step(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    if (*(volatile uint64_t *)(scribble_base + TRAP_SHM_DONE_TAIL) == 0)
        return; /* not yet: the next instruction traps again */
    ucontext_t *uc = ctx;
    uc->uc_mcontext.gregs[REG_EFL] &= ~0x100;
    if (scribble_what == SCRIBBLE_RESULT_LEN)
        *(volatile uint64_t *)(scribble_base + SCRIBBLE_SLOT0_RESULT_LEN) = 256u << 20;
    else
        *(volatile uint32_t *)(scribble_base + SCRIBBLE_DONE_RING) = 1000; /* of 4 slots */
}

/* The pool's mapping, as a task in slot 0 (of a pool of one worker) sees it: NULL when
 * the layout is not the one assumed (the task then fails, and the test with it). */
static volatile char *mapping_of(const void *arg, size_t arg_len, plait_proc_fn self)
{
    volatile char *base = (volatile char *)arg - TRAP_SLOT0_ARG;
    plait_proc_fn fn;
    memcpy(&fn, (const char *)base + SCRIBBLE_SLOT0_FN, sizeof fn);
    if (fn != self || *(volatile uint64_t *)(base + SCRIBBLE_SLOT0_ARG_LEN) != arg_len)
        return NULL;
    return base;
}

static ssize_t scribbles(const void *arg, size_t arg_len, void *out, size_t cap)
{
    if (arg_len != sizeof scribble_what || cap < 8)
        return -EINVAL;
    memcpy(&scribble_what, arg, sizeof scribble_what);
    scribble_base = mapping_of(arg, arg_len, scribbles);
    if (!scribble_base || *(volatile uint64_t *)(scribble_base + TRAP_SHM_DONE_TAIL) != 0)
        return -EINVAL; /* not the layout assumed */
    memset(out, 0x5a, 8);
    single_step_into(scribble_step);
    return 8;
}

/* What a wait for the pool's lock that a scribble holds for ever takes to give up. */
#define PATIENTLY() plait_deadline_in((CHECK_SLOW_CHILDREN ? 10 : 5) * PLAIT_SEC)

/* The tasks after a scribble each run and come back. */
static void later_tasks_run(plait_procpool *pool)
{
    enum { MORE = 6 };
    plait_task more[MORE];
    int submitted = 0;
    while (submitted < MORE) {
        int r = plait_procpool_submit(pool, &more[submitted], reverse_fn, "ab", 2);
        CHECK_EQ(r, 0);
        if (r < 0)
            break;
        submitted++;
    }
    for (int i = 0; i < submitted; i++) {
        plait_bytes *b = NULL;
        int r = plait_join(more[i], (void **)&b, PATIENTLY());
        CHECK_EQ(r, 0);
        CHECK(b && b->len == 2 && memcmp(b->data, "ba", 2) == 0);
        free(b);
        if (r == -ETIMEDOUT)
            break; /* the pool is stuck: the others would wait as long */
    }
}

static void scribbled_task_fails_alone(int what)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles, &what, sizeof what), 0);
    void *res = NULL;
    CHECK_EQ(plait_join(t, &res, PROMPTLY()), -EPROTO);
    CHECK(res == NULL);
    later_tasks_run(pool); /* nothing else is lost */
    close_pool(pool);
}

static void scribbled_result_len_scenario(void) { scribbled_task_fails_alone(SCRIBBLE_RESULT_LEN); }
static void scribbled_done_entry_scenario(void) { scribbled_task_fails_alone(SCRIBBLE_DONE_ENTRY); }

TEST(procpool_task_scribbling_on_its_result_len_fails_alone)
{
    run_isolated(scribbled_result_len_scenario, ISOLATED_BUDGET);
}

TEST(procpool_task_scribbling_on_the_done_ring_fails_alone)
{
    run_isolated(scribbled_done_entry_scenario, ISOLATED_BUDGET);
}

/* The rest of the shared state a task can write over, from the task itself (no
 * single-stepping needed: the worker holds nothing while its task runs).  Layout as
 * above: the pool's lock word at 0, the ready ring's head at 24 and tail at 32, the
 * ready ring at 64, the worker's init_error at 132. */
enum { SCRIBBLE_LOCK = 0, SCRIBBLE_READY_HEAD = 24, SCRIBBLE_READY_TAIL = 32,
       SCRIBBLE_READY_RING = 64, SCRIBBLE_INIT_ERROR = 132 };
/* A task that writes over the pool's lock word, with a value no death will clear:
 * the parent's pid, the waiters' bit alone (nobody's pid), or its own worker's pid,
 * and returns.  Its worker then waited for the lock for ever, and so did the parent
 * at its next look at the shared state (a join, a submit): the parent must not wait
 * for ever on a word that a worker can write.  Whatever a worker of the pool does
 * not hold, the parent takes over (the task's result then comes back); a worker that
 * holds it, the parent kills (its task fails with -EPROTO) and replaces. */
enum { LOCK_PARENTS_PID, LOCK_WAITERS_BIT, LOCK_OWN_PID };

static ssize_t scribbles_on_the_lock(const void *arg, size_t arg_len, void *out, size_t cap)
{
    int what;
    volatile char *base = mapping_of(arg, arg_len, scribbles_on_the_lock);
    if (!base || arg_len != sizeof what || cap < 8)
        return -EINVAL;
    memcpy(&what, arg, sizeof what);
    unsigned v = what == LOCK_PARENTS_PID ? (unsigned)getppid()
                 : what == LOCK_WAITERS_BIT ? 1u << 31
                                            : (unsigned)getpid();
    /* over the free word: written while the parent held the lock, the parent's unlock
     * would undo it (the worker's own pid then went unseen, once in CI) */
    atomic_uint *word = (atomic_uint *)(uintptr_t)(base + SCRIBBLE_LOCK);
    for (unsigned expected = 0; !atomic_compare_exchange_weak(word, &expected, v); expected = 0)
        sched_yield();
    memset(out, 0x5a, 8);
    return 8;
}

static void scribbled_lock_scenario(int what)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles_on_the_lock, &what, sizeof what), 0);
    plait_bytes *b = NULL;
    int r = plait_join(t, (void **)&b, PATIENTLY());
    if (what == LOCK_OWN_PID) {
        CHECK_EQ(r, -EPROTO);
        CHECK(b == NULL);
    } else {
        CHECK_EQ(r, 0);
        CHECK(b && b->len == 8 && b->data[0] == 0x5a && b->data[7] == 0x5a);
    }
    free(b);
    if (r != -ETIMEDOUT)
        later_tasks_run(pool);
    close_pool(pool);
}

static void lock_parents_pid_scenario(void) { scribbled_lock_scenario(LOCK_PARENTS_PID); }
static void lock_waiters_bit_scenario(void) { scribbled_lock_scenario(LOCK_WAITERS_BIT); }
static void lock_own_pid_scenario(void) { scribbled_lock_scenario(LOCK_OWN_PID); }

TEST(procpool_task_scribbling_on_the_pool_lock_hangs_nothing)
{
    run_isolated(lock_parents_pid_scenario, ISOLATED_BUDGET);
    run_isolated(lock_waiters_bit_scenario, ISOLATED_BUDGET);
    run_isolated(lock_own_pid_scenario, ISOLATED_BUDGET);
}

/* A task that writes over its worker's init_error (a code no initialiser returned:
 * 1; or a plausible one, -EIO, in a pool without an initialiser), and whose worker
 * then ends (max_tasks) and is replaced.  The parent took the word for the worker's
 * initialiser failing: the pool broke with that code, and with 1, a positive code,
 * submit took tasks that it never queued nor failed (their joins waited for ever). */
static int init_succeeds(void *arg)
{
    (void)arg;
    return 0;
}

static ssize_t scribbles_on_init_error(const void *arg, size_t arg_len, void *out, size_t cap)
{
    int32_t code;
    volatile char *base = mapping_of(arg, arg_len, scribbles_on_init_error);
    if (!base || arg_len != sizeof code || cap < 8)
        return -EINVAL;
    memcpy(&code, arg, sizeof code);
    *(volatile int32_t *)(base + SCRIBBLE_INIT_ERROR) = code;
    memset(out, 0x5a, 8);
    return 8;
}

static void scribbled_init_error_scenario(int32_t code, int (*init)(void *))
{
    plait_procpool_options o = {.processes = 1, .max_tasks = 1, .init = init};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles_on_init_error, &code, sizeof code), 0);
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(t, (void **)&b, PROMPTLY()), 0);
    CHECK(b && b->len == 8);
    free(b);
    later_tasks_run(pool); /* each on a new worker, after the scribbler's end */
    close_pool(pool);
}

static void init_error_positive_scenario(void) { scribbled_init_error_scenario(1, init_succeeds); }
static void init_error_without_init_scenario(void) { scribbled_init_error_scenario(-EIO, NULL); }

TEST(procpool_task_scribbling_on_init_error_breaks_nothing)
{
    run_isolated(init_error_positive_scenario, ISOLATED_BUDGET);
    run_isolated(init_error_without_init_scenario, ISOLATED_BUDGET);
}

/* A task that writes over the ready ring while a second task waits there, behind it
 * (one worker): the entry that stood for the second (with a slot number out of range,
 * or its own, running slot), or the ring's head (past its tail).  The worker skipped
 * the entry (or looped through the ring for ever), and the second task was never run
 * nor reported: its join waited for ever.  It fails with -EPROTO (its record was
 * written over), and the pool goes on.  So too when the pool is shut down with
 * PLAIT_POOL_CANCEL before any worker came to the entry (the scribbler still runs):
 * the shutdown failed what the ring held, not the task it had lost, and then waited
 * for it for ever. */
enum { READY_ENTRY_OUT_OF_RANGE, READY_ENTRY_OF_A_RUNNING_SLOT, READY_HEAD_PAST_TAIL,
       READY_ENTRY_THEN_SHUTDOWN };

static ssize_t scribbles_on_the_ready_ring(const void *arg, size_t arg_len, void *out,
                                           size_t cap)
{
    int what;
    volatile char *base = mapping_of(arg, arg_len, scribbles_on_the_ready_ring);
    if (!base || arg_len != sizeof what || cap < 8)
        return -EINVAL;
    memcpy(&what, arg, sizeof what);
    /* the second task is queued (in slot 1, entry 1) once the tail reads 2 */
    volatile uint64_t *tail = (volatile uint64_t *)(base + SCRIBBLE_READY_TAIL);
    for (int64_t give_up = plait_deadline_in(PLAIT_SEC); *tail != 2;)
        if (plait_now() > give_up)
            return -ETIMEDOUT;
    volatile uint32_t *entry = (volatile uint32_t *)(base + SCRIBBLE_READY_RING) + 1;
    if (what == READY_ENTRY_OUT_OF_RANGE || what == READY_ENTRY_THEN_SHUTDOWN)
        *entry = 1000; /* of 4 slots */
    else if (what == READY_ENTRY_OF_A_RUNNING_SLOT)
        *entry = 0; /* this task's */
    else
        *(volatile uint64_t *)(base + SCRIBBLE_READY_HEAD) = 1000;
    if (what == READY_ENTRY_THEN_SHUTDOWN) {
        plait_psem_release(fx.started);
        for (;;)
            pause(); /* until the shutdown kills it */
    }
    memset(out, 0x5a, 8);
    return 8;
}

static void scribbled_ready_ring_scenario(int what)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    plait_task t, behind;
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles_on_the_ready_ring, &what, sizeof what), 0);
    CHECK_EQ(plait_procpool_submit(pool, &behind, reverse_fn, "ab", 2), 0);
    plait_bytes *b = NULL;
    if (what == READY_ENTRY_THEN_SHUTDOWN) {
        CHECK_EQ(plait_psem_acquire(fx.started, PROMPTLY()), 0);
        CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, PROMPTLY()), 0);
        CHECK_EQ(plait_join(t, (void **)&b, PROMPTLY()), -ECANCELED);
    } else {
        CHECK_EQ(plait_join(t, (void **)&b, PROMPTLY()), 0);
        CHECK(b && b->len == 8);
    }
    free(b);
    b = NULL;
    int r = plait_join(behind, (void **)&b, PROMPTLY());
    CHECK_EQ(r, -EPROTO);
    CHECK(b == NULL);
    free(b);
    if (r != -ETIMEDOUT && what != READY_ENTRY_THEN_SHUTDOWN)
        later_tasks_run(pool);
    close_pool(pool);
    fx_fini();
}

static void ready_entry_out_of_range_scenario(void)
{
    scribbled_ready_ring_scenario(READY_ENTRY_OUT_OF_RANGE);
}
static void ready_entry_of_a_running_slot_scenario(void)
{
    scribbled_ready_ring_scenario(READY_ENTRY_OF_A_RUNNING_SLOT);
}
static void ready_head_past_tail_scenario(void) { scribbled_ready_ring_scenario(READY_HEAD_PAST_TAIL); }
static void ready_entry_then_shutdown_scenario(void)
{
    scribbled_ready_ring_scenario(READY_ENTRY_THEN_SHUTDOWN);
}

TEST(procpool_task_scribbling_on_the_ready_ring_loses_nothing)
{
    run_isolated(ready_entry_out_of_range_scenario, ISOLATED_BUDGET);
    run_isolated(ready_entry_of_a_running_slot_scenario, ISOLATED_BUDGET);
    run_isolated(ready_head_past_tail_scenario, ISOLATED_BUDGET);
    run_isolated(ready_entry_then_shutdown_scenario, ISOLATED_BUDGET);
}

/* More words of the shared state a task can write over (layout as above): the joiners'
 * sleep count at 16, the stop word at 20, the worker's pid at 128 and its init_done at
 * 136.  The task writes one (32 bits), then returns its pid (8 bytes) or dies. */
enum { SCRIBBLE_HELPERS_ASLEEP = 16, SCRIBBLE_STOP = 20, SCRIBBLE_WORKER_PID = 128,
       SCRIBBLE_INIT_DONE = 136 };
enum { THEN_RETURN, THEN_DIE };
typedef struct word_scribble {
    uint32_t at, value;
    int then;
} word_scribble;

static ssize_t scribbles_a_word(const void *arg, size_t arg_len, void *out, size_t cap)
{
    word_scribble w;
    volatile char *base = mapping_of(arg, arg_len, scribbles_a_word);
    if (!base || arg_len != sizeof w || cap < 8)
        return -EINVAL;
    memcpy(&w, arg, sizeof w);
    atomic_store((atomic_uint *)(uintptr_t)(base + w.at), w.value);
    if (w.then == THEN_DIE) {
        prctl(PR_SET_DUMPABLE, 0);
        raise(SIGKILL);
    }
    int64_t pid = getpid();
    memcpy(out, &pid, sizeof pid);
    return 8;
}

/* Submit the scribble as the pool's first task (slot 0) and join it: its pid, or 0. */
static int64_t scribble_word(plait_procpool *pool, uint32_t at, uint32_t value, int then)
{
    word_scribble w = {.at = at, .value = value, .then = then};
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles_a_word, &w, sizeof w), 0);
    int64_t pid = 0;
    int r = join_i64(t, &pid, PROMPTLY());
    CHECK_EQ(r, then == THEN_DIE ? PLAIT_KILLED(SIGKILL) : 0);
    return pid;
}

/* helpers_asleep written over (nonzero, no joiner asleep): the workers woke the absent
 * joiners instead of the manager, so nothing was collected but by a joiner — detached
 * tasks were never collected, and the ones waiting behind them for a slot never ran. */
static void helpers_asleep_scenario(void)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    scribble_word(pool, SCRIBBLE_HELPERS_ASLEEP, 1000, THEN_RETURN);
    enum { MORE = 12 }; /* more than the 4 slots */
    for (int i = 0; i < MORE; i++)
        CHECK_EQ(submit_job(pool, NULL, J_VALUE, 100 + i, i), 0);
    for (int64_t give_up = PROMPTLY(); runs(100 + MORE - 1) == 0 && plait_now() < give_up;)
        plait_sleep(PLAIT_MS);
    for (int i = 0; i < MORE; i++)
        CHECK_EQ(runs(100 + i), 1);
    close_pool(pool);
    fx_fini();
}

TEST(procpool_task_scribbling_on_helpers_asleep_strands_nothing)
{
    run_isolated(helpers_asleep_scenario, ISOLATED_BUDGET);
}

/* stop written to 1 long before any shutdown: each worker ended once the ring was empty,
 * and so did each replacement at once — the pool forked in a loop.  One replacement
 * each, and then the same workers stay. */
static int same_pids_after(plait_procpool *pool, int64_t ns)
{
    int a[8], b[8];
    int na = plait_procpool_pids(pool, a, 8);
    plait_sleep(ns);
    int nb = plait_procpool_pids(pool, b, 8);
    int same = na == nb;
    for (int i = 0; same && i < na; i++)
        same = has_pid(b, nb, a[i]);
    return same;
}

static void stop_scenario(void)
{
    plait_procpool_options o = {.processes = 2};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    int first[2];
    CHECK_EQ(plait_procpool_pids(pool, first, 2), 2);
    scribble_word(pool, SCRIBBLE_STOP, 1, THEN_RETURN);
    /* until a worker has been replaced (the parent wrote stop back to 0 before that
     * fork: no worker sees the scribble after it), and both workers listed sleep in
     * their wait for work: neither saw the scribble (one that did ends, and never sleeps
     * again), so neither will end for it.  Which first workers end is the race's: the
     * scribbler, the other, or both, the second replaced once the parent has seen it
     * end, which a 50 ms pause stood for (longer on a loaded machine, and the pids below
     * then differ).  (And the loop waited for the scribbler's replacement, which does not
     * come where the other ended first: it gave up after 2 s, unsaid.) */
    for (int64_t give_up = PROMPTLY();;) {
        int pids[2], n = plait_procpool_pids(pool, pids, 2);
        if (n == 2 && (!has_pid(first, 2, pids[0]) || !has_pid(first, 2, pids[1])) &&
            thread_asleep_in_wait(pids[0]) && thread_asleep_in_wait(pids[1]))
            break;
        if (plait_now() > give_up) {
            CHECK(!"no worker was replaced, or the workers never settled after it");
            break;
        }
        plait_sleep(PLAIT_MS);
    }
    CHECK(same_pids_after(pool, 300 * PLAIT_MS));
    CHECK_EQ(plait_procpool_pids(pool, (int[2]){0}, 2), 2);
    later_tasks_run(pool);
    close_pool(pool);
}

TEST(procpool_task_scribbling_on_stop_forks_no_loop)
{
    run_isolated(stop_scenario, ISOLATED_BUDGET);
}

/* init_done cleared by a task of a pool with an initialiser, and then the task's worker
 * dies (the task kills it), or ends (max_tasks): the parent took it for a worker that
 * died in its initialiser, and the pool broke with its fate (every later submit failed
 * with PLAIT_KILLED(SIGKILL) or PLAIT_EXITED(0)).  The task fails with its own fate;
 * the pool goes on. */
static void init_done_scenario(int then)
{
    plait_procpool_options o = {.processes = 1, .init = init_succeeds,
                                .max_tasks = then == THEN_RETURN ? 1 : 0};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    int worker = 0;
    CHECK_EQ(plait_procpool_pids(pool, &worker, 1), 1);
    scribble_word(pool, SCRIBBLE_INIT_DONE, 0, then);
    /* until the parent has seen its worker end (gone from the pids): later tasks sent
     * before that (a 100 ms pause stood for it) would not test the bug's path */
    int pids[1], n;
    for (int64_t give_up = PROMPTLY();
         (n = plait_procpool_pids(pool, pids, 1)) > 0 && has_pid(pids, n, worker);) {
        if (plait_now() > give_up) {
            CHECK(!"the parent never saw its worker end");
            break;
        }
        plait_sleep(PLAIT_MS);
    }
    later_tasks_run(pool);
    close_pool(pool);
}

static void init_done_then_die_scenario(void) { init_done_scenario(THEN_DIE); }
static void init_done_then_end_scenario(void) { init_done_scenario(THEN_RETURN); }

TEST(procpool_task_scribbling_on_init_done_breaks_nothing)
{
    run_isolated(init_done_then_die_scenario, ISOLATED_BUDGET);
    run_isolated(init_done_then_end_scenario, ISOLATED_BUDGET);
}

/* The worker's pid word written over: plait_procpool_pids said what the task wrote (the
 * parent's pid here, which a caller would then kill), not the worker's pid. */
static void worker_pid_scenario(void)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    int64_t pid = scribble_word(pool, SCRIBBLE_WORKER_PID, (uint32_t)getpid(), THEN_RETURN);
    int pids[2] = {0, 0};
    CHECK_EQ(plait_procpool_pids(pool, pids, 2), 1);
    CHECK_EQ(pids[0], (int)pid);
    later_tasks_run(pool);
    close_pool(pool);
}

TEST(procpool_task_scribbling_on_its_worker_pid_misleads_nothing)
{
    run_isolated(worker_pid_scenario, ISOLATED_BUDGET);
}

/* The lock's word written with the pid of a worker that is still in its initialiser
 * (a replacement; two workers, max_tasks 1, the third initialiser call is slow): the
 * scribbler's worker waits for the lock, the parent kills the worker the word names
 * (parent_lock) — and took its death for its initialiser's failure: the pool broke with
 * -EPROTO, every later task failed.  It is replaced, and the pool goes on. */
static int init_third_slow(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&fx.sh->inits, 1) == 2) {
        struct timespec ts = {3, 0};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void lock_names_an_initialising_worker_scenario(void)
{
    plait_procpool_options o = {.processes = 2, .max_tasks = 1, .init = init_third_slow};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    int before[2] = {0, 0}, now[2] = {0, 0};
    CHECK_EQ(plait_procpool_pids(pool, before, 2), 2);
    plait_task t;
    plait_bytes *b = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, reverse_fn, "ab", 2), 0); /* in slot 0 */
    CHECK_EQ(plait_join(t, (void **)&b, PROMPTLY()), 0);
    free(b);
    b = NULL;
    int fresh = 0; /* its worker's replacement, in its slow initialiser */
    for (int64_t give_up = PROMPTLY(); !fresh && plait_now() < give_up;) {
        int n = plait_procpool_pids(pool, now, 2);
        for (int i = 0; i < n; i++)
            if (!has_pid(before, 2, now[i]))
                fresh = now[i];
        plait_sleep(PLAIT_MS);
    }
    CHECK(fresh != 0);
    for (int64_t give_up = PROMPTLY(); atomic_load(&fx.sh->inits) < 3 && plait_now() < give_up;)
        plait_sleep(PLAIT_MS); /* it is in its initialiser */
    CHECK_EQ(atomic_load(&fx.sh->inits), 3);
    word_scribble w = {.at = SCRIBBLE_LOCK, .value = (uint32_t)fresh, .then = THEN_RETURN};
    CHECK_EQ(plait_procpool_submit(pool, &t, scribbles_a_word, &w, sizeof w), 0); /* slot 0 */
    CHECK_EQ(plait_join(t, (void **)&b, PATIENTLY()), 0);
    free(b);
    later_tasks_run(pool);
    close_pool(pool);
    fx_fini();
}

TEST(procpool_lock_naming_an_initialising_worker_breaks_nothing)
{
    run_isolated(lock_names_an_initialising_worker_scenario, ISOLATED_BUDGET);
}

/* The ready ring's head moved on by one, still before its tail (one worker; two tasks
 * behind the scribbler): the worker skipped the first of them, which was never run nor
 * reported (its join waited for ever).  It fails with -EPROTO; the second runs. */
static ssize_t skips_a_ready_entry(const void *arg, size_t arg_len, void *out, size_t cap)
{
    volatile char *base = mapping_of(arg, arg_len, skips_a_ready_entry);
    if (!base || cap < 8)
        return -EINVAL;
    volatile uint64_t *head = (volatile uint64_t *)(base + SCRIBBLE_READY_HEAD);
    volatile uint64_t *tail = (volatile uint64_t *)(base + SCRIBBLE_READY_TAIL);
    for (int64_t give_up = plait_deadline_in(PLAIT_SEC); *tail != 3;)
        if (plait_now() > give_up)
            return -ETIMEDOUT;
    *head = *head + 1; /* 1 → 2, of 3 */
    memset(out, 0x5a, 8);
    return 8;
}

static void ready_head_skips_one_scenario(void)
{
    plait_procpool_options o = {.processes = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    plait_task t, skipped, after;
    CHECK_EQ(plait_procpool_submit(pool, &t, skips_a_ready_entry, NULL, 0), 0);
    CHECK_EQ(plait_procpool_submit(pool, &skipped, reverse_fn, "ab", 2), 0);
    CHECK_EQ(plait_procpool_submit(pool, &after, reverse_fn, "cd", 2), 0);
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(t, (void **)&b, PROMPTLY()), 0);
    free(b);
    b = NULL;
    CHECK_EQ(plait_join(after, (void **)&b, PROMPTLY()), 0);
    CHECK(b && b->len == 2 && memcmp(b->data, "dc", 2) == 0);
    free(b);
    b = NULL;
    int r = plait_join(skipped, (void **)&b, PROMPTLY());
    CHECK_EQ(r, -EPROTO);
    free(b);
    if (r != -ETIMEDOUT)
        later_tasks_run(pool);
    close_pool(pool);
}

TEST(procpool_task_scribbling_on_the_ready_head_loses_nothing)
{
    run_isolated(ready_head_skips_one_scenario, ISOLATED_BUDGET);
}
#else
/* Elsewhere these cases say why they do not run (x86-64 only, and not under
 * ThreadSanitizer: see above). */
#if defined(__SANITIZE_THREAD__)
#define NOT_HERE "this is a ThreadSanitizer build"
#else
#define NOT_HERE "this is not x86-64"
#endif
#define NOT_RUN_HERE(name, needs)                                                        \
    TEST(name) { CHECK_SKIP("needs " needs ", without ThreadSanitizer: " NOT_HERE); }
#define STEPPING "x86-64 single-stepping"
#define LAYOUT "procpool.c's x86-64 layout"
NOT_RUN_HERE(worker_killed_mid_publish_completes_once, STEPPING)
NOT_RUN_HERE(procpool_task_scribbling_on_its_result_len_fails_alone, STEPPING)
NOT_RUN_HERE(procpool_task_scribbling_on_the_done_ring_fails_alone, STEPPING)
NOT_RUN_HERE(procpool_task_scribbling_on_the_pool_lock_hangs_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_init_error_breaks_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_the_ready_ring_loses_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_helpers_asleep_strands_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_stop_forks_no_loop, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_init_done_breaks_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_its_worker_pid_misleads_nothing, LAYOUT)
NOT_RUN_HERE(procpool_lock_naming_an_initialising_worker_breaks_nothing, LAYOUT)
NOT_RUN_HERE(procpool_task_scribbling_on_the_ready_head_loses_nothing, LAYOUT)
#endif

/* A replacement worker that dies in its initialiser breaks the pool with its fate, as
 * one dying there during create does (it was forked again and again: here bounded to
 * 40 deaths, after which the initialiser succeeds). */
static int init_dies_after_first(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&fx.sh->inits, 1);
    if (n >= 1 && n <= 40)
        raise(SIGKILL);
    return 0;
}

TEST(replacement_dying_in_its_initialiser_breaks_the_pool)
{
    plait_procpool_options o = {.processes = 1, .init = init_dies_after_first};
    plait_procpool *pool = fx_pool(&o);
    if (!pool)
        return;
    plait_task k, t;
    CHECK_EQ(submit_job(pool, &k, J_SIGKILL, 1, 0), 0);
    CHECK_EQ(join_i64(k, NULL, PROMPTLY()), PLAIT_KILLED(SIGKILL));
    /* refused by the broken pool, or failed with the fate when it broke */
    int r = submit_job(pool, &t, J_VALUE, 2, 3);
    if (r == 0)
        r = join_i64(t, NULL, PROMPTLY());
    CHECK_EQ(r, PLAIT_KILLED(SIGKILL));
    CHECK_EQ(runs(2), 0);
    CHECK_EQ(atomic_load(&fx.sh->inits), 2); /* the first worker's, its replacement's */
    close_pool(pool);
    fx_fini();
}

/* What a task prints goes out: a worker's stdout on a pipe or file is fully buffered,
 * and a worker ends with _exit (replaced, or at destroy), which drops the buffer: the
 * task's output was lost. */
static ssize_t prints_a_line(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    printf("task-output\n");
    return 0;
}

static ssize_t pool_printing_child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    plait_procpool_options o = {.processes = 1, .max_tasks = 1};
    plait_procpool *pool;
    if (plait_procpool_create(&pool, &o) < 0)
        return -1;
    for (int i = 0; i < 2; i++) { /* the first worker is replaced (max_tasks), the second
                                   * ends at destroy */
        plait_task t;
        void *res = NULL;
        if (plait_procpool_submit(pool, &t, prints_a_line, NULL, 0) < 0 ||
            plait_join(t, &res, plait_deadline_in(5 * PLAIT_SEC)) < 0)
            return -1;
        free(res);
    }
    return plait_procpool_destroy(pool) < 0 ? -1 : 0;
}

TEST(procpool_task_output_reaches_stdout)
{
    plait_process_options o = {.stdio = {PLAIT_STDIO_NULL, PLAIT_STDIO_PIPE, PLAIT_STDIO_INHERIT}};
    plait_pipes pipes;
    plait_task t;
    CHECK_EQ(plait_process_start(&t, pool_printing_child, NULL, 0, &o, &pipes), 0);
    char buf[256];
    size_t got = 0;
    for (;;) {
        ssize_t n = plait_read(pipes.out, buf + got, sizeof buf - 1 - got, SOON());
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    plait_close(pipes.out);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(got, 2 * strlen("task-output\n"));
}

/* Making a process pool makes no pipe and no socket (its notifications go through an
 * eventfd), so it leaves the program's SIGPIPE alone: plait ignores SIGPIPE only once it
 * has made or written a pipe or socket.  (Pool creation once set it to SIG_IGN, for the
 * program and every worker: a program's own write to a closed pipe, `prog | head`,
 * then went on with EPIPE instead of ending.)  In a child, whose SIGPIPE is its own;
 * plait ignores it once per process, which the child inherits, so this case runs
 * first, before any other makes a pipe. */
static ssize_t write_nothing(const void *a, size_t al, void *o, size_t oc)
{
    (void)a, (void)al, (void)o, (void)oc;
    return 0;
}

static int sigpipe_after_a_pool(void)
{
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    if (sa.sa_handler != SIG_DFL)
        return 10; /* a case before this one ignored it */
    plait_procpool *pool;
    if (plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}) != 0)
        return 11;
    plait_task t;
    void *v = NULL;
    if (plait_procpool_submit(pool, &t, write_nothing, NULL, 0) != 0 ||
        plait_join(t, &v, SOON()) != 0)
        return 12;
    free(v);
    sigaction(SIGPIPE, NULL, &sa);
    plait_procpool_destroy(pool);
    return sa.sa_handler == SIG_DFL ? 0 : 1;
}

/* Run fn in a forked child, which ends with what it returns: that must be 0. */
static void in_a_child(int (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st = reap_within(pid, 30);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

TEST(pool_create_leaves_sigpipe_alone)
{
    in_a_child(sigpipe_after_a_pool); /* 1: SIGPIPE was no longer at its default */
}

/* A replacement worker that cannot be forked for a moment (the process limit reached:
 * the worker that ended still counts until it is reaped, after its replacement is
 * forked) is forked again once it can be.  The pool once stayed short of it for good,
 * and with none left refused every task with -EAGAIN for ever.  While none is left, the
 * task that waited fails with -EAGAIN (nothing would run it), and submit refuses with
 * -EAGAIN until the retry has forked a worker.  In a child, under a user of its own
 * (root is not held to RLIMIT_NPROC). */
static ssize_t write_seven(const void *a, size_t al, void *o, size_t oc)
{
    (void)a, (void)al, (void)oc;
    int64_t v = 7;
    memcpy(o, &v, sizeof v);
    return sizeof v;
}

/* Submit write_seven and join it: 0 when its result is 7, else the failure. */
static int run_seven(plait_procpool *pool)
{
    plait_task t;
    int r = plait_procpool_submit(pool, &t, write_seven, NULL, 0);
    void *v = NULL;
    if (r == 0)
        r = plait_join(t, &v, SOON());
    plait_bytes *b = v;
    int64_t seven = 7;
    if (r == 0)
        r = b && b->len == sizeof seven && !memcmp(b->data, &seven, sizeof seven) ? 0 : -EPROTO;
    free(v);
    return r;
}

static int pool_after_a_process_limit(void)
{
    if (geteuid() == 0 && (setresgid(65534, 65534, 65534) != 0 ||
                           setresuid(65534, 65534, 65534) != 0))
        return 20;
    plait_procpool *pool;
    if (plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1,
                                                                .max_tasks = 1}) != 0)
        return 21;
    struct rlimit old, none;
    getrlimit(RLIMIT_NPROC, &old);
    none = (struct rlimit){.rlim_cur = 1, .rlim_max = old.rlim_max};
    if (setrlimit(RLIMIT_NPROC, &none) != 0)
        return 22;
    plait_task queued;
    if (plait_procpool_submit(pool, &queued, write_seven, NULL, 0) != 0) /* in the slot */
        return 23;
    int behind = run_seven(pool); /* waits for the worker, which ends after the first */
    if (behind != -EAGAIN && behind != 0) /* 0: it ran before the worker ended */
        return 24;
    void *v = NULL;
    if (plait_join(queued, &v, SOON()) != 0)
        return 25;
    free(v);
    if (setrlimit(RLIMIT_NPROC, &old) != 0)
        return 26;
    int r;
    int64_t give_up = plait_deadline_in(10 * PLAIT_SEC);
    while ((r = run_seven(pool)) == -EAGAIN && plait_now() < give_up) /* the retry's turn */
        nanosleep(&(struct timespec){.tv_nsec = 10 * PLAIT_MS}, NULL);
    for (int i = 0; r == 0 && i < 3; i++) /* and the pool works as before */
        r = run_seven(pool);
    plait_procpool_destroy(pool);
    if (r != 0)
        fprintf(stderr, "  after the limit was lifted: %d (%s)\n", r, plait_strerror(r));
    return r == 0 ? 0 : 27; /* 27: -EAGAIN for good */
}

TEST(replacement_fork_failure_is_not_for_good)
{
    in_a_child(pool_after_a_process_limit);
}

/* ======================================================================== */
/* Normal operation after the parent's own records (review 85)                */
/* ======================================================================== */

/* The stress scenarios below: each in a child of its own, with the fixtures, 40 s at
 * most. */
static void run_stress(void (*scenario)(void))
{
    fx_init();
    run_isolated(scenario, 40 * PLAIT_SEC);
    fx_fini();
}

/* Many tasks through one worker (4 slots: the ready ring wraps again and again) with an
 * initialiser and max_tasks = 1 (a replacement after every task), some withdrawn while
 * queued: every task either runs or is cancelled — none fails with -EPROTO (fail_passed
 * taking a healthy task for one the head skipped), and the pool is not broken. */
enum { CHURN = 300 };

static void one_worker_churn_scenario(void)
{
    int v = 7;
    plait_procpool_options o = {.processes = 1, .init = init_set, .init_arg = &v, .max_tasks = 1};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    static plait_task t[CHURN];
    static bool cancelled[CHURN];
    for (int i = 0; i < CHURN; i++) {
        CHECK_EQ(submit_job(pool, &t[i], J_VALUE, i, i), 0);
        cancelled[i] = i % 3 == 1 && plait_cancel(t[i]) == 0;
    }
    int eproto = 0, bad = 0;
    int64_t until = plait_deadline_in(30 * PLAIT_SEC);
    for (int i = 0; i < CHURN; i++) {
        int64_t val = 0;
        int r = join_i64(t[i], &val, until);
        if (r == -EPROTO)
            eproto++;
        else if (!(r == 0 && val == value_of(i)) && !(r == -ECANCELED && cancelled[i]))
            bad++, fprintf(stderr, "  task %d: %s\n", i, plait_strerror(r));
    }
    CHECK_EQ(eproto, 0);
    CHECK_EQ(bad, 0);
    int pids[4];
    CHECK_EQ(settled_pids(pool, pids, 1), 1);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_one_worker_churn_fails_nothing)
{
    run_stress(one_worker_churn_scenario);
}

/* A shutdown with PLAIT_POOL_CANCEL while a ring of one worker is full and more wait,
 * then a second pool round: queued tasks fail with -ECANCELED only. */
static void cancel_shutdown_small_ring_scenario(void)
{
    for (int round = 0; round < 20; round++) {
        plait_procpool_options o = {.processes = 1, .max_tasks = (unsigned)(round % 2)};
        plait_procpool *pool = make_pool(&o);
        if (!pool)
            return;
        plait_task t[40];
        for (int i = 0; i < 40; i++)
            CHECK_EQ(submit_job(pool, &t[i], J_BRIEF, i, 100), 0);
        for (int i = 0; i < 40; i += 5)
            (void)plait_cancel(t[i]);
        int joined = round > 10 ? round : -1; /* one joined before the shutdown */
        if (joined >= 0)
            CHECK_EQ(join_i64(t[joined], NULL, PROMPTLY()) == 0 || joined % 5 == 0, 1);
        CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
        for (int i = 0; i < 40; i++) {
            if (i == joined)
                continue;
            int r = join_i64(t[i], NULL, PROMPTLY());
            if (r != 0 && r != -ECANCELED) {
                fprintf(stderr, "  round %d task %d: %s\n", round, i, plait_strerror(r));
                CHECK(!"only 0 or -ECANCELED");
            }
        }
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
}

TEST(procpool_cancel_shutdown_small_ring)
{
    run_stress(cancel_shutdown_small_ring_scenario);
}

/* Crashes in a pool with an initialiser, joined from three threads at once (each
 * helping collect): every crash fails only its task, the others run, the pool never
 * breaks (a worker past its initialiser taken for one dying in it). */
enum { HELPED = 240, JOINERS = 3 };
static plait_task helped_t[HELPED];
static int helped_kind[HELPED];
static atomic_int helped_bad;

static void *helped_joiner(void *arg)
{
    int k = (int)(intptr_t)arg;
    int64_t until = plait_deadline_in(20 * PLAIT_SEC);
    for (int i = k; i < HELPED; i += JOINERS) {
        int64_t v = -1;
        int r = join_i64(helped_t[i], &v, until);
        bool ok = is_crash(helped_kind[i]) ? r == crash_code(helped_kind[i]) || TSAN_EXIT_OVERRIDDEN(r)
                                           : r == 0 && v == value_of(i);
        if (!ok) {
            fprintf(stderr, "  task %d (kind %d): %s\n", i, helped_kind[i], plait_strerror(r));
            atomic_fetch_add(&helped_bad, 1);
        }
    }
    return NULL;
}

static void init_crash_helped_scenario(void)
{
    int v = 5;
    plait_procpool_options o = {.processes = 2, .init = init_set, .init_arg = &v, .max_tasks = 3};
    plait_procpool *pool = make_pool(&o);
    if (!pool)
        return;
    atomic_store(&helped_bad, 0);
    for (int i = 0; i < HELPED; i++) {
        helped_kind[i] = i % 11 == 5 ? (i % 2 ? J_SIGKILL : J__EXIT3) : J_VALUE;
        CHECK_EQ(submit_job(pool, &helped_t[i], helped_kind[i], i, i), 0);
    }
    pthread_t th[JOINERS];
    for (int k = 0; k < JOINERS; k++)
        CHECK_EQ(pthread_create(&th[k], NULL, helped_joiner, (void *)(intptr_t)k), 0);
    for (int k = 0; k < JOINERS; k++)
        pthread_join(th[k], NULL);
    CHECK_EQ(atomic_load(&helped_bad), 0);
    plait_task after;
    CHECK_EQ(submit_job(pool, &after, J_INIT_VALUE, HELPED, 0), 0);
    int64_t got = 0;
    CHECK_EQ(join_i64(after, &got, PROMPTLY()), 0);
    CHECK_EQ(got, 5);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_init_crashes_helped_joins)
{
    run_stress(init_crash_helped_scenario);
}

/* A pool belongs to the process that made it: in a child of _Fork(), which runs no fork
 * handler, plait's cached pid was the parent's, so the owner check passed and the
 * submit touched the pool's memory, which is not in a child (MADV_DONTFORK): the child
 * crashed instead of -EPERM (failed first: killed by SIGSEGV; a review found it). */
TEST(a_pool_is_not_a_child_of_fork_without_handlers_own)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork: ThreadSanitizer's books are the parent's there");
    return;
#endif
    fx_init();
    plait_procpool *pool = make_pool_n(1);
    if (!pool) {
        fx_fini();
        return;
    }
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    pid_t pid = _Fork();
    if (pid == 0) {
        alarm(20);
        job j = {.kind = J_VALUE, .id = 1, .value = 1};
        plait_task t;
        _exit(plait_procpool_submit(pool, &t, job_fn, &j, sizeof j) == -EPERM ? 0 : 1);
    }
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), 0);
    close_pool(pool);
    fx_fini();
}

/* A task's child of fork() goes on as the task's code expects, with its own copy of the
 * task's argument and result rooms: what it writes there is its own.  Its rooms were
 * the slot's shared memory, so a child that wrote its result late (after the task had
 * returned) wrote it into the result of a later task the slot carried, reported a
 * success (a helper's audit).  Task A forks a child that reports the argument it sees
 * and then writes its marker into its result without pause until told to stop; each
 * task B after it writes its own result and watches it a while: none may change. */
static int fc_seen[2], fc_stop[2];

static ssize_t fc_forks_a_writer(const void *arg, size_t len, void *out, size_t cap)
{
    if (len != 1 || cap < sizeof(uint32_t))
        return -EINVAL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        char seen = *(const char *)arg;
        if (write(fc_seen[1], &seen, 1) != 1)
            return 0;
        char c;
        while (read(fc_stop[0], &c, 1) < 0 && errno == EAGAIN)
            memcpy(out, &(uint32_t){0xBAD}, sizeof(uint32_t));
        return 0; /* from the task function: it ends here (_exit(0)) */
    }
    memcpy(out, &(uint32_t){0xA}, sizeof(uint32_t));
    return sizeof(uint32_t);
}

static ssize_t fc_watches_its_result(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    if (cap < sizeof(uint32_t))
        return -EINVAL;
    memcpy(out, &(uint32_t){0xB}, sizeof(uint32_t));
    int64_t until = plait_now() + 100 * PLAIT_MS; /* (the writer changes it at once) */
    uint32_t now = 0xB;
    while (now == 0xB && plait_now() < until)
        memcpy(&now, out, sizeof now);
    return sizeof(uint32_t);
}

/* The one uint32_t a task's result carries; 0 where it carries none. */
static uint32_t fc_result(plait_task t)
{
    void *v = NULL;
    uint32_t r = 0;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    plait_bytes *b = v;
    if (b && b->len == sizeof r)
        memcpy(&r, b->data, sizeof r);
    free(b);
    return r;
}

TEST(a_task_s_fork_child_writes_only_its_own_copy_of_the_rooms)
{
    CHECK_EQ(pipe(fc_seen), 0);
    CHECK_EQ(pipe2(fc_stop, O_NONBLOCK), 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}), 0);
    plait_task a;
    CHECK_EQ(plait_procpool_submit(pool, &a, fc_forks_a_writer, "A", 1), 0);
    CHECK_EQ(fc_result(a), 0xAu);
    char seen = 0;
    CHECK_EQ(read(fc_seen[0], &seen, 1), 1); /* the child runs, and writes */
    CHECK_EQ(seen, 'A');
    for (int i = 0; i < 8; i++) { /* (every slot of the pool in turn: 4) */
        plait_task b;
        CHECK_EQ(plait_procpool_submit(pool, &b, fc_watches_its_result, NULL, 0), 0);
        CHECK_EQ(fc_result(b), 0xBu);
    }
    CHECK_EQ(write(fc_stop[1], "x", 1), 1);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    for (int i = 0; i < 2; i++) {
        close(fc_seen[i]);
        close(fc_stop[i]);
    }
}

/* A child of _Fork() (no fork handlers: none of the pool's memory) that forks in turn:
 * the worker's handler, still thinking a task ran there, copied the rooms from memory
 * that child does not have (SIGSEGV; a review of the rooms' copy). */
static ssize_t fc_fork_without_handlers_forks(const void *arg, size_t len, void *out,
                                              size_t cap)
{
    (void)arg, (void)len;
    if (cap < sizeof(int))
        return -EINVAL;
    pid_t child = _Fork();
    if (child < 0)
        return -errno;
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0)
            _exit(42);
        int st = 0;
        _exit(grandchild > 0 && waitpid(grandchild, &st, 0) == grandchild && WIFEXITED(st)
                  ? WEXITSTATUS(st)
                  : 9);
    }
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    memcpy(out, &code, sizeof code);
    return sizeof code;
}

TEST(a_task_s_child_of_fork_without_handlers_may_fork)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork: ThreadSanitizer's books are the parent's there");
    return;
#endif
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, fc_fork_without_handlers_forks, NULL, 0), 0);
    CHECK_EQ(fc_result(t), 42u); /* (139: killed by SIGSEGV) */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* A fork while a task runs makes its child rooms of its own without reading the task's
 * whole rooms: the first version copied them, some 256 MiB of the pool's shared memory
 * read in (and kept in the worker) for one fork here, and seconds of copying for a
 * pool of gigabyte rooms (a review of the rooms' copy).  The task says how much of the
 * pool's memory its worker has in after a fork, in KiB. */
static ssize_t fc_forks_once(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    if (cap < sizeof(uint32_t))
        return -EINVAL;
    long before = status_kb("RssShmem");
    pid_t child = fork();
    if (child < 0)
        return -errno;
    if (child == 0)
        _exit(0);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    long after = status_kb("RssShmem");
    uint32_t grew = before < 0 || after < 0 ? UINT32_MAX : (uint32_t)(after - before);
    memcpy(out, &grew, sizeof grew);
    return sizeof grew;
}

TEST(a_fork_in_a_task_reads_none_of_its_rooms)
{
    plait_procpool *pool;
    size_t room = (size_t)128 << 20;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){
                                              .processes = 1, .arg_max = room, .result_max = room}),
             0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, fc_forks_once, NULL, 0), 0);
    uint32_t grew = fc_result(t);
    CHECK(grew < 32 * 1024); /* KiB: not the rooms' 256 MiB */
    if (grew >= 32 * 1024)
        fprintf(stderr, "  the worker's shared memory grew %u KiB in a fork\n", grew);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

RUN_TESTS(CASE(pool_create_leaves_sigpipe_alone), /* first: see there */
          CASE(a_task_s_fork_child_writes_only_its_own_copy_of_the_rooms),
          CASE(a_task_s_child_of_fork_without_handlers_may_fork),
          CASE(a_fork_in_a_task_reads_none_of_its_rooms),
          CASE(a_pool_is_not_a_child_of_fork_without_handlers_own),
          CASE(procpool_bad_input), CASE(procpool_used_from_a_worker_is_refused),
          CASE(replacement_fork_failure_is_not_for_good),
          CASE(join_after_destroy_touches_no_pool), CASE(two_threads_join_copies_of_one_task),
          CASE(imap_from_a_forked_child_is_refused),
          CASE(worker_killed_mid_publish_completes_once),
          CASE(procpool_task_scribbling_on_its_result_len_fails_alone),
          CASE(procpool_task_scribbling_on_the_done_ring_fails_alone),
          CASE(procpool_task_scribbling_on_the_pool_lock_hangs_nothing),
          CASE(procpool_task_scribbling_on_init_error_breaks_nothing),
          CASE(procpool_task_scribbling_on_the_ready_ring_loses_nothing),
          CASE(procpool_task_scribbling_on_helpers_asleep_strands_nothing),
          CASE(procpool_task_scribbling_on_stop_forks_no_loop),
          CASE(procpool_task_scribbling_on_init_done_breaks_nothing),
          CASE(procpool_task_scribbling_on_its_worker_pid_misleads_nothing),
          CASE(procpool_task_scribbling_on_the_ready_head_loses_nothing),
          CASE(procpool_lock_naming_an_initialising_worker_breaks_nothing),
          CASE(replacement_dying_in_its_initialiser_breaks_the_pool),
          CASE(procpool_submit_many),
          CASE(procpool_shutdown_cancel_after_join),
          CASE(procpool_runs_in_other_processes), CASE(procpool_join_from_coroutine),
          CASE(procpool_wait_any_and_completed), CASE(procpool_crash_fails_only_that_task),
          CASE(procpool_crash_stress), CASE(procpool_task_timeout), CASE(procpool_max_tasks),
          CASE(procpool_init), CASE(procpool_init_fails),
          CASE(procpool_init_fails_reaped_by_kernel),
          CASE(procpool_init_fails_lock_holder_killed),
          CASE(procpool_replacement_init_fails_reaped_by_kernel),
          CASE(procpool_broken_pool_refuses_work), CASE(procpool_cancel_queued),
          CASE(procpool_cancel_running), CASE(procpool_cancel_racing_completion),
          CASE(procpool_shutdown_drain),
          CASE(procpool_submits_racing_a_drain_are_refused_or_run),
          CASE(procpool_submits_racing_a_cancel_are_refused_or_settled),
          CASE(procpool_shutdown_cancel), CASE(procpool_shutdown_timeout_then_cancel),
          CASE(procpool_map_results), CASE(procpool_map_item_errors),
          CASE(procpool_map_item_failing_with_etimedout),
          CASE(procpool_map_crash_fails_its_chunk), CASE(procpool_map_deadline),
          CASE(procpool_map_keeps_its_deadline_after_a_refused_submit),
          CASE(procpool_map_cancelled_keeps_own_ecanceled),
          CASE(procpool_imap_ordered), CASE(procpool_imap_unordered),
          CASE(procpool_imap_chunk_timing_out),
          CASE(procpool_imap_destroy_early),
          CASE(procpool_destroy_refused_while_an_iterator_lives), CASE(procpool_imap_after_shutdown),
          CASE(procpool_join_of_withdrawn_task_is_prompt), CASE(procpool_map_sizes_that_wrap),
          CASE(procpool_map_short_results_are_zero_filled),
          CASE(procpool_map_results_aligned),
          CASE(procpool_map_shut_down_under_it_returns_first_failure),
          CASE(procpool_create_out_of_descriptors),
          CASE(procpool_replacing_a_worker_keeps_a_queue_sender),
          CASE(procpool_replacing_a_worker_reaped_by_the_kernel_keeps_a_queue_sender),
          CASE(procpool_task_whose_fork_returns_too),
          CASE(procpool_map_item_whose_fork_returns_too),
          CASE(procpool_initialiser_whose_fork_returns_too),
          CASE(procpool_cancel_ends_an_initialiser_that_never_returns),
          CASE(procpool_task_closing_the_pools_descriptor),
          CASE(procpool_task_closing_the_pools_descriptor_with_a_joiner_asleep),
          CASE(procpool_workers_reaped_by_the_kernel),
          CASE(procpool_task_output_reaches_stdout), CASE(procpool_one_worker_churn_fails_nothing),
          CASE(procpool_cancel_shutdown_small_ring),
          CASE(procpool_init_crashes_helped_joins),
          CASE(procpool_nothing_leaked))
