/*
 * test_exit_key_race.c — two plain threads' first plait_local_set at once, one pthread
 * key left for the program's (reviews of the exit keys, exit_key.c).
 *
 * Thread A's pthread_key_create takes the last key; thread B comes while A has not yet
 * published it.  B's own create was refused and its call failed (-ENOMEM) though the
 * key was about to be made; then B waited for A, but only so long, and still made a
 * key of its own where one was free, two keys held at once while the program's own
 * were refused.  As pthread_once does, B must wait for A and make none, asleep: it
 * waited yielding, which under SCHED_FIFO kept a maker of lower priority off its CPU
 * for ever.  pthread_key_create is wrapped (-Wl,--wrap) to count the creates and to
 * hold A's until B sleeps in its call.
 */
#include "helpers.h"

#include <sched.h>

int __real_pthread_key_create(pthread_key_t *key, void (*destructor)(void *));
int __wrap_pthread_key_create(pthread_key_t *key, void (*destructor)(void *));

static atomic_int ordering;   /* the wrapper holds thread 1's create, counts them all */
static _Thread_local int who; /* 1: A, 2: B */
static atomic_int a_inside, b_tid, creates;

int __wrap_pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    if (atomic_load(&ordering))
        atomic_fetch_add(&creates, 1);
    int r = __real_pthread_key_create(key, destructor);
    if (atomic_load(&ordering) && who == 1) {
        atomic_store(&a_inside, 1);
        /* B, in its call meanwhile, must not make a key of its own, and waits asleep */
        wait_for(&b_tid);
        int64_t give_up = SOON();
        while (!thread_asleep(atomic_load(&b_tid)) && plait_now() < give_up)
            sched_yield();
        CHECK(thread_asleep(atomic_load(&b_tid)));
    }
    return r;
}

static plait_key key;
static int outcome[3];

static void *first_value(void *arg)
{
    who = INT(arg);
    if (who == 2)
        atomic_store(&b_tid, (int)syscall(SYS_gettid));
    outcome[who] = plait_local_set(key, &key);
    CHECK(plait_local_get(key) == (outcome[who] == 0 ? &key : NULL));
    return NULL;
}

TEST(a_thread_that_comes_while_another_makes_the_key_waits_for_that_one)
{
    CHECK_EQ(plait_key_create(&key, NULL), 0);
    enum { KEYS_MAX = 4096 };
    static pthread_key_t taken[KEYS_MAX];
    size_t n = 0;
    pthread_t a, b;
    while (n < KEYS_MAX && __real_pthread_key_create(&taken[n], NULL) == 0)
        n++;
    CHECK(n > 0 && n < KEYS_MAX);
    CHECK_EQ(pthread_key_delete(taken[--n]), 0); /* one left */
    atomic_store(&ordering, 1);
    CHECK_EQ(pthread_create(&a, NULL, first_value, ARG(1)), 0);
    wait_for(&a_inside);
    CHECK_EQ(pthread_create(&b, NULL, first_value, ARG(2)), 0);
    CHECK_EQ(pthread_join(b, NULL), 0);
    CHECK_EQ(pthread_join(a, NULL), 0);
    atomic_store(&ordering, 0);
    CHECK_EQ(outcome[1], 0);
    CHECK_EQ(outcome[2], 0);
    CHECK_EQ(atomic_load(&creates), 1); /* B made none */
    while (n > 0)
        CHECK_EQ(pthread_key_delete(taken[--n]), 0);
}

RUN_TESTS(CASE(a_thread_that_comes_while_another_makes_the_key_waits_for_that_one))
