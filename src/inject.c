/*
 * inject.c — a thread pool's injection queue (inject.h says how and why).
 */
#include "inject.h"

#include <stdlib.h>

bool plait__inject_room(const plait__inject *q)
{
    return (q->last && q->last->tail < PLAIT__INJECT_BLOCK) || q->spare;
}

plait__inject_block *plait__inject_block_new(void)
{
    return malloc(sizeof(plait__inject_block));
}

void plait__inject_push(plait__inject *q, plait__future *f, plait__inject_block **fresh)
{
    plait__inject_block *b = q->last;
    if (!b || b->tail == PLAIT__INJECT_BLOCK) {
        if (q->spare) {
            b = q->spare;
            q->spare = NULL;
        } else {
            b = *fresh;
            *fresh = NULL;
        }
        b->next = NULL;
        b->head = b->tail = 0;
        if (q->last)
            q->last->next = b;
        else
            q->first = b;
        q->last = b;
    }
    b->items[b->tail++] = f;
    atomic_fetch_add(&q->len, 1);
}

size_t plait__inject_take(plait__inject *q, plait__future **out, size_t max,
                          plait__inject_block **dropped)
{
    size_t n = 0;
    while (n < max && q->first) {
        plait__inject_block *b = q->first;
        while (n < max && b->head < b->tail)
            out[n++] = b->items[b->head++];
        if (b->head < b->tail)
            break;
        /* b is empty: the last block stays, to be filled again from its start */
        if (b == q->last) {
            b->head = b->tail = 0;
            break;
        }
        q->first = b->next;
        if (!q->spare) {
            q->spare = b;
        } else {
            b->next = *dropped;
            *dropped = b;
        }
    }
    atomic_store(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n);
    return n;
}

void plait__inject_blocks_free(plait__inject_block *list)
{
    while (list) {
        plait__inject_block *b = list;
        list = b->next;
        free(b);
    }
}

void plait__inject_free(plait__inject *q)
{
    plait__inject_blocks_free(q->first);
    free(q->spare);
    q->first = q->last = q->spare = NULL;
}
