/* tool.c — what the tool's commands share.
 *
 * The machine's description, a median, and Ctrl-C for the long commands: SIGINT, SIGTERM
 * and SIGHUP (each unless ignored when the tool started) set a flag that the measuring
 * loops read between steps, so a run stops cleanly: every child
 * process is joined (plait kills the ones still running when the tool exits), temporary
 * report files are removed, and the exit status is TOOL_INTERRUPTED.  No SA_RESTART, so
 * a read blocked in the tool itself returns EINTR and sees the flag.  A write is
 * different: one the signal came just before (the flag read, then the write) would
 * block on a reader that stopped reading, as none is under way for the signal to cut
 * short; so the handler puts /dev/null (opened beforehand: the handler only dup2()s)
 * over the descriptors that may block so, and what is written after the signal is
 * dropped at once, as the commands drop it anyway. */
#include "tool.h"

#include <plait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

atomic_int tool_interrupted;

static int null_fd = -1;                /* /dev/null, for the handler's dup2() */
static atomic_int quiet_fds[2] = {-1, -1}; /* what it goes over: stdout, and another */

static void on_interrupt(int sig)
{
    (void)sig;
    int saved = errno;
    tool_interrupted = 1;
    for (int i = 0; i < 2 && null_fd >= 0; i++) {
        int fd = atomic_load(&quiet_fds[i]);
        if (fd >= 0)
            dup2(null_fd, fd);
    }
    errno = saved;
}

void tool_quiet_on_interrupt(int fd) { atomic_store(&quiet_fds[1], fd); }

/* The identities of the holders tool_hold_closed_streams made (memory files only: a
 * /dev/null one is the user's /dev/null too, which a report may well be sent to). */
static struct {
    bool held;
    dev_t dev;
    ino_t ino;
} held_streams[3];

void tool_hold_closed_streams(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int held = memfd_create("plait-closed-stream", MFD_ALLOW_SEALING);
        bool sealed = held >= 0 && fcntl(held, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW |
                                                                F_SEAL_SHRINK | F_SEAL_SEAL) == 0;
        if (sealed) { /* opened again read-only: a write fails as on a closed one, EBADF */
            char path[40];
            snprintf(path, sizeof path, "/proc/self/fd/%d", held);
            int read_only = open(path, O_RDONLY);
            if (read_only >= 0) {
                dup2(read_only, held);
                close(read_only);
            }
        } else if (held >= 0) {
            close(held);
            held = -1;
        }
        if (held < 0)
            held = open("/dev/null", O_RDONLY);
        if (held >= 0 && held != fd) { /* a lower one was closed too: taken above */
            dup2(held, fd);
            close(held);
        }
        struct stat st;
        if (sealed && fstat(fd, &st) == 0) {
            held_streams[fd].held = true;
            held_streams[fd].dev = st.st_dev;
            held_streams[fd].ino = st.st_ino;
        }
    }
}

bool tool_is_held_stream(const struct stat *st)
{
    for (int fd = 0; fd <= 2; fd++)
        if (held_streams[fd].held && held_streams[fd].dev == st->st_dev &&
            held_streams[fd].ino == st->st_ino)
            return true;
    return false;
}

void tool_catch_interrupts(bool quiet_stdout)
{
    if (quiet_stdout && null_fd < 0)
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    atomic_store(&quiet_fds[0], quiet_stdout ? STDOUT_FILENO : -1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    /* A hang-up (the terminal closed, an ssh session dropped) stops the run too: its
     * default action killed the tool, leaving the report's temporary file behind.  A
     * signal ignored when the tool started stays ignored, as sh and Python leave it:
     * nohup's SIGHUP, and the SIGINT of a background job of a non-interactive shell
     * (`plait compare &` in a script), which a Ctrl-C meant for the script's foreground
     * command stopped with it. */
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction was;
        if (sigaction(signals[i], NULL, &was) == 0 && was.sa_handler != SIG_IGN)
            sigaction(signals[i], &sa, NULL);
    }
}

int tool_stdout_status(void)
{
    bool unwritten = fflush(stdout) != 0;
    if (!unwritten && ferror(stdout)) {
        unwritten = true;
        errno = EIO; /* what the earlier write met is gone */
    }
    if (tool_interrupted)
        return TOOL_INTERRUPTED;
    return unwritten ? TOOL_OUTPUT : 0;
}

long long tool_limit_count(rlim_t limit)
{
    return limit == RLIM_INFINITY ? -1 : limit > (rlim_t)LLONG_MAX ? LLONG_MAX : (long long)limit;
}

long long tool_proc_number(const char *path, const char *field)
{
    char line[256];
    long long n = -1;
    size_t len = strlen(field);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0)
            n = atoll(line + len);
    if (f)
        fclose(f);
    return n;
}

void tool_bad_argument(const char *cmd, const char *a, bool options)
{
    if (options && a[0] == '-' && a[1])
        fprintf(stderr, "plait %s: unknown option '%s'\n", cmd, a);
    else
        fprintf(stderr, "plait %s: unexpected argument '%s'\n", cmd, a);
}

int tool_parse_plain(const char *cmd, int argc, char **argv, bool *help)
{
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && !strcmp(a, "--")) {
            options = false;
        } else if (options && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            *help = true;
        } else {
            tool_bad_argument(cmd, a, options);
            return TOOL_USAGE;
        }
    }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tool_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void tool_describe_machine(tool_machine *m)
{
    m->cpus = plait_cpu_count();
    struct utsname u;
    snprintf(m->kernel, sizeof m->kernel, "%s", uname(&u) == 0 ? u.release : "");
    m->cpu_model[0] = '\0';
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f) && !m->cpu_model[0]) {
        char *colon = strchr(line, ':');
        if (colon && !strncmp(line, "model name", 10)) {
            colon += 1 + strspn(colon + 1, " \t");
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(m->cpu_model, sizeof m->cpu_model, "%s", colon);
        }
    }
    if (f)
        fclose(f);
}
