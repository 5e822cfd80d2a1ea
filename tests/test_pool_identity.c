/*
 * test_pool_identity.c — who owns a lock taken in a pool task.  Each run of a task is
 * an owner of its own, not its worker thread: a helping join runs other tasks on top
 * of the waiting one on the same worker, and a later task reuses the worker.  A task
 * run on top of the holder cannot unlock what the holder locked (-EPERM), and a lock
 * it would wait for can never be freed (the holder resumes only when it returns), so
 * that is -EDEADLK, for a mutex, a write lock, a process mutex and a once alike.  The
 * same holds for a coroutine and the thread, plait thread or pool task that runs its
 * scheduler (plait_run returns only once its coroutines have ended).
 */
#include "helpers.h"

static plait_pool *pool;
static plait_mutex *m;
static plait_rwlock *rw;
static plait_cond *cv;
static plait_pmutex *pm;
static plait_once once;
static plait_mutex *volatile left_locked; /* by an ended task: never destroyed (kept
                                            * reachable: volatile, as it is never read) */

/* Run fn as a task of the one-worker pool and join it: from inside a task of the pool,
 * the join helps, so fn runs on top of the caller, on the same thread. */
static int run_task(plait_fn fn)
{
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(pool, &t, fn, NULL), 0);
    int r = plait_join(t, &v, SOON()); /* a negative code returned is the task's failure */
    return r < 0 ? r : INT(v);
}

/* Run fn as the main coroutine of a scheduler on the calling thread. */
static int run_coroutine(plait_fn fn)
{
    void *v = NULL;
    int r = plait_run(fn, NULL, &v); /* a negative code returned is main's failure */
    return r < 0 ? r : INT(v);
}

/* How holder runs code on top of itself, on its own thread. */
static int (*run_on_top)(plait_fn);

static void *unlock_m(void *a) { (void)a; return ARG(plait_mutex_unlock(m)); }
static void *lock_m(void *a)
{
    (void)a;
    int64_t start = plait_now();
    int r = plait_mutex_lock(m, SOON());
    CHECK_PROMPT(start);
    return ARG(r);
}
static void *lock_unlock_m(void *a)
{
    (void)a;
    int r = plait_mutex_lock(m, SOON());
    return ARG(r < 0 ? r : plait_mutex_unlock(m));
}
static void *cond_wait_m(void *a) { (void)a; return ARG(plait_cond_wait(cv, m, SOON())); }
static void *wrunlock_rw(void *a) { (void)a; return ARG(plait_rwlock_wrunlock(rw)); }
static void *wrlock_rw(void *a) { (void)a; return ARG(plait_rwlock_wrlock(rw, SOON())); }
static void *rdlock_rw(void *a) { (void)a; return ARG(plait_rwlock_rdlock(rw, SOON())); }
static void *unlock_pm(void *a) { (void)a; return ARG(plait_pmutex_unlock(pm)); }
static void *lock_pm(void *a) { (void)a; return ARG(plait_pmutex_lock(pm, SOON())); }
static int nothing(void *a) { (void)a; return 0; }
static void *call_once(void *a) { (void)a; return ARG(plait_once_call(&once, nothing, NULL, SOON())); }
static int once_fn(void *a) { *(int *)a = run_on_top(call_once); return 0; }

/* Takes each lock, and checks what runs on top of it (run_on_top) neither gives it
 * back nor waits for it. */
static void *holder(void *a)
{
    (void)a;
    once = (plait_once)PLAIT_ONCE_INIT;
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    CHECK_EQ(run_on_top(unlock_m), -EPERM);
    CHECK_EQ(run_on_top(lock_m), -EDEADLK);
    CHECK_EQ(run_on_top(cond_wait_m), -EPERM);
    CHECK_EQ(plait_mutex_unlock(m), 0); /* still ours */

    CHECK_EQ(plait_rwlock_wrlock(rw, SOON()), 0);
    CHECK_EQ(run_on_top(wrunlock_rw), -EPERM);
    CHECK_EQ(run_on_top(wrlock_rw), -EDEADLK);
    CHECK_EQ(run_on_top(rdlock_rw), -EDEADLK);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);

    CHECK_EQ(plait_pmutex_lock(pm, SOON()), 0);
    CHECK_EQ(run_on_top(unlock_pm), -EPERM);
    CHECK_EQ(run_on_top(lock_pm), -EDEADLK);
    CHECK_EQ(plait_pmutex_unlock(pm), 0);

    int inner = 1;
    CHECK_EQ(plait_once_call(&once, once_fn, &inner, SOON()), 0);
    CHECK_EQ(inner, -EDEADLK);

    /* free now: a task on top takes and gives back for itself */
    CHECK_EQ(run_on_top(lock_unlock_m), 0);
    return NULL;
}

static void *leave_locked(void *a) { (void)a; return ARG(plait_mutex_lock(m, SOON())); }
static void *try_m(void *a) { (void)a; return ARG(plait_mutex_lock(m, plait_deadline_in(50 * PLAIT_MS))); }
static void *run_coroutine_on_thread(void *fn) { return ARG(run_coroutine((plait_fn)fn)); }


static void create_all(void)
{
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    CHECK_EQ(plait_cond_create(&cv), 0);
    CHECK_EQ(plait_pmutex_create(&pm), 0);
}

static void destroy_all(void)
{
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_pmutex_destroy(pm), 0);
    CHECK_EQ(plait_cond_destroy(cv), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);
}

TEST(a_task_on_top_is_not_the_owner)
{
    create_all();
    run_on_top = run_task;
    CHECK_EQ(run_task(holder), 0);
    /* a task that ends holding the mutex leaves it to no later task of its worker */
    CHECK_EQ(run_task(leave_locked), 0);
    CHECK_EQ(run_task(unlock_m), -EPERM);
    CHECK_EQ(run_task(try_m), -ETIMEDOUT);
    destroy_all();
    left_locked = m;
}

/* A coroutine of a scheduler that a plain thread, a plait thread or a pool task runs
 * is on top of it: what that one holds is never freed while the coroutine waits. */
TEST(a_coroutine_is_not_the_owner_beneath_it)
{
    create_all();
    run_on_top = run_coroutine;
    CHECK_EQ(INT(holder(NULL)), 0); /* the test's own thread */
    plait_task t;
    void *v = ARG(-1);
    CHECK_EQ(plait_thread_start(&t, holder, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 0);
    CHECK_EQ(run_task(holder), 0); /* a pool task */
    /* a coroutine of another thread's scheduler waits for the holder as usual */
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    CHECK_EQ(plait_thread_start(&t, run_coroutine_on_thread, try_m, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ETIMEDOUT); /* its failure */
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    destroy_all();
}

/* A child forked by a task on top of the holder goes on as that task, on top of the
 * holder's run (which can never resume in the child): a lock the holder took is as
 * much a deadlock there.  The child is no worker of the pool (pool.c's fork handler),
 * and losing the worker lost the chain of tasks it ran too: the child's calls waited to
 * their deadlines (session 52's audit).  Each call's outcome comes back as the child's
 * exit status (its code negated). */
static plait_fn in_child_fn;
static void *fork_and_call(void *a)
{
    (void)a;
    if (CHECK_SANITIZED) /* (ASan's allocator lock; the test's thread is in its join) */
        others_asleep_before_fork();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(-INT(in_child_fn(NULL)));
    int status = pid > 0 ? reap_within(pid, 20) : -1;
    CHECK(WIFEXITED(status));
    return ARG(WIFEXITED(status) ? -WEXITSTATUS(status) : -1);
}
static int run_task_in_a_child(plait_fn fn)
{
    in_child_fn = fn;
    return run_task(fork_and_call);
}
static void *lock_m_soon(void *a)
{
    (void)a;
    return ARG(plait_mutex_lock(m, plait_deadline_in(2 * PLAIT_SEC)));
}
static void *wrlock_rw_soon(void *a)
{
    (void)a;
    return ARG(plait_rwlock_wrlock(rw, plait_deadline_in(2 * PLAIT_SEC)));
}
static void *call_once_soon(void *a)
{
    (void)a;
    return ARG(plait_once_call(&once, nothing, NULL, plait_deadline_in(2 * PLAIT_SEC)));
}
static int once_fn_in_a_child(void *a)
{
    *(int *)a = run_task_in_a_child(call_once_soon);
    return 0;
}
static void *holder_of_a_forking_task(void *a)
{
    (void)a;
    once = (plait_once)PLAIT_ONCE_INIT;
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    CHECK_EQ(run_task_in_a_child(lock_m_soon), -EDEADLK);
    CHECK_EQ(run_task_in_a_child(unlock_m), -EPERM);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_rwlock_wrlock(rw, SOON()), 0);
    CHECK_EQ(run_task_in_a_child(wrlock_rw_soon), -EDEADLK);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);
    int inner = 1;
    CHECK_EQ(plait_once_call(&once, once_fn_in_a_child, &inner, SOON()), 0);
    CHECK_EQ(inner, -EDEADLK);
    return NULL;
}

TEST(a_task_on_top_in_a_forked_child_is_not_the_owner)
{
    create_all();
    CHECK_EQ(run_task(holder_of_a_forking_task), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    destroy_all();
}

RUN_TESTS(CASE(a_task_on_top_is_not_the_owner), CASE(a_coroutine_is_not_the_owner_beneath_it),
          CASE(a_task_on_top_in_a_forked_child_is_not_the_owner))
