/* test_api_promises.c — claims of docs/API.md and include/plait.h checked against the code:
 * return codes for named situations, loss and cancellation promises (review 115; the
 * cases of process pools and task handles after a fork failed first). */
#include "helpers.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- plain-thread claims ------------------------------------------------ */

TEST(plain_thread_codes)
{
    /* "Calls marked coroutine only return -EPERM elsewhere": plait_yield. */
    CHECK_EQ(plait_yield(), -EPERM);
    /* "any other thread ... gets -EINVAL" for PLAIT_FOREVER */
    CHECK_EQ(plait_sleep_until(PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_sleep_until(0), 0);
    CHECK_EQ(plait_spawn(NULL, (plait_fn)(void *)plait_now, NULL), -EPERM);
    CHECK_EQ(plait_run(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(plait_set_stack_size(4096), -EPERM);
    CHECK_EQ(plait_dump(stderr), -EPERM);
    CHECK_EQ(plait_set_slow_warning(-1), -EINVAL);
    CHECK_EQ(plait_cancelled(), 0);
    CHECK(plait_task_name() == NULL);
    CHECK_EQ(plait_task_id(), 0);
    CHECK_EQ(plait_deadline_in(INT64_MAX), PLAIT_FOREVER);
    int64_t now = plait_now();
    int64_t d = plait_deadline_in(-5);
    CHECK(d >= now && d <= plait_now());
    CHECK(strcmp(plait_strerror(EINVAL), plait_strerror(-EINVAL)) == 0);
    CHECK(plait_cpu_count() >= 1);
}

/* The main coroutine of a plait_run on a plain thread cannot be cancelled (nobody holds
 * its task) and gets -EINVAL for PLAIT_FOREVER as its thread does; on a plait thread,
 * whose cancellation is main's, it sleeps until cancelled.  (Failed first: it slept for
 * ever, and plait_run never returned; session 53's audit.) */
static atomic_int main_slept;

static void *main_sleeps_for_ever(void *unused)
{
    (void)unused;
    atomic_store(&main_slept, plait_sleep_until(PLAIT_FOREVER));
    return NULL;
}

static void *run_main_sleeps_for_ever(void *unused)
{
    (void)unused;
    plait_run(main_sleeps_for_ever, NULL, NULL); /* (-ECANCELED: its main was) */
    return NULL;
}

TEST(main_coroutine_of_a_plain_thread_sleeps_not_for_ever)
{
    atomic_store(&main_slept, 1);
    CHECK_EQ(plait_run(main_sleeps_for_ever, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&main_slept), -EINVAL);
    atomic_store(&main_slept, 1);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, run_main_sleeps_for_ever, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(50 * PLAIT_MS)), -ETIMEDOUT); /* asleep */
    CHECK_EQ(plait_cancel(t), 0);
    plait_join(t, NULL, SOON());
    CHECK_EQ(atomic_load(&main_slept), -ECANCELED);
}

/* ---- coroutine basics ---------------------------------------------------- */

static void *ret_arg(void *a) { return a; }

static void *run_nested(void *a)
{
    (void)a;
    CHECK_EQ(plait_run(ret_arg, NULL, NULL), -EBUSY);
    plait_spawn_options o = {.stack_size = 1};
    CHECK_EQ(plait_spawn_opts(NULL, ret_arg, NULL, &o), -EINVAL);
    o.stack_size = PLAIT_STACK_MAX + 1;
    CHECK_EQ(plait_spawn_opts(NULL, ret_arg, NULL, &o), -EINVAL);
    CHECK_EQ(plait_spawn(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(plait_set_stack_size(0), -EINVAL);
    CHECK_EQ(plait_set_stack_size(PLAIT_STACK_MAX + 1), -EINVAL);
    CHECK_EQ(plait_dump(NULL), -EINVAL);

    /* cancel of a finished task: 0, and the task is unaffected */
    plait_task t;
    CHECK_EQ(plait_spawn(&t, ret_arg, ARG(7)), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_cancel(t), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v == ARG(7));
    CHECK_EQ(plait_join(t, &v, SOON()), -ESRCH);
    CHECK_EQ(plait_cancel(t), -ESRCH);
    CHECK_EQ(plait_detach(t), -ESRCH);
    plait_task z;
    memset(&z, 0, sizeof z);
    int r = plait_join(z, NULL, 0);
    CHECK(r == -EINVAL || r == -ESRCH);

    /* wait_all: n == 0, a handle given twice, consumes none */
    plait_task two[2];
    CHECK_EQ(plait_spawn(&two[0], ret_arg, ARG(1)), 0);
    two[1] = two[0];
    CHECK_EQ(plait_wait_all(two, 0, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_all(two, 2, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_any(two, 0, SOON()), -EINVAL);
    CHECK_EQ(plait_join(two[0], &v, SOON()), 0);
    CHECK(v == ARG(1));
    return NULL;
}

TEST(coroutine_codes) { check_run(run_nested, NULL); }

/* ---- synchronisation codes ---------------------------------------------- */

static int once_fail(void *a)
{
    (*(int *)a)++;
    return -EIO;
}
static int once_ok(void *a)
{
    (*(int *)a)++;
    return 0;
}
static plait_once inner_once = PLAIT_ONCE_INIT;
static int once_inner_rc;
static int once_reenter(void *a)
{
    (void)a;
    once_inner_rc = plait_once_call(&inner_once, once_reenter, NULL, SOON());
    return 0;
}

TEST(sync_codes)
{
    plait_sem *s;
    CHECK_EQ(plait_sem_create(&s, UINT32_MAX), 0);
    CHECK_EQ(plait_sem_value(s), INT_MAX);
    CHECK_EQ(plait_sem_release(s), -EOVERFLOW);
    CHECK_EQ(plait_sem_destroy(s), 0);

    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    CHECK_EQ(plait_waitgroup_done(wg), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, -1), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MAX), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 1), -EOVERFLOW);
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MIN), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, -INT32_MAX), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);

    plait_barrier *b;
    CHECK_EQ(plait_barrier_create(&b, 0), -EINVAL);
    CHECK_EQ(plait_barrier_create(&b, 1), 0);
    CHECK_EQ(plait_barrier_wait(b, 0), PLAIT_BARRIER_SERIAL);
    CHECK_EQ(plait_barrier_destroy(b), 0);

    plait_once o = PLAIT_ONCE_INIT;
    int runs = 0;
    CHECK_EQ(plait_once_call(&o, once_fail, &runs, SOON()), -EIO);
    CHECK_EQ(plait_once_call(&o, once_ok, &runs, SOON()), 0);
    CHECK_EQ(plait_once_call(&o, once_ok, &runs, SOON()), 0);
    CHECK_EQ(runs, 2);
    CHECK_EQ(plait_once_call(NULL, once_ok, &runs, SOON()), -EINVAL);
    CHECK_EQ(plait_once_call(&o, NULL, &runs, SOON()), -EINVAL);
    CHECK_EQ(plait_once_call(&inner_once, once_reenter, NULL, SOON()), 0);
    CHECK_EQ(once_inner_rc, -EDEADLK);

    plait_rwlock *rw;
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    CHECK_EQ(plait_rwlock_rdunlock(rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrunlock(rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrlock(rw, 0), 0);
    CHECK_EQ(plait_rwlock_rdlock(rw, 0), -EDEADLK);
    CHECK_EQ(plait_rwlock_wrlock(rw, 0), -EDEADLK);
    CHECK_EQ(plait_rwlock_destroy(rw), -EBUSY);
    CHECK_EQ(plait_rwlock_rdunlock(rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);

    plait_mutex *m;
    plait_cond *c;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_cond_create(&c), 0);
    CHECK_EQ(plait_cond_wait(c, m, 0), -EPERM);
    CHECK_EQ(plait_mutex_unlock(m), -EPERM);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);
    CHECK_EQ(plait_mutex_lock(m, 0), -EDEADLK);
    CHECK_EQ(plait_mutex_destroy(m), -EBUSY);
    CHECK_EQ(plait_cond_wait(c, m, 0), -ETIMEDOUT);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_cond_destroy(c), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);

    plait_event *e;
    CHECK_EQ(plait_event_create(&e), 0);
    CHECK_EQ(plait_event_is_set(e), 0);
    CHECK_EQ(plait_event_wait(e, 0), -ETIMEDOUT);
    CHECK_EQ(plait_event_set(e), 0);
    CHECK_EQ(plait_event_is_set(e), 1);
    CHECK_EQ(plait_event_wait(e, 0), 0);
    CHECK_EQ(plait_event_destroy(e), 0);
}

/* ---- channels and select -------------------------------------------------- */

TEST(chan_codes)
{
    plait_chan *ch, *ch2;
    CHECK_EQ(plait_chan_create(&ch, 0, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, PLAIT_CHAN_ELEM_MAX + 1, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 4, PLAIT_CHAN_CAPACITY_MAX + 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    CHECK_EQ(plait_chan_create(&ch2, sizeof(int), 0), 0);
    int x = 5, y = 0;
    CHECK_EQ(plait_chan_send(ch, &x, 0), 0);
    CHECK_EQ(plait_chan_len(ch), 1);
    plait_select_case cs[2] = {
        {.chan = ch2, .op = PLAIT_RECV, .elem = &y, .result = 1234},
        {.chan = ch, .op = PLAIT_RECV, .elem = &y, .result = 4321},
    };
    CHECK_EQ(plait_select(cs, 2, 0), 1);
    CHECK_EQ(cs[0].result, 1234);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(y, 5);
    CHECK_EQ(plait_select(cs, 2, 0), -ETIMEDOUT);
    CHECK_EQ(plait_select(cs, 0, 0), -EINVAL);
    CHECK_EQ(plait_select(NULL, 1, 0), -EINVAL);
    plait_select_case bad = {.chan = ch, .op = 3, .elem = &y};
    CHECK_EQ(plait_select(&bad, 1, 0), -EINVAL);
    bad.op = PLAIT_RECV;
    bad.elem = NULL;
    CHECK_EQ(plait_select(&bad, 1, 0), -EINVAL);
    bad.elem = &y;
    bad.chan = NULL;
    CHECK_EQ(plait_select(&bad, 1, 0), -EINVAL);
    CHECK_EQ(plait_chan_send(ch, &x, 0), 0);
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_close(ch), -EPIPE);
    CHECK_EQ(plait_chan_send(ch, &x, 0), -EPIPE);
    plait_select_case sc = {.chan = ch, .op = PLAIT_SEND, .elem = &x, .result = 99};
    CHECK_EQ(plait_select(&sc, 1, 0), 0);
    CHECK_EQ(sc.result, -EPIPE);
    CHECK_EQ(plait_chan_recv(ch, &y, 0), 0);
    CHECK_EQ(plait_chan_recv(ch, &y, 0), -EPIPE);
    CHECK_EQ(plait_chan_recv(ch, &y, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    CHECK_EQ(plait_chan_destroy(ch2), 0);
}

/* ---- misc codes -------------------------------------------------------- */

TEST(misc_codes)
{
    plait_key keys[PLAIT_KEYS_MAX + 1];
    int made = 0, r = 0;
    while (made <= PLAIT_KEYS_MAX && (r = plait_key_create(&keys[made], NULL)) == 0)
        made++;
    CHECK_EQ(r, -EAGAIN);
    CHECK(made <= PLAIT_KEYS_MAX);
    CHECK_EQ(plait_local_set(PLAIT_KEYS_MAX + 5, NULL), -EINVAL);
    CHECK(plait_local_get(PLAIT_KEYS_MAX + 5) == NULL);

    int sigs[] = {SIGKILL};
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, sigs, 0), -EINVAL);
    CHECK_EQ(plait_signals_create(&w, sigs, 1), -EINVAL);
    sigs[0] = SIGSEGV;
    CHECK_EQ(plait_signals_create(&w, sigs, 1), -EINVAL);
    sigs[0] = 0;
    CHECK_EQ(plait_signals_create(&w, sigs, 1), -EINVAL);
    sigs[0] = 65;
    CHECK_EQ(plait_signals_create(&w, sigs, 1), -EINVAL);

    plait_addr a;
    CHECK_EQ(plait_addr_unix(&a, ""), -EINVAL);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    CHECK_EQ(plait_addr_unix(&a, longp), -ENAMETOOLONG);
    CHECK_EQ(plait_addr_port(&a), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 65536), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", -1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "[127.0.0.1]", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "localhost", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 80), 0);
    char buf[4];
    CHECK_EQ(plait_addr_format(&a, buf, sizeof buf), -ENOSPC);
    plait_addr u;
    memset(&u, 0, sizeof u);
    u.len = sizeof(struct sockaddr_in);
    u.u.sa.sa_family = AF_APPLETALK;
    char big[PLAIT_ADDR_STRLEN];
    CHECK_EQ(plait_addr_format(&u, big, sizeof big), -EINVAL);

    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(plait_socket_set(sv[0], PLAIT_NODELAY, 1), -ENOPROTOOPT);
    CHECK_EQ(plait_socket_set(sv[0], (enum plait_sockopt)99, 1), -EINVAL);
    CHECK_EQ(plait_socket_set(sv[0], PLAIT_RCVBUF, -1), -EINVAL);
    int pfd[2];
    CHECK_EQ(pipe(pfd), 0);
    CHECK_EQ(plait_socket_set(pfd[0], PLAIT_RCVBUF, 4096), -ENOTSOCK);
    int val = -1;
    CHECK_EQ(plait_socket_get(pfd[0], PLAIT_RCVBUF, &val), -ENOTSOCK);
    CHECK_EQ(plait_wait_fd(sv[0], 0, 0), -EINVAL);
    CHECK_EQ(plait_wait_fd(sv[0], 0x40, 0), -EINVAL);
    CHECK_EQ(plait_wait_fd(-1, PLAIT_READABLE, 0), -EBADF);
    CHECK_EQ(plait_close(-1), -EBADF);
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    CHECK_EQ(close(sv[1]), 0);
    char rb[8];
    size_t done = 99;
    CHECK_EQ(plait_read_exactly(sv[0], rb, 4, &done, SOON()), -ENODATA);
    CHECK_EQ(done, 2);
    CHECK_EQ(plait_close(sv[0]), 0);
    close(pfd[0]);
    close(pfd[1]);

    plait_shm *shm;
    CHECK_EQ(plait_shm_create(&shm, 0), -EINVAL);
    CHECK_EQ(plait_shm_create(&shm, PLAIT_SHM_MAX + 1), -EINVAL);
    CHECK(plait_shm_data(NULL) == NULL);
    CHECK_EQ(plait_shm_size(NULL), 0);

    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 0, 1), -EINVAL);
    CHECK_EQ(plait_queue_create(&q, 1, 0), -EINVAL);
    CHECK_EQ(plait_queue_create(&q, PLAIT_QUEUE_MSG_MAX + 1, 1), -EINVAL);
    CHECK_EQ(plait_queue_create(&q, PLAIT_QUEUE_MSG_MAX, PLAIT_QUEUE_CAPACITY_MAX), -EINVAL);
    CHECK_EQ(plait_queue_create(&q, 8, 2), 0);
    CHECK_EQ(plait_queue_send(q, "123456789", 9, 0), -EMSGSIZE);
    CHECK_EQ(plait_queue_send(q, "1234", 4, 0), 0);
    CHECK_EQ(plait_queue_recv(q, rb, 2, 0), -EMSGSIZE);
    CHECK_EQ(plait_queue_len(q), 1);
    CHECK_EQ(plait_queue_close(q), 0);
    CHECK_EQ(plait_queue_close(q), -EPIPE);
    CHECK_EQ(plait_queue_send(q, "1", 1, 0), -EPIPE);
    CHECK_EQ(plait_queue_recv(q, rb, sizeof rb, 0), 4);
    CHECK_EQ(plait_queue_recv(q, rb, sizeof rb, 0), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);

    plait_psem *ps;
    CHECK_EQ(plait_psem_create(&ps, UINT32_MAX), 0);
    CHECK_EQ(plait_psem_release(ps), -EOVERFLOW);
    CHECK_EQ(plait_psem_destroy(ps), 0);

    plait_pool *p;
    plait_pool_options po = {.threads = PLAIT_POOL_THREADS_MAX + 1};
    CHECK_EQ(plait_pool_create(&p, &po), -EINVAL);
    CHECK_EQ(plait_pool_shutdown(plait_pool_default(), PLAIT_POOL_DRAIN, 0), -EPERM);
    CHECK_EQ(plait_pool_destroy(plait_pool_default()), -EPERM);
    po.threads = 1;
    CHECK_EQ(plait_pool_create(&p, &po), 0);
    CHECK_EQ(plait_pool_threads(p), 1);
    CHECK_EQ(plait_pool_shutdown(p, 7, 0), -EINVAL);
    CHECK_EQ(plait_pool_map(p, ret_arg, (void *const *)&p, 0, NULL, NULL, 0), -EINVAL);
    CHECK_EQ(plait_pool_shutdown(p, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_submit(p, NULL, ret_arg, NULL), -EPIPE);
    CHECK_EQ(plait_pool_destroy(p), 0);

    plait_procpool *pp;
    plait_procpool_options ppo = {.processes = PLAIT_PROCPOOL_MAX + 1};
    CHECK_EQ(plait_procpool_create(&pp, &ppo), -EINVAL);
    ppo.processes = 1;
    ppo.task_timeout = -1;
    CHECK_EQ(plait_procpool_create(&pp, &ppo), -EINVAL);
    ppo.task_timeout = 0;
    ppo.result_max = PLAIT_RESULT_MAX + 1;
    CHECK_EQ(plait_procpool_create(&pp, &ppo), -EINVAL);
}

/* ---- a process pool's task handle in a forked child ------------------------ */

static ssize_t pp_sleep(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg; (void)len; (void)out; (void)cap;
    usleep(300 * 1000);
    return 0;
}

#include <sys/wait.h>
static int child_code(int r)
{
    return r == -EPERM ? 1 : r == -ETIMEDOUT ? 2 : r == 0 ? 3 : 4;
}

TEST(procpool_handle_in_a_forked_child)
{
    plait_procpool *pp;
    CHECK_EQ(plait_procpool_create(&pp, &(plait_procpool_options){.processes = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pp, &t, pp_sleep, NULL, 0), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int a = plait_join(t, NULL, plait_deadline_in(50 * PLAIT_MS));
        int b = plait_cancel(t);
        _exit(child_code(a) * 10 + child_code(b));
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 11); /* join and cancel: -EPERM both */
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pp), 0);
}

/* In a worker too: a task given another task's handle (made after the worker was forked,
 * so in memory the worker does not have) gets -EPERM from every call on it, as plait.h's
 * "Process pools" says; the worker died of SIGSEGV on the join. */
static ssize_t pp_join_other(const void *arg, size_t len, void *out, size_t cap)
{
    plait_task t;
    if (len != sizeof t || cap < sizeof(int))
        return -EINVAL;
    memcpy(&t, arg, sizeof t);
    int r = plait_join(t, NULL, plait_deadline_in(50 * PLAIT_MS));
    if (r == -EPERM)
        r = plait_cancel(t);
    if (r == -EPERM)
        r = plait_wait_any(&t, 1, 0);
    if (r == -EPERM)
        r = plait_process_pid(t);
    if (r == -EPERM)
        r = plait_detach(t);
    memcpy(out, &r, sizeof r);
    return sizeof r;
}

TEST(procpool_handle_in_a_worker)
{
    plait_procpool *pp;
    CHECK_EQ(plait_procpool_create(&pp, &(plait_procpool_options){.processes = 2}), 0);
    plait_task a, b;
    CHECK_EQ(plait_procpool_submit(pp, &a, pp_sleep, NULL, 0), 0);
    CHECK_EQ(plait_procpool_submit(pp, &b, pp_join_other, &a, sizeof a), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(b, &v, SOON()), 0);
    plait_bytes *res = v;
    CHECK(res && res->len == sizeof(int));
    if (res) {
        int r;
        memcpy(&r, res->data, sizeof r);
        CHECK_EQ(r, -EPERM);
    }
    free(res);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pp), 0);
}

/* The same for a plain fork: a handle the parent made after the fork, sent to the child
 * through a pipe, names a future in a chunk the parent made after the fork.  The
 * child's calls on it are -EPERM (it read memory the fork did not copy). */
enum { AFTER_FORK_TASKS = 3000 };

static void *handle_made_after_fork_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_set_stack_size(32 * 1024), 0);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        plait_task t;
        int code = 9;
        if (read(p[0], &t, sizeof t) == (ssize_t)sizeof t) {
            int a = plait_join(t, NULL, plait_deadline_in(50 * PLAIT_MS));
            int b = plait_cancel(t);
            int c = plait_wait_any(&t, 1, 0);
            code = child_code(a) * 100 + child_code(b) * 10 + child_code(c);
        }
        _exit(code == 111 ? 0 : code % 256 ? code % 256 : 8);
    }
    static plait_task tasks[AFTER_FORK_TASKS];
    for (int i = 0; i < AFTER_FORK_TASKS; i++) { /* (ended at the yield, not joined: its
                                                  * future stays; one TSan fiber for all) */
        CHECK_EQ(plait_spawn(&tasks[i], ret_arg, ARG(i)), 0);
        CHECK_EQ(plait_yield(), 0);
    }
    CHECK_EQ(write(p[1], &tasks[AFTER_FORK_TASKS - 1], sizeof(plait_task)),
             (ssize_t)sizeof(plait_task));
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    if (WIFSIGNALED(st))
        fprintf(stderr, "  the child died of signal %d\n", WTERMSIG(st));
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    for (int i = 0; i < AFTER_FORK_TASKS; i++)
        CHECK_EQ(plait_join(tasks[i], NULL, SOON()), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

TEST(handle_made_after_a_fork_in_the_child) { check_run(handle_made_after_fork_main, NULL); }

/* A parent and its child reuse the same copied free futures in the same order: a plait
 * thread each starts after the fork gets the same future, and the two handles were
 * equal to the bit (the same generation).  The child's calls on the parent's handle
 * (through a pipe) acted on the child's own thread, which plait.h answers -EPERM: the
 * cancel returned 0 and the child's thread ended -ECANCELED. */
typedef struct {
    plait_event *go;
    void *value;
} waits_for_go;

static void *wait_for_go(void *arg)
{
    waits_for_go *w = arg;
    int r = plait_event_wait(w->go, plait_deadline_in(60 * PLAIT_SEC));
    return r < 0 ? PLAIT_FAIL(r) : w->value;
}

/* A plait thread that returns value once told to, started from this thread's cache of
 * futures; 0 or the failed call's code. */
static int start_waiting_thread(plait_task *t, waits_for_go *w, void *value)
{
    int r = plait_event_create(&w->go);
    w->value = value;
    return r ? r : plait_thread_start(t, wait_for_go, w, NULL);
}

/* Tell it, and whether its join gave value. */
static bool end_waiting_thread(plait_task t, waits_for_go *w, void *value)
{
    void *v = NULL;
    bool ended = plait_event_set(w->go) == 0 && plait_join(t, &v, SOON()) == 0 && v == value;
    return plait_event_destroy(w->go) == 0 && ended;
}

/* Fork, with a free future on top of this thread's cache for both processes to start
 * next, and a pipe p between them. */
static pid_t fork_with_a_free_future_on_top(int p[2])
{
    plait_task warm;
    waits_for_go w;
    CHECK_EQ(start_waiting_thread(&warm, &w, ARG(1)), 0);
    CHECK(end_waiting_thread(warm, &w, ARG(1)));
    CHECK_EQ(pipe(p), 0);
    fflush(NULL);
    return fork();
}

TEST(handle_the_parent_made_after_a_fork_names_the_child_s_own_task)
{
    int p[2];
    pid_t pid = fork_with_a_free_future_on_top(p);
    if (pid == 0) {
        plait_task mine, theirs;
        waits_for_go mine_waits;
        if (start_waiting_thread(&mine, &mine_waits, ARG(7)))
            _exit(9);
        int code = 10; /* the pipe said nothing */
        if (read(p[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs) {
            code = theirs.future != mine.future ? 11 /* no alias: the case tests nothing */
                   : plait_cancel(theirs) != -EPERM ? 12
                   : plait_join(theirs, NULL, 0) != -EPERM ? 13
                   : plait_wait_any(&theirs, 1, 0) != -EPERM ? 14
                   : plait_detach(theirs) != -EPERM ? 15 : 0;
        }
        /* not cancelled, not detached: */
        _exit(end_waiting_thread(mine, &mine_waits, ARG(7)) ? code : 16);
    }
    plait_task ours;
    waits_for_go ours_waits;
    CHECK_EQ(start_waiting_thread(&ours, &ours_waits, ARG(2)), 0);
    CHECK_EQ(write(p[1], &ours, sizeof ours), (ssize_t)sizeof ours);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    CHECK(end_waiting_thread(ours, &ours_waits, ARG(2)));
    close(p[0]);
    close(p[1]);
}

/* The calls a child makes on a handle its parent made after the fork: 0 when each is
 * -EPERM, else a code that says which was not. */
static int parents_handle_refused(plait_task theirs)
{
    plait_completed *set;
    if (plait_completed_create(&set) != 0)
        return 20;
    int code = plait_cancel(theirs) != -EPERM               ? 21
               : plait_join(theirs, NULL, 0) != -EPERM      ? 22
               : plait_wait_any(&theirs, 1, 0) != -EPERM    ? 23
               : plait_completed_add(set, theirs) != -EPERM ? 24
               : plait_detach(theirs) != -EPERM             ? 25
                                                            : 0;
    return plait_completed_destroy(set) == 0 ? code : 26;
}

/* The same, on futures that the child has as copies it never started: free in the
 * parent at the fork, last started there by a plain thread (no coroutine of the child's
 * scheduler).  The parent's handles said -ESRCH there (a review of the first mend). */
TEST(handles_the_parent_makes_after_a_fork_on_futures_the_child_never_started)
{
    int p[2];
    pid_t pid = fork_with_a_free_future_on_top(p);
    if (pid == 0) {
        int code = 0;
        for (int i = 0; i < 3 && !code; i++) {
            plait_task theirs;
            code = read(p[0], &theirs, sizeof theirs) != (ssize_t)sizeof theirs
                       ? 10
                       : parents_handle_refused(theirs);
        }
        _exit(code);
    }
    plait_task ours[3];
    waits_for_go ours_waits[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(start_waiting_thread(&ours[i], &ours_waits[i], ARG(i)), 0);
        CHECK_EQ(write(p[1], &ours[i], sizeof ours[i]), (ssize_t)sizeof ours[i]);
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    for (int i = 0; i < 3; i++)
        CHECK(end_waiting_thread(ours[i], &ours_waits[i], ARG(i)));
    close(p[0]);
    close(p[1]);
}

/* And on the future of a coroutine of the forking scheduler, whose copies go on apart:
 * the child gives its handle up (detach) and its copy runs on; the parent joins its own
 * and spawns again on that future.  The two generations were equal (each side counted
 * once): the child's cancel of the parent's handle cancelled its own coroutine.  And on
 * such a future that was free at the fork: a completed set of the child's took the
 * parent's handle and watched the child's free copy (a review of the first mend). */
static plait_event *apart_release;

static void *waits_for_release(void *arg)
{
    int r = plait_event_wait(apart_release, plait_deadline_in(60 * PLAIT_SEC));
    return r < 0 ? PLAIT_FAIL(r) : arg;
}

static void *coroutine_futures_apart_main(void *free_at_fork)
{
    CHECK_EQ(plait_event_create(&apart_release), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, waits_for_release, ARG(5)), 0);
    if (free_at_fork) {
        CHECK_EQ(plait_event_set(apart_release), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK_EQ(plait_event_reset(apart_release), 0);
    }
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* its copy of t, running, is its own: given up, it runs on */
        int code = !free_at_fork && plait_detach(t) != 0 ? 9 : 0;
        plait_task theirs;
        if (!code && read(p[0], &theirs, sizeof theirs) != (ssize_t)sizeof theirs)
            code = 10;
        if (!code)
            code = theirs.future != t.future ? 11 /* no alias: the case tests nothing */
                                             : parents_handle_refused(theirs);
        plait_task mine; /* a task of its own, on that future where it was free */
        if (!code && (plait_spawn(&mine, waits_for_release, ARG(7)) != 0 ||
                      plait_event_set(apart_release) != 0))
            code = 12;
        void *v = NULL;
        if (!code && (plait_join(mine, &v, SOON()) != 0 || v != ARG(7)))
            code = 13; /* (the detached copy of t ends with the release too) */
        _exit(code);
    }
    if (!free_at_fork) {
        CHECK_EQ(plait_event_set(apart_release), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    }
    plait_task again;
    CHECK_EQ(plait_spawn(&again, waits_for_release, ARG(6)), 0);
    CHECK_EQ(write(p[1], &again, sizeof again), (ssize_t)sizeof again);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    CHECK_EQ(plait_event_set(apart_release), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(again, &v, SOON()), 0);
    CHECK(v == ARG(6));
    CHECK_EQ(plait_event_destroy(apart_release), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

TEST(a_coroutine_s_future_that_goes_on_apart_after_a_fork)
{
    if (CHECK_TSAN) { /* (its child goes on with a scheduler whose threads stayed behind) */
        CHECK_SKIP("the child of a fork from a coroutine does not run under ThreadSanitizer");
        return;
    }
    check_run(coroutine_futures_apart_main, NULL);
    check_run(coroutine_futures_apart_main, ARG(1));
}

/* The same across id namespaces: a parent that is the first process of its namespace
 * (id 1) forks a child that is the first of a new one (id 1 too).  The generations
 * named both by their id: the parent's handle was the child's own to the bit again (a
 * review of the mend).  Runs where namespaces may be made (root, or a user namespace's
 * root), else skipped. */
static int ns_pipe[2];

static void *ns_warm(void *unused)
{
    (void)unused;
    plait_task t; /* a free future on top of this thread's cache, for both to start */
    if (plait_event_create(&apart_release) || plait_event_set(apart_release) ||
        plait_spawn(&t, waits_for_release, NULL) || plait_join(t, NULL, SOON()))
        return PLAIT_FAIL(-EPROTO);
    return PLAIT_FAIL(plait_event_destroy(apart_release));
}

static void *ns_child(void *code)
{
    plait_task mine, theirs;
    if (getpid() != 1 || plait_event_create(&apart_release) ||
        plait_spawn(&mine, waits_for_release, ARG(7)))
        *(int *)code = 22;
    else if (read(ns_pipe[0], &theirs, sizeof theirs) != (ssize_t)sizeof theirs)
        *(int *)code = 23;
    else
        *(int *)code = theirs.future != mine.future ? 11 /* no alias: the case tests nothing */
                                                    : parents_handle_refused(theirs);
    void *v = NULL;
    if (plait_event_set(apart_release) || plait_join(mine, &v, SOON()) || v != ARG(7))
        *(int *)code = 16; /* not cancelled, not detached */
    return NULL;
}

static void *ns_parent(void *child)
{
    plait_task ours;
    int code = 0;
    if (plait_event_create(&apart_release) || plait_spawn(&ours, waits_for_release, ARG(2)))
        return PLAIT_FAIL(-EPROTO);
    if (write(ns_pipe[1], &ours, sizeof ours) != (ssize_t)sizeof ours)
        code = 24;
    int st = 0; /* (the scheduler waits with it: nothing else runs here) */
    if (waitpid(*(pid_t *)child, &st, 0) != *(pid_t *)child || !WIFEXITED(st))
        code = 25;
    else if (!code)
        code = WEXITSTATUS(st);
    void *v = NULL;
    if (plait_event_set(apart_release) || plait_join(ours, &v, SOON()) || v != ARG(2))
        code = 26;
    return ARG(code);
}

/* The first process of a namespace: both its tasks and its child's are coroutines (a
 * process whose children go to another namespace may start no thread). */
static int in_a_namespace_of_its_own(void)
{
    if (plait_run(ns_warm, NULL, NULL) != 0)
        return 20;
    if (pipe(ns_pipe) != 0 || unshare(CLONE_NEWPID) != 0)
        return 21;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int code = 9;
        _exit(plait_run(ns_child, &code, NULL) == 0 ? code : 8);
    }
    void *code = NULL;
    return pid > 0 && plait_run(ns_parent, &pid, &code) == 0 ? (int)(intptr_t)code : 27;
}

TEST(a_handle_of_a_process_with_the_same_id_in_another_namespace)
{
    fflush(NULL);
    pid_t outer = fork();
    if (outer == 0) {
        if (unshare(CLONE_NEWPID) != 0)
            _exit(77);
        pid_t first = fork(); /* the first process of the new namespace */
        if (first == 0) {
            if (getpid() != 1)
                _exit(28);
            /* first its second process (id 2), whose child is the first of the
             * namespace made next: an id plus the namespace's number named both alike */
            pid_t second = fork();
            if (second == 0)
                _exit(getpid() == 2 ? in_a_namespace_of_its_own() : 28);
            int st = 0;
            int code = second > 0 && waitpid(second, &st, 0) == second && WIFEXITED(st)
                           ? WEXITSTATUS(st)
                           : 29;
            _exit(code ? code : in_a_namespace_of_its_own());
        }
        int st = 0;
        _exit(first > 0 && waitpid(first, &st, 0) == first && WIFEXITED(st) ? WEXITSTATUS(st)
                                                                             : 29);
    }
    int st = 0;
    CHECK_EQ(waitpid(outer, &st, 0), outer);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 77) {
        CHECK_SKIP("no new id namespace may be made here");
        return;
    }
    CHECK_EQ(code, 0);
}

/* The other way: a handle a child made, sent to its parent, which was never forked
 * (the cases run in the test's own process).  Handles were looked up among the
 * process's chunks in forked processes only: here one of a chunk the child made after
 * the fork was read where nothing is mapped (the test died of SIGSEGV). */
enum { CHILD_TASKS = 3000 };

static void *return_at_once(void *arg) { return arg; }

TEST(a_child_s_handle_in_a_process_never_forked)
{
    int p[2], done[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(pipe(done), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        plait_pool *pool;
        int code = 10;
        if (plait_pool_create(&pool, &(plait_pool_options){.threads = 1}) == 0) {
            static plait_task tasks[CHILD_TASKS]; /* (not joined: their futures stay) */
            code = 0;
            for (int i = 0; i < CHILD_TASKS && !code; i++)
                code = plait_pool_submit(pool, &tasks[i], return_at_once, ARG(i)) ? 11 : 0;
            if (!code && write(p[1], &tasks[CHILD_TASKS - 1], sizeof(plait_task)) !=
                             (ssize_t)sizeof(plait_task))
                code = 12;
            char c;
            if (read(done[0], &c, 1) != 1) /* the parent has made its calls */
                code = 13;
        }
        _exit(code); /* (its pool and tasks end with it) */
    }
    plait_task theirs;
    CHECK_EQ(read(p[0], &theirs, sizeof theirs), (ssize_t)sizeof theirs);
    CHECK_EQ(plait_join(theirs, NULL, 0), -EPERM);
    CHECK_EQ(plait_cancel(theirs), -EPERM);
    CHECK_EQ(plait_wait_any(&theirs, 1, 0), -EPERM);
    CHECK_EQ(plait_detach(theirs), -EPERM);
    CHECK_EQ(write(done[1], "x", 1), 1);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    close(p[0]);
    close(p[1]);
    close(done[0]);
    close(done[1]);
}

/* A process pool's destroy is clean-up, as a thread pool's is (API.md: "clean-up in a
 * cancelled task must work"), and plait.h lists no -ECANCELED for it: from a cancelled
 * coroutine it shuts the pool down, waits for the workers and frees it.  It returned
 * -ECANCELED from its shutdown's wait for the workers to end, freeing nothing, and a
 * cancelled task could never destroy the pool. */
typedef struct {
    plait_procpool *pool;
    int destroyed;
} cancelled_destroy;

static void *destroy_procpool_cancelled(void *arg)
{
    cancelled_destroy *c = arg;
    c->destroyed = plait_procpool_destroy(c->pool);
    return NULL;
}

static void *procpool_destroy_cancelled_main(void *arg)
{
    (void)arg;
    cancelled_destroy c = {.destroyed = 1};
    CHECK_EQ(plait_procpool_create(&c.pool, &(plait_procpool_options){.processes = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, destroy_procpool_cancelled, &c), 0);
    CHECK_EQ(plait_cancel(t), 0); /* before it runs */
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c.destroyed, 0);
    if (c.destroyed != 0) /* still ours: free it here */
        CHECK_EQ(plait_procpool_destroy(c.pool), 0);
    return NULL;
}

TEST(procpool_destroy_from_a_cancelled_coroutine) { check_run(procpool_destroy_cancelled_main, NULL); }

/* A process pool's destroy while another thread is inside plait_procpool_shutdown on it
 * (about to wait for the workers on the pool's `stopped` event): -EBUSY, nothing freed,
 * as a thread pool's destroy is (plait.h).  It freed the pool, and the shutdown then
 * waited on the freed event.  The shutdown is held just before that wait (--wrap). */
int __real_plait__event_wait(plait_event *e, int64_t deadline, bool cancellable);
int __wrap_plait__event_wait(plait_event *e, int64_t deadline, bool cancellable);
static _Thread_local bool hold_event_wait;
static atomic_int held_in_wait, let_wait_go;

int __wrap_plait__event_wait(plait_event *e, int64_t deadline, bool cancellable)
{
    if (hold_event_wait) {
        hold_event_wait = false;
        atomic_store(&held_in_wait, 1);
        wait_for(&let_wait_go);
    }
    return __real_plait__event_wait(e, deadline, cancellable);
}

typedef struct {
    plait_procpool *pool;
    int r;
} shutdown_ctx;

static void *shut_down_held(void *arg)
{
    shutdown_ctx *c = arg;
    hold_event_wait = true;
    c->r = plait_procpool_shutdown(c->pool, PLAIT_POOL_DRAIN, SOON());
    return NULL;
}

TEST(procpool_destroy_beside_a_shutdown)
{
    atomic_store(&held_in_wait, 0);
    atomic_store(&let_wait_go, 0);
    shutdown_ctx c = {.r = 1};
    CHECK_EQ(plait_procpool_create(&c.pool, &(plait_procpool_options){.processes = 1}), 0);
    pthread_t th;
    thread_start(&th, shut_down_held, &c);
    wait_for(&held_in_wait);
    int r = plait_procpool_destroy(c.pool);
    CHECK_EQ(r, -EBUSY);
    if (r != -EBUSY) {
        /* freed under the shutdown: leave it held (its wait would read freed memory) */
        pthread_detach(th);
        return;
    }
    atomic_store(&let_wait_go, 1);
    thread_join(th);
    CHECK_EQ(c.r, 0);
    CHECK_EQ(plait_procpool_destroy(c.pool), 0);
}

/* procpool_handle_in_a_worker first: no task future may exist before its pool's workers
 * are forked, so that the handle it passes them names memory they do not have. */
RUN_TESTS(CASE(procpool_handle_in_a_worker), CASE(plain_thread_codes), CASE(coroutine_codes),
          CASE(sync_codes), CASE(chan_codes), CASE(misc_codes),
          CASE(procpool_handle_in_a_forked_child), CASE(handle_made_after_a_fork_in_the_child),
          CASE(handle_the_parent_made_after_a_fork_names_the_child_s_own_task),
          CASE(a_child_s_handle_in_a_process_never_forked),
          CASE(handles_the_parent_makes_after_a_fork_on_futures_the_child_never_started),
          CASE(a_coroutine_s_future_that_goes_on_apart_after_a_fork),
          CASE(a_handle_of_a_process_with_the_same_id_in_another_namespace),
          CASE(procpool_destroy_from_a_cancelled_coroutine), CASE(procpool_destroy_beside_a_shutdown),
          CASE(main_coroutine_of_a_plain_thread_sleeps_not_for_ever))
