/* test_spin.c — the look before sleeping (futex.c: plait__spin_yield, the step after
 * the pauses): it looks until ns have passed or the deadline has, whichever is first.
 * A deadline far in the past (INT64_MIN, as a caller may pass for "try once") made the
 * step compute deadline - now, a signed overflow: undefined, and in practice a wrapped
 * positive distance that looked for the whole ns after the deadline had passed (the first
 * case failed so before the fix; helper 172's reading of futex.c in session 42). */
#include "helpers.h"

#include "../src/internal.h"

TEST(a_deadline_far_in_the_past_makes_no_step)
{
    int64_t pasts[] = {INT64_MIN, INT64_MIN + 1, -1, 0, plait_now() - PLAIT_SEC};
    for (size_t i = 0; i < sizeof pasts / sizeof pasts[0]; i++) {
        plait__spin spin = {.pauses = 0, .ns = PLAIT__WAIT_SPIN_NS + 1, .deadline = pasts[i]};
        CHECK(!plait__spin_yield(&spin));
        CHECK(spin.until == pasts[i]);
    }
}

TEST(a_deadline_before_the_look_ends_ends_it)
{
    int64_t deadline = plait_deadline_in(PLAIT_MS);
    plait__spin spin = {.pauses = 0, .ns = 60 * PLAIT_SEC, .deadline = deadline};
    (void)plait__spin_yield(&spin);
    CHECK(spin.until == deadline);
}

TEST(without_a_deadline_the_look_lasts_ns)
{
    int64_t before = plait_now();
    plait__spin spin = {.pauses = 0, .ns = 60 * PLAIT_SEC, .deadline = PLAIT_FOREVER};
    CHECK(plait__spin_yield(&spin));
    int64_t after = plait_now();
    CHECK(spin.until >= before + 60 * PLAIT_SEC && spin.until <= after + 60 * PLAIT_SEC);
}

RUN_TESTS(CASE(a_deadline_far_in_the_past_makes_no_step),
          CASE(a_deadline_before_the_look_ends_ends_it),
          CASE(without_a_deadline_the_look_lasts_ns))
