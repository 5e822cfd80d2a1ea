/* test_core_edges.c — the coroutine runtime at its edges: a plait thread's key destructors
 * run as part of the thread (before its outcome is published), so they see its
 * cancellation (sticky) and its own handle (-EDEADLK), as a coroutine's destructors do;
 * key destructors that spawn while a scheduler ends; deadlines at the extremes. */
#include "helpers.h"

#include <stdatomic.h>

/* ---- a cancelled plait thread's key destructor ---- */

static plait_key dtor_key;
static atomic_int dtor_cancelled = -1, dtor_sleep = 1, dtor_join = 1;
static atomic_int thread_started, thread_sleep = 1;
static plait_task self_handle;
static atomic_int self_handle_set;

static void dtor_sleeps(void *value)
{
    (void)value;
    atomic_store(&dtor_cancelled, plait_cancelled());
    /* "every later call that would block returns -ECANCELED at once" */
    atomic_store(&dtor_sleep, plait_sleep(3 * PLAIT_SEC));
}

static void *sets_and_sleeps(void *arg)
{
    (void)arg;
    plait_local_set(dtor_key, ARG(1));
    atomic_store(&thread_started, 1);
    atomic_store(&thread_sleep, plait_sleep_until(PLAIT_FOREVER)); /* (its value is lost) */
    return NULL;
}

TEST(cancelled_thread_key_destructor_sees_its_cancellation)
{
    CHECK_EQ(plait_key_create(&dtor_key, dtor_sleeps), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, sets_and_sleeps, NULL, NULL), 0);
    wait_for(&thread_started);
    CHECK_EQ(plait_cancel(t), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_PROMPT(start);
    CHECK_EQ(atomic_load(&dtor_cancelled), 1);
    CHECK_EQ(atomic_load(&dtor_sleep), -ECANCELED);
    CHECK_EQ(atomic_load(&thread_sleep), -ECANCELED);
}

/* ---- a plait thread's key destructor joining its own handle ---- */

static plait_key join_key;

static void dtor_joins_self(void *value)
{
    (void)value;
    /* "joining from the thread itself is -EDEADLK" */
    atomic_store(&dtor_join, plait_join(self_handle, NULL, plait_deadline_in(2 * PLAIT_SEC)));
}

static void *sets_join_key(void *arg)
{
    (void)arg;
    wait_for(&self_handle_set);
    plait_local_set(join_key, ARG(1));
    return ARG(7);
}

TEST(thread_key_destructor_joining_itself_is_deadlock)
{
    CHECK_EQ(plait_key_create(&join_key, dtor_joins_self), 0);
    CHECK_EQ(plait_thread_start(&self_handle, sets_join_key, NULL, NULL), 0);
    atomic_store(&self_handle_set, 1);
    void *v = NULL;
    int64_t start = plait_now();
    CHECK_EQ(plait_join(self_handle, &v, SOON()), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(INT(v), 7);
    CHECK_EQ(atomic_load(&dtor_join), -EDEADLK);
}

/* ---- probes that pass: spawns from key destructors while a scheduler ends, and
 * deadlines at the extremes in a coroutine ---- */

static plait_key spawn_key;
static atomic_int late_child_saw = 1, main_child_saw = 1;

static void *late_child(void *arg)
{
    atomic_store((atomic_int *)arg, plait_sleep_until(PLAIT_FOREVER));
    return NULL;
}

/* spawns, from a key destructor, a child that sleeps until cancelled */
static void dtor_spawns(void *value)
{
    CHECK_EQ(plait_spawn(NULL, late_child, value), 0);
}

static void *straggler(void *arg)
{
    (void)arg;
    plait_local_set(spawn_key, &late_child_saw);
    plait_sleep_until(PLAIT_FOREVER); /* cancelled as main returns */
    return NULL;
}

static void *main_leaves_straggler(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(NULL, straggler, NULL), 0);
    plait_yield();
    /* main's own destructor spawns too: before main is done, cancelled with the rest */
    plait_local_set(spawn_key, &main_child_saw);
    return NULL;
}

TEST(destructors_spawning_while_the_scheduler_ends)
{
    CHECK_EQ(plait_key_create(&spawn_key, dtor_spawns), 0);
    int64_t start = plait_now();
    check_run(main_leaves_straggler, NULL);
    CHECK_PROMPT(start);
    CHECK_EQ(atomic_load(&late_child_saw), -ECANCELED);
    CHECK_EQ(atomic_load(&main_child_saw), -ECANCELED);
}

static plait_task far_sleeper;
static atomic_int far_sleeper_asleep;

static void *sleeps_far(void *arg)
{
    (void)arg;
    atomic_store(&far_sleeper_asleep, 1);
    return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER - 1));
}

static void *cancels_from_a_thread(void *arg)
{
    (void)arg;
    wait_for(&far_sleeper_asleep);
    CHECK_EQ(plait_cancel(far_sleeper), 0);
    return NULL;
}

static void *extremes_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_deadline_in(INT64_MAX), PLAIT_FOREVER);
    CHECK(plait_deadline_in(INT64_MIN) <= plait_now());
    CHECK(plait_deadline_in(PLAIT_FOREVER - 1) == PLAIT_FOREVER);
    int64_t start = plait_now();
    CHECK_EQ(plait_sleep_until(INT64_MIN), 0);
    CHECK_EQ(plait_sleep_until(0), 0);
    CHECK_EQ(plait_sleep_until(-1), 0);
    CHECK_EQ(plait_sleep(INT64_MIN), 0);
    CHECK_EQ(plait_sleep(0), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_spawn(&far_sleeper, sleeps_far, NULL), 0);
    plait_task canceller;
    CHECK_EQ(plait_thread_start(&canceller, cancels_from_a_thread, NULL, NULL), 0);
    CHECK_EQ(plait_join(far_sleeper, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(canceller, NULL, SOON()), 0);
    CHECK_EQ(plait_join(far_sleeper, NULL, INT64_MIN), -ESRCH);
    return NULL;
}

TEST(deadline_extremes_in_a_coroutine) { check_run(extremes_main, NULL); }

RUN_TESTS(CASE(cancelled_thread_key_destructor_sees_its_cancellation),
          CASE(thread_key_destructor_joining_itself_is_deadlock),
          CASE(destructors_spawning_while_the_scheduler_ends),
          CASE(deadline_extremes_in_a_coroutine))
