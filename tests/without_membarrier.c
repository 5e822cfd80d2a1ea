/* without_membarrier.c — run a program where membarrier(2) fails with ENOSYS, as on a
 * kernel before 4.14 or in a sandbox that refuses it.
 *
 * The pool's running chains shake hands with shutdown through asymmetric fences
 * (src/fence.c) and fall back to sequentially consistent accesses where membarrier
 * is missing; on this machine it is not, so the fallback would go untested.  This
 * wrapper refuses membarrier (refuse_syscall.h), checks that it is refused, and
 * executes the program it is given (the filter holds across exec).
 *
 * Usage: without_membarrier PROGRAM [ARG...] */
#include "refuse_syscall.h"

#include <linux/membarrier.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    int r = refuse_syscall(SYS_membarrier);
    if (r < 0) {
        fprintf(stderr, "without_membarrier: seccomp: %s\n", strerror(-r));
        return 1;
    }
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != -1 ||
        errno != ENOSYS) {
        fprintf(stderr, "without_membarrier: membarrier still works\n");
        return 1;
    }
    execv(argv[1], argv + 1);
    fprintf(stderr, "without_membarrier: %s: %s\n", argv[1], strerror(errno));
    return 1;
}
