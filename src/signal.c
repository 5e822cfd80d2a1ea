/*
 * signal.c — signals delivered to waiting coroutines and threads.
 *
 * A watcher (plait_signals) names the signals it wants; every delivery of one of them
 * to the process is counted for every watcher of it, until plait_signals_wait() takes
 * it.  The kernel side is the classic self-pipe: the handler plait installs for a
 * watched signal only adds to a per-signal counter and writes a byte to a pipe, both
 * async-signal-safe.  A dispatcher thread ("plait-signals", started with the first
 * watcher) reads the pipe, moves the counts to the watchers under the registry lock
 * and releases each watcher's semaphore once per delivery, so a wait is an ordinary
 * plait wait: a coroutine suspends alone, with a deadline, cancellable.  A wait also
 * moves the counts first, as create and destroy do: a delivery whose handler has run
 * is there for a wait that does not block (a past deadline), not only once the
 * dispatcher has run (such a wait after raise() once said -ETIMEDOUT every time).
 *
 * The dispatcher thread blocks every signal but those watched, which it takes (its mask
 * is set anew each time it wakes, and a watcher made or gone wakes it): a signal the
 * program's own threads all block — a mask inherited through exec, or kept for
 * sigwait() — still reaches its watchers, as in Go, where the runtime's signal thread
 * takes the signals Notify asked for.  (A signal sent to one thread, pthread_kill,
 * stays that thread's.  A program that sigwait()s for a signal it also watches shares
 * it with plait, as it would with another thread that does not block it.)
 *
 * The disposition a signal had before its first watcher is restored when its last
 * watcher goes — after the dispatcher has blocked it again (the destroy waits for the
 * dispatcher to say so, masks_applied): restored first, a signal that every other
 * thread blocks came to the dispatcher under the old disposition (SIG_DFL: the process
 * died) instead of staying pending for the program's sigwait().  While the destroy
 * waits, the signal is `restoring`: a watcher made then keeps plait's handler and the
 * saved disposition.  The disposition is restored in a forked child too (whose
 * watchers are copies nobody serves: a child forked to run a function must still die
 * of SIGTERM; every count is the parent's, handed to a watcher or not, and the child
 * drops them; their semaphore permits stay, and a wait that takes one and finds
 * nothing pending waits on).  A child made without fork handlers (_Fork) keeps its
 * parent's state but has no dispatcher, and its handler writes to no pipe (the parent's
 * numbers may be the program's files by now): its first create or wait gives it a pipe
 * and a dispatcher of its own (dispatcher_start), at numbers of its own; until then its
 * last watcher's destroy gives the disposition back at once (no other thread).  SIGCHLD may be watched: plait's
 * processes are reaped through pidfds, not by the signal.  The faults a thread
 * causes itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL), SIGKILL and SIGSTOP cannot be.
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIGNAL_MAX 65 /* signal numbers are 1 .. _NSIG-1 */

struct plait_signals {
    plait_signals *next;
    bool wanted[SIGNAL_MAX];
    unsigned pending[SIGNAL_MAX]; /* deliveries not yet taken (registry lock) */
    plait_sem *ready;             /* one release per pending delivery */
    struct inside *inside;        /* callers in plait_signals_wait (registry lock): a
                                   * destroy is refused until they have left, even after
                                   * the semaphore let them go */
};

/* One caller in plait_signals_wait, on its stack: a forked child keeps those of the
 * thread that forked (its coroutines may wait on there), the others are not there. */
struct inside {
    struct inside *next;
    pthread_t thread;
};

static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;
static plait_signals *watchers;
static unsigned watch_count[SIGNAL_MAX];
static struct sigaction before[SIGNAL_MAX];
static bool restoring[SIGNAL_MAX]; /* unwatched, the old disposition not yet given back */
static unsigned restore_after[SIGNAL_MAX]; /* ... once the dispatcher made this mask */
static unsigned masks_wanted;      /* mask changes asked of the dispatcher (registry lock) */
static atomic_uint masks_applied;  /* the last of them it made (futex word) */
static atomic_uint delivered[SIGNAL_MAX];
/* The self-pipe: the dispatcher reads pipe_out; the handler writes to pipe_in, and
 * only at the fork epoch and in the process the pipe was made at (pipe_epoch and
 * pipe_pid, stored after pipe_in): a child of _Fork() has its parent's numbers, which
 * the program may have closed and reused since.  (The pid too: where the kernel refuses
 * MADV_WIPEONFORK, such a child's epoch never moves on.) */
static int pipe_out = -1;
static atomic_int pipe_in = -1;
static atomic_uint pipe_epoch;
static atomic_int pipe_pid;
static bool dispatcher_started;
static unsigned dispatcher_epoch; /* the process it serves: a child made without fork
                                   * handlers (_Fork) has none, though it looks started */

/* Wake the dispatcher: a delivery was counted, or the watched set changed.
 * Async-signal-safe. */
static void poke_dispatcher(void)
{
    /* Not write(), a cancellation point: the handler runs on whatever thread the signal
     * interrupts, in plait's own sections too (a lock held, a wait linked), where a
     * pthread_cancel pending was acted on.  The raw system call is none. */
    char c = 0;
    unsigned now;
    if (!plait__fork_epoch_if_known(&now) ||
        atomic_load_explicit(&pipe_epoch, memory_order_acquire) != now ||
        atomic_load_explicit(&pipe_pid, memory_order_relaxed) != getpid())
        return; /* the parent's (a child of _Fork): its dispatcher, when made, looks at
                 * the counts first */
    int fd = atomic_load_explicit(&pipe_in, memory_order_relaxed);
    if (fd < 0)
        return; /* none yet */
    long ignored = syscall(SYS_write, fd, &c, 1); /* full: already says "look" */
    (void)ignored;
}

/* Whether the handler runs in a process that shares the memory of the one the counts
 * are for without being it: a vfork() child (or a raw clone with CLONE_VM) before it
 * execs, sent a signal, counted it as the parent's (whose watchers then saw a delivery
 * it never had).  A child with memory of its own (fork, _Fork) is at another epoch, or
 * has not found its epoch out yet: its counts are its own.  Async-signal-safe. */
static bool in_the_parents_memory(void)
{
    unsigned now;
    int owner = atomic_load_explicit(&pipe_pid, memory_order_relaxed);
    return owner != 0 && plait__fork_epoch_if_known(&now) &&
           atomic_load_explicit(&pipe_epoch, memory_order_acquire) == now &&
           owner != getpid();
}

static void on_signal(int signo)
{
    int saved = errno;
    if (!in_the_parents_memory())
        atomic_fetch_add_explicit(&delivered[signo], 1, memory_order_relaxed);
    poke_dispatcher();
    errno = saved;
}

/* Hand the counted deliveries to the watchers (registry lock held). */
static void distribute(void)
{
    for (int sig = 1; sig < SIGNAL_MAX; sig++) {
        unsigned n = atomic_exchange(&delivered[sig], 0);
        if (!n)
            continue;
        for (plait_signals *w = watchers; w; w = w->next) {
            if (!w->wanted[sig])
                continue;
            w->pending[sig] += n;
            for (unsigned i = 0; i < n; i++)
                plait_sem_release(w->ready);
        }
    }
}

static void *dispatcher(void *unused)
{
    (void)unused;
    pthread_setname_np(pthread_self(), "plait-signals"); /* see plait__thread_create */
    for (;;) {
        pthread_mutex_lock(&registry);
        distribute();
        /* every signal blocked but the watched ones, whose handler is plait's */
        sigset_t mask;
        sigfillset(&mask);
        for (int sig = 1; sig < SIGNAL_MAX; sig++)
            if (watch_count[sig])
                sigdelset(&mask, sig);
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
        if (atomic_load(&masks_applied) != masks_wanted) {
            atomic_store(&masks_applied, masks_wanted);
            plait__futex_wake(&masks_applied, INT_MAX);
        }
        pthread_mutex_unlock(&registry);
        /* It sleeps in poll, then reads what is there: ThreadSanitizer runs the handler
         * of a signal that comes to a thread asleep in poll at once, but one that comes
         * to a thread asleep in read (gcc 12's runtime) only when the read returns, and
         * the read, restarted, waited on for the byte that handler was to write (a
         * server's SIGTERM went unanswered; test_examples_faults). */
        struct pollfd readable = {.fd = pipe_out, .events = POLLIN};
        if (poll(&readable, 1, -1) < 0) {
            if (errno != EINTR)
                abort(); /* the pipe is plait's own: this cannot happen */
            continue;
        }
        char buf[64];
        ssize_t n = read(pipe_out, buf, sizeof buf);
        if (n < 0 && errno != EINTR)
            abort(); /* (as above) */
    }
    return NULL;
}

/* The pipe of fork epoch `epoch`: the first, or, in a child made without fork
 * handlers (_Fork), which looks started but has no dispatcher, one of its own in place
 * of its parent's (whose bytes woke the parent's dispatcher, and its own waits never).
 * The parent's numbers are left alone: the program may have closed them since and
 * opened files of its own there (they were put over with dup3, and the files lost).
 * 0 or -errno. */
static int pipe_of_its_own(unsigned epoch)
{
    int fresh[2];
    if (pipe2(fresh, O_CLOEXEC) < 0)
        return -errno;
    fcntl(fresh[1], F_SETFL, O_NONBLOCK); /* the handler must never block */
    pipe_out = fresh[0];
    atomic_store_explicit(&pipe_in, fresh[1], memory_order_relaxed);
    atomic_store_explicit(&pipe_pid, getpid(), memory_order_relaxed);
    atomic_store_explicit(&pipe_epoch, epoch, memory_order_release);
    return 0;
}

/* The pipe and the dispatcher of this process, once (registry lock held).  0 or
 * -errno. */
static int dispatcher_start(void)
{
    unsigned epoch = plait__fork_epoch();
    if (dispatcher_started && dispatcher_epoch == epoch)
        return 0;
    if (atomic_load(&pipe_in) < 0 || atomic_load(&pipe_epoch) != epoch) {
        int r = pipe_of_its_own(epoch);
        if (r < 0)
            return r;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes no signal itself */
    pthread_t th;
    int r = plait__thread_create(&th, NULL, dispatcher, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -r;
    pthread_detach(th);
    dispatcher_started = true;
    dispatcher_epoch = epoch;
    return 0;
}

static bool watchable(int sig)
{
    return sig > 0 && sig < SIGNAL_MAX && sig < _NSIG && sig != SIGKILL && sig != SIGSTOP &&
           sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL;
}

/* Undo the handlers of w's signals whose last watcher w was (registry lock held; let go
 * while the dispatcher blocks them: see the top). */
static void unwatch(const plait_signals *w)
{
    unsigned asked = masks_wanted + 1;
    for (int sig = 1; sig < SIGNAL_MAX; sig++)
        if (w->wanted[sig] && --watch_count[sig] == 0) {
            restoring[sig] = true;
            restore_after[sig] = masks_wanted = asked;
        }
    if (masks_wanted != asked)
        return;
    unsigned seen = asked; /* no dispatcher here: nothing to wait for */
    bool served = dispatcher_started && dispatcher_epoch == plait__fork_epoch();
    if (served)
        poke_dispatcher();
    while (served && (int)((seen = atomic_load(&masks_applied)) - asked) < 0) {
        pthread_mutex_unlock(&registry);
        if (!plait__spin_while(&masks_applied, seen, PLAIT__WAIT_SPIN_NS, PLAIT_FOREVER))
            plait__futex_wait(&masks_applied, seen, PLAIT_FOREVER);
        pthread_mutex_lock(&registry);
    }
    /* those of this destroy and of any other whose mask is made (not of one whose mask
     * is still to come); one watched again meanwhile keeps plait's handler */
    for (int sig = 1; sig < SIGNAL_MAX; sig++)
        if (restoring[sig] && (int)(seen - restore_after[sig]) >= 0) {
            if (watch_count[sig] == 0)
                sigaction(sig, &before[sig], NULL);
            restoring[sig] = false;
        }
}

int plait_signals_create(plait_signals **out, const int *signals, size_t n)
{
    if (!out || !signals || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!watchable(signals[i]))
            return -EINVAL;
    plait_signals *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    int r = plait_sem_create(&w->ready, 0);
    if (r < 0) {
        free(w);
        return r;
    }
    for (size_t i = 0; i < n; i++)
        w->wanted[signals[i]] = true;
    plait__fork_init();
    pthread_mutex_lock(&registry);
    distribute(); /* what was counted before this watcher is the existing watchers' */
    r = dispatcher_start();
    /* SA_ONSTACK: the thread may be running a coroutine on a small stack (2 KiB may be
     * asked for), which the kernel's signal frame (several KiB with AVX-512) would
     * overflow; a scheduler thread has an alternate stack (stack.c) */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_ONSTACK};
    sigfillset(&sa.sa_mask);
    for (int sig = 1; sig < SIGNAL_MAX && r == 0; sig++) {
        if (!w->wanted[sig])
            continue;
        /* (one still `restoring` has plait's handler, and `before` is its old one) */
        if (watch_count[sig] == 0 && !restoring[sig] && sigaction(sig, &sa, &before[sig]) < 0) {
            r = -errno;
            /* the ones taken so far, which the dispatcher has not unblocked (it has not
             * run since), unless a destroy waits to restore one */
            for (int undo = 1; undo < sig; undo++)
                if (w->wanted[undo] && --watch_count[undo] == 0 && !restoring[undo])
                    sigaction(undo, &before[undo], NULL);
            break;
        }
        watch_count[sig]++;
    }
    if (r == 0) {
        w->next = watchers;
        watchers = w;
        poke_dispatcher(); /* to take the signals now watched */
    }
    pthread_mutex_unlock(&registry);
    if (r < 0) {
        plait_sem_destroy(w->ready);
        free(w);
        return r;
    }
    *out = w;
    return 0;
}

int plait_signals_wait(plait_signals *w, int64_t deadline)
{
    if (!w)
        return -EINVAL;
    struct inside me = {.thread = pthread_self()};
    pthread_mutex_lock(&registry);
    /* in a child made without fork handlers, the watchers it inherited are served by a
     * dispatcher of its own (dispatcher_start; tried again after a failed start) */
    if (watchers) {
        int r = dispatcher_start();
        if (r < 0) {
            pthread_mutex_unlock(&registry);
            return r;
        }
    }
    /* a delivery whose handler has run is counted: take it now, not when the
     * dispatcher gets round to it (a wait with a past deadline must see it) */
    distribute();
    me.next = w->inside;
    w->inside = &me;
    pthread_mutex_unlock(&registry);
    int r;
    for (;;) {
        r = plait_sem_acquire(w->ready, deadline);
        pthread_mutex_lock(&registry);
        if (r != 0)
            break;
        int sig = 1;
        while (sig < SIGNAL_MAX && w->pending[sig] == 0)
            sig++;
        if (sig < SIGNAL_MAX) { /* the semaphore counts the pending deliveries ... */
            w->pending[sig]--;
            r = sig;
            break;
        }
        /* ... but for one handed to this waiter before a fork, whose delivery the child
         * dropped: it waits on, as for a delivery it never had */
        pthread_mutex_unlock(&registry);
    }
    struct inside **at = &w->inside;
    while (*at != &me)
        at = &(*at)->next;
    *at = me.next;
    pthread_mutex_unlock(&registry);
    return r;
}

int plait_signals_destroy(plait_signals *w)
{
    if (!w)
        return -EINVAL;
    pthread_mutex_lock(&registry);
    distribute(); /* what was counted while w watched is w's (dropped with it) or others' */
    plait_signals **at = &watchers;
    while (*at && *at != w)
        at = &(*at)->next;
    /* a forked child's copy of its parent's watches nothing; its semaphore may hold
     * the waits of the parent's other threads, which are not in the child */
    int r = w->inside ? -EBUSY : *at ? plait_sem_destroy(w->ready) : 0;
    if (r == 0 && *at) {
        *at = w->next;
        unwatch(w);
    } else if (r == 0) {
        plait__sem_free_forked_copy(w->ready);
    }
    pthread_mutex_unlock(&registry);
    if (r == 0)
        free(w);
    return r;
}

bool plait__signals_ignore_default(int sig)
{
    pthread_mutex_lock(&registry); /* no watcher comes or goes meanwhile */
    struct sigaction now;
    struct sigaction *old = watch_count[sig] || restoring[sig] ? &before[sig] : &now;
    if (old == &now && sigaction(sig, NULL, &now) < 0) {
        pthread_mutex_unlock(&registry);
        return false;
    }
    bool ignoring = old->sa_handler == SIG_DFL && !(old->sa_flags & SA_SIGINFO);
    if (ignoring) {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigemptyset(&ign.sa_mask);
        if (old == &before[sig])
            before[sig] = ign; /* what the last watcher gives back */
        else
            sigaction(sig, &ign, NULL);
    }
    pthread_mutex_unlock(&registry);
    return ignoring;
}

/* Each watcher's semaphore: any thread's plait_signals_wait takes its spin lock
 * without the registry lock, and a child may still wait on (and destroy) the watchers
 * it inherits; one held at the fork would be held there for ever.  Called with the
 * registry lock held (taken by plait__signals_atfork before), so the list stays. */
void plait__signals_atfork_sems(int phase)
{
    for (plait_signals *w = watchers; w; w = w->next)
        plait__sem_atfork(w->ready, phase);
}

void plait__signals_atfork(int phase)
{
    if (phase == PLAIT__FORK_CHILD) {
        /* the child's watchers are copies nobody serves: give back the old
         * dispositions, and leave the parent's pipe to the parent */
        for (int sig = 1; sig < SIGNAL_MAX; sig++)
            if (watch_count[sig] || restoring[sig])
                sigaction(sig, &before[sig], NULL);
        memset(watch_count, 0, sizeof watch_count);
        memset(restoring, 0, sizeof restoring);
        masks_wanted = 0;
        atomic_store(&masks_applied, 0);
        for (int sig = 1; sig < SIGNAL_MAX; sig++) /* the parent's, not yet handed on */
            atomic_store(&delivered[sig], 0);
        for (plait_signals *w = watchers; w; w = w->next) {
            for (struct inside **at = &w->inside; *at;) /* only this thread's waits */
                if (pthread_equal((*at)->thread, pthread_self()))
                    at = &(*at)->next;
                else
                    *at = (*at)->next;
            /* the parent's, handed on (their semaphore permits stay: a wait that takes
             * one and finds nothing pending waits on) */
            memset(w->pending, 0, sizeof w->pending);
        }
        watchers = NULL;
        dispatcher_started = false;
        if (pipe_out >= 0 && atomic_load(&pipe_epoch) == plait__fork_epoch_parent) {
            close(pipe_out); /* (an older epoch's may be the program's files now) */
            close(atomic_load(&pipe_in));
        }
        pipe_out = -1;
        atomic_store(&pipe_in, -1);
    }
    plait__atfork_mutex(&registry, phase);
}
