/*
 * group.c — structured task groups: a group cannot end while a child runs.
 *
 * The group lists its running children under its lock; a child unlinks itself (under
 * the same lock) as it finishes, so a child found in the list is alive, and
 * cancelling it from the list is safe from any thread.  The child's future gets its
 * outcome under that lock too (lock order: group, then future), so the group's count
 * and the children's outcomes never disagree for whoever looks at both.
 * plait_group_destroy() closes the group to new children, cancels the rest and waits
 * for them with a wait that the caller's own cancellation cannot cut short: when it
 * returns, no child runs.  It also
 * waits for the parties still inside plait_group_wait() (`waiting`) to leave before it
 * frees the group: woken by the last child, they still take its lock.
 *
 * A cancelled plait_group_wait() cancels the children and waits for them, within its
 * deadline still (a child that does not end, shielded or never at a wait, would hold it
 * for ever; a past deadline is "do not block").
 *
 * Fork: a group's lock held by another thread at a fork (plait_group_cancel holds it
 * over all its children) stayed held in the child, whose coroutines of that group then
 * spun for ever as they finished.  So a fork from a coroutine takes the locks of the
 * groups of its scheduler's coroutines (plait__group_sched_atfork).  Their holders take
 * futures', sets', inboxes' and the future cache's locks, so these come before those
 * in fork.c's order; forks are one at a time by then (fork.c's earlier mutexes), so
 * fork_held, the forker's alone, marks a group taken already.
 *
 * Cancelling a group is for good (`cancelled`): a child spawned into it afterwards —
 * one a cancelled child spawns as it unwinds, or one spawned on another thread at the
 * same moment — starts cancelled, so a cancelled wait that waits for the children
 * does not wait for one that nobody will ever cancel.
 */
#include "internal.h"

#include <stdlib.h>

struct plait_group {
    plait__spinlock lock;
    size_t running;
    int first_error;
    bool closing;
    bool cancelled;             /* plait_group_cancel() was called: new children start so */
    size_t waiting;             /* parties inside plait_group_wait() */
    plait__coro *children;
    plait__waitq waiters;
    bool fork_held;             /* locked by a fork's prepare (plait__group_sched_atfork) */
};

int plait_group_create(plait_group **group)
{
    if (!group)
        return -EINVAL;
    *group = calloc(1, sizeof **group);
    return *group ? 0 : -ENOMEM;
}


int plait__group_child_started(plait_group *g, plait__coro *c)
{
    plait__spin_lock(&g->lock);
    if (g->closing) {
        plait__spin_unlock(&g->lock);
        return -EPIPE;
    }
    if (g->cancelled) /* still being made on this thread: the flag is all it needs */
        atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
    c->group_prev = NULL;
    c->group_next = g->children;
    if (g->children)
        g->children->group_prev = c;
    g->children = c;
    g->running++;
    plait__spin_unlock(&g->lock);
    return 0;
}

void plait__group_child_finished(plait_group *g, plait__coro *c, void *result, int error)
{
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&g->lock);
    /* The outcome under the group's lock: a join that returned finds the group no longer
     * counting c, and a group wait that returned finds c's outcome (a join with a past
     * deadline, a wait-all).  Made before it, the outcome was seen first: a wait(g, 0)
     * right after a join said -ETIMEDOUT (tests/test_group_outcome.c).  The code
     * recorded, -ECANCELED for a child cancelled by then, is the group's too. */
    if (c->future)
        error = plait__future_complete_into(c->future, result, error, &later);
    if (c->group_prev)
        c->group_prev->group_next = c->group_next;
    else
        g->children = c->group_next;
    if (c->group_next)
        c->group_next->group_prev = c->group_prev;
    if (c->group_keeps_outcome && error < 0 && error != -ECANCELED && !g->first_error)
        g->first_error = error;
    if (--g->running == 0)
        plait__waitq_wake_all(&g->waiters, &later);
    plait__spin_unlock(&g->lock);
    plait__wakeups_deliver(&later);
}

int plait_group_spawn(plait_group *group, plait_task *task, plait_fn fn, void *arg)
{
    if (!group)
        return -EINVAL;
    return plait_spawn_opts(task, fn, arg, &(plait_spawn_options){.group = group});
}

int plait_group_cancel(plait_group *group)
{
    if (!group)
        return -EINVAL;
    plait__spin_lock(&group->lock);
    group->cancelled = true;
    for (plait__coro *c = group->children; c; c = c->group_next)
        plait__coro_cancel(c);
    plait__spin_unlock(&group->lock);
    return 0;
}

size_t plait_group_running(plait_group *group)
{
    if (!group)
        return 0;
    plait__spin_lock(&group->lock);
    size_t running = group->running;
    plait__spin_unlock(&group->lock);
    return running;
}

/* Wait until no child runs; alone: and no other party waits either (for destroy).  A
 * wait whose deadline came looks once more: the deadline's -ETIMEDOUT is returned only
 * while a child still runs (its last child may have ended in the same turn of the
 * scheduler, after the deadline's timer took the wait: the group's own outcome then,
 * which plait_group_running's 0 is documented to tell apart). */
static int wait_children(plait_group *g, int64_t deadline, bool cancellable, bool alone)
{
    for (int r = 0;;) {
        plait__spin_lock(&g->lock);
        if (g->running == 0 && !(alone && g->waiting) && (r == 0 || r == -ETIMEDOUT)) {
            r = g->first_error;
            plait__spin_unlock(&g->lock);
            return r;
        }
        if (r < 0) {
            plait__spin_unlock(&g->lock);
            return r;
        }
        r = plait__wait_on(&g->waiters, &g->lock, NULL, deadline, cancellable, "group", g);
    }
}

/* A coroutine waiting for the group it belongs to would wait for itself. */
static bool waits_for_itself(plait_group *g)
{
    plait__coro *self = plait__coro_current();
    return self && self->group == g;
}

int plait_group_wait(plait_group *group, int64_t deadline)
{
    if (!group)
        return -EINVAL;
    if (waits_for_itself(group))
        return -EDEADLK;
    plait__spin_lock(&group->lock);
    group->waiting++;
    plait__spin_unlock(&group->lock);
    int r = wait_children(group, deadline, true, false);
    if (r == -ECANCELED) { /* the children are cancelled and waited for, to the deadline */
        plait_group_cancel(group);
        wait_children(group, deadline, false, false);
    }
    /* the last to leave a closing group wakes its destroyer, which may free it at once */
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&group->lock);
    if (--group->waiting == 0 && group->closing)
        plait__waitq_wake_all(&group->waiters, &later);
    plait__spin_unlock(&group->lock);
    plait__wakeups_deliver(&later);
    return r;
}

int plait_group_destroy(plait_group *group)
{
    if (!group)
        return -EINVAL;
    if (waits_for_itself(group))
        return -EDEADLK;
    plait__spin_lock(&group->lock);
    group->closing = true;
    plait__spin_unlock(&group->lock);
    plait_group_cancel(group);
    int r = wait_children(group, PLAIT_FOREVER, false, true);
    free(group);
    return r;
}

void plait__group_sched_atfork(const plait__sched *s, int phase)
{
    for (plait__coro *c = s->all; c; c = c->all_next) {
        plait_group *g = c->group;
        if (!g)
            continue;
        if (phase == PLAIT__FORK_PREPARE) {
            if (!g->fork_held) {
                plait__spin_lock(&g->lock);
                g->fork_held = true;
            }
        } else if (g->fork_held) {
            if (phase == PLAIT__FORK_CHILD)
                plait__waitq_forget_other_threads(&g->waiters, s);
            g->fork_held = false;
            plait__spin_unlock(&g->lock);
        }
    }
}
