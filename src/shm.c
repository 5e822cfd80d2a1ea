/*
 * shm.c — shared memory regions: bytes that a process and the children it forks
 * afterwards see at the same address, with a lock of their own (Python's
 * multiprocessing.Value and Array with get_lock()).
 *
 * A region is one shared anonymous mapping: a cache line of header (the lock) and the
 * caller's bytes after it, zeroed.  It has no name anywhere, so nothing is left behind
 * when the processes end, however they end.  The handle lives in this process's
 * memory (shared.c): destroying a region unmaps it here only; the other processes
 * keep their mapping until they destroy it or end.
 */
#include "internal.h"

#include <stdlib.h>

enum { HEADER = 64 };

struct plait_shm {
    plait__shared_obj obj;
    plait__pmutex_state *lock;  /* the start of the mapping */
    void *data;
    size_t size, map_size;
};

static void region_died(plait__shared_obj *obj, unsigned pid)
{
    plait__pmutex_died(((plait_shm *)obj)->lock, pid);
}

static void region_forked(plait__shared_obj *obj, unsigned pid, bool program)
{
    (void)program;
    plait__pmutex_forked(((plait_shm *)obj)->lock, pid);
}

int plait_shm_create(plait_shm **shm, size_t size)
{
    if (!shm || size == 0 || size > PLAIT_SHM_MAX)
        return -EINVAL;
    plait_shm *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    _Static_assert(sizeof(plait__pmutex_state) <= HEADER, "the lock fits the header");
    r->map_size = HEADER + size;
    r->lock = plait__shared_map(r->map_size);
    if (!r->lock) {
        free(r);
        return -ENOMEM;
    }
    r->data = (char *)r->lock + HEADER;
    r->size = size;
    static const plait__shared_hooks hooks = {region_died, region_forked};
    plait__shared_register(&r->obj, &hooks, r->lock, r->map_size);
    *shm = r;
    return 0;
}

void *plait_shm_data(plait_shm *shm) { return shm ? shm->data : NULL; }

size_t plait_shm_size(const plait_shm *shm) { return shm ? shm->size : 0; }

int plait_shm_lock(plait_shm *shm, int64_t deadline)
{
    return shm ? plait__pmutex_lock(&shm->obj, shm->lock, deadline) : -EINVAL;
}

int plait_shm_unlock(plait_shm *shm)
{
    return shm ? plait__pmutex_unlock(&shm->obj, shm->lock) : -EINVAL;
}

int plait_shm_destroy(plait_shm *shm)
{
    if (!shm)
        return -EINVAL;
    if (plait__pmutex_busy(&shm->obj, shm->lock))
        return -EBUSY;
    plait__shared_let_go(&shm->obj);
    return 0;
}
