/* stop.h — what the example servers share as they stop: the connections the kernel
 * has queued on their listener already (each client told it is connected, what it sent
 * acknowledged) are taken before the listener is closed, as Linux resets what a closed
 * TCP listener holds, requests and all. */
#ifndef PLAIT_EXAMPLE_STOP_H
#define PLAIT_EXAMPLE_STOP_H

#include <plait.h>
#include <errno.h>

/* Take what listener has queued, at most `most` (clients that go on connecting cannot
 * hold the stop off), handing each to start(ctx, fd): accepts that do not block, which
 * end once the queue is empty.  Out of descriptors (or memory), it waits for the open
 * connections (told to stop first) to give theirs back, until `until`, as the servers'
 * acceptors do: it ended at the first -EMFILE, and the listener's close then reset
 * every client still queued. */
static void example_take_queued(int listener, int most, int64_t until,
                                void (*start)(void *ctx, int fd), void *ctx)
{
    for (int taken = 0; taken < most;) {
        int fd = plait_accept(listener, NULL, 0);
        if (fd >= 0) {
            start(ctx, fd);
            taken++;
        } else if ((fd != -EMFILE && fd != -ENFILE && fd != -ENOBUFS && fd != -ENOMEM) ||
                   plait_now() >= until || plait_sleep(10 * PLAIT_MS) < 0) {
            return;
        }
    }
}

#endif
