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
 *
 * Letting go.  Deaths reach an object only through the registry of the process that
 * reaps the dead child, so a handle destroyed there while children forked after the
 * object still live is not freed at once: it stays registered, let go, and hears of
 * their deaths (a dead holder's lock is still released, a queue's side still ends)
 * until the last of them is gone; then it is freed.  For that this process keeps the
 * children plait forked and has not yet reported gone, each with its number among this
 * process's forks, and each object counts those forked after it was made.  (One that
 * exec'd is counted by none, but stays listed until its death is reported: plait forks
 * no child with a listed pid, which that late report would take for the dead one.)  A fork's
 * number is taken by the parent's fork handler, the registry lock held since before the
 * fork: an object another thread makes between fork() and plait__shared_forked is made
 * at that number, not before it, and is not the child's (the child never had it).  A let-go
 * object is no new child's (it is not told of later forks), and a child drops the
 * let-go objects it inherits, as their handles are gone.  (A child whose entry cannot
 * be kept, for want of memory, keeps the objects registered until the process ends.)
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static plait__shared_obj *registry;

/* This process's children that plait forked and has not yet reported gone (under the
 * registry lock). */
typedef struct live_child {
    unsigned pid;
    uint64_t fork_no; /* `forks` just after its fork */
} live_child;
static live_child *children;
static size_t children_len, children_cap;
static uint64_t forks; /* plait's forks in this process so far */
/* The number of this thread's plait fork under way, taken by the parent's fork handler
 * while the registry lock is still held from before the fork: an object made after
 * that is made at that number, not before it, and is not the child's (it was made
 * after the fork copied the memory, on another thread, before plait__shared_forked). */
static PLAIT_TLS uint64_t this_fork_no;
/* This thread holds the registry lock to call the objects' hooks (fork and death
 * reports), which look at whether holders are gone (plait__pid_gone): they read the
 * list of children as it is, where another thread only tries the lock. */
static PLAIT_TLS bool registry_held_for_hooks;

static void registry_lock_for_hooks(void)
{
    pthread_mutex_lock(&registry_lock);
    registry_held_for_hooks = true;
}

static void registry_unlock_after_hooks(void)
{
    registry_held_for_hooks = false;
    pthread_mutex_unlock(&registry_lock);
}

void *plait__shared_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void plait__shared_unmap(void *p, size_t size)
{
    munmap(p, size);
}

void plait__shared_register(plait__shared_obj *obj, const plait__shared_hooks *hooks,
                            void *map, size_t map_size)
{
    plait__fork_init(); /* its children must know their own pid (fork.c) */
    obj->hooks = hooks; /* before the registry's readers can see obj */
    atomic_init(&obj->local_waiters, 0);
    atomic_init(&obj->in_calls, 0);
    obj->map = map;
    obj->map_size = map_size;
    obj->children = 0;
    obj->let_go_at = UINT64_MAX;
    pthread_mutex_lock(&registry_lock);
    obj->made_at = forks;
    obj->prev = NULL;
    obj->next = registry;
    if (registry)
        registry->prev = obj;
    registry = obj;
    pthread_mutex_unlock(&registry_lock);
}

/* Take obj out of the registry (under its lock). */
static void unlink_obj(plait__shared_obj *obj)
{
    if (obj->prev)
        obj->prev->next = obj->next;
    else
        registry = obj->next;
    if (obj->next)
        obj->next->prev = obj->prev;
}

static void release(plait__shared_obj *obj)
{
    plait__shared_unmap(obj->map, obj->map_size);
    free(obj);
}

void plait__shared_let_go(plait__shared_obj *obj)
{
    /* a release, set, unlock or close of another thread may still be under way after
     * the change that let this destroy in: a few loads and stores, then a wake-up */
    for (unsigned spins = 0; atomic_load(&obj->in_calls) != 0; spins++)
        plait__spin_pause(spins);
    pthread_mutex_lock(&registry_lock);
    bool now = obj->children == 0;
    if (now)
        unlink_obj(obj);
    else
        obj->let_go_at = forks;
    pthread_mutex_unlock(&registry_lock);
    if (now)
        release(obj);
}

/* Whether obj counts the child of fork number fork_no: made before it, not let go
 * before it. */
static bool counts(const plait__shared_obj *obj, uint64_t fork_no)
{
    return obj->made_at < fork_no && fork_no <= obj->let_go_at;
}

/* pid holds the objects no more (under the registry lock): those that count it count
 * it no more.  A child that exec'd stays listed, counted by none (fork number 0), until
 * its death is reported: its pid is not to be given to a new child until then, whose
 * objects that report would take for the dead one's (plait__shared_pid_unreported).  A
 * pid never forked by plait here counts nothing. */
static void child_gone(unsigned pid, bool execd)
{
    for (size_t i = 0; i < children_len; i++) {
        if (children[i].pid != pid)
            continue;
        uint64_t fork_no = children[i].fork_no;
        if (execd)
            children[i].fork_no = 0;
        else
            children[i] = children[--children_len];
        for (plait__shared_obj *obj = registry; obj; obj = obj->next)
            if (counts(obj, fork_no))
                obj->children--;
        return;
    }
}

/* Free the let-go objects no child holds any more (under the registry lock). */
static void release_unheld(void)
{
    for (plait__shared_obj *obj = registry, *next; obj; obj = next) {
        next = obj->next;
        if (obj->let_go_at != UINT64_MAX && obj->children == 0) {
            unlink_obj(obj);
            release(obj);
        }
    }
}

void plait__shared_child_died(unsigned pid)
{
    registry_lock_for_hooks();
    child_gone(pid, false);
    for (plait__shared_obj *obj = registry; obj; obj = obj->next)
        obj->hooks->died(obj, pid);
    release_unheld();
    registry_unlock_after_hooks();
}

void plait__shared_child_execd(unsigned pid)
{
    pthread_mutex_lock(&registry_lock);
    child_gone(pid, true);
    release_unheld();
    pthread_mutex_unlock(&registry_lock);
}

/* Tell the objects pid holds that it holds them (under the lock): those that count fork
 * fork_no's child (UINT64_MAX: every object this process still holds). */
static void tell_forked(unsigned pid, uint64_t fork_no, bool program)
{
    for (plait__shared_obj *obj = registry; obj; obj = obj->next)
        if (counts(obj, fork_no) && obj->hooks->forked)
            obj->hooks->forked(obj, pid, program);
}

void plait__shared_forked(unsigned pid, bool program)
{
    registry_lock_for_hooks();
    uint64_t fork_no = this_fork_no;
    bool kept = children_len < children_cap;
    if (!kept) {
        size_t cap = children_cap ? 2 * children_cap : 16;
        live_child *list = realloc(children, cap * sizeof *list);
        if (list) {
            children = list;
            children_cap = cap;
            kept = true;
        }
    }
    /* A child the list has no room for is never reported gone (child_gone looks it up
     * there): counted, it would keep the objects it holds mapped for ever, so it is
     * not counted (an object destroyed here meanwhile is freed as if it had none). */
    if (kept) {
        children[children_len++] = (live_child){.pid = pid, .fork_no = fork_no};
        for (plait__shared_obj *obj = registry; obj; obj = obj->next)
            if (counts(obj, fork_no))
                obj->children++;
    }
    tell_forked(pid, fork_no, program);
    registry_unlock_after_hooks();
}

void plait__shared_forked_self(void)
{
    registry_lock_for_hooks();
    tell_forked(plait__pid(), UINT64_MAX, false);
    registry_unlock_after_hooks();
}

/* The waits of this thread (its coroutines', or its own) in plait__shared_wait, on
 * their stacks: a forked child, whose only thread is the one that forked, counts
 * these as its objects' waiters, and no other. */
static PLAIT_TLS plait__shared_waiting *this_thread_waits;

/* In a new child: its parent's children are not its own, and the objects its parent
 * let go are nobody's here.  The waits the parent counted are its threads' (gone
 * here) but for those of the thread that forked, which go on in the child: each is now
 * two waits, the parent's and this one, that will each take themselves off the shared
 * count of sleepers, so it counts them once more (or a waker would see none while this
 * one sleeps). */
static void forget_parent_s_children(void)
{
    children_len = 0;
    for (plait__shared_obj *obj = registry; obj; obj = obj->next) {
        obj->children = 0;
        atomic_store(&obj->local_waiters, 0);
        atomic_store(&obj->in_calls, 0); /* other threads' calls: not here */
    }
    for (plait__shared_waiting *w = this_thread_waits; w; w = w->next) {
        atomic_fetch_add(&w->obj->local_waiters, 1);
        if (w->sleepers) /* NULL: a call that stays (plait__shared_stay) */
            atomic_fetch_add(w->sleepers, 1);
    }
    release_unheld();
}

void plait__shared_atfork(int phase)
{
    if (phase == PLAIT__FORK_PARENT && plait__forking) /* the lock still held */
        this_fork_no = ++forks;
    plait__atfork_mutex(&registry_lock, phase);
    if (phase == PLAIT__FORK_CHILD)
        forget_parent_s_children();
}

/* The thread's waits are a list its coroutines join and leave in any order: each
 * knows what points to it, so leaving takes no walk (thousands of coroutines woken at
 * once each walked to the oldest, at the list's end). */
static void waits_link(plait__shared_waiting *me)
{
    me->next = this_thread_waits;
    me->at = &this_thread_waits;
    if (me->next)
        me->next->at = &me->next;
    this_thread_waits = me;
}

static void waits_unlink(plait__shared_waiting *me)
{
    *me->at = me->next;
    if (me->next)
        me->next->at = me->at;
}

int plait__shared_wait(plait__shared_obj *obj, atomic_uint *word, unsigned expected,
                       atomic_uint *sleepers, int64_t deadline, const char *what)
{
    plait__shared_waiting me = {.obj = obj, .sleepers = sleepers};
    waits_link(&me);
    atomic_fetch_add(&obj->local_waiters, 1);
    atomic_fetch_add(sleepers, 1);
    int r = plait__pfutex_wait(word, expected, deadline, what, obj);
    atomic_fetch_sub(sleepers, 1);
    atomic_fetch_sub(&obj->local_waiters, 1);
    waits_unlink(&me);
    return r;
}

void plait__shared_stay(plait__shared_obj *obj, plait__shared_waiting *me)
{
    if (me->obj)
        return;
    me->obj = obj;
    me->sleepers = NULL;
    waits_link(me);
    atomic_fetch_add(&obj->local_waiters, 1);
}

void plait__shared_leave(plait__shared_waiting *me)
{
    if (!me->obj)
        return;
    atomic_fetch_sub(&me->obj->local_waiters, 1);
    waits_unlink(me);
}

/* Whether pid is in the list of children (under the registry lock). */
static bool listed_child(unsigned pid)
{
    for (size_t i = 0; i < children_len; i++)
        if (children[i].pid == pid)
            return true;
    return false;
}

/* Whether pid is a child plait forked here and has not yet reported gone.  Its death
 * will be reported (a process pool reports a worker only once its replacement holds
 * the objects), though the kernel may have reaped it already (SIGCHLD ignored, or the
 * program's waitpid): until then it counts as alive, or a queue's receiver purging its
 * senders between a worker's end and its replacement's fork was told every sender had
 * gone.  Called under an object's lock, which the registry's holders take inside the
 * registry lock: only tried here, unless this thread holds it for a hook; taken by
 * another thread, the pid counts as such a child (not gone: the purge looks again at
 * its next recheck). */
static bool unreported_child(unsigned pid)
{
    if (registry_held_for_hooks)
        return listed_child(pid);
    if (pthread_mutex_trylock(&registry_lock) != 0)
        return true;
    bool found = listed_child(pid);
    pthread_mutex_unlock(&registry_lock);
    return found;
}

bool plait__shared_pid_unreported(unsigned pid)
{
    pthread_mutex_lock(&registry_lock);
    bool found = listed_child(pid);
    pthread_mutex_unlock(&registry_lock);
    return found;
}

bool plait__pid_gone(unsigned pid)
{
    /* a zombie is not gone yet: its parent will report it, when it is a plait process;
     * nor is a child of this process's plait that is yet to be reported (above); an
     * orphan is gone once init has reaped it */
    return pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH && !unreported_child(pid);
}
