/*
 * test_stack_switch.c — an overflow that the switch itself makes is reported as the
 * switched-from coroutine's (its own process: the cases need guard pages, which a
 * process with many stacks made has spent; test_stack_edges is one).
 */
#include "helpers.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>

/* An overflow made by the switch itself: a coroutine whose stack is all but full
 * yields, and the code that runs on its stack after the scheduler already names the
 * next coroutine (the cancel state's save, the register pushes) runs into its guard
 * page.  The handler looked only at the coroutine switched to: it named that one
 * ('other'), or, switching to the loop, none (a bare SIGSEGV; that case is not made
 * here: the fills that reach it depend on the build).  Every fill of the stack up to
 * 2 KiB short of full, 8 bytes apart, in a child each: a run ends well, or with the
 * report naming 'filler'. */
static size_t short_of_full; /* how far above its end the fill leaves the stack */
static __attribute__((noinline)) void fill_then_yield(size_t n)
{
    char buf[n];
    memset(buf, 1, n);
    __asm__ volatile("" : : "r"(buf) : "memory");
    plait_yield();
    __asm__ volatile("" : : "r"(buf) : "memory");
}
/* The lowest address of the stack that holds addr: the start of its mapping, which a
 * guard page (no access) ends below; 0 if there is none there. */
static uintptr_t guarded_stack_end(uintptr_t addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512], perms[8] = "", below[8] = "";
    unsigned long start, end, below_end = 0;
    uintptr_t lo = 0;
    while (f && fgets(line, sizeof line, f) &&
           sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3) {
        if (start <= addr && addr < end) {
            lo = below_end == start && strncmp(below, "---", 3) == 0 ? start : 0;
            break;
        }
        below_end = end;
        memcpy(below, perms, sizeof below);
    }
    if (f)
        fclose(f);
    return lo;
}
static void *filler(void *arg)
{
    uintptr_t top = (uintptr_t)__builtin_frame_address(0), lo = guarded_stack_end(top);
    if (!lo)
        _exit(5); /* the case is about a guard page: the budget ran out (a fresh process) */
    size_t left = top - lo;
    fill_then_yield(left > short_of_full ? left - short_of_full : 0);
    return arg;
}
static void *other(void *arg)
{
    plait_yield();
    return arg;
}
static void *switch_overflow_main(void *arg)
{
    (void)arg;
    plait_spawn_options f = {.name = "filler", .stack_size = 16 * 1024},
                        o = {.name = "other", .stack_size = 16 * 1024};
    /* the first call of a library function binds it (the dynamic linker, kilobytes of
     * stack): the fill's own calls here, on this stack, not on the full one */
    fill_then_yield(64);
    plait_task t, u;
    if (plait_spawn_opts(&t, filler, NULL, &f) != 0 || plait_spawn_opts(&u, other, NULL, &o) != 0)
        _exit(3);
    plait_join(t, NULL, SOON());
    _exit(0);
}
TEST(overflow_in_a_switch_to_a_coroutine_names_the_one_switched_from)
{
    if (CHECK_SANITIZED) {
        CHECK_SKIP("a sanitizer handles SIGSEGV itself");
        return;
    }
    int bad = 0, reported = 0, fine = 0;
    for (short_of_full = 0; short_of_full < 2048 && bad < 3; short_of_full += 8) {
        char out[4096];
        int status = run_with_stderr_in_child(switch_overflow_main, out, sizeof out);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            fine++;
            continue;
        }
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
            strstr(out, "stack overflow in coroutine 'filler'")) {
            reported++;
            continue;
        }
        bad++;
        fprintf(stderr, "  %zu bytes short: status %#x, '%s'\n", short_of_full, (unsigned)status,
                out);
    }
    CHECK_EQ(bad, 0);
    CHECK(reported > 0 && fine > 0); /* the fills went from past the end to short of it */
}
RUN_TESTS(CASE(overflow_in_a_switch_to_a_coroutine_names_the_one_switched_from))
