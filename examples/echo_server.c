/* A TCP echo server: a coroutine per connection on one scheduler sends back every
 * byte as soon as it has read it.  A client gets TIMEOUT seconds (default 10) to take
 * its echo, and six times that between what it sends; then it is closed (a client
 * that sent nothing, or stopped reading, held its coroutine and its descriptor for
 * ever).  SIGTERM or SIGINT stops it: no new connections (those the kernel had queued
 * already are taken, as descriptors allow: out of them, only as open connections end,
 * and the ones still queued at the end are reset), the open ones go on until their
 * clients close them, 5 s at most (then they are cancelled), and are waited for.
 *
 *     example_echo_server [PORT [TIMEOUT]]   (port 7007 by default; 0 picks a free one)
 *
 * It prints "listening on 127.0.0.1:PORT" once it accepts.  This is also the plait
 * server of the echo benchmark (bench/io/).  Python's asyncio would say:
 *
 *     async def echo(reader, writer):
 *         while data := await reader.read(16384):
 *             writer.write(data); await writer.drain()
 *     await asyncio.start_server(echo, "127.0.0.1", 7007)
 */
#include "args.h"
#include "stop.h"

#include <plait.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

enum { BUF = 16384, STACK = 32 * 1024, BACKLOG = 4096 };

typedef struct server {
    int listener;
    int64_t timeout;    /* to take an echo; six times that idle */
    plait_group *conns; /* a coroutine per connection */
    bool shut;          /* SIGTERM: the listener was shut down */
} server;

typedef struct connection {
    const server *srv;
    int fd;
} connection;

static void *echo(void *arg)
{
    connection c = *(connection *)arg;
    free(arg);
    int64_t timeout = c.srv->timeout, idle = 6 * timeout;
    char buf[BUF];
    ssize_t n;
    while ((n = plait_read(c.fd, buf, sizeof buf, plait_deadline_in(idle))) > 0) {
        if (plait_write_all(c.fd, buf, (size_t)n, NULL, plait_deadline_in(timeout)) < 0)
            break;
    }
    plait_close(c.fd);
    return NULL;
}

/* Serve a connection taken off the listener in a coroutine of the group (or close it). */
static void serve(void *server_arg, int fd)
{
    server *srv = server_arg;
    plait_spawn_options opts = {.name = "echo", .stack_size = STACK, .group = srv->conns};
    plait_socket_set(fd, PLAIT_NODELAY, 1);
    connection *c = malloc(sizeof *c);
    if (c)
        *c = (connection){.srv = srv, .fd = fd};
    if (!c || plait_spawn_opts(NULL, echo, c, &opts) < 0) {
        plait_close(fd);
        free(c);
    }
}

static void *accept_loop(void *arg)
{
    server *srv = arg;
    int64_t pause = 0;
    for (;;) {
        int fd = plait_accept(srv->listener, NULL, PLAIT_FOREVER);
        if (fd >= 0) {
            pause = 0;
            serve(srv, fd);
            continue;
        }
        /* Shut down (stopping: an accept out of descriptors goes on failing so, the
         * kernel takes the descriptor before it looks at the listener) or cancelled:
         * the end.  Else waited out. */
        if (srv->shut || fd == -ECANCELED ||
            example_accept_failed("echo_server", fd, &pause) < 0)
            return NULL;
    }
}

static void *run(void *arg)
{
    int port = ((const int *)arg)[0]; /* and the timeout in seconds */
    int sigs[] = {SIGTERM, SIGINT};
    plait_signals *stop = NULL;
    server srv = {.listener = plait_tcp_listen("127.0.0.1", port, BACKLOG),
                  .timeout = ((const int *)arg)[1] * PLAIT_SEC};
    int r = srv.listener < 0 ? srv.listener : plait_signals_create(&stop, sigs, 2);
    plait_task acceptor;
    if (r == 0)
        r = example_poller_ready();
    if (r == 0)
        r = plait_group_create(&srv.conns);
    if (r == 0)
        r = plait_spawn(&acceptor, accept_loop, &srv);
    if (r < 0) {
        fprintf(stderr, "echo_server: %s\n", plait_strerror(r));
        return PLAIT_FAIL(r);
    }
    plait_addr local;
    char name[PLAIT_ADDR_STRLEN] = "?";
    if (plait_local_addr(srv.listener, &local) == 0)
        plait_addr_format(&local, name, sizeof name);
    printf("listening on %s (poller: %s)\n", name, plait_io_backend());
    fflush(stdout);
    int sig = plait_signals_wait(stop, PLAIT_FOREVER);
    /* No new connections.  Those the kernel has queued already (their clients were told
     * they are connected, and what they sent is acknowledged) are taken first (stop.h:
     * a TCP listener shut down or closed resets them, and the acceptor may not have come
     * round to them yet; out of descriptors, as the open connections' clients close).
     * The acceptor may be waiting on the listener meanwhile: an accept that does not
     * block just tries.  Then the acceptor's accept ends with -EINVAL (or it sees
     * `shut`). */
    int64_t stop_by = plait_deadline_in(5 * PLAIT_SEC);
    example_take_queued(srv.listener, BACKLOG, stop_by, serve, &srv);
    srv.shut = true;
    plait_shutdown(srv.listener, SHUT_RDWR);
    plait_join(acceptor, NULL, PLAIT_FOREVER);
    plait_close(srv.listener);
    /* Stopping: each connection goes on until its client closes it, so that what it
     * has sent (acknowledged by the kernel: the client counts on its echo) comes back;
     * 5 s at most, then it is cancelled.  (Cancelled at once, it closed with data
     * unread, and the kernel reset the connection: the echo not yet sent was lost.) */
    plait_group_wait(srv.conns, stop_by);
    plait_group_destroy(srv.conns); /* cancels the ones still running, and waits for them */
    printf("signal %d: stopped\n", sig);
    plait_signals_destroy(stop);
    return NULL;
}

int main(int argc, char **argv)
{
    int args[2];
    if (argc > 3 || !example_number(argc > 1 ? argv[1] : NULL, 7007, 0, 65535, &args[0]) ||
        !example_number(argc > 2 ? argv[2] : NULL, 10, 1, 3600, &args[1])) {
        fprintf(stderr, "usage: %s [PORT [TIMEOUT]]   (TIMEOUT: 1 to 3600 seconds)\n", argv[0]);
        return 2;
    }
    return plait_run(run, args, NULL) == 0 ? 0 : 1;
}
