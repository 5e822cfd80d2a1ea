/* refuse_syscall.h — make one system call fail with ENOSYS from now on, as on a kernel
 * that predates it or in a sandbox that refuses it (membarrier before 4.14,
 * futex_waitv before 5.16): a seccomp filter, which stays for the life of the process
 * and across exec.  refuse_syscall filters the calling thread and the threads it
 * starts later (so, called first, the whole process); refuse_syscall_in_every_thread
 * the threads running already too.  0, or -errno when the filter could not be
 * installed. */
#ifndef PLAIT_TESTS_REFUSE_SYSCALL_H
#define PLAIT_TESTS_REFUSE_SYSCALL_H

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int refuse_syscall_where(long nr, unsigned seccomp_flags)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, seccomp_flags, &prog) != 0)
        return -errno;
    return 0;
}

static inline int refuse_syscall(long nr) { return refuse_syscall_where(nr, 0); }

static inline int refuse_syscall_in_every_thread(long nr)
{
    return refuse_syscall_where(nr, SECCOMP_FILTER_FLAG_TSYNC);
}

#endif
