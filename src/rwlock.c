/*
 * rwlock.c — a read-write lock that coroutines and threads share, fair both ways.
 *
 * Like the mutex, it hands off instead of waking to retry: a releaser admits waiters
 * itself (raising `readers` or setting `writer` for them) before they run.  The order:
 *  - a reader gets in at once only when no writer holds the lock and none waits, so
 *    a stream of readers cannot starve a writer;
 *  - a writer's unlock admits every reader waiting at that moment (they queued behind
 *    a writer), and only when none waits hands over to the next writer, so a stream of
 *    writers cannot starve readers;
 *  - the last reader out hands over to the first waiting writer.
 * A writer that gives up waiting (deadline, cancellation) may have been what held
 * readers back: when no other writer is left waiting and none holds the lock, the
 * readers behind it are admitted.
 */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>

/* The most read locks held at once: one more would wrap the count to 0 and let a writer
 * in among the readers.  tests/test_rwlock_max.c builds this file with a small one. */
#ifndef PLAIT__RWLOCK_READERS_MAX
#define PLAIT__RWLOCK_READERS_MAX UINT_MAX
#endif

struct plait_rwlock {
    plait__spinlock lock;
    unsigned readers;           /* holding it shared */
    uint64_t writer;            /* plait__self() of the one holding it exclusive, or 0 */
    plait__waitq read_waiters;
    plait__waitq write_waiters; /* node data: the waiter's identity (a uint64_t *) */
};

int plait_rwlock_create(plait_rwlock **rwlock)
{
    if (!rwlock)
        return -EINVAL;
    *rwlock = calloc(1, sizeof **rwlock);
    return *rwlock ? 0 : -ENOMEM;
}

int plait_rwlock_destroy(plait_rwlock *rw)
{
    if (!rw)
        return -EINVAL;
    plait__spin_lock(&rw->lock);
    bool busy = rw->readers || rw->writer || !plait__waitq_empty(&rw->read_waiters) ||
                !plait__waitq_empty(&rw->write_waiters);
    plait__spin_unlock(&rw->lock);
    if (busy)
        return -EBUSY;
    free(rw);
    return 0;
}

/* Let every waiting reader in (the lock held, no writer).  Each had room when it came,
 * but not necessarily all of them together: one beyond the limit fails, as it would
 * have on arrival. */
static bool admit_readers(plait_rwlock *rw, plait__wakeups *later)
{
    plait__wait_node *node;
    bool any = false;
    while ((node = plait__waitq_claim(&rw->read_waiters))) {
        any = true;
        bool room = rw->readers < PLAIT__RWLOCK_READERS_MAX;
        rw->readers += room;
        plait__waiter_signal(node->waiter, room ? 0 : -EAGAIN, node->index, later);
    }
    return any;
}

/* Hand the lock to the first waiting writer; false when none waits. */
static bool admit_writer(plait_rwlock *rw, plait__wakeups *later)
{
    plait__wait_node *node = plait__waitq_claim(&rw->write_waiters);
    if (!node)
        return false;
    rw->writer = *(const uint64_t *)node->data; /* on its stack: it waits still */
    plait__waiter_signal(node->waiter, 0, node->index, later);
    return true;
}

/* Take the spin lock for a caller who is not the writer: -EDEADLK (not locked) if it is. */
static int enter(plait_rwlock *rw, uint64_t self)
{
    plait__spin_lock(&rw->lock);
    /* the writer: the caller, or a pool task it runs on top of (see mutex.c) */
    if (rw->writer != self && !(rw->writer && plait__held_beneath(rw->writer)))
        return 0;
    plait__spin_unlock(&rw->lock);
    return -EDEADLK;
}

int plait_rwlock_rdlock(plait_rwlock *rw, int64_t deadline)
{
    if (!rw)
        return -EINVAL;
    if (enter(rw, plait__self()) < 0)
        return -EDEADLK;
    if (rw->readers == PLAIT__RWLOCK_READERS_MAX) {
        plait__spin_unlock(&rw->lock);
        return -EAGAIN;
    }
    if (!rw->writer && !plait__waitq_has_other(&rw->write_waiters, NULL)) {
        rw->readers++;
        plait__spin_unlock(&rw->lock);
        return 0;
    }
    return plait__wait_on(&rw->read_waiters, &rw->lock, NULL, deadline, true, "rwlock (read)",
                          rw);
}

int plait_rwlock_wrlock(plait_rwlock *rw, int64_t deadline)
{
    if (!rw)
        return -EINVAL;
    uint64_t self = plait__self();
    if (enter(rw, self) < 0)
        return -EDEADLK;
    if (!rw->writer && rw->readers == 0) {
        rw->writer = self;
        plait__spin_unlock(&rw->lock);
        return 0;
    }
    bool locked;
    int r = plait__wait_on_keep_lock(&rw->write_waiters, &rw->lock, &self, deadline, true,
                                     "rwlock (write)", rw, &locked);
    if (locked) {
        plait__wakeups later;
        later.n = 0;
        if (!rw->writer && !plait__waitq_has_other(&rw->write_waiters, NULL))
            admit_readers(rw, &later);
        plait__spin_unlock(&rw->lock);
        plait__wakeups_deliver(&later);
    }
    return r;
}

int plait_rwlock_rdunlock(plait_rwlock *rw)
{
    if (!rw)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&rw->lock);
    if (rw->readers == 0) {
        plait__spin_unlock(&rw->lock);
        return -EPERM;
    }
    if (--rw->readers == 0 && !admit_writer(rw, &later))
        admit_readers(rw, &later); /* readers held back by a writer that gave up */
    plait__spin_unlock(&rw->lock);
    plait__wakeups_deliver(&later);
    return 0;
}

int plait_rwlock_wrunlock(plait_rwlock *rw)
{
    if (!rw)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&rw->lock);
    if (rw->writer != plait__self()) {
        plait__spin_unlock(&rw->lock);
        return -EPERM;
    }
    rw->writer = 0;
    /* Not a has_other() test first: a reader's deadline or cancellation can claim it
     * between the test and the claim, and then nobody would be admitted. */
    if (!admit_readers(rw, &later))
        admit_writer(rw, &later);
    plait__spin_unlock(&rw->lock);
    plait__wakeups_deliver(&later);
    return 0;
}
