/*
 * procpool_map.c — map and lazy map (imap) over a process pool, built on its tasks.
 *
 * Items are fixed-size records in the caller's arrays.  They travel in chunks: one
 * pool task carries a header (the caller's function, sizes, count) and a run of items,
 * and runs chunk_run in the worker, which calls the function on each item and leaves,
 * for each, its code and its result record in the task's slot.  A million 8-byte items
 * are a few hundred tasks, so the per-task costs (a wake-up, the manager's hop) are
 * spread over thousands of items; a chunk is limited by the pool's argument and
 * result room.
 *
 * Copies: the parent copies a chunk's items from the caller's array straight into a
 * free slot (chunks are submitted through a window of a few per worker, so there
 * usually is one), the worker computes in place, and the manager copies the results
 * from the slot straight into their destination (a "deliver" hook of the task): the
 * caller's arrays for map, a buffer per window place for imap.  No other copy, no
 * allocation per chunk.
 *
 * Because the manager writes into the caller's arrays, map never returns while a
 * chunk of it is out: when it stops early (its deadline, its cancellation) it cancels
 * the chunks still out and waits for them, uncancellably; a chunk that had not started
 * never runs, one that runs is killed with its worker.
 *
 * imap keeps a window of chunks in flight (four per worker).  Ordered, it hands items
 * back in index order, joining chunks oldest first; unordered, in the order chunks
 * finish (an as-completed set).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct chunk_header {
    plait_proc_fn fn;
    uint64_t count, arg_size, result_size;
} chunk_header;

/* Alignment.  A function gets each item's argument and result room where an array of
 * them would have it: at offsets (from the slot's argument and result rooms, aligned
 * to 64) that are multiples of ITEM_ALIGN plus a multiple of the item size.  The items
 * follow the header, whose size is such a multiple; the results follow the codes,
 * padded to one. */
enum { ITEM_ALIGN = _Alignof(max_align_t) };
_Static_assert(sizeof(chunk_header) % ITEM_ALIGN == 0, "items start aligned");
/* the room a pool's slots have for chunks beyond arg_max and result_max: one item of
 * those sizes fits (chunk_most) */
_Static_assert(sizeof(chunk_header) == PLAIT__MAP_ARG_EXTRA, "a chunk's header");
_Static_assert((size_t)PLAIT__MAP_RESULT_EXTRA % ITEM_ALIGN == 0 &&
                   (size_t)PLAIT__MAP_RESULT_EXTRA >= (size_t)ITEM_ALIGN,
               "one item's code, padded");

static size_t div_up(size_t a, size_t b) { return a / b + (a % b != 0); }

/* Where the results of a chunk of count items start in its result, after the codes. */
static size_t results_at(size_t count)
{
    return div_up(count * sizeof(int32_t), ITEM_ALIGN) * ITEM_ALIGN;
}

/* A chunk's whole result: the codes, then the results. */
static size_t chunk_result_size(size_t count, size_t result_size)
{
    return results_at(count) + count * result_size;
}

/* The most items of arg_size (> 0) and result_size bytes that one chunk carries in
 * arg_room and result_room bytes; 0 when not even one fits.  Nothing here wraps: a size
 * is compared with its room before anything is added to it.  By the result room it may
 * be an item or two short of the most (the codes' padding is counted whole), never
 * for the first item. */
static size_t chunk_most(size_t arg_size, size_t result_size, size_t arg_room,
                         size_t result_room)
{
    size_t padding = ITEM_ALIGN - sizeof(int32_t);
    if (arg_room < sizeof(chunk_header) || result_room < padding ||
        result_size > result_room)
        return 0;
    size_t by_arg = (arg_room - sizeof(chunk_header)) / arg_size;
    size_t by_result = (result_room - padding) / (sizeof(int32_t) + result_size);
    return by_arg < by_result ? by_arg : by_result;
}

/* What came back of a chunk is in memory the workers write, where a task with a memory
 * bug may have written over it (procpool.c, "Distrust"): a chunk's result of another
 * length than chunk_run's, and an item's code that chunk_run never writes, are
 * -EPROTO. */
static int chunk_checked(size_t count, size_t result_size, int code, size_t len)
{
    return code == 0 && len != chunk_result_size(count, result_size) ? -EPROTO : code;
}

static int32_t item_code(const unsigned char *raw, size_t i)
{
    int32_t code;
    memcpy(&code, raw + i * sizeof code, sizeof code);
    return plait__code_read_back(code);
}

/* Runs in a worker: the items' outcomes as int32 codes, then (aligned) their results. */
ssize_t plait__procpool_chunk_run(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    chunk_header h;
    if (arg_len < sizeof h)
        return -EINVAL;
    memcpy(&h, arg, sizeof h);
    if (h.count > chunk_most(h.arg_size, h.result_size, arg_len, out_cap))
        return -EMSGSIZE;
    const unsigned char *items = (const unsigned char *)arg + sizeof h;
    int32_t *codes = out;
    unsigned char *results = (unsigned char *)out + results_at(h.count);
    unsigned epoch = plait__fork_epoch();
    for (uint64_t i = 0; i < h.count; i++) {
        unsigned char *result = results + i * h.result_size;
        ssize_t n = h.fn(items + i * h.arg_size, h.arg_size, result, h.result_size);
        if (PLAIT_UNLIKELY(plait__fork_epoch() != epoch))
            _exit(0); /* a child the item forked, returning from it too: the chunk is the
                       * worker's (the child ran the rest a second time, and wrote into a
                       * room its parent had handed on); worker_main catches a _Fork() or
                       * raw fork, which runs no fork handler, once the chunk returns */
        int32_t code = n < 0 ? (n < PLAIT__CODE_MIN ? -EINVAL : (int32_t)n)
                       : (size_t)n > h.result_size ? -EMSGSIZE : 0;
        codes[i] = code;
        /* a shorter result's rest is zeros, not what an earlier task left in the room
         * (a failed item's is zeroed by the parent); only a shorter one's: a call of
         * memset for none, at every item, halved a map of small items (its items/s,
         * bench_process: 476 M before the zeroing, 188 M with it) */
        if (PLAIT_UNLIKELY(code == 0 && (size_t)n < h.result_size))
            memset(result + n, 0, h.result_size - (size_t)n);
    }
    return (ssize_t)chunk_result_size(h.count, h.result_size);
}

/* What a map over n items asks of the pool. */
typedef struct map_plan {
    plait_procpool *pool;
    plait_proc_fn fn;
    const unsigned char *args;
    size_t arg_size, result_size, n, chunk, chunks, window;
} map_plan;

static int plan_make(map_plan *m, plait_procpool *pool, plait_proc_fn fn, const void *args,
                     size_t arg_size, size_t n, size_t result_size, size_t chunk)
{
    if (!pool || !fn || !args || n == 0 || arg_size == 0)
        return -EINVAL;
    if (plait__procpool_caller(pool) < 0)
        return -EPERM;
    size_t most = chunk_most(arg_size, result_size, plait__procpool_arg_max(pool),
                             plait__procpool_result_max(pool));
    if (most == 0)
        return -EMSGSIZE;
    if (n > PTRDIFF_MAX / arg_size) /* no array is that large: n * arg_size would wrap */
        return -EINVAL;
    size_t workers = plait_procpool_processes(pool);
    if (chunk == 0) /* as Python does: about four chunks per worker */
        chunk = div_up(n, 4 * workers);
    if (chunk > most)
        chunk = most;
    *m = (map_plan){pool, fn, args, arg_size, result_size, n, chunk, div_up(n, chunk),
                    4 * workers};
    return 0;
}

static size_t chunk_count(const map_plan *m, size_t c)
{
    size_t first = c * m->chunk;
    return m->n - first < m->chunk ? m->n - first : m->chunk;
}

static int chunk_submit(const map_plan *m, size_t c, plait_task *task,
                        plait__procpool_deliver deliver, void *ctx, size_t tag)
{
    size_t count = chunk_count(m, c);
    chunk_header h = {m->fn, count, m->arg_size, m->result_size};
    return plait__procpool_submit(m->pool, task, plait__procpool_chunk_run, &h, sizeof h,
                                  m->args + c * m->chunk * m->arg_size, count * m->arg_size,
                                  deliver, ctx, tag);
}

/* Spread a chunk's outcome over its items: each item's code into errors (may be NULL),
 * its result (zeroed on failure) into results; chunk_code < 0 fails them all.  Returns
 * the first item failure. */
static int chunk_spread(const map_plan *m, size_t count, int chunk_code,
                        const unsigned char *raw, unsigned char *results, int *errors)
{
    int first = 0;
    const unsigned char *raw_results = raw ? raw + results_at(count) : NULL;
    if (chunk_code == 0) { /* the common case, every item succeeded: one copy */
        const int32_t *codes = (const int32_t *)raw; /* the slot is aligned */
        int32_t any = 0;
        for (size_t i = 0; i < count; i++)
            any |= codes[i];
        if (!any) {
            if (errors)
                memset(errors, 0, count * sizeof *errors);
            if (results)
                memcpy(results, raw_results, count * m->result_size);
            return 0;
        }
    }
    for (size_t i = 0; i < count; i++) {
        int32_t code = chunk_code ? chunk_code : item_code(raw, i);
        if (errors)
            errors[i] = code;
        if (results && code == 0)
            memcpy(results + i * m->result_size, raw_results + i * m->result_size,
                   m->result_size);
        else if (results)
            memset(results + i * m->result_size, 0, m->result_size);
        if (code < 0 && !first)
            first = code;
    }
    return first;
}

/* ---- map ---- */

typedef struct map_run {
    map_plan m;
    unsigned char *results;
    int *errors;
    bool *delivered;            /* the items' own outcomes came: written by the manager
                                   before the chunk completes */
} map_run;

static int map_deliver(void *ctx, size_t c, int code, const unsigned char *result,
                       size_t len, void **value)
{
    (void)value;
    map_run *run = ctx;
    const map_plan *m = &run->m;
    size_t first = c * m->chunk, count = chunk_count(m, c);
    run->delivered[c] = code != -ECANCELED; /* killed when cancelled: map settles it */
    return chunk_spread(m, count, chunk_checked(count, m->result_size, code, len), result,
                        run->results ? run->results + first * m->result_size : NULL,
                        run->errors ? run->errors + first : NULL);
}

/* A chunk whose items the manager did not settle (not submitted, or withdrawn). */
static void map_settle(map_run *run, size_t c, int code)
{
    const map_plan *m = &run->m;
    size_t first = c * m->chunk;
    chunk_spread(m, chunk_count(m, c), code, NULL,
                 run->results ? run->results + first * m->result_size : NULL,
                 run->errors ? run->errors + first : NULL);
}

int plait_procpool_map(plait_procpool *pool, plait_proc_fn fn, const void *args,
                       size_t arg_size, size_t n, void *results, size_t result_size,
                       int *errors, size_t chunk, int64_t deadline)
{
    map_run run = {.results = results, .errors = errors};
    int r = plan_make(&run.m, pool, fn, args, arg_size, n, result_size, chunk);
    /* arrays no object can be (or none): never written, the refusals below fill the
     * others */
    bool sound = (!result_size || (results && n <= PTRDIFF_MAX / result_size)) &&
                 (!errors || n <= PTRDIFF_MAX / sizeof *errors) && arg_size &&
                 n <= PTRDIFF_MAX / arg_size;
    if (r == -EINVAL || (r == 0 && !sound))
        return -EINVAL;
    if (r < 0 && !sound)
        return r;
    const map_plan *m = &run.m;
    plait_task *window = NULL;
    if (r == 0) {
        window = malloc(m->window * sizeof *window);
        run.delivered = calloc(m->chunks, sizeof *run.delivered);
        if (!window || !run.delivered)
            r = -ENOMEM;
    }
    if (r < 0) { /* refused as a whole: every item says so, as the thread pool's map */
        free(window);
        free(run.delivered);
        if (errors)
            for (size_t i = 0; i < n; i++)
                errors[i] = r;
        if (result_size)
            memset(results, 0, n * result_size);
        return r;
    }
    size_t submitted = 0, joined = 0;
    /* first: the first item failure in index order (chunks are joined in order, and
     * those never submitted come after them); refused: a refusal of the pool (shut
     * down meanwhile), which stops submitting and only fails the items left; cut: the
     * caller's deadline or cancellation, which the call returns (it may come after a
     * refusal too: the chunks still out are waited for under the deadline) */
    int first = 0, refused = 0, cut = 0;
    while (joined < m->chunks) {
        while (!refused && !cut && submitted < m->chunks && submitted - joined < m->window) {
            refused = chunk_submit(m, submitted, &window[submitted % m->window], map_deliver,
                                   &run, submitted);
            if (!refused)
                submitted++;
        }
        if (joined == submitted)
            break; /* stopped before the rest were submitted */
        plait_task t = window[joined % m->window];
        int jr = cut ? plait__join_stopped(t, NULL) : plait_join(t, NULL, deadline);
        if (!cut && plait__join_cut_short(jr, t)) {
            /* our wait ended, not the chunk (whose own outcome, -ETIMEDOUT of an item
             * or of the pool's task_timeout, would have consumed the handle): cancel
             * what is out, newest first, then wait for it: every queued chunk is
             * withdrawn before a running one's worker is killed, so the worker that
             * replaces it cannot pick one up meanwhile */
            cut = jr;
            for (size_t c = submitted; c-- > joined;)
                plait_cancel(window[c % m->window]);
            continue;
        }
        if (!run.delivered[joined]) {
            /* withdrawn, or killed when cancelled: if the caller cut the map short, by
             * the map, and its items say why (a finished chunk's own -ECANCELED, or
             * the pool's when it was shut down cancelling, stays as it came) */
            int code = cut && jr == -ECANCELED ? cut : jr < 0 ? jr : -ECANCELED;
            map_settle(&run, joined, code);
        }
        if (jr < 0 && !first)
            first = jr;
        joined++;
    }
    for (size_t c = submitted; c < m->chunks; c++)
        map_settle(&run, c, refused ? refused : cut);
    free(window);
    free(run.delivered);
    return cut ? cut : first ? first : refused;
}

/* ---- imap ---- */

struct plait_procpool_iter {
    map_plan m;
    bool ordered;
    size_t places;              /* m.window in flight, and the chunk handed out */
    plait_task *window;
    size_t *chunk_of;           /* which chunk each place holds */
    bool *busy;
    unsigned char *raw;         /* a chunk's raw result per place, written by the manager */
    size_t raw_size;
    plait_completed *done;      /* unordered: chunks in the order they finish */
    size_t next_submit, in_flight;
    int submit_error;           /* submitting failed: the chunks not out fail with it */
    bool holds_place;           /* the chunk handed out came through a place */
    size_t current_place, current_chunk, current_pos, current_count;
    int current_error;
    unsigned epoch;             /* the fork epoch that made it: the only one that may use it */
    bool counted;               /* in its pool's count of iterators */
};

static int imap_deliver(void *ctx, size_t place, int code, const unsigned char *result,
                        size_t len, void **value)
{
    (void)value;
    plait_procpool_iter *it = ctx;
    code = chunk_checked(chunk_count(&it->m, it->chunk_of[place]), it->m.result_size, code, len);
    if (code == 0)
        memcpy(it->raw + place * it->raw_size, result, len);
    return code;
}

/* The place of chunk c: there is one more place than chunks in flight, for the chunk
 * being handed out.  Ordered, c % places (free: the chunk that many back was handed
 * out and let go first); unordered, any free one. */
static size_t place_for(plait_procpool_iter *it, size_t c)
{
    if (it->ordered)
        return c % it->places;
    size_t k = 0;
    while (it->busy[k])
        k++;
    return k;
}

/* Submit chunks while the window has room.  A failure (the pool shut down, out of
 * memory) stops submitting for good: the chunks not out are handed back failed. */
static void iter_fill(plait_procpool_iter *it)
{
    while (!it->submit_error && it->in_flight < it->m.window && it->next_submit < it->m.chunks) {
        size_t c = it->next_submit, k = place_for(it, c);
        it->chunk_of[k] = c; /* before: the delivery reads it */
        int r = chunk_submit(&it->m, c, &it->window[k], imap_deliver, it, k);
        if (r == 0 && !it->ordered && (r = plait_completed_add(it->done, it->window[k])) < 0) {
            plait_cancel(it->window[k]);
            plait__join_stopped(it->window[k], NULL);
        }
        if (r < 0) {
            it->submit_error = r;
            return;
        }
        it->busy[k] = true;
        it->next_submit++;
        it->in_flight++;
    }
}

int plait_procpool_imap(plait_procpool_iter **iter, plait_procpool *pool, plait_proc_fn fn,
                        const void *args, size_t arg_size, size_t n, size_t result_size,
                        size_t chunk, int flags)
{
    if (!iter || (flags & ~PLAIT_IMAP_UNORDERED))
        return -EINVAL;
    plait_procpool_iter *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->epoch = plait__fork_epoch();
    int r = plan_make(&it->m, pool, fn, args, arg_size, n, result_size, chunk);
    if (r == 0) {
        plait__procpool_count_iter(pool, 1);
        it->counted = true;
        size_t w = it->places = it->m.window + 1;
        it->ordered = !(flags & PLAIT_IMAP_UNORDERED);
        it->raw_size = chunk_result_size(it->m.chunk, result_size);
        it->window = calloc(w, sizeof *it->window);
        it->chunk_of = calloc(w, sizeof *it->chunk_of);
        it->busy = calloc(w, sizeof *it->busy);
        it->raw = malloc(w * it->raw_size);
        r = !it->window || !it->chunk_of || !it->busy || !it->raw ? -ENOMEM
            : it->ordered                                         ? 0
                                                  : plait_completed_create(&it->done);
    }
    if (r == 0) {
        iter_fill(it);
        if (it->in_flight == 0) /* not even the first chunk went out */
            r = it->submit_error;
    }
    if (r < 0) {
        plait_procpool_imap_destroy(it);
        return r;
    }
    *iter = it;
    return 0;
}

/* Join the next chunk (the oldest, or the first finished) and make it current. */
static int iter_next_chunk(plait_procpool_iter *it, int64_t deadline)
{
    size_t k;
    if (it->ordered) {
        k = place_for(it, it->next_submit - it->in_flight);
    } else {
        plait_task t;
        int r = plait_completed_next(it->done, &t, deadline);
        if (r < 0)
            return r;
        for (k = 0; k < it->places; k++)
            if (it->busy[k] && it->window[k].future == t.future &&
                it->window[k].generation == t.generation)
                break;
    }
    int r = plait_join(it->window[k], NULL, deadline); /* a finished one does not wait */
    if (plait__join_cut_short(r, it->window[k]))
        return r; /* our wait ended, not the chunk: the next call joins it again */
    if (it->holds_place) /* the place of the chunk handed out so far is free now */
        it->busy[it->current_place] = false;
    it->in_flight--;
    it->holds_place = true;
    it->current_place = k;
    it->current_error = r;
    it->current_chunk = it->chunk_of[k];
    it->current_count = chunk_count(&it->m, it->current_chunk);
    it->current_pos = 0;
    iter_fill(it);
    return 0;
}

/* The next chunk that was never submitted (submitting failed): it fails whole. */
static void iter_unsent_chunk(plait_procpool_iter *it)
{
    if (it->holds_place)
        it->busy[it->current_place] = false;
    it->holds_place = false;
    it->current_error = it->submit_error;
    it->current_chunk = it->next_submit++;
    it->current_count = chunk_count(&it->m, it->current_chunk);
    it->current_pos = 0;
}

int plait_procpool_imap_next(plait_procpool_iter *it, size_t *index, void *result,
                             int *error, int64_t deadline)
{
    if (!it)
        return -EINVAL;
    if (plait__fork_epoch() != it->epoch)
        return -EPERM; /* a forked child's copy: its chunks are the parent's */
    while (it->current_pos == it->current_count) {
        if (it->in_flight > 0) {
            int r = iter_next_chunk(it, deadline);
            if (r < 0)
                return r;
        } else if (it->next_submit < it->m.chunks) {
            iter_unsent_chunk(it);
        } else {
            return -EPIPE;
        }
    }
    size_t i = it->current_pos++;
    int code = it->current_error;
    if (code == 0) {
        const unsigned char *raw = it->raw + it->current_place * it->raw_size;
        code = item_code(raw, i);
        if (result && code == 0)
            memcpy(result, raw + results_at(it->current_count) + i * it->m.result_size,
                   it->m.result_size);
    }
    if (result && code < 0)
        memset(result, 0, it->m.result_size);
    if (index)
        *index = it->current_chunk * it->m.chunk + i;
    if (error)
        *error = code;
    return 0;
}

/* Whether place k holds a chunk still with the pool (not the one handed out). */
static bool chunk_out(const plait_procpool_iter *it, size_t k)
{
    return it->busy[k] && !(it->holds_place && k == it->current_place);
}

int plait_procpool_imap_destroy(plait_procpool_iter *it)
{
    if (!it)
        return -EINVAL;
    if (plait__fork_epoch() != it->epoch)
        return -EPERM;
    /* the chunks still out: cancel them newest first (as map does, so that no worker
     * that replaces a killed one picks up a queued chunk), and wait (the manager
     * writes into it->raw) */
    for (size_t below = SIZE_MAX;;) {
        size_t newest = SIZE_MAX;
        for (size_t k = 0; it->busy && k < it->places; k++)
            if (chunk_out(it, k) && it->chunk_of[k] < below &&
                (newest == SIZE_MAX || it->chunk_of[k] > it->chunk_of[newest]))
                newest = k;
        if (newest == SIZE_MAX)
            break;
        plait_cancel(it->window[newest]);
        below = it->chunk_of[newest];
    }
    for (size_t k = 0; it->busy && k < it->places; k++)
        if (chunk_out(it, k))
            plait__join_stopped(it->window[k], NULL);
    if (it->done)
        plait_completed_destroy(it->done);
    free(it->raw);
    free(it->window);
    free(it->chunk_of);
    free(it->busy);
    if (it->counted)
        plait__procpool_count_iter(it->m.pool, -1);
    free(it);
    return 0;
}
