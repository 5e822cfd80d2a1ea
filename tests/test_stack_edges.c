/* test_stack_edges.c — the stack pool (src/stack.c) at its edges: many distinct stack
 * sizes, a frame larger than a page against a guard page (-fstack-clash-protection), a
 * fault in a handler on the alternate signal stack, a fault that is not an overflow. */
#include "helpers.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

static void *touch_a_little(void *arg)
{
    volatile char frame[512];
    frame[0] = 1;
    return frame[0] ? arg : NULL;
}


/* One coroutine alive at a time, each asking for a slightly different stack size (a
 * size computed from the work, say).  Each distinct size used to be a size class of
 * its own, never freed, with a fresh chunk of at least 16 slots, guard pages on all of
 * them: address space and guard pages ran out with one coroutine alive. */
static void *distinct_sizes_main(void *arg)
{
    size_t base = (size_t)(uintptr_t)arg, count = base >= ((size_t)1 << 20) ? 100 : 1100;
    long vm_before = vm_size_kb();
    size_t budget_before = plait_guard_budget();
    for (size_t i = 0; i < count; i++) {
        plait_task t;
        plait_spawn_options o = {.name = "sized", .stack_size = base + 4096 * i};
        int r = plait_spawn_opts(&t, touch_a_little, ARG(7), &o);
        CHECK_EQ(r, 0);
        if (r != 0)
            break;
        void *v;
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK_EQ(INT(v), 7);
    }
    long vm_grew_mb = (vm_size_kb() - vm_before) / 1024;
    size_t guards = budget_before - plait_guard_budget();
    fprintf(stderr, "  %zu sizes from %zu: address space +%ld MiB, %zu guard pages\n", count,
            base, vm_grew_mb, guards);
    CHECK(vm_grew_mb < 8 * 1024);
    CHECK(guards < 3000);
    return NULL;
}

TEST(distinct_stack_sizes_share_classes_big)
{
    check_run(distinct_sizes_main, ARG((uintptr_t)32 << 20));
}
TEST(distinct_stack_sizes_share_classes)
{
    check_run(distinct_sizes_main, ARG((uintptr_t)16 << 10));
}

/* A frame larger than a page, written only at its low end, on a guarded stack: the
 * guard page stops it only in code compiled with -fstack-clash-protection, probing
 * every page (this file is, tests/CMakeLists.txt); without it the write landed in the stack below, unseen
 * (API.md, "Stacks"). */
static void *sleeper(void *arg)
{
    (void)arg;
    plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}
static __attribute__((noinline)) void *big_frame(void *arg)
{
    volatile char big[40 * 1024];
    big[0] = 1;
    return big[0] ? arg : NULL;
}
static void *big_frame_main(void *arg)
{
    (void)arg;
    /* a size no other case uses: a fresh class, slots taken from the lowest up, so the
     * frame reaches into the slot of a sleeper below */
    plait_spawn_options o = {.name = "big-frame", .stack_size = 20 * 1024};
    for (int i = 0; i < 3; i++)
        if (plait_spawn_opts(NULL, sleeper, NULL, &o) != 0)
            _exit(3);
    plait_task t;
    if (plait_spawn_opts(&t, big_frame, ARG(1), &o) != 0)
        _exit(3);
    plait_join(t, NULL, SOON());
    _exit(0); /* not reached when the guard page stops the frame */
}
TEST(large_frame_stopped_by_guard_page_with_stack_clash_protection)
{
    if (CHECK_SANITIZED) {
        CHECK_SKIP("a sanitizer moves large locals off the stack");
        return;
    }
    char out[4096];
    int status = run_with_stderr_in_child(big_frame_main, out, sizeof out);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(out, "stack overflow in coroutine 'big-frame'") != NULL);
    CHECK(strstr(out, "guard page") != NULL);
}

/* A fault in a signal handler that runs on the alternate signal stack (SA_ONSTACK, as
 * API.md advises) while a coroutine is current: the stack pointer is below the
 * coroutine's stack (the alternate stack is on the heap), but nothing overflowed.  It
 * was reported as "stack overflow in coroutine ...: it ran past the end of its stack"
 * (and SIGABRT) instead of dying of the SIGSEGV it is. */
static int *volatile null_pointer;
static void faulting_handler(int sig)
{
    (void)sig;
    *null_pointer = 1;
}
static void *raise_in_coroutine(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = faulting_handler;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        _exit(3);
    raise(SIGUSR1);
    _exit(0); /* not reached */
}
/* main of a child's scheduler: runs the coroutine `faulty` (a plait_fn), which must
 * end the process */
static void *fault_main(void *faulty)
{
    plait_spawn_options o = {.name = "faulty", .stack_size = 64 * 1024};
    plait_task t;
    if (plait_spawn_opts(&t, (plait_fn)(uintptr_t)faulty, NULL, &o) != 0)
        _exit(3);
    plait_join(t, NULL, SOON());
    _exit(4);
}
static void *alternate_stack_fault_main(void *unused)
{
    (void)unused;
    return fault_main((void *)(uintptr_t)raise_in_coroutine);
}
TEST(fault_on_alternate_stack_is_no_overflow)
{
    if (CHECK_SANITIZED)
        return; /* a sanitizer handles SIGSEGV itself */
    char out[4096];
    int status = run_with_stderr_in_child(alternate_stack_fault_main, out, sizeof out);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    CHECK(strstr(out, "stack overflow") == NULL);
    if (strstr(out, "stack overflow"))
        fprintf(stderr, "  child said: %s", out);
}

/* A fault in a coroutine that is no overflow (a stray pointer) ends the process by
 * that fault, with its address: what a core dump or a debugger then shows.  The
 * handler sent the signal again (raise), so the process died of a SIGSEGV sent by
 * itself (SI_TKILL, no address), the fault's own siginfo lost.  The child is traced,
 * and each SIGSEGV it would receive is looked at and passed on. */
#define STRAY_ADDRESS ((int *)(uintptr_t)0x1230)
static void *stray_write(void *arg)
{
    (void)arg;
    *(int *volatile)STRAY_ADDRESS = 1;
    return NULL;
}
TEST(fault_that_is_no_overflow_keeps_its_address)
{
    if (CHECK_SANITIZED)
        return; /* a sanitizer handles SIGSEGV itself */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(77);
        raise(SIGSTOP);
        plait_run(fault_main, (void *)(uintptr_t)stray_write, NULL);
        _exit(5);
    }
    CHECK(pid > 0);
    if (pid < 0)
        return;
    int status, segvs = 0;
    siginfo_t last = {0};
    while (waitpid(pid, &status, 0) == pid && WIFSTOPPED(status)) {
        int sig = WSTOPSIG(status);
        if (sig == SIGSEGV) {
            CHECK_EQ(ptrace(PTRACE_GETSIGINFO, pid, NULL, &last), 0);
            segvs++;
        }
        ptrace(PTRACE_CONT, pid, NULL, (void *)(uintptr_t)(sig == SIGSTOP ? 0 : sig));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        CHECK_SKIP("ptrace is refused here");
        return;
    }
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    CHECK(segvs >= 1);
    /* the last SIGSEGV, the one that ended it: the fault's own */
    CHECK_EQ(last.si_code, SEGV_MAPERR);
    CHECK(last.si_addr == (void *)STRAY_ADDRESS);
    if (last.si_code != SEGV_MAPERR)
        fprintf(stderr, "  %d SIGSEGVs, the last with si_code %d, address %p\n", segvs,
                last.si_code, last.si_addr);
}

RUN_TESTS(CASE(distinct_stack_sizes_share_classes_big), CASE(distinct_stack_sizes_share_classes),
          CASE(large_frame_stopped_by_guard_page_with_stack_clash_protection),
          CASE(fault_on_alternate_stack_is_no_overflow),
          CASE(fault_that_is_no_overflow_keeps_its_address))
