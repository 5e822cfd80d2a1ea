/*
 * exit_key.c — the pthread keys whose destructors are plait's thread-exit hooks (a
 * plain thread's wake-up descriptor, its task-local values, its cache of futures).
 *
 * Each is made at its first use.  The program may hold every key there is at that
 * moment (PTHREAD_KEYS_MAX): the use is then refused, and the next one tries again, so
 * the refusal lasts as long as the shortage (with pthread_once, one refusal was for
 * the life of the process).  Two threads may make one at once: the one whose
 * compare-and-swap publishes its key keeps it, the other deletes its own.  The key and
 * the fact that it is made are one word, so no thread sees one without the other.
 *
 * A thread refused a key may have been refused because another thread's maker holds
 * the last one and has not published it yet (pthread_once made the second wait for
 * the first): `making` counts the makers under way, each dropped after its publication,
 * and a refused thread waits, yielding, while any is and the word is still empty.  For
 * a moment only (MAKER_PATIENCE): a maker that a fork left in another thread of the
 * parent never ends in the child.
 */
#include "internal.h"

#include <sched.h>

_Static_assert(sizeof(pthread_key_t) <= sizeof(uint32_t), "a key fits 32 bits");

#define KEY_MADE ((uint64_t)1 << 32)

enum { MAKER_PATIENCE = 10000 }; /* yields: a maker's create and compare-and-swap */

/* Make k's key, or take the one another thread made meanwhile: the word, or 0. */
static uint64_t make(plait__exit_key *k)
{
    atomic_fetch_add(&k->making, 1);
    uint64_t word = 0;
    pthread_key_t fresh;
    if (pthread_key_create(&fresh, k->destructor) == 0) {
        uint64_t mine = KEY_MADE | (uint32_t)fresh;
        if (atomic_compare_exchange_strong(&k->word, &word, mine))
            word = mine;
        else
            pthread_key_delete(fresh); /* another thread's came first: word holds it */
    }
    atomic_fetch_sub(&k->making, 1);
    for (unsigned yields = 0; !word && yields < MAKER_PATIENCE; yields++) {
        word = atomic_load(&k->word);
        if (word || !atomic_load(&k->making))
            break;
        sched_yield();
    }
    return word ? word : atomic_load(&k->word);
}

bool plait__exit_key_get(plait__exit_key *k, pthread_key_t *key)
{
    uint64_t word = atomic_load_explicit(&k->word, memory_order_acquire);
    if (PLAIT_UNLIKELY(!word) && !(word = make(k)))
        return false;
    *key = (pthread_key_t)(uint32_t)word;
    return true;
}
