/* test_rwlock_max.c — the read-write lock's limit on read locks held at once.  The
 * library's limit is UINT_MAX, out of a test's reach: this binary builds src/rwlock.c
 * itself with a limit of 3 (tests/CMakeLists.txt), so the same code meets its limit
 * after three read locks. */
#include "helpers.h"

enum { MAX = 3 };

/* One caller: the read lock beyond the limit fails at once, wait or not. */
TEST(read_lock_beyond_limit)
{
    plait_rwlock *rw;
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    for (int i = 0; i < MAX; i++)
        CHECK_EQ(plait_rwlock_rdlock(rw, 0), 0);
    CHECK_EQ(plait_rwlock_rdlock(rw, 0), -EAGAIN);
    CHECK_EQ(plait_rwlock_rdlock(rw, SOON()), -EAGAIN);
    CHECK_EQ(plait_rwlock_rdunlock(rw), 0);
    CHECK_EQ(plait_rwlock_rdlock(rw, 0), 0); /* room again */
    for (int i = 0; i < MAX; i++)
        CHECK_EQ(plait_rwlock_rdunlock(rw), 0);
    CHECK_EQ(plait_rwlock_rdunlock(rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrlock(rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);
}

/* The lock's answer is the task's outcome. */
static void *read_lock(void *arg)
{
    int r = plait_rwlock_rdlock(arg, SOON());
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

static void *write_lock(void *arg)
{
    int r = plait_rwlock_wrlock(arg, SOON());
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* Readers queued behind a writer, each with room when it came, are let in together
 * when the writer gives up: those beyond the limit fail as they would have on arrival. */
static void *admitted_main(void *arg)
{
    (void)arg;
    plait_rwlock *rw;
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    for (int i = 0; i < MAX - 1; i++)
        CHECK_EQ(plait_rwlock_rdlock(rw, 0), 0);
    plait_task writer, readers[2];
    CHECK_EQ(plait_spawn(&writer, write_lock, rw), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&readers[i], read_lock, rw), 0);
    settle(); /* the writer waits, and the readers behind it */
    CHECK_EQ(plait_cancel(writer), 0);
    CHECK_EQ(plait_join(writer, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(readers[0], NULL, SOON()), 0);
    CHECK_EQ(plait_join(readers[1], NULL, SOON()), -EAGAIN);
    for (int i = 0; i < MAX; i++) /* readers are not tracked by identity */
        CHECK_EQ(plait_rwlock_rdunlock(rw), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);
    return NULL;
}

TEST(readers_admitted_beyond_limit) { check_run(admitted_main, NULL); }

RUN_TESTS(CASE(read_lock_beyond_limit), CASE(readers_admitted_beyond_limit))
