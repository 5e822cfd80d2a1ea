/*
 * test_example_service.c — examples/service.h, the loopback service the I/O examples
 * (io_models, fanout: `plait tour`) share: an accept that fails for a reason other
 * than the lack of descriptors (a security module's EPERM, say) is said and waited
 * out, and the service goes on accepting.  It ended its accept loop at once, silently:
 * every client still to come waited out its deadline (an examples audit).  plait_accept
 * is wrapped (-Wl,--wrap=plait_accept, tests/CMakeLists.txt) to fail on demand.
 */
#include "check.h"
#include "helpers.h"

#include "../examples/service.h"

#include <poll.h>
#include <stdatomic.h>
#include <unistd.h>

int __real_plait_accept(int fd, plait_addr *peer, int64_t deadline);
int __wrap_plait_accept(int fd, plait_addr *peer, int64_t deadline);

static atomic_int refusals; /* accepts still to fail with EPERM */

int __wrap_plait_accept(int fd, plait_addr *peer, int64_t deadline)
{
    int left = atomic_load(&refusals);
    while (left > 0 && !atomic_compare_exchange_weak(&refusals, &left, left - 1)) {
    }
    return left > 0 ? -EPERM : __real_plait_accept(fd, peer, deadline);
}

/* Echo one byte, then close. */
static void *echo_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    if (plait_read_exactly(fd, &c, 1, NULL, SOON()) == 0)
        (void)plait_write_all(fd, &c, 1, NULL, SOON());
    plait_close(fd);
    return NULL;
}

/* A blocking loopback client of port: sends a byte, and reads it back within 10 s:
 * whether it came. */
static bool echoed(int port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(send(c, "e", 1, MSG_NOSIGNAL), 1);
    struct pollfd p = {.fd = c, .events = POLLIN};
    char back = 0;
    bool came = poll(&p, 1, 10 * 1000) == 1 && read(c, &back, 1) == 1 && back == 'e';
    close(c);
    return came;
}

TEST(the_service_goes_on_accepting_after_a_failed_accept)
{
    example_service svc;
    atomic_store(&refusals, 3);
    CHECK_EQ(example_service_start(&svc, echo_one), 0);
    CHECK(echoed(svc.port));
    CHECK_EQ(atomic_load(&refusals), 0);
    CHECK(echoed(svc.port)); /* and the next one */
    example_service_stop(&svc);
}

RUN_TESTS(CASE(the_service_goes_on_accepting_after_a_failed_accept))
