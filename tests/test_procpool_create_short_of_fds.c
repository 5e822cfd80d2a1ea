/*
 * test_procpool_create_short_of_fds.c — a process pool's create, waiting for its
 * workers' initialisers, when a worker whose initialiser has returned dies and no
 * descriptor is left for its replacement's pidfd.
 *
 * The replacement's fork failed (-EMFILE), and so did the timer that retries it: the
 * pool marked the retry as due at the next submit, and no submit can come before
 * create returns.  The replacement was never forked, its initialiser never returned,
 * and create waited for ever, descriptors back or not (a process pool review).  Now
 * create fails with the fork's error, as a fork that fails at its start makes it.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>

enum { FIRST, BEGUN, RELEASE, WORDS };
static atomic_int *word; /* shared with the workers (plait_shm) */

/* Each worker's initialiser counts itself; the first says its pid and returns at once;
 * the others wait until the test releases them (30 s at most: a test that fails does
 * not hang). */
static int init(void *arg)
{
    (void)arg;
    atomic_fetch_add(&word[BEGUN], 1);
    int none = 0;
    if (atomic_compare_exchange_strong(&word[FIRST], &none, (int)getpid()))
        return 0;
    for (int64_t end = plait_now() + 30 * PLAIT_SEC; !atomic_load(&word[RELEASE]) &&
                                                      plait_now() < end;)
        poll(NULL, 0, 1);
    return 0;
}

/* Whether process pid sleeps (state S in /proc/PID/stat). */
static bool sleeping(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *state = strrchr(buf, ')');
    return state && state[1] == ' ' && state[2] == 'S';
}

static atomic_bool create_returned;

/* While create waits: once both workers are forked (their initialisers have begun:
 * create's own forks are over) and the first one's initialiser has returned (it
 * sleeps, waiting for a task, after it), take every descriptor, kill it, and give the
 * descriptors back once create has returned (15 s at most); then release the other. */
static void *killer(void *arg)
{
    (void)arg;
    pid_t first = 0;
    int64_t end = plait_now() + 15 * PLAIT_SEC;
    while (plait_now() < end && (atomic_load(&word[BEGUN]) < 2 ||
                                 !(first = atomic_load(&word[FIRST])) || !sleeping(first)))
        poll(NULL, 0, 1);
    static int fds[4096];
    int taken = 0, fd;
    while (taken < 4096 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        fds[taken++] = fd;
    if (first > 0)
        kill(first, SIGKILL);
    while (!atomic_load(&create_returned) && plait_now() < end)
        poll(NULL, 0, 5);
    while (taken > 0)
        close(fds[--taken]);
    atomic_store(&word[RELEASE], 1);
    return NULL;
}

typedef struct creating {
    plait_procpool *pool;
    int r;
} creating;

static void *create(void *arg)
{
    creating *c = arg;
    c->r = plait_procpool_create(&c->pool, &(plait_procpool_options){.processes = 2,
                                                                     .init = init});
    atomic_store(&create_returned, true);
    return NULL;
}

TEST(procpool_create_fails_when_a_replacement_finds_no_descriptor)
{
    plait_shm *shm;
    CHECK_EQ(plait_shm_create(&shm, WORDS * sizeof(atomic_int)), 0);
    word = plait_shm_data(shm);
    /* a few hundred descriptors to take, not the hard limit's million */
    struct rlimit few = {256, 256}, saved;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &few), 0);
    pthread_t k, c;
    creating made = {.r = 1};
    CHECK_EQ(pthread_create(&k, NULL, killer, NULL), 0);
    CHECK_EQ(pthread_create(&c, NULL, create, &made), 0);
    CHECK_EQ(pthread_join(k, NULL), 0);
    /* create has returned by now, or never will: it waited for ever */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int joined = pthread_timedjoin_np(c, NULL, &until);
    CHECK_EQ(joined, 0);
    if (joined != 0) {
        fprintf(stderr, "  create has not returned\n");
        return; /* (the thread stays blocked: the test fails) */
    }
    CHECK(made.r == -EMFILE || made.r == -ENFILE);
    if (made.r == 0)
        plait_procpool_destroy(made.pool);
    setrlimit(RLIMIT_NOFILE, &saved);
    /* a pool made now works */
    atomic_store(&word[BEGUN], 0);
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2,
                                                                    .init = init}),
             0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_shm_destroy(shm), 0);
}

RUN_TESTS(CASE(procpool_create_fails_when_a_replacement_finds_no_descriptor))
