/*
 * poll_epoll.c — the poller's epoll backend (see poll.h for the contract).
 *
 * Registrations are level-triggered and kept between waits, as a hand-written epoll
 * loop keeps them: a wait on a descriptor already registered for its events costs no
 * system call, and one that is ready is reported by the next epoll_wait.  Keeping them
 * has two costs, each paid only where it arises:
 *
 *  - A registered descriptor nobody waits on any more is still reported while it is
 *    ready (unread data, room to write, a hang-up).  A report in a look that does not
 *    sleep is left alone (the coroutine woken for it may not have run yet); one that
 *    ends a sleep with no waiter for it narrows the registration to what is still
 *    waited for (EPOLL_CTL_MOD, or DEL when nothing is), so the scheduler never spins.
 *  - A descriptor closed with close(2) leaves the set by itself, and its number may
 *    come back as another file: a wait that trusted the old registration would never
 *    be woken.  plait_close() counts closes per stripe of numbers, and a registration
 *    made before a close of its stripe is made again.  Against close(2), a wait that
 *    began without a system call is checked once it has slept VERIFY_NS: EPOLL_CTL_MOD
 *    answers ENOENT for a number no longer registered, which is then added again (or
 *    the wait ends with -EBADF when nothing is open there).  Such a wait is late by
 *    VERIFY_NS at most, never lost.
 *  - A file open elsewhere too (a dup, a child's copy) keeps its registration past the
 *    close of our number, and epoll_ctl can no longer reach it by that number.
 *    plait_close() takes this scheduler's registration out first (forget); a report
 *    that still comes from one out of reach (after close(2), or another scheduler's
 *    plait_close) makes the poller start a new set with what is waited for now (and
 *    while none can be made, wait by number: ep_rebuild).  Its
 *    reports carry the id of the registration they came from, so those of an older one
 *    are known once the number has been registered anew; and as a wait that trusts
 *    a registration cannot tell the old file's reports from the new file's, a report
 *    for one trusted unchecked for VERIFY_NS is checked (EPOLL_CTL_MOD) before it
 *    answers (the old file's readiness once answered every wait on the new one).
 *
 * A regular file cannot be added (EPERM): poll.c treats it as always ready.
 */
#include "poll.h"

#include <linux/time_types.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { EVENTS_BATCH = 64, VERIFY_MS = 20 };
#define VERIFY_NS ((int64_t)VERIFY_MS * PLAIT_MS)
/* A registration that stretches of trust have used unchecked for this long is checked
 * at its next report however short the stretch: waits spaced out by more than
 * VERIFY_NS each start a stretch, and the old file's readiness answered each at once,
 * for ever.  One MOD a second at most for a descriptor waited on now and then. */
#define RECHECK_NS PLAIT_SEC
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
    p->set_stale = false;
    free(p->by_number);
    p->by_number = NULL;
    p->by_number_room = 0;
}

/* Make fd's registration exactly `events` (0: none).  0, 1 when one believed there
 * (slot->registered) was not and has been added anew, or -errno. */
static int ep_register(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    /* poll(2) and epoll share the bit values of the events used here */
    struct epoll_event ev = {.events = events,
                             .data.u64 = (uint64_t)(slot->reg_id + 1) << 32 | (uint32_t)fd};
    uint32_t gen = plait__fd_close_gen(fd); /* before: a close meanwhile makes it stale */
    bool lost = false;
    if (slot->registered || events) {
        int op = !slot->registered ? EPOLL_CTL_ADD : events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
        int r = epoll_ctl(p->epfd, op, fd, &ev);
        if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST) /* kept across a plait_close */
            r = epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
        else if (r < 0 && op != EPOLL_CTL_ADD && errno == ENOENT) { /* closed (and reused?) */
            r = events ? epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) : 0;
            lost = r == 0 && events;
        }
        if (r < 0)
            return -errno;
        if (events)
            slot->reg_id++; /* the registration of the file at fd now reports this one */
    }
    slot->registered = events != 0;
    slot->reg_events = events;
    slot->reg_gen = gen;
    slot->unverified_since = 0;
    slot->trusted_since = slot->trusted_first = 0;
    return lost; /* 1: the registration believed there was not (added anew) */
}

/* Remember that a wait on fd trusts its registration unchecked.  0 or -ENOMEM.  The
 * time is the coarse clock's (a wait's hot path reads it): a tick behind the precise
 * one at most, so the check comes that much early, never late. */
static int trust(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    /* a stretch of trust: the waits that follow each other, each answered by a report
     * as the one before ends (a file no longer at fd, always ready, answers them so);
     * waits VERIFY_NS apart, nobody waiting between, start a new one (a socket waited
     * on a moment every 30 ms paid an epoll_ctl every other wait) */
    int64_t now = plait__coarse_now();
    if (!slot->trusted_since || now - slot->answered_at >= VERIFY_NS)
        slot->trusted_since = now;
    if (!slot->trusted_first)
        slot->trusted_first = now;
    if (slot->listed) { /* an event or a registration may have cleared the time */
        if (!slot->unverified_since)
            slot->unverified_since = now;
        return 0;
    }
    if (plait__fd_list_push(&p->unverified, fd) < 0)
        return -ENOMEM;
    slot->listed = true;
    slot->unverified_since = now;
    return 0;
}

static int ep_arm(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    slot->armed = events;
    if (!events)
        return 0; /* the registration stays until a report finds no one waiting */
    bool current = slot->registered && slot->reg_gen == plait__fd_close_gen(fd);
    unsigned kept = current ? slot->reg_events : 0;
    int r = 0;
    if ((events & ~kept) || trust(p, fd, slot) < 0)
        r = ep_register(p, fd, slot, kept | events);
    if (r < 0)
        slot->armed = 0;
    return r < 0 ? r : 0;
}

/* The events of fd that someone waits for. */
static unsigned waited_for(const plait__fd_slot *slot)
{
    unsigned w = plait__slot_wants(slot);
    return w ? w | (slot->reader ? POLLPRI : 0) | POLLHUP | POLLERR : 0;
}

/* The answer for a file epoll refuses (always ready): the directions waited for. */
static int always_ready(const plait__fd_slot *slot)
{
    return (int)(plait__slot_wants(slot) & (POLLIN | POLLOUT));
}

/* Check the registrations that waits have trusted for VERIFY_NS (see the top). */
static void verify(struct plait__poller *p)
{
    int64_t now = plait_now();
    size_t keep = 0;
    for (size_t i = 0; i < p->unverified.len; i++) {
        int fd = p->unverified.fds[i];
        plait__fd_slot *slot = &p->fds[fd];
        if (!waited_for(slot))
            slot->unverified_since = 0; /* its wait is over */
        if (slot->unverified_since && now - slot->unverified_since < VERIFY_NS) {
            p->unverified.fds[keep++] = fd;
            continue;
        }
        slot->listed = false;
        if (!slot->unverified_since)
            continue;
        int r = ep_register(p, fd, slot, slot->reg_events);
        if (r < 0) { /* nothing pollable is open at that number any more */
            slot->unverified_since = 0;
            slot->registered = false;
            slot->armed = 0;
            plait__poller_fire(p, fd, r == -EPERM ? always_ready(slot) : r);
        }
    }
    p->unverified.len = keep;
}

/* Take fd's registration out of the set before plait_close() closes it: while the
 * file is open elsewhere (a dup, a child) it would outlive the close, unreachable. */
static void ep_forget(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    slot->armed = 0;
    ep_register(p, fd, slot, 0);
}

/* A report came from a registration that its number no longer reaches (the file is
 * open elsewhere and the number was closed with close(2), or names another file now):
 * start a new set with what is waited for now.  Where none can be made (no descriptor
 * or memory free), the old set is kept, but its reports of that registration go on
 * ending every sleep at once: until a new set can be made, waits go by number
 * (wait_by_number; the scheduler once spun for as long as the shortage lasted). */
static void ep_rebuild(struct plait__poller *p)
{
    int old = p->epfd;
    p->set_stale = ep_open(p) < 0;
    if (p->set_stale) {
        p->epfd = old; /* it still holds every registration made */
        return;
    }
    close(old);
    p->unverified.len = 0;
    for (size_t fd = 0; fd < p->cap; fd++) {
        plait__fd_slot *slot = &p->fds[fd];
        if (slot->registered || slot->listed || slot->unverified_since) {
            slot->registered = slot->listed = false; /* (others unwritten: poll.c's grow) */
            slot->unverified_since = 0;
        }
        int r = slot->armed ? ep_register(p, (int)fd, slot, slot->armed) : 0;
        if (r < 0) {
            slot->armed = 0;
            plait__poller_fire(p, (int)fd, r == -EPERM ? always_ready(slot) : r);
        }
    }
}

/* The kernel's wait for events, for timeout_ns at most (< 0: no limit).  epoll_pwait2
 * (Linux 5.11) takes that time in nanoseconds, as io_uring's timeout and a thread's
 * ppoll(2) do; epoll_wait takes whole milliseconds, rounded up, so a deadline 50 µs away
 * woke a millisecond late on this backend alone once a descriptor was waited on.
 * Through syscall(2): the C library's wrapper came later (glibc 2.35).  A kernel without
 * it (ENOSYS), or a seccomp filter that refuses it (EPERM), leaves epoll_wait.  Not
 * under ThreadSanitizer, which runs a signal's handler only when the thread next enters
 * a call it intercepts: epoll_wait is one, syscall(2) is not (poll.c's choose says why
 * that build waits on epoll at all). */
static int wait_events(int epfd, struct epoll_event *evs, int64_t timeout_ns)
{
#if defined(SYS_epoll_pwait2) && !defined(PLAIT_TSAN)
    static atomic_bool no_pwait2; /* the kernel refused it: set once, for good */
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / PLAIT_SEC,
                                       .tv_nsec = timeout_ns % PLAIT_SEC};
        long n = syscall(SYS_epoll_pwait2, epfd, evs, EVENTS_BATCH, timeout_ns < 0 ? NULL : &ts,
                         NULL, (size_t)0);
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
#endif
    return epoll_wait(epfd, evs, EVENTS_BATCH, plait__poll_timeout_ms(timeout_ns));
}

/* A wait while the set is stale (ep_rebuild): ppoll(2) on the inbox and the numbers
 * waited on, which needs no new descriptor and cannot be misled by a file no longer at
 * a number.  false where it could not wait: no memory for the array, or ppoll refused
 * it (EINVAL: more numbers than RLIMIT_NOFILE). */
static bool wait_by_number(struct plait__poller *p, int64_t timeout)
{
    size_t n = 1;
    for (size_t fd = 0; fd < p->cap; fd++)
        n += p->fds[fd].armed != 0;
    struct pollfd *fds = plait__room_for(p->by_number, &p->by_number_room, n, sizeof *fds, 16);
    if (!fds)
        return false;
    p->by_number = fds;
    fds[0] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
    for (size_t fd = 0, k = 1; k < n; fd++)
        if (p->fds[fd].armed)
            fds[k++] = (struct pollfd){.fd = (int)fd, .events = (short)p->fds[fd].armed};
    struct timespec ts = {.tv_sec = timeout / PLAIT_SEC, .tv_nsec = timeout % PLAIT_SEC};
    int ready = ppoll(fds, n, timeout < 0 ? NULL : &ts, NULL);
    if (ready < 0)
        return errno == EINTR;
    for (size_t k = 0; k < n && ready > 0; k++) {
        if (!fds[k].revents)
            continue;
        ready--;
        if (k == 0) {
            plait__poller_drain_wake(p);
            continue;
        }
        plait__fd_slot *slot = &p->fds[fds[k].fd];
        int bits = fds[k].revents & POLLNVAL ? -EBADF : (int)(fds[k].revents & waited_for(slot));
        if (bits && slot->armed) { /* (an earlier fire may have re-armed or given it up) */
            slot->armed = 0;
            plait__poller_fire(p, fds[k].fd, bits);
        }
    }
    return true;
}

/* Where the set is stale and waits cannot go by number: a pause on the inbox, a
 * millisecond at most, before the set is looked at without sleeping. */
static void pause_on_inbox(struct plait__poller *p, int64_t timeout)
{
    struct pollfd inbox = {.fd = p->wake_fd, .events = POLLIN};
    struct timespec ts = {.tv_nsec = timeout >= 0 && timeout < PLAIT_MS ? timeout : PLAIT_MS};
    if (ppoll(&inbox, 1, &ts, NULL) > 0)
        plait__poller_drain_wake(p);
}

static void ep_wait(struct plait__poller *p, int64_t deadline, int64_t timeout)
{
    (void)deadline; /* the kernel takes the time left */
    if (p->set_stale) {
        ep_rebuild(p);
        if (p->set_stale) {
            if (wait_by_number(p, timeout))
                return;
            pause_on_inbox(p, timeout);
            timeout = 0;
        }
    }
    struct epoll_event evs[EVENTS_BATCH];
    if (p->unverified.len && (timeout < 0 || timeout > VERIFY_NS))
        timeout = VERIFY_NS;
    int n = wait_events(p->epfd, evs, timeout);
    bool unreachable = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_TOKEN) {
            plait__poller_drain_wake(p);
            continue;
        }
        int fd = (int)(uint32_t)evs[i].data.u64;
        if ((size_t)fd >= p->cap)
            continue;
        plait__fd_slot *slot = &p->fds[fd];
        unsigned bits = evs[i].events;
        if ((uint32_t)(evs[i].data.u64 >> 32) != slot->reg_id) {
            /* an older registration's: a file that no longer has the number (closed
             * with close(2) while open elsewhere, the number since registered anew) */
            unreachable = true;
            continue;
        }
        slot->unverified_since = 0; /* a registration is there */
        int64_t now = 0;
        if ((bits & waited_for(slot)) && slot->trusted_since &&
            ((now = plait__coarse_now()) - slot->trusted_since >= VERIFY_NS ||
             now - slot->trusted_first >= RECHECK_NS)) {
            /* but perhaps a file's that no longer has the number (closed with close(2)
             * while open elsewhere, the number taken by a new file): its readiness
             * would answer every wait on the new one, each report vouching anew.
             * Checked once per VERIFY_NS of trust. */
            int r = ep_register(p, fd, slot, slot->reg_events);
            if (r > 0) { /* it was: the new file is registered now; a new set drops the old */
                unreachable = true;
                continue;
            }
            if (r < 0) { /* nothing pollable is open at that number any more */
                slot->registered = false;
                slot->armed = 0;
                plait__poller_fire(p, fd, r == -EPERM ? always_ready(slot) : r);
                continue;
            }
        }
        if (bits & waited_for(slot)) {
            slot->answered_at = now; /* (0 when nothing trusts the registration) */
            slot->armed = 0; /* poll.c watches again for whoever still waits */
            /* the events its waiters asked for (the registration may keep others):
             * as io_uring and poll(2) answer */
            plait__poller_fire(p, fd, (int)(bits & waited_for(slot)));
        } else if (timeout != 0) { /* nobody waits for it, and it woke a sleep */
            unreachable |= !slot->registered ||
                           !(bits & (slot->reg_events | POLLHUP | POLLERR)) ||
                           ep_register(p, fd, slot, slot->reg_events & waited_for(slot)) < 0;
        }
    }
    if (unreachable)
        ep_rebuild(p);
    else if (p->unverified.len)
        verify(p);
}

const plait__poll_backend plait__poll_epoll = {
    .name = "epoll", .open = ep_open, .close = ep_close, .arm = ep_arm, .forget = ep_forget, .wait = ep_wait,
};
