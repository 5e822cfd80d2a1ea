/* One I/O-bound job three ways: 200 clients, each making 10 requests in turn over its
 * own loopback connection to a service that answers each after 5 ms.  One after the
 * other that is 10 s of waiting; with the clients overlapped it is about 50 ms plus
 * the cost of the overlap.  The same client code runs as 200 coroutines on one
 * thread, as 200 threads, and as 200 processes; each line shows the time and the
 * memory the clients cost.
 *
 * Memory is the resident memory the clients added at their peak (VmHWM after
 * resetting it, less what was resident before) for coroutines and threads.  The
 * service's own memory is not theirs: its coroutine per connection and that
 * coroutine's stack, kept for reuse when the connection ends, are made resident before
 * any model is measured, by as many connections as the clients will make (without
 * this the first model measured was charged for them: coroutines showed more memory
 * per client than threads, where they cost about half as much).  For
 * processes it is the sum of each child's proportional set size (Pss) when its work
 * is done: a page a child shares with the parent (copy-on-write) or the other
 * children counts for a share in each, so the sum is what the children cost together.
 *
 * Descriptors can be too few for 200 clients (`ulimit -n 256`): each client holds two,
 * its end and the service's, both in this process for coroutines and threads (and a
 * thread its wake-up eventfd).  The
 * clients that got theirs then waited in the listen backlog while the service's accept
 * failed for want of one, until their 60 s deadline passed.  The example runs as many
 * clients as the limit allows instead, and says so (none, below 67: it fails at once).
 */
#include "example.h"
#include "service.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { CLIENTS = 200, REQUESTS = 10, MESSAGE = 64 };
#define SERVICE_DELAY (5 * PLAIT_MS)

static int clients = CLIENTS; /* fewer where descriptors are short (clients_allowed) */

/* ---- the service: a scheduler on its own thread, a coroutine per connection ---- */

static void *answer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[MESSAGE];
    while (plait_read_exactly(fd, buf, sizeof buf, NULL, PLAIT_FOREVER) == 0 &&
           plait_sleep(SERVICE_DELAY) == 0 &&
           plait_write_all(fd, buf, sizeof buf, NULL, PLAIT_FOREVER) == 0) {
    }
    plait_close(fd);
    return NULL;
}


/* ---- the client: the same code for every model ---- */

static example_service svc;

/* 0, or the first failure. */
static int client(void)
{
    int fd = plait_tcp_connect("127.0.0.1", svc.port, plait_deadline_in(60 * PLAIT_SEC));
    if (fd < 0)
        return fd;
    char out[MESSAGE], in[MESSAGE];
    int r = 0;
    for (int i = 0; i < REQUESTS && r == 0; i++) {
        memset(out, 'a' + i, sizeof out);
        r = plait_write_all(fd, out, sizeof out, NULL, plait_deadline_in(60 * PLAIT_SEC));
        if (r == 0)
            r = plait_read_exactly(fd, in, sizeof in, NULL, plait_deadline_in(60 * PLAIT_SEC));
        if (r == 0 && memcmp(in, out, sizeof in) != 0)
            r = -EPROTO;
    }
    plait_close(fd);
    return r;
}

static void *client_task(void *arg)
{
    (void)arg;
    int r = client();
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* A "Field:   N kB" line of a /proc file, in KiB; -1 if absent. */
static long proc_kib(const char *path, const char *field)
{
    char line[256];
    long kib = -1;
    size_t len = strlen(field);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0)
            kib = atol(line + len);
    if (f)
        fclose(f);
    return kib;
}

static long status_kib(const char *field) { return proc_kib("/proc/self/status", field); }

static ssize_t client_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)cap;
    int r = client();
    long pss = proc_kib("/proc/self/smaps_rollup", "Pss:");
    memcpy(out, &pss, sizeof pss);
    return r == 0 ? (ssize_t)sizeof pss : r;
}

/* How many clients the descriptor limit allows: three descriptors each at most (its end
 * and the service's; a thread's wake-up eventfd, a thread waiting on a descriptor has
 * one; a process client's end is in its child, but the parent keeps the child's pidfd),
 * and some to spare for what the program holds besides.  As fanout.c does,
 * without raising the limit: this is the job `plait tour` runs as the user's limit
 * allows.  Fewer than CLIENTS: *limit is set to the limit. */
static int clients_allowed(long *limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= 64 + 3 * CLIENTS)
        return CLIENTS; /* (RLIM_INFINITY too) */
    *limit = (long)rl.rlim_cur;
    long room = (*limit - 64) / 3;
    return room > 0 ? (int)room : 0;
}

/* The peak resident memory is measured from here on: what is resident now, or -1
 * where the peak cannot be reset (no /proc/self/clear_refs to write: VmHWM would be
 * the peak since the process started, an earlier example's, not these clients'). */
static long peak_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    bool reset = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    return reset ? status_kib("VmRSS:") : -1;
}

/* What the process grew by at its peak since peak_reset said before: KiB, or -1. */
static long peak_growth(long before)
{
    long peak = before < 0 ? -1 : status_kib("VmHWM:");
    return peak < 0 ? -1 : peak - before;
}

/* started: the clients that were started; on success every one of them ran.  kib is
 * what the process grew by (-1: not measured): none where the clients took only memory
 * the process had already (freed by earlier work in the same process: `plait tour`'s
 * earlier examples), which is said so rather than as a cost of 0. */
static void report(const char *model, int64_t start, int started, int r, long kib)
{
    double s = (double)(plait_now() - start) / PLAIT_SEC;
    if (r == 0 && kib < 0)
        printf("  %-10s %3d clients x %d requests: %6.3f s, memory not measured (the "
               "kernel's peak could not be reset)\n", model, started, REQUESTS, s);
    else if (r == 0 && kib == 0)
        printf("  %-10s %3d clients x %d requests: %6.3f s, no memory the process did not "
               "have already\n", model, started, REQUESTS, s);
    else if (r == 0)
        printf("  %-10s %3d clients x %d requests: %6.3f s, %6.0f KiB (%5.1f KiB per client)\n",
               model, started, REQUESTS, s, (double)kib, (double)kib / started);
    else /* what a failed run cost is no cost per client: not reported */
        printf("  %-10s %3d of %d clients started, %6.3f s, memory not measured  FAILED: %s\n",
               model, started, clients, s, plait_strerror(r));
}

/* Connect as many times as there are clients, send a request on each, read the
 * answers: the service then has its coroutines and their stacks (see the top). */
static int warm_the_service(void)
{
    int fds[CLIENTS];
    char buf[MESSAGE];
    memset(buf, 'w', sizeof buf);
    int n = 0, r = 0;
    while (n < clients && r == 0) {
        int fd = plait_tcp_connect("127.0.0.1", svc.port, plait_deadline_in(60 * PLAIT_SEC));
        if (fd < 0)
            r = fd;
        else
            fds[n++] = fd;
    }
    for (int i = 0; i < n && r == 0; i++)
        r = plait_write_all(fds[i], buf, sizeof buf, NULL, plait_deadline_in(60 * PLAIT_SEC));
    for (int i = 0; i < n && r == 0; i++)
        r = plait_read_exactly(fds[i], buf, sizeof buf, NULL, plait_deadline_in(60 * PLAIT_SEC));
    for (int i = 0; i < n; i++)
        plait_close(fds[i]);
    return r;
}

static int run_coroutines(void)
{
    long before = peak_reset();
    int64_t start = plait_now();
    plait_task t[CLIENTS];
    int r = 0, started = 0;
    plait_spawn_options opts = {.stack_size = 16 * 1024};
    for (; started < clients && r == 0; started++)
        r = plait_spawn_opts(&t[started], client_task, NULL, &opts);
    started -= r != 0;
    int w = plait_wait_all(t, (size_t)started, NULL, NULL, PLAIT_FOREVER);
    report("coroutines", start, started, r ? r : w, peak_growth(before));
    return r ? r : w;
}

static int run_threads(void)
{
    long before = peak_reset();
    int64_t start = plait_now();
    plait_task t[CLIENTS];
    int r = 0, started = 0;
    plait_thread_options opts = {.name = "client", .stack_size = 64 * 1024};
    for (; started < clients && r == 0; started++)
        r = plait_thread_start(&t[started], client_task, NULL, &opts);
    started -= r != 0;
    int w = plait_wait_all(t, (size_t)started, NULL, NULL, PLAIT_FOREVER);
    report("threads", start, started, r ? r : w, peak_growth(before));
    return r ? r : w;
}

static int run_processes(void)
{
    int64_t start = plait_now();
    plait_task t[CLIENTS];
    int r = 0, started = 0;
    for (; started < clients && r == 0; started++)
        r = plait_process_start(&t[started], client_process, NULL, 0, NULL, NULL);
    started -= r != 0;
    long sum = 0;
    for (int i = 0; i < started; i++) {
        void *v = NULL;
        int j = plait_join(t[i], &v, PLAIT_FOREVER);
        if (j == 0) {
            long pss;
            memcpy(&pss, ((plait_bytes *)v)->data, sizeof pss);
            sum += pss;
        } else if (r == 0) {
            r = j;
        }
        free(v);
    }
    report("processes", start, started, r, sum);
    return r;
}

static void *run(void *arg)
{
    (void)arg;
    long limit = 0;
    clients = clients_allowed(&limit);
    if (clients == 0) { /* (one client waited for an accept that had no descriptor, 60 s) */
        printf("  the limit of %ld descriptors leaves no room for a client (it needs 67)"
               "  FAILED\n", limit);
        return PLAIT_FAIL(-EMFILE);
    }
    int r = example_service_start(&svc, answer);
    if (r < 0)
        return PLAIT_FAIL(r);
    printf("  a service on 127.0.0.1:%d answers each request after %d ms (poller: %s)\n", svc.port,
           (int)(SERVICE_DELAY / PLAIT_MS), plait_io_backend());
    if (clients < CLIENTS)
        printf("  %d clients, not %d: the limit of %ld descriptors allows no more (each "
               "client holds up to three)\n", clients, CLIENTS, limit);
    int rw = warm_the_service();
    if (rw < 0)
        printf("  the service could not be made ready: %s\n", plait_strerror(rw));
    int rc = rw ? rw : run_coroutines();
    int rt = rw ? rw : run_threads();
    int rp = rw ? rw : run_processes();
#ifdef PLAIT_TOUR
    /* (in the tour, after other examples in this process: their memory, freed, is
     * reused by these clients and not counted) */
    printf("  (coroutines' and threads' memory is what this process grew by: the tour's "
           "earlier examples left memory that these clients reuse, so they show less than "
           "on their own; `plait compare` measures each model's memory per unit)\n");
#endif
    example_service_stop(&svc);
    r = rc ? rc : rt ? rt : rp;
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

int example_io_models(void)
{
    return example_run(run, "the same I/O-bound job as coroutines, threads and processes");
}

EXAMPLE_MAIN(example_io_models)
