/*
 * queue.c — a bounded message queue between processes, in shared memory: any number
 * of senders and receivers, in the process that made it and the children it forks
 * afterwards, blocking with deadlines, from coroutines and threads.
 *
 * Layout: one shared mapping holding the state below and `capacity` slots of
 * msg_max bytes each, a ring indexed by two counters: `tail`, moved by senders, and
 * `head`, moved by receivers.  Each end has a pid lock of its own (pfutex.c), on cache
 * lines of its own with its counter: senders take send_lock, receivers recv_lock, so
 * a sender and a receiver never wait for each other (with one lock for both, each
 * message was two hand-offs of that lock between two CPUs, and 64-byte messages went
 * slower than through a pipe: docs/BENCHMARKS.md, session 36).  A message is one memcpy
 * into its slot under send_lock, and it becomes visible only when `tail` moves on
 * (release); a receive copies it out under recv_lock and is consumed only when `head`
 * moves on, after which a sender may write the slot again.  So a process that dies in
 * the middle of a send or a receive — its lock released by the parent that reaps it —
 * leaves the queue as it was before that call: no half message is ever seen, and a
 * message being received by a process that died stays in the queue for the next
 * receiver.  The table of holders (below) has a third lock, `lock`, taken by a
 * process's first call on each side before its end's lock (a coroutine may yield
 * waiting for it: it holds no end's lock then, see queue_lock), by the fork, death and
 * exec reports, by a destroy and by a waiting call's look for holders gone unreported;
 * none of those holds an end's lock, so no lock is ever taken while another is held.
 *
 * Ending: a close sets `closed` without a lock (it never waits), so a send that saw the
 * queue open may still be copying; a receive that finds the queue closed (or every
 * sender gone) and empty looks again holding send_lock before it answers -EPIPE
 * (end_is_final), which a send holds from its look at `closed` to its move of `tail`:
 * whatever went in is taken first, and -EPIPE is final.
 *
 * Waiting: receivers sleep on recv_seq, which every send bumps after moving `tail`;
 * senders on send_seq, which every receive bumps after moving `head`; closing and a
 * side's death bump both.  A waiter reads the sequence before it looks at the other
 * end's counter and at `closed` (which a close sets, before its bump, without a lock),
 * and all of these are sequentially consistent: so a move it did not see comes with a
 * bump after its read, which its futex wait sees.  The waiter counts let the other end
 * skip the wake-up system call when nobody sleeps.
 *
 * Sides, and telling a waiter that nobody is left.  The state has a table of the
 * processes that hold the queue: the one that made it, and every child forked after
 * that (added by the parent that forks it, before that parent goes on, and by the
 * child itself as it starts: shared.c).  A holder that sends is a sender, one that
 * receives a receiver; one that has done neither yet could become either.  When the
 * parent reaps a child, the child leaves the table (so does a process that destroys
 * its handle, unless a holder stopped with the table's lock keeps it out: then at its death).
 * A child plait forks to run a program is never entered: nothing of plait runs in it
 * before its exec, so it is no side, and its death (or a failed exec) ends none.  A side
 * is gone when a holder that was on it has left, and no holder left is on it or
 * undecided: then
 * receivers get -EPIPE once the queue is empty (every sender has died), or senders get
 * -EPIPE at once (every receiver has died: nobody will read what they send).  A
 * process that takes up the side again (sends, receives, or is forked undecided)
 * revives it.  An undecided holder keeps both sides alive while it lives, but its
 * departure ends neither: most children that never used the queue had nothing to do
 * with it (a process pool's worker, a function child started for other work), and
 * counting each as a receiver and a sender that died ended the side of a process that
 * used the queue alone, or with its threads, as soon as it had sent (or received) only.
 * A holder whose death nobody reports (reaped by someone else) is purged
 * by the calls that wait: every PLAIT__SHARED_RECHECK_NS, and at a call's deadline if
 * the side it waits for turns out gone then, so that a short wait answers -EPIPE as a
 * long one does.  This is a pipe's end of file without pipe ends to close; a process
 * that uses the queue alone never sees it, whatever children it starts that do not
 * use the queue.  Holders beyond the table's SIDES
 * entries (a full table is purged first) are not tracked, and then the queue never
 * says -EPIPE on its own.
 *
 * The manager thread tells the queue of forks and deaths, and every start, exit and
 * join of a process waits for it meanwhile: it waits for the table's lock a patience
 * (some 100 ms) at most, for its holder may be a process stopped with it.  Past that a
 * death is left to a purge, and a new child (not a program's) is counted untracked
 * (it could take up a side the queue would otherwise end).
 */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { SIDES = 64, ROLE_SEND = 1, ROLE_RECV = 2, ALIGN = 64 };
/* How long a destroy waits for the table's lock before it leaves without updating the
 * table. */
#define DESTROY_PATIENCE_NS (100 * PLAIT_MS)
/* How many looks (about 10 ms apart: pfutex.c) at one live holder of the table's lock
 * a death report waits for it (queue_died). */
enum { DEATH_PATIENCE = 10 };

typedef struct queue_state {
    plait__plock lock;          /* the table of holders: sides, lost, gone, untracked */
    atomic_uint closed;         /* set without a lock by plait_queue_close */
    uint32_t lost;              /* ROLE_* bits: a holder that was on that side has left */
    atomic_uint gone;           /* lost, and no holder left is or could become that
                                   side (read by sends and receives without `lock`) */
    atomic_uint untracked;      /* holders that found the table full, or whose fork
                                   was reported while the table's lock was held past
                                   patience (queue_forked); never decreases */
    struct { uint32_t pid, roles; } sides[SIDES];
    /* Messages [head, tail) are queued; each counter is moved under its end's lock and
     * read by the other end, and by plait_queue_len, without it. */
    _Alignas(ALIGN) plait__plock send_lock;
    _Atomic uint64_t tail;
    atomic_uint recv_seq, recv_waiters; /* bumped by every send; receivers asleep on it */
    _Alignas(ALIGN) plait__plock recv_lock;
    _Atomic uint64_t head;
    atomic_uint send_seq, send_waiters; /* bumped by every receive; senders asleep on it */
} queue_state;

typedef struct slot {
    uint64_t len;
    unsigned char data[];
} slot;

/* The sizes live in the handle, in the process's own memory (a forked child inherits
 * them), not in the shared state: a holder that writes over the state (a memory bug)
 * must not make the others divide by zero or copy past a slot.  For the same reason a
 * slot's length is checked against msg_max before its message is copied out. */
struct plait_queue {
    plait__shared_obj obj;
    queue_state *st;
    size_t map_size;
    size_t msg_max, capacity, slot_size;
    /* What this process has noted already: its id << 32 | ROLE_* bits.  One word, read
     * without a lock by a sender and a receiver on two threads (written under the
     * table's lock); a forked child's copy names its parent. */
    _Atomic uint64_t noted;
    _Atomic int64_t tries_looked[2]; /* when a try last looked for a side gone unreported
                                      * (wait_timed_out), by the side [role - 1] */
};

static size_t state_size(void) { return (sizeof(queue_state) + ALIGN - 1) / ALIGN * ALIGN; }

static slot *slot_at(plait_queue *q, uint64_t i)
{
    return (slot *)((char *)q->st + state_size() + (i % q->capacity) * q->slot_size);
}

/* head and tail: each read by the other end and by plait_queue_len without its lock,
 * sequentially consistent (see "Waiting" above); a move is a release of the slot's
 * copy, so a len that loads head before tail sees a tail at least that far (the
 * receive that moved head there came after the sends). */
static uint64_t counter(_Atomic uint64_t *c)
{
    return atomic_load(c);
}

/* Under its end's lock: nobody else moves it. */
static void counter_advance(_Atomic uint64_t *c)
{
    atomic_store(c, atomic_load_explicit(c, memory_order_relaxed) + 1);
}

static void wake_both(queue_state *st)
{
    atomic_fetch_add(&st->recv_seq, 1);
    atomic_fetch_add(&st->send_seq, 1);
    plait__pfutex_wake(&st->recv_seq);
    plait__pfutex_wake(&st->send_seq);
}

/* Recompute which sides are gone (under the lock); true when one just went. */
static bool sides_update(queue_state *st)
{
    unsigned could = 0;
    for (int i = 0; i < SIDES; i++)
        if (st->sides[i].pid)
            could |= st->sides[i].roles ? st->sides[i].roles : ROLE_SEND | ROLE_RECV;
    unsigned gone = atomic_load(&st->untracked) ? 0 : st->lost & ~could;
    bool newly = gone & ~atomic_load(&st->gone);
    atomic_store(&st->gone, gone);
    /* a fork reported without the lock (queue_forked) counts itself untracked, then
     * clears gone: one of the two sees the other's (seq_cst) */
    if (gone && atomic_load(&st->untracked))
        atomic_store(&st->gone, 0);
    return newly;
}

/* Take entry i out of the table (under the lock): the sides it was on have lost one. */
static void side_left(queue_state *st, int i)
{
    st->lost |= st->sides[i].roles;
    st->sides[i].pid = st->sides[i].roles = 0;
}

/* Take pid's entry out of the table (0: nobody), and every holder's that is gone
 * unreported (under the lock). */
static void purge_left(queue_state *st, unsigned pid)
{
    for (int i = 0; i < SIDES; i++) {
        unsigned p = st->sides[i].pid;
        if (p && (p == pid || plait__pid_gone(p)))
            side_left(st, i);
    }
}

/* pid's entry in the table (under the lock), added in a free one if missing; NULL
 * when none is free. */
static struct side_entry { uint32_t pid, roles; } *side_found(queue_state *st, unsigned pid)
{
    int empty = -1;
    for (int i = 0; i < SIDES; i++) {
        if (st->sides[i].pid == pid)
            return (struct side_entry *)&st->sides[i];
        if (!st->sides[i].pid && empty < 0)
            empty = i;
    }
    if (empty < 0)
        return NULL;
    st->sides[empty].pid = pid;
    st->sides[empty].roles = 0;
    return (struct side_entry *)&st->sides[empty];
}

/* The caller's entry in the table (under the lock), added if missing; NULL when full.
 * A full table first loses the holders gone unreported (plain fork()'s children that
 * their program reaped, one after another, filled it: the queue then never said -EPIPE
 * again); the caller's sides_update counts their departures. */
static struct side_entry *side_of(queue_state *st, unsigned pid)
{
    struct side_entry *e = side_found(st, pid);
    if (!e) {
        purge_left(st, 0);
        e = side_found(st, pid);
    }
    if (!e)
        atomic_fetch_add(&st->untracked, 1);
    return e;
}

/* How long a send or receive waits for the lock at least: a deadline already past
 * (which tries once) still lets a holder finish a copy of a few milliseconds, as the
 * queue's readiness is what such a call asks about. */
#define LOCK_GRACE_NS (10 * PLAIT_MS)

/* pid no longer holds the queue (it died, or unmapped it; 0: nobody, only the purge
 * below).  Holders
 * reaped by someone else (a grandchild whose parent died first) are purged here too,
 * if they are gone; as such a death may come after every report that would purge it,
 * a sender or receiver that waits purges too, every PLAIT__SHARED_RECHECK_NS (and at
 * its deadline, when the side it waits for turns out gone: wait_timed_out).
 * Called under the lock, which it lets go. */
static unsigned leave_locked(queue_state *st, unsigned pid)
{
    purge_left(st, pid);
    bool newly = sides_update(st);
    unsigned gone = atomic_load(&st->gone);
    plait__plock_unlock(&st->lock);
    if (newly)
        wake_both(st);
    return gone; /* the sides gone, as this left them */
}

/* Whether every holder that is, or could become, on side `role` is gone unreported
 * (under the lock): false at the first one still alive, so it costs one look while
 * that side lives.  A side nobody holds is not found gone here: no purge could end it. */
static bool side_left_unreported(queue_state *st, unsigned role)
{
    if (atomic_load(&st->untracked))
        return false;
    unsigned me = plait__pid();
    bool any = false;
    for (int i = 0; i < SIDES; i++) {
        unsigned p = st->sides[i].pid, roles = st->sides[i].roles;
        if (!p || (roles && !(roles & role)))
            continue;
        if (p == me || !plait__pid_gone(p))
            return false;
        any = true;
    }
    return any;
}

/* The end of a send's or receive's wait on the side `role` it needs, timed out at
 * recheck: 0 to look at the queue again, else what the call answers.  The lock is taken
 * within the call's deadline, as its send or receive (its holder may be stopped).
 * Before the deadline: a purge of the holders gone unreported, if the lock is had
 * within a grace.  At the deadline:
 * -ETIMEDOUT, unless that side is gone, or found gone now (a purge only then: a call
 * that waits less than PLAIT__SHARED_RECHECK_NS never purged, and answered -ETIMEDOUT
 * where a longer wait answered -EPIPE); a try looks at most every TRY_LOOK_NS. */
/* A try (a deadline past as its wait began) looks for a side gone unreported at most
 * this often, by handle and side: each look is a kill(2) per holder up to the first
 * alive, and the lock again, which made a try on an empty or full queue whose other
 * side lives five times dearer (a polling loop: a system call per try). */
#define TRY_LOOK_NS (10 * PLAIT_MS)

/* At the deadline, whether to look at the queue once more (*looked: done already):
 * a send or receive whose wake-up never came (its process stopped after its store)
 * left a message or room that a wait shorter than the looks never saw; the sequence
 * says whether one came since the look that found none. */
static bool last_look(atomic_uint *seq_word, unsigned seq, bool *looked)
{
    if (*looked || atomic_load(seq_word) == seq)
        return false;
    *looked = true;
    return true;
}

static int wait_timed_out(plait_queue *queue, unsigned role, int64_t recheck,
                          int64_t deadline)
{
    queue_state *st = queue->st;
    if (deadline <= recheck - PLAIT__SHARED_RECHECK_NS) { /* a try */
        _Atomic int64_t *looked = &queue->tries_looked[role - 1];
        int64_t now = plait_now(), last = atomic_load_explicit(looked, memory_order_relaxed);
        if (last && now - last < TRY_LOOK_NS)
            return -ETIMEDOUT;
        atomic_store_explicit(looked, now, memory_order_relaxed);
    }
    /* A purge before the deadline waits for the lock a grace at most (0: LOCK_GRACE_NS
     * from now), and is put off if it is held longer: its holder may be stopped, and
     * meanwhile this call must see its queue (it waited on the lock's word, deaf to the
     * sequence, until its own deadline). */
    int r = plait__plock_lock_until(&st->lock, recheck < deadline ? 0 : deadline, LOCK_GRACE_NS);
    if (r == -ETIMEDOUT && recheck < deadline)
        return 0;
    if (r < 0)
        return r;
    if (recheck < deadline) {
        leave_locked(st, 0);
        return 0;
    }
    unsigned gone = atomic_load(&st->gone);
    if (!(gone & role) && side_left_unreported(st, role))
        gone = leave_locked(st, 0);
    else
        plait__plock_unlock(&st->lock);
    return gone & role ? 0 : -ETIMEDOUT;
}

static void queue_died(plait__shared_obj *obj, unsigned pid)
{
    queue_state *st = ((plait_queue *)obj)->st;
    plait__plock_release_dead(&st->send_lock, pid);
    plait__plock_release_dead(&st->recv_lock, pid);
    plait__plock_release_dead(&st->lock, pid);
    /* Its side ends, but not at any price: the reaper (the manager thread, a process
     * pool) holds every start, reaping and join of a process meanwhile, and a holder
     * stopped with the table's lock held it for as long as it stayed stopped.  Past
     * DEATH_PATIENCE looks the dead holder is left to a purge: a send or receive that
     * waits finds it gone (as it finds a holder reaped unreported). */
    if (plait__plock_lock_patient(&st->lock, DEATH_PATIENCE, NULL) == 0)
        leave_locked(st, pid);
    wake_both(st); /* it may have died between a send or receive and its wake-up */
}

static void queue_forked(plait__shared_obj *obj, unsigned pid, bool program)
{
    queue_state *st = ((plait_queue *)obj)->st;
    /* A child just forked holds nothing yet: a lock that names its id names a holder
     * gone unreported (killed in its copy, reaped by its program) whose id the kernel
     * gave to this child.  Released first: a look at whether its holder still exists
     * answers alive now, and the fork waited for ever for its own child, which waits
     * for its parent to go on. */
    plait__plock_release_dead(&st->send_lock, pid);
    plait__plock_release_dead(&st->recv_lock, pid);
    plait__plock_release_dead(&st->lock, pid);
    /* Told by the parent before it goes on: the manager thread, which must not wait long
     * (queue_died).  Past patience the child is not entered: it counts as untracked,
     * and the queue never says -EPIPE on its own from then on, rather than end a side
     * the child could still take up.  (A program's child is never entered.) */
    if (plait__plock_lock_patient(&st->lock, DEATH_PATIENCE, NULL) < 0) {
        if (!program) {
            atomic_fetch_add(&st->untracked, 1);
            atomic_store(&st->gone, 0);
        }
        return;
    }
    /* An entry with this id already is a holder gone unreported (a plain fork()'s
     * child that its program reaped), not purged yet, whose id the kernel has given to
     * this new child: it leaves, as at its death, and the child starts undecided.  (The
     * child took it over: the old holder's side for the new child's, and its departure
     * never counted, so a side it was the last of never ended while the child lived.) */
    for (int i = 0; i < SIDES; i++)
        if (st->sides[i].pid == pid)
            side_left(st, i);
    if (!program)
        side_of(st, pid);
    bool newly = sides_update(st); /* an undecided holder revives both sides */
    plait__plock_unlock(&st->lock);
    if (newly)
        wake_both(st);
}

/* Take one of the queue's locks for a call.  One that must wait for it (its holder may
 * be a process stopped in the middle of a copy or an update of the table) is a call of
 * this process that waits: it stays counted from then on, so a destroy meanwhile is
 * -EBUSY.  (It was counted only in its wait on a sequence: a destroy from another thread
 * went on to take the lock after it, and unmapped the state under the call still
 * waiting for the lock.) */
static int call_lock(plait_queue *q, plait__plock *lock, int64_t deadline,
                     plait__shared_waiting *stay)
{
    if (PLAIT_LIKELY(plait__plock_trylock(lock)))
        return 0;
    plait__shared_stay(&q->obj, stay);
    return plait__plock_lock_until(lock, deadline, LOCK_GRACE_NS);
}

/* Note the caller as a holder of side role, before its call takes its end's lock
 * (queue_lock).  0, or the table's lock's error. */
static int side_note(plait_queue *q, unsigned role, int64_t deadline,
                     plait__shared_waiting *stay)
{
    queue_state *st = q->st;
    unsigned me = plait__pid();
    uint64_t noted = atomic_load_explicit(&q->noted, memory_order_relaxed);
    if (PLAIT_LIKELY(noted >> 32 == me && (noted & role)))
        return 0;
    int r = call_lock(q, &st->lock, deadline, stay);
    if (r < 0)
        return r;
    struct side_entry *e = side_of(st, me);
    if (e)
        e->roles |= role;
    bool newly = sides_update(st); /* an undecided holder that took a side left the other */
    noted = atomic_load_explicit(&q->noted, memory_order_relaxed); /* (its writers hold `lock`) */
    uint64_t roles = noted >> 32 == me ? noted & (ROLE_SEND | ROLE_RECV) : 0;
    atomic_store_explicit(&q->noted, (uint64_t)me << 32 | roles | role, memory_order_relaxed);
    plait__plock_unlock(&st->lock);
    if (newly)
        wake_both(st);
    return 0;
}

int plait_queue_create(plait_queue **queue, size_t msg_max, size_t capacity)
{
    if (!queue || msg_max == 0 || msg_max > PLAIT_QUEUE_MSG_MAX || capacity == 0 ||
        capacity > PLAIT_QUEUE_CAPACITY_MAX)
        return -EINVAL;
    size_t slot_size = (sizeof(slot) + msg_max + ALIGN - 1) / ALIGN * ALIGN;
    if (slot_size > ((size_t)1 << 36) / capacity) /* 64 GiB of address space at most */
        return -EINVAL;
    plait_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->map_size = state_size() + capacity * slot_size;
    q->st = plait__shared_map(q->map_size);
    if (!q->st) {
        free(q);
        return -ENOMEM;
    }
    q->msg_max = msg_max;
    q->capacity = capacity;
    q->slot_size = slot_size;
    q->st->sides[0].pid = plait__pid(); /* the first holder */
    static const plait__shared_hooks hooks = {queue_died, queue_forked};
    plait__shared_register(&q->obj, &hooks, q->st, q->map_size);
    *queue = q;
    return 0;
}

int plait_queue_destroy(plait_queue *queue)
{
    if (!queue)
        return -EINVAL;
    if (atomic_load(&queue->obj.local_waiters))
        return -EBUSY;
    /* Leave the table of holders, but not at any price: a holder stopped with the table's
     * lock (a debugger, job control; with one lock for everything, one stopped in the
     * middle of a copy) held the destroy for as long as it stayed stopped.
     * After some 100 ms the entry stays: this process is then taken for a holder until
     * its death is reported, or found by a purge.  A coroutine waits as on any shared
     * word, its scheduler free (it slept on the word as a thread, the scheduler still);
     * shielded, as a destroy is no call a cancellation should cut short. */
    queue_state *st = queue->st;
    int shield = plait_cancel_shield(1);
    if (plait__plock_lock_until(&st->lock, plait_deadline_in(DESTROY_PATIENCE_NS), 0) == 0)
        leave_locked(st, plait__pid());
    plait_cancel_shield(shield);
    plait__shared_let_go(&queue->obj);
    return 0;
}

/* An end's lock (lock) for a send or receive, the caller noted as a holder of its side. */
static int queue_lock(plait_queue *queue, plait__plock *lock, unsigned role,
                      int64_t deadline, plait__shared_waiting *stay)
{
    /* The side is noted first, without the end's lock: a coroutine that waits for the
     * table's lock yields, and an end's lock held across a yield would be held twice
     * if another coroutine of its scheduler forked meanwhile (the child's copy of this
     * one goes on as the holder the lock's word does not name). */
    int r = side_note(queue, role, deadline, stay);
    return r < 0 ? r : call_lock(queue, lock, deadline, stay);
}

/* The calls that wait stay counted as waiters until they return: woken by a close, they
 * still take their end's lock to see it, and a destroy then must not unmap the state. */
static int queue_send(plait_queue *queue, const void *msg, size_t len, int64_t deadline,
                      plait__shared_waiting *stay)
{
    queue_state *st = queue->st;
    bool looked = false; /* the last look, at the deadline */
    for (;;) {
        int lr = queue_lock(queue, &st->send_lock, ROLE_SEND, deadline, stay);
        if (lr < 0)
            return lr;
        /* the sequence before `closed` and head: a close, or a receive, changes those
         * and then bumps the sequence, so one after this look is seen by the wait */
        unsigned seq = atomic_load(&st->send_seq);
        if (atomic_load(&st->closed) || (atomic_load(&st->gone) & ROLE_RECV)) {
            plait__plock_unlock(&st->send_lock);
            return -EPIPE;
        }
        uint64_t tail = counter(&st->tail);
        if (tail - counter(&st->head) < queue->capacity) {
            slot *s = slot_at(queue, tail);
            if (len) /* msg may be NULL for an empty message */
                memcpy(s->data, msg, len);
            s->len = len;
            /* Once tail has moved, a receiver on another thread may take the message
             * (it needs no lock of ours) and destroy the queue: this call stays inside
             * until it is done with the state, and the destroy waits for it (a wake-up
             * that then finds no mapping is refused, harmlessly). */
            plait__shared_enter(&queue->obj);
            counter_advance(&st->tail);
            atomic_fetch_add(&st->recv_seq, 1);
            bool wake = atomic_load(&st->recv_waiters) != 0;
            plait__plock_unlock(&st->send_lock);
            plait__shared_exit(&queue->obj);
            if (wake)
                plait__pfutex_wake(&st->recv_seq);
            return 0;
        }
        plait__plock_unlock(&st->send_lock);
        plait__shared_stay(&queue->obj, stay);
        int64_t recheck = plait_deadline_in(PLAIT__SHARED_RECHECK_NS);
        int r = plait__shared_wait(&queue->obj, &st->send_seq, seq, &st->send_waiters,
                                   recheck < deadline ? recheck : deadline, "queue send");
        if (r == -ETIMEDOUT)
            r = wait_timed_out(queue, ROLE_RECV, recheck, deadline);
        if (r == -ETIMEDOUT && last_look(&st->send_seq, seq, &looked))
            continue;
        if (r < 0)
            return r;
    }
}

int plait_queue_send(plait_queue *queue, const void *msg, size_t len, int64_t deadline)
{
    if (!queue || (!msg && len))
        return -EINVAL;
    if (len > queue->msg_max)
        return -EMSGSIZE;
    plait__shared_waiting stay = {.obj = NULL};
    int r = queue_send(queue, msg, len, deadline, &stay);
    plait__shared_leave(&stay);
    return r;
}

/* The end a receive finds (closed, or every sender gone) with the queue empty is not
 * final while a send is under way: a sender that saw the queue open before the close
 * copies its message in and moves tail after it, holding send_lock throughout.  So the
 * receive looks again holding send_lock (with nothing else held): no send is under way
 * then, and every later one sees the end (closed stays set; a side revived afterwards
 * is a new one, as a pipe written by a new writer).  1 when the end is final (ended,
 * and empty), 0 when it is not (a message came, or a sender revived the side), or the
 * lock's error.  Waits for a sender stopped in its copy (whose message still goes in),
 * within the deadline; not on the way of any message.  (Looked at once, before the
 * look that found the end, it let a sender that revived the side and saw the queue
 * open, then a close, pass unseen: review of session 37.) */
static int end_is_final(plait_queue *queue, int64_t deadline, plait__shared_waiting *stay)
{
    queue_state *st = queue->st;
    int r = call_lock(queue, &st->send_lock, deadline, stay);
    if (r < 0)
        return r;
    bool ended = atomic_load(&st->closed) || (atomic_load(&st->gone) & ROLE_SEND);
    bool empty = counter(&st->tail) == counter(&st->head);
    plait__plock_unlock(&st->send_lock);
    return ended && empty;
}

static ssize_t queue_recv(plait_queue *queue, void *buf, size_t cap, int64_t deadline,
                          plait__shared_waiting *stay)
{
    queue_state *st = queue->st;
    bool looked = false; /* the last look, at the deadline */
    for (;;) {
        int lr = queue_lock(queue, &st->recv_lock, ROLE_RECV, deadline, stay);
        if (lr < 0)
            return lr;
        /* the sequence before `closed` and tail: as in queue_send; and the end (closed,
         * or every sender gone) before tail, so that what was sent before it is taken
         * (a send needs no lock of ours: read after tail, a close that followed a send
         * made between the two loads answered -EPIPE with that message queued) */
        unsigned seq = atomic_load(&st->recv_seq);
        bool ended = atomic_load(&st->closed) || (atomic_load(&st->gone) & ROLE_SEND);
        uint64_t head = counter(&st->head);
        if (counter(&st->tail) != head) {
            slot *s = slot_at(queue, head);
            uint64_t len = s->len;
            if (len > cap && len <= queue->msg_max) {
                plait__plock_unlock(&st->recv_lock);
                return -EMSGSIZE;
            }
            bool intact = len <= queue->msg_max; /* else written over: taken off, not copied */
            if (intact && len) /* buf may be NULL when cap is 0 */
                memcpy(buf, s->data, len);
            plait__shared_enter(&queue->obj); /* as in queue_send */
            counter_advance(&st->head);
            atomic_fetch_add(&st->send_seq, 1);
            bool wake = atomic_load(&st->send_waiters) != 0;
            plait__plock_unlock(&st->recv_lock);
            plait__shared_exit(&queue->obj);
            if (wake)
                plait__pfutex_wake(&st->send_seq);
            return intact ? (ssize_t)len : -EPROTO;
        }
        if (ended) {
            plait__plock_unlock(&st->recv_lock);
            int r = end_is_final(queue, deadline, stay);
            if (r != 0)
                return r > 0 ? -EPIPE : r;
            continue; /* a message came meanwhile: taken first */
        }
        plait__plock_unlock(&st->recv_lock);
        plait__shared_stay(&queue->obj, stay);
        int64_t recheck = plait_deadline_in(PLAIT__SHARED_RECHECK_NS);
        int r = plait__shared_wait(&queue->obj, &st->recv_seq, seq, &st->recv_waiters,
                                   recheck < deadline ? recheck : deadline, "queue recv");
        if (r == -ETIMEDOUT)
            r = wait_timed_out(queue, ROLE_SEND, recheck, deadline);
        if (r == -ETIMEDOUT && last_look(&st->recv_seq, seq, &looked))
            continue;
        if (r < 0)
            return r;
    }
}

ssize_t plait_queue_recv(plait_queue *queue, void *buf, size_t cap, int64_t deadline)
{
    if (!queue || (!buf && cap))
        return -EINVAL;
    plait__shared_waiting stay = {.obj = NULL};
    ssize_t r = queue_recv(queue, buf, cap, deadline, &stay);
    plait__shared_leave(&stay);
    return r;
}

int plait_queue_close(plait_queue *queue)
{
    if (!queue)
        return -EINVAL;
    /* Without a lock (an end's, which a holder stopped mid-copy may keep): a send or
     * receive reads the sequence it may wait on before closed, and the bump below comes after
     * the flag, so a waiter that saw the queue open sleeps on a value the bump changes.
     * (It read closed first: a close between its two reads left it asleep on the
     * bumped sequence until its next look for gone holders, 100 ms, and a call whose
     * deadline came first answered -ETIMEDOUT on a closed queue.) */
    plait__shared_enter(&queue->obj); /* a receiver may destroy it once it is closed */
    int r = -EPIPE;
    if (!atomic_exchange(&queue->st->closed, 1)) {
        wake_both(queue->st);
        r = 0;
    }
    plait__shared_exit(&queue->obj);
    return r;
}

size_t plait_queue_len(plait_queue *queue)
{
    if (!queue)
        return 0;
    queue_state *st = queue->st;
    uint64_t head = counter(&st->head);
    uint64_t queued = counter(&st->tail) - head;
    /* sends and receives between the two loads can make it look fuller than it is */
    return (size_t)(queued < queue->capacity ? queued : queue->capacity);
}
