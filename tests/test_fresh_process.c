/*
 * test_fresh_process.c — what must hold when a coroutine is the first to reach a code
 * path in the whole process (a process of its own: the other test binaries have warmed
 * everything up by the time they get there).
 *
 * Regression: a detached coroutine frees its own future as it ends, on its own stack.
 * The first such free in a process used to set up the thread's future cache through
 * pthread_once/pthread_setspecific, whose lazily bound symbols made the dynamic linker
 * run on a 2 KiB stack and overflow it (bench_memory aborted).
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *tiny_detached(void *p)
{
    plait_waitgroup_done(p);
    return NULL;
}

static void *tiny_main(void *p)
{
    (void)p;
    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    plait_spawn_options small = {.stack_size = CHECK_SMALL_STACK};
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(plait_waitgroup_add(wg, 1), 0);
        CHECK_EQ(plait_spawn_opts(NULL, tiny_detached, wg, &small), 0);
    }
    CHECK_EQ(plait_waitgroup_wait(wg, SOON()), 0);
    settle(); /* let them finish and free their futures */
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);
    return NULL;
}

TEST(small_stack_detached_first_in_process) { check_run(tiny_main, NULL); }

/* plait ignores SIGPIPE where the program left it at its default, once, as it makes
 * its first socket or pipe.  A program that watched SIGPIPE at that moment got its
 * default back when the watcher went, and a later write to a closed peer killed it.
 * The ignoring is then for the watcher to give back.  Run in a child, whose plait has
 * made no socket yet (nothing in this file has). */
static int sigpipe_watched_at_the_first_socket(void *unused)
{
    (void)unused;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, now;
    sigemptyset(&dfl.sa_mask);
    if (sigaction(SIGPIPE, &dfl, NULL) != 0)
        return 1;
    int pipe_signal = SIGPIPE;
    plait_signals *w;
    if (plait_signals_create(&w, &pipe_signal, 1) != 0)
        return 2;
    int listener = plait_tcp_listen("127.0.0.1", 0, 0); /* plait's first socket */
    if (listener < 0 || plait_signals_destroy(w) != 0)
        return 3;
    if (sigaction(SIGPIPE, NULL, &now) != 0 || now.sa_handler != SIG_IGN)
        return 4;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 5;
    close(sv[1]);
    if (plait_write(sv[0], "x", 1, SOON()) != -EPIPE)
        return 6;
    return plait_close(sv[0]) == 0 && plait_close(listener) == 0 ? 0 : 7;
}

/* The exit status of a forked child that runs fn(arg) and exits with what it returns
 * (minus its signal if one killed it). */
static int in_child_exits(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    CHECK(pid > 0);
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* A write to a socket whose peer has gone is -EPIPE even before plait has made any pipe
 * or socket of its own: plait_write ignores SIGPIPE before it writes, as making a pipe
 * or socket does.  (The program's own socketpair, written by plait_write in a fresh
 * process, once died of SIGPIPE.  The write itself is send(2) without MSG_NOSIGNAL, as
 * write(2) would be: test_fdio's sigpipe_in_the_ring_and_out_of_it.) */
static int write_to_a_gone_peer_first(void *unused)
{
    (void)unused;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    int sv[2];
    if (sigaction(SIGPIPE, &dfl, NULL) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 1;
    close(sv[1]);
    return plait_write(sv[0], "x", 1, SOON()) == -EPIPE && close(sv[0]) == 0 ? 0 : 2;
}

/* A watched signal that comes while a coroutine on the smallest stack runs is handled
 * on the scheduler thread's alternate stack: the kernel's signal frame (several KiB
 * with AVX-512) went onto the 2 KiB stack, and the program died.  Twice, each in a
 * child: first in a program that handles SIGSEGV itself, before this process's plait
 * did anything (the child's plait is the first and finds the program's handler: it
 * installs none of its own, and then gave the thread no alternate stack either); then
 * with plait's own handler (its handler for watched signals lacked SA_ONSTACK). */
static atomic_int small_spinning, small_stop, small_failed;
static pthread_t small_sched;

static void own_segv_handler(int sig)
{
    (void)sig;
    _exit(90);
}

static void *small_spinner(void *arg)
{
    (void)arg;
    atomic_fetch_add(&small_spinning, 1);
    while (!atomic_load(&small_stop))
        plait_yield();
    return NULL;
}

static void *small_spinners(void *arg)
{
    (void)arg;
    plait_spawn_options o = {.stack_size = CHECK_SMALL_STACK};
    plait_task t[32];
    int made = 0;
    while (made < 32 && plait_spawn_opts(&t[made], small_spinner, NULL, &o) == 0)
        made++;
    if (made < 32) {
        atomic_store(&small_failed, 1);
        atomic_store(&small_stop, 1);
    }
    for (int i = 0; i < made; i++)
        plait_join(t[i], NULL, PLAIT_FOREVER);
    return NULL;
}

static void *small_scheduler(void *arg)
{
    (void)arg;
    if (plait_run(small_spinners, NULL, NULL) != 0)
        atomic_store(&small_failed, 1);
    return NULL;
}

static int small_stacks_under_signals(void *own_sigsegv)
{
    struct sigaction own = {.sa_handler = own_segv_handler};
    sigemptyset(&own.sa_mask);
    if (own_sigsegv && sigaction(SIGSEGV, &own, NULL) != 0)
        return 1;
    int usr1 = SIGUSR1;
    plait_signals *w;
    if (plait_signals_create(&w, &usr1, 1) != 0)
        return 2;
    if (pthread_create(&small_sched, NULL, small_scheduler, NULL) != 0)
        return 3;
    int64_t give_up = SOON();
    while (atomic_load(&small_spinning) < 32 && !atomic_load(&small_failed) &&
           plait_now() < give_up)
        sched_yield();
    struct timespec pause = {0, 50 * 1000};
    for (int i = 0; i < 2000 && atomic_load(&small_spinning) == 32; i++) {
        pthread_kill(small_sched, SIGUSR1);
        nanosleep(&pause, NULL);
    }
    atomic_store(&small_stop, 1);
    pthread_join(small_sched, NULL);
    if (atomic_load(&small_failed) || atomic_load(&small_spinning) != 32)
        return 4;
    if (plait_signals_wait(w, SOON()) != SIGUSR1 || plait_signals_destroy(w) != 0)
        return 5;
    return 0;
}

TEST(signals_onto_small_stacks_where_the_program_handles_sigsegv)
{
    CHECK_EQ(in_child_exits(small_stacks_under_signals, ARG(1)), 0);
}

TEST(signals_onto_small_stacks)
{
    CHECK_EQ(in_child_exits(small_stacks_under_signals, NULL), 0);
}

TEST(socket_write_to_a_gone_peer_raises_no_sigpipe)
{
    CHECK_EQ(in_child_exits(write_to_a_gone_peer_first, NULL), 0);
}

TEST(sigpipe_stays_ignored_after_a_watcher_of_it)
{
    CHECK_EQ(in_child_exits(sigpipe_watched_at_the_first_socket, NULL), 0);
}

/* Whether a program plait starts ignores SIGPIPE (its SigIgn mask in /proc), read from
 * its output; 1, 0, or a negative error. */
static int program_ignores_sigpipe(void)
{
    char *argv[] = {"cat", "/proc/self/status", NULL};
    plait_process_options o = {.stdio = {0, PLAIT_STDIO_PIPE, 0}};
    plait_pipes p;
    plait_task t;
    int r = plait_process_exec(&t, NULL, argv, &o, &p);
    if (r < 0)
        return r;
    static char status[16384];
    size_t got = 0;
    r = plait_read_exactly(p.out, status, sizeof status - 1, &got, SOON());
    close(p.out);
    if (r != -ENODATA || plait_join(t, NULL, SOON()) != 0)
        return -EIO;
    status[got] = '\0';
    const char *line = strstr(status, "\nSigIgn:");
    unsigned long long mask;
    if (!line || sscanf(line, "\nSigIgn: %llx", &mask) != 1)
        return -EBADMSG;
    return (mask >> (SIGPIPE - 1)) & 1;
}

/* SIGPIPE ignored by the program itself (a shell's trap '' PIPE) stays ignored in the
 * programs it starts through plait, as exec passes it on; only an ignoring that plait
 * did is undone in them.  (Every program once got the default back.)  Run in children
 * whose plait has made no pipe yet. */
static int program_sigpipe(void *handler)
{
    struct sigaction sa = {.sa_handler = handler}, now;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return 100;
    int r = program_ignores_sigpipe(); /* makes a pipe: plait ignores SIGPIPE if default */
    if (r < 0)
        return 101;
    if (sigaction(SIGPIPE, NULL, &now) != 0 || now.sa_handler != SIG_IGN)
        return 102; /* ignored here either way */
    return r;
}

TEST(programs_keep_the_callers_own_sigpipe_ignoring)
{
    void *const handlers[] = {SIG_IGN, SIG_DFL};
    const int ignored[] = {1, 0};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(in_child_exits(program_sigpipe, handlers[i]), ignored[i]);
    }
}

RUN_TESTS(CASE(signals_onto_small_stacks_where_the_program_handles_sigsegv), /* first */
          CASE(small_stack_detached_first_in_process), CASE(signals_onto_small_stacks),
          CASE(sigpipe_stays_ignored_after_a_watcher_of_it),
          CASE(programs_keep_the_callers_own_sigpipe_ignoring),
          CASE(socket_write_to_a_gone_peer_raises_no_sigpipe))
