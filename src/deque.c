/* deque.c — the work-stealing deque; the design is in deque.h. */
#include "deque.h"

#include <stdlib.h>

static plait__deque_array *array_new(int64_t capacity)
{
    plait__deque_array *a =
        malloc(sizeof *a + (size_t)capacity * sizeof(_Atomic(plait__future *)));
    if (a) {
        a->mask = capacity - 1;
        a->retired_next = NULL;
    }
    return a;
}

int plait__deque_init(plait__deque *d, bool solo)
{
    d->solo = solo;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    plait__deque_array *a = array_new(PLAIT__DEQUE_INITIAL_CAPACITY);
    if (!a)
        return -ENOMEM;
    atomic_init(&d->array, a);
    d->retired = NULL;
    return 0;
}

void plait__deque_free(plait__deque *d)
{
    free(atomic_load_explicit(&d->array, memory_order_relaxed));
    while (d->retired) {
        plait__deque_array *a = d->retired;
        d->retired = a->retired_next;
        free(a);
    }
}

/* Double the array; the old one stays readable for thieves that loaded it. */
static plait__deque_array *grow(plait__deque *d, plait__deque_array *old, int64_t top,
                                int64_t bottom)
{
    plait__deque_array *a = array_new((old->mask + 1) * 2);
    if (!a)
        return NULL;
    for (int64_t i = top; i < bottom; i++)
        atomic_store_explicit(&a->items[i & a->mask],
                              atomic_load_explicit(&old->items[i & old->mask],
                                                   memory_order_relaxed),
                              memory_order_relaxed);
    old->retired_next = d->retired;
    d->retired = old;
    atomic_store_explicit(&d->array, a, memory_order_release);
    return a;
}

int plait__deque_push(plait__deque *d, plait__future *f)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    plait__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    if (b - t > a->mask && !(a = grow(d, a, t, b)))
        return -ENOMEM;
    atomic_store_explicit(&a->items[b & a->mask], f, memory_order_relaxed);
    if (d->solo) {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return 0;
    }
    /* publishes the item (and the task it points at) to thieves; seq_cst also orders
     * it before the pool's look at its sleepers (pool.c) */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_seq_cst);
    return 0;
}

plait__future *plait__deque_take(plait__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    plait__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    if (d->solo) {
        if (atomic_load_explicit(&d->top, memory_order_relaxed) > b)
            return NULL;
        atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
        return atomic_load_explicit(&a->items[b & a->mask], memory_order_relaxed);
    }
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) { /* empty */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
        return NULL;
    }
    plait__future *f = atomic_load_explicit(&a->items[b & a->mask], memory_order_relaxed);
    if (t == b) {
        /* the last item: race the thieves for it on top */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            f = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return f;
}

plait__future *plait__deque_steal(plait__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL;
    plait__deque_array *a = atomic_load_explicit(&d->array, memory_order_acquire);
    plait__future *f = atomic_load_explicit(&a->items[t & a->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return f;
}

bool plait__deque_busy(plait__deque *d)
{
    return atomic_load_explicit(&d->top, memory_order_seq_cst) <
           atomic_load_explicit(&d->bottom, memory_order_seq_cst);
}
