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
 * does so instead of a watch followed by read(2): a slot's read_op is then its one
 * reader, and the coroutine does not return before the kernel is done with its
 * buffer.
 */
#ifndef PLAIT_POLL_H
#define PLAIT_POLL_H

#include "internal.h"

#include <poll.h>

/* A read the kernel makes for a waiting coroutine (io_uring), on that coroutine's
 * stack: the buffer stays the kernel's until `done`. */
typedef struct plait__kernel_io {
    plait__waiter *waiter;
    void *buf;
    size_t len;
    bool done;
    int res;                    /* bytes moved, or -errno */
    /* Where its request is (PLAIT__IO_*), for a plait_close() on another thread: the
     * kernel finds the file by its number as it takes the request, so the number must
     * not be closed (and perhaps reused) meanwhile.  index: its entry in the submission
     * ring, which the kernel has taken once ring_head is past it. */
    atomic_int state;
    unsigned index;
    const unsigned *ring_head;
} plait__kernel_io;

enum {
    PLAIT__IO_QUEUED,           /* in the submission ring: the scheduler's to withdraw */
    PLAIT__IO_ENTERING,         /* handed to the kernel by an io_uring_enter under way */
    PLAIT__IO_IN_KERNEL,        /* the kernel has it, and holds its file */
    PLAIT__IO_WITHDRAWN,        /* a plait_close took it: it must never go */
    PLAIT__IO_RELOOK,           /* taken by plait_close's look after close(2): the number
                                 * may be a new file's, so the caller tries again (-EAGAIN) */
};

/* The status a plait_close's look after close(2) wakes a wait on the number with: not
 * -EBADF, as the wait may be on a new file that took the number since; the caller's
 * system call (or a poll) tells. */
#define PLAIT__LOOK_AGAIN 0

/* The highest descriptor a poller serves: io_uring's request names keep the bits
 * above it (one says a request is a read, one that it cancels another), and the
 * highest names for its requests of its own (the inbox watch, the timeout). */
#define PLAIT__POLL_FD_MAX 0x3fffffef

typedef struct plait__fd_slot {
    plait__waiter *reader, *writer;
    plait__kernel_io *read_op;  /* a read in the kernel for this scheduler, or NULL */
    unsigned armed;             /* poll(2) events watched now, 0 for none */
    bool registered;            /* epoll: in the set (level-triggered, kept between waits) */
    unsigned reg_events;        /* epoll: the events it is registered for */
    uint32_t reg_gen;           /* epoll: plait__fd_close_gen(fd) when it was registered */
    uint32_t reg_id;            /* epoll: which registration is the live one (its reports
                                 * carry it: an older one's are a file no longer at fd) */
    int64_t unverified_since;   /* epoll: a wait trusts the registration unchecked since
                                 * then (0: none) */
    bool listed;                /* epoll: the descriptor is on the poller's `unverified` */
    int64_t trusted_since;      /* epoll: waits have trusted the registration unchecked
                                 * since then (0: none); only a system call on it clears
                                 * it, not a report (which may be an older file's) */
    int64_t trusted_first;      /* epoll: the first wait that trusted the registration
                                 * unchecked since the last system call on it (0: none):
                                 * stretches restart, this does not (RECHECK_NS) */
    int64_t answered_at;        /* epoll: when a report last answered such waits: a wait
                                 * that trusts it VERIFY_NS after that starts a new
                                 * stretch of trust (nobody relied on it meanwhile) */
    bool socket;                /* a socket (valid while kind_known) */
    bool seqpacket;             /* a SOCK_SEQPACKET socket: write(2) ends a record
                                 * (MSG_EOR), send(2) does not (valid while kind_known) */
    bool pollable;              /* not a file poll(2) calls always ready: a directory, a
                                 * block device, a regular file (io_uring: unless its
                                 * file system polls it, plait__uring_polls) */
    bool regular;               /* a regular file (valid while kind_known) */
    bool fifo;                  /* a pipe or FIFO (valid while kind_known) */
    bool kind_known;            /* the kind is known, for the file of close count kind_gen */
    uint32_t kind_gen;
    uint32_t gen;               /* io_uring: which poll request is the live one */
    uint32_t read_gen;          /* io_uring: which read request is the live one */
    uint32_t *removed_gens;     /* io_uring: the poll requests taken back whose last
                                 * completion has not come yet, oldest first: each holds
                                 * the file open until then (plait_close waits for them) */
    size_t removals_due;        /* how many; room for one more while a watch is armed */
    size_t removals_room;       /* the room in removed_gens */
    bool removal_awaited;       /* io_uring: a wait under way waits for those completions
                                 * too (wait_removed) */
    bool arm_deferred;          /* io_uring: its watch waits for room in the ring (on the
                                 * ring's deferred list) */
    bool drained;               /* the last read took less than it asked: likely empty
                                 * (cleared as the kind is looked up for a new file) */
} plait__fd_slot;

/* The poll(2) events a slot's waiters want. */
static inline unsigned plait__slot_wants(const plait__fd_slot *slot)
{
    return (slot->reader ? POLLIN | POLLRDHUP : 0) | (slot->writer ? POLLOUT : 0);
}

struct plait__poller;

typedef struct plait__poll_backend {
    const char *name;
    /* Set up, watching wake_fd (readable: drain it) as well; 0 or -errno. */
    int (*open)(struct plait__poller *p);
    void (*close)(struct plait__poller *p);
    /* Watch fd for events (POLLIN/POLLRDHUP/POLLOUT) until they fire; 0 gives the
     * watch up.  Updates slot->armed.  0 or -errno (-EPERM: fd cannot be polled).  A
     * backend whose kernel refuses for a moment may do it at its next wait instead
     * (io_uring): slot->armed says what is watched now. */
    int (*arm)(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events);
    /* fd is about to be closed by plait_close(): drop what is kept for it. */
    void (*forget)(struct plait__poller *p, int fd, plait__fd_slot *slot);
    /* Optional (NULL: nothing to do): the scheduler ends, no wait left; let go of every
     * file the backend still holds before close (io_uring: removals put off). */
    void (*let_go)(struct plait__poller *p);
    /* Wait until the deadline, up to timeout nanoseconds from now (the same end; -1:
     * for ever; 0: look without waiting), for events, passing each to
     * plait__poller_fire(). */
    void (*wait)(struct plait__poller *p, int64_t deadline, int64_t timeout);
    /* Optional (NULL: events are not seen without a system call): plait__poller_look's
     * look, on this backend. */
    bool (*look)(struct plait__poller *p, const atomic_uint *inbox_seq, unsigned drained,
                 int64_t deadline);
    /* Optional (NULL: not offered): have the kernel read into slot->read_op's buffer
     * once fd has data, completing through plait__poller_io_done(); 0 or -errno.
     * Requests go to the kernel with the next wait, in the order they were made.
     * io_cancel takes such a request back, returning once it is done (completed or
     * cancelled; where the kernel refuses for good it aborts: the buffer would stay the
     * kernel's). */
    int (*io_submit)(struct plait__poller *p, int fd, plait__fd_slot *slot);
    void (*io_cancel)(struct plait__poller *p, int fd);
} plait__poll_backend;

extern const plait__poll_backend plait__poll_epoll;
extern const plait__poll_backend plait__poll_uring;

struct plait__uring;

/* A growing list of descriptor numbers, kept by a backend (epoll: the registrations
 * waits trust unchecked; io_uring: the watches waiting for room in the ring). */
typedef struct plait__fd_list {
    int *fds;
    size_t len, cap;
} plait__fd_list;

/* Append fd; 0 or -ENOMEM (the list is unchanged). */
int plait__fd_list_push(plait__fd_list *list, int fd);
/* A growing array of items of `size` bytes with room for *room, grown (doubling from
 * `first`) to hold `need`: the array, moved or not, *room updated; NULL for want of
 * memory (items and *room unchanged). */
void *plait__room_for(void *items, size_t *room, size_t need, size_t size, size_t first);

struct plait__poller {
    const plait__poll_backend *backend;
    plait__fd_slot *fds;
    size_t cap;
    size_t waits;               /* coroutines waiting on descriptors now */
    size_t put_off;             /* io_uring: watches (re-armed or given up) and the inbox
                                 * watch waiting for room in the ring: the scheduler
                                 * asks its poller while any is left, waits or not */
    int wake_fd;                /* the scheduler's inbox eventfd */
    int broken;                 /* -errno: a fork's child could not remake it (poll.c) */
    int epfd;                   /* epoll backend */
    plait__fd_list unverified;  /* epoll: descriptors whose waits trust their registration */
    bool set_stale;             /* epoll: the set reports a registration out of reach, and
                                 * no new set could be made: waits go by number */
    struct pollfd *by_number;   /* epoll: those waits' array, and its room */
    size_t by_number_room;
    struct plait__uring *ring;  /* io_uring backend */
};

/* A descriptor's events came (poll(2) bits; or -errno, a watch that failed, which
 * becomes its waiters' outcome): wake its waiters, re-arm for those still waiting.
 * The backend has cleared slot->armed first (the watch was one-shot). */
void plait__poller_fire(struct plait__poller *p, int fd, int revents);
/* A read made by the kernel is done (bytes or -errno): wake its coroutine, unless its
 * wait ended otherwise (then it is taking the request back, and sees `done`). */
void plait__poller_io_done(struct plait__poller *p, int fd, int res);
/* Whether fd is one of the io_uring backend's own descriptors (false for another
 * backend's poller). */
bool plait__uring_owns(const struct plait__poller *p, int fd);
/* Whether the file at fd, whose kind plait__fd_kind found, can be waited for: as the
 * slot's `pollable` says, but a regular file that a file system polls (procfs, sysfs,
 * tracefs: /proc/self/mounts, trace_pipe) is looked up with the kernel (io_uring). */
bool plait__uring_polls(struct plait__poller *p, int fd, plait__fd_slot *slot);
/* How many times plait_close() has closed a descriptor with fd's number, or another
 * that shares its stripe: a registration older than that may be gone. */
uint32_t plait__fd_close_gen(int fd);
/* Fill slot's `socket`, `seqpacket` and `pollable` for the file now at fd, looked up once per
 * file at that number (plait_close counts), and each time for a file that is not
 * pollable; false when fstat fails.  gen: fd's close count, read by the caller before
 * (plait__fd_close_gen, or its call's `since`): a close after it makes the kind stale. */
bool plait__fd_kind(plait__fd_slot *slot, int fd, uint32_t gen);
/* The scheduler's wake-up eventfd fired. */
void plait__poller_drain_wake(struct plait__poller *p);
/* A wait's nanoseconds as epoll_wait's milliseconds, rounded up: -1 forever, 0 none. */
int plait__poll_timeout_ms(int64_t timeout);

#endif
