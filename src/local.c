/*
 * local.c — task-local storage: a value per key per coroutine.
 *
 * A coroutine gets its value array on its first plait_local_set(), so coroutines
 * that use none pay nothing.  Destructors run as the coroutine ends, in its context.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

/* Keys are created under the lock; a key's destructor is written once, before the
 * count that publishes it (release), so readers need only an acquire load. */
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint key_count;
static void (*destructors[PLAIT_KEYS_MAX])(void *);

int plait_key_create(plait_key *key, void (*destructor)(void *))
{
    if (!key)
        return -EINVAL;
    pthread_mutex_lock(&keys_lock);
    unsigned count = atomic_load_explicit(&key_count, memory_order_relaxed);
    if (count == PLAIT_KEYS_MAX) {
        pthread_mutex_unlock(&keys_lock);
        return -EAGAIN;
    }
    destructors[count] = destructor;
    *key = count;
    atomic_store_explicit(&key_count, count + 1, memory_order_release);
    pthread_mutex_unlock(&keys_lock);
    return 0;
}

static bool key_valid(plait_key key)
{
    return key < atomic_load_explicit(&key_count, memory_order_acquire);
}

int plait_local_set(plait_key key, void *value)
{
    plait__coro *c = plait__coro_current();
    if (!c)
        return -EPERM;
    if (!key_valid(key))
        return -EINVAL;
    if (!c->locals) {
        c->locals = calloc(PLAIT_KEYS_MAX, sizeof *c->locals);
        if (!c->locals)
            return -ENOMEM;
    }
    c->locals[key] = value;
    return 0;
}

void *plait_local_get(plait_key key)
{
    plait__coro *c = plait__coro_current();
    if (!c || !c->locals || key >= PLAIT_KEYS_MAX)
        return NULL;
    return c->locals[key];
}

void plait__locals_destroy(plait__coro *c)
{
    if (!c->locals)
        return;
    for (unsigned i = 0; i < PLAIT_KEYS_MAX; i++) {
        void *value = c->locals[i];
        if (!value)
            continue;
        c->locals[i] = NULL;
        /* a value was set, so key i was published to this thread: acquire suffices */
        if (key_valid(i) && destructors[i])
            destructors[i](value);
    }
    free(c->locals);
    c->locals = NULL;
}
