/* compare_recommend_harness.c — plait compare's recommendations (tools/compare_report.c)
 * over figures made up here, as a run on a busy machine could measure them: the
 * coroutines' CPU-bound "speed-up" above 1.25x (the paired run on one thread was slowed
 * down; coroutines of one scheduler run on one thread), the pools' below.  No model
 * ran the job in parallel: the recommendation for CPU-bound work must not name a pool
 * that the facts row says did not, nor call it the fastest.  Exit 0, or 1 saying what. */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    static compare_result res;
    res.machine.cpus = 2;
    res.io_backend = "epoll";
    compare_metric *cpu = compare_metric_row(&res, "cpu_speedup");
    cpu->title = "CPU-bound speed-up";
    cpu->unit = "x";
    cpu->higher_is_better = true;
    cpu->value[COROUTINE] = 1.30;
    cpu->value[THREAD] = 1.10;
    cpu->value[PROCESS] = 1.05;
    compare_recommend(&res);
    int failed = 0;
    for (int i = 0; i < res.recommendations; i++) {
        const compare_recommendation *rec = &res.recommendation[i];
        if (strcmp(rec->work, "CPU-bound work"))
            continue;
        printf("CPU-bound work: %s: %s\n", rec->model < 0 ? "none" : compare_model_name[rec->model],
               rec->why);
        if (rec->model >= 0) {
            printf("FAIL: %s recommended for CPU-bound work, though no pool ran it 1.25x faster\n",
                   compare_model_name[rec->model]);
            failed = 1;
        }
        return failed;
    }
    printf("FAIL: no recommendation for CPU-bound work\n");
    return 1;
}
