/* test_resolve_in_a_task.c — plait_resolve called from a pool task meets its deadline:
 * plait.h gives its lookup a thread of its own there ("the task's join would run it in
 * place, past the deadline"), but the join for that thread still ran other queued
 * tasks of the pool while it waited, and returned only when such a task did: a 50 ms
 * deadline became the queued task's whole run (session 42's signals/files/resolve
 * audit; failed before the fix: the queued task started inside the resolve).
 *
 * Built with -Wl,--wrap=getaddrinfo: the lookup blocks until the test lets it go (and
 * then answers "no such name" without asking any name service), so
 * the resolve can only end by its deadline; the task queued behind the caller blocks
 * until the test lets it go too, and notes whether it started before the resolve
 * returned. */
#include "helpers.h"

#include <netdb.h>
#include <sched.h>

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

static atomic_int release_lookup, release_queued;
static atomic_int queued_started, resolve_returned, queued_started_first;

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    (void)node, (void)service, (void)hints, (void)res;
    while (!atomic_load(&release_lookup))
        sched_yield();
    return EAI_NONAME; /* no name service asked: the answer does not matter here */
}

static void *queued_task(void *unused)
{
    (void)unused;
    atomic_store(&queued_started_first, !atomic_load(&resolve_returned));
    atomic_store(&queued_started, 1);
    while (!atomic_load(&release_queued))
        sched_yield();
    return NULL;
}

static plait_pool *pool;
static int resolve_r;

static void *resolves(void *unused)
{
    (void)unused;
    plait_task queued;
    CHECK_EQ(plait_pool_submit(pool, &queued, queued_task, NULL), 0); /* behind this task */
    plait_addr out[2];
    resolve_r = plait_resolve("a-name.example", 80, PLAIT_STREAM, out, 2,
                              plait_deadline_in(50 * PLAIT_MS));
    atomic_store(&resolve_returned, 1);
    atomic_store(&release_queued, 1);
    CHECK_EQ(plait_join(queued, NULL, SOON()), 0);
    return NULL;
}

TEST(resolve_in_a_pool_task_runs_no_other_task_meanwhile)
{
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, resolves, NULL), 0);
    /* the test holds nothing the join needs: if the join ran the queued task, that task
     * (and so the resolve) ends only once resolve_returned would be set: let it go
     * when it started, so that the failure shows instead of a hang */
    int64_t until = SOON();
    while (!atomic_load(&resolve_returned) && plait_now() < until) {
        if (atomic_load(&queued_started))
            atomic_store(&release_queued, 1);
        sched_yield();
    }
    atomic_store(&release_lookup, 1);
    atomic_store(&release_queued, 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(resolve_r, -ETIMEDOUT);
    CHECK_EQ(atomic_load(&queued_started_first), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(resolve_in_a_pool_task_runs_no_other_task_meanwhile))
