/*
 * io_uring_why.h — why plait waits on epoll here rather than io_uring, asked of the
 * kernel itself: for the tests' harness (check.h) and for the example tests' scripts
 * (io_uring_refused.c), which skip an io_uring run only for a reason outside plait.
 */
#ifndef PLAIT_TESTS_IO_URING_WHY_H
#define PLAIT_TESTS_IO_URING_WHY_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Why plait waits on epoll here, where io_uring was asked for; NULL where nothing here
 * stops it: the kernel makes a ring of the size plait asks for (RING_ENTRIES in
 * src/poll_uring.c) with the features plait requires (NODROP, EXT_ARG).  Its falling
 * back to epoll then is a fault of plait's own setup, to be failed, not skipped. */
static const char *check_no_io_uring_why(void)
{
#if defined(__SANITIZE_THREAD__)
    return "a ThreadSanitizer build always uses epoll (src/poll.c)";
#elif defined(SYS_io_uring_setup)
    /* the kernel's own answer, asked in this process only as it is about to end */
    static char why[96];
    /* struct io_uring_params's 120 bytes, its features the sixth word (not its header:
     * <linux/fs.h> is at odds with glibc's <sys/mount.h>) */
    uint32_t params[30] = {0};
    const uint32_t feat_nodrop = 1U << 1, feat_ext_arg = 1U << 8;
    long fd = syscall(SYS_io_uring_setup, 512, params);
    if (fd < 0) {
        snprintf(why, sizeof why, "the kernel refuses io_uring_setup (%s)", strerror(errno));
        return why;
    }
    /* a sandbox may let a ring be made and refuse its use (plait then waits on epoll on
     * purpose: poll_uring.c) */
    long entered = syscall(SYS_io_uring_enter, (int)fd, 0, 0, 0, NULL, 0);
    int enter_errno = errno;
    close((int)fd);
    if (entered < 0) {
        snprintf(why, sizeof why, "the kernel refuses io_uring_enter (%s)", strerror(enter_errno));
        return why;
    }
    if ((params[5] & (feat_nodrop | feat_ext_arg)) != (feat_nodrop | feat_ext_arg))
        return "the kernel's io_uring lacks a feature plait requires (NODROP, EXT_ARG)";
    return NULL;
#else
    return "this system has no io_uring_setup";
#endif
}

#endif
