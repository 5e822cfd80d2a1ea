/*
 * fdio.c — reading and writing a descriptor with a deadline, from a coroutine (only it
 * waits) or a thread.
 *
 * Each call tries the system call first and waits (poll.c) only when the descriptor
 * says it would block, so a descriptor with data ready costs one system call.  That
 * also means a descriptor left in blocking mode blocks the whole thread in the system
 * call; descriptors used from coroutines should be non-blocking (plait's own pipes
 * are; plait_fd_set_nonblock() makes one so).
 *
 * What was transferred is never lost: the calls that move a whole buffer report how
 * much they moved on every outcome, error or not.
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

int plait_fd_set_nonblock(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (want != flags && fcntl(fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}

/* A descriptor may keep polling ready while its call keeps failing with EAGAIN: an
 * eventfd whose count a write would overflow polls writable (the count is below its
 * maximum) until a reader takes the count.  Retrying at each wake-up would keep a CPU
 * busy until the deadline, so after QUICK_RETRIES waits in one call each further wait
 * starts with a pause, doubling from FIRST_PAUSE to LONGEST_PAUSE.  A call that waits
 * for a peer as usual (EAGAIN, a wait, then the transfer) makes one retry; a race
 * lost to another reader of the descriptor leaves it not ready (still_ready). */
enum { QUICK_RETRIES = 8 };
#define FIRST_PAUSE (50 * PLAIT_US)
#define LONGEST_PAUSE (10 * PLAIT_MS)

/* Whether fd polls ready for events now, right after its call said EAGAIN: the spin
 * the pauses are for.  A call that lost the descriptor to another reader (an acceptor
 * beside others, a datagram socket's other receivers) finds it not ready, and its wait
 * sleeps until the next readiness: no pause for it, however many races it lost (a
 * connection that came during a pause waited up to LONGEST_PAUSE for an idle
 * acceptor).  Looked at past QUICK_RETRIES only: one poll(2) on those retries. */
static bool still_ready(int fd, int events)
{
    struct pollfd p = {.fd = fd,
                       .events = (short)((events & PLAIT_READABLE ? POLLIN : 0) |
                                         (events & PLAIT_WRITABLE ? POLLOUT : 0))};
    /* an error or hang-up, reported unasked, ends every wait as readiness does: a socket
     * whose error queue nobody reads (IP_RECVERR, SO_TIMESTAMPING) polls POLLERR for
     * good while its receive says EAGAIN */
    return poll(&p, 1, 0) == 1 && (p.revents & (p.events | POLLERR | POLLHUP));
}

/* Before the wait that follows an EAGAIN: past QUICK_RETRIES of them in one call, a
 * pause first where fd still polls ready (above).  0, or the pause's end: cancelled,
 * closed. */
static int pause_if_spinning(plait__fd_call *call, int events, int64_t deadline)
{
    if (call->retries < QUICK_RETRIES) {
        call->retries++;
        return 0;
    }
    if (!still_ready(call->fd, events))
        return 0;
    unsigned doublings = call->retries++ - QUICK_RETRIES;
    int64_t pause = doublings < 8 ? FIRST_PAUSE << doublings : LONGEST_PAUSE;
    int64_t until = plait_deadline_in(pause < LONGEST_PAUSE ? pause : LONGEST_PAUSE);
    /* a wait that plait_close wakes (-EBADF), as the wait after it */
    int slept = plait__fd_call_pause(call, until < deadline ? until : deadline);
    return slept < 0 ? slept : 0;
}

int plait__wait_to_retry(plait__fd_call *call, int events, int64_t deadline)
{
    if (errno == EINTR)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -errno;
    int r = pause_if_spinning(call, events, deadline);
    if (r == 0)
        r = plait__wait_fd_in_call(call, events, deadline, true);
    return r < 0 ? r : 0;
}

bool plait__shut_for_reading(int fd, bool woken, int64_t deadline)
{
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK)
        return false;
    /* looked for after a wait said the descriptor is readable, and where the call may
     * not wait (a try, a cancelled caller): its one chance to see the end (a try said
     * -ETIMEDOUT while a wait would have said 0 at once) */
    if (!woken && plait__wait_refused(deadline) == 0) {
        errno = e;
        return false;
    }
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    bool shut = poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP);
    errno = e;
    return shut;
}

/* The system call: send(2)/recv(2) on a socket, which skip what write(2)/read(2) do
 * for files (the permission hook, the notification of a write), a few per cent of a
 * small request's cost; never for zero bytes: recv(2) of none takes a datagram, where
 * read(2) of none takes nothing (a write of none is an empty datagram either way). */
static ssize_t system_transfer(int fd, void *buf, size_t len, bool writing, bool is_socket)
{
    if (is_socket)
        return writing ? send(fd, buf, len, 0) : recv(fd, buf, len, 0);
    return writing ? write(fd, buf, len) : read(fd, buf, len);
}

/* Whether a buffer can be read into or written from: none without a length, nor more
 * than a return value could count. */
static bool buffer_ok(const void *buf, size_t len) { return (buf || !len) && len <= SSIZE_MAX; }

/* One read or write, waiting for the descriptor whenever it would block.  A read
 * that follows one which took less than it asked (in a coroutine whose scheduler
 * watches fd, a socket, pipe or FIFO: plait__fd_call's `hinted`) does not try read(2)
 * first: a request-response peer has most likely
 * nothing more to say yet.  On io_uring the kernel makes that read when data comes;
 * on epoll the coroutine waits, then reads.  Either way the read that would say
 * EAGAIN is saved.  A write is always write(2) (send(2)) first, on io_uring too:
 * putting it in the ring beside other ready coroutines' requests saved system calls
 * but cost the writer a wait (a timer, a suspension, a completion to take and a wake-
 * up), more than the send(2) it saved (docs/BENCHMARKS.md, session 19). */
static ssize_t transfer_once(int fd, void *buf, size_t len, int64_t deadline,
                             bool writing, bool *closed)
{
    if (!buffer_ok(buf, len))
        return -EINVAL;
    if (writing) /* a reader gone is -EPIPE, not a signal, on the program's own pipes too */
        plait__ignore_sigpipe();
    plait__fd_call call;
    plait__fd_call_open(&call, fd, len != 0);
    bool drained = !writing && len && call.drained;
    bool is_socket = call.socket;
    bool ring_read = true; /* the kernel may read in the ring (io_uring) */
    bool woken = false;    /* a wait has said fd is readable */
    for (;;) {
        ssize_t n;
        int begun = plait__fd_call_begin(&call);
        if (begun < 0)
            return begun;
        if (drained && ring_read &&
            (n = plait__ring_read(&call, buf, len, deadline)) != -ENOSYS) {
            if (n > 0) /* the kernel read it as soon as it came (io_uring) */
                plait__fd_call_set_drained(&call, (size_t)n < len);
            *closed = call.closed;
            if (n != -EAGAIN)
                return n;
            /* the deadline came first (or the kernel would not wait): read(2) once, and
             * wait, if the deadline allows, as on epoll */
            ring_read = false;
            drained = false;
        }
        if (drained) { /* no ring: wait, then read */
            int r = plait__wait_fd_in_call(&call, PLAIT_READABLE, deadline, false);
            if (r < 0 && r != -ETIMEDOUT)
                return r;
            woken = r > 0;
        }
        n = system_transfer(fd, buf, len, writing, is_socket);
        if (n < 0 && is_socket && errno == ENOTSOCK) { /* the number names another file now */
            plait__fd_call_kind_stale(&call);
            is_socket = false;
            continue;
        }
        if (!writing && n > 0)
            plait__fd_call_set_drained(&call, (size_t)n < len);
        if (n >= 0)
            return n;
        if (!writing && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A datagram socket shut down for reading polls readable for good while
             * recv(2) says EAGAIN: its end of file, as a blocking recv(2) has it (and
             * as the kernel's read in the ring, on io_uring, has it too). */
            if (plait__shut_for_reading(fd, woken, deadline))
                return 0;
            /* nothing there: from now on, wait (or have the kernel read) first */
            drained = true;
            plait__fd_call_set_drained(&call, true);
            int refused = pause_if_spinning(&call, PLAIT_READABLE, deadline);
            if (refused == 0)
                refused = plait__wait_refused(deadline);
            if (refused < 0)
                return refused;
            continue;
        }
        int r = plait__wait_to_retry(&call, writing ? PLAIT_WRITABLE : PLAIT_READABLE,
                                     deadline);
        if (r < 0)
            return r;
    }
}

/* One read or write; *closed says whether a plait_close of fd came while the kernel
 * read for it (the bytes it moved are returned: the number may be another file's now).
 * No cancellation point (internal.h): read(2), send(2) and poll(2) are. */
static ssize_t transfer_cancel_off(int fd, void *buf, size_t len, int64_t deadline,
                                   bool writing, bool *closed)
{
    *closed = false;
    int cancel_state = plait__cancel_off();
    ssize_t n = transfer_once(fd, buf, len, deadline, writing, closed);
    plait__cancel_restore(cancel_state);
    return n;
}

/* One read or write, then the caller's turn is counted (plait__io_turn). */
static ssize_t transfer(int fd, void *buf, size_t len, int64_t deadline, bool writing)
{
    bool closed;
    ssize_t n = transfer_cancel_off(fd, buf, len, deadline, writing, &closed);
    if (n >= 0)
        plait__io_turn();
    return n;
}

/* Transfers until len bytes have moved; an end of file first is -ENODATA.  Its turn
 * given between two transfers is a yield plait_close finds (plait__fd_turn): a close
 * meanwhile ends the call with -EBADF, where a next transfer would have moved bytes of
 * the file that took the number; so does a close that came while the kernel read for
 * the last transfer (its bytes counted). */
static int transfer_all(int fd, void *buf, size_t len, size_t *done, int64_t deadline,
                        bool writing)
{
    size_t moved = 0;
    int r = buffer_ok(buf, len) ? 0 : -EINVAL;
    while (r == 0 && moved < len) {
        bool closed;
        ssize_t n = transfer_cancel_off(fd, (char *)buf + moved, len - moved, deadline,
                                        writing, &closed);
        if (n > 0)
            moved += (size_t)n;
        else
            r = n == 0 ? -ENODATA : (int)n;
        if (closed && r == 0 && moved < len)
            r = -EBADF;
        if (n >= 0 && plait__io_turn_due()) {
            int turn = plait__fd_turn(fd);
            if (r == 0 && moved < len) /* (after the last transfer, what moved stands) */
                r = turn;
        }
    }
    if (done)
        *done = moved;
    return r;
}

ssize_t plait_read(int fd, void *buf, size_t len, int64_t deadline)
{
    return transfer(fd, buf, len, deadline, false);
}

ssize_t plait_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    return transfer(fd, (void *)buf, len, deadline, true);
}

int plait_read_exactly(int fd, void *buf, size_t len, size_t *done, int64_t deadline)
{
    return transfer_all(fd, buf, len, done, deadline, false);
}

int plait_write_all(int fd, const void *buf, size_t len, size_t *done, int64_t deadline)
{
    return transfer_all(fd, (void *)buf, len, done, deadline, true);
}
