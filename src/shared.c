/*
 * shared.c — what every process-shared object has in common: a mapping shared with
 * the children forked after it was made, and a place in this process's registry, so
 * that the death of a child can be told to it.
 *
 * An object is two things: its state, in a shared anonymous mapping (so it is the same
 * memory, at the same address, in every process forked after its creation), and its
 * handle, in this process's own memory (copied by fork, so each process has its own:
 * it counts the waits of this process only, which is what decides whether this
 * process may unmap the state).  Nothing has a name in the file system: the memory
 * goes when the last process that maps it ends, however it ends.
 *
 * When the manager thread (process.c) or a process pool sees one of this process's
 * children die, it calls plait__shared_child_died before it reaps the child: every
 * registered object releases what the dead process held (a lock) and takes note that
 * one of its users is gone (a queue's side).  The registry is copied into children
 * like everything else, so a child that forks in turn tells the same objects about its
 * own children.  The objects also hear of each new child (plait__shared_forked): from
 * the parent when plait forks it, before the parent goes on (so no sibling's death can
 * be judged without it), and from the child's fork handler for forks the program
 * makes itself.
 */
#include "internal.h"

#include <pthread.h>
#include <sys/mman.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static plait__shared_obj *registry;

void *plait__shared_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void plait__shared_unmap(void *p, size_t size)
{
    munmap(p, size);
}

void plait__shared_register(plait__shared_obj *obj,
                            void (*died)(plait__shared_obj *obj, unsigned pid))
{
    plait__fork_init(); /* its children must know their own pid (fork.c) */
    obj->died = died;
    obj->forked = NULL;
    obj->execd = NULL;
    atomic_init(&obj->local_waiters, 0);
    pthread_mutex_lock(&registry_lock);
    obj->prev = NULL;
    obj->next = registry;
    if (registry)
        registry->prev = obj;
    registry = obj;
    pthread_mutex_unlock(&registry_lock);
}

void plait__shared_unregister(plait__shared_obj *obj)
{
    pthread_mutex_lock(&registry_lock);
    if (obj->prev)
        obj->prev->next = obj->next;
    else
        registry = obj->next;
    if (obj->next)
        obj->next->prev = obj->prev;
    pthread_mutex_unlock(&registry_lock);
}

void plait__shared_child_died(unsigned pid)
{
    pthread_mutex_lock(&registry_lock);
    for (plait__shared_obj *obj = registry; obj; obj = obj->next)
        if (obj->died)
            obj->died(obj, pid);
    pthread_mutex_unlock(&registry_lock);
}

void plait__shared_child_execd(unsigned pid)
{
    pthread_mutex_lock(&registry_lock);
    for (plait__shared_obj *obj = registry; obj; obj = obj->next) {
        if (obj->execd)
            obj->execd(obj, pid);
        else if (obj->died)
            obj->died(obj, pid);
    }
    pthread_mutex_unlock(&registry_lock);
}

void plait__shared_forked(unsigned pid)
{
    pthread_mutex_lock(&registry_lock);
    for (plait__shared_obj *obj = registry; obj; obj = obj->next)
        if (obj->forked)
            obj->forked(obj, pid);
    pthread_mutex_unlock(&registry_lock);
}

void plait__shared_atfork(int phase)
{
    plait__atfork_mutex(&registry_lock, phase);
}

int plait__shared_wait(plait__shared_obj *obj, atomic_uint *word, unsigned expected,
                       int64_t deadline, const char *what)
{
    atomic_fetch_add(&obj->local_waiters, 1);
    int r = plait__pfutex_wait(word, expected, deadline, what, obj);
    atomic_fetch_sub(&obj->local_waiters, 1);
    return r;
}
