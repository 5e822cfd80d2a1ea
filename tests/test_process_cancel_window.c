/* test_process_cancel_window.c — a process task (plait_process_start) cancelled after its
 * child has ended, before its outcome is recorded: the outcome is the cancellation, as
 * for every other task (docs/API.md: "Finished" is when its outcome is recorded), and
 * the result the child returned is dropped (freed: nothing leaks under ASan).  The
 * parent's manager decided the outcome as it saw the exit, reading the cancellation
 * there, outside the future's lock: a cancellation just after that was lost — the
 * joiner got the child's own failure, where the same cancellation a moment earlier gave
 * -ECANCELED — and one that came after a child's success never counted (session 42's
 * process audit; both cases failed before the fix).
 *
 * Built with -Wl,--wrap=plait__future_complete, which holds the manager's completion
 * of the process task under test until the test has cancelled it. */
#include "helpers.h"

#include "../src/internal.h"

#include <sched.h>

void __real_plait__future_complete(plait__future *f, void *value, int error);
void __wrap_plait__future_complete(plait__future *f, void *value, int error);

static atomic_int armed;     /* hold the next completion of a process task */
static atomic_int held;      /* it is held */
static atomic_int cancelled; /* the test has cancelled it: let it go */

void __wrap_plait__future_complete(plait__future *f, void *value, int error)
{
    if (f->ops && atomic_exchange(&armed, 0)) {
        atomic_store(&held, 1);
        while (!atomic_load(&cancelled))
            sched_yield();
    }
    __real_plait__future_complete(f, value, error);
}

static ssize_t fails(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return -EIO;
}

static ssize_t returns_bytes(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)cap;
    memcpy(out, "result", 6);
    return 6;
}

/* Start fn in a child, hold its completion, cancel it, join: the join's outcome. */
static int cancelled_as_it_completes(plait_proc_fn fn, void **result)
{
    atomic_store(&held, 0);
    atomic_store(&cancelled, 0);
    atomic_store(&armed, 1);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, fn, NULL, 0, NULL, NULL), 0);
    while (!atomic_load(&held))
        sched_yield();
    CHECK_EQ(plait_wait_any(&t, 1, 0), -ETIMEDOUT); /* not finished for anyone */
    CHECK_EQ(plait_cancel(t), 0);
    atomic_store(&cancelled, 1);
    return plait_join(t, result, SOON());
}

TEST(a_failing_child_cancelled_as_its_outcome_is_recorded)
{
    void *result = (void *)1;
    CHECK_EQ(cancelled_as_it_completes(fails, &result), -ECANCELED);
    CHECK(result == NULL);
}

TEST(a_succeeding_child_cancelled_as_its_outcome_is_recorded)
{
    void *result = (void *)1;
    CHECK_EQ(cancelled_as_it_completes(returns_bytes, &result), -ECANCELED);
    CHECK(result == NULL);
}

/* The control: cancelled after its outcome was recorded, it keeps it. */
TEST(a_child_cancelled_after_its_outcome_keeps_it)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, returns_bytes, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
    CHECK_EQ(plait_cancel(t), 0);
    plait_bytes *result = NULL;
    CHECK_EQ(plait_join(t, (void **)&result, SOON()), 0);
    CHECK(result && result->len == 6 && memcmp(result->data, "result", 6) == 0);
    free(result);
}

RUN_TESTS(CASE(a_failing_child_cancelled_as_its_outcome_is_recorded),
          CASE(a_succeeding_child_cancelled_as_its_outcome_is_recorded),
          CASE(a_child_cancelled_after_its_outcome_keeps_it))
