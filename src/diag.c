/*
 * diag.c — seeing inside a scheduler: the coroutine dump and the slow-coroutine watch.
 *
 * The watch costs the switch path two relaxed stores (a switch counter and the id of
 * the coroutine now running) and one relaxed load.  A watchdog thread per scheduler
 * samples the counter every quarter threshold (every millisecond at most: a threshold
 * under 4 ms once made it wake thousands of times a second); when it has not moved for a whole
 * threshold while a coroutine runs, the scheduler is blocked: the watchdog says so at
 * once (by id: it must not read the coroutine's fields), and marks the stall, so
 * that when the coroutine finally lets go the switch path notes its name and how long
 * it held the thread, and the loop, which runs next, prints that: not the switch path
 * itself, which runs on the stack of the coroutine that stalled (fprintf takes
 * kilobytes of stack: the report overflowed a PLAIT_STACK_MIN stack).  The mark carries the switch count of the stall: the watchdog
 * may mark it only after the coroutine has let go (its warning, to a slow stderr, can
 * take that long), and then the next switch, of another coroutine, is not the first
 * after the stall and says nothing (it once blamed itself for the other's time).
 * The watchdog thread has every signal blocked, and both warnings are written with
 * SIGPIPE held off (say): they are plait's writes, which must not kill the program.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>

static atomic_llong slow_threshold = -1; /* -1: not set yet, read PLAIT_SLOW_MS */

int plait_set_slow_warning(int64_t threshold_ns)
{
    if (threshold_ns < 0)
        return -EINVAL;
    atomic_store(&slow_threshold, threshold_ns);
    return 0;
}

/* A warning of plait's on stderr.  The program did not write it: into a pipe whose
 * reader has gone (a pager the user quit) it is a lost line, not a SIGPIPE that kills
 * the program.  SIGPIPE is blocked around the write and, if the write raised it (it
 * was not pending before), taken off the thread: a SIGPIPE that someone sent the
 * process in that instant may be taken with it. */
static void say(const char *format, ...)
{
    int cancel_state = plait__cancel_off(); /* (the write and sigtimedwait are points) */
    sigset_t pipe_only, mask, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &mask);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        sigtimedwait(&pipe_only, NULL, &(struct timespec){0, 0});
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    plait__cancel_restore(cancel_state);
}

/* The threshold PLAIT_SLOW_MS asks for, 0 where unset or empty; *bad when it is set
 * to something that is not a whole number of milliseconds, 0 or more ("1e2" read as 1,
 * "50abc" as 50: the watch ran at a threshold the user never asked for), which turns
 * the watch off. */
static int64_t threshold_from_environment(bool *bad)
{
    const char *env = getenv("PLAIT_SLOW_MS");
    *bad = false;
    if (!env || !*env)
        return 0;
    char *end;
    long long ms = strtoll(env, &end, 10); /* (saturates; atoll's overflow is UB) */
    if (end == env || *end != '\0' || ms < 0) {
        *bad = true;
        return 0;
    }
    return ms > INT64_MAX / PLAIT_MS ? INT64_MAX : ms * PLAIT_MS;
}

static int64_t threshold_now(void)
{
    int64_t t = atomic_load(&slow_threshold);
    if (t < 0) {
        bool bad;
        int64_t from_env = threshold_from_environment(&bad);
        /* only over "not set yet": a plait_set_slow_warning() made meanwhile stands */
        long long expected = -1;
        if (atomic_compare_exchange_strong(&slow_threshold, &expected, from_env)) {
            t = from_env;
            if (bad) /* once: by the read whose value stood */
                say("plait: warning: PLAIT_SLOW_MS=\"%.40s\" is not a whole number of "
                    "milliseconds: the slow-coroutine watch is off\n",
                    getenv("PLAIT_SLOW_MS"));
        } else {
            t = expected;
        }
    }
    return t;
}

/* A duration for a warning, in the largest unit it holds one of, with a tenth below
 * ten of it (a threshold under a millisecond printed "0 ms", and 1.5 ms "1 ms"). */
static void duration_text(char *text, size_t size, int64_t ns)
{
    static const struct {
        int64_t ns;
        const char *name;
    } units[] = {{PLAIT_MS, "ms"}, {PLAIT_US, "µs"}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (ns >= 10 * units[i].ns) {
            snprintf(text, size, "%lld %s", (long long)(ns / units[i].ns), units[i].name);
            return;
        } else if (ns >= units[i].ns) {
            snprintf(text, size, "%.1f %s", (double)ns / (double)units[i].ns, units[i].name);
            return;
        }
    snprintf(text, size, "%lld ns", (long long)ns);
}

typedef struct plait__watchdog {
    pthread_t thread;
    atomic_uint stop;
    plait__sched *sched;
    int64_t threshold;
} plait__watchdog;

static void *watchdog_main(void *arg)
{
    plait__watchdog *wd = arg;
    pthread_setname_np(pthread_self(), "plait-watchdog"); /* see plait__thread_create */
    plait__sched *s = wd->sched;
    unsigned long last = atomic_load_explicit(&s->switches, memory_order_relaxed);
    int64_t since = plait_now();
    bool warned = false;
    int64_t period = wd->threshold / 4 > PLAIT_MS ? wd->threshold / 4 : PLAIT_MS;
    while (!atomic_load(&wd->stop)) {
        plait__futex_wait(&wd->stop, 0, plait_deadline_in(period));
        /* The id first: a switch after it moves the count, so an unmoved count says the
         * id is the coroutine that has run all along.  Read the other way round, a
         * switch between the two reads named the coroutine switched to, and the stalled
         * one was never named (no test: the window is two loads of this thread's). */
        unsigned long id = atomic_load_explicit(&s->running_id, memory_order_acquire);
        unsigned long now_switches = atomic_load_explicit(&s->switches, memory_order_relaxed);
        int64_t now = plait_now();
        if (now_switches != last || id == 0) {
            last = now_switches;
            since = now;
            warned = false;
        } else if (!warned && now - since >= wd->threshold) {
            char ran[32];
            duration_text(ran, sizeof ran, now - since);
            say("plait: warning: coroutine #%lu has run %s without yielding; "
                "its scheduler is blocked\n",
                id, ran);
            atomic_store_explicit(&s->slow_switches, last, memory_order_relaxed);
            atomic_store_explicit(&s->slow_since, since, memory_order_release);
            warned = true;
        }
    }
    return NULL;
}

/* s's watchdog started, watching for stalls of `threshold` (0: none). */
static void watchdog_start(plait__sched *s, int64_t threshold)
{
    s->slow_threshold = threshold;
    if (threshold <= 0)
        return;
    plait__watchdog *wd = calloc(1, sizeof *wd);
    if (!wd)
        return;
    wd->sched = s;
    wd->threshold = threshold;
    /* with every signal blocked: no signal of the program's is handled on this thread
     * of plait's */
    sigset_t all, mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &mask);
    int r = plait__thread_create(&wd->thread, NULL, watchdog_main, wd);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (r != 0) {
        free(wd);
        return;
    }
    s->watchdog = wd;
}

void plait__watchdog_start(plait__sched *s) { watchdog_start(s, threshold_now()); }

void plait__watchdog_stop(plait__sched *s)
{
    plait__watchdog *wd = s->watchdog;
    if (!wd)
        return;
    atomic_store(&wd->stop, 1);
    plait__futex_wake(&wd->stop, 1);
    pthread_join(wd->thread, NULL);
    free(wd);
    s->watchdog = NULL;
}

void plait__watchdog_after_fork(void)
{
    /* its thread is not in the child: joining it there would join whatever thread
     * next has its descriptor */
    plait__sched *s = plait__sched_current();
    if (!s || !s->watchdog)
        return;
    free(s->watchdog);
    s->watchdog = NULL;
    watchdog_start(s, s->slow_threshold); /* its own, not the one of the moment */
}

bool plait__slow_note(plait__sched *s, const plait__coro *from)
{
    int64_t since = atomic_exchange_explicit(&s->slow_since, 0, memory_order_acquire);
    /* called before this switch is counted: the count is still the stall's */
    unsigned long stalled = atomic_load_explicit(&s->slow_switches, memory_order_relaxed);
    if (!since || from->is_loop ||
        atomic_load_explicit(&s->switches, memory_order_relaxed) != stalled)
        return false;
    /* only copies and a clock read (the vDSO): this runs on the stack of the coroutine
     * that stalled, which may be PLAIT_STACK_MIN */
    memcpy(s->slow_name, from->name, sizeof s->slow_name);
    s->slow_id = from->id;
    s->slow_ns = plait_now() - since;
    s->slow_noted = true;
    return true;
}

void plait__slow_report(plait__sched *s)
{
    if (!s->slow_noted)
        return;
    s->slow_noted = false;
    char ran[32], threshold[32];
    duration_text(ran, sizeof ran, s->slow_ns);
    duration_text(threshold, sizeof threshold, s->slow_threshold);
    say("plait: warning: coroutine '%s' (#%llu) ran %s without yielding "
        "(threshold %s): it blocked every other coroutine of its thread\n",
        s->slow_name, (unsigned long long)s->slow_id, ran, threshold);
}

static const char *state_name(int state)
{
    switch (state) {
    case PLAIT__READY: return "ready";
    case PLAIT__RUNNING: return "running";
    case PLAIT__WAITING: return "waiting";
    default: return "done";
    }
}

/* One coroutine's line of plait_dump, taken before anything is written. */
typedef struct dump_line {
    unsigned long long id;
    char name[sizeof ((plait__coro *)0)->name];
    int state;
    const char *what;   /* NULL: not waiting */
    const void *object;
    int64_t wait_since;
    bool cancelled, shielded;
} dump_line;

/* The stream's writes may suspend the caller (a cookie stream that writes to a socket
 * with plait_write, say): the others run meanwhile, a waiter wakes (its coroutine's
 * waiter pointer cleared) or a coroutine ends and its slot is reused.  So the list is
 * copied first, with nothing written, then written (it read a woken waiter through a
 * NULL pointer: SIGSEGV). */
int plait_dump(FILE *out)
{
    plait__sched *s = plait__sched_current();
    if (!s)
        return -EPERM;
    if (!out)
        return -EINVAL;
    int64_t now = plait__coarse_now();
    size_t alive = s->alive, n = 0;
    for (const plait__coro *c = s->all; c; c = c->all_next)
        n++;
    dump_line *lines = malloc((n ? n : 1) * sizeof *lines);
    if (!lines)
        return -ENOMEM;
    size_t i = 0;
    for (const plait__coro *c = s->all; c; c = c->all_next, i++) {
        dump_line *l = &lines[i];
        l->id = (unsigned long long)c->id;
        memcpy(l->name, c->name, sizeof l->name);
        l->state = c->state;
        bool waiting = c->state == PLAIT__WAITING && c->waiter;
        l->what = waiting ? c->waiter->what : NULL;
        l->object = waiting ? c->waiter->object : NULL;
        l->wait_since = c->wait_since;
        l->cancelled = atomic_load_explicit(&c->cancelled, memory_order_relaxed);
        l->shielded = c->shielded;
    }
    fprintf(out, "plait: %zu coroutine(s) on this scheduler\n", alive);
    for (i = 0; i < n; i++) {
        const dump_line *l = &lines[i];
        fprintf(out, "  #%-6llu %-20.*s %-8s", l->id, (int)sizeof l->name, l->name,
                state_name(l->state));
        if (l->what) {
            fprintf(out, " on %s", l->what);
            if (l->object)
                fprintf(out, " %p", l->object);
            fprintf(out, " for %lld ms", (long long)((now - l->wait_since) / PLAIT_MS));
        }
        if (l->cancelled)
            fprintf(out, l->shielded ? " (cancelled, shielded)" : " (cancelled)");
        fputc('\n', out);
    }
    free(lines);
    return (int)n;
}
