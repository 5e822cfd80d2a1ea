/*
 * fork.c — keeping plait consistent across fork().
 *
 * A fork copies one thread: the caller.  Any lock another thread held at that moment
 * stays held forever in the child, and plait's own threads (the manager, the default
 * thread pool, the shared-futex watchers) are not there.  So before every fork, plait
 * takes its global locks (the handlers below, registered with pthread_atfork as the
 * library loads: see fork_handlers_at_load), and in the child it releases them — the
 * child's only thread is the one that took them, as POSIX's example of pthread_atfork
 * has it; initialising a mutex again while it is locked is undefined — and forgets
 * its threads, which start again on first use.  Then a child — one plait forked, or
 * one the program forked itself — can use all of plait, whatever the parent's other
 * threads were doing.
 *
 * What it cannot make safe: the program's own objects.  A plait mutex or channel that
 * another thread of the parent held or was using at the fork is a copy of that state
 * in the child, as with pthread mutexes; a child uses its own objects and the
 * process-shared ones (docs/API.md, "Fork").
 *
 * The lock order of the prepare handler: first the manager's spawn lock, which is held
 * only for an instant while no other is (process.c: the record of a start's
 * descriptors, which a foreign fork's child closes); then the default pool's creation
 * lock and the manager's start lock, each held while
 * its holder creates threads and may take the ones after; then, forking from a
 * coroutine, the locks of the groups of the forking thread's scheduler's coroutines
 * (their holders take futures', the future cache's and inboxes' locks: group.c); then
 * signal watchers, keys, stacks, futures, futex watchers,
 * registry, none of which is ever taken while another is held.  Then the spin locks
 * of the table of blocking waits by descriptor (poll.c), held for an instant by
 * whoever holds one, never while taking anything else; then the buckets onces wait in
 * (once.c), held for an instant too; then the semaphores of the signal watchers
 * (signal.c: any thread's plait_signals_wait takes one without the registry lock).
 * Then, forking from a coroutine, the locks of every future of the forking thread's
 * scheduler, whose tasks go on in the child, then those of the plait_completed sets
 * watching them (future.c, plait__future_sched_atfork): the holder of such a future's
 * lock takes only a set's lock and that scheduler's inbox lock meanwhile, a set's holder
 * none.  Last that inbox lock, whose holders take nothing else.
 *
 * Signals.  Before all that, the forking thread blocks every signal but the faults it
 * may cause itself (SIGSYS among them: the trap of a call a seccomp sandbox handles
 * itself, such as the child's io_uring_setup below: one blocked kills at once), until
 * the last handler in parent and child: the child's watched signals get their old
 * dispositions back in its handler (signal.c), and one sent to the child before then
 * (its parent may kill it as soon as fork returns there) would run plait's handler
 * instead, counted for watchers the child does not have and dropped: a SIGTERM would
 * not end it.  Blocked, it waits for the old disposition.
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

static PLAIT_TLS sigset_t mask_before_fork; /* the forking thread's */

/* ---- which process this is ---- */

atomic_uint plait__fork_epoch_now;
unsigned plait__fork_epoch_parent;

/* 1: this process knows its epoch; 0: a child that ran no fork handler and has not
 * found that out yet (the kernel zeroes the word in every child: MADV_WIPEONFORK,
 * Linux 4.14); 2: one of its threads is raising the epoch.  Where the kernel refuses,
 * a word never zeroed: fork handlers only. */
static atomic_uint epoch_known_word = 1;
atomic_uint *plait__epoch_known = &epoch_known_word; /* set at load, before any thread */
/* The process's name for its task handles (future.c), on the same page: 0 until named,
 * so in every child too (or zeroed by the child's handler, where nothing wipes it). */
static atomic_ullong process_name_word;
atomic_ullong *plait__process_name = &process_name_word;

__attribute__((constructor)) static void wipe_on_fork_at_load(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return;
    if (madvise(m, page, MADV_WIPEONFORK) < 0) {
        munmap(m, page);
        return;
    }
    atomic_store((atomic_uint *)m, 1);
    plait__epoch_known = m; /* (kept for the process's life) */
    plait__process_name = (atomic_ullong *)((char *)m + sizeof(atomic_ullong));
}

unsigned plait__fork_epoch_found_out(void)
{
    unsigned expected = 0;
    if (atomic_compare_exchange_strong(plait__epoch_known, &expected, 2)) {
        /* a child of _Fork() or of a raw clone: a new process all the same */
        atomic_fetch_add(&plait__fork_epoch_now, 1);
        atomic_store_explicit(plait__epoch_known, 1, memory_order_release);
    } else {
        while (atomic_load_explicit(plait__epoch_known, memory_order_acquire) != 1)
            sched_yield(); /* (another of its threads raises it this instant) */
    }
    return atomic_load_explicit(&plait__fork_epoch_now, memory_order_relaxed);
}

static void prepare(void)
{
    (void)plait__fork_epoch(); /* a child of _Fork() that forks finds itself out first */
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV); /* a fault with its signal blocked kills at once */
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGSYS);  /* so does a sandbox's trap of a call (seccomp) */
    sigdelset(&all, SIGTRAP); /* and a breakpoint's or watchpoint's */
    pthread_sigmask(SIG_BLOCK, &all, &mask_before_fork);
    plait__file_atfork(PLAIT__FORK_PREPARE); /* (its holders take pool and future locks) */
    plait__spawn_atfork(PLAIT__FORK_PREPARE);
    plait__pool_atfork(PLAIT__FORK_PREPARE);
    plait__manager_atfork(PLAIT__FORK_PREPARE);
    plait__procpool_atfork(PLAIT__FORK_PREPARE);
    plait__sched *s = plait__sched_current();
    if (s) /* (forks are one at a time from here: the mutexes above) */
        plait__group_sched_atfork(s, PLAIT__FORK_PREPARE);
    plait__signals_atfork(PLAIT__FORK_PREPARE);
    plait__local_atfork(PLAIT__FORK_PREPARE);
    plait__stack_atfork(PLAIT__FORK_PREPARE);
    plait__future_atfork(PLAIT__FORK_PREPARE);
    plait__pfutex_atfork(PLAIT__FORK_PREPARE);
    plait__shared_atfork(PLAIT__FORK_PREPARE);
    plait__fd_waits_atfork(PLAIT__FORK_PREPARE);
    plait__once_atfork(PLAIT__FORK_PREPARE);
    plait__signals_atfork_sems(PLAIT__FORK_PREPARE);
    plait__thread_atfork(PLAIT__FORK_PREPARE); /* its holders take nothing else */
    if (s) {
        /* the tasks of the forking thread's scheduler, which go on in the child */
        plait__future_sched_atfork(s, PLAIT__FORK_PREPARE);
        /* Last: its inbox.  Other threads post to it under its spin lock; one caught
         * inside at the fork would leave it held in the child, whose loop would then
         * spin on it for ever.  Its holders take nothing else meanwhile. */
        plait__spin_lock(&s->inbox.lock);
    }
}

static void parent(void)
{
    plait__sched *s = plait__sched_current();
    if (s) {
        plait__spin_unlock(&s->inbox.lock);
        plait__future_sched_atfork(s, PLAIT__FORK_PARENT);
    }
    plait__thread_atfork(PLAIT__FORK_PARENT);
    plait__signals_atfork_sems(PLAIT__FORK_PARENT);
    plait__once_atfork(PLAIT__FORK_PARENT);
    plait__fd_waits_atfork(PLAIT__FORK_PARENT);
    plait__shared_atfork(PLAIT__FORK_PARENT);
    plait__pfutex_atfork(PLAIT__FORK_PARENT);
    plait__future_atfork(PLAIT__FORK_PARENT);
    plait__stack_atfork(PLAIT__FORK_PARENT);
    plait__local_atfork(PLAIT__FORK_PARENT);
    plait__signals_atfork(PLAIT__FORK_PARENT);
    if (s)
        plait__group_sched_atfork(s, PLAIT__FORK_PARENT);
    plait__procpool_atfork(PLAIT__FORK_PARENT);
    plait__manager_atfork(PLAIT__FORK_PARENT);
    plait__pool_atfork(PLAIT__FORK_PARENT);
    plait__spawn_atfork(PLAIT__FORK_PARENT);
    plait__file_atfork(PLAIT__FORK_PARENT);
    pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
}

atomic_uint plait__fork_epoch_now;

static void child(void)
{
    /* Inside fork(), which is no cancellation point, nor may plait's handler make it one
     * (internal.h): it closes the parent's descriptors (the manager's, a signal
     * watchers' pipe, a plain thread's eventfd, a scheduler's poller) with close(2),
     * and a thread with a pthread_cancel pending (copied into the child) unwound there,
     * fork() never returning in the child, plait's locks held. */
    int cancel_state = plait__cancel_off();
    /* first: the handlers below read it */
    plait__fork_epoch_parent = atomic_load(&plait__fork_epoch_now);
    atomic_store(plait__epoch_known, 1);
    atomic_store_explicit(plait__process_name, 0, memory_order_relaxed); /* (not named) */
    atomic_fetch_add(&plait__fork_epoch_now, 1);
    plait__sched *s = plait__sched_current();
    if (s) {
        plait__spin_unlock(&s->inbox.lock); /* the child's only thread took it */
        plait__future_sched_atfork(s, PLAIT__FORK_CHILD);
        plait__sched_after_fork(s); /* wake-ups the parent's threads had on their way */
    }
    plait__thread_atfork(PLAIT__FORK_CHILD);
    plait__signals_atfork_sems(PLAIT__FORK_CHILD); /* before signals_atfork drops the list */
    plait__once_atfork(PLAIT__FORK_CHILD);
    plait__fd_waits_atfork(PLAIT__FORK_CHILD);
    plait__shared_atfork(PLAIT__FORK_CHILD);
    plait__pfutex_atfork(PLAIT__FORK_CHILD);
    plait__future_atfork(PLAIT__FORK_CHILD);
    plait__stack_atfork(PLAIT__FORK_CHILD);
    plait__local_atfork(PLAIT__FORK_CHILD);
    plait__exit_key_atfork(PLAIT__FORK_CHILD);
    plait__signals_atfork(PLAIT__FORK_CHILD);
    if (s)
        plait__group_sched_atfork(s, PLAIT__FORK_CHILD);
    plait__procpool_atfork(PLAIT__FORK_CHILD);
    plait__manager_atfork(PLAIT__FORK_CHILD);
    plait__pool_atfork(PLAIT__FORK_CHILD);
    plait__spawn_atfork(PLAIT__FORK_CHILD);
    plait__file_atfork(PLAIT__FORK_CHILD);
    /* a child plait forks was registered by its parent before it went on; the child
     * must not itself wait for a shared lock before it has its death signal set */
    if (!plait__forking)
        plait__shared_forked_self();
    plait__poll_after_fork();
    plait__watchdog_after_fork();
    /* after every handler has let plait's own locks go: a lock held now is another
     * thread's, for ever */
    if (s)
        plait__sched_strand_after_fork(s);
    /* last: a signal sent to the child meanwhile meets its old disposition now */
    pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
    plait__cancel_restore(cancel_state); /* acted on at the child's next point */
}

void plait__atfork_mutex(pthread_mutex_t *m, int phase)
{
    if (phase == PLAIT__FORK_PREPARE)
        pthread_mutex_lock(m);
    else
        pthread_mutex_unlock(m);
}

void plait__atfork_wait_queue(plait__spinlock *lock, plait__waitq *q, int phase)
{
    if (phase == PLAIT__FORK_PREPARE)
        plait__spin_lock(lock);
    else
        plait__spin_unlock(lock); /* in the child: ours, copied held */
    if (phase == PLAIT__FORK_CHILD)
        plait__waitq_forget_other_threads(q, plait__sched_current());
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void)
{
    pthread_atfork(prepare, parent, child);
}

void plait__fork_init(void)
{
    pthread_once(&once, install);
}

/* As the library loads, before the program's main: a program's own fork handlers are
 * then registered after plait's, so its prepare runs before plait takes its locks, and
 * its parent and child handlers after plait has let them go (POSIX's orders: prepare
 * handlers in the reverse order of registration, the others in it).  Registered at
 * plait's first global state, they came after the program's, whose handlers then ran
 * while plait held its locks: a plait call there that needs one waited for ever, and
 * so did every fork (test_fork_handlers_first).  Handlers another library registers
 * in a constructor run before this one still come first: they must not call plait. */
__attribute__((constructor)) static void fork_handlers_at_load(void) { plait__fork_init(); }
