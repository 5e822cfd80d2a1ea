/*
 * poll.c — waiting for a file descriptor: the poller inside each scheduler, and the
 * same wait for a plain thread (poll).  Reading and writing with deadlines is built on
 * it (fdio.c), and sockets on that (socket.c).
 *
 * A scheduler creates its poller the first time one of its coroutines waits on a
 * descriptor.  The poller keeps a table indexed by descriptor: the coroutine waiting
 * to read it and the one waiting to write it (one of each per scheduler: a second
 * gets -EBUSY, as two readers of one stream would race for its bytes anyway; a wait
 * that has ended, its coroutine not yet run again, no longer counts).  The
 * kernel side is a backend (poll.h): io_uring where the kernel allows it, else epoll;
 * PLAIT_POLLER=epoll or =io_uring in the environment picks one.  To this file watches
 * are one-shot: a wait arms the descriptor, the event disarms it, and the slot is
 * re-armed while a waiter of the other direction remains (the epoll backend keeps its
 * registrations underneath, so re-arming there is usually free).  A regular file
 * cannot be polled: it is always ready, as poll(2) says.
 *
 * While coroutines wait on descriptors, the scheduler sleeps in the backend instead of
 * on its futex: its inbox has an eventfd the backend watches, which a thread posting
 * to the inbox writes (inbox_post_unlock in sched.c) when the scheduler sleeps there.
 * When there are also coroutines ready to run, the loop looks at the poller without
 * sleeping on each of its passes, so descriptors are served even under load.
 *
 * Closing: a poller does not notice close(2) (epoll drops the descriptor silently, an
 * io_uring poll holds the file open), so every blocking wait is also linked, by
 * descriptor, in a process-wide table that plait_close() walks to wake the waiters
 * with -EBADF before it closes, and again after (then to look again: by then the number
 * may be a new file's, opened by another thread, with waits of its own on it, which
 * must not fail; a call on the closed file finds the number closed as it looks again,
 * or another file, as any call after a close); each walk also counts the close
 * (plait__fd_close_gen), so every scheduler's epoll makes its registration of that
 * number again, and a call that has tried fd but not yet linked its wait sees the
 * close when it links (it reads the count before its try: plait__fd_call_begin) and
 * tries again instead of waiting on a number another file may have taken.  The walk
 * after close(2) is for a call that began between the two: its try found fd open, and
 * its wait, linked after the first walk, was once never woken.  That call makes what its wait needs (its
 * poller, its thread's wake-up descriptor) before its try, so a close during the call
 * cannot give the number to plait's own file; a number closed before the call began
 * may have been taken by them, and a call on it is -EBADF (plait__fd_call_begin).
 * plait_close takes back the calling scheduler's own watch on the descriptor first, so
 * that the file is really closed when it returns; a watch by another scheduler is taken
 * back when its woken waiter runs (moments later).
 *
 * A plain thread waits in ppoll() on the descriptor and on its own wake-up eventfd,
 * which the waiter protocol writes when a cancellation claims the wait (waiter.c): so
 * a plait thread or pool task blocked on a descriptor is cancellable like any wait.
 *
 * After fork() the child's copy of the calling thread's poller would share the
 * parent's kernel object (an epoll set, or an io_uring's rings, which two processes
 * must never both drive): the child makes new ones and re-arms what it waits on.
 * A request of the parent's ring at the fork (a watch, a read waiting for data,
 * handed to the kernel or not yet) stays the parent's.  A watch, re-made, is the
 * child's too — as a wait on the descriptor would be both processes'; a read is not
 * (poller_after_fork: the child's ring could take it inside fork(), reading the
 * parent's data for a child about to exec): its call makes the system call in the
 * child.  Writes are never made in the ring (fdio.c), so none is made twice.
 */
#include "poll.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void plait__wake_fd_write(int fd)
{
    /* Not write(), a cancellation point: any thread calls this under the inbox lock of
     * the scheduler it wakes (inbox_post_unlock), and a plait thread with a
     * pthread_cancel pending unwound there holding that lock (the scheduler then spun
     * on it for ever).  The raw system call is none. */
    uint64_t one = 1;
    while (syscall(SYS_write, fd, &one, sizeof one) < 0 && errno == EINTR) {
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

int plait__poll_timeout_ms(int64_t timeout)
{
    if (timeout <= 0)
        return (int)timeout;
    int64_t ms = timeout / PLAIT_MS + (timeout % PLAIT_MS != 0); /* up, not past INT64_MAX */
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ---- choosing a backend ---- */

/* The backend chosen, NULL until a probe has decided.  A probe that found no descriptor
 * free (EMFILE, ENFILE) decides nothing: it once chose epoll for good, where the kernel
 * allows io_uring, for a process whose first poller came when it was short of
 * descriptors.  Decided without a lock (a fork may come at any point): two probes at
 * once decide the same, and the first to store wins. */
static _Atomic(const plait__poll_backend *) choice;

static bool out_of_descriptors(int r) { return r == -EMFILE || r == -ENFILE; }

static void decide(const plait__poll_backend *b)
{
    const plait__poll_backend *none = NULL;
    atomic_compare_exchange_strong_explicit(&choice, &none, b, memory_order_acq_rel,
                                            memory_order_acquire);
}

/* The backend chosen, or NULL when the probe could not be made for want of a
 * descriptor (io_uring may yet be allowed: a poller then tries it itself). */
static const plait__poll_backend *choose(void)
{
    const plait__poll_backend *c = atomic_load_explicit(&choice, memory_order_acquire);
    if (c)
        return c;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer runs a signal's handler only when the thread next enters a call
     * it intercepts; io_uring_enter is a raw system call it does not, so a scheduler
     * asleep in it never saw a SIGTERM its program watched (the HTTP example did not
     * stop, in CI).  epoll_wait is intercepted: under TSan, plait uses epoll, and
     * sleeps in epoll_wait (poll_epoll.c's wait_events). */
    decide(&plait__poll_epoll);
    return atomic_load_explicit(&choice, memory_order_acquire);
#endif
    const char *want = getenv("PLAIT_POLLER");
    if (want && strcmp(want, "epoll") == 0) {
        decide(&plait__poll_epoll);
        return atomic_load_explicit(&choice, memory_order_acquire);
    }
    /* does the kernel let us? */
    struct plait__poller probe = {.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    int r = probe.wake_fd < 0 ? -errno : plait__poll_uring.open(&probe);
    if (r == 0)
        plait__poll_uring.close(&probe);
    if (probe.wake_fd >= 0)
        close(probe.wake_fd);
    if (out_of_descriptors(r))
        return NULL;
    decide(r == 0 ? &plait__poll_uring : &plait__poll_epoll);
    return atomic_load_explicit(&choice, memory_order_acquire);
}

const char *plait_io_backend(void)
{
    const plait__poll_backend *c = choose();
    /* undecided: no ring can be made now, as no epoll set can */
    return c ? c->name : plait__poll_epoll.name;
}

/* ---- the scheduler's poller ---- */

/* Open p's backend (the chosen one, else epoll; undecided, io_uring is tried first and
 * what it shows decides, unless it too lacked a descriptor). */
static int poller_open(struct plait__poller *p)
{
    const plait__poll_backend *c = choose();
    p->backend = c ? c : &plait__poll_uring;
    int r = p->backend->open(p);
    if (!c && !out_of_descriptors(r))
        decide(r == 0 ? &plait__poll_uring : &plait__poll_epoll);
    if (r == 0)
        return 0;
    p->backend = &plait__poll_epoll;
    return p->backend->open(p);
}

/* The backend of a forked child's poller whose kernel objects could not be made again
 * (no descriptor left for them: the limit may lie below the numbers the parent's had).
 * The child once aborted; now the waits then under way are answered with p->broken,
 * it watches nothing, and poller_get makes the objects at the next wait. */
static int broken_open(struct plait__poller *p) { return p->broken; }

static void broken_close(struct plait__poller *p) { (void)p; }

static int broken_arm(struct plait__poller *p, int fd, plait__fd_slot *slot, unsigned events)
{
    (void)fd;
    slot->armed = 0;
    return events ? p->broken : 0;
}

static void broken_forget(struct plait__poller *p, int fd, plait__fd_slot *slot)
{
    (void)p, (void)fd, (void)slot;
}

/* nothing is watched: the waits counted are those just answered, ready to run */
static void broken_wait(struct plait__poller *p, int64_t deadline, int64_t timeout)
{
    (void)p, (void)deadline, (void)timeout;
}

static void broken_io_cancel(struct plait__poller *p, int fd) { (void)p, (void)fd; }

static const plait__poll_backend poll_broken = {
    .name = "none",
    .open = broken_open,
    .close = broken_close,
    .arm = broken_arm,
    .forget = broken_forget,
    .wait = broken_wait,
    .io_cancel = broken_io_cancel,
};

/* p's eventfd and backend, made anew; on failure p is left broken (poll_broken). */
static int poller_remake(plait__sched *s, struct plait__poller *p)
{
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int r = p->wake_fd < 0 ? -errno : poller_open(p);
    if (r < 0) {
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        p->wake_fd = -1;
        p->backend = &poll_broken;
        p->broken = r;
    }
    s->inbox.poll_wake_fd = p->wake_fd;
    return r;
}

/* s's poller, made on first use: 0 and *out, or -errno (-EMFILE: no descriptor left
 * for its eventfd or its epoll or io_uring instance). */
static int poller_get(plait__sched *s, struct plait__poller **out)
{
    if ((*out = s->poller))
        return s->poller->backend == &poll_broken ? poller_remake(s, s->poller) : 0;
    struct plait__poller *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->epfd = -1;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int r = p->wake_fd < 0 ? -errno : poller_open(p);
    if (r < 0) {
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        free(p);
        return r;
    }
    s->inbox.poll_wake_fd = p->wake_fd;
    *out = s->poller = p;
    return 0;
}

/* The table's size in bytes for cap slots: whole pages. */
static size_t table_bytes(size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (cap * sizeof(plait__fd_slot) + page - 1) / page * page;
}

void plait__poller_free(plait__sched *s)
{
    struct plait__poller *p = s->poller;
    if (!p)
        return;
    if (p->backend->let_go)
        p->backend->let_go(p);
    p->backend->close(p);
    if (p->wake_fd >= 0) /* -1: broken */
        close(p->wake_fd);
    s->inbox.poll_wake_fd = -1;
    if (p->fds)
        munmap(p->fds, table_bytes(p->cap));
    free(p->unverified.fds);
    free(p);
    s->poller = NULL;
}

bool plait__poller_busy(const plait__sched *s)
{
    /* a watch put off (io_uring, a full ring the kernel refused for a moment) is made
     * only by a wait: one given up holds its file open until then */
    return s->poller && (s->poller->waits > 0 || s->poller->put_off > 0);
}

bool plait__poller_look(plait__sched *s, const atomic_uint *inbox_seq, unsigned drained,
                        int64_t deadline)
{
    const plait__poll_backend *b = s->poller->backend;
    return b->look && b->look(s->poller, inbox_seq, drained, deadline);
}

void plait__poller_drain_wake(struct plait__poller *p)
{
    wake_fd_drain(p->wake_fd);
}

/* Room in the table for fd.  The table is an anonymous mapping grown with mremap, not
 * a realloc'd array cleared with memset: the kernel gives its pages zeroed, and a page
 * costs memory only once a slot on it is written.  So a scheduler that waits on one
 * descriptor numbered in the tens of thousands pays for that slot's page, not for
 * every number below it (some 150 bytes each: 4.7 MB at 19,000, once, in each
 * scheduler of a process with that many descriptors; test_poller_table).  The walks
 * over every slot (a fork's re-arm, a ring's close) write only slots in use. */
static int grow(struct plait__poller *p, int fd)
{
    if ((size_t)fd < p->cap)
        return 0;
    /* a number that is not open needs no room (and a huge one would cost memory) */
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    if (fd > PLAIT__POLL_FD_MAX)
        return -ENOMEM;
    size_t cap = p->cap ? p->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    size_t bytes = table_bytes(cap);
    void *fds;
#ifdef PLAIT_TSAN
    /* ThreadSanitizer does not see mremap: what it knew of the accesses to the old
     * addresses stayed there, and a table of another scheduler's moved there later
     * was reported racing with them (plait tour).  There: a new mapping, the slots
     * copied, the old one unmapped, each of which it sees. */
    fds = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fds != MAP_FAILED && p->fds) {
        memcpy(fds, p->fds, table_bytes(p->cap));
        munmap(p->fds, table_bytes(p->cap));
    }
#else
    fds = p->fds ? mremap(p->fds, table_bytes(p->cap), bytes, MREMAP_MAYMOVE)
                 : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
    if (fds == MAP_FAILED)
        return -ENOMEM;
    p->fds = fds;
    p->cap = bytes / sizeof *p->fds;
    return 0;
}

/* Whether w's wait has ended (signalled, timed out, cancelled, woken by a plait_close)
 * though its coroutine has not run since. */
static bool ended(const plait__waiter *w)
{
    return atomic_load_explicit(&w->claimed, memory_order_acquire);
}

/* Watch fd for what its waiters want now.  A refusal that leaves them unwatched answers
 * them as a wait refused as it begins would: a file epoll takes no watch on (a regular
 * file now at the number) is always ready, any other refusal (ENOSPC, ENOMEM, EBADF) is
 * their outcome (a waiter left when the other direction's fired slept, unwatched, until
 * its deadline).  One whose watch stands (io_uring keeps the wider watch it could not
 * narrow, or makes it at its next wait) waits on. */
static void rearm(struct plait__poller *p, int fd)
{
    plait__fd_slot *slot = &p->fds[fd];
    unsigned wants = plait__slot_wants(slot);
    int r = p->backend->arm(p, fd, slot, wants);
    if (r == 0 || !wants || slot->arm_deferred || (slot->armed & wants) == wants)
        return;
    plait__poller_fire(p, fd, r == -EPERM ? (int)(wants & (POLLIN | POLLOUT)) : r);
}

/* Waits on fd that have ended, their coroutines not yet run again, no longer hold the
 * slot: a new one takes it (their coroutines then find the slot not their own and
 * leave it).  Else a plait_close() on another thread, the number at once reused for a
 * new descriptor, would make that descriptor's first wait -EBUSY.  A read or write
 * still in the kernel for such a wait is taken back here; its coroutine finds it
 * done. */
static void release_ended(struct plait__poller *p, int fd)
{
    plait__fd_slot *slot = &p->fds[fd];
    bool released = false;
    if (slot->reader && ended(slot->reader)) {
        slot->reader = NULL;
        released = true;
    }
    if (slot->writer && ended(slot->writer)) {
        slot->writer = NULL;
        released = true;
    }
    /* their coroutines will find the slot not their own and leave the watch alone: it
     * is narrowed here (an io_uring poll holds its file open, the file a plait_close on
     * another thread closed) */
    if (released && slot->armed && slot->armed != plait__slot_wants(slot))
        rearm(p, fd);
    if (slot->read_op && ended(slot->read_op->waiter))
        p->backend->io_cancel(p, fd);
}

/* coro_wait_fd ends without waiting, with r: unless a plait_close on another thread
 * has claimed w meanwhile (it is linked where a close finds it), whose wake-up is on
 * its way to this coroutine and must be taken here (else it would resume the
 * coroutine later, in whatever wait it is in then). */
static int wait_fd_gives_up(plait__waiter *w, int r)
{
    if (plait__waiter_claim(w))
        return r;
    return plait__waiter_block(w, PLAIT_FOREVER);
}

static int coro_wait_fd(plait__sched *s, plait__waiter *w, int fd, int events,
                        int64_t deadline)
{
    struct plait__poller *p;
    int r = poller_get(s, &p);
    if (r < 0)
        return wait_fd_gives_up(w, r);
    r = grow(p, fd);
    if (r < 0)
        return wait_fd_gives_up(w, r);
    release_ended(p, fd);
    plait__fd_slot *slot = &p->fds[fd];
    if (((events & PLAIT_READABLE) && (slot->reader || slot->read_op)) ||
        ((events & PLAIT_WRITABLE) && slot->writer))
        return wait_fd_gives_up(w, -EBUSY);
    if (events & PLAIT_READABLE)
        slot->reader = w;
    if (events & PLAIT_WRITABLE)
        slot->writer = w;
    r = p->backend->arm(p, fd, slot, plait__slot_wants(slot));
    if (r < 0) {
        if (slot->reader == w)
            slot->reader = NULL;
        if (slot->writer == w)
            slot->writer = NULL;
        if (r == -EPERM) /* a regular file or the like: always ready */
            return wait_fd_gives_up(w, events & (PLAIT_READABLE | PLAIT_WRITABLE));
        return wait_fd_gives_up(w, r);
    }
    p->waits++;
    r = plait__waiter_block(w, deadline);
    p->waits--;
    /* the poller clears what it fired; a wait that ended otherwise is withdrawn, and
     * the other direction's waiter, if any, keeps its watch.  The table may have grown
     * (moved) while this coroutine waited. */
    slot = &p->fds[fd];
    bool mine = slot->reader == w || slot->writer == w;
    if (slot->reader == w)
        slot->reader = NULL;
    if (slot->writer == w)
        slot->writer = NULL;
    if (mine && slot->armed)
        rearm(p, fd);
    return r;
}

void *plait__room_for(void *items, size_t *room, size_t need, size_t size, size_t first)
{
    if (need <= *room)
        return items;
    size_t grown_room = *room ? *room : first;
    while (grown_room < need)
        grown_room *= 2;
    void *grown = realloc(items, grown_room * size);
    if (grown)
        *room = grown_room;
    return grown;
}

int plait__fd_list_push(plait__fd_list *list, int fd)
{
    int *fds = plait__room_for(list->fds, &list->cap, list->len + 1, sizeof *fds, 64);
    if (!fds)
        return -ENOMEM;
    list->fds = fds;
    list->fds[list->len++] = fd;
    return 0;
}

void plait__poller_fire(struct plait__poller *p, int fd, int revents)
{
    if (fd < 0 || (size_t)fd >= p->cap)
        return;
    plait__fd_slot *slot = &p->fds[fd];
    /* a failed watch (negative) is every waiter's outcome; a reader is told of no
     * room, a writer of no data (the other's events), as a thread's poll(2) would */
    int mask = revents < 0 ? revents : ready_mask((unsigned)revents);
    plait__waiter *r = slot->reader, *w = slot->writer;
    int mask_r = revents < 0 || r == w ? mask : mask & ~PLAIT_WRITABLE;
    int mask_w = revents < 0 || r == w ? mask : mask & ~PLAIT_READABLE;
    bool wake_r = r && mask_r != 0;
    bool wake_w = w && mask_w != 0;
    if (wake_r)
        slot->reader = NULL;
    if (wake_w)
        slot->writer = NULL;
    if (wake_r && plait__waiter_claim(r))
        plait__waiter_signal_now(r, mask_r, -1);
    if (wake_w && w != r && plait__waiter_claim(w))
        plait__waiter_signal_now(w, mask_w, -1);
    if (plait__slot_wants(slot)) /* one-shot: the other direction still waits */
        rearm(p, fd);
}

/* The call's slot in its scheduler's poller, if there is one (the table may have moved
 * since the last look: a wait lets other coroutines run). */
static plait__fd_slot *call_slot(const plait__fd_call *call)
{
    struct plait__poller *p = call->poller;
    return p && (size_t)call->fd < p->cap ? &p->fds[call->fd] : NULL;
}

/* Whether slot's kind was looked up for the file of close count gen. */
static bool kind_current(const plait__fd_slot *slot, uint32_t gen)
{
    return slot->kind_known && slot->kind_gen == gen;
}

void plait__fd_call_open(plait__fd_call *call, int fd, bool kind)
{
    *call = (plait__fd_call){.fd = fd};
    plait__sched *s = plait__sched_current();
    if (!s || s->current == &s->loop || fd < 0)
        return;
    call->sched = s;
    if (!(call->poller = s->poller))
        (void)poller_get(s, &call->poller); /* a failure is the wait's to report */
    plait__fd_slot *slot = call_slot(call);
    if (!slot || !kind)
        return;
    /* any kind known for this file will do (plait__fd_kind looks a file that is not
     * pollable up again each time, which only the ring and the watches need) */
    uint32_t gen = plait__fd_close_gen(fd);
    bool known = kind_current(slot, gen) || plait__fd_kind(slot, fd, gen);
    call->socket = known && slot->socket && !slot->seqpacket;
    call->hinted = known && (slot->socket || slot->fifo);
    call->drained = call->hinted && slot->drained;
}

void plait__fd_call_set_drained(plait__fd_call *call, bool drained)
{
    plait__fd_slot *slot = call_slot(call);
    call->drained = drained = drained && call->hinted;
    if (slot)
        slot->drained = drained;
}

void plait__fd_call_kind_stale(plait__fd_call *call)
{
    plait__fd_slot *slot = call_slot(call);
    call->socket = false;
    if (slot)
        slot->kind_known = false;
}

void plait__poller_poll(plait__sched *s, int64_t deadline, int64_t now)
{
    int64_t timeout = -1;
    if (deadline != PLAIT_FOREVER) {
        if (deadline > 0 && !now)
            now = plait_now();
        timeout = deadline > now ? deadline - now : 0;
    }
    /* The loop's wait is no cancellation point (epoll_wait, the eventfd's read), though
     * a coroutine may have turned the thread's cancellation back on for its own code: a
     * pthread_cancel acted on here unwound the loop, not a coroutine, and the cleanup
     * handler for a coroutine that ends the thread (sched.c) took the loop for one. */
    int cancel_state = plait__cancel_off();
    s->poller->backend->wait(s->poller, deadline, timeout);
    plait__cancel_restore(cancel_state);
}

/* End fd's read in the kernel: res is its result, status what its waiter is told. */
static void io_end(struct plait__poller *p, int fd, int res, int status)
{
    plait__kernel_io *op = p->fds[fd].read_op;
    p->fds[fd].read_op = NULL;
    op->res = res;
    op->done = true;
    if (plait__waiter_claim(op->waiter))
        plait__waiter_signal_now(op->waiter, status, -1);
}

/* In a forked child, on the thread that forked: new kernel objects for the poller of
 * the scheduler this thread runs, the waits re-armed on them. */
static void poller_after_fork(plait__sched *s)
{
    struct plait__poller *p = s ? s->poller : NULL;
    if (!p)
        return;
    p->backend->close(p); /* unmaps and closes only: the parent's rings stay its own */
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    for (size_t fd = 0; fd < p->cap; fd++) {
        plait__fd_slot *slot = &p->fds[fd];
        if (slot->armed || slot->registered || slot->unverified_since || slot->listed ||
            slot->arm_deferred) { /* (a slot never written stays unpaid for: grow) */
            slot->armed = 0;
            slot->registered = false;
            slot->unverified_since = 0;
            slot->listed = false;
            slot->arm_deferred = false;
        }
    }
    p->unverified.len = 0;
    /* none to be had (broken): each wait below is answered with the error */
    (void)poller_remake(s, p);
    for (size_t fd = 0; fd < p->cap; fd++) {
        if (plait__slot_wants(&p->fds[fd]))
            rearm(p, (int)fd);
        if (p->fds[fd].read_op)
            /* a read the parent's ring had in flight is not made again in the child's:
             * where this loop fills the ring, its requests go to the kernel to make room
             * (get_sqe), and a read of a pipe with data there took the bytes inside
             * fork() for a child that may exec or exit at once (600 readers at a fork:
             * 512 parent readers lost their byte); and there may be no ring here (it
             * fell back to epoll).  Nothing was read into it here: its call looks again
             * with the system call as its coroutine runs in the child, and waits as on
             * epoll (-EBADF would say an open descriptor was not) */
            io_end(p, (int)fd, -ECANCELED, PLAIT__LOOK_AGAIN);
    }
}

/* ---- closing: the table of blocking waits by descriptor ---- */

enum { CLOSE_STRIPES = 64 };
static struct {
    plait__spinlock lock;
    plait__waitq waits;
    atomic_uint closes;         /* plait__fd_close_gen() */
} fd_waits[CLOSE_STRIPES];

/* The stripes' locks across fork (fork.c): a child must not inherit one that another
 * thread held for its instant.  Taken last before the fork, in order; nothing is taken
 * while one is held.  In the child the waits of the parent's other threads go: a
 * plait_close there must not decide them (their wake-up eventfds are the parent's too,
 * and a thread woken that way, its wait never decided, would spin). */
void plait__fd_waits_atfork(int phase)
{
    for (int i = 0; i < CLOSE_STRIPES; i++)
        plait__atfork_wait_queue(&fd_waits[i].lock, &fd_waits[i].waits, phase);
}

uint32_t plait__fd_close_gen(int fd)
{
    return atomic_load_explicit(&fd_waits[fd % CLOSE_STRIPES].closes, memory_order_acquire);
}

static void *fd_key(int fd) { return (void *)((uintptr_t)(unsigned)fd + 1); }

/* The outcome of a wait on fd once its node is unlinked (which takes the stripe's
 * lock, or was done by the close that woke it): -EBADF when plait_close found it linked
 * and it had ended otherwise (ready, or its deadline), else r as it is.  (A cancellation
 * or another error stays.) */
static int closed_after_wait(const plait__waiter *w, int r)
{
    return w->fd_closed && (r >= 0 || r == -ETIMEDOUT || r == PLAIT__LOOK_AGAIN) ? -EBADF
                                                                                  : r;
}

/* Link a wait on fd where plait_close() finds it. */
static void link_for_close(plait__wait_node *node, plait__waiter *w, int fd)
{
    plait__spinlock *lock = &fd_waits[fd % CLOSE_STRIPES].lock;
    plait__spin_lock(lock);
    plait__waitq_push(&fd_waits[fd % CLOSE_STRIPES].waits, lock, node, w, 0, fd_key(fd));
    plait__spin_unlock(lock);
}

/* A read or write another scheduler's kernel makes on fd (io_uring), which its close
 * must not overtake: take it back while it is only queued (the scheduler withdraws it
 * before it enters the kernel), or, while the scheduler is handing it over, wait
 * until the kernel has taken it (the ring's head past it: it has found the file by the
 * number by then), so that the number is not closed, and reused, under the kernel's
 * look-up.  That wait is the rest of one io_uring_enter's submission (the head is
 * published once the whole batch is issued).  The stripe's
 * lock is held: the waiting coroutine cannot unlink, nor its stack go. */
static void take_back_or_wait_handed(plait__kernel_io *io, int withdrawn)
{
    int state = PLAIT__IO_QUEUED;
    for (unsigned spins = 0;
         !atomic_compare_exchange_strong(&io->state, &state, withdrawn) &&
         state == PLAIT__IO_ENTERING &&
         (int)(__atomic_load_n(io->ring_head, __ATOMIC_ACQUIRE) - io->index) <= 0;
         spins++) {
        /* the submitting thread may be off its CPU (preempted, a page fault in an
         * inline copy): let it run, as plait__spin_lock_contended does */
        if (spins < 64)
            plait__cpu_relax();
        else
            sched_yield();
        state = PLAIT__IO_QUEUED;
    }
}

/* One look of plait_close's for fd's waits: count the close, under the stripe's lock,
 * take back the kernel reads and writes queued on fd, and wake every wait on fd with
 * -EBADF.  A call that has tried fd but not yet linked its wait sees the count when it
 * links (plait__fd_call_begin), and one linked is woken.  A wait linked whose end was
 * already decided (the poller woke it, or its deadline came) and whose call has not yet
 * run again is not woken, but marked (fd_closed): its call returns -EBADF rather than
 * going on to read or write the number (closed_after_wait), which by then may be another
 * file's.  After close(2) (after), the number may be a new file's already, opened by
 * another thread, with waits on it: those are woken to look again (PLAIT__LOOK_AGAIN),
 * not failed nor marked; a call on the file closed then finds the number closed
 * (-EBADF), or another file, as any call after a close. */
static void close_pass(int fd, bool after)
{
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&fd_waits[fd % CLOSE_STRIPES].lock);
    atomic_fetch_add_explicit(&fd_waits[fd % CLOSE_STRIPES].closes, 1, memory_order_release);
    for (plait__wait_node *n = fd_waits[fd % CLOSE_STRIPES].waits.head; n; n = n->next) {
        if (n->data != fd_key(fd))
            continue;
        if (!after)
            n->waiter->fd_closed = true;
        if (n->waiter->io)
            take_back_or_wait_handed(n->waiter->io,
                                     after ? PLAIT__IO_RELOOK : PLAIT__IO_WITHDRAWN);
    }
    plait__waitq_wake_matching(&fd_waits[fd % CLOSE_STRIPES].waits, fd_key(fd),
                               after ? PLAIT__LOOK_AGAIN : -EBADF, &later);
    plait__spin_unlock(&fd_waits[fd % CLOSE_STRIPES].lock);
    plait__wakeups_deliver(&later);
}

/* plait_close, with no cancellation point in it (internal.h): close(2) is one, and a
 * close cancelled there left the number open, its waiters woken with -EBADF, and no
 * look after it. */
static int close_cancel_off(int fd)
{
    close_pass(fd, false);
    int kept = plait__file_ops_closing(fd);
    if (kept < 0)
        return kept; /* a second close, while a plait_file_* call keeps the number */
    /* this scheduler's watch goes first: an io_uring poll holds the file open (the
     * close must be a close, which the peer sees, when this returns), and an epoll
     * registration outlives the close while the file is open elsewhere */
    plait__sched *s = plait__sched_current();
    struct plait__poller *p = s ? s->poller : NULL;
    if (p && (size_t)fd < p->cap) {
        p->backend->forget(p, fd, &p->fds[fd]);
        if (p->fds[fd].read_op)
            p->backend->io_cancel(p, fd);
    }
    int r = kept ? plait__file_ops_close(fd) /* a started plait_file_* call is on fd */
                 : close(fd) < 0 && errno != EINTR ? -errno : 0; /* after EINTR it is gone too */
    /* once more: a call that began after the first look found fd still open, and its
     * wait, linked since, is woken by nothing else (a close wakes no poll or epoll
     * wait, and an io_uring poll holds the file); every poller must also make its
     * registration of the number again (one made between the looks is of the closed
     * file) */
    close_pass(fd, true);
    return r;
}

int plait_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    int cancel_state = plait__cancel_off();
    int r = close_cancel_off(fd);
    plait__cancel_restore(cancel_state);
    return r;
}

/* ---- a plain thread's wait ---- */

static PLAIT_TLS int tls_wake_fd = -1;
/* The fork epoch it was made at: in a child of _Fork(), which runs no fork handler, the
 * number is the parent's, shared with the parent's thread, or the program's own file
 * by now if it closed what it inherited (a wait there spun on a file always ready, and
 * the thread's end closed that file).  Such a number is left alone. */
static PLAIT_TLS unsigned tls_wake_epoch;

static void wake_fd_close(void *unused)
{
    (void)unused;
    /* run as the thread ends, which may be with a pthread_cancel pending (it returned
     * without reaching a cancellation point of its own): close(2), one, unwound the
     * destructor with the descriptor left open, and the thread's returned value was
     * lost (its joiner got PTHREAD_CANCELED) */
    int cancel_state = plait__cancel_off();
    if (tls_wake_fd >= 0 && tls_wake_epoch == plait__fork_epoch())
        close(tls_wake_fd);
    tls_wake_fd = -1;
    plait__cancel_restore(cancel_state);
}

static plait__exit_key wake_key = PLAIT__EXIT_KEY(wake_fd_close);

/* The calling thread's wake-up eventfd, closed when the thread ends; -errno (-EAGAIN
 * while the program holds every pthread key: there is none for that hook). */
static int thread_wake_fd(void)
{
    if (tls_wake_fd >= 0 && tls_wake_epoch == plait__fork_epoch())
        return tls_wake_fd;
    tls_wake_fd = -1;
    pthread_key_t key;
    if (!plait__exit_key_get(&wake_key, &key))
        return -EAGAIN;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (pthread_setspecific(key, &wake_key) != 0) {
        close(fd);
        return -ENOMEM;
    }
    tls_wake_epoch = plait__fork_epoch();
    return tls_wake_fd = fd;
}

void plait__poll_after_fork(void)
{
    /* the eventfd is shared with the parent's thread: this process needs its own */
    if (tls_wake_fd >= 0 && tls_wake_epoch == plait__fork_epoch_parent)
        close(tls_wake_fd);
    tls_wake_fd = -1;
    poller_after_fork(plait__sched_current());
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

/* One look at fd without waiting: its ready mask, 0 when nothing is ready, -EBADF for
 * a number not open, or poll's -errno.  (A poll that does not wait still fails with
 * EINTR when a signal handler ran meanwhile: it looks again.) */
static int look_once(int fd, short pevents)
{
    struct pollfd pfd = {.fd = fd, .events = pevents};
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        return -errno;
    if (pfd.revents & POLLNVAL)
        return -EBADF;
    return pfd.revents ? ready_mask(pfd.revents) : 0;
}

/* tried: the caller's system call has just said it would block, so a cancelled
 * caller, or one whose deadline has passed, is answered at once: a look at the
 * descriptor would only have it try again, and one that polls ready yet refuses (an
 * unconnected Unix datagram socket whose receiver is full: the kernel watches only a
 * connected peer's queue) would have it try for ever, deadline and cancellation
 * ignored. */
static int wait_fd(int fd, int events, int64_t deadline, bool tried, const uint32_t *since)
{
    if (fd < 0)
        return -EBADF;
    if (!(events & (PLAIT_READABLE | PLAIT_WRITABLE)) ||
        (events & ~(PLAIT_READABLE | PLAIT_WRITABLE)))
        return -EINVAL;
    short pevents = (short)((events & PLAIT_READABLE ? POLLIN : 0) |
                            (events & PLAIT_WRITABLE ? POLLOUT : 0));
again:;
    /* a cancelled caller, as one whose deadline has passed, tries once: what is ready
     * it gets (a call that needs no wait still completes) */
    int cancelled = plait__check_cancel();
    if (cancelled < 0 || plait__deadline_passed(deadline)) {
        if (tried)
            return cancelled < 0 ? cancelled : -ETIMEDOUT;
        int seen = look_once(fd, pevents);
        return seen != 0 ? seen : cancelled < 0 ? cancelled : -ETIMEDOUT;
    }
    plait__waiter w;
    plait__waiter_init(&w, events & PLAIT_READABLE ? "read" : "write", NULL);
    w.object = (const void *)(intptr_t)fd;
    if (!w.coro) {
        w.wake_fd = thread_wake_fd();
        if (w.wake_fd < 0)
            return w.wake_fd;
        w.poll_fd = fd;
        w.poll_events = pevents;
    }
    plait__wait_node node;
    link_for_close(&node, &w, fd);
    /* a plait_close since the call began (of fd, or of another number of its stripe),
     * before this wait was linked where the close would have found it: look again
     * (unless a close has claimed the wait since: its wake-up must be taken) */
    if (since && plait__fd_close_gen(fd) != *since && plait__waiter_claim(&w)) {
        plait__wait_node_withdraw(&node);
        return closed_after_wait(&w, 0);
    }
    int r = w.coro ? coro_wait_fd(w.coro->sched, &w, fd, events, deadline)
                   : plait__waiter_block(&w, deadline);
    plait__wait_node_unlink(&node);
    r = closed_after_wait(&w, r);
    if (r == PLAIT__LOOK_AGAIN && !since) {
        /* a close of the number just happened (plait_close's look after close(2)): the
         * number is closed, or a new file's, whose wait goes on */
        int seen = look_once(fd, pevents);
        if (seen != 0)
            return seen;
        goto again;
    }
    return r;
}

int plait_wait_fd(int fd, int events, int64_t deadline)
{
    /* What the wait needs (the scheduler's poller, the thread's wake-up eventfd) is made
     * first, as for a read or write (plait__fd_call_begin): a caller's first wait would
     * otherwise make it here, at the lowest number free, which may be fd, closed just
     * before: the wait was then on plait's own descriptor (timed out, or "readable" when
     * the scheduler was woken), not -EBADF. */
    plait__fd_call call;
    plait__fd_call_open(&call, fd, false);
    int cancel_state = plait__cancel_off(); /* look_once's poll(2) is a cancellation point */
    int r = plait__fd_call_begin(&call);
    if (r == 0)
        r = wait_fd(fd, events, deadline, false, NULL);
    plait__cancel_restore(cancel_state);
    return r;
}

int plait__wait_fd_in_call(const plait__fd_call *call, int events, int64_t deadline,
                           bool tried)
{
    return wait_fd(call->fd, events, deadline, tried, &call->since);
}

int plait__fd_call_pause(const plait__fd_call *call, int64_t until)
{
    int fd = call->fd;
    if (fd < 0)
        return -EBADF;
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    if (plait__deadline_passed(until))
        return 0;
    plait__waiter w;
    plait__waiter_init(&w, "pause", (const void *)(intptr_t)fd);
    plait__wait_node node;
    link_for_close(&node, &w, fd);
    /* a plait_close since the call's try, before the pause was linked: as wait_fd */
    if (plait__fd_close_gen(fd) != call->since && plait__waiter_claim(&w)) {
        plait__wait_node_withdraw(&node);
        return closed_after_wait(&w, 0);
    }
    r = plait__waiter_block(&w, until);
    plait__wait_node_unlink(&node);
    r = closed_after_wait(&w, r);
    return r == -ETIMEDOUT || r == PLAIT__LOOK_AGAIN ? 0 : r;
}

int plait__fd_turn(int fd)
{
    plait__waiter w;
    plait__waiter_init(&w, "turn", (const void *)(intptr_t)fd);
    plait__wait_node node;
    link_for_close(&node, &w, fd);
    /* decided before the yield, as a wait that has ended but not yet run again: a
     * close marks it (fd_closed) and wakes nothing, as the coroutine is queued */
    (void)plait__waiter_claim(&w);
    (void)plait_yield();
    plait__wait_node_withdraw(&node);
    return closed_after_wait(&w, 0);
}

int plait__fd_call_begin(plait__fd_call *call)
{
    int fd = call->fd;
    if (fd < 0)
        return -EBADF;
    if (call->sched) {
        if (!call->poller) /* none could be made when the call opened: perhaps now */
            (void)poller_get(call->sched, &call->poller);
        struct plait__poller *p = call->poller;
        /* a number plait took for the scheduler's own use after the caller's descriptor
         * was closed: a call on it would read or wait on plait's own descriptor */
        if (p && (fd == p->wake_fd || fd == p->epfd || plait__uring_owns(p, fd)))
            return -EBADF;
    } else if (fd == thread_wake_fd()) {
        return -EBADF;
    }
    call->since = plait__fd_close_gen(fd);
    return 0;
}

/* ---- a read or write the kernel makes for a coroutine ---- */

/* The calling coroutine's poller when its backend can read and write (io_uring);
 * NULL with *r = -ENOSYS when the caller should make the system call itself (not a
 * coroutine, a backend that cannot, a deadline known to be past, a cancelled
 * coroutine: the system call may need no wait), or another -errno.  The clock is not
 * read: a deadline is known past when the loop's last reading is at or after it.  One
 * that passed since goes to the ring, its timer takes the request back on the loop's
 * next turn, and kernel_read says -EAGAIN: the caller then makes the system call
 * once, as for any past deadline. */
static struct plait__poller *ring_poller(const plait__fd_call *call, int64_t deadline,
                                        int *r)
{
    plait__sched *s = call->sched;
    struct plait__poller *p = call->poller;
    *r = -ENOSYS;
    /* no poller to be had (no descriptor or memory left for one): the system call,
     * which may need no wait; a wait after it says why it cannot */
    if (!p || !p->backend->io_submit)
        return NULL; /* (the clock is not read where the backend cannot anyway) */
    if (deadline <= s->loop_now || plait__check_cancel() < 0)
        return NULL;
    *r = grow(p, call->fd);
    return *r == 0 ? p : NULL;
}

/* Have the kernel read into buf and wait for it: the bytes read, or -errno; -EAGAIN
 * when the deadline ended the wait before the kernel read anything (the caller tries
 * the system call once: it may have passed before the call), or when the ring took no
 * request (full, and io_uring_enter refused to make room). */
static ssize_t kernel_read(struct plait__poller *p, int fd, void *buf, size_t len,
                             int64_t deadline, uint32_t since, bool *closed)
{
    plait__waiter w;
    plait__waiter_init(&w, "read", (const void *)(intptr_t)fd);
    plait__kernel_io op = {.waiter = &w, .buf = buf, .len = len};
    p->fds[fd].read_op = &op;
    int r = p->backend->io_submit(p, fd, &p->fds[fd]);
    if (r < 0) { /* a full ring the kernel would not take: the system call can do it */
        p->fds[fd].read_op = NULL;
        return -EAGAIN;
    }
    plait__wait_node node;
    /* linked after io_submit, never before: a plait_close on another thread reads op's
     * plain fields (index, ring_head) through this link, made visible to it by the
     * stripe lock link_for_close takes (and later by withdraw_ended's seq_cst CAS) */
    w.io = &op;
    link_for_close(&node, &w, fd);
    if (plait__fd_close_gen(fd) != since && plait__waiter_claim(&w)) {
        /* a plait_close since the call began, before it could find this request: as a
         * deadline before the kernel moved anything (the request never goes: the claim
         * withdraws it), the caller's system call says whether fd is still there */
        r = -ETIMEDOUT;
    } else {
        p->waits++;
        r = plait__waiter_block(&w, deadline);
        p->waits--;
    }
    plait__wait_node_unlink(&node);
    if (!op.done) /* the wait ended otherwise: the kernel must let go of buf first */
        p->backend->io_cancel(p, fd);
    /* bytes that moved are returned whatever ended the wait: none is lost; a close
     * that came meanwhile (the node unlinked: read under the stripe's lock) is the
     * caller's to know, as the number may be another file's by now.  So is a read
     * left to its caller (-EAGAIN: a recheck cancelled it) that a close found ended:
     * -EBADF, as the caller's read(2) would be of whatever file has the number now. */
    if (op.res != -ECANCELED) {
        *closed = w.fd_closed;
        return op.res == -EAGAIN && w.fd_closed ? -EBADF : op.res;
    }
    /* a close's look after close(2) (PLAIT__LOOK_AGAIN): the system call says whether
     * the number is closed or a new file's */
    r = closed_after_wait(&w, r);
    return r == -ETIMEDOUT || r == PLAIT__LOOK_AGAIN ? -EAGAIN : r;
}

bool plait__fd_kind(plait__fd_slot *slot, int fd, uint32_t gen)
{
    /* A number closed with close(2), not plait_close, may name another file now.  A
     * stale "pollable" costs little (a poll or read of a file that is always ready goes
     * through the ring), a stale "always ready" would make a stream spin: only the
     * first is kept.  A stale "socket" makes the ring's receive fail with ENOTSOCK, on
     * which plait__ring_read looks again. */
    if (kind_current(slot, gen) && slot->pollable)
        return true;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    slot->socket = S_ISSOCK(st.st_mode);
    int type = 0;
    socklen_t type_len = sizeof type;
    slot->seqpacket = slot->socket &&
                      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 &&
                      type == SOCK_SEQPACKET;
    slot->regular = S_ISREG(st.st_mode);
    slot->fifo = S_ISFIFO(st.st_mode);
    slot->pollable = !slot->regular && !S_ISDIR(st.st_mode) && !S_ISBLK(st.st_mode);
    /* the last read's "likely empty" was the old file's: a FIFO with no writer yet
     * that took the number reads 0 at once but never polls readable */
    slot->drained = false;
    slot->kind_known = true;
    slot->kind_gen = gen;
    return true;
}

ssize_t plait__ring_read(plait__fd_call *call, void *buf, size_t len, int64_t deadline)
{
    if (len > UINT32_MAX) /* the ring's length has 32 bits: read(2) answers, as a thread's
                           * would */
        return -ENOSYS;
    int r, fd = call->fd;
    struct plait__poller *p = ring_poller(call, deadline, &r);
    if (!p)
        return r;
    if (!plait__fd_kind(&p->fds[fd], fd, call->since) || !plait__uring_polls(p, fd, &p->fds[fd]))
        return -ENOSYS; /* a file is always ready: read(2), as two coroutines may */
    release_ended(p, fd);
    if (p->fds[fd].reader || p->fds[fd].read_op)
        return -EBUSY;
    ssize_t n = kernel_read(p, fd, buf, len, deadline, call->since, &call->closed);
    if (n == -ENOTSOCK && p->fds[fd].socket) { /* a stale kind: the kernel received */
        p->fds[fd].kind_known = false;
        return plait__ring_read(call, buf, len, deadline); /* as what it is now */
    }
    return n;
}

void plait__poller_io_done(struct plait__poller *p, int fd, int res)
{
    io_end(p, fd, res, res);
}
