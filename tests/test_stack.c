/* test_stack.c — coroutine stacks: their memory goes back to the kernel after a burst
 * (and stays where it must), and an overflow is reported, never silent.  Linked with
 * --wrap=madvise (tests/CMakeLists.txt), to make madvise refuse on demand. */
#include "helpers.h"

#include <sys/resource.h>

#include <alloca.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

static plait_event *burst_gate;

static void *sleep_forever(void *arg)
{
    (void)arg;
    plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}

/* ---- the memory of finished coroutines goes back ---- */

/* BURST coroutines alive at once, each with BURST_TOUCH bytes of its stack written;
 * a scheduler keeps the memory of 256 free stacks.  (ThreadSanitizer's fibers cost
 * time that grows with the number alive: fewer there.) */
#if defined(__SANITIZE_THREAD__)
enum { BURST = 1200, BURST_TOUCH = 16 * 1024 };
#else
enum { BURST = 4000, BURST_TOUCH = 16 * 1024 };
#endif
static uintptr_t burst_addr[BURST];
static plait_task burst_task[BURST];
static plait_event *hold_gate;
static size_t burst_touch = BURST_TOUCH; /* what each writes, BURST_TOUCH at most */

static void *burst_member(void *arg)
{
    size_t i = (size_t)(intptr_t)arg;
    char mark = (char)(i % 127 + 1);
    size_t touch = burst_touch;
    char *p = alloca(touch);
    memset(p, mark, touch);
    burst_addr[i] = (uintptr_t)p;
    int r = plait_event_wait(burst_gate, PLAIT_FOREVER);
    if (r == 0 && hold_gate && i % 2 == 1) /* odd ones stay while the others go */
        r = plait_event_wait(hold_gate, PLAIT_FOREVER);
    for (size_t k = 0; k < touch; k += 1024)
        if (p[k] != mark)
            return ARG(-1000); /* the stack lost its bytes while the coroutine waited */
    return ARG(r);
}

/* kB resident of what the burst's coroutines wrote on their stacks (mincore). */
static long burst_resident_kb(void)
{
    long page = sysconf(_SC_PAGESIZE), pages = 0;
    for (size_t i = 0; i < BURST; i++) {
        if (!burst_addr[i])
            continue;
        uintptr_t lo = burst_addr[i] / (uintptr_t)page * (uintptr_t)page;
        uintptr_t hi = burst_addr[i] + burst_touch;
        unsigned char vec[BURST_TOUCH / 1024];
        size_t n = (hi - lo + (uintptr_t)page - 1) / (uintptr_t)page;
        CHECK(n <= sizeof vec);
        CHECK_EQ(mincore((void *)lo, hi - lo, vec), 0);
        for (size_t k = 0; k < n && k < sizeof vec; k++)
            pages += vec[k] & 1;
    }
    return pages * page / 1024;
}

/* Sleep until the burst's stacks hold less than limit kB, for 10 s at most; returns
 * what they hold. */
static long burst_wait_resident_below(long limit)
{
    long kb = burst_resident_kb();
    for (int i = 0; i < 200 && kb >= limit; i++) {
        CHECK_EQ(plait_sleep(50 * PLAIT_MS), 0);
        kb = burst_resident_kb();
    }
    return kb;
}

static void *burst_main(void *arg)
{
    long *kb = arg; /* per round: at the peak, 100 ms after, when given back */
    long touched = (long)BURST * BURST_TOUCH / 1024;
    for (int round = 0; round < 2; round++) {
        CHECK_EQ(plait_event_create(&burst_gate), 0);
        for (size_t i = 0; i < BURST; i++)
            CHECK_EQ(plait_spawn(&burst_task[i], burst_member, ARG(i)), 0);
        CHECK_EQ(plait_yield(), 0); /* each writes its stack and waits at the gate */
        kb[3 * round] = burst_resident_kb();
        CHECK_EQ(plait_event_set(burst_gate), 0);
        for (size_t i = 0; i < BURST; i++) {
            void *r = ARG(-1);
            CHECK_EQ(plait_join(burst_task[i], &r, PLAIT_FOREVER), 0);
            CHECK_EQ((intptr_t)r, 0);
        }
        CHECK_EQ(plait_event_destroy(burst_gate), 0);
        /* the scheduler sleeps, well inside the period of a second that the stacks
         * must stay unused before their memory goes (-1: this machine held it up past
         * most of that second, and the reading tells nothing) */
        int64_t joined = plait_now();
        CHECK_EQ(plait_sleep(100 * PLAIT_MS), 0);
        kb[3 * round + 1] = burst_resident_kb();
        if (plait_now() - joined > 800 * PLAIT_MS)
            kb[3 * round + 1] = -1;
        kb[3 * round + 2] = burst_wait_resident_below(touched / 3);
    }
    return NULL;
}

/* After a burst, a scheduler hands the memory of the finished coroutines' stacks back
 * to the kernel once they stayed unused for a second, keeping a few hundred; the
 * stacks it gave back work when they are used again. */
TEST(stack_memory_goes_back)
{
    long kb[6] = {0};
    check_run(burst_main, kb);
    long touched = (long)BURST * BURST_TOUCH / 1024;
    for (int round = 0; round < 2; round++) {
        CHECK(kb[3 * round] >= touched);
        CHECK(kb[3 * round + 1] >= touched || kb[3 * round + 1] == -1); /* not gone early */
        CHECK(kb[3 * round + 2] < touched / 3);
    }
}

/* Half the burst finishes (every other one) while the rest still run: the memory of
 * the finished ones' stacks goes back, the live ones' neighbouring stacks keep their
 * bytes (each checks its own when it goes on).  arg: the stack size (0: the default). */
static void *neighbours_main(void *arg)
{
    plait_spawn_options o = {.name = "neighbour", .stack_size = (size_t)(intptr_t)arg};
    int packed = o.stack_size && o.stack_size < 16 * 1024;
    long peak;
    CHECK_EQ(plait_event_create(&burst_gate), 0);
    CHECK_EQ(plait_event_create(&hold_gate), 0);
    for (size_t i = 0; i < BURST; i++)
        CHECK_EQ(plait_spawn_opts(&burst_task[i], burst_member, ARG(i), &o), 0);
    CHECK_EQ(plait_yield(), 0);
    peak = burst_resident_kb();
    CHECK(peak >= (long)(BURST * burst_touch / 1024));
    CHECK_EQ(plait_event_set(burst_gate), 0);
    for (size_t i = 0; i < BURST; i += 2) {
        void *r = ARG(-1);
        CHECK_EQ(plait_join(burst_task[i], &r, PLAIT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    /* the live half, the 256 free stacks a cache keeps, and a margin; of a packed
     * slot only the pages all its own go (the one it shares with a neighbour stays):
     * there, a quarter of the finished half's at least */
    long bound = packed ? peak - peak / 8 : peak / 2 + 320L * (long)(burst_touch + 4096) / 1024;
    long after = burst_wait_resident_below(bound);
    CHECK(after < bound);
    CHECK_EQ(plait_event_set(hold_gate), 0);
    for (size_t i = 1; i < BURST; i += 2) {
        void *r = ARG(-1);
        CHECK_EQ(plait_join(burst_task[i], &r, PLAIT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 0); /* -1000: its stack lost its bytes */
    }
    CHECK_EQ(plait_event_destroy(hold_gate), 0);
    CHECK_EQ(plait_event_destroy(burst_gate), 0);
    hold_gate = NULL;
    return NULL;
}

/* The default stacks: page-aligned slots with guard pages, from the scheduler's cache. */
TEST(stack_memory_of_neighbours_stays) { check_run(neighbours_main, NULL); }

/* Stacks under 16 KiB are packed back to back, sharing pages: only whole pages of free
 * slots may go.  (Sanitizer frames do not fit a stack that small; there the same test
 * runs on 32 KiB stacks, which are page-aligned.) */
TEST(packed_stack_memory_of_neighbours_stays)
{
    burst_touch = 8 * 1024;
    check_run(neighbours_main, ARG(CHECK_SANITIZED ? 32 * 1024 : 12 * 1024));
    burst_touch = BURST_TOUCH;
}

/* A scheduler that sleeps with no timer at all still gives back both its own cache's
 * stacks and the global pool's (other sizes): a thread watches, the scheduler waits. */
typedef struct {
    plait_event *back;
    long bound;
    atomic_int went_back;
} watch;

static void *watch_resident(void *arg)
{
    watch *w = arg;
    for (int i = 0; i < 500 && !atomic_load(&w->went_back); i++) { /* 10 s at most */
        if (burst_resident_kb() < w->bound)
            atomic_store(&w->went_back, 1);
        else
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    CHECK_EQ(plait_event_set(w->back), 0);
    return NULL;
}

static void *idle_main(void *arg)
{
    (void)arg;
    plait_spawn_options o = {.name = "other-size", .stack_size = 64 * 1024};
    CHECK_EQ(plait_event_create(&burst_gate), 0);
    for (size_t i = 0; i < BURST; i++) /* half the default size, half another */
        CHECK_EQ(plait_spawn_opts(&burst_task[i], burst_member, ARG(i), i % 2 ? &o : NULL), 0);
    CHECK_EQ(plait_yield(), 0);
    long peak = burst_resident_kb();
    CHECK_EQ(plait_event_set(burst_gate), 0);
    for (size_t i = 0; i < BURST; i++)
        CHECK_EQ(plait_join(burst_task[i], NULL, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_event_destroy(burst_gate), 0);
    /* 256 kept by the scheduler, 256 by the pool for the other size, and a margin */
    watch w = {.bound = 576L * (BURST_TOUCH + 4096) / 1024};
    CHECK(peak > 2 * w.bound);
    CHECK_EQ(plait_event_create(&w.back), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, watch_resident, &w), 0);
    CHECK_EQ(plait_event_wait(w.back, PLAIT_FOREVER), 0); /* no timer in this scheduler */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(atomic_load(&w.went_back));
    CHECK_EQ(plait_event_destroy(w.back), 0);
    return NULL;
}

TEST(stack_memory_goes_back_without_timers) { check_run(idle_main, NULL); }

/* A scheduler that ends leaves its free stacks to the global pool: beyond 256, their
 * memory goes back as it ends (no other scheduler might sleep soon). */
typedef struct {
    size_t stack; /* 0: the default */
    long peak;    /* out */
} burst_spec;

static void *one_burst_main(void *arg)
{
    burst_spec *b = arg;
    plait_spawn_options o = {.name = "burst", .stack_size = b->stack};
    CHECK_EQ(plait_event_create(&burst_gate), 0);
    for (size_t i = 0; i < BURST; i++)
        CHECK_EQ(plait_spawn_opts(&burst_task[i], burst_member, ARG(i), &o), 0);
    CHECK_EQ(plait_yield(), 0);
    b->peak = burst_resident_kb();
    CHECK_EQ(plait_event_set(burst_gate), 0);
    for (size_t i = 0; i < BURST; i++)
        CHECK_EQ(plait_join(burst_task[i], NULL, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_event_destroy(burst_gate), 0);
    return NULL;
}

static void *ended_burst(void *arg)
{
    check_run(one_burst_main, arg);
    return NULL;
}

static void check_ended_burst_gives_back(size_t stack)
{
    long bound = 320L * (BURST_TOUCH + 4096) / 1024;
    burst_spec b = {.stack = stack};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, ended_burst, &b), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(b.peak > 2 * bound);
    CHECK(burst_resident_kb() < bound); /* at once: the thread has left plait_run */
}

TEST(stack_memory_of_ended_scheduler) { check_ended_burst_gives_back(0); }

/* The same for stacks of a size other than the scheduler's default, which went to the
 * global pool one by one as their coroutines ended (they kept their memory: only the
 * default size's class was given back). */
TEST(stack_memory_of_ended_scheduler_other_size) { check_ended_burst_gives_back(56 * 1024); }

/* While another scheduler lives, one that ends leaves the other sizes' free stacks to
 * that one's trimming (a period later), not giving them back at once: the other may be
 * reusing them (a review of session 43 measured a scheduler that bursts faulting its
 * pages back while others started and ended).  The last to end gives them back.  The
 * other scheduler here runs a coroutine that never yields, so it never trims. */
static atomic_int other_may_end, other_running;

static void *spins_until_told(void *unused)
{
    (void)unused;
    atomic_store(&other_running, 1);
    while (!atomic_load(&other_may_end))
        ;
    return NULL;
}

static void *other_scheduler(void *unused)
{
    (void)unused;
    check_run(spins_until_told, NULL);
    return NULL;
}

TEST(stack_memory_of_ended_scheduler_stays_while_another_lives)
{
    long bound = 320L * (BURST_TOUCH + 4096) / 1024;
    pthread_t other, t;
    CHECK_EQ(pthread_create(&other, NULL, other_scheduler, NULL), 0);
    while (!atomic_load(&other_running))
        sched_yield();
    burst_spec b = {.stack = 88 * 1024};
    CHECK_EQ(pthread_create(&t, NULL, ended_burst, &b), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(b.peak > 2 * bound);
    CHECK(burst_resident_kb() > 2 * bound); /* not the last: kept */
    atomic_store(&other_may_end, 1);
    CHECK_EQ(pthread_join(other, NULL), 0);
    CHECK(burst_resident_kb() < bound); /* the last: given back as it ended */
}

/* Where madvise refuses (locked memory, after mlockall), a cache keeps its memory
 * instead of trying again every period: its first batch fails, then it gives back no
 * more.  Two caches trim here, a period or so apart: the scheduler's own (the default
 * stacks of the test's coroutines) and the global pool's class of the burst's stacks,
 * a size of their own; so the count is taken once both have had their try.  (The test
 * once took it right after the first refusal, and failed under load when the global
 * class's try came after it: 65 refusals, not 64.)  test_stack is linked with
 * --wrap=madvise. */
static atomic_int madvise_refuses, madvise_refused;
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice)
{
    if (atomic_load(&madvise_refuses)) {
        atomic_fetch_add(&madvise_refused, 1);
        errno = EINVAL;
        return -1;
    }
    return __real_madvise(addr, len, advice);
}

static void *refused_main(void *arg)
{
    int *refused = arg; /* after the first period, and three periods later */
    atomic_store(&madvise_refuses, 1);
    burst_spec b = {.stack = 72 * 1024};
    one_burst_main(&b);
    for (int i = 0; i < 100 && !atomic_load(&madvise_refused); i++) /* 5 s at most */
        CHECK_EQ(plait_sleep(50 * PLAIT_MS), 0);
    CHECK_EQ(plait_sleep(3 * PLAIT_SEC), 0); /* the other cache's try: 3 periods */
    refused[0] = atomic_load(&madvise_refused);
    CHECK_EQ(plait_sleep(3 * PLAIT_SEC), 0);
    refused[1] = atomic_load(&madvise_refused);
    CHECK(burst_resident_kb() >= b.peak); /* all kept */
    atomic_store(&madvise_refuses, 0);
    return NULL;
}

TEST(stack_memory_kept_where_madvise_refuses)
{
    int refused[2] = {0};
    check_run(refused_main, refused);
    CHECK(refused[0] > 0);
    CHECK_EQ(refused[1], refused[0]);
}

/* Two schedulers of one default stack size share its class: one's refused give-back
 * marks the class as keeping its memory while the other, starting its own period,
 * reads that mark.  Both must do it under the pool's lock (TSan once reported the read,
 * made after the lock was let go).  Each scheduler holds 300 coroutines at once, so its
 * cache goes past the 256 it keeps in any case, and both periods run together. */
enum { SHARED_CLASS_BURST = 300 };

static void *parked_member(void *arg)
{
    return ARG(plait_event_wait(arg, PLAIT_FOREVER));
}

static void *shared_class_main(void *arg)
{
    (void)arg;
    plait_event *gate;
    plait_task t[SHARED_CLASS_BURST];
    CHECK_EQ(plait_event_create(&gate), 0);
    for (size_t i = 0; i < SHARED_CLASS_BURST; i++)
        CHECK_EQ(plait_spawn(&t[i], parked_member, gate), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_event_set(gate), 0);
    for (size_t i = 0; i < SHARED_CLASS_BURST; i++) {
        void *r;
        CHECK_EQ(plait_join(t[i], &r, PLAIT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    CHECK_EQ(plait_event_destroy(gate), 0);
    CHECK_EQ(plait_sleep(2500 * PLAIT_MS), 0); /* the period (1 s) ends, its give-back is refused */
    return NULL;
}

static void *shared_class_thread(void *arg)
{
    check_run(shared_class_main, arg);
    return NULL;
}

TEST(stack_class_kept_mark_shared_by_two_schedulers)
{
    atomic_store(&madvise_refused, 0);
    atomic_store(&madvise_refuses, 1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, shared_class_thread, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    atomic_store(&madvise_refuses, 0);
    CHECK(atomic_load(&madvise_refused) > 0);
}

/* ---- stack overflow is reported, never silent ---- */

static int recurse(volatile char *p, int depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[511] = p ? p[0] : 0;
    return depth > 0 ? recurse(buf, depth - 1) + buf[511] : buf[0];
}

static void *overflows(void *arg)
{
    (void)arg;
    return ARG(recurse(NULL, 1 << 20));
}

/* Overflows a small stack by a little, into mapped memory: no fault, only the canary
 * can tell. */
static void *overflows_quietly(void *arg)
{
    (void)arg;
    volatile char big[PLAIT_STACK_MIN + 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)i;
    plait_yield(); /* the switch checks the canary */
    return ARG(big[10]);
}

static void *overflow_main(void *arg)
{
    size_t stack = (size_t)(intptr_t)arg;
    plait_spawn_options o = {.name = "deep-recursion", .stack_size = stack};
    plait_task t, below;
    /* a neighbour below, so the quiet overflow lands in mapped memory */
    plait_spawn_opts(&below, sleep_forever, NULL, &o);
    plait_spawn_opts(&t, stack == PLAIT_STACK_MIN ? overflows_quietly : overflows, NULL, &o);
    plait_join(t, NULL, PLAIT_FOREVER);
    return NULL;
}

static void expect_overflow_report(plait_fn main, size_t stack, const char *how)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        plait_run(main, ARG(stack), NULL);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(fds[1]);
    char out[4096] = {0};
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(out, "stack overflow in coroutine 'deep-recursion'") != NULL);
    /* the whole line: the coroutine's number and its stack's size, written as numbers */
    const char *line = strstr(out, "plait: fatal: stack overflow in coroutine 'deep-recursion' (#");
    CHECK(line != NULL);
    if (!line) {
        fprintf(stderr, "  the child wrote: %s\n", out);
        return;
    }
    unsigned long long id = 0;
    size_t holds = 0;
    int end = 0;
    CHECK_EQ(sscanf(line, "plait: fatal: stack overflow in coroutine 'deep-recursion' (#%llu): %*[^;]; "
                          "its stack holds %zu bytes, spawn it with a larger stack_size\n%n",
                    &id, &holds, &end),
             2);
    CHECK(id > 0);
    CHECK(holds >= stack);
    CHECK(end > 0 && line[end - 1] == '\n');
    /* The quiet overflow is found at its next switch, by its canary, and reported from
     * the overflowed stack, where the report's first calls through the PLT (the dynamic
     * linker's lazy binding takes a kilobyte of stack) may fault in turn: the fault
     * handler then reports it as running past the end (so did AddressSanitizer's larger
     * frames).  The switch at the coroutine's end, its frames gone, once did it; its
     * yield, alone in the ready queue, now goes to the loop, a switch that checks. */
    if (strcmp(how, "canary") == 0 && !strstr(out, how))
        how = "past the end of its stack";
    CHECK(strstr(out, how) != NULL);
}

/* A scheduler's end turns off the alternate signal stack plait gave the thread, not
 * one the program installed since (from a coroutine, for its own overflow handler):
 * plait_run's return turned that off too (a helper's audit). */
static char programs_alt_stack[64 * 1024];

static void *install_programs_alt_stack(void *arg)
{
    (void)arg;
    stack_t ss = {.ss_sp = programs_alt_stack, .ss_size = sizeof programs_alt_stack};
    CHECK_EQ(sigaltstack(&ss, NULL), 0);
    return NULL;
}

static void *run_then_look_at_the_alt_stack(void *arg)
{
    stack_t *after = arg;
    CHECK_EQ(plait_run(install_programs_alt_stack, NULL, NULL), 0);
    CHECK_EQ(sigaltstack(NULL, after), 0);
    stack_t off = {.ss_flags = SS_DISABLE};
    CHECK_EQ(sigaltstack(&off, NULL), 0);
    return NULL;
}

TEST(a_scheduler_s_end_keeps_an_alt_stack_the_program_installed)
{
    pthread_t t; /* (a thread of its own: a fresh one, whose stack plait's alone is) */
    stack_t after = {.ss_flags = SS_DISABLE};
    CHECK_EQ(pthread_create(&t, NULL, run_then_look_at_the_alt_stack, &after), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(after.ss_sp == programs_alt_stack);
    CHECK_EQ(after.ss_flags & SS_DISABLE, 0);
}

TEST(overflow_hits_guard_page)
{
    /* a stack size no other test uses: fresh slots, guarded while the budget lasts */
    CHECK(plait_guard_budget() > 0);
    expect_overflow_report(overflow_main, 48 * 1024, "guard page");
}

/* A burst of coroutines with stacks of `stack` bytes; once their memory went back,
 * the next ones get those stacks, rebuilt, and the last of them overflows.  Returns
 * early (and the child exits 0: the test fails) when a step fails. */
static void *overflow_after_burst_main(void *arg)
{
    enum { COUNT = 400, SLEEPERS = 300 };
    plait_spawn_options o = {.name = "burst", .stack_size = (size_t)(intptr_t)arg};
    memset(burst_addr, 0, sizeof burst_addr);
    if (plait_event_create(&burst_gate) != 0)
        return NULL;
    for (size_t i = 0; i < COUNT; i++)
        if (plait_spawn_opts(&burst_task[i], burst_member, ARG(i), &o) != 0)
            return NULL;
    plait_yield();
    long peak = burst_resident_kb();
    plait_event_set(burst_gate);
    for (size_t i = 0; i < COUNT; i++)
        plait_join(burst_task[i], NULL, PLAIT_FOREVER);
    if (peak < COUNT * BURST_TOUCH / 1024 || burst_wait_resident_below(peak * 3 / 4) >= peak * 3 / 4)
        return NULL; /* the pool kept the memory */
    /* the pool keeps 256 stacks with their memory: the ones after come from the rest */
    o.name = "sleeper";
    for (size_t i = 0; i < SLEEPERS; i++)
        if (plait_spawn_opts(NULL, sleep_forever, NULL, &o) != 0)
            return NULL;
    return overflow_main(arg);
}

TEST(overflow_hits_guard_page_of_reused_stack)
{
    CHECK(plait_guard_budget() > 0);
    expect_overflow_report(overflow_after_burst_main, 40 * 1024, "guard page");
}
TEST(overflow_runs_off_small_stack)
{
    expect_overflow_report(overflow_main, PLAIT_STACK_MIN * 4, "past the end of its stack");
}
TEST(overflow_breaks_canary)
{
    expect_overflow_report(overflow_main, PLAIT_STACK_MIN, "canary");
}


/* A stack of 256 MiB used to take a chunk of 16 such slots (4 GiB of address space)
 * with no way down: under an address-space limit (RLIMIT_AS, or vm.overcommit_memory
 * = 2) that leaves room for the one stack, its spawn failed with -ENOMEM. */
static void *big_stack_task(void *p)
{
    volatile char frame[64 * 1024];
    frame[0] = 1;
    return frame[0] ? p : NULL;
}
static void *big_stack_main(void *p)
{
    (void)p;
    plait_task t;
    plait_spawn_options o = {.stack_size = (size_t)256 << 20};
    int r = plait_spawn_opts(&t, big_stack_task, ARG(7), &o);
    if (r == 0)
        r = plait_join(t, NULL, PLAIT_FOREVER);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}
TEST(big_stack_under_an_address_space_limit)
{
    if (CHECK_SANITIZED)
        return; /* a sanitizer's shadow memory makes RLIMIT_AS meaningless */
    pid_t pid = fork();
    if (pid == 0) {
        long kb = vm_size_kb();
        /* room for the stack (and the scheduler's own), not for 16 of them */
        struct rlimit rl = {.rlim_cur = (rlim_t)kb * 1024 + ((rlim_t)1 << 30),
                            .rlim_max = (rlim_t)kb * 1024 + ((rlim_t)1 << 30)};
        if (kb < 0 || setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        int r = plait_run(big_stack_main, NULL, NULL);
        _exit(r == 0 ? 0 : r == -ENOMEM ? 12 : 4);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

RUN_TESTS(CASE(a_scheduler_s_end_keeps_an_alt_stack_the_program_installed),
          CASE(overflow_hits_guard_page), CASE(overflow_hits_guard_page_of_reused_stack),
          CASE(overflow_runs_off_small_stack), CASE(overflow_breaks_canary),
          CASE(stack_memory_goes_back), CASE(stack_memory_of_neighbours_stays),
          CASE(packed_stack_memory_of_neighbours_stays),
          CASE(stack_memory_goes_back_without_timers), CASE(stack_memory_of_ended_scheduler),
          CASE(stack_memory_of_ended_scheduler_other_size),
          CASE(stack_memory_of_ended_scheduler_stays_while_another_lives),
          CASE(stack_memory_kept_where_madvise_refuses),
          CASE(stack_class_kept_mark_shared_by_two_schedulers),
          CASE(big_stack_under_an_address_space_limit))
