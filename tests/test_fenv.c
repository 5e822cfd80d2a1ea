/*
 * test_fenv.c — the floating-point modes (rounding, flush-to-zero) across coroutines.
 * Both ABIs have them callee-saved, so each coroutine keeps its own across switches,
 * and a new coroutine starts with its spawner's, as a thread starts with its creator's
 * (pthread_create(3)); the thread that runs a scheduler has its own back once plait_run
 * returns.  (Failed first: the x86-64 switch started every coroutine with fixed default
 * modes, round to nearest and no flush-to-zero, whatever the program had set; the
 * aarch64 switch did not keep them per coroutine at all: one coroutine's fesetround
 * reached the others and the thread; session 51's audit.)
 */
#include "helpers.h"

#include <fenv.h>
#include <float.h>

/* Flush-to-zero on or off in this thread (false where this test knows no way to). */
static bool set_flush_to_zero(bool on)
{
#if defined(__x86_64__)
    unsigned csr;
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    csr = on ? csr | 0x8040u : csr & ~0x8040u; /* FTZ and DAZ */
    __asm__ volatile("ldmxcsr %0" : : "m"(csr));
    return true;
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = on ? fpcr | (1ul << 24) : fpcr & ~(1ul << 24); /* FZ */
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
    return true;
#else
    (void)on;
    return false;
#endif
}

/* Whether a result below the smallest normal number comes out as zero. */
static bool flushes_to_zero(void)
{
    volatile double smallest = DBL_MIN, four = 4.0;
    volatile double denormal = smallest / four;
    return denormal == 0.0;
}

static void *rounding_seen(void *unused)
{
    (void)unused;
    return (void *)(intptr_t)fegetround();
}

static void *main_spawns_downward(void *unused)
{
    (void)unused;
    CHECK_EQ(fegetround(), FE_UPWARD); /* the thread's, which plait_run was called in */
    CHECK_EQ(fesetround(FE_DOWNWARD), 0);
    plait_task child;
    CHECK_EQ(plait_spawn(&child, rounding_seen, NULL), 0);
    CHECK_EQ(fesetround(FE_TOWARDZERO), 0); /* after the spawn: not the child's */
    void *seen;
    CHECK_EQ(plait_join(child, &seen, SOON()), 0);
    CHECK_EQ((int)(intptr_t)seen, FE_DOWNWARD);
    return NULL;
}

TEST(a_coroutine_starts_with_its_spawners_rounding)
{
    CHECK_EQ(fesetround(FE_UPWARD), 0);
    check_run(main_spawns_downward, NULL);
    CHECK_EQ(fegetround(), FE_UPWARD); /* the thread's own again */
    CHECK_EQ(fesetround(FE_TONEAREST), 0);
}

static void *sets_then_yields(void *mode)
{
    CHECK_EQ(fesetround((int)(intptr_t)mode), 0);
    for (int i = 0; i < 3; i++) {
        plait_yield();
        CHECK_EQ(fegetround(), (int)(intptr_t)mode);
    }
    return NULL;
}

static void *two_roundings(void *unused)
{
    (void)unused;
    plait_task up, zero;
    CHECK_EQ(plait_spawn(&up, sets_then_yields, (void *)(intptr_t)FE_UPWARD), 0);
    CHECK_EQ(plait_spawn(&zero, sets_then_yields, (void *)(intptr_t)FE_TOWARDZERO), 0);
    CHECK_EQ(plait_join(up, NULL, SOON()), 0);
    CHECK_EQ(plait_join(zero, NULL, SOON()), 0);
    CHECK_EQ(fegetround(), FE_TONEAREST); /* neither child's */
    return NULL;
}

TEST(each_coroutine_keeps_its_own_rounding)
{
    CHECK_EQ(fegetround(), FE_TONEAREST);
    check_run(two_roundings, NULL);
    CHECK_EQ(fegetround(), FE_TONEAREST);
}

static void *flush_seen(void *unused)
{
    (void)unused;
    return (void *)(intptr_t)flushes_to_zero();
}

static void *spawns_with_flush_to_zero(void *unused)
{
    (void)unused;
    CHECK(flushes_to_zero()); /* the thread's */
    plait_task child;
    CHECK_EQ(plait_spawn(&child, flush_seen, NULL), 0);
    CHECK(set_flush_to_zero(false)); /* after the spawn: not the child's */
    CHECK(!flushes_to_zero());
    void *seen;
    CHECK_EQ(plait_join(child, &seen, SOON()), 0);
    CHECK_EQ((intptr_t)seen, 1);
    return NULL;
}

/* As a program built with -ffast-math runs (its start-up sets flush-to-zero). */
TEST(a_coroutine_starts_with_its_spawners_flush_to_zero)
{
    if (!set_flush_to_zero(true)) {
        CHECK_SKIP("no way known to this test to set flush-to-zero on this architecture");
        return;
    }
    CHECK(flushes_to_zero());
    check_run(spawns_with_flush_to_zero, NULL);
    CHECK(flushes_to_zero()); /* the thread's own again */
    CHECK(set_flush_to_zero(false));
    CHECK(!flushes_to_zero());
}

RUN_TESTS(CASE(a_coroutine_starts_with_its_spawners_rounding),
          CASE(each_coroutine_keeps_its_own_rounding),
          CASE(a_coroutine_starts_with_its_spawners_flush_to_zero))
