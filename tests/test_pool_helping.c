/* test_pool_helping.c — a pool task's helping wait: not past its stack, and not
 * keeping a push's wake-up it cannot use (each case failed first; review 108).
 *
 * Built with -Wl,--wrap=plait__futex_wait, --wrap=plait__futex_wake and
 * --wrap=sched_yield, to see the pool's workers go to sleep, be woken and yield, and
 * --wrap=plait__waiter_signal, to hold a waker between its claim of a wait and its
 * signal. */
#include "helpers.h"

#include "../src/internal.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

int __real_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);

static struct {
    plait_pool *pool;
    pthread_t worker;
    atomic_int armed, worker_slept, release, started, finished, bad;
    plait_task h;
} dn;

void __real_plait__futex_wake(atomic_uint *word, int n);
void __wrap_plait__futex_wake(atomic_uint *word, int n);
int __real_sched_yield(void);
int __wrap_sched_yield(void);
void __real_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);

void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);

/* the claimed-wait case's workers "cw-0" and "cw-1": the word each sleeps on, and
 * whether it is in its futex wait now */
static struct {
    _Atomic(atomic_uint *) word[2];
    atomic_int parked[2];
    atomic_int first_woken;      /* the worker a wake-up reached first, or -1 */
    atomic_int hold_armed, held, release;
    atomic_int yield_watch, yielded; /* yield_watch: 1 + the worker watched */
} cw_w;

static int cw_index(void)
{
    const char *name = plait__tls_thread_name;
    return name && strncmp(name, "cw-", 3) == 0 && (name[3] == '0' || name[3] == '1') && !name[4]
               ? name[3] - '0'
               : -1;
}

int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    if (atomic_load(&dn.armed) && pthread_equal(pthread_self(), dn.worker))
        atomic_store(&dn.worker_slept, 1);
    int i = cw_index();
    if (i < 0)
        return __real_plait__futex_wait(word, expected, deadline);
    atomic_store(&cw_w.word[i], word);
    atomic_store(&cw_w.parked[i], 1);
    int r = __real_plait__futex_wait(word, expected, deadline);
    atomic_store(&cw_w.parked[i], 0);
    return r;
}

void __wrap_plait__futex_wake(atomic_uint *word, int n)
{
    for (int i = 0; i < 2; i++)
        if (word && word == atomic_load(&cw_w.word[i])) {
            int none = -1;
            atomic_compare_exchange_strong(&cw_w.first_woken, &none, i);
        }
    __real_plait__futex_wake(word, n);
}

/* the helper, woken, yields first in await_claimed_signal: past its pass-on */
int __wrap_sched_yield(void)
{
    int watch = atomic_load(&cw_w.yield_watch);
    if (watch && cw_index() == watch - 1)
        atomic_store(&cw_w.yielded, 1);
    return __real_sched_yield();
}

void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later)
{
    if (atomic_load(&cw_w.hold_armed) && w->what && strcmp(w->what, "completed") == 0 &&
        atomic_exchange(&cw_w.hold_armed, 0)) {
        atomic_store(&cw_w.held, 1);
        while (!atomic_load(&cw_w.release))
            sched_yield();
    }
    __real_plait__waiter_signal(w, status, index, later);
}

static void *dn_record(void *p)
{
    dn.worker = pthread_self();
    return p;
}

/* How long the nesting may take: under ThreadSanitizer each nested task's frames cost
 * page faults of their shadow too, and the 4,400 tasks to the floor took 7 s alone and
 * over 10 s (the old bound) beside the rest of the suite on two CPUs. */
#define DN_BOUND() plait_deadline_in((CHECK_SANITIZED ? 100 : 30) * PLAIT_SEC)

static void *dn_h(void *p)
{
    int64_t until = DN_BOUND();
    while (!atomic_load(&dn.release) && plait_now() < until)
        sched_yield();
    return p;
}

/* waits on H, a thread, not on any task of the pool: the helping wait runs the next
 * queued task on top of this one */
static void *dn_task(void *p)
{
    atomic_fetch_add(&dn.started, 1);
    if (plait_wait_any(&dn.h, 1, DN_BOUND()) != 0)
        atomic_fetch_add(&dn.bad, 1);
    atomic_fetch_add(&dn.finished, 1);
    return p;
}

/* A helping wait runs any queued task on top of the waiting one, which runs another
 * in its own wait, and so on: with many queued tasks that each wait (here on a plain
 * plait thread, nothing the waiting tasks do themselves, not a parent), one worker's
 * stack grew by a task's frames for each (about a kilobyte and a half each, more under
 * ASan) until it overflowed: SIGSEGV at some 5,000 tasks on an 8 MiB stack.  A wait
 * that would help with the stack nearly used up now takes only its own deque's tasks
 * (its own children, for fork-join) and otherwise sleeps until its own signal. */
static void nest_waiting_tasks(plait_fn task, int tasks)
{
    memset(&dn, 0, sizeof dn);
    CHECK_EQ(plait_pool_create(&dn.pool, &(plait_pool_options){.threads = 1, .name = "dn"}), 0);
    plait_task rec;
    CHECK_EQ(plait_pool_submit(dn.pool, &rec, dn_record, NULL), 0);
    CHECK_EQ(plait_join(rec, NULL, SOON()), 0);
    CHECK_EQ(plait_thread_start(&dn.h, dn_h, NULL, NULL), 0);
    atomic_store(&dn.armed, 1);
    for (int i = 0; i < tasks; i++)
        CHECK_EQ(plait_pool_submit(dn.pool, NULL, task, NULL), 0);
    /* the worker sleeps in the innermost wait once it may nest no further */
    int64_t until = DN_BOUND();
    while (!atomic_load(&dn.worker_slept) && atomic_load(&dn.started) < tasks &&
           plait_now() < until)
        sched_yield();
    fprintf(stderr, "nested %d waiting tasks before the worker slept\n", atomic_load(&dn.started));
    CHECK(atomic_load(&dn.worker_slept));
    atomic_store(&dn.release, 1);
    until = DN_BOUND();
    while (atomic_load(&dn.finished) < tasks && plait_now() < until)
        sched_yield();
    CHECK_EQ(atomic_load(&dn.finished), tasks);
    CHECK_EQ(atomic_load(&dn.bad), 0);
    CHECK_EQ(plait_join(dn.h, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(dn.pool), 0);
}

TEST(helping_waits_do_not_nest_unrelated_tasks_past_the_stack)
{
    nest_waiting_tasks(dn_task, 100000);
}

/* The same with tasks of large frames (a solver's scratch arrays).  Past the floor a
 * wait took what its own deque held, and that was the rest of a batch its worker had
 * carried there from the queue of outside submissions, up to 63 tasks as unrelated
 * as the rest: 63 frames of 160 KiB are 10 MiB, past the 2 MiB kept below the floor
 * (SIGSEGV; session 50's pool audit).  Past the floor a wait now takes only what its
 * own task pushed. */
enum { DN_BIG_FRAME = 160 * 1024 };
static void *dn_big_task(void *p)
{
    volatile char frame[DN_BIG_FRAME]; /* live across the wait, touched page by page from
                                        * the top, as the stack grows */
    for (size_t i = DN_BIG_FRAME; i > 0; i -= 4096)
        frame[i - 1] = 1;
    void *r = dn_task(p);
    (void)frame[0]; /* (read after the wait: the frame is live across it) */
    return r;
}

TEST(helping_waits_do_not_nest_a_batch_of_large_frames_past_the_stack)
{
    nest_waiting_tasks(dn_big_task, 300);
}

static struct {
    plait_pool *pool;
    atomic_int x_go, h_index, h_joining, h_joined, p_ran;
    plait_task x;
    plait_event *e;
    int join_r;
} cw;

static void *cw_x(void *p)
{
    int64_t until = SOON();
    while (!atomic_load(&cw.x_go) && plait_now() < until)
        sched_yield();
    return p;
}

static void *cw_h(void *p)
{
    atomic_store(&cw.h_index, cw_index());
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_add(set, cw.x), 0);
    atomic_store(&cw.h_joining, 1);
    plait_task got;
    cw.join_r = plait_completed_next(set, &got, SOON());
    if (cw.join_r == 0)
        CHECK_EQ(plait_join(got, NULL, SOON()), 0);
    CHECK_EQ(plait_completed_destroy(set), 0);
    atomic_store(&cw.h_joined, 1);
    /* then a wait that runs no task: this worker looks for none until it is over */
    plait_event_wait(cw.e, SOON());
    return p;
}

static void *cw_p(void *p)
{
    atomic_store(&cw.p_ran, 1);
    return p;
}

/* A push's wake-up taken by a helping worker whose wait had just been claimed (a waker
 * decided it, its signal still on its way) was spent: the helper went back to its task
 * (await_claimed_signal) without looking for work and without passing the wake-up on,
 * so the pushed task waited, with another worker asleep, until the helper's task was
 * done.  The pass-on covered a wait already signalled or past its deadline, not one
 * only claimed.  Two workers: H helps in a wait for thread X (plait_completed_next),
 * the other sleeps; X's completion claims H's wait and is held before its signal
 * (--wrap=plait__waiter_signal, as in test_pool_late_helper);
 * a task P submitted then wakes one of the two.  Where it woke H (seen through
 * --wrap=plait__futex_wake; the round is tried again where it woke the other), P must
 * still run while H's task blocks afterwards (in an event wait, which runs no task). */
TEST(push_wake_not_spent_on_helper_whose_wait_is_claimed)
{
    CHECK_EQ(plait_pool_create(&cw.pool, &(plait_pool_options){.threads = 2, .name = "cw"}), 0);
    bool tried = false;
    for (int round = 0; round < 40 && !tried; round++) {
        atomic_store(&cw.x_go, 0);
        atomic_store(&cw.h_joining, 0);
        atomic_store(&cw.h_joined, 0);
        atomic_store(&cw.p_ran, 0);
        atomic_store(&cw_w.held, 0);
        atomic_store(&cw_w.release, 0);
        if (round & 1) { /* shifts the workers wake-ups look at first (wake_cursor) */
            plait_task n;
            CHECK_EQ(plait_pool_submit(cw.pool, &n, cw_p, NULL), 0);
            CHECK_EQ(plait_join(n, NULL, SOON()), 0);
            atomic_store(&cw.p_ran, 0);
        }
        CHECK_EQ(plait_event_create(&cw.e), 0);
        CHECK_EQ(plait_thread_start(&cw.x, cw_x, NULL, NULL), 0);
        plait_task h, p;
        CHECK_EQ(plait_pool_submit(cw.pool, &h, cw_h, NULL), 0);
        int64_t until = SOON();
        while (!atomic_load(&cw.h_joining) && plait_now() < until)
            sched_yield();
        int hi = atomic_load(&cw.h_index);
        CHECK(hi == 0 || hi == 1);
        /* both workers asleep: H in its helping wait, the other idle (seen so once: a
         * look after that could find one between a futex wait that returned, the word
         * having moved, and its next; qemu-user's CI run did) */
        until = SOON();
        bool both_parked;
        while (!(both_parked = atomic_load(&cw_w.parked[0]) && atomic_load(&cw_w.parked[1])) &&
               plait_now() < until)
            sched_yield();
        CHECK(both_parked);
        atomic_store(&cw_w.hold_armed, 1);
        atomic_store(&cw.x_go, 1); /* X ends: its completion claims H's wait, and is held */
        until = SOON();
        while (!atomic_load(&cw_w.held) && plait_now() < until)
            sched_yield();
        CHECK(atomic_load(&cw_w.held));
        atomic_store(&cw_w.first_woken, -1);
        atomic_store(&cw_w.yielded, 0);
        atomic_store(&cw_w.yield_watch, 1 + hi);
        CHECK_EQ(plait_pool_submit(cw.pool, &p, cw_p, NULL), 0);
        /* (the first woken: H may have passed the wake-up on by now) */
        bool woke_h = atomic_load(&cw_w.first_woken) == hi;
        if (woke_h) { /* H decides on passing the wake-up on before it yields */
            until = SOON();
            while (!atomic_load(&cw_w.yielded) && plait_now() < until)
                sched_yield();
            CHECK(atomic_load(&cw_w.yielded));
        }
        atomic_store(&cw_w.yield_watch, 0);
        atomic_store(&cw_w.release, 1);
        until = SOON();
        while (!atomic_load(&cw.h_joined) && plait_now() < until)
            sched_yield();
        CHECK_EQ(cw.join_r, 0);
        if (woke_h) {
            tried = true;
            /* H's task now blocks; the other worker must have been woken for P */
            until = plait_deadline_in(2 * PLAIT_SEC);
            while (!atomic_load(&cw.p_ran) && plait_now() < until)
                sched_yield();
            CHECK(atomic_load(&cw.p_ran));
        }
        CHECK_EQ(plait_event_set(cw.e), 0);
        CHECK_EQ(plait_join(h, NULL, SOON()), 0);
        CHECK_EQ(plait_join(p, NULL, SOON()), 0);
        CHECK_EQ(plait_event_destroy(cw.e), 0);
    }
    if (!tried)
        CHECK_SKIP("the push never woke the helper first");
    CHECK_EQ(plait_pool_destroy(cw.pool), 0);
}

/* A helping wait past the stack floor sleeps until its own signal, leaving the pool's
 * count of active workers; it left its deque's private tasks unpublished, and a worker
 * that went idle after it saw no active worker, so no fence and no look at private
 * work (pool.c, park), and slept: the private task stayed there until the deep wait
 * ended, for ever when that wait was for it (session 51's deque audit).  Two workers
 * "cw": B holds one busy; T on the other pushes D (public: the public part is empty),
 * A and J (private: no worker is idle), joins J, which takes 6.6 MB of the 8 MiB stack
 * and joins A, past the floor; B ends once T's worker sleeps, runs D and goes idle.  A
 * must run.  (Only the split deque, x86-64 with membarrier, has private tasks; elsewhere
 * the case passes as it is.) */
static struct {
    atomic_int busy_index, a_ran, j_joining;
    plait_task a;
} dp;

static void *dp_busy(void *p)
{
    int me = cw_index();
    atomic_store(&dp.busy_index, 1 + me);
    int64_t until = SOON();
    while (!(me >= 0 && atomic_load(&dp.j_joining) && atomic_load(&cw_w.parked[1 - me])) &&
           plait_now() < until)
        sched_yield(); /* until the other worker sleeps in its deep wait */
    return p;
}

static void *dp_nothing(void *p) { return p; }

static void *dp_a(void *p)
{
    atomic_store(&dp.a_ran, 1);
    return p;
}

static __attribute__((noinline)) int dp_join_a(volatile char *frame)
{
    frame[0] = 1;
    atomic_store(&dp.j_joining, 1);
    return plait_join(dp.a, NULL, plait_deadline_in(2 * PLAIT_SEC));
}

enum { DP_FRAME = 6600 * 1024 }; /* past three quarters of a worker's 8 MiB stack */

static void *dp_j(void *p)
{
    (void)p;
    volatile char frame[DP_FRAME];
    for (size_t i = DP_FRAME; i > 0; i -= 4096)
        frame[i - 1] = 1; /* page by page from the top, as the stack grows */
    return PLAIT_FAIL(dp_join_a(frame)); /* (0: NULL) */
}

static void *dp_t(void *p)
{
    int64_t until = SOON();
    while (!atomic_load(&dp.busy_index) && plait_now() < until)
        sched_yield();
    plait_task j;
    CHECK_EQ(plait_pool_submit(cw.pool, NULL, dp_nothing, NULL), 0);
    CHECK_EQ(plait_pool_submit(cw.pool, &dp.a, dp_a, NULL), 0);
    CHECK_EQ(plait_pool_submit(cw.pool, &j, dp_j, NULL), 0);
    CHECK_EQ(plait_join(j, NULL, SOON()), 0); /* its join of A */
    if (!atomic_load(&dp.a_ran))
        CHECK_EQ(plait_join(dp.a, NULL, SOON()), 0);
    return p;
}

TEST(a_deep_helping_wait_publishes_its_private_tasks)
{
    memset(&dp, 0, sizeof dp);
    memset(&cw_w, 0, sizeof cw_w);
    CHECK_EQ(plait_pool_create(&cw.pool, &(plait_pool_options){.threads = 2, .name = "cw"}), 0);
    plait_task busy, t;
    CHECK_EQ(plait_pool_submit(cw.pool, &busy, dp_busy, NULL), 0);
    CHECK_EQ(plait_pool_submit(cw.pool, &t, dp_t, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_join(busy, NULL, SOON()), 0);
    CHECK(atomic_load(&dp.a_ran));
    CHECK_EQ(plait_pool_destroy(cw.pool), 0);
}

RUN_TESTS(CASE(helping_waits_do_not_nest_unrelated_tasks_past_the_stack),
          CASE(helping_waits_do_not_nest_a_batch_of_large_frames_past_the_stack),
          CASE(push_wake_not_spent_on_helper_whose_wait_is_claimed),
          CASE(a_deep_helping_wait_publishes_its_private_tasks))
