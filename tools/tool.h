/* tool.h — what the subcommands of the `plait` tool share: their exit codes, the
 * interrupt flag (Ctrl-C stops a measurement cleanly between steps), and their entry
 * points (tool.c has the shared code).  Each subcommand is a file: tour (plait.c),
 * compare (compare*.c), bench (bench.c); the HTML report is report_html.c. */
#ifndef PLAIT_TOOL_H
#define PLAIT_TOOL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Exit codes every subcommand keeps, so scripts can rely on them. */
enum {
    TOOL_OK = 0,           /* it ran and everything it measured or showed worked */
    TOOL_FAILED = 1,       /* a measurement, benchmark or example failed */
    TOOL_USAGE = 2,        /* unknown command or option, or a bad value */
    TOOL_OUTPUT = 3,       /* a report could not be written (path, disk) */
    TOOL_INTERRUPTED = 130 /* SIGINT or SIGTERM: stopped, children reaped, no report */
};

/* Hold each standard descriptor (0, 1, 2) that was closed (`plait compare >&-`), which
 * would be the number the next open takes (the table would then go into the --html
 * report or one of plait's own descriptors): with an empty memory file sealed against
 * writes, opened read-only, so that reading it gives end of file and writing it fails
 * (EBADF) as writing a closed one would (/dev/null read-only where memfd_create is
 * refused). */
void tool_hold_closed_streams(void);

/* Whether st is one of those holders: a path that leads to it (`--html /dev/stderr`
 * with 2 closed) names a descriptor that was closed (it reopened the holder, /dev/null
 * then, for writing, and the report went nowhere with exit 0). */
bool tool_is_held_stream(const struct stat *st);

/* Set by SIGINT, SIGTERM and SIGHUP once tool_catch_interrupts() ran; checked between steps.
 * Atomic, not a volatile sig_atomic_t: the kernel gives the signal to any thread that
 * does not block it (a pool worker), and a volatile one read on another thread is a
 * data race (a lock-free atomic is as safe in a handler). */
extern atomic_int tool_interrupted;

/* Route SIGINT, SIGTERM and SIGHUP to tool_interrupted, each unless it is ignored (nohup's
 * SIGHUP, a background job's SIGINT): that stays so (no SA_RESTART: a blocked read or
 * wait returns EINTR).  Children forked afterwards get the default dispositions back
 * where they exec; function children inherit the flag handler.  quiet_stdout (bench,
 * compare: nothing more is printed once a signal came): the handler also puts
 * /dev/null over standard output, so that a write to a reader that stopped reading
 * cannot block the command then: one blocked already fails with EINTR (where the
 * signal comes to the writing thread, not a pool worker's), but one the signal came
 * just before (after the command's last look at the flag) would wait for the reader.
 * (The tour goes on printing the example that runs.) */
void tool_catch_interrupts(bool quiet_stdout);

/* Another descriptor the interrupt handler puts /dev/null over, as standard output
 * (compare's report written in place into a FIFO), -1 for none; forget it before
 * closing it, as its number may be reused. */
void tool_quiet_on_interrupt(int fd);

/* What became of what the command wrote on standard output, once flushed:
 * TOOL_INTERRUPTED when a signal came (tool_interrupted), whatever the writes did: a
 * blocked write that the signal cut short fails with EINTR, which is no unwritable
 * output; else TOOL_OUTPUT when some of it could not be written (errno says why, EIO
 * where only an earlier write's error is left); else 0.  compare and tour ask it after
 * writing, and honour the signal where it says so. */
int tool_stdout_status(void);

/* The count a resource limit allows (getrlimit's rlim_cur): -1 for RLIM_INFINITY (no
 * limit); a value past LLONG_MAX, which only RLIM_INFINITY is on Linux's unsigned rlim_t
 * yet a limit may be set to, saturates at LLONG_MAX (cast, it was a negative count). */
long long tool_limit_count(rlim_t limit);

/* The number after field ("Threads:", "VmRSS:") on its line of a /proc file (a size in
 * the kB it is written in); -1 if absent. */
long long tool_proc_number(const char *path, const char *field);

/* The arguments, the same for every command: each is checked before anything is done,
 * so a wrong one is a usage error even beside --help; --help (-h) may be repeated; `--`
 * ends the options, and what follows is an argument even if it starts with '-'. */

/* Says on standard error what is wrong with argument a of command cmd ("compare"):
 * an unknown option when it starts with '-' and comes before `--` (options says
 * whether it does), else an argument the command does not take. */
void tool_bad_argument(const char *cmd, const char *a, bool options);

/* The arguments argv[1..argc) of a command that takes none but --help (-h) and `--`:
 * 0, with *help set when it was asked for, or TOOL_USAGE after naming the wrong one. */
int tool_parse_plain(const char *cmd, int argc, char **argv, bool *help);

/* What the commands say of the machine they measured on. */
typedef struct tool_machine {
    int cpus;             /* plait_cpu_count(): its affinity, lowered to its cgroup's CPU
                           * quota; at least 1 */
    char cpu_model[128];  /* /proc/cpuinfo's "model name"; "" when there is none */
    char kernel[128];     /* uname's release */
} tool_machine;
void tool_describe_machine(tool_machine *m);

/* The median of v[0..n) (n > 0), which it sorts. */
double tool_median(double *v, int n);

int tool_compare(int argc, char **argv);  /* plait compare [options] */
int tool_bench(int argc, char **argv);    /* plait bench [options] [name...] */

/* The report of `plait compare --html FILE`: a self-contained HTML document (inline
 * CSS, inline script, no network) that shows the comparison whose JSON text (the
 * output of --json, format "plait-compare/1") is given, with a chart per metric.
 * Returns 0, or -errno from writing. */
int report_html_write(FILE *out, const char *json);

#endif
