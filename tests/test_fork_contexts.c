/*
 * test_fork_contexts.c — which task handles a forked child may use, from every context
 * a fork can come from: a coroutine whose scheduler runs in a plait thread or in a pool
 * task (its own coroutines' tasks are the child's; the work it runs in is not: -EPERM),
 * a grandchild (tasks the continuing scheduler made two forks back are still its own),
 * a fork from a pool task (no scheduler goes on: every earlier handle is -EPERM, new
 * tasks work), process handles (-EPERM), and a completed set made before the fork; and
 * a shielded plait thread's fork (the child's thread keeps the shield's state).
 * (A handle locked by a parent thread at the fork: test_fork_handles.)
 */
#include "fork_child.h"
#include <stdatomic.h>

static void *ret7(void *a) { (void)a; plait_sleep(50 * PLAIT_MS); return ARG(7); }
static void *forever(void *a) { (void)a; return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER)); }
static void *forty_two(void *a) { (void)a; return ARG(42); }

/* S1: fork from a coroutine whose scheduler runs in a plait thread */
static plait_task w_handle;
static void *s1_main(void *arg)
{
    (void)arg;
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, ret7, NULL), 0);
    CHECK_EQ(plait_spawn(&b, forever, NULL), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        void *v = NULL;
        CHECK_EQ(plait_join(a, &v, SOON()), 0);
        CHECK_EQ(INT(v), 7);
        CHECK_EQ(plait_cancel(b), 0);
        CHECK_EQ(plait_join(b, NULL, SOON()), -ECANCELED);
        if (w_handle.future) {
            CHECK_EQ(plait_cancel(w_handle), -EPERM);
            CHECK_EQ(plait_join(w_handle, NULL, SOON()), -EPERM);
        }
        child_exit();
    }
    reap_ok(pid, 10);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    CHECK_EQ(plait_cancel(b), 0);
    CHECK_EQ(plait_join(b, NULL, SOON()), -ECANCELED);
    return NULL;
}
static void *s1_thread(void *arg) { (void)arg; CHECK_EQ(plait_run(s1_main, NULL, NULL), 0); return NULL; }
TEST(s1_sched_in_a_plait_thread)
{
    CHECK_EQ(plait_thread_start(&w_handle, s1_thread, NULL, NULL), 0);
    CHECK_EQ(plait_join(w_handle, NULL, SOON()), 0);
}

/* S1b: the same in a pool task */
static void *s1b_task(void *arg) { (void)arg; w_handle = (plait_task){0}; CHECK_EQ(plait_run(s1_main, NULL, NULL), 0); return NULL; }
TEST(s1b_sched_in_a_pool_task)
{
    plait_task t;
    CHECK_EQ(plait_pool_submit(plait_pool_default(), &t, s1b_task, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* S2: grandchild */
static plait_task other_sched_task;
static void *s2_main(void *arg)
{
    (void)arg;
    plait_task a;
    CHECK_EQ(plait_spawn(&a, ret7, NULL), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        plait_task c;
        CHECK_EQ(plait_spawn(&c, ret7, NULL), 0);
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, forty_two, NULL, NULL), 0);
        CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
        pid_t g = fork_child(false);
        if (g == 0) {
            void *v = NULL;
            CHECK_EQ(plait_join(a, &v, SOON()), 0);
            CHECK_EQ(INT(v), 7);
            CHECK_EQ(plait_join(c, &v, SOON()), 0);
            CHECK_EQ(plait_join(t, NULL, SOON()), -EPERM);
            CHECK_EQ(plait_join(other_sched_task, NULL, SOON()), -EPERM);
            child_exit();
        }
        reap_ok(g, 10);
        void *v = NULL;
        CHECK_EQ(plait_join(a, &v, SOON()), 0);
        CHECK_EQ(plait_join(c, &v, SOON()), 0);
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK_EQ(INT(v), 42);
        child_exit();
    }
    reap_ok(pid, 10);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    return NULL;
}
/* The other scheduler spawns its task, says so, and runs until the forks are done (a
 * 50 ms pause stood for that "says so": a spawn later than that left the grandchild
 * joining a handle not yet made, and read it racing with its writer). */
static atomic_int other_spawned;
static void *spawn_other(void *forks_done)
{
    CHECK_EQ(plait_spawn(&other_sched_task, ret7, NULL), 0);
    atomic_store(&other_spawned, 1);
    CHECK_EQ(plait_event_wait(forks_done, SOON()), 0);
    return NULL;
}
TEST(s2_grandchild)
{
    plait_event *forks_done;
    CHECK_EQ(plait_event_create(&forks_done), 0);
    sched_thread st;
    sched_thread_start(&st, spawn_other, forks_done);
    wait_for(&other_spawned);
    check_run(s2_main, NULL);
    CHECK_EQ(plait_event_set(forks_done), 0);
    sched_thread_join(&st);
    CHECK_EQ(plait_event_destroy(forks_done), 0);
    CHECK_EQ(plait_join(other_sched_task, NULL, SOON()), 0);
}

/* S3: fork from a pool task (plain thread): everything pre-fork is EPERM; new is fine */
static plait_task pre;
static void *child_main(void *a) { (void)a; plait_task c; void *v; CHECK_EQ(plait_spawn(&c, ret7, NULL), 0); CHECK_EQ(plait_join(c, &v, SOON()), 0); CHECK_EQ(INT(v), 7); return NULL; }
static void *s3_task(void *arg)
{
    (void)arg;
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(plait_join(pre, NULL, SOON()), -EPERM);
        CHECK_EQ(plait_run(child_main, NULL, NULL), 0);
        plait_task t;
        CHECK_EQ(plait_pool_submit(plait_pool_default(), &t, forty_two, NULL), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        child_exit();
    }
    reap_ok(pid, 10);
    return NULL;
}
TEST(s3_fork_from_a_pool_task)
{
    CHECK_EQ(plait_thread_start(&pre, forty_two, NULL, NULL), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(plait_pool_default(), &t, s3_task, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_join(pre, NULL, SOON()), 0);
}

/* S4/S5: process handle and completed set */
static plait_event *s4_go;
static void *seven_when_told(void *a)
{
    (void)a;
    CHECK_EQ(plait_event_wait(s4_go, SOON()), 0);
    return ARG(7);
}

static void *s4_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_event_create(&s4_go), 0);
    plait_task p;
    char *argv[] = {"sleep", "0.3", NULL};
    CHECK_EQ(plait_process_exec(&p, "sleep", argv, NULL, NULL), 0);
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, seven_when_told, NULL), 0); /* ends after b, in either process */
    CHECK_EQ(plait_thread_start(&b, forty_two, NULL, NULL), 0);
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_add(set, a), 0);
    CHECK_EQ(plait_completed_add(set, b), 0);
    CHECK_EQ(plait_wait_any(&b, 1, SOON()), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(plait_process_pid(p), -EPERM);
        CHECK_EQ(plait_process_kill(p, SIGTERM), -EPERM);
        plait_task got;
        CHECK_EQ(plait_completed_next(set, &got, SOON()), 0);
        CHECK(got.future == b.future);
        CHECK_EQ(plait_join(got, NULL, SOON()), -EPERM);
        CHECK_EQ(plait_event_set(s4_go), 0);
        CHECK_EQ(plait_completed_next(set, &got, SOON()), 0);
        CHECK(got.future == a.future);
        CHECK_EQ(plait_join(got, NULL, SOON()), 0);
        plait_completed *s2;
        CHECK_EQ(plait_completed_create(&s2), 0);
        CHECK_EQ(plait_completed_add(s2, b), -EPERM);
        CHECK_EQ(plait_completed_destroy(s2), 0);
        CHECK_EQ(plait_completed_destroy(set), 0);
        child_exit();
    }
    reap_ok(pid, 10);
    CHECK(plait_process_pid(p) > 0);
    CHECK_EQ(plait_join(p, NULL, SOON()), 0);
    CHECK_EQ(plait_event_set(s4_go), 0);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    CHECK_EQ(plait_join(b, NULL, SOON()), 0);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_event_destroy(s4_go), 0);
    return NULL;
}
TEST(s4_process_and_set) { check_run(s4_main, NULL); }

/* S5: a shielded plait thread forks: its child's thread, no longer running the work,
 * keeps the shield's state (plait_cancel_shield) as a plain thread's; it said 0. */
static void *s5_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        CHECK_EQ(plait_cancel_shield(0), 1);
        CHECK_EQ(plait_cancel_shield(0), 0);
        child_exit();
    }
    reap_ok(pid, 10);
    CHECK_EQ(plait_cancel_shield(0), 1);
    return NULL;
}
TEST(s5_shield_kept_in_a_child)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, s5_thread, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* S6: a fork from a thread that stands in for a pool task (a map's runner, from a
 * coroutine whose scheduler runs in a task of that pool): in the child the pool is
 * the parent's, -EPERM, not a map on threads of the child's own. */
static plait_pool *s6_pool;
static void *s6_item(void *arg)
{
    (void)arg;
    pid_t pid = fork_child(false);
    if (pid == 0) {
        void *args[1] = {NULL}, *results[1];
        CHECK_EQ(plait_pool_map(s6_pool, forty_two, args, 1, results, NULL, SOON()), -EPERM);
        child_exit();
    }
    reap_ok(pid, 10);
    return ARG(42);
}
static void *s6_main(void *arg)
{
    (void)arg;
    void *args[1] = {NULL}, *results[1] = {NULL};
    CHECK_EQ(plait_pool_map(s6_pool, s6_item, args, 1, results, NULL, SOON()), 0);
    CHECK_EQ(INT(results[0]), 42);
    return NULL;
}
static void *s6_task(void *arg) { (void)arg; CHECK_EQ(plait_run(s6_main, NULL, NULL), 0); return NULL; }
TEST(s6_fork_from_a_thread_standing_in_for_a_pool_task)
{
    plait_pool_options one = {.threads = 1};
    CHECK_EQ(plait_pool_create(&s6_pool, &one), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(s6_pool, &t, s6_task, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(s6_pool), 0);
}

RUN_TESTS(CASE(s1_sched_in_a_plait_thread), CASE(s1b_sched_in_a_pool_task), CASE(s2_grandchild),
          CASE(s3_fork_from_a_pool_task), CASE(s4_process_and_set),
          CASE(s5_shield_kept_in_a_child),
          CASE(s6_fork_from_a_thread_standing_in_for_a_pool_task))
