/*
 * resolve_slow.c — name lookups behind a name server that never answers (the
 * caller's deadline ends them, the lookup itself goes on in the background).  Run by
 * tests/resolve_slow.sh in a private mount namespace whose /etc/resolv.conf names
 * 127.0.0.2 with a 2 s timeout; this program holds UDP and TCP port 53 there and never
 * answers.
 *  - Abandoned lookups kept the default pool's workers, 2 s each, and every file call
 *    and lookup queued behind them waited (200 of them: a file read took 195 s).
 *  - plait_resolve in a pool task ran its own lookup inside the join's helping (it was
 *    first on the worker's queue): its 200 ms deadline became 2 s and -EAGAIN.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ABANDONED = 24 };

static void *look_up_briefly(void *arg)
{
    char name[64];
    snprintf(name, sizeof name, "host%d.example", INT(arg));
    plait_addr out[2];
    return ARG(plait_resolve(name, 80, PLAIT_STREAM, out, 2, plait_deadline_in(100 * PLAIT_MS)));
}

static void *abandon_lookups_then_read(void *arg)
{
    (void)arg;
    plait_task t[ABANDONED];
    for (int i = 0; i < ABANDONED; i++)
        CHECK_EQ(plait_spawn(&t[i], look_up_briefly, ARG(i)), 0);
    for (int i = 0; i < ABANDONED; i++) /* each lookup's failure: its deadline */
        CHECK_EQ(plait_join(t[i], NULL, SOON()), -ETIMEDOUT);
    /* at most the lookups already running are waited for (one per worker, 2 s each);
     * not all of them (24 x 2 s over the pool's workers) */
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    char b[64];
    int64_t start = plait_now();
    CHECK(plait_file_read(fd, b, sizeof b, 0) > 0);
    int64_t took = plait_now() - start;
    if (took >= 8 * PLAIT_SEC)
        fprintf(stderr, "  a file read behind abandoned lookups took %.1f s\n", took / 1e9);
    CHECK(took < 8 * PLAIT_SEC);
    CHECK_EQ(close(fd), 0);
    return NULL;
}

TEST(abandoned_lookups_hold_no_worker)
{
    check_run(abandon_lookups_then_read, NULL);
}

static void *look_up_in_a_task(void *arg)
{
    (void)arg;
    plait_addr out[2];
    int64_t start = plait_now();
    int r = plait_resolve("slow.example", 80, PLAIT_STREAM, out, 2,
                          plait_deadline_in(200 * PLAIT_MS));
    CHECK_EQ(r, -ETIMEDOUT);
    CHECK(plait_now() - start < 2 * PLAIT_SEC); /* the resolver's own timeout is 2 s */
    return NULL;
}

TEST(a_pool_task_s_lookup_keeps_its_deadline)
{
    plait_task t;
    CHECK_EQ(plait_pool_submit(plait_pool_default(), &t, look_up_in_a_task, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* The name server that never answers: its sockets stay open (a closed port would be
 * answered at once by the kernel) until the process ends. */
static void hold_port_53(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    CHECK_EQ(inet_pton(AF_INET, "127.0.0.2", &a.sin_addr), 1);
    int types[2] = {SOCK_DGRAM, SOCK_STREAM};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);
        CHECK(s >= 0);
        CHECK_EQ(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)), 0);
        CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
        if (types[i] == SOCK_STREAM)
            CHECK_EQ(listen(s, 64), 0);
    }
}

TEST(the_name_server_is_silent) { hold_port_53(); }

RUN_TESTS(CASE(the_name_server_is_silent), CASE(abandoned_lookups_hold_no_worker),
          CASE(a_pool_task_s_lookup_keeps_its_deadline))
