/* test_queue_reaped_worker_window.c — a queue's receiver, purging senders gone
 * unreported, between a process pool worker's end and its replacement's fork, where
 * the kernel reaps workers (SIGCHLD ignored): the dead worker, its pid free, looked
 * gone, and the receiver was told every sender had gone (-EPIPE) while the pool lived
 * and its next worker was about to send.  A child that plait forked here counts as
 * alive until plait has reported it (session 43: test_procpool's kernel-reaped
 * queue-sender case failed so once in CI; failed before the fix: -EPIPE, 3 of 3).
 *
 * Built with -Wl,--wrap=plait__fork_child, which holds the replacement's fork until
 * the receiver's purge has looked at the dead worker (-Wl,--wrap=plait__pid_gone sees
 * it look). */
#include "helpers.h"

#include "../src/internal.h"

#include <semaphore.h>

int __real_plait__fork_child(const plait__fork_spec *spec, pid_t *pid);
int __wrap_plait__fork_child(const plait__fork_spec *spec, pid_t *pid);
bool __real_plait__pid_gone(unsigned pid);
bool __wrap_plait__pid_gone(unsigned pid);

static _Atomic unsigned held_gone; /* the dead worker whose replacement's fork waits */
static sem_t looked;               /* posted when the purge has looked at it */
static atomic_int looks;

bool __wrap_plait__pid_gone(unsigned pid)
{
    bool r = __real_plait__pid_gone(pid);
    if (pid && pid == atomic_load(&held_gone) && atomic_fetch_add(&looks, 1) == 0)
        CHECK_EQ(sem_post(&looked), 0);
    return r;
}

int __wrap_plait__fork_child(const plait__fork_spec *spec, pid_t *pid)
{
    if (spec->gone && !atomic_load(&looks)) { /* the first replacement of a reaped worker */
        atomic_store(&held_gone, (unsigned)spec->gone);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10; /* the receiver's recheck comes within 100 ms */
        int r;
        while ((r = sem_timedwait(&looked, &until)) != 0 && errno == EINTR)
            ;
        CHECK_EQ(r, 0);
        atomic_store(&held_gone, 0);
    }
    return __real_plait__fork_child(spec, pid);
}

static plait_queue *queue;

static ssize_t send_the_argument(const void *arg, size_t len, void *out, size_t cap)
{
    (void)out;
    (void)cap;
    return plait_queue_send(queue, arg, len, plait_deadline_in(5 * PLAIT_SEC));
}

TEST(a_receiver_waits_across_a_reaped_worker_s_replacement)
{
    CHECK_EQ(sem_init(&looked, 0, 0), 0);
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    CHECK_EQ(sigaction(SIGCHLD, &ignore, &old), 0);
    CHECK_EQ(plait_queue_create(&queue, sizeof(int), 4), 0);
    int v;
    CHECK_EQ(plait_queue_recv(queue, &v, sizeof v, 0), -ETIMEDOUT); /* a receiver */
    plait_procpool *pool = NULL;
    plait_procpool_options o = {.processes = 1, .max_tasks = 1};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (pool) {
        plait_task t[2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ(plait_procpool_submit(pool, &t[i], send_the_argument, &i, sizeof i), 0);
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(plait_queue_recv(queue, &v, sizeof v, SOON()), (ssize_t)sizeof v);
            CHECK_EQ(v, i);
        }
        CHECK_EQ(atomic_load(&looks) > 0, 1); /* the purge looked in the window */
        for (int i = 0; i < 2; i++) {
            void *res = NULL;
            CHECK_EQ(plait_join(t[i], &res, SOON()), 0);
            free(res);
        }
        CHECK_EQ(plait_procpool_destroy(pool), 0);
    }
    CHECK_EQ(plait_queue_destroy(queue), 0);
    CHECK_EQ(sigaction(SIGCHLD, &old, NULL), 0);
    sem_destroy(&looked);
}

RUN_TESTS(CASE(a_receiver_waits_across_a_reaped_worker_s_replacement))
