/* compare.h — `plait compare`: the comparison table of coroutines, threads and
 * processes, measured.  compare_measure.c measures, compare_report.c turns the
 * measurements into the text table, the JSON and the recommendations, compare.c is
 * the command (options, progress, output files). */
#ifndef PLAIT_COMPARE_H
#define PLAIT_COMPARE_H

#include "tool.h"

#include <stdbool.h>
#include <stdio.h>

enum { COROUTINE, THREAD, PROCESS, MODELS };

extern const char *const compare_model_id[MODELS];   /* "coroutine", ... */
extern const char *const compare_model_name[MODELS]; /* "coroutines", ... */

/* How much work each measurement does: --quick (under 10 s in all) or the full run. */
typedef struct compare_sizes {
    int batches;          /* repetitions of each timed loop (<= BATCHES_MAX); the median is kept */
    int coroutine_starts, thread_starts, process_starts;
    int handoffs, process_handoffs;          /* round trips per batch */
    int coroutines_parked, threads_parked, processes_parked;
    int small_messages, large_messages;      /* per batch; 64 B and 64 KiB */
    int io_units, io_requests;               /* the I/O-bound job */
    unsigned prime_bound;                    /* the CPU-bound job: primes below this */
    int cpu_workers;                         /* its pools' workers; 0: one per CPU */
} compare_sizes;

/* The quick run's counts, the full run's, and a sanitizer build's (compare_measure.c). */
extern const compare_sizes compare_quick_sizes, compare_full_sizes, compare_sanitizer_sizes;

enum { BATCHES_MAX = 9, METRIC_EXTRA_MAX = 2, METRICS_MAX = 16, FACTS_MAX = 8, RECOMMENDATIONS_MAX = 8 };

/* A numeric row: one figure per model (NAN: not measured; so is a value that is not
 * finite and above 0, as 0 ns from a coarse clock), plus extra figures in the same unit
 * (another mechanism for the same model, such as a pipe). */
typedef struct compare_metric {
    const char *id, *title, *unit;
    char how[512];
    bool higher_is_better, log_scale;
    double value[MODELS];
    int extras;
    struct {
        const char *label;
        double value;
    } extra[METRIC_EXTRA_MAX];
} compare_metric;

/* A non-numeric row: a short answer per model. */
typedef struct compare_fact {
    const char *id, *title;
    char how[512];
    char value[MODELS][64];
} compare_fact;

typedef struct compare_recommendation {
    const char *work;
    int model;            /* COROUTINE..PROCESS, or -1: none */
    char why[512];
} compare_recommendation;

typedef struct compare_result {
    bool quick;
    tool_machine machine;
    char started[32];
    long long memory_bytes;   /* the host's memory; 0: unknown (sysinfo failed) */
    int cpu_workers;          /* the CPU-bound job's pools' workers; 0: one per CPU */
    const char *io_backend;
    double elapsed_s;
    int metrics, facts, recommendations;
    compare_metric metric[METRICS_MAX];
    compare_fact fact[FACTS_MAX];
    compare_recommendation recommendation[RECOMMENDATIONS_MAX];
} compare_result;

/* One measuring step: what the progress display names, and the function that
 * measures it for one model (0, or a negative code: the step failed). */
typedef struct compare_step {
    const char *what;
    int model;
    int (*run)(const compare_sizes *sizes, compare_result *result, int model);
} compare_step;

/* The steps in the order they run, and their number. */
extern const compare_step compare_steps[];
extern const int compare_step_count;
/* Make the rows the steps fill, in the order the table shows them: made as the steps
 * ran, they came in the steps' order (the memory steps run first and last). */
void compare_make_rows(compare_result *result);

/* The row with this id, added (zeroed, values NAN) if absent. */
compare_metric *compare_metric_row(compare_result *result, const char *id);
compare_fact *compare_fact_row(compare_result *result, const char *id);
/* The fact row with that id, or NULL. */
const compare_fact *compare_find_fact(const compare_result *result, const char *id);

/* Machine description and recommendations, once the steps have run. */
void compare_describe_machine(compare_result *result);
void compare_recommend(compare_result *result);

/* Output: the table and recommendations as text; the JSON of format plait-compare/1
 * (docs/compare.schema.json).  0 or -errno. */
int compare_print_table(FILE *out, const compare_result *result);
int compare_print_json(FILE *out, const compare_result *result);

#endif
