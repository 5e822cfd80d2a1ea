/* test_cancel_as_fn_returns.c — a cancellation that reaches a pool task or a plait
 * thread after its function has returned, before its outcome is recorded: the outcome
 * is the cancellation, and what the function returned is dropped.  plait.h, plait_cancel:
 * "Its joiner gets -ECANCELED, and whatever its function still returns is dropped";
 * plait_to_thread: "One that returns after the cancellation reached it (even in the
 * instant between fn's return and the pool's record of it) reports the cancellation".
 * The joiner got fn's value with 0 (audit of session 42; failed before the fix).
 *
 * Built with -Wl,--wrap=plait__future_complete, which holds the completion of the task
 * under test, after its function has returned, until the cancellation has reached its
 * future (its `cancelled` flag, set under the future's lock by plait_cancel).  A task
 * cancelled only after its outcome is recorded keeps it: the control case. */
#include "helpers.h"

#include "../src/internal.h"

#include <sched.h>

void __real_plait__future_complete(plait__future *f, void *value, int error);
void __wrap_plait__future_complete(plait__future *f, void *value, int error);

static plait_fn held_fn;  /* the function of the task whose completion is held */
static atomic_int held;   /* its completion is waiting for the cancellation */
static atomic_int completed; /* ... and has been recorded */

void __wrap_plait__future_complete(plait__future *f, void *value, int error)
{
    bool hold = held_fn && f->fn == held_fn;
    if (hold) {
        atomic_store(&held, 1);
        while (!atomic_load(&f->cancelled))
            sched_yield();
    }
    __real_plait__future_complete(f, value, error);
    if (hold)
        atomic_store(&completed, 1);
}

static void *returns_its_argument(void *arg) { return arg; }

static void hold_completions_of(plait_fn fn)
{
    held_fn = fn;
    atomic_store(&held, 0);
    atomic_store(&completed, 0);
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

/* plait_to_thread's deadline passes while the task's completion is held: the call
 * cancels the task, waits for it and reports -ETIMEDOUT, its result untouched. */
static int to_thread_past_its_deadline(void)
{
    hold_completions_of(returns_its_argument);
    void *result = (void *)1;
    int r = plait_to_thread(returns_its_argument, (void *)42,
                            &result, plait_deadline_in(PLAIT_MS));
    CHECK(atomic_load(&held));
    CHECK(result == (void *)1 || result == NULL);
    hold_completions_of(NULL);
    return r;
}

TEST(to_thread_from_a_thread_past_its_deadline_as_fn_returns)
{
    CHECK_EQ(to_thread_past_its_deadline(), -ETIMEDOUT);
}

static void *to_thread_in_a_coroutine(void *out)
{
    *(int *)out = to_thread_past_its_deadline();
    return NULL;
}

TEST(to_thread_from_a_coroutine_past_its_deadline_as_fn_returns)
{
    int r = 0;
    CHECK_EQ(plait_run(to_thread_in_a_coroutine, &r, NULL), 0);
    CHECK_EQ(r, -ETIMEDOUT);
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
          CASE(to_thread_from_a_thread_past_its_deadline_as_fn_returns),
          CASE(to_thread_from_a_coroutine_past_its_deadline_as_fn_returns),
          CASE(pool_task_cancelled_after_its_record_keeps_its_value))
