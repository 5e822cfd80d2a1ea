/*
 * exit_key.c — the pthread keys whose destructors are plait's thread-exit hooks (a
 * plain thread's wake-up descriptor, its task-local values, its cache of futures).
 *
 * Each is made at its first use.  The program may hold every key there is at that
 * moment (PTHREAD_KEYS_MAX): the use is then refused, and the next one tries again, so
 * the refusal lasts as long as the shortage (with pthread_once, one refusal was for
 * the life of the process).  Two threads may make one at once: the one whose
 * compare-and-swap publishes its key keeps it, the other deletes its own.  The key and
 * the fact that it is made are one word, so no thread ever sees one without the other,
 * nor waits for another to finish (a fork meanwhile leaves nothing half-done).
 */
#include "internal.h"

_Static_assert(sizeof(pthread_key_t) <= sizeof(uint32_t), "a key fits 32 bits");

#define KEY_MADE ((uint64_t)1 << 32)

bool plait__exit_key_get(plait__exit_key *k, pthread_key_t *key)
{
    uint64_t word = atomic_load_explicit(&k->word, memory_order_acquire);
    if (PLAIT_UNLIKELY(!word)) {
        pthread_key_t fresh;
        if (pthread_key_create(&fresh, k->destructor) != 0)
            return false;
        uint64_t mine = KEY_MADE | (uint32_t)fresh;
        if (atomic_compare_exchange_strong_explicit(&k->word, &word, mine,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            word = mine;
        else
            pthread_key_delete(fresh); /* another thread's came first: word holds it */
    }
    *key = (pthread_key_t)(uint32_t)word;
    return true;
}
