/*
 * deque.h — a work-stealing deque (Chase and Lev, with the C11 orderings of Lê,
 * Pop, Cohen and Zappa Nardelli, "Correct and efficient work-stealing for weak
 * memory models", PPoPP 2013), with a private part where the platform allows it.
 *
 * One owner thread pushes and takes at the bottom (LIFO: the newest task, whose data
 * is still in its cache); any thread steals at the top (FIFO: the oldest, usually the
 * biggest piece of a recursive split).  Items live at indices [top, bottom) of a
 * circular array.  A deque comes in one of three kinds:
 *
 *  - SOLO: no thieves (the deque of a pool's only worker); push and take are plain
 *    loads and stores.
 *  - SHARED: Chase–Lev as published.  Every item can be stolen from the moment it is
 *    pushed.  A push is a sequentially consistent store of bottom (an exchange on
 *    x86-64, which the pool's sleep handshake needs anyway) and a take a store, a full
 *    fence and a load of top (against a thief racing for the same item).
 *  - SPLIT (x86-64 with asymmetric fences, fence.c): a third index, split, cuts the
 *    items in two.  [top, split) is public, stolen as in Chase–Lev; [split, bottom) is
 *    private, and thieves leave it alone.  The owner pushes and takes private items
 *    without any locked instruction or fence: a task that forks and joins on two
 *    workers spends most of its time on those two instructions otherwise
 *    (docs/ARCHITECTURE.md, "What a second worker costs a task").
 *
 * How private items become public (split only ever grows):
 *  - The owner's push makes the oldest private item public when the public part is
 *    empty (a compare-and-swap, as rare as steals), and plait__deque_publish makes all
 *    of them public (the pool calls it when workers sleep, and for a batch taken from
 *    its injection queue).
 *  - A thief can expose the oldest private item, or all of them, without the owner's
 *    help (plait__deque_expose), for an owner that pushed and then computes, or
 *    blocks, for long.  It announces the end of the items it claims in `claim` (they
 *    are [split, claim)), makes every thread execute a full fence
 *    (plait__heavy_fence), and reads bottom; the owner's take stores bottom, holds back
 *    only the compiler, and reads claim and split.  Of "the thief sees the owner's new
 *    bottom" and "the owner sees the claim (or the split it led to)" at least one
 *    happens.  So the owner never takes an item privately while a thief takes it too:
 *    when it sees the claim or the larger split it takes the item as a public one (the
 *    Chase–Lev take, whose compare-and-swap on top arbitrates), and the thief makes
 *    public only the claimed items below the bottom it read after the fence (none when
 *    that is at or below split).  All at once is for a cancelling shutdown: one heavy
 *    fence for what a held worker queued, where one each held it seconds past its
 *    deadline; a thief looking for work takes the oldest only, so that the owner keeps
 *    taking the rest without a fence.
 *
 * Invariants (split kind; the shared kind is the same with split at infinity):
 *  - top <= split, and split never decreases.  bottom may fall below split when the
 *    owner takes public items back; an item pushed below split is public at once.
 *    The owner's take of a claimed private item moves top past it (the Chase–Lev
 *    race) and then split too: a split left below top would let the owner's next
 *    take pass for private and return the same item again (the stress test in
 *    tests/test_deque.c found that).
 *  - Thieves take only index top, and only while top < split and top < bottom.
 *  - The owner takes index b without a fence only when b >= split and b >= claim
 *    (NONE is -1) as it reads them after storing bottom = b; every other take is the
 *    Chase–Lev one.
 *  - At most one thief claims at a time (claim goes from NONE to an end by
 *    compare-and-swap and back to NONE when it is done).
 *
 * Accesses are sequentially consistent or release/acquire where the paper has relaxed
 * accesses with fences, except on the owner's private path: the same instructions on
 * x86-64, and ThreadSanitizer, which does not model fences, sees the happens-before
 * edges that publish a task's fields to its thief.  Off x86-64 a full fence follows
 * each store whose handshake reads another variable next (plait__store_load_fence:
 * for qemu-user, which lets that read pass the store).
 */
#ifndef PLAIT_DEQUE_H
#define PLAIT_DEQUE_H

#include "internal.h"

typedef struct plait__deque_array {
    int64_t mask;                            /* capacity - 1, a power of two minus one */
    struct plait__deque_array *retired_next; /* older arrays, kept for late thieves */
    _Atomic(plait__future *) items[];
} plait__deque_array;

typedef enum {
    PLAIT__DEQUE_SOLO,   /* no thieves */
    PLAIT__DEQUE_SHARED, /* every item public */
    PLAIT__DEQUE_SPLIT,  /* a private part; needs plait__asymmetric_fences() */
} plait__deque_kind;

typedef struct plait__deque {
    /* written by thieves (top, claim) or rarely (split); read by the owner each time */
    _Alignas(64) _Atomic(int64_t) top;
    _Atomic(int64_t) split;                   /* the first private index */
    _Atomic(int64_t) claim;                   /* the end of what a thief exposes, or -1 */
    /* written by the owner at every push and take */
    _Alignas(64) _Atomic(int64_t) bottom;
    _Atomic(plait__deque_array *) array;
    plait__deque_array *retired;             /* freed with the deque */
    plait__deque_kind kind;
} plait__deque;

/* SOLO: no thread but the owner will ever call any of the functions below on it, but
 * plait__deque_public (a hint: the pool's sleepers and its shutdown look at every
 * worker's deque; stale on a SOLO one, whose owner stores relaxed, and looked at again
 * by its callers). */
int plait__deque_init(plait__deque *d, plait__deque_kind kind);
void plait__deque_free(plait__deque *d);
/* Every deque holds this many items without growing. */
enum { PLAIT__DEQUE_INITIAL_CAPACITY = 256 };

/* Owner: push at the bottom.  1 when the item (or an older one) has just become
 * public, through a sequentially consistent access after it was written: the caller
 * then wakes a sleeper if there is one.  0 when it went to the private part (or the
 * deque is SOLO).  -ENOMEM when it had to grow and could not (never while it holds
 * fewer than PLAIT__DEQUE_INITIAL_CAPACITY items). */
int plait__deque_push(plait__deque *d, plait__future *f);
/* Owner: make every private item public; true when there was one (sequentially
 * consistent, like a public push). */
bool plait__deque_publish(plait__deque *d);
/* Owner: take the newest item, NULL when empty. */
plait__future *plait__deque_take(plait__deque *d);
/* Owner: where the next push goes (the bottom); only the owner moves it.  Items at or
 * above a mark read so were pushed after it (and not yet taken). */
static inline int64_t plait__deque_mark(plait__deque *d)
{
    return atomic_load_explicit(&d->bottom, memory_order_relaxed);
}
/* Anyone: steal the oldest public item, NULL when there is none or another thief won
 * it. */
plait__future *plait__deque_steal(plait__deque *d);
/* Anyone but the owner (SPLIT): when the public part is empty and the private part
 * is not, make its oldest item public, or all its items (a heavy fence: tens of
 * microseconds).  true when an item is public afterwards, to be stolen. */
bool plait__deque_expose(plait__deque *d, bool all);
/* Whether a public item looks present (a hint for sleepers; exact only when
 * quiescent; sequentially consistent). */
bool plait__deque_public(plait__deque *d);
/* Whether private items look present (a hint: whether plait__deque_expose may find
 * one). */
bool plait__deque_private(plait__deque *d);
/* Anyone: how many items, public and private, look present (a hint, not below the
 * number of items that stay in the deque while it reads: top first, then bottom). */
int64_t plait__deque_size(plait__deque *d);
/* Anyone: whether a thief is exposing an item now (plait__deque_expose refuses a second
 * one meanwhile; the item is public when it is done, unless its owner took it). */
bool plait__deque_claimed(plait__deque *d);

#endif
