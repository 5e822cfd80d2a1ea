/*
 * test_accept_failed_connections.c — plait_accept over a run of connections that failed
 * before they were taken (linked with -Wl,--wrap=accept4: while `failing` is set, every
 * accept4 answers ECONNABORTED, as a listener flooded with aborted handshakes may).
 * plait_accept skips such connections; a run of them must still let the scheduler's other
 * coroutines run and end at the caller's deadline, a plait_close of the listener or a
 * cancellation.  Before the fix the loop retried at once for ever: the cases here hung
 * (their alarm) or spun past their deadline.  Runs once per poller (tests/CMakeLists.txt).
 */
#include "check.h"
#include "helpers.h"

#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

static atomic_bool failing;
static atomic_long failures;
static atomic_int failing_next; /* so many more answer ECONNABORTED, then real ones */

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int next = atomic_load(&failing_next);
    while (next > 0 && !atomic_compare_exchange_weak(&failing_next, &next, next - 1)) {
    }
    if (atomic_load(&failing) || next > 0) {
        atomic_fetch_add(&failures, 1);
        errno = ECONNABORTED;
        return -1;
    }
    return __real_accept4(fd, addr, len, flags);
}

typedef struct {
    int listener;
    int64_t deadline;
    int result;
} accept_call;

static void *accept_once(void *arg)
{
    accept_call *call = arg;
    call->result = plait_accept(call->listener, NULL, call->deadline);
    return NULL;
}

/* A loopback TCP listener with one connection queued (the kernel completes the
 * handshake before any accept); the client's end into *client. */
static int listener_with_a_client(int *client)
{
    plait_addr a;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int l = plait_listen(&a, 4);
    CHECK(l >= 0);
    CHECK_EQ(plait_local_addr(l, &a), 0);
    *client = plait_connect(&a, SOON());
    CHECK(*client >= 0);
    return l;
}

/* The call took a connection; close it, the client's end and the listener. */
static void accepted_then_close(const accept_call *call, int client)
{
    CHECK(call->result >= 0);
    if (call->result >= 0)
        CHECK_EQ(plait_close(call->result), 0);
    CHECK_EQ(plait_close(client), 0);
    CHECK_EQ(plait_close(call->listener), 0);
}

static void start_failing(void)
{
    atomic_store(&failures, 0);
    atomic_store(&failing, true);
}

/* The acceptor spins over failed connections; main gets its turn meanwhile, stops the
 * failures, and the acceptor then takes the queued connection. */
static void *others_run_main(void *arg)
{
    (void)arg;
    int client;
    accept_call call = {.deadline = SOON()};
    call.listener = listener_with_a_client(&client);
    start_failing();
    plait_task acceptor;
    CHECK_EQ(plait_spawn(&acceptor, accept_once, &call), 0);
    CHECK_EQ(plait_yield(), 0); /* the acceptor runs until it gives a turn */
    CHECK(atomic_load(&failures) > 0);
    atomic_store(&failing, false);
    CHECK_EQ(plait_join(acceptor, NULL, SOON()), 0);
    accepted_then_close(&call, client);
    return NULL;
}

TEST(a_run_of_failed_connections_lets_the_others_run) { check_run(others_run_main, NULL); }

/* With the failures never ending: -ETIMEDOUT at the deadline, on a coroutine and on a
 * thread, and no sooner. */
static void *deadline_s(void *arg)
{
    (void)arg;
    int client;
    accept_call call = {.deadline = plait_deadline_in(50 * PLAIT_MS)};
    call.listener = listener_with_a_client(&client);
    start_failing();
    accept_once(&call);
    atomic_store(&failing, false);
    CHECK_EQ(call.result, -ETIMEDOUT);
    CHECK(plait_now() >= call.deadline);
    CHECK(atomic_load(&failures) > 0);
    CHECK_EQ(plait_close(client), 0);
    CHECK_EQ(plait_close(call.listener), 0);
    return NULL;
}

TEST(a_run_of_failed_connections_ends_at_the_deadline)
{
    check_run(deadline_s, NULL);
    deadline_s(NULL);
}

/* A close of the listener by another coroutine of the scheduler: -EBADF. */
static void *close_main(void *arg)
{
    (void)arg;
    int client;
    accept_call call = {.deadline = PLAIT_FOREVER};
    call.listener = listener_with_a_client(&client);
    start_failing();
    plait_task acceptor;
    CHECK_EQ(plait_spawn(&acceptor, accept_once, &call), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_close(call.listener), 0);
    CHECK_EQ(plait_join(acceptor, NULL, SOON()), 0);
    atomic_store(&failing, false);
    CHECK_EQ(call.result, -EBADF);
    CHECK_EQ(plait_close(client), 0);
    return NULL;
}

TEST(a_run_of_failed_connections_ends_at_a_close) { check_run(close_main, NULL); }

/* A cancellation of the acceptor, a coroutine of the scheduler or a thread. */
static void *cancel_main(void *arg)
{
    bool on_a_thread = arg != NULL;
    int client;
    accept_call call = {.deadline = PLAIT_FOREVER};
    call.listener = listener_with_a_client(&client);
    start_failing();
    plait_task acceptor;
    if (on_a_thread) {
        CHECK_EQ(plait_thread_start(&acceptor, accept_once, &call, NULL), 0);
        while (atomic_load(&failures) == 0) /* it has begun its run */
            CHECK_EQ(plait_sleep_until(plait_deadline_in(PLAIT_MS)), 0);
    } else {
        CHECK_EQ(plait_spawn(&acceptor, accept_once, &call), 0);
        CHECK_EQ(plait_yield(), 0);
    }
    CHECK_EQ(plait_cancel(acceptor), 0);
    int joined = plait_join(acceptor, NULL, SOON());
    atomic_store(&failing, false);
    CHECK_EQ(joined, -ECANCELED);
    CHECK_EQ(call.result, -ECANCELED);
    CHECK_EQ(plait_close(client), 0);
    CHECK_EQ(plait_close(call.listener), 0);
    return NULL;
}

TEST(a_run_of_failed_connections_ends_at_a_cancellation)
{
    check_run(cancel_main, NULL);
    check_run(cancel_main, (void *)1);
}

/* A try (a past deadline), and a cancelled caller, with a failed connection queued
 * before a good one: the good one is taken, as it needs no wait.  Both gave up at the
 * failed one (-ETIMEDOUT, -ECANCELED) with the good one still queued. */
static void *try_main(void *arg)
{
    bool cancelled = arg != NULL;
    int client;
    accept_call call = {.deadline = cancelled ? PLAIT_FOREVER : 0, .result = 1};
    call.listener = listener_with_a_client(&client);
    atomic_store(&failures, 0);
    atomic_store(&failing_next, 1);
    if (cancelled) {
        plait_task acceptor;
        CHECK_EQ(plait_spawn(&acceptor, accept_once, &call), 0);
        CHECK_EQ(plait_cancel(acceptor), 0); /* before it runs */
        (void)plait_join(acceptor, NULL, SOON()); /* (its outcome: -ECANCELED) */
    } else {
        accept_once(&call);
    }
    CHECK_EQ(atomic_load(&failing_next), 0);
    CHECK_EQ(atomic_load(&failures), 1);
    accepted_then_close(&call, client);
    return NULL;
}

TEST(a_try_takes_a_connection_queued_behind_a_failed_one)
{
    check_run(try_main, NULL);
    try_main(NULL); /* a plain thread */
    check_run(try_main, (void *)1);
}

RUN_TESTS(CASE(a_run_of_failed_connections_lets_the_others_run),
          CASE(a_run_of_failed_connections_ends_at_the_deadline),
          CASE(a_run_of_failed_connections_ends_at_a_close),
          CASE(a_run_of_failed_connections_ends_at_a_cancellation),
          CASE(a_try_takes_a_connection_queued_behind_a_failed_one))
