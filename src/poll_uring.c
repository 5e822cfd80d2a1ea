/*
 * poll_uring.c — the poller's io_uring backend (see poll.h for the contract), on the
 * raw system calls: the library needs nothing beyond libc and the kernel.
 *
 * Each watch is a one-shot IORING_OP_POLL_ADD whose user_data names the descriptor
 * and a generation: re-arming a slot (or disarming it) cancels the live request
 * (IORING_OP_ASYNC_CANCEL) and bumps the generation, so a completion that was already
 * on its way for the old request is recognised as stale and dropped.  Cancelled, not
 * removed: IORING_OP_POLL_REMOVE answers -EALREADY for a request woken whose wake-up
 * has not run yet (queued as work due), and that work, finding the file no longer
 * ready (another coroutine took the connection that woke it), arms the request again:
 * it stayed armed, holding the file, with no completion ever coming, and a close
 * waiting for one slept for ever.  A cancellation marks the request, and the work due
 * ends it (-ECANCELED).  A read the
 * kernel makes for a coroutine (IORING_OP_READ; on a socket an IORING_OP_RECV that
 * waits before it tries, RECVSEND_POLL_FIRST, as plait asks for one only when the last
 * read emptied the socket) is named the same way, with a bit that says it is a read.
 * (Writes are write(2): fdio.c says why.)  Requests are only written into the
 * submission ring; they go to the kernel together with the next wait, so a wait costs
 * no system call of its own (epoll needs an epoll_ctl), and the kernel starts them in
 * the order they were written.  A read whose wait ends (deadline,
 * cancellation, plait_close) before its request went to the kernel never goes: the
 * request is made a no-op first (withdraw_ended).  As the kernel finds a request's file
 * by its number when it takes the request, a plait_close on another thread either
 * takes a queued read back, or, once the scheduler is handing it over, waits
 * until the ring's head is past it (take_back_or_wait_handed in poll.c): the number is
 * never closed, and reused, under the kernel's look-up.  The inbox eventfd is watched by a request with its
 * own user_data, re-armed each time it fires, and the scheduler's sleeps end by one
 * timeout request kept in the ring for the earliest deadline (timeout_by).  A watch
 * that finds the ring full while the kernel refuses to take it for a moment is not
 * refused: it is armed by the next wait (arm_deferred), which then sleeps at most a
 * millisecond while any is left, and its coroutine waits on meanwhile; so is the inbox
 * eventfd's own watch (`wake_unarmed`: that once aborted the process).
 *
 * The ring is set up with SINGLE_ISSUER, DEFER_TASKRUN and TASKRUN_FLAG where the
 * kernel has them (6.1): completions are then made only when this thread enters the
 * kernel to wait or to look, in batches, instead of interrupting it, and the shared
 * flags say when some are due, so a look without sleeping is a read of memory unless
 * something is pending.  (On older kernels the ring is plain: the kernel posts
 * completions on its own.)  Either way a wait first takes what the ring holds and does
 * not sleep if that woke anyone.  A completion ring that overflows is kept by the
 * kernel (FEAT_NODROP, required) and flushed by the next enter; should the kernel
 * have no memory to keep it, it drops completions and says so once (-EBADR), and every
 * request whose completion is awaited is looked at again (recheck).  To that end a
 * cancellation's answer names what it cancelled (CANCEL_BIT): the kernel's "no such
 * request" then says that the request had ended, its completion come or lost.
 *
 * A watch taken back (take_back) holds its file until its request's last completion
 * comes, which may be long after (behind the kernel's work due) and after that of a
 * newer request of the slot (one answered as the kernel took it): so a slot keeps
 * every removal due, by generation (removed_gens), not only the last.
 *
 * Invariants: only the scheduler's thread touches the rings (SINGLE_ISSUER); the
 * indices the kernel shares are read with acquire and written with release ordering.
 * A slot's removed_gens holds each poll request taken back until its last completion
 * (none with IORING_CQE_F_MORE) comes or a cancellation finds it gone (-ENOENT), and
 * never the live request; while a watch is armed it has room for one more, so taking
 * a watch back needs no memory.
 */
#include "poll.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif

enum { RING_ENTRIES = 512 };
#define WAKE_TOKEN UINT64_MAX

struct plait__uring {
    int fd;
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len;
    struct io_uring_sqe *sqes;
    size_t sqes_len;
    unsigned sq_entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_flags;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned tail;              /* our copy of the submission tail */
    struct plait__poller *poller; /* whose table names the requests */
    int64_t timeout_at;         /* when the ring's timeout request fires (0: none) */
    struct __kernel_timespec timeout_ts; /* its time, read by the kernel at submission */
    plait__fd_list deferred;    /* descriptors whose watch waits for room (arm_deferred) */
    bool wake_unarmed;          /* the inbox eventfd's watch waits for room in the ring */
    bool dropped;               /* the kernel dropped completions: the next reap rechecks */
    bool wake_rechecked;        /* the inbox watch's cancellation by recheck awaits an answer */
    bool timeout_rechecked;     /* so does the timeout request's */
    bool awaiting_removals;     /* a wait_removed is under way (the outermost) */
    size_t removals_awaited;    /* slots it waits for (removal_awaited) */
    bool multishot;             /* the kernel has multishot polls (5.13: RSRC_TAGS) */
    bool clock_offset;          /* CLOCK_MONOTONIC here is offset (a time namespace) */
    int probe_fd;               /* an epoll set that says which regular files poll
                                 * (plait__uring_polls), made when first needed; -1 */
};

static int enter(int fd, unsigned submit, unsigned wait_nr, unsigned flags, void *arg,
                 size_t argsz)
{
    long r = syscall(__NR_io_uring_enter, fd, submit, wait_nr, flags, arg, argsz);
    return r < 0 ? -errno : (int)r;
}

static unsigned pending(const struct plait__uring *u)
{
    return u->tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
}

static bool withdraw_ended(struct plait__poller *p);
static void mark_entered(struct plait__poller *p, unsigned from);
static void submit_all(struct plait__poller *p, unsigned flags);
static unsigned reap(struct plait__poller *p);

/* Hand the written requests to the kernel; 0 or -errno.  The reads among them are
 * marked as being handed over while it does (see withdraw_ended). */
static int submit(struct plait__uring *u, unsigned wait_nr, unsigned flags, void *arg,
                  size_t argsz)
{
    unsigned from = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    bool handing = withdraw_ended(u->poller);
    int r = enter(u->fd, pending(u), wait_nr, flags, arg, argsz);
    if (handing)
        mark_entered(u->poller, from);
    if (r == -EBADR) { /* said once per loss, and the call did its work: see recheck */
        u->dropped = true;
        return 0;
    }
    return r < 0 ? r : 0;
}

/* What io_uring_enter says to come back later for: short of memory, completions to
 * take first, a signal, the wait's deadline. */
static bool temporary(int r) { return r == -EAGAIN || r == -EBUSY || r == -EINTR || r == -ETIME; }

/* io_uring_enter refused the ring for good (its descriptor closed behind plait's back,
 * say): the scheduler can no longer wait for its descriptors, nor take back the
 * buffers the kernel holds for its coroutines.  Nothing can go on. */
static _Noreturn void refused_for_good(int r)
{
    fprintf(stderr, "plait: fatal: io_uring_enter refused the scheduler's ring (%s)\n",
            strerror(-r));
    abort();
}

static void unmap(struct plait__uring *u)
{
    if (u->sqes && u->sqes != MAP_FAILED)
        munmap(u->sqes, u->sqes_len);
    if (u->cq_map && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
        munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map && u->sq_map != MAP_FAILED)
        munmap(u->sq_map, u->sq_map_len);
}

/* Whether this process's CLOCK_MONOTONIC is offset from the host's (a time namespace
 * made with an offset: CRIU's restore, `unshare --time --monotonic`).  The kernel takes
 * an io_uring absolute timeout on the host's clock, not this one (unlike timerfd,
 * clock_nanosleep and futex): the ring's timeout request then fired late by the offset,
 * or at once and again and again (a spin) for a negative one, where epoll's relative
 * timeout was right.  Such a ring gives each wait its own relative timeout. */
static bool monotonic_offset(void)
{
    int fd = open("/proc/self/timens_offsets", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false; /* no time namespaces here (or no /proc: taken as none) */
    char text[256];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    /* "monotonic SECONDS NANOSECONDS": offset where either has a digit other than 0
     * (no sscanf: this may run on a coroutine's small stack, in a forked child) */
    const char *at = strstr(text, "monotonic");
    for (; at && *at && *at != '\n'; at++)
        if (*at >= '1' && *at <= '9')
            return true;
    return false;
}

static int setup(struct plait__uring *u)
{
    struct io_uring_params params;
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0}; /* the second for kernels before 6.1 */
    u->fd = -1;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0] && u->fd < 0; i++) {
        memset(&params, 0, sizeof params);
        params.flags = flag_sets[i];
        u->fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &params);
        if (u->fd < 0 && errno != EINVAL)
            return -errno;
    }
    if (u->fd < 0)
        return -errno;
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
    if ((params.features & need) != need)
        return -ENOSYS;
    u->multishot = params.features & IORING_FEAT_RSRC_TAGS;
    u->clock_offset = monotonic_offset();
    u->sq_entries = params.sq_entries;
    u->sq_map_len = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    u->cq_map_len = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    bool single = params.features & IORING_FEAT_SINGLE_MMAP;
    if (single && u->cq_map_len > u->sq_map_len)
        u->sq_map_len = u->cq_map_len;
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                     u->fd, IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED)
        return -errno;
    u->cq_map = single ? u->sq_map
                       : mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_CQ_RING);
    if (u->cq_map == MAP_FAILED)
        return -errno;
    u->sqes_len = params.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   u->fd, IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED)
        return -errno;
    char *sq = u->sq_map, *cq = u->cq_map;
    u->sq_head = (unsigned *)(sq + params.sq_off.head);
    u->sq_tail = (unsigned *)(sq + params.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + params.sq_off.ring_mask);
    u->sq_flags = (unsigned *)(sq + params.sq_off.flags);
    unsigned *array = (unsigned *)(sq + params.sq_off.array);
    for (unsigned i = 0; i < params.sq_entries; i++)
        array[i] = i; /* slot i of the ring is always request i */
    u->cq_head = (unsigned *)(cq + params.cq_off.head);
    u->cq_tail = (unsigned *)(cq + params.cq_off.tail);
    u->cq_mask = (unsigned *)(cq + params.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
    u->tail = *u->sq_tail;
    return 0;
}

/* A zeroed request to fill, making room by submitting when the ring is full; NULL
 * (errno set) when the kernel takes none. */
static struct io_uring_sqe *get_sqe(struct plait__uring *u)
{
    if (pending(u) == u->sq_entries) {
        int r = submit(u, 0, 0, NULL, 0);
        if (r < 0 || pending(u) == u->sq_entries) {
            errno = r < 0 ? -r : EBUSY;
            return NULL;
        }
    }
    struct io_uring_sqe *sqe = &u->sqes[u->tail & *u->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

static void put_sqe(struct plait__uring *u)
{
    __atomic_store_n(u->sq_tail, ++u->tail, __ATOMIC_RELEASE);
}

static int poll_add_as(struct plait__uring *u, int fd, unsigned events, uint64_t user_data,
                       unsigned flags)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return -errno;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = events;
    sqe->len = flags;
    sqe->user_data = user_data;
    put_sqe(u);
    return 0;
}

static int poll_add(struct plait__uring *u, int fd, unsigned events, uint64_t user_data)
{
    return poll_add_as(u, fd, events, user_data, 0);
}

static uint64_t key(int fd, uint32_t gen) { return (uint64_t)gen << 32 | (uint32_t)fd; }

/* A read's user_data: its descriptor with this bit, and the slot's read generation
 * (poll.h keeps descriptors below it). */
#define READ_BIT 0x80000000u
/* A cancellation's answer: the cancelled request's user_data with this bit (see
 * cancel_answered); the answers to recheck's of the inbox watch and the timeout. */
#define CANCEL_BIT 0x40000000u
#define WAKE_GONE_TOKEN (UINT64_MAX - 4)
#define TIMEOUT_GONE_TOKEN (UINT64_MAX - 5)
/* Answers nobody awaits. */
#define CANCEL_TOKEN (UINT64_MAX - 2)
#define TIMEOUT_TOKEN (UINT64_MAX - 3)

static uint64_t io_key(int fd, const plait__fd_slot *slot)
{
    return key(fd, slot->read_gen) | READ_BIT;
}

/* Make sqe the cancellation of the request named target, its answer named answer. */
static void cancel_as(struct io_uring_sqe *sqe, uint64_t target, uint64_t answer)
{
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = target;
    sqe->user_data = answer;
}

static void ur_close(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    if (!u)
        return;
    unmap(u);
    if (u->fd >= 0)
        close(u->fd); /* the kernel cancels what is still watched */
    if (u->probe_fd >= 0)
        close(u->probe_fd);
    for (size_t fd = 0; fd < p->cap; fd++) { /* the removals due were this ring's */
        plait__fd_slot *slot = &p->fds[fd];
        if (slot->removed_gens) { /* (a slot never written stays unpaid for: poll.c) */
            free(slot->removed_gens);
            slot->removed_gens = NULL;
            slot->removals_due = slot->removals_room = 0;
        }
    }
    free(u->deferred.fds);
    free(u);
    p->ring = NULL;
    p->put_off = 0;
}

bool plait__uring_owns(const struct plait__poller *p, int fd)
{
    return p->ring && (fd == p->ring->fd || fd == p->ring->probe_fd);
}

/* Most regular files have no poll operation: poll(2) calls them always ready, and so
 * does a ring's poll request, answered at once.  Some have one and wait for real:
 * those of procfs, sysfs, tracefs (/proc/self/mounts, trace_pipe).  A wait taken as
 * answered at once on such a file found it never ready, and a read that found it
 * empty (EAGAIN) tried again at once, for ever, the scheduler running nothing else.
 * The kernel says which a file is only through epoll_ctl(), which refuses a file
 * without a poll operation (EPERM): so a set is made at the first regular file
 * waited on, and each is added and taken out at once.  Without that set (no
 * descriptor left for it) a regular file is taken as always ready, as before. */
bool plait__uring_polls(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    struct plait__uring *u = p->ring;
    if (slot->pollable || !slot->regular || !u)
        return slot->pollable;
    if (u->probe_fd < 0)
        u->probe_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = 0};
    if (u->probe_fd >= 0 && epoll_ctl(u->probe_fd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        epoll_ctl(u->probe_fd, EPOLL_CTL_DEL, fd, NULL);
        slot->pollable = true;
    }
    return slot->pollable;
}

static int ur_open(struct plait__poller *p)
{
    struct plait__uring *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    p->ring = u;
    u->poller = p;
    u->probe_fd = -1;
    int r = setup(u);
    if (r == 0)
        r = poll_add(u, p->wake_fd, POLLIN, WAKE_TOKEN);
    /* handed to the kernel now: a sandbox may let io_uring_setup through and refuse
     * io_uring_enter (a seccomp filter), which the first wait would find too late
     * (refused_for_good); epoll serves instead */
    if (r == 0 && (r = submit(u, 0, 0, NULL, 0)) < 0 && temporary(r))
        r = 0;
    if (r < 0)
        ur_close(p);
    return r;
}

/* The poll request gen of the slot is done (its last completion came, or it can never
 * come): if it was a removal due, it no longer holds the file. */
static void removal_done(struct plait__poller *p, plait__fd_slot *slot, uint32_t gen)
{
    size_t i = 0;
    while (i < slot->removals_due && slot->removed_gens[i] != gen)
        i++;
    if (i == slot->removals_due)
        return; /* the live request, or one not taken back */
    slot->removals_due--;
    memmove(&slot->removed_gens[i], &slot->removed_gens[i + 1],
            (slot->removals_due - i) * sizeof *slot->removed_gens);
    if (!slot->removals_due && slot->removal_awaited) {
        slot->removal_awaited = false;
        p->ring->removals_awaited--;
    }
}

/* Room in the slot's removals due for the watch about to be armed, once it is taken
 * back, and for the live one's (armed) before it; 0 or -ENOMEM. */
static int room_for_removal(plait__fd_slot *slot)
{
    uint32_t *gens = plait__room_for(slot->removed_gens, &slot->removals_room,
                                     slot->removals_due + (slot->armed ? 2 : 1), sizeof *gens, 2);
    if (!gens)
        return -ENOMEM;
    slot->removed_gens = gens;
    return 0;
}

/* Wait, in the kernel, until fd's removed watches are done (removals_due: their
 * requests still hold the file), handing over what the ring holds and taking completions
 * meanwhile.  On a DEFER_TASKRUN ring the kernel ends the request in its queue of work
 * due, a few dozen items per entry, so handing it over is not enough.
 *
 * The completions taken may give up other watches, which must be done too before any
 * coroutine runs (completed): a wait nested so, inside this one's reap, only marks its
 * slot (removal_awaited), and the outermost wait waits for every marked slot.  Nested
 * waits each took a few hundred bytes of the caller's stack per descriptor whose
 * answer was due: a coroutine on the smallest stack that closed one of 200 sockets
 * overflowed it.  Outside a wait no slot is marked. */
static void wait_removed(struct plait__poller *p, int fd)
{
    struct plait__uring *u = p->ring;
    plait__fd_slot *slot = &p->fds[fd];
    if (slot->removals_due && !slot->removal_awaited) {
        slot->removal_awaited = true;
        u->removals_awaited++;
    }
    if (u->awaiting_removals)
        return; /* nested: the wait under way waits for fd too */
    u->awaiting_removals = true;
    submit_all(p, IORING_ENTER_GETEVENTS);
    reap(p); /* the removal went in with the kernel's work due run: it is often done */
    while (u->removals_awaited) {
        int r = submit(u, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        if (r < 0 && !temporary(r))
            refused_for_good(r);
        reap(p);
    }
    u->awaiting_removals = false;
}

/* Take fd's live watch back (the slot is armed); 0 or -errno (no room in the ring). */
static int take_back(struct plait__uring *u, int fd, plait__fd_slot *slot)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return -errno;
    /* not POLL_REMOVE: see the top */
    cancel_as(sqe, key(fd, slot->gen), key(fd, slot->gen) | CANCEL_BIT);
    put_sqe(u);
    slot->armed = 0;
    /* the request holds its file until its completion comes (ur_forget waits); the
     * room was made when it was armed */
    slot->removed_gens[slot->removals_due++] = slot->gen;
    return 0;
}

/* Arm fd's watch for events (none: take it back and wait until it is gone); 0 or
 * -errno.  What can refuse for good (the file's kind, no memory) is asked before the
 * live watch is taken back: refused, the watch stays as it was, for the waiters it
 * serves (a reader whose watch a writer's failed wait took back slept for ever). */
static int arm_now(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    if (events) {
        /* io_uring would answer at the next wait; epoll refuses such a file, and poll.c
         * answers at once (two coroutines may wait on one file) */
        if (plait__fd_kind(slot, fd, plait__fd_close_gen(fd)) &&
            !plait__uring_polls(p, fd, slot)) {
            /* fstat answers for a descriptor opened with O_PATH, which poll(2) and
             * epoll refuse (POLLNVAL, EBADF): it is not a file to wait on */
            int fl = fcntl(fd, F_GETFL);
            return fl >= 0 && (fl & O_PATH) ? -EBADF : -EPERM;
        }
        int r = room_for_removal(slot);
        if (r < 0)
            return r;
    }
    if (slot->armed) { /* take the live request back first */
        int r = take_back(p->ring, fd, slot);
        if (r < 0)
            return r;
        /* a watch given up (a wait that ended otherwise, a close): remove it now, and
         * wait until it is gone, as the request holds the file open until then.  Nobody
         * waits on the descriptor any more, so close(2) is the program's to call: handed
         * over behind many events due, the removal left the socket open after it until
         * the scheduler's next look (test_review_uring) */
        if (!events)
            wait_removed(p, fd);
    }
    if (!events)
        return 0;
    int r = poll_add(p->ring, fd, events, key(fd, ++slot->gen));
    if (r == 0)
        slot->armed = events;
    return r;
}

/* The poller's count of what waits for room in the ring (see plait__poller_busy). */
static void note_put_off(struct plait__uring *u)
{
    u->poller->put_off = u->deferred.len + u->wake_unarmed;
}

/* Room on the list of watches to arm at the next wait for one more; 0 or -ENOMEM. */
static int room_to_defer(struct plait__uring *u)
{
    int *fds = plait__room_for(u->deferred.fds, &u->deferred.cap, u->deferred.len + 1,
                               sizeof *fds, 64);
    if (!fds)
        return -ENOMEM;
    u->deferred.fds = fds;
    return 0;
}

/* Put fd on the list of watches to arm at the next wait; 0 or -ENOMEM. */
static int defer_arm(struct plait__uring *u, int fd, plait__fd_slot *slot)
{
    if (slot->arm_deferred)
        return 0;
    if (plait__fd_list_push(&u->deferred, fd) < 0)
        return -ENOMEM;
    slot->arm_deferred = true;
    note_put_off(u);
    return 0;
}

/* Arm each deferred watch to what its waiters want now (a wait that ended meanwhile
 * wants less, or nothing).  Once the kernel refuses again, that one and the rest wait
 * for the next time; a refusal for good is their waiters' outcome (an unpollable file,
 * now at the number, is ready).  The list is taken
 * out first: arming may complete requests, and a completion may defer again.  True
 * when it woke a waiter that way: the caller must not sleep before it runs. */
static bool arm_deferred(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    plait__fd_list taken = u->deferred;
    u->deferred = (plait__fd_list){0};
    int *list = taken.fds;
    size_t len = taken.len;
    bool refused = false, fired = false;
    for (size_t i = 0; i < len; i++) {
        plait__fd_slot *slot = &p->fds[list[i]];
        slot->arm_deferred = false;
        unsigned wants = plait__slot_wants(slot);
        int r = refused ? -EBUSY : wants == slot->armed ? 0 : arm_now(p, list[i], slot, wants);
        refused = r < 0 && temporary(r);
        if (refused)
            r = defer_arm(u, list[i], slot);
        if (r == -EPERM) /* the number names an unpollable file now: always ready */
            plait__poller_fire(p, list[i], (int)(wants & (POLLIN | POLLOUT)));
        else if (r < 0)
            plait__poller_fire(p, list[i], r);
        fired |= r < 0;
    }
    free(list);
    note_put_off(u);
    return fired;
}

/* Arm now, or at the next wait when the kernel refuses for a moment.  The room to put
 * the watch off is made first, before arm_now takes the live watch back: should the
 * full ring then take no request for the new one, its deferral must not fail (the
 * waiters the live one served had no watch left).  No memory left with the slot
 * unwatched all the same (a one-shot watch that fired for one direction, the other
 * still waiting): its waiters are told, as no watch will ever end their waits (the
 * callers that re-arm after a fire, or narrow after a wait, cannot). */
static int ur_arm(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    int r = events && !slot->arm_deferred ? room_to_defer(p->ring) : 0;
    if (r == 0)
        r = arm_now(p, fd, slot, events);
    if (r < 0 && temporary(r))
        r = defer_arm(p->ring, fd, slot);
    if (r == -ENOMEM && !slot->armed && !slot->arm_deferred && plait__slot_wants(slot))
        plait__poller_fire(p, fd, r);
    return r;
}

/* A poll request holds the file open: take it back, and wait until it is done, so that
 * the close is a close.  Handing the removal to the kernel is not enough: on a
 * DEFER_TASKRUN ring the kernel ends the request in its queue of work due, a few dozen
 * items per entry, and the removal may come behind many events (plait_close then left
 * the file open until the next wait).  Room for the removal is made first, waiting out
 * a temporary refusal, as the close cannot wait for the next wait either. */
static void ur_forget(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    /* a watch removed before (a wait that ended otherwise, a re-arm) may not be done
     * yet: its removal still in the ring (the watch after it refused for a moment), or
     * handed over behind the kernel's work due */
    if (!slot->armed && !slot->removals_due)
        return;
    submit_all(p, IORING_ENTER_GETEVENTS);
    if (slot->armed)
        (void)take_back(p->ring, fd, slot); /* the ring has room now */
    wait_removed(p, fd);
}

/* The answer to a cancellation of the request named target (a watch being removed, or
 * a read).  -ENOENT: the kernel found no such request, which had ended; its last
 * completion came before this answer (the kernel posts them in order), or was dropped
 * (see recheck).  A removal awaited so is done; a read awaited so fails: the bytes it
 * took from the file, if any, are lost with their count. */
static void cancel_answered(struct plait__poller *p, uint64_t target, int res)
{
    int fd = (int)((uint32_t)target & ~READ_BIT);
    uint32_t gen = (uint32_t)(target >> 32);
    if (res != -ENOENT || (size_t)fd >= p->cap)
        return;
    plait__fd_slot *slot = &p->fds[fd];
    if (!((uint32_t)target & READ_BIT)) {
        removal_done(p, slot, gen);
    } else if (slot->read_op && slot->read_gen == gen) {
        plait__poller_io_done(p, fd, -EIO);
    }
}

enum { LET_GO_MS = 1000 };

/* plait_run ends: nobody waits on a descriptor any more, but a watch given up while the
 * kernel refused requests for a moment may be armed still, its removal put off to a
 * wait that will not come (arm_deferred), and removals may be due.  Closing the ring
 * would have the kernel cancel them in the background, the files held open a moment
 * after plait_run returned (a close(2) after it unseen by the peer, an unmount finding
 * them busy).  So each is taken back and waited for, as by plait_close, for LET_GO_MS
 * at most while the kernel keeps refusing: the ring is then closed as it is. */
static void ur_let_go(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    int64_t give_up = plait_now() + LET_GO_MS * PLAIT_MS;
    struct __kernel_timespec tick = {.tv_nsec = PLAIT_MS};
    struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8,
                                         .ts = (uint64_t)(uintptr_t)&tick};
    while (plait_now() < give_up) {
        bool held = false;
        for (size_t i = 0; i < p->cap; i++) {
            plait__fd_slot *slot = &p->fds[i];
            if (slot->armed)
                (void)take_back(u, (int)i, slot); /* no room: next time round */
            held |= slot->armed || slot->removals_due;
        }
        if (!held)
            return;
        int r = submit(u, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
        if (r < 0 && !temporary(r))
            return; /* refused for good */
        reap(p);
    }
}

static void completed(struct plait__poller *p, uint64_t user_data, int res, unsigned flags)
{
    if (user_data == CANCEL_TOKEN)
        return;
    struct plait__uring *u = p->ring;
    /* The timeout request and the inbox watch ended: fired, cancelled (or gone with the
     * ring); or a recheck found one gone, its completion lost.  Once either answer has
     * come, the recheck's -ENOENT is no news: the request it found gone was answered. */
    if (user_data == TIMEOUT_TOKEN || user_data == TIMEOUT_GONE_TOKEN) {
        if (user_data == TIMEOUT_TOKEN || (res == -ENOENT && u->timeout_rechecked))
            u->timeout_at = 0; /* none armed */
        u->timeout_rechecked = false;
        return;
    }
    if (user_data == WAKE_TOKEN || user_data == WAKE_GONE_TOKEN) {
        bool ended = user_data == WAKE_TOKEN || (res == -ENOENT && u->wake_rechecked);
        u->wake_rechecked = false;
        if (!ended)
            return;
        plait__poller_drain_wake(p);
        int r = poll_add(u, p->wake_fd, POLLIN, WAKE_TOKEN);
        if (r < 0 && !temporary(r))
            refused_for_good(r); /* the scheduler could no longer be woken */
        u->wake_unarmed = r < 0; /* a full ring refused for a moment: the next wait */
        note_put_off(u);
        return;
    }
    if ((uint32_t)user_data & CANCEL_BIT) {
        cancel_answered(p, user_data & ~(uint64_t)CANCEL_BIT, res);
        return;
    }
    if ((uint32_t)user_data & READ_BIT) {
        int fd = (int)((uint32_t)user_data & ~READ_BIT);
        if ((size_t)fd >= p->cap)
            return;
        plait__fd_slot *slot = &p->fds[fd];
        if (!slot->read_op || slot->read_gen != (uint32_t)(user_data >> 32))
            return;
        /* a read the kernel handed to one of its worker threads, where it blocks (the
         * descriptor polled ready with nothing to read: an error pending), answers a
         * cancellation -EINTR: it was cancelled */
        if (res == -EINTR)
            res = -ECANCELED;
        /* cancelled though its wait goes on: by a recheck.  Its caller reads by itself
         * (-EAGAIN: read(2), then a watch), as after a deadline; made again here, the
         * read could go after a plait_close on another thread that saw it in the
         * kernel and did not wait, to the file that took the number since. */
        if (res == -ECANCELED && !atomic_load_explicit(&slot->read_op->waiter->claimed,
                                                       memory_order_acquire))
            res = -EAGAIN;
        plait__poller_io_done(p, fd, res);
        return;
    }
    int fd = (int)(uint32_t)user_data;
    if ((size_t)fd >= p->cap)
        return;
    plait__fd_slot *slot = &p->fds[fd];
    bool more = flags & IORING_CQE_F_MORE; /* a multishot request goes on */
    if (!more) /* its last: one taken back is done */
        removal_done(p, slot, (uint32_t)(user_data >> 32));
    if (!slot->armed || slot->gen != (uint32_t)(user_data >> 32))
        return; /* a request removed or replaced since */
    /* the events asked for: the kernel adds POLLRDHUP to every poll request
     * (IO_POLL_UNMASK), which would answer a wait to write with "readable" */
    unsigned asked = slot->armed | POLLERR | POLLHUP;
    if (res >= 0 && !(res & asked) && (more || p->ring->multishot)) {
        /* Only what was not asked: a socket's peer has shut its side, and a wait for
         * room would fire again at once each time it is made (the scheduler spun).
         * A multishot request fires again only when the socket is woken anew.  (Before
         * 5.13 there is none: the watch fires, and is made again, as before.) */
        if (more)
            return; /* it goes on */
        unsigned events = slot->armed;
        slot->armed = 0;
        int r = poll_add_as(p->ring, fd, events, key(fd, ++slot->gen), IORING_POLL_ADD_MULTI);
        if (r == 0)
            slot->armed = events;
        else if (temporary(r))
            r = defer_arm(p->ring, fd, slot); /* (-ENOMEM: its waiters are told that) */
        if (r < 0)
            plait__poller_fire(p, fd, r);
        return;
    }
    int fired = res == -ECANCELED ? -EBADF : res < 0 ? res : (int)(res & asked);
    /* a multishot request goes on: it is taken back, as poll.c's watches are one-shot
     * (with no room for the removal now, the next wait makes it: still armed) */
    if (more && arm_now(p, fd, slot, 0) < 0) {
        (void)defer_arm(p->ring, fd, slot);
        plait__poller_fire(p, fd, fired);
        return;
    }
    slot->armed = 0;
    plait__poller_fire(p, fd, fired);
    /* Nobody watches fd now, but a request this one replaced (a re-arm: a waiter of
     * the other direction gone) may still hold the file: its removal ends in the
     * kernel's queue of work due, while this one, answered as the kernel took it, came
     * at once.  close(2) is the program's to call now: the file must be let go first
     * (behind 100 events due it stayed open; test_review_uring). */
    if (!p->fds[fd].armed && p->fds[fd].removals_due && !p->fds[fd].arm_deferred)
        wait_removed(p, fd);
}

static void recheck(struct plait__poller *p);

/* Take every completion the ring holds; how many there were.  Then, if the kernel has
 * said that it dropped some, look for what they would have said (recheck). */
static unsigned reap(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    unsigned taken = 0;
    for (;; taken++) {
        /* the head read afresh each time: a completion's handler may reap too */
        unsigned head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail)
            break;
        struct io_uring_cqe *cqe = &u->cqes[head & *u->cq_mask];
        uint64_t user_data = cqe->user_data;
        int res = cqe->res;
        unsigned flags = cqe->flags;
        __atomic_store_n(u->cq_head, head + 1, __ATOMIC_RELEASE);
        completed(p, user_data, res, flags);
    }
    if (u->dropped) {
        u->dropped = false;
        recheck(p);
    }
    return taken;
}

/* Hand every request written so far to the kernel before going on, as what follows
 * relies on it: a removed watch no longer holding its file open.  A temporary refusal is waited out,
 * taking completions meanwhile (the kernel may want room for them first); any other
 * aborts, as the requests would never go. */
static void submit_all(struct plait__poller *p, unsigned flags)
{
    struct plait__uring *u = p->ring;
    while (pending(u)) {
        int r = submit(u, 0, flags, NULL, 0);
        if (r < 0 && !temporary(r))
            refused_for_good(r);
        if (pending(u)) {
            reap(p);
            flags |= IORING_ENTER_GETEVENTS;
        }
    }
}

/* Room for a request in the submission ring, a temporary refusal of the kernel to take
 * the full ring waited out (get_sqe then submits nothing, and cannot fail). */
static void make_room(struct plait__poller *p)
{
    if (pending(p->ring) == p->ring->sq_entries)
        submit_all(p, IORING_ENTER_GETEVENTS);
}

/* Ask the kernel to cancel the request named target (answer: its answer's name). */
static void ask_cancel(struct plait__poller *p, uint64_t target, uint64_t answer)
{
    make_room(p);
    cancel_as(get_sqe(p->ring), target, answer);
    put_sqe(p->ring);
}

/* io_uring_enter said -EBADR: the kernel dropped completions (it had no memory to keep
 * them past a full completion ring; without FEAT_NODROP it drops them whenever the ring
 * is full), and says so once.  A wait, read or removal whose completion was among them
 * would never end, nor the scheduler's sleep once its timeout's or inbox watch's was.
 * So every request whose completion is awaited is looked at again: each watch is taken
 * back and armed again by the next wait (a file ready by now answers at once), and
 * each read in the kernel, each removal, the inbox watch and the timeout request is
 * cancelled, which the kernel answers for sure: -ENOENT when it had ended, its
 * completion the lost one (cancel_answered, completed).  A read cancelled so is left
 * to its caller (completed); one found ended fails with -EIO. */
static void recheck(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    if (!u->wake_unarmed) {
        ask_cancel(p, WAKE_TOKEN, WAKE_GONE_TOKEN);
        u->wake_rechecked = true;
    }
    if (u->timeout_at) {
        ask_cancel(p, TIMEOUT_TOKEN, TIMEOUT_GONE_TOKEN);
        u->timeout_rechecked = true;
    }
    for (size_t i = 0; i < p->cap; i++) {
        int fd = (int)i;
        plait__fd_slot *slot = &p->fds[fd];
        if (slot->read_op && atomic_load_explicit(&slot->read_op->state, memory_order_relaxed) ==
                                 PLAIT__IO_IN_KERNEL)
            ask_cancel(p, io_key(fd, slot), io_key(fd, slot) | CANCEL_BIT);
        /* each removal due, the newest first: completions taken meanwhile (make_room)
         * may end some, moving the older ones down */
        for (size_t left = slot->removals_due; left > 0;) {
            uint64_t removed = key(fd, slot->removed_gens[--left]);
            ask_cancel(p, removed, removed | CANCEL_BIT);
            if (left > slot->removals_due)
                left = slot->removals_due;
        }
        make_room(p); /* its completions taken meanwhile may have changed the slot */
        if (slot->armed) {
            (void)take_back(u, fd, slot); /* there is room */
            if (defer_arm(u, fd, slot) < 0)
                plait__poller_fire(p, fd, -ENOMEM);
        }
    }
}

/* Have the ring's timeout request fire at the deadline or before it, so that a wait
 * needs no timeout of its own: the kernel then arms no timer per sleep.  One armed
 * for an earlier deadline is kept (the wait it was for may have ended: the loop wakes
 * early, finds nothing due, and the next sleep arms it again); one armed for a later
 * deadline is moved (IORING_TIMEOUT_UPDATE; if it has fired meanwhile the update fails,
 * and the completion of the firing wakes the wait).  False when the ring has no room. */
static bool timeout_by(struct plait__uring *u, int64_t deadline)
{
    if (u->timeout_at && u->timeout_at <= deadline)
        return true;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return false;
    u->timeout_ts.tv_sec = deadline / PLAIT_SEC; /* absolute, on CLOCK_MONOTONIC */
    u->timeout_ts.tv_nsec = deadline % PLAIT_SEC;
    if (u->timeout_at) {
        sqe->opcode = IORING_OP_TIMEOUT_REMOVE;
        sqe->timeout_flags = IORING_TIMEOUT_UPDATE | IORING_TIMEOUT_ABS;
        sqe->addr = TIMEOUT_TOKEN;
        sqe->addr2 = (uint64_t)(uintptr_t)&u->timeout_ts;
        sqe->user_data = CANCEL_TOKEN;
    } else {
        sqe->opcode = IORING_OP_TIMEOUT;
        sqe->timeout_flags = IORING_TIMEOUT_ABS;
        sqe->addr = (uint64_t)(uintptr_t)&u->timeout_ts;
        sqe->len = 1;
        sqe->off = 0; /* no count of completions: a pure timeout */
        sqe->user_data = TIMEOUT_TOKEN;
    }
    sqe->fd = -1;
    put_sqe(u);
    u->timeout_at = deadline;
    return true;
}

/* Events due, seen in memory: a completion posted, work due that makes completions
 * (DEFER_TASKRUN's flag: the wait's enter runs it), or completions kept by the kernel
 * for want of room. */
static bool events_due(const struct plait__uring *u)
{
    unsigned flags = __atomic_load_n(u->sq_flags, __ATOMIC_ACQUIRE);
    return (flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
           __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE) != *u->cq_head;
}

/* The look before sleeping (poll.h, sched.c's park).  With requests queued it looks no
 * further: the caller's wait that does not sleep (ur_wait, timeout 0) hands them over,
 * and its one io_uring_enter takes what they find at once too (a receive whose data is
 * there already: its poll fires as it is armed, and the enter runs the work due that
 * completes it); the scheduler looks again, for events still to come, only if that
 * woke nobody.  (It was an enter that waited for nothing, a look, and the wait's enter:
 * under load most looks are so.)  Not with watches put off (a full ring): the wait
 * makes them, and sleeps briefly. */
static bool ur_look(struct plait__poller *p, const atomic_uint *inbox_seq, unsigned drained,
                    int64_t deadline)
{
    struct plait__uring *u = p->ring;
    if (u->deferred.len || u->wake_unarmed)
        return false;
    if (pending(u))
        return true;
    plait__spin spin = {.pauses = 16, .ns = PLAIT__WAIT_SPIN_NS, .deadline = deadline};
    bool last = false; /* a look after the last step too: it may have let the event in */
    for (;;) {
        if (events_due(u) || atomic_load_explicit(inbox_seq, memory_order_acquire) != drained)
            return true;
        if (last)
            return false;
        last = !plait__spin_again(&spin);
    }
}

static void ur_wait(struct plait__poller *p, int64_t deadline, int64_t timeout)
{
    struct plait__uring *u = p->ring;
    if (u->wake_unarmed)
        u->wake_unarmed = poll_add(u, p->wake_fd, POLLIN, WAKE_TOKEN) < 0;
    /* a watch that could not be armed now has woken its coroutine */
    bool fired = u->deferred.len && arm_deferred(p);
    note_put_off(u);
    if ((u->deferred.len || u->wake_unarmed) && (timeout < 0 || timeout > PLAIT_MS))
        timeout = PLAIT_MS; /* what is left is tried again soon; the inbox is looked at */
    /* completions already there need no system call, and whatever they woke must
     * run before this thread sleeps */
    bool look = reap(p) > 0 || fired || timeout == 0;
    if (!look && timeout > 0 && !u->deferred.len && !u->wake_unarmed && !u->clock_offset &&
        timeout_by(u, deadline))
        timeout = -1; /* the ring's timeout request ends the sleep */
    unsigned flags = __atomic_load_n(u->sq_flags, __ATOMIC_ACQUIRE);
    if (look && !pending(u) && !(flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
        return;
    struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8};
    struct __kernel_timespec ts;
    if (!look && timeout > 0) {
        ts.tv_sec = timeout / PLAIT_SEC;
        ts.tv_nsec = timeout % PLAIT_SEC;
        arg.ts = (uint64_t)(uintptr_t)&ts;
    }
    /* after a temporary refusal the scheduler's loop looks again in any case; after
     * any other it would look again and again, for ever */
    int r = submit(u, look ? 0 : 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                   sizeof arg);
    if (r < 0 && !temporary(r))
        refused_for_good(r);
    reap(p);
}

/* A read the kernel makes when fd has data (it polls by itself first). */
static int ur_io_submit(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    struct io_uring_sqe *sqe = get_sqe(p->ring);
    if (!sqe)
        return -errno;
    plait__kernel_io *op = slot->read_op;
    op->index = p->ring->tail;
    op->ring_head = p->ring->sq_head;
    atomic_store_explicit(&op->state, PLAIT__IO_QUEUED, memory_order_relaxed);
    if (slot->socket) {
        sqe->opcode = IORING_OP_RECV;
        sqe->ioprio = IORING_RECVSEND_POLL_FIRST;
    } else {
        sqe->opcode = IORING_OP_READ;
        sqe->off = (uint64_t)-1;
    }
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)op->buf;
    sqe->len = (uint32_t)op->len; /* (no more: plait__ring_read) */
    slot->read_gen++;
    sqe->user_data = io_key(fd, slot);
    put_sqe(p->ring);
    return 0;
}

/* The live read whose request sqe is, or NULL. */
static plait__kernel_io *sqe_op(struct plait__poller *p, const struct io_uring_sqe *sqe)
{
    if (sqe->opcode != IORING_OP_READ && sqe->opcode != IORING_OP_RECV)
        return NULL;
    const plait__fd_slot *slot = &p->fds[sqe->fd];
    plait__kernel_io *op = slot->read_op;
    return op && sqe->user_data == io_key(sqe->fd, slot) ? op : NULL;
}

/* Just before io_uring_enter.  A read still in the submission ring whose wait
 * has ended otherwise (a deadline, a cancellation, a plait_close() on another thread,
 * after which the number may already name another file) must not reach the kernel: it
 * becomes a no-op, and is done, cancelled, at once.  The kernel takes requests from
 * the ring only when this thread enters it, so those past sq_head are still ours to
 * rewrite.  The others are marked as being handed over (PLAIT__IO_ENTERING): from here
 * on a plait_close() on another thread does not take them back but waits until the
 * kernel has (the ring's head past them: it has found the file by then), and closes
 * after.  Whether any is handed over. */
static bool withdraw_ended(struct plait__poller *p)
{
    struct plait__uring *u = p->ring;
    bool handing = false;
    for (unsigned i = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE); i != u->tail; i++) {
        struct io_uring_sqe *sqe = &u->sqes[i & *u->sq_mask];
        plait__kernel_io *op = sqe_op(p, sqe);
        if (!op)
            continue;
        int state = PLAIT__IO_QUEUED;
        if (!atomic_load_explicit(&op->waiter->claimed, memory_order_acquire) &&
            atomic_compare_exchange_strong(&op->state, &state, PLAIT__IO_ENTERING)) {
            handing = true;
            continue;
        }
        int fd = sqe->fd;
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = CANCEL_TOKEN;
        /* taken by a plait_close that may not have woken the wait yet: its outcome */
        plait__poller_io_done(p, fd,
                              state == PLAIT__IO_WITHDRAWN  ? -EBADF
                              : state == PLAIT__IO_RELOOK ? -EAGAIN
                                                          : -ECANCELED);
    }
    return handing;
}

/* After io_uring_enter: the reads from `from` that it took are the
 * kernel's; those it did not (a refusal) are queued again. */
static void mark_entered(struct plait__poller *p, unsigned from)
{
    struct plait__uring *u = p->ring;
    unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    for (unsigned i = from; i != u->tail; i++) {
        plait__kernel_io *op = sqe_op(p, &u->sqes[i & *u->sq_mask]);
        if (op && atomic_load_explicit(&op->state, memory_order_relaxed) == PLAIT__IO_ENTERING)
            atomic_store(&op->state,
                         (int)(head - i) > 0 ? PLAIT__IO_IN_KERNEL : PLAIT__IO_QUEUED);
    }
}

/* Cancel fd's read and wait, in the kernel, until it is done: its buffer is
 * on the stack of the coroutine that asked.  Cancelling a request that waits for the
 * descriptor finishes at once; one the kernel is copying finishes with its bytes.
 * A full ring whose requests the kernel will not take now has no room for the
 * cancellation: it is asked for again each time round, and until it is in, the kernel
 * is not waited on (the request may never finish by itself).  The kernel says when to
 * try again (io_uring_enter(2): short of memory, completions to take first, a signal);
 * any other refusal leaves the buffer the kernel's for good, and the coroutine cannot
 * go on. */
static void ur_io_cancel(struct plait__poller *p, int fd)
{
    struct plait__uring *u = p->ring;
    bool asked = false;
    while (p->fds[fd].read_op) {
        struct io_uring_sqe *sqe = asked ? NULL : get_sqe(u);
        if (sqe) {
            /* its answer unnamed: the read's own completion comes before it, or was
             * dropped and a recheck's cancellation (named) ends it */
            cancel_as(sqe, io_key(fd, &p->fds[fd]), CANCEL_TOKEN);
            put_sqe(u);
            asked = true;
        }
        int r = submit(u, asked ? 1 : 0, IORING_ENTER_GETEVENTS, NULL, 0); /* wait once asked */
        if (r < 0 && !temporary(r))
            refused_for_good(r);
        reap(p);
    }
}

const plait__poll_backend plait__poll_uring = {
    .name = "io_uring", .open = ur_open, .close = ur_close, .arm = ur_arm, .forget = ur_forget,
    .let_go = ur_let_go, .wait = ur_wait, .look = ur_look,
    .io_submit = ur_io_submit, .io_cancel = ur_io_cancel,
};
