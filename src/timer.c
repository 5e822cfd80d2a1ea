/*
 * timer.c — a binary min-heap of deadlines, one per scheduler.
 *
 * Each timer records its own index so that a wait that ends early (the common case:
 * the deadline is a bound, not an expectation) removes its timer in O(log n).  The
 * heap holds each deadline beside its timer's address, so a sift reads one array
 * (the timers live on the waiting coroutines' stacks, each its own cache line).
 * A timer whose deadline is no earlier than the last one's on the list goes on the
 * list instead (a doubly linked list in deadline order): added and removed in a few
 * instructions.  Deadlines mostly come in that order (a server's "now + timeout" for
 * each read), and most timers are removed long before they fire, which from the heap
 * was a sift from the middle: a hundred and more instructions per request for an
 * HTTP server at 50 connections (docs/BENCHMARKS.md, session 19).  The first timer
 * is the earlier of the heap's first and the list's.
 *
 * Timers fire in the order (when, seq): of equal deadlines (coroutines sleeping until
 * the same tick) the one added first fires first, as in libuv, so programs and tests
 * see the order they asked for.  seq breaks ties only: the heap compares it only when
 * two deadlines are equal, and the list, appended to in (when, seq) order, never does.
 *
 * Invariants: a timer's `when` and `seq` do not change while it is in the heap or the
 * list; its `index` says which it is in (PLAIT__TIMER_IN_LIST, a heap position, or
 * SIZE_MAX for neither); the list is sorted by (when, seq).
 */
#include "internal.h"

#include <stdlib.h>

static void heap_set(plait__timer_heap *heap, size_t i, plait__timer_entry e)
{
    heap->items[i] = e;
    e.timer->index = i;
}

/* plait__timer_before for heap entries: the deadline beside the address first. */
static bool entry_before(plait__timer_entry a, plait__timer_entry b)
{
    return a.when < b.when || (a.when == b.when && a.timer->seq < b.timer->seq);
}

static void sift_up(plait__timer_heap *heap, size_t i)
{
    plait__timer_entry e = heap->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_before(e, heap->items[parent]))
            break;
        heap_set(heap, i, heap->items[parent]);
        i = parent;
    }
    heap_set(heap, i, e);
}

static void sift_down(plait__timer_heap *heap, size_t i)
{
    plait__timer_entry e = heap->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap->len)
            break;
        if (child + 1 < heap->len && entry_before(heap->items[child + 1], heap->items[child]))
            child++;
        if (!entry_before(heap->items[child], e))
            break;
        heap_set(heap, i, heap->items[child]);
        i = child;
    }
    heap_set(heap, i, e);
}

int plait__timer_add(plait__timer_heap *heap, plait__timer *timer)
{
    timer->seq = heap->added++;
    if (!heap->tail || heap->tail->when <= timer->when) { /* in order: on the list */
        timer->prev = heap->tail;
        timer->next = NULL;
        if (heap->tail)
            heap->tail->next = timer;
        else
            heap->head = timer;
        heap->tail = timer;
        timer->index = PLAIT__TIMER_IN_LIST;
        return 0;
    }
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 64;
        plait__timer_entry *items = realloc(heap->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        heap->items = items;
        heap->cap = cap;
    }
    heap->items[heap->len] = (plait__timer_entry){timer->when, timer};
    sift_up(heap, heap->len++);
    return 0;
}

void plait__timer_remove(plait__timer_heap *heap, plait__timer *timer)
{
    size_t i = timer->index;
    timer->index = SIZE_MAX;
    if (i == PLAIT__TIMER_IN_LIST) {
        if (timer->prev)
            timer->prev->next = timer->next;
        else
            heap->head = timer->next;
        if (timer->next)
            timer->next->prev = timer->prev;
        else
            heap->tail = timer->prev;
        return;
    }
    plait__timer_entry last = heap->items[--heap->len];
    if (i == heap->len)
        return;
    heap_set(heap, i, last);
    if (i > 0 && entry_before(last, heap->items[(i - 1) / 2]))
        sift_up(heap, i);
    else
        sift_down(heap, i);
}

void plait__timer_heap_free(plait__timer_heap *heap)
{
    free(heap->items);
    heap->items = NULL;
    heap->len = heap->cap = 0;
    heap->head = heap->tail = NULL;
}
