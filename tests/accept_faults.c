/*
 * accept_faults.c — linked into a copy of an example server (-Wl,--wrap=accept4): its
 * first accepts fail as a server short of descriptors or memory sees them (ENFILE,
 * EMFILE, ENOBUFS, ENOMEM), then twice as one a security module refuses (EPERM, which
 * the server must say and wait out), before any connection is taken; then accept4
 * works.  A server that stops accepting on any of them fails the client test after.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>

int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static const int failures[] = {ENFILE, EMFILE, ENOBUFS, ENOMEM, EPERM, EPERM};
    static atomic_uint calls;
    unsigned n = atomic_fetch_add(&calls, 1);
    if (n < sizeof failures / sizeof failures[0]) {
        errno = failures[n];
        return -1;
    }
    return __real_accept4(fd, addr, len, flags);
}
