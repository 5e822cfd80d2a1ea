/*
 * compare_measure.c — what `plait compare` measures, each model with plait itself.
 *
 * Every figure is the same operation done three ways: as coroutines on one scheduler,
 * as OS threads, as OS processes.  Where a model has a natural mechanism the figure
 * uses it (a channel between coroutines or threads, a process-shared queue or
 * semaphore between processes) and says so in its "how" text, which the report shows.
 *
 * Rules that keep the figures honest:
 *   - every timed loop runs `batches` times and the median is kept;
 *   - the work is checked (the prime count, the echoed bytes, the message count): a
 *     step whose work went wrong fails instead of reporting a time;
 *   - memory is what the kernel says is resident (VmRSS for coroutines and threads in
 *     this process, the children's proportional set size for processes), measured
 *     while every unit is alive and parked;
 *   - the crash-isolation and shared-memory rows are experiments too: a unit really
 *     crashes, a unit really writes a variable, and the row says what happened; a
 *     crash drill whose crasher did not end by its SIGSEGV (a unit that could not
 *     start, a kill from outside) fails its step instead of answering.
 *
 * The coroutine and thread versions of a pairwise measurement are one function: the
 * measuring side is the main coroutine of a scheduler or the main thread, and the other
 * side is started with start_peer(), a coroutine or a thread.  Processes need their
 * own versions because they share nothing that was not made to be shared.
 */
#include "compare.h"
#include "tool.h"

#include "../examples/primes.h"
#include "../examples/service.h"

#include <plait.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { SMALL = 64, LARGE = 64 * 1024, IO_MESSAGE = 64 };
#define IO_DELAY (10 * PLAIT_MS)

/* ---- how much work: the counts ---------------------------------------------------- */

const compare_sizes compare_quick_sizes = {
    .batches = 3,
    .coroutine_starts = 20000, .thread_starts = 200, .process_starts = 20,
    .handoffs = 20000, .process_handoffs = 2000,
    .coroutines_parked = 5000, .threads_parked = 100, .processes_parked = 20,
    .small_messages = 20000, .large_messages = 500,
    .io_units = 100, .io_requests = 2,
    .prime_bound = 1000000,
};

/* A sanitizer makes every coroutine start a fiber of its own (ThreadSanitizer clears
 * most of a megabyte for each) and every access a call: its figures mean nothing, and
 * at the quick counts a run under ThreadSanitizer takes minutes.  Such a build (the
 * test suite's) measures a tenth of the quick counts, and says so. */
const compare_sizes compare_sanitizer_sizes = {
    .batches = 3,
    .coroutine_starts = 2000, .thread_starts = 20, .process_starts = 4,
    .handoffs = 2000, .process_handoffs = 200,
    .coroutines_parked = 500, .threads_parked = 10, .processes_parked = 4,
    .small_messages = 2000, .large_messages = 50,
    .io_units = 10, .io_requests = 2,
    .prime_bound = 100000,
};

const compare_sizes compare_full_sizes = {
    .batches = 5,
    .coroutine_starts = 200000, .thread_starts = 2000, .process_starts = 100,
    .handoffs = 200000, .process_handoffs = 20000,
    .coroutines_parked = 100000, .threads_parked = 1000, .processes_parked = 100,
    .small_messages = 200000, .large_messages = 5000,
    .io_units = 500, .io_requests = 4,
    .prime_bound = 2000000,
};

/* ---- small helpers ---------------------------------------------------------------- */

/* The deadline of a wait that ends in milliseconds when all is well: a minute away, so
 * that a wait that would never end fails the step instead of hanging the tool. */
static int64_t later(void)
{
    return plait_deadline_in(60 * PLAIT_SEC);
}

/* A "Field:   N kB" line of a /proc file, in bytes; -1 if absent. */
static long long proc_bytes(const char *path, const char *field)
{
    long long kib = tool_proc_number(path, field);
    return kib < 0 ? -1 : kib * 1024;
}

static void *noop(void *arg)
{
    return arg;
}

static ssize_t proc_noop(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return 0;
}

/* Join a unit; one that is not done by the deadline is cancelled (a process is
 * killed) and waited for, so that nothing it uses is freed under it.  A process's
 * result bytes are dropped. */
static int join_unit(plait_task task, int64_t deadline, bool process)
{
    void *result = NULL;
    int r = plait_join(task, &result, deadline);
    if (r == -ETIMEDOUT) {
        plait_cancel(task);
        plait_join(task, &result, PLAIT_FOREVER);
    }
    if (process)
        free(result);
    return r;
}

static int join_process(plait_task task, int64_t deadline)
{
    return join_unit(task, deadline, true);
}

/* The other side of a pair: a coroutine on this scheduler, or a thread. */
static int start_peer(int model, plait_task *task, plait_fn fn, void *arg)
{
    return model == COROUTINE ? plait_spawn(task, fn, arg)
                              : plait_thread_start(task, fn, arg, NULL);
}

/* A measurement body run as the main coroutine of a scheduler (COROUTINE) or on this
 * thread (THREAD), so one function measures both models. */
typedef struct in_model {
    int model;
    const compare_sizes *sizes;
    int (*body)(struct in_model *m);
    size_t size;              /* the body's input, where it has one (a message size) */
    double figure;            /* what the body measured */
} in_model;

static void *run_body(void *arg)
{
    in_model *m = arg;
    int r = m->body(m);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

static int run_in_model(in_model *m)
{
    if (m->model == COROUTINE)
        return plait_run(run_body, m, NULL);
    return (int)(intptr_t)run_body(m);
}

static void set_how(compare_metric *row, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_how(compare_metric *row, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(row->how, sizeof row->how, fmt, ap);
    va_end(ap);
}

/* The row `id`, its title, unit and kind of figure set. */
static compare_metric *start_row(compare_result *res, const char *id, const char *title,
                                 const char *unit, bool higher_is_better, bool log_scale)
{
    compare_metric *row = compare_metric_row(res, id);
    row->title = title;
    row->unit = unit;
    row->higher_is_better = higher_is_better;
    row->log_scale = log_scale;
    return row;
}

/* Measure a row for `model`: coroutines and threads with one body (run_in_model),
 * processes with their own function. */
static int measure_model(compare_metric *row, int model, const compare_sizes *s,
                         int (*body)(in_model *m),
                         int (*processes)(const compare_sizes *s, double *figure))
{
    if (model == PROCESS)
        return processes(s, &row->value[PROCESS]);
    in_model m = {.model = model, .sizes = s, .body = body};
    int r = run_in_model(&m);
    if (r == 0) /* a failed step is "not measured", never a figure */
        row->value[model] = m.figure;
    return r;
}

/* ---- creation: start one unit and join it ----------------------------------------- */

static int create_units(in_model *m)
{
    int n = m->model == COROUTINE ? m->sizes->coroutine_starts : m->sizes->thread_starts;
    double per[BATCHES_MAX];
    for (int b = 0; b < m->sizes->batches; b++) {
        int64_t t0 = plait_now();
        for (int i = 0; i < n; i++) {
            plait_task t;
            int r = start_peer(m->model, &t, noop, NULL);
            if (r == 0)
                r = join_unit(t, later(), false);
            if (r < 0)
                return r;
        }
        per[b] = (double)(plait_now() - t0) / n;
    }
    m->figure = tool_median(per, m->sizes->batches);
    return 0;
}

static int create_processes(const compare_sizes *s, double *figure)
{
    double per[BATCHES_MAX];
    for (int b = 0; b < s->batches; b++) {
        int64_t t0 = plait_now();
        for (int i = 0; i < s->process_starts; i++) {
            plait_task t;
            int r = plait_process_start(&t, proc_noop, NULL, 0, NULL, NULL);
            if (r == 0)
                r = join_process(t, later());
            if (r < 0)
                return r;
            if (tool_interrupted)
                return -EINTR;
        }
        per[b] = (double)(plait_now() - t0) / s->process_starts;
    }
    *figure = tool_median(per, s->batches);
    return 0;
}

static int step_create(const compare_sizes *s, compare_result *res, int model)
{
    compare_metric *row = start_row(res, "create", "creation cost", "ns", false, true);
    set_how(row, "start a unit that does nothing and join it: %d coroutines, %d threads, "
                 "%d processes (plait_spawn, plait_thread_start, plait_process_start), "
                 "one at a time; median of %d batches",
            s->coroutine_starts, s->thread_starts, s->process_starts, s->batches);
    return measure_model(row, model, s, create_units, create_processes);
}

/* ---- hand-off: a ping-pong between two units -------------------------------------- */

typedef struct pingpong {
    plait_chan *ping, *pong;
} pingpong;

static void *pong_side(void *arg)
{
    pingpong *pp = arg;
    int v, r;
    while ((r = plait_chan_recv(pp->ping, &v, later())) == 0)
        if ((r = plait_chan_send(pp->pong, &v, later())) < 0)
            break;
    return r == -EPIPE ? NULL : PLAIT_FAIL(r);
}

static int handoff_units(in_model *m)
{
    pingpong pp = {0};
    plait_task peer;
    int r = plait_chan_create(&pp.ping, sizeof(int), 0);
    if (r == 0)
        r = plait_chan_create(&pp.pong, sizeof(int), 0);
    if (r == 0)
        r = start_peer(m->model, &peer, pong_side, &pp);
    if (r < 0)
        goto out;
    int n = m->sizes->handoffs, batches = m->sizes->batches;
    double per[BATCHES_MAX];
    for (int b = 0; b < batches && r == 0; b++) {
        int64_t t0 = plait_now();
        for (int i = 0; i < n && r == 0; i++) {
            int v = i, back = -1;
            r = plait_chan_send(pp.ping, &v, later());
            if (r == 0)
                r = plait_chan_recv(pp.pong, &back, later());
            if (r == 0 && back != v)
                r = -EPROTO;
        }
        per[b] = (double)(plait_now() - t0) / (2.0 * n);
    }
    plait_chan_close(pp.ping);
    int j = join_unit(peer, later(), false);
    r = r ? r : j;
    if (r == 0)
        m->figure = tool_median(per, batches);
out:
    if (pp.ping)
        plait_chan_destroy(pp.ping);
    if (pp.pong)
        plait_chan_destroy(pp.pong);
    return r;
}

typedef struct psem_pair {
    plait_psem *ping, *pong;
    long rounds;
} psem_pair;

static ssize_t pong_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    const psem_pair *pp = arg;
    for (long i = 0; i < pp->rounds; i++) {
        int r = plait_psem_acquire(pp->ping, later());
        if (r == 0)
            r = plait_psem_release(pp->pong);
        if (r < 0)
            return r;
    }
    return 0;
}

static int handoff_processes(const compare_sizes *s, double *figure)
{
    psem_pair pp = {.rounds = (long)s->process_handoffs * s->batches};
    plait_task child;
    int r = plait_psem_create(&pp.ping, 0);
    if (r == 0)
        r = plait_psem_create(&pp.pong, 0);
    if (r == 0)
        r = plait_process_start(&child, pong_process, &pp, sizeof pp, NULL, NULL);
    if (r < 0)
        goto out;
    double per[BATCHES_MAX];
    for (int b = 0; b < s->batches && r == 0; b++) {
        int64_t t0 = plait_now();
        for (int i = 0; i < s->process_handoffs && r == 0; i++) {
            r = plait_psem_release(pp.ping);
            if (r == 0)
                r = plait_psem_acquire(pp.pong, plait_deadline_in(5 * PLAIT_SEC));
        }
        per[b] = (double)(plait_now() - t0) / (2.0 * s->process_handoffs);
    }
    if (r < 0)
        plait_cancel(child); /* it waits for rounds that will not come */
    int j = join_process(child, later());
    r = r ? r : j;
    if (r == 0)
        *figure = tool_median(per, s->batches);
out:
    if (pp.ping)
        plait_psem_destroy(pp.ping);
    if (pp.pong)
        plait_psem_destroy(pp.pong);
    return r;
}

static int step_handoff(const compare_sizes *s, compare_result *res, int model)
{
    compare_metric *row = start_row(res, "handoff", "hand-off between two units", "ns", false, true);
    set_how(row, "one-way hand-off in a ping-pong: two coroutines (one scheduler) or two "
                 "threads through unbuffered plait channels, %d round trips; two processes "
                 "through process-shared semaphores, %d round trips; median of %d batches",
            s->handoffs, s->process_handoffs, s->batches);
    return measure_model(row, model, s, handoff_units, handoff_processes);
}

/* ---- memory: many units alive and parked ----------------------------------------- */

typedef struct parking {
    plait_sem *parked;
    plait_event *release;
} parking;

static void *park(void *arg)
{
    parking *p = arg;
    int r = plait_sem_release(p->parked);
    if (r == 0)
        r = plait_event_wait(p->release, later());
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* Start units t[from..to) parked, and wait until they all are; *started counts those
 * started.  0 or the first failure. */
static int park_units(in_model *m, plait_task *t, int from, int to, parking *p, int *started)
{
    int r = 0;
    for (; r == 0 && *started < to; ++*started)
        r = start_peer(m->model, &t[*started], park, p);
    *started -= r != 0;
    for (int i = from; r == 0 && i < to; i++)
        r = plait_sem_acquire(p->parked, later());
    return r;
}

/* The memory of parked units is counted at the margin: half of them are parked first,
 * and what the other half adds to the resident memory is the figure.  Counted from
 * none, it was what this process's earlier steps had left behind that counted: memory
 * freed and still resident (plait's cached coroutine stacks, the C library's cached
 * thread stacks and its heap arenas, made by one step and reused by the next) lowered
 * the figure (100 threads parked after the I/O-bound job: 7,946 bytes each, against
 * 9,953 in a process that had done nothing before), and one-off costs (the first
 * touch of the code, the first threads' heap arenas) raised it in a fresh one.  The
 * first half takes both; each unit of the second half costs what one more costs. */
static int memory_units(in_model *m)
{
    int n = m->model == COROUTINE ? m->sizes->coroutines_parked : m->sizes->threads_parked;
    int half = n / 2;
    plait_task *t = calloc((size_t)n, sizeof *t);
    parking p = {0};
    int r = t ? 0 : -ENOMEM, started = 0;
    if (r == 0)
        r = plait_sem_create(&p.parked, 0);
    if (r == 0)
        r = plait_event_create(&p.release);
    if (r == 0)
        r = park_units(m, t, 0, half, &p, &started);
    long long before = proc_bytes("/proc/self/status", "VmRSS:");
    if (r == 0)
        r = park_units(m, t, half, n, &p, &started);
    long long after = proc_bytes("/proc/self/status", "VmRSS:");
    if (p.release)
        plait_event_set(p.release);
    if (started > 0) {
        int w = plait_wait_all(t, (size_t)started, NULL, NULL, PLAIT_FOREVER);
        r = r ? r : w;
    }
    if (r == 0)
        m->figure = (double)(after - before) / (n - half);
    if (r == 0 && (before < 0 || after < before))
        r = -EIO; /* no /proc, or a figure that cannot be right */
    if (p.release)
        plait_event_destroy(p.release);
    if (p.parked)
        plait_sem_destroy(p.parked);
    free(t);
    return r;
}

/* What each parked child reports: its proportional set size, in a shared slot.  It
 * reads it once every child is parked (measure set): a proportional size divides each
 * shared page among the processes that map it at the time of reading, so a child that
 * read it at its start, with fewer siblings alive, counted a larger share of the
 * parent's pages than it has with all of them there (the sum was about half again too
 * large at the quick count, 20). */
typedef struct child_parking {
    plait_psem *parked;       /* released by each child once parked, again once measured */
    plait_pevent *measure;    /* set once every child is parked */
    plait_pevent *release;
    long long *pss;           /* one slot per child, in shared memory */
    int index;
} child_parking;

static ssize_t park_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    const child_parking *p = arg;
    int r = plait_psem_release(p->parked);
    if (r == 0)
        r = plait_pevent_wait(p->measure, later());
    if (r == 0) {
        p->pss[p->index] = proc_bytes("/proc/self/smaps_rollup", "Pss:");
        r = plait_psem_release(p->parked);
    }
    if (r == 0)
        r = plait_pevent_wait(p->release, later());
    return r < 0 ? r : 0;
}

static int memory_processes(const compare_sizes *s, double *figure)
{
    int n = s->processes_parked;
    plait_task *t = calloc((size_t)n, sizeof *t);
    plait_shm *shm = NULL;
    child_parking p = {0};
    int r = t ? 0 : -ENOMEM, started = 0;
    if (r == 0)
        r = plait_shm_create(&shm, (size_t)n * sizeof(long long));
    if (r == 0)
        r = plait_psem_create(&p.parked, 0);
    if (r == 0)
        r = plait_pevent_create(&p.measure);
    if (r == 0)
        r = plait_pevent_create(&p.release);
    if (r == 0)
        p.pss = plait_shm_data(shm);
    for (; r == 0 && started < n; started++) {
        p.index = started;
        r = plait_process_start(&t[started], park_process, &p, sizeof p, NULL, NULL);
    }
    started -= r != 0;
    for (int i = 0; r == 0 && i < started; i++)
        r = plait_psem_acquire(p.parked, later());
    if (p.measure)
        plait_pevent_set(p.measure); /* after a failure too: no child waits for it */
    for (int i = 0; r == 0 && i < started; i++)
        r = plait_psem_acquire(p.parked, later());
    long long sum = 0;
    for (int i = 0; r == 0 && i < started; i++)
        sum += p.pss[i] > 0 ? p.pss[i] : (r = -EIO, 0);
    if (p.release)
        plait_pevent_set(p.release);
    for (int i = 0; i < started; i++) {
        int j = join_process(t[i], later());
        r = r ? r : j;
    }
    if (r == 0)
        *figure = (double)sum / n;
    if (p.measure)
        plait_pevent_destroy(p.measure);
    if (p.release)
        plait_pevent_destroy(p.release);
    if (p.parked)
        plait_psem_destroy(p.parked);
    if (shm)
        plait_shm_destroy(shm);
    free(t);
    return r;
}

static int step_memory(const compare_sizes *s, compare_result *res, int model)
{
    compare_metric *row = start_row(res, "memory", "memory per unit", "bytes", false, true);
    set_how(row, "%d coroutines, %d threads (default stacks) or %d processes parked on an "
                 "event: the resident memory (VmRSS) the second half of them added, per "
                 "unit (the first half takes what the process had freed and kept, and "
                 "one-off costs), or for processes the sum of their proportional set sizes "
                 "(Pss), per unit; the kernel's own memory per thread or process is not "
                 "counted",
            s->coroutines_parked, s->threads_parked, s->processes_parked);
    return measure_model(row, model, s, memory_units, memory_processes);
}

/* ---- messages: a stream from one unit to another ---------------------------------- */

typedef struct stream {
    plait_chan *chan;
    size_t size;
    long count;
} stream;

static void *produce(void *arg)
{
    stream *st = arg;
    unsigned char *msg = malloc(st->size);
    int r = msg ? 0 : -ENOMEM;
    for (long i = 0; r == 0 && i < st->count; i++) {
        memcpy(msg, &i, sizeof i);
        r = plait_chan_send(st->chan, msg, later());
    }
    free(msg);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* Receive `per_batch` messages per batch; each batch's seconds in secs[]. */
typedef int (*receive_fn)(void *source, void *buf, size_t size, long index);

static int time_batches(receive_fn receive, void *source, size_t size, int per_batch,
                        int batches, double *secs)
{
    unsigned char *buf = malloc(size);
    if (!buf)
        return -ENOMEM;
    int r = 0;
    long index = 0;
    for (int b = 0; b < batches && r == 0; b++) {
        int64_t t0 = plait_now();
        for (int i = 0; i < per_batch && r == 0; i++, index++)
            r = receive(source, buf, size, index);
        secs[b] = (double)(plait_now() - t0) / PLAIT_SEC;
    }
    free(buf);
    return r;
}

/* Each message starts with its index: a lost, doubled or reordered one is an error. */
static int check_index(const void *buf, long index)
{
    long got;
    memcpy(&got, buf, sizeof got);
    return got == index ? 0 : -EPROTO;
}

static int receive_chan(void *source, void *buf, size_t size, long index)
{
    (void)size;
    int r = plait_chan_recv(source, buf, later());
    return r < 0 ? r : check_index(buf, index);
}

static int receive_queue(void *source, void *buf, size_t size, long index)
{
    ssize_t n = plait_queue_recv(source, buf, size, later());
    return n < 0 ? (int)n : n != (ssize_t)size ? -EPROTO : check_index(buf, index);
}

static int receive_pipe(void *source, void *buf, size_t size, long index)
{
    int fd = *(int *)source;
    for (size_t got = 0; got < size;) {
        ssize_t n = read(fd, (char *)buf + got, size - got);
        if (n == 0)
            return -EPIPE;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n < 0 && tool_interrupted)
            return -EINTR;
        got += n > 0 ? (size_t)n : 0;
    }
    return check_index(buf, index);
}

/* The figure of a stream: ns per message for small ones, GB/s for large ones. */
static double stream_figure(size_t size, int per_batch, double secs)
{
    return size == SMALL ? secs * 1e9 / per_batch : (double)size * per_batch / secs / 1e9;
}

static int messages_units(in_model *m)
{
    size_t size = m->size;
    int per_batch = size == SMALL ? m->sizes->small_messages : m->sizes->large_messages;
    int batches = m->sizes->batches;
    stream st = {.size = size, .count = (long)per_batch * batches};
    plait_task peer;
    int r = plait_chan_create(&st.chan, size, size == SMALL ? 64 : 4);
    if (r == 0)
        r = start_peer(m->model, &peer, produce, &st);
    if (r < 0) {
        if (st.chan)
            plait_chan_destroy(st.chan);
        return r;
    }
    double secs[BATCHES_MAX];
    r = time_batches(receive_chan, st.chan, size, per_batch, batches, secs);
    if (r < 0)
        plait_chan_close(st.chan); /* the producer's send ends with -EPIPE */
    int j = join_unit(peer, later(), false);
    r = r ? r : j;
    plait_chan_destroy(st.chan);
    if (r == 0)
        m->figure = stream_figure(size, per_batch, tool_median(secs, batches));
    return r;
}

typedef struct process_stream {
    plait_queue *queue;   /* NULL: write to fd */
    int fd;
    size_t size;
    long count;
} process_stream;

static ssize_t produce_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    const process_stream *ps = arg;
    unsigned char *msg = calloc(1, ps->size);
    int r = msg ? 0 : -ENOMEM;
    for (long i = 0; r == 0 && i < ps->count; i++) {
        memcpy(msg, &i, sizeof i);
        if (ps->queue)
            r = plait_queue_send(ps->queue, msg, ps->size, later());
        else
            for (size_t put = 0; r == 0 && put < ps->size;) {
                ssize_t n = write(ps->fd, msg + put, ps->size - put);
                r = n < 0 && errno != EINTR ? -errno : 0;
                put += n > 0 ? (size_t)n : 0;
            }
    }
    free(msg);
    return r;
}

/* Stream from a child through plait's queue (pipe false) or a pipe (pipe true). */
static int messages_process(const compare_sizes *s, size_t size, bool pipe, double *figure)
{
    int per_batch = size == SMALL ? s->small_messages : s->large_messages;
    process_stream ps = {.fd = -1, .size = size, .count = (long)per_batch * s->batches};
    int fds[2] = {-1, -1};
    plait_task child;
    int r = pipe ? (pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno)
                 : plait_queue_create(&ps.queue, size, size == SMALL ? 64 : 4);
    ps.fd = fds[1];
    if (r == 0)
        r = plait_process_start(&child, produce_process, &ps, sizeof ps, NULL, NULL);
    if (fds[1] >= 0)
        close(fds[1]); /* the child has it: a dead child means end of file here */
    if (r == 0) {
        double secs[BATCHES_MAX];
        r = pipe ? time_batches(receive_pipe, &fds[0], size, per_batch, s->batches, secs)
                 : time_batches(receive_queue, ps.queue, size, per_batch, s->batches, secs);
        if (r < 0)
            plait_cancel(child);
        int j = join_process(child, later());
        r = r ? r : j;
        if (r == 0)
            *figure = stream_figure(size, per_batch, tool_median(secs, s->batches));
    }
    if (fds[0] >= 0)
        close(fds[0]);
    if (ps.queue)
        plait_queue_destroy(ps.queue);
    return r;
}

static int step_messages(const compare_sizes *s, compare_result *res, int model, size_t size)
{
    compare_metric *row = size == SMALL
                              ? start_row(res, "msg_small", "64-byte message", "ns", false, true)
                              : start_row(res, "msg_large", "64 KiB messages", "GB/s", true, true);
    int per_batch = size == SMALL ? s->small_messages : s->large_messages;
    set_how(row, "a stream of %d messages of %zu bytes per batch from one unit to another, "
                 "each copied in and out: a plait channel (coroutines, threads), plait's "
                 "shared-memory queue (processes), and a pipe for comparison; median of %d "
                 "batches",
            per_batch, size, s->batches);
    if (model == PROCESS) {
        /* the queue's figure only with the pipe's: a step that fails is "not measured",
         * never a figure (one whose pipe failed showed the queue's, and was recommended) */
        double queue, pipe;
        int r = messages_process(s, size, false, &queue);
        if (r == 0 && (r = messages_process(s, size, true, &pipe)) == 0) {
            row->value[PROCESS] = queue;
            row->extras = 1;
            row->extra[0].label = "processes over a pipe";
            row->extra[0].value = pipe;
        }
        return r;
    }
    in_model m = {.model = model, .sizes = s, .body = messages_units, .size = size};
    int r = run_in_model(&m);
    if (r == 0)
        row->value[model] = m.figure;
    return r;
}

/* ---- the I/O-bound job: many units waiting on their own connections -------------- */

static void *answer_later(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[IO_MESSAGE];
    while (plait_read_exactly(fd, buf, sizeof buf, NULL, PLAIT_FOREVER) == 0 &&
           plait_sleep(IO_DELAY) == 0 &&
           plait_write_all(fd, buf, sizeof buf, NULL, PLAIT_FOREVER) == 0) {
    }
    plait_close(fd);
    return NULL;
}

typedef struct io_job {
    int port, requests;
} io_job;

/* One client: connect, then `requests` requests in turn, each echoed after IO_DELAY. */
static int io_client(const io_job *job)
{
    int fd = plait_tcp_connect("127.0.0.1", job->port, later());
    if (fd < 0)
        return fd;
    char out[IO_MESSAGE], in[IO_MESSAGE];
    int r = 0;
    for (int i = 0; i < job->requests && r == 0; i++) {
        memset(out, 'a' + i % 26, sizeof out);
        r = plait_write_all(fd, out, sizeof out, NULL, later());
        if (r == 0)
            r = plait_read_exactly(fd, in, sizeof in, NULL, later());
        if (r == 0 && memcmp(in, out, sizeof in) != 0)
            r = -EPROTO;
    }
    plait_close(fd);
    return r;
}

static void *io_client_task(void *arg)
{
    int r = io_client(arg);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

static ssize_t io_client_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    return io_client(arg);
}

typedef struct io_run {
    in_model m;
    io_job job;
} io_run;

static int io_units(in_model *m)
{
    io_run *run = (io_run *)m;
    int n = m->sizes->io_units;
    plait_task *t = calloc((size_t)n, sizeof *t);
    if (!t)
        return -ENOMEM;
    /* One run, not batches: the units of one batch are joined, but a thread's or
     * process's exit still counts against the user's limit on them (ulimit -u) for a
     * moment after, and the next batch's, started at once, were refused (EAGAIN: the
     * units were fitted to the limit for one batch). */
    int r = 0, started = 0;
    int64_t t0 = plait_now();
    for (; r == 0 && started < n; started++)
        r = m->model == PROCESS
                ? plait_process_start(&t[started], io_client_process, &run->job,
                                      sizeof run->job, NULL, NULL)
                : start_peer(m->model, &t[started], io_client_task, &run->job);
    started -= r != 0;
    for (int i = 0; i < started; i++) {
        int j = join_unit(t[i], later(), m->model == PROCESS);
        r = r ? r : j;
    }
    m->figure = (double)(plait_now() - t0) / PLAIT_MS;
    free(t);
    return r;
}

static int step_io(const compare_sizes *s, compare_result *res, int model)
{
    compare_metric *row = start_row(res, "io_job", "I/O-bound job", "ms", false, true);
    if (s->io_units == 0) {
        /* compare.c found too few descriptors for the job, and said so; the counts of a
         * job that did not run ("0 units at once") describe nothing */
        set_how(row, "skipped: the limit on open files (ulimit -n) leaves too few "
                     "descriptors for the job (three per unit)");
        return -EMFILE;
    }
    set_how(row, "%d units at once, each with its own loopback TCP connection making %d "
                 "requests in turn, each answered after %d ms by a coroutine server: one "
                 "unit alone would take %d ms, all one after another %.1f s; one run",
            s->io_units, s->io_requests, (int)(IO_DELAY / PLAIT_MS),
            s->io_requests * (int)(IO_DELAY / PLAIT_MS),
            (double)s->io_units * s->io_requests * IO_DELAY / PLAIT_SEC);
    example_service svc;
    int r = example_service_start(&svc, answer_later);
    if (r < 0)
        return r;
    io_run run = {.m = {.model = model, .sizes = s, .body = io_units},
                  .job = {.port = svc.port, .requests = s->io_requests}};
    r = model == COROUTINE ? run_in_model(&run.m) : io_units(&run.m);
    example_service_stop(&svc);
    if (r == 0)
        row->value[model] = run.m.figure;
    return r;
}

/* ---- the CPU-bound job: the speed-up over one core -------------------------------- */

typedef struct cpu_job {
    range ranges[CHUNKS];
    void *args[CHUNKS];
} cpu_job;

static cpu_job cpu;

static void *primes_task(void *arg)
{
    return (void *)(intptr_t)primes_in(arg);
}

static ssize_t primes_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)cap;
    long count = primes_in(arg);
    memcpy(out, &count, sizeof count);
    return sizeof count;
}

static void *primes_coroutines(void *arg)
{
    long *count = arg;
    plait_task t[CHUNKS];
    void *results[CHUNKS];
    int started = 0, r = 0;
    for (; r == 0 && started < CHUNKS; started++)
        r = plait_spawn(&t[started], primes_task, cpu.args[started]);
    started -= r != 0;
    int w = started ? plait_wait_all(t, (size_t)started, results, NULL, later()) : 0;
    for (int i = 0; i < started; i++)
        *count += (long)(intptr_t)results[i];
    r = r ? r : w;
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* One run of the job as `model`, its prime count in *count. */
static int cpu_once(int model, void *pool, long *count)
{
    *count = 0;
    if (model == COROUTINE)
        return plait_run(primes_coroutines, count, NULL);
    if (model == THREAD) {
        void *results[CHUNKS];
        int r = plait_pool_map(pool, primes_task, cpu.args, CHUNKS, results, NULL, later());
        for (int i = 0; r == 0 && i < CHUNKS; i++)
            *count += (long)(intptr_t)results[i];
        return r;
    }
    long counts[CHUNKS];
    int r = plait_procpool_map(pool, primes_process, cpu.ranges, sizeof(range), CHUNKS, counts,
                               sizeof(long), NULL, 1, later());
    for (int i = 0; r == 0 && i < CHUNKS; i++)
        *count += counts[i];
    return r;
}

/* The job on this thread alone: its seconds, its prime count in *count. */
static double cpu_serial(long *count)
{
    int64_t t0 = plait_now();
    *count = 0;
    for (int i = 0; i < CHUNKS; i++)
        *count += primes_in(&cpu.ranges[i]);
    return (double)(plait_now() - t0) / PLAIT_SEC;
}

static int step_cpu(const compare_sizes *s, compare_result *res, int model)
{
    compare_metric *row = start_row(res, "cpu_speedup", "CPU-bound speed-up", "x", true, false);
    res->cpu_workers = s->cpu_workers; /* what the report quotes */
    int workers = s->cpu_workers ? s->cpu_workers : res->machine.cpus;
    set_how(row, "count the primes below %u in %d chunks: the time on one thread divided by "
                 "the time as %d coroutines on one scheduler, on a thread pool of %d, on a "
                 "process pool of %d; each run right after a run on one thread, median of %d "
                 "such pairs",
            s->prime_bound, CHUNKS, CHUNKS, workers, workers, s->batches);
    for (int i = 0; i < CHUNKS; i++) {
        cpu.ranges[i] = (range){(uint32_t)((uint64_t)s->prime_bound * i / CHUNKS),
                                (uint32_t)((uint64_t)s->prime_bound * (i + 1) / CHUNKS)};
        cpu.args[i] = &cpu.ranges[i];
    }
    void *pool = NULL;
    int r = 0;
    if (model == THREAD)
        r = plait_pool_create((plait_pool **)&pool,
                              &(plait_pool_options){.threads = (unsigned)s->cpu_workers});
    if (model == PROCESS)
        r = plait_procpool_create((plait_procpool **)&pool,
                                  &(plait_procpool_options){.processes = (unsigned)s->cpu_workers});
    double speedup[BATCHES_MAX];
    for (int b = 0; r == 0 && b < s->batches && !tool_interrupted; b++) {
        long expected, count;
        double serial = cpu_serial(&expected);
        int64_t t0 = plait_now();
        r = cpu_once(model, pool, &count);
        speedup[b] = serial / ((double)(plait_now() - t0) / PLAIT_SEC);
        if (r == 0 && count != expected)
            r = -EPROTO;
    }
    if (pool && model == THREAD)
        plait_pool_destroy(pool);
    if (pool && model == PROCESS)
        plait_procpool_destroy(pool);
    if (r == 0 && tool_interrupted)
        r = -EINTR;
    if (r == 0)
        row->value[model] = tool_median(speedup, s->batches);
    return r;
}

static int step_msg_small(const compare_sizes *s, compare_result *res, int model)
{
    return step_messages(s, res, model, SMALL);
}

static int step_msg_large(const compare_sizes *s, compare_result *res, int model)
{
    return step_messages(s, res, model, LARGE);
}

/* ---- isolation: one unit crashes while two others wait ---------------------------- */

/* Made before any drill unit is forked, so every process of the drill shares it. */
typedef struct drill {
    plait_psem *waiting;      /* released by each survivor once it waits */
    plait_pevent *proceed;    /* set by the tool once the crash is over */
    atomic_int *finished;     /* survivors that got past the crash, in shared memory */
} drill;

static drill the_drill;

static int survive(void)
{
    int r = plait_psem_release(the_drill.waiting);
    if (r == 0)
        r = plait_pevent_wait(the_drill.proceed, later());
    if (r == 0)
        atomic_fetch_add(the_drill.finished, 1);
    return r;
}

/* Wait until both survivors wait, then crash with SIGSEGV, as a stray pointer would
 * (raised, so that no undefined behaviour is needed; no core file is written). */
static int crash(void)
{
    for (int i = 0; i < 2; i++) {
        int r = plait_psem_acquire(the_drill.waiting, later());
        if (r < 0)
            return r;
    }
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return -EPROTO; /* not reached: SIGSEGV's default action ends the process */
}

static void *survive_task(void *arg)
{
    (void)arg;
    int r = survive();
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

static void *crash_task(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(crash());
}

static ssize_t survive_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return survive();
}

static ssize_t crash_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return crash();
}

/* The drill as coroutines (in a scheduler) or threads: two survivors and a crasher. */
static int drill_units(in_model *m)
{
    plait_task t[3];
    int r = 0, started = 0;
    for (; r == 0 && started < 3; started++)
        r = start_peer(m->model, &t[started], started < 2 ? survive_task : crash_task, NULL);
    started -= r != 0;
    if (r < 0) /* no crash will come: let the survivors that started go now */
        plait_pevent_set(the_drill.proceed);
    int w = started ? plait_wait_all(t, (size_t)started, NULL, NULL, later()) : 0;
    return r < 0 ? r : w; /* the start's failure, not the survivors' success */
}

/* The coroutine and thread drills run in a child process of their own, so that what
 * happens to that process is what would happen to a program built that way. */
static ssize_t drill_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    in_model m = {.model = *(const int *)arg, .body = drill_units};
    return run_in_model(&m);
}

/* Run the drill as `model`; *ended gets how the crashed unit's process ended. */
static int run_drill(int model, int *ended)
{
    plait_task t[3];
    int n = 0, r = 0;
    if (model == PROCESS) {
        for (; r == 0 && n < 3; n++)
            r = plait_process_start(&t[n], n < 2 ? survive_process : crash_process, NULL, 0,
                                    NULL, NULL);
        n -= r != 0;
    } else {
        r = plait_process_start(&t[0], drill_process, &model, sizeof model, NULL, NULL);
        n = r == 0;
    }
    if (n == 0)
        return r;
    /* the crasher (or the drill's process) first: it ends by the crash.  One still
     * running after 10 s is not killed (as join_process would) but let finish once the
     * survivors may. */
    int crashed = n == 3 || model != PROCESS ? n - 1 : -1;
    void *result = NULL; /* a process's bytes, had it returned */
    int j = 0;
    if (crashed >= 0)
        j = plait_join(t[crashed], &result, plait_deadline_in(10 * PLAIT_SEC));
    free(result);
    plait_pevent_set(the_drill.proceed); /* whoever survived may finish now */
    if (j == -ETIMEDOUT) /* not ended by the crash: it may finish now */
        j = join_process(t[crashed], later());
    *ended = j;
    for (int i = 0; i < n; i++)
        if (i != crashed) {
            int s = join_process(t[i], later());
            r = r ? r : s;
        }
    return r;
}

static int step_crash(const compare_sizes *s, compare_result *res, int model)
{
    (void)s;
    compare_fact *row = compare_fact_row(res, "crash_isolated");
    row->title = "crash spares the others";
    snprintf(row->how, sizeof row->how,
             "three units: two wait while the third raises SIGSEGV (what a stray pointer "
             "does); the row says whether the two went on afterwards");
    plait_shm *shm = NULL;
    int r = plait_shm_create(&shm, sizeof(atomic_int));
    if (r == 0)
        r = plait_psem_create(&the_drill.waiting, 0);
    if (r == 0)
        r = plait_pevent_create(&the_drill.proceed);
    int ended = 0;
    if (r == 0) {
        the_drill.finished = plait_shm_data(shm);
        atomic_init(the_drill.finished, 0);
        r = run_drill(model, &ended);
    }
    /* the crasher (or the drill's process) ends by the crash's signal; a code of its
     * own (a unit that could not start, a wait that failed) or another signal (the OOM
     * killer's SIGKILL, someone's kill) is the drill failing: no crash of its own
     * happened, and the survivors' count would answer a question never asked */
    if (r == 0 && PLAIT_KILL_SIGNAL(ended) != SIGSEGV)
        r = ended < 0 ? ended : -EPROTO;
    int finished = r == 0 ? atomic_load(the_drill.finished) : 0;
    int sig = PLAIT_KILL_SIGNAL(ended);
    char how_ended[32];
    if (sig > 0)
        snprintf(how_ended, sizeof how_ended, "SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else
        snprintf(how_ended, sizeof how_ended, "%s", plait_strerror(ended));
    if (r == 0 && finished == 2)
        snprintf(row->value[model], sizeof row->value[model], "yes: the other 2 finished");
    else if (r == 0 && finished == 0)
        snprintf(row->value[model], sizeof row->value[model], "no: %s ended all 3", how_ended);
    else if (r == 0)
        snprintf(row->value[model], sizeof row->value[model], "partly: %d of 2 finished",
                 finished);
    if (the_drill.proceed)
        plait_pevent_destroy(the_drill.proceed);
    if (the_drill.waiting)
        plait_psem_destroy(the_drill.waiting);
    if (shm)
        plait_shm_destroy(shm);
    the_drill = (drill){0};
    return r;
}

/* ---- memory shared or not: a unit writes a variable; does its creator see it? ----- */

static int shared_probe;

static void *write_probe(void *arg)
{
    (void)arg;
    shared_probe = 42;
    return NULL;
}

static ssize_t write_probe_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    shared_probe = 42;
    return 0;
}

static int probe_units(in_model *m)
{
    plait_task t;
    int r = start_peer(m->model, &t, write_probe, NULL);
    return r < 0 ? r : join_unit(t, later(), false);
}

static int step_shared(const compare_sizes *s, compare_result *res, int model)
{
    (void)s;
    compare_fact *row = compare_fact_row(res, "shared_memory");
    row->title = "memory shared with creator";
    snprintf(row->how, sizeof row->how,
             "a unit sets a global variable; after joining it, its creator reads it");
    shared_probe = 0;
    int r;
    if (model == PROCESS) {
        plait_task t;
        r = plait_process_start(&t, write_probe_process, NULL, 0, NULL, NULL);
        r = r < 0 ? r : join_process(t, later());
    } else {
        in_model m = {.model = model, .body = probe_units};
        r = run_in_model(&m);
    }
    if (r == 0)
        snprintf(row->value[model], sizeof row->value[model], "%s",
                 shared_probe == 42 ? "yes: write seen"
                                    : "no: write not seen");
    return r;
}

/* ---- the steps, in the order they run --------------------------------------------- */

#define EACH_MODEL(what, fn)                                                             \
    {"coroutines: " what, COROUTINE, fn}, {"threads: " what, THREAD, fn},                \
    {"processes: " what, PROCESS, fn}

const compare_step compare_steps[] = {
    /* The memory of processes and threads first, in a process that has done nothing
     * else yet: a child's proportional set size takes a share of its parent's pages,
     * and the parent grows with every step (20 children parked after the other steps
     * counted 310-322 KiB each, 158-166 KiB before them); what the earlier steps freed
     * and the C library keeps (heap, thread stacks) lowered the threads' figure too
     * (memory_units). */
    {"processes: memory per unit", PROCESS, step_memory},
    {"threads: memory per unit", THREAD, step_memory},
    EACH_MODEL("creation", step_create),
    EACH_MODEL("hand-off", step_handoff),
    EACH_MODEL("64-byte messages", step_msg_small),
    EACH_MODEL("64 KiB messages", step_msg_large),
    EACH_MODEL("I/O-bound job", step_io),
    EACH_MODEL("CPU-bound job", step_cpu),
    EACH_MODEL("crash isolation", step_crash),
    EACH_MODEL("shared memory", step_shared),
    /* Last: plait keeps coroutine stacks mapped for reuse, and a parent with 100,000 of
     * them makes every later fork slower (the kernel copies its page tables), which
     * would charge the processes' figures for the coroutines'.  (Counted at the margin,
     * memory_units, the figure is the same first or last: 4,277.86 bytes either way,
     * four quick runs each.) */
    {"coroutines: memory per unit", COROUTINE, step_memory},
};
const int compare_step_count = sizeof compare_steps / sizeof compare_steps[0];

void compare_make_rows(compare_result *res)
{
    static const char *const in_order[] = {"create",   "handoff",     "msg_small", "msg_large",
                                           "io_job",   "cpu_speedup", "memory"};
    for (size_t i = 0; i < sizeof in_order / sizeof in_order[0]; i++)
        compare_metric_row(res, in_order[i]);
}
