/*
 * cgroup.c — the process's cgroups, and the limits they and their ancestors set: the
 * walk that cpus.c's CPU limit and the memory room below share.
 *
 * The files are found as the kernel shows them: /proc/self/cgroup names the process's
 * cgroup in each hierarchy, /proc/self/mountinfo where each hierarchy is mounted and
 * which of its cgroups is the mount's root (a container's, without a cgroup namespace,
 * is its own cgroup: the process's path is taken relative to it).  Both cgroup v2 and
 * v1's hierarchy of the controller asked for are read (a hybrid system mounts both; the
 * v2 one then lacks that controller's files).  A parent's limit holds for its children,
 * so the least of the cgroup's and its ancestors' is the one that binds.  Anything
 * missing or malformed is no limit.  The paths and lines (some KiB) are on the heap: the
 * caller may be a coroutine on the smallest stack, or a thread of 16 KiB.
 */
#include "cgroup.h"
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- reading small files ---- */

/* The file opened for reading, or -1 if it is not a regular file (/proc's and
 * cgroupfs's files are): a FIFO in its place would block the open (hence O_NONBLOCK)
 * and then each read, a device such as /dev/zero would never end, and a directory is
 * no text. */
static int open_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* a tty: not ours */
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The file's first cap - 1 bytes, NUL-ended: its length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open_file(path);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* A file read a line at a time; a line longer than the buffer is skipped. */
typedef struct line_reader {
    int fd;
    size_t start, end;
    char buf[4096];
} line_reader;

/* The next line, NUL-ended without its newline; NULL at the end. */
static char *next_line(line_reader *r)
{
    bool skipping = false;
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            char *line = r->buf + r->start;
            *nl = '\0';
            r->start = (size_t)(nl - r->buf) + 1;
            if (!skipping)
                return line;
            skipping = false;
            continue;
        }
        if (r->start == 0 && r->end == sizeof r->buf) { /* no room: too long a line */
            skipping = true;
            r->end = 0;
        }
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        ssize_t n;
        while ((n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end)) < 0 && errno == EINTR) {
        }
        if (n <= 0)
            return NULL; /* the end (a last line without a newline is dropped) */
        r->end += (size_t)n;
    }
}

/* The next field of a line split at spaces, NUL-ended in place (*rest moves past it);
 * NULL when there is none. */
static char *field(char **rest)
{
    char *s = *rest;
    if (!s)
        return NULL;
    char *end = strchr(s, ' ');
    if (end) {
        *end = '\0';
        *rest = end + 1;
    } else {
        *rest = NULL;
    }
    return s;
}

/* mountinfo escapes space, tab, newline and backslash in paths as \ooo: undone in place. */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Whether the comma-separated list has the word. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* ---- finding the cgroup ---- */

enum hierarchy { V2, V1, HIERARCHIES };

typedef struct cgroup_place {
    char path[PATH_MAX];  /* the process's cgroup in the hierarchy ("": not in it) */
    char root[PATH_MAX];  /* the mount's root cgroup */
    char mount[PATH_MAX]; /* where it is mounted ("": not mounted) */
} cgroup_place;

struct plait__cgroup_dir {
    cgroup_place places[HIERARCHIES];
    line_reader reader;
    char name[PATH_MAX];       /* a file of /proc */
    char dir[PATH_MAX];        /* a cgroup's directory */
    char file[PATH_MAX + 32];  /* a file in it */
};
typedef struct plait__cgroup_dir cgroup_dir;

/* The process's cgroup relative to a mount whose root cgroup is root; NULL where the
 * mount does not hold it.  A path with a ".." component is outside every mount: the
 * kernel shows a cgroup outside the process's cgroup namespace's root as "/../other"
 * (the process was moved out of it), and appended to the mount point it would name
 * directories beside or above the cgroup mount. */
static const char *relative_path(const char *path, const char *root)
{
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return NULL;
    size_t root_len = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(path, root, root_len) != 0 ||
        (path[root_len] != '/' && path[root_len] != '\0'))
        return NULL;
    return path + root_len;
}

/* sc->name = proc + file ("/cgroup"); false if it does not fit */
static bool proc_file(cgroup_dir *sc, const char *proc, const char *file)
{
    size_t a = strlen(proc), b = strlen(file);
    if (a + b >= sizeof sc->name)
        return false;
    memcpy(sc->name, proc, a);
    memcpy(sc->name + a, file, b + 1);
    return true;
}

/* From /proc/self/cgroup: the process's cgroup in v2 ("0::PATH") and in v1's hierarchy
 * of the controller ("N:cpu,cpuacct:PATH", "N:memory:PATH"). */
static void find_paths(cgroup_dir *sc, const char *proc, const char *v1_controller)
{
    cgroup_place *places = sc->places;
    line_reader *r = &sc->reader;
    r->start = r->end = 0;
    if (!proc_file(sc, proc, "/cgroup") || (r->fd = open_file(sc->name)) < 0)
        return;
    for (char *line; (line = next_line(r));) {
        char *id = line, *controllers = strchr(id, ':');
        char *path = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!path || path[1] != '/')
            continue;
        *controllers++ = '\0';
        *path++ = '\0';
        int which = strcmp(id, "0") == 0 && !*controllers ? V2
                    : has_word(controllers, v1_controller) ? V1
                                                           : -1;
        if (which >= 0 && strlen(path) < sizeof places[which].path)
            memcpy(places[which].path, path, strlen(path) + 1);
    }
    close(r->fd);
}

/* From /proc/self/mountinfo: where each hierarchy is mounted, and the mount's root. */
static void find_mounts(cgroup_dir *sc, const char *proc, const char *prefix,
                        const char *v1_controller)
{
    cgroup_place *places = sc->places;
    line_reader *r = &sc->reader;
    r->start = r->end = 0;
    if (!proc_file(sc, proc, "/mountinfo") ||
        (r->fd = open_file(sc->name)) < 0)
        return;
    for (char *line; (line = next_line(r));) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        char *rest = line, *f[5];
        for (int i = 0; i < 5; i++)
            f[i] = field(&rest);
        char *dash = rest ? strstr(rest, " - ") : NULL;
        if (!f[4] || !dash)
            continue;
        rest = dash + 3;
        char *fstype = field(&rest), *source = field(&rest), *super = field(&rest);
        (void)source;
        int which = fstype && strcmp(fstype, "cgroup2") == 0 ? V2
                    : fstype && super && strcmp(fstype, "cgroup") == 0 &&
                              has_word(super, v1_controller)
                        ? V1
                        : -1;
        if (which < 0)
            continue;
        unescape(f[3]);
        unescape(f[4]);
        cgroup_place *pl = &places[which];
        /* Of the mounts of a hierarchy that hold the process's cgroup, the one with the
         * shortest root is taken: it reaches the most ancestors' limits (a subtree's
         * mount listed first hid those above it).  Else the first one: a subtree
         * mounted before (another container's cgroup, bind-mounted) would give its
         * limits for the process's. */
        bool holds = relative_path(pl->path, f[3]) != NULL;
        if (pl->mount[0] && (!holds || (relative_path(pl->path, pl->root) &&
                                        strlen(f[3]) >= strlen(pl->root))))
            continue;
        plait__text m = {pl->mount, sizeof pl->mount, 0};
        plait__text_str(&m, prefix);
        plait__text_str(&m, f[4]);
        if (plait__text_end(&m) >= sizeof pl->mount || strlen(f[3]) >= sizeof pl->root)
            pl->mount[0] = '\0';
        else
            memcpy(pl->root, f[3], strlen(f[3]) + 1);
    }
    close(r->fd);
}

/* ---- the limits ---- */

bool plait__cgroup_number(const char **s, long long *value)
{
    char *end;
    errno = 0;
    *value = strtoll(*s, &end, 10);
    if (end == *s || errno)
        return false;
    *s = end;
    return true;
}

ssize_t plait__cgroup_read(cgroup_dir *sc, const char *name, char *text, size_t cap)
{
    plait__text t = {sc->file, sizeof sc->file, 0};
    plait__text_str(&t, sc->dir);
    plait__text_str(&t, "/");
    plait__text_str(&t, name);
    plait__text_end(&t);
    return read_small(sc->file, text, cap);
}

bool plait__cgroup_read_number(cgroup_dir *sc, const char *name, long long *value)
{
    char text[64];
    const char *s = text;
    return plait__cgroup_read(sc, name, text, sizeof text) > 0 &&
           plait__cgroup_number(&s, value);
}

/* The least that read_dir finds in the cgroup and its ancestors up to the mount's root. */
static long long place_least(cgroup_dir *sc, enum hierarchy which, plait__cgroup_reader *read_dir)
{
    const cgroup_place *pl = &sc->places[which];
    if (!pl->mount[0] || !pl->path[0])
        return LLONG_MAX;
    /* the process's cgroup relative to the mount's root; outside it, the root itself */
    const char *rel = relative_path(pl->path, pl->root);
    if (!rel)
        rel = "";
    char *dir = sc->dir;
    plait__text t = {dir, sizeof sc->dir, 0};
    plait__text_str(&t, pl->mount);
    plait__text_str(&t, strcmp(rel, "/") == 0 ? "" : rel);
    if (plait__text_end(&t) >= sizeof sc->dir)
        return LLONG_MAX;
    size_t mount_len = strlen(pl->mount);
    long long least = LLONG_MAX;
    for (;;) {
        long long limit = read_dir(sc, which == V2);
        if (limit < least)
            least = limit;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= mount_len || !slash || (size_t)(slash - dir) < mount_len)
            return least;
        *slash = '\0'; /* the parent */
    }
}

long long plait__cgroup_least(const char *proc, const char *prefix, const char *v1_controller,
                              plait__cgroup_reader *read_dir)
{
    cgroup_dir *sc = calloc(1, sizeof *sc);
    if (!sc)
        return LLONG_MAX; /* no limit known */
    find_paths(sc, proc, v1_controller);
    find_mounts(sc, proc, prefix, v1_controller);
    long long least = LLONG_MAX;
    for (int which = 0; which < HIERARCHIES; which++) {
        long long limit = place_least(sc, (enum hierarchy)which, read_dir);
        if (limit < least)
            least = limit;
    }
    free(sc);
    return least;
}

/* ---- the memory room ---- */

/* v1 writes "no limit" as the largest count of pages in bytes (LLONG_MAX rounded down to
 * a page: 9223372036854771712 with 4 KiB pages); a limit this large is none. */
#define V1_UNLIMITED (1LL << 62)

/* One directory's limit minus its usage; LLONG_MAX for none ("max", v1's largest). */
static long long memory_room_in(cgroup_dir *sc, bool v2)
{
    long long limit, usage;
    if (!plait__cgroup_read_number(sc, v2 ? "memory.max" : "memory.limit_in_bytes", &limit) ||
        limit < 0 || limit >= V1_UNLIMITED ||
        !plait__cgroup_read_number(sc, v2 ? "memory.current" : "memory.usage_in_bytes", &usage) ||
        usage < 0)
        return LLONG_MAX;
    return limit > usage ? limit - usage : 0;
}

long long plait__cgroup_memory_room(const char *proc, const char *prefix)
{
    long long room = plait__cgroup_least(proc, prefix, "memory", memory_room_in);
    return room == LLONG_MAX ? -1 : room;
}
