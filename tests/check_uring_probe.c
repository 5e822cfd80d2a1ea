/*
 * check_uring_probe.c — a test program whose io_uring setup fails where the kernel's
 * would not, for test_check_uring_refused.sh: asked for io_uring (PLAIT_POLLER), the
 * harness (check.h) must fail the run, not skip it as a system without io_uring.
 *
 * Linked with --wrap=mmap: plait's mapping of its ring (MAP_POPULATE of a descriptor at
 * offset IORING_OFF_SQ_RING, 0) is refused, as an unexpected fault in plait's own setup
 * would be, and plait falls back to epoll.
 */
#include "check.h"

#include <sys/mman.h>

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if ((flags & MAP_POPULATE) && fd >= 0 && off == 0) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

/* Not reached under PLAIT_POLLER=io_uring: check_main ends the run first. */
TEST(waits_on_io_uring) { CHECK(strcmp(plait_io_backend(), "io_uring") == 0); }

RUN_TESTS(CASE(waits_on_io_uring))
