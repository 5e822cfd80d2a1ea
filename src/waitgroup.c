/* waitgroup.c — wait group (Go's sync.WaitGroup): a counter, and waiters for zero. */
#include "internal.h"

#include <stdlib.h>

struct plait_waitgroup {
    plait__spinlock lock;
    int32_t count;
    plait__waitq waiters;
};

int plait_waitgroup_create(plait_waitgroup **wg)
{
    if (!wg)
        return -EINVAL;
    *wg = calloc(1, sizeof **wg);
    return *wg ? 0 : -ENOMEM;
}

/* In use while waited on, and while its counter is above zero: a done() still to come
 * would write freed memory. */
int plait_waitgroup_destroy(plait_waitgroup *wg)
{
    if (!wg)
        return -EINVAL;
    plait__spin_lock(&wg->lock);
    bool counting = wg->count > 0;
    plait__spin_unlock(&wg->lock);
    return counting ? -EBUSY : plait__destroy_idle(&wg->lock, &wg->waiters, wg);
}

int plait_waitgroup_add(plait_waitgroup *wg, int delta)
{
    if (!wg)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&wg->lock);
    int64_t count = (int64_t)wg->count + delta;
    int r = count < 0 ? -EINVAL : count > INT32_MAX ? -EOVERFLOW : 0;
    if (r == 0) {
        wg->count = (int32_t)count;
        if (count == 0)
            plait__waitq_wake_all(&wg->waiters, &later);
    }
    plait__spin_unlock(&wg->lock);
    plait__wakeups_deliver(&later);
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
