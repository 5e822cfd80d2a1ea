/*
 * bench_queue.c — a plait_queue between two processes: a child sends, the parent
 * receives.  Messages per second for 64-byte messages (a queue of 1,024) and
 * megabytes per second for 64 KiB ones (a queue of 16: 1 MiB in flight, as much as a
 * pipe of 1 MiB would hold).  The child is started with plait_process_start and
 * sends as fast as it can; the parent times from the first message received to the
 * last.
 *
 * A child that fails part-way ends the run with status 1 and no figure: one that dies
 * the queue reports itself (-EPIPE once its only sender is gone), and the parent says
 * how it ended; one that stops sending without dying (stopped, stuck) the parent
 * notices when no message has come for STALL_S seconds.  The deadline is armed again
 * only when it passes, not per message, so the timed loop reads no clock for it.
 *
 * Peer: peer_pipe.c, the same two sizes through a pipe (write/read of whole messages,
 * default pipe size and also one enlarged to 1 MiB), in the same run.
 *
 * Usage: bench_queue [scale]   (default 1: 1,000,000 small and 20,000 large messages)
 * Prints: queue.small plait msgs_per_s <n>
 *         queue.large plait mb_per_s <n>
 */
#include "bench_common.h"

#include <string.h>

static plait_queue *q;

/* How long the parent waits for any message before it gives up on the child. */
enum { STALL_S = 10 };

static ssize_t sender(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    const long long *how = arg; /* count, size */
    char *msg = calloc(1, (size_t)how[1]);
    for (long long i = 0; i < how[0]; i++) {
        memcpy(msg, &i, sizeof i);
        int r = plait_queue_send(q, msg, (size_t)how[1], PLAIT_FOREVER);
        if (r < 0)
            return r;
    }
    free(msg);
    return 0;
}

/* The next message, received by then, or the deadline passed with none for STALL_S
 * seconds (-ETIMEDOUT); *deadline and *received_by_deadline keep track between calls. */
static ssize_t next_message(char *buf, long long size, long long received, int64_t *deadline,
                            long long *received_by_deadline)
{
    ssize_t n;
    while ((n = plait_queue_recv(q, buf, (size_t)size, *deadline)) == -ETIMEDOUT &&
           received > *received_by_deadline) {
        *received_by_deadline = received; /* messages came in the last period: go on */
        *deadline = plait_deadline_in(STALL_S * PLAIT_SEC);
    }
    return n;
}

/* A receive that went wrong: say what, and how the child ended, and stop. */
static void give_up(plait_task child, ssize_t n, long long received, long long count,
                    long long size)
{
    if (n == -ETIMEDOUT)
        fprintf(stderr, "bench_queue: no message from the child for %d s, after %lld of %lld\n",
                STALL_S, received, count);
    else if (n < 0)
        fprintf(stderr, "bench_queue: message %lld of %lld: %s\n", received + 1, count,
                plait_strerror((int)n));
    else
        fprintf(stderr, "bench_queue: message %lld of %lld: %zd bytes, not %lld\n",
                received + 1, count, n, size);
    int end = plait_join(child, NULL, plait_deadline_in(PLAIT_SEC));
    fprintf(stderr, "bench_queue: the child: %s\n",
            end == -ETIMEDOUT ? "still there, sending nothing (killed as this process exits)"
            : end == 0        ? "returned"
                              : plait_strerror(end));
    exit(1);
}

static double transfer(long long count, long long size, long long capacity)
{
    BENCH_CHECK(plait_queue_create(&q, (size_t)size, (size_t)capacity));
    long long how[2] = {count, size};
    plait_task child;
    BENCH_CHECK(plait_process_start(&child, sender, how, sizeof how, NULL, NULL));
    char *buf = malloc((size_t)size);
    long long t0 = 0, received_by_deadline = 0;
    int64_t deadline = plait_deadline_in(STALL_S * PLAIT_SEC);
    for (long long i = 0; i < count; i++) {
        ssize_t n = next_message(buf, size, i, &deadline, &received_by_deadline);
        if (n != size)
            give_up(child, n, i, count, size);
        long long seq;
        memcpy(&seq, buf, sizeof seq);
        if (seq != i) {
            fprintf(stderr, "bench_queue: message %lld came as %lld\n", i, seq);
            exit(1);
        }
        if (i == 0)
            t0 = bench_now();
    }
    double seconds = (bench_now() - t0) / 1e9;
    BENCH_CHECK(plait_join(child, NULL, PLAIT_FOREVER));
    BENCH_CHECK(plait_queue_destroy(q));
    free(buf);
    return (count - 1) / seconds;
}

int main(int argc, char **argv)
{
    long long scale = bench_count(argc, argv, 1, "scale", LLONG_MAX / 1000000);
    printf("queue.small plait msgs_per_s %.0f\n", transfer(1000000 * scale, 64, 1024));
    printf("queue.large plait mb_per_s %.1f\n",
           transfer(20000 * scale, 65536, 16) * 65536 / 1e6);
    return 0;
}
