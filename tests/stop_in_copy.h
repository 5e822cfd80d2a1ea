/*
 * stop_in_copy.h — a queue holder that stops itself in the middle of its copy: the
 * test links with -Wl,--wrap=memcpy, and the process that sets stop_in_a_big_copy
 * stops (SIGSTOP) at its next copy of BIG bytes or more, with the queue's lock held.
 */
#ifndef PLAIT_TEST_STOP_IN_COPY_H
#define PLAIT_TEST_STOP_IN_COPY_H

#include <signal.h>
#include <stddef.h>

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

#endif
