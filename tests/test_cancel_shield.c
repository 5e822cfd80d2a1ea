/*
 * test_cancel_shield.c — plait_cancel_shield: a task that holds its cancellation off
 * while it cleans up.
 *
 * Each case cancels a shielded task while it waits (or before), checks that the wait
 * ends by its own event as if no cancellation had come, then that the cancellation was
 * held, not lost: the first wait after the shield is lifted answers -ECANCELED and the
 * task's outcome is -ECANCELED.  Without the shield every one of those waits answers
 * -ECANCELED at once.  Coroutines (on the canceller's scheduler and on another), plait
 * threads (a futex wait, a descriptor wait, a scheduler run in one), pool tasks (a join that helps, a map
 * whose runners look at their caller's cancellation) and a group's wait.
 */
#include "helpers.h"

#include <fcntl.h>
#include <unistd.h>

/* What a shielded task saw, checked by the test's main thread. */
typedef struct {
    plait_event *go;      /* what the shielded wait waits for */
    atomic_int waiting;   /* set just before the shielded wait (a thread's id) */
    int shielded_wait;    /* the wait's answer under the shield */
    int cancelled_seen;   /* plait_cancelled() under the shield */
    int lifted_was;       /* plait_cancel_shield(0)'s answer */
    int wait_after;       /* the first call that waits once the shield is lifted */
} held;

static void held_init(held *h)
{
    memset(h, 0, sizeof *h);
    CHECK_EQ(plait_event_create(&h->go), 0);
}

/* The checks every case makes of what the task saw, and of its outcome (joined: its
 * join's answer, once it has ended). */
static void check_held_joined(held *h, int joined)
{
    CHECK_EQ(joined, -ECANCELED); /* cancelled before it finished */
    CHECK_EQ(h->shielded_wait, 0);
    CHECK_EQ(h->cancelled_seen, 0);
    CHECK_EQ(h->lifted_was, 1);
    CHECK_EQ(h->wait_after, -ECANCELED);
    CHECK_EQ(plait_event_destroy(h->go), 0);
}

static void check_held(held *h, plait_task task)
{
    check_held_joined(h, plait_join(task, NULL, SOON()));
}

/* Lift the shield and look at what the held cancellation does. */
static void lift(held *h)
{
    h->cancelled_seen = plait_cancelled();
    h->lifted_was = plait_cancel_shield(0);
    /* a call that always waits: a deadline no stall reaches (a sleep whose deadline
     * has passed ends at once, even for a cancelled caller) */
    h->wait_after = plait_sleep(10 * PLAIT_SEC);
}

static void *shielded_event_wait(void *arg)
{
    held *h = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    atomic_store(&h->waiting, plait_in_coroutine() ? 1 : gettid_());
    h->shielded_wait = plait_event_wait(h->go, SOON());
    lift(h);
    return ARG(7);
}

static void *cancel_while_a_coroutine_waits(void *unused)
{
    (void)unused;
    held h;
    held_init(&h);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, shielded_event_wait, &h), 0);
    while (!atomic_load(&h.waiting))
        CHECK_EQ(plait_yield(), 0);
    /* one scheduler: the coroutine has suspended in its wait */
    CHECK_EQ(plait_cancel(t), 0);
    for (int i = 0; i < 10; i++) /* a wait cut short would end now */
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(h.shielded_wait, 0);
    CHECK_EQ(plait_event_set(h.go), 0);
    check_held(&h, t);
    return NULL;
}

TEST(a_shielded_coroutine_waits_through_its_cancellation)
{
    check_run(cancel_while_a_coroutine_waits, NULL);
}

/* Cancelled before it shields: the cancellation is held all the same. */
static void *cancelled_then_shielded(void *arg)
{
    held *h = arg;
    while (!plait_cancelled())
        (void)plait_yield();
    CHECK_EQ(plait_yield(), -ECANCELED);
    CHECK_EQ(plait_cancel_shield(1), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_sleep(PLAIT_MS), 0); /* ends at its deadline */
    CHECK_EQ(plait_sleep_until(PLAIT_FOREVER), -EINVAL); /* nothing could end it */
    /* nested: the inner shield restores what it found */
    CHECK_EQ(plait_cancel_shield(1), 1);
    CHECK_EQ(plait_cancel_shield(2), -EINVAL);
    CHECK_EQ(plait_cancel_shield(-1), -EINVAL);
    CHECK_EQ(plait_cancel_shield(1), 1); /* the bad calls changed nothing */
    h->shielded_wait = plait_event_wait(h->go, SOON());
    lift(h);
    return ARG(7);
}

static void *cancel_before_the_shield(void *unused)
{
    (void)unused;
    held h;
    held_init(&h);
    CHECK_EQ(plait_event_set(h.go), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cancelled_then_shielded, &h), 0);
    CHECK_EQ(plait_cancel(t), 0);
    check_held(&h, t);
    return NULL;
}

TEST(a_cancellation_that_came_first_is_held_by_the_shield)
{
    check_run(cancel_before_the_shield, NULL);
}

/* A coroutine on another scheduler: the cancellation goes through that scheduler's
 * inbox, to a wait the coroutine is asleep in (its thread sleeps). */
static void *shielded_wait_on_its_own_scheduler(void *arg)
{
    held *h = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    atomic_store(&h->waiting, gettid_()); /* the scheduler's thread */
    h->shielded_wait = plait_event_wait(h->go, SOON());
    lift(h);
    return ARG(7);
}

typedef struct {
    held *h;
    plait_task task;
    atomic_int spawned;
    void *value;
    int joined;
} remote;

static void *spawns_the_shielded_one(void *arg)
{
    remote *r = arg;
    CHECK_EQ(plait_spawn(&r->task, shielded_wait_on_its_own_scheduler, r->h), 0);
    atomic_store(&r->spawned, 1);
    r->joined = plait_join(r->task, &r->value, SOON());
    return NULL;
}

TEST(a_shielded_coroutine_of_another_scheduler_waits_through_its_cancellation)
{
    held h;
    held_init(&h);
    remote r = {.h = &h};
    sched_thread st;
    sched_thread_start(&st, spawns_the_shielded_one, &r);
    wait_asleep(&h.waiting); /* both coroutines wait: the scheduler sleeps */
    wait_for(&r.spawned);
    CHECK_EQ(plait_cancel(r.task), 0);
    wait_asleep(&h.waiting); /* the cancellation was taken, and the wait goes on */
    CHECK_EQ(h.shielded_wait, 0);
    CHECK_EQ(plait_event_set(h.go), 0);
    sched_thread_join(&st);
    check_held_joined(&h, r.joined);
}

TEST(a_shielded_plait_thread_waits_through_its_cancellation)
{
    held h;
    held_init(&h);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, shielded_event_wait, &h, NULL), 0);
    wait_asleep(&h.waiting);
    CHECK_EQ(plait_cancel(t), 0);
    wait_asleep(&h.waiting); /* still in its wait */
    CHECK_EQ(h.shielded_wait, 0);
    CHECK_EQ(plait_event_set(h.go), 0);
    check_held(&h, t);
}

/* A shielded plait thread runs a scheduler: its cancellation is not passed on to the
 * scheduler's main coroutine (as a thread's is, unshielded), whose wait goes on, and
 * plait_run returns main's outcome. */
typedef struct {
    held h;
    int run;
} shielded_run;

static void *main_waits(void *arg)
{
    held *h = arg;
    atomic_store(&h->waiting, gettid_());
    h->shielded_wait = plait_event_wait(h->go, SOON());
    return NULL;
}

static void *shielded_thread_runs_a_scheduler(void *arg)
{
    shielded_run *r = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    r->run = plait_run(main_waits, &r->h, NULL);
    lift(&r->h);
    return ARG(7);
}

TEST(a_shielded_plait_thread_runs_a_scheduler_through_its_cancellation)
{
    shielded_run r = {.run = 1};
    held_init(&r.h);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, shielded_thread_runs_a_scheduler, &r, NULL), 0);
    wait_asleep(&r.h.waiting);
    CHECK_EQ(plait_cancel(t), 0);
    wait_asleep(&r.h.waiting);
    CHECK_EQ(plait_event_set(r.h.go), 0);
    check_held(&r.h, t);
    CHECK_EQ(r.run, 0);
}

/* A descriptor wait: a plait thread's ppoll, or a coroutine's wait in its scheduler's
 * poller (and, on io_uring, a read the kernel makes: the second read, after one that
 * took less than it asked). */
typedef struct {
    held h;
    int fds[2];
    ssize_t first, second;
    char got[2];
} shielded_read;

static void *shielded_reads(void *arg)
{
    shielded_read *s = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    s->first = plait_read(s->fds[0], s->got, 2, SOON()); /* one byte was there */
    atomic_store(&s->h.waiting, plait_in_coroutine() ? 1 : gettid_());
    s->second = plait_read(s->fds[0], s->got + 1, 1, SOON());
    s->h.shielded_wait = s->second == 1 ? 0 : (int)s->second;
    lift(&s->h);
    return ARG(7);
}

static void shielded_read_init(shielded_read *s)
{
    memset(s, 0, sizeof *s);
    held_init(&s->h);
    CHECK_EQ(pipe2(s->fds, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(write(s->fds[1], "a", 1), 1);
    CHECK_EQ(plait_event_set(s->h.go), 0);
}

static void shielded_read_check(shielded_read *s, plait_task t)
{
    check_held(&s->h, t);
    CHECK_EQ(s->first, 1);
    CHECK_EQ(s->second, 1);
    CHECK(memcmp(s->got, "ab", 2) == 0);
    close(s->fds[0]);
    close(s->fds[1]);
}

TEST(a_shielded_plait_thread_reads_through_its_cancellation)
{
    shielded_read s;
    shielded_read_init(&s);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, shielded_reads, &s, NULL), 0);
    wait_asleep(&s.h.waiting);
    CHECK_EQ(plait_cancel(t), 0);
    wait_asleep(&s.h.waiting);
    CHECK_EQ(write(s.fds[1], "b", 1), 1);
    shielded_read_check(&s, t);
}

static void *cancel_while_a_coroutine_reads(void *unused)
{
    (void)unused;
    shielded_read s;
    shielded_read_init(&s);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, shielded_reads, &s), 0);
    while (!atomic_load(&s.h.waiting))
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_yield(), 0); /* into its second read's wait */
    CHECK_EQ(plait_cancel(t), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(s.second, 0); /* not ended */
    CHECK_EQ(write(s.fds[1], "b", 1), 1);
    shielded_read_check(&s, t);
    return NULL;
}

TEST(a_shielded_coroutine_reads_through_its_cancellation)
{
    check_run(cancel_while_a_coroutine_reads, NULL);
}

/* A pool task joins another task of its pool: the join helps (runs queued tasks,
 * the one it joins included) and looks at the caller's cancellation between them. */
typedef struct {
    held h;
    plait_pool *pool;
    void *inner_value;
    int inner_joined;
} pool_join;

static void *waits_for_go(void *arg)
{
    held *h = arg;
    atomic_store(&h->waiting, gettid_());
    CHECK_EQ(plait_event_wait(h->go, SOON()), 0);
    return ARG(5);
}

static void *shielded_join_in_the_pool(void *arg)
{
    pool_join *p = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    plait_task inner;
    CHECK_EQ(plait_pool_submit(p->pool, &inner, waits_for_go, &p->h), 0);
    p->inner_joined = plait_join(inner, &p->inner_value, SOON());
    p->h.shielded_wait = p->inner_joined;
    lift(&p->h);
    return ARG(7);
}

/* A pool of `threads` workers runs fn, the shielded task that joins, and cancels it
 * while the task it waits for waits. */
static void check_pool_join(unsigned threads, plait_fn fn)
{
    pool_join p = {.inner_value = NULL};
    held_init(&p.h);
    plait_pool_options o = {.threads = threads};
    CHECK_EQ(plait_pool_create(&p.pool, &o), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(p.pool, &t, fn, &p), 0);
    wait_asleep(&p.h.waiting); /* the inner task waits (on whichever worker) */
    CHECK_EQ(plait_cancel(t), 0);
    wait_asleep(&p.h.waiting);
    CHECK_EQ(plait_event_set(p.h.go), 0);
    check_held(&p.h, t);
    CHECK_EQ(p.inner_joined, 0);
    CHECK_EQ(INT(p.inner_value), 5);
    CHECK_EQ(plait_pool_destroy(p.pool), 0);
}

TEST(a_shielded_pool_task_joins_through_its_cancellation)
{
    check_pool_join(2, shielded_join_in_the_pool);
}

/* The same on a pool of one worker, whose join runs the queued tasks itself, newest
 * first: the task that waits, then the one joined, looking at the caller's
 * cancellation between them; nobody else can run the one joined. */
static void *returns_five(void *unused)
{
    (void)unused;
    return ARG(5);
}

static void *shielded_join_that_helps(void *arg)
{
    pool_join *p = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    plait_task joined;
    CHECK_EQ(plait_pool_submit(p->pool, &joined, returns_five, NULL), 0);
    CHECK_EQ(plait_pool_submit(p->pool, NULL, waits_for_go, &p->h), 0);
    p->inner_joined = plait_join(joined, &p->inner_value, SOON());
    p->h.shielded_wait = p->inner_joined;
    lift(&p->h);
    return ARG(7);
}

TEST(a_shielded_pool_task_helps_through_its_cancellation)
{
    check_pool_join(1, shielded_join_that_helps);
}

/* A map from a shielded pool task: its runners look at their caller's cancellation
 * themselves, and must not see a shielded one. */
enum { MAP_N = 64 };

typedef struct {
    held h;
    plait_pool *pool;
    void *args[MAP_N];
    void *results[MAP_N];
    int errors[MAP_N];
    int mapped;
} pool_mapping;

static void *item(void *arg)
{
    held *h = arg;
    if (atomic_exchange(&h->waiting, gettid_()) == 0) /* the first item waits */
        CHECK_EQ(plait_event_wait(h->go, SOON()), 0);
    return ARG(3);
}

static void *shielded_map(void *arg)
{
    pool_mapping *m = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    m->mapped = plait_pool_map(m->pool, item, m->args, MAP_N, m->results, m->errors, SOON());
    m->h.shielded_wait = m->mapped;
    lift(&m->h);
    return ARG(7);
}

TEST(a_shielded_pool_task_maps_through_its_cancellation)
{
    pool_mapping m;
    memset(&m, 0, sizeof m);
    held_init(&m.h);
    for (int i = 0; i < MAP_N; i++)
        m.args[i] = &m.h;
    plait_pool_options o = {.threads = 2};
    CHECK_EQ(plait_pool_create(&m.pool, &o), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(m.pool, &t, shielded_map, &m), 0);
    wait_asleep(&m.h.waiting); /* the first item waits */
    CHECK_EQ(plait_cancel(t), 0);
    wait_asleep(&m.h.waiting);
    CHECK_EQ(plait_event_set(m.h.go), 0);
    check_held(&m.h, t);
    CHECK_EQ(m.mapped, 0);
    for (int i = 0; i < MAP_N; i++) {
        CHECK_EQ(m.errors[i], 0);
        CHECK_EQ(INT(m.results[i]), 3);
    }
    CHECK_EQ(plait_pool_destroy(m.pool), 0);
}

/* A group's wait: cancelled, it would cancel the children and wait for them. */
typedef struct {
    held h;
    atomic_int child_waited;
    int shield_in_child;
} group_wait;

static void *child_waits(void *arg)
{
    group_wait *g = arg;
    g->shield_in_child = plait_cancel_shield(0); /* not inherited */
    atomic_store(&g->h.waiting, 1);
    CHECK_EQ(plait_event_wait(g->h.go, SOON()), 0);
    atomic_store(&g->child_waited, 1);
    return NULL;
}

static void *shielded_group_wait(void *arg)
{
    group_wait *g = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    plait_group *group;
    CHECK_EQ(plait_group_create(&group), 0);
    CHECK_EQ(plait_group_spawn(group, NULL, child_waits, g), 0);
    g->h.shielded_wait = plait_group_wait(group, SOON());
    CHECK_EQ(plait_group_destroy(group), 0);
    lift(&g->h);
    return ARG(7);
}

static void *cancel_while_a_group_waits(void *unused)
{
    (void)unused;
    group_wait g;
    memset(&g, 0, sizeof g);
    held_init(&g.h);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, shielded_group_wait, &g), 0);
    while (!atomic_load(&g.h.waiting))
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_yield(), 0); /* the parent into its group wait */
    CHECK_EQ(plait_cancel(t), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(atomic_load(&g.child_waited), 0); /* the child was not cancelled */
    CHECK_EQ(plait_event_set(g.h.go), 0);
    check_held(&g.h, t);
    CHECK_EQ(atomic_load(&g.child_waited), 1);
    CHECK_EQ(g.shield_in_child, 0);
    return NULL;
}

TEST(a_shielded_group_wait_lets_its_children_finish)
{
    check_run(cancel_while_a_group_waits, NULL);
}

/* A cancelled group wait cancels the children and waits for them, but no longer than
 * its deadline: a child that does not end (shielded here, until its event) held the
 * wait past it, and a wait of a caller cancelled before it began (deadline 0: "do not
 * block") until the child's end. */
typedef struct {
    plait_group *group;
    plait_event *go;
    atomic_int child_done;
    int64_t deadline_in;
    int waited;
} cancelled_group;

static void *shielded_child(void *arg)
{
    cancelled_group *c = arg;
    CHECK_EQ(plait_cancel_shield(1), 0);
    CHECK_EQ(plait_event_wait(c->go, SOON()), 0);
    atomic_store(&c->child_done, 1);
    return NULL;
}

static void *group_waiter(void *arg)
{
    cancelled_group *c = arg;
    c->waited = plait_group_wait(c->group, c->deadline_in ? plait_deadline_in(c->deadline_in) : 0);
    return NULL;
}

static void *cancelled_group_wait_main(void *unused)
{
    (void)unused;
    cancelled_group c = {0};
    CHECK_EQ(plait_group_create(&c.group), 0);
    CHECK_EQ(plait_event_create(&c.go), 0);
    CHECK_EQ(plait_group_spawn(c.group, NULL, shielded_child, &c), 0);
    CHECK_EQ(plait_yield(), 0); /* the child into its wait */
    for (int started = 0; started < 2; started++) {
        c.deadline_in = started ? 100 * PLAIT_MS : 0;
        c.waited = 1;
        plait_task waiter;
        CHECK_EQ(plait_spawn(&waiter, group_waiter, &c), 0);
        if (started)
            CHECK_EQ(plait_yield(), 0); /* the waiter into its group wait */
        CHECK_EQ(plait_cancel(waiter), 0);
        CHECK_EQ(plait_join(waiter, NULL, SOON()), -ECANCELED);
        CHECK_EQ(c.waited, -ECANCELED);
        CHECK_EQ(atomic_load(&c.child_done), 0); /* back before the child's end */
    }
    CHECK_EQ(plait_event_set(c.go), 0);
    CHECK_EQ(plait_group_destroy(c.group), 0);
    CHECK_EQ(atomic_load(&c.child_done), 1);
    CHECK_EQ(plait_event_destroy(c.go), 0);
    return NULL;
}

TEST(a_cancelled_group_wait_keeps_its_deadline) { check_run(cancelled_group_wait_main, NULL); }

/* Tasks that put up and lift their shield in a loop while a thread cancels them at
 * moments of its choosing: a shielded wait never answers -ECANCELED, and no
 * cancellation is lost: a task whose cancellation was made before a round began must
 * end that round's unshielded wait with -ECANCELED (it ends there).  Coroutines on two
 * schedulers and plait threads, each round two waits that end by their deadline. */
enum { STRESS_SCHEDS = 2, STRESS_COROS = 4, STRESS_THREADS = 3,
       STRESS_TASKS = STRESS_SCHEDS * STRESS_COROS + STRESS_THREADS };

typedef struct stress stress;
typedef struct {
    stress *s;
    plait_task task;
    atomic_int cancel_made; /* plait_cancel has returned */
    atomic_int rounds;
    atomic_int failures;    /* a shielded wait cancelled, or a cancellation lost */
} stress_task;
struct stress {
    plait_sem *never; /* nobody posts */
    stress_task tasks[STRESS_TASKS];
    atomic_int handles; /* tasks whose handle is published */
};

static void *toggles(void *arg)
{
    stress_task *t = arg;
    for (;;) {
        bool made = atomic_load(&t->cancel_made);
        CHECK_EQ(plait_cancel_shield(1), 0);
        int r = plait_sem_acquire(t->s->never, plait_deadline_in(20 * PLAIT_US));
        if (r != -ETIMEDOUT)
            atomic_fetch_add(&t->failures, 1);
        CHECK_EQ(plait_cancel_shield(0), 1);
        r = plait_sem_acquire(t->s->never, plait_deadline_in(20 * PLAIT_US));
        atomic_fetch_add(&t->rounds, 1);
        if (r == -ECANCELED)
            return NULL;
        if (r != -ETIMEDOUT || made)
            atomic_fetch_add(&t->failures, 1);
        if (made)
            return NULL; /* (a failure: it would go round for ever) */
    }
}

typedef struct {
    stress *s;
    int first; /* its coroutines' first index in s->tasks */
} stress_sched;

static void *spawns_togglers(void *arg)
{
    stress_sched *ss = arg;
    for (int i = ss->first; i < ss->first + STRESS_COROS; i++) {
        CHECK_EQ(plait_spawn(&ss->s->tasks[i].task, toggles, &ss->s->tasks[i]), 0);
        atomic_fetch_add(&ss->s->handles, 1);
    }
    for (int i = ss->first; i < ss->first + STRESS_COROS; i++)
        CHECK_EQ(plait_join(ss->s->tasks[i].task, NULL, SOON()), -ECANCELED);
    return NULL;
}

TEST(shields_toggled_while_cancelled_lose_nothing)
{
    static stress s;
    memset(&s, 0, sizeof s);
    CHECK_EQ(plait_sem_create(&s.never, 0), 0);
    for (int i = 0; i < STRESS_TASKS; i++)
        s.tasks[i].s = &s;
    sched_thread st[STRESS_SCHEDS];
    stress_sched ss[STRESS_SCHEDS];
    for (int k = 0; k < STRESS_SCHEDS; k++) {
        ss[k] = (stress_sched){.s = &s, .first = k * STRESS_COROS};
        sched_thread_start(&st[k], spawns_togglers, &ss[k]);
    }
    for (int i = STRESS_SCHEDS * STRESS_COROS; i < STRESS_TASKS; i++) {
        CHECK_EQ(plait_thread_start(&s.tasks[i].task, toggles, &s.tasks[i], NULL), 0);
        atomic_fetch_add(&s.handles, 1);
    }
    while (atomic_load(&s.handles) < STRESS_TASKS)
        sched_yield();
    /* cancel each once it has gone round a few times, at staggered moments */
    uint64_t seed = 45;
    for (int i = 0; i < STRESS_TASKS; i++) {
        stress_task *t = &s.tasks[(i * 7) % STRESS_TASKS];
        int rounds = 3 + (int)(rnd(&seed) % 20);
        int64_t give_up = SOON();
        while (atomic_load(&t->rounds) < rounds && plait_now() < give_up)
            sched_yield();
        CHECK(atomic_load(&t->rounds) >= rounds);
        CHECK_EQ(plait_cancel(t->task), 0);
        atomic_store(&t->cancel_made, 1);
    }
    for (int k = 0; k < STRESS_SCHEDS; k++)
        sched_thread_join(&st[k]);
    for (int i = STRESS_SCHEDS * STRESS_COROS; i < STRESS_TASKS; i++)
        CHECK_EQ(plait_join(s.tasks[i].task, NULL, SOON()), -ECANCELED);
    for (int i = 0; i < STRESS_TASKS; i++)
        CHECK_EQ(atomic_load(&s.tasks[i].failures), 0);
    CHECK_EQ(plait_sem_destroy(s.never), 0);
}

/* A thread that nothing can cancel keeps the state, to no effect. */
TEST(a_plain_thread_keeps_the_state)
{
    CHECK_EQ(plait_cancel_shield(1), 0);
    CHECK_EQ(plait_cancel_shield(1), 1);
    CHECK_EQ(plait_cancel_shield(3), -EINVAL);
    CHECK_EQ(plait_cancelled(), 0);
    CHECK_EQ(plait_sleep_until(PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    CHECK_EQ(plait_cancel_shield(0), 1);
    CHECK_EQ(plait_cancel_shield(0), 0);
}

RUN_TESTS(CASE(a_shielded_coroutine_waits_through_its_cancellation),
          CASE(a_cancellation_that_came_first_is_held_by_the_shield),
          CASE(a_shielded_coroutine_of_another_scheduler_waits_through_its_cancellation),
          CASE(a_shielded_plait_thread_waits_through_its_cancellation),
          CASE(a_shielded_plait_thread_runs_a_scheduler_through_its_cancellation),
          CASE(a_shielded_plait_thread_reads_through_its_cancellation),
          CASE(a_shielded_coroutine_reads_through_its_cancellation),
          CASE(a_shielded_pool_task_joins_through_its_cancellation),
          CASE(a_shielded_pool_task_helps_through_its_cancellation),
          CASE(a_shielded_pool_task_maps_through_its_cancellation),
          CASE(a_shielded_group_wait_lets_its_children_finish),
          CASE(a_cancelled_group_wait_keeps_its_deadline),
          CASE(shields_toggled_while_cancelled_lose_nothing),
          CASE(a_plain_thread_keeps_the_state))
