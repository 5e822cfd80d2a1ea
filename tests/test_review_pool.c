/* test_review_pool.c — review 108 of the thread pool.
 *
 * Built with -Wl,--wrap=plait__futex_wait, to see the pool's worker go to sleep. */
#include "helpers.h"

#include "../src/internal.h"

#include <pthread.h>
#include <sched.h>

int __real_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);

static struct {
    plait_pool *pool;
    pthread_t worker;
    atomic_int armed, worker_slept, release, started, finished, bad;
    plait_task h;
} dn;

int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    if (atomic_load(&dn.armed) && pthread_equal(pthread_self(), dn.worker))
        atomic_store(&dn.worker_slept, 1);
    return __real_plait__futex_wait(word, expected, deadline);
}

static void *dn_record(void *p)
{
    dn.worker = pthread_self();
    return p;
}

static void *dn_h(void *p)
{
    int64_t until = SOON();
    while (!atomic_load(&dn.release) && plait_now() < until)
        sched_yield();
    return p;
}

/* waits on H, a thread, not on any task of the pool: the helping wait runs the next
 * queued task on top of this one */
static void *dn_task(void *p)
{
    atomic_fetch_add(&dn.started, 1);
    if (plait_wait_any(&dn.h, 1, SOON()) != 0)
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
#define DN_TASKS 100000
TEST(helping_waits_do_not_nest_unrelated_tasks_past_the_stack)
{
    CHECK_EQ(plait_pool_create(&dn.pool, &(plait_pool_options){.threads = 1, .name = "dn"}), 0);
    plait_task rec;
    CHECK_EQ(plait_pool_submit(dn.pool, &rec, dn_record, NULL), 0);
    CHECK_EQ(plait_join(rec, NULL, SOON()), 0);
    CHECK_EQ(plait_thread_start(&dn.h, dn_h, NULL, NULL), 0);
    atomic_store(&dn.armed, 1);
    for (int i = 0; i < DN_TASKS; i++)
        CHECK_EQ(plait_pool_submit(dn.pool, NULL, dn_task, NULL), 0);
    /* the worker sleeps in the innermost wait once it may nest no further */
    int64_t until = SOON();
    while (!atomic_load(&dn.worker_slept) && atomic_load(&dn.started) < DN_TASKS &&
           plait_now() < until)
        sched_yield();
    fprintf(stderr, "nested %d waiting tasks before the worker slept\n", atomic_load(&dn.started));
    CHECK(atomic_load(&dn.worker_slept));
    atomic_store(&dn.release, 1);
    until = SOON();
    while (atomic_load(&dn.finished) < DN_TASKS && plait_now() < until)
        sched_yield();
    CHECK_EQ(atomic_load(&dn.finished), DN_TASKS);
    CHECK_EQ(atomic_load(&dn.bad), 0);
    CHECK_EQ(plait_join(dn.h, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(dn.pool), 0);
}

RUN_TESTS(CASE(helping_waits_do_not_nest_unrelated_tasks_past_the_stack))
