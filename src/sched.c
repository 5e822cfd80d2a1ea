/*
 * sched.c — the per-thread scheduler: spawn, switch, suspend, wake, cancel, run.
 *
 * Design.  A thread becomes a scheduler inside plait_run().  Its own stack is the
 * "loop" context: it drains the inbox, fires due timers, and parks the thread when
 * nothing is ready.  Coroutines do not bounce through the loop on every switch: a
 * coroutine that suspends hands the CPU straight to the next ready one (one switch,
 * not two), and only every BUDGET direct switches, or when the ready queue is empty
 * (a yield with no other coroutine ready included), does control go back to the loop
 * so timers and other threads' wake-ups are seen.
 *
 * Invariants:
 *  - Only the scheduler's own thread touches its ready queue, timers, coroutine list
 *    and the fields of its coroutines, with two exceptions that go through the inbox
 *    under its lock: waking a coroutine (plait__coro_wake from another thread) and
 *    cancelling one (plait__coro_cancel), and the atomics the watchdog reads.
 *  - A coroutine is in at most one of: running, the ready queue, the inbox wake list
 *    (through its signalled waiter), blocked in a waiter.  The waiter protocol
 *    (waiter.c) guarantees it is woken once.
 *  - A finished coroutine cannot free the stack it runs on: it becomes the zombie,
 *    and whichever context runs next recycles it (after_switch).  If another thread's
 *    cancellation still names it in the inbox, its slot is kept until the inbox is
 *    drained (recycle_pending), so a slot is never reused while a message points at it.
 *  - When main returns, every other coroutine is cancelled, and plait_run() returns
 *    once none is left: no task outlives the scheduler that ran it.
 *  - A coroutine that ends the thread (pthread_exit) ends the scheduler the same way
 *    before the thread goes: a cleanup handler of the loop (ended_by_a_coroutine)
 *    finishes it as cancelled and runs the loop until none is left.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef PLAIT_TSAN
#include <sanitizer/tsan_interface.h>
void __tsan_func_exit(void); /* (the runtime's; what instrumented code calls on return) */
#endif
#ifdef PLAIT_ASAN
#include <sanitizer/asan_interface.h>
#endif

enum { BUDGET = 64 };

PLAIT_TLS plait__sched *plait__tls_sched;

static atomic_ullong next_id = 1;

uint64_t plait__new_id(void)
{
    return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
}

uint64_t plait__new_ids(unsigned n)
{
    return atomic_fetch_add_explicit(&next_id, n, memory_order_relaxed);
}

/* ---- ready queue ---- */

static void ready_push(plait__sched *s, plait__coro *c)
{
    c->state = PLAIT__READY;
    c->next = NULL;
    if (s->ready_tail)
        s->ready_tail->next = c;
    else
        s->ready_head = c;
    s->ready_tail = c;
}

/* At the head: a coroutine taken from the queue that must wait for one loop turn. */
static void ready_push_front(plait__sched *s, plait__coro *c)
{
    c->state = PLAIT__READY;
    c->next = s->ready_head;
    s->ready_head = c;
    if (!s->ready_tail)
        s->ready_tail = c;
}

static plait__coro *ready_pop(plait__sched *s)
{
    plait__coro *c = s->ready_head;
    if (c) {
        s->ready_head = c->next;
        if (!s->ready_head)
            s->ready_tail = NULL;
    }
    return c;
}

/* ---- ThreadSanitizer's fibers ----
 * To ThreadSanitizer each coroutine is a fiber: a clock and a shadow call stack of its
 * own.  Its runtime clears about 0.9 MB for each fiber it creates (the shadow stack is an
 * array inside it): 4 ms a coroutine on a slow virtual machine, where the suite's
 * programs that spawn and join coroutines one after another spent most of their time in
 * it.  So an ended coroutine's fiber goes to the next coroutine its scheduler spawns
 * (four kept, in plait__sched's tsan_idle_fibers, where TSAN_FIBERS_KEPT is defined;
 * more are destroyed, and those kept when the scheduler ends).
 * The fiber is still taken at spawn, whose caller pays for a new one as before: taken at
 * a coroutine's first switch in instead, 1,500 coroutines spawned at once and then run
 * spent their creation after the spawner had set their deadlines, and missed them.
 * This tells the runtime nothing false:
 *  - the clock a fiber carries over orders nothing new: every context of a scheduler is
 *    switched to from another of its contexts, each switch a release and an acquire, so
 *    the next coroutine's first switch in already orders it after all the ended one did
 *    (its fiber was idle from the end of the one to the spawn of the other);
 *  - the shadow stack: a fiber's frames are those of the calls that have not returned,
 *    and a coroutine's last switch does not return.  coro_entry is not instrumented and
 *    switch_to takes its own frame off before a coroutine's last switch, so a fiber
 *    ends as it began, with no frame, and the next coroutine's reports show its own
 *    (test_tsan_fibers).  Where the compiler cannot leave coro_entry uninstrumented
 *    (PLAIT__TSAN_FIBER_REUSE undefined), no fiber is kept; nor with the ucontext back
 *    end, whose ucontext_entry (context.c, instrumented) calls coro_entry and never
 *    returns either.
 * A report's "created at" for a coroutine on a reused fiber names the spawn of the
 * fiber's first coroutine. */
#ifdef PLAIT_TSAN
#if defined(PLAIT__TSAN_FIBER_REUSE) && !defined(PLAIT_CONTEXT_UCONTEXT)
#define TSAN_FIBERS_KEPT 1
#endif

/* Signals.  ThreadSanitizer runs a signal's handler at once only when the thread is
 * inside a blocking call it intercepts (epoll_wait, poll); otherwise it queues the
 * signal on the current fiber, and runs the handler as that fiber next leaves an
 * intercepted call or an atomic operation.  Three places lost a signal so (a server's
 * SIGTERM went unanswered: test_examples_faults; test_signal's switching coroutines):
 *  - a switch, after the leaving coroutine's last such call: the handler waited until
 *    that coroutine next ran, for an idle connection's coroutine never;
 *  - a fiber's creation, which the runtime makes current while it starts it, and
 *    starting it clears its state, a signal queued on it with it;
 *  - a fiber's destruction, which the runtime makes current too, to end it.
 * So each is done with every signal blocked (tsan_signals_hold): pthread_sigmask is
 * intercepted, and leaving it runs what the current fiber has queued; a signal that
 * comes meanwhile waits in the kernel, and comes as the mask is given back (after the
 * switch, by the context switched to: after_switch), to the fiber current then, which
 * runs its handler as it leaves that call.  Two system calls a switch, in TSan builds
 * only. */
static void tsan_signals_hold(plait__sched *s)
{
    sigset_t all;
    sigfillset(&all);
    /* not the faults a thread causes itself, which TSan never queues: one that comes
     * with its signal blocked kills at once (a switch that ran off the leaving
     * coroutine's stack died silently instead of being reported: stack.c) */
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_BLOCK, &all, &s->tsan_signal_mask);
}

static void tsan_signals_let_go(plait__sched *s)
{
    pthread_sigmask(SIG_SETMASK, &s->tsan_signal_mask, NULL);
}

static void *tsan_fiber_take(plait__sched *s)
{
    if (s->tsan_idle_count)
        return s->tsan_idle_fibers[--s->tsan_idle_count];
    tsan_signals_hold(s);
    void *fiber = __tsan_create_fiber(0);
    tsan_signals_let_go(s);
    return fiber;
}

static void tsan_fiber_destroy(plait__sched *s, void *fiber)
{
    tsan_signals_hold(s);
    __tsan_destroy_fiber(fiber);
    tsan_signals_let_go(s);
}

static void tsan_fiber_give(plait__sched *s, void *fiber)
{
#ifdef TSAN_FIBERS_KEPT
    if (s->tsan_idle_count < sizeof s->tsan_idle_fibers / sizeof *s->tsan_idle_fibers) {
        s->tsan_idle_fibers[s->tsan_idle_count++] = fiber;
        return;
    }
#endif
    tsan_fiber_destroy(s, fiber);
}

static void tsan_fibers_free(plait__sched *s)
{
    while (s->tsan_idle_count)
        tsan_fiber_destroy(s, s->tsan_idle_fibers[--s->tsan_idle_count]);
}
#endif

/* ---- switching ---- */

static void recycle(plait__sched *s, plait__coro *c)
{
    if (atomic_load_explicit(&c->cancel_queued, memory_order_acquire))
        c->recycle_pending = true; /* inbox_drain frees it */
    else
        plait__stack_free(s, c);
}

/* Runs first in every context that has just been switched to. */
static void after_switch(plait__sched *s, plait__coro *self)
{
#ifdef PLAIT_TSAN
    tsan_signals_let_go(s);
#endif
    atomic_store_explicit(&s->leaving, NULL, memory_order_relaxed);
#ifdef PLAIT_ASAN
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &lo, &size);
    if (!s->loop.asan_stack_lo) { /* the first switch always comes from the loop */
        s->loop.asan_stack_lo = lo;
        s->loop.asan_stack_size = size;
    }
#else
    (void)self;
#endif
    plait__coro *z = s->zombie;
    if (z) {
        s->zombie = NULL;
#ifdef PLAIT_TSAN
        tsan_fiber_give(s, z->tsan_fiber);
#endif
        recycle(s, z);
    }
}

/* Never inlined: every switch of the scheduler then goes through one call site, which
 * keeps the CPU's return predictor right across switches (context_x86_64.S). */
__attribute__((noinline)) static void switch_to(plait__sched *s, plait__coro *from,
                                                plait__coro *to, bool from_ends)
{
    to->state = PLAIT__RUNNING;
    if (from == to)
        return;
    if (!from->is_loop)
        plait__stack_check(from);
    /* A stall of from's to report: its report is printed by the loop, on the thread's
     * own stack (fprintf takes kilobytes, more than from's may hold: it overflowed a
     * PLAIT_STACK_MIN stack), so the loop runs first and to, first in the queue, next. */
    if (PLAIT_UNLIKELY(atomic_load_explicit(&s->slow_since, memory_order_relaxed)) &&
        plait__slow_note(s, from) && !to->is_loop) {
        ready_push_front(s, to);
        to = &s->loop;
        to->state = PLAIT__RUNNING;
    }
    atomic_store_explicit(&s->leaving, from->is_loop ? NULL : from, memory_order_relaxed);
    s->current = to;
    atomic_store_explicit(&s->switches,
                          atomic_load_explicit(&s->switches, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* release: a watchdog that reads the new id reads the new count too (diag.c) */
    atomic_store_explicit(&s->running_id, to->is_loop ? 0 : to->id, memory_order_release);
    /* The thread's cancel state is each coroutine's own (and the loop's, off: plait_run):
     * a coroutine that turns cancellation back on for its own code, then waits, left it
     * on to the next one, in the middle of a plait call (whose read(2) then acted on a
     * pthread_cancel inside plait); and that call, restoring the state saved as it began,
     * turned it off again under the first.  The state is saved here, off, across the
     * switch, and put back when from runs again (a coroutine starts with it off).  Every
     * switch to from comes through here, so it runs again with it off: only a state that
     * was on is put back (one libc call a switch in the common case).  Kept in from, not
     * in a local whose address is taken: that would take stack (and, under ASan, leave
     * a redzone in the loop's frame that ended_by_a_coroutine's calls run over).  Before
     * the sanitizers hear of the switch: the call runs on from's stack, as from. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &from->cancel_state);
#ifdef PLAIT_TSAN
    tsan_signals_hold(s);
    if (from_ends)
        __tsan_func_exit(); /* this call's frame: from's fiber is left with none */
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef PLAIT_ASAN
    __sanitizer_start_switch_fiber(from_ends ? NULL : &from->asan_fake_stack,
                                   to->asan_stack_lo, to->asan_stack_size);
#else
    (void)from_ends;
#endif
    plait__context_switch(&from->ctx, &to->ctx);
    after_switch(s, from);
    if (PLAIT_UNLIKELY(from->cancel_state != PTHREAD_CANCEL_DISABLE))
        plait__cancel_restore(from->cancel_state);
}

/* The coroutine to switch to directly, or the loop when the budget is spent. */
static plait__coro *next_to_run(plait__sched *s)
{
    plait__coro *next = NULL;
    if (s->budget > 0) {
        s->budget--;
        next = ready_pop(s);
    }
    return next ? next : &s->loop;
}

static inline void suspend(plait__sched *s)
{
    switch_to(s, s->current, next_to_run(s), false);
}

void plait__coro_suspend(void) { suspend(plait__tls_sched); }

void plait__call_on_thread_stack(void (*fn)(void *arg), void *arg)
{
    plait__sched *s = plait__tls_sched;
    if (!s || s->current->is_loop) {
        fn(arg);
        return;
    }
    /* the loop makes the call as this switch returns to it (loop_run), then finds this
     * coroutine first in the queue: nothing the loop does before (the inbox, timers)
     * puts anyone in front of it */
    s->loop_call = fn;
    s->loop_call_arg = arg;
    ready_push_front(s, s->current);
    switch_to(s, s->current, &s->loop, false);
}

/* ---- the inbox: how other threads reach this scheduler ---- */

/* A message was just put in the inbox (its lock held): count it, then release the
 * lock and wake the scheduler if it sleeps.  Nothing of s is read after the unlock:
 * once its coroutines are done, plait_run frees s after one last pass through the
 * inbox lock, and the futex wake needs only the address (a spurious wake-up at
 * worst, see plait__wakeups in internal.h). */
static void inbox_post_unlock(plait__sched *s)
{
    atomic_fetch_add(&s->inbox.seq, 1);
    int parked = atomic_load(&s->inbox.parked);
    /* the eventfd is written under the lock: plait_run closes it only after passing
     * through this lock */
    if (parked == PLAIT__PARKED_POLL)
        plait__wake_fd_write(s->inbox.poll_wake_fd);
    atomic_uint *word = &s->inbox.seq;
    plait__spin_unlock(&s->inbox.lock);
    if (parked == PLAIT__PARKED_FUTEX)
        plait__futex_wake(word, 1);
}

void plait__coro_wake(plait__waiter *w)
{
    plait__sched *s = w->sched;
    if (s == plait__tls_sched) {
        ready_push(s, w->coro);
        return;
    }
    /* In a forked child, a parent's coroutine that waited on what goes on here (the end
     * of a coroutine of the forking thread's scheduler) is a copy: left asleep.  Its
     * scheduler's inbox lock may have been held at the fork, and its wake-up eventfd is
     * the parent's (the child's end of such a task wrote it). */
    if (PLAIT_UNLIKELY(plait__sched_elsewhere(s)))
        return;
    /* The waiter, not the coroutine, goes on the list: its line is the one the waker
     * has just written (the outcome), and the coroutine's stays with its scheduler. */
    plait__spin_lock(&s->inbox.lock);
    w->inbox_next = NULL;
    if (s->inbox.wake_tail)
        s->inbox.wake_tail->inbox_next = w;
    else
        s->inbox.wake_head = w;
    s->inbox.wake_tail = w;
    inbox_post_unlock(s);
}

static void cancel_local(plait__coro *c)
{
    plait__waiter *w = c->waiter;
    if (w && w->cancellable && plait__waiter_claim(w))
        plait__waiter_signal_now(w, -ECANCELED, -1);
}

void plait__coro_cancel(plait__coro *c)
{
    plait__sched *s = c->sched;
    atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
    if (s == plait__tls_sched) {
        cancel_local(c);
        return;
    }
    if (PLAIT_UNLIKELY(plait__sched_elsewhere(s)))
        return; /* a copy in a forked child (plait__coro_wake) */
    if (atomic_exchange(&c->cancel_queued, 1))
        return; /* a cancellation is on its way already */
    plait__spin_lock(&s->inbox.lock);
    c->cancel_next = s->inbox.cancel_head;
    s->inbox.cancel_head = c;
    inbox_post_unlock(s);
}

/* Take what other threads posted.  Nothing was if seq has not moved since the last
 * drain read it: a post adds to it, under the lock, after its item, so every item whose
 * count this read sees is taken below (and one counted later, at the next drain). */
static void inbox_drain(plait__sched *s)
{
    unsigned seq = atomic_load_explicit(&s->inbox.seq, memory_order_acquire);
    if (seq == s->inbox.drained)
        return;
    s->inbox.drained = seq;
    plait__spin_lock(&s->inbox.lock);
    plait__waiter *wake = s->inbox.wake_head;
    plait__coro *cancel = s->inbox.cancel_head;
    s->inbox.wake_head = s->inbox.wake_tail = NULL;
    s->inbox.cancel_head = NULL;
    plait__spin_unlock(&s->inbox.lock);
    while (wake) {
        plait__waiter *w = wake;
        wake = w->inbox_next; /* read before its coroutine can run and end the wait */
        ready_push(s, w->coro);
    }
    while (cancel) {
        plait__coro *c = cancel;
        cancel = c->cancel_next;
        atomic_store_explicit(&c->cancel_queued, 0, memory_order_release);
        if (c->recycle_pending) {
            c->recycle_pending = false;
            plait__stack_free(s, c);
        } else {
            cancel_local(c);
        }
    }
}

/* ---- the loop ---- */

/* The clock as read (0 when no timer needed it). */
static int64_t fire_timers(plait__sched *s)
{
    plait__timer *t = plait__timer_first(&s->timers);
    if (!t)
        return 0;
    int64_t now = s->loop_now = plait_now();
    while ((t = plait__timer_first(&s->timers)) && t->when <= now) {
        plait__timer_remove(&s->timers, t);
        if (plait__waiter_claim(t->waiter))
            plait__waiter_signal_now(t->waiter, -ETIMEDOUT, -1);
    }
    return now;
}

/* Sleep until the next timer, a post to the inbox, or (with descriptors waited on) a
 * descriptor event, after a look for one of those that comes soon (futex.c says why).
 * The parked mark is stored before the inbox is looked at, and a poster reads it after
 * posting, so one of the two sees the other.  now: the clock as fire_timers has just
 * read it, or 0.  True when the poller was asked. */
static bool park(plait__sched *s, int64_t now)
{
    int64_t trim_at = plait__stack_trim(s, now); /* unused stacks' memory goes back */
    plait__timer *t = plait__timer_first(&s->timers);
    int64_t deadline = t && t->when < trim_at ? t->when : trim_at;
    bool poll = plait__poller_busy(s);
    /* with no descriptor to watch, a post is all that can come before the deadline:
     * look for one a while before sleeping (futex.c), still unparked, so that its poster
     * makes no wake-up call either */
    if (!poll && plait__spin_while(&s->inbox.seq, s->inbox.drained, PLAIT__WAIT_SPIN_NS,
                                   deadline))
        return false;
    /* with descriptors, the same look where the poller's events are seen in memory
     * (io_uring); what it saw is taken, and what is queued for the kernel handed over,
     * by a wait that does not sleep */
    if (poll && plait__poller_look(s, &s->inbox.seq, s->inbox.drained, deadline)) {
        plait__poller_poll(s, 0, now);
        return true;
    }
    atomic_store(&s->inbox.parked, poll ? PLAIT__PARKED_POLL : PLAIT__PARKED_FUTEX);
    plait__store_load_fence();
    unsigned seq = atomic_load(&s->inbox.seq);
    bool empty = seq == s->inbox.drained; /* nothing posted since the last drain */
    if (poll)
        plait__poller_poll(s, empty ? deadline : 0, now);
    else if (empty)
        plait__futex_wait(&s->inbox.seq, seq, deadline);
    atomic_store(&s->inbox.parked, PLAIT__RUNNING_LOOP);
    return poll;
}

static void loop_run(plait__sched *s)
{
    bool looked = false; /* the poller was just asked: no need to look again */
    while (s->alive > 0) {
        inbox_drain(s);
        int64_t now = fire_timers(s);
        if (s->ready_head && !looked && plait__poller_busy(s))
            plait__poller_poll(s, 0, now); /* descriptors are served under load too */
        plait__coro *next = ready_pop(s);
        if (next) {
            s->budget = BUDGET;
            switch_to(s, &s->loop, next, false);
            if (PLAIT_UNLIKELY(s->loop_call)) {
                void (*fn)(void *) = s->loop_call;
                s->loop_call = NULL;
                fn(s->loop_call_arg); /* plait__call_on_thread_stack */
            }
            if (PLAIT_UNLIKELY(s->slow_noted))
                plait__slow_report(s); /* a stall noted as a coroutine let go */
            looked = false;
        } else {
            looked = park(s, now);
        }
    }
    inbox_drain(s); /* cancellations that raced with the last exits */
}

/* In a forked child, on the thread that forked (its inbox lock released): a coroutine
 * whose wait another thread of the parent had decided (claimed, its outcome written)
 * but whose wake-up that thread had not yet posted when the fork came never gets it
 * here, and its deadline's timer, finding the wait decided, leaves it: it would wait
 * for ever.  Its outcome is in this copy of memory: it is made ready.  One posted
 * before the fork is in the inbox, drained as usual.  One only claimed, its outcome
 * not yet written (the fork came while the other thread held the object's lock, as
 * for ever here), is not: made ready, it said "done" with nothing done, or spun on
 * that lock as it unlinked its wait (fork_while_a_claim_is_undecided); the strand walk
 * below gives its claim back. */
void plait__sched_after_fork(plait__sched *s)
{
    /* those in the inbox are marked for the walk (the drain makes them ready anyway) */
    for (plait__waiter *w = s->inbox.wake_head; w; w = w->inbox_next)
        w->coro->state = PLAIT__READY;
    for (plait__coro *c = s->all; c; c = c->all_next)
        if (c->state == PLAIT__WAITING && c->waiter &&
            atomic_load_explicit(&c->waiter->signalled, memory_order_acquire))
            ready_push(s, c);
    for (plait__waiter *w = s->inbox.wake_head; w; w = w->inbox_next)
        w->coro->state = PLAIT__WAITING;
}

/* Whether node's object had its lock held at the fork (by another thread of the parent:
 * only this one is in the child), for ever here: then the node is stranded, and its
 * wait leaves it linked, untouched, as it ends (plait__wait_node_withdraw). */
static bool strand_if_held(plait__wait_node *node)
{
    if (plait__spin_trylock(node->lock)) {
        plait__spin_unlock(node->lock);
        return false;
    }
    node->same_next = PLAIT__STRANDED;
    return true;
}

/* strand_if_held, for a node of w that w's end will still unlink (see below); one never
 * linked has no lock, and nothing else of it is read. */
static bool strand_if_still_held(plait__wait_node *node, const plait__waiter *w, bool decided)
{
    if (!node->lock || (decided && (!node->queue || node->index == w->index)))
        return false;
    return strand_if_held(node);
}

/* A wait on objects whose lock another thread of the parent held at the fork: those
 * nodes are stranded, so that its end (-ETIMEDOUT, -ECANCELED, or an outcome already
 * written whose coroutine has yet to run) unlinks its nodes without that lock, on which
 * it spun for ever, the scheduler with it (an audit's reproducer: an event's waiter
 * beside a thread asking whether it was set).  A claim made of a wait not yet decided
 * (the other thread had taken it, under that lock, and not yet written its outcome) is
 * given back, its maker gone; and where its deadline's timer, finding it claimed, was
 * dropped, the deadline has come: it ends now, as that timer would have ended it. */
static void strand_held_nodes(plait__waiter *w)
{
    /* Of a decided wait, only the nodes it will still unlink are looked at: those still
     * linked, not the one its outcome came through, which its waker unlinked and whose
     * object may be gone since (a waker may destroy what it woke the last waiter of). */
    bool decided = atomic_load_explicit(&w->signalled, memory_order_acquire);
    bool held = strand_if_still_held(&w->node, w, decided);
    for (size_t i = 0; i < w->n_nodes; i++)
        held |= strand_if_still_held(&w->nodes[i], w, decided);
    if (!held || decided || !atomic_load_explicit(&w->claimed, memory_order_relaxed))
        return;
    atomic_store_explicit(&w->claimed, 0, memory_order_relaxed);
    if (w->timer.when != PLAIT_FOREVER && w->timer.index == SIZE_MAX && plait__waiter_claim(w))
        plait__waiter_signal_now(w, -ETIMEDOUT, -1);
}

/* Every wait of a coroutine not yet back from it: still waiting, or made ready (its
 * deadline, a cancellation, a wake-up) but not yet run, which unlinks its nodes too. */
void plait__sched_strand_after_fork(plait__sched *s)
{
    for (plait__coro *c = s->all; c; c = c->all_next)
        if (c->waiter)
            strand_held_nodes(c->waiter);
}

/* ---- coroutine life ---- */

static void cancel_all(plait__sched *s)
{
    for (plait__coro *c = s->all; c; c = c->all_next)
        plait__coro_cancel(c);
}

/* A coroutine's last steps, its function returned: its outcome published and its record
 * taken off the scheduler's.  The context to switch to is returned (coro_entry). */
static plait__coro *coro_finish(plait__sched *s, plait__coro *c, void *result)
{
    int error = 0;
    if (PLAIT_IS_FAIL(result)) {
        error = (int)(intptr_t)result;
        result = NULL;
    }
    plait__locals_destroy(c);
    if (c->group) /* the outcome and the group's record in one step (group.c) */
        plait__group_child_finished(c->group, c, result, error);
    else
        plait__future_complete(c->future, result, error);
    c->future = NULL;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        s->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    s->alive--;
    if (c == s->main) {
        s->main_done = true;
        if (s->work)
            plait__work_set_main(s->work, NULL); /* before c's slot can be reused */
        cancel_all(s);
    }
    c->state = PLAIT__DONE;
    s->zombie = c;
    return next_to_run(s);
}

static plait__coro *coro_run(plait__coro *c)
{
    plait__sched *s = c->sched;
    after_switch(s, c);
    return coro_finish(s, c, c->fn(c->arg));
}

/* Where a coroutine's context starts.  Under ThreadSanitizer not instrumented, so that
 * its frame, which never returns, is not left on the fiber's shadow stack (above). */
PLAIT__TSAN_NO_ENTRY_EXIT static void coro_entry(void *arg)
{
    plait__coro *c = arg;
    switch_to(c->sched, c, coro_run(c), true);
    abort(); /* unreachable: nothing switches back to a finished coroutine */
}

/* c's context, to start at coro_entry on its whole stack. */
static void coro_context_make(plait__coro *c)
{
    /* the stack starts above the canary word */
    plait__context_make(&c->ctx, c->stack_lo + 16, c->stack_size - 16, coro_entry, c);
#ifdef PLAIT_ASAN
    c->asan_fake_stack = NULL;
    c->asan_stack_lo = c->stack_lo + 16;
    c->asan_stack_size = c->stack_size - 16;
#endif
}

static void set_name(plait__coro *c, const char *name)
{
    size_t n = strnlen(name, sizeof c->name - 1);
    memcpy(c->name, name, n);
    c->name[n] = '\0';
}

int plait_spawn_opts(plait_task *task, plait_fn fn, void *arg,
                     const plait_spawn_options *options)
{
    plait__sched *s = plait__tls_sched;
    if (!s)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    size_t size = options && options->stack_size ? options->stack_size : s->default_stack;
    if (plait__stack_check_size(size) < 0)
        return -EINVAL;
    plait__coro *c = plait__stack_alloc(s, size);
    if (!c)
        return -ENOMEM;
    c->sched = s;
    c->fn = fn;
    c->arg = arg;
    c->group = options ? options->group : NULL;
    c->group_keeps_outcome = c->group && !task;
    c->waiter = NULL;
    c->id = plait__new_id();
    atomic_init(&c->cancelled, s->main_done);
    atomic_init(&c->cancel_queued, 0);
    c->shielded = false;
    c->recycle_pending = false;
    c->is_loop = false;
    c->locals = NULL;
    set_name(c, options && options->name ? options->name : "task");
    if (c->group) {
        int r = plait__group_child_started(c->group, c);
        if (r < 0) {
            plait__stack_free(s, c);
            return r;
        }
    }
    c->future = plait__future_start(c, task);
    if (!c->future) {
        if (c->group)
            plait__group_child_finished(c->group, c, NULL, 0);
        recycle(s, c); /* a group cancel may have named it in the inbox meanwhile */
        return -ENOMEM;
    }
    coro_context_make(c);
#ifdef PLAIT_TSAN
    c->tsan_fiber = tsan_fiber_take(s);
#endif
    c->all_prev = NULL;
    c->all_next = s->all;
    if (s->all)
        s->all->all_prev = c;
    s->all = c;
    s->alive++;
    ready_push(s, c);
    return 0;
}

int plait_spawn(plait_task *task, plait_fn fn, void *arg)
{
    return plait_spawn_opts(task, fn, arg, NULL);
}

/* ---- plait_run ---- */

static plait__sched *sched_new(void)
{
    /* its alignment (the inbox's line) is more than malloc's */
    plait__sched *s = aligned_alloc(_Alignof(plait__sched), sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->inbox.poll_wake_fd = -1;
    s->loop.is_loop = true;
    s->loop.state = PLAIT__RUNNING;
    s->loop.sched = s;
    s->current = &s->loop;
    s->default_stack = PLAIT_STACK_DEFAULT;
    s->id = plait__new_id();
#ifdef PLAIT_TSAN
    s->loop.tsan_fiber = __tsan_get_current_fiber();
#endif
    plait__tls_sched = s;
    plait__stack_thread_init(s);
    plait__watchdog_start(s);
    return s;
}

static void sched_free(plait__sched *s)
{
    plait__watchdog_stop(s);
    plait__stack_flush(s, true);
    plait__timer_heap_free(&s->timers);
    plait__stack_thread_exit(s);
    plait__tls_sched = NULL;
    plait__future_flush_cache();
    /* a thread that posted the last wake-up may still be inside inbox_post_unlock */
    plait__spin_lock(&s->inbox.lock);
    plait__spin_unlock(&s->inbox.lock);
    plait__poller_free(s);
#ifdef PLAIT_TSAN
    tsan_fibers_free(s);
#endif
    free(s);
}

/* Once its loop has run out of coroutines: main's outcome, and the scheduler freed. */
static int sched_end(plait__sched *s, void **result)
{
    int r = plait_join(s->main_task, result, PLAIT_FOREVER);
    sched_free(s);
    return r;
}

static void *ends_at_once(void *arg)
{
    (void)arg;
    return NULL;
}

/* A coroutine ended the thread: pthread_exit, or a pthread_cancel acted on in its own
 * code (with cancellation turned back on).  The unwinding left its frames and the
 * loop's, and runs this, a cleanup handler of the loop, on the thread's own stack on
 * its way to the thread's end.  The scheduler was left there for good: its coroutines'
 * joiners waited for ever, and its memory, its coroutines' stacks and futures and its
 * poller's descriptors leaked.  So it ends here as when main returns: the coroutine
 * that ended the thread (the current one: only coroutines run the program's code)
 * finishes as cancelled, started afresh on its own stack (its frames are gone) so that
 * its task-local destructors run as itself; the others are cancelled; the loop runs
 * until none is left, and everything is freed.  Then the thread goes on to its end (a
 * plait thread's joiners get -ECANCELED).  A coroutine that ends the thread again
 * meanwhile comes back here, from the top.  (ThreadSanitizer stops a thread that calls
 * pthread_exit on a coroutine's stack before it gets here.) */
static void ended_by_a_coroutine(void *p)
{
    plait__sched *s = p;
    plait__coro *c = s->current;
    s->current = &s->loop;
    atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
    c->fn = ends_at_once;
#ifdef PLAIT_ASAN
    /* the frames the unwinding left may have left poison behind */
    ASAN_UNPOISON_MEMORY_REGION(c->stack_lo, c->stack_size);
#endif
    coro_context_make(c);
    ready_push_front(s, c);
    cancel_all(s);
    loop_run(s);
    sched_end(s, NULL);
}

static int run_scheduler(plait_fn fn, void *arg, void **result)
{
    plait__sched *s = sched_new();
    if (!s)
        return -ENOMEM;
    int r = plait_spawn_opts(&s->main_task, fn, arg, &(plait_spawn_options){.name = "main"});
    if (r < 0) {
        sched_free(s);
        return r;
    }
    s->main = s->all;
    /* on a plait thread or in a pool task, the thread's cancellation is main's; not
     * while the thread is shielded (which it stays until plait_run returns): main's
     * waits would be cut short, plait_run's outcome -ECANCELED */
    s->work = plait__shielded() ? NULL : plait__tls_work;
    if (s->work)
        plait__work_set_main(s->work, s->main);
    pthread_cleanup_push(ended_by_a_coroutine, s);
    loop_run(s);
    pthread_cleanup_pop(0);
    return sched_end(s, result);
}

int plait_run(plait_fn fn, void *arg, void **result)
{
    if (!fn)
        return -EINVAL;
    if (plait__tls_sched)
        return -EBUSY;
    /* The scheduler's thread is no cancellation point while it runs (internal.h): its
     * loop sleeps in epoll_wait and reads its eventfd, and every coroutine runs on it,
     * so a pthread_cancel acted on there (in the loop, in plait on a coroutine's behalf,
     * or in a coroutine's own code) left the scheduler and all its coroutines for ever,
     * their joiners waiting.  It is acted on after plait_run returns. */
    int cancel_state = plait__cancel_off();
    int r = run_scheduler(fn, arg, result);
    plait__cancel_restore(cancel_state);
    return r;
}

/* ---- small calls ---- */

int plait_yield(void)
{
    plait__coro *c = plait__coro_current();
    if (!c)
        return -EPERM;
    plait__sched *s = c->sched;
    /* Alone in the ready queue, it goes through the loop, which looks at the timers,
     * the inbox and the poller: a direct switch to itself put those off for the rest
     * of the budget (64 such yields: a sleeper beside a coroutine that computes and
     * yields woke that many spells late) and counted no switch (the slow-coroutine
     * watchdog took it for one that never yields). */
    bool alone = !s->ready_head;
    ready_push(s, c);
    if (alone)
        switch_to(s, c, &s->loop, false);
    else
        suspend(s);
    return plait__check_cancel();
}

bool plait__io_turn_due(void)
{
    plait__sched *s = plait__tls_sched;
    if (!s || s->current == &s->loop)
        return false;
    unsigned long now = atomic_load_explicit(&s->switches, memory_order_relaxed);
    if (now != s->io_turn_mark) { /* it has let others run since: a new turn */
        s->io_turn_mark = now;
        s->io_turn_calls = 0;
    }
    return ++s->io_turn_calls >= PLAIT__IO_TURN;
}

void plait__io_turn(void)
{
    if (plait__io_turn_due())
        (void)plait_yield(); /* (its -ECANCELED is the next call's) */
}

int plait_sleep_until(int64_t deadline)
{
    if (plait__deadline_passed(deadline))
        return 0; /* completes without blocking: even for a cancelled caller */
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    plait__coro *c = plait__coro_current();
    /* nothing can cancel this caller: it would never wake (the main coroutine of a
     * plait_run on a plain thread has no handle anyone could cancel) */
    if (deadline == PLAIT_FOREVER &&
        (plait__shielded() || (!c && !plait__tls_work) ||
         (c && c == c->sched->main && !c->sched->work)))
        return -EINVAL;
    plait__waiter w;
    plait__waiter_init(&w, "sleep", NULL);
    r = plait__waiter_block(&w, deadline);
    return r == -ETIMEDOUT ? 0 : r;
}

int plait_sleep(int64_t ns)
{
    return plait_sleep_until(plait_deadline_in(ns));
}

int plait_in_coroutine(void) { return plait__coro_current() != NULL; }

const char *plait_task_name(void)
{
    plait__coro *c = plait__coro_current();
    if (c)
        return c->name;
    return plait__tls_thread_name;
}

uint64_t plait_task_id(void)
{
    plait__coro *c = plait__coro_current();
    return c ? c->id : 0;
}

int plait_cancelled(void) { return plait__check_cancel() < 0; }

int plait_set_stack_size(size_t bytes)
{
    if (plait__stack_check_size(bytes) < 0)
        return -EINVAL;
    if (!plait__tls_sched)
        return -EPERM;
    /* The cache holds stacks of the old default.  Their memory goes back at a sleep of
     * a scheduler, on its own stack, not here: giving it back (madvise, qsort and
     * arrays of a batch) overflowed a caller on a PLAIT_STACK_MIN stack. */
    plait__stack_flush(plait__tls_sched, false);
    plait__tls_sched->default_stack = plait__stack_round(bytes); /* a class's size */
    return 0;
}
