/*
 * test_api_edges.c — answers of the public API to bad or borderline input that
 * differed from what plait.h promises (review 114, a sweep of include/plait.h).
 *
 * plait_procpool_shutdown: plait.h says "0; -ETIMEDOUT when a task still runs at the
 * deadline".  On a pool with no task left (none queued, none running) the workers are
 * only exiting, yet a past deadline (0, as "do not block" is spelt) gave -ETIMEDOUT:
 * the call did not wait for the workers to notice the stop and end.  The thread pool
 * had the same answer and was made to wait for such workers (commit 1a3959f); the
 * process pool now does too.  A worker still in its initialiser is not only exiting:
 * a past deadline still gives -ETIMEDOUT then, at once.
 *
 * plait_procpool_map / imap: plait.h says "-EMSGSIZE when not even one item fits the
 * pool's room", the room being arg_max ("the largest argument") and result_max ("the
 * largest result").  But a chunk carries a header (32 bytes) before its items and the
 * items' codes (4 bytes each, padded to 16) before their results, in those same rooms:
 * a pool made for 8-byte arguments and results (arg_max = result_max = 8) could map
 * nothing, and one with items of arg_max bytes neither: -EMSGSIZE for items that fit.
 * A pool's slots now have that room beyond arg_max and result_max, for the map's
 * chunks only (a task submitted still gets arg_max and out_cap = result_max).
 *
 * plait_resolve (and plait_tcp_connect / plait_tcp_listen, which resolve): a coroutine
 * may ask for a stack of PLAIT_STACK_MIN (2 KiB), which holds "plait's own frames: a few
 * hundred bytes in an optimised build" (plait.h, API.md).  But plait_resolve ran
 * getaddrinfo (AI_NUMERICHOST) on the caller's stack for every host that plait_addr_ip
 * does not parse, a name included: over 2 KiB of glibc frames, and tcp_connect and
 * tcp_listen kept eight plait_addr (1 KiB) on it too.  A coroutine on a 2 KiB stack
 * that resolved "localhost" or "127.1" stopped the program ("stack overflow in
 * coroutine").  So did plait_addr_format and plait_strerror (a process's fate) on that
 * stack, which wrote their text with snprintf (some 2 KiB of glibc's frames).  Only an
 * optimised build without a sanitizer makes that promise, so the case runs there (a
 * sanitizer's frames are many times larger: API.md).
 */
#include "helpers.h"

#include <stdatomic.h>
#include <string.h>

static ssize_t nothing(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    return 0;
}

/* A process pool made with o whose worker has run a task (NULL if it could not be
 * made). */
static plait_procpool *pool_that_ran_a_task(const plait_procpool_options *o)
{
    plait_procpool *pool = NULL;
    CHECK_EQ(plait_procpool_create(&pool, o), 0);
    if (!pool)
        return NULL;
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, nothing, NULL, 0), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    free(v);
    return pool;
}

static void idle_pool_shutdown(int how, int64_t deadline)
{
    plait_procpool_options o = {.processes = 2};
    plait_procpool *pool = pool_that_ran_a_task(&o); /* idle now */
    if (!pool)
        return;
    CHECK_EQ(plait_procpool_shutdown(pool, how, deadline), 0);
    int pids[2];
    CHECK_EQ(plait_procpool_pids(pool, pids, 2), 0); /* the workers have ended */
    CHECK_EQ(plait_procpool_shutdown(pool, how, deadline), 0); /* again: done */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_idle_shutdown_with_a_past_deadline_returns_0)
{
    idle_pool_shutdown(PLAIT_POOL_DRAIN, 0);
    idle_pool_shutdown(PLAIT_POOL_DRAIN, INT64_MIN);
    idle_pool_shutdown(PLAIT_POOL_CANCEL, 0);
    idle_pool_shutdown(PLAIT_POOL_CANCEL, -1);
}

static void *idle_shutdown_main(void *arg)
{
    (void)arg;
    idle_pool_shutdown(PLAIT_POOL_DRAIN, 0);
    return NULL;
}

TEST(procpool_idle_shutdown_with_a_past_deadline_returns_0_from_a_coroutine)
{
    check_run(idle_shutdown_main, NULL);
}

/* A replacement worker (max_tasks 1) blocked in its initialiser: no task runs, but the
 * worker is not only exiting, so a past deadline still answers -ETIMEDOUT, at once. */
static plait_shm *inits;       /* int: initialisers begun, in every process */
static plait_psem *in_init;    /* released by an initialiser that then waits */
static plait_pevent *let_init; /* what such an initialiser waits for */

static int gated_init(void *arg)
{
    (void)arg;
    atomic_int *n = plait_shm_data(inits);
    if (atomic_fetch_add(n, 1) == 0)
        return 0; /* the first worker's, at create */
    plait_psem_release(in_init);
    return plait_pevent_wait(let_init, SOON()) == 0 ? 0 : -EIO;
}

TEST(procpool_shutdown_with_a_worker_in_its_initialiser_still_times_out)
{
    CHECK_EQ(plait_shm_create(&inits, sizeof(atomic_int)), 0);
    CHECK_EQ(plait_psem_create(&in_init, 0), 0);
    CHECK_EQ(plait_pevent_create(&let_init), 0);
    plait_procpool_options o = {.processes = 1, .max_tasks = 1, .init = gated_init};
    plait_procpool *pool = pool_that_ran_a_task(&o);
    if (!pool)
        return;
    CHECK_EQ(plait_psem_acquire(in_init, SOON()), 0); /* the replacement is in init */
    int64_t before = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, 0), -ETIMEDOUT);
    CHECK(plait_now() - before < 2 * PLAIT_SEC); /* it did not wait for the init */
    CHECK_EQ(plait_pevent_set(let_init), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_pevent_destroy(let_init), 0);
    CHECK_EQ(plait_psem_destroy(in_init), 0);
    CHECK_EQ(plait_shm_destroy(inits), 0);
}

static ssize_t cap_of(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len;
    uint64_t c = out_cap;
    if (out_cap < sizeof c)
        return -EMSGSIZE;
    memcpy(out, &c, sizeof c);
    return sizeof c;
}

TEST(procpool_map_of_items_as_large_as_the_rooms)
{
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 2, .arg_max = 8, .result_max = 8};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    int64_t in[9], out[9] = {0};
    int errors[9] = {0};
    for (int i = 0; i < 9; i++)
        in[i] = i + 1;
    CHECK_EQ(plait_procpool_map(pool, proc_square, in, sizeof in[0], 9, out, sizeof out[0], errors,
                                0, SOON()),
             0);
    for (int i = 0; i < 9; i++)
        CHECK(errors[i] == 0 && out[i] == (i + 1) * (i + 1));
    plait_procpool_iter *it = NULL;
    CHECK_EQ(plait_procpool_imap(&it, pool, proc_square, in, sizeof in[0], 9, sizeof out[0], 0,
                                 0),
             0);
    int seen = 0;
    size_t index;
    int64_t r;
    int error;
    while (it && plait_procpool_imap_next(it, &index, &r, &error, SOON()) == 0) {
        CHECK(index < 9 && error == 0 && r == in[index] * in[index]);
        seen++;
    }
    CHECK_EQ(seen, 9);
    if (it)
        CHECK_EQ(plait_procpool_imap_destroy(it), 0);
    /* what does not fit still does not */
    char nine[9] = {0};
    int64_t one;
    CHECK_EQ(plait_procpool_map(pool, proc_square, nine, sizeof nine, 1, &one, sizeof one, NULL, 0,
                                SOON()),
             -EMSGSIZE);
    CHECK_EQ(plait_procpool_map(pool, proc_square, in, sizeof in[0], 1, nine, sizeof nine, NULL, 0,
                                SOON()),
             -EMSGSIZE);
    /* a task submitted gets the room asked for, no more: arg_max and out_cap */
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, cap_of, nine, sizeof nine), -EMSGSIZE);
    CHECK_EQ(plait_procpool_submit(pool, &t, cap_of, in, sizeof in[0]), 0);
    plait_bytes *b = NULL;
    CHECK_EQ(plait_join(t, (void **)&b, SOON()), 0);
    uint64_t c = 0;
    if (b && b->len == sizeof c)
        memcpy(&c, b->data, sizeof c);
    CHECK_EQ(c, 8);
    free(b);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* plait.h: errors[i] gets each item's code and a failed item's result is zeroed.  A map
 * the pool refused as a whole (-EMSGSIZE here; -EPERM in a forked child, -ENOMEM) left
 * both arrays as they were, where the thread pool's map fills them: a caller that reads
 * the codes saw the garbage it had there. */
TEST(procpool_map_refused_whole_tells_every_item)
{
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 1, .arg_max = 8, .result_max = 8};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    char big[3][9] = {{0}};
    int64_t out[3] = {7, 7, 7};
    int errors[3] = {5, 5, 5};
    CHECK_EQ(plait_procpool_map(pool, proc_square, big, sizeof big[0], 3, out, sizeof out[0],
                                errors, 0, SOON()),
             -EMSGSIZE);
    for (int i = 0; i < 3; i++)
        CHECK(errors[i] == -EMSGSIZE && out[i] == 0);
    /* arrays the call cannot trust (-EINVAL) are not written */
    CHECK_EQ(plait_procpool_map(pool, NULL, big, sizeof big[0], 3, out, sizeof out[0],
                                errors, 0, SOON()),
             -EINVAL);
    CHECK_EQ(errors[0], -EMSGSIZE);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SMALL_STACK_PROMISED 1
#else
#define SMALL_STACK_PROMISED 0
#endif

static int closed_port; /* a port nothing listens on */

/* What a coroutine does with host names; 0 when all went as it should. */
static int resolve_names(void)
{
    plait_addr out[2];
    if (plait_resolve("127.1", 80, PLAIT_STREAM, out, 2, SOON()) != 1 ||
        plait_addr_port(&out[0]) != 80)
        return 1;
    if (plait_resolve("localhost", 80, PLAIT_STREAM, out, 2, SOON()) <= 0)
        return 2;
    int c = plait_tcp_connect("localhost", closed_port, SOON());
    if (c >= 0)
        plait_close(c);
    if (c >= 0 || c == -ETIMEDOUT || c == -ECANCELED) /* refused, whatever the address */
        return 3;
    int l = plait_tcp_listen("localhost", 0, 0);
    if (l < 0)
        return 4;
    plait_close(l);
    /* and the texts a coroutine that resolves and connects writes in its log */
    char text[PLAIT_ADDR_STRLEN];
    if (plait_addr_ip(&out[0], "127.0.0.1", 8080) != 0 ||
        plait_addr_format(&out[0], text, sizeof text) != 14 || strcmp(text, "127.0.0.1:8080"))
        return 5;
    if (plait_addr_ip(&out[0], "[fe80::1%1]", 80) != 0 ||
        plait_addr_format(&out[0], text, 8) != -ENOSPC ||
        plait_addr_format(&out[0], text, sizeof text) <= 0 || strncmp(text, "[fe80::1%", 9))
        return 6;
    if (plait_addr_unix(&out[0], "/tmp/x") != 0 ||
        plait_addr_format(&out[0], text, sizeof text) != 6)
        return 7;
    if (strcmp(plait_strerror(PLAIT_KILLED(9)),
               "the process was killed by signal 9 (SIGKILL: Killed)") ||
        strcmp(plait_strerror(PLAIT_EXITED(3)), "the process exited with status 3"))
        return 8;
    /* the names glibc formats (strsignal's and strerror's "%d" texts) */
    if (!strstr(plait_strerror(PLAIT_KILLED(SIGRTMIN + 1)), "(SIGRTMIN+1: Real-time signal 1)") ||
        !strstr(plait_strerror(PLAIT_KILLED(SIGRTMIN)), "(SIGRTMIN: Real-time signal 0)") ||
        !strstr(plait_strerror(PLAIT_KILLED(32)), "signal 32 (unknown signal)") ||
        strcmp(plait_strerror(-4000), "Unknown error 4000") ||
        strcmp(plait_strerror(EINVAL), "Invalid argument"))
        return 9;
    return 0;
}

static void *resolve_names_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)resolve_names();
}

static void *small_stack_main(void *arg)
{
    (void)arg;
    int l = plait_tcp_listen("127.0.0.1", 0, 0);
    CHECK(l >= 0);
    plait_addr a;
    CHECK_EQ(plait_local_addr(l, &a), 0);
    closed_port = plait_addr_port(&a);
    plait_close(l);
    /* on this stack first: every library function the calls use is bound (a lazily
     * bound one's first call takes some KiB of the caller's stack in the dynamic
     * linker, whoever calls it), the poller is made */
    CHECK_EQ(resolve_names(), 0);
    plait_spawn_options o = {.stack_size = PLAIT_STACK_MIN};
    plait_task t;
    CHECK_EQ(plait_spawn_opts(&t, resolve_names_task, NULL, &o), 0);
    void *r = (void *)1;
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    CHECK_EQ((int)(intptr_t)r, 0);
    return NULL;
}

TEST(resolve_on_the_smallest_stack)
{
    if (!SMALL_STACK_PROMISED) {
        CHECK_SKIP("a sanitizer or an unoptimised build has larger frames");
        return;
    }
    check_run(small_stack_main, NULL);
}

RUN_TESTS(CASE(procpool_idle_shutdown_with_a_past_deadline_returns_0),
          CASE(procpool_idle_shutdown_with_a_past_deadline_returns_0_from_a_coroutine),
          CASE(procpool_shutdown_with_a_worker_in_its_initialiser_still_times_out),
          CASE(procpool_map_of_items_as_large_as_the_rooms),
          CASE(procpool_map_refused_whole_tells_every_item),
          CASE(resolve_on_the_smallest_stack))
