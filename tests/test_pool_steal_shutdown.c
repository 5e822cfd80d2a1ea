/* test_pool_steal_shutdown.c — a review of the work-stealing pool's internals (src/pool.c,
 * src/deque.c, src/inject.c, src/fence.c): no task submitted is lost or run twice, and
 * every future completes (its result, or -ECANCELED).  Every task counts its runs in
 * an atomic; each case checks every count once the pool has stopped.  Stress is bounded
 * (a fixed number of tasks, seeded random shapes), and no case sleeps to let something
 * happen: waits are on flags, with deadlines that turn a hang into a failure. */
#include "helpers.h"
#include "refuse_syscall.h"

#include <stdlib.h>

/* ---- fork-join trees of random shape, inner tasks cancelled at random ---- */

enum { TREE_NODES_MAX = 20000, TREE_FANOUT = 4 };

typedef struct tree {
    plait_pool *pool;
    atomic_int next_id;
    atomic_int runs[TREE_NODES_MAX];
    atomic_int cancel_asked[TREE_NODES_MAX];
    atomic_int joined_ok[TREE_NODES_MAX];
    atomic_int submitted[TREE_NODES_MAX];
    int parent[TREE_NODES_MAX]; /* -1: a root; written before the node is submitted */
    int depth_max;
    int cancel_per_mille;
    atomic_int shutting; /* a cancelling shutdown has begun */
    int block; /* 1: some nodes block on a mutex-free wait (plait_sleep) while holding children */
} tree;

static tree *the_tree;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* arg: (id << 8) | depth */
static void *tree_node(void *p)
{
    tree *t = the_tree;
    intptr_t a = (intptr_t)p;
    int id = (int)(a >> 8), depth = (int)(a & 0xff);
    CHECK_EQ(atomic_fetch_add(&t->runs[id], 1), 0);
    uint64_t r = mix((uint64_t)id * 7919 + 17);
    int kids = depth >= t->depth_max ? 0 : (int)(r % (TREE_FANOUT + 1));
    plait_task child[TREE_FANOUT];
    int child_id[TREE_FANOUT];
    int n = 0;
    for (int i = 0; i < kids; i++) {
        int cid = atomic_fetch_add(&t->next_id, 1);
        if (cid >= TREE_NODES_MAX)
            break;
        child_id[n] = cid;
        t->parent[cid] = id;
        atomic_store(&t->submitted[cid], 1);
        int e = plait_pool_submit(t->pool, &child[n], tree_node,
                                  (void *)(((intptr_t)cid << 8) | (depth + 1)));
        CHECK_EQ(e, 0);
        if (e)
            continue;
        if (mix(r + (uint64_t)i) % 1000 < (uint64_t)t->cancel_per_mille) {
            atomic_store(&t->cancel_asked[cid], 1);
            CHECK_EQ(plait_cancel(child[n]), 0);
        }
        n++;
    }
    if (t->block && n && r % 16 == 0)
        plait_sleep(20 * 1000); /* blocks outside the pool, holding its children */
    intptr_t sum = 1;
    for (int i = n; i-- > 0;) {
        void *v = NULL;
        int e = plait_join(child[i], &v, SOON());
        if (e == 0) {
            atomic_store(&t->joined_ok[child_id[i]], 1);
            sum += (intptr_t)v;
        } else if (e == -ECANCELED && (plait_cancelled() || atomic_load(&t->shutting))) {
            /* this task itself was cancelled: its join gives up, the handle stays
             * (unless the child's own cancellation was what it took); or a cancelling
             * shutdown has begun, whose walk may reach this task after its worker saw
             * the flag and cancelled the child as it started */
            int d = plait_detach(child[i]);
            CHECK(d == 0 || d == -ESRCH);
        } else {
            CHECK_EQ(e, -ECANCELED);
            CHECK(atomic_load(&t->cancel_asked[child_id[i]]));
        }
    }
    return (void *)sum;
}

/* The nodes whose value reaches a root's joiner: each joined with success, as is every
 * node above it (a value is its node's count plus its children's joined values). */
static intptr_t nodes_summed(tree *t, int n)
{
    intptr_t count = 0;
    for (int id = 0; id < n; id++) {
        int up = id;
        while (up >= 0 && atomic_load(&t->joined_ok[up]))
            up = t->parent[up];
        count += up < 0;
    }
    return count;
}

static void check_tree(tree *t, int roots)
{
    int n = atomic_load(&t->next_id);
    if (n > TREE_NODES_MAX)
        n = TREE_NODES_MAX;
    int ran = 0;
    for (int id = 0; id < n; id++) {
        int runs = atomic_load(&t->runs[id]);
        CHECK(runs <= 1);
        if (!atomic_load(&t->submitted[id]))
            continue;
        if (atomic_load(&t->joined_ok[id]))
            CHECK_EQ(runs, 1);
        if (!atomic_load(&t->cancel_asked[id]) && runs != 1) {
            fprintf(stderr, "  node %d (of %d, roots %d) never ran and was not cancelled\n",
                    id, n, roots);
            CHECK_EQ(runs, 1);
        }
        ran += runs;
    }
    CHECK(ran > 0);
}

static void run_trees(unsigned threads, int depth, int cancel_per_mille, int block,
                      bool outside_cancel_shutdown)
{
    tree *t = calloc(1, sizeof *t);
    CHECK(t != NULL);
    the_tree = t;
    t->depth_max = depth;
    t->cancel_per_mille = cancel_per_mille;
    t->block = block;
    CHECK_EQ(plait_pool_create(&t->pool, &(plait_pool_options){.threads = threads,
                                                                 .name = "tree"}), 0);
    enum { ROOTS = 8 };
    plait_task root[ROOTS];
    int root_id[ROOTS];
    for (int i = 0; i < ROOTS; i++) {
        root_id[i] = atomic_fetch_add(&t->next_id, 1);
        t->parent[root_id[i]] = -1;
        atomic_store(&t->submitted[root_id[i]], 1);
        CHECK_EQ(plait_pool_submit(t->pool, &root[i], tree_node,
                                   (void *)((intptr_t)root_id[i] << 8)), 0);
    }
    if (outside_cancel_shutdown) {
        /* cancel the whole pool while the trees grow: running tasks are cancelled,
         * queued ones complete as cancelled; nothing may run twice, nothing be lost
         * (a node not cancelled by its parent still runs: its future is the join's) */
        while (atomic_load(&t->next_id) < 200)
            sched_yield();
        atomic_store(&t->shutting, 1);
        int r = plait_pool_shutdown(t->pool, PLAIT_POOL_CANCEL, SOON());
        CHECK_EQ(r, 0);
        for (int i = 0; i < ROOTS; i++) {
            int e = plait_join(root[i], NULL, SOON());
            CHECK(e == 0 || e == -ECANCELED);
        }
        CHECK_EQ(plait_pool_destroy(t->pool), 0);
        int n = atomic_load(&t->next_id);
        for (int id = 0; id < n && id < TREE_NODES_MAX; id++)
            CHECK(atomic_load(&t->runs[id]) <= 1);
    } else {
        intptr_t total = 0; /* what the roots' joins handed back */
        for (int i = 0; i < ROOTS; i++) {
            void *v = NULL;
            CHECK_EQ(plait_join(root[i], &v, SOON()), 0);
            atomic_store(&t->joined_ok[root_id[i]], 1);
            total += (intptr_t)v;
        }
        CHECK_EQ(plait_pool_shutdown(t->pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_pool_destroy(t->pool), 0);
        check_tree(t, ROOTS);
        int n = atomic_load(&t->next_id);
        CHECK_EQ(total, nodes_summed(t, n < TREE_NODES_MAX ? n : TREE_NODES_MAX));
    }
    free(t);
}

TEST(trees_one_worker) { run_trees(1, 6, 100, 0, false); }
TEST(trees_two_workers) { run_trees(2, 6, 100, 0, false); }
TEST(trees_two_workers_blocking) { run_trees(2, 6, 100, 1, false); }
TEST(trees_many_workers) { run_trees(32, 6, 150, 1, false); }
TEST(trees_cancelled_by_shutdown) { run_trees(4, 7, 50, 1, true); }
TEST(trees_one_worker_cancelled_by_shutdown) { run_trees(1, 7, 50, 0, true); }

/* ---- outside submitters racing a shutdown ---- */

enum { SUBMITTERS = 6, PER_SUBMITTER = 3000, SPAWNED_PER_TASK = 2 };

typedef struct racer {
    plait_pool *pool;
    atomic_int started;
    atomic_int count;          /* tasks submitted, all submitters */
    /* per task slot: runs; the children a task queues are slots of their own */
    atomic_int runs[SUBMITTERS * PER_SUBMITTER * (1 + SPAWNED_PER_TASK)];
    plait_task handle[SUBMITTERS * PER_SUBMITTER * (1 + SPAWNED_PER_TASK)];
    atomic_int have[SUBMITTERS * PER_SUBMITTER * (1 + SPAWNED_PER_TASK)];
} racer;

static racer *the_racer;

static void *race_child(void *p)
{
    int slot = INT(p);
    CHECK_EQ(atomic_fetch_add(&the_racer->runs[slot], 1), 0);
    return ARG(slot + 1);
}

static void *race_task(void *p)
{
    racer *rc = the_racer;
    int slot = INT(p);
    CHECK_EQ(atomic_fetch_add(&rc->runs[slot], 1), 0);
    int base = SUBMITTERS * PER_SUBMITTER + slot * SPAWNED_PER_TASK;
    for (int i = 0; i < SPAWNED_PER_TASK; i++) {
        /* a task of the pool queues tasks even once it is shut (plait.h) */
        int e = plait_pool_submit(rc->pool, &rc->handle[base + i], race_child, ARG(base + i));
        CHECK_EQ(e, 0);
        if (e == 0)
            atomic_store(&rc->have[base + i], 1);
    }
    return ARG(slot + 1);
}

static void *submitter(void *p)
{
    racer *rc = the_racer;
    int who = INT(p);
    atomic_fetch_add(&rc->started, 1);
    for (int i = 0; i < PER_SUBMITTER; i++) {
        int slot = who * PER_SUBMITTER + i;
        int e = plait_pool_submit(rc->pool, &rc->handle[slot], race_task, ARG(slot));
        if (e == -EPIPE)
            break;
        CHECK_EQ(e, 0);
        atomic_store(&rc->have[slot], 1);
        atomic_fetch_add(&rc->count, 1);
    }
    return NULL;
}

static void race_shutdown(unsigned threads, int how, int64_t deadline_ns)
{
    racer *rc = calloc(1, sizeof *rc);
    CHECK(rc != NULL);
    the_racer = rc;
    CHECK_EQ(plait_pool_create(&rc->pool, &(plait_pool_options){.threads = threads,
                                                                  .name = "race"}), 0);
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++)
        thread_start(&th[i], submitter, ARG(i));
    int64_t give_up = plait_deadline_in(10 * PLAIT_SEC);
    while (atomic_load(&rc->count) < 500 && plait_now() < give_up)
        sched_yield();
    int r = plait_pool_shutdown(rc->pool, how,
                                deadline_ns < 0 ? PLAIT_FOREVER : plait_deadline_in(deadline_ns));
    CHECK(r == 0 || r == -ETIMEDOUT);
    if (r == -ETIMEDOUT)
        CHECK_EQ(plait_pool_shutdown(rc->pool, how, SOON()), 0);
    for (int i = 0; i < SUBMITTERS; i++)
        thread_join(th[i]);
    CHECK_EQ(plait_pool_destroy(rc->pool), 0);
    int n = SUBMITTERS * PER_SUBMITTER * (1 + SPAWNED_PER_TASK);
    for (int slot = 0; slot < n; slot++) {
        int runs = atomic_load(&rc->runs[slot]);
        CHECK(runs <= 1);
        if (!atomic_load(&rc->have[slot])) {
            CHECK_EQ(runs, 0);
            continue;
        }
        void *v = NULL;
        int e = plait_join(rc->handle[slot], &v, 0);
        if (e == 0) {
            CHECK_EQ(runs, 1);
            CHECK_EQ(INT(v), slot + 1);
        } else {
            CHECK_EQ(e, -ECANCELED);
            CHECK(how == PLAIT_POOL_CANCEL);
        }
    }
    free(rc);
}

TEST(submitters_race_drain) { race_shutdown(4, PLAIT_POOL_DRAIN, -1); }
TEST(submitters_race_drain_short_deadline) { race_shutdown(3, PLAIT_POOL_DRAIN, 1000); }
TEST(submitters_race_cancel) { race_shutdown(4, PLAIT_POOL_CANCEL, -1); }
TEST(submitters_race_cancel_now) { race_shutdown(2, PLAIT_POOL_CANCEL, 0); }
TEST(submitters_race_cancel_one_worker) { race_shutdown(1, PLAIT_POOL_CANCEL, 0); }
TEST(submitters_race_cancel_many_workers) { race_shutdown(40, PLAIT_POOL_CANCEL, 1000); }

/* ---- a task that blocks, or computes, with its children in its private part ---- */

enum { HELD_KIDS = 40 };
static atomic_int held_ran;
static plait_pool *held_pool;
static plait_mutex *held_mutex;
static plait_chan *held_chan;

static void *held_child(void *p)
{
    (void)p;
    atomic_fetch_add(&held_ran, 1);
    return NULL;
}

/* how: 0 mutex, 1 channel, 2 computes (no plait call until its children have run) */
static void *held_parent(void *p)
{
    int how = INT(p);
    plait_task kid[HELD_KIDS];
    for (int i = 0; i < HELD_KIDS; i++)
        CHECK_EQ(plait_pool_submit(held_pool, &kid[i], held_child, NULL), 0);
    if (how == 0) {
        CHECK_EQ(plait_mutex_lock(held_mutex, SOON()), 0);
        CHECK_EQ(plait_mutex_unlock(held_mutex), 0);
    } else if (how == 1) {
        int x = 0;
        CHECK_EQ(plait_chan_recv(held_chan, &x, SOON()), 0);
    } else {
        int64_t give_up = plait_deadline_in(5 * PLAIT_SEC);
        while (atomic_load(&held_ran) < HELD_KIDS && plait_now() < give_up)
            ;
        CHECK_EQ(atomic_load(&held_ran), HELD_KIDS);
    }
    for (int i = 0; i < HELD_KIDS; i++)
        CHECK_EQ(plait_join(kid[i], NULL, SOON()), 0);
    return NULL;
}

static void held(unsigned threads, int how)
{
    atomic_store(&held_ran, 0);
    CHECK_EQ(plait_pool_create(&held_pool, &(plait_pool_options){.threads = threads,
                                                                   .name = "held"}), 0);
    CHECK_EQ(plait_mutex_create(&held_mutex), 0);
    CHECK_EQ(plait_chan_create(&held_chan, sizeof(int), 1), 0);
    CHECK_EQ(plait_mutex_lock(held_mutex, SOON()), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(held_pool, &t, held_parent, ARG(how)), 0);
    /* the children must run on the other workers while their parent is held */
    int64_t give_up = plait_deadline_in(5 * PLAIT_SEC);
    while (atomic_load(&held_ran) < HELD_KIDS && plait_now() < give_up)
        sched_yield();
    CHECK_EQ(atomic_load(&held_ran), HELD_KIDS);
    CHECK_EQ(plait_mutex_unlock(held_mutex), 0);
    int x = 1;
    CHECK_EQ(plait_chan_send(held_chan, &x, SOON()), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_shutdown(held_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(held_pool), 0);
    CHECK_EQ(plait_chan_destroy(held_chan), 0);
    CHECK_EQ(plait_mutex_destroy(held_mutex), 0);
}

TEST(held_by_mutex) { held(2, 0); }
TEST(held_by_chan) { held(3, 1); }
TEST(held_by_computing) { held(2, 2); }
TEST(held_by_computing_many) { held(16, 2); }

/* ---- a helping join past the stack-depth floor ---- */

static plait_pool *deep_pool;
static atomic_int deep_leaf_runs;

static void *deep_leaf(void *p)
{
    intptr_t n = (intptr_t)p;
    if (n < 2) {
        atomic_fetch_add(&deep_leaf_runs, 1);
        return p;
    }
    plait_task a, b;
    CHECK_EQ(plait_pool_submit(deep_pool, &a, deep_leaf, (void *)(n - 1)), 0);
    CHECK_EQ(plait_pool_submit(deep_pool, &b, deep_leaf, (void *)(n - 2)), 0);
    void *va = NULL, *vb = NULL;
    CHECK_EQ(plait_join(b, &vb, SOON()), 0);
    CHECK_EQ(plait_join(a, &va, SOON()), 0);
    return (void *)((intptr_t)va + (intptr_t)vb);
}

/* uses up the worker's stack (64 KiB a frame) until its help floor is behind it, then
 * forks and joins there */
static intptr_t deep_down(int frames)
{
    volatile char pad[64 * 1024];
    pad[0] = (char)frames;
    if (frames > 0)
        return deep_down(frames - 1) + pad[0] - (char)frames;
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(deep_pool, &t, deep_leaf, ARG(15)), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    return (intptr_t)v;
}

static void *deep_task(void *p)
{
    return (void *)deep_down(INT(p));
}

TEST(helping_past_the_floor)
{
    pthread_attr_t attr;
    size_t size = 0;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_getstacksize(&attr, &size), 0);
    pthread_attr_destroy(&attr);
    /* three quarters of the default stack less a margin: past the floor */
    int frames = (int)((size / 4 * 3 + size / 16) / (64 * 1024));
    if (frames * 64 * 1024 + 512 * 1024 > (int)size) {
        CHECK_SKIP("stack too small to go past the floor safely");
        return;
    }
    for (unsigned threads = 1; threads <= 4; threads += 3) {
        atomic_store(&deep_leaf_runs, 0);
        CHECK_EQ(plait_pool_create(&deep_pool, &(plait_pool_options){.threads = threads,
                                                                       .name = "deep"}), 0);
        enum { DEEP = 6 };
        plait_task t[DEEP];
        for (int i = 0; i < DEEP; i++)
            CHECK_EQ(plait_pool_submit(deep_pool, &t[i], deep_task, ARG(frames)), 0);
        for (int i = 0; i < DEEP; i++) {
            void *v = NULL;
            CHECK_EQ(plait_join(t[i], &v, SOON()), 0);
            CHECK_EQ(INT(v), 610); /* fib(15) */
        }
        CHECK_EQ(atomic_load(&deep_leaf_runs), DEEP * 987); /* leaves of fib(15)'s tree */
        CHECK_EQ(plait_pool_shutdown(deep_pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_pool_destroy(deep_pool), 0);
    }
}

/* ---- destroy racing the last task's completion ---- */

static atomic_int last_runs;

static void *last_task(void *p)
{
    atomic_fetch_add(&last_runs, 1);
    return p;
}

TEST(destroy_races_last_task)
{
    atomic_store(&last_runs, 0);
    for (int i = 0; i < 300; i++) {
        plait_pool *pool;
        CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1 + (unsigned)(i % 3),
                                                                  .name = "last"}), 0);
        plait_task t;
        CHECK_EQ(plait_pool_submit(pool, &t, last_task, ARG(i)), 0);
        if (i % 2)
            CHECK_EQ(plait_detach(t), 0);
        if (i % 4 == 1) {
            int r = plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, 0);
            CHECK(r == 0 || r == -ETIMEDOUT);
            r = plait_pool_destroy(pool);
            while (r == -EBUSY)
                r = plait_pool_destroy(pool);
            CHECK_EQ(r, 0);
        } else {
            CHECK_EQ(plait_pool_destroy(pool), 0);
        }
        if (i % 2 == 0) {
            void *v = NULL;
            CHECK_EQ(plait_join(t, &v, 0), 0);
            CHECK_EQ(INT(v), i);
        }
    }
    CHECK_EQ(atomic_load(&last_runs), 300);
}

/* ---- wait_any and completed sets over pool tasks being cancelled ---- */

enum { ANY_TASKS = 24 };
static plait_event *any_gate;
static atomic_int any_runs[ANY_TASKS];

static void *any_task(void *p)
{
    atomic_fetch_add(&any_runs[INT(p)], 1);
    int r = plait_event_wait(any_gate, SOON());
    return r == 0 ? ARG(INT(p) + 100) : PLAIT_FAIL(r);
}

TEST(wait_any_over_cancelled_pool_tasks)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 3, .name = "any"}), 0);
    CHECK_EQ(plait_event_create(&any_gate), 0);
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task t[ANY_TASKS];
    for (int i = 0; i < ANY_TASKS; i++) {
        atomic_store(&any_runs[i], 0);
        CHECK_EQ(plait_pool_submit(pool, &t[i], any_task, ARG(i)), 0);
    }
    /* half go to a completed set, the others wait for wait_any */
    for (int i = 0; i < ANY_TASKS; i += 2)
        CHECK_EQ(plait_completed_add(set, t[i]), 0);
    /* cancel every third (running, or still queued behind the three that block) */
    for (int i = 0; i < ANY_TASKS; i += 3)
        CHECK_EQ(plait_cancel(t[i]), 0);
    int outcomes = 0;
    for (int k = 0; k < ANY_TASKS / 2; k++) {
        plait_task got;
        int e = plait_completed_next(set, &got, SOON());
        CHECK_EQ(e, 0);
        if (e)
            break;
        int i = -1;
        for (int j = 0; j < ANY_TASKS; j += 2)
            if (t[j].future == got.future && t[j].generation == got.generation)
                i = j;
        CHECK(i >= 0 && i % 3 == 0); /* only the cancelled ones finish before the gate */
        if (i < 0)
            break;
        CHECK_EQ(plait_join(got, NULL, 0), -ECANCELED);
        t[i].future = NULL;
        outcomes++;
        if (outcomes == (ANY_TASKS / 2 + 2) / 3)
            break;
    }
    /* the odd ones: wait_any gives each cancelled one; then open the gate */
    plait_task odd[ANY_TASKS / 2];
    int odd_index[ANY_TASKS / 2], n_odd = 0;
    for (int i = 1; i < ANY_TASKS; i += 2) {
        odd[n_odd] = t[i];
        odd_index[n_odd++] = i;
    }
    int cancelled_odd = 0;
    for (int i = 1; i < ANY_TASKS; i += 2)
        cancelled_odd += i % 3 == 0;
    for (int k = 0; k < cancelled_odd; k++) {
        int j = plait_wait_any(odd, (size_t)n_odd, SOON());
        CHECK(j >= 0);
        if (j < 0)
            break;
        CHECK_EQ(odd_index[j] % 3, 0);
        CHECK_EQ(plait_join(odd[j], NULL, 0), -ECANCELED);
        t[odd_index[j]].future = NULL;
        odd[j] = odd[n_odd - 1];
        odd_index[j] = odd_index[n_odd - 1];
        n_odd--;
    }
    CHECK_EQ(plait_event_set(any_gate), 0);
    for (int i = 0; i < ANY_TASKS; i++) {
        if (!t[i].future)
            continue;
        void *v = NULL;
        int e = plait_join(t[i], &v, SOON());
        if (i % 3 == 0) {
            CHECK_EQ(e, -ECANCELED);
        } else {
            CHECK_EQ(e, 0);
            CHECK_EQ(INT(v), i + 100);
            CHECK_EQ(atomic_load(&any_runs[i]), 1);
        }
    }
    for (int i = 0; i < ANY_TASKS; i++)
        CHECK(atomic_load(&any_runs[i]) <= 1);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_event_destroy(any_gate), 0);
}

/* ---- wide fan-out: a deque grown past its first array, stolen and cancelled ---- */

enum { WIDE_MAX = 6000 };
static int WIDE = 3000; /* children a parent queues (at most WIDE_MAX) */
static plait_pool *wide_pool;
static atomic_int wide_runs[WIDE_MAX];
static atomic_int wide_release, wide_pushed, wide_holder_in;
static plait_task wide_kid[WIDE_MAX];

static void *wide_child(void *p)
{
    CHECK_EQ(atomic_fetch_add(&wide_runs[INT(p)], 1), 0);
    return ARG(INT(p) + 1);
}

static void *wide_holder(void *p)
{
    (void)p;
    atomic_store(&wide_holder_in, 1);
    while (!atomic_load(&wide_release))
        sched_yield();
    return NULL;
}

static void *wide_parent(void *p)
{
    int hold = INT(p);
    for (int i = 0; i < WIDE; i++)
        CHECK_EQ(plait_pool_submit(wide_pool, &wide_kid[i], wide_child, ARG(i)), 0);
    for (int i = 0; i < WIDE; i += 7)
        CHECK_EQ(plait_cancel(wide_kid[i]), 0);
    atomic_store(&wide_pushed, 1);
    if (hold) { /* computes, holding its deque, until the test lets it go */
        while (!atomic_load(&wide_release))
            sched_yield();
        return NULL; /* the test joins the children */
    }
    int ok = 0;
    for (int i = 0; i < WIDE; i++) {
        void *v = NULL;
        int e = plait_join(wide_kid[i], &v, SOON());
        if (e == 0) {
            CHECK_EQ(INT(v), i + 1);
            CHECK_EQ(atomic_load(&wide_runs[i]), 1);
            ok++;
        } else {
            CHECK_EQ(e, -ECANCELED);
            CHECK(i % 7 == 0);
        }
    }
    return ARG(ok);
}

/* Heavy fences made on this thread (plait__heavy_fence is wrapped: tests/CMakeLists.txt):
 * a cancelling shutdown's exposes of a held worker's private children.  One each held
 * a shutdown seconds past its deadline (50,000 children: 1.08 s past 10 ms; a review
 * found it); the shutdown now exposes a deque's private part at once. */
int __real_plait__heavy_fence(void);
int __wrap_plait__heavy_fence(void);
static _Thread_local int fences_here;
int __wrap_plait__heavy_fence(void)
{
    fences_here++;
    return __real_plait__heavy_fence();
}

static void wide(unsigned threads, int hold_and_cancel)
{
    for (int i = 0; i < WIDE; i++)
        atomic_store(&wide_runs[i], 0);
    atomic_store(&wide_release, 0);
    atomic_store(&wide_pushed, 0);
    atomic_store(&wide_holder_in, 0);
    CHECK_EQ(plait_pool_create(&wide_pool, &(plait_pool_options){.threads = threads,
                                                                   .name = "wide"}), 0);
    plait_task t, holder;
    void *v = NULL;
    if (hold_and_cancel) {
        /* every worker held (one by a task that only spins, one by the parent that
         * queued its children and computes): a cancelling shutdown completes every
         * queued child as cancelled itself, at once (plait.h), and nothing runs */
        CHECK_EQ(plait_pool_submit(wide_pool, &holder, wide_holder, NULL), 0);
        CHECK(wait_for_flag(&wide_holder_in));
        CHECK_EQ(plait_pool_submit(wide_pool, &t, wide_parent, ARG(1)), 0);
        CHECK(wait_for_flag(&wide_pushed));
        int fences_before = fences_here;
        CHECK_EQ(plait_pool_shutdown(wide_pool, PLAIT_POOL_CANCEL, 0), -ETIMEDOUT);
        /* the running tasks' walk, and an expose of each deque's private part (a few
         * more where an expose meets another's claim), not one per child (failed
         * first: 2,571 and 5,142 of the 3,000 and 6,000 children) */
        int fences = fences_here - fences_before;
        if (fences > 8)
            fprintf(stderr, "  the shutdown made %d heavy fences\n", fences);
        CHECK(fences <= 8);
        int pending = 0, ran = 0;
        for (int i = 0; i < WIDE; i++) {
            int r = plait_wait_any(&wide_kid[i], 1, 0);
            if (r != 0)
                pending++;
            ran += atomic_load(&wide_runs[i]);
        }
        CHECK_EQ(pending, 0);
        CHECK_EQ(ran, 0);
        atomic_store(&wide_release, 1);
        CHECK_EQ(plait_join(t, &v, SOON()), -ECANCELED);
        CHECK_EQ(plait_join(holder, &v, SOON()), -ECANCELED);
        for (int i = 0; i < WIDE; i++)
            CHECK_EQ(plait_join(wide_kid[i], NULL, SOON()), -ECANCELED);
    } else {
        CHECK_EQ(plait_pool_submit(wide_pool, &t, wide_parent, ARG(0)), 0);
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK(INT(v) >= WIDE - (WIDE + 6) / 7); /* some ran before their cancel */
    }
    CHECK_EQ(plait_pool_shutdown(wide_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(wide_pool), 0);
    for (int i = 0; i < WIDE; i++)
        CHECK(atomic_load(&wide_runs[i]) <= 1);
}

TEST(wide_one_worker) { wide(1, 0); }
TEST(wide_three_workers) { wide(3, 0); }
TEST(wide_held_and_cancelled) { wide(2, 1); }
/* more children than a shutdown past its deadline steals from one deque before it
 * looks at the deadline (STEALS_PAST_DEADLINE): still all completed at once */
TEST(wider_held_and_cancelled_now)
{
    WIDE = WIDE_MAX;
    wide(2, 1);
    WIDE = 3000;
}

/* ---- the same with membarrier refused once the pool runs (a forked child) ---- */

TEST(membarrier_refused_midway)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int failures_before = check_failures; /* the parent's, inherited */
        tree *t = calloc(1, sizeof *t);
        the_tree = t;
        t->depth_max = 6;
        t->cancel_per_mille = 100;
        t->block = 1;
        if (plait_pool_create(&t->pool, &(plait_pool_options){.threads = 3}) != 0)
            _exit(10);
        if (refuse_syscall_in_every_thread(SYS_membarrier) != 0)
            _exit(11);
        plait_task root[4];
        for (int i = 0; i < 4; i++) {
            int id = atomic_fetch_add(&t->next_id, 1);
            atomic_store(&t->submitted[id], 1);
            if (plait_pool_submit(t->pool, &root[i], tree_node, (void *)((intptr_t)id << 8)))
                _exit(12);
        }
        for (int i = 0; i < 4; i++) {
            if (plait_join(root[i], NULL, SOON()) != 0)
                _exit(13);
            atomic_store(&t->joined_ok[i], 1);
        }
        if (plait_pool_shutdown(t->pool, PLAIT_POOL_DRAIN, SOON()) != 0 ||
            plait_pool_destroy(t->pool) != 0)
            _exit(14);
        check_tree(t, 4);
        _exit(check_failures != failures_before ? 15 : 0);
    }
    int status = 0;
    CHECK_EQ(reap_within(pid, 30), 0);
    (void)status;
}

/* ---- a pool made after membarrier was refused, in a process that had registered ----
 *
 * fence.c registers once and remembered the answer: a pool made after a seccomp filter
 * refused membarrier (the process having made a pool before) took the heavy fence for
 * working, so its cancelling shutdown skipped the walk of the running chains (the fence
 * failing then) and left its running tasks to run on, where plait.h promises that they
 * are cancelled unless membarrier is refused after the pool was made. */

static plait_event *refused_gate;
static atomic_int refused_in;

static void *refused_blocker(void *p)
{
    (void)p;
    atomic_store(&refused_in, 1);
    return PLAIT_FAIL(plait_event_wait(refused_gate, PLAIT_FOREVER));
}

TEST(pool_made_after_membarrier_refused_cancels_running_tasks)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        plait_pool *pool;
        /* a first pool registers the process for membarrier */
        if (plait_pool_create(&pool, &(plait_pool_options){.threads = 2}) != 0 ||
            plait_pool_destroy(pool) != 0)
            _exit(10);
        if (refuse_syscall_in_every_thread(SYS_membarrier) != 0)
            _exit(11);
        if (plait_event_create(&refused_gate) != 0 ||
            plait_pool_create(&pool, &(plait_pool_options){.threads = 2}) != 0)
            _exit(12);
        plait_task t;
        if (plait_pool_submit(pool, &t, refused_blocker, NULL) != 0 ||
            !wait_for_flag(&refused_in))
            _exit(13);
        int r = plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, plait_deadline_in(3 * PLAIT_SEC));
        if (r != 0) {
            fprintf(stderr, "  shutdown: %d, the running task was not cancelled\n", r);
            plait_event_set(refused_gate);
            plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON());
            _exit(14);
        }
        if (plait_join(t, NULL, SOON()) != -ECANCELED)
            _exit(15);
        if (plait_pool_destroy(pool) != 0)
            _exit(16);
        _exit(0);
    }
    int status = reap_within(pid, 30);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- a cancelling shutdown where membarrier is refused since the pool was made, every
 * worker held, one of them with children queued.  plait.h said that queued tasks report
 * -ECANCELED at once (but on a one-worker pool's deque); the children that worker kept
 * private cannot be taken without the fence (this case failed: 2571 of 3000 pending),
 * and plait.h now says they complete when their worker comes back: they do, as
 * cancelled, and none runs. */

TEST(cancel_with_membarrier_refused_since_and_workers_held)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int failures_before = check_failures;
        for (int i = 0; i < WIDE; i++)
            atomic_store(&wide_runs[i], 0);
        atomic_store(&wide_release, 0);
        atomic_store(&wide_pushed, 0);
        atomic_store(&wide_holder_in, 0);
        if (plait_pool_create(&wide_pool, &(plait_pool_options){.threads = 2}) != 0)
            _exit(10);
        plait_task t, holder;
        if (plait_pool_submit(wide_pool, &holder, wide_holder, NULL) != 0 ||
            !wait_for_flag(&wide_holder_in) ||
            plait_pool_submit(wide_pool, &t, wide_parent, ARG(1)) != 0 ||
            !wait_for_flag(&wide_pushed))
            _exit(11);
        if (refuse_syscall_in_every_thread(SYS_membarrier) != 0)
            _exit(12);
        if (plait_pool_shutdown(wide_pool, PLAIT_POOL_CANCEL, 0) != -ETIMEDOUT)
            _exit(13);
        atomic_store(&wide_release, 1); /* the parent returns; its worker takes them */
        for (int i = 0; i < WIDE; i++)
            if (plait_join(wide_kid[i], NULL, SOON()) != -ECANCELED ||
                atomic_load(&wide_runs[i]) != 0)
                _exit(14);
        /* the running ones: left to finish, or cancelled where membarrier was refused
         * before the pool was made too (under tests/without_membarrier) */
        int rt = plait_join(t, NULL, SOON()), rh = plait_join(holder, NULL, SOON());
        if ((rt != 0 && rt != -ECANCELED) || (rh != 0 && rh != -ECANCELED) ||
            plait_pool_shutdown(wide_pool, PLAIT_POOL_DRAIN, SOON()) != 0 ||
            plait_pool_destroy(wide_pool) != 0)
            _exit(15);
        _exit(check_failures != failures_before ? 16 : 0);
    }
    int status = reap_within(pid, 30);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- a cancelling shutdown racing an idle worker that exposes and steals the same
 * held worker's children: the shutdown's steals lost a race (or found the other thief
 * exposing) and gave the deque up, leaving thousands of queued children pending after
 * it returned (2 rounds in 20 here), to be exposed one at a time.  By chance, so 20
 * rounds; what it asserts holds in every round. */

static atomic_int idle_thief_kid_ran;

static void *idle_thief_child(void *p)
{
    atomic_fetch_add(&wide_runs[INT(p)], 1);
    atomic_store(&idle_thief_kid_ran, 1);
    return NULL;
}

static void *idle_thief_parent(void *p)
{
    (void)p;
    for (int i = 0; i < WIDE_MAX; i++)
        CHECK_EQ(plait_pool_submit(wide_pool, &wide_kid[i], idle_thief_child, ARG(i)), 0);
    atomic_store(&wide_pushed, 1);
    while (!atomic_load(&wide_release))
        sched_yield();
    return NULL;
}

TEST(cancel_races_an_idle_thief)
{
    int rounds_pending = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < WIDE_MAX; i++)
            atomic_store(&wide_runs[i], 0);
        atomic_store(&wide_release, 0);
        atomic_store(&wide_pushed, 0);
        atomic_store(&wide_holder_in, 0);
        atomic_store(&idle_thief_kid_ran, 0);
        CHECK_EQ(plait_pool_create(&wide_pool, &(plait_pool_options){.threads = 3,
                                                                       .name = "thief"}), 0);
        plait_task t, holder;
        CHECK_EQ(plait_pool_submit(wide_pool, &holder, wide_holder, NULL), 0);
        CHECK(wait_for_flag(&wide_holder_in));
        CHECK_EQ(plait_pool_submit(wide_pool, &t, idle_thief_parent, NULL), 0);
        CHECK(wait_for_flag(&wide_pushed));
        CHECK(wait_for_flag(&idle_thief_kid_ran)); /* the third worker is at them */
        CHECK_EQ(plait_pool_shutdown(wide_pool, PLAIT_POOL_CANCEL, 0), -ETIMEDOUT);
        /* one child may be in the idle thief's hands (taken before the shutdown's walk,
         * being run or about to be: a moment's preemption there, under a sanitizer
         * beside other suites, kept it unfinished); the defect left thousands */
        int pending = 0;
        for (int i = 0; i < WIDE_MAX; i++)
            pending += plait_wait_any(&wide_kid[i], 1, 0) != 0;
        if (pending > 1) {
            fprintf(stderr, "  round %d: %d queued children pending\n", round, pending);
            rounds_pending++;
        }
        atomic_store(&wide_release, 1);
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
        CHECK_EQ(plait_join(holder, NULL, SOON()), -ECANCELED);
        for (int i = 0; i < WIDE_MAX; i++) {
            int e = plait_join(wide_kid[i], NULL, SOON());
            CHECK(e == 0 ? atomic_load(&wide_runs[i]) == 1 : e == -ECANCELED);
            CHECK(atomic_load(&wide_runs[i]) <= 1);
        }
        CHECK_EQ(plait_pool_shutdown(wide_pool, PLAIT_POOL_DRAIN, SOON()), 0);
        CHECK_EQ(plait_pool_destroy(wide_pool), 0);
    }
    CHECK_EQ(rounds_pending, 0);
}

RUN_TESTS(CASE(trees_one_worker), CASE(trees_two_workers), CASE(trees_two_workers_blocking),
          CASE(trees_many_workers), CASE(trees_cancelled_by_shutdown),
          CASE(trees_one_worker_cancelled_by_shutdown), CASE(submitters_race_drain),
          CASE(submitters_race_drain_short_deadline), CASE(submitters_race_cancel),
          CASE(submitters_race_cancel_now), CASE(submitters_race_cancel_one_worker),
          CASE(submitters_race_cancel_many_workers), CASE(held_by_mutex), CASE(held_by_chan),
          CASE(held_by_computing), CASE(held_by_computing_many), CASE(helping_past_the_floor),
          CASE(destroy_races_last_task), CASE(wait_any_over_cancelled_pool_tasks),
          CASE(wide_one_worker), CASE(wide_three_workers), CASE(wide_held_and_cancelled),
          CASE(wider_held_and_cancelled_now),
          CASE(membarrier_refused_midway),
          CASE(pool_made_after_membarrier_refused_cancels_running_tasks),
          CASE(cancel_with_membarrier_refused_since_and_workers_held),
          CASE(cancel_races_an_idle_thief))
