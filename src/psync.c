/*
 * psync.c — the process-shared mutex, semaphore and event: futex words in a shared
 * mapping, waited on from coroutines and threads of any process forked after the
 * object was made.
 *
 * Each object's state is a few atomic words in its own shared mapping (shared.c); the
 * handle, in each process's own memory, counts that process's waits.  Waiting goes
 * through plait__pfutex_wait (pfutex.c): a thread sleeps on the word itself, a
 * coroutine through the watcher thread, so only the coroutine waits.
 *
 * Mutex.  The lock word is the holder's process id (0 when free), taken with one
 * compare-and-swap; within the process, owner_id says which coroutine or thread holds
 * it (for -EPERM and -EDEADLK), and owner_pid whose id that is.  Ids are counters of
 * each process, and a forked child goes on from its parent's, so an id alone does not
 * name one holder: a dead holder's id stays in owner_id until the next holder, a few
 * instructions after its compare-and-swap, writes its own, and a thread of that
 * holder's process with the same id (its main thread, where the dead one was a fork()
 * of it) took the lock for its own in between (-EDEADLK from a lock, an unlock that
 * freed the new holder's lock: tests/test_pshared_owner_window.sh).  So a holder
 * writes owner_id, then owner_pid (release), and unlock clears both; the caller holds
 * the lock when the word, then owner_pid (acquire), then owner_id are its own
 * (held_in): in that window owner_pid still names the dead process, or is 0.  (Unless
 * the dead holder's pid is the new holder's, given again by the kernel, and a thread
 * of it has the dead one's id, in those few instructions: not closed.)  Waiters sleep
 * on `seq`, which every release bumps, and `waiters` tells a release whether anyone
 * sleeps.  The ordering argument: a waiter reads seq, then sees the lock held, then
 * counts itself and sleeps while seq is unchanged; a release frees the lock, bumps
 * seq, then reads the count — all sequentially consistent, so either the release sees
 * the waiter or the waiter's sleep sees the new seq.  There is no hand-off: a released
 * lock goes to whoever takes it first (waiters are woken and race; a process lock is
 * rarely contended by many).
 *
 * When a process dies holding the mutex, the parent that reaps it releases it (the lock
 * word names the dead pid, so this is exact) and marks it, in the same word: the next
 * holder gets -EOWNERDEAD with the lock, as with a robust pthread mutex, and repairs
 * the data.  A holder whose death nobody reports (a grandchild whose parent died
 * first, reaped by init) is found by its waiters, which look every
 * PLAIT__SHARED_RECHECK_NS whether it still exists, and release it the same way.
 * Every object wakes its waiters when one of the processes dies, whatever it held: a
 * process may die between changing a word and waking its waiters.  Where that death is
 * reported to nobody, the semaphore's and the event's waiters look at their word again
 * every PLAIT__SHARED_RECHECK_NS (shared_wait_looking), as the mutex's do.  A process
 * that dies inside a wait leaves its count in `waiters` (the queue's counts too) for
 * good — so does a forked child that dies before the waits it counted again (shared.c)
 * have ended: `waiters` only tells a release to make a futex wake, so a count too high costs
 * each later release a wake-up that finds nobody, never a waiter left asleep.
 *
 * Semaphore.  The count itself is the futex word: a waiter sleeps while it is 0.
 * Event.  One word: bit 0 is "set", the rest a generation that each set bumps, so a
 * waiter released by a set that a reset followed at once still sees that it happened.
 */
#include "internal.h"

#include <stdlib.h>

/* ---- mutex (the state is shared with plait_shm's lock) ---- */

/* The id of the coroutine or thread of process me that holds the mutex, or 0 when no
 * one of me holds it (a holder of another process, or one of me that has taken the word
 * and not yet written which it is). */
static uint64_t held_in(plait__pmutex_state *st, unsigned me)
{
    if (atomic_load(&st->holder) != me ||
        atomic_load_explicit(&st->owner_pid, memory_order_acquire) != me)
        return 0;
    return atomic_load_explicit(&st->owner_id, memory_order_relaxed);
}

/* Release the mutex of the dead holder pid: one compare-and-swap, so the reaper and a
 * waiter that found the holder gone may both try, and the mark that the next holder
 * gets -EOWNERDEAD cannot outlive, or miss, the release. */
static bool release_dead(plait__pmutex_state *st, unsigned pid)
{
    unsigned expected = pid;
    return pid && pid != PLAIT__PMUTEX_DIED &&
           atomic_compare_exchange_strong(&st->holder, &expected, PLAIT__PMUTEX_DIED);
}

void plait__pmutex_died(plait__pmutex_state *st, unsigned pid)
{
    release_dead(st, pid);
    /* held or not, it may have died between a release and its wake-up */
    atomic_fetch_add(&st->seq, 1);
    plait__pfutex_wake(&st->seq);
}

void plait__pmutex_forked(plait__pmutex_state *st, unsigned pid)
{
    /* A new child holds nothing yet: a word that names its id names a holder gone
     * unreported (a plain fork()'s child its program reaped) whose id the kernel gave to
     * this child, which made it look alive to the waiters' looks for as long as it lived. */
    if (release_dead(st, pid)) {
        atomic_fetch_add(&st->seq, 1);
        plait__pfutex_wake(&st->seq);
    }
}

static int pmutex_lock(plait__shared_obj *obj, plait__pmutex_state *st, int64_t deadline,
                       plait__shared_waiting *stay);

/* A woken locker tries the lock again: it stays counted as a waiter until it returns,
 * so an unlock followed by a destroy cannot unmap the state under it. */
int plait__pmutex_lock(plait__shared_obj *obj, plait__pmutex_state *st, int64_t deadline)
{
    plait__shared_waiting stay = {.obj = NULL};
    int r = pmutex_lock(obj, st, deadline, &stay);
    plait__shared_leave(&stay);
    return r;
}

static int pmutex_lock(plait__shared_obj *obj, plait__pmutex_state *st, int64_t deadline,
                       plait__shared_waiting *stay)
{
    uint64_t self = plait__self();
    bool last_look = false; /* made at the deadline */
    for (;;) {
        /* this process's id read again at every look: a coroutine waiting here while
         * another one of its scheduler forks goes on waiting in the child too, and
         * must take the lock as the child (with its parent's id, read once before
         * the fork, it took it in the parent's name: the child could not unlock it,
         * nor its death release it, and the parent's copy of the locker saw itself
         * the holder) */
        unsigned me = plait__pid();
        unsigned word = atomic_load(&st->holder);
        if (word == 0 || word == PLAIT__PMUTEX_DIED) {
            if (atomic_compare_exchange_strong(&st->holder, &word, me)) {
                atomic_store_explicit(&st->owner_id, self, memory_order_relaxed);
                atomic_store_explicit(&st->owner_pid, me, memory_order_release);
                return word == PLAIT__PMUTEX_DIED ? -EOWNERDEAD : 0;
            }
            continue;
        }
        /* held by the caller, or by a pool task it runs on top of */
        uint64_t owner = held_in(st, me);
        if (owner && (owner == self || plait__held_beneath(owner)))
            return -EDEADLK;
        unsigned seq = atomic_load(&st->seq);
        word = atomic_load(&st->holder);
        if (word == 0 || word == PLAIT__PMUTEX_DIED)
            continue;
        /* nobody may report the holder's death (a grandchild whose parent died first):
         * look for it now and then */
        int64_t recheck = plait_deadline_in(PLAIT__SHARED_RECHECK_NS);
        plait__shared_stay(obj, stay);
        int r = plait__shared_wait(obj, &st->seq, seq, &st->waiters,
                                   recheck < deadline ? recheck : deadline, "process mutex");
        if (r == -ETIMEDOUT) {
            /* at every look, the caller's deadline too: a call that tries (a past
             * deadline) or waits less than a recheck looked at the holder never, and got
             * -ETIMEDOUT for ever on a mutex whose holder is gone */
            bool gone = word != me && plait__pid_gone(word);
            if (gone && release_dead(st, word)) {
                atomic_fetch_add(&st->seq, 1); /* then take it, or let others: as a release */
                if (atomic_load(&st->waiters))
                    plait__pfutex_wake(&st->seq);
            }
            if (gone || recheck < deadline)
                continue; /* (taken by a live holder meanwhile: the next timeout ends it) */
            /* at the deadline, a last look: an unlock whose wake-up never came (its
             * process stopped after its store) left the word free, which a wait
             * shorter than the looks above never saw */
            if (!last_look && atomic_load(&st->seq) != seq) {
                last_look = true;
                continue;
            }
        }
        if (r < 0)
            return r;
    }
}

int plait__pmutex_unlock(plait__shared_obj *obj, plait__pmutex_state *st)
{
    if (held_in(st, plait__pid()) != plait__self())
        return -EPERM;
    /* the next holder may destroy it as soon as the word is free: stay inside until the
     * sequence and the sleepers are done with */
    plait__shared_enter(obj);
    atomic_store_explicit(&st->owner_pid, 0, memory_order_relaxed);
    atomic_store_explicit(&st->owner_id, 0, memory_order_relaxed);
    atomic_store(&st->holder, 0);
    atomic_fetch_add(&st->seq, 1);
    if (atomic_load(&st->waiters))
        plait__pfutex_wake(&st->seq);
    plait__shared_exit(obj);
    return 0;
}

/* Whether a destroy must be refused: held, or waited on in this process. */
bool plait__pmutex_busy(plait__shared_obj *obj, plait__pmutex_state *st)
{
    /* The waiters first: a locker of this process stays counted until it holds the lock
     * (plait__pmutex_lock), so a holder word read after it sees that locker.  Read the
     * other way round, a free word and then no waiter could be a locker that took the
     * lock in between. */
    if (atomic_load(&obj->local_waiters) != 0)
        return true;
    unsigned word = atomic_load(&st->holder);
    /* a holder gone, and reaped by someone who did not tell the mutex, holds nothing */
    return word != 0 && word != PLAIT__PMUTEX_DIED &&
           (word == plait__pid() || !plait__pid_gone(word));
}

struct plait_pmutex {
    plait__shared_obj obj;
    plait__pmutex_state *st;
};

static void pmutex_obj_died(plait__shared_obj *obj, unsigned pid)
{
    plait__pmutex_died(((plait_pmutex *)obj)->st, pid);
}

static void pmutex_obj_forked(plait__shared_obj *obj, unsigned pid, bool program)
{
    (void)program;
    plait__pmutex_forked(((plait_pmutex *)obj)->st, pid);
}

/* The handle and its state in one shared page, the handle's pointer to the state (at
 * state_at) set before it is registered: a fork or a death on another thread calls
 * the kind's hooks on it from then on.  NULL when out of memory. */
static void *shared_create(size_t handle_size, size_t state_at, size_t state_size,
                           const plait__shared_hooks *hooks)
{
    char *handle = calloc(1, handle_size);
    if (!handle)
        return NULL;
    void *state = plait__shared_map(state_size);
    if (!state) {
        free(handle);
        return NULL;
    }
    memcpy(handle + state_at, &state, sizeof state);
    plait__shared_register((plait__shared_obj *)handle, hooks, state, state_size);
    return handle;
}

int plait_pmutex_create(plait_pmutex **mutex)
{
    if (!mutex)
        return -EINVAL;
    static const plait__shared_hooks hooks = {pmutex_obj_died, pmutex_obj_forked};
    *mutex = shared_create(sizeof **mutex, offsetof(plait_pmutex, st),
                           sizeof(plait__pmutex_state), &hooks);
    return *mutex ? 0 : -ENOMEM;
}

int plait_pmutex_destroy(plait_pmutex *mutex)
{
    if (!mutex)
        return -EINVAL;
    if (plait__pmutex_busy(&mutex->obj, mutex->st))
        return -EBUSY;
    plait__shared_let_go(&mutex->obj);
    return 0;
}

int plait_pmutex_lock(plait_pmutex *mutex, int64_t deadline)
{
    return mutex ? plait__pmutex_lock(&mutex->obj, mutex->st, deadline) : -EINVAL;
}

int plait_pmutex_unlock(plait_pmutex *mutex)
{
    return mutex ? plait__pmutex_unlock(&mutex->obj, mutex->st) : -EINVAL;
}

/* ---- semaphore ---- */

typedef struct psem_state {
    atomic_uint count;
    atomic_uint waiters;
} psem_state;

struct plait_psem {
    plait__shared_obj obj;
    psem_state *st;
};

/* A process died: it may have released between its change and its wake-up. */
static void psem_died(plait__shared_obj *obj, unsigned pid)
{
    (void)pid;
    plait__pfutex_wake(&((plait_psem *)obj)->st->count);
}

int plait_psem_create(plait_psem **sem, unsigned initial)
{
    if (!sem)
        return -EINVAL;
    static const plait__shared_hooks hooks = {psem_died, NULL};
    *sem = shared_create(sizeof **sem, offsetof(plait_psem, st), sizeof(psem_state), &hooks);
    if (!*sem)
        return -ENOMEM;
    atomic_store(&(*sem)->st->count, initial);
    return 0;
}

int plait_psem_destroy(plait_psem *sem)
{
    if (!sem)
        return -EINVAL;
    if (atomic_load(&sem->obj.local_waiters))
        return -EBUSY;
    plait__shared_let_go(&sem->obj);
    return 0;
}

/* A wait on a semaphore's or an event's word that looks at it again every
 * PLAIT__SHARED_RECHECK_NS: a process that released or set it and died before its
 * wake-up, and whose death nobody reports (a plain fork()'s child, a grandchild reaped
 * by init), left the waiters asleep with the permit there.  0 when it is time to look
 * (woken, or the word moved on), or the wait's failure. */
static int shared_wait_looking(plait__shared_obj *obj, atomic_uint *word, unsigned expected,
                               atomic_uint *sleepers, int64_t deadline, const char *what)
{
    int64_t recheck = plait_deadline_in(PLAIT__SHARED_RECHECK_NS);
    bool capped = recheck < deadline;
    int r = plait__shared_wait(obj, word, expected, sleepers, capped ? recheck : deadline,
                               what);
    return r == -ETIMEDOUT && capped ? 0 : r;
}

/* Take a permit if there is one. */
static bool psem_take(psem_state *st)
{
    unsigned c = atomic_load(&st->count);
    while (c > 0)
        if (atomic_compare_exchange_weak(&st->count, &c, c - 1))
            return true;
    return false;
}

int plait_psem_acquire(plait_psem *sem, int64_t deadline)
{
    if (!sem)
        return -EINVAL;
    psem_state *st = sem->st;
    /* a woken acquirer looks at the count again: it stays counted as a waiter until
     * then, so a release followed by a destroy cannot unmap it meanwhile */
    plait__shared_waiting stay = {.obj = NULL};
    int r = 0;
    while (!psem_take(st)) {
        plait__shared_stay(&sem->obj, &stay);
        r = shared_wait_looking(&sem->obj, &st->count, 0, &st->waiters, deadline,
                                "process semaphore");
        /* at the deadline, a last look: a release whose wake-up never came (its
         * process stopped or died unreported) left the permit, which a wait shorter
         * than the looks above never saw */
        if (r == -ETIMEDOUT && psem_take(st)) {
            r = 0;
            break;
        }
        if (r < 0)
            break;
    }
    plait__shared_leave(&stay);
    return r;
}

int plait_psem_release(plait_psem *sem)
{
    if (!sem)
        return -EINVAL;
    psem_state *st = sem->st;
    plait__shared_enter(&sem->obj); /* an acquirer may destroy it once it has the permit */
    unsigned c = atomic_load(&st->count);
    do {
        if (c == UINT32_MAX) {
            plait__shared_exit(&sem->obj);
            return -EOVERFLOW;
        }
    } while (!atomic_compare_exchange_weak(&st->count, &c, c + 1));
    if (atomic_load(&st->waiters))
        plait__pfutex_wake(&st->count);
    plait__shared_exit(&sem->obj);
    return 0;
}

int plait_psem_value(plait_psem *sem)
{
    if (!sem)
        return -EINVAL;
    unsigned c = atomic_load(&sem->st->count);
    return c > INT32_MAX ? INT32_MAX : (int)c;
}

/* ---- event ---- */

typedef struct pevent_state {
    atomic_uint word;           /* bit 0: set; the rest: how many sets there were */
    atomic_uint waiters;
} pevent_state;

struct plait_pevent {
    plait__shared_obj obj;
    pevent_state *st;
};

/* A process died: it may have set the event between its change and its wake-up. */
static void pevent_died(plait__shared_obj *obj, unsigned pid)
{
    (void)pid;
    plait__pfutex_wake(&((plait_pevent *)obj)->st->word);
}

int plait_pevent_create(plait_pevent **event)
{
    if (!event)
        return -EINVAL;
    static const plait__shared_hooks hooks = {pevent_died, NULL};
    *event = shared_create(sizeof **event, offsetof(plait_pevent, st), sizeof(pevent_state),
                           &hooks);
    return *event ? 0 : -ENOMEM;
}

int plait_pevent_destroy(plait_pevent *event)
{
    if (!event)
        return -EINVAL;
    if (atomic_load(&event->obj.local_waiters))
        return -EBUSY;
    plait__shared_let_go(&event->obj);
    return 0;
}

int plait_pevent_set(plait_pevent *event)
{
    if (!event)
        return -EINVAL;
    pevent_state *st = event->st;
    plait__shared_enter(&event->obj); /* a waiter may destroy it once it is set */
    unsigned v = atomic_load(&st->word);
    do {
        if (v & 1) {
            plait__shared_exit(&event->obj);
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&st->word, &v, (v | 1) + 2));
    if (atomic_load(&st->waiters))
        plait__pfutex_wake(&st->word);
    plait__shared_exit(&event->obj);
    return 0;
}

int plait_pevent_reset(plait_pevent *event)
{
    if (!event)
        return -EINVAL;
    atomic_fetch_and(&event->st->word, ~1u);
    return 0;
}

int plait_pevent_is_set(plait_pevent *event)
{
    return event ? (int)(atomic_load(&event->st->word) & 1) : -EINVAL;
}

int plait_pevent_wait(plait_pevent *event, int64_t deadline)
{
    if (!event)
        return -EINVAL;
    pevent_state *st = event->st;
    unsigned start = atomic_load(&st->word), v = start;
    /* a woken waiter reads the word again: it stays counted until then (as in
     * plait_psem_acquire) */
    plait__shared_waiting stay = {.obj = NULL};
    int r = 0;
    while (!(v & 1) && (v >> 1) == (start >> 1)) {
        plait__shared_stay(&event->obj, &stay);
        r = shared_wait_looking(&event->obj, &st->word, v, &st->waiters, deadline,
                                "process event");
        v = atomic_load(&st->word);
        /* at the deadline, that look is a last one (as in plait_psem_acquire) */
        if (r == -ETIMEDOUT && ((v & 1) || (v >> 1) != (start >> 1)))
            r = 0;
        if (r < 0)
            break;
    }
    plait__shared_leave(&stay);
    return r;
}
