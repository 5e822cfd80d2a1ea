/*
 * process.c — the process strand: a function or a program in a child process, whose
 * outcome is a future like a coroutine's or a thread's; and the manager thread that
 * forks every child plait starts and reaps it.
 *
 * Why one manager thread.  A child must not outlive its parent silently, so each child
 * asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG).  Linux sends
 * that signal when the *thread* that forked the child ends, not the process: a child
 * forked by a short-lived thread (a pool worker, a scheduler thread) would be killed
 * with it.  So every fork happens on one thread that lives as long as the process,
 * "plait-procs": callers hand it the work (plait__manager_call) and wait, coroutines
 * without blocking their scheduler.  The same thread watches every child's pidfd in an
 * epoll set, so a child's exit is seen the moment it happens, without polling and
 * without SIGCHLD, and it completes the child's future: a coroutine awaiting a process
 * is just a coroutine waiting on a future.  Process pools watch their workers and
 * their result notifications from the same epoll set (plait__manager_watch).
 *
 * The fork itself.  fork() runs the fork handlers (fork.c), which take plait's global
 * locks in the parent and reset them and plait's threads (this manager, the default
 * pool, the shared-futex watchers) in the child, so a child never deadlocks on a lock
 * some other thread of the parent held at the fork.  Standard streams are flushed
 * before the fork so that the child does not print the parent's buffered output twice.
 * The manager runs with every signal blocked; the child gets the caller's mask back, and
 * its no_new_privs, CPU affinity and name (plait__caller).
 *
 * A function child runs fn(arg) — the argument is the parent's memory as it was at
 * the fork, copy-on-write, so nothing is serialised — writes its result into a shared
 * mapping made before the fork, and calls _exit (no atexit handlers of the parent's
 * program run twice).  The parent reads the result from that mapping when the child
 * has been reaped.  A child that exits or dies before fn returns fails its task with
 * PLAIT_EXITED(status) or PLAIT_KILLED(signal); one whose setup (working directory,
 * streams) fails leaves that -errno as its outcome instead of calling fn.
 *
 * A program child (exec) reports a failed exec through a close-on-exec pipe: the
 * parent reads it until end of file (exec happened) or an errno (it did not: the call
 * returns that error and the child is reaped at once).  The manager does not wait for
 * that: it watches the pipe in its epoll set (exec_decided) and goes on with its other
 * work, and the caller's request is done when the pipe speaks, for an exec can take
 * long (a lease on the file, a stopped file system, a child stopped before its exec)
 * and every other start and end would have waited behind it.  End of file comes only when
 * every copy of the pipe's write end is closed, so no other child may keep one:
 * plait's other children are forked by this same thread after it has closed its copy,
 * and the child of a plain fork() the program makes in another thread meanwhile closes
 * the descriptors made for the start (that pipe's write end, the program's stream
 * ends), which the manager records under the spawn lock (plait__spawn_atfork).
 *
 * Reaping.  When a pidfd becomes readable the manager first looks at the exit status
 * without reaping (WNOWAIT) and tells the process-shared objects that this pid is gone
 * (a dead holder's locks are released, a queue's side may have died), then reaps, so
 * the pid cannot be reused before they have heard.  A process pool tells them only
 * after it has forked the dead worker's replacement (procpool.c).  The pidfd stays open until the
 * future is let go: plait_process_kill() on an ended process answers -ESRCH and can
 * never reach a process that reused the pid.  Nor can the pidfd itself: the child runs
 * nothing until the manager has opened it (wait_for_go), so it cannot have ended and
 * been reaped by someone else (SIGCHLD ignored, the program's waitpid(-1)), its pid
 * given to another process, before pidfd_open looks the pid up.
 */
#include "internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef PLAIT_COVERAGE /* scripts/test.sh coverage: gcc --coverage's runtime */
void __gcov_dump(void);
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

extern char **environ;

/* ---- the manager thread ---- */

/* A caller's request, on its stack until the manager says it is done.  One made by
 * plait__manager_call is done when fn returns; one made by manager_call_held is done
 * when held_fn, or what it left the manager watching, calls request_done. */
typedef struct mgr_request {
    void (*fn)(void *arg);
    void (*held_fn)(void *arg, struct mgr_request *req);
    void *arg;
    struct mgr_request *next;
    plait__spinlock lock;
    plait__waitq waiters;
    bool done;
} mgr_request;

static pthread_mutex_t mgr_start_lock = PTHREAD_MUTEX_INITIALIZER;
static bool mgr_started;
static unsigned mgr_epoch; /* the fork epoch whose manager it is (a child of _Fork()'s
                            * is not) */
static pthread_t mgr_thread;
static int mgr_epfd = -1, mgr_ctl_fd = -1;
static plait__spinlock mgr_lock;
static mgr_request *mgr_head, *mgr_tail;

/* On the manager: req is done; its caller goes on (req, on its stack, is not touched
 * again). */
static void request_done(mgr_request *req)
{
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&req->lock);
    req->done = true;
    plait__waitq_wake_all(&req->waiters, &later);
    plait__spin_unlock(&req->lock);
    plait__wakeups_deliver(&later);
}

static void run_requests(void)
{
    uint64_t v;
    while (read(mgr_ctl_fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    plait__spin_lock(&mgr_lock);
    mgr_request *req = mgr_head;
    mgr_head = mgr_tail = NULL;
    plait__spin_unlock(&mgr_lock);
    while (req) {
        mgr_request *next = req->next;
        if (req->fn) {
            req->fn(req->arg);
            request_done(req);
        } else {
            req->held_fn(req->arg, req);
        }
        req = next;
    }
}

/* Sources ready with nothing to act on yet (manager thread only).  A traced child's
 * pidfd is readable once the child has ended, but its status is its tracer's until
 * the tracer reaps it or lets it go (a debugger attached, strace): watched
 * level-triggered, it was reported again at once, and the manager spun at 100 % CPU
 * for as long as that took.  Such a source leaves the set for a pause that doubles,
 * 1 ms to 100 ms, and comes back (later_due); a change of the tracer's is seen that
 * late at most. */
static plait__mgr_source *mgr_later;
enum { LATER_FIRST_NS = 1000 * 1000, LATER_MOST_NS = 100 * 1000 * 1000 };

void plait__manager_not_yet(plait__mgr_source *src)
{
    epoll_ctl(mgr_epfd, EPOLL_CTL_DEL, src->fd, NULL);
    src->pause = src->pause ? src->pause * 2 : LATER_FIRST_NS;
    if (src->pause > LATER_MOST_NS)
        src->pause = LATER_MOST_NS;
    src->due = plait_now() + src->pause;
    src->later_next = mgr_later;
    mgr_later = src;
}

/* The manager's wait: until the first paused source is due (ms, rounded up), or -1. */
static int later_wait_ms(void)
{
    if (!mgr_later)
        return -1;
    int64_t first = INT64_MAX;
    for (plait__mgr_source *s = mgr_later; s; s = s->later_next)
        first = s->due < first ? s->due : first;
    int64_t left = first - plait_now();
    return left <= 0 ? 0 : (int)((left + PLAIT_MS - 1) / PLAIT_MS);
}

/* Watch the paused sources that are due again (one the set refuses, for memory,
 * pauses once more). */
static void later_due(void)
{
    int64_t now = plait_now();
    for (plait__mgr_source **at = &mgr_later; *at;) {
        plait__mgr_source *s = *at;
        if (s->due > now) {
            at = &s->later_next;
            continue;
        }
        *at = s->later_next;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        if (epoll_ctl(mgr_epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
            plait__manager_not_yet(s);
    }
}

static void *manager_main(void *unused)
{
    (void)unused;
    pthread_setname_np(pthread_self(), "plait-procs"); /* see plait__thread_create */
    struct epoll_event evs[32];
    for (;;) {
        int n = epoll_wait(mgr_epfd, evs, 32, later_wait_ms());
        later_due();
        for (int i = 0; i < n; i++) {
            plait__mgr_source *src = evs[i].data.ptr;
            if (src) {
                src->ready(src, evs[i].events);
            } else {
                /* a request may stop watching (and free) the sources of the events
                 * after it in this batch: wait again instead (they are level-triggered,
                 * so what is still ready is reported again) */
                run_requests();
                break;
            }
        }
    }
    return NULL;
}

/* In a child: the manager thread is not there, and its descriptors are the parent's
 * epoll set and eventfd, shared with it.  The fork handler closes them where they are
 * the forking process's (nothing ran in the child before it); a child of _Fork(), found
 * out later, leaves the numbers alone, as does a fork handler for those of an older
 * epoch: the program may have closed them since (close_range after a fork is common)
 * and opened files of its own there, which a close here took from it. */
static void forget_the_parents_manager(bool close_its_descriptors)
{
    atomic_store(&mgr_lock.held, 0);
    mgr_head = mgr_tail = NULL;
    mgr_later = NULL;
    if (mgr_started && close_its_descriptors) {
        close(mgr_epfd);
        close(mgr_ctl_fd);
    }
    mgr_epfd = mgr_ctl_fd = -1;
    mgr_started = false;
}

/* With pthread cancellation off (internal.h): a start that failed closes what it made,
 * close(2) a cancellation point, under mgr_start_lock. */
static int manager_start_cancel_off(void)
{
    plait__fork_init();
    pthread_mutex_lock(&mgr_start_lock);
    int r = 0;
    /* A child of _Fork() (no fork handlers) looks started, but its requests went to
     * the parent's manager, through the eventfd they share, and waited for ever. */
    if (mgr_started && mgr_epoch != plait__fork_epoch())
        forget_the_parents_manager(false);
    if (!mgr_started) {
        mgr_epfd = epoll_create1(EPOLL_CLOEXEC);
        mgr_ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (mgr_epfd < 0 || mgr_ctl_fd < 0 ||
            epoll_ctl(mgr_epfd, EPOLL_CTL_ADD, mgr_ctl_fd, &ev) < 0) {
            r = -errno;
        } else {
            /* every signal blocked: the program's signals go to its own threads, and
             * the children get the caller's mask back explicitly */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            pthread_attr_t attr;
            r = -pthread_attr_init(&attr);
            if (r == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                /* a function child runs on (a copy of) this stack */
                pthread_attr_setstacksize(&attr, 8u << 20);
                r = -plait__thread_create(&mgr_thread, &attr, manager_main, NULL);
                pthread_attr_destroy(&attr);
            }
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (r == 0) {
            mgr_started = true;
            mgr_epoch = plait__fork_epoch();
        } else {
            if (mgr_epfd >= 0)
                close(mgr_epfd);
            if (mgr_ctl_fd >= 0)
                close(mgr_ctl_fd);
            mgr_epfd = mgr_ctl_fd = -1;
        }
    }
    pthread_mutex_unlock(&mgr_start_lock);
    return r;
}

static int manager_start(void)
{
    int cancel_state = plait__cancel_off();
    int r = manager_start_cancel_off();
    plait__cancel_restore(cancel_state);
    return r;
}

bool plait__on_manager(void)
{
    return mgr_started && pthread_equal(pthread_self(), mgr_thread);
}

/* Hand req to the (started) manager and wait until it is done. */
static void queue_and_wait(mgr_request *req)
{
    plait__spin_lock(&mgr_lock);
    if (mgr_tail)
        mgr_tail->next = req;
    else
        mgr_head = req;
    mgr_tail = req;
    plait__spin_unlock(&mgr_lock);
    plait__wake_fd_write(mgr_ctl_fd);
    /* not cancellable: the manager uses req until it says done */
    plait__spin_lock(&req->lock);
    while (!req->done) {
        plait__wait_on(&req->waiters, &req->lock, NULL, PLAIT_FOREVER, false,
                       "process manager", NULL);
        plait__spin_lock(&req->lock);
    }
    plait__spin_unlock(&req->lock);
}

int plait__manager_call(void (*fn)(void *arg), void *arg)
{
    int r = manager_start();
    if (r < 0)
        return r;
    if (plait__on_manager()) {
        fn(arg);
        return 0;
    }
    mgr_request req = {.fn = fn, .arg = arg};
    queue_and_wait(&req);
    return 0;
}

/* Run held_fn(arg, req) on the manager and wait until request_done(req) is called,
 * by held_fn or later by a source it left watched: the manager goes on with other
 * work meanwhile.  0, -errno when the manager cannot start, or -EDEADLK on the manager
 * thread itself (it would wait for itself). */
static int manager_call_held(void (*held_fn)(void *arg, mgr_request *req), void *arg)
{
    int r = manager_start();
    if (r < 0)
        return r;
    if (plait__on_manager())
        return -EDEADLK;
    mgr_request req = {.held_fn = held_fn, .arg = arg};
    queue_and_wait(&req);
    return 0;
}

int plait__manager_watch(int fd, plait__mgr_source *src)
{
    src->fd = fd;
    src->pause = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};
    return epoll_ctl(mgr_epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void plait__manager_unwatch(int fd)
{
    epoll_ctl(mgr_epfd, EPOLL_CTL_DEL, fd, NULL);
    for (plait__mgr_source **at = &mgr_later; *at; at = &(*at)->later_next)
        if ((*at)->fd == fd) {
            *at = (*at)->later_next; /* (its owner may free it now) */
            break;
        }
}

void plait__manager_atfork(int phase)
{
    if (phase == PLAIT__FORK_CHILD)
        forget_the_parents_manager(mgr_epoch == plait__fork_epoch_parent);
    plait__atfork_mutex(&mgr_start_lock, phase);
}

/* ---- forking ---- */

static pid_t mgr_parent_pid; /* the process the manager forks for */
PLAIT_TLS bool plait__forking;

/* waitid(P_PIDFD) came in Linux 5.4, a release after pidfd_open: on 5.3 a pidfd opens
 * but nothing can be reaped through it, and the manager, woken by it again and again,
 * would spin.  Looked at once, on the first pidfd: 1 works, -1 does not, 0 not known. */
static atomic_int pidfd_waitid_works;

int plait__pidfd_open(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -errno;
    int works = atomic_load_explicit(&pidfd_waitid_works, memory_order_relaxed);
    if (works == 0) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        bool refused = waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG | WNOWAIT) < 0 &&
                       errno == EINVAL;
        works = refused ? -1 : 1;
        atomic_store_explicit(&pidfd_waitid_works, works, memory_order_relaxed);
    }
    if (works < 0) {
        close(fd);
        return -ENOSYS;
    }
    return fd;
}

int plait__pidfd_kill(int pidfd, int sig)
{
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

void plait__flush_before_fork(void)
{
    /* fflush writes, write(2) a cancellation point: a start cancelled there left its
     * record and future half made (internal.h) */
    int cancel_state = plait__cancel_off();
    fflush(NULL);
    plait__cancel_restore(cancel_state);
}

void plait__keep_from_children(void *map, size_t map_size)
{
    (void)madvise(map, map_size, MADV_DONTFORK); /* refused: only the memory stays longer */
}

void plait__caller_take(plait__caller *c)
{
    pthread_sigmask(SIG_BLOCK, NULL, &c->mask);
    c->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    c->affinity_known = sched_getaffinity(0, sizeof c->affinity, &c->affinity) == 0;
    memset(c->name, 0, sizeof c->name);
    if (prctl(PR_GET_NAME, c->name, 0, 0, 0) != 0)
        memcpy(c->name, "plait-child", sizeof "plait-child");
}

int plait__fork_child(const plait__fork_spec *spec, pid_t *pid)
{
    /* All plait's forks are the manager thread's, one at a time: no other child of
     * plait's can be forked while map is let through. */
    pid_t p;
    int fork_error;
    for (;;) {
        if (spec->map && madvise(spec->map, spec->map_size, MADV_DOFORK) < 0) {
            p = -1;
            fork_error = errno;
            break;
        }
        mgr_parent_pid = getpid();
        plait__forking = true; /* the child need not register itself: see below */
        p = fork();
        plait__forking = false;
        fork_error = errno;
        if (spec->map && p >= 0) /* in the child too: its own children get none of it
                                  * (a process pool's worker: procpool.c, a task's forks) */
            plait__keep_from_children(spec->map, spec->map_size);
        if (p <= 0 ||
            (p != spec->gone && !(spec->pid_taken && spec->pid_taken(p, spec->pid_taken_arg)) &&
             !plait__shared_pid_unreported((unsigned)p)))
            break;
        /* The pid of the child this one replaces (or of another the caller still goes
         * by, or of any child of plait's whose death is yet to be reported), free since
         * someone else reaped that one: the shared objects and a pool's records know
         * processes by pid, and would take each for the other (the late report of the
         * old one's death released the new one's locks).  This one has run nothing yet
         * (it waits for the parent's word first): it goes, and another is forked, with
         * the next pid (the kernel hands pids out in turn). */
        kill(p, SIGKILL);
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    if (p != 0) {
        if (p > 0)
            /* before any death can be judged without it */
            plait__shared_forked((unsigned)p, spec->program);
        if (spec->gone)
            plait__shared_child_died((unsigned)spec->gone);
        if (p < 0)
            return -fork_error;
        *pid = p;
        return 0;
    }
    /* the child: the manager thread's copy, alone */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != mgr_parent_pid) /* the parent died before the line above */
        _exit(128 + SIGKILL);
    const plait__caller *caller = spec->caller;
    pthread_sigmask(SIG_SETMASK, &caller->mask, NULL);
    if (caller->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        _exit(128 + SIGKILL); /* (cannot fail since Linux 3.5) not to run unbound */
    if (caller->affinity_known)
        (void)sched_setaffinity(0, sizeof caller->affinity, &caller->affinity); /* its CPUs
            * gone meanwhile (EINVAL): the manager's */
    prctl(PR_SET_NAME, caller->name, 0, 0, 0);
    /* what other threads wrote to the standard streams since the caller's flush is the
     * parent's to write (fork reset the streams' locks in this child) */
    __fpurge(stdout);
    __fpurge(stderr);
    int code = spec->child(spec->arg);
#ifdef PLAIT_COVERAGE
    __gcov_dump(); /* a coverage build's counts of this child's run: _exit writes none */
#endif
    _exit(code);
}

int plait__child_outcome(const siginfo_t *info)
{
    if (info->si_code == CLD_EXITED)
        return info->si_status == 0 ? 0 : PLAIT_EXITED(info->si_status);
    return PLAIT_KILLED(info->si_status);
}

int plait__reap_peek(int pidfd, siginfo_t *info, atomic_uint *published)
{
    memset(info, 0, sizeof *info);
    if (waitid(P_PIDFD, (id_t)pidfd, info, WEXITED | WNOHANG | WNOWAIT) < 0) {
        if (errno != ECHILD)
            return -EAGAIN;
        /* reaped by someone else (SIGCHLD ignored, or the program's waitpid(-1)): it has
         * ended, how is not known */
        if (published)
            atomic_store(published, 0);
        return -ECHILD;
    }
    return info->si_pid == 0 ? -EAGAIN : 0;
}

void plait__reap_finish(int pidfd, pid_t pid)
{
    plait__shared_child_died(pid);
    siginfo_t info;
    waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG);
}

/* ---- processes started by plait_process_start / plait_process_exec ---- */

typedef struct result_area {
    atomic_int returned;        /* fn returned: code and len are its outcome */
    int code;
    uint64_t len;
    unsigned char data[];
} result_area;

typedef struct proc {
    plait__mgr_source src;
    plait__future *future;
    pid_t pid;
    int pidfd;
    atomic_int exited;
    result_area *result;        /* a function child's result, NULL for a program */
    size_t result_max;
    size_t map_size;
    /* what the child needs, valid until the fork */
    plait_proc_fn fn;
    const void *arg;
    size_t arg_len;
    const char *file;
    char *const *argv;
    char *const *env;
    const char *cwd;
    int stdio_mode[3];          /* PLAIT_STDIO_* */
    int child_stdio[3];         /* the child's ends, -1: inherit */
    int parent_stdio[3];
    int exec_error[2];          /* a program child's: its exec's errno, or end of file */
    plait__mgr_source exec_src; /* the manager's watch of exec_error[0] (exec_decided) */
    struct mgr_request *start_request; /* done once the exec is decided */
    int go[2];                  /* the child waits for a byte here: its pidfd is open */
    plait__caller caller;
    int start_error;
} proc;

static const plait__future_ops proc_ops;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void proc_free(proc *p)
{
    /* close() is a cancellation point: a plait thread with a pthread_cancel pending
     * whose join freed the record unwound at the first close, leaving the pidfd, the
     * record and its future.  The cancellation waits for the next point of its own. */
    int cancel_state = plait__cancel_off();
    close_fd(&p->pidfd);
    for (int i = 0; i < 3; i++)
        close_fd(&p->child_stdio[i]);
    plait__cancel_restore(cancel_state);
    if (p->result)
        munmap(p->result, p->map_size);
    free(p);
}

static void proc_release(plait__future *f)
{
    proc *p = f->ext;
    free(f->value);
    f->value = NULL;
    proc_free(p);
}

/* Under the future's lock, which the completion takes too: its outcome is -ECANCELED
 * from now on, whatever the child returns or has returned (plait__future_complete). */
static bool proc_cancel(plait__future *f)
{
    proc *p = f->ext;
    if (!atomic_load(&p->exited))
        plait__pidfd_kill(p->pidfd, SIGKILL);
    return false; /* its exit completes the future */
}

static void proc_drop(void *value) { free(value); }

static const plait__future_ops proc_ops = {proc_cancel, proc_release, NULL, proc_drop};

/* Move *fd above the standard streams (close-on-exec), so that putting a stream in
 * place cannot close it; -errno. */
static int move_above_stdio(int *fd)
{
    if (*fd < 0 || *fd > 2)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
        return -errno;
    close(*fd); /* no stream's own number: the parent had it closed, or another's end
                 * will be put there */
    *fd = moved;
    return 0;
}

/* The child's side of the standard streams and working directory; -errno.  The
 * caller's ends are closed first: a function child (no exec closes them) that held the
 * write end of its own stdin would never see its end of file, nor would the caller see
 * the end of its stdout when it closes fd 1.  An end the parent made on a free number
 * 0-2 is moved up before any stream is put in place, so none is closed by another's
 * dup2. */
static int child_setup(proc *p)
{
    for (int i = 0; i < 3; i++)
        close_fd(&p->parent_stdio[i]);
    for (int i = 0; i < 3; i++)
        if (p->child_stdio[i] != i) {
            int r = move_above_stdio(&p->child_stdio[i]);
            if (r < 0)
                return r;
        }
    for (int i = 0; i < 3; i++) {
        int fd = p->child_stdio[i];
        if (fd < 0)
            continue;
        if (fd == i) { /* already in place: keep it across exec */
            if (fcntl(fd, F_SETFD, 0) < 0)
                return -errno;
        } else if (dup2(fd, i) < 0) {
            return -errno;
        } else {
            close_fd(&p->child_stdio[i]);
        }
    }
    if (p->cwd && chdir(p->cwd) < 0)
        return -errno;
    return 0;
}

/* In the child, first: wait until the parent has the child's pidfd (a byte), or has
 * given it up (end of file: false, the child ends without running anything).  Until
 * then the child cannot end on its own, so nobody can reap it (SIGCHLD ignored, the
 * program's waitpid(-1)) and give its id to another process before the pidfd names
 * it: plait_process_kill() would signal that process, and the task wait for its end. */
static bool wait_for_go(proc *p)
{
    close(p->go[1]);
    char c;
    ssize_t n;
    while ((n = read(p->go[0], &c, 1)) < 0 && errno == EINTR) {
    }
    close(p->go[0]);
    return n == 1;
}

/* A setup that fails is the task's outcome, as if fn had returned its -errno (fn is not
 * called): an exit status would read as fn's own exit, and the errno would be lost.
 * A process that fn forks and that returns from fn too is not the task's: it ends
 * there, without a word in the result area (its copy of this frame would report its
 * return as the task's, over the function child's own end). */
static int function_child(void *arg)
{
    proc *p = arg;
    if (!wait_for_go(p))
        return 127;
    pid_t me = getpid(); /* not plait__pid(): _Fork() or a raw fork runs no fork
                          * handler, so the cache would be stale in fn's child */
    bool given[3]; /* the streams set up for the child (child_setup lets go of them) */
    for (int i = 0; i < 3; i++)
        given[i] = p->child_stdio[i] >= 0;
    ssize_t n = child_setup(p);
    if (n == 0) {
        /* a stream given a new file keeps nothing of the parent's: the input it had
         * buffered, its end of file (which glibc keeps) or error */
        FILE *streams[3] = {stdin, stdout, stderr};
        for (int i = 0; i < 3; i++)
            if (given[i]) {
                __fpurge(streams[i]);
                clearerr(streams[i]);
            }
        n = p->fn(p->arg, p->arg_len, p->result->data, p->result_max);
        if (getpid() != me)
            _exit(0);
        fflush(NULL);
    }
    if (n < 0) {
        p->result->code = n < PLAIT__CODE_MIN ? -EINVAL : (int)n;
        p->result->len = 0;
    } else if ((size_t)n > p->result_max) {
        p->result->code = -EMSGSIZE;
        p->result->len = 0;
    } else {
        p->result->code = 0;
        p->result->len = (uint64_t)n;
    }
    atomic_store_explicit(&p->result->returned, 1, memory_order_release);
    return 0;
}

/* plait ignored SIGPIPE (the program had left it at its default): the programs it
 * starts get the default back.  One the program ignored itself, they inherit. */
static atomic_bool sigpipe_ignored_by_plait;

static int exec_child(void *arg)
{
    proc *p = arg;
    if (!wait_for_go(p))
        return 127; /* the parent reads no exec error then */
    close(p->exec_error[0]);
    /* its number may be one child_setup puts a stream on (the parent's 0-2 closed) */
    int r = move_above_stdio(&p->exec_error[1]);
    if (r == 0)
        r = child_setup(p);
    if (r == 0) {
        if (atomic_load(&sigpipe_ignored_by_plait))
            signal(SIGPIPE, SIG_DFL); /* the program expects the default it was left at */
        execvpe(p->file, p->argv, p->env ? p->env : environ);
        r = -errno;
    }
    int code = -r;
    while (write(p->exec_error[1], &code, sizeof code) < 0 && errno == EINTR) {
    }
    return 127;
}

static void proc_finish(proc *p, int error);

static void proc_exited(plait__mgr_source *src, uint32_t events)
{
    (void)events;
    proc *p = (proc *)src;
    siginfo_t info;
    int reaped = plait__reap_peek(p->pidfd, &info, NULL);
    if (reaped == -EAGAIN) {
        plait__manager_not_yet(src); /* (traced: its tracer's to reap first) */
        return;
    }
    if (reaped == 0)
        plait__reap_finish(p->pidfd, p->pid);
    else
        plait__shared_child_died(p->pid);
    plait__manager_unwatch(p->pidfd);
    proc_finish(p, reaped < 0 ? reaped : plait__child_outcome(&info));
}

/* The child has ended with outcome error (-ECHILD: someone else took its status):
 * complete the task with its result or the failure. */
static void proc_finish(proc *p, int error)
{
    atomic_store(&p->exited, 1);
    plait_bytes *value = NULL;
    if (p->result) {
        result_area *ra = p->result;
        bool returned = atomic_load_explicit(&ra->returned, memory_order_acquire);
        /* read once: a process fn forked may still write the area (it ends at its
         * return from fn, not before) */
        uint64_t len = ((volatile result_area *)ra)->len;
        int code = ((volatile result_area *)ra)->code;
        if (!returned) {
            if (error == 0)
                error = PLAIT_EXITED(0); /* exited without returning */
        } else if (error == 0 || error == -ECHILD) {
            /* it returned (whoever else reaped it took only its exit status); a length
             * past the room: its task wrote over the area's header (fn writes only from
             * data on), and nothing past the mapping is read */
            error = len > p->result_max ? -EPROTO : plait__code_read_back(code);
            if (error == 0 && !(value = malloc(sizeof *value + len)))
                error = -ENOMEM;
            if (value) {
                value->len = len;
                memcpy(value->data, ra->data, len);
            }
        }
    }
    plait__future_complete(p->future, value, error); /* -ECANCELED if cancelled by now */
}

/* The descriptors of the child being started that are its alone (its stream ends, the
 * exec-error pipe's write end), recorded from their making to their closing, both
 * under spawn_lock.  Every fork takes the lock in its prepare handler, so the record
 * it copies matches the descriptors it copies, and the child of a fork not made for
 * that start (another thread's plain fork) closes them.  The manager holds the lock
 * only while it makes or closes them, never across its own fork: a program's own fork
 * handler, run before plait's, may hold a lock that the manager's fork then waits for
 * (holding it across the fork once deadlocked with such a handler). */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static int spawn_fds[6] = {-1, -1, -1, -1, -1, -1};
static unsigned spawn_fds_epoch; /* made at (an older one's are left alone: see
                                  * plait__fork_epoch_parent) */

static void spawn_fds_record(const proc *p)
{
    spawn_fds_epoch = plait__fork_epoch();
    for (int i = 0; i < 3; i++)
        spawn_fds[i] = p->child_stdio[i];
    spawn_fds[3] = p->exec_error[1];
    spawn_fds[4] = p->go[0];
    spawn_fds[5] = p->go[1];
}

void plait__spawn_atfork(int phase)
{
    if (phase == PLAIT__FORK_PREPARE) {
        pthread_mutex_lock(&spawn_lock);
        return;
    }
    pthread_mutex_unlock(&spawn_lock);
    if (phase == PLAIT__FORK_CHILD) {
        /* not the child they are for: close them; the child they are for puts them in
         * place or closes them itself (child_setup), and its later descriptors may
         * reuse their numbers, so its own forks must not close those: forget them */
        for (int i = 0; i < 6; i++) {
            if (plait__forking || spawn_fds_epoch != plait__fork_epoch_parent)
                spawn_fds[i] = -1;
            else
                close_fd(&spawn_fds[i]);
        }
    }
}

/* On the manager, just before the fork: the pipes and /dev/null the child's streams
 * ask for, and the exec-error pipe.  Made here, not in the caller's thread, so that no
 * other child forked meanwhile inherits an end of them (only the manager forks).  The
 * caller's ends are close-on-exec: a program started later does not keep them, but a
 * function child or pool worker forked later does, for as long as it lives (API.md
 * says so).  0 or -errno. */
static int stdio_prepare(proc *p)
{
    for (int i = 0; i < 3; i++) {
        if (p->stdio_mode[i] == PLAIT_STDIO_NULL) {
            p->child_stdio[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (p->child_stdio[i] < 0)
                return -errno;
        } else if (p->stdio_mode[i] == PLAIT_STDIO_PIPE) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
            p->child_stdio[i] = i == 0 ? fds[0] : fds[1];
            p->parent_stdio[i] = i == 0 ? fds[1] : fds[0];
            int r = plait_fd_set_nonblock(p->parent_stdio[i], 1);
            if (r < 0)
                return r;
        }
    }
    /* non-blocking: the manager reads it when its epoll set says (exec_decided); the
     * child's write of one int to the empty pipe never finds it full */
    if (!p->fn && pipe2(p->exec_error, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    if (pipe2(p->go, O_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* On the manager: a child that will not be watched is gone; tell the shared objects
 * (the parent registered it as a holder at the fork), then reap it, through its pidfd
 * (its id may name another process once someone else has reaped it). */
static void reap_unwatched(pid_t pid, int pidfd, bool kill_it)
{
    if (kill_it)
        plait__pidfd_kill(pidfd, SIGKILL);
    plait__shared_child_died((unsigned)pid);
    siginfo_t info;
    while (waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED) < 0 && errno == EINTR) {
    }
}

/* On the manager: watch the running child p whose pidfd is fd for its end (the
 * request's caller goes on); one that cannot be watched is not left running. */
static void watch_exit(proc *p, int fd)
{
    p->pidfd = fd;
    p->src.ready = proc_exited;
    int r = plait__manager_watch(fd, &p->src);
    if (r < 0) {
        reap_unwatched(p->pid, fd, true);
        close_fd(&p->pidfd);
        p->start_error = r;
    }
}

/* On the manager: a program child's exec has been decided: its pipe gave an errno
 * (exec failed: the child is gone at once) or end of file (the exec happened, or the
 * child died before it).  Until then the manager went on with its other work. */
static void exec_decided(plait__mgr_source *src, uint32_t events)
{
    (void)events;
    proc *p = (proc *)((char *)src - offsetof(proc, exec_src));
    int code = 0;
    ssize_t n = read(p->exec_error[0], &code, sizeof code);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return; /* watched level-triggered: told again */
    plait__manager_unwatch(p->exec_error[0]);
    close_fd(&p->exec_error[0]);
    if (n == (ssize_t)sizeof code) {
        /* killed, which it is about to be anyway: the reaping cannot wait on a child
         * stopped before its _exit */
        reap_unwatched(p->pid, p->pidfd, true);
        close_fd(&p->pidfd);
        p->start_error = -code;
    } else {
        /* it maps none of plait's shared objects now */
        plait__shared_child_execd((unsigned)p->pid);
        watch_exit(p, p->pidfd);
    }
    request_done(p->start_request);
}

/* On the manager: fork the child described by p; its pidfd, or -errno with the start's
 * outcome set (-ECHILD: the child was killed and reaped by someone else before it
 * ran, its task completed with that). */
static int fork_child(proc *p)
{
    pid_t pid;
    pthread_mutex_lock(&spawn_lock);
    int r = stdio_prepare(p);
    spawn_fds_record(p); /* what it made, whether or not it made all */
    pthread_mutex_unlock(&spawn_lock);
    /* A function child's result area, made here just before its fork: no other child
     * of plait's can get it (the manager forks them all, one at a time), and the ones
     * after this fork are kept from it (plait__keep_from_children): one madvise per
     * start, where letting it through around the fork took three. */
    if (r == 0 && p->fn) {
        p->result = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p->result == MAP_FAILED) {
            p->result = NULL;
            r = -ENOMEM;
        }
    }
    if (r == 0)
        r = plait__fork_child(&(plait__fork_spec){.caller = &p->caller,
                                                  .child = p->fn ? function_child : exec_child,
                                                  .arg = p, .program = !p->fn},
                              &pid);
    if (p->result)
        plait__keep_from_children(p->result, p->map_size);
    /* the child waits (wait_for_go) until it has a pidfd: it is still there, and its
     * id its own, unless it was killed from outside and reaped by someone else */
    int fd = r == 0 ? plait__pidfd_open(pid) : r;
    if (r == 0 && fd < 0 && fd != -ESRCH) { /* cannot watch it: do not leave it running */
        kill(pid, SIGKILL); /* it has not run: the id is still its own */
        plait__shared_child_died((unsigned)pid);
        waitpid(pid, NULL, 0);
    }
    /* the child's ends are the child's only: no later child may inherit them */
    pthread_mutex_lock(&spawn_lock);
    if (fd >= 0) {
        char go = 1;
        while (write(p->go[1], &go, 1) < 0 && errno == EINTR) {
        }
    }
    for (int i = 0; i < 3; i++)
        close_fd(&p->child_stdio[i]);
    close_fd(&p->exec_error[1]);
    close_fd(&p->go[0]);
    close_fd(&p->go[1]); /* end of file, without the byte: the child runs nothing */
    spawn_fds_record(p); /* all -1 now */
    pthread_mutex_unlock(&spawn_lock);
    if (r < 0) {
        p->start_error = r;
        return r;
    }
    p->pid = pid;
    if (fd == -ESRCH) { /* killed from outside before it ran, reaped by someone else */
        plait__shared_child_died((unsigned)pid);
        proc_finish(p, -ECHILD);
        return fd;
    }
    if (fd < 0)
        p->start_error = fd;
    return fd;
}

/* On the manager: start p.  A function child is watched for its end at once; a program
 * child once its exec is decided (exec_decided), which may take long (its file on a
 * slow or stopped file system, a lease on it, a child stopped before its exec): the
 * caller waits for that, not the manager, which goes on reaping and starting others. */
static void proc_fork(void *arg, mgr_request *req)
{
    proc *p = arg;
    int fd = fork_child(p);
    if (fd >= 0 && !p->fn) {
        p->pidfd = fd;
        p->start_request = req;
        p->exec_src.ready = exec_decided;
        int r = plait__manager_watch(p->exec_error[0], &p->exec_src);
        if (r == 0)
            return;
        reap_unwatched(p->pid, fd, true); /* cannot learn its exec: do not leave it running */
        close_fd(&p->pidfd);
        p->start_error = r;
    } else if (fd >= 0) {
        watch_exit(p, fd);
    }
    request_done(req);
}

static int proc_start_cancel_off(plait_task *task, proc *p, const plait_process_options *o,
                                 plait_pipes *pipes)
{
    p->pidfd = p->exec_error[0] = p->exec_error[1] = p->go[0] = p->go[1] = -1;
    for (int i = 0; i < 3; i++) {
        p->child_stdio[i] = p->parent_stdio[i] = -1;
        p->stdio_mode[i] = o ? o->stdio[i] : PLAIT_STDIO_INHERIT;
        if (p->stdio_mode[i] == PLAIT_STDIO_PIPE)
            plait__ignore_sigpipe();
    }
    plait__caller_take(&p->caller);
    int r = 0;
    plait_task handle;
    p->future = plait__future_start_ext(&proc_ops, p, &handle);
    if (!p->future)
        r = -ENOMEM;
    if (r == 0 && p->fn)
        plait__flush_before_fork(); /* a program's exec drops the buffers it inherits */
    if (r == 0)
        r = manager_call_held(proc_fork, p);
    if (r == 0)
        r = p->start_error;
    for (int i = 0; i < 3; i++)
        close_fd(&p->child_stdio[i]);
    close_fd(&p->exec_error[0]);
    close_fd(&p->exec_error[1]);
    close_fd(&p->go[0]);
    close_fd(&p->go[1]);
    if (r < 0) {
        for (int i = 0; i < 3; i++)
            close_fd(&p->parent_stdio[i]);
        if (p->future) { /* the release hook frees p */
            plait__future_complete(p->future, NULL, r);
            plait_detach(handle);
        } else {
            proc_free(p);
        }
        return r;
    }
    if (pipes) {
        pipes->in = p->parent_stdio[0];
        pipes->out = p->parent_stdio[1];
        pipes->err = p->parent_stdio[2];
    }
    if (task)
        *task = handle;
    else
        plait_detach(handle);
    return 0;
}

/* A start with no cancellation point in it (internal.h): one that failed closes the
 * descriptors made for it, close(2) a cancellation point, before its future completes. */
static int proc_start(plait_task *task, proc *p, const plait_process_options *o,
                      plait_pipes *pipes)
{
    int cancel_state = plait__cancel_off();
    int r = proc_start_cancel_off(task, p, o, pipes);
    plait__cancel_restore(cancel_state);
    return r;
}

static bool options_ok(const plait_process_options *o, const plait_pipes *pipes)
{
    if (!o)
        return true;
    for (int i = 0; i < 3; i++)
        if (o->stdio[i] < PLAIT_STDIO_INHERIT || o->stdio[i] > PLAIT_STDIO_NULL ||
            (o->stdio[i] == PLAIT_STDIO_PIPE && !pipes))
            return false;
    return o->result_max <= PLAIT_RESULT_MAX;
}

int plait_process_start(plait_task *task, plait_proc_fn fn, const void *arg, size_t arg_len,
                        const plait_process_options *options, plait_pipes *pipes)
{
    if (!fn || (!arg && arg_len) || !options_ok(options, pipes))
        return -EINVAL;
    proc *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->arg_len = arg_len;
    p->cwd = options ? options->cwd : NULL;
    p->result_max = options && options->result_max ? options->result_max : PLAIT_RESULT_DEFAULT;
    p->map_size = sizeof(result_area) + p->result_max; /* made by proc_fork */
    return proc_start(task, p, options, pipes);
}

int plait_process_exec(plait_task *task, const char *file, char *const argv[],
                       const plait_process_options *options, plait_pipes *pipes)
{
    if (!argv || !argv[0] || !options_ok(options, pipes))
        return -EINVAL;
    proc *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->file = file ? file : argv[0];
    p->argv = argv;
    p->env = options ? options->env : NULL;
    p->cwd = options ? options->cwd : NULL;
    return proc_start(task, p, options, pipes);
}

/* The process record a handle names, with its future locked; NULL and *err. */
static proc *proc_locked(plait_task task, plait__future **fp, int *err)
{
    plait__future *f = plait__future_lock(task, err);
    if (!f)
        return NULL;
    if (f->ops != &proc_ops) {
        plait__spin_unlock(&f->lock);
        *err = -EINVAL;
        return NULL;
    }
    *fp = f;
    return f->ext;
}

int plait_process_pid(plait_task task)
{
    plait__future *f;
    int err;
    proc *p = proc_locked(task, &f, &err);
    if (!p)
        return err;
    int pid = p->pid;
    plait__spin_unlock(&f->lock);
    return pid;
}

int plait_process_kill(plait_task task, int sig)
{
    if (sig <= 0 || sig >= NSIG)
        return -EINVAL;
    plait__future *f;
    int err;
    proc *p = proc_locked(task, &f, &err);
    if (!p)
        return err;
    /* under the future's lock: the pidfd lives until the future is let go */
    int r = atomic_load(&p->exited) ? -ESRCH : plait__pidfd_kill(p->pidfd, sig);
    plait__spin_unlock(&f->lock);
    return r;
}

/* ---- SIGPIPE ---- */

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void sigpipe_ignore(void)
{
    /* a watcher of it gives SIG_IGN back */
    atomic_store(&sigpipe_ignored_by_plait, plait__signals_ignore_default(SIGPIPE));
}

void plait__ignore_sigpipe(void)
{
    pthread_once(&sigpipe_once, sigpipe_ignore);
}
