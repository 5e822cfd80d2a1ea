/*
 * test_timer.c — a scheduler's timers on their own (src/timer.c): a heap, and beside it
 * a list for deadlines that come in order.  Whatever the order of adds and removals,
 * the first timer is the earliest present one (of equal deadlines, the one added
 * first), and each comes out once.
 */
#include "helpers.h"

#include "../src/internal.h"

enum { MANY = 2000 };
static plait__timer timers[MANY];
static bool present[MANY];

/* The earliest present timer by a plain search; of equal deadlines the one added
 * first (timers are added in index order). NULL when none is present. */
static plait__timer *earliest(void)
{
    plait__timer *first = NULL;
    for (int i = 0; i < MANY; i++)
        if (present[i] && (!first || timers[i].when < first->when))
            first = &timers[i];
    return first;
}

static void check_first(plait__timer_heap *heap)
{
    CHECK(plait__timer_first(heap) == earliest());
}

/* deadline(i, seed): in order, against the order, or at random */
static void run(int64_t (*deadline)(int i, uint64_t *seed))
{
    plait__timer_heap heap = {0};
    uint64_t seed = 11;
    for (int i = 0; i < MANY; i++) {
        timers[i] = (plait__timer){.when = deadline(i, &seed), .index = SIZE_MAX};
        present[i] = false;
    }
    int added = 0, left = 0;
    while (added < MANY || left > 0) {
        /* add a few, then remove one: the first or one at random */
        for (int k = (int)(rnd(&seed) % 4); k > 0 && added < MANY; k--) {
            CHECK_EQ(plait__timer_add(&heap, &timers[added]), 0);
            present[added++] = true;
            left++;
            check_first(&heap);
        }
        if (!left)
            continue;
        plait__timer *victim = plait__timer_first(&heap);
        if (rnd(&seed) % 2) {
            int i = (int)(rnd(&seed) % (uint32_t)added);
            while (!present[i])
                i = (i + 1) % added;
            victim = &timers[i];
        }
        plait__timer_remove(&heap, victim);
        CHECK_EQ(victim->index, SIZE_MAX);
        present[victim - timers] = false;
        left--;
        check_first(&heap);
    }
    CHECK(plait__timer_first(&heap) == NULL);
    plait__timer_heap_free(&heap);
}

static int64_t rising(int i, uint64_t *seed)
{
    (void)seed;
    return 1000 + i / 3; /* in order, with ties */
}

static int64_t falling(int i, uint64_t *seed)
{
    (void)seed;
    return 1000000 - i;
}

static int64_t random_deadline(int i, uint64_t *seed)
{
    (void)i;
    return rnd(seed) % 5000;
}

/* a few deadlines, each shared by many timers, added in no order */
static int64_t few_deadlines(int i, uint64_t *seed)
{
    (void)i;
    return 1000 * (int64_t)(rnd(seed) % 6);
}

/* mostly in order, now and then an earlier one (a server's reads with a shorter wait) */
static int64_t mostly_rising(int i, uint64_t *seed)
{
    return rnd(seed) % 8 ? 10 * i : 10 * i - (int64_t)(rnd(seed) % 500);
}

TEST(deadlines_in_order) { run(rising); }
TEST(deadlines_against_the_order) { run(falling); }
TEST(deadlines_at_random) { run(random_deadline); }
TEST(deadlines_mostly_in_order) { run(mostly_rising); }
TEST(equal_deadlines_come_out_in_the_order_added) { run(few_deadlines); }

RUN_TESTS(CASE(deadlines_in_order), CASE(deadlines_against_the_order),
          CASE(deadlines_at_random), CASE(deadlines_mostly_in_order),
          CASE(equal_deadlines_come_out_in_the_order_added))
