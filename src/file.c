/*
 * file.c — files read and written without blocking the scheduler.
 *
 * A regular file is always "ready" to poll(2), yet a read may wait for the disk, so
 * from a coroutine each operation runs on the default pool while the coroutine waits
 * (only it).  From a plain thread or a pool task the system call is made in place.
 * That suits regular files and block devices only: on a FIFO, pipe or socket a call
 * that waits for the peer holds its pool worker until the peer comes.  Such a
 * descriptor is not refused (the open of a FIFO is what blocks, and no descriptor
 * exists to fstat before it; a check per read or write would cost every call a
 * system call); the header sends such descriptors to plait_read/plait_write, which
 * wait on the poller.
 *
 * An operation handed to the pool is waited for to its end, even if the coroutine is
 * cancelled meanwhile: the bytes it moved (and the file position) cannot be taken
 * back, so its result is returned, and the cancellation shows at the coroutine's next
 * wait.  A cancellation that comes first, even while the operation still waits in the
 * pool's queue, is answered -ECANCELED without starting it.
 *
 * An operation on a descriptor is where plait_close finds it (plait__file_ops_closing)
 * from its submission until it starts: a close meanwhile withdraws it (its pool task
 * cancelled, or, started by then, the worker finds it marked) and it answers -EBADF
 * without its system call, which would have read or written whatever file took the
 * number since.  One that has started runs on the file it began on: its worker makes
 * its system call on the number, which, once the call is marked started, may be any
 * moment, so the close does not free the number but puts a placeholder in it (an
 * O_PATH descriptor of "/", on which a read or write is EBADF): a call not yet in the
 * kernel then fails with -EBADF and reaches no other file; one in the kernel goes on
 * with the file it holds.  The last such call to finish closes the placeholder.  (The
 * copy of a descriptor its worker could take instead would drop the process's POSIX
 * record locks on the file as it is closed.)  With no descriptor left for the
 * placeholder, the close is a close, and a call not yet in the kernel may reach the
 * file that takes the number next, as a thread's read(2) beside another thread's
 * close(2) may.  Invariant: `closed`, `started`, `finished`, `keeps`, `placeholder` and
 * the list are read and written under queued_lock only; a fork takes the lock
 * (plait__file_atfork: one held by another thread at the fork was held for ever in the
 * child, whose first file call or close spun on it).
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>

typedef enum { OP_OPEN, OP_READ, OP_WRITE, OP_SYNC } op_kind;

typedef struct file_op {
    op_kind kind;
    int fd, flags;
    mode_t mode;
    const char *path;
    void *buf;
    size_t len;
    off_t offset;
    ssize_t result;
    bool ran;                   /* on the pool: result is the operation's */
    /* on a descriptor, handed to the pool (queued_lock) */
    struct file_op *prev, *next;
    plait_task task;
    bool task_known;            /* task is set */
    bool started;               /* its worker has begun it: a close no longer stops it */
    bool closed;                /* plait_close came first: -EBADF, no system call */
    bool finished;              /* its system call has returned */
    bool keeps;                 /* a close found it started, not finished */
    bool placeholder;           /* and put the placeholder in the number */
    unsigned epoch;             /* the fork epoch it was made at: in a child of _Fork()
                                 * (no fork handler marked it finished) one of an older
                                 * epoch is its parent's, and never finishes here */
} file_op;

static plait__spinlock queued_lock;
static file_op *queued_ops;
static atomic_int queued_count; /* lets plait_close skip the lock when there is none */

static void queued_link(file_op *op)
{
    op->epoch = plait__fork_epoch();
    plait__spin_lock(&queued_lock);
    op->next = queued_ops;
    if (queued_ops)
        queued_ops->prev = op;
    queued_ops = op;
    atomic_fetch_add(&queued_count, 1);
    plait__spin_unlock(&queued_lock);
}

/* Unlink op; whether a close came before it started. */
static bool queued_unlink(file_op *op)
{
    plait__spin_lock(&queued_lock);
    if (op->prev)
        op->prev->next = op->next;
    else
        queued_ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    atomic_fetch_sub(&queued_count, 1);
    bool closed = op->closed;
    plait__spin_unlock(&queued_lock);
    return closed;
}

/* Under queued_lock: whether a call on fd has not finished its system call and either
 * its close found it started (`keeps`: the number must stay the placeholder) or, with
 * placed_only, the placeholder is in the number already (a second close finds it). */
static bool unfinished_call_on(int fd, bool placed_only, unsigned epoch)
{
    for (file_op *op = queued_ops; op; op = op->next)
        if (op->fd == fd && !op->finished && op->epoch == epoch &&
            (placed_only ? op->placeholder : op->keeps))
            return true;
    return false;
}

int plait__file_ops_closing(int fd)
{
    if (!atomic_load(&queued_count))
        return 0;
    int kept = 0;
    unsigned epoch = plait__fork_epoch();
    plait__spin_lock(&queued_lock);
    if (unfinished_call_on(fd, true, epoch)) {
        plait__spin_unlock(&queued_lock);
        return -EBADF; /* closed already: the number is plait's */
    }
    for (file_op *op = queued_ops; op; op = op->next) {
        if (op->fd != fd || op->closed || op->finished || op->epoch != epoch)
            continue;
        if (op->started) {
            op->keeps = true;
            kept = 1;
            continue;
        }
        op->closed = true;
        if (op->task_known) /* withdrawn from the pool's queue: its joiner goes on now */
            plait_cancel(op->task);
    }
    plait__spin_unlock(&queued_lock);
    return kept;
}

int plait__file_ops_close(int fd)
{
    /* The placeholder goes in outside the lock (dup3 closes the file, which may take its
     * time: a flush, a socket's linger); a call that finishes meanwhile sees `keeps`
     * without `placeholder` and leaves the number alone. */
    int spare = open("/", O_PATH | O_CLOEXEC);
    bool placed = spare >= 0 && dup3(spare, fd, O_CLOEXEC) == fd;
    int r = placed ? 0 : close(fd) < 0 && errno != EINTR ? -errno : 0;
    if (spare >= 0)
        close(spare);
    bool kept = false;
    unsigned epoch = plait__fork_epoch();
    plait__spin_lock(&queued_lock);
    for (file_op *op = queued_ops; op; op = op->next) {
        if (op->fd != fd || !op->keeps || op->finished || op->epoch != epoch)
            continue;
        op->placeholder = placed;
        op->keeps = placed;
        kept |= placed;
    }
    plait__spin_unlock(&queued_lock);
    if (placed && !kept) /* every call finished meanwhile: the placeholder goes now */
        close(fd);
    return r;
}

void plait__file_atfork(int phase)
{
    if (phase == PLAIT__FORK_PREPARE) {
        plait__spin_lock(&queued_lock);
        return;
    }
    if (phase == PLAIT__FORK_CHILD) {
        /* The calls in the list are the parent's other threads' (or its coroutines',
         * whose pool is not the child's): none finishes here.  Marked finished, so the
         * child's close of a number is a close; a placeholder put in for one of them
         * (the child's copy of the number) goes now. */
        for (file_op *op = queued_ops; op; op = op->next) {
            /* (an older epoch's number may be the program's file by now) */
            if (op->placeholder && !op->finished && op->epoch == plait__fork_epoch_parent) {
                close(op->fd);
                for (file_op *same = op; same; same = same->next)
                    if (same->fd == op->fd)
                        same->placeholder = false;
            }
            op->finished = true;
        }
    }
    plait__spin_unlock(&queued_lock); /* in the child: ours, copied held */
}

/* The operation's system call. */
static ssize_t op_do(const file_op *op)
{
    int fd = op->fd;
    ssize_t r;
    do {
        switch (op->kind) {
        case OP_OPEN:
            r = open(op->path, op->flags | O_CLOEXEC, op->mode);
            break;
        case OP_READ:
            r = op->offset < 0 ? read(fd, op->buf, op->len)
                               : pread(fd, op->buf, op->len, op->offset);
            break;
        case OP_WRITE:
            r = op->offset < 0 ? write(fd, op->buf, op->len)
                               : pwrite(fd, op->buf, op->len, op->offset);
            break;
        default:
            r = fsync(fd);
            break;
        }
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static void *op_task(void *arg)
{
    file_op *op = arg;
    plait__spin_lock(&queued_lock);
    bool closed = op->closed;
    op->started = true;
    plait__spin_unlock(&queued_lock);
    op->result = closed ? -EBADF : op_do(op);
    plait__spin_lock(&queued_lock);
    op->finished = true;
    /* the last call a close found started lets the number go (plait__file_ops_close) */
    if (op->placeholder && !unfinished_call_on(op->fd, false, op->epoch))
        close(op->fd);
    plait__spin_unlock(&queued_lock);
    op->ran = true;
    return NULL;
}

static ssize_t op_run(file_op *op)
{
    int r = plait__check_cancel(); /* a cancelled coroutine, thread or pool task */
    if (r < 0)
        return r;
    if (!plait__sched_current()) {
        /* no cancellation point here either (internal.h), though open(2), read(2) and
         * fsync(2) are: a plait call is none */
        int cancel_state = plait__cancel_off();
        ssize_t n = op_do(op);
        plait__cancel_restore(cancel_state);
        return n;
    }
    bool on_fd = op->kind != OP_OPEN;
    if (on_fd)
        queued_link(op);
    plait_task task;
    r = plait__submit_default(&task, op_task, op);
    if (r < 0) {
        if (on_fd)
            queued_unlink(op);
        return r;
    }
    if (on_fd) {
        plait__spin_lock(&queued_lock);
        op->task = task;
        op->task_known = true;
        if (op->closed && !op->started) /* a close between the link and now */
            plait_cancel(task);
        plait__spin_unlock(&queued_lock);
    }
    /* cancelled while the operation waits in the pool's queue, it is withdrawn; one
     * that runs is waited for to its end (op is on this stack) */
    r = plait__join_to_the_end(task, NULL, PLAIT_FOREVER);
    bool closed = on_fd && queued_unlink(op);
    /* An operation that ran has its outcome (a descriptor it opened must not be lost);
     * one that did not has the join's failure, not the 0 of a result never written,
     * or -EBADF when a close withdrew it. */
    return op->ran ? op->result : closed ? -EBADF : r;
}

int plait_file_open(const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EINVAL;
    file_op op = {.kind = OP_OPEN, .path = path, .flags = flags, .mode = mode};
    return (int)op_run(&op);
}

ssize_t plait_file_read(int fd, void *buf, size_t len, off_t offset)
{
    if (!buf && len)
        return -EINVAL;
    file_op op = {.kind = OP_READ, .fd = fd, .buf = buf, .len = len, .offset = offset};
    return op_run(&op);
}

ssize_t plait_file_write(int fd, const void *buf, size_t len, off_t offset)
{
    if (!buf && len)
        return -EINVAL;
    /* a pipe or socket whose reader has gone is -EPIPE, not a SIGPIPE that kills the
     * process, as from plait_write (the call takes pipes and sockets, and plait has
     * then written one) */
    plait__ignore_sigpipe();
    file_op op = {.kind = OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .offset = offset};
    return op_run(&op);
}

int plait_file_sync(int fd)
{
    file_op op = {.kind = OP_SYNC, .fd = fd};
    return (int)op_run(&op);
}
