/*
 * exit_key.c — the pthread keys whose destructors are plait's thread-exit hooks (a
 * plain thread's wake-up descriptor, its task-local values, its cache of futures).
 *
 * Each is made at its first use.  The program may hold every key there is at that
 * moment (PTHREAD_KEYS_MAX): the use is then refused, and the next one tries again, so
 * the refusal lasts as long as the shortage (with pthread_once, one refusal was for
 * the life of the process).  One thread makes a key at a time (`maker`, for all of
 * them): another that needs one meanwhile sleeps on the word (a futex) until it is
 * free, and then looks again, as pthread_once makes it wait — so it is not refused the
 * last key for a moment while the maker holds it, and two makers never hold two keys at
 * once, one of them about to be deleted, while the program asks for its own.  (It
 * yielded first: under SCHED_FIFO a waiter of a higher priority then kept the maker off
 * its CPU for ever.)  A fork's child resets `maker` (plait__exit_key_atfork, among the
 * fork handlers registered as the library loads): a maker in another thread of the
 * parent is not there, and the forking thread is in none.
 */
#include "internal.h"

_Static_assert(sizeof(pthread_key_t) <= sizeof(uint32_t), "a key fits 32 bits");

#define KEY_MADE ((uint64_t)1 << 32)

static atomic_uint maker; /* 1 while a thread makes a key */

bool plait__exit_key_get(plait__exit_key *k, pthread_key_t *key)
{
    uint64_t word = atomic_load_explicit(&k->word, memory_order_acquire);
    while (PLAIT_UNLIKELY(!word)) {
        unsigned none = 0;
        if (!atomic_compare_exchange_strong(&maker, &none, 1)) {
            /* another's key is being made: until it is, then look again */
            plait__futex_wait(&maker, 1, PLAIT_FOREVER);
            word = atomic_load_explicit(&k->word, memory_order_acquire);
            continue;
        }
        word = atomic_load_explicit(&k->word, memory_order_acquire);
        pthread_key_t fresh;
        if (!word && pthread_key_create(&fresh, k->destructor) == 0) {
            word = KEY_MADE | (uint32_t)fresh;
            atomic_store_explicit(&k->word, word, memory_order_release);
        }
        atomic_store(&maker, 0);
        plait__futex_wake(&maker, INT32_MAX);
        if (!word)
            return false; /* every key is taken (no maker held one meanwhile) */
    }
    *key = (pthread_key_t)(uint32_t)word;
    return true;
}

void plait__exit_key_atfork(int phase)
{
    if (phase == PLAIT__FORK_CHILD)
        atomic_store(&maker, 0);
}
