/*
 * test_review_pshared.c — review 106 of the process-shared objects.
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
 */
#include "helpers.h"

#include "../src/internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
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

#if defined(__x86_64__)

/* Where a queue's `closed` word is: the one word of its state that a close turns from
 * 0 to 1 once both sequences are past 0 (found on a scratch queue, so the test does not
 * copy queue.c's layout). */
static size_t closed_offset(void)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    char b[16];
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    CHECK_EQ(plait_queue_recv(q, b, sizeof b, SOON()), 1);
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

/* A child sends (send: the queue is full) or receives (the queue is empty) with a
 * deadline of 50 ms; the parent closes the queue right after the child's load of
 * `closed`.  The call must answer -EPIPE, and must not sleep on a sequence the close
 * had bumped already. */
static void close_between_look_and_sleep(bool send)
{
    size_t off = closed_offset();
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 16, 1), 0);
    if (send)
        CHECK_EQ(plait_queue_send(q, "full", 4, SOON()), 0);
    void *closed = (char *)((plait__shared_obj *)q)->map + off;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
            _exit(77);
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
    int status;
    CHECK_EQ(wait_child(pid, &status), 0);
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
    CHECK_EQ(ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), closed), 0);
    set_dr7(pid, 1ul | 3ul << 16 | 3ul << 18); /* L0; break on read or write; 4 bytes */
    CHECK_EQ(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    CHECK_EQ(wait_child(pid, &status), 0);
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP); /* it has just read `closed` */
    CHECK_EQ(plait_queue_close(q), 0);
    set_dr7(pid, 0);
    CHECK_EQ(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    CHECK_EQ(wait_child(pid, &status), 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

TEST(queue_close_between_a_receivers_look_and_its_sleep) { close_between_look_and_sleep(false); }
TEST(queue_close_between_a_senders_look_and_its_sleep) { close_between_look_and_sleep(true); }

RUN_TESTS(CASE(queue_close_between_a_receivers_look_and_its_sleep),
           CASE(queue_close_between_a_senders_look_and_its_sleep))

#else

int main(void) { return 77; } /* the watchpoint is x86-64's */

#endif
