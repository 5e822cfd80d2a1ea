/*
 * compare.c — the `plait compare` command: options, the progress display, the outputs
 * (the text table, --json, --html FILE) and the exit status.
 *
 * The report file is written to a temporary name beside FILE and renamed over it at the
 * end, so an unwritable path is refused before anything is measured, an interrupted
 * run leaves no half-written report, and a reader never sees a partial one.  A FILE
 * that cannot be renamed over (a mount point) gets the finished report copied in
 * place, and is emptied where that copy fails: never a first part passed off as whole.
 */
#include "compare.h"
#include "tool.h"
#include "../src/cgroup.h"

#include <plait.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED true
#else
#define SANITIZED false
#endif

/* Fit the counts to what this machine allows, so that a small machine gets a smaller
 * run instead of a failed one or a visit from the OOM killer.  The I/O-bound job holds
 * up to three descriptors per unit: both ends of its connection live in this process
 * (a process unit's end is in the child, its pidfd here), and a thread unit waits in
 * ppoll on its own wake-up eventfd too (src/poll.c; counted at two, 100 threads failed
 * with EMFILE where the limit allowed 100 units).  The open-file limit is raised to its
 * hard limit first (as Go's runtime does), and what it then allows bounds the job; too
 * few for IO_UNITS_MIN units and the job is not run (its step fails with -EMFILE).
 * It bounds the processes parked at once as well, each holding its pidfd here.  A
 * quarter of the available memory bounds the units parked at once, at generous sizes
 * per unit (a coroutine's pages and page tables, a thread's stack pages and kernel
 * stack, a child's private pages): the host's free memory, or where less, the room
 * under the memory limits of the process's cgroup and its ancestors (a container's,
 * whose limit may be far below the host's free memory: the run was OOM-killed).
 * The limit on the user's threads and processes (RLIMIT_NPROC, `ulimit -u`, taken as it
 * is: a soft limit below the hard one is the user's choice) bounds what is started at
 * once: the parked threads and processes, the I/O-bound job's units (a thread or a
 * process each) and the CPU-bound job's pool workers (one per CPU where they fit).  The
 * limit counts every thread and process of the user: this process's threads are
 * counted, and TASKS_SPARE left for the rest (the user's other programs, which cannot
 * be counted cheaply, and the few threads a step adds, such as the I/O-bound job's
 * server).  Says what it cut. */
enum { FDS_SPARE = 64, FDS_PER_UNIT = 3, IO_UNITS_MIN = 10, PARKED_MIN = 10, TASKS_SPARE = 16 };

static void cap(int *count, long long most, int least, bool *cut)
{
    if (most < least)
        most = least;
    if (*count > most) {
        *count = (int)most;
        *cut = true;
    }
}

/* The descriptors this process has open (those its parent left it included), 0 where
 * /proc/self/fd cannot be read. */
static long long descriptors_open(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    long long n = -1; /* (the directory's own) */
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n < 0 ? 0 : n;
}

/* The open-file limit, raised to its hard limit, in *files; the counts fitted to what
 * it leaves beside the descriptors already open (a parent that left the tool dozens
 * made its I/O-bound job fail where a smaller one fitted). */
static void fit_to_files(compare_sizes *s, struct rlimit *files, bool *cut)
{
    if (getrlimit(RLIMIT_NOFILE, files) != 0)
        return;
    if (files->rlim_cur < files->rlim_max) {
        files->rlim_cur = files->rlim_max;
        if (setrlimit(RLIMIT_NOFILE, files) != 0)
            getrlimit(RLIMIT_NOFILE, files);
    }
    if (files->rlim_cur == RLIM_INFINITY)
        return;
    long long open = descriptors_open();
    long long room = ((long long)files->rlim_cur - open - FDS_SPARE) / FDS_PER_UNIT;
    if (room < IO_UNITS_MIN) {
        fprintf(stderr,
                "plait compare: %lld open files allowed, %lld already open: too few for the "
                "I/O-bound job\n",
                (long long)files->rlim_cur, open);
        s->io_units = 0;
    } else {
        cap(&s->io_units, room, IO_UNITS_MIN, cut);
    }
    /* a parked process holds a descriptor here too (its pidfd): as many as the job's
     * units at most (100 of them failed the full run's memory step where the limit
     * had cut the job to 10 units) */
    cap(&s->processes_parked, room, PARKED_MIN, cut);
}

/* The bytes of memory this run may take: the host's free memory, or the room under the
 * process's cgroup limits where that is less (*under_cgroup says which); -1 if neither
 * is known. */
static long long memory_available(bool *under_cgroup)
{
    struct sysinfo si;
    long long free = sysinfo(&si) == 0 ? (long long)si.freeram * si.mem_unit : -1;
    long long room = plait__cgroup_memory_room("/proc/self", "");
    *under_cgroup = room >= 0 && (free < 0 || room < free);
    return *under_cgroup ? room : free;
}

/* The threads and processes the user may have (RLIMIT_NPROC), -1 for no limit; the
 * counts of those started at once fitted to what it leaves. */
static long long fit_to_tasks(compare_sizes *s, bool *cut)
{
    struct rlimit tasks;
    long long allowed = getrlimit(RLIMIT_NPROC, &tasks) == 0 ? tool_limit_count(tasks.rlim_cur) : -1;
    if (allowed < 0)
        return -1;
    long long threads = tool_proc_number("/proc/self/status", "Threads:");
    long long room = allowed - (threads > 0 ? threads : 1) - TASKS_SPARE;
    cap(&s->threads_parked, room, PARKED_MIN, cut);
    cap(&s->processes_parked, room, PARKED_MIN, cut);
    if (s->io_units > 0)
        cap(&s->io_units, room, IO_UNITS_MIN, cut);
    if (room < plait_cpu_count()) {
        s->cpu_workers = room < 1 ? 1 : (int)room;
        *cut = true;
    }
    return allowed;
}

/* The address space this run may still take (RLIMIT_AS, `ulimit -v`, beside what is
 * mapped; RLIMIT_DATA beside the private writable mappings, which hold the stacks), -1
 * for no limit; the units that hold a stack in this process (coroutines, and threads
 * at the default stack size) fitted to a quarter of it: their stacks are reserved
 * whole (5,000 coroutines of 256 KiB are 1.3 GB; under `ulimit -v 700000` the memory
 * steps failed "Cannot allocate memory").  Under such a limit glibc's malloc is held to
 * two arenas: each thread that met contention reserved one of 64 MiB, up to eight per
 * CPU, and nine of them had taken the 700 MB before the first memory step.  A child
 * process has a limit of its own. */
static long long fit_to_address_space(compare_sizes *s, bool *cut)
{
    struct rlimit as, data;
    long long room = LLONG_MAX;
    bool limited = false;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
        limited = true;
        room = tool_limit_count(as.rlim_cur) -
               1024 * tool_proc_number("/proc/self/status", "VmSize:");
    }
    if (getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY) {
        limited = true;
        long long data_room = tool_limit_count(data.rlim_cur) -
                              1024 * tool_proc_number("/proc/self/status", "VmData:");
        if (data_room < room)
            room = data_room;
    }
    if (!limited)
        return -1;
    if (room < 0) /* (a limit already under what is mapped: the least run) */
        room = 0;
    mallopt(M_ARENA_MAX, 2);
    size_t thread_stack = 8 << 20;
    pthread_attr_t attr;
    if (pthread_getattr_default_np(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &thread_stack);
        pthread_attr_destroy(&attr);
    }
    long long budget = room / 4, per_thread = (long long)thread_stack + (64 << 10);
    cap(&s->coroutines_parked, budget / (long long)(PLAIT_STACK_DEFAULT + (16 << 10)),
        PARKED_MIN, cut);
    cap(&s->threads_parked, budget / per_thread, PARKED_MIN, cut);
    if (s->io_units > 0) /* (a thread each in the threads' run) */
        cap(&s->io_units, budget / per_thread, IO_UNITS_MIN, cut);
    return room;
}

static void fit_to_machine(compare_sizes *s)
{
    bool cut = false, under_cgroup;
    struct rlimit files = {RLIM_INFINITY, RLIM_INFINITY};
    fit_to_files(s, &files, &cut);
    long long available = memory_available(&under_cgroup), budget = available / 4;
    if (available >= 0) {
        cap(&s->coroutines_parked, budget / (16 << 10), PARKED_MIN, &cut);
        cap(&s->threads_parked, budget / (64 << 10), PARKED_MIN, &cut);
        cap(&s->processes_parked, budget / (2 << 20), PARKED_MIN, &cut);
        if (s->io_units > 0)
            cap(&s->io_units, budget / (2 << 20), IO_UNITS_MIN, &cut);
    }
    long long tasks = fit_to_tasks(s, &cut);
    long long address_room = fit_to_address_space(s, &cut);
    if (!cut)
        return;
    char memory_text[64] = "free memory unknown", tasks_text[64] = "", workers_text[64] = "";
    char address_text[64] = "";
    if (address_room >= 0)
        snprintf(address_text, sizeof address_text, ", %lld MiB of address space left",
                 address_room >> 20);
    if (available >= 0)
        snprintf(memory_text, sizeof memory_text, "%lld MiB %s", available >> 20,
                 under_cgroup ? "of memory left under the cgroup's limit" : "free");
    if (tasks >= 0)
        snprintf(tasks_text, sizeof tasks_text, ", %lld threads and processes for the user",
                 tasks);
    if (s->cpu_workers > 0)
        snprintf(workers_text, sizeof workers_text, ", %d worker%s in the CPU-bound job",
                 s->cpu_workers, s->cpu_workers == 1 ? "" : "s");
    fprintf(stderr, "plait compare: fewer units than usual for this machine's limits (%lld "
                    "open files, %s%s%s): %d in the I/O-bound job, %d / %d / %d parked "
                    "coroutines / threads / processes%s\n",
            (long long)files.rlim_cur, memory_text, tasks_text, address_text,
            s->io_units, s->coroutines_parked, s->threads_parked, s->processes_parked,
            workers_text);
}

static void compare_usage(FILE *out)
{
    fprintf(out,
            "usage: plait compare [--quick] [--json] [--html FILE] [--quiet]\n"
            "\n"
            "Measure coroutines, threads and processes on this machine, with plait itself,\n"
            "and print the table that concurrency courses draw by hand: creation cost,\n"
            "hand-off cost, memory per unit, messages of 64 bytes and of 64 KiB (channel,\n"
            "shared-memory queue, pipe), an I/O-bound job (many concurrent waits), a\n"
            "CPU-bound job (speed-up over one thread), crash isolation and shared memory;\n"
            "then what suits which kind of work, drawn from those numbers.\n"
            "\n"
            "options:\n"
            "  --quick       smaller counts: done in under 10 s (the full run takes about a\n"
            "                minute); figures are noisier\n"
            "  --json        print the results as JSON (format plait-compare/1, see\n"
            "                docs/compare.schema.json) instead of the table\n"
            "  --html FILE   also write a self-contained HTML report with charts to FILE\n"
            "  --quiet, -q   no progress display on standard error\n"
            "  --help, -h    this text\n"
            "\n"
            "Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the run between steps, or while the\n"
            "results are written: every child process is reaped, no report is written.\n"
            "\n"
            "exit status: 0 all measured; 1 a measurement failed (the others are still\n"
            "reported, the failed ones as not measured); 2 usage error; 3 the report could\n"
            "not be written; 130 interrupted\n");
}

typedef struct compare_options {
    bool quick, json, quiet;
    const char *html;
} compare_options;

/* 0, or TOOL_USAGE after saying why. */
static int parse(int argc, char **argv, compare_options *opt, bool *help)
{
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        const char *a = argv[i], *html = NULL;
        if (!strcmp(a, "--quick"))
            opt->quick = true;
        else if (!strcmp(a, "--json"))
            opt->json = true;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            opt->quiet = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            *help = true;
        else if (!strcmp(a, "--html") && i + 1 < argc && argv[i + 1][0] && argv[i + 1][0] != '-')
            html = argv[++i]; /* an option is no file name: --html=-x for one */
        else if (!strncmp(a, "--html=", 7) && a[7])
            html = a + 7;
        else if (!strcmp(a, "--html") || !strcmp(a, "--html=")) {
            fprintf(stderr, "plait compare: --html needs a file name (--html FILE or --html=FILE)\n");
            return TOOL_USAGE;
        } else {
            tool_bad_argument("compare", a, true);
            return TOOL_USAGE;
        }
        /* one report per run: a second FILE silently dropped the first one asked for */
        if (html && opt->html && strcmp(html, opt->html)) {
            fprintf(stderr, "plait compare: --html given twice ('%s', '%s'): one report per run\n",
                    opt->html, html);
            return TOOL_USAGE;
        }
        if (html)
            opt->html = html;
    }
    if (i + 1 < argc) { /* after `--`: compare takes no arguments */
        tool_bad_argument("compare", argv[i + 1], false);
        return TOOL_USAGE;
    }
    return 0;
}

/* Where the HTML report goes.  A regular file (or a new one) is written whole or not
 * at all: into a temporary file beside it, renamed over it at the end; through a
 * symbolic link, beside the link's target, so that the link stays.  Anything else that
 * is not a directory (a FIFO, a device such as /dev/stdout) is written in place: a
 * rename would replace it with a file.  The temporary file's name is short,
 * ".plait-report-PID" in FILE's directory: FILE's own name with a suffix would pass
 * the file system's limit for a long valid name (NAME_MAX: such a FILE was refused). */
typedef struct report_file {
    FILE *f;
    char final[PATH_MAX];      /* what the temporary file is renamed to */
    char tmp[PATH_MAX + 32];   /* the temporary file; "" when written in place */
    bool copied;               /* tmp is not beside final: copied into it at the end */
    bool begun;                /* its writing has begun (finish_report) */
} report_file;

/* A temporary file for the report in $TMPDIR (or /tmp), its name into tmp: the
 * descriptor, or -1 with errno set.  For a FILE that may be written in a directory
 * that may not (a report made for this user beside root's files): the report is
 * copied into it at the end (it was refused before anything was measured). */
static int temp_elsewhere(char *tmp, size_t size)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    if ((size_t)snprintf(tmp, size, "%s/.plait-report-%d.XXXXXX", dir, (int)getpid()) >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkostemp(tmp, O_CLOEXEC);
}

/* Whether the regular file at path may be opened for writing (nothing is written):
 * access(W_OK) says yes to a file with the append-only or immutable attribute, which
 * can neither be renamed over nor truncated (the whole run was measured, then
 * refused). */
static bool opens_for_writing(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Where a chain of symbolic links that ends in no file leads (each relative target
 * taken from its link's directory), into out; false with errno set if that is too
 * long or a loop.  The report is then made there as a new file, through a temporary
 * file and a rename like any other: written in place, an interrupted run or one
 * whose output failed left an empty report at the link's target. */
static bool dangling_target(const char *path, char out[PATH_MAX])
{
    char next[PATH_MAX];
    if ((size_t)snprintf(out, PATH_MAX, "%s", path) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (int hops = 0; hops < 40; hops++) {
        struct stat st;
        if (lstat(out, &st) != 0 || !S_ISLNK(st.st_mode))
            return true; /* the name at the end of the chain (a missing directory fails later) */
        ssize_t n = readlink(out, next, sizeof next - 1);
        if (n < 0)
            return false;
        next[n] = '\0';
        const char *slash = strrchr(out, '/');
        int dir_len = next[0] != '/' && slash ? (int)(slash - out) + 1 : 0;
        char joined[PATH_MAX];
        if ((size_t)snprintf(joined, sizeof joined, "%.*s%s", dir_len, out, next) >= sizeof joined) {
            errno = ENAMETOOLONG;
            return false;
        }
        memcpy(out, joined, PATH_MAX);
    }
    errno = ELOOP;
    return false;
}

/* The in-place descriptor of a file that is not regular (a FIFO without a reader is
 * refused, not waited for); -1 with errno set. */
static int open_in_place(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd >= 0 && fcntl(fd, F_SETFL, 0) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The standard output or error (1 or 2) when st is the file it writes to, else -1. */
static int standard_stream(const struct stat *st)
{
    struct stat s;
    for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++)
        if (fstat(fd, &s) == 0 && s.st_dev == st->st_dev && s.st_ino == st->st_ino)
            return fd;
    return -1;
}

/* Open the report before anything is measured (a path that cannot be written is
 * refused first); false after saying why. */
static bool open_report(const char *path, report_file *rep)
{
    struct stat st;
    bool exists = stat(path, &st) == 0;
    /* only "no such file" makes a new one: a stat refused otherwise (a loop of links
     * too long for the kernel, a link it will not follow for this user, a directory it
     * may not search) is no licence to follow the links by hand and replace what is
     * at their end, read-only or not */
    int stat_error = exists || errno == ENOENT ? 0 : errno;
    int fd = -1;
    rep->tmp[0] = 0;
    /* a socket too: a standard output that is one (a systemd service's, to the journal;
     * inetd's) cannot be opened through /dev/stdout (ENXIO: the run was refused) */
    int std = exists && (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) ? standard_stream(&st) : -1;
    if (stat_error) {
        errno = stat_error;
    } else if (exists && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
    } else if (exists && tool_is_held_stream(&st)) {
        errno = EBADF; /* /dev/stderr (or another way to a standard descriptor) closed */
    } else if (std >= 0) {
        /* /dev/stdout of a tool whose output goes to a file or a socket: written in
         * place through that descriptor, after the table (a new file renamed over it
         * would replace the file, appended to or not, and drop the table) */
        fd = fcntl(std, F_DUPFD_CLOEXEC, 3);
    } else if (exists && !S_ISREG(st.st_mode)) {
        fd = open_in_place(path);
    } else if (exists ? !realpath(path, rep->final) : !dangling_target(path, rep->final)) {
        /* errno says why */
    } else if (exists && (access(rep->final, W_OK) != 0 || !opens_for_writing(rep->final))) {
        /* a read-only file: the rename at the end would replace it all the same */
    } else {
        const char *slash = strrchr(rep->final, '/');
        int dir_len = slash ? (int)(slash - rep->final) + 1 : 0;
        /* ".plait-report-PID", or with a number after it where that is taken: one left
         * by a run that was killed (SIGKILL) under the same process id, as every run
         * of a container's first process has, refused every later run ("File exists") */
        for (int try = 0; fd < 0 && try < 100; try++) {
            snprintf(rep->tmp, sizeof rep->tmp, try ? "%.*s.plait-report-%d.%d" : "%.*s.plait-report-%d",
                     dir_len, rep->final, (int)getpid(), try);
            fd = open(rep->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0 && errno != EEXIST)
                break;
        }
        if (fd < 0 && exists && (errno == EACCES || errno == EPERM)) {
            int beside = errno;
            fd = temp_elsewhere(rep->tmp, sizeof rep->tmp);
            rep->copied = fd >= 0;
            if (fd < 0)
                errno = beside; /* the reason the report cannot be made beside FILE */
        }
        if (fd < 0)
            rep->tmp[0] = 0;
        /* the report that replaces a file keeps its permissions (a report kept private,
         * 0600, came back readable by all, 0644), and its owner where the tool may give
         * it (under sudo, a user's own report came back root's, unreadable to them at
         * 0600); the owner first, as a change of owner clears the set-id bits */
        if (fd >= 0 && exists && !rep->copied) { /* (a copy keeps FILE's own) */
            if (fchown(fd, st.st_uid, st.st_gid) != 0) {
                /* not allowed (not root, the group not ours): the report stays ours */
            }
            fchmod(fd, st.st_mode & 07777);
        }
        /* the rename at the end must not fail for a name the file system cannot hold
         * (a FILE whose name is longer than NAME_MAX was refused after the whole run) */
        long name_max = fd >= 0 && !rep->copied ? fpathconf(fd, _PC_NAME_MAX) : -1;
        if (name_max > 0 && strlen(rep->final + dir_len) > (size_t)name_max) {
            close(fd);
            fd = -1;
            errno = ENAMETOOLONG;
        }
    }
    rep->f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!rep->f) {
        fprintf(stderr, "plait compare: cannot write the report %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (rep->tmp[0])
            unlink(rep->tmp);
    }
    return rep->f != NULL;
}

/* Give the report up (nothing measured or said is written). */
static void discard_report(report_file *rep)
{
    if (rep->f)
        fclose(rep->f);
    rep->f = NULL;
    if (rep->tmp[0])
        unlink(rep->tmp);
}

/* Copy the finished report at from into the existing file at to, in place: 0, or
 * -errno.  Where a read or write fails once to was truncated, to is emptied rather than
 * left holding the first part of a report, which a browser shows as if it were whole;
 * *left then says what is there ("empty", or "cut short" where even that failed), and
 * stays NULL where to was not touched. */
static int copy_into(const char *from, const char *to, const char **left)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_TRUNC | O_CLOEXEC);
    int r = out < 0 ? -errno : 0;
    char buf[16384];
    while (r == 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR)
            r = -errno;
        for (ssize_t put = 0; r == 0 && put < n;) {
            ssize_t w = write(out, buf + put, (size_t)(n - put));
            if (w < 0 && errno != EINTR)
                r = -errno;
            put += w > 0 ? w : 0;
        }
    }
    if (r == 0 && fsync(out) != 0) /* an error the writes left for later (NFS): seen here */
        r = -errno;
    if (out >= 0 && r != 0)
        *left = ftruncate(out, 0) == 0 ? "empty" : "cut short";
    if (out >= 0 && close(out) != 0 && r == 0)
        r = -errno;
    if (in >= 0)
        close(in);
    return r;
}

/* Write the HTML report from the JSON and move it into place: 0, TOOL_OUTPUT after
 * saying why, or TOOL_INTERRUPTED (a signal came before the rename; the report is
 * still to be discarded). */
static int finish_report(report_file *rep, const char *path, const compare_result *res)
{
    char *json = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&json, &len);
    int r = mem ? compare_print_json(mem, res) : -errno;
    if (mem && fclose(mem) != 0 && r == 0)
        r = -errno;
    rep->begun = true;
    /* written in place (a FIFO, /dev/stdout), its writes may wait for a reader */
    if (!rep->tmp[0])
        tool_quiet_on_interrupt(fileno(rep->f));
    if (r == 0)
        r = report_html_write(rep->f, json);
    if (fflush(rep->f) != 0 && r == 0) /* the last writes, before the handler forgets it */
        r = -errno;
    tool_quiet_on_interrupt(-1);
    if (fclose(rep->f) != 0 && r == 0)
        r = -errno;
    rep->f = NULL;
    free(json);
    if (tool_interrupted) /* a write it cut short (-EINTR) is no unwritable report */
        return TOOL_INTERRUPTED;
    const char *left = NULL; /* what a failed copy left in FILE */
    if (r == 0 && rep->copied) {
        r = copy_into(rep->tmp, rep->final, &left);
        if (r == 0)
            unlink(rep->tmp);
    } else if (r == 0 && rep->tmp[0] && rename(rep->tmp, rep->final) != 0) {
        /* a file that is a mount point (one bind-mounted into a container: docker -v
         * $PWD/r.html:/out/r.html) can be written, not renamed over (EBUSY), and so can
         * another user's file that may be written in a sticky directory such as /tmp
         * (EPERM): the whole run was measured, then refused.  The finished report is
         * copied into it. */
        r = errno == EBUSY || errno == EPERM ? copy_into(rep->tmp, rep->final, &left) : -errno;
        if (r == 0)
            unlink(rep->tmp);
    }
    if (r == 0)
        return 0;
    if (rep->tmp[0])
        unlink(rep->tmp);
    fprintf(stderr, "plait compare: cannot write the report %s: %s%s%s\n", path, strerror(-r),
            left ? "; it is left " : "", left ? left : "");
    return TOOL_OUTPUT;
}

/* A signal stopped the run before its report was in place: none is, and the exit is
 * TOOL_INTERRUPTED (the table may have been printed).  A report written in place (a
 * FIFO, /dev/stdout) whose writing had begun cannot be taken back: what its reader got
 * may be cut short, and the message says so. */
static int stop_interrupted(const compare_options *opt, report_file *rep)
{
    bool in_place_begun = opt->html && !rep->tmp[0] && rep->begun;
    if (opt->html)
        discard_report(rep);
    fprintf(stderr, "plait compare: interrupted%s\n",
            !opt->html        ? ""
            : in_place_begun ? "; the report, written in place, may be cut short"
                             : "; no report written");
    return TOOL_INTERRUPTED;
}

static void progress(bool tty, int step, const char *what)
{
    if (tty)
        fprintf(stderr, "\r\033[K[%2d/%d] %s", step + 1, compare_step_count, what);
    else
        fprintf(stderr, "plait compare: [%d/%d] %s\n", step + 1, compare_step_count, what);
}

int tool_compare(int argc, char **argv)
{
    compare_options opt = {0};
    bool help = false;
    int r = parse(argc, argv, &opt, &help);
    if (r != 0 || help) {
        compare_usage(help && r == 0 ? stdout : stderr);
        return r;
    }
    /* before the report's temporary file exists: a signal between the two killed the
     * tool and left the file */
    tool_catch_interrupts(true);
    static report_file report;
    if (opt.html && !open_report(opt.html, &report))
        return TOOL_OUTPUT;

    static compare_result res;
    res.quick = opt.quick;
    compare_describe_machine(&res);
    compare_make_rows(&res);
    compare_sizes fitted = opt.quick ? compare_quick_sizes : compare_full_sizes;
    if (SANITIZED) {
        fprintf(stderr, "plait compare: this plait is built with a sanitizer: a tenth of the "
                        "quick counts, and figures unlike those of a release build\n");
        fitted = compare_sanitizer_sizes;
    }
    fit_to_machine(&fitted);
    const compare_sizes *sizes = &fitted;
    bool tty = !opt.quiet && isatty(STDERR_FILENO);
    int failed = 0;
    int64_t start = plait_now();
    for (int i = 0; i < compare_step_count && !tool_interrupted; i++) {
        if (!opt.quiet)
            progress(tty, i, compare_steps[i].what);
        r = compare_steps[i].run(sizes, &res, compare_steps[i].model);
        if (r < 0 && !tool_interrupted) {
            fprintf(stderr, "%splait compare: %s failed: %s\n", tty ? "\r\033[K" : "",
                    compare_steps[i].what, plait_strerror(r));
            failed = 1;
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (tool_interrupted)
        return stop_interrupted(&opt, &report);
    res.elapsed_s = (double)(plait_now() - start) / PLAIT_SEC;
    compare_recommend(&res);

    /* A signal is honoured until the report is in place (finish_report), the table
     * printed or not; after that, the run is complete. */
    r = opt.json ? compare_print_json(stdout, &res) : compare_print_table(stdout, &res);
    int out = tool_stdout_status();
    if (out == TOOL_INTERRUPTED)
        return stop_interrupted(&opt, &report);
    if (out != 0 || r < 0) {
        fprintf(stderr, "plait compare: cannot write the results: %s\n", strerror(errno));
        if (opt.html)
            discard_report(&report);
        return TOOL_OUTPUT;
    }
    if (opt.html && (r = finish_report(&report, opt.html, &res)) != 0)
        return r == TOOL_INTERRUPTED ? stop_interrupted(&opt, &report) : r;
    return failed ? TOOL_FAILED : TOOL_OK;
}
