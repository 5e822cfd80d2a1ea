/* service.h — what the I/O examples share: a service on a loopback port, run by its
 * own scheduler on its own thread, that serves each connection in a coroutine.  The
 * examples are then only their clients and their per-connection code. */
#ifndef PLAIT_EXAMPLE_SERVICE_H
#define PLAIT_EXAMPLE_SERVICE_H

#include "stop.h"

#include <plait.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct example_service {
    int listener, port;
    plait_fn serve;             /* serve((void *)(intptr_t)fd): owns and closes fd */
    plait_task thread;
    atomic_bool shut;           /* the listener was shut down (example_service_stop) */
} example_service;

static void *example_accept_loop(void *arg)
{
    example_service *svc = arg;
    plait_group *conns;
    if (plait_group_create(&conns) < 0)
        return PLAIT_FAIL(-ENOMEM);
    plait_spawn_options opts = {.stack_size = 16 * 1024, .group = conns};
    int64_t pause = 0;
    for (;;) {
        int fd = plait_accept(svc->listener, NULL, PLAIT_FOREVER);
        if (fd >= 0) {
            pause = 0;
            if (plait_spawn_opts(NULL, svc->serve, (void *)(intptr_t)fd, &opts) < 0)
                plait_close(fd);
            continue;
        }
        /* the listener was shut down (example_service_stop: its accepts go on failing
         * for ever), or the acceptor cancelled */
        if (atomic_load(&svc->shut) || fd == -ECANCELED)
            break;
        /* out of descriptors (the clients hold theirs too): connections end and give
         * theirs back; any other failure is said and waited out, as the servers'
         * acceptors do (it ended accepting, silently: every client still to come
         * waited out its deadline) */
        if (example_accept_failed("service", fd, &pause) < 0)
            break;
    }
    plait_group_destroy(conns); /* the listener was closed: end the connections */
    return NULL;
}

static void *example_service_main(void *arg)
{
    return plait_run(example_accept_loop, arg, NULL) == 0 ? NULL : PLAIT_FAIL(-EIO);
}

/* Listen on a free loopback port and serve it from a new thread; 0 or -errno. */
static inline int example_service_start(example_service *svc, plait_fn serve)
{
    plait_addr local;
    svc->serve = serve;
    atomic_init(&svc->shut, false);
    svc->listener = plait_tcp_listen("127.0.0.1", 0, 4096);
    if (svc->listener < 0)
        return svc->listener;
    int r = plait_local_addr(svc->listener, &local);
    if (r == 0) {
        svc->port = plait_addr_port(&local);
        r = plait_thread_start(&svc->thread, example_service_main, svc, NULL);
    }
    if (r < 0)
        plait_close(svc->listener);
    return r;
}

/* Shut the listener down (its accept ends with -EINVAL, at once or when it comes), wait
 * for the service, then close it.  Closing it first would free its number while the
 * service thread may be between a try and its wait: a descriptor that thread makes
 * then (its poller's, made at its first wait) can take the number, and the accept loop
 * would wait on that one forever. */
static inline void example_service_stop(example_service *svc)
{
    atomic_store(&svc->shut, true);
    plait_shutdown(svc->listener, SHUT_RDWR);
    plait_join(svc->thread, NULL, PLAIT_FOREVER);
    plait_close(svc->listener);
}

#endif
