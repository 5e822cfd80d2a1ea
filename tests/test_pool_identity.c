/*
 * test_pool_identity.c — who owns a lock taken in a pool task.  Each run of a task is
 * an owner of its own, not its worker thread: a helping join runs other tasks on top
 * of the waiting one on the same worker, and a later task reuses the worker.  A task
 * run on top of the holder cannot unlock what the holder locked (-EPERM), and a lock
 * it would wait for can never be freed (the holder resumes only when it returns), so
 * that is -EDEADLK, for a mutex, a write lock, a process mutex and a once alike.
 */
#include "helpers.h"

static plait_pool *pool;
static plait_mutex *m;
static plait_rwlock *rw;
static plait_cond *cv;
static plait_pmutex *pm;
static plait_once once = PLAIT_ONCE_INIT;

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
static int once_fn(void *a) { *(int *)a = run_task(call_once); return 0; }

static void *holder(void *a)
{
    (void)a;
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    CHECK_EQ(run_task(unlock_m), -EPERM);
    CHECK_EQ(run_task(lock_m), -EDEADLK);
    CHECK_EQ(run_task(cond_wait_m), -EPERM);
    CHECK_EQ(plait_mutex_unlock(m), 0); /* still ours */

    CHECK_EQ(plait_rwlock_wrlock(rw, SOON()), 0);
    CHECK_EQ(run_task(wrunlock_rw), -EPERM);
    CHECK_EQ(run_task(wrlock_rw), -EDEADLK);
    CHECK_EQ(run_task(rdlock_rw), -EDEADLK);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);

    CHECK_EQ(plait_pmutex_lock(pm, SOON()), 0);
    CHECK_EQ(run_task(unlock_pm), -EPERM);
    CHECK_EQ(run_task(lock_pm), -EDEADLK);
    CHECK_EQ(plait_pmutex_unlock(pm), 0);

    int inner = 1;
    CHECK_EQ(plait_once_call(&once, once_fn, &inner, SOON()), 0);
    CHECK_EQ(inner, -EDEADLK);

    /* free now: a task on top takes and gives back for itself */
    CHECK_EQ(run_task(lock_unlock_m), 0);
    return NULL;
}

static void *leave_locked(void *a) { (void)a; return ARG(plait_mutex_lock(m, SOON())); }
static void *try_m(void *a) { (void)a; return ARG(plait_mutex_lock(m, plait_deadline_in(50 * PLAIT_MS))); }


TEST(a_task_on_top_is_not_the_owner)
{
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    CHECK_EQ(plait_cond_create(&cv), 0);
    CHECK_EQ(plait_pmutex_create(&pm), 0);
    CHECK_EQ(run_task(holder), 0);
    /* a task that ends holding the mutex leaves it to no later task of its worker */
    CHECK_EQ(run_task(leave_locked), 0);
    CHECK_EQ(run_task(unlock_m), -EPERM);
    CHECK_EQ(run_task(try_m), -ETIMEDOUT);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_pmutex_destroy(pm), 0);
    CHECK_EQ(plait_cond_destroy(cv), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);
    /* (m stays locked by the ended task: not destroyed) */
}

RUN_TESTS(CASE(a_task_on_top_is_not_the_owner))
