/* without_membarrier.c — run a program where membarrier(2) fails with ENOSYS, as on a
 * kernel before 4.14 or in a sandbox that refuses it.
 *
 * The pool's running chains shake hands with shutdown through asymmetric fences
 * (src/fence.c) and fall back to sequentially consistent accesses where membarrier
 * is missing; on this machine it is not, so the fallback would go untested.  This
 * wrapper installs a seccomp filter that answers membarrier with ENOSYS, checks that
 * it does, and executes the program it is given (the filter holds across exec).
 *
 * Usage: without_membarrier PROGRAM [ARG...] */
#include <errno.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "without_membarrier: seccomp: %s\n", strerror(errno));
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
