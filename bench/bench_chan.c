/*
 * bench_chan.c — ns per message between two coroutines over unbuffered plait
 * channels.
 *
 * A sends on ping and receives on pong; B receives on ping and sends back on pong.
 * Every message is a rendezvous: the receiver is parked, the sender hands the
 * element over and wakes it, then blocks on the other channel.  A round trip is
 * two messages; the figure is ns per message.
 *
 * Peer: peer_chan.go (the same with Go channels, GOMAXPROCS=1).
 *
 * Usage: bench_chan [round_trips]   (default 1,000,000)
 * Prints: chan plait ns_per_msg <ns>
 */
#include "bench_common.h"

typedef struct pair {
    plait_chan *ping, *pong;
    long long n;
} pair;

static void *echo(void *arg)
{
    pair *p = arg;
    for (long long i = 0; i < p->n; i++) {
        long long v;
        BENCH_CHECK(plait_chan_recv(p->ping, &v, PLAIT_FOREVER));
        v++;
        BENCH_CHECK(plait_chan_send(p->pong, &v, PLAIT_FOREVER));
    }
    return NULL;
}

static double measure(long long n)
{
    pair p = {.n = n};
    BENCH_CHECK(plait_chan_create(&p.ping, sizeof(long long), 0));
    BENCH_CHECK(plait_chan_create(&p.pong, sizeof(long long), 0));
    plait_task t;
    BENCH_CHECK(plait_spawn(&t, echo, &p));

    long long v = 0;
    long long t0 = bench_now();
    for (long long i = 0; i < n; i++) {
        BENCH_CHECK(plait_chan_send(p.ping, &v, PLAIT_FOREVER));
        BENCH_CHECK(plait_chan_recv(p.pong, &v, PLAIT_FOREVER));
    }
    long long t1 = bench_now();

    BENCH_CHECK(plait_join(t, NULL, PLAIT_FOREVER));
    BENCH_CHECK(plait_chan_destroy(p.ping));
    BENCH_CHECK(plait_chan_destroy(p.pong));
    if (v != n) {
        fprintf(stderr, "bench_chan: %lld round trips came back as %lld\n", n, v);
        exit(1);
    }
    return (double)(t1 - t0) / (2.0 * (double)n);
}

static void *bench_main(void *arg)
{
    long long n = *(long long *)arg;
    measure(n / 10 + 1);
    printf("chan plait ns_per_msg %.1f\n", measure(n));
    return NULL;
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 1000000LL, "round_trips", LLONG_MAX);
    BENCH_CHECK(plait_run(bench_main, &n, NULL));
    return 0;
}
