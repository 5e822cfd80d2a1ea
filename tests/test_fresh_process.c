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
 * or socket of its own (so before it ignores SIGPIPE): a socket is written with
 * MSG_NOSIGNAL.  (The program's own socketpair, written by plait_write in a fresh
 * process, once died of SIGPIPE.) */
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

RUN_TESTS(CASE(small_stack_detached_first_in_process),
          CASE(sigpipe_stays_ignored_after_a_watcher_of_it),
          CASE(programs_keep_the_callers_own_sigpipe_ignoring),
          CASE(socket_write_to_a_gone_peer_raises_no_sigpipe))
