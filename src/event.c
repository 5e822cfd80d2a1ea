/* event.c — manual-reset event: set wakes every waiter and lets later waits through
 * until reset. */
#include "internal.h"

#include <stdlib.h>

struct plait_event {
    plait__spinlock lock;
    bool set;
    plait__waitq waiters;
};

int plait_event_create(plait_event **event)
{
    if (!event)
        return -EINVAL;
    *event = calloc(1, sizeof **event);
    return *event ? 0 : -ENOMEM;
}

int plait_event_destroy(plait_event *e)
{
    return e ? plait__destroy_idle(&e->lock, &e->waiters, e) : -EINVAL;
}

int plait_event_set(plait_event *e)
{
    if (!e)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&e->lock);
    e->set = true;
    plait__waitq_wake_all(&e->waiters, &later);
    plait__spin_unlock(&e->lock);
    plait__wakeups_deliver(&later);
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

int plait__event_wait(plait_event *e, int64_t deadline, bool cancellable)
{
    plait__spin_lock(&e->lock);
    if (e->set) {
        plait__spin_unlock(&e->lock);
        return 0;
    }
    return plait__wait_on(&e->waiters, &e->lock, NULL, deadline, cancellable, "event", e);
}

int plait_event_wait(plait_event *e, int64_t deadline)
{
    return e ? plait__event_wait(e, deadline, true) : -EINVAL;
}

