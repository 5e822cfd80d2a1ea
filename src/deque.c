/* deque.c — the work-stealing deque; the design and its invariants are in deque.h. */
#include "deque.h"

#include <stdlib.h>

enum { NO_CLAIM = -1 };

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

int plait__deque_init(plait__deque *d, plait__deque_kind kind)
{
    d->kind = kind;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    /* without a private part every index is below split */
    atomic_init(&d->split, kind == PLAIT__DEQUE_SPLIT ? 0 : INT64_MAX);
    atomic_init(&d->claim, NO_CLAIM);
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
    if (d->kind == PLAIT__DEQUE_SOLO) {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return 0;
    }
    int64_t s = atomic_load_explicit(&d->split, memory_order_relaxed);
    if (b < s) {
        /* public at once (the shared kind, or below split): publishes the item, and
         * the task it points at, to thieves; seq_cst also orders it before the pool's
         * look at its sleepers (pool.c) */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_seq_cst);
        plait__store_load_fence();
        return 1;
    }
    /* private; release, for a thief that exposes it (it reads bottom first) */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    if (t < s)
        return 0; /* thieves have a public item to take already */
    /* The public part is empty: make the oldest private item public.  The exchange
     * fails only where a thief exposed it meanwhile: public either way. */
    atomic_compare_exchange_strong_explicit(&d->split, &s, s + 1, memory_order_seq_cst,
                                            memory_order_seq_cst);
    return 1;
}

bool plait__deque_publish(plait__deque *d)
{
    if (d->kind != PLAIT__DEQUE_SPLIT)
        return false;
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t s = atomic_load_explicit(&d->split, memory_order_relaxed);
    while (s < b)
        if (atomic_compare_exchange_weak_explicit(&d->split, &s, b, memory_order_seq_cst,
                                                  memory_order_relaxed))
            return true;
    return false;
}

plait__future *plait__deque_take(plait__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    plait__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    if (d->kind == PLAIT__DEQUE_SOLO) {
        if (atomic_load_explicit(&d->top, memory_order_relaxed) > b)
            return NULL;
        atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
        return atomic_load_explicit(&a->items[b & a->mask], memory_order_relaxed);
    }
    if (d->kind == PLAIT__DEQUE_SPLIT) {
        /* the owner's side of the exposing handshake (deque.h): claim before split,
         * since a thief raises split before it gives its claim back */
        atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
        plait__light_fence();
        int64_t claimed = atomic_load_explicit(&d->claim, memory_order_acquire);
        /* (NO_CLAIM is -1: below every index) */
        if (b >= atomic_load_explicit(&d->split, memory_order_relaxed) && b >= claimed)
            return atomic_load_explicit(&a->items[b & a->mask], memory_order_relaxed);
    }
    /* Chase–Lev: a thief may be taking item b too */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    plait__store_load_fence();
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
        else if (d->kind == PLAIT__DEQUE_SPLIT) /* a private item a thief had claimed: */
            atomic_compare_exchange_strong_explicit(&d->split, &t, b + 1, /* top <= split */
                                                    memory_order_seq_cst, memory_order_relaxed);
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return f;
}

plait__future *plait__deque_steal(plait__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t >= atomic_load_explicit(&d->split, memory_order_seq_cst))
        return NULL;
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

bool plait__deque_expose(plait__deque *d, bool all)
{
    if (d->kind != PLAIT__DEQUE_SPLIT)
        return false;
    if (plait__deque_public(d))
        return true;
    int64_t s = atomic_load_explicit(&d->split, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (b <= s)
        return false; /* nothing private either */
    int64_t end = all ? b : s + 1; /* the claim: [split, end) */
    int64_t none = NO_CLAIM;
    if (!atomic_compare_exchange_strong_explicit(&d->claim, &none, end, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return false; /* another thief is exposing */
    /* the thief's side of the handshake: after the heavy fence, either bottom shows
     * every take of a claimed item the owner made privately, or the owner sees the
     * claim (and takes below its end as public ones) */
    int64_t upto = -1;
    if (plait__heavy_fence() == 0) {
        upto = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
        if (upto > end)
            upto = end;
    }
    bool exposed = upto > s;
    /* split only grows: the owner may have raised it meanwhile (a push, a publish) */
    for (int64_t now = s; exposed && now < upto;)
        if (atomic_compare_exchange_weak_explicit(&d->split, &now, upto, memory_order_seq_cst,
                                                  memory_order_seq_cst))
            break;
    atomic_store_explicit(&d->claim, NO_CLAIM, memory_order_seq_cst);
    return exposed;
}

bool plait__deque_public(plait__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    return t < atomic_load_explicit(&d->split, memory_order_seq_cst) &&
           t < atomic_load_explicit(&d->bottom, memory_order_seq_cst);
}

bool plait__deque_private(plait__deque *d)
{
    return d->kind == PLAIT__DEQUE_SPLIT &&
           atomic_load_explicit(&d->bottom, memory_order_relaxed) >
               atomic_load_explicit(&d->split, memory_order_relaxed);
}

int64_t plait__deque_size(plait__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    return b > t ? b - t : 0;
}

bool plait__deque_claimed(plait__deque *d)
{
    return atomic_load_explicit(&d->claim, memory_order_seq_cst) != NO_CLAIM;
}
