/*
 * sem.c — counting semaphore, manual-reset event and wait group.
 *
 * All three are a count or flag plus one wait queue under one spin lock.  A release
 * with waiters hands its permit to the first of them instead of raising the count,
 * so a permit can never be stolen between the wake-up and the waiter running.
 */
#include "internal.h"

#include <stdlib.h>

struct plait_sem {
    plait__spinlock lock;
    uint32_t count;
    plait__waitq waiters;
};

struct plait_event {
    plait__spinlock lock;
    bool set;
    plait__waitq waiters;
};

struct plait_waitgroup {
    plait__spinlock lock;
    int32_t count;
    plait__waitq waiters;
};

/* Free an object whose only busy state is a non-empty wait queue. */
static int destroy_idle(plait__spinlock *lock, plait__waitq *q, void *object)
{
    plait__spin_lock(lock);
    bool busy = !plait__waitq_empty(q);
    plait__spin_unlock(lock);
    if (busy)
        return -EBUSY;
    free(object);
    return 0;
}

static void wake_all(plait__waitq *q)
{
    plait__wait_node *node;
    while ((node = plait__waitq_claim(q)))
        plait__waiter_signal(node->waiter, 0, node->index);
}

int plait_sem_create(plait_sem **sem, unsigned initial)
{
    if (!sem)
        return -EINVAL;
    *sem = calloc(1, sizeof **sem);
    if (!*sem)
        return -ENOMEM;
    (*sem)->count = initial;
    return 0;
}

int plait_sem_destroy(plait_sem *s)
{
    return s ? destroy_idle(&s->lock, &s->waiters, s) : -EINVAL;
}

int plait_sem_acquire(plait_sem *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    plait__spin_lock(&s->lock);
    if (s->count > 0) {
        s->count--;
        plait__spin_unlock(&s->lock);
        return 0;
    }
    return plait__wait_on(&s->waiters, &s->lock, NULL, deadline, true, "semaphore", s);
}

int plait_sem_release(plait_sem *s)
{
    if (!s)
        return -EINVAL;
    int r = 0;
    plait__spin_lock(&s->lock);
    plait__wait_node *node = plait__waitq_claim(&s->waiters);
    if (node)
        plait__waiter_signal(node->waiter, 0, node->index);
    else if (s->count == UINT32_MAX)
        r = -EOVERFLOW;
    else
        s->count++;
    plait__spin_unlock(&s->lock);
    return r;
}

int plait_sem_value(plait_sem *s)
{
    if (!s)
        return -EINVAL;
    plait__spin_lock(&s->lock);
    uint32_t v = s->count;
    plait__spin_unlock(&s->lock);
    return v > INT32_MAX ? INT32_MAX : (int)v;
}

int plait_event_create(plait_event **event)
{
    if (!event)
        return -EINVAL;
    *event = calloc(1, sizeof **event);
    return *event ? 0 : -ENOMEM;
}

int plait_event_destroy(plait_event *e)
{
    return e ? destroy_idle(&e->lock, &e->waiters, e) : -EINVAL;
}

int plait_event_set(plait_event *e)
{
    if (!e)
        return -EINVAL;
    plait__spin_lock(&e->lock);
    e->set = true;
    wake_all(&e->waiters);
    plait__spin_unlock(&e->lock);
    return 0;
}

int plait_event_reset(plait_event *e)
{
    if (!e)
        return -EINVAL;
    plait__spin_lock(&e->lock);
    e->set = false;
    plait__spin_unlock(&e->lock);
    return 0;
}

int plait_event_is_set(plait_event *e)
{
    if (!e)
        return -EINVAL;
    plait__spin_lock(&e->lock);
    int set = e->set;
    plait__spin_unlock(&e->lock);
    return set;
}

int plait_event_wait(plait_event *e, int64_t deadline)
{
    if (!e)
        return -EINVAL;
    plait__spin_lock(&e->lock);
    if (e->set) {
        plait__spin_unlock(&e->lock);
        return 0;
    }
    return plait__wait_on(&e->waiters, &e->lock, NULL, deadline, true, "event", e);
}

int plait_waitgroup_create(plait_waitgroup **wg)
{
    if (!wg)
        return -EINVAL;
    *wg = calloc(1, sizeof **wg);
    return *wg ? 0 : -ENOMEM;
}

int plait_waitgroup_destroy(plait_waitgroup *wg)
{
    return wg ? destroy_idle(&wg->lock, &wg->waiters, wg) : -EINVAL;
}

int plait_waitgroup_add(plait_waitgroup *wg, int delta)
{
    if (!wg)
        return -EINVAL;
    plait__spin_lock(&wg->lock);
    int64_t count = (int64_t)wg->count + delta;
    int r = count < 0 ? -EINVAL : count > INT32_MAX ? -EOVERFLOW : 0;
    if (r == 0) {
        wg->count = (int32_t)count;
        if (count == 0)
            wake_all(&wg->waiters);
    }
    plait__spin_unlock(&wg->lock);
    return r;
}

int plait_waitgroup_done(plait_waitgroup *wg) { return plait_waitgroup_add(wg, -1); }

int plait_waitgroup_wait(plait_waitgroup *wg, int64_t deadline)
{
    if (!wg)
        return -EINVAL;
    plait__spin_lock(&wg->lock);
    if (wg->count == 0) {
        plait__spin_unlock(&wg->lock);
        return 0;
    }
    return plait__wait_on(&wg->waiters, &wg->lock, NULL, deadline, true, "waitgroup", wg);
}
