/* test_future_waits.c — futures and the waits on them at their edges.  Built with
 * -Wl,--wrap=plait__check_cancel -Wl,--wrap=plait__waitq_wake_all: the first stops a
 * wait_any between the link of its task and its look at the deadline, the second holds
 * the task's completion between its claim of the wait and its signal (a waker
 * preempted there); and -Wl,--wrap=plait__waiter_claim, which lets a task finish just
 * before a wait_any's own claim. */
#include "helpers.h"

#include "../src/internal.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

int __real_plait__check_cancel(void);
bool __real_plait__waiter_claim(plait__waiter *w);
bool __wrap_plait__waiter_claim(plait__waiter *w);
int __wrap_plait__check_cancel(void);
void __real_plait__waitq_wake_all(plait__waitq *q, plait__wakeups *later);
void __wrap_plait__waitq_wake_all(plait__waitq *q, plait__wakeups *later);
void __real_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);
void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);

/* Both cases: a task P waits in the pool; U, queued on P's worker, notes whether it
 * started inside P's wait; a thread (A, X) waits for its go. */
typedef struct {
    atomic_int go, u_started, u_inside, p_inside;
} inside_probe;

static void *waits_for_go(void *p)
{
    inside_probe *s = p;
    int64_t until = SOON();
    while (!atomic_load(&s->go) && plait_now() < until)
        sched_yield();
    return NULL;
}

static void *notes_where_it_ran(void *p)
{
    inside_probe *s = p;
    atomic_store(&s->u_inside, atomic_load(&s->p_inside));
    atomic_store(&s->u_started, 1);
    return NULL;
}

static struct {
    plait_pool *pool;
    plait_task a;
    inside_probe s;
    atomic_int armed_check, armed_wake, held;
    pthread_t p_thread; /* P's worker: the only caller the check's wrapper stops */
    int any_r;
} pa;

int __wrap_plait__check_cancel(void)
{
    /* P's, not the main thread's: its join of P, slow to begin on a loaded machine,
     * once took the check meant for P's wait_any (A ended before that linked it, and
     * nothing was ever held) */
    if (atomic_load(&pa.armed_check) && pthread_equal(pthread_self(), pa.p_thread) &&
        atomic_exchange(&pa.armed_check, 0)) {
        /* the wait has linked A: A ends now, its waker claims the wait and is held */
        atomic_store(&pa.s.go, 1);
        int64_t until = SOON();
        while (!atomic_load(&pa.held) && plait_now() < until)
            sched_yield();
    }
    return __real_plait__check_cancel();
}

void __wrap_plait__waitq_wake_all(plait__waitq *q, plait__wakeups *later)
{
    if (atomic_load(&pa.armed_wake) && q == &pa.a.future->joiners &&
        atomic_exchange(&pa.armed_wake, 0)) {
        plait__wait_node *node = plait__waitq_claim(q);
        if (node) {
            atomic_store(&pa.held, 1);
            /* held as a preempted waker would be: long enough for the waiter's worker
             * to start the queued task U, if it does */
            int64_t until = plait_deadline_in(300 * PLAIT_MS);
            while (!atomic_load(&pa.s.u_started) && plait_now() < until)
                sched_yield();
            plait__waiter_signal(node->waiter, 0, node->index, later);
        }
    }
    __real_plait__waitq_wake_all(q, later);
}

static void *pa_p(void *p)
{
    plait_task u;
    CHECK_EQ(plait_thread_start(&pa.a, waits_for_go, &pa.s, NULL), 0);
    CHECK_EQ(plait_pool_submit(pa.pool, &u, notes_where_it_ran, &pa.s), 0); /* on this worker's deque */
    pa.p_thread = pthread_self(); /* (read by the wrapper after armed_check, stored after) */
    atomic_store(&pa.armed_wake, 1);
    atomic_store(&pa.armed_check, 1);
    atomic_store(&pa.s.p_inside, 1);
    pa.any_r = plait_wait_any(&pa.a, 1, 0); /* a poll: it must not run other tasks */
    atomic_store(&pa.s.p_inside, 0);
    CHECK_EQ(plait_join(pa.a, NULL, SOON()), 0);
    CHECK_EQ(plait_join(u, NULL, SOON()), 0);
    return p;
}

/* A wait_any in a pool task whose deadline has passed (a poll) finds its task ending
 * meanwhile: the waker has claimed the wait, its signal is on its way.  The wait then
 * absorbs that signal; it must start no queued task while it does (as a helping wait
 * past its deadline starts none, test_pool_late_helper), which may run for any time. */
TEST(wait_any_poll_whose_task_ends_meanwhile_starts_no_task)
{
    CHECK_EQ(plait_pool_create(&pa.pool, &(plait_pool_options){.threads = 1, .name = "pa"}), 0);
    plait_task p;
    CHECK_EQ(plait_pool_submit(pa.pool, &p, pa_p, NULL), 0);
    CHECK_EQ(plait_join(p, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&pa.held), 1);       /* the interleaving was forced */
    CHECK(pa.any_r == 0 || pa.any_r == -ETIMEDOUT);
    CHECK_EQ(atomic_load(&pa.s.u_inside), 0);   /* no task started inside the poll */
    CHECK_EQ(plait_pool_destroy(pa.pool), 0);
}

static struct {
    plait_pool *pool;
    plait_task p;
    inside_probe s;
    atomic_int armed, held;
    int join_r;
} pc;

void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later)
{
    if (atomic_load(&pc.armed) && status == -ECANCELED && w->what &&
        strcmp(w->what, "wait-any") == 0 && atomic_exchange(&pc.armed, 0)) {
        /* the canceller has claimed the join's wait: held as if preempted here */
        atomic_store(&pc.held, 1);
        int64_t until = plait_deadline_in(300 * PLAIT_MS);
        while (!atomic_load(&pc.s.u_started) && plait_now() < until)
            sched_yield();
    }
    __real_plait__waiter_signal(w, status, index, later);
}

static void *pc_p(void *p)
{
    plait_task x;
    CHECK_EQ(plait_thread_start(&x, waits_for_go, &pc.s, NULL), 0);
    atomic_store(&pc.s.p_inside, 1);
    pc.join_r = plait_join(x, NULL, SOON());
    atomic_store(&pc.s.p_inside, 0);
    atomic_store(&pc.s.go, 1);
    if (pc.join_r != 0)
        CHECK_EQ(plait__join_stopped(x, NULL), 0);
    return p;
}

static void *pc_cancel(void *p)
{
    CHECK_EQ(plait_cancel(pc.p), 0);
    return p;
}

/* A pool task waiting in a join (helping: its worker runs queued tasks meanwhile) is
 * cancelled; the canceller has claimed its wait and its signal is on its way when a
 * task is queued.  The join must start no task once its wait is decided: the task may
 * run for any time, and the cancelled join with it (a helping join stops starting
 * tasks at its deadline and at its cancellation, plait__worker_run_until_done). */
TEST(cancelled_helping_join_starts_no_task)
{
    CHECK_EQ(plait_pool_create(&pc.pool, &(plait_pool_options){.threads = 1, .name = "pc"}), 0);
    CHECK_EQ(plait_pool_submit(pc.pool, &pc.p, pc_p, NULL), 0);
    int64_t until = SOON();
    while (!(atomic_load(&pc.s.p_inside) && pool_workers_sleeping("pc") == 1) &&
           plait_now() < until)
        sched_yield();
    CHECK_EQ(pool_workers_sleeping("pc"), 1); /* P waits in its join, its worker parked */
    atomic_store(&pc.armed, 1);
    pthread_t canceller;
    thread_start(&canceller, pc_cancel, NULL);
    until = SOON();
    while (!atomic_load(&pc.held) && plait_now() < until)
        sched_yield();
    CHECK_EQ(atomic_load(&pc.held), 1); /* the interleaving was forced */
    plait_task u;
    CHECK_EQ(plait_pool_submit(pc.pool, &u, notes_where_it_ran, &pc.s), 0);
    thread_join(canceller);
    CHECK_EQ(plait_join(pc.p, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(u, NULL, SOON()), 0);
    CHECK_EQ(pc.join_r, -ECANCELED);
    CHECK_EQ(atomic_load(&pc.s.u_inside), 0); /* no task started inside the cancelled join */
    CHECK_EQ(plait_pool_destroy(pc.pool), 0);
}

/* ---- probes that found no defect ---- */

enum { MN = 200 };
static struct {
    plait_pool *pool;
    void *args[MN], *results[MN];
    int errors[MN];
    atomic_int started;
    int r;
} mp;

static void *mp_item(void *arg)
{
    atomic_fetch_add(&mp.started, 1);
    int r = plait_sleep(2 * PLAIT_MS);
    return r < 0 ? PLAIT_FAIL(r) : arg;
}

static void *mp_mapper(void *p)
{
    mp.r = plait_pool_map(mp.pool, mp_item, mp.args, MN, mp.results, mp.errors, SOON());
    return p;
}

static void mp_reset(void)
{
    for (int i = 0; i < MN; i++) {
        mp.args[i] = ARG(i + 1);
        mp.results[i] = ARG(-7);
        mp.errors[i] = 12345;
    }
    atomic_store(&mp.started, 0);
}

/* Every item says what happened: ran (0, its result) or -ECANCELED (NULL); the call's
 * code is the first failure in index order. */
static void mp_check_items(void)
{
    int first = 0;
    for (int i = 0; i < MN; i++) {
        CHECK(mp.errors[i] == 0 || mp.errors[i] == -ECANCELED);
        if (mp.errors[i] == 0)
            CHECK(mp.results[i] == ARG(i + 1));
        else
            CHECK(mp.results[i] == NULL);
        if (mp.errors[i] < 0 && !first)
            first = mp.errors[i];
    }
    CHECK(mp.r == first || (mp.r == -ECANCELED && first == -ECANCELED));
}

/* A pool of two named name, and a plait thread mapping over it, its first items begun. */
static plait_task start_mapper(const char *name)
{
    mp_reset();
    CHECK_EQ(plait_pool_create(&mp.pool, &(plait_pool_options){.threads = 2, .name = name}), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, mp_mapper, NULL, NULL), 0);
    int64_t until = SOON();
    while (atomic_load(&mp.started) < 4 && plait_now() < until)
        sched_yield();
    return t;
}

TEST(map_with_its_pool_shut_down_cancelling)
{
    plait_task t = start_mapper("mp");
    CHECK_EQ(plait_pool_shutdown(mp.pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(mp.r, -ECANCELED);
    mp_check_items();
    CHECK_EQ(plait_pool_destroy(mp.pool), 0);
}

TEST(map_from_a_plait_thread_cancelled)
{
    plait_task t = start_mapper("mc");
    CHECK_EQ(plait_cancel(t), 0);
    int r = plait_join(t, NULL, SOON());
    CHECK(r == -ECANCELED || r == 0);
    CHECK_EQ(mp.r, -ECANCELED);
    mp_check_items();
    int64_t start = plait_now();
    CHECK_EQ(plait_pool_map(mp.pool, mp_item, mp.args, 0, mp.results, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(mp.pool, NULL, mp.args, 1, mp.results, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(mp.pool, mp_item, mp.args, SIZE_MAX, mp.results, NULL, 0), -EINVAL);
    CHECK(plait_now() - start < PLAIT_SEC);
    CHECK_EQ(plait_pool_destroy(mp.pool), 0);
}

static void *quick(void *p) { return p; }
static void *failing(void *p) { return PLAIT_FAIL(INT(p)); }

static void *stale_main(void *p)
{
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, quick, NULL), 0);
    plait_task copy = a;
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_detach(a), 0);
    CHECK_EQ(plait_spawn(&b, quick, ARG(5)), 0); /* reuses a's future (the cache) */
    CHECK(b.future == copy.future);
    CHECK_EQ(plait_join(copy, NULL, 0), -ESRCH);
    CHECK_EQ(plait_cancel(copy), -ESRCH);
    CHECK_EQ(plait_detach(copy), -ESRCH);
    CHECK_EQ(plait_wait_any(&copy, 1, 0), -ESRCH);
    CHECK_EQ(plait_wait_all(&copy, 1, NULL, NULL, 0), -ESRCH);
    plait_task both[2] = {b, copy};
    CHECK_EQ(plait_wait_all(both, 2, NULL, NULL, SOON()), -ESRCH);
    void *v = NULL;
    CHECK_EQ(plait_join(b, &v, SOON()), 0); /* untouched by the stale calls */
    CHECK_EQ(v, ARG(5));
    /* a mix: coroutine, plait thread, pool task; results and errors per task */
    plait_task t[3];
    CHECK_EQ(plait_spawn(&t[0], failing, ARG(-EIO)), 0);
    CHECK_EQ(plait_thread_start(&t[1], quick, ARG(7), NULL), 0);
    CHECK_EQ(plait_pool_submit(plait_pool_default(), &t[2], failing, ARG(-EPIPE)), 0);
    void *res[3] = {ARG(1), ARG(1), ARG(1)};
    int err[3] = {1, 1, 1};
    CHECK_EQ(plait_wait_all(t, 3, res, err, SOON()), -EIO);
    CHECK_EQ(err[0], -EIO);
    CHECK_EQ(err[1], 0);
    CHECK_EQ(err[2], -EPIPE);
    CHECK(res[0] == NULL && res[1] == ARG(7) && res[2] == NULL);
    CHECK_EQ(plait_wait_any(t, 3, 0), -ESRCH);
    return p;
}

TEST(stale_handles_and_a_mixed_gather) { check_run(stale_main, NULL); }

/* A coroutine waits for any of a thread X and itself: a deadlock unless X has finished,
 * and X finishes while the call goes through the list, after X's link (X's completion
 * claims the wait).  The call must report X (index 0), as plait.h says -EDEADLK only
 * when none has finished; it took X's wake-up and still said -EDEADLK.  The wait's own
 * claim after its look at the list (plait__waiter_claim, wrapped) is where X is let
 * finish first. */
typedef struct {
    plait_task self, x;
    atomic_int x_go;
    atomic_int armed; /* the next claim of a "wait-any" waiter lets X finish first */
    int r;
} self_and_x;

static self_and_x sx;

bool __wrap_plait__waiter_claim(plait__waiter *w)
{
    if (atomic_load(&sx.armed) && w->what && strcmp(w->what, "wait-any") == 0 &&
        atomic_exchange(&sx.armed, 0)) {
        atomic_store(&sx.x_go, 1);
        int64_t until = SOON();
        while (plait_wait_any(&sx.x, 1, 0) == -ETIMEDOUT && plait_now() < until)
            sched_yield();
    }
    return __real_plait__waiter_claim(w);
}

static void *x_waits_for_go(void *arg)
{
    (void)arg;
    int64_t until = SOON();
    while (!atomic_load(&sx.x_go) && plait_now() < until)
        sched_yield();
    return (void *)7;
}

static void *waits_for_itself_and_x(void *arg)
{
    (void)arg;
    plait_task tasks[2] = {sx.x, sx.self};
    atomic_store(&sx.armed, 1);
    sx.r = plait_wait_any(tasks, 2, SOON());
    return NULL;
}

static void *self_and_x_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_thread_start(&sx.x, x_waits_for_go, NULL, NULL), 0);
    CHECK_EQ(plait_spawn(&sx.self, waits_for_itself_and_x, NULL), 0);
    CHECK_EQ(plait_join(sx.self, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&sx.armed), 0); /* the wrapper let X finish in the call */
    CHECK_EQ(sx.r, 0);
    void *v;
    CHECK_EQ(plait_join(sx.x, &v, SOON()), 0);
    CHECK(v == (void *)7);
    return NULL;
}

TEST(wait_any_for_itself_reports_a_task_that_finished_meanwhile)
{
    check_run(self_and_x_main, NULL);
}

RUN_TESTS(CASE(wait_any_poll_whose_task_ends_meanwhile_starts_no_task),
          CASE(cancelled_helping_join_starts_no_task),
          CASE(map_with_its_pool_shut_down_cancelling),
          CASE(map_from_a_plait_thread_cancelled),
          CASE(stale_handles_and_a_mixed_gather),
          CASE(wait_any_for_itself_reports_a_task_that_finished_meanwhile))
