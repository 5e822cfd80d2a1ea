/*
 * test_future_cache.c — the per-thread caches of free futures take from the global
 * list in batches of at most 64 (src/future.c): a thread that makes one future does
 * not keep a whole chunk of 256, nor a whole cache another thread gave back as it
 * ended.  Chunks of futures are counted as they are made: calloc is wrapped
 * (tests/CMakeLists.txt) and counts the calls of a chunk's size.
 */
#include "helpers.h"

#include "../src/internal.h"

#include <stdlib.h>

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
static atomic_int chunks_made;

/* future.c's chunk: a link and 256 futures */
#define CHUNK_SIZE (sizeof(void *) + 256 * sizeof(plait__future))

void *__wrap_calloc(size_t n, size_t size)
{
    if (n == 1 && size == CHUNK_SIZE)
        atomic_fetch_add(&chunks_made, 1);
    return __real_calloc(n, size);
}

enum { THREADS = 16, MANY = 1000 };
static plait_pool *pool;
static pthread_barrier_t made, leave;

static void *noop(void *arg) { return arg; }

/* Make one future (a pool task, joined), then stay until told to leave. */
static void *one_future(void *arg)
{
    (void)arg;
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, noop, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    pthread_barrier_wait(&made);
    pthread_barrier_wait(&leave);
    return NULL;
}

/* Fill the cache with MANY futures and end: the cache goes back as the thread ends. */
static void *many_futures(void *arg)
{
    (void)arg;
    static plait_task t[MANY];
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(plait_pool_submit(pool, &t[i], noop, NULL), 0);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

/* A pool, and every free future taken, whatever earlier cases left: the main thread
 * submits tasks, held until pool_done joins them, until two chunks have been made
 * (the first is made only once nothing is free).  What a case's threads then take is
 * what they find in batches the case itself made. */
enum { DRAIN_MAX = 1 << 20 };
static plait_task *drained;
static int drained_n;

static void make_pool(void)
{
    plait_pool_options opt = {.threads = 1, .name = "cache"};
    CHECK_EQ(plait_pool_create(&pool, &opt), 0);
    drained = malloc(DRAIN_MAX * sizeof *drained);
    CHECK(drained != NULL);
    int until = atomic_load(&chunks_made) + 2;
    for (drained_n = 0; drained_n < DRAIN_MAX && atomic_load(&chunks_made) < until; drained_n++)
        CHECK_EQ(plait_pool_submit(pool, &drained[drained_n], noop, NULL), 0);
    CHECK(drained_n < DRAIN_MAX);
}

static void pool_done(void)
{
    for (int i = 0; i < drained_n; i++)
        CHECK_EQ(plait_join(drained[i], NULL, SOON()), 0);
    free(drained);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

TEST(threads_that_make_one_future_each_keep_no_whole_chunk)
{
    make_pool();
    pthread_t th[THREADS];
    CHECK_EQ(pthread_barrier_init(&made, NULL, THREADS + 1), 0);
    CHECK_EQ(pthread_barrier_init(&leave, NULL, THREADS + 1), 0);
    int before = atomic_load(&chunks_made);
    for (int i = 0; i < THREADS; i++)
        thread_start(&th[i], one_future, NULL);
    pthread_barrier_wait(&made);
    /* 64 each at most: THREADS * 64 / 256 chunks, and one for what was free before
     * (a whole chunk each was THREADS chunks) */
    int made_now = atomic_load(&chunks_made) - before;
    CHECK(made_now <= THREADS * 64 / 256 + 1);
    pthread_barrier_wait(&leave);
    for (int i = 0; i < THREADS; i++)
        thread_join(th[i]);
    CHECK_EQ(pthread_barrier_destroy(&made), 0);
    CHECK_EQ(pthread_barrier_destroy(&leave), 0);
    pool_done();
}

TEST(a_cache_given_back_is_shared_out_in_batches)
{
    make_pool();
    pthread_t big, one;
    thread_start(&big, many_futures, NULL);
    thread_join(big); /* its cache of about MANY went back as it ended */
    CHECK_EQ(pthread_barrier_init(&made, NULL, 2), 0);
    CHECK_EQ(pthread_barrier_init(&leave, NULL, 2), 0);
    thread_start(&one, one_future, NULL);
    pthread_barrier_wait(&made);
    /* one thread holds one future and its batch; the rest of the MANY given back are
     * free to take (a whole cache taken at once: four new chunks) */
    int before = atomic_load(&chunks_made);
    static plait_task held[MANY];
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(plait_pool_submit(pool, &held[i], noop, NULL), 0);
    CHECK(atomic_load(&chunks_made) - before <= 1);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(plait_join(held[i], NULL, SOON()), 0);
    pthread_barrier_wait(&leave);
    thread_join(one);
    CHECK_EQ(pthread_barrier_destroy(&made), 0);
    CHECK_EQ(pthread_barrier_destroy(&leave), 0);
    pool_done();
}

RUN_TESTS(CASE(threads_that_make_one_future_each_keep_no_whole_chunk),
          CASE(a_cache_given_back_is_shared_out_in_batches))
