/* test_thread.c — plait threads: start, join (with deadlines, twice, from itself),
 * detach, names, stack sizes, cancellation of the blocking call a thread is in,
 * thread-local storage through plait_key on plait threads and plain pthreads, the CPU
 * count, and futures shared between threads and coroutines.
 *
 * Ordering comes from events and semaphores.  A sleep appears only where the outcome
 * is the same whichever way the race goes (to let a thread block before it is
 * cancelled: a cancellation is sticky, so an early one gives the same result), or
 * where the test is about time, with a margin for a loaded 2-core machine. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static void *return_arg(void *arg) { return arg; }
static void *fail_edom(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(-EDOM);
}

/* ======================================================================== */
/* Start and join                                                            */
/* ======================================================================== */

TEST(start_and_join_results)
{
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_thread_start(&t, return_arg, ARG(42), NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 42);
    CHECK_EQ(plait_join(t, &v, SOON()), -ESRCH); /* twice */
    CHECK_EQ(plait_join(t, NULL, 0), -ESRCH);
    CHECK_EQ(plait_detach(t), -ESRCH);
    CHECK_EQ(plait_cancel(t), -ESRCH);

    /* a failure code reaches the joiner, and *result is left alone for it */
    v = ARG(7);
    CHECK_EQ(plait_thread_start(&t, fail_edom, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), -EDOM);
    CHECK_EQ(plait_join(t, &v, SOON()), -ESRCH);

    /* the edges of the failure range: -1 fails, -4096 is an ordinary value */
    CHECK_EQ(plait_thread_start(&t, return_arg, PLAIT_FAIL(-1), NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -1);
    CHECK_EQ(plait_thread_start(&t, return_arg, (void *)(intptr_t)-4096, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v == (void *)(intptr_t)-4096);

    /* NULL result pointer is fine */
    CHECK_EQ(plait_thread_start(&t, return_arg, ARG(1), NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);

    /* bad input */
    CHECK_EQ(plait_thread_start(&t, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(plait_thread_start(NULL, NULL, NULL, NULL), -EINVAL);
    plait_task zero = {0};
    CHECK_EQ(plait_join(zero, NULL, 0), -EINVAL);
}

typedef struct {
    plait_event *gate;
    int gate_result;
} gate_ctx;

static void *waits_gate(void *p)
{
    gate_ctx *g = p;
    g->gate_result = plait_event_wait(g->gate, SOON());
    return ARG(5);
}

static void join_deadline_probe(void)
{
    gate_ctx g = {.gate_result = 1};
    CHECK_EQ(plait_event_create(&g.gate), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, waits_gate, &g, NULL), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(t, NULL, 0), -ETIMEDOUT);
    CHECK_EQ(plait_join(t, NULL, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_EQ(plait_join(t, NULL, INT64_MIN), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_join(t, NULL, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    /* the handle is still valid: wait-any sees it running, and a real join works */
    CHECK_EQ(plait_wait_any(&t, 1, 0), -ETIMEDOUT);
    CHECK_EQ(plait_event_set(g.gate), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 5);
    CHECK_EQ(g.gate_result, 0);
    CHECK_EQ(plait_join(t, &v, SOON()), -ESRCH);
    CHECK_EQ(plait_event_destroy(g.gate), 0);
}

static void *join_deadline_main(void *p)
{
    (void)p;
    join_deadline_probe();
    return NULL;
}

TEST(join_deadline_expires)
{
    join_deadline_probe();                  /* from a plain thread */
    check_run(join_deadline_main, NULL);    /* from a coroutine */
}

typedef struct {
    plait_task self;
    plait_event *stored;
    int join_r, any_r, all_r, detach_check;
} self_ctx;

static void *joins_itself(void *p)
{
    self_ctx *s = p;
    CHECK_EQ(plait_event_wait(s->stored, SOON()), 0);
    /* a one-second deadline: an undetected self-join fails instead of hanging */
    int64_t start = plait_now();
    s->join_r = plait_join(s->self, NULL, plait_deadline_in(PLAIT_SEC));
    s->any_r = plait_wait_any(&s->self, 1, plait_deadline_in(PLAIT_SEC));
    s->all_r = plait_wait_all(&s->self, 1, NULL, NULL, plait_deadline_in(PLAIT_SEC));
    CHECK_PROMPT(start);
    return ARG(77);
}

/* The same from a coroutine of a scheduler the thread runs: the thread cannot return
 * while its coroutine waits (it once waited out the deadline, or for ever). */
static void *runs_a_joiner(void *p)
{
    check_run(joins_itself, p);
    return ARG(77);
}

static void check_join_from_itself(plait_fn body)
{
    self_ctx s = {.join_r = 1, .any_r = 1, .all_r = 1};
    CHECK_EQ(plait_event_create(&s.stored), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, body, &s, NULL), 0);
    s.self = t;
    CHECK_EQ(plait_event_set(s.stored), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0); /* the failed self-joins consumed nothing */
    CHECK_EQ(INT(v), 77);
    CHECK_EQ(s.join_r, -EDEADLK);
    CHECK_EQ(s.any_r, -EDEADLK);
    CHECK_EQ(s.all_r, -EDEADLK);
    CHECK_EQ(plait_event_destroy(s.stored), 0);
}

TEST(join_from_itself) { check_join_from_itself(joins_itself); }

TEST(join_from_a_coroutine_of_itself) { check_join_from_itself(runs_a_joiner); }

/* A wait for a task that its deadline ended leaves its node among the task's joiners
 * until the waiter runs again and takes it out.  Meanwhile the task may finish, a copy
 * of its handle be joined elsewhere, and its future be reused for a new task: the
 * late withdrawal then unlinked the node from the new task's joiners with stale links,
 * losing the new task's joiner (its join ran out its deadline).  The order is made:
 * coroutine A's deadline and H's pass together (X keeps the scheduler busy past
 * both, so one pass fires H's timer, then A's); H, run first, holds the scheduler's
 * thread while thread B finishes t, joins it, starts t2 on the same future and waits
 * for t2; thread C lets H go once B sleeps in that wait; A then withdraws. */
static struct {
    plait_task t, t2;
    plait_event *go, *go2;
    int64_t deadline;
    sem_t h_holds, b_waits_released;
    atomic_int b_tid;
    int b_join;
} stale;

static void *waits_event(void *p) { return ARG(plait_event_wait(p, SOON())); }

static void *stale_a(void *p)
{
    (void)p;
    stale.deadline = plait_now() + 200 * PLAIT_MS;
    CHECK_EQ(plait_wait_any(&stale.t, 1, stale.deadline), -ETIMEDOUT);
    return NULL;
}

static void *stale_h(void *p)
{
    (void)p;
    CHECK_EQ(plait_sleep_until(stale.deadline - 1), 0);
    CHECK_EQ(sem_post(&stale.h_holds), 0);
    while (sem_wait(&stale.b_waits_released) != 0) /* the whole scheduler waits */
        ;
    return NULL;
}

static void *stale_x(void *p)
{
    (void)p;
    while (plait_now() <= stale.deadline) /* busy: both timers are due at its end */
        ;
    return NULL;
}

static void *stale_b(void *p)
{
    (void)p;
    while (sem_wait(&stale.h_holds) != 0) /* A's wait has ended; its node is still in */
        ;
    CHECK_EQ(plait_event_set(stale.go), 0);
    CHECK_EQ(plait_join(stale.t, NULL, SOON()), 0);
    CHECK_EQ(plait_thread_start(&stale.t2, waits_event, stale.go2, NULL), 0);
    atomic_store(&stale.b_tid, gettid_());
    stale.b_join = plait_join(stale.t2, NULL, SOON());
    return NULL;
}

static void *stale_c(void *p)
{
    (void)p;
    wait_asleep(&stale.b_tid); /* B's node is among t2's joiners */
    CHECK_EQ(sem_post(&stale.b_waits_released), 0);
    return NULL;
}

static void *stale_main(void *p)
{
    (void)p;
    plait_task a, h, x;
    CHECK_EQ(plait_spawn(&a, stale_a, NULL), 0);
    CHECK_EQ(plait_spawn(&h, stale_h, NULL), 0);
    CHECK_EQ(plait_spawn(&x, stale_x, NULL), 0);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0); /* A has withdrawn its node */
    CHECK_EQ(plait_event_set(stale.go2), 0);
    CHECK_EQ(plait_join(h, NULL, SOON()), 0);
    CHECK_EQ(plait_join(x, NULL, SOON()), 0);
    return NULL;
}

TEST(late_withdrawal_does_not_lose_a_reused_task_s_joiner)
{
    CHECK_EQ(plait_event_create(&stale.go), 0);
    CHECK_EQ(plait_event_create(&stale.go2), 0);
    CHECK_EQ(sem_init(&stale.h_holds, 0, 0), 0);
    CHECK_EQ(sem_init(&stale.b_waits_released, 0, 0), 0);
    CHECK_EQ(plait_thread_start(&stale.t, waits_event, stale.go, NULL), 0);
    pthread_t b, c;
    thread_start(&b, stale_b, NULL);
    thread_start(&c, stale_c, NULL);
    check_run(stale_main, NULL);
    thread_join(b);
    thread_join(c);
    /* t2 took t's future while A's node was still in, before the node held it */
    CHECK_EQ(stale.b_join, 0);
    CHECK_EQ(plait_event_destroy(stale.go), 0);
    CHECK_EQ(plait_event_destroy(stale.go2), 0);
    sem_destroy(&stale.h_holds);
    sem_destroy(&stale.b_waits_released);
}

static atomic_int detached_ran;

static void *detached_body(void *p)
{
    plait_sem *done = p;
    atomic_fetch_add(&detached_ran, 1);
    CHECK_EQ(plait_sem_release(done), 0);
    return ARG(3);
}

/* A thread's function that ends with pthread_exit() (or is cancelled by
 * pthread_cancel) returns nothing: its joiners get -ECANCELED, not a wait for ever, and
 * its task-local destructors run as on a return. */
static plait_key exited_key;
static atomic_int exited_destroyed;
static void exited_destructor(void *v)
{
    CHECK_EQ(INT(v), 5);
    atomic_fetch_add(&exited_destroyed, 1);
}

static void *exits_early(void *arg)
{
    CHECK_EQ(plait_local_set(exited_key, ARG(5)), 0);
    if (arg)
        pthread_exit(ARG(7));
    /* pthread_cancel of itself, ended at the next cancellation point */
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    for (;;)
        pthread_testcancel();
}

TEST(thread_ended_by_pthread_exit_or_cancel)
{
    CHECK_EQ(plait_key_create(&exited_key, exited_destructor), 0);
    for (int how = 0; how < 2; how++) {
        atomic_store(&exited_destroyed, 0);
        plait_task t;
        void *v = ARG(1);
        CHECK_EQ(plait_thread_start(&t, exits_early, how ? ARG(1) : NULL, NULL), 0);
        CHECK_EQ(plait_join(t, &v, SOON()), -ECANCELED);
        CHECK_EQ(atomic_load(&exited_destroyed), 1);
        CHECK_EQ(plait_join(t, NULL, 0), -ESRCH); /* consumed, as any outcome */
    }
}

TEST(detach)
{
    atomic_store(&detached_ran, 0);
    plait_sem *done;
    CHECK_EQ(plait_sem_create(&done, 0), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, detached_body, done, NULL), 0);
    CHECK_EQ(plait_detach(t), 0);
    CHECK_EQ(plait_detach(t), -ESRCH);
    CHECK_EQ(plait_join(t, NULL, 0), -ESRCH);
    CHECK_EQ(plait_cancel(t), -ESRCH);
    CHECK_EQ(plait_wait_any(&t, 1, 0), -ESRCH);
    CHECK_EQ(plait_sem_acquire(done, SOON()), 0); /* it ran all the same */
    /* task == NULL: detached at once */
    CHECK_EQ(plait_thread_start(NULL, detached_body, done, NULL), 0);
    CHECK_EQ(plait_sem_acquire(done, SOON()), 0);
    /* detach after it finished */
    CHECK_EQ(plait_thread_start(&t, detached_body, done, NULL), 0);
    CHECK_EQ(plait_sem_acquire(done, SOON()), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
    CHECK_EQ(plait_detach(t), 0);
    CHECK_EQ(plait_join(t, NULL, 0), -ESRCH);
    CHECK_EQ(atomic_load(&detached_ran), 3);
    CHECK_EQ(plait_sem_destroy(done), 0);
}

/* ======================================================================== */
/* Names and stacks                                                          */
/* ======================================================================== */

typedef struct {
    char plait_name[64];
    char os_name[64];
    bool had_name;
    int in_coroutine;
    uint64_t id;
    size_t stack;
    int cancelled;
} whoami;

static void *report_self(void *p)
{
    whoami *w = p;
    const char *n = plait_task_name();
    w->had_name = n != NULL;
    if (n)
        snprintf(w->plait_name, sizeof w->plait_name, "%s", n);
    CHECK_EQ(pthread_getname_np(pthread_self(), w->os_name, sizeof w->os_name), 0);
    w->in_coroutine = plait_in_coroutine();
    w->id = plait_task_id();
    w->cancelled = plait_cancelled();
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        CHECK_EQ(pthread_attr_getstacksize(&attr, &w->stack), 0);
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

static void check_named(const char *name, const char *expect)
{
    whoami w = {.in_coroutine = -1, .id = 99, .cancelled = -1};
    plait_thread_options o = {.name = name};
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, report_self, &w, &o), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(w.had_name);
    if (strcmp(w.plait_name, expect) != 0) {
        fprintf(stderr, "  plait_task_name() gave \"%s\", expected \"%s\"\n", w.plait_name,
                expect);
        CHECK(!"plait_task_name() in a thread");
    }
    if (strcmp(w.os_name, expect) != 0) {
        fprintf(stderr, "  OS name \"%s\", expected \"%s\"\n", w.os_name, expect);
        CHECK(!"OS thread name");
    }
    CHECK_EQ(w.in_coroutine, 0);
    CHECK_EQ(w.id, 0);
    CHECK_EQ(w.cancelled, 0);
}

TEST(thread_names)
{
    check_named("worker-7", "worker-7");
    check_named(NULL, "plait");
    check_named("", ""); /* an empty name is kept: it is still a plait thread's */
    check_named("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmno"); /* 15 bytes kept */
    check_named("exactly15bytes!", "exactly15bytes!");
    check_named("sixteen-bytes-xy", "sixteen-bytes-x");
    /* the option's string is copied: the caller may reuse it at once */
    char buf[32] = "copied-name";
    whoami w = {0};
    plait_thread_options o = {.name = buf};
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, report_self, &w, &o), 0);
    memset(buf, 'X', sizeof buf - 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(strcmp(w.plait_name, "copied-name") == 0);
    /* this plain thread has no plait name */
    CHECK(plait_task_name() == NULL);
    CHECK_EQ(plait_cancelled(), 0);
}

static atomic_int stack_runs;

static void *count_run(void *p)
{
    atomic_fetch_add(&stack_runs, 1);
    return p;
}

TEST(thread_stack_sizes)
{
    atomic_store(&stack_runs, 0);
    plait_task t;
    plait_thread_options o = {.name = "stack"};
    size_t bad[] = {1, 4096, 16 * 1024 - 1, PLAIT_STACK_MAX + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.stack_size = bad[i];
        CHECK_EQ(plait_thread_start(&t, count_run, NULL, &o), -EINVAL);
    }
    /* good sizes: the thread runs on a stack at least that large */
    size_t good[] = {16 * 1024, 1024 * 1024, 0};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        whoami w = {0};
        o.stack_size = good[i];
        CHECK_EQ(plait_thread_start(&t, report_self, &w, &o), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK(w.stack >= good[i]);
        if (good[i])
            CHECK(w.stack < good[i] + 1024 * 1024);
    }
    /* none of the refused starts ran anything */
    o.stack_size = 64 * 1024;
    CHECK_EQ(plait_thread_start(&t, count_run, ARG(1), &o), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&stack_runs), 1);
}

/* ======================================================================== */
/* Cancellation                                                              */
/* ======================================================================== */

enum { BLOCK_SLEEP, BLOCK_RECV, BLOCK_LOCK, BLOCK_SEM, BLOCK_JOIN };

typedef struct {
    int how;
    plait_event *entering;
    plait_chan *ch;
    plait_mutex *m;
    plait_sem *s;
    plait_task other;
    atomic_int tid; /* the victim's, just before it blocks */
    int result;
    int cancelled_before, cancelled_after;
    int later_sleep, later_free_lock, later_set_event;
    plait_mutex *free_m;
    plait_event *set_e;
} blocked_ctx;

static void *blocks(void *p)
{
    blocked_ctx *b = p;
    b->cancelled_before = plait_cancelled();
    CHECK_EQ(plait_event_set(b->entering), 0);
    int v;
    atomic_store(&b->tid, gettid_());
    switch (b->how) {
    case BLOCK_SLEEP: b->result = plait_sleep(PLAIT_FOREVER); break;
    case BLOCK_RECV: b->result = plait_chan_recv(b->ch, &v, PLAIT_FOREVER); break;
    case BLOCK_LOCK: b->result = plait_mutex_lock(b->m, PLAIT_FOREVER); break;
    case BLOCK_SEM: b->result = plait_sem_acquire(b->s, PLAIT_FOREVER); break;
    case BLOCK_JOIN: b->result = plait_join(b->other, NULL, PLAIT_FOREVER); break;
    }
    b->cancelled_after = plait_cancelled();
    /* sticky: what would block fails at once; what can complete still does (the
     * sleep's deadline one no stall reaches: a passed one ends it with 0) */
    b->later_sleep = plait_sleep(10 * PLAIT_SEC);
    b->later_free_lock = plait_mutex_lock(b->free_m, PLAIT_FOREVER);
    if (b->later_free_lock == 0)
        CHECK_EQ(plait_mutex_unlock(b->free_m), 0);
    b->later_set_event = plait_event_wait(b->set_e, PLAIT_FOREVER);
    return ARG(1);
}

static void cancel_blocked(int how)
{
    blocked_ctx b = {.how = how, .result = 1, .cancelled_before = -1,
                     .cancelled_after = -1};
    CHECK_EQ(plait_event_create(&b.entering), 0);
    CHECK_EQ(plait_chan_create(&b.ch, sizeof(int), 0), 0);
    CHECK_EQ(plait_mutex_create(&b.m), 0);
    CHECK_EQ(plait_mutex_create(&b.free_m), 0);
    CHECK_EQ(plait_sem_create(&b.s, 0), 0);
    CHECK_EQ(plait_event_create(&b.set_e), 0);
    CHECK_EQ(plait_event_set(b.set_e), 0);
    gate_ctx g = {.gate_result = 1};
    CHECK_EQ(plait_event_create(&g.gate), 0);
    if (how == BLOCK_LOCK)
        CHECK_EQ(plait_mutex_lock(b.m, 0), 0);
    if (how == BLOCK_JOIN)
        CHECK_EQ(plait_thread_start(&b.other, waits_gate, &g, NULL), 0);
    plait_task t;
    plait_thread_options o = {.name = "victim"};
    CHECK_EQ(plait_thread_start(&t, blocks, &b, &o), 0);
    CHECK_EQ(plait_event_wait(b.entering, SOON()), 0);
    /* blocked: its thread sleeps, and nothing else of it runs (a cancellation before
     * it blocked would fail its call at once, and pass, without testing the wake-up) */
    wait_asleep(&b.tid);
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_cancel(t), 0); /* twice is harmless */
    void *v = ARG(9);
    CHECK_EQ(plait_join(t, &v, SOON()), -ECANCELED);
    CHECK(plait_now() - start < 2 * PLAIT_SEC);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(b.cancelled_before, 0);
    CHECK_EQ(b.cancelled_after, 1);
    CHECK_EQ(b.later_sleep, -ECANCELED);
    CHECK_EQ(b.later_free_lock, 0);
    CHECK_EQ(b.later_set_event, 0);
    /* everything it was blocked on is left consistent */
    if (how == BLOCK_LOCK) {
        CHECK_EQ(plait_mutex_unlock(b.m), 0); /* still ours, never handed to it */
    }
    CHECK_EQ(plait_mutex_lock(b.m, 0), 0);
    CHECK_EQ(plait_mutex_unlock(b.m), 0);
    CHECK_EQ(plait_mutex_destroy(b.m), 0);
    CHECK_EQ(plait_mutex_destroy(b.free_m), 0);
    CHECK_EQ(plait_chan_destroy(b.ch), 0); /* nobody waits on it any more */
    CHECK_EQ(plait_sem_release(b.s), 0);
    CHECK_EQ(plait_sem_value(b.s), 1);      /* the cancelled waiter took no permit */
    CHECK_EQ(plait_sem_destroy(b.s), 0);
    if (how == BLOCK_JOIN) {
        /* its cancelled join consumed nothing: the other thread is still joinable */
        CHECK_EQ(plait_event_set(g.gate), 0);
        CHECK_EQ(plait_join(b.other, &v, SOON()), 0);
        CHECK_EQ(INT(v), 5);
    }
    CHECK_EQ(plait_event_destroy(g.gate), 0);
    CHECK_EQ(plait_event_destroy(b.entering), 0);
    CHECK_EQ(plait_event_destroy(b.set_e), 0);
}

TEST(cancel_thread_in_sleep) { cancel_blocked(BLOCK_SLEEP); }
TEST(cancel_thread_in_chan_recv) { cancel_blocked(BLOCK_RECV); }
TEST(cancel_thread_in_mutex_lock) { cancel_blocked(BLOCK_LOCK); }
TEST(cancel_thread_in_sem_acquire) { cancel_blocked(BLOCK_SEM); }
TEST(cancel_thread_in_join) { cancel_blocked(BLOCK_JOIN); }

typedef struct {
    plait_event *go;
    plait_event *started;
    int cancelled_seen;
    int result;
} early_cancel_ctx;

/* Cancelled before it ever blocks: its first blocking call fails at once. */
static void *cancelled_early(void *p)
{
    early_cancel_ctx *e = p;
    CHECK_EQ(plait_event_set(e->started), 0);
    /* busy, not blocked: the cancel arrives while it does not call plait */
    while (!plait_cancelled())
        sched_yield();
    e->cancelled_seen = 1;
    int64_t start = plait_now();
    e->result = plait_sleep(5 * PLAIT_SEC);
    CHECK_PROMPT(start);
    return ARG(2);
}

/* A thread cancelled as soon as it is started, most often before its function began:
 * the function still runs (it owns its argument here, and frees it), cancelled: its
 * blocking calls see it, and the join says -ECANCELED.  It never ran in most rounds (the
 * cancel withdrew the work as a queued pool task's), its argument leaked. */
static atomic_int owned_freed;

static void *frees_its_argument(void *p)
{
    int slept = plait_sleep(5 * PLAIT_SEC); /* cancelled: at once */
    free(p);
    atomic_fetch_add(&owned_freed, 1);
    return ARG(slept == -ECANCELED ? 1 : 2);
}

TEST(thread_cancelled_before_it_begins_still_runs)
{
    enum { ROUNDS = 200 };
    atomic_store(&owned_freed, 0);
    for (int i = 0; i < ROUNDS; i++) {
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, frees_its_argument, malloc(16), NULL), 0);
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    }
    /* each joined: its function had returned (the join waits for it) */
    CHECK_EQ(atomic_load(&owned_freed), ROUNDS);
}

TEST(cancel_thread_before_it_blocks)
{
    early_cancel_ctx e = {.result = 1};
    CHECK_EQ(plait_event_create(&e.started), 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, cancelled_early, &e, NULL), 0);
    CHECK_EQ(plait_event_wait(e.started, SOON()), 0);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(e.cancelled_seen, 1);
    CHECK_EQ(e.result, -ECANCELED);
    CHECK_EQ(plait_event_destroy(e.started), 0);

    /* a thread that already finished keeps its result */
    CHECK_EQ(plait_thread_start(&t, return_arg, ARG(31), NULL), 0);
    CHECK_EQ(plait_wait_any(&t, 1, SOON()), 0);
    CHECK_EQ(plait_cancel(t), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 31);
    /* this plain thread is never cancelled */
    CHECK_EQ(plait_cancelled(), 0);
}

/* A thread that runs a scheduler is blocked in plait_run: cancelling the thread
 * cancels the scheduler's main coroutine, and with it (as main returns) the others;
 * plait_run returns -ECANCELED, and the cancellation stays with the thread.  A thread
 * cancelled before it calls plait_run gets a main that is cancelled from the start. */
typedef struct {
    bool cancel_first;      /* wait to be cancelled before calling plait_run */
    plait_event *ready;     /* to be cancelled: spinning before plait_run, or main and
                               its child about to sleep */
    int child_result, main_result, run_result, after_result;
} sched_cancel_ctx;

static void *sleeps_forever_child(void *p)
{
    sched_cancel_ctx *c = p;
    c->child_result = plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}

static void *sleeps_forever_main(void *p)
{
    sched_cancel_ctx *c = p;
    CHECK_EQ(plait_spawn(NULL, sleeps_forever_child, c), 0);
    CHECK_EQ(plait_yield(), c->cancel_first ? -ECANCELED : 0); /* the child sleeps */
    if (!c->cancel_first)
        CHECK_EQ(plait_event_set(c->ready), 0);
    c->main_result = plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}

static void *runs_scheduler(void *p)
{
    sched_cancel_ctx *c = p;
    if (c->cancel_first) {
        CHECK_EQ(plait_event_set(c->ready), 0);
        while (!plait_cancelled())
            sched_yield();
    }
    c->run_result = plait_run(sleeps_forever_main, c, NULL);
    int64_t start = plait_now();
    c->after_result = plait_sleep(5 * PLAIT_SEC);
    CHECK_PROMPT(start);
    return ARG(8);
}

TEST(cancel_thread_in_plait_run)
{
    for (int cancel_first = 0; cancel_first < 2; cancel_first++) {
        static sched_cancel_ctx c; /* a thread that was never cancelled may outlive this */
        c = (sched_cancel_ctx){.cancel_first = cancel_first, .child_result = 1,
                               .main_result = 1, .run_result = 1, .after_result = 1};
        CHECK_EQ(plait_event_create(&c.ready), 0);
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, runs_scheduler, &c, NULL), 0);
        CHECK_EQ(plait_event_wait(c.ready, SOON()), 0); /* started: not withdrawn */
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC)), -ECANCELED);
        CHECK_EQ(c.main_result, -ECANCELED);
        CHECK_EQ(c.child_result, -ECANCELED);
        CHECK_EQ(c.run_result, -ECANCELED);
        CHECK_EQ(c.after_result, -ECANCELED);
        CHECK_EQ(plait_event_destroy(c.ready), 0);
    }
}

typedef struct {
    int forever, until_forever, far, past;
} plain_sleep_ctx;

static void *plain_sleeps(void *p)
{
    plain_sleep_ctx *s = p;
    int64_t start = plait_now();
    s->forever = plait_sleep(PLAIT_FOREVER);
    s->until_forever = plait_sleep_until(PLAIT_FOREVER);
    s->past = plait_sleep_until(0);
    CHECK_PROMPT(start);
    start = plait_now();
    s->far = plait_sleep(30 * PLAIT_MS);
    CHECK_TOOK(start, 30 * PLAIT_MS);
    return NULL;
}

TEST(sleep_forever_on_plain_pthread)
{
    plain_sleep_ctx s = {1, 1, 1, 1};
    pthread_t th;
    thread_start(&th, plain_sleeps, &s);
    thread_join(th);
    CHECK_EQ(s.forever, -EINVAL);
    CHECK_EQ(s.until_forever, -EINVAL);
    CHECK_EQ(s.past, 0);
    CHECK_EQ(s.far, 0);
    /* and this (main) thread: nothing can cancel it either.  (A plait thread may:
     * cancel_thread_in_sleep.) */
    CHECK_EQ(plait_sleep(PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_sleep_until(PLAIT_FOREVER), -EINVAL);
}

static void *plait_thread_sleeps(void *p)
{
    int64_t start = plait_now();
    CHECK_EQ(plait_sleep(30 * PLAIT_MS), 0);
    CHECK_TOOK(start, 30 * PLAIT_MS);
    CHECK_EQ(plait_sleep_until(0), 0);
    CHECK_EQ(plait_sleep(-1), 0);
    return p;
}

TEST(sleep_on_plait_thread)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, plait_thread_sleeps, ARG(4), NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 4);
}

/* ======================================================================== */
/* Thread-local storage                                                      */
/* ======================================================================== */

#define TLS_THREADS 4

static plait_key tls_key;
static atomic_long tls_destroyed_sum;
static atomic_int tls_destroyed_count;
static plait_sem *tls_destroyed_sem;

static void tls_destroy(void *v)
{
    atomic_fetch_add(&tls_destroyed_sum, (long)(intptr_t)v);
    atomic_fetch_add(&tls_destroyed_count, 1);
    plait_sem_release(tls_destroyed_sem);
}

typedef struct {
    pthread_barrier_t *all_set;
    int id;
    int ok;
} tls_ctx;

static void *tls_body(void *p)
{
    tls_ctx *c = p;
    CHECK(plait_local_get(tls_key) == NULL); /* a new thread starts empty */
    /* a value set twice: the destructor sees the last one only */
    CHECK_EQ(plait_local_set(tls_key, ARG(1000)), 0);
    CHECK_EQ(plait_local_set(tls_key, ARG(c->id)), 0);
    pthread_barrier_wait(c->all_set); /* everyone has set their own */
    c->ok = plait_local_get(tls_key) == ARG(c->id);
    pthread_barrier_wait(c->all_set);
    return NULL;
}

static void *tls_unset_body(void *p)
{
    (void)p;
    CHECK_EQ(plait_local_set(tls_key, ARG(5000)), 0);
    CHECK_EQ(plait_local_set(tls_key, NULL), 0); /* NULL: no destructor call */
    return NULL;
}

static void reset_tls_counts(void)
{
    atomic_store(&tls_destroyed_sum, 0);
    atomic_store(&tls_destroyed_count, 0);
}

static void wait_destroyed(int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(plait_sem_acquire(tls_destroyed_sem, SOON()), 0);
    CHECK_EQ(plait_sem_acquire(tls_destroyed_sem, 0), -ETIMEDOUT); /* no more */
}

static void *tls_coro_main(void *p)
{
    (void)p;
    /* a coroutine has its own value, not its thread's */
    CHECK(plait_local_get(tls_key) == NULL);
    CHECK_EQ(plait_local_set(tls_key, ARG(300)), 0);
    CHECK(plait_local_get(tls_key) == ARG(300));
    return NULL;
}

static void *tls_thread_with_coroutine(void *p)
{
    (void)p;
    CHECK_EQ(plait_local_set(tls_key, ARG(200)), 0);
    check_run(tls_coro_main, NULL);
    CHECK(plait_local_get(tls_key) == ARG(200)); /* the thread's value is untouched */
    return NULL;
}

TEST(thread_local_storage)
{
    CHECK_EQ(plait_key_create(&tls_key, tls_destroy), 0);
    CHECK_EQ(plait_sem_create(&tls_destroyed_sem, 0), 0);
    /* this thread has its own value throughout */
    CHECK(plait_local_get(tls_key) == NULL);
    CHECK_EQ(plait_local_set(tls_key, ARG(100)), 0);
    CHECK(plait_local_get(tls_key) == ARG(100));
    CHECK_EQ(plait_local_set(PLAIT_KEYS_MAX, ARG(1)), -EINVAL);
    CHECK(plait_local_get(PLAIT_KEYS_MAX) == NULL);

    pthread_barrier_t bar;
    tls_ctx c[TLS_THREADS];
    long expect = 0;

    /* plain pthreads */
    reset_tls_counts();
    pthread_barrier_init(&bar, NULL, TLS_THREADS);
    pthread_t th[TLS_THREADS];
    for (int i = 0; i < TLS_THREADS; i++) {
        c[i] = (tls_ctx){.all_set = &bar, .id = i + 1};
        expect += i + 1;
        thread_start(&th[i], tls_body, &c[i]);
    }
    for (int i = 0; i < TLS_THREADS; i++) {
        thread_join(th[i]);
        CHECK(c[i].ok);
    }
    /* pthread_join returns after the thread's key destructors ran */
    CHECK_EQ(atomic_load(&tls_destroyed_count), TLS_THREADS);
    CHECK_EQ(atomic_load(&tls_destroyed_sum), expect);
    wait_destroyed(TLS_THREADS);
    pthread_barrier_destroy(&bar);

    /* plait threads */
    reset_tls_counts();
    pthread_barrier_init(&bar, NULL, TLS_THREADS);
    plait_task t[TLS_THREADS];
    for (int i = 0; i < TLS_THREADS; i++) {
        c[i] = (tls_ctx){.all_set = &bar, .id = 10 * (i + 1)};
        CHECK_EQ(plait_thread_start(&t[i], tls_body, &c[i], NULL), 0);
    }
    CHECK_EQ(plait_wait_all(t, TLS_THREADS, NULL, NULL, SOON()), 0);
    for (int i = 0; i < TLS_THREADS; i++)
        CHECK(c[i].ok);
    wait_destroyed(TLS_THREADS); /* "its destructor runs when the thread ends" */
    CHECK_EQ(atomic_load(&tls_destroyed_count), TLS_THREADS);
    CHECK_EQ(atomic_load(&tls_destroyed_sum), 10 * expect);
    pthread_barrier_destroy(&bar);

    /* a value reset to NULL is not destroyed */
    reset_tls_counts();
    CHECK_EQ(plait_thread_start(&t[0], tls_unset_body, NULL, NULL), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), 0);
    thread_start(&th[0], tls_unset_body, NULL);
    thread_join(th[0]);
    /* a thread that runs a scheduler: its coroutine's value and its own are apart;
     * the coroutine's is destroyed when the coroutine ends, the thread's at exit */
    thread_start(&th[0], tls_thread_with_coroutine, NULL);
    thread_join(th[0]);
    wait_destroyed(2);
    CHECK_EQ(atomic_load(&tls_destroyed_count), 2);
    CHECK_EQ(atomic_load(&tls_destroyed_sum), 500);

    CHECK(plait_local_get(tls_key) == ARG(100)); /* ours was never touched */
    CHECK_EQ(plait_local_set(tls_key, NULL), 0);
    CHECK(plait_local_get(tls_key) == NULL);
    CHECK_EQ(plait_sem_destroy(tls_destroyed_sem), 0);
}

/* ======================================================================== */
/* CPU count                                                                 */
/* ======================================================================== */

TEST(cpu_count)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    int n = CPU_COUNT(&set);
    CHECK(plait_cpu_count() >= 1);
    CHECK_EQ(plait_cpu_count(), n);
}

/* ======================================================================== */
/* Futures between threads and coroutines                                    */
/* ======================================================================== */

typedef struct {
    plait_event *go;
    atomic_int ticks;
    atomic_bool thread_done;
    int go_result;
} xjoin_ctx;

static void *thread_waits_go(void *p)
{
    xjoin_ctx *x = p;
    x->go_result = plait_event_wait(x->go, SOON());
    atomic_store(&x->thread_done, true);
    return ARG(88);
}

static void *ticker(void *p)
{
    xjoin_ctx *x = p;
    /* runs only while the main coroutine waits in its join */
    atomic_fetch_add(&x->ticks, 1);
    CHECK_EQ(plait_event_set(x->go), 0);
    while (!atomic_load(&x->thread_done)) {
        atomic_fetch_add(&x->ticks, 1);
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    }
    return NULL;
}

static void *coro_joins_thread(void *p)
{
    xjoin_ctx *x = p;
    plait_task th, tick;
    CHECK_EQ(plait_thread_start(&th, thread_waits_go, x, NULL), 0);
    CHECK_EQ(plait_spawn(&tick, ticker, x), 0);
    void *v = NULL;
    /* only this coroutine waits: the ticker runs and lets the thread finish */
    CHECK_EQ(plait_join(th, &v, SOON()), 0);
    CHECK_EQ(INT(v), 88);
    CHECK(atomic_load(&x->ticks) >= 1);
    CHECK_EQ(plait_join(tick, NULL, SOON()), 0);
    return NULL;
}

TEST(coroutine_joins_thread)
{
    xjoin_ctx x = {.go_result = 1};
    CHECK_EQ(plait_event_create(&x.go), 0);
    check_run(coro_joins_thread, &x);
    CHECK_EQ(x.go_result, 0);
    CHECK_EQ(plait_event_destroy(x.go), 0);
}

typedef struct {
    plait_task thread;
    int join_result;
} cancelled_joiner_ctx;

static void *joins_thread_forever(void *p)
{
    cancelled_joiner_ctx *c = p;
    c->join_result = plait_join(c->thread, NULL, PLAIT_FOREVER);
    return NULL;
}

static void *coroutine_join_cancelled_main(void *p)
{
    (void)p;
    gate_ctx g = {.gate_result = 1};
    CHECK_EQ(plait_event_create(&g.gate), 0);
    cancelled_joiner_ctx c = {.join_result = 1};
    CHECK_EQ(plait_thread_start(&c.thread, waits_gate, &g, NULL), 0);
    plait_task joiner;
    CHECK_EQ(plait_spawn(&joiner, joins_thread_forever, &c), 0);
    settle(); /* it waits in the join */
    CHECK_EQ(c.join_result, 1);
    CHECK_EQ(plait_cancel(joiner), 0);
    CHECK_EQ(plait_join(joiner, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c.join_result, -ECANCELED);
    /* the thread's handle survived the cancelled join, and the thread itself was not
     * cancelled */
    CHECK_EQ(plait_wait_any(&c.thread, 1, 0), -ETIMEDOUT);
    CHECK_EQ(plait_event_set(g.gate), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(c.thread, &v, SOON()), 0);
    CHECK_EQ(INT(v), 5);
    CHECK_EQ(g.gate_result, 0);
    CHECK_EQ(plait_event_destroy(g.gate), 0);
    return NULL;
}

TEST(coroutine_join_of_thread_cancelled)
{
    check_run(coroutine_join_cancelled_main, NULL);
}

typedef struct {
    plait_task coro;
    plait_event *stored;
    plait_event *release;
    int release_result;
} tjc_ctx;

static void *coro_waits_release(void *p)
{
    tjc_ctx *c = p;
    c->release_result = plait_event_wait(c->release, SOON());
    return ARG(61);
}

static void *thread_joins_coro(void *p)
{
    tjc_ctx *c = p;
    CHECK_EQ(plait_event_wait(c->stored, SOON()), 0);
    void *v = NULL;
    int r = plait_join(c->coro, &v, SOON());
    CHECK_EQ(r, 0);
    return r ? PLAIT_FAIL(r) : v;
}

static void *thread_joins_coro_main(void *p)
{
    tjc_ctx *c = p;
    CHECK_EQ(plait_spawn(&c->coro, coro_waits_release, c), 0);
    plait_task th;
    CHECK_EQ(plait_thread_start(&th, thread_joins_coro, c, NULL), 0);
    CHECK_EQ(plait_event_set(c->stored), 0);
    /* the coroutine finishes only once released; the thread waits for it meanwhile */
    CHECK_EQ(plait_wait_any(&th, 1, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_event_set(c->release), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(th, &v, SOON()), 0); /* the coroutine's result, through it */
    CHECK_EQ(INT(v), 61);
    CHECK_EQ(plait_join(c->coro, NULL, 0), -ESRCH); /* consumed by the thread */
    return NULL;
}

TEST(thread_joins_coroutine)
{
    tjc_ctx c = {.release_result = 1};
    CHECK_EQ(plait_event_create(&c.stored), 0);
    CHECK_EQ(plait_event_create(&c.release), 0);
    check_run(thread_joins_coro_main, &c);
    CHECK_EQ(c.release_result, 0);
    CHECK_EQ(plait_event_destroy(c.stored), 0);
    CHECK_EQ(plait_event_destroy(c.release), 0);
}

/* wait-any and wait-all over a mix of coroutines and threads */
static void *mixed_wait_main(void *p)
{
    (void)p;
    gate_ctx g = {.gate_result = 1};
    CHECK_EQ(plait_event_create(&g.gate), 0);
    plait_task t[3];
    CHECK_EQ(plait_spawn(&t[0], waits_gate, &g), 0);            /* coroutine */
    CHECK_EQ(plait_thread_start(&t[1], return_arg, ARG(12), NULL), 0); /* thread */
    CHECK_EQ(plait_thread_start(&t[2], fail_edom, NULL, NULL), 0);
    /* t[0] cannot finish before the gate opens: one of the threads is first */
    int i = plait_wait_any(t, 1, plait_deadline_in(10 * PLAIT_MS));
    CHECK_EQ(i, -ETIMEDOUT);
    i = plait_wait_any(t, 3, SOON());
    CHECK(i == 1 || i == 2);
    CHECK_EQ(plait_event_set(g.gate), 0);
    void *results[3] = {0};
    int errors[3] = {1, 1, 1};
    CHECK_EQ(plait_wait_all(t, 3, results, errors, SOON()), -EDOM);
    CHECK_EQ(errors[0], 0);
    CHECK_EQ(INT(results[0]), 5);
    CHECK_EQ(errors[1], 0);
    CHECK_EQ(INT(results[1]), 12);
    CHECK_EQ(errors[2], -EDOM);
    CHECK_EQ(plait_join(t[1], NULL, 0), -ESRCH);
    CHECK_EQ(plait_event_destroy(g.gate), 0);
    return NULL;
}

TEST(wait_any_and_all_mixed) { check_run(mixed_wait_main, NULL); }

/* ======================================================================== */
/* Timing                                                                    */
/* ======================================================================== */

static void *sleeps_1s(void *p)
{
    CHECK_EQ(plait_sleep(PLAIT_SEC), 0);
    return p;
}

TEST(threads_run_in_parallel)
{
    plait_task t[3];
    int64_t start = plait_now();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_thread_start(&t[i], sleeps_1s, ARG(i), NULL), 0);
    void *results[3];
    CHECK_EQ(plait_wait_all(t, 3, results, NULL, SOON()), 0);
    int64_t took = plait_now() - start;
    CHECK(took >= PLAIT_SEC);
    /* together, not one after another (3 s); 2 s of room for the starts and wake-ups */
    CHECK(took < 3 * PLAIT_SEC);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(INT(results[i]), i);
}

/* Many short threads, started and joined from coroutines on two schedulers and from
 * plain threads at once: every result comes back to its joiner. */
#define MANY_ROUNDS (CHECK_SANITIZED ? 30 : 150)

static void *square(void *p)
{
    intptr_t x = (intptr_t)p;
    return (void *)(x * x);
}

static void *many_threads(void *p)
{
    int base = INT(p);
    for (int i = 0; i < MANY_ROUNDS; i++) {
        plait_task t[2];
        intptr_t a = base + 2 * i, b = base + 2 * i + 1;
        CHECK_EQ(plait_thread_start(&t[0], square, (void *)a, NULL), 0);
        CHECK_EQ(plait_thread_start(&t[1], square, (void *)b, NULL), 0);
        void *v0 = NULL, *v1 = NULL;
        CHECK_EQ(plait_join(t[1], &v1, SOON()), 0);
        CHECK_EQ(plait_join(t[0], &v0, SOON()), 0);
        CHECK((intptr_t)v0 == a * a);
        CHECK((intptr_t)v1 == b * b);
    }
    return NULL;
}

TEST(many_threads_mixed_joiners)
{
    sched_thread st[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        sched_thread_start(&st[i], many_threads, ARG(1000 * (i + 1)));
        thread_start(&th[i], many_threads, ARG(1000 * (i + 3)));
    }
    for (int i = 0; i < 2; i++) {
        sched_thread_join(&st[i]);
        thread_join(th[i]);
    }
}

/* ======================================================================== */
/* As-completed sets and the future allocator (found by a review)           */
/* ======================================================================== */

static void *yield_then_return(void *p)
{
    CHECK_EQ(plait_yield(), 0); /* the waiters block first */
    return p;
}

/* A caller woken inside plait_completed_next() takes the set's lock again before it
 * returns: a destroy meanwhile is refused until it has (the destroy once freed the
 * set under it: a use after free).  On one scheduler: the watched task wakes its
 * joiner B first, then the set's waiter A; B destroys before A runs. */
typedef struct {
    plait_completed *set;
    plait_task watched, got;
    int next_r, destroy_r, busy;
} woken_in_next;

static void *next_of_set(void *p)
{
    woken_in_next *x = p;
    x->next_r = plait_completed_next(x->set, &x->got, SOON());
    return NULL;
}

static void *destroy_once_watched_ends(void *p)
{
    woken_in_next *x = p;
    CHECK_EQ(plait_wait_any(&x->watched, 1, SOON()), 0);
    while ((x->destroy_r = plait_completed_destroy(x->set)) == -EBUSY) {
        x->busy++;
        CHECK_EQ(plait_yield(), 0);
    }
    return NULL;
}

static void *destroy_beside_next_main(void *p)
{
    (void)p;
    woken_in_next x = {0};
    CHECK_EQ(plait_completed_create(&x.set), 0);
    CHECK_EQ(plait_spawn(&x.watched, yield_then_return, ARG(7)), 0);
    CHECK_EQ(plait_completed_add(x.set, x.watched), 0);
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, next_of_set, &x), 0);
    CHECK_EQ(plait_spawn(&b, destroy_once_watched_ends, &x), 0);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    CHECK_EQ(plait_join(b, NULL, SOON()), 0);
    CHECK_EQ(x.next_r, 0);
    CHECK(x.got.future == x.watched.future);
    CHECK(x.busy > 0); /* the order above: B tried while A was still inside */
    CHECK_EQ(x.destroy_r, 0);
    void *v = NULL;
    CHECK_EQ(plait_join(x.watched, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    return NULL;
}

TEST(completed_destroy_waits_for_a_woken_next) { check_run(destroy_beside_next_main, NULL); }

/* A finished task on the done list of a set being destroyed is that destroy's to let
 * go: another set's add is -EBUSY until the destroy has returned.  (It once let go of
 * the old set itself, and the destroy did again: one reference too many dropped, the
 * task's future recycled under a handle not yet joined, and a third set took it.) */
enum { DONE_TASKS = 1024 };
static plait_task done_tasks[DONE_TASKS];

static void *finish_all_main(void *p)
{
    (void)p;
    /* each runs to its end at the yield, before the next is made: under ThreadSanitizer
     * one fiber serves them all (a coroutine alive beside the others costs a fiber of
     * its own, 3-4 ms on a slow host: 23 s of this test) */
    for (int i = 0; i < DONE_TASKS; i++) {
        CHECK_EQ(plait_spawn(&done_tasks[i], return_arg, ARG(i)), 0);
        CHECK_EQ(plait_yield(), 0);
    }
    for (int i = 0; i < DONE_TASKS; i++) /* finished, not joined */
        CHECK_EQ(plait_wait_any(&done_tasks[i], 1, SOON()), 0);
    return NULL;
}

typedef struct {
    plait_completed *other;
    atomic_int go, trying;
    int r;
} mover;

static void *move_the_last_task(void *p)
{
    mover *m = p;
    while (!atomic_load(&m->go))
        sched_yield();
    while ((m->r = plait_completed_add(m->other, done_tasks[DONE_TASKS - 1])) == -EBUSY)
        atomic_store(&m->trying, 1);
    return NULL;
}

TEST(completed_add_while_the_old_set_is_destroyed)
{
    for (int round = 0; round < (CHECK_TSAN ? 8 : 40); round++) {
        check_run(finish_all_main, NULL);
        plait_completed *set, *other, *third;
        CHECK_EQ(plait_completed_create(&set), 0);
        CHECK_EQ(plait_completed_create(&other), 0);
        CHECK_EQ(plait_completed_create(&third), 0);
        for (int i = 0; i < DONE_TASKS; i++)
            CHECK_EQ(plait_completed_add(set, done_tasks[i]), 0);
        mover m = {.other = other};
        pthread_t th;
        thread_start(&th, move_the_last_task, &m);
        atomic_store(&m.go, 1);
        while (!atomic_load(&m.trying))
            sched_yield();
        CHECK_EQ(plait_completed_destroy(set), 0);
        thread_join(th);
        CHECK_EQ(m.r, 0);
        CHECK_EQ(plait_completed_add(third, done_tasks[DONE_TASKS - 1]), -EBUSY);
        plait_task h;
        CHECK_EQ(plait_completed_next(other, &h, 0), 0);
        CHECK(h.future == done_tasks[DONE_TASKS - 1].future);
        CHECK_EQ(plait_completed_next(other, &h, 0), -EPIPE);
        for (int i = 0; i < DONE_TASKS; i++) {
            void *v = NULL;
            CHECK_EQ(plait_join(done_tasks[i], &v, 0), 0);
            CHECK_EQ(INT(v), i);
        }
        CHECK_EQ(plait_completed_destroy(other), 0);
        CHECK_EQ(plait_completed_destroy(third), 0);
        if (check_failures)
            break;
    }
}

/* A plain thread that only makes futures (it starts a plait thread and detaches it)
 * strands no cache of free futures when it ends: it takes them one at a time, as its
 * exit would not give a cache back.  (Each such thread once kept up to 63.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
#include <malloc.h>
static size_t heap_in_use(void) { return mallinfo2().uordblks; }
#endif

static void *start_detached(void *p)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, return_arg, NULL, NULL), 0);
    CHECK_EQ(plait_detach(t), 0);
    *(plait_task *)p = t;
    return NULL;
}

static void *spawn_and_join_64(void *p)
{
    (void)p;
    plait_task t[64];
    for (int i = 0; i < 64; i++)
        CHECK_EQ(plait_spawn(&t[i], return_arg, NULL), 0);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

static void make_futures_on_a_plain_thread(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        check_run(spawn_and_join_64, NULL); /* 64 free futures on the global list */
        plait_task detached;
        pthread_t th;
        thread_start(&th, start_detached, &detached);
        thread_join(th);
    }
}

/* (50 rounds under ThreadSanitizer, whose 13,000 coroutines of 200 took 45 s alone on a
 * machine of slow page faults: stranded caches would still take some 500 KB) */
TEST(plain_thread_strands_no_future_cache)
{
    make_futures_on_a_plain_thread(CHECK_TSAN ? 3 : 10);
    size_t before = heap_in_use();
    make_futures_on_a_plain_thread(CHECK_TSAN ? 50 : 200);
    size_t after = heap_in_use();
    /* stranded caches would take 200 x 63 futures, some 2 MB */
    CHECK(after < before + 256 * 1024);
}

/* A child that a plait thread's task-local destructor forked, returning from the
 * destructor, ends there (_exit(0)), as one the function forked does.  It went on with
 * the rest of the thread's end: the other destructors' copies (the second below ran in
 * the child too), the parent's future (whose lock a joiner of the parent may have held:
 * the child spun for ever), and exit() at its last thread (the parent's stdio buffers
 * printed twice; a helper's audit). */
static plait_key fk_forks, fk_notes;
static int fk_pipe[2];
static int fk_child_status = -1;

static void fk_fork_in_destructor(void *value)
{
    (void)value;
    pid_t pid = fork();
    if (pid > 0)
        while (waitpid(pid, &fk_child_status, 0) < 0 && errno == EINTR) {
        }
}

static void fk_note(void *value)
{
    (void)value;
    pid_t me = getpid();
    (void)!write(fk_pipe[1], &me, sizeof me);
}

static void *fk_set_both(void *arg)
{
    CHECK_EQ(plait_local_set(fk_forks, ARG(1)), 0);
    CHECK_EQ(plait_local_set(fk_notes, ARG(1)), 0);
    return arg;
}

TEST(a_child_forked_by_a_thread_s_destructor_ends_there)
{
    CHECK_EQ(plait_key_create(&fk_forks, fk_fork_in_destructor), 0); /* (runs first) */
    CHECK_EQ(plait_key_create(&fk_notes, fk_note), 0);
    CHECK_EQ(pipe2(fk_pipe, O_NONBLOCK), 0);
    fflush(NULL);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, fk_set_both, ARG(9), NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v == ARG(9));
    CHECK(WIFEXITED(fk_child_status) && WEXITSTATUS(fk_child_status) == 0);
    pid_t noted[4];
    ssize_t n = read(fk_pipe[0], noted, sizeof noted);
    CHECK_EQ(n, (ssize_t)sizeof(pid_t)); /* the parent's note alone */
    if (n >= (ssize_t)sizeof(pid_t))
        CHECK_EQ(noted[0], getpid());
    close(fk_pipe[0]);
    close(fk_pipe[1]);
}

RUN_TESTS(CASE(start_and_join_results), CASE(a_child_forked_by_a_thread_s_destructor_ends_there), CASE(join_deadline_expires), CASE(join_from_itself),
          CASE(join_from_a_coroutine_of_itself),
          CASE(late_withdrawal_does_not_lose_a_reused_task_s_joiner),
          CASE(thread_cancelled_before_it_begins_still_runs),
          CASE(detach), CASE(thread_ended_by_pthread_exit_or_cancel), CASE(thread_names), CASE(thread_stack_sizes),
          CASE(cancel_thread_in_sleep), CASE(cancel_thread_in_chan_recv),
          CASE(cancel_thread_in_mutex_lock), CASE(cancel_thread_in_sem_acquire),
          CASE(cancel_thread_in_join), CASE(cancel_thread_before_it_blocks),
          CASE(cancel_thread_in_plait_run),
          CASE(sleep_forever_on_plain_pthread), CASE(sleep_on_plait_thread),
          CASE(thread_local_storage), CASE(cpu_count), CASE(coroutine_joins_thread),
          CASE(coroutine_join_of_thread_cancelled), CASE(thread_joins_coroutine),
          CASE(wait_any_and_all_mixed), CASE(threads_run_in_parallel),
          CASE(many_threads_mixed_joiners), CASE(completed_destroy_waits_for_a_woken_next),
          CASE(completed_add_while_the_old_set_is_destroyed),
          CASE(plain_thread_strands_no_future_cache))
