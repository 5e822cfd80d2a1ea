/*
 * test_small_stack_starts.c — the calls that start one of plait's threads, and those
 * that sort on the caller's stack, made from a coroutine on the smallest stack
 * (PLAIT_STACK_MIN), which holds plait's own frames
 * (plait.h).  pthread_create takes 2-4 KiB of glibc's frames, and naming another thread
 * (pthread_setname_np) formats a path with sprintf: made on the coroutine's stack, they
 * overflowed it — plait_thread_start answered -EINVAL after writing below its stack
 * (into the slot of the stack below, unseen), plait_to_thread crashed the program.
 * Each call runs in a child process of its own: a fresh one has none of the threads
 * made once per process (the default pool's workers, the process manager, the signal
 * dispatcher), and a crash is that case's failure.  Only an optimised build without a
 * sanitizer makes that promise; the binary is bound at load (-z now), so that the
 * dynamic linker's frames at a lazily bound first call are not what is measured.
 */
#include "fork_child.h"

#include <signal.h>

static void *seven(void *arg)
{
    (void)arg;
    return ARG(7);
}

static void *start_a_thread(void)
{
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_thread_start(&t, seven, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    return NULL;
}

static void *offload(void)
{
    void *v = NULL;
    CHECK_EQ(plait_to_thread(seven, NULL, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    return NULL;
}

static void *make_a_pool(void)
{
    plait_pool *pool;
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2}), 0);
    CHECK_EQ(plait_pool_submit(pool, &t, seven, NULL), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    return NULL;
}

/* body(), called with 640 bytes of the coroutine's own frame in use above it: the
 * calls below were found to run off the smallest stack from such a coroutine (a
 * review's). */
static void *with_640_bytes_in_use(void *(*body)(void))
{
    volatile char own[640];
    for (size_t i = 0; i < sizeof own; i += 64)
        own[i] = 1;
    void *r = body();
    own[0] = 2; /* in use until body returns */
    return r;
}

/* A pool of nine workers (8 MiB stacks: more than glibc's 40 MiB cache of ended
 * threads' stacks) destroyed: its joins free stacks through a call into the dynamic
 * linker bound at its first use, whose resolver ran on the coroutine's stack (SIGSEGV
 * with the binary bound at load too: the call is glibc's own). */
static void *destroy_nine_workers(void)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 9}), 0);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    return NULL;
}
static void *destroy_a_large_pool(void) { return with_640_bytes_in_use(destroy_nine_workers); }

/* A map over a pool: the map kept its job and its runners' handles on the stack (464
 * bytes), and a join's wait had room for eight tasks (816), for one. */
static void *map_forty(void)
{
    static void *args[40], *results[40];
    for (int i = 0; i < 40; i++)
        args[i] = ARG(i);
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2}), 0);
    CHECK_EQ(plait_pool_map(pool, seven, args, 40, results, NULL, SOON()), 0);
    CHECK_EQ(INT(results[39]), 7);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    return NULL;
}
static void *map_over_a_pool(void) { return with_640_bytes_in_use(map_forty); }

static ssize_t child_seven(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    return 0;
}

static void *start_a_process(void)
{
    plait_task t;
    CHECK_EQ(plait_process_start(&t, child_seven, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

static void *watch_a_signal(void)
{
    int sig = SIGUSR1;
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, &sig, 1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1);
    CHECK_EQ(plait_signals_destroy(w), 0);
    return NULL;
}

/* Sorts made on the caller's stack: wait_all's look for a handle given twice, a select
 * of more than 8 cases looking for its cases on one channel.  With glibc's qsort (up to
 * 1 KiB of alloca for fewer than 1 KiB of elements, and recursion), a wait for 110 tasks
 * or a select over 20 cases ran off the smallest stack (a review found it). */
enum { MANY_TASKS = 110, MANY_CASES = 20 };
static plait_task many_tasks[MANY_TASKS];
static void *many_results[MANY_TASKS];

static void *wait_for_many(void)
{
    for (int i = 0; i < MANY_TASKS; i++)
        CHECK_EQ(plait_spawn(&many_tasks[i], seven, NULL), 0);
    CHECK_EQ(plait_wait_all(many_tasks, MANY_TASKS, many_results, NULL, SOON()), 0);
    for (int i = 0; i < MANY_TASKS; i++)
        CHECK_EQ(INT(many_results[i]), 7);
    return NULL;
}

static plait_chan *many_chans[MANY_CASES / 2];
static plait_select_case many_cases[MANY_CASES];
static int many_elems[MANY_CASES];

static void *select_over_many(void)
{
    for (int i = 0; i < MANY_CASES / 2; i++)
        CHECK_EQ(plait_chan_create(&many_chans[i], sizeof(int), 0), 0);
    for (int i = 0; i < MANY_CASES; i++) /* two cases on each channel */
        many_cases[i] = (plait_select_case){.chan = many_chans[i % (MANY_CASES / 2)],
                                            .op = PLAIT_RECV, .elem = &many_elems[i]};
    CHECK_EQ(plait_select(many_cases, MANY_CASES, 0), -ETIMEDOUT); /* a poll: none ready */
    for (int i = 0; i < MANY_CASES / 2; i++)
        CHECK_EQ(plait_chan_destroy(many_chans[i]), 0);
    return NULL;
}

typedef void *(*starting_call)(void);
static starting_call the_call;

static void *on_a_small_stack(void *arg)
{
    (void)arg;
    return the_call();
}

static void *main_co(void *arg)
{
    plait_spawn_options o = {.name = "tiny", .stack_size = PLAIT_STACK_MIN};
    plait_task t;
    CHECK_EQ(plait_spawn_opts(&t, on_a_small_stack, arg, &o), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

static void in_a_fresh_process(starting_call call)
{
    if (CHECK_SANITIZED) {
        CHECK_SKIP("sanitizer frames need larger stacks than PLAIT_STACK_MIN");
        return;
    }
#ifndef __OPTIMIZE__ /* a Debug build's frames (scripts/test.sh coverage): they ran off */
    CHECK_SKIP("unoptimised frames need larger stacks than PLAIT_STACK_MIN");
    return;
#endif
    the_call = call;
    pid_t pid = fork_child(true);
    if (pid == 0) {
        check_run(main_co, NULL);
        child_exit();
    }
    reap_ok(pid, 30);
}

TEST(plait_thread_start_starts_a_thread) { in_a_fresh_process(start_a_thread); }
TEST(to_thread_makes_the_default_pool) { in_a_fresh_process(offload); }
TEST(pool_create) { in_a_fresh_process(make_a_pool); }
TEST(pool_destroy_of_many_workers) { in_a_fresh_process(destroy_a_large_pool); }
TEST(pool_map) { in_a_fresh_process(map_over_a_pool); }
TEST(process_start_makes_the_manager) { in_a_fresh_process(start_a_process); }
TEST(signals_create_makes_the_dispatcher) { in_a_fresh_process(watch_a_signal); }
TEST(wait_all_sorts_its_handles) { in_a_fresh_process(wait_for_many); }
TEST(a_large_select_sorts_its_cases) { in_a_fresh_process(select_over_many); }

RUN_TESTS(CASE(plait_thread_start_starts_a_thread), CASE(to_thread_makes_the_default_pool), CASE(pool_create),
          CASE(pool_destroy_of_many_workers), CASE(pool_map),
          CASE(process_start_makes_the_manager), CASE(signals_create_makes_the_dispatcher),
          CASE(wait_all_sorts_its_handles), CASE(a_large_select_sorts_its_cases))
