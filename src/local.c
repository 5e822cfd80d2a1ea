/*
 * local.c — task-local storage: a value per key per coroutine, and per thread outside
 * coroutines.
 *
 * A coroutine (or thread) gets its value array on its first plait_local_set(), so
 * those that use none pay nothing.  Destructors run as the coroutine ends, in its
 * context; a thread's run as it exits (a pthread key destructor), or, for a plait
 * thread, just before its outcome is published, so a joiner sees them done.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

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

static PLAIT_TLS void **thread_locals;

static void thread_exit(void *unused)
{
    (void)unused;
    plait__thread_locals_destroy();
}

static plait__exit_key thread_key = PLAIT__EXIT_KEY(thread_exit);

/* The caller's value array: its coroutine's, or its thread's. */
static void ***locals_of_caller(void)
{
    plait__coro *c = plait__coro_current();
    return c ? &c->locals : &thread_locals;
}

int plait_local_set(plait_key key, void *value)
{
    if (!key_valid(key))
        return -EINVAL;
    void ***locals = locals_of_caller();
    if (!*locals) {
        if (locals == &thread_locals) {
            /* the thread's values need a destructor hook at its exit */
            pthread_key_t hook;
            if (!plait__exit_key_get(&thread_key, &hook) ||
                pthread_setspecific(hook, &thread_key) != 0)
                return -ENOMEM;
        }
        *locals = calloc(PLAIT_KEYS_MAX, sizeof **locals);
        if (!*locals)
            return -ENOMEM;
    }
    (*locals)[key] = value;
    return 0;
}

void *plait_local_get(plait_key key)
{
    void **locals = *locals_of_caller();
    if (!locals || key >= PLAIT_KEYS_MAX)
        return NULL;
    return locals[key];
}

/* As POSIX orders it: each value is cleared just before its destructor runs, and the
 * other keys' values stay readable until their turn.  A destructor may set values
 * again (into the same array): a few rounds, then what is left is the user's.
 * A thread's (not a coroutine's: a child forked in a coroutine goes on with its
 * scheduler) values are destroyed as part of its end.  A child that one of their
 * destructors forked, returning from it too, ends there (_exit(0)), as one its function
 * forked does (thread.c): it went on with the rest of the parent's thread's end, copies
 * of the destructors left and a plait thread's future, whose lock a joiner of the
 * parent may have held at the fork (the child spun there for ever), and ended through
 * exit() as its last thread ended, printing the stdio buffers it had from the parent a
 * second time (a helper's audit). */
static void locals_destroy(void ***locals, bool of_a_thread)
{
    void **values = *locals;
    if (!values)
        return; /* the common case, on the smallest stacks too (no free(NULL) to call) */
    pid_t pid = of_a_thread ? getpid() : 0;
    bool ran = true;
    for (int round = 0; round < 4 && ran; round++) {
        ran = false;
        for (unsigned i = 0; i < PLAIT_KEYS_MAX; i++) {
            void *value = values[i];
            if (!value)
                continue;
            values[i] = NULL;
            /* a value was set, so key i was published to this thread: acquire suffices */
            if (key_valid(i) && destructors[i]) {
                destructors[i](value);
                if (PLAIT_UNLIKELY(of_a_thread && getpid() != pid))
                    _exit(0);
                ran = true;
            }
        }
    }
    *locals = NULL;
    free(values);
}

void plait__locals_destroy(plait__coro *c) { locals_destroy(&c->locals, false); }

void plait__thread_locals_destroy(void) { locals_destroy(&thread_locals, true); }

void plait__local_atfork(int phase)
{
    plait__atfork_mutex(&keys_lock, phase);
}
