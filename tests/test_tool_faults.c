/* test_tool_faults.c — cases a review of the `plait` tool found (tools/, docs/TOOL.md),
 * each of which failed first.  The JSON cases call the report code itself
 * (tools/compare_report.c, linked in) on results made up here; the command-line cases
 * run the tool (PLAIT_TOOL, the build's plait) and look at its exit status, its
 * messages and the files it leaves.  The cases that need a whole run make a quick one
 * (about 2 s; a tenth of its counts in a sanitizer build, where the tool says so), and
 * are skipped under ThreadSanitizer, where one can take a minute (test_compare_cli.sh). */
#include "helpers.h"
#include "refuse_syscall.h"

#include "compare.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_BUILD true /* the tool measures a tenth of the quick counts */
#else
#define SANITIZED_BUILD false
#endif

/* Whether s[0..len) is well-formed UTF-8 (RFC 3629), as RFC 8259 asks of JSON text. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (n == 0 || i + n > len)
            return false;
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        for (size_t k = 1; k < n; k++, lo = 0x80, hi = 0xbf)
            if (s[i + k] < lo || s[i + k] > hi)
                return false;
        i += n;
    }
    return true;
}

/* A result as a run could leave it, with the machine's description given. */
static void made_up_result(compare_result *res, const char *cpu_model)
{
    memset(res, 0, sizeof *res);
    res->quick = true;
    res->machine.cpus = 2;
    snprintf(res->machine.cpu_model, sizeof res->machine.cpu_model, "%s", cpu_model);
    snprintf(res->machine.kernel, sizeof res->machine.kernel, "6.1.0");
    snprintf(res->started, sizeof res->started, "2026-01-01T00:00:00Z");
    res->memory_bytes = 1LL << 30;
    res->io_backend = "epoll";
    res->elapsed_s = 1.5;
    compare_metric *row = compare_metric_row(res, "create");
    row->title = "creation cost";
    row->unit = "ns";
    snprintf(row->how, sizeof row->how, "made up");
    row->value[COROUTINE] = 100;
    row->value[THREAD] = 10000;
    row->value[PROCESS] = 100000;
}

/* What print (compare_print_json, compare_print_table) writes of res, malloc'd (its
 * length in *len); NULL after a failed check. */
static char *printed(int (*print)(FILE *out, const compare_result *res), const compare_result *res,
                     size_t *len)
{
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);
    CHECK(mem != NULL);
    if (!mem)
        return NULL;
    CHECK_EQ(print(mem, res), 0);
    CHECK_EQ(fclose(mem), 0);
    return text;
}

/* The JSON of res, malloc'd (its length in *len). */
static char *json_of(const compare_result *res, size_t *len)
{
    return printed(compare_print_json, res, len);
}

/* The text table of res, malloc'd. */
static char *table_of(const compare_result *res)
{
    size_t len;
    return printed(compare_print_table, res, &len);
}

/* ---- JSON: text from the machine that is not UTF-8 ------------------------------------ */
/* The CPU model is /proc/cpuinfo's "model name", the bytes of the CPU's brand string (a
 * hypervisor sets any it likes: Latin-1 "Caf\xe9"), cut to 127 bytes, possibly in the
 * middle of a character.  The JSON carried those bytes as they were: not UTF-8, so not
 * JSON (python3 -c 'import json; json.load(...)' failed with UnicodeDecodeError, as it
 * did on `plait compare --json` run with such a /proc/cpuinfo bind-mounted in place).
 * Now each byte that starts no well-formed sequence is U+FFFD; well-formed ones stay. */
TEST(json_cpu_model_not_utf8)
{
    static compare_result res;
    /* Latin-1 e-acute; euro sign and an emoji (well-formed); a UTF-16 surrogate, an
     * overlong '/', a stray continuation byte; a euro sign cut short at the end */
    made_up_result(&res, "Caf\xe9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \x80 end\xe2\x82");
    size_t len = 0;
    char *json = json_of(&res, &len);
    if (!json)
        return;
    CHECK(utf8_valid((const unsigned char *)json, len));
    CHECK(strstr(json, "\"Caf\\ufffd \xe2\x82\xac \xf0\x9f\x98\x80 ") != NULL);
    CHECK(strstr(json, " end\\ufffd\\ufffd\"") != NULL);
    free(json);

    /* a long model name of two-byte characters, cut by the machine's buffer (127
     * bytes: after the lead byte of the 64th) */
    char long_name[301] = "";
    for (int i = 0; i < 150; i++)
        strcat(long_name, "\xc3\xa9");
    made_up_result(&res, long_name);
    json = json_of(&res, &len);
    if (!json)
        return;
    CHECK(utf8_valid((const unsigned char *)json, len));
    free(json);
}

/* ---- recommendations quote the figures that were measured ---------------------------- */
/* A row with one model not measured (its step failed: out of threads, say) still holds
 * the other models' figures.  The recommendation for code that may crash quoted the
 * cost of starting the model it picks only when every model's creation was measured:
 * with the threads' creation failed it said "Isolation costs ? per process started",
 * though the processes' cost was measured; likewise the CPU-bound one dropped the
 * processes' 64 KiB throughput when the coroutines' had failed.  They quote what was
 * measured, and leave out only what was not. */
static const compare_recommendation *recommendation_for(const compare_result *res,
                                                        const char *work)
{
    for (int i = 0; i < res->recommendations; i++)
        if (!strncmp(res->recommendation[i].work, work, strlen(work)))
            return &res->recommendation[i];
    return NULL;
}

TEST(recommendations_quote_what_was_measured)
{
    static compare_result res;
    made_up_result(&res, "a CPU");
    compare_metric *create = compare_metric_row(&res, "create");
    create->value[THREAD] = NAN; /* the threads' creation failed */
    create->value[PROCESS] = 636630;
    compare_fact *crash = compare_fact_row(&res, "crash_isolated");
    crash->title = "crash spares the others";
    snprintf(crash->how, sizeof crash->how, "made up");
    snprintf(crash->value[COROUTINE], sizeof crash->value[0], "no: SIGSEGV ended all 3");
    snprintf(crash->value[THREAD], sizeof crash->value[0], "no: SIGSEGV ended all 3");
    snprintf(crash->value[PROCESS], sizeof crash->value[0], "yes: the other 2 finished");
    compare_metric *cpu = compare_metric_row(&res, "cpu_speedup");
    cpu->title = "CPU-bound speed-up";
    cpu->unit = "x";
    cpu->higher_is_better = true;
    cpu->value[COROUTINE] = 1.0;
    cpu->value[THREAD] = 1.2;
    cpu->value[PROCESS] = 1.9;
    compare_metric *big = compare_metric_row(&res, "msg_large");
    big->title = "64 KiB messages";
    big->unit = "GB/s";
    big->higher_is_better = true;
    big->value[THREAD] = 11.1; /* the coroutines' step failed */
    big->value[PROCESS] = 8.5;
    compare_recommend(&res);

    const compare_recommendation *rec = recommendation_for(&res, "code that may crash");
    CHECK(rec != NULL);
    if (rec) {
        CHECK_EQ(rec->model, PROCESS);
        if (!strstr(rec->why, "636.63 us per process"))
            fprintf(stderr, "  code that may crash: %s\n", rec->why);
        CHECK(strstr(rec->why, "636.63 us per process") != NULL);
        CHECK(strstr(rec->why, "?") == NULL);
    }
    rec = recommendation_for(&res, "CPU-bound work");
    CHECK(rec != NULL);
    if (rec) {
        CHECK_EQ(rec->model, PROCESS);
        if (!strstr(rec->why, "8.50 GB/s"))
            fprintf(stderr, "  CPU-bound work: %s\n", rec->why);
        CHECK(strstr(rec->why, "64 KiB messages between processes: 8.50 GB/s") != NULL);
    }

    /* and the processes' creation not measured either: no figure made up */
    create->value[PROCESS] = NAN;
    compare_recommend(&res);
    rec = recommendation_for(&res, "code that may crash");
    CHECK(rec != NULL);
    if (rec) {
        CHECK_EQ(rec->model, PROCESS);
        CHECK(strstr(rec->why, "?") == NULL);
        CHECK(strstr(rec->why, "nan") == NULL);
    }
}

/* ---- the CPU-bound job's workers, where fewer than the CPUs ------------------------------- */
/* Under a low limit on the user's threads and processes the CPU-bound job's pools get
 * fewer workers than there are CPUs (compare_sizes.cpu_workers).  The facts row and the
 * recommendation still spoke of the CPUs: pools of one worker each on 8 CPUs, whose
 * 1.30x was the noise of a busy machine, were said to run "yes: 1.30x on 8 CPUs", and
 * the threads recommended for CPU-bound work; pools of 2 workers were said to have run
 * "on 8 CPUs".  They speak of the workers the job had. */
static void cpu_speedups(compare_result *res, int workers, double threads, double processes)
{
    made_up_result(res, "a CPU");
    res->machine.cpus = 8;
    res->cpu_workers = workers;
    compare_metric *cpu = compare_metric_row(res, "cpu_speedup");
    cpu->title = "CPU-bound speed-up";
    cpu->unit = "x";
    cpu->higher_is_better = true;
    cpu->value[COROUTINE] = 1.0;
    cpu->value[THREAD] = threads;
    cpu->value[PROCESS] = processes;
    compare_recommend(res);
}

static const compare_fact *fact_of(const compare_result *res, const char *id)
{
    for (int i = 0; i < res->facts; i++)
        if (!strcmp(res->fact[i].id, id))
            return &res->fact[i];
    return NULL;
}

TEST(cpu_job_speaks_of_its_workers)
{
    static compare_result res;
    cpu_speedups(&res, 1, 1.30, 1.28);
    const compare_fact *parallel = fact_of(&res, "parallel");
    const compare_recommendation *rec = recommendation_for(&res, "CPU-bound work");
    CHECK(parallel != NULL && rec != NULL);
    if (!parallel || !rec)
        return;
    if (rec->model != -1 || !strstr(rec->why, "1 worker"))
        fprintf(stderr, "  1 worker: %s | %s\n", parallel->value[THREAD], rec->why);
    CHECK(strncmp(parallel->value[THREAD], "no: 1.30x", 9) == 0);
    CHECK(strstr(parallel->value[THREAD], "1 worker") != NULL);
    CHECK_EQ(rec->model, -1);
    CHECK(strstr(rec->why, "1 worker") != NULL);

    cpu_speedups(&res, 2, 1.90, 1.80);
    parallel = fact_of(&res, "parallel");
    rec = recommendation_for(&res, "CPU-bound work");
    CHECK(parallel != NULL && rec != NULL);
    if (!parallel || !rec)
        return;
    if (rec->model != THREAD || !strstr(rec->why, "2 workers"))
        fprintf(stderr, "  2 workers: %s | %s\n", parallel->value[THREAD], rec->why);
    CHECK(strncmp(parallel->value[THREAD], "yes: 1.90x", 10) == 0);
    CHECK(strstr(parallel->value[THREAD], "2 workers") != NULL);
    CHECK_EQ(rec->model, THREAD);
    CHECK(strstr(rec->why, "2 workers") != NULL);
    CHECK(strstr(rec->why, "on 8 CPUs") == NULL);
}

/* ---- figures of 0 or infinity: not measured ----------------------------------------------- */
/* A clock too coarse for a timed loop gives 0 ns for it (a creation cost of 0, a
 * throughput or speed-up divided by 0: infinite), and resident memory that did not grow
 * while the units parked (pages cached by an earlier step) gives 0 bytes per unit.  The
 * JSON carried 0, which its schema's "> 0" forbids; the table said "0 ns" and "infx", and
 * the recommendations drew on them ("processes are infx ahead").  Neither is a figure:
 * each is "not measured" in the table, null in the JSON (which the HTML draws from), and
 * no recommendation quotes it. */
/* None of the strings never[] (NULL-ended) is in text (what names it). */
static void check_none_in(const char *what, const char *text, const char *const *never)
{
    for (; *never; never++) {
        if (strstr(text, *never))
            fprintf(stderr, "  %s holds '%s': %s\n", what, *never, text);
        CHECK(strstr(text, *never) == NULL);
    }
}

TEST(zero_and_infinite_figures_not_measured)
{
    static compare_result res;
    made_up_result(&res, "a CPU");
    compare_metric *create = compare_metric_row(&res, "create");
    create->value[COROUTINE] = 0; /* a loop the clock did not see pass */
    compare_metric *large = compare_metric_row(&res, "msg_large");
    large->title = "64 KiB messages";
    large->unit = "GB/s";
    large->higher_is_better = true;
    snprintf(large->how, sizeof large->how, "made up");
    large->value[COROUTINE] = 9.0;
    large->value[THREAD] = 8.0;
    large->value[PROCESS] = INFINITY; /* bytes over 0 s */
    large->extras = 1;
    large->extra[0].label = "processes over a pipe";
    large->extra[0].value = INFINITY;
    compare_metric *memory = compare_metric_row(&res, "memory");
    memory->title = "memory per unit";
    memory->unit = "bytes";
    snprintf(memory->how, sizeof memory->how, "made up");
    memory->value[COROUTINE] = 9000;
    memory->value[THREAD] = 0; /* resident memory that did not grow */
    memory->value[PROCESS] = 150000;
    compare_recommend(&res);

    size_t len = 0;
    char *json = json_of(&res, &len);
    char *table = table_of(&res);
    if (!json || !table)
        return;
    static const char *const in_json[] = {"inf", "nan", ": 0,", ": 0}", "\"value\": 0", NULL};
    static const char *const in_table[] = {"inf", "nan", " 0 ns", " 0 B", "0.00 GB/s", NULL};
    check_none_in("the JSON", json, in_json);
    check_none_in("the table", table, in_table);
    CHECK(strstr(json, "\"values\": {\"coroutine\": null, \"thread\": 10000, ") != NULL);
    CHECK(strstr(json, "{\"label\": \"processes over a pipe\", \"value\": null}") != NULL);
    CHECK(strstr(table, "(processes over a pipe: not measured)") != NULL);
    /* and no recommendation drawn from the rows that lack a figure */
    CHECK(recommendation_for(&res, "many short-lived units") == NULL);
    CHECK(recommendation_for(&res, "moving much data") == NULL);
    free(json);
    free(table);
}

/* ---- figures at a rounding edge: the text says what the figure says -------------------- */
/* A speed-up of 1.2496 printed "no: 1.25x" beside a rule that calls 1.25x parallel; 999.7
 * ns printed "1000 ns", 999,999.6 ns "1000.00 us", a figure under 0.5 "0 ns", and one
 * under 0.05 ms "0.0 ms" (a helper's audit of session 63, and the review of its fix). */
/* A row of made-up figures (coroutine, thread, process). */
static void made_up_row(compare_result *res, const char *id, const char *title, const char *unit,
                        const double values[MODELS])
{
    compare_metric *row = compare_metric_row(res, id);
    row->title = title;
    row->unit = unit;
    snprintf(row->how, sizeof row->how, "made up");
    for (int m = 0; m < MODELS; m++)
        row->value[m] = values[m];
}

TEST(figures_at_a_rounding_edge)
{
    static compare_result res;
    cpu_speedups(&res, 2, 1.2496, 1.2449);
    const compare_fact *parallel = fact_of(&res, "parallel");
    CHECK(parallel != NULL);
    if (!parallel)
        return;
    CHECK(strncmp(parallel->value[THREAD], "yes: 1.25x", 10) == 0);
    CHECK(strncmp(parallel->value[PROCESS], "no: 1.24x", 9) == 0);

    made_up_result(&res, "a CPU");
    compare_metric *create = compare_metric_row(&res, "create");
    create->value[COROUTINE] = 999.7;
    create->value[THREAD] = 999999.6;
    create->value[PROCESS] = 0.3;
    made_up_row(&res, "memory", "memory per unit", "bytes", (double[]){1023.7, 1048575.9, 0.2});
    made_up_row(&res, "io_job", "I/O-bound job", "ms", (double[]){0.03, 999.96, 12.0});
    compare_recommend(&res);
    char *table = table_of(&res);
    if (!table)
        return;
    static const char *const never[] = {"1000 ns", "1000.00 us", " 0 ns", "1024 B",
                                        "1024.0 KiB", " 0 B", "0.0 ms", "1000.0 ms", NULL};
    check_none_in("the table", table, never);
    static const char *const always[] = {"1.00 us", "1.00 ms", "0.3 ns", "1.0 KiB",
                                         "1.0 MiB", "0.2 B", "0.03 ms", "1.00 s", "12.0 ms",
                                         NULL};
    for (const char *const *s = always; *s; s++) {
        if (!strstr(table, *s))
            fprintf(stderr, "  the table lacks '%s': %s\n", *s, table);
        CHECK(strstr(table, *s) != NULL);
    }
    free(table);
}

/* ---- the text table marks the best of a row with a model not measured ------------------ */
/* "(* the best of the row)": a row with one model not measured had no best marked at
 * all, though two figures were there to compare (the HTML report marks the best of
 * those, with a tick).  The best of what was measured is marked; a row with fewer than
 * two figures has none. */
TEST(table_marks_best_of_measured)
{
    static compare_result res;
    made_up_result(&res, "a CPU");
    compare_metric *create = compare_metric_row(&res, "create");
    create->value[PROCESS] = NAN;
    char *text = table_of(&res);
    if (!text)
        return;
    const char *row = strstr(text, "\ncreation cost");
    CHECK(row != NULL);
    if (row) {
        const char *end = strchr(row + 1, '\n');
        int n = end ? (int)(end - row) : (int)strlen(row);
        const char *star = strstr(row, "100 ns *");
        if (!star || star > row + n)
            fprintf(stderr, "  the row: %.*s\n", n, row + 1);
        CHECK(star != NULL && star < row + n);
    }
    free(text);

    /* one figure only: nothing to compare, no mark */
    create->value[THREAD] = NAN;
    text = table_of(&res);
    if (!text)
        return;
    row = strstr(text, "\ncreation cost");
    CHECK(row != NULL);
    if (row) {
        const char *end = strchr(row + 1, '\n');
        CHECK(end != NULL);
        CHECK(memchr(row, '*', end ? (size_t)(end - row) : 0) == NULL);
    }
    free(text);
}

/* ---- the tool on the command line ------------------------------------------------------ */

/* A directory of its own for a case, under /tmp. */
static void scratch(char dir[64])
{
    snprintf(dir, 64, "/tmp/plait-review-tool-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

/* Run the tool with args (NULL-terminated, args[0] being the command) in dir, its
 * standard input /dev/null, its output and error into dir/out and dir/err.  Its exit
 * status (128 + N when killed by signal N); a run of over 60 s is a failure. */
static int run_tool_after(const char *dir, const char *const *args, int (*setup)(const char *dir));
static int run_tool(const char *dir, const char *const *args)
{
    return run_tool_after(dir, args, NULL);
}

/* The same, with setup(dir) run in the child before the tool (its streams set): an exit
 * code other than 0 is the child's (the tool does not run). */
static int run_tool_after(const char *dir, const char *const *args, int (*setup)(const char *dir))
{
    const char *argv[32] = {PLAIT_TOOL};
    for (int i = 0; args[i] && i < 30; i++)
        argv[i + 1] = args[i];
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char path[128];
        if (chdir(dir) != 0)
            _exit(120);
        int in = open("/dev/null", O_RDONLY);
        snprintf(path, sizeof path, "%s/out", dir);
        int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        snprintf(path, sizeof path, "%s/err", dir);
        int err = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(121);
        int code = setup ? setup(dir) : 0; /* (it may change the streams) */
        if (code != 0)
            _exit(code);
        execv(PLAIT_TOOL, (char *const *)argv);
        _exit(122);
    }
    int status = reap_within(pid, 60);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What the last run in dir wrote to the named file ("out", "err"), up to 4 KiB. */
static const char *said(const char *dir, const char *name)
{
    static char text[4096];
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    text[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        text[fread(text, 1, sizeof text - 1, f)] = '\0';
        fclose(f);
    }
    return text;
}

static bool exists_in(const char *dir, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void remove_scratch(const char *dir)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ(system(command), 0);
}

/* ---- an option that takes a value, given twice with two values ----------------------- */
/* `plait compare --html a.html --html b.html` measured, wrote b.html only and exited 0:
 * the report asked for at a.html was dropped without a word (and `plait bench --runs 3
 * --runs 5` ran 5 times).  Every command checks all its arguments before it does
 * anything (docs/TOOL.md): two values for one option is a usage error (exit 2) that
 * names both, beside --help too; the same value again is no conflict. */
TEST(option_given_twice)
{
    char dir[64];
    scratch(dir);
    static const char *const twice[][8] = {
        {"compare", "--quick", "--quiet", "--html", "a.html", "--html", "b.html", NULL},
        {"compare", "--html=a.html", "--help", "--html", "b.html", NULL},
        {"help", "compare", "--html", "a.html", "--html=b.html", NULL},
        {"bench", "--runs", "3", "--runs=5", "--help", NULL},
        {"bench", "--runs=3", "--list", "--runs", "5", NULL},
    };
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        int rc = run_tool(dir, twice[i]);
        const char *err = said(dir, "err");
        bool named = twice[i][0][0] == 'b' ? strstr(err, "'3'") && strstr(err, "'5'")
                                           : strstr(err, "a.html") && strstr(err, "b.html");
        if (rc != 2 || !named)
            fprintf(stderr, "  case %zu (%s %s ...): exit %d, stderr: %s\n", i, twice[i][0],
                    twice[i][1], rc, err);
        CHECK_EQ(rc, 2);
        CHECK(named);
        CHECK(strstr(err, "[1/") == NULL); /* nothing measured */
        CHECK(!exists_in(dir, "a.html"));
        CHECK(!exists_in(dir, "b.html"));
    }
    /* the same value twice: as given once */
    static const char *const again[][8] = {
        {"compare", "--html", "a.html", "--html=a.html", "--help", NULL},
        {"bench", "--runs", "3", "--runs=3", "--help", NULL},
    };
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++) {
        CHECK_EQ(run_tool(dir, again[i]), 0);
        CHECK(strstr(said(dir, "out"), "usage: plait") != NULL);
    }
    remove_scratch(dir);
}

/* ---- bench --runs: a number from 1 to 99 with leading zeros ---------------------------- */
/* `plait bench --runs 099` said "--runs '099': wants a number from 1 to 99" (exit 2):
 * the check took the count of digits, at most two, for the range.  099 and 0001 are
 * such numbers (as 07 was taken); 0, 00, 100 and 0100 are not. */
TEST(bench_runs_leading_zeros)
{
    char dir[64];
    scratch(dir);
    static const char *const good[] = {"07", "099", "0001"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *args[] = {"bench", "--runs", good[i], "--help", NULL};
        int rc = run_tool(dir, args);
        if (rc != 0)
            fprintf(stderr, "  --runs %s: exit %d, stderr: %s\n", good[i], rc, said(dir, "err"));
        CHECK_EQ(rc, 0);
    }
    static const char *const bad[] = {"0", "00", "100", "0100", "", "1e1", "+5", " 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"bench", "--runs", bad[i], "--help", NULL};
        CHECK_EQ(run_tool(dir, args), 2);
    }
    remove_scratch(dir);
}

/* ---- `plait help -- --help`: after `--`, an argument ------------------------------------ */
/* "`--` ends the options: what follows is an argument even if it starts with `-`"
 * (docs/TOOL.md).  `plait help -- --help` took its --help for the option and printed the
 * list of commands (exit 0); it is a COMMAND named "--help", which there is none of: a
 * usage error naming it, as `plait help -- -x` is.  `plait help -- tour` and `plait help
 * -- help` are the help of those commands. */
TEST(help_after_double_dash)
{
    char dir[64];
    scratch(dir);
    static const char *const wrong[][4] = {
        {"help", "--", "--help", NULL},
        {"help", "--", "-h", NULL},
        {"--help", "--", "--help", NULL},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        int rc = run_tool(dir, wrong[i]);
        const char *err = said(dir, "err");
        char named[32];
        snprintf(named, sizeof named, "'%s'", wrong[i][2]);
        if (rc != 2 || !strstr(err, named))
            fprintf(stderr, "  plait %s -- %s: exit %d, stderr: %.200s\n", wrong[i][0], wrong[i][2],
                    rc, err);
        CHECK_EQ(rc, 2);
        CHECK(strstr(err, named) != NULL);
        CHECK_EQ(strlen(said(dir, "out")), 0);
    }
    static const char *const right[][4] = {
        {"help", "--", "tour", NULL},
        {"help", "--", "help", NULL},
    };
    for (size_t i = 0; i < sizeof right / sizeof right[0]; i++) {
        CHECK_EQ(run_tool(dir, right[i]), 0);
        CHECK(strstr(said(dir, "out"), "usage: plait") != NULL);
    }
    remove_scratch(dir);
}

/* ---- --html to a file that is a mount point -------------------------------------------- */
/* A file bind-mounted into a container (docker run -v $PWD/r.html:/out/r.html) can be
 * written but not renamed over: rename(2) fails with EBUSY.  The path passed every
 * check, the whole run was measured (a minute, full), and only then the report's rename
 * failed: "cannot write the report r.html: Device or resource busy", exit 3, no
 * report.  Now a report that cannot be renamed over such a file is copied into it.
 * (Needs a mount namespace of its own: root, or CAP_SYS_ADMIN; skipped otherwise.  Not
 * under ThreadSanitizer, where the run it makes can take a minute.) */
enum { NO_NAMESPACE = 125 };

/* Into a mount namespace of the caller's own, whose mounts no other process sees: 0, or
 * NO_NAMESPACE. */
static int own_mount_namespace(void)
{
    return unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0
               ? 0 : NO_NAMESPACE;
}

/* "old" in bound.html and in source, then source bind-mounted onto bound.html (in this
 * directory): 0, 123 or NO_NAMESPACE. */
static int bind_onto_report(const char *source)
{
    const char *const files[] = {"bound.html", source};
    for (int i = 0; i < 2; i++) {
        int fd = open(files[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "old\n", 4) != 4 || close(fd) != 0)
            return 123;
    }
    return mount(source, "bound.html", NULL, MS_BIND, NULL) == 0 ? 0 : NO_NAMESPACE;
}

/* Whether a temporary report (.plait-report-*) is left in dir. */
static bool temporary_report_left(const char *dir)
{
    char command[160];
    snprintf(command, sizeof command, "test -z \"$(find '%s' -name '.plait-report-*')\"", dir);
    return system(command) != 0;
}

static int bind_mount_report(const char *dir)
{
    (void)dir;
    int code = own_mount_namespace();
    return code ? code : bind_onto_report("source.html");
}

/* ---- --html onto a mount point that fills up while the report is copied in --------------- */
/* The report copied into a file that cannot be renamed over (above) is written in place:
 * the file was truncated, then written, and a write that failed midway (the bound file's
 * file system full) left the first part of a report there, which a browser shows as if
 * whole (the page without the end of its script and data), beside a message that did
 * not say so.  The file is now emptied where the copy failed, and the message says so
 * (exit 3, as for any report that could not be written).  The bound file lives on a
 * tmpfs of 8 KiB, in a mount namespace of the case's own: a child makes it, runs the
 * tool in it, and keeps what the tool left in that file as left.html in the scratch
 * directory, before the namespace ends with it.  (html_onto_mount_point, below, runs
 * this case after its own.) */
static int copy_into_full_mount(const char *dir)
{
    static const char *const args[] = {"compare", "--quick", "--quiet", "--html", "bound.html", NULL};
    if (chdir(dir) != 0 || own_mount_namespace() != 0 || mkdir("small", 0755) != 0 ||
        mount("none", "small", "tmpfs", 0, "size=8k") != 0)
        return NO_NAMESPACE;
    int code = bind_onto_report("small/target.html");
    if (code != 0)
        return code;
    int rc = run_tool(dir, args);
    return system("cp small/target.html left.html") == 0 ? rc : 123;
}

static void check_copy_onto_full_mount_point(void)
{
    char dir[64];
    scratch(dir);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(copy_into_full_mount(dir));
    int status = reap_within(pid, 90);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc == NO_NAMESPACE) {
        CHECK_SKIP("no mount namespace or tmpfs of its own here (not root)");
        remove_scratch(dir);
        return;
    }
    const char *err = said(dir, "err");
    if (rc != 3 || !strstr(err, "left empty"))
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, err);
    CHECK_EQ(rc, 3);
    CHECK(strstr(err, "cannot write the report bound.html: No space left on device") != NULL);
    CHECK(strstr(err, "left empty") != NULL);
    CHECK(exists_in(dir, "left.html"));
    CHECK_EQ(strlen(said(dir, "left.html")), 0); /* no part of a report */
    CHECK(!temporary_report_left(dir));
    remove_scratch(dir);
}

TEST(html_onto_mount_point)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    char dir[64];
    scratch(dir);
    static const char *const args[] = {"compare", "--quick", "--quiet", "--html", "bound.html", NULL};
    int rc = run_tool_after(dir, args, bind_mount_report);
    if (rc == NO_NAMESPACE) {
        CHECK_SKIP("no mount namespace of its own here (not root)");
        remove_scratch(dir);
        return;
    }
    if (rc != 0)
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, said(dir, "err"));
    CHECK_EQ(rc, 0);
    /* what was bound there: the file the report went into */
    const char *report = said(dir, "source.html");
    CHECK(strstr(report, "<!DOCTYPE html>") == report);
    CHECK(!temporary_report_left(dir));
    remove_scratch(dir);
    check_copy_onto_full_mount_point();
}

/* ---- --html over a file of another user's: its owner stays ------------------------------- */
/* The report replacing a file keeps its permissions (docs/TOOL.md), but not its owner:
 * `sudo plait compare --html ~/r.html` over the user's own r.html, mode 0600, left a
 * report owned by root, 0600, that the user could no longer even read.  The report now
 * gets the owner and group of the file it replaces, where the tool may give them (root
 * may; another user's own file is already theirs).  (Needs root; skipped otherwise.) */
TEST(html_keeps_owner)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    if (geteuid() != 0) {
        CHECK_SKIP("not root: cannot make a file of another user's");
        return;
    }
    char dir[64], path[128];
    scratch(dir);
    snprintf(path, sizeof path, "%s/theirs.html", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_EQ(write(fd, "old\n", 4), 4);
    CHECK_EQ(fchown(fd, 65534, 65534), 0);
    CHECK_EQ(close(fd), 0);
    static const char *const args[] = {"compare", "--quick", "--quiet", "--html", "theirs.html", NULL};
    int rc = run_tool(dir, args);
    if (rc != 0)
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, said(dir, "err"));
    CHECK_EQ(rc, 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK(strstr(said(dir, "theirs.html"), "<!DOCTYPE html>") != NULL);
    CHECK_EQ(st.st_uid, 65534);
    CHECK_EQ(st.st_gid, 65534);
    CHECK_EQ(st.st_mode & 07777, 0600);
    remove_scratch(dir);
}

/* ---- --html /dev/stdout when standard output is a socket ------------------------------- */
/* "--html /dev/stdout" is written in place, after the table (docs/TOOL.md).  Where
 * standard output is a socket (a systemd service's, which goes to the journal; inetd,
 * socat) /dev/stdout cannot be opened: open(2) of /proc/self/fd/1 fails with ENXIO, and
 * the run was refused, "cannot write the report /dev/stdout: No such device or address",
 * exit 3.  The report goes through the descriptor itself, as for a file. */
static int stdout_socket[2] = {-1, -1};

static int stdout_to_socket(const char *dir)
{
    (void)dir;
    return dup2(stdout_socket[1], STDOUT_FILENO) < 0 ? 123 : 0;
}

TEST(html_to_stdout_socket)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    char dir[64];
    scratch(dir);
    /* room for the table and the report (some 40 KiB), read once the tool is done */
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stdout_socket), 0);
    int size = 1 << 20;
    setsockopt(stdout_socket[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(stdout_socket[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    static const char *const args[] = {"compare", "--quick", "--quiet", "--html", "/dev/stdout", NULL};
    int rc = run_tool_after(dir, args, stdout_to_socket);
    close(stdout_socket[1]);
    if (rc != 0)
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, said(dir, "err"));
    CHECK_EQ(rc, 0);
    static char got[1 << 20];
    size_t len = 0;
    for (ssize_t n; len < sizeof got - 1 && (n = read(stdout_socket[0], got + len, sizeof got - 1 - len)) > 0;)
        len += (size_t)n;
    got[len] = '\0';
    close(stdout_socket[0]);
    const char *table = strstr(got, "plait compare: coroutines, threads and processes");
    const char *report = strstr(got, "<!DOCTYPE html>");
    CHECK(table == got);
    CHECK(report != NULL && report > table);
    CHECK(strstr(got, "</html>\n") != NULL);
    remove_scratch(dir);
}

/* ---- few descriptors: the I/O-bound job fits them ------------------------------------ */
/* The job's units are bounded by the open-file limit (docs/TOOL.md: "what it then allows
 * bounds the I/O-bound job"), taken as two descriptors per unit: the client's socket and
 * the server's end.  A thread unit holds a third, its wake-up eventfd (a plain thread
 * waits in ppoll on the descriptor and on it, src/poll.c).  With 264 files (room for 100
 * units at two each) the threads' job failed, "threads: I/O-bound job failed: Too many
 * open files", exit 1: the run was fitted to the machine, and failed all the same. */
/* A quick run with --json and no progress in a new scratch dir, after setup(dir): its
 * exit status, as run_tool_after's. */
static int quick_json_run(char dir[64], int (*setup)(const char *dir))
{
    static const char *const args[] = {"compare", "--quick", "--quiet", "--json", NULL};
    scratch(dir);
    return run_tool_after(dir, args, setup);
}

/* The run in dir (exit status rc) was cut to the machine's limits, saying so with what,
 * and nothing in it failed. */
static void check_cut_run(const char *dir, int rc, const char *what)
{
    const char *err = said(dir, "err");
    if (rc != 0 || !strstr(err, what))
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, err);
    CHECK_EQ(rc, 0);
    CHECK(strstr(err, "fewer units than usual") != NULL);
    CHECK(strstr(err, what) != NULL);
    CHECK(strstr(err, "failed") == NULL);
}

/* At most two CPUs for the tool (the first two it may use): the pools of the CPU-bound
 * step have a worker per CPU, and on a machine of many CPUs the process pool's would
 * take descriptors this case does not count.  0, or an exit code. */
static int two_cpus(void)
{
    cpu_set_t set, two;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 124;
    CPU_ZERO(&two);
    for (int cpu = 0, kept = 0; cpu < CPU_SETSIZE && kept < 2; cpu++)
        if (CPU_ISSET(cpu, &set)) {
            CPU_SET(cpu, &two);
            kept++;
        }
    return sched_setaffinity(0, sizeof two, &two) == 0 ? 0 : 124;
}

static int few_files(const char *dir)
{
    (void)dir;
    struct rlimit files = {264, 264};
    return setrlimit(RLIMIT_NOFILE, &files) == 0 ? two_cpus() : 124;
}

TEST(io_job_fits_the_file_limit)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    char dir[64];
    int rc = quick_json_run(dir, few_files);
    const char *err = said(dir, "err");
    if (rc != 0)
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, err);
    CHECK_EQ(rc, 0);
    CHECK(strstr(err, "failed") == NULL);
    /* each model's figure of the job is a number, not null */
    const char *out = said(dir, "out");
    const char *io = strstr(out, "\"id\": \"io_job\"");
    const char *values = io ? strstr(io, "\"values\": {") : NULL;
    CHECK(values != NULL);
    if (values) {
        const char *end = strchr(values, '}');
        CHECK(end != NULL);
        CHECK(memmem(values, end ? (size_t)(end - values) : 0, "null", 4) == NULL);
    }
    remove_scratch(dir);
}

/* The open-file limit bounds the processes parked at once too: each holds its pidfd in
 * the tool.  The full run parks 100 (the quick one 20) whatever the limit: a full run
 * with 94 files, "fewer units than usual for this machine's limits (94 open files ...):
 * 10 in the I/O-bound job, ... 100 parked processes", then failed "processes: memory per
 * unit: Too many open files", exit 1.  Here the quick run, at 25 files: its I/O-bound job
 * is skipped (too few files, as documented), and nothing else may fail. */
static int very_few_files(const char *dir)
{
    (void)dir;
    struct rlimit files = {25, 25};
    return setrlimit(RLIMIT_NOFILE, &files) == 0 ? two_cpus() : 124;
}

TEST(parked_processes_fit_the_file_limit)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    char dir[64];
    CHECK_EQ(quick_json_run(dir, very_few_files), 1); /* the I/O-bound job: skipped */
    const char *err = said(dir, "err");
    CHECK(strstr(err, "too few for the I/O-bound job") != NULL);
    /* every step that failed is the I/O-bound job's (coroutines, threads, processes) */
    int failed = 0, io = 0;
    for (const char *p = err; (p = strstr(p, " failed: ")) != NULL; p++)
        failed++;
    for (const char *p = err; (p = strstr(p, "I/O-bound job failed: ")) != NULL; p++)
        io++;
    if (failed != io)
        fprintf(stderr, "  stderr: %s\n", err);
    CHECK_EQ(failed, io);
    const char *out = said(dir, "out");
    const char *memory = strstr(out, "\"id\": \"memory\"");
    const char *values = memory ? strstr(memory, "\"values\": {") : NULL;
    CHECK(values != NULL);
    if (values) {
        const char *end = strchr(values, '}');
        CHECK(end != NULL);
        CHECK(memmem(values, end ? (size_t)(end - values) : 0, "null", 4) == NULL);
    }
    remove_scratch(dir);
}

/* ---- a container's memory limit bounds the units parked at once ----------------------- */
/* The units parked at once were sized by the host's free memory (sysinfo) alone: in a
 * container whose cgroup allows far less than the host has free, a full run parked
 * 100,000 coroutines and 100 processes as if the host's memory were its own, for the OOM
 * killer to end.  The budget is now the smaller of the host's free memory and the room
 * under the memory limits of the tool's cgroup and its ancestors, and the message says
 * which bound it.  Here a quick run in a cgroup of its own with a limit of 64 MiB: cut,
 * saying so, and nothing fails.  (Needs a memory cgroup of its own: root, a writable
 * hierarchy; skipped otherwise.  Skipped in a sanitizer build too: a sanitized quick run,
 * a tenth of the counts, is cut only under 32 MiB of room, where an AddressSanitizer
 * build of the tool and its processes did not fit — killed, exit 137, in a CI run.) */
static char memory_cgroup[128];

static int into_memory_cgroup(const char *dir)
{
    (void)dir;
    return join_cgroup(memory_cgroup) ? 0 : 124;
}

TEST(units_fit_the_cgroup_memory_limit)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    if (SANITIZED_BUILD) {
        CHECK_SKIP("a sanitized run is cut only where the sanitizer's own memory does not fit");
        return;
    }
    bool v1;
    if (!make_cgroup("memory", memory_cgroup, &v1)) {
        CHECK_SKIP("no memory cgroup may be made here (not root)");
        return;
    }
    char file[192];
    snprintf(file, sizeof file, "%s/%s", memory_cgroup, v1 ? "memory.limit_in_bytes" : "memory.max");
    if (!write_cgroup_file(file, "67108864")) {
        rmdir(memory_cgroup);
        CHECK_SKIP("the cgroup takes no memory limit here");
        return;
    }
    char dir[64];
    check_cut_run(dir, quick_json_run(dir, into_memory_cgroup),
                  "of memory left under the cgroup's limit");
    CHECK_EQ(rmdir(memory_cgroup), 0);
    remove_scratch(dir);
}

/* ---- memory unknown: the cut says so -------------------------------------------------- */
/* Where neither the host's free memory (sysinfo refused, as a sandbox may) nor a cgroup
 * limit is known, a run cut for another limit (the open files here) said "(264 open
 * files, -1 MiB free)": the -1 of "unknown" printed as a size.  It says the memory is
 * unknown; and the JSON's machine memory, which was 0 (below the schema's minimum of 1),
 * is null.  The cgroup files are hidden under an empty tmpfs in a mount namespace of the
 * tool's own (root, or CAP_SYS_ADMIN; skipped otherwise). */
static int memory_unknown(const char *dir)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("none", "/sys/fs/cgroup", "tmpfs", 0, NULL) != 0)
        return NO_NAMESPACE;
    int code = few_files(dir);
    if (code == 0 && refuse_syscall(SYS_sysinfo) != 0)
        code = 124;
    return code;
}

TEST(cut_with_memory_unknown)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    char dir[64];
    int rc = quick_json_run(dir, memory_unknown);
    if (rc == NO_NAMESPACE) {
        CHECK_SKIP("no mount namespace of its own here (not root)");
        remove_scratch(dir);
        return;
    }
    if (SANITIZED_BUILD) /* a tenth of the counts: none is cut, nothing said */
        CHECK_EQ(rc, 0);
    else
        check_cut_run(dir, rc, "free memory unknown");
    CHECK(strstr(said(dir, "err"), "-1 MiB") == NULL);
    /* nor is the machine's memory 0 bytes (the schema's minimum is 1): unknown, null */
    CHECK(strstr(said(dir, "out"), "\"memory_bytes\": null") != NULL);
    remove_scratch(dir);
}

/* ---- a limit past LLONG_MAX is no negative count ----------------------------------------- */
/* rlim_t is unsigned, and a limit may be set to any value below RLIM_INFINITY (the
 * largest): `plait compare` cast RLIMIT_NPROC's to a long long, so one past LLONG_MAX
 * (2^63, set by root) became a negative count of threads and processes: every count
 * started at once cut to its least, the CPU-bound job's pools to one worker, and "-9223372036854775808
 * threads and processes for the user" said.  The count saturates; no limit stays -1. */
TEST(limit_count_saturates)
{
    CHECK_EQ(tool_limit_count(RLIM_INFINITY), -1);
    CHECK_EQ(tool_limit_count(60), 60);
    CHECK_EQ(tool_limit_count((rlim_t)LLONG_MAX), LLONG_MAX);
    CHECK_EQ(tool_limit_count((rlim_t)LLONG_MAX + 1), LLONG_MAX);
    CHECK_EQ(tool_limit_count(RLIM_INFINITY - 1), LLONG_MAX);
}

/* ---- a limit on the user's threads and processes --------------------------------------- */
/* A user with `ulimit -u 60` (RLIMIT_NPROC: all the user's threads and processes) got a
 * quick run whose thread steps failed, "threads: I/O-bound job failed: Resource
 * temporarily unavailable", and the memory step's the same, exit 1: the counts started
 * at once (100 parked threads, 100 units of the I/O-bound job) did not fit.  They are now
 * fitted to the limit, less the tool's threads and a margin, and the run says so.  The
 * kernel holds no root process to the limit: as root, the tool runs as a user id of its
 * own, which no other process has (so the user's count is the tool's alone).  Skipped
 * when not root (the user's other processes count too, beyond what the test may
 * bound) or where that user may not run the build's tool. */
enum { NO_USER = 126, TASKS_USER = 2147480000 };

static int as_user_with_60_tasks(const char *dir)
{
    (void)dir;
    struct rlimit tasks = {60, 60};
    if (setrlimit(RLIMIT_NPROC, &tasks) != 0)
        return 124;
    if (setgroups(0, NULL) != 0 || setgid(TASKS_USER) != 0 || setuid(TASKS_USER) != 0)
        return NO_USER;
    return access(PLAIT_TOOL, X_OK) == 0 ? 0 : NO_USER;
}

TEST(tasks_fit_the_user_limit)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a measured run can take a minute under ThreadSanitizer");
    return;
#endif
    if (geteuid() != 0) {
        CHECK_SKIP("not root: the user's other processes count against the limit too");
        return;
    }
    char dir[64];
    int rc = quick_json_run(dir, as_user_with_60_tasks);
    const char *err = said(dir, "err");
    if (rc == NO_USER) {
        CHECK_SKIP("no user of its own may run the tool here");
        remove_scratch(dir);
        return;
    }
    if (rc != 0)
        fprintf(stderr, "  exit %d, stderr: %s\n", rc, err);
    CHECK_EQ(rc, 0);
    CHECK(strstr(err, "failed") == NULL);
    /* a sanitizer build's counts (a tenth) fit without a cut */
    if (!SANITIZED_BUILD)
        CHECK(strstr(err, ", 60 threads and processes for the user): ") != NULL);
    remove_scratch(dir);
}

/* ---- an interrupt taken on another thread ------------------------------------------------ */
/* The kernel gives a signal sent to the process to any thread that does not block it: a
 * SIGTERM during the threads' CPU-bound job came to a pool worker, whose handler wrote
 * tool_interrupted while the main thread, between steps, read it.  A volatile
 * sig_atomic_t is for a handler on the reading thread: across threads it is a data race
 * (ThreadSanitizer stopped the run, exit 66, in CI). */
static atomic_bool interrupt_seen;

static void *take_the_interrupt(void *arg)
{
    (void)arg;
    while (!atomic_load(&interrupt_seen))
        poll(NULL, 0, 1); /* the handler runs on this thread, in or between polls */
    return NULL;
}

/* ThreadSanitizer's runtime, which takes every signal first and hands it to the program's
 * handler itself, now and then never hands it on: about one signal in 300 sent to a thread
 * waiting in poll, epoll_wait or nanosleep (gcc 12's libtsan, measured with a program of a
 * few lines; none lost without it), and this case failed so in CI.  So the signal is sent
 * again every 100 ms until the flag is seen: one delivery is all the case asks for. */
TEST(interrupt_taken_on_another_thread)
{
    tool_catch_interrupts(false);
    pthread_t taker;
    CHECK_EQ(pthread_create(&taker, NULL, take_the_interrupt, NULL), 0);
    int64_t end = plait_deadline_in(10 * PLAIT_SEC);
    while (!tool_interrupted && plait_now() < end) {
        CHECK_EQ(pthread_kill(taker, SIGTERM), 0);
        int64_t resend = plait_deadline_in(100 * PLAIT_MS);
        while (!tool_interrupted && plait_now() < resend) /* as the tool looks between steps */
            sched_yield();
    }
    CHECK(tool_interrupted);
    atomic_store(&interrupt_seen, true);
    CHECK_EQ(pthread_join(taker, NULL), 0);
    int signals[] = {SIGINT, SIGTERM, SIGHUP}; /* as they were for the other cases */
    for (int i = 0; i < 3; i++)
        signal(signals[i], SIG_DFL);
    tool_interrupted = 0;
}

RUN_TESTS(CASE(json_cpu_model_not_utf8), CASE(recommendations_quote_what_was_measured),
          CASE(cpu_job_speaks_of_its_workers), CASE(zero_and_infinite_figures_not_measured), CASE(figures_at_a_rounding_edge), CASE(table_marks_best_of_measured), CASE(option_given_twice), CASE(bench_runs_leading_zeros),
          CASE(help_after_double_dash), CASE(html_onto_mount_point), CASE(html_keeps_owner),
          CASE(html_to_stdout_socket),
          CASE(io_job_fits_the_file_limit), CASE(parked_processes_fit_the_file_limit),
          CASE(units_fit_the_cgroup_memory_limit), CASE(cut_with_memory_unknown),
          CASE(limit_count_saturates), CASE(tasks_fit_the_user_limit),
          CASE(interrupt_taken_on_another_thread))
