/*
 * poll.h — the scheduler's poller, shared by its common part (poll.c) and its two
 * backends: epoll (poll_epoll.c) and io_uring (poll_uring.c).
 *
 * poll.c owns the table of descriptors and who waits on each; a backend only arms a
 * descriptor for a set of poll(2) events (one-shot), disarms it, and waits, reporting
 * each ready descriptor back through plait__poller_fire().  A backend never wakes a
 * coroutine itself, so both backends share every rule of waiting: the same tests run
 * on both.
 *
 * Invariant: a slot's `armed` mask is what the backend watches for it now (0: not
 * watched); poll.c re-arms a slot whenever the waiters it has and the mask differ
 * after an event or a withdrawal.  A backend that can read for a coroutine (io_uring)
 * does so instead of a watch followed by read(2): a slot's read_op is then the one
 * reader, and the coroutine does not return before the kernel is done with its buffer.
 */
#ifndef PLAIT_POLL_H
#define PLAIT_POLL_H

#include "internal.h"

/* A read the kernel makes for a waiting coroutine (io_uring), on that coroutine's
 * stack: the buffer stays the kernel's until `done`. */
typedef struct plait__kernel_read {
    plait__waiter *waiter;
    void *buf;
    size_t len;
    bool done;
    int res;                    /* bytes read, or -errno */
} plait__kernel_read;

typedef struct plait__fd_slot {
    plait__waiter *reader, *writer;
    plait__kernel_read *read_op;  /* a read in the kernel for this scheduler, or NULL */
    unsigned armed;             /* poll(2) events watched now, 0 for none */
    bool registered;            /* epoll: in the set (perhaps disarmed) */
    uint32_t gen;               /* io_uring: which poll request is the live one */
    uint32_t read_gen;          /* io_uring: which read request is the live one */
    bool drained;               /* the last read took less than it asked: likely empty */
} plait__fd_slot;

struct plait__poller;

typedef struct plait__poll_backend {
    const char *name;
    /* Set up, watching wake_fd (readable: drain it) as well; 0 or -errno. */
    int (*open)(struct plait__poller *p);
    void (*close)(struct plait__poller *p);
    /* Watch fd for events (POLLIN/POLLRDHUP/POLLOUT), one-shot; 0 disarms it.
     * Updates slot->armed.  0 or -errno (-EPERM: fd cannot be polled). */
    int (*arm)(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events);
    /* Wait until the deadline (a past one: look without waiting) for events, passing
     * each to plait__poller_fire(). */
    void (*wait)(struct plait__poller *p, int64_t deadline);
    /* Optional (NULL: not offered): have the kernel read slot->read_op's buffer once fd
     * has data, completing through plait__poller_read_done(); 0 or -errno.  And take
     * such a read back, returning once it is done (completed or cancelled). */
    int (*read_submit)(struct plait__poller *p, int fd, plait__fd_slot *slot);
    void (*read_cancel)(struct plait__poller *p, int fd);
} plait__poll_backend;

extern const plait__poll_backend plait__poll_epoll;
extern const plait__poll_backend plait__poll_uring;

struct plait__uring;

struct plait__poller {
    const plait__poll_backend *backend;
    plait__fd_slot *fds;
    size_t cap;
    size_t waits;               /* coroutines waiting on descriptors now */
    int wake_fd;                /* the scheduler's inbox eventfd */
    int epfd;                   /* epoll backend */
    struct plait__uring *ring;  /* io_uring backend */
};

/* A descriptor's events came (poll(2) bits; or -errno, a watch that failed, which
 * becomes its waiters' outcome): wake its waiters, re-arm for those still waiting.
 * The backend has cleared slot->armed first (the watch was one-shot). */
void plait__poller_fire(struct plait__poller *p, int fd, int revents);
/* A read made by the kernel is done (bytes or -errno): wake its coroutine, unless its
 * wait ended otherwise (then it is taking the read back, and sees `done`). */
void plait__poller_read_done(struct plait__poller *p, int fd, int res);
/* The scheduler's wake-up eventfd fired. */
void plait__poller_drain_wake(struct plait__poller *p);
/* Milliseconds until deadline for epoll_wait/poll: -1 forever, 0 past. */
int plait__poll_timeout_ms(int64_t deadline);

#endif
