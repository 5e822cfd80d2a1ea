/*
 * test_procpool_refork.c — a process pool whose worker died while no replacement could
 * be forked (a process limit reached for a moment): what waited fails with -EAGAIN
 * (nothing would run it), submit says -EAGAIN, and the pool tries the fork again every
 * 50 ms until it can; then it runs tasks as before.  A pool destroyed meanwhile stops
 * trying.  (plait.h promised this; no test ran it.)
 * plait__fork_child, by which the pool forks its workers, is wrapped (-Wl,--wrap) to
 * refuse forks while the test says so, as fork() does at RLIMIT_NPROC.
 */
#include "helpers.h"
#include "../src/internal.h" /* plait__fork_spec */

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

static atomic_int refusing, refused;
static plait_event *refused_twice; /* set at the second refusal: the retry ran */

int __real_plait__fork_child(const plait__fork_spec *spec, pid_t *pid);
int __wrap_plait__fork_child(const plait__fork_spec *spec, pid_t *pid);
/* a_replacement_with_the_pid_of_the_one_it_replaces: forks told of a worker reaped
 * elsewhere (spec->gone) ask the kernel for that pid, and say whether they got it */
static atomic_int reusing, reused;
static void ask_for_pid(pid_t pid)
{
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f) {
        fprintf(f, "%d", (int)pid - 1);
        fclose(f);
    }
}

int __wrap_plait__fork_child(const plait__fork_spec *spec, pid_t *pid)
{
    if (atomic_load(&reusing) && spec->gone) {
        ask_for_pid(spec->gone);
        int r = __real_plait__fork_child(spec, pid);
        if (r == 0 && *pid == spec->gone)
            atomic_store(&reused, 1);
        return r;
    }
    if (!atomic_load(&refusing))
        return __real_plait__fork_child(spec, pid);
    if (spec->gone) /* as a fork that fails tells of it */
        plait__shared_child_died((unsigned)spec->gone);
    if (atomic_fetch_add(&refused, 1) + 1 == 2)
        plait_event_set(refused_twice);
    return -EAGAIN;
}

/* Shared with the pool's workers (mapped before they are forked): the worker dies only
 * once the task behind it is queued.  It died first once (AddressSanitizer, in CI): the
 * second submit then met a pool with no worker and said -EAGAIN itself. */
static atomic_int *queued_behind;

static ssize_t die(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    int64_t until = SOON();
    while (!atomic_load(queued_behind) && plait_now() < until)
        sched_yield();
    raise(SIGKILL);
    return 0;
}

static ssize_t echo(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    if (arg_len > out_cap)
        return -EMSGSIZE;
    memcpy(out, arg, arg_len);
    return (ssize_t)arg_len;
}

/* One worker, then forks refused: a task kills the worker, and the one queued behind
 * it fails with -EAGAIN. */
static plait_procpool *starved_pool(void)
{
    atomic_store(&refused, 0);
    CHECK_EQ(plait_event_create(&refused_twice), 0);
    queued_behind = mmap(NULL, sizeof *queued_behind, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(queued_behind != MAP_FAILED);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}), 0);
    atomic_store(&refusing, 1);
    plait_task dying, queued;
    CHECK_EQ(plait_procpool_submit(pool, &dying, die, NULL, 0), 0);
    CHECK_EQ(plait_procpool_submit(pool, &queued, echo, "q", 1), 0);
    atomic_store(queued_behind, 1);
    CHECK_EQ(plait_join(dying, NULL, SOON()), PLAIT_KILLED(SIGKILL));
    CHECK_EQ(plait_join(queued, NULL, SOON()), -EAGAIN);
    return pool;
}

static void starved_pool_done(plait_procpool *pool)
{
    atomic_store(&refusing, 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_event_destroy(refused_twice), 0);
    CHECK_EQ(munmap(queued_behind, sizeof *queued_behind), 0);
}

TEST(a_replacement_forked_later_runs_tasks)
{
    plait_procpool *pool = starved_pool();
    CHECK_EQ(plait_procpool_submit(pool, NULL, echo, "x", 1), -EAGAIN);
    CHECK_EQ(plait_event_wait(refused_twice, SOON()), 0); /* the pool tried again */
    atomic_store(&refusing, 0);
    /* until the next try, 50 ms on, submit still says -EAGAIN */
    int r;
    plait_task task;
    int64_t give_up = SOON();
    while ((r = plait_procpool_submit(pool, &task, echo, "hello", 5)) == -EAGAIN &&
           plait_now() < give_up)
        plait_sleep(PLAIT_MS);
    CHECK_EQ(r, 0);
    plait_bytes *result = NULL;
    CHECK_EQ(plait_join(task, (void **)&result, SOON()), 0);
    CHECK(result && result->len == 5 && memcmp(result->data, "hello", 5) == 0);
    free(result);
    int pids[2];
    CHECK_EQ(plait_procpool_pids(pool, pids, 2), 1);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    starved_pool_done(pool);
}

TEST(a_pool_destroyed_while_it_retries)
{
    plait_procpool *pool = starved_pool();
    CHECK_EQ(plait_event_wait(refused_twice, SOON()), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    starved_pool_done(pool); /* (ASan: the retry's timer goes with it) */
}

/* A worker that the kernel reaps (SIGCHLD ignored) frees its pid at once, and the
 * replacement the pool forks may get it.  The shared objects must then hear of the
 * death before the birth: told after (the order for any other pid), the death would
 * take the new worker off a queue's senders, and its receiver would hear that every
 * sender is gone while the pool lives.  The replacement is given the pid through
 * ns_last_pid (root only; another process forking in the moment between takes it, so a
 * few rounds are tried). */
static plait_queue *sent;
static ssize_t send_one(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)out, (void)out_cap;
    return plait_queue_send(sent, arg, arg_len, SOON());
}

TEST(a_replacement_with_the_pid_of_the_one_it_replaces)
{
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ignore, &old);
    CHECK_EQ(plait_queue_create(&sent, sizeof(int), 4), 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1,
                                                                     .max_tasks = 1}), 0);
    atomic_store(&reused, 0);
    atomic_store(&reusing, 1);
    int v = 0;
    for (int round = 0; round < 5 && !atomic_load(&reused); round++) {
        int before = 0, now = 0;
        CHECK_EQ(plait_procpool_pids(pool, &before, 1), 1);
        plait_task t;
        CHECK_EQ(plait_procpool_submit(pool, &t, send_one, &round, sizeof round), 0);
        CHECK_EQ(plait_queue_recv(sent, &v, sizeof v, SOON()), (ssize_t)sizeof v);
        CHECK_EQ(v, round);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        /* until the replacement is there (the worker ends after its one task) */
        for (int64_t give_up = SOON();
             plait_procpool_pids(pool, &now, 1) != 1 || now == before;) {
            if (atomic_load(&reused) && now == before)
                break; /* the replacement has the old pid */
            if (plait_now() > give_up) {
                CHECK(!"no replacement");
                break;
            }
            plait_sleep(PLAIT_MS);
        }
    }
    atomic_store(&reusing, 0);
    if (!atomic_load(&reused)) {
        CHECK_SKIP("the replacement never had its pid (ns_last_pid refused: not root?)");
    } else {
        /* the replacement is a sender: a receive waits (none is sent yet) */
        CHECK_EQ(plait_queue_recv(sent, &v, sizeof v, 0), -ETIMEDOUT);
        int last = 99;
        plait_task t;
        CHECK_EQ(plait_procpool_submit(pool, &t, send_one, &last, sizeof last), 0);
        CHECK_EQ(plait_queue_recv(sent, &v, sizeof v, SOON()), (ssize_t)sizeof v);
        CHECK_EQ(v, last);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    }
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_queue_recv(sent, &v, sizeof v, SOON()), -EPIPE); /* now they are gone */
    CHECK_EQ(plait_queue_destroy(sent), 0);
    sigaction(SIGCHLD, &old, NULL);
}

RUN_TESTS(CASE(a_replacement_forked_later_runs_tasks), CASE(a_pool_destroyed_while_it_retries),
          CASE(a_replacement_with_the_pid_of_the_one_it_replaces))
