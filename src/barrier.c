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
 * count and the release: that waiter was counted, so it reports 0 like the others
 * (see struct party).
 */
#include "internal.h"

#include <stdlib.h>

struct plait_barrier {
    plait__spinlock lock;
    unsigned parties;
    size_t arrived;
    uint64_t round;
    uint64_t counts;      /* counting passes made: the mark of the latest */
    plait__waitq waiters; /* node data: the waiter's party (on its stack) */
};

/* A waiting party, as the completer sees it.  A deadline or cancellation claims a wait
 * without the barrier's lock, so it can land between the completer's count and its
 * release: the completer marks each node it counted, and one counted but claimed
 * elsewhere before the release is told it was released all the same (it was: the
 * round completed with it). */
typedef struct party {
    uint64_t counted; /* the counting pass that last found it open */
    bool released;
} party;

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

/* Count the open waiters (the lock held), marking each. */
static size_t count_open(plait_barrier *b)
{
    uint64_t mark = ++b->counts;
    size_t open = 0;
    for (plait__wait_node *node = b->waiters.head; node; node = node->next)
        if (!atomic_load_explicit(&node->waiter->claimed, memory_order_acquire)) {
            ((party *)node->data)->counted = mark;
            open++;
        }
    return open;
}

/* Release the waiters the latest count found open (the lock held). */
static void release(plait_barrier *b, plait__wakeups *later)
{
    for (plait__wait_node *node = b->waiters.head, *next; node; node = next) {
        next = node->next;
        party *p = node->data;
        if (p->counted != b->counts)
            continue; /* withdrawn before the count: not of this round */
        if (plait__waitq_claim_node(&b->waiters, node)) {
            plait__waiter_signal(node->waiter, 0, node->index, later);
        } else {
            p->released = true; /* claimed since the count: it will look */
        }
    }
}

int plait_barrier_wait(plait_barrier *b, int64_t deadline)
{
    if (!b)
        return -EINVAL;
    plait__spin_lock(&b->lock);
    if (b->arrived + 1 >= b->parties && count_open(b) + 1 == b->parties) {
        plait__wakeups later;
        later.n = 0;
        release(b, &later);
        b->arrived = 0;
        b->round++;
        plait__spin_unlock(&b->lock);
        plait__wakeups_deliver(&later);
        return PLAIT_BARRIER_SERIAL;
    }
    uint64_t round = b->round;
    b->arrived++;
    party self = {0, false};
    bool locked;
    int r = plait__wait_on_keep_lock(&b->waiters, &b->lock, &self, deadline, true, "barrier",
                                     b, &locked);
    if (locked) {
        if (self.released)
            r = 0; /* the round completed with it before its deadline's claim */
        else if (b->round == round) /* withdrawn from the round still gathering */
            b->arrived--;
        plait__spin_unlock(&b->lock);
    }
    return r;
}
