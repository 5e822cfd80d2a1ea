/*
 * test_exit_key_race.c — two plain threads' first plait_local_set at once, one pthread
 * key left for the program's (review of the exit keys, exit_key.c).
 *
 * Thread A's pthread_key_create takes the last key; thread B's is refused before A has
 * published it.  B's call failed (-ENOMEM) though the key was about to be made (with
 * pthread_once, B used to wait for A).  pthread_key_create is wrapped (-Wl,--wrap) to
 * order the two: A's create returns only once B's has been refused.
 */
#include "helpers.h"

#include <sched.h>

int __real_pthread_key_create(pthread_key_t *key, void (*destructor)(void *));
int __wrap_pthread_key_create(pthread_key_t *key, void (*destructor)(void *));

static atomic_int ordering;   /* the wrapper orders the creates of threads 1 and 2 */
static _Thread_local int who; /* 1: A, 2: B */
static atomic_int a_inside, b_refused;

/* Until flag is set, or a hang becomes a failure (no sleep: the other thread sets it). */
static void wait_until_set(atomic_int *flag)
{
    int64_t give_up = SOON();
    while (!atomic_load(flag) && plait_now() < give_up)
        sched_yield();
    CHECK(atomic_load(flag));
}

int __wrap_pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    int r = __real_pthread_key_create(key, destructor);
    if (atomic_load(&ordering) && who == 1) {
        atomic_store(&a_inside, 1);
        wait_until_set(&b_refused); /* A publishes only after B was refused */
    } else if (atomic_load(&ordering) && who == 2) {
        CHECK(r != 0); /* A holds the last key */
        atomic_store(&b_refused, 1);
    }
    return r;
}

static plait_key key;
static int outcome[3];

static void *first_value(void *arg)
{
    who = INT(arg);
    outcome[who] = plait_local_set(key, &key);
    CHECK(plait_local_get(key) == (outcome[who] == 0 ? &key : NULL));
    return NULL;
}

TEST(a_thread_refused_the_last_key_while_another_makes_it_waits_for_that_one)
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
    wait_until_set(&a_inside);
    CHECK_EQ(pthread_create(&b, NULL, first_value, ARG(2)), 0);
    CHECK_EQ(pthread_join(b, NULL), 0);
    CHECK_EQ(pthread_join(a, NULL), 0);
    atomic_store(&ordering, 0);
    CHECK_EQ(outcome[1], 0);
    CHECK_EQ(outcome[2], 0);
    while (n > 0)
        CHECK_EQ(pthread_key_delete(taken[--n]), 0);
}

RUN_TESTS(CASE(a_thread_refused_the_last_key_while_another_makes_it_waits_for_that_one))
