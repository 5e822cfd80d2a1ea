/*
 * procpool.c — the process pool: worker processes that run submitted functions, with
 * crash isolation, replacement, per-task timeouts, and map/imap on top.
 *
 * Shape.  A pool is N worker processes (forked by the manager thread, process.c) and
 * a shared mapping with `slots` task slots.  A slot carries one task in flight: the
 * function, its argument (copied in by the parent) and its result (written by the
 * worker).  Two rings of slot numbers link the sides: the ready ring (parent → workers)
 * and the done ring (workers → parent).  Workers sleep on a futex word of the mapping;
 * the parent learns of finished tasks through an eventfd that workers write after each
 * one, which the manager thread watches along with every worker's pidfd.  Tasks beyond
 * the slots wait in a list in the parent (submit never blocks), and each finished slot
 * takes the next of them.
 *
 * A slot's life: FREE (in the parent's free list) → QUEUED (in the ready ring) →
 * RUNNING (taken by a worker, whose pid the slot records as its `runner`) → DONE (in
 * the done ring) → FREE when the parent has completed its task's future.  A queued task
 * that is cancelled is marked CANCELLED and goes through the same path without running.
 *
 * Crashes.  The shared state is guarded by a pid lock (pfutex.c) and each step of a
 * worker is ordered (compiler fences keep the stores in program order: a SIGKILL stops
 * the worker between two instructions) so that its death at any point leaves a state
 * the parent can read: taking a slot (one that waits: QUEUED, or CANCELLED) is "runner
 * = me; ready head++; RUNNING", finishing is "done ring += s; DONE".  When a worker dies, the parent releases the lock if the
 * worker held it and looks for the slot whose runner it was and that is in neither
 * ring and not done: that task was running (or just taken) when the worker died, and
 * exactly it fails with the worker's fate — PLAIT_KILLED(signal) or
 * PLAIT_EXITED(status), -ETIMEDOUT when the worker was killed by its task's timer,
 * -ECANCELED when the parent killed it to cancel the task.  A slot still in the ready
 * ring was not taken (it runs elsewhere); one in the done ring is delivered as usual;
 * a slot given to another task since is not this worker's any more (dispatch clears
 * its runner).  None is lost or runs twice.  A new worker is forked in its place (not
 * while the pool stops); one that cannot be forked (a process limit reached) is tried
 * again every 50 ms from a timer of the manager's, and while no worker is left what
 * waits fails and submit refuses with -EAGAIN (the pool once stayed short, or broken,
 * for good).

 * Timeouts.  A worker arms a one-shot POSIX timer that sends itself SIGKILL at the
 * task's deadline (and records the deadline), so a task stuck in a loop dies on time
 * without the parent polling.  Cancelling a running task kills its worker.
 *
 * Worker life.  A worker runs the pool's initialiser first, and says when it has
 * returned (init_done, then the notify descriptor): create waits for the first workers'
 * (start_check), and fails when one fails or dies in it.  If a replacement's fails, the
 * pool is broken — the tasks waiting and every later submission fail with the
 * initialiser's code, and the other workers finish what is queued.  Before it, a pool
 * with a task_timeout has each worker make its timer; one that cannot (a shortage,
 * which may pass) ends and says so (no_timer, and its exit status: NO_TIMER_STATUS),
 * and counts as a fork refused: create waiting fails with -EAGAIN, a replacement is
 * tried again 50 ms later.  After max_tasks tasks a worker
 * exits between two tasks and is replaced.
 *
 * Waiting.  A worker without work, and a joiner waiting for its result, look again
 * for up to SPIN_NS (yielding the CPU between looks) before they sleep on their futex
 * word, as the thread pool's idle workers do: a sleep and a wake-up through the kernel
 * cost more than the gap between the tasks of a busy pool.  Not a joiner whose workers
 * all took their last task on its own CPU (workers_elsewhere): there looking again
 * only hands the CPU to the worker, which finds nobody asleep and wakes the manager.
 *
 * Distrust.  The slots' headers, the rings, the workers' init words and the pid lock's
 * word are the workers' to write, and a task's memory bug can write over them: the
 * parent reads them without trusting them (see collect), so that the worst such a task
 * does is fail itself or the task whose record it wrote over (-EPROTO), never the
 * parent, and no task is lost.  A worker takes only a ready-ring entry that names a slot
 * waiting to run, and drops another (or all of them, when the counters say more than
 * the ring holds) and says so (strays): the parent then fails with -EPROTO each task
 * whose slot waits, untaken, but that no entry names any more (fail_lost; so does a
 * shutdown or a broken pool, fail_queued).  A head moved on skips entries silently: the
 * parent keeps its own copy of the ring, and fails a task whose position the head has
 * passed while its slot waits, untaken (fail_passed).  An init_error counts only from a
 * worker of a pool with an initialiser that has not returned 0, as the parent's own
 * record says (init_seen: the worker said so, or took a task; init_done can be cleared).
 * helpers_asleep is only a hint (a wake-up that wakes nobody tells the manager), stop
 * is cleared by the parent before a replacement while it has not sent it, and the
 * workers' pids that plait_procpool_pids reports are the parent's.
 *
 * Locks.  The parent's side of the pool (free slots, the waiting list, which task is in
 * which slot, the workers) is guarded by `lock`; the shared state by the pid lock, taken
 * inside it.  Futures are never completed under either: the work is collected first.
 * The pid lock's word can be written over too, with a value that no death clears (the
 * parent's pid, a live worker's, the waiters' bit alone): so neither side waits for it
 * for ever.  Each counts the looks (10 ms apart) that find it held by one live holder.
 * After WORKER_PATIENCE a worker tells the parent, as when a task is done, and waits
 * again; after PARENT_PATIENCE (a second: a holder at work holds it for a few stores)
 * the parent (one thread at a time, under `lock`) kills the worker that the word names
 * — its death releases the lock, and its task fails with -EPROTO — or seizes a word that
 * names no worker (parent_lock).  The fast path is the lock's: one compare-and-swap.
 */
#include "internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE, SLOT_CANCELLED };
enum { WHERE_PENDING, WHERE_SLOT, WHERE_DONE };
enum { ALIGN = 64, NO_SLOT = -1, SLOT_NOT_RUN = 1 };
/* How long a worker without work, or a joiner without its result, keeps looking before
 * it sleeps: a wake-up through the kernel costs longer than most gaps between the
 * tasks of a busy pool (and a round trip is two of them). */
enum { SPIN_NS = 50 * 1000 };
/* How many looks (about 10 ms apart, pfutex.c) a side waits for the shared lock while
 * its word names one holder before it does something about it (see Locks above): a
 * worker tells the parent; the parent kills a worker that holds it and seizes a word
 * that names none.  A holder at work holds it for a few stores. */
enum { WORKER_PATIENCE = 10, PARENT_PATIENCE = 100 };

/* How long a shutdown waits for workers that are only exiting (no task left) before it
 * kills them: one stopped (a debugger, job control) never exits, and with it the
 * shutdown, a destroy, never returned.  Exiting takes a worker a few milliseconds; it
 * has nothing left to run.  EXIT_LOOK_NS: how often a wait without a deadline (a
 * destroy's) looks whether only that is left. */
#define EXIT_GRACE_NS (1000 * PLAIT_MS)
#define EXIT_LOOK_NS (100 * PLAIT_MS)

/* The exit status of a worker that could not make its timer (no_timer). */
enum { NO_TIMER_STATUS = 126 };

typedef struct worker_state {   /* shared: one per worker */
    atomic_uint pid;
    int32_t init_error;         /* its initialiser failed with this */
    atomic_uint init_done;      /* its initialiser has returned 0 */
    atomic_uint no_timer;       /* it could not make its task_timeout's timer (ended) */
    atomic_int cpu;             /* the CPU it took its last task on; -1: none yet */
} worker_state;

typedef struct task_slot {      /* shared: one per slot, with its arg and result after it */
    uint32_t state;
    uint32_t runner;            /* the pid of the worker that took it; 0 until taken */
    int32_t code;
    plait_proc_fn fn;
    uint64_t arg_len, result_len;
    int64_t deadline;           /* of its timer, while it runs; 0 without */
} task_slot;

typedef struct pool_shm {
    plait__plock lock;
    atomic_uint work_seq;       /* bumped when a slot is queued and at stop: workers sleep on it */
    atomic_uint idle;           /* workers asleep */
    atomic_uint done_seq;       /* bumped when a slot is done: helping joiners sleep on it */
    atomic_uint helpers_asleep; /* joiners asleep on done_seq (then the manager is not told) */
    uint32_t stop;              /* workers exit once the ready ring is empty */
    uint64_t ready_head, ready_tail, done_head, done_tail;
    atomic_uint strays;         /* bumped by a worker that drops a ready-ring entry that
                                 * was written over: the parent then looks for its task */
} pool_shm;

typedef struct ptask {
    plait__future *future;
    plait_procpool *pool;
    unsigned epoch;             /* the pool maker's fork epoch: a join in any other
                                 * process is inert, and looks at nothing of the pool (it
                                 * may be freed, or the parent's, copied); a cancel there
                                 * is -EPERM (future.c) */
    struct ptask *next;         /* the waiting list */
    plait_proc_fn fn;
    int where;
    int32_t slot;
    bool withdrawn;             /* cancelled before it ran: the future is complete */
    bool cancel_requested;      /* cancelled while running: its worker was killed */
    int failed;                 /* the code the parent failed it with (fail_slot), kept
                                 * here: the slot's is the workers' to write over */
    plait__procpool_deliver deliver;
    void *deliver_ctx;
    size_t deliver_tag;
    size_t arg_len;
    unsigned char *arg;         /* while it waits for a slot: its copy of the argument */
} ptask;

typedef struct worker {
    plait__mgr_source src;
    plait_procpool *pool;
    unsigned index;
    pid_t pid;
    int pidfd;
    bool alive;
    bool misbehaved;            /* killed for holding the shared lock: its task fails
                                 * with -EPROTO */
    bool init_seen;             /* the parent knows its initialiser returned 0: it said
                                 * so (init_done), or it took a task (init_done is the
                                 * workers' to write over: a task may clear it) */
} worker;

struct plait_procpool {
    plait__mgr_source src;      /* notify_fd: tasks finished */
    unsigned nworkers, nslots;
    size_t arg_max, result_max, slot_size, map_size;
    size_t arg_room, result_room; /* a slot's: a map's chunk has room beyond the maxima */
    int (*init)(void *arg);
    void *init_arg;
    unsigned max_tasks;
    int64_t task_timeout;
    plait__caller caller;       /* the creator's mask, affinity, ..., for the workers */
    int notify_fd;
    /* shared */
    pool_shm *sh;
    uint32_t *ready, *done;
    worker_state *wstate;
    char *slots;
    /* the parent's side, under lock */
    plait__spinlock lock;
    ptask **slot_task;
    uint32_t *free_slots;
    unsigned nfree;
    unsigned strays_seen;       /* sh->strays when the parent last looked for lost tasks */
    uint32_t *queued_slot;      /* the parent's copy of the ready ring: the slot that it
                                 * queued at each position */
    uint64_t *queued_at;        /* the ready-ring position at which slot s was queued */
    uint64_t head_seen;         /* the ready ring's head when the parent last looked */
    ptask *waiting_head, *waiting_tail;
    worker *workers;
    unsigned alive;
    unsigned forking;           /* the worker index being forked (read by the child) */
    unsigned init_unseen;       /* workers alive without init_seen (pools with init) */
    bool closed, stop_sent, stopped_flag;
    bool cancelling;            /* shut down with PLAIT_POOL_CANCEL: no worker is replaced */
    int broken;                 /* the initialiser's failure */
    int starved;                /* no worker is left and none could be forked (-EAGAIN):
                                 * submit refuses until the retry forks one */
    bool retry_due;             /* a fork failed and no retry timer could be had (no
                                 * descriptor left): the next submit tries instead */
    struct retry {              /* forks again the workers whose replacement failed */
        plait__mgr_source src;
        plait_procpool *pool;
        int fd;                 /* a timerfd, made at the first failure; -1 before */
    } retry;
    atomic_bool starting;       /* create waits for the first workers' initialisers */
    plait_event *started;       /* set once they have all returned, or the pool broke */
    plait_event *stopped;
    atomic_uint helpers;        /* joiners collecting (ptask_help): destroy waits for them */
    atomic_uint iters;          /* imap iterators over it: destroy is -EBUSY while any */
    atomic_uint shutting;       /* callers inside plait_procpool_shutdown: destroy is
                                 * -EBUSY while any (they wait on `stopped` still) */
    unsigned owner;             /* the process that made it (its pid, for F_SETOWN) */
    unsigned epoch;             /* ... its fork epoch, the only one that may use it (not
                                 * the pid: a child that is pid 1 of a new PID namespace
                                 * has its parent's, and crashed in its copy) */
};

int plait__procpool_caller(const plait_procpool *pool)
{
    /* a forked child's copy of the parent's side is stale, and what it would write to
     * the shared rings would take the parent's tasks and completions */
    return plait__fork_epoch() == pool->epoch ? 0 : -EPERM;
}

static size_t align_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static task_slot *slot_at(plait_procpool *p, uint32_t s)
{
    return (task_slot *)(p->slots + (size_t)s * p->slot_size);
}

static unsigned char *slot_arg(plait_procpool *p, uint32_t s)
{
    return (unsigned char *)slot_at(p, s) + align_up(sizeof(task_slot));
}

/* The room fn's result has: result_max, or more for a map's chunk (whose function in
 * a slot a task may have written over: the room is there all the same, and the parent
 * judges the length by its own record of the function). */
static size_t out_cap(const plait_procpool *p, plait_proc_fn fn)
{
    return fn == plait__procpool_chunk_run ? p->result_room : p->result_max;
}

static unsigned char *slot_result(plait_procpool *p, uint32_t s)
{
    return slot_arg(p, s) + align_up(p->arg_room);
}

/* How many entries a ring of n holds between head and tail: at most n, whatever a
 * worker that wrote over the counters left there. */
static uint64_t ring_count(unsigned n, uint64_t head, uint64_t tail)
{
    return tail - head <= n ? tail - head : n;
}

/* Whether slot s waits to run, as far as its state says: queued, or cancelled before it
 * ran (a worker passes it to the done ring). */
static bool slot_waits(plait_procpool *p, uint32_t s)
{
    uint32_t state = slot_at(p, s)->state;
    return state == SLOT_QUEUED || state == SLOT_CANCELLED;
}

static bool ring_has(const uint32_t *ring, unsigned n, uint64_t head, uint64_t tail,
                     uint32_t s)
{
    for (uint64_t k = ring_count(n, head, tail); k-- > 0; head++)
        if (ring[head % n] == s)
            return true;
    return false;
}

/* ---- the worker process ---- */

/* Store a function's outcome the way process.c does for a function child: a code in
 * [PLAIT__CODE_MIN, 0], a length within room. */
static void store_outcome(task_slot *ts, ssize_t n, size_t room)
{
    if (n < 0) {
        ts->code = n < PLAIT__CODE_MIN ? -EINVAL : (int32_t)n;
        ts->result_len = 0;
    } else if ((size_t)n > room) {
        ts->code = -EMSGSIZE;
        ts->result_len = 0;
    } else {
        ts->code = 0;
        ts->result_len = (uint64_t)n;
    }
}

/* The pool's descriptor as the worker was given it: an initialiser or a task that
 * closes it may open another file that takes its number, which write() would then
 * fill with the counter's 8 bytes (and the manager never hear).  A regular file, pipe,
 * socket or device that took the number has another inode; but every eventfd, epoll,
 * timerfd or signalfd shares one anonymous inode, and another eventfd takes the 8
 * bytes as well as ours.  So create marks ours with an owner (F_SETOWN: the creator's
 * pid, which no signal follows, an eventfd having no SIGIO), and a file opened since
 * has none.  (Once the inode alone: a task that made eventfds after closing every
 * descriptor fed one of them, and an initialiser that made an epoll instance so had
 * create wait for ever.) */
typedef struct notify_id {
    dev_t dev;
    ino_t ino;
    pid_t owner;
} notify_id;

static bool notify_intact(int fd, const notify_id *id)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino &&
           fcntl(fd, F_GETOWN) == id->owner;
}

/* Tell the manager that a slot is done: false when the task (or the initialiser) closed
 * the pool's descriptor, which no completion of this worker would then reach. */
static bool notify_manager(int fd, const notify_id *id)
{
    if (!notify_intact(fd, id))
        return false;
    uint64_t one = 1;
    ssize_t r;
    while ((r = write(fd, &one, sizeof one)) < 0 && errno == EINTR) {
    }
    return r == (ssize_t)sizeof one || (r < 0 && errno == EAGAIN); /* EAGAIN: full, so seen */
}

/* Have the parent collect: wake the joiners that sleep on done_seq, or else tell the
 * manager.  false as notify_manager, whichever told the parent: a worker that woke a
 * joiner looks at the descriptor too, after the wake-up (off the joiner's way), and
 * ends when the task closed it.  (It once looked only when it told the manager, and
 * such a worker ran on until a completion found no joiner asleep.)  helpers_asleep is
 * the workers' to write over too (see Distrust): a wake-up that found nobody asleep
 * tells the manager after all (a joiner about to sleep sees done_seq moved, and the
 * manager collects once more). */
static bool tell_parent(plait_procpool *p, const notify_id *nid)
{
    pool_shm *sh = p->sh;
    atomic_fetch_add(&sh->done_seq, 1);
    if (atomic_load(&sh->helpers_asleep) &&
        plait__futex_wake_shared(&sh->done_seq, INT32_MAX) > 0)
        return notify_intact(p->notify_fd, nid);
    return notify_manager(p->notify_fd, nid);
}

/* A worker takes the shared lock.  A word that names one holder for long was written
 * over, or names a worker that is stuck: the parent, told, takes it over or kills that
 * worker (parent_lock), and the lock is waited for again. */
static void worker_lock(plait_procpool *p, const notify_id *nid)
{
    while (plait__plock_lock_patient(&p->sh->lock, WORKER_PATIENCE, NULL) < 0)
        (void)tell_parent(p, nid);
}

/* ---- a task's forks ----
 * A worker keeps the pool's shared memory from its children (MADV_DONTFORK, from its
 * first instant: plait__fork_child): a task that forks must not leave a process that
 * shares the slots, whose late write of its copy of the task's result (a child that
 * returns from the task function, which is what ends it: see plait.h) landed in the
 * result of a later task the slot carried, reported a success.  A child of fork(),
 * whose fork handlers run, gets rooms of its own where the running task's are instead
 * (running: their pages), so that it goes on as the task's code expects: a copy of the
 * task's argument (its length, not its room: a room may be a gigabyte, and every fork
 * while the task runs, plait's own too, pays the copy), and an empty result room.  A
 * child of _Fork() or a raw fork has none of them (a touch faults: the child alone
 * dies), and, as a fork() child whose rooms could not be made, makes none for its own
 * children (`owner`: only the worker's forks do). */
static struct {
    _Atomic uintptr_t pages, pages_end; /* 0: no task runs */
    _Atomic uintptr_t arg;
    atomic_size_t arg_len;
    unsigned owner;                     /* the worker, set before its first task */
} running;
static void *rooms_made;       /* prepare's rooms, for the child */
static uintptr_t rooms_made_at; /* where they go */
static size_t rooms_made_len;

static uintptr_t page_size(void) { return (uintptr_t)sysconf(_SC_PAGESIZE); }

void plait__procpool_atfork(int phase)
{
    if (phase == PLAIT__FORK_PREPARE) {
        rooms_made = NULL;
        /* (a thread of an earlier task that forks as the next one starts may read parts
         * of both: each still inside the slots, and the argument copied only where it
         * lies inside the pages) */
        uintptr_t at = atomic_load_explicit(&running.pages, memory_order_acquire);
        uintptr_t end = atomic_load_explicit(&running.pages_end, memory_order_relaxed);
        uintptr_t arg = atomic_load_explicit(&running.arg, memory_order_relaxed);
        size_t len = atomic_load_explicit(&running.arg_len, memory_order_relaxed);
        if (!at || end <= at || (unsigned)getpid() != running.owner)
            return;
        void *rooms = mmap(NULL, end - at, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (rooms == MAP_FAILED)
            return; /* the child has none */
        if (arg >= at && arg < end && len <= end - arg)
            memcpy((char *)rooms + (arg - at), (const void *)arg, len);
        rooms_made = rooms;
        rooms_made_at = at;
        rooms_made_len = end - at;
        return;
    }
    if (!rooms_made)
        return;
    if (phase != PLAIT__FORK_CHILD ||
        mremap(rooms_made, rooms_made_len, rooms_made_len, MREMAP_MAYMOVE | MREMAP_FIXED,
               (void *)rooms_made_at) == MAP_FAILED)
        munmap(rooms_made, rooms_made_len);
    rooms_made = NULL;
}

/* The task in slot s runs now: its rooms, for its forks (until rooms_left). */
static void rooms_running(plait_procpool *p, uint32_t s)
{
    uintptr_t page = page_size(), rooms = (uintptr_t)slot_arg(p, s);
    uintptr_t rooms_end = (uintptr_t)slot_result(p, s) + p->result_room;
    atomic_store_explicit(&running.arg, rooms, memory_order_relaxed);
    atomic_store_explicit(&running.arg_len, slot_at(p, s)->arg_len, memory_order_relaxed);
    atomic_store_explicit(&running.pages_end, (rooms_end + page - 1) / page * page,
                          memory_order_relaxed);
    atomic_store_explicit(&running.pages, rooms / page * page, memory_order_release);
}

static void rooms_left(void) { atomic_store_explicit(&running.pages, 0, memory_order_relaxed); }

static int worker_main(void *arg)
{
    plait_procpool *p = arg;
    pool_shm *sh = p->sh;
    worker_state *ws = &p->wstate[p->forking];
    unsigned me = plait__pid();
    running.owner = me; /* (its first thread: any other starts later, in a task) */
    /* Nothing before the manager watches this worker (its pidfd is open; it publishes
     * the pid then): where SIGCHLD is ignored, a worker that ended before that was
     * reaped by the kernel unseen, and the task it had taken never reported (a
     * replacement taking a crashing task), or its quick end passed for a failed fork
     * (max_tasks: the pool shrank, and broke with -EAGAIN at its last worker). */
    for (unsigned v; (v = atomic_load(&ws->pid)) != me;)
        plait__futex_wait_shared(&ws->pid, v, PLAIT_FOREVER);
    struct stat nst;
    if (fstat(p->notify_fd, &nst) < 0)
        return 0;
    notify_id nid = {.dev = nst.st_dev, .ino = nst.st_ino, .owner = (pid_t)p->owner};
    /* The timer that keeps task_timeout's promise, before the initialiser.  A worker
     * that cannot make one (no room for its signal: RLIMIT_SIGPENDING, shared by the
     * user's processes) ends at once and says so: the manager counts it as a fork
     * refused (see Worker life).  It once ended as if idle, and was replaced at once,
     * again and again, no task ever run. */
    timer_t timer;
    bool have_timer = false;
    if (p->task_timeout > 0) {
        struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGKILL};
        have_timer = timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
        if (!have_timer) {
            atomic_store(&ws->no_timer, 1);
            return NO_TIMER_STATUS;
        }
    }
    if (p->init) {
        int r = p->init(p->init_arg);
        if ((unsigned)getpid() != me)
            _exit(0); /* a child the initialiser forked, returning from it too: no worker
                       * (none watches it; it has no timer), as for a task's (below) */
        fflush(stdout); /* what it printed goes out, as a task's does (see below) */
        fflush(stderr);
        if (r < 0) {
            ws->init_error = r < PLAIT__CODE_MIN ? -EINVAL : r; /* (as a task's code) */
            return 0;
        }
        if (!notify_intact(p->notify_fd, &nid)) {
            /* it closed the pool's descriptor: create (or the manager) would never hear
             * of this worker's completions */
            ws->init_error = -EBADF;
            return 0;
        }
        atomic_store(&ws->init_done, 1);
        plait__wake_fd_write(p->notify_fd); /* for create, waiting for it */
    }
    for (unsigned ran = 0;;) {
        worker_lock(p, &nid);
        uint64_t queued = sh->ready_tail - sh->ready_head;
        if (queued == 0) {
            if (sh->stop) {
                plait__plock_unlock(&sh->lock);
                return 0;
            }
            unsigned seq = atomic_load(&sh->work_seq);
            plait__plock_unlock(&sh->lock);
            if (plait__spin_while(&sh->work_seq, seq, SPIN_NS, PLAIT_FOREVER))
                continue;
            atomic_fetch_add(&sh->idle, 1);
            plait__futex_wait_shared(&sh->work_seq, seq, PLAIT_FOREVER);
            atomic_fetch_sub(&sh->idle, 1);
            continue;
        }
        uint32_t s = queued <= p->nslots ? p->ready[sh->ready_head % p->nslots] : UINT32_MAX;
        if (s >= p->nslots || !slot_waits(p, s)) {
            /* written over (see Distrust above): an entry that names no slot waiting to
             * run (taken, it would crash every worker in turn, or report done a task
             * that runs elsewhere), or counters that say more than the ring holds.  It
             * is dropped (the counters: all of it), and the parent told, which fails
             * the tasks that no entry stands for any more (fail_lost). */
            atomic_fetch_add(&sh->strays, 1);
            sh->ready_head = queued <= p->nslots ? sh->ready_head + 1 : sh->ready_tail;
            plait__plock_unlock(&sh->lock);
            if (!tell_parent(p, &nid))
                return 0;
            continue;
        }
        task_slot *ts = slot_at(p, s);
        ts->runner = me;
        atomic_store_explicit(&ws->cpu, sched_getcpu(), memory_order_relaxed); /* a hint */
        atomic_signal_fence(memory_order_seq_cst); /* the order of these stores is the */
        sh->ready_head++;                          /* state a death leaves (see above)  */
        atomic_signal_fence(memory_order_seq_cst);
        bool run = ts->state == SLOT_QUEUED;
        if (run && have_timer)
            ts->deadline = plait_deadline_in(p->task_timeout);
        if (run)
            ts->state = SLOT_RUNNING;
        plait__plock_unlock(&sh->lock);
        if (run) {
            if (have_timer) {
                struct itimerspec its = {
                    .it_value = {p->task_timeout / PLAIT_SEC, p->task_timeout % PLAIT_SEC}};
                timer_settime(timer, 0, &its, NULL);
            }
            size_t cap = out_cap(p, ts->fn);
            rooms_running(p, s);
            ssize_t n = ts->fn(slot_arg(p, s), ts->arg_len, slot_result(p, s), cap);
            rooms_left();
            if ((unsigned)getpid() != me) /* not plait__pid(): _Fork() or a raw fork
                                           * runs no fork handler, so the cache is stale */
                _exit(0); /* a child the task forked, returning from it too: the task is
                           * its worker's, and this process no worker (it would put the
                           * slot on the done ring a second time, and then take tasks) */
            /* what the task printed goes out before it is reported done: a worker ends
             * with _exit (replaced, destroyed), which drops a stream's buffer, and
             * stdout on a pipe or file is fully buffered (only the standard streams:
             * another stream may still hold what the parent had buffered at the fork) */
            fflush(stdout);
            fflush(stderr);
            if (have_timer)
                timer_settime(timer, 0, &(struct itimerspec){0}, NULL);
            store_outcome(ts, n, cap);
        }
        worker_lock(p, &nid);
        p->done[sh->done_tail % p->nslots] = s;
        atomic_signal_fence(memory_order_seq_cst);
        sh->done_tail++;
        atomic_signal_fence(memory_order_seq_cst);
        ts->state = SLOT_DONE;
        plait__plock_unlock(&sh->lock);
        /* a joiner that waits collects it; else the manager does */
        if (!tell_parent(p, &nid))
            return 0; /* the task closed it: the manager collects at this exit, and the
                       * replacement has the descriptor again */
        if (run && p->max_tasks && ++ran >= p->max_tasks)
            return 0; /* replaced by a fresh worker */
    }
}

/* ---- the parent: dispatching ---- */

/* The parent takes the shared lock (pool lock held: one thread of the parent at a
 * time).  A word that names one holder through PARENT_PATIENCE looks was written over
 * (see Locks above): a live worker that it names is killed (its death releases the
 * lock; its task fails with -EPROTO), and a word that names no worker is seized. */
static void parent_lock(plait_procpool *p)
{
    unsigned holder;
    while (plait__plock_lock_patient(&p->sh->lock, PARENT_PATIENCE, &holder) < 0) {
        worker *w = NULL;
        for (unsigned i = 0; i < p->nworkers && !w; i++)
            if (p->workers[i].alive && (unsigned)p->workers[i].pid == holder)
                w = &p->workers[i];
        if (!w && plait__plock_seize(&p->sh->lock, holder))
            return;
        if (w && !w->misbehaved) {
            w->misbehaved = true;
            plait__pidfd_kill(w->pidfd, SIGKILL);
        }
    }
}

/* Put t, whose argument is the two parts, into free slot s and queue it (pool lock
 * held). */
static void dispatch(plait_procpool *p, ptask *t, uint32_t s, const void *head,
                     size_t head_len, const void *body, size_t body_len)
{
    task_slot *ts = slot_at(p, s);
    ts->fn = t->fn;
    ts->arg_len = t->arg_len;
    /* a code that store_outcome never writes (slot_outcome: -EPROTO) until a worker has
     * run the task: a slot whose state was written over with CANCELLED is passed to the
     * done ring unrun, and its task would have been delivered as done, with no result */
    ts->code = SLOT_NOT_RUN;
    ts->result_len = 0;
    ts->runner = 0;
    ts->deadline = 0;
    if (head_len)
        memcpy(slot_arg(p, s), head, head_len);
    if (body_len)
        memcpy(slot_arg(p, s) + head_len, body, body_len);
    free(t->arg);
    t->arg = NULL;
    p->slot_task[s] = t;
    t->slot = (int32_t)s;
    t->where = WHERE_SLOT;
    pool_shm *sh = p->sh;
    parent_lock(p);
    ts->state = SLOT_QUEUED;
    p->ready[sh->ready_tail % p->nslots] = s;
    p->queued_slot[sh->ready_tail % p->nslots] = s;
    p->queued_at[s] = sh->ready_tail;
    sh->ready_tail++;
    atomic_fetch_add(&sh->work_seq, 1);
    plait__plock_unlock(&sh->lock);
    if (atomic_load(&sh->idle))
        plait__futex_wake_shared(&sh->work_seq, 1);
}

/* A list of futures to settle once the locks are released. */
typedef struct settle {
    ptask *head;
} settle;

static void settle_add(settle *st, ptask *t)
{
    t->next = st->head;
    st->head = t;
}

/* Tell the workers to stop once nothing is left to run (pool lock held). */
static void maybe_stop(plait_procpool *p)
{
    if (!p->closed || p->stop_sent || p->waiting_head || p->nfree != p->nslots)
        return;
    p->stop_sent = true;
    parent_lock(p);
    p->sh->stop = 1;
    atomic_fetch_add(&p->sh->work_seq, 1);
    plait__plock_unlock(&p->sh->lock);
    plait__futex_wake_shared(&p->sh->work_seq, INT32_MAX);
    if (p->alive == 0)
        p->stopped_flag = true;
}

/* Slot s is free again: give it the next waiting task, or keep it (pool lock held). */
static void slot_freed(plait_procpool *p, uint32_t s, settle *release)
{
    p->slot_task[s] = NULL;
    while (p->waiting_head) {
        ptask *t = p->waiting_head;
        p->waiting_head = t->next;
        if (!p->waiting_head)
            p->waiting_tail = NULL;
        if (t->withdrawn) {
            settle_add(release, t);
            continue;
        }
        dispatch(p, t, s, t->arg, t->arg_len, NULL, 0);
        return;
    }
    p->free_slots[p->nfree++] = s;
}

/* The usual delivery: the result as a plait_bytes value. */
static int deliver_bytes(void *ctx, size_t tag, int code, const unsigned char *result,
                         size_t len, void **value)
{
    (void)ctx;
    (void)tag;
    if (code < 0)
        return code;
    plait_bytes *b = malloc(sizeof *b + len);
    if (!b)
        return -ENOMEM;
    b->len = len;
    memcpy(b->data, result, len);
    *value = b;
    return 0;
}

/* Deliver a finished task's result and complete its future, or only let go of it if
 * it was withdrawn. */
static void finish(ptask *t, int code, const unsigned char *result, size_t len)
{
    if (t->withdrawn) {
        plait__future_release(t->future);
        return;
    }
    void *value = NULL;
    code = t->deliver(t->deliver_ctx, t->deliver_tag, code, result, len, &value);
    plait__future_complete(t->future, value, code);
}

/* Put slot s, whose task the parent fails with code, on the done ring (pool lock and
 * shared lock held). */
static void fail_slot(plait_procpool *p, uint32_t s, int code)
{
    p->slot_task[s]->failed = code;
    slot_at(p, s)->state = SLOT_DONE;
    p->done[p->sh->done_tail % p->nslots] = s;
    p->sh->done_tail++;
}

/* Distrust.  The rings and the slots' headers are memory that every worker can write,
 * and a task with a memory bug (a write before its output room or past it) can write
 * over them: the parent takes nothing there on trust that could make it read or write
 * out of bounds, free a slot twice, or lose a task.  A done-ring entry counts only if
 * it names a slot with a task in flight that is done (or RUNNING: its worker died
 * before marking it); one that names a slot still waiting to run, or no task, is
 * dropped (fail_lost then finds the task it stood for); a slot in any other state, and
 * a code or result length no worker writes (store_outcome), fail the task with
 * -EPROTO.  The parent's own verdicts (fail_slot) are kept on its side. */
enum { ENTRY_DONE, ENTRY_BROKEN, ENTRY_NONE };

/* The worker that runner (a pid, as a slot names it) names, if it has not ended (pool
 * lock held); NULL if none. */
static worker *runner_at_work(plait_procpool *p, uint32_t runner)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        if (!w->alive || (uint32_t)w->pid != runner || w->pidfd < 0)
            continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        bool ended = waitid(P_PIDFD, (id_t)w->pidfd, &info, WEXITED | WNOHANG | WNOWAIT) < 0 ||
                     info.si_pid != 0;
        return ended ? NULL : w;
    }
    return NULL;
}

/* Whether a slot other than s, with a task, is RUNNING by runner (pool lock and shared
 * lock held). */
static bool runs_another(plait_procpool *p, uint32_t s, uint32_t runner)
{
    for (uint32_t o = 0; o < p->nslots; o++)
        if (o != s && p->slot_task[o] && slot_at(p, o)->runner == runner &&
            slot_at(p, o)->state == SLOT_RUNNING)
            return true;
    return false;
}

/* What the done-ring entry s is (pool lock and shared lock held). */
static int done_entry(plait_procpool *p, uint32_t s)
{
    if (s >= p->nslots || !p->slot_task[s])
        return ENTRY_NONE;
    uint32_t state = slot_at(p, s)->state;
    /* RUNNING on the done ring: its worker died between putting it there and marking it
     * done — or something was written over: a worker alive cannot be between the two
     * while the parent holds the shared lock.  Taken while the task may still run, its
     * slot would be freed and given to another task, which would then be delivered
     * this one's result. */
    worker *w = state == SLOT_RUNNING ? runner_at_work(p, slot_at(p, s)->runner) : NULL;
    if (w && !runs_another(p, s, (uint32_t)w->pid)) {
        /* stale (its task may still run), or a done slot's state written over (its
         * worker idle): which, nothing shared tells, and only the worker's end makes
         * the slot safe to free — it is killed, and its task fails with -EPROTO
         * (fail_running), the entry dropped.  A worker that runs another slot has
         * moved on: the entry is this one's, done. */
        if (!w->misbehaved) {
            w->misbehaved = true;
            plait__pidfd_kill(w->pidfd, SIGKILL);
        }
        return ENTRY_NONE;
    }
    if (state == SLOT_DONE || state == SLOT_RUNNING || p->slot_task[s]->withdrawn)
        return ENTRY_DONE;
    if (state == SLOT_QUEUED &&
        ring_has(p->ready, p->nslots, p->sh->ready_head, p->sh->ready_tail, s))
        return ENTRY_NONE; /* it comes back when it has run */
    return ENTRY_BROKEN;
}

/* A ring entry (or counter) was written over: fail through the done ring each task that
 * it stood for, which no ring holds though its slot says it is on one — done, but off
 * the done ring; or not taken by a worker (no runner yet: a slot taken has one, and its
 * worker's death fails it), but off the ready ring.  The latter whatever its state
 * says: a slot whose state was written over (RUNNING, FREE, a value no side writes)
 * while it waited is dropped by the worker that comes to its entry, as a stray, and
 * its task was then neither run nor failed — lost (pool lock and shared lock held). */
static void fail_lost(plait_procpool *p)
{
    pool_shm *sh = p->sh;
    for (uint32_t s = 0; s < p->nslots; s++) {
        if (!p->slot_task[s])
            continue;
        if (slot_at(p, s)->state == SLOT_DONE
                ? !ring_has(p->done, p->nslots, sh->done_head, sh->done_tail, s)
                : slot_at(p, s)->runner == 0 &&
                      !ring_has(p->ready, p->nslots, sh->ready_head, sh->ready_tail, s))
            fail_slot(p, s, -EPROTO);
    }
}

/* The ready ring's head has passed the entries from head_seen on, each taken by a
 * worker (its slot has a runner) or failed: a head written over (moved on) skipped some,
 * whose tasks nothing would run nor report.  Each such task fails with -EPROTO, found
 * through the parent's own copy of the ring; each position is looked at once (pool lock
 * and shared lock held). */
static void fail_passed(plait_procpool *p)
{
    pool_shm *sh = p->sh;
    uint64_t tail = sh->ready_tail;
    uint64_t head = tail - ring_count(p->nslots, sh->ready_head, tail);
    uint64_t from = p->head_seen;
    if (tail - from > p->nslots)
        from = tail - p->nslots;
    if (head - from <= p->nslots) /* else it moved back: nothing passed */
        for (uint64_t pos = from; pos != head; pos++) {
            uint32_t s = p->queued_slot[pos % p->nslots];
            if (p->queued_at[s] == pos && p->slot_task[s] && slot_waits(p, s) &&
                slot_at(p, s)->runner == 0)
                fail_slot(p, s, -EPROTO);
        }
    p->head_seen = head;
}

/* The code and result length that a worker left in slot s (shared lock held), read
 * once: -EPROTO for what store_outcome never writes. */
static int slot_outcome(plait_procpool *p, uint32_t s, size_t *len)
{
    int code = plait__code_read_back(slot_at(p, s)->code);
    uint64_t n = slot_at(p, s)->result_len;
    *len = 0;
    if (n > out_cap(p, p->slot_task[s]->fn))
        return -EPROTO;
    if (code == 0)
        *len = (size_t)n;
    return code;
}

/* The parent's own record that worker w's initialiser returned 0 (pool lock held). */
static void mark_initialised(plait_procpool *p, worker *w)
{
    if (!w->init_seen) {
        w->init_seen = true;
        p->init_unseen--;
    }
}

/* Worker runner (a pid, as a slot names it) took a task, so its initialiser had
 * returned (pool lock held). */
static void note_runner(plait_procpool *p, uint32_t runner)
{
    for (unsigned i = 0; i < p->nworkers && p->init_unseen; i++)
        if (p->workers[i].alive && (uint32_t)p->workers[i].pid == runner)
            mark_initialised(p, &p->workers[i]);
}

/* Take every finished slot off the done ring and settle its task. */
static void collect_cancel_off(plait_procpool *p)
{
    pool_shm *sh = p->sh;
    for (;;) {
        settle release = {NULL};
        plait__spin_lock(&p->lock);
        parent_lock(p);
        unsigned strays = atomic_load(&sh->strays);
        if (strays != p->strays_seen) { /* a worker dropped a ready-ring entry */
            p->strays_seen = strays;
            fail_lost(p);
        }
        if (sh->ready_head != p->head_seen)
            fail_passed(p);
        sh->done_head = sh->done_tail - ring_count(p->nslots, sh->done_head, sh->done_tail);
        bool any = sh->done_head != sh->done_tail;
        uint32_t s = any ? p->done[sh->done_head % p->nslots] : 0;
        int entry = any ? done_entry(p, s) : ENTRY_NONE;
        int code = 0;
        size_t len = 0;
        if (any)
            sh->done_head++;
        if (entry == ENTRY_NONE && any)
            fail_lost(p);
        if (entry != ENTRY_NONE) {
            ptask *t = p->slot_task[s];
            code = entry == ENTRY_BROKEN ? -EPROTO : t->failed ? t->failed
                                                              : slot_outcome(p, s, &len);
            if (p->init_unseen)
                note_runner(p, slot_at(p, s)->runner);
            /* taken: a worker that died between putting it on the ring and marking it
             * done left it RUNNING (or CANCELLED), which fail_running would fail again */
            slot_at(p, s)->state = SLOT_DONE;
        }
        plait__plock_unlock(&sh->lock);
        if (!any) {
            maybe_stop(p);
            bool stopped = p->stopped_flag;
            plait__spin_unlock(&p->lock);
            if (stopped)
                plait_event_set(p->stopped);
            return;
        }
        if (entry == ENTRY_NONE) {
            plait__spin_unlock(&p->lock);
            continue;
        }
        ptask *t = p->slot_task[s];
        task_slot *ts = slot_at(p, s);
        /* the result is copied before the slot is freed for another task; the slot lets
         * go of t first: once its future is complete, its joiner may free it */
        p->slot_task[s] = NULL;
        t->where = WHERE_DONE;
        plait__spin_unlock(&p->lock);
        finish(t, code, slot_result(p, s), len);
        plait__spin_lock(&p->lock);
        ts->state = SLOT_FREE;
        slot_freed(p, s, &release);
        plait__spin_unlock(&p->lock);
        for (ptask *r = release.head, *next; r; r = next) {
            next = r->next;
            plait__future_release(r->future);
        }
    }
}

/* collect with no cancellation point in it (internal.h): joiners and shutdowns
 * collect too, and a stale entry's look at its worker, waitid(2), is made under the
 * pool's lock and the shared lock. */
static void collect(plait_procpool *p)
{
    int cancel_state = plait__cancel_off();
    collect_cancel_off(p);
    plait__cancel_restore(cancel_state);
}

static bool all_initialised(const plait_procpool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++)
        if (!atomic_load(&p->wstate[i].init_done))
            return false;
    return true;
}

/* On the manager, while create waits for the first workers' initialisers: let it go on
 * once every one has returned 0, or the pool is broken (one failed, or its worker died
 * in it).  A worker that finished its initialiser writes the notify descriptor after
 * marking itself, so the last to finish is seen by a look after its mark. */
static void start_check(plait_procpool *p)
{
    if (!atomic_load(&p->starting))
        return;
    plait__spin_lock(&p->lock);
    bool settled = p->broken || all_initialised(p);
    if (settled)
        atomic_store(&p->starting, false);
    plait__spin_unlock(&p->lock);
    if (settled)
        plait_event_set(p->started);
}

static void notified(plait__mgr_source *src, uint32_t events)
{
    (void)events;
    plait_procpool *p = (plait_procpool *)src;
    uint64_t v;
    while (read(p->notify_fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    if (p->init) { /* a worker that said its initialiser returned (init_unseen stays 0
                    * without one: no lock taken for nothing on every notification) */
        plait__spin_lock(&p->lock);
        for (unsigned i = 0; i < p->nworkers && p->init_unseen; i++)
            if (p->workers[i].alive && atomic_load(&p->wstate[i].init_done))
                mark_initialised(p, &p->workers[i]);
        plait__spin_unlock(&p->lock);
    }
    start_check(p);
    collect(p);
}

/* ---- the parent: workers ---- */

/* How worker i's initialiser failed, as the worker says: 0 when it did not.  The word
 * is the workers' to write, and a task's memory bug can write over it: it counts only
 * in a pool with an initialiser, for a worker that has not said that its initialiser
 * returned 0, and a code that a failure never leaves there (not in [-4095, -1]) is
 * -EPROTO. */
static int init_failure(const plait_procpool *p, unsigned i)
{
    int32_t code = p->wstate[i].init_error;
    if (!p->init || code == 0 || atomic_load(&p->wstate[i].init_done))
        return 0;
    return plait__code_read_back(code);
}

static void worker_exited(plait__mgr_source *src, uint32_t events);
static bool retry_arm(plait_procpool *p);

/* On the manager: kill a worker that is not watched (any more), through its pidfd when
 * it has one (-1: none), and reap it, telling the shared objects of its death once it
 * is dead and before its pid can be reused: a lock that it held is released, and a
 * queue learns that a side has gone. */
static void worker_kill_unwatched(pid_t pid, int pidfd)
{
    idtype_t idtype = pidfd >= 0 ? P_PIDFD : P_PID;
    id_t id = pidfd >= 0 ? (id_t)pidfd : (id_t)pid;
    if (pidfd >= 0)
        plait__pidfd_kill(pidfd, SIGKILL);
    else
        kill(pid, SIGKILL);
    siginfo_t info;
    waitid(idtype, id, &info, WEXITED | WNOWAIT);
    plait__shared_child_died((unsigned)pid);
    waitid(idtype, id, &info, WEXITED);
}

/* Whether pid is a worker's that the pool still goes by (pool lock held): one dead,
 * reaped by someone else (SIGCHLD ignored), whose death the manager has not handled
 * yet.  A replacement forked with that pid was taken for it when its death was
 * handled: its running task failed, its slot went to another task, which got its
 * result, and the shared objects heard it had died. */
static bool worker_pid_taken(pid_t pid, const void *arg)
{
    const plait_procpool *p = arg;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i].alive && p->workers[i].pid == pid)
            return true;
    return false;
}

/* On the manager: fork worker i (pool lock held).  0 or -errno.  gone: a worker that
 * someone else reaped, whose death the shared objects hear of with this fork
 * (plait__fork_spec), or 0. */
static int worker_fork(plait_procpool *p, unsigned i, pid_t gone)
{
    worker *w = &p->workers[i];
    p->wstate[i].init_error = 0;
    atomic_store(&p->wstate[i].init_done, 0);
    atomic_store(&p->wstate[i].no_timer, 0);
    atomic_store_explicit(&p->wstate[i].cpu, -1, memory_order_relaxed);
    p->forking = i;
    pid_t pid;
    int r = plait__fork_child(&(plait__fork_spec){.caller = &p->caller, .child = worker_main,
                                                  .arg = p, .map = p->sh,
                                                  .map_size = p->map_size, .gone = gone,
                                                  .pid_taken = worker_pid_taken,
                                                  .pid_taken_arg = p},
                              &pid);
    if (r < 0)
        return r;
    int fd = plait__pidfd_open(pid);
    if (fd == -ESRCH) { /* killed from outside, and reaped already by the kernel (SIGCHLD
                         * ignored): it did nothing yet (worker_main waits for the pid) */
        plait__shared_child_died((unsigned)pid);
        int init_error = init_failure(p, i);
        return init_error ? init_error : -ECHILD;
    }
    if (fd < 0) {
        worker_kill_unwatched(pid, -1);
        return fd;
    }
    atomic_store(&p->wstate[i].pid, (unsigned)pid);
    plait__futex_wake_shared(&p->wstate[i].pid, INT32_MAX); /* it waits for this */
    w->pool = p;
    w->index = i;
    w->pid = pid;
    w->pidfd = fd;
    w->misbehaved = false;
    w->init_seen = !p->init;
    w->src.ready = worker_exited;
    r = plait__manager_watch(fd, &w->src);
    if (r < 0) {
        worker_kill_unwatched(pid, fd);
        close(fd);
        return r;
    }
    w->alive = true;
    p->alive++;
    if (!w->init_seen)
        p->init_unseen++;
    return 0;
}

/* Fail every queued slot with code (pool lock held; workers are gone or going): those
 * that the ready ring holds, and with -EPROTO those it lost (an entry written over, see
 * collect).  An entry that names a slot that does not wait to run is passed over. */
static void fail_queued(plait_procpool *p, int code)
{
    pool_shm *sh = p->sh;
    parent_lock(p);
    for (uint64_t k = ring_count(p->nslots, sh->ready_head, sh->ready_tail); k-- > 0;) {
        uint32_t s = p->ready[sh->ready_head % p->nslots];
        sh->ready_head++;
        if (s < p->nslots && p->slot_task[s] && slot_waits(p, s))
            fail_slot(p, s, code);
    }
    sh->ready_head = sh->ready_tail;
    fail_lost(p); /* after: also an entry passed over here, whose slot's state was
                   * written over while it waited */
    plait__plock_unlock(&sh->lock);
}

/* Whether a slot with a task names pid as its runner: that worker took a task (pool
 * lock held). */
static bool ran_a_task(plait_procpool *p, pid_t pid)
{
    bool ran = false;
    parent_lock(p);
    for (uint32_t s = 0; s < p->nslots && !ran; s++)
        ran = p->slot_task[s] && slot_at(p, s)->runner == (uint32_t)pid;
    plait__plock_unlock(&p->sh->lock);
    return ran;
}

/* The worker pid died with fate: the task it was running (or had just taken) fails
 * with it, and no other (pool lock held).  A slot with a task that is in neither ring
 * was taken by its runner, whatever its state says: a worker marks it done only as it
 * puts it on the done ring, and the state is the task's to write over (a slot that
 * said DONE or FREE was passed over, its task lost). */
static void fail_running(plait_procpool *p, pid_t pid, int fate)
{
    pool_shm *sh = p->sh;
    parent_lock(p);
    for (uint32_t s = 0; s < p->nslots; s++) {
        task_slot *ts = slot_at(p, s);
        ptask *t = p->slot_task[s];
        if (!t || ts->runner != (uint32_t)pid ||
            ring_has(p->ready, p->nslots, sh->ready_head, sh->ready_tail, s) ||
            ring_has(p->done, p->nslots, sh->done_head, sh->done_tail, s))
            continue;
        int code = fate ? fate : PLAIT_EXITED(0);
        if (t->cancel_requested)
            code = -ECANCELED;
        else if (ts->deadline && plait_now() >= ts->deadline &&
                 (PLAIT_KILL_SIGNAL(fate) == SIGKILL || fate == -ECHILD))
            code = -ETIMEDOUT; /* its timer's SIGKILL (-ECHILD: reaped unseen, where
                                * SIGCHLD is ignored, past its deadline all the same) */
        fail_slot(p, s, code);
    }
    plait__plock_unlock(&sh->lock);
}

/* Take the waiting list off the pool, to be failed outside the lock (pool lock held). */
static ptask *take_waiting(plait_procpool *p)
{
    ptask *t = p->waiting_head;
    p->waiting_head = p->waiting_tail = NULL;
    for (ptask *u = t; u; u = u->next)
        u->where = WHERE_DONE; /* out of a cancellation's reach from now on */
    return t;
}

static void fail_list(ptask *t, int code)
{
    while (t) {
        ptask *next = t->next;
        t->where = WHERE_DONE;
        finish(t, code, NULL, 0);
        t = next;
    }
}

static void worker_exited(plait__mgr_source *src, uint32_t events)
{
    (void)events;
    worker *w = (worker *)src;
    plait_procpool *p = w->pool;
    pool_shm *sh = p->sh;
    worker_state *ws = &p->wstate[w->index];
    siginfo_t info;
    int reaped = plait__reap_peek(w->pidfd, &info, &ws->pid);
    if (reaped == -EAGAIN) {
        plait__manager_not_yet(src); /* (traced: its tracer's to reap first) */
        return;
    }
    int fate = reaped < 0 ? reaped : plait__child_outcome(&info);
    plait__plock_release_dead(&sh->lock, (unsigned)w->pid);

    /* The dead worker stays a zombie (unless someone else reaped it) until its
     * replacement has been forked, and only then are the shared objects told of its
     * death: a queue whose only sender it was hears of the new, undecided holder first,
     * so its receivers are never told, for a moment, that every sender has died.  One
     * reaped by someone else (SIGCHLD ignored) is told of by the replacement's fork in
     * the same order (or here, where none is forked).  The task it ran fails only after
     * that (a joiner then finds it reaped). */
    pid_t dead_pid = w->pid;
    pid_t untold = reaped == -ECHILD ? dead_pid : 0; /* its death, not yet told */
    int dead_fd = w->pidfd;
    plait__spin_lock(&p->lock);
    plait__manager_unwatch(dead_fd);
    w->pidfd = -1; /* under the pool lock, where the others read it */
    atomic_store(&ws->pid, 0); /* its replacement's, if any, from the fork on */
    /* whether its initialiser had returned, by the parent's record first: the worker's
     * word may have been cleared by a task, which then ran (its slot names the worker) */
    bool past_init = w->init_seen || atomic_load(&ws->init_done) || ran_a_task(p, dead_pid);
    int init_error = past_init ? 0 : init_failure(p, w->index); /* before the fork clears it */
    /* it could not make its timer: a fork refused, in effect.  The word is the workers'
     * to write (see Distrust), so its exit status must say so too (the kernel's, which
     * no task writes over; where someone else reaped it, as with SIGCHLD ignored, the
     * word alone: a task would have to write it over and its worker end then) */
    bool no_timer = atomic_load(&ws->no_timer) &&
                    (fate == PLAIT_EXITED(NO_TIMER_STATUS) || fate == -ECHILD);
    if (w->misbehaved)
        fate = -EPROTO; /* killed for holding the shared lock (parent_lock) */
    if (!w->init_seen)
        p->init_unseen--;
    w->init_seen = false;
    w->alive = false;
    p->alive--;
    ptask *failed = NULL;
    if (init_error && !p->broken) {
        p->broken = init_error;
        failed = take_waiting(p);
    } else if (no_timer) {
        if (atomic_load(&p->starting) && !p->broken) { /* create fails, as for a fork */
            p->broken = -EAGAIN;
            failed = take_waiting(p);
        }
    } else if ((atomic_load(&p->starting) || p->init) && !past_init && !w->misbehaved &&
               !p->broken && !p->stop_sent && !p->cancelling) {
        /* it died while create waits for it, or in its initialiser: the pool breaks
         * with its fate, at create (which then fails) as later (a replacement dying in
         * its initialiser was forked again and again) — but not one that the parent
         * killed for the lock's word naming it (parent_lock): a scribble, not its
         * initialiser's doing (the pool broke with -EPROTO) */
        p->broken = fate ? fate : PLAIT_EXITED(0);
        failed = take_waiting(p);
    }
    int forked = 0;
    if (!p->broken && !p->stop_sent && !p->cancelling && no_timer) {
        forked = -EAGAIN; /* not at once: the timer retried with the fork, in 50 ms */
    } else if (!p->broken && !p->stop_sent && !p->cancelling) {
        /* stop is the workers' to write over too (see Distrust): the parent has not sent
         * it, so a worker that ended for it (every one does, once the ring is empty) is
         * replaced by one that must not end at once again (the pool forked in a loop) */
        parent_lock(p);
        sh->stop = 0;
        plait__plock_unlock(&sh->lock);
        forked = worker_fork(p, w->index, untold);
        untold = 0;
    }
    int new_init_error = forked < 0 ? init_failure(p, w->index) : 0;
    if (new_init_error) {
        /* the new worker's initialiser failed, and it was gone before it was watched */
        p->broken = new_init_error;
        failed = take_waiting(p);
    } else if (forked < 0) {
        /* no timer for the retry either (the descriptors ran out: the replacement's
         * pidfd, then the timerfd): the next submit has the manager try (the pool
         * once broke for good, though descriptors came back) — unless create waits
         * for this worker's initialiser: no submit can come before it returns (it
         * waited for ever), so it fails, as at its first forks */
        bool armed = retry_arm(p);
        if (!armed && atomic_load(&p->starting)) {
            p->broken = forked;
            failed = take_waiting(p);
        }
        p->retry_due = !armed && !p->broken;
        /* none left for now: what waits fails (nothing would run it), and submit
         * refuses until the retry has forked a worker (a process limit reached for a
         * moment once broke the pool for good) */
        if (p->alive == 0)
            p->starved = -EAGAIN;
    }
    int fail_code = p->broken ? p->broken : p->starved;
    if (fail_code && p->alive == 0) {
        fail_queued(p, fail_code);
        if (!failed)
            failed = take_waiting(p);
    }
    if (p->stop_sent && p->alive == 0)
        p->stopped_flag = true;
    plait__spin_unlock(&p->lock);
    if (reaped == 0)
        plait__reap_finish(dead_fd, dead_pid);
    else if (untold)
        plait__shared_child_died((unsigned)untold);
    close(dead_fd);
    plait__spin_lock(&p->lock);
    fail_running(p, dead_pid, fate);
    plait__spin_unlock(&p->lock);
    fail_list(failed, init_error ? init_error : fail_code);
    start_check(p);
    collect(p);
}

/* On the manager: fork the workers whose replacement could not be forked, and arm the
 * timer again while some still cannot be. */
static void retry_workers(void *arg)
{
    plait_procpool *p = arg;
    ptask *failed = NULL;
    plait__spin_lock(&p->lock);
    bool short_of_one = false;
    for (unsigned i = 0; i < p->nworkers && !short_of_one; i++) {
        if (p->workers[i].alive || p->broken || p->stop_sent || p->cancelling)
            continue;
        if (worker_fork(p, i, 0) < 0) {
            int init_error = init_failure(p, i);
            if (init_error) { /* its initialiser failed, and it is gone */
                p->broken = init_error;
                failed = take_waiting(p);
            } else {
                short_of_one = true;
            }
        }
    }
    if (p->alive)
        p->starved = 0;
    else if (short_of_one)
        p->starved = -EAGAIN;
    p->retry_due = short_of_one && !retry_arm(p); /* as in worker_exited */
    int code = p->broken;
    if (code && p->alive == 0) {
        fail_queued(p, code);
        if (!failed)
            failed = take_waiting(p);
    }
    plait__spin_unlock(&p->lock);
    fail_list(failed, code);
    collect(p);
}

/* On the manager, when the retry timer expires. */
static void retry_fired(plait__mgr_source *src, uint32_t events)
{
    (void)events;
    plait_procpool *p = ((struct retry *)src)->pool;
    uint64_t v;
    while (read(p->retry.fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    retry_workers(p);
}

/* On the manager: fork the missing workers again in a while (pool lock held).  false
 * when no timer can be had. */
static bool retry_arm(plait_procpool *p)
{
    if (p->retry.fd < 0) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
            return false;
        p->retry.src.ready = retry_fired;
        p->retry.pool = p;
        if (plait__manager_watch(fd, &p->retry.src) < 0) {
            close(fd);
            return false;
        }
        p->retry.fd = fd;
    }
    struct itimerspec its = {.it_value = {0, 50 * PLAIT_MS}};
    return timerfd_settime(p->retry.fd, 0, &its, NULL) == 0;
}

/* Kill the worker that runs slot s (pool lock and shared lock held).  Under the
 * shared lock the worker cannot finish the task and move on to another: the one killed
 * is the one running s.  Its pidfd stays open while the pool lock is held. */
static void kill_runner(plait_procpool *p, int32_t s)
{
    uint32_t runner = slot_at(p, (uint32_t)s)->runner;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i].alive && (uint32_t)p->workers[i].pid == runner)
            plait__pidfd_kill(p->workers[i].pidfd, SIGKILL);
}

/* ---- futures of pool tasks ---- */

static bool ptask_cancel(plait__future *f)
{
    ptask *t = f->ext;
    plait_procpool *p = t->pool;
    bool withdrawn = false;
    plait__spin_lock(&p->lock); /* in the owner: plait_cancel refuses a child's copy */
    if (t->where == WHERE_PENDING) {
        t->withdrawn = withdrawn = true;
    } else if (t->where == WHERE_SLOT) {
        task_slot *ts = slot_at(p, (uint32_t)t->slot);
        parent_lock(p);
        if (ts->state == SLOT_QUEUED) {
            ts->state = SLOT_CANCELLED;
            t->withdrawn = withdrawn = true;
        } else if (ts->state == SLOT_RUNNING) {
            t->cancel_requested = true;
            kill_runner(p, t->slot);
        }
        plait__plock_unlock(&p->sh->lock);
    }
    plait__spin_unlock(&p->lock);
    return withdrawn;
}

/* Whether a worker may run on another CPU than the caller's, as far as the workers'
 * last tasks tell (a hint: the words are the workers' to write).  Where every worker
 * took its last task on the caller's CPU (all pinned to one, or a machine of one), a
 * joiner that looks again before it sleeps only yields that CPU to the worker, which
 * then finishes with nobody asleep to wake, and wakes the manager thread instead: a
 * third party on the one CPU, 13-15 us a round trip against a raw futex ping-pong's
 * 5 (docs/BENCHMARKS.md).  Such a joiner sleeps at once. */
static bool workers_elsewhere(const plait_procpool *p)
{
    int me = sched_getcpu();
    for (unsigned i = 0; i < p->nworkers; i++)
        if (atomic_load_explicit(&p->wstate[i].cpu, memory_order_relaxed) != me)
            return true;
    return false;
}

/* A plain thread joining a pool task waits for the workers' completions itself and
 * collects them (all of them, not only its own), instead of waiting for the manager
 * thread to be woken and to wake it: one wake-up less per round trip.  It sleeps on the
 * pool's done word as a joiner of its own future too, so it wakes when a worker
 * finishes anything (a worker wakes the sleeping joiners instead of the manager) and
 * when its future completes by any other path (a cancellation, a crash seen by the
 * manager).  A joiner that stops waiting collects once more after it has stopped
 * counting as asleep, so what a worker left to it is never stranded.  The pool cannot
 * be freed while a joiner helps: it counts itself in `helpers` under its future's lock
 * while that future is not done, and destroy, which comes after every task is done,
 * waits for the count to fall. */
static void ptask_help(plait__future *f, int64_t deadline)
{
    ptask *t = f->ext;
    plait_procpool *p = t->pool;
    if (plait__fork_epoch() != t->epoch)
        return; /* a copy in a forked child: nothing of the parent's pool to collect */
    plait__spin_lock(&f->lock);
    bool done = atomic_load_explicit(&f->done, memory_order_relaxed);
    if (!done)
        atomic_fetch_add(&p->helpers, 1);
    plait__spin_unlock(&f->lock);
    if (done)
        return;
    pool_shm *sh = p->sh;
    for (;;) {
        unsigned seq = atomic_load(&sh->done_seq);
        collect(p);
        if (atomic_load_explicit(&f->done, memory_order_acquire))
            break;
        if (workers_elsewhere(p) &&
            plait__spin_while(&sh->done_seq, seq, SPIN_NS, PLAIT_FOREVER))
            continue;
        plait__waiter w;
        plait__wait_node node;
        plait__waiter_init(&w, "process pool", p);
        w.shared_word = &sh->done_seq;
        w.shared_expected = seq;
        plait__spin_lock(&f->lock);
        done = atomic_load_explicit(&f->done, memory_order_relaxed);
        if (!done)
            plait__joiner_push(f, &node, &w, 0);
        plait__spin_unlock(&f->lock);
        if (done)
            break;
        atomic_fetch_add(&sh->helpers_asleep, 1);
        int r = plait__waiter_block(&w, deadline);
        atomic_fetch_sub(&sh->helpers_asleep, 1);
        plait__joiner_unlink(&node);
        if (r < 0) {
            collect(p);
            break;
        }
    }
    atomic_fetch_sub(&p->helpers, 1);
}

static void ptask_release(plait__future *f)
{
    ptask *t = f->ext;
    free(f->value);
    free(t->arg);
    free(t);
}

static const plait__future_ops ptask_ops = {ptask_cancel, ptask_release, ptask_help, NULL};

/* ---- the public calls ---- */

static void pool_start(void *arg)
{
    plait_procpool *p = arg;
    p->src.ready = notified;
    int r = plait__manager_watch(p->notify_fd, &p->src);
    plait__spin_lock(&p->lock);
    for (unsigned i = 0; r == 0 && i < p->nworkers; i++)
        r = worker_fork(p, i, 0);
    plait__spin_unlock(&p->lock);
    if (r < 0)
        p->broken = r;
    start_check(p);
}

/* With pthread cancellation off (internal.h): close(2) is a cancellation point, and a
 * destroy or failed create cancelled there left the rest of the pool. */
static void pool_free(plait_procpool *p)
{
    int cancel_state = plait__cancel_off();
    if (p->notify_fd >= 0)
        close(p->notify_fd);
    if (p->retry.fd >= 0)
        close(p->retry.fd);
    plait__cancel_restore(cancel_state);
    if (p->sh)
        plait__shared_unmap(p->sh, p->map_size);
    if (p->started)
        plait_event_destroy(p->started);
    if (p->stopped)
        plait_event_destroy(p->stopped);
    free(p->slot_task);
    free(p->queued_slot);
    free(p->queued_at);
    free(p->free_slots);
    free(p->workers);
    free(p);
}

/* On the manager: stop watching the pool, and make sure no worker is left. */
static void pool_detach(void *arg)
{
    plait_procpool *p = arg;
    plait__manager_unwatch(p->notify_fd);
    if (p->retry.fd >= 0)
        plait__manager_unwatch(p->retry.fd);
    for (unsigned i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        if (!w->alive)
            continue;
        plait__manager_unwatch(w->pidfd);
        worker_kill_unwatched(w->pid, w->pidfd);
        close(w->pidfd);
        w->alive = false;
    }
}

int plait_procpool_create(plait_procpool **pool, const plait_procpool_options *o)
{
    if (!pool)
        return -EINVAL;
    unsigned n = o && o->processes ? o->processes : (unsigned)plait_cpu_count();
    if (!(o && o->processes) && n > PLAIT_PROCPOOL_MAX)
        n = PLAIT_PROCPOOL_MAX; /* sized from the CPUs: as many as allowed (as pool.c) */
    size_t arg_max = o && o->arg_max ? o->arg_max : PLAIT_RESULT_DEFAULT;
    size_t result_max = o && o->result_max ? o->result_max : PLAIT_RESULT_DEFAULT;
    if (n > PLAIT_PROCPOOL_MAX || arg_max > PLAIT_RESULT_MAX || result_max > PLAIT_RESULT_MAX ||
        (o && o->task_timeout < 0))
        return -EINVAL;
    plait_procpool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->owner = plait__pid();
    p->epoch = plait__fork_epoch();
    p->nworkers = n;
    p->nslots = 2 * n + 2;
    p->arg_max = arg_max;
    p->result_max = result_max;
    p->arg_room = arg_max + PLAIT__MAP_ARG_EXTRA;
    p->result_room = result_max + PLAIT__MAP_RESULT_EXTRA;
    p->init = o ? o->init : NULL;
    p->init_arg = o ? o->init_arg : NULL;
    p->max_tasks = o ? o->max_tasks : 0;
    p->task_timeout = o ? o->task_timeout : 0;
    p->retry.fd = -1;
    p->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int r = p->notify_fd < 0 ? -errno : 0; /* -EMFILE, -ENFILE, -ENOMEM */
    if (r == 0 && fcntl(p->notify_fd, F_SETOWN, (pid_t)p->owner) < 0) /* notify_intact */
        r = -errno;
    plait__caller_take(&p->caller);
    p->slot_size =
        align_up(sizeof(task_slot)) + align_up(p->arg_room) + align_up(p->result_room);
    size_t ring_bytes = align_up(2 * p->nslots * sizeof(uint32_t));
    size_t ws_bytes = align_up(n * sizeof(worker_state));
    p->map_size = align_up(sizeof(pool_shm)) + ring_bytes + ws_bytes + p->nslots * p->slot_size;
    char *base = plait__shared_map(p->map_size);
    if (base)
        plait__keep_from_children(base, p->map_size); /* its workers' alone */
    p->slot_task = calloc(p->nslots, sizeof *p->slot_task);
    p->free_slots = calloc(p->nslots, sizeof *p->free_slots);
    p->queued_slot = calloc(p->nslots, sizeof *p->queued_slot);
    p->queued_at = calloc(p->nslots, sizeof *p->queued_at);
    p->workers = calloc(n, sizeof *p->workers);
    if (r == 0)
        r = !base || !p->slot_task || !p->free_slots || !p->queued_slot || !p->queued_at ||
                    !p->workers
                ? -ENOMEM
                : plait_event_create(&p->stopped);
    if (r == 0)
        r = plait_event_create(&p->started);
    if (base) {
        p->sh = (pool_shm *)base;
        p->ready = (uint32_t *)(base + align_up(sizeof(pool_shm)));
        p->done = p->ready + p->nslots;
        p->wstate = (worker_state *)(base + align_up(sizeof(pool_shm)) + ring_bytes);
        p->slots = base + align_up(sizeof(pool_shm)) + ring_bytes + ws_bytes;
    }
    if (r < 0) {
        pool_free(p);
        return r;
    }
    for (unsigned s = p->nslots; s-- > 0;)
        p->free_slots[p->nfree++] = s;
    atomic_store(&p->starting, p->init != NULL);
    plait__flush_before_fork();
    r = plait__manager_call(pool_start, p);
    /* wait until the first workers' initialisers have returned or the pool broke
     * (start_check); the manager writes broken meanwhile */
    if (r == 0 && p->init)
        r = plait_event_wait(p->started, PLAIT_FOREVER);
    plait__spin_lock(&p->lock);
    if (r == 0)
        r = p->broken;
    plait__spin_unlock(&p->lock);
    if (r < 0) {
        plait__manager_call(pool_detach, p);
        pool_free(p);
        return r;
    }
    *pool = p;
    return 0;
}

int plait__procpool_submit(plait_procpool *pool, plait_task *task, plait_proc_fn fn,
                           const void *head, size_t head_len, const void *body,
                           size_t body_len, plait__procpool_deliver deliver, void *ctx,
                           size_t tag)
{
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    size_t arg_len = head_len + body_len;
    if (arg_len > (fn == plait__procpool_chunk_run ? pool->arg_room : pool->arg_max))
        return -EMSGSIZE;
    ptask *t = malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    *t = (ptask){.pool = pool, .epoch = pool->epoch, .fn = fn, .where = WHERE_PENDING,
                 .slot = NO_SLOT,
                 .deliver = deliver ? deliver : deliver_bytes, .deliver_ctx = ctx,
                 .deliver_tag = tag, .arg_len = arg_len};
    plait_task handle;
    t->future = plait__future_start_ext(&ptask_ops, t, &handle);
    if (!t->future) {
        free(t);
        return -ENOMEM;
    }
    int r;
    bool retried = false;
    for (;;) {
        plait__spin_lock(&pool->lock);
        if (pool->retry_due && !retried && !pool->closed && !pool->broken) {
            /* no retry timer could be had: the manager tries now, once */
            plait__spin_unlock(&pool->lock);
            retried = true;
            (void)plait__manager_call(retry_workers, pool);
            continue;
        }
        r = pool->closed ? -EPIPE : pool->broken ? pool->broken : pool->starved;
        if (r == 0 && pool->nfree) { /* straight into a slot */
            dispatch(pool, t, pool->free_slots[--pool->nfree], head, head_len, body, body_len);
        } else if (r == 0 && t->arg) { /* to wait for a slot, with its own copy */
            if (pool->waiting_tail)
                pool->waiting_tail->next = t;
            else
                pool->waiting_head = t;
            pool->waiting_tail = t;
        } else if (r == 0) { /* copy the argument (not under the lock), then look again */
            plait__spin_unlock(&pool->lock);
            t->arg = malloc(arg_len ? arg_len : 1);
            if (!t->arg) {
                r = -ENOMEM;
                break;
            }
            if (head_len)
                memcpy(t->arg, head, head_len);
            if (body_len)
                memcpy(t->arg + head_len, body, body_len);
            head = t->arg;
            head_len = arg_len;
            body = NULL;
            body_len = 0;
            continue;
        }
        plait__spin_unlock(&pool->lock);
        break;
    }
    if (r < 0) {
        plait__future_complete(t->future, NULL, r); /* the release hook frees t */
        plait_detach(handle);
        return r;
    }
    if (task)
        *task = handle;
    else
        plait_detach(handle);
    return 0;
}

int plait_procpool_submit(plait_procpool *pool, plait_task *task, plait_proc_fn fn,
                          const void *arg, size_t arg_len)
{
    if (!pool || !fn || (!arg && arg_len))
        return -EINVAL;
    return plait__procpool_submit(pool, task, fn, arg, arg_len, NULL, 0, NULL, NULL, 0);
}

/* Whether worker i (alive) is still in its initialiser, as the parent saw or the worker
 * says (pool lock held). */
static bool in_initialiser(const plait_procpool *p, unsigned i)
{
    return !p->workers[i].init_seen && !atomic_load(&p->wstate[i].init_done);
}

/* Whether the workers are only exiting (pool lock held): the pool is shut, no task is
 * queued, none holds a slot (a slot whose task has completed is freed by the same pass
 * of collect, which then sends the stop), and every worker alive is past its
 * initialiser, as the parent saw or the worker says (a word a task could write over:
 * at worst a shutdown then waits past its deadline for an initialiser, which destroy
 * waits for anyway).  A worker still in its initialiser may take any time: the
 * deadline holds for it. */
static bool only_exiting(const plait_procpool *p)
{
    if (!p->closed || p->waiting_head)
        return false;
    for (unsigned s = 0; s < p->nslots; s++)
        if (p->slot_task[s])
            return false;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i].alive && in_initialiser(p, i))
            return false;
    return true;
}

/* Wait until the shut pool has stopped: -ETIMEDOUT at the deadline while a task still
 * runs or is queued, or a worker is in its initialiser.  Workers with no task left are
 * only exiting: they are waited for past the deadline (a past one included), as the
 * thread pool's are, but EXIT_GRACE_NS at most from when that was first seen, and are
 * then killed (they hold nothing: their slots are free) and waited for. */
static int wait_stopped(plait_procpool *pool, int64_t deadline, bool cancellable)
{
    int64_t exiting_since = 0; /* 0: not seen yet */
    for (;;) {
        int64_t until = exiting_since ? exiting_since + EXIT_GRACE_NS
                                      : plait_deadline_in(EXIT_LOOK_NS);
        if (!exiting_since && deadline < until)
            until = deadline;
        int r = plait__event_wait(pool->stopped, until, cancellable);
        if (r != -ETIMEDOUT)
            return r;
        plait__spin_lock(&pool->lock);
        bool exiting = only_exiting(pool);
        bool kill_them = exiting && exiting_since && plait_now() >= exiting_since + EXIT_GRACE_NS;
        for (unsigned i = 0; kill_them && i < pool->nworkers; i++)
            if (pool->workers[i].alive)
                plait__pidfd_kill(pool->workers[i].pidfd, SIGKILL);
        plait__spin_unlock(&pool->lock);
        if (!exiting && plait__deadline_passed(deadline))
            return -ETIMEDOUT;
        /* (killed: another grace for their ends to be seen, then again) */
        exiting_since = !exiting ? 0 : exiting_since && !kill_them ? exiting_since : plait_now();
    }
}

/* cancellable: false for destroy, which is clean-up and must finish (as a thread pool's,
 * and a group's): a cancelled caller's wait for the workers would end at once. */
static int shutdown_pool(plait_procpool *pool, int how, int64_t deadline, bool cancellable)
{
    if (!pool)
        return -EINVAL;
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    if (how != PLAIT_POOL_DRAIN && how != PLAIT_POOL_CANCEL)
        return -EINVAL;
    ptask *cancelled = NULL;
    plait__spin_lock(&pool->lock);
    pool->closed = true;
    if (how == PLAIT_POOL_CANCEL) {
        /* queued tasks fail now (no worker is replaced from here on, so none might be
         * left to take them); running ones are killed */
        pool->cancelling = true;
        cancelled = take_waiting(pool);
        fail_queued(pool, -ECANCELED);
        parent_lock(pool);
        for (unsigned s = 0; s < pool->nslots; s++) {
            ptask *t = pool->slot_task[s];
            if (t && t->where == WHERE_SLOT && slot_at(pool, s)->state == SLOT_RUNNING) {
                t->cancel_requested = true;
                kill_runner(pool, (int32_t)s);
            }
        }
        plait__plock_unlock(&pool->sh->lock);
        /* and workers still in their initialiser (replacements), which may never
         * return: this is the escalation a shutdown timed out on them is told of */
        for (unsigned i = 0; i < pool->nworkers; i++)
            if (pool->workers[i].alive && in_initialiser(pool, i))
                plait__pidfd_kill(pool->workers[i].pidfd, SIGKILL);
    }
    maybe_stop(pool);
    bool stopped = pool->stopped_flag;
    plait__spin_unlock(&pool->lock);
    fail_list(cancelled, -ECANCELED);
    collect(pool); /* what fail_queued moved to the done ring */
    if (stopped)
        plait_event_set(pool->stopped);
    return wait_stopped(pool, deadline, cancellable);
}

int plait_procpool_shutdown(plait_procpool *pool, int how, int64_t deadline)
{
    if (!pool)
        return -EINVAL;
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    atomic_fetch_add(&pool->shutting, 1);
    int r = shutdown_pool(pool, how, deadline, true);
    atomic_fetch_sub(&pool->shutting, 1); /* the last touch of the pool */
    return r;
}

int plait_procpool_destroy(plait_procpool *pool)
{
    if (!pool)
        return -EINVAL;
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    if (atomic_load(&pool->iters))
        return -EBUSY; /* an iterator would use the freed pool */
    plait__spin_lock(&pool->lock);
    bool stopped = pool->stopped_flag;
    plait__spin_unlock(&pool->lock);
    if (!stopped) {
        int r = shutdown_pool(pool, PLAIT_POOL_DRAIN, PLAIT_FOREVER, false);
        if (r < 0)
            return r;
    }
    /* looked at once stopped, so that a shutdown that began meanwhile is seen too (its
     * last touch, the decrement, comes before the free), as for a thread pool */
    if (atomic_load(&pool->shutting))
        return -EBUSY; /* another caller is inside plait_procpool_shutdown */
    plait__manager_call(pool_detach, pool);
    while (atomic_load(&pool->helpers)) /* a joiner finishing its last collect */
        sched_yield();
    pool_free(pool);
    return 0;
}

void plait__procpool_count_iter(plait_procpool *pool, int delta)
{
    atomic_fetch_add(&pool->iters, (unsigned)delta);
}

size_t plait__procpool_arg_max(const plait_procpool *pool) { return pool->arg_room; }

size_t plait__procpool_result_max(const plait_procpool *pool) { return pool->result_room; }

unsigned plait_procpool_processes(const plait_procpool *pool)
{
    return pool ? pool->nworkers : 0;
}

int plait_procpool_pids(plait_procpool *pool, int *pids, unsigned n)
{
    if (!pool || !pids)
        return -EINVAL;
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    /* the parent's own record: the workers' pid words are theirs to write over */
    unsigned k = 0;
    plait__spin_lock(&pool->lock);
    for (unsigned i = 0; i < pool->nworkers && k < n; i++)
        if (pool->workers[i].alive)
            pids[k++] = (int)pool->workers[i].pid;
    plait__spin_unlock(&pool->lock);
    return (int)k;
}
