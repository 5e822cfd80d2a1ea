/*
 * thread.c — the thread strand: a function on its own named OS thread, whose outcome
 * is a future like a coroutine's (the CPU count is cpus.c's).
 *
 * The pthread itself is detached: the future is the only join there is, so a thread
 * joins with a deadline, can be waited on by a coroutine without blocking its
 * scheduler, and goes into wait-any or an as-completed set with coroutines and pool
 * tasks.  While it runs, the thread's own future is its current work (plait__tls_work),
 * which is how plait_cancel() reaches its blocking calls and how joining itself is
 * caught (-EDEADLK).
 *
 * A thread that stands in for a pool's task (plait__thread_start_as_task: the offloads
 * and maps of a coroutine whose scheduler runs in a task of that pool) is kept for
 * STANDIN_LINGER after its task, idle, and the next such start hands its task to the
 * idle thread that waited least (its stack still in cache) instead of starting one: a
 * thread's start and end cost some thirty times an offload to a worker (33.8 µs
 * against 1.05, docs/BENCHMARKS.md session 62), and such a coroutine offloads every
 * file call.  It is still a thread for each task running at once, which
 * is what makes it sure to run.  Invariants: an idle thread is on `idle_standins` until
 * a start takes it off, under idle_lock, and then gets that start's task (it waits for
 * it without a deadline); one whose linger ends takes itself off and ends.  A thread
 * whose function did not return (pthread_exit, pthread_cancel) ends as any other, and
 * so does one whose function left a cancel pending.  A forked child's copy of the list
 * names threads it does not have: it is dropped there, known by the fork epoch (a child
 * of _Fork() runs no fork handler).  What a task leaves in the thread besides
 * (pthread-specific values, the signal mask) stays for the next, as on a pool worker.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PLAIT_TLS const char *plait__tls_thread_name;
PLAIT_TLS const struct plait_pool *plait__tls_stands_in_for;
PLAIT_TLS bool plait__tls_runs_a_task;
static PLAIT_TLS char thread_name[16]; /* a plait thread's: outlives its key destructors */

typedef struct thread_start {
    plait__future *future;
    pid_t pid; /* the process that started the thread */
    char name[16];
    const struct plait_pool *stands_in_for; /* plait__tls_stands_in_for while it runs */
    bool kept; /* a stand-in for a pool's task, kept idle afterwards for the next one */
    bool returned; /* the function returned value and error (its destructors run) */
    void *value;
    int error;
} thread_start;

static void thread_finish(const thread_start *start, void *value, int error)
{
    if (PLAIT_UNLIKELY(getpid() != start->pid))
        _exit(0); /* a child fn forked, returning from it too: the future is the parent's
                   * (completing it took its lock, which a joiner of the parent may have
                   * held at the fork: the child spun there for ever) */
    /* Its key destructors are the thread's too, before the joiner can see the outcome:
     * run as its work, they are the owner of what its function locked, see its
     * cancellation (sticky, and plait_cancel reaches their waits) and get -EDEADLK for
     * a join of its own handle.  (The function always ran: a plait thread's work is
     * not withdrawn by a cancel before it starts.) */
    plait__tls_work = start->future;
    plait__thread_locals_destroy();
    plait__tls_work = NULL;
    /* the owner of those locks still for the pthread key destructors that come later */
    if (start->future->identity)
        plait__self_become(start->future->identity);
    plait__future_complete(start->future, value, error);
}

/* The function did not return: pthread_exit() or pthread_cancel() unwinds the thread.
 * Its value is not to be had here, so its joiners get -ECANCELED (the function was
 * stopped before it finished) rather than a wait for ever.  Or it returned and one of
 * its task-local destructors ended the thread so (thread_finish runs them before it
 * completes the future): the joiners get what it returned, and the destructors not yet
 * run run here (each value is cleared before its destructor runs).  A destructor that
 * ends the thread while this runs comes back here too, with what is left. */
static void thread_ended_early(void *p)
{
    const thread_start *start = p;
    if (start->returned)
        thread_finish(start, start->value, start->error);
    else
        thread_finish(start, NULL, -ECANCELED);
}

/* Run the start handed over, and free it.  Where fn does not return (pthread_exit,
 * pthread_cancel) the thread ends in thread_ended_early; in a child fn forked, at
 * thread_finish. */
static void run_start(thread_start *handed)
{
    thread_start start = *handed;
    free(handed);
    start.pid = getpid();
    plait__tls_stands_in_for = start.stands_in_for;
    plait__tls_runs_a_task = start.kept;
    start.returned = false;
    /* (start is in memory, its address passed on: what the handler reads after the
     * unwinder's jump back here is what was stored) */
    pthread_cleanup_push(thread_ended_early, &start);
    start.error = plait__future_run_work(start.future, &start.value);
    start.returned = true;
    if (start.error == PLAIT__WITHDRAWN) /* completed by its canceller: fn never ran */
        plait__future_release(start.future);
    else
        thread_finish(&start, start.value, start.error); /* still under the handler */
    pthread_cleanup_pop(0);
    plait__tls_stands_in_for = NULL;
    plait__tls_runs_a_task = false;
}

/* How long a stand-in waits idle for the next task before it ends. */
#define STANDIN_LINGER (2 * PLAIT_SEC)

typedef struct idle_standin {
    struct idle_standin *next;
    atomic_uint handed; /* 1 once `start` is set; the idle thread's futex word */
    thread_start *start;
} idle_standin;

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static idle_standin *idle_standins; /* the last to go idle first */
static unsigned idle_epoch;         /* the fork epoch whose threads idle_standins lists */

/* idle_standins, emptied where it is a parent's copy: a child has none of its threads
 * (a start handed its task to one, which never ran it; a child of _Fork() runs no fork
 * handler).  Under idle_lock. */
static idle_standin **idle_list(void)
{
    unsigned epoch = plait__fork_epoch();
    if (idle_epoch != epoch) {
        idle_standins = NULL;
        idle_epoch = epoch;
    }
    return &idle_standins;
}

/* The idle thread's wait for its next task: NULL when its linger ended first. */
static thread_start *wait_for_next_start(void)
{
    idle_standin me = {.next = NULL, .start = NULL};
    atomic_init(&me.handed, 0);
    pthread_mutex_lock(&idle_lock);
    idle_standin **list = idle_list();
    me.next = *list;
    *list = &me;
    pthread_mutex_unlock(&idle_lock);
    int64_t deadline = plait_deadline_in(STANDIN_LINGER);
    /* a look first, as an idle pool worker's: a coroutine that offloads call after
     * call hands the next within it, no sleep and wake-up between */
    plait__spin_while(&me.handed, 0, PLAIT__WAIT_SPIN_NS, deadline);
    while (!atomic_load_explicit(&me.handed, memory_order_acquire)) {
        if (plait__futex_wait(&me.handed, 0, deadline) != -ETIMEDOUT)
            continue;
        pthread_mutex_lock(&idle_lock);
        idle_standin **link = idle_list();
        while (*link && *link != &me)
            link = &(*link)->next;
        bool listed = *link != NULL;
        if (listed)
            *link = me.next;
        pthread_mutex_unlock(&idle_lock);
        if (listed)
            return NULL;
        deadline = PLAIT_FOREVER; /* a start took it off: its task is on the way */
    }
    return me.start;
}

/* Hand start to an idle stand-in: false when there is none. */
static bool hand_to_idle_standin(thread_start *start)
{
    pthread_mutex_lock(&idle_lock);
    idle_standin **list = idle_list();
    idle_standin *idle = *list;
    if (idle)
        *list = idle->next;
    pthread_mutex_unlock(&idle_lock);
    if (!idle)
        return false;
    idle->start = start;
    atomic_store_explicit(&idle->handed, 1, memory_order_release);
    /* idle may have seen the word and gone on meanwhile: a wake-up of its address then
     * is at worst a spurious one for whatever waits there (it looks at its word) */
    plait__futex_wake(&idle->handed, 1);
    return true;
}

void plait__thread_atfork(int phase)
{
    plait__atfork_mutex(&idle_lock, phase); /* (the list itself: idle_list) */
}

static void *thread_main(void *p)
{
    thread_start *start = p;
    /* (a stand-in's next tasks, all of them stand-ins' too, have its name: "plait") */
    memcpy(thread_name, start->name, sizeof start->name);
    plait__tls_thread_name = thread_name;
    pthread_setname_np(pthread_self(), start->name);
    do {
        bool kept = start->kept;
        run_start(start);
        if (kept) {
            /* a cancel its task left pending (sent, no cancellation point reached) ends
             * the thread here, as before threads were kept, not the next task */
            pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
            pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
            pthread_testcancel();
        }
        start = kept ? wait_for_next_start() : NULL;
    } while (start);
    return NULL;
}

typedef struct thread_create_call {
    pthread_t *thread;
    const pthread_attr_t *attr;
    void *(*fn)(void *);
    void *arg;
    int r; /* out */
} thread_create_call;

static void thread_create_here(void *p)
{
    thread_create_call *c = p;
    c->r = pthread_create(c->thread, c->attr, c->fn, c->arg);
}

int plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                         void *(*fn)(void *), void *arg)
{
    thread_create_call c = {thread, attr, fn, arg, 0};
    plait__call_on_thread_stack(thread_create_here, &c);
    return c.r;
}

/* A new detached thread for start, with a stack of that many bytes (0: the default):
 * pthread_create's code. */
static int create_detached(thread_start *start, size_t stack)
{
    pthread_attr_t attr;
    int r = pthread_attr_init(&attr);
    if (r != 0)
        return r;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack) {
        /* the platform's floor may be higher than ours (128 KiB on aarch64) */
        long floor = sysconf(_SC_THREAD_STACK_MIN);
        r = pthread_attr_setstacksize(&attr, floor > 0 && stack < (size_t)floor
                                                 ? (size_t)floor : stack);
    }
    pthread_t thread;
    if (r == 0)
        r = plait__thread_create(&thread, &attr, thread_main, start);
    pthread_attr_destroy(&attr);
    return r;
}

/* stands_in_for: the pool whose workers may wait for the thread (see
 * plait__tls_stands_in_for), or NULL; withdrawable: it runs a task of that pool in the
 * task's stead, withdrawn as that task would be by a cancel before it starts. */
static int thread_start_work(plait_task *task, plait_fn fn, void *arg,
                             const plait_thread_options *options,
                             const struct plait_pool *stands_in_for, bool withdrawable)
{
    if (!fn)
        return -EINVAL;
    size_t stack = options ? options->stack_size : 0;
    if (stack && (stack < 16 * 1024 || stack > PLAIT_STACK_MAX))
        return -EINVAL;
    thread_start *start = malloc(sizeof *start);
    if (!start)
        return -ENOMEM;
    const char *name = options && options->name ? options->name : "plait";
    size_t n = strnlen(name, sizeof start->name - 1);
    memcpy(start->name, name, n);
    start->name[n] = '\0';
    plait_task handle;
    start->stands_in_for = stands_in_for;
    start->kept = withdrawable;
    start->future = plait__future_start_work(fn, arg, &handle, withdrawable);
    if (!start->future) {
        free(start);
        return -ENOMEM;
    }
    int r = start->kept && hand_to_idle_standin(start) ? 0 : create_detached(start, stack);
    if (r != 0) {
        free(start);
        plait__future_complete(handle.future, NULL, -r);
        plait_detach(handle);
        return -r;
    }
    if (task)
        *task = handle;
    else
        plait_detach(handle);
    return 0;
}

int plait_thread_start(plait_task *task, plait_fn fn, void *arg,
                       const plait_thread_options *options)
{
    /* a thread started where a pool's workers may be waiting for the caller (a
     * coroutine whose scheduler runs in one of its tasks, a thread standing in for one)
     * may be what they wait for in turn: its maps and offloads on that pool get threads
     * of their own too (plait__pool_submit_reachable) */
    return thread_start_work(task, fn, arg, options, plait__pool_waiting_here(), false);
}

int plait__thread_start_as_task(plait_task *task, plait_fn fn, void *arg,
                                const struct plait_pool *pool)
{
    return thread_start_work(task, fn, arg, NULL, pool, true);
}
