/*
 * poll.c — waiting for a file descriptor: the poller inside each scheduler (epoll),
 * and the same wait for a plain thread (poll).  Reading and writing with deadlines is
 * built on it (fdio.c).
 *
 * A scheduler creates its poller the first time one of its coroutines waits on a
 * descriptor.  The poller keeps a table indexed by descriptor: the coroutine waiting
 * to read it and the one waiting to write it (one of each per scheduler: a second
 * gets -EBUSY, as two readers of one stream would race for its bytes anyway).
 *
 * Registrations are one-shot and persistent: a wait arms the descriptor (EPOLL_CTL_MOD,
 * or ADD the first time), the event disarms it, and it stays registered, disarmed,
 * after the wait, so the next wait on it costs one epoll_ctl, not two.  A descriptor
 * closed meanwhile leaves epoll by itself; its number, reused, answers MOD with
 * ENOENT, and is added again.  A regular file cannot be polled (EPERM): it is always
 * ready, as poll(2) says.
 *
 * While coroutines wait on descriptors, the scheduler sleeps in epoll_wait instead of
 * on its futex: its inbox has an eventfd in the epoll set, which a thread posting to
 * the inbox writes (inbox_post_unlock in sched.c) when the scheduler sleeps there.
 * When there are also coroutines ready to run, the loop looks at the poller without
 * sleeping on each of its passes, so descriptors are served even under load.
 *
 * A plain thread waits in ppoll() on the descriptor and on its own wake-up eventfd,
 * which the waiter protocol writes when a cancellation claims the wait (waiter.c): so
 * a plait thread or pool task blocked on a descriptor is cancellable like any wait.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { EVENTS_BATCH = 64 };
#define WAKE_TOKEN UINT64_MAX

typedef struct fd_slot {
    plait__waiter *reader, *writer;
    bool registered;            /* in the epoll set (perhaps disarmed) */
} fd_slot;

struct plait__poller {
    int epfd;
    fd_slot *fds;
    size_t cap;
    size_t waits;               /* coroutines waiting on descriptors now */
};

void plait__wake_fd_write(int fd)
{
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void wake_fd_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* PLAIT_* readiness from poll/epoll bits (the same values for the bits we use). */
static int ready_mask(unsigned revents)
{
    int m = 0;
    if (revents & (POLLIN | POLLPRI | POLLRDHUP))
        m |= PLAIT_READABLE;
    if (revents & POLLOUT)
        m |= PLAIT_WRITABLE;
    if (revents & POLLHUP)
        m |= PLAIT_HANGUP;
    if (revents & POLLERR)
        m |= PLAIT_ERROR;
    return m;
}

/* ---- the scheduler's poller ---- */

static struct plait__poller *poller_get(plait__sched *s)
{
    if (s->poller)
        return s->poller;
    struct plait__poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (p->epfd < 0 || wake < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, wake, &ev) < 0) {
        if (p->epfd >= 0)
            close(p->epfd);
        if (wake >= 0)
            close(wake);
        free(p);
        return NULL;
    }
    s->inbox.poll_wake_fd = wake;
    return s->poller = p;
}

void plait__poller_free(plait__sched *s)
{
    struct plait__poller *p = s->poller;
    if (!p)
        return;
    close(p->epfd);
    close(s->inbox.poll_wake_fd);
    s->inbox.poll_wake_fd = -1;
    free(p->fds);
    free(p);
    s->poller = NULL;
}

bool plait__poller_busy(const plait__sched *s)
{
    return s->poller && s->poller->waits > 0;
}

/* Arm fd for what its slot's waiters want; 0 or -errno. */
static int slot_arm(struct plait__poller *p, int fd, fd_slot *slot)
{
    struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = (uint64_t)fd};
    if (slot->reader)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (slot->writer)
        ev.events |= EPOLLOUT;
    if (slot->registered) {
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return -errno;
        slot->registered = false; /* closed and reused meanwhile */
    }
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    slot->registered = true;
    return 0;
}

static int grow(struct plait__poller *p, int fd)
{
    if ((size_t)fd < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    fd_slot *fds = realloc(p->fds, cap * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    memset(fds + p->cap, 0, (cap - p->cap) * sizeof *fds);
    p->fds = fds;
    p->cap = cap;
    return 0;
}

static int coro_wait_fd(plait__sched *s, plait__waiter *w, int fd, int events,
                        int64_t deadline)
{
    struct plait__poller *p = poller_get(s);
    if (!p)
        return -ENOMEM;
    if (grow(p, fd) < 0)
        return -ENOMEM;
    fd_slot *slot = &p->fds[fd];
    if (((events & PLAIT_READABLE) && slot->reader) ||
        ((events & PLAIT_WRITABLE) && slot->writer))
        return -EBUSY;
    if (events & PLAIT_READABLE)
        slot->reader = w;
    if (events & PLAIT_WRITABLE)
        slot->writer = w;
    int r = slot_arm(p, fd, slot);
    if (r < 0) {
        if (slot->reader == w)
            slot->reader = NULL;
        if (slot->writer == w)
            slot->writer = NULL;
        if (r == -EPERM) /* a regular file or the like: always ready */
            return events & (PLAIT_READABLE | PLAIT_WRITABLE);
        return r;
    }
    p->waits++;
    r = plait__waiter_block(w, deadline);
    p->waits--;
    /* the poller clears what it fired; a wait that ended otherwise is withdrawn, and
     * the other direction's waiter, if any, keeps its registration.  The table may
     * have grown (moved) while this coroutine waited. */
    slot = &p->fds[fd];
    bool mine = slot->reader == w || slot->writer == w;
    if (slot->reader == w)
        slot->reader = NULL;
    if (slot->writer == w)
        slot->writer = NULL;
    if (mine && (slot->reader || slot->writer))
        slot_arm(p, fd, slot);
    else if (mine && slot->registered && epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
        slot->registered = false; /* armed still: disarm it */
    return r;
}

/* A ready event: wake the waiters it concerns; re-arm for the one still waiting. */
static void fire(struct plait__poller *p, int fd, unsigned events)
{
    if ((size_t)fd >= p->cap)
        return;
    fd_slot *slot = &p->fds[fd];
    int mask = ready_mask(events);
    plait__waiter *r = slot->reader, *w = slot->writer;
    bool wake_r = r && (mask & (PLAIT_READABLE | PLAIT_HANGUP | PLAIT_ERROR));
    bool wake_w = w && (mask & (PLAIT_WRITABLE | PLAIT_HANGUP | PLAIT_ERROR));
    if (r == w) /* one coroutine waits for either: either wakes it */
        wake_r = wake_w = wake_r || wake_w;
    if (wake_r)
        slot->reader = NULL;
    if (wake_w)
        slot->writer = NULL;
    if (wake_r && plait__waiter_claim(r))
        plait__waiter_signal_now(r, mask, -1);
    if (wake_w && w != r && plait__waiter_claim(w))
        plait__waiter_signal_now(w, mask, -1);
    if (slot->reader || slot->writer)
        slot_arm(p, fd, slot); /* one-shot: the other direction still waits */
}

static int timeout_ms(int64_t deadline)
{
    if (deadline == PLAIT_FOREVER)
        return -1;
    int64_t left = deadline - plait_now();
    if (left <= 0)
        return 0;
    int64_t ms = (left + PLAIT_MS - 1) / PLAIT_MS;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

void plait__poller_poll(plait__sched *s, int64_t deadline)
{
    struct plait__poller *p = s->poller;
    struct epoll_event evs[EVENTS_BATCH];
    int n = epoll_wait(p->epfd, evs, EVENTS_BATCH, timeout_ms(deadline));
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_TOKEN)
            wake_fd_drain(s->inbox.poll_wake_fd);
        else
            fire(p, (int)evs[i].data.u64, evs[i].events);
    }
}

/* ---- a plain thread's wait ---- */

static pthread_key_t wake_key;
static pthread_once_t wake_key_once = PTHREAD_ONCE_INIT;
static bool wake_key_made;
static PLAIT_TLS int tls_wake_fd = -1;

static void wake_fd_close(void *unused)
{
    (void)unused;
    if (tls_wake_fd >= 0)
        close(tls_wake_fd);
    tls_wake_fd = -1;
}

static void wake_key_make(void)
{
    wake_key_made = pthread_key_create(&wake_key, wake_fd_close) == 0;
}

/* The calling thread's wake-up eventfd, closed when the thread ends; -errno. */
static int thread_wake_fd(void)
{
    if (tls_wake_fd >= 0)
        return tls_wake_fd;
    pthread_once(&wake_key_once, wake_key_make);
    if (!wake_key_made)
        return -EAGAIN;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (pthread_setspecific(wake_key, &wake_key) != 0) {
        close(fd);
        return -ENOMEM;
    }
    return tls_wake_fd = fd;
}

void plait__poll_after_fork(void)
{
    /* the eventfd is shared with the parent's thread: this process needs its own */
    if (tls_wake_fd >= 0)
        close(tls_wake_fd);
    tls_wake_fd = -1;
}

int plait__poll_block(plait__waiter *w, int64_t deadline)
{
    struct pollfd pfd[2] = {{.fd = w->poll_fd, .events = w->poll_events},
                            {.fd = w->wake_fd, .events = POLLIN}};
    bool mine = true; /* still ours to decide */
    for (;;) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire))
            break;
        struct timespec ts, *tsp = NULL;
        if (mine && deadline != PLAIT_FOREVER) {
            int64_t left = deadline - plait_now();
            if (left < 0)
                left = 0;
            ts.tv_sec = left / PLAIT_SEC;
            ts.tv_nsec = left % PLAIT_SEC;
            tsp = &ts;
        }
        pfd[0].revents = pfd[1].revents = 0;
        int n = ppoll(mine ? pfd : pfd + 1, mine ? 2 : 1, tsp, NULL);
        if (atomic_load_explicit(&w->signalled, memory_order_acquire) || !mine)
            continue;
        int status;
        if (n > 0 && pfd[0].revents)
            status = pfd[0].revents & POLLNVAL ? -EBADF : ready_mask(pfd[0].revents);
        else if (n == 0)
            status = -ETIMEDOUT;
        else if (n < 0 && errno != EINTR)
            status = -errno;
        else
            continue;
        if (plait__waiter_claim(w)) {
            w->status = status;
            break;
        }
        mine = false; /* a cancellation claimed it: its signal writes the eventfd */
    }
    wake_fd_drain(w->wake_fd);
    return w->status;
}

/* ---- the public wait ---- */

int plait_wait_fd(int fd, int events, int64_t deadline)
{
    if (fd < 0)
        return -EBADF;
    if (!(events & (PLAIT_READABLE | PLAIT_WRITABLE)) ||
        (events & ~(PLAIT_READABLE | PLAIT_WRITABLE)))
        return -EINVAL;
    short pevents = (short)((events & PLAIT_READABLE ? POLLIN : 0) |
                            (events & PLAIT_WRITABLE ? POLLOUT : 0));
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    if (plait__deadline_passed(deadline)) { /* try once */
        struct pollfd pfd = {.fd = fd, .events = pevents};
        if (poll(&pfd, 1, 0) < 0)
            return -errno;
        if (pfd.revents & POLLNVAL)
            return -EBADF;
        return pfd.revents ? ready_mask(pfd.revents) : -ETIMEDOUT;
    }
    plait__waiter w;
    plait__waiter_init(&w, events & PLAIT_READABLE ? "read" : "write", NULL);
    w.object = (const void *)(intptr_t)fd;
    if (w.coro)
        return coro_wait_fd(w.coro->sched, &w, fd, events, deadline);
    int wake = thread_wake_fd();
    if (wake < 0)
        return wake;
    w.poll_fd = fd;
    w.poll_events = pevents;
    w.wake_fd = wake;
    return plait__waiter_block(&w, deadline);
}
