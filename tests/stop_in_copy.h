/*
 * stop_in_copy.h — a queue holder that stops itself in the middle of its copy: the
 * test links with -Wl,--wrap=memcpy, and the process that sets stop_in_a_big_copy
 * stops (SIGSTOP) at its next copy of BIG bytes or more, with the queue's lock held.
 * Include after check.h (through helpers.h or fork_child.h).
 */
#ifndef PLAIT_TEST_STOP_IN_COPY_H
#define PLAIT_TEST_STOP_IN_COPY_H

#include <plait.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BIG = 1 << 20 };

static volatile sig_atomic_t stop_in_a_big_copy; /* the child's */

void *__real_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n)
{
    if (stop_in_a_big_copy && n >= BIG) {
        stop_in_a_big_copy = 0;
        raise(SIGSTOP);
    }
    return __real_memcpy(dst, src, n);
}
CHECK_WRAP_ASAN_MEMCPY

/* A child that sends one BIG message (or, !send, receives the BIG message queued) and
 * stops in its copy, holding the senders' (receivers') lock; returns once the child is
 * seen stopped.  It exits 0 once its call has done so. */
static inline pid_t holder_stopped_in_a_copy(plait_queue *q, bool send)
{
    pid_t pid = fork();
    if (pid == 0) {
        static char msg[BIG];
        stop_in_a_big_copy = 1;
        _exit(send ? plait_queue_send(q, msg, sizeof msg, PLAIT_FOREVER) != 0
                   : plait_queue_recv(q, msg, sizeof msg, PLAIT_FOREVER) != (ssize_t)BIG);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
    CHECK(WIFSTOPPED(status));
    return pid;
}

static inline pid_t holder_stopped_in_a_send(plait_queue *q)
{
    return holder_stopped_in_a_copy(q, true);
}

#endif
