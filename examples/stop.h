/* stop.h — what the example servers share about their acceptors: an accept that
 * failed is waited out, never a silent end of accepting (example_accept_failed); and as
 * they stop, the connections the kernel has queued on their listener already (each
 * client told it is connected, what it sent acknowledged) are taken before the
 * listener is closed, as Linux resets what a closed TCP listener holds, requests and
 * all. */
#ifndef PLAIT_EXAMPLE_STOP_H
#define PLAIT_EXAMPLE_STOP_H

#include <plait.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

/* Whether an accept's error is the system's lack of descriptors or memory, which the
 * connections open give back as they end. */
static inline bool example_out_of_room(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/* An accept on a listener not shut down failed with err (plait_accept has tried again
 * already after an error of the connection alone, ECONNABORTED and the like): out of
 * descriptors or memory, the acceptor waits 10 ms for connections to end; any other
 * error (a security module's EPERM, say) is said on stderr, and waited out too, the
 * wait doubling up to 1 s while the failures go on, as a server that stays up and says
 * why it takes nothing (nginx's "accept() failed").  *pause is the last wait, 0 after
 * an accept that worked.  0 to try again; < 0 when the wait was cancelled (the acceptor
 * ends).  (The acceptors ended at any error they did not name, silently: the server
 * ran on, accepting nothing.) */
static inline int example_accept_failed(const char *who, int err, int64_t *pause)
{
    if (example_out_of_room(err))
        return plait_sleep(10 * PLAIT_MS);
    *pause = *pause ? (*pause * 2 < PLAIT_SEC ? *pause * 2 : PLAIT_SEC) : 10 * PLAIT_MS;
    /* (the system's words: plait_strerror's for -EPERM are about plait's own calls) */
    fprintf(stderr, "%s: accept: %s (trying again in %lld ms)\n", who, strerror(-err),
            (long long)(*pause / PLAIT_MS));
    return plait_sleep(*pause);
}

/* Make the scheduler's poller before the server says it listens: a wait on an eventfd
 * that is ready already, with no deadline, which makes it first.  0, or why it cannot
 * be made (-EMFILE where no descriptor is left for it): then every wait would fail so,
 * and a server that said "listening" served nothing (its acceptor tried again every 10
 * ms, each connection it took was closed unread).  (A short wait on the listener did
 * not do: one whose deadline had passed as it began looks with poll(2), no poller.) */
static inline int example_poller_ready(void)
{
    int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int r = plait_wait_fd(fd, PLAIT_READABLE, PLAIT_FOREVER);
    plait_close(fd);
    return r < 0 ? r : 0;
}

/* Take what listener has queued, at most `most` (clients that go on connecting cannot
 * hold the stop off), handing each to start(ctx, fd): accepts that do not block, which
 * end once the queue is empty.  Out of descriptors (or memory), it waits for the open
 * connections (told to stop first) to give theirs back, until `until`, as the servers'
 * acceptors do: it ended at the first -EMFILE, and the listener's close then reset
 * every client still queued. */
static inline void example_take_queued(int listener, int most, int64_t until,
                                       void (*start)(void *ctx, int fd), void *ctx)
{
    for (int taken = 0; taken < most;) {
        int fd = plait_accept(listener, NULL, 0);
        if (fd >= 0) {
            start(ctx, fd);
            taken++;
        } else if (!example_out_of_room(fd) ||
                   plait_now() >= until || plait_sleep(10 * PLAIT_MS) < 0) {
            return;
        }
    }
}

#endif
