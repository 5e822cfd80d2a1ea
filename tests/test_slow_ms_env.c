/*
 * test_slow_ms_env.c — PLAIT_SLOW_MS as the first scheduler of a process reads it.
 *
 * Each case sets the variable and runs a scheduler in a child forked from this process,
 * which never starts one itself (the threshold is read once per process, at the first
 * scheduler's start), its coroutine 'cpu-hog' running 300 ms without yielding; the
 * child's standard error says what its watch did.  A value that is not a whole number
 * of milliseconds used to be read as far as strtoll went ("1e2" as 1 ms, "50abc" as
 * 50), silently: it now turns the watch off and says so, once.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

/* The standard error of a child that runs run_cpu_hog (300 ms) as its first scheduler's
 * main, with PLAIT_SLOW_MS=value (NULL: unset), into out (NUL-ended). */
static void stderr_with(const char *value, char *out, size_t size)
{
    if (value)
        CHECK_EQ(setenv("PLAIT_SLOW_MS", value, 1), 0);
    else
        CHECK_EQ(unsetenv("PLAIT_SLOW_MS"), 0);
    fflush(NULL);
    cpu_hog_ns = 300 * PLAIT_MS;
    int status = run_with_stderr_in_child(run_cpu_hog, out, size);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(unsetenv("PLAIT_SLOW_MS"), 0);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *at = text; (at = strstr(at, what)); at += strlen(what))
        n++;
    return n;
}

TEST(a_value_that_is_not_whole_milliseconds_turns_the_watch_off_and_says_so)
{
    const char *bad[] = {"1e2", "50abc", "0x20", "1.5", "-5", " ", "10 ms"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char out[4096];
        stderr_with(bad[i], out, sizeof out);
        char said[64];
        snprintf(said, sizeof said, "PLAIT_SLOW_MS=\"%s\" is not a whole number", bad[i]);
        if (count(out, said) != 1 || strstr(out, "without yielding"))
            fprintf(stderr, "PLAIT_SLOW_MS=\"%s\": the child said:\n%s\n", bad[i], out);
        CHECK_EQ(count(out, said), 1); /* once, though the program may start more */
        CHECK(strstr(out, "without yielding") == NULL);
    }
}

TEST(a_whole_number_sets_the_threshold_in_milliseconds)
{
    char out[4096];
    stderr_with("20", out, sizeof out);
    CHECK(strstr(out, "coroutine 'cpu-hog'") != NULL);
    CHECK(strstr(out, "(threshold 20 ms)") != NULL);
    CHECK(strstr(out, "PLAIT_SLOW_MS") == NULL);
}

TEST(unset_empty_or_zero_is_off_without_a_word)
{
    const char *off[] = {NULL, "", "0"};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        char out[4096];
        stderr_with(off[i], out, sizeof out);
        CHECK_EQ(out[0], '\0');
    }
}

RUN_TESTS(CASE(a_value_that_is_not_whole_milliseconds_turns_the_watch_off_and_says_so),
          CASE(a_whole_number_sets_the_threshold_in_milliseconds),
          CASE(unset_empty_or_zero_is_off_without_a_word))
