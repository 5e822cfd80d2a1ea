/*
 * test_pshared_races.c — review 106 of the process-shared objects.
 *
 * A queue's close takes no lock: it sets `closed`, then bumps both sequences and wakes
 * them.  A send or receive that must wait reads `closed` under the lock and then the
 * sequence it will sleep on; a close that falls between those two reads sets the flag
 * after the waiter looked and bumps the sequence before the waiter read it, so the
 * waiter sleeps on the bumped value and nothing wakes it: it learns of the close only
 * at its next look for gone holders (100 ms), and a call whose deadline comes first
 * answers -ETIMEDOUT on a closed queue instead of -EPIPE.
 *
 * The interleaving is forced with a hardware watchpoint (x86-64 debug registers, set
 * through ptrace): the child that sends or receives is traced by the parent and stops
 * right after its load of `closed`; the parent closes the queue then and lets it go on.
 * plait__shared_wait is wrapped (-Wl,--wrap) to see whether the child then sleeps on a
 * sequence value that the close had already moved past.
 *
 * A send or receive that waits for the queue's lock (held by another process, stopped
 * in the middle of its copy) is a call of this process that waits, yet it was not
 * counted as one: plait_queue_destroy from another thread did not answer -EBUSY, but
 * went on to take the lock itself and unmap the state under the waiting call.  The
 * holder stops itself inside its copy: memcpy is wrapped (-Wl,--wrap=memcpy), as in
 * test_queue_stopped_holder.
 *
 * A send (or receive) that has let go of the queue's lock still read the count of the
 * other side's sleepers in the shared state, to decide on its wake-up.  A receiver on
 * another thread could take the message meanwhile and destroy the queue (no call of
 * this process waits: the destroy is allowed), unmapping the state under the send that
 * had not returned yet: SIGSEGV.  (The in-process objects never touch the object after
 * the unlock that may let a destroy in, ARCHITECTURE.md, invariant 3; glibc makes the
 * same argument for pthread_mutex_unlock and sem_post.)  plait__plock_unlock is wrapped
 * (-Wl,--wrap) to hold the sender just after its unlock while the other thread does so.
 */
#include "fork_child.h"
#include "stop_in_copy.h"

#include "../src/internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#if defined(__x86_64__)
#include <sys/user.h>
#endif

int __real_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);
int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);

static bool look_at_waits;  /* in the child, once the close has come */
static bool slept_on_stale; /* a wait began on a value the close had moved past */

int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what)
{
    if (look_at_waits && atomic_load(word) == expected)
        slept_on_stale = true; /* the close's bump came before this read: it is lost */
    return __real_plait__shared_wait(obj, word, expected, sleepers, deadline, what);
}


static atomic_int sender_tid, destroyer_tid, destroyed;
static atomic_long destroy_result;

static void *lock_waiting_sender(void *arg)
{
    atomic_store(&sender_tid, gettid_());
    return (void *)(intptr_t)plait_queue_send(arg, "x", 1, SOON());
}

static void *destroyer(void *arg)
{
    atomic_store(&destroyer_tid, gettid_());
    atomic_store(&destroy_result, plait_queue_destroy(arg));
    atomic_store(&destroyed, 1);
    return NULL;
}

TEST(queue_destroy_refused_while_a_thread_waits_for_its_lock)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, BIG, 2), 0);
    fflush(NULL);
    pid_t pid = holder_stopped_in_a_send(q); /* it holds the queue's lock */
    int status = 0;
    pthread_t sender, destroying;
    thread_start(&sender, lock_waiting_sender, q);
    wait_asleep(&sender_tid); /* waiting for the lock */
    thread_start(&destroying, destroyer, q);
    /* the destroy answers at once, or goes to sleep on the lock the child holds */
    CHECK(wait_for_flag(&destroyer_tid));
    int64_t until = SOON();
    bool went_on = false;
    while (!atomic_load(&destroyed) && plait_now() < until) {
        if (thread_asleep_in_wait(atomic_load(&destroyer_tid)) && !atomic_load(&destroyed)) {
            went_on = true;
            break;
        }
        usleep(1000);
    }
    if (went_on) {
        /* it takes the lock once the child lets go, and unmaps the state under the
         * sender: end here, with the child */
        CHECK(!"destroy did not refuse: it waits for the lock to unmap the state");
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "FAIL queue_destroy_refused_while_a_thread_waits_for_its_lock\n");
        fflush(NULL);
        _exit(1);
    }
    CHECK(atomic_load(&destroyed));
    CHECK_EQ(atomic_load(&destroy_result), -EBUSY);
    thread_join(destroying);
    CHECK_EQ(kill(pid, SIGCONT), 0);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    void *res;
    CHECK_EQ(pthread_join(sender, &res), 0);
    CHECK_EQ((intptr_t)res, 0);
    static char got[BIG];
    CHECK_EQ(plait_queue_recv(q, got, sizeof got, SOON()), (ssize_t)BIG);
    CHECK_EQ(plait_queue_recv(q, got, sizeof got, SOON()), 1);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* A destroy that waits for a call still under way spins (plait__shared_let_go):
 * plait__spin_pause is wrapped to see that (the wrapper is further down, with the
 * cases that watch a store, whose child tells its parent too). */
static _Thread_local bool destroying;
static atomic_int destroy_spun; /* a destroy of this process waited for a call */

void __real_plait__plock_unlock(plait__plock *lock);
void __wrap_plait__plock_unlock(plait__plock *lock);

static atomic_int hold_after_unlock; /* the thread id to hold just after its unlock */
static atomic_int other_may_go, other_done;

void __wrap_plait__plock_unlock(plait__plock *lock)
{
    __real_plait__plock_unlock(lock);
    if (atomic_load(&hold_after_unlock) != gettid_())
        return;
    atomic_store(&hold_after_unlock, 0);
    atomic_store(&other_may_go, 1); /* as if preempted here while the other thread runs */
    /* until the other thread is done, or its destroy waits for this call to leave */
    int64_t until = SOON();
    while (!atomic_load(&other_done) && !atomic_load(&destroy_spun) && plait_now() < until)
        sched_yield();
    CHECK(atomic_load(&other_done) || atomic_load(&destroy_spun));
}

static atomic_long other_got, other_destroy;

static void *take_then_destroy(void *arg)
{
    plait_queue *q = arg;
    CHECK(wait_for_flag(&other_may_go));
    char buf[16];
    atomic_store(&other_got, (long)plait_queue_recv(q, buf, sizeof buf, SOON()));
    destroying = true;
    atomic_store(&other_destroy, plait_queue_destroy(q));
    atomic_store(&other_done, 1);
    return NULL;
}

static void *send_then_destroy(void *arg)
{
    plait_queue *q = arg;
    CHECK(wait_for_flag(&other_may_go));
    atomic_store(&other_got, plait_queue_send(q, "y", 1, SOON()));
    destroying = true;
    atomic_store(&other_destroy, plait_queue_destroy(q));
    atomic_store(&other_done, 1);
    return NULL;
}

/* In a child: this thread sends (or receives) and is held just after its unlock, while
 * another thread receives (or sends) and destroys the queue (or its destroy waits for
 * this call to leave); then this call goes on.  This process has sent and received
 * before, so the call's unlock is its end's (a first call on a side also takes and
 * lets go of the table of holders' lock, first). */
/* A queue of one 16-byte slot on which this process has sent and received once; with
 * full, a message in it. */
static plait_queue *queue_both_sides_noted(bool full)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    char b[16];
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    CHECK_EQ(plait_queue_recv(q, b, sizeof b, SOON()), 1);
    if (full)
        CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    return q;
}

static void call_goes_on_after_a_destroy(bool send)
{
    pid_t pid = fork_child(true);
    if (pid == 0) {
        plait_queue *q = queue_both_sides_noted(!send); /* full: the other sends */
        pthread_t other;
        thread_start(&other, send ? take_then_destroy : send_then_destroy, q);
        atomic_store(&hold_after_unlock, gettid_());
        char buf[16];
        long r = send ? plait_queue_send(q, "x", 1, SOON())
                      : (long)plait_queue_recv(q, buf, sizeof buf, SOON());
        CHECK_EQ(r, send ? 0 : 1);
        thread_join(other);
        CHECK_EQ(atomic_load(&other_got), send ? 1 : 0);
        CHECK_EQ(atomic_load(&other_destroy), 0);
        child_exit();
    }
    int status = reap_within(pid, 20);
    if (WIFSIGNALED(status))
        fprintf(stderr, "  the child was killed by signal %d\n", WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    (void)reap_ok; /* fork_child.h's, unused here */
}

/* The cases further down that watch a store tell their parent through this. */
typedef struct handshake {
    atomic_int go, done, destroy_waits;
} handshake;

static handshake *hs; /* shared with the child */

void __real_plait__spin_pause(unsigned spins);
void __wrap_plait__spin_pause(unsigned spins);
void __wrap_plait__spin_pause(unsigned spins)
{
    if (destroying) {
        atomic_store(&destroy_spun, 1);
        if (hs) /* the parent then lets the call go on */
            atomic_store(&hs->destroy_waits, 1);
    }
    __real_plait__spin_pause(spins);
}

TEST(queue_send_goes_on_after_the_receiver_destroyed_it)
{
    call_goes_on_after_a_destroy(true);
}

TEST(queue_recv_goes_on_after_the_sender_destroyed_it)
{
    call_goes_on_after_a_destroy(false);
}

#if defined(__x86_64__)

/* Where a queue's `closed` word is: the one word of its state that a close turns from
 * 0 to 1 once both sequences are past 0 (found on a scratch queue, so the test does not
 * copy queue.c's layout). */
static size_t closed_offset(void)
{
    plait_queue *q = queue_both_sides_noted(false);
    unsigned *map = ((plait__shared_obj *)q)->map, before[64];
    memcpy(before, map, sizeof before);
    CHECK_EQ(plait_queue_close(q), 0);
    size_t at = SIZE_MAX;
    for (size_t i = 0; i < 64; i++)
        if (before[i] == 0 && map[i] == 1) {
            CHECK_EQ(at, SIZE_MAX);
            at = i * sizeof(unsigned);
        }
    CHECK(at != SIZE_MAX);
    CHECK_EQ(plait_queue_destroy(q), 0);
    return at;
}

/* Where a queue's `tail` (send) or `head` (!send) is: the first word of its state that
 * one more send (receive) moves from 1 to 2, both sides having sent and received once
 * (found on a scratch queue, as closed_offset). */
static size_t counter_offset(bool send)
{
    plait_queue *q = queue_both_sides_noted(!send);
    char b[16];
    unsigned *map = ((plait__shared_obj *)q)->map, before[256];
    size_t words = ((plait__shared_obj *)q)->map_size / sizeof *map;
    if (words > 256)
        words = 256;
    memcpy(before, map, words * sizeof *map);
    if (send)
        CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    else
        CHECK_EQ(plait_queue_recv(q, b, sizeof b, SOON()), 1);
    size_t at = SIZE_MAX;
    for (size_t i = 0; i < words && at == SIZE_MAX; i++)
        if (before[i] == 1 && map[i] == 2)
            at = i * sizeof(unsigned);
    CHECK(at != SIZE_MAX);
    CHECK_EQ(plait_queue_destroy(q), 0);
    return at;
}

/* waitpid within a deadline. */
static int wait_child(pid_t pid, int *status)
{
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG | __WALL);
        if (r == pid)
            return 0;
        if (r < 0 || plait_now() > until)
            return -1;
        usleep(1000);
    }
}

static void set_dr7(pid_t pid, unsigned long dr7)
{
    CHECK_EQ(ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]), (void *)dr7),
             0);
}

/* A forked child that this process traces: 0 in the child, which raises SIGSTOP where the
 * parent is to set its watchpoint (exit 77: a sandbox refuses ptrace). */
static pid_t fork_traced(void)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0 && ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
        _exit(77);
    return pid;
}

/* Once the traced child has stopped itself: a watchpoint on the 4 bytes at WORD (RW 1:
 * break on a write, 3: on a read or a write), the child goes on, and its next wait
 * status comes back; -1, the child reaped, where ptrace or the debug registers refused. */
static int watch_and_go_on(pid_t pid, void *word, unsigned long rw)
{
    int status;
    CHECK_EQ(wait_child(pid, &status), 0);
    if (!WIFSTOPPED(status))
        return -1;
    if (ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), word) < 0) {
        kill(pid, SIGKILL);
        CHECK_EQ(wait_child(pid, &status), 0);
        return -1;
    }
    set_dr7(pid, 1ul | rw << 16 | 3ul << 18); /* L0; RW; 4 bytes */
    CHECK_EQ(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    CHECK_EQ(wait_child(pid, &status), 0);
    return status;
}

/* Whether a watchpoint set through ptrace stops the traced child at all.  Some virtual
 * machines take the debug registers' values and never act on them (a Firecracker guest
 * on AMD did so: every store went by, and each case below then failed in its own way),
 * so a child that writes a watched word once tells, before any case leans on it.
 * "" when they work, else why they do not (the cases skip with it). */
static const char *watchpoints_missing(void)
{
    static const char *missing;
    if (missing)
        return missing;
    static volatile int watched;
    pid_t pid = fork_traced();
    if (pid == 0) {
        raise(SIGSTOP);
        watched = 1;
        _exit(0);
    }
    int status = watch_and_go_on(pid, (void *)&watched, 1);
    if (status == -1)
        return missing = "ptrace or the debug registers refused";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return missing = "the debug registers took a watchpoint that never fired";
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP);
    kill(pid, SIGKILL);
    CHECK_EQ(wait_child(pid, &status), 0);
    return missing = "";
}

/* A child sends (send: the queue is full) or receives (the queue is empty) with a
 * deadline of 50 ms; the parent closes the queue right after the child's load of
 * `closed`.  The call must answer -EPIPE, and must not sleep on a sequence the close
 * had bumped already. */
/* The watched child goes on, its watchpoint off; it must exit 0.  Then q is destroyed. */
static void child_ends_well(pid_t pid, plait_queue *q)
{
    int status;
    set_dr7(pid, 0);
    CHECK_EQ(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    CHECK_EQ(wait_child(pid, &status), 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

static void close_between_look_and_sleep(bool send)
{
    if (*watchpoints_missing()) {
        CHECK_SKIP(watchpoints_missing());
        return;
    }
    size_t off = closed_offset();
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    if (send)
        CHECK_EQ(plait_queue_send(q, "full", 4, SOON()), 0);
    void *closed = (char *)((plait__shared_obj *)q)->map + off;
    pid_t pid = fork_traced();
    if (pid == 0) {
        raise(SIGSTOP); /* the parent sets the watchpoint */
        look_at_waits = true;
        char buf[16];
        int64_t deadline = plait_deadline_in(50 * PLAIT_MS);
        long r = send ? plait_queue_send(q, "more", 4, deadline)
                      : (long)plait_queue_recv(q, buf, sizeof buf, deadline);
        fprintf(stderr, "  child: %s answered %ld%s\n", send ? "send" : "recv", r,
                slept_on_stale ? ", having slept on a sequence the close had moved past" : "");
        _exit(slept_on_stale ? 2 : r == -EPIPE ? 0 : 3);
    }
    int status = watch_and_go_on(pid, closed, 3); /* break on a read or a write */
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP); /* it has just read `closed` */
    CHECK_EQ(plait_queue_close(q), 0);
    child_ends_well(pid, q);
}


/* ---- a wake-side call held just after its store, while another thread destroys ----
 *
 * psem_release, pevent_set, pmutex_unlock (and plait_shm_unlock), queue_close and a
 * queue's send and receive each publish their change with one store or
 * compare-and-swap and then still read or bump the shared state (the sleepers' count,
 * the sequence; a send or receive its end's lock) to decide on their wake-up.
 * Another thread of the process that sees the change (takes the permit, passes the
 * event, takes and gives back the lock, finds the queue closed) may destroy the object
 * then — nobody waits on it — and the call still under way touched the unmapped state:
 * SIGSEGV.  The child's main thread is traced; a watchpoint stops it right after its
 * store; the child's other thread then takes and destroys (or its destroy waits for the
 * call: plait__spin_pause is wrapped to see that); then the main thread goes on. */

enum { GIVE_PSEM, GIVE_PEVENT, GIVE_PMUTEX, GIVE_CLOSE, GIVE_SEND, GIVE_RECV };

static void *give_obj;
static int give_kind;
static atomic_int take_destroy; /* the child's other thread: its destroy's answer */


static bool wait_either_shared_flag(atomic_int *a, atomic_int *b)
{
    int64_t until = SOON();
    while (!atomic_load(a) && !atomic_load(b)) {
        if (plait_now() > until)
            return false;
        usleep(200);
    }
    return true;
}

static bool wait_shared_flag(atomic_int *flag)
{
    int64_t until = SOON();
    while (!atomic_load(flag)) {
        if (plait_now() > until)
            return false;
        usleep(200);
    }
    return true;
}

static void *take_and_destroy(void *arg)
{
    (void)arg;
    if (!wait_shared_flag(&hs->go))
        _exit(5);
    char buf[8];
    int r = -1;
    switch (give_kind) {
    case GIVE_PSEM:
        CHECK_EQ(plait_psem_acquire(give_obj, SOON()), 0);
        destroying = true;
        r = plait_psem_destroy(give_obj);
        break;
    case GIVE_PEVENT:
        CHECK_EQ(plait_pevent_wait(give_obj, SOON()), 0);
        destroying = true;
        r = plait_pevent_destroy(give_obj);
        break;
    case GIVE_PMUTEX:
        CHECK_EQ(plait_pmutex_lock(give_obj, SOON()), 0);
        CHECK_EQ(plait_pmutex_unlock(give_obj), 0);
        destroying = true;
        r = plait_pmutex_destroy(give_obj);
        break;
    case GIVE_CLOSE:
        CHECK_EQ(plait_queue_recv(give_obj, buf, sizeof buf, SOON()), -EPIPE);
        destroying = true;
        r = plait_queue_destroy(give_obj);
        break;
    case GIVE_SEND: /* takes the message the held send has just made visible */
        CHECK_EQ(plait_queue_recv(give_obj, buf, sizeof buf, SOON()), 1);
        destroying = true;
        r = plait_queue_destroy(give_obj);
        break;
    case GIVE_RECV: /* sends into the room the held receive has just made */
        CHECK_EQ(plait_queue_send(give_obj, "y", 1, SOON()), 0);
        destroying = true;
        r = plait_queue_destroy(give_obj);
        break;
    }
    destroying = false;
    atomic_store(&take_destroy, r);
    atomic_store(&hs->done, 1);
    return NULL;
}

static void give_held_while_another_destroys(int kind)
{
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer's atomics lock the word's record in the runtime: the main thread,
     * stopped inside its store, would hold the other thread's atomic on the same word */
    (void)kind;
    CHECK_SKIP("ThreadSanitizer");
    return;
#endif
    if (*watchpoints_missing()) {
        CHECK_SKIP(watchpoints_missing());
        return;
    }
    hs = mmap(NULL, sizeof *hs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(hs != MAP_FAILED);
    give_kind = kind;
    void *word = NULL; /* the word the giving call stores to first */
    if (kind == GIVE_PSEM)
        CHECK_EQ(plait_psem_create((plait_psem **)&give_obj, 0), 0);
    else if (kind == GIVE_PEVENT)
        CHECK_EQ(plait_pevent_create((plait_pevent **)&give_obj), 0);
    else if (kind == GIVE_PMUTEX)
        CHECK_EQ(plait_pmutex_create((plait_pmutex **)&give_obj), 0);
    bool queue = kind == GIVE_CLOSE || kind == GIVE_SEND || kind == GIVE_RECV;
    size_t off = kind == GIVE_CLOSE  ? closed_offset()
                 : kind == GIVE_SEND ? counter_offset(true)
                 : kind == GIVE_RECV ? counter_offset(false)
                                     : 0;
    if (queue)
        CHECK_EQ(plait_queue_create((plait_queue **)&give_obj, 8, 1), 0);
    /* the count, the event's word, the holder: each the first word of its state */
    word = (char *)((plait__shared_obj *)give_obj)->map + off;
    pid_t pid = fork_traced();
    if (pid == 0) {
        if (kind == GIVE_PMUTEX && plait_pmutex_lock(give_obj, SOON()) != 0)
            _exit(6);
        if (kind == GIVE_RECV && plait_queue_send(give_obj, "x", 1, SOON()) != 0)
            _exit(6); /* full: the held receive makes room */
        char got[8];
        pthread_t other;
        thread_start(&other, take_and_destroy, NULL);
        raise(SIGSTOP); /* the parent sets the watchpoint */
        long r = kind == GIVE_PSEM     ? plait_psem_release(give_obj)
                 : kind == GIVE_PEVENT ? plait_pevent_set(give_obj)
                 : kind == GIVE_PMUTEX ? plait_pmutex_unlock(give_obj)
                 : kind == GIVE_SEND   ? plait_queue_send(give_obj, "x", 1, SOON())
                 : kind == GIVE_RECV   ? plait_queue_recv(give_obj, got, sizeof got, SOON()) - 1
                                       : plait_queue_close(give_obj);
        CHECK_EQ(r, 0);
        thread_join(other);
        r = atomic_load(&take_destroy);
        if (r == -EBUSY) /* refused while the call was under way: now it is done */
            r = kind == GIVE_PSEM     ? plait_psem_destroy(give_obj)
                : kind == GIVE_PEVENT ? plait_pevent_destroy(give_obj)
                : kind == GIVE_PMUTEX ? plait_pmutex_destroy(give_obj)
                                      : plait_queue_destroy(give_obj);
        CHECK_EQ(r, 0);
        child_exit();
    }
    int status = watch_and_go_on(pid, word, 1); /* break on a write */
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP); /* it has just stored */
    atomic_store(&hs->go, 1);
    /* taken; then destroyed (or refused), or the destroy waits for the call */
    CHECK(wait_either_shared_flag(&hs->done, &hs->destroy_waits));
    set_dr7(pid, 0);
    CHECK_EQ(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    CHECK_EQ(wait_child(pid, &status), 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "  the child was killed by signal %d\n", WTERMSIG(status));
    else if (WIFSTOPPED(status)) /* traced: a crash stops it at the signal first */
        fprintf(stderr, "  the child got signal %d\n", WSTOPSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status))
        fprintf(stderr, "  the child exited with %d\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSTOPPED(status)) { /* a traced child's crash stops it first */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    int r = kind == GIVE_PSEM     ? plait_psem_destroy(give_obj)
            : kind == GIVE_PEVENT ? plait_pevent_destroy(give_obj)
            : kind == GIVE_PMUTEX ? plait_pmutex_destroy(give_obj)
                                  : plait_queue_destroy(give_obj);
    CHECK_EQ(r, 0);
    munmap(hs, sizeof *hs);
    hs = NULL;
}

TEST(psem_release_goes_on_after_the_acquirer_destroyed_it)
{
    give_held_while_another_destroys(GIVE_PSEM);
}

TEST(pevent_set_goes_on_after_the_waiter_destroyed_it)
{
    give_held_while_another_destroys(GIVE_PEVENT);
}

TEST(pmutex_unlock_goes_on_after_the_next_holder_destroyed_it)
{
    give_held_while_another_destroys(GIVE_PMUTEX);
}

TEST(queue_close_goes_on_after_a_receiver_destroyed_it)
{
    give_held_while_another_destroys(GIVE_CLOSE);
}

/* A send held right after it moved `tail`, before it bumps the receivers' sequence and
 * lets go of the senders' lock: a receiver needs no lock of the sender's, so it takes
 * the message and destroys the queue meanwhile (failed first, with the queue's two ends
 * given a lock each: SIGSEGV). */
TEST(queue_send_held_after_its_publish_goes_on_after_a_destroy)
{
    give_held_while_another_destroys(GIVE_SEND);
}

TEST(queue_recv_held_after_its_publish_goes_on_after_a_destroy)
{
    give_held_while_another_destroys(GIVE_RECV);
}

TEST(queue_close_between_a_receivers_look_and_its_sleep) { close_between_look_and_sleep(false); }

/* A receive that has found the queue empty (it has just read `tail`), then a send and a
 * close by another process: the message went in before the close, so the receive must
 * take it (receivers drain first), and only the next one answer -EPIPE.  Failed first:
 * once a send no longer needed the receivers' lock, a receive that read `closed` after
 * `tail` answered -EPIPE with the message queued. */
TEST(queue_send_and_close_between_a_receivers_two_looks)
{
    if (*watchpoints_missing()) {
        CHECK_SKIP(watchpoints_missing());
        return;
    }
    size_t off = counter_offset(true);
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    void *tail = (char *)((plait__shared_obj *)q)->map + off;
    pid_t pid = fork_traced();
    if (pid == 0) {
        raise(SIGSTOP); /* the parent sets the watchpoint */
        char buf[16];
        long first = plait_queue_recv(q, buf, sizeof buf, SOON());
        long then = plait_queue_recv(q, buf, sizeof buf, SOON());
        fprintf(stderr, "  child: the receives answered %ld, then %ld\n", first, then);
        _exit(first == 1 && buf[0] == 'x' && then == -EPIPE ? 0 : 3);
    }
    int status = watch_and_go_on(pid, tail, 3); /* break on a read or a write */
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP); /* it has just read `tail` */
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    CHECK_EQ(plait_queue_close(q), 0);
    child_ends_well(pid, q);
}
TEST(queue_close_between_a_senders_look_and_its_sleep) { close_between_look_and_sleep(true); }

RUN_TESTS(CASE(queue_close_between_a_receivers_look_and_its_sleep),
          CASE(queue_send_and_close_between_a_receivers_two_looks),
          CASE(queue_close_between_a_senders_look_and_its_sleep),
          CASE(queue_destroy_refused_while_a_thread_waits_for_its_lock),
          CASE(queue_send_goes_on_after_the_receiver_destroyed_it),
          CASE(queue_recv_goes_on_after_the_sender_destroyed_it),
          CASE(psem_release_goes_on_after_the_acquirer_destroyed_it),
          CASE(pevent_set_goes_on_after_the_waiter_destroyed_it),
          CASE(pmutex_unlock_goes_on_after_the_next_holder_destroyed_it),
          CASE(queue_close_goes_on_after_a_receiver_destroyed_it),
          CASE(queue_send_held_after_its_publish_goes_on_after_a_destroy),
          CASE(queue_recv_held_after_its_publish_goes_on_after_a_destroy))

#else

/* the watchpoint is x86-64's: elsewhere only the destroy case runs */
RUN_TESTS(CASE(queue_destroy_refused_while_a_thread_waits_for_its_lock),
          CASE(queue_send_goes_on_after_the_receiver_destroyed_it),
          CASE(queue_recv_goes_on_after_the_sender_destroyed_it))

#endif
