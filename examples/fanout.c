/* Fan-out: thousands of connections open at once from one thread.  A service on its
 * own thread answers every connection after 200 ms; 5,000 coroutines on one scheduler
 * each connect, send a line and wait for the answer.  Every wait overlaps, so the whole
 * fan-out takes about the 200 ms plus the time to make the connections, where the same
 * calls one after another would take 1,000 s.  Descriptors are the limit (two per
 * connection here, both ends in this process): the example raises its soft limit to
 * the hard one, and fans out to fewer connections if even that is too low (none:
 * it fails at once, saying so).
 *
 * Go would say:
 *     for i := 0; i < n; i++ { wg.Add(1); go func() { defer wg.Done(); fetch(addr) }() }
 *     wg.Wait()
 */
#include "example.h"
#include "service.h"

#include <string.h>
#include <sys/resource.h>

/* ThreadSanitizer counts every coroutine as a thread and stops the program at 8,128,
 * and each costs it a thread state it clears (0.9 MB; 4 ms on a slow host): a build
 * under it fans out to fewer (both ends of each connection are coroutines). */
#if defined(__SANITIZE_THREAD__)
enum { WANTED = 500 };
#else
enum { WANTED = 5000 };
#endif
enum { STACK = 16 * 1024 };
#define SERVICE_DELAY (200 * PLAIT_MS)

static void *answer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char line[16];
    if (plait_read_exactly(fd, line, 6, NULL, plait_deadline_in(120 * PLAIT_SEC)) == 0 &&
        plait_sleep(SERVICE_DELAY) == 0)
        plait_write_all(fd, "hello\n", 6, NULL, plait_deadline_in(120 * PLAIT_SEC));
    plait_close(fd);
    return NULL;
}


static example_service svc;
static int answered; /* fetches answered so far (all run on this one scheduler) */

static void *fetch(void *arg)
{
    (void)arg;
    int64_t deadline = plait_deadline_in(120 * PLAIT_SEC);
    int fd = plait_tcp_connect("127.0.0.1", svc.port, deadline);
    if (fd < 0)
        return PLAIT_FAIL(fd);
    char reply[6];
    int r = plait_write_all(fd, "hello?", 6, NULL, deadline);
    if (r == 0)
        r = plait_read_exactly(fd, reply, sizeof reply, NULL, deadline);
    plait_close(fd);
    if (r == 0 && memcmp(reply, "hello\n", 6) != 0)
        r = -EPROTO;
    answered += r == 0;
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

/* How many connections the descriptor limit allows (raised to the hard limit): 0 when
 * it leaves no room for one (a connection that did get a descriptor waited for the
 * service's accept, which had none, until the fan-out's 120 s deadline). */
static int connections_allowed(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 100;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    long room = ((long)rl.rlim_cur - 64) / 2; /* both ends are ours, and some to spare */
    return room < WANTED ? (int)(room > 0 ? room : 0) : WANTED;
}

static void *run(void *arg)
{
    (void)arg;
    int n = connections_allowed();
    if (n == 0) {
        printf("  the limit on descriptors leaves no room for a connection (it needs 66)"
               "  FAILED\n");
        return PLAIT_FAIL(-EMFILE);
    }
    int r = example_service_start(&svc, answer);
    if (r < 0)
        return PLAIT_FAIL(r);
    plait_group *fetchers;
    if ((r = plait_group_create(&fetchers)) < 0) {
        example_service_stop(&svc);
        return PLAIT_FAIL(r);
    }
    plait_spawn_options opts = {.stack_size = STACK, .group = fetchers};
    int64_t start = plait_now();
    int spawned = 0;
    for (; spawned < n && r == 0; spawned++)
        r = plait_spawn_opts(NULL, fetch, NULL, &opts);
    spawned -= r != 0;
    if (r == 0)
        r = plait_group_wait(fetchers, PLAIT_FOREVER); /* the first failure, if any */
    double took = (double)(plait_now() - start) / PLAIT_SEC;
    plait_group_destroy(fetchers); /* after a failure: the fetches still waiting end */
    if (r == 0)
        printf("  %d connections at once, each answered after %d ms: all answered in %.3f s "
               "(one after another: %.1f s)\n",
               n, (int)(SERVICE_DELAY / PLAIT_MS), took, n * (double)SERVICE_DELAY / PLAIT_SEC);
    else /* say what happened: how far the fan-out got */
        printf("  %d of %d connections answered (%d started) in %.3f s  FAILED: %s\n", answered,
               n, spawned, took, plait_strerror(r));
    example_service_stop(&svc);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

int example_fanout(void) { return example_run(run, "a fan-out from one thread"); }

EXAMPLE_MAIN(example_fanout)
