/*
 * inject.h — a thread pool's injection queue: the tasks submitted from outside the
 * pool's workers, first in first out, for any worker to take a batch of.
 *
 * Blocks of task pointers in a list, under one spin lock that the caller holds for
 * every call but plait__inject_free (the pool checks `closed` under it too).  The
 * submitter appends at the tail block, a worker copies a batch out of the head block
 * (and the next, where the batch crosses the end of one).  Why blocks and not a list
 * through the futures themselves: a batch cut off such a list is found by walking it,
 * a chain of cache misses on futures the submitting thread has just written, made
 * while that thread waits for the lock; a block is read in order, a few pointers a
 * line, and the worker can then prefetch the futures it took, all at once.
 *
 * An emptied block is kept as the spare (one at most) for the next block the tail
 * needs: a steady stream of submits allocates nothing.  A block is allocated without
 * the lock held: plait__inject_room says whether a push needs one, and the caller
 * allocates it, takes the lock again and asks again (a worker may have emptied a
 * block meanwhile, and an unused fresh block is freed).
 *
 * `len` counts the queued tasks; it is written under the lock with sequentially
 * consistent stores, and read without it by workers looking for work (the pool's
 * sleep handshake pairs those accesses with the sleepers' `idle`).
 */
#ifndef PLAIT_INJECT_H
#define PLAIT_INJECT_H

#include "internal.h"

enum { PLAIT__INJECT_BLOCK = 256 };

typedef struct plait__inject_block {
    struct plait__inject_block *next;
    unsigned head, tail; /* items[head..tail) are queued */
    plait__future *items[PLAIT__INJECT_BLOCK];
} plait__inject_block;

typedef struct plait__inject {
    plait__spinlock lock;
    plait__inject_block *first, *last, *spare; /* under lock */
    atomic_size_t len;
} plait__inject;

/* Whether a push fits without a fresh block (the lock held). */
bool plait__inject_room(const plait__inject *q);
/* Append f (the lock held).  Without room, *fresh (a block from
 * plait__inject_block_new) is used and set to NULL. */
void plait__inject_push(plait__inject *q, plait__future *f, plait__inject_block **fresh);
/* A block for plait__inject_push, allocated without the lock; NULL when out of memory. */
plait__inject_block *plait__inject_block_new(void);
/* Copy up to max of the oldest tasks to out (the lock held): how many.  A block this
 * empties beyond the spare goes to *dropped, for the caller to free after unlocking. */
size_t plait__inject_take(plait__inject *q, plait__future **out, size_t max,
                          plait__inject_block **dropped);
/* Free a list of blocks (through next): plait__inject_take's dropped ones. */
void plait__inject_blocks_free(plait__inject_block *list);
/* Free the queue's blocks (no other thread uses it any more). */
void plait__inject_free(plait__inject *q);

#endif
