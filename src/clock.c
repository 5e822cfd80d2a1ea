/* clock.c — time and error names. */
#include "internal.h"

#include <string.h>
#include <time.h>

int64_t plait_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

int64_t plait__coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

int64_t plait_deadline_in(int64_t ns)
{
    int64_t now = plait_now();
    if (ns <= 0)
        return now;
    return ns > PLAIT_FOREVER - now ? PLAIT_FOREVER : now + ns;
}

const char *plait_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0: return "success";
    case ESRCH: return "no such task (the handle was joined or detached already)";
    case EPERM: return "not permitted here (wrong context or not the owner)";
    case ETIMEDOUT: return "deadline passed";
    case ECANCELED: return "cancelled";
    case EPIPE: return "channel closed";
    case EDEADLK: return "would wait on itself";
    case EBUSY: return "busy (still in use)";
    default: return strerror(err);
    }
}
