/*
 * test_completed_self.c — an as-completed set whose only task still running is the
 * caller of plait_completed_next itself (a wrong-context audit).
 *
 * Join, plait_wait_any and plait_wait_all answer -EDEADLK for a wait on the caller's
 * own task; plait_completed_next waited for ever (with a deadline: -ETIMEDOUT at it).
 * Now it answers -EDEADLK once every task the set still waits for is the caller's own
 * (the coroutine, or the plait thread or pool task it runs in), after handing back
 * those that finished.
 */
#include "helpers.h"

static void *returns_arg(void *arg) { return arg; }

/* The coroutine's own handle comes through its argument, once the spawn has returned. */
typedef struct {
    plait_task self;
    atomic_int known;
} own;

static void *waits_on_itself(void *arg)
{
    own *o = arg;
    while (!atomic_load(&o->known))
        CHECK_EQ(plait_yield(), 0);
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task other, got;
    CHECK_EQ(plait_spawn(&other, returns_arg, ARG(5)), 0);
    CHECK_EQ(plait_completed_add(set, o->self), 0);
    CHECK_EQ(plait_completed_add(set, other), 0);
    /* the other task finishes: handed back first */
    CHECK_EQ(plait_completed_next(set, &got, SOON()), 0);
    CHECK(got.future == other.future);
    void *v = NULL;
    CHECK_EQ(plait_join(got, &v, SOON()), 0);
    CHECK_EQ(INT(v), 5);
    /* then only the caller is left: it cannot finish while it waits */
    CHECK_EQ(plait_completed_next(set, &got, PLAIT_FOREVER), -EDEADLK);
    CHECK_EQ(plait_completed_next(set, &got, 0), -EDEADLK);
    CHECK_EQ(plait_completed_destroy(set), 0);
    return ARG(9);
}

static void *spawns_one_that_waits_on_itself(void *unused)
{
    (void)unused;
    own o = {.known = 0};
    CHECK_EQ(plait_spawn(&o.self, waits_on_itself, &o), 0);
    atomic_store(&o.known, 1);
    void *v = NULL;
    CHECK_EQ(plait_join(o.self, &v, SOON()), 0);
    CHECK_EQ(INT(v), 9);
    return NULL;
}

TEST(a_coroutine_waiting_on_a_set_of_itself_is_deadlock)
{
    check_run(spawns_one_that_waits_on_itself, NULL);
}

/* A plait thread whose set watches the thread itself (and nothing else running). */
static void *thread_waits_on_itself(void *arg)
{
    own *o = arg;
    wait_for(&o->known);
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_add(set, o->self), 0);
    plait_task got;
    CHECK_EQ(plait_completed_next(set, &got, PLAIT_FOREVER), -EDEADLK);
    CHECK_EQ(plait_completed_destroy(set), 0);
    return ARG(4);
}

TEST(a_thread_waiting_on_a_set_of_itself_is_deadlock)
{
    own o = {.known = 0};
    CHECK_EQ(plait_thread_start(&o.self, thread_waits_on_itself, &o, NULL), 0);
    atomic_store(&o.known, 1);
    void *v = NULL;
    CHECK_EQ(plait_join(o.self, &v, SOON()), 0);
    CHECK_EQ(INT(v), 4);
}

/* Two waiters on one set: a plain thread D, then a plait thread T whose set holds T
 * itself and a task X.  X finishes and D is handed it: only T's own task is left, but
 * T's wait was looked at only when a finished task woke it, and none would come: it
 * waited for ever (a review of the fix).  Each waiter looks again once two or fewer
 * are left. */
static plait_completed *shared_set;
static atomic_int d_tid, t_tid, x_may_end, t_outcome;
static plait_task t_handle, x_handle;

static void *d_waits(void *unused)
{
    (void)unused;
    atomic_store(&d_tid, (int)syscall(SYS_gettid));
    plait_task got;
    CHECK_EQ(plait_completed_next(shared_set, &got, SOON()), 0);
    CHECK(got.future == x_handle.future);
    CHECK_EQ(plait_join(got, NULL, SOON()), 0);
    return NULL;
}

static void *t_waits(void *arg)
{
    own *o = arg;
    wait_for(&o->known);
    atomic_store(&t_tid, (int)syscall(SYS_gettid));
    plait_task got;
    atomic_store(&t_outcome, plait_completed_next(shared_set, &got, SOON()));
    return NULL;
}

static void *x_waits_to_end(void *unused)
{
    (void)unused;
    wait_for(&x_may_end);
    return NULL;
}

TEST(the_last_waiter_left_with_only_itself_is_deadlock)
{
    CHECK_EQ(plait_completed_create(&shared_set), 0);
    own o = {.known = 0};
    CHECK_EQ(plait_thread_start(&t_handle, t_waits, &o, NULL), 0);
    CHECK_EQ(plait_thread_start(&x_handle, x_waits_to_end, NULL, NULL), 0);
    CHECK_EQ(plait_completed_add(shared_set, t_handle), 0);
    CHECK_EQ(plait_completed_add(shared_set, x_handle), 0);
    pthread_t d;
    CHECK_EQ(pthread_create(&d, NULL, d_waits, NULL), 0);
    wait_asleep(&d_tid); /* D waits first: X's end is handed to it */
    o.self = t_handle;
    atomic_store(&o.known, 1);
    wait_asleep(&t_tid);
    atomic_store(&x_may_end, 1);
    CHECK_EQ(pthread_join(d, NULL), 0);
    CHECK_EQ(plait_join(t_handle, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&t_outcome), -EDEADLK);
    CHECK_EQ(plait_completed_destroy(shared_set), 0);
}

/* The same two waiters, but T's own handle is added by the main thread while T already
 * waits (on X alone, so it waited as not its own): D waits first, then T, then T's
 * handle is added, then X finishes and D is handed it.  Only T's own task is left, and
 * T waited until its deadline (-ETIMEDOUT): the wake-all after a take was for waiters
 * counted as watched for when they began to wait, and the add made T one only later.
 * Each waiter left inside looks again once two or fewer are left. */
TEST(a_waiter_whose_own_task_is_added_while_it_waits_is_deadlock)
{
    atomic_store(&d_tid, 0);
    atomic_store(&t_tid, 0);
    atomic_store(&x_may_end, 0);
    atomic_store(&t_outcome, 0);
    CHECK_EQ(plait_completed_create(&shared_set), 0);
    CHECK_EQ(plait_thread_start(&x_handle, x_waits_to_end, NULL, NULL), 0);
    CHECK_EQ(plait_completed_add(shared_set, x_handle), 0);
    pthread_t d;
    CHECK_EQ(pthread_create(&d, NULL, d_waits, NULL), 0);
    wait_asleep(&d_tid); /* D waits first: X's end is handed to it */
    own o = {.known = 1}; /* T does not need its handle: it is not T's add */
    CHECK_EQ(plait_thread_start(&t_handle, t_waits, &o, NULL), 0);
    wait_asleep(&t_tid);
    CHECK_EQ(plait_completed_add(shared_set, t_handle), 0); /* wakes nobody */
    atomic_store(&x_may_end, 1);
    CHECK_EQ(pthread_join(d, NULL), 0);
    CHECK_EQ(plait_join(t_handle, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&t_outcome), -EDEADLK);
    CHECK_EQ(plait_completed_destroy(shared_set), 0);
}

/* Two consumers of one set, pool tasks stacked on one worker: A's helping wait runs C,
 * and C's runs X, the set's task.  X's end is C's to take (A cannot run again before C
 * returns): the push woke the oldest waiter only, A, and C slept beside X on the set's
 * done list until its deadline (for ever with none).  (Failed first: C -ETIMEDOUT at
 * its deadline, then A took X; session 53's audit.)  One worker, held by a task while
 * A, C and X are queued, so that it takes them together, in that order. */
static plait_completed *stacked_set;
static plait_event *stacked_gate;
static plait_sem *stacked_held;

static void *hold_the_worker(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_sem_release(stacked_held), 0);
    CHECK_EQ(plait_event_wait(stacked_gate, SOON()), 0);
    return NULL;
}

static void *consume_one(void *outcome)
{
    plait_task got;
    int r = plait_completed_next(stacked_set, &got, SOON());
    if (r == 0)
        CHECK_EQ(plait_join(got, NULL, SOON()), 0);
    atomic_store((atomic_int *)outcome, r);
    return NULL;
}

TEST(a_push_reaches_the_consumer_stacked_above_the_oldest)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    CHECK_EQ(plait_completed_create(&stacked_set), 0);
    CHECK_EQ(plait_event_create(&stacked_gate), 0);
    CHECK_EQ(plait_sem_create(&stacked_held, 0), 0);
    plait_task held, a, c, x;
    CHECK_EQ(plait_pool_submit(pool, &held, hold_the_worker, NULL), 0);
    CHECK_EQ(plait_sem_acquire(stacked_held, SOON()), 0);
    static atomic_int ra = 1, rc = 1;
    CHECK_EQ(plait_pool_submit(pool, &a, consume_one, &ra), 0);
    CHECK_EQ(plait_pool_submit(pool, &c, consume_one, &rc), 0);
    CHECK_EQ(plait_pool_submit(pool, &x, returns_arg, NULL), 0);
    CHECK_EQ(plait_completed_add(stacked_set, x), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_event_set(stacked_gate), 0);
    CHECK_EQ(plait_join(held, NULL, SOON()), 0);
    CHECK_EQ(plait_join(c, NULL, plait_deadline_in(20 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_join(a, NULL, plait_deadline_in(20 * PLAIT_SEC)), 0);
    CHECK(plait_now() - start < 5 * PLAIT_SEC); /* not the consumers' deadline, 10 s */
    /* C took X; A, below it, found the set empty */
    CHECK_EQ(atomic_load(&rc), 0);
    CHECK_EQ(atomic_load(&ra), -EPIPE);
    CHECK_EQ(plait_completed_destroy(stacked_set), 0);
    CHECK_EQ(plait_event_destroy(stacked_gate), 0);
    CHECK_EQ(plait_sem_destroy(stacked_held), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(a_coroutine_waiting_on_a_set_of_itself_is_deadlock),
          CASE(a_thread_waiting_on_a_set_of_itself_is_deadlock),
          CASE(the_last_waiter_left_with_only_itself_is_deadlock),
          CASE(a_waiter_whose_own_task_is_added_while_it_waits_is_deadlock),
          CASE(a_push_reaches_the_consumer_stacked_above_the_oldest))
