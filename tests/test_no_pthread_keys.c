/*
 * test_no_pthread_keys.c — a plain thread's first use of what needs a thread-exit hook
 * (a pthread key), made while the program holds every key there is.
 *
 * plait makes its keys at first use, with pthread_once: a key it could not make then
 * (PTHREAD_KEYS_MAX taken by the program) was never tried again, so every later wait on
 * a descriptor from a plain thread failed (-EAGAIN), and every plait_local_set from
 * one (-ENOMEM), for the life of the process, though the program had freed its keys
 * (a fault-injection audit).  Now the refusal lasts as long as the shortage.  Each
 * case is its key's first use in this process: nothing else here makes them.
 */
#include "helpers.h"

#include <fcntl.h>
#include <unistd.h>

enum { KEYS_MAX = 4096 };
static pthread_key_t taken[KEYS_MAX];
static size_t ntaken;

static void take_every_key(void)
{
    while (ntaken < KEYS_MAX && pthread_key_create(&taken[ntaken], NULL) == 0)
        ntaken++;
    CHECK(ntaken < KEYS_MAX); /* the last one was refused */
}

static void give_the_keys_back(void)
{
    while (ntaken > 0)
        CHECK_EQ(pthread_key_delete(taken[--ntaken]), 0);
}

TEST(a_thread_wait_refused_for_want_of_a_key_works_once_keys_are_free)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    take_every_key();
    /* the thread's wake-up descriptor needs a key to be closed at the thread's end */
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, SOON()), -EAGAIN);
    give_the_keys_back();
    CHECK_EQ(plait_wait_fd(p[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_wait_fd(p[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(close(p[1]), 0);
}

TEST(a_thread_local_refused_for_want_of_a_key_works_once_keys_are_free)
{
    plait_key key;
    CHECK_EQ(plait_key_create(&key, NULL), 0);
    take_every_key();
    int value = 7;
    CHECK_EQ(plait_local_set(key, &value), -ENOMEM);
    CHECK(plait_local_get(key) == NULL);
    give_the_keys_back();
    CHECK_EQ(plait_local_set(key, &value), 0);
    CHECK(plait_local_get(key) == &value);
    CHECK_EQ(plait_local_set(key, NULL), 0);
}

RUN_TESTS(CASE(a_thread_wait_refused_for_want_of_a_key_works_once_keys_are_free),
          CASE(a_thread_local_refused_for_want_of_a_key_works_once_keys_are_free))
