/*
 * test_pool_inject.c — a pool's injection queue, the tasks submitted from outside its
 * workers (src/inject.h): on its own, first in first out across blocks, the spare
 * block and the blocks handed back; in a pool, a burst of several blocks while the
 * workers are busy, each task run once; and a block that cannot be allocated, which
 * fails that submit with -ENOMEM and loses nothing (plait__inject_block_new is
 * wrapped: tests/CMakeLists.txt).
 */
#include "helpers.h"

#include "../src/inject.h"

#include <sched.h>
#include <stdlib.h>

/* ---- the block allocation, made to fail on demand ---- */

plait__inject_block *__real_plait__inject_block_new(void);
plait__inject_block *__wrap_plait__inject_block_new(void);
static atomic_bool refuse_blocks;
static atomic_int blocks_made;

plait__inject_block *__wrap_plait__inject_block_new(void)
{
    if (atomic_load(&refuse_blocks))
        return NULL;
    atomic_fetch_add(&blocks_made, 1);
    return __real_plait__inject_block_new();
}

/* ---- the queue on its own ---- */

enum { BLOCK = PLAIT__INJECT_BLOCK, MANY = 5 * BLOCK };
static char slots[MANY];
#define ITEM(i) ((plait__future *)(void *)&slots[(i)])
#define INDEX(f) ((int)((char *)(void *)(f) - slots))

/* Push item i, with a fresh block where the queue has no room. */
static void push(plait__inject *q, int i)
{
    plait__inject_block *fresh = NULL;
    if (!plait__inject_room(q)) {
        fresh = plait__inject_block_new();
        CHECK(fresh != NULL);
    }
    plait__inject_push(q, ITEM(i), &fresh);
    CHECK(fresh == NULL); /* used: there was no room */
}

/* Free the dropped blocks; how many there were. */
static int free_dropped(plait__inject_block *dropped)
{
    int n = 0;
    for (plait__inject_block *b = dropped; b; b = b->next)
        n++;
    plait__inject_blocks_free(dropped);
    return n;
}

TEST(first_in_first_out_across_blocks)
{
    plait__inject q = {0};
    plait__future *out[70];
    plait__inject_block *dropped = NULL;
    CHECK(!plait__inject_room(&q)); /* no block yet */
    CHECK_EQ(plait__inject_take(&q, out, 64, &dropped), 0);
    /* pushes and takes of every size interleaved: the order stays that of the pushes */
    int pushed = 0, taken = 0;
    uint64_t seed = 7;
    while (taken < MANY) {
        int more = pushed < MANY ? (int)(rnd(&seed) % 100) : 0;
        for (int i = 0; i < more && pushed < MANY; i++)
            push(&q, pushed++);
        CHECK_EQ(atomic_load(&q.len), (size_t)(pushed - taken));
        size_t want = 1 + rnd(&seed) % 70;
        size_t got = plait__inject_take(&q, out, want, &dropped);
        CHECK_EQ(got, want < (size_t)(pushed - taken) ? want : (size_t)(pushed - taken));
        for (size_t i = 0; i < got; i++)
            CHECK_EQ(INDEX(out[i]), taken + (int)i);
        taken += (int)got;
    }
    CHECK_EQ(plait__inject_take(&q, out, 64, &dropped), 0);
    CHECK_EQ(atomic_load(&q.len), 0);
    free_dropped(dropped);
    plait__inject_free(&q);
}

TEST(emptied_blocks_kept_as_one_spare_the_rest_handed_back)
{
    plait__inject q = {0};
    plait__future *out[64];
    plait__inject_block *dropped = NULL;
    int made = atomic_load(&blocks_made);
    for (int i = 0; i < MANY; i++)
        push(&q, i);
    CHECK_EQ(atomic_load(&blocks_made) - made, 5);
    int taken = 0;
    while (taken < MANY) {
        size_t got = plait__inject_take(&q, out, 64, &dropped);
        CHECK(got > 0);
        taken += (int)got;
    }
    /* of the five blocks: the last stays (emptied), the first emptied is the spare,
     * the three others are the caller's to free */
    CHECK_EQ(free_dropped(dropped), 3);
    CHECK(q.spare != NULL);
    CHECK(q.first == q.last);
    /* the last block is filled again from its start, then the spare is used */
    made = atomic_load(&blocks_made);
    for (int i = 0; i < 2 * BLOCK; i++)
        push(&q, i);
    CHECK_EQ(atomic_load(&blocks_made), made);
    CHECK(q.spare == NULL);
    dropped = NULL;
    for (int i = 0; i < 2 * BLOCK; i += 64) {
        CHECK_EQ(plait__inject_take(&q, out, 64, &dropped), 64);
        CHECK_EQ(INDEX(out[0]), i);
    }
    CHECK(dropped == NULL); /* the one emptied block became the spare again */
    CHECK(q.spare != NULL);
    plait__inject_free(&q);
}

/* ---- in a pool ---- */

typedef struct gate {
    plait_event *started, *go;
} gate;

static void *wait_at_gate(void *arg)
{
    gate *g = arg;
    CHECK_EQ(plait_event_set(g->started), 0);
    CHECK_EQ(plait_event_wait(g->go, SOON()), 0);
    return g;
}

static atomic_int runs[MANY];

static void *count_run(void *arg)
{
    atomic_fetch_add(&runs[INT(arg)], 1);
    return arg;
}

static void gate_make(gate *g)
{
    CHECK_EQ(plait_event_create(&g->started), 0);
    CHECK_EQ(plait_event_create(&g->go), 0);
}

static void gate_destroy(gate *g)
{
    CHECK_EQ(plait_event_destroy(g->started), 0);
    CHECK_EQ(plait_event_destroy(g->go), 0);
}

/* A one-worker pool whose worker waits at the gate (its task: *blocker). */
static plait_pool *busy_pool(gate *g, plait_task *blocker)
{
    plait_pool *pool;
    plait_pool_options opt = {.threads = 1, .name = "inject"};
    CHECK_EQ(plait_pool_create(&pool, &opt), 0);
    gate_make(g);
    CHECK_EQ(plait_pool_submit(pool, blocker, wait_at_gate, g), 0);
    CHECK_EQ(plait_event_wait(g->started, SOON()), 0); /* the queue is empty again */
    return pool;
}

TEST(a_burst_of_several_blocks_each_task_runs_once)
{
    gate g;
    plait_task blocker, *tasks = calloc(MANY, sizeof *tasks);
    CHECK(tasks != NULL);
    plait_pool *pool = busy_pool(&g, &blocker);
    for (int i = 0; i < MANY; i++) {
        atomic_store(&runs[i], 0);
        CHECK_EQ(plait_pool_submit(pool, &tasks[i], count_run, ARG(i)), 0);
    }
    CHECK_EQ(plait_event_set(g.go), 0);
    void *r;
    CHECK_EQ(plait_join(blocker, &r, SOON()), 0);
    CHECK(r == &g);
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(plait_join(tasks[i], &r, SOON()), 0);
        CHECK_EQ(INT(r), i);
        CHECK_EQ(atomic_load(&runs[i]), 1);
    }
    CHECK_EQ(plait_pool_destroy(pool), 0);
    gate_destroy(&g);
    free(tasks);
}

TEST(a_block_that_cannot_be_had_fails_that_submit_and_loses_nothing)
{
    gate g;
    plait_task blocker, tasks[BLOCK + 1], refused;
    plait_pool *pool = busy_pool(&g, &blocker);
    /* the first block, emptied by the worker's take of the blocker, holds BLOCK */
    atomic_store(&refuse_blocks, true);
    for (int i = 0; i < BLOCK; i++) {
        atomic_store(&runs[i], 0);
        CHECK_EQ(plait_pool_submit(pool, &tasks[i], count_run, ARG(i)), 0);
    }
    CHECK_EQ(plait_pool_submit(pool, &refused, count_run, ARG(BLOCK)), -ENOMEM);
    CHECK_EQ(plait_join(refused, NULL, SOON()), -ESRCH); /* its handle is gone */
    atomic_store(&refuse_blocks, false);
    atomic_store(&runs[BLOCK], 0);
    CHECK_EQ(plait_pool_submit(pool, &tasks[BLOCK], count_run, ARG(BLOCK)), 0);
    CHECK_EQ(plait_event_set(g.go), 0);
    CHECK_EQ(plait_join(blocker, NULL, SOON()), 0);
    void *r;
    for (int i = 0; i <= BLOCK; i++) {
        CHECK_EQ(plait_join(tasks[i], &r, SOON()), 0);
        CHECK_EQ(INT(r), i);
        CHECK_EQ(atomic_load(&runs[i]), 1);
    }
    CHECK_EQ(plait_pool_destroy(pool), 0);
    gate_destroy(&g);
}

/* ---- many submitters against the workers ---- */

enum { SUBMITTERS = 6, PER_SUBMITTER = 1500 };

typedef struct stress {
    plait_pool *pool;
    atomic_int *runs;          /* per task: how many times it ran */
    atomic_int *last_seq;      /* per submitter: the last sequence number run (one worker) */
    atomic_int order_broken;
    atomic_bool go;
    atomic_int submitted;      /* accepted so far */
    int how;                   /* -1: no shutdown; else the shutdown races the submits */
} stress;

typedef struct submitter {
    stress *st;
    int index;
    plait_task tasks[PER_SUBMITTER];
    int results[PER_SUBMITTER]; /* the submit's return */
    pthread_t thread;
} submitter;

static stress *the_stress;

static void *stress_run(void *arg)
{
    stress *st = the_stress;
    int id = INT(arg), who = id / PER_SUBMITTER, seq = id % PER_SUBMITTER;
    atomic_fetch_add(&st->runs[id], 1);
    if (st->how >= 0) { /* a little work: the queue still holds blocks at the shutdown */
        int64_t until = plait_now() + 10 * 1000;
        while (plait_now() < until)
            plait__cpu_relax();
    }
    if (st->last_seq) {
        int before = atomic_exchange(&st->last_seq[who], seq);
        if (before >= seq)
            atomic_store(&st->order_broken, 1);
    }
    return arg;
}

static void *submit_many(void *arg)
{
    submitter *s = arg;
    uint64_t seed = (uint64_t)s->index + 1;
    while (!atomic_load(&s->st->go))
        plait__cpu_relax();
    for (int i = 0; i < PER_SUBMITTER; i++) {
        int id = s->index * PER_SUBMITTER + i;
        s->results[i] = plait_pool_submit(s->st->pool, &s->tasks[i], stress_run, ARG(id));
        if (s->results[i] == 0)
            atomic_fetch_add(&s->st->submitted, 1);
        if (s->st->how < 0)
            CHECK_EQ(s->results[i], 0);
        else
            CHECK(s->results[i] == 0 || s->results[i] == -EPIPE);
        if (rnd(&seed) % 256 == 0) /* let the queue drain now and then: blocks emptied */
            sched_yield();
    }
    return NULL;
}

/* SUBMITTERS threads submit at once to a pool of `threads` workers, across many
 * blocks; how >= 0: a shutdown of that kind races them.  Every accepted task runs at
 * most once (exactly once unless cancelled), and with one worker in submit order. */
static void many_submitters(unsigned threads, int how)
{
    stress st = {.how = how};
    the_stress = &st;
    st.runs = calloc(SUBMITTERS * PER_SUBMITTER, sizeof *st.runs);
    CHECK(st.runs != NULL);
    if (threads == 1) {
        st.last_seq = calloc(SUBMITTERS, sizeof *st.last_seq);
        CHECK(st.last_seq != NULL);
        for (int i = 0; i < SUBMITTERS; i++)
            atomic_store(&st.last_seq[i], -1);
    }
    plait_pool_options opt = {.threads = threads, .name = "inject-stress"};
    CHECK_EQ(plait_pool_create(&st.pool, &opt), 0);
    submitter *subs = calloc(SUBMITTERS, sizeof *subs);
    CHECK(subs != NULL);
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i].st = &st;
        subs[i].index = i;
        thread_start(&subs[i].thread, submit_many, &subs[i]);
    }
    atomic_store(&st.go, true);
    if (how >= 0) {
        /* once the queue has crossed a few blocks, while the submits go on */
        while (atomic_load(&st.submitted) < 3 * BLOCK)
            sched_yield();
        CHECK_EQ(plait_pool_shutdown(st.pool, how, SOON()), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++)
        thread_join(subs[i].thread);
    int accepted = 0, cancelled = 0;
    for (int i = 0; i < SUBMITTERS; i++)
        for (int j = 0; j < PER_SUBMITTER; j++) {
            int id = i * PER_SUBMITTER + j;
            void *r;
            if (subs[i].results[j] != 0) {
                /* refused: its handle is gone, or was never made */
                if (subs[i].tasks[j].future)
                    CHECK_EQ(plait_join(subs[i].tasks[j], &r, SOON()), -ESRCH);
                CHECK_EQ(atomic_load(&st.runs[id]), 0);
                continue;
            }
            int e = plait_join(subs[i].tasks[j], &r, SOON());
            accepted++;
            if (e == -ECANCELED && how == PLAIT_POOL_CANCEL) {
                cancelled++;
                CHECK(atomic_load(&st.runs[id]) <= 1);
                continue;
            }
            CHECK_EQ(e, 0);
            CHECK_EQ(INT(r), id);
            CHECK_EQ(atomic_load(&st.runs[id]), 1);
        }
    CHECK(accepted > 0);
    if (how != PLAIT_POOL_CANCEL)
        CHECK_EQ(cancelled, 0);
    CHECK_EQ(atomic_load(&st.order_broken), 0);
    CHECK_EQ(plait_pool_destroy(st.pool), 0);
    free(subs);
    free(st.runs);
    free(st.last_seq);
}

TEST(many_submitters_across_blocks_each_task_runs_once)
{
    many_submitters(3, -1);
}

TEST(many_submitters_one_worker_each_submitters_tasks_run_in_order)
{
    many_submitters(1, -1);
}

TEST(a_drain_racing_many_submitters_loses_no_accepted_task)
{
    many_submitters(3, PLAIT_POOL_DRAIN);
}

TEST(a_cancel_racing_many_submitters_completes_every_accepted_task)
{
    many_submitters(3, PLAIT_POOL_CANCEL);
}

RUN_TESTS(CASE(first_in_first_out_across_blocks),
          CASE(emptied_blocks_kept_as_one_spare_the_rest_handed_back),
          CASE(a_burst_of_several_blocks_each_task_runs_once),
          CASE(a_block_that_cannot_be_had_fails_that_submit_and_loses_nothing),
          CASE(many_submitters_across_blocks_each_task_runs_once),
          CASE(many_submitters_one_worker_each_submitters_tasks_run_in_order),
          CASE(a_drain_racing_many_submitters_loses_no_accepted_task),
          CASE(a_cancel_racing_many_submitters_completes_every_accepted_task))
