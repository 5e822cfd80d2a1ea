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

static void *scan_the_floor(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    void *stack;
    size_t size;
    CHECK_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
    CHECK_EQ(pthread_attr_getstack(&attr, &stack, &size), 0);
    pthread_attr_destroy(&attr);
    /* pool.c's floor: a quarter of the stack, at least 256 KiB of a large one */
    size_t reserve = size / 4;
    if (reserve < 256 * 1024)
        reserve = size / 2 < 256 * 1024 ? size / 2 : 256 * 1024;
    uintptr_t floor = (uintptr_t)stack + reserve;
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

RUN_TESTS(CASE(a_wait_at_the_floor_keeps_no_push_wake_up_it_cannot_use))
