/* test_queue_stopped_holder.c — a send or a receive on a plait_queue keeps its deadline
 * while another process holds one of the queue's locks and does not let go (stopped by
 * a debugger or by job control in the middle of copying a message), and a coroutine
 * that waits for that lock leaves its scheduler's other coroutines running.  (The lock
 * was taken without a deadline, by the whole thread: both calls waited until the holder
 * went on, and a coroutine froze its scheduler meanwhile; review 94.)  A holder stopped
 * in a send holds up only the other sends, one stopped in a receive only the other
 * receives (the queue had one lock for both ends until session 36).
 * The holder stops itself in the middle of its copy: memcpy is wrapped
 * (-Wl,--wrap=memcpy, tests/CMakeLists.txt), and in the child a copy of BIG bytes or
 * more raises SIGSTOP first.  plait__shared_wait is wrapped too, to know when a call
 * of this process has begun to wait for the queue's state, and plait__plock_lock_until,
 * to know when one has begun to wait for the table of holders' lock. */
#include "helpers.h"

#include <sys/wait.h>

#include "stop_in_copy.h"

#include "../src/internal.h"

static plait_event *began_to_wait; /* set by a wait on the queue's state, when asked */

int __real_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);
int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);
int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what)
{
    if (began_to_wait)
        plait_event_set(began_to_wait);
    return __real_plait__shared_wait(obj, word, expected, sleepers, deadline, what);
}

static _Atomic(plait__plock *) watched_lock; /* whose waits are counted, when set */
static atomic_int watched_lock_waits;

int __real_plait__plock_lock_until(plait__plock *l, int64_t deadline, int64_t grace);
int __wrap_plait__plock_lock_until(plait__plock *l, int64_t deadline, int64_t grace);
int __wrap_plait__plock_lock_until(plait__plock *l, int64_t deadline, int64_t grace)
{
    if (l == atomic_load(&watched_lock))
        atomic_fetch_add(&watched_lock_waits, 1);
    return __real_plait__plock_lock_until(l, deadline, grace);
}

/* Let it go on and finish its send; its message is then there. */
static void holder_goes_on(plait_queue *q, pid_t pid)
{
    CHECK_EQ(kill(pid, SIGCONT), 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    static char got[BIG];
    CHECK_EQ(plait_queue_recv(q, got, sizeof got, SOON()), (ssize_t)BIG);
}

enum { WAIT_MS = 200 };

/* The calls of this process while the lock is held: a receive and a send, each giving
 * up at its deadline (and a past deadline too, after a short grace for the copy). */
static void calls_keep_their_deadlines(plait_queue *q)
{
    static char buf[BIG];
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, plait_deadline_in(WAIT_MS * PLAIT_MS)),
             -ETIMEDOUT);
    int64_t took = plait_now() - start;
    CHECK(took >= WAIT_MS * PLAIT_MS && took < WAIT_MS * PLAIT_MS + 2 * PLAIT_SEC);
    start = plait_now();
    CHECK_EQ(plait_queue_send(q, "x", 1, plait_deadline_in(WAIT_MS * PLAIT_MS)), -ETIMEDOUT);
    CHECK(plait_now() - start < WAIT_MS * PLAIT_MS + 2 * PLAIT_SEC);
    start = plait_now();
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, 0), -ETIMEDOUT);
    CHECK_PROMPT(start);
}

TEST(a_thread_keeps_its_deadline)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    calls_keep_their_deadlines(q);
    holder_goes_on(q, pid);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

static atomic_int ticks, ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (atomic_load(&ticking)) {
        atomic_fetch_add(&ticks, 1);
        plait_sleep(PLAIT_MS);
    }
    return NULL;
}

/* The ticker started beside the caller, a coroutine; ticker_stop ends it. */
static plait_task ticker_start(void)
{
    atomic_store(&ticking, 1);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, ticker, NULL), 0);
    return t;
}

static void ticker_stop(plait_task t)
{
    atomic_store(&ticking, 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

static void *coroutine_main(void *arg)
{
    plait_queue *q = arg;
    plait_task t = ticker_start();
    int before = atomic_load(&ticks);
    calls_keep_their_deadlines(q);
    /* its scheduler ran the ticker meanwhile (it stood still for the whole wait) */
    CHECK(atomic_load(&ticks) - before >= 20);
    ticker_stop(t);
    return NULL;
}

TEST(a_coroutine_keeps_its_deadline_and_its_scheduler_runs)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    check_run(coroutine_main, q);
    holder_goes_on(q, pid);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

static void *receive_until_the_deadline(void *arg)
{
    static char buf[BIG];
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_recv(arg, buf, sizeof buf, plait_deadline_in(3 * WAIT_MS * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK(plait_now() - start < 3 * WAIT_MS * PLAIT_MS + 2 * PLAIT_SEC);
    return NULL;
}

/* A receive that already waits for a message when the holder stops: every 100 ms it
 * looks for holders that died unreported, which took the lock without a deadline. */
TEST(a_receive_already_waiting_keeps_its_deadline)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    CHECK_EQ(plait_event_create(&began_to_wait), 0);
    plait_task receiver;
    CHECK_EQ(plait_thread_start(&receiver, receive_until_the_deadline, q, NULL), 0);
    CHECK_EQ(plait_event_wait(began_to_wait, SOON()), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    int joined = plait_join(receiver, NULL, plait_deadline_in(3 * WAIT_MS * PLAIT_MS + 3 * PLAIT_SEC));
    if (joined != 0)
        kill(pid, SIGKILL); /* (not left stopped when the check below fails) */
    CHECK_EQ(joined, 0);
    holder_goes_on(q, pid);
    plait_event *e = began_to_wait;
    began_to_wait = NULL;
    CHECK_EQ(plait_event_destroy(e), 0);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* plait_queue_len and plait_queue_close have no deadline: they must not wait for the
 * holder at all (both took the lock, and waited until the holder went on). */
TEST(len_and_close_do_not_wait_for_the_holder)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_len(q), 0u); /* the holder's message is not in yet */
    CHECK_EQ(plait_queue_close(q), 0);
    CHECK_EQ(plait_queue_close(q), -EPIPE);
    CHECK_PROMPT(start);
    /* the send under way when the queue closed still goes in; then nothing more */
    holder_goes_on(q, pid);
    CHECK_EQ(plait_queue_len(q), 0u);
    char one[1];
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, SOON()), -EPIPE);
    CHECK_EQ(plait_queue_send(q, one, 1, SOON()), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A receive that finds the queue closed and empty while a send is under way waits for
 * that send, whose message still goes in: receivers drain the queue before they are told
 * -EPIPE, and that answer is final.  (Failed first: the receive answered -EPIPE at once,
 * and the message came after it, to a receiver already told the queue had ended; a
 * helper's audit saw it with a sender that was only slow, 3 to 6 runs in 10.) */
TEST(a_receive_after_a_close_waits_for_the_send_under_way)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    CHECK_EQ(plait_queue_close(q), 0);
    static char buf[BIG];
    int64_t start = plait_now();
    ssize_t got = plait_queue_recv(q, buf, sizeof buf, plait_deadline_in(WAIT_MS * PLAIT_MS));
    int64_t took = plait_now() - start;
    CHECK_EQ(got, -ETIMEDOUT); /* not ended yet: a message is on its way */
    CHECK(took >= WAIT_MS * PLAIT_MS && took < WAIT_MS * PLAIT_MS + 2 * PLAIT_SEC);
    start = plait_now();
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, 0), -ETIMEDOUT); /* a try, too */
    CHECK_PROMPT(start);
    holder_goes_on(q, pid); /* its message is taken */
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, 0), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* The other end goes on: a receive takes what is already queued at once, though a
 * sender is stopped in its copy (failed first: with one lock for both ends it waited
 * for the holder until its deadline). */
TEST(a_stopped_sender_does_not_hold_up_receives)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    static char buf[BIG];
    int64_t start = plait_now();
    ssize_t got = plait_queue_recv(q, buf, sizeof buf, plait_deadline_in(2 * PLAIT_SEC));
    if (got != 1)
        kill(pid, SIGKILL); /* (not left stopped when the checks below fail) */
    CHECK_EQ(got, 1);
    CHECK_PROMPT(start);
    holder_goes_on(q, pid);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* And a send goes in at once, though a receiver is stopped in its copy. */
TEST(a_stopped_receiver_does_not_hold_up_sends)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    static char big[BIG];
    CHECK_EQ(plait_queue_send(q, big, sizeof big, SOON()), 0);
    pid_t pid = holder_stopped_in_a_copy(q, false);
    int64_t start = plait_now();
    int sent = plait_queue_send(q, "x", 1, plait_deadline_in(2 * PLAIT_SEC));
    if (sent != 0)
        kill(pid, SIGKILL);
    CHECK_EQ(sent, 0);
    CHECK_PROMPT(start);
    CHECK_EQ(kill(pid, SIGCONT), 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* it took the BIG message */
    char one[1];
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, SOON()), 1);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A process's first send waits for the table of holders' lock (held here by this
 * process's main thread, the first word of the queue's state: queue.c) without holding
 * the senders' lock meanwhile: another process's send goes in at once.  (Failed first:
 * the first call took its end's lock, then waited for the table's holding it, and a
 * coroutine yields in that wait: another coroutine of its scheduler that forked then
 * left the lock held by two copies of the call.) */
static atomic_int first_sender_tid;

static void *first_send(void *arg)
{
    atomic_store(&first_sender_tid, gettid_());
    return (void *)(intptr_t)plait_queue_send(arg, "t", 1, SOON());
}

TEST(a_first_send_waits_for_the_table_without_the_senders_lock)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    int go[2];
    CHECK_EQ(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) { /* a sender already noted, that sends again when told */
        char c;
        int first = plait_queue_send(q, "a", 1, SOON());
        if (first != 0 || read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(plait_queue_send(q, "b", 1, plait_deadline_in(2 * PLAIT_SEC)) == 0 ? 0 : 2);
    }
    CHECK(pid > 0);
    int64_t until = SOON();
    while (plait_queue_len(q) < 1 && plait_now() < until)
        sched_yield();
    CHECK_EQ(plait_queue_len(q), 1u);
    plait__plock *table = ((plait__shared_obj *)q)->map;
    CHECK(plait__plock_trylock(table));
    pthread_t first;
    thread_start(&first, first_send, q);
    wait_asleep(&first_sender_tid); /* in its wait for the table's lock */
    int64_t start = plait_now();
    CHECK_EQ(write(go[1], "g", 1), 1);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* its send went in */
    CHECK_PROMPT(start);
    plait__plock_unlock(table);
    void *res;
    CHECK_EQ(pthread_join(first, &res), 0);
    CHECK_EQ((intptr_t)res, 0);
    CHECK_EQ(plait_queue_len(q), 3u);
    close(go[0]);
    close(go[1]);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

static void *receive_one_within_3s(void *arg)
{
    char buf[16];
    return (void *)(intptr_t)plait_queue_recv(arg, buf, sizeof buf,
                                              plait_deadline_in(3 * PLAIT_SEC));
}

/* A child that takes the table of holders' lock and stops with it held (a debugger,
 * job control); its pid.  stopped_child_lets_go: it goes on, lets go and exits. */
static pid_t table_held_by_a_stopped_child(plait__plock *table)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (!plait__plock_trylock(table))
            _exit(1);
        raise(SIGSTOP);
        plait__plock_unlock(table);
        _exit(0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
    CHECK(WIFSTOPPED(status)); /* holding the table's lock */
    return pid;
}

static void stopped_child_lets_go(pid_t pid)
{
    int status = 0;
    CHECK_EQ(kill(pid, SIGCONT), 0);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A receive that waits keeps seeing its queue while another process holds the table of
 * holders' lock (stopped with it: the table is updated at a process's first call, a
 * fork, a death report): its look every 100 ms for holders gone unreported waits for
 * that lock a grace at most, and a message sent meanwhile is taken.  (Failed first: the
 * look waited for the table's lock until the call's own deadline, deaf to its queue,
 * and the receive answered -ETIMEDOUT after 3 s with the message queued; session 51's
 * audit.) */
TEST(a_waiting_receive_takes_a_message_while_the_table_is_held)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    char one[1];
    CHECK_EQ(plait_queue_send(q, "a", 1, SOON()), 0); /* this process noted on both sides */
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, SOON()), 1);
    plait__plock *table = ((plait__shared_obj *)q)->map;
    pid_t pid = table_held_by_a_stopped_child(table);
    atomic_store(&watched_lock_waits, 0);
    atomic_store(&watched_lock, table);
    pthread_t receiver;
    thread_start(&receiver, receive_one_within_3s, q);
    int64_t give_up = SOON();
    while (!atomic_load(&watched_lock_waits) && plait_now() < give_up)
        sched_yield(); /* until its look (after 100 ms of waiting) waits for the table */
    CHECK(atomic_load(&watched_lock_waits) > 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_send(q, "b", 1, SOON()), 0);
    void *got;
    CHECK_EQ(pthread_join(receiver, &got), 0);
    CHECK_EQ((intptr_t)got, 1);
    CHECK(plait_now() - start < 2 * PLAIT_SEC); /* (its look's grace is 10 ms) */
    atomic_store(&watched_lock, NULL);
    stopped_child_lets_go(pid);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A destroy from a coroutine while another process holds the table of holders' lock
 * (stopped with it) waits for it some 100 ms, as a thread's does, but lets its
 * scheduler run meanwhile.  (Failed first: it slept on the lock's word as a thread
 * does, and the ticker beside it stood still; session 51's audit.) */
static void *destroy_main(void *arg)
{
    plait_queue *q = arg;
    plait_task t = ticker_start();
    int before = atomic_load(&ticks);
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_destroy(q), 0);
    int64_t took = plait_now() - start;
    int ticked = atomic_load(&ticks) - before;
    CHECK(took >= 50 * PLAIT_MS && took < 5 * PLAIT_SEC);
    CHECK(ticked >= 5); /* some 100 ticks of 1 ms on an idle machine */
    fprintf(stderr, "  the destroy took %lld ms, the ticker ticked %d times meanwhile\n",
            (long long)(took / PLAIT_MS), ticked);
    ticker_stop(t);
    return NULL;
}

TEST(a_destroy_from_a_coroutine_lets_its_scheduler_run)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    CHECK_EQ(plait_queue_send(q, "a", 1, SOON()), 0); /* this process noted as a sender */
    pid_t pid = table_held_by_a_stopped_child(((plait__shared_obj *)q)->map);
    check_run(destroy_main, q);
    stopped_child_lets_go(pid);
}

/* The death of a child that held a queue is told to the queue by whoever reaps it (the
 * manager thread, for a child plait started), before the child is reaped: with the
 * table of holders' lock held by another process, stopped with it, the report waited
 * for it as long as it stayed stopped, and with it every start, reaping and join of a
 * process (the child's join here; session 51's audit).  It waits some 100 ms now, and
 * leaves the dead holder to a purge (a waiting send or receive finds it). */
static ssize_t receive_two(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg_len, (void)out, (void)out_cap;
    plait_queue *q = *(plait_queue *const *)arg;
    char c;
    for (int i = 0; i < 2; i++)
        if (plait_queue_recv(q, &c, 1, SOON()) != 1)
            return -EPROTO;
    return 0;
}

TEST(a_death_report_does_not_wait_for_a_stopped_holder)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    plait_task receiver;
    CHECK_EQ(plait_process_start(&receiver, receive_two, &q, sizeof q, NULL, NULL), 0);
    CHECK_EQ(plait_queue_send(q, "1", 1, SOON()), 0);
    int64_t give_up = SOON();
    while (plait_queue_len(q) != 0 && plait_now() < give_up)
        sched_yield(); /* until the child's first receive (it noted its side) took it */
    CHECK_EQ(plait_queue_len(q), 0);
    pid_t holder = table_held_by_a_stopped_child(((plait__shared_obj *)q)->map);
    CHECK_EQ(plait_queue_send(q, "2", 1, SOON()), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(receiver, NULL, plait_deadline_in(5 * PLAIT_SEC)), 0);
    CHECK(plait_now() - start < 5 * PLAIT_SEC);
    stopped_child_lets_go(holder);
    /* the receivers are gone (the child unreported, the stopped one reaped here): a
     * send that waits for room finds them gone, by a purge */
    int r = 0;
    for (int i = 0; i < 5 && r == 0; i++)
        r = plait_queue_send(q, "3", 1, SOON());
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A try whose lock's holder died unreported (a plain fork()'s child killed in its copy
 * and reaped by the program) finds it dead in its grace, frees the lock, and takes it:
 * the send goes in.  (Failed first: the look that freed the lock was the last, and the
 * try answered -ETIMEDOUT on a queue with room; the next try went in; session 51's
 * audit.) */
TEST(a_try_takes_the_lock_it_finds_its_dead_holder_left)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    pid_t pid = holder_stopped_in_a_send(q);
    CHECK_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_EQ(plait_queue_send(q, "x", 1, 0), 0);
    char one[1];
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, 0), 1); /* (the dead one's never went in) */
    CHECK_EQ(one[0], 'x');
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A fork plait makes is told to the queue by the manager thread before the parent goes
 * on, an exec too: with the table of holders' lock held by another process, stopped
 * with it, each waited as long as it stayed stopped, and with them every start,
 * reaping and join of a process.  (Failed first: the function child's start waited
 * until the guard below let the holder go, 10 s.)  They wait some 100 ms each now;
 * the new child is counted untracked, and the queue works on once the holder goes on. */
typedef struct holder_guard {
    plait_event *done;
    pid_t holder;
    atomic_bool fired;
} holder_guard;

static void *guard_body(void *arg)
{
    holder_guard *g = arg;
    if (plait_event_wait(g->done, plait_deadline_in(10 * PLAIT_SEC)) == -ETIMEDOUT) {
        atomic_store(&g->fired, true);
        kill(g->holder, SIGCONT); /* the starts held up go on: a failure, not a hang */
    }
    return NULL;
}

static ssize_t return_nothing(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    return 0;
}

TEST(starts_do_not_wait_for_a_stopped_holder)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 4), 0);
    char one[1];
    CHECK_EQ(plait_queue_send(q, "a", 1, SOON()), 0); /* this process noted on both sides */
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, SOON()), 1);
    holder_guard g = {.holder = table_held_by_a_stopped_child(((plait__shared_obj *)q)->map)};
    CHECK_EQ(plait_event_create(&g.done), 0);
    pthread_t guard;
    thread_start(&guard, guard_body, &g);
    int64_t start = plait_now();
    plait_task t;
    CHECK_EQ(plait_process_start(&t, return_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    char *argv[] = {"true", NULL};
    CHECK_EQ(plait_process_exec(&t, "/bin/true", argv, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    int64_t took = plait_now() - start;
    CHECK(took < 5 * PLAIT_SEC);
    CHECK_EQ(plait_event_set(g.done), 0);
    thread_join(guard);
    CHECK(!atomic_load(&g.fired));
    fprintf(stderr, "  two starts and ends took %lld ms beside the stopped holder\n",
            (long long)(took / PLAIT_MS));
    CHECK_EQ(plait_event_destroy(g.done), 0);
    stopped_child_lets_go(g.holder);
    CHECK_EQ(plait_queue_send(q, "b", 1, SOON()), 0);
    CHECK_EQ(plait_queue_recv(q, one, sizeof one, SOON()), 1);
    CHECK_EQ(one[0], 'b');
    CHECK_EQ(plait_queue_destroy(q), 0);
}

RUN_TESTS(CASE(a_thread_keeps_its_deadline),
          CASE(a_coroutine_keeps_its_deadline_and_its_scheduler_runs),
          CASE(a_receive_already_waiting_keeps_its_deadline),
          CASE(len_and_close_do_not_wait_for_the_holder),
          CASE(a_receive_after_a_close_waits_for_the_send_under_way),
          CASE(a_stopped_sender_does_not_hold_up_receives),
          CASE(a_stopped_receiver_does_not_hold_up_sends),
          CASE(a_first_send_waits_for_the_table_without_the_senders_lock),
          CASE(a_waiting_receive_takes_a_message_while_the_table_is_held),
          CASE(a_destroy_from_a_coroutine_lets_its_scheduler_run),
          CASE(a_death_report_does_not_wait_for_a_stopped_holder),
          CASE(a_try_takes_the_lock_it_finds_its_dead_holder_left),
          CASE(starts_do_not_wait_for_a_stopped_holder))
