/*
 * sem.c — counting semaphore: a count and one wait queue under one spin lock.
 *
 * A release with waiters hands its permit to the first of them instead of raising
 * the count, so a permit can never be stolen between the wake-up and the waiter
 * running.
 */
#include "internal.h"

#include <stdlib.h>

struct plait_sem {
    plait__spinlock lock;
    uint32_t count;
    plait__waitq waiters;
};

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
    return s ? plait__destroy_idle(&s->lock, &s->waiters, s) : -EINVAL;
}

void plait__sem_free_forked_copy(plait_sem *s)
{
    free(s); /* its waiters, if any, were other threads of the parent */
}

void plait__sem_atfork(plait_sem *s, int phase)
{
    plait__atfork_wait_queue(&s->lock, &s->waiters, phase);
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
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&s->lock);
    plait__wait_node *node = plait__waitq_claim(&s->waiters);
    if (node)
        plait__waiter_signal(node->waiter, 0, node->index, &later);
    else if (s->count == UINT32_MAX)
        r = -EOVERFLOW;
    else
        s->count++;
    plait__spin_unlock(&s->lock);
    plait__wakeups_deliver(&later);
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

