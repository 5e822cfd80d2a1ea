/*
 * mutex.c — a mutex that coroutines and threads share, and the condition on it.
 *
 * Unlock hands the mutex straight to the first waiter (its owner is set before it
 * wakes), so a waiter cannot be overtaken forever and the woken party never has to
 * retry.  The owner is the calling coroutine or plain thread (plait__self), which is
 * how unlock by a non-owner and relocking one's own mutex are caught.
 */
#include "internal.h"

#include <stdlib.h>

struct plait_mutex {
    plait__spinlock lock;
    const void *owner;
    plait__waitq waiters; /* node data: the waiter's identity */
};

struct plait_cond {
    plait__spinlock lock;
    plait__waitq waiters;
};

int plait_mutex_create(plait_mutex **mutex)
{
    if (!mutex)
        return -EINVAL;
    *mutex = calloc(1, sizeof **mutex);
    return *mutex ? 0 : -ENOMEM;
}

int plait_mutex_destroy(plait_mutex *m)
{
    if (!m)
        return -EINVAL;
    plait__spin_lock(&m->lock);
    bool busy = m->owner || !plait__waitq_empty(&m->waiters);
    plait__spin_unlock(&m->lock);
    if (busy)
        return -EBUSY;
    free(m);
    return 0;
}

static int mutex_lock(plait_mutex *m, int64_t deadline, bool cancellable)
{
    const void *self = plait__self();
    plait__spin_lock(&m->lock);
    if (!m->owner) {
        m->owner = self;
        plait__spin_unlock(&m->lock);
        return 0;
    }
    if (m->owner == self) {
        plait__spin_unlock(&m->lock);
        return -EDEADLK;
    }
    return plait__wait_on(&m->waiters, &m->lock, (void *)self, deadline, cancellable,
                          "mutex", m);
}

int plait_mutex_lock(plait_mutex *m, int64_t deadline)
{
    if (!m)
        return -EINVAL;
    return mutex_lock(m, deadline, true);
}

int plait_mutex_unlock(plait_mutex *m)
{
    if (!m)
        return -EINVAL;
    plait__spin_lock(&m->lock);
    if (m->owner != plait__self()) {
        plait__spin_unlock(&m->lock);
        return -EPERM;
    }
    plait__wait_node *node = plait__waitq_claim(&m->waiters);
    m->owner = node ? node->data : NULL;
    if (node)
        plait__waiter_signal(node->waiter, 0, node->index);
    plait__spin_unlock(&m->lock);
    return 0;
}

int plait_cond_create(plait_cond **cond)
{
    if (!cond)
        return -EINVAL;
    *cond = calloc(1, sizeof **cond);
    return *cond ? 0 : -ENOMEM;
}

int plait_cond_destroy(plait_cond *c)
{
    return c ? plait__destroy_idle(&c->lock, &c->waiters, c) : -EINVAL;
}

int plait_cond_wait(plait_cond *c, plait_mutex *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    plait__spin_lock(&m->lock);
    bool owner = m->owner == plait__self();
    plait__spin_unlock(&m->lock);
    if (!owner)
        return -EPERM;
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    if (plait__deadline_passed(deadline))
        return -ETIMEDOUT;
    /* Enqueue before unlocking the mutex: a signal sent after the unlock finds us. */
    plait__waiter w;
    plait__wait_node node;
    plait__waiter_init(&w, "condition", c);
    plait__spin_lock(&c->lock);
    plait__waitq_push(&c->waiters, &c->lock, &node, &w, 0, NULL);
    plait__spin_unlock(&c->lock);
    plait_mutex_unlock(m);
    r = plait__waiter_block(&w, deadline);
    plait__wait_node_unlink(&node);
    mutex_lock(m, PLAIT_FOREVER, false);
    return r;
}

static int cond_wake(plait_cond *c, bool all)
{
    if (!c)
        return -EINVAL;
    plait__spin_lock(&c->lock);
    plait__wait_node *node;
    while ((node = plait__waitq_claim(&c->waiters))) {
        plait__waiter_signal(node->waiter, 0, node->index);
        if (!all)
            break;
    }
    plait__spin_unlock(&c->lock);
    return 0;
}

int plait_cond_signal(plait_cond *c) { return cond_wake(c, false); }
int plait_cond_broadcast(plait_cond *c) { return cond_wake(c, true); }
