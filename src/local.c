/*
 * local.c — task-local storage: a value per key per coroutine.
 *
 * A coroutine gets its value array on its first plait_local_set(), so coroutines
 * that use none pay nothing.  Destructors run as the coroutine ends, in its context.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned key_count;
static void (*destructors[PLAIT_KEYS_MAX])(void *);

int plait_key_create(plait_key *key, void (*destructor)(void *))
{
    if (!key)
        return -EINVAL;
    pthread_mutex_lock(&keys_lock);
    if (key_count == PLAIT_KEYS_MAX) {
        pthread_mutex_unlock(&keys_lock);
        return -EAGAIN;
    }
    destructors[key_count] = destructor;
    *key = key_count++;
    pthread_mutex_unlock(&keys_lock);
    return 0;
}

static bool key_valid(plait_key key)
{
    pthread_mutex_lock(&keys_lock);
    bool valid = key < key_count;
    pthread_mutex_unlock(&keys_lock);
    return valid;
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
        pthread_mutex_lock(&keys_lock);
        void (*destructor)(void *) = destructors[i];
        pthread_mutex_unlock(&keys_lock);
        if (destructor)
            destructor(value);
    }
    free(c->locals);
    c->locals = NULL;
}
