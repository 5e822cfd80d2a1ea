/* test_group_outcome.c — a group's count of running children and its children's
 * outcomes agree for whoever looks at both.  A child on another thread's scheduler had
 * its outcome recorded (its join returned) before the group was told it had finished,
 * so plait_group_wait(g, 0) right after the join said -ETIMEDOUT although the group's
 * only child had finished (session 42's coroutine-core audit; this program's case failed
 * so on the old order, where the wrap held the group's record with the outcome already
 * recorded; a review found the first version of this wrap never held there, as the old
 * order had let go of the future by then).
 *
 * Built with -Wl,--wrap=plait__group_child_finished: where the child's outcome is
 * already recorded when the group is told (the old order), the wrap holds the group's
 * record until the joiner has made its wait(g, 0), which opens that window every time;
 * in the order the library has now, the outcome is recorded inside the group's record,
 * and the wrap holds nothing.  And the other direction: once a group wait returned, a
 * join with a past deadline finds each child's outcome. */
#include "helpers.h"

#include "../src/internal.h"

#include <sched.h>

void __real_plait__group_child_finished(plait_group *g, plait__coro *c, void *result,
                                        int error);
void __wrap_plait__group_child_finished(plait_group *g, plait__coro *c, void *result,
                                        int error);

static atomic_int probed; /* the joiner has made its wait(g, 0) */

void __wrap_plait__group_child_finished(plait_group *g, plait__coro *c, void *result,
                                        int error)
{
    /* recorded before the group knew (the old order let go of the future first) */
    if (!c->future || atomic_load(&c->future->done))
        while (!atomic_load(&probed))
            sched_yield();
    __real_plait__group_child_finished(g, c, result, error);
}

static struct {
    plait_group *group;
    plait_task child;
    atomic_int spawned;
    plait_event *done;
} t;

static void *returns_seven(void *unused)
{
    (void)unused;
    return (void *)7;
}

static void *spawns_into_the_group(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_group_spawn(t.group, &t.child, returns_seven, NULL), 0);
    atomic_store(&t.spawned, 1);
    CHECK_EQ(plait_event_wait(t.done, SOON()), 0);
    return NULL;
}

static void *runs_a_scheduler(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_run(spawns_into_the_group, NULL, NULL), 0);
    return NULL;
}

TEST(group_wait_after_joining_its_only_child_does_not_wait)
{
    CHECK_EQ(plait_group_create(&t.group), 0);
    CHECK_EQ(plait_event_create(&t.done), 0);
    plait_task scheduler;
    CHECK_EQ(plait_thread_start(&scheduler, runs_a_scheduler, NULL, NULL), 0);
    while (!atomic_load(&t.spawned))
        sched_yield();
    void *value = NULL;
    CHECK_EQ(plait_join(t.child, &value, SOON()), 0);
    CHECK(value == (void *)7);
    int r = plait_group_wait(t.group, 0);
    atomic_store(&probed, 1);
    CHECK_EQ(r, 0);
    CHECK_EQ(plait_event_set(t.done), 0);
    CHECK_EQ(plait_join(scheduler, NULL, SOON()), 0);
    CHECK_EQ(plait_group_destroy(t.group), 0);
    CHECK_EQ(plait_event_destroy(t.done), 0);
}

/* The other direction, many children on another scheduler: once the group's wait has
 * returned, every child's outcome is there for a join that does not wait. */
enum { CHILDREN = 64 };
static plait_task children[CHILDREN];

static void *returns_its_index(void *i) { return i; }

static void *spawns_many(void *unused)
{
    (void)unused;
    for (intptr_t i = 0; i < CHILDREN; i++)
        CHECK_EQ(plait_group_spawn(t.group, &children[i], returns_its_index, (void *)i), 0);
    atomic_store(&t.spawned, 1);
    CHECK_EQ(plait_event_wait(t.done, SOON()), 0);
    return NULL;
}

static void *runs_many(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_run(spawns_many, NULL, NULL), 0);
    return NULL;
}

TEST(children_s_outcomes_are_there_once_the_group_wait_returned)
{
    atomic_store(&probed, 1); /* nothing to hold here */
    atomic_store(&t.spawned, 0);
    CHECK_EQ(plait_group_create(&t.group), 0);
    CHECK_EQ(plait_event_create(&t.done), 0);
    plait_task scheduler;
    CHECK_EQ(plait_thread_start(&scheduler, runs_many, NULL, NULL), 0);
    while (!atomic_load(&t.spawned))
        sched_yield();
    CHECK_EQ(plait_group_wait(t.group, SOON()), 0);
    for (intptr_t i = 0; i < CHILDREN; i++) {
        void *value = NULL;
        CHECK_EQ(plait_join(children[i], &value, 0), 0);
        CHECK(value == (void *)i);
    }
    CHECK_EQ(plait_event_set(t.done), 0);
    CHECK_EQ(plait_join(scheduler, NULL, SOON()), 0);
    CHECK_EQ(plait_group_destroy(t.group), 0);
    CHECK_EQ(plait_event_destroy(t.done), 0);
}

RUN_TESTS(CASE(group_wait_after_joining_its_only_child_does_not_wait),
          CASE(children_s_outcomes_are_there_once_the_group_wait_returned))
