/*
 * barrier.c — a reusable barrier for coroutines and threads.
 *
 * The round completes when a caller arrives to find parties - 1 waiters whose wait is
 * still open; it claims and releases them all and is the round's serial party.  A
 * waiter whose deadline or cancellation claimed its wait first is not among them: it
 * has withdrawn, and the round goes on needing parties callers.
 *
 * `arrived` counts the nodes linked in the current round, withdrawn ones included
 * until their owner takes them off; it only decides when counting the open ones is
 * worth it (once arrived + 1 reaches parties), so a round costs O(parties) rather than
 * a scan per arrival.  The round number tells a withdrawing waiter whether its round
 * is still the current one.
 *
 * A deadline claims its wait without the barrier's lock, so one can fire between the
 * count and the release: that waiter then reports -ETIMEDOUT although the round it was
 * present for completes.  Every party released did arrive; only the report differs.
 */
#include "internal.h"

#include <stdlib.h>

struct plait_barrier {
    plait__spinlock lock;
    unsigned parties;
    size_t arrived;
    uint64_t round;
    plait__waitq waiters;
};

int plait_barrier_create(plait_barrier **barrier, unsigned parties)
{
    if (!barrier || parties == 0)
        return -EINVAL;
    *barrier = calloc(1, sizeof **barrier);
    if (!*barrier)
        return -ENOMEM;
    (*barrier)->parties = parties;
    return 0;
}

int plait_barrier_destroy(plait_barrier *b)
{
    return b ? plait__destroy_idle(&b->lock, &b->waiters, b) : -EINVAL;
}

int plait_barrier_wait(plait_barrier *b, int64_t deadline)
{
    if (!b)
        return -EINVAL;
    plait__spin_lock(&b->lock);
    if (b->arrived + 1 >= b->parties &&
        plait__waitq_count_open(&b->waiters) + 1 == b->parties) {
        plait__wakeups later = {.n = 0};
        plait__waitq_wake_all(&b->waiters, &later);
        b->arrived = 0;
        b->round++;
        plait__spin_unlock(&b->lock);
        plait__wakeups_deliver(&later);
        return PLAIT_BARRIER_SERIAL;
    }
    uint64_t round = b->round;
    b->arrived++;
    bool locked;
    int r = plait__wait_on_keep_lock(&b->waiters, &b->lock, NULL, deadline, true, "barrier", b,
                                     &locked);
    if (locked) {
        if (b->round == round) /* withdrawn from the round still gathering */
            b->arrived--;
        plait__spin_unlock(&b->lock);
    }
    return r;
}
