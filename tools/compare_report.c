/*
 * compare_report.c — `plait compare`'s measurements turned into what a person reads:
 * the table, the recommendations, and the JSON (format plait-compare/1, whose schema is
 * docs/compare.schema.json; the HTML report is drawn from that JSON).
 *
 * The recommendations are rules over the measured numbers, not fixed text: each names
 * the model that the figures of this run favour for a kind of work, and quotes those
 * figures, so on another machine (one CPU, a slow fork, a kernel without io_uring) it
 * can say something else — including that no model helps (CPU-bound work on one CPU).
 */
#include "compare.h"

#include <plait.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

const char *const compare_model_id[MODELS] = {"coroutine", "thread", "process"};
const char *const compare_model_name[MODELS] = {"coroutines", "threads", "processes"};

static const compare_metric *find_metric(const compare_result *res, const char *id)
{
    for (int i = 0; i < res->metrics; i++)
        if (!strcmp(res->metric[i].id, id))
            return &res->metric[i];
    return NULL;
}

const compare_fact *compare_find_fact(const compare_result *res, const char *id)
{
    for (int i = 0; i < res->facts; i++)
        if (!strcmp(res->fact[i].id, id))
            return &res->fact[i];
    return NULL;
}

/* A fact's answer for model m, or "not measured" when its step failed. */
static const char *fact_text(const compare_fact *row, int m)
{
    return row->value[m][0] ? row->value[m] : "not measured";
}

compare_metric *compare_metric_row(compare_result *res, const char *id)
{
    const compare_metric *found = find_metric(res, id);
    if (found)
        return &res->metric[found - res->metric];
    compare_metric *row = &res->metric[res->metrics++];
    memset(row, 0, sizeof *row);
    row->id = id;
    for (int m = 0; m < MODELS; m++)
        row->value[m] = NAN;
    return row;
}

compare_fact *compare_fact_row(compare_result *res, const char *id)
{
    const compare_fact *found = compare_find_fact(res, id);
    if (found)
        return &res->fact[found - res->fact];
    compare_fact *row = &res->fact[res->facts++];
    memset(row, 0, sizeof *row);
    row->id = id;
    return row;
}

void compare_describe_machine(compare_result *res)
{
    tool_describe_machine(&res->machine);
    res->io_backend = plait_io_backend();
    struct sysinfo si;
    res->memory_bytes = sysinfo(&si) == 0 ? (long long)si.totalram * si.mem_unit : 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(res->started, sizeof res->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- numbers as a person reads them --------------------------------------------- */

/* Whether v is a figure: finite and above 0.  NAN is "not measured", and so is what no
 * measurement can mean: 0 or infinity, from a loop too short for the clock to see pass
 * (0 ns, and a rate or speed-up over 0 s) or resident memory that did not grow while
 * units parked (0 bytes per unit).  The JSON schema wants figures above 0, and a ratio
 * of them must not divide by 0 ("infx ahead"). */
static bool is_figure(double v)
{
    return isfinite(v) && v > 0;
}

/* v in the first of units[] (each `step` times the one before) whose printed figure,
 * with `decimals` (0 to 2; the first unit's: first_decimals), stays under a step: 999.7 ns is
 * "1.00 us", not "1000 ns".  A figure under 1 in the first unit gets two significant
 * digits (0.3 ns printed "0 ns", which is never a figure). */
static void in_units(char *buf, size_t cap, double v, const char *const units[4], double step,
                     int first_decimals, int decimals)
{
    int u = 0, d = first_decimals;
    double scaled = v;
    for (; u < 3; u++, d = decimals, scaled /= step) {
        double half = d == 0 ? 0.5 : d == 1 ? 0.05 : 0.005; /* rounds up to a step */
        if (scaled < step - half)
            break;
    }
    if (u == 0 && v < 1)
        snprintf(buf, cap, "%.2g %s", v, units[0]);
    else
        snprintf(buf, cap, "%.*f %s", d, scaled, units[u]);
}

static const char *human(char *buf, size_t cap, double v, const char *unit)
{
    static const char *const times[4] = {"ns", "us", "ms", "s"};
    static const char *const sizes[4] = {"B", "KiB", "MiB", "GiB"};
    if (!is_figure(v))
        snprintf(buf, cap, "not measured");
    else if (!strcmp(unit, "ns"))
        in_units(buf, cap, v, times, 1e3, 0, 2);
    else if (!strcmp(unit, "bytes"))
        in_units(buf, cap, v, sizes, 1024, 0, 1);
    else if (!strcmp(unit, "ms")) /* (under 0.05: "%.1f" would print 0.0) */
        snprintf(buf, cap, v < 0.05 ? "%.2g ms" : v < 999.95 ? "%.1f ms" : "%.2f s",
                 v < 999.95 ? v : v / 1e3);
    else if (!strcmp(unit, "x"))
        snprintf(buf, cap, "%.2fx", v);
    else
        snprintf(buf, cap, "%.2f %s", v, unit);
    return buf;
}

static bool measured(const compare_metric *row)
{
    for (int m = 0; row && m < MODELS; m++)
        if (!is_figure(row->value[m]))
            return false;
    return row != NULL;
}

/* The best model of a row among those in `among` (a bit mask of models). */
static int best_of(const compare_metric *row, unsigned among)
{
    int best = -1;
    for (int m = 0; m < MODELS; m++)
        if ((among >> m & 1) &&
            (best < 0 || (row->higher_is_better ? row->value[m] > row->value[best]
                                                : row->value[m] < row->value[best])))
            best = m;
    return best;
}

/* "a as coroutines, b as threads, c as processes" for a row. */
static const char *per_model(char *buf, size_t cap, const compare_metric *row)
{
    char v[MODELS][32];
    for (int m = 0; m < MODELS; m++)
        human(v[m], sizeof v[m], row->value[m], row->unit);
    snprintf(buf, cap, "%s as coroutines, %s as threads, %s as processes", v[0], v[1], v[2]);
    return buf;
}

static compare_recommendation *recommend(compare_result *res, const char *work, int model,
                                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static compare_recommendation *recommend(compare_result *res, const char *work, int model,
                                         const char *fmt, ...)
{
    compare_recommendation *rec = &res->recommendation[res->recommendations++];
    rec->work = work;
    rec->model = model;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec->why, sizeof rec->why, fmt, ap);
    va_end(ap);
    return rec;
}

/* The workers of the CPU-bound job's pools: one per CPU, or fewer where the run cut them
 * (to fit the limit on the user's threads and processes). */
static int cpu_workers(const compare_result *res)
{
    return res->cpu_workers ? res->cpu_workers : res->machine.cpus;
}

/* What the CPU-bound job ran on: "8 CPUs", or "2 workers of 8 CPUs" where cut. */
static const char *cpu_room(char *buf, size_t cap, const compare_result *res)
{
    int cpus = res->machine.cpus, workers = cpu_workers(res);
    if (workers < cpus)
        snprintf(buf, cap, "%d worker%s of %d CPUs", workers, workers == 1 ? "" : "s", cpus);
    else
        snprintf(buf, cap, "%d CPU%s", cpus, cpus == 1 ? "" : "s");
    return buf;
}

/* Whether a speed-up shows parallel work: 1.25x or more, with more than one CPU and pool
 * worker (with one, a figure above 1 is the noise of a busy machine between the paired
 * runs). */
static bool ran_in_parallel(const compare_result *res, double speedup)
{
    /* as printed: 1.2496 is "1.25x", which the rule's text calls parallel */
    char printed[32];
    snprintf(printed, sizeof printed, "%.2f", speedup);
    return res->machine.cpus > 1 && cpu_workers(res) > 1 && strtod(printed, NULL) >= 1.25;
}

/* The facts that follow from the figures: who schedules, and whether it ran in parallel. */
static void derive_facts(compare_result *res)
{
    compare_fact *row = compare_fact_row(res, "scheduled_by");
    row->title = "scheduled by";
    snprintf(row->how, sizeof row->how, "what decides which unit runs next");
    snprintf(row->value[COROUTINE], sizeof row->value[0], "plait, in user space");
    snprintf(row->value[THREAD], sizeof row->value[0], "the kernel");
    snprintf(row->value[PROCESS], sizeof row->value[0], "the kernel");

    /* the row is there whenever the CPU-bound step ran: a model whose speed-up was not
     * measured shows "not measured" (an empty value), the others what they measured */
    const compare_metric *cpu = find_metric(res, "cpu_speedup");
    if (!cpu)
        return;
    row = compare_fact_row(res, "parallel");
    row->title = "runs CPU work in parallel";
    snprintf(row->how, sizeof row->how,
             "from the CPU-bound speed-up: a pool runs in parallel when the job ran at least "
             "1.25x faster than on one thread, with more than one CPU and pool worker to run "
             "on; coroutines of one scheduler never do (they run on one thread: a figure of "
             "theirs above 1 is the noise of a busy machine)");
    char room[40];
    cpu_room(room, sizeof room, res);
    for (int m = 0; m < MODELS; m++) {
        if (!is_figure(cpu->value[m]))
            row->value[m][0] = '\0';
        else if (m == COROUTINE)
            snprintf(row->value[m], sizeof row->value[m], "no: %.2fx on one thread",
                     cpu->value[m]);
        else
            snprintf(row->value[m], sizeof row->value[m], "%s: %.2fx on %s",
                     ran_in_parallel(res, cpu->value[m]) ? "yes" : "no", cpu->value[m], room);
    }
}

static void recommend_io(compare_result *res)
{
    const compare_metric *io = find_metric(res, "io_job"), *mem = find_metric(res, "memory");
    if (!measured(io) || !mem)
        return;
    /* Within a quarter of the fastest, the one that needs the least memory per unit:
     * only their memory is needed (a model far behind whose memory step failed left
     * the recommendation out) */
    int fastest = best_of(io, 7);
    unsigned close = 0;
    for (int m = 0; m < MODELS; m++)
        if (io->value[m] <= 1.25 * io->value[fastest]) {
            if (!is_figure(mem->value[m]))
                return;
            close |= 1u << m;
        }
    int pick = best_of(mem, close);
    char times[160], sizes[160], a[32];
    recommend(res, "many concurrent waits (I/O-bound)", pick,
              "The I/O-bound job took %s; memory per unit: %s. Of the models within a quarter "
              "of the fastest (%s), %s need the least memory per unit (%s).",
              per_model(times, sizeof times, io), per_model(sizes, sizeof sizes, mem),
              compare_model_name[fastest], compare_model_name[pick],
              human(a, sizeof a, mem->value[pick], "bytes"));
}

/* Why threads, within a tenth of the process pool: what this run measured of their
 * sharing memory and starting sooner, and only that (the text stated both where the
 * steps that measure them had failed). */
static void threads_reason(char *buf, size_t cap, const compare_result *res)
{
    const compare_fact *shared = compare_find_fact(res, "shared_memory");
    const compare_metric *create = find_metric(res, "create");
    bool shares = shared && !strncmp(shared->value[THREAD], "yes", 3);
    bool sooner = create && is_figure(create->value[THREAD]) && is_figure(create->value[PROCESS]) &&
                  create->value[THREAD] < create->value[PROCESS];
    char th[32], pr[32];
    if (sooner) {
        human(th, sizeof th, create->value[THREAD], create->unit);
        human(pr, sizeof pr, create->value[PROCESS], create->unit);
    }
    if (shares && sooner)
        snprintf(buf, cap, "Threads share memory with their creator and start sooner (%s "
                           "against %s a process)", th, pr);
    else if (shares)
        snprintf(buf, cap, "Threads share memory with their creator");
    else if (sooner)
        snprintf(buf, cap, "Threads start sooner (%s against %s a process)", th, pr);
    else
        snprintf(buf, cap, "Within a tenth, threads are preferred");
}

static void recommend_cpu(compare_result *res)
{
    const compare_metric *cpu = find_metric(res, "cpu_speedup");
    const compare_metric *big = find_metric(res, "msg_large");
    /* the rule reads the pools' figures only (the coroutines' is quoted, or "not
     * measured") */
    if (!cpu || !is_figure(cpu->value[THREAD]) || !is_figure(cpu->value[PROCESS]))
        return;
    /* of the pools: coroutines of one scheduler run on one thread, and a figure of theirs
     * above 1 is the noise of a busy machine (threads were recommended, "fastest on a
     * thread pool", beside a higher figure of the coroutines' and a thread pool's that
     * the facts row called no parallel run) */
    int best = best_of(cpu, 1u << THREAD | 1u << PROCESS);
    char speedups[160], room[40];
    per_model(speedups, sizeof speedups, cpu);
    cpu_room(room, sizeof room, res);
    if (res->machine.cpus == 1) {
        recommend(res, "CPU-bound work", -1,
                  "This process may run on 1 CPU only: no model can run CPU-bound work faster "
                  "than one thread here (measured: %s; what is above 1 is the noise of a busy "
                  "machine). Run such work plainly; concurrency adds only its costs.",
                  speedups);
        return;
    }
    if (cpu_workers(res) == 1) {
        recommend(res, "CPU-bound work", -1,
                  "The CPU-bound job's pools had 1 worker of %d CPUs here (cut to fit the limit "
                  "on the user's threads and processes): none could run it in parallel "
                  "(measured: %s). Raise the limit (ulimit -u) to measure it.",
                  res->machine.cpus, speedups);
        return;
    }
    if (!ran_in_parallel(res, cpu->value[best])) {
        recommend(res, "CPU-bound work", -1,
                  "Neither pool (threads, processes) ran the CPU-bound job 1.25x faster than "
                  "one thread on this machine (%s, perhaps busy with other work): %s. Run "
                  "such work plainly; concurrency adds only its costs.",
                  room, speedups);
        return;
    }
    /* Threads where the thread pool ran in parallel too and within a tenth of the process
     * pool: they share memory and cost less to start; else processes.  (Threads within a
     * tenth but below 1.25x were recommended beside a row that called them no parallel
     * run.) */
    bool threads_parallel = ran_in_parallel(res, cpu->value[THREAD]);
    int pick = threads_parallel && cpu->value[THREAD] >= 0.9 * cpu->value[PROCESS] ? THREAD : PROCESS;
    char reason[192];
    if (pick == THREAD)
        threads_reason(reason, sizeof reason, res);
    else
        snprintf(reason, sizeof reason, "%s",
                 threads_parallel ? "The process pool beat the thread pool by more than a tenth"
                                  : "The thread pool did not run it 1.25x faster than one thread");
    /* what processes cost and give, as far as this run measured it */
    const compare_fact *crash = compare_find_fact(res, "crash_isolated");
    bool isolated = crash && !strncmp(crash->value[PROCESS], "yes", 3);
    char copying[96] = "", bw[32];
    if (big && is_figure(big->value[PROCESS])) /* the one figure quoted: the others may have failed */
        snprintf(copying, sizeof copying, " (64 KiB messages between processes: %s)",
                 human(bw, sizeof bw, big->value[PROCESS], big->unit));
    recommend(res, "CPU-bound work", pick,
              "The CPU-bound job ran %s on %s: %s. %s. Processes %s arguments and results%s.",
              pick == PROCESS                               ? "fastest on a process pool"
              : cpu->value[THREAD] >= cpu->value[PROCESS] ? "fastest on a thread pool"
                                                          : "on a thread pool within a tenth of the process pool",
              room, speedups, reason,
              isolated ? "also isolate a crash (the drill's other units finished), at the price "
                         "of copying"
                       : "copy",
              copying);
}

static void recommend_cheapest(compare_result *res, const char *id, const char *work,
                               const char *what)
{
    const compare_metric *row = find_metric(res, id);
    if (!measured(row))
        return;
    int pick = best_of(row, 7), runner = best_of(row, 7u & ~(1u << pick));
    char figures[160];
    double ratio = row->higher_is_better ? row->value[pick] / row->value[runner]
                                         : row->value[runner] / row->value[pick];
    /* two decimals: with one, a lead of 4 % read "1.0x ahead" */
    if (ratio < 1.01)
        recommend(res, work, pick, "%s: %s; %s are ahead of %s by less than 1 %%.", what,
                  per_model(figures, sizeof figures, row), compare_model_name[pick],
                  compare_model_name[runner]);
    else
        recommend(res, work, pick, "%s: %s; %s are %.2fx ahead of %s.", what,
                  per_model(figures, sizeof figures, row), compare_model_name[pick], ratio,
                  compare_model_name[runner]);
}

static void recommend_isolation(compare_result *res)
{
    const compare_fact *crash = compare_find_fact(res, "crash_isolated");
    const compare_metric *create = find_metric(res, "create");
    if (!crash)
        return;
    int pick = -1;
    bool all = true;
    for (int m = MODELS - 1; m >= 0; m--) {
        if (!strncmp(crash->value[m], "yes", 3))
            pick = m;
        all &= crash->value[m][0] != '\0';
    }
    if (pick < 0 && !all)
        return; /* "none" needs every drill: one that failed might have said yes */
    /* the cost of the model picked, where it was measured (a row of which another
     * model failed still holds it: "Isolation costs ? per process started" was said) */
    char cost[96] = "";
    if (pick >= 0 && create && is_figure(create->value[pick])) {
        char v[32];
        snprintf(cost, sizeof cost, " Isolation costs %s per %s started.",
                 human(v, sizeof v, create->value[pick], create->unit), compare_model_id[pick]);
    }
    if (pick < 0)
        recommend(res, "code that may crash (untrusted input, native plug-ins)", -1,
                  "No model kept the other units alive when one crashed: coroutines: %s; "
                  "threads: %s; processes: %s.",
                  fact_text(crash, COROUTINE), fact_text(crash, THREAD),
                  fact_text(crash, PROCESS));
    else
        recommend(res, "code that may crash (untrusted input, native plug-ins)", pick,
                  "When one unit raised SIGSEGV: coroutines: %s; threads: %s; processes: %s.%s",
                  fact_text(crash, COROUTINE), fact_text(crash, THREAD),
                  fact_text(crash, PROCESS), cost);
}

void compare_recommend(compare_result *res)
{
    derive_facts(res);
    res->recommendations = 0;
    recommend_io(res);
    recommend_cpu(res);
    recommend_cheapest(res, "create", "many short-lived units",
                       "Starting and joining one unit took");
    recommend_cheapest(res, "handoff", "fine-grained hand-offs between units",
                       "One hand-off took");
    recommend_cheapest(res, "msg_large", "moving much data between units",
                       "64 KiB messages moved at");
    recommend_isolation(res);
}

/* ---- the text table ---------------------------------------------------------------- */

enum { TITLE_WIDTH = 30, COLUMN_WIDTH = 24, TEXT_WIDTH = 100 };

/* A metric row's cell for model m: its figure, marked where it is the best of the row
 * (best: -1 for none). */
static const char *metric_cell(char *buf, size_t cap, const compare_metric *row, int m, int best)
{
    char v[32];
    snprintf(buf, cap, "%s%s", human(v, sizeof v, row->value[m], row->unit), m == best ? " *" : "");
    return buf;
}

/* The best of the figures a row has (a row with one model not measured had no mark at
 * all), where there are two to compare; else -1. */
static int best_there(const compare_metric *row)
{
    unsigned there = 0;
    for (int m = 0; m < MODELS; m++)
        there |= (unsigned)is_figure(row->value[m]) << m;
    return there & (there - 1) ? best_of(row, there) : -1;
}

/* The width of each model's column: COLUMN_WIDTH, or wider where a cell is longer (a
 * fact such as "no: 0.99x on 1 worker of 2 CPUs" ran into the next cell), so that two
 * spaces always part the cells. */
static void column_widths(const compare_result *res, int width[MODELS])
{
    for (int m = 0; m < MODELS; m++) {
        width[m] = COLUMN_WIDTH;
        char cell[40];
        for (int i = 0; i < res->metrics; i++) {
            int len = (int)strlen(metric_cell(cell, sizeof cell, &res->metric[i], m,
                                              best_there(&res->metric[i])));
            width[m] = len + 2 > width[m] ? len + 2 : width[m];
        }
        for (int i = 0; i < res->facts; i++) {
            int len = (int)strlen(fact_text(&res->fact[i], m));
            width[m] = len + 2 > width[m] ? len + 2 : width[m];
        }
    }
}

/* Text after what is already on the line (col characters), wrapped at TEXT_WIDTH,
 * each further line indented by `indent`. */
static void print_wrapped(FILE *out, int indent, int col, const char *text)
{
    bool line_start = false;
    for (text += strspn(text, " "); *text; text += strspn(text, " ")) {
        int word = (int)strcspn(text, " ");
        if (!line_start && col + 1 + word > TEXT_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
            line_start = true;
        }
        if (!line_start) {
            fputc(' ', out);
            col++;
        }
        fwrite(text, 1, (size_t)word, out);
        col += word;
        text += word;
        line_start = false;
    }
    fputc('\n', out);
}

int compare_print_table(FILE *out, const compare_result *res)
{
    char mem[48], v[32];
    fprintf(out, "plait compare: coroutines, threads and processes, measured on this machine\n");
    if (res->memory_bytes > 0)
        snprintf(mem, sizeof mem, "%s of memory",
                 human(v, sizeof v, (double)res->memory_bytes, "bytes"));
    else
        snprintf(mem, sizeof mem, "memory unknown");
    fprintf(out, "machine: %d CPU%s%s%s, Linux %s, %s, I/O poller %s; %s run, %.1f s\n\n",
            res->machine.cpus, res->machine.cpus == 1 ? "" : "s", res->machine.cpu_model[0] ? ", " : "", res->machine.cpu_model,
            res->machine.kernel, mem,
            res->io_backend, res->quick ? "quick" : "full", res->elapsed_s);
    int width[MODELS];
    column_widths(res, width);
    fprintf(out, "%-*s", TITLE_WIDTH, "");
    for (int m = 0; m < MODELS; m++)
        fprintf(out, "%-*s", width[m], compare_model_name[m]);
    fprintf(out, "\n");
    for (int i = 0; i < res->metrics; i++) {
        const compare_metric *row = &res->metric[i];
        int best = best_there(row);
        fprintf(out, "%-*s", TITLE_WIDTH, row->title);
        for (int m = 0; m < MODELS; m++) {
            char cell[40];
            fprintf(out, "%-*s", width[m], metric_cell(cell, sizeof cell, row, m, best));
        }
        fprintf(out, "\n");
        for (int e = 0; e < row->extras; e++)
            fprintf(out, "%*s(%s: %s)\n", TITLE_WIDTH, "", row->extra[e].label,
                    human(v, sizeof v, row->extra[e].value, row->unit));
    }
    for (int i = 0; i < res->facts; i++) {
        fprintf(out, "%-*s", TITLE_WIDTH, res->fact[i].title);
        for (int m = 0; m < MODELS; m++)
            fprintf(out, "%-*s", width[m], fact_text(&res->fact[i], m));
        fprintf(out, "\n");
    }
    fprintf(out, "(* the best of the row)\n\nWhat suits which work, from these figures:\n");
    for (int i = 0; i < res->recommendations; i++) {
        const compare_recommendation *rec = &res->recommendation[i];
        char head[160];
        int used = snprintf(head, sizeof head, "- %s: %s.", rec->work,
                            rec->model < 0 ? "none of them" : compare_model_name[rec->model]);
        fputs(head, out);
        print_wrapped(out, 4, used, rec->why);
    }
    fprintf(out, "\nHow each row was measured:\n");
    for (int i = 0; i < res->metrics + res->facts; i++) {
        const char *title = i < res->metrics ? res->metric[i].title : res->fact[i - res->metrics].title;
        const char *how = i < res->metrics ? res->metric[i].how : res->fact[i - res->metrics].how;
        char head[96];
        int used = snprintf(head, sizeof head, "- %s:", title);
        fputs(head, out);
        print_wrapped(out, 4, used, how);
    }
    return ferror(out) ? -EIO : 0;
}

/* ---- JSON ---------------------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at p (1 to 4 bytes), or 0 where none
 * starts: a stray continuation byte, an overlong form, a surrogate, a code point past
 * U+10FFFF, or a sequence cut short (by the terminating NUL, which no range admits). */
static int utf8_length(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
          : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    unsigned lo = p[0] == 0xe0 ? 0xa0 : p[0] == 0xf0 ? 0x90 : 0x80;
    unsigned hi = p[0] == 0xed ? 0x9f : p[0] == 0xf4 ? 0x8f : 0xbf;
    for (int i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (p[i] < lo || p[i] > hi)
            return 0;
    return n;
}

/* A JSON string.  Text that comes from the machine need not be UTF-8 (a CPU's brand
 * string is whatever bytes the firmware or hypervisor put there, and a long model name
 * is cut to its buffer mid-character), but JSON must be (RFC 8259): a byte that starts
 * no well-formed sequence is written as U+FFFD (it made the whole output unreadable to
 * a strict parser, Python's json among them). */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_length(p);
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else if (n == 0)
            fputs("\\ufffd", out);
        else
            fwrite(p, 1, (size_t)n, out);
        p += n ? n : 1;
    }
    fputc('"', out);
}

static void json_number(FILE *out, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", out);
    else
        fprintf(out, "%.6g", v);
}

/* A metric's figure, null where there is none (is_figure). */
static void json_figure(FILE *out, double v)
{
    json_number(out, is_figure(v) ? v : NAN);
}

int compare_print_json(FILE *out, const compare_result *res)
{
    fprintf(out, "{\n  \"format\": \"plait-compare/1\",\n  \"plait_version\": \"%d.%d.%d\",\n",
            PLAIT_VERSION_MAJOR, PLAIT_VERSION_MINOR, PLAIT_VERSION_PATCH);
    fprintf(out, "  \"quick\": %s,\n  \"started\": ", res->quick ? "true" : "false");
    json_string(out, res->started);
    fprintf(out, ",\n  \"elapsed_s\": ");
    json_number(out, res->elapsed_s);
    fprintf(out, ",\n  \"machine\": {\"cpus\": %d, \"cpu_model\": ", res->machine.cpus);
    json_string(out, res->machine.cpu_model);
    fprintf(out, ", \"kernel\": ");
    json_string(out, res->machine.kernel);
    if (res->memory_bytes > 0)
        fprintf(out, ", \"memory_bytes\": %lld, \"io_backend\": ", res->memory_bytes);
    else
        fprintf(out, ", \"memory_bytes\": null, \"io_backend\": ");
    json_string(out, res->io_backend);
    fprintf(out, "},\n  \"models\": [");
    for (int m = 0; m < MODELS; m++)
        fprintf(out, "%s{\"id\": \"%s\", \"name\": \"%s\"}", m ? ", " : "", compare_model_id[m],
                compare_model_name[m]);
    fprintf(out, "],\n  \"metrics\": [");
    for (int i = 0; i < res->metrics; i++) {
        const compare_metric *row = &res->metric[i];
        fprintf(out, "%s\n    {\"id\": ", i ? "," : "");
        json_string(out, row->id);
        fprintf(out, ", \"title\": ");
        json_string(out, row->title);
        fprintf(out, ", \"unit\": ");
        json_string(out, row->unit);
        fprintf(out, ", \"better\": \"%s\", \"scale\": \"%s\",\n     \"how\": ",
                row->higher_is_better ? "higher" : "lower", row->log_scale ? "log" : "linear");
        json_string(out, row->how);
        fprintf(out, ",\n     \"values\": {");
        for (int m = 0; m < MODELS; m++) {
            fprintf(out, "%s\"%s\": ", m ? ", " : "", compare_model_id[m]);
            json_figure(out, row->value[m]);
        }
        fprintf(out, "},\n     \"extra\": [");
        for (int e = 0; e < row->extras; e++) {
            fprintf(out, "%s{\"label\": ", e ? ", " : "");
            json_string(out, row->extra[e].label);
            fprintf(out, ", \"value\": ");
            json_figure(out, row->extra[e].value);
            fprintf(out, "}");
        }
        fprintf(out, "]}");
    }
    fprintf(out, "\n  ],\n  \"facts\": [");
    for (int i = 0; i < res->facts; i++) {
        const compare_fact *row = &res->fact[i];
        fprintf(out, "%s\n    {\"id\": ", i ? "," : "");
        json_string(out, row->id);
        fprintf(out, ", \"title\": ");
        json_string(out, row->title);
        fprintf(out, ",\n     \"how\": ");
        json_string(out, row->how);
        fprintf(out, ",\n     \"values\": {");
        for (int m = 0; m < MODELS; m++) {
            fprintf(out, "%s\"%s\": ", m ? ", " : "", compare_model_id[m]);
            json_string(out, fact_text(row, m));
        }
        fprintf(out, "}}");
    }
    fprintf(out, "\n  ],\n  \"recommendations\": [");
    for (int i = 0; i < res->recommendations; i++) {
        const compare_recommendation *rec = &res->recommendation[i];
        fprintf(out, "%s\n    {\"work\": ", i ? "," : "");
        json_string(out, rec->work);
        fprintf(out, ", \"model\": ");
        if (rec->model < 0)
            fputs("null", out);
        else
            json_string(out, compare_model_id[rec->model]);
        fprintf(out, ",\n     \"why\": ");
        json_string(out, rec->why);
        fprintf(out, "}");
    }
    fprintf(out, "\n  ]\n}\n");
    return ferror(out) ? -EIO : 0;
}
