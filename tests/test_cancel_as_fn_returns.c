/* test_cancel_as_fn_returns.c — a cancellation that reaches a task after its function
 * has returned, before its outcome is recorded (a pool task, a plait thread, a
 * coroutine; while its task-local destructors run, or in the instant before the
 * completion takes the future's lock): the outcome is the cancellation, and what the
 * function returned is dropped.  plait.h, plait_cancel: "Its joiner gets -ECANCELED, and
 * whatever its function still returns is dropped"; plait_to_thread: "One that returns
 * after the cancellation reached it (even in the instant between fn's return and the
 * pool's record of it) reports the cancellation".  The joiner got fn's value with 0
 * (session 42's audits: the pool task, plait thread and to_thread cases, then the
 * coroutine's; each failed before its fix).
 *
 * Built with -Wl,--wrap=plait__future_complete, which holds the completion of the task
 * under test, after its function has returned, until the cancellation has reached it
 * (the cancelled flag of its work or of its coroutine, which plait_cancel sets under
 * the future's lock).  A task cancelled only after its outcome is recorded keeps it: the
 * control case. */
#include "helpers.h"

#include "../src/internal.h"

#include <sched.h>

void __real_plait__future_complete(plait__future *f, void *value, int error);
void __wrap_plait__future_complete(plait__future *f, void *value, int error);

static plait_fn held_fn;  /* the function of the task whose completion is held */
static atomic_int held;   /* its completion is waiting for the cancellation */

/* The function a future's producer runs, and its cancelled flag. */
static plait_fn producer_fn(const plait__future *f)
{
    return f->on_thread ? f->fn : f->coro ? f->coro->fn : NULL;
}

static const atomic_int *producer_cancelled(plait__future *f)
{
    return f->on_thread ? &f->cancelled : &f->coro->cancelled;
}

void __wrap_plait__future_complete(plait__future *f, void *value, int error)
{
    bool hold = held_fn && producer_fn(f) == held_fn;
    if (hold) {
        atomic_store(&held, 1);
        while (!atomic_load(producer_cancelled(f)))
            sched_yield();
    }
    __real_plait__future_complete(f, value, error);
}

static void *returns_its_argument(void *arg) { return arg; }

static void hold_completions_of(plait_fn fn)
{
    held_fn = fn;
    atomic_store(&held, 0);
}

static void wait_until_held(void)
{
    while (!atomic_load(&held))
        sched_yield();
}

TEST(pool_task_cancelled_between_return_and_record)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    hold_completions_of(returns_its_argument);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, returns_its_argument, (void *)42), 0);
    wait_until_held();
    CHECK_EQ(plait_wait_any(&t, 1, 0), -ETIMEDOUT); /* not finished as far as anyone sees */
    CHECK_EQ(plait_cancel(t), 0);
    void *value = (void *)1;
    CHECK_EQ(plait_join(t, &value, SOON()), -ECANCELED);
    CHECK(value == NULL);
    hold_completions_of(NULL);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

TEST(plait_thread_cancelled_between_return_and_record)
{
    hold_completions_of(returns_its_argument);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, returns_its_argument, (void *)42, NULL), 0);
    wait_until_held();
    CHECK_EQ(plait_cancel(t), 0);
    void *value = (void *)1;
    CHECK_EQ(plait_join(t, &value, SOON()), -ECANCELED);
    CHECK(value == NULL);
    hold_completions_of(NULL);
}

/* plait_to_thread whose caller is cancelled while the task's completion is held: the
 * call cancels the task, waits for it and reports -ECANCELED, not fn's result.
 * (The caller's cancellation rather than its deadline, which is the same path in
 * plait_to_thread: a deadline short enough to pass in the hold could pass before the
 * task starts, on a loaded machine, and then it never runs.) */
typedef struct to_thread_call {
    int r;
    void *result;
} to_thread_call;

static void *calls_to_thread(void *p)
{
    to_thread_call *call = p;
    call->result = (void *)1;
    call->r = plait_to_thread(returns_its_argument, (void *)42, &call->result, SOON());
    return NULL;
}

static void check_cancelled_to_thread(const to_thread_call *call)
{
    CHECK_EQ(call->r, -ECANCELED);
    CHECK(call->result != (void *)42); /* untouched, or NULL as a failed join leaves it */
    hold_completions_of(NULL);
}

TEST(to_thread_from_a_thread_cancelled_as_fn_returns)
{
    hold_completions_of(returns_its_argument);
    to_thread_call call = {0};
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, calls_to_thread, &call, NULL), 0);
    wait_until_held();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED); /* the thread's own, cancelled */
    check_cancelled_to_thread(&call);
}

static void *cancels_a_coroutine_in_to_thread(void *unused)
{
    (void)unused;
    to_thread_call call = {0};
    plait_task c;
    CHECK_EQ(plait_spawn(&c, calls_to_thread, &call), 0);
    while (!atomic_load(&held)) /* it runs, calls plait_to_thread and waits on the pool */
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_cancel(c), 0);
    CHECK_EQ(plait_join(c, NULL, SOON()), -ECANCELED);
    check_cancelled_to_thread(&call);
    return NULL;
}

TEST(to_thread_from_a_coroutine_cancelled_as_fn_returns)
{
    hold_completions_of(returns_its_argument);
    CHECK_EQ(plait_run(cancels_a_coroutine_in_to_thread, NULL, NULL), 0);
}

/* A coroutine of another thread's scheduler, cancelled from this thread while that
 * scheduler is held in its completion (after its function returned). */
static struct {
    plait_task coroutine;
    atomic_int spawned;
    int join_r;
    void *value;
} far;

static void *spawns_and_joins(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_spawn(&far.coroutine, returns_its_argument, (void *)42), 0);
    atomic_store(&far.spawned, 1);
    far.value = (void *)1;
    far.join_r = plait_join(far.coroutine, &far.value, SOON());
    return NULL;
}

static void *runs_a_scheduler(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_run(spawns_and_joins, NULL, NULL), 0);
    return NULL;
}

TEST(coroutine_cancelled_between_return_and_record)
{
    hold_completions_of(returns_its_argument);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, runs_a_scheduler, NULL, NULL), 0);
    wait_until_held();
    CHECK(atomic_load(&far.spawned));
    CHECK_EQ(plait_cancel(far.coroutine), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(far.join_r, -ECANCELED);
    CHECK(far.value == NULL);
    hold_completions_of(NULL);
}

/* A task cancelled while its task-local destructor waits (its function has returned):
 * the destructor's wait sees the cancellation, and so does the joiner.  A wide window,
 * no wrap needed; a plait thread and a coroutine alike. */
static plait_key key;
static plait_event *in_destructor, *never_set;
static int destructor_wait_r;

static void destructor_that_waits(void *value)
{
    (void)value;
    CHECK_EQ(plait_event_set(in_destructor), 0);
    destructor_wait_r = plait_event_wait(never_set, SOON());
}

static void *sets_a_local_and_returns(void *arg)
{
    CHECK_EQ(plait_local_set(key, (void *)1), 0);
    return arg;
}

static void *cancel_in_destructor(void *as_thread)
{
    CHECK_EQ(plait_event_create(&in_destructor), 0);
    CHECK_EQ(plait_event_create(&never_set), 0);
    plait_task t;
    if (as_thread)
        CHECK_EQ(plait_thread_start(&t, sets_a_local_and_returns, (void *)42, NULL), 0);
    else
        CHECK_EQ(plait_spawn(&t, sets_a_local_and_returns, (void *)42), 0);
    CHECK_EQ(plait_event_wait(in_destructor, SOON()), 0);
    CHECK_EQ(plait_wait_any(&t, 1, 0), -ETIMEDOUT); /* not finished */
    CHECK_EQ(plait_cancel(t), 0);
    void *value = (void *)1;
    CHECK_EQ(plait_join(t, &value, SOON()), -ECANCELED);
    CHECK(value == NULL);
    CHECK_EQ(destructor_wait_r, -ECANCELED);
    CHECK_EQ(plait_event_destroy(in_destructor), 0);
    CHECK_EQ(plait_event_destroy(never_set), 0);
    return NULL;
}

static void make_the_key(void)
{
    static bool made;
    if (!made)
        CHECK_EQ(plait_key_create(&key, destructor_that_waits), 0);
    made = true;
}

TEST(plait_thread_cancelled_while_its_local_destructor_waits)
{
    make_the_key();
    CHECK_EQ(plait_run(cancel_in_destructor, (void *)1, NULL), 0);
}

TEST(coroutine_cancelled_while_its_local_destructor_waits)
{
    make_the_key();
    CHECK_EQ(plait_run(cancel_in_destructor, NULL, NULL), 0);
}

/* The control: a cancellation after the outcome is recorded leaves it. */
TEST(pool_task_cancelled_after_its_record_keeps_its_value)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, returns_its_argument, (void *)42), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0); /* done (the handle stays) */
    CHECK_EQ(plait_cancel(t), 0);
    void *value = NULL;
    CHECK_EQ(plait_join(t, &value, SOON()), 0);
    CHECK(value == (void *)42);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(pool_task_cancelled_between_return_and_record),
          CASE(plait_thread_cancelled_between_return_and_record),
          CASE(to_thread_from_a_thread_cancelled_as_fn_returns),
          CASE(to_thread_from_a_coroutine_cancelled_as_fn_returns),
          CASE(coroutine_cancelled_between_return_and_record),
          CASE(plait_thread_cancelled_while_its_local_destructor_waits),
          CASE(coroutine_cancelled_while_its_local_destructor_waits),
          CASE(pool_task_cancelled_after_its_record_keeps_its_value))
