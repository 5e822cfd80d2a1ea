/* test_pool_help_floor.c — a helping wait at its stack floor decides once whether it
 * helps: it keeps no push wake-up it cannot use (failed first; review 111).
 *
 * Built with -Wl,--wrap=plait__futex_wait (to see the pool's workers asleep) and
 * -Wl,--wrap=plait__worker_help (to see where on its stack a helping wait starts). */
#include "helpers.h"

#include "../src/internal.h"

#include <alloca.h>
#include <pthread.h>
#include <string.h>

int __real_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __real_plait__worker_help(plait__waiter *w, int64_t deadline);
int __wrap_plait__worker_help(plait__waiter *w, int64_t deadline);

/* ---- the helping wait's stack floor, seen from two frames ---- */

static struct {
    plait_pool *pool;
    atomic_int parked[2];        /* "gp-0", "gp-1" in their futex wait now */
    atomic_uintptr_t help_frame; /* the last helping wait's frame (the wrapper's) */
    atomic_int in_help;
    atomic_int lost;             /* a push's task not run within its deadline */
    plait_task late;             /* that task */
} gp;

static int gp_index(void)
{
    const char *name = plait__tls_thread_name;
    return name && strncmp(name, "gp-", 3) == 0 && (name[3] == '0' || name[3] == '1') &&
                   !name[4]
               ? name[3] - '0'
               : -1;
}

int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    int i = gp_index();
    if (i >= 0)
        atomic_store(&gp.parked[i], 1);
    int r = __real_plait__futex_wait(word, expected, deadline);
    if (i >= 0)
        atomic_store(&gp.parked[i], 0);
    return r;
}

int __wrap_plait__worker_help(plait__waiter *w, int64_t deadline)
{
    if (gp_index() >= 0) {
        atomic_store(&gp.help_frame, (uintptr_t)__builtin_frame_address(0));
        atomic_store(&gp.in_help, 1);
    }
    return __real_plait__worker_help(w, deadline);
}

static void *nothing(void *arg) { return arg; }

/* The thread the deep task waits on: once the helping wait has started and both
 * workers sleep, a task is pushed from outside; some worker must run it. */
static void *pusher(void *arg)
{
    (void)arg;
    wait_for(&gp.in_help);
    int64_t until = SOON();
    while (!(atomic_load(&gp.parked[0]) && atomic_load(&gp.parked[1])) && plait_now() < until)
        sched_yield();
    plait_task b;
    CHECK_EQ(plait_pool_submit(gp.pool, &b, nothing, NULL), 0);
    int r = plait_join(b, NULL, plait_deadline_in(PLAIT_SEC));
    if (r != 0)
        atomic_store(&gp.lost, 1);
    if (r == -ETIMEDOUT) /* the worker that was woken runs it once its wait is over */
        gp.late = b;
    return NULL;
}

/* Join the pusher with n bytes more of the stack in use. */
static __attribute__((noinline)) int join_at(size_t n)
{
    volatile char *p = alloca(n + 1);
    p[0] = 0;
    atomic_store(&gp.in_help, 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, pusher, NULL, NULL), 0);
    int r = plait_join(t, NULL, SOON());
    p[n] = 0;
    return r;
}

/* The calling worker's stack floor, as pool.c sets it: a quarter of the stack above its
 * end, at least 256 KiB of a large one. */
static uintptr_t help_floor_here(void)
{
    pthread_attr_t attr;
    void *stack;
    size_t size;
    CHECK_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
    CHECK_EQ(pthread_attr_getstack(&attr, &stack, &size), 0);
    pthread_attr_destroy(&attr);
    size_t reserve = size / 4;
    if (reserve < 256 * 1024)
        reserve = size / 2 < 256 * 1024 ? size / 2 : 256 * 1024;
    CHECK(reserve > 64 * 1024);
    return (uintptr_t)stack + reserve;
}

static void *scan_the_floor(void *arg)
{
    (void)arg;
    uintptr_t floor = help_floor_here();
    /* where a helping wait starts with nothing more in use */
    CHECK_EQ(join_at(0), 0);
    uintptr_t top = atomic_load(&gp.help_frame);
    CHECK(top > floor + 4096);
    int tries = 0;
    for (intptr_t at = -1024; at <= 1024 && !atomic_load(&gp.lost); at += 16) {
        /* the helping wait's frame at floor + at; twice, as the push's wake-up goes to
         * each sleeper in turn */
        for (int k = 0; k < 2 && !atomic_load(&gp.lost); k++) {
            CHECK_EQ(join_at(top - floor - (size_t)at), 0);
            tries++;
        }
    }
    if (atomic_load(&gp.lost))
        fprintf(stderr, "  a push's task was not run (helping frame %+ld from the floor)\n",
                (long)(atomic_load(&gp.help_frame) - floor));
    fprintf(stderr, "  %d helping waits around the floor\n", tries);
    CHECK(tries > 0);
    return NULL;
}

/* find_work and plait__worker_help each asked help_too_deep with their own frame:
 * find_work's is lower.  A wait whose plait__worker_help frame was just above the floor
 * while find_work's was below it parked as a wait that helps (sleeping = 1: a push's
 * wake-up may pick it), but its looks took only its own deque.  Woken for a push from
 * outside, it did not run the task and did not pass the wake-up on (`owed` was cleared
 * by the look), then spun (the task visible, never taken) until its own signal, while
 * the pool's other worker slept on: the pushed task waited (here: past 1 s). */
TEST(a_wait_at_the_floor_keeps_no_push_wake_up_it_cannot_use)
{
    CHECK_EQ(plait_pool_create(&gp.pool, &(plait_pool_options){.threads = 2, .name = "gp"}), 0);
    plait_task a;
    CHECK_EQ(plait_pool_submit(gp.pool, &a, scan_the_floor, NULL), 0);
    CHECK_EQ(plait_join(a, NULL, plait_deadline_in(50 * PLAIT_SEC)), 0);
    CHECK_EQ(atomic_load(&gp.lost), 0);
    if (atomic_load(&gp.lost))
        CHECK_EQ(plait_join(gp.late, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(gp.pool), 0);
}

/* ---- past the floor, a wait still runs what its own task pushed ---- */

/* A one-worker pool's task T came with five others in one batch from the injection
 * queue: they lie in the worker's deque below T's pushes.  T's first wait, shallow,
 * runs them; then T, deep in its stack, queues a child and joins it.  The child is T's
 * own, and nobody else can run it: the deep wait must.  (It was queued below the mark
 * T began with, where the deep wait took nothing: it slept until its deadline, and for
 * ever with none; found by a review.) */
static struct {
    plait_pool *pool;
    plait_event *go;
    atomic_int fillers_run;
} ow;

static void *wait_for_go(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_event_wait(ow.go, SOON()), 0);
    return NULL;
}

static void *filler(void *arg)
{
    atomic_fetch_add(&ow.fillers_run, 1);
    return arg;
}

/* the thread T's shallow wait joins: it ends once the fillers have run (T's wait runs
 * them, as nobody else can) */
static void *until_the_fillers_ran(void *arg)
{
    (void)arg;
    int64_t until = SOON();
    while (atomic_load(&ow.fillers_run) < 5 && plait_now() < until)
        sched_yield();
    return NULL;
}

static __attribute__((noinline)) int join_a_child_past(uintptr_t floor)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    size_t n = here - floor + 32 * 1024; /* the wait's frames lie past the floor */
    volatile char *p = alloca(n + 1);
    p[0] = 0;
    plait_task child;
    CHECK_EQ(plait_pool_submit(ow.pool, &child, nothing, (void *)7), 0);
    void *v = NULL;
    int r = plait_join(child, &v, plait_deadline_in(2 * PLAIT_SEC));
    CHECK_EQ(r, 0);
    CHECK(r != 0 || v == (void *)7);
    if (r == -ETIMEDOUT) { /* (the pool's destroy would wait for it for ever) */
        CHECK_EQ(plait_cancel(child), 0);
        CHECK_EQ(plait_join(child, NULL, SOON()), -ECANCELED);
    }
    p[n] = 0;
    return r;
}

static void *task_t(void *arg)
{
    (void)arg;
    plait_task th;
    CHECK_EQ(plait_thread_start(&th, until_the_fillers_ran, NULL, NULL), 0);
    CHECK_EQ(plait_join(th, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&ow.fillers_run), 5);
    join_a_child_past(help_floor_here());
    return NULL;
}

TEST(a_deep_wait_runs_its_own_child_after_running_its_batch)
{
    CHECK_EQ(plait_event_create(&ow.go), 0);
    CHECK_EQ(plait_pool_create(&ow.pool, &(plait_pool_options){.threads = 1}), 0);
    plait_task blocker, t, fillers[5];
    CHECK_EQ(plait_pool_submit(ow.pool, &blocker, wait_for_go, NULL), 0);
    /* T and the fillers wait in the injection queue while the worker is held */
    CHECK_EQ(plait_pool_submit(ow.pool, &t, task_t, NULL), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(plait_pool_submit(ow.pool, &fillers[i], filler, NULL), 0);
    CHECK_EQ(plait_event_set(ow.go), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_join(blocker, NULL, SOON()), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(plait_join(fillers[i], NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(ow.pool), 0);
    CHECK_EQ(plait_event_destroy(ow.go), 0);
}

RUN_TESTS(CASE(a_wait_at_the_floor_keeps_no_push_wake_up_it_cannot_use),
          CASE(a_deep_wait_runs_its_own_child_after_running_its_batch))
