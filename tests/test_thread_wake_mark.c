/* test_thread_wake_mark.c — a plain thread's wait is woken with a FUTEX_WAKE only when
 * it sleeps (waiter.c, futex_block): a signal that comes while the thread still looks
 * at its word makes no system call; one that comes after it marked itself asleep wakes
 * it (the first case failed first: every signal to a thread made a FUTEX_WAKE).
 *
 * Built with -Wl,--wrap=plait__spin_while, -Wl,--wrap=plait__futex_wait and
 * -Wl,--wrap=plait__futex_wake: in the single-threaded cases the waiting thread itself
 * sets the event it waits for, from inside its wait's look or from just before its
 * sleep, so every step is deterministic; the wake-ups made are counted. */
#include "helpers.h"

#include "../src/internal.h"

bool __real_plait__spin_while(atomic_uint *word, unsigned value, int64_t ns,
                              int64_t deadline);
bool __wrap_plait__spin_while(atomic_uint *word, unsigned value, int64_t ns,
                              int64_t deadline);
int __real_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
void __real_plait__futex_wake(atomic_uint *word, int count);
void __wrap_plait__futex_wake(atomic_uint *word, int count);

enum { SET_NOWHERE, SET_WHILE_LOOKING, SET_BEFORE_SLEEP };

static struct {
    plait_event *event;
    int set_at;                 /* where the waiting thread sets the event itself */
    atomic_int wakes;           /* plait__futex_wake calls */
    atomic_int sleeps;          /* plait__futex_wait calls on a marked word */
    atomic_int unmarked_sleeps; /* ... on a word not marked asleep */
} wm;

bool __wrap_plait__spin_while(atomic_uint *word, unsigned value, int64_t ns,
                              int64_t deadline)
{
    if (wm.set_at == SET_WHILE_LOOKING)
        CHECK_EQ(plait_event_set(wm.event), 0);
    return __real_plait__spin_while(word, value, ns, deadline);
}

int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    if (expected == PLAIT__SIGNAL_AWAITED_ASLEEP && atomic_load(word) == expected)
        atomic_fetch_add(&wm.sleeps, 1);
    else
        atomic_fetch_add(&wm.unmarked_sleeps, 1);
    if (wm.set_at == SET_BEFORE_SLEEP)
        CHECK_EQ(plait_event_set(wm.event), 0);
    return __real_plait__futex_wait(word, expected, deadline);
}

void __wrap_plait__futex_wake(atomic_uint *word, int count)
{
    atomic_fetch_add(&wm.wakes, 1);
    __real_plait__futex_wake(word, count);
}

static void start(int set_at)
{
    CHECK_EQ(plait_event_create(&wm.event), 0);
    wm.set_at = set_at;
    atomic_store(&wm.wakes, 0);
    atomic_store(&wm.sleeps, 0);
    atomic_store(&wm.unmarked_sleeps, 0);
}

static void finish(void)
{
    wm.set_at = SET_NOWHERE;
    CHECK_EQ(plait_event_destroy(wm.event), 0); /* -EBUSY: a node left linked */
}

TEST(a_signal_while_the_thread_looks_makes_no_wake_up)
{
    start(SET_WHILE_LOOKING);
    CHECK_EQ(plait_event_wait(wm.event, SOON()), 0);
    CHECK_EQ(atomic_load(&wm.wakes), 0);
    CHECK_EQ(atomic_load(&wm.sleeps) + atomic_load(&wm.unmarked_sleeps), 0);
    finish();
}

TEST(a_signal_after_the_mark_wakes_the_sleeper)
{
    start(SET_BEFORE_SLEEP);
    CHECK_EQ(plait_event_wait(wm.event, SOON()), 0);
    CHECK_EQ(atomic_load(&wm.sleeps), 1);
    CHECK_EQ(atomic_load(&wm.unmarked_sleeps), 0);
    CHECK_EQ(atomic_load(&wm.wakes), 1);
    finish();
}

/* The deadline passes while the thread sleeps marked: -ETIMEDOUT, no wake-up, and the
 * event is waited on and set as before (the mark was that wait's own). */
TEST(a_marked_sleep_times_out)
{
    start(SET_NOWHERE);
    int64_t begin = plait_now();
    /* (200 ms: a thread preempted past the deadline before its sleep would not sleep) */
    CHECK_EQ(plait_event_wait(wm.event, plait_deadline_in(200 * PLAIT_MS)), -ETIMEDOUT);
    CHECK(plait_now() - begin >= 200 * PLAIT_MS);
    CHECK(atomic_load(&wm.sleeps) >= 1);
    CHECK_EQ(atomic_load(&wm.unmarked_sleeps), 0);
    CHECK_EQ(atomic_load(&wm.wakes), 0);
    CHECK_EQ(plait_event_set(wm.event), 0);
    CHECK_EQ(plait_event_wait(wm.event, SOON()), 0);
    finish();
}

/* Another thread sets the event once the waiter is about to sleep or asleep (it may
 * find the mark before or after the sleep begins: either way the waiter returns). */
static void *set_when_asleep(void *arg)
{
    (void)arg;
    int64_t until = SOON();
    while (!atomic_load(&wm.sleeps) && plait_now() < until)
        sched_yield();
    CHECK_EQ(plait_event_set(wm.event), 0);
    return NULL;
}

TEST(a_signal_from_another_thread_wakes_the_sleeper)
{
    for (int round = 0; round < 100; round++) {
        start(SET_NOWHERE);
        pthread_t setter;
        CHECK_EQ(pthread_create(&setter, NULL, set_when_asleep, NULL), 0);
        CHECK_EQ(plait_event_wait(wm.event, SOON()), 0);
        CHECK_EQ(pthread_join(setter, NULL), 0);
        CHECK_EQ(atomic_load(&wm.unmarked_sleeps), 0);
        CHECK(atomic_load(&wm.sleeps) >= 1);
        CHECK_EQ(atomic_load(&wm.wakes), 1);
        finish();
    }
}

RUN_TESTS(CASE(a_signal_while_the_thread_looks_makes_no_wake_up),
          CASE(a_signal_after_the_mark_wakes_the_sleeper), CASE(a_marked_sleep_times_out),
          CASE(a_signal_from_another_thread_wakes_the_sleeper))
