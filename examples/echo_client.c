/* A TCP echo client: CONNS coroutines on one scheduler each send MESSAGES lines to an
 * echo server and check that every byte comes back, then it prints the rate.
 *
 *     example_echo_client [HOST [PORT [CONNS [MESSAGES [TIMEOUT]]]]]
 *                         (defaults: 127.0.0.1 7007 100 1000 60; see echo_server.c)
 *
 * TIMEOUT (seconds) bounds the connect and each round trip, not the whole run: a slow
 * but live server may take as long as it needs over many messages, and one that stops
 * answering fails the client TIMEOUT seconds after its last answer.
 *
 * The host may be a name ("localhost"): it is resolved without blocking the
 * scheduler, and each address is tried in turn.
 */
#include "args.h"

#include <plait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *host;
    int port, conns, messages, timeout; /* timeout in seconds, per round trip */
} job;

static void *talk(void *arg)
{
    const job *j = arg;
    int64_t timeout = j->timeout * PLAIT_SEC;
    int fd = plait_tcp_connect(j->host, j->port, plait_deadline_in(timeout));
    if (fd < 0)
        return PLAIT_FAIL(fd);
    plait_socket_set(fd, PLAIT_NODELAY, 1);
    int r = 0;
    for (int i = 0; i < j->messages && r == 0; i++) {
        char out[64], in[64];
        int len = snprintf(out, sizeof out, "message %d of %d\n", i + 1, j->messages);
        int64_t deadline = plait_deadline_in(timeout);
        r = plait_write_all(fd, out, (size_t)len, NULL, deadline);
        if (r == 0)
            r = plait_read_exactly(fd, in, (size_t)len, NULL, deadline);
        if (r == 0 && memcmp(in, out, (size_t)len) != 0)
            r = -EPROTO;
    }
    plait_close(fd);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

static void *run(void *arg)
{
    job *j = arg;
    plait_group *g;
    int r = plait_group_create(&g);
    int64_t start = plait_now();
    for (int i = 0; i < j->conns && r == 0; i++)
        r = plait_group_spawn(g, NULL, talk, j);
    if (r == 0)
        r = plait_group_wait(g, PLAIT_FOREVER);
    double s = (double)(plait_now() - start) / PLAIT_SEC;
    if (g)
        plait_group_destroy(g);
    if (r == -ETIMEDOUT) {
        fprintf(stderr, "echo_client: the server did not answer within %d s\n", j->timeout);
        return PLAIT_FAIL(r);
    }
    if (r == -ENOENT) { /* the lookup's: no such name (plait_strerror would name a file) */
        fprintf(stderr, "echo_client: %s: no such host\n", j->host);
        return PLAIT_FAIL(r);
    }
    if (r < 0) {
        fprintf(stderr, "echo_client: %s\n", plait_strerror(r));
        return PLAIT_FAIL(r);
    }
    printf("%d connections x %d messages echoed in %.3f s: %.0f round trips/s\n", j->conns,
           j->messages, s, (double)j->conns * j->messages / s);
    return NULL;
}

int main(int argc, char **argv)
{
    job j = {.host = argc > 1 ? argv[1] : "127.0.0.1"};
    if (argc > 6 || !*j.host || /* an empty host is no name: bad usage, not a lookup's EINVAL */
        !example_number(argc > 2 ? argv[2] : NULL, 7007, 1, 65535, &j.port) ||
        !example_number(argc > 3 ? argv[3] : NULL, 100, 1, 100000, &j.conns) ||
        !example_number(argc > 4 ? argv[4] : NULL, 1000, 1, 1000000000, &j.messages) ||
        !example_number(argc > 5 ? argv[5] : NULL, 60, 1, 86400, &j.timeout)) {
        fprintf(stderr,
                "usage: %s [HOST [PORT [CONNS [MESSAGES [TIMEOUT]]]]]\n"
                "  (defaults: 127.0.0.1 7007 100 1000 60; TIMEOUT: seconds for the connect\n"
                "  and for each round trip, 1 to 86400)\n",
                argv[0]);
        return 2;
    }
    return plait_run(run, &j, NULL) == 0 ? 0 : 1;
}
