/*
 * bench_wakeup.c — wake-up latency across threads through plait channels:
 * microseconds per round trip.
 *
 * Two sides ping-pong a counter over two channels of capacity 1 (one each way, so a
 * send never waits and every round trip is exactly two wake-ups: each side wakes
 * the other, then blocks until it is woken).  Two variants:
 *
 *   plait-coro-thread  the echo side is a coroutine, the main one of a scheduler
 *                      (plait_run) on its own thread; the other side is a thread
 *                      with no scheduler, which blocks in the channel calls;
 *   plait-coro-coro    both sides are coroutines, each on the scheduler of its own
 *                      thread;
 *   plait-thread-thread both sides are plain threads: the channels' hand-off alone,
 *                      with no scheduler in the way (what the two above add to it is
 *                      their schedulers' inboxes and switches).
 *
 * Both run with the two threads pinned (pthread_setaffinity_np) to one CPU
 * ("samecpu": every wake-up is a switch between two threads of one CPU) and to two
 * CPUs ("twocpu": every wake-up crosses to another CPU, which may be asleep).  Left
 * to itself the kernel moves such a pair from one placement to the other mid-run,
 * and the two differ tenfold on a virtual machine, so an unpinned figure would say
 * more about placement than about plait.  The threads are plait threads
 * (plait_thread_start).
 *
 * Peers, peer_futex_pingpong.c, pinned the same two ways: `futex`, the floor of any
 * hand-off that sleeps — two threads, one futex word, FUTEX_WAKE then FUTEX_WAIT, no
 * looking — which the goal (within 1.5x of it) is set against; and `futex-look`,
 * plait's own policy by hand: a side looks at the word for up to 20 us before it
 * sleeps, as plait's waits do.  Between two CPUs plait's sides answer each other within
 * that look and neither sleeps, so there the fair floor for the same work is
 * futex-look, not futex (which then measures two sleeps a round trip).
 *
 * Usage: bench_wakeup [round_trips]   (default 20,000 per variant and placement)
 * Prints, for P in samecpu and twocpu (twocpu only with two CPUs or more):
 *   wakeup.P plait-coro-thread us_per_rt <us>
 *   wakeup.P plait-coro-coro us_per_rt <us>
 *   wakeup.P plait-thread-thread us_per_rt <us>
 */
#include "bench_common.h"

#include <pthread.h>
#include <sched.h>

typedef struct side {
    plait_chan *out, *in; /* send on out, receive on in */
    long long warm, n;    /* round trips before timing, and timed */
    int cpu;              /* pinned to this CPU */
    int coroutine;        /* run as the main coroutine of a scheduler, or plainly */
    plait_fn body;
    long long ns;         /* pinger: wall time of the n timed round trips */
} side;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "bench_wakeup: cannot pin a thread to CPU %d\n", cpu);
        exit(1);
    }
}

static void *pinger(void *arg)
{
    side *s = arg;
    long long v = 0, t0 = 0;
    for (long long i = 0; i < s->warm + s->n; i++) {
        if (i == s->warm)
            t0 = bench_now();
        BENCH_CHECK(plait_chan_send(s->out, &v, PLAIT_FOREVER));
        BENCH_CHECK(plait_chan_recv(s->in, &v, PLAIT_FOREVER));
    }
    s->ns = bench_now() - t0;
    if (v != s->warm + s->n) {
        fprintf(stderr, "bench_wakeup: %lld round trips came back as %lld\n",
                s->warm + s->n, v);
        exit(1);
    }
    return NULL;
}

static void *echo(void *arg)
{
    side *s = arg;
    for (long long i = 0; i < s->warm + s->n; i++) {
        long long v;
        BENCH_CHECK(plait_chan_recv(s->in, &v, PLAIT_FOREVER));
        v++;
        BENCH_CHECK(plait_chan_send(s->out, &v, PLAIT_FOREVER));
    }
    return NULL;
}

/* A side's thread: pin it, then run its body as a scheduler's main coroutine or
 * straight on the thread. */
static void *side_thread(void *arg)
{
    side *s = arg;
    pin(s->cpu);
    if (s->coroutine)
        BENCH_CHECK(plait_run(s->body, s, NULL));
    else
        s->body(s);
    return NULL;
}

/* Microseconds per round trip, echo on cpu_echo, pinger on cpu_ping, each a coroutine
 * (the main one of its thread's scheduler) or a plain thread. */
static double measure(long long n, int pinger_is_coroutine, int echo_is_coroutine,
                      int cpu_ping, int cpu_echo)
{
    plait_chan *ping, *pong;
    BENCH_CHECK(plait_chan_create(&ping, sizeof(long long), 1));
    BENCH_CHECK(plait_chan_create(&pong, sizeof(long long), 1));
    side a = {.out = ping, .in = pong, .warm = n / 10 + 1, .n = n, .cpu = cpu_ping,
              .coroutine = pinger_is_coroutine, .body = pinger};
    side b = {.out = pong, .in = ping, .warm = n / 10 + 1, .n = n, .cpu = cpu_echo,
              .coroutine = echo_is_coroutine, .body = echo};
    plait_thread_options oa = {.name = "ping"}, ob = {.name = "echo"};
    plait_task ta, tb;
    BENCH_CHECK(plait_thread_start(&tb, side_thread, &b, &ob));
    BENCH_CHECK(plait_thread_start(&ta, side_thread, &a, &oa));
    BENCH_CHECK(plait_join(ta, NULL, PLAIT_FOREVER));
    BENCH_CHECK(plait_join(tb, NULL, PLAIT_FOREVER));
    BENCH_CHECK(plait_chan_destroy(ping));
    BENCH_CHECK(plait_chan_destroy(pong));
    return (double)a.ns / (double)n / 1e3;
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 20000, "round_trips", LLONG_MAX / 2) /* warm + n */;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("bench_wakeup: sched_getaffinity");
        return 1;
    }
    int cpus[2] = {-1, -1}, found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[found++] = c;
    for (int placement = 0; placement < found; placement++) {
        const char *name = placement == 0 ? "samecpu" : "twocpu";
        int other = placement == 0 ? cpus[0] : cpus[1];
        printf("wakeup.%s plait-coro-thread us_per_rt %.2f\n", name,
               measure(n, 0, 1, cpus[0], other));
        printf("wakeup.%s plait-coro-coro us_per_rt %.2f\n", name,
               measure(n, 1, 1, cpus[0], other));
        printf("wakeup.%s plait-thread-thread us_per_rt %.2f\n", name,
               measure(n, 0, 0, cpus[0], other));
        fflush(stdout);
    }
    return 0;
}
