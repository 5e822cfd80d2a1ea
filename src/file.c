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
 * number since.  One that has started runs on the file it began on, as a thread's
 * read(2) beside another thread's close(2) would.  Invariant: `closed`, `started` and
 * the list are read and written under queued_lock only.
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
} file_op;

static plait__spinlock queued_lock;
static file_op *queued_ops;
static atomic_int queued_count; /* lets plait_close skip the lock when there is none */

static void queued_link(file_op *op)
{
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

void plait__file_ops_closing(int fd)
{
    if (!atomic_load(&queued_count))
        return;
    plait__spin_lock(&queued_lock);
    for (file_op *op = queued_ops; op; op = op->next) {
        if (op->fd != fd || op->started || op->closed)
            continue;
        op->closed = true;
        if (op->task_known) /* withdrawn from the pool's queue: its joiner goes on now */
            plait_cancel(op->task);
    }
    plait__spin_unlock(&queued_lock);
}

static ssize_t op_do(const file_op *op)
{
    ssize_t r;
    do {
        switch (op->kind) {
        case OP_OPEN:
            r = open(op->path, op->flags | O_CLOEXEC, op->mode);
            break;
        case OP_READ:
            r = op->offset < 0 ? read(op->fd, op->buf, op->len)
                               : pread(op->fd, op->buf, op->len, op->offset);
            break;
        case OP_WRITE:
            r = op->offset < 0 ? write(op->fd, op->buf, op->len)
                               : pwrite(op->fd, op->buf, op->len, op->offset);
            break;
        default:
            r = fsync(op->fd);
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
