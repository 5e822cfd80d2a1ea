/*
 * ring_mapping_refused.c — linked with --wrap=mmap into a program (check_uring_probe,
 * echo_server_ring_refused) whose io_uring setup must fail where the kernel's would
 * not: plait's mapping of its ring (MAP_POPULATE of a descriptor at offset
 * IORING_OFF_SQ_RING, 0) is refused, as an unexpected fault in plait's own setup would
 * be, and plait falls back to epoll.  test_check_uring_refused.sh checks that the
 * tests' harness and the example tests' scripts fail such an io_uring run.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/types.h>

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
