/*
 * test_pshared_holders.c — adversarial cases for the objects shared between processes
 * (review of psync.c, shm.c, pfutex.c, shared.c, queue.c).
 *
 *   - A coroutine that waits for a process mutex while another coroutine of its
 *     scheduler forks goes on waiting in the child too; when it gets the lock there,
 *     the lock must be the child's (it took it in its parent's name: the locker had
 *     read its process id once, before the fork, so the child could not unlock it and
 *     the parent saw its own coroutine holding it).
 *   - The same for a coroutine that waits for a queue's lock at the fork: a child killed
 *     while it held that lock left it to nobody (the lock named the parent, alive), and
 *     every later send and receive timed out.
 *   - A process mutex whose holder died and was reaped unreported (a plain fork()'s
 *     child): a try, or a wait shorter than the waiters' 100 ms looks, must see it gone
 *     (-EOWNERDEAD), and a destroy must not count it held.  The same for a queue whose
 *     only sender or receiver is gone so: -EPIPE, not -ETIMEDOUT.
 *   - plait_queue_destroy while another process is stopped holding the queue's lock.
 *   - Ids reused: a child forked with the id of a holder gone unreported must not be
 *     taken for it (a queue's table of holders, a mutex's word), nor may the fork wait
 *     for ever for a queue's lock that names the dead holder (ns_last_pid chooses ids).
 *   - Kept as guards: waiters (threads and coroutines) of two processes when a holder is
 *     killed; a receiver killed in its copy; a consumer killed at any point takes no
 *     message twice; no shared mapping or descriptor left behind.
 *
 * Every blocking call has a deadline; children are reaped within a bound (fork_child.h).
 */
#include "fork_child.h"
#include "stop_in_copy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* A deadline for a call that should not wait at all, unless a lock is left held. */
#define BRIEF() plait_deadline_in(PLAIT_SEC)

/* ---- a process mutex waited on by a coroutine across a fork ---- */

static plait_pmutex *sf_m;
static int sf_lock_r = 1, sf_unlock_r = 1; /* each process's own copy */

static void *sf_locker(void *arg)
{
    (void)arg;
    sf_lock_r = plait_pmutex_lock(sf_m, SOON());
    if (sf_lock_r == 0)
        sf_unlock_r = plait_pmutex_unlock(sf_m);
    return NULL;
}

static void *sf_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_pmutex_lock(sf_m, 0), 0); /* held by this coroutine... */
    plait_task x;
    CHECK_EQ(plait_spawn(&x, sf_locker, NULL), 0);
    settle(); /* ...while x waits for it */
    pid_t pid = fork_child(false);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(20);
        /* x goes on here: it gets the lock once the parent lets go, as this process */
        CHECK_EQ(plait_join(x, NULL, SOON()), 0);
        CHECK_EQ(sf_lock_r, 0);
        CHECK_EQ(sf_unlock_r, 0); /* -EPERM: it was taken in the parent's name */
        child_exit();
    }
    CHECK_EQ(plait_pmutex_unlock(sf_m), 0);
    CHECK_EQ(plait_join(x, NULL, SOON()), 0);
    CHECK_EQ(sf_lock_r, 0); /* -EDEADLK: the child's x held it as the parent's x */
    CHECK_EQ(sf_unlock_r, 0);
    reap_ok(pid, 15);
    /* both let go: it is free */
    CHECK_EQ(plait_pmutex_lock(sf_m, 0), 0);
    CHECK_EQ(plait_pmutex_unlock(sf_m), 0);
    return NULL;
}

TEST(pmutex_waited_across_a_fork_is_the_childs)
{
    CHECK_EQ(plait_pmutex_create(&sf_m), 0);
    check_run(sf_main, NULL);
    int r = plait_pmutex_destroy(sf_m);
    if (r == -EBUSY) { /* left held by the parent's id: do not leak it for later cases */
        CHECK(!"the mutex was left held");
    } else {
        CHECK_EQ(r, 0);
    }
}

/* ---- a queue's lock waited on by a coroutine across a fork ---- */

static plait_queue *qf_q;
static int qf_send_r = 1;
static char qf_msg[BIG];

static void *qf_sender(void *arg)
{
    (void)arg;
    /* waits for the lock (a stopped holder keeps it): the deadline bounds a lock that
     * nobody will ever release */
    qf_send_r = plait_queue_send(qf_q, qf_msg, sizeof qf_msg, plait_deadline_in(3 * PLAIT_SEC));
    return NULL;
}

/* Wait (looking every millisecond) until the child pid is stopped: true. */
static bool seen_stopped(pid_t pid)
{
    int64_t deadline = SOON();
    while (plait_now() < deadline) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WUNTRACED | WNOHANG);
        if (r == pid)
            return WIFSTOPPED(status);
        if (r < 0)
            return false;
        plait_sleep(PLAIT_MS);
    }
    return false;
}

static void *qf_main(void *arg)
{
    pid_t holder = *(pid_t *)arg;
    plait_task x;
    CHECK_EQ(plait_spawn(&x, qf_sender, NULL), 0);
    settle(); /* x waits for the queue's lock, which the stopped holder keeps */
    pid_t pid = fork_child(false);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(20);
        /* x goes on here: once it has the lock it stops in its copy, to be killed */
        stop_in_a_big_copy = 1;
        CHECK_EQ(plait_join(x, NULL, SOON()), 0);
        child_exit();
    }
    CHECK_EQ(kill(holder, SIGCONT), 0); /* the holder sends and lets go */
    /* the child's x takes the lock (before or after this process's x) and stops */
    CHECK(seen_stopped(pid));
    CHECK_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* the dead child's lock is released: this process's x sends, and the queue works */
    CHECK_EQ(plait_join(x, NULL, SOON()), 0);
    CHECK_EQ(qf_send_r, 0);
    static char got[BIG];
    CHECK_EQ(plait_queue_recv(qf_q, got, sizeof got, BRIEF()), (ssize_t)BIG); /* the holder's */
    CHECK_EQ(plait_queue_recv(qf_q, got, sizeof got, BRIEF()), (ssize_t)BIG); /* x's */
    CHECK_EQ(plait_queue_recv(qf_q, got, sizeof got, 0), -ETIMEDOUT); /* not the child's */
    CHECK_EQ(plait_queue_send(qf_q, "x", 1, BRIEF()), 0);
    CHECK_EQ(plait_queue_recv(qf_q, got, sizeof got, BRIEF()), 1);
    return NULL;
}

TEST(queue_lock_waited_across_a_fork_is_the_childs)
{
    if (CHECK_TSAN) { /* its child must run, and fork_child ends it at once there */
        CHECK_SKIP("the child of a fork from a coroutine does not run under ThreadSanitizer");
        return;
    }
    int before = check_failures;
    CHECK_EQ(plait_queue_create(&qf_q, BIG, 4), 0);
    pid_t holder = holder_stopped_in_a_send(qf_q);
    check_run(qf_main, &holder);
    int status = 0;
    if (waitpid(holder, &status, WNOHANG) == 0) { /* not let go on: do not leave it */
        kill(holder, SIGKILL);
        waitpid(holder, &status, 0);
    }
    /* a destroy takes the lock (without a deadline): not when it is left held */
    if (check_failures == before)
        CHECK_EQ(plait_queue_destroy(qf_q), 0);
}

/* ---- a holder gone unreported, and a caller with a short deadline ---- */

/* A plain fork()'s child takes the mutex and exits; this process reaps it itself, so
 * nobody tells the mutex.  API.md: the next holder gets -EOWNERDEAD for a holder "gone
 * for good, reaped by someone else", found by a look at whether it still exists.  A
 * caller that tries (a past deadline) or waits less than the waiters' 100 ms between
 * looks never looked: it got -ETIMEDOUT for ever, on a mutex nobody holds. */
TEST(pmutex_of_a_holder_reaped_unreported_to_a_try)
{
    plait_pmutex *m;
    plait_shm *r;
    CHECK_EQ(plait_pmutex_create(&m), 0);
    CHECK_EQ(plait_shm_create(&r, 8), 0);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        int a = plait_pmutex_lock(m, 0), b = plait_shm_lock(r, 0);
        _exit(a == 0 && b == 0 ? 0 : 1); /* holding both */
    }
    reap_ok(pid, 10); /* reaped here: gone, and nobody told the objects */
    CHECK_EQ(plait_pmutex_lock(m, 0), -EOWNERDEAD);
    CHECK_EQ(plait_pmutex_unlock(m), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_shm_lock(r, plait_deadline_in(20 * PLAIT_MS)), -EOWNERDEAD);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_shm_unlock(r), 0);
    CHECK_EQ(plait_pmutex_lock(m, 0), 0); /* told once */
    CHECK_EQ(plait_pmutex_unlock(m), 0);
    /* nor is it held for a destroy (-EBUSY for ever: the handle and its mapping were
     * kept until the process ended) */
    pid = fork_child(true);
    if (pid == 0) {
        int a = plait_pmutex_lock(m, 0), b = plait_shm_lock(r, 0);
        _exit(a == 0 && b == 0 ? 0 : 1);
    }
    reap_ok(pid, 10);
    CHECK_EQ(plait_pmutex_destroy(m), 0);
    CHECK_EQ(plait_shm_destroy(r), 0);
}

/* The queue's other side gone unreported: a plain fork()'s child, the only sender (or
 * the only receiver), ends and this process reaps it itself, so nobody tells the queue.
 * A wait of 100 ms or more looks at its holders and answers -EPIPE; a shorter one, or
 * a try, never looked and answered -ETIMEDOUT, on a queue whose other side is gone for
 * good: the answer hung on the deadline's length. */
TEST(queue_side_gone_unreported_to_a_short_wait)
{
    plait_queue *q;
    char c;
    CHECK_EQ(plait_queue_create(&q, 1, 1), 0);
    CHECK_EQ(plait_queue_recv(q, &c, 1, 0), -ETIMEDOUT); /* this process receives */
    pid_t sender = fork_child(true);
    if (sender == 0)
        _exit(plait_queue_send(q, "a", 1, 0) == 0 ? 0 : 1);
    reap_ok(sender, 10);
    CHECK_EQ(plait_queue_recv(q, &c, 1, 0), 1);
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_recv(q, &c, 1, plait_deadline_in(20 * PLAIT_MS)), -EPIPE);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_queue_destroy(q), 0);

    /* the other way round: the only receiver is SIGKILLed once it took a message, and
     * a send that finds the queue full tries (a past deadline) */
    CHECK_EQ(plait_queue_create(&q, 1, 1), 0);
    CHECK_EQ(plait_queue_send(q, "a", 1, 0), 0); /* this process sends */
    int took[2];
    CHECK_EQ(pipe(took), 0);
    pid_t receiver = fork_child(true);
    if (receiver == 0) {
        close(took[0]);
        if (plait_queue_recv(q, &c, 1, 0) != 1)
            _exit(1);
        CHECK_EQ(write(took[1], "t", 1), 1);
        pause(); /* until killed */
        _exit(1);
    }
    close(took[1]);
    CHECK_EQ(read(took[0], &c, 1), 1); /* (0: the child failed and ended) */
    close(took[0]);
    CHECK_EQ(kill(receiver, SIGKILL), 0);
    int status = reap_within(receiver, 10);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_EQ(plait_queue_send(q, "b", 1, 0), 0); /* room for one: full again */
    CHECK_EQ(plait_queue_send(q, "c", 1, 0), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* Plain fork()'s children that end one after another, each reaped by this process
 * (never more than one alive), each entered in the queue's table of holders as it
 * started (64 entries) and never reported gone: the 64th found the table full, the
 * queue counted it untracked for good and never said -EPIPE again (its receiver then
 * waited out every deadline, for ever with none).  A full table loses the holders gone
 * first. */
TEST(queue_holders_gone_one_by_one_never_fill_its_table)
{
    plait_queue *q;
    char c;
    CHECK_EQ(plait_queue_create(&q, 1, 1), 0);
    CHECK_EQ(plait_queue_recv(q, &c, 1, 0), -ETIMEDOUT); /* this process receives */
    for (int i = 0; i < 80; i++) {
        pid_t pid = fork_child(true);
        if (pid == 0)
            _exit(0);
        reap_ok(pid, 10);
    }
    pid_t sender = fork_child(true);
    if (sender == 0)
        _exit(plait_queue_send(q, "a", 1, 0) == 0 ? 0 : 1);
    reap_ok(sender, 10);
    CHECK_EQ(plait_queue_recv(q, &c, 1, BRIEF()), 1);
    CHECK_EQ(plait_queue_recv(q, &c, 1, BRIEF()), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* ---- a destroy while another process holds the queue's lock, stopped ---- */

typedef struct {
    plait_queue *q;
    atomic_int done;
    int r;
} qd_ctx;

static void *qd_destroy(void *arg)
{
    qd_ctx *c = arg;
    c->r = plait_queue_destroy(c->q);
    atomic_store(&c->done, 1);
    return NULL;
}

/* API.md: send and receive keep their deadlines while a holder is stopped in the middle
 * of its copy, len and close never wait for it, and "a fork, and the reaping of a child
 * that held the queue, do wait for it".  plait_queue_destroy, which takes no deadline,
 * waited too, for as long as the holder stayed stopped (its leave of the table of
 * holders took the lock without any bound). */
TEST(queue_destroy_does_not_wait_for_a_stopped_holder)
{
    qd_ctx c = {.r = 1};
    CHECK_EQ(plait_queue_create(&c.q, BIG, 2), 0);
    pid_t holder = holder_stopped_in_a_send(c.q);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, qd_destroy, &c), 0);
    int64_t start = plait_now();
    while (!atomic_load(&c.done) && plait_now() - start < 3 * PLAIT_SEC)
        plait_sleep(PLAIT_MS);
    CHECK(atomic_load(&c.done)); /* else it waits for the holder */
    CHECK_EQ(kill(holder, SIGCONT), 0); /* (lets a destroy that waited go on) */
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(c.r, 0);
    int status = 0;
    CHECK_EQ(waitpid(holder, &status, 0), holder);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* its send went through */
}

/* ---- a holder killed while threads and coroutines of two processes wait ---- */

enum { MW_WAITERS = 4 };

typedef struct {
    plait_pmutex *m;
    plait_shm *log;             /* mw_log: what each waiter got, under m */
    plait_pevent *held;
} mw_ctx;

typedef struct {
    int results[MW_WAITERS];
    int n;
} mw_log;

static mw_ctx mw;

/* Lock (the holder is killed meanwhile), note what it said, unlock. */
static void *mw_wait(void *arg)
{
    (void)arg;
    int r = plait_pmutex_lock(mw.m, SOON());
    if (r == 0 || r == -EOWNERDEAD) {
        mw_log *log = plait_shm_data(mw.log);
        log->results[log->n++ % MW_WAITERS] = r;
        r = plait_pmutex_unlock(mw.m);
    }
    return ARG(r);
}

static void *mw_thread(void *arg)
{
    return mw_wait(arg);
}

/* In a process: one thread and one coroutine wait. */
static void *mw_waiters(void *arg)
{
    (void)arg;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, mw_thread, NULL), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, mw_wait, NULL), 0);
    void *r = ARG(1), *tr = ARG(1);
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    CHECK_EQ(pthread_join(th, &tr), 0);
    CHECK_EQ(INT(r), 0);
    CHECK_EQ(INT(tr), 0);
    return NULL;
}

static ssize_t mw_holder(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    if (plait_pmutex_lock(mw.m, 0) != 0)
        return -EPROTO;
    plait_pevent_set(mw.held);
    plait_sleep(20 * PLAIT_SEC); /* until killed */
    return 0;
}

static ssize_t mw_other(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    int before = check_failures;
    check_run(mw_waiters, NULL);
    return check_failures == before ? 0 : -EPROTO;
}

static void *mw_main(void *arg)
{
    (void)arg;
    plait_task holder, other;
    CHECK_EQ(plait_process_start(&holder, mw_holder, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_pevent_wait(mw.held, SOON()), 0);
    CHECK_EQ(plait_process_start(&other, mw_other, NULL, 0, NULL, NULL), 0);
    plait_task mine;
    CHECK_EQ(plait_spawn(&mine, mw_waiters, NULL), 0);
    settle(); /* this process's coroutine waits (its thread soon too) */
    CHECK_EQ(plait_pmutex_lock(mw.m, 0), -ETIMEDOUT);
    CHECK_EQ(plait_process_kill(holder, SIGKILL), 0);
    CHECK_EQ(plait_join(mine, NULL, SOON()), 0);
    CHECK_EQ(plait_join(other, NULL, SOON()), 0);
    CHECK_EQ(plait_join(holder, NULL, SOON()), PLAIT_KILLED(SIGKILL));
    mw_log *log = plait_shm_data(mw.log);
    CHECK_EQ(log->n, MW_WAITERS);
    int owner_dead = 0;
    for (int i = 0; i < MW_WAITERS; i++)
        owner_dead += log->results[i] == -EOWNERDEAD;
    CHECK_EQ(owner_dead, 1); /* the first after the death, and only it */
    CHECK_EQ(plait_pmutex_lock(mw.m, 0), 0);
    CHECK_EQ(plait_pmutex_unlock(mw.m), 0);
    return NULL;
}

TEST(pmutex_holder_killed_while_both_processes_wait)
{
    CHECK_EQ(plait_pmutex_create(&mw.m), 0);
    CHECK_EQ(plait_shm_create(&mw.log, sizeof(mw_log)), 0);
    CHECK_EQ(plait_pevent_create(&mw.held), 0);
    check_run(mw_main, NULL);
    CHECK_EQ(plait_pmutex_destroy(mw.m), 0);
    CHECK_EQ(plait_shm_destroy(mw.log), 0);
    CHECK_EQ(plait_pevent_destroy(mw.held), 0);
}

/* ---- a receiver killed in the middle of its copy ---- */

static plait_queue *rk_q;

static ssize_t rk_receiver(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    static char buf[BIG];
    stop_in_a_big_copy = 1;
    plait_queue_recv(rk_q, buf, sizeof buf, SOON()); /* stops in the copy */
    return -EPROTO;
}

/* The message a receiver was copying when it died stays queued, whole, for the next:
 * neither lost nor taken twice.  Its death reported (a child plait started) or not (a
 * plain fork()'s child that this process reaps itself). */
static void receiver_killed_in_its_copy(bool reported)
{
    CHECK_EQ(plait_queue_create(&rk_q, BIG, 2), 0);
    static char msg[BIG], got[BIG];
    for (int i = 0; i < 2; i++) {
        memset(msg, 'a' + i, sizeof msg);
        CHECK_EQ(plait_queue_send(rk_q, msg, sizeof msg, SOON()), 0);
    }
    if (reported) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, rk_receiver, NULL, 0, NULL, NULL), 0);
        int pid = plait_process_pid(t);
        CHECK(pid > 0);
        CHECK(seen_stopped(pid) || !"the receiver never stopped");
        CHECK_EQ(plait_process_kill(t, SIGKILL), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_KILLED(SIGKILL));
    } else {
        pid_t pid = fork_child(true);
        if (pid == 0)
            _exit((int)-rk_receiver(NULL, 0, NULL, 0));
        CHECK(seen_stopped(pid));
        CHECK_EQ(kill(pid, SIGKILL), 0);
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
    }
    CHECK_EQ(plait_queue_len(rk_q), 2);
    for (int i = 0; i < 2; i++) {
        memset(got, 0, sizeof got);
        CHECK_EQ(plait_queue_recv(rk_q, got, sizeof got, BRIEF()), (ssize_t)BIG);
        CHECK(got[0] == 'a' + i && got[BIG - 1] == 'a' + i);
    }
    CHECK_EQ(plait_queue_recv(rk_q, got, sizeof got, 0), -ETIMEDOUT);
    CHECK_EQ(plait_queue_destroy(rk_q), 0);
}

TEST(queue_receiver_killed_in_its_copy_reported)
{
    receiver_killed_in_its_copy(true);
}

TEST(queue_receiver_killed_in_its_copy_unreported)
{
    receiver_killed_in_its_copy(false);
}

/* ---- nothing left behind: mappings and descriptors ---- */

/* Shared anonymous mappings of this process now (each shared object is one: "rw-s",
 * "/dev/zero (deleted)" in /proc/self/maps; a sanitizer's own mappings are private);
 * -1 when it cannot be read. */
static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f))
        n += strstr(line, " rw-s ") && strstr(line, "/dev/zero");
    fclose(f);
    return n;
}

enum { LK_EACH = 20 };

typedef struct {
    plait_pmutex *m[LK_EACH];
    plait_psem *s[LK_EACH];
    plait_pevent *e[LK_EACH];
    plait_queue *q[LK_EACH];
    plait_shm *r[LK_EACH];
} lk_objects;

static void lk_create(lk_objects *o)
{
    for (int i = 0; i < LK_EACH; i++) {
        CHECK_EQ(plait_pmutex_create(&o->m[i]), 0);
        CHECK_EQ(plait_psem_create(&o->s[i], 1), 0);
        CHECK_EQ(plait_pevent_create(&o->e[i]), 0);
        CHECK_EQ(plait_queue_create(&o->q[i], 100, 3), 0);
        CHECK_EQ(plait_shm_create(&o->r[i], 4096 * (size_t)(i + 1)), 0);
    }
}

static void lk_destroy(lk_objects *o)
{
    for (int i = 0; i < LK_EACH; i++) {
        CHECK_EQ(plait_pmutex_destroy(o->m[i]), 0);
        CHECK_EQ(plait_psem_destroy(o->s[i]), 0);
        CHECK_EQ(plait_pevent_destroy(o->e[i]), 0);
        CHECK_EQ(plait_queue_destroy(o->q[i]), 0);
        CHECK_EQ(plait_shm_destroy(o->r[i]), 0);
    }
}

static plait_pevent *lk_go;

static ssize_t lk_child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return plait_pevent_wait(lk_go, SOON());
}

/* Objects destroyed while a child that holds them lives stay mapped (their deaths must
 * still reach them) and go with it; those made and destroyed with no child go at once.
 * Neither leaves a mapping or a descriptor behind. */
TEST(no_mapping_or_descriptor_left_behind)
{
    CHECK_EQ(plait_pevent_create(&lk_go), 0);
    plait_task warm;
    CHECK_EQ(plait_process_start(&warm, lk_child, NULL, 0, NULL, NULL), 0); /* the manager */
    CHECK_EQ(plait_pevent_set(lk_go), 0);
    CHECK_EQ(plait_join(warm, NULL, SOON()), 0);
    CHECK_EQ(plait_pevent_reset(lk_go), 0);
    int maps = count_maps(), fds = count_fds();
    CHECK(maps >= 0 && fds > 0);

    static lk_objects o;
    lk_create(&o);
    CHECK_EQ(count_maps(), maps + 5 * LK_EACH);
    lk_destroy(&o);
    CHECK_EQ(count_maps(), maps);

    lk_create(&o);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, lk_child, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_queue_send(o.q[0], "x", 1, SOON()), 0);
    lk_destroy(&o);
    /* kept for the child's death (and the child's own result area is mapped) */
    CHECK(count_maps() >= maps + 5 * LK_EACH);
    CHECK_EQ(plait_pevent_set(lk_go), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(count_maps(), maps);
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(plait_pevent_destroy(lk_go), 0);
}

/* ---- a consumer killed at any point: no message taken twice, at most its own lost ---- */

enum { CK_TOTAL = 3000, CK_KILL_AT = 1000, CK_CONSUMERS = 3 };

typedef struct {
    unsigned char seen[CK_TOTAL];
    int dups, marked;
} ck_record;

static plait_queue *ck_q;
static plait_shm *ck_rec; /* a ck_record, under its lock */

static ssize_t ck_consumer(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    ck_record *rec = plait_shm_data(ck_rec);
    for (;;) {
        uint32_t id;
        ssize_t n = plait_queue_recv(ck_q, &id, sizeof id, SOON());
        if (n == -EPIPE)
            return 0;
        if (n != (ssize_t)sizeof id || id >= CK_TOTAL)
            return -EPROTO;
        int r = plait_shm_lock(ck_rec, SOON());
        if (r != 0 && r != -EOWNERDEAD)
            return -EPROTO;
        if (rec->seen[id]++)
            rec->dups++;
        else
            rec->marked++;
        plait_shm_unlock(ck_rec);
    }
}

/* The consumer killed may have died with a message received and not yet noted (lost
 * with it, as any process's data is), or in the middle of its receive (the message
 * stays queued), or holding the record's lock (the next gets -EOWNERDEAD; the record
 * is written so that either count is whole). */
TEST(queue_consumer_killed_takes_nothing_twice)
{
    CHECK_EQ(plait_queue_create(&ck_q, sizeof(uint32_t), 8), 0);
    CHECK_EQ(plait_shm_create(&ck_rec, sizeof(ck_record)), 0);
    plait_task t[CK_CONSUMERS];
    for (int i = 0; i < CK_CONSUMERS; i++)
        CHECK_EQ(plait_process_start(&t[i], ck_consumer, NULL, 0, NULL, NULL), 0);
    for (uint32_t id = 0; id < CK_TOTAL; id++) {
        if (id == CK_KILL_AT)
            CHECK_EQ(plait_process_kill(t[0], SIGKILL), 0);
        CHECK_EQ(plait_queue_send(ck_q, &id, sizeof id, SOON()), 0);
    }
    CHECK_EQ(plait_queue_close(ck_q), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), PLAIT_KILLED(SIGKILL));
    for (int i = 1; i < CK_CONSUMERS; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    ck_record *rec = plait_shm_data(ck_rec);
    CHECK_EQ(rec->dups, 0);
    CHECK(rec->marked >= CK_TOTAL - 1 && rec->marked <= CK_TOTAL);
    CHECK_EQ(plait_queue_len(ck_q), 0);
    CHECK_EQ(plait_queue_destroy(ck_q), 0);
    CHECK_EQ(plait_shm_destroy(ck_rec), 0);
}

/* ---- a new child with the id of a holder gone unreported ---- */

/* Ask the kernel for pid as the next process id of this namespace: true when it took. */
static bool next_pid_is(pid_t pid)
{
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (!f)
        return false;
    bool ok = fprintf(f, "%d", (int)pid - 1) > 0;
    return fclose(f) == 0 && ok;
}

static ssize_t pr_nothing(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return 0;
}

/* plait's manager thread, started first: a thread started later could take the id. */
static void manager_up(void)
{
    plait_task warm;
    CHECK_EQ(plait_process_start(&warm, pr_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(warm, NULL, SOON()), 0);
}

/* Start fn with the id want as its argument, after asking for that id: *chose says
 * whether it could be asked for, *got whether the child has it.  A child that has not
 * must end at once without touching anything (its fn compares). */
static plait_task start_with_id(pid_t want, plait_proc_fn fn, bool *chose, bool *got)
{
    plait_task t = {0};
    *got = false;
    *chose = next_pid_is(want);
    if (*chose) {
        CHECK_EQ(plait_process_start(&t, fn, &want, sizeof want, NULL, NULL), 0);
        *got = plait_process_pid(t) == want;
    }
    return t;
}

/* Whether this child has the id it was started for (see start_with_id). */
static bool has_wanted_id(const void *arg)
{
    pid_t want;
    memcpy(&want, arg, sizeof want);
    return getpid() == want;
}

static plait_queue *pr_q;
static plait_pevent *pr_took, *pr_done;

static ssize_t pr_receiver(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    if (!has_wanted_id(arg))
        return 0;
    char c;
    if (plait_queue_recv(pr_q, &c, 1, SOON()) != 1) /* a receiver, and no sender */
        return -EPROTO;
    plait_pevent_set(pr_took);
    return plait_pevent_wait(pr_done, SOON());
}

/* A plain fork()'s child that sent (the only sender) ends, reaped by this process: nobody
 * tells the queue, and its entry in the table of holders stays until a waiter's look
 * finds it gone.  Ids are reused (pid_max is often 32768): a child plait forks next may
 * get its id.  The table took that child for the old holder, with its side: a sender
 * for ever while the new child lives (a receiver waited for ever where every sender was
 * gone), or a receiver where the new child could be either side (-EPIPE too early).
 * (A child that does not get the id, ending, has the old entry purged: the whole case
 * again then.) */
TEST(queue_child_with_the_id_of_a_gone_holder)
{
    manager_up();
    bool chose = true, got = false;
    for (int tries = 0; tries < 20 && chose && !got; tries++) {
        CHECK_EQ(plait_queue_create(&pr_q, 1, 4), 0);
        CHECK_EQ(plait_pevent_create(&pr_took), 0);
        CHECK_EQ(plait_pevent_create(&pr_done), 0);
        char c;
        CHECK_EQ(plait_queue_recv(pr_q, &c, 1, 0), -ETIMEDOUT); /* this process receives */
        pid_t sender = fork_child(true);
        if (sender == 0)
            _exit(plait_queue_send(pr_q, "a", 1, SOON()) == 0 &&
                          plait_queue_send(pr_q, "b", 1, SOON()) == 0
                      ? 0
                      : 1);
        reap_ok(sender, 10);
        plait_task t = start_with_id(sender, pr_receiver, &chose, &got);
        if (got) {
            CHECK_EQ(plait_pevent_wait(pr_took, SOON()), 0);
            CHECK_EQ(plait_queue_recv(pr_q, &c, 1, SOON()), 1);
            /* empty; the only sender is gone, the two left receive: end of file */
            CHECK_EQ(plait_queue_recv(pr_q, &c, 1, BRIEF()), -EPIPE);
            CHECK_EQ(plait_pevent_set(pr_done), 0);
        }
        if (chose)
            CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK_EQ(plait_queue_destroy(pr_q), 0);
        CHECK_EQ(plait_pevent_destroy(pr_took), 0);
        CHECK_EQ(plait_pevent_destroy(pr_done), 0);
    }
    if (!chose)
        CHECK_SKIP("cannot choose the next process id (/proc/sys/kernel/ns_last_pid)");
    else if (!got)
        CHECK_SKIP("the process id was taken by others each time");
}

/* The same for a process mutex: its holder, a plain fork()'s child that this process
 * reaped, is gone, and the next locker must get -EOWNERDEAD — but a child forked with
 * its id made it look alive, and the mutex stayed held for as long as that child lived.
 * (Any other process given the id does too: that, nobody can tell.) */
static plait_pevent *pm_done;

static ssize_t pm_child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    return has_wanted_id(arg) ? plait_pevent_wait(pm_done, SOON()) : 0;
}

TEST(pmutex_child_with_the_id_of_a_gone_holder)
{
    manager_up();
    bool chose = true, got = false;
    for (int tries = 0; tries < 20 && chose && !got; tries++) {
        plait_pmutex *m;
        plait_shm *r;
        CHECK_EQ(plait_pmutex_create(&m), 0);
        CHECK_EQ(plait_shm_create(&r, 8), 0);
        CHECK_EQ(plait_pevent_create(&pm_done), 0);
        pid_t holder = fork_child(true);
        if (holder == 0)
            _exit(plait_pmutex_lock(m, 0) == 0 && plait_shm_lock(r, 0) == 0 ? 0 : 1);
        reap_ok(holder, 10);
        plait_task t = start_with_id(holder, pm_child, &chose, &got);
        if (got) {
            CHECK_EQ(plait_pmutex_lock(m, BRIEF()), -EOWNERDEAD);
            CHECK_EQ(plait_pmutex_unlock(m), 0);
            CHECK_EQ(plait_shm_lock(r, BRIEF()), -EOWNERDEAD);
            CHECK_EQ(plait_shm_unlock(r), 0);
            CHECK_EQ(plait_pevent_set(pm_done), 0);
        }
        if (chose)
            CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        /* free, one way or another (its holder found gone) — unless the child missed
         * the id and another process (a test beside this one) got it: then the holder
         * looks alive, as documented, and the objects stay as they are */
        int lr = plait_pmutex_lock(m, 0), sr = plait_shm_lock(r, 0);
        if (got) {
            CHECK(lr == 0 || lr == -EOWNERDEAD);
            CHECK(sr == 0 || sr == -EOWNERDEAD);
        } else {
            CHECK(lr == 0 || lr == -EOWNERDEAD || lr == -ETIMEDOUT);
            CHECK(sr == 0 || sr == -EOWNERDEAD || sr == -ETIMEDOUT);
        }
        if (lr == 0 || lr == -EOWNERDEAD)
            CHECK_EQ(plait_pmutex_unlock(m), 0);
        if (sr == 0 || sr == -EOWNERDEAD)
            CHECK_EQ(plait_shm_unlock(r), 0);
        if (lr != -ETIMEDOUT)
            CHECK_EQ(plait_pmutex_destroy(m), 0);
        if (sr != -ETIMEDOUT)
            CHECK_EQ(plait_shm_destroy(r), 0);
        CHECK_EQ(plait_pevent_destroy(pm_done), 0);
    }
    if (!chose)
        CHECK_SKIP("cannot choose the next process id (/proc/sys/kernel/ns_last_pid)");
    else if (!got)
        CHECK_SKIP("the process id was taken by others each time");
}

/* A child of plait's that the program reaps itself (SIGCHLD ignored, its own
 * waitpid): its death reaches the shared objects only when the manager next looks at
 * it.  If the next child plait forks gets its id meanwhile, that late report is taken
 * for the new child's death: a queue struck the new child off its holders, and a
 * receiver got end of file (-EPIPE) while that child, a sender, lived (a mutex it took
 * before the report would be marked dead and given to another).  plait forks no child
 * with the id of one whose death it has yet to report.  The program's reaping and the
 * choice of the id are made in a fork handler (pthread_atfork), on the manager thread
 * as it starts the new child, before it can look at the old one; fork() is wrapped
 * (-Wl,--wrap, tests/CMakeLists.txt) to see the id the manager's first fork got. */
static pid_t rr_first;       /* the program's child whose id is asked for again */
static atomic_int rr_armed;  /* the next fork's prepare handler reaps rr_first */
static atomic_int rr_chose;  /* the id could be asked for */
static atomic_int rr_forked; /* the first fork's pid since the handler ran (0: none) */
static atomic_int rr_watch;  /* fork() notes its pid in rr_forked */

pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __wrap_fork(void)
{
    pid_t pid = __real_fork();
    int none = 0;
    if (pid > 0 && atomic_load(&rr_watch))
        atomic_compare_exchange_strong(&rr_forked, &none, (int)pid);
    return pid;
}

/* (No allocation in a fork handler: a sanitizer's allocator may be locked for the fork
 * by then, so the id is asked for with open and write, not next_pid_is's stdio.) */
static void rr_prepare(void)
{
    if (!atomic_exchange(&rr_armed, 0))
        return;
    kill(rr_first, SIGKILL);
    while (waitpid(rr_first, NULL, 0) < 0 && errno == EINTR) {
    }
    char text[32];
    int len = snprintf(text, sizeof text, "%d", (int)rr_first - 1);
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    atomic_store(&rr_chose, fd >= 0 && write(fd, text, (size_t)len) == len);
    if (fd >= 0)
        close(fd);
    atomic_store(&rr_watch, 1);
}

static plait_queue *rr_queue;
static plait_pevent *rr_release;

static ssize_t rr_wait(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return plait_pevent_wait(rr_release, SOON());
}

static ssize_t rr_sender(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    int r = plait_pevent_wait(rr_release, SOON());
    return r < 0 ? r : plait_queue_send(rr_queue, "x", 1, SOON());
}

TEST(a_child_with_the_id_of_one_the_program_reaped_is_not_taken_for_it)
{
    manager_up();
    static bool registered;
    if (!registered)
        CHECK_EQ(pthread_atfork(rr_prepare, NULL, NULL), 0);
    registered = true;
    bool telling = false, chose = true;
    for (int tries = 0; tries < 10 && chose && !telling; tries++) {
        CHECK_EQ(plait_queue_create(&rr_queue, 1, 4), 0);
        CHECK_EQ(plait_pevent_create(&rr_release), 0);
        char c;
        CHECK_EQ(plait_queue_recv(rr_queue, &c, 1, 0), -ETIMEDOUT); /* this process receives */
        plait_task first, second;
        CHECK_EQ(plait_process_start(&first, rr_wait, NULL, 0, NULL, NULL), 0);
        rr_first = plait_process_pid(first);
        atomic_store(&rr_forked, 0);
        atomic_store(&rr_armed, 1);
        CHECK_EQ(plait_process_start(&second, rr_sender, NULL, 0, NULL, NULL), 0);
        atomic_store(&rr_watch, 0);
        chose = atomic_load(&rr_chose);
        telling = chose && atomic_load(&rr_forked) == (int)rr_first;
        /* the first's end, reaped by the program: its death has reached the objects
         * once its join returns */
        CHECK(plait_join(first, NULL, SOON()) != -ETIMEDOUT);
        /* the second, alive, may still send: no end of file */
        CHECK_EQ(plait_queue_recv(rr_queue, &c, 1, plait_deadline_in(100 * PLAIT_MS)),
                 -ETIMEDOUT);
        CHECK_EQ(plait_pevent_set(rr_release), 0);
        CHECK_EQ(plait_queue_recv(rr_queue, &c, 1, SOON()), 1);
        CHECK_EQ(c, 'x');
        void *r;
        CHECK_EQ(plait_join(second, &r, SOON()), 0);
        free(r);
        CHECK_EQ(plait_queue_destroy(rr_queue), 0);
        CHECK_EQ(plait_pevent_destroy(rr_release), 0);
    }
    if (!chose)
        CHECK_SKIP("cannot choose the next process id (/proc/sys/kernel/ns_last_pid)");
    else if (!telling)
        CHECK_SKIP("the process id was taken by others each time");
}

/* A holder killed in the middle of its copy, a plain fork()'s child that this process
 * reaps: the queue's lock names it until a locker looks whether it still exists.  If a
 * child that plait forks next gets its id, the fork itself (which enters the child in
 * the queue's table, under that lock) found the lock held by that live child, which
 * waits for its parent to go on: plait_process_start never returned. */
typedef struct {
    pid_t want;
    atomic_int done;
    int r, pid;
    bool chose;
    plait_task t;
} ps_start;

/* Choose the id (here: a thread started after the choice would take it), then start. */
static void *ps_start_one(void *arg)
{
    ps_start *s = arg;
    s->chose = next_pid_is(s->want);
    if (s->chose)
        s->r = plait_process_start(&s->t, pr_nothing, NULL, 0, NULL, NULL);
    s->pid = s->chose && s->r == 0 ? plait_process_pid(s->t) : -1;
    atomic_store(&s->done, 1);
    return NULL;
}

/* Whether pid is a child of this process (/proc/PID/stat's fourth field). */
static bool is_my_child(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512] = "";
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    const char *paren = ok ? strrchr(line, ')') : NULL;
    int ppid = 0;
    return paren && sscanf(paren + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid();
}

TEST(queue_lock_of_a_gone_holder_whose_id_a_child_gets)
{
    manager_up();
    /* once a fork that did not get the id has looked at the lock, it is released: the
     * whole case again, until a child gets the id */
    bool got = false, chose = true;
    for (int tries = 0; tries < 20 && !got && chose; tries++) {
        plait_queue *q;
        CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
        char c;
        /* this process sends and receives: no side ends when the children die */
        CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
        CHECK_EQ(plait_queue_recv(q, &c, 1, SOON()), 1);
        pid_t holder = holder_stopped_in_a_send(q);
        CHECK_EQ(kill(holder, SIGKILL), 0);
        int status = 0;
        CHECK_EQ(waitpid(holder, &status, 0), holder);
        ps_start st = {.want = holder, .r = 1};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, ps_start_one, &st), 0);
        int64_t start = plait_now();
        while (!atomic_load(&st.done) && plait_now() - start < 3 * PLAIT_SEC)
            plait_sleep(PLAIT_MS);
        bool hung = !atomic_load(&st.done);
        if (hung) {
            CHECK(!"plait_process_start hung");
            if (is_my_child(holder)) /* the new child, with the id: lets the start go on */
                kill(holder, SIGKILL);
        }
        CHECK_EQ(pthread_join(th, NULL), 0);
        chose = st.chose;
        got = hung || st.pid == holder;
        if (st.r == 0)
            CHECK_EQ(plait_join(st.t, NULL, SOON()), hung ? PLAIT_KILLED(SIGKILL) : 0);
        /* the queue works: the dead holder's message never went in — unless the child
         * missed the id and another process (a test beside this one) got it: then the
         * lock's holder looks alive, as documented, and the queue stays as it is */
        int sent = chose ? plait_queue_send(q, "y", 1, BRIEF()) : -ETIMEDOUT;
        if (chose && (got || sent != -ETIMEDOUT)) {
            CHECK_EQ(sent, 0);
            CHECK_EQ(plait_queue_recv(q, &c, 1, BRIEF()), 1);
            CHECK_EQ(c, 'y');
            CHECK_EQ(plait_queue_recv(q, &c, 1, 0), -ETIMEDOUT);
            CHECK_EQ(plait_queue_destroy(q), 0);
        }
    }
    if (!chose)
        CHECK_SKIP("cannot choose the next process id (/proc/sys/kernel/ns_last_pid)");
    else if (!got)
        CHECK_SKIP("the process id was taken by others each time");
}

/* Objects made while another thread starts processes: a fork tells every object held
 * that the new child holds it too (its kind's `forked` hook, read under the registry's
 * lock), and the hooks of a mutex, a region and a queue were set after the object was
 * registered, outside that lock — a data race with the fork's read (ThreadSanitizer
 * saw it). */
static atomic_bool made_enough;

static void *make_objects(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        plait_pmutex *m;
        plait_shm *r;
        plait_queue *q;
        CHECK_EQ(plait_pmutex_create(&m), 0);
        CHECK_EQ(plait_shm_create(&r, 64), 0);
        CHECK_EQ(plait_queue_create(&q, 8, 2), 0);
        CHECK_EQ(plait_pmutex_destroy(m), 0);
        CHECK_EQ(plait_shm_destroy(r), 0);
        CHECK_EQ(plait_queue_destroy(q), 0);
    }
    atomic_store(&made_enough, true);
    return NULL;
}

TEST(objects_made_while_processes_start)
{
    manager_up();
    atomic_store(&made_enough, false);
    pthread_t maker;
    CHECK_EQ(pthread_create(&maker, NULL, make_objects, NULL), 0);
    for (int started = 0; !atomic_load(&made_enough) || started < 5; started++) {
        plait_task t;
        CHECK_EQ(plait_process_start(&t, pr_nothing, NULL, 0, NULL, NULL), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    }
    CHECK_EQ(pthread_join(maker, NULL), 0);
}

/* A task handle that a process gone since made, in a child that the kernel gave that
 * process's id: the handle names the child's id, but memory the child never had (a
 * chunk of futures the gone process made after its fork).  Taken for the child's own,
 * it was read unchecked: SIGSEGV (a review of the mend that names processes in
 * generations). */
static void *hd_return(void *arg) { return arg; }

TEST(a_task_handle_of_a_gone_process_whose_id_a_child_gets)
{
    enum { TASKS = 3000 }; /* (more futures than the chunks this process has) */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(NULL);
    pid_t maker = fork();
    if (maker == 0) {
        plait_pool *pool;
        static plait_task tasks[TASKS]; /* (not joined: their futures stay) */
        int code = plait_pool_create(&pool, &(plait_pool_options){.threads = 1}) ? 10 : 0;
        for (int i = 0; i < TASKS && !code; i++)
            code = plait_pool_submit(pool, &tasks[i], hd_return, NULL) ? 11 : 0;
        if (!code && write(p[1], &tasks[TASKS - 1], sizeof(plait_task)) !=
                         (ssize_t)sizeof(plait_task))
            code = 12;
        _exit(code);
    }
    int st = 0;
    CHECK_EQ(waitpid(maker, &st, 0), maker);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    plait_task theirs = {0};
    CHECK_EQ(read(p[0], &theirs, sizeof theirs), (ssize_t)sizeof theirs);
    close(p[0]);
    close(p[1]);
    bool chose = true, got = false;
    for (int tries = 0; tries < 20 && chose && !got; tries++) {
        chose = next_pid_is(maker);
        if (!chose)
            break;
        pid_t pid = fork();
        if (pid == 0) {
            if (getpid() != maker)
                _exit(77); /* another took the id: again */
            _exit(plait_cancel(theirs) != -EPERM ? 1 : plait_join(theirs, NULL, 0) != -EPERM ? 2 : 0);
        }
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        got = !WIFEXITED(st) || WEXITSTATUS(st) != 77;
        if (got) {
            if (WIFSIGNALED(st))
                fprintf(stderr, "  the child died of signal %d\n", WTERMSIG(st));
            CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
        }
    }
    if (!chose)
        CHECK_SKIP("cannot choose the next process id (/proc/sys/kernel/ns_last_pid)");
    else if (!got)
        CHECK_SKIP("the process id was taken by others each time");
}

RUN_TESTS(CASE(pmutex_waited_across_a_fork_is_the_childs),
          CASE(queue_lock_waited_across_a_fork_is_the_childs),
          CASE(pmutex_of_a_holder_reaped_unreported_to_a_try),
          CASE(queue_side_gone_unreported_to_a_short_wait),
          CASE(queue_holders_gone_one_by_one_never_fill_its_table),
          CASE(queue_destroy_does_not_wait_for_a_stopped_holder),
          CASE(pmutex_holder_killed_while_both_processes_wait),
          CASE(queue_receiver_killed_in_its_copy_reported),
          CASE(queue_receiver_killed_in_its_copy_unreported),
          CASE(queue_consumer_killed_takes_nothing_twice),
          CASE(queue_child_with_the_id_of_a_gone_holder),
          CASE(pmutex_child_with_the_id_of_a_gone_holder),
          CASE(queue_lock_of_a_gone_holder_whose_id_a_child_gets),
          CASE(a_child_with_the_id_of_one_the_program_reaped_is_not_taken_for_it),
          CASE(no_mapping_or_descriptor_left_behind),
          CASE(objects_made_while_processes_start),
          CASE(a_task_handle_of_a_gone_process_whose_id_a_child_gets))
