/*
 * plait.h — coroutines, threads and processes under one vocabulary.
 *
 * Conventions (every function below follows them):
 *   - A function that can fail returns 0 (or a non-negative count/index) on success
 *     and a negative errno-style code on failure; plait_strerror() names it.
 *   - Time is int64_t nanoseconds on CLOCK_MONOTONIC.  Deadlines are absolute:
 *     plait_deadline_in(ms * PLAIT_MS) builds one; PLAIT_FOREVER never expires; a
 *     deadline already in the past (0 included) means "do not block": the call
 *     completes if it can right away and returns -ETIMEDOUT otherwise.
 *   - Every call that blocks works from a coroutine (only that coroutine is
 *     suspended; its scheduler goes on running the others) and from a plain thread
 *     (the thread blocks).  Calls marked "coroutine only" return -EPERM elsewhere.
 *   - Cancellation is sticky: once a coroutine has been cancelled, the call it is
 *     blocked in and every later call that would block return -ECANCELED at once,
 *     whatever the deadline (a past one too: the cancellation comes first; but a
 *     sleep to a past deadline, which waits for nothing, returns 0).  Calls
 *     that can complete without blocking still do, so it can clean up and return; a
 *     task that must wait while it cleans up shields itself (plait_cancel_shield).
 *
 * Error codes used throughout:
 *   -EINVAL     a null or malformed argument (a null handle, a size out of range)
 *   -ESRCH      a task handle that no longer names a task (joined or detached already);
 *               a process that has ended (plait_process_kill)
 *   -EPERM      a call from the wrong context (coroutine-only call outside a coroutine,
 *               unlock by a non-owner)
 *   -ETIMEDOUT  the deadline passed first
 *   -ECANCELED  the calling coroutine was cancelled, or the joined task was
 *   -EPIPE      closed: a channel or queue closed (or all its other side gone), a pool
 *               shut down, a group being destroyed, an as-completed set or imap with
 *               nothing left to hand out; a pipe or socket whose reader is gone
 *   -EDEADLK    waiting on oneself (join own task, relock own mutex)
 *   -EBUSY      destroying something still in use; plait_run() inside plait_run()
 *   -ENOMEM     out of memory (or of address space for stacks)
 *   -EMSGSIZE   a message or result larger than the room there is for it
 *   PLAIT_EXITED(status), PLAIT_KILLED(signal)
 *               a child process exited, or was killed by a signal, before its task
 *               was done (see "Processes"; plait_strerror names the status or signal)
 *   -EPROTO     a function child or a process pool task wrote over the memory that
 *               carries its outcome, or a pool's task over the pool's state (see
 *               "Processes", "Process pools")
 */
#ifndef PLAIT_H
#define PLAIT_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLAIT_VERSION_MAJOR 0
#define PLAIT_VERSION_MINOR 1
#define PLAIT_VERSION_PATCH 0

/* ----------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------- */

#define PLAIT_NS 1LL
#define PLAIT_US 1000LL
#define PLAIT_MS 1000000LL
#define PLAIT_SEC 1000000000LL
/* A deadline that never expires. */
#define PLAIT_FOREVER INT64_MAX

/* Now on CLOCK_MONOTONIC, in nanoseconds. */
int64_t plait_now(void);
/* plait_now() + ns, saturating at PLAIT_FOREVER (ns <= 0 gives a deadline of now). */
int64_t plait_deadline_in(int64_t ns);

/* The text for an error code returned by plait (negative) or an errno (either sign):
 * plait's own words for its codes, glibc's descriptions (in English, untranslated) for
 * the other errnos and signals, written without stdio (it fits any coroutine's stack).
 * A process's fate and an unknown code are written into a thread-local buffer, which
 * the next call on the thread overwrites. */
const char *plait_strerror(int err);

/* ----------------------------------------------------------------------------
 * Tasks (coroutines) and the scheduler
 *
 * A task runs fn(arg) as a coroutine on the scheduler of the thread that spawned it.
 * Its return value is its result.  A task fails by returning PLAIT_FAIL(-code): a
 * pointer value in [-4095, -1], as the kernel's ERR_PTR does; whoever joins it gets
 * that code.  Every handle must be joined or detached exactly once.
 * ------------------------------------------------------------------------- */

typedef void *(*plait_fn)(void *arg);

/* A task's result that reports failure with the negative code err. */
#define PLAIT_FAIL(err) ((void *)(intptr_t)(err))
/* Whether a task result is a failure code (then (int)(intptr_t)v is the code). */
#define PLAIT_IS_FAIL(v) ((uintptr_t)(v) >= (uintptr_t)-4095)

/* A handle to a task's outcome (its future).  Copyable; stale after join/detach,
 * and every call given a stale handle returns -ESRCH.  A zeroed handle is invalid:
 * every call given one returns -EINVAL. */
typedef struct plait_task {
    struct plait__future *future;
    uint64_t generation;
} plait_task;

/* Smallest and largest stack a coroutine may ask for, and the default.  A stack holds
 * plait's own frames too (up to about 1.5 KiB in an optimised build: a blocking
 * select of 8 cases with a deadline).  A sanitizer
 * makes every frame several times larger, and intercepts libc calls plait makes on the
 * coroutine's stack (the switch's pthread_setcancelstate): an AddressSanitizer build
 * overflows PLAIT_STACK_MIN in these alone, so give coroutines larger stacks in such
 * builds.  So does the dynamic linker at a lazily bound function's first call
 * (some 3 KiB with AVX-512): libplait.so is bound at load, a program linked with
 * libplait.a through CMake's plait::plait or pkg-config --static is linked -z now (the
 * static library's libc calls go through its PLT), and one linked otherwise, or with a
 * shared library whose small coroutines call into it first, should be linked with
 * -Wl,-z,now (API.md, "Stacks"). */
#define PLAIT_STACK_MIN ((size_t)2048)
#define PLAIT_STACK_MAX ((size_t)1 << 30)
#define PLAIT_STACK_DEFAULT ((size_t)256 * 1024)

/* Options for plait_spawn_opts(); zero-initialise and set what you need. */
typedef struct plait_spawn_options {
    const char *name;   /* shown in dumps and warnings; copied (31 bytes kept); NULL: "task" */
    size_t stack_size;  /* bytes of stack; 0: the scheduler's default (see below) */
    struct plait_group *group; /* the structured group the task belongs to, or NULL */
} plait_spawn_options;

/* Run fn(arg) as the first coroutine ("main") of a new scheduler on this thread, and
 * return when it has finished: like asyncio.run().  Coroutines still running when
 * main returns are cancelled and waited for, and the scheduler's poller lets go of every
 * descriptor it watched (io_uring: waiting up to a second for the kernel to take the
 * removals).  *result (if not NULL) gets main's result.  A coroutine that calls
 * pthread_exit ends the scheduler the same way (itself as cancelled), and then the
 * thread: plait_run does not return.
 * Returns main's outcome: 0, main's PLAIT_FAIL code, or -EBUSY if this thread already
 * runs a scheduler, -EINVAL for a null fn, -ENOMEM. */
int plait_run(plait_fn fn, void *arg, void **result);

/* Start fn(arg) as a coroutine on this thread's scheduler; it runs once the caller
 * blocks or yields.  task may be NULL (the same as detaching at once).
 * -EPERM when this thread runs no scheduler, -EINVAL for a null fn or a stack size
 * outside [PLAIT_STACK_MIN, PLAIT_STACK_MAX], -ENOMEM. */
int plait_spawn(plait_task *task, plait_fn fn, void *arg);
/* The same with options; also -EPIPE when options->group is being closed. */
int plait_spawn_opts(plait_task *task, plait_fn fn, void *arg,
                     const plait_spawn_options *options);

/* Wait until the task has finished and take its outcome: 0 and *result (may be NULL)
 * = its return value; its PLAIT_FAIL code; -ECANCELED if it was cancelled before it
 * finished.  After any of those the handle is consumed.  -ETIMEDOUT, -ECANCELED when
 * the caller itself is cancelled, and -ENOMEM when a coroutine's wait with a deadline
 * finds no memory for its timer leave the handle valid.  -ESRCH for a stale
 * handle, -EDEADLK for joining oneself.  A task's own code may be any, -ETIMEDOUT and
 * -ECANCELED included (a process's -errno, a pool's task_timeout), and consumes the
 * handle like any outcome: plait_wait_any(&task, 1, 0) tells the two apart (-ESRCH
 * once consumed).  -EPERM in a forked child for a task that is not the child's (see
 * plait_cancel). */
int plait_join(plait_task task, void **result, int64_t deadline);

/* Give the handle up; the task runs on and its outcome is dropped. -ESRCH if stale;
 * -EPERM in a forked child for a task that is not the child's (see plait_cancel). */
int plait_detach(plait_task task);

/* Ask the task (coroutine, thread or pool task) to stop: it sees -ECANCELED at its
 * current or next blocking call; a pool task that has not started never runs (a
 * coroutine's or plait thread's function always runs, cancelled: it may own its
 * argument).  Its
 * joiner gets -ECANCELED, and whatever its function still returns is dropped.
 * Works from any thread.  A task that already finished is unaffected (returns 0).
 * -ESRCH if stale; -EPERM in a forked child for a task that is not the child's: one
 * that the parent's other threads run or ran (a coroutine of another scheduler, a plait
 * thread, a pool task) or that the parent runs in another process (a process, a process
 * pool's task).  Every call on such a handle in the child is -EPERM (see "Fork"), as on
 * a handle made in any other process and passed to this one (a child's, sent to its
 * parent through a pipe, say): it names none of this process's tasks. */
int plait_cancel(plait_task task);

/* Wait for all n tasks (gather).  Returns 0 when all succeeded, else the first failure
 * in index order; results[i] / errors[i] (either may be NULL) get each task's value and
 * code, and every handle is consumed.  The call's own failures consume none:
 * -ETIMEDOUT, -ECANCELED of the caller, -EINVAL for n == 0, a null array or a handle
 * given twice, -ESRCH for a stale handle, -EDEADLK when the caller (its coroutine, or
 * the plait thread or pool task it runs in) is among the tasks, -ENOMEM (more than 8 tasks take memory; a coroutine's timer, as for
 * plait_join), -EPERM in a forked child for a task that is not the child's. */
int plait_wait_all(const plait_task *tasks, size_t n, void **results, int *errors,
                   int64_t deadline);

/* Wait until any of the n tasks has finished; returns its index (>= 0).  Consumes no
 * handle: join the one returned.  -EINVAL, -ESRCH (a null or stale handle anywhere in
 * the list, behind a finished task too), -ETIMEDOUT, -ECANCELED, -ENOMEM
 * (more than 8 tasks take memory; a coroutine's timer, as for plait_join), -EDEADLK
 * when the caller (its coroutine, or the plait thread or pool task it runs in) is among
 * the tasks (and none has finished), -EPERM in a forked child for a task that is not the
 * child's. */
int plait_wait_any(const plait_task *tasks, size_t n, int64_t deadline);

/* Let the other ready coroutines run (with none ready, the scheduler looks at its
 * timers, wake-ups from other threads and descriptors first; while some are, it looks
 * every 64 switches, so coroutines that keep each other ready delay a due timer or a
 * wake-up by up to 64 of their turns).  Coroutine only.
 * Returns -ECANCELED (after yielding) when the caller has been cancelled, so busy
 * loops can stop. */
int plait_yield(void);

/* Sleep until the deadline / for ns.  Coroutine or thread.  0, -ECANCELED.  A
 * coroutine, a plait thread or a pool task may sleep until PLAIT_FOREVER (until it is
 * cancelled); any other thread, which nothing can cancel, gets -EINVAL for it (and for
 * plait_sleep of a duration that saturates to it, near INT64_MAX), and so does the
 * main coroutine of a plait_run on such a thread, whose task nobody holds.  A past
 * deadline returns 0 at once, even to a cancelled caller.  A coroutine gets -ENOMEM when its scheduler's timer heap
 * cannot grow (as any timed wait of a coroutine may).  Coroutines of one scheduler
 * whose timed waits end at the same deadline wake in the order they began to wait. */
int plait_sleep_until(int64_t deadline);
int plait_sleep(int64_t ns);

/* Whether the caller runs inside a coroutine. */
int plait_in_coroutine(void);
/* The calling coroutine's name; outside a coroutine, the name of the plait thread or
 * pool worker (as given: "" for a thread started with the name ""); NULL on any other
 * thread. */
const char *plait_task_name(void);
/* The calling coroutine's id (unique in the process, from 1), or 0 outside one. */
uint64_t plait_task_id(void);
/* Whether the calling coroutine, plait thread or pool task has been cancelled (0 on
 * other threads, and while its cancellation is shielded). */
int plait_cancelled(void);
/* Shield the calling coroutine, plait thread or pool task from cancellation (on = 1)
 * or lift the shield (on = 0), for clean-up that must wait (for work it lent its
 * memory to, say).  While shielded, a cancellation is held, not lost: the call the
 * task is blocked in and its later calls go on as if none had come (they end by their
 * own event or deadline), plait_cancelled() is 0 and plait_yield() returns 0; a sleep
 * with no deadline is -EINVAL (nothing could end it).  Once the shield is lifted, a
 * held cancellation acts at the next call that would block, as any other.  The task's
 * outcome is -ECANCELED all the same if it was cancelled before it finished.  Tasks the
 * shielded one starts are not shielded.  Returns the previous state (0 or 1), to
 * restore when shields nest:
 *     int was = plait_cancel_shield(1);  ...  plait_cancel_shield(was);
 * -EINVAL for any other on (the state unchanged).  On other threads, which nothing can
 * cancel, the state is kept and changes nothing.  A process pool's task cancelled while
 * it runs is killed with its worker, shielded or not. */
int plait_cancel_shield(int on);

/* Default stack size for coroutines spawned later by this thread's scheduler.
 * -EINVAL outside [PLAIT_STACK_MIN, PLAIT_STACK_MAX] (0 included), -EPERM with no
 * scheduler.  A size (here or in plait_spawn_options) is rounded up to its size class,
 * at most 12.5 % more (API.md, "Stacks").  Stacks of 16 KiB and more get a guard page
 * while plait_guard_budget() is above 0; every other stack
 * carries a canary checked at every switch.  An overflow onto either stops the program
 * with a message naming the task; a frame that skips the canary of a smaller stack is
 * not seen (API.md): give code with large frames 16 KiB or more, and compile it with
 * -fstack-clash-protection (on aarch64 with --param=stack-clash-protection-guard-size=12
 * too): without it a frame larger than a page skips the guard page too.
 * A finished coroutine's stack is kept for the next spawn; the memory of free stacks
 * beyond 256 per scheduler that stayed unused for a second goes back to the kernel
 * while the scheduler sleeps (stacks under about 8 KiB share pages with their
 * neighbours and may keep theirs). */
int plait_set_stack_size(size_t bytes);
/* How many stacks may still get a guard page (each costs two kernel memory maps). */
size_t plait_guard_budget(void);

/* ----------------------------------------------------------------------------
 * Structured groups: a group cannot end while a child runs.
 * ------------------------------------------------------------------------- */

typedef struct plait_group plait_group;

/* Create a group. -EINVAL for null, -ENOMEM. */
int plait_group_create(plait_group **group);
/* Spawn fn(arg) into the group (task may be NULL: the group keeps the outcome).
 * -EPIPE when the group is being closed. Otherwise as plait_spawn_opts(). */
int plait_group_spawn(plait_group *group, plait_task *task, plait_fn fn, void *arg);
/* Wait until every child has finished.  Returns 0, or the first failure (other than
 * a cancellation) among the children whose handle was not kept (task == NULL at spawn).  -ETIMEDOUT leaves them
 * running (a child's own failure may be -ETIMEDOUT too, returned once none runs:
 * plait_group_running tells the two apart); when the caller is cancelled the children are cancelled and waited for
 * until the deadline, then -ECANCELED is returned (those still running then stay
 * cancelled: plait_group_destroy waits for them).  -EDEADLK from a child of the group (it would wait for
 * itself); NULL: -EINVAL; -ENOMEM for a coroutine's timed wait whose timer cannot be
 * kept (as any timed wait of a coroutine). */
int plait_group_wait(plait_group *group, int64_t deadline);
/* Cancel every child that is still running; for good: a child spawned into the group
 * afterwards starts cancelled. */
int plait_group_cancel(plait_group *group);
/* How many children of the group are running now (0 for NULL): after a
 * plait_group_wait's -ETIMEDOUT, more than 0 says it was the deadline's (the wait
 * returns that only while a child runs); 0 says that the children are done, a child's
 * own failure or, where the last one ended on another thread since, the deadline's:
 * plait_group_wait again (any deadline) returns their code then. */
size_t plait_group_running(plait_group *group);
/* Cancel the children, wait for all of them (this wait ignores the caller's own
 * cancellation, so no child outlives the group), free the group.  Returns the same
 * code plait_group_wait() would.  -EDEADLK from a child of the group, which is left
 * as it was; NULL: -EINVAL.  The group's own children may still spawn into it while
 * they unwind (-EPIPE); any other call on the group (spawn, wait, cancel) on another
 * thread must have returned before the destroy begins, and none may begin after it:
 * the group is freed (as a thread pool's submit and its destroy). */
int plait_group_destroy(plait_group *group);

/* ----------------------------------------------------------------------------
 * Task-local storage
 * ------------------------------------------------------------------------- */

typedef unsigned plait_key;
#define PLAIT_KEYS_MAX 64

/* A new key; destructor (may be NULL) runs on a non-null value when its task ends, in
 * key order, as POSIX orders thread keys: the key's own value is cleared first, the
 * others stay readable until their turn, and values a destructor sets again get up to
 * four rounds.  -EAGAIN when PLAIT_KEYS_MAX keys exist. */
int plait_key_create(plait_key *key, void (*destructor)(void *));
/* The calling coroutine's value for key; outside a coroutine, the calling thread's.
 * -EINVAL for an unknown key, -ENOMEM (also at a plain thread's first value while the
 * program holds every pthread key: the thread's values need one, to be destroyed at
 * its end; a later call tries again). */
int plait_local_set(plait_key key, void *value);
/* NULL for an unknown key or when unset. */
void *plait_local_get(plait_key key);

/* ----------------------------------------------------------------------------
 * Diagnostics
 * ------------------------------------------------------------------------- */

/* Write a line with the number of coroutines of this thread's scheduler, then one line
 * per coroutine: id, name, state, what it waits on and for how long.  Returns the number
 * of coroutines, -EPERM with no scheduler, -EINVAL for a null stream, -ENOMEM (its copy
 * of the list).  The list is copied before anything is written: a stream whose writes
 * suspend the caller (a cookie stream over plait_write, say) may let the others run, and
 * the lines say what was so when the call began.  It writes with stdio: from a
 * coroutine, give it 8 KiB of stack or more. */
int plait_dump(FILE *out);

/* Warn on stderr, naming the coroutine, when one runs longer than threshold_ns without
 * yielding or blocking (the blocked-event-loop pitfall); 0 turns the watch off.  The
 * environment variable PLAIT_SLOW_MS sets it at the first scheduler's start: a whole
 * number of milliseconds (0, empty or unset: off); anything else turns the watch off,
 * with a warning on stderr.  Applies to schedulers started afterwards (a scheduler
 * keeps its own, in a child forked from one of its coroutines too).  The watch looks
 * every quarter threshold, every millisecond at most: a run is seen to begin at the
 * first look after its switch, so the figure a warning gives is a lower bound (up to
 * one look short), and a run as long as the threshold plus one look (1.25 thresholds
 * from 4 ms up) may go unwarned.  Durations are printed in ms (µs or ns under a
 * millisecond; with a tenth below ten of the unit).  A warning into a pipe whose reader has gone is lost, never a SIGPIPE.
 * -EINVAL for a negative threshold. */
int plait_set_slow_warning(int64_t threshold_ns);

/* ----------------------------------------------------------------------------
 * Synchronisation.  Each works between coroutines (of any scheduler) and threads.
 * Every wait here and below (locks, condition, semaphore, event, wait group, channels,
 * select, read-write lock, barrier, once) returns -ENOMEM when it is a coroutine's, has
 * a deadline and finds no memory for its timer (as plait_sleep_until).
 * ------------------------------------------------------------------------- */

typedef struct plait_mutex plait_mutex;
typedef struct plait_cond plait_cond;
typedef struct plait_sem plait_sem;
typedef struct plait_event plait_event;
typedef struct plait_waitgroup plait_waitgroup;

/* Mutex, owned by the coroutine, thread or pool task that locked it (each pool task is
 * an owner of its own, not its worker thread); not recursive.  One that ends holding
 * it leaves it locked: no later coroutine, thread or task is its owner. */
int plait_mutex_create(plait_mutex **mutex);
/* -EBUSY while locked or waited on (a plait_cond_wait with it included: the waiter
 * locks it again before it returns). */
int plait_mutex_destroy(plait_mutex *mutex);
/* 0, -ETIMEDOUT, -ECANCELED, -ENOMEM (above), -EDEADLK (the caller holds it already, or one beneath the
 * caller on its thread holds it, which could not unlock it before the caller returns: a
 * pool task the caller runs on top of, inside that task's helping join on the same
 * worker, or, for a coroutine, the thread, plait thread or pool task that called
 * plait_run, which returns only once the scheduler's coroutines have ended). */
int plait_mutex_lock(plait_mutex *mutex, int64_t deadline);
/* -EPERM when the caller is not the owner.  Wakes the first waiter; a running locker
 * may take the mutex first (the waiter then keeps its place in the queue, before every
 * waiter that came after it), except from a waiter that has waited over 1 ms, which is
 * handed it (docs/API.md). */
int plait_mutex_unlock(plait_mutex *mutex);

/* Condition variable used with a plait_mutex. */
int plait_cond_create(plait_cond **cond);
int plait_cond_destroy(plait_cond *cond); /* -EBUSY while waited on */
/* Atomically unlock mutex and wait; the mutex is locked again before returning, on
 * every outcome (0, -ETIMEDOUT, -ECANCELED, -ENOMEM).  -EPERM when the caller does not hold it.
 * Wake-ups may be spurious: wait in a loop on the predicate. */
int plait_cond_wait(plait_cond *cond, plait_mutex *mutex, int64_t deadline);
/* Wake one waiter (the first to wait), or every waiter; nothing when none waits (a
 * wake-up is not kept for a later wait).  0, -EINVAL for a null condition. */
int plait_cond_signal(plait_cond *cond);
int plait_cond_broadcast(plait_cond *cond);

/* Counting semaphore. */
int plait_sem_create(plait_sem **sem, unsigned initial);
int plait_sem_destroy(plait_sem *sem); /* -EBUSY while waited on */
int plait_sem_acquire(plait_sem *sem, int64_t deadline);
/* -EOVERFLOW when the count would pass UINT32_MAX. */
int plait_sem_release(plait_sem *sem);
/* The current count; INT_MAX when it is larger (up to UINT32_MAX, more than an int
 * holds); -EINVAL for a null semaphore (as plait_psem_value). */
int plait_sem_value(plait_sem *sem);

/* Manual-reset event: set wakes every waiter and lets later waits through until reset. */
int plait_event_create(plait_event **event);
int plait_event_destroy(plait_event *event); /* -EBUSY while waited on */
int plait_event_set(plait_event *event);
int plait_event_reset(plait_event *event);
int plait_event_wait(plait_event *event, int64_t deadline);
/* 1 when set, 0 when not; -EINVAL for a null event (not a truth value). */
int plait_event_is_set(plait_event *event);

/* Wait group (Go's sync.WaitGroup). */
int plait_waitgroup_create(plait_waitgroup **wg);
/* -EBUSY while waited on, or while the counter is above zero (a done() to come) */
int plait_waitgroup_destroy(plait_waitgroup *wg);
/* Add delta (may be negative); -EINVAL if the counter would go below zero, -EOVERFLOW
 * past INT32_MAX. */
int plait_waitgroup_add(plait_waitgroup *wg, int delta);
int plait_waitgroup_done(plait_waitgroup *wg);
/* Wait until the counter is zero. */
int plait_waitgroup_wait(plait_waitgroup *wg, int64_t deadline);

/* ----------------------------------------------------------------------------
 * Channels: typed by element size, buffered (capacity > 0) or unbuffered (0: each
 * send meets a receive).  Closing lets receivers drain what is buffered; after that
 * receive returns -EPIPE, and send on a closed channel returns -EPIPE at once.
 * ------------------------------------------------------------------------- */

typedef struct plait_chan plait_chan;

#define PLAIT_CHAN_ELEM_MAX ((size_t)1 << 20)
#define PLAIT_CHAN_CAPACITY_MAX ((size_t)1 << 28)

/* -EINVAL for elem_size 0 or > PLAIT_CHAN_ELEM_MAX, capacity > PLAIT_CHAN_CAPACITY_MAX. */
int plait_chan_create(plait_chan **chan, size_t elem_size, size_t capacity);
/* -EBUSY while a coroutine or thread waits on it, a select woken through another
 * channel included until it returns (a select woken through this one, by a hand-off or
 * the close, leaves it at once, whatever other cases it had on it). */
int plait_chan_destroy(plait_chan *chan);
/* Copy elem_size bytes from elem into the channel. 0, -EPIPE, -ETIMEDOUT, -ECANCELED;
 * -ENOMEM when a coroutine's wait with a deadline finds no memory for its timer (as
 * plait_sleep_until). */
int plait_chan_send(plait_chan *chan, const void *elem, int64_t deadline);
/* Copy the next element into elem. 0, -EPIPE (closed and drained), -ETIMEDOUT, -ECANCELED;
 * -ENOMEM as plait_chan_send. */
int plait_chan_recv(plait_chan *chan, void *elem, int64_t deadline);
/* Close; -EPIPE if closed already.  Waiting senders get -EPIPE, waiting receivers
 * get -EPIPE once the buffer is empty. */
int plait_chan_close(plait_chan *chan);
/* Elements buffered now. */
size_t plait_chan_len(plait_chan *chan);

enum plait_select_op { PLAIT_SEND = 1, PLAIT_RECV = 2 };

typedef struct plait_select_case {
    plait_chan *chan;
    int op;         /* PLAIT_SEND or PLAIT_RECV */
    void *elem;     /* what to send, or where to receive */
    int result;     /* out, for the case completed only: 0, or -EPIPE when it completed
                       on a closed channel (the other cases' results are left alone) */
} plait_select_case;

/* Wait until one case can complete, complete it, and return its index.  When several
 * can, one is chosen at random, each as likely as any other.  -EINVAL for n == 0, a
 * null array, a null channel or elem, or a bad op; -ETIMEDOUT; -ECANCELED; -ENOMEM
 * (more than 8 cases take memory). */
int plait_select(plait_select_case *cases, size_t n, int64_t deadline);

/* ----------------------------------------------------------------------------
 * More synchronisation: read-write lock, barrier, once.
 * ------------------------------------------------------------------------- */

typedef struct plait_rwlock plait_rwlock;

/* A read-write lock, fair both ways: a waiting writer holds back new readers, and a
 * writer's unlock lets in every reader that was waiting before the next writer. */
int plait_rwlock_create(plait_rwlock **rwlock);
/* -EBUSY while held or waited on. */
int plait_rwlock_destroy(plait_rwlock *rwlock);
/* Shared / exclusive.  0, -ETIMEDOUT, -ECANCELED, -ENOMEM, -EDEADLK when the caller holds the
 * write lock (or one beneath it on its thread does, as for the mutex); for a read lock, -EAGAIN when UINT_MAX read locks are held (POSIX's
 * "maximum number of read locks exceeded").  Readers are not tracked by identity: a
 * reader that read-locks twice while a writer waits deadlocks, as with POSIX's
 * writer-preferring locks, and a reader that asks for the write lock (an upgrade)
 * waits for itself, until its deadline: unlock first. */
int plait_rwlock_rdlock(plait_rwlock *rwlock, int64_t deadline);
int plait_rwlock_wrlock(plait_rwlock *rwlock, int64_t deadline);
/* -EPERM when no reader holds it. */
int plait_rwlock_rdunlock(plait_rwlock *rwlock);
/* -EPERM when the caller is not the writer. */
int plait_rwlock_wrunlock(plait_rwlock *rwlock);

typedef struct plait_barrier plait_barrier;

/* What plait_barrier_wait() returns to exactly one party of each round. */
#define PLAIT_BARRIER_SERIAL 1

/* A reusable barrier for parties coroutines or threads.  -EINVAL for 0 parties. */
int plait_barrier_create(plait_barrier **barrier, unsigned parties);
int plait_barrier_destroy(plait_barrier *barrier); /* -EBUSY while waited on */
/* Wait until parties callers are waiting, then release them all: one gets
 * PLAIT_BARRIER_SERIAL, the others 0.  A party whose wait ends with -ETIMEDOUT or
 * -ECANCELED before the round completes is withdrawn: the round still needs parties
 * callers. */
int plait_barrier_wait(plait_barrier *barrier, int64_t deadline);

/* One-time initialisation.  Define as `static plait_once once = PLAIT_ONCE_INIT;`.
 * The fields are plait's own. */
typedef struct plait_once {
    int state;
    uint64_t runner;
} plait_once;
#define PLAIT_ONCE_INIT {0, 0}

/* Run fn(arg) if no earlier call has completed it, exactly once across coroutines and
 * threads; concurrent callers wait until it has.  Returns 0 once initialised.  When fn
 * returns a negative code, that code is returned, the once stays uninitialised and
 * a later caller (one that was waiting, or a new one: whichever comes first) runs fn
 * again; so does a fn that ends its thread instead of returning (pthread_exit, or a
 * pthread_cancel acted on inside it), as pthread_once does; and in a forked child, a
 * run that another thread of the parent was in at the fork (the forking thread's own,
 * or its scheduler's coroutines', go on in the child and finish).  Leaving fn by
 * longjmp is undefined, as for pthread_once.  -EDEADLK when called from
 * inside its own fn (or from a pool task run inside a helping join in fn, on the same
 * worker, or from a coroutine of a scheduler that fn runs: fn cannot finish before it
 * returns); -ETIMEDOUT, -ECANCELED, -ENOMEM while waiting; -EINVAL for nulls. */
int plait_once_call(plait_once *once, int (*fn)(void *arg), void *arg, int64_t deadline);

/* ----------------------------------------------------------------------------
 * Threads.  A thread is a task like a coroutine: its handle is a plait_task, joined
 * (with a deadline), detached and cancelled through the same calls.
 *
 * Cancellation of work on a thread (a plait thread, or a pool task) is sticky and
 * cooperative, as for coroutines: plait_cancel() makes the plait call the thread is
 * blocked in, and every later one that would block, return -ECANCELED, and
 * plait_cancelled() true.  It cannot interrupt code that does not call plait.  A
 * thread that runs a scheduler is blocked in plait_run(): its main coroutine is
 * cancelled (main's own later calls see it, and the others are cancelled as main
 * returns), and plait_run() returns -ECANCELED.
 *
 * Task-local storage (plait_key) works on threads too: outside a coroutine a key holds
 * one value per thread, and its destructor runs when the thread ends.
 * ------------------------------------------------------------------------- */

/* Options for plait_thread_start(); zero-initialise and set what you need. */
typedef struct plait_thread_options {
    const char *name;   /* the OS thread's name (15 bytes kept, Linux's limit); NULL: "plait" */
    size_t stack_size;  /* bytes; 0: the system default; else 16 KiB .. PLAIT_STACK_MAX
                           (raised to the platform's minimum where that is more) */
} plait_thread_options;

/* Start fn(arg) on a new OS thread.  task may be NULL (detached at once).  Its result
 * and failure (PLAIT_FAIL) reach plait_join() as a coroutine's do; joining from the
 * thread itself is -EDEADLK, a second join -ESRCH.  A function ended by
 * pthread_exit() or pthread_cancel() has no result: joiners get -ECANCELED (and its
 * task-local destructors run); one that returned keeps its result when one of its
 * task-local destructors ends the thread so.  No plait call is a cancellation point
 * (a pthread_cancel is acted on at the thread's own next one: end a blocked plait
 * call with plait_cancel).  -EINVAL for a null fn or a bad stack size, -EAGAIN when
 * the system refuses another thread, -ENOMEM. */
int plait_thread_start(plait_task *task, plait_fn fn, void *arg,
                       const plait_thread_options *options);

/* The number of CPUs this process may use, at least 1: the calling thread's affinity
 * mask, lowered to the CPU limit of its cgroup (the thread's own where it is in one:
 * v1's tasks, v2's threaded mode) where it has one (cgroup v2's cpu.max,
 * v1's cpu.cfs_quota_us over cpu.cfs_period_us: the quota over the period, rounded up;
 * the smallest of its cgroup's and its ancestors'), as a container's "2 CPUs" are
 * usually a quota, not a mask.  Reads a few files each call. */
int plait_cpu_count(void);

/* ----------------------------------------------------------------------------
 * Thread pools: submit work, get a future.
 *
 * Each worker has its own deque: a task submitted from a worker (a task that spawns
 * tasks) goes on that worker's deque and idle workers steal from the others, so
 * fork-join work spreads over the pool.  (On x86-64 a busy worker's newest tasks are
 * private to it until the others need them: an idle worker gets one at the busy
 * worker's next push, or takes one itself some 150 µs later; see docs/API.md.)  A
 * pool task that waits for tasks (join, wait-any, wait-all, plait_completed_next)
 * runs queued tasks while it waits
 * instead of blocking its thread, so recursion of any depth cannot starve the pool;
 * the consequences: do not hold a plait mutex across such a wait inside a pool task
 * (a task run meanwhile on the same thread that wants it gets -EDEADLK; each task is
 * the owner of what it locks, not its worker: one on top of another cannot unlock
 * what the other holds, -EPERM), and a task run meanwhile
 * must not wait for the waiting task itself, or for what only it will do after its
 * wait: it runs on top of the waiting task, which resumes only when it returns.
 * Such a join starts no task after its deadline, but a task it has started (the one
 * it joins, perhaps) runs to its end first: the join returns when that task returns,
 * which may be past the deadline.
 *
 * No task is lost: every submitted task runs, or its future reports -ECANCELED.
 *
 * A pool belongs to the process that made it: its workers are not in a forked child,
 * so there every call on it (submit, map, shutdown, destroy) is -EPERM, and the child's
 * copy is not freed.  That holds for the parent's default pool too, but the child's
 * plait_pool_default() (and plait_to_thread) makes a new one, the child's own.  A child
 * forked inside a task that returns from the task ends there (_exit(0)): it is no
 * worker (so does one that returns from a plait thread's function, or from a map's
 * function, which is no runner of the map).  _exit flushes no
 * stdio stream (flushing would print again what the parent had buffered at the fork):
 * what such a child printed to a buffered stream and did not flush is lost, so it
 * calls fflush, or exit() itself, before it returns.
 * ------------------------------------------------------------------------- */

typedef struct plait_pool plait_pool;

#define PLAIT_POOL_THREADS_MAX 1024

typedef struct plait_pool_options {
    unsigned threads;   /* workers; 0: plait_cpu_count(), at most PLAIT_POOL_THREADS_MAX */
    const char *name;   /* thread names are "<name>-<i>" ("crunchers-0"), the name cut
                         * to 10 bytes so that "-<i>" fits the OS's 15; NULL: "pool"
                         * (the default pool's: "plait-<i>") */
} plait_pool_options;

/* options may be NULL.  -EINVAL for a null pool or threads > PLAIT_POOL_THREADS_MAX,
 * -EAGAIN when a worker thread cannot be started, -ENOMEM. */
int plait_pool_create(plait_pool **pool, const plait_pool_options *options);

/* Queue fn(arg) and return at once; task (may be NULL: detached) is its future, to
 * join, wait on or cancel like any task.  Cancelling a task that has not started means
 * it never runs (its future reports -ECANCELED).  -EPIPE once the pool is shut down
 * (not for a task of the pool itself, outside a coroutine: the tasks it queues run, or
 * with PLAIT_POOL_CANCEL complete as cancelled, as the queued tasks do),
 * -EPERM in a forked child of the process that made the pool, -EINVAL for nulls,
 * -ENOMEM.  A coroutine whose scheduler runs in a task of this pool waits for a free
 * worker to run what it submits (its join runs no queued task): for ever on a pool
 * of one worker, the scheduler's (plait_to_thread and plait_pool_map take threads of
 * their own there: threads kept idle two seconds after their work for the next such
 * call's).  fn must return: one that ends its worker's thread (pthread_exit,
 * a pthread_cancel acted on in its code) is not supported; its joiners are not told,
 * and the pool cannot finish a shutdown. */
int plait_pool_submit(plait_pool *pool, plait_task *task, plait_fn fn, void *arg);

/* results[i] = fn(args[i]) for i < n, run over the pool; returns when all are done.
 * Returns 0 when every call succeeded, else the first failure in index order;
 * errors[i] (may be NULL) gets each call's code and results[i] NULL for a failure.
 * On -ETIMEDOUT or -ECANCELED the calls not yet started are skipped (code -ECANCELED),
 * and the call returns once those already running have finished (a call from a pool
 * task runs no other queued task meanwhile): the array is never used after it
 * returns.  Called from a task of the same pool, whose wait runs the
 * map's work itself, the deadline is looked at between chunks of n / (threads * 16)
 * calls.  Called from a coroutine whose scheduler runs in a task of the same pool (whose
 * wait runs no queued task, and whose worker may be the only one), the map runs on
 * threads of its own instead (one per pool worker, at most one per item), and the
 * errors of plait_thread_start (-EAGAIN) are its own too; so does a map (or a
 * plait_to_thread of the default pool's) that those threads, or plait threads started
 * by them or by that coroutine, make on the same pool in turn, as they are no workers
 * either.  -EINVAL for nulls, n == 0
 * or n > SIZE_MAX >> 12, -EPIPE when shut down (as for plait_pool_submit: not for a
 * task of the pool itself outside a coroutine, whose map runs; a coroutine in such a
 * task gets -EPIPE), -EPERM in a forked child, -ENOMEM when no memory is left for its
 * runners (every item then says so, as for each refusal before any runner started);
 * from a coroutine, its timed wait's -ENOMEM (no memory for its timer, as for any timed
 * wait of a coroutine) cuts it short as a deadline does (the items say what ran and
 * what was skipped, -ECANCELED). */
int plait_pool_map(plait_pool *pool, plait_fn fn, void *const *args, size_t n,
                   void **results, int *errors, int64_t deadline);

enum plait_pool_shutdown_how {
    PLAIT_POOL_DRAIN = 0,   /* run every queued task, then stop */
    PLAIT_POOL_CANCEL = 1,  /* queued tasks report -ECANCELED, at once, while workers
                               are all held too (but for those on a one-worker pool's
                               deque, a batch its worker took or children its task
                               queued: once that task returns);
                               running ones are cancelled (unless membarrier(2), there
                               when the pool was made, is refused since: then they are
                               left to finish, and the tasks a held worker queued and
                               kept to itself complete as cancelled only when that
                               worker pushes, blocks in plait or takes them) */
};

/* Stop accepting work (submit returns -EPIPE) and wait until every worker has
 * stopped (the task-local destructors of the values pool tasks set, their workers',
 * run as the worker threads end, which plait_pool_destroy waits for and this does
 * not).  0 when stopped; -ETIMEDOUT when a task still runs, or is queued, at the
 * deadline (the pool stays shut; call again, with PLAIT_POOL_CANCEL to escalate).
 * Workers with no task left are only exiting: they are waited for, past the deadline
 * (a past one included), and the call returns 0.  -ECANCELED when the caller is
 * cancelled while it waits (the pool stays shut, as after -ETIMEDOUT), -ENOMEM when a
 * coroutine's wait finds no memory for its timer (as after -ETIMEDOUT).  -EDEADLK from
 * a task of this very pool (on a worker, or on the thread that runs it in a worker's
 * stead: a map's item or an offload from a coroutine whose scheduler runs in one of its
 * tasks); -EPERM for the default pool, or in a forked child; -EINVAL
 * for a bad how. */
int plait_pool_shutdown(plait_pool *pool, int how, int64_t deadline);

/* Shut down (draining) if not done yet, wait for the workers, free the pool.  A
 * cancelled caller waits too: this is clean-up, which must finish.  The workers' end
 * includes their task-local destructors (see plait_key_create): from a coroutine, a
 * thread of its own joins them while only the coroutine waits (where no thread can be
 * had, its scheduler waits for the joins).  -EBUSY (and
 * nothing freed) after a shutdown that timed out while a task still runs or is queued
 * (workers that are only exiting are waited for), or while another caller is still
 * inside plait_pool_shutdown on this pool once it has stopped (call again); -ENOMEM
 * (nothing freed: call again) when a coroutine's wait for the workers finds no memory
 * for its timer; -EDEADLK
 * from a task of this pool (as plait_pool_shutdown says); -EPERM for the default pool, or in a forked child
 * (a destroy a coroutine was inside as another coroutine of its scheduler forked goes
 * on in the child, where the workers are not: it answers -EPERM there within some
 * 50 ms, nothing freed).  No call on the pool may
 * begin once a destroy may have freed it, nor still be under way when it begins (a
 * submit on another thread that has returned nothing yet may still touch the pool,
 * even one whose task has already run: wait for that thread's call to return first). */
int plait_pool_destroy(plait_pool *pool);

/* The number of workers. */
unsigned plait_pool_threads(const plait_pool *pool);

/* The process-wide pool of plait_cpu_count() workers, created on first use and never
 * shut down.  NULL only when it could not be created (a later call tries again). */
plait_pool *plait_pool_default(void);

/* Run fn(arg) on the default pool and wait for it (asyncio's to_thread): from a
 * coroutine, only that coroutine waits while its scheduler runs the others.  (A
 * coroutine whose scheduler itself runs in a task of the default pool gets a thread
 * of its own instead: waiting on its own pool, it could wait for ever; and so does
 * the offload, or map, that such a thread makes on the default pool in turn.)  Returns
 * fn's outcome as plait_join() does.  When the deadline passes or the caller is
 * cancelled, the task is cancelled and the call returns -ETIMEDOUT or -ECANCELED (so
 * too -ENOMEM, when a coroutine's wait finds no memory for its timer); if it had
 * started, the call waits for it to return first, so fn may use the caller's memory.
 * A task that finished before the cancellation reached it gives its outcome (its
 * result, or its own failure) all the same: none is lost.  One that returns after the
 * cancellation reached it (even in the instant between fn's return and the pool's
 * record of it) reports the cancellation, and what fn returned is dropped, as
 * plait_cancel says: a fn that may be cancelled must not hand back memory that only its
 * caller would free.  -EAGAIN (no thread to be had)
 * or -ENOMEM when the default pool, made by the first call that needs it, cannot be
 * made; a later call tries again. */
int plait_to_thread(plait_fn fn, void *arg, void **result, int64_t deadline);

/* ----------------------------------------------------------------------------
 * As completed: tasks (coroutines, threads, pool tasks) handed back in the order
 * they finish, as Python's concurrent.futures.as_completed.
 * ------------------------------------------------------------------------- */

typedef struct plait_completed plait_completed;

/* An empty set: 0, -EINVAL for a null pointer, -ENOMEM. */
int plait_completed_create(plait_completed **set);
/* Watch a task.  The handle stays the caller's: join what next() gives back.
 * -ESRCH for a stale handle, -EBUSY when a set (this one or another) watches it
 * already (a finished task stays watched by a set being destroyed until that destroy
 * returns), -EPERM in a forked child for a task that is not the child's (see
 * plait_cancel). */
int plait_completed_add(plait_completed *set, plait_task task);
/* Wait for the next watched task to finish and give back its handle (0).  -EPIPE
 * when every watched task has been given back; -EDEADLK when every one not yet given
 * back is the caller's own task (its coroutine, or the plait thread or pool task it
 * runs in), which cannot finish while it waits; -ETIMEDOUT, -ECANCELED, -ENOMEM (a
 * coroutine's timer, as for plait_join: no handle is given back). */
int plait_completed_next(plait_completed *set, plait_task *task, int64_t deadline);
/* Stop watching and free the set (handles remain the caller's).  -EBUSY while a
 * caller is inside next() (waiting, or woken and not yet returned). */
int plait_completed_destroy(plait_completed *set);

/* ----------------------------------------------------------------------------
 * File descriptors: waiting, reading and writing with a deadline.
 *
 * From a coroutine only that coroutine waits (its scheduler's poller watches the
 * descriptor); from a thread, the thread waits (and a plait thread or pool task stays
 * cancellable).  Each call tries first and waits only when the descriptor would block,
 * so descriptors used from coroutines must be non-blocking: plait's own are, and
 * plait_fd_set_nonblock() makes any other one so.  From a thread a blocking descriptor
 * works, but its call then blocks in the kernel, where no deadline, cancellation or
 * plait_close() can reach it.  A regular file is always ready, unless its file system
 * polls it (/proc/self/mounts, sysfs attributes, trace_pipe): waited on as poll(2) would.
 * ------------------------------------------------------------------------- */

#define PLAIT_READABLE 0x1
#define PLAIT_WRITABLE 0x2
#define PLAIT_HANGUP 0x4   /* reported: the other end has closed */
#define PLAIT_ERROR 0x8    /* reported: an error is pending on the descriptor */

/* Wait until fd is ready for events (PLAIT_READABLE and/or PLAIT_WRITABLE).  Returns the
 * readiness seen of those events (> 0; PLAIT_HANGUP and PLAIT_ERROR whatever was asked),
 * -ETIMEDOUT, -ECANCELED, -EBADF, -EINVAL for no or unknown events, -EBUSY when another
 * coroutine of this scheduler already waits on fd for the same event, -ENOMEM.  The
 * first wait of a
 * scheduler makes its poller (an eventfd and an epoll or io_uring instance), a
 * thread's first wait its wake-up eventfd: -EMFILE (or -ENFILE) when no descriptor is
 * left for them (and a plain thread's first wait -EAGAIN while the program holds every
 * pthread key: closing that eventfd at the thread's end needs one; a later wait tries
 * again); so can a read or write that must wait, and a wait under way at a fork() in a
 * child that has none left for its own poller.  On epoll, -ENOSPC when the user's
 * watches are at the kernel's limit (fs.epoll.max_user_watches), and a coroutine's
 * -ELOOP on an epoll descriptor nested too deep for the kernel to add to another set
 * (five sets each watching the next; io_uring and a thread's wait poll it). */
int plait_wait_fd(int fd, int events, int64_t deadline);

/* One read / write, waiting first if fd would block: the bytes moved (0 from read at
 * end of file), or -ETIMEDOUT, -ECANCELED, or the system call's error (-EPIPE when a
 * pipe's reader has gone: plait ignores SIGPIPE once it has made a pipe or socket or
 * been asked to write any descriptor, if the program left it at its default; a watcher of SIGPIPE then gives back
 * "ignored" as it goes; -EIO from a read io_uring made whose completion the kernel
 * dropped, for want of memory: its bytes are lost).  -EBUSY, from a coroutine, when
 * another coroutine of its scheduler already waits to read fd (to write it, for a
 * write), as for plait_wait_fd: one reader and one writer per descriptor per scheduler
 * (two readers of one stream would race for its bytes anyway); threads and other
 * schedulers may wait on it alongside.  The same holds for accept, send-to and
 * receive-from.
 * A write is write(2) (send(2) on a socket) first, on either poller.  Zero bytes: a
 * read returns 0 and takes nothing, a write is write(2)'s (on a datagram socket, an
 * empty datagram).  -EINVAL for len > SSIZE_MAX or a NULL buf with len > 0 (any other
 * length is the system call's to judge: -EFAULT past the address space).  A write that
 * has to wait for room may be overtaken by another coroutine's later write that finds
 * room (as with write(2) from two threads): coroutines that share a stream should take
 * turns (a mutex).  A descriptor that still polls ready after its write failed with
 * EAGAIN (an eventfd whose count the value would overflow) is tried again after
 * pauses, doubling from 50 µs to 10 ms, after eight quick tries: no busy CPU.
 * Turns: a call that moved something (these, and accept, send-to, receive-from) yields
 * before it returns when its coroutine has made 64 such calls in a row without a
 * switch, so a peer that never makes it wait cannot hold the scheduler's other
 * coroutines off; a cancellation during that yield is the next call's to report.
 * plait_read_exactly and plait_write_all yield so between their transfers too: a
 * plait_close of fd meanwhile ends them with -EBADF. */
ssize_t plait_read(int fd, void *buf, size_t len, int64_t deadline);
ssize_t plait_write(int fd, const void *buf, size_t len, int64_t deadline);
/* All len bytes, or an error; *done (may be NULL) gets the bytes moved on every
 * outcome.  plait_read_exactly() returns -ENODATA at an end of file before len bytes. */
int plait_read_exactly(int fd, void *buf, size_t len, size_t *done, int64_t deadline);
int plait_write_all(int fd, const void *buf, size_t len, size_t *done, int64_t deadline);
/* Set (on != 0) or clear O_NONBLOCK.  0 or -errno. */
int plait_fd_set_nonblock(int fd, int on);
/* The kernel interface schedulers wait on descriptors with: "io_uring" where the
 * kernel allows it, else "epoll"; PLAIT_POLLER=epoll in the environment picks epoll
 * (and a ThreadSanitizer build always does).
 * Both behave the same; io_uring saves a system call per wait. */
const char *plait_io_backend(void);

/* Close fd after waking every plait wait on it (coroutines on any scheduler, plain and
 * plait threads), which returns -EBADF; so does a call whose wait on fd had already
 * ended (fd ready, or its deadline come) but which had not yet run again: it makes no
 * read or write on the number after the close (bytes the kernel already moved for it
 * are returned; plait_read_exactly counts them in *done and stops there, -EBADF).  A
 * plait_file_* call on fd that the pool has not started yet is withdrawn: -EBADF, not
 * made; one started goes on with the file it began on if its system call has reached
 * the kernel, else it is -EBADF, and until it has ended the number stays taken (by an
 * O_PATH placeholder), so that it never reaches a file opened meanwhile (a second
 * plait_close of the number meanwhile is -EBADF; the file's own close then reports no
 * error, as dup3 gives none; with no descriptor left for the placeholder, the close is
 * a plain close).  The calling scheduler's own
 * watch on fd (and
 * any read or write queued in its ring) is taken back first, so the peer sees the
 * close when this returns; another scheduler's, when its woken waiter runs; a plain
 * thread's (a plait thread, a pool task, in plait_accept or plait_recvfrom, say) when
 * that thread is back from its poll(2), a moment later: until then the socket is
 * there, its port bound (a listen on it right after is -EADDRINUSE: join the
 * acceptor threads first).  Close
 * descriptors that coroutines may be waiting on or writing with this, not close(2): a
 * poller does not notice a plain close, so a coroutine waiting on the descriptor may
 * sleep until its deadline, and a request queued in a ring would go to whatever file
 * next takes the number.  A plait call on fd in another thread that has tried but not
 * yet begun to wait sees the close when it would wait, and tries once more: -EBADF
 * (or what a file that took the number meanwhile says: closing a descriptor another
 * thread still uses is a race in any program).  0, -EBADF for a
 * descriptor that is not open, or close(2)'s other errors (the descriptor is closed
 * all the same, as close(2) says). */
int plait_close(int fd);

/* Files, read and written without blocking the scheduler: from a coroutine the call
 * runs on the default pool while only the coroutine waits; from a thread it is made
 * in place.  They are for regular files and block devices, which are always "ready"
 * and yet may wait for the disk.  A pipe, FIFO, socket or terminal is not refused, but
 * a call on one that must wait for its peer (the open of a FIFO until the other end
 * opens, a read until data comes) holds a pool worker until then, with no deadline:
 * use plait_read/plait_write on those, which wait on the poller.  Once started, an
 * operation is waited for to its end and its result returned even if the coroutine is
 * cancelled meanwhile (the bytes moved cannot be taken back; the cancellation shows at
 * the next wait); a cancellation that comes first (of the calling coroutine, plait
 * thread or pool task), or while the operation still waits in the pool's queue, is
 * -ECANCELED and the operation is not made; a plait_close of its descriptor while it
 * still waits there is -EBADF, and it is not made either.  open() adds O_CLOEXEC and returns the
 * descriptor; read and write at offset (< 0: at the file position, moving it) return
 * the bytes moved.  From a coroutine, the default pool's refusal is returned as it is
 * (-EAGAIN when it can start no worker thread, which is no "try again" of the file).
 * Errors are -errno (a write to a pipe or socket whose reader has gone
 * is -EPIPE: plait ignores SIGPIPE then, as for plait_write). */
int plait_file_open(const char *path, int flags, mode_t mode);
ssize_t plait_file_read(int fd, void *buf, size_t len, off_t offset);
ssize_t plait_file_write(int fd, const void *buf, size_t len, off_t offset);
int plait_file_sync(int fd);

/* ----------------------------------------------------------------------------
 * Signals, delivered to a waiting coroutine or thread.
 *
 * A watcher counts every delivery to the process of the signals it names, from its
 * creation on, until plait_signals_wait() takes them (several watchers of a signal
 * each see every delivery).  While a signal has a watcher, plait's handler replaces
 * its disposition (so SIGINT/SIGTERM no longer end the program: the watcher decides);
 * the old one is back when its last watcher is destroyed (once plait's dispatcher
 * thread blocks it again: a signal sent then stays pending where every other thread
 * blocks it), and in a forked child.  A
 * watched signal reaches its watchers even when the program's threads all block it
 * (plait's dispatcher thread takes it), unless it was sent to one thread (pthread_kill).
 * SIGCHLD may be watched without disturbing plait's processes.  As with any signal,
 * deliveries of one signal that come together may be merged by the kernel (and, in a
 * ThreadSanitizer build, those of a real-time signal too, which its runtime queues
 * one deep).
 * ------------------------------------------------------------------------- */

typedef struct plait_signals plait_signals;

/* Watch n signals.  -EINVAL for none, or for SIGKILL, SIGSTOP, the faults a thread
 * causes itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL) and numbers out of range; a signal
 * whose handler the C library refuses (glibc keeps 32 and 33) gives its -errno, and
 * the set is refused whole: the handlers taken for the others are given back.  The
 * process's first create makes plait's self-pipe and dispatcher thread: -EMFILE or
 * -ENFILE when no descriptor is left for the pipe, -EAGAIN when the thread cannot be
 * started, -ENOMEM (nothing is watched then; a later create tries again). */
int plait_signals_create(plait_signals **watcher, const int *signals, size_t n);
/* The next delivery not yet taken: its signal number (> 0), lowest-numbered first,
 * or -ETIMEDOUT, -ECANCELED.  In a child of _Fork() (no fork handlers), which keeps its
 * parent's watchers, the first create or wait starts the child's own dispatcher thread:
 * -EAGAIN, -EMFILE or -ENFILE when it cannot. */
int plait_signals_wait(plait_signals *watcher, int64_t deadline);
/* Stop watching (deliveries not taken are dropped).  -EBUSY while waited on.  The last
 * watcher of a signal waits for plait's dispatcher thread to block it (a wake-up of
 * that thread: a create and destroy take some 20 µs, not 3).  A forked child's
 * inherited watchers see nothing there, not even deliveries the parent's had taken in;
 * the child may destroy them: they are freed, whatever the parent's other threads
 * waited on them (they are not in the child); a wait of a coroutine of the thread that
 * forked still makes it -EBUSY there. */
int plait_signals_destroy(plait_signals *watcher);

/* ----------------------------------------------------------------------------
 * Sockets: TCP and Unix stream sockets, UDP; IPv4 and IPv6.
 *
 * Every socket plait makes is non-blocking and close-on-exec, so it can be used from
 * coroutines and threads alike with plait_read/plait_write/plait_read_exactly/
 * plait_write_all, and closed with plait_close.  Calls that wait take a deadline and
 * are cancellable; connect, accept, send-to and receive-from from a coroutine suspend
 * only that coroutine.  Descriptors come back as >= 0; errors as -errno.
 * ------------------------------------------------------------------------- */

/* A socket address: IPv4, IPv6 or a Unix path.  len is its exact size (the family's
 * sockaddr_in, sockaddr_in6, or a sockaddr_un to the end of its path), as plait's own
 * constructors set it: an address made by hand with another length (that of a
 * sockaddr_storage, say) is -EINVAL to the calls that take one. */
typedef struct plait_addr {
    socklen_t len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage any;
    } u;
} plait_addr;

/* A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]": brackets for IPv6 only)
 * and port (0..65535); an IPv6 address may name its scope (zone) with an interface's
 * name or index: "fe80::1%eth0", "[fe80::1%2]".  NULL host is the wildcard address "::"
 * (which takes IPv4 too).  -EINVAL for a host that is not numeric (or whose scope is a
 * name that names no interface: an index is taken as given, as getaddrinfo takes it)
 * or a bad port; a scope given by name is looked up through a socket: -EMFILE/-ENFILE
 * when no descriptor is left for it, and the errno of a sandbox that refuses it
 * (-EPERM, -EACCES, -EAFNOSUPPORT), as given. */
int plait_addr_ip(plait_addr *out, const char *host, int port);
/* A Unix socket path; -ENAMETOOLONG when it does not fit (108 bytes at most: a path
 * that fills sun_path goes without its NUL, as Linux takes it), -EINVAL for an empty
 * one. */
int plait_addr_unix(plait_addr *out, const char *path);
/* "1.2.3.4:80", "[::1]:80", "[fe80::1%eth0]:80" (the scope id: the interface's name,
 * or its number where no interface has it, where the name is all digits, which would
 * parse back as another index, or where the name cannot be looked up: that takes a
 * socket, so with no descriptor left or in a sandbox that refuses sockets the number
 * is written; getnameinfo(NI_NUMERICHOST) writes the name only for
 * link-local addresses, and both forms parse back)
 * or the path ("@name" for an abstract one: a path beginning with '@' reads the same),
 * into buf: its length, -ENOSPC when cap is too small, -EINVAL for an
 * unknown family.  The text of an IP address, less its ":port", parses back to it with
 * plait_addr_ip.  A buffer of PLAIT_ADDR_STRLEN bytes takes any address. */
int plait_addr_format(const plait_addr *addr, char *buf, size_t cap);
/* Room for any plait_addr_format text and its NUL: a Unix path of 108 bytes; for IPv6
 * "[" 45 "%" 15 "]:65535". */
#define PLAIT_ADDR_STRLEN 112
/* The port of an IPv4/IPv6 address, -EINVAL for others. */
int plait_addr_port(const plait_addr *addr);

#define PLAIT_STREAM 1   /* TCP */
#define PLAIT_DGRAM 2    /* UDP */

/* Resolve a host name or numeric address and a port for a socket type (PLAIT_STREAM
 * or PLAIT_DGRAM): up to cap addresses into out, in the system's order of preference,
 * and their count (> 0).  Runs getaddrinfo() on the default pool, so the scheduler
 * goes on (from a pool task, on a thread of its own, whose wait runs no other queued
 * task: a helping join would run the lookup, or another task, in place, past the
 * deadline); a numeric host, in any form getaddrinfo or plait_addr_ip
 * takes ("127.1", "fe80::1%lo", "[fe80::1%lo]"), is parsed at once.  -ENOENT for a name
 * that does not exist and for an IPv6 address whose scope is a name that names no
 * interface (an index is taken as given; getaddrinfo's answer; plait_addr_ip's is -EINVAL), -EAGAIN for a temporary failure of the name service, -EIO for
 * one that is not (EAI_FAIL), -ENOMEM, another -errno for a system error, -EINVAL
 * for bad input, -EMFILE/-ENFILE as plait_addr_ip has them and when the lookup had no
 * descriptor left (not -ENOENT, as glibc's answer then has it), -ETIMEDOUT / -ECANCELED
 * (a lookup already running finishes in the background and is discarded;
 * one not started yet is not made, so abandoned lookups behind a slow name service
 * do not hold the pool's workers). */
int plait_resolve(const char *host, int port, int type, plait_addr *out, size_t cap,
                  int64_t deadline);

/* A listening stream socket bound to addr (port 0: one the kernel picks; see
 * plait_local_addr).  SO_REUSEADDR is set for IP addresses; the IPv6 wildcard takes
 * IPv4 too.  backlog <= 0 picks SOMAXCONN.  -EADDRINUSE and the other errors of
 * socket/bind/listen. */
int plait_listen(const plait_addr *addr, int backlog);
/* The same for a host name or numeric address (NULL: every address) and port: the
 * first of the resolved addresses (the first 8) that binds.  A name is looked up as plait_resolve does, with
 * no deadline but the name service's own (-ECANCELED when the caller is cancelled
 * meanwhile); resolve first, with a deadline, and plait_listen, where that matters. */
int plait_tcp_listen(const char *host, int port, int backlog);
/* The same for a Unix socket path (which must not exist). */
int plait_unix_listen(const char *path, int backlog);

/* Accept the next connection: its descriptor, and the peer's address into peer (may
 * be NULL).  Waits until the deadline.  A connection that failed before it was taken
 * (ECONNABORTED, and the network errors accept(2) says to retry after: ENETDOWN,
 * EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, ENETUNREACH) is skipped: the
 * call goes on to the next one, so an accept loop is not ended by one client; a try
 * (a past deadline) or a cancelled caller takes a good one queued behind it too (a run
 * of them still lets the scheduler's other coroutines run, and ends at the deadline, a
 * close of fd or a cancellation, looked at every 64 failed connections).
 * -EMFILE/-ENFILE when descriptors have run out (the connection stays queued), -EINVAL
 * for a socket that is not listening or was shut down for reading (a Unix listener's
 * connections queued before are taken first; Linux resets a TCP listener's at the
 * shutdown, so a server that stops takes them before: examples/echo_server.c),
 * -EOPNOTSUPP for one that is not a stream, -ENOTSOCK for a descriptor that is not a
 * socket, -ETIMEDOUT, -ECANCELED, -EBADF, -EBUSY when another coroutine of this
 * scheduler already waits to accept on fd (one acceptor per listener per scheduler:
 * acceptors on other schedulers or threads may share it). */
int plait_accept(int fd, plait_addr *peer, int64_t deadline);

/* Connect a stream socket to addr: its descriptor once connected.  -ECONNREFUSED,
 * -ENETUNREACH, ..., -ETIMEDOUT, -ECANCELED (the half-made socket is closed; a cancelled
 * caller still gets a connection made at once, as to a Unix listener with room).  A Unix
 * listener whose backlog is full is tried again, 1 ms to 50 ms apart, until the
 * deadline. */
int plait_connect(const plait_addr *addr, int64_t deadline);
/* Resolve host and port and connect to the addresses in turn (the first 8 resolved)
 * until one answers, within one deadline: the descriptor, or the last address's error. */
int plait_tcp_connect(const char *host, int port, int64_t deadline);
int plait_unix_connect(const char *path, int64_t deadline);

/* shutdown(2): how is SHUT_RD, SHUT_WR or SHUT_RDWR.  Waiting readers of the socket
 * see end of file (a datagram socket's too, once its queued datagrams are taken), and
 * waiting accepts of a listener shut down for reading -EINVAL.  0 or -errno (0 for an
 * unconnected datagram socket too, which Linux shuts down though it says ENOTCONN). */
int plait_shutdown(int fd, int how);

/* A UDP socket bound to addr (port 0: any port); for an IPv6 address it takes IPv4
 * too.  Send to IPv4 peers from an IPv6 socket with plait_addr_ip("::ffff:1.2.3.4"),
 * or bind an IPv4 address. */
int plait_udp_bind(const plait_addr *addr);
/* One datagram: sent whole (the byte count) or not at all; received into buf (its
 * length; a longer datagram is cut to len, the rest of it gone: plait_recvfrom_flags
 * says so), with its sender's address into from (may be NULL).  to may be NULL on a
 * connected socket.  -EMSGSIZE (a send longer than a datagram can be, SSIZE_MAX
 * bytes and more included), -EINVAL for a receive of more than SSIZE_MAX bytes (as
 * plait_read), -ETIMEDOUT, -ECANCELED, -EBUSY as for plait_read, ... */
ssize_t plait_sendto(int fd, const void *buf, size_t len, const plait_addr *to,
                     int64_t deadline);
ssize_t plait_recvfrom(int fd, void *buf, size_t len, plait_addr *from, int64_t deadline);
/* plait_recvfrom, and *flags (may be NULL) set on success: PLAIT_TRUNCATED when the
 * datagram was longer than len (buf holds its first len bytes; the rest is gone),
 * else 0.  (A buffer of 65,535 bytes holds any UDP datagram but an IPv6 jumbogram.) */
#define PLAIT_TRUNCATED 1
ssize_t plait_recvfrom_flags(int fd, void *buf, size_t len, plait_addr *from, int *flags,
                             int64_t deadline);

/* The socket's own address and its peer's.  0 or -errno (-ENOTCONN). */
int plait_local_addr(int fd, plait_addr *out);
int plait_peer_addr(int fd, plait_addr *out);

/* Socket options users need.  value: 0 off, any positive value on (as setsockopt(2)
 * reads a flag; get gives back 0 or 1), except PLAIT_KEEPALIVE (0 off, else on, the
 * first probe after value seconds idle) and the buffer sizes (bytes).  plait_socket_get
 * gives back the current value (KEEPALIVE: the idle seconds when on; a buffer size as
 * the kernel keeps it: twice what was set, for its own bookkeeping).  -ENOPROTOOPT
 * for an option the socket does not have (no-delay and keep-alive are TCP's: a Unix or
 * UDP socket has neither; reuse-port is an Internet socket's, not a Unix one's), -EINVAL for an unknown option, a negative value, or one the
 * kernel refuses (a keep-alive idle time over 32767 s); a refused value changes nothing.
 * -ENOTSOCK for a descriptor that is not a socket, -EBADF for one that is not open. */
enum plait_sockopt {
    PLAIT_NODELAY = 1,   /* TCP_NODELAY: send small writes at once */
    PLAIT_REUSEADDR,     /* SO_REUSEADDR */
    PLAIT_REUSEPORT,     /* SO_REUSEPORT: several listeners share a port */
    PLAIT_KEEPALIVE,     /* SO_KEEPALIVE with TCP_KEEPIDLE */
    PLAIT_RCVBUF,        /* SO_RCVBUF */
    PLAIT_SNDBUF         /* SO_SNDBUF */
};
int plait_socket_set(int fd, enum plait_sockopt option, int value);
int plait_socket_get(int fd, enum plait_sockopt option, int *value);

/* ----------------------------------------------------------------------------
 * Processes.  A process is a task like a coroutine or a thread: its handle is a
 * plait_task, joined (with a deadline), waited on with others, cancelled.
 *
 * A function in a child process: plait_process_start() forks a child that runs
 * fn(arg, arg_len, out, out_cap).  The argument is copied in by the fork itself (the
 * child sees the parent's memory as it was at the fork, copy-on-write), so arg may
 * point anywhere.  fn writes its result into out and returns its length, or a
 * negative code to fail; the result is copied back into the parent, where plait_join()
 * gives it as a plait_bytes (free() it).  A child that dies or exits before fn returns
 * fails the task with PLAIT_KILLED(signal) or PLAIT_EXITED(status), and so does one
 * killed by a signal after fn returned, in the instant before it exits (its result is
 * dropped: the exit status is the child's last word); one that wrote over
 * the memory carrying its outcome (before out), with -EPROTO.  A process that fn forks
 * and that returns from fn too is not the task's: it ends there (_exit(0)), and what it
 * returned is dropped.
 *
 * A program: plait_process_exec() runs file with argv (searched in PATH) with the
 * environment, working directory and standard streams of the options; the streams can
 * be pipes that the caller reads and writes (plait_read/plait_write, from coroutines
 * too).  Joining gives 0 for exit status 0, else PLAIT_EXITED(status) or
 * PLAIT_KILLED(signal).
 *
 * A child never outlives its parent silently: it is killed (SIGKILL) when the parent
 * ends, however it ends, and when the parent executes another program (the kernel ends
 * plait's thread that forked it then) — but not a child that changes its credentials
 * (a set-user-ID, set-group-ID or file-capability program, or a function or program
 * that calls setuid(2), setgid(2) and the like, as one that drops privileges does),
 * for which the kernel clears the parent-death signal.  plait reaps every child it starts as soon as it ends (no
 * zombies), through the child's pidfd (Linux 5.4 or later: waitid's P_PIDFD), without
 * a SIGCHLD handler.
 * If the program reaps it first (SIGCHLD ignored, waitpid(-1)), its task reports
 * -ECHILD (a function child that returned still gives its result).
 * plait_cancel() kills the child (SIGKILL) and its task reports -ECANCELED; so does a
 * task whose child had just ended on its own when the cancellation came, before its
 * outcome was recorded (what it returned is dropped).
 *
 * Fork: what parent and child share.  After the fork, each has its own copy of all
 * memory (copy-on-write): a variable the child changes is not changed in the parent.
 * They share only what was made to be shared before the fork: plait_shm regions,
 * process mutexes, semaphores and events, queues, and open descriptors.  The child
 * starts with plait's global state reset (no manager, no default pool: made again on
 * first use), so it may use all of plait; objects that other threads of the parent
 * were using at the fork (a plait_mutex, a channel, a plait_completed set that one of
 * them waited on or whose task finished on one) are copies of that moment's state
 * and must not be used in the child.  A task handle from before the fork is the child's
 * only when the thread that forked runs its task (a coroutine of its scheduler): every
 * call in the child on any other such handle (one of the parent's other threads, running or
 * finished, or one run in another process; or one the parent made after the fork and
 * passed to the child) is -EPERM, whatever the parent's threads were doing with it at
 * the fork.  Those of the forking thread's scheduler are the
 * child's whatever the parent's other threads were doing with them: a fork waits for
 * a thread inside a call on one (a join, a cancel) to leave what it holds.  To find
 * them, a fork from a coroutine looks at every task future the process has made so far
 * (tens of nanoseconds each: milliseconds in a process that once had a hundred
 * thousand tasks in flight, more than the fork itself); a fork from a thread that runs
 * no scheduler (plait's own: function children, process pool workers) does not.  A
 * child forked from a coroutine goes on with its scheduler's coroutines; a wait among
 * them for what only the parent's other threads would do (a pool task's or a
 * thread's end, plait_to_thread included, a send from another thread), or on an
 * object another thread was inside a call on at the fork (its lock held for ever
 * there), never ends in the child but at its deadline (-ETIMEDOUT) or cancellation,
 * leaving such an object untouched (but a call that goes back to the object after its
 * wait, such as plait_group_wait or plait_completed_next, waits for its lock for ever:
 * docs/API.md, "Fork"); a plait_process_start or
 * plait_process_exec in progress (the manager thread makes it), which takes neither,
 * never ends there (docs/API.md, "Fork").  The calling thread flushes every stdio
 * stream before plait forks a function child or a process pool's workers (a program's
 * exec drops what it inherits), waiting for a stream another thread holds; what other
 * threads write to stdout and stderr meanwhile
 * stays the parent's to write, but what they write into another stream meanwhile a
 * function child writes again as it ends (docs/API.md, "Processes").
 * ------------------------------------------------------------------------- */

/* A result copied back from a child process: len bytes at data.  free() it.  (A
 * flexible array member: C99's, an extension of C++'s compilers, which -pedantic would
 * name in every C++ file that includes plait.h.) */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
typedef struct plait_bytes {
    size_t len;
    unsigned char data[];
} plait_bytes;
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* A function to run in another process: read arg_len bytes at arg, write the result
 * (at most out_cap bytes) at out and return its length, or return a negative code to
 * fail (from -1 to -4095: one below fails the task with -EINVAL).  A length over
 * out_cap fails the task with -EMSGSIZE. */
typedef ssize_t (*plait_proc_fn)(const void *arg, size_t arg_len, void *out,
                                 size_t out_cap);

/* How the parent learns that a child ended early: codes in the PLAIT_FAIL range. */
#define PLAIT_KILLED(sig) (-(1024 + (sig)))
#define PLAIT_EXITED(status) (-(2048 + ((status) & 255)))
/* The signal / exit status an error code names, or -1 when it names none. */
#define PLAIT_KILL_SIGNAL(err) ((err) <= -1025 && (err) >= -1024 - 127 ? -(err) - 1024 : -1)
#define PLAIT_EXIT_STATUS(err) ((err) <= -2048 && (err) >= -2048 - 255 ? -(err) - 2048 : -1)

/* The room for a function's result by default, and the most that can be asked for. */
#define PLAIT_RESULT_DEFAULT ((size_t)64 * 1024)
#define PLAIT_RESULT_MAX ((size_t)1 << 30)

enum plait_stdio_mode {
    PLAIT_STDIO_INHERIT = 0,    /* the parent's own stream */
    PLAIT_STDIO_PIPE = 1,       /* a pipe whose other end the caller gets */
    PLAIT_STDIO_NULL = 2,       /* /dev/null */
};

/* Options for plait_process_start/exec(); zero-initialise and set what you need.  What
 * the options ask of the child (its working directory, its streams) is set up in it:
 * exec reports a failure at the call (-ENOENT, ...); a function child does not call fn
 * and its task fails with that error instead. */
typedef struct plait_process_options {
    size_t result_max;       /* a function's result room; 0: PLAIT_RESULT_DEFAULT */
    char *const *env;        /* exec: the environment ("NAME=value", NULL-ended); NULL: ours */
    const char *cwd;         /* the child's working directory; NULL: ours */
    int stdio[3];            /* stdin, stdout, stderr: PLAIT_STDIO_* */
} plait_process_options;

/* The caller's ends of the pipes asked for: write the child's stdin to in, read its
 * stdout and stderr from out and err; -1 where no pipe was asked for.  Non-blocking and
 * close-on-exec; the caller closes them.  The child holds only its own ends (a function
 * child too): it sees the end of its stdin when the caller closes in, and the caller
 * sees the end of out when the child closes its stdout. */
typedef struct plait_pipes {
    int in, out, err;
} plait_pipes;

/* Fork a child that runs fn(arg, arg_len, ...); task (may be NULL) is its future.
 * pipes may be NULL unless a stream is PLAIT_STDIO_PIPE.  -EINVAL for a null fn, a
 * null arg with arg_len > 0, bad options; -EAGAIN when the system refuses a process;
 * -EMFILE / -ENFILE when no descriptor is left (for its pidfd, its pipes); -ENOMEM;
 * -ENOSYS on a kernel without pidfds. */
int plait_process_start(plait_task *task, plait_proc_fn fn, const void *arg,
                        size_t arg_len, const plait_process_options *options,
                        plait_pipes *pipes);

/* Run a program: file (NULL: argv[0]) with argv (NULL-ended).  A program that cannot be
 * run is reported here (-ENOENT, -EACCES, ...), not as an exit status: the call returns
 * once the exec is decided, however long that takes (an exec waits for a lease on its
 * file to be let go, a stopped file system), and only the caller waits for it: plait's
 * other starts and exits go on meanwhile.  It gets SIGPIPE
 * at its default if plait ignored it (see plait_write), ignored if the program had
 * ignored it before plait made its first pipe or socket.  Otherwise as
 * plait_process_start(), -EMFILE / -ENFILE included (it takes a pipe of its own too). */
int plait_process_exec(plait_task *task, const char *file, char *const argv[],
                       const plait_process_options *options, plait_pipes *pipes);

/* The child's process id.  -ESRCH for a stale handle, -EINVAL when the task is not a
 * process, -EPERM in a forked child for a task from before the fork that is not the
 * child's (a process the parent started, or any task of the parent's other threads:
 * see "Fork"), before it is known whether the task is a process. */
int plait_process_pid(plait_task task);

/* Send signal sig to the child (SIGTERM to ask it to end, SIGKILL to end it).  -ESRCH
 * when it has ended (once plait has seen the end: a child that ended a moment ago and
 * is not yet reaped still takes the signal, which does nothing, and this returns 0) or
 * the handle is stale, -EINVAL for a bad signal (0 included: no
 * "is it alive" probe, as kill(2)'s) or a task that is
 * not a process, -EPERM in a forked child for a task from before the fork that is not
 * the child's (as plait_process_pid), and -EPERM when the system refuses the signal (a
 * program that changed its user, as a set-user-ID one does: plait_cancel of its task
 * then kills nothing either, and its join waits for the program's own end). */
int plait_process_kill(plait_task task, int sig);

/* ----------------------------------------------------------------------------
 * Sharing between processes.  Each object below is made in one process and shared
 * with the children it forks (plait_process_start, process pool workers, or fork())
 * after it was made; it is the same object, at the same address, in all of them.
 * Each process destroys its own handle (the memory goes with the last one, or when
 * the processes end: nothing is left in the system).  Blocking calls work from
 * coroutines (only the coroutine waits) and threads, in any of the processes, and
 * take a deadline.  Coroutine waits on these objects want Linux 5.16 (futex_waitv;
 * before it they look every millisecond, a thread's every 10 ms); a process's watcher
 * threads sleep on 8,128 such words at once, and a coroutine waiting past that looks
 * at its word every millisecond.  A waiter looks every 100 ms whether the process it
 * waits for still exists, so a holder whose death nobody reports (a grandchild whose
 * parent died first, reaped by init) is seen gone once reaped; a process mutex's
 * locker looks at its deadline too (so a past deadline tries a lock whose holder is
 * gone), and its destroy does; a semaphore's or an event's waiter looks at its
 * deadline too (a release or set whose wake-up never came, its process stopped or dead
 * unreported, is found then).  A holder that calls exec keeps the lock until the
 * program it became ends (a robust pthread mutex would be released at the exec).  A
 * forked child may destroy the handles its parent's other threads waited on.  Every
 * blocking call below may also answer -ENOMEM when a coroutine's wait with a deadline
 * finds no memory for its timer.
 * ------------------------------------------------------------------------- */

typedef struct plait_shm plait_shm;

#define PLAIT_SHM_MAX ((size_t)1 << 40)

/* A region of size zeroed bytes, shared with children forked afterwards; it has a lock
 * of its own for "a shared value and its lock".  -EINVAL for 0 or > PLAIT_SHM_MAX,
 * -ENOMEM. */
int plait_shm_create(plait_shm **shm, size_t size);
/* The bytes (aligned to 64), and how many; NULL / 0 for NULL. */
void *plait_shm_data(plait_shm *shm);
size_t plait_shm_size(const plait_shm *shm);
/* The region's lock: as plait_pmutex_lock/unlock. */
int plait_shm_lock(plait_shm *shm, int64_t deadline);
int plait_shm_unlock(plait_shm *shm);
/* Unmap the region in this process.  -EBUSY while its lock is held, or a coroutine or
 * thread of this process waits for it. */
int plait_shm_destroy(plait_shm *shm);

typedef struct plait_pmutex plait_pmutex;
typedef struct plait_psem plait_psem;
typedef struct plait_pevent plait_pevent;

/* A mutex between processes, owned by the coroutine, thread or pool task that locked
 * it.  One whose owner ends holding it (its process alive) stays held, as a pthread
 * mutex that is not robust does: only a process's death is repaired (-EOWNERDEAD). */
int plait_pmutex_create(plait_pmutex **mutex);
/* -EBUSY while it is held (by any process) or waited on in this process. */
int plait_pmutex_destroy(plait_pmutex *mutex);
/* 0; -EOWNERDEAD: locked, but its last holder's process died holding it (repair the
 * data it guards, then unlock) -- a process plait reaps: one it started, or a pool
 * worker, or one gone and reaped by someone else (a child of a plain fork() that dies
 * holding it is a zombie until its parent reaps it, and the lock stays held until
 * then); -ETIMEDOUT, -ECANCELED, -EDEADLK (the caller holds it, or one beneath it on
 * its thread does, as for plait_mutex_lock). */
int plait_pmutex_lock(plait_pmutex *mutex, int64_t deadline);
/* -EPERM when the caller is not the holder. */
int plait_pmutex_unlock(plait_pmutex *mutex);

/* A counting semaphore between processes. */
int plait_psem_create(plait_psem **sem, unsigned initial);
int plait_psem_destroy(plait_psem *sem); /* -EBUSY while waited on in this process */
/* Take one from the count, waiting until there is one: 0, -ETIMEDOUT, -ECANCELED. */
int plait_psem_acquire(plait_psem *sem, int64_t deadline);
int plait_psem_release(plait_psem *sem); /* -EOVERFLOW past UINT32_MAX */
/* The current count; INT_MAX when it is larger; -EINVAL for a null semaphore. */
int plait_psem_value(plait_psem *sem);

/* A manual-reset event between processes: set releases every waiter and lets later
 * waits through until reset. */
int plait_pevent_create(plait_pevent **event);
int plait_pevent_destroy(plait_pevent *event); /* -EBUSY while waited on in this process */
int plait_pevent_set(plait_pevent *event);
int plait_pevent_reset(plait_pevent *event);
int plait_pevent_wait(plait_pevent *event, int64_t deadline);
int plait_pevent_is_set(plait_pevent *event); /* 1 or 0; -EINVAL for a null event */

/* A bounded message queue between processes: any number of senders and receivers,
 * messages of up to msg_max bytes, at most capacity of them queued.
 *
 * Sides: a process that sends is a sender, one that receives a receiver.  When every
 * sender has died (a child of the process that made the queue, reaped by plait), a
 * receiver gets -EPIPE once the queue is empty; when every receiver has died, a sender
 * gets -EPIPE at once.  Closing does the same for everybody.  A holder that has done
 * neither yet could still take either side: none ends while it lives, and its death is
 * no sender's or receiver's (a child that never used the queue; a side whose last
 * sender or receiver died before then ends as it goes).   A process pool's worker
 * that is replaced (max_tasks, a crash) is not gone for this until its replacement,
 * which could take either side, exists.  A child of a plain fork() that runs a
 * program (exec) holds the queue, undecided, until that program ends (plait cannot see
 * the exec: children that plait_process_exec starts are no holders).  The queue keeps
 * track of 64 processes at once: once more have held it at the same time, it no longer
 * says -EPIPE on its own, even after they are gone (plait_queue_close still ends it);
 * so too once plait forked a child while another process, stopped, held the queue's
 * table of holders for more than some 100 ms (a fork does not wait longer for it). */
typedef struct plait_queue plait_queue;

#define PLAIT_QUEUE_MSG_MAX ((size_t)64 << 20)
#define PLAIT_QUEUE_CAPACITY_MAX ((size_t)1 << 20)

/* -EINVAL for a size or capacity of 0 or past the maxima, or when capacity slots would
 * take more than 64 GiB of address space (a slot is msg_max bytes and an 8-byte length,
 * rounded up to 64); -ENOMEM. */
int plait_queue_create(plait_queue **queue, size_t msg_max, size_t capacity);
/* Unmap it in this process.  -EBUSY while a coroutine or thread of this process waits.
 * A process stopped with the queue's table of holders (in its first send or receive,
 * a fork's or a death's report) holds it up some 100 ms at most (a coroutine's
 * scheduler runs others meanwhile): then this process stops being a side at its death,
 * not at once; one stopped in the middle of a copy does not hold it up. */
int plait_queue_destroy(plait_queue *queue);
/* Copy len bytes in, waiting while the queue is full.  0, -EMSGSIZE (len > msg_max),
 * -EPIPE (closed, or every receiver died), -ETIMEDOUT, -ECANCELED.  Here and in
 * plait_queue_recv a past deadline does not wait for room or a message, but lets
 * another process's copy under way finish first, up to 10 ms (docs/API.md). */
int plait_queue_send(plait_queue *queue, const void *msg, size_t len, int64_t deadline);
/* Copy the next message out, waiting while the queue is empty; returns its length.
 * -EMSGSIZE when it is longer than cap (it stays queued), -EPIPE (closed, or every
 * sender died, and empty: final, as a send under way at the close is waited for and
 * its message taken first), -ETIMEDOUT, -ECANCELED; -EPROTO when a holder wrote over
 * the queue's memory and the message's recorded length is past msg_max (the message
 * is taken off, nothing copied: the queue's sizes are kept in each process's handle,
 * so such a scribble cannot make a receiver copy past its slot). */
ssize_t plait_queue_recv(plait_queue *queue, void *buf, size_t cap, int64_t deadline);
/* Close it for every process: sends get -EPIPE, receives drain it, then get -EPIPE.
 * -EPIPE if closed already.  Never waits, not even for a process stopped in the middle
 * of a send (whose message, already under way, still goes in: a receive that finds
 * the queue closed and empty waits for it, within its deadline). */
int plait_queue_close(plait_queue *queue);
/* Messages queued now: a snapshot, taken without waiting for any other process. */
size_t plait_queue_len(plait_queue *queue);

/* ----------------------------------------------------------------------------
 * Process pools: worker processes that run functions submitted to them (Python's
 * multiprocessing.Pool and ProcessPoolExecutor), for CPU-bound work that must use
 * every core, with each task isolated from the program and from the others.
 *
 * A task is a plait_proc_fn and an argument of up to arg_max bytes, copied into shared
 * memory; its result (up to result_max bytes) comes back as a plait_bytes that
 * plait_join() hands over (free() it).  Functions are called by address, which is the
 * same in every worker (they are forks of this program).
 *
 * A worker that dies while it runs a task — a crash (PLAIT_KILLED(signal)), an exit
 * (PLAIT_EXITED(status)), killed from outside — fails exactly that task, with that
 * code, and a new worker takes its place; no other task is lost or run twice.  A task
 * with a memory bug that writes outside its result room, over what the pool shares
 * with its workers (a slot's header, the rings), makes the task whose record it wrote
 * over (most often itself) fail with -EPROTO, and a map's items whose codes or results
 * were so written over too: the parent takes nothing there on trust, and goes on, with
 * no task lost (one whose entry in the rings was written over fails with -EPROTO).
 * Nor does it wait for ever on the pool's lock word if a task wrote over it: a worker
 * that the word names for a second is killed (its task fails with -EPROTO) and
 * replaced, and a word that names no worker is taken over.
 * Cancelling a task that has not started means it never runs; cancelling one that runs
 * kills its worker (which is replaced) and the task reports -ECANCELED; one whose worker
 * has finished it (its result written into the shared memory) keeps its outcome, even
 * before this process has taken it (a cancel between the function's return and that
 * write still kills the worker: -ECANCELED).  From a
 * coroutine, plait_join() on a task waits without blocking the scheduler.
 *
 * A task may fork: a child of it has its own copy of the task's argument and a result
 * room of its own (empty: what the task wrote there before the fork is not in it), and
 * one that returns from the task function (or from a map's item function) ends
 * there (_exit(0), which flushes no stdio stream: the child flushes what it printed
 * itself) instead of acting as a worker; a child of _Fork() or a raw fork system call,
 * which run no fork handler, has none of the pool's memory (a touch of the argument or
 * result faults: the child alone dies), and ends there too.  A task that closes the pool's descriptor
 * (closing every descriptor it did not open) ends its worker after it, which is
 * replaced; an initialiser that does fails the worker with -EBADF.
 *
 * A pool belongs to the process that made it: every plait_procpool_* call from another
 * process (a worker, any forked child) is -EPERM, and in such a process a copy of a
 * task's handle is inert: every call on it is -EPERM (one made after the worker was
 * forked, passed in an argument, included): the pool's state there is a stale copy of
 * the parent's.
 * ------------------------------------------------------------------------- */

typedef struct plait_procpool plait_procpool;

#define PLAIT_PROCPOOL_MAX 1024

typedef struct plait_procpool_options {
    unsigned processes;     /* workers; 0: plait_cpu_count(), at most PLAIT_PROCPOOL_MAX */
    size_t arg_max;         /* the largest argument; 0: PLAIT_RESULT_DEFAULT */
    size_t result_max;      /* the largest result; 0: PLAIT_RESULT_DEFAULT */
    int (*init)(void *arg); /* run by each worker as it starts; NULL: none.  A negative
                               return breaks the pool: tasks waiting and every later
                               submit fail with that code; so does a worker's death in
                               it (its fate), at create or in a replacement */
    void *init_arg;
    unsigned max_tasks;     /* tasks a worker runs before a fresh one replaces it; 0: no limit */
    int64_t task_timeout;   /* ns a task may run: then its worker is killed and the task
                               reports -ETIMEDOUT; 0: no limit.  Each worker makes a
                               POSIX timer for it as it starts, before the initialiser:
                               a worker the system refuses one (RLIMIT_SIGPENDING)
                               counts as one that could not be forked: -EAGAIN for
                               what waits and for submit while no worker is left,
                               tried again every 50 ms (create, which waits only for
                               an initialiser, may have returned 0) */
} plait_procpool_options;

/* Start the workers and, with an initialiser, wait until it has returned in each of
 * them.  options may be NULL.  -EINVAL for processes > PLAIT_PROCPOOL_MAX, sizes >
 * PLAIT_RESULT_MAX or a negative timeout; -EAGAIN when a worker cannot be started (nor,
 * waiting for an initialiser, make its task_timeout's timer);
 * -EMFILE / -ENFILE when no descriptor is left (the pool's and its workers', and a
 * replacement's: a worker that dies, its initialiser returned, while create waits for
 * the others' is forked again, every 50 ms while that fails, and where no descriptor
 * is left for that retry's timer either, its fork's failure is create's); the
 * initialiser's code when it fails in a worker (-EINVAL for one below -4095, as for a
 * plait_proc_fn), or the worker's fate
 * (PLAIT_KILLED(signal), PLAIT_EXITED(status)) when it dies in it; -ECANCELED when the
 * caller is cancelled while it waits; -ENOMEM; -ENOSYS on a kernel without pidfds
 * that can be waited on (before 5.4), as for plait_process_start. */
int plait_procpool_create(plait_procpool **pool, const plait_procpool_options *options);

/* Queue fn(arg) and return at once (tasks beyond what is in flight wait in this
 * process) — but while a worker holds the pool's shared lock for long (stopped with
 * it, or writing over it), a submit waits up to a second for it, its whole thread
 * (a coroutine's scheduler too), before the worker is killed; task (may be NULL:
 * detached) is its future.  -EMSGSIZE for arg_len >
 * arg_max, -EPIPE once shut down, the initialiser's code (or the fate of a worker that
 * died in it) when the pool is broken, -EAGAIN while no worker is left and none could
 * be forked (the pool tries again every 50 ms, or, with no descriptor left for that
 * timer, at the next submit; tasks that were waiting then fail with it), -EINVAL,
 * -ENOMEM. */
int plait_procpool_submit(plait_procpool *pool, plait_task *task, plait_proc_fn fn,
                          const void *arg, size_t arg_len);

/* results[i] = fn(args[i]) for n fixed-size items (arg_size bytes each in args,
 * result_size bytes each in results), run over the workers in chunks of chunk items
 * (0: about four chunks per worker; no more than the argument and result room hold).
 * fn gets each item's argument and result room aligned as element i of an array of
 * items (of results) aligned to max_align_t would be; a result shorter than result_size
 * (fn's return) has the rest of its room zeroed.
 * Returns when all are done: 0 when every call succeeded, else the first failure in
 * index order; errors[i] (may be NULL) gets each item's code (a crash fails every item
 * of its chunk) and a failed item's result is zeroed; items the pool no longer took get
 * its refusal (-EPIPE: shut down meanwhile), a failure in index order like any other.
 * On -ETIMEDOUT / -ECANCELED of the caller (or -ENOMEM: a coroutine's wait with no
 * memory for its timer) the chunks not done are cancelled, their items get that code,
 * and the call returns it; nothing is written into the arrays after the call returns.
 * -EMSGSIZE when not even one item fits the pool's room (asked before the arrays'
 * size), -EINVAL for
 * nulls, n == 0, arg_size == 0, or arrays larger than PTRDIFF_MAX bytes (n * arg_size,
 * n * result_size).  A call refused as a whole (-EMSGSIZE, -EPERM, -ENOMEM) gives every
 * item its code too (errors[i], a zeroed result), except where its arrays are larger
 * than any object; -EINVAL writes nothing. */
int plait_procpool_map(plait_procpool *pool, plait_proc_fn fn, const void *args,
                       size_t arg_size, size_t n, void *results, size_t result_size,
                       int *errors, size_t chunk, int64_t deadline);

/* A lazy map: the same items, handed back one at a time as their chunks finish, with
 * a bounded number of chunks in flight.  In index order, or with PLAIT_IMAP_UNORDERED in
 * the order chunks finish.  args must stay valid until the iterator is destroyed.
 * -EMSGSIZE and -EINVAL as for map (of the arrays, only args is one here); -EPIPE on a
 * pool shut down, and any code its first submit answers (-EPERM, -ENOMEM, -EAGAIN while
 * no worker is left, a broken pool's code: no iterator). */
typedef struct plait_procpool_iter plait_procpool_iter;
#define PLAIT_IMAP_UNORDERED 1
int plait_procpool_imap(plait_procpool_iter **iter, plait_procpool *pool, plait_proc_fn fn,
                        const void *args, size_t arg_size, size_t n, size_t result_size,
                        size_t chunk, int flags);
/* The next item: 0 with *index, its result (result_size bytes, zeroed on failure; result
 * may be NULL) and *error its code (which may be -ETIMEDOUT: its chunk's task_timeout);
 * -EPIPE when every item has been handed back; -ETIMEDOUT, -ECANCELED of the caller,
 * -ENOMEM (a coroutine's wait with no memory for its timer): then call again to go on. */
int plait_procpool_imap_next(plait_procpool_iter *iter, size_t *index, void *result,
                             int *error, int64_t deadline);
/* Cancel what is still in flight and free the iterator. */
int plait_procpool_imap_destroy(plait_procpool_iter *iter);

/* Stop taking tasks (submit: -EPIPE), then wait until the workers have ended: with
 * PLAIT_POOL_DRAIN every queued task runs first; with PLAIT_POOL_CANCEL queued tasks
 * report -ECANCELED and running ones are killed (-ECANCELED), as are workers still in
 * their initialiser.  0; -ETIMEDOUT when a task
 * still runs, or is queued, at the deadline, or a worker is still in its initialiser
 * (call again, with PLAIT_POOL_CANCEL to escalate).  Workers with no task left are
 * only exiting: they are waited for, past the deadline (a past one included), a second
 * at most, then killed (one stopped by a debugger or job control never exits; they
 * hold nothing), and the call returns 0; so for destroy.  Beside a worker that holds
 * the pool's shared lock (see plait_procpool_submit), it may return up to a second past
 * its deadline, as a plait_cancel of one of its tasks may take a second.  -ECANCELED when the caller is cancelled while it waits (the pool
 * stays shut, as after -ETIMEDOUT); -EINVAL for another `how`; -EPERM in a forked
 * child (the pool is the parent's, as for every call on it there). */
int plait_procpool_shutdown(plait_procpool *pool, int how, int64_t deadline);
/* Shut down (draining, no deadline) unless stopped already (after a shutdown that timed
 * out or was cancelled too: unlike plait_pool_destroy, it waits), and free the pool.  A cancelled
 * caller waits too: this is clean-up, which must finish.  -EBUSY (nothing freed) while
 * an imap iterator over it exists (destroy the iterators first), or while another caller
 * is still inside plait_procpool_shutdown on this pool once it has stopped (call again).
 * No other call on the pool (a submit, a map) may still be under way on another thread
 * when it begins, nor begin once it may have freed the pool, as for plait_pool_destroy. */
int plait_procpool_destroy(plait_procpool *pool);
/* The number of workers; the process ids of the workers alive now (up to n): the count,
 * or -EINVAL for a null pool or pids. */
unsigned plait_procpool_processes(const plait_procpool *pool);
int plait_procpool_pids(plait_procpool *pool, int *pids, unsigned n);

#ifdef __cplusplus
}
#endif
#endif /* PLAIT_H */
