/* test_compare_memory.c — `plait compare`'s "memory per unit" row does not depend on
 * what the tool measured before it.  The row counted the resident memory that N parked
 * units added, after every other step: memory those steps had freed and the process
 * kept (the C library's heap and cached thread stacks, plait's cached coroutine
 * stacks) was taken again by the parked units without growing the count, and 100
 * threads parked after the I/O-bound job counted 7,946 bytes each against 9,953 in a
 * process that had done nothing before (a tools review; 18 % low), and 20 children
 * parked counted twice their size in a fresh tool (a child's proportional set size
 * shares its parent's pages, which grew with each step).  Now the processes' and
 * threads' memory steps run first, and the coroutines' (last: see compare_steps) is
 * counted at the margin (tools/compare_measure.c, memory_units): what the second half
 * of the units adds, once the first half has taken what was left behind.  The steps
 * themselves run here (tools/compare_measure.c, linked in), at the tool's quick
 * counts, each in a child of its own: a model's memory step alone, and its other
 * steps (all of which ran before it in the tool, then) followed by its memory step. */
#include "helpers.h"

#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_BUILD true
#else
#define SANITIZED_BUILD false
#endif

static const compare_step *step_named(const char *what)
{
    for (int i = 0; i < compare_step_count; i++)
        if (!strcmp(compare_steps[i].what, what))
            return &compare_steps[i];
    return NULL;
}

/* The memory per unit of `model`, measured now: 0, or the step's failure. */
static int memory_now(compare_result *res, int model, double *figure)
{
    static const char *const steps[MODELS] = {"coroutines: memory per unit",
                                              "threads: memory per unit",
                                              "processes: memory per unit"};
    const compare_step *s = step_named(steps[model]);
    int r = s ? s->run(&compare_quick_sizes, res, model) : -ENOENT;
    *figure = compare_metric_row(res, "memory")->value[model];
    return r;
}

typedef struct job {
    int model;
    bool others_first; /* the model's other steps, then its memory step */
} job;

/* In a child (a fork of this process, which measures nothing itself): the job's
 * figure, as a double. */
static ssize_t measure(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    const job *j = arg;
    static compare_result res;
    for (int i = 0; j->others_first && i < compare_step_count; i++) {
        const compare_step *s = &compare_steps[i];
        if (s->model == j->model && !strstr(s->what, "memory")) {
            int r = s->run(&compare_quick_sizes, &res, j->model);
            if (r < 0)
                return r;
        }
    }
    double figure;
    int r = memory_now(&res, j->model, &figure);
    if (r < 0)
        return r;
    if (cap < sizeof figure)
        return -EMSGSIZE;
    memcpy(out, &figure, sizeof figure);
    return sizeof figure;
}

static double measured_in_a_child(int model, bool others_first)
{
    job j = {.model = model, .others_first = others_first};
    plait_task t;
    CHECK_EQ(plait_process_start(&t, measure, &j, sizeof j, NULL, NULL), 0);
    plait_bytes *result = NULL;
    CHECK_EQ(plait_join(t, (void **)&result, plait_deadline_in(120 * PLAIT_SEC)), 0);
    double figure = NAN;
    if (result && result->len == sizeof figure)
        memcpy(&figure, result->data, sizeof figure);
    free(result);
    return figure;
}

static void same_before_and_after_the_other_steps(int model, double margin)
{
    double fresh = measured_in_a_child(model, false);
    double after = measured_in_a_child(model, true);
    printf("  %s: %.0f bytes each in a fresh process, %.0f after the other steps\n",
           compare_model_name[model], fresh, after);
    CHECK(fresh > 0 && after > 0);
    CHECK(fabs(after - fresh) <= margin * fresh);
}

/* Coroutines, 5,000 parked: counted from none, 2.6-2.8 % lower after the other steps
 * (plait's 256 cached stacks, and freed heap, taken again); at the margin 0.5-1.5 %
 * (a fresh process's own one-off costs: 4,273-4,324 bytes against 4,260). */
TEST(coroutine_memory_does_not_count_what_earlier_steps_left)
{
    if (SANITIZED_BUILD) {
        CHECK_SKIP("a sanitizer's own memory per coroutine");
        return;
    }
    same_before_and_after_the_other_steps(COROUTINE, 0.02);
}

/* A child's proportional set size takes its share of the parent's pages, and the tool
 * grows with each step (20 children parked after the others counted 310-322 KiB each,
 * 158-166 KiB before): the processes' and threads' memory steps come first. */
TEST(process_and_thread_memory_are_measured_first)
{
    CHECK(compare_step_count > 2);
    CHECK(!strcmp(compare_steps[0].what, "processes: memory per unit"));
    CHECK(!strcmp(compare_steps[1].what, "threads: memory per unit"));
    /* and the coroutines' last: a parent holding their stacks forks more slowly */
    CHECK(!strcmp(compare_steps[compare_step_count - 1].what, "coroutines: memory per unit"));
}

RUN_TESTS(CASE(process_and_thread_memory_are_measured_first),
          CASE(coroutine_memory_does_not_count_what_earlier_steps_left))
