/*
 * peer_mutex_queue.c — C peer of bench_pool.c: the textbook thread pool, one queue
 * of function pointers under one pthread mutex, a condition variable for "work
 * queued" and one for "all done".
 *
 * Workers = the CPUs this process may run on (as plait_cpu_count()).  The queue is
 * a fixed array with room for every task of the run (so submit never blocks on a
 * full queue); submit locks, appends, signals one worker.  A worker locks, counts
 * the task it just ran, takes the next (waiting while there is none), unlocks and
 * runs it.  The main thread submits N no-ops, then waits until the done count is N.
 * There are no futures: this is the floor of a shared-lock pool, which plait's
 * per-task futures and work-stealing deques have to be measured against.  As in
 * bench_pool.c, the figure is the second of two rounds (the first: _cold).
 *
 * Usage: peer_mutex_queue [tasks]   (default 1,000,000)
 * Prints: pool.noop mutexq workers <n>
 *         pool.noop mutexq tasks_per_s <rate>
 *         pool.noop mutexq tasks_per_s_cold <rate of the first round>
 *         pool.noop mutexq ns_per_submit <ns>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct job {
    void (*fn)(void *);
    void *arg;
} job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t queued, all_done;
    job *jobs;
    long long head, tail; /* jobs[head..tail) wait to run */
    long long done, target;
    int stop;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .queued = PTHREAD_COND_INITIALIZER,
       .all_done = PTHREAD_COND_INITIALIZER};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void noop(void *arg)
{
    (void)arg;
}

static void *worker(void *unused)
{
    (void)unused;
    int ran = 0;
    pthread_mutex_lock(&q.lock);
    for (;;) {
        if (ran && ++q.done == q.target)
            pthread_cond_signal(&q.all_done);
        ran = 0;
        while (q.head == q.tail && !q.stop)
            pthread_cond_wait(&q.queued, &q.lock);
        if (q.head == q.tail)
            break;
        job j = q.jobs[q.head++];
        pthread_mutex_unlock(&q.lock);
        j.fn(j.arg);
        ran = 1;
        pthread_mutex_lock(&q.lock);
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void submit(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&q.lock);
    q.jobs[q.tail++] = (job){fn, arg};
    pthread_cond_signal(&q.queued);
    pthread_mutex_unlock(&q.lock);
}

/* Submit n no-ops, wait until all have run; tasks/s. */
static double measure(long long n, double *submit_ns)
{
    pthread_mutex_lock(&q.lock);
    q.head = q.tail = q.done = 0;
    q.target = n;
    pthread_mutex_unlock(&q.lock);
    long long t0 = now_ns();
    for (long long i = 0; i < n; i++)
        submit(noop, NULL);
    long long t1 = now_ns();
    pthread_mutex_lock(&q.lock);
    while (q.done < n)
        pthread_cond_wait(&q.all_done, &q.lock);
    pthread_mutex_unlock(&q.lock);
    long long t2 = now_ns();
    *submit_ns = (double)(t1 - t0) / (double)n;
    return (double)n / ((double)(t2 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 1000000;
    if (n <= 0 || (unsigned long long)n > PTRDIFF_MAX / sizeof(job)) { /* the queue's bytes */
        fprintf(stderr, "usage: %s [tasks]\n", argv[0]);
        return 2;
    }
    cpu_set_t set;
    int workers = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    if (workers < 1)
        workers = 1;
    q.jobs = malloc((size_t)n * sizeof *q.jobs);
    pthread_t *threads = malloc((size_t)workers * sizeof *threads);
    if (!q.jobs || !threads) {
        fprintf(stderr, "peer_mutex_queue: out of memory\n");
        return 1;
    }
    for (int i = 0; i < workers; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0) {
            fprintf(stderr, "peer_mutex_queue: pthread_create failed\n");
            return 1;
        }
    double submit_ns;
    double cold = measure(n, &submit_ns); /* warm up: the queue's pages faulted in */
    double rate = measure(n, &submit_ns);
    printf("pool.noop mutexq workers %d\n", workers);
    printf("pool.noop mutexq tasks_per_s %.0f\n", rate);
    printf("pool.noop mutexq tasks_per_s_cold %.0f\n", cold);
    printf("pool.noop mutexq ns_per_submit %.1f\n", submit_ns);

    pthread_mutex_lock(&q.lock);
    q.stop = 1;
    pthread_cond_broadcast(&q.queued);
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < workers; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    free(q.jobs);
    return 0;
}
