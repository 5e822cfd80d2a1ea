/*
 * deque.h — a work-stealing deque (Chase and Lev, with the C11 orderings of Lê,
 * Pop, Cohen and Zappa Nardelli, "Correct and efficient work-stealing for weak
 * memory models", PPoPP 2013).
 *
 * One owner thread pushes and takes at the bottom (LIFO: the newest task, whose data
 * is still in its cache); any thread steals at the top (FIFO: the oldest, usually the
 * biggest piece of a recursive split).  Owner operations touch no lock and, except
 * when the deque is down to its last item, no read-modify-write.
 *
 * A deque made `solo` has no thieves (the deque of a pool's only worker): nobody but
 * the owner ever touches it, so push and take are plain loads and stores, without the
 * fence and the exchange that keep them right against thieves.
 *
 * Every access to top and bottom is sequentially consistent or release/acquire rather
 * than the paper's relaxed accesses with fences: the same instructions on x86-64 (a
 * store to bottom becomes an xchg, the fence the paper needs there anyway), and it
 * gives ThreadSanitizer, which does not model fences, the happens-before edges that
 * publish a task's fields to its thief.
 */
#ifndef PLAIT_DEQUE_H
#define PLAIT_DEQUE_H

#include "internal.h"

typedef struct plait__deque_array {
    int64_t mask;                            /* capacity - 1, a power of two minus one */
    struct plait__deque_array *retired_next; /* older arrays, kept for late thieves */
    _Atomic(plait__future *) items[];
} plait__deque_array;

typedef struct plait__deque {
    _Alignas(64) atomic_llong top;           /* thieves advance it */
    _Alignas(64) atomic_llong bottom;        /* the owner's end */
    _Atomic(plait__deque_array *) array;
    plait__deque_array *retired;             /* freed with the deque */
    bool solo;                               /* the owner is the only thread using it */
} plait__deque;

/* solo: no thread but the owner will ever call any of the functions below on it. */
int plait__deque_init(plait__deque *d, bool solo);
void plait__deque_free(plait__deque *d);
/* Every deque holds this many items without growing. */
enum { PLAIT__DEQUE_INITIAL_CAPACITY = 256 };

/* Owner: push at the bottom.  -ENOMEM when it had to grow and could not (never while
 * it holds fewer than PLAIT__DEQUE_INITIAL_CAPACITY items). */
int plait__deque_push(plait__deque *d, plait__future *f);
/* Owner: take the newest item, NULL when empty. */
plait__future *plait__deque_take(plait__deque *d);
/* Anyone: steal the oldest item, NULL when empty or when another thief won it. */
plait__future *plait__deque_steal(plait__deque *d);
/* Whether it looks non-empty (a hint for sleepers; exact only when quiescent). */
bool plait__deque_busy(plait__deque *d);

#endif
