/*
 * poll_epoll.c — the poller's epoll backend (see poll.h for the contract).
 *
 * A descriptor stays registered once added, disarmed (EPOLLONESHOT) between waits, so
 * the next wait on it costs one epoll_ctl(MOD), not two.  A descriptor closed
 * meanwhile leaves the epoll set by itself; its number, reused, answers MOD with
 * ENOENT and is added again.  A regular file cannot be added (EPERM): poll.c treats it
 * as always ready.
 */
#include "poll.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { EVENTS_BATCH = 64 };
#define WAKE_TOKEN UINT64_MAX

static int ep_open(struct plait__poller *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &ev) < 0) {
        int e = -errno;
        close(p->epfd);
        p->epfd = -1;
        return e;
    }
    return 0;
}

static void ep_close(struct plait__poller *p)
{
    if (p->epfd >= 0)
        close(p->epfd);
    p->epfd = -1;
}

static int ep_arm(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    if (!events) {
        if (slot->registered && epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
            slot->registered = false;
        slot->armed = 0;
        return 0;
    }
    /* poll(2) and epoll share the bit values of the events used here */
    struct epoll_event ev = {.events = EPOLLONESHOT | events, .data.u64 = (uint64_t)fd};
    if (slot->registered) {
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
            slot->armed = events;
            return 0;
        }
        if (errno != ENOENT)
            return -errno;
        slot->registered = false; /* closed and reused meanwhile */
    }
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    slot->registered = true;
    slot->armed = events;
    return 0;
}

static void ep_wait(struct plait__poller *p, int64_t deadline)
{
    struct epoll_event evs[EVENTS_BATCH];
    int n = epoll_wait(p->epfd, evs, EVENTS_BATCH, plait__poll_timeout_ms(deadline));
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_TOKEN) {
            plait__poller_drain_wake(p);
            continue;
        }
        int fd = (int)evs[i].data.u64;
        if ((size_t)fd < p->cap)
            p->fds[fd].armed = 0; /* one-shot: it fired */
        plait__poller_fire(p, fd, (int)evs[i].events);
    }
}

const plait__poll_backend plait__poll_epoll = {
    .name = "epoll", .open = ep_open, .close = ep_close, .arm = ep_arm, .wait = ep_wait,
};
